//! The dashboard from the agent: metrics and services pushes to a test
//! server that follows the StackSense contract, each field held to what
//! /proc and statvfs say at that moment, the bodies to their JSON Schemas.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::schema::{assert_valid_metrics, assert_valid_services};
use crate::common::stacksense::{BOX_ID, TOKEN};
use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

fn agent_for(server: &StackSense) -> AgentCmd {
    AgentCmd::new()
        .env("STACKSENSE_URL", server.url())
        .env("STACKSENSE_TOKEN", TOKEN)
}

/// `n` metrics pushes of an agent that pushes at every beat (0.5 s),
/// stopped once they are in.
fn metrics_pushes(n: usize) -> Vec<Value> {
    let server = StackSense::start();
    let mut agent = agent_for(&server)
        .args([
            "--interval",
            "0.5",
            "--metrics-interval",
            "0.5",
            "--no-splay",
        ])
        .spawn();
    let pushed = wait_for_pushes(|| server.metrics(BOX_ID), n, WAIT);
    agent.stop_with(libc::SIGTERM);
    pushed
}

/// The path of every request the server got, in order.
fn paths_of(server: &StackSense) -> Vec<String> {
    server
        .rx
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect()
}

fn proc_file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn meminfo_bytes(field: &str) -> u64 {
    proc_file("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn statvfs(path: &str) -> (u64, u64, u64) {
    let c = std::ffi::CString::new(path).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "{path}");
    let f = st.f_frsize as u64;
    (
        st.f_blocks as u64 * f,
        (st.f_blocks as u64 - st.f_bfree as u64) * f,
        st.f_bavail as u64 * f,
    )
}

fn int(body: &Value, field: &str) -> u64 {
    body[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is {}", body[field]))
}

fn float(body: &Value, field: &str) -> f64 {
    body[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is {}", body[field]))
}

/// `/proc/net/dev`'s received and sent bytes per interface.
fn interfaces() -> Vec<(String, u64, u64)> {
    proc_file("/proc/net/dev")
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            Some((name.trim().to_string(), f[0], f[8]))
        })
        .collect()
}

