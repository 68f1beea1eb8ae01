//! Flags, environment and the JSON file, layered into one validated [`Config`].
//!
//! Precedence, highest first: flag > environment > file > default. Nothing
//! past this module reads the environment or a config file.

mod env;
mod file;
mod keys;
mod proxy;
mod report;
mod source;
pub mod value;

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::parse as parse_file;
pub use keys::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Flag, Key, Kind, help_rows};
pub use proxy::Proxying;
pub use report::{check_report, check_results, startup_line};
pub use source::{Layer, Raw, Setting, Source};

use crate::body::Reporting;
use crate::checks::spec::{self as check_spec, Check};
use crate::clock::format_duration;
use crate::files::read_small_file;
use crate::text::{self, describe_io};
pub const DEFAULT_FILE_NAME: &str = ".stacksense_heartbeat.conf";
/// The file name `LoadCredential=token:...` gives the token under systemd.
pub const CREDENTIAL_NAME: &str = "token";

#[derive(Debug)]
pub struct Config {
    pub server_id: Setting<String>,
    pub api_url: Setting<String>,
    pub heartbeat_url: String,
    pub interval: Setting<Duration>,
    pub timeout: Setting<Duration>,
    pub token: Option<Setting<Token>>,
    pub ca: Option<Setting<CaBundle>>,
    pub splay: Setting<bool>,
    pub keepalive: Setting<bool>,
    /// The checks that gate each beat; none configured is an empty list.
    pub health: Setting<Vec<Check>>,
    pub report: Setting<Reporting>,
    pub proxy: Proxying,
    pub file: ConfigFile,
}

/// Which config file was looked at, for `--check`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigFile {
    /// No home directory and no `--config`/`STACKSENSE_CONFIG`.
    NoneLookedFor,
    Missing(PathBuf),
    /// The default file, which we may not read (a warning, not an error).
    Unreadable(PathBuf),
    Loaded(PathBuf),
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

/// A configuration error: which setting, where its value came from, what was expected.
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
    fn value(key: Key, raw: &Raw, message: String) -> ConfigError {
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

    fn file(message: String) -> ConfigError {
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

/// Everything `load` reads from the process, passed in so tests can fake it.
pub struct Inputs<'a> {
    pub flags: Layer,
    /// `--config PATH`.
    pub config_flag: Option<PathBuf>,
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
    pub home: Option<PathBuf>,
}

/// Reads the environment and the files the settings point at, and validates all.
/// Warnings (unknown keys, loose file permissions) go to the log.
pub fn load(inputs: Inputs) -> Result<Config, Vec<ConfigError>> {
    let env = env::layer(inputs.env)?;
    let (file_layer, file) = read_config_file(&inputs)?;
    let mut resolved = resolve(&inputs.flags, &env, &file_layer, &file)?;
    // systemd sets an absolute CREDENTIALS_DIRECTORY; an empty or relative
    // one (inherited, or a typo) would read ./token from wherever we run.
    if resolved.token.is_none()
        && let Some(dir) = (inputs.env)("CREDENTIALS_DIRECTORY").map(PathBuf::from)
        && dir.is_absolute()
    {
        let path = dir.join(CREDENTIAL_NAME);
        if path.exists() {
            let text = path.to_string_lossy().into_owned();
            resolved.token = Some(TokenSpec::File(Raw::new(text, Source::Credential(path))));
        }
    }

    warn_about_combinations(&resolved);
    warn_if_api_url_has_the_endpoint(&resolved.api_url);
    let mut errors = Vec::new();
    let r = resolved;
    let token = match r.token {
        None => None,
        Some(spec) => read_token(spec).map_err(|e| errors.push(e)).ok(),
    };
    let ca = match r.ca_file {
        None => None,
        Some(raw) => read_ca(&raw).map_err(|e| errors.push(e)).ok(),
    };
    if let Some(ca) = &ca {
        warn_if_only_the_servers_own_ca_cert(&ca.value, &r.api_url.value);
    }
    let proxy = proxy::choose(inputs.env, &r.api_url.value)
        .map_err(|e| errors.push(e))
        .unwrap_or(Proxying::Direct);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
        heartbeat_url: value::heartbeat_url(&r.api_url.value, &r.server_id.value),
        server_id: r.server_id,
        api_url: r.api_url,
        interval: r.interval,
        timeout: r.timeout,
        token,
        ca,
        splay: r.splay,
        keepalive: r.keepalive,
        health: r.health,
        report: r.report,
        proxy,
        file,
    })
}

