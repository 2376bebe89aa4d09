//! libcluster's `Cluster.Strategy.Gossip` from Rust: find BEAM nodes of a libcluster-managed
//! cluster by UDP multicast heartbeats, and be found by them.
//!
//! Follows libcluster 3.5.0, `lib/strategy/gossip.ex`: every node sends a heartbeat
//! ([`packet`]) to the multicast group every `:rand.uniform(5000)` ms and connects to every
//! node it hears. The defaults are libcluster's: port 45892, group 233.252.1.32, bound to
//! 0.0.0.0, TTL 1, multicast loop on, and `SO_REUSEADDR` + `SO_REUSEPORT` so that several nodes
//! of one host share the port. `multicast_if` is the interface multicast leaves by (and the
//! group is joined on), not the bind address: on one machine, `127.0.0.1` keeps it on `lo`.
//!
//! The strategies that only need a node to connect to (`Cluster.Strategy.Epmd` with
//! `hosts: [:"rust@host"]`, `Cluster.Strategy.LocalEpmd`) work with any erlnode node as it is.
//!
//! ```no_run
//! # async fn demo(node: erlnode::Node) -> std::io::Result<()> {
//! use erlnode::ecosystem::libcluster::{self, GossipConfig};
//!
//! let gossip = libcluster::start_gossip(&node, GossipConfig { secret: Some("s3cret".into()), ..Default::default() }).await?;
//! // ... BEAM nodes running a Gossip topology with the same secret connect to `node`,
//! // and `node` connects to them.
//! println!("{:?}", gossip.stats());
//! # Ok(()) }
//! ```
//!
//! Hostile datagrams (garbage, truncated, another secret, a name that is no node name, a
//! flood) are dropped and counted ([`GossipStats`]) and logged at most once per 10 s; a heard
//! node that refuses the handshake is retried with backoff and logged once ([`discovery`]).

pub mod discovery;
pub mod packet;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::Instrument;

use self::discovery::{Decision, Discovery, Outcome};
use self::packet::{MAX_PACKET_LEN, PacketError, Secret};
use crate::node::Node;
use crate::ratelimit::RateLimit;
use crate::term::Atom;

/// libcluster's default port.
pub const DEFAULT_PORT: u16 = 45892;
/// libcluster's default multicast group.
pub const DEFAULT_MULTICAST_ADDR: Ipv4Addr = Ipv4Addr::new(233, 252, 1, 32);

/// A Gossip topology's `config:` as erlnode takes it.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// `port` (default 45892).
    pub port: u16,
    /// `if_addr`: the address the socket binds (default 0.0.0.0).
    pub if_addr: Ipv4Addr,
    /// `multicast_addr` (default 233.252.1.32).
    pub multicast_addr: Ipv4Addr,
    /// `multicast_if`: the interface multicast goes out on and the group is joined on (default:
    /// none, the system's choice, as libcluster leaves it).
    pub multicast_if: Option<Ipv4Addr>,
    /// `multicast_ttl` (default 1).
    pub multicast_ttl: u32,
    /// `secret`: heartbeats are encrypted with it, and only heartbeats encrypted with it are
    /// heard.
    pub secret: Option<String>,
    /// Heartbeats go out at a random interval of 1 ms up to this (libcluster: 5 s).
    pub max_interval: Duration,
    /// Dial the nodes heard (default). `false` only announces this node, as a libcluster
    /// topology whose `connect` MFA dials nobody: other nodes find it, it finds none.
    pub connect: bool,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            port: DEFAULT_PORT,
            if_addr: Ipv4Addr::UNSPECIFIED,
            multicast_addr: DEFAULT_MULTICAST_ADDR,
            multicast_if: None,
            multicast_ttl: 1,
            secret: None,
            max_interval: Duration::from_secs(5),
            connect: true,
        }
    }
}

/// Counters of a gossip task, for tests and for an operator.
#[derive(Debug, Default)]
pub struct GossipStats {
    /// Datagrams read.
    pub datagrams: AtomicU64,
    /// Heartbeats of other nodes heard.
    pub heartbeats: AtomicU64,
    /// Datagrams that were not heartbeats (garbage, truncated, too long, bad term or name).
    pub malformed: AtomicU64,
    /// Datagrams that did not decrypt with our secret.
    pub wrong_secret: AtomicU64,
    /// Connection attempts made.
    pub connects: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Heartbeats sent.
    pub sent: AtomicU64,
}

/// A snapshot of [`GossipStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipCounts {
    /// Datagrams read.
    pub datagrams: u64,
    /// Heartbeats of other nodes heard.
    pub heartbeats: u64,
    /// Datagrams that were not heartbeats.
    pub malformed: u64,
    /// Datagrams that did not decrypt with our secret.
    pub wrong_secret: u64,
    /// Connection attempts made.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Heartbeats sent.
    pub sent: u64,
}

