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
use crate::startup::StartupError;
use crate::stop::{self, OnStop};
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
    stop::on_signal(handled, Arc::clone(&notifier), on_stop).map_err(StartupError::Signals)?;

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
    let one_beat = match cli.mode {
        Mode::Once => Some("--once"),
        Mode::Run => Some("run"),
        _ => None,
    };
    if let Some(error) =
        one_beat.and_then(|mode| config::one_beat_error(&config.settings.report, mode))
    {
        return Err(StartupError::Config(vec![error]));
    }
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
        match Planner::new(&config) {
            Some(mut planner) => {
                if let Some(job) = job {
                    planner.set_job(job);
                }
                agent.with_gate(Box::new(planner))
            }
            None => agent,
        }
    };
    match cli.mode {
        Mode::Run => {
            let status =
                wrap::run_and_beat(&cli.command, config.settings.report.value.status, |job| {
                    gated(client, Role::Once, job).once()
                });
            Ok(ExitCode::from(status))
        }
        Mode::Once => {
            let mut agent = gated(client, Role::Once, None);
            let phase = config.settings.splay.value.then(|| agent.phase());
            log::debug!("{}", config::startup_line(&config, phase));
            Ok(if agent.once() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        _ => {
            notifier.warn_if_shorter_than(config.settings.timeout.value);
            let mut agent = gated(client, Role::Service, None);
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
