//! `global`: the global name server (Kernel `global`, protocol version 8 as in OTP 25–28), as a
//! sans-IO state machine.
//!
//! Implements Kernel's `global` module (reference manual "global"; the protocol is described in
//! the header comments of `lib/kernel/src/global.erl`, "Connection algorithm", "Messages in the
//! protocol" and "Prevent Overlapping Partitions Algorithm") and section 7 of our protocol
//! notes (`docs/protocol.md`): a node that is visible in a BEAM cluster must run
//! `global_name_server` and speak this protocol fully, or `global:sync()` hangs and, worse, a
//! half-spoken session holds the cluster-wide `global` lock and stalls every registration.
//!
//! # What the core does
//!
//! One [`Global`] is the whole `global_name_server` of this node, and also its *locker* and its
//! *registrar*, which are separate processes on BEAM: all three use the server's pid, so the
//! driver runs a single process. The core
//!
//! - syncs with every visible node that comes up (`init_connect`, `init_connect_ack`, the
//!   partition lock `{global, lists:sort([Locker1, Locker2])}` taken boss first, `lock_set`,
//!   `exchange` of all names, conflict resolution, `resolved`, `new_nodes`, `in_sync`),
//!   so that connecting to one member joins all of them (`connect_all`);
//! - answers every call (`set_lock`, `del_lock`, `register`, `register_ext`, `unregister`,
//!   `get_known`, `get_protocol_version`, ... and an error for anything else);
//! - registers names for local users ([`Global::register_name`] and friends) the way
//!   `global:register_name/3` does: lock `{global, Registrar}` on the boss then on every known
//!   node, `register` everywhere, release;
//! - drops names when their process dies (it monitors every registered pid) and when their
//!   node goes down; drops locks the same way;
//! - implements "prevent overlapping partitions" (`lost_connection`, `remove_connection`).
//!
//! Deviations from BEAM, all forced by not running Erlang code:
//! - **Resolve methods.** A name conflict found during a sync is resolved by calling the
//!   `Method` fun of our entry. We cannot run Erlang funs; we recognise
//!   `global:random_exit_name/3` (as an export fun, or as the local fun `global` itself creates
//!   for its default, `#Fun<global.N.M>` of arity 3 without free variables: the only arity-3
//!   fun in `global.erl`), `global:random_notify_name/3` and `global:notify_all_name/3`, and
//!   apply their semantics. **Any other method is treated as one returning `none`: the name is
//!   deleted on both sides**, as BEAM does for `none`. Methods are stored and re-sent verbatim.
//! - When BEAM would ask a *third* node to run the method (`rpc:call(node(Pid2), global,
//!   resolve_it, ...)`), we apply the recognised semantics ourselves; the outcome (who is
//!   killed, who keeps the name) is the same.
//! - `whereis_name/1` on BEAM also checks that a local pid is alive; [`Global::whereis`] only
//!   reads the table (the driver removes names of dead local processes through `DOWN`).
//! - Malformed messages are logged and ignored instead of crashing the server; if one carries
//!   the tag of a running sync session, that session is cancelled and restarted, so no lock
//!   stays held.
//! - Connect-setup recovery (`global.erl`'s "verify connection" part, vsn 8), where following
//!   BEAM literally lets two nodes restart each other forever or leaves a peer's locker holding
//!   our partition's lock (found by the forged-message tests):
//!   - an `init_connect` that crosses a pending session is cancelled *and dropped* (BEAM
//!     cancels it but then takes it into its new session, which recreates the crossing);
//!   - an `init_connect_ack` naming an older tag of ours is ignored (tags only grow);
//!   - a cancelled session is restarted whenever the node is connected (BEAM only when it had
//!     a tag), and an `init_connect` from a connected, unknown node without a session starts one;
//!   - `in_sync` cancels our pending session *with* a `cancel_connect` (a no-op for a genuine
//!     sender, whose session with us has ended; a forged one would otherwise leave the sender's
//!     locker waiting, holding the lock).
//!
//!   None of these changes what a BEAM peer sees in a normal sync.
//!
//! # Running the core (for driver writers)
//!
//! ```text
//!  driver (one process registered as global_name_server, pid = Config::gns_pid)
//!    on start:            Global::new(config, || node.make_ref(), Instant::now())
//!    visible nodeup:      g.handle_nodeup(node, now)         (not for hidden nodes)
//!    visible nodedown:    g.handle_nodedown(node, now)
//!    every message:       g.handle_message(msg, now)         (casts, calls, infos, DOWN, replies)
//!    timer:               sleep until g.next_timeout(); then g.handle_timeout(now)
//!    local API:           let op = g.register_name(name, pid, wire::random_exit_name()); ...
//!    after each input:    while let Some(a) = g.poll_action() { execute(a) }
//! ```
//!
//! Executing [`Action`]s:
//! - `Send { to, msg, connect }`: send from the server's pid. `connect: false` is
//!   `erlang:send(To, Msg, [noconnect])`: drop the message when there is no connection (BEAM's
//!   "volatile" sends: `init_connect_ack`, `cancel_connect`, `lost_connection`,
//!   `remove_connection`); with `true` a missing connection is set up first, as for any send.
//! - `Monitor { target, reference }`: monitor `target` (a pid, or `{global_name_server, Node}`
//!   during a multi-call) from the server's pid. The runtime makes its own references, so the
//!   driver keeps a map from the runtime's reference to `reference` and rewrites the reference
//!   in the `DOWN` message before passing it in (`{'DOWN', reference, process, Obj, Reason}`).
//!   A target that does not exist, or whose node cannot be reached, must produce a `DOWN` at once
//!   (`noproc`/`noconnection`), exactly as the runtime does for any monitor.
//! - `Demonitor { reference }`: drop that monitor (and the map entry); no `DOWN` may follow.
//! - `Exit { pid, reason }`: `exit(Pid, Reason)` from the server (the loser of a name conflict
//!   gets `kill`).
//! - `Connect(node)`: make sure a connection to `node` exists (`connect_all`); messages to that
//!   node emitted after it must wait for the connection. If it cannot be made while the node is
//!   not connected, call [`Global::handle_connect_failed`].
//! - `Disconnect(node)`: take the connection down (`net_kernel:async_disconnect/1`); the nodedown
//!   that follows is reported as usual.
//! - `OpDone { op, result }`: a local API call finished (`yes`/`no` for registrations, `ok` for
//!   unregistration).
//!
//! Nodeups must be reported before any message that arrived on the new connection, and the
//! nodedown after the last one, as `net_kernel:monitor_nodes/2` guarantees on BEAM.

