//! What outlives the `run` wrapper on the job's behalf, as two small
//! forked processes:
//!
//! - a **guard**, while the job runs: if the wrapper dies without saying
//!   goodbye (SIGKILL, `timeout -k`, the OOM killer), it ends the job's
//!   process group (SIGTERM, then SIGKILL after [`GRACE`]), so a killed
//!   wrapper never leaves its job running unwatched;
//! - a **relay**, after the job ended under `--report status`: what the
//!   job left running (`cmd &`) still writes into the pipes the wrapper
//!   read; the relay copies that on to the wrapper's stdout and stderr
//!   until the writers are done, so they are not killed by SIGPIPE when the
//!   wrapper exits (plain `run` gives them our stdout itself).
//!
//! Both are forked from a process with threads, so between fork and
//! `_exit` they make only async-signal-safe system calls (read, write,
//! poll, close, kill, nanosleep, sigprocmask) on memory they own: no
//! allocation, no locks, no Rust I/O.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// How long the job's group has between the guard's SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// The guard of one job; [`Guard::release`] when the job ended.
pub struct Guard {
    pid: libc::pid_t,
    /// Closing it without a byte written is the wrapper's death.
    line: Option<OwnedFd>,
}

impl Guard {
    /// Forks the guard of the job whose process group is `group`. None if
    /// it cannot be made (the job then runs unguarded, as before).
    pub fn watch(group: libc::pid_t) -> Option<Guard> {
        let (read, write) = super::pipe().ok()?;
        let keep = [read.as_raw_fd()];
        // SAFETY: the child makes only async-signal-safe calls (see the
        // module comment) and leaves by _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above.
            unsafe { guard(read.as_raw_fd(), group, &keep) }
        }
        (pid > 0).then_some(Guard {
            pid,
            line: Some(write),
        })
    }

    /// The job ended under the wrapper's eyes: the guard leaves without a
    /// signal (what the job started in the background stays, as a shell
    /// would leave it), and is reaped.
    pub fn release(mut self) {
        if let Some(line) = self.line.take() {
            // SAFETY: one byte from a buffer we own to a pipe we own.
            unsafe { libc::write(line.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        }
        let mut status = 0;
        // SAFETY: waits for the child we forked.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
    }
}

/// The guard's life: wait for the wrapper's word or its death.
///
/// # Safety
/// Only in a child just forked; never returns.
unsafe fn guard(line: RawFd, group: libc::pid_t, keep: &[RawFd]) -> ! {
    unsafe {
        close_all_but(keep);
        // Out of the wrapper's process group: `timeout` and a terminal's
        // ^C signal that whole group, and the guard must outlive it.
        libc::setpgid(0, 0);
        let mut byte = 0u8;
        let n = loop {
            // The read end does not block: wait for the byte or the end.
            let mut ready = libc::pollfd {
                fd: line,
                events: libc::POLLIN,
                revents: 0,
            };
            libc::poll(&mut ready, 1, -1);
            let n = libc::read(line, (&raw mut byte).cast(), 1);
            let errno = *libc::__errno_location();
            if n >= 0 || (errno != libc::EINTR && errno != libc::EAGAIN) {
                break n;
            }
        };
        if n == 0 {
            // End of file with no word: the wrapper is gone.
            libc::kill(-group, libc::SIGTERM);
            libc::kill(-group, libc::SIGCONT);
            let step = libc::timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            let steps = GRACE.as_millis() / 50;
            for _ in 0..steps {
                if libc::kill(-group, 0) != 0 {
                    libc::_exit(0);
                }
                libc::nanosleep(&step, std::ptr::null_mut());
            }
            libc::kill(-group, libc::SIGKILL);
        }
        libc::_exit(0)
    }
}

/// Hands the pipes still open (`(read end, copy to)`) to a relay process
/// that copies them on until every writer is done; the wrapper's copies
/// are closed. Nothing to do when every pipe reached end of file.
pub fn relay(pipes: Vec<(OwnedFd, Option<RawFd>)>) {
    let pipes: Vec<(OwnedFd, RawFd)> = pipes
        .into_iter()
        .filter_map(|(fd, to)| Some((fd, to?)))
        .collect();
    if pipes.is_empty() {
        return;
    }
    let mut keep = [-1; 4];
    let mut fds = [(-1, -1); 2];
    for (i, (from, to)) in pipes.iter().take(2).enumerate() {
        fds[i] = (from.as_raw_fd(), *to);
        keep[2 * i] = from.as_raw_fd();
        keep[2 * i + 1] = *to;
    }
    // SAFETY: as for the guard.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see above.
        unsafe { copy_until_done(&fds, &keep) }
    }
    // The relay has its own copies; ours close here.
    drop(pipes);
}

/// The relay's life.
///
/// # Safety
/// Only in a child just forked; never returns.
unsafe fn copy_until_done(fds: &[(RawFd, RawFd); 2], keep: &[RawFd]) -> ! {
    unsafe {
        close_all_but(keep);
        // The wrapper blocks its stop signals for its signal thread; the
        // relay takes them as any process does.
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let mut open = *fds;
        let mut buf = [0u8; 4096];
        loop {
            let mut polled = [libc::pollfd {
                fd: -1,
                events: libc::POLLIN,
                revents: 0,
            }; 2];
            for (p, (from, _)) in polled.iter_mut().zip(open.iter()) {
                p.fd = *from;
            }
            if open.iter().all(|(from, _)| *from < 0) {
                libc::_exit(0);
            }
            if libc::poll(polled.as_mut_ptr(), 2, -1) < 0 {
                continue; // EINTR
            }
            for (p, slot) in polled.iter().zip(open.iter_mut()) {
                if p.fd < 0 || p.revents == 0 {
                    continue;
                }
                let n = libc::read(slot.0, buf.as_mut_ptr().cast(), buf.len());
                let errno = *libc::__errno_location();
                if n < 0 && (errno == libc::EAGAIN || errno == libc::EINTR) {
                    continue; // the read end does not block
                }
                let written = n > 0 && write_all(slot.1, buf.get(..n as usize).unwrap_or(&[]));
                if !written {
                    // End of file, or our stdout is gone: the writer then
                    // gets what writing to it directly would have given.
                    libc::close(slot.0);
                    slot.0 = -1;
                }
            }
        }
    }
}

/// # Safety
/// Async-signal-safe: only write(2).
unsafe fn write_all(fd: RawFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: writes from a slice we hold.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            // SAFETY: errno of this thread.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return false;
        }
        data = data.get(n as usize..).unwrap_or(&[]);
    }
    true
}

/// Closes every descriptor from 3 up except `keep` (and 0-2): the forked
/// process must not hold the wrapper's connection to the server, nor the
/// guard's pipe keep a dead wrapper looking alive.
///
/// # Safety
/// Async-signal-safe: getrlimit and close only.
unsafe fn close_all_but(keep: &[RawFd]) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: writes the struct we own.
    let most = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        RawFd::try_from(limit.rlim_cur)
            .unwrap_or(RawFd::MAX)
            .min(65_536)
    } else {
        1024
    };
    for fd in 3..most {
        if !keep.contains(&fd) {
            // SAFETY: closing a descriptor number, open or not.
            unsafe { libc::close(fd) };
        }
    }
}
