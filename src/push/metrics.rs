//! The body of `POST /api/agent/metrics/`: the box's CPU, memory, swap,
//! load, disks, network and uptime with psutil's meanings (docs/metrics.md
//! gives each field's source and formula). A push is a [`Sample`] read from
//! the host, the rates between it and the previous one (never over a
//! sleep), and the disks' sizes; the body is a struct serde writes.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::body::{Keyed, Outside, Version, round, to_json};
use super::kept::{Counters, Kept};
use super::top::{self, TopProcesses, Tracker};
use super::{Collect, Collected, LeftOut, Moment};
use crate::host::block::{self, BlockDisk, RaidArray, Storage};
use crate::host::disk::{self, MAX_DISKS};
use crate::host::ipc::{self, IpcStats};
use crate::host::{self, CpuTimes, DiskIo, MAX_INTERFACES, Memory, NetCounters, parse};
use crate::text;

/// The longest all the disks' statvfs may take together.
const DISKS_LIMIT: Duration = Duration::from_secs(1);

/// The counters a push sends the rates of, read at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Since boot (CLOCK_BOOTTIME): comparable with a sample kept by an
    /// earlier run of this boot.
    at: Duration,
    cpu: Option<CpuTimes>,
    /// `btime`: seconds since the epoch at boot.
    boot: Option<u64>,
    disk_io: Option<DiskIo>,
    /// Bytes received and sent over every interface.
    net_io: Option<(u64, u64)>,
}

impl Sample {
    /// `block_devices`: [`block::block_names`] now.
    fn read(nics: Option<&[NetCounters]>, block_devices: &[String]) -> Sample {
        let (cpu, boot) = host::stat();
        Sample {
            at: host::since_boot().unwrap_or_default(),
            cpu,
            boot,
            disk_io: host::disk_io(block_devices),
            net_io: nics.filter(|n| !n.is_empty()).map(totals),
        }
    }
}

/// Per-second rates from `before` to `now`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Rates {
    disk_read: Option<u64>,
    disk_write: Option<u64>,
    net_sent: Option<u64>,
    net_recv: Option<u64>,
}

impl Rates {
    fn between(before: &Sample, now: &Sample) -> Rates {
        let seconds = now.at.saturating_sub(before.at).as_secs_f64();
        let rate = |now: Option<u64>, before: Option<u64>| -> Option<u64> {
            // A counter that went back (a reset interface) has no honest rate.
            let delta = now?.checked_sub(before?)?;
            (seconds > 0.0).then(|| (delta as f64 / seconds) as u64)
        };
        let disk = |s: &Sample, f: fn(DiskIo) -> u64| s.disk_io.map(f);
        let net = |s: &Sample, f: fn((u64, u64)) -> u64| s.net_io.map(f);
        Rates {
            disk_read: rate(disk(now, |d| d.read), disk(before, |d| d.read)),
            disk_write: rate(disk(now, |d| d.written), disk(before, |d| d.written)),
            net_sent: rate(net(now, |n| n.1), net(before, |n| n.1)),
            net_recv: rate(net(now, |n| n.0), net(before, |n| n.0)),
        }
    }
}

/// The metrics body, field for field as the server reads it; None is null.
#[derive(Debug, Serialize)]
struct Metrics {
    #[serde(flatten)]
    version: Version,
    os_type: &'static str,
    os_version: Outside,
    hostname: Outside,
    cpu_percent: f64,
    cpu_count: u32,
    physical_cpu_count: Option<u32>,
    cpu_load_avg_1m: Option<f64>,
    cpu_load_avg_5m: Option<f64>,
    cpu_load_avg_15m: Option<f64>,
    memory_total: u64,
    memory_available: u64,
    memory_percent: f64,
    memory_used: u64,
    memory_buffers: u64,
    memory_cached: u64,
    memory_shared: u64,
    swap_total: Option<u64>,
    swap_used: Option<u64>,
    swap_percent: Option<f64>,
    system_uptime_seconds: Option<u64>,
    network_connections: Option<u64>,
    disk_read_bytes_total: Option<u64>,
    disk_write_bytes_total: Option<u64>,
    disk_io_read: Option<u64>,
    disk_io_write: Option<u64>,
    net_io_sent: Option<u64>,
    net_io_recv: Option<u64>,
    disk_usage: Keyed<DiskUsage>,
    network_io: Keyed<NetIo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_processes: Option<TopProcesses>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipc_stats: Option<IpcStats>,
    disk_hardware: DiskHardware,
}