mod calls;
mod locker;
mod registrar;
pub mod resolve;
mod server;
mod sync;
mod tables;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::node::Dest;
use crate::term::{Atom, Pid, Reference, Term};

use calls::PendingCall;
use locker::Locker;
use registrar::{RegOp, Registrar};
use sync::PeerState;
use tables::{Locks, LostConnections, Names};

/// The registered name of the name server on every node.
pub const NAME: &str = "global_name_server";

/// The protocol version we speak (`-define(vsn, 8)` in OTP 25–28).
pub const PROTOCOL_VERSION: i64 = 8;

/// First version with `init_connect_ack`, `cancel_connect` and the 5-tuple `lock_set`.
pub const VERIFY_CONNECT_VSN: i64 = 8;
/// First version with "prevent overlapping partitions" (`lost_connection`).
pub const POP_VSN: i64 = 7;
/// First version that propagates versions (`{Node, Vsn}` known lists).
pub const PGPV_VSN: i64 = 7;

/// BEAM's `?MIN_64BIT_SMALL_INT`: `erlang:unique_integer([monotonic])` starts here, and so do
/// our session tags and operation ids.
pub const MIN_64BIT_SMALL_INT: i64 = -(1 << 59);

/// How long a `lost_connection` report is remembered (`?lost_conn_info_cleanup_time`).
pub const LOST_CONN_INFO_CLEANUP: Duration = Duration::from_secs(60 * 60);

