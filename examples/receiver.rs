//! A stand-alone heartbeat receiver for manual runs and the packaging tests:
//!
//!     cargo run --example receiver -- [--port 8080] [--tls DIR]
//!
//! With --tls it serves HTTPS with a CA made for the run, written to DIR/ca.pem
//! for the agent's --ca-file.
//! Listens on 127.0.0.1, answers every request with the StackSense reply,
//! and prints one line per request: `<unix secs> <METHOD> <path> auth=<Authorization>`.
//! The packaging tests run it inside a container's network namespace and
//! read those lines to see beats (and the token) arrive.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Receiver, TlsFixture, ok_json};

fn main() {
    let mut port = 0u16;
    let mut tls_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(p)) if p.parse::<u16>().is_ok() => port = p.parse().unwrap_or(0),
            ("--tls", Some(dir)) => tls_dir = Some(std::path::PathBuf::from(dir)),
            _ => {
                eprintln!("usage: receiver [--port N] [--tls DIR]");
                std::process::exit(2);
            }
        }
    }
    let listener = match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("receiver: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let tls = tls_dir.map(|dir| {
        let fixture = TlsFixture::new();
        let ca = dir.join("ca.pem");
        if let Err(e) = std::fs::write(&ca, &fixture.ca_pem) {
            eprintln!("receiver: cannot write {}: {e}", ca.display());
            std::process::exit(1);
        }
        fixture.server_config()
    });
    let rx = Receiver::on(listener, tls, |_| ok_json());
    println!("listening {}", rx.url());
    let mut shown = 0;
    loop {
        let requests = rx.requests();
        let mut out = std::io::stdout().lock();
        for r in &requests[shown..] {
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let auth = r.header("authorization").unwrap_or("-");
            let _ = writeln!(
                out,
                "{:.3} {} {} auth={auth}",
                wall.as_secs_f64(),
                r.method,
                r.path
            );
        }
        let _ = out.flush();
        shown = requests.len();
        std::thread::sleep(Duration::from_millis(50));
    }
}
