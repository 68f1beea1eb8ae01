//! The body of `POST /api/agent/metrics/`: the box's CPU, memory, swap,
//! load, disks, network and uptime with psutil's meanings, from `/proc`
//! and `statvfs` (docs/metrics.md: each field's source and formula). The
//! rates and `cpu_percent` come from the previous sample, never from a
//! sleep, so [`Collector`] keeps one.

mod proc;

use std::fmt::Write;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::text;
use crate::version::VERSION;
use crate::vitals;
use proc::{CpuTimes, Mount};

/// The most of a /proc file read: a box with thousands of mounts or
/// interfaces gets the first ones, and a line saying so.
const MAX_PROC_BYTES: u64 = 64 * 1024;
/// Disks and interfaces per push, whatever the box has; each statvfs is a
/// small thread, so this also bounds the threads.
const MAX_DISKS: usize = 64;
const MAX_INTERFACES: usize = 256;
/// The longest all the disks' statvfs may take together.
const DISKS_LIMIT: Duration = Duration::from_secs(1);

/// Counters whose rate a push sends: what the previous sample had.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    cpu: Option<CpuTimes>,
    disk_io: Option<(u64, u64)>,
    net_io: Option<(u64, u64)>,
}

/// One push's body, and what could not go into it (said once by the
/// caller, not at every push).
#[derive(Debug)]
pub struct Collected {
    /// None when a required field could not be read (no `/proc/stat` or
    /// `/proc/meminfo`): the server would refuse the push.
    pub body: Option<String>,
    pub left_out: Vec<LeftOut>,
}

/// Something a push could not carry: `what` names it (the same from one
/// push to the next, so it is said once), `why` says what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftOut {
    pub what: String,
    pub why: String,
}

impl LeftOut {
    fn new(what: impl Into<String>, why: impl Into<String>) -> LeftOut {
        LeftOut {
            what: what.into(),
            why: why.into(),
        }
    }
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

/// Keeps the previous sample between pushes.
pub struct Collector {
    previous: Sample,
    /// Cores do not come and go while the agent runs; counted once.
    physical_cpus: Option<u32>,
    /// The kernel's filesystems that need a device, read once: a module
    /// loaded later adds one whose mounts count from the next start.
    device_filesystems: Vec<String>,
}

impl Collector {
    /// Takes the first sample: the first push's CPU share and rates cover
    /// the time from here.
    pub fn new() -> Collector {
        let (cpu, _) = read_stat();
        Collector {
            previous: Sample {
                at: Instant::now(),
                cpu,
                disk_io: disk_io(),
                net_io: read_net().map(|(nics, _)| totals(&nics)),
            },
            physical_cpus: physical_cpus(),
            device_filesystems: read("/proc/filesystems")
                .map(|t| proc::parse_device_filesystems(&t))
                .unwrap_or_default(),
        }
    }

