//! Connection reuse and TLS session resumption against real sockets: kept
//! connections carry the beats, and a connection that dies while idle costs
//! neither a WARN line nor a missed beat.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

fn keep(announce: Option<u64>) -> Serve {
    Serve {
        keep_alive: true,
        announce,
        ..Serve::default()
    }
}

/// Keeps connections, answers the first request at once and every later
/// one after `secs`: a server that turns slow.
fn slow_after_the_first(secs: f64) -> Serve {
    Serve {
        answer_after: Some(Arc::new(move |n| {
            Duration::from_secs_f64(if n == 0 { 0.0 } else { secs })
        })),
        ..keep(None)
    }
}

fn beating(url: &str, interval: &str) -> AgentCmd {
    AgentCmd::posting_to(url).args(["--interval", interval, "--no-splay"])
}

fn warnings(agent: &Running) -> Vec<String> {
    agent
        .log()
        .into_iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect()
}

#[test]
fn a_server_that_keeps_connections_gets_every_beat_over_one() {
    // A second apart: a reply slower than the slot (a busy machine, at a
    // 0.1 s interval) is a failed beat, and the next one rightly opens a
    // new connection.
    let rx = Receiver::serving(bind(), None, keep(None), |_| ok_json());
    let agent = beating(&rx.url(), "1").spawn();
    rx.wait_for(6, WAIT);
    assert_eq!(rx.connections(), 1, "beats did not share a connection");
    assert!(warnings(&agent).is_empty(), "{:?}", agent.log());

    // --no-keepalive: a connection per beat, as before.
    let rx = Receiver::serving(bind(), None, keep(None), |_| ok_json());
    let _agent = beating(&rx.url(), "0.1").args(["--no-keepalive"]).spawn();
    let n = rx.wait_for(10, WAIT).len();
    assert!(
        rx.connections() >= n,
        "{} connections for {n} beats",
        rx.connections()
    );
}

#[test]
fn a_server_that_closes_after_each_reply_costs_nothing_extra() {
    let rx = Receiver::start(|_| ok_json()); // answers with Connection: close
    let agent = beating(&rx.url(), "0.1").spawn();
    let n = rx.wait_for(20, WAIT).len();
    // One connection per beat and no second request for any beat.
    let connections = rx.connections();
    assert!(
        (n..=n + 1).contains(&connections),
        "{connections} connections for {n} beats"
    );
    assert!(warnings(&agent).is_empty(), "{:?}", agent.log());
}

#[test]
fn an_announced_idle_time_shorter_than_the_interval_means_a_new_connection() {
    // Keep-Alive: timeout=1 at a 1.5 s interval: reuse would meet a closed
    // connection, so the agent does not try.
    let rx = Receiver::serving(bind(), None, keep(Some(1)), |_| ok_json());
    let agent = beating(&rx.url(), "1.5").args(["-v"]).spawn();
    let n = rx.wait_for(3, WAIT).len();
    assert_eq!(rx.connections(), n);
    assert!(
        agent.log().iter().all(|l| !l.contains("was dead")),
        "{:?}",
        agent.log()
    );
}

#[test]
fn idle_connections_closed_at_random_moments_cost_no_warning_and_no_beat() {
    // The server closes each idle connection after a random 0-0.25 s: often
    // well before the next beat, sometimes right before or as it is sent.
    let how = Serve {
        keep_alive: true,
        announce: None,
        idle_close: Some(Arc::new(|| Duration::from_millis(fastrand::u64(0..250)))),
        ..Serve::default()
    };
    let rx = Receiver::serving(bind(), None, how, |_| ok_json());
    let started = Instant::now();
    let agent = beating(&rx.url(), "0.1").args(["-v"]).spawn();
    let reqs = rx.wait_for(200, WAIT);
    let elapsed = started.elapsed().as_secs_f64();
    assert!(warnings(&agent).is_empty(), "{:#?}", warnings(&agent));
    // Every slot got its beat: 200 beats in about 200 intervals.
    assert!(elapsed < 200.0 * 0.1 + 3.0, "200 beats took {elapsed:.1}s");
    let distinct = reqs.len();
    assert!(distinct >= 200);
    let fallbacks = agent
        .log()
        .iter()
        .filter(|l| l.contains("was dead"))
        .count();
    eprintln!(
        "{distinct} beats over {} connections, {fallbacks} fallbacks to a new connection",
        rx.connections()
    );
    assert!(rx.connections() > 10, "the server did close connections");
}

#[test]
fn a_connection_closed_as_the_beat_arrives_is_replaced_at_once() {
    // The server reads the second beat on the kept connection and closes it
    // unanswered: what a server closing an idle connection in the very
    // instant the beat is sent looks like from here.
    let rx = Receiver::serving(bind(), None, keep(None), |n| match n {
        1 => Reply::Raw(Vec::new()),
        _ => ok_json(),
    });
    let agent = beating(&rx.url(), "1").args(["-v"]).spawn();
    rx.wait_for(3, WAIT);
    assert_eq!(rx.connections(), 2);
    // The replacement went out at once as part of the same beat, not as a
    // retry after a failure: told by what the agent says, not by a time
    // window a busy machine could miss.
    agent.wait_for_line("was dead", WAIT);
    let log = agent.log();
    assert!(
        !log.iter()
            .any(|l| l.contains("heartbeat failed") || l.contains("retry")),
        "{log:#?}"
    );
    assert!(warnings(&agent).is_empty(), "{log:#?}");
}

