//! The body of `POST /api/agent/services/`: each health check as one
//! StackSense service, so the server's availability samples, SLOs and
//! alerts work for the checks an operator marks monitored.

use std::time::Duration;

use crate::body::CheckResult;
use crate::config::health::{Check, Probe};
use crate::text;
use crate::version::VERSION;

/// The server's limits (it cuts longer values): a name, an error.
const MAX_NAME_CHARS: usize = 100;
const MAX_ERROR_CHARS: usize = 1000;
/// What the server records as where the service was found (<= 30 chars).
const DETECTED_VIA: &str = "stacksense-heartbeat";

/// The server's `status` for a check: "running" is up; anything else is down.
fn status(ok: bool) -> &'static str {
    if ok { "running" } else { "failed" }
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

/// The services body for `results`, in the checks' order.
pub fn body(checks: &[&Check], results: &[CheckResult]) -> String {
    let mut out = String::with_capacity(128 + 256 * results.len());
    out.push_str("{\"agent_version\":\"");
    out.push_str(VERSION);
    out.push_str("\",\"services\":[");
    for (i, (check, result)) in checks.iter().zip(results).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let name: String = result.name.chars().take(MAX_NAME_CHARS).collect();
        out.push_str("{\"name\":");
        text::json_string(&mut out, &name);
        out.push_str(",\"status\":\"");
        out.push_str(status(result.ok));
        out.push_str("\",\"service_type\":\"check\",\"detected_via\":\"");
        out.push_str(DETECTED_VIA);
        out.push('"');
        let (port, latency_type) = shape(&check.probe);
        if let Some(port) = port {
            out.push_str(&format!(",\"port\":{port}"));
        }
        if let Probe::Tcp { host, .. } = &check.probe {
            out.push_str(",\"bind_address\":");
            text::json_string(&mut out, &host.chars().take(50).collect::<String>());
        }
        if let Some(kind) = latency_type {
            let took = result.took.filter(|_| result.ok);
            out.push_str(&format!(
                ",\"latency_ms\":{},\"latency_success\":{},\"latency_type\":\"{kind}\"",
                took.map_or("null".into(), millis),
                result.ok
            ));
            if !result.ok {
                out.push_str(",\"latency_error\":");
                let error: String = result.detail.chars().take(MAX_ERROR_CHARS).collect();
                text::json_string(&mut out, &error);
            }
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

fn millis(took: Duration) -> String {
    text::decimal(took.as_secs_f64() * 1000.0, 1)
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
    fn each_check_is_a_service_with_the_servers_fields() {
        let checks: Vec<Check> = ["tcp db.local:5432", "http https://h/x", "disk / 90%"]
            .into_iter()
            .map(|c| health::parse(c).unwrap())
            .collect();
        let refs: Vec<&Check> = checks.iter().collect();
        let results = [
            result("tcp db.local:5432", true, 12),
            result("http https://h/x", false, 3),
            result("disk / 90%", true, 0),
        ];
        let body: serde_json::Value = serde_json::from_str(&body(&refs, &results)).unwrap();
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
        assert_eq!(body["agent_version"], VERSION);
    }
}
