//! The agent binary as a child process. Every wait has a deadline, and every
//! child is owned by a guard that kills its whole process group on drop, so a
//! failed assert or a hung agent fails the test instead of stalling the run
//! or leaving an agent behind.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::TempDir;

/// The binary under test; cargo names it for integration tests only, and
/// examples pass theirs to [`AgentCmd::with_binary`].
pub const BIN: Option<&str> = option_env!("CARGO_BIN_EXE_stacksense-heartbeat");

/// How long [`AgentCmd::finish`] lets a run take. Every run that uses it
/// (--check, --once, start-up errors) finishes in well under a second here;
/// the slack is for a loaded CI machine.
pub const OUTPUT_DEADLINE: Duration = Duration::from_secs(30);

/// The agent binary with a clean environment: HOME is an empty temp dir
/// (no user config), no proxy variables, nothing of the developer's.
pub struct AgentCmd {
    cmd: Command,
    pub home: TempDir,
    echo: bool,
}

impl AgentCmd {
    pub fn new() -> AgentCmd {
        AgentCmd::with_binary(Path::new(
            BIN.expect("only integration tests know the binary"),
        ))
    }

    /// The agent beating to `url` as server 7: the launch most tests share.
    pub fn posting_to(url: &str) -> AgentCmd {
        AgentCmd::new().args(["--server-id", "7", "--api-url", url])
    }

    pub fn with_binary(binary: &Path) -> AgentCmd {
        AgentCmd::via(&[], binary)
    }

    /// The binary run through `runner` (e.g. `qemu-arm-static -cpu arm1176`), if any.
    pub fn via(runner: &[String], binary: &Path) -> AgentCmd {
        // The agent reads it when HOME holds no config: every test would
        // run with that machine's settings.
        assert!(
            !Path::new("/etc/stacksense/heartbeat.conf").exists(),
            "the tests need a machine without /etc/stacksense/heartbeat.conf"
        );
        let home = TempDir::new();
        let mut cmd = match runner.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        // A runtime directory of the test's own: one-beat runs keep their
        // metrics sample there, never in the machine's /run.
        // And no Docker socket but one a test makes: the machine's own
        // (a CI runner's dockerd) would add a push to every test's count.
        cmd.env_clear()
            .env("HOME", home.path())
            .env("RUNTIME_DIRECTORY", home.path().join("run"))
            .env("STACKSENSE_DOCKER_HOST", home.path().join("docker.sock"));
        AgentCmd {
            cmd,
            home,
            echo: false,
        }
    }