    /// A metrics body now. The statvfs calls share at most `limit` (and a
    /// second): a disk that does not answer is left out of this push.
    pub fn collect(&mut self, limit: Duration) -> Collected {
        let mut left_out = Vec::new();
        let now = Instant::now();
        let (cpu, btime) = read_stat();
        let memory = read("/proc/meminfo").and_then(|t| proc::parse_meminfo(&t));
        let (nics, nics_cut) = read_net().unwrap_or_default();
        let sample = Sample {
            at: now,
            cpu,
            disk_io: disk_io(),
            net_io: (!nics.is_empty()).then(|| totals(&nics)),
        };
        let before = std::mem::replace(&mut self.previous, sample);
        let (Some(cpu_now), Some(cpu_before), Some(memory)) = (cpu, before.cpu, memory) else {
            left_out.push(LeftOut::new(
                "everything",
                "/proc/stat or /proc/meminfo cannot be read, and the server requires \
                 cpu_percent and memory; beats go as plain heartbeats",
            ));
            return Collected {
                body: None,
                left_out,
            };
        };
        let seconds = now.saturating_duration_since(before.at).as_secs_f64();
        let rate = |now: Option<u64>, before: Option<u64>| -> Option<u64> {
            let (now, before) = (now?, before?);
            // A counter that went back (a reset interface) has no honest rate.
            let delta = now.checked_sub(before)?;
            (seconds > 0.0).then(|| (delta as f64 / seconds) as u64)
        };
        let pick = |s: Option<(u64, u64)>, second: bool| s.map(|p| if second { p.1 } else { p.0 });

        let mut out = String::with_capacity(2048);
        let _ = write!(out, "{{\"agent_version\":\"{VERSION}\"");
        let os = os_info();
        out.push_str(",\"os_type\":\"linux\",\"os_version\":");
        text::json_string(&mut out, &os.0);
        out.push_str(",\"hostname\":");
        text::json_string(&mut out, &os.1);
        let uptime = btime.and_then(|b| {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?;
            now.as_secs().checked_sub(b)
        });
        let load = vitals::load().ok();
        let swap = (memory.swap_total > 0).then_some(memory);
        let float = |x: f64| Some(text::decimal(x, 2));
        let int = |n: u64| Some(n.to_string());
        let fields: [(&str, Option<String>); 24] = [
            ("cpu_percent", float(proc::cpu_percent(cpu_before, cpu_now))),
            ("cpu_count", int(u64::from(vitals::online_cpus()))),
            (
                "physical_cpu_count",
                self.physical_cpus.and_then(|n| int(u64::from(n))),
            ),
            ("cpu_load_avg_1m", load.and_then(|l| float(l[0]))),
            ("cpu_load_avg_5m", load.and_then(|l| float(l[1]))),
            ("cpu_load_avg_15m", load.and_then(|l| float(l[2]))),
            ("memory_total", int(memory.total)),
            ("memory_available", int(memory.available)),
            ("memory_percent", float(memory.percent())),
            ("memory_used", int(memory.used())),
            ("memory_buffers", int(memory.buffers)),
            ("memory_cached", int(memory.cached)),
            ("memory_shared", int(memory.shared)),
            ("swap_total", swap.and_then(|m| int(m.swap_total))),
            ("swap_used", swap.and_then(|m| int(m.swap_used()))),
            ("swap_percent", swap.and_then(|m| float(m.swap_percent()))),
            ("system_uptime_seconds", uptime.and_then(int)),
            ("network_connections", connections().and_then(int)),
            (
                "disk_read_bytes_total",
                pick(sample.disk_io, false).and_then(int),
            ),
            (
                "disk_write_bytes_total",
                pick(sample.disk_io, true).and_then(int),
            ),
            (
                "disk_io_read",
                rate(pick(sample.disk_io, false), pick(before.disk_io, false)).and_then(int),
            ),
            (
                "disk_io_write",
                rate(pick(sample.disk_io, true), pick(before.disk_io, true)).and_then(int),
            ),
            (
                "net_io_sent",
                rate(pick(sample.net_io, true), pick(before.net_io, true)).and_then(int),
            ),
            (
                "net_io_recv",
                rate(pick(sample.net_io, false), pick(before.net_io, false)).and_then(int),
            ),
        ];
        for (name, value) in fields {
            let _ = write!(out, ",\"{name}\":{}", value.as_deref().unwrap_or("null"));
        }
        out.push_str(",\"disk_usage\":");
        write_disks(
            &mut out,
            &self.device_filesystems,
            limit.min(DISKS_LIMIT),
            &mut left_out,
        );
        out.push_str(",\"network_io\":{");
        for (i, nic) in nics.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            text::json_string(&mut out, &nic.name);
            let _ = write!(
                out,
                ":{{\"bytes_sent\":{},\"bytes_recv\":{},\"packets_sent\":{},\"packets_recv\":{}}}",
                nic.bytes_sent, nic.bytes_recv, nic.packets_sent, nic.packets_recv
            );
        }
        out.push_str("}}");
        if nics_cut {
            left_out.push(LeftOut::new(
                "network_io",
                format!("interfaces past the first {MAX_INTERFACES} (or 64 KiB of /proc/net/dev)"),
            ));
        }
        Collected {
            body: Some(out),
            left_out,
        }
    }
}

/// `disk_usage`: each real mount's statvfs as psutil's `disk_usage` gives
/// it, the mounts of the server agent's `disk_partitions` filter.
fn write_disks(
    out: &mut String,
    filesystems: &[String],
    limit: Duration,
    left_out: &mut Vec<LeftOut>,
) {
    let (mounts, cut) = match read_capped("/proc/self/mounts") {
        Some((text, cut)) => (proc::parse_mounts(&text), cut),
        None => {
            left_out.push(LeftOut::new(
                "disk_usage",
                "/proc/self/mounts cannot be read",
            ));
            (Vec::new(), false)
        }
    };
    // Sorted, to be searched: up to 64 KiB of mounts.
    let mut seen: Vec<&str> = Vec::new();
    let mut disks: Vec<&Mount> = Vec::new();
    // A mount point mounted over keeps its last entry, as psutil's dict does.
    for mount in mounts.iter().rev() {
        if !proc::is_real_disk(mount, filesystems) {
            continue;
        }
        if let Err(at) = seen.binary_search(&mount.path.as_str()) {
            seen.insert(at, &mount.path);
            disks.push(mount);
        }
    }
    disks.reverse();
    if cut || disks.len() > MAX_DISKS {
        left_out.push(LeftOut::new(
            "disk_usage",
            format!("disks past the first {MAX_DISKS} (or 64 KiB of /proc/self/mounts)"),
        ));
        disks.truncate(MAX_DISKS);
    }
    let paths: Vec<&Path> = disks.iter().map(|m| Path::new(&m.path)).collect();
    let figures = vitals::disks_within_limit(&paths, limit);
    out.push('{');
    let mut first = true;
    for (mount, figure) in disks.iter().zip(figures) {
        let d = match figure {
            Ok(d) => d,
            Err(e) => {
                left_out.push(LeftOut::new(
                    format!("disk {}", text::untrusted(&mount.path)),
                    text::describe_io(&e),
                ));
                continue;
            }
        };
        if !first {
            out.push(',');
        }
        first = false;
        text::json_string(out, &mount.path);
        let _ = write!(
            out,
            ":{{\"total\":{},\"used\":{},\"free\":{},\"percent\":{}}}",
            d.total,
            d.used,
            d.avail,
            text::decimal(proc::percent(d.used, d.used.saturating_add(d.avail)), 1)
        );
    }
    out.push('}');
}

