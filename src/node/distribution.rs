//! Connections to other nodes: dialling (EPMD lookup, handshake as initiator), accepting
//! (handshake as acceptor), simultaneous-connect arbitration, one reader and one writer task per
//! connection, and the bookkeeping of pending signals while a connection is being set up.
//!
//! Implements the driver side of `erl_dist_protocol` ("Distribution Handshake", "Protocol
//! between Connected Nodes"); the protocol logic itself is in the sans-IO modules
//! [`crate::handshake`] and [`crate::dist`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use super::connection::{self, ConnHandle};
use super::name::NodeName;
use super::process::lock;
use super::transport::{DistStream, Transport};
use super::{Node, Outbound};
use crate::dist::DistFlags;
use crate::handshake::{Handshake, HandshakeError, LocalNode, Outcome, Progress, Status};
use crate::term::{Atom, Term};

/// How long one handshake may take (`net_setuptime`, default 7 s).
pub const NET_SETUPTIME: Duration = Duration::from_secs(7);
/// Signals queued for a node while its connection is being set up; beyond this the oldest
/// signals are treated as undeliverable.
pub const MAX_PENDING_SIGNALS: usize = 100_000;
/// Longest wait for a lookup at EPMD.
const EPMD_TIMEOUT: Duration = Duration::from_secs(5);

/// A node came up or went down (`net_kernel:monitor_nodes/2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// A connection is up; `visible` is false for hidden peers.
    Up {
        /// The peer.
        node: Atom,
        /// The peer published itself (it is in `nodes()`, not only `nodes(hidden)`).
        visible: bool,
    },
    /// A connection went down.
    Down {
        /// The peer.
        node: Atom,
        /// Why (`connection_closed`, `net_tick_timeout`, `disconnect`, ...).
        reason: String,
        /// The peer was visible.
        visible: bool,
    },
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The node name has no host part or a bad one.
    BadName(String),
    /// EPMD on the peer's host could not be asked.
    Epmd(String),
    /// EPMD does not know the node.
    NotRegistered,
    /// TCP connect failed.
    Io(std::io::Error),
    /// The TLS handshake failed or was refused (`-proto_dist inet_tls`).
    Tls(String),
    /// The handshake failed (wrong cookie, rejected, incompatible).
    Handshake(String),
    /// Nothing finished in time.
    Timeout,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::BadName(n) => write!(f, "bad node name {n}"),
            ConnectError::Epmd(e) => write!(f, "EPMD lookup failed: {e}"),
            ConnectError::NotRegistered => write!(f, "the node is not registered with EPMD"),
            ConnectError::Io(e) => write!(f, "{e}"),
            ConnectError::Tls(e) => write!(f, "{e}"),
            ConnectError::Handshake(e) => write!(f, "handshake failed: {e}"),
            ConnectError::Timeout => write!(f, "timed out"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Per-peer connection state.
enum Slot {
    /// Being set up; signals wait here.
    Pending(Pending),
    /// Up.
    Up(ConnHandle),
}

struct Pending {
    queue: Vec<Outbound>,
    /// The handshake that owns the setup (net_kernel's `owner` of a pending connection): our
    /// dial, or the acceptor of the peer's attempt that superseded it. Only the owner may
    /// bring the connection up or give the setup up.
    owner: Attempt,
    /// Resolved when the setup ends: `true` if a connection came up.
    done: watch::Sender<Option<bool>>,
}

impl Pending {
    fn new(owner: Attempt) -> Pending {
        Pending { queue: Vec::new(), owner, done: watch::channel(None).0 }
    }
}

/// One handshake, dialled or accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Attempt {
    id: u64,
    /// We dialled (initiator) rather than accepted.
    dialled: bool,
}

/// Static configuration of the distribution layer.
#[derive(Clone, Debug)]
pub(crate) struct DistConfig {
    pub local: LocalNode,
    pub epmd_port: u16,
    pub net_ticktime: Duration,
    /// `-proto_dist`.
    pub transport: Transport,
}

