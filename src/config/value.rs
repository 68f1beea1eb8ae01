//! Parsers for single values. Each returns what was expected on failure; the
//! caller adds the setting's name and where the value came from.

use std::time::Duration;

/// 1-64 characters of `A-Za-z0-9._-`: the id goes into a URL path segment.
pub fn server_id(text: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected 1-64 characters of A-Z a-z 0-9 . _ - (the server's id from the StackSense dashboard)";
    let problem = if text.is_empty() {
        "is empty".to_string()
    } else if text.chars().count() > 64 {
        format!("is {} characters long", text.chars().count())
    } else if let Some(c) = text
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        format!("contains {}", char_name(c))
    } else if text.bytes().all(|b| b == b'.') {
        // "." and ".." are legal characters but would walk up the URL path.
        "is only dots".to_string()
    } else {
        return Ok(text.to_string());
    };
    Err(format!("{problem}; {EXPECTED}"))
}

/// A character as a person can see it in an error message.
fn char_name(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '/' => "a '/' (the id is one path segment, not a URL)".into(),
        c if c.is_control() || !c.is_ascii() => format!("the character {}", c.escape_unicode()),
        c => format!("'{c}'"),
    }
}

/// The base an `api_url` probably meant when it already carries the API
/// path (`.../api` or `.../api/heartbeat[/<id>]`); None when it looks right.
pub fn api_url_base_guess(api_url: &str) -> Option<String> {
    let lower = api_url.to_ascii_lowercase();
    let cut = match lower.find("/api/heartbeat") {
        Some(at) => at,
        None if lower.ends_with("/api") => lower.len() - "/api".len(),
        None => return None,
    };
    Some(api_url[..cut].to_string())
}

/// Why a text is not a base URL. The words depend on who asks (the
/// server's `api_url`, an http check), so the caller words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadUrl {
    /// Not a URL at all (the parser's words).
    Unparsable(String),
    Scheme(Option<String>),
    NoHost,
    Credentials,
    Port,
    QueryOrFragment,
}

impl BadUrl {
    /// "has no host; expected ..., e.g. `example`"; `credentials` says what
    /// to do instead of user:password@.
    pub fn words(&self, example: &str, credentials: &str) -> String {
        let expected = format!("expected an http:// or https:// URL with a host, e.g. {example}");
        match self {
            BadUrl::Unparsable(why) => format!("is not a valid URL ({why}); {expected}"),
            BadUrl::Scheme(Some(other)) => format!("has scheme {other}:; {expected}"),
            BadUrl::Scheme(None) => format!("has no scheme; {expected}"),
            BadUrl::NoHost => format!("has no host; {expected}"),
            BadUrl::Credentials => format!("contains user:password@; {credentials}"),
            BadUrl::Port => format!("has an invalid port; {expected}"),
            BadUrl::QueryOrFragment => format!("must not carry a ?query or #fragment; {expected}"),
        }
    }
}

/// The monitoring server's base URL (see [`base_url`]), in `api_url`'s words.
pub fn api_url(text: &str) -> Result<String, String> {
    base_url(text).map_err(|e| {
        e.words(
            "https://monitor.example.com",
            "put credentials in the token instead",
        )
    })
}

