//! syn from Rust: register names and join groups in syn scopes, as a node running
//! `syn:add_node_to_scopes([Scope])` does, so BEAM code finds Rust processes with
//! `:syn.lookup/2`, `{:via, :syn, {Scope, Name}}`, `:syn.members/2`, `:syn.publish/3` and
//! `:syn.multi_call/4`, and Rust code finds theirs.
//!
//! Follows syn 3.4.1, protocol version `'3.0'` (`src/syn_gen_scope.erl`, `src/syn_registry.erl`,
//! `src/syn_pg.erl`, `src/syn_event_handler.erl`). The wire shapes are in [`message`]; the
//! scope processes' state machine is [`core`].
//!
//! ```no_run
//! # async fn demo(node: erlnode::Node, p: erlnode::Process) -> Result<(), erlnode::ecosystem::syn::SynError> {
//! use erlnode::ecosystem::syn::Syn;
//! use erlnode::term::Term;
//!
//! let users = Syn::join(&node, "users").await?;
//! users.register(Term::binary("alice"), p.pid(), Term::atom("meta")).await?;
//! // iex> :syn.lookup(:users, "alice")            # {#PID<12345.80.0>, :meta}
//! // iex> GenServer.call({:via, :syn, {:users, "alice"}}, :hi)
//! users.join_group(Term::atom("room"), p.pid(), Term::nil()).await?;
//! let members = users.members(&Term::atom("room"));
//! let (replies, bad) = users.multi_call(&Term::atom("room"), Term::atom("ping"), std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! Semantics, as syn has them:
//! - Each scope runs two processes on every node, `syn_registry_<Scope>` and `syn_pg_<Scope>`.
//!   They discover the scope on every node when they start and on `nodeup`, exchange their
//!   local entries (`ack_sync`), and broadcast every change to the nodes they know. Lookups
//!   read this node's copy: a registration made on another node is seen once its broadcast
//!   arrived (a write made from here is seen here at once, as syn's client does).
//! - A write for a process goes to the scope process on the process's node, which monitors it:
//!   a process that exits is unregistered and leaves its groups everywhere.
//! - When a node's scope process goes down (the node died or was disconnected), its entries
//!   are purged.
//! - After a netsplit heals, a name registered on both sides is kept for the newer
//!   registration (a tie goes to the larger pid); the node owning the loser kills it with
//!   `{syn_resolve_kill, Name, Meta}`. Custom `event_handler`s of the BEAM nodes do not run
//!   here: a Rust node resolves with syn's default rule.
//! - `syn:update_registry/3` and `syn:update_member/4` send a BEAM fun, which cannot run on
//!   erlnode: such a call for a Rust process raises `{erlnode_cannot_apply_fun, Fun}` in the
//!   BEAM caller.

pub mod core;
pub mod message;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::Instrument;

use self::core::{Effect, ScopeCore};
use self::message::{Kind, MetaOrFun, MultiCall, PeerMessage, Request, scope_atom};
use crate::gen_server::{self, CallError, From};
use crate::node::{Dest, Node, Process, normal};
use crate::ratelimit::RateLimit;
use crate::term::{Atom, Pid, Reference, Term};

