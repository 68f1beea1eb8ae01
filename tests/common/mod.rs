//! Test harness: a scripted HTTP(S) receiver on 127.0.0.1 and the real
//! agent binary as a child process. The examples (demo, benchmarks) use it
//! too, through `#[path]`.
#![allow(dead_code, unused_imports)] // each test binary and example uses a different part of it

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test; cargo names it for integration tests only, and
/// examples pass theirs to [`AgentCmd::with_binary`].
pub const BIN: Option<&str> = option_env!("CARGO_BIN_EXE_stacksense-heartbeat");

// ---------------------------------------------------------------- receiver

#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
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

type Script = dyn Fn(usize) -> Reply + Send + Sync;

pub struct Receiver {
    pub addr: SocketAddr,
    scheme: &'static str,
    requests: Arc<Mutex<Vec<Request>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

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
        let addr = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        {
            let (requests, connections, stop) =
                (requests.clone(), connections.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (requests, stop, script, tls) =
                        (requests.clone(), stop.clone(), script.clone(), tls.clone());
                    thread::spawn(move || serve(stream, tls, &requests, &stop, &*script));
                }
            });
        }
        Receiver {
            addr,
            scheme,
            requests,
            connections,
            stop,
        }
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

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn serve(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
    script: &Script,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    let raw_tcp = tcp.try_clone().unwrap();
    let mut stream: Box<dyn Stream> = match tls {
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).unwrap();
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
        None => Box::new(tcp),
    };
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let index = {
        let mut all = requests.lock().unwrap();
        all.push(request);
        all.len() - 1
    };
    match script(index) {
        Reply::Status(code, headers, body) => {
            let mut head = format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
        Reply::Hang => {
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
            }
        }
        Reply::ResetMidResponse => {
            let _ = stream.write_all(b"HTTP/1.1 20");
            let _ = stream.flush();
            // SO_LINGER 0 makes close() send RST.
            set_linger_zero(&raw_tcp);
            drop(stream);
            drop(raw_tcp);
            return;
        }
        Reply::Raw(bytes) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
        }
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

fn read_request(stream: &mut dyn Stream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
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

// ---------------------------------------------------------------- TLS

/// A CA made for this test run and a server certificate for 127.0.0.1 signed by it.
pub struct TlsFixture {
    pub ca_pem: String,
    cert: rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TlsFixture {
    pub fn new() -> TlsFixture {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stacksense test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        TlsFixture {
            ca_pem: ca.pem(),
            cert: leaf.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::try_from(self.key_der.clone()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)
            .unwrap();
        Arc::new(config)
    }
}

// ---------------------------------------------------------------- temp dirs

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("stacksense-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------- the agent

/// The agent binary with a clean environment: HOME is an empty temp dir
/// (no user config), no proxy variables, nothing of the developer's.
pub struct AgentCmd {
    cmd: Command,
    pub home: TempDir,
    echo: bool,
}

impl AgentCmd {
    pub fn new() -> AgentCmd {
        AgentCmd::with_binary(Path::new(
            BIN.expect("only integration tests know the binary"),
        ))
    }

    pub fn with_binary(binary: &Path) -> AgentCmd {
        AgentCmd::via(&[], binary)
    }

    /// The binary run through `runner` (e.g. `qemu-arm-static -cpu arm1176`), if any.
    pub fn via(runner: &[String], binary: &Path) -> AgentCmd {
        let home = TempDir::new();
        let mut cmd = match runner.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        cmd.env_clear().env("HOME", home.path());
        AgentCmd {
            cmd,
            home,
            echo: false,
        }
    }

    /// Also copy the agent's log lines to our stderr as they come.
    pub fn echo_log(mut self) -> AgentCmd {
        self.echo = true;
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(
        mut self,
        args: I,
    ) -> AgentCmd {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> AgentCmd {
        self.cmd.env(key, value);
        self
    }

    /// Runs to completion (for --check, --once and start-up errors).
    pub fn output(mut self) -> Output {
        let out = self.cmd.stdin(Stdio::null()).output().unwrap();
        Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn spawn(mut self) -> Running {
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let echo = self.echo;
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("agent:    {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        Running {
            child,
            lines,
            _home: self.home,
        }
    }
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

pub struct Running {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _home: TempDir,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`; panics with the log if none comes.
    pub fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "no log line with {needle:?} within {within:?}; log:\n{}",
                    self.log().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn signal(&self, signal: i32) {
        send_signal(self.child.id(), signal);
    }

    /// Waits for the process to exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// A field of /proc/PID/status, in its unit (kB for memory).
    pub fn proc_status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use libc::{SIGCONT, SIGHUP, SIGINT, SIGSTOP, SIGTERM};

pub fn send_signal(pid: u32, signal: i32) {
    // SAFETY: plain kill(2) on a child of ours.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Gaps between consecutive request times, in seconds.
pub fn gaps(requests: &[Request]) -> Vec<f64> {
    requests
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect()
}

/// For the examples: builds the agent with the cargo that runs them and
/// returns its path (debug or release).
pub fn build_agent(release: bool) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--bin", "stacksense-heartbeat"]);
    if release {
        cmd.arg("--release");
    }
    let ok = cmd
        .current_dir(&manifest_dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "building the agent failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or(manifest_dir.join("target"), PathBuf::from);
    target
        .join(if release { "release" } else { "debug" })
        .join("stacksense-heartbeat")
}
