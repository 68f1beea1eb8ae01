//! One heartbeat over HTTP(S): send the POST, read a little of the answer.
//! The agent loop sees it through [`Courier`], so its timing is tested
//! without a network.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ureq::http::Uri;

use crate::json::{self, Value};

use crate::classify::{self, Failure, Route, Sent, Trusting};
use crate::config::{Api, Config, Proxying, api};
use crate::push::{Endpoint, PerPush, Post, Push};
use crate::reuse::{self, Kept};
use crate::tcp::Watch;
use crate::text;
use crate::tls::Rejected;
use crate::version::user_agent;
use crate::wire::{self, ClientOptions};

/// The most of a reply body we read. The expected JSON is ~150 bytes; a
/// misconfigured URL can answer with megabytes of HTML we must not hold.
const MAX_REPLY_BYTES: u64 = 4 * 1024;

#[derive(Debug)]
pub enum Outcome {
    Accepted {
        reply: Reply,
        took: Duration,
    },
    Failed(Failure),
    /// A push the server answered with an error that is about the push,
    /// not the box (a refused body, an endpoint this server lacks, a proxy
    /// failing on that path): the beat goes on in the same slot as a plain
    /// heartbeat, the push waits for its interval, and it is said once.
    Refused(Failure),
}

/// One beat's round trip, as the agent loop needs it (not ureq's
/// `Transport`, the byte stream below a request).
pub trait Courier {
    /// Sends `post`, giving it at most `budget` from start to finish.
    fn send(&mut self, budget: Duration, post: &Post) -> Outcome;
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
    /// The ping's answer: the token was accepted.
    pub authenticated: Option<bool>,
    /// A metrics push's answer: false with a `reason` when the server
    /// recorded the beat but kept the figures ("monitoring suspended").
    pub stored: Option<bool>,
    pub reason: Option<String>,
}

