//! The JSON config file (`~/.stacksense_heartbeat.conf`), read into a [`Layer`].

use std::path::Path;

use serde_json::Value;

use super::keys::{Key, Kind};
use super::source::{Layer, Raw, Source};
use super::{About, ConfigError};

fn known_keys() -> String {
    Key::ALL.map(Key::name).join(", ")
}

/// The layer a file's text gives, and warnings for keys we do not know.
pub fn parse(text: &str, path: &Path) -> Result<(Layer, Vec<String>), Vec<ConfigError>> {
    let file_error = |message: String| vec![ConfigError::file(message)];
    let value: Value = serde_json::from_str(&relax(text)).map_err(|e| {
        // serde_json's message ends in " at line L column C"; we lead with it instead.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(head, _)| head);
        file_error(format!(
            "{}:{}:{}: malformed JSON: {message}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(file_error(format!(
            "{}: expected a JSON object like {{\"server_id\": 1, \"api_url\": \"https://...\"}}",
            path.display()
        )));
    };

    let mut layer = Layer::default();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in map {
        let source = Source::File {
            path: path.to_path_buf(),
            line: line_of_key(text, &key),
        };
        let Some(known) = Key::from_name(&key) else {
            let hint = closest_key(&key)
                .map(|k| format!(" (did you mean \"{k}\"?)"))
                .unwrap_or_default();
            warnings.push(format!(
                "{source}: unknown key \"{key}\" ignored{hint}; known keys: {}",
                known_keys()
            ));
            continue;
        };
        match text_of(known, &value) {
            Ok(Some(text)) => layer.set(known, Raw::new(text, source)),
            // `null` reads as "not set here", like an absent key.
            Ok(None) => {}
            Err(expected) => errors.push(ConfigError {
                about: About::Setting(known),
                source: Some(source),
                message: format!("has the wrong type ({}); {expected}", type_name(&value)),
            }),
        }
    }
    if errors.is_empty() {
        Ok((layer, warnings))
    } else {
        Err(errors)
    }
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
    // Trailing commas: a ',' outside strings followed only by blanks and '}' or ']'.
    let mut in_string = false;
    let mut escaped = false;
    for i in 0..out.len() {
        match out[i] {
            '\\' if in_string && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_string = !in_string,
            ',' if !in_string => {
                let next = out[i + 1..].iter().find(|c| !c.is_whitespace());
                if matches!(next, Some('}' | ']')) {
                    out[i] = ' ';
                }
            }
            _ => {}
        }
        escaped = false;
    }
    out.into_iter().collect()
}

/// The value as text for the common validators, if its JSON type fits the key.
fn text_of(key: Key, value: &Value) -> Result<Option<String>, &'static str> {
    match (key.spec().kind, value) {
        (_, Value::Null) => Ok(None),
        (Kind::Id, Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
        (Kind::Id, Value::String(s)) => Ok(Some(s.trim().to_string())),
        (Kind::Id, _) => Err("expected a whole number or a string, e.g. 1 or \"web-01\""),
        (Kind::Seconds { .. }, Value::Number(n)) => Ok(Some(n.to_string())),
        (Kind::Seconds { .. }, _) => Err("expected a number of seconds, e.g. 30"),
        (Kind::Bool, Value::Bool(b)) => Ok(Some(b.to_string())),
        (Kind::Bool, _) => Err("expected true or false"),
        (Kind::Text, Value::String(s)) => Ok(Some(s.trim().to_string())),
        (Kind::Text, _) => Err("expected a string"),
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

/// The 1-based line where `"key"` first appears as an object key. serde_json
/// keeps no positions for values, and a text search is right for any file a
/// person wrote.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(pos) = text[from..].find(&quoted) {
        let at = from + pos;
        let after = text[at + quoted.len()..].trim_start();
        if after.starts_with(':') {
            return Some(text[..at].matches('\n').count() + 1);
        }
        from = at + quoted.len();
    }
    None
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

fn edit_distance(a: &str, b: &str) -> usize {
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
    fn null_means_not_set() {
        let (layer, _) = parse("{\"token\": null}", path()).unwrap();
        assert_eq!(layer.get(Key::Token), None);
    }
}