/// The connection table and its tasks.
pub(crate) struct Distribution {
    config: DistConfig,
    slots: Mutex<HashMap<Atom, Slot, crate::hash::PeerKeys>>,
    next_conn_id: AtomicU64,
    next_attempt: AtomicU64,
    events: broadcast::Sender<NodeEvent>,
    /// Processes subscribed with [`Node::monitor_nodes_messages`]: they get `{nodeup, ...}` and
    /// `{nodedown, ...}` in their mailbox, ordered with the messages of that connection.
    node_watchers: Mutex<Vec<crate::term::Pid>>,
    /// Bytes read and written on all connections (`statistics(io)`).
    pub(crate) io: Arc<IoCounters>,
}

/// Bytes through the distribution sockets, counted once per read or write call.
#[derive(Debug, Default)]
pub(crate) struct IoCounters {
    pub input: AtomicU64,
    pub output: AtomicU64,
}

impl std::fmt::Debug for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distribution").field("node", &self.config.local.name).finish()
    }
}

impl Distribution {
    pub(crate) fn new(config: DistConfig) -> Arc<Distribution> {
        Arc::new(Distribution {
            config,
            slots: Mutex::new(HashMap::default()),
            next_conn_id: AtomicU64::new(1),
            next_attempt: AtomicU64::new(1),
            events: broadcast::channel(1024).0,
            node_watchers: Mutex::new(Vec::new()),
            io: Arc::default(),
        })
    }

    pub(crate) fn io(&self) -> (u64, u64) {
        (self.io.input.load(Ordering::Relaxed), self.io.output.load(Ordering::Relaxed))
    }

