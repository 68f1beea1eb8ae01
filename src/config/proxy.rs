//! Which proxy a beat goes through, by the environment variables curl users
//! know, and refusal of any proxy setting we cannot honour (rather than
//! quietly connecting direct).
//!
//! - An https:// server: `https_proxy`, `HTTPS_PROXY`, then `all_proxy`, `ALL_PROXY`.
//! - An http:// server: `http_proxy` (lower case only, as curl: a CGI
//!   environment can set `HTTP_PROXY` from a request header), then
//!   `all_proxy`, `ALL_PROXY`.
//! - `no_proxy` / `NO_PROXY`: `*`, host names (a leading `.` or `*.` is the
//!   same as none; subdomains match), IP addresses and CIDR ranges; a
//!   `:port` on an entry is ignored.
//! - Only `http://` proxies (a CONNECT tunnel; TLS to the server runs inside
//!   it) are built in: `https://` and `socks*://` proxy URLs are refused.

use std::ffi::OsString;
use std::net::IpAddr;

use super::{About, ConfigError, Source};
use crate::text;

/// How beats reach the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Proxying {
    Direct,
    /// A proxy is set but `no_proxy` names the server.
    Bypassed {
        var: &'static str,
    },
    Via(Proxy),
}

#[derive(Clone, PartialEq)]
pub struct Proxy {
    /// The URL as ureq takes it, credentials included.
    pub url: String,
    /// `host:port`, for log lines.
    pub hop: String,
    /// The URL with any password replaced by `***`.
    pub shown: String,
    pub source: Source,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proxy({} from {})", self.shown, self.source)
    }
}

/// The proxy for `api_url` (validated, so its scheme is http or https).
pub fn choose(
    env: &dyn Fn(&str) -> Option<OsString>,
    api_url: &str,
) -> Result<Proxying, ConfigError> {
    let uri: ureq::http::Uri = api_url
        .parse()
        .map_err(|_| error(None, "cannot tell the server's host".into()))?;
    let https = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let vars: &[&'static str] = if https {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "all_proxy", "ALL_PROXY"]
    };
    let set = |name: &'static str| {
        env(name)
            .map(|v| v.to_string_lossy().trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| (name, v))
    };
    let Some((var, value)) = vars.iter().find_map(|name| set(name)) else {
        return Ok(Proxying::Direct);
    };
    let host = uri.host().unwrap_or("");
    for no_proxy in ["no_proxy", "NO_PROXY"] {
        if let Some((_, list)) = set(no_proxy) {
            if bypasses(&list, host) {
                return Ok(Proxying::Bypassed { var: no_proxy });
            }
            break;
        }
    }
    parse(&value, Source::Env(var)).map(Proxying::Via)
}

fn error(source: Option<Source>, message: String) -> ConfigError {
    ConfigError {
        about: About::Proxy,
        source,
        message,
    }
}

/// A proxy URL as curl reads it: `host:port` alone means `http://host:port`,
/// and the port defaults to 1080.
fn parse(value: &str, source: Source) -> Result<Proxy, ConfigError> {
    let refuse = |why: &str| {
        Err(error(
            Some(source.clone()),
            format!(
                "\"{}\" {why}; expected http://[user:password@]host:port",
                redact(value)
            ),
        ))
    };
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let (scheme, rest) = with_scheme.split_once("://").unwrap_or(("", ""));
    match scheme.to_ascii_lowercase().as_str() {
        "http" => {}
        "https" => {
            return refuse(
                "is an https:// proxy, which this build cannot use (TLS to the server \
                 still runs inside an http:// proxy's tunnel)",
            );
        }
        s if s.starts_with("socks") => {
            return refuse("is a SOCKS proxy, which this build does not include");
        }
        _ => return refuse("has a scheme other than http://"),
    }
    let authority = rest.split('/').next().unwrap_or("");
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((user, hp)) => (Some(user), hp),
        None => (None, authority),
    };
    // `[v6]:port`, `[v6]`, `host:port` or `host`.
    let (host, port_text) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, tail)) => (&host_port[..addr.len() + 2], tail.strip_prefix(':')),
            None => return refuse("has an unclosed [IPv6] host"),
        },
        None => match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    let port = match port_text.map(str::parse::<u16>) {
        None => 1080,
        Some(Ok(port)) if port > 0 => port,
        Some(_) => return refuse("has an invalid port"),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return refuse("has no host");
    }
    let hop = format!("{host}:{port}");
    let url = match userinfo {
        Some(user) => format!("http://{user}@{hop}"),
        None => format!("http://{hop}"),
    };
    if ureq::Proxy::new(&url).is_err() {
        return refuse("is not a valid proxy URL");
    }
    Ok(Proxy {
        shown: redact(&url),
        hop: text::untrusted(&hop),
        url,
        source,
    })
}

/// The URL with the password part of `user:password@` replaced.
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let shown = match rest.split_once('@') {
        Some((userinfo, tail)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}{user}:***@{tail}"),
            None => format!("{scheme}{userinfo}@{tail}"),
        },
        None => format!("{scheme}{rest}"),
    };
    text::untrusted(&shown)
}

