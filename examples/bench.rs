//! Benchmark of one agent binary against a local receiver; prints numbers.
//!
//!     cargo run --release --example bench -- --agent PATH
//!         [--beats 200] [--interval 0.1] [--long-beats 10000] [--dist-dir target/dist]
//!
//! - stripped size of each target's binary found under --dist-dir;
//! - peak RSS (VmHWM) and steady RSS (VmRSS at the end) over --beats beats,
//!   HTTP and HTTPS (with a CA file);
//! - CPU time (user + system, all threads) per beat, after 10 warm-up beats;
//! - schedule accuracy: each beat's arrival against its slot (p50/p99/max)
//!   and the drift between the first and last ten beats;
//! - a soak of --long-beats intervals (0 skips it): RSS, fds and threads of
//!   an agent that succeeds, one whose server fails in every way, and one
//!   whose server's certificate it rejects.
//!
//! dist/bench runs it on the x86_64 musl build. Only 127.0.0.1 is used.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{AgentCmd, Receiver, Reply, Running, TempDir, TlsFixture, ok_json, status};

struct Args {
    agent: PathBuf,
    beats: usize,
    interval: f64,
    long_beats: usize,
    dist_dir: PathBuf,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut agent = None;
    let mut args = Args {
        agent: PathBuf::new(),
        beats: 200,
        interval: 0.1,
        long_beats: 10_000,
        dist_dir: PathBuf::from("target/dist"),
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("agent") => agent = Some(PathBuf::from(parser.value()?)),
            Long("beats") => args.beats = parser.value()?.parse()?,
            Long("interval") => args.interval = parser.value()?.parse()?,
            Long("long-beats") => args.long_beats = parser.value()?.parse()?,
            Long("dist-dir") => args.dist_dir = parser.value()?.into(),
            _ => return Err(arg.unexpected()),
        }
    }
    args.agent = agent.ok_or("--agent PATH is required")?;
    Ok(args)
}

const TARGETS: [&str; 4] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "armv7-unknown-linux-musleabihf",
    "arm-unknown-linux-musleabihf",
];

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    println!("binary sizes (stripped)");
    for target in TARGETS {
        let path = args
            .dist_dir
            .join(target)
            .join("release/stacksense-heartbeat");
        match std::fs::metadata(&path) {
            Ok(m) => println!(
                "  {target:<32} {:>9} bytes  ({:.2} MB)",
                m.len(),
                m.len() as f64 / 1e6
            ),
            Err(_) => println!("  {target:<32} (not built)"),
        }
    }

    println!(
        "\n{} beats at {} s, no splay; agent {}",
        args.beats,
        args.interval,
        args.agent.display()
    );
    println!(
        "{:<6} {:>10} {:>11} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "proto", "peak RSS", "steady RSS", "CPU/beat", "late p50", "late p99", "late max", "drift"
    );
    let tls = TlsFixture::new();
    let dir = TempDir::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    for https in [false, true] {
        let rx = if https {
            Receiver::start_tls(&tls, |_| ok_json())
        } else {
            Receiver::start(|_| ok_json())
        };
        let agent = spawn(&args, &rx, https.then_some(&ca), &[]);
        rx.wait_for(11, wait(&args, 11));
        let cpu0 = cpu_ns(&agent);
        let reqs = rx.wait_for(args.beats + 11, wait(&args, args.beats + 11));
        let cpu1 = cpu_ns(&agent);
        let (peak, steady) = (agent.proc_status("VmHWM"), agent.proc_status("VmRSS"));
        let cpu_per_beat = (cpu1 - cpu0) as f64 / args.beats as f64 / 1e6;

        // With no splay, beat k is due k intervals after beat zero. The
        // receiver does not know the agent's clock, so each beat's offset
        // from its slot is taken against the earliest one (lateness >= 0:
        // jitter of sleep + connect), and drift is how far the last ten
        // beats sit from the first ten.
        let t0 = reqs[0].at;
        let offsets: Vec<f64> = reqs[1..=args.beats]
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.at - t0).as_secs_f64() - (i + 1) as f64 * args.interval) * 1e3)
            .collect();
        let earliest = offsets.iter().cloned().fold(f64::MAX, f64::min);
        let mut late: Vec<f64> = offsets.iter().map(|o| o - earliest).collect();
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
        let ten = 10.min(offsets.len());
        let drift = mean(&offsets[offsets.len() - ten..]) - mean(&offsets[..ten]);
        late.sort_by(f64::total_cmp);
        let pct = |p: f64| late[((late.len() - 1) as f64 * p).round() as usize];
        println!(
            "{:<6} {:>7} kB {:>8} kB {:>7.3} ms {:>7.2} ms {:>7.2} ms {:>7.2} ms {:>+7.2} ms",
            if https { "https" } else { "http" },
            peak,
            steady,
            cpu_per_beat,
            pct(0.5),
            pct(0.99),
            pct(1.0),
            drift
        );
    }

    checks_row(&args, &tls, &ca);

    if args.long_beats > 0 {
        soak(&args, &tls, &ca);
    }
}

