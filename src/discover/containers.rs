//! The box's containers, as the Docker Engine API lists them over its
//! unix socket (Docker's, or Podman's Docker-compatible one): one
//! `GET /containers/json?all=1` per services push, on a kept thread, read
//! as it streams (only the fields the server keeps are held) within
//! [`LIMIT_BYTES`] and [`LIMIT_TIME`]. No program is started and no sudo
//! is needed: whoever may open the socket may do anything with the
//! containers, which is why the agent gets it only when asked
//! (docs/design.md, "Containers: the socket is root").

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Where the agent looks when nothing says where: Docker's socket (its
/// usual and its older path), then rootful Podman's.
pub const SOCKETS: [&str; 3] = [
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
];
/// The longest a listing may take: a dockerd that accepts and never
/// answers costs a kept thread this long, never a beat.
pub const LIMIT_TIME: Duration = Duration::from_secs(5);
/// The most of a listing read (500 containers with labels are about 1 MB).
pub const LIMIT_BYTES: u64 = 8 * 1024 * 1024;
/// The longest status or header line read.
const MAX_HEADER_LINE: u64 = 16 * 1024;
/// The most containers reported, whatever the box has.
pub const MAX_CONTAINERS: usize = 1000;

/// The `docker_host` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socket {
    /// The first of [`SOCKETS`] that exists.
    Auto,
    /// No containers push.
    Off,
    At(PathBuf),
}

impl Socket {
    /// `auto`, `off`, `unix:///path` (DOCKER_HOST's form) or `/path`.
    pub fn parse(text: &str) -> Result<Socket, String> {
        match text {
            "auto" => return Ok(Socket::Auto),
            "off" => return Ok(Socket::Off),
            _ => {}
        }
        let path = text.strip_prefix("unix://").unwrap_or(text);
        if path.starts_with('/') {
            return Ok(Socket::At(PathBuf::from(path)));
        }
        Err(
            "expected auto, off, unix:///PATH or an absolute socket path: the agent asks \
             Docker or Podman only over a unix socket on this box (off: no containers push)"
                .into(),
        )
    }

    /// The socket to ask: the one set, or the first that exists.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            Socket::Off => None,
            Socket::At(path) => Some(path.clone()),
            Socket::Auto => SOCKETS
                .iter()
                .map(PathBuf::from)
                .find(|p| std::fs::symlink_metadata(p).is_ok()),
        }
    }
}

impl std::fmt::Display for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Socket::Auto => f.write_str("auto"),
            Socket::Off => f.write_str("off"),
            Socket::At(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// One container, as the API lists it (the fields the server keeps).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Container {
    #[serde(rename = "Id", default)]
    pub id: String,
    #[serde(rename = "Names", default)]
    pub names: Vec<String>,
    #[serde(rename = "Image", default)]
    pub image: String,
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "Ports", default, deserialize_with = "ports_or_null")]
    pub ports: Vec<PortMap>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PortMap {
    #[serde(rename = "IP", default)]
    pub ip: Option<String>,
    #[serde(rename = "PrivatePort", default)]
    pub private: u16,
    #[serde(rename = "PublicPort", default)]
    pub public: Option<u16>,
    #[serde(rename = "Type", default)]
    pub kind: String,
}

/// Podman writes `"Ports": null` for a container that publishes none.
fn ports_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PortMap>, D::Error> {
    Ok(Option::<Vec<PortMap>>::deserialize(d)?.unwrap_or_default())
}

impl Container {
    /// Its name without Docker's leading slash.
    pub fn name(&self) -> &str {
        self.names
            .first()
            .map_or("", |n| n.strip_prefix('/').unwrap_or(n))
    }

    /// Its ports as `docker ps` writes them: `0.0.0.0:8080->80/tcp, 443/tcp`.
    pub fn ports_text(&self) -> String {
        let mut out: Vec<String> = Vec::with_capacity(self.ports.len());
        for p in &self.ports {
            let kind = if p.kind.is_empty() { "tcp" } else { &p.kind };
            let one = match (p.public, p.ip.as_deref()) {
                (Some(public), Some(ip)) if !ip.is_empty() => {
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    format!("{ip}:{public}->{}/{kind}", p.private)
                }
                (Some(public), _) => format!("{public}->{}/{kind}", p.private),
                (None, _) => format!("{}/{kind}", p.private),
            };
            if !out.contains(&one) {
                out.push(one);
            }
        }
        out.join(", ")
    }

