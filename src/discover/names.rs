//! What a listening port is called on the server's Services page, from
//! the best that is known of it: what the service says about itself (its
//! banner), the process that holds it, the port's well-known role, the
//! bare port. Pure functions over what the probes found.

/// What a loopback probe asks a port, by its well-known use: only ports
/// whose protocol has a harmless first exchange are asked anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `HEAD / HTTP/1.0`; the answer's `Server:` header.
    Http,
    /// Nothing: the service speaks first (SSH, SMTP, FTP, POP3, IMAP).
    Greeting,
    /// Nothing: the MySQL/MariaDB handshake carries the server's version.
    Mysql,
}

/// How `port` is asked, if at all. TLS ports are not asked (a handshake
/// per new port for a name is not worth it): their role names them.
pub fn ask(port: u16) -> Option<Ask> {
    match port {
        80 | 81 | 8080 | 2082 | 2086 | 2095 | 2077 | 2079 => Some(Ask::Http),
        21 | 22 | 25 | 587 | 110 | 143 => Some(Ask::Greeting),
        3306 => Some(Ask::Mysql),
        _ => None,
    }
}

/// The product a probe's answer names, if it names one.
pub fn product(ask: Ask, answer: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(answer);
    let named = match ask {
        Ask::Http => {
            let header = text
                .split("\r\n")
                .skip(1)
                .take_while(|l| !l.is_empty())
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.trim()
                        .eq_ignore_ascii_case("server")
                        .then(|| value.trim())
                })?;
            web_server(header)
        }
        Ask::Greeting => greeting(text.lines().next()?.trim()),
        Ask::Mysql => {
            // 3-byte length, sequence, protocol 10, then the version, NUL-ended.
            let version = answer.get(5..)?;
            let end = version.iter().position(|&b| b == 0)?;
            let version = String::from_utf8_lossy(version.get(..end)?).to_ascii_lowercase();
            (answer.get(4) == Some(&10) && !version.is_empty()).then(|| {
                if version.contains("mariadb") {
                    "MariaDB"
                } else {
                    "MySQL"
                }
                .to_string()
            })
        }
    };
    named.filter(|n| !n.is_empty())
}

fn web_server(header: &str) -> Option<String> {
    let h = header.to_ascii_lowercase();
    let known = [
        ("openresty", "OpenResty"),
        ("nginx", "nginx"),
        ("litespeed", "LiteSpeed"),
        ("lsws", "LiteSpeed"),
        ("apache", "Apache"),
        ("caddy", "Caddy"),
        ("lighttpd", "lighttpd"),
        ("microsoft-iis", "IIS"),
        ("cpsrvd", "cpsrvd"),
    ];
    if let Some((_, name)) = known.iter().find(|(k, _)| h.contains(k)) {
        return Some((*name).to_string());
    }
    // Anything else: its first word, as it says it (escaped and capped
    // where it is written).
    let word = header.split(['/', ' ']).next()?.trim();
    Some(word.chars().take(40).collect())
}

fn greeting(line: &str) -> Option<String> {
    let l = line.to_ascii_lowercase();
    let known = [
        ("openssh", "OpenSSH"),
        ("dropbear", "Dropbear"),
        ("exim", "Exim"),
        ("postfix", "Postfix"),
        ("dovecot", "Dovecot"),
        ("proftpd", "ProFTPD"),
        ("pure-ftpd", "Pure-FTPd"),
        ("vsftpd", "vsftpd"),
        ("courier", "Courier"),
    ];
    if let Some((_, name)) = known.iter().find(|(k, _)| l.contains(k)) {
        return Some((*name).to_string());
    }
    l.starts_with("ssh-").then(|| "SSH".to_string())
}

