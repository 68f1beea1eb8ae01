//! What every body the agent sends is made of: typed structs written by
//! serde_json, with two rules kept by types rather than by care. Text from
//! outside the process (a check's name, a mount point, a job's output, a
//! host name) is an [`Outside`], which never writes the token and is cut
//! to the server's field length; a figure is a plain number, rounded where
//! psutil rounds.

use serde::{Serialize, Serializer};

use crate::text;
use crate::version::VERSION;

/// The body every beat carries when nothing is reported:
/// `{"agent_version":"X"}`, which every StackSense server reads.
pub fn heartbeat() -> String {
    to_json(&Version::default())
}

/// `agent_version`, the one field every body has.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Version {
    pub agent_version: &'static str,
}

impl Default for Version {
    fn default() -> Version {
        Version {
            agent_version: VERSION,
        }
    }
}

/// A body as JSON. Our bodies hold strings, numbers, lists and maps with
/// string keys, which serde_json always writes.
pub fn to_json(body: &impl Serialize) -> String {
    serde_json::to_string(body).unwrap_or_else(|e| {
        log::error!(
            "cannot write a request body: {}",
            text::untrusted(&e.to_string())
        );
        to_json_fallback()
    })
}

fn to_json_fallback() -> String {
    format!("{{\"agent_version\":\"{VERSION}\"}}")
}

/// Text from outside the process as a body carries it: the token, should
/// anything have carried it here, is replaced (text::redacted), and the
/// text is cut to the field's length on the server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outside(String);

impl Outside {
    /// All of `text` (a field the server does not cut).
    pub fn new(text: &str) -> Outside {
        Outside(text::redacted(text).into_owned())
    }

    /// At most `max` characters of `text`.
    pub fn capped(text: &str, max: usize) -> Outside {
        Outside(text::redacted(text).chars().take(max).collect())
    }
}

impl Serialize for Outside {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A JSON object whose keys are outside text, in the order given (the
/// mount table's, the interfaces'): written as a map, not a list of pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<V>(pub Vec<(Outside, V)>);

impl<V> Default for Keyed<V> {
    fn default() -> Keyed<V> {
        Keyed(Vec::new())
    }
}

impl<V: Serialize> Serialize for Keyed<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The server refuses a push body over 256 KiB (413); ours stay under
/// this, with room for the headers' worth of slack.
pub const MAX_BODY_BYTES: usize = 250 * 1024;

/// The body `write(n)` makes with as many of `items` items as fit in
/// [`MAX_BODY_BYTES`] (all of them when they fit), and how many went in.
pub fn fitting(items: usize, write: impl Fn(usize) -> String) -> (String, usize) {
    let mut n = items;
    loop {
        let body = write(n);
        if body.len() <= MAX_BODY_BYTES || n == 0 {
            return (body, n);
        }
        // Shrink by what the excess suggests, at least one item.
        let keep = (n as u128 * MAX_BODY_BYTES as u128 / body.len() as u128) as usize;
        n = keep.min(n - 1);
    }
}

/// FNV-1a, 64 bits: a stable short name for a text (a file per server, a
/// service name cut to the server's length). Not for secrets.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `x` rounded to `places` decimals: loads, percentages and seconds are
/// never negative, and NaN is 0.
pub fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    let x = if x.is_nan() { 0.0 } else { x.max(0.0) };
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_body_is_the_one_servers_know() {
        assert_eq!(heartbeat(), format!("{{\"agent_version\":\"{VERSION}\"}}"));
        assert_eq!(heartbeat(), to_json_fallback());
    }

    #[test]
    fn outside_text_is_escaped_capped_and_never_carries_the_token() {
        let token = "tok-SECRET-0123456789abcdef";
        text::hide(token);
        let hostile = format!("a\"b\\c\nd\u{1b}[31m\u{202e}e {token} \u{0}");
        let written = to_json(&Keyed(vec![(
            Outside::new(&hostile),
            Outside::capped(&hostile, 8),
        )]));
        assert!(!written.contains("SECRET"), "{written}");
        assert!(
            !written.contains('\n') && !written.contains('\u{1b}'),
            "{written}"
        );
        let read: serde_json::Value = serde_json::from_str(&written).unwrap();
        let (key, value) = read.as_object().unwrap().iter().next().unwrap();
        assert_eq!(*key, hostile.replace(token, text::REDACTED));
        assert_eq!(value, "a\"b\\c\nd\u{1b}");
    }

    #[test]
    fn a_body_keeps_the_items_that_fit_under_the_servers_limit() {
        let write = |n: usize| to_json(&vec!["x".repeat(1000); n]);
        let (body, n) = fitting(10, write);
        assert_eq!(n, 10);
        assert_eq!(body, write(10));
        let (body, n) = fitting(1000, write);
        assert!(body.len() <= MAX_BODY_BYTES && n < 1000 && n > 240, "{n}");
        assert!(write(n + 1).len() > MAX_BODY_BYTES || n == 1000);
    }

    #[test]
    fn figures_round_as_psutil_and_never_go_negative() {
        assert_eq!(round(12.345_6, 2), 12.35);
        assert_eq!(round(-1.0, 1), 0.0);
        assert_eq!(round(f64::NAN, 1), 0.0);
        assert_eq!(to_json(&round(100.0, 1)), "100.0");
    }
}
