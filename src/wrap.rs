//! `run -- CMD`: a cron job wrapped so that its success is a heartbeat.
//!
//! The job runs with the wrapper's stdin, stdout and stderr (its output
//! passes through untouched; with `--report status` through pipes that
//! copy it on and keep its tail), in a process group of its own so that a
//! forwarded signal reaches the processes it started too. The decisions
//! (what the wrapper exits with) are plain functions; `main` wires them.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::process::{self, Tail, keeper};

/// The exit status when the job succeeded but its heartbeat could not be
/// delivered: sysexits' EX_TEMPFAIL, "try again later".
pub const BEAT_UNDELIVERED: u8 = 75;

use crate::process::End;

/// The job's end in words, for the one line that says no beat was sent.
pub fn describe(job: End) -> String {
    match job {
        End::Exited(code) => format!("the job failed with exit status {code}"),
        End::Signalled(signal) => format!(
            "the job was ended by signal {signal} (exit status {})",
            job.status()
        ),
    }
}

/// What the wrapper exits with: the job's own status, except that a
/// successful job whose beat was not delivered gets [`BEAT_UNDELIVERED`]
/// (`delivered` is None when no beat was due).
pub fn exit_status(job: End, delivered: Option<bool>) -> u8 {
    match (job.succeeded(), delivered) {
        (true, Some(false)) => BEAT_UNDELIVERED,
        _ => job.status(),
    }
}

/// The job's end as `--report status` sends it.
pub fn job_report(
    job: End,
    took: std::time::Duration,
    tail: &Tail,
) -> crate::push::report::JobReport {
    let (exit_code, signal) = match job {
        End::Exited(code) => (Some(code), None),
        End::Signalled(signal) => (None, Some(signal)),
    };
    crate::push::report::JobReport {
        exit_code,
        signal,
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        tail: tail.text(),
    }
}

/// The most of a job's output `--report status` sends: enough for the
/// lines that say why it failed, small on a metered link.
const JOB_TAIL_BYTES: usize = 4 * 1024;

