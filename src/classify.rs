//! What an HTTP status or a transport error means for the agent: accepted,
//! worth retrying now, or wrong until a person changes something.

use std::io;
use std::time::{Duration, SystemTime};

use crate::clock;
use crate::config::Api;
use crate::config::api::MAKE_A_TOKEN;
use crate::text::{self, describe_io};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Likely to pass on its own soon: retry with backoff before the next slot.
    Retryable,
    /// Needs a person (wrong URL, id, token, CA): no retries until the next slot.
    Fatal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub class: Class,
    /// One line for the log: what happened, in words.
    pub reason: String,
    pub retry_after: Option<Duration>,
    /// What the reader should check, when we can tell.
    pub hint: Option<String>,
    /// The attempt ran out of time (rather than being refused or reset).
    pub timed_out: bool,
}

impl Failure {
    pub fn retryable(reason: String) -> Failure {
        Failure {
            class: Class::Retryable,
            reason,
            retry_after: None,
            hint: None,
            timed_out: false,
        }
    }

    pub fn fatal(reason: String, hint: Option<&str>) -> Failure {
        Failure {
            class: Class::Fatal,
            hint: hint.map(str::to_string),
            ..Failure::retryable(reason)
        }
    }

    fn timed_out(reason: String) -> Failure {
        Failure {
            timed_out: true,
            ..Failure::retryable(reason)
        }
    }
}

/// Statuses that mean "not now" rather than "not like this".
const RETRYABLE_STATUSES: [u16; 7] = [408, 425, 429, 500, 502, 503, 504];

/// The request a reply answers, as its failure line needs it.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// `host:port`.
    pub origin: &'a str,
    pub method: &'a str,
    pub url: &'a str,
    /// An `Authorization` header went with it.
    pub token: bool,
    pub api: Api,
}

/// A non-2xx status as a failure. `body` is the start of the reply: what
/// the server says there (a JSON `error`, a page's title, a first line) is
/// quoted, escaped. A rejection names the whole URL: a 404 is nearly
/// always a wrong path, and the path is what the reader has to see.
pub fn status_failure(
    status: u16,
    retry_after: Option<&str>,
    location: Option<&str>,
    body: &[u8],
    sent: Sent,
    now: SystemTime,
) -> Failure {
    let reason_phrase = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut reason = format!("HTTP {status} {reason_phrase}")
        .trim_end()
        .to_string();
    if RETRYABLE_STATUSES.contains(&status) {
        reason.push_str(&format!(" from {}", sent.origin));
    } else {
        reason.push_str(&format!(
            " for {} {}",
            sent.method,
            text::untrusted(sent.url)
        ));
    }
    let said = server_said(body);
    let csrf = status == 403 && is_csrf_page(body);
    if csrf {
        reason.push_str(
            ": the server refuses anonymous POSTs to the legacy endpoint (Django's CSRF check: \
             \"CSRF verification failed\")",
        );
    } else if !said.is_empty() {
        reason.push_str(&format!(": {said}"));
    }
    let no_token = || format!("no token is configured; the agent API needs one: {MAKE_A_TOKEN}");
    let (class, hint) = match status {
        s if RETRYABLE_STATUSES.contains(&s) => (Class::Retryable, None),
        300..=399 => {
            let mut hint = "set api_url to the server's base address".to_string();
            if let Some(to) = location {
                reason.push_str(&format!(" (redirects to {})", text::untrusted(to)));
                // The base, not the endpoint it redirected to.
                let base = crate::config::value::api_url_base_guess(to)
                    .unwrap_or_else(|| to.trim_end_matches('/').to_string());
                hint = format!("set api_url to {}", text::untrusted(&base));
            }
            (Class::Fatal, Some(hint))
        }
        403 if csrf => (
            Class::Fatal,
            Some(format!(
                "use the agent API: {MAKE_A_TOKEN}, set it as STACKSENSE_TOKEN (or token_file) \
                 and remove server_id (or set api to agent)"
            )),
        ),
        401 | 403 if !sent.token => (Class::Fatal, Some(no_token())),
        401 => (
            Class::Fatal,
            Some(format!(
                "the server did not accept the token: check it, or {MAKE_A_TOKEN} (running it \
                 again rotates the token)"
            )),
        ),
        403 => (
            Class::Fatal,
            Some("check the token and what it may do".into()),
        ),
        404 => (
            Class::Fatal,
            Some(match sent.api {
                Api::Agent => "check api_url: it is the server's base URL, without /api/...; \
                    an older server without the agent API wants api legacy"
                    .into(),
                Api::Legacy => "check server_id and api_url".into(),
            }),
        ),
        405 => (
            Class::Fatal,
            Some(format!(
                "the server takes no {} there: check that api_url is the StackSense server's \
                 base URL",
                sent.method
            )),
        ),
        413 => (
            Class::Fatal,
            Some("the server refused the body as too large: report less (--report)".into()),
        ),
        _ => (Class::Fatal, None),
    };
    Failure {
        class,
        reason,
        retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        hint,
        timed_out: false,
    }
}

