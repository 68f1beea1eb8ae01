//! A child's output: read from non-blocking pipes while it runs, kept as
//! the last lines of both streams, and passed on when asked.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{End, Waiting, check_on, kill_group, wait};

/// A pipe whose ends are closed on exec: (read, write). Our read end does
/// not block (see `read_ready`); the child's write end is as usual.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl on the descriptor just opened; O_NONBLOCK is a status
    // flag of the read end's own open file description.
    unsafe {
        let flags = libc::fcntl(fds[0], libc::F_GETFL);
        libc::fcntl(fds[0], libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The last `cap` bytes of a child's output, whole lines at a time: a
/// line is added when it ends, so a stderr line written while stdout is
/// mid-line stands on its own instead of inside the other. Lines of the
/// two streams keep the order in which they ended.
#[derive(Debug)]
pub struct Tail {
    cap: usize,
    bytes: Vec<u8>,
    /// Each stream's unfinished line, by the descriptor it is read from.
    partial: Vec<(RawFd, Vec<u8>)>,
}

impl Tail {
    pub fn new(cap: usize) -> Tail {
        Tail {
            cap,
            bytes: Vec::new(),
            partial: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(self.cap)..];
        self.bytes.extend_from_slice(data);
        // Trimmed in batches so a stream of small writes is not a memmove each.
        if self.bytes.len() >= 2 * self.cap {
            self.bytes.drain(..self.bytes.len() - self.cap);
        }
    }

    /// What the stream read from `from` wrote: its finished lines go in
    /// now, the rest when its line ends (or is longer than the tail).
    pub fn push_from(&mut self, from: RawFd, data: &[u8]) {
        let i = match self.partial.iter().position(|(fd, _)| *fd == from) {
            Some(i) => i,
            None => {
                self.partial.push((from, Vec::new()));
                self.partial.len() - 1
            }
        };
        let mut line = std::mem::take(&mut self.partial[i].1);
        line.extend_from_slice(data);
        if let Some(end) = line.iter().rposition(|&b| b == b'\n') {
            self.push(&line[..=end]);
            line.drain(..=end);
        }
        if line.len() > self.cap {
            self.push(&line);
            line.clear();
        }
        self.partial[i].1 = line;
    }

    /// The stream read from `from` ended: its unfinished line goes in.
    pub fn end_of(&mut self, from: RawFd) {
        if let Some(i) = self.partial.iter().position(|(fd, _)| *fd == from) {
            let (_, line) = self.partial.remove(i);
            self.push(&line);
        }
    }

    /// The kept bytes as text, unfinished lines last: invalid UTF-8 (or a
    /// character cut at the start) becomes U+FFFD.
    pub fn text(&self) -> String {
        let mut all = self.bytes.clone();
        for (_, line) in &self.partial {
            all.extend_from_slice(line);
        }
        let kept = &all[all.len().saturating_sub(self.cap)..];
        String::from_utf8_lossy(kept).into_owned()
    }
}

/// How [`collect`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collected {
    Ended(End),
    /// The deadline came first; the group was killed.
    Killed,
}

/// Reads the child's output pipes into `tail` (and copies each to its
/// `copy_to` descriptor, when given) until it ends, or kills its group at
/// `deadline`. A grandchild that keeps a pipe open does not hold us once
/// the child itself has exited.
pub fn collect(
    pid: libc::pid_t,
    pipes: &mut Vec<(OwnedFd, Option<RawFd>)>,
    tail: &mut Tail,
    deadline: Option<Instant>,
    how: Waiting,
) -> io::Result<Collected> {
    let mut buf = [0u8; 4096];
    // The child's end wakes the poll too (a process it started may hold
    // the pipes open long after); where a pidfd cannot be had (before
    // Linux 5.3), a short poll notices it.
    let ended = pid_fd(pid);
    loop {
        if pipes.is_empty() && deadline.is_none() {
            return wait(pid, how).map(Collected::Ended);
        }
        let wait_ms = match (deadline, &ended) {
            (Some(at), _) => at
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20)),
            // Only a stop (which a pidfd does not signal) waits this long.
            (None, Some(_)) => Duration::from_secs(1),
            (None, None) => Duration::from_millis(50),
        }
        .as_millis() as libc::c_int;
        let waker = ended.as_ref().map(AsRawFd::as_raw_fd);
        read_ready(pipes, tail, &mut buf, wait_ms, waker);
        if let Some(end) = check_on(pid, false, how)? {
            drain(pipes, tail, &mut buf);
            return Ok(Collected::Ended(end));
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            kill_group(pid);
            wait(pid, how)?;
            return Ok(Collected::Killed);
        }
    }
}

