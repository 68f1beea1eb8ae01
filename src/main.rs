//! stacksense-heartbeat: args/env/file -> validated `Config` -> agent loop ->
//! one heartbeat -> outcome. This file only wires those together.

use std::env;
use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;

use std::time::Instant;

use stacksense_heartbeat::agent::{Agent, Role};
use stacksense_heartbeat::checks::Preflight;
use stacksense_heartbeat::cli::{self, Mode, UsageError};
use stacksense_heartbeat::clock::{self, SystemClock};
use stacksense_heartbeat::config::{self, Config, ConfigError};
use stacksense_heartbeat::heartbeat::Client;
use stacksense_heartbeat::notify::Notifier;
use stacksense_heartbeat::process::{self, Tail};
use stacksense_heartbeat::{logging, signals, wrap};

/// The most of a `run` job's output `--report status` sends: enough for
/// the lines that say why it failed, small on a metered link.
const JOB_TAIL_BYTES: usize = 4 * 1024;

fn main() -> ExitCode {
    let journald = logging::stderr_is_journal(env::var("JOURNAL_STREAM").ok());
    run(journald).unwrap_or_else(|e| {
        let prefix = if journald { "<3>" } else { "" };
        let mut stderr = io::stderr().lock();
        for line in e.to_string().lines() {
            let _ = writeln!(stderr, "{prefix}stacksense-heartbeat: error: {line}");
        }
        e.exit_code()
    })
}

/// Why the agent could not start. Each is printed as one `error:` line per
/// problem, at journald's error priority when the journal is listening.
enum StartupError {
    Usage(UsageError),
    Config(Vec<ConfigError>),
    Signals(io::Error),
}

impl StartupError {
    fn exit_code(&self) -> ExitCode {
        match self {
            StartupError::Usage(_) | StartupError::Config(_) => ExitCode::from(2),
            StartupError::Signals(_) => ExitCode::FAILURE,
        }
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupError::Usage(e) => write!(f, "{e}; see --help"),
            StartupError::Config(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
            StartupError::Signals(e) => write!(f, "cannot set up SIGTERM/SIGINT handling: {e}"),
        }
    }
}

fn run(journald: bool) -> Result<ExitCode, StartupError> {
    let cli = cli::parse(env::args_os().skip(1)).map_err(StartupError::Usage)?;
    let stop_code = match cli.mode {
        Mode::Help => return Ok(print(&cli::help())),
        Mode::Version => return Ok(print(&format!("stacksense-heartbeat {}\n", cli::VERSION))),
        // The service was asked to stop: a clean stop. --once did not
        // confirm its beat, and --check did not finish. `run` outside its
        // job reports the signal as a shell would (while the job runs, the
        // signal goes to the job instead).
        Mode::Run => 0,
        Mode::Once | Mode::Check => 1,
        Mode::Wrap => -1,
    };
    logging::init(cli.verbosity, journald, env::var("RUST_LOG").ok());
    // SIGTERM/SIGINT work from here on, before any file is opened (a FIFO
    // named as a file would otherwise hang us deaf to both). Blocked before
    // any other thread exists, so every thread inherits the mask.
    let notifier = Arc::new(match cli.mode {
        Mode::Run => Notifier::from_env(|name| env::var(name).ok()),
        _ => Notifier::disabled(),
    });
    let handled = if cli.mode == Mode::Wrap {
        signals::FORWARD
    } else {
        signals::STOP
    };
    signals::block(handled).map_err(StartupError::Signals)?;
    stop_on_signal(handled, Arc::clone(&notifier), stop_code)?;

    let config = config::load(config::Inputs {
        flags: cli.flags,
        config_flag: cli.config,
        env: &|name| env::var_os(name),
        home: directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()),
    })
    .map_err(StartupError::Config)?;

    match cli.mode {
        Mode::Check => Ok(check(&config)),
        Mode::Wrap => Ok(run_job(&config, &notifier, &cli.command)),
        Mode::Once => {
            let mut agent = agent_for(&config, &notifier, Role::Once);
            log::debug!(
                "{}",
                config::startup_line(&config, config.splay.value.then(|| agent.phase()))
            );
            Ok(if agent.once() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        _ => {
            notifier.warn_if_shorter_than(config.timeout.value);
            let mut agent = agent_for(&config, &notifier, Role::Service);
            log::info!(
                "{}",
                config::startup_line(&config, config.splay.value.then(|| agent.phase()))
            );
            notifier.ready(&format!(
                "sending to {} every {}",
                config.heartbeat_url,
                clock::format_duration(config.interval.value)
            ));
            agent.run()
        }
    }
}

fn agent_for<'a>(
    config: &Config,
    notifier: &'a Notifier,
    role: Role,
) -> Agent<'a, SystemClock, Client> {
    gated(config, notifier, role, Preflight::new(config))
}

