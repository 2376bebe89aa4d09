//! The node runtime: processes, the process table, local names, aliases, and the signal
//! semantics of the Erlang Reference Manual ("Processes": links, monitors, exit signals),
//! applied the same way whether the other end is local or on another node.
//!
//! Signals to remote processes leave through [`Outbound`]; the connection layer lowers them to
//! the control messages the negotiated flags allow. Signals arriving from a connection enter
//! through `wire::dispatch`, which calls the node's `remote_*` entry points (`inbound.rs`).
//! When a connection goes down, [`Node::connection_lost`] gives every local process linked to
//! or monitoring that node `noconnection`, as BEAM does.

mod connection;
mod distribution;
mod ids;
mod inbound;
mod introspect;
pub mod name;
mod outbound;
mod process;
mod spawn;
pub mod spin;
mod start;
mod transport;
mod wire;

pub use distribution::{ConnectError, NodeEvent, default_cookie};
pub use inbound::ProcRef;
pub use introspect::{ProcessInfo, ProcessStatus};
pub use outbound::Outbound;
pub use process::{Labels, MonitorTarget, Process, normal};
pub use spawn::{MAX_PROCESSES, SpawnHandler, SpawnOpts};
pub use start::{NET_KERNEL, NodeConfig, StartError};
pub use transport::Transport;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use crate::hash::LocalKeys;
use ids::IdAllocator;
use process::{Guarded, ProcessEntry, Watcher};

use crate::term::{Atom, Pid, Reference, Term};

/// Where a message or monitor goes: `erlang:send/2` destinations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// A process by pid (local or remote).
    Pid(Pid),
    /// A locally registered name.
    Name(Atom),
    /// A name registered on a node: `{Name, Node}`.
    Remote(Atom, Atom),
    /// A process alias (a reference).
    Alias(Reference),
    /// A name registered with `global` (`{global, Name}`), resolved when used.
    Global(Term),
}

impl From<Pid> for Dest {
    fn from(p: Pid) -> Dest {
        Dest::Pid(p)
    }
}
impl From<&Pid> for Dest {
    fn from(p: &Pid) -> Dest {
        Dest::Pid(p.clone())
    }
}
impl From<Atom> for Dest {
    fn from(a: Atom) -> Dest {
        Dest::Name(a)
    }
}
impl From<(Atom, Atom)> for Dest {
    fn from((name, node): (Atom, Atom)) -> Dest {
        Dest::Remote(name, node)
    }
}
impl From<Reference> for Dest {
    fn from(r: Reference) -> Dest {
        Dest::Alias(r)
    }
}

const SHARDS: usize = 16;

/// This node's own pids by `(id, serial)`: keys minted here, so [`LocalKeys`] hashes them.
type PidMap = HashMap<(u32, u32), Arc<ProcessEntry>, LocalKeys>;

/// Local processes by pid, sharded so that routing rarely contends.
#[derive(Debug)]
struct ProcessTable {
    shards: Vec<RwLock<PidMap>>,
}

impl ProcessTable {
    fn new() -> ProcessTable {
        ProcessTable { shards: (0..SHARDS).map(|_| RwLock::new(PidMap::default())).collect() }
    }

    fn shard(&self, pid: &Pid) -> &RwLock<PidMap> {
        &self.shards[(pid.id as usize) % SHARDS]
    }

    fn get(&self, pid: &Pid) -> Option<Arc<ProcessEntry>> {
        let shard = self.shard(pid).read().unwrap_or_else(|e| e.into_inner());
        shard.get(&(pid.id, pid.serial)).cloned()
    }

    /// Delivers `msg` to `pid` if it is in the table, under the shard's read lock (no
    /// reference count traffic; a mailbox push takes no table lock).
    fn deliver(&self, pid: &Pid, msg: Term) {
        let shard = self.shard(pid).read().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = shard.get(&(pid.id, pid.serial)) {
            e.deliver(msg);
        }
    }

    fn insert(&self, entry: Arc<ProcessEntry>) {
        let mut shard = self.shard(&entry.pid).write().unwrap_or_else(|e| e.into_inner());
        shard.insert((entry.pid.id, entry.pid.serial), entry);
    }

    fn remove(&self, pid: &Pid) {
        let mut shard = self.shard(pid).write().unwrap_or_else(|e| e.into_inner());
        shard.remove(&(pid.id, pid.serial));
    }

