//! Configuration as a user meets it: env, file, flags, --check, bad input.

use std::time::Duration;

use crate::common::*;

fn beat_path(id: &str) -> String {
    format!("/api/heartbeat/{id}/")
}

#[test]
fn env_only_config_sends_the_documented_request() {
    let rx = Receiver::start(|_| ok_json());
    let agent = AgentCmd::new()
        .env("STACKSENSE_SERVER_ID", "42")
        .env("STACKSENSE_API_URL", format!("{}/", rx.url()))
        .env("STACKSENSE_INTERVAL", "30")
        .spawn();
    let req = &rx.wait_for(1, Duration::from_secs(10))[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, beat_path("42"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let ua = req.header("user-agent").unwrap();
    assert!(
        ua.starts_with(&format!(
            "stacksense-heartbeat/{} (linux; ",
            env!("CARGO_PKG_VERSION")
        )),
        "{ua}"
    );
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"agent_version": env!("CARGO_PKG_VERSION")})
    );
    assert_eq!(req.header("authorization"), None);
    let line = agent.wait_for_line("first heartbeat accepted", Duration::from_secs(5));
    assert_contains!(line, "\"Test Box\"");
}

#[test]
fn file_only_config_is_read_from_home() {
    let rx = Receiver::start(|_| ok_json());
    let cmd = AgentCmd::new();
    cmd.home.write(
        ".stacksense_heartbeat.conf",
        &format!(
            "{{\n  \"server_id\": 1,\n  \"api_url\": \"{}/prefix\",\n  \"interval\": 30\n}}\n",
            rx.url()
        ),
    );
    let _agent = cmd.spawn();
    let req = &rx.wait_for(1, Duration::from_secs(10))[0];
    assert_eq!(req.path, format!("/prefix{}", beat_path("1")));
}

#[test]
fn flag_beats_env_beats_file() {
    let rx = Receiver::start(|_| ok_json());
    let cmd = AgentCmd::new();
    cmd.home.write(
        ".stacksense_heartbeat.conf",
        &format!(
            "{{\"server_id\": \"from-file\", \"api_url\": \"{}\", \"interval\": 11, \"timeout\": 3}}",
            rx.url()
        ),
    );
    let out = cmd
        .env("STACKSENSE_SERVER_ID", "from-env")
        .env("STACKSENSE_INTERVAL", "22")
        .args(["--check", "--offline", "--server-id", "from-flag"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let row = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{}", out.stdout))
            .to_string()
    };
    assert!(
        row("server_id").contains("from-flag")
            && row("server_id").ends_with("from flag --server-id")
    );
    assert!(
        row("interval").contains("22s")
            && row("interval").ends_with("from env STACKSENSE_INTERVAL")
    );
    assert!(
        row("timeout").contains("3s") && row("timeout").contains(".stacksense_heartbeat.conf:1")
    );

    // And the beat really goes where the flag says.
    let cmd = AgentCmd::new();
    cmd.home.write(
        ".stacksense_heartbeat.conf",
        &format!(
            "{{\"server_id\": \"from-file\", \"api_url\": \"{}\"}}",
            rx.url()
        ),
    );
    let _agent = cmd
        .env("STACKSENSE_SERVER_ID", "from-env")
        .args(["--server-id", "from-flag"])
        .spawn();
    assert_eq!(
        rx.wait_for(1, Duration::from_secs(10))[0].path,
        beat_path("from-flag")
    );
}

#[test]
fn check_shows_sources_and_hides_the_token() {
    let dir = TempDir::new();
    let token_file = dir.write("token", "s3cret-token-value\n");
    let out = AgentCmd::new()
        .env("STACKSENSE_API_URL", "http://127.0.0.1:9")
        .args(["--check", "--offline", "--server-id", "7", "--token-file"])
        .args([&token_file])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_contains!(out.stdout, "POST http://127.0.0.1:9/api/heartbeat/7/");
    let token_row = out.stdout.lines().find(|l| l.starts_with("token")).unwrap();
    assert_contains!(token_row, "set");
    assert_contains!(token_row, "from flag --token-file");
    assert!(!out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"));
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("interval") && l.ends_with("from default"))
    );
}