    /// Its state in the API's words, from its status text when an old
    /// engine gave none.
    pub fn state(&self) -> String {
        if !self.state.is_empty() {
            return self.state.to_ascii_lowercase();
        }
        if self.status.starts_with("Up") {
            "running"
        } else {
            "exited"
        }
        .to_string()
    }
}

/// Which engine answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Podman,
}

impl Runtime {
    pub fn word(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }
}

/// A listing: every container, and whether there were more than
/// [`MAX_CONTAINERS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub runtime: Runtime,
    pub containers: Vec<Container>,
    pub cut: bool,
}

/// Why there is no listing, in words for a log line (outside text escaped).
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The socket is not there.
    Missing,
    /// We may not open it.
    Denied,
    Other(String),
}

/// Asks the engine at `socket` for its containers.
pub fn list(socket: &Path) -> Result<Listing, Failure> {
    let started = Instant::now();
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Failure::Missing,
        std::io::ErrorKind::PermissionDenied => Failure::Denied,
        _ => Failure::Other(crate::text::describe_io(&e)),
    })?;
    let io = |e: std::io::Error| Failure::Other(crate::text::describe_io(&e));
    stream.set_write_timeout(Some(LIMIT_TIME)).map_err(io)?;
    // HTTP/1.0: the engine answers with a plain body ended by the close,
    // never chunked.
    (&stream)
        .write_all(b"GET /containers/json?all=1 HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(io)?;
    let timed = Deadline {
        stream,
        until: started + LIMIT_TIME,
    };
    read_listing(BufReader::with_capacity(8192, timed.take(LIMIT_BYTES)))
}

/// The reply: status line, headers, then the JSON array.
pub fn read_listing(mut reader: impl BufRead) -> Result<Listing, Failure> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Failure::Other(format!(
            "no whole answer within {}",
            crate::clock::format_duration(LIMIT_TIME)
        )),
        _ => Failure::Other(crate::text::describe_io(&e)),
    };
    // The status line and each header within 16 KiB: an engine that sends
    // megabytes without a newline costs no more than that.
    let mut line = String::new();
    reader
        .by_ref()
        .take(MAX_HEADER_LINE)
        .read_line(&mut line)
        .map_err(io)?;
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        let what = if line.trim().is_empty() {
            "an empty answer".to_string()
        } else {
            format!("\"{}\"", crate::text::untrusted_max(line.trim(), 80))
        };
        return Err(Failure::Other(format!("the engine answered {what}")));
    }
    let mut runtime = Runtime::Docker;
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_HEADER_LINE)
            .read_line(&mut line)
            .map_err(io)?;
        if n == 0 || line.trim().is_empty() {
            break;
        }
        // Podman's compatible API says which it is in every reply.
        if line.to_ascii_lowercase().starts_with("libpod-api-version:") {
            runtime = Runtime::Podman;
        }
    }
    let mut containers: Vec<Container> = serde_json::from_reader(reader).map_err(|e| {
        if let Some(kind) = e.io_error_kind() {
            io(std::io::Error::from(kind))
        } else if e.is_eof() {
            Failure::Other(format!(
                "the listing ended early (cut at {} MiB, or the engine stopped)",
                LIMIT_BYTES / (1024 * 1024)
            ))
        } else {
            Failure::Other(format!(
                "the listing is not the Docker API's JSON ({})",
                crate::text::untrusted_max(&e.to_string(), 120)
            ))
        }
    })?;
    let cut = containers.len() > MAX_CONTAINERS;
    containers.truncate(MAX_CONTAINERS);
    containers.retain(|c| !c.name().is_empty());
    Ok(Listing {
        runtime,
        containers,
        cut,
    })
}

/// A socket read that gives up at `until`, however the bytes trickle.
struct Deadline {
    stream: UnixStream,
    until: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker 24's answer for two containers (recorded, trimmed of labels
    /// and mounts but not of their shape).
    pub const DOCKER: &str = "HTTP/1.0 200 OK\r\nApi-Version: 1.43\r\nContent-Type: \
        application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: \
        Docker/24.0.7 (linux)\r\n\r\n[{\"Id\":\"4f1c0e7d9a\",\"Names\":[\"/web\"],\"Image\":\
        \"nginx:1.25\",\"ImageID\":\"sha256:a\",\"Command\":\"/docker-entrypoint.sh nginx\",\
        \"Created\":1701950000,\"Ports\":[{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":\
        8080,\"Type\":\"tcp\"},{\"IP\":\"::\",\"PrivatePort\":80,\"PublicPort\":8080,\"Type\":\
        \"tcp\"},{\"PrivatePort\":443,\"Type\":\"tcp\"}],\"Labels\":{\"a\":\"b\"},\"State\":\
        \"running\",\"Status\":\"Up 3 hours\",\"HostConfig\":{\"NetworkMode\":\"default\"},\
        \"NetworkSettings\":{\"Networks\":{}},\"Mounts\":[]},{\"Id\":\"9e8d\",\"Names\":\
        [\"/batch\"],\"Image\":\"alpine\",\"Ports\":[],\"State\":\"exited\",\"Status\":\
        \"Exited (0) 2 minutes ago\"}]\n";

