//! Checks that gate the beat, and report bodies: the real binary against
//! listeners, HTTP servers, commands and paths this test sets up on
//! 127.0.0.1 and in a temporary directory.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// What `--check` says about `check` (named without its timeout): its
/// line, and the next when the detail went there.
fn verdict(stdout: &str, check: &str) -> String {
    let check = &check.replace("timeout=0.5 ", "");
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            (l.starts_with("pass  ") || l.starts_with("FAIL  ")) && l[6..].starts_with(check)
        })
        .unwrap_or_else(|| panic!("no verdict for {check} in:\n{stdout}"));
    match lines.get(at + 1) {
        Some(next) if next.starts_with("      ") => format!("{} {}", lines[at], next.trim()),
        _ => lines[at].to_string(),
    }
}

/// A port on 127.0.0.1 with nothing listening on it.
fn closed_port() -> u16 {
    free_port()
}

#[test]
fn check_runs_each_kind_once_and_says_why() {
    let listening = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listening.local_addr().unwrap().port();
    let down = closed_port();
    let healthy = Receiver::start(|_| status(200));
    let sick = Receiver::start(|_| status(503));
    // Accepts connections (the kernel does) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    // A listener whose accept queue is full: the kernel drops further
    // SYNs, so a connect waits until its timeout.
    let full = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen() on a socket we own; it only changes the backlog.
    assert_eq!(
        unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&full), 0) },
        0
    );
    let full_port = full.local_addr().unwrap().port();
    let _queued = std::net::TcpStream::connect(("127.0.0.1", full_port)).unwrap();
    let dir = TempDir::new();
    let checks = [
        format!("tcp 127.0.0.1:{up}"),
        format!("tcp 127.0.0.1:{down}"),
        format!("http {}/health", healthy.url()),
        format!("http {}/health", sick.url()),
        format!(
            "http timeout=0.5 http://127.0.0.1:{}/health",
            silent.local_addr().unwrap().port()
        ),
        "cmd true".to_string(),
        "cmd sh -c 'echo checking; echo replica lag 40s >&2; exit 3'".to_string(),
        format!("disk {} 100%", dir.path().display()),
        format!("disk {} 0.0001%", dir.path().display()),
        "disk /no/such/dir 90%".to_string(),
        "memory 1%".to_string(),
        "memory 1000000G".to_string(),
        "load 1000".to_string(),
        format!("tcp timeout=0.5 127.0.0.1:{full_port}"),
    ];
    let mut agent = AgentCmd::posting_to("http://127.0.0.1:9").args(["--check", "--offline"]);
    for check in &checks {
        agent = agent.args(["--health", check]);
    }
    let out = agent.finish();
    assert_eq!(out.code(), Some(0), "a failing check is not a config error");
    let s = &out.stdout;
    assert_contains!(s, "health       14 check(s)");
    assert_contains!(s, "from flag --health");
    let expect = |check: &str, pass: bool, why: &str| {
        let line = verdict(s, check);
        assert!(
            line.starts_with(if pass { "pass" } else { "FAIL" }),
            "{line}"
        );
        assert!(line.contains(why), "{check}: expected {why:?} in {line}");
    };
    expect(
        &checks[0],
        true,
        &format!("connected to 127.0.0.1:{up} in "),
    );
    expect(
        &checks[1],
        false,
        &format!("connection refused by 127.0.0.1:{down}"),
    );
    expect(&checks[2], true, "HTTP 200 in ");
    expect(&checks[3], false, "HTTP 503 Service Unavailable");
    expect(&checks[4], false, "within 500ms");
    expect(&checks[5], true, "exit status 0");
    expect(&checks[6], false, "exit status 3: replica lag 40s");
    expect(&checks[7], true, "% used (limit 100%)");
    expect(&checks[8], false, "% used (limit 0.0001%)");
    expect(
        &checks[9],
        false,
        "cannot read /no/such/dir: No such file or directory",
    );
    expect(&checks[10], true, "available");
    expect(&checks[11], false, "(minimum 1000000 GiB)");
    expect(&checks[12], true, "per CPU");
    expect(
        &checks[13],
        false,
        &format!("no answer from 127.0.0.1:{full_port} within 500ms"),
    );
    assert_contains!(s, "8 of 14 check(s) failing");
    assert_eq!(healthy.requests()[0].method, "GET");
    assert_eq!(healthy.requests()[0].path, "/health");
}

