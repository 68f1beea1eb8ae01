//! Command-line flags, read into raw values; validation happens in `config`.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::config::{Layer, Raw, Source};

pub const HELP: &str = "\
stacksense-heartbeat - tell a StackSense monitoring server \"I am alive\"

USAGE
    stacksense-heartbeat [OPTIONS]              run: a heartbeat every interval
    stacksense-heartbeat --once [OPTIONS]       send one heartbeat, exit 0 or 1 (cron)
    stacksense-heartbeat --check [OPTIONS]      print the effective config, exit 0 or 2

    Each beat is POST {api_url}/api/heartbeat/{server_id}/
    with the body {\"agent_version\": \"<version>\"}.

OPTIONS                        ENV VAR                  FILE KEY     DEFAULT
    --server-id ID             STACKSENSE_SERVER_ID     server_id    (required)
        1-64 characters of A-Z a-z 0-9 . _ -; a number in the file is fine.
    --api-url URL              STACKSENSE_API_URL       api_url      (required)
        http:// or https:// base URL, may carry a path prefix.
    --interval SECS            STACKSENSE_INTERVAL      interval     30
        Seconds between beats, 0.1 to 86400.
    --timeout SECS             STACKSENSE_TIMEOUT       timeout      10
        Limit for one attempt: DNS + connect + TLS + response, 0.1 to 3600.
    --token-file PATH          STACKSENSE_TOKEN_FILE    token_file   (none)
                               STACKSENSE_TOKEN         token
        Bearer token, sent as \"Authorization: Bearer ...\"; never logged.
        There is no --token flag: a flag would show in `ps`. Under systemd
        a credential named \"token\" (LoadCredential=token:PATH) is used
        when nothing else sets one.
    --ca-file PATH             STACKSENSE_CA_FILE       ca_file      bundled roots
        PEM CA certificates to trust instead of the bundled Mozilla roots.
    --no-splay                 STACKSENSE_SPLAY=false   splay        true
        Put beats on exact multiples of the interval from start instead of
        a random phase (splay keeps a fleet from beating in lockstep).
    --config PATH              STACKSENSE_CONFIG        -            ~/.stacksense_heartbeat.conf
        JSON file with the keys above. A missing default file is fine;
        a missing file named here is an error.
    --once                     Send one heartbeat (retrying within one interval) and exit.
    --check                    Validate the config, print each value and its source.
    -v, --verbose              More log detail (-vv for HTTP and TLS internals).
    -q, --quiet                Only warnings (-qq: only errors). RUST_LOG overrides both.
    -h, --help                 This text.
    -V, --version              The version.

    Precedence: flag > environment variable > config file > default.
    An empty environment variable counts as unset.

EXIT STATUS
    0   stopped by SIGTERM/SIGINT; --once delivered; --check found no error
    1   --once could not deliver the heartbeat (or was interrupted)
    2   bad flag, environment variable or config file (the message names it)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Once,
    Check,
    Help,
    Version,
}

#[derive(Debug, PartialEq)]
pub struct Cli {
    pub mode: Mode,
    /// 0 is the default (info); each -v adds one, each -q takes one away.
    pub verbosity: i8,
    pub flags: Layer,
    pub config: Option<PathBuf>,
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
        mode: Mode::Run,
        verbosity: 0,
        flags: Layer::default(),
        config: None,
    };
    let mut parser = lexopt::Parser::from_args(args);
    let set_mode = |cli: &mut Cli, mode: Mode, name: &str| {
        if cli.mode != Mode::Run && cli.mode != mode {
            return Err(UsageError(format!(
                "{name} cannot be combined with --once or --check"
            )));
        }
        cli.mode = mode;
        Ok(())
    };
    while let Some(arg) = parser.next()? {
        let flag =
            |name: &'static str, parser: &mut lexopt::Parser| -> Result<Option<Raw>, UsageError> {
                let text = parser.value()?.string()?;
                Ok(Some(Raw::new(text.trim(), Source::Flag(name))))
            };
        match arg {
            Long("server-id") => cli.flags.server_id = flag("--server-id", &mut parser)?,
            Long("api-url") => cli.flags.api_url = flag("--api-url", &mut parser)?,
            Long("interval") => cli.flags.interval = flag("--interval", &mut parser)?,
            Long("timeout") => cli.flags.timeout = flag("--timeout", &mut parser)?,
            Long("token-file") => cli.flags.token_file = flag("--token-file", &mut parser)?,
            Long("ca-file") => cli.flags.ca_file = flag("--ca-file", &mut parser)?,
            Long("no-splay") => {
                cli.flags.splay = Some(Raw::new("false", Source::Flag("--no-splay")))
            }
            Long("config") => cli.config = Some(parser.value()?.into()),
            Long("token") => {
                return Err(UsageError(
                    "there is no --token flag (it would show in `ps`); use --token-file, \
                     STACKSENSE_TOKEN or STACKSENSE_TOKEN_FILE"
                        .into(),
                ));
            }
            Long("once") => set_mode(&mut cli, Mode::Once, "--once")?,
            Long("check") => set_mode(&mut cli, Mode::Check, "--check")?,
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
            Value(v) => {
                return Err(UsageError(format!(
                    "unexpected argument {:?}; all settings are --flags",
                    v.to_string_lossy()
                )));
            }
            _ => return Err(arg.unexpected().into()),
        }
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
        assert_eq!(cli.mode, Mode::Run);
        assert_eq!(cli.verbosity, 2);
        let interval = cli.flags.interval.unwrap();
        assert_eq!(interval.text, "5");
        assert_eq!(interval.source, Source::Flag("--interval"));
        assert_eq!(cli.flags.server_id.unwrap().text, "7");
    }

    #[test]
    fn modes_and_their_conflicts() {
        assert_eq!(parse_str(&["--once"]).unwrap().mode, Mode::Once);
        assert_eq!(parse_str(&["--check", "-q"]).unwrap().verbosity, -1);
        assert!(parse_str(&["--once", "--check"]).is_err());
        assert_eq!(
            parse_str(&["--bogus", "-h"]).map(|c| c.mode),
            Err(UsageError("invalid option '--bogus'".into()))
        );
        assert_eq!(parse_str(&["-h", "--bogus"]).unwrap().mode, Mode::Help);
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
    fn help_names_every_flag_env_var_and_file_key() {
        for needle in [
            "--server-id",
            "--api-url",
            "--interval",
            "--timeout",
            "--token-file",
            "--ca-file",
            "--no-splay",
            "--config",
            "--once",
            "--check",
            "--verbose",
            "--quiet",
            "--version",
            "STACKSENSE_SERVER_ID",
            "STACKSENSE_API_URL",
            "STACKSENSE_INTERVAL",
            "STACKSENSE_TIMEOUT",
            "STACKSENSE_TOKEN",
            "STACKSENSE_TOKEN_FILE",
            "STACKSENSE_CA_FILE",
            "STACKSENSE_SPLAY",
            "STACKSENSE_CONFIG",
            "server_id",
            "api_url",
            "token_file",
            "ca_file",
            "splay",
        ] {
            assert!(HELP.contains(needle), "help lacks {needle}");
        }
    }
}
