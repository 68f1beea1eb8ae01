//! Fleet benchmark: N agents started at once against one receiver, through
//! steady state, an outage (every beat gets 503) and the recovery.
//!
//!     cargo run --release --example fleet -- [--agents 500] [--interval 5]
//!         [--agent PATH] [--splay on|off|both]
//!
//! Prints, per phase: requests, the peak arrival rate in 1 s windows and its
//! ratio to the steady rate N/interval, and the fleet's RSS. Only 127.0.0.1.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{AgentCmd, Receiver, Running, build_agent, ok_json, status};

struct Args {
    agents: usize,
    interval: f64,
    agent: Option<PathBuf>,
    splay: Vec<bool>,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        agents: 500,
        interval: 5.0,
        agent: None,
        splay: vec![true, false],
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("agents") => args.agents = parser.value()?.parse()?,
            Long("interval") => args.interval = parser.value()?.parse()?,
            Long("agent") => args.agent = Some(parser.value()?.into()),
            Long("splay") => {
                args.splay = match parser.value()?.string()?.as_str() {
                    "on" => vec![true],
                    "off" => vec![false],
                    _ => vec![true, false],
                }
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(args)
}

struct Phase {
    name: &'static str,
    intervals: f64,
    status: u16,
}

/// Steady state is measured after two intervals of warm-up. The outage is
/// split: in its first two intervals each agent's quick retries add load;
/// after that its failure count has grown the backoff past the interval and
/// it sends only its scheduled beat.
const PHASES: [Phase; 5] = [
    Phase {
        name: "warm-up",
        intervals: 2.0,
        status: 200,
    },
    Phase {
        name: "steady",
        intervals: 4.0,
        status: 200,
    },
    Phase {
        name: "outage 0-2",
        intervals: 2.0,
        status: 503,
    },
    Phase {
        name: "outage 2-6",
        intervals: 4.0,
        status: 503,
    },
    Phase {
        name: "recovery",
        intervals: 4.0,
        status: 200,
    },
];

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fleet: {e}");
            std::process::exit(2);
        }
    };
    let binary = args.agent.clone().unwrap_or_else(|| build_agent(true));
    raise_fd_limit();
    println!(
        "fleet: {} agents, interval {} s, agent {}",
        args.agents,
        args.interval,
        binary.display()
    );
    println!(
        "steady rate N/interval = {:.1} req/s\n",
        args.agents as f64 / args.interval
    );
    println!(
        "{:<6} {:<13} {:>8} {:>11} {:>11} {:>11} {:>10} {:>10}",
        "splay",
        "phase",
        "requests",
        "req/steady",
        "peak req/s",
        "peak/steady",
        "fleet RSS",
        "per agent"
    );
    for splay in &args.splay {
        run(&args, &binary, *splay);
    }
}

fn run(args: &Args, binary: &Path, splay: bool) {
    let current = Arc::new(AtomicU16::new(200));
    let answer = current.clone();
    let rx = Receiver::start(move |_| match answer.load(Ordering::SeqCst) {
        200 => ok_json(),
        code => status(code),
    });
    let interval = args.interval.to_string();
    let fleet: Vec<Running> = (0..args.agents)
        .map(|i| {
            let mut cmd = AgentCmd::with_binary(binary).args([
                "--server-id",
                &format!("fleet-{i}"),
                "--api-url",
                &rx.url(),
                "--interval",
                &interval,
                "-q",
            ]);
            if !splay {
                cmd = cmd.args(["--no-splay"]);
            }
            cmd.spawn()
        })
        .collect();

    let steady_rate = args.agents as f64 / args.interval;
    for phase in &PHASES {
        current.store(phase.status, Ordering::SeqCst);
        let from = Instant::now();
        thread::sleep(Duration::from_secs_f64(phase.intervals * args.interval));
        let to = Instant::now();
        if phase.name == "warm-up" {
            continue;
        }
        let arrivals: Vec<Instant> = rx
            .requests()
            .iter()
            .map(|r| r.at)
            .filter(|&at| at >= from && at < to)
            .collect();
        let peak = peak_per_second(&arrivals);
        let rss_kb: u64 = fleet.iter().map(|a| a.proc_status("VmRSS")).sum();
        println!(
            "{:<6} {:<13} {:>8} {:>11.2} {:>11} {:>11.2} {:>8.1}MB {:>8.2}MB",
            if splay { "on" } else { "off" },
            phase.name,
            arrivals.len(),
            arrivals.len() as f64 / (phase.intervals * steady_rate * args.interval),
            peak,
            peak as f64 / steady_rate,
            rss_kb as f64 / 1024.0,
            rss_kb as f64 / 1024.0 / args.agents as f64
        );
    }
    drop(fleet);
    drop(rx);
}

/// The most arrivals in any 1 s window (sliding, starting at each arrival).
fn peak_per_second(arrivals: &[Instant]) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    let mut peak = 0;
    let mut end = 0;
    for start in 0..sorted.len() {
        while end < sorted.len() && sorted[end] - sorted[start] < Duration::from_secs(1) {
            end += 1;
        }
        peak = peak.max(end - start);
    }
    peak
}

/// 500 agents mean 500 stderr pipes plus sockets: more than the usual 1024.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
