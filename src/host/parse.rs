//! The `/proc` and `/sys` files the agent reads, parsed as psutil parses
//! them on Linux (docs/metrics.md gives each field's file and formula).
//! Plain functions over the files' text: the readers are in mod.rs.

use crate::number::parse_decimal;

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Every field but guest and guest_nice, which the kernel already
    /// counts in user and nice (psutil's `_cpu_tot_time`).
    pub total: u64,
    /// `total` less idle and iowait (psutil's `_cpu_busy_time`).
    pub busy: u64,
    /// user + nice + system: the ticks the kernel charges to processes
    /// (irq, softirq and steal it does not), so what every process's
    /// `utime + stime` together add up to, and those that ended.
    pub tasks: u64,
}

/// The `cpu` line and `btime` (boot time, seconds since the epoch) of `/proc/stat`.
pub fn parse_stat(text: &str) -> (Option<CpuTimes>, Option<u64>) {
    let mut cpu = None;
    let mut btime = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cpu ") {
            let f: Vec<u64> = rest
                .split_whitespace()
                .map_while(|n| n.parse().ok())
                .collect();
            // user nice system idle [iowait irq softirq steal guest guest_nice]
            if f.len() >= 4 {
                let field = |i: usize| f.get(i).copied().unwrap_or(0);
                let all = f.iter().take(8).fold(0u64, |a, &n| a.saturating_add(n));
                let idle = field(3).saturating_add(field(4));
                cpu = Some(CpuTimes {
                    total: all,
                    busy: all.saturating_sub(idle),
                    tasks: field(0).saturating_add(field(1)).saturating_add(field(2)),
                });
            }
        } else if let Some(rest) = line.strip_prefix("btime ") {
            btime = rest.trim().parse().ok();
        }
    }
    (cpu, btime)
}

/// psutil's `cpu_percent`: the busy share of the ticks between two
/// samples, 0-100 with one decimal; 0 when no tick passed (as psutil).
pub fn cpu_percent(before: CpuTimes, now: CpuTimes) -> f64 {
    let total = now.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    let busy = now.busy.saturating_sub(before.busy).min(total);
    round1(busy as f64 * 100.0 / total as f64)
}

/// `/proc/meminfo` as psutil's `virtual_memory()` and `swap_memory()`
/// read it, in bytes: the one meaning of each figure that the memory
/// check, the report's vitals and the metrics push share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub free: u64,
    /// psutil's `available`: see [`parse_meminfo`].
    pub available: u64,
    pub buffers: u64,
    /// `Cached` + `SReclaimable`, as psutil (and `free`) count it.
    pub cached: u64,
    /// `Shmem`.
    pub shared: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

impl Memory {
    /// psutil's `used`: total - free - cached - buffers, or total - free
    /// when that would be negative (LXC containers report odd figures).
    pub fn used(&self) -> u64 {
        self.total
            .checked_sub(self.free)
            .and_then(|n| n.checked_sub(self.cached))
            .and_then(|n| n.checked_sub(self.buffers))
            .unwrap_or_else(|| self.total.saturating_sub(self.free))
    }

    /// psutil's `percent`: (total - available) / total.
    pub fn percent(&self) -> f64 {
        percent(self.total.saturating_sub(self.available), self.total)
    }

    /// What the `memory N%` check compares: available / total.
    pub fn available_percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.available as f64 * 100.0 / self.total as f64
    }

    pub fn swap_used(&self) -> u64 {
        self.swap_total.saturating_sub(self.swap_free)
    }

    pub fn swap_percent(&self) -> f64 {
        percent(self.swap_used(), self.swap_total)
    }
}

