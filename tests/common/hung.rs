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
}

impl HungMount {
    /// None where FUSE mounts cannot be made (not root, no /dev/fuse):
    /// said on stderr so a skipped test is not mistaken for a passed one.
    pub fn new() -> Option<HungMount> {
        let fuse = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            Ok(file) => OwnedFd::from(file),
            Err(e) => {
                eprintln!("SKIPPED: cannot open /dev/fuse for a hung mount: {e}");
                return None;
            }
        };
        let dir = TempDir::new();
        let target = CString::new(dir.path().to_str()?).ok()?;
        let options = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fuse.as_raw_fd()
        ))
        .ok()?;
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"hung".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            eprintln!("SKIPPED: cannot mount a FUSE filesystem: {e}");
            return None;
        }
        Some(HungMount {
            dir,
            fuse: Some(fuse),
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
    }
}
