//! `top_processes` in the metrics push: the five processes that used the
//! most CPU since the previous push and the five with the most resident
//! memory, with the keys of the server's own agent (psutil's meanings:
//! a process's CPU share is of one CPU, so a busy multi-threaded one may
//! pass 100). The server shows them as its Top CPU / Top RAM cards, names
//! the culprit in anomaly texts and tooltips, and follows each process
//! (pid + start time) for memory leaks.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::body::{Outside, round};
use crate::host::processes::{self, Process, Users};

/// Processes per list, as the server's agent sends.
const TOP: usize = 5;
/// The server keeps a process name up to this length.
const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Serialize, PartialEq)]
pub struct TopProcesses {
    cpu: Vec<TopProcess>,
    memory: Vec<TopProcess>,
}

#[derive(Debug, Serialize, PartialEq)]
struct TopProcess {
    pid: u32,
    name: Outside,
    user: Outside,
    cpu_percent: f64,
    memory_percent: f64,
    /// Bytes.
    rss: u64,
    /// Seconds since the epoch (psutil's `create_time`).
    start_time: f64,
}

/// Each process's CPU ticks at one moment, by (pid, start): a pid reused
/// by a new process is another process.
pub type Ticks = HashMap<(u32, u64), u64>;

/// What stays the same from one push to the next.
pub struct Tracker {
    /// The ticks of the previous push, and when (since boot).
    previous: Option<(Duration, Ticks)>,
    reader: processes::Reader,
    users: Users,
    /// Each listed process's uid, by (pid, start), looked up once rather
    /// than every push: a daemon that drops privileges does so as it
    /// starts, and psutil's real uid does not change after that either.
    uids: HashMap<(u32, u64), u32>,
}

/// What the host gives the ranking, read once per push.
pub struct Host {
    /// Since boot, now.
    pub at: Duration,
    pub ticks_per_second: u64,
    pub page_bytes: u64,
    pub memory_total: u64,
    /// `btime`, seconds since the epoch.
    pub boot_time: Option<u64>,
}

/// One process's place in the ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked {
    at: usize,
    cpu_percent: f64,
    rss: u64,
}