/// Django's CSRF failure page, as the legacy endpoint answers an anonymous POST.
fn is_csrf_page(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains("CSRF verification failed") || text.contains("CSRF cookie")
}

/// What a reply body says, for a failure line: a JSON `error` (or
/// `detail`) quoted as the server's words, an HTML page by its title,
/// anything else by its first line; escaped and short.
fn server_said(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body)
        && let Some(words) = ["error", "detail", "message"]
            .iter()
            .find_map(|k| map.get(*k).and_then(|v| v.as_str()))
    {
        return format!("server says \"{}\"", text::untrusted_max(words, 120));
    }
    let page = String::from_utf8_lossy(body);
    if let Some((_, after)) = page.split_once("<title>")
        && let Some((title, _)) = after.split_once("</title>")
    {
        let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
        return format!("a page titled \"{}\"", text::untrusted_max(&title, 120));
    }
    let excerpt = excerpt(body);
    if excerpt.is_empty() {
        excerpt
    } else {
        format!("\"{excerpt}\"")
    }
}

/// `Retry-After` as seconds or an HTTP date; a date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = clock::parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Where a request goes: the server (`host:port`), the proxy in between if
/// any, and how its certificate is judged (for the words of a TLS failure).
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub origin: &'a str,
    pub proxy: Option<&'a str>,
    pub https: bool,
    pub trust: Trusting,
}

/// How a server's certificate is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trusting {
    Bundled,
    CaFile,
    Pinned,
}

impl Route<'_> {
    /// What our socket talks to first: the proxy if there is one.
    fn first_hop(&self) -> String {
        match self.proxy {
            Some(proxy) => format!("proxy {proxy} (on the way to {})", self.origin),
            None => self.origin.to_string(),
        }
    }

    fn host(&self) -> &str {
        let hop = self.proxy.unwrap_or(self.origin);
        hop.rsplit_once(':').map_or(hop, |(h, _)| h)
    }
}

