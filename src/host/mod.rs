//! The host as `/proc`, `/sys` and `statvfs` show it: one reader per fact,
//! shared by the health checks, the report's vitals and the metrics push,
//! so a figure means the same wherever it appears. The parsers (parse.rs)
//! are plain functions over the files' text; these are the thin reads
//! around them, each bounded in size; disk.rs bounds statvfs in time.

pub mod block;
pub mod disk;
pub mod ipc;
pub mod parse;
pub mod processes;
pub mod sockets;
pub mod units;

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub use parse::{CpuTimes, DiskIo, Memory, NetCounters};

/// The most of a listing (mounts, interfaces) read: a box with thousands
/// of them gets the first ones, and a line saying so.
const MAX_LISTING_BYTES: u64 = 64 * 1024;
/// Interfaces per push, whatever the box has.
pub const MAX_INTERFACES: usize = 256;

/// A small /proc or /sys file (at most 1 MiB, regular files only: a FIFO
/// or a device named by mistake cannot hang or flood us).
pub fn read(path: &str) -> io::Result<String> {
    read_path(Path::new(path))
}

pub fn read_path(path: &Path) -> io::Result<String> {
    crate::files::read_small_file(path)
}

/// The first 64 KiB of a listing, and whether there was more; cut at the
/// last whole line. Bytes that are not UTF-8 (in a mount point or an
/// interface name) are kept apart as `\xHH` ([`crate::text::bytes_name`]).
pub fn read_listing(path: &str) -> io::Result<(String, bool)> {
    let mut bytes = Vec::with_capacity(16 * 1024);
    File::open(path)?
        .take(MAX_LISTING_BYTES + 1)
        .read_to_end(&mut bytes)?;
    let cut = bytes.len() as u64 > MAX_LISTING_BYTES;
    if cut {
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(end);
    }
    Ok((crate::text::bytes_name(&bytes), cut))
}

fn unreadable(path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{path} has an unexpected format, or a figure no kernel gives"),
    )
}

/// Memory with psutil's meanings; `/proc/zoneinfo` is read only on the
/// old kernels that make us estimate what is available.
pub fn memory() -> io::Result<Memory> {
    let text = read("/proc/meminfo")?;
    let low_watermark = || {
        let pages = parse::parse_low_watermarks(&read("/proc/zoneinfo").ok()?)?;
        pages.checked_mul(page_size()?)
    };
    parse::parse_meminfo(&text, low_watermark).ok_or_else(|| unreadable("/proc/meminfo"))
}

/// The 1-, 5- and 15-minute load averages.
pub fn load() -> io::Result<[f64; 3]> {
    parse::parse_loadavg(&read("/proc/loadavg")?).ok_or_else(|| unreadable("/proc/loadavg"))
}

/// CPUs online: what the load average is spread over (not the cgroup's
/// quota, which does not change what "load" counts). From
/// /sys/devices/system/cpu/online, as glibc and psutil count them: musl's
/// sysconf(_SC_NPROCESSORS_ONLN) counts the process's affinity mask
/// instead, so under `taskset`, Docker's --cpuset-cpus or systemd's
/// CPUAffinity= the static binary would see fewer.
pub fn online_cpus() -> u32 {
    if let Some(n) = read("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|t| parse::parse_cpu_list(&t))
    {
        return n.max(1);
    }
    // SAFETY: sysconf reads a value and has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).unwrap_or(1).max(1)
}

pub fn page_size() -> Option<u64> {
    // SAFETY: sysconf reads a value and has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()
}

/// The soft limit on open file descriptors (None: unknown).
pub fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    #[allow(clippy::useless_conversion)] // rlim_t is 32 bits on some targets
    ok.then(|| match limit.rlim_cur {
        libc::RLIM_INFINITY => u64::MAX,
        n => u64::from(n),
    })
}

/// Clock ticks per second, the unit of /proc's CPU times (USER_HZ).
pub fn clock_ticks() -> Option<u64> {
    // SAFETY: sysconf reads a value and has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&n| n > 0)
}