#[test]
fn checks_come_from_flags_env_or_file_with_their_source_in_errors() {
    let dir = TempDir::new();
    let conf = dir.write(
        "hb.conf",
        "{\n  \"server_id\": 7,\n  \"api_url\": \"http://127.0.0.1:9\",\n  \"health\": [\n    \"load 1000\",\n    \"disk / 101%\"\n  ]\n}\n",
    );
    let out = AgentCmd::new()
        .args(["--check", "--offline", "--config"])
        .arg_path(&conf)
        .finish();
    assert_eq!(out.code(), Some(2));
    assert_eq!(
        out.stderr.trim(),
        format!(
            "stacksense-heartbeat: error: health (from {}:4): \"disk / 101%\" has no valid MAX%; \
             expected disk PATH MAX%, e.g. disk / 90% (fails at 90% used)",
            conf.display()
        )
    );
    let out = AgentCmd::posting_to("http://127.0.0.1:9")
        .env(
            "STACKSENSE_HEALTH",
            "load 1000; cmd sh -c 'true; true'; tcp nowhere",
        )
        .args(["--check", "--offline"])
        .finish();
    assert_eq!(out.code(), Some(2));
    assert_contains!(
        out.stderr,
        "health (from env STACKSENSE_HEALTH): \"tcp nowhere\" has no port; expected tcp HOST:PORT"
    );
    assert_eq!(out.stderr.lines().count(), 1, "the others are fine");
    // A flag replaces the variable's list, as for every setting.
    let out = AgentCmd::posting_to("http://127.0.0.1:9")
        .env("STACKSENSE_HEALTH", "tcp nowhere")
        .args(["--health", "load 1000", "--check", "--offline"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_contains!(out.stdout, "health       1 check(s)");
}

#[test]
fn a_failing_check_withholds_beats_until_it_passes_and_says_so_twice() {
    let rx = Receiver::start(|_| ok_json());
    let port = closed_port();
    let agent = AgentCmd::posting_to(&rx.url())
        .args(["--interval", "0.3", "--no-splay"])
        .args(["--health", &format!("tcp 127.0.0.1:{port}")])
        .args(["--health", "load 1000"])
        .spawn();
    let line = agent.wait_for_line("heartbeat withheld", WAIT);
    assert_contains!(
        line,
        &format!(
            "check tcp 127.0.0.1:{port} failed: connection refused by 127.0.0.1:{port}; heartbeat withheld"
        )
    );
    // Several slots go by: none reaches the server, none adds a line.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.requests().len(), 0, "a withheld beat is never sent");
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let back = agent.wait_for_line("all checks pass again", WAIT);
    rx.wait_for(2, WAIT);
    assert_contains!(back, "heartbeat(s) were withheld");
    let log = agent.log();
    let count = |needle: &str| log.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("failed:"), 1, "{log:#?}");
    assert_eq!(count("all checks pass again"), 1, "{log:#?}");
    let body = format!(r#"{{"agent_version":"{}"}}"#, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        String::from_utf8_lossy(&rx.requests()[0].body),
        body,
        "without --report the body is byte for byte what it always was"
    );
    drop(listener);
}

#[test]
fn a_hung_command_check_is_killed_with_its_children_and_the_beat_keeps_its_slot() {
    let rx = Receiver::start(|_| ok_json());
    // A distinctive sleep, in a child of the check's shell: both must die.
    let marker = format!("sleep 3{}.5", std::process::id() % 1000);
    let check = format!("cmd timeout=0.4 sh -c '{marker} & wait'");
    let mut agent = AgentCmd::posting_to(&rx.url())
        .args(["--interval", "1", "--no-splay", "--report", "status"])
        .args(["--health", &check])
        .spawn();
    let beats = rx.wait_for(4, WAIT);
    let starts: Vec<f64> = gaps(&beats);
    for gap in &starts {
        assert!(
            (0.7..1.3).contains(gap),
            "beats keep their 1 s slots: {starts:?}"
        );
    }
    for beat in &beats {
        let body = body_of(beat);
        assert_eq!(body["status"], "fail");
        let detail = body["checks"][0]["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("still running after 400ms; killed"),
            "{detail}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    agent.stop_with(SIGTERM);
    while processes_with(&marker) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        processes_with(&marker),
        0,
        "no check process outlives its timeout or the agent"
    );
    let log = agent.log();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("reported as status \"fail\""))
            .count(),
        1,
        "{log:#?}"
    );
}