/// Does a `no_proxy` list name `host` (a name, or an IP literal in brackets
/// or not)?
fn bypasses(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    list.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some((net, bits)) = entry.split_once('/') {
                return match (host_ip, net.parse::<IpAddr>(), bits.parse::<u8>()) {
                    (Some(ip), Ok(net), Ok(bits)) => in_cidr(ip, net, bits),
                    _ => false,
                };
            }
            let entry = strip_port(entry).to_ascii_lowercase();
            if let (Some(ip), Ok(entry_ip)) = (host_ip, entry.parse::<IpAddr>()) {
                return ip == entry_ip;
            }
            let domain = entry.trim_start_matches("*.").trim_start_matches('.');
            host == domain || host.ends_with(&format!(".{domain}"))
        })
}

fn strip_port(entry: &str) -> &str {
    let unbracketed = entry.trim_start_matches('[');
    if entry.starts_with('[') {
        return unbracketed.split(']').next().unwrap_or(unbracketed);
    }
    match entry.rsplit_once(':') {
        // One colon: host:port. More: an IPv6 address without brackets.
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => entry,
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn via(pairs: &[(&str, &str)], url: &str) -> Result<Proxying, ConfigError> {
        choose(&env(pairs), url)
    }

    #[test]
    fn the_variable_follows_the_scheme_as_in_curl() {
        let vars = [
            ("https_proxy", "proxy-s:3128"),
            ("http_proxy", "proxy-h:3128"),
            ("HTTP_PROXY", "upper:3128"),
        ];
        let Proxying::Via(p) = via(&vars, "https://m.example").unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.hop.as_str(), &p.source),
            ("proxy-s:3128", &Source::Env("https_proxy"))
        );
        let Proxying::Via(p) = via(&vars, "http://m.example").unwrap() else {
            panic!()
        };
        assert_eq!(p.hop, "proxy-h:3128");
        // HTTP_PROXY alone is ignored (httpoxy), and is not used for https.
        assert_eq!(
            via(&[("HTTP_PROXY", "upper:1")], "http://m").unwrap(),
            Proxying::Direct
        );
        assert_eq!(
            via(&[("HTTP_PROXY", "upper:1")], "https://m").unwrap(),
            Proxying::Direct
        );
        let Proxying::Via(p) = via(&[("ALL_PROXY", "all:8080")], "https://m").unwrap() else {
            panic!()
        };
        assert_eq!(p.url, "http://all:8080");
    }

    #[test]
    fn no_proxy_takes_names_ips_and_cidrs() {
        for (list, host, yes) in [
            ("*", "anything.example", true),
            ("example.com", "m.example.com", true),
            (".example.com", "example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("example.com", "badexample.com", false),
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.1.2.3", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("fd00::/8", "[fd12::1]", true),
            ("localhost:8080, 127.0.0.1", "127.0.0.1", true),
            ("monitor.lan:443", "monitor.lan", true),
            ("10.0.0.0/8", "ten.example", false),
        ] {
            assert_eq!(bypasses(list, host), yes, "{list} vs {host}");
        }
        let chosen = via(
            &[("https_proxy", "p:1"), ("NO_PROXY", "10.0.0.0/8")],
            "https://10.9.9.9:8443",
        );
        assert_eq!(chosen.unwrap(), Proxying::Bypassed { var: "NO_PROXY" });
    }

    #[test]
    fn a_proxy_we_cannot_use_is_refused_not_bypassed() {
        for (value, why) in [
            ("socks5://p:1080", "SOCKS"),
            ("socks5h://p:1080", "SOCKS"),
            ("https://p:443", "https:// proxy"),
            ("ftp://p:21", "scheme"),
            ("http://p:99999", "invalid port"),
            ("http://:8080", "no host"),
        ] {
            let e = via(&[("https_proxy", value)], "https://m").unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with("proxy (from env https_proxy):"), "{text}");
            assert!(text.contains(why), "{text}");
        }
    }

    #[test]
    fn credentials_are_used_but_never_shown() {
        let Proxying::Via(p) =
            via(&[("https_proxy", "http://bob:s3cret@p:3128")], "https://m").unwrap()
        else {
            panic!()
        };
        assert_eq!(p.url, "http://bob:s3cret@p:3128");
        assert_eq!(p.shown, "http://bob:***@p:3128");
        assert!(!format!("{p:?}").contains("s3cret"));
        let e = via(&[("https_proxy", "socks5://bob:s3cret@p")], "https://m").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn an_ipv6_proxy_keeps_its_brackets() {
        let Proxying::Via(p) = via(&[("https_proxy", "http://[::1]:3128")], "https://m").unwrap()
        else {
            panic!()
        };
        assert_eq!(p.hop, "[::1]:3128");
    }

    #[test]
    fn a_bare_host_gets_curls_defaults() {
        let Proxying::Via(p) = via(&[("https_proxy", "proxy.lan")], "https://m").unwrap() else {
            panic!()
        };
        assert_eq!(p.url, "http://proxy.lan:1080");
    }
}
