//! What the agent says about delivery, and when: an outage is a line once
//! it matters, then summaries at a falling cadence, then one line on
//! recovery; failing checks likewise. Pure: each method takes what happened
//! and when, and returns the lines and the status text for systemd; the
//! loop (agent/mod.rs) logs and notifies them. "Silent unless broken."

mod pushes;

use std::time::{Duration, SystemTime};

use crate::backoff::Next;
use crate::checks;
use crate::classify::{Class, Failure};
use crate::clock::{format_duration, format_time_of_day};
use crate::heartbeat::Reply;
use crate::push::Assessment;
use crate::push::Endpoint;
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

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub level: log::Level,
    pub text: String,
}

/// What to say about one event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Said {
    pub lines: Vec<Line>,
    /// The new status text for the service manager.
    pub status: Option<String>,
}

/// When something happened: as an offset from the start (for durations)
/// and by the wall clock (for "since 12:01:07 UTC").
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub now: Duration,
    pub wall: SystemTime,
}

/// A failed attempt at a beat, as the loop saw it.
pub struct Attempt<'f> {
    pub failure: &'f Failure,
    /// What the loop does next.
    pub next: Next,
    /// 1 for the first attempt at this beat.
    pub number: u32,
    /// The time the attempt was given.
    pub budget: Duration,
    /// What the health checks took of the slot before it.
    pub checks_took: Duration,
}

/// An outage matters, and is logged as a warning, once it has missed this
/// many beats in a row...
pub const WARN_AFTER_MISSED: u64 = 3;
/// ...or lasted this long, whichever comes first: a third of the 180 s
/// after which StackSense shows a box offline. A lossy link's single
/// missed beat, or one that needed a retry, is a debug line and counts
/// toward an hourly summary instead (at 30 s with half the packets lost,
/// that was hundreds of WARN/INFO pairs a day about blips the server never
/// noticed).
pub const WARN_AFTER_DOWN: Duration = Duration::from_secs(60);

/// Whether an outage that has missed `missed` beats over `down_for` (or
/// failed for a reason retrying cannot fix) is worth a warning.
fn matters(fatal: bool, missed: u64, down_for: Duration) -> bool {
    fatal || missed >= WARN_AFTER_MISSED || down_for >= WARN_AFTER_DOWN
}

/// "Still failing" summaries come when the missed beats reach 10, 100,
/// 1,000, ... and at least this often: a day-long outage at 30 s logs
/// about 27 lines, not 2,880.
const SUMMARY_EVERY: Duration = Duration::from_secs(3600);
const FIRST_SUMMARY_AT: u64 = 10;

/// When the next "still ..." summary of a long outage is due.
#[derive(Debug, Default)]
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

/// The current run of failed beats.
#[derive(Debug, Default)]
struct Outage {
    /// When it began (offset from start); None while beats land.
    since: Option<Duration>,
    /// Beats that did not land since `since`.
    missed: u64,
    /// It lasted long enough to matter and was logged as an outage.
    warned: bool,
    summary: Cadence,
}

/// Interruptions that ended before they mattered (see [`matters`]).
#[derive(Debug, Default)]
struct Blips {
    count: u64,
    missed: u64,
    /// When the last summary was logged (or the agent started).
    since: Duration,
}

/// Failing checks, while they fail.
#[derive(Debug, Default)]
struct Failing {
    since: Option<Duration>,
    /// The failing checks' names, to log again only when the set changes.
    names: Vec<String>,
    /// Beats withheld since `since`.
    withheld: u64,
    summary: Cadence,
}

/// What the agent has said so far, to know what to say next.
#[derive(Debug)]
pub struct Narrator {
    role: Role,
    /// The configured timeout, to say when a schedule cut an attempt short.
    timeout: Duration,
    /// Debug lines are worded only when someone will read them.
    verbose: bool,
    delivered_once: bool,
    outage: Outage,
    blips: Blips,
    failing: Failing,
    pushes: pushes::Pushes,
}

impl Narrator {
    pub fn new(role: Role, timeout: Duration, verbose: bool) -> Narrator {
        Narrator {
            role,
            timeout,
            verbose,
            delivered_once: false,
            outage: Outage::default(),
            blips: Blips::default(),
            failing: Failing::default(),
            pushes: pushes::Pushes::default(),
        }
    }

    /// The server refused the body of a push to `to`; the beat goes on as
    /// `follows` (None: it had landed already).
    pub fn refused(&mut self, to: Endpoint, failure: &Failure, follows: Option<Endpoint>) -> Said {
        self.pushes.refused(to, failure, follows)
    }

    /// A push landed (the one that carried the beat, or one after it).
    pub fn pushed(&mut self, to: Endpoint, reply: &Reply) -> Said {
        self.pushes.landed(to, reply)
    }

    /// A push after the beat failed.
    pub fn push_failed(&mut self, to: Endpoint, failure: &Failure) -> Said {
        self.pushes.failed(to, failure)
    }