/// A port's well-known role, as the server's own map names it.
pub fn role(port: u16) -> Option<&'static str> {
    Some(match port {
        80 => "HTTP",
        443 => "HTTPS",
        81 | 8080 => "HTTP-Alt",
        8443 => "HTTPS-Alt",
        2082 => "cPanel",
        2083 => "cPanel (SSL)",
        2086 => "WHM",
        2087 => "WHM (SSL)",
        2095 => "Webmail",
        2096 => "Webmail (SSL)",
        2077 | 2079 => "cpdavd",
        2078 | 2080 => "cpdavd (SSL)",
        25 => "SMTP",
        465 => "SMTP (SSL)",
        587 => "SMTP (submission)",
        110 => "POP3",
        995 => "POP3 (SSL)",
        143 => "IMAP",
        993 => "IMAP (SSL)",
        4190 => "Sieve",
        53 => "DNS",
        953 => "DNS (rndc)",
        21 => "FTP",
        22 => "SSH",
        3306 => "MySQL",
        5432 => "PostgreSQL",
        6379 => "Redis",
        27017 => "MongoDB",
        _ => return None,
    })
}

/// A port's label and how it was found (the server's `detected_via`
/// words): the product its banner names, else the process that holds it,
/// else its role, else the bare port.
pub fn label(port: u16, product: Option<&str>, process: Option<&str>) -> (String, &'static str) {
    if let Some(product) = product {
        return (format!("{product} (:{port})"), "port-banner");
    }
    if let Some(process) = process.filter(|p| !p.is_empty()) {
        return (format!("{process} (:{port})"), "port-process");
    }
    match role(port) {
        Some(role) => (format!("{role} (:{port})"), "port-map"),
        None => (format!("port-{port}"), "port-unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_banner_beats_a_process_which_beats_a_role() {
        assert_eq!(
            label(80, Some("nginx"), Some("nginx: master")),
            ("nginx (:80)".into(), "port-banner")
        );
        assert_eq!(
            label(5432, None, Some("postgres")),
            ("postgres (:5432)".into(), "port-process")
        );
        assert_eq!(
            label(5432, None, None),
            ("PostgreSQL (:5432)".into(), "port-map")
        );
        assert_eq!(
            label(5433, None, Some("")),
            ("port-5433".into(), "port-unknown")
        );
    }

    #[test]
    fn recorded_answers_name_their_product() {
        let http = b"HTTP/1.1 200 OK\r\nDate: x\r\nserver: nginx/1.22.1\r\n\r\n";
        assert_eq!(product(Ask::Http, http).as_deref(), Some("nginx"));
        let apache = b"HTTP/1.1 403 Forbidden\r\nServer: Apache/2.4.57 (Debian)\r\n\r\n";
        assert_eq!(product(Ask::Http, apache).as_deref(), Some("Apache"));
        let odd = b"HTTP/1.0 200 OK\r\nServer: gunicorn\r\n\r\n";
        assert_eq!(product(Ask::Http, odd).as_deref(), Some("gunicorn"));
        assert_eq!(
            product(Ask::Http, b"HTTP/1.0 200 OK\r\n\r\nServer: x"),
            None
        );
        let ssh = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
        assert_eq!(product(Ask::Greeting, ssh).as_deref(), Some("OpenSSH"));
        let smtp = b"220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n";
        assert_eq!(product(Ask::Greeting, smtp).as_deref(), Some("Postfix"));
        assert_eq!(
            product(Ask::Greeting, b"SSH-2.0-Go\r\n").as_deref(),
            Some("SSH")
        );
        assert_eq!(product(Ask::Greeting, b"hello\r\n"), None);
        let mariadb = b"\x5b\x00\x00\x00\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00\x08";
        assert_eq!(product(Ask::Mysql, mariadb).as_deref(), Some("MariaDB"));
        assert_eq!(
            product(Ask::Mysql, b"\x5b\x00\x00\x00\x0a8.0.36\x00").as_deref(),
            Some("MySQL")
        );
        assert_eq!(product(Ask::Mysql, b"\xff\x00"), None);
    }

    #[test]
    fn only_ports_with_a_harmless_first_exchange_are_asked() {
        assert_eq!(ask(80), Some(Ask::Http));
        assert_eq!(ask(22), Some(Ask::Greeting));
        assert_eq!(ask(3306), Some(Ask::Mysql));
        assert_eq!(ask(443), None);
        assert_eq!(ask(5432), None);
    }
}
