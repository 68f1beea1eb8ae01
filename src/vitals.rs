//! Host vitals from `/proc` and `statvfs`: what the memory, load and disk
//! checks compare, and what `--report vitals` sends. The parsers are plain
//! functions over the files' text; the readers are the thin I/O around them.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use std::fmt::Write;

use crate::number::parse_decimal;
use crate::text;

/// Memory as `/proc/meminfo` gives it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

impl Memory {
    pub fn available_percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.available as f64 * 100.0 / self.total as f64
    }
}

/// `MemTotal`, `MemAvailable` (kernels before 3.14 lack it: `MemFree` +
/// `Buffers` + `Cached` stands in), `SwapTotal`, `SwapFree`.
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let rest = rest.trim();
            let kib: u64 = rest
                .strip_suffix("kB")
                .unwrap_or(rest)
                .trim()
                .parse()
                .ok()?;
            kib.checked_mul(1024)
        })
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable").or_else(|| {
        Some(field("MemFree")? + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0))
    })?;
    Some(Memory {
        total,
        available: available.min(total),
        swap_total: field("SwapTotal").unwrap_or(0),
        swap_free: field("SwapFree").unwrap_or(0),
    })
}

pub fn memory() -> io::Result<Memory> {
    parse_meminfo(&read("/proc/meminfo")?).ok_or_else(|| unreadable("/proc/meminfo"))
}

/// The 1-, 5- and 15-minute load averages of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(parse_decimal);
    Some([fields.next()??, fields.next()??, fields.next()??])
}

pub fn load() -> io::Result<[f64; 3]> {
    parse_loadavg(&read("/proc/loadavg")?).ok_or_else(|| unreadable("/proc/loadavg"))
}

/// CPUs online: what the load average is spread over (not the cgroup's
/// quota, which does not change what "load" counts).
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf reads a value and has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).unwrap_or(1).max(1)
}

/// A filesystem's size as `df` counts it: `used + avail` is what ordinary
/// users can fill, so `used_percent` reads as df's Use% column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub total: u64,
    pub used: u64,
    pub avail: u64,
}

impl Disk {
    pub fn used_percent(&self) -> f64 {
        let usable = self.used + self.avail;
        if usable == 0 {
            return 0.0;
        }
        self.used as f64 * 100.0 / usable as f64
    }
}

pub fn disk(path: &Path) -> io::Result<Disk> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is
    // NUL-terminated and outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    let blocks = st.f_blocks as u64;
    let free = st.f_bfree as u64;
    let avail = st.f_bavail as u64;
    Ok(Disk {
        total: blocks.saturating_mul(frsize),
        used: blocks.saturating_sub(free).saturating_mul(frsize),
        avail: avail.saturating_mul(frsize),
    })
}

/// The agent's own resident memory, from `/proc/self/statm` (pages).
fn own_rss() -> Option<u64> {
    let statm = read("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf reads a value and has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    pages.checked_mul(page)
}

/// A /proc file, read as config files are (the same code, so no more bytes).
fn read(path: &str) -> io::Result<String> {
    crate::files::read_small_file(Path::new(path))
}

fn unreadable(path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{path} has an unexpected format"),
    )
}

