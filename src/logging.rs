//! Log lines on stderr: timestamped for a terminal or a `nohup` log file;
//! under journald, no timestamp of our own and a `<N>` priority prefix so
//! `journalctl -p warning` shows exactly the failures.

use std::io::Write;
use std::time::SystemTime;

use log::{Level, LevelFilter};

use crate::clock;

/// Is stderr the journal? systemd sets `JOURNAL_STREAM=dev:inode` for the
/// stream it connects; the variable alone can be inherited by a child whose
/// stderr was redirected, so the device and inode must match too.
pub fn stderr_is_journal(journal_stream: Option<String>) -> bool {
    let Some((dev, ino)) = journal_stream.as_deref().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat writes into a zeroed stat struct for a valid descriptor number.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(libc::STDERR_FILENO, &mut st) };
    rc == 0 && st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// `verbosity` 0 is info for our lines and warnings from libraries; each -v
/// adds detail, each -q takes it away. `RUST_LOG`, when set, wins.
pub fn init(verbosity: i8, journald: bool, rust_log: Option<String>) {
    let (ours, theirs) = match verbosity {
        i8::MIN..=-2 => (LevelFilter::Error, LevelFilter::Error),
        -1 => (LevelFilter::Warn, LevelFilter::Warn),
        0 => (LevelFilter::Info, LevelFilter::Warn),
        1 => (LevelFilter::Debug, LevelFilter::Warn),
        2.. => (LevelFilter::Trace, LevelFilter::Debug),
    };
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(theirs)
        .filter_module(env!("CARGO_CRATE_NAME"), ours)
        .target(env_logger::Target::Stderr);
    if let Some(filters) = rust_log.filter(|f| !f.is_empty()) {
        builder.parse_filters(&filters);
    }
    builder.format(move |out, record| {
        let ours = record.target().starts_with(env!("CARGO_CRATE_NAME"));
        let target = if ours {
            String::new()
        } else {
            format!("[{}] ", record.target())
        };
        if journald {
            writeln!(
                out,
                "<{}>{target}{}",
                priority(record.level()),
                record.args()
            )
        } else {
            writeln!(
                out,
                "{} {:<5} {target}{}",
                clock::format_rfc3339(SystemTime::now()),
                record.level(),
                record.args()
            )
        }
    });
    // Only fails if a logger is already set, which would be our own bug.
    let _ = builder.try_init();
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
}
