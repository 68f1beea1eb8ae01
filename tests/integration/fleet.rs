//! Fleet behaviour: agents started together do not beat together, and a
//! long run of failures leaks nothing.

use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(15);

fn start_fleet(rx: &Receiver, agents: usize, extra: &[&str]) -> Vec<Running> {
    (0..agents)
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
        .collect()
}

/// The phase an agent drew, from its start-up line (`phase 0.4s`, `phase 350ms`).
fn phase_of(agent: &Running) -> f64 {
    let line = agent.wait_for_line("starting: legacy API, POST", WAIT);
    let word = line
        .split("phase ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("no phase in {line}"));
    match (word.strip_suffix("ms"), word.strip_suffix('s')) {
        (Some(ms), _) => ms.parse::<f64>().unwrap() / 1000.0,
        (None, Some(s)) => s.parse().unwrap(),
        _ => panic!("odd phase {word} in {line}"),
    }
}

/// Arrival times of agent `i`'s beats, once it has sent `n`.
fn beats_of(rx: &Receiver, i: usize, n: usize) -> Vec<Instant> {
    let path = format!("/api/heartbeat/a{i}/");
    let deadline = Instant::now() + WAIT;
    loop {
        let mine: Vec<Instant> = rx
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.at)
            .collect();
        if mine.len() >= n {
            return mine;
        }
        assert!(
            Instant::now() < deadline,
            "agent a{i} sent {} of {n} beats",
            mine.len()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn spread(values: &[f64]) -> f64 {
    let max = values.iter().cloned().fold(f64::MIN, f64::max);
    let min = values.iter().cloned().fold(f64::MAX, f64::min);
    max - min
}

// The timing of the splay (where slots fall, how a late wake-up is handled)
// is unit-tested in the agent and schedule modules against a fake clock.
// This test checks what only real processes show: each process draws its
// own phase, and its beats keep to its own grid.
#[test]
fn agents_started_together_draw_their_own_phases_and_keep_their_grids() {
    const AGENTS: usize = 8;
    let rx = Receiver::start(|_| ok_json());
    let fleet = start_fleet(&rx, AGENTS, &[]);
    let phases: Vec<f64> = fleet.iter().map(phase_of).collect();
    // Eight uniform phases all inside 0.25 s happens with p < 0.001.
    assert!(spread(&phases) > 0.25, "phases bunched: {phases:?}");
    for i in 0..AGENTS {
        let beats = beats_of(&rx, i, 4);
        // After beat zero, one interval apart (up to a loaded machine's jitter).
        for w in beats[1..].windows(2) {
            let gap = (w[1] - w[0]).as_secs_f64();
            assert!(
                (gap - 1.0).abs() < 0.3,
                "agent a{i} off its grid: gap {gap:.3}s"
            );
        }
    }

    // Without splay every process uses phase zero: a fleet in lockstep,
    // which is what splay is for.
    let rx = Receiver::start(|_| ok_json());
    let fleet = start_fleet(&rx, AGENTS, &["--no-splay"]);
    for agent in &fleet {
        let line = agent.wait_for_line("starting: legacy API, POST", WAIT);
        assert_contains!(line, "no splay");
    }
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
    let running = AgentCmd::posting_to(&rx.url())
        .args(["--interval", "0.2", "--timeout", "0.15"])
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
