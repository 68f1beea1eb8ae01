//! The sd_notify protocol, spoken directly (std only, no libsystemd):
//! one datagram per message to the socket named by `$NOTIFY_SOCKET`.
//! Without that variable every call does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A floor under the watchdog ping period: `WATCHDOG_USEC=1` would
/// otherwise have us spin sending thousands of datagrams a second.
pub const MIN_WATCHDOG_PING: Duration = Duration::from_millis(100);

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. A socket we
    /// cannot use is logged and ignored: the agent's job is the heartbeat.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Notifier {
        let Some(path) = get("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
            return Notifier::disabled();
        };
        let addr = match path.strip_prefix('@') {
            // A leading '@' names a socket in the abstract namespace.
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        // Non-blocking: a stalled systemd must not hold up a beat or a stop.
        let socket = UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s));
        let target = match (socket, addr) {
            (Ok(socket), Ok(addr)) => Some((socket, addr)),
            (Err(e), _) | (_, Err(e)) => {
                log::warn!(
                    "NOTIFY_SOCKET={} unusable ({}); not talking to systemd",
                    crate::text::untrusted(&path),
                    crate::text::untrusted(&e.to_string())
                );
                None
            }
        };
        let for_us = get("WATCHDOG_PID")
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = get("WATCHDOG_USEC")
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        if let Some(w) = watchdog
            && w / 2 < MIN_WATCHDOG_PING
        {
            log::warn!(
                "WatchdogSec is {}: too short to keep up with; pinging every {} instead \
                 (set WatchdogSec to a few seconds or more)",
                crate::clock::format_duration(w),
                crate::clock::format_duration(MIN_WATCHDOG_PING)
            );
        }
        Notifier { target, watchdog }
    }

    /// How often to send WATCHDOG=1: half the watchdog timeout, as
    /// sd_watchdog_enabled(3) advises, but never more often than
    /// [`MIN_WATCHDOG_PING`].
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| (w / 2).max(MIN_WATCHDOG_PING))
    }

    /// Warns when an attempt may last as long as the watchdog allows: the
    /// agent pings before each attempt, not during one, so systemd would kill
    /// it in the middle of a slow attempt.
    pub fn warn_if_shorter_than(&self, timeout: Duration) {
        if let Some(watchdog) = self.watchdog
            && timeout + Duration::from_secs(1) >= watchdog
        {
            log::warn!(
                "WatchdogSec ({}) is not longer than timeout ({}): systemd may kill the agent \
                 during a slow attempt; raise WatchdogSec",
                crate::clock::format_duration(watchdog),
                crate::clock::format_duration(timeout)
            );
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn status(&self, status: &str) {
        // Every user can read it with `systemctl status`.
        self.send(&format!("STATUS={}", crate::text::redacted(status)));
    }

    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send("WATCHDOG=1");
        }
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.target
            && let Err(e) = socket.send_to_addr(message.as_bytes(), addr)
        {
            log::debug!("sd_notify {message:?} failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("sd-notify-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let path_str = path.to_str().unwrap();
        let n = Notifier::from_env(env(&[
            ("NOTIFY_SOCKET", path_str),
            ("WATCHDOG_USEC", "4000000"),
        ]));
        n.ready("started");
        n.watchdog();
        n.stopping();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        for _ in 0..3 {
            let len = listener.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..len]).to_string());
        }
        assert_eq!(
            got,
            [
                "READY=1\nSTATUS=started",
                "WATCHDOG=1",
                "STOPPING=1\nSTATUS=stopping"
            ]
        );
        assert_eq!(n.watchdog_every(), Some(Duration::from_secs(2)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn messages_reach_an_abstract_socket() {
        let name = format!("sd-notify-test-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let at_name = format!("@{name}");
        let n = Notifier::from_env(env(&[("NOTIFY_SOCKET", &at_name)]));
        n.status("last beat 12:00:30 ok");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=last beat 12:00:30 ok");
    }

    #[test]
    fn without_notify_socket_no_watchdog_wakes_the_agent() {
        // WATCHDOG_USEC inherited without a socket to ping: nothing to do,
        // so the agent must not wake up every 2 s for it.
        let n = Notifier::from_env(env(&[("WATCHDOG_USEC", "4000000")]));
        assert_eq!(n.watchdog_every(), None);
        let with_socket = Notifier::from_env(env(&[
            ("NOTIFY_SOCKET", "@x"),
            ("WATCHDOG_USEC", "4000000"),
        ]));
        assert_eq!(with_socket.watchdog_every(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn an_absurdly_short_watchdog_is_pinged_at_the_floor() {
        let n = Notifier::from_env(env(&[("NOTIFY_SOCKET", "@x"), ("WATCHDOG_USEC", "1")]));
        assert_eq!(n.watchdog_every(), Some(MIN_WATCHDOG_PING));
    }

    #[test]
    fn a_watchdog_meant_for_another_pid_is_ignored() {
        let n = Notifier::from_env(env(&[
            ("NOTIFY_SOCKET", "@x"),
            ("WATCHDOG_USEC", "4000000"),
            ("WATCHDOG_PID", "1"),
        ]));
        assert_eq!(n.watchdog_every(), None);
    }
}