    pub(crate) fn is_hidden(&self) -> bool {
        !self.config.local.flags.contains(DistFlags::PUBLISHED)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    pub(crate) fn watch_nodes(&self, pid: &crate::term::Pid, on: bool) {
        let mut w = lock(&self.node_watchers);
        w.retain(|p| p != pid);
        if on {
            w.push(pid.clone());
        }
    }

    /// Delivers `{nodeup, Node, [{node_type, T}]}` or `{nodedown, Node, [{node_type, T},
    /// {nodedown_reason, R}]}` to every watching process, as `net_kernel:monitor_nodes(true,
    /// [{node_type, all}, nodedown_reason])` does.
    fn tell_watchers(&self, node: &Node, up: bool, peer: &Atom, visible: bool, reason: &str) {
        let watchers: Vec<crate::term::Pid> = {
            let mut w = lock(&self.node_watchers);
            w.retain(|p| node.is_alive(p));
            w.clone()
        };
        if watchers.is_empty() {
            return;
        }
        let node_type =
            Term::Tuple(vec![Term::atom("node_type"), Term::atom(if visible { "visible" } else { "hidden" })]);
        let msg = if up {
            Term::Tuple(vec![Term::atom("nodeup"), Term::Atom(peer.clone()), Term::List(vec![node_type])])
        } else {
            let why = Term::Tuple(vec![Term::atom("nodedown_reason"), Term::atom(reason)]);
            Term::Tuple(vec![Term::atom("nodedown"), Term::Atom(peer.clone()), Term::List(vec![node_type, why])])
        };
        for w in watchers {
            node.send(crate::node::Dest::Pid(w), msg.clone());
        }
    }

    fn new_attempt(&self, dialled: bool) -> Attempt {
        Attempt { id: self.next_attempt.fetch_add(1, Ordering::Relaxed), dialled }
    }

    /// `true` while `attempt` owns the pending setup toward `peer` (`is_pending` in net_kernel).
    fn owns(&self, peer: &Atom, attempt: Attempt) -> bool {
        matches!(lock(&self.slots).get(peer), Some(Slot::Pending(p)) if p.owner == attempt)
    }

    fn our_name(&self) -> &Atom {
        &self.config.local.name
    }

    /// Connected nodes: `(name, visible)`.
    pub(crate) fn connected(&self) -> Vec<(Atom, bool)> {
        let slots = lock(&self.slots);
        let mut v: Vec<(Atom, bool)> = slots
            .iter()
            .filter_map(|(n, s)| match s {
                Slot::Up(h) => Some((n.clone(), h.visible)),
                Slot::Pending(_) => None,
            })
            .collect();
        v.sort();
        v
    }

    /// `true` if a connection to `peer` is up.
    pub(crate) fn is_up(&self, peer: &Atom) -> bool {
        matches!(lock(&self.slots).get(peer), Some(Slot::Up(_)))
    }

    /// The connection to `peer`, if up.
    pub(crate) fn up(&self, peer: &Atom) -> Option<ConnHandle> {
        match lock(&self.slots).get(peer) {
            Some(Slot::Up(h)) => Some(h.clone()),
            _ => None,
        }
    }

    /// The flags negotiated with `peer`, if connected.
    pub(crate) fn peer_flags(&self, peer: &Atom) -> Option<DistFlags> {
        match lock(&self.slots).get(peer) {
            Some(Slot::Up(h)) => Some(h.flags),
            _ => None,
        }
    }

    /// Hands a signal to the connection to `to_node`, dialling if there is none.
    pub(crate) fn send(self: &Arc<Self>, node: &Node, to_node: &Atom, signal: Outbound) {
        let mut slots = lock(&self.slots);
        match slots.get_mut(to_node) {
            Some(Slot::Up(h)) => {
                if let Err(returned) = h.send(signal) {
                    drop(slots);
                    node.undeliverable(to_node, returned);
                }
            }
            Some(Slot::Pending(p)) => {
                if p.queue.len() >= MAX_PENDING_SIGNALS {
                    drop(slots);
                    tracing::warn!(node = %to_node.as_str(), "too many signals queued for a connection being set up");
                    node.undeliverable(to_node, signal);
                } else {
                    p.queue.push(signal);
                }
            }
            None => {
                tracing::debug!(peer = %to_node.as_str(), ?signal, "dialling to deliver a signal");
                let attempt = self.new_attempt(true);
                let mut p = Pending::new(attempt);
                p.queue.push(signal);
                slots.insert(to_node.clone(), Slot::Pending(p));
                drop(slots);
                self.spawn_dial(node.clone(), to_node.clone(), attempt);
            }
        }
    }

    /// Connects to `peer` if not connected; resolves when the attempt ends.
    pub(crate) async fn connect(self: &Arc<Self>, node: &Node, peer: &Atom) -> bool {
        if peer == self.our_name() {
            return true;
        }
        let mut rx = {
            let mut slots = lock(&self.slots);
            match slots.get_mut(peer) {
                Some(Slot::Up(_)) => return true,
                Some(Slot::Pending(p)) => p.done.subscribe(),
                None => {
                    let attempt = self.new_attempt(true);
                    let p = Pending::new(attempt);
                    let rx = p.done.subscribe();
                    slots.insert(peer.clone(), Slot::Pending(p));
                    drop(slots);
                    self.spawn_dial(node.clone(), peer.clone(), attempt);
                    rx
                }
            }
        };
        loop {
            if let Some(up) = *rx.borrow_and_update() {
                return up;
            }
            if rx.changed().await.is_err() {
                // the pending slot was replaced without a verdict: look at the table
                return matches!(lock(&self.slots).get(peer), Some(Slot::Up(_)));
            }
        }
    }

    /// Closes the connection to `peer` (`erlang:disconnect_node/1`).
    /// The connection is gone from the table, and its nodedown reported, when this returns,
    /// as after `erlang:disconnect_node/1` on BEAM: a `connect` right after dials anew instead
    /// of finding the closing connection.
    pub(crate) fn disconnect(&self, node: &Node, peer: &Atom) -> bool {
        let id = match lock(&self.slots).get(peer) {
            Some(Slot::Up(h)) => {
                h.close("disconnect");
                h.id
            }
            _ => return false,
        };
        self.connection_closed(node, peer, id, "disconnect");
        true
    }

    /// Closes every connection.
    pub(crate) fn disconnect_all(&self, node: &Node) {
        let up: Vec<(Atom, u64)> = lock(&self.slots)
            .iter()
            .filter_map(|(n, s)| match s {
                Slot::Up(h) => {
                    h.close("shutdown");
                    Some((n.clone(), h.id))
                }
                Slot::Pending(_) => None,
            })
            .collect();
        for (peer, id) in up {
            self.connection_closed(node, &peer, id, "shutdown");
        }
    }

    fn spawn_dial(self: &Arc<Self>, node: Node, peer: Atom, attempt: Attempt) {
        let dist = self.clone();
        let span = tracing::info_span!("dial", peer = %peer.as_str());
        tokio::spawn(
            async move {
                match tokio::time::timeout(NET_SETUPTIME * 2, dist.dial(&node, &peer, attempt)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        // TLS refusals were logged (as warnings) where they were detected
                        if !matches!(e, ConnectError::Tls(_)) {
                            tracing::info!("connection to {} failed: {e}", peer.as_str());
                        }
                        dist.fail_pending(&node, &peer, attempt);
                    }
                    Err(_) => {
                        tracing::info!("connection to {} timed out", peer.as_str());
                        dist.fail_pending(&node, &peer, attempt);
                    }
                }
            }
            .instrument(span),
        );
    }