/// The two lists' members: indexes into `processes`, by CPU share since
/// `before` (a process new since then counts from its start) and by RSS.
fn rank(
    processes: &[Process],
    before: &(Duration, Ticks),
    host: &Host,
) -> (Vec<Ranked>, Vec<Ranked>) {
    let seconds = host.at.saturating_sub(before.0).as_secs_f64();
    let ranked: Vec<Ranked> = processes
        .iter()
        .enumerate()
        .map(|(at, p)| {
            let was = before.1.get(&(p.pid, p.started)).copied().unwrap_or(0);
            let used = p.ticks.saturating_sub(was) as f64 / host.ticks_per_second as f64;
            let cpu_percent = if seconds > 0.0 {
                used * 100.0 / seconds
            } else {
                0.0
            };
            Ranked {
                at,
                cpu_percent,
                rss: p.rss_pages.saturating_mul(host.page_bytes),
            }
        })
        .collect();
    let top = |key: fn(&Ranked) -> (f64, u64)| {
        let mut all = ranked.clone();
        all.sort_by(|a, b| {
            key(b)
                .partial_cmp(&key(a))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        all.truncate(TOP);
        all
    };
    (
        top(|r| (r.cpu_percent, r.rss)),
        top(|r| (r.rss as f64, r.rss)),
    )
}

impl Tracker {
    /// `previous`: a one-beat run's ticks kept by the run before.
    pub fn new(previous: Option<(Duration, Ticks)>) -> Tracker {
        Tracker {
            previous,
            reader: processes::Reader::default(),
            users: Users::default(),
            uids: HashMap::new(),
        }
    }

    /// Reads the processes now; the lists (None on the first push: there
    /// is no interval to measure CPU over yet), and whether the read was
    /// cut short. Their ticks are kept for the next push ([`Tracker::kept`]).
    pub fn sample(&mut self, host: &Host) -> (Option<TopProcesses>, bool) {
        let (processes, cut) = self.reader.read_all();
        let now: Ticks = processes
            .iter()
            .map(|p| ((p.pid, p.started), p.ticks))
            .collect();
        self.uids.retain(|process, _| now.contains_key(process));
        let lists = match self.previous.replace((host.at, now)) {
            Some(before) => {
                let (by_cpu, by_memory) = rank(&processes, &before, host);
                Some(TopProcesses {
                    cpu: self.describe(&processes, &by_cpu, host),
                    memory: self.describe(&processes, &by_memory, host),
                })
            }
            None => None,
        };
        (lists, cut)
    }

    /// The ticks of the last sample, and when: what a one-beat run keeps.
    pub fn kept(&self) -> Option<&(Duration, Ticks)> {
        self.previous.as_ref()
    }

    fn describe(
        &mut self,
        processes: &[Process],
        ranked: &[Ranked],
        host: &Host,
    ) -> Vec<TopProcess> {
        ranked
            .iter()
            .map(|r| {
                let p = &processes[r.at];
                let uid = match self.uids.get(&(p.pid, p.started)) {
                    Some(&uid) => Some(uid),
                    None => processes::uid_of(p.pid).inspect(|&uid| {
                        self.uids.insert((p.pid, p.started), uid);
                    }),
                };
                let user = uid.map_or_else(String::new, |uid| self.users.name(uid));
                let started = p.started as f64 / host.ticks_per_second as f64;
                TopProcess {
                    pid: p.pid,
                    name: Outside::capped(&p.name, MAX_NAME_CHARS),
                    user: Outside::capped(&user, MAX_NAME_CHARS),
                    cpu_percent: round(r.cpu_percent, 1),
                    memory_percent: round(
                        if host.memory_total == 0 {
                            0.0
                        } else {
                            r.rss as f64 * 100.0 / host.memory_total as f64
                        },
                        2,
                    ),
                    rss: r.rss,
                    start_time: host
                        .boot_time
                        .map_or(0.0, |boot| round(boot as f64 + started, 2)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, ticks: u64, rss_pages: u64) -> Process {
        Process {
            pid,
            name: format!("p{pid}"),
            ticks,
            started: 1000 + u64::from(pid),
            rss_pages,
        }
    }

    #[test]
    fn the_busiest_since_the_last_push_and_the_largest_lead() {
        let host = Host {
            at: Duration::from_secs(20),
            ticks_per_second: 100,
            page_bytes: 4096,
            memory_total: 4096 * 1000,
            boot_time: Some(1_700_000_000),
        };
        let processes: Vec<Process> = (1..=8)
            .map(|pid| process(pid, 1000 + u64::from(pid) * 100, 10 * u64::from(9 - pid)))
            .collect();
        // Ten seconds ago each had used 1000 ticks, except pid 8, which is
        // new (a reused pid 8 with another start counts from zero).
        let mut before: Ticks = (1..=7)
            .map(|pid| ((pid, 1000 + u64::from(pid)), 1000))
            .collect();
        before.insert((8, 1), 1000);
        let (by_cpu, by_memory) = rank(&processes, &(Duration::from_secs(10), before), &host);
        let pids = |r: &[Ranked]| r.iter().map(|r| processes[r.at].pid).collect::<Vec<_>>();
        assert_eq!(pids(&by_cpu), [8, 7, 6, 5, 4]);
        // pid 8: 1800 ticks over 10 s at 100 a second: 180 % of one CPU.
        assert!((by_cpu[0].cpu_percent - 180.0).abs() < 1e-9);
        assert!((by_cpu[1].cpu_percent - 70.0).abs() < 1e-9);
        assert_eq!(pids(&by_memory), [1, 2, 3, 4, 5]);
        assert_eq!(by_memory[0].rss, 80 * 4096);
    }

    #[test]
    fn the_first_push_has_no_interval_and_no_lists() {
        let host = Host {
            at: Duration::from_secs(5),
            ticks_per_second: 100,
            page_bytes: 4096,
            memory_total: 1 << 30,
            boot_time: Some(1_700_000_000),
        };
        let mut tracker = Tracker::new(None);
        let (first, _) = tracker.sample(&host);
        assert!(first.is_none());
        let me = std::process::id();
        assert!(tracker.kept().unwrap().1.keys().any(|k| k.0 == me));
        let later = Host {
            at: Duration::from_secs(6),
            ..host
        };
        let (second, cut) = tracker.sample(&later);
        assert!(!cut);
        let second = second.unwrap();
        assert_eq!(second.cpu.len().min(TOP), second.cpu.len());
        assert!(!second.memory.is_empty());
        let json: serde_json::Value = serde_json::to_value(&second).unwrap();
        let top = &json["memory"][0];
        for key in [
            "pid",
            "name",
            "user",
            "cpu_percent",
            "memory_percent",
            "rss",
            "start_time",
        ] {
            assert!(top.get(key).is_some(), "{key}: {top}");
        }
        assert!(top["start_time"].as_f64().unwrap() > 1_700_000_000.0);
    }
}
