//! The box's listening TCP sockets, and which process holds one. Asked of
//! the kernel's socket diagnostics (netlink, what `ss -lt` does), which
//! walk only the listening table; else read from `/proc/net/tcp{,6}`,
//! whose read walks every bucket of the connection table too (on this VM,
//! half a services push's CPU) however few connections there are, and
//! which is read only up to the first socket that is not listening (the
//! kernel lists those first): a box with 10,000 connections costs what
//! its few listeners do, not a megabyte of text.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// `st` of a listening socket.
const LISTEN: &str = "0A";
/// The most bytes read of one table, should its order ever change.
const MAX_TABLE_BYTES: u64 = 256 * 1024;
/// The most listeners kept, whatever the box has.
pub const MAX_LISTENERS: usize = 1024;

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub address: IpAddr,
    pub port: u16,
    pub uid: u32,
    /// The socket's inode number: the same while the socket lives, new
    /// when a service restarts and listens again.
    pub inode: u64,
}

/// One line of a `/proc/net/tcp{,6}` table: Some(Some(listener)) for a
/// listening socket, Some(None) for a line to skip (the header, a line
/// we cannot read), None for the first socket in another state.
fn parse_line(line: &str, v6: bool) -> Option<Option<Listener>> {
    let mut fields = line.split_ascii_whitespace();
    let (Some(slot), Some(local), Some(_remote), Some(state)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Some(None);
    };
    if !slot.ends_with(':') {
        return Some(None); // the header
    }
    if state != LISTEN {
        return None;
    }
    // tx:rx queue, tr:when, retransmits, then uid, timeout, inode.
    let mut rest = fields.skip(3);
    let (Some(uid), Some(_timeout), Some(inode)) = (rest.next(), rest.next(), rest.next()) else {
        return Some(None);
    };
    let listener = (|| {
        let (address, port) = local.split_once(':')?;
        Some(Listener {
            address: parse_address(address, v6)?,
            port: u16::from_str_radix(port, 16).ok()?,
            uid: uid.parse().ok()?,
            inode: inode.parse().ok()?,
        })
    })();
    Some(listener.filter(|l| l.port != 0))
}

/// The kernel prints an address as 32-bit words, each as the number its
/// bytes make in the host's order: the bytes come back in the host's
/// order too (so a big-endian MIPS router reads its own table right).
fn parse_address(hex: &str, v6: bool) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let text = hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(text, 16).ok()?.to_ne_bytes())
    };
    match (v6, hex.len()) {
        (false, 8) => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        (true, 32) => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            let address = Ipv6Addr::from(bytes);
            // A v4 address on a v6 socket (::ffff:a.b.c.d) is the v4 address.
            Some(
                address
                    .to_ipv4_mapped()
                    .map_or(IpAddr::V6(address), IpAddr::V4),
            )
        }
        _ => None,
    }
}

/// The listening sockets of IPv4 then IPv6; true when they could not be
/// read at all (no netlink and no `/proc/net`).
pub fn listening() -> (Vec<Listener>, bool) {
    if let Ok(found) = diag::listening() {
        return (found, false);
    }
    let mut found = Vec::new();
    let mut unreadable = false;
    for (path, v6) in [("/proc/self/net/tcp", false), ("/proc/self/net/tcp6", true)] {
        match read_table(path, v6, &mut found) {
            Ok(()) => {}
            // No IPv6 in this kernel: nothing listens on it.
            Err(e) if v6 && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => unreadable = true,
        }
    }
    (found, unreadable)
}

fn read_table(path: &str, v6: bool, into: &mut Vec<Listener>) -> std::io::Result<()> {
    use std::io::Read;
    let file = std::fs::File::open(path)?.take(MAX_TABLE_BYTES);
    parse_table(BufReader::with_capacity(4096, file), v6, into)
}