#[test]
fn a_silently_dropped_connection_is_replaced_within_the_short_deadline() {
    let rx = Receiver::serving(bind(), None, keep(None), |_| ok_json());
    let relay = Relay::start(rx.addr);
    let agent = beating(&relay.url("http"), "3").args(["-v"]).spawn();
    // The first reply has reached the agent (not only the request the
    // receiver): a blackhole any sooner swallows that reply instead, and
    // the beat after it goes out on a connection that was never dropped.
    agent.wait_for_line("first heartbeat accepted", WAIT);
    // The NAT forgets the idle connection: no RST, the next write vanishes.
    relay.blackhole_existing();
    let before = rx.requests().len();
    let reqs = rx.wait_for(before + 1, WAIT);
    let gap = (reqs[before].at - reqs[before - 1].at).as_secs_f64();
    // Due 3 s after the first beat; the first-byte deadline is 1.5 s.
    assert!(
        (3.0..3.0 + 1.5 + 0.5).contains(&gap),
        "next beat {gap:.2}s after the first"
    );
    assert_eq!(relay.connections(), 2);
    assert!(warnings(&agent).is_empty(), "{:#?}", agent.log());
    let line = agent.wait_for_line("was dead", WAIT);
    assert_contains!(line, "not acknowledged");
}

#[test]
fn a_kept_connection_whose_server_turns_slow_gets_each_beat_once() {
    // The server answered at once, then takes 2 s: past the first-byte
    // deadline of a kept connection (1.5 s). Its TCP acknowledged each
    // beat, so the agent waits for the answer instead of sending the beat
    // again on a new connection (v0.1: 6 POSTs for 5 beats).
    let rx = Receiver::serving(bind(), None, slow_after_the_first(2.0), |_| ok_json());
    let agent = beating(&rx.url(), "3").args(["-v"]).spawn();
    // Five POSTs: four beats and the start of the fifth, or (v0.1) a
    // beat sent twice within them.
    let reqs = rx.wait_for(5, WAIT);
    assert_eq!(rx.connections(), 1, "a beat went out on a new connection");
    for pair in reqs.windows(2) {
        let gap = (pair[1].at - pair[0].at).as_secs_f64();
        assert!(gap > 2.0, "two POSTs {gap:.2}s apart at a 3 s interval");
    }
    agent.wait_for_line_count("acknowledged the beat", 3, WAIT);
    let log = agent.log();
    assert!(!log.iter().any(|l| l.contains("was dead")), "{log:#?}");
    assert!(warnings(&agent).is_empty(), "{log:#?}");
}

#[test]
fn a_beat_that_fails_after_a_dead_kept_connection_names_one_time_limit() {
    // At a 1 s interval each attempt is cut to the slot. The kept
    // connection is dead (half the slot is its first-byte deadline), and
    // the server is too slow on the new one: the line's two numbers are
    // the same slot (v0.1: "within 468ms (the attempt was cut to 999ms").
    let rx = Receiver::serving(bind(), None, slow_after_the_first(5.0), |_| ok_json());
    let relay = Relay::start(rx.addr);
    let agent = beating(&relay.url("http"), "1").args(["-v"]).spawn();
    agent.wait_for_line("first heartbeat accepted", WAIT);
    relay.blackhole_existing();
    agent.wait_for_line("was dead", WAIT);
    let line = agent.wait_for_line("heartbeat failed", WAIT);
    let number = |after: &str| {
        let at = line.find(after).map(|i| i + after.len());
        let rest = &line[at.unwrap_or_else(|| panic!("no {after:?} in {line}"))..];
        rest.split([' ', ')'])
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(number(" within "), number("cut to "), "{line}");
}

#[test]
fn tls_sessions_are_resumed_on_new_connections() {
    let tls = TlsFixture::new();
    let dir = TempDir::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    // Connection: close after each reply: every beat is a new TLS connection.
    let rx = Receiver::start_tls(&tls, |_| ok_json());
    let _agent = beating(&rx.url(), "0.1")
        .args(["--ca-file"])
        .arg_path(&ca)
        .spawn();
    rx.wait_for(20, WAIT);
    thread::sleep(Duration::from_millis(200));
    let (connections, resumed) = (rx.connections(), rx.resumed());
    assert!(connections >= 20);
    assert!(
        resumed >= connections - 2,
        "{resumed} of {connections} handshakes resumed"
    );
}

#[test]
fn tls_over_a_kept_connection_needs_no_new_handshake() {
    let tls = TlsFixture::new();
    let dir = TempDir::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    let rx = Receiver::serving(bind(), Some(tls.server_config()), keep(None), |_| ok_json());
    // A second apart, as in the plain-HTTP case: a reply slower than a
    // 0.1 s slot would rightly cost a new connection.
    let _agent = beating(&rx.url(), "1")
        .args(["--ca-file"])
        .arg_path(&ca)
        .spawn();
    rx.wait_for(6, WAIT);
    assert_eq!(rx.connections(), 1);
}

#[test]
fn an_absurd_keep_alive_timeout_is_capped_and_the_agent_keeps_beating() {
    // Any server, proxy or middlebox can send this; it once aborted the
    // agent right after a delivered beat.
    let rx = Receiver::serving(bind(), None, keep(Some(u64::MAX)), |_| ok_json());
    let out = AgentCmd::posting_to(&rx.url()).args(["--once"]).finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let agent = beating(&rx.url(), "1").spawn();
    rx.wait_for(5, WAIT);
    assert_eq!(
        rx.connections(),
        2,
        "the --once run, then one kept connection"
    );
    assert!(warnings(&agent).is_empty(), "{:?}", agent.log());
}
