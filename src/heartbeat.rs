//! One heartbeat over HTTP(S): send the POST, read a little of the answer.
//! The agent loop sees it through [`Transport`], so its timing is tested
//! without a network.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ureq::http::Uri;
use ureq::tls::{RootCerts, TlsConfig};

use serde_json::Value;

use crate::classify::{self, Failure, Route};
use crate::cli::VERSION;
use crate::config::{Config, Proxying};
use crate::reuse::{self, Kept};
use crate::text;
use crate::wire;

/// The most of a reply body we read. The expected JSON is ~150 bytes; a
/// misconfigured URL can answer with megabytes of HTML we must not hold.
const MAX_REPLY_BYTES: u64 = 4 * 1024;

#[derive(Debug)]
pub enum Outcome {
    Accepted { reply: Reply, took: Duration },
    Failed(Failure),
}

/// One beat's round trip, as the agent loop needs it.
pub trait Transport {
    /// Sends one beat with `body`, giving it at most `budget` from start to finish.
    fn send(&mut self, budget: Duration, body: &str) -> Outcome;
    /// `host:port` of the server, for log lines.
    fn origin(&self) -> &str;
}

/// The monitoring server's answer to a beat; every field is optional because
/// we take a 2xx as delivered whatever the body says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub server_id: Option<Value>,
    pub server_name: Option<String>,
    pub heartbeat_received: Option<bool>,
}

impl Reply {
    /// A body that is not the JSON we expect gives an empty reply, not an
    /// error: the status code already said the beat arrived. Each field is
    /// taken on its own, so one of an odd type does not hide the others.
    pub fn parse(body: &[u8]) -> Reply {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return Reply::default();
        };
        Reply {
            server_id: map.get("server_id").filter(|v| !v.is_null()).cloned(),
            server_name: map
                .get("server_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            heartbeat_received: map.get("heartbeat_received").and_then(Value::as_bool),
        }
    }
}

pub struct Client {
    agent: ureq::Agent,
    /// The connection the last beat left open, if any (always none without keep-alive).
    kept: Kept,
    url: String,
    /// `host:port`, for messages.
    origin: String,
    /// The proxy's `host:port`, when beats go through one.
    proxy: Option<String>,
    authorization: Option<String>,
}

/// The receive buffer. Response headers may fill at most
/// [`MAX_REPLY_HEADER_BYTES`] of it, so a reply with bigger headers is
/// reported as such, not as a connection closed before answering. 10 KiB,
/// not 8: ureq borrows 10 KiB of it as scratch space to send a body, and a
/// smaller buffer is grown and shrunk (and zero-filled) several times per
/// request, which was 30 % of the agent's instructions per beat
/// (callgrind).
const INPUT_BUFFER_BYTES: usize = 10 * 1024;
const MAX_REPLY_HEADER_BYTES: usize = 6 * 1024;

impl Client {
    pub fn new(config: &Config) -> Client {
        let roots = match &config.ca {
            Some(ca) => RootCerts::Specific(Arc::clone(&ca.value.certs)),
            None => RootCerts::WebPki,
        };
        let authorization = config
            .token
            .as_ref()
            .map(|t| format!("Bearer {}", t.value.expose()));
        let keepalive = config.keepalive.value;
        // config::proxy accepted the URL only after this same call took it.
        let (proxy, proxy_hop) = match &config.proxy {
            Proxying::Via(p) => (ureq::Proxy::new(&p.url).ok(), Some(p.hop.clone())),
            Proxying::Direct | Proxying::Bypassed { .. } => (None, None),
        };
        let http = ureq::Agent::config_builder()
            // We read status codes ourselves; ureq's default turns 4xx/5xx
            // into errors and drops the response with its Retry-After.
            .http_status_as_error(false)
            // A heartbeat that is redirected is misconfigured: say so rather
            // than follow (a POST turned into a GET would "work" silently).
            .max_redirects(0)
            .max_redirects_will_error(false)
            // ureq 3 has no default timeout; each attempt sets its own too.
            .timeout_global(Some(config.timeout.value))
            .user_agent(user_agent())
            .accept("application/json")
            // At most the one connection beats go over. Whether an attempt
            // may use it is decided per attempt (reuse.rs), so ureq's own
            // idle limit only has to outlast ours.
            .max_idle_connections(usize::from(keepalive))
            .max_idle_connections_per_host(usize::from(keepalive))
            .max_idle_age(reuse::DEFAULT_IDLE * 2)
            // ureq's defaults are 128 KiB each, zeroed for every connection.
            // The send buffer is sized from our request (a long JWT, a long
            // api_url), so whatever --check accepts can be sent.
            .input_buffer_size(INPUT_BUFFER_BYTES)
            .output_buffer_size(request_head_bytes(
                &config.heartbeat_url,
                authorization.as_deref(),
            ))
            .max_response_header_size(MAX_REPLY_HEADER_BYTES)
            // Only the proxy our config chose: ureq would otherwise read the
            // environment itself, by rules of its own.
            .proxy(proxy)
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build();
        let agent = ureq::Agent::with_parts(http, wire::connector(), wire::resolver());
        Client {
            agent,
            kept: Kept::none(),
            origin: origin_of(&config.api_url.value),
            proxy: proxy_hop,
            url: config.heartbeat_url.clone(),
            authorization,
        }
    }
}

impl Transport for Client {
    fn origin(&self) -> &str {
        &self.origin
    }

