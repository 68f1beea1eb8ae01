//! What a stop signal does: the service stops cleanly, `--once` and
//! `--check` report an unfinished run, and `run` passes the signal to its
//! job (outside the job it ends as a shell would report it).

use std::io;
use std::sync::Arc;

use crate::notify::Notifier;
use crate::{process, signals, wrap};

/// What a stop signal makes the process exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    Exit(i32),
    /// 128+N for signal N.
    AsAShellWould,
}

/// SIGTERM/SIGINT end the process from the signal thread, whatever the
/// main thread is doing, unless a `run` job is running: then they (and
/// SIGHUP) are passed to the job, and the wrapper ends with it. Nothing on
/// this path can block: the log line and the STOPPING=1 datagram are
/// non-blocking writes, and `_exit` runs no exit handlers that could wait
/// on a lock the main thread holds.
pub fn on_signal(
    handled: &'static [signals::Signal],
    notifier: Arc<Notifier>,
    on_stop: OnStop,
) -> io::Result<()> {
    signals::on_each(handled, move |signal, name| {
        if wrap::forward(signal) {
            log::debug!("{name} received, passed to the job");
            return;
        }
        log::info!("{name} received, stopping");
        notifier.stopping();
        process::kill_checks();
        let code = match on_stop {
            OnStop::Exit(code) => code,
            OnStop::AsAShellWould => 128 + signal,
        };
        // SAFETY: ends the process at once; nothing after it runs.
        unsafe { libc::_exit(code) }
    })
}
