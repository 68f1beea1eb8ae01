//! The box's services found, not configured: the running systemd services
//! (host/units.rs) and the listening TCP ports (host/sockets.rs), each
//! port with the process that holds it, what it says about itself, and
//! how long a connect to it takes. What is learnt once per socket (its
//! holder, its banner) is kept while the socket lives: a push reads the
//! listening tables, connects once to each port, and looks further only
//! at a socket it has not seen. docs/design.md, "Services found".

mod banner;
pub mod connect;
pub mod containers;
pub mod names;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use crate::host::sockets::{self, Listener, Owner};
use crate::host::units::{self, Tree};
use connect::Connect;

/// The longest the search for new sockets' holders may take in one push
/// (as root, a readlink per open file of every process: a box with many
/// files gets the first holders found, the rest are named otherwise).
const OWNER_SEARCH: Duration = Duration::from_millis(100);
/// Banner probes started in one push; more new ports wait for the next.
/// Each holds a kept thread up to a second, and the shipped unit allows
/// 16 tasks: the health checks' probes must still find theirs.
const MAX_NEW_PROBES: usize = 3;
/// The ports timed in one push (the server's own agent's cap): a box
/// listening on hundreds has the lowest ones timed.
pub const MAX_TIMED: usize = 50;

/// One listening port as the Services page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub port: u16,
    /// The socket that stands for the port (its first listener's): its
    /// holder and banner are learnt once, again only when it is new.
    pub inode: u64,
    /// Where it listens: a wildcard when any listener of the port has one.
    pub bind: IpAddr,
    pub owner: Option<Owner>,
    /// What its banner named.
    pub product: Option<String>,
    /// Where a connect goes to time it; None for a link-local address,
    /// which needs an interface to reach.
    pub target: Option<SocketAddr>,
    /// How its connect went this push; None when it was not timed.
    pub connect: Option<Connect>,
}

/// What one look found.
#[derive(Debug, Default)]
pub struct Found {
    /// None: systemd does not run this box (or its cgroups are hidden).
    pub units: Option<Vec<String>>,
    pub ports: Vec<Port>,
    /// More services than [`units::MAX_UNITS`].
    pub units_cut: bool,
    /// `/proc/net/tcp` could not be read.
    pub ports_unreadable: bool,
    /// Listening on more ports than [`MAX_TIMED`]: the rest are not timed.
    pub untimed: usize,
}

/// What a banner probe has said of a socket.
#[derive(Debug, Clone, PartialEq)]
enum Banner {
    Asked,
    Said(Option<String>),
}

/// A probe's answer: the socket asked, and the product it named.
type Said = (u64, Option<String>);

/// The discovery's memory from one push to the next.
pub struct Discovery {
    tree: Option<Tree>,
    /// Each listening socket's holder, by inode (None: not visible to us).
    owners: HashMap<u64, Option<Owner>>,
    banners: HashMap<u64, Banner>,
    answers: (Sender<Said>, Receiver<Said>),
}

impl Default for Discovery {
    fn default() -> Discovery {
        Discovery::new(Path::new("/sys/fs/cgroup"))
    }
}

impl Discovery {
    pub fn new(cgroups: &Path) -> Discovery {
        Discovery {
            tree: if units::booted() {
                Tree::find(cgroups)
            } else {
                None
            },
            owners: HashMap::new(),
            banners: HashMap::new(),
            answers: mpsc::channel(),
        }
    }

    /// The services and ports now, each port timed within `within` (also
    /// the longest a new port's banner is waited for).
    pub fn look(&mut self, within: Duration) -> Found {
        let started = Instant::now();
        let mut found = Found::default();
        if let Some(tree) = &self.tree {
            let (running, cut) = units::running(tree);
            found.units = Some(running);
            found.units_cut = cut;
        }
        let (listeners, unreadable) = sockets::listening();
        found.ports_unreadable = unreadable;
        self.learn_owners(&listeners);
        let mut ports = group(&listeners);
        let asked = self.ask_new(&ports);
        for port in &mut ports {
            port.owner = self.owners.get(&port.inode).cloned().flatten();
        }
        let timed: Vec<SocketAddr> = ports
            .iter()
            .filter_map(|p| p.target)
            .take(MAX_TIMED)
            .collect();
        found.untimed = ports
            .iter()
            .filter(|p| p.target.is_some())
            .count()
            .saturating_sub(timed.len());
        let mut results = connect::time_all(&timed, within).into_iter();
        for port in ports
            .iter_mut()
            .filter(|p| p.target.is_some())
            .take(MAX_TIMED)
        {
            port.connect = results.next();
        }
        self.hear(asked, started + within);
        for port in &mut ports {
            if let Some(Banner::Said(product)) = self.banners.get(&port.inode) {
                port.product.clone_from(product);
            }
        }
        found.ports = ports;
        found
    }