/// A running gossip task; dropping it stops the task.
#[must_use = "the gossip task stops when its handle is dropped"]
#[derive(Debug)]
pub struct Gossip {
    stats: Arc<GossipStats>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Gossip {
    /// What the task has seen and done so far.
    pub fn stats(&self) -> GossipCounts {
        let s = &self.stats;
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GossipCounts {
            datagrams: l(&s.datagrams),
            heartbeats: l(&s.heartbeats),
            malformed: l(&s.malformed),
            wrong_secret: l(&s.wrong_secret),
            connects: l(&s.connects),
            connect_failures: l(&s.connect_failures),
            sent: l(&s.sent),
        }
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops the task.
    pub fn stop(self) {}
}

impl Drop for Gossip {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens the gossip socket as libcluster opens it (`:gen_udp.open/2` with `reuseaddr`, raw
/// `SO_REUSEPORT`, `broadcast`, and the multicast options).
fn open_socket(config: &GossipConfig) -> std::io::Result<UdpSocket> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_broadcast(true)?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(config.if_addr, config.port)).into())?;
    let iface = config.multicast_if.unwrap_or(Ipv4Addr::UNSPECIFIED);
    if let Some(i) = config.multicast_if {
        sock.set_multicast_if_v4(&i)?;
    }
    sock.set_multicast_ttl_v4(config.multicast_ttl)?;
    sock.set_multicast_loop_v4(true)?;
    sock.join_multicast_v4(&config.multicast_addr, &iface)?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock.into())
}

/// Starts taking part in a Gossip topology: heartbeats for `node` go out, and every node heard
/// is connected to. Must run inside the node's tokio runtime.
pub async fn start_gossip(node: &Node, config: GossipConfig) -> std::io::Result<Gossip> {
    let socket = open_socket(&config)?;
    let local = socket.local_addr()?;
    let stats = Arc::new(GossipStats::default());
    let span = tracing::info_span!("gossip", port = config.port);
    let task = tokio::spawn(run(node.clone(), socket, config, stats.clone()).instrument(span));
    Ok(Gossip { stats, local, task })
}

async fn run(node: Node, socket: UdpSocket, config: GossipConfig, stats: Arc<GossipStats>) {
    let secret = config.secret.as_deref().map(Secret::new);
    let group = SocketAddr::V4(SocketAddrV4::new(config.multicast_addr, config.port));
    let mut discovery = Discovery::new(node.name().clone());
    let (results_tx, mut results) = mpsc::unbounded_channel::<(Atom, bool)>();
    let drop_log = RateLimit::new(Duration::from_secs(10));
    // one byte more than the longest heartbeat, so a longer datagram shows as too long
    let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
    let max_ms = config.max_interval.as_millis().clamp(1, u64::MAX as u128) as u64;
    let next_beat = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(next_beat);
    loop {
        tokio::select! {
            () = &mut next_beat => {
                let datagram = packet::encode(node.name(), secret.as_ref(), rand::random());
                match socket.send_to(&datagram, group).await {
                    Ok(_) => { stats.sent.fetch_add(1, Ordering::Relaxed); }
                    Err(e) => {
                        if let Some(held) = drop_log.allow(Instant::now()) {
                            tracing::warn!(held_back = held, "cannot send a heartbeat to {group}: {e}");
                        }
                    }
                }
                let wait = Duration::from_millis(rand::random_range(1..=max_ms));
                next_beat.as_mut().reset(tokio::time::Instant::now() + wait);
            }
            got = socket.recv_from(&mut buf) => {
                let (n, from) = match got {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!("gossip socket: {e}");
                        continue;
                    }
                };
                stats.datagrams.fetch_add(1, Ordering::Relaxed);
                let heard = match packet::decode(&buf[..n], secret.as_ref()) {
                    Ok(heard) => heard,
                    Err(e) => {
                        let counter = match e {
                            PacketError::BadPadding | PacketError::BadCiphertext if secret.is_some() => &stats.wrong_secret,
                            _ => &stats.malformed,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        if let Some(held) = drop_log.allow(Instant::now()) {
                            tracing::warn!(held_back = held, "dropped a datagram from {from}: {e}");
                        }
                        continue;
                    }
                };
                if heard != *node.name() {
                    stats.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                if config.connect
                    && discovery.on_heartbeat(&heard, node.is_connected(&heard), Instant::now()) == Decision::Connect
                {
                    stats.connects.fetch_add(1, Ordering::Relaxed);
                    let (node, tx) = (node.clone(), results_tx.clone());
                    tokio::spawn(async move {
                        let ok = node.connect(&heard).await;
                        let _ = tx.send((heard, ok));
                    });
                }
            }
            Some((peer, ok)) = results.recv() => {
                if !ok {
                    stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                }
                match discovery.on_result(&peer, ok, Instant::now()) {
                    Outcome::Connected => tracing::info!("connected to {}, heard by gossip", peer.as_str()),
                    Outcome::FirstFailure(backoff) => tracing::warn!(
                        "cannot connect to {}, heard by gossip (another cookie, or unreachable); \
                         retrying with backoff from {backoff:?} up to {:?}",
                        peer.as_str(),
                        discovery::MAX_BACKOFF
                    ),
                    Outcome::Failing(backoff) => {
                        tracing::debug!("still cannot connect to {}; next try in {backoff:?}", peer.as_str())
                    }
                }
            }
        }
    }
}
