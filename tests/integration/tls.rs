//! HTTPS with a CA the test makes itself.

use std::time::Duration;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn https_with_the_test_ca_is_accepted() {
    let tls = TlsFixture::new();
    let dir = TempDir::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    let rx = Receiver::start_tls(&tls, |_| ok_json());
    assert!(rx.url().starts_with("https://127.0.0.1:"));
    let running = AgentCmd::posting_to(&rx.url())
        .args(["--ca-file"])
        .args([&ca])
        .spawn();
    let req = &rx.wait_for(1, WAIT)[0];
    assert_eq!(req.path, "/api/heartbeat/7/");
    running.wait_for_line("first heartbeat accepted", WAIT);

    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once"])
        .env("STACKSENSE_CA_FILE", &ca)
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
}

#[test]
fn an_unknown_ca_is_rejected_and_not_retried() {
    let tls = TlsFixture::new();
    let rx = Receiver::start_tls(&tls, |_| ok_json());
    let running = AgentCmd::posting_to(&rx.url())
        .args(["--interval", "2", "--no-splay"])
        .spawn();
    let line = running.wait_for_line("heartbeat rejected", WAIT);
    assert_contains!(line, "certificate");
    assert_contains!(line, "--ca-file");
    assert_contains!(line, "ERROR");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.connections(), 1, "retried before the next slot");
    assert!(
        rx.requests().is_empty(),
        "a request got through without trusting the CA"
    );

    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--interval", "2"])
        .finish();
    assert_eq!(out.code(), Some(1));
    assert_contains!(out.stderr, "certificate");
}

/// A certificate chain over rustls' 64 KiB handshake limit is named as
/// such, not taken for a server that does not speak TLS.
#[test]
fn a_certificate_chain_over_64_kib_is_named() {
    use rcgen::{CertificateParams, KeyPair};
    let tls = TlsFixture::new();
    // Four certificates of about 20 KB each after the server's own: a
    // certificate over 64 KiB cannot be encoded, a chain that long can.
    let padding: Vec<_> = (0..4)
        .map(|i| {
            let names = (0..450)
                .map(|n| format!("host-{i}-{n:03}.a-long-subdomain.example.net"))
                .collect::<Vec<_>>();
            let key = KeyPair::generate().unwrap();
            CertificateParams::new(names)
                .unwrap()
                .self_signed(&key)
                .unwrap()
                .der()
                .clone()
        })
        .collect();
    let chain: usize = padding.iter().map(|c| c.len()).sum();
    assert!(chain > 65_536, "{chain} bytes");
    let dir = TempDir::new();
    let ca = dir.write("ca.pem", &tls.ca_pem);
    let rx = Receiver::on(bind(), Some(tls.server_config_with_chain(padding)), |_| {
        ok_json()
    });
    let out = AgentCmd::posting_to(&rx.url())
        .args(["--once", "--interval", "2", "--ca-file"])
        .args([&ca])
        .finish();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_contains!(out.stderr, "handshake message over 64 KiB");
    assert_contains!(out.stderr, "shorter chain");
    assert!(!out.stderr.contains("does not speak TLS"), "{}", out.stderr);
}
