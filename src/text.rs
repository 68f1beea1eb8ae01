//! How text from outside the process (a reply, a header, a config key, a
//! library's error) goes into a log line: one function, [`untrusted`], so a
//! server cannot write a second line, a journald priority, a terminal escape
//! or reversed text into our log.

use std::fmt::Write;
use std::io;

/// The most characters of one outside string we put into a line. Enough for
/// any real server name, URL or error; a server cannot fill the log.
pub const MAX_UNTRUSTED_CHARS: usize = 200;

/// The token, once the config has read it: no line or body we write shows
/// it, whatever carried it there (a check that echoes its environment, a
/// job's output, a server that reflects the header).
/// Every token this process has held: a rotated one is hidden as well as
/// the one before it. Written at start and at a rotation, read for every
/// line: a read lock held for a `contains`.
static SECRETS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// What stands where the token would have been.
pub const REDACTED: &str = "<token>";

/// Registers a secret that [`untrusted`], [`redacted`] (and so every body,
/// through push/body.rs's `Outside`) and [`guard_line`] hide from then on.
pub fn hide(secret: &str) {
    if secret.is_empty() {
        return;
    }
    // A poisoned lock is still a good list: nothing panics while holding it.
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
    }
}

/// `text` with every registered secret replaced.
pub fn redacted(text: &str) -> std::borrow::Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = std::borrow::Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED).into();
        }
    }
    out
}

/// A name the kernel gives as bytes (a mount point, an interface) as
/// text: its UTF-8 as it is, each byte that is not UTF-8 as `\xHH`. Unlike
/// a lossy conversion, two names that differ only in such bytes stay two
/// names (psutil keeps them too, as surrogate escapes).
pub fn bytes_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// `text` escaped (see [`escape_into`]) and cut to [`MAX_UNTRUSTED_CHARS`].
pub fn untrusted(text: &str) -> String {
    untrusted_max(text, MAX_UNTRUSTED_CHARS)
}

/// `text` escaped and cut to `max` characters (an ellipsis marks the cut).
pub fn untrusted_max(text: &str, max: usize) -> String {
    let text = redacted(text);
    let mut out = String::with_capacity(text.len().min(max * 2));
    let too_long = text.chars().nth(max).is_some();
    for (kept, c) in text.chars().enumerate() {
        if too_long && kept == max.saturating_sub(3) {
            out.push_str("...");
            break;
        }
        escape_into(&mut out, c);
    }
    out
}

/// Writes `c`, or a visible escape for a character that could change how a
/// line reads: control characters (newline, carriage return, ESC, DEL, C1),
/// and the Unicode bidi and invisible-format controls.
pub fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// The whole of a finished log line with anything a caller forgot to escape
/// escaped; a line we wrote ourselves passes unchanged.
pub fn guard_line(line: &str) -> std::borrow::Cow<'_, str> {
    if let std::borrow::Cow::Owned(hidden) = redacted(line) {
        let mut out = String::with_capacity(hidden.len());
        for c in hidden.chars() {
            escape_into(&mut out, c);
        }
        return out.into();
    }
    if !line
        .chars()
        .any(|c| needs_escape(c) || c == '\n' || c == '\r')
    {
        return line.into();
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        escape_into(&mut out, c);
    }
    out.into()
}

/// `x` (>= 0) with at most `places` decimals, trailing zeros dropped: `90`,
/// `0.25`, `1.5`. Written with integers: float formatting would add
/// ~10 KB to the binary for a few log words.
pub fn decimal(x: f64, places: u32) -> String {
    // Loads, percentages and sizes: never negative; NaN reads as 0.
    let scale = 10u64.pow(places.min(9));
    let scaled = (x.max(0.0) * scale as f64).round() as u64;
    let (whole, mut frac, mut width) = (scaled / scale, scaled % scale, places as usize);
    while width > 0 && frac % 10 == 0 {
        frac /= 10;
        width -= 1;
    }
    if width == 0 {
        format!("{whole}")
    } else {
        format!("{whole}.{frac:0width$}")
    }
}

/// The io error without Rust's "(os error N)" tail, escaped: its text may
/// come from a library or the OS.
pub fn describe_io(e: &io::Error) -> String {
    let text = e.to_string();
    let head = match text.rsplit_once(" (os error") {
        Some((head, _)) => head,
        None => &text,
    };
    untrusted(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_short_and_exact_enough() {
        assert_eq!(decimal(90.0, 4), "90");
        assert_eq!(decimal(0.0001, 4), "0.0001");
        assert_eq!(decimal(0.52, 2), "0.52");
        assert_eq!(decimal(1.25, 1), "1.3");
        assert_eq!(decimal(2.999, 2), "3");
        assert_eq!(decimal(-1.5, 1), "0");
        assert_eq!(decimal(f64::NAN, 1), "0");
    }

    #[test]
    fn a_reply_cannot_start_a_line_or_set_a_priority() {
        assert_eq!(
            untrusted("Box\n<0>EMERGENCY reboot"),
            "Box\\n<0>EMERGENCY reboot"
        );
        assert_eq!(untrusted("a\r\nb"), "a\\r\\nb");
    }

    #[test]
    fn terminal_escapes_and_bidi_controls_become_visible() {
        assert_eq!(untrusted("\x1b[31mred\x1b[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(untrusted("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(untrusted("x\u{2066}y\u{2069}"), "x\\u{2066}y\\u{2069}");
        assert_eq!(
            untrusted("nul\0del\x7f c1\u{9b}"),
            "nul\\u{0}del\\u{7f} c1\\u{9b}"
        );
        assert_eq!(untrusted("zero\u{200b}width"), "zero\\u{200b}width");
    }

    #[test]
    fn ordinary_text_passes_unchanged() {
        for s in [
            "My Server",
            "Zürich-01 — rack 3",
            "日本語",
            "a\\nb (already escaped)",
        ] {
            assert_eq!(untrusted(s), s);
        }
    }

    #[test]
    fn long_text_is_cut_with_a_mark() {
        let long = "x".repeat(10_000);
        let cut = untrusted(&long);
        assert_eq!(cut.chars().count(), MAX_UNTRUSTED_CHARS);
        assert!(cut.ends_with("..."));
        assert_eq!(untrusted_max("abcdef", 6), "abcdef");
        assert_eq!(untrusted_max("abcdefg", 6), "abc...");
    }

    #[test]
    fn a_finished_line_is_guarded_too() {
        assert_eq!(guard_line("all ours"), "all ours");
        assert_eq!(guard_line("slipped\n<0>x"), "slipped\\n<0>x");
    }

    #[test]
    fn the_os_error_number_is_dropped() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(describe_io(&e), "No such file or directory");
        assert_eq!(describe_io(&io::Error::other("bad\nline")), "bad\\nline");
    }
}
