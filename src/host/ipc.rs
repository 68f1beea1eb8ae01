//! System V IPC and POSIX shared memory, as `ipcs` and `df /dev/shm` would
//! count them: the world-readable tables in `/proc/sysvipc/` and the
//! filesystem under `/dev/shm`. The server looks for leaks in them (a
//! shared-memory segment no process holds any more, semaphores piling up).

use std::path::Path;

use super::disk;

/// `ipc_stats` with the server agent's keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IpcStats {
    pub shm_segments: u64,
    pub shm_bytes: u64,
    /// Segments no process is attached to (`nattch` 0), and their bytes.
    pub shm_orphaned: u64,
    pub shm_orphaned_bytes: u64,
    pub sem_arrays: u64,
    pub msg_queues: u64,
    pub msg_bytes: u64,
    /// Used bytes of the tmpfs at /dev/shm (POSIX shared memory).
    pub devshm_bytes: u64,
}

/// The rows of one `/proc/sysvipc/*` table, its header skipped, each split
/// into words; a row whose column `n` (0-based) is not a number is skipped.
fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
}

fn number(row: &[&str], column: usize) -> Option<u64> {
    row.get(column)?.parse().ok()
}

/// `/proc/sysvipc/shm`: key shmid perms size cpid lpid nattch ...
pub fn parse_shm(text: &str, stats: &mut IpcStats) {
    for row in rows(text) {
        let (Some(size), Some(attached)) = (number(&row, 3), number(&row, 6)) else {
            continue;
        };
        stats.shm_segments = stats.shm_segments.saturating_add(1);
        stats.shm_bytes = stats.shm_bytes.saturating_add(size);
        if attached == 0 {
            stats.shm_orphaned = stats.shm_orphaned.saturating_add(1);
            stats.shm_orphaned_bytes = stats.shm_orphaned_bytes.saturating_add(size);
        }
    }
}

/// `/proc/sysvipc/sem`: one row per semaphore array.
pub fn parse_sem(text: &str, stats: &mut IpcStats) {
    stats.sem_arrays = rows(text).filter(|r| number(r, 1).is_some()).count() as u64;
}

/// `/proc/sysvipc/msg`: key msqid perms cbytes qnum ...
pub fn parse_msg(text: &str, stats: &mut IpcStats) {
    for row in rows(text) {
        let Some(bytes) = number(&row, 3) else {
            continue;
        };
        stats.msg_queues = stats.msg_queues.saturating_add(1);
        stats.msg_bytes = stats.msg_bytes.saturating_add(bytes);
    }
}

/// A table's parser, adding what it counts to the stats.
type Table = fn(&str, &mut IpcStats);

/// The stats now, and whether a table was cut at 64 KiB. None without
/// /proc/sysvipc (a kernel without System V IPC).
pub fn read() -> Option<(IpcStats, bool)> {
    let mut stats = IpcStats::default();
    let mut cut = false;
    let tables: [(&str, Table); 3] = [
        ("/proc/sysvipc/shm", parse_shm),
        ("/proc/sysvipc/sem", parse_sem),
        ("/proc/sysvipc/msg", parse_msg),
    ];
    for (path, parse) in tables {
        let (text, more) = super::read_listing(path).ok()?;
        cut |= more;
        parse(&text, &mut stats);
    }
    // tmpfs answers statvfs at once (no device, no server behind it).
    stats.devshm_bytes = disk::statvfs(Path::new("/dev/shm")).map_or(0, |d| d.used);
    Some((stats, cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_count_as_ipcs_does() {
        let mut stats = IpcStats::default();
        parse_shm(
            "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                      0          3  1600                524288  1234  1240      2  1000  1000  1000  1000 1700000000 0 1700000000 0 0\n\
             1234567          4   600                  4096  99   99          0     0     0     0     0          0 0 1700000000 0 0\n",
            &mut stats,
        );
        parse_sem(
            "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n\
                      0          1   600          1     0     0     0     0          0 1700000000\n",
            &mut stats,
        );
        parse_msg(
            "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n\
                      5          0   666          300          2     0     0     0     0     0     0 0 0 1700000000\n",
            &mut stats,
        );
        assert_eq!(
            stats,
            IpcStats {
                shm_segments: 2,
                shm_bytes: 524_288 + 4096,
                shm_orphaned: 1,
                shm_orphaned_bytes: 4096,
                sem_arrays: 1,
                msg_queues: 1,
                msg_bytes: 300,
                devshm_bytes: 0,
            }
        );
        let mut empty = IpcStats::default();
        parse_shm("key shmid\n", &mut empty);
        assert_eq!(empty, IpcStats::default());
    }

    #[test]
    fn this_box_has_tables_to_read() {
        let (stats, cut) = read().unwrap();
        assert!(!cut);
        assert!(stats.shm_orphaned <= stats.shm_segments);
    }
}
