//! What the dashboard's pushes cost, side by side in one run: the agent with
//! heartbeats only, `--report metrics`, `--report metrics,services` with
//! three checks (and the box's services found), and a Python + psutil
//! pusher (dist/psutil-pusher.py) doing the same pushes. Prints one table.
//!
//!     cargo run --release --example push_bench -- --agent PATH
//!         [--pushes 300] [--interval 0.25] [--python PYTHON-WITH-PSUTIL] [--keep-alive]
//!         [--processes N] [--discovery [--units 60] [--ports 20] [--containers 10]]
//!
//! --discovery (root; dist/bench-services) measures the services and
//! containers pushes instead, on a box made to have 60 running services
//! (real cgroups under the unified hierarchy, each with a sleeping
//! process, and /run/systemd/system in a private mount namespace), 20
//! listening ports (accepted and closed at once) and 10 containers (a
//! Docker engine on a unix socket answering a recorded listing): the agent
//! with metrics, then with metrics, services and containers, and the Python
//! pusher doing all three (it reads the units with `systemctl`, a shell
//! stand-in printing the same 60 when systemd does not run the box).
//!
//! Every row pushes at every beat (metrics_interval = interval; at 0.25 s
//! the services push finds the 100 ms an attempt needs after the metrics
//! push, as it always does at 30 s) to the
//! StackSense test server over HTTPS (TLS 1.3) through a byte-counting
//! relay, all on 127.0.0.1. The server closes each connection after its
//! reply, as the StackSense server under gunicorn's sync workers does, so
//! every request is a resumed TLS handshake; --keep-alive keeps them open,
//! as an nginx in front of it would. Per push: peak RSS (VmHWM), CPU
//! of the process and its children (/proc/PID/stat utime, stime, cutime
//! and cstime, 10 ms ticks over all pushes, ended threads included), request
//! and response bytes (TCP payload), and what that makes a month at one
//! beat every 30 s: with a push at every beat, and with the default
//! metrics_interval of 300 s (nine plain heartbeats between pushes).
//! dist/bench-pushes runs it on the x86_64 musl build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::stacksense::TOKEN;
use common::{
    AgentCmd, ChildGuard, Receiver, Relay, Serve, StackSense, TempDir, TlsFixture, status,
};

struct Args {
    agent: PathBuf,
    pushes: usize,
    interval: f64,
    python: Option<PathBuf>,
    keep_alive: bool,
    /// Sleeping processes added until the box has at least this many.
    processes: usize,
    discovery: bool,
    /// What --discovery makes the box have.
    shape: discovery::Shape,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        agent: PathBuf::new(),
        pushes: 300,
        interval: 0.25,
        python: None,
        keep_alive: false,
        processes: 0,
        discovery: false,
        shape: discovery::Shape::default(),
    };
    let mut agent = None;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("agent") => agent = Some(PathBuf::from(parser.value()?)),
            Long("pushes") => args.pushes = parser.value()?.parse()?,
            Long("interval") => args.interval = parser.value()?.parse()?,
            Long("python") => args.python = Some(parser.value()?.into()),
            Long("keep-alive") => args.keep_alive = true,
            Long("processes") => args.processes = parser.value()?.parse()?,
            Long("discovery") => args.discovery = true,
            Long("units") => args.shape.units = parser.value()?.parse()?,
            Long("ports") => args.shape.ports = parser.value()?.parse()?,
            Long("containers") => args.shape.containers = parser.value()?.parse()?,
            _ => return Err(arg.unexpected()),
        }
    }
    args.agent = agent.ok_or("--agent PATH is required")?;
    Ok(args)
}

