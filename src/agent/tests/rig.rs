//! The test rig: a fake clock, a scripted server and scripted checks,
//! and what the agent said.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::*;
use crate::classify::Failure;
use crate::heartbeat::Reply;
use crate::narrate::Line;
use crate::push::{Assessment, Push};

pub const S: fn(f64) -> Duration = Duration::from_secs_f64;

/// A clock that moves only when the agent sleeps or a fake request
/// takes time; `stall` makes one sleep overrun, as SIGSTOP would.
#[derive(Clone, Default)]
pub struct FakeClock {
    pub now: Rc<Cell<Duration>>,
    /// (at or after this time, the next sleep oversleeps by this much)
    pub stall: Rc<Cell<Option<(Duration, Duration)>>>,
}

impl Clock for FakeClock {
    fn elapsed(&self) -> Duration {
        self.now.get()
    }
    fn sleep(&self, nap: Duration) {
        let mut woke = self.now.get() + nap;
        if let Some((after, extra)) = self.stall.get()
            && woke >= after
        {
            woke += extra;
            self.stall.set(None);
        }
        self.now.set(woke);
    }
    fn wall(&self) -> SystemTime {
        UNIX_EPOCH + self.now.get()
    }
}

/// Answers from a script (then accepts everything), taking `took` of
/// fake time per attempt, and records when each attempt started and
/// the budget it was given.
pub struct FakeServer {
    pub clock: FakeClock,
    pub script: VecDeque<Result<(), Failure>>,
    pub took: Duration,
    pub attempts: Rc<RefCell<Vec<(Duration, Duration)>>>,
    pub bodies: Rc<RefCell<Vec<String>>>,
    /// Every push's body is refused (as a 400), without taking a script entry.
    pub refuse_pushes: bool,
}

impl Courier for FakeServer {
    fn send(&mut self, budget: Duration, post: &Post) -> Outcome {
        let now = self.clock.elapsed();
        self.bodies.borrow_mut().push(post.body.clone());
        self.attempts.borrow_mut().push((now, budget));
        let took = self.took.min(budget);
        self.clock.now.set(now + took);
        if self.refuse_pushes && post.to != Endpoint::Heartbeat {
            return Outcome::Refused(Failure::fatal("HTTP 400 Bad Request".into(), None));
        }
        match self.script.pop_front().unwrap_or(Ok(())) {
            Ok(()) => Outcome::Accepted {
                reply: Reply::default(),
                took,
            },
            Err(failure) => Outcome::Failed(failure),
        }
    }
    fn origin(&self) -> &str {
        "h:80"
    }
}

pub fn failure(class: Class, retry_after: Option<Duration>) -> Result<(), Failure> {
    Err(Failure {
        class,
        retry_after,
        ..Failure::retryable("test".into())
    })
}

pub fn unavailable() -> Result<(), Failure> {
    failure(Class::Retryable, None)
}

pub struct Rig {
    pub clock: FakeClock,
    pub attempts: Rc<RefCell<Vec<(Duration, Duration)>>>,
    pub bodies: Rc<RefCell<Vec<String>>>,
    /// What the agent said (every line, debug too), since the last `said()`.
    pub lines: Rc<RefCell<Vec<Line>>>,
    pub statuses: Rc<RefCell<Vec<String>>>,
}

impl Rig {
    pub fn said(&self) -> Vec<Line> {
        self.lines.borrow_mut().drain(..).collect()
    }
    /// When each attempt started, in seconds from the start.
    pub fn times(&self) -> Vec<f64> {
        self.attempts
            .borrow()
            .iter()
            .map(|(at, _)| at.as_secs_f64())
            .collect()
    }
    pub fn budgets(&self) -> Vec<Duration> {
        self.attempts.borrow().iter().map(|(_, b)| *b).collect()
    }
}

pub static QUIET: std::sync::LazyLock<Notifier> = std::sync::LazyLock::new(Notifier::disabled);

/// An agent on a fake clock and a scripted server: `every` seconds,
/// a 5 s timeout, no splay, every attempt accepted at once, as the
/// service; each method changes one of these.
pub struct AgentSpec {
    interval: f64,
    timeout: f64,
    /// The splay draw (0..1) that sets the phase; None: no splay.
    unit: Option<f64>,
    script: Vec<Result<(), Failure>>,
    /// Fake seconds each attempt takes.
    took: f64,
    role: Role,
}

impl AgentSpec {
    pub fn every(interval: f64) -> AgentSpec {
        AgentSpec {
            interval,
            timeout: 5.0,
            unit: None,
            script: Vec::new(),
            took: 0.0,
            role: Role::Service,
        }
    }

