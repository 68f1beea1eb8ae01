//! `--check`: the settings and where each came from, then the server's
//! answer over the path a beat takes, then each health check once.
//!
//! With the agent API the server is asked `GET /api/agent/ping/` with the
//! token: authenticated, and not a heartbeat. The legacy API has no request
//! without side effects (a POST there is a beat), so only DNS, TCP and TLS
//! are tried. `--offline` asks nothing, for callers that must not fail
//! while the network is down (OpenRC's start_pre at boot).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::checks::{CheckResult, Checks};
use crate::classify::{self, Failure, Route, Trusting};
use crate::clock::format_duration;
use crate::config::{self, Api, Config, Key, Proxying};
use crate::heartbeat::{Client, Outcome, Reply};
use crate::text;
use crate::tls;

/// `--check`'s exit status when the server cannot be reached or refuses
/// the token (2 is a config error, 0 all is well).
pub const SERVER_FAILED: u8 = 3;

/// Everything `--check` prints, and its exit status.
pub fn run(config: &Config, offline: bool) -> (String, u8) {
    let mut text = config::check_settings(config);
    let mut status = 0;
    if !offline {
        let (line, ok) = ask_server(config);
        text.push_str(&line);
        if !ok {
            status = SERVER_FAILED;
        }
    }
    if let Some(mut checks) = Checks::new(config) {
        let results = checks.run(config.settings.interval.value, &|| {});
        text.push_str(&check_results(
            &results,
            config.settings.report.value.status,
        ));
    }
    (text, status)
}

/// The `server` lines, and whether the server would take beats.
fn ask_server(config: &Config) -> (String, bool) {
    let budget = config.settings.timeout.value;
    let mut client = match Client::new(config) {
        Ok(client) => client,
        Err(e) => return (server_line(&format!("FAIL: {e}")), false),
    };
    if config.api.value == Api::Legacy {
        return legacy(config, budget);
    }
    let started = Instant::now();
    let Some(outcome) = client.ping(budget) else {
        return (server_line("not asked (no ping URL)"), true);
    };
    match outcome {
        Outcome::Accepted { reply, took } if reply.authenticated == Some(true) => {
            let who = describe(&reply);
            let line = format!(
                "authenticated as {who} (GET /api/agent/ping/ in {})",
                format_duration(took)
            );
            (server_line(&line) + "server OK\n", true)
        }
        Outcome::Accepted { .. } => {
            let line = format!(
                "FAIL: GET {} answered 2xx without \"authenticated\": true; is api_url the \
                 StackSense server (in {})?",
                text::untrusted(config.ping_url.as_deref().unwrap_or("")),
                format_duration(started.elapsed())
            );
            (server_line(&line), false)
        }
        Outcome::Failed(failure) | Outcome::Refused(failure) => {
            (failed(&failure, client.rejected_pin()), false)
        }
    }
}

/// `server 3 "web-1"`, as much of it as the reply gave.
fn describe(reply: &Reply) -> String {
    let id = reply
        .server_id
        .as_ref()
        .map(|id| text::untrusted(&id.to_string()));
    let name = reply.server_name.as_deref().map(text::untrusted);
    match (id, name) {
        (Some(id), Some(name)) => format!("server {id} \"{name}\""),
        (Some(id), None) => format!("server {id}"),
        (None, Some(name)) => format!("\"{name}\""),
        (None, None) => "a server that gave no id or name".into(),
    }
}

fn server_line(what: &str) -> String {
    config::aligned("server", what, "", 0)
}

/// A failure's line, and for a refused certificate the pin to add.
fn failed(failure: &Failure, pin: Option<String>) -> String {
    let hint = failure
        .hint
        .as_deref()
        .map(|h| format!(" - {h}"))
        .unwrap_or_default();
    let mut out = server_line(&format!("FAIL: {}{hint}", failure.reason));
    if let Some(pin) = pin {
        out.push_str(&format!(
            "the server showed the key {pin}; if that is your server, trust exactly that key \
             with\n    {}={pin}\nor \"{}\": \"{pin}\" in the config file (check the pin on the \
             server itself: see the README, \"Self-signed servers\")\n",
            Key::PinnedPubkey.env(),
            Key::PinnedPubkey.name()
        ));
    }
    out
}

