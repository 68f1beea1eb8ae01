//! Flags, environment and the JSON file, layered into one validated [`Config`].
//!
//! Precedence, highest first: flag > environment > file > default. Nothing
//! past this module reads the environment or a config file.

// First: the table's macro is used by the modules after it.
#[macro_use]
mod table;

pub mod api;
mod credentials;
mod describe;
mod env;
mod error;
mod file;
pub mod health;
mod keys;
mod locate;
mod proxy;
mod pushes;
mod reporting;
mod resolve;
mod source;
pub mod value;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use api::Api;
pub use credentials::reread_token;
pub use describe::{aligned, check_settings, startup_line};
pub use error::{About, ConfigError};
pub use file::parse as parse_file;
pub use keys::{
    DEFAULT_INTERVAL, DEFAULT_METRICS_INTERVAL, DEFAULT_SERVICES_INTERVAL, DEFAULT_TIMEOUT, Flag,
    Key, Kind, help_rows,
};
pub use locate::{ConfigFile, SYSTEM_FILE};
pub use proxy::Proxying;
pub use pushes::every_setting as push_every;
pub use reporting::Reporting;
pub use source::{Layer, Raw, Setting, Source};

use crate::clock::format_duration;
use crate::discover::containers::Socket;
use crate::text;
use crate::tls::{self, Pins, Trust};
use credentials::TokenSpec;
use health::{self as check_spec, Check};
pub use resolve::Settings;
use resolve::resolve;

/// The file name `LoadCredential=token:...` gives the token under systemd.
pub const CREDENTIAL_NAME: &str = "token";

#[derive(Debug)]
pub struct Config {
    /// Every setting as the table gives it, with its source.
    pub settings: Settings,
    /// The API to speak: `settings.api` with auto decided.
    pub api: Setting<Api>,
    /// Why `api` is what it is when auto chose it.
    pub api_why: Option<&'static str>,
    pub heartbeat_url: String,
    /// `GET /api/agent/ping/`, with the agent API: what `--check` asks.
    pub ping_url: Option<String>,
    /// The token read from where the settings say, checked.
    pub token: Option<Setting<Token>>,
    /// The file the token was read from (a token file or a systemd
    /// credential): read again when the server refuses the token.
    pub token_file: Option<PathBuf>,
    /// The certificates of `settings.ca_file`, read and checked.
    pub ca: Option<Setting<CaBundle>>,
    pub proxy: Proxying,
    pub file: ConfigFile,
}

impl Config {
    /// How beats trust the server: a pin, else the CA file, else the bundled roots.
    pub fn trust(&self) -> Trust {
        match (&self.settings.pins, &self.ca) {
            (Some(pins), _) => Trust::Pinned(pins.value.clone()),
            (None, Some(ca)) => Trust::Cas(std::sync::Arc::clone(&ca.value.certs)),
            (None, None) => Trust::Bundled,
        }
    }
}

/// A bearer token. Its `Debug` is redacted so it cannot leak through a log line.
#[derive(Clone, PartialEq)]
pub struct Token(String);

impl Token {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The CAs to trust instead of the bundled Mozilla roots.
#[derive(Debug, Clone)]
pub struct CaBundle {
    pub path: PathBuf,
    /// Shared with the clients that trust them, not copied.
    pub certs: std::sync::Arc<Vec<ureq::tls::Certificate<'static>>>,
}

/// Everything `load` reads from the process, passed in so tests can fake it.
pub struct Inputs<'a> {
    pub flags: Layer,
    /// `--config PATH`.
    pub config_flag: Option<PathBuf>,
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
    /// The names of every environment variable, for unknown `STACKSENSE_*` ones.
    pub env_names: Vec<String>,
    pub home: Option<PathBuf>,
    /// The file looked at when there is no per-user one ([`SYSTEM_FILE`]).
    pub system_file: PathBuf,
}

/// Reads the environment and the files the settings point at, and
/// validates all. Warnings (unknown keys, loose file permissions,
/// surprising combinations) come back either way, for the caller to log:
/// one can be why the config is incomplete.
pub fn load(inputs: Inputs) -> (Result<Config, Vec<ConfigError>>, Vec<String>) {
    let mut warnings = Vec::new();
    let config = load_into(inputs, &mut warnings);
    (config, warnings)
}

