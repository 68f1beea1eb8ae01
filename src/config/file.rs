//! The JSON config file (`~/.stacksense_heartbeat.conf` or
//! `/etc/stacksense/heartbeat.conf`), read into a [`Layer`].

use std::path::Path;

use crate::json::{self, Member, Value};
use crate::text;

use super::keys::{Key, Kind};
use super::source::{Layer, Raw, Source};
use super::{About, ConfigError};

fn known_keys() -> String {
    Key::ALL.map(Key::name).join(", ")
}

/// Unknown keys warned about one by one; past this, one line counts the rest.
const MAX_UNKNOWN_KEY_WARNINGS: usize = 5;

/// The layer a file's text gives, and warnings for keys we do not know.
pub fn parse(text: &str, path: &Path) -> Result<(Layer, Vec<String>), Vec<ConfigError>> {
    let file_error = |message: String| vec![ConfigError::file(message)];
    let shown_path = text::untrusted(&path.display().to_string());
    // An empty file, or a template with every line commented out, is the
    // likeliest way to get here with nothing to parse.
    let relaxed = relax(text);
    if relaxed.trim().is_empty() {
        let what = if text.trim_start_matches('\u{feff}').trim().is_empty() {
            "is empty"
        } else {
            "holds only comments"
        };
        return Err(file_error(format!(
            "{shown_path} {what}; expected a JSON object like {{\"api_url\": \"https://...\", \"token_file\": \"/etc/stacksense/token\"}}"
        )));
    }
    let value = json::parse(relaxed.as_bytes()).map_err(|e| {
        file_error(format!(
            "{shown_path}:{}:{}: malformed JSON: {}; the file is JSON, with comments only on \
             lines of their own (starting with # or //), e.g. {{\"api_url\": \"https://...\"}}",
            e.line, e.column, e.what
        ))
    })?;
    let Value::Object(members) = value else {
        return Err(file_error(format!(
            "{shown_path}: expected a JSON object like {{\"api_url\": \"https://...\", \"token_file\": \"/etc/stacksense/token\"}}"
        )));
    };
    // Most JSON readers silently keep the last of two equal keys.
    if let Some((key, first, line)) = repeated_key(&members) {
        return Err(file_error(format!(
            "{shown_path}:{line}: key \"{}\" appears twice (lines {first} and {line}); keep one",
            text::untrusted(key)
        )));
    }

    let mut layer = Layer::default();
    let mut warnings = Vec::new();
    let mut unknown = 0usize;
    let mut errors = Vec::new();
    for Member { key, line, value } in members {
        let source = Source::File {
            path: path.to_path_buf(),
            line: Some(line),
        };
        let Some(known) = Key::from_name(&key) else {
            unknown += 1;
            if unknown <= MAX_UNKNOWN_KEY_WARNINGS {
                let hint = closest_key(&key)
                    .map(|k| format!(" (did you mean \"{k}\"?)"))
                    .unwrap_or_default();
                warnings.push(format!(
                    "{source}: unknown key \"{}\" ignored{hint}; known keys: {}",
                    text::untrusted(&key),
                    known_keys()
                ));
            }
            continue;
        };
        if let Some(first) = layer.get(known) {
            errors.push(ConfigError {
                about: About::Setting(known),
                source: Some(source),
                message: format!(
                    "\"{}\" gives the same setting as the key at {}; keep one",
                    text::untrusted(&key),
                    first.source
                ),
            });
            continue;
        }
        match text_of(known, &value) {
            Ok(Some(text)) => layer.set(known, Raw::new(text, source)),
            // `null` reads as "not set here", like an absent key.
            Ok(None) => {}
            Err(mismatch) => errors.push(ConfigError {
                about: About::Setting(known),
                source: Some(source),
                message: match mismatch {
                    Mismatch::Type(expected) => {
                        format!("has the wrong type ({}); {expected}", type_name(&value))
                    }
                    Mismatch::Item => "has an item that is not a one-line string; expected an \
                                       array of one-line strings, e.g. [\"tcp 127.0.0.1:5432\"]"
                        .to_string(),
                },
            }),
        }
    }
    if unknown > MAX_UNKNOWN_KEY_WARNINGS {
        warnings.push(format!(
            "{shown_path}: {} more unknown key(s) ignored",
            unknown - MAX_UNKNOWN_KEY_WARNINGS
        ));
    }
    if errors.is_empty() {
        Ok((layer, warnings))
    } else {
        Err(errors)
    }
}

