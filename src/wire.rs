//! How a request reaches the socket, below ureq's HTTP: one TLS client
//! configuration for the life of the process (so sessions resume), one
//! write per request (not one for the head and one for the body), and no
//! DNS thread for an IP address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, NextTimeout, RustlsConnector,
    TcpConnector, Transport,
};

/// The connector chain beats use: ureq's own (a CONNECT proxy, TCP,
/// rustls) with the TLS configuration kept, and writes coalesced.
pub fn connector() -> impl Connector<(), Out = impl Transport> {
    ().chain(ConnectProxyConnector::default())
        .chain(TcpConnector::default())
        .chain(OneTlsConfig::default())
        .chain(OneWrite)
}

/// Answers IP literals without a thread (see [`LiteralFirst`]).
pub fn resolver() -> impl Resolver {
    LiteralFirst::default()
}

/// ureq's rustls connector, told that every connection uses the agent's
/// TLS configuration. Each attempt sets its own timeouts, which makes ureq
/// treat the whole configuration as request-level and build a new rustls
/// `ClientConfig` (root store and an empty session cache) for every
/// connection: no TLS session was ever resumed. Our TLS settings never
/// change per request, so the connector may build the `ClientConfig` once
/// and keep it, and its session cache, for the life of the process.
#[derive(Debug, Default)]
struct OneTlsConfig(RustlsConnector);

impl<In: Transport> Connector<In> for OneTlsConfig {
    type Out = <RustlsConnector as Connector<In>>::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let agent_level = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: false,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        self.0.connect(&agent_level, chained)
    }
}

/// ureq resolves every host on a fresh thread so that DNS can time out,
/// even an IP address that needs no lookup. An agent configured with an IP
/// (common for a monitoring server on a LAN) then starts a thread per beat;
/// this resolver answers IP literals directly and leaves names to ureq.
#[derive(Debug, Default)]
struct LiteralFirst(DefaultResolver);

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match literal_addr(uri) {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.0.resolve(uri, config, timeout),
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
