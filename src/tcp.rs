//! Our TCP connector and transport: ureq's (whose socket is private), plus
//! the one fact only the socket knows when a
//! kept connection is silent: whether the server's TCP acknowledged the
//! beat. Silent and unacknowledged, the connection is dead (a NAT forgot
//! it) and the beat goes out again on a new one; silent but acknowledged,
//! the server has the beat and is slow, and sending it again would record
//! it twice, so we keep waiting for the answer (reuse.rs decides).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
};

use crate::reuse::{self, Silence};

/// The first-byte deadline of the attempt under way, if it may go over a
/// kept connection: shared by the client (which sets it) and the
/// connections (which apply it).
#[derive(Debug, Default)]
pub struct Watch(Mutex<Option<Armed>>);

#[derive(Debug, Clone, Copy)]
struct Armed {
    since: Instant,
    first_byte: Duration,
}

impl Watch {
    /// Until the guard drops, a connection opened before now waits at most
    /// `first_byte` for an answer unless the server acknowledged the request.
    pub fn arm(&self, first_byte: Duration) -> Disarm<'_> {
        *self.slot() = Some(Armed {
            since: Instant::now(),
            first_byte,
        });
        Disarm(self)
    }

    fn armed(&self) -> Option<Armed> {
        *self.slot()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Armed>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Disarm<'a>(&'a Watch);

impl Drop for Disarm<'_> {
    fn drop(&mut self) {
        *self.0.slot() = None;
    }
}

/// The silent, unacknowledged connection, inside the io::Error a dead
/// kept connection fails with.
#[derive(Debug)]
pub struct Unacknowledged {
    pub within: Duration,
    /// None when the socket could not say.
    pub bytes: Option<u64>,
}

impl std::fmt::Display for Unacknowledged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let within = crate::clock::format_duration(self.within);
        match self.bytes {
            Some(n) => write!(
                f,
                "no answer within {within} and {n} byte(s) not acknowledged"
            ),
            None => write!(
                f,
                "no answer within {within}, and the socket cannot say whether the request \
                 was acknowledged"
            ),
        }
    }
}

impl std::error::Error for Unacknowledged {}

/// Opens TCP connections like ureq's `TcpConnector` (each resolved address
/// in turn, with a share of the time), as [`Watched`] transports.
#[derive(Debug)]
pub struct Tcp(pub Arc<Watch>);

impl<In: Transport> Connector<In> for Tcp {
    type Out = Either<In, Watched>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(chained) = chained {
            return Ok(Some(Either::A(chained)));
        }
        let stream = connect_any(&details.addrs, details.timeout)?;
        if details.config.no_delay() {
            stream.set_nodelay(true)?;
        }
        // Not registered for Agent::shutdown(), which the agent never
        // calls: every request is bounded by its own timeout.
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(Watched {
            stream,
            buffers,
            read_timeout: None,
            write_timeout: None,
            opened: Instant::now(),
            heard: None,
            watch: Arc::clone(&self.0),
        })))
    }
}

/// The share of `total` the `index`th of `count` addresses gets: halves
/// that add up to the whole (as ureq and curl do), at least 10 ms.
fn share(total: Duration, index: usize, count: usize) -> Duration {
    let weight = 0.5_f64.powi(index.min(30) as i32);
    let sum = 2.0 * (1.0 - 0.5_f64.powi(count.clamp(1, 30) as i32));
    total
        .mul_f64(weight / sum)
        .max(Duration::from_millis(10))
        .min(total.max(Duration::from_millis(10)))
}

fn connect_any(addrs: &[SocketAddr], timeout: NextTimeout) -> Result<TcpStream, ureq::Error> {
    let started = Instant::now();
    let total = timeout.not_zero().map(|t| *t);
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate() {
        let tried = match total {
            Some(total) => TcpStream::connect_timeout(addr, share(total, i, addrs.len())),
            None => TcpStream::connect(addr),
        };
        match tried {
            Ok(stream) => return Ok(stream),
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                if total.is_some_and(|t| started.elapsed() >= t) {
                    return Err(ureq::Error::Timeout(timeout.reason));
                }
                last = Some(ureq::Error::Timeout(ureq::Timeout::Connect));
            }
            // This address is refused or unreachable; the next may work
            // (an AAAA record on a box without an IPv6 route).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                        | io::ErrorKind::AddrNotAvailable
                ) =>
            {
                last = Some(ureq::Error::Io(e));
            }
            Err(e) => return Err(ureq::Error::Io(e)),
        }
    }
    Err(last.unwrap_or_else(|| {
        ureq::Error::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "connection refused",
        ))
    }))
}

/// A TCP connection as ureq's transport, which also applies the [`Watch`].
pub struct Watched {
    stream: TcpStream,
    buffers: LazyBuffers,
    /// The socket's timeouts as last set, to set them only when they change.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    opened: Instant,
    /// When input last arrived.
    heard: Option<Instant>,
    watch: Arc<Watch>,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Watched")
            .field(&self.stream.peer_addr().ok())
            .finish()
    }
}