    /// Podman 4.3's compatible answer (Debian 12).
    const PODMAN: &str = "HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nLibpod-Api-Version: \
        4.3.1\r\nServer: Libpod/4.3.1 (linux)\r\n\r\n[{\"Id\":\"77aa\",\"Names\":[\"/db\"],\
        \"Image\":\"docker.io/library/postgres:16\",\"Ports\":null,\"State\":\"running\",\
        \"Status\":\"Up 5 seconds\"}]";

    #[test]
    fn a_docker_listing_gives_what_the_server_keeps() {
        let listing = read_listing(DOCKER.as_bytes()).unwrap();
        assert_eq!(listing.runtime, Runtime::Docker);
        let web = &listing.containers[0];
        assert_eq!(web.name(), "web");
        assert_eq!(web.image, "nginx:1.25");
        assert_eq!(web.state(), "running");
        assert_eq!(
            web.ports_text(),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 443/tcp"
        );
        assert_eq!(listing.containers[1].state(), "exited");
        assert_eq!(listing.containers[1].ports_text(), "");
    }

    #[test]
    fn podman_says_it_is_podman() {
        let listing = read_listing(PODMAN.as_bytes()).unwrap();
        assert_eq!(listing.runtime, Runtime::Podman);
        assert_eq!(listing.containers[0].name(), "db");
    }

    #[test]
    fn refusals_and_garbage_are_failures_with_the_answer_escaped() {
        let denied = "HTTP/1.0 403 Forbidden\x1b[31m\r\n\r\n{}";
        match read_listing(denied.as_bytes()) {
            Err(Failure::Other(why)) => {
                assert!(why.contains("403 Forbidden\\u{1b}[31m"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let garbage = "HTTP/1.0 200 OK\r\n\r\n{\"message\":\"x\"}";
        assert!(
            matches!(read_listing(garbage.as_bytes()), Err(Failure::Other(w)) if w.contains("not the Docker API"))
        );
        assert!(
            matches!(read_listing(&b""[..]), Err(Failure::Other(w)) if w.contains("empty answer"))
        );
    }

    #[test]
    fn an_endless_header_costs_a_bounded_line() {
        let endless = format!("HTTP/1.0 200 OK\r\nX: {}", "y".repeat(1 << 20));
        let started = std::time::Instant::now();
        assert!(read_listing(endless.as_bytes()).is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_box_with_more_containers_than_the_cap_gets_the_first_ones() {
        let one = "{\"Id\":\"i\",\"Names\":[\"/n\"],\"Image\":\"x\",\"State\":\"running\",\"Status\":\"Up\"}";
        let many = vec![one; MAX_CONTAINERS + 2].join(",");
        let text = format!("HTTP/1.0 200 OK\r\n\r\n[{many}]");
        let listing = read_listing(text.as_bytes()).unwrap();
        assert_eq!(listing.containers.len(), MAX_CONTAINERS);
        assert!(listing.cut);
    }

    #[test]
    fn the_setting_takes_docker_hosts_form_and_refuses_tcp() {
        assert_eq!(Socket::parse("auto"), Ok(Socket::Auto));
        assert_eq!(Socket::parse("off"), Ok(Socket::Off));
        assert_eq!(
            Socket::parse("unix:///run/user/1000/podman/podman.sock"),
            Ok(Socket::At("/run/user/1000/podman/podman.sock".into()))
        );
        assert_eq!(
            Socket::parse("/var/run/docker.sock").unwrap().to_string(),
            "unix:///var/run/docker.sock"
        );
        let tcp = Socket::parse("tcp://10.0.0.1:2375").unwrap_err();
        assert!(tcp.starts_with("expected auto, off, unix:///PATH"), "{tcp}");
    }
}
