//! A mount whose every filesystem call hangs, as on a dead NFS server or a
//! FUSE daemon that stopped reading: a FUSE mount whose /dev/fuse end
//! nobody ever reads. Dropping it aborts the connection (the stuck calls
//! then fail with ENOTCONN) and detaches the mount.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use super::TempDir;

pub struct HungMount {
    dir: TempDir,
    fuse: Option<OwnedFd>,
    /// The loop device a `fuseblk` mount sits on, detached on drop.
    device: Option<OwnedFd>,
}

/// The loop ioctls (linux/loop.h).
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;

impl HungMount {
    /// None where FUSE mounts cannot be made (not root, no /dev/fuse):
    /// said on stderr so a skipped test is not mistaken for a passed one.
    pub fn new() -> Option<HungMount> {
        HungMount::mount(None, TempDir::new())
    }

    /// A hung `fuseblk` mount on a loop device: a filesystem on a block
    /// device, as an NTFS disk under ntfs-3g is, so psutil (and the
    /// metrics push) count it as one of the box's disks. None, said on
    /// stderr, where loop devices cannot be had.
    pub fn on_a_block_device() -> Option<HungMount> {
        let backing = TempDir::new();
        let file = backing.write("disk.img", "");
        let image = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .ok()?;
        image.set_len(1 << 20).ok()?;
        let control = match std::fs::File::open("/dev/loop-control") {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIPPED: no loop devices for a hung block-device mount: {e}");
                return None;
            }
        };
        // SAFETY: ioctls on descriptors we own, with integer arguments.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        let device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/loop{n}"));
        let device = match device {
            Ok(d) if n >= 0 => OwnedFd::from(d),
            _ => {
                eprintln!("SKIPPED: no free loop device for a hung block-device mount");
                return None;
            }
        };
        if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_SET_FD, image.as_raw_fd()) } != 0 {
            eprintln!(
                "SKIPPED: cannot attach a loop device: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        drop(backing);
        // Not under /tmp, which the server's agent never counts as a disk.
        let Some(dir) = TempDir::under(std::path::Path::new("/mnt")) else {
            eprintln!("SKIPPED: cannot make a mount point under /mnt");
            unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CLR_FD, 0) };
            return None;
        };
        HungMount::mount(Some((device, n)), dir)
    }

    fn mount(device: Option<(OwnedFd, i32)>, dir: TempDir) -> Option<HungMount> {
        let detach = |device: &Option<(OwnedFd, i32)>| {
            if let Some((fd, _)) = device {
                // SAFETY: an ioctl on a descriptor we own.
                unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_CLR_FD, 0) };
            }
        };
        let fuse = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            Ok(file) => OwnedFd::from(file),
            Err(e) => {
                eprintln!("SKIPPED: cannot open /dev/fuse for a hung mount: {e}");
                detach(&device);
                return None;
            }
        };
        let target = CString::new(dir.path().to_str()?).ok()?;
        let (source, kind, extra) = match &device {
            Some((_, n)) => (format!("/dev/loop{n}"), c"fuseblk", ",blksize=4096"),
            None => ("hung".to_string(), c"fuse", ""),
        };
        let source = CString::new(source).ok()?;
        let options = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0{extra}",
            fuse.as_raw_fd()
        ))
        .ok()?;
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                kind.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            eprintln!("SKIPPED: cannot mount a FUSE filesystem ({kind:?}): {e}");
            detach(&device);
            return None;
        }
        Some(HungMount {
            dir,
            fuse: Some(fuse),
            device: device.map(|(fd, _)| fd),
        })
    }

    pub fn path(&self) -> &str {
        self.dir.path().to_str().unwrap_or("/nonexistent")
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        drop(self.fuse.take());
        if let Ok(target) = CString::new(self.path()) {
            // SAFETY: a NUL-terminated path; MNT_DETACH never blocks.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        if let Some(device) = self.device.take() {
            // SAFETY: an ioctl on a descriptor we own.
            unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CLR_FD, 0) };
        }
    }
}