/// An `http://` or `https://` base URL with a host and an optional path
/// prefix; returned without trailing slashes so joining never makes `//`.
/// Not inlined: http checks validate their URLs with it too.
#[inline(never)]
pub fn base_url(text: &str) -> Result<String, BadUrl> {
    let uri: ureq::http::Uri = text
        .parse()
        .map_err(|e: ureq::http::uri::InvalidUri| BadUrl::Unparsable(e.to_string()))?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        other => return Err(BadUrl::Scheme(other.map(str::to_string))),
    }
    let Some(authority) = uri.authority() else {
        return Err(BadUrl::NoHost);
    };
    if authority.as_str().contains('@') {
        return Err(BadUrl::Credentials);
    }
    if authority.host().is_empty() {
        return Err(BadUrl::NoHost);
    }
    // The part after an IPv6 literal's `]`, where a port would be.
    let host_tail = authority
        .as_str()
        .rsplit_once(']')
        .map_or(authority.as_str(), |(_, tail)| tail);
    if host_tail
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(BadUrl::Port);
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(BadUrl::QueryOrFragment);
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// Would a request to this (validated) API URL cross the network in clear
/// text? Plain http:// to anything but a loopback address does.
pub fn sends_in_clear(api_url: &str) -> bool {
    let Ok(uri) = api_url.parse::<ureq::http::Uri>() else {
        return false;
    };
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http"))
    {
        return false;
    }
    let host = uri.host().unwrap_or("");
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// Seconds as a decimal number within `min..=max`.
pub fn seconds(text: &str, min: f64, max: f64) -> Result<Duration, String> {
    let expected = format!("expected a number of seconds from {min} to {max}, e.g. 30");
    let secs =
        crate::number::parse_decimal(text).ok_or_else(|| format!("is not a number; {expected}"))?;
    if !secs.is_finite() || secs < min || secs > max {
        return Err(format!("is out of range; {expected}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn boolean(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false (also 1/0, yes/no, on/off)".into()),
    }
}

/// A bearer token must be a single line of visible ASCII to be sent as a header.
pub fn token(text: &str) -> Result<String, String> {
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err("is empty; expected the bearer token".into());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "contains spaces, control or non-ASCII characters; expected a single-line bearer token"
                .into(),
        );
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_url_that_carries_the_endpoint_is_noticed() {
        let guess = |u: &str| api_url_base_guess(u);
        assert_eq!(
            guess("https://m.example.com/api").as_deref(),
            Some("https://m.example.com")
        );
        assert_eq!(
            guess("https://m.example.com/x/api/heartbeat/7").as_deref(),
            Some("https://m.example.com/x")
        );
        assert_eq!(
            guess("https://m.example.com/API/Heartbeat").as_deref(),
            Some("https://m.example.com")
        );
        assert_eq!(guess("https://m.example.com"), None);
        assert_eq!(guess("https://m.example.com/apis"), None);
        assert_eq!(guess("https://api.example.com"), None);
    }

    #[test]
    fn server_ids_follow_the_url_safe_alphabet() {
        for ok in ["1", "web-01", "a.b_c-D9", &"x".repeat(64)] {
            assert_eq!(server_id(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "a b", "a/b", "é", "..", ".", &"x".repeat(65), "1?x"] {
            assert!(server_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn api_urls_are_checked_and_lose_trailing_slashes() {
        assert_eq!(api_url("http://h").as_deref(), Ok("http://h"));
        assert_eq!(api_url("https://h:8443/").as_deref(), Ok("https://h:8443"));
        assert_eq!(
            api_url("https://h/prefix//").as_deref(),
            Ok("https://h/prefix")
        );
        assert_eq!(api_url("HTTP://[::1]:80").as_deref(), Ok("HTTP://[::1]:80"));
        for bad in [
            "",
            "monitor.example.com",
            "ftp://h",
            "http://",
            "http:///path",
            "http://u:p@h",
            "http://h?x=1",
            "http://h/#frag",
            "http://h:99999",
            "not a url",
        ] {
            assert!(api_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn clear_text_is_http_beyond_loopback() {
        assert!(sends_in_clear("http://monitor.example.com"));
        assert!(sends_in_clear("HTTP://10.0.0.5:8080/x"));
        assert!(!sends_in_clear("https://monitor.example.com"));
        assert!(!sends_in_clear("http://127.0.0.1:9"));
        assert!(!sends_in_clear("http://[::1]:9"));
        assert!(!sends_in_clear("http://localhost:8080"));
    }

    #[test]
    fn seconds_accept_fractions_within_range() {
        assert_eq!(seconds("30", 0.1, 86400.0), Ok(Duration::from_secs(30)));
        assert_eq!(
            seconds("0.25", 0.1, 86400.0),
            Ok(Duration::from_millis(250))
        );
        for bad in ["0", "abc", "-1", "NaN", "inf", "86401", "0.05", "30s", ""] {
            assert!(seconds(bad, 0.1, 86400.0).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn booleans_take_the_usual_spellings() {
        assert_eq!(boolean("TRUE"), Ok(true));
        assert_eq!(boolean("off"), Ok(false));
        assert!(boolean("maybe").is_err());
    }

    #[test]
    fn tokens_must_fit_in_a_header() {
        assert_eq!(token("abc.def\n").as_deref(), Ok("abc.def"));
        assert!(token("").is_err());
        assert!(token("\n").is_err());
        assert!(token("two words").is_err());
        assert!(token("line\nbreak").is_err());
    }
}
