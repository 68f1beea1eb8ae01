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
pub fn parse_stat(pid: u32, text: &str) -> Option<Process> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    // Fields from the third (state) on; field N of proc(5) is rest[N - 3].
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3)?.parse::<u64>().ok();
    Some(Process {
        pid,
        name,
        ticks: field(14)?.saturating_add(field(15)?),
        started: field(22)?,
        rss_pages: field(24)?,
    })
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

/// The most processes read in one push, and the longest it may take.
pub const MAX_PROCESSES: usize = 10_000;
pub const LIMIT: Duration = Duration::from_millis(250);

/// Every process's stat, in /proc's order; true when the time or count
/// bound cut the list short. The kernel writes each stat file as it is
/// read (about 7 us a process on a VM, most of a push's CPU): one read of
/// each, into one buffer, with one path buffer.
pub fn read_all() -> (Vec<Process>, bool) {
    use std::fmt::Write;
    use std::io::Read;
    let started = Instant::now();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    let mut path = String::with_capacity(32);
    let mut buffer = [0u8; 1024];
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if out.len() >= MAX_PROCESSES || started.elapsed() > LIMIT {
            return (out, true);
        }
        path.clear();
        let _ = write!(path, "/proc/{pid}/stat");
        // A process that ended since the listing is not an error. A stat
        // line is under 1 KiB: one read takes it whole.
        let Ok(mut file) = std::fs::File::open(&path) else {
            continue;
        };
        let Ok(n) = file.read(&mut buffer) else {
            continue;
        };
        let text = String::from_utf8_lossy(buffer.get(..n).unwrap_or_default());
        if let Some(process) = parse_stat(pid, &text) {
            out.push(process);
        }
    }
    (out, false)
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
        let p = parse_stat(4242, line).unwrap();
        assert_eq!(p.name, "my (odd) prog");
        assert_eq!(p.ticks, 200);
        assert_eq!(p.started, 98765);
        assert_eq!(p.rss_pages, 321);
        assert_eq!(parse_stat(1, "1 (init S 1"), None);
        assert_eq!(parse_stat(1, "1 (x) S 1 2"), None, "too few fields");
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
    fn this_process_is_among_those_read() {
        let (all, cut) = read_all();
        assert!(!cut);
        let me = std::process::id();
        let found = all.iter().find(|p| p.pid == me).unwrap();
        assert!(found.rss_pages > 0 && found.started > 0);
        assert_eq!(uid_of(me), Some(unsafe { libc::getuid() }));
        let mut users = Users::default();
        assert_eq!(users.name(0), "root");
        assert_eq!(users.name(4_000_000), "4000000");
    }
}