    /// The configured timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Beats missed in the current outage.
    #[cfg(test)]
    pub fn missed(&self) -> u64 {
        self.outage.missed
    }

    /// Beats withheld while the checks fail.
    #[cfg(test)]
    pub fn withheld(&self) -> u64 {
        self.failing.withheld
    }

    /// The loop woke `late` after the beat was due; `skipped` slots went by.
    pub fn woke_late(&mut self, late: Duration, skipped: u64) -> Said {
        self.outage.missed += skipped;
        let mut said = Said::default();
        said.warn(format!(
            "woke {} late (suspended or stopped?): {skipped} beat(s) skipped, not sent late",
            format_duration(late)
        ));
        said
    }

    /// One line when checks start failing (or a different set fails), a
    /// summary now and then while beats are withheld, one line when all
    /// pass again.
    pub fn assessed(&mut self, assessment: &Assessment, at: At) -> Said {
        let mut said = Said::default();
        for (line, warning) in &assessment.left_out {
            if *warning {
                said.warn(line.clone());
            } else if self.role == Role::Once {
                // Expected (a first run, no Docker here): cron mails nothing.
                said.debug(line.clone());
            } else {
                said.info(line.clone());
            }
        }
        let now = at.now;
        let names: Vec<&str> = assessment.failing().map(|r| r.name.as_str()).collect();
        let f = &mut self.failing;
        if names.is_empty() {
            if let Some(since) = f.since {
                let withheld = match f.withheld {
                    0 => String::new(),
                    n => format!("; {n} heartbeat(s) were withheld"),
                };
                said.info(format!(
                    "all checks pass again after {}{withheld}",
                    format_duration(now.saturating_sub(since))
                ));
            }
            *f = Failing::default();
            return said;
        }
        let what = checks::describe_failing(&assessment.results);
        let outcome = if assessment.withhold {
            f.withheld += 1;
            "heartbeat withheld"
        } else if assessment.as_service {
            "pushed to the server as a failed service"
        } else {
            "reported as status \"fail\""
        };
        let since = *f.since.get_or_insert(now);
        if f.names != names || self.role == Role::Once {
            said.warn(format!("{what}; {outcome}"));
            f.names = names.into_iter().map(str::to_string).collect();
            f.summary.start(now);
        } else if assessment.withhold && f.summary.due(f.withheld, now) {
            said.warn(format!(
                "still withholding heartbeats since {}: {} withheld; {what}",
                since_then(since, at),
                f.withheld
            ));
        }
        if assessment.withhold {
            said.status = Some(format!("withholding heartbeats: {what}"));
        }
        said
    }

    /// A beat landed at `origin` after `took`.
    pub fn delivered(&mut self, origin: &str, reply: &Reply, took: Duration, at: At) -> Said {
        let mut said = Said::default();
        let now = at.now;
        // The agent API's reply names no server (the token did); the
        // legacy one does.
        let server = || match (&reply.server_name, &reply.server_id) {
            (Some(name), _) => format!(": server \"{}\"", text::untrusted(name)),
            (None, Some(id)) => format!(": server id {}", text::untrusted(&id.to_string())),
            (None, None) => String::new(),
        };
        let h = &mut self.outage;
        if let Some(since) = h.since.take() {
            let down_for = format_duration(now.saturating_sub(since));
            if h.warned {
                said.info(format!(
                    "heartbeat delivered again to {origin}: down for {down_for}, {} beat(s) missed",
                    h.missed
                ));
            } else {
                if self.verbose {
                    said.debug(format!(
                        "heartbeat delivered again to {origin} after a short interruption: \
                         down for {down_for}, {} beat(s) missed",
                        h.missed
                    ));
                }
                self.blips.count += 1;
                self.blips.missed += h.missed;
            }
        } else if !self.delivered_once && self.role == Role::Service {
            said.info(format!(
                "first heartbeat accepted by {origin}{} ({})",
                server(),
                format_duration(took)
            ));
        } else if self.verbose {
            said.debug(format!(
                "heartbeat accepted by {origin}{} ({})",
                server(),
                format_duration(took)
            ));
        }
        let b = &mut self.blips;
        if b.count > 0 && now.saturating_sub(b.since) >= SUMMARY_EVERY {
            said.info(format!(
                "{} short interruption(s) of delivery in the last {} ({} beat(s) missed), \
                 each over within {} beats and {}",
                b.count,
                format_duration(now.saturating_sub(b.since)),
                b.missed,
                WARN_AFTER_MISSED,
                format_duration(WARN_AFTER_DOWN)
            ));
            *b = Blips {
                since: now,
                ..Blips::default()
            };
        }
        if reply.heartbeat_received == Some(false) {
            said.warn(format!(
                "{origin} answered 2xx but says heartbeat_received=false: it did not record the \
                 beat; check api_url and the token (legacy API: server_id)"
            ));
        }
        self.outage = Outage::default();
        self.delivered_once = true;
        let failing = match self.failing.names.len() {
            0 => String::new(),
            n => format!(", reporting {n} failing check(s)"),
        };
        said.status = Some(format!(
            "last beat {} ok{failing}",
            format_time_of_day(at.wall)
        ));
        said
    }

