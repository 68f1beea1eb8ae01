//! Log lines on stderr: timestamped for a terminal or a `nohup` log file;
//! under journald, no timestamp of our own and a `<N>` priority prefix so
//! `journalctl -p warning` shows exactly the failures.
//!
//! Logging never blocks a beat or a stop. Each line is one write(2) of at
//! most [`MAX_LINE`] bytes, taken by no lock, to a descriptor that does not
//! block: when nobody reads our stderr pipe, lines are dropped and counted,
//! and the count is logged once the reader catches up.

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use log::{Level, LevelFilter, Metadata, Record};

use crate::clock;
use crate::text;

/// One line is written with one call; a pipe takes up to 4096 bytes
/// atomically (PIPE_BUF), so a line is never interleaved or half-written.
const MAX_LINE: usize = 4000;

/// Is stderr the journal? systemd sets `JOURNAL_STREAM=dev:inode` for the
/// stream it connects; the variable alone can be inherited by a child whose
/// stderr was redirected, so the device and inode must match too.
// u64::from: dev_t and ino_t are not u64 on every target.
#[allow(clippy::useless_conversion)]
pub fn stderr_is_journal(journal_stream: Option<String>) -> bool {
    let Some((dev, ino)) = journal_stream.as_deref().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    fstat(libc::STDERR_FILENO)
        .is_some_and(|st| u64::from(st.st_dev) == dev && u64::from(st.st_ino) == ino)
}

fn fstat(fd: RawFd) -> Option<libc::stat> {
    // SAFETY: fstat writes into a zeroed stat struct; a bad fd just fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

/// How a line reaches stderr without ever blocking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// A socket (journald's stream): send with MSG_DONTWAIT.
    Socket(RawFd),
    /// A descriptor that is non-blocking, or a file (never blocks for long).
    Write(RawFd),
}

impl Sink {
    /// Picks the way for whatever stderr is. A pipe or a terminal is opened
    /// again through /proc as a new, non-blocking open file: setting
    /// O_NONBLOCK on fd 2 itself would also change it for the shell that
    /// shares the terminal. Without /proc, a pipe's own fd is made
    /// non-blocking (only this pipeline shares it).
    fn for_stderr() -> Sink {
        let fd = libc::STDERR_FILENO;
        let Some(st) = fstat(fd) else {
            return Sink::Write(fd);
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFSOCK => Sink::Socket(fd),
            libc::S_IFIFO | libc::S_IFCHR => {
                if let Some(reopened) = reopen_nonblocking(fd) {
                    return Sink::Write(reopened);
                }
                if st.st_mode & libc::S_IFMT == libc::S_IFIFO {
                    // SAFETY: fcntl on our own stderr descriptor.
                    unsafe {
                        let flags = libc::fcntl(fd, libc::F_GETFL);
                        if flags >= 0 {
                            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                        }
                    }
                }
                Sink::Write(fd)
            }
            _ => Sink::Write(fd),
        }
    }

    /// Writes the whole line or nothing; false when it could not.
    fn write_line(self, line: &[u8]) -> bool {
        let mut rest = line;
        while !rest.is_empty() {
            // SAFETY: a valid buffer and length; a bad fd only returns an error.
            let n = unsafe {
                match self {
                    Sink::Socket(fd) => libc::send(
                        fd,
                        rest.as_ptr().cast(),
                        rest.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    ),
                    Sink::Write(fd) => libc::write(fd, rest.as_ptr().cast(), rest.len()),
                }
            };
            if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return false;
            }
            // A terminal may take part of a line; the rest follows at once
            // or, if the terminal is stuck, the line ends short.
            rest = &rest[n as usize..];
        }
        true
    }
}

fn reopen_nonblocking(fd: RawFd) -> Option<RawFd> {
    let path = CString::new(format!("/proc/self/fd/{fd}")).ok()?;
    // SAFETY: a NUL-terminated path; the result is checked.
    let new = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
        )
    };
    (new >= 0).then_some(new)
}

/// Lines that could not be written since the last one that could (32
/// bits: 32-bit MIPS has no 64-bit atomics).
static DROPPED: AtomicU32 = AtomicU32::new(0);

struct Logger {
    filter: Filter,
    journald: bool,
    sink: Sink,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format_args!(
                "{dropped} log line(s) dropped: stderr was not being read (a full pipe?)"
            );
            let line = self.format(Level::Warn, env!("CARGO_CRATE_NAME"), note);
            if !self.sink.write_line(line.as_bytes()) {
                DROPPED.fetch_add(dropped.saturating_add(1), Ordering::Relaxed);
                return;
            }
        }
        let line = self.format(record.level(), record.target(), *record.args());
        if !self.sink.write_line(line.as_bytes()) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

impl Logger {
    fn format(&self, level: Level, target: &str, args: std::fmt::Arguments) -> String {
        let mut line = String::with_capacity(160);
        if self.journald {
            let _ = write!(line, "<{}>", priority(level));
        } else {
            let _ = write!(
                line,
                "{} {level:<5} ",
                clock::format_rfc3339(SystemTime::now())
            );
        }
        if !target.starts_with(env!("CARGO_CRATE_NAME")) {
            let _ = write!(line, "[{target}] ");
        }
        let start = line.len();
        let _ = write!(line, "{args}");
        // Whatever a library or a careless caller put in, one line it stays.
        if let std::borrow::Cow::Owned(safe) = text::guard_line(&line[start..]) {
            line.truncate(start);
            line.push_str(&safe);
        }
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE - 3;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str("...");
        }
        line.push('\n');
        line
    }
}

