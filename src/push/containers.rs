//! The body of `POST /api/agent/containers/`: every container Docker or
//! Podman lists (discover/containers.rs), with the fields the server
//! keeps, cut to its lengths. The server marks a container it no longer
//! hears of "gone", but only when a push lists at least one: so a
//! container that disappears is sent once more by us, as it was last
//! seen but "gone", and the Containers page is right when the last one
//! goes too.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};

use serde::Serialize;

use super::body::{Outside, Version, fitting, to_json};
use super::{Collect, Collected, LeftOut, Moment};
use crate::discover::containers::{
    self, Container, Failure, Listing, MAX_CONTAINERS, Runtime, SOCKETS, Socket,
};

#[derive(Debug, Serialize)]
struct Containers<'a> {
    #[serde(flatten)]
    version: Version,
    containers: &'a [Row],
}

/// One container as the server stores it (each field cut to its column).
#[derive(Debug, Serialize)]
struct Row {
    container_id: Outside,
    name: Outside,
    image: Outside,
    state: Outside,
    status_text: Outside,
    ports: Outside,
    runtime: &'static str,
}

fn row(c: &Container, runtime: Runtime, state: &str, status: &str) -> Row {
    Row {
        container_id: Outside::capped(&c.id, 64),
        name: Outside::capped(c.name(), 200),
        image: Outside::capped(&c.image, 300),
        state: Outside::capped(state, 30),
        status_text: Outside::capped(status, 200),
        ports: Outside::capped(&c.ports_text(), 300),
        runtime: runtime.word(),
    }
}

/// The listing's rows, then each of `gone` as it was last seen, "gone".
fn rows(listing: &Listing, gone: &[(Container, Runtime)]) -> Vec<Row> {
    let mut out: Vec<Row> = listing
        .containers
        .iter()
        .map(|c| row(c, listing.runtime, &c.state(), &c.status))
        .collect();
    out.extend(
        gone.iter()
            .map(|(c, runtime)| row(c, *runtime, "gone", "no longer listed")),
    );
    out
}

type Answer = Result<Listing, Failure>;

/// Docker's or Podman's containers, asked on a kept thread at each push.
pub struct Collector {
    socket: Socket,
    /// A listing asked and not answered yet: no second one is asked
    /// while an engine hangs (each would hold a thread).
    asking: Arc<AtomicBool>,
    answers: (Sender<Answer>, Receiver<Answer>),
    /// What the last push listed.
    listed: Vec<(Container, Runtime)>,
}

impl Collector {
    pub fn new(socket: Socket) -> Collector {
        Collector {
            socket,
            asking: Arc::new(AtomicBool::new(false)),
            answers: mpsc::channel(),
            listed: Vec::new(),
        }
    }

    fn no_body(left_out: LeftOut) -> Collected {
        Collected {
            body: None,
            left_out: vec![left_out],
        }
    }
}

/// Where to grant access, in one line.
fn denied(at: &str) -> LeftOut {
    LeftOut::new(
        "containers",
        format!(
            "the agent may not open {at} (permission denied); to report containers, grant it \
             (root-equivalent): install.sh --containers, or see the README, \"Containers\""
        ),
    )
}