/// The listening sockets of one table, read line by line up to the first
/// socket in another state.
pub fn parse_table(
    mut reader: impl BufRead,
    v6: bool,
    into: &mut Vec<Listener>,
) -> std::io::Result<()> {
    let mut line = String::with_capacity(160);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        match parse_line(&line, v6) {
            None => return Ok(()),
            Some(Some(listener)) if into.len() < MAX_LISTENERS => into.push(listener),
            Some(_) => {}
        }
    }
}

/// NETLINK_SOCK_DIAG: one dump request per address family, filtered to
/// listening sockets by the kernel.
pub mod diag {
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::{Listener, MAX_LISTENERS};

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const TCP_LISTEN: u32 = 10;
    /// nlmsghdr, then inet_diag_req_v2 (family, protocol, ext, pad,
    /// states, then a zeroed inet_diag_sockid of 48 bytes).
    const HEADER: usize = 16;
    const REQUEST: usize = HEADER + 8 + 48;
    /// inet_diag_msg: family, state, timer, retrans, sockid (48 bytes),
    /// expires, rqueue, wqueue, uid, inode.
    const MESSAGE: usize = 4 + 48 + 20;

    pub fn listening() -> io::Result<Vec<Listener>> {
        // SAFETY: plain socket(2); owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let timeout = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: a timeval of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        let mut found = Vec::new();
        for family in [libc::AF_INET, libc::AF_INET6] {
            dump(&fd, family as u8, &mut found)?;
        }
        Ok(found)
    }

    fn dump(fd: &OwnedFd, family: u8, found: &mut Vec<Listener>) -> io::Result<()> {
        let mut request = [0u8; REQUEST];
        request[0..4].copy_from_slice(&(REQUEST as u32).to_ne_bytes());
        request[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        request[6..8].copy_from_slice(&flags.to_ne_bytes());
        request[8..12].copy_from_slice(&1u32.to_ne_bytes());
        request[16] = family;
        request[17] = libc::IPPROTO_TCP as u8;
        request[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
        // SAFETY: `request` is a live buffer of its length; the kernel is
        // the default destination of a netlink socket.
        let sent = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), REQUEST, 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: `buffer` is a live buffer of its length.
            let n =
                unsafe { libc::recv(fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let got = buffer.get(..n as usize).unwrap_or_default();
            if got.is_empty() || parse(got, found)? {
                return Ok(());
            }
        }
    }

    /// The messages of one datagram into `found`; true at the dump's end.
    pub fn parse(mut got: &[u8], found: &mut Vec<Listener>) -> io::Result<bool> {
        let u32_at = |b: &[u8], at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "a short netlink message");
        while got.len() >= HEADER {
            let len = u32_at(got, 0).ok_or_else(bad)? as usize;
            let kind = u16::from_ne_bytes([got[4], got[5]]);
            if len < HEADER || len > got.len() {
                return Err(bad());
            }
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let errno = u32_at(got, HEADER).map_or(0, |e| (e as i32).wrapping_neg());
                    return Err(io::Error::from_raw_os_error(errno));
                }
                SOCK_DIAG_BY_FAMILY if len >= HEADER + MESSAGE => {
                    let m = &got[HEADER..len];
                    if let Some(listener) = listener(m)
                        && found.len() < MAX_LISTENERS
                    {
                        found.push(listener);
                    }
                }
                _ => {}
            }
            // Messages are 4-byte aligned.
            let next = (len + 3) & !3;
            got = got.get(next..).unwrap_or_default();
        }
        Ok(false)
    }

    fn listener(m: &[u8]) -> Option<Listener> {
        let family = i32::from(*m.first()?);
        // sockid: sport (big-endian), dport, src[16], dst[16], if, cookie.
        let port = u16::from_be_bytes([*m.get(4)?, *m.get(5)?]);
        let src: [u8; 16] = m.get(8..24)?.try_into().ok()?;
        let address = match family {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
            libc::AF_INET6 => {
                let v6 = Ipv6Addr::from(src);
                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
            }
            _ => return None,
        };
        let at = 4 + 48 + 12;
        let uid = u32::from_ne_bytes(m.get(at..at + 4)?.try_into().ok()?);
        let inode = u32::from_ne_bytes(m.get(at + 4..at + 8)?.try_into().ok()?);
        (port != 0).then_some(Listener {
            address,
            port,
            uid,
            inode: u64::from(inode),
        })
    }
}