fn read_config_file(inputs: &Inputs) -> Result<(Layer, ConfigFile), Vec<ConfigError>> {
    let from_env = (inputs.env)("STACKSENSE_CONFIG")
        .and_then(|p| p.into_string().ok())
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    let (path, explicit) = match (&inputs.config_flag, from_env) {
        (Some(path), _) => (path.clone(), Some(Source::Flag("--config"))),
        (None, Some(path)) => (PathBuf::from(path), Some(Source::Env("STACKSENSE_CONFIG"))),
        (None, None) => match &inputs.home {
            Some(home) => (home.join(DEFAULT_FILE_NAME), None),
            None => return Ok((Layer::default(), ConfigFile::NoneLookedFor)),
        },
    };
    let text = match read_small_file(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok((Layer::default(), ConfigFile::Missing(path)));
        }
        // The default file is optional: a service user whose HOME it cannot
        // read still runs on flags and environment.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && explicit.is_none() => {
            log::warn!(
                "cannot read the default config file {}: {}; going on without it \
                 (name a file with --config to make this an error)",
                shown(&path),
                describe_io(&e)
            );
            return Ok((Layer::default(), ConfigFile::Unreadable(path)));
        }
        Err(e) => {
            return Err(vec![ConfigError {
                about: About::ConfigFile,
                source: explicit,
                message: format!("cannot read {}: {}", shown(&path), describe_io(&e)),
            }]);
        }
    };
    let (layer, warnings) = file::parse(&text, &path)?;
    for warning in warnings {
        log::warn!("{warning}");
    }
    warn_if_writable_by_others(&path);
    if layer.get(Key::Token).is_some() {
        warn_if_world_readable(&path, "config file with a token");
    }
    Ok((layer, ConfigFile::Loaded(path)))
}

/// A self-signed certificate made with `openssl req -x509` is CA:TRUE, and
/// TLS clients refuse a CA certificate as the server's own: every beat
/// would fail although `--ca-file` names exactly the server's certificate.
/// Says so when every certificate in the file is a CA and one of them
/// names the server.
fn warn_if_only_the_servers_own_ca_cert(ca: &CaBundle, api_url: &str) {
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let Some(host) = api_url
        .parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string()))
    else {
        return;
    };
    let Ok(name) = ServerName::try_from(host.as_str()) else {
        return;
    };
    let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let mut names_server = false;
    for cert in ca.certs.iter() {
        let der = CertificateDer::from(cert.der());
        let (Ok(ee), Ok(anchor)) = (
            webpki::EndEntityCert::try_from(&der),
            webpki::anchor_from_trusted_cert(&der),
        ) else {
            return;
        };
        // Verified as a server certificate against itself: a CA says so.
        let anchors = [anchor];
        let as_server = ee.verify_for_usage(
            algs.all,
            &anchors,
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        );
        if !matches!(as_server, Err(webpki::Error::CaUsedAsEndEntity)) {
            return;
        }
        names_server |= ee.verify_is_valid_for_subject_name(&name).is_ok();
    }
    if names_server {
        log::warn!(
            "ca_file {} holds only CA certificates (CA:TRUE), one of them for {}: if the server \
             presents that certificate itself, every beat will fail (TLS clients refuse a CA \
             certificate as a server's own); give the server a certificate signed by it, or make \
             the self-signed one with -addext basicConstraints=critical,CA:FALSE",
            shown(&ca.path),
            text::untrusted(&host)
        );
    }
}

/// A path for a message: it came from outside, so it is escaped.
fn shown(path: &Path) -> String {
    text::untrusted(&path.display().to_string())
}

/// Settings that are valid one by one but surprising together.
fn warn_about_combinations(r: &Resolved) {
    // The default timeout quietly becomes the interval when that is shorter;
    // a timeout the user chose is worth a word.
    if r.timeout.value >= r.interval.value && r.timeout.source != Source::Default {
        log::warn!(
            "timeout ({}) is not shorter than interval ({}): each attempt is cut to the time \
             left before the next beat; lower timeout or raise interval",
            format_duration(r.timeout.value),
            format_duration(r.interval.value)
        );
    }
    if r.token.is_some() && value::sends_in_clear(&r.api_url.value) {
        log::warn!(
            "the token will be sent in clear text over http:// to {}; use https:// \
             (plain http is only safe to a loopback address)",
            text::untrusted(&r.api_url.value)
        );
    }
}

