//! The body of `POST /api/agent/services/`: what the server's own agent
//! sends, found on the box (discover/): each running systemd service, each
//! listening TCP port with its name and connect time; and each health check
//! as one more service, so the server's availability samples, SLOs and
//! alerts work for the checks an operator marks monitored. A check on a
//! local port and that port are one row: the check's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::body::{Outside, Version, fitting, fnv1a, round, to_json};
use super::{Collect, Collected, LeftOut, Moment};
use crate::checks::CheckResult;
use crate::config::health::{Check, Probe};
use crate::discover::connect::Connect;
use crate::discover::{Discovery, Found, MAX_TIMED, Port, names};
use crate::host::units::MAX_UNITS;

/// The server's limits (it cuts longer values): a name, an address, an
/// error, a label, a process id.
const MAX_NAME_CHARS: usize = 100;
const MAX_ADDRESS_CHARS: usize = 50;
const MAX_ERROR_CHARS: usize = 1000;
const MAX_LABEL_CHARS: usize = 150;
/// What the server records as where a check's row was found (<= 30 chars).
const DETECTED_VIA: &str = "stacksense-heartbeat";

#[derive(Debug, Serialize)]
struct Services<'a> {
    #[serde(flatten)]
    version: Version,
    services: &'a [Service],
}

/// A row leaves out what is the server's default (status "running", no
/// provenance) on a push that goes every minute: a unit's row is half the
/// bytes. Its type stays, though "systemd" is the default too: the server
/// folds a port into the one unit it belongs to only by that type.
#[derive(Debug, Serialize)]
struct Service {
    name: Outside,
    /// "running" is up; anything else is down.
    #[serde(skip_serializing_if = "is_running")]
    status: &'static str,
    service_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detected_via: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bind_address: Option<Outside>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<Outside>,
    #[serde(flatten)]
    latency: Option<Latency>,
}

fn is_running(status: &&str) -> bool {
    *status == "running"
}

/// A response time, for the rows that have one.
#[derive(Debug, Serialize)]
struct Latency {
    latency_ms: Option<f64>,
    latency_success: bool,
    latency_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_error: Option<Outside>,
}

impl Latency {
    fn of(connect: &Connect) -> Latency {
        match connect {
            Connect::Took(took) => Latency {
                latency_ms: Some(millis(*took)),
                latency_success: true,
                latency_type: "TCP",
                latency_error: None,
            },
            Connect::Failed(why) => Latency {
                latency_ms: None,
                latency_success: false,
                latency_type: "TCP",
                latency_error: Some(Outside::capped(why, MAX_ERROR_CHARS)),
            },
        }
    }
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

/// The host a tcp or http check connects to.
fn check_host(probe: &Probe) -> Option<String> {
    match probe {
        Probe::Tcp { host, .. } => Some(host.clone()),
        Probe::Http { url } => {
            let uri: ureq::http::Uri = url.parse().ok()?;
            Some(uri.host()?.trim_matches(['[', ']']).to_string())
        }
        _ => None,
    }
}

/// The discovered port a check is about: one it reaches on this box
/// (loopback, a wildcard, localhost, or the address the port listens on).
fn covered<'a>(check: &Check, ports: &'a [Port]) -> Option<&'a Port> {
    let port = shape(&check.probe).0?;
    let host = check_host(&check.probe)?;
    let found = ports.iter().find(|p| p.port == port)?;
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified() || ip == found.bind);
    local.then_some(found)
}

/// A service name within the server's 100 characters: a longer text keeps
/// its first 90 and a hash of the whole, so two long names that agree in
/// their first 100 characters stay two services (the server keys services
/// by name and keeps the last row: one would hide the other's failure),
/// each under the same name at every push.
fn service_name(text: &str) -> Outside {
    if text.chars().count() <= MAX_NAME_CHARS {
        return Outside::new(text);
    }
    let head: String = text.chars().take(MAX_NAME_CHARS - 10).collect();
    Outside::new(&format!("{head} #{:08x}", fnv1a(text) as u32))
}