/// The CPU times and the boot time (`btime`) of `/proc/stat`.
pub fn stat() -> (Option<CpuTimes>, Option<u64>) {
    read("/proc/stat").map_or((None, None), |t| parse::parse_stat(&t))
}

/// Time since boot, counting suspend (CLOCK_BOOTTIME): what a sample kept
/// by an earlier run of this boot is timed by.
pub fn since_boot() -> Option<std::time::Duration> {
    // SAFETY: clock_gettime writes into the zeroed struct we own.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    Some(std::time::Duration::new(secs, nanos))
}

/// Seconds since boot, from `/proc/uptime`.
pub fn uptime() -> Option<f64> {
    let text = read("/proc/uptime").ok()?;
    crate::number::parse_decimal(text.split_whitespace().next()?)
}

/// This boot's id: a reboot changes it.
pub fn boot_id() -> Option<String> {
    Some(
        read("/proc/sys/kernel/random/boot_id")
            .ok()?
            .trim()
            .to_string(),
    )
}

/// The agent's own resident memory, from `/proc/self/statm` (pages).
pub fn own_rss() -> Option<u64> {
    let statm = read("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size()?)
}

/// The interfaces of `/proc/net/dev`, and whether some were cut off.
pub fn interfaces() -> Option<(Vec<NetCounters>, bool)> {
    let (text, cut) = read_listing("/proc/net/dev").ok()?;
    let mut nics = parse::parse_net_dev(&text);
    let cut = cut || nics.len() > MAX_INTERFACES;
    nics.truncate(MAX_INTERFACES);
    Some((nics, cut))
}

/// Bytes read and written by the whole disks since boot: the devices of
/// /proc/diskstats that `/sys/block` lists (`block_devices`, sorted: see
/// [`block::block_names`]; a stat per device line cost 70 us a push on a
/// box with 20 lines).
pub fn disk_io(block_devices: &[String]) -> Option<DiskIo> {
    let text = read("/proc/diskstats").ok()?;
    parse::parse_diskstats(&text, |name| {
        block_devices.binary_search(&name.replace('/', "!")).is_ok()
    })
}

/// TCP and UDP sockets over IPv4 and IPv6: psutil's `len(net_connections())`,
/// counted by the kernel in /proc/net/sockstat{,6} rather than by reading
/// /proc/net/{tcp,udp}[6], which costs about a millisecond per thousand
/// sockets (a busy proxy's TIME_WAITs made a push cost 5 ms).
pub fn connections() -> Option<u64> {
    let v4 = parse::parse_sockstat(&read("/proc/net/sockstat").ok()?)?;
    // No IPv6 in this kernel: no IPv6 sockets.
    let v6 = read("/proc/net/sockstat6")
        .ok()
        .map_or(Some(0), |t| parse::parse_sockstat(&t))?;
    Some(v4.saturating_add(v6))
}

/// psutil's `cpu_count(logical=False)` from sysfs; None where sysfs does
/// not say (psutil then reads /proc/cpuinfo; we send null).
pub fn physical_cpus() -> Option<u32> {
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
            .or_else(|_| read_path(&topology.join("thread_siblings_list")));
        lists.extend(list.ok());
    }
    parse::physical_cores(lists.iter().map(String::as_str))
}

/// The kernel's filesystems that need a device (psutil's "physical" ones).
pub fn device_filesystems() -> Vec<String> {
    read("/proc/filesystems")
        .map(|t| parse::parse_device_filesystems(&t))
        .unwrap_or_default()
}

/// The kernel (`uname -r`), the machine (`uname -m`) and the host name.
pub struct Uname {
    pub release: String,
    pub machine: String,
    pub nodename: String,
}

pub fn uname() -> Option<Uname> {
    // SAFETY: uname fills the zeroed struct we own.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some(Uname {
        release: field(&u.release),
        machine: field(&u.machine),
        nodename: field(&u.nodename),
    })
}
