//! The body of `POST /api/agent/services/`: each health check as one
//! StackSense service, so the server's availability samples, SLOs and
//! alerts work for the checks an operator marks monitored.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::body::{Outside, Version, fnv1a, round, to_json};
use super::{Collect, Collected, Moment};
use crate::checks::CheckResult;
use crate::config::health::{Check, Probe};

/// The server's limits (it cuts longer values): a name, an address, an error.
const MAX_NAME_CHARS: usize = 100;
const MAX_ADDRESS_CHARS: usize = 50;
const MAX_ERROR_CHARS: usize = 1000;
/// What the server records as where the service was found (<= 30 chars).
const DETECTED_VIA: &str = "stacksense-heartbeat";

#[derive(Debug, Serialize)]
struct Services {
    #[serde(flatten)]
    version: Version,
    services: Vec<Service>,
}

#[derive(Debug, Serialize)]
struct Service {
    name: Outside,
    /// "running" is up; anything else is down.
    status: &'static str,
    service_type: &'static str,
    detected_via: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bind_address: Option<Outside>,
    #[serde(flatten)]
    latency: Option<Latency>,
}

/// A response time, for the checks that have one.
#[derive(Debug, Serialize)]
struct Latency {
    latency_ms: Option<f64>,
    latency_success: bool,
    latency_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_error: Option<Outside>,
}

/// The port and latency type the server shows for a check: only tcp and
/// http checks have a port; a cmd check's run time is a response time of
/// the "other" kind; disk, memory and load checks have no response time.
fn shape(probe: &Probe) -> (Option<u16>, Option<&'static str>) {
    match probe {
        Probe::Tcp { port, .. } => (Some(*port), Some("TCP")),
        Probe::Http { url } => (url_port(url), Some("HTTP")),
        Probe::Cmd { .. } => (None, Some("OTHER")),
        Probe::Disk { .. } | Probe::Memory(_) | Probe::Load { .. } => (None, None),
    }
}

/// The port of a validated http(s) URL, the scheme's default when none is given.
fn url_port(url: &str) -> Option<u16> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    uri.port_u16().or(match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
        _ => Some(80),
    })
}

/// A check's service name: its text when it fits the server's 100
/// characters; else its first 90 and a hash of the whole text, so two
/// long checks that agree in their first 100 characters stay two services
/// (the server keys services by name and keeps the last row: one would
/// hide the other's failure), each under the same name at every push.
fn service_name(text: &str) -> Outside {
    if text.chars().count() <= MAX_NAME_CHARS {
        return Outside::new(text);
    }
    let head: String = text.chars().take(MAX_NAME_CHARS - 10).collect();
    Outside::new(&format!("{head} #{:08x}", fnv1a(text) as u32))
}

fn service(check: &Check, result: &CheckResult) -> Service {
    let (port, latency_type) = shape(&check.probe);
    let bind_address = match &check.probe {
        Probe::Tcp { host, .. } => Some(Outside::capped(host, MAX_ADDRESS_CHARS)),
        _ => None,
    };
    let latency = latency_type.map(|kind| Latency {
        latency_ms: result.took.filter(|_| result.ok).map(millis),
        latency_success: result.ok,
        latency_type: kind,
        latency_error: (!result.ok).then(|| Outside::capped(&result.detail, MAX_ERROR_CHARS)),
    });
    Service {
        name: service_name(&result.name),
        status: if result.ok { "running" } else { "failed" },
        service_type: "check",
        detected_via: DETECTED_VIA,
        port,
        bind_address,
        latency,
    }
}

/// The services body for `results`, in the checks' order.
fn body(checks: &[Arc<Check>], results: &[CheckResult]) -> String {
    let services = checks
        .iter()
        .zip(results)
        .map(|(check, result)| service(check, result))
        .collect();
    to_json(&Services {
        version: Version::default(),
        services,
    })
}

fn millis(took: Duration) -> f64 {
    round(took.as_secs_f64() * 1000.0, 1)
}

/// Each health check as one service.
pub struct Collector;

impl Collect for Collector {
    fn collect(&mut self, at: &Moment) -> Collected {
        Collected {
            body: Some(body(at.checks, at.results)),
            left_out: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::health;

    fn result(name: &str, ok: bool, ms: u64) -> CheckResult {
        CheckResult {
            name: name.into(),
            ok,
            detail: if ok {
                "ok".into()
            } else {
                "refused \"x\"".into()
            },
            took: Some(Duration::from_millis(ms)),
        }
    }

    #[test]
    fn long_checks_that_agree_in_their_first_100_characters_stay_two_services() {
        let url = format!("http https://h/{}", "x".repeat(120));
        let (a, b) = (format!("{url}/a"), format!("{url}/b"));
        let name = |t: &str| serde_json::to_value(service_name(t)).unwrap();
        assert_ne!(name(&a), name(&b));
        assert_eq!(name(&a), name(&a), "stable from push to push");
        assert_eq!(name(&a).as_str().unwrap().chars().count(), MAX_NAME_CHARS);
        assert_eq!(name("tcp db:5432"), "tcp db:5432");
    }

    #[test]
    fn each_check_is_a_service_with_the_servers_fields() {
        let checks: Vec<Arc<Check>> = ["tcp db.local:5432", "http https://h/x", "disk / 90%"]
            .into_iter()
            .map(|c| Arc::new(health::parse(c).unwrap()))
            .collect();
        let results = [
            result("tcp db.local:5432", true, 12),
            result("http https://h/x", false, 3),
            result("disk / 90%", true, 0),
        ];
        let body: serde_json::Value = serde_json::from_str(&body(&checks, &results)).unwrap();
        let s = &body["services"];
        assert_eq!(s[0]["name"], "tcp db.local:5432");
        assert_eq!(s[0]["status"], "running");
        assert_eq!(s[0]["port"], 5432);
        assert_eq!(s[0]["bind_address"], "db.local");
        assert_eq!(s[0]["latency_ms"], 12.0);
        assert_eq!(s[0]["latency_type"], "TCP");
        assert!(s[0].get("latency_error").is_none());
        assert_eq!(s[1]["status"], "failed");
        assert_eq!(s[1]["port"], 443);
        assert_eq!(s[1]["latency_success"], false);
        assert!(s[1]["latency_ms"].is_null());
        assert_eq!(s[1]["latency_error"], "refused \"x\"");
        assert!(s[2].get("port").is_none() && s[2].get("latency_ms").is_none());
        assert_eq!(body["agent_version"], crate::version::VERSION);
    }
}
