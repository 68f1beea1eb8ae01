//! stacksense-heartbeat: args/env/file -> validated `Config` -> agent loop ->
//! one heartbeat -> outcome. This file only wires those together.

use std::env;
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use stacksense_heartbeat::agent::{Agent, Role};
use stacksense_heartbeat::checks::Preflight;
use stacksense_heartbeat::cli::{self, Mode, UsageError};
use stacksense_heartbeat::clock::{self, SystemClock};
use stacksense_heartbeat::config::{self, ConfigError};
use stacksense_heartbeat::heartbeat::Client;
use stacksense_heartbeat::notify::Notifier;
use stacksense_heartbeat::{checkup, logging, process, signals, wrap};

fn main() -> ExitCode {
    let journald = logging::stderr_is_journal(env::var("JOURNAL_STREAM").ok());
    run(journald).unwrap_or_else(|e| {
        let prefix = if journald { "<3>" } else { "" };
        let mut stderr = io::stderr().lock();
        for line in e.to_string().lines() {
            let _ = writeln!(stderr, "{prefix}stacksense-heartbeat: error: {line}");
        }
        ExitCode::from(e.exit_code())
    })
}

/// Why the agent could not start. Each is printed as one `error:` line per
/// problem, at journald's error priority when the journal is listening.
enum StartupError {
    Usage(UsageError),
    Config(Vec<ConfigError>),
    Signals(io::Error),
    Client(String),
}

impl StartupError {
    fn exit_code(&self) -> u8 {
        match self {
            StartupError::Usage(_) | StartupError::Config(_) | StartupError::Client(_) => 2,
            StartupError::Signals(_) => 1,
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
            StartupError::Client(e) => f.write_str(e),
        }
    }
}

fn run(journald: bool) -> Result<ExitCode, StartupError> {
    let cli = cli::parse(env::args_os().skip(1)).map_err(StartupError::Usage)?;
    let on_stop = match cli.mode {
        Mode::Help => return Ok(print(&cli::help())),
        Mode::Version => return Ok(print(&format!("stacksense-heartbeat {}\n", cli::VERSION))),
        // The service was asked to stop: a clean stop. --once did not
        // confirm its beat, and --check did not finish. `run` outside its
        // job reports the signal as a shell would (while the job runs, the
        // signal goes to the job instead).
        Mode::Service => OnStop::Exit(0),
        Mode::Once | Mode::Check => OnStop::Exit(1),
        Mode::Run => OnStop::AsAShellWould,
    };
    logging::init(cli.verbosity, journald, env::var("RUST_LOG").ok());
    // SIGTERM/SIGINT work from here on, before any file is opened (a FIFO
    // named as a file would otherwise hang us deaf to both). Blocked before
    // any other thread exists, so every thread inherits the mask.
    let notifier = Arc::new(match cli.mode {
        Mode::Service => Notifier::from_env(|name| env::var(name).ok()),
        _ => Notifier::disabled(),
    });
    let handled = match cli.mode {
        Mode::Run => signals::FORWARD,
        _ => signals::STOP,
    };
    signals::block(handled).map_err(StartupError::Signals)?;
    stop_on_signal(handled, Arc::clone(&notifier), on_stop)?;

    let (config, warnings) = config::load(config::Inputs {
        flags: cli.flags,
        config_flag: cli.config,
        env: &|name| env::var_os(name),
        env_names: env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect(),
        home: directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()),
        system_file: PathBuf::from(config::SYSTEM_FILE),
    });
    for warning in warnings {
        log::warn!("{warning}");
    }
    let config = config.map_err(StartupError::Config)?;
    if cli.mode == Mode::Check {
        let (text, status) = checkup::run(&config, cli.offline);
        let printed = print(&text);
        return Ok(if status == 0 {
            printed
        } else {
            ExitCode::from(status)
        });
    }
    let client = Client::new(&config).map_err(StartupError::Client)?;
    let gated = |client, role, job| {
        let agent = Agent::new(&config, SystemClock::new(), client, &notifier, role);
        match Preflight::new(&config) {
            Some(mut preflight) => {
                if let Some(job) = job {
                    preflight.set_job(job);
                }
                agent.with_gate(Box::new(preflight))
            }
            None => agent,
        }
    };
    match cli.mode {
        Mode::Run => {
            let status = wrap::run_and_beat(&cli.command, config.report.value.status, |job| {
                gated(client, Role::Once, job).once()
            });
            Ok(ExitCode::from(status))
        }
        Mode::Once => {
            let mut agent = gated(client, Role::Once, None);
            let phase = config.splay.value.then(|| agent.phase());
            log::debug!("{}", config::startup_line(&config, phase));
            Ok(if agent.once() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        _ => {
            notifier.warn_if_shorter_than(config.timeout.value);
            let mut agent = gated(client, Role::Service, None);
            let phase = config.splay.value.then(|| agent.phase());
            log::info!("{}", config::startup_line(&config, phase));
            notifier.ready(&format!(
                "sending to {} every {}",
                config.heartbeat_url,
                clock::format_duration(config.interval.value)
            ));
            agent.run()
        }
    }
}

/// What a stop signal makes the process exit with.
#[derive(Clone, Copy)]
enum OnStop {
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
fn stop_on_signal(
    handled: &'static [signals::Signal],
    notifier: Arc<Notifier>,
    on_stop: OnStop,
) -> Result<(), StartupError> {
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
    .map_err(StartupError::Signals)
}

fn print(text: &str) -> ExitCode {
    match io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