    /// Looks for the holders of sockets not seen before, and forgets
    /// those of sockets gone.
    fn learn_owners(&mut self, listeners: &[Listener]) {
        let live: Vec<u64> = listeners.iter().map(|l| l.inode).collect();
        self.owners.retain(|inode, _| live.contains(inode));
        self.banners.retain(|inode, _| live.contains(inode));
        let new: Vec<u64> = live
            .iter()
            .copied()
            .filter(|i| !self.owners.contains_key(i))
            .collect();
        if new.is_empty() {
            return;
        }
        let mut holders = sockets::owners(&new, OWNER_SEARCH);
        for inode in new {
            self.owners.insert(inode, holders.remove(&inode));
        }
    }

    /// Starts a banner probe for each new port that has a harmless first
    /// exchange; the number of probes started.
    fn ask_new(&mut self, ports: &[Port]) -> usize {
        let mut started = 0;
        for port in ports {
            let (Some(ask), Some(target)) = (names::ask(port.port), port.target) else {
                continue;
            };
            let inode = port.inode;
            if self.banners.contains_key(&inode) || started == MAX_NEW_PROBES {
                continue;
            }
            let answers = self.answers.0.clone();
            let job = move || {
                let said = banner::probe(target, ask);
                let _ = answers.send((inode, said));
            };
            if crate::workers::spawn(job).is_ok() {
                self.banners.insert(inode, Banner::Asked);
                started += 1;
            }
        }
        started
    }

    /// Takes the probes' answers: those that came since the last push, and
    /// `asked` new ones until `until` (a late one is taken next push).
    fn hear(&mut self, mut asked: usize, until: Instant) {
        loop {
            let answer = if asked > 0 {
                let left = until.saturating_duration_since(Instant::now());
                self.answers.1.recv_timeout(left).ok()
            } else {
                self.answers.1.try_recv().ok()
            };
            let Some((inode, said)) = answer else {
                return;
            };
            asked = asked.saturating_sub(1);
            if let Some(banner) = self.banners.get_mut(&inode) {
                *banner = Banner::Said(said);
            }
        }
    }
}

/// One [`Port`] per port number, lowest first: a port listened on by v4
/// and v6 (or on several addresses) is one service.
fn group(listeners: &[Listener]) -> Vec<Port> {
    let mut numbers: Vec<u16> = listeners.iter().map(|l| l.port).collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
        .into_iter()
        .map(|number| {
            let on: Vec<&Listener> = listeners.iter().filter(|l| l.port == number).collect();
            let bind = on
                .iter()
                .map(|l| l.address)
                .find(IpAddr::is_unspecified)
                .unwrap_or_else(|| {
                    on.first()
                        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |l| l.address)
                });
            Port {
                port: number,
                inode: on.first().map_or(0, |l| l.inode),
                bind,
                owner: None,
                product: None,
                target: target(on.iter().map(|l| l.address), number),
                connect: None,
            }
        })
        .collect()
}

/// Where a connect to a port bound on `addresses` goes: loopback when
/// the port listens there or on a wildcard (IPv4's first: a v6 wildcard
/// usually takes v4 too), else its own address. A link-local address
/// needs an interface: not timed.
fn target(addresses: impl Iterator<Item = IpAddr> + Clone, port: u16) -> Option<SocketAddr> {
    let any = |f: fn(&IpAddr) -> bool| addresses.clone().find(&f);
    let chosen = any(|a| matches!(a, IpAddr::V4(v4) if v4.is_loopback()))
        .or_else(|| {
            any(|a| *a == IpAddr::V4(Ipv4Addr::UNSPECIFIED)).map(|_| Ipv4Addr::LOCALHOST.into())
        })
        .or_else(|| any(|a| *a == IpAddr::V6(Ipv6Addr::LOCALHOST)))
        .or_else(|| {
            any(|a| *a == IpAddr::V6(Ipv6Addr::UNSPECIFIED)).map(|_| Ipv6Addr::LOCALHOST.into())
        })
        .or_else(|| any(|a| !is_link_local(a)))?;
    Some(SocketAddr::new(chosen, port))
}

fn is_link_local(address: &IpAddr) -> bool {
    match address {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}
