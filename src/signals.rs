//! SIGTERM and SIGINT (and SIGHUP for `run`), received on a thread of
//! their own.
//!
//! The signals are blocked in every thread and taken with `sigwait` by one
//! waiter, which acts on them itself. So the agent stops within moments
//! whatever the main thread is doing (a 10 s request, a backoff sleep) and
//! no code runs inside a signal handler. Outside `run`, SIGHUP is left
//! alone: under `nohup` it stays ignored, as the user asked.

use std::{io, mem, ptr, thread};

pub type Signal = (libc::c_int, &'static str);

/// What stops the agent.
pub const STOP: &[Signal] = &[(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")];

/// What `run` passes on to its job.
pub const FORWARD: &[Signal] = &[
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGHUP, "SIGHUP"),
];

fn signal_set(signals: &[Signal]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset takes valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        for (signal, _) in signals {
            libc::sigaddset(&mut set, *signal);
        }
        set
    }
}

/// Blocks `signals` in the calling thread and every thread it starts
/// afterwards. Call before any thread exists. A child process would
/// inherit the mask: process/mod.rs spawns children with an empty one.
pub fn block(signals: &[Signal]) -> io::Result<()> {
    mask(libc::SIG_BLOCK, signals)
}

fn mask(how: libc::c_int, signals: &[Signal]) -> io::Result<()> {
    let set = signal_set(signals);
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(how, &set, ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Starts the thread that waits for `signals` (blocked with [`block`]) and
/// calls `on_signal` with each one's number and name, for as long as the
/// process lives.
pub fn on_each(
    signals: &'static [Signal],
    mut on_signal: impl FnMut(libc::c_int, &'static str) + Send + 'static,
) -> io::Result<()> {
    thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let set = signal_set(signals);
            loop {
                let mut received: libc::c_int = 0;
                // SAFETY: `set` is initialised and `received` is a valid out pointer.
                if unsafe { libc::sigwait(&set, &mut received) } != 0 {
                    continue;
                }
                let name = signals
                    .iter()
                    .find(|(s, _)| *s == received)
                    .map_or("signal", |(_, n)| n);
                on_signal(received, name);
            }
        })
        .map(drop)
}