    fn all(&self) -> Vec<Arc<ProcessEntry>> {
        let mut out = Vec::new();
        for s in &self.shards {
            out.extend(s.read().unwrap_or_else(|e| e.into_inner()).values().cloned());
        }
        out
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }
}

/// Things a node owns only to keep them alive (EPMD registration, embedded EPMD, tasks).
struct KeepAlive(Vec<Box<dyn std::any::Any + Send>>);

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeepAlive({})", self.0.len())
    }
}

/// A handle to a node. Cheap to clone; every clone is the same node.
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<NodeInner>,
}

#[derive(Debug)]
struct NodeInner {
    name: Atom,
    creation: u32,
    ids: IdAllocator,
    processes: ProcessTable,
    /// Local names, straight to the process (one lookup to route a message to a name).
    names: RwLock<HashMap<Atom, Arc<ProcessEntry>, LocalKeys>>,
    aliases: RwLock<HashMap<Reference, Arc<ProcessEntry>, LocalKeys>>,
    dist: std::sync::OnceLock<Arc<distribution::Distribution>>,
    /// Kept for the node's lifetime: EPMD registration, embedded EPMD.
    keep_alive: std::sync::Mutex<KeepAlive>,
    /// Stands in as the sender of messages sent from outside any process.
    system_pid: Pid,
    /// Resolves `{global, Name}` (installed by the `global` service).
    global_names: std::sync::OnceLock<Arc<dyn GlobalNames>>,
    /// Services attached to this node, by type.
    extensions: RwLock<HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>>,
    /// What processes started by a peer's `SPAWN_REQUEST` run (installed by the rpc service).
    spawn_handler: RwLock<Option<Arc<dyn SpawnHandler>>>,
    /// When the node was made (`statistics(wall_clock)`).
    started: std::time::Instant,
    /// Messages received by processes that have exited (`statistics(reductions)`).
    exited_reductions: std::sync::atomic::AtomicU64,
}

/// Looks up names registered with `global`.
pub trait GlobalNames: Send + Sync + std::fmt::Debug {
    /// The pid registered as `name`, if any (`global:whereis_name/1`).
    fn whereis(&self, name: &Term) -> Option<Pid>;
}

impl Node {
    /// A node with no connections yet: `name` is the full node name (`name@host`), `creation`
    /// the incarnation (from EPMD when distributed).
    pub fn new_local(name: Atom, creation: u32) -> Node {
        let ids = IdAllocator::new(name.clone(), creation, rand::random());
        let system_pid = ids.pid();
        Node {
            inner: Arc::new(NodeInner {
                name,
                creation,
                ids,
                processes: ProcessTable::new(),
                names: RwLock::new(HashMap::default()),
                aliases: RwLock::new(HashMap::default()),
                dist: std::sync::OnceLock::new(),
                keep_alive: std::sync::Mutex::new(KeepAlive(Vec::new())),
                system_pid,
                global_names: std::sync::OnceLock::new(),
                extensions: RwLock::new(HashMap::new()),
                spawn_handler: RwLock::new(None),
                started: std::time::Instant::now(),
                exited_reductions: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn set_distribution(&self, dist: Arc<distribution::Distribution>) {
        let _ = self.inner.dist.set(dist);
    }

    pub(crate) fn distribution(&self) -> Option<&Arc<distribution::Distribution>> {
        self.inner.dist.get()
    }

    pub(crate) fn keep_alive(&self, thing: Box<dyn std::any::Any + Send>) {
        process::lock(&self.inner.keep_alive).0.push(thing);
    }

    pub(crate) fn drop_keep_alive(&self) {
        let things = std::mem::take(&mut process::lock(&self.inner.keep_alive).0);
        drop(things);
    }

    /// Installs the resolver of `{global, Name}` destinations (done once, by `global`).
    pub fn set_global_names(&self, names: Arc<dyn GlobalNames>) {
        let _ = self.inner.global_names.set(names);
    }

    /// The pid registered with `global` as `name` (`global:whereis_name/1`).
    pub fn whereis_global(&self, name: &Term) -> Option<Pid> {
        self.inner.global_names.get().and_then(|g| g.whereis(name))
    }

    /// Attaches a service object to this node (one per type).
    pub fn set_extension<T: Send + Sync + 'static>(&self, value: Arc<T>) {
        self.inner.extensions.write().unwrap_or_else(|e| e.into_inner()).insert(std::any::TypeId::of::<T>(), value);
    }

    /// The service object of type `T`, if attached.
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let ext = self.inner.extensions.read().unwrap_or_else(|e| e.into_inner());
        ext.get(&std::any::TypeId::of::<T>()).cloned().and_then(|a| a.downcast::<T>().ok())
    }

    /// This node's full name (`node()`).
    pub fn name(&self) -> &Atom {
        &self.inner.name
    }

    /// The service object of type `T`, attaching `make()`'s if there is none yet (atomically:
    /// two callers racing get the same object).
    pub fn extension_or_insert_with<T: Send + Sync + 'static>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        if let Some(t) = self.extension::<T>() {
            return t;
        }
        let mut ext = self.inner.extensions.write().unwrap_or_else(|e| e.into_inner());
        let entry = ext.entry(std::any::TypeId::of::<T>()).or_insert_with(|| Arc::new(make()));
        match entry.clone().downcast::<T>() {
            Ok(t) => t,
            Err(_) => unreachable!("extensions are stored under their own TypeId"),
        }
    }

