//! The `health` setting: one check as written (`tcp 127.0.0.1:5432`,
//! `disk /var 90%`, ...), read into what to probe. The same text comes from
//! a flag, the environment or the file; the config layer adds where it
//! came from to any error. checks/ runs what this reads.
//!
//! The parsers are `#[inline(never)]`: inlined into `config::load` they
//! made the binary 700 bytes bigger.

use std::path::PathBuf;
use std::time::Duration;

use super::value;
use crate::number::parse_decimal;
use crate::text;

/// A check's limit when it names none: a local service that takes longer
/// than this to answer is not healthy.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub const SYNTAX: &str = "expected one of: tcp HOST:PORT | http URL | cmd PROGRAM [ARGS...] | \
                          disk PATH MAX% | memory MIN% | memory MIN{K,M,G} | load MAX, \
                          optionally with timeout=SECS after the kind";

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The check as a person wrote it, without its timeout: its name in
    /// log lines, `--check` and report bodies.
    pub name: String,
    pub probe: Probe,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Tcp {
        host: String,
        port: u16,
    },
    /// GET, expecting 2xx.
    Http {
        url: String,
    },
    /// Run without a shell; exit 0 passes.
    Cmd {
        argv: Vec<String>,
    },
    /// Used space must stay below `max_percent`.
    Disk {
        path: PathBuf,
        max_percent: f64,
    },
    /// Available memory must stay at or above this.
    Memory(MinMemory),
    /// The 1-minute load average divided by the online CPUs must stay below this.
    Load {
        max_per_cpu: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinMemory {
    Percent(f64),
    Bytes(u64),
}

/// Reads one check. The error says what is wrong and what was expected;
/// it does not repeat the text (the caller shows it).
#[inline(never)]
pub fn parse(text: &str) -> Result<Check, String> {
    // Refused rather than escaped: every message and log line quotes the
    // check's words, and a newline or a bidi override has no business there.
    if text.chars().any(|c| c != '\t' && text::needs_escape(c)) {
        return Err(
            "contains a control or invisible formatting character; expected a check \
                    on one line of visible text"
                .into(),
        );
    }
    let words = split_words(text)?;
    let Some((kind, rest)) = words.split_first() else {
        return Err(format!("is empty; {SYNTAX}"));
    };
    let mut timeout = DEFAULT_CHECK_TIMEOUT;
    let mut args = rest;
    while let Some((first, tail)) = args.split_first() {
        let Some(secs) = first.strip_prefix("timeout=") else {
            break;
        };
        timeout = value::seconds(secs, 0.1, 3600.0).map_err(|e| format!("timeout {e}"))?;
        args = tail;
    }
    let probe = match kind.to_ascii_lowercase().as_str() {
        "tcp" => tcp(one(args, "tcp HOST:PORT, e.g. tcp 127.0.0.1:5432")?)?,
        "http" | "https" => http(one(args, "http URL, e.g. http://127.0.0.1:8080/health")?)?,
        "cmd" => {
            if args.is_empty() {
                return Err("names no command; expected cmd PROGRAM [ARGS...]".into());
            }
            Probe::Cmd {
                argv: args.to_vec(),
            }
        }
        "disk" => disk(args)?,
        "memory" | "mem" => Probe::Memory(memory(one(
            args,
            "memory MIN% or memory MIN{K,M,G}, e.g. memory 10% or memory 200M",
        )?)?),
        "load" => load(one(args, "load MAX, e.g. load 2 (per CPU)")?)?,
        _ => return Err(format!("has an unknown kind \"{kind}\"; {SYNTAX}")),
    };
    let mut name = vec![kind.to_ascii_lowercase()];
    name.extend(args.iter().map(|a| quoted(a)));
    Ok(Check {
        name: name.join(" "),
        probe,
        timeout,
    })
}

fn one<'a>(args: &'a [String], expected: &str) -> Result<&'a str, String> {
    match args {
        [one] => Ok(one),
        [] => Err(format!("is incomplete; expected {expected}")),
        _ => Err(format!("has {} arguments; expected {expected}", args.len())),
    }
}

