//! The metrics push's previous sample, kept between the runs of `--once`
//! and `run` (a cron box): CPU share and rates need two samples, and a
//! one-beat process has only its own. Kept in a runtime directory, which
//! lives in RAM (tmpfs) and is gone at reboot, so it costs no flash write
//! and never outlives the boot its counters belong to.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::top::Ticks;

/// The counters of one sample, as the file holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Since boot (CLOCK_BOOTTIME), so a sample from another boot is refused.
    pub at: Duration,
    pub cpu: Option<(u64, u64)>,
    pub disk: Option<(u64, u64)>,
    pub net: Option<(u64, u64)>,
}

/// Where the sample of one server's pushes lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub file: PathBuf,
}

/// The directory for kept state, in order: systemd's `RuntimeDirectory=`
/// (`$RUNTIME_DIRECTORY`), the user's `$XDG_RUNTIME_DIR`, `/run` for root
/// where the system has one (`have_run`: a tmpfs wherever it exists; on
/// OpenWrt there is none, and making it would write to flash), else
/// `/dev/shm` (tmpfs on every Linux, world-writable: a directory of our own
/// in it, checked before use). Pure: the environment, the uid and whether
/// /run exists come in.
pub fn directory(env: &dyn Fn(&str) -> Option<String>, uid: u32, have_run: bool) -> PathBuf {
    let set = |name: &str| {
        env(name)
            .and_then(|v| v.split(':').next().map(str::to_string))
            .filter(|v| v.starts_with('/'))
    };
    if let Some(dir) = set("RUNTIME_DIRECTORY") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = set("XDG_RUNTIME_DIR") {
        return Path::new(&dir).join("stacksense-heartbeat");
    }
    if uid == 0 && have_run {
        return PathBuf::from("/run/stacksense-heartbeat");
    }
    PathBuf::from(format!("/dev/shm/stacksense-heartbeat-{uid}"))
}

impl Kept {
    /// The sample file for pushes to `url` in `dir`: one per server, so two
    /// cron jobs reporting to two servers do not share one.
    pub fn new(dir: &Path, url: &str) -> Kept {
        Kept {
            file: dir.join(format!("metrics-{:016x}.sample", super::body::fnv1a(url))),
        }
    }

    /// The processes' CPU ticks a previous run left in this boot, and when.
    pub fn load_processes(&self, boot_id: &str) -> Option<(Duration, Ticks)> {
        let text = crate::files::read_small_file(&self.processes_file()).ok()?;
        parse_processes(&text, boot_id)
    }

    /// Keeps the processes' ticks for the next run (at most 1 MiB: the
    /// reader refuses more, and top.rs reads at most 10,000 processes).
    pub fn save_processes(&self, boot_id: &str, at: Duration, ticks: &Ticks) -> io::Result<()> {
        let mut text = format!("{VERSION} {boot_id} {}\n", at.as_nanos());
        for ((pid, started), used) in ticks {
            text.push_str(&format!("{pid} {started} {used}\n"));
        }
        write(&self.processes_file(), &text)
    }

    fn processes_file(&self) -> PathBuf {
        self.file.with_extension("processes")
    }

    /// The sample a previous run left in this boot, if any.
    pub fn load(&self, boot_id: &str) -> Option<Counters> {
        let text = crate::files::read_small_file(&self.file).ok()?;
        parse(&text, boot_id)
    }

    /// Keeps `counters` for the next run.
    pub fn save(&self, boot_id: &str, counters: &Counters) -> io::Result<()> {
        write(&self.file, &format(boot_id, counters))
    }
}

/// `text` into `file`: written whole or not at all (a file written beside
/// it and renamed), readable by us alone, in a directory of ours.
fn write(file: &Path, text: &str) -> io::Result<()> {
    own_directory(file.parent().unwrap_or(Path::new("/")))?;
    let temporary = file.with_extension(format!("{}.new", std::process::id()));
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)?;
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| fs::rename(&temporary, file));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// `dir`, made if missing (0700), and refused unless it is a directory
/// (not a link) of ours that no one else may write: in /dev/shm anyone
/// could have made it first.
fn own_directory(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::symlink_metadata(dir)?;
    // SAFETY: geteuid reads a value and has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{} is not a directory of ours that only we may write",
            crate::text::untrusted(&dir.display().to_string())
        )));
    }
    Ok(())
}

const VERSION: &str = "stacksense-heartbeat-sample-1";