/// None without `MemTotal`. `available` follows psutil: the kernel's
/// `MemAvailable`; where it is missing (kernels before 3.14) or 0 (a
/// kernel bug psutil works around), the kernel's own estimate redone from
/// the page cache, the reclaimable slab and the zones' low watermarks
/// (`low_watermark`, in bytes, read only then), or free + cached where
/// those are missing too; never below 0, and the free memory where it
/// exceeds the total (LXC and OpenVZ containers show the host's figure).
pub fn parse_meminfo(text: &str, low_watermark: impl FnOnce() -> Option<u64>) -> Option<Memory> {
    let mut m = Memory::default();
    let mut total = None;
    let (mut available, mut cached, mut reclaimable) = (None, 0, None);
    let (mut active_file, mut inactive_file) = (None, None);
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let rest = rest.trim();
        let Some(kib) = rest
            .strip_suffix("kB")
            .unwrap_or(rest)
            .trim()
            .parse::<u64>()
            .ok()
        else {
            continue;
        };
        // No kernel reports more than 2^56 bytes (64 PiB) of anything here;
        // a bigger figure (a broken container's /proc) is refused rather
        // than sent to a server that cannot store it.
        let bytes = kib.checked_mul(1024).filter(|&b| b <= MAX_BYTES)?;
        match name {
            "MemTotal" => total = Some(bytes),
            "MemFree" => m.free = bytes,
            "MemAvailable" => available = Some(bytes),
            "Buffers" => m.buffers = bytes,
            "Cached" => cached = bytes,
            "SReclaimable" => reclaimable = Some(bytes),
            "Active(file)" => active_file = Some(bytes),
            "Inactive(file)" => inactive_file = Some(bytes),
            "Shmem" => m.shared = bytes,
            "SwapTotal" => m.swap_total = bytes,
            "SwapFree" => m.swap_free = bytes,
            _ => {}
        }
    }
    m.total = total?;
    m.cached = cached.saturating_add(reclaimable.unwrap_or(0));
    let estimate = || {
        let fallback = m.free.saturating_add(cached) as f64;
        let (Some(active), Some(inactive), Some(slab)) = (active_file, inactive_file, reclaimable)
        else {
            return fallback;
        };
        let Some(low) = low_watermark() else {
            return fallback;
        };
        let (low, slab) = (low as f64, slab as f64);
        let pagecache = active.saturating_add(inactive) as f64;
        m.free as f64 - low + pagecache - (pagecache / 2.0).min(low) + slab - (slab / 2.0).min(low)
    };
    let available = match available {
        Some(kernel) if kernel > 0 => kernel,
        // Below zero is "none"; the cast saturates.
        _ => estimate().max(0.0) as u64,
    };
    m.available = if available > m.total {
        m.free
    } else {
        available
    };
    Some(m)
}

/// The most bytes a /proc figure may say: 2^56 (64 PiB; Linux addresses
/// at most 2^52 bytes of physical memory).
pub const MAX_BYTES: u64 = 1 << 56;
/// The highest load average taken as real: a million runnable tasks.
const MAX_LOAD: f64 = 1e6;

/// The sum of the zones' `low` watermarks in `/proc/zoneinfo`, in pages.
pub fn parse_low_watermarks(zoneinfo: &str) -> Option<u64> {
    let mut sum = None;
    for line in zoneinfo.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("low")
            && let Some(pages) = words.next().and_then(|n| n.parse::<u64>().ok())
        {
            sum = Some(sum.unwrap_or(0u64).saturating_add(pages));
        }
    }
    sum
}

/// How many CPUs a kernel CPU list names (`0-3,5,8-9`: 7).
pub fn parse_cpu_list(text: &str) -> Option<u32> {
    let mut count = 0u32;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        count = count.saturating_add(last.checked_sub(first)?.saturating_add(1));
    }
    (count > 0).then_some(count)
}

/// The 1-, 5- and 15-minute load averages of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text
        .split_whitespace()
        .map(|f| parse_decimal(f).filter(|l| l.is_finite() && (0.0..=MAX_LOAD).contains(l)));
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// One interface's counters from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetCounters {
    pub name: String,
    pub bytes_recv: u64,
    pub packets_recv: u64,
    pub bytes_sent: u64,
    pub packets_sent: u64,
}

/// Every interface of `/proc/net/dev`, in its order (psutil's
/// `net_io_counters(pernic=True)`, loopback included).
pub fn parse_net_dev(text: &str) -> Vec<NetCounters> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .map_while(|n| n.parse().ok())
                .collect();
            // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets ...
            if f.len() < 10 {
                return None;
            }
            Some(NetCounters {
                name: name.trim().to_string(),
                bytes_recv: f[0],
                packets_recv: f[1],
                bytes_sent: f[8],
                packets_sent: f[9],
            })
        })
        .collect()
}

/// Bytes read and written by each device of `/proc/diskstats` that
/// `keep` accepts (psutil sums whole disks, not partitions: a device is
/// kept when `/sys/block/NAME` exists). Sectors are 512 bytes there
/// whatever the disk's own sector size.
pub fn parse_diskstats(text: &str, keep: impl Fn(&str) -> bool) -> Option<DiskIo> {
    let mut seen = false;
    let (mut read, mut written) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // major minor name reads merged sectors_read ms writes merged sectors_written ...
        if f.len() < 10 || !keep(f[2]) {
            continue;
        }
        let (Ok(r), Ok(w)) = (f[5].parse::<u64>(), f[9].parse::<u64>()) else {
            continue;
        };
        seen = true;
        read = read.saturating_add(r.saturating_mul(512));
        written = written.saturating_add(w.saturating_mul(512));
    }
    seen.then_some(DiskIo { read, written })
}

