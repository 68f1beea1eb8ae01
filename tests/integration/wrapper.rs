//! `run -- CMD`, the job wrapper: the real binary around real jobs (sh),
//! against a receiver on 127.0.0.1.

use std::time::Duration;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

fn wrapping(url: &str, job: &str) -> AgentCmd {
    AgentCmd::posting_to(url).args(["--interval", "1", "run", "--", "sh", "-c", job])
}

#[test]
fn a_successful_job_passes_its_output_through_and_sends_one_beat() {
    let rx = Receiver::start(|_| ok_json());
    // `yes | head` also shows SIGPIPE is back to its default in the job
    // (ignored, `yes` would complain of a broken pipe on stderr).
    let job = "echo to-stdout; yes | head -n 1; echo to-stderr >&2; exit 0";
    let out = wrapping(&rx.url(), job).finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "to-stdout\ny\n");
    assert_eq!(
        out.stderr, "to-stderr\n",
        "the wrapper adds nothing on success"
    );
    let beats = rx.requests();
    assert_eq!(beats.len(), 1);
    assert_eq!(beats[0].path, "/api/heartbeat/7/");
    // The same request --once sends.
    let body = format!(r#"{{"agent_version":"{}"}}"#, env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&beats[0].body), body);
}

#[test]
fn a_failed_job_sends_no_beat_and_exits_with_its_status() {
    let rx = Receiver::start(|_| ok_json());
    let out = wrapping(&rx.url(), "echo partial; exit 3").finish();
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.stdout, "partial\n");
    assert_contains!(
        out.stderr,
        "the job failed with exit status 3; no heartbeat sent"
    );
    assert_eq!(rx.requests().len(), 0);

    let out = wrapping(&rx.url(), "kill -KILL $$").finish();
    assert_eq!(out.code(), Some(128 + 9), "{}", out.stderr);
    assert_contains!(out.stderr, "ended by signal 9");
    assert_eq!(rx.requests().len(), 0);
}

#[test]
fn signals_reach_the_job_and_its_children_and_the_wrapper_ends_with_it() {
    for (signal, name) in [(SIGTERM, "TERM"), (SIGINT, "INT"), (SIGHUP, "HUP")] {
        let rx = Receiver::start(|_| ok_json());
        let dir = TempDir::new();
        let pid_file = dir.path().join("child.pid");
        // The job starts a grandchild (sleep), says it is ready, and on the
        // signal exits 7; the grandchild must not outlive it.
        let job = format!(
            "trap 'echo job got {name} >&2; exit 7' {name}; sleep 20 & echo $! > {}; \
             echo ready >&2; wait",
            pid_file.display()
        );
        let mut running = wrapping(&rx.url(), &job).spawn();
        running.wait_for_line("ready", WAIT);
        let status = running.stop_with(signal);
        assert_eq!(status.code(), Some(7), "{name}: {:?}", running.log());
        running.wait_for_line(&format!("job got {name}"), WAIT);
        assert_eq!(
            rx.requests().len(),
            0,
            "{name}: a stopped job is not a beat"
        );
        if signal == SIGINT {
            // sh starts a background command with SIGINT ignored (POSIX),
            // so only the job itself takes this one.
            continue;
        }
        let grandchild = std::fs::read_to_string(&pid_file).unwrap();
        let gone = || !std::path::Path::new(&format!("/proc/{}", grandchild.trim())).exists();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !gone() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(), "{name}: the job's child {grandchild} outlived it");
        assert_eq!(
            rx.requests().len(),
            0,
            "{name}: a stopped job is not a beat"
        );
    }
}

#[test]
fn a_success_whose_beat_cannot_be_delivered_exits_75() {
    let rx = Receiver::start(|_| status(503));
    let out = wrapping(&rx.url(), "exit 0").finish();
    assert_eq!(out.code(), Some(75), "{}", out.stderr);
    assert_contains!(out.stderr, "HTTP 503");
    assert_contains!(
        out.stderr,
        "the job succeeded but its heartbeat was not delivered"
    );
}

#[test]
fn a_bad_config_stops_before_the_job_runs() {
    let dir = TempDir::new();
    let marker = dir.path().join("ran");
    let out = AgentCmd::new()
        .args([
            "--server-id",
            "a b",
            "--api-url",
            "http://127.0.0.1:9",
            "run",
            "--",
        ])
        .args(["touch"])
        .arg_path(&marker)
        .finish();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_contains!(out.stderr, "server_id (from flag --server-id)");
    assert!(!marker.exists(), "the job ran despite the bad config");
}

#[test]
fn a_job_that_cannot_be_run_gets_the_shells_status() {
    let rx = Receiver::start(|_| ok_json());
    let out = AgentCmd::posting_to(&rx.url())
        .args(["run", "--", "/nonexistent/backup.sh"])
        .finish();
    assert_eq!(out.code(), Some(127), "{}", out.stderr);
    assert_contains!(
        out.stderr,
        "cannot run /nonexistent/backup.sh: No such file or directory"
    );
    assert_eq!(rx.requests().len(), 0);
    let out = AgentCmd::new().args(["run"]).finish();
    assert_eq!(out.code(), Some(2));
    assert_contains!(out.stderr, "run needs a command");
}

