//! The heartbeat loop: keep the schedule, retry within a slot, and log only
//! what a person needs ("silent unless broken").

use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::backoff::{self, Failed, Next};
use crate::classify::{Class, Failure, Reply};
use crate::clock::{format_duration, format_time_of_day};
use crate::config::Config;
use crate::heartbeat::{Client, Outcome};
use crate::notify::Notifier;
use crate::schedule::Schedule;

pub struct Agent<'a> {
    client: Client,
    schedule: Schedule,
    timeout: Duration,
    notifier: &'a Notifier,
    rng: fastrand::Rng,
    start: Instant,
    health: Health,
    /// `--once`: routine lines drop to debug so cron mails only failures.
    once: bool,
}

#[derive(Default)]
struct Health {
    /// Consecutive failed attempts, across slots; drives the backoff.
    failures: u32,
    delivered_once: bool,
    /// When the current run of failures began.
    down_since: Option<Instant>,
    /// Beats that did not land since `down_since`.
    missed: u64,
}

impl<'a> Agent<'a> {
    pub fn new(config: &Config, notifier: &'a Notifier, once: bool) -> Agent<'a> {
        let mut rng = fastrand::Rng::new();
        let unit = config.splay.value.then(|| rng.f64());
        Agent {
            client: Client::new(config),
            schedule: Schedule::new(config.interval.value, unit),
            timeout: config.timeout.value,
            notifier,
            rng,
            start: Instant::now(),
            health: Health::default(),
            once,
        }
    }

    pub fn phase(&self) -> Duration {
        self.schedule.phase()
    }

    /// Beats forever; the signal thread ends the process.
    pub fn run(&mut self) -> ! {
        // Beat zero goes out now and owns the time up to the first slot at
        // least half an interval away, so a small phase never sends two beats
        // back to back.
        let mut deadline = self
            .schedule
            .first_slot_at_or_after(self.schedule.interval() / 2);
        let mut due = Duration::ZERO;
        loop {
            self.wait_until(due);
            let now = self.elapsed();
            if now >= deadline {
                // Slots at or after the deadline went by before we could even
                // start (a suspended VM, SIGSTOP): send one beat now, not a burst.
                let skipped = self
                    .schedule
                    .slots_in(deadline - Duration::from_nanos(1), now);
                log::warn!(
                    "woke {} late (suspended or stopped?): {skipped} beat(s) skipped, not sent late",
                    format_duration(now - due)
                );
                self.health.missed += skipped;
                deadline = self.schedule.next_slot_after(now);
            }
            let (Ok(next) | Err(next)) = self.beat(deadline);
            due = next;
            deadline = self.schedule.next_slot_after(due);
        }
    }

    /// One beat with retries bounded by one interval; true if it landed.
    pub fn once(&mut self) -> bool {
        self.beat(self.schedule.interval()).is_ok()
    }

    /// Sends one beat, retrying until `deadline`. Ok(slot) when it landed, Err(slot) when it did
    /// not; either way `slot` is when the next beat is due.
    fn beat(&mut self, deadline: Duration) -> Result<Duration, Duration> {
        let mut attempt = 1u32;
        loop {
            self.notifier.watchdog();
            let budget = self.timeout.min(deadline.saturating_sub(self.elapsed()));
            let budget = budget.max(backoff::MIN_ATTEMPT);
            match self.client.send(budget) {
                Outcome::Accepted { reply, took } => {
                    self.on_delivered(&reply, took);
                    return Ok(deadline);
                }
                Outcome::Failed(failure) => {
                    self.health.failures = self.health.failures.saturating_add(1);
                    self.health.down_since.get_or_insert_with(Instant::now);
                    let failed = Failed {
                        now: self.elapsed(),
                        retryable: failure.class == Class::Retryable,
                        delay: backoff::retry_delay(self.health.failures, self.rng.f64()),
                        retry_after: failure.retry_after,
                    };
                    let next = backoff::plan(&failed, deadline, |t| {
                        self.schedule.first_slot_at_or_after(t)
                    });
                    self.on_failed(&failure, next, attempt, failed.now);
                    match next {
                        Next::RetryAt(at) => {
                            self.wait_until(at);
                            attempt += 1;
                        }
                        Next::Slot(slot) => {
                            // This beat, and any slots a Retry-After holds back.
                            let held_back =
                                self.schedule.slots_in(deadline, slot).saturating_sub(1);
                            self.health.missed += 1 + held_back;
                            return Err(slot);
                        }
                    }
                }
            }
        }
    }

    fn on_delivered(&mut self, reply: &Reply, took: Duration) {
        let origin = self.client.origin();
        let server = match (&reply.server_name, &reply.server_id) {
            (Some(name), _) => format!("\"{name}\""),
            (None, Some(id)) => format!("id {id}"),
            (None, None) => "(no name in reply)".into(),
        };
        let h = &mut self.health;
        if let Some(since) = h.down_since.take() {
            log::info!(
                "heartbeat delivered again to {origin}: down for {}, {} beat(s) missed",
                format_duration(since.elapsed()),
                h.missed
            );
        } else if !h.delivered_once && !self.once {
            log::info!(
                "first heartbeat accepted by {origin}: server {server} ({})",
                format_duration(took)
            );
        } else {
            log::debug!(
                "heartbeat accepted by {origin}: server {server} ({})",
                format_duration(took)
            );
        }
        if reply.heartbeat_received == Some(false) {
            log::warn!("{origin} answered 2xx but says heartbeat_received=false; check server_id");
        }
        h.failures = 0;
        h.missed = 0;
        h.delivered_once = true;
        self.notifier.status(&format!(
            "last beat {} ok",
            format_time_of_day(SystemTime::now())
        ));
    }

    fn on_failed(&self, failure: &Failure, next: Next, attempt: u32, now: Duration) {
        let what_next = match next {
            Next::RetryAt(at) => format!(
                "retry {attempt} in {}",
                format_duration(at.saturating_sub(now))
            ),
            Next::Slot(_) if self.once => "giving up".into(),
            Next::Slot(slot) => {
                format!("next beat in {}", format_duration(slot.saturating_sub(now)))
            }
        };
        let hint = failure.hint.map(|h| format!(" - {h}")).unwrap_or_default();
        match failure.class {
            Class::Retryable => {
                log::warn!("heartbeat failed: {}{hint}; {what_next}", failure.reason)
            }
            Class::Fatal => {
                log::error!("heartbeat rejected: {}{hint}; {what_next}", failure.reason)
            }
        }
        let since = self
            .health
            .down_since
            .map(|d| SystemTime::now() - d.elapsed())
            .unwrap_or_else(SystemTime::now);
        self.notifier.status(&format!(
            "failing since {} UTC: {}",
            format_time_of_day(since),
            failure.reason
        ));
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Sleeps until `at` (an offset from start), waking to feed the systemd
    /// watchdog when there is one.
    fn wait_until(&self, at: Duration) {
        loop {
            let now = self.elapsed();
            if now >= at {
                return;
            }
            let mut nap = at - now;
            if let Some(every) = self.notifier.watchdog_every() {
                nap = nap.min(every);
            }
            thread::sleep(nap);
            self.notifier.watchdog();
        }
    }
}
