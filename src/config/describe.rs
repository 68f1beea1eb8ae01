//! The configuration as a person reads it: the start-up line and `--check`.

use std::time::Duration;

use super::{Config, ConfigFile, Key, Proxying};
use crate::clock::format_duration;
use crate::text;
use crate::version::VERSION;

/// The one line the agent logs when it starts; `phase` is the splay phase
/// it drew (None without splay).
pub fn startup_line(config: &Config, phase: Option<Duration>) -> String {
    let token = match &config.token {
        Some(t) => format!("token from {}", t.source),
        None => "no token".into(),
    };
    let splay = match phase {
        Some(phase) => format!("phase {}", format_duration(phase)),
        None => "no splay".into(),
    };
    let report = config.settings.report.value;
    let pushes = report.pushes.any().then(|| {
        let each: Vec<String> = report
            .pushes
            .on()
            .map(|p| {
                let every = crate::config::push_every(&config.settings, p.every());
                format!("{} every {}", p.word(), format_duration(every.value))
            })
            .collect();
        format!("; pushes in place of a beat: {}", each.join(", "))
    });
    format!(
        "stacksense-heartbeat {VERSION} starting: {} API, POST {} every {} ({splay}, timeout {}, {token}, {}{}){}",
        config.api.value.word(),
        config.heartbeat_url,
        format_duration(config.settings.interval.value),
        format_duration(config.settings.timeout.value),
        trust_words(config),
        proxy_words(&config.proxy)
            .map(|p| format!(", {p}"))
            .unwrap_or_default(),
        pushes.unwrap_or_default(),
    )
}

/// How the server's certificate is judged, in a few words.
fn trust_words(config: &Config) -> String {
    match (&config.settings.pins, &config.ca) {
        (Some(pins), _) => format!("{} pinned key(s)", pins.value.len()),
        (None, Some(ca)) => format!("CA {}", ca.value.path.display()),
        (None, None) => "bundled CA roots".into(),
    }
}

fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.to_string()
}

/// How beats reach the server, when that is not simply "direct".
fn proxy_words(proxying: &Proxying) -> Option<String> {
    match proxying {
        Proxying::Direct => None,
        Proxying::Bypassed { var } => Some(format!("no proxy: {var} names the server")),
        Proxying::Via(p) => Some(format!("via proxy {} from {}", p.shown, p.source)),
    }
}

