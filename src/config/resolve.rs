//! The pure part of loading: each setting from the highest layer that has
//! it (flag > environment > file > default), validated, with every error
//! collected rather than the first.

use super::*;

/// Settings after layering and value checks, before the token and CA files are read.
#[derive(Debug, PartialEq)]
pub struct Resolved {
    pub api: Setting<api::Choice>,
    pub server_id: Option<Setting<String>>,
    pub api_url: Setting<String>,
    pub interval: Setting<Duration>,
    pub timeout: Setting<Duration>,
    pub token: Option<TokenSpec>,
    pub ca_file: Option<Raw>,
    pub pins: Option<Setting<Pins>>,
    pub verify_tls: Setting<bool>,
    pub splay: Setting<bool>,
    pub keepalive: Setting<bool>,
    pub health: Setting<Vec<Check>>,
    pub report: Setting<Reporting>,
}

/// The pure part of loading: pick each setting from the highest layer that
/// has it and validate it. Collects every error rather than stopping at the first.
pub fn resolve(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
    file_status: &ConfigFile,
) -> Result<Resolved, Vec<ConfigError>> {
    let layers = [flags, env, file];
    let pick = |key: Key| layers.iter().find_map(|l| l.get(key).cloned());
    let mut errors = Vec::new();

    let file_hint = match file_status {
        ConfigFile::Loaded(p) | ConfigFile::Unreadable(p) => format!(" in {}", shown(p)),
        ConfigFile::Missing(paths) => match paths.last() {
            Some(p) => format!(" in {}", shown(p)),
            None => " in the config file".into(),
        },
    };
    let api_url = match pick(Key::ApiUrl) {
        Some(raw) => validate(Key::ApiUrl, raw, value::api_url, &mut errors),
        None => {
            errors.push(ConfigError {
                about: About::Setting(Key::ApiUrl),
                source: None,
                message: format!(
                    "not set; expected --api-url, env STACKSENSE_API_URL (or STACKSENSE_URL) \
                     or \"api_url\"{file_hint}: the StackSense server's base URL"
                ),
            });
            None
        }
    };
    let server_id = pick(Key::ServerId)
        .and_then(|raw| validate(Key::ServerId, raw, value::server_id, &mut errors));
    let pins = pick(Key::PinnedPubkey)
        .and_then(|raw| validate(Key::PinnedPubkey, raw, tls::parse_pins, &mut errors));

    let seconds = |key: Key| {
        let (min, max) = key.seconds_range().unwrap_or((0.0, f64::MAX));
        move |t: &str| value::seconds(t, min, max)
    };
    let mut setting = |key: Key, default, parse: &dyn Fn(&str) -> Result<_, String>| {
        or_default(key, pick(key), default, &mut errors, parse)
    };
    let interval = setting(Key::Interval, DEFAULT_INTERVAL, &seconds(Key::Interval));
    let timeout = setting(Key::Timeout, DEFAULT_TIMEOUT, &seconds(Key::Timeout));
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
    let verify_tls = or_default(
        Key::VerifyTls,
        pick(Key::VerifyTls),
        true,
        &mut errors,
        value::boolean,
    );
    let api = or_default(
        Key::Api,
        pick(Key::Api),
        api::Choice::Auto,
        &mut errors,
        api::parse,
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
        api, api_url, interval, timeout, splay, keepalive, verify_tls, report,
    ) {
        (
            Some(api),
            Some(api_url),
            Some(interval),
            Some(timeout),
            Some(splay),
            Some(keepalive),
            Some(verify_tls),
            Some(report),
        ) if errors.is_empty() => Ok(Resolved {
            api,
            server_id,
            api_url,
            interval,
            timeout,
            token,
            ca_file: pick(Key::CaFile),
            pins,
            verify_tls,
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
        assert_eq!(r.server_id.unwrap().source, file_source());
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
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0]
                .starts_with("api_url (from env STACKSENSE_API_URL): \"ftp://x\" has scheme ftp:")
        );
        assert!(
            text[1].starts_with("interval (from env STACKSENSE_INTERVAL): \"abc\" is not a number")
        );
        let errs = resolve(
            &Layer::default(),
            &Layer::default(),
            &Layer::default(),
            &loaded(),
        )
        .unwrap_err();
        assert!(errs[0].to_string().starts_with(
            "api_url: not set; expected --api-url, env STACKSENSE_API_URL (or STACKSENSE_URL) or \"api_url\" in /f"
        ));
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
}