    /// Ends a pending setup that `attempt` still owns without a connection: queued signals
    /// become undeliverable. A setup taken over by another attempt is left to that one.
    fn fail_pending(&self, node: &Node, peer: &Atom, attempt: Attempt) {
        let pending = {
            let mut slots = lock(&self.slots);
            match slots.get(peer) {
                Some(Slot::Pending(p)) if p.owner == attempt => match slots.remove(peer) {
                    Some(Slot::Pending(p)) => Some(p),
                    _ => None,
                },
                _ => None,
            }
        };
        if let Some(p) = pending {
            let _ = p.done.send(Some(false));
            for s in p.queue {
                node.undeliverable(peer, s);
            }
        }
    }

    async fn dial(self: &Arc<Self>, node: &Node, peer: &Atom, attempt: Attempt) -> Result<(), ConnectError> {
        let name = NodeName::from_atom(peer).ok_or_else(|| ConnectError::BadName(peer.as_str().to_string()))?;
        let epmd_addr = format!("{}:{}", name.host, self.config.epmd_port);
        let entry =
            tokio::time::timeout(EPMD_TIMEOUT, crate::epmd::client::port_please(epmd_addr.as_str(), &name.alive))
                .await
                .map_err(|_| ConnectError::Timeout)?
                .map_err(|e| ConnectError::Epmd(e.to_string()))?
                .ok_or(ConnectError::NotRegistered)?;
        let addr = format!("{}:{}", name.host, entry.port);
        let stream = tokio::time::timeout(NET_SETUPTIME, TcpStream::connect(addr.as_str()))
            .await
            .map_err(|_| ConnectError::Timeout)?
            .map_err(ConnectError::Io)?;
        let _ = stream.set_nodelay(true);
        let stream = match tokio::time::timeout(NET_SETUPTIME, self.config.transport.connect(stream, &name.host)).await
        {
            Ok(s) => s.map_err(ConnectError::Tls)?,
            Err(_) => {
                let why = format!("TLS handshake with {} ({addr}) did not finish within {NET_SETUPTIME:?}", name.host);
                super::transport::refusal(&why);
                return Err(ConnectError::Tls(why));
            }
        };
        let hs = Handshake::initiator(self.config.local.clone(), peer.clone(), rand::random())
            .map_err(|e| ConnectError::Handshake(e.to_string()))?
            .with_framing(self.config.transport.framing());
        let (stream, outcome) = match self.run_handshake(stream, hs, attempt, &mut None).await {
            Ok(done) => done,
            Err(HsEnd::Nok) => {
                // the peer's own attempt toward us wins: wait for it to arrive
                tracing::debug!("simultaneous connect: {} dials us instead", peer.as_str());
                return self.await_incoming(peer).await;
            }
            Err(HsEnd::Superseded) => {
                // we accepted the peer's attempt meanwhile: that one is (or becomes) the
                // connection
                tracing::debug!("simultaneous connect: our dial to {} was superseded", peer.as_str());
                return self.await_incoming(peer).await;
            }
            Err(HsEnd::Failed(e)) => return Err(ConnectError::Handshake(e)),
            Err(HsEnd::Tls(e)) => return Err(ConnectError::Tls(e)),
        };
        if self.establish(node, stream, outcome, attempt) { Ok(()) } else { self.await_incoming(peer).await }
    }