/// What went wrong, by whose fault.
#[derive(Clone, Debug, PartialEq)]
pub enum SynError {
    /// Local misuse: not a usable scope name.
    BadScope(String),
    /// Local misuse: a scope process's name is registered by another process of this node.
    NameTaken(Atom),
    /// syn refused, with its reason: `taken`, `not_alive`, `undefined`, `not_in_group`,
    /// `race_condition` (what `{error, Reason}` carries on BEAM).
    Refused(Term),
    /// Peer misbehaved: a syn message had the wrong shape (what was wrong).
    Malformed(&'static str),
    /// Peer misbehaved: it announced an entry for a process that is not on its node.
    ForeignEntry {
        /// The peer scope process.
        peer: Pid,
        /// The process it claimed.
        pid: Pid,
    },
    /// Peer misbehaved: a "peer scope process" on this very node.
    LocalPeer(Pid),
    /// Peer misbehaved: it went past a named limit (the constant's name).
    LimitExceeded(&'static str),
    /// Peer misbehaved: a scope process answered a call with something syn never sends.
    BadReply(Term),
    /// The scope process of another node could not be called.
    Call(CallError),
    /// The scope processes are gone (the node is shutting down).
    Stopped,
}

impl fmt::Display for SynError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SynError::BadScope(s) => write!(f, "not a syn scope name: {s:?}"),
            SynError::NameTaken(n) => write!(f, "{} is registered by another process", n.as_str()),
            SynError::Refused(r) => write!(f, "syn refused: {r}"),
            SynError::Malformed(what) => write!(f, "malformed syn message: {what}"),
            SynError::ForeignEntry { peer, pid } => {
                write!(f, "{} announced {}, not on its node", Term::Pid(peer.clone()), Term::Pid(pid.clone()))
            }
            SynError::LocalPeer(p) => write!(f, "a peer scope on this node: {}", Term::Pid(p.clone())),
            SynError::LimitExceeded(l) => write!(f, "peer went past {l}"),
            SynError::BadReply(t) => write!(f, "unexpected reply from a syn scope: {t}"),
            SynError::Call(e) => write!(f, "syn scope: {e}"),
            SynError::Stopped => write!(f, "the syn scope has stopped"),
        }
    }
}

impl std::error::Error for SynError {}

/// `erlang:system_time()` in native units (nanoseconds), syn's `Time`.
fn system_time() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// One of a scope's two processes, shared between its driver and the API.
struct ScopeProc {
    node: Node,
    kind: Kind,
    pid: Pid,
    core: Mutex<ScopeCore>,
    monitors: Mutex<HashMap<Pid, Reference>>,
    dropped: AtomicU64,
    dropped_log: RateLimit,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ScopeProc {
    /// Runs `f` on the core and carries out its effects while still holding the lock, so
    /// that what the scope sends keeps the order in which it decided it.
    fn with_core<R>(&self, f: impl FnOnce(&mut ScopeCore) -> R) -> R {
        let mut core = lock(&self.core);
        let r = f(&mut core);
        for e in core.take_effects() {
            match e {
                Effect::Send { to, msg } => self.node.send_as(&self.pid, to, msg),
                Effect::Monitor(pid) => {
                    let r = self.node.monitor(&self.pid, Dest::Pid(pid.clone()));
                    if let Some(old) = lock(&self.monitors).insert(pid, r) {
                        self.node.demonitor(&self.pid, &old);
                    }
                }
                Effect::Demonitor(pid) => {
                    if let Some(r) = lock(&self.monitors).remove(&pid) {
                        self.node.demonitor(&self.pid, &r);
                    }
                }
                Effect::Kill { pid, reason } => self.node.exit2(&self.pid, &pid, reason),
            }
        }
        r
    }

    fn note_dropped(&self, e: &SynError, msg: &Term) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(held) = self.dropped_log.allow(Instant::now()) {
            tracing::warn!(held_back = held, scope = self.kind.module(), "dropped a syn message ({e}): {msg}");
        }
    }

    /// A write or remove for `pid`, sent where syn sends it: to the scope process on the
    /// pid's node (this one, without a message, if the pid is local). Returns syn's reply.
    async fn request(&self, req: Request, pid: &Pid) -> Result<Term, SynError> {
        if pid.node == *self.node.name() {
            let term = req.to_term(self.kind);
            let node = self.node.clone();
            return Ok(self.with_core(|c| c.handle_call(&term, system_time(), |p| node.is_alive(p))));
        }
        let scope = lock(&self.core).scope().clone();
        let dest = Dest::Remote(self.kind.process_name(&scope), pid.node.clone());
        let reply = self.node.call(dest, req.to_term(self.kind), Some(CALL_TIMEOUT)).await.map_err(SynError::Call)?;
        // as syn's client: put the entry in this node's table at once
        match (&req, reply.as_tuple()) {
            (Request::Write { key, .. }, Some([ok, Term::Tuple(r)])) if ok.is_atom("ok") && r.len() == 6 => {
                if let (meta, Some(time)) = (&r[2], r[3].as_int()) {
                    let (key, meta) = (key.clone(), meta.clone());
                    self.with_core(|c| c.apply_remote_write(key, pid.clone(), meta, time))?;
                }
            }
            (Request::Remove { key, .. }, Some([ok, _])) if ok.is_atom("ok") => {
                let key = key.clone();
                self.with_core(|c| c.apply_remote_remove(&key, pid));
            }
            _ => {}
        }
        Ok(reply)
    }
}