#[inline(never)]
fn tcp(target: &str) -> Result<Probe, String> {
    const EXPECTED: &str = "expected tcp HOST:PORT, e.g. tcp 127.0.0.1:5432 or tcp [::1]:6379";
    let Some((host, port)) = target.rsplit_once(':') else {
        return Err(format!("has no port; {EXPECTED}"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("has no host; {EXPECTED}"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Probe::Tcp {
            host: host.to_string(),
            port,
        }),
        _ => Err(format!("has an invalid port; {EXPECTED}")),
    }
}

#[inline(never)]
fn http(url: &str) -> Result<Probe, String> {
    // The same rules as api_url (scheme, host, port, no credentials),
    // except that a health endpoint may well carry a ?query.
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    value::base_url(base).map_err(|e| {
        e.words(
            "http://127.0.0.1:8080/health",
            "a check cannot send it; use a cmd check with curl",
        )
    })?;
    Ok(Probe::Http {
        url: url.to_string(),
    })
}

#[inline(never)]
fn disk(args: &[String]) -> Result<Probe, String> {
    const EXPECTED: &str = "expected disk PATH MAX%, e.g. disk / 90% (fails at 90% used)";
    let [path, max] = args else {
        return Err(format!("is incomplete; {EXPECTED}"));
    };
    if !path.starts_with('/') {
        return Err(format!("has a relative path; {EXPECTED}"));
    }
    let max_percent = percent(max).ok_or_else(|| format!("has no valid MAX%; {EXPECTED}"))?;
    Ok(Probe::Disk {
        path: PathBuf::from(path),
        max_percent,
    })
}

#[inline(never)]
fn memory(min: &str) -> Result<MinMemory, String> {
    const EXPECTED: &str = "expected memory MIN% (of the total) or MIN with K, M or G (1024-based), \
                            e.g. memory 10% or memory 200M";
    if min.ends_with('%') {
        return percent(min)
            .map(MinMemory::Percent)
            .ok_or_else(|| format!("has an invalid percentage; {EXPECTED}"));
    }
    let digits = min.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &min[digits.len()..];
    // K, KB, KiB (any case) all mean 1024: memory is counted in KiB.
    let upper = unit.to_ascii_uppercase();
    let prefix = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let scale: u64 = match prefix {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("has an unknown unit \"{unit}\"; {EXPECTED}")),
    };
    match parse_decimal(digits) {
        Some(n) if n.is_finite() && n > 0.0 && n * (scale as f64) < u64::MAX as f64 => {
            Ok(MinMemory::Bytes((n * scale as f64) as u64))
        }
        _ => Err(format!("has an invalid size; {EXPECTED}")),
    }
}

#[inline(never)]
fn load(max: &str) -> Result<Probe, String> {
    match parse_decimal(max) {
        Some(max_per_cpu)
            if max_per_cpu.is_finite() && max_per_cpu > 0.0 && max_per_cpu <= 1000.0 =>
        {
            Ok(Probe::Load { max_per_cpu })
        }
        _ => Err(
            "has an invalid limit; expected load MAX, a number above 0 (the 1-minute \
                  load average per CPU), e.g. load 2"
                .into(),
        ),
    }
}

/// `90%` or `90` as a percentage in (0, 100].
fn percent(text: &str) -> Option<f64> {
    let n = parse_decimal(text.strip_suffix('%').unwrap_or(text))?;
    (n.is_finite() && n > 0.0 && n <= 100.0).then_some(n)
}

/// Words split on blanks, with '...' and "..." grouping (no other escapes):
/// enough to write `cmd sh -c 'pg_isready -q && test -f /run/ok'`.
#[inline(never)]
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.get_or_insert_with(String::new).push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            None if c.is_whitespace() => words.extend(word.take()),
            None => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("has an unclosed {q}; close it or remove it"));
    }
    words.extend(word);
    Ok(words)
}