    /// Installs what processes started by a peer's `SPAWN_REQUEST` run (`spawn/4` and
    /// `erpc:call` from BEAM), replacing any earlier handler.
    pub fn set_spawn_handler(&self, handler: Arc<dyn SpawnHandler>) {
        *self.inner.spawn_handler.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    fn spawn_handler(&self) -> Option<Arc<dyn SpawnHandler>> {
        self.inner.spawn_handler.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `true` once the node is distributed ([`Node::start_distribution`]; `erlang:is_alive/0`).
    pub fn is_distributed(&self) -> bool {
        self.inner.dist.get().is_some()
    }

    /// The flags negotiated with `peer`, if connected.
    pub fn peer_flags(&self, peer: &Atom) -> Option<crate::dist::DistFlags> {
        self.distribution().and_then(|d| d.peer_flags(peer))
    }

    /// This node's creation.
    pub fn creation(&self) -> u32 {
        self.inner.creation
    }

    /// A new unique reference.
    pub fn make_ref(&self) -> Reference {
        self.inner.ids.reference()
    }

    /// The pid used as sender for messages sent from outside any process.
    pub fn system_pid(&self) -> &Pid {
        &self.inner.system_pid
    }

    /// Number of live local processes.
    pub fn process_count(&self) -> usize {
        self.inner.processes.len()
    }

    /// `true` if `pid` names a process of this node incarnation.
    pub fn is_local(&self, pid: &Pid) -> bool {
        pid.node == self.inner.name && pid.creation == self.inner.creation
    }

    fn lookup(&self, pid: &Pid) -> Option<Arc<ProcessEntry>> {
        if self.is_local(pid) { self.inner.processes.get(pid) } else { None }
    }

    /// Delivers `msg` to the local process `pid`, if it exists.
    fn deliver_local(&self, pid: &Pid, msg: Term) {
        if self.is_local(pid) {
            self.inner.processes.deliver(pid, msg);
        }
    }

    /// `true` if `pid` is a live local process (`is_process_alive/1`).
    pub fn is_alive(&self, pid: &Pid) -> bool {
        self.lookup(pid).is_some_and(|e| e.state().alive)
    }

    // ---------------------------------------------------------------- spawning

    /// Starts a process running `body`; the value it returns is its exit reason
    /// (return [`normal()`] for a normal exit).
    pub fn spawn<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Term> + Send + 'static,
    {
        self.spawn_with(|_| {}, body)
    }

    /// Like [`Node::spawn`], but `setup` runs on the new process's entry before its body starts
    /// (links, monitors and names set up here cannot race with the body).
    fn spawn_with<F, Fut>(&self, setup: impl FnOnce(&Arc<ProcessEntry>), body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Term> + Send + 'static,
    {
        let pid = self.inner.ids.pid();
        let entry = ProcessEntry::new(pid.clone());
        self.inner.processes.insert(entry.clone());
        setup(&entry);
        let node = self.clone();
        let process = Process::new(node.clone(), entry.clone());
        let body = body(process);
        entry.set_task_bytes(std::mem::size_of_val(&body));
        let guarded = Guarded::new(body, entry.clone());
        tokio::spawn(async move {
            let reason = guarded.await;
            node.process_exited(&entry, reason);
        });
        pid
    }

    /// Starts a process linked to `parent` (`spawn_link/1` called by `parent`).
    pub fn spawn_link<F, Fut>(&self, parent: &Pid, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Term> + Send + 'static,
    {
        let parent = parent.clone();
        let node = self.clone();
        self.spawn_with(move |child| node.link(&parent, &child.pid), body)
    }

    /// Starts a process monitored by `watcher` (`spawn_monitor/1`); returns its pid and the
    /// monitor reference.
    pub fn spawn_monitor<F, Fut>(&self, watcher: &Pid, body: F) -> (Pid, Reference)
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Term> + Send + 'static,
    {
        let watcher = watcher.clone();
        let node = self.clone();
        let mut mref = None;
        let pid = self.spawn_with(|child| mref = Some(node.monitor(&watcher, Dest::Pid(child.pid.clone()))), body);
        match mref {
            Some(r) => (pid, r),
            None => unreachable!("setup always runs"),
        }
    }

    /// Runs when a process body has finished, for whatever reason: unregisters it and sends
    /// its exit reason along every link and monitor.
    fn process_exited(&self, entry: &Arc<ProcessEntry>, reason: Term) {
        let state = {
            let mut st = entry.state();
            st.alive = false;
            std::mem::take(&mut *st)
        };
        self.inner.processes.remove(&entry.pid);
        let (_, received, _) = entry.figures();
        self.inner.exited_reductions.fetch_add(received, std::sync::atomic::Ordering::Relaxed);
        if let Some(name) = &state.name {
            let mut names = self.inner.names.write().unwrap_or_else(|e| e.into_inner());
            if names.get(name).is_some_and(|e| e.pid == entry.pid) {
                names.remove(name);
            }
        }
        if !state.aliases.is_empty() {
            let mut aliases = self.inner.aliases.write().unwrap_or_else(|e| e.into_inner());
            for a in &state.aliases {
                aliases.remove(a);
            }
        }
        for linked in state.links {
            self.link_exit(&entry.pid, &linked, reason.clone());
        }
        for (mref, watcher) in state.monitored_by {
            self.send_down(&entry.pid, &watcher, mref, reason.clone());
        }
        for (mref, target) in state.monitors {
            self.drop_monitor_at_target(&entry.pid, &target, &mref);
        }
        tracing::trace!(pid = ?entry.pid, ?reason, "process exited");
    }

    // ---------------------------------------------------------------- names

    /// Registers `pid` under `name` (`register/2`): `false` if the name is taken, the process
    /// already has a name, or it is not a live local process.
    pub fn register(&self, name: Atom, pid: &Pid) -> bool {
        let Some(entry) = self.lookup(pid) else { return false };
        let mut names = self.inner.names.write().unwrap_or_else(|e| e.into_inner());
        let mut st = entry.state();
        if !st.alive || st.name.is_some() || names.contains_key(&name) {
            return false;
        }
        st.name = Some(name.clone());
        drop(st);
        names.insert(name, entry.clone());
        true
    }

    /// Removes a local name (`unregister/1`); `false` if it was not registered.
    pub fn unregister(&self, name: &Atom) -> bool {
        let removed = self.inner.names.write().unwrap_or_else(|e| e.into_inner()).remove(name);
        match removed {
            Some(e) => {
                e.state().name = None;
                true
            }
            None => false,
        }
    }

    /// The pid registered locally under `name` (`whereis/1`).
    pub fn whereis(&self, name: &Atom) -> Option<Pid> {
        self.inner.names.read().unwrap_or_else(|e| e.into_inner()).get(name).map(|e| e.pid.clone())
    }

    fn named_entry(&self, name: &Atom) -> Option<Arc<ProcessEntry>> {
        self.inner.names.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// All locally registered names (`registered/0`).
    pub fn registered(&self) -> Vec<Atom> {
        let mut v: Vec<Atom> = self.inner.names.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        v.sort();
        v
    }

    // ---------------------------------------------------------------- aliases

    fn alias(&self, entry: &Arc<ProcessEntry>) -> Reference {
        let r = self.make_ref();
        entry.state().aliases.insert(r.clone());
        self.inner.aliases.write().unwrap_or_else(|e| e.into_inner()).insert(r.clone(), entry.clone());
        r
    }

    fn unalias(&self, entry: &Arc<ProcessEntry>, alias: &Reference) -> bool {
        if !entry.state().aliases.remove(alias) {
            return false;
        }
        self.inner.aliases.write().unwrap_or_else(|e| e.into_inner()).remove(alias);
        true
    }

    // ---------------------------------------------------------------- sending

    /// Sends `msg` to `to` from outside any process.
    pub fn send(&self, to: impl Into<Dest>, msg: Term) {
        self.send_from(None, to.into(), msg);
    }

    pub(crate) fn send_from(&self, from: Option<&Pid>, to: Dest, msg: Term) {
        match to {
            Dest::Pid(pid) => {
                if pid.node == self.inner.name {
                    self.deliver_local(&pid, msg);
                } else {
                    let from = from.cloned();
                    let node = pid.node.clone();
                    self.remote(&node, Outbound::Send { from, to: pid, msg });
                }
            }
            Dest::Name(name) => self.send_to_name(&name, msg),
            Dest::Remote(name, node) => {
                if node == self.inner.name {
                    self.send_to_name(&name, msg);
                } else {
                    let from = from.cloned().unwrap_or_else(|| self.inner.system_pid.clone());
                    self.remote(&node, Outbound::RegSend { from, name, msg });
                }
            }
            Dest::Global(name) => {
                // like global:send/2, but a missing name drops the message instead of raising
                if let Some(pid) = self.whereis_global(&name) {
                    self.send_from(from, Dest::Pid(pid), msg);
                }
            }
            Dest::Alias(alias) => {
                if alias.node == self.inner.name {
                    self.deliver_to_alias(&alias, msg);
                } else {
                    let from = from.cloned().unwrap_or_else(|| self.inner.system_pid.clone());
                    let node = alias.node.clone();
                    self.remote(&node, Outbound::AliasSend { from, alias, msg });
                }
            }
        }
    }

    fn send_to_name(&self, name: &Atom, msg: Term) {
        // delivered under the read lock: one lookup, no reference count traffic (a mailbox
        // push never takes the name table's lock, so this cannot deadlock)
        let names = self.inner.names.read().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = names.get(name) {
            e.deliver(msg);
        }
    }

    fn deliver_to_alias(&self, alias: &Reference, msg: Term) {
        let aliases = self.inner.aliases.read().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = aliases.get(alias) {
            e.deliver(msg);
        }
    }

    fn remote(&self, to_node: &Atom, signal: Outbound) {
        match self.inner.dist.get() {
            Some(d) => d.send(self, to_node, signal),
            None => self.undeliverable(to_node, signal),
        }
    }

    /// The local consequence of a signal that could not reach `to_node`: a link or monitor
    /// request yields `noconnection`, as when the connection fails on BEAM; others vanish.
    pub(crate) fn undeliverable(&self, to_node: &Atom, signal: Outbound) {
        match signal {
            Outbound::Link { from, to } => self.link_exit_local(&to, &from, noconnection()),
            Outbound::Monitor { from, target, reference } => {
                if let Some(w) = self.lookup(&from) {
                    if w.state().forget_monitor(&reference).is_some() {
                        w.deliver(down_message(&reference, &target.down_object(), noconnection()));
                    }
                }
            }
            Outbound::SpawnRequest { from, req_id, .. } => self.spawn_request_failed(&from, &req_id),
            other => tracing::debug!(node = %to_node.as_str(), signal = ?other.kind(), "no connection; signal dropped"),
        }
    }

    // ---------------------------------------------------------------- links

    /// Links `a` (a local process) with `b` (`link/1` called by `a`).
    pub fn link(&self, a: &Pid, b: &Pid) {
        let Some(ea) = self.lookup(a) else { return };
        if a == b {
            return;
        }
        if !self.is_local(b) {
            if b.node == self.inner.name {
                // a pid of an earlier incarnation of this node: it cannot exist
                self.link_exit_local(b, a, Term::atom("noproc"));
                return;
            }
            ea.state().links.insert(b.clone());
            self.remote(&b.node.clone(), Outbound::Link { from: a.clone(), to: b.clone() });
            return;
        }
        match self.lookup(b) {
            Some(eb) => {
                let mut sb = eb.state();
                if sb.alive {
                    sb.links.insert(a.clone());
                    drop(sb);
                    ea.state().links.insert(b.clone());
                } else {
                    drop(sb);
                    self.link_exit_local(b, a, Term::atom("noproc"));
                }
            }
            None => self.link_exit_local(b, a, Term::atom("noproc")),
        }
    }

    /// Removes the link between local `a` and `b` (`unlink/1` called by `a`).
    pub fn unlink(&self, a: &Pid, b: &Pid) {
        let Some(ea) = self.lookup(a) else { return };
        let had = ea.state().links.remove(b);
        if self.is_local(b) {
            if let Some(eb) = self.lookup(b) {
                eb.state().links.remove(a);
            }
        } else if had && b.node != self.inner.name {
            let id = unlink_id(&self.make_ref());
            self.remote(&b.node.clone(), Outbound::UnlinkId { id, from: a.clone(), to: b.clone() });
        }
    }

    /// `from` died with `reason` while linked to `to`.
    fn link_exit(&self, from: &Pid, to: &Pid, reason: Term) {
        if to.node == self.inner.name {
            self.link_exit_local(from, to, reason);
        } else {
            let node = to.node.clone();
            self.remote(&node, Outbound::Exit { from: from.clone(), to: to.clone(), reason });
        }
    }

    /// Delivers a link exit signal from `from` to the local process `to`: the link is removed;
    /// a trapping process gets `{'EXIT', From, Reason}`, another dies unless `Reason` is
    /// `normal`. (A link signal with reason `kill` is an ordinary reason, unlike `exit/2`.)
    fn link_exit_local(&self, from: &Pid, to: &Pid, reason: Term) {
        let Some(e) = self.lookup(to) else { return };
        let had_link = e.state().links.remove(from);
        let noproc_on_link = reason.is_atom("noproc") || reason.is_atom("noconnection");
        if !had_link && !noproc_on_link {
            return;
        }
        self.apply_exit(&e, from, reason, false);
    }

    fn apply_exit(&self, e: &Arc<ProcessEntry>, from: &Pid, reason: Term, untrappable_kill: bool) {
        if untrappable_kill && reason.is_atom("kill") {
            e.kill(Term::atom("killed"));
        } else if e.traps_exits() {
            e.deliver(Term::Tuple(vec![Term::atom("EXIT"), Term::Pid(from.clone()), reason]));
        } else if !reason.is_atom("normal") {
            e.kill(reason);
        } else if untrappable_kill && from == &e.pid {
            // exit(self(), normal) ends the calling process
            e.kill(reason);
        }
    }

    /// Sends an exit signal (`exit(To, Reason)` called by `from`).
    pub fn exit2(&self, from: &Pid, to: &Pid, reason: Term) {
        if to.node == self.inner.name {
            if let Some(e) = self.lookup(to) {
                self.apply_exit(&e, from, reason, true);
            }
        } else {
            let node = to.node.clone();
            self.remote(&node, Outbound::Exit2 { from: from.clone(), to: to.clone(), reason });
        }
    }

    // ---------------------------------------------------------------- monitors

    /// `watcher` (a local process) monitors `target`; returns the reference. A target that does
    /// not exist yields an immediate `DOWN` with reason `noproc`.
    pub fn monitor(&self, watcher: &Pid, target: Dest) -> Reference {
        let mref = self.make_ref();
        self.monitor_with(watcher, target, mref.clone());
        mref
    }

    /// [`Node::monitor`] with a reference the caller made (with [`Node::make_ref`]).
    pub fn monitor_with(&self, watcher: &Pid, target: Dest, mref: Reference) {
        let Some(w) = self.lookup(watcher) else { return };
        let target = match target {
            // a global name is resolved first, as gen:call does
            Dest::Global(name) => match self.whereis_global(&name) {
                Some(pid) => Dest::Pid(pid),
                None => {
                    w.deliver(down_message(
                        &mref,
                        &Term::Tuple(vec![Term::atom("global"), name]),
                        Term::atom("noproc"),
                    ));
                    return;
                }
            },
            other => other,
        };
        let (target, by_name): (MonitorTarget, Option<Atom>) = match target {
            Dest::Pid(p) => (MonitorTarget::Pid(p), None),
            Dest::Name(n) => (MonitorTarget::Name(n.clone(), self.inner.name.clone()), Some(n)),
            Dest::Remote(n, node) => (MonitorTarget::Name(n.clone(), node), Some(n)),
            Dest::Alias(_) | Dest::Global(_) => {
                w.deliver(down_message(&mref, &Term::atom("undefined"), Term::atom("noproc")));
                return;
            }
        };
        if target.node() != &self.inner.name {
            w.state().monitors.insert(mref.clone(), target.clone());
            let node = target.node().clone();
            self.remote(&node, Outbound::Monitor { from: watcher.clone(), target, reference: mref.clone() });
            return;
        }
        let local = match &target {
            MonitorTarget::Pid(p) => self.lookup(p),
            MonitorTarget::Name(n, _) => self.named_entry(n),
        };
        let installed = local.is_some_and(|t| {
            let mut st = t.state();
            if st.alive {
                st.monitored_by.insert(
                    mref.clone(),
                    Watcher { pid: watcher.clone(), by_name: by_name.clone(), call: Default::default() },
                );
                drop(st);
                w.state().monitors.insert(mref.clone(), target.clone());
                true
            } else {
                false
            }
        });
        if !installed {
            w.deliver(down_message(&mref, &target.down_object(), Term::atom("noproc")));
        }
    }

    /// Removes a monitor held by `watcher`.
    pub fn demonitor(&self, watcher: &Pid, mref: &Reference) {
        let Some(w) = self.lookup(watcher) else { return };
        let target = w.state().forget_monitor(mref);
        if let Some(t) = target {
            self.drop_monitor_at_target(watcher, &t, mref);
        }
    }

    fn drop_monitor_at_target(&self, watcher: &Pid, target: &MonitorTarget, mref: &Reference) {
        if target.node() != &self.inner.name {
            let node = target.node().clone();
            self.remote(
                &node,
                Outbound::Demonitor { from: watcher.clone(), target: target.clone(), reference: mref.clone() },
            );
            return;
        }
        // a local target: find it by pid, or by scanning names' owner
        let entry = match target {
            MonitorTarget::Pid(p) => self.lookup(p),
            MonitorTarget::Name(n, _) => self.named_entry(n),
        };
        if let Some(t) = entry {
            t.state().forget_watcher(mref);
        } else {
            // the name may have moved or gone; the monitor lives on whoever holds it
            for e in self.inner.processes.all() {
                if e.state().forget_watcher(mref).is_some() {
                    break;
                }
            }
        }
    }

    /// Tells `watcher` that the process `dead` (which it monitored) exited with `reason`.
    fn send_down(&self, dead: &Pid, watcher: &Watcher, mref: Reference, reason: Term) {
        if watcher.pid.node == self.inner.name {
            let Some(w) = self.lookup(&watcher.pid) else { return };
            let Some(target) = w.state().forget_monitor(&mref) else { return };
            let object = match &target {
                MonitorTarget::Name(..) => target.down_object(),
                MonitorTarget::Pid(_) => Term::Pid(dead.clone()),
            };
            w.deliver(down_message(&mref, &object, reason));
        } else {
            let from = match &watcher.by_name {
                Some(n) => ProcRef::Name(n.clone()),
                None => ProcRef::Pid(dead.clone()),
            };
            let node = watcher.pid.node.clone();
            self.remote(&node, Outbound::MonitorExit { from, to: watcher.pid.clone(), reference: mref, reason });
        }
    }
}

/// Builds `{'DOWN', Ref, process, Object, Reason}`.
pub fn down_message(mref: &Reference, object: &Term, reason: Term) -> Term {
    Term::Tuple(vec![Term::atom("DOWN"), Term::Ref(mref.clone()), Term::atom("process"), object.clone(), reason])
}

/// The reason `noconnection`.
pub fn noconnection() -> Term {
    Term::atom("noconnection")
}

/// An unlink id in `1..2^64-1` derived from a fresh reference.
fn unlink_id(r: &Reference) -> u64 {
    let w = r.ids();
    let id = ((w[1] as u64) << 32 | w[0] as u64).wrapping_add(1);
    if id == 0 { 1 } else { id }
}

#[cfg(test)]
mod tests;
