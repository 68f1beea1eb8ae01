//! A heartbeat receiver on 127.0.0.1, to try the agent by hand and for the
//! packaging tests. See `--help`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Receiver, Reply, Request, Serve, StackSense, TlsFixture, ok_json, status};

const HELP: &str = "\
receiver: a StackSense heartbeat server for trying the agent, on 127.0.0.1 only.

It answers every request 200 with the JSON a StackSense server sends
({\"heartbeat_received\": true, ...}; GET /api/agent/ping/ with any bearer
token: \"authenticated\": true), or with a failure you ask for. With --token it
follows the real server's agent contract instead: only that token, the
agent API's answers and errors, the legacy endpoint's CSRF refusal. It
prints one line per request to stdout as it arrives:

    <unix time> <METHOD> <path> auth=<Authorization header or -> -> <status>

Usage: cargo run --example receiver -- [OPTIONS]

Options:
  --port N         listen on 127.0.0.1:N (default: a free port, printed)
  --tls DIR        serve HTTPS with a CA made for this run, written to
                   DIR/ca.pem (give it to the agent with --ca-file)
  --fail STATUS    answer STATUS (e.g. 503) instead of 200 ...
  --for N          ... to N requests (default: all of them) ...
  --after M        ... after answering the first M normally (default 0)
  --keep-alive     keep connections open (as most servers do)
  --token TOKEN    follow the StackSense contract, accepting only TOKEN
  -h, --help       this text

Example: see the agent retry and recover (beats 3-5 get a 503):
    cargo run --example receiver -- --port 8080 --fail 503 --for 3 --after 2
    STACKSENSE_TOKEN=t stacksense-heartbeat --api-url http://127.0.0.1:8080 --interval 2
";

struct Options {
    port: u16,
    tls_dir: Option<std::path::PathBuf>,
    fail: Option<u16>,
    count: usize,
    after: usize,
    keep_alive: bool,
    token: Option<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        port: 0,
        tls_dir: None,
        fail: None,
        count: usize::MAX,
        after: 0,
        keep_alive: false,
        token: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs {what}"))
        };
        let number = |text: String, what: &str| {
            text.parse::<u64>()
                .map_err(|_| format!("{arg}: {text:?} is not {what}"))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            "--port" => {
                o.port = number(value("a port")?, "a port 0-65535")?
                    .try_into()
                    .map_err(|_| "--port: out of range".to_string())?
            }
            "--tls" => o.tls_dir = Some(value("a directory")?.into()),
            "--fail" => match number(value("a status")?, "an HTTP status")? {
                s @ 100..=599 => o.fail = Some(s as u16),
                s => return Err(format!("--fail: {s} is not an HTTP status (100-599)")),
            },
            "--for" => o.count = number(value("a count")?, "a count")? as usize,
            "--after" => o.after = number(value("a count")?, "a count")? as usize,
            "--keep-alive" => o.keep_alive = true,
            "--token" => o.token = Some(value("a token")?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("receiver: {e}; see --help");
            std::process::exit(2);
        }
    };
    let listener = match std::net::TcpListener::bind(("127.0.0.1", o.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("receiver: cannot listen on 127.0.0.1:{}: {e}", o.port);
            std::process::exit(1);
        }
    };
    let tls = o.tls_dir.map(|dir| {
        let fixture = TlsFixture::new();
        let ca = dir.join("ca.pem");
        if let Err(e) = std::fs::write(&ca, &fixture.ca_pem) {
            eprintln!("receiver: cannot write {}: {e}", ca.display());
            std::process::exit(1);
        }
        fixture.server_config()
    });
    let how = Serve {
        keep_alive: o.keep_alive,
        on_request: Some(Arc::new(print_request)),
        ..Serve::default()
    };
    let (fail, failing) = (o.fail, o.after..o.after.saturating_add(o.count));
    // Held until the process ends: dropping either stops it serving.
    let (_contract, _lenient, url) = match &o.token {
        Some(token) => {
            let server = StackSense::serving(listener, tls, how, token);
            let url = server.url();
            (Some(server), None, url)
        }
        None => {
            let rx = Receiver::answering(listener, tls, how, move |n, r| match fail {
                Some(code) if failing.contains(&n) => status(code),
                _ if r.path.ends_with("/api/agent/ping/") => ping(r),
                _ => ok_json(),
            });
            let url = rx.url();
            (None, Some(rx), url)
        }
    };
    println!("listening {url}");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

/// The agent API's ping, for any bearer token.
fn ping(r: &Request) -> Reply {
    match r.header("authorization") {
        Some(auth) if auth.starts_with("Bearer ") => Reply::Status(
            200,
            vec![("Content-Type", "application/json".into())],
            br#"{"status":"ok","server_id":1,"server_name":"receiver","authenticated":true}"#
                .to_vec(),
        ),
        _ => Reply::Status(
            401,
            vec![("Content-Type", "application/json".into())],
            br#"{"error":"missing or malformed Authorization header"}"#.to_vec(),
        ),
    }
}

fn print_request(r: &Request, code: u16) {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let auth = r.header("authorization").unwrap_or("-");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:.3} {} {} auth={auth} -> {code}",
        wall.as_secs_f64(),
        r.method,
        r.path
    );
    if let Some(summary) = summary(r) {
        let _ = writeln!(out, "  {summary}");
    }
    let _ = out.flush();
}

