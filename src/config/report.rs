//! The configuration as a person reads it: the start-up line and `--check`.

use std::time::Duration;

use super::{Config, ConfigFile, Key, Proxying};
use crate::body::CheckResult;
use crate::cli::VERSION;
use crate::clock::format_duration;
use crate::text;

/// The one line the agent logs when it starts; `phase` is the splay phase
/// it drew (None without splay).
pub fn startup_line(config: &Config, phase: Option<Duration>) -> String {
    let token = match &config.token {
        Some(t) => format!("token from {}", t.source),
        None => "no token".into(),
    };
    let ca = match &config.ca {
        Some(ca) => format!("CA {}", ca.value.path.display()),
        None => "bundled CA roots".into(),
    };
    let splay = match phase {
        Some(phase) => format!("phase {}", format_duration(phase)),
        None => "no splay".into(),
    };
    format!(
        "stacksense-heartbeat {VERSION} starting: POST {} every {} ({splay}, timeout {}, {token}, {ca}{})",
        config.heartbeat_url,
        format_duration(config.interval.value),
        format_duration(config.timeout.value),
        proxy_words(&config.proxy)
            .map(|p| format!(", {p}"))
            .unwrap_or_default(),
    )
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
pub fn check_report(config: &Config) -> String {
    let file = match &config.file {
        ConfigFile::Loaded(p) => (p.display().to_string(), "(read)"),
        ConfigFile::Missing(p) => (p.display().to_string(), "(not present; fine)"),
        ConfigFile::Unreadable(p) => (p.display().to_string(), "(not readable; skipped)"),
        ConfigFile::NoneLookedFor => ("none".into(), "(no home directory)"),
    };
    // (setting, value, where it came from); the last is shown as "from ...".
    let mut rows: Vec<(&str, String, String)> = Vec::new();
    for key in Key::ALL {
        let (value, source) = match key {
            Key::ServerId => (config.server_id.value.clone(), &config.server_id.source),
            Key::ApiUrl => (config.api_url.value.clone(), &config.api_url.source),
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
            Key::Report => (
                config.report.value.words().to_string(),
                &config.report.source,
            ),
            Key::Health => {
                let checks = &config.health.value;
                if checks.is_empty() {
                    rows.push((key.name(), "none".into(), String::new()));
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
                    rows.push((key.name(), "not set".into(), String::new()));
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
                    let roots = "not set (bundled Mozilla roots)";
                    rows.push((key.name(), roots.into(), String::new()));
                    continue;
                }
            },
        };
        rows.push((key.name(), value, source.to_string()));
        if key == Key::ApiUrl {
            let post = format!("POST {}", config.heartbeat_url);
            rows.push(("heartbeat", post, String::new()));
        }
    }

    rows.push((
        "proxy",
        proxy_words(&config.proxy).unwrap_or_else(|| "none".into()),
        String::new(),
    ));

    // Sources line up in a column, kept within 80 columns: a value too long
    // for the column puts its source on the next line.
    const NAME: usize = 12;
    const MAX_VALUE: usize = 30;
    let width = rows
        .iter()
        .filter(|(_, v, s)| !s.is_empty() && v.len() <= MAX_VALUE)
        .map(|(_, v, _)| v.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let (path, state) = file;
    let mut lines = vec![("config file", path, state.to_string())];
    for (name, value, source) in rows {
        let trailer = if source.is_empty() || source.starts_with("timeout ") {
            source
        } else {
            format!("from {source}")
        };
        lines.push((name, value, trailer));
    }
    for (name, value, trailer) in lines {
        let line = if trailer.is_empty() {
            format!("{name:<NAME$} {value}")
        } else if value.len() <= width.max(4) && NAME + 1 + width + 2 + trailer.len() <= 80 {
            format!("{name:<NAME$} {value:<width$}  {trailer}")
        } else if NAME + 1 + value.len() + 2 + trailer.len() <= 80 {
            format!("{name:<NAME$} {value}  {trailer}")
        } else {
            format!("{name:<NAME$} {value}\n{:<NAME$}   {trailer}", "")
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("config OK\n");
    out
}

/// `--check`'s account of running every check once.
pub fn check_results(results: &[CheckResult], reported: bool) -> String {
    // Details line up after the names, within 80 columns: a line that
    // would be longer puts its detail on the next line.
    let names: Vec<String> = results.iter().map(|r| text::untrusted(&r.name)).collect();
    let fits = |name: &str, detail: &str| 6 + name.len() + 2 + detail.len() <= 80;
    let width = names
        .iter()
        .zip(results)
        .filter(|(n, r)| fits(n, &r.detail))
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (name, r) in names.iter().zip(results) {
        let verdict = if r.ok { "pass" } else { "FAIL" };
        if fits(&format!("{name:<width$}"), &r.detail) {
            out.push_str(&format!("{verdict}  {name:<width$}  {}\n", r.detail));
        } else {
            out.push_str(&format!("{verdict}  {name}\n      {}\n", r.detail));
        }
    }
    let failing = results.iter().filter(|r| !r.ok).count();
    let outcome = if reported {
        "beats go out with \"status\": \"fail\""
    } else {
        "beats would be withheld"
    };
    if failing == 0 {
        out.push_str("checks OK\n");
    } else {
        out.push_str(&format!(
            "{failing} of {} check(s) failing: {outcome}\n",
            results.len()
        ));
    }
    out
}
