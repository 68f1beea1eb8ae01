//! What a beat says. By default exactly `{"agent_version":"X"}`, which
//! every StackSense server reads; with `--report` also the checks' results,
//! the host's vitals and a `run` job's end, as docs/report.schema.json
//! describes.

use std::path::Path;

use std::fmt::Write;

use crate::config::Reporting;
use crate::version::VERSION;
use crate::{text, vitals};

/// The body every beat carries when nothing is reported.
pub fn default_body() -> String {
    format!("{{\"agent_version\":\"{VERSION}\"}}")
}

/// One check's result as the body reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// How long its probe took; None when it did not answer in time.
    pub took: Option<std::time::Duration>,
}

/// The agent API's endpoints a beat can go to: the heartbeat, or a push
/// that the server also records as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Heartbeat,
    Metrics,
    Services,
}

impl Endpoint {
    /// As log lines name it.
    pub fn words(self) -> &'static str {
        match self {
            Endpoint::Heartbeat => "heartbeat",
            Endpoint::Metrics => "metrics push",
            Endpoint::Services => "services push",
        }
    }
}

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
            body: default_body(),
        }
    }
}

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

/// A report body: `status` is "fail" when a check or the job failed.
/// Written by hand: serde_json's serializer would add its float and
/// escaping code to the binary for this one object.
pub fn compose(
    reporting: Reporting,
    checks: &[CheckResult],
    job: Option<&JobReport>,
    disks: &[&Path],
    disks_within: std::time::Duration,
) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(out, "{{\"agent_version\":\"{VERSION}\"");
    if reporting.status {
        let job_ok = job.is_none_or(|j| j.exit_code == Some(0));
        let ok = job_ok && checks.iter().all(|c| c.ok);
        let status = if ok { "ok" } else { "fail" };
        let _ = write!(out, ",\"status\":\"{status}\",\"checks\":[");
        for (i, check) in checks.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            text::json_string(&mut out, &check.name);
            let _ = write!(out, ",\"ok\":{},\"detail\":", check.ok);
            text::json_string(&mut out, &check.detail);
            out.push('}');
        }
        out.push(']');
        if let Some(job) = job {
            let number = |n: Option<i32>| n.map_or("null".into(), |n| n.to_string());
            let _ = write!(
                out,
                ",\"job\":{{\"exit_code\":{},\"signal\":{},\"duration_ms\":{},\"tail\":",
                number(job.exit_code),
                number(job.signal),
                job.duration_ms
            );
            text::json_string(&mut out, &job.tail);
            out.push('}');
        }
    }
    if reporting.vitals {
        out.push_str(",\"host\":");
        vitals::write_host_json(&mut out, disks, disks_within);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: std::time::Duration = std::time::Duration::from_secs(1);

    #[test]
    fn the_default_body_is_the_one_servers_know() {
        assert_eq!(
            default_body(),
            format!("{{\"agent_version\":\"{VERSION}\"}}")
        );
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
        let read = |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap();
        assert_eq!(
            read(compose(
                status,
                std::slice::from_ref(&pass),
                None,
                &[],
                SECOND
            ))["status"],
            "ok"
        );
        assert_eq!(
            read(compose(status, &[pass.clone(), fail], None, &[], SECOND))["status"],
            "fail"
        );
        let job = JobReport {
            exit_code: Some(3),
            signal: None,
            duration_ms: 5,
            tail: "x\n".into(),
        };
        let body = read(compose(status, &[pass], Some(&job), &[], SECOND));
        assert_eq!(body["status"], "fail");
        assert_eq!(body["job"]["exit_code"], 3);
        assert!(body.get("host").is_none());
    }
}