/// psutil's `disk_usage(mount)`, and the disk under it as the server's
/// agent tags it (absent where no disk holds the mount: btrfs, a VM's
/// virtual device without sysfs).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct DiskUsage {
    total: u64,
    used: u64,
    free: u64,
    percent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    physical_disk: Option<Outside>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raid: Option<Outside>,
}

/// `disk_hardware`: the Storage hardware card.
#[derive(Debug, Serialize)]
struct DiskHardware {
    physical_disk_count: usize,
    disks: Vec<BlockDisk>,
    raid_arrays: Vec<RaidArray>,
    /// The first array's level, or "none".
    raid: String,
}

/// psutil's `net_io_counters(pernic=True)[nic]`, the fields the server keeps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct NetIo {
    bytes_sent: u64,
    bytes_recv: u64,
    packets_sent: u64,
    packets_recv: u64,
}

impl Sample {
    fn counters(&self) -> Counters {
        Counters {
            at: self.at,
            cpu: self.cpu.map(|c| (c.total, c.busy)),
            disk: self.disk_io.map(|d| (d.read, d.written)),
            net: self.net_io,
        }
    }

    fn from_counters(c: Counters) -> Sample {
        Sample {
            at: c.at,
            // A kept sample gives the CPU share only: `tasks` is for the
            // process ranking, which a run of its own reads whole.
            cpu: c.cpu.map(|(total, busy)| CpuTimes {
                total,
                busy,
                tasks: 0,
            }),
            boot: None,
            disk_io: c.disk.map(|(read, written)| DiskIo { read, written }),
            net_io: c.net,
        }
    }
}

/// Keeps the previous sample between pushes.
pub struct Collector {
    /// None in a one-beat run that found no sample of an earlier run.
    previous: Option<Sample>,
    /// Where a one-beat run keeps its sample for the next, with this boot's id.
    kept: Option<(Kept, String)>,
    /// The processes' CPU ticks at the previous push, and their users.
    top: Tracker,
    /// Cores do not come and go while the agent runs; counted once.
    physical_cpus: Option<u32>,
    /// The kernel's filesystems that need a device, read once: a module
    /// loaded later adds one whose mounts count from the next start.
    device_filesystems: Vec<String>,
    storage: Storage,
}

impl Collector {
    /// Takes the first sample: the first push's CPU share and rates cover
    /// the time from here.
    pub fn new() -> Collector {
        let nics = host::interfaces().map(|(nics, _)| nics);
        let first = Sample::read(nics.as_deref(), &block::block_names());
        let mut top = Tracker::new(None);
        // The first push's CPU shares count from here.
        top.sample(&top_host(&first, 0));
        Collector {
            previous: Some(first),
            kept: None,
            top,
            physical_cpus: host::physical_cpus(),
            device_filesystems: host::device_filesystems(),
            storage: Storage::default(),
        }
    }

    /// For `--once` and `run`: the previous sample is the one an earlier
    /// run of this boot kept in `kept`, and this run keeps its own there.
    pub fn resumed(kept: Kept) -> Collector {
        let boot_id = host::boot_id().unwrap_or_default();
        Collector {
            previous: kept.load(&boot_id).map(Sample::from_counters),
            top: Tracker::new(kept.load_processes(&boot_id)),
            kept: Some((kept, boot_id)),
            physical_cpus: host::physical_cpus(),
            device_filesystems: host::device_filesystems(),
            storage: Storage::default(),
        }
    }