/// A transport error as a failure. `budget` is the time the attempt was given.
/// Not inlined: beats and http checks share this one copy.
#[inline(never)]
pub fn error_failure(err: &ureq::Error, route: Route, budget: Duration) -> Failure {
    use ureq::Error as E;
    let origin = route.origin;
    let hop = route.first_hop();
    let within = clock::format_duration(budget);
    match err {
        E::Timeout(_) => Failure::timed_out(format!("no answer from {hop} within {within}")),
        E::HostNotFound => Failure::retryable(format!(
            "DNS lookup found no address for {}{}",
            if route.proxy.is_some() { "proxy " } else { "" },
            route.host()
        )),
        E::ConnectionFailed => Failure::retryable(format!("could not connect to {hop}")),
        E::Io(e) => io_failure(e, route, budget),
        E::Rustls(e) => tls_failure(e, route),
        E::Tls(msg) => Failure::fatal(
            format!("TLS setup for {origin} failed: {}", text::untrusted(msg)),
            None,
        ),
        E::ConnectProxyFailed(why) => proxy_failure(why, route),
        // Our own request did not fit the send buffer: nothing the server
        // did, and retrying cannot help.
        E::Protocol(ureq_proto::Error::OutputOverflow) => Failure::fatal(
            "the request is too large to send (a very long token or api_url?)".into(),
            Some("shorten the token or api_url"),
        ),
        // Bytes that are not HTTP at all on a plain-http URL: most often a
        // TLS port (its alert record is what ureq tried to read as a status
        // line), now and then a broken server, so it is still retried.
        E::Protocol(ureq_proto::Error::HttpParseFail(why)) if !route.https => Failure {
            hint: Some("if the server speaks TLS on that port, use https:// in api_url".into()),
            ..Failure::retryable(format!(
                "{origin} did not answer in HTTP ({}; api_url is http://: is the server \
                 HTTPS on that port?)",
                text::untrusted(why)
            ))
        },
        E::Protocol(e) => Failure::retryable(format!(
            "{origin} sent a malformed HTTP response: {}",
            text::untrusted(&e.to_string())
        )),
        E::LargeResponseHeader(got, limit) => Failure::retryable(format!(
            "{origin} sent oversized response headers (over {limit} bytes; got {got})"
        )),
        other => Failure::retryable(format!(
            "request to {hop} failed: {}",
            text::untrusted(&other.to_string())
        )),
    }
}

/// The proxy would not open a tunnel to the server (ureq's words for it:
/// "proxy server responded 407/407 Proxy Authentication Required", or
/// "proxy server did not respond").
fn proxy_failure(why: &str, route: Route) -> Failure {
    let proxy = route.proxy.unwrap_or("(proxy)");
    let status = why
        .split_once("responded ")
        .and_then(|(_, rest)| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(407) => Failure::fatal(
            format!("proxy {proxy} wants credentials (HTTP 407 Proxy Authentication Required)"),
            Some("put them in the proxy URL: https_proxy=http://user:password@host:port"),
        ),
        Some(code) => Failure::retryable(format!(
            "proxy {proxy} would not connect to {}: HTTP {code}",
            route.origin
        )),
        None => Failure::retryable(format!("proxy {proxy} failed: {}", text::untrusted(why))),
    }
}

/// An I/O error on the way to `route` as a failure; http and tcp checks
/// word theirs the same way.
pub fn io_failure(e: &io::Error, route: Route, budget: Duration) -> Failure {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return tls_failure(tls, route);
    }
    // The name, not the server: the route and firewall are not the question.
    if let Some(late) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<crate::wire::LookupTimedOut>())
    {
        return Failure::retryable(format!(
            "the name {} did not resolve within {} (the DNS server does not answer; check \
             /etc/resolv.conf, or use an IP address in api_url)",
            text::untrusted(&late.host),
            // The attempt's own limit: what ureq had left of it is a hair less.
            clock::format_duration(budget.max(late.within))
        ));
    }
    if let Some(stuck) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<crate::wire::LookupStuck>())
    {
        return Failure::retryable(format!(
            "the name {} did not resolve (a lookup begun {} ago has not returned: the DNS \
             server does not answer; check /etc/resolv.conf, or use an IP address in api_url)",
            text::untrusted(&stuck.host),
            clock::format_duration(stuck.for_)
        ));
    }
    let hop = route.first_hop();
    use io::ErrorKind as K;
    let reason = match e.kind() {
        K::ConnectionRefused => format!("connection refused by {hop}"),
        K::ConnectionReset | K::ConnectionAborted => format!("connection reset by {hop}"),
        // Some TLS servers (gunicorn) close a plain-HTTP connection at once.
        K::UnexpectedEof if !route.https => {
            return Failure {
                hint: Some("if the server speaks TLS on that port, use https:// in api_url".into()),
                ..Failure::retryable(format!("{hop} closed the connection before answering"))
            };
        }
        K::UnexpectedEof => format!("{hop} closed the connection before answering"),
        K::TimedOut | K::WouldBlock => {
            return Failure::timed_out(format!(
                "no answer from {hop} within {}",
                clock::format_duration(budget)
            ));
        }
        K::NetworkUnreachable => format!("network unreachable on the way to {hop}"),
        K::HostUnreachable => format!("host unreachable: {hop}"),
        K::AddrNotAvailable => format!("no local address to reach {hop} (network not up yet?)"),
        // ureq resolves names with std's `ToSocketAddrs`, whose getaddrinfo
        // failures carry no ErrorKind of their own: std words them
        // "failed to lookup address information: <gai_strerror text>".
        _ if e.to_string().contains("lookup address") => {
            format!("DNS lookup failed for {}: {}", route.host(), describe_io(e))
        }
        _ => format!("network error talking to {hop}: {}", describe_io(e)),
    };
    Failure::retryable(reason)
}