    async fn await_incoming(&self, peer: &Atom) -> Result<(), ConnectError> {
        let rx = match lock(&self.slots).get(peer) {
            Some(Slot::Pending(p)) => Some(p.done.subscribe()),
            _ => None,
        };
        let Some(mut rx) = rx else { return Ok(()) };
        let wait = async {
            loop {
                if rx.borrow_and_update().is_some() || rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(NET_SETUPTIME, wait).await.map_err(|_| ConnectError::Timeout)?;
        if matches!(lock(&self.slots).get(peer), Some(Slot::Up(_))) { Ok(()) } else { Err(ConnectError::Timeout) }
    }

    /// Serves incoming connections until the listener fails.
    pub(crate) async fn accept_loop(self: Arc<Self>, node: Node, listener: TcpListener) {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let dist = self.clone();
            let node = node.clone();
            let span = tracing::info_span!("accept", %addr);
            tokio::spawn(
                async move {
                    match dist.accept(&node, stream).await {
                        Ok(()) | Err(ConnectError::Tls(_)) => {} // TLS refusals are logged where detected
                        Err(ConnectError::Timeout) => tracing::warn!(
                            "connection from {addr} dropped: its {} setup did not finish within {NET_SETUPTIME:?}",
                            dist.config.transport.name()
                        ),
                        Err(e) => tracing::info!("incoming connection from {addr} failed: {e}"),
                    }
                }
                .instrument(span),
            );
        }
    }

    async fn accept(self: &Arc<Self>, node: &Node, stream: TcpStream) -> Result<(), ConnectError> {
        let hs = Handshake::acceptor(self.config.local.clone(), rand::random())
            .map_err(|e| ConnectError::Handshake(e.to_string()))?
            .with_framing(self.config.transport.framing());
        let attempt = self.new_attempt(false);
        let mut peer = None;
        // the TLS handshake (if any) and the distribution handshake share one deadline, so a
        // peer that stalls in either is dropped after NET_SETUPTIME
        let setup = async {
            let stream = self.config.transport.accept(stream).await.map_err(HsEnd::Tls)?;
            self.run_handshake(stream, hs, attempt, &mut peer).await
        };
        let r = match tokio::time::timeout(NET_SETUPTIME, setup).await {
            Ok(Ok((stream, outcome))) => {
                self.establish(node, stream, outcome, attempt);
                return Ok(());
            }
            Ok(Err(HsEnd::Nok)) => {
                tracing::debug!(peer = ?peer, "simultaneous connect: this incoming attempt gave way (nok)");
                return Ok(());
            }
            Ok(Err(HsEnd::Failed(e))) => Err(ConnectError::Handshake(e)),
            Ok(Err(HsEnd::Tls(e))) => Err(ConnectError::Tls(e)),
            Ok(Err(HsEnd::Superseded)) => Err(ConnectError::Handshake("superseded".into())),
            Err(_) => Err(ConnectError::Timeout),
        };
        // a setup we registered and still own ends here
        if let Some(peer) = peer {
            self.fail_pending(node, &peer, attempt);
        }
        r
    }

    /// The status to answer an incoming attempt from `peer` with (protocol notes 2.4), as
    /// net_kernel's `accept_pending` does: `alive` over a connection that is up; over a setup
    /// in progress (our dial, or another accepted attempt), `nok` if our name is the greater,
    /// else this attempt takes the setup over (`ok_simultaneous`: the other attempt is given
    /// up, as BEAM kills its owner); `ok` otherwise.
    fn status_for(&self, peer: &Atom, attempt: Attempt) -> Status {
        let mut slots = lock(&self.slots);
        match slots.get_mut(peer) {
            Some(Slot::Up(_)) => Status::Alive,
            Some(Slot::Pending(p)) => {
                if self.our_name() > peer {
                    Status::Nok
                } else {
                    p.owner = attempt;
                    Status::OkSimultaneous
                }
            }
            None => {
                slots.insert(peer.clone(), Slot::Pending(Pending::new(attempt)));
                Status::Ok
            }
        }
    }

    /// Runs a handshake to completion over `stream`. An acceptor that registers a setup (its
    /// status was `ok` or `ok_simultaneous`) notes the peer in `registered`, so that a failed
    /// handshake can release the setup.
    async fn run_handshake(
        &self,
        mut stream: DistStream,
        mut hs: Handshake,
        attempt: Attempt,
        registered: &mut Option<Atom>,
    ) -> Result<(DistStream, Outcome), HsEnd> {
        let mut buf = vec![0u8; 4096];
        let mut progress = Progress::NeedInput;
        let mut first_read = true;
        loop {
            let out = hs.take_output();
            if !out.is_empty() {
                write_flush(&mut stream, &out).await.map_err(|e| HsEnd::Failed(e.to_string()))?;
            }
            match progress {
                Progress::Complete(outcome) => return Ok((stream, outcome)),
                Progress::StatusRequest { peer, .. } => {
                    let status = self.status_for(&peer, attempt);
                    if matches!(status, Status::Ok | Status::OkSimultaneous) {
                        *registered = Some(peer);
                    }
                    progress = self.hs_step(&mut stream, &mut hs, |hs| hs.reply_status(status)).await?;
                    if status == Status::Nok {
                        return Err(HsEnd::Nok);
                    }
                    continue;
                }
                Progress::AliveQuery { peer } => {
                    // The peer already has a connection from us. We want a fresh one only if
                    // this dial still owns our setup (net_kernel's `is_pending`): if we
                    // accepted the peer's own attempt meanwhile (`ok_simultaneous`), that
                    // connection is the one, and replacing it would take a live connection
                    // down on both sides.
                    let proceed = self.owns(&peer, attempt);
                    let r = self.hs_step(&mut stream, &mut hs, |hs| hs.answer_alive(proceed)).await;
                    if !proceed {
                        return Err(HsEnd::Superseded);
                    }
                    progress = r?;
                    continue;
                }
                Progress::NeedInput => {}
            }
            let n = stream.read(&mut buf).await.map_err(|e| HsEnd::Failed(e.to_string()))?;
            if n == 0 {
                return Err(HsEnd::Failed("connection closed during handshake".into()));
            }
            if std::mem::take(&mut first_read)
                && matches!(stream, DistStream::Tcp(_))
                && super::transport::looks_like_tls(&buf[..n])
            {
                let why = "the peer answered with TLS: it runs -proto_dist inet_tls (start erlnode with \
                           --proto-dist inet_tls --ssl-dist-optfile FILE)";
                super::transport::refusal(why);
                return Err(HsEnd::Tls(why.into()));
            }
            progress = self.hs_step(&mut stream, &mut hs, |hs| hs.handle_input(&buf[..n])).await?;
        }
    }

    /// Applies one handshake step; on error, flushes what the handshake queued (a rejection
    /// status) before reporting.
    async fn hs_step(
        &self,
        stream: &mut DistStream,
        hs: &mut Handshake,
        step: impl FnOnce(&mut Handshake) -> Result<Progress, HandshakeError>,
    ) -> Result<Progress, HsEnd> {
        match step(hs) {
            Ok(p) => Ok(p),
            Err(e) => {
                let out = hs.take_output();
                if !out.is_empty() {
                    let _ = write_flush(stream, &out).await;
                }
                // `nok` either way is the simultaneous-connect tie-break, not a failure
                if matches!(e, HandshakeError::Rejected { status: Status::Nok, .. }) {
                    return Err(HsEnd::Nok);
                }
                Err(HsEnd::Failed(e.to_string()))
            }
        }
    }

    /// A handshake completed: start the connection and release what waited for it. `false`
    /// (and the stream is dropped) if `attempt` no longer owns the setup: another attempt
    /// took it over, and only one connection may come up.
    fn establish(self: &Arc<Self>, node: &Node, stream: DistStream, outcome: Outcome, attempt: Attempt) -> bool {
        let peer = outcome.name.clone();
        let visible = outcome.flags.contains(DistFlags::PUBLISHED);
        // a reconnect over a connection we still held (we answered `alive` and the peer
        // confirmed it is connecting anew): that one goes down first
        let stale = match lock(&self.slots).get(&peer) {
            Some(Slot::Pending(p)) if p.owner == attempt => None,
            Some(Slot::Up(old)) if !attempt.dialled => Some(old.clone()),
            None if !attempt.dialled => None,
            _ => {
                tracing::debug!(peer = %peer.as_str(), "handshake completed after its setup was taken over; dropped");
                return false;
            }
        };
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = &stale {
            old.close("replaced");
            self.connection_closed(node, &peer, old.id, "replaced");
        }
        // watchers learn of the node before any message that arrives over the connection
        self.tell_watchers(node, true, &peer, visible, "");
        let tls = stream.tls_version().map(|v| format!("{v:?}"));
        let handle = connection::start(
            node.clone(),
            self.clone(),
            stream,
            &outcome,
            id,
            self.config.net_ticktime,
            Instant::now(),
        );
        let previous = lock(&self.slots).insert(peer.clone(), Slot::Up(handle.clone()));
        match previous {
            Some(Slot::Pending(p)) => {
                for s in p.queue {
                    if let Err(s) = handle.send(s) {
                        node.undeliverable(&peer, s);
                    }
                }
                let _ = p.done.send(Some(true));
            }
            Some(Slot::Up(old)) => old.close("replaced"),
            None => {}
        }
        tracing::info!(peer = %peer.as_str(), visible, flags = ?outcome.negotiated, tls = %tls.as_deref().unwrap_or("no"), "connection up");
        let _ = self.events.send(NodeEvent::Up { node: peer, visible });
        true
    }

    /// A connection ended (called by its tasks, once).
    pub(crate) fn connection_closed(&self, node: &Node, peer: &Atom, id: u64, reason: &str) {
        let removed = {
            let mut slots = lock(&self.slots);
            match slots.get(peer) {
                Some(Slot::Up(h)) if h.id == id => match slots.remove(peer) {
                    Some(Slot::Up(h)) => Some(h),
                    _ => None,
                },
                _ => None,
            }
        };
        if let Some(h) = removed {
            tracing::info!(peer = %peer.as_str(), reason, "connection down");
            node.connection_lost(peer);
            self.tell_watchers(node, false, peer, h.visible, reason);
            let _ = self.events.send(NodeEvent::Down {
                node: peer.clone(),
                reason: reason.to_string(),
                visible: h.visible,
            });
        }
    }
}

/// How a handshake ended without a connection.
enum HsEnd {
    /// Simultaneous connect lost by this attempt: the other one carries on.
    Nok,
    /// Our dial found the peer connected (`alive`) after we had accepted the peer's own
    /// attempt: it answered `false` and gave up.
    Superseded,
    Failed(String),
    /// The TLS handshake before the distribution handshake failed (logged where it failed).
    Tls(String),
}

/// Writes and flushes (TLS holds records back until flushed).
async fn write_flush(stream: &mut DistStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Reads the cookie as `erl` does: `$HOME/.erlang.cookie`, created with 20 random upper-case
/// letters (mode 0400) when missing.
pub fn default_cookie() -> std::io::Result<String> {
    let home = std::env::var_os("HOME").ok_or_else(|| std::io::Error::other("HOME is not set"))?;
    let path = std::path::Path::new(&home).join(".erlang.cookie");
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::OpenOptionsExt;
            let cookie: String = (0..20).map(|_| (b'A' + rand::random_range(0..26u8)) as char).collect();
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o400).open(&path)?;
            std::io::Write::write_all(&mut f, cookie.as_bytes())?;
            Ok(cookie)
        }
        Err(e) => Err(e),
    }
}
