//! SIGTERM and SIGINT, received on a thread of their own.
//!
//! Both signals are blocked in every thread and taken with `sigwait` by one
//! waiter, which runs the shutdown itself. So the agent stops within
//! moments whatever the main thread is doing (a 10 s request, a backoff
//! sleep) and no code runs inside a signal handler. SIGHUP is left alone:
//! under `nohup` it stays ignored, as the user asked.

use std::{io, mem, ptr, thread};

const SIGNALS: [(libc::c_int, &str); 2] = [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset takes valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        for (signal, _) in SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it
/// starts afterwards. Call before any thread exists.
pub fn block() -> io::Result<()> {
    let set = signal_set();
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Starts the thread that waits for SIGTERM/SIGINT and calls `on_signal`
/// with the signal's name.
pub fn on_termination(on_signal: impl FnOnce(&'static str) + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let set = signal_set();
            let mut received: libc::c_int = 0;
            loop {
                // SAFETY: `set` is initialised and `received` is a valid out pointer.
                let rc = unsafe { libc::sigwait(&set, &mut received) };
                if rc == 0 {
                    break;
                }
            }
            let name = SIGNALS
                .iter()
                .find(|(s, _)| *s == received)
                .map_or("signal", |(_, n)| n);
            on_signal(name);
        })
        .map(drop)
}