/// The legacy API: a connection and its TLS handshake, not a request.
fn legacy(config: &Config, budget: Duration) -> (String, bool) {
    const NOT_ASKED: &str = "the legacy API has no request without side effects (a POST there \
        is a heartbeat), so the server itself was not asked: `--once` sends one beat and \
        says how it went";
    if !matches!(config.proxy, Proxying::Direct | Proxying::Bypassed { .. }) {
        let line = format!("not checked: beats go through a proxy, and {NOT_ASKED}");
        return (server_line(&line), true);
    }
    match connect(config, budget) {
        Ok(done) => {
            let out = server_line(&done) + &server_line(NOT_ASKED);
            (out, true)
        }
        Err((failure, pin)) => (failed(&failure, pin), false),
    }
}

/// DNS, TCP and (for https) the TLS handshake with the beat's trust,
/// within `budget`; what was reached, or why not.
fn connect(config: &Config, budget: Duration) -> Result<String, (Failure, Option<String>)> {
    let deadline = Instant::now() + budget;
    let uri: ureq::http::Uri = config.settings.api_url.value.parse().map_err(|_| {
        (
            Failure::fatal("api_url cannot be parsed".into(), None),
            None,
        )
    })?;
    let https = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let host = uri.host().unwrap_or_default().to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let origin = format!("{host}:{port}");
    let trust = match (&config.settings.pins, &config.ca) {
        (Some(_), _) => Trusting::Pinned,
        (None, Some(_)) => Trusting::CaFile,
        (None, None) => Trusting::Bundled,
    };
    let route = Route {
        origin: &origin,
        proxy: None,
        https,
        trust,
    };
    let io_failed = |e: &std::io::Error| (classify::io_failure(e, route, budget), None);
    let addr = resolve(&host, port, budget).map_err(|e| io_failed(&e))?;
    let left = deadline.saturating_duration_since(Instant::now());
    let mut tcp = TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1)))
        .map_err(|e| io_failed(&e))?;
    if !https {
        return Ok(format!("connected to {addr} (http://, no TLS)"));
    }
    let (tls_config, rejected) = tls::client_config(&config.trust()).map_err(|e| {
        let reason = format!("cannot set up TLS: {}", text::untrusted(&e.to_string()));
        (Failure::fatal(reason, None), None)
    })?;
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|_| {
        (
            Failure::fatal(format!("{host} is not a valid TLS name"), None),
            None,
        )
    })?;
    let mut conn = rustls::ClientConnection::new(tls_config, name)
        .map_err(|e| (Failure::fatal(text::untrusted(&e.to_string()), None), None))?;
    let left = deadline.saturating_duration_since(Instant::now());
    let limit = Some(left.max(Duration::from_millis(1)));
    let _ = (tcp.set_read_timeout(limit), tcp.set_write_timeout(limit));
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Err((classify::io_failure(&e, route, budget), rejected.take()));
        }
    }
    let _ = tcp.flush();
    Ok(format!("TLS to {addr}: the certificate is trusted"))
}

/// The first address of `host`, or the resolver's error, within `budget`.
fn resolve(host: &str, port: u16, budget: Duration) -> std::io::Result<SocketAddr> {
    let name = host.trim_matches(['[', ']']);
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    crate::wire::lookup_within(name, port, budget)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "failed to lookup address information: {} has no address",
                text::untrusted(host)
            ))
        })
}

/// `--check`'s account of running every check once.
pub fn check_results(results: &[CheckResult], reported: bool) -> String {
    // Details line up after the names, within 80 columns: a line that
    // would be longer puts its detail on the next line.
    let names: Vec<String> = results.iter().map(|r| text::untrusted(&r.name)).collect();
    let fits = |name: &str, detail: &str| 6 + name.len() + 2 + detail.len() <= 80;
    let width = names
        .iter()
        .zip(results)
        .filter(|(n, r)| fits(n, &r.detail))
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (name, r) in names.iter().zip(results) {
        let verdict = if r.ok { "pass" } else { "FAIL" };
        if fits(&format!("{name:<width$}"), &r.detail) {
            out.push_str(&format!("{verdict}  {name:<width$}  {}\n", r.detail));
        } else {
            out.push_str(&format!("{verdict}  {name}\n      {}\n", r.detail));
        }
    }
    let failing = results.iter().filter(|r| !r.ok).count();
    let outcome = if reported {
        "beats go out with \"status\": \"fail\""
    } else {
        "beats would be withheld"
    };
    if failing == 0 {
        out.push_str("checks OK\n");
    } else {
        out.push_str(&format!(
            "{failing} of {} check(s) failing: {outcome}\n",
            results.len()
        ));
    }
    out
}
