//! The heartbeat loop: keep the schedule, retry within a slot, and log only
//! what a person needs ("silent unless broken"). Time and the network come
//! in through [`Clock`] and [`Transport`], so every timing rule here is
//! unit-tested against a fake clock.

use std::time::Duration;

use crate::backoff::{self, Failed, Next};
use crate::checks::{self, Assessment, Gate};
use crate::classify::{Class, Failure};
use crate::clock::{Clock, format_duration, format_time_of_day};
use crate::config::Config;
use crate::heartbeat::{Outcome, Reply, Transport};
use crate::notify::Notifier;
use crate::schedule::Schedule;
use crate::text;

/// What the agent is run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The long-running service: a beat every interval.
    Service,
    /// `--once` (cron): one beat; routine lines drop to debug so cron mails
    /// only failures.
    Once,
}

/// How one beat ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeatEnd {
    pub delivered: bool,
    /// When the next beat is due, as an offset from the start.
    pub next: Duration,
}

pub struct Agent<'a, C: Clock, T: Transport> {
    clock: C,
    transport: T,
    schedule: Schedule,
    timeout: Duration,
    notifier: &'a Notifier,
    rng: fastrand::Rng,
    streak: Streak,
    /// The checks (and report body) before each beat; None costs nothing.
    gate: Option<Box<dyn Gate + 'a>>,
    failing: Failing,
    /// The body when no report replaces it, made once.
    body: String,
    role: Role,
    /// When the next beat is due, and the slot that ends its retries.
    due: Duration,
    deadline: Duration,
}

#[derive(Default)]
struct Streak {
    /// Consecutive failed attempts, across slots; drives the backoff.
    failures: u32,
    delivered_once: bool,
    /// When the current run of failures began (offset from start).
    down_since: Option<Duration>,
    /// Beats that did not land since `down_since`.
    missed: u64,
    /// This outage has been logged as one (it lasted long enough to matter).
    warned: bool,
    summary: Cadence,
    /// Short interruptions not worth a line each, summarised hourly.
    blips: Blips,
}

/// Interruptions that ended before they mattered (see [`matters`]).
#[derive(Default)]
struct Blips {
    count: u64,
    missed: u64,
    /// When the last summary was logged (or the agent started).
    since: Duration,
}

/// An outage matters, and is logged as a warning, once it has missed this
/// many beats in a row...
const WARN_AFTER_MISSED: u64 = 3;
/// ...or lasted this long, whichever comes first: a third of the 180 s
/// after which StackSense shows a box offline. A lossy link's single
/// missed beat, or one that needed a retry, is a debug line and counts
/// toward an hourly summary instead (at 30 s with half the packets lost,
/// that was hundreds of WARN/INFO pairs a day about blips the server never
/// noticed).
const WARN_AFTER_DOWN: Duration = Duration::from_secs(60);

/// Whether an outage that has missed `missed` beats over `down_for` (or
/// failed for a reason retrying cannot fix) is worth a warning.
fn matters(fatal: bool, missed: u64, down_for: Duration) -> bool {
    fatal || missed >= WARN_AFTER_MISSED || down_for >= WARN_AFTER_DOWN
}

/// Failing checks, while they fail.
#[derive(Default)]
struct Failing {
    since: Option<Duration>,
    /// The failing checks' names, to log again only when the set changes.
    names: Vec<String>,
    /// Beats withheld since `since`.
    withheld: u64,
    summary: Cadence,
}

/// How much of the `left` before the next slot the health checks may use:
/// all but the beat's share, which is its timeout or half of what is left,
/// whichever is less. A slow check then costs its own verdict, not the beat
/// (a 10 s `cmd` with 3 s left used to leave the beat 100 ms).
fn checks_share(left: Duration, timeout: Duration) -> Duration {
    left.saturating_sub(timeout.min(left / 2))
}

/// "Still failing" summaries come when the missed beats reach 10, 100,
/// 1,000, ... and at least this often: a day-long outage at 30 s logs
/// about 27 lines, not 2,880.
const SUMMARY_EVERY: Duration = Duration::from_secs(3600);
const FIRST_SUMMARY_AT: u64 = 10;

/// When the next "still ..." summary of a long outage is due.
#[derive(Default)]
struct Cadence {
    /// When the last line about the outage was logged.
    last: Option<Duration>,
    /// The count that earns the next summary.
    next_at: u64,
}

impl Cadence {
    /// The outage's first line was logged at `now`.
    fn start(&mut self, now: Duration) {
        self.last = Some(now);
        self.next_at = FIRST_SUMMARY_AT;
    }

    /// Whether `count` missed beats at `now` earn a summary (and if so,
    /// when the next one is due).
    fn due(&mut self, count: u64, now: Duration) -> bool {
        let hour_passed = self
            .last
            .is_none_or(|at| now.saturating_sub(at) >= SUMMARY_EVERY);
        if count < self.next_at && !hour_passed {
            return false;
        }
        while self.next_at <= count {
            self.next_at = self.next_at.saturating_mul(10);
        }
        self.last = Some(now);
        true
    }
}

