//! Where a setting's value came from, so every message can say so.

use std::fmt;
use std::path::PathBuf;

use super::keys::Key;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    Flag(&'static str),
    Env(&'static str),
    /// A key in the JSON config file; `line` is where the key stands.
    File {
        path: PathBuf,
        line: Option<usize>,
    },
    /// A systemd credential (`LoadCredential=` puts it in `$CREDENTIALS_DIRECTORY`).
    Credential(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Source::File { path, line: None } => write!(f, "{}", path.display()),
            Source::Credential(path) => write!(f, "systemd credential {}", path.display()),
        }
    }
}

/// A value as text, before validation, with its origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Raw {
    pub text: String,
    pub source: Source,
}

impl Raw {
    pub fn new(text: impl Into<String>, source: Source) -> Raw {
        Raw {
            text: text.into(),
            source,
        }
    }
}

/// A validated value with its origin, kept for `--check` and the start-up line.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

/// One source's worth of settings: flags, environment or file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layer([Option<Raw>; Key::ALL.len()]);

impl Layer {
    pub fn get(&self, key: Key) -> Option<&Raw> {
        self.0[key as usize].as_ref()
    }

    pub fn set(&mut self, key: Key, raw: Raw) {
        self.0[key as usize] = Some(raw);
    }

    /// The layer with `key` set: for building layers in tests.
    #[cfg(test)]
    pub fn with(mut self, key: Key, text: &str, source: Source) -> Layer {
        self.set(key, Raw::new(text, source));
        self
    }
}
