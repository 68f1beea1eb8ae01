//! `run -- CMD`: a cron job wrapped so that its success is a heartbeat.
//!
//! The job runs with the wrapper's stdin, stdout and stderr (its output
//! passes through untouched), in a process group of its own so that a
//! forwarded signal reaches the processes it started too. The decisions
//! (what the wrapper exits with) are plain functions; `main` wires them.

use std::ffi::{CString, OsString};
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};

/// The exit status when the job succeeded but its heartbeat could not be
/// delivered: sysexits' EX_TEMPFAIL, "try again later".
pub const BEAT_UNDELIVERED: u8 = 75;

/// How the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    Exited(i32),
    Signalled(i32),
}

impl JobEnd {
    pub fn succeeded(self) -> bool {
        self == JobEnd::Exited(0)
    }

    /// What a shell would report for it: the exit code, or 128+N.
    pub fn status(self) -> u8 {
        match self {
            JobEnd::Exited(code) => (code & 0xff) as u8,
            JobEnd::Signalled(signal) => 128u8.saturating_add((signal & 0x7f) as u8),
        }
    }
}

/// The job's end in words, for the one line that says no beat was sent.
pub fn describe(job: JobEnd) -> String {
    match job {
        JobEnd::Exited(code) => format!("the job failed with exit status {code}"),
        JobEnd::Signalled(signal) => format!(
            "the job was ended by signal {signal} (exit status {})",
            job.status()
        ),
    }
}

/// What the wrapper exits with: the job's own status, except that a
/// successful job whose beat was not delivered gets [`BEAT_UNDELIVERED`]
/// (`delivered` is None when no beat was due).
pub fn exit_status(job: JobEnd, delivered: Option<bool>) -> u8 {
    match (job.succeeded(), delivered) {
        (true, Some(false)) => BEAT_UNDELIVERED,
        _ => job.status(),
    }
}

/// Why the job could not be started, with the shell's status for it.
pub fn spawn_failure(command: &OsString, e: &io::Error) -> (String, u8) {
    let shown = crate::text::untrusted(&command.to_string_lossy());
    let status = if e.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    let why = crate::text::describe_io(e);
    (format!("cannot run {shown}: {why}"), status)
}

/// The job's process group while it runs (0 before and after, STARTING
/// while it is being spawned), for the signal thread to forward to.
static JOB_GROUP: AtomicI32 = AtomicI32::new(0);
const STARTING: i32 = -1;

/// Runs the job to its end. Signals that arrive meanwhile are forwarded by
/// [`forward`] (called from the signal thread).
///
/// With posix_spawnp rather than `std::process::Command`, which would add
/// 29-37 KB to the binary (its environment, pipes and fallback paths) for
/// what is one call here.
pub fn run(command: &[OsString]) -> Result<JobEnd, io::Error> {
    use std::os::unix::ffi::OsStrExt;
    let args = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<CString>, _>>()
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument contains a NUL byte",
            )
        })?;
    let Some(program) = args.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no command"));
    };
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(ptr::null_mut());

    // A signal that comes while the job is being started waits for it
    // (see `forward`) rather than ending the wrapper and orphaning the job.
    JOB_GROUP.store(STARTING, Ordering::SeqCst);
    let spawned = spawn(program, &argv);
    let pid = match spawned {
        Ok(pid) => pid,
        Err(e) => {
            JOB_GROUP.store(0, Ordering::SeqCst);
            return Err(e);
        }
    };
    JOB_GROUP.store(pid, Ordering::SeqCst);
    let status = wait(pid);
    JOB_GROUP.store(0, Ordering::SeqCst);
    status
}

unsafe extern "C" {
    static environ: *const *mut libc::c_char;
}

/// The job in a process group of its own, with the signals the wrapper
/// blocks unblocked and SIGPIPE back to its default (the Rust runtime
/// ignores it in the wrapper, and an ignored signal stays ignored across
/// exec).
fn spawn(program: &CString, argv: &[*mut libc::c_char]) -> io::Result<libc::pid_t> {
    // SAFETY: every posix_spawn* call gets initialised structures owned
    // here; argv is NULL-terminated and its strings outlive the call;
    // environ is the process's environment, which nothing here changes.
    unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let rc = libc::posix_spawnattr_init(&mut attr);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        libc::sigaddset(&mut defaults, libc::SIGPIPE);
        let flags = libc::POSIX_SPAWN_SETPGROUP
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        let mut pid: libc::pid_t = 0;
        let mut rc = libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
        if rc == 0 {
            rc = libc::posix_spawnattr_setpgroup(&mut attr, 0);
        }
        if rc == 0 {
            rc = libc::posix_spawnattr_setsigmask(&mut attr, &none);
        }
        if rc == 0 {
            rc = libc::posix_spawnattr_setsigdefault(&mut attr, &defaults);
        }
        if rc == 0 {
            rc = libc::posix_spawnp(
                &mut pid,
                program.as_ptr(),
                ptr::null(),
                &attr,
                argv.as_ptr(),
                environ,
            );
        }
        libc::posix_spawnattr_destroy(&mut attr);
        if rc == 0 {
            Ok(pid)
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }
}

fn wait(pid: libc::pid_t) -> io::Result<JobEnd> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid out pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(if libc::WIFEXITED(status) {
        JobEnd::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        JobEnd::Signalled(libc::WTERMSIG(status))
    } else {
        JobEnd::Exited(1)
    })
}

/// Passes `signal` to the running job's whole process group; false when no
/// job is running (the caller then stops the wrapper itself).
pub fn forward(signal: libc::c_int) -> bool {
    let group = loop {
        match JOB_GROUP.load(Ordering::SeqCst) {
            STARTING => std::thread::sleep(std::time::Duration::from_millis(1)),
            group => break group,
        }
    };
    if group <= 0 {
        return false;
    }
    // SAFETY: kill() with a negative pid signals that process group; no memory is touched.
    unsafe { libc::kill(-group, signal) };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_exits_as_a_shell_would_report_the_job() {
        assert_eq!(exit_status(JobEnd::Exited(0), Some(true)), 0);
        assert_eq!(exit_status(JobEnd::Exited(3), None), 3);
        assert_eq!(exit_status(JobEnd::Signalled(15), None), 143);
        assert_eq!(exit_status(JobEnd::Signalled(9), None), 137);
        assert_eq!(exit_status(JobEnd::Exited(256 + 4), None), 4);
    }

    #[test]
    fn a_success_whose_beat_was_lost_has_a_status_of_its_own() {
        assert_eq!(
            exit_status(JobEnd::Exited(0), Some(false)),
            BEAT_UNDELIVERED
        );
        // A failed job's status is never replaced.
        assert_eq!(exit_status(JobEnd::Exited(1), Some(false)), 1);
    }

    #[test]
    fn a_command_that_cannot_run_gets_the_shells_status() {
        let missing = io::Error::from(io::ErrorKind::NotFound);
        let (message, status) = spawn_failure(&OsString::from("backup.sh"), &missing);
        assert_eq!(status, 127);
        assert!(message.starts_with("cannot run backup.sh: "), "{message}");
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(spawn_failure(&OsString::from("x"), &denied).1, 126);
    }
}
