//! What a beat sends, and in what order: the plain heartbeat, a report
//! body, or the agent API's pushes in its place. The agent loop sees this
//! room only as a [`Gate`]: before each beat it runs the health checks
//! (checks/, which return verdicts and nothing else), asks the cadence
//! which pushes are due, has each due push's collector write its body, and
//! hands the loop the requests in order. With no checks and no reporting
//! there is no gate at all: the beat path is what it was.
//!
//! endpoint.rs is THE list of pushes; a push's body is its collector's
//! (metrics.rs, services.rs), the heartbeat's report body is report.rs's,
//! and body.rs has what every body is made of.

pub mod body;
mod cadence;
mod containers;
mod endpoint;
pub mod kept;
mod metrics;
pub mod report;
mod services;
mod top;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::checks::{CheckResult, Checks};
use crate::config::health::{Check, Probe};
use crate::config::{Config, Reporting};
use cadence::Cadence;
pub use endpoint::{Endpoint, Every, PerPush, Push};
use kept::Kept;
use report::JobReport;

/// One request of a beat: where it goes and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub to: Endpoint,
    pub body: String,
}

impl Post {
    /// A plain heartbeat with `{"agent_version": ...}`.
    pub fn heartbeat() -> Post {
        Post {
            to: Endpoint::Heartbeat,
            body: body::heartbeat(),
        }
    }
}

/// What the checks decided for one beat, and what it sends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    pub results: Vec<CheckResult>,
    /// What the beat sends, the first carrying the beat; empty: a plain heartbeat.
    pub posts: Vec<Post>,
    /// A check failed and nothing reports it: no beat this time.
    pub withhold: bool,
    /// A failing check goes to the server as a failed service.
    pub as_service: bool,
    /// What a push had to leave out, said when it first happens: each
    /// line, and whether it is a warning.
    pub left_out: Vec<(String, bool)>,
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

/// What a collector is given: the moment's checks and their verdicts, and
/// how long its slow reads (statvfs) may take.
pub struct Moment<'a> {
    pub checks: &'a [Arc<Check>],
    pub results: &'a [CheckResult],
    pub limit: Duration,
}

/// Writes one push's body.
pub trait Collect {
    fn collect(&mut self, at: &Moment) -> Collected;
}

/// One push's body, and what could not go into it (said once by the
/// planner, not at every push).
#[derive(Debug)]
pub struct Collected {
    /// None when the push cannot be made (the metrics push without
    /// `/proc/stat`): the server would refuse it.
    pub body: Option<String>,
    pub left_out: Vec<LeftOut>,
}

/// Something a push could not carry: `what` names it (the same from one
/// push to the next, so it is said once), `why` says what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftOut {
    pub what: String,
    pub why: String,
    /// Nothing is wrong (a first run has no earlier sample): said as
    /// information, not as a warning.
    pub expected: bool,
}

impl LeftOut {
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> LeftOut {
        LeftOut {
            what: what.into(),
            why: why.into(),
            expected: false,
        }
    }

    pub fn expected(what: impl Into<String>, why: impl Into<String>) -> LeftOut {
        LeftOut {
            expected: true,
            ..LeftOut::new(what, why)
        }
    }
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

/// Each push's collector: the compiler holds this match complete. `kept`
/// is where a one-beat run finds and leaves its previous sample.
fn collector_for(push: Push, config: &Config, kept: Option<&Kept>) -> Box<dyn Collect> {
    match push {
        Push::Metrics => Box::new(match kept {
            Some(kept) => metrics::Collector::resumed(kept.clone()),
            None => metrics::Collector::new(),
        }),
        Push::Services => Box::new(services::Collector::default()),
        Push::Containers => Box::new(containers::Collector::new(
            config.settings.docker_host.value.clone(),
        )),
    }
}

/// The longest the vitals' and disks' statvfs calls may take: a hung
/// mount's entry is left out of that beat rather than the beat late.
const STATVFS_LIMIT: Duration = Duration::from_secs(1);

/// The checks and the reporting of one config: the agent's [`Gate`].
pub struct Planner {
    checks: Option<Checks>,
    reporting: Reporting,
    /// What the report's vitals show: `/` and every path a disk check names.
    disks: Vec<PathBuf>,
    job: Option<JobReport>,
    pushing: Pushing,
}

/// The pushes' state from one beat to the next.
struct Pushing {
    cadence: Cadence,
    collectors: PerPush<Option<Box<dyn Collect>>>,
    /// The verdicts the last assessment's pushes carried.
    verdicts: Vec<bool>,
    /// Made and not answered yet (it failed, or found no time after the
    /// beat): when it is due again it goes first, so none starves.
    unanswered: PerPush<bool>,
    /// When the last assessment began: a push's interval counts from the
    /// beat it went with, not from when its reply came (a slow reply
    /// would push every later push back by its delay).
    assessed_at: Duration,
    /// What each push left out last time: said again only after it came back.
    left_out: PerPush<Vec<LeftOut>>,
}

impl Planner {
    /// None when there is nothing to do before a beat. `kept`: a one-beat
    /// run's sample from the one before (see kept.rs).
    pub fn new(config: &Config, kept: Option<&Kept>) -> Option<Planner> {
        let checks = Checks::new(config);
        let reporting = config.settings.report.value;
        if checks.is_none() && !reporting.is_on() {
            return None;
        }
        let mut disks = vec![PathBuf::from("/")];
        for check in &config.settings.health.value {
            if let Probe::Disk { path, .. } = &check.probe
                && !disks.contains(path)
            {
                disks.push(path.clone());
            }
        }
        let on = reporting.pushes;
        let pushing = Pushing {
            cadence: Cadence::new(
                on,
                PerPush::from_fn(|p| crate::config::push_every(&config.settings, p.every()).value),
                config.settings.interval.value,
                kept.is_some(),
            ),
            collectors: PerPush::from_fn(|push| {
                on[push].then(|| collector_for(push, config, kept))
            }),
            verdicts: Vec::new(),
            unanswered: PerPush::default(),
            assessed_at: Duration::ZERO,
            left_out: PerPush::default(),
        };
        Some(Planner {
            checks,
            reporting,
            disks,
            job: None,
            pushing,
        })
    }

