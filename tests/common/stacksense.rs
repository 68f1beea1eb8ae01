//! A test server that follows the StackSense server's agent contract as
//! measured (docs/design.md, "The StackSense agent API"), to the byte where the
//! agent can tell: statuses, JSON bodies, `Authorization: Bearer` with that
//! casing, 405 before auth, the 256 KiB limit, ping that is not a beat, and
//! the legacy endpoint's CSRF refusal. Written from the contract, not from
//! the server's code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Receiver, Reply, Request, Serve, TlsFixture, bind};

/// The token of [`StackSense::start`]'s box: 43 characters, as
/// `manage.py create_agent_token` makes them.
pub const TOKEN: &str = "Zk3tQ9vX2mLw8RbN4pYc7HdJ1sFg6AeU0oIqTnVyWx5";
pub const BOX_ID: u64 = 3;
pub const BOX_NAME: &str = "web-1";

/// Bodies past this get 413 on the push endpoints.
const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, Clone, Default)]
pub struct Beat {
    pub at: Option<Instant>,
    /// What the last heartbeat said its version was (None: no body, or no field).
    pub version: Option<String>,
}

#[derive(Default)]
struct State {
    /// token -> (server id, name)
    tokens: HashMap<String, (u64, String)>,
    beats: HashMap<u64, Vec<Beat>>,
    metrics: HashMap<u64, Vec<Value>>,
    services: HashMap<u64, Vec<Value>>,
    containers: HashMap<u64, Vec<Value>>,
    pings: usize,
    /// Every metrics push gets 400 with this error, after its beat is recorded.
    refuse_metrics: Option<String>,
    /// Paths answered with this status before anything else (nothing
    /// recorded): a revision without that endpoint, a proxy failing there.
    failing: HashMap<String, u16>,
}

/// The metrics fields the server reads as floats and as integers: a value
/// that is neither a number nor a string of one is a 400.
const FLOAT_FIELDS: [&str; 8] = [
    "cpu_percent",
    "memory_percent",
    "swap_percent",
    "cpu_load_avg_1m",
    "cpu_load_avg_5m",
    "cpu_load_avg_15m",
    "net_utilization_sent",
    "net_utilization_recv",
];
const INT_FIELDS: [&str; 19] = [
    "cpu_count",
    "physical_cpu_count",
    "memory_total",
    "memory_available",
    "memory_used",
    "memory_buffers",
    "memory_cached",
    "memory_shared",
    "swap_total",
    "swap_used",
    "network_connections",
    "disk_io_read",
    "disk_io_write",
    "net_io_sent",
    "net_io_recv",
    "nic_max_speed_bits",
    "disk_read_bytes_total",
    "disk_write_bytes_total",
    "system_uptime_seconds",
];

/// Python's `int(v)`: an integer, a float (truncated) or a string of an integer.
fn reads_as_int(v: &Value) -> bool {
    v.is_number() || v.as_str().is_some_and(|s| s.trim().parse::<i64>().is_ok())
}

fn reads_as_float(v: &Value) -> bool {
    v.is_number() || v.as_str().is_some_and(|s| s.trim().parse::<f64>().is_ok())
}

pub struct StackSense {
    pub rx: Receiver,
    state: Arc<Mutex<State>>,
}

impl StackSense {
    /// Plain HTTP on 127.0.0.1, with one box (BOX_ID, BOX_NAME, TOKEN).
    pub fn start() -> StackSense {
        StackSense::on(None, Serve::default())
    }

    pub fn start_tls(tls: &TlsFixture) -> StackSense {
        StackSense::on(Some(tls.server_config()), Serve::default())
    }

    pub fn on(tls: Option<Arc<rustls::ServerConfig>>, how: Serve) -> StackSense {
        StackSense::serving(bind(), tls, how, TOKEN)
    }

    /// On `listener`, with one box whose token is `token`.
    pub fn serving(
        listener: std::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        how: Serve,
        token: &str,
    ) -> StackSense {
        let state = Arc::new(Mutex::new(State::default()));
        state
            .lock()
            .unwrap()
            .tokens
            .insert(token.into(), (BOX_ID, BOX_NAME.into()));
        let shared = Arc::clone(&state);
        let rx = Receiver::answering(listener, tls, how, move |_, request| {
            answer(&mut shared.lock().unwrap(), request)
        });
        StackSense { rx, state }
    }

    pub fn url(&self) -> String {
        self.rx.url()
    }

    /// The heartbeats the server recorded for `id` (any push records one).
    pub fn beats(&self, id: u64) -> Vec<Beat> {
        self.state
            .lock()
            .unwrap()
            .beats
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn metrics(&self, id: u64) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .metrics
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn services(&self, id: u64) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .services
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn containers(&self, id: u64) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .containers
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn pings(&self) -> usize {
        self.state.lock().unwrap().pings
    }

    /// From now on `path` answers `status` and records nothing: 404 as a
    /// server revision without that endpoint, 5xx as a failing proxy.
    pub fn fail(&self, path: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .failing
            .insert(path.into(), status);
    }

    /// From now on every metrics push is refused with `error` (a 400).
    pub fn refuse_metrics(&self, error: &str) {
        self.state.lock().unwrap().refuse_metrics = Some(error.into());
    }
}

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::Status(
        status,
        vec![("Content-Type", "application/json".into())],
        body.to_string().into_bytes(),
    )
}