/// Where --check's pin line is offered: the one place that sees the key.
const PIN_HINT: &str = "stacksense-heartbeat --check prints its pin";

fn tls_failure(e: &rustls::Error, route: Route) -> Failure {
    use rustls::Error as T;
    let origin = route.origin;
    let said = || text::untrusted(&e.to_string());
    match e {
        T::InvalidCertificate(why) if is_ca_used_as_server_cert(why) => Failure::fatal(
            format!(
                "TLS certificate of {origin} rejected: it is a CA certificate (CA:TRUE), which \
                 TLS clients do not accept as a server's own certificate"
            ),
            Some(&format!(
                "pin the server's key with pinned_pubkey ({PIN_HINT}), or give the server a \
                 certificate signed by that CA and keep the CA in ca_file"
            )),
        ),
        T::InvalidCertificate(why) => {
            let (what, hint) = certificate_words(why, route.trust);
            Failure::fatal(
                format!("TLS certificate of {origin} rejected: {what}"),
                Some(&hint),
            )
        }
        // Not TLS at all: usually https:// pointed at a plain-HTTP port.
        T::InvalidMessage(_) => Failure::fatal(
            format!("{origin} does not speak TLS ({})", said()),
            Some("check the scheme and port in api_url: is the server really https?"),
        ),
        T::NoCertificatesPresented | T::AlertReceived(_) | T::PeerIncompatible(_) => {
            Failure::fatal(
                format!("TLS handshake with {origin} failed: {}", said()),
                Some("check that api_url points at the right server and port"),
            )
        }
        _ => Failure::retryable(format!("TLS error talking to {origin}: {}", said())),
    }
}

