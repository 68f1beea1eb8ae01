//! Services and containers found, not configured: the real binary's
//! services and containers pushes to the test server, with ports this
//! test listens on and a Docker engine of its own on a unix socket
//! (answers recorded from Docker 24 and Podman 4.3), including engines
//! that hang, vanish or refuse.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::schema::{assert_valid_containers, assert_valid_services};
use crate::common::stacksense::{BOX_ID, TOKEN};
use crate::common::*;

const WAIT: Duration = Duration::from_secs(30);

fn agent_for(server: &StackSense) -> AgentCmd {
    AgentCmd::new()
        .env("STACKSENSE_URL", server.url())
        .env("STACKSENSE_TOKEN", TOKEN)
}

fn row<'a>(push: &'a Value, name: &str) -> Option<&'a Value> {
    push["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

#[test]
fn a_listening_port_is_a_service_named_by_its_process_with_a_response_time() {
    let server = StackSense::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = agent_for(&server)
        .args(["--once", "--report", "services"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let pushes = server.services(BOX_ID);
    assert_valid_services(&pushes[0]);
    let name = format!("port-{port}");
    let found = row(&pushes[0], &name).unwrap_or_else(|| panic!("no {name} in {:#}", pushes[0]));
    assert_eq!(found["service_type"], "port");
    assert!(
        found.get("status").is_none(),
        "running: the server's default"
    );
    assert_eq!(found["bind_address"], "127.0.0.1");
    assert_eq!(found["process_id"], std::process::id().to_string().as_str());
    assert_eq!(found["detected_via"], "port-process");
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(
        found["display_name"],
        format!("{} (:{port})", comm.trim_end()).as_str()
    );
    assert_eq!(found["latency_success"], true);
    assert_eq!(found["latency_type"], "TCP");
    assert!(
        found["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{found}"
    );
    // Closed: not a service any more (the server marks it stopped).
    drop(listener);
    let out = agent_for(&server)
        .args(["--once", "--report", "services"])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(row(&server.services(BOX_ID)[1], &name).is_none());
}

/// A Docker engine on a unix socket: each connection gets the answer
/// `reply` holds at that moment (None: accept, read, and never answer).
struct Engine {
    path: PathBuf,
    reply: Arc<Mutex<Option<String>>>,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    _dir: TempDir,
}

impl Engine {
    fn start(reply: Option<&str>) -> Engine {
        let dir = TempDir::new();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let reply = Arc::new(Mutex::new(reply.map(str::to_string)));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, a, s) = (reply.clone(), asked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut request = vec![0u8; 4096];
                let n = conn.read(&mut request).unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                a.lock().unwrap().push(line);
                match r.lock().unwrap().clone() {
                    Some(text) => {
                        let _ = conn.write_all(text.as_bytes());
                    }
                    None => held.push(conn),
                }
            }
        });
        Engine {
            path,
            reply,
            asked,
            stop,
            _dir: dir,
        }
    }

    fn answer(&self, containers: &str) {
        *self.reply.lock().unwrap() = Some(format!(
            "HTTP/1.0 200 OK\r\nApi-Version: 1.43\r\nContent-Type: application/json\r\n\
             Server: Docker/24.0.7 (linux)\r\n\r\n{containers}"
        ));
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const TWO: &str = r#"[{"Id":"4f1c0e7d9a","Names":["/web"],"Image":"nginx:1.25","Command":"nginx","Created":1701950000,"Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}],"Labels":{"com.docker.compose.project":"shop"},"State":"running","Status":"Up 3 hours","HostConfig":{"NetworkMode":"default"},"NetworkSettings":{"Networks":{}},"Mounts":[]},{"Id":"9e8d","Names":["/batch\u001b[31m"],"Image":"alpine","Ports":[],"State":"exited","Status":"Exited (0) 2 minutes ago"}]"#;

#[test]
fn containers_come_from_the_engine_and_one_removed_goes_once_as_gone() {
    let server = StackSense::start();
    let engine = Engine::start(None);
    engine.answer(TWO);
    let mut agent = agent_for(&server)
        .args(["--docker-host", &engine.host(), "--report", "containers"])
        .args([
            "--interval",
            "0.5",
            "--services-interval",
            "0.5",
            "--no-splay",
        ])
        .spawn();
    let pushes = wait_for_pushes(|| server.containers(BOX_ID), 1, WAIT);
    assert_valid_containers(&pushes[0]);
    let c = &pushes[0]["containers"];
    assert_eq!(c[0]["name"], "web");
    assert_eq!(c[0]["image"], "nginx:1.25");
    assert_eq!(c[0]["state"], "running");
    assert_eq!(c[0]["status_text"], "Up 3 hours");
    assert_eq!(c[0]["ports"], "0.0.0.0:8080->80/tcp");
    assert_eq!(c[0]["runtime"], "docker");
    assert_eq!(c[1]["state"], "exited");
    assert_eq!(
        c[1]["name"], "batch\u{1b}[31m",
        "JSON escapes it; the server stores it"
    );
    assert_eq!(
        engine.asked.lock().unwrap()[0],
        "GET /containers/json?all=1 HTTP/1.0"
    );
    // Removed, the last one too: the server would keep it as it was.
    engine.answer("[]");
    let seen = server.containers(BOX_ID).len();
    let pushes = wait_for_pushes(|| server.containers(BOX_ID), seen + 3, WAIT);
    agent.stop_with(libc::SIGTERM);
    let after: Vec<&Value> = pushes[seen..].iter().collect();
    let gone = after
        .iter()
        .position(|p| p["containers"].as_array().is_some_and(|c| !c.is_empty()))
        .expect("a push with the gone containers");
    assert_valid_containers(after[gone]);
    let names: Vec<(&str, &str)> = after[gone]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("web", "gone"), ("batch\u{1b}[31m", "gone")]);
    assert_eq!(after[gone + 1]["containers"], serde_json::json!([]), "once");
}

#[test]
fn an_engine_that_never_answers_costs_no_beat_and_is_said_once() {
    let server = StackSense::start();
    let engine = Engine::start(None);
    let mut agent = agent_for(&server)
        .args(["--docker-host", &engine.host()])
        .args([
            "--interval",
            "0.5",
            "--services-interval",
            "0.5",
            "--no-splay",
        ])
        .spawn();
    let started = Instant::now();
    // Services pushes go every beat while the engine holds its threads.
    wait_for_pushes(|| server.services(BOX_ID), 8, WAIT);
    let took = started.elapsed();
    let log = agent.log().join("\n");
    agent.stop_with(libc::SIGTERM);
    assert!(took < Duration::from_secs(20), "{took:?}\n{log}");
    assert!(server.containers(BOX_ID).is_empty());
    let said = log
        .matches("the containers push leaves out containers")
        .count();
    assert!(said >= 1, "{log}");
    assert!(
        said <= 2,
        "said once (and once more when the reason changes):\n{log}"
    );
    assert_contains!(log, "did not answer within");
    // A hung engine is asked again only once it gave up on the last one.
    let asked = engine.asked.lock().unwrap().len();
    assert!(asked <= 4, "asked {asked} times in {took:?}");
}

#[test]
fn a_socket_nobody_listens_on_or_we_may_not_open_is_one_line_saying_so() {
    let server = StackSense::start();
    let dir = TempDir::new();
    let path = dir.path().join("docker.sock");
    drop(UnixListener::bind(&path).unwrap()); // the file stays, nobody behind it
    let mut agent = agent_for(&server)
        .args(["--docker-host", path.to_str().unwrap()])
        .args([
            "--interval",
            "0.5",
            "--services-interval",
            "0.5",
            "--no-splay",
        ])
        .spawn();
    wait_for_pushes(|| server.services(BOX_ID), 3, WAIT);
    let log = agent.log().join("\n");
    agent.stop_with(libc::SIGTERM);
    assert_eq!(log.matches("leaves out containers").count(), 1, "{log}");
    assert_contains!(log, "refused");
    // Root opens any socket: the refusal needs another user.
    if unsafe { libc::geteuid() } == 0 {
        return;
    }
    let engine = Engine::start(None);
    engine.answer(TWO);
    std::fs::set_permissions(
        &engine.path,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let out = agent_for(&server)
        .args([
            "--docker-host",
            &engine.host(),
            "--once",
            "--report",
            "containers",
        ])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_contains!(
        out.stderr,
        "(permission denied); to report containers, grant it"
    );
    assert_contains!(out.stderr, "install.sh --containers");
    assert!(engine.asked.lock().unwrap().is_empty());
}

#[test]
fn a_box_with_1500_containers_gets_a_push_the_server_takes_and_one_line() {
    let server = StackSense::start();
    let engine = Engine::start(None);
    let many: Vec<String> = (0..1500)
        .map(|i| {
            format!(
                r#"{{"Id":"{i:064x}","Names":["/app-{i}-{}"],"Image":"registry.example/team/service-{i}:2026.12.{i}","Ports":[{{"IP":"0.0.0.0","PrivatePort":8080,"PublicPort":{},"Type":"tcp"}}],"Labels":{{"a":"{}"}},"State":"running","Status":"Up 2 days"}}"#,
                "n".repeat(40),
                20000 + i,
                "l".repeat(200)
            )
        })
        .collect();
    engine.answer(&format!("[{}]", many.join(",")));
    let out = agent_for(&server)
        .args([
            "--docker-host",
            &engine.host(),
            "--once",
            "--report",
            "containers",
        ])
        .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let pushes = server.containers(BOX_ID);
    assert_eq!(pushes.len(), 1, "the server took it (no 413)");
    assert_valid_containers(&pushes[0]);
    let listed = pushes[0]["containers"].as_array().unwrap().len();
    assert!((500..1000).contains(&listed), "{listed}");
    let body = server
        .rx
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/agent/containers/")
        .unwrap()
        .body;
    assert!(body.len() <= 256 * 1024, "{}", body.len());
    assert_contains!(out.stderr, &format!("containers after the first {listed}"));
    assert_eq!(
        out.stderr.matches("leaves out").count(),
        2,
        "{}",
        out.stderr
    );
}