/// A process that holds a socket: its pid and `comm`, and the systemd
/// service it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub name: String,
    pub service: Option<String>,
}

/// The processes that hold the sockets `inodes`, looked for in every
/// process's open files until each is found or `within` has passed. Only
/// the processes whose `/proc/PID/fd` the agent may read are seen (all of
/// them as root; its own user's under the shipped unit's dynamic user).
pub fn owners(inodes: &[u64], within: Duration) -> HashMap<u64, Owner> {
    let started = Instant::now();
    let mut found = HashMap::new();
    if inodes.is_empty() {
        return found;
    }
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return found;
    };
    let mut link = String::new();
    for entry in proc.flatten() {
        if found.len() == inodes.len() || started.elapsed() > within {
            break;
        }
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            link.clear();
            link.push_str(&target.to_string_lossy());
            let Some(inode) = socket_inode(&link).filter(|i| inodes.contains(i)) else {
                continue;
            };
            if let Some(owner) = owner(pid) {
                found.entry(inode).or_insert(owner);
            }
        }
    }
    found
}

/// `socket:[12345]` -> 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn owner(pid: u32) -> Option<Owner> {
    let comm = super::read(&format!("/proc/{pid}/comm")).ok()?;
    let cgroup = super::read(&format!("/proc/{pid}/cgroup")).unwrap_or_default();
    Some(Owner {
        pid,
        name: comm.trim_end_matches('\n').to_string(),
        service: super::units::service_of(&cgroup).map(str::to_string),
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A table line as the kernel writes it, for this host's byte order.
    pub fn line(slot: usize, address: IpAddr, port: u16, state: &str, inode: u64) -> String {
        let words: Vec<[u8; 4]> = match address {
            IpAddr::V4(a) => vec![a.octets()],
            IpAddr::V6(a) => a
                .octets()
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect(),
        };
        let hex: String = words
            .iter()
            .map(|w| format!("{:08X}", u32::from_ne_bytes(*w)))
            .collect();
        let zero = "0".repeat(hex.len());
        format!(
            "{slot:4}: {hex}:{port:04X} {zero}:0000 {state} 00000000:00000000 00:00000000 \
             00000000   110        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
        )
    }

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
                          retrnsmt   uid  timeout inode\n";

    #[test]
    fn a_table_as_a_little_endian_kernel_wrote_it_is_read() {
        // Recorded on x86_64: 127.0.0.1:5432 and 0.0.0.0:22 listening, one
        // connection after them.
        let text = format!(
            "{HEADER}   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 \
             00000000   110        0 23456 1 0000000000000000 100 0 0 10 0\n   1: \
             00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0    \
             0 1234 1 0000000000000000 100 0 0 10 0\n   2: 0100007F:1538 0100007F:B0A2 01 \
             00000000:00000000 00:00000000 00000000   110        0 99 1 00 20 4 30 10 -1\n"
        );
        let mut found = Vec::new();
        parse_table(text.as_bytes(), false, &mut found).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(found[0].address, IpAddr::from([127, 0, 0, 1]));
        }
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].port, found[0].uid, found[0].inode),
            (5432, 110, 23456)
        );
        assert_eq!(found[1].address, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(found[1].port, 22);
    }

    #[test]
    fn v6_wildcard_loopback_and_mapped_addresses_are_read() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let text = [
            HEADER.to_string(),
            line(0, "::".parse().unwrap(), 80, "0A", 1),
            line(1, "::1".parse().unwrap(), 631, "0A", 2),
            line(2, mapped, 8080, "0A", 3),
            line(3, "fe80::1:2".parse().unwrap(), 53, "0A", 4),
        ]
        .concat();
        let mut found = Vec::new();
        parse_table(text.as_bytes(), true, &mut found).unwrap();
        let got: Vec<(IpAddr, u16)> = found.iter().map(|l| (l.address, l.port)).collect();
        assert_eq!(
            got,
            [
                ("::".parse().unwrap(), 80),
                ("::1".parse().unwrap(), 631),
                ("10.1.2.3".parse().unwrap(), 8080),
                ("fe80::1:2".parse().unwrap(), 53),
            ]
        );
    }

    #[test]
    fn reading_stops_at_the_first_socket_that_is_not_listening() {
        let mut text = HEADER.to_string();
        text.push_str(&line(0, [0, 0, 0, 0].into(), 22, "0A", 1));
        for i in 1..10_000 {
            text.push_str(&line(i, [10, 0, 0, 1].into(), 22, "01", 100 + i as u64));
        }
        // A listener after the connections would be a kernel that lists
        // in another order: not read, and not a listener anyway here.
        text.push_str(&line(10_000, [0, 0, 0, 0].into(), 80, "0A", 2));
        let mut found = Vec::new();
        parse_table(text.as_bytes(), false, &mut found).unwrap();
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn garbage_lines_are_skipped_and_the_count_is_capped() {
        let mut text = format!("{HEADER}garbage\n   0: zz:zz 0:0 0A\n");
        for i in 0..MAX_LISTENERS + 5 {
            text.push_str(&line(i, [0, 0, 0, 0].into(), 1 + i as u16, "0A", i as u64));
        }
        let mut found = Vec::new();
        parse_table(text.as_bytes(), false, &mut found).unwrap();
        assert_eq!(found.len(), MAX_LISTENERS);
        assert_eq!(parse_address("0100007", false), None);
        assert_eq!(parse_address("0100007F", true), None);
    }

    #[test]
    fn netlink_and_proc_net_tcp_list_the_same_listeners() {
        let _held = (
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            std::net::TcpListener::bind("[::1]:0").ok(),
        );
        let Ok(mut asked) = diag::listening() else {
            return; // no netlink here (a sandbox): /proc is what is read
        };
        let mut read = Vec::new();
        for (path, v6) in [("/proc/self/net/tcp", false), ("/proc/self/net/tcp6", true)] {
            let _ = read_table(path, v6, &mut read);
        }
        let key = |l: &Listener| (l.port, l.inode);
        asked.sort_by_key(key);
        read.sort_by_key(key);
        assert_eq!(asked, read);
        assert!(!asked.is_empty());
    }

    #[test]
    fn a_netlink_error_or_a_short_message_is_an_error_not_a_panic() {
        let mut found = Vec::new();
        let mut error = vec![0u8; 36];
        error[0..4].copy_from_slice(&36u32.to_ne_bytes());
        error[4..6].copy_from_slice(&2u16.to_ne_bytes());
        error[16..20].copy_from_slice(&(-13i32).to_ne_bytes());
        let e = diag::parse(&error, &mut found).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(13));
        let mut short = error.clone();
        short[0..4].copy_from_slice(&400u32.to_ne_bytes());
        assert!(diag::parse(&short, &mut found).is_err());
        assert!(!diag::parse(&[1, 2, 3], &mut found).unwrap());
    }

    #[test]
    fn this_process_is_found_holding_its_own_listening_socket() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let (found, unreadable) = listening();
        assert!(!unreadable);
        let mine = found
            .iter()
            .find(|l| l.port == port && l.address == IpAddr::from([127, 0, 0, 1]))
            .expect("our listener in /proc/self/net/tcp");
        let owners = owners(&[mine.inode], Duration::from_secs(5));
        let owner = &owners[&mine.inode];
        assert_eq!(owner.pid, std::process::id());
        assert!(!owner.name.is_empty());
        assert_eq!(socket_inode("socket:[77]"), Some(77));
        assert_eq!(socket_inode("pipe:[77]"), None);
    }
}
