//! What an HTTP status means, in words fit for the reply it came with.

use std::time::{Duration, SystemTime};

use super::{Class, Failure};
use crate::clock;
use crate::config::Api;
use crate::config::api::MAKE_A_TOKEN;
use crate::text;

/// Statuses that mean "not now" rather than "not like this".
const RETRYABLE_STATUSES: [u16; 7] = [408, 425, 429, 500, 502, 503, 504];

/// The request a reply answers, as its failure line needs it.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// `host:port`.
    pub origin: &'a str,
    pub method: &'a str,
    pub url: &'a str,
    /// An `Authorization` header went with it.
    pub token: bool,
    pub api: Api,
}

/// A non-2xx status as a failure. `body` is the start of the reply: what
/// the server says there (a JSON `error`, a page's title, a first line) is
/// quoted, escaped. A rejection names the whole URL: a 404 is nearly
/// always a wrong path, and the path is what the reader has to see.
pub fn status_failure(
    status: u16,
    retry_after: Option<&str>,
    location: Option<&str>,
    body: &[u8],
    sent: Sent,
    now: SystemTime,
) -> Failure {
    let reason_phrase = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut reason = format!("HTTP {status} {reason_phrase}")
        .trim_end()
        .to_string();
    if RETRYABLE_STATUSES.contains(&status) {
        reason.push_str(&format!(" from {}", sent.origin));
    } else {
        reason.push_str(&format!(
            " for {} {}",
            sent.method,
            text::untrusted(sent.url)
        ));
    }
    let said = server_said(body);
    let csrf = status == 403 && is_csrf_page(body);
    if csrf {
        reason.push_str(
            ": the server refuses anonymous POSTs to the legacy endpoint (Django's CSRF check: \
             \"CSRF verification failed\")",
        );
    } else if !said.is_empty() {
        reason.push_str(&format!(": {said}"));
    }
    let no_token = || format!("no token is configured; the agent API needs one: {MAKE_A_TOKEN}");
    let (class, hint) = match status {
        s if RETRYABLE_STATUSES.contains(&s) => (Class::Retryable, None),
        300..=399 => {
            let mut hint = "set api_url to the server's base address".to_string();
            if let Some(to) = location {
                reason.push_str(&format!(" (redirects to {})", text::untrusted(to)));
                // The base, not the endpoint it redirected to.
                let base = crate::config::value::api_url_base_guess(to)
                    .unwrap_or_else(|| to.trim_end_matches('/').to_string());
                hint = format!("set api_url to {}", text::untrusted(&base));
            }
            (Class::Fatal, Some(hint))
        }
        403 if csrf => (
            Class::Fatal,
            Some(format!(
                "use the agent API: {MAKE_A_TOKEN}, set it as STACKSENSE_TOKEN (or token_file) \
                 and remove server_id (or set api to agent)"
            )),
        ),
        401 | 403 if !sent.token => (Class::Fatal, Some(no_token())),
        401 => (
            Class::Fatal,
            Some(format!(
                "the server did not accept the token: check it, or {MAKE_A_TOKEN} (running it \
                 again rotates the token)"
            )),
        ),
        403 => (
            Class::Fatal,
            Some("check the token and what it may do".into()),
        ),
        404 => (
            Class::Fatal,
            Some(match sent.api {
                Api::Agent => "check api_url: it is the server's base URL, without /api/...; \
                    an older server without the agent API wants api legacy"
                    .into(),
                Api::Legacy => "check server_id and api_url".into(),
            }),
        ),
        405 => (
            Class::Fatal,
            Some(format!(
                "the server takes no {} there: check that api_url is the StackSense server's \
                 base URL",
                sent.method
            )),
        ),
        413 => (
            Class::Fatal,
            Some("the server refused the body as too large: report less (--report)".into()),
        ),
        _ => (Class::Fatal, None),
    };
    Failure {
        class,
        reason,
        retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        hint,
        timed_out: false,
    }
}

/// Django's CSRF failure page, as the legacy endpoint answers an anonymous POST.
fn is_csrf_page(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains("CSRF verification failed") || text.contains("CSRF cookie")
}

/// What a reply body says, for a failure line: a JSON `error` (or
/// `detail`) quoted as the server's words, an HTML page by its title,
/// anything else by its first line; escaped and short.
fn server_said(body: &[u8]) -> String {
    if let Ok(map @ crate::json::Value::Object(_)) = crate::json::parse(body)
        && let Some(words) = ["error", "detail", "message"]
            .iter()
            .find_map(|k| map.get(k).and_then(|v| v.as_str()))
    {
        return format!("server says \"{}\"", text::untrusted_max(words, 120));
    }
    let page = String::from_utf8_lossy(body);
    if let Some((_, after)) = page.split_once("<title>")
        && let Some((title, _)) = after.split_once("</title>")
    {
        let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
        return format!("a page titled \"{}\"", text::untrusted_max(&title, 120));
    }
    let excerpt = excerpt(body);
    if excerpt.is_empty() {
        excerpt
    } else {
        format!("\"{excerpt}\"")
    }
}

