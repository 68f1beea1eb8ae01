//! Filesystems: which mounts are the box's disks, and their sizes from
//! `statvfs`, each call bounded in time (a dead NFS server or a FUSE
//! daemon that stopped reading hangs statvfs for good).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use super::parse::{self, Mount};

/// Disks per push, whatever the box has.
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

/// [`statvfs`] for each path, one after the other on one kept thread
/// ([`crate::workers`]), given up after `limit`: the beat never waits
/// longer than that for its figures. A healthy statvfs takes about a
/// microsecond, so one thread does them all; a path that hangs is left
/// out with those after it in this push, and skipped in later pushes
/// until its statvfs returns, so the others are measured again from the
/// next push on.
pub fn within_limit(paths: &[&Path], limit: Duration) -> Vec<io::Result<Disk>> {
    let deadline = Instant::now().checked_add(limit);
    let mut results: Vec<Option<io::Result<Disk>>> = paths.iter().map(|_| None).collect();
    let mut todo = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        if stuck().iter().any(|p| p == path) {
            results[i] = Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "still hung: an earlier statvfs has not returned",
            )));
        } else {
            todo.push((i, path.to_path_buf()));
        }
    }
    if !todo.is_empty() {
        let (tx, rx) = mpsc::channel();
        let spawned = crate::workers::spawn(move || {
            for (i, path) in todo {
                stuck().push(path.clone());
                let result = statvfs(&path);
                stuck().retain(|p| p != &path);
                // Nobody waits any more: the rest are for the next push.
                if tx.send((i, result)).is_err() {
                    break;
                }
            }
        });
        if let Err(e) = spawned {
            let why = crate::text::describe_io(&e);
            return results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(io::Error::other(format!("cannot start: {why}")))))
                .collect();
        }
        while results.iter().any(Option::is_none) {
            let left = deadline.map_or(limit, |d| d.saturating_duration_since(Instant::now()));
            match rx.recv_timeout(left) {
                Ok((i, result)) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(result);
                    }
                }
                Err(_) => break,
            }
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {}", crate::clock::format_duration(limit)),
                ))
            })
        })
        .collect()
}

/// How much of the mount table is read, and for how long: a Kubernetes
/// node mounts each pod's secrets as tmpfs, so the real disks can come
/// after thousands of lines; the work is bounded, not the view.
const MOUNT_TABLE_BYTES: u64 = 8 * 1024 * 1024;
const MOUNT_TABLE_TIME: Duration = Duration::from_millis(250);

/// The box's disks as the server's agent counts them (psutil's
/// `disk_partitions()` less virtual and ephemeral mounts), in mount
/// order, at most [`MAX_DISKS`]; true when some were cut off (more real
/// disks than that, or a mount table past its bounds).
pub fn real_disks(device_filesystems: &[String]) -> io::Result<(Vec<Mount>, bool)> {
    real_disks_in(Path::new("/proc/self/mountinfo"), device_filesystems)
}

fn real_disks_in(table: &Path, device_filesystems: &[String]) -> io::Result<(Vec<Mount>, bool)> {
    use std::io::BufRead;
    let file = std::fs::File::open(table)?;
    let mut reader =
        io::BufReader::with_capacity(64 * 1024, io::Read::take(file, MOUNT_TABLE_BYTES));
    let started = Instant::now();
    let mut line = Vec::with_capacity(256);
    let mut kept = Vec::new();
    let mut cut = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() != Some(&b'\n') || started.elapsed() > MOUNT_TABLE_TIME {
            // The byte bound fell inside a line, or the time ran out.
            cut = true;
            break;
        }
        kept.extend(
            parse::parse_mountinfo(&line)
                .into_iter()
                .filter(|m| parse::is_real_disk(m, device_filesystems)),
        );
    }
    let (disks, more) = distinct_disks(kept);
    Ok((disks, cut || more))
}