/// The first key given again, as (key, its first line, the line it is
/// repeated on).
fn repeated_key(members: &[Member]) -> Option<(&str, usize, usize)> {
    // By key, then by place: a repeat follows its first in the order.
    let mut keys: Vec<(&str, usize)> = members.iter().map(|m| (m.key.as_str(), m.line)).collect();
    keys.sort_unstable();
    keys.windows(2)
        .filter(|pair| pair[0].0 == pair[1].0)
        .map(|pair| (pair[0].0, pair[0].1, pair[1].1))
        .min_by_key(|&(_, _, again)| again)
}

/// Plain JSON plus what a person editing a template needs: whole-line
/// comments (`#` or `//`) and a trailing comma before `}` or `]`, so keys
/// can be commented in and out freely. Both are blanked with spaces, which
/// keeps every line and column number right for error messages.
fn relax(text: &str) -> String {
    // A byte-order mark from a Windows editor is not JSON either.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<char> = Vec::with_capacity(text.len());
    let mut line_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let comment = line_start && (c == '#' || (c == '/' && chars.peek() == Some(&'/')));
        if comment {
            out.push(' ');
            while let Some(&next) = chars.peek() {
                if next == '\n' {
                    break;
                }
                out.push(if next == '\t' { '\t' } else { ' ' });
                chars.next();
            }
            continue;
        }
        if c == '\n' {
            line_start = true;
        } else if !c.is_whitespace() {
            line_start = false;
        }
        out.push(c);
        // A string cannot span lines, so comments never start inside one;
        // copy strings through untouched so a '#' in a value stays.
        if c == '"' {
            let mut escaped = false;
            for s in chars.by_ref() {
                out.push(s);
                match s {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => break,
                    '\n' => {
                        line_start = true;
                        break;
                    }
                    _ => escaped = false,
                }
            }
        }
    }
    // Trailing commas: a ',' outside strings after a value and before only
    // blanks and '}' or ']'. (`{,}` has no value before its comma: it stays
    // malformed.)
    let mut in_string = false;
    let mut escaped = false;
    let mut previous = ' ';
    for i in 0..out.len() {
        let c = out[i];
        match c {
            '\\' if in_string && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_string = !in_string,
            ',' if !in_string && !matches!(previous, '{' | '[' | ',') => {
                let next = out[i + 1..].iter().find(|c| !c.is_whitespace());
                if matches!(next, Some('}' | ']')) {
                    out[i] = ' ';
                }
            }
            _ => {}
        }
        if !in_string && !c.is_whitespace() || c == '"' {
            previous = c;
        }
        escaped = false;
    }
    out.into_iter().collect()
}