/// Named limits on what peers can make us store.
pub mod limits {
    /// Registered names we keep; a registration beyond it is refused (and logged).
    pub const MAX_NAMES: usize = 100_000;
    /// Names registered by C nodes.
    pub const MAX_NAMES_EXT: usize = 10_000;
    /// Operations in one `resolved` or `new_nodes`.
    pub const MAX_OPS: usize = 2 * MAX_NAMES;
    /// Nodes in a known list, and known/pending nodes we track.
    pub const MAX_KNOWN_NODES: usize = 10_000;
    /// Distinct locked resources; `set_lock` beyond it answers `false`.
    pub const MAX_LOCKS: usize = 100_000;
    /// Holders of one lock; `set_lock` beyond it answers `false`.
    pub const MAX_LOCK_HOLDERS: usize = 10_000;
    /// Local register/unregister requests waiting for the registrar.
    pub const MAX_PENDING_OPS: usize = 10_000;
    /// Messages waiting for the locker (its mailbox on BEAM).
    pub const MAX_LOCKER_MAILBOX: usize = 100_000;
    /// Remembered `lost_connection` reports.
    pub const MAX_LOST_CONNECTIONS: usize = 10_000;
}

/// What the driver tells the core at start.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name.
    pub node: Atom,
    /// The pid of the process registered as `global_name_server`; also our locker and
    /// registrar pid (it carries this incarnation's creation).
    pub gns_pid: Pid,
    /// Seed for the random choices (locker peer choice, back-off, XCreation).
    pub rng_seed: u64,
}

/// Makes references for monitors and call tags (the driver's `make_ref`).
pub trait RefSource: Send {
    /// A fresh, unique reference of this node.
    fn make_ref(&mut self) -> Reference;
}

impl<F: FnMut() -> Reference + Send> RefSource for F {
    fn make_ref(&mut self) -> Reference {
        self()
    }
}

/// Identifies a local API request ([`Global::register_name`] and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send `msg` from the server's pid. `connect: false`: drop it if there is no connection.
    Send {
        /// Where to.
        to: Dest,
        /// The message.
        msg: Term,
        /// Whether a missing connection may be set up for it.
        connect: bool,
    },
    /// Monitor `target` from the server; report its `DOWN` with `reference`.
    Monitor {
        /// A pid, or `{global_name_server, Node}`.
        target: Dest,
        /// The reference the core will recognise in the `DOWN`.
        reference: Reference,
    },
    /// Remove the monitor made for `reference`.
    Demonitor {
        /// The reference of an earlier [`Action::Monitor`].
        reference: Reference,
    },
    /// `exit(Pid, Reason)` from the server.
    Exit {
        /// The target.
        pid: Pid,
        /// The reason (`kill` for a conflict's loser).
        reason: Term,
    },
    /// Connect to this node if not connected.
    Connect(Atom),
    /// Disconnect from this node.
    Disconnect(Atom),
    /// A local API request finished.
    OpDone {
        /// Which request.
        op: OpId,
        /// Its result: `yes`/`no` (register), `ok` (unregister), or `{error, Reason}`.
        result: Term,
    },
}

/// Why a message was ignored. All are the peer's fault; the core logs them where it finds them
/// and returns them for the driver's information (state is unchanged, or the affected sync
/// session was restarted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobalError {
    /// A message of a known kind with a field of the wrong shape.
    Malformed {
        /// Which field.
        what: &'static str,
    },
    /// A list longer than its named limit.
    TooLarge {
        /// Which list.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A message of no kind the name server handles (BEAM logs a warning for these too).
    Unexpected {
        /// How it arrived: `call`, `cast` or `info`.
        kind: &'static str,
    },
}

impl fmt::Display for GlobalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobalError::Malformed { what } => write!(f, "malformed global message: {what}"),
            GlobalError::TooLarge { what, limit } => {
                write!(f, "global message too large: {what} over {limit}")
            }
            GlobalError::Unexpected { kind } => write!(f, "unexpected global {kind}"),
        }
    }
}