/// Why a certificate was refused, in words, and what to do about it.
fn certificate_words(why: &rustls::CertificateError, trust: Trusting) -> (String, String) {
    use rustls::CertificateError as C;
    let pin = format!("pin the server's key with pinned_pubkey ({PIN_HINT})");
    // rustls shows each as `DnsName("host")` or `IpAddress(1.2.3.4)`.
    let names = |presented: &[String]| match presented {
        [] => "it names no host".to_string(),
        names => {
            let bare: Vec<&str> = names
                .iter()
                .map(|n| {
                    n.split_once('(')
                        .map_or(n.as_str(), |(_, rest)| rest.trim_end_matches(')'))
                        .trim_matches('"')
                })
                .collect();
            format!("it names {}", text::untrusted(&bare.join(", ")))
        }
    };
    match why {
        C::Other(other) if other.0.downcast_ref::<crate::tls::PinMismatch>().is_some() => (
            format!("{}, so it is not the pinned server", other.0),
            format!(
                "if the server's key changed on purpose, put the new pin in pinned_pubkey \
                 ({PIN_HINT})"
            ),
        ),
        C::NotValidForName => (
            "it is not for the host in api_url".into(),
            format!("use a host name the certificate carries in api_url, or {pin}"),
        ),
        C::NotValidForNameContext {
            expected,
            presented,
        } => (
            format!(
                "it is not for {} ({})",
                text::untrusted(&server_name_text(expected)),
                names(presented)
            ),
            format!("use a host name the certificate carries in api_url, or {pin}"),
        ),
        C::UnknownIssuer => match trust {
            Trusting::CaFile => (
                "it is not signed by a CA in ca_file".into(),
                format!("put the CA that signed it in ca_file, or {pin}"),
            ),
            _ => (
                "it is signed by a CA this agent does not know (private or self-signed)".into(),
                format!("pass the CA's certificate with --ca-file, or {pin}"),
            ),
        },
        C::Expired | C::ExpiredContext { .. } => (
            "it has expired".into(),
            format!("renew the server's certificate (or {pin}: a pin does not expire)"),
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => (
            "it is not valid yet (is this box's clock right?)".into(),
            "check the clock (date; timedatectl)".into(),
        ),
        other => (
            text::untrusted(&format!("{other:?}")),
            format!("if the server uses a private CA, pass it with --ca-file, or {pin}"),
        ),
    }
}

fn server_name_text(name: &rustls::pki_types::ServerName<'_>) -> String {
    match name {
        rustls::pki_types::ServerName::DnsName(dns) => dns.as_ref().to_string(),
        rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// webpki's CaUsedAsEndEntity, which rustls passes on as an "other" error.
fn is_ca_used_as_server_cert(why: &rustls::CertificateError) -> bool {
    match why {
        rustls::CertificateError::Other(other) => other
            .0
            .downcast_ref::<webpki::Error>()
            .is_some_and(|e| matches!(e, webpki::Error::CaUsedAsEndEntity)),
        _ => false,
    }
}

/// The first line of a body, escaped and short, for a log line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    text::untrusted_max(line, 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    fn direct(origin: &str) -> Route<'_> {
        Route {
            origin,
            proxy: None,
            https: true,
            trust: Trusting::Bundled,
        }
    }

    const LEGACY: Sent = Sent {
        origin: "h:80",
        method: "POST",
        url: "http://h/api/heartbeat/1/",
        token: true,
        api: Api::Legacy,
    };

    const AGENT: Sent = Sent {
        origin: "h:80",
        method: "POST",
        url: "http://h/api/agent/heartbeat/",
        token: true,
        api: Api::Agent,
    };

    fn status(code: u16) -> Failure {
        status_failure(code, None, None, b"", LEGACY, NOW)
    }

    fn hint(f: &Failure) -> &str {
        f.hint.as_deref().unwrap_or("")
    }

    #[test]
    fn transient_statuses_are_retryable() {
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(status(code).class, Class::Retryable, "{code}");
        }
    }

    #[test]
    fn other_failures_wait_for_the_next_slot_with_a_hint() {
        assert_eq!(status(404).class, Class::Fatal);
        assert_eq!(hint(&status(404)), "check server_id and api_url");
        assert!(hint(&status(401)).contains("did not accept the token"));
        assert!(hint(&status(403)).contains("check the token"));
        for code in [400, 405, 410, 422, 501, 301] {
            assert_eq!(status(code).class, Class::Fatal, "{code}");
        }
    }

    #[test]
    fn the_reason_names_status_origin_and_what_the_server_said() {
        let f = status_failure(
            503,
            None,
            None,
            b"\n  down for maintenance\r\nmore",
            LEGACY,
            NOW,
        );
        assert_eq!(
            f.reason,
            "HTTP 503 Service Unavailable from h:80: \"down for maintenance\""
        );
        let f = status_failure(
            404,
            None,
            None,
            b"",
            Sent {
                url: "http://h/api/api/heartbeat/1/",
                ..LEGACY
            },
            NOW,
        );
        assert_eq!(
            f.reason,
            "HTTP 404 Not Found for POST http://h/api/api/heartbeat/1/"
        );
        let f = status_failure(301, None, Some("https://h/"), b"", LEGACY, NOW);
        assert!(
            f.reason.ends_with("(redirects to https://h/)"),
            "{}",
            f.reason
        );
        let long = vec![b'x'; 5000];
        assert!(
            status_failure(500, None, None, &long, LEGACY, NOW)
                .reason
                .len()
                < 200
        );
    }

    #[test]
    fn the_servers_own_words_are_quoted_and_the_hint_fits_the_request() {
        // The agent API's 401 body, quoted; a token was sent.
        let body = br#"{"error":"invalid or disabled token"}"#;
        let f = status_failure(401, None, None, body, AGENT, NOW);
        assert_eq!(
            f.reason,
            "HTTP 401 Unauthorized for POST http://h/api/agent/heartbeat/: server says \"invalid or disabled token\""
        );
        assert!(hint(&f).contains("create_agent_token"), "{f:?}");
        // No token was sent: the hint says so rather than "check the token".
        let f = status_failure(
            401,
            None,
            None,
            body,
            Sent {
                token: false,
                ..AGENT
            },
            NOW,
        );
        assert!(hint(&f).starts_with("no token is configured"), "{f:?}");
        // Django's CSRF page on the legacy endpoint.
        let page = b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>403 Forbidden</title></head><body><h1>Forbidden <span>(403)</span></h1><p>CSRF verification failed. Request aborted.</p>";
        let f = status_failure(
            403,
            None,
            None,
            page,
            Sent {
                token: false,
                ..LEGACY
            },
            NOW,
        );
        assert!(
            f.reason
                .contains("refuses anonymous POSTs to the legacy endpoint"),
            "{f:?}"
        );
        assert!(hint(&f).contains("use the agent API") && hint(&f).contains("create_agent_token"));
        // Another page is named by its title, not by "<!DOCTYPE html>".
        let f = status_failure(
            500,
            None,
            None,
            b"<!DOCTYPE html><title>Server Error</title>",
            AGENT,
            NOW,
        );
        assert!(
            f.reason.ends_with(": a page titled \"Server Error\""),
            "{}",
            f.reason
        );
        let f = status_failure(405, None, None, b"", AGENT, NOW);
        assert!(hint(&f).contains("takes no POST"), "{f:?}");
        let f = status_failure(
            413,
            None,
            None,
            br#"{"error":"payload too large"}"#,
            AGENT,
            NOW,
        );
        assert!(f.reason.contains("payload too large") && hint(&f).contains("too large"));
        let f = status_failure(404, None, None, b"", AGENT, NOW);
        assert!(hint(&f).contains("base URL"), "{f:?}");
    }

    #[test]
    fn a_redirect_hint_proposes_a_base_not_the_endpoint() {
        let to = Some("https://h/mon/api/heartbeat/7/");
        let f = status_failure(301, None, to, b"", LEGACY, NOW);
        assert_eq!(hint(&f), "set api_url to https://h/mon");
    }

    #[test]
    fn certificate_failures_say_what_is_wrong_in_words() {
        use rustls::CertificateError as C;
        let tls = |why: C, trust: Trusting| {
            let inner = rustls::Error::InvalidCertificate(why);
            let err = ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, inner));
            let route = Route {
                trust,
                ..direct("localhost:8443")
            };
            error_failure(&err, route, Duration::from_secs(1))
        };
        let name = C::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            presented: vec![],
        };
        let f = tls(name, Trusting::CaFile);
        assert_eq!(
            f.reason,
            "TLS certificate of localhost:8443 rejected: it is not for localhost (it names no host)"
        );
        assert!(!hint(&f).contains("--ca-file"), "{f:?}");
        let f = tls(C::UnknownIssuer, Trusting::CaFile);
        assert!(
            f.reason.ends_with("it is not signed by a CA in ca_file"),
            "{f:?}"
        );
        let mismatch = crate::tls::PinMismatch {
            presented: Some("sha256//AAA=".into()),
        };
        let other = C::Other(rustls::OtherError(std::sync::Arc::new(mismatch)));
        let f = tls(other, Trusting::Pinned);
        assert!(f.reason.contains("sha256//AAA= is not pinned"), "{f:?}");
        assert_eq!(f.class, Class::Fatal);
    }

    #[test]
    fn plain_http_to_a_tls_port_is_said_in_words() {
        let err = ureq::Error::Protocol(ureq_proto::Error::HttpParseFail(
            "invalid HTTP version".into(),
        ));
        let route = Route {
            https: false,
            ..direct("h:8443")
        };
        let f = error_failure(&err, route, Duration::from_secs(1));
        assert!(f.reason.contains("did not answer in HTTP"), "{}", f.reason);
        assert!(hint(&f).contains("https://"));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("2", NOW), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", NOW),
            Some(Duration::from_secs(60))
        );
        let later = NOW + Duration::from_secs(3600);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", later),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", NOW), None);
        assert_eq!(parse_retry_after("-5", NOW), None);
        let f = status_failure(429, Some("7"), None, b"", LEGACY, NOW);
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
    }

    fn io(kind: io::ErrorKind) -> ureq::Error {
        ureq::Error::Io(io::Error::from(kind))
    }

    #[test]
    fn network_errors_are_retryable_and_say_what_happened() {
        let budget = Duration::from_secs(10);
        let cases = [
            (
                io(io::ErrorKind::ConnectionRefused),
                "connection refused by h:8080",
            ),
            (
                io(io::ErrorKind::ConnectionReset),
                "connection reset by h:8080",
            ),
            (
                io(io::ErrorKind::UnexpectedEof),
                "h:8080 closed the connection before answering",
            ),
            (
                ureq::Error::HostNotFound,
                "DNS lookup found no address for h",
            ),
            (
                io(io::ErrorKind::TimedOut),
                "no answer from h:8080 within 10s",
            ),
        ];
        for (err, reason) in cases {
            let f = error_failure(&err, direct("h:8080"), budget);
            assert_eq!(f.class, Class::Retryable);
            assert_eq!(f.reason, reason);
        }
    }

    #[test]
    fn a_rejected_certificate_is_not_retried() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, inner));
        let f = error_failure(&err, direct("h:443"), Duration::from_secs(10));
        assert_eq!(f.class, Class::Fatal);
        assert!(f.reason.contains("certificate"), "{}", f.reason);
        assert!(hint(&f).contains("--ca-file") && hint(&f).contains("pinned_pubkey"));
    }

    #[test]
    fn plain_http_on_an_https_url_is_a_config_error() {
        let inner = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let err = ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, inner));
        let f = error_failure(&err, direct("h:8080"), Duration::from_secs(10));
        assert_eq!(f.class, Class::Fatal);
        assert!(f.reason.contains("does not speak TLS"), "{}", f.reason);
    }

    #[test]
    fn a_failed_name_lookup_is_told_apart_from_other_network_errors() {
        // The words std uses for a getaddrinfo failure (see io_failure).
        let gai =
            io::Error::other("failed to lookup address information: Name or service not known");
        let f = error_failure(
            &ureq::Error::Io(gai),
            direct("monitor.example:443"),
            Duration::from_secs(10),
        );
        assert_eq!(f.class, Class::Retryable);
        assert_eq!(
            f.reason,
            "DNS lookup failed for monitor.example: failed to lookup address information: Name or service not known"
        );
        let other = io::Error::other("something else");
        let f = error_failure(
            &ureq::Error::Io(other),
            direct("h:80"),
            Duration::from_secs(10),
        );
        assert_eq!(f.reason, "network error talking to h:80: something else");
    }
}
