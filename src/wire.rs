//! How a request reaches the socket, below ureq's HTTP: our TLS (tls.rs:
//! one configuration for the life of the client, so sessions resume, with
//! our verifier), one write per request (not one for the head and one for
//! the body), and no DNS thread for an IP address.
//!
//! This builds on ureq's `unversioned` module, which may change in a minor
//! release: Cargo.toml pins ureq to the minor version it was written for.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, NextTimeout, Transport,
};

use std::time::Duration;

use crate::tcp::{Tcp, Watch};
use crate::tls::{self, Rejected, TlsConnector, Trust};

/// The connector chain beats and http checks use: ureq's CONNECT proxy,
/// our TCP (which can tell whether the server acknowledged a request),
/// our TLS with `tls`, and writes coalesced.
fn connector(
    tls: Arc<rustls::ClientConfig>,
    watch: Arc<Watch>,
) -> impl Connector<(), Out = impl Transport> {
    ().chain(ConnectProxyConnector::default())
        .chain(Tcp(watch))
        .chain(TlsConnector(tls))
        .chain(OneWrite)
}

/// Answers IP literals without a thread (see [`LiteralFirst`]).
fn resolver() -> impl Resolver {
    LiteralFirst
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

/// What differs between the clients the agent makes (beats and http checks).
pub struct ClientOptions<'a> {
    pub trust: &'a Trust,
    /// ureq has no default timeout; each request may set a shorter one.
    pub timeout: Option<Duration>,
    /// Keep the one connection beats go over.
    pub keepalive: bool,
    /// Only the proxy the config chose: ureq would otherwise read the
    /// environment itself, by rules of its own.
    pub proxy: Option<ureq::Proxy>,
    /// The send buffer, sized from the request (a long token or URL):
    /// ureq's default is 128 KiB, zeroed for every connection.
    pub output_buffer: usize,
}

/// An HTTP client and its handles.
pub struct Wired {
    pub agent: ureq::Agent,
    /// Where its TLS records the key of a server it rejects.
    pub rejected: Arc<Rejected>,
    /// The first-byte deadline of an attempt on a kept connection.
    pub watch: Arc<Watch>,
}

/// The one way the agent makes an HTTP client.
pub fn client(options: ClientOptions) -> Result<Wired, rustls::Error> {
    let (tls, rejected) = tls::client_config(options.trust)?;
    let keep = usize::from(options.keepalive);
    let config = ureq::Agent::config_builder()
        // We read status codes ourselves; ureq's default turns 4xx/5xx
        // into errors and drops the response with its Retry-After.
        .http_status_as_error(false)
        // A beat that is redirected is misconfigured: say so rather than
        // follow (a POST turned into a GET would "work" silently).
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(options.timeout)
        .user_agent(crate::version::user_agent())
        .accept("application/json")
        // Whether an attempt may use a kept connection is decided per
        // attempt (reuse.rs), so ureq's own idle limit only has to outlast ours.
        .max_idle_connections(keep)
        .max_idle_connections_per_host(keep)
        .max_idle_age(crate::reuse::DEFAULT_IDLE * 2)
        .input_buffer_size(INPUT_BUFFER_BYTES)
        .output_buffer_size(options.output_buffer)
        .max_response_header_size(MAX_REPLY_HEADER_BYTES)
        .proxy(options.proxy)
        .build();
    let watch = Arc::new(Watch::default());
    let agent = ureq::Agent::with_parts(config, connector(tls, Arc::clone(&watch)), resolver());
    Ok(Wired {
        agent,
        rejected,
        watch,
    })
}

/// ureq resolves every host on a fresh thread so that DNS can time out,
/// even an IP address that needs no lookup. An agent configured with an IP
/// (common for a monitoring server on a LAN) then starts a thread per beat;
/// this resolver answers IP literals directly, and looks names up one at a
/// time with errors that say a lookup timed out (ureq's says only that the
/// attempt did).
#[derive(Debug, Default)]
struct LiteralFirst;

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if let Some(addr) = literal_addr(uri) {
            let mut addrs = self.empty();
            addrs.push(addr);
            return Ok(addrs);
        }
        let host = uri.host().unwrap_or_default().to_string();
        let mut addrs = self.empty();
        for addr in lookup(&host, port_of(uri), &timeout)? {
            if addrs.try_push(addr).is_err() {
                break;
            }
        }
        if addrs.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(addrs)
    }
}

/// A name lookup that did not answer within the attempt's time.
#[derive(Debug)]
pub struct LookupTimedOut {
    pub host: String,
    pub within: Duration,
}

impl fmt::Display for LookupTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DNS lookup of {} timed out", self.host)
    }
}

impl std::error::Error for LookupTimedOut {}

/// A name lookup refused because an earlier one still hangs.
#[derive(Debug)]
pub struct LookupStuck {
    pub host: String,
    /// How long ago the hanging lookup began.
    pub for_: Duration,
}

impl fmt::Display for LookupStuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an earlier DNS lookup of {} has not returned", self.host)
    }
}

impl std::error::Error for LookupStuck {}

/// The lookup still running on its thread, if one is: the system resolver
/// cannot be told to give up, so a resolver that drops queries would
/// otherwise leave one thread per attempt behind (12 -> 61 in 30 s).
static IN_FLIGHT: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

fn in_flight() -> std::sync::MutexGuard<'static, Option<std::time::Instant>> {
    IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner())
}

