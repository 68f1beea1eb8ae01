//! Child processes, for `run -- CMD` and the `cmd` check: started with
//! posix_spawnp in a process group of their own, their output optionally
//! collected through a pipe (output.rs), waited for with or without a
//! deadline.
//!
//! posix_spawnp rather than `std::process::Command`, which would add
//! 29-37 KB to the binary (its environment, pipes and fallback paths) for
//! what is one call here.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::Mutex;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signalled(i32),
}

impl End {
    pub fn succeeded(self) -> bool {
        self == End::Exited(0)
    }

    /// What a shell would report for it: the exit code, or 128+N.
    pub fn status(self) -> u8 {
        match self {
            End::Exited(code) => (code & 0xff) as u8,
            End::Signalled(signal) => 128u8.saturating_add((signal & 0x7f) as u8),
        }
    }
}

/// The command as C strings, refused if an argument holds a NUL byte.
pub fn c_args(command: &[OsString]) -> io::Result<Vec<CString>> {
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
    if args.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no command"));
    }
    Ok(args)
}

/// Where the child's standard streams go; `None` keeps ours.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stdio {
    /// Reads end of file at once (a check must not wait on a terminal).
    pub null_stdin: bool,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
}

/// Variables that belong to the agent alone and are not passed to a `cmd`
/// check or a `run` job: its settings (the token among them, or a token
/// pasted into another setting by mistake), and what systemd hands the
/// agent's own process (its credentials, its notify socket, its watchdog).
pub fn kept_for_children(name: &[u8]) -> bool {
    !(name.starts_with(b"STACKSENSE_")
        || matches!(
            name,
            b"CREDENTIALS_DIRECTORY" | b"NOTIFY_SOCKET" | b"WATCHDOG_USEC" | b"WATCHDOG_PID"
        ))
}

/// The environment a child starts with: ours, less what [`kept_for_children`] refuses.
fn child_environment() -> Vec<CString> {
    use std::os::unix::ffi::OsStrExt;
    std::env::vars_os()
        .filter(|(name, _)| kept_for_children(name.as_bytes()))
        .filter_map(|(name, value)| {
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            CString::new(entry).ok()
        })
        .collect()
}

/// Starts `args` (searched in PATH) in a process group of its own, with
/// the signals the agent blocks unblocked and SIGPIPE back to its default
/// (the Rust runtime ignores it, and an ignored signal stays ignored across
/// exec).
pub fn spawn(args: &[CString], stdio: Stdio) -> io::Result<libc::pid_t> {
    let Some(program) = args.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no command"));
    };
    // Held across the spawn, so the orphan reaper never takes a child of
    // ours for an orphan in the instant before it is on the list.
    let mut ours = children();
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(ptr::null_mut());
    let env = child_environment();
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr().cast_mut()).collect();
    envp.push(ptr::null_mut());
    // SAFETY: every posix_spawn* call gets initialised structures owned
    // here; argv and envp are NULL-terminated and their strings outlive
    // the call.
    unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let rc = libc::posix_spawnattr_init(&mut attr);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let rc = libc::posix_spawn_file_actions_init(&mut actions);
        if rc != 0 {
            libc::posix_spawnattr_destroy(&mut attr);
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
        if rc == 0 && stdio.null_stdin {
            rc = libc::posix_spawn_file_actions_addopen(
                &mut actions,
                0,
                c"/dev/null".as_ptr(),
                libc::O_RDONLY,
                0,
            );
        }
        // The pipes are close-on-exec; dup2 gives the child its copies.
        for (fd, target) in [(stdio.stdout, 1), (stdio.stderr, 2)] {
            if let Some(fd) = fd
                && rc == 0
            {
                rc = libc::posix_spawn_file_actions_adddup2(&mut actions, fd, target);
            }
        }
        if rc == 0 {
            rc = libc::posix_spawnp(
                &mut pid,
                program.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            );
        }
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        if rc == 0 {
            ours.push(pid);
            Ok(pid)
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }
}

/// How a wait ends for the child, and what it does with a stopped one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Waiting {
    /// When the child exits, SIGKILL what is left of its process group
    /// (a check's `sleep 123 &` must not outlive it, one per beat).
    pub end_group: bool,
    /// Log once each time the child is stopped (SIGSTOP, SIGTSTP): a `run`
    /// job that waits for SIGCONT would otherwise hang the wrapper silently.
    pub notice_stops: bool,
}

/// What a look at the child found.
enum Seen {
    Running,
    Stopped(i32),
    Exited,
}

/// The child's state, without reaping it (WNOWAIT): its pid, and so its
/// process group's id, stay reserved until [`reap`], so the group can be
/// signalled without hitting another process that took the number.
fn look(pid: libc::pid_t, hang: bool) -> io::Result<Seen> {
    let mut options = libc::WEXITED | libc::WSTOPPED | libc::WNOWAIT;
    if !hang {
        options |= libc::WNOHANG;
    }
    loop {
        // SAFETY: waitid writes into the zeroed siginfo we own.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, options) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: si_pid and si_status are set by waitid for these events.
        let (who, status) = unsafe { (info.si_pid(), info.si_status()) };
        if who == 0 {
            return Ok(Seen::Running);
        }
        return Ok(match info.si_code {
            libc::CLD_STOPPED | libc::CLD_TRAPPED => {
                // Consume the stop report, or every look would see it again.
                let mut again: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: as above; WNOHANG, the report is there.
                unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut again,
                        libc::WSTOPPED | libc::WNOHANG,
                    )
                };
                Seen::Stopped(status)
            }
            _ => Seen::Exited,
        });
    }
}