/// One row's figures, per push.
struct Row {
    name: String,
    peak_kb: u64,
    cpu_ms: f64,
    up: f64,
    down: f64,
    requests: f64,
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("push_bench: {e}");
            std::process::exit(2);
        }
    };
    // Before any thread: a private mount namespace cannot be made after.
    let discovered = args.discovery.then(|| discovery::Box::make(args.shape));
    let _sleepers = fill_to(args.processes);
    let tls = TlsFixture::new();
    let dir = TempDir::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    let service = Receiver::start(|_| status(200));
    let checks = [
        ("tcp", service.addr.to_string()),
        ("http", format!("{}/health", service.url())),
        ("disk", "/".to_string()),
    ];
    let agent_checks: Vec<String> = checks
        .iter()
        .flat_map(|(kind, what)| {
            let check = match *kind {
                "disk" => format!("disk {what} 100%"),
                _ => format!("{kind} {what}"),
            };
            ["--health".to_string(), check]
        })
        .collect();
    let mut rows = Vec::new();
    let mut runs: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "agent, heartbeat only (--report off)",
            vec!["--report".into(), "off".into()],
            "/api/agent/heartbeat/",
        ),
        (
            "agent, --report metrics",
            vec!["--report".into(), "metrics".into()],
            "/api/agent/metrics/",
        ),
        (
            "agent, --report metrics,services + 3 checks",
            [
                vec!["--report".into(), "metrics,services".into()],
                agent_checks,
            ]
            .concat(),
            "/api/agent/metrics/",
        ),
    ];
    // Like the agent's services push, the Python pusher's finds the box's
    // services too (no engine here: no containers push).
    let mut python_checks: Vec<(String, String)> = checks
        .iter()
        .map(|(k, w)| (k.to_string(), w.clone()))
        .chain([("discover".to_string(), "-".to_string())])
        .collect();
    let mut python_path = std::env::var("PATH").unwrap_or_default();
    let mut python_name = "python 3 + psutil, metrics + services + 3 checks";
    if let Some(b) = &discovered {
        // No containers: no engine, as on a box without Docker.
        let engine = match b.containers {
            0 => "off".to_string(),
            _ => format!("unix://{}", b.engine.display()),
        };
        runs = vec![
            (
                "agent, --report metrics",
                vec![
                    "--report".into(),
                    "metrics".into(),
                    "--docker-host".into(),
                    engine.clone(),
                ],
                "/api/agent/metrics/",
            ),
            (
                "agent, metrics + services + containers",
                vec![
                    "--report".into(),
                    "metrics,services,containers".into(),
                    "--docker-host".into(),
                    engine,
                ],
                "/api/agent/metrics/",
            ),
        ];
        let python_engine = match b.containers {
            0 => "-".to_string(),
            _ => b.engine.display().to_string(),
        };
        python_checks = vec![("discover".into(), python_engine)];
        python_path = format!("{}:{python_path}", b.bin.display());
        python_name = "python 3 + psutil, metrics + services + containers";
    }
    for (name, extra, counted) in runs {
        let server = serve(&args, &tls);
        let relay = Relay::start(server.rx.addr);
        let interval = args.interval.to_string();
        let agent = AgentCmd::with_binary(&args.agent)
            .env("STACKSENSE_URL", relay.url("https"))
            .env("STACKSENSE_TOKEN", TOKEN)
            .args(["--interval", &interval, "--metrics-interval", &interval])
            .args(["--services-interval", &interval])
            .args(["--no-splay", "--ca-file"])
            .arg_path(&ca)
            .args(&extra)
            .spawn();
        rows.push(measure(&args, name, agent.pid(), &server, &relay, counted));
    }
    if let Some(python) = &args.python {
        let server = serve(&args, &tls);
        let relay = Relay::start(server.rx.addr);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/psutil-pusher.py");
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .arg(relay.url("https"))
            .arg(TOKEN)
            .arg(&ca)
            .arg(args.interval.to_string());
        for (kind, what) in &python_checks {
            cmd.arg(kind).arg(what);
        }
        cmd.env("PATH", &python_path);
        let child = ChildGuard::spawn(&mut cmd);
        let name = python_name;
        rows.push(measure(
            &args,
            name,
            child.id(),
            &server,
            &relay,
            "/api/agent/metrics/",
        ));
    }
    print_table(&args, &rows);
    if let Some(b) = &discovered {
        println!(
            "the box: {} running services (in cgroups), {} listening TCP ports, {} containers",
            b.units, b.ports, b.containers
        );
    }
    drop(discovered);
}

/// What a box with services, ports and containers is made of, undone on drop.
mod discovery {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::{ChildGuard, TempDir};

    #[derive(Debug, Clone, Copy)]
    pub struct Shape {
        pub units: usize,
        pub ports: usize,
        pub containers: usize,
    }

    impl Default for Shape {
        fn default() -> Shape {
            Shape {
                units: 60,
                ports: 20,
                containers: 10,
            }
        }
    }

    pub struct Box {
        pub engine: PathBuf,
        /// A directory with the `systemctl` stand-in, when one is needed.
        pub bin: PathBuf,
        pub units: usize,
        pub ports: usize,
        pub containers: usize,
        cgroups: Vec<PathBuf>,
        _sleepers: Vec<ChildGuard>,
        stop: Arc<AtomicBool>,
        _dir: TempDir,
    }

    fn die(what: &str) -> ! {
        eprintln!("push_bench --discovery: {what}");
        std::process::exit(2);
    }

