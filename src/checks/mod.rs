//! Health checks: "this box works" rather than "the agent runs". Parsed
//! by config/health.rs, probed by probe.rs, and run before each beat by
//! [`Checks::run`], concurrently, each within its own timeout. They return
//! verdicts and nothing else: what a beat makes of them is push/'s.

pub mod probe;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::clock::format_duration;
use crate::config::Config;
use crate::tls::Trust;
use crate::wire;

use crate::config::health::{Check, Probe};
use probe::{Timed, Verdict};

/// One check's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// How long its probe took; None when it did not answer in time.
    pub took: Option<Duration>,
}

/// Waited for beyond a check's own limit: its probe enforces the limit
/// itself (a connect timeout, a kill), so this only covers the reply.
const GRACE: Duration = Duration::from_millis(250);

/// The checks of one config.
pub struct Checks {
    checks: Vec<Arc<Check>>,
    /// Set while a check's probe runs, so a probe stuck past its limit (a
    /// DNS lookup the resolver has not given up on) is not started again.
    busy: Vec<Arc<AtomicBool>>,
    http: Option<Arc<ureq::Agent>>,
}

impl Checks {
    /// None when no check is configured.
    pub fn new(config: &Config) -> Option<Checks> {
        let checks = &config.settings.health.value;
        if checks.is_empty() {
            return None;
        }
        let http = checks
            .iter()
            .any(|c| matches!(c.probe, Probe::Http { .. }))
            .then(|| http_client(config).map(Arc::new))
            .flatten();
        Some(Checks {
            busy: checks.iter().map(|_| Arc::default()).collect(),
            checks: checks.iter().cloned().map(Arc::new).collect(),
            http,
        })
    }

    pub fn list(&self) -> &[Arc<Check>] {
        &self.checks
    }

    /// Every check once, in config order, each within its own timeout and
    /// all within `limit`, calling `alive` at least every second while it
    /// waits for them (the systemd watchdog must not take a slow check for
    /// a hung agent).
    pub fn run(&mut self, limit: Duration, alive: &dyn Fn()) -> Vec<CheckResult> {
        let started = Instant::now();
        let board = Arc::new(Board {
            verdicts: Mutex::new(self.checks.iter().map(|_| None).collect()),
            posted: Condvar::new(),
        });
        let mut last_due = started;
        // Every kind on a thread of its own: a disk check's statvfs on a
        // dead NFS or FUSE mount, or a /proc read in a wedged container,
        // blocks as surely as a connect, and must cost the beat no more
        // than its timeout.
        for (i, check) in self.checks.iter().enumerate() {
            if self.busy[i].swap(true, Ordering::SeqCst) {
                board.post(
                    i,
                    fail(
                        "still stuck: its previous run has not returned (not started again)".into(),
                    ),
                );
                continue;
            }
            let within = check.timeout.min(limit);
            last_due = last_due.max(started + within);
            let (check, busy, http, posted_to) = (
                Arc::clone(check),
                Arc::clone(&self.busy[i]),
                self.http.clone(),
                Arc::clone(&board),
            );
            let spawned = crate::workers::spawn(move || {
                let started = Instant::now();
                let verdict = probe::run(&check, within, http.as_deref());
                let took = Some(started.elapsed());
                busy.store(false, Ordering::SeqCst);
                posted_to.post(i, Timed { verdict, took });
            });
            if let Err(e) = spawned {
                self.busy[i].store(false, Ordering::SeqCst);
                let why = format!("cannot start it: {}", crate::text::describe_io(&e));
                board.post(i, fail(why));
            }
        }
        let verdicts = board.wait_until(last_due + GRACE, alive);
        self.checks
            .iter()
            .zip(verdicts)
            .map(|(check, timed)| {
                let Timed { verdict, took } = timed.unwrap_or_else(|| {
                    let within = format_duration(check.timeout.min(limit));
                    fail(format!("no answer within {within}"))
                });
                CheckResult {
                    name: check.name.clone(),
                    ok: verdict.ok,
                    detail: verdict.detail,
                    took,
                }
            })
            .collect()
    }
}

/// A verdict the agent gives for a probe that did not (a stuck one, one
/// that could not start): no response time.
fn fail(detail: String) -> Timed {
    Timed {
        verdict: Verdict { ok: false, detail },
        took: None,
    }
}

/// Where the probes post their verdicts. A probe that answers after the
/// agent stopped waiting posts to a board nobody reads any more.
struct Board {
    verdicts: Mutex<Vec<Option<Timed>>>,
    posted: Condvar,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, Vec<Option<Timed>>> {
        // A probe cannot panic (panic = abort); a poisoned lock is still good.
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn post(&self, i: usize, verdict: Timed) {
        self.lock()[i] = Some(verdict);
        self.posted.notify_all();
    }

    /// The verdicts once all are in, or as they stand at `deadline`.
    fn wait_until(&self, deadline: Instant, alive: &dyn Fn()) -> Vec<Option<Timed>> {
        let mut verdicts = self.lock();
        while verdicts.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let nap = left.min(Duration::from_secs(1));
            verdicts = match self.posted.wait_timeout(verdicts, nap) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
            alive();
        }
        // Taken, not cloned; a probe that posts later finds an empty slot.
        let empty = verdicts.iter().map(|_| None).collect();
        std::mem::replace(&mut *verdicts, empty)
    }
}

/// The client http checks use: the agent's trusted roots or CA file (a
/// pin is for the StackSense server, not the services near the box), no
/// proxy (a check looks at a service near the box), no redirects
/// followed, no connection kept between beats.
fn http_client(config: &Config) -> Option<ureq::Agent> {
    let trust = match &config.ca {
        Some(ca) => Trust::Cas(Arc::clone(&ca.value.certs)),
        None => Trust::Bundled,
    };
    let options = wire::ClientOptions {
        trust: &trust,
        timeout: None,
        keepalive: false,
        proxy: None,
        output_buffer: 4 * 1024,
    };
    wire::client(options).ok().map(|wired| wired.agent)
}

/// How failing checks read in one log line: `check NAME failed: WHY`, joined.
pub fn describe_failing(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for r in results.iter().filter(|r| !r.ok) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let name = crate::text::untrusted(&r.name);
        out.push_str(&format!("check {name} failed: {}", r.detail));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn waiting_for_a_slow_check_keeps_telling_the_watchdog() {
        let board = Board {
            verdicts: Mutex::new(vec![None, None]),
            posted: Condvar::new(),
        };
        board.post(0, fail("x".into()));
        let pings = Cell::new(0);
        let started = Instant::now();
        let verdicts = board.wait_until(started + Duration::from_millis(2200), &|| {
            pings.set(pings.get() + 1)
        });
        assert!(started.elapsed() >= Duration::from_millis(2200));
        assert!(pings.get() >= 2, "{} pings", pings.get());
        assert_eq!(verdicts[0].as_ref().map(|v| v.verdict.ok), Some(false));
        assert!(verdicts[1].is_none(), "the missing one stays missing");
    }
}
