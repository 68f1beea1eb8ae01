//! A configuration error: which setting, where its value came from, what
//! was expected. Every part of `config` reports with it.

use std::fmt;

use super::keys::Key;
use super::source::{Raw, Source};
use crate::text;

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub about: About,
    pub source: Option<Source>,
    pub message: String,
}

/// What a [`ConfigError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    Setting(Key),
    ConfigFile,
    /// The proxy environment variables (`https_proxy`, ...).
    Proxy,
}

impl ConfigError {
    pub(super) fn value(key: Key, raw: &Raw, message: String) -> ConfigError {
        // A token setting's value is never shown, even a wrong one: it may be
        // the token itself, pasted into the wrong place.
        let message = if key.is_secret() {
            format!("{message} (the value is not shown: it may be a secret)")
        } else {
            format!("\"{}\" {message}", text::untrusted_max(&raw.text, 80))
        };
        ConfigError {
            about: About::Setting(key),
            source: Some(raw.source.clone()),
            message,
        }
    }

    pub(super) fn file(message: String) -> ConfigError {
        ConfigError {
            about: About::ConfigFile,
            source: None,
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.about {
            About::Setting(key) => key.name(),
            About::ConfigFile => "config file",
            About::Proxy => "proxy",
        };
        match &self.source {
            Some(source) => write!(f, "{name} (from {source}): {}", self.message),
            None => write!(f, "{name}: {}", self.message),
        }
    }
}