    /// For `run --report status`: the job's end goes into the body.
    pub fn set_job(&mut self, job: JobReport) {
        self.job = Some(job);
    }
}

impl Pushing {
    /// The due pushes' requests, those that found no answer last time
    /// first, and what they left out that was not said before.
    fn pushes(
        &mut self,
        due: PerPush<bool>,
        moment: &Moment,
        left_out: &mut Vec<(String, bool)>,
    ) -> Vec<Post> {
        let mut order: Vec<Push> = due.on().collect();
        order.sort_by_key(|push| !self.unanswered[*push]);
        let mut posts = Vec::new();
        for push in order {
            let Some(collector) = self.collectors[push].as_mut() else {
                continue;
            };
            let collected = collector.collect(moment);
            let before = std::mem::replace(&mut self.left_out[push], collected.left_out);
            left_out.extend(
                self.left_out[push]
                    .iter()
                    .filter(|l| !before.iter().any(|b| b.what == l.what))
                    .map(|l| (format!("the {} leaves out {l}", push.words()), !l.expected)),
            );
            if let Some(body) = collected.body {
                self.unanswered[push] = true;
                posts.push(Post {
                    to: Endpoint::Push(push),
                    body,
                });
            }
        }
        posts
    }
}

impl Gate for Planner {
    fn assess(&mut self, now: Duration, limit: Duration, alive: &dyn Fn()) -> Assessment {
        self.pushing.assessed_at = now;
        let results = match self.checks.as_mut() {
            Some(checks) => checks.run(limit, alive),
            None => Vec::new(),
        };
        let verdicts: Vec<bool> = results.iter().map(|r| r.ok).collect();
        let due = self.pushing.cadence.due(now, &verdicts);
        let moment = Moment {
            checks: self.checks.as_ref().map_or(&[], Checks::list),
            results: &results,
            // The statvfs calls share the checks' limit, at most a second.
            limit: limit.min(STATVFS_LIMIT),
        };
        let mut left_out = Vec::new();
        let mut posts = self.pushing.pushes(due, &moment, &mut left_out);
        if posts.is_empty() && (self.reporting.status || self.reporting.vitals) {
            let disks: Vec<&Path> = self.disks.iter().map(PathBuf::as_path).collect();
            let body = report::body(
                self.reporting,
                &results,
                self.job.as_ref(),
                &disks,
                moment.limit,
            );
            posts.push(Post {
                to: Endpoint::Heartbeat,
                body,
            });
        }
        self.pushing.verdicts = verdicts;
        let reported =
            self.reporting.status || self.reporting.pushes.on().any(|push| push.follows_checks());
        Assessment {
            withhold: !reported && results.iter().any(|r| !r.ok),
            as_service: self.reporting.pushes[Push::Services],
            results,
            posts,
            left_out,
        }
    }

    fn answered(&mut self, to: Endpoint) {
        let pushing = &mut self.pushing;
        if let Some(push) = to.push() {
            pushing.unanswered[push] = false;
            pushing
                .cadence
                .landed(push, pushing.assessed_at, &pushing.verdicts);
        }
    }
}