/// Bytes read from and written to the whole disks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskIo {
    pub read: u64,
    pub written: u64,
}

/// Sockets of `/proc/net/sockstat` (or `sockstat6`): TCP in use plus
/// TIME_WAIT, and UDP, as the lines of /proc/net/{tcp,udp}[6] count them
/// (a half-open SYN_RECV is a line there and not here).
pub fn parse_sockstat(text: &str) -> Option<u64> {
    let mut total = None;
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        if !matches!(proto, "TCP" | "UDP" | "TCP6" | "UDP6") {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let value = |name: &str| {
            let i = words.iter().position(|w| *w == name)?;
            words.get(i + 1)?.parse::<u64>().ok()
        };
        let mut n = value("inuse")?;
        if proto == "TCP" {
            // TIME_WAIT of both families is counted here, once.
            n = n.saturating_add(value("tw").unwrap_or(0));
        }
        total = Some(total.unwrap_or(0u64).saturating_add(n));
    }
    total
}

/// One mount of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The source, as `/proc/self/mounts` and psutil name it.
    pub device: String,
    /// The mount point as text ([`crate::text::bytes_name`]): the disk's
    /// key in the push.
    pub path: String,
    /// The mount point as the kernel has it, for statvfs.
    pub at: std::path::PathBuf,
    pub fstype: String,
    /// "MAJOR:MINOR" of the device, which names the disk under it in
    /// /sys/dev/block.
    pub device_number: String,
}

/// `/proc/self/mountinfo` (one file gives what `/proc/self/mounts`, which
/// psutil reads, and the device numbers would give in two: each /proc
/// file costs the kernel 30-150 us), with the kernel's octal escapes
/// (`\040` for a space) undone, as getmntent does for psutil. A line:
/// `ID PARENT MAJOR:MINOR ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE
/// SUPER-OPTIONS`.
pub fn parse_mountinfo(text: &[u8]) -> Vec<Mount> {
    use std::os::unix::ffi::OsStringExt;
    let name = |field: &[u8]| crate::text::bytes_name(&unescape_octal(field));
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut f = line.split(|&b| b == b' ');
            let device_number = f.nth(2)?;
            let point = f.nth(1)?;
            let mut after = f.skip_while(|w| *w != b"-").skip(1);
            let (fstype, source) = (after.next()?, after.next()?);
            Some(Mount {
                device: name(source),
                path: name(point),
                at: std::ffi::OsString::from_vec(unescape_octal(point)).into(),
                fstype: name(fstype),
                device_number: name(device_number),
            })
        })
        .collect()
}