#[test]
fn check_fits_80_columns_and_catches_a_pasted_endpoint() {
    let out = AgentCmd::new()
        .env("STACKSENSE_CONFIG", "")
        .args(["--check", "--offline", "--server-id", "web-01"])
        .args(["--api-url", "https://mon.example.com/api/heartbeat/7/"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    for line in out.stdout.lines() {
        assert!(line.chars().count() <= 80, "{} columns: {line}", line.len());
    }
    assert_contains!(out.stderr, "already ends in an API path");
    assert_contains!(out.stderr, "did you mean https://mon.example.com?");
}

#[test]
fn check_validates_the_ca_file() {
    let dir = TempDir::new();
    let good = dir.write("ca.pem", &TlsFixture::new().ca_pem);
    let out = AgentCmd::new()
        .args([
            "--check",
            "--offline",
            "--server-id",
            "7",
            "--api-url",
            "https://127.0.0.1:9",
            "--ca-file",
        ])
        .args([&good])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_contains!(out.stdout, "(1 certificate(s))");
}

/// Runs with `args` and env, expects exit 2 and a message naming `setting` and `source`.
fn expect_error(cmd: AgentCmd, setting: &str, source: &str) -> String {
    let out = cmd.finish();
    assert_eq!(
        out.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("error:") && l.contains(setting))
        .unwrap_or_else(|| panic!("no line naming {setting}:\n{}", out.stderr));
    assert!(line.contains(source), "{line} does not name {source}");
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    line.to_string()
}

fn with_required() -> AgentCmd {
    AgentCmd::posting_to("http://127.0.0.1:9")
}

#[test]
fn bad_inputs_exit_2_naming_setting_and_source() {
    let line = expect_error(
        AgentCmd::new().args(["--api-url", "http://127.0.0.1:9"]),
        "api: no token and no server_id",
        "STACKSENSE_TOKEN",
    );
    assert_contains!(line, "create_agent_token");
    let line = expect_error(
        AgentCmd::new().args(["--server-id", "7"]),
        "api_url: not set",
        "STACKSENSE_URL",
    );
    assert_contains!(line, "--api-url");

    let line = expect_error(
        AgentCmd::new()
            .args(["--server-id", "7"])
            .env("STACKSENSE_API_URL", "monitor.example.com"),
        "api_url",
        "env STACKSENSE_API_URL",
    );
    assert_contains!(line, "http://");

    for (value, what) in [
        ("0", "out of range"),
        ("abc", "not a number"),
        ("-5", "out of range"),
    ] {
        let line = expect_error(
            with_required().args(["--interval", value]),
            "interval",
            "flag --interval",
        );
        assert_contains!(line, what);
        assert_contains!(line, "0.1 to 86400");
    }
    expect_error(
        with_required().env("STACKSENSE_TIMEOUT", "soon"),
        "timeout",
        "env STACKSENSE_TIMEOUT",
    );
    expect_error(
        AgentCmd::new().args(["--server-id", "a/b", "--api-url", "http://h"]),
        "server_id",
        "flag --server-id",
    );
    expect_error(
        with_required().env("STACKSENSE_SPLAY", "maybe"),
        "splay",
        "env STACKSENSE_SPLAY",
    );
}

#[test]
fn config_file_problems_exit_2_naming_the_file() {
    let dir = TempDir::new();
    let missing = dir.path().join("nope.conf");
    expect_error(
        with_required().args(["--config"]).args([&missing]),
        "config file",
        "nope.conf",
    );

    let malformed = dir.write(
        "bad.conf",
        "{\n  \"server_id\": 1,\n  \"api_url\": \"http://h\"\n  \"interval\": 5\n}\n",
    );
    let line = expect_error(
        AgentCmd::new().env("STACKSENSE_CONFIG", &malformed),
        "malformed JSON",
        "bad.conf:4:",
    );
    assert_contains!(line, "config file");

    let wrong_type = dir.write(
        "type.conf",
        "{\"server_id\": 1, \"api_url\": \"http://h\",\n \"interval\": \"30\"}",
    );
    expect_error(
        AgentCmd::new().args(["--config"]).args([&wrong_type]),
        "interval",
        "type.conf:2",
    );

    // A directory where the file should be is unreadable, not "missing".
    let cmd = with_required();
    std::fs::create_dir(cmd.home.path().join(".stacksense_heartbeat.conf")).unwrap();
    expect_error(cmd, "config file", ".stacksense_heartbeat.conf");
}

#[test]
fn unknown_keys_warn_but_do_not_stop() {
    let dir = TempDir::new();
    let conf = dir.write(
        "c.conf",
        "{\"server_id\": 1, \"api_url\": \"http://127.0.0.1:9\", \"intervall\": 5}",
    );
    let out = AgentCmd::new()
        .args(["--check", "--offline", "--config"])
        .args([&conf])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_contains!(out.stderr, "unknown key \"intervall\"");
    assert_contains!(out.stderr, "did you mean \"interval\"");
}

#[test]
fn token_and_ca_file_problems_exit_2() {
    let dir = TempDir::new();
    expect_error(
        with_required()
            .args(["--token-file"])
            .args([dir.path().join("absent")]),
        "token_file",
        "flag --token-file",
    );
    let empty = dir.write("empty-token", "\n");
    expect_error(
        with_required().env("STACKSENSE_TOKEN_FILE", &empty),
        "token",
        "env STACKSENSE_TOKEN_FILE",
    );

    let not_pem = dir.write("ca.pem", "this is not a certificate\n");
    let line = expect_error(
        with_required().args(["--ca-file"]).args([&not_pem]),
        "ca_file",
        "flag --ca-file",
    );
    assert_contains!(line, "no PEM certificate");
    let broken = dir.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nMIIBnotbase64!!\n-----END CERTIFICATE-----\n",
    );
    expect_error(
        with_required().env("STACKSENSE_CA_FILE", &broken),
        "ca_file",
        "env STACKSENSE_CA_FILE",
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--bogus"][..],
        &["--interval"],
        &["stray"],
        &["--once", "--check", "--offline"],
    ] {
        let out = AgentCmd::new().args(args).finish();
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
    }
}

#[test]
fn help_and_version() {
    let out = AgentCmd::new().args(["--help"]).finish();
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout.contains("STACKSENSE_TOKEN_FILE") && out.stdout.contains("--once"));
    let out = AgentCmd::new().args(["-V"]).finish();
    assert_eq!(
        out.stdout.trim(),
        format!("stacksense-heartbeat {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn once_exits_0_when_delivered_and_1_when_not() {
    let rx = Receiver::start(|_| ok_json());
    let out = AgentCmd::posting_to(&rx.url()).args(["--once"]).finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // Quiet on success, so cron sends no mail.
    assert_eq!(out.stderr, "");
    assert_eq!(rx.requests().len(), 1);

    let rx = Receiver::start(|_| status(404));
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--interval", "2"])
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(out.stderr, "HTTP 404");
    assert_contains!(out.stderr, "check server_id and api_url");
    assert_eq!(rx.requests().len(), 1, "a 404 is not retried");

    let port = free_port();
    let started = std::time::Instant::now();
    let out = AgentCmd::posting_to(&format!("http://127.0.0.1:{port}"))
        .args(["--once", "--interval", "3"])
        .finish();
    assert_eq!(out.code(), Some(1));
    // One line for cron's mail: the final outcome, after retries within the interval.
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_contains!(out.stderr, "connection refused");
    let attempts: u32 = out
        .stderr
        .split("giving up after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count: {}", out.stderr));
    assert!(attempts >= 2, "retries within the interval: {}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "--once is bounded by one interval"
    );
}

#[test]
fn a_mistyped_variable_is_pointed_out() {
    let out = AgentCmd::new()
        .env("STACKSENSE_SERVERID", "7")
        .args([
            "--check",
            "--offline",
            "--api-url",
            "http://127.0.0.1:9",
            "--server-id",
            "7",
        ])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_contains!(
        out.stderr,
        "env STACKSENSE_SERVERID is not a setting of this agent and is ignored (did you mean STACKSENSE_SERVER_ID?)"
    );
}

/// A config file saved as Latin-1 or UTF-16 is refused with where it stops
/// being UTF-8 and what to do, not "stream did not contain valid UTF-8".
#[test]
fn a_config_file_that_is_not_utf8_says_where_and_what_to_do() {
    let dir = TempDir::new();
    let latin1 = dir.path().join("latin1.conf");
    std::fs::write(&latin1, b"{\n  \"api_url\": \"http://caf\xE9\"\n}\n").unwrap();
    let out = AgentCmd::new()
        .args(["--check", "--offline", "--config"])
        .args([&latin1])
        .finish();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_contains!(
        out.stderr,
        "latin1.conf: line 2, column 25: byte 0xE9 is not UTF-8"
    );
    assert_contains!(out.stderr, "save it as UTF-8");
    let utf16 = dir.path().join("utf16.conf");
    std::fs::write(&utf16, b"\xFF\xFE{\0}\0").unwrap();
    let out = AgentCmd::new()
        .args(["--check", "--offline", "--config"])
        .args([&utf16])
        .finish();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_contains!(
        out.stderr,
        "is UTF-16 (it starts with a UTF-16 byte-order mark)"
    );
}
