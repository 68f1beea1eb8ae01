//! Report bodies: `--report status,vitals` beats and `run`'s job reports
//! from the real binary, validated against docs/report.schema.json.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn report_bodies_carry_checks_and_vitals_and_validate_against_the_schema() {
    let rx = Receiver::start(|_| ok_json());
    let dir = TempDir::new();
    let disk = format!("disk {} 100%", dir.path().display());
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--report", "status,vitals"])
        .args(["--health", &disk, "--health", "cmd false"])
        .finish();
    assert_eq!(
        out.code(),
        Some(0),
        "a reported failure is still a delivered beat: {}",
        out.stderr
    );
    assert_contains!(
        out.stderr,
        "check cmd false failed: exit status 1; reported as status \"fail\""
    );
    let body = body_of(&rx.requests()[0]);
    assert_valid(&body);
    assert_eq!(body["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["status"], "fail");
    assert_eq!(body["checks"][0]["ok"], true);
    assert_eq!(body["checks"][1]["name"], "cmd false");
    let host = &body["host"];
    assert!(host["cpus"].as_u64().unwrap() >= 1);
    assert!(
        host["mem_total_bytes"].as_u64().unwrap() > host["mem_available_bytes"].as_u64().unwrap()
    );
    assert_eq!(host["disks"][0]["path"], "/");
    assert_eq!(host["disks"][1]["path"], dir.path().display().to_string());
    let rss = host["agent_rss_bytes"].as_u64().unwrap();
    assert!((100_000..64_000_000).contains(&rss), "{rss}");
    assert_eq!(
        host["boot_id"].as_str().unwrap(),
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim()
    );

    // vitals alone: no status, no checks.
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--report", "vitals"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let body = body_of(&rx.requests()[1]);
    assert_valid(&body);
    assert!(
        body.get("status").is_none() && body.get("host").is_some(),
        "{body}"
    );
}

#[test]
fn run_with_report_status_sends_the_jobs_end_and_output_tail_either_way() {
    let rx = Receiver::start(|_| ok_json());
    // More output than the tail keeps: only the end is sent.
    let job = "i=0; while [ $i -lt 600 ]; do echo line $i; i=$((i+1)); done; echo oops >&2; exit 4";
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--report", "status", "run", "--", "sh", "-c", job])
        .finish();
    assert_eq!(out.code(), Some(4), "{}", out.stderr);
    assert!(out.stdout.starts_with("line 0\nline 1\n") && out.stdout.ends_with("line 599\n"));
    assert_contains!(out.stderr, "oops");
    assert_contains!(
        out.stderr,
        "the job failed with exit status 4; reported with its heartbeat"
    );
    let body = body_of(&rx.requests()[0]);
    assert_valid(&body);
    assert_eq!(body["status"], "fail");
    assert_eq!(body["job"]["exit_code"], 4);
    assert_eq!(body["job"]["signal"], Value::Null);
    let tail = body["job"]["tail"].as_str().unwrap();
    assert!(tail.ends_with("line 599\noops\n"), "{tail}");
    assert!(tail.len() <= 4096 && tail.len() > 4000, "{}", tail.len());
    assert!(!tail.contains("line 0\n"));
    assert!(body["job"]["duration_ms"].as_u64().is_some());

    let out = AgentCmd::posting_to(&rx.url())
        .args([
            "--report",
            "status",
            "run",
            "--",
            "sh",
            "-c",
            "kill -TERM $$",
        ])
        .finish();
    assert_eq!(out.code(), Some(128 + 15));
    let body = body_of(&rx.requests()[1]);
    assert_valid(&body);
    assert_eq!(body["job"]["exit_code"], Value::Null);
    assert_eq!(body["job"]["signal"], 15);

    let out = AgentCmd::posting_to(&rx.url())
        .args(["--report", "status", "run", "--", "true"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let body = body_of(&rx.requests()[2]);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["job"]["tail"], "");
}

#[test]
fn run_with_report_streams_output_forwards_signals_and_does_not_wait_for_daemons() {
    let rx = Receiver::start(|_| ok_json());
    // Output reaches the wrapper's stderr while the job runs, not at its end.
    let job = "trap 'echo got TERM >&2; exit 7' TERM; echo ready >&2; sleep 20 & wait";
    let mut running = AgentCmd::posting_to(&rx.url())
        .args(["--report", "status", "run", "--", "sh", "-c", job])
        .spawn();
    running.wait_for_line("ready", WAIT);
    let status = running.stop_with(SIGTERM);
    assert_eq!(status.code(), Some(7), "{:?}", running.log());
    let body = body_of(&rx.wait_for(1, WAIT)[0]);
    assert_eq!(body["job"]["exit_code"], 7);
    assert!(
        body["job"]["tail"]
            .as_str()
            .unwrap()
            .ends_with("ready\ngot TERM\n"),
        "{body}"
    );

    // A daemon the job leaves behind keeps the pipes open; the wrapper
    // ends with the job all the same (its relay carries the daemon's
    // output on, so whoever reads the wrapper's output to its end waits
    // for the daemon, as under plain `run`: not read here).
    let marker = format!("sleep 2{}.25", std::process::id() % 1000);
    let started = Instant::now();
    let mut daemon_left = AgentCmd::posting_to(&rx.url())
        .args(["--report", "status", "run", "--", "sh", "-c"])
        .args([format!("{marker} & echo started")])
        .spawn();
    let status = daemon_left.wait_exit(WAIT).expect("the wrapper ends");
    assert_eq!(status.code(), Some(0), "{:?}", daemon_left.log());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(body_of(&rx.requests()[1])["job"]["tail"], "started\n");
    // The wrapper leaves it be, as cron would; the test cleans up.
    for pid in pids_with(&marker) {
        send_signal(pid, SIGKILL);
    }
}