/// A word as it would be written back: quoted when it holds a blank.
fn quoted(word: &str) -> String {
    if word.is_empty() || word.contains(char::is_whitespace) {
        let q = if word.contains('\'') { '"' } else { '\'' };
        format!("{q}{word}{q}")
    } else {
        word.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_with_its_name() {
        let c = parse("tcp 127.0.0.1:5432").unwrap();
        assert_eq!(c.name, "tcp 127.0.0.1:5432");
        assert_eq!(
            c.probe,
            Probe::Tcp {
                host: "127.0.0.1".into(),
                port: 5432
            }
        );
        assert_eq!(c.timeout, DEFAULT_CHECK_TIMEOUT);
        assert_eq!(
            parse("tcp [::1]:6379").unwrap().probe,
            Probe::Tcp {
                host: "::1".into(),
                port: 6379
            }
        );
        let c = parse("http timeout=2 http://127.0.0.1:8080/health?full=1").unwrap();
        assert_eq!(c.name, "http http://127.0.0.1:8080/health?full=1");
        assert_eq!(c.timeout, Duration::from_secs(2));
        // api_url's rules in a check's words: its example, and curl for credentials.
        let err = |text| parse(text).map(|_| ()).unwrap_err();
        assert!(err("http ftp://h/x").contains("e.g. http://127.0.0.1:8080/health"));
        assert!(err("http http://u:p@h/x").contains("use a cmd check with curl"));
        let c = parse("cmd  sh -c 'pg_isready -q; exit $?'").unwrap();
        assert_eq!(
            c.probe,
            Probe::Cmd {
                argv: vec!["sh".into(), "-c".into(), "pg_isready -q; exit $?".into()]
            }
        );
        assert_eq!(c.name, "cmd sh -c 'pg_isready -q; exit $?'");
        assert_eq!(
            parse("disk /var 90%").unwrap().probe,
            Probe::Disk {
                path: "/var".into(),
                max_percent: 90.0
            }
        );
        assert_eq!(
            parse("memory 10%").unwrap().probe,
            Probe::Memory(MinMemory::Percent(10.0))
        );
        assert_eq!(
            parse("memory 200M").unwrap().probe,
            Probe::Memory(MinMemory::Bytes(200 << 20))
        );
        assert_eq!(
            parse("memory 1.5GiB").unwrap().probe,
            Probe::Memory(MinMemory::Bytes(3 << 29))
        );
        assert_eq!(
            parse("load 2").unwrap().probe,
            Probe::Load { max_per_cpu: 2.0 }
        );
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        let cases = [
            ("", "is empty"),
            ("ping 1.2.3.4", "unknown kind \"ping\""),
            ("tcp localhost", "has no port"),
            ("tcp :80", "has no host"),
            ("tcp h:0", "invalid port"),
            ("tcp h:99999", "invalid port"),
            ("tcp a:1 b:2", "has 2 arguments"),
            ("http ftp://x", "scheme ftp"),
            ("http http://u:p@h/", "user:password@"),
            ("cmd", "names no command"),
            ("cmd timeout=1", "names no command"),
            ("cmd 'unclosed", "unclosed '"),
            ("disk var 90%", "relative path"),
            ("disk / 190%", "no valid MAX%"),
            ("disk /", "incomplete"),
            ("memory 10 parsecs", "has 2 arguments"),
            ("memory 0%", "invalid percentage"),
            ("memory 5X", "unknown unit \"X\""),
            ("load -1", "invalid limit"),
            ("load nan", "invalid limit"),
            ("tcp timeout=0 h:1", "timeout is out of range"),
            ("tcp timeout=soon h:1", "timeout is not a number"),
            ("cmd 'a\nb'", "control or invisible"),
            ("\u{202e}pct 1", "control or invisible"),
            ("memory 5\u{200b}G", "control or invisible"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(
                ["expected", "close it", "cannot"]
                    .iter()
                    .any(|w| err.contains(w)),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn words_group_quotes_and_keep_empty_ones() {
        assert_eq!(
            split_words(r#"a "b c" '' d'e f'g"#).unwrap(),
            vec!["a", "b c", "", "de fg"]
        );
    }
}
