//! Why the agent could not start: usage, config, signal set-up or TLS set-up
//! errors, each printed as one `error:` line per problem by `main`.

use std::fmt;
use std::io;

use crate::cli::UsageError;
use crate::config::ConfigError;

/// Why the agent could not start. Each is printed as one `error:` line per
/// problem, at journald's error priority when the journal is listening.
pub enum StartupError {
    Usage(UsageError),
    Config(Vec<ConfigError>),
    Signals(io::Error),
    Client(String),
}

impl StartupError {
    pub fn exit_code(&self) -> u8 {
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