    impl Box {
        pub fn make(shape: Shape) -> Box {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                die("needs root (cgroups and a mount namespace)");
            }
            let dir = TempDir::new();
            let bin = dir.path().join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let booted = Path::new("/run/systemd/system").is_dir();
            if !booted {
                private_run();
            }
            let top = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                PathBuf::from("/sys/fs/cgroup")
            } else {
                PathBuf::from("/sys/fs/cgroup/unified")
            };
            let slice = top.join("system.slice");
            let mut cgroups = Vec::new();
            if !slice.exists() {
                std::fs::create_dir(&slice)
                    .unwrap_or_else(|e| die(&format!("{}: {e}", slice.display())));
                cgroups.push(slice.clone());
            }
            clear_leftovers(&slice);
            let mut sleepers = Vec::new();
            let mut stand_in = String::from("#!/bin/sh\n");
            for i in 0..shape.units {
                let unit = slice.join(format!("ssbench-{i}.service"));
                std::fs::create_dir(&unit)
                    .unwrap_or_else(|e| die(&format!("{}: {e}", unit.display())));
                let sleeper = ChildGuard::spawn(Command::new("sleep").arg("3600"));
                std::fs::write(unit.join("cgroup.procs"), sleeper.id().to_string())
                    .unwrap_or_else(|e| die(&format!("{}: {e}", unit.display())));
                stand_in.push_str(&format!(
                    "echo 'ssbench-{i}.service loaded active running bench unit {i}'\n"
                ));
                sleepers.push(sleeper);
                cgroups.push(unit);
            }
            if !booted {
                let systemctl = bin.join("systemctl");
                std::fs::write(&systemctl, stand_in).unwrap();
                std::fs::set_permissions(
                    &systemctl,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .unwrap();
            }
            let stop = Arc::new(AtomicBool::new(false));
            listen_on_ports(shape.ports, stop.clone());
            let engine = dir.path().join("docker.sock");
            serve_engine(&engine, shape.containers, stop.clone());
            let ports = std::fs::read_to_string("/proc/net/tcp")
                .unwrap_or_default()
                .lines()
                .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
                .count();
            Box {
                engine,
                bin,
                units: shape.units,
                ports,
                containers: shape.containers,
                cgroups,
                _sleepers: sleepers,
                stop,
                _dir: dir,
            }
        }
    }

    impl Drop for Box {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            self._sleepers.clear();
            std::thread::sleep(Duration::from_millis(200));
            for cgroup in self.cgroups.iter().rev() {
                let _ = std::fs::remove_dir(cgroup);
            }
        }
    }

    /// A run stopped before its end leaves its units: their processes are
    /// killed and the cgroups removed.
    fn clear_leftovers(slice: &Path) {
        let Ok(entries) = std::fs::read_dir(slice) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with("ssbench-") {
                continue;
            }
            let procs =
                std::fs::read_to_string(entry.path().join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                // SAFETY: kill(2) of a sleep a previous run started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(100));
            let _ = std::fs::remove_dir(entry.path());
        }
    }

    /// /run in a mount namespace of our own, with /run/systemd/system in it:
    /// the agents take the box for one systemd runs (nothing else changes).
    fn private_run() {
        // SAFETY: plain system calls on constant, NUL-ended arguments.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                die(&format!("unshare: {}", std::io::Error::last_os_error()));
            }
            let none = c"none".as_ptr();
            if libc::mount(
                none,
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
                || libc::mount(
                    none,
                    c"/run".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ) != 0
            {
                die(&format!("mount: {}", std::io::Error::last_os_error()));
            }
        }
        std::fs::create_dir_all("/run/systemd/system").unwrap();
    }

    /// `n` listening ports that accept and close at once.
    fn listen_on_ports(n: usize, stop: Arc<AtomicBool>) {
        let listeners: Vec<std::net::TcpListener> = (0..n)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.set_nonblocking(true).unwrap();
                l
            })
            .collect();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for l in &listeners {
                    while let Ok((conn, _)) = l.accept() {
                        drop(conn);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    }

    /// A Docker engine answering every request with the same listing.
    fn serve_engine(path: &Path, containers: usize, stop: Arc<AtomicBool>) {
        let one = |i: usize| {
            format!(
                r#"{{"Id":"{i:064x}","Names":["/app-{i}"],"Image":"registry.example/shop/app-{i}:1.{i}","ImageID":"sha256:{i:064x}","Command":"/entrypoint.sh serve","Created":1765000000,"Ports":[{{"IP":"0.0.0.0","PrivatePort":8080,"PublicPort":{},"Type":"tcp"}},{{"PrivatePort":9090,"Type":"tcp"}}],"Labels":{{"com.docker.compose.project":"shop","com.docker.compose.service":"app-{i}","com.docker.compose.version":"2.24.5","org.opencontainers.image.source":"https://example/shop"}},"State":"{}","Status":"{}","HostConfig":{{"NetworkMode":"shop_default"}},"NetworkSettings":{{"Networks":{{"shop_default":{{"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"{i:064x}","EndpointID":"{i:064x}","Gateway":"172.18.0.1","IPAddress":"172.18.0.{}","IPPrefixLen":16,"MacAddress":"02:42:ac:12:00:{i:02x}"}}}}}},"Mounts":[{{"Type":"volume","Name":"data-{i}","Source":"/var/lib/docker/volumes/data-{i}/_data","Destination":"/data","Driver":"local","Mode":"z","RW":true,"Propagation":""}}]}}"#,
                18000 + i,
                if i % 5 == 4 { "exited" } else { "running" },
                if i % 5 == 4 {
                    "Exited (0) 3 hours ago"
                } else {
                    "Up 2 days"
                },
                2 + i
            )
        };
        let body = format!(
            "[{}]",
            (0..containers).map(one).collect::<Vec<_>>().join(",")
        );
        let reply = format!(
            "HTTP/1.1 200 OK\r\nApi-Version: 1.43\r\nContent-Type: application/json\r\n\
             Server: Docker/24.0.7 (linux)\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = conn.write_all(reply.as_bytes());
            }
        });
    }
}