/// Levels for our own lines, for libraries' lines, and per-target
/// overrides from `RUST_LOG` (`debug`, `ureq=trace`, `rustls=off,warn`).
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    ours: LevelFilter,
    theirs: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// `verbosity` 0 is info for our lines and warnings from libraries; each
    /// -v adds detail, each -q takes it away. `RUST_LOG`, when set, wins.
    fn new(verbosity: i8, rust_log: Option<&str>) -> Filter {
        let (ours, theirs) = match verbosity {
            i8::MIN..=-2 => (LevelFilter::Error, LevelFilter::Error),
            -1 => (LevelFilter::Warn, LevelFilter::Warn),
            0 => (LevelFilter::Info, LevelFilter::Warn),
            1 => (LevelFilter::Debug, LevelFilter::Warn),
            2.. => (LevelFilter::Trace, LevelFilter::Debug),
        };
        let mut filter = Filter {
            ours,
            theirs,
            targets: Vec::new(),
        };
        for directive in rust_log.unwrap_or("").split(',').map(str::trim) {
            match directive.split_once('=') {
                None if directive.is_empty() => {}
                None => match directive.parse() {
                    Ok(level) => {
                        filter.ours = level;
                        filter.theirs = level;
                    }
                    // A module alone means all of its lines, as env_logger reads it.
                    Err(_) => filter
                        .targets
                        .push((directive.to_string(), LevelFilter::Trace)),
                },
                Some((target, level)) => {
                    if let Ok(level) = level.trim().parse() {
                        filter.targets.push((target.trim().to_string(), level));
                    }
                }
            }
        }
        // The longest matching prefix wins, as in env_logger.
        filter
            .targets
            .sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        filter
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        if let Some((_, level)) = self
            .targets
            .iter()
            .find(|(t, _)| target.starts_with(t.as_str()))
        {
            return *level;
        }
        if target.starts_with(env!("CARGO_CRATE_NAME")) {
            self.ours
        } else {
            self.theirs
        }
    }

    fn max(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .chain([self.ours, self.theirs])
            .max()
            .unwrap_or(LevelFilter::Off)
    }
}

pub fn init(verbosity: i8, journald: bool, rust_log: Option<String>) {
    let filter = Filter::new(verbosity, rust_log.as_deref());
    log::set_max_level(filter.max());
    let logger = Box::new(Logger {
        filter,
        journald,
        sink: Sink::for_stderr(),
    });
    // Only fails if a logger is already set, which would be our own bug.
    let _ = log::set_logger(Box::leak(logger));
}

/// syslog priorities, as journald reads them from a `<N>` prefix.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_alone_in_rust_log_shows_all_of_its_lines() {
        let f = Filter::new(0, Some("ureq"));
        assert_eq!(f.level_for("ureq::run"), LevelFilter::Trace);
        assert_eq!(f.level_for("rustls::client"), LevelFilter::Warn);
        assert_eq!(f.level_for(env!("CARGO_CRATE_NAME")), LevelFilter::Info);
        assert_eq!(Filter::new(0, Some("")).targets, Vec::new());
    }

    #[test]
    fn a_journal_stream_that_is_not_our_stderr_is_ignored() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage".into())));
        assert!(!stderr_is_journal(Some("1:1".into())));
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Warn), 4);
        assert_eq!(priority(Level::Info), 6);
        assert_eq!(priority(Level::Debug), 7);
    }

    const OURS: &str = env!("CARGO_CRATE_NAME");

    #[test]
    fn verbosity_sets_our_level_and_libraries_follow_at_vv() {
        let f = Filter::new(0, None);
        assert_eq!(f.level_for(OURS), LevelFilter::Info);
        assert_eq!(f.level_for("ureq::pool"), LevelFilter::Warn);
        let f = Filter::new(2, None);
        assert_eq!(f.level_for(OURS), LevelFilter::Trace);
        assert_eq!(f.level_for("rustls"), LevelFilter::Debug);
        assert_eq!(Filter::new(-2, None).level_for(OURS), LevelFilter::Error);
    }

    #[test]
    fn rust_log_overrides_by_longest_prefix() {
        let f = Filter::new(
            0,
            Some("warn, ureq=debug ,ureq::unversioned=off,bogus=nonsense"),
        );
        assert_eq!(f.level_for(OURS), LevelFilter::Warn);
        assert_eq!(f.level_for("ureq::pool"), LevelFilter::Debug);
        assert_eq!(
            f.level_for("ureq::unversioned::transport"),
            LevelFilter::Off
        );
        assert_eq!(f.level_for("rustls"), LevelFilter::Warn);
        assert_eq!(f.max(), LevelFilter::Debug);
    }

    #[test]
    fn lines_are_one_line_capped_and_carry_the_priority() {
        let logger = Logger {
            filter: Filter::new(0, None),
            journald: true,
            sink: Sink::Write(-1),
        };
        let line = logger.format(Level::Warn, OURS, format_args!("a\n<0>b"));
        assert_eq!(line, "<4>a\\n<0>b\n");
        let line = logger.format(
            Level::Info,
            "rustls::x",
            format_args!("{}", "y".repeat(9000)),
        );
        assert!(line.starts_with("<6>[rustls::x] yyy"));
        assert_eq!(line.len(), MAX_LINE + 1);
        assert!(line.ends_with("...\n"));
    }

    #[test]
    fn a_full_pipe_drops_lines_instead_of_blocking() {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors we own and close below.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) },
            0
        );
        let sink = Sink::Write(fds[1]);
        let line = vec![b'x'; 1000];
        let written = (0..200).filter(|_| sink.write_line(&line)).count();
        // 64 KiB of pipe holds 65 lines of 1000 bytes; the rest are refused at once.
        assert!((60..=70).contains(&written), "{written}");
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
