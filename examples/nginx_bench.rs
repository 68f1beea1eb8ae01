//! What one beat costs the wire and the server: the agent against a real
//! nginx (one worker, loopback only) through a byte-counting relay.
//!
//!     cargo run --release --example nginx_bench -- --agent PATH --nginx PATH --certs DIR
//!         [--beats 100] [--interval 0.1]
//!
//! dist/bench-nginx installs nginx-light, makes an RSA-2048 CA and server
//! certificate with openssl, and runs this. For HTTP and HTTPS, against
//! three server behaviours:
//! - keep:  nginx defaults (keepalive_timeout 75 s, session tickets on);
//! - close: keepalive_timeout 0 (a new connection per request);
//! - cold:  close, and no session tickets or cache (no TLS resumption);
//!
//! it prints per beat: TCP connections, TLS handshakes resumed, TCP payload
//! bytes both ways, nginx worker CPU (/proc/PID/task/*/schedstat, ns), the
//! agent's CPU, and the agent's peak RSS; then the monthly traffic a box
//! beating every 30 s would send. Floor rows follow: the same beats from a
//! bare client (a socket; rustls over HTTPS), what a beat costs before any
//! of the agent's code.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{AgentCmd, ChildGuard, Relay, Running, TempDir, free_port};

struct Args {
    agent: PathBuf,
    nginx: PathBuf,
    certs: PathBuf,
    beats: usize,
    interval: f64,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let (mut agent, mut nginx, mut certs) = (None, None, None);
    let (mut beats, mut interval) = (100, 0.1);
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("agent") => agent = Some(PathBuf::from(parser.value()?)),
            Long("nginx") => nginx = Some(PathBuf::from(parser.value()?)),
            Long("certs") => certs = Some(PathBuf::from(parser.value()?)),
            Long("beats") => beats = parser.value()?.parse()?,
            Long("interval") => interval = parser.value()?.parse()?,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Args {
        agent: agent.ok_or("--agent PATH is required")?,
        nginx: nginx.ok_or("--nginx PATH is required")?,
        certs: certs.ok_or("--certs DIR is required")?,
        beats,
        interval,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Keep,
    Close,
    Cold,
}

impl Behaviour {
    fn name(self) -> &'static str {
        match self {
            Behaviour::Keep => "keep",
            Behaviour::Close => "close",
            Behaviour::Cold => "cold",
        }
    }
}

struct Nginx {
    _master: ChildGuard,
    worker: u32,
    dir: TempDir,
    http: u16,
    https: u16,
}

fn start_nginx(args: &Args, how: Behaviour) -> Nginx {
    let dir = TempDir::new();
    let (http, https) = (free_port(), free_port());
    let d = dir.path().display();
    let certs = args.certs.display();
    let keepalive = if how == Behaviour::Keep { "75s" } else { "0" };
    let tls_cache = if how == Behaviour::Cold {
        "ssl_session_tickets off; ssl_session_cache off;"
    } else {
        "" // nginx defaults: tickets on, cache "none"
    };
    let conf = format!(
        r#"worker_processes 1;
daemon off;
user root root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format beat '$connection $connection_requests $ssl_session_reused';
    access_log {d}/access.log beat;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    keepalive_timeout {keepalive};
    server {{
        listen 127.0.0.1:{http};
        listen 127.0.0.1:{https} ssl;
        ssl_certificate {certs}/server.pem;
        ssl_certificate_key {certs}/server.key;
        {tls_cache}
        location / {{
            default_type application/json;
            return 200 '{{"status":"ok","server_id":7,"server_name":"nginx","heartbeat_received":true}}';
        }}
    }}
}}
"#
    );
    let conf_path = dir.path().join("nginx.conf");
    fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(&args.nginx);
    cmd.args([
        "-c",
        conf_path.to_str().unwrap(),
        "-p",
        dir.path().to_str().unwrap(),
    ])
    .stdin(Stdio::null());
    let master = ChildGuard::spawn(&mut cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    let worker = loop {
        let children = fs::read_to_string(format!(
            "/proc/{}/task/{}/children",
            master.id(),
            master.id()
        ))
        .unwrap_or_default();
        if let Some(pid) = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(20));
    };
    Nginx {
        _master: master,
        worker,
        dir,
        http,
        https,
    }
}