/// The processes in /proc now.
fn process_count() -> usize {
    std::fs::read_dir("/proc").map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .count()
    })
}

/// Sleeping children until the box has `n` processes: what ranking top
/// processes costs grows with them (budgets are for a box with 300+).
fn fill_to(n: usize) -> Vec<ChildGuard> {
    let missing = n.saturating_sub(process_count());
    (0..missing)
        .map(|_| ChildGuard::spawn(Command::new("sleep").arg("3600")))
        .collect()
}

fn serve(args: &Args, tls: &TlsFixture) -> StackSense {
    let how = Serve {
        keep_alive: args.keep_alive,
        ..Serve::default()
    };
    StackSense::on(Some(tls.server_config()), how)
}

fn measure(
    args: &Args,
    name: &str,
    pid: u32,
    server: &StackSense,
    relay: &Relay,
    counted: &str,
) -> Row {
    let pushes = |server: &StackSense| {
        server
            .rx
            .requests()
            .iter()
            .filter(|r| r.path == counted)
            .count()
    };
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now()
            + Duration::from_secs_f64(n as f64 * args.interval * 2.0 + 20.0);
        while pushes(server) < n {
            assert!(std::time::Instant::now() < deadline, "{name}: stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(10);
    let (n0, cpu0, up0, all0, req0) = (
        pushes(server),
        cpu_with_children_ns(pid),
        relay.upstream_bytes(),
        relay.bytes(),
        server.rx.requests().len(),
    );
    wait_for(n0 + args.pushes);
    let (n1, cpu1, up1, all1, req1) = (
        pushes(server),
        cpu_with_children_ns(pid),
        relay.upstream_bytes(),
        relay.bytes(),
        server.rx.requests().len(),
    );
    let peak_kb = proc_status(pid, "VmHWM");
    let n = (n1 - n0) as f64;
    Row {
        name: name.into(),
        peak_kb,
        cpu_ms: (cpu1 - cpu0) as f64 / n / 1e6,
        up: (up1 - up0) as f64 / n,
        down: ((all1 - all0) - (up1 - up0)) as f64 / n,
        requests: (req1 - req0) as f64 / n,
    }
}

fn print_table(args: &Args, rows: &[Row]) {
    println!(
        "{} pushes per row at {} s over HTTPS ({}), one push at every beat, {} processes",
        args.pushes,
        args.interval,
        if args.keep_alive {
            "connections kept open"
        } else {
            "a new, resumed TLS connection per request"
        },
        process_count()
    );
    println!(
        "| {:<48} | {:>8} | {:>10} | {:>9} | {:>9} | {:>8} | {:>13} | {:>13} |",
        "row",
        "peak RSS",
        "CPU/push",
        "request",
        "response",
        "requests",
        "MB/month, 30s",
        "MB/month, 300s"
    );
    println!("|{}|", ["---"; 8].join("|"));
    let heartbeat = rows.first().map_or(0.0, |r| r.up + r.down);
    for r in rows {
        let per_push = r.up + r.down;
        let month = 86_400.0 / 1e6;
        // At the defaults a push replaces every tenth heartbeat.
        let default = if r.name.contains("heartbeat only") {
            per_push
        } else {
            (9.0 * heartbeat + per_push) / 10.0
        };
        println!(
            "| {:<48} | {:>5} kB | {:>7.3} ms | {:>7.0} B | {:>7.0} B | {:>8.2} | {:>13.1} | {:>13.1} |",
            r.name,
            r.peak_kb,
            r.cpu_ms,
            r.up,
            r.down,
            r.requests,
            per_push * month,
            default * month
        );
    }
}

fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime + cutime + cstime of /proc/PID/stat, in nanoseconds
/// (10 ms ticks: ended threads and waited-for children included).
fn cpu_with_children_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // After the name: state is field 3, so utime..cstime (14-17) are 11-14 here.
    fields.iter().skip(11).take(4).sum::<u64>() * 10_000_000
}
