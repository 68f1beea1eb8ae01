//! Storage hardware as `lsblk` reads it, without running it: the whole
//! disks and RAID arrays under `/sys/block`, and which disk (and array)
//! holds each mount, from the device numbers in `/proc/self/mountinfo`
//! followed through `/sys/dev/block` and the `slaves/` of device-mapper
//! and md devices. The server shows an SSD/HDD/NVMe badge per disk, the
//! disk count and a Storage hardware card from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most disks and arrays described: a box with hundreds of disks gets
/// the first ones, and a line saying so.
pub const MAX_DEVICES: usize = 64;
/// How deep stacked devices (LVM on LUKS on md...) are followed.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlockDisk {
    pub name: String,
    /// "NVMe", "SSD" or "HDD", as the server's agent names them.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub model: Option<String>,
    /// Bytes.
    pub size: Option<u64>,
    pub transport: Option<&'static str>,
    pub rotational: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RaidArray {
    pub name: String,
    /// "raid1", "raid5", ...
    pub level: String,
    pub size: Option<u64>,
}

/// Where a mount lives: its physical disk and, if any, its RAID level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub disk: String,
    pub raid: Option<String>,
}

/// The server agent's rule: NVMe by name or transport; rotational is a
/// hard disk; anything else solid state.
pub fn kind(name: &str, transport: Option<&str>, rotational: Option<bool>) -> &'static str {
    if transport == Some("nvme") || name.starts_with("nvme") {
        "NVMe"
    } else if rotational == Some(true) {
        "HDD"
    } else {
        "SSD"
    }
}

/// lsblk's TRAN from where the device sits in /sys/devices.
pub fn transport(device_path: &str) -> Option<&'static str> {
    let has = |part: &str| device_path.contains(part);
    if has("/nvme") {
        Some("nvme")
    } else if has("/usb") {
        Some("usb")
    } else if has("/ata") {
        Some("sata")
    } else if has("/virtio") {
        Some("virtio")
    } else if has("/mmc") {
        Some("mmc")
    } else {
        None
    }
}

