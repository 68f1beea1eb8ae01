//! The one polite question asked of a new port, on a kept thread: connect
//! over loopback, send `HEAD /` to a web port or nothing to a port whose
//! service speaks first, read at most [`MAX_ANSWER`] bytes for at most
//! [`WAIT`], close. A port that accepts and says nothing costs the wait
//! once, on that thread, never a beat.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::names::{self, Ask};

/// How long a probe may take in all.
pub const WAIT: Duration = Duration::from_secs(1);
/// The most of an answer read.
const MAX_ANSWER: usize = 1024;

const HEAD: &[u8] =
    b"HEAD / HTTP/1.0\r\nHost: localhost\r\nUser-Agent: stacksense-heartbeat\r\n\r\n";

/// The product `target` names when asked as `ask` says; None when it
/// names none, refuses, or says nothing in time.
pub fn probe(target: SocketAddr, ask: Ask) -> Option<String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&target, WAIT).ok()?;
    let left = || WAIT.checked_sub(started.elapsed()).filter(|d| !d.is_zero());
    stream.set_write_timeout(left()).ok()?;
    if ask == Ask::Http {
        stream.write_all(HEAD).ok()?;
    }
    let mut answer = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while answer.len() < MAX_ANSWER && !complete(ask, &answer) {
        stream.set_read_timeout(Some(left()?)).ok()?;
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_ANSWER - answer.len();
                answer.extend_from_slice(chunk.get(..n.min(room))?);
            }
        }
    }
    names::product(ask, &answer)
}

/// Enough of an answer: an HTTP header block, a greeting line, a MySQL
/// greeting packet (its length says where it ends; the version is early).
fn complete(ask: Ask, answer: &[u8]) -> bool {
    match ask {
        Ask::Http => answer.windows(4).any(|w| w == b"\r\n\r\n"),
        Ask::Greeting => answer.contains(&b'\n'),
        Ask::Mysql => answer.len() > 5 && answer.iter().skip(5).any(|&b| b == 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server on loopback answering its first connection with `reply`
    /// (after reading what it was sent, for HTTP), then holding it open.
    fn serve(reply: &'static [u8], read_first: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            if read_first {
                let mut buf = [0u8; 512];
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.read(&mut buf);
            }
            let _ = s.write_all(reply);
            std::thread::sleep(Duration::from_secs(3));
        });
        addr
    }

    #[test]
    fn a_web_server_names_itself_in_its_server_header() {
        let addr = serve(b"HTTP/1.1 200 OK\r\nServer: nginx/1.25\r\n\r\n", true);
        assert_eq!(probe(addr, Ask::Http).as_deref(), Some("nginx"));
    }

    #[test]
    fn a_greeting_is_read_without_waiting_for_the_connection_to_end() {
        let addr = serve(b"SSH-2.0-OpenSSH_9.6\r\n", false);
        let started = Instant::now();
        assert_eq!(probe(addr, Ask::Greeting).as_deref(), Some("OpenSSH"));
        assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
    }

    #[test]
    fn a_port_that_accepts_and_says_nothing_costs_the_wait_once() {
        let addr = serve(b"", false);
        let started = Instant::now();
        assert_eq!(probe(addr, Ask::Greeting), None);
        let took = started.elapsed();
        assert!(took >= WAIT - Duration::from_millis(50), "{took:?}");
        assert!(took < WAIT * 3, "{took:?}");
    }

    #[test]
    fn an_endless_answer_is_read_to_its_cap() {
        static BIG: [u8; 4096] = [b'x'; 4096];
        let addr = serve(&BIG, false);
        assert_eq!(probe(addr, Ask::Greeting), None);
    }
}