fn lookup(host: &str, port: u16, timeout: &NextTimeout) -> Result<Vec<SocketAddr>, ureq::Error> {
    use std::net::ToSocketAddrs;
    if timeout.after.is_not_happening() {
        let found = (host, port).to_socket_addrs().map_err(ureq::Error::Io)?;
        return Ok(found.collect());
    }
    lookup_within(host, port, *timeout.after).map_err(ureq::Error::Io)
}

/// `host`'s addresses from the system resolver, on a thread of its own so
/// that it can be given up after `within`; at most one at a time. The
/// errors [`LookupTimedOut`] and [`LookupStuck`] ride inside the io::Error.
pub fn lookup_within(host: &str, port: u16, within: Duration) -> std::io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    {
        let mut running = in_flight();
        if let Some(since) = *running {
            let stuck = LookupStuck {
                host: host.to_string(),
                for_: since.elapsed(),
            };
            return Err(std::io::Error::other(stuck));
        }
        *running = Some(std::time::Instant::now());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let name = host.to_string();
    let spawned = crate::workers::spawn(move || {
        let found = (name.as_str(), port)
            .to_socket_addrs()
            .map(|addrs| addrs.collect::<Vec<_>>());
        *in_flight() = None;
        let _ = tx.send(found);
    });
    if let Err(e) = spawned {
        *in_flight() = None;
        return Err(e);
    }
    match rx.recv_timeout(within) {
        Ok(found) => found,
        Err(_) => {
            let late = LookupTimedOut {
                host: host.to_string(),
                within,
            };
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, late))
        }
    }
}

fn literal_addr(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port_of(uri)))
}

/// The URL's port, or its scheme's default (validated URLs are http or https).
pub fn port_of(uri: &Uri) -> u16 {
    let https = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    uri.port_u16().unwrap_or(if https { 443 } else { 80 })
}

/// Wraps each connection so a request goes out in one write. ureq sends the
/// head and the body in two writes: two TCP segments (two TLS records) per
/// beat, and on the server two wake-ups. The writes of one request are
/// kept until ureq waits for the answer, then sent together.
#[derive(Debug)]
struct OneWrite;

impl<In: Transport> Connector<In> for OneWrite {
    type Out = Coalesced<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Coalesced {
            inner,
            pending: Vec::new(),
        }))
    }
}

pub struct Coalesced<T> {
    inner: T,
    /// What ureq asked us to send, not yet sent.
    pending: Vec<u8>,
}

impl<T: fmt::Debug> fmt::Debug for Coalesced<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Coalesced").field(&self.inner).finish()
    }
}

impl<T: Transport> Coalesced<T> {
    /// Sends what is pending through the inner transport's output buffer.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let mut sent = 0;
        while sent < self.pending.len() {
            let output = self.inner.buffers().output();
            let n = output.len().min(self.pending.len() - sent);
            if n == 0 {
                break;
            }
            output[..n].copy_from_slice(&self.pending[sent..sent + n]);
            self.inner.transmit_output(n, timeout)?;
            sent += n;
        }
        self.pending.clear();
        Ok(())
    }
}

impl<T: Transport> Transport for Coalesced<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
        let output = self.inner.buffers().output();
        self.pending.extend_from_slice(&output[..amount]);
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ureq::unversioned::transport::LazyBuffers;

    /// A transport that records what it was asked to send.
    #[derive(Debug)]
    struct Recorder {
        buffers: LazyBuffers,
        sent: Vec<Vec<u8>>,
    }

    impl Transport for Recorder {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            let out = self.buffers.output()[..amount].to_vec();
            self.sent.push(out);
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            Ok(true)
        }
        fn is_open(&mut self) -> bool {
            true
        }
    }

    fn timeout() -> NextTimeout {
        NextTimeout {
            after: ureq::unversioned::transport::time::Duration::from_secs(1),
            reason: ureq::Timeout::Global,
            per_read: None,
            per_write: None,
        }
    }

    #[test]
    fn head_and_body_go_out_in_one_write() {
        let mut t = Coalesced {
            inner: Recorder {
                buffers: LazyBuffers::new(1024, 1024),
                sent: Vec::new(),
            },
            pending: Vec::new(),
        };
        for part in [&b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n"[..], b"{}"] {
            t.buffers().output()[..part.len()].copy_from_slice(part);
            t.transmit_output(part.len(), timeout()).unwrap();
        }
        assert!(
            t.inner.sent.is_empty(),
            "nothing leaves before the answer is awaited"
        );
        t.await_input(timeout()).unwrap();
        assert_eq!(
            t.inner.sent,
            [b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}".to_vec()]
        );
        // A request bigger than the output buffer still goes out whole, in pieces.
        let big = vec![b'x'; 3000];
        for chunk in big.chunks(1000) {
            t.buffers().output()[..chunk.len()].copy_from_slice(chunk);
            t.transmit_output(chunk.len(), timeout()).unwrap();
        }
        t.maybe_await_input(timeout()).unwrap();
        assert_eq!(t.inner.sent[1..].concat(), big);
    }

    #[test]
    fn ip_literals_resolve_without_a_lookup() {
        let addr = |u: &str| literal_addr(&u.parse().unwrap());
        assert_eq!(
            addr("http://127.0.0.1:8080/x"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(addr("https://[::1]/"), Some("[::1]:443".parse().unwrap()));
        assert_eq!(
            addr("http://10.1.2.3"),
            Some("10.1.2.3:80".parse().unwrap())
        );
        assert_eq!(addr("https://monitor.example.com"), None);
    }
}