impl std::error::Error for GlobalError {}

/// The global name server of this node. See the module documentation for how to drive it.
pub struct Global {
    node: Atom,
    gns: Pid,
    refs: Box<dyn RefSource>,
    rng: StdRng,
    /// `erlang:unique_integer([monotonic])`: session tags and `lost_connection` op ids.
    unique: i64,
    /// This incarnation's extended creation for `lost_connection`.
    xcreation: i64,
    now: Instant,
    actions: VecDeque<Action>,

    /// Synced nodes and their protocol versions (`known` map, node keys).
    known: BTreeMap<Atom, i64>,
    /// Nodes in a sync session with us (`{pending, Node}` keys).
    pending: BTreeMap<Atom, i64>,
    /// Nodes we asked to disconnect (`{removing, Node}` keys).
    removing: BTreeSet<Atom>,
    /// Visible nodes currently connected (`{connection_id, Node}` keys).
    up: BTreeSet<Atom>,
    /// Nodes whose names are in our table.
    synced: Vec<Atom>,
    /// Running sync sessions: node and our tag (BEAM's `resolvers`).
    resolvers: BTreeMap<Atom, i64>,
    /// Per-node session state (BEAM's process dictionary entries).
    peers: BTreeMap<Atom, PeerState>,

    names: Names,
    locks: Locks,
    lost: LostConnections,
    /// The `global` lock went away because its holder died (`global_lock_down`).
    global_lock_down: bool,

    locker: Locker,
    registrar: Registrar,
    /// Our multi-call requests in flight, by tag reference.
    calls: HashMap<Reference, PendingCall>,
    /// Monitor reference of each request in flight to its tag reference.
    call_mrefs: HashMap<Reference, Reference>,
    next_op: u64,
}

impl fmt::Debug for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Global")
            .field("node", &self.node)
            .field("known", &self.known)
            .field("pending", &self.pending)
            .field("names", &self.names.len())
            .field("locks", &self.locks.len())
            .finish_non_exhaustive()
    }
}

impl Global {
    /// A name server for `config.node`, knowing no other node yet.
    pub fn new(config: Config, refs: impl RefSource + 'static, now: Instant) -> Global {
        let mut rng = StdRng::seed_from_u64(config.rng_seed);
        // BEAM: CreX = (rand:uniform(MAX - MIN) - 1) band bnot (1 bsl 32 - 1);
        //       XCreation = CreX + creation - MIN_64BIT_SMALL_INT.
        let cre_x = rng.random_range(0..(1i64 << 60) - 1) & !0xFFFF_FFFFi64;
        let xcreation = cre_x + config.gns_pid.creation as i64 - MIN_64BIT_SMALL_INT;
        Global {
            node: config.node,
            gns: config.gns_pid,
            refs: Box::new(refs),
            rng,
            unique: MIN_64BIT_SMALL_INT,
            xcreation,
            now,
            actions: VecDeque::new(),
            known: BTreeMap::new(),
            pending: BTreeMap::new(),
            removing: BTreeSet::new(),
            up: BTreeSet::new(),
            synced: Vec::new(),
            resolvers: BTreeMap::new(),
            peers: BTreeMap::new(),
            names: Names::default(),
            locks: Locks::default(),
            lost: LostConnections::default(),
            global_lock_down: false,
            locker: Locker::default(),
            registrar: Registrar::default(),
            calls: HashMap::new(),
            call_mrefs: HashMap::new(),
            next_op: 0,
        }
    }

    // ------------------------------------------------------------------ inputs

    /// A visible node connected.
    pub fn handle_nodeup(&mut self, node: Atom, now: Instant) {
        self.now = now;
        if node == self.node {
            return;
        }
        self.up.insert(node.clone());
        self.start_connect(&node);
        self.pump();
    }

