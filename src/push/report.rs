//! The heartbeat's body with `--report`: the checks' results, a `run`
//! job's end and the host's vitals, as docs/report.schema.json describes.
//! `status` is "fail" when a check or the job failed.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::body::{Outside, Version, round, to_json};
use crate::checks::CheckResult;
use crate::config::Reporting;
use crate::host::{self, disk};

/// A `run` job's end, for `--report status`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    /// None when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    /// The last bytes of its stdout and stderr, interleaved as they came.
    pub tail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    version: Version,
    #[serde(flatten)]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<Vitals>,
}

#[derive(Debug, Serialize)]
struct Status {
    status: &'static str,
    checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<Job>,
}

#[derive(Debug, Serialize)]
struct Check {
    name: Outside,
    ok: bool,
    detail: Outside,
}

#[derive(Debug, Serialize)]
struct Job {
    exit_code: Option<i32>,
    signal: Option<i32>,
    duration_ms: u64,
    tail: Outside,
}

/// The `host` object: a value that cannot be read here (no `/proc` in a
/// chroot, say) is null rather than a missing beat.
#[derive(Debug, Serialize)]
struct Vitals {
    uptime_s: Option<f64>,
    boot_id: Option<Outside>,
    load_1: Option<f64>,
    load_5: Option<f64>,
    load_15: Option<f64>,
    cpus: u32,
    mem_total_bytes: Option<u64>,
    mem_available_bytes: Option<u64>,
    swap_used_bytes: Option<u64>,
    disks: Vec<DiskFigures>,
    agent_rss_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
struct DiskFigures {
    path: Outside,
    total_bytes: Option<u64>,
    used_bytes: Option<u64>,
    avail_bytes: Option<u64>,
}

impl Vitals {
    /// Now; the disks' statvfs calls share `disks_within`.
    fn read(disks: &[&Path], disks_within: Duration) -> Vitals {
        let load = host::load().ok();
        let load_at = |i: usize| load.map(|l| round(l[i], 2));
        let memory = host::memory().ok();
        let figures = disk::within_limit(disks, disks_within);
        Vitals {
            uptime_s: host::uptime().map(|u| round(u, 2)),
            boot_id: host::boot_id().map(|id| Outside::capped(&id, 64)),
            load_1: load_at(0),
            load_5: load_at(1),
            load_15: load_at(2),
            cpus: host::online_cpus(),
            mem_total_bytes: memory.map(|m| m.total),
            mem_available_bytes: memory.map(|m| m.available),
            swap_used_bytes: memory.map(|m| m.swap_used()),
            disks: disks
                .iter()
                .zip(figures)
                .map(|(path, d)| {
                    let d = d.ok();
                    DiskFigures {
                        path: Outside::new(&path.to_string_lossy()),
                        total_bytes: d.map(|d| d.total),
                        used_bytes: d.map(|d| d.used),
                        avail_bytes: d.map(|d| d.avail),
                    }
                })
                .collect(),
            agent_rss_bytes: host::own_rss(),
        }
    }
}

/// The report body for what `reporting` turns on.
pub fn body(
    reporting: Reporting,
    checks: &[CheckResult],
    job: Option<&JobReport>,
    disks: &[&Path],
    disks_within: Duration,
) -> String {
    let status = reporting.status.then(|| {
        let job_ok = job.is_none_or(|j| j.exit_code == Some(0));
        let ok = job_ok && checks.iter().all(|c| c.ok);
        Status {
            status: if ok { "ok" } else { "fail" },
            checks: checks
                .iter()
                .map(|c| Check {
                    name: Outside::new(&c.name),
                    ok: c.ok,
                    detail: Outside::new(&c.detail),
                })
                .collect(),
            job: job.map(|j| Job {
                exit_code: j.exit_code,
                signal: j.signal,
                duration_ms: j.duration_ms,
                tail: Outside::new(&j.tail),
            }),
        }
    });
    to_json(&Report {
        version: Version::default(),
        status,
        host: reporting.vitals.then(|| Vitals::read(disks, disks_within)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn read(body: String) -> serde_json::Value {
        serde_json::from_str(&body).unwrap()
    }

    #[test]
    fn a_failing_check_or_job_makes_the_status_fail() {
        let status = Reporting {
            status: true,
            ..Reporting::default()
        };
        let pass = CheckResult {
            name: "tcp a:1".into(),
            ok: true,
            detail: "ok".into(),
            took: None,
        };
        let fail = CheckResult {
            ok: false,
            ..pass.clone()
        };
        let one = std::slice::from_ref(&pass);
        assert_eq!(read(body(status, one, None, &[], SECOND))["status"], "ok");
        let both = [pass.clone(), fail];
        assert_eq!(
            read(body(status, &both, None, &[], SECOND))["status"],
            "fail"
        );
        let job = JobReport {
            exit_code: Some(3),
            signal: None,
            duration_ms: 5,
            tail: "x\n".into(),
        };
        let report = read(body(status, one, Some(&job), &[], SECOND));
        assert_eq!(report["status"], "fail");
        assert_eq!(report["job"]["exit_code"], 3);
        assert_eq!(report["job"]["signal"], serde_json::Value::Null);
        assert!(report.get("host").is_none());
    }

    #[test]
    fn vitals_read_the_host_with_a_null_for_what_cannot_be_read() {
        let vitals = Reporting {
            vitals: true,
            ..Reporting::default()
        };
        let disks = [Path::new("/"), Path::new("/no/such/disk")];
        let report = read(body(vitals, &[], None, &disks, SECOND));
        assert!(report.get("status").is_none());
        let host = &report["host"];
        assert!(host["mem_total_bytes"].as_u64().is_some_and(|n| n > 0));
        assert!(host["cpus"].as_u64().is_some_and(|n| n >= 1));
        assert!(
            host["disks"][0]["total_bytes"]
                .as_u64()
                .is_some_and(|n| n > 0)
        );
        assert_eq!(host["disks"][1]["path"], "/no/such/disk");
        assert!(host["disks"][1]["total_bytes"].is_null());
    }
}