/// A push's figures on one line, for the packaging tests to hold to what
/// the box really has: `metrics memory_total=N cpu_percent=X disks=/,/boot`,
/// `services NAME=STATUS; port-N=running(:N 0.1ms); ...` and
/// `containers NAME=STATE; ...`; a services push's systemd units also
/// as `units A B C`, sorted.
fn summary(r: &Request) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    if r.path.ends_with("/api/agent/metrics/") {
        let field = |name: &str| body.get(name).map_or("-".into(), |v| v.to_string());
        let disks: Vec<&str> = body["disk_usage"]
            .as_object()
            .map(|d| d.keys().map(String::as_str).collect())
            .unwrap_or_default();
        Some(format!(
            "metrics memory_total={} memory_available={} cpu_percent={} cpu_load_avg_1m={} \
             system_uptime_seconds={} disks={}",
            field("memory_total"),
            field("memory_available"),
            field("cpu_percent"),
            field("cpu_load_avg_1m"),
            field("system_uptime_seconds"),
            disks.join(",")
        ))
    } else if r.path.ends_with("/api/agent/services/") {
        let services: Vec<String> = body["services"]
            .as_array()?
            .iter()
            .map(|s| {
                let text = |k: &str| s[k].as_str().unwrap_or("-").to_string();
                // Absent: the server's default.
                let status = s["status"].as_str().unwrap_or("running");
                let timed = match (s["port"].as_u64(), s["latency_ms"].as_f64()) {
                    (Some(port), Some(ms)) => format!("(:{port} {ms}ms)"),
                    _ => String::new(),
                };
                format!("{}={status}{timed}", text("name"))
            })
            .collect();
        let mut units: Vec<&str> = body["services"]
            .as_array()?
            .iter()
            .filter(|s| s["service_type"] == "systemd")
            .filter_map(|s| s["name"].as_str())
            .collect();
        units.sort_unstable();
        Some(format!(
            "services {}\n  units {}",
            services.join("; "),
            units.join(" ")
        ))
    } else if r.path.ends_with("/api/agent/containers/") {
        let containers: Vec<String> = body["containers"]
            .as_array()?
            .iter()
            .map(|c| {
                let text = |k: &str| c[k].as_str().unwrap_or("-").to_string();
                format!("{}={}", text("name"), text("state"))
            })
            .collect();
        Some(format!("containers {}", containers.join("; ")))
    } else {
        None
    }
}