    /// A visible node disconnected: its session is cancelled, its names and the locks its
    /// processes held are dropped, and (unless we asked for the disconnect) the other known
    /// nodes are told with `lost_connection`.
    pub fn handle_nodedown(&mut self, node: Atom, now: Instant) {
        self.now = now;
        if node == self.node {
            return;
        }
        self.up.remove(&node);
        self.nodedown(&node, NodeDown::Disconnected);
        self.drop_node_resources(&node);
        self.pump();
    }

    /// A [`Action::Connect`] to `node` failed while it was not connected (`extra_nodedown`).
    pub fn handle_connect_failed(&mut self, node: Atom, now: Instant) {
        self.now = now;
        if node == self.node || self.up.contains(&node) {
            return;
        }
        tracing::warn!(node = %node.as_str(), "'global' failed to connect");
        self.nodedown(&node, NodeDown::Disconnected);
        self.pump();
    }

    /// A message arrived at `global_name_server`. Malformed or unexpected messages are logged
    /// and ignored; the error says why.
    pub fn handle_message(&mut self, msg: Term, now: Instant) -> Result<(), GlobalError> {
        self.now = now;
        let r = match wire::parse(&msg) {
            Ok(incoming) => self.dispatch(incoming),
            Err(e) => {
                tracing::warn!(error = %e, %msg, "global_name_server: ignored malformed message");
                Err(e)
            }
        };
        self.pump();
        r
    }