    /// Also copy the agent's log lines to our stderr as they come.
    pub fn echo_log(mut self) -> AgentCmd {
        self.echo = true;
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> AgentCmd {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> AgentCmd {
        self.cmd.env(key, value);
        self
    }

    pub fn arg_path(mut self, path: &Path) -> AgentCmd {
        self.cmd.arg(path);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> AgentCmd {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs the agent as another user (the test must be root).
    pub fn run_as(mut self, uid: u32, gid: u32) -> AgentCmd {
        self.cmd.uid(uid).gid(gid);
        self
    }

    /// Starts the agent with its stderr on a pipe that nobody ever reads.
    pub fn spawn_with_unread_stderr(mut self) -> Running {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = ChildGuard::spawn(&mut self.cmd);
        Running {
            child,
            lines: Arc::new(Mutex::new(Vec::new())),
            _home: self.home,
        }
    }

    /// Runs to completion (for --check, --once and start-up errors) within
    /// [`OUTPUT_DEADLINE`].
    pub fn finish(self) -> Output {
        self.output_within(OUTPUT_DEADLINE)
    }

    /// Runs to completion; past `deadline` the agent's process group is
    /// killed and the test fails with what the agent printed.
    pub fn output_within(mut self, deadline: Duration) -> Output {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut self.cmd);
        let stdout = collect(child.0.stdout.take().expect("piped stdout"));
        let stderr = collect(child.0.stderr.take().expect("piped stderr"));
        let status = child.wait_within(deadline);
        let text =
            |buf: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        let Some(status) = status else {
            child.kill();
            panic!(
                "the agent did not exit within {deadline:?}; killed it.\nstdout:\n{}\nstderr:\n{}",
                text(&stdout.0),
                text(&stderr.0)
            );
        };
        // The pipes close when the agent exits; the readers finish at once.
        let stdout = stdout.finish();
        let stderr = stderr.finish();
        Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    pub fn spawn(mut self) -> Running {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut self.cmd);
        let stderr = child.0.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let echo = self.echo;
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("agent:    {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        Running {
            child,
            lines,
            _home: self.home,
        }
    }
}

/// A pipe read to its end on a thread of its own, so a chatty child never
/// blocks on a full pipe while we wait for it.
struct Collector(Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>);

fn collect(mut pipe: impl Read + Send + 'static) -> Collector {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    let handle = thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    Collector(buf, handle)
}

impl Collector {
    fn finish(self) -> Vec<u8> {
        let _ = self.1.join();
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A child in a process group of its own, killed with that group on drop.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `cmd` as the leader of a new process group, with the
    /// signals the tests send at their default dispositions: a suite run
    /// from a background shell (`cmd &`) inherits SIGINT ignored, which the
    /// agent and its jobs would inherit in turn (an ignored signal stays
    /// ignored across exec, and a shell cannot trap one).
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        // SAFETY: only async-signal-safe calls (signal) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(signal, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        ChildGuard(
            cmd.process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        )
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// The exit status, if the child exits within `within`.
    pub fn wait_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().expect("waitpid") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.0.try_wait().expect("waitpid").is_none()
    }

    /// SIGKILL to the whole group, then reap the child (prompt after SIGKILL).
    pub fn kill(&mut self) {
        // SAFETY: kill(2) on the process group our child leads.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

pub struct Running {
    child: ChildGuard,
    lines: Arc<Mutex<Vec<String>>>,
    _home: TempDir,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`; panics with the log if none comes.
    pub fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "no log line with {needle:?} within {within:?}; log:\n{}",
                    self.log().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `count` log lines containing `needle`.
    pub fn wait_for_line_count(&self, needle: &str, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.log().iter().filter(|l| l.contains(needle)).count() < count {
            if Instant::now() > deadline {
                panic!(
                    "fewer than {count} log lines with {needle:?} within {within:?}; log:\n{}",
                    self.log().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    pub fn signal(&self, signal: i32) {
        send_signal(self.child.id(), signal);
    }

    /// Waits for the process to exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        self.child.wait_within(within)
    }

    /// Sends `signal` and expects the agent gone within a second, as the
    /// README promises; its exit status for the caller to check.
    pub fn stop_with(&mut self, signal: i32) -> ExitStatus {
        let sent = Instant::now();
        self.signal(signal);
        let status = self
            .wait_exit(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("still running 3 s after signal {signal}"));
        let took = sent.elapsed();
        assert!(took < Duration::from_secs(1), "stopping took {took:?}");
        status
    }

    /// A field of /proc/PID/status, in its unit (kB for memory).
    pub fn proc_status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }
}

pub use libc::{SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGSTOP, SIGTERM};

pub fn send_signal(pid: u32, signal: i32) {
    // SAFETY: plain kill(2) on a child of ours.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// For the examples: builds the agent with the cargo that runs them and
/// returns its path (debug or release).
pub fn build_agent(release: bool) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--bin", "stacksense-heartbeat"]);
    if release {
        cmd.arg("--release");
    }
    let ok = cmd
        .current_dir(&manifest_dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "building the agent failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or(manifest_dir.join("target"), PathBuf::from);
    target
        .join(if release { "release" } else { "debug" })
        .join("stacksense-heartbeat")
}

/// The processes whose command line holds `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(marker)
                .then_some(pid)
        })
        .collect()
}

pub fn processes_with(marker: &str) -> usize {
    pids_with(marker).len()
}
