//! The agent against servers that misbehave in the ways real ones do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

fn agent(url: &str, interval: &str) -> AgentCmd {
    AgentCmd::posting_to(url).args(["--interval", interval, "--no-splay"])
}

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn server_down_at_start_then_up() {
    let port = free_port();
    let mut running = agent(&format!("http://127.0.0.1:{port}"), "1").spawn();
    running.wait_for_line("connection refused", WAIT);
    thread::sleep(Duration::from_millis(1500));

    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let rx = Receiver::on(listener, None, |_| ok_json());
    rx.wait_for(3, WAIT);
    let line = running.wait_for_line("delivered again", WAIT);
    assert_contains!(line, "down for");
    assert_contains!(line, "beat(s) missed");
    assert!(running.is_running());
}

#[test]
fn retries_back_off_with_jitter_then_the_schedule_resumes() {
    // Two 503s, then success: retries ~1 s and ~2 s after (each +-50 %),
    // then the next beat on the slot grid (every 6 s from start, no splay).
    let rx = Receiver::start(|n| if n < 2 { status(503) } else { ok_json() });
    let started = Instant::now();
    let running = agent(&rx.url(), "6").args(["-v"]).spawn();
    let reqs = rx.wait_for(4, WAIT);
    let g = gaps(&reqs);
    assert!(
        (0.45..=1.7).contains(&g[0]),
        "first retry after {:.2}s",
        g[0]
    );
    assert!(
        (0.95..=3.2).contains(&g[1]),
        "second retry after {:.2}s",
        g[1]
    );
    let since_start = (reqs[3].at - started).as_secs_f64();
    assert!(
        (5.9..=6.6).contains(&since_start),
        "next beat at {since_start:.2}s, slot is 6s"
    );
    // An interruption the retries mend within the slot is not an outage
    // that matters: debug lines only, and no warning.
    running.wait_for_line("delivered again to", WAIT);
    let log = running.log();
    let loud: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(loud.is_empty(), "{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.contains("HTTP 503")).count(),
        2,
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("after a short interruption")),
        "{log:#?}"
    );
}

#[test]
fn retry_after_is_honoured() {
    let rx = Receiver::start(|n| {
        if n == 0 {
            Reply::Status(
                429,
                vec![("Retry-After", "2".into())],
                b"slow down".to_vec(),
            )
        } else {
            ok_json()
        }
    });
    let _running = agent(&rx.url(), "10").spawn();
    let reqs = rx.wait_for(2, WAIT);
    let gap = gaps(&reqs)[0];
    assert!(
        (2.0..=3.0).contains(&gap),
        "retried after {gap:.2}s, server asked for 2s"
    );
}

#[test]
fn a_404_is_not_retried_before_the_next_slot() {
    let rx = Receiver::start(|_| status(404));
    let running = agent(&rx.url(), "3").spawn();
    let line = running.wait_for_line("HTTP 404", WAIT);
    let posted = format!("for POST {}/api/heartbeat/", rx.url());
    assert_contains!(line, &posted);
    assert_contains!(line, "check server_id and api_url");
    assert_contains!(line, "next beat in");
    let reqs = rx.wait_for(2, WAIT);
    let gap = gaps(&reqs)[0];
    assert!(
        gap >= 2.8,
        "second request {gap:.2}s after the first; expected the next slot"
    );
}

#[test]
fn a_server_that_never_answers_times_out_and_the_schedule_continues() {
    let rx = Receiver::start(|_| Reply::Hang);
    let started = Instant::now();
    let running = agent(&rx.url(), "2").args(["--timeout", "0.5"]).spawn();
    let line = running.wait_for_line("no answer from", WAIT);
    assert_contains!(line, "within 500ms");
    // Beats keep coming: the first retry, then slots at 2 s and 4 s.
    let reqs = rx.wait_for(4, WAIT);
    assert!(started.elapsed() < Duration::from_secs(7));
    let last = (reqs.last().unwrap().at - started).as_secs_f64();
    assert!(last < 6.5, "fourth attempt at {last:.2}s");
}