#[test]
fn once_with_a_failing_check_sends_nothing_and_exits_1() {
    let rx = Receiver::start(|_| ok_json());
    let out = AgentCmd::posting_to(&rx.url())
        .args([
            "--once",
            "--health",
            "cmd sh -c 'echo disk full >&2; exit 1'",
        ])
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(
        out.stderr,
        "check cmd sh -c 'echo disk full >&2; exit 1' failed: exit status 1: disk full; heartbeat withheld"
    );
    assert_eq!(rx.requests().len(), 0);
}

#[test]
fn https_checks_trust_what_beats_trust() {
    let tls = TlsFixture::new();
    let service = Receiver::start_tls(&tls, |_| status(204));
    let dir = TempDir::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    let check = format!("http {}/ready", service.url());
    // The service's CA, given for the beats, is trusted by the check too.
    let out = AgentCmd::posting_to("http://127.0.0.1:9")
        .args(["--check", "--offline", "--health", &check, "--ca-file"])
        .arg_path(&ca)
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let line = verdict(&out.stdout, &check);
    assert!(
        line.starts_with("pass") && line.contains("HTTP 204"),
        "{line}"
    );
    // The bundled roots do not know it.
    let out = AgentCmd::posting_to("http://127.0.0.1:9")
        .args(["--check", "--offline", "--health", &check])
        .finish();
    let line = verdict(&out.stdout, &check);
    assert!(
        line.starts_with("FAIL") && line.contains("rejected"),
        "{line}"
    );
}

/// A disk check or the vitals on a hung mount (a dead NFS server, a FUSE
/// daemon that stopped reading) cost the beat their timeout, no more:
/// `--check` and `--once` finish, and the service keeps its slots.
#[test]
fn a_hung_filesystem_costs_a_check_its_timeout_not_the_beats() {
    let Some(hung) = HungMount::new() else { return };
    let check = format!("disk timeout=0.5 {} 90%", hung.path());
    let rx = Receiver::start(|_| ok_json());

    let out = AgentCmd::posting_to(&rx.url())
        .args(["--check", "--offline", "--health", &check])
        .output_within(Duration::from_secs(20));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let line = verdict(&out.stdout, &check);
    assert!(
        line.starts_with("FAIL") && line.contains("no answer within 500ms"),
        "{}",
        out.stdout
    );

    // Report mode: the beat goes out, the hung disk's figures are null.
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--report", "status,vitals", "--health", &check])
        .output_within(Duration::from_secs(20));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let body = body_of(&rx.requests()[0]);
    assert_valid(&body);
    assert_eq!(body["status"], "fail");
    let disks = body["host"]["disks"].as_array().unwrap();
    let entry = disks.iter().find(|d| d["path"] == hung.path()).unwrap();
    assert_eq!(entry["total_bytes"], Value::Null, "{body}");
    assert!(
        disks
            .iter()
            .any(|d| d["path"] == "/" && d["total_bytes"].is_u64())
    );

    // The service: a beat every slot while the mount stays hung.
    let rx = Receiver::start(|_| ok_json());
    let mut agent = AgentCmd::posting_to(&rx.url())
        .args(["--interval", "1", "--no-splay", "--report", "status"])
        .args(["--health", &check])
        .spawn();
    let beats = rx.wait_for(5, Duration::from_secs(30));
    for request in &beats[1..] {
        let body = body_of(request);
        assert_eq!(body["status"], "fail");
        let detail = body["checks"][0]["detail"].as_str().unwrap();
        assert!(
            detail.contains("stuck") || detail.contains("no answer"),
            "{detail}"
        );
    }
    assert!(agent.is_running());
}