/// Real disks in mount order, one per mount point (a mount point mounted
/// over keeps its last entry, as psutil's dict does), at most
/// [`MAX_DISKS`]; true when there were more.
fn distinct_disks(mounts: Vec<Mount>) -> (Vec<Mount>, bool) {
    let mut seen: Vec<String> = Vec::new();
    let mut disks: Vec<Mount> = Vec::new();
    for mount in mounts.into_iter().rev() {
        if let Err(at) = seen.binary_search(&mount.path) {
            seen.insert(at, mount.path.clone());
            disks.push(mount);
        }
    }
    disks.reverse();
    let more = disks.len() > MAX_DISKS;
    disks.truncate(MAX_DISKS);
    (disks, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_disk_after_thousands_of_virtual_mounts_is_kept() {
        let filesystems = vec!["ext4".to_string()];
        let mut table = String::new();
        for i in 0..700 {
            table.push_str(&format!(
                "{} 22 0:{i} / /var/lib/kubelet/pods/6f1c2a7e-0d3b-4c1e-9a57-{i:012}/volumes/kubernetes.io~secret/token rw,relatime - tmpfs tmpfs rw\n",
                i + 100
            ));
        }
        table.push_str(
            "30 22 8:17 / /data rw - ext4 /dev/sdb1 rw\n22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
             31 22 8:33 / /data rw - ext4 /dev/sdc1 rw\n",
        );
        assert!(table.len() > 64 * 1024, "past the old 64 KiB bound");
        let file = std::env::temp_dir().join(format!("mounts-{}", std::process::id()));
        std::fs::write(&file, &table).unwrap();
        let (disks, more) = real_disks_in(&file, &filesystems).unwrap();
        std::fs::remove_file(&file).unwrap();
        let paths: Vec<(&str, &str)> = disks
            .iter()
            .map(|d| (d.device.as_str(), d.path.as_str()))
            .collect();
        assert_eq!(paths, [("/dev/sda1", "/"), ("/dev/sdc1", "/data")]);
        assert!(!more);
        let many: Vec<Mount> = (0..70)
            .map(|i| Mount {
                device: format!("/dev/sd{i}"),
                path: format!("/d{i}"),
                at: format!("/d{i}").into(),
                fstype: "ext4".into(),
                device_number: format!("8:{i}"),
            })
            .collect();
        let (disks, more) = distinct_disks(many);
        assert_eq!(disks.len(), MAX_DISKS);
        assert!(more);
    }

    /// psutil reports a mount point whose name is not UTF-8 (Latin-1 from
    /// an old system); it is measured at its real bytes and named with
    /// them escaped, apart from a mount point that differs only there.
    #[test]
    fn a_mount_point_that_is_not_utf8_is_measured_and_kept_apart() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("latin1-{}", std::process::id()));
        let latin1 = dir.join(std::ffi::OsStr::from_bytes(b"donn\xe9es"));
        std::fs::create_dir_all(&latin1).unwrap();
        let mut table = Vec::new();
        for (device, byte) in [("/dev/sdb1", b'\xe9'), ("/dev/sdc1", b'\xe8')] {
            table.extend_from_slice(format!("30 22 8:17 / {}/donn", dir.display()).as_bytes());
            table.extend_from_slice(&[byte]);
            table.extend_from_slice(format!("es rw - ext4 {device} rw\n").as_bytes());
        }
        // Parsed as real_disks reads each line (the filter would drop /tmp).
        let disks = parse::parse_mountinfo(&table);
        let names: Vec<&str> = disks.iter().map(|d| d.path.as_str()).collect();
        let shown = dir.display();
        assert_eq!(
            names,
            [
                format!("{shown}/donn\\xE9es"),
                format!("{shown}/donn\\xE8es")
            ]
        );
        assert_eq!(disks[0].at, latin1);
        assert!(statvfs(&disks[0].at).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_box_s_root_is_a_real_disk() {
        let (disks, cut) = real_disks(&super::super::device_filesystems()).unwrap();
        assert!(!cut);
        assert!(disks.iter().any(|d| d.path == "/"), "{disks:?}");
    }

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
