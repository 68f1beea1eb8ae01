//! The running systemd services, as the unit cgroups under `/sys/fs/cgroup`
//! show them: systemd gives each active service a cgroup named after it,
//! inside its slice, and a service is running while its cgroup holds a
//! process. One directory listing per slice and one tiny file per service,
//! no program started and no bus: it works under the shipped unit
//! (`ProtectControlGroups=yes` leaves the tree readable) and costs about
//! what `/proc/loadavg` does per service. docs/design.md, "Services found".

use std::io::Read;
use std::path::{Path, PathBuf};

/// Where systemd says it booted the box (`sd_booted()`'s test).
const BOOTED: &str = "/run/systemd/system";
/// The deepest slice nesting walked (`a-b-c.slice` is three deep).
const MAX_DEPTH: usize = 8;
/// The most services listed, whatever the box has.
pub const MAX_UNITS: usize = 2048;

/// The cgroup tree that has systemd's units, and how it says "populated".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    /// cgroup v2 (unified, or the hybrid layout's `unified/`): each
    /// cgroup's `cgroup.events` says `populated 0|1`.
    Unified(PathBuf),
    /// cgroup v1's `name=systemd` hierarchy: `cgroup.procs` is empty or not.
    Legacy(PathBuf),
}

impl Tree {
    /// The tree under `root` (`/sys/fs/cgroup`), None when there is none
    /// systemd uses.
    pub fn find(root: &Path) -> Option<Tree> {
        if root.join("cgroup.controllers").exists() {
            return Some(Tree::Unified(root.to_path_buf()));
        }
        let hybrid = root.join("unified");
        if hybrid.join("cgroup.controllers").exists() && hybrid.join("system.slice").is_dir() {
            return Some(Tree::Unified(hybrid));
        }
        let legacy = root.join("systemd");
        legacy
            .join("system.slice")
            .is_dir()
            .then_some(Tree::Legacy(legacy))
    }

    fn top(&self) -> &Path {
        match self {
            Tree::Unified(p) | Tree::Legacy(p) => p,
        }
    }

    /// Whether the cgroup at `dir` holds a process now.
    fn populated(&self, dir: &Path) -> bool {
        let mut buffer = [0u8; 128];
        let read = |name: &str, buffer: &mut [u8]| -> Option<usize> {
            std::fs::File::open(dir.join(name)).ok()?.read(buffer).ok()
        };
        match self {
            Tree::Unified(_) => read("cgroup.events", &mut buffer)
                .and_then(|n| buffer.get(..n))
                .is_some_and(events_say_populated),
            Tree::Legacy(_) => read("cgroup.procs", &mut buffer).is_some_and(|n| n > 0),
        }
    }
}

/// `populated 1` in a `cgroup.events` text.
fn events_say_populated(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n')
        .any(|line| line == b"populated 1")
}

/// Whether systemd runs this box.
pub fn booted() -> bool {
    Path::new(BOOTED).is_dir()
}

/// The running services under `tree`, names without `.service`, sorted;
/// true when there were more than [`MAX_UNITS`].
pub fn running(tree: &Tree) -> (Vec<String>, bool) {
    let mut found = Vec::new();
    let mut cut = false;
    walk(tree, tree.top(), 0, &mut found, &mut cut);
    found.sort_unstable();
    found.dedup();
    (found, cut)
}

fn walk(tree: &Tree, dir: &Path, depth: usize, found: &mut Vec<String>, cut: &mut bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = crate::text::bytes_name(name.as_encoded_bytes());
        if let Some(service) = name.strip_suffix(".service") {
            if service.is_empty() || !tree.populated(&entry.path()) {
                continue;
            }
            if found.len() >= MAX_UNITS {
                *cut = true;
                return;
            }
            found.push(service.to_string());
        } else if name.ends_with(".slice") && depth < MAX_DEPTH {
            // A service's own sub-cgroups (a user manager's app.slice) are
            // not system units: only slices are entered.
            walk(tree, &entry.path(), depth + 1, found, cut);
        }
    }
}

/// The service a process runs in, from its `/proc/PID/cgroup` text: the
/// first `*.service` of its systemd path (a user's services run inside
/// `user@UID.service`, the system unit that holds them).
pub fn service_of(cgroup: &str) -> Option<&str> {
    // cgroup v2's line, else (the hybrid layout) systemd's own hierarchy.
    let line = |prefix: fn(&str) -> bool| cgroup.lines().find(|l| prefix(l));
    line(|l| l.starts_with("0::"))
        .and_then(service_in)
        .or_else(|| line(|l| l.contains(":name=systemd:")).and_then(service_in))
}

