//! What an HTTP status or a transport error means for the agent: accepted,
//! worth retrying now, or wrong until a person changes something.

use std::io;
use std::time::{Duration, SystemTime};

use crate::clock;
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
    pub hint: Option<&'static str>,
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

    pub fn fatal(reason: String, hint: Option<&'static str>) -> Failure {
        Failure {
            class: Class::Fatal,
            hint,
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

/// A non-2xx status as a failure. `body` is the start of the reply, shown
/// (sanitised) because servers often say there what is wrong. A rejection
/// names the whole URL posted to: a 404 is nearly always a wrong path, and
/// the path is what the person reading the line has to see.
pub fn status_failure(
    status: u16,
    retry_after: Option<&str>,
    location: Option<&str>,
    body: &[u8],
    posted: (&str, &str),
    now: SystemTime,
) -> Failure {
    let (origin, url) = posted;
    let reason_phrase = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut reason = format!("HTTP {status} {reason_phrase}")
        .trim_end()
        .to_string();
    if RETRYABLE_STATUSES.contains(&status) {
        reason.push_str(&format!(" from {origin}"));
    } else {
        reason.push_str(&format!(" for POST {}", text::untrusted(url)));
    }
    let excerpt = excerpt(body);
    if !excerpt.is_empty() {
        reason.push_str(&format!(": \"{excerpt}\""));
    }
    let (class, hint) = match status {
        s if RETRYABLE_STATUSES.contains(&s) => (Class::Retryable, None),
        300..=399 => {
            if let Some(to) = location {
                reason.push_str(&format!(" (redirects to {})", text::untrusted(to)));
            }
            (
                Class::Fatal,
                Some("set api_url to the address it redirects to"),
            )
        }
        401 | 403 => (Class::Fatal, Some("check the token")),
        404 => (Class::Fatal, Some("check server_id and api_url")),
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

/// `Retry-After` as seconds or an HTTP date; a date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = clock::parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Where a beat goes: the server (`host:port`) and the proxy in between, if any.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub origin: &'a str,
    pub proxy: Option<&'a str>,
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
        E::Rustls(e) => tls_failure(e, origin),
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
    let origin = route.origin;
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return tls_failure(tls, origin);
    }
    let hop = route.first_hop();
    use io::ErrorKind as K;
    let reason = match e.kind() {
        K::ConnectionRefused => format!("connection refused by {hop}"),
        K::ConnectionReset | K::ConnectionAborted => format!("connection reset by {hop}"),
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

fn tls_failure(e: &rustls::Error, origin: &str) -> Failure {
    use rustls::Error as T;
    let said = || text::untrusted(&e.to_string());
    match e {
        T::InvalidCertificate(why) if is_ca_used_as_server_cert(why) => Failure::fatal(
            format!(
                "TLS certificate of {origin} rejected: it is a CA certificate (CA:TRUE), which \
                 TLS clients do not accept as a server's own certificate"
            ),
            Some(
                "give the server a certificate signed by that CA and keep the CA in --ca-file \
                 (or make a self-signed one with basicConstraints=critical,CA:FALSE; see the README)",
            ),
        ),
        T::InvalidCertificate(why) => Failure::fatal(
            format!(
                "TLS certificate of {origin} rejected: {}",
                text::untrusted(&format!("{why:?}"))
            ),
            Some("if the server uses a private CA, pass its certificate with --ca-file"),
        ),
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
        }
    }

    fn status(code: u16) -> Failure {
        status_failure(
            code,
            None,
            None,
            b"",
            ("h:80", "http://h/api/heartbeat/1/"),
            NOW,
        )
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
        assert_eq!(status(404).hint, Some("check server_id and api_url"));
        assert_eq!(status(401).hint, Some("check the token"));
        assert_eq!(status(403).hint, Some("check the token"));
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
            ("h:80", "http://h/api/heartbeat/1/"),
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
            ("h:80", "http://h/api/api/heartbeat/1/"),
            NOW,
        );
        assert_eq!(
            f.reason,
            "HTTP 404 Not Found for POST http://h/api/api/heartbeat/1/"
        );
        let f = status_failure(
            301,
            None,
            Some("https://h/"),
            b"",
            ("h:80", "http://h/api/heartbeat/1/"),
            NOW,
        );
        assert!(
            f.reason.ends_with("(redirects to https://h/)"),
            "{}",
            f.reason
        );
        let long = vec![b'x'; 5000];
        assert!(
            status_failure(
                500,
                None,
                None,
                &long,
                ("h:80", "http://h/api/heartbeat/1/"),
                NOW
            )
            .reason
            .len()
                < 200
        );
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
        let f = status_failure(
            429,
            Some("7"),
            None,
            b"",
            ("h:80", "http://h/api/heartbeat/1/"),
            NOW,
        );
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
        assert!(f.hint.unwrap().contains("--ca-file"));
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