    /// A metrics body now. The statvfs calls share at most `limit` (and a
    /// second): a disk that does not answer is left out of this push.
    fn body(&mut self, limit: Duration, left_out: &mut Vec<LeftOut>) -> Option<String> {
        let (nics, nics_cut) = host::interfaces().unwrap_or_default();
        // Listed once a push: for the disks' I/O and the storage inventory.
        let block_devices = block::block_names();
        let now = Sample::read(Some(&nics), &block_devices);
        let before = self.previous.replace(now);
        if let Some((kept, boot_id)) = &self.kept
            && let Err(e) = kept.save(boot_id, &now.counters())
        {
            left_out.push(LeftOut::new(
                "the next run's rates",
                format!(
                    "cannot keep this sample in {}: {}",
                    crate::text::untrusted(&kept.file.display().to_string()),
                    text::describe_io(&e)
                ),
            ));
        }
        let Some(before) = before else {
            left_out.push(LeftOut::expected(
                "everything",
                "this is the first run since boot, and the CPU share and rates need an \
                 earlier sample: this run keeps one, and the next run pushes metrics; this \
                 beat goes as a plain heartbeat",
            ));
            return None;
        };
        let memory = host::memory();
        let (Some(cpu_now), Some(cpu_before), Ok(memory)) = (now.cpu, before.cpu, &memory) else {
            let why = match &memory {
                Err(e) => text::describe_io(e),
                Ok(_) => "/proc/stat cannot be read".into(),
            };
            left_out.push(LeftOut::new(
                "everything",
                format!(
                    "{why}; the server requires cpu_percent and memory, so beats go as plain \
                     heartbeats"
                ),
            ));
            return None;
        };
        let memory = *memory;
        let load = host::load().ok();
        if load.is_none() {
            left_out.push(LeftOut::new(
                "cpu_load_avg",
                "/proc/loadavg cannot be read, or holds a load no kernel gives",
            ));
        }
        if nics_cut {
            left_out.push(LeftOut::new(
                "network_io",
                format!("interfaces past the first {MAX_INTERFACES} (or 64 KiB of /proc/net/dev)"),
            ));
        }
        let rates = Rates::between(&before, &now);
        let (top_processes, cut) = self.top.sample(&top_host(&now, memory.total));
        if cut {
            left_out.push(LeftOut::new(
                "top_processes",
                format!(
                    "processes past the first {} or {} ms of reading /proc: they are not ranked",
                    crate::host::processes::MAX_PROCESSES,
                    crate::host::processes::LIMIT.as_millis()
                ),
            ));
        }
        if let Some((kept, boot_id)) = &self.kept
            && let Some((at, ticks)) = self.top.kept()
        {
            // Best effort: without it the next run's lists are only missing.
            let _ = kept.save_processes(boot_id, at, &ticks);
        }
        let (disks, arrays, cut) = self.storage.inventory(block_devices).clone();
        if cut {
            left_out.push(LeftOut::new(
                "disk_hardware",
                format!("block devices past the first {}", block::MAX_DEVICES),
            ));
        }
        let disk_usage = disk_usage(
            &self.device_filesystems,
            limit.min(DISKS_LIMIT),
            (&disks, &mut self.storage),
            left_out,
        );
        let mut body = Metrics::new(
            (cpu_before, cpu_now),
            &memory,
            load,
            &now,
            &rates,
            self.physical_cpus,
            disk_usage,
            &nics,
        );
        body.top_processes = top_processes;
        body.disk_hardware = DiskHardware {
            physical_disk_count: disks.len(),
            raid: arrays.first().map_or("none".into(), |a| a.level.clone()),
            disks,
            raid_arrays: arrays,
        };
        body.ipc_stats = ipc::read().map(|(stats, cut)| {
            if cut {
                left_out.push(LeftOut::new(
                    "part of ipc_stats",
                    "IPC objects past 64 KiB of a /proc/sysvipc table",
                ));
            }
            stats
        });
        Some(to_json(&body))
    }
}

