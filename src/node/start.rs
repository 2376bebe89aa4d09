//! Starting a distributed node (`net_kernel:start/2`, "Distributed Erlang" in the Erlang
//! Reference Manual): listen, make sure an EPMD answers (embedding one when none does),
//! register, and accept connections; then the node-level API (`nodes/0`,
//! `net_kernel:connect_node/1`, `net_adm:ping/1`, `monitor_nodes/1`).
//!
//! The node runs no process of its own: `net_kernel`, `global`, `pg` and `rex`, which every
//! BEAM node runs and peers expect, are started on top by whoever composes the node (the crate
//! root's composing function does both steps).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::broadcast;

use super::distribution::{DistConfig, Distribution, NodeEvent};
use super::name::{BadNodeName, NameMode, NodeName};
use super::transport::Transport;
use super::{Dest, Node};
use crate::dist::DistFlags;
use crate::handshake::{Cookie, FlagOptions, LocalNode};
use crate::term::{Atom, Term};
use crate::tls::TlsDist;

/// The name under which every node answers `net_adm:ping/1` (`{net_kernel, Node}`).
pub const NET_KERNEL: &str = "net_kernel";

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `alive` or `alive@host`.
    pub name: String,
    /// Short (`-sname`) or long (`-name`) names.
    pub mode: NameMode,
    /// The cookie.
    pub cookie: String,
    /// Hidden nodes are not in other nodes' `nodes()` (and take no part in `global` or `pg`).
    pub hidden: bool,
    /// Where to listen for other nodes (port 0: any free port).
    pub listen: SocketAddr,
    /// The EPMD port (`ERL_EPMD_PORT`, default 4369).
    pub epmd_port: u16,
    /// `net_ticktime`.
    pub net_ticktime: Duration,
    /// `-proto_dist`: plain TCP (the default) or TLS ([`NodeConfig::tls`]).
    pub transport: Transport,
}

