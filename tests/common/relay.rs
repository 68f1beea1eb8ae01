//! A TCP relay on 127.0.0.1 in front of a receiver: counts connections and
//! bytes both ways, and can silently blackhole the connections it already
//! has (forward nothing more, close nothing, and drop what arrives before
//! TCP sees it, so nothing is acknowledged), as a NAT or firewall that
//! forgot an idle connection does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub struct Relay {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    bytes: Arc<AtomicU64>,
    /// Of `bytes`, those from the client to the server.
    upstream: Arc<AtomicU64>,
    /// One flag per connection so far: set, it forwards nothing more;
    /// with the agent's side of it, to drop its packets.
    blackholes: Arc<Mutex<Vec<Hole>>>,
}

/// A connection's "forward nothing" flag and the agent's side of it.
type Hole = (Arc<AtomicBool>, TcpStream);

impl Relay {
    /// Relays to `target` (which must be on loopback).
    pub fn start(target: SocketAddr) -> Relay {
        assert!(
            target.ip().is_loopback(),
            "the relay only forwards to loopback"
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let upstream = Arc::new(AtomicU64::new(0));
        let blackholes = Arc::new(Mutex::new(Vec::new()));
        {
            let (connections, bytes, up, blackholes) = (
                connections.clone(),
                bytes.clone(),
                upstream.clone(),
                blackholes.clone(),
            );
            thread::spawn(move || {
                for client in listener.incoming().flatten() {
                    let (connections, bytes, up, blackholes) = (
                        connections.clone(),
                        bytes.clone(),
                        up.clone(),
                        blackholes.clone(),
                    );
                    thread::spawn(move || {
                        // A client that sends nothing (an agent elsewhere on
                        // the box timing every listening port) is not relayed
                        // nor counted.
                        let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
                        if !matches!(client.peek(&mut [0u8; 1]), Ok(1)) {
                            return;
                        }
                        let _ = client.set_read_timeout(None);
                        let Ok(server) = TcpStream::connect(target) else {
                            return;
                        };
                        connections.fetch_add(1, Ordering::SeqCst);
                        let hole = Arc::new(AtomicBool::new(false));
                        blackholes
                            .lock()
                            .unwrap()
                            .push((hole.clone(), client.try_clone().unwrap()));
                        pump(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            &[&bytes, &up],
                            &hole,
                        );
                        pump(server, client, &[&bytes], &hole);
                    });
                }
            });
        }
        Relay {
            addr,
            connections,
            bytes,
            upstream,
            blackholes,
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// TCP payload bytes relayed, both directions together.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// TCP payload bytes from the client to the server.
    #[allow(dead_code)]
    pub fn upstream_bytes(&self) -> u64 {
        self.upstream.load(Ordering::SeqCst)
    }

    /// Every connection open now stops forwarding, silently; new ones work.
    pub fn blackhole_existing(&self) {
        for (hole, client) in self.blackholes.lock().unwrap().iter() {
            hole.store(true, Ordering::SeqCst);
            drop_everything_arriving(client);
        }
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    counters: &[&Arc<AtomicU64>],
    hole: &Arc<AtomicBool>,
) {
    let counters: Vec<Arc<AtomicU64>> = counters.iter().map(|c| Arc::clone(c)).collect();
    let hole = hole.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if hole.load(Ordering::SeqCst) {
                continue; // swallowed: no data, no FIN, no RST
            }
            for counter in &counters {
                counter.fetch_add(n as u64, Ordering::SeqCst);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        if !hole.load(Ordering::SeqCst) {
            let _ = to.shutdown(std::net::Shutdown::Write);
        }
    });
}

/// Attaches a socket filter that drops every packet arriving on `socket`
/// before TCP processes it: the agent's bytes are never acknowledged, as
/// when a NAT on the way has forgotten the connection (a userspace relay
/// that only stops forwarding still acknowledges everything).
fn drop_everything_arriving(socket: &TcpStream) {
    use std::os::fd::AsRawFd;
    // One classic BPF instruction: return 0 (keep 0 bytes: drop).
    let mut program = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let fprog = libc::sock_fprog {
        len: 1,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: the socket is open, and the kernel copies the program.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    assert_eq!(
        done,
        0,
        "SO_ATTACH_FILTER: {}",
        std::io::Error::last_os_error()
    );
}
