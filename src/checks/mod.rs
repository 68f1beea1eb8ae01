//! Checks that gate the beat: "this box works" rather than "the agent
//! runs". Parsed by config/health.rs, probed (`probe`), and run before
//! each beat by [`Preflight`], which the agent loop sees only as a
//! [`Gate`]; it also makes the report bodies and the agent API's pushes.
//! With no checks and no reporting there is no gate at all: the beat path
//! is what it was.

pub mod probe;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::body::{self, CheckResult, Endpoint, JobReport, Post};
use crate::cadence::Cadence;
use crate::clock::format_duration;
use crate::config::Config;
use crate::config::Reporting;
use crate::metrics::{Collector, LeftOut};
use crate::tls::Trust;
use crate::{services, wire};

use crate::config::health::{Check, Probe};
use probe::{Timed, Verdict};

/// What the checks decided for one beat.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    pub results: Vec<CheckResult>,
    /// What the beat sends, the first carrying the beat; empty: a plain heartbeat.
    pub posts: Vec<Post>,
    /// A check failed and its status is not reported: no beat this time.
    pub withhold: bool,
    /// A failing check goes to the server as a failed service.
    pub as_service: bool,
    /// What a push had to leave out, said when it first happens.
    pub left_out: Vec<String>,
}

impl Assessment {
    pub fn failing(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| !r.ok)
    }
}

/// What the agent loop runs before each beat.
pub trait Gate {
    /// Runs the checks, each within its timeout and all within `limit`,
    /// calling `alive` at least every second while it waits for them (the
    /// systemd watchdog must not take a slow check for a hung agent).
    /// `now` is the agent's time since start: when pushes are due.
    fn assess(&mut self, now: Duration, limit: Duration, alive: &dyn Fn()) -> Assessment;

    /// The server answered `to` (it landed, or it refused the body: either
    /// way it is not sent again before its next interval).
    fn answered(&mut self, _to: Endpoint) {}
}

/// Waited for beyond a check's own limit: its probe enforces the limit
/// itself (a connect timeout, a kill), so this only covers the reply.
const GRACE: Duration = Duration::from_millis(250);
/// The longest the vitals' disk figures may take: a hung mount's entry is
/// null in that beat's report rather than the beat late.
const VITALS_LIMIT: Duration = Duration::from_secs(1);
/// Probes run on small threads: a connect, an HTTP(S) request, a spawn.
const PROBE_STACK: usize = 256 * 1024;

/// The checks and the reporting of one config.
pub struct Preflight {
    checks: Vec<Arc<Check>>,
    /// Set while a check's probe runs, so a probe stuck past its limit (a
    /// DNS lookup the resolver has not given up on) is not started again.
    busy: Vec<Arc<AtomicBool>>,
    http: Option<Arc<ureq::Agent>>,
    reporting: Reporting,
    disks: Vec<PathBuf>,
    job: Option<JobReport>,
    cadence: Cadence,
    /// Keeps the previous sample for the metrics push's rates.
    collector: Option<Collector>,
    /// The verdicts of the services push in flight.
    sending: Option<Vec<bool>>,
    /// When the last assessment began: a push's interval counts from the
    /// beat it went with, not from when its reply came (a slow reply
    /// would push every later push back by its delay).
    assessed_at: Duration,
    /// What the last push left out: said again only after it came back.
    left_out: Vec<LeftOut>,
}

