//! See it run: `cargo run --example demo`.
//!
//! Builds the agent, starts a receiver on 127.0.0.1, runs the agent at a
//! 1 s interval for a dozen seconds and prints both sides. The receiver
//! answers 503 to beats 4 to 6, so you also see what a failure and the
//! recovery look like in the log.

#[path = "../tests/common/mod.rs"]
mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{AgentCmd, Receiver, SIGTERM, build_agent, ok_json, status};

fn main() {
    let binary = build_agent(false);
    let rx = Receiver::start(|n| {
        if (3..6).contains(&n) {
            status(503)
        } else {
            ok_json()
        }
    });
    println!("receiver: listening on {} (beats 4-6 get a 503)", rx.url());

    let mut agent = AgentCmd::with_binary(&binary)
        .args([
            "--server-id",
            "demo-1",
            "--api-url",
            &rx.url(),
            "--interval",
            "1",
        ])
        .echo_log()
        .spawn();
    let started = Instant::now();
    let mut shown = 0;
    while started.elapsed() < Duration::from_secs(12) {
        let requests = rx.requests();
        for r in &requests[shown..] {
            println!(
                "receiver: +{:6.3}s {} {} {}",
                (r.at - started).as_secs_f64(),
                r.method,
                r.path,
                String::from_utf8_lossy(&r.body)
            );
        }
        shown = requests.len();
        thread::sleep(Duration::from_millis(50));
    }
    agent.signal(SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(2));
    thread::sleep(Duration::from_millis(100));
    println!(
        "demo: {} beats received in 12 s; agent stopped by SIGTERM with {:?}",
        rx.requests().len(),
        status.and_then(|s| s.code())
    );
}