/// `api_url` is the base; the agent appends `/api/heartbeat/{id}/`. A pasted
/// endpoint (or a base ending in `/api`) doubles the path and every beat
/// gets a 404, so say so at start rather than at the first rejection.
fn warn_if_api_url_has_the_endpoint(api_url: &Setting<String>) {
    if let Some(base) = value::api_url_base_guess(&api_url.value) {
        log::warn!(
            "api_url (from {}) {} already ends in the API path; the agent appends \
             /api/heartbeat/<server_id>/ itself: did you mean {}?",
            api_url.source,
            text::untrusted(&api_url.value),
            text::untrusted(&base)
        );
    }
}

/// How the token is given: inline (env/file) or as a path to read.
#[derive(Debug, PartialEq)]
enum TokenSpec {
    Inline(Raw),
    File(Raw),
}

/// Settings after layering and value checks, before the token and CA files are read.
#[derive(Debug, PartialEq)]
struct Resolved {
    server_id: Setting<String>,
    api_url: Setting<String>,
    interval: Setting<Duration>,
    timeout: Setting<Duration>,
    token: Option<TokenSpec>,
    ca_file: Option<Raw>,
    splay: Setting<bool>,
    keepalive: Setting<bool>,
    health: Setting<Vec<Check>>,
    report: Setting<Reporting>,
}

/// The pure part of loading: pick each setting from the highest layer that
/// has it and validate it. Collects every error rather than stopping at the first.
fn resolve(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
    file_status: &ConfigFile,
) -> Result<Resolved, Vec<ConfigError>> {
    let layers = [flags, env, file];
    let pick = |key: Key| layers.iter().find_map(|l| l.get(key).cloned());
    let mut errors = Vec::new();

    let file_hint = match file_status {
        ConfigFile::Loaded(p) | ConfigFile::Missing(p) | ConfigFile::Unreadable(p) => {
            format!(" in {}", shown(p))
        }
        ConfigFile::NoneLookedFor => " in the config file".into(),
    };
    let mut required = |key: Key, parse: fn(&str) -> Result<String, String>| {
        let raw = pick(key);
        if raw.is_none() {
            let flag = match key.spec().flag {
                Flag::Value(flag, _) | Flag::Sets(flag, _) => format!("{flag}, "),
                Flag::None => String::new(),
            };
            errors.push(ConfigError {
                about: About::Setting(key),
                source: None,
                message: format!(
                    "not set; expected {flag}env {} or \"{}\"{file_hint}",
                    key.env(),
                    key.name()
                ),
            });
        }
        raw.and_then(|raw| validate(key, raw, parse, &mut errors))
    };
    let server_id = required(Key::ServerId, value::server_id);
    let api_url = required(Key::ApiUrl, value::api_url);

    let seconds = |key: Key| {
        let (min, max) = key.seconds_range().unwrap_or((0.0, f64::MAX));
        move |t: &str| value::seconds(t, min, max)
    };
    let interval = or_default(
        Key::Interval,
        pick(Key::Interval),
        DEFAULT_INTERVAL,
        &mut errors,
        seconds(Key::Interval),
    );
    let timeout = or_default(
        Key::Timeout,
        pick(Key::Timeout),
        DEFAULT_TIMEOUT,
        &mut errors,
        seconds(Key::Timeout),
    );
    let splay = or_default(
        Key::Splay,
        pick(Key::Splay),
        true,
        &mut errors,
        value::boolean,
    );
    let keepalive = or_default(
        Key::Keepalive,
        pick(Key::Keepalive),
        true,
        &mut errors,
        value::boolean,
    );

    // The token and its file are one setting: the highest layer that gives
    // either wins, and a layer that gives both is ambiguous.
    let mut token = None;
    for layer in layers {
        match (layer.get(Key::Token), layer.get(Key::TokenFile)) {
            (None, None) => continue,
            (Some(t), Some(f)) => errors.push(ConfigError {
                about: About::Setting(Key::Token),
                source: None,
                message: format!("both {} and {} are set; set only one", t.source, f.source),
            }),
            (Some(t), None) => token = Some(TokenSpec::Inline(t.clone())),
            (None, Some(f)) => token = Some(TokenSpec::File(f.clone())),
        }
        break;
    }

    let health = checks(pick(Key::Health), &mut errors);
    let report = or_default(
        Key::Report,
        pick(Key::Report),
        Reporting::default(),
        &mut errors,
        Reporting::parse,
    );

    match (
        server_id, api_url, interval, timeout, splay, keepalive, report,
    ) {
        (
            Some(server_id),
            Some(api_url),
            Some(interval),
            Some(timeout),
            Some(splay),
            Some(keepalive),
            Some(report),
        ) if errors.is_empty() => Ok(Resolved {
            server_id,
            api_url,
            interval,
            timeout,
            token,
            ca_file: pick(Key::CaFile),
            splay,
            keepalive,
            health,
            report,
        }),
        _ => Err(errors),
    }
}