    pub fn timeout(self, timeout: f64) -> AgentSpec {
        AgentSpec { timeout, ..self }
    }

    pub fn phase(self, unit: f64) -> AgentSpec {
        AgentSpec {
            unit: Some(unit),
            ..self
        }
    }

    /// The server's answers, in order; then it accepts everything.
    pub fn script(self, script: Vec<Result<(), Failure>>) -> AgentSpec {
        AgentSpec { script, ..self }
    }

    pub fn took(self, took: f64) -> AgentSpec {
        AgentSpec { took, ..self }
    }

    /// As `--once` and `run`.
    pub fn once(self) -> AgentSpec {
        AgentSpec {
            role: Role::Once,
            ..self
        }
    }

    pub fn build(self) -> (Agent<'static, FakeClock, FakeServer>, Rig) {
        let clock = FakeClock::default();
        let attempts = Rc::new(RefCell::new(Vec::new()));
        let bodies = Rc::new(RefCell::new(Vec::new()));
        let server = FakeServer {
            clock: clock.clone(),
            script: self.script.into(),
            took: S(self.took),
            attempts: attempts.clone(),
            bodies: bodies.clone(),
            refuse_pushes: false,
        };
        let lines = Rc::new(RefCell::new(Vec::new()));
        let statuses = Rc::new(RefCell::new(Vec::new()));
        let (heard, status) = (lines.clone(), statuses.clone());
        let voice: Voice = Box::new(move |said: Said| {
            heard.borrow_mut().extend(said.lines);
            status.borrow_mut().extend(said.status);
        });
        let agent = Agent::with_parts(
            Schedule::new(S(self.interval), self.unit),
            clock.clone(),
            server,
            &QUIET,
            Narrator::new(self.role, S(self.timeout), true),
            voice,
            fastrand::Rng::with_seed(7),
        );
        let rig = Rig {
            clock,
            attempts,
            bodies,
            lines,
            statuses,
        };
        (agent, rig)
    }
}

/// Checks that take `took` of fake time and pass or fail as scripted
/// (then pass); records the limit each run was given.
pub struct FakeGate {
    pub clock: FakeClock,
    pub took: Duration,
    pub script: VecDeque<bool>,
    pub report: bool,
    /// Every beat carries a metrics and a services push.
    pub pushes: bool,
    pub limits: Rc<RefCell<Vec<Duration>>>,
    /// The `answered` calls, in order.
    pub answered: Rc<RefCell<Vec<Endpoint>>>,
}

impl Gate for FakeGate {
    fn answered(&mut self, to: Endpoint) {
        self.answered.borrow_mut().push(to);
    }

    fn assess(&mut self, _now: Duration, limit: Duration, _alive: &dyn Fn()) -> Assessment {
        self.limits.borrow_mut().push(limit);
        self.clock.sleep(self.took.min(limit));
        let ok = self.script.pop_front().unwrap_or(true);
        let results = vec![crate::checks::CheckResult {
            name: "tcp db:5432".into(),
            ok,
            detail: if ok { "connected" } else { "refused" }.into(),
            took: None,
        }];
        let post = |to, body: &str| Post {
            to,
            body: body.into(),
        };
        let posts = if self.pushes {
            vec![
                post(Endpoint::Push(Push::Metrics), "metrics"),
                post(Endpoint::Push(Push::Services), "services"),
            ]
        } else if self.report {
            vec![post(Endpoint::Heartbeat, &format!("ok={ok}"))]
        } else {
            Vec::new()
        };
        Assessment {
            results,
            posts,
            withhold: !ok && !self.report && !self.pushes,
            as_service: self.pushes,
            left_out: Vec::new(),
        }
    }
}

pub fn gate(
    rig: &Rig,
    took: f64,
    script: Vec<bool>,
    report: bool,
) -> (Box<FakeGate>, Rc<RefCell<Vec<Duration>>>) {
    let limits = Rc::new(RefCell::new(Vec::new()));
    let gate = FakeGate {
        clock: rig.clock.clone(),
        took: S(took),
        script: script.into(),
        report,
        pushes: false,
        limits: limits.clone(),
        answered: Rc::default(),
    };
    (Box::new(gate), limits)
}

pub fn beats<C: Clock, T: Courier>(agent: &mut Agent<C, T>, n: usize) -> Vec<BeatEnd> {
    (0..n).map(|_| agent.next_beat()).collect()
}

pub fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}