/// A descriptor that becomes readable when `pid` exits.
fn pid_fd(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: just opened (close-on-exec by the kernel), owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The most time spent reading what the child left in its pipes after it
/// exited. What it wrote before exiting is all there (up to a full pipe,
/// 64 KiB and more); a process it started that keeps writing must not
/// keep us reading.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// After the child exited: everything already in the pipes, until they are
/// empty or at end of file (or [`DRAIN_LIMIT`] passed).
fn drain(pipes: &mut Vec<(OwnedFd, Option<RawFd>)>, tail: &mut Tail, buf: &mut [u8]) {
    let started = Instant::now();
    while read_ready(pipes, tail, buf, 0, None) && started.elapsed() < DRAIN_LIMIT {}
    for (fd, _) in pipes.iter() {
        tail.end_of(fd.as_raw_fd());
    }
}

/// How much of one pipe a round reads before it looks at the other: a job
/// that writes without pause cannot starve its other stream.
const MAX_READ_PER_ROUND: usize = 256 * 1024;

fn would_block() -> bool {
    matches!(
        io::Error::last_os_error().kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// One poll over the pipes (up to `wait_ms`, or until `waker` is
/// readable), reading what each has; a pipe at end of file is dropped from
/// the list. False when nothing was ready.
fn read_ready(
    pipes: &mut Vec<(OwnedFd, Option<RawFd>)>,
    tail: &mut Tail,
    buf: &mut [u8],
    wait_ms: libc::c_int,
    waker: Option<RawFd>,
) -> bool {
    if pipes.is_empty() && waker.is_none() {
        if wait_ms > 0 {
            std::thread::sleep(Duration::from_millis(wait_ms as u64));
        }
        return false;
    }
    let mut fds: Vec<libc::pollfd> = pipes
        .iter()
        .map(|(fd, _)| fd.as_raw_fd())
        .chain(waker)
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: fds is a valid array of pollfd of the length given.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
    if n <= 0 {
        return false;
    }
    let mut closed = Vec::new();
    // Each ready pipe is read until it is empty, stdout's before stderr's:
    // a program that writes a line to stdout and then one to stderr gets
    // them in that order, and a full pipe empties in one round.
    for (i, pfd) in fds.iter().enumerate() {
        let Some((fd, copy_to)) = pipes.get(i).filter(|_| pfd.revents != 0) else {
            continue; // not ready, or the waker
        };
        let mut taken = 0;
        while taken < MAX_READ_PER_ROUND {
            // SAFETY: reads into the buffer we own, at most its length.
            let got = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if got == 0 || (got < 0 && !would_block()) {
                tail.end_of(fd.as_raw_fd());
                closed.push(i);
                break;
            }
            let Ok(got) = usize::try_from(got) else {
                break; // empty for now
            };
            let data = &buf[..got];
            tail.push_from(fd.as_raw_fd(), data);
            if let Some(out) = copy_to {
                write_all(*out, data);
            }
            taken += got;
        }
    }
    for i in closed.into_iter().rev() {
        pipes.remove(i);
    }
    true
}

/// Passes the child's output on; a closed stdout loses it without
/// stopping the child (it would not have stopped it without us either,
/// SIGPIPE aside).
fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writes from the slice we hold, at most its length.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n > 0 {
            data = &data[n as usize..];
        } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        } else {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_lines_of_two_streams_whole() {
        let mut t = Tail::new(64);
        t.push_from(1, b"line 466\nlin");
        t.push_from(2, b"oops\n");
        t.push_from(1, b"e 467\n");
        assert_eq!(t.text(), "line 466\noops\nline 467\n");
        // An unfinished line shows, last, and goes in whole when its stream ends.
        t.push_from(2, b"no newline");
        assert!(t.text().ends_with("line 467\nno newline"));
        t.end_of(2);
        t.push_from(1, b"more\n");
        assert!(t.text().ends_with("no newlinemore\n"), "{}", t.text());
        // A line longer than the tail is not held back for ever.
        let mut t = Tail::new(4);
        t.push_from(1, b"abcdefgh");
        assert_eq!(t.text(), "efgh");
    }

    #[test]
    fn a_tail_keeps_the_last_bytes() {
        let mut t = Tail::new(4);
        t.push(b"ab");
        assert_eq!(t.text(), "ab");
        t.push(b"cdef");
        assert_eq!(t.text(), "cdef");
        for _ in 0..10 {
            t.push(b"xy");
        }
        assert_eq!(t.text(), "xyxy");
        t.push(b"0123456789");
        assert_eq!(t.text(), "6789");
        assert!(t.bytes.len() < 8);
    }
}