#[test]
fn broken_replies_never_crash_the_agent() {
    let big = vec![b'x'; 5 * 1024 * 1024];
    let rx = Receiver::start(move |n| match n % 4 {
        0 => Reply::ResetMidResponse,
        1 => Reply::Raw(b"this is not HTTP at all\r\n\r\n".to_vec()),
        2 => Reply::Status(200, vec![], b"<html>\x00\xff garbage {{{".to_vec()),
        _ => Reply::Status(200, vec![], big.clone()),
    });
    // -v: every failure's classification is a debug line after the first.
    let mut running = agent(&rx.url(), "0.4").args(["-v"]).spawn();
    rx.wait_for(12, WAIT);
    assert!(running.is_running(), "log:\n{}", running.log().join("\n"));
    let log = running.log().join("\n");
    assert!(
        log.contains("connection reset") || log.contains("closed the connection"),
        "{log}"
    );
    assert_contains!(log, "did not answer in HTTP");
    // Only the first 4 KiB of a reply is read: 5 MB bodies leave no mark.
    let peak_kb = running.proc_status("VmHWM");
    assert!(
        peak_kb < 12 * 1024,
        "peak RSS {peak_kb} kB after 5 MB replies"
    );
}

#[test]
fn the_token_is_sent_and_never_logged() {
    let rx = Receiver::start(|n| if n == 0 { status(401) } else { ok_json() });
    let dir = TempDir::new();
    let token_file = dir.write("token", "s3cret-token-value\n");
    // -vv logs HTTP internals too: the token must not appear even there.
    let running = agent(&rx.url(), "1")
        .args(["-vv", "--token-file"])
        .args([&token_file])
        .spawn();
    let reqs = rx.wait_for(2, WAIT);
    assert_eq!(
        reqs[0].header("authorization"),
        Some("Bearer s3cret-token-value")
    );
    running.wait_for_line("did not accept the token", WAIT);
    thread::sleep(Duration::from_millis(300));
    let log = running.log();
    assert!(log.len() > 5, "expected a verbose log");
    assert!(
        log.iter().all(|l| !l.contains("s3cret")),
        "token leaked:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter()
            .any(|l| l.contains("token from flag --token-file"))
    );
}

#[test]
fn env_token_is_sent_as_bearer() {
    let rx = Receiver::start(|_| ok_json());
    let _running = agent(&rx.url(), "30")
        .env("STACKSENSE_TOKEN", "abc.def")
        .spawn();
    assert_eq!(
        rx.wait_for(1, WAIT)[0].header("authorization"),
        Some("Bearer abc.def")
    );
}

#[test]
fn sigterm_during_a_backoff_stops_promptly() {
    let port = free_port();
    let mut running = agent(&format!("http://127.0.0.1:{port}"), "60")
        .args(["-v"])
        .spawn();
    running.wait_for_line("retry 1 in", WAIT);
    assert_eq!(running.stop_with(SIGTERM).code(), Some(0));
    running.wait_for_line("SIGTERM received, stopping", Duration::from_secs(1));
}

#[test]
fn sigint_during_a_hung_request_stops_promptly() {
    let rx = Receiver::start(|_| Reply::Hang);
    let mut running = agent(&rx.url(), "60").args(["--timeout", "30"]).spawn();
    rx.wait_for(1, WAIT);
    running.stop_with(SIGINT);
}