/// `run -- CMD`: the job, then one beat (by `beat`, given the job's end
/// when `reporting`) if it succeeded or its end is reported. Returns the
/// wrapper's exit status (see [`exit_status`]).
pub fn run_and_beat(
    command: &[OsString],
    reporting: bool,
    beat: impl FnOnce(Option<crate::push::report::JobReport>) -> bool,
) -> u8 {
    let mut tail = reporting.then(|| Tail::new(JOB_TAIL_BYTES));
    let started = std::time::Instant::now();
    let job = match run(command, tail.as_mut()) {
        Ok(job) => job,
        Err(e) => {
            let program = command.first().cloned().unwrap_or_default();
            let (message, status) = spawn_failure(&program, &e);
            log::error!("{message}");
            return status;
        }
    };
    if !job.succeeded() {
        let sent = if reporting {
            "reported with its heartbeat"
        } else {
            "no heartbeat sent"
        };
        log::warn!("{}; {sent}", describe(job));
    }
    let report = tail.map(|tail| job_report(job, started.elapsed(), &tail));
    let delivered = (job.succeeded() || reporting).then(|| {
        let delivered = beat(report);
        if !delivered && job.succeeded() {
            log::error!(
                "the job succeeded but its heartbeat was not delivered; exit status {BEAT_UNDELIVERED}"
            );
        }
        delivered
    });
    exit_status(job, delivered)
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
/// [`forward`] (called from the signal thread). With `tail`, the job's
/// stdout and stderr go through pipes: copied to ours as they come, and the
/// last bytes kept for the report (the job then sees pipes, not a terminal).
pub fn run(command: &[OsString], tail: Option<&mut Tail>) -> Result<End, io::Error> {
    let args = process::c_args(command)?;
    let mut pipes = Vec::new();
    let mut stdio = process::Stdio::default();
    let mut write_ends = Vec::new();
    if tail.is_some() {
        for (target, ours) in [(&mut stdio.stdout, 1), (&mut stdio.stderr, 2)] {
            let (read, write) = process::pipe()?;
            *target = Some(write.as_raw_fd());
            pipes.push((read, Some(ours)));
            write_ends.push(write);
        }
    }
    // A signal that comes while the job is being started waits for it
    // (see `forward`) rather than ending the wrapper and orphaning the job.
    JOB_GROUP.store(STARTING, Ordering::SeqCst);
    let spawned = process::spawn(&args, stdio);
    // Our copies of the write ends must go, or the pipes never reach EOF.
    drop(write_ends);
    let pid = match spawned {
        Ok(pid) => pid,
        Err(e) => {
            JOB_GROUP.store(0, Ordering::SeqCst);
            return Err(e);
        }
    };
    JOB_GROUP.store(pid, Ordering::SeqCst);
    // Ends the job's group if the wrapper is killed before the job ends.
    let guard = keeper::Guard::watch(pid);
    let terminal = Terminal::hand_to(pid);
    // The job's own background processes are its business (a daemon it
    // starts may be the point); a stopped job is said, not waited on silently.
    let how = process::Waiting {
        end_group: false,
        notice_stops: true,
    };
    let status = match tail {
        Some(tail) => process::collect(pid, &mut pipes, tail, None, how).map(|c| match c {
            process::Collected::Ended(end) => end,
            process::Collected::Killed => End::Signalled(libc::SIGKILL),
        }),
        None => process::wait(pid, how),
    };
    drop(terminal);
    if let Some(guard) = guard {
        guard.release();
    }
    JOB_GROUP.store(0, Ordering::SeqCst);
    // What the job left running writes on after we exit.
    keeper::relay(pipes);
    status
}

/// The controlling terminal, lent to the job's process group while it
/// runs: the job has a group of its own (so signals reach what it starts),
/// and a background group that reads the terminal is stopped by SIGTTIN,
/// which would hang the wrapper. Given back when dropped.
struct Terminal {
    ours: libc::pid_t,
}

impl Terminal {
    /// Lends the terminal on stdin to `job`'s group, if we hold it (a
    /// wrapper started in the background, or from cron, has none to lend).
    fn hand_to(job: libc::pid_t) -> Option<Terminal> {
        // SAFETY: plain calls on fd 0 and our own ids; no memory is shared.
        unsafe {
            let ours = libc::getpgrp();
            if libc::isatty(0) != 1 || libc::tcgetpgrp(0) != ours {
                return None;
            }
            if libc::tcsetpgrp(0, job) != 0 {
                return None;
            }
            // It may have tried to read in the instant before, and stopped.
            libc::kill(-job, libc::SIGCONT);
            Some(Terminal { ours })
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // SAFETY: SIGTTOU is blocked in this thread around the call, so
        // taking the terminal back from the background does not stop us.
        unsafe {
            let mut ttou: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut ttou);
            libc::sigaddset(&mut ttou, libc::SIGTTOU);
            let mut before: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &ttou, &mut before);
            libc::tcsetpgrp(0, self.ours);
            libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
        }
    }
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
    // A stopped job cannot act on a terminating signal until it runs
    // again: follow it with SIGCONT, as shells and systemd do.
    if matches!(signal, libc::SIGTERM | libc::SIGINT | libc::SIGHUP) {
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGCONT) };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_exits_as_a_shell_would_report_the_job() {
        assert_eq!(exit_status(End::Exited(0), Some(true)), 0);
        assert_eq!(exit_status(End::Exited(3), None), 3);
        assert_eq!(exit_status(End::Signalled(15), None), 143);
        assert_eq!(exit_status(End::Signalled(9), None), 137);
        assert_eq!(exit_status(End::Exited(256 + 4), None), 4);
    }

    #[test]
    fn a_success_whose_beat_was_lost_has_a_status_of_its_own() {
        assert_eq!(exit_status(End::Exited(0), Some(false)), BEAT_UNDELIVERED);
        // A failed job's status is never replaced.
        assert_eq!(exit_status(End::Exited(1), Some(false)), 1);
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
