//! Command-line flags, read into raw values; validation happens in `config`.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::config::{Flag, Key, Kind, Layer, Raw, Source, help_rows};
pub use crate::task::Task;

pub use crate::version::VERSION;

const USAGE: &str = "\
stacksense-heartbeat - tell a StackSense monitoring server \"I am alive\"

USAGE
    stacksense-heartbeat [OPTIONS]              the service: a heartbeat every interval
    stacksense-heartbeat --once [OPTIONS]       send one heartbeat, exit 0 or 1 (cron)
    stacksense-heartbeat --check [OPTIONS]      print the config, ask the server, exit 0, 2 or 3
    stacksense-heartbeat run [OPTIONS] -- CMD [ARGS...]
                                                run a job; one heartbeat if it exits 0 (cron)

    Each beat is POST {api_url}/api/agent/heartbeat/ with the token
    (the legacy API: POST {api_url}/api/heartbeat/{server_id}/) and the
    body {\"agent_version\": \"<version>\"} (--report adds to it).
    With --health checks, a beat is sent only while all of them pass.

OPTIONS                        ENV VAR                  FILE KEY     DEFAULT
";

const MORE_OPTIONS: &str =
    "    --config PATH              STACKSENSE_CONFIG        -            see below
        JSON file with the keys above. Without one named, the first that
        exists of ~/.stacksense_heartbeat.conf and /etc/stacksense/heartbeat.conf
        (none is fine); a missing file named here is an error.
    --once                     Send one heartbeat (retrying within one interval) and exit.
    --check                    Validate the config, print each value and its source, ask
                               the server (agent API: GET /api/agent/ping/ with the token,
                               not a beat; legacy API: DNS, TCP and TLS only), run each
                               health check once (failing ones still exit 0).
    --offline                  With --check: the settings only, no network (for boot).
    run ... -- CMD [ARGS...]   Run CMD (no shell; its output passes through), forward
                               SIGTERM/SIGINT/SIGHUP to it and its children, exit with its
                               status (128+N if a signal ended it); if it exited 0, send one
                               heartbeat as --once does. --report status: send it either
                               way, with the job's end and the last 4 KiB of its output.
    -v, --verbose              More log detail (-vv for HTTP and TLS internals).
    -q, --quiet                Only warnings (-qq: only errors). RUST_LOG overrides both.
    -h, --help                 This text.
    -V, --version              The version.

    Precedence: flag > environment variable > config file > default.
    An empty environment variable counts as unset.

EXIT STATUS
    0   stopped by SIGTERM/SIGINT; --once delivered; --check found no error
    1   --once could not deliver the heartbeat, or a health check withheld it;
        --once or --check was interrupted
    2   bad flag, environment variable or config file (the message names it)
    3   --check: the server could not be reached, or refused the token
    run: the job's own exit status (128+N for signal N); 75 if the job
        succeeded but its heartbeat was not sent (undeliverable, or withheld
        by a check); 126/127 if CMD cannot be run / is not found; 2 as above
        (the job is not started)
";

/// `--help`: the settings' rows come from the settings table.
pub fn help() -> String {
    format!("{USAGE}{}{MORE_OPTIONS}", help_rows())
}

/// What the command line asks for: text to print, or a task to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Help,
    Version,
    Task(Task),
}

#[derive(Debug, PartialEq)]
pub struct Cli {
    pub mode: Mode,
    /// 0 is the default (info); each -v adds one, each -q takes one away.
    pub verbosity: i8,
    pub flags: Layer,
    pub config: Option<PathBuf>,
    /// `--check --offline`: the settings only, no request to the server.
    pub offline: bool,
    /// The job for `run`: the program and its arguments, as given.
    pub command: Vec<OsString>,
}