/// Block devices that are not disks of their own (lsblk's loop, rom,
/// device-mapper and md types; RAM disks).
fn whole_disk(name: &str) -> bool {
    !["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn read(path: &Path) -> Option<String> {
    Some(super::read_path(path).ok()?.trim().to_string())
}

fn sectors(dir: &Path) -> Option<u64> {
    read(&dir.join("size"))?
        .parse::<u64>()
        .ok()?
        .checked_mul(512)
}

/// How long a storage description is trusted when `/sys/block` lists
/// the same devices: a disk resized in place or a changed model string
/// shows within this.
const REREAD: Duration = Duration::from_secs(600);

/// The whole disks and RAID arrays, and whether there were more than
/// [`MAX_DEVICES`].
pub type Inventory = (Vec<BlockDisk>, Vec<RaidArray>, bool);

/// The storage description, read again only when `/sys/block` lists other
/// devices (a disk added, an LVM or md volume made) or [`REREAD`] has
/// passed: describing it walks sysfs links and reads several files a disk,
/// about a tenth of a metrics push's CPU, for facts that rarely change.
#[derive(Debug, Default)]
pub struct Storage {
    names: Vec<String>,
    read_at: Option<Instant>,
    inventory: Inventory,
    placements: HashMap<String, Option<Placement>>,
}

impl Storage {
    /// `names`: [`block_names`] now.
    pub fn inventory(&mut self, names: Vec<String>) -> &Inventory {
        let fresh = self.read_at.is_some_and(|at| at.elapsed() < REREAD);
        if !fresh || names != self.names {
            self.inventory = inventory_of(&names);
            self.placements.clear();
            self.names = names;
            self.read_at = Some(Instant::now());
        }
        &self.inventory
    }

    /// [`placement`], remembered until the inventory is read again.
    pub fn placement(&mut self, major_minor: &str) -> Option<Placement> {
        self.placements
            .entry(major_minor.to_string())
            .or_insert_with(|| placement(major_minor))
            .clone()
    }
}

/// The names in `/sys/block`, sorted (at most 4096).
pub fn block_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .take(4096)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn inventory_of(names: &[String]) -> Inventory {
    let root = Path::new("/sys/block");
    let (mut disks, mut arrays, mut cut) = (Vec::new(), Vec::new(), false);
    for name in names {
        let name = name.clone();
        if disks.len() + arrays.len() >= MAX_DEVICES {
            cut = true;
            break;
        }
        let dir = root.join(&name);
        if name.starts_with("md") {
            if let Some(level) = read(&dir.join("md/level")).filter(|l| l.starts_with("raid")) {
                arrays.push(RaidArray {
                    size: sectors(&dir),
                    name,
                    level,
                });
            }
            continue;
        }
        if !whole_disk(&name) {
            continue;
        }
        let path = std::fs::canonicalize(&dir).unwrap_or_default();
        let transport = transport(&path.to_string_lossy());
        let rotational = read(&dir.join("queue/rotational")).map(|r| r == "1");
        disks.push(BlockDisk {
            kind: kind(&name, transport, rotational),
            model: read(&dir.join("device/model")).filter(|m| !m.is_empty()),
            size: sectors(&dir),
            transport,
            rotational,
            name,
        });
    }
    (disks, arrays, cut)
}

/// The physical disk under block device "MAJOR:MINOR" (a partition's
/// disk; through LVM, LUKS and md to the first member), and the RAID
/// level on the way; None for a device no disk holds (btrfs, NFS, tmpfs).
fn placement(major_minor: &str) -> Option<Placement> {
    let link = Path::new("/sys/dev/block").join(major_minor);
    let mut device = std::fs::canonicalize(link).ok()?;
    let mut raid = None;
    for _ in 0..MAX_DEPTH {
        // A partition's directory sits inside its disk's.
        if device.join("partition").exists() {
            device = device.parent()?.to_path_buf();
        }
        let name = device.file_name()?.to_str()?.to_string();
        if name.starts_with("md")
            && let Some(level) = read(&device.join("md/level"))
        {
            raid.get_or_insert(level);
        }
        match first_slave(&device) {
            Some(below) => device = below,
            None => return whole_disk(&name).then_some(Placement { disk: name, raid }),
        }
    }
    None
}

fn first_slave(device: &Path) -> Option<PathBuf> {
    let mut slaves: Vec<PathBuf> = std::fs::read_dir(device.join("slaves"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    slaves.sort();
    std::fs::canonicalize(slaves.first()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_named_as_the_servers_agent_names_them() {
        assert_eq!(kind("nvme0n1", Some("nvme"), Some(false)), "NVMe");
        assert_eq!(kind("sda", Some("sata"), Some(true)), "HDD");
        assert_eq!(kind("sdb", Some("usb"), Some(false)), "SSD");
        assert_eq!(kind("vda", Some("virtio"), None), "SSD");
        assert_eq!(
            transport(
                "/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda"
            ),
            Some("sata")
        );
        assert_eq!(
            transport(
                "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"
            ),
            Some("usb")
        );
        assert_eq!(
            transport("/sys/devices/pci0000:00/0000:00:04.0/virtio2/block/vda"),
            Some("virtio")
        );
        assert_eq!(
            transport(
                "/sys/devices/platform/soc/3f202000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0"
            ),
            Some("mmc")
        );
        assert!(
            whole_disk("sda")
                && whole_disk("mmcblk0")
                && !whole_disk("loop3")
                && !whole_disk("dm-0")
        );
    }

    #[test]
    fn this_box_has_a_disk_under_its_root_or_none_to_name() {
        let mut storage = Storage::default();
        let (disks, _, cut) = storage.inventory(block_names()).clone();
        assert!(!cut);
        // Read again only when /sys/block changes: the same devices here.
        assert_eq!(
            storage.inventory(block_names()),
            &inventory_of(&block_names())
        );
        for d in &disks {
            assert!(["NVMe", "SSD", "HDD"].contains(&d.kind), "{d:?}");
        }
        let text = std::fs::read("/proc/self/mountinfo").unwrap();
        let mounts = super::super::parse::parse_mountinfo(&text);
        let root = &mounts
            .iter()
            .rfind(|m| m.path == "/")
            .unwrap()
            .device_number;
        if let Some(place) = storage.placement(root) {
            assert_eq!(Some(&place), placement(root).as_ref());
            assert!(
                disks.iter().any(|d| d.name == place.disk),
                "{place:?} in {disks:?}"
            );
        }
    }
}