fn totals(nics: &[proc::NetCounters]) -> (u64, u64) {
    nics.iter().fold((0, 0), |(r, s), n| {
        (
            r.saturating_add(n.bytes_recv),
            s.saturating_add(n.bytes_sent),
        )
    })
}

fn read_stat() -> (Option<CpuTimes>, Option<u64>) {
    read("/proc/stat").map_or((None, None), |t| proc::parse_stat(&t))
}

/// The interfaces, and whether some were cut off.
fn read_net() -> Option<(Vec<proc::NetCounters>, bool)> {
    let (text, cut) = read_capped("/proc/net/dev")?;
    let mut nics = proc::parse_net_dev(&text);
    let cut = cut || nics.len() > MAX_INTERFACES;
    nics.truncate(MAX_INTERFACES);
    Some((nics, cut))
}

/// Bytes read and written by the whole disks since boot.
fn disk_io() -> Option<(u64, u64)> {
    let text = read("/proc/diskstats")?;
    proc::parse_diskstats(&text, |name| {
        Path::new("/sys/block")
            .join(name.replace('/', "!"))
            .exists()
    })
}

/// TCP and UDP sockets over IPv4 and IPv6: psutil's `len(net_connections())`,
/// counted by the kernel in /proc/net/sockstat{,6} rather than by reading
/// /proc/net/{tcp,udp}[6], which costs about a millisecond per thousand
/// sockets (a busy proxy's TIME_WAITs made a push cost 5 ms).
fn connections() -> Option<u64> {
    let v4 = proc::parse_sockstat(&read("/proc/net/sockstat")?)?;
    // No IPv6 in this kernel: no IPv6 sockets.
    let v6 = read("/proc/net/sockstat6").map_or(Some(0), |t| proc::parse_sockstat(&t))?;
    Some(v4.saturating_add(v6))
}

/// psutil's `cpu_count(logical=False)` from sysfs; None where sysfs does
/// not say (psutil then reads /proc/cpuinfo; we send null).
fn physical_cpus() -> Option<u32> {
    let cpus = std::fs::read_dir("/sys/devices/system/cpu").ok()?;
    let mut lists = Vec::new();
    for entry in cpus.flatten().take(4096) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let topology = entry.path().join("topology");
        let list = read_path(&topology.join("core_cpus_list"))
            .or_else(|| read_path(&topology.join("thread_siblings_list")));
        lists.extend(list);
    }
    proc::physical_cores(lists.iter().map(String::as_str))
}

/// `platform.platform()`'s first parts and `platform.node()`, from uname.
fn os_info() -> (String, String) {
    // SAFETY: uname fills the zeroed struct we own.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("Linux".into(), String::new());
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let version = format!("Linux-{}-{}", field(&u.release), field(&u.machine));
    let cut = |s: String| s.chars().take(200).collect::<String>();
    (cut(version), cut(field(&u.nodename)))
}

fn read(path: &str) -> Option<String> {
    read_path(Path::new(path))
}

fn read_path(path: &Path) -> Option<String> {
    crate::files::read_small_file(path).ok()
}

/// The first 64 KiB of a /proc file, and whether there was more; cut at
/// the last whole line.
fn read_capped(path: &str) -> Option<(String, bool)> {
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(MAX_PROC_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    let cut = bytes.len() as u64 > MAX_PROC_BYTES;
    if cut {
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(end);
    }
    Some((String::from_utf8_lossy(&bytes).into_owned(), cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_has_the_required_fields_and_objects() {
        let mut collector = Collector::new();
        let collected = collector.collect(Duration::from_secs(1));
        let body: serde_json::Value = serde_json::from_str(&collected.body.unwrap()).unwrap();
        for field in [
            "cpu_percent",
            "memory_total",
            "memory_available",
            "memory_percent",
            "memory_used",
        ] {
            assert!(body[field].is_number(), "{field}: {}", body[field]);
        }
        assert!(body["disk_usage"].is_object() && body["network_io"].is_object());
        assert!(
            body["network_io"].get("lo").is_some(),
            "{}",
            body["network_io"]
        );
    }
}
