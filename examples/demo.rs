//! See it run: `cargo run --example demo`.
//!
//! Builds the agent, starts a receiver on 127.0.0.1 that answers as a
//! StackSense server's agent API does, runs the agent at a 2 s interval for
//! a dozen seconds with a token, and prints both sides as they happen. The
//! receiver answers 503 to requests 4 to 6, so you also see a failure, the
//! retries and the recovery in the log.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{AgentCmd, Receiver, Reply, SIGTERM, Serve, bind, build_agent, status};

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
            Reply::Status(
                200,
                vec![("Content-Type", "application/json".into())],
                br#"{"status":"ok","heartbeat_received":true}"#.to_vec(),
            )
        }
    });
    println!(
        "receiver: listening on {} (requests 4-6 get a 503)",
        rx.url()
    );

    let mut agent = AgentCmd::with_binary(&binary)
        .env("STACKSENSE_URL", rx.url())
        .env("STACKSENSE_TOKEN", "demo-token-from-create_agent_token")
        .args(["--interval", "2"])
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