/// Everything the job wrote reaches stdout and the tail, however slowly
/// our stdout is read: the job's last words (usually its error) were lost
/// when the wrapper stopped reading at the job's exit.
#[test]
fn run_with_report_status_passes_everything_through_to_a_slow_reader() {
    let rx = Receiver::start(|_| ok_json());
    let home = TempDir::new();
    let script = r#""$0" --server-id 7 --api-url "$1" --report status run -- \
        sh -c 'head -c 100000 /dev/zero; echo END' | (sleep 1; wc -c)"#;
    let mut cmd = std::process::Command::new("sh");
    cmd.env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .args(["-c", script, BIN.unwrap(), &rx.url()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = ChildGuard::spawn(&mut cmd);
    let status = child.wait_within(WAIT).expect("the pipeline ends");
    assert!(status.success());
    // Whatever of its group is left cannot hold the pipe open for the read.
    child.kill();
    let mut counted = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut counted).unwrap();
    assert_eq!(counted.trim(), "100004");
    let body: serde_json::Value = serde_json::from_slice(&rx.requests()[0].body).unwrap();
    let tail = body["job"]["tail"].as_str().unwrap();
    assert!(tail.ends_with("END\n"), "{tail:?}");
}

/// A job that stops itself is said, and a SIGTERM still ends it: the
/// wrapper follows the forwarded signal with SIGCONT.
#[test]
fn a_stopped_job_is_noticed_and_sigterm_still_ends_it() {
    let rx = Receiver::start(|_| ok_json());
    let mut agent = wrapping(&rx.url(), "kill -STOP $$; sleep 60").spawn();
    agent.wait_for_line("the job was stopped by signal 19", WAIT);
    agent.signal(SIGTERM);
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .expect("the wrapper ends");
    assert_eq!(status.code(), Some(128 + SIGTERM), "{:?}", agent.log());
}

/// From a terminal, the job gets the terminal: a job that reads stdin
/// reads it instead of stopping with SIGTTIN (and hanging the wrapper).
#[test]
fn run_from_a_terminal_gives_the_job_the_terminal() {
    let rx = Receiver::start(|_| ok_json());
    let home = TempDir::new();
    // `script` runs the wrapper on a pseudo-terminal, its stdin fed by us.
    let inner = format!(
        "{} --server-id 7 --api-url {} run -- sh -c 'read x; echo got:$x'",
        BIN.unwrap(),
        rx.url()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = ChildGuard::spawn(&mut cmd);
    {
        use std::io::Write;
        let mut stdin = child.0.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
        // Kept open until the job has read it; script ends with the job.
        std::thread::sleep(Duration::from_millis(500));
        drop(stdin);
    }
    let status = child
        .wait_within(WAIT)
        .expect("the job read its line and ended");
    child.kill();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut out).unwrap();
    assert!(out.contains("got:hello"), "{out:?}");
    assert!(status.success(), "{status:?}: {out}");
    assert_eq!(rx.requests().len(), 1);
}

/// With `--report status` the job's output goes through the wrapper's
/// pipes; what the job leaves running keeps writing after the wrapper
/// exits (as under plain `run`), and the job's end is noticed when it
/// comes, not at the next second.
#[test]
fn run_with_report_status_leaves_what_the_job_started_running_and_writing() {
    let rx = Receiver::start(|_| ok_json());
    let dir = TempDir::new();
    let marker = dir.path().join("M");
    let job = format!(
        "(sleep 0.6; echo hi; sleep 0.4; echo again; touch {}) & exit 0",
        marker.display()
    );
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--interval", "1", "--report", "status"])
        .args(["run", "--", "sh", "-c", &job])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // finish() reads stdout to its end: the background's lines are there.
    assert_contains!(out.stdout, "hi\nagain\n");
    let deadline = std::time::Instant::now() + WAIT;
    while !marker.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(marker.exists(), "the job's background process was killed");
    let body: serde_json::Value = serde_json::from_slice(&rx.requests()[0].body).unwrap();
    let took = body["job"]["duration_ms"].as_u64().unwrap();
    // `exit 0` at once; the old poll noticed it a whole second later.
    assert!(took < 700, "the job's end noticed after {took} ms");
}

/// A wrapper killed outright (`timeout -k`, the OOM killer) cannot forward
/// anything: its job, in a process group of its own, must not run on
/// unwatched. Its guard ends the group: SIGTERM, then SIGKILL.
#[test]
fn a_killed_wrapper_does_not_leave_its_job_running() {
    let rx = Receiver::start(|_| ok_json());
    let dir = TempDir::new();
    let pids = dir.path().join("pids");
    let job = format!(
        "trap '' TERM; sleep 60 & echo $$ $! > {}; wait",
        pids.display()
    );
    let mut running = wrapping(&rx.url(), &job).spawn();
    let deadline = std::time::Instant::now() + WAIT;
    let mut written = String::new();
    while written.split_whitespace().count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        written = std::fs::read_to_string(&pids).unwrap_or_default();
    }
    let job_pids: Vec<String> = written.split_whitespace().map(String::from).collect();
    assert_eq!(job_pids.len(), 2, "{written:?}");
    // The wrapper alone is killed, as `kill -9 PID` or the OOM killer would.
    send_signal(running.pid(), libc::SIGKILL);
    running.wait_exit(WAIT).expect("the wrapper is gone");
    let alive = |pid: &String| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    };
    let deadline = std::time::Instant::now() + WAIT;
    while job_pids.iter().any(alive) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !job_pids.iter().any(alive),
        "the job ({}) outlived its killed wrapper",
        job_pids.join(", ")
    );
}