fn format(boot_id: &str, c: &Counters) -> String {
    let pair = |p: Option<(u64, u64)>| p.map_or("- -".to_string(), |(a, b)| format!("{a} {b}"));
    format!(
        "{VERSION} {boot_id} {} {} {} {}\n",
        c.at.as_nanos(),
        pair(c.cpu),
        pair(c.disk),
        pair(c.net)
    )
}

/// None unless the file is ours, of this boot, and whole.
fn parse(text: &str, boot_id: &str) -> Option<Counters> {
    let mut words = text.split_whitespace();
    if words.next()? != VERSION || words.next()? != boot_id {
        return None;
    }
    let at = Duration::from_nanos(words.next()?.parse().ok()?);
    let mut pair = || -> Option<Option<(u64, u64)>> {
        match (words.next()?, words.next()?) {
            ("-", "-") => Some(None),
            (a, b) => Some(Some((a.parse().ok()?, b.parse().ok()?))),
        }
    };
    let (cpu, disk, net) = (pair()?, pair()?, pair()?);
    Some(Counters { at, cpu, disk, net })
}

fn parse_processes(text: &str, boot_id: &str) -> Option<(Duration, Ticks)> {
    let mut lines = text.lines();
    let mut head = lines.next()?.split_whitespace();
    if head.next()? != VERSION || head.next()? != boot_id {
        return None;
    }
    let at = Duration::from_nanos(head.next()?.parse().ok()?);
    let mut ticks = Ticks::new();
    for line in lines {
        let mut f = line.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(started)), Some(Ok(used))) = (f.next(), f.next(), f.next())
        else {
            return None;
        };
        ticks.insert((u32::try_from(pid).ok()?, started), used);
    }
    Some((at, ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_a_runtime_one() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let systemd = env(&[
            ("RUNTIME_DIRECTORY", "/run/x:/run/y"),
            ("XDG_RUNTIME_DIR", "/run/user/5"),
        ]);
        assert_eq!(directory(&systemd, 0, true), PathBuf::from("/run/x"));
        let user = env(&[("XDG_RUNTIME_DIR", "/run/user/5")]);
        assert_eq!(
            directory(&user, 5, true),
            PathBuf::from("/run/user/5/stacksense-heartbeat")
        );
        let relative = env(&[("XDG_RUNTIME_DIR", "run")]);
        assert_eq!(
            directory(&relative, 0, true),
            PathBuf::from("/run/stacksense-heartbeat")
        );
        // OpenWrt: no /run, and its root is flash; /dev/shm is RAM.
        assert_eq!(
            directory(&env(&[]), 0, false),
            PathBuf::from("/dev/shm/stacksense-heartbeat-0")
        );
        assert_eq!(
            directory(&env(&[]), 1000, true),
            PathBuf::from("/dev/shm/stacksense-heartbeat-1000")
        );
    }

    #[test]
    fn a_sample_survives_a_run_and_not_a_reboot() {
        let dir = std::env::temp_dir().join(format!("kept-test-{}", std::process::id()));
        let kept = Kept::new(&dir, "https://h/api/agent/heartbeat/");
        let counters = Counters {
            at: Duration::from_nanos(123_456_789_012),
            cpu: Some((1000, 200)),
            disk: None,
            net: Some((5, u64::MAX)),
        };
        assert_eq!(kept.load("boot-1"), None);
        kept.save("boot-1", &counters).unwrap();
        assert_eq!(kept.load("boot-1"), Some(counters));
        assert_eq!(kept.load("boot-2"), None, "another boot's counters");
        let mode = fs::metadata(&kept.file).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        fs::write(&kept.file, "stacksense-heartbeat-sample-1 boot-1 12 x y").unwrap();
        assert_eq!(kept.load("boot-1"), None, "a damaged file is no sample");
        let ticks: Ticks = [((7, 100), 50), ((9, 200), 0)].into_iter().collect();
        kept.save_processes("boot-1", Duration::from_secs(3), &ticks)
            .unwrap();
        assert_eq!(
            kept.load_processes("boot-1"),
            Some((Duration::from_secs(3), ticks))
        );
        assert_eq!(kept.load_processes("boot-2"), None);
        let other = Kept::new(&dir, "https://other/api/agent/heartbeat/");
        assert_ne!(other.file, kept.file);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_someone_else_may_write_is_refused() {
        let dir = std::env::temp_dir().join(format!("kept-open-{}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let kept = Kept::new(&dir, "u");
        let err = kept.save("b", &Counters::default()).unwrap_err();
        assert!(err.to_string().contains("only we may write"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