/// HTTPS with three health checks (tcp, http, disk) and `--report
/// status,vitals`: the cost of a beat that says "this box works". Check
/// threads end after each beat, so CPU comes from /proc/PID/stat, which
/// keeps ended threads' time (in 10 ms ticks: 200 beats of about a
/// millisecond are counted to a few per cent).
fn checks_row(args: &Args, tls: &TlsFixture, ca: &PathBuf) {
    // An older agent (measured for comparison) has no checks.
    let help = std::process::Command::new(&args.agent)
        .arg("--help")
        .output();
    if !help.is_ok_and(|h| String::from_utf8_lossy(&h.stdout).contains("--health")) {
        println!("(this agent has no --health: no checks row)");
        return;
    }
    let rx = Receiver::start_tls(tls, |_| ok_json());
    let service = Receiver::start(|_| status(200));
    let checks = [
        format!("tcp {}", service.addr),
        format!("http {}/health", service.url()),
        "disk / 100%".to_string(),
    ];
    let mut extra = vec!["--report".to_string(), "status,vitals".to_string()];
    for check in checks {
        extra.extend(["--health".to_string(), check]);
    }
    let agent = spawn(args, &rx, Some(ca), &extra);
    rx.wait_for(11, wait(args, 11));
    let cpu0 = stat_cpu_ns(&agent);
    let reqs = rx.wait_for(args.beats + 11, wait(args, args.beats + 11));
    let cpu1 = stat_cpu_ns(&agent);
    let (peak, steady) = (agent.proc_status("VmHWM"), agent.proc_status("VmRSS"));
    let body = reqs.last().map_or(0, |r| r.body.len());
    println!(
        "https + tcp, http, disk checks + --report status,vitals: peak RSS {peak} kB, steady {steady} kB, \
         CPU/beat {:.3} ms, body {body} bytes",
        (cpu1 - cpu0) as f64 / args.beats as f64 / 1e6
    );
}

/// CPU of the agent and every thread it ever had, from /proc/PID/stat
/// (utime + stime, in clock ticks of 10 ms).
fn stat_cpu_ns(agent: &Running) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", agent.pid())).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // state is field 3; utime and stime are fields 14 and 15.
    (fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0)) * 10_000_000
}

/// Three agents side by side for `long_beats` intervals: one succeeding
/// over HTTPS, one against a server that fails in every way it can (503,
/// reset, hang past the timeout, garbage, 404), one rejecting the server's
/// certificate on every beat. Growth in any column is a leak.
fn soak(args: &Args, tls: &TlsFixture, ca: &PathBuf) {
    println!(
        "\nsoak: {} intervals of {} s, three agents side by side",
        args.long_beats, args.interval
    );
    let ok_rx = Receiver::start_tls(tls, |_| ok_json());
    let failing_rx = Receiver::start(|n| match n % 5 {
        0 => status(503),
        1 => Reply::ResetMidResponse,
        2 => Reply::Hang,
        3 => Reply::Raw(b"garbage\r\n\r\n".to_vec()),
        _ => status(404),
    });
    let bad_cert_rx = Receiver::start_tls(tls, |_| ok_json());
    let agents = [
        ("https ok", spawn(args, &ok_rx, Some(ca), &[]), &ok_rx),
        (
            "http failing",
            spawn(args, &failing_rx, None, &[]),
            &failing_rx,
        ),
        (
            "https bad cert",
            spawn(args, &bad_cert_rx, None, &[]),
            &bad_cert_rx,
        ),
    ];
    println!(
        "{:<15} {:>9} {:>9} {:>9} {:>9} {:>4} {:>8}",
        "agent", "interval", "attempts", "VmRSS", "VmHWM", "fds", "threads"
    );
    let started = std::time::Instant::now();
    let mut checkpoint = 200.min(args.long_beats);
    loop {
        let at = Duration::from_secs_f64(checkpoint as f64 * args.interval);
        if let Some(left) = at.checked_sub(started.elapsed()) {
            std::thread::sleep(left);
        }
        for (name, agent, rx) in &agents {
            println!(
                "{name:<15} {checkpoint:>9} {:>9} {:>6} kB {:>6} kB {:>4} {:>8}",
                rx.connections(),
                agent.proc_status("VmRSS"),
                agent.proc_status("VmHWM"),
                agent.open_fds(),
                agent.proc_status("Threads")
            );
        }
        if checkpoint >= args.long_beats {
            break;
        }
        checkpoint = (checkpoint * 5).min(args.long_beats);
    }
}

fn spawn(args: &Args, rx: &Receiver, ca: Option<&PathBuf>, extra: &[String]) -> Running {
    let mut cmd = AgentCmd::with_binary(&args.agent).args([
        "--server-id",
        "bench",
        "--api-url",
        &rx.url(),
        "--interval",
        &args.interval.to_string(),
        "--no-splay",
    ]);
    if let Some(ca) = ca {
        cmd = cmd.args(["--ca-file"]).args([ca]);
    }
    cmd.args(extra).spawn()
}

/// Time for `beats` beats plus slack.
fn wait(args: &Args, beats: usize) -> Duration {
    Duration::from_secs_f64(beats as f64 * args.interval * 1.5 + 10.0)
}

/// CPU time of all the agent's threads in nanoseconds, from schedstat
/// (nanosecond resolution, unlike the 10 ms ticks of /proc/PID/stat).
fn cpu_ns(agent: &Running) -> u64 {
    let tasks = format!("/proc/{}/task", agent.pid());
    std::fs::read_dir(tasks)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}
