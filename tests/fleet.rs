//! Fleet behaviour: agents started together do not beat together, and a
//! long run of failures leaks nothing.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(15);

/// Start times of each agent's beats after its first, as seconds since `t0`.
fn later_beats(rx: &Receiver, agents: usize, t0: Instant) -> Vec<Vec<f64>> {
    (0..agents)
        .map(|i| {
            rx.requests()
                .iter()
                .filter(|r| r.path == format!("/api/heartbeat/a{i}/"))
                .skip(1)
                .map(|r| (r.at - t0).as_secs_f64())
                .collect()
        })
        .collect()
}

fn start_fleet(rx: &Receiver, agents: usize, extra: &[&str]) -> (Vec<Running>, Instant) {
    let t0 = Instant::now();
    let fleet = (0..agents)
        .map(|i| {
            AgentCmd::new()
                .args([
                    "--server-id",
                    &format!("a{i}"),
                    "--api-url",
                    &rx.url(),
                    "--interval",
                    "1",
                ])
                .args(extra)
                .spawn()
        })
        .collect();
    (fleet, t0)
}

fn spread(values: &[f64]) -> f64 {
    let max = values.iter().cloned().fold(f64::MIN, f64::max);
    let min = values.iter().cloned().fold(f64::MAX, f64::min);
    max - min
}

#[test]
fn agents_started_together_spread_their_beats_over_the_interval() {
    const AGENTS: usize = 8;
    let rx = Receiver::start(|_| ok_json());
    let (_fleet, t0) = start_fleet(&rx, AGENTS, &[]);
    rx.wait_for(AGENTS * 4, WAIT);
    let beats = later_beats(&rx, AGENTS, t0);
    // Each agent's own beats stay on its grid: one interval apart.
    for b in &beats {
        for w in b.windows(2) {
            assert!((w[1] - w[0] - 1.0).abs() < 0.15, "agent drifted: {b:?}");
        }
    }
    // Across agents, the phase (beat time modulo the interval) is spread.
    // Eight uniform phases all inside 0.25 s happens with p < 0.001.
    let seconds: Vec<f64> = beats.iter().map(|b| b[0]).collect();
    assert!(spread(&seconds) > 0.25, "second beats bunched: {seconds:?}");

    // Without splay they do beat in lockstep, which is what splay is for.
    let rx = Receiver::start(|_| ok_json());
    let (_fleet, t0) = start_fleet(&rx, AGENTS, &["--no-splay"]);
    rx.wait_for(AGENTS * 3, WAIT);
    let seconds: Vec<f64> = later_beats(&rx, AGENTS, t0).iter().map(|b| b[0]).collect();
    assert!(
        spread(&seconds) < 0.25,
        "--no-splay beats not together: {seconds:?}"
    );
}

#[test]
fn failing_beats_leak_no_fds_threads_or_memory() {
    // Every way a beat can fail, in turn, at 5 beats a second.
    let rx = Receiver::start(|n| match n % 5 {
        0 => status(503),
        1 => Reply::ResetMidResponse,
        2 => Reply::Hang,
        3 => Reply::Raw(b"garbage\r\n\r\n".to_vec()),
        _ => status(404),
    });
    let running = AgentCmd::new()
        .args([
            "--server-id",
            "7",
            "--api-url",
            &rx.url(),
            "--interval",
            "0.2",
            "--timeout",
            "0.15",
        ])
        .spawn();
    rx.wait_for(10, WAIT);
    let sample = |r: &Running| {
        (
            r.open_fds(),
            r.proc_status("Threads"),
            r.proc_status("VmRSS"),
        )
    };
    let (fds0, threads0, rss0) = sample(&running);
    let start = rx.requests().len();
    thread::sleep(Duration::from_secs(8));
    let (fds1, threads1, rss1) = sample(&running);
    let beats = rx.requests().len() - start;
    assert!(beats >= 30, "only {beats} attempts in 8 s");
    // One socket may be open mid-attempt at either sample.
    assert!(
        fds1 <= fds0 + 1,
        "fds grew from {fds0} to {fds1} over {beats} failing beats"
    );
    assert_eq!(
        threads1, threads0,
        "threads grew over {beats} failing beats"
    );
    assert!(
        rss1 <= rss0 + 512,
        "RSS grew from {rss0} kB to {rss1} kB over {beats} failing beats"
    );
}