#[test]
fn every_metrics_field_is_what_proc_and_statvfs_say() {
    let server = StackSense::start();
    let mut agent = agent_for(&server)
        .args([
            "--report",
            "metrics",
            "--interval",
            "1",
            "--metrics-interval",
            "1",
        ])
        .args(["--no-splay"])
        .spawn();
    let pushes = wait_for_pushes(|| server.metrics(BOX_ID), 2, WAIT);
    agent.stop_with(libc::SIGTERM);
    let body = &pushes[1];
    assert_valid_metrics(body);
    assert_eq!(body["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["os_type"], "linux");

    // What does not change while the agent runs is equal; what does is close.
    assert_eq!(int(body, "memory_total"), meminfo_bytes("MemTotal"));
    let available = meminfo_bytes("MemAvailable") as f64;
    let total = meminfo_bytes("MemTotal") as f64;
    assert!(
        (int(body, "memory_available") as f64 - available).abs() < total * 0.05,
        "{} vs {available}",
        body["memory_available"]
    );
    let percent = (total - int(body, "memory_available") as f64) * 100.0 / total;
    assert!((float(body, "memory_percent") - percent).abs() <= 0.05 + 1e-9);
    assert_eq!(
        int(body, "cpu_count"),
        unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } as u64
    );
    let cpu = float(body, "cpu_percent");
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    let loads: Vec<f64> = proc_file("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .map(|n| n.parse().unwrap())
        .collect();
    for (field, now) in ["cpu_load_avg_1m", "cpu_load_avg_5m", "cpu_load_avg_15m"]
        .iter()
        .zip(&loads)
    {
        assert!(
            (float(body, field) - now).abs() < 2.0,
            "{field}: {} vs {now}",
            body[field]
        );
    }
    // psutil's formula: now - btime (a container's /proc/uptime may be its own).
    let btime: u64 = proc_file("/proc/stat")
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reported = int(body, "system_uptime_seconds");
    assert!(
        reported.abs_diff(now - btime) < 10,
        "{reported} vs {}",
        now - btime
    );
    let swap_total = meminfo_bytes("SwapTotal");
    if swap_total == 0 {
        assert!(body["swap_total"].is_null() && body["swap_percent"].is_null());
    } else {
        assert_eq!(int(body, "swap_total"), swap_total);
    }

    // Disks: the box's real mounts, each with statvfs's figures.
    let disks = body["disk_usage"].as_object().unwrap();
    let device_filesystems: BTreeSet<String> = proc_file("/proc/filesystems")
        .lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(|l| l.trim().to_string())
        .collect();
    for (path, figures) in disks {
        let (total, used, free) = statvfs(path);
        assert_eq!(figures["total"], total, "{path}");
        let moved = |a: u64, b: &Value| (a as i128 - b.as_u64().unwrap() as i128).abs();
        assert!(moved(used, &figures["used"]) < 1 << 30, "{path}: {figures}");
        assert!(moved(free, &figures["free"]) < 1 << 30, "{path}: {figures}");
    }
    for line in proc_file("/proc/self/mounts").lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (path, fstype) = (f[1], f[2]);
        let ephemeral = [
            "/tmp",
            "/run",
            "/dev",
            "/proc",
            "/sys",
            "/boot/efi",
            "/snap",
        ]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
        let is_virtual = ["tmpfs", "overlay", "squashfs", "proc", "sysfs"].contains(&fstype);
        if device_filesystems.contains(fstype) && !ephemeral && !is_virtual && !path.contains('\\')
        {
            assert!(
                disks.contains_key(path),
                "{path} ({fstype}) missing: {disks:?}"
            );
        }
        if fstype == "tmpfs" || fstype == "proc" {
            assert!(!disks.contains_key(path), "{path} is not a disk");
        }
    }

    // Interfaces: every one, counters no higher than a moment later.
    let nics = body["network_io"].as_object().unwrap();
    let later = interfaces();
    assert_eq!(
        nics.keys().cloned().collect::<BTreeSet<_>>(),
        later
            .iter()
            .map(|(n, ..)| n.clone())
            .collect::<BTreeSet<_>>()
    );
    for (name, recv, sent) in &later {
        assert!(
            nics[name]["bytes_recv"].as_u64().unwrap() <= *recv,
            "{name}"
        );
        assert!(
            nics[name]["bytes_sent"].as_u64().unwrap() <= *sent,
            "{name}"
        );
    }
    // The beats themselves crossed loopback, so the rates are real numbers.
    assert!(int(body, "net_io_recv") > 0, "{}", body["net_io_recv"]);
    assert!(int(body, "net_io_sent") > 0, "{}", body["net_io_sent"]);
    assert!(body["disk_io_read"].is_null() == body["disk_read_bytes_total"].is_null());
    let sockets: u64 = ["tcp", "tcp6", "udp", "udp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(format!("/proc/net/{f}")).ok())
        .map(|t| t.lines().count() as u64 - 1)
        .sum();
    let counted = int(body, "network_connections");
    // Other tests open and close connections meanwhile.
    assert!(
        counted.abs_diff(sockets) < 50 + sockets / 10,
        "{counted} vs {sockets}"
    );
    // Each push also recorded the beat.
    assert!(server.beats(BOX_ID).len() >= 2);
}

#[test]
fn checks_are_services_that_flip_at_the_next_beat() {
    let server = StackSense::start();
    let dir = TempDir::new();
    let flag = dir.write("up", "");
    let port = server.url().rsplit(':').next().unwrap().to_string();
    let tcp = format!("tcp 127.0.0.1:{port}");
    let cmd = format!("cmd /bin/test -e {}", flag.display());
    let agent = agent_for(&server)
        .args(["--report", "services", "--interval", "1", "--no-splay"])
        .args(["--health", &tcp, "--health", &cmd])
        .spawn();
    let first = wait_for_pushes(|| server.services(BOX_ID), 1, WAIT);
    assert_valid_services(&first[0]);
    let services = first[0]["services"].as_array().unwrap();
    assert_eq!(services[0]["name"], tcp.as_str());
    // The test server's port is found listening too: one row, the check's,
    // labelled with the process that holds it (this test binary).
    let port_row = format!("port-{port}");
    assert!(
        !services.iter().any(|s| s["name"] == port_row.as_str()),
        "{services:#?}"
    );
    assert!(
        services[0]["display_name"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!(" (:{port})"))),
        "{:#}",
        services[0]
    );
    assert!(
        services[0].get("status").is_none(),
        "running: the server's default"
    );
    assert_eq!(services[0]["port"], port.parse::<u64>().unwrap());
    assert_eq!(services[0]["latency_type"], "TCP");
    assert!(services[0]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(services[1].get("status").is_none());
    assert_eq!(services[1]["latency_type"], "OTHER");

    // The checks keep passing: the beats between pushes are plain heartbeats.
    server.rx.wait_for(3, WAIT);
    std::fs::remove_file(&flag).unwrap();
    let line = agent.wait_for_line("pushed to the server as a failed service", WAIT);
    assert_contains!(line, &format!("check {cmd} failed"));
    let pushes = wait_for_pushes(|| server.services(BOX_ID), 2, WAIT);
    assert_valid_services(&pushes[1]);
    let failed = &pushes[1]["services"][1];
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["latency_success"], false);
    assert!(
        failed["latency_error"].as_str().unwrap().contains("exit"),
        "{failed}"
    );
    let paths = paths_of(&server);
    assert!(
        paths[1..paths.len() - 1]
            .iter()
            .any(|p| p == "/api/agent/heartbeat/"),
        "{paths:?}"
    );
    // Recovery goes at once too.
    std::fs::write(&flag, "").unwrap();
    let pushes = wait_for_pushes(|| server.services(BOX_ID), 3, WAIT);
    assert!(
        pushes[2]["services"][1].get("status").is_none(),
        "running again"
    );
}

#[test]
fn pushes_go_every_metrics_interval_and_beats_between() {
    let server = StackSense::start();
    let mut agent = agent_for(&server)
        .args(["--report", "metrics,services", "--health", "load 1000"])
        .args(["--interval", "0.5", "--metrics-interval", "1.5"])
        .args(["--services-interval", "1.5", "--no-splay"])
        .spawn();
    server.rx.wait_for(9, WAIT);
    agent.stop_with(libc::SIGTERM);
    let paths = paths_of(&server);
    let at = |kind: &str| -> Vec<usize> {
        paths
            .iter()
            .enumerate()
            .filter(|(_, p)| p.ends_with(&format!("/{kind}/")))
            .map(|(i, _)| i)
            .collect()
    };
    // Beat zero: services; beat one: the first metrics; then each every third beat.
    assert_eq!(&at("services")[..2], [0, 3], "{paths:?}");
    assert_eq!(&at("metrics")[..2], [1, 4], "{paths:?}");
    assert_eq!(&at("heartbeat")[..2], [2, 5], "{paths:?}");
}

#[test]
fn a_refused_metrics_push_is_said_once_and_the_box_stays_online() {
    let server = StackSense::start();
    server.refuse_metrics("field 'cpu_percent' is not a valid number");
    let mut agent = agent_for(&server)
        .args([
            "--report",
            "metrics",
            "--interval",
            "0.5",
            "--metrics-interval",
            "0.5",
        ])
        .args(["--no-splay"])
        .spawn();
    let line = agent.wait_for_line("refused the metrics push", WAIT);
    assert_contains!(line, "WARN");
    assert_contains!(
        line,
        "server says \"field 'cpu_percent' is not a valid number\""
    );
    assert_contains!(line, "the beat goes as a heartbeat instead");
    server.rx.wait_for(8, WAIT);
    agent.stop_with(libc::SIGTERM);
    let refusals = agent
        .log()
        .iter()
        .filter(|l| l.contains("refused the metrics push"))
        .count();
    assert_eq!(refusals, 1, "{:#?}", agent.log());
    assert!(
        !agent.log().iter().any(|l| l.contains("missed")),
        "{:#?}",
        agent.log()
    );
    // Every metrics push is followed by a heartbeat in the same slot.
    let requests = server.rx.requests();
    for pair in requests.windows(2) {
        if pair[0].path == "/api/agent/metrics/" {
            assert_eq!(pair[1].path, "/api/agent/heartbeat/");
            assert!(pair[1].at.duration_since(pair[0].at) < Duration::from_millis(400));
        }
    }
}

/// A server revision without the services endpoint (404), or a proxy that
/// fails on the metrics path (502): every beat still reaches the server in
/// its slot, each push waits for its interval, and each is said once with
/// what to do.
#[test]
fn a_push_endpoint_that_fails_costs_no_beat() {
    let server = StackSense::start();
    server.fail("/api/agent/services/", 404);
    server.fail("/api/agent/metrics/", 502);
    let mut agent = agent_for(&server)
        .args(["--report", "metrics,services", "--health", "cmd true"])
        .args(["--interval", "0.5", "--metrics-interval", "1", "--no-splay"])
        .spawn();
    let line = agent.wait_for_line("refused the services push", WAIT);
    assert_contains!(line, "HTTP 404 Not Found for POST");
    assert_contains!(line, "remove services from report");
    assert_contains!(line, "the beat goes as a ");
    let line = agent.wait_for_line("refused the metrics push", WAIT);
    assert_contains!(line, "HTTP 502 Bad Gateway");
    let deadline = Instant::now() + WAIT;
    while server.beats(BOX_ID).len() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.stop_with(libc::SIGTERM);
    let paths = paths_of(&server);
    let beats = paths
        .iter()
        .filter(|p| *p == "/api/agent/heartbeat/")
        .count();
    assert!(beats >= 6, "{paths:#?}");
    // Pushes wait for their interval (1 s at 0.5 s beats): at most about
    // one beat in two tries each, never every beat.
    for push in ["/api/agent/services/", "/api/agent/metrics/"] {
        let tries = paths.iter().filter(|p| *p == push).count();
        assert!(tries >= 1 && tries <= beats / 2 + 1, "{push}: {paths:#?}");
    }
    let log = agent.log();
    for push in ["services", "metrics"] {
        let said = format!("refused the {push} push");
        let lines = log.iter().filter(|l| l.contains(&said)).count();
        assert_eq!(lines, 1, "{log:#?}");
    }
    assert!(!log.iter().any(|l| l.contains("missed")), "{log:#?}");
}

#[test]
fn a_hung_disk_is_left_out_of_the_push_in_time_and_said_once() {
    let Some(hung) = HungMount::on_a_block_device() else {
        return;
    };
    let server = StackSense::start();
    let check = format!("disk timeout=0.5 {} 90%", hung.path());
    let mut agent = agent_for(&server)
        .args(["--report", "metrics,services", "--health", &check])
        .args(["--interval", "1", "--metrics-interval", "1", "--no-splay"])
        .spawn();
    let metrics = wait_for_pushes(|| server.metrics(BOX_ID), 4, WAIT);
    let services = server.services(BOX_ID);
    agent.stop_with(libc::SIGTERM);
    for push in &metrics {
        assert_valid_metrics(push);
        assert!(push["disk_usage"].get(hung.path()).is_none(), "{push}");
    }
    let hung_service = &services[0]["services"][0];
    assert_eq!(hung_service["status"], "failed", "{hung_service}");
    // Said when it first hung, not at every push.
    let said: Vec<String> = agent
        .log()
        .into_iter()
        .filter(|l| l.contains("the metrics push leaves out disk"))
        .collect();
    assert_eq!(said.len(), 1, "{:#?}", agent.log());
    assert_contains!(said[0], hung.path());
    assert_contains!(said[0], "WARN");
    // Pushes kept the schedule: a second apart, not a statvfs apart.
    let times: Vec<Instant> = server
        .rx
        .requests()
        .iter()
        .filter(|r| r.path == "/api/agent/metrics/")
        .map(|r| r.at)
        .collect();
    for gap in times.windows(2) {
        assert!(gap[1].duration_since(gap[0]) < Duration::from_millis(1800));
    }
}

#[test]
fn pushes_that_cannot_work_are_refused_at_start() {
    let server = StackSense::start();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--server-id", "3", "--api", "legacy", "--report", "metrics"],
            "report (from flag --report): is metrics, which the legacy API has no endpoint for",
        ),
        (
            &["--docker-host", "tcp://10.0.0.1:2375"],
            "docker_host (from flag --docker-host): \"tcp://10.0.0.1:2375\" expected auto, off, unix:///PATH",
        ),
        (
            &["--report", "metrics", "--metrics-interval", "10"],
            "metrics_interval (from flag --metrics-interval): is 10s, shorter than interval (30s)",
        ),
        (
            &[
                "--report",
                "services",
                "--health",
                "load 1000",
                "--services-interval",
                "5",
            ],
            "services_interval (from flag --services-interval): is 5s, shorter than interval (30s)",
        ),
    ];
    for (args, said) in cases {
        let out = agent_for(&server).args(args).finish();
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{args:?}:\n{}", out.stderr);
    }
    assert!(server.rx.requests().is_empty());
    // --check names where the pushes go and how often.
    let out = agent_for(&server)
        .args(["--check", "--offline", "--report", "metrics,services"])
        .args(["--health", "load 1000", "--metrics-interval", "60"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let url = server.url();
    let rows: Vec<&str> = out.stdout.lines().collect();
    for row in [
        format!("metrics      POST {url}/api/agent/metrics/"),
        format!("services     POST {url}/api/agent/services/"),
    ] {
        assert!(
            rows.contains(&row.as_str()),
            "no {row:?} in\n{}",
            out.stdout
        );
    }
    assert!(
        rows.iter().any(|r| r.starts_with("metrics_interval 1m ")
            && r.ends_with("from flag --metrics-interval")),
        "{}",
        out.stdout
    );
    // Services alone work from cron, with or without a check.
    let out = agent_for(&server)
        .args(["--once", "--report", "services"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(server.services(BOX_ID).len(), 1);
    assert_eq!(server.beats(BOX_ID).len(), 1);
}

/// A box set up with nothing but the server's URL and token (the Python
/// agent's variables) fills the server's page: the services push at beat
/// zero and every minute, a metrics push in place of every beat after beat
/// zero, every 30 s as the server's own agent pushes (here at 0.5 s beats
/// and pushes, the same rule faster); no containers push without a socket.
#[test]
fn out_of_the_box_every_beat_after_the_first_is_a_metrics_push() {
    let server = StackSense::start();
    let out = agent_for(&server).args(["--check", "--offline"]).finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().collect();
    for (starts, ends) in [
        ("report       auto (metrics,services,containers)", "default"),
        ("metrics_interval 30s", "default"),
        ("interval     30s", "default"),
    ] {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(starts) && r.ends_with(ends)),
            "no {starts:?} row in\n{}",
            out.stdout
        );
    }
    let mut agent = agent_for(&server)
        .args([
            "--interval",
            "0.5",
            "--metrics-interval",
            "0.5",
            "--no-splay",
        ])
        .spawn();
    let pushed = wait_for_pushes(|| server.metrics(BOX_ID), 3, WAIT);
    agent.stop_with(libc::SIGTERM);
    assert_valid_metrics(&pushed[0]);
    let paths = paths_of(&server);
    assert_eq!(paths[0], "/api/agent/services/", "{paths:?}");
    assert!(
        paths[1..].iter().all(|p| p == "/api/agent/metrics/"),
        "{paths:?}"
    );
    let log = agent.log().join("\n");
    assert_contains!(
        log,
        "pushes in place of a beat: metrics every 500ms, services every 1m, containers every 1m"
    );
    assert_contains!(
        log,
        "the containers push leaves out containers: no socket at"
    );
    // report off: the design card's plain heartbeat, nothing else.
    let plain = StackSense::start();
    let out = agent_for(&plain)
        .args(["--once", "--report", "off"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(paths_of(&plain), ["/api/agent/heartbeat/"]);
}

/// `--once` from cron: the first run since boot keeps a sample (in a
/// runtime directory) and sends a plain heartbeat; every later run pushes
/// metrics measured since the run before.
#[test]
fn once_pushes_metrics_measured_since_the_run_before() {
    let server = StackSense::start();
    let runtime = TempDir::new();
    let once = || {
        agent_for(&server)
            .env("RUNTIME_DIRECTORY", runtime.path())
            .args(["--once", "-v"])
            .finish()
    };
    let first = once();
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    assert_contains!(first.stderr, "first run since boot");
    assert!(!first.stderr.contains("WARN"), "{}", first.stderr);
    assert_eq!(paths_of(&server), ["/api/agent/services/"]);
    let kept: Vec<_> = std::fs::read_dir(runtime.path())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(kept.len(), 1, "one sample file");
    std::thread::sleep(Duration::from_millis(300));
    let second = once();
    assert_eq!(second.code(), Some(0), "{}", second.stderr);
    let pushed = server.metrics(BOX_ID);
    assert_eq!(pushed.len(), 1, "{:?}", paths_of(&server));
    assert_valid_metrics(&pushed[0]);
    let cpu = float(&pushed[0], "cpu_percent");
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    assert!(
        pushed[0]["net_io_recv"].is_u64(),
        "a rate over the two runs: {}",
        pushed[0]
    );
}

/// Top CPU / Top RAM: a process that was busy since the previous push is
/// among the five by CPU; every listed process is one that runs, with the
/// name, user, resident memory and start time /proc gives it; the memory
/// list is in order of resident memory.
#[test]
fn top_processes_are_the_busiest_and_largest_as_proc_says() {
    let server = StackSense::start();
    let busy =
        ChildGuard::spawn(std::process::Command::new("sh").args(["-c", "while :; do :; done"]));
    let busy_pid = busy.0.id();
    let mut agent = agent_for(&server)
        .args(["--interval", "1", "--metrics-interval", "1", "--no-splay"])
        .spawn();
    let pushed = wait_for_pushes(|| server.metrics(BOX_ID), 2, WAIT);
    agent.stop_with(libc::SIGTERM);
    drop(busy);
    for push in &pushed {
        assert_valid_metrics(push);
    }
    let top = &pushed[1]["top_processes"];
    let by_cpu: Vec<u64> = top["cpu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert!(
        by_cpu.contains(&u64::from(busy_pid)),
        "busy loop {busy_pid} not in {top:#}"
    );
    let busiest = top["cpu"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == busy_pid)
        .unwrap();
    assert!(float(busiest, "cpu_percent") > 10.0, "{busiest}");
    assert_eq!(busiest["name"], "sh");
    // The busy loop runs as we do: the user /etc/passwd names for our uid.
    let me = proc_file("/proc/self/status");
    let uid = me.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uid = uid.split_whitespace().nth(1).unwrap().to_string();
    let passwd = proc_file("/etc/passwd");
    let name = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(uid.as_str()))
        .map_or(uid.clone(), |l| l.split(':').next().unwrap().to_string());
    assert_eq!(busiest["user"], name.as_str(), "{busiest}");
    let boot: f64 = proc_file("/proc/stat")
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let rss: Vec<u64> = top["memory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| int(p, "rss"))
        .collect();
    assert!(rss.windows(2).all(|w| w[0] >= w[1]), "{rss:?}");
    for p in top["memory"].as_array().unwrap() {
        let start = float(p, "start_time");
        assert!(start >= boot && start <= boot + 1e7, "{p}");
        let pid = p["pid"].as_u64().unwrap();
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // ended since the push
        };
        let comm = &stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()];
        assert_eq!(p["name"], comm, "{p}");
    }
}

/// `ipc_stats`: a System V shared-memory segment nobody is attached to (a
/// leak) shows as orphaned, and the counts are /proc/sysvipc's.
#[test]
fn ipc_stats_count_an_orphaned_segment() {
    const SIZE: usize = 65_536;
    // SAFETY: a private segment we remove below; no memory is mapped.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, SIZE, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    let pushed = metrics_pushes(1);
    let segments = proc_file("/proc/sysvipc/shm").lines().count() - 1;
    // SAFETY: removes the segment made above.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    let ipc = &pushed[0]["ipc_stats"];
    assert_valid_metrics(&pushed[0]);
    assert_eq!(int(ipc, "shm_segments"), segments as u64, "{ipc}");
    assert!(int(ipc, "shm_orphaned") >= 1, "{ipc}");
    assert!(int(ipc, "shm_orphaned_bytes") >= SIZE as u64, "{ipc}");
    assert!(
        int(ipc, "shm_bytes") >= int(ipc, "shm_orphaned_bytes"),
        "{ipc}"
    );
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(program))
        .find(|path| path.is_file())
}

