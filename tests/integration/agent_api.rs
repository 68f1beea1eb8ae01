//! The StackSense agent API against a test server that follows the
//! server's contract: beats the server records, `--check` that asks it,
//! pinned self-signed servers, and failures said in words.

use std::time::Duration;

use crate::common::stacksense::{BOX_ID, TOKEN};
use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

/// A box set up as the server's own installer sets up its Python agent.
fn like_the_python_agent(server: &StackSense) -> AgentCmd {
    AgentCmd::new()
        .env("STACKSENSE_URL", server.url())
        .env("STACKSENSE_TOKEN", TOKEN)
}

fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[test]
fn the_server_agents_settings_get_a_beat_the_server_records() {
    let server = StackSense::start();
    let out = like_the_python_agent(&server).args(["--once"]).finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, "", "--once is silent on success");
    let beats = server.beats(BOX_ID);
    assert_eq!(beats.len(), 1);
    assert_eq!(beats[0].version.as_deref(), Some(version().as_str()));
    // The services push, as the server's own agent sends at start.
    let request = &server.rx.requests()[0];
    assert_eq!(request.path, "/api/agent/services/");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(server.services(BOX_ID).len(), 1);
    // report off: the plain heartbeat every StackSense server reads.
    let out = like_the_python_agent(&server)
        .args(["--once", "--report", "off"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let request = &server.rx.requests()[1];
    assert_eq!(request.path, "/api/agent/heartbeat/");
    let body = format!(r#"{{"agent_version":"{}"}}"#, version());
    assert_eq!(String::from_utf8_lossy(&request.body), body);
}

#[test]
fn every_name_of_the_url_and_the_token_reaches_the_agent_api() {
    let server = StackSense::start();
    let dir = TempDir::new();
    let token_file = dir.write("token", &format!("{TOKEN}\n"));
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let token_path = token_file.to_str().unwrap().to_string();
    let credentials = TempDir::new();
    credentials.write("token", TOKEN);
    let url = server.url();
    let runs: Vec<(&str, AgentCmd)> = vec![
        (
            "flag --api-url + flag --token-file",
            AgentCmd::new().args(["--api-url", &url, "--token-file", &token_path]),
        ),
        (
            "env STACKSENSE_API_URL + env STACKSENSE_TOKEN_FILE",
            AgentCmd::new()
                .env("STACKSENSE_API_URL", &url)
                .env("STACKSENSE_TOKEN_FILE", &token_path),
        ),
        (
            "env STACKSENSE_URL + a systemd credential",
            AgentCmd::new()
                .env("STACKSENSE_URL", &url)
                .env("CREDENTIALS_DIRECTORY", credentials.path()),
        ),
        ("file api_url + token_file", {
            let cmd = AgentCmd::new();
            let text = format!("{{\"api_url\": \"{url}\", \"token_file\": \"{token_path}\"}}");
            cmd.home.write(".stacksense_heartbeat.conf", &text);
            cmd
        }),
        (
            "the Python agent's file keys url + token, named with --config",
            {
                let cmd = AgentCmd::new();
                let text = format!(
                    "{{\"url\": \"{url}\", \"token\": \"{TOKEN}\", \"interval\": 30, \"verify_tls\": true}}"
                );
                let conf = cmd.home.write(".stacksense_agent.conf", &text);
                std::fs::set_permissions(
                    &conf,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
                cmd.arg_path(std::path::Path::new("--config"))
                    .arg_path(&conf)
            },
        ),
    ];
    for (i, (how, cmd)) in runs.into_iter().enumerate() {
        let out = cmd.args(["--once"]).finish();
        assert_eq!(out.code(), Some(0), "{how}: {}", out.stderr);
        assert_eq!(server.beats(BOX_ID).len(), i + 1, "{how}");
        assert!(!out.stderr.contains(TOKEN), "{how}: {}", out.stderr);
    }
    // --check names where each value came from.
    let out = like_the_python_agent(&server)
        .args(["--check", "--offline"])
        .finish();
    let row = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("api_url").ends_with("from env STACKSENSE_URL"),
        "{}",
        out.stdout
    );
    assert!(
        row("token").ends_with("from env STACKSENSE_TOKEN"),
        "{}",
        out.stdout
    );
    assert!(
        row("api ").contains("agent") && row("api ").contains("auto"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("POST ") && out.stdout.contains("/api/agent/heartbeat/"));
}

#[test]
fn the_python_agents_own_file_is_pointed_out_not_silently_read() {
    let server = StackSense::start();
    let cmd = AgentCmd::new();
    cmd.home.write(
        ".stacksense_agent.conf",
        &format!("{{\"url\": \"{}\", \"token\": \"{TOKEN}\"}}", server.url()),
    );
    let out = cmd.args(["--check", "--offline"]).finish();
    assert_eq!(out.code(), Some(2), "nothing else configures it");
    assert_contains!(
        out.stderr,
        ".stacksense_agent.conf (the StackSense Python agent's file) is not read unless named"
    );
}

#[test]
fn check_authenticates_with_ping_which_is_not_a_beat() {
    let server = StackSense::start();
    let out = like_the_python_agent(&server).args(["--check"]).finish();
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_contains!(
        out.stdout,
        "authenticated as server 3 \"web-1\" (GET /api/agent/ping/ in "
    );
    assert_contains!(out.stdout, "server OK");
    assert_eq!(server.pings(), 1);
    assert!(server.beats(BOX_ID).is_empty(), "a ping is not a heartbeat");

    // --offline asks nothing.
    let out = like_the_python_agent(&server)
        .args(["--check", "--offline"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(!out.stdout.contains("server "), "{}", out.stdout);
    assert_eq!(server.rx.requests().len(), 1);
}

#[test]
fn check_fails_with_exit_3_and_the_reason_for_a_rejected_token_or_no_server() {
    let server = StackSense::start();
    let out = AgentCmd::new()
        .env("STACKSENSE_URL", server.url())
        .env("STACKSENSE_TOKEN", "not-the-token")
        .args(["--check"])
        .finish();
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("server "))
        .unwrap();
    assert_contains!(line, "FAIL: HTTP 401 Unauthorized for GET ");
    assert_contains!(line, "server says \"invalid or disabled token\"");
    assert_contains!(line, "create_agent_token");
    assert!(!out.stdout.contains("not-the-token") && !out.stderr.contains("not-the-token"));

    // Nothing listens there.
    let port = free_port();
    let out = AgentCmd::new()
        .env("STACKSENSE_URL", format!("http://127.0.0.1:{port}"))
        .env("STACKSENSE_TOKEN", TOKEN)
        .args(["--check", "--timeout", "2"])
        .finish();
    assert_eq!(out.code(), Some(3), "{}", out.stdout);
    assert_contains!(
        out.stdout,
        &format!("FAIL: connection refused by 127.0.0.1:{port}")
    );

    // A name that does not resolve.
    let out = AgentCmd::new()
        .env("STACKSENSE_URL", "http://stacksense-test.invalid:8000")
        .env("STACKSENSE_TOKEN", TOKEN)
        .args(["--check", "--timeout", "5"])
        .finish();
    assert_eq!(out.code(), Some(3), "{}", out.stdout);
    assert_contains!(out.stdout, "FAIL: DNS");
}

#[test]
fn the_legacy_endpoints_csrf_refusal_is_explained_and_not_retried() {
    let server = StackSense::start();
    let out = AgentCmd::new()
        .args(["--once", "--server-id", "3", "--api-url", &server.url()])
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(out.stderr, "HTTP 403 Forbidden for POST ");
    assert_contains!(
        out.stderr,
        "the server refuses anonymous POSTs to the legacy endpoint"
    );
    assert_contains!(out.stderr, "use the agent API");
    assert_contains!(out.stderr, "create_agent_token");
    assert!(!out.stderr.contains("<!DOCTYPE"), "{}", out.stderr);
    assert_eq!(server.rx.requests().len(), 1, "a refusal is not retried");

    // --check with the legacy API says it cannot ask without a beat.
    let out = AgentCmd::new()
        .args(["--check", "--server-id", "3", "--api-url", &server.url()])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stdout);
    assert_contains!(out.stdout, "connected to 127.0.0.1:");
    assert_contains!(out.stdout, "--once");
    assert_eq!(
        server.rx.requests().len(),
        1,
        "--check sent nothing to the legacy route"
    );

    // A name as server_id: StackSense routes numbers only.
    let out = AgentCmd::new()
        .args([
            "--check",
            "--offline",
            "--server-id",
            "web-1",
            "--api-url",
            &server.url(),
        ])
        .finish();
    assert_contains!(out.stderr, "StackSense routes only numeric ids");
}

#[test]
fn a_rejected_token_costs_one_request_per_slot_and_one_error_line() {
    let server = StackSense::start();
    let agent = AgentCmd::new()
        .env("STACKSENSE_URL", server.url())
        .env("STACKSENSE_TOKEN", "revoked-token")
        .args(["--interval", "1", "--no-splay"])
        .spawn();
    let line = agent.wait_for_line("heartbeat rejected", WAIT);
    assert_contains!(line, "server says \"invalid or disabled token\"");
    assert_contains!(line, "ERROR");
    server.rx.wait_for(3, WAIT);
    let requests = server.rx.requests();
    let gaps = gaps(&requests);
    assert!(
        gaps.iter().all(|g| *g > 0.7),
        "retried within a slot: {gaps:?}"
    );
    let errors = agent
        .log()
        .iter()
        .filter(|l| l.contains("rejected"))
        .count();
    assert_eq!(errors, 1, "{:?}", agent.log());
}

#[test]
fn no_token_with_the_agent_api_says_none_is_configured() {
    let server = StackSense::start();
    let out = AgentCmd::new()
        .args(["--once", "--api", "agent", "--api-url", &server.url()])
        .finish();
    assert_eq!(out.code(), Some(2));
    assert_contains!(
        out.stderr,
        "api (from flag --api): is agent, which needs a token"
    );
    assert_contains!(out.stderr, "create_agent_token");
}

#[test]
fn a_pinned_self_signed_ca_certificate_is_trusted_and_a_wrong_pin_is_not() {
    // What `openssl req -x509` makes: self-signed and CA:TRUE.
    let tls = TlsFixture::self_signed_ca_as_server();
    let server = StackSense::start_tls(&tls);
    let pin = pin_of(&tls.spki);

    // Unpinned, --check shows the key and the line to add.
    let out = like_the_python_agent(&server).args(["--check"]).finish();
    assert_eq!(out.code(), Some(3), "{}", out.stdout);
    assert_contains!(out.stdout, &format!("STACKSENSE_PINNED_PUBKEY={pin}"));

    let out = like_the_python_agent(&server)
        .env("STACKSENSE_PINNED_PUBKEY", &pin)
        .args(["--check"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_contains!(out.stdout, "authenticated as server 3");
    let out = like_the_python_agent(&server)
        .args(["--once", "--pinned-pubkey", &pin])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(server.beats(BOX_ID).len(), 1);

    // Another key: refused, not retried, and the line says which key it saw.
    let other = pin_of(&TlsFixture::new().spki);
    let out = like_the_python_agent(&server)
        .args(["--once", "--pinned-pubkey", &other])
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(out.stderr, &format!("the server's key {pin} is not pinned"));
    assert_eq!(server.beats(BOX_ID).len(), 1);

    // A malformed pin is a config error naming the setting.
    let out = like_the_python_agent(&server)
        .args(["--once", "--pinned-pubkey", "sha256//short"])
        .finish();
    assert_eq!(out.code(), Some(2));
    assert_contains!(out.stderr, "pinned_pubkey (from flag --pinned-pubkey)");
}

#[test]
fn verify_tls_false_is_refused_loudly_and_verification_stays_on() {
    let tls = TlsFixture::self_signed_ca_as_server();
    let server = StackSense::start_tls(&tls);
    let out = like_the_python_agent(&server)
        .env("STACKSENSE_VERIFY_TLS", "false")
        .args(["--once", "--interval", "1"])
        .finish();
    assert_eq!(out.code(), Some(1), "no silent downgrade");
    assert_contains!(
        out.stderr,
        "verify_tls (from env STACKSENSE_VERIFY_TLS) is false: ignored"
    );
    assert_contains!(out.stderr, "pinned_pubkey");
    assert!(server.beats(BOX_ID).is_empty());
}

#[test]
fn tls_and_scheme_mistakes_are_said_in_words() {
    // A certificate for another name, from a CA the agent trusts.
    let tls = TlsFixture::for_names(&["monitor.example.com"]);
    let dir = TempDir::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    let server = StackSense::start_tls(&tls);
    let out = like_the_python_agent(&server)
        .args(["--once", "--interval", "1", "--ca-file"])
        .arg_path(&ca)
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(
        out.stderr,
        "it is not for 127.0.0.1 (it names monitor.example.com)"
    );
    assert!(!out.stderr.contains("NotValidForName"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("--ca-file"),
        "it was given: {}",
        out.stderr
    );

    // http:// to a TLS port.
    let url = server.url().replace("https://", "http://");
    let out = AgentCmd::new()
        .env("STACKSENSE_URL", &url)
        .env("STACKSENSE_TOKEN", TOKEN)
        .args(["--check", "--timeout", "2"])
        .finish();
    assert_eq!(out.code(), Some(3), "{}", out.stdout);
    assert_contains!(out.stdout, "did not answer in HTTP");
    assert_contains!(out.stdout, "use https://");
}

#[test]
fn the_service_keeps_the_box_online() {
    let server = StackSense::start();
    let agent = like_the_python_agent(&server)
        .args(["--interval", "0.5", "--no-splay"])
        .spawn();
    let line = agent.wait_for_line("starting:", WAIT);
    assert_contains!(line, "agent API, POST ");
    assert_contains!(line, "/api/agent/heartbeat/");
    agent.wait_for_line("first heartbeat accepted", WAIT);
    server.rx.wait_for(4, WAIT);
    assert!(server.beats(BOX_ID).len() >= 4);
    let warnings: Vec<String> = agent
        .log()
        .into_iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// The layout install.sh writes for systemd: the config names the
/// root-only token file (for root's `--check`), and the unit hands the
/// same token to the service as a credential, which wins over the file.
#[test]
fn a_systemd_credential_wins_over_the_config_files_token_file() {
    let server = StackSense::start();
    let credentials = TempDir::new();
    credentials.write("token", TOKEN);
    let cmd = AgentCmd::new();
    let text = format!(
        "{{\"api_url\": \"{}\", \"token_file\": \"/nonexistent/token\"}}",
        server.url()
    );
    cmd.home.write(".stacksense_heartbeat.conf", &text);
    let out = cmd
        .env("CREDENTIALS_DIRECTORY", credentials.path())
        .args(["--once"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(server.beats(BOX_ID).len(), 1);
    // A variable still wins over the credential.
    let out = AgentCmd::new()
        .env("STACKSENSE_URL", server.url())
        .env("STACKSENSE_TOKEN", "from-the-environment")
        .env("CREDENTIALS_DIRECTORY", credentials.path())
        .args(["--check", "--offline"])
        .finish();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("token "))
        .unwrap_or_default()
        .to_string();
    assert!(row.ends_with("from env STACKSENSE_TOKEN"), "{row}");
}

/// A rotated token (`create_agent_token` run again, the token file
/// rewritten) is picked up after the server refuses the old one, without a
/// restart; neither token shows in the log.
#[test]
fn a_rotated_token_is_read_again_after_a_refusal() {
    let server = StackSense::start();
    let dir = TempDir::new();
    let old = "old-token-0123456789abcdefghijklmnopqrstuvw";
    let file = dir.write("token", &format!("{old}\n"));
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut agent = AgentCmd::new()
        .env("STACKSENSE_URL", server.url())
        .env("STACKSENSE_TOKEN_FILE", &file)
        .args(["--interval", "0.5", "--no-splay", "--report", "off", "-v"])
        .spawn();
    let refused = agent.wait_for_line("401", Duration::from_secs(30));
    assert_contains!(
        refused,
        "its file still holds this token: write the new one there"
    );
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.beats(BOX_ID).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.stop_with(libc::SIGTERM);
    assert!(!server.beats(BOX_ID).is_empty(), "{:#?}", agent.log());
    let log = agent.log().join("\n");
    assert_contains!(
        log,
        "the token file holds a new token now: the next beat sends it"
    );
    assert!(!log.contains(old) && !log.contains(TOKEN), "{log}");
}
