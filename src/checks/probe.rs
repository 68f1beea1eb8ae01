//! Running one check: each kind's probe, bounded by a deadline, giving
//! pass/fail and one line of why. Every detail is escaped here, so log
//! lines and report bodies can carry it as it is.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::classify::{self, Route, Trusting};
use crate::clock::format_duration;
use crate::host;
use crate::process::{self, Collected, End, Tail};
use crate::text::{self, describe_io};

use crate::config::health::{Check, MinMemory, Probe};

/// A check's result: its verdict and, in a few words, why.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub ok: bool,
    pub detail: String,
}

/// A verdict and how long its probe took to give it.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub verdict: Verdict,
    /// None when the probe never answered.
    pub took: Option<Duration>,
}

impl Verdict {
    fn pass(detail: String) -> Verdict {
        Verdict { ok: true, detail }
    }
    fn fail(detail: String) -> Verdict {
        Verdict { ok: false, detail }
    }
}

/// Output of a `cmd` check kept for its failure line: its last line is
/// usually the reason ("no response", "FATAL: ...").
const CMD_OUTPUT_TAIL: usize = 512;

/// Runs `check` within `limit`. `http` is the client for http checks.
pub fn run(check: &Check, limit: Duration, http: Option<&ureq::Agent>) -> Verdict {
    match &check.probe {
        Probe::Tcp { host, port } => tcp(host, *port, limit),
        Probe::Http { url } => match http {
            Some(agent) => http_get(agent, url, limit),
            None => Verdict::fail("cannot set up an HTTP(S) client for it".into()),
        },
        Probe::Cmd { argv } => cmd(argv, limit),
        Probe::Disk { path, max_percent } => match host::disk::statvfs(path) {
            Ok(d) => {
                let used = d.used_percent();
                let detail = format!(
                    "{} {}% used (limit {}%)",
                    text::untrusted(&path.display().to_string()),
                    text::decimal(used, 0),
                    text::decimal(*max_percent, 4)
                );
                verdict(used < *max_percent, detail)
            }
            Err(e) => Verdict::fail(format!(
                "cannot read {}: {}",
                text::untrusted(&path.display().to_string()),
                describe_io(&e)
            )),
        },
        Probe::Memory(min) => match host::memory() {
            Ok(m) => {
                let (ok, limit) = match *min {
                    MinMemory::Percent(p) => (
                        m.available_percent() >= p,
                        format!("{}%", text::decimal(p, 4)),
                    ),
                    MinMemory::Bytes(b) => (m.available >= b, bytes(b)),
                };
                let detail = format!(
                    "{} available, {}% of {} (minimum {limit})",
                    bytes(m.available),
                    text::decimal(m.available_percent(), 0),
                    bytes(m.total)
                );
                verdict(ok, detail)
            }
            Err(e) => Verdict::fail(format!("cannot read memory: {}", describe_io(&e))),
        },
        Probe::Load { max_per_cpu } => match host::load() {
            Ok([one, ..]) => load(one, host::online_cpus(), *max_per_cpu),
            Err(e) => Verdict::fail(format!("cannot read the load: {}", describe_io(&e))),
        },
    }
}

/// The load check's decision: the 1-minute load spread over the CPUs.
fn load(one: f64, cpus: u32, max_per_cpu: f64) -> Verdict {
    let per_cpu = one / f64::from(cpus);
    let detail = format!(
        "load {} per CPU ({} on {cpus} CPUs, limit {})",
        text::decimal(per_cpu, 2),
        text::decimal(one, 2),
        text::decimal(max_per_cpu, 4)
    );
    verdict(per_cpu < max_per_cpu, detail)
}

fn verdict(ok: bool, detail: String) -> Verdict {
    Verdict { ok, detail }
}

/// Whole MiB, or whole GiB from 10 GiB up: enough to judge a limit by.
fn bytes(n: u64) -> String {
    if n >= 10 << 30 {
        format!("{} GiB", n >> 30)
    } else {
        format!("{} MiB", n >> 20)
    }
}

