//! Release smoke test for one built binary, natively or under qemu-user:
//!
//!     cargo run --example smoke -- PATH [RUNNER ARGS...]
//!     cargo run --example smoke -- target/.../stacksense-heartbeat qemu-arm-static -cpu arm1176
//!
//! Checks --version, --check with a good and a bad config, --once
//! against receivers on 127.0.0.1 over HTTP and over HTTPS with a test CA
//! (and without it: rejected as an untrusted certificate), and the service
//! pushing metrics and services (this target's /proc readers and
//! arithmetic) to the StackSense test server; natively also the CPU count
//! under an affinity mask and memory over many http check runs.
//! Prints one line per check; exits 1 if any fails.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use std::time::{Duration, Instant};

use common::stacksense::{BOX_ID, TOKEN};
use common::{AgentCmd, Output, Receiver, StackSense, TempDir, TlsFixture, ok_json};

/// How many CPUs a kernel CPU list (`0-3,5`) names.
fn cpus_in(list: &str) -> Option<u64> {
    let mut n = 0;
    for part in list.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        n += b.parse::<u64>().ok()? - a.parse::<u64>().ok()? + 1;
    }
    Some(n)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(binary) = args.next().map(PathBuf::from) else {
        eprintln!("usage: smoke PATH [RUNNER ARGS...]");
        std::process::exit(2);
    };
    let runner: Vec<String> = args.collect();
    let agent = || AgentCmd::via(&runner, &binary);
    let dir = TempDir::new();
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, out: &Output| {
        println!("  {} {name}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            println!(
                "       exit {:?}\n       stdout: {}\n       stderr: {}",
                out.code(),
                out.stdout.trim(),
                out.stderr.trim()
            );
            failed += 1;
        }
    };

    let out = agent().args(["--version"]).finish();
    let want = format!("stacksense-heartbeat {}", env!("CARGO_PKG_VERSION"));
    check(
        "--version",
        out.code() == Some(0) && out.stdout.trim() == want,
        &out,
    );

    let good = dir.write(
        "good.conf",
        "{\"server_id\": 1, \"api_url\": \"http://127.0.0.1:9\"}",
    );
    let out = agent()
        .args(["--check", "--offline", "--config"])
        .args([&good])
        .finish();
    check(
        "--check with a good config",
        out.code() == Some(0) && out.stdout.contains("config OK"),
        &out,
    );

    let bad = dir.write(
        "bad.conf",
        "{\"server_id\": 1, \"api_url\": \"http://127.0.0.1:9\", \"interval\": 0}",
    );
    let out = agent()
        .args(["--check", "--offline", "--config"])
        .args([&bad])
        .finish();
    check(
        "--check with a bad config exits 2",
        out.code() == Some(2) && out.stderr.contains("interval"),
        &out,
    );

    let rx = Receiver::start(|_| ok_json());
    let out = agent()
        .args(["--once", "--server-id", "1", "--api-url", &rx.url()])
        .finish();
    check(
        "--once over HTTP",
        out.code() == Some(0) && rx.requests().len() == 1,
        &out,
    );

    let tls = TlsFixture::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    let rx = Receiver::start_tls(&tls, |_| ok_json());
    let out = agent()
        .args([
            "--once",
            "--server-id",
            "1",
            "--api-url",
            &rx.url(),
            "--ca-file",
        ])
        .args([&ca])
        .finish();
    check(
        "--once over HTTPS with a test CA",
        out.code() == Some(0) && rx.requests().len() == 1,
        &out,
    );

    let out = agent()
        .args([
            "--once",
            "--server-id",
            "1",
            "--api-url",
            &rx.url(),
            "--interval",
            "1",
        ])
        .finish();
    let rejected = out.stderr.contains("certificate") && out.stderr.contains("--ca-file");
    check(
        "--once over HTTPS without the CA: rejected, exit 1",
        out.code() == Some(1) && rejected,
        &out,
    );

    let server = StackSense::start_tls(&tls);
    let mut pushing = agent()
        .env("STACKSENSE_URL", server.url())
        .env("STACKSENSE_TOKEN", TOKEN)
        .args(["--report", "metrics,services", "--health", "load 1000"])
        .args([
            "--interval",
            "0.5",
            "--metrics-interval",
            "0.5",
            "--ca-file",
        ])
        .args([&ca])
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.metrics(BOX_ID).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = pushing.stop_with(libc::SIGTERM);
    let metrics = server.metrics(BOX_ID);
    let services = server.services(BOX_ID);
    let pushed = metrics.get(1).is_some_and(|m| {
        m["cpu_percent"]
            .as_f64()
            .is_some_and(|c| (0.0..=100.0).contains(&c))
            && m["memory_total"].as_u64().is_some_and(|t| t > 0)
            && m["network_io"].get("lo").is_some()
            && m["disk_usage"].is_object()
    }) && services.first().is_some_and(|s| {
        // The check passed: no status, the server's default "running".
        s["services"][0]["name"] == "load 1000" && s["services"][0].get("status").is_none()
    });
    let log = Output {
        status,
        stdout: format!("{metrics:?}\n{services:?}"),
        stderr: pushing.log().join("\n"),
    };
    check("metrics and services pushes over HTTPS", pushed, &log);

    // musl's sysconf counts the affinity mask: run natively under `taskset
    // -c 0` and hold cpu_count to the CPUs online, as glibc and psutil say.
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|t| cpus_in(&t));
    let taskset = ["/usr/bin/taskset", "/bin/taskset"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if let (true, Some(online), Some(taskset)) = (runner.is_empty(), online, taskset) {
        let server = StackSense::start();
        let pinned = vec![taskset.to_string(), "-c".into(), "0".into()];
        let mut agent = AgentCmd::via(&pinned, &binary)
            .env("STACKSENSE_URL", server.url())
            .env("STACKSENSE_TOKEN", TOKEN)
            .args([
                "--report",
                "metrics",
                "--interval",
                "0.5",
                "--metrics-interval",
                "0.5",
            ])
            .spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.metrics(BOX_ID).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = agent.stop_with(libc::SIGTERM);
        let metrics = server.metrics(BOX_ID);
        let counted = metrics.first().and_then(|m| m["cpu_count"].as_u64());
        let log = Output {
            status,
            stdout: format!("cpu_count {counted:?}, online {online}"),
            stderr: agent.log().join("\n"),
        };
        check(
            &format!("cpu_count under taskset -c 0 is the {online} CPU(s) online"),
            counted == Some(online),
            &log,
        );
    }

    // A check's probe runs on a thread of its own; zig's libc allocator grew
    // about 1.8 KB a check run under that (the static build's allocator is
    // dlmalloc now). Native only: under qemu the RSS is the emulator's.
    if runner.is_empty() {
        let service = Receiver::start(|_| ok_json());
        let server = StackSense::start();
        let mut agent = AgentCmd::with_binary(&binary)
            .env("STACKSENSE_URL", server.url())
            .env("STACKSENSE_TOKEN", TOKEN)
            .args(["--report", "off", "--interval", "0.1"]);
        for n in 0..8 {
            agent = agent.args(["--health", &format!("http {}/health?{n}", service.url())]);
        }
        let mut agent = agent.spawn();
        let runs_past = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(90);
            while service.requests().len() < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            (service.requests().len(), agent.proc_status("VmRSS"))
        };
        let (first_runs, first_kb) = runs_past(200);
        let (last_runs, last_kb) = runs_past(first_runs + 1000);
        let grew = last_kb.saturating_sub(first_kb);
        let runs = last_runs - first_runs;
        let status = agent.stop_with(libc::SIGTERM);
        let log = Output {
            status,
            stdout: format!(
                "VmRSS {first_kb} kB after {first_runs} check runs, {last_kb} kB after {last_runs}"
            ),
            stderr: agent.log().join("\n"),
        };
        check(
            &format!("memory flat over {runs} http check runs (+{grew} kB)"),
            runs >= 1000 && grew <= 256,
            &log,
        );
    }

    if failed > 0 {
        println!("smoke: {failed} check(s) failed for {}", binary.display());
        std::process::exit(1);
    }
}