/// The first `*.service` of one `/proc/PID/cgroup` line's path.
fn service_in(line: &str) -> Option<&str> {
    let (_, path) = line.split_once(':')?.1.split_once(':')?;
    path.split('/')
        .find_map(|part| part.strip_suffix(".service"))
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;
    use std::fs;

    /// A cgroup tree in a temporary directory: `units` are (path, populated).
    fn tree(unified: bool, units: &[(&str, bool)]) -> (TempDir, Tree) {
        let dir = TempDir::new("units");
        let top = if unified {
            fs::write(dir.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
            dir.path().to_path_buf()
        } else {
            dir.path().join("systemd")
        };
        fs::create_dir_all(top.join("system.slice")).unwrap();
        fs::create_dir_all(top.join("init.scope")).unwrap();
        for (path, populated) in units {
            let unit = top.join(path);
            fs::create_dir_all(&unit).unwrap();
            if unified {
                let events = format!("populated {}\nfrozen 0\n", u8::from(*populated));
                fs::write(unit.join("cgroup.events"), events).unwrap();
            } else {
                fs::write(
                    unit.join("cgroup.procs"),
                    if *populated { "412\n" } else { "" },
                )
                .unwrap();
            }
        }
        let found = Tree::find(dir.path()).unwrap();
        (dir, found)
    }

    /// What `systemctl list-units --type=service --state=running` listed
    /// on a Debian 12 box, as its cgroups show them.
    const BOX: &[(&str, bool)] = &[
        ("system.slice/nginx.service", true),
        ("system.slice/ssh.service", true),
        ("system.slice/cron.service", true),
        // exited oneshot (RemainAfterExit): active, not running
        ("system.slice/networking.service", false),
        ("system.slice/system-getty.slice/getty@tty1.service", true),
        (
            "system.slice/system-postgresql.slice/postgresql@15-main.service",
            true,
        ),
        ("user.slice/user-1000.slice/user@1000.service", true),
        // a user's own services are not system units
        (
            "user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service",
            true,
        ),
        ("user.slice/user-1000.slice/session-3.scope", true),
        ("machine.slice/libpod-4f1c.scope", true),
    ];

    #[test]
    fn running_services_are_the_populated_unit_cgroups_in_every_slice() {
        for unified in [true, false] {
            let (_dir, tree) = tree(unified, BOX);
            let (found, cut) = running(&tree);
            assert_eq!(
                found,
                [
                    "cron",
                    "getty@tty1",
                    "nginx",
                    "postgresql@15-main",
                    "ssh",
                    "user@1000"
                ],
                "unified: {unified}"
            );
            assert!(!cut);
        }
    }

    #[test]
    fn the_hybrid_layout_is_read_from_its_unified_tree() {
        let dir = TempDir::new("units");
        let unified = dir.path().join("unified");
        fs::create_dir_all(unified.join("system.slice/a.service")).unwrap();
        fs::write(unified.join("cgroup.controllers"), "").unwrap();
        fs::write(
            unified.join("system.slice/a.service/cgroup.events"),
            "populated 1\n",
        )
        .unwrap();
        fs::create_dir_all(dir.path().join("systemd/system.slice")).unwrap();
        let tree = Tree::find(dir.path()).unwrap();
        assert_eq!(tree, Tree::Unified(unified));
        assert_eq!(running(&tree).0, ["a"]);
        assert_eq!(Tree::find(&dir.path().join("nothing")), None);
    }

    #[test]
    fn a_box_with_thousands_of_units_gets_the_first_ones_and_a_word() {
        let names: Vec<String> = (0..MAX_UNITS + 3)
            .map(|i| format!("system.slice/u{i}.service"))
            .collect();
        let units: Vec<(&str, bool)> = names.iter().map(|n| (n.as_str(), true)).collect();
        let (_dir, tree) = tree(true, &units);
        let (found, cut) = running(&tree);
        assert_eq!(found.len(), MAX_UNITS);
        assert!(cut);
    }

    #[test]
    fn a_process_belongs_to_the_first_service_of_its_path() {
        assert_eq!(
            service_of("0::/system.slice/nginx.service\n"),
            Some("nginx")
        );
        assert_eq!(
            service_of("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service\n"),
            Some("user@1000")
        );
        assert_eq!(
            service_of("12:pids:/x\n1:name=systemd:/system.slice/cron.service\n0::/\n"),
            Some("cron"),
            "hybrid: the systemd hierarchy when the unified one says nothing"
        );
        assert_eq!(
            service_of("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
        assert_eq!(service_of("0::/init.scope\n"), None);
        assert_eq!(service_of(""), None);
    }

    #[test]
    fn populated_is_read_from_the_events_line() {
        assert!(events_say_populated(b"populated 1\nfrozen 0\n"));
        assert!(!events_say_populated(b"populated 0\nfrozen 0\n"));
        assert!(!events_say_populated(b"populated 10\n"));
    }
}
