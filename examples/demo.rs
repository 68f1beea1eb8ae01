//! See it run: `cargo run --example demo`.
//!
//! Builds the agent, starts a receiver on 127.0.0.1, runs the agent at a
//! 2 s interval for a dozen seconds and prints both sides as they happen.
//! The receiver answers 503 to requests 4 to 6, so you also see a failure,
//! the retries and the recovery in the log.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{AgentCmd, Receiver, SIGTERM, Serve, bind, build_agent, ok_json, status};

fn main() {
    println!("demo: building the agent (cargo build; the first time takes a minute)");
    let binary = build_agent(false);
    let started = Instant::now();
    let how = Serve {
        on_request: Some(Arc::new(move |r, code| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "receiver: +{:6.3}s {} {} {} -> {code}",
                (r.at - started).as_secs_f64(),
                r.method,
                r.path,
                String::from_utf8_lossy(&r.body)
            );
        })),
        ..Serve::default()
    };
    let rx = Receiver::serving(bind(), None, how, |n| {
        if (3..6).contains(&n) {
            status(503)
        } else {
            ok_json()
        }
    });
    println!(
        "receiver: listening on {} (requests 4-6 get a 503)",
        rx.url()
    );

    let mut agent = AgentCmd::with_binary(&binary)
        .args([
            "--server-id",
            "demo-1",
            "--api-url",
            &rx.url(),
            "--interval",
            "2",
        ])
        .echo_log()
        .spawn();
    thread::sleep(Duration::from_secs(12).saturating_sub(started.elapsed()));
    agent.signal(SIGTERM);
    let exit = match agent.wait_exit(Duration::from_secs(2)).map(|s| s.code()) {
        Some(Some(code)) => format!("exit status {code}"),
        Some(None) => "killed by a signal".into(),
        None => "still running after 2 s (killed)".into(),
    };
    println!(
        "demo: {} requests received in 12 s; agent stopped by SIGTERM: {exit}",
        rx.requests().len()
    );
}