/// How long a call to another node's scope process may take (`gen_server:call/2`'s default).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Syn::join`] waits for its scope processes to start.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// syn's default `multi_call` timeout.
pub const DEFAULT_MULTI_CALL_TIMEOUT: Duration = Duration::from_millis(5000);

/// The scopes this node has joined, by name.
#[derive(Default)]
struct Joined(tokio::sync::Mutex<HashMap<Atom, Syn>>);

/// A syn scope this node takes part in. Cheap to clone.
#[derive(Clone)]
pub struct Syn {
    scope: Atom,
    node: Node,
    registry: Arc<ScopeProc>,
    pg: Arc<ScopeProc>,
}

impl fmt::Debug for Syn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Syn({})", self.scope.as_str())
    }
}

/// `{ok, ...}` / `{noop, _}` → `Ok`; `{error, Reason}` → [`SynError::Refused`]; anything else
/// → [`SynError::BadReply`].
fn check(reply: Term) -> Result<(), SynError> {
    match reply.as_tuple() {
        Some([tag, _]) if tag.is_atom("ok") || tag.is_atom("noop") => Ok(()),
        Some([tag, reason]) if tag.is_atom("error") => Err(SynError::Refused(reason.clone())),
        _ => Err(SynError::BadReply(reply)),
    }
}

impl Syn {
    /// Joins `scope` (`syn:add_node_to_scopes([Scope])`): starts this node's two scope
    /// processes, which discover the scope on every connected node. Joining twice gives the
    /// same scope.
    pub async fn join(node: &Node, scope: &str) -> Result<Syn, SynError> {
        let scope = scope_atom(scope)?;
        let joined = node.extension_or_insert_with(Joined::default);
        let mut joined = joined.0.lock().await;
        if let Some(s) = joined.get(&scope) {
            return Ok(s.clone());
        }
        let registry = start_proc(node, Kind::Registry, &scope).await?;
        let pg = match start_proc(node, Kind::Pg, &scope).await {
            Ok(p) => p,
            Err(e) => {
                node.unregister(&Kind::Registry.process_name(&scope));
                node.exit2(node.system_pid(), &registry.pid, Term::atom("kill"));
                return Err(e);
            }
        };
        let syn = Syn { scope: scope.clone(), node: node.clone(), registry, pg };
        joined.insert(scope, syn.clone());
        Ok(syn)
    }

    /// The scope's name.
    pub fn scope(&self) -> &Atom {
        &self.scope
    }

    /// The nodes whose registry scope process this node knows (`syn:subcluster_nodes(registry, S)`).
    pub fn nodes(&self) -> Vec<Atom> {
        lock(&self.registry.core).nodes()
    }

    /// The nodes whose pg scope process this node knows.
    pub fn pg_nodes(&self) -> Vec<Atom> {
        lock(&self.pg.core).nodes()
    }

