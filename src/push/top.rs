//! `top_processes` in the metrics push: the five processes that used the
//! most CPU since the previous push and the five with the most resident
//! memory, with the keys of the server's own agent (psutil's meanings:
//! a process's CPU share is of one CPU, so a busy multi-threaded one may
//! pass 100). The server shows them as its Top CPU / Top RAM cards, names
//! the culprit in anomaly texts and tooltips, and follows each process
//! (pid + start time) for memory leaks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::body::{Outside, round};
use crate::host::processes::{self, Listed, Process, Users};

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

/// An idle process (no tick used since it was last read) that is not among
/// the largest is read every this many pushes, not every push (its pid
/// picks which), to keep its RSS and name fresh; one with no memory (a
/// kernel thread, a zombie) has no RSS to keep fresh and is read only when
/// the CPU time says so. Reading a process's stat costs the kernel 3-8 us,
/// most of a metrics push's CPU on a box with hundreds of processes, almost
/// all of them asleep. docs/design.md, "Reading only the processes that ran".
const ROTATION: u64 = 16;
/// `/proc` is listed every this many pushes, and whenever the processes
/// read leave CPU time unexplained: listing costs the kernel about 1.4 us
/// a process (a dentry lookup each), and a process started since the last
/// listing shows at the next one, at once if it uses the CPU.
const LISTING_EVERY: u64 = 4;
/// The processes largest by RSS at the last push are read every push:
/// the Top RAM list and the server's per-process leak tracking stay fresh.
const LARGEST: usize = 2 * TOP;
/// Ticks the kernel charged to processes that the processes read do not
/// explain, beyond which the idle ones are read too: 1 % of one CPU over
/// the interval, and two ticks for the kernel's rounding.
const UNEXPLAINED_SHARE: f64 = 0.01;
const ROUNDING_TICKS: f64 = 2.0;

/// A process as the last push left it.
#[derive(Debug, Clone)]
struct Seen {
    /// Its /proc directory's inode number when listed.
    ino: u64,
    process: Process,
    /// Ticks used between its last read and the one before, all counted
    /// in the interval of the push that read it.
    used: u64,
    /// The push that read it last.
    read_in: u64,
    /// Among the [`LARGEST`] by RSS at the last push.
    large: bool,
}

impl Seen {
    /// Whether this push may leave it unread: the same process, asleep
    /// since its last read, not among the largest, and not its turn.
    fn may_wait(&self, listed: Listed, push: u64, rotation: u64) -> bool {
        let turn = self.process.rss_pages > 0
            && u64::from(listed.pid).wrapping_add(push) % rotation.max(1) == 0;
        self.ino == listed.ino && self.used == 0 && !self.large && !turn
    }
}

/// The previous push: when, and the ticks charged to processes by then.
#[derive(Debug, Clone, Copy)]
struct Previous {
    at: Duration,
    task_ticks: Option<u64>,
}

/// What stays the same from one push to the next.
pub struct Tracker {
    previous: Option<Previous>,
    /// Ticks a previous one-beat run kept: the first push's "before".
    resumed: Ticks,
    /// What the last push saw, by pid.
    seen: Vec<Seen>,
    pushes: u64,
    /// [`ROTATION`], [`LARGEST`] and [`LISTING_EVERY`], but for tests.
    rotation: u64,
    listing_every: u64,
    largest: usize,
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
    /// /proc/stat's user + nice + system now (what the kernel has
    /// charged to processes since boot).
    pub task_ticks: Option<u64>,
}

/// The process with this pid in a list sorted by pid.
fn by_pid(seen: &[Seen], pid: u32) -> Option<&Seen> {
    let at = seen.binary_search_by_key(&pid, |s| s.process.pid).ok()?;
    seen.get(at)
}

/// Where a push stands, for [`account`].
struct At<'a> {
    push: u64,
    previous: Option<Previous>,
    /// Ticks a previous one-beat run kept.
    resumed: &'a Ticks,
    ticks_per_second: u64,
}