#[inline(never)]
fn tcp(host: &str, port: u16, limit: Duration) -> Verdict {
    let started = Instant::now();
    let deadline = started + limit;
    let failed = |e: &std::io::Error, origin: &str| {
        let route = Route {
            origin,
            proxy: None,
            https: false,
            trust: Trusting::Bundled,
        };
        Verdict::fail(classify::io_failure(e, route, limit).reason)
    };
    // A name is looked up by the system resolver, which has its own
    // timeouts; the caller stops waiting for us at the deadline anyway.
    let addrs = match (host, port).to_socket_addrs() {
        Ok(addrs) => addrs,
        Err(e) => return failed(&e, &format!("{}:{port}", text::untrusted(host))),
    };
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => {
                return Verdict::pass(format!(
                    "connected to {addr} in {}",
                    format_duration(started.elapsed())
                ));
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) => failed(&e, &addr.to_string()),
        None => Verdict::fail(format!("{} has no address", text::untrusted(host))),
    }
}

#[inline(never)]
fn http_get(agent: &ureq::Agent, url: &str, limit: Duration) -> Verdict {
    let started = Instant::now();
    let origin = url
        .parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let result = agent
        .get(url)
        .config()
        .timeout_global(Some(limit))
        .build()
        .call();
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            let route = Route {
                origin: &origin,
                proxy: None,
                https: url
                    .get(..6)
                    .is_some_and(|s| s.eq_ignore_ascii_case("https:")),
                trust: Trusting::Bundled,
            };
            return Verdict::fail(classify::error_failure(&e, route, limit).reason);
        }
    };
    let status = response.status();
    let took = format_duration(started.elapsed());
    let words = status.canonical_reason().unwrap_or("");
    if status.is_success() {
        return Verdict::pass(format!("HTTP {} in {took}", status.as_u16()));
    }
    // The body is not read: the status says enough, and reading it cost
    // 600 bytes of binary.
    let extra = if status.is_redirection() {
        " (redirects are not followed: name the final URL)"
    } else {
        ""
    };
    Verdict::fail(format!("HTTP {} {words}{extra}", status.as_u16()))
}

#[inline(never)]
fn cmd(argv: &[String], limit: Duration) -> Verdict {
    let command: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
    let shown = text::untrusted(&argv[0]);
    let spawned = process::c_args(&command).and_then(|args| {
        let (read, write) = process::pipe()?;
        let stdio = process::Stdio {
            null_stdin: true,
            stdout: Some(write.as_raw_fd()),
            stderr: Some(write.as_raw_fd()),
        };
        let pid = process::spawn(&args, stdio)?;
        Ok((pid, read))
    });
    let (pid, read) = match spawned {
        Ok(started) => started,
        Err(e) => return Verdict::fail(format!("cannot run {shown}: {}", describe_io(&e))),
    };
    let mut tail = Tail::new(CMD_OUTPUT_TAIL);
    let mut pipes = vec![(read, None)];
    process::track(pid);
    // What the check started in the background ends with it.
    let how = process::Waiting {
        end_group: true,
        notice_stops: false,
    };
    let deadline = Some(Instant::now() + limit);
    let collected = process::collect(pid, &mut pipes, &mut tail, deadline, how);
    process::untrack(pid);
    let output = tail.text();
    let last_line = output
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(|l| format!(": {}", text::untrusted_max(l, 120)))
        .unwrap_or_default();
    match collected {
        Ok(Collected::Ended(End::Exited(0))) => Verdict::pass("exit status 0".into()),
        Ok(Collected::Ended(End::Exited(code))) => {
            Verdict::fail(format!("exit status {code}{last_line}"))
        }
        Ok(Collected::Ended(End::Signalled(signal))) => {
            Verdict::fail(format!("ended by signal {signal}{last_line}"))
        }
        Ok(Collected::Killed) => Verdict::fail(format!(
            "still running after {}; killed with its process group{last_line}",
            format_duration(limit)
        )),
        Err(e) => Verdict::fail(format!("waiting for {shown}: {}", describe_io(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_judged_per_cpu() {
        let busy = load(9.24, 4, 2.0);
        assert!(!busy.ok);
        assert_eq!(busy.detail, "load 2.31 per CPU (9.24 on 4 CPUs, limit 2)");
        assert!(load(7.9, 4, 2.0).ok, "1.98 per CPU is below 2");
        assert!(!load(8.0, 4, 2.0).ok, "the limit itself fails");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(200 << 20), "200 MiB");
        assert_eq!(bytes(3 << 29), "1536 MiB");
        assert_eq!(bytes(24 << 30), "24 GiB");
    }
}
