//! The box's processes as `/proc/PID/stat` shows them: what the metrics
//! push's top processes are chosen from. One small file per process, read
//! within a time bound (a box with thousands of processes gets those read
//! in time, and a line saying so); user names from `/etc/passwd`, read
//! once and again only when a uid is not in it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One process at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// `comm`: the kernel's name for it (at most 15 bytes).
    pub name: String,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// Clock ticks after boot at which it started: with the pid, its identity.
    pub started: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// One line of `/proc/PID/stat`. The name sits in parentheses and may
/// itself hold spaces and parentheses: everything up to the last `)`.
/// Read as bytes, taking only the four fields used: this runs for every
/// process at every push.
pub fn parse_stat(pid: u32, line: &[u8]) -> Option<Process> {
    let open = line.iter().position(|&b| b == b'(')?;
    let close = line.iter().rposition(|&b| b == b')')?;
    let name = String::from_utf8_lossy(line.get(open + 1..close)?).into_owned();
    // Fields from the third (state) on; proc(5) numbers them from 1.
    let words = line
        .get(close + 1..)?
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty());
    let [mut utime, mut stime, mut started] = [None; 3];
    for (n, word) in (3..).zip(words) {
        let number = || std::str::from_utf8(word).ok()?.parse::<u64>().ok();
        match n {
            14 => utime = number(),
            15 => stime = number(),
            22 => started = number(),
            24 => {
                return Some(Process {
                    pid,
                    name,
                    ticks: utime?.saturating_add(stime?),
                    started: started?,
                    rss_pages: number()?,
                });
            }
            _ => {}
        }
    }
    None
}

/// `/etc/passwd` as uid -> name.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// The most processes listed in one push, and the longest listing and
/// reading them may take.
pub const MAX_PROCESSES: usize = 10_000;
pub const LIMIT: Duration = Duration::from_millis(250);

/// The most stat files kept open between pushes: each costs the kernel a
/// 4 KiB buffer (charged to the agent's cgroup) and a descriptor, so at
/// most 512 (2 MiB), and no more than half the descriptors the agent may
/// open (systemd's default soft limit is 1024).
const MAX_KEPT: usize = 512;

/// A process in the `/proc` listing: its pid, and the inode number of its
/// directory. The kernel numbers a pid's directory afresh when a new
/// process takes the pid, so a changed number says "read me again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub pid: u32,
    pub ino: u64,
}

/// Lists `/proc` and reads processes' `/proc/PID/stat`, keeping the files
/// open from one push to the next: the kernel writes a stat file afresh at
/// each read from offset 0, so a kept file costs one `pread` (about 2.6 us
/// a process on this VM) where opening, reading and closing costs about
/// 7 us.
#[derive(Debug)]
pub struct Reader {
    kept: HashMap<u32, std::fs::File>,
    most_kept: usize,
    path: String,
}

impl Default for Reader {
    fn default() -> Reader {
        Reader::keeping(most_kept(super::open_files_limit()))
    }
}

/// How many stat files to keep open under a soft limit of `limit`
/// descriptors (None: unknown, keep none).
fn most_kept(limit: Option<u64>) -> usize {
    limit.map_or(0, |l| {
        usize::try_from(l / 2).map_or(MAX_KEPT, |half| half.min(MAX_KEPT))
    })
}

impl Reader {
    fn keeping(most_kept: usize) -> Reader {
        Reader {
            kept: HashMap::new(),
            most_kept,
            path: String::with_capacity(32),
        }
    }

    /// The processes in `/proc` now, in its order; true when there were
    /// more than [`MAX_PROCESSES`]. Kept files of processes not listed
    /// any more are closed.
    pub fn list(&mut self) -> (Vec<Listed>, bool) {
        use std::os::unix::fs::DirEntryExt;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            self.kept.clear();
            return (Vec::new(), false);
        };
        let mut listed = Vec::new();
        let mut cut = false;
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if listed.len() >= MAX_PROCESSES {
                cut = true;
                break;
            }
            listed.push(Listed {
                pid,
                ino: entry.ino(),
            });
        }
        if !self.kept.is_empty() {
            let mut pids: Vec<u32> = listed.iter().map(|l| l.pid).collect();
            pids.sort_unstable();
            self.kept.retain(|pid, _| pids.binary_search(pid).is_ok());
        }
        (listed, cut)
    }

    /// One process's stat now: from its kept file, or opened afresh (and
    /// kept while there is room); None when it has ended. A kept file of a
    /// process that ended fails to read (ESRCH): its pid, perhaps a new
    /// process's now, is opened anew.
    pub fn read(&mut self, pid: u32) -> Option<Process> {
        use std::fmt::Write;
        use std::io::Read;
        use std::os::unix::fs::FileExt;
        // A stat line is under 1 KiB: one read takes it whole.
        let mut buffer = [0u8; 1024];
        if let Some(file) = self.kept.get(&pid) {
            match file.read_at(&mut buffer, 0) {
                Ok(n) if n > 0 => return parse_stat(pid, buffer.get(..n)?),
                _ => {
                    self.kept.remove(&pid);
                }
            }
        }
        self.path.clear();
        let _ = write!(self.path, "/proc/{pid}/stat");
        let mut file = std::fs::File::open(&self.path).ok()?;
        let n = file.read(&mut buffer).ok()?;
        let process = parse_stat(pid, buffer.get(..n)?);
        if process.is_some() && self.kept.len() < self.most_kept {
            self.kept.insert(pid, file);
        }
        process
    }
}