/// A process just read, against what the last push saw of its pid: what
/// to keep of it, and the ticks it is known to have used since the
/// previous push, a lower bound (ticks used while it was left unread may
/// have been spent before). Those ticks all count in this push's share:
/// an unread process used at most the allowance of [`unexplained`] in
/// each push that left it unread, so a sleeper that starts spinning shows
/// its share at once, not averaged with the pushes it slept through.
fn account(listed: Listed, process: Process, old: Option<Seen>, at: &At) -> (Seen, u64) {
    let same = old.filter(|o| o.process.started == process.started);
    let was = match &same {
        Some(o) => Some(o.process.ticks),
        None => at.resumed.get(&(process.pid, process.started)).copied(),
    };
    // A process new since the previous push counts from its start.
    let used = process.ticks.saturating_sub(was.unwrap_or(0));
    let in_interval = match (&same, at.previous) {
        (Some(o), _) if o.read_in.wrapping_add(1) == at.push => used,
        (None, Some(p)) if was.is_none() => {
            let start = process.started as f64 / at.ticks_per_second as f64;
            if start >= p.at.as_secs_f64() { used } else { 0 }
        }
        _ => 0,
    };
    let seen = Seen {
        ino: listed.ino,
        used,
        read_in: at.push,
        large: false,
        process,
    };
    (seen, in_interval)
}

/// Whether the processes read leave too much of the CPU time the kernel
/// charged to processes unexplained: then one of those left unread may
/// have used it, and they are all read. `charged`: ticks charged since
/// the previous push (None: unknown); `explained`: the part the processes
/// read are known to have used in that interval (a lower bound).
fn unexplained(charged: Option<u64>, explained: u64, seconds: f64, ticks_per_second: u64) -> bool {
    let Some(charged) = charged else {
        return true;
    };
    let allowed = seconds * ticks_per_second as f64 * UNEXPLAINED_SHARE + ROUNDING_TICKS;
    charged.saturating_sub(explained) as f64 > allowed
}

/// One process's place in the ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked {
    pid: u32,
    cpu_percent: f64,
    rss: u64,
}