/// The socket timeout for a `NextTimeout`, and the error when it is spent.
fn limit(timeout: NextTimeout) -> Result<Option<Duration>, ureq::Error> {
    if timeout.after.is_zero() {
        return Err(ureq::Error::Timeout(timeout.reason));
    }
    Ok(timeout.not_zero().map(|t| *t))
}

impl Watched {
    fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        if t != self.read_timeout {
            self.stream.set_read_timeout(t)?;
            self.read_timeout = t;
        }
        Ok(())
    }

    /// One read into the input buffer within `timeout` (a signal does not
    /// cut it short: Linux does not restart reads that have a timeout).
    fn read(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let whole = limit(timeout)?;
        let started = Instant::now();
        self.set_read_timeout(whole)?;
        let amount = loop {
            match self.stream.read(self.buffers.input_append_buf()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    let Some(whole) = whole else { continue };
                    let left = whole.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Err(ureq::Error::Timeout(timeout.reason));
                    }
                    self.set_read_timeout(Some(left))?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ureq::Error::Timeout(timeout.reason));
                }
                Err(e) => return Err(ureq::Error::Io(e)),
            }
        };
        self.buffers.input_appended(amount);
        if amount > 0 {
            self.heard = Some(Instant::now());
        }
        Ok(amount > 0)
    }

    /// The wait for the answer to a request sent on a kept connection.
    fn read_first(
        &mut self,
        timeout: NextTimeout,
        first_byte: Duration,
    ) -> Result<bool, ureq::Error> {
        let started = Instant::now();
        let whole = timeout.for_read().not_zero().map(|t| *t);
        // Unacknowledged before a delayed ACK could have come says nothing.
        let ask_at = reuse::ask_at(first_byte);
        if whole.is_some_and(|w| w <= ask_at) {
            // The question cannot be asked within the budget: wait it out
            // on this connection (a spent budget is a failure, not a resend).
            return self.read(timeout);
        }
        let mut short = timeout;
        short.after = ask_at.into();
        match self.read(short) {
            Err(ureq::Error::Timeout(_)) => {}
            other => return other,
        }
        let unsent = unacknowledged(&self.stream);
        match reuse::after_silence(&unsent) {
            Silence::Dead => Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                Unacknowledged {
                    within: ask_at,
                    bytes: unsent.ok(),
                },
            ))),
            Silence::Acknowledged => {
                log::debug!(
                    "no answer within {} on the kept connection, but the server acknowledged \
                     the beat: waiting for its answer rather than sending it again",
                    crate::clock::format_duration(ask_at)
                );
                let mut rest = timeout;
                if let Some(whole) = whole {
                    rest.after = whole.saturating_sub(started.elapsed()).into();
                }
                self.read(rest)
            }
        }
    }
}

impl Transport for Watched {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        let t = limit(timeout)?;
        if t != self.write_timeout {
            self.stream.set_write_timeout(t)?;
            self.write_timeout = t;
        }
        match self.stream.write_all(&self.buffers.output()[..amount]) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(ureq::Error::Timeout(timeout.reason))
            }
            Err(e) => Err(ureq::Error::Io(e)),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        match self.watch.armed() {
            // Only a connection from before the attempt, and only until
            // its first answer in this attempt.
            Some(armed)
                if self.opened < armed.since && self.heard.is_none_or(|h| h < armed.since) =>
            {
                self.read_first(timeout, armed.first_byte)
            }
            _ => self.read(timeout),
        }
    }

    /// Whether a pooled connection is still worth a request: nothing to
    /// read (bytes or an EOF from the server would mean it is not).
    fn is_open(&mut self) -> bool {
        let mut byte = [0];
        let open = self.stream.set_nonblocking(true).is_ok()
            && matches!(self.stream.read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        open && self.stream.set_nonblocking(false).is_ok()
    }
}

/// Bytes written to the socket that its peer has not acknowledged
/// (SIOCOUTQ: sent and unacknowledged, or not yet sent).
fn unacknowledged(socket: &impl AsRawFd) -> io::Result<u64> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: the descriptor is open for as long as `socket` is borrowed,
    // and TIOCOUTQ writes one int through the pointer.
    let done = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut bytes) };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    u64::try_from(bytes).map_err(|_| io::Error::other("negative send queue"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_share_the_time_in_halves() {
        let total = Duration::from_secs(10);
        assert_eq!(share(total, 0, 1), total);
        let four: Vec<_> = (0..4).map(|i| share(total, i, 4).as_millis()).collect();
        assert_eq!(four, [5333, 2666, 1333, 666]);
        assert_eq!(
            share(Duration::from_millis(5), 0, 1),
            Duration::from_millis(10)
        );
        assert!(share(total, 60, 64) >= Duration::from_millis(10));
    }

    #[test]
    fn the_send_queue_is_empty_once_the_peer_acknowledged() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        client.write_all(b"beat").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while unacknowledged(&client).unwrap() != 0 {
            assert!(Instant::now() < deadline, "loopback never acknowledged");
            std::thread::sleep(Duration::from_millis(5));
        }
        let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(unacknowledged(&listening).is_err());
    }
}