fn load_into(inputs: Inputs, warnings: &mut Vec<String>) -> Result<Config, Vec<ConfigError>> {
    warnings.extend(env::unknown_variables(
        inputs.env_names.iter().map(String::as_str),
    ));
    let env = env::layer(inputs.env)?;
    let (file_layer, file, found) = locate::read(&inputs)?;
    warnings.extend(found);
    let (mut r, mut token) = resolve(&inputs.flags, &env, &file_layer, &file)?;
    // A systemd credential is the unit's own word, so it wins over the
    // config file (whose token_file, /etc/stacksense/token, is for root's
    // `--check`: the service's dynamic user may not read it) but not over
    // a flag or a variable. systemd sets an absolute CREDENTIALS_DIRECTORY;
    // an empty or relative one (inherited, or a typo) would read ./token
    // from wherever we run.
    let from_file = |spec: &TokenSpec| match spec {
        TokenSpec::Inline(raw) | TokenSpec::File(raw) => matches!(raw.source, Source::File { .. }),
    };
    if token.as_ref().is_none_or(from_file)
        && let Some(dir) = (inputs.env)("CREDENTIALS_DIRECTORY").map(PathBuf::from)
        && dir.is_absolute()
    {
        let path = dir.join(CREDENTIAL_NAME);
        if path.exists() {
            let text = path.to_string_lossy().into_owned();
            token = Some(TokenSpec::File(Raw::new(text, Source::Credential(path))));
        }
    }
    let mut errors = Vec::new();
    let chosen = api::choose(&r.api, r.server_id.as_ref(), token.is_some())
        .map_err(|e| errors.push(e))
        .ok();
    let (token, token_file) = match token {
        None => (None, None),
        Some(spec) => match credentials::read_token(spec) {
            Ok((token, file, warning)) => {
                warnings.extend(warning);
                (Some(token), file)
            }
            Err(e) => {
                errors.push(e);
                (None, None)
            }
        },
    };
    let ca = match &r.ca_file {
        None => None,
        Some(raw) => credentials::read_ca(raw).map_err(|e| errors.push(e)).ok(),
    };
    let proxy = proxy::choose(inputs.env, &r.api_url.value)
        .map_err(|e| errors.push(e))
        .unwrap_or(Proxying::Direct);
    let Some((api, api_why)) = chosen else {
        return Err(errors);
    };
    pushes::settle(&mut r, api.value);
    errors.extend(pushes::errors(&r, api.value));
    if !errors.is_empty() {
        return Err(errors);
    }
    warnings.extend(pushes::warnings(&r));
    warnings.extend(combination_warnings(
        &r,
        api.value,
        token.is_some(),
        ca.as_ref(),
    ));
    let id = r.server_id.as_ref().map(|s| s.value.as_str());
    Ok(Config {
        heartbeat_url: api::beat_url(api.value, &r.api_url.value, id),
        ping_url: (api.value == Api::Agent).then(|| api::ping_url(&r.api_url.value)),
        settings: r,
        api,
        api_why,
        token,
        token_file,
        ca,
        proxy,
        file,
    })
}

/// A path for a message: it came from outside, so it is escaped.
fn shown(path: &Path) -> String {
    text::untrusted(&path.display().to_string())
}

/// Settings that are valid one by one but surprising together.
fn combination_warnings(
    r: &Settings,
    api: Api,
    has_token: bool,
    ca: Option<&Setting<CaBundle>>,
) -> Vec<String> {
    let mut out = Vec::new();
    // The default timeout quietly becomes the interval when that is shorter;
    // a timeout the user chose is worth a word.
    if r.timeout.value >= r.interval.value && r.timeout.source != Source::Default {
        out.push(format!(
            "timeout ({}) is not shorter than interval ({}): each attempt is cut to the time \
             left before the next beat; lower timeout or raise interval",
            format_duration(r.timeout.value),
            format_duration(r.interval.value)
        ));
    }
    if has_token && value::sends_in_clear(&r.api_url.value) {
        out.push(format!(
            "the token will be sent in clear text over http:// to {}; use https:// \
             (plain http is only safe to a loopback address)",
            text::untrusted(&r.api_url.value)
        ));
    }
    if let Some(base) = value::api_url_base_guess(&r.api_url.value) {
        out.push(format!(
            "api_url (from {}) {} already ends in an API path; the agent appends {} \
             itself: did you mean {}?",
            r.api_url.source,
            text::untrusted(&r.api_url.value),
            match api {
                Api::Agent => "/api/agent/heartbeat/",
                Api::Legacy => "/api/heartbeat/<server_id>/",
            },
            text::untrusted(&base)
        ));
    }
    out.extend(api::warnings(api, r.server_id.as_ref()));
    if !r.verify_tls.value {
        out.push(format!(
            "verify_tls (from {}) is false: ignored, this agent always verifies the server; \
             for a self-signed server set pinned_pubkey (stacksense-heartbeat --check prints \
             the line to add)",
            r.verify_tls.source
        ));
    }
    if let (Some(pins), Some(ca)) = (&r.pins, ca) {
        out.push(format!(
            "ca_file (from {}) is not used: pinned_pubkey (from {}) decides which server is trusted",
            ca.source, pins.source
        ));
    }
    if r.pins.is_some() && !r.api_url.value.to_ascii_lowercase().starts_with("https:") {
        out.push(
            "pinned_pubkey is set but api_url is http://: nothing is encrypted, \
                  so there is no key to pin; use https://"
                .into(),
        );
    }
    if let (None, Some(ca)) = (&r.pins, ca)
        && let Some(host) = r
            .api_url
            .value
            .parse::<ureq::http::Uri>()
            .ok()
            .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string()))
        && tls::only_the_servers_own_ca_cert(&ca.value.certs, &host)
    {
        out.push(format!(
            "ca_file {} holds only CA certificates (CA:TRUE), one of them for {}: if the server \
             presents that certificate itself, every beat will fail (TLS clients refuse a CA \
             certificate as a server's own); pin its key instead (pinned_pubkey; --check \
             prints it), or give the server a certificate signed by it",
            shown(&ca.value.path),
            text::untrusted(&host)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn token_debug_is_redacted() {
        assert_eq!(format!("{:?}", Token("s3cret".into())), "Token(<redacted>)");
    }
}