/// Each check of the list (one per line of `raw`), with one error per bad one.
fn checks(raw: Option<Raw>, errors: &mut Vec<ConfigError>) -> Setting<Vec<Check>> {
    let Some(raw) = raw else {
        return Setting {
            value: Vec::new(),
            source: Source::Default,
        };
    };
    let mut checks = Vec::new();
    for line in raw.text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match check_spec::parse(line) {
            Ok(check) => checks.push(check),
            Err(problem) => errors.push(ConfigError {
                about: About::Setting(Key::Health),
                source: Some(raw.source.clone()),
                message: format!("\"{}\" {problem}", text::untrusted_max(line, 80)),
            }),
        }
    }
    Setting {
        value: checks,
        source: raw.source,
    }
}

/// The setting from `raw`, or an error naming it and its source.
fn validate<T>(
    key: Key,
    raw: Raw,
    parse: impl Fn(&str) -> Result<T, String>,
    errors: &mut Vec<ConfigError>,
) -> Option<Setting<T>> {
    match parse(&raw.text) {
        Ok(value) => Some(Setting {
            value,
            source: raw.source,
        }),
        Err(msg) => {
            errors.push(ConfigError::value(key, &raw, msg));
            None
        }
    }
}

/// Like [`validate`], with `default` when no layer sets it.
fn or_default<T>(
    key: Key,
    raw: Option<Raw>,
    default: T,
    errors: &mut Vec<ConfigError>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Setting<T>> {
    match raw {
        None => Some(Setting {
            value: default,
            source: Source::Default,
        }),
        Some(raw) => validate(key, raw, parse, errors),
    }
}

fn read_token(spec: TokenSpec) -> Result<Setting<Token>, ConfigError> {
    let (text, source) = match spec {
        TokenSpec::Inline(raw) => (raw.text, raw.source),
        TokenSpec::File(raw) => {
            let path = Path::new(&raw.text);
            // The path is not shown (see ConfigError::value); its source is.
            let text = read_small_file(path).map_err(|e| ConfigError {
                about: About::Setting(Key::TokenFile),
                source: Some(raw.source.clone()),
                message: format!(
                    "cannot read the file it names: {} (the value is not shown: it may be a secret)",
                    describe_io(&e)
                ),
            })?;
            if !matches!(raw.source, Source::Credential(_)) {
                warn_if_world_readable(path, "token file");
            }
            (text, raw.source)
        }
    };
    // The token's text never goes into a message, not even a bad one.
    let value = value::token(&text).map_err(|message| ConfigError {
        about: About::Setting(Key::Token),
        source: Some(source.clone()),
        message,
    })?;
    // From here on no line or body we write can show it.
    text::hide(&value);
    Ok(Setting {
        value: Token(value),
        source,
    })
}

fn read_ca(raw: &Raw) -> Result<Setting<CaBundle>, ConfigError> {
    let path = PathBuf::from(&raw.text);
    let error = |message: String| ConfigError {
        about: About::Setting(Key::CaFile),
        source: Some(raw.source.clone()),
        message,
    };
    let text = read_small_file(&path)
        .map_err(|e| error(format!("cannot read {}: {}", shown(&path), describe_io(&e))))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(text.as_bytes()) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => {
                let why = text::untrusted(&e.to_string());
                return Err(error(format!("{} is not valid PEM: {why}", shown(&path))));
            }
        }
    }
    if certs.is_empty() {
        return Err(error(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            shown(&path)
        )));
    }
    // ureq would skip certificates it cannot use; we would rather say so now.
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
        store.add(der).map_err(|e| {
            error(format!(
                "certificate {} in {} cannot be used as a CA: {e}",
                i + 1,
                shown(&path)
            ))
        })?;
    }
    Ok(Setting {
        value: CaBundle {
            path,
            certs: std::sync::Arc::new(certs),
        },
        source: raw.source.clone(),
    })
}

fn warn_if_world_readable(path: &Path, what: &str) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o004 != 0 {
            log::warn!(
                "{what} {} is readable by every user (mode {:04o}); chmod 600 it",
                shown(path),
                mode & 0o7777
            );
        }
    }
}