/// Reaps an exited child.
fn reap(pid: libc::pid_t) -> io::Result<End> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid out pointer.
        match unsafe { libc::waitpid(pid, &mut status, 0) } {
            got if got == pid => {
                forget_child(pid);
                return Ok(end_of(status));
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    forget_child(pid);
                    return Err(e);
                }
            }
        }
    }
}

fn end_of(status: libc::c_int) -> End {
    if libc::WIFEXITED(status) {
        End::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        End::Signalled(libc::WTERMSIG(status))
    } else {
        End::Exited(1)
    }
}

/// A look that acts on what it sees: a stop is logged (when asked), an
/// exit ends the group (when asked) and is reaped.
fn check_on(pid: libc::pid_t, hang: bool, how: Waiting) -> io::Result<Option<End>> {
    match look(pid, hang)? {
        Seen::Running => Ok(None),
        Seen::Stopped(signal) => {
            if how.notice_stops {
                log::warn!(
                    "the job was stopped by signal {signal}; it does nothing until it gets \
                     SIGCONT (kill -CONT -{pid}; a SIGTERM to the wrapper sends both)"
                );
            }
            Ok(None)
        }
        Seen::Exited => {
            if how.end_group {
                kill_group(pid);
            }
            reap(pid).map(Some)
        }
    }
}

/// Waits for the child to end.
pub fn wait(pid: libc::pid_t, how: Waiting) -> io::Result<End> {
    loop {
        if let Some(end) = check_on(pid, true, how)? {
            return Ok(end);
        }
    }
}

/// The children we spawned and have not reaped: theirs to wait for, never
/// the orphan reaper's.
static CHILDREN: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

fn children() -> std::sync::MutexGuard<'static, Vec<libc::pid_t>> {
    // Held only briefly: a poisoned lock still has a good list.
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

fn forget_child(pid: libc::pid_t) {
    children().retain(|p| *p != pid);
}

/// Whether orphans are handed to us: as PID 1 (a container's init) or a
/// subreaper, processes whose parent died become our children, and their
/// zombies stay until we reap them.
pub fn adopts_orphans() -> bool {
    static ADOPTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ADOPTS.get_or_init(|| {
        let mut subreaper: libc::c_int = 0;
        // SAFETY: getpid has no preconditions; PR_GET_CHILD_SUBREAPER
        // writes an int into the one we own.
        unsafe {
            libc::getpid() == 1
                || (libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut subreaper) == 0
                    && subreaper != 0)
        }
    })
}

/// The most orphans reaped at one call: a fork bomb's debris is reaped
/// over several beats instead of stalling one.
const MAX_REAPED: usize = 1024;

/// Reaps every exited child that is not one of ours (see [`adopts_orphans`]),
/// without blocking; our own children's exit statuses are left to their
/// waiters. `waitid(P_ALL, WNOWAIT)` shows an exited child without reaping
/// it, so ours are left alone; it needs nothing from /proc (the
/// `children` lists need a kernel built with CONFIG_PROC_CHILDREN). An
/// exited child of ours stops the round: the orphans behind it are reaped
/// once its waiter has reaped it, at a later beat.
pub fn reap_orphans() {
    let ours = children();
    for _ in 0..MAX_REAPED {
        // SAFETY: siginfo_t is plain data; waitid fills the one we own.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: P_ALL ignores the id; info is ours to write.
        if unsafe { libc::waitid(libc::P_ALL, 0, &mut info, flags) } != 0 {
            return; // ECHILD: no children at all
        }
        // SAFETY: si_pid is valid after waitid reported a child (0 when
        // none has exited: the union's field is zeroed then).
        let pid = unsafe { info.si_pid() };
        if pid == 0 || ours.contains(&pid) {
            return;
        }
        let mut status = 0;
        // SAFETY: reaps the one exited child waitid named, not ours.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    }
}

/// SIGKILL to the child's whole process group: what it started dies with it.
pub fn kill_group(pid: libc::pid_t) {
    // SAFETY: kill() with a negative pid signals that process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
}

/// The process groups of `cmd` checks while they run, so that an agent
/// told to stop takes them along instead of leaving them to finish alone.
static CHECK_GROUPS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

fn check_groups() -> std::sync::MutexGuard<'static, Vec<libc::pid_t>> {
    // Held only to push or remove a pid: a poisoned lock still has a good list.
    CHECK_GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn track(pid: libc::pid_t) {
    check_groups().push(pid);
}

pub fn untrack(pid: libc::pid_t) {
    check_groups().retain(|p| *p != pid);
}

/// Kills every tracked check's process group (the agent is stopping).
pub fn kill_checks() {
    for pid in check_groups().iter() {
        kill_group(*pid);
    }
}

pub mod keeper;
mod output;

pub use output::{Collected, Tail, collect, pipe};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_get_no_setting_or_systemd_handle_of_the_agent() {
        for name in [
            "STACKSENSE_TOKEN",
            "STACKSENSE_URL",
            "CREDENTIALS_DIRECTORY",
        ] {
            assert!(!kept_for_children(name.as_bytes()), "{name}");
        }
        for name in ["PATH", "HOME", "LANG", "STACKSENSE", "MY_STACKSENSE_TOKEN"] {
            assert!(kept_for_children(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn exit_statuses_read_as_a_shell_shows_them() {
        assert_eq!(End::Exited(3).status(), 3);
        assert_eq!(End::Signalled(15).status(), 143);
        assert_eq!(End::Exited(256 + 4).status(), 4);
        assert!(End::Exited(0).succeeded());
    }
}
