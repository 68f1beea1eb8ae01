//! A service's response time as the server's own agent measures it: how
//! long a TCP connect takes. Every port's connect starts at once on
//! non-blocking sockets and one `poll` waits for all of them, so twenty
//! ports cost one thread's few system calls, and a port whose backlog is
//! full (its SYN dropped) costs the deadline once, not once per port.
//! Nothing is sent: a finished handshake, then an ordinary close.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How one connect went.
#[derive(Debug, Clone, PartialEq)]
pub enum Connect {
    Took(Duration),
    Failed(String),
}

/// Connects to each of `targets` at once and waits at most `within` for
/// all; the results are in `targets`' order.
pub fn time_all(targets: &[SocketAddr], within: Duration) -> Vec<Connect> {
    let started = Instant::now();
    let mut results: Vec<Option<Connect>> = vec![None; targets.len()];
    let mut pending: Vec<(usize, OwnedFd)> = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        match start(target) {
            Ok(Some(fd)) => pending.push((i, fd)),
            Ok(None) => results[i] = Some(Connect::Took(started.elapsed())),
            Err(e) => results[i] = Some(Connect::Failed(describe(&e))),
        }
    }
    while !pending.is_empty() {
        let left = within.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        let mut polled: Vec<libc::pollfd> = pending
            .iter()
            .map(|(_, fd)| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        let millis = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `polled` is a live array of `polled.len()` pollfds.
        let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, millis) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        let now = started.elapsed();
        let mut still = Vec::with_capacity(pending.len());
        for ((i, fd), p) in pending.into_iter().zip(&polled) {
            if p.revents == 0 {
                still.push((i, fd));
                continue;
            }
            results[i] = Some(match socket_error(&fd) {
                0 => Connect::Took(now),
                errno => Connect::Failed(describe(&std::io::Error::from_raw_os_error(errno))),
            });
        }
        pending = still;
    }
    let waited = crate::clock::format_duration(within);
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Connect::Failed(format!("no answer within {waited}"))))
        .collect()
}

fn describe(e: &std::io::Error) -> String {
    crate::text::describe_io(e)
}

/// A non-blocking connect started: Some(socket) while it is under way,
/// None when it finished at once.
fn start(target: &SocketAddr) -> std::io::Result<Option<OwnedFd>> {
    let family = match target {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let (storage, len) = sockaddr(target);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&raw const storage).cast::<libc::sockaddr>(),
            len,
        )
    };
    if r == 0 {
        return Ok(None);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(Some(fd))
    } else {
        Err(e)
    }
}

fn socket_error(fd: &OwnedFd) -> i32 {
    let mut errno: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `errno` is an int of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut errno).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if r < 0 { libc::EIO } else { errno }
}

fn sockaddr(target: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match target {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn listening_ports_answer_closed_ones_fail_and_all_go_at_once() {
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let open6 = TcpListener::bind("[::1]:0").ok();
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut targets = vec![open.local_addr().unwrap(), closed];
        if let Some(l) = &open6 {
            targets.push(l.local_addr().unwrap());
        }
        let results = time_all(&targets, Duration::from_secs(10));
        assert!(matches!(results[0], Connect::Took(t) if t < Duration::from_secs(10)));
        match &results[1] {
            Connect::Failed(why) => assert!(why.contains("refused"), "{why}"),
            other => panic!("{other:?}"),
        }
        if open6.is_some() {
            assert!(matches!(results[2], Connect::Took(_)), "{results:?}");
        }
    }

    #[test]
    fn a_port_whose_backlog_is_full_costs_the_deadline_once() {
        // A listener that never accepts, its backlog filled: further SYNs
        // are dropped and the connects wait.
        let full = full_listener();
        let target = full.0.local_addr().unwrap();
        let started = Instant::now();
        let results = time_all(&[target, target, target], Duration::from_millis(300));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{took:?}");
        if results.iter().all(|r| matches!(r, Connect::Failed(_))) {
            match &results[0] {
                Connect::Failed(why) => assert_eq!(why, "no answer within 300ms"),
                Connect::Took(_) => unreachable!(),
            }
        }
    }

    /// A listener with backlog 0 and a few connections it never accepts.
    fn full_listener() -> (std::net::TcpListener, Vec<std::net::TcpStream>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: listen(2) on our own socket, shrinking its backlog.
        unsafe { libc::listen(l.as_raw_fd(), 0) };
        let addr = l.local_addr().unwrap();
        let held = (0..2)
            .filter_map(|_| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
            })
            .collect();
        (l, held)
    }
}
