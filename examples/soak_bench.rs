//! Does the agent's memory stay flat over a long run? The release binary
//! with every kind of health check (tcp, http, https, cmd, disk, memory,
//! load) and the metrics and services pushes, all at a short interval so
//! that a few minutes hold what a day at the defaults does, against the
//! StackSense test server over HTTPS on 127.0.0.1. Prints VmRSS at each
//! sample and the growth after the warm-up; exits 1 when it grew more
//! than the allowance (a leak per check run shows as megabytes here).
//!
//!     cargo run --release --example soak_bench -- --agent PATH
//!         [--minutes 10] [--interval 0.1]
//!
//! dist/bench-soak runs it on the x86_64 musl build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::stacksense::TOKEN;
use common::{AgentCmd, Receiver, StackSense, TempDir, TlsFixture, status};

/// What the first two minutes may still grow by (buffers reaching their
/// working size, the allocator's heap its working shape: +128 kB between
/// minutes 1 and 2 in a run of 2026-12-07, flat after), and what the rest
/// may not pass.
const WARM_UP: Duration = Duration::from_secs(120);
const ALLOWED_KB: u64 = 128;

struct Args {
    agent: PathBuf,
    minutes: f64,
    interval: f64,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        agent: PathBuf::new(),
        minutes: 10.0,
        interval: 0.1,
    };
    let mut agent = None;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("agent") => agent = Some(PathBuf::from(parser.value()?)),
            Long("minutes") => args.minutes = parser.value()?.parse()?,
            Long("interval") => args.interval = parser.value()?.parse()?,
            _ => return Err(arg.unexpected()),
        }
    }
    args.agent = agent.ok_or("--agent PATH is required")?;
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("soak_bench: {e}");
            std::process::exit(2);
        }
    };
    let tls = TlsFixture::new();
    let dir = TempDir::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    let server = StackSense::start_tls(&tls);
    let plain = Receiver::start(|_| status(200));
    let secure = Receiver::start_tls(&tls, |_| status(200));
    let checks = [
        format!("tcp {}", plain.addr),
        format!("http {}/health", plain.url()),
        format!("http {}/health", secure.url()),
        "cmd true".to_string(),
        "disk / 100%".to_string(),
        "memory 1%".to_string(),
        "load 1000".to_string(),
    ];
    let interval = args.interval.to_string();
    let mut agent = AgentCmd::with_binary(&args.agent)
        .env("STACKSENSE_URL", server.url())
        .env("STACKSENSE_TOKEN", TOKEN)
        .args(["--interval", &interval, "--metrics-interval", &interval])
        .args(["--services-interval", &interval, "--no-splay"])
        .args(["--report", "metrics,services", "--ca-file"])
        .arg_path(&ca);
    for check in &checks {
        agent = agent.args(["--health", check]);
    }
    let agent = agent.spawn();
    println!(
        "{} at {} s for {} minutes: {} checks ({}), metrics and services pushes at every beat",
        args.agent.display(),
        args.interval,
        args.minutes,
        checks.len(),
        checks.join(", ")
    );
    println!("| minute | VmRSS | requests to the server | check requests served |");
    println!("|---|---|---|---|");
    let started = Instant::now();
    let length = Duration::from_secs_f64(args.minutes * 60.0);
    let mut after_warm_up = None;
    let mut last = 0;
    while started.elapsed() < length {
        std::thread::sleep(Duration::from_secs(10).min(length.saturating_sub(started.elapsed())));
        let rss = agent.proc_status("VmRSS");
        assert!(rss > 0, "the agent has stopped: {:?}", agent.log());
        let requests = server.rx.requests().len();
        let check_runs = plain.requests().len() + secure.requests().len();
        println!(
            "| {:6.1} | {rss:5} kB | {requests:5} | {check_runs:5} |",
            started.elapsed().as_secs_f64() / 60.0
        );
        if started.elapsed() >= WARM_UP && after_warm_up.is_none() {
            after_warm_up = Some(rss);
        }
        last = rss;
    }
    let peak = agent.proc_status("VmHWM");
    let Some(base) = after_warm_up else {
        println!("too short to judge: run for more than a minute");
        return;
    };
    let grew = last.saturating_sub(base);
    println!("after the warm-up: {base} kB; at the end: {last} kB (+{grew} kB); peak {peak} kB");
    if grew > ALLOWED_KB {
        println!("GREW by more than {ALLOWED_KB} kB after warm-up");
        std::process::exit(1);
    }
    println!("flat (within {ALLOWED_KB} kB) after warm-up");
}