impl<'a, C: Clock, T: Transport> Agent<'a, C, T> {
    pub fn new(
        config: &Config,
        clock: C,
        transport: T,
        notifier: &'a Notifier,
        role: Role,
    ) -> Agent<'a, C, T> {
        let mut rng = fastrand::Rng::new();
        let unit = config.splay.value.then(|| rng.f64());
        Agent::with_parts(
            Schedule::new(config.interval.value, unit),
            config.timeout.value,
            clock,
            transport,
            notifier,
            role,
            rng,
        )
    }

    fn with_parts(
        schedule: Schedule,
        timeout: Duration,
        clock: C,
        transport: T,
        notifier: &'a Notifier,
        role: Role,
        rng: fastrand::Rng,
    ) -> Agent<'a, C, T> {
        // Beat zero goes out at once and owns the time up to the first slot
        // at least half an interval away, so a small phase never sends two
        // beats back to back.
        let deadline = schedule.first_slot_at_or_after(schedule.interval() / 2);
        Agent {
            clock,
            transport,
            schedule,
            timeout,
            notifier,
            rng,
            streak: Streak::default(),
            gate: None,
            failing: Failing::default(),
            body: crate::body::default_body(),
            role,
            due: Duration::ZERO,
            deadline,
        }
    }

    /// Runs `gate` before every beat: its checks may withhold the beat or
    /// change its body.
    pub fn with_gate(mut self, gate: Box<dyn Gate + 'a>) -> Agent<'a, C, T> {
        self.gate = Some(gate);
        self
    }

    pub fn phase(&self) -> Duration {
        self.schedule.phase()
    }

    /// Beats forever; the signal thread ends the process.
    pub fn run(&mut self) -> ! {
        loop {
            self.next_beat();
        }
    }

    /// `--once`: one beat with retries bounded by one interval; true if it landed.
    pub fn once(&mut self) -> bool {
        self.beat(self.schedule.interval()).delivered
    }

    /// Waits until the next beat is due and sends it, with its retries.
    fn next_beat(&mut self) -> BeatEnd {
        self.wait_until(self.due);
        let now = self.clock.elapsed();
        if now >= self.deadline {
            // Slots at or after the deadline went by before we could even
            // start (a suspended VM, SIGSTOP): send one beat now, not a burst.
            let skipped = self
                .schedule
                .slots_in(self.deadline - Duration::from_nanos(1), now);
            log::warn!(
                "woke {} late (suspended or stopped?): {skipped} beat(s) skipped, not sent late",
                format_duration(now - self.due)
            );
            self.streak.missed += skipped;
            self.deadline = self.schedule.next_slot_after(now);
        }
        let end = self.beat(self.deadline);
        self.due = end.next;
        self.deadline = self.schedule.next_slot_after(end.next);
        end
    }

    /// Sends one beat, retrying until `deadline`.
    fn beat(&mut self, deadline: Duration) -> BeatEnd {
        // As a container's PID 1, zombies of processes whose parents died
        // (a check's `sleep &`, anything `exec` started) are ours to reap.
        if crate::process::adopts_orphans() {
            crate::process::reap_orphans();
        }
        let mut report = None;
        let mut checks_took = Duration::ZERO;
        if let Some(gate) = self.gate.as_mut() {
            self.notifier.watchdog();
            let notifier = self.notifier;
            let before = self.clock.elapsed();
            let limit = checks_share(deadline.saturating_sub(before), self.timeout);
            let assessment = gate.assess(limit, &|| notifier.watchdog());
            checks_took = self.clock.elapsed().saturating_sub(before);
            self.on_assessed(&assessment);
            if assessment.withhold {
                return BeatEnd {
                    delivered: false,
                    next: deadline,
                };
            }
            report = assessment.body;
        }
        let mut attempt = 1u32;
        loop {
            self.notifier.watchdog();
            let left = deadline.saturating_sub(self.clock.elapsed());
            let budget = self.timeout.min(left).max(backoff::MIN_ATTEMPT);
            let body = report.as_deref().unwrap_or(&self.body);
            match self.transport.send(budget, body) {
                Outcome::Accepted { reply, took } => {
                    self.on_delivered(&reply, took);
                    return BeatEnd {
                        delivered: true,
                        next: deadline,
                    };
                }
                Outcome::Failed(failure) => {
                    let now = self.clock.elapsed();
                    self.streak.failures = self.streak.failures.saturating_add(1);
                    self.streak.down_since.get_or_insert(now);
                    let failed = Failed {
                        now,
                        retryable: failure.class == Class::Retryable,
                        delay: backoff::retry_delay(self.streak.failures, self.rng.f64()),
                        retry_after: failure.retry_after,
                    };
                    let next = backoff::plan(&failed, deadline, |t| {
                        self.schedule.first_slot_at_or_after(t)
                    });
                    self.on_failed(&failure, next, attempt, now, budget, checks_took);
                    match next {
                        Next::RetryAt(at) => {
                            self.wait_until(at);
                            attempt += 1;
                        }
                        Next::Slot(slot) => {
                            // This beat, and the slots in [deadline, slot) a
                            // Retry-After holds back.
                            let held_back = self
                                .schedule
                                .slots_in(deadline.saturating_sub(Duration::from_nanos(1)), slot)
                                .saturating_sub(1);
                            self.streak.missed += 1 + held_back;
                            self.maybe_summarise(&failure, now);
                            return BeatEnd {
                                delivered: false,
                                next: slot,
                            };
                        }
                    }
                }
            }
        }
    }

    /// One line when checks start failing (or a different set fails), a
    /// summary now and then while beats are withheld, one line when all
    /// pass again.
    fn on_assessed(&mut self, assessment: &Assessment) {
        let now = self.clock.elapsed();
        let names: Vec<&str> = assessment.failing().map(|r| r.name.as_str()).collect();
        let f = &mut self.failing;
        if names.is_empty() {
            if let Some(since) = f.since {
                let withheld = match f.withheld {
                    0 => String::new(),
                    n => format!("; {n} heartbeat(s) were withheld"),
                };
                log::info!(
                    "all checks pass again after {}{withheld}",
                    format_duration(now.saturating_sub(since))
                );
            }
            *f = Failing::default();
            return;
        }
        let what = checks::describe_failing(&assessment.results);
        let outcome = if assessment.withhold {
            f.withheld += 1;
            "heartbeat withheld"
        } else {
            "reported as status \"fail\""
        };
        let since = *f.since.get_or_insert(now);
        if f.names != names || self.role == Role::Once {
            log::warn!("{what}; {outcome}");
            f.names = names.into_iter().map(str::to_string).collect();
            f.summary.start(now);
        } else if assessment.withhold && f.summary.due(f.withheld, now) {
            let withheld = f.withheld;
            log::warn!(
                "still withholding heartbeats since {}: {withheld} withheld; {what}",
                self.since(since, now)
            );
        }
        if assessment.withhold {
            self.notifier
                .status(&format!("withholding heartbeats: {what}"));
        }
    }

    fn on_delivered(&mut self, reply: &Reply, took: Duration) {
        let origin = self.transport.origin();
        // Built inside the log macros, so only when the line is shown: a
        // routine beat's debug line costs nothing at the default level.
        // The agent API's reply names no server (the token did); the
        // legacy one does.
        let server = || match (&reply.server_name, &reply.server_id) {
            (Some(name), _) => format!(": server \"{}\"", text::untrusted(name)),
            (None, Some(id)) => format!(": server id {}", text::untrusted(&id.to_string())),
            (None, None) => String::new(),
        };
        let now = self.clock.elapsed();
        let h = &mut self.streak;
        if let Some(since) = h.down_since.take() {
            let down_for = format_duration(now.saturating_sub(since));
            if h.warned {
                log::info!(
                    "heartbeat delivered again to {origin}: down for {down_for}, {} beat(s) missed",
                    h.missed
                );
            } else {
                log::debug!(
                    "heartbeat delivered again to {origin} after a short interruption: down \
                     for {down_for}, {} beat(s) missed",
                    h.missed
                );
                h.blips.count += 1;
                h.blips.missed += h.missed;
            }
        } else if !h.delivered_once && self.role == Role::Service {
            log::info!(
                "first heartbeat accepted by {origin}{} ({})",
                server(),
                format_duration(took)
            );
        } else {
            log::debug!(
                "heartbeat accepted by {origin}{} ({})",
                server(),
                format_duration(took)
            );
        }
        if h.blips.count > 0 && now.saturating_sub(h.blips.since) >= SUMMARY_EVERY {
            log::info!(
                "{} short interruption(s) of delivery in the last {} ({} beat(s) missed), \
                 each over within {} beats and {}",
                h.blips.count,
                format_duration(now.saturating_sub(h.blips.since)),
                h.blips.missed,
                WARN_AFTER_MISSED,
                format_duration(WARN_AFTER_DOWN)
            );
            h.blips = Blips {
                since: now,
                ..Blips::default()
            };
        }
        if reply.heartbeat_received == Some(false) {
            log::warn!(
                "{origin} answered 2xx but says heartbeat_received=false: it did not record the \
                 beat; check api_url and the token (legacy API: server_id)"
            );
        }
        h.failures = 0;
        h.missed = 0;
        h.warned = false;
        h.summary = Cadence::default();
        h.delivered_once = true;
        let failing = match self.failing.names.len() {
            0 => String::new(),
            n => format!(", reporting {n} failing check(s)"),
        };
        self.notifier.status(&format!(
            "last beat {} ok{failing}",
            format_time_of_day(self.clock.wall())
        ));
    }

    /// One line for the first failure of an outage (and, for `--once`,
    /// for the final outcome); the attempts in between are debug lines,
    /// and summaries come from [`Agent::maybe_summarise`].
    fn on_failed(
        &mut self,
        failure: &Failure,
        next: Next,
        attempt: u32,
        now: Duration,
        budget: Duration,
        checks_took: Duration,
    ) {
        let what_next = match next {
            Next::RetryAt(at) => format!(
                "retry {attempt} in {}",
                format_duration(at.saturating_sub(now))
            ),
            Next::Slot(_) if self.role == Role::Once => {
                format!("giving up after {attempt} attempt(s)")
            }
            Next::Slot(slot) => {
                format!("next beat in {}", format_duration(slot.saturating_sub(now)))
            }
        };
        let hint = failure
            .hint
            .as_deref()
            .map(|h| format!(" - {h}"))
            .unwrap_or_default();
        let cut = match () {
            _ if !failure.timed_out || budget >= self.timeout => String::new(),
            // What used the slot is named, with the numbers of this attempt.
            _ if !checks_took.is_zero() => format!(
                " (the attempt had {} of its {} timeout: the health checks took {} of the \
                 slot before the next beat)",
                format_duration(budget),
                format_duration(self.timeout),
                format_duration(checks_took)
            ),
            _ => format!(
                " (the attempt was cut to {} by the schedule: timeout {} is longer than the \
                 time left before the next beat)",
                format_duration(budget),
                format_duration(self.timeout)
            ),
        };
        let verb = match failure.class {
            Class::Retryable => "failed",
            Class::Fatal => "rejected",
        };
        let line = format!(
            "heartbeat {verb}: {}{cut}{hint}; {what_next}",
            failure.reason
        );
        let down_for = now.saturating_sub(self.streak.down_since.unwrap_or(now));
        let missed = self.streak.missed + u64::from(matches!(next, Next::Slot(_)));
        let fatal = failure.class == Class::Fatal;
        // The service says when an outage starts to matter; --once says how it ended.
        let shown = match self.role {
            Role::Service => !self.streak.warned && matters(fatal, missed, down_for),
            Role::Once => matches!(next, Next::Slot(_)),
        };
        let line = match (self.role, fatal) {
            (Role::Service, false) if shown => format!(
                "{line} (failing for {}, {missed} beat(s) missed)",
                format_duration(down_for)
            ),
            _ => line,
        };
        let level = match (shown, failure.class) {
            (false, _) => log::Level::Debug,
            (true, Class::Retryable) => log::Level::Warn,
            (true, Class::Fatal) => log::Level::Error,
        };
        log::log!(level, "{line}");
        if shown && self.role == Role::Service {
            self.streak.warned = true;
            self.streak.summary.start(now);
        }
        self.notifier.status(&format!(
            "failing since {} UTC: {}",
            format_time_of_day(self.clock.wall() - down_for),
            failure.reason
        ));
    }

    /// After a beat is given up: a "still failing" line when the missed
    /// count reaches the next power of ten, or an hour after the last line.
    fn maybe_summarise(&mut self, failure: &Failure, now: Duration) {
        if self.role == Role::Once || !self.streak.warned {
            return;
        }
        let h = &mut self.streak;
        if !h.summary.due(h.missed, now) {
            return;
        }
        let (since, missed) = (h.down_since.unwrap_or(now), h.missed);
        log::warn!(
            "still failing since {}: {missed} beat(s) missed; last error: {}",
            self.since(since, now),
            failure.reason
        );
    }

    /// `12:01:07 UTC (50m)`: when an outage that began at `since` began, and how long ago.
    fn since(&self, since: Duration, now: Duration) -> String {
        let ago = now.saturating_sub(since);
        format!(
            "{} UTC ({})",
            format_time_of_day(self.clock.wall() - ago),
            format_duration(ago)
        )
    }

    /// Sleeps until `at` (an offset from start), waking to feed the systemd
    /// watchdog when there is one.
    fn wait_until(&self, at: Duration) {
        loop {
            let now = self.clock.elapsed();
            if now >= at {
                return;
            }
            let mut nap = at - now;
            if let Some(every) = self.notifier.watchdog_every() {
                nap = nap.min(every);
            }
            self.clock.sleep(nap);
            self.notifier.watchdog();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    const S: fn(f64) -> Duration = Duration::from_secs_f64;

    /// A clock that moves only when the agent sleeps or a fake request
    /// takes time; `stall` makes one sleep overrun, as SIGSTOP would.
    #[derive(Clone, Default)]
    struct FakeClock {
        now: Rc<Cell<Duration>>,
        /// (at or after this time, the next sleep oversleeps by this much)
        stall: Rc<Cell<Option<(Duration, Duration)>>>,
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
    struct FakeServer {
        clock: FakeClock,
        script: VecDeque<Result<(), Failure>>,
        took: Duration,
        attempts: Rc<RefCell<Vec<(Duration, Duration)>>>,
        bodies: Rc<RefCell<Vec<String>>>,
    }

    impl Transport for FakeServer {
        fn send(&mut self, budget: Duration, body: &str) -> Outcome {
            let now = self.clock.elapsed();
            self.bodies.borrow_mut().push(body.to_string());
            self.attempts.borrow_mut().push((now, budget));
            let took = self.took.min(budget);
            self.clock.now.set(now + took);
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

    fn failure(class: Class, retry_after: Option<Duration>) -> Result<(), Failure> {
        Err(Failure {
            class,
            retry_after,
            ..Failure::retryable("test".into())
        })
    }

    fn unavailable() -> Result<(), Failure> {
        failure(Class::Retryable, None)
    }

    struct Rig {
        clock: FakeClock,
        attempts: Rc<RefCell<Vec<(Duration, Duration)>>>,
        bodies: Rc<RefCell<Vec<String>>>,
    }

    impl Rig {
        /// When each attempt started, in seconds from the start.
        fn times(&self) -> Vec<f64> {
            self.attempts
                .borrow()
                .iter()
                .map(|(at, _)| at.as_secs_f64())
                .collect()
        }
        fn budgets(&self) -> Vec<Duration> {
            self.attempts.borrow().iter().map(|(_, b)| *b).collect()
        }
    }

    static QUIET: std::sync::LazyLock<Notifier> = std::sync::LazyLock::new(Notifier::disabled);

    fn agent(
        interval: f64,
        timeout: f64,
        unit: Option<f64>,
        script: Vec<Result<(), Failure>>,
        took: f64,
        role: Role,
    ) -> (Agent<'static, FakeClock, FakeServer>, Rig) {
        let clock = FakeClock::default();
        let attempts = Rc::new(RefCell::new(Vec::new()));
        let bodies = Rc::new(RefCell::new(Vec::new()));
        let server = FakeServer {
            clock: clock.clone(),
            script: script.into(),
            took: S(took),
            attempts: attempts.clone(),
            bodies: bodies.clone(),
        };
        let agent = Agent::with_parts(
            Schedule::new(S(interval), unit),
            S(timeout),
            clock.clone(),
            server,
            &QUIET,
            role,
            fastrand::Rng::with_seed(7),
        );
        (
            agent,
            Rig {
                clock,
                attempts,
                bodies,
            },
        )
    }

    /// Checks that take `took` of fake time and pass or fail as scripted
    /// (then pass); records the limit each run was given.
    struct FakeGate {
        clock: FakeClock,
        took: Duration,
        script: VecDeque<bool>,
        report: bool,
        limits: Rc<RefCell<Vec<Duration>>>,
    }

    impl Gate for FakeGate {
        fn assess(&mut self, limit: Duration, _alive: &dyn Fn()) -> Assessment {
            self.limits.borrow_mut().push(limit);
            self.clock.sleep(self.took.min(limit));
            let ok = self.script.pop_front().unwrap_or(true);
            let results = vec![crate::body::CheckResult {
                name: "tcp db:5432".into(),
                ok,
                detail: if ok { "connected" } else { "refused" }.into(),
            }];
            Assessment {
                results,
                body: self.report.then(|| format!("ok={ok}")),
                withhold: !ok && !self.report,
            }
        }
    }

    fn gate(
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
            limits: limits.clone(),
        };
        (Box::new(gate), limits)
    }

    #[test]
    fn checks_leave_the_beat_its_timeout_or_half_the_slot() {
        let s = Duration::from_secs;
        assert_eq!(checks_share(s(30), s(10)), s(20));
        assert_eq!(checks_share(s(3), s(10)), Duration::from_millis(1500));
        assert_eq!(checks_share(s(30), s(60)), s(15));
        assert_eq!(checks_share(Duration::ZERO, s(10)), Duration::ZERO);
    }

    #[test]
    fn failing_checks_withhold_beats_in_their_slots_and_passing_ones_resume_them() {
        let (a, rig) = agent(10.0, 5.0, None, vec![], 0.1, Role::Service);
        let (g, limits) = gate(&rig, 1.0, vec![true, false, false, true], false);
        let mut a = a.with_gate(g);
        let ends = beats(&mut a, 5);
        let delivered: Vec<bool> = ends.iter().map(|e| e.delivered).collect();
        assert_eq!(delivered, [true, false, false, true, true]);
        // Checks at 0, 10, 20, 30, 40; a beat after each passing run, 1 s in.
        assert!(close(&rig.times(), &[1.0, 31.0, 41.0]), "{:?}", rig.times());
        assert_eq!(a.failing.since, None, "recovered");
        assert_eq!(
            a.streak.missed, 0,
            "withheld beats are not delivery failures"
        );
        // Each run may take the slot less the beat's share: its 5 s timeout.
        assert_eq!(limits.borrow()[1], S(5.0));
        assert!(rig.budgets().iter().all(|b| *b == S(5.0)));
        assert!(
            rig.bodies
                .borrow()
                .iter()
                .all(|b| b == &crate::body::default_body())
        );
    }

    #[test]
    fn slow_checks_shorten_the_beat_not_the_schedule() {
        let (a, rig) = agent(2.0, 10.0, None, vec![], 0.0, Role::Service);
        let (g, _) = gate(&rig, 1.5, vec![], false);
        let mut a = a.with_gate(g);
        beats(&mut a, 3);
        // Checks that would take 1.5 s of a 2 s slot get 1 s: the beat keeps
        // half the slot (less than its 10 s timeout).
        assert!(close(&rig.times(), &[1.0, 3.0, 5.0]), "{:?}", rig.times());
        assert_eq!(rig.budgets()[1], S(1.0));
    }

    #[test]
    fn with_reporting_a_failing_check_changes_the_body_not_the_beat() {
        let (a, rig) = agent(10.0, 5.0, None, vec![], 0.1, Role::Service);
        let (g, _) = gate(&rig, 0.0, vec![false, true], true);
        let mut a = a.with_gate(g);
        let ends = beats(&mut a, 2);
        assert!(ends.iter().all(|e| e.delivered));
        assert_eq!(*rig.bodies.borrow(), ["ok=false", "ok=true"]);
    }

    #[test]
    fn a_long_check_failure_is_summarised_like_a_long_outage() {
        let (a, rig) = agent(1.0, 0.5, None, vec![], 0.0, Role::Service);
        let (g, _) = gate(&rig, 0.0, vec![false; 150], false);
        let mut a = a.with_gate(g);
        let mut summaries = 0;
        for _ in 0..150 {
            let before = a.failing.summary.last;
            a.next_beat();
            if a.failing.summary.last != before {
                summaries += 1;
            }
        }
        // The first line, then at 10 and 100 withheld beats.
        assert_eq!(summaries, 3);
        assert_eq!(a.failing.withheld, 150);
        assert!(rig.times().is_empty());
    }

    fn beats<C: Clock, T: Transport>(agent: &mut Agent<C, T>, n: usize) -> Vec<BeatEnd> {
        (0..n).map(|_| agent.next_beat()).collect()
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn beat_zero_is_at_start_then_beats_follow_the_phase_grid() {
        // Phase 2.5 s of 10: beat zero at 0, the next slot at least 5 s on is 12.5.
        let (mut a, rig) = agent(10.0, 5.0, Some(0.25), vec![], 0.2, Role::Service);
        let ends = beats(&mut a, 4);
        assert!(ends.iter().all(|e| e.delivered));
        assert!(
            close(&rig.times(), &[0.0, 12.5, 22.5, 32.5]),
            "{:?}",
            rig.times()
        );
    }

    #[test]
    fn a_small_phase_never_sends_two_beats_back_to_back() {
        let (mut a, rig) = agent(10.0, 5.0, Some(0.01), vec![], 0.0, Role::Service);
        beats(&mut a, 3);
        assert!(close(&rig.times(), &[0.0, 10.1, 20.1]), "{:?}", rig.times());
    }

    #[test]
    fn slow_replies_do_not_drift_the_schedule() {
        let (mut a, rig) = agent(1.0, 10.0, None, vec![], 0.3, Role::Service);
        beats(&mut a, 6);
        assert!(
            close(&rig.times(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
            "{:?}",
            rig.times()
        );
    }

    #[test]
    fn retries_back_off_within_the_slot_then_the_grid_resumes() {
        let (mut a, rig) = agent(
            30.0,
            5.0,
            None,
            vec![unavailable(), unavailable()],
            0.0,
            Role::Service,
        );
        let ends = beats(&mut a, 2);
        assert_eq!(
            ends[0],
            BeatEnd {
                delivered: true,
                next: S(30.0)
            }
        );
        let t = rig.times();
        assert_eq!(t.len(), 4, "{t:?}");
        assert!((0.5..1.5).contains(&(t[1] - t[0])), "first retry {t:?}");
        assert!((1.0..3.0).contains(&(t[2] - t[1])), "second retry {t:?}");
        assert_eq!(t[3], 30.0);
        assert_eq!(a.streak.failures, 0);
        assert_eq!(
            a.streak.missed, 0,
            "retries that land within the slot miss nothing"
        );
    }

    #[test]
    fn a_fatal_failure_waits_for_the_next_slot_and_counts_as_missed() {
        let (mut a, rig) = agent(
            30.0,
            5.0,
            None,
            vec![failure(Class::Fatal, None)],
            0.0,
            Role::Service,
        );
        let end = a.next_beat();
        assert_eq!(
            end,
            BeatEnd {
                delivered: false,
                next: S(30.0)
            }
        );
        assert_eq!(a.streak.missed, 1);
        a.next_beat();
        assert!(close(&rig.times(), &[0.0, 30.0]));
        assert_eq!(a.streak.missed, 0, "reset once a beat lands");
    }

    #[test]
    fn retry_after_past_the_next_slot_holds_back_slots_and_counts_them() {
        let (mut a, rig) = agent(
            30.0,
            5.0,
            None,
            vec![failure(Class::Retryable, Some(S(70.0)))],
            0.0,
            Role::Service,
        );
        let end = a.next_beat();
        assert_eq!(end.next, S(90.0));
        // Beat zero and the held-back slots at 30 and 60.
        assert_eq!(a.streak.missed, 3);
        a.next_beat();
        assert!(close(&rig.times(), &[0.0, 90.0]), "{:?}", rig.times());
    }

    #[test]
    fn retry_after_within_the_slot_is_honoured() {
        let (mut a, rig) = agent(
            30.0,
            5.0,
            None,
            vec![failure(Class::Retryable, Some(S(4.0)))],
            0.0,
            Role::Service,
        );
        a.next_beat();
        let t = rig.times();
        assert!(t[1] >= 4.0 && t[1] < 6.0, "{t:?}");
    }

    #[test]
    fn a_late_wake_skips_slots_instead_of_bunching_them() {
        let (mut a, rig) = agent(1.0, 0.5, None, vec![], 0.0, Role::Service);
        beats(&mut a, 2);
        // The sleep towards the slot at 2 s overruns by 3.5 s (SIGSTOP).
        rig.clock.stall.set(Some((S(2.0), S(3.5))));
        // Woke at 5.5: slots 3, 4, 5 went by; one beat now, the grid after.
        beats(&mut a, 3);
        assert!(
            close(&rig.times(), &[0.0, 1.0, 5.5, 6.0, 7.0]),
            "{:?}",
            rig.times()
        );
    }

    #[test]
    fn an_attempt_gets_no_more_than_the_time_left_before_the_next_slot() {
        // A 10 s timeout at a 1 s interval: each attempt is cut to the slot.
        let (mut a, rig) = agent(1.0, 10.0, None, vec![], 0.0, Role::Service);
        beats(&mut a, 3);
        assert!(
            rig.budgets().iter().all(|b| *b <= S(1.0)),
            "{:?}",
            rig.budgets()
        );
        // And never below the minimum worth starting.
        let (mut a, rig) = agent(30.0, 0.01, None, vec![], 0.0, Role::Service);
        a.next_beat();
        assert_eq!(rig.budgets(), [backoff::MIN_ATTEMPT]);
    }

    #[test]
    fn in_a_long_outage_each_slot_gets_one_attempt() {
        let script = (0..200).map(|_| unavailable()).collect();
        let (mut a, rig) = agent(30.0, 5.0, None, script, 0.0, Role::Service);
        beats(&mut a, 20);
        let late: Vec<f64> = rig.times().into_iter().filter(|t| *t >= 300.0).collect();
        // Once the backoff passes the interval, only the scheduled beats go out.
        assert!(
            close(
                &late,
                &[
                    300.0, 330.0, 360.0, 390.0, 420.0, 450.0, 480.0, 510.0, 540.0, 570.0
                ]
            ),
            "{late:?}"
        );
        assert_eq!(a.streak.missed, 20);
    }

    thread_local! {
        static LINES: RefCell<Vec<(log::Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    /// Collects log lines per test thread, so parallel tests see only their own.
    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            LINES.with(|l| {
                l.borrow_mut()
                    .push((record.level(), record.args().to_string()))
            });
        }
        fn flush(&self) {}
    }

    /// This thread's log lines since the last call (the first call installs the logger).
    fn logged() -> Vec<(log::Level, String)> {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            let _ = log::set_logger(&Capture);
            log::set_max_level(log::LevelFilter::Trace);
        });
        LINES.with(|l| l.borrow_mut().drain(..).collect())
    }

    fn shown(lines: &[(log::Level, String)]) -> Vec<&str> {
        lines
            .iter()
            .filter(|(level, _)| *level <= log::Level::Info)
            .map(|(_, line)| line.as_str())
            .collect()
    }

    #[test]
    fn a_lossy_link_logs_an_hourly_summary_not_a_line_per_blip() {
        logged();
        // Every third beat needs one retry, every seventh is lost altogether:
        // a flaky LTE link, for three hours at 30 s.
        let mut script = Vec::new();
        for beat in 0..360 {
            if beat % 7 == 3 {
                // Five attempts fill a 30 s slot (backoff 1, 2, 4, 8, 16 s).
                script.extend(vec![unavailable(); 5]);
            } else if beat % 3 == 1 {
                script.push(unavailable());
            }
            script.push(Ok(()));
        }
        let (mut a, rig) = agent(30.0, 5.0, None, script, 0.0, Role::Service);
        while rig.clock.elapsed() < S(3.0 * 3600.0) {
            a.next_beat();
        }
        let lines = logged();
        let loud = shown(&lines);
        let warnings = lines.iter().filter(|(l, _)| *l <= log::Level::Warn).count();
        assert_eq!(warnings, 0, "{loud:#?}");
        let summaries: Vec<&&str> = loud
            .iter()
            .filter(|l| l.contains("short interruption"))
            .collect();
        assert!((2..=3).contains(&summaries.len()), "{loud:#?}");
        assert!(summaries[0].contains("beat(s) missed"), "{}", summaries[0]);
    }

    #[test]
    fn an_outage_is_a_warning_once_it_misses_three_beats_or_a_minute() {
        // At 2 s three missed beats come first; at 30 s the minute does.
        for (interval, says) in [(2.0, "3 beat(s) missed)"), (30.0, "(failing for 1m,")] {
            logged();
            let script = vec![unavailable(); 200];
            let (mut a, rig) = agent(interval, 1.0, None, script, 0.0, Role::Service);
            let mut ends = Vec::new();
            while ends.len() < 6 && rig.clock.elapsed() < S(600.0) {
                ends.push(a.next_beat());
                if !logged_loud_is_empty() {
                    break;
                }
            }
            let lines = logged();
            let loud = shown(&lines);
            assert_eq!(loud.len(), 1, "{interval}: {loud:#?}");
            assert!(
                loud[0].starts_with("heartbeat failed: test;"),
                "{}",
                loud[0]
            );
            assert!(loud[0].contains(says), "{interval}: {}", loud[0]);
        }
    }

    /// Whether anything at info or above was logged since the last `logged()`,
    /// without taking the lines.
    fn logged_loud_is_empty() -> bool {
        LINES.with(|l| {
            l.borrow()
                .iter()
                .all(|(level, _)| *level > log::Level::Info)
        })
    }

    #[test]
    fn a_day_long_outage_logs_a_few_lines_not_one_per_beat() {
        logged();
        let script = (0..20_000).map(|_| unavailable()).collect();
        let (mut a, rig) = agent(30.0, 5.0, None, script, 0.0, Role::Service);
        while rig.clock.elapsed() < S(86_400.0) {
            a.next_beat();
        }
        let lines = logged();
        let loud = shown(&lines);
        assert!(
            (20..=30).contains(&loud.len()),
            "{} lines: {loud:#?}",
            loud.len()
        );
        assert!(
            loud[0].starts_with("heartbeat failed: test;"),
            "{}",
            loud[0]
        );
        assert!(
            loud[1].starts_with("still failing since 00:00:00 UTC (4m"),
            "{}",
            loud[1]
        );
        assert!(
            loud[1].contains(": 10 beat(s) missed; last error: test"),
            "{}",
            loud[1]
        );
        assert!(loud[2].contains(": 100 beat(s) missed"), "{}", loud[2]);
        // Then at least hourly: no gap between lines over an hour of beats.
        assert!(
            loud.iter()
                .skip(3)
                .all(|l| l.starts_with("still failing since 00:00:00 UTC"))
        );

        // Recovery is one line, and a new outage starts the cadence again.
        let (mut a, rig) = agent(30.0, 5.0, None, vec![unavailable(); 30], 0.0, Role::Service);
        // 30 failed attempts miss 10+ beats: first line, one summary, recovery.
        while rig.clock.elapsed() < S(1200.0) {
            a.next_beat();
        }
        let lines = logged();
        let loud = shown(&lines);
        assert_eq!(loud.len(), 3, "{loud:#?}");
        assert!(
            loud[2].starts_with("heartbeat delivered again to h:80: down for"),
            "{}",
            loud[2]
        );
    }

    #[test]
    fn once_logs_only_its_final_outcome() {
        logged();
        let script = (0..50).map(|_| unavailable()).collect();
        let (mut a, _) = agent(3.0, 1.0, None, script, 0.0, Role::Once);
        a.once();
        let lines = logged();
        let loud = shown(&lines);
        assert_eq!(loud.len(), 1, "{lines:#?}");
        assert!(loud[0].contains("giving up after"), "{}", loud[0]);
        assert!(lines.len() > 1, "the attempts are there at debug level");
        let (mut a, _) = agent(3.0, 1.0, None, vec![], 0.0, Role::Once);
        a.once();
        assert!(shown(&logged()).is_empty(), "success is silent");
    }

    #[test]
    fn a_timeout_cut_by_the_schedule_says_so() {
        logged();
        let timeout = Err(Failure {
            timed_out: true,
            ..Failure::retryable("no answer from h:80 within 1s".into())
        });
        let (mut a, _) = agent(1.0, 10.0, None, vec![timeout], 0.0, Role::Service);
        a.next_beat();
        let lines = logged();
        // A single blip is a debug line; its words are what is checked.
        assert!(
            lines.iter().any(|(_, l)| l
                .contains("(the attempt was cut to 1s by the schedule: timeout 10s")),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_server_name_cannot_forge_a_line() {
        logged();
        let (mut a, _) = agent(30.0, 5.0, None, vec![], 0.0, Role::Service);
        a.on_delivered(
            &Reply {
                server_name: Some("Box\n<0>EMERGENCY \u{1b}[2J".into()),
                ..Reply::default()
            },
            S(0.01),
        );
        let lines = logged();
        assert!(
            lines[0]
                .1
                .contains("server \"Box\\n<0>EMERGENCY \\u{1b}[2J\""),
            "{lines:#?}"
        );
    }

    #[test]
    fn once_retries_within_one_interval_then_gives_up() {
        let script = (0..50).map(|_| unavailable()).collect();
        let (mut a, rig) = agent(3.0, 1.0, None, script, 0.0, Role::Once);
        assert!(!a.once());
        let t = rig.times();
        assert!(t.len() >= 2, "{t:?}");
        assert!(t.iter().all(|t| *t < 3.0), "{t:?}");
        assert!(rig.clock.elapsed() < S(3.0));

        let (mut a, _) = agent(3.0, 1.0, None, vec![], 0.0, Role::Once);
        assert!(a.once());
    }
}