impl NodeConfig {
    /// A short-named node with this cookie, listening on any port, EPMD from `ERL_EPMD_PORT`.
    pub fn new(name: impl Into<String>, cookie: impl Into<String>) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            mode: NameMode::Short,
            cookie: cookie.into(),
            hidden: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            epmd_port: crate::epmd::client::epmd_port(),
            net_ticktime: crate::dist::tick::DEFAULT_NET_TICKTIME,
            transport: Transport::Tcp,
        }
    }

    /// Distribution over TLS (`-proto_dist inet_tls`), configured as by `-ssl_dist_optfile`
    /// ([`TlsDist::from_optfile`]).
    pub fn tls(mut self, tls: TlsDist) -> NodeConfig {
        self.transport = Transport::Tls(std::sync::Arc::new(tls));
        self
    }

    /// Long names (`-name`).
    pub fn long_names(mut self) -> NodeConfig {
        self.mode = NameMode::Long;
        self
    }

    /// A hidden node.
    pub fn hidden(mut self, hidden: bool) -> NodeConfig {
        self.hidden = hidden;
        self
    }

    /// Listen on this port.
    pub fn port(mut self, port: u16) -> NodeConfig {
        self.listen.set_port(port);
        self
    }

    /// Use this `net_ticktime`.
    pub fn net_ticktime(mut self, t: Duration) -> NodeConfig {
        self.net_ticktime = t;
        self
    }

    /// Use this EPMD port.
    pub fn epmd_port(mut self, port: u16) -> NodeConfig {
        self.epmd_port = port;
        self
    }
}

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    /// The name is unusable.
    Name(BadNodeName),
    /// Listening failed.
    Listen(std::io::Error),
    /// EPMD refused or could not be reached or embedded.
    Epmd(crate::epmd::EpmdError),
    /// A service started on top of the node failed to start: its name and why.
    Service(&'static str, String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Name(e) => write!(f, "{e}"),
            StartError::Listen(e) => write!(f, "cannot listen: {e}"),
            StartError::Epmd(e) => write!(f, "EPMD: {e}"),
            StartError::Service(name, why) => write!(f, "{name}: {why}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The flags this node advertises: OTP 25's full set (atom cache, fragments, spawn), plus OTP
/// 28's `ALTACT_SIG` (op 37 is handled), minus `PUBLISHED` for a hidden node.
pub fn advertised_flags(hidden: bool) -> DistFlags {
    FlagOptions { published: !hidden, spawn: true, atom_cache_and_fragments: true }.flags() | DistFlags::ALTACT_SIG
}

impl Node {
    /// Makes a distributed node: listens, registers with EPMD (starting an embedded EPMD if
    /// none answers) and accepts connections. It runs no process: peers expect at least
    /// `net_kernel` (ping) and `rex`, started on top by whoever composes the node.
    pub async fn start_distribution(config: NodeConfig) -> Result<Node, StartError> {
        let name = NodeName::parse(&config.name, config.mode).map_err(StartError::Name)?;
        let listener = TcpListener::bind(config.listen).await.map_err(StartError::Listen)?;
        let port = listener.local_addr().map_err(StartError::Listen)?.port();
        let embedded = crate::epmd::server::ensure_epmd(config.epmd_port).await.map_err(StartError::Epmd)?;
        let epmd = SocketAddr::from(([127, 0, 0, 1], config.epmd_port));
        let registration =
            crate::epmd::client::register(epmd, &name.alive, port, config.hidden).await.map_err(StartError::Epmd)?;
        let creation = registration.creation();
        let node = Node::new_local(name.to_atom(), creation);
        node.keep_alive(Box::new(registration));
        if let Some(e) = embedded {
            tracing::info!(port = config.epmd_port, "no EPMD answered: serving an embedded one");
            node.keep_alive(Box::new(e));
        }
        let local = LocalNode {
            name: name.to_atom(),
            flags: advertised_flags(config.hidden),
            creation,
            cookie: Cookie::new(config.cookie.as_bytes().to_vec()),
        };
        let dist = Distribution::new(DistConfig {
            local,
            epmd_port: config.epmd_port,
            net_ticktime: config.net_ticktime,
            transport: config.transport.clone(),
        });
        node.set_distribution(dist.clone());
        let accept = tokio::spawn(dist.accept_loop(node.clone(), listener));
        node.keep_alive(Box::new(AbortOnDrop(accept)));
        tracing::info!(node = %node.name().as_str(), port, creation, proto_dist = config.transport.name(), "node started");
        Ok(node)
    }

    /// `true` if this node is hidden (not distributed counts as hidden: no peer lists it).
    pub fn is_hidden(&self) -> bool {
        self.distribution().is_none_or(|d| d.is_hidden())
    }

    /// Connected visible nodes (`nodes()`), sorted.
    pub fn nodes(&self) -> Vec<Atom> {
        self.connected(|visible| visible)
    }

    /// Connected hidden nodes (`nodes(hidden)`), sorted.
    pub fn hidden_nodes(&self) -> Vec<Atom> {
        self.connected(|visible| !visible)
    }

    fn connected(&self, keep: impl Fn(bool) -> bool) -> Vec<Atom> {
        self.distribution()
            .map(|d| d.connected().into_iter().filter(|(_, v)| keep(*v)).map(|(n, _)| n).collect())
            .unwrap_or_default()
    }

    /// Connects to `node` (`net_kernel:connect_node/1`): `true` once connected.
    pub async fn connect(&self, node: &Atom) -> bool {
        match self.distribution() {
            Some(d) => d.clone().connect(self, node).await,
            None => false,
        }
    }

    /// Signals waiting to be written to `node` (`PendingSend` of `erlang:dist_get_stat/1`, as a
    /// count); `None` when not connected.
    pub fn dist_queue_len(&self, node: &Atom) -> Option<usize> {
        self.distribution().and_then(|d| d.up(node)).map(|h| h.queued())
    }

    /// Waits while more than `max` signals wait to be written to `node` (BEAM suspends a
    /// sender on `busy_dist_port`; erlnode's sends never block, so a sender that could
    /// outrun the socket calls this between batches). Returns at once when not connected.
    pub async fn dist_backpressure(&self, node: &Atom, max: usize) {
        if let Some(h) = self.distribution().and_then(|d| d.up(node)) {
            h.until_queued_at_most(max).await;
        }
    }

    /// `true` if a connection to `node` is up.
    pub fn is_connected(&self, node: &Atom) -> bool {
        self.distribution().is_some_and(|d| d.is_up(node))
    }

    /// Sends from `from` like `erlang:send(To, Msg, [noconnect])`: a message for a node that
    /// is not connected is dropped instead of setting up a connection.
    pub fn send_noconnect(&self, from: &crate::term::Pid, to: Dest, msg: Term) {
        let remote_node = match &to {
            Dest::Pid(p) if &p.node != self.name() => Some(p.node.clone()),
            Dest::Remote(_, n) if n != self.name() => Some(n.clone()),
            Dest::Alias(r) if &r.node != self.name() => Some(r.node.clone()),
            _ => None,
        };
        if remote_node.is_some_and(|n| !self.is_connected(&n)) {
            return;
        }
        self.send_from(Some(from), to, msg);
    }

    /// Sends from `from` (a local pid, for code sending on behalf of a process).
    pub fn send_as(&self, from: &crate::term::Pid, to: Dest, msg: Term) {
        self.send_from(Some(from), to, msg);
    }

    /// Closes the connection to `node` (`erlang:disconnect_node/1`).
    pub fn disconnect(&self, node: &Atom) -> bool {
        self.distribution().is_some_and(|d| d.disconnect(self, node))
    }

    /// `net_adm:ping/1`: `true` for `pong`. Like BEAM, a failed ping disconnects the node.
    pub async fn ping(&self, node: &Atom) -> bool {
        if node == self.name() {
            return true;
        }
        let req = Term::Tuple(vec![Term::atom("is_auth"), Term::Atom(self.name().clone())]);
        let dest = Dest::Remote(Atom::new(NET_KERNEL), node.clone());
        match self.call(dest, req, Some(Duration::from_secs(7))).await {
            Ok(t) if t.is_atom("yes") => true,
            _ => {
                self.disconnect(node);
                false
            }
        }
    }

    /// Node up/down events (`net_kernel:monitor_nodes(true, [{node_type, all}])`).
    pub fn monitor_nodes(&self) -> broadcast::Receiver<NodeEvent> {
        match self.distribution() {
            Some(d) => d.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// `pid` gets `{nodeup, Node, [{node_type, visible | hidden}]}` and `{nodedown, Node,
    /// [{node_type, T}, {nodedown_reason, R}]}` messages (`net_kernel:monitor_nodes/2` with
    /// `[{node_type, all}, nodedown_reason]`): a nodeup reaches the mailbox before any message
    /// that came over the new connection.
    pub fn monitor_nodes_messages(&self, pid: &crate::term::Pid, on: bool) {
        if let Some(d) = self.distribution() {
            d.watch_nodes(pid, on);
        }
    }

    /// Closes every connection and unregisters from EPMD.
    pub fn shutdown(&self) {
        if let Some(d) = self.distribution() {
            d.disconnect_all(self);
        }
        self.drop_keep_alive();
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