/// A cmd check that starts something in the background ends it when it
/// ends: one `sleep` per beat piled up, and outlived the agent.
#[test]
fn a_cmd_checks_background_processes_end_with_it() {
    let rx = Receiver::start(|_| ok_json());
    // A duration no other process here sleeps: how its processes are found.
    let marker = format!("9{}", std::process::id());
    let check = format!("cmd sh -c 'sleep {marker} & exit 0'");
    let mut agent = AgentCmd::posting_to(&rx.url())
        .args(["--interval", "0.3", "--no-splay", "--health", &check])
        .spawn();
    rx.wait_for(5, WAIT);
    let left = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| c == format!("sleep\0{marker}\0").as_bytes())
            })
            .count()
    };
    // At most the one of the check running right now; the old code left
    // one per beat (5 here).
    let running = left();
    assert!(
        running <= 1,
        "{running} background processes of finished checks"
    );
    agent.stop_with(SIGTERM);
    // The agent ends a running check's group as it stops.
    let deadline = Instant::now() + Duration::from_secs(5);
    while left() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(left(), 0, "a check's background process outlived the agent");
}

/// As PID 1 (the container image) the agent reaps what is re-parented to it.
#[test]
fn as_pid_1_orphans_are_reaped() {
    orphans_are_reaped_as_pid_1("");
}

/// ... also on a kernel without CONFIG_PROC_CHILDREN, where
/// /proc/PID/task/TID/children does not exist: here hidden under a tmpfs.
#[test]
fn as_pid_1_orphans_are_reaped_without_proc_children_lists() {
    orphans_are_reaped_as_pid_1("mount -t tmpfs none /proc/1/task && ");
}

fn orphans_are_reaped_as_pid_1(before_exec: &str) {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: a PID namespace needs root");
        return;
    }
    let rx = Receiver::start(|_| ok_json());
    let agent = AgentCmd::with_binary(std::path::Path::new("unshare"))
        .args(["--pid", "--fork", "--mount", "--mount-proc", "sh", "-c"])
        .args([format!("{before_exec}exec \"$@\"")])
        .args(["sh", BIN.unwrap()])
        .args(["--server-id", "7", "--api-url", &rx.url()])
        .args(["--interval", "0.2", "--no-splay"])
        .args(["--health", "cmd sh -c 'sleep 0.05 & exit 0'"])
        .spawn();
    rx.wait_for(20, WAIT);
    // unshare's child is the agent, PID 1 inside; its children's states.
    let unshare = agent.pid();
    let children = |pid: u32| -> Vec<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten();
        tasks
            .flat_map(|t| {
                std::fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    };
    let init = *children(unshare).first().expect("the agent under unshare");
    let zombies = children(init)
        .into_iter()
        .filter(|c| {
            std::fs::read_to_string(format!("/proc/{c}/stat")).is_ok_and(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'))
            })
        })
        .count();
    // One or two between reaps (a beat reaps them); the old code kept all.
    assert!(zombies <= 3, "{zombies} zombies after 20 beats");
}

/// In report mode a check slower than the slot leaves the beat a fair
/// share (its timeout or half the slot): the beat to a server answering in
/// 0.3 s arrives, and the check is reported as what was slow.
#[test]
fn a_slow_check_leaves_the_beat_its_share_of_the_slot() {
    let how = Serve {
        answer_after: Some(std::sync::Arc::new(|_| Duration::from_millis(300))),
        ..Serve::default()
    };
    let rx = Receiver::serving(bind(), None, how, |_| ok_json());
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--interval", "3", "--report", "status"])
        .args(["--health", "cmd sleep 10"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let body = body_of(&rx.requests()[0]);
    assert_eq!(body["status"], "fail");
    let detail = body["checks"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("still running after 1."),
        "about half of the 3 s slot: {detail}"
    );
}