    /// Waits until both scope processes know each of `nodes`; `false` on timeout.
    pub async fn wait_for_nodes(&self, nodes: &[Atom], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let (r, g) = (self.nodes(), self.pg_nodes());
            if nodes.iter().all(|n| r.contains(n) && g.contains(n)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The registry scope process's pid.
    pub fn registry_pid(&self) -> &Pid {
        &self.registry.pid
    }

    /// The pg scope process's pid.
    pub fn pg_pid(&self) -> &Pid {
        &self.pg.pid
    }

    /// How many messages to the scope processes were dropped as malformed or hostile.
    pub fn dropped_count(&self) -> u64 {
        self.registry.dropped.load(Ordering::Relaxed) + self.pg.dropped.load(Ordering::Relaxed)
    }

    // ------------------------------------------------------------------------ registry

    /// `syn:register(Scope, Name, Pid, Meta)`: registers (or updates the meta of) `pid`, a
    /// process of any node, under `name`.
    pub async fn register(&self, name: Term, pid: &Pid, meta: Term) -> Result<(), SynError> {
        let req = Request::Write {
            requester: self.node.name().clone(),
            key: name,
            pid: pid.clone(),
            meta: MetaOrFun::Meta(meta),
        };
        check(self.registry.request(req, pid).await?)
    }

    /// `syn:unregister(Scope, Name)`.
    pub async fn unregister(&self, name: &Term) -> Result<(), SynError> {
        let Some(pid) = lock(&self.registry.core).lookup(name).map(|(p, _)| p) else {
            return Err(SynError::Refused(Term::atom("undefined")));
        };
        let req = Request::Remove { requester: self.node.name().clone(), key: name.clone(), pid: pid.clone() };
        check(self.registry.request(req, &pid).await?)
    }

    /// `syn:lookup(Scope, Name)`: the process and its metadata, as this node knows them.
    pub fn lookup(&self, name: &Term) -> Option<(Pid, Term)> {
        let found = lock(&self.registry.core).lookup(name)?;
        // as syn: a local process that exited but whose DOWN is not handled yet is not found
        if self.node.is_local(&found.0) && !self.node.is_alive(&found.0) {
            return None;
        }
        Some(found)
    }

    /// `syn:whereis_name({Scope, Name})`: what `{via, syn, {Scope, Name}}` resolves to.
    pub fn whereis(&self, name: &Term) -> Option<Pid> {
        self.lookup(name).map(|(p, _)| p)
    }

    /// `syn:registry_count(Scope)`.
    pub fn registry_count(&self) -> usize {
        lock(&self.registry.core).count()
    }

    /// The names `pid` is registered under.
    pub fn names_of(&self, pid: &Pid) -> Vec<Term> {
        lock(&self.registry.core).keys_of(pid)
    }

    // ------------------------------------------------------------------------ groups

    /// `syn:join(Scope, Group, Pid, Meta)`.
    pub async fn join_group(&self, group: Term, pid: &Pid, meta: Term) -> Result<(), SynError> {
        let req = Request::Write {
            requester: self.node.name().clone(),
            key: group,
            pid: pid.clone(),
            meta: MetaOrFun::Meta(meta),
        };
        check(self.pg.request(req, pid).await?)
    }

    /// `syn:leave(Scope, Group, Pid)`.
    pub async fn leave_group(&self, group: &Term, pid: &Pid) -> Result<(), SynError> {
        let req = Request::Remove { requester: self.node.name().clone(), key: group.clone(), pid: pid.clone() };
        check(self.pg.request(req, pid).await?)
    }

    /// `syn:members(Scope, Group)`: every member with its metadata, in pid order.
    pub fn members(&self, group: &Term) -> Vec<(Pid, Term)> {
        lock(&self.pg.core).members(group)
    }

    /// `syn:group_names(Scope)`.
    pub fn group_names(&self) -> Vec<Term> {
        lock(&self.pg.core).group_names()
    }

    /// `syn:publish(Scope, Group, Message)`: sends `message` to every member; how many.
    pub fn publish(&self, group: &Term, message: Term) -> usize {
        let members = self.members(group);
        for (pid, _) in &members {
            self.node.send(Dest::Pid(pid.clone()), message.clone());
        }
        members.len()
    }

    /// `syn:multi_call(Scope, Group, Message, Timeout)`: every member gets
    /// `{syn_multi_call, Message, Caller, Meta}`; returns syn's `{Replies, BadReplies}`:
    /// `([((Pid, Meta), Reply)], [(Pid, Meta)])`, bad ones being those that exited or did not
    /// answer within `timeout`.
    pub async fn multi_call(
        &self,
        group: &Term,
        message: Term,
        timeout: Duration,
    ) -> (Vec<((Pid, Term), Term)>, Vec<(Pid, Term)>) {
        let members = self.members(group);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.node.spawn(move |mut p: Process| async move {
            let _ = tx.send(collect_multi_call(&mut p, members, message, timeout).await);
            normal()
        });
        rx.await.unwrap_or_default()
    }
}

/// The caller side of `syn:multi_call/4`: one request per member, each monitored, collected
/// until every member answered, exited, or `timeout` passed.
async fn collect_multi_call(
    p: &mut Process,
    members: Vec<(Pid, Term)>,
    message: Term,
    timeout: Duration,
) -> (Vec<((Pid, Term), Term)>, Vec<(Pid, Term)>) {
    let mut pending: HashMap<Reference, (Pid, Term, Reference)> = HashMap::new();
    for (pid, meta) in members {
        let mref = p.monitor(Dest::Pid(pid.clone()));
        let tag = p.make_ref();
        let call = MultiCall {
            message: message.clone(),
            caller: (p.pid().clone(), Term::Ref(tag.clone())),
            meta: meta.clone(),
        };
        p.send(Dest::Pid(pid.clone()), call.to_term());
        pending.insert(tag, (pid, meta, mref));
    }
    let (mut replies, mut bad) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + timeout;
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let got = p
            .receive_match(Some(left), |m| match m.as_tuple() {
                Some([tag, Term::Ref(r), reply]) if tag.is_atom("syn_multi_call_reply") && pending.contains_key(r) => {
                    Some((r.clone(), Some(reply.clone())))
                }
                Some([tag, Term::Ref(mref), _, _, _]) if tag.is_atom("DOWN") => {
                    pending.iter().find(|(_, (_, _, m))| m == mref).map(|(r, _)| (r.clone(), None))
                }
                _ => None,
            })
            .await;
        let Some((r, reply)) = got else { break };
        if let Some((pid, meta, mref)) = pending.remove(&r) {
            match reply {
                Some(reply) => {
                    p.demonitor(&mref);
                    replies.insert(0, ((pid, meta), reply));
                }
                None => bad.insert(0, (pid, meta)),
            }
        }
    }
    for (_, (pid, meta, mref)) in pending {
        p.demonitor(&mref);
        bad.insert(0, (pid, meta));
    }
    (replies, bad)
}

/// Answers `syn:whereis_name/1` and `syn:lookup/2` over rpc for the scopes this node has
/// joined (as a BEAM node running syn does), so that a caller can resolve
/// `{via, syn, {Scope, Name}}` through an erlnode (`erlnode call --connect`). A scope this node
/// has not joined raises `{invalid_scope, Scope}`, as syn does.
pub fn serve_rpc(node: &Node) {
    fn scope_and_name(args: &[Term]) -> Option<(Atom, Term)> {
        match args {
            [Term::Tuple(t)] => match t.as_slice() {
                [Term::Atom(s), name] | [Term::Atom(s), name, _] => Some((s.clone(), name.clone())),
                _ => None,
            },
            [Term::Atom(s), name] => Some((s.clone(), name.clone())),
            _ => None,
        }
    }
    for (function, arity) in [("whereis_name", 1), ("lookup", 2)] {
        let joined = node.extension_or_insert_with(Joined::default);
        node.rpc().register("syn", function, arity, move |args| {
            let joined = joined.clone();
            async move {
                let Some((scope, name)) = scope_and_name(&args) else {
                    return Err(crate::services::rpc::RpcError::error(Term::atom("function_clause")));
                };
                let Some(syn) = joined.0.lock().await.get(&scope).cloned() else {
                    let reason = Term::Tuple(vec![Term::atom("invalid_scope"), Term::Atom(scope)]);
                    return Err(crate::services::rpc::RpcError::error(reason));
                };
                Ok(match (arity, syn.lookup(&name)) {
                    (_, None) => Term::atom("undefined"),
                    (1, Some((pid, _))) => Term::Pid(pid),
                    (_, Some((pid, meta))) => Term::Tuple(vec![Term::Pid(pid), meta]),
                })
            }
        });
    }
}

/// Answers a `syn:multi_call/4` from a member process (`syn:multi_call_reply/2`).
pub fn multi_call_reply(p: &Process, call: &MultiCall, reply: Term) {
    let (to, msg) = call.reply(reply);
    p.send(Dest::Pid(to), msg);
}

async fn start_proc(node: &Node, kind: Kind, scope: &Atom) -> Result<Arc<ScopeProc>, SynError> {
    let name = kind.process_name(scope);
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<Arc<ScopeProc>>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let span = tracing::info_span!("syn", scope = %scope.as_str(), handler = kind.module());
    let pid = node.spawn(move |p: Process| {
        async move {
            let Ok(sp) = go_rx.await else { return normal() };
            run(p, sp, ready_tx).await
        }
        .instrument(span)
    });
    if !node.register(name.clone(), &pid) {
        node.exit2(node.system_pid(), &pid, Term::atom("kill"));
        return Err(SynError::NameTaken(name));
    }
    // nodeup messages reach the mailbox ahead of anything the new connection brings
    node.monitor_nodes_messages(&pid, true);
    let sp = Arc::new(ScopeProc {
        node: node.clone(),
        kind,
        pid: pid.clone(),
        core: Mutex::new(ScopeCore::new(kind, scope.clone(), pid)),
        monitors: Mutex::new(HashMap::new()),
        dropped: AtomicU64::new(0),
        dropped_log: RateLimit::new(Duration::from_secs(10)),
    });
    let _ = go_tx.send(sp.clone());
    match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
        Ok(Ok(())) => Ok(sp),
        _ => Err(SynError::Stopped),
    }
}

