//! `run -- CMD`: a cron job wrapped so that its success is a heartbeat.
//!
//! The job runs with the wrapper's stdin, stdout and stderr (its output
//! passes through untouched), in a process group of its own so that a
//! forwarded signal reaches the processes it started too. The decisions
//! (what the wrapper exits with) are plain functions; `main` wires them.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
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

    fn from(status: ExitStatus) -> JobEnd {
        match (status.code(), status.signal()) {
            (Some(code), _) => JobEnd::Exited(code),
            (None, Some(signal)) => JobEnd::Signalled(signal),
            // Neither: stopped or continued, which wait() does not report.
            (None, None) => JobEnd::Exited(1),
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
pub fn run(command: &[OsString]) -> Result<JobEnd, io::Error> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command"))?;
    // A signal that comes while the job is being started waits for it
    // (see `forward`) rather than ending the wrapper and orphaning the job.
    JOB_GROUP.store(STARTING, Ordering::SeqCst);
    let mut command = Command::new(program);
    command.args(args).process_group(0);
    // The wrapper blocks the signals it forwards, and a child inherits the
    // mask: unblock them in the child, or the job could not be stopped.
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (sigemptyset, sigaddset, pthread_sigmask), with no allocation.
    unsafe {
        command.pre_exec(|| crate::signals::unblock(crate::signals::FORWARD));
    }
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            JOB_GROUP.store(0, Ordering::SeqCst);
            return Err(e);
        }
    };
    let pid = i32::try_from(child.id()).unwrap_or(0);
    JOB_GROUP.store(pid, Ordering::SeqCst);
    let status = child.wait();
    JOB_GROUP.store(0, Ordering::SeqCst);
    status.map(JobEnd::from)
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