fn check_row(check: &Check, result: &CheckResult, label: Option<&str>) -> Service {
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
        // Not "port", though it may have one: the server folds a "port" row
        // of a well-known port into the one unit it could belong to, and a
        // failing check would vanish into a running unit.
        service_type: "check",
        detected_via: Some(DETECTED_VIA),
        port,
        bind_address,
        process_id: None,
        display_name: label.map(|l| Outside::capped(l, MAX_LABEL_CHARS)),
        latency,
    }
}

/// A unit's row; `port`, the lowest port its processes listen on, makes
/// it one row with a response time (what the server would fold itself).
fn unit_row(unit: &str, port: Option<&Port>) -> Service {
    Service {
        name: service_name(unit),
        status: "running",
        service_type: "systemd",
        detected_via: None,
        port: port.map(|p| p.port),
        bind_address: port.map(|p| Outside::capped(&p.bind.to_string(), MAX_ADDRESS_CHARS)),
        process_id: port
            .and_then(|p| p.owner.as_ref())
            .map(|o| o.pid.to_string()),
        display_name: None,
        latency: port.and_then(|p| p.connect.as_ref()).map(Latency::of),
    }
}

/// A port's row, named `port-N`: the server's stable identity for a port
/// (a label that changes with a banner or a restart rides in
/// `display_name`).
fn port_row(port: &Port) -> Service {
    let owner = port.owner.as_ref();
    let process = owner.map(|o| o.service.as_deref().unwrap_or(&o.name));
    let (label, via) = names::label(port.port, port.product.as_deref(), process);
    Service {
        name: Outside::new(&format!("port-{}", port.port)),
        status: "running",
        service_type: "port",
        detected_via: Some(via),
        port: Some(port.port),
        bind_address: Some(Outside::capped(&port.bind.to_string(), MAX_ADDRESS_CHARS)),
        process_id: owner.map(|o| o.pid.to_string()),
        display_name: Some(Outside::capped(&label, MAX_LABEL_CHARS)),
        latency: port.connect.as_ref().map(Latency::of),
    }
}

/// Every row of one push: the checks first (in their order), then the
/// running units, then the ports no check or unit took. `labels` keeps
/// each checked port's last label, so a check's row keeps its name on the
/// Services page while its port is down.
fn rows(
    checks: &[Arc<Check>],
    results: &[CheckResult],
    found: &Found,
    labels: &mut HashMap<u16, String>,
) -> Vec<Service> {
    let mut taken: Vec<u16> = Vec::new();
    let mut out = Vec::new();
    for (check, result) in checks.iter().zip(results) {
        let port = covered(check, &found.ports);
        if let Some(port) = port {
            let process = port
                .owner
                .as_ref()
                .map(|o| o.service.as_deref().unwrap_or(&o.name));
            let (label, _) = names::label(port.port, port.product.as_deref(), process);
            labels.insert(port.port, label);
            taken.push(port.port);
        }
        let label = shape(&check.probe).0.and_then(|p| labels.get(&p));
        out.push(check_row(check, result, label.map(String::as_str)));
    }
    labels.retain(|port, _| checks.iter().any(|c| shape(&c.probe).0 == Some(*port)));
    for unit in found.units.iter().flatten() {
        let port = found.ports.iter().find(|p| {
            !taken.contains(&p.port)
                && p.owner
                    .as_ref()
                    .is_some_and(|o| o.service.as_deref() == Some(unit.as_str()))
        });
        if let Some(port) = port {
            taken.push(port.port);
        }
        out.push(unit_row(unit, port));
    }
    for port in found.ports.iter().filter(|p| !taken.contains(&p.port)) {
        out.push(port_row(port));
    }
    // One row per name: the server keeps the last of two.
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.name.clone()));
    out
}

