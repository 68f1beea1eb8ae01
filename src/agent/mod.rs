//! The heartbeat loop: keep the schedule and retry within a slot. Time and
//! the network come in through [`Clock`] and [`Courier`], so every timing
//! rule here is unit-tested against a fake clock; what to say about it is
//! narrate/'s, and this loop only passes its words on.

use std::collections::VecDeque;
use std::time::Duration;

use crate::backoff::{self, Failed, Next};
use crate::classify::Class;
use crate::clock::Clock;
use crate::config::Config;
use crate::heartbeat::{Courier, Outcome};
use crate::narrate::{At, Attempt, Narrator, Said};
use crate::notify::Notifier;
use crate::push::Gate;
use crate::push::{Endpoint, Post};
use crate::schedule::Schedule;

pub use crate::narrate::Role;

/// How one beat ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeatEnd {
    pub delivered: bool,
    /// When the next beat is due, as an offset from the start.
    pub next: Duration,
}

/// Where the narration goes: the log and the service manager's status
/// (tests keep it).
pub type Voice<'a> = Box<dyn FnMut(Said) + 'a>;

pub struct Agent<'a, C: Clock, T: Courier> {
    clock: C,
    transport: T,
    schedule: Schedule,
    timeout: Duration,
    notifier: &'a Notifier,
    rng: fastrand::Rng,
    /// Consecutive failed attempts, across slots; drives the backoff.
    failures: u32,
    narrator: Narrator,
    voice: Voice<'a>,
    /// The checks (and report body) before each beat; None costs nothing.
    gate: Option<Box<dyn Gate + 'a>>,
    /// The beat when no push or report replaces it, made once.
    heartbeat: Post,
    /// When the next beat is due, and the slot that ends its retries.
    due: Duration,
    deadline: Duration,
}

/// How much of the `left` before the next slot the health checks may use:
/// all but the beat's share, which is its timeout or half of what is left,
/// whichever is less. A slow check then costs its own verdict, not the beat
/// (a 10 s `cmd` with 3 s left used to leave the beat 100 ms).
fn checks_share(left: Duration, timeout: Duration) -> Duration {
    left.saturating_sub(timeout.min(left / 2))
}

/// The narration logged, and its status text given to the service manager.
fn log_and_notify(notifier: &Notifier) -> Voice<'_> {
    Box::new(move |said: Said| {
        for line in said.lines {
            log::log!(line.level, "{}", line.text);
        }
        if let Some(status) = said.status {
            notifier.status(&status);
        }
    })
}

