//! When a kept-open connection may carry the next beat, and when a failed
//! attempt on one means only "that connection was dead" (pure decisions;
//! heartbeat.rs acts on them).
//!
//! A server says how long it keeps an idle connection with `Keep-Alive:
//! timeout=N` (Apache, Node.js) or says nothing (nginx keeps 75 s); `Connection:
//! close` ends it. A connection can also die unannounced: closed in the
//! same instant we send, or silently dropped by a NAT or firewall, so our
//! write succeeds and nothing ever comes back. Such an attempt gets a short
//! first-byte deadline and, when it fails the way a dead connection fails,
//! the beat goes out at once on a new connection: no failure, no backoff.
//! A server that is only slow fails no such way: its TCP acknowledged the
//! beat, so the attempt waits for the answer and the beat is not sent
//! twice (tcp.rs asks the socket).

use std::io;
use std::time::{Duration, Instant};

/// How long we keep using an idle connection when the server does not say.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(120);
/// Reuse stops this long before the idle limit the server announced, so a
/// beat is never sent into the moment the server closes.
const IDLE_MARGIN: Duration = Duration::from_secs(1);
/// The first-byte deadline on a reused connection: at least this, or three
/// times the server's last answer time when that is longer (a slow server
/// must not make every beat fall back and be sent twice).
const FIRST_BYTE_FLOOR: Duration = Duration::from_millis(1500);
/// The most a receiver may hold back its ACK (Linux and Windows delay it
/// up to 200 ms), with room for a busy machine: a request unacknowledged
/// sooner than this may well have arrived.
pub const DELAYED_ACK: Duration = Duration::from_millis(400);
/// The longest idle time we believe a server announces. Any server, proxy
/// or middlebox can send `Keep-Alive: timeout=18446744073709551615`; past
/// an hour a NAT has long dropped the connection anyway.
pub const MAX_IDLE: Duration = Duration::from_secs(3600);

/// What we know of the connection the last beat used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kept {
    /// Until when the server keeps it open (with our margin); None when
    /// there is no connection worth trying.
    until: Option<Instant>,
    /// How long the server took to answer last time.
    last_answer: Duration,
}

impl Kept {
    /// After a reply: the connection stays usable unless the server closes it.
    pub fn after_reply(
        now: Instant,
        answer_took: Duration,
        connection: Option<&str>,
        keep_alive: Option<&str>,
    ) -> Kept {
        Kept {
            until: idle_limit(connection, keep_alive).and_then(|limit| now.checked_add(limit)),
            last_answer: answer_took,
        }
    }

    /// After a transport error: nothing is kept.
    pub fn none() -> Kept {
        Kept::default()
    }

    /// If an attempt at `now` may reuse the kept connection: the idle age
    /// ureq may accept, and the first-byte deadline for the attempt.
    pub fn reuse_at(&self, now: Instant, budget: Duration) -> Option<(Duration, Duration)> {
        let until = self.until?;
        let left = until.checked_duration_since(now)?;
        if left.is_zero() {
            return None;
        }
        let first_byte = FIRST_BYTE_FLOOR
            .max(self.last_answer.saturating_mul(3))
            .min(budget / 2);
        Some((left, first_byte))
    }
}

/// How long a connection may sit idle after this reply, by its headers
/// (at most [`MAX_IDLE`]); None when the server will close it.
pub fn idle_limit(connection: Option<&str>, keep_alive: Option<&str>) -> Option<Duration> {
    if connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))) {
        return None;
    }
    let announced = keep_alive.and_then(|header| {
        header.split(',').find_map(|part| {
            let (name, value) = part.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("timeout") {
                return None;
            }
            value.trim().parse::<u64>().ok().map(Duration::from_secs)
        })
    });
    match announced {
        Some(limit) => limit
            .min(MAX_IDLE)
            .checked_sub(IDLE_MARGIN)
            .filter(|l| !l.is_zero()),
        None => Some(DEFAULT_IDLE),
    }
}

/// Does this failed attempt on a reused connection mean only that the
/// connection was dead? (Closed or reset under us, or silent past the
/// first-byte deadline with the request unacknowledged: tcp.rs's
/// `Unacknowledged`.) A timeout is the attempt's whole budget spent on a
/// connection that may have delivered the beat: a failure, not a resend.
/// Anything the server said, and TLS or DNS trouble, is a real answer and
/// is not papered over.
pub fn dead_connection(err: &ureq::Error) -> bool {
    use io::ErrorKind as K;
    match err {
        ureq::Error::Io(e) => {
            matches!(
                e.kind(),
                K::UnexpectedEof
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::NotConnected
                    | K::TimedOut
                    | K::WouldBlock
            ) && e
                .get_ref()
                .is_none_or(|inner| inner.downcast_ref::<rustls::Error>().is_none())
        }
        _ => false,
    }
}

/// When a silent kept connection is asked whether it acknowledged the
/// request: at the first-byte deadline, but never before a delayed ACK
/// could have come.
pub fn ask_at(first_byte: Duration) -> Duration {
    first_byte.max(DELAYED_ACK)
}

/// What a kept connection's silence past the first-byte deadline means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// The request was not acknowledged: nothing at the other end has it.
    /// The beat goes out again on a new connection.
    Dead,
    /// The server's TCP has every byte of the request: the server is slow,
    /// and sending the beat again would record it twice.
    Acknowledged,
}