impl Collect for Collector {
    fn collect(&mut self, at: &Moment) -> Collected {
        let mut left_out = Vec::new();
        let body = self.body(at.limit, &mut left_out);
        Collected { body, left_out }
    }
}

impl Metrics {
    #[allow(clippy::too_many_arguments)] // one per part of the sample, each read once
    fn new(
        (cpu_before, cpu_now): (CpuTimes, CpuTimes),
        memory: &Memory,
        load: Option<[f64; 3]>,
        now: &Sample,
        rates: &Rates,
        physical_cpus: Option<u32>,
        disk_usage: Keyed<DiskUsage>,
        nics: &[NetCounters],
    ) -> Metrics {
        let uname = host::uname();
        let os_version = uname.as_ref().map_or("Linux".into(), |u| {
            format!("Linux-{}-{}", u.release, u.machine)
        });
        let load_at = |i: usize| load.map(|l| round(l[i], 2));
        let swap = (memory.swap_total > 0).then_some(memory);
        let uptime = now.boot.and_then(|boot| {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?;
            now.as_secs().checked_sub(boot)
        });
        Metrics {
            version: Version::default(),
            os_type: "linux",
            os_version: Outside::capped(&os_version, 200),
            hostname: Outside::capped(uname.as_ref().map_or("", |u| &u.nodename), 200),
            cpu_percent: parse::cpu_percent(cpu_before, cpu_now),
            cpu_count: host::online_cpus(),
            physical_cpu_count: physical_cpus,
            cpu_load_avg_1m: load_at(0),
            cpu_load_avg_5m: load_at(1),
            cpu_load_avg_15m: load_at(2),
            memory_total: memory.total,
            memory_available: memory.available,
            memory_percent: memory.percent(),
            memory_used: memory.used(),
            memory_buffers: memory.buffers,
            memory_cached: memory.cached,
            memory_shared: memory.shared,
            swap_total: swap.map(|m| m.swap_total),
            swap_used: swap.map(Memory::swap_used),
            swap_percent: swap.map(Memory::swap_percent),
            system_uptime_seconds: uptime,
            network_connections: host::connections(),
            disk_read_bytes_total: now.disk_io.map(|d| d.read),
            disk_write_bytes_total: now.disk_io.map(|d| d.written),
            disk_io_read: rates.disk_read,
            disk_io_write: rates.disk_write,
            net_io_sent: rates.net_sent,
            net_io_recv: rates.net_recv,
            disk_usage,
            network_io: Keyed(
                nics.iter()
                    .map(|nic| {
                        let io = NetIo {
                            bytes_sent: nic.bytes_sent,
                            bytes_recv: nic.bytes_recv,
                            packets_sent: nic.packets_sent,
                            packets_recv: nic.packets_recv,
                        };
                        (Outside::new(&nic.name), io)
                    })
                    .collect(),
            ),
            top_processes: None,
            ipc_stats: None,
            disk_hardware: DiskHardware {
                physical_disk_count: 0,
                disks: Vec::new(),
                raid_arrays: Vec::new(),
                raid: "none".into(),
            },
        }
    }
}

/// What ranking the processes needs from the host, at `sample`.
fn top_host(sample: &Sample, memory_total: u64) -> top::Host {
    top::Host {
        at: sample.at,
        ticks_per_second: host::clock_ticks().unwrap_or(100),
        page_bytes: host::page_size().unwrap_or(4096),
        memory_total,
        boot_time: sample.boot,
        task_ticks: sample.cpu.map(|c| c.tasks),
    }
}