/// CPU time of every thread of a process, in nanoseconds.
fn cpu_ns(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

struct Row {
    proto: &'static str,
    how: Behaviour,
    connections: f64,
    resumed: String,
    bytes: f64,
    nginx_ms: f64,
    agent_ms: f64,
    rss_kb: u64,
}

fn run(args: &Args, https: bool, how: Behaviour) -> Row {
    let nginx = start_nginx(args, how);
    let port = if https { nginx.https } else { nginx.http };
    let relay = Relay::start(format!("127.0.0.1:{port}").parse().unwrap());
    let scheme = if https { "https" } else { "http" };
    let mut cmd = AgentCmd::with_binary(&args.agent).args([
        "--server-id",
        "7",
        "--api-url",
        &relay.url(scheme),
        "--interval",
        &args.interval.to_string(),
        "--no-splay",
        "-q",
    ]);
    if https {
        cmd = cmd.args(["--ca-file"]).arg_path(&args.certs.join("ca.pem"));
    }
    let agent: Running = cmd.spawn();
    let log = nginx.dir.path().join("access.log");
    let beats_logged = |log: &Path| fs::read_to_string(log).map_or(0, |t| t.lines().count());
    // Warm up: the first beat pays for the first full handshake.
    wait(|| beats_logged(&log) >= 1);
    let (nginx0, agent0, bytes0, conns0) = (
        cpu_ns(nginx.worker),
        cpu_ns(agent.pid()),
        relay.bytes(),
        relay.connections(),
    );
    let skip = beats_logged(&log);
    wait(|| beats_logged(&log) >= skip + args.beats);
    let (nginx1, agent1, bytes1, conns1) = (
        cpu_ns(nginx.worker),
        cpu_ns(agent.pid()),
        relay.bytes(),
        relay.connections(),
    );
    let resumed = tls_resumed(&log, skip, args.beats);
    let n = args.beats as f64;
    Row {
        proto: scheme,
        how,
        connections: (conns1 - conns0) as f64 / n,
        resumed: if https { resumed } else { "-".into() },
        bytes: (bytes1 - bytes0) as f64 / n,
        nginx_ms: (nginx1 - nginx0) as f64 / n / 1e6,
        agent_ms: (agent1 - agent0) as f64 / n / 1e6,
        rss_kb: agent.proc_status("VmHWM"),
    }
}

/// The floor under each row: a bare client thread that sends the same
/// request (one write) at the same cadence and reads the reply, nothing
/// else: no HTTP library, timer wheel, logging or config. Over HTTPS it is
/// rustls with ring, as in the agent, with one `ClientConfig` for the run
/// (so sessions resume). On loopback the kernel does both ends' TCP work
/// in the sender's context, so this is what a beat costs the client, and
/// the nginx figure what the same beat costs nginx, before any of our code.
/// It goes through the same counting relay as the agent, so the rows
/// compare like for like. Returns (client ms, nginx ms, bytes) per beat
/// and the TLS resumptions.
fn floor_ms(args: &Args, https: bool, how: Behaviour) -> (f64, f64, f64, String) {
    let nginx = start_nginx(args, how);
    let target = if https { nginx.https } else { nginx.http };
    let relay = Relay::start(format!("127.0.0.1:{target}").parse().unwrap());
    let port = relay.addr.port();
    let (beats, interval) = (args.beats, args.interval);
    let worker = nginx.worker;
    let tls = https.then(|| tls_client_config(&args.certs.join("ca.pem")));
    let handle = thread::spawn(move || {
        let body = r#"{"agent_version":"0.1.0"}"#;
        let request = format!(
            "POST /api/heartbeat/7/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: floor\r\n\
             Accept: application/json\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let self_ns = || {
            fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut kept: Option<Box<dyn ReadWrite>> = None;
        let mut beat = || {
            let mut conn = match kept.take() {
                Some(conn) => conn,
                None => connect(port, tls.as_ref()),
            };
            conn.write_all(request.as_bytes()).unwrap();
            conn.flush().unwrap();
            read_reply(&mut conn);
            if how == Behaviour::Keep {
                kept = Some(conn);
            }
        };
        beat();
        let (start, nginx_start) = (self_ns(), cpu_ns(worker));
        for _ in 0..beats {
            thread::sleep(Duration::from_secs_f64(interval));
            beat();
        }
        let per_beat = |ns: u64| ns as f64 / beats as f64 / 1e6;
        (
            per_beat(self_ns() - start),
            per_beat(cpu_ns(worker) - nginx_start),
        )
    });
    let (client, server) = handle.join().unwrap();
    // Bytes of the whole run, the warm-up beat included (a full handshake
    // on the first connection: about +5 B per beat over 200 beats).
    let bytes = relay.bytes() as f64 / (beats + 1) as f64;
    let resumed = if https {
        tls_resumed(&nginx.dir.path().join("access.log"), 1, beats)
    } else {
        "-".into()
    };
    (client, server, bytes, resumed)
}

trait ReadWrite: std::io::Read + std::io::Write + Send {}
impl<T: std::io::Read + std::io::Write + Send> ReadWrite for T {}

fn connect(port: u16, tls: Option<&Arc<rustls::ClientConfig>>) -> Box<dyn ReadWrite> {
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_nodelay(true).unwrap();
    match tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
    }
}

/// Reads one reply: the head, then Content-Length bytes of body.
fn read_reply(conn: &mut Box<dyn ReadWrite>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "nginx closed before replying");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= head_end + 4 + length {
                return;
            }
        }
    }
}

