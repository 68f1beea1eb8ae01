//! Filesystems: which mounts are the box's disks, and their sizes from
//! `statvfs`, each call bounded in time (a dead NFS server or a FUSE
//! daemon that stopped reading hangs statvfs for good).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::parse::{self, Mount};

/// Disks per push, whatever the box has; each statvfs is a small thread,
/// so this also bounds the threads.
pub const MAX_DISKS: usize = 64;

/// A filesystem's size as `df` counts it: `used + avail` is what ordinary
/// users can fill, so `used_percent` reads as df's Use% column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub total: u64,
    pub used: u64,
    pub avail: u64,
}

impl Disk {
    pub fn used_percent(&self) -> f64 {
        let usable = self.used.saturating_add(self.avail);
        if usable == 0 {
            return 0.0;
        }
        self.used as f64 * 100.0 / usable as f64
    }
}

/// `statvfs(path)`, unbounded: call it from [`within_limit`] unless the
/// caller bounds it itself (a disk check's probe thread).
pub fn statvfs(path: &Path) -> io::Result<Disk> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is
    // NUL-terminated and outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    let blocks = st.f_blocks as u64;
    let free = st.f_bfree as u64;
    let avail = st.f_bavail as u64;
    Ok(Disk {
        total: blocks.saturating_mul(frsize),
        used: blocks.saturating_sub(free).saturating_mul(frsize),
        avail: avail.saturating_mul(frsize),
    })
}

/// Paths whose statvfs has not returned: a hung mount is not asked again
/// (one more stuck thread per beat) until it answers.
static STUCK: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn stuck() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // Held only to push or remove a path: a poisoned list is still good.
    STUCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`statvfs`] for each path, all at once on small threads, each given up
/// after `limit`: the beat never waits longer than that for its figures.
pub fn within_limit(paths: &[&Path], limit: Duration) -> Vec<io::Result<Disk>> {
    let deadline = Instant::now().checked_add(limit);
    let pending: Vec<_> = paths
        .iter()
        .map(|path| {
            let path = path.to_path_buf();
            if stuck().contains(&path) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "still hung: an earlier statvfs has not returned",
                ));
            }
            stuck().push(path.clone());
            let key = path.clone();
            let (tx, rx) = mpsc::sync_channel(1);
            let spawned = thread::Builder::new().stack_size(64 * 1024).spawn(move || {
                let result = statvfs(&path);
                stuck().retain(|p| p != &path);
                let _ = tx.send(result);
            });
            match spawned {
                Ok(_) => Ok(rx),
                Err(e) => {
                    stuck().retain(|p| p != &key);
                    Err(e)
                }
            }
        })
        .collect();
    pending
        .into_iter()
        .map(|waiting| {
            let rx = waiting?;
            let left = deadline.map_or(limit, |d| d.saturating_duration_since(Instant::now()));
            rx.recv_timeout(left).unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {}", crate::clock::format_duration(limit)),
                ))
            })
        })
        .collect()
}

/// The box's disks as the server's agent counts them (psutil's
/// `disk_partitions()` less virtual and ephemeral mounts), in mount
/// order, at most [`MAX_DISKS`]; true when some were cut off.
pub fn real_disks(device_filesystems: &[String]) -> io::Result<(Vec<Mount>, bool)> {
    let (text, cut) = super::read_listing("/proc/self/mounts")?;
    let mounts = parse::parse_mounts(&text);
    // Sorted, to be searched: up to 64 KiB of mounts.
    let mut seen: Vec<&str> = Vec::new();
    let mut disks: Vec<&Mount> = Vec::new();
    // A mount point mounted over keeps its last entry, as psutil's dict does.
    for mount in mounts.iter().rev() {
        if !parse::is_real_disk(mount, device_filesystems) {
            continue;
        }
        if let Err(at) = seen.binary_search(&mount.path.as_str()) {
            seen.insert(at, &mount.path);
            disks.push(mount);
        }
    }
    disks.reverse();
    let cut = cut || disks.len() > MAX_DISKS;
    disks.truncate(MAX_DISKS);
    Ok((disks.into_iter().cloned().collect(), cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_use_counts_like_df() {
        // 100 blocks, 20 free of which 10 are reserved for root.
        let d = Disk {
            total: 100,
            used: 80,
            avail: 10,
        };
        assert!((d.used_percent() - 88.888).abs() < 0.01);
        assert_eq!(
            statvfs(Path::new("/nonexistent-dir/x")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let root = statvfs(Path::new("/")).unwrap();
        assert!(root.total > 0 && root.used <= root.total);
    }
}