    /// One beat: on the kept connection when the server may still hold it
    /// open (with a short first-byte deadline), and on a new connection if
    /// that one turns out dead, all within `budget`.
    fn send(&mut self, budget: Duration, body: &str) -> Outcome {
        let started = Instant::now();
        let mut left = budget;
        if let Some((idle, first_byte)) = self.kept.reuse_at(started, budget) {
            match self.attempt(body, budget, idle, Some(first_byte)) {
                Err(e) if reuse::dead_connection(&e) => {
                    // Not a failure: the server or a NAT let an idle connection go.
                    log::debug!(
                        "kept connection to {} was dead ({}); sending on a new one",
                        self.origin,
                        text::untrusted(&e.to_string())
                    );
                }
                result => return self.outcome(result, started, budget),
            }
            left = budget
                .saturating_sub(started.elapsed())
                .max(crate::backoff::MIN_ATTEMPT);
        }
        let result = self.attempt(body, left, Duration::ZERO, None);
        self.outcome(result, started, left)
    }
}

/// A reply as far as we read it.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    location: Option<String>,
    body: Vec<u8>,
}

impl Client {
    /// One request. `idle` is how old a pooled connection may be to carry it
    /// (zero: a new connection); `first_byte` limits the wait for the reply
    /// to start.
    fn attempt(
        &mut self,
        body: &str,
        budget: Duration,
        idle: Duration,
        first_byte: Option<Duration>,
    ) -> Result<Answer, ureq::Error> {
        let sent = Instant::now();
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let result = request
            .config()
            .timeout_global(Some(budget))
            .timeout_recv_response(first_byte)
            .max_idle_age(idle)
            .build()
            .send(body.as_bytes());
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                self.kept = Kept::none();
                return Err(e);
            }
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (connection, keep_alive) = (header("connection"), header("keep-alive"));
        let mut answer = Answer {
            status: response.status().as_u16(),
            retry_after: header("retry-after"),
            location: header("location"),
            body: Vec::new(),
        };
        // The status line has arrived; a body cut short or too big changes
        // nothing, but only a body read to its end leaves the connection
        // reusable.
        let read = response
            .body_mut()
            .as_reader()
            .take(MAX_REPLY_BYTES + 1)
            .read_to_end(&mut answer.body);
        let whole = match read {
            Ok(n) => n as u64 <= MAX_REPLY_BYTES,
            Err(e) => {
                log::debug!(
                    "reply body from {} unreadable: {}",
                    self.origin,
                    text::untrusted(&e.to_string())
                );
                false
            }
        };
        answer.body.truncate(MAX_REPLY_BYTES as usize);
        self.kept = if whole {
            Kept::after_reply(
                Instant::now(),
                sent.elapsed(),
                connection.as_deref(),
                keep_alive.as_deref(),
            )
        } else {
            Kept::none()
        };
        Ok(answer)
    }

    fn outcome(
        &self,
        result: Result<Answer, ureq::Error>,
        started: Instant,
        budget: Duration,
    ) -> Outcome {
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => {
                let route = Route {
                    origin: &self.origin,
                    proxy: self.proxy.as_deref(),
                };
                return Outcome::Failed(classify::error_failure(&e, route, budget));
            }
        };
        if (200..300).contains(&answer.status) {
            Outcome::Accepted {
                reply: Reply::parse(&answer.body),
                took: started.elapsed(),
            }
        } else {
            Outcome::Failed(classify::status_failure(
                answer.status,
                answer.retry_after.as_deref(),
                answer.location.as_deref(),
                &answer.body,
                (&self.origin, &self.url),
                SystemTime::now(),
            ))
        }
    }
}

/// Room for our request's head: request line, our headers and the token,
/// with slack for what ureq adds (Host, Content-Length, Accept, ...).
fn request_head_bytes(url: &str, authorization: Option<&str>) -> usize {
    let ours = url.len() + authorization.map_or(0, str::len) + user_agent().len();
    (ours + 1024).max(4 * 1024)
}

pub fn user_agent() -> String {
    format!(
        "stacksense-heartbeat/{VERSION} ({}; {})",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// `host:port` of a validated API URL, with the scheme's default port filled in.
fn origin_of(api_url: &str) -> String {
    match api_url.parse::<Uri>() {
        Ok(uri) => format!("{}:{}", uri.host().unwrap_or("?"), wire::port_of(&uri)),
        Err(_) => api_url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_fills_in_the_default_port() {
        assert_eq!(origin_of("http://m.example"), "m.example:80");
        assert_eq!(origin_of("HTTPS://m.example/x"), "m.example:443");
        assert_eq!(origin_of("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(origin_of("http://[::1]:9"), "[::1]:9");
    }

    #[test]
    fn user_agent_names_version_os_and_arch() {
        let ua = user_agent();
        assert!(ua.starts_with(&format!("stacksense-heartbeat/{VERSION} (")));
        assert!(ua.contains(std::env::consts::ARCH));
    }

    #[test]
    fn replies_are_read_leniently() {
        let r = Reply::parse(br#"{"status":"ok","server_id":1,"server_name":"My Server","heartbeat_received":true,"timestamp":"2024-01-01T12:00:00Z"}"#);
        assert_eq!(r.server_name.as_deref(), Some("My Server"));
        assert_eq!(r.heartbeat_received, Some(true));
        assert_eq!(Reply::parse(b"<html>oops</html>"), Reply::default());
        assert_eq!(Reply::parse(br#"{"status":"ok","#), Reply::default());
        let odd = Reply::parse(br#"{"heartbeat_received":false,"server_name":7,"extra":[1]}"#);
        assert_eq!(odd.heartbeat_received, Some(false));
        assert_eq!(odd.server_name, None);
    }
}