fn error(status: u16, message: &str) -> Reply {
    json_reply(status, json!({ "error": message }))
}

/// What Django answers an anonymous POST to a view that is not CSRF-exempt.
fn csrf_page() -> Reply {
    let page = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  \
        <title>403 Forbidden</title>\n</head>\n<body>\n  <h1>Forbidden <span>(403)</span></h1>\n  \
        <p>CSRF verification failed. Request aborted.</p>\n  <p>You are seeing this message \
        because this site requires a CSRF cookie when submitting forms.</p>\n</body>\n</html>\n";
    Reply::Status(
        403,
        vec![("Content-Type", "text/html; charset=utf-8".into())],
        page.as_bytes().to_vec(),
    )
}

fn not_found() -> Reply {
    Reply::Status(
        404,
        vec![("Content-Type", "text/html; charset=utf-8".into())],
        b"<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n".to_vec(),
    )
}

fn answer(state: &mut State, request: &Request) -> Reply {
    let path = request.path.split('?').next().unwrap_or("");
    let method = request.method.as_str();
    // The legacy route: integers only; CSRF refuses every anonymous POST.
    if let Some(id) = path
        .strip_prefix("/api/heartbeat/")
        .and_then(|rest| rest.strip_suffix('/'))
    {
        if !id.bytes().all(|b| b.is_ascii_digit()) || id.is_empty() {
            return not_found();
        }
        return match method {
            "POST" => csrf_page(),
            _ => Reply::Status(302, vec![("Location", "/login/".into())], Vec::new()),
        };
    }
    match state.failing.get(path) {
        Some(404) => return not_found(),
        Some(&status) => {
            let page = format!("<html><title>{status}</title>Bad Gateway</html>");
            return Reply::Status(status, Vec::new(), page.into_bytes());
        }
        None => {}
    }
    let allowed = match path {
        "/api/agent/ping/" => "GET",
        "/api/agent/heartbeat/"
        | "/api/agent/metrics/"
        | "/api/agent/services/"
        | "/api/agent/containers/" => "POST",
        _ => return not_found(),
    };
    if method != allowed {
        return Reply::Status(405, vec![("Allow", allowed.into())], Vec::new());
    }
    // Exactly "Bearer " (Django's startswith): "bearer" is refused.
    let token = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return error(401, "missing or malformed Authorization header");
    };
    let Some((id, name)) = state.tokens.get(token).cloned() else {
        return error(401, "invalid or disabled token");
    };
    let version = || {
        serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|v| {
                v.get("agent_version")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
    };
    let beat = |state: &mut State| {
        let beat = Beat {
            at: Some(Instant::now()),
            version: version(),
        };
        state.beats.entry(id).or_default().push(beat);
    };
    match path {
        "/api/agent/ping/" => {
            state.pings += 1;
            json_reply(
                200,
                json!({"status": "ok", "server_id": id, "server_name": name, "authenticated": true}),
            )
        }
        "/api/agent/heartbeat/" => {
            beat(state);
            json_reply(200, json!({"status": "ok", "heartbeat_received": true}))
        }
        "/api/agent/metrics/" => {
            if request.body.len() > MAX_BODY {
                return error(413, "payload too large");
            }
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                return error(400, "request body is not valid JSON");
            };
            beat(state);
            let Some(map) = body.as_object() else {
                return error(400, "payload must be a JSON object");
            };
            for field in super::schema::metrics_required_numbers() {
                if map.get(&field).is_none_or(Value::is_null) {
                    return error(400, &format!("missing required field: {field}"));
                }
            }
            let present = |f: &&str| map.get(*f).filter(|v| !v.is_null());
            for field in FLOAT_FIELDS.iter().filter(|f| present(f).is_some()) {
                if !reads_as_float(&map[*field]) {
                    return error(400, &format!("field '{field}' is not a valid number"));
                }
            }
            for field in INT_FIELDS.iter().filter(|f| present(f).is_some()) {
                if !reads_as_int(&map[*field]) {
                    return error(400, &format!("field '{field}' is not a valid number"));
                }
            }
            for field in ["disk_usage", "network_io"] {
                if map
                    .get(field)
                    .is_some_and(|v| !v.is_null() && !v.is_object())
                {
                    return error(400, &format!("field '{field}' must be a JSON object"));
                }
            }
            if let Some(refusal) = &state.refuse_metrics {
                return error(400, &refusal.clone());
            }
            state.metrics.entry(id).or_default().push(body.clone());
            let n = state.metrics.values().map(Vec::len).sum::<usize>();
            json_reply(200, json!({"status": "ok", "stored": true, "metric_id": n}))
        }
        _ => {
            if request.body.len() > MAX_BODY {
                return error(413, "payload too large");
            }
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                return error(400, "request body is not valid JSON");
            };
            beat(state);
            let list = if path == "/api/agent/containers/" {
                "containers"
            } else {
                "services"
            };
            let Some(items) = body.get(list).and_then(Value::as_array) else {
                return error(400, &format!("missing '{list}' list"));
            };
            let received = items.len();
            let kept = if list == "containers" {
                &mut state.containers
            } else {
                &mut state.services
            };
            kept.entry(id).or_default().push(body);
            json_reply(200, json!({"status": "ok", "received": received}))
        }
    }
}

/// Waits until the server holds `n` pushes of a kind.
pub fn wait_for_pushes(what: impl Fn() -> Vec<Value>, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let got = what();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} pushes within {within:?}, got {}",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
