//! Checks that gate the beat: "this box works" rather than "the agent
//! runs". Parsed from the config (`spec`), probed (`probe`), and run
//! before each beat by [`Preflight`], which the agent loop sees only as a
//! [`Gate`]. With no checks and no reporting there is no gate at all: the
//! beat path is what it was.

pub mod probe;
pub mod spec;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use ureq::tls::{RootCerts, TlsConfig};

use crate::body::{self, CheckResult, JobReport, Reporting};
use crate::clock::format_duration;
use crate::config::Config;
use crate::wire;

use probe::Verdict;
use spec::{Check, Probe};

/// What the checks decided for one beat.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    pub results: Vec<CheckResult>,
    /// The body to send instead of the default one (reporting is on).
    pub body: Option<String>,
    /// A check failed and its status is not reported: no beat this time.
    pub withhold: bool,
}

impl Assessment {
    pub fn failing(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| !r.ok)
    }
}

/// What the agent loop runs before each beat.
pub trait Gate {
    /// Runs the checks, each within its timeout and all within `limit`.
    fn assess(&mut self, limit: Duration) -> Assessment;
}

/// Waited for beyond a check's own limit: its probe enforces the limit
/// itself (a connect timeout, a kill), so this only covers the reply.
const GRACE: Duration = Duration::from_millis(250);
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
}

impl Preflight {
    /// None when there is nothing to do before a beat.
    pub fn new(config: &Config) -> Option<Preflight> {
        let checks = &config.health.value;
        let reporting = config.report.value;
        if checks.is_empty() && !reporting.is_on() {
            return None;
        }
        let http = checks
            .iter()
            .any(|c| matches!(c.probe, Probe::Http { .. }))
            .then(|| Arc::new(http_client(config)));
        // `/` and every path a disk check names.
        let mut disks = vec![PathBuf::from("/")];
        for check in checks {
            if let Probe::Disk { path, .. } = &check.probe
                && !disks.contains(path)
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
        })
    }

    /// For `run --report status`: the job's end goes into the body.
    pub fn set_job(&mut self, job: JobReport) {
        self.job = Some(job);
    }

    /// Every check once, in config order, each within its own timeout.
    pub fn run_checks(&mut self, limit: Duration) -> Vec<CheckResult> {
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        let mut verdicts: Vec<Option<Verdict>> = vec![None; self.checks.len()];
        let mut last_due = started;
        for (i, check) in self.checks.iter().enumerate() {
            let within = check.timeout.min(limit);
            if !check.blocks() {
                continue;
            }
            if self.busy[i].swap(true, Ordering::SeqCst) {
                verdicts[i] = Some(Verdict {
                    ok: false,
                    detail: "its previous run has not ended yet".into(),
                });
                continue;
            }
            last_due = last_due.max(started + within);
            let (check, busy, http, tx) = (
                Arc::clone(check),
                Arc::clone(&self.busy[i]),
                self.http.clone(),
                tx.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name("check".into())
                .stack_size(PROBE_STACK)
                .spawn(move || {
                    let verdict = probe::run(&check, within, http.as_deref());
                    busy.store(false, Ordering::SeqCst);
                    let _ = tx.send((i, verdict));
                });
            if let Err(e) = spawned {
                self.busy[i].store(false, Ordering::SeqCst);
                verdicts[i] = Some(Verdict {
                    ok: false,
                    detail: format!("cannot start it: {}", crate::text::describe_io(&e)),
                });
            }
        }
        drop(tx);
        // The instant ones (disk, memory, load) while the others wait.
        for (i, check) in self.checks.iter().enumerate() {
            if !check.blocks() {
                verdicts[i] = Some(probe::run(check, check.timeout.min(limit), None));
            }
        }
        let give_up = last_due + GRACE;
        while verdicts.iter().any(Option::is_none) {
            let left = give_up.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, verdict)) => verdicts[i] = Some(verdict),
                Err(_) => break,
            }
        }
        self.checks
            .iter()
            .zip(verdicts)
            .map(|(check, verdict)| {
                let verdict = verdict.unwrap_or_else(|| Verdict {
                    ok: false,
                    detail: format!(
                        "no answer within {}",
                        format_duration(check.timeout.min(limit))
                    ),
                });
                CheckResult {
                    name: check.name.clone(),
                    ok: verdict.ok,
                    detail: verdict.detail,
                }
            })
            .collect()
    }
}

impl Gate for Preflight {
    fn assess(&mut self, limit: Duration) -> Assessment {
        let results = if self.checks.is_empty() {
            Vec::new()
        } else {
            self.run_checks(limit)
        };
        let failed = results.iter().any(|r| !r.ok);
        let body = self.reporting.is_on().then(|| {
            let disks: Vec<&std::path::Path> = self.disks.iter().map(PathBuf::as_path).collect();
            body::compose(self.reporting, &results, self.job.as_ref(), &disks)
        });
        Assessment {
            results,
            body,
            withhold: failed && !self.reporting.status,
        }
    }
}

/// The client http checks use: the agent's trusted roots (or CA file), no
/// proxy (a check looks at a service near the box), no redirects followed,
/// no connection kept between beats.
fn http_client(config: &Config) -> ureq::Agent {
    let roots = match &config.ca {
        Some(ca) => RootCerts::Specific(Arc::new(ca.value.certs.clone())),
        None => RootCerts::WebPki,
    };
    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(crate::heartbeat::user_agent())
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .input_buffer_size(10 * 1024)
        .output_buffer_size(4 * 1024)
        .max_response_header_size(6 * 1024)
        .proxy(None)
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build();
    ureq::Agent::with_parts(http, wire::connector(), wire::resolver())
}

/// How failing checks read in one log line: `check NAME failed: WHY`, joined.
pub fn describe_failing(results: &[CheckResult]) -> String {
    let failing: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            format!(
                "check {} failed: {}",
                crate::text::untrusted(&r.name),
                r.detail
            )
        })
        .collect();
    failing.join("; ")
}
