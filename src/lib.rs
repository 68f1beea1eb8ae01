//! stacksense-heartbeat's engine: args/env/file -> validated `Config` ->
//! agent loop -> one heartbeat -> outcome, wired in `app.rs`. The crate
//! exports only [`main`] and what `fuzz/` needs; every module is private,
//! so rustc reports what nothing uses (`pub` inside them means "for the
//! rest of the crate").
//!
//! A newcomer reads `app.rs` (the wiring) and `task.rs` (what each way of
//! running means), then `config/mod.rs` (what a `Config` holds and how it
//! is loaded), `agent/mod.rs` (the loop), `push/mod.rs` (what a beat
//! sends) and `heartbeat.rs` (one request).

mod agent;
mod app;
mod backoff;
mod checks;
mod checkup;
mod classify;
mod cli;
mod clock;
mod config;
mod discover;
mod files;
mod heartbeat;
mod host;
mod json;
mod logging;
mod narrate;
mod notify;
mod number;
mod process;
mod push;
mod reuse;
mod schedule;
mod signals;
mod startup;
mod stop;
mod task;
mod tcp;
#[cfg(test)]
mod testing;
mod text;
mod tls;
mod version;
mod wire;
mod workers;
mod wrap;

pub use app::main;

/// Entry points for `fuzz/` (cargo-fuzz): the parsers that read outside
/// input, each checked for the promises the rest of the agent relies on.
#[doc(hidden)]
pub mod fuzz {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    /// The config file reader: never panics, and every line it names exists.
    pub fn config_file(text: &str) {
        let lines = text.lines().count().max(1);
        if let Ok((layer, warnings)) = crate::config::parse_file(text, Path::new("/f.conf")) {
            assert!(warnings.len() <= 6, "unknown-key warnings are capped");
            for key in crate::config::Key::ALL {
                if let Some(raw) = layer.get(key)
                    && let crate::config::Source::File {
                        line: Some(line), ..
                    } = raw.source
                {
                    assert!((1..=lines).contains(&line), "line {line} of {lines}");
                }
            }
        }
    }

    /// `Retry-After`: never panics, and a date never means a wait past the year 9999.
    pub fn retry_after(value: &str) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        if let Some(wait) = crate::classify::parse_retry_after(value, now)
            && crate::clock::parse_http_date(value).is_some()
        {
            assert!(wait < Duration::from_secs(8_000 * 365 * 86_400));
        }
    }

    /// The reply headers that decide reuse (`Connection`, `Keep-Alive`),
    /// split from one input at its first newline: never panics (a huge
    /// `timeout=` once aborted the agent), and never keeps a connection
    /// longer than the cap.
    pub fn reply_headers(text: &str) {
        let (connection, keep_alive) = text.split_once('\n').unwrap_or((text, ""));
        let limit = crate::reuse::idle_limit(Some(connection), Some(keep_alive));
        assert!(limit.is_none_or(|l| l <= crate::reuse::MAX_IDLE));
        let t0 = std::time::Instant::now();
        let kept =
            crate::reuse::Kept::after_reply(t0, Duration::MAX, Some(connection), Some(keep_alive));
        let _ = kept.reuse_at(t0, Duration::from_secs(10));
    }

    /// A pin setting: never panics; what it accepts prints back as given.
    pub fn pins(text: &str) {
        if let Ok(pins) = crate::tls::parse_pins(text) {
            let again = crate::tls::parse_pins(&pins.to_string());
            assert!(again.is_ok_and(|p| p == pins));
        }
    }

    /// The reply parser: never panics on any body.
    pub fn reply(body: &[u8]) {
        let _ = crate::heartbeat::Reply::parse(body);
    }

    /// A health check: never panics; what it accepts has a one-line name
    /// and a timeout within the documented range.
    pub fn health_check(text: &str) {
        if let Ok(check) = crate::config::health::parse(text) {
            assert!(!check.name.is_empty() && !check.name.contains('\n'));
            assert!(check.timeout >= Duration::from_millis(100));
            assert!(check.timeout <= Duration::from_secs(3600));
        }
    }

    /// A container engine's answer: never panics, keeps at most the cap,
    /// and every kept container has a name.
    pub fn containers_listing(answer: &[u8]) {
        use crate::discover::containers;
        if let Ok(listing) = containers::read_listing(answer) {
            assert!(listing.containers.len() <= containers::MAX_CONTAINERS);
            assert!(listing.containers.iter().all(|c| !c.name().is_empty()));
            for c in &listing.containers {
                let _ = (c.ports_text(), c.state());
            }
        }
    }

    /// The kernel's lists of listening sockets, as /proc/net/tcp text and
    /// as sock_diag messages: never panic, never more than the cap.
    pub fn listening_table(bytes: &[u8]) {
        use crate::host::sockets;
        for v6 in [false, true] {
            let mut found = Vec::new();
            let _ = sockets::parse_table(bytes, v6, &mut found);
            assert!(found.len() <= sockets::MAX_LISTENERS);
        }
        let mut found = Vec::new();
        let _ = sockets::diag::parse(bytes, &mut found);
        assert!(found.len() <= sockets::MAX_LISTENERS);
    }

    /// Escaping: whatever goes in, one safe line of bounded length comes out.
    pub fn untrusted(text: &str) {
        let out = crate::text::untrusted(text);
        assert!(out.chars().count() <= 10 * crate::text::MAX_UNTRUSTED_CHARS);
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        assert_eq!(crate::text::guard_line(&out), out.as_str());
    }
}
