//! A scripted HTTP(S) receiver on 127.0.0.1: records each request and answers
//! it as the test script says.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::TlsFixture;

#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// A request's body as JSON (the agent's bodies always are).
pub fn body_of(request: &Request) -> serde_json::Value {
    serde_json::from_slice(&request.body).expect("the body is JSON")
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// What the receiver does with the n-th request (0-based).
#[derive(Clone)]
pub enum Reply {
    Status(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Read the request, then say nothing until the test ends.
    Hang,
    /// Send half a status line, then reset the connection (RST, not FIN).
    ResetMidResponse,
    /// Bytes as they are, then close.
    Raw(Vec<u8>),
}

pub fn ok_json() -> Reply {
    Reply::Status(
        200,
        vec![("Content-Type", "application/json".into())],
        br#"{"status":"ok","server_id":7,"server_name":"Test Box","heartbeat_received":true,"timestamp":"2026-01-01T00:00:00Z"}"#.to_vec(),
    )
}

pub fn status(code: u16) -> Reply {
    Reply::Status(code, vec![], format!("status {code}").into_bytes())
}

/// The reply to the n-th request (0-based), which it may look at.
type Script = dyn Fn(usize, &Request) -> Reply + Send + Sync;

pub struct Receiver {
    pub addr: SocketAddr,
    scheme: &'static str,
    requests: Arc<Mutex<Vec<Request>>>,
    /// Connections whose client sent a byte: an agent elsewhere on the box
    /// timing every listening port (a connect, nothing sent, a close) is
    /// not one of the connections a test counts.
    connections: Arc<AtomicUsize>,
    resumed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// How the receiver treats a connection after its first request.
#[derive(Clone, Default)]
pub struct Serve {
    /// Keep the connection open for more requests (HTTP/1.1 keep-alive)
    /// instead of answering with `Connection: close`.
    pub keep_alive: bool,
    /// Announce `Keep-Alive: timeout=N`.
    pub announce: Option<u64>,
    /// Close a connection idle this long (asked anew before each wait).
    pub idle_close: Option<Arc<dyn Fn() -> Duration + Send + Sync>>,
    /// Called with each request and the status it gets (0: no status),
    /// before the reply goes out, so a printed line precedes the agent's.
    pub on_request: Option<Arc<OnRequest>>,
    /// Wait this long (asked anew for each request, by its index) before a
    /// status reply: a slow server.
    pub answer_after: Option<Arc<dyn Fn(usize) -> Duration + Send + Sync>>,
}

pub type OnRequest = dyn Fn(&Request, u16) + Send + Sync;

impl Receiver {
    pub fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        Receiver::on(bind(), None, script)
    }

    pub fn start_tls(
        tls: &TlsFixture,
        script: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        Receiver::on(bind(), Some(tls.server_config()), script)
    }

    pub fn on(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        script: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        Receiver::serving(listener, tls, Serve::default(), script)
    }

    pub fn serving(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        how: Serve,
        script: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        Receiver::answering(listener, tls, how, move |n, _| script(n))
    }

    /// A receiver whose replies depend on the request itself (a server
    /// that follows a contract: paths, methods, headers, bodies).
    pub fn answering(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        how: Serve,
        script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let resumed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        {
            let (requests, connections, resumed, stop) = (
                requests.clone(),
                connections.clone(),
                resumed.clone(),
                stop.clone(),
            );
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Shared {
                        connections: connections.clone(),
                        requests: requests.clone(),
                        resumed: resumed.clone(),
                        stop: stop.clone(),
                        script: script.clone(),
                        how: how.clone(),
                    };
                    let tls = tls.clone();
                    thread::spawn(move || serve(stream, tls, &shared));
                }
            });
        }
        Receiver {
            addr,
            scheme,
            requests,
            connections,
            resumed,
            stop,
        }
    }

    /// TLS connections whose handshake resumed an earlier session.
    pub fn resumed(&self) -> usize {
        self.resumed.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests have arrived; panics with what did arrive if not in time.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Request> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!("expected {n} requests within {within:?}, got {}", got.len());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

pub fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// A port on 127.0.0.1 that nothing listens on (until a test binds it).
pub fn free_port() -> u16 {
    bind().local_addr().unwrap().port()
}

trait Stream: Read + Write {
    /// For TLS, whether the handshake resumed a session (known once it is done).
    fn resumed(&self) -> bool {
        false
    }
}

impl Stream for TcpStream {}

impl Stream for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }
}

struct Shared {
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Request>>>,
    resumed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    script: Arc<Script>,
    how: Serve,
}

fn serve(tcp: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, shared: &Shared) {
    let raw_tcp = tcp.try_clone().unwrap();
    let _ = raw_tcp.set_read_timeout(Some(Duration::from_secs(30)));
    if !matches!(raw_tcp.peek(&mut [0u8; 1]), Ok(1)) {
        return;
    }
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let stream: Box<dyn Stream> = match tls {
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).unwrap();
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
        None => Box::new(tcp),
    };
    let mut reader = BufReader::new(stream);
    let mut first = true;
    loop {
        let idle = shared
            .how
            .idle_close
            .as_ref()
            .map_or(Duration::from_secs(30), |f| f());
        let _ = raw_tcp.set_read_timeout(Some(idle.max(Duration::from_millis(1))));
        let Some(request) = read_request(&mut reader) else {
            break;
        };
        if first && reader.get_ref().resumed() {
            shared.resumed.fetch_add(1, Ordering::SeqCst);
        }
        first = false;
        let index = {
            let mut all = shared.requests.lock().unwrap();
            all.push(request.clone());
            all.len() - 1
        };
        let reply = (shared.script)(index, &request);
        if let Some(hook) = &shared.how.on_request {
            let code = match &reply {
                Reply::Status(code, ..) => *code,
                _ => 0,
            };
            hook(&request, code);
        }
        let stream = reader.get_mut();
        if let (Some(after), Reply::Status(..)) = (&shared.how.answer_after, &reply) {
            thread::sleep(after(index));
        }
        match reply {
            Reply::Status(code, headers, body) => {
                let connection = if shared.how.keep_alive {
                    "keep-alive"
                } else {
                    "close"
                };
                let mut head = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: {connection}\r\n",
                    body.len()
                );
                if let Some(timeout) = shared.how.announce {
                    head.push_str(&format!("Keep-Alive: timeout={timeout}\r\n"));
                }
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                let _ = stream.flush();
                if shared.how.keep_alive {
                    continue;
                }
            }
            Reply::Hang => {
                while !shared.stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(50));
                }
            }
            Reply::ResetMidResponse => {
                let _ = stream.write_all(b"HTTP/1.1 20");
                let _ = stream.flush();
                // SO_LINGER 0 makes close() send RST.
                set_linger_zero(&raw_tcp);
                drop(reader);
                drop(raw_tcp);
                return;
            }
            Reply::Raw(bytes) => {
                let _ = stream.write_all(&bytes);
                let _ = stream.flush();
            }
        }
        break;
    }
    let _ = raw_tcp.shutdown(Shutdown::Both);
}

fn set_linger_zero(tcp: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized struct linger.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn read_request(reader: &mut BufReader<Box<dyn Stream>>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        at: Instant::now(),
        method,
        path,
        headers,
        body,
    })
}

/// Gaps between consecutive request times, in seconds.
pub fn gaps(requests: &[Request]) -> Vec<f64> {
    requests
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect()
}