impl Collect for Collector {
    fn collect(&mut self, at: &Moment) -> Collected {
        let Some(path) = self.socket.path() else {
            return Collector::no_body(match self.socket {
                Socket::Off => LeftOut::expected("containers", "docker_host is off"),
                _ => LeftOut::expected(
                    "containers",
                    format!(
                        "no Docker or Podman socket ({}); set docker_host if it is elsewhere",
                        SOCKETS.join(", ")
                    ),
                ),
            });
        };
        // The path is a setting's value (DOCKER_HOST too): escaped for the log.
        let shown = crate::text::untrusted(&path.to_string_lossy());
        // A late answer to an earlier push is stale now.
        while self.answers.1.try_recv().is_ok() {}
        if self.asking.swap(true, Ordering::AcqRel) {
            return Collector::no_body(LeftOut::new(
                "containers",
                format!("{shown} has not answered an earlier listing yet"),
            ));
        }
        let (answers, asking, socket): (_, _, PathBuf) =
            (self.answers.0.clone(), self.asking.clone(), path.clone());
        let job = move || {
            let answer = containers::list(&socket);
            asking.store(false, Ordering::Release);
            let _ = answers.send(answer);
        };
        if let Err(e) = crate::workers::spawn(job) {
            self.asking.store(false, Ordering::Release);
            return Collector::no_body(LeftOut::new(
                "containers",
                format!("no thread to ask {shown}: {}", crate::text::describe_io(&e)),
            ));
        }
        let listing = match self.answers.1.recv_timeout(at.limit) {
            Ok(Ok(listing)) => listing,
            Ok(Err(Failure::Missing)) => {
                return Collector::no_body(LeftOut::expected(
                    "containers",
                    format!("no socket at {shown}"),
                ));
            }
            Ok(Err(Failure::Denied)) => return Collector::no_body(denied(&shown)),
            Ok(Err(Failure::Other(why))) => {
                return Collector::no_body(LeftOut::new("containers", format!("{shown}: {why}")));
            }
            Err(_) => {
                return Collector::no_body(LeftOut::new(
                    "containers",
                    format!(
                        "{} did not answer within {}",
                        shown,
                        crate::clock::format_duration(at.limit)
                    ),
                ));
            }
        };
        let gone: Vec<(Container, Runtime)> = std::mem::take(&mut self.listed)
            .into_iter()
            .filter(|(c, _)| !listing.containers.iter().any(|n| n.name() == c.name()))
            .collect();
        let all = rows(&listing, &gone);
        let (body, kept) = fitting(all.len(), |n| {
            to_json(&Containers {
                version: Version::default(),
                containers: all.get(..n).unwrap_or_default(),
            })
        });
        self.listed = listing
            .containers
            .iter()
            .map(|c| (c.clone(), listing.runtime))
            .collect();
        let mut left_out = Vec::new();
        if kept < all.len() {
            left_out.push(LeftOut::new(
                format!("containers after the first {kept}"),
                "the body would pass the server's 256 KiB limit; the server marks them gone",
            ));
        }
        if listing.cut {
            left_out.push(LeftOut::new(
                format!("containers after the first {MAX_CONTAINERS}"),
                "the server marks them gone",
            ));
        }
        Collected {
            body: Some(body),
            left_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, state: &str) -> Container {
        Container {
            id: format!("{name}-id"),
            names: vec![format!("/{name}")],
            image: "img\u{1b}[2J".into(),
            state: state.into(),
            status: "Up 1 second".into(),
            ports: Vec::new(),
        }
    }

    #[test]
    fn rows_carry_the_servers_fields_cut_to_its_columns() {
        let mut long = container(&"n".repeat(300), "running");
        long.image = "i".repeat(400);
        let listing = Listing {
            runtime: Runtime::Podman,
            containers: vec![container("web", "running"), long],
            cut: false,
        };
        let body: serde_json::Value = serde_json::from_str(&to_json(&Containers {
            version: Version::default(),
            containers: &rows(&listing, &[(container("old", "running"), Runtime::Docker)]),
        }))
        .unwrap();
        let c = &body["containers"];
        assert_eq!(c[0]["name"], "web");
        assert_eq!(c[0]["container_id"], "web-id");
        assert_eq!(c[0]["image"], "img\u{1b}[2J", "JSON carries it escaped");
        assert_eq!(c[0]["runtime"], "podman");
        assert_eq!(c[0]["state"], "running");
        assert_eq!(c[1]["name"].as_str().unwrap().len(), 200);
        assert_eq!(c[1]["image"].as_str().unwrap().len(), 300);
        assert_eq!(c[2]["name"], "old");
        assert_eq!(c[2]["state"], "gone");
        assert_eq!(
            c[2]["image"], "img\u{1b}[2J",
            "as last seen: the server keeps it"
        );
        assert_eq!(c[2]["container_id"], "old-id");
        assert_eq!(c[2]["runtime"], "docker");
    }
}