/// The `host` object of a report body (docs/report.schema.json), written
/// into `out`. A value that cannot be read here (no `/proc` in a chroot,
/// say) is null rather than a missing beat.
pub fn write_host_json(out: &mut String, disks: &[&Path], disks_within: Duration) {
    let read = |path: &str| read(path).ok();
    let uptime =
        read("/proc/uptime").and_then(|t| t.split_whitespace().next().and_then(parse_decimal));
    let boot_id = read("/proc/sys/kernel/random/boot_id");
    let load = load().ok();
    let memory = memory().ok();
    let load_at = |i: usize| load.map(|l| text::decimal(l[i], 2));
    out.push_str("{\"uptime_s\":");
    out.push_str(&or_null(uptime.map(|u| text::decimal(u, 2))));
    out.push_str(",\"boot_id\":");
    match boot_id {
        Some(id) => text::json_string(out, id.trim()),
        None => out.push_str("null"),
    }
    let fields = [
        ("load_1", load_at(0)),
        ("load_5", load_at(1)),
        ("load_15", load_at(2)),
        ("cpus", Some(online_cpus().to_string())),
        ("mem_total_bytes", memory.map(|m| m.total.to_string())),
        (
            "mem_available_bytes",
            memory.map(|m| m.available.to_string()),
        ),
        (
            "swap_used_bytes",
            memory.map(|m| m.swap_total.saturating_sub(m.swap_free).to_string()),
        ),
    ];
    for (name, value) in fields {
        let _ = write!(out, ",\"{name}\":{}", or_null(value));
    }
    out.push_str(",\"disks\":[");
    let figures = disks_within_limit(disks, disks_within);
    for (i, (path, d)) in disks.iter().zip(figures).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"path\":");
        text::json_string(out, &path.to_string_lossy());
        let d = d.ok();
        let _ = write!(
            out,
            ",\"total_bytes\":{},\"used_bytes\":{},\"avail_bytes\":{}}}",
            or_null(d.map(|d| d.total.to_string())),
            or_null(d.map(|d| d.used.to_string())),
            or_null(d.map(|d| d.avail.to_string()))
        );
    }
    let _ = write!(
        out,
        "],\"agent_rss_bytes\":{}}}",
        or_null(own_rss().map(|r| r.to_string()))
    );
}

/// Paths whose statvfs has not returned: a hung mount is not asked again
/// (one more stuck thread per beat) until it answers.
static STUCK: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn stuck() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // Held only to push or remove a path: a poisoned list is still good.
    STUCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`disk`] for each path, all at once on small threads, each given up
/// after `limit` (a dead NFS server, a FUSE daemon that stopped reading):
/// the beat never waits longer than that for its figures.
pub fn disks_within_limit(paths: &[&Path], limit: Duration) -> Vec<io::Result<Disk>> {
    let deadline = Instant::now().checked_add(limit);
    let pending: Vec<_> = paths
        .iter()
        .map(|path| {
            let path = path.to_path_buf();
            if stuck().contains(&path) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "still hung: an earlier statvfs has not returned",
                ));
            }
            stuck().push(path.clone());
            let key = path.clone();
            let (tx, rx) = mpsc::sync_channel(1);
            let spawned = thread::Builder::new().stack_size(64 * 1024).spawn(move || {
                let result = disk(&path);
                stuck().retain(|p| p != &path);
                let _ = tx.send(result);
            });
            match spawned {
                Ok(_) => Ok(rx),
                Err(e) => {
                    stuck().retain(|p| p != &key);
                    Err(e)
                }
            }
        })
        .collect();
    pending
        .into_iter()
        .map(|waiting| {
            let rx = waiting?;
            let left = deadline.map_or(limit, |d| d.saturating_duration_since(Instant::now()));
            rx.recv_timeout(left).unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {}", crate::clock::format_duration(limit)),
                ))
            })
        })
        .collect()
}

fn or_null(value: Option<String>) -> String {
    value.unwrap_or_else(|| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_in_bytes_with_a_fallback_for_old_kernels() {
        let text = "MemTotal:        8000000 kB\nMemFree:  1000 kB\nMemAvailable:    2000000 kB\n\
                    Buffers: 1 kB\nSwapTotal: 100 kB\nSwapFree: 40 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.total, 8_000_000 * 1024);
        assert_eq!(m.available, 2_000_000 * 1024);
        assert_eq!(m.swap_total - m.swap_free, 60 * 1024);
        assert!((m.available_percent() - 25.0).abs() < 1e-9);
        let old = "MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 15 kB\n";
        assert_eq!(parse_meminfo(old).unwrap().available, 30 * 1024);
        assert_eq!(parse_meminfo("MemFree: 10 kB\n"), None);
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn loadavg_gives_three_numbers() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/467 12345\n"),
            Some([0.52, 0.58, 0.59])
        );
        assert_eq!(parse_loadavg("0.52 x 0.59"), None);
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn disk_use_counts_like_df() {
        // 100 blocks, 20 free of which 10 are reserved for root.
        let d = Disk {
            total: 100,
            used: 80,
            avail: 10,
        };
        assert!((d.used_percent() - 88.888).abs() < 0.01);
        assert_eq!(
            disk(Path::new("/nonexistent-dir/x")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let root = disk(Path::new("/")).unwrap();
        assert!(root.total > 0 && root.used <= root.total);
    }
}