/// The two lists' members: by CPU share of the `seconds` since the previous
/// push, and by RSS.
fn rank<'a>(
    seen: impl Iterator<Item = &'a Seen>,
    seconds: f64,
    host: &Host,
) -> (Vec<Ranked>, Vec<Ranked>) {
    let ranked: Vec<Ranked> = seen
        .map(|s| {
            let used = s.used as f64 / host.ticks_per_second as f64;
            Ranked {
                pid: s.process.pid,
                cpu_percent: if seconds > 0.0 {
                    used * 100.0 / seconds
                } else {
                    0.0
                },
                rss: s.process.rss_pages.saturating_mul(host.page_bytes),
            }
        })
        .collect();
    let top = |key: fn(&Ranked) -> (f64, u64)| {
        let first = |a: &Ranked, b: &Ranked| {
            let (a, b) = (key(a), key(b));
            b.0.total_cmp(&a.0).then(b.1.cmp(&a.1))
        };
        let mut all = ranked.clone();
        if all.len() > TOP {
            all.select_nth_unstable_by(TOP - 1, first);
            all.truncate(TOP);
        }
        all.sort_by(first);
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
        let (previous, resumed) = match previous {
            Some((at, ticks)) => (
                Some(Previous {
                    at,
                    task_ticks: None,
                }),
                ticks,
            ),
            None => (None, Ticks::new()),
        };
        Tracker {
            previous,
            resumed,
            seen: Vec::new(),
            pushes: 0,
            rotation: ROTATION,
            listing_every: LISTING_EVERY,
            largest: LARGEST,
            reader: processes::Reader::default(),
            users: Users::default(),
            uids: HashMap::new(),
        }
    }

    /// Reads the processes now; the lists (None on the first push: there
    /// is no interval to measure CPU over yet), and whether the listing or
    /// reading was cut short by [`processes::MAX_PROCESSES`] or
    /// [`processes::LIMIT`]. What it read is kept for the next push.
    pub fn sample(&mut self, host: &Host) -> (Option<TopProcesses>, bool) {
        let started = Instant::now();
        let push = self.pushes;
        self.pushes = push.wrapping_add(1);
        let previous = self.previous.replace(Previous {
            at: host.at,
            task_ticks: host.task_ticks,
        });
        let resumed = std::mem::take(&mut self.resumed);
        let at = At {
            push,
            previous,
            resumed: &resumed,
            ticks_per_second: host.ticks_per_second,
        };
        let over_time = || started.elapsed() > processes::LIMIT;
        let mut cut = false;
        let listing = previous.is_none() || push % self.listing_every.max(1) == 0;
        // What the last push saw, by pid; the candidates in the same order.
        let last = std::mem::take(&mut self.seen);
        let candidates: Vec<Listed> = if listing {
            self.list(&mut cut)
        } else {
            last.iter()
                .map(|s| Listed {
                    pid: s.process.pid,
                    ino: s.ino,
                })
                .collect()
        };
        let mut last = last.into_iter().peekable();
        let mut read = Vec::with_capacity(candidates.len());
        let mut waiting: Vec<(Listed, Seen)> = Vec::new();
        let mut explained = 0u64;
        for l in candidates {
            if over_time() {
                cut = true;
                break;
            }
            // Those the listing skips have ended.
            while last.next_if(|s| s.process.pid < l.pid).is_some() {}
            match last.next_if(|s| s.process.pid == l.pid) {
                Some(old) if previous.is_some() && old.may_wait(l, push, self.rotation) => {
                    waiting.push((l, old));
                }
                old => {
                    if let Some((seen, in_interval)) = self.read(l, old, &at) {
                        explained = explained.saturating_add(in_interval);
                        read.push(seen);
                    }
                }
            }
        }
        // Between listings, those a time cut left unread stay as they were.
        let mut kept: Vec<Seen> = if listing { Vec::new() } else { last.collect() };
        let seconds = previous.map_or(0.0, |p| host.at.saturating_sub(p.at).as_secs_f64());
        let charged = match (host.task_ticks, previous.and_then(|p| p.task_ticks)) {
            (Some(now), Some(then)) => now.checked_sub(then),
            _ => None,
        };
        // Between listings a process started since the last one may be
        // what used the ticks: then /proc is listed too.
        if previous.is_some()
            && (!waiting.is_empty() || !listing)
            && unexplained(charged, explained, seconds, host.ticks_per_second)
        {
            // Both lists are by pid: merged in one pass (a box with
            // thousands of processes must not cost a search and a shift
            // each).
            let waiting_now = std::mem::take(&mut waiting);
            let rest: Vec<(Listed, Option<Seen>)> = if listing {
                waiting_now
                    .into_iter()
                    .map(|(l, old)| (l, Some(old)))
                    .collect()
            } else {
                let mut unread = waiting_now.into_iter().peekable();
                let mut rest = Vec::new();
                for l in self.list(&mut cut) {
                    // Those the listing skips have ended.
                    while unread.next_if(|(w, _)| w.pid < l.pid).is_some() {}
                    let old = unread.next_if(|(w, _)| w.pid == l.pid).map(|(_, old)| old);
                    if old.is_none() && by_pid(&read, l.pid).is_some_and(|s| s.ino == l.ino) {
                        continue; // read in the first pass
                    }
                    rest.push((l, old));
                }
                rest
            };
            let mut rest = rest.into_iter();
            let mut more = Vec::new();
            for (l, old) in rest.by_ref() {
                if over_time() {
                    cut = true;
                    kept.extend(old);
                    break;
                }
                // A pid read in the first pass under another directory
                // (a new process took it since): read as new.
                if old.is_none()
                    && let Ok(at) = read.binary_search_by_key(&l.pid, |s| s.process.pid)
                {
                    read.remove(at);
                }
                more.extend(self.read(l, old, &at).map(|(seen, _)| seen));
            }
            // Those a time cut left unread stay as they were.
            kept.extend(rest.filter_map(|(_, old)| old));
            read.extend(more);
        }
        // Unread, they stay as they were.
        kept.extend(waiting.into_iter().map(|(_, old)| old));
        read.extend(kept);
        read.sort_unstable_by_key(|s| s.process.pid);
        read.dedup_by_key(|s| s.process.pid);
        self.seen = read;
        let seen = &self.seen;
        self.uids.retain(|(pid, start), _| {
            by_pid(seen, *pid).is_some_and(|s| s.process.started == *start)
        });
        self.mark_largest();
        let lists = previous.map(|_| {
            let (by_cpu, by_memory) = rank(self.seen.iter(), seconds, host);
            TopProcesses {
                cpu: self.describe(&by_cpu, host),
                memory: self.describe(&by_memory, host),
            }
        });
        (lists, cut)
    }

    /// `/proc` now, by pid.
    fn list(&mut self, cut: &mut bool) -> Vec<Listed> {
        let (mut listed, over) = self.reader.list();
        *cut |= over;
        listed.sort_unstable_by_key(|l| l.pid);
        listed
    }

    /// Reads one listed process: what to keep of it, and the ticks it is
    /// known to have used since the previous push. None when it has ended.
    fn read(&mut self, listed: Listed, old: Option<Seen>, at: &At) -> Option<(Seen, u64)> {
        let process = self.reader.read(listed.pid)?;
        Some(account(listed, process, old, at))
    }

    /// Marks the [`LARGEST`] processes by RSS, which the next push reads
    /// whether they ran or not.
    fn mark_largest(&mut self) {
        let mut by_rss: Vec<(u64, u32)> = self
            .seen
            .iter()
            .map(|s| (s.process.rss_pages, s.process.pid))
            .collect();
        let largest = self.largest.min(by_rss.len());
        if largest > 0 && largest < by_rss.len() {
            by_rss.select_nth_unstable_by(largest - 1, |a, b| b.cmp(a));
        }
        by_rss.truncate(largest);
        by_rss.sort_unstable();
        for s in &mut self.seen {
            s.large = by_rss
                .binary_search(&(s.process.rss_pages, s.process.pid))
                .is_ok();
        }
    }

    /// The ticks of the last sample, and when: what a one-beat run keeps.
    pub fn kept(&self) -> Option<(Duration, Ticks)> {
        let at = self.previous?.at;
        let ticks = self
            .seen
            .iter()
            .map(|s| ((s.process.pid, s.process.started), s.process.ticks))
            .collect();
        Some((at, ticks))
    }

    fn describe(&mut self, ranked: &[Ranked], host: &Host) -> Vec<TopProcess> {
        ranked
            .iter()
            .filter_map(|r| {
                let p = by_pid(&self.seen, r.pid)?.process.clone();
                let uid = match self.uids.get(&(p.pid, p.started)) {
                    Some(&uid) => Some(uid),
                    None => processes::uid_of(p.pid).inspect(|&uid| {
                        self.uids.insert((p.pid, p.started), uid);
                    }),
                };
                let user = uid.map_or_else(String::new, |uid| self.users.name(uid));
                let started = p.started as f64 / host.ticks_per_second as f64;
                Some(TopProcess {
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
                })
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

    fn seen(process: Process, used: u64, read_in: u64) -> Seen {
        Seen {
            ino: u64::from(process.pid) + 7,
            process,
            used,
            read_in,
            large: false,
        }
    }

    fn host(at: Duration) -> Host {
        Host {
            at,
            ticks_per_second: 100,
            page_bytes: 4096,
            memory_total: 4096 * 1000,
            boot_time: Some(1_700_000_000),
            task_ticks: None,
        }
    }

    #[test]
    fn the_busiest_since_the_last_push_and_the_largest_lead() {
        // Over ten seconds pid N used N * 100 ticks; the lower the pid, the
        // larger.
        let all: Vec<Seen> = (1..=8)
            .map(|pid| {
                seen(
                    process(pid, 0, 10 * u64::from(9 - pid)),
                    u64::from(pid) * 100,
                    1,
                )
            })
            .collect();
        let (by_cpu, by_memory) = rank(all.iter(), 10.0, &host(Duration::from_secs(20)));
        let pids = |r: &[Ranked]| r.iter().map(|r| r.pid).collect::<Vec<_>>();
        assert_eq!(pids(&by_cpu), [8, 7, 6, 5, 4]);
        // pid 8: 800 ticks over 10 s at 100 a second: 80 % of one CPU.
        assert!((by_cpu[0].cpu_percent - 80.0).abs() < 1e-9);
        assert_eq!(pids(&by_memory), [1, 2, 3, 4, 5]);
        assert_eq!(by_memory[0].rss, 80 * 4096);
    }

    #[test]
    fn ticks_count_in_the_push_that_reads_them_and_only_known_ones_explain() {
        let previous = Some(Previous {
            at: Duration::from_secs(20),
            task_ticks: Some(0),
        });
        let resumed: Ticks = [((9, 1009), 400)].into_iter().collect();
        let at = At {
            push: 5,
            previous,
            resumed: &resumed,
            ticks_per_second: 100,
        };
        let listed = |pid| Listed { pid, ino: 1 };
        // Read at the previous push: every tick since is in this interval.
        let (s, known) = account(
            listed(1),
            process(1, 250, 1),
            Some(seen(process(1, 200, 1), 0, 4)),
            &at,
        );
        assert_eq!((s.used, known, s.read_in), (50, 50, 5));
        // Last read three pushes ago: the 50 ticks count in this push's
        // share, but they may have been spent before it.
        let (s, known) = account(
            listed(1),
            process(1, 250, 1),
            Some(seen(process(1, 200, 1), 0, 2)),
            &at,
        );
        assert_eq!((s.used, known), (50, 0));
        // A new process that started after the previous push (tick 2100,
        // 21 s): all of its ticks are in the interval.
        let mut young = process(2, 30, 1);
        young.started = 2100;
        assert_eq!(account(listed(2), young.clone(), None, &at).1, 30);
        // One that started before it was first seen: its ticks may be old.
        young.started = 1500;
        let (s, known) = account(listed(2), young, None, &at);
        assert_eq!((s.used, known), (30, 0));
        // A pid taken by another process counts from that one's start.
        let mut other = process(3, 40, 1);
        other.started = 2200;
        let (s, known) = account(listed(3), other, Some(seen(process(3, 900, 1), 0, 4)), &at);
        assert_eq!((s.used, known), (40, 40));
        // A one-beat run's kept ticks are the "before" of its first push.
        let (s, known) = account(listed(9), process(9, 450, 1), None, &at);
        assert_eq!((s.used, known), (50, 0));
    }

    #[test]
    fn an_asleep_small_process_waits_for_its_turn() {
        let asleep = seen(process(10, 5, 1), 0, 3);
        let same = Listed { pid: 10, ino: 17 };
        assert!(asleep.may_wait(same, 3, 8));
        // (10 + 6) % 8 == 0: its turn.
        assert!(!asleep.may_wait(same, 6, 8));
        // Without memory (a kernel thread) it has no turn: only CPU time
        // it used makes it read.
        let no_memory = seen(process(10, 5, 0), 0, 3);
        assert!(no_memory.may_wait(same, 6, 8));
        // Another process took the pid: its directory has a new number.
        assert!(!asleep.may_wait(Listed { pid: 10, ino: 99 }, 3, 8));
        let ran = seen(process(10, 5, 1), 1, 3);
        assert!(!ran.may_wait(same, 3, 8));
        let large = Seen {
            large: true,
            ..asleep.clone()
        };
        assert!(!large.may_wait(same, 3, 8));
    }

    #[test]
    fn ticks_charged_that_the_processes_read_do_not_explain_read_the_rest() {
        // 30 s at 100 ticks a second: 1 % of one CPU is 30 ticks, and 2
        // for rounding.
        assert!(!unexplained(Some(1000), 1000, 30.0, 100));
        assert!(!unexplained(Some(1032), 1000, 30.0, 100));
        assert!(unexplained(Some(1033), 1000, 30.0, 100));
        // The kernel's rounding can make the processes add up to more.
        assert!(!unexplained(Some(990), 1000, 30.0, 100));
        assert!(unexplained(None, 0, 30.0, 100), "unknown: read them all");
    }

    /// Killed however the test ends: a spinner left behind would spin on,
    /// and hold the harness's output open.
    struct Spinner(std::process::Child);

    impl Spinner {
        /// A shell that spins once its stdin closes.
        fn start() -> Spinner {
            Spinner(
                std::process::Command::new("sh")
                    .args(["-c", "read x; while :; do :; done"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        }

        fn spin(&mut self) {
            drop(self.0.stdin.take());
        }
    }

    impl Drop for Spinner {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn this_box_now() -> Host {
        let (cpu, boot) = crate::host::stat();
        Host {
            at: crate::host::since_boot().unwrap(),
            ticks_per_second: crate::host::clock_ticks().unwrap(),
            page_bytes: 4096,
            memory_total: 1 << 30,
            boot_time: boot,
            task_ticks: cpu.map(|c| c.tasks),
        }
    }

    /// Samples every half second until `pid` is on the Top CPU list
    /// (20 s at most); its share there.
    fn until_listed(tracker: &mut Tracker, pid: u32) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let (lists, _) = tracker.sample(&this_box_now());
            let lists = lists.unwrap();
            if let Some(p) = lists.cpu.iter().find(|p| p.pid == pid) {
                return p.cpu_percent;
            }
            assert!(
                Instant::now() < deadline,
                "pid {pid} never listed: {lists:?}"
            );
        }
    }

    /// A tracker that reads idle processes and lists /proc only when CPU
    /// time is unexplained.
    fn lazy_tracker() -> Tracker {
        let mut tracker = Tracker::new(None);
        tracker.rotation = u64::MAX;
        tracker.largest = 0;
        tracker.listing_every = u64::MAX;
        tracker
    }

    /// A child that sleeps through a push and then spins: the next push
    /// finds it by the CPU time nothing read explains, although it is not
    /// its turn, and shows its share of that interval alone.
    #[test]
    fn a_sleeper_that_starts_spinning_is_on_the_next_list() {
        let mut child = Spinner::start();
        let pid = child.0.id();
        let mut tracker = lazy_tracker();
        tracker.sample(&this_box_now());
        std::thread::sleep(Duration::from_millis(300));
        // Asleep on its stdin: no tick used, so it may wait.
        tracker.sample(&this_box_now());
        assert_eq!(by_pid(&tracker.seen, pid).unwrap().used, 0);
        child.spin();
        let share = until_listed(&mut tracker, pid);
        assert!(share > 10.0, "{share}");
    }

    /// A process started after the last listing of /proc that spins is
    /// listed and read at the next push, not at the next listing.
    #[test]
    fn a_new_spinner_is_found_between_listings() {
        let mut tracker = lazy_tracker();
        tracker.sample(&this_box_now());
        let mut child = Spinner::start();
        child.spin();
        let share = until_listed(&mut tracker, child.0.id());
        assert!(share > 10.0, "{share}");
    }

    #[test]
    fn the_first_push_has_no_interval_and_no_lists() {
        let mut tracker = Tracker::new(None);
        let (first, _) = tracker.sample(&host(Duration::from_secs(5)));
        assert!(first.is_none());
        let me = std::process::id();
        assert!(tracker.kept().unwrap().1.keys().any(|k| k.0 == me));
        let (second, cut) = tracker.sample(&host(Duration::from_secs(6)));
        assert!(!cut);
        let second = second.unwrap();
        assert_eq!(second.cpu.len(), TOP);
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