#[derive(Debug, PartialEq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> UsageError {
        UsageError(e.to_string())
    }
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, UsageError> {
    use lexopt::prelude::*;

    let mut cli = Cli {
        mode: Mode::Task(Task::Service),
        verbosity: 0,
        flags: Layer::default(),
        config: None,
        offline: false,
        command: Vec::new(),
    };
    let mut parser = lexopt::Parser::from_args(args);
    let set_task = |cli: &mut Cli, task: Task| {
        let current = cli.mode;
        if current != Mode::Task(Task::Service) && current != Mode::Task(task) {
            return Err(UsageError(format!(
                "{} cannot be combined with {}",
                task.flag().unwrap_or("the service"),
                task.conflicts().join(" or ")
            )));
        }
        cli.mode = Mode::Task(task);
        Ok(())
    };
    while let Some(arg) = parser.next()? {
        if let Long(name) = arg
            && let Some(key) = Key::from_flag(&format!("--{name}"))
        {
            let raw = match key.spec().flag {
                // A list flag adds an entry each time it is given.
                Flag::Value(flag, _) if key.spec().kind == Kind::List => {
                    let entry = parser.value()?.string()?;
                    let text = match cli.flags.get(key) {
                        Some(earlier) => format!("{}\n{}", earlier.text, entry.trim()),
                        None => entry.trim().to_string(),
                    };
                    Raw::new(text, Source::Flag(flag))
                }
                Flag::Value(flag, _) => {
                    Raw::new(parser.value()?.string()?.trim(), Source::Flag(flag))
                }
                Flag::Sets(flag, value) => Raw::new(value, Source::Flag(flag)),
                Flag::None => continue,
            };
            cli.flags.set(key, raw);
            continue;
        }
        match arg {
            Long("config") => cli.config = Some(parser.value()?.into()),
            Long("token") => {
                return Err(UsageError(
                    "there is no --token flag (it would show in `ps`); use --token-file, \
                     STACKSENSE_TOKEN or STACKSENSE_TOKEN_FILE"
                        .into(),
                ));
            }
            Long("once") => set_task(&mut cli, Task::Once)?,
            Long("check") => set_task(&mut cli, Task::Check)?,
            Long("offline") => cli.offline = true,
            Short('v') | Long("verbose") => cli.verbosity = cli.verbosity.saturating_add(1),
            Short('q') | Long("quiet") => cli.verbosity = cli.verbosity.saturating_sub(1),
            Short('h') | Long("help") => {
                return Ok(Cli {
                    mode: Mode::Help,
                    ..cli
                });
            }
            Short('V') | Long("version") => {
                return Ok(Cli {
                    mode: Mode::Version,
                    ..cli
                });
            }
            Value(v) if v == "run" && cli.mode == Mode::Task(Task::Service) => {
                cli.mode = Mode::Task(Task::Run);
            }
            // The job: this word and everything after it, options included.
            Value(v) if cli.mode == Mode::Task(Task::Run) => {
                cli.command.push(v);
                cli.command.extend(parser.raw_args()?);
            }
            Value(v) => {
                return Err(UsageError(format!(
                    "unexpected argument {:?}; all settings are --flags (to run a job: \
                     stacksense-heartbeat run [OPTIONS] -- CMD ARGS...)",
                    v.to_string_lossy()
                )));
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if cli.offline && cli.mode != Mode::Task(Task::Check) {
        return Err(UsageError(
            "--offline goes with --check (the settings only, no request to the server)".into(),
        ));
    }
    if cli.mode == Mode::Task(Task::Run) && cli.command.is_empty() {
        return Err(UsageError(
            "run needs a command: stacksense-heartbeat run [OPTIONS] -- CMD ARGS...".into(),
        ));
    }
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Cli, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn flags_become_raw_values_with_their_flag_as_source() {
        let cli = parse_str(&[
            "--server-id",
            "7",
            "--interval=5",
            "--api-url",
            "http://m",
            "-vv",
        ])
        .unwrap();
        assert_eq!(cli.mode, Mode::Task(Task::Service));
        assert_eq!(cli.verbosity, 2);
        let interval = cli.flags.get(Key::Interval).unwrap();
        assert_eq!(interval.text, "5");
        assert_eq!(interval.source, Source::Flag("--interval"));
        assert_eq!(cli.flags.get(Key::ServerId).unwrap().text, "7");
        let splay = parse_str(&["--no-splay"]).unwrap().flags;
        assert_eq!(splay.get(Key::Splay).unwrap().text, "false");
    }

    #[test]
    fn modes_and_their_conflicts() {
        assert_eq!(parse_str(&["--once"]).unwrap().mode, Mode::Task(Task::Once));
        assert_eq!(parse_str(&["--check", "-q"]).unwrap().verbosity, -1);
        assert_eq!(
            parse_str(&["--once", "--check"]),
            Err(UsageError(
                "--check cannot be combined with --once or run".into()
            ))
        );
        assert!(parse_str(&["run", "--once", "--", "true"]).is_err());
        assert_eq!(
            parse_str(&["--bogus", "-h"]).map(|c| c.mode),
            Err(UsageError("invalid option '--bogus'".into()))
        );
        assert_eq!(parse_str(&["-h", "--bogus"]).unwrap().mode, Mode::Help);
    }

    #[test]
    fn run_takes_the_job_after_its_options() {
        let cli = parse_str(&[
            "run",
            "--server-id",
            "7",
            "--",
            "backup.sh",
            "-v",
            "--",
            "x",
        ])
        .unwrap();
        assert_eq!(cli.mode, Mode::Task(Task::Run));
        assert_eq!(cli.verbosity, 0, "-v after the command is the job's");
        assert_eq!(cli.command, ["backup.sh", "-v", "--", "x"]);
        assert_eq!(cli.flags.get(Key::ServerId).unwrap().text, "7");
        // Without "--" the first word that is not an option starts the job.
        let cli = parse_str(&["run", "-q", "tar", "-czf", "a.tgz"]).unwrap();
        assert_eq!((cli.verbosity, cli.command.len()), (-1, 3));
        assert!(
            parse_str(&["run"])
                .unwrap_err()
                .0
                .contains("needs a command")
        );
        assert!(parse_str(&["run", "--once", "--", "x"]).is_err());
        assert!(parse_str(&["--check", "run", "x"]).is_err());
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        assert!(
            parse_str(&["--interval"])
                .unwrap_err()
                .0
                .contains("--interval")
        );
        assert!(parse_str(&["stray"]).unwrap_err().0.contains("\"stray\""));
        assert!(
            parse_str(&["--token", "x"])
                .unwrap_err()
                .0
                .contains("--token-file")
        );
    }

    #[test]
    fn help_names_every_setting_with_its_flag_env_var_and_default() {
        let help = help();
        for key in Key::ALL {
            let spec = key.spec();
            let flag = match spec.flag {
                Flag::Value(flag, value) => format!("{flag} {value}"),
                Flag::Sets(flag, _) => flag.to_string(),
                Flag::None => String::new(),
            };
            let row = help
                .lines()
                .find(|l| l.split_whitespace().any(|w| w == spec.env))
                .unwrap_or_else(|| panic!("help has no row for {}", spec.env));
            assert!(
                row.trim_start().starts_with(&flag)
                    && row.contains(&format!(" {} ", spec.name))
                    && row.trim_end().ends_with(spec.default),
                "{row}"
            );
        }
        for other in [
            "--config",
            "--once",
            "--check",
            "--verbose",
            "--quiet",
            "--version",
            "run [OPTIONS] -- CMD",
        ] {
            assert!(help.contains(other), "help lacks {other}");
        }
        for line in help.lines() {
            let heading = line.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                || line.starts_with("stacksense-heartbeat - ");
            assert!(
                line.is_empty() || heading || line.starts_with("    "),
                "misaligned help line {line:?}"
            );
            assert!(line.len() <= 100, "{line}");
        }
    }
}