impl<'a, C: Clock, T: Courier> Agent<'a, C, T> {
    pub fn new(
        config: &Config,
        clock: C,
        transport: T,
        notifier: &'a Notifier,
        role: Role,
    ) -> Agent<'a, C, T> {
        let mut rng = fastrand::Rng::new();
        let unit = config.settings.splay.value.then(|| rng.f64());
        let timeout = config.settings.timeout.value;
        let verbose = log::log_enabled!(log::Level::Debug);
        Agent::with_parts(
            Schedule::new(config.settings.interval.value, unit),
            clock,
            transport,
            notifier,
            Narrator::new(role, timeout, verbose),
            log_and_notify(notifier),
            rng,
        )
    }

    fn with_parts(
        schedule: Schedule,
        clock: C,
        transport: T,
        notifier: &'a Notifier,
        narrator: Narrator,
        voice: Voice<'a>,
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
            timeout: narrator.timeout(),
            notifier,
            rng,
            failures: 0,
            narrator,
            voice,
            gate: None,
            heartbeat: Post::heartbeat(),
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
            let said = self.narrator.woke_late(now - self.due, skipped);
            (self.voice)(said);
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
        let mut posts = VecDeque::new();
        let mut checks_took = Duration::ZERO;
        if let Some(gate) = self.gate.as_mut() {
            self.notifier.watchdog();
            let notifier = self.notifier;
            let before = self.clock.elapsed();
            let limit = checks_share(deadline.saturating_sub(before), self.timeout);
            let assessment = gate.assess(before, limit, &|| notifier.watchdog());
            checks_took = self.clock.elapsed().saturating_sub(before);
            let said = self.narrator.assessed(&assessment, self.at());
            (self.voice)(said);
            if assessment.withhold {
                return BeatEnd {
                    delivered: false,
                    next: deadline,
                };
            }
            posts = assessment.posts.into();
        }
        // None: the plain heartbeat, made once at start.
        let mut carrying = posts.pop_front();
        let mut attempt = 1u32;
        loop {
            self.notifier.watchdog();
            let left = deadline.saturating_sub(self.clock.elapsed());
            let budget = self.timeout.min(left).max(backoff::MIN_ATTEMPT);
            let beat = carrying.as_ref().unwrap_or(&self.heartbeat);
            let to = beat.to;
            match self.transport.send(budget, beat) {
                Outcome::Accepted { reply, took } => {
                    self.failures = 0;
                    self.answered(to);
                    let origin = self.transport.origin();
                    let mut said = self.narrator.delivered(origin, &reply, took, self.at());
                    said.lines.extend(self.narrator.pushed(to, &reply).lines);
                    (self.voice)(said);
                    self.send_the_rest(posts, deadline);
                    return BeatEnd {
                        delivered: true,
                        next: deadline,
                    };
                }
                Outcome::Refused(failure) => {
                    // The server refused the push's body, not the box: the
                    // beat goes on at once, as the next push or a heartbeat.
                    self.answered(to);
                    carrying = posts.pop_front();
                    let next = carrying.as_ref().map_or(Endpoint::Heartbeat, |p| p.to);
                    let said = self.narrator.refused(to, &failure, Some(next));
                    (self.voice)(said);
                }
                Outcome::Failed(failure) => {
                    let now = self.clock.elapsed();
                    self.failures = self.failures.saturating_add(1);
                    let failed = Failed {
                        now,
                        retryable: failure.class == Class::Retryable,
                        delay: backoff::retry_delay(self.failures, self.rng.f64()),
                        retry_after: failure.retry_after,
                    };
                    let next = backoff::plan(&failed, deadline, |t| {
                        self.schedule.first_slot_at_or_after(t)
                    });
                    let at = self.at();
                    let tried = Attempt {
                        failure: &failure,
                        next,
                        number: attempt,
                        budget,
                        checks_took,
                    };
                    let said = self.narrator.failed(&tried, at);
                    (self.voice)(said);
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
                            let said = self.narrator.gave_up(&failure, 1 + held_back, at);
                            (self.voice)(said);
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

    /// The pushes after the one that carried the beat: one attempt each in
    /// what is left of the slot. One that fails stays due, so the next
    /// beat carries it: the beat landed, and a retry now would only race
    /// the next slot.
    fn send_the_rest(&mut self, posts: VecDeque<Post>, deadline: Duration) {
        for post in posts {
            let left = deadline.saturating_sub(self.clock.elapsed());
            if left < backoff::MIN_ATTEMPT {
                return;
            }
            self.notifier.watchdog();
            let outcome = self.transport.send(self.timeout.min(left), &post);
            let said = match outcome {
                Outcome::Accepted { reply, .. } => {
                    self.answered(post.to);
                    self.narrator.pushed(post.to, &reply)
                }
                Outcome::Refused(failure) => {
                    self.answered(post.to);
                    self.narrator.refused(post.to, &failure, None)
                }
                Outcome::Failed(failure) => self.narrator.push_failed(post.to, &failure),
            };
            (self.voice)(said);
        }
    }

    fn answered(&mut self, to: Endpoint) {
        if let Some(gate) = self.gate.as_mut() {
            gate.answered(to);
        }
    }

    fn at(&self) -> At {
        At {
            now: self.clock.elapsed(),
            wall: self.clock.wall(),
        }
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
mod tests;