/// The uid a running process runs as: the owner of its /proc directory,
/// which the kernel sets to its effective uid (one stat, where its status
/// file costs the kernel a page of text; psutil names the real uid, which
/// differs only while a set-uid program runs).
pub fn uid_of(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::metadata(format!("/proc/{pid}")).ok()?.uid())
}

/// User names by uid, from `/etc/passwd`: read on first use and again
/// only when a uid is missing (at most once a minute), so a push costs no
/// file read; a uid no file names (systemd's dynamic users) is its number.
#[derive(Debug, Default)]
pub struct Users {
    names: HashMap<u32, String>,
    read_at: Option<Instant>,
}

impl Users {
    pub fn name(&mut self, uid: u32) -> String {
        let stale = self
            .read_at
            .is_none_or(|at| at.elapsed() > Duration::from_secs(60));
        if !self.names.contains_key(&uid) && stale {
            self.names = super::read("/etc/passwd")
                .map(|t| parse_passwd(&t))
                .unwrap_or_default();
            self.read_at = Some(Instant::now());
        }
        self.names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_an_odd_name_reads_whole() {
        let line = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    150 50 0 0 20 0 3 0 98765 123456789 321 18446744073709551615 1 1 0 0 0 0 0 \
                    4096 0 0 0 0 17 1 0 0 0 0 0\n";
        let p = parse_stat(4242, line.as_bytes()).unwrap();
        assert_eq!(p.name, "my (odd) prog");
        assert_eq!(p.ticks, 200);
        assert_eq!(p.started, 98765);
        assert_eq!(p.rss_pages, 321);
        assert_eq!(parse_stat(1, b"1 (init S 1"), None);
        assert_eq!(parse_stat(1, b"1 (x) S 1 2"), None, "too few fields");
    }

    #[test]
    fn users_are_read_from_passwd() {
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/sh\nsshd:x:105:65534::/run/sshd:/usr/sbin/nologin\nbroken\n",
        );
        assert_eq!(users.get(&105).map(String::as_str), Some("sshd"));
        assert_eq!(users.len(), 2);
    }

    #[test]
    fn stat_files_kept_open_stay_within_half_the_descriptors() {
        assert_eq!(most_kept(Some(1024)), 512);
        assert_eq!(most_kept(Some(u64::MAX)), MAX_KEPT);
        assert_eq!(most_kept(Some(40)), 20);
        assert_eq!(most_kept(None), 0);
    }

    fn read_all(reader: &mut Reader) -> Vec<Process> {
        let (listed, cut) = reader.list();
        assert!(!cut);
        listed.iter().filter_map(|l| reader.read(l.pid)).collect()
    }

    #[test]
    fn a_kept_file_follows_its_process_and_closes_when_it_ends() {
        // Room for every process of a busy test machine.
        let mut reader = Reader::keeping(usize::MAX);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let first = read_all(&mut reader);
        assert!(first.iter().any(|p| p.pid == pid));
        assert!(reader.kept.contains_key(&pid));
        // Ticks read through a kept file move on: the kernel writes it
        // afresh at each read.
        let me = std::process::id();
        let ticks = |all: &[Process]| all.iter().find(|p| p.pid == me).unwrap().ticks;
        let before = ticks(&first);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(60) {
            std::hint::black_box(0u64.wrapping_add(1));
        }
        let second = read_all(&mut reader);
        assert!(
            ticks(&second) > before,
            "{} then {}",
            before,
            ticks(&second)
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let third = read_all(&mut reader);
        assert!(!third.iter().any(|p| p.pid == pid));
        assert!(!reader.kept.contains_key(&pid));
    }

    #[test]
    fn this_process_is_among_those_read() {
        let mut reader = Reader::default();
        let all = read_all(&mut reader);
        // A live process's directory keeps its inode number from one
        // listing to the next: what tells an idle process from a new one
        // that took its pid.
        let ino = |listed: Vec<Listed>| {
            listed
                .iter()
                .find(|l| l.pid == std::process::id())
                .map(|l| l.ino)
        };
        let first = ino(reader.list().0);
        assert!(first.is_some());
        assert_eq!(ino(reader.list().0), first);
        let me = std::process::id();
        let found = all.iter().find(|p| p.pid == me).unwrap();
        assert!(found.rss_pages > 0 && found.started > 0);
        assert_eq!(uid_of(me), Some(unsafe { libc::getuid() }));
        let mut users = Users::default();
        assert_eq!(users.name(0), "root");
        assert_eq!(users.name(4_000_000), "4000000");
    }
}