/// `Retry-After` as seconds or an HTTP date; a date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = clock::parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The first line of a body, escaped and short, for a log line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    text::untrusted_max(line, 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    const LEGACY: Sent = Sent {
        origin: "h:80",
        method: "POST",
        url: "http://h/api/heartbeat/1/",
        token: true,
        api: Api::Legacy,
    };

    const AGENT: Sent = Sent {
        origin: "h:80",
        method: "POST",
        url: "http://h/api/agent/heartbeat/",
        token: true,
        api: Api::Agent,
    };

    fn status(code: u16) -> Failure {
        status_failure(code, None, None, b"", LEGACY, NOW)
    }

    fn hint(f: &Failure) -> &str {
        f.hint.as_deref().unwrap_or("")
    }

    #[test]
    fn transient_statuses_are_retryable() {
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(status(code).class, Class::Retryable, "{code}");
        }
    }

    #[test]
    fn other_failures_wait_for_the_next_slot_with_a_hint() {
        assert_eq!(status(404).class, Class::Fatal);
        assert_eq!(hint(&status(404)), "check server_id and api_url");
        assert!(hint(&status(401)).contains("did not accept the token"));
        assert!(hint(&status(403)).contains("check the token"));
        for code in [400, 405, 410, 422, 501, 301] {
            assert_eq!(status(code).class, Class::Fatal, "{code}");
        }
    }

    #[test]
    fn the_reason_names_status_origin_and_what_the_server_said() {
        let f = status_failure(
            503,
            None,
            None,
            b"\n  down for maintenance\r\nmore",
            LEGACY,
            NOW,
        );
        assert_eq!(
            f.reason,
            "HTTP 503 Service Unavailable from h:80: \"down for maintenance\""
        );
        let f = status_failure(
            404,
            None,
            None,
            b"",
            Sent {
                url: "http://h/api/api/heartbeat/1/",
                ..LEGACY
            },
            NOW,
        );
        assert_eq!(
            f.reason,
            "HTTP 404 Not Found for POST http://h/api/api/heartbeat/1/"
        );
        let f = status_failure(301, None, Some("https://h/"), b"", LEGACY, NOW);
        assert!(
            f.reason.ends_with("(redirects to https://h/)"),
            "{}",
            f.reason
        );
        let long = vec![b'x'; 5000];
        assert!(
            status_failure(500, None, None, &long, LEGACY, NOW)
                .reason
                .len()
                < 200
        );
    }

    #[test]
    fn the_servers_own_words_are_quoted_and_the_hint_fits_the_request() {
        // The agent API's 401 body, quoted; a token was sent.
        let body = br#"{"error":"invalid or disabled token"}"#;
        let f = status_failure(401, None, None, body, AGENT, NOW);
        assert_eq!(
            f.reason,
            "HTTP 401 Unauthorized for POST http://h/api/agent/heartbeat/: server says \"invalid or disabled token\""
        );
        assert!(hint(&f).contains("create_agent_token"), "{f:?}");
        // No token was sent: the hint says so rather than "check the token".
        let f = status_failure(
            401,
            None,
            None,
            body,
            Sent {
                token: false,
                ..AGENT
            },
            NOW,
        );
        assert!(hint(&f).starts_with("no token is configured"), "{f:?}");
        // Django's CSRF page on the legacy endpoint.
        let page = b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>403 Forbidden</title></head><body><h1>Forbidden <span>(403)</span></h1><p>CSRF verification failed. Request aborted.</p>";
        let f = status_failure(
            403,
            None,
            None,
            page,
            Sent {
                token: false,
                ..LEGACY
            },
            NOW,
        );
        assert!(
            f.reason
                .contains("refuses anonymous POSTs to the legacy endpoint"),
            "{f:?}"
        );
        assert!(hint(&f).contains("use the agent API") && hint(&f).contains("create_agent_token"));
        // Another page is named by its title, not by "<!DOCTYPE html>".
        let f = status_failure(
            500,
            None,
            None,
            b"<!DOCTYPE html><title>Server Error</title>",
            AGENT,
            NOW,
        );
        assert!(
            f.reason.ends_with(": a page titled \"Server Error\""),
            "{}",
            f.reason
        );
        let f = status_failure(405, None, None, b"", AGENT, NOW);
        assert!(hint(&f).contains("takes no POST"), "{f:?}");
        let f = status_failure(
            413,
            None,
            None,
            br#"{"error":"payload too large"}"#,
            AGENT,
            NOW,
        );
        assert!(f.reason.contains("payload too large") && hint(&f).contains("too large"));
        let f = status_failure(404, None, None, b"", AGENT, NOW);
        assert!(hint(&f).contains("base URL"), "{f:?}");
    }

    #[test]
    fn a_redirect_hint_proposes_a_base_not_the_endpoint() {
        let to = Some("https://h/mon/api/heartbeat/7/");
        let f = status_failure(301, None, to, b"", LEGACY, NOW);
        assert_eq!(hint(&f), "set api_url to https://h/mon");
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("2", NOW), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", NOW),
            Some(Duration::from_secs(60))
        );
        let later = NOW + Duration::from_secs(3600);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", later),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", NOW), None);
        assert_eq!(parse_retry_after("-5", NOW), None);
        let f = status_failure(429, Some("7"), None, b"", LEGACY, NOW);
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
    }
}
