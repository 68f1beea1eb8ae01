//! A JSON reader for the two things the agent reads: the config file and
//! the server's small replies. It keeps what those need and serde_json does
//! not give: the line of each object member (for "file:line" in every
//! config message, and a key given twice), and numbers as they were
//! written (so `"interval": 1e1` is checked and shown as written). Writing
//! JSON is serde_json's, here as for the bodies the agent sends
//! (push/body.rs).

use std::fmt;

/// Deeper than any config file or reply; it bounds the reader's stack on
/// hostile input (serde_json stops at 128 too).
const MAX_DEPTH: usize = 128;

const NOT_A_VALUE: &str = "expected a value (a string, number, object, array, true, false or null)";

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's text, checked against JSON's grammar.
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<Member>),
}

/// One `"key": value` of an object, with the 1-based line its key is on.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub key: String,
    pub line: usize,
    pub value: Value,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The member `key` of an object; the last one when it is given twice,
    /// as most JSON readers do.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members
                .iter()
                .rev()
                .find(|m| m.key == key)
                .map(|m| &m.value),
            _ => None,
        }
    }
}

/// Compact JSON, as the value would be sent.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => f.write_str(n),
            Value::String(s) => {
                let quoted = serde_json::to_string(&*crate::text::redacted(s));
                f.write_str(&quoted.map_err(|_| fmt::Error)?)
            }
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Object(members) => {
                f.write_str("{")?;
                for (i, m) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{}", Value::String(m.key.clone()), m.value)?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Where the text stops being JSON, and why.
#[derive(Debug, PartialEq)]
pub struct Error {
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub what: &'static str,
}

/// The one JSON value `text` holds (with only whitespace around it).
pub fn parse(text: &[u8]) -> Result<Value, Error> {
    let mut reader = Reader {
        text,
        at: 0,
        line: 1,
    };
    let value = reader.value(0)?;
    reader.blanks();
    if reader.at < text.len() {
        return Err(reader.error("more text after the value"));
    }
    Ok(value)
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
    /// The line `at` is on: line breaks are only ever blanks between
    /// tokens (one inside a string is an error).
    line: usize,
}

impl Reader<'_> {
    fn error(&self, what: &'static str) -> Error {
        let before = &self.text[..self.at.min(self.text.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        // Characters, not bytes: a column counts what an editor shows.
        let column = 1 + before[line_start..]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count();
        Error { line, column, what }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn blanks(&mut self) {
        while let Some(b @ (b' ' | b'\t' | b'\n' | b'\r')) = self.peek() {
            self.line += usize::from(b == b'\n');
            self.at += 1;
        }
    }

    /// `word` at the reader, which has seen its first byte.
    fn word(&mut self, word: &[u8], value: Value) -> Result<Value, Error> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error(NOT_A_VALUE))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        self.blanks();
        match self.peek() {
            None => Err(self.error("the text ends where a value should be")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.word(b"true", Value::Bool(true)),
            Some(b'f') => self.word(b"false", Value::Bool(false)),
            Some(b'n') => self.word(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error(NOT_A_VALUE)),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.at += 1;
        let mut members = Vec::new();
        self.blanks();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.blanks();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.error("the text ends inside an object")),
                Some(_) => return Err(self.error("expected a key in double quotes")),
            }
            let line = self.line;
            let key = self.string()?;
            self.blanks();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':' after the key"));
            }
            self.at += 1;
            let value = self.value(depth)?;
            members.push(Member { key, line, value });
            self.blanks();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                None => return Err(self.error("the text ends inside an object")),
                Some(_) => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.at += 1;
        let mut items = Vec::new();
        self.blanks();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.blanks();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.error("the text ends inside an array")),
                Some(_) => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    /// JSON's number grammar; the text is kept as written.
    fn number(&mut self) -> Result<Value, Error> {
        let start = self.at;
        let digits = |r: &mut Self| {
            let from = r.at;
            while let Some(b'0'..=b'9') = r.peek() {
                r.at += 1;
            }
            r.at - from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        let whole = digits(self);
        let bad = |r: &Self| Err(r.error("is not a number as JSON writes them"));
        if whole == 0 || (whole > 1 && self.text[int_start] == b'0') {
            return bad(self);
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return bad(self);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if digits(self) == 0 {
                return bad(self);
            }
        }
        // Only ASCII was consumed.
        let text = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
        Ok(Value::Number(text))
    }

    /// A string at the reader's `"`, its escapes decoded.
    fn string(&mut self) -> Result<String, Error> {
        self.at += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("the text ends inside a string"));
            };
            match b {
                b'"' => {
                    self.at += 1;
                    break;
                }
                b'\\' => {
                    self.at += 1;
                    let c = self.escape()?;
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => {
                    return Err(self.error(
                        "a control character (a line break?) inside a string; write it as \\n",
                    ));
                }
                _ => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| self.error("a string that is not UTF-8"))
    }

    /// The character of the escape after a `\`.
    fn escape(&mut self) -> Result<char, Error> {
        let bad = |r: &Self| Err(r.error("an unknown escape in a string"));
        let Some(b) = self.peek() else {
            return bad(self);
        };
        self.at += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&first) {
                    // A surrogate pair: the second half must follow.
                    if !self.text[self.at..].starts_with(b"\\u") {
                        return Err(self.error("half of a \\u surrogate pair"));
                    }
                    self.at += 2;
                    let second = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err(self.error("half of a \\u surrogate pair"));
                    }
                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                } else {
                    first
                };
                match char::from_u32(code) {
                    Some(c) => c,
                    None => return Err(self.error("half of a \\u surrogate pair")),
                }
            }
            _ => {
                self.at -= 1;
                return bad(self);
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self.peek().and_then(|b| (b as char).to_digit(16));
            let Some(digit) = digit else {
                return Err(self.error("\\u needs four hex digits"));
            };
            code = code * 16 + digit;
            self.at += 1;
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Value {
        parse(text.as_bytes()).unwrap()
    }

    fn err(text: &str) -> Error {
        parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn reads_what_serde_json_reads() {
        let cases = [
            r#"{"a": [1, -2.5e3, true, false, null], "b": {}}"#,
            r#""x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#,
            "[]",
            "  0  ",
            r#""é""#,
            "[[[[1]]]]",
            "1E+2",
        ];
        for text in cases {
            let ours = ok(text);
            let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
            let again: serde_json::Value = serde_json::from_str(&ours.to_string()).unwrap();
            assert_eq!(again, theirs, "{text}");
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        let cases = [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "1e",
            ".5",
            "tru",
            "\"a",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\ud800\\u0041\"",
            "\"\\u12\"",
            "{1:2}",
            "{\"a\" 1}",
            "[1 2]",
            "1 2",
            "\"tab\there\"",
            "nul",
            "[",
            "{\"a\":",
        ];
        for text in cases {
            assert!(parse(text.as_bytes()).is_err(), "{text:?} accepted");
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_err(),
                "{text:?}"
            );
        }
        assert!(parse(b"\"\xff\"").is_err());
    }

    #[test]
    fn errors_name_the_line_and_column_in_characters() {
        let e = err("{\n  \"a\": \"é\"\n  \"b\": 1\n}");
        assert_eq!((e.line, e.column, e.what), (3, 3, "expected ',' or '}'"));
        let e = err("{\"é\": x}");
        assert_eq!((e.line, e.column), (1, 7));
        assert_eq!(err("[1,").what, "the text ends where a value should be");
    }

    #[test]
    fn members_keep_their_order_line_and_text() {
        let v = ok("{\n\"interval\": 1e1,\n\n\"id\": 007.5e0, \"id\": 2}"
            .replace("007", "7")
            .as_str());
        let Value::Object(members) = &v else {
            panic!("{v:?}")
        };
        let lines: Vec<(&str, usize)> = members.iter().map(|m| (m.key.as_str(), m.line)).collect();
        assert_eq!(lines, [("interval", 2), ("id", 4), ("id", 4)]);
        assert_eq!(members[0].value, Value::Number("1e1".into()));
        assert_eq!(v.get("id"), Some(&Value::Number("2".into())));
        assert_eq!(v.get("nope"), None);
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(deep.as_bytes()).is_ok());
        let deeper = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(err(&deeper).what, "nested too deeply");
        let hostile = "[".repeat(1_000_000);
        assert_eq!(err(&hostile).what, "nested too deeply");
    }
}