/// The scope process (`syn_gen_scope`'s `gen_server`).
async fn run(mut p: Process, sp: Arc<ScopeProc>, ready: tokio::sync::oneshot::Sender<()>) -> Term {
    let nodes = p.node().nodes();
    sp.with_core(|c| c.start(&nodes));
    let _ = ready.send(());
    loop {
        let msg = p.receive().await;
        on_message(&p, &sp, msg);
    }
}

fn on_message(p: &Process, sp: &ScopeProc, msg: Term) {
    match msg.as_tuple() {
        Some([tag, Term::Tuple(from), req]) if tag.is_atom("$gen_call") => {
            let Some([Term::Pid(pid), reply_tag]) = from.get(..2) else {
                return sp.note_dropped(&SynError::Malformed("a call without {Pid, Tag}"), &msg);
            };
            let from = From { pid: pid.clone(), tag: reply_tag.clone() };
            let node = p.node().clone();
            let reply = sp.with_core(|c| c.handle_call(req, system_time(), |q| node.is_alive(q)));
            if reply.is_atom("undefined") {
                sp.note_dropped(&SynError::Malformed("an unknown call (answered undefined)"), &msg);
            }
            gen_server::reply(p, &from, reply);
        }
        Some([tag, Term::Ref(r), kind, Term::Pid(pid), reason]) if tag.is_atom("DOWN") && kind.is_atom("process") => {
            let ours = {
                let mut m = lock(&sp.monitors);
                if m.get(pid) == Some(r) {
                    m.remove(pid);
                    true
                } else {
                    false
                }
            };
            if ours {
                sp.with_core(|c| c.handle_down(pid, reason));
            }
        }
        Some([tag, Term::Atom(node), Term::List(info)]) if tag.is_atom("nodeup") => {
            let visible = info
                .iter()
                .any(|i| matches!(i.as_tuple(), Some([k, v]) if k.is_atom("node_type") && v.is_atom("visible")));
            if visible {
                sp.with_core(|c| c.nodeup(node));
            }
        }
        Some([tag, ..]) if tag.is_atom("nodedown") => {}
        _ => match PeerMessage::parse(sp.kind, &msg) {
            Ok(Some(m)) => {
                if let Err(e) = sp.with_core(|c| c.handle_peer(m, system_time())) {
                    sp.note_dropped(&e, &msg);
                }
            }
            Ok(None) => sp.note_dropped(&SynError::Malformed("not a syn message"), &msg),
            Err(e) => sp.note_dropped(&e, &msg),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::Atom;

    /// Two Rust nodes in memory cannot talk; one node alone exercises the API against its own
    /// scope processes, as a single-node syn cluster.
    #[tokio::test]
    async fn a_single_node_scope() {
        let node = Node::new_local(Atom::new("solo@localhost"), 4);
        let syn = Syn::join(&node, "users").await.unwrap();
        assert!(Syn::join(&node, "users").await.unwrap().registry_pid() == syn.registry_pid());
        assert!(node.whereis(&Atom::new("syn_registry_users")).is_some());
        assert!(node.whereis(&Atom::new("syn_pg_users")).is_some());
        let worker = node.spawn(|mut p: Process| async move {
            loop {
                let m = p.receive().await;
                if let Some(call) = MultiCall::parse(&m) {
                    multi_call_reply(&p, &call, Term::atom("pong"));
                } else if m.is_atom("stop") {
                    return normal();
                }
            }
        });
        syn.register(Term::binary("w"), &worker, Term::Int(1)).await.unwrap();
        assert_eq!(syn.lookup(&Term::binary("w")), Some((worker.clone(), Term::Int(1))));
        // `other` never answers a multi call
        let other = node.spawn(|mut p: Process| async move {
            while !p.receive().await.is_atom("stop") {}
            normal()
        });
        assert_eq!(
            syn.register(Term::binary("w"), &other, Term::nil()).await,
            Err(SynError::Refused(Term::atom("taken")))
        );
        syn.join_group(Term::atom("g"), &worker, Term::atom("m")).await.unwrap();
        syn.join_group(Term::atom("g"), &other, Term::atom("o")).await.unwrap();
        assert_eq!(syn.members(&Term::atom("g")).len(), 2);
        assert_eq!(syn.publish(&Term::atom("g"), Term::atom("hello")), 2);
        let (replies, bad) = syn.multi_call(&Term::atom("g"), Term::atom("ping"), Duration::from_millis(300)).await;
        assert_eq!(replies, vec![((worker.clone(), Term::atom("m")), Term::atom("pong"))]);
        assert_eq!(bad, vec![(other.clone(), Term::atom("o"))]);
        // exits unregister and leave
        node.send(worker.clone(), Term::atom("stop"));
        node.send(other.clone(), Term::atom("stop"));
        for _ in 0..200 {
            if syn.members(&Term::atom("g")).is_empty() && syn.registry_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(syn.members(&Term::atom("g")).is_empty());
        assert_eq!(syn.lookup(&Term::binary("w")), None);
        assert_eq!(syn.unregister(&Term::binary("w")).await, Err(SynError::Refused(Term::atom("undefined"))));
        assert_eq!(
            syn.leave_group(&Term::atom("g"), &worker).await,
            Err(SynError::Refused(Term::atom("not_in_group")))
        );
        // hostile messages to the scope processes are dropped, counted, never fatal
        for bad in [
            Term::atom("junk"),
            Term::Tuple(vec![Term::atom("3.0"), Term::atom("ack_sync"), Term::Int(1)]),
            Term::Tuple(vec![Term::atom("3.0"), Term::atom("discover"), Term::Pid(syn.registry_pid().clone())]),
        ] {
            node.send(syn.registry_pid().clone(), bad);
        }
        let reply = node
            .call(Dest::Name(Atom::new("syn_registry_users")), Term::atom("what"), Some(Duration::from_secs(5)))
            .await;
        assert_eq!(reply, Ok(Term::atom("undefined")), "an unknown call gets syn's answer");
        assert_eq!(syn.dropped_count(), 4);
        assert!(node.is_alive(syn.registry_pid()));
    }
}