/// `disk_hardware` and the disks' tags: the whole disks lsblk lists (less
/// RAM-backed zram, which lsblk calls a disk), with its size and rotation,
/// and `/`'s physical disk the one lsblk shows `/` mounted from.
#[test]
fn storage_hardware_is_what_lsblk_reads() {
    let pushed = metrics_pushes(1);
    assert_valid_metrics(&pushed[0]);
    let hardware = &pushed[0]["disk_hardware"];
    let ours: BTreeSet<(String, u64, bool)> = hardware["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let name = d["name"].as_str().unwrap().to_string();
            (
                name,
                int(d, "size"),
                d["rotational"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(int(hardware, "physical_disk_count"), ours.len() as u64);
    let dir = TempDir::new();
    let listed = dir.path().join("lsblk.json");
    let Ok(file) = std::fs::File::create(&listed) else {
        panic!("cannot write {listed:?}");
    };
    let mut lsblk = std::process::Command::new("lsblk");
    lsblk
        .args(["-J", "-b", "-o", "NAME,TYPE,ROTA,SIZE,MOUNTPOINT"])
        .stdout(file);
    if which("lsblk").is_none() {
        eprintln!("SKIPPED the lsblk comparison: no lsblk on this machine");
        return;
    }
    let mut child = ChildGuard::spawn(&mut lsblk);
    let status = child.wait_within(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "lsblk: {status:?}");
    let tree: Value = serde_json::from_slice(&std::fs::read(&listed).unwrap()).unwrap();
    let mut theirs = BTreeSet::new();
    let mut root_disk = None;
    fn walk(
        node: &Value,
        disk: Option<&str>,
        root: &mut Option<String>,
        all: &mut BTreeSet<(String, u64, bool)>,
    ) {
        let name = node["name"].as_str().unwrap_or("");
        let disk =
            if node["type"] == "disk" && !name.starts_with("zram") && !name.starts_with("ram") {
                let rota = node["rota"].as_bool().unwrap_or(node["rota"] == "1");
                all.insert((name.to_string(), node["size"].as_u64().unwrap_or(0), rota));
                Some(name)
            } else {
                disk
            };
        if node["mountpoint"] == "/" {
            *root = disk.map(str::to_string);
        }
        for child in node["children"].as_array().into_iter().flatten() {
            walk(child, disk, root, all);
        }
    }
    for node in tree["blockdevices"].as_array().unwrap() {
        walk(node, None, &mut root_disk, &mut theirs);
    }
    assert_eq!(ours, theirs, "{hardware:#}");
    if let Some(root) = root_disk {
        let tags = &pushed[0]["disk_usage"]["/"];
        assert_eq!(tags["physical_disk"], root.as_str(), "{tags}");
        assert_eq!(tags["raid"], "none", "{tags}");
        assert!(
            ["SSD", "HDD", "NVMe"].contains(&tags["disk_type"].as_str().unwrap()),
            "{tags}"
        );
    }
}