fn tls_client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// "R of H": of the TLS handshakes among `beats` requests logged after
/// the first `skip`, how many resumed a session. The log has one line per
/// request, "connection requests-on-it reused"; a handshake is the first
/// request on a connection.
fn tls_resumed(log: &Path, skip: usize, beats: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let handshakes: Vec<&str> = text
        .lines()
        .skip(skip)
        .take(beats)
        .filter(|l| l.split(' ').nth(1) == Some("1"))
        .collect();
    let resumed = handshakes.iter().filter(|l| l.ends_with(" r")).count();
    format!("{resumed} of {}", handshakes.len())
}

fn wait(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "benchmark stalled");
        thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("nginx_bench: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "{} beats per row at {} s, agent {}",
        args.beats,
        args.interval,
        args.agent.display()
    );
    println!(
        "\n{:<6} {:<6} {:>10} {:>12} {:>12} {:>12} {:>12} {:>9} {:>14}",
        "proto",
        "server",
        "conns/beat",
        "TLS resumed",
        "bytes/beat",
        "nginx CPU",
        "agent CPU",
        "peak RSS",
        "MB/month @30s"
    );
    for (https, how) in [
        (false, Behaviour::Keep),
        (false, Behaviour::Close),
        (true, Behaviour::Keep),
        (true, Behaviour::Close),
        (true, Behaviour::Cold),
    ] {
        let r = run(&args, https, how);
        // 86,400 s a day / 30 s * 30 days = 86,400 beats a month.
        let monthly_mb = r.bytes * 86_400.0 / 1e6;
        println!(
            "{:<6} {:<6} {:>10.2} {:>12} {:>12.0} {:>9.3} ms {:>9.3} ms {:>6} kB {:>14.1}",
            r.proto,
            r.how.name(),
            r.connections,
            r.resumed,
            r.bytes,
            r.nginx_ms,
            r.agent_ms,
            r.rss_kb,
            monthly_mb
        );
    }
    for (https, how) in [
        (false, Behaviour::Keep),
        (true, Behaviour::Keep),
        (true, Behaviour::Close),
    ] {
        let (client, server, bytes, resumed) = floor_ms(&args, https, how);
        println!(
            "{:<6} {:<6} {:>10} {:>12} {:>12.0} {:>9.3} ms {:>9.3} ms   (floor: a bare {} client, same request, {})",
            if https { "https" } else { "http" },
            "floor",
            "",
            resumed,
            bytes,
            server,
            client,
            if https { "rustls" } else { "socket" },
            how.name()
        );
    }
    println!(
        "\nbytes: TCP payload both ways (no TCP/IP headers; add ~40-60 B per packet on the wire)."
    );
}