impl Reply {
    /// A body that is not the JSON we expect gives an empty reply, not an
    /// error: the status code already said the beat arrived. Each field is
    /// taken on its own, so one of an odd type does not hide the others.
    pub fn parse(body: &[u8]) -> Reply {
        let Ok(map @ Value::Object(_)) = json::parse(body) else {
            return Reply::default();
        };
        Reply {
            server_id: map.get("server_id").filter(|v| **v != Value::Null).cloned(),
            server_name: map
                .get("server_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            heartbeat_received: map.get("heartbeat_received").and_then(Value::as_bool),
            authenticated: map.get("authenticated").and_then(Value::as_bool),
            stored: map.get("stored").and_then(Value::as_bool),
            reason: map
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

pub struct Client {
    agent: ureq::Agent,
    /// Sets the first-byte deadline on the kept connection.
    watch: Arc<Watch>,
    /// The connection the last beat left open, if any (always none without keep-alive).
    kept: Kept,
    url: String,
    /// Each push's `/api/agent/<word>/` (agent API only).
    push_urls: PerPush<String>,
    /// `GET /api/agent/ping/` (agent API only), for `--check`.
    ping_url: Option<String>,
    /// `host:port`, for messages.
    origin: String,
    /// The proxy's `host:port`, when beats go through one.
    proxy: Option<String>,
    authorization: Option<String>,
    /// Where the token was read from, to read again after a 401.
    token_file: Option<std::path::PathBuf>,
    /// The room for a request's head the client was made with.
    head_bytes: usize,
    api: Api,
    https: bool,
    trust: Trusting,
    /// The key of the last server our TLS refused, for `--check`'s pin line.
    rejected: Arc<Rejected>,
}

impl Client {
    pub fn new(config: &Config) -> Result<Client, String> {
        let authorization = config
            .token
            .as_ref()
            .map(|t| format!("Bearer {}", t.value.expose()));
        // config::proxy accepted the URL only after this same call took it.
        let (proxy, proxy_hop) = match &config.proxy {
            Proxying::Via(p) => (ureq::Proxy::new(&p.url).ok(), Some(p.hop.clone())),
            Proxying::Direct | Proxying::Bypassed { .. } => (None, None),
        };
        let head_bytes = request_head_bytes(&config.heartbeat_url, authorization.as_deref());
        let wired = wire::client(ClientOptions {
            trust: &config.trust(),
            timeout: Some(config.settings.timeout.value),
            keepalive: config.settings.keepalive.value,
            proxy,
            output_buffer: head_bytes,
        })
        .map_err(|e| format!("cannot set up TLS: {}", text::untrusted(&e.to_string())))?;
        let trust = match (&config.settings.pins, &config.ca) {
            (Some(_), _) => Trusting::Pinned,
            (None, Some(_)) => Trusting::CaFile,
            (None, None) => Trusting::Bundled,
        };
        Ok(Client {
            agent: wired.agent,
            watch: wired.watch,
            kept: Kept::none(),
            origin: origin_of(&config.settings.api_url.value),
            proxy: proxy_hop,
            url: config.heartbeat_url.clone(),
            push_urls: PerPush::from_fn(|push| api::push_url(&config.settings.api_url.value, push)),
            ping_url: config.ping_url.clone(),
            authorization,
            token_file: config.token_file.clone(),
            head_bytes,
            api: config.api.value,
            https: config
                .settings
                .api_url
                .value
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("https:")),
            trust,
            rejected: wired.rejected,
        })
    }

    /// `GET /api/agent/ping/` within `budget`: the path a beat takes (DNS,
    /// TCP, TLS, HTTP, the token) without being one. None with the legacy
    /// API, which has no request free of side effects.
    pub fn ping(&mut self, budget: Duration) -> Option<Outcome> {
        let url = self.ping_url.clone()?;
        let started = Instant::now();
        self.rejected.take();
        let result = self.attempt(&url, None, budget, Duration::ZERO);
        Some(self.outcome(result, started, budget, "GET", &url, Endpoint::Heartbeat))
    }

    fn url_of(&mut self, to: Endpoint) -> &mut String {
        match to {
            Endpoint::Heartbeat => &mut self.url,
            Endpoint::Push(push) => &mut self.push_urls[push],
        }
    }

    /// The pin of the key the server showed when our TLS refused it.
    pub fn rejected_pin(&self) -> Option<String> {
        self.rejected.take()
    }
}

impl Courier for Client {
    fn origin(&self) -> &str {
        &self.origin
    }

    /// One beat: on the kept connection when the server may still hold it
    /// open (with a short first-byte deadline unless the server
    /// acknowledged the beat), and on a new connection if that one turns
    /// out dead, all within `budget`: the failure names `budget`, the time
    /// the schedule gave the beat.
    fn send(&mut self, budget: Duration, post: &Post) -> Outcome {
        let started = Instant::now();
        let body = post.body.as_str();
        // Taken for the attempt (which borrows self) and put back after.
        let url = std::mem::take(self.url_of(post.to));
        let mut left = budget;
        let mut result = None;
        if let Some((idle, first_byte)) = self.kept.reuse_at(started, budget) {
            let watch = Arc::clone(&self.watch);
            let armed = watch.arm(first_byte);
            let tried = self.attempt(&url, Some(body), budget, idle);
            drop(armed);
            match tried {
                Err(e) if reuse::dead_connection(&e) => {
                    // Not a failure: the server or a NAT let an idle connection go.
                    log::debug!(
                        "kept connection to {} was dead ({}); sending on a new one",
                        self.origin,
                        text::untrusted(&e.to_string())
                    );
                    left = budget
                        .saturating_sub(started.elapsed())
                        .max(crate::backoff::MIN_ATTEMPT);
                }
                done => result = Some(done),
            }
        }
        let result = result.unwrap_or_else(|| self.attempt(&url, Some(body), left, Duration::ZERO));
        let refused_token = matches!(&result, Ok(answer) if answer.status == 401);
        let mut outcome = self.outcome(result, started, budget, "POST", &url, post.to);
        *self.url_of(post.to) = url;
        if refused_token && let Outcome::Failed(failure) = &mut outcome {
            let rotation = self.rotate_token();
            failure.hint = Some(match failure.hint.take() {
                Some(hint) => format!("{hint}; {rotation}"),
                None => rotation,
            });
        }
        outcome
    }
}

impl Client {
    /// After a 401: the token file is read again, so a rotated token
    /// (`create_agent_token` run again, the file rewritten) goes with the
    /// next beat without a restart. Says what happened, or what to do.
    fn rotate_token(&mut self) -> String {
        let Some(file) = self.token_file.clone() else {
            return "after changing the token, restart the agent".into();
        };
        let credential = file.starts_with("/run/credentials");
        let Some(new) = crate::config::reread_token(&file) else {
            return "its file holds no valid token now".into();
        };
        let authorization = format!("Bearer {new}");
        if self.authorization.as_deref() == Some(authorization.as_str()) {
            return if credential {
                "systemd copies the credential when the service starts: after writing the new \
                 token to its file, systemctl restart stacksense-heartbeat"
                    .into()
            } else {
                "its file still holds this token: write the new one there (it is read again \
                 after each refusal; no restart needed)"
                    .into()
            };
        }
        if request_head_bytes(&self.url, Some(&authorization)) > self.head_bytes {
            return "the token file holds a longer token than the agent started with: restart \
                    the agent to use it"
                .into();
        }
        crate::text::hide(&new);
        self.authorization = Some(authorization);
        "the token file holds a new token now: the next beat sends it".into()
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
    /// One request: a POST of `body`, or a GET without one. `idle` is how
    /// old a pooled connection may be to carry it (zero: a new connection).
    fn attempt(
        &mut self,
        url: &str,
        body: Option<&str>,
        budget: Duration,
        idle: Duration,
    ) -> Result<Answer, ureq::Error> {
        let sent = Instant::now();
        let auth = self.authorization.as_deref();
        let result = match body {
            Some(body) => {
                let mut request = self
                    .agent
                    .post(url)
                    .header("Content-Type", "application/json");
                if let Some(auth) = auth {
                    request = request.header("Authorization", auth);
                }
                request
                    .config()
                    .timeout_global(Some(budget))
                    .max_idle_age(idle)
                    .build()
                    .send(body.as_bytes())
            }
            None => {
                let mut request = self.agent.get(url);
                if let Some(auth) = auth {
                    request = request.header("Authorization", auth);
                }
                request
                    .config()
                    .timeout_global(Some(budget))
                    .max_idle_age(idle)
                    .build()
                    .call()
            }
        };
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
        method: &str,
        url: &str,
        to: Endpoint,
    ) -> Outcome {
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => {
                let route = Route {
                    origin: &self.origin,
                    proxy: self.proxy.as_deref(),
                    https: self.https,
                    trust: self.trust,
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
            let sent = Sent {
                origin: &self.origin,
                method,
                url,
                token: self.authorization.is_some(),
                api: self.api,
            };
            let failure = classify::status_failure(
                answer.status,
                answer.retry_after.as_deref(),
                answer.location.as_deref(),
                &answer.body,
                sent,
                SystemTime::now(),
            );
            match to.push() {
                Some(push) if !about_the_box(answer.status) => {
                    Outcome::Refused(push_failure(failure, push, answer.status))
                }
                _ => Outcome::Failed(failure),
            }
        }
    }
}

/// Statuses that would answer the heartbeat too: the token (401, 403),
/// a proxy's login (407), a server asking us to slow down (429). Any other
/// error on a push is the push's own: a heartbeat must still go, or a
/// server without that endpoint (some StackSense revisions have metrics
/// but no services) would see the box offline.
fn about_the_box(status: u16) -> bool {
    matches!(status, 401 | 403 | 407 | 429)
}

/// `failure` with words for a push that failed on its own.
fn push_failure(mut failure: Failure, push: Push, status: u16) -> Failure {
    let word = push.word();
    match status {
        404 | 405 => {
            failure.hint = Some(format!(
                "this server has no /api/agent/{word}/ (an older StackSense?): remove {word} \
                 from report, or upgrade the server"
            ))
        }
        500..=599 => {
            failure.hint = Some(format!(
                "the server (or a proxy before it) failed on the {word} push; its log says why"
            ))
        }
        _ => {}
    }
    failure
}

/// Room for our request's head: request line, our headers and the token,
/// with slack for what ureq adds (Host, Content-Length, Accept, ...).
fn request_head_bytes(url: &str, authorization: Option<&str>) -> usize {
    let ours = url.len() + authorization.map_or(0, str::len) + user_agent().len();
    (ours + 1024).max(4 * 1024)
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
    fn replies_are_read_leniently() {
        let r = Reply::parse(br#"{"status":"ok","server_id":1,"server_name":"My Server","heartbeat_received":true,"timestamp":"2024-01-01T12:00:00Z"}"#);
        assert_eq!(r.server_name.as_deref(), Some("My Server"));
        assert_eq!(r.heartbeat_received, Some(true));
        assert_eq!(Reply::parse(b"<html>oops</html>"), Reply::default());
        assert_eq!(Reply::parse(br#"{"status":"ok","#), Reply::default());
        let odd = Reply::parse(br#"{"heartbeat_received":false,"server_name":7,"extra":[1]}"#);
        assert_eq!(odd.heartbeat_received, Some(false));
        assert_eq!(odd.server_name, None);
        let kept =
            Reply::parse(br#"{"status":"ok","stored":false,"reason":"monitoring suspended"}"#);
        assert_eq!(kept.stored, Some(false));
        assert_eq!(kept.reason.as_deref(), Some("monitoring suspended"));
    }
}