/// Whoever can write the config file can point `api_url` and `token_file`
/// anywhere.
fn warn_if_writable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 {
            log::warn!(
                "config file {} is writable by {} (mode {:04o}): whoever can write it can send \
                 the token anywhere; chmod go-w it",
                shown(path),
                if mode & 0o002 != 0 {
                    "every user"
                } else {
                    "its group"
                },
                mode & 0o7777
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_source() -> Source {
        Source::File {
            path: "/f".into(),
            line: Some(2),
        }
    }

    fn minimal(source: Source) -> Layer {
        Layer::default()
            .with(Key::ServerId, "7", source.clone())
            .with(Key::ApiUrl, "http://m", source)
    }

    fn loaded() -> ConfigFile {
        ConfigFile::Loaded("/f".into())
    }

    #[test]
    fn defaults_fill_what_no_layer_sets() {
        let r = resolve(
            &Layer::default(),
            &Layer::default(),
            &minimal(file_source()),
            &loaded(),
        )
        .unwrap();
        assert_eq!(r.interval.value, DEFAULT_INTERVAL);
        assert_eq!(r.interval.source, Source::Default);
        assert_eq!(r.timeout.value, DEFAULT_TIMEOUT);
        assert!(r.splay.value);
        assert_eq!(r.token, None);
        assert_eq!(r.server_id.source, file_source());
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let file = minimal(file_source())
            .with(Key::Interval, "10", file_source())
            .with(Key::Timeout, "5", file_source())
            .with(Key::Splay, "true", file_source());
        let env = Layer::default()
            .with(Key::Interval, "20", Source::Env("STACKSENSE_INTERVAL"))
            .with(Key::Timeout, "6", Source::Env("STACKSENSE_TIMEOUT"));
        let flags = Layer::default().with(Key::Interval, "40", Source::Flag("--interval"));
        let r = resolve(&flags, &env, &file, &loaded()).unwrap();
        assert_eq!(r.interval.value, Duration::from_secs(40));
        assert_eq!(r.interval.source, Source::Flag("--interval"));
        assert_eq!(r.timeout.value, Duration::from_secs(6));
        assert_eq!(r.timeout.source, Source::Env("STACKSENSE_TIMEOUT"));
        assert_eq!(r.splay.source, file_source());
    }

    #[test]
    fn every_error_is_reported_with_its_setting_and_source() {
        let env = Layer::default()
            .with(Key::Interval, "abc", Source::Env("STACKSENSE_INTERVAL"))
            .with(Key::ApiUrl, "ftp://x", Source::Env("STACKSENSE_API_URL"));
        let errs = resolve(&Layer::default(), &env, &Layer::default(), &loaded()).unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].starts_with("server_id: not set; expected --server-id, env STACKSENSE_SERVER_ID or \"server_id\" in /f"));
        assert!(
            text[1]
                .starts_with("api_url (from env STACKSENSE_API_URL): \"ftp://x\" has scheme ftp:")
        );
        assert!(
            text[2].starts_with("interval (from env STACKSENSE_INTERVAL): \"abc\" is not a number")
        );
    }

    #[test]
    fn ranges_come_from_the_settings_table() {
        let flags =
            minimal(Source::Flag("--x")).with(Key::Timeout, "3601", Source::Flag("--timeout"));
        let errs = resolve(&flags, &Layer::default(), &Layer::default(), &loaded()).unwrap_err();
        assert!(
            errs[0].to_string().contains("from 0.1 to 3600"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn a_token_from_a_higher_layer_replaces_a_token_file_below() {
        let file = minimal(file_source()).with(Key::TokenFile, "/t", file_source());
        let env = Layer::default().with(Key::Token, "s3cret", Source::Env("STACKSENSE_TOKEN"));
        let r = resolve(&Layer::default(), &env, &file, &loaded()).unwrap();
        assert!(matches!(r.token, Some(TokenSpec::Inline(ref t)) if t.text == "s3cret"));
    }

    #[test]
    fn token_and_token_file_in_one_layer_is_an_error() {
        let env = minimal(Source::Env("x"))
            .with(Key::Token, "s3cret", Source::Env("STACKSENSE_TOKEN"))
            .with(Key::TokenFile, "/t", Source::Env("STACKSENSE_TOKEN_FILE"));
        let errs = resolve(&Layer::default(), &env, &Layer::default(), &loaded()).unwrap_err();
        assert!(errs[0].to_string().contains("set only one"));
        assert!(!errs[0].to_string().contains("s3cret"));
    }

    #[test]
    fn bad_tokens_are_reported_without_their_text() {
        let e = read_token(TokenSpec::Inline(Raw::new(
            "s3cret with space",
            Source::Env("STACKSENSE_TOKEN"),
        )))
        .unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(
            e.to_string()
                .starts_with("token (from env STACKSENSE_TOKEN)")
        );
    }

    #[test]
    fn token_debug_is_redacted() {
        assert_eq!(format!("{:?}", Token("s3cret".into())), "Token(<redacted>)");
    }
}