/// `disk_usage`: each real mount's statvfs as psutil's `disk_usage` gives
/// it, the mounts of the server agent's `disk_partitions` filter.
fn disk_usage(
    filesystems: &[String],
    limit: Duration,
    (hardware, storage): (&[BlockDisk], &mut Storage),
    left_out: &mut Vec<LeftOut>,
) -> Keyed<DiskUsage> {
    let (disks, cut) = match disk::real_disks(filesystems) {
        Ok(found) => found,
        Err(e) => {
            let why = format!(
                "/proc/self/mountinfo cannot be read: {}",
                text::describe_io(&e)
            );
            left_out.push(LeftOut::new("disk_usage", why));
            return Keyed::default();
        }
    };
    if cut {
        left_out.push(LeftOut::new(
            "disk_usage",
            format!(
                "real disks past the first {MAX_DISKS} (or past 8 MiB or 250 ms of /proc/self/mountinfo)"
            ),
        ));
    }
    let paths: Vec<&Path> = disks.iter().map(|m| m.at.as_path()).collect();
    let figures = disk::within_limit(&paths, limit);
    let mut usage = Vec::with_capacity(disks.len());
    for (mount, figure) in disks.iter().zip(figures) {
        match figure {
            Ok(d) => {
                let usable = d.used.saturating_add(d.avail);
                let place = storage.placement(&mount.device_number);
                let kind = place
                    .as_ref()
                    .and_then(|p| hardware.iter().find(|h| h.name == p.disk))
                    .map(|h| h.kind);
                let row = DiskUsage {
                    total: d.total,
                    used: d.used,
                    free: d.avail,
                    percent: parse::percent(d.used, usable),
                    disk_type: kind,
                    physical_disk: place.as_ref().map(|p| Outside::capped(&p.disk, 50)),
                    raid: place.map(|p| Outside::capped(p.raid.as_deref().unwrap_or("none"), 50)),
                };
                usage.push((Outside::new(&mount.path), row));
            }
            Err(e) => left_out.push(LeftOut::new(
                format!("disk {}", text::untrusted(&mount.path)),
                text::describe_io(&e),
            )),
        }
    }
    Keyed(usage)
}

fn totals(nics: &[NetCounters]) -> (u64, u64) {
    nics.iter().fold((0, 0), |(r, s), n| {
        (
            r.saturating_add(n.bytes_recv),
            s.saturating_add(n.bytes_sent),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_has_every_field_the_schema_requires() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/metrics.schema.json")).unwrap();
        let mut collector = Collector::new();
        let mut left_out = Vec::new();
        let body = collector
            .body(Duration::from_secs(1), &mut left_out)
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        for field in schema["required"].as_array().unwrap() {
            let field = field.as_str().unwrap();
            let kind = &schema["properties"][field]["type"];
            let nullable = kind.as_array().is_some_and(|k| k.contains(&"null".into()));
            assert!(
                body.get(field).is_some_and(|v| nullable || !v.is_null()),
                "{field}: {}",
                body[field]
            );
        }
        assert!(
            body["network_io"].get("lo").is_some(),
            "{}",
            body["network_io"]
        );
    }

    #[test]
    fn rates_are_per_second_and_none_for_a_counter_that_went_back() {
        let sample = |secs: u64, read: u64, recv: u64| Sample {
            at: Duration::from_secs(1000 + secs),
            cpu: None,
            boot: None,
            disk_io: Some(DiskIo { read, written: 0 }),
            net_io: Some((recv, 7)),
        };
        let rates = Rates::between(&sample(0, 1000, 500), &sample(2, 3000, 100));
        assert_eq!(rates.disk_read, Some(1000));
        assert_eq!(rates.disk_write, Some(0));
        assert_eq!(rates.net_recv, None, "a reset interface");
        assert_eq!(rates.net_sent, Some(0));
        let same_instant = Rates::between(&sample(2, 0, 0), &sample(2, 10, 10));
        assert_eq!(same_instant.disk_read, None);
    }
}
