//! A hostile box, server and network: none of them stops the beats, hangs
//! the agent, forges its log or gets a secret printed.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(15);

fn mkfifo(dir: &TempDir, name: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path in a directory we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path
}

#[test]
fn stderr_that_nobody_reads_stops_neither_the_beats_nor_sigterm() {
    let rx = Receiver::start(|_| ok_json());
    // -vv writes ureq's and rustls' lines too: the 64 KiB pipe is full
    // within the first seconds.
    let mut agent = AgentCmd::posting_to(&rx.url())
        .args(["--interval", "0.1", "--no-splay", "-vv"])
        .spawn_with_unread_stderr();
    thread::sleep(Duration::from_secs(30));
    let beats = rx.requests().len();
    assert!(beats >= 250, "only {beats} beats in 30 s at 0.1 s");
    let last = rx.requests().last().unwrap().at;
    assert!(last.elapsed() < Duration::from_secs(1), "beats stopped");
    assert_eq!(agent.stop_with(SIGTERM).code(), Some(0));
}

#[test]
fn a_fifo_named_as_a_file_is_refused_at_once() {
    let dir = TempDir::new();
    let fifo = mkfifo(&dir, "fifo");
    for (flag, setting) in [
        ("--config", "config file"),
        ("--token-file", "token_file"),
        ("--ca-file", "ca_file"),
    ] {
        let started = Instant::now();
        let out = AgentCmd::posting_to("http://127.0.0.1:9")
            .args(["--check", "--offline", flag])
            .arg_path(&fifo)
            .output_within(Duration::from_secs(10));
        assert_eq!(out.code(), Some(2), "{flag}: {}", out.stderr);
        assert!(
            out.stderr.contains(setting) && out.stderr.contains("not a regular file"),
            "{flag}: {}",
            out.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn a_reply_cannot_forge_a_log_line() {
    let rx = Receiver::start(|_| {
        Reply::Status(
            200,
            vec![],
            br#"{"server_name":"Box\n<0>EMERGENCY \u001b[31mpwned\u202e"}"#.to_vec(),
        )
    });
    let agent = AgentCmd::posting_to(&rx.url()).spawn();
    let line = agent.wait_for_line("first heartbeat accepted", WAIT);
    assert!(
        line.contains(r#"server "Box\n<0>EMERGENCY \u{1b}[31mpwned\u{202e}""#),
        "{line}"
    );
    assert!(agent.log().iter().all(|l| !l.starts_with("<0>")));
}

#[test]
fn an_error_body_cannot_forge_a_log_line_either() {
    let rx = Receiver::start(|_| {
        Reply::Status(
            503,
            vec![("Retry-After", "Thu, 01 Jan 99999999999 00:00:00 GMT".into())],
            b"down\r<3>fake error\x1b]0;title\x07".to_vec(),
        )
    });
    let agent = AgentCmd::posting_to(&rx.url()).args(["-v"]).spawn();
    let line = agent.wait_for_line("heartbeat failed: HTTP 503", WAIT);
    assert!(
        line.contains(r#""down\r<3>fake error\u{1b}]0;title\u{7}""#),
        "{line}"
    );
}

#[test]
fn an_unreadable_home_is_a_warning_when_flags_say_everything() {
    // As root the test runs the agent as nobody, whom a 0700 root-owned
    // home keeps out; as anyone else, a mode-000 home does the same.
    let bin_dir = TempDir::new();
    let bin = bin_dir.path().join("agent");
    std::fs::copy(BIN.unwrap(), &bin).unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = TempDir::new();
    let root = unsafe { libc::geteuid() } == 0;
    let mode = if root { 0o700 } else { 0o000 };
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    let mut cmd = AgentCmd::with_binary(&bin).env("HOME", home.path()).args([
        "--check",
        "--offline",
        "--server-id",
        "7",
        "--api-url",
        "http://127.0.0.1:9",
    ]);
    if root {
        cmd = cmd.run_as(65534, 65534);
    }
    let out = cmd.finish();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_contains!(out.stderr, "cannot read the default config file");
    assert_contains!(out.stderr, "Permission denied");
    assert_contains!(out.stdout, "(not readable; skipped)");
}

#[test]
fn an_empty_or_relative_credentials_directory_is_ignored() {
    let rx = Receiver::start(|_| ok_json());
    let cwd = TempDir::new();
    cwd.write("token", "from-the-working-directory\n");
    for dir in ["", "."] {
        let out = AgentCmd::posting_to(&rx.url())
            .args(["--once"])
            .env("CREDENTIALS_DIRECTORY", dir)
            .current_dir(cwd.path())
            .finish();
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
    }
    let reqs = rx.wait_for(2, WAIT);
    assert!(reqs.iter().all(|r| r.header("authorization").is_none()));
}

#[test]
fn a_token_pasted_into_a_token_file_setting_is_never_echoed() {
    let out = AgentCmd::posting_to("http://127.0.0.1:9")
        .args(["--check", "--offline"])
        .env(
            "STACKSENSE_TOKEN_FILE",
            "eyJhbGciOiJIUzI1NiJ9.s3cret-pasted",
        )
        .finish();
    assert_eq!(out.code(), Some(2));
    assert_contains!(out.stderr, "token_file (from env STACKSENSE_TOKEN_FILE)");
    assert!(!out.stderr.contains("s3cret-pasted"), "{}", out.stderr);
}

#[test]
fn risky_combinations_are_warned_about_in_check() {
    let dir = TempDir::new();
    let conf = dir.write(
        "c.conf",
        r#"{"server_id": 1, "api_url": "http://monitor.example.com", "token": "abc"}"#,
    );
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = AgentCmd::new()
        .args([
            "--check",
            "--offline",
            "--interval",
            "1",
            "--timeout",
            "10",
            "--config",
        ])
        .arg_path(&conf)
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    for warning in [
        "token will be sent in clear text over http:// to http://monitor.example.com",
        "is writable by every user (mode 0666)",
        "timeout (10s) is not shorter than interval (1s)",
    ] {
        assert!(
            out.stderr.contains(warning),
            "no {warning:?} in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_one_microsecond_watchdog_does_not_make_the_agent_spin() {
    let dir = TempDir::new();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let rx = Receiver::start(|_| ok_json());
    let agent = AgentCmd::posting_to(&rx.url())
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1")
        .spawn();
    agent.wait_for_line("too short to keep up with", WAIT);
    rx.wait_for(1, WAIT);
    // Drain what came so far, then count one second's worth.
    let mut buf = [0u8; 512];
    while socket.recv(&mut buf).is_ok() {}
    let started = Instant::now();
    let mut messages = 0;
    while started.elapsed() < Duration::from_secs(1) {
        if socket.recv(&mut buf).is_ok() {
            messages += 1;
        }
    }
    // A 100 ms floor: about ten pings a second (it was ~5,500).
    assert!(
        (5..=15).contains(&messages),
        "{messages} notify messages in 1 s"
    );
}

#[test]
fn long_tokens_and_urls_that_check_accepts_are_sent() {
    let rx = Receiver::start(|_| ok_json());
    let token = "t".repeat(6 * 1024);
    let prefix = "p".repeat(5 * 1024);
    let out = AgentCmd::posting_to(&format!("{}/{prefix}", rx.url()))
        .args(["--once"])
        .env("STACKSENSE_TOKEN", &token)
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let req = &rx.wait_for(1, WAIT)[0];
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert!(req.path.starts_with(&format!("/{prefix}/api/heartbeat/7/")));
}

#[test]
fn oversized_reply_headers_are_called_that() {
    let rx = Receiver::start(|_| {
        Reply::Status(
            200,
            vec![("X-Padding", "x".repeat(7 * 1024))],
            b"{}".to_vec(),
        )
    });
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--interval", "1"])
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(out.stderr, "sent oversized response headers");
}

#[test]
fn a_self_signed_ca_certificate_as_the_servers_own_is_explained() {
    let tls = TlsFixture::self_signed_ca_as_server();
    let dir = TempDir::new();
    let ca = dir.write("server.pem", &tls.ca_pem);
    let rx = Receiver::start_tls(&tls, |_| ok_json());
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--interval", "1", "--ca-file"])
        .arg_path(&ca)
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(out.stderr, "it is a CA certificate (CA:TRUE)");
    assert_contains!(out.stderr, "pin the server's key with pinned_pubkey");
    // --check sees it coming.
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--check", "--offline", "--ca-file"])
        .arg_path(&ca)
        .finish();
    assert_eq!(out.code(), Some(0));
    assert_contains!(
        out.stderr,
        "holds only CA certificates (CA:TRUE), one of them for 127.0.0.1"
    );
    // A proper CA (the usual fixture) draws no such warning.
    let good = dir.write("ca.pem", &TlsFixture::new().ca_pem);
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--check", "--offline", "--ca-file"])
        .arg_path(&good)
        .finish();
    assert!(!out.stderr.contains("CA:TRUE"), "{}", out.stderr);
}

#[test]
fn beats_go_through_the_proxy_curls_variables_name() {
    let rx = Receiver::start(|_| ok_json());
    let proxy = TunnelProxy::start();
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "-v"])
        .env("http_proxy", format!("http://bob:s3cret@{}", proxy.addr))
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    rx.wait_for(1, WAIT);
    let connect = &proxy.requests()[0];
    assert_eq!(connect[0], format!("CONNECT {} HTTP/1.1", rx.addr));
    assert!(
        connect
            .iter()
            .any(|h| h.starts_with("Proxy-Authorization: Basic "))
    );
    // The start-up line (at -v for --once) names the proxy, never its password.
    assert_contains!(
        out.stderr,
        &format!(
            "via proxy http://bob:***@{} from env http_proxy",
            proxy.addr
        )
    );
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);

    // HTTP_PROXY (upper case) is not used, as in curl.
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once"])
        .env("HTTP_PROXY", format!("http://127.0.0.1:{}", free_port()))
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

#[test]
fn proxy_failures_name_the_proxy_and_407_is_not_retried() {
    let rx = Receiver::start(|_| ok_json());
    let dead = format!("127.0.0.1:{}", free_port());
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--interval", "1"])
        .env("http_proxy", format!("http://{dead}"))
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(
        out.stderr,
        &format!(
            "connection refused by proxy {dead} (on the way to {})",
            rx.addr
        )
    );

    let auth_wall = Receiver::start(|_| status(407));
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--interval", "2"])
        .env("http_proxy", auth_wall.url())
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(out.stderr, "wants credentials (HTTP 407");
    assert_contains!(out.stderr, "user:password@");
    assert_eq!(auth_wall.requests().len(), 1, "407 was retried");

    // NO_PROXY names the server: straight there, past the dead proxy.
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once"])
        .env("http_proxy", format!("http://{dead}"))
        .env("NO_PROXY", "localhost,127.0.0.0/8")
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

#[test]
fn a_proxy_the_agent_cannot_use_stops_it_instead_of_being_bypassed() {
    for value in [
        "socks5://127.0.0.1:1080",
        "https://127.0.0.1:3128",
        "http://[::1",
    ] {
        let out = AgentCmd::posting_to("https://127.0.0.1:9")
            .args(["--check", "--offline"])
            .env("HTTPS_PROXY", value)
            .finish();
        assert_eq!(out.code(), Some(2), "{value}: {}", out.stderr);
        assert_contains!(out.stderr, "proxy (from env HTTPS_PROXY)");
    }
}

/// A check or a job that prints its environment, or the token itself,
/// cannot put the token in a log line, `--check`, a report body or the
/// systemd status: children never get it, and what comes back is redacted.
#[test]
fn children_never_see_the_token_and_nothing_they_say_shows_it() {
    const TOKEN: &str = "s3cret-token-0123456789";
    let rx = Receiver::start(|_| ok_json());
    let echo_env =
        "cmd sh -c 'echo token=[$STACKSENSE_TOKEN] creds=[$CREDENTIALS_DIRECTORY]; exit 1'";
    let out = AgentCmd::posting_to(&rx.url())
        .env("STACKSENSE_TOKEN", TOKEN)
        .env("CREDENTIALS_DIRECTORY", "/nonexistent")
        .args(["--once", "--health", echo_env])
        .finish();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_contains!(out.stderr, "token=[] creds=[]");

    // The token written out literally (a check that cats the token file).
    let literal = format!("cmd sh -c 'echo {TOKEN}; exit 1'");
    for args in [
        vec!["--once", "--report", "status", "--health", &literal],
        vec!["--check", "--offline", "--health", &literal],
    ] {
        let out = AgentCmd::posting_to(&rx.url())
            .env("STACKSENSE_TOKEN", TOKEN)
            .args(args)
            .finish();
        assert!(!out.stderr.contains(TOKEN), "{}", out.stderr);
        assert!(!out.stdout.contains(TOKEN), "{}", out.stdout);
        assert!(
            out.stdout.contains("<token>") || out.stderr.contains("<token>"),
            "{}{}",
            out.stdout,
            out.stderr
        );
    }
    let body = String::from_utf8_lossy(&rx.requests()[0].body).into_owned();
    assert!(!body.contains(TOKEN) && body.contains("<token>"), "{body}");

    // A `run` job sees none of the agent's settings.
    let out = AgentCmd::posting_to(&rx.url())
        .env("STACKSENSE_TOKEN", TOKEN)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "echo \"[$STACKSENSE_TOKEN$STACKSENSE_API_URL]\"",
        ])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "[]\n");
}

/// A resolver that drops queries is said to be the trouble (not the route
/// to the server), and lookups do not pile up on threads while it hangs.
#[test]
fn a_dns_server_that_does_not_answer_is_named_and_lookups_do_not_pile_up() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: a mount namespace for resolv.conf needs root");
        return;
    }
    // A DNS server on loopback that reads every query and never answers.
    let Ok(silent) = std::net::UdpSocket::bind("127.53.0.1:53") else {
        eprintln!("SKIPPED: cannot bind 127.53.0.1:53");
        return;
    };
    let dir = TempDir::new();
    let resolv = dir.write(
        "resolv.conf",
        "nameserver 127.53.0.1\noptions timeout:30 attempts:1\n",
    );
    let in_namespace = |args: &[&str]| {
        AgentCmd::with_binary(std::path::Path::new("unshare"))
            .args([
                "-m",
                "sh",
                "-c",
                "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
            ])
            .arg_path(&resolv)
            .args([BIN.unwrap(), "--server-id", "7"])
            .args(["--api-url", "http://stacksense-dns-test.invalid:8080"])
            .args(args)
    };
    let out = in_namespace(&["--once", "--timeout", "1", "--interval", "2"]).finish();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_contains!(
        out.stderr,
        "the name stacksense-dns-test.invalid did not resolve"
    );
    assert!(!out.stderr.contains("no answer from"), "{}", out.stderr);

    let agent =
        in_namespace(&["--interval", "0.5", "--timeout", "0.3", "--no-splay", "-v"]).spawn();
    let line = agent.wait_for_line("did not resolve", WAIT);
    assert_contains!(line, "did not resolve within 300ms");
    thread::sleep(Duration::from_secs(5));
    let threads = agent.proc_status("Threads");
    assert!(
        threads <= 6,
        "{threads} threads after 10 beats with a silent resolver"
    );
    drop(silent);
}