fn gated<'a>(
    config: &Config,
    notifier: &'a Notifier,
    role: Role,
    preflight: Option<Preflight>,
) -> Agent<'a, SystemClock, Client> {
    let agent = Agent::new(
        config,
        SystemClock::new(),
        Client::new(config),
        notifier,
        role,
    );
    match preflight {
        Some(preflight) => agent.with_gate(Box::new(preflight)),
        None => agent,
    }
}

/// `--check`: the settings, then every check run once. A failing check is
/// not a config error (the agent would start and withhold beats), so the
/// exit status stays 0: OpenRC's start_pre runs this.
fn check(config: &Config) -> ExitCode {
    let mut text = config::check_report(config);
    if !config.health.value.is_empty()
        && let Some(mut preflight) = Preflight::new(config)
    {
        let results = preflight.run_checks(config.interval.value, &|| {});
        text.push_str(&config::check_results(&results, config.report.value.status));
    }
    print(&text)
}

/// `run -- CMD`: the job, then one beat if it succeeded. Its exit status
/// is the job's (see `wrap::exit_status`).
fn run_job(config: &Config, notifier: &Notifier, command: &[std::ffi::OsString]) -> ExitCode {
    let reporting = config.report.value.status;
    let mut tail = reporting.then(|| Tail::new(JOB_TAIL_BYTES));
    let started = Instant::now();
    let job = match wrap::run(command, tail.as_mut()) {
        Ok(job) => job,
        Err(e) => {
            let program = command.first().cloned().unwrap_or_default();
            let (message, status) = wrap::spawn_failure(&program, &e);
            log::error!("{message}");
            return ExitCode::from(status);
        }
    };
    if !job.succeeded() {
        let sent = if reporting {
            "reported with its heartbeat"
        } else {
            "no heartbeat sent"
        };
        log::warn!("{}; {sent}", wrap::describe(job));
    }
    let mut preflight = Preflight::new(config);
    if let (Some(preflight), Some(tail)) = (preflight.as_mut(), &tail) {
        preflight.set_job(wrap::report(job, started.elapsed(), tail));
    }
    let delivered = (job.succeeded() || reporting).then(|| {
        let delivered = gated(config, notifier, Role::Once, preflight).once();
        if !delivered && job.succeeded() {
            log::error!(
                "the job succeeded but its heartbeat was not delivered; exit status {}",
                wrap::BEAT_UNDELIVERED
            );
        }
        delivered
    });
    ExitCode::from(wrap::exit_status(job, delivered))
}

/// SIGTERM/SIGINT end the process from the signal thread, whatever the
/// main thread is doing, unless a `run` job is running: then they (and
/// SIGHUP) are passed to the job, and the wrapper ends with it. Nothing on
/// this path can block: the log line and the STOPPING=1 datagram are
/// non-blocking writes, and `_exit` runs no exit handlers that could wait
/// on a lock the main thread holds. A negative `exit_code` means 128+N.
fn stop_on_signal(
    handled: &'static [signals::Signal],
    notifier: Arc<Notifier>,
    exit_code: i32,
) -> Result<(), StartupError> {
    signals::on_each(handled, move |signal, name| {
        if wrap::forward(signal) {
            log::debug!("{name} received, passed to the job");
            return;
        }
        log::info!("{name} received, stopping");
        notifier.stopping();
        process::kill_checks();
        let code = if exit_code < 0 {
            128 + signal
        } else {
            exit_code
        };
        // SAFETY: ends the process at once; nothing after it runs.
        unsafe { libc::_exit(code) }
    })
    .map_err(StartupError::Signals)
}

fn print(text: &str) -> ExitCode {
    match io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
