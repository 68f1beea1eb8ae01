//! Threads for work that may block for good: a health check's probe, a
//! disk's statvfs (a dead NFS server), a resolver call. Each job runs on a
//! thread of its own, so the beat waits for it no longer than its timeout;
//! the threads are kept between jobs rather than started for each: a
//! thread's start and end cost the kernel tens of microseconds (clone,
//! stack mapping, exit), a tenth of a full push's CPU when a push starts
//! four. docs/design.md, "Threads kept for blocking work".
//!
//! A job that never returns keeps its thread; the next job gets another.
//! A thread idle for [`IDLE_EXIT`] ends, so a long services interval or a
//! check removed by a reload leaves no thread behind for long.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// Big enough for every job: an HTTPS probe's TLS handshake is the
/// deepest. Address space only: a thread's resident stack is what its
/// jobs touched.
const STACK: usize = 256 * 1024;

/// How long a kept thread waits for a job before it ends.
const IDLE_EXIT: Duration = Duration::from_secs(300);

/// The agent's threads.
static WORKERS: Pool = Pool::new(IDLE_EXIT);

/// Runs `job` on a kept thread, or a new one; the error is the system's
/// refusal to start a thread.
pub fn spawn(job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    WORKERS.spawn(Box::new(job))
}

/// An idle thread: its number, and where to hand it a job.
struct Idle {
    id: u64,
    handoff: SyncSender<Job>,
}

struct State {
    idle: Vec<Idle>,
    started: u64,
}

struct Pool {
    state: Mutex<State>,
    idle_exit: Duration,
}

impl Pool {
    const fn new(idle_exit: Duration) -> Pool {
        Pool {
            state: Mutex::new(State {
                idle: Vec::new(),
                started: 0,
            }),
            idle_exit,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Held only to push or pop a thread, and jobs cannot panic (panic
        // = abort): a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&'static self, job: Job) -> std::io::Result<()> {
        // The most recently idle thread: its stack is still in cache, and
        // the others reach their idle exit sooner.
        let idle = self.state().idle.pop();
        let job = match idle {
            // A thread taken off the list waits for its job: it leaves only
            // while it is on the list (see `work`).
            Some(thread) => match thread.handoff.send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let id = {
            let mut state = self.state();
            state.started = state.started.wrapping_add(1);
            state.started
        };
        let (handoff, jobs) = mpsc::sync_channel::<Job>(1);
        std::thread::Builder::new()
            .name("worker".into())
            .stack_size(STACK)
            .spawn(move || {
                job();
                release_stack();
                self.work(id, &handoff, &jobs);
            })
            .map(drop)
    }

    /// A kept thread's life: back on the idle list after each job. After
    /// `idle_exit` without one it ends, unless a caller has just taken it
    /// off the list: then a job is on its way, and it waits for it.
    fn work(&self, id: u64, handoff: &SyncSender<Job>, jobs: &Receiver<Job>) {
        loop {
            self.state().idle.push(Idle {
                id,
                handoff: handoff.clone(),
            });
            let job = loop {
                match jobs.recv_timeout(self.idle_exit) {
                    Ok(job) => break job,
                    Err(RecvTimeoutError::Timeout) => {
                        let mut state = self.state();
                        if let Some(at) = state.idle.iter().position(|t| t.id == id) {
                            state.idle.swap_remove(at);
                            return;
                        }
                    }
                    // This thread holds a sender: never.
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            job();
            release_stack();
        }
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.state().idle.len()
    }
}

/// Gives the kernel back the pages of this thread's stack below the
/// current frame: an HTTPS probe touches about 40 KiB of it, which an idle
/// kept thread would otherwise hold resident (seven checks: 280 KiB). The
/// next job faults in what it uses, a few microseconds, where a new thread
/// cost tens.
fn release_stack() {
    // SAFETY: the attribute struct is ours and destroyed after use; the
    // range released lies inside this thread's stack mapping and below the
    // current frame (with a margin past any red zone), which no live data
    // uses: stacks grow down on every target we build for.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return;
        }
        let mut low: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let found = libc::pthread_attr_getstack(&attr, &mut low, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        let page = match libc::sysconf(libc::_SC_PAGESIZE) {
            n if n > 0 => n as usize,
            _ => return,
        };
        let here = std::ptr::addr_of!(page) as usize;
        let low = low as usize;
        let Some(end) = here.checked_sub(8 * 1024).map(|a| a & !(page - 1)) else {
            return;
        };
        if found && end > low && here <= low.saturating_add(size) {
            libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn pool(idle_exit: Duration) -> &'static Pool {
        Box::leak(Box::new(Pool::new(idle_exit)))
    }

    /// Runs `job` on `pool` and waits (10 s at most) for its answer.
    fn run<T: Send + 'static>(pool: &'static Pool, job: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        pool.spawn(Box::new(move || {
            let _ = tx.send(job());
        }))
        .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_thread_is_kept_for_the_next_job() {
        let pool = pool(Duration::from_secs(60));
        let first = run(pool, || std::thread::current().id());
        until("the thread goes back on the list", || pool.idle() == 1);
        let second = run(pool, || std::thread::current().id());
        assert_eq!(first, second);
        assert_ne!(first, std::thread::current().id());
    }

    /// The resident size of the mapping of this process that holds `addr`.
    fn resident_kb(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_once(' ').and_then(|(r, _)| r.split_once('-'));
            if let Some((a, b)) = range
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = a <= addr && addr < b;
            } else if inside && let Some(kb) = line.strip_prefix("Rss:") {
                return kb.trim().trim_end_matches("kB").trim().parse().unwrap();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    /// What a job pushed on its stack is not kept resident by the idle
    /// thread after it.
    #[test]
    fn an_idle_thread_gives_back_the_stack_its_job_touched() {
        let pool = pool(Duration::from_secs(60));
        let (addr, touched) = run(pool, || {
            // Written in place (a reference, not a copy): 96 KiB of stack.
            let mut deep = [1u8; 96 * 1024];
            std::hint::black_box(&mut deep);
            let addr = deep.as_ptr() as usize;
            (addr, resident_kb(addr))
        });
        assert!(touched >= 96, "{touched} kB");
        until("the thread goes back on the list", || pool.idle() == 1);
        let idle = resident_kb(addr);
        assert!(idle < 48, "{idle} kB of the stack still resident");
    }

    #[test]
    fn a_job_that_never_returns_does_not_hold_up_the_next() {
        let pool = pool(Duration::from_secs(60));
        let (_release, stuck) = mpsc::channel::<()>();
        pool.spawn(Box::new(move || {
            let _ = stuck.recv();
        }))
        .unwrap();
        assert_eq!(run(pool, || 7), 7);
    }

    #[test]
    fn an_idle_thread_ends_and_the_next_job_starts_another() {
        let pool = pool(Duration::from_millis(50));
        let first = run(pool, || std::thread::current().id());
        until("the thread goes back on the list", || pool.idle() == 1);
        until("the idle thread leaves the list", || pool.idle() == 0);
        let second = run(pool, || std::thread::current().id());
        assert_ne!(first, second);
        assert_eq!(pool.state().started, 2);
    }
}