    /// Time passed: runs the locker's wait, the registrar's back-off and table expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.lost.expire(now);
        self.locker_timeout();
        self.registrar_timeout();
        self.pump();
    }

    /// When [`Global::handle_timeout`] should next be called.
    pub fn next_timeout(&self) -> Option<Instant> {
        [self.locker.deadline, self.registrar.deadline, self.lost.next_expiry()].into_iter().flatten().min()
    }

    // ------------------------------------------------------------------ outputs

    /// The next action to execute.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// All pending actions, in order.
    pub fn drain_actions(&mut self) -> Vec<Action> {
        self.actions.drain(..).collect()
    }

    // ------------------------------------------------------------------ local API

    /// `global:register_name(Name, Pid, Method)`: `yes` if the name was free cluster-wide.
    /// Use [`wire::random_exit_name`] as the default method.
    pub fn register_name(&mut self, name: Term, pid: Pid, method: Term) -> OpId {
        self.enqueue_op(RegOp::Register { name, pid, method })
    }

    /// `global:re_register_name(Name, Pid, Method)`: always `yes`.
    pub fn re_register_name(&mut self, name: Term, pid: Pid, method: Term) -> OpId {
        self.enqueue_op(RegOp::ReRegister { name, pid, method })
    }

    /// `global:unregister_name(Name)`: `ok`.
    pub fn unregister_name(&mut self, name: Term) -> OpId {
        if !self.names.contains(&name) {
            let op = self.new_op();
            self.push(Action::OpDone { op, result: Term::atom("ok") });
            return op;
        }
        self.enqueue_op(RegOp::Unregister { name })
    }

    // ------------------------------------------------------------------ queries

    /// `global:whereis_name(Name)` (table lookup).
    pub fn whereis(&self, name: &Term) -> Option<Pid> {
        self.names.get(name).map(|r| r.pid.clone())
    }

    /// `global:registered_names()`, in term order.
    pub fn registered_names(&self) -> Vec<Term> {
        self.names.names().cloned().collect()
    }

    /// The nodes we are synced with (`global`'s known nodes, `nodes()` as global sees them).
    pub fn known_nodes(&self) -> Vec<Atom> {
        self.known.keys().cloned().collect()
    }

    /// Nodes we have exchanged names with (`get_synced`).
    pub fn synced_nodes(&self) -> Vec<Atom> {
        let mut v = self.synced.clone();
        v.sort();
        v
    }

    /// `true` while a sync session with `node` is running.
    pub fn is_syncing(&self, node: &Atom) -> bool {
        self.resolvers.contains_key(node) || self.pending.contains_key(node)
    }

    /// The requester id of the lock on `resource`, if it is held here.
    pub fn lock_requester(&self, resource: &Term) -> Option<Term> {
        self.locks.get(resource).map(|l| l.requester.clone())
    }

    /// This node's name.
    pub fn node(&self) -> &Atom {
        &self.node
    }

    // ------------------------------------------------------------------ internals

    fn dispatch(&mut self, incoming: wire::Incoming) -> Result<(), GlobalError> {
        use wire::Incoming;
        match incoming {
            Incoming::Call { from_pid, tag, req } => self.handle_call(from_pid, tag, req),
            Incoming::Cast(c) => self.handle_cast(c),
            Incoming::Info(i) => self.handle_info(i),
        }
    }

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn make_ref(&mut self) -> Reference {
        self.refs.make_ref()
    }

    /// `erlang:unique_integer([monotonic])`.
    fn unique_integer(&mut self) -> i64 {
        let v = self.unique;
        self.unique += 1;
        v
    }

    fn new_op(&mut self) -> OpId {
        self.next_op += 1;
        OpId(self.next_op)
    }

    fn gns_of(node: &Atom) -> Dest {
        Dest::Remote(Atom::new(NAME), node.clone())
    }

    /// `gen_server:cast({global_name_server, Node}, X)`.
    fn send_cast(&mut self, node: &Atom, x: Term) {
        self.push(Action::Send { to: Self::gns_of(node), msg: wire::cast(x), connect: true });
    }

    /// `gns_volatile_send(Node, Msg)`: no connection is set up for it.
    fn send_volatile(&mut self, node: &Atom, msg: Term) {
        self.push(Action::Send { to: Self::gns_of(node), msg, connect: false });
    }

    /// `gen_server:reply({Pid, Tag}, Reply)`: through the alias for `[alias | Ref]` tags.
    fn reply(&mut self, from_pid: &Pid, tag: Term, reply: Term) {
        let to = match &tag {
            Term::Improper(head, tail) => match (head.as_slice(), &**tail) {
                ([a], Term::Ref(r)) if a.is_atom("alias") => Dest::Alias(r.clone()),
                _ => Dest::Pid(from_pid.clone()),
            },
            _ => Dest::Pid(from_pid.clone()),
        };
        self.push(Action::Send { to, msg: Term::Tuple(vec![tag, reply]), connect: true });
    }

    fn monitor_pid(&mut self, pid: &Pid) -> Reference {
        let reference = self.make_ref();
        self.push(Action::Monitor { target: Dest::Pid(pid.clone()), reference: reference.clone() });
        reference
    }

    fn demonitor(&mut self, reference: Reference) {
        self.push(Action::Demonitor { reference });
    }

    /// The version `node` speaks (`node_vsn/2`): ours for ourselves, 0 when unknown.
    fn node_vsn(&self, node: &Atom) -> i64 {
        if node == &self.node {
            return PROTOCOL_VERSION;
        }
        self.known.get(node).or_else(|| self.pending.get(node)).copied().unwrap_or(0)
    }

    /// Runs the helper state machines after any input (their mailboxes may have grown).
    fn pump(&mut self) {
        self.locker_poll();
        self.registrar_kick();
    }

    fn enqueue_op(&mut self, req: RegOp) -> OpId {
        let op = self.new_op();
        if self.registrar.queue.len() >= limits::MAX_PENDING_OPS {
            tracing::warn!("global: too many pending registrations; request refused");
            let result = Term::Tuple(vec![Term::atom("error"), Term::atom("too_many_requests")]);
            self.push(Action::OpDone { op, result });
            return op;
        }
        self.registrar.queue.push_back((op, req));
        self.pump();
        op
    }

    fn random_below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.rng.random_range(0..n) }
    }
}

/// How a node leaves (`handle_nodedown/3`'s `What`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeDown {
    /// The connection went down.
    Disconnected,
    /// We asked it to go (prevent overlapping partitions).
    RemoveConnection,
}
