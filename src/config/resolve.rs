//! The pure part of loading: each setting from the highest layer that has
//! it (flag > environment > file > default), validated, with every error
//! collected rather than the first.

use super::*;

/// [`Settings`] and how each field is picked, from the table's columns
/// after `=>`.
macro_rules! settings_and_picking {
    ($(
        $key:ident { $($spec:tt)* }
        => $(fills $field:ident: $ty:ty = $pick:ident($($arg:expr),*),)? shown $shown:ident;
    )*) => {
        /// Every setting with a field of its own, layered and validated;
        /// the CA file is still only a path and the API may still be auto.
        #[derive(Debug, PartialEq)]
        pub struct Settings {
            $($(pub $field: $ty,)?)*
        }

        fn pick_all(p: &mut Picking) -> Settings {
            Settings {
                $($($field: p.$pick(Key::$key, $($arg),*),)?)*
            }
        }
    };
}

settings_table!(settings_and_picking);

/// The pure part of loading: pick each setting from the highest layer that
/// has it and validate it, and the token with its file. Collects every
/// error rather than stopping at the first.
pub fn resolve(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
    file_status: &ConfigFile,
) -> Result<(Settings, Option<TokenSpec>), Vec<ConfigError>> {
    let mut p = Picking {
        layers: [flags, env, file],
        file: file_status,
        errors: Vec::new(),
    };
    let settings = pick_all(&mut p);
    let token = p.token();
    if p.errors.is_empty() {
        Ok((settings, token))
    } else {
        Err(p.errors)
    }
}

/// The layers, highest first, and the errors found so far. A value that
/// fails to parse is an error and reads as its default meanwhile: the
/// load fails anyway, after every setting has been looked at.
struct Picking<'a> {
    layers: [&'a Layer; 3],
    /// Where the file was looked for, for the error of a missing api_url.
    file: &'a ConfigFile,
    errors: Vec<ConfigError>,
}

impl Picking<'_> {
    /// The value of the highest layer that has `key`.
    fn raw(&self, key: Key) -> Option<Raw> {
        self.layers.iter().find_map(|l| l.get(key).cloned())
    }

    /// `parse` of the highest layer's value, or `default` when none has one.
    fn or_default<T>(
        &mut self,
        key: Key,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Setting<T> {
        let Some(raw) = self.raw(key) else {
            return Setting {
                value: default,
                source: Source::Default,
            };
        };
        match parse(&raw.text) {
            Ok(value) => Setting {
                value,
                source: raw.source,
            },
            Err(msg) => {
                self.errors.push(ConfigError::value(key, &raw, msg));
                Setting {
                    value: default,
                    source: raw.source,
                }
            }
        }
    }

    /// A setting with no default: None when no layer has it, or it is wrong.
    fn optional<T>(
        &mut self,
        key: Key,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Setting<T>> {
        let raw = self.raw(key)?;
        match parse(&raw.text) {
            Ok(value) => Some(Setting {
                value,
                source: raw.source,
            }),
            Err(msg) => {
                self.errors.push(ConfigError::value(key, &raw, msg));
                None
            }
        }
    }

    /// Seconds within the range the settings table gives `key`.
    fn seconds(&mut self, key: Key, default: Duration) -> Setting<Duration> {
        let (min, max) = key.seconds_range().unwrap_or((0.0, f64::MAX));
        self.or_default(key, default, |t| value::seconds(t, min, max))
    }

    /// The one required setting; its error says every way to give it.
    fn api_url(&mut self, key: Key) -> Setting<String> {
        if let Some(url) = self.optional(key, value::api_url) {
            return url;
        }
        if self.raw(key).is_none() {
            let file = match self.file {
                ConfigFile::Loaded(p) | ConfigFile::Unreadable(p) => format!(" in {}", shown(p)),
                ConfigFile::Missing(paths) => match paths.last() {
                    Some(p) => format!(" in {}", shown(p)),
                    None => " in the config file".into(),
                },
            };
            self.errors.push(ConfigError {
                about: About::Setting(key),
                source: None,
                message: format!(
                    "not set; expected --api-url, env STACKSENSE_API_URL (or STACKSENSE_URL) \
                     or \"api_url\"{file}: the StackSense server's base URL"
                ),
            });
        }
        Setting {
            value: String::new(),
            source: Source::Default,
        }
    }

    /// The token and its file are one setting: the highest layer that
    /// gives either wins, and a layer that gives both is ambiguous.
    fn token(&mut self) -> Option<TokenSpec> {
        for layer in self.layers {
            match (layer.get(Key::Token), layer.get(Key::TokenFile)) {
                (None, None) => continue,
                (Some(t), Some(f)) => self.errors.push(ConfigError {
                    about: About::Setting(Key::Token),
                    source: None,
                    message: format!("both {} and {} are set; set only one", t.source, f.source),
                }),
                (Some(t), None) => return Some(TokenSpec::Inline(t.clone())),
                (None, Some(f)) => return Some(TokenSpec::File(f.clone())),
            }
            return None;
        }
        None
    }

    /// Each check of the list (one per line), with one error per bad one.
    fn checks(&mut self, key: Key) -> Setting<Vec<Check>> {
        let Some(raw) = self.raw(key) else {
            return Setting {
                value: Vec::new(),
                source: Source::Default,
            };
        };
        let mut checks = Vec::new();
        for line in raw.text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match check_spec::parse(line) {
                Ok(check) => checks.push(check),
                Err(problem) => self.errors.push(ConfigError {
                    about: About::Setting(key),
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
        let (r, token) = resolve(
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
        assert_eq!(token, None);
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
        let (r, _) = resolve(&flags, &env, &file, &loaded()).unwrap();
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
        let (_, token) = resolve(&Layer::default(), &env, &file, &loaded()).unwrap();
        assert!(matches!(token, Some(TokenSpec::Inline(ref t)) if t.text == "s3cret"));
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
