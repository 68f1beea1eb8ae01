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
    let pushes = config.report.value;
    let pushes = pushes.pushes().then(|| {
        format!(
            "; {} pushed in place of a beat every {}",
            pushes.push_words(),
            format_duration(config.metrics_interval.value)
        )
    });
    format!(
        "stacksense-heartbeat {VERSION} starting: {} API, POST {} every {} ({splay}, timeout {}, {token}, {}{}){}",
        config.api.value.word(),
        config.heartbeat_url,
        format_duration(config.interval.value),
        format_duration(config.timeout.value),
        trust_words(config),
        proxy_words(&config.proxy)
            .map(|p| format!(", {p}"))
            .unwrap_or_default(),
        pushes.unwrap_or_default(),
    )
}

/// How the server's certificate is judged, in a few words.
fn trust_words(config: &Config) -> String {
    match (&config.pins, &config.ca) {
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
    // (setting, value, where it came from); the last is shown as "from ...".
    let mut rows: Vec<(&str, String, String)> = Vec::new();
    let unset = |rows: &mut Vec<(&str, String, String)>, key: Key, what: &str| {
        rows.push((key.name(), what.into(), String::new()));
    };
    for key in Key::ALL {
        let (value, source) = match key {
            Key::ServerId => match &config.server_id {
                Some(id) => (id.value.clone(), &id.source),
                None => {
                    unset(&mut rows, key, "not set");
                    continue;
                }
            },
            Key::ApiUrl => (config.api_url.value.clone(), &config.api_url.source),
            Key::Api => {
                let value = config.api.value.word().to_string();
                match config.api_why {
                    Some(why) => rows.push((key.name(), value, format!("({why})"))),
                    None => rows.push((key.name(), value, config.api.source.to_string())),
                }
                let post = format!("POST {}", config.heartbeat_url);
                rows.push(("heartbeat", post, String::new()));
                continue;
            }
            Key::Interval => (
                format_duration(config.interval.value),
                &config.interval.source,
            ),
            Key::Timeout => (
                format_duration(config.timeout.value),
                &config.timeout.source,
            ),
            Key::Splay => (on_off(config.splay.value), &config.splay.source),
            Key::Keepalive => (on_off(config.keepalive.value), &config.keepalive.source),
            Key::VerifyTls => {
                let value = if config.verify_tls.value {
                    "on"
                } else {
                    "on (false is ignored)"
                };
                (value.to_string(), &config.verify_tls.source)
            }
            Key::Report => {
                let report = config.report.value;
                let source = config.report.source.to_string();
                rows.push((key.name(), report.words(), source));
                for (on, endpoint) in [(report.metrics, "metrics"), (report.services, "services")] {
                    if on {
                        let url = super::api::push_url(&config.api_url.value, endpoint);
                        rows.push((endpoint, format!("POST {url}"), String::new()));
                    }
                }
                continue;
            }
            Key::MetricsInterval if !config.report.value.pushes() => {
                unset(&mut rows, key, "not used (no metrics or services)");
                continue;
            }
            Key::MetricsInterval => (
                format_duration(config.metrics_interval.value),
                &config.metrics_interval.source,
            ),
            Key::Health => {
                let checks = &config.health.value;
                if checks.is_empty() {
                    unset(&mut rows, key, "none");
                    continue;
                }
                let count = format!("{} check(s)", checks.len());
                rows.push((key.name(), count, config.health.source.to_string()));
                for check in checks {
                    let timeout = format!("timeout {}", format_duration(check.timeout));
                    rows.push(("", text::untrusted(&check.name), timeout));
                }
                continue;
            }
            // One row for both: they are one setting given two ways.
            Key::TokenFile => continue,
            Key::Token => match &config.token {
                Some(t) => ("set".into(), &t.source),
                None => {
                    unset(&mut rows, key, "not set");
                    continue;
                }
            },
            Key::CaFile => match &config.ca {
                Some(ca) => (
                    format!(
                        "{} ({} certificate(s))",
                        ca.value.path.display(),
                        ca.value.certs.len()
                    ),
                    &ca.source,
                ),
                None => {
                    unset(&mut rows, key, "not set (bundled Mozilla roots)");
                    continue;
                }
            },
            Key::PinnedPubkey => match &config.pins {
                Some(pins) => (pins.value.to_string(), &pins.source),
                None => {
                    unset(&mut rows, key, "not set");
                    continue;
                }
            },
        };
        rows.push((key.name(), value, source.to_string()));
    }

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