impl Preflight {
    /// None when there is nothing to do before a beat.
    pub fn new(config: &Config) -> Option<Preflight> {
        let checks = &config.settings.health.value;
        let reporting = config.settings.report.value;
        if checks.is_empty() && !reporting.is_on() {
            return None;
        }
        let http = checks
            .iter()
            .any(|c| matches!(c.probe, Probe::Http { .. }))
            .then(|| http_client(config).map(Arc::new))
            .flatten();
        // `/` and every path a disk check names.
        let mut disks = vec![PathBuf::from("/")];
        for check in checks {
            if let Probe::Disk { path, .. } = &check.probe
                && !disks.iter().any(|d| d.as_os_str() == path.as_os_str())
            {
                disks.push(path.clone());
            }
        }
        Some(Preflight {
            busy: checks.iter().map(|_| Arc::default()).collect(),
            checks: checks.iter().cloned().map(Arc::new).collect(),
            http,
            reporting,
            disks,
            job: None,
            cadence: Cadence::new(
                reporting.metrics,
                reporting.services,
                config.settings.metrics_interval.value,
                config.settings.interval.value,
            ),
            collector: reporting.metrics.then(Collector::new),
            sending: None,
            assessed_at: Duration::ZERO,
            left_out: Vec::new(),
        })
    }

    /// For `run --report status`: the job's end goes into the body.
    pub fn set_job(&mut self, job: JobReport) {
        self.job = Some(job);
    }

    /// Every check once, in config order, each within its own timeout.
    pub fn run_checks(&mut self, limit: Duration, alive: &dyn Fn()) -> Vec<CheckResult> {
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
            let spawned = std::thread::Builder::new()
                .stack_size(PROBE_STACK)
                .spawn(move || {
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

impl Gate for Preflight {
    fn assess(&mut self, now: Duration, limit: Duration, alive: &dyn Fn()) -> Assessment {
        self.assessed_at = now;
        let results = if self.checks.is_empty() {
            Vec::new()
        } else {
            self.run_checks(limit, alive)
        };
        let failed = results.iter().any(|r| !r.ok);
        let verdicts: Vec<bool> = results.iter().map(|r| r.ok).collect();
        let due = self.cadence.due(now, &verdicts);
        let mut posts = Vec::new();
        let mut left_out = Vec::new();
        // The statvfs calls share the checks' limit, at most a second.
        let within = limit.min(VITALS_LIMIT);
        if due.metrics
            && let Some(collector) = self.collector.as_mut()
        {
            let collected = collector.collect(within);
            left_out = collected.left_out;
            posts.extend(collected.body.map(|body| Post {
                to: Endpoint::Metrics,
                body,
            }));
        }
        if due.services {
            let checks: Vec<&Check> = self.checks.iter().map(|c| c.as_ref()).collect();
            let post = Post {
                to: Endpoint::Services,
                body: services::body(&checks, &results),
            };
            // The last one found no time after the metrics push (a short
            // interval): this time it carries the beat, so neither starves.
            let waited = self.sending.is_some();
            if waited {
                posts.insert(0, post);
            } else {
                posts.push(post);
            }
            self.sending = Some(verdicts);
        }
        if posts.is_empty() && (self.reporting.status || self.reporting.vitals) {
            let disks: Vec<&std::path::Path> = self.disks.iter().map(PathBuf::as_path).collect();
            let body = body::compose(self.reporting, &results, self.job.as_ref(), &disks, within);
            posts.push(Post {
                to: Endpoint::Heartbeat,
                body,
            });
        }
        Assessment {
            results,
            posts,
            withhold: failed && !self.reporting.status && !self.reporting.services,
            as_service: self.reporting.services,
            left_out: self.newly_left_out(left_out, due.metrics),
        }
    }

    fn answered(&mut self, to: Endpoint) {
        let now = self.assessed_at;
        match to {
            Endpoint::Metrics => self.cadence.metrics_landed(now),
            Endpoint::Services => {
                if let Some(verdicts) = self.sending.take() {
                    self.cadence.services_landed(now, verdicts);
                }
            }
            Endpoint::Heartbeat => {}
        }
    }
}

impl Preflight {
    /// Of what a metrics push left out, what the last one did not: a hung
    /// disk is said when it first hangs, not at every push.
    fn newly_left_out(&mut self, now: Vec<LeftOut>, collected: bool) -> Vec<String> {
        if !collected {
            return Vec::new();
        }
        let new = now
            .iter()
            .filter(|l| !self.left_out.iter().any(|before| before.what == l.what))
            .map(LeftOut::to_string)
            .collect();
        self.left_out = now;
        new
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