/// One `--check` row: the setting, its value, and where it came from
/// (shown as "from ..."; a trailer in parentheses or empty as it is).
type Row = (&'static str, String, String);

/// The `--check` rows of each setting, from the table's `shown` column: a
/// function below, given the setting's field (`&()` for one without).
macro_rules! check_rows {
    ($(
        $key:ident { $($spec:tt)* }
        => $(fills $field:ident: $ty:ty = $pick:ident($($arg:expr),*),)? shown $shown:ident;
    )*) => {
        impl Key {
            fn rows(self, config: &Config) -> Vec<Row> {
                match self {
                    $(Key::$key => shown::$shown(self, field!(config $(.$field)?), config),)*
                }
            }
        }
    };
}

/// A setting's field in the config, or `()` for the token and its file.
macro_rules! field {
    ($config:ident) => {
        &()
    };
    ($config:ident .$field:ident) => {
        &$config.settings.$field
    };
}

settings_table!(check_rows);

/// How each setting reads in `--check`.
mod shown {
    use super::*;
    use crate::config::health::Check;
    use crate::config::{Raw, Reporting, Setting, api};
    use crate::tls::Pins;

    /// A value in words.
    pub trait Words {
        fn words(&self) -> String;
    }

    impl Words for String {
        fn words(&self) -> String {
            self.clone()
        }
    }

    impl Words for Duration {
        fn words(&self) -> String {
            format_duration(*self)
        }
    }

    impl Words for bool {
        fn words(&self) -> String {
            on_off(*self)
        }
    }

    impl Words for crate::discover::containers::Socket {
        fn words(&self) -> String {
            self.to_string()
        }
    }

    impl Words for Pins {
        fn words(&self) -> String {
            self.to_string()
        }
    }

    /// A setting with a default, or one that may be unset.
    pub trait Shown {
        fn row(&self, key: Key) -> Row;
    }

    impl<T: Words> Shown for Setting<T> {
        fn row(&self, key: Key) -> Row {
            (key.name(), self.value.words(), self.source.to_string())
        }
    }

    impl<T: Words> Shown for Option<Setting<T>> {
        fn row(&self, key: Key) -> Row {
            match self {
                Some(setting) => setting.row(key),
                None => unset(key, "not set"),
            }
        }
    }

    fn unset(key: Key, what: &str) -> Row {
        (key.name(), what.into(), String::new())
    }

    pub fn value(key: Key, setting: &impl Shown, _: &Config) -> Vec<Row> {
        vec![setting.row(key)]
    }

    /// One row for both: they are one setting given two ways.
    pub fn token(key: Key, _: &(), config: &Config) -> Vec<Row> {
        vec![match &config.token {
            Some(t) => (key.name(), "set".into(), t.source.to_string()),
            None => unset(key, "not set"),
        }]
    }

    pub fn nothing(_: Key, _: &(), _: &Config) -> Vec<Row> {
        Vec::new()
    }

    /// The API and the URL its beats go to.
    pub fn api(key: Key, _: &Setting<api::Choice>, config: &Config) -> Vec<Row> {
        let value = config.api.value.word().to_string();
        let source = match config.api_why {
            Some(why) => format!("({why})"),
            None => config.api.source.to_string(),
        };
        let post = format!("POST {}", config.heartbeat_url);
        vec![
            (key.name(), value, source),
            ("heartbeat", post, String::new()),
        ]
    }

    pub fn ca_file(key: Key, _: &Option<Raw>, config: &Config) -> Vec<Row> {
        vec![match &config.ca {
            Some(ca) => (
                key.name(),
                format!(
                    "{} ({} certificate(s))",
                    ca.value.path.display(),
                    ca.value.certs.len()
                ),
                ca.source.to_string(),
            ),
            None => unset(key, "not set (bundled Mozilla roots)"),
        }]
    }

    pub fn verify_tls(key: Key, setting: &Setting<bool>, _: &Config) -> Vec<Row> {
        let value = if setting.value {
            "on"
        } else {
            "on (false is ignored)"
        };
        vec![(key.name(), value.into(), setting.source.to_string())]
    }

    /// How many checks, then each with its own limit.
    pub fn health(key: Key, setting: &Setting<Vec<Check>>, _: &Config) -> Vec<Row> {
        let checks = &setting.value;
        if checks.is_empty() {
            return vec![unset(key, "none")];
        }
        let count = format!("{} check(s)", checks.len());
        let mut rows = vec![(key.name(), count, setting.source.to_string())];
        for check in checks {
            let timeout = format!("timeout {}", format_duration(check.timeout));
            rows.push(("", text::untrusted(&check.name), timeout));
        }
        rows
    }

    /// What is reported, then where each push goes.
    pub fn report(key: Key, setting: &Setting<Reporting>, config: &Config) -> Vec<Row> {
        let report = setting.value;
        let mut rows = vec![(key.name(), report.words(), setting.source.to_string())];
        for push in report.pushes.on() {
            let url = api::push_url(&config.settings.api_url.value, push);
            rows.push((push.word(), format!("POST {url}"), String::new()));
        }
        rows
    }

    /// A push interval: its value, or that no push goes by it.
    pub fn pushes_every(key: Key, setting: &Setting<Duration>, config: &Config) -> Vec<Row> {
        let by_it = config.settings.report.value.pushes.on().any(|p| {
            std::ptr::eq(
                crate::config::push_every(&config.settings, p.every()),
                setting,
            )
        });
        if !by_it {
            return vec![unset(key, "not used (no push goes by it)")];
        }
        vec![setting.row(key)]
    }
}

/// `--check`: each effective value and where it came from; the token only as "set".
pub fn check_settings(config: &Config) -> String {
    let mut file = vec![match &config.file {
        ConfigFile::Loaded(p) => ("config file", p.display().to_string(), "(read)".to_string()),
        ConfigFile::Missing(_) => ("config file", "none".into(), "(none of these; fine)".into()),
        ConfigFile::Unreadable(p) => (
            "config file",
            p.display().to_string(),
            "(not readable; skipped)".into(),
        ),
    }];
    if let ConfigFile::Missing(paths) = &config.file {
        for path in paths {
            file.push(("", format!("  {}", path.display()), String::new()));
        }
    }
    let mut rows: Vec<Row> = Key::ALL
        .into_iter()
        .flat_map(|key| key.rows(config))
        .collect();
    rows.push((
        "proxy",
        proxy_words(&config.proxy).unwrap_or_else(|| "none".into()),
        String::new(),
    ));

    // Sources line up in a column, kept within 80 columns: a value too long
    // for the column puts its source on the next line.
    const MAX_VALUE: usize = 30;
    let width = rows
        .iter()
        .filter(|(_, v, s)| !s.is_empty() && v.len() <= MAX_VALUE)
        .map(|(_, v, _)| v.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let mut lines = file;
    for (name, value, source) in rows {
        let trailer =
            if source.is_empty() || source.starts_with("timeout ") || source.starts_with('(') {
                source
            } else {
                format!("from {source}")
            };
        lines.push((name, value, trailer));
    }
    for (name, value, trailer) in lines {
        out.push_str(&aligned(name, &value, &trailer, width));
    }
    out.push_str("config OK\n");
    out
}

/// Width of the name column of `--check`: the longest names
/// (`pinned_pubkey`, `metrics_interval`) overflow it rather than push
/// every line past 80 columns.
pub const NAME: usize = 12;

/// One `--check` line: name, value and trailer in columns within 80
/// characters where they fit.
pub fn aligned(name: &str, value: &str, trailer: &str, width: usize) -> String {
    let line = if trailer.is_empty() {
        format!("{name:<NAME$} {value}")
    } else if value.len() <= width.max(4) && NAME + 1 + width + 2 + trailer.len() <= 80 {
        format!("{name:<NAME$} {value:<width$}  {trailer}")
    } else if NAME + 1 + value.len() + 2 + trailer.len() <= 80 {
        format!("{name:<NAME$} {value}  {trailer}")
    } else {
        format!("{name:<NAME$} {value}\n{:<NAME$}   {trailer}", "")
    };
    format!("{}\n", line.trim_end())
}