    /// One line for the first failure of an outage that matters (and, for
    /// `--once`, for the final outcome); the attempts in between are debug
    /// lines, and summaries come from [`Narrator::gave_up`].
    pub fn failed(&mut self, attempt: &Attempt, at: At) -> Said {
        let mut said = Said::default();
        let (failure, now) = (attempt.failure, at.now);
        let since = *self.outage.since.get_or_insert(now);
        let what_next = match attempt.next {
            Next::RetryAt(retry) => format!(
                "retry {} in {}",
                attempt.number,
                format_duration(retry.saturating_sub(now))
            ),
            Next::Slot(_) if self.role == Role::Once => {
                format!("giving up after {} attempt(s)", attempt.number)
            }
            Next::Slot(slot) => {
                format!("next beat in {}", format_duration(slot.saturating_sub(now)))
            }
        };
        let down_for = now.saturating_sub(since);
        let missed = self.outage.missed + u64::from(matches!(attempt.next, Next::Slot(_)));
        let fatal = failure.class == Class::Fatal;
        // The service says when an outage starts to matter; --once says how it ended.
        let shown = match self.role {
            Role::Service => !self.outage.warned && matters(fatal, missed, down_for),
            Role::Once => matches!(attempt.next, Next::Slot(_)),
        };
        if shown || self.verbose {
            let mut line = format!(
                "heartbeat {}: {}{}{}; {what_next}",
                if fatal { "rejected" } else { "failed" },
                failure.reason,
                self.cut(attempt),
                failure
                    .hint
                    .as_deref()
                    .map(|h| format!(" - {h}"))
                    .unwrap_or_default()
            );
            if self.role == Role::Service && shown && !fatal {
                line.push_str(&format!(
                    " (failing for {}, {missed} beat(s) missed)",
                    format_duration(down_for)
                ));
            }
            let level = match (shown, failure.class) {
                (false, _) => log::Level::Debug,
                (true, Class::Retryable) => log::Level::Warn,
                (true, Class::Fatal) => log::Level::Error,
            };
            said.lines.push(Line { level, text: line });
        }
        if shown && self.role == Role::Service {
            self.outage.warned = true;
            self.outage.summary.start(now);
        }
        said.status = Some(format!(
            "failing since {} UTC: {}",
            format_time_of_day(at.wall - down_for),
            failure.reason
        ));
        said
    }

    /// What used the slot when an attempt timed out with less than its timeout.
    fn cut(&self, attempt: &Attempt) -> String {
        let (budget, timeout) = (attempt.budget, self.timeout);
        match () {
            _ if !attempt.failure.timed_out || budget >= timeout => String::new(),
            _ if !attempt.checks_took.is_zero() => format!(
                " (the attempt had {} of its {} timeout: the health checks took {} of the \
                 slot before the next beat)",
                format_duration(budget),
                format_duration(timeout),
                format_duration(attempt.checks_took)
            ),
            _ => format!(
                " (the attempt was cut to {} by the schedule: timeout {} is longer than the \
                 time left before the next beat)",
                format_duration(budget),
                format_duration(timeout)
            ),
        }
    }

    /// A beat was given up, and with it `beats` slots (the beat and those
    /// a Retry-After held back): a "still failing" line when the missed
    /// count reaches the next power of ten, or an hour after the last line.
    pub fn gave_up(&mut self, failure: &Failure, beats: u64, at: At) -> Said {
        let mut said = Said::default();
        let h = &mut self.outage;
        h.missed += beats;
        if self.role == Role::Once || !h.warned || !h.summary.due(h.missed, at.now) {
            return said;
        }
        let since = h.since.unwrap_or(at.now);
        said.warn(format!(
            "still failing since {}: {} beat(s) missed; last error: {}",
            since_then(since, at),
            h.missed,
            failure.reason
        ));
        said
    }
}

impl Said {
    fn push(&mut self, level: log::Level, text: String) {
        self.lines.push(Line { level, text });
    }
    fn debug(&mut self, text: String) {
        self.push(log::Level::Debug, text);
    }
    fn info(&mut self, text: String) {
        self.push(log::Level::Info, text);
    }
    fn warn(&mut self, text: String) {
        self.push(log::Level::Warn, text);
    }
}

/// `12:01:07 UTC (50m)`: when something that began at `since` began, and
/// how long ago.
fn since_then(since: Duration, at: At) -> String {
    let ago = at.now.saturating_sub(since);
    format!(
        "{} UTC ({})",
        format_time_of_day(at.wall - ago),
        format_duration(ago)
    )
}

#[cfg(test)]
mod tests;