#[test]
fn a_stopped_agent_skips_missed_slots_instead_of_bunching_them() {
    let rx = Receiver::start(|_| ok_json());
    let running = agent(&rx.url(), "1").spawn();
    rx.wait_for(2, WAIT);
    running.signal(SIGSTOP);
    thread::sleep(Duration::from_millis(3500));
    let before = rx.requests().len();
    running.signal(SIGCONT);
    let line = running.wait_for_line("beat(s) skipped, not sent late", WAIT);
    assert!(
        line.contains("3 beat(s)") || line.contains("2 beat(s)"),
        "{line}"
    );
    let after = rx.wait_for(before + 1, WAIT);
    let first = after[before].at;
    thread::sleep(Duration::from_millis(400));
    let burst = rx
        .requests()
        .iter()
        .filter(|r| r.at >= first && r.at < first + Duration::from_millis(300))
        .count();
    assert_eq!(burst, 1, "beats bunched after SIGCONT");
}

#[test]
fn logs_are_quiet_while_all_is_well() {
    let rx = Receiver::start(|_| ok_json());
    let running = agent(&rx.url(), "0.2").spawn();
    rx.wait_for(10, WAIT);
    let log = running.log();
    assert_eq!(
        log.len(),
        2,
        "expected start + first success only:\n{}",
        log.join("\n")
    );
    assert!(log[0].contains("INFO") && log[0].contains("starting: legacy API, POST"));
    assert!(log[1].contains("first heartbeat accepted"));
}

#[test]
fn schedule_does_not_drift_when_requests_are_slow() {
    // Each reply takes 300 ms; at a 1 s interval the beats still start on
    // whole seconds from the start, not 1.3 s apart.
    let slow = Arc::new(AtomicBool::new(true));
    let flag = slow.clone();
    let rx = Receiver::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(300));
        }
        ok_json()
    });
    let _running = agent(&rx.url(), "1").spawn();
    let reqs = rx.wait_for(6, WAIT);
    let first = reqs[0].at;
    for (k, r) in reqs.iter().enumerate() {
        let offset = (r.at - first).as_secs_f64() - k as f64;
        assert!(
            offset.abs() < 0.15,
            "beat {k} is {offset:+.3}s off its slot"
        );
    }
}

#[test]
fn under_nohup_sighup_is_ignored_and_the_log_goes_to_the_redirect() {
    let rx = Receiver::start(|_| ok_json());
    let dir = TempDir::new();
    let log_path = dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // As the README says: nohup stacksense-heartbeat ... >log 2>&1 &
    let mut cmd = std::process::Command::new("nohup");
    cmd.arg(BIN.unwrap())
        .args([
            "--server-id",
            "7",
            "--api-url",
            &rx.url(),
            "--interval",
            "0.5",
        ])
        .env_clear()
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut child = ChildGuard::spawn(&mut cmd);
    rx.wait_for(2, WAIT);
    // The terminal closing sends SIGHUP.
    send_signal(child.id(), SIGHUP);
    let before = rx.requests().len();
    thread::sleep(Duration::from_millis(1500));
    assert!(child.is_running(), "the agent died of SIGHUP under nohup");
    assert!(
        rx.requests().len() >= before + 2,
        "beats stopped after SIGHUP"
    );
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert_contains!(text, "starting: legacy API, POST");
    assert_contains!(text, "first heartbeat accepted");
}

#[test]
fn sigint_stops_once_mode_with_exit_1() {
    let rx = Receiver::start(|_| Reply::Hang);
    let mut running = agent(&rx.url(), "30")
        .args(["--once", "--timeout", "20"])
        .spawn();
    rx.wait_for(1, WAIT);
    assert_eq!(
        running.stop_with(SIGINT).code(),
        Some(1),
        "an interrupted --once did not deliver its beat"
    );
}

#[test]
fn a_reply_saying_not_received_is_a_warning() {
    let rx = Receiver::start(|_| {
        Reply::Status(
            200,
            vec![],
            br#"{"status":"ok","heartbeat_received":false}"#.to_vec(),
        )
    });
    let running = agent(&rx.url(), "30").spawn();
    let line = running.wait_for_line("heartbeat_received=false", WAIT);
    assert_contains!(line, "WARN");
    assert_contains!(line, "did not record the beat");
}