pub fn unescape_octal(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], code) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The filesystems of `/proc/filesystems` that sit on a device (no
/// `nodev`), plus zfs: psutil's `disk_partitions(all=False)` keeps only these.
/// Sorted, for [`is_real_disk`]'s binary search (a few dozen names: a hash
/// set's code costs more bytes than it saves time).
pub fn parse_device_filesystems(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .chain(["zfs".to_string()])
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Filesystems the server's agent leaves out even when psutil lists them.
const VIRTUAL_FILESYSTEMS: [&str; 11] = [
    "squashfs", "tmpfs", "devtmpfs", "proc", "sysfs", "cgroup", "cgroup2", "ramfs", "overlay",
    "udev", "virtfs",
];

/// Mount points the server's agent leaves out, with everything below them;
/// `/` is always kept.
const EPHEMERAL_MOUNTS: [&str; 11] = [
    "/tmp",
    "/var/tmp",
    "/dev/shm",
    "/dev",
    "/run",
    "/var/run",
    "/var/lock",
    "/snap",
    "/boot/efi",
    "/proc",
    "/sys",
];

/// Whether a mount is one of the box's disks as the server's agent counts
/// them: psutil's device filesystems, less virtual and ephemeral ones.
pub fn is_real_disk(mount: &Mount, device_filesystems: &[String]) -> bool {
    if mount.device.is_empty() || device_filesystems.binary_search(&mount.fstype).is_err() {
        return false;
    }
    if VIRTUAL_FILESYSTEMS.contains(&mount.fstype.to_ascii_lowercase().as_str()) {
        return false;
    }
    if mount.path.contains("/virtfs/") || mount.device.to_ascii_lowercase().contains("virtfs") {
        return false;
    }
    let path = format!("/{}", mount.path.trim().trim_matches('/'));
    path == "/"
        || !EPHEMERAL_MOUNTS
            .iter()
            .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// psutil's `usage_percent(.., round_=1)`.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    round1(part as f64 * 100.0 / whole as f64)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Distinct cores among the CPUs' `topology/core_cpus_list` (or the older
/// `thread_siblings_list`) texts: psutil's `cpu_count(logical=False)`.
pub fn physical_cores<'a>(siblings: impl Iterator<Item = &'a str>) -> Option<u32> {
    let mut distinct: Vec<&str> = siblings.map(str::trim).filter(|s| !s.is_empty()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    u32::try_from(distinct.len()).ok().filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_the_busy_share_of_the_ticks_between_samples() {
        let (before, btime) = parse_stat(
            "cpu  100 0 100 700 100 0 0 0 50 0\ncpu0 1 2 3 4\nintr 5\nbtime 1700000000\n",
        );
        let before = before.unwrap();
        // guest (50) is already in user: not counted twice.
        assert_eq!(before.total, 1000);
        assert_eq!(before.busy, 200);
        assert_eq!(btime, Some(1_700_000_000));
        let (now, _) = parse_stat("cpu  130 0 120 740 110 0 0 0 60 0\n");
        assert_eq!(cpu_percent(before, now.unwrap()), 50.0);
        assert_eq!(cpu_percent(before, before), 0.0);
        // A counter that went backwards (a container's odd /proc) is not a negative share.
        let (back, _) = parse_stat("cpu  10 0 10 10 0\n");
        assert_eq!(cpu_percent(before, back.unwrap()), 0.0);
        assert_eq!(parse_stat("cpu  x\n").0, None);
    }

    #[test]
    fn memory_reads_as_psutils_virtual_memory() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nBuffers: 50 kB\n\
                    Cached: 300 kB\nSwapCached: 0 kB\nShmem: 20 kB\nSReclaimable: 50 kB\n\
                    SwapTotal: 400 kB\nSwapFree: 300 kB\n";
        let m = parse_meminfo(text, || panic!("MemAvailable is there")).unwrap();
        assert_eq!(m.cached, 350 * 1024);
        assert_eq!(m.used(), 500 * 1024);
        assert_eq!(m.percent(), 40.0);
        assert!((m.available_percent() - 60.0).abs() < 1e-9);
        assert_eq!(m.shared, 20 * 1024);
        assert_eq!((m.swap_used(), m.swap_percent()), (100 * 1024, 25.0));
        let odd = parse_meminfo("MemTotal: 100 kB\nMemFree: 50 kB\nCached: 90 kB\n", || None);
        let odd = odd.unwrap();
        assert_eq!(odd.used(), 50 * 1024, "never below zero");
        assert_eq!(
            odd.available,
            50 * 1024,
            "above the total: the free memory, as psutil"
        );
        assert_eq!(parse_meminfo("MemFree: 1 kB\n", || None), None);
        let huge = format!("MemTotal: {} kB\nMemFree: 1 kB\n", u64::MAX);
        assert_eq!(parse_meminfo(&huge, || None), None, "no kernel's MemTotal");
    }

    #[test]
    fn available_memory_without_the_kernels_figure_is_psutils_estimate() {
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 300 kB\nBuffers: 50 kB\n";
        // No page cache split: free + cached, buffers not counted (psutil).
        assert_eq!(parse_meminfo(old, || None).unwrap().available, 400 * 1024);
        let split = "MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 300 kB\nActive(file): 200 kB\n\
                     Inactive(file): 100 kB\nSReclaimable: 40 kB\nMemAvailable: 0 kB\n";
        // free - low + cache - min(cache/2, low) + slab - min(slab/2, low)
        let low = 10 * 1024;
        let m = parse_meminfo(split, || Some(low)).unwrap();
        assert_eq!(m.available, (100 - 10 + 300 - 10 + 40 - 10) * 1024);
        let none = parse_meminfo(split, || Some(10_000 * 1024)).unwrap();
        assert_eq!(none.available, 0, "an estimate below zero is none");
        assert_eq!(
            parse_low_watermarks(
                "Node 0, zone DMA\n  pages free 3\n        low      7\n  high 9\nNode 0, zone Normal\n        low      100\n"
            ),
            Some(107)
        );
    }

    #[test]
    fn cpu_lists_count_every_cpu_they_name() {
        assert_eq!(parse_cpu_list("0-3\n"), Some(4));
        assert_eq!(parse_cpu_list("0-3,5,8-9"), Some(7));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn loadavg_gives_three_numbers() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/467 12345\n"),
            Some([0.52, 0.58, 0.59])
        );
        assert_eq!(parse_loadavg("0.52 x 0.59"), None);
        assert_eq!(parse_loadavg("1e999 0.1 0.1"), None, "no kernel's load");
        assert_eq!(parse_loadavg("2000000 0.1 0.1"), None);
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn interfaces_and_disks_count_like_psutil() {
        let dev = "Inter-|   Receive  |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets\n\
                   \x20   lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n  eth0: 5000 40 0 0 0 0 0 1 700 9 0 0 0 0 0 0\n";
        let nics = parse_net_dev(dev);
        assert_eq!(nics.len(), 2);
        assert_eq!(nics[1].name, "eth0");
        assert_eq!(
            (
                nics[1].bytes_recv,
                nics[1].packets_recv,
                nics[1].bytes_sent,
                nics[1].packets_sent
            ),
            (5000, 40, 700, 9)
        );
        let stats = "   8       0 sda 10 0 100 5 20 0 200 7 0 9 12 0 0 0 0\n   8       1 sda1 1 0 50 1 2 0 60 1 0 1 2\n \
                     7 0 loop0 1 0 8 0 0 0 0 0 0 0 0\n";
        let whole_disks = |name: &str| !name.starts_with("sda1");
        assert_eq!(
            parse_diskstats(stats, whole_disks),
            Some(DiskIo {
                read: 108 * 512,
                written: 200 * 512
            })
        );
        assert_eq!(parse_diskstats(stats, |_| false), None);
    }

    #[test]
    fn interfaces_whose_names_differ_only_in_bytes_that_are_not_utf8_stay_two() {
        let mut table = b"Inter-|\n face |\n".to_vec();
        for byte in [0xe9u8, 0xe8] {
            table.extend_from_slice(b"  et");
            table.push(byte);
            table.extend_from_slice(b"0: 100 2 0 0 0 0 0 0 300 4 0 0 0 0 0 0\n");
        }
        let nics = parse_net_dev(&crate::text::bytes_name(&table));
        let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["et\\xE90", "et\\xE80"]);
    }

    #[test]
    fn disks_are_the_ones_the_servers_agent_reports() {
        let fs = parse_device_filesystems(
            "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\tnfs\n\tvfat\n\tsquashfs\n",
        );
        assert_eq!(fs, ["ext4", "squashfs", "vfat", "zfs"]);
        let mounts = parse_mountinfo(
            b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
              23 22 8:2 / /my\\040data rw shared:2 master:1 - ext4 /dev/sda2 rw\n\
              24 22 0:25 / /run rw - tmpfs tmpfs rw\n\
              25 22 8:3 / /boot/efi rw - vfat /dev/sda3 rw\n\
              26 22 7:1 / /snap/core/1 ro - squashfs /dev/loop1 ro\n\
              27 22 0:50 / /mnt/nfs rw - nfs srv:/x rw\n\
              28 22 8:4 / /var/tmp rw - ext4 /dev/sda4 rw\n\
              29 22 8:5 / /runner rw - ext4 /dev/sda5 rw\n",
        );
        assert_eq!(mounts[1].path, "/my data");
        assert_eq!(mounts[1].device, "/dev/sda2");
        assert_eq!(mounts[1].device_number, "8:2");
        assert_eq!(mounts[5].device, "srv:/x");
        assert_eq!(mounts[5].fstype, "nfs");
        let kept: Vec<&str> = mounts
            .iter()
            .filter(|m| is_real_disk(m, &fs))
            .map(|m| m.path.as_str())
            .collect();
        assert_eq!(kept, ["/", "/my data", "/runner"]);
    }

    #[test]
    fn sockets_are_counted_by_the_kernel() {
        let v4 = "sockets: used 9\nTCP: inuse 3 orphan 0 tw 2006 alloc 4 mem 0\nUDP: inuse 2 mem 0\n\
                  UDPLITE: inuse 7\nRAW: inuse 1\n";
        assert_eq!(parse_sockstat(v4), Some(2011));
        assert_eq!(
            parse_sockstat("TCP6: inuse 4\nUDP6: inuse 1\nRAW6: inuse 9\n"),
            Some(5)
        );
        assert_eq!(parse_sockstat("nothing here\n"), None);
    }

    #[test]
    fn physical_cores_are_distinct_sibling_lists() {
        let lists = ["0-1\n", "0-1\n", "2-3\n", "2-3\n"];
        assert_eq!(physical_cores(lists.into_iter()), Some(2));
        assert_eq!(physical_cores(std::iter::empty()), None);
    }
}
