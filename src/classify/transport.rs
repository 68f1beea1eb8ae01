//! What a transport error means (DNS, TCP, TLS, a proxy, a timeout), in
//! words that name the hop that failed.

use std::io;
use std::time::Duration;

use super::Failure;
use crate::clock;
use crate::text::{self, describe_io};

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
        // rustls refuses a handshake message over 64 KiB: in practice a
        // certificate chain that long (curl takes 100 KB).
        T::InvalidMessage(
            rustls::InvalidMessage::HandshakePayloadTooLarge
            | rustls::InvalidMessage::CertificatePayloadTooLarge,
        ) => Failure::fatal(
            format!(
                "{origin} sent a TLS handshake message over 64 KiB, more than our TLS library \
                 (rustls) accepts: a certificate chain that long?"
            ),
            Some(
                "serve a shorter chain: leave the root and unneeded intermediates out, and \
                 fewer names per certificate",
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Class;

    fn direct(origin: &str) -> Route<'_> {
        Route {
            origin,
            proxy: None,
            https: true,
            trust: Trusting::Bundled,
        }
    }

    fn hint(f: &Failure) -> &str {
        f.hint.as_deref().unwrap_or("")
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
    fn a_certificate_chain_over_64_kib_is_named_as_such() {
        for too_large in [
            rustls::InvalidMessage::HandshakePayloadTooLarge,
            rustls::InvalidMessage::CertificatePayloadTooLarge,
        ] {
            let inner = rustls::Error::InvalidMessage(too_large);
            let err = ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, inner));
            let f = error_failure(&err, direct("h:443"), Duration::from_secs(10));
            assert_eq!(f.class, Class::Fatal);
            assert!(f.reason.contains("over 64 KiB"), "{}", f.reason);
            assert!(!f.reason.contains("does not speak TLS"), "{}", f.reason);
            assert!(hint(&f).contains("shorter chain"), "{}", hint(&f));
        }
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