/// Why a JSON value does not fit its key.
enum Mismatch {
    /// The value's type is wrong; what was expected.
    Type(&'static str),
    /// The array is right but one of its items is not a one-line string.
    Item,
}

/// The value as text for the common validators, if its JSON type fits the key.
fn text_of(key: Key, value: &Value) -> Result<Option<String>, Mismatch> {
    use Mismatch::Type;
    match (key.spec().kind, value) {
        (_, Value::Null) => Ok(None),
        (Kind::Id, Value::Number(n)) if n.parse::<u64>().is_ok() => Ok(Some(n.clone())),
        (Kind::Id, Value::String(s)) => Ok(Some(s.trim().to_string())),
        (Kind::Id, _) => Err(Type(
            "expected a whole number or a string, e.g. 1 or \"web-01\"",
        )),
        (Kind::Seconds { .. }, Value::Number(n)) => Ok(Some(n.clone())),
        (Kind::Seconds { .. }, _) => Err(Type("expected a number of seconds, e.g. 30")),
        (Kind::Bool, Value::Bool(b)) => Ok(Some(b.to_string())),
        (Kind::Bool, _) => Err(Type("expected true or false")),
        (Kind::Text, Value::String(s)) => Ok(Some(s.trim().to_string())),
        (Kind::Text, _) => Err(Type("expected a string")),
        (Kind::List, Value::String(s)) => Ok(Some(s.trim().to_string())),
        (Kind::List, Value::Array(items)) => {
            let mut lines = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(s) if !s.contains('\n') => lines.push(s.trim()),
                    _ => return Err(Mismatch::Item),
                }
            }
            Ok(Some(lines.join("\n")))
        }
        (Kind::List, _) => Err(Type(
            "expected an array of strings, e.g. [\"tcp 127.0.0.1:5432\"]",
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The known key within edit distance 2 of `key`, if there is one.
fn closest_key(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    Key::ALL
        .into_iter()
        .map(|k| (edit_distance(&key, k.name()), k.name()))
        .filter(|(d, k)| *d <= 2 || key.replace('-', "_") == *k)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("/etc/hb.conf")
    }

    #[test]
    fn the_seed_format_is_read_with_lines() {
        let text = "{\n  \"server_id\": 1,\n  \"api_url\": \"http://m\",\n  \"interval\": 30\n}\n";
        let (layer, warnings) = parse(text, path()).unwrap();
        assert!(warnings.is_empty());
        let id = layer.get(Key::ServerId).unwrap();
        assert_eq!(id.text, "1");
        assert_eq!(id.source.to_string(), "/etc/hb.conf:2");
        assert_eq!(layer.get(Key::ApiUrl).unwrap().text, "http://m");
        assert_eq!(layer.get(Key::Interval).unwrap().text, "30");
    }

    #[test]
    fn malformed_json_names_file_line_and_column() {
        let errs = parse("{\n \"server_id\": 1\n \"api_url\": 2\n}", path()).unwrap_err();
        let msg = errs[0].to_string();
        assert!(msg.contains("/etc/hb.conf:3:2: malformed JSON"), "{msg}");
        assert!(!msg.contains("at line"), "{msg}");
    }

    #[test]
    fn unknown_keys_warn_with_the_closest_known_key() {
        let (_, warnings) = parse("{\"intervall\": 5, \"colour\": 1}", path()).unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("\"intervall\"") && w.contains("did you mean \"interval\""))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("\"colour\"") && !w.contains("did you mean"))
        );
    }

    #[test]
    fn a_list_is_an_array_of_one_line_strings_or_one_string() {
        let text = "{\n\"health\": [\"tcp a:1\",\n \" load 2 \"]\n}";
        let (layer, _) = parse(text, path()).unwrap();
        let health = layer.get(Key::Health).unwrap();
        assert_eq!(health.text, "tcp a:1\nload 2");
        assert_eq!(health.source.to_string(), "/etc/hb.conf:2");
        let (layer, _) = parse("{\"health\": \"disk / 90%\"}", path()).unwrap();
        assert_eq!(layer.get(Key::Health).unwrap().text, "disk / 90%");
        let errs = parse("{\"health\": [\"load 2\", true]}", path()).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .contains("has an item that is not a one-line string; expected an array"),
            "{}",
            errs[0]
        );
        let errs = parse("{\"health\": [\"a\\nb\"]}", path()).unwrap_err();
        assert!(
            errs[0].to_string().contains("not a one-line string"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_the_file() {
        let errs = parse("{\"interval\": \"30\", \"server_id\": [1]}", path()).unwrap_err();
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(
            all.iter()
                .any(|m| m.starts_with("interval") && m.contains("/etc/hb.conf"))
        );
        assert!(
            all.iter()
                .any(|m| m.starts_with("server_id") && m.contains("an array"))
        );
    }

    #[test]
    fn a_non_object_is_refused() {
        assert!(parse("[1, 2]", path()).is_err());
        assert!(parse("", path()).is_err());
        assert!(parse("\"text\"", path()).is_err());
    }

    #[test]
    fn comment_lines_and_trailing_commas_are_allowed() {
        let text = "# StackSense\n{\n  \"server_id\": \"web#1\",\n  // \"interval\": 5,\n  \"api_url\": \"http://m/#x,}\",\n#  \"timeout\": 3\n}\n";
        let (layer, warnings) = parse(text, path()).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(layer.get(Key::ServerId).unwrap().text, "web#1");
        assert_eq!(layer.get(Key::ApiUrl).unwrap().text, "http://m/#x,}");
        assert_eq!(layer.get(Key::Interval), None);
        assert_eq!(layer.get(Key::Timeout), None);
    }

    #[test]
    fn comments_keep_error_positions_right() {
        let errs = parse(
            "# comment\n{\n  \"server_id\": 1\n  \"api_url\": \"x\"\n}",
            path(),
        )
        .unwrap_err();
        assert!(
            errs[0].to_string().contains("/etc/hb.conf:4:3:"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let (layer, _) = parse("\u{feff}{\"server_id\": 3}", path()).unwrap();
        assert_eq!(layer.get(Key::ServerId).unwrap().text, "3");
    }

    #[test]
    fn a_key_given_twice_is_an_error_naming_both_lines() {
        let errs = parse(
            "{\n \"interval\": 5,\n \"server_id\": 1,\n \"interval\": 6\n}",
            path(),
        )
        .unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "config file: /etc/hb.conf:4: key \"interval\" appears twice (lines 2 and 4); keep one"
        );
        // The same name inside a nested value is not a duplicate.
        assert!(parse("{\"a\": {\"server_id\": 1}, \"server_id\": 2}", path()).is_ok());
        // Of two repeats, the one a reader meets first.
        let errs = parse(
            "{\"timeout\": 1,\n\"interval\": 5,\n\"interval\": 6,\n\"timeout\": 2}",
            path(),
        )
        .unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .contains("\"interval\" appears twice (lines 2 and 3)")
        );
    }

    #[test]
    fn a_comma_with_no_value_before_it_is_malformed() {
        for text in ["{,}", "{\"server_id\": 1,,}", "[,]"] {
            assert!(parse(text, path()).is_err(), "{text} accepted");
        }
        assert!(parse("{\"server_id\": 1,}", path()).is_ok());
    }

    #[test]
    fn a_file_of_comments_says_so() {
        let errs = parse("# {\n// \"server_id\": 1\n", path()).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .contains("/etc/hb.conf holds only comments; expected a JSON object"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn an_empty_file_says_so() {
        let errs = parse("  \n", path()).unwrap_err();
        assert!(
            errs[0].to_string().contains("/etc/hb.conf is empty"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn many_unknown_keys_are_read_in_linear_time_and_warned_about_briefly() {
        let mut text = String::from("{\n");
        for i in 0..80_000 {
            text.push_str(&format!("  \"unknown_{i}\": {i},\n"));
        }
        text.push_str("  \"server_id\": 1\n}\n");
        let started = std::time::Instant::now();
        let (layer, warnings) = parse(&text, path()).unwrap();
        // Was 22 s (a text search per key); a debug build now takes well under one.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            layer.get(Key::ServerId).unwrap().source.to_string(),
            "/etc/hb.conf:80002"
        );
        assert_eq!(warnings.len(), MAX_UNKNOWN_KEY_WARNINGS + 1);
        assert!(
            warnings
                .last()
                .unwrap()
                .ends_with("79995 more unknown key(s) ignored")
        );
    }

    #[test]
    fn an_unknown_key_cannot_forge_a_log_line() {
        let (_, warnings) = parse("{\"x\\n<0>EMERGENCY\": 1}", path()).unwrap();
        assert!(
            warnings[0].contains("\"x\\n<0>EMERGENCY\""),
            "{}",
            warnings[0]
        );
        assert!(!warnings[0].contains('\n'));
    }

    #[test]
    fn null_means_not_set() {
        let (layer, _) = parse("{\"token\": null}", path()).unwrap();
        assert_eq!(layer.get(Key::Token), None);
    }
}
