//! stacksense-heartbeat: args/env/file -> validated `Config` -> agent loop ->
//! one heartbeat -> outcome.

mod agent;
mod backoff;
mod classify;
mod cli;
mod clock;
mod config;
mod heartbeat;
mod logging;
mod notify;
mod schedule;
mod signals;

use std::env;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;

use cli::Mode;
use config::{Config, ConfigFile};
use notify::Notifier;

const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match cli::parse(env::args_os().skip(1)) {
        Ok(cli) => cli,
        Err(e) => {
            say_error(false, &format!("{e}; see --help"));
            return ExitCode::from(USAGE_ERROR);
        }
    };
    match cli.mode {
        Mode::Help => return print(cli::HELP),
        Mode::Version => return print(&format!("stacksense-heartbeat {}\n", heartbeat::VERSION)),
        Mode::Run | Mode::Once | Mode::Check => {}
    }
    // Before any thread exists, so every thread inherits the mask.
    if let Err(e) = signals::block() {
        say_error(false, &format!("cannot block SIGTERM/SIGINT: {e}"));
        return ExitCode::FAILURE;
    }
    let journald = logging::stderr_is_journal(env::var("JOURNAL_STREAM").ok());
    logging::init(cli.verbosity, journald, env::var("RUST_LOG").ok());

    let home = directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf());
    let loaded = config::load(config::Inputs {
        flags: cli.flags,
        config_flag: cli.config,
        env: &|name| env::var_os(name),
        home,
    });
    let config = match loaded {
        Ok(config) => config,
        Err(errors) => {
            for e in errors {
                say_error(journald, &e.to_string());
            }
            return ExitCode::from(USAGE_ERROR);
        }
    };

    match cli.mode {
        Mode::Check => print(&check_report(&config)),
        Mode::Once => run_once(&config),
        _ => run(&config),
    }
}

/// SIGTERM/SIGINT end the process from the signal thread, whatever the
/// main thread is doing: `exit_code` 0 for the service, 1 for `--once`
/// (its beat was not confirmed).
fn stop_on_signal(notifier: Arc<Notifier>, exit_code: i32) -> Result<(), ExitCode> {
    signals::on_termination(move |name| {
        log::info!("{name} received, stopping");
        notifier.stopping();
        std::process::exit(exit_code);
    })
    .map_err(|e| {
        say_error(false, &format!("cannot start the signal thread: {e}"));
        ExitCode::FAILURE
    })
}

fn run(config: &Config) -> ExitCode {
    let notifier = Arc::new(Notifier::from_env(|name| env::var(name).ok()));
    if let Err(code) = stop_on_signal(Arc::clone(&notifier), 0) {
        return code;
    }
    if let (Some(watchdog), timeout) = (notifier.watchdog_timeout(), config.timeout.value)
        && timeout + std::time::Duration::from_secs(1) >= watchdog
    {
        log::warn!(
            "WatchdogSec ({}) is not longer than timeout ({}): systemd may kill the agent \
             during a slow attempt; raise WatchdogSec",
            clock::format_duration(watchdog),
            clock::format_duration(timeout)
        );
    }
    let mut agent = agent::Agent::new(config, &notifier, false);
    log::info!("{}", startup_line(config, &agent));
    notifier.ready(&format!(
        "sending to {} every {}",
        config.heartbeat_url,
        clock::format_duration(config.interval.value)
    ));
    agent.run()
}

fn run_once(config: &Config) -> ExitCode {
    let notifier = Arc::new(Notifier::disabled());
    if let Err(code) = stop_on_signal(Arc::clone(&notifier), 1) {
        return code;
    }
    let mut agent = agent::Agent::new(config, &notifier, true);
    log::debug!("{}", startup_line(config, &agent));
    if agent.once() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn startup_line(config: &Config, agent: &agent::Agent) -> String {
    let token = match &config.token {
        Some(t) => format!("token from {}", t.source),
        None => "no token".into(),
    };
    let ca = match &config.ca {
        Some(ca) => format!("CA {}", ca.value.path.display()),
        None => "bundled CA roots".into(),
    };
    let splay = if config.splay.value {
        format!("phase {}", clock::format_duration(agent.phase()))
    } else {
        "no splay".into()
    };
    format!(
        "stacksense-heartbeat {} starting: POST {} every {} ({splay}, timeout {}, {token}, {ca})",
        heartbeat::VERSION,
        config.heartbeat_url,
        clock::format_duration(config.interval.value),
        clock::format_duration(config.timeout.value),
    )
}

/// `--check`: each effective value and where it came from; the token only as "set".
fn check_report(config: &Config) -> String {
    let mut rows: Vec<(&str, String, String)> = Vec::new();
    let file = match &config.file {
        ConfigFile::Loaded(p) => format!("{} (read)", p.display()),
        ConfigFile::Missing(p) => format!("{} (not present; fine)", p.display()),
        ConfigFile::NoneLookedFor => "none (no home directory)".into(),
    };
    rows.push(("config file", file, String::new()));
    rows.push((
        "server_id",
        config.server_id.value.clone(),
        config.server_id.source.to_string(),
    ));
    rows.push((
        "api_url",
        config.api_url.value.clone(),
        config.api_url.source.to_string(),
    ));
    rows.push((
        "heartbeat",
        format!("POST {}", config.heartbeat_url),
        String::new(),
    ));
    let secs = |d: std::time::Duration| clock::format_duration(d);
    rows.push((
        "interval",
        secs(config.interval.value),
        config.interval.source.to_string(),
    ));
    rows.push((
        "timeout",
        secs(config.timeout.value),
        config.timeout.source.to_string(),
    ));
    rows.push(match &config.token {
        Some(t) => ("token", "set".into(), t.source.to_string()),
        None => ("token", "not set".into(), String::new()),
    });
    rows.push(match &config.ca {
        Some(ca) => (
            "ca_file",
            format!(
                "{} ({} certificate(s))",
                ca.value.path.display(),
                ca.value.certs.len()
            ),
            ca.source.to_string(),
        ),
        None => (
            "ca_file",
            "not set (bundled Mozilla roots)".into(),
            String::new(),
        ),
    });
    let splay = if config.splay.value { "on" } else { "off" };
    rows.push(("splay", splay.into(), config.splay.source.to_string()));

    let width = rows.iter().map(|(_, v, _)| v.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value, source) in rows {
        let line = if source.is_empty() {
            format!("{name:<12} {value}")
        } else {
            format!("{name:<12} {value:<width$}  from {source}")
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("config OK\n");
    out
}

fn print(text: &str) -> ExitCode {
    match io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// A start-up error: one line on stderr, with a journald priority when the
/// journal is listening.
fn say_error(journald: bool, message: &str) {
    let prefix = if journald { "<3>" } else { "" };
    let _ = writeln!(
        io::stderr(),
        "{prefix}stacksense-heartbeat: error: {message}"
    );
}
