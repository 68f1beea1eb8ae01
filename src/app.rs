//! The program: args/env/file -> validated `Config` -> agent loop -> one
//! heartbeat -> outcome, wired together. The only entry point the crate
//! exports, so the compiler sees every item nothing uses.

use std::env;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::agent::{Agent, Role};
use crate::cli::{self, Mode};
use crate::clock::{self, SystemClock};
use crate::config;
use crate::heartbeat::Client;
use crate::notify::Notifier;
use crate::push::Planner;
use crate::push::kept::{self, Kept};
use crate::startup::StartupError;
use crate::stop;
use crate::task::Task;
use crate::{checkup, logging, signals, wrap};

/// Runs the program with this process's arguments and environment.
pub fn main() -> ExitCode {
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

fn run(journald: bool) -> Result<ExitCode, StartupError> {
    let cli = cli::parse(env::args_os().skip(1)).map_err(StartupError::Usage)?;
    let task = match cli.mode {
        Mode::Help => return Ok(print(&cli::help())),
        Mode::Version => return Ok(print(&format!("stacksense-heartbeat {}\n", cli::VERSION))),
        Mode::Task(task) => task,
    };
    logging::init(cli.verbosity, journald, env::var("RUST_LOG").ok());
    // SIGTERM/SIGINT work from here on, before any file is opened (a FIFO
    // named as a file would otherwise hang us deaf to both). Blocked before
    // any other thread exists, so every thread inherits the mask.
    let notifier = Arc::new(if task.notifies() {
        Notifier::from_env(|name| env::var(name).ok())
    } else {
        Notifier::disabled()
    });
    signals::block(task.signals()).map_err(StartupError::Signals)?;
    stop::on_signal(task.signals(), Arc::clone(&notifier), task.on_stop())
        .map_err(StartupError::Signals)?;

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
    // One beat from a fresh process: the metrics push's previous sample is
    // the one the run before kept (a runtime directory: RAM, gone at reboot).
    let kept = task.one_beat().then(|| {
        // SAFETY: getuid reads a value and has no preconditions.
        let uid = unsafe { libc::getuid() };
        let have_run = std::path::Path::new("/run").is_dir();
        let dir = kept::directory(&|name| env::var(name).ok(), uid, have_run);
        Kept::new(&dir, &config.heartbeat_url)
    });
    let gated = |client, role, job| {
        let agent = Agent::new(&config, SystemClock::new(), client, &notifier, role);
        match Planner::new(&config, kept.as_ref()) {
            Some(mut planner) => {
                if let Some(job) = job {
                    planner.set_job(job);
                }
                agent.with_gate(Box::new(planner))
            }
            None => agent,
        }
    };
    let client = || Client::new(&config).map_err(StartupError::Client);
    match task {
        Task::Check => {
            let (text, status) = checkup::run(&config, cli.offline);
            let printed = print(&text);
            Ok(if status == 0 {
                printed
            } else {
                ExitCode::from(status)
            })
        }
        Task::Run => {
            // Before the job starts: a client that cannot be set up is a
            // start-up error, not a job run for nothing.
            let client = client()?;
            let status =
                wrap::run_and_beat(&cli.command, config.settings.report.value.status, |job| {
                    gated(client, Role::Once, job).once()
                });
            Ok(ExitCode::from(status))
        }
        Task::Once => {
            let mut agent = gated(client()?, Role::Once, None);
            let phase = config.settings.splay.value.then(|| agent.phase());
            log::debug!("{}", config::startup_line(&config, phase));
            Ok(if agent.once() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Task::Service => {
            notifier.warn_if_shorter_than(config.settings.timeout.value);
            let mut agent = gated(client()?, Role::Service, None);
            let phase = config.settings.splay.value.then(|| agent.phase());
            log::info!("{}", config::startup_line(&config, phase));
            notifier.ready(&format!(
                "sending to {} every {}",
                config.heartbeat_url,
                clock::format_duration(config.settings.interval.value)
            ));
            agent.run()
        }
    }
}

fn print(text: &str) -> ExitCode {
    match io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