/// From the bytes of the request still unacknowledged (SIOCOUTQ); when the
/// socket cannot say, the connection is taken for dead, as before the
/// question could be asked.
pub fn after_silence(unacknowledged: &io::Result<u64>) -> Silence {
    match unacknowledged {
        Ok(0) => Silence::Acknowledged,
        _ => Silence::Dead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_close_ends_reuse() {
        assert_eq!(idle_limit(Some("close"), None), None);
        assert_eq!(
            idle_limit(Some("Keep-Alive, Close"), Some("timeout=60")),
            None
        );
    }

    #[test]
    fn the_announced_idle_time_is_honoured_with_a_margin() {
        assert_eq!(
            idle_limit(None, Some("timeout=5, max=100")),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            idle_limit(Some("keep-alive"), Some("max=3, Timeout = 30")),
            Some(Duration::from_secs(29))
        );
        // Too short to be worth it: a new connection each time.
        assert_eq!(idle_limit(None, Some("timeout=1")), None);
        assert_eq!(idle_limit(None, Some("timeout=0")), None);
        // Unreadable or absent: our own default.
        assert_eq!(idle_limit(None, Some("timeout=soon")), Some(DEFAULT_IDLE));
        assert_eq!(idle_limit(None, None), Some(DEFAULT_IDLE));
    }

    #[test]
    fn an_absurd_announced_idle_time_is_capped_not_a_crash() {
        let huge = "timeout=18446744073709551615";
        assert_eq!(idle_limit(None, Some(huge)), Some(MAX_IDLE - IDLE_MARGIN));
        let t0 = Instant::now();
        let kept = Kept::after_reply(t0, Duration::MAX, None, Some(huge));
        let (idle, first_byte) = kept.reuse_at(t0, Duration::from_secs(10)).unwrap();
        assert!(idle <= MAX_IDLE);
        assert_eq!(first_byte, Duration::from_secs(5));
    }

    #[test]
    fn a_kept_connection_is_tried_only_within_its_idle_limit() {
        let t0 = Instant::now();
        let budget = Duration::from_secs(10);
        let kept = Kept::after_reply(t0, Duration::from_millis(20), None, Some("timeout=5"));
        let (idle, first_byte) = kept.reuse_at(t0 + Duration::from_secs(3), budget).unwrap();
        assert_eq!(idle, Duration::from_secs(1));
        assert_eq!(first_byte, FIRST_BYTE_FLOOR);
        assert_eq!(kept.reuse_at(t0 + Duration::from_secs(4), budget), None);
        assert_eq!(kept.reuse_at(t0 + Duration::from_secs(30), budget), None);
        assert_eq!(Kept::none().reuse_at(t0, budget), None);
        let closed = Kept::after_reply(t0, Duration::ZERO, Some("close"), None);
        assert_eq!(closed.reuse_at(t0, budget), None);
    }

    #[test]
    fn a_slow_server_gets_a_longer_first_byte_deadline_within_the_budget() {
        let t0 = Instant::now();
        let kept = Kept::after_reply(t0, Duration::from_secs(1), None, None);
        let (_, first_byte) = kept.reuse_at(t0, Duration::from_secs(10)).unwrap();
        assert_eq!(first_byte, Duration::from_secs(3));
        let (_, first_byte) = kept.reuse_at(t0, Duration::from_secs(2)).unwrap();
        assert_eq!(first_byte, Duration::from_secs(1));
    }

    #[test]
    fn a_delayed_ack_is_waited_for_before_the_socket_is_asked() {
        assert_eq!(ask_at(Duration::from_millis(50)), DELAYED_ACK);
        assert_eq!(ask_at(FIRST_BYTE_FLOOR), FIRST_BYTE_FLOOR);
    }

    #[test]
    fn a_silent_server_that_has_the_beat_is_waited_for() {
        assert_eq!(after_silence(&Ok(0)), Silence::Acknowledged);
        assert_eq!(after_silence(&Ok(310)), Silence::Dead);
        let closed = Err(io::Error::from_raw_os_error(libc::EBADF));
        assert_eq!(after_silence(&closed), Silence::Dead);
    }

    #[test]
    fn only_a_dead_connection_falls_back() {
        let io = |kind| ureq::Error::Io(io::Error::from(kind));
        assert!(dead_connection(&io(io::ErrorKind::UnexpectedEof)));
        assert!(dead_connection(&io(io::ErrorKind::ConnectionReset)));
        assert!(dead_connection(&io(io::ErrorKind::BrokenPipe)));
        let silent = io::Error::new(io::ErrorKind::TimedOut, "unacknowledged");
        assert!(dead_connection(&ureq::Error::Io(silent)));
        assert!(!dead_connection(&ureq::Error::Timeout(
            ureq::Timeout::Global
        )));
        assert!(!dead_connection(&io(io::ErrorKind::ConnectionRefused)));
        assert!(!dead_connection(&ureq::Error::HostNotFound));
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let tls = ureq::Error::Io(io::Error::new(io::ErrorKind::ConnectionAborted, cert));
        assert!(!dead_connection(&tls));
    }
}