fn millis(took: Duration) -> f64 {
    round(took.as_secs_f64() * 1000.0, 1)
}

/// What the look could not give, said once.
fn left_out(found: &Found) -> Vec<LeftOut> {
    let mut out = Vec::new();
    if found.units.is_none() {
        out.push(LeftOut::expected(
            "systemd services",
            "systemd does not run this box (no /run/systemd/system, or no unit cgroups \
             under /sys/fs/cgroup); its listening ports and checks are reported",
        ));
    }
    if found.units_cut {
        out.push(LeftOut::new(
            format!("running services after the first {MAX_UNITS}"),
            "this box runs more",
        ));
    }
    if found.ports_unreadable {
        out.push(LeftOut::new(
            "listening ports",
            "/proc/net/tcp cannot be read (a unit with ProcSubset=pid or a private /proc?)",
        ));
    }
    if found.untimed > 0 {
        out.push(LeftOut::new(
            format!("response times of ports after the first {MAX_TIMED}"),
            format!("{} more ports listen", found.untimed),
        ));
    }
    out
}

/// The services found on the box, and each health check.
#[derive(Default)]
pub struct Collector {
    discovery: Discovery,
    labels: HashMap<u16, String>,
}

impl Collect for Collector {
    fn collect(&mut self, at: &Moment) -> Collected {
        let found = self.discovery.look(at.limit);
        let services = rows(at.checks, at.results, &found, &mut self.labels);
        let (body, kept) = fitting(services.len(), |n| {
            to_json(&Services {
                version: Version::default(),
                services: services.get(..n).unwrap_or_default(),
            })
        });
        let mut left_out = left_out(&found);
        if kept < services.len() {
            left_out.push(LeftOut::new(
                format!("services after the first {kept}"),
                "the body would pass the server's 256 KiB limit; the server marks them stopped",
            ));
        }
        Collected {
            body: Some(body),
            left_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::health;
    use crate::host::sockets::Owner;

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

    fn parsed(texts: &[&str]) -> Vec<Arc<Check>> {
        texts
            .iter()
            .map(|c| Arc::new(health::parse(c).unwrap()))
            .collect()
    }

    fn body(checks: &[Arc<Check>], results: &[CheckResult], found: &Found) -> serde_json::Value {
        let services = rows(checks, results, found, &mut HashMap::new());
        let text = to_json(&Services {
            version: Version::default(),
            services: &services,
        });
        serde_json::from_str(&text).unwrap()
    }

    fn port(number: u16, owner: Option<(&str, Option<&str>)>, connect: Connect) -> Port {
        Port {
            port: number,
            inode: u64::from(number),
            bind: "0.0.0.0".parse().unwrap(),
            owner: owner.map(|(name, service)| Owner {
                pid: 4000 + u32::from(number),
                name: name.into(),
                service: service.map(str::to_string),
            }),
            product: None,
            target: Some(format!("127.0.0.1:{number}").parse().unwrap()),
            connect: Some(connect),
        }
    }

    #[test]
    fn long_names_that_agree_in_their_first_100_characters_stay_two_services() {
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
        let checks = parsed(&["tcp db.local:5432", "http https://h/x", "disk / 90%"]);
        let results = [
            result("tcp db.local:5432", true, 12),
            result("http https://h/x", false, 3),
            result("disk / 90%", true, 0),
        ];
        let body = body(&checks, &results, &Found::default());
        let s = &body["services"];
        assert_eq!(s[0]["name"], "tcp db.local:5432");
        assert!(
            s[0].get("status").is_none(),
            "running: the server's default"
        );
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

    /// A Debian box: postgresql checked by hand, ssh and a bare app found.
    fn debian() -> Found {
        Found {
            units: Some(vec![
                "cron".into(),
                "postgresql@15-main".into(),
                "ssh".into(),
            ]),
            ports: vec![
                port(
                    22,
                    Some(("sshd", Some("ssh"))),
                    Connect::Took(Duration::from_micros(180)),
                ),
                port(
                    5432,
                    Some(("postgres", Some("postgresql@15-main"))),
                    Connect::Took(Duration::from_micros(90)),
                ),
                port(8080, None, Connect::Failed("connection refused".into())),
                port(
                    9000,
                    Some(("gunicorn", None)),
                    Connect::Took(Duration::from_millis(2)),
                ),
            ],
            ..Found::default()
        }
    }

    #[test]
    fn units_ports_and_checks_are_one_row_each() {
        let checks = parsed(&["tcp 127.0.0.1:5432"]);
        let results = [result("tcp 127.0.0.1:5432", false, 0)];
        let body = body(&checks, &results, &debian());
        let rows = body["services"].as_array().unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "tcp 127.0.0.1:5432",
                "cron",
                "postgresql@15-main",
                "ssh",
                "port-8080",
                "port-9000"
            ],
            "the checked port is the check's row, ssh's port is folded into ssh"
        );
        let check = &rows[0];
        assert_eq!(
            check["status"], "failed",
            "the check's verdict, not the port's"
        );
        assert_eq!(check["display_name"], "postgresql@15-main (:5432)");
        assert_eq!(check["service_type"], "check");
        assert!(
            rows[2].get("port").is_none(),
            "its port went with the check"
        );
        assert_eq!(
            rows[1],
            serde_json::json!({"name": "cron", "service_type": "systemd"}),
            "no status: running is the server's default"
        );
        let ssh = &rows[3];
        assert_eq!(ssh["service_type"], "systemd");
        assert_eq!(ssh["port"], 22);
        assert_eq!(ssh["process_id"], "4022");
        assert_eq!(ssh["latency_ms"], 0.2);
        assert_eq!(ssh["latency_success"], true);
        assert!(rows[1].get("latency_ms").is_none(), "cron listens nowhere");
        let app = &rows[4];
        assert_eq!(app["service_type"], "port");
        assert_eq!(app["display_name"], "HTTP-Alt (:8080)");
        assert_eq!(app["detected_via"], "port-map");
        assert_eq!(app["latency_success"], false);
        assert_eq!(app["latency_error"], "connection refused");
        assert!(app["latency_ms"].is_null());
        assert_eq!(rows[5]["display_name"], "gunicorn (:9000)");
        assert_eq!(rows[5]["detected_via"], "port-process");
    }

    #[test]
    fn a_checked_port_that_stops_keeps_its_rows_name_and_label() {
        let checks = parsed(&["tcp localhost:5432"]);
        let results = [result("tcp localhost:5432", true, 1)];
        let mut labels = HashMap::new();
        let up = rows(&checks, &results, &debian(), &mut labels);
        let mut down = debian();
        down.ports.retain(|p| p.port != 5432);
        let results = [result("tcp localhost:5432", false, 0)];
        let after = rows(&checks, &results, &down, &mut labels);
        let label = |s: &Service| serde_json::to_value(&s.display_name).unwrap();
        assert_eq!(label(&up[0]), label(&after[0]));
        assert_eq!(after[0].status, "failed");
        let remote = parsed(&["tcp db.example:5432"]);
        let results = [result("tcp db.example:5432", true, 1)];
        let far = rows(&remote, &results, &debian(), &mut HashMap::new());
        assert!(
            far[0].display_name.is_none(),
            "another box's 5432 is not ours"
        );
        assert!(
            far.iter()
                .any(|s| s.port == Some(5432) && s.service_type == "systemd")
        );
    }

    #[test]
    fn a_box_without_systemd_or_proc_net_says_so_once_each() {
        let found = Found {
            ports_unreadable: true,
            untimed: 3,
            ..Found::default()
        };
        let said: Vec<String> = left_out(&found).iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(said[0].starts_with("systemd services: systemd does not run this box"));
        assert!(said[1].contains("/proc/net/tcp"));
        assert!(said[2].contains("3 more ports"));
    }
}
