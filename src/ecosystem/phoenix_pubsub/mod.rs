//! Phoenix.PubSub from Rust: subscribe Rust processes to the topics of a Phoenix application's
//! PubSub and broadcast into it, as a node running `{Phoenix.PubSub, name: MyApp.PubSub}` does.
//!
//! Follows `phoenix_pubsub` 2.2.0, the default `Phoenix.PubSub.PG2` adapter
//! (`lib/phoenix/pubsub.ex`, `lib/phoenix/pubsub/pg2.ex`), over the pg scope `Phoenix.PubSub`
//! ([`crate::services::pg`]). The wire shapes are in [`message`]; which node serves which pool
//! group is [`view`].
//!
//! ```no_run
//! # async fn demo(node: erlnode::Node, mut p: erlnode::Process) -> Result<(), erlnode::ecosystem::phoenix_pubsub::PubSubError> {
//! use erlnode::ecosystem::phoenix_pubsub::PubSub;
//! use erlnode::term::Term;
//!
//! let pubsub = PubSub::join(&node, "MyApp.PubSub").await?;
//! pubsub.subscribe(p.pid(), "room:lobby")?;
//! // iex> Phoenix.PubSub.broadcast(MyApp.PubSub, "room:lobby", {:new_msg, "hi"})
//! let msg = p.receive().await; // {new_msg, <<"hi">>}
//! pubsub.broadcast("room:lobby", Term::atom("hello_from_rust"));
//! # Ok(()) }
//! ```
//!
//! Semantics, as Phoenix has them:
//! - A subscriber receives each broadcast on its topic once, as a plain message, whichever node
//!   broadcast it; subscribing twice delivers twice; [`PubSub::unsubscribe`] drops all of a
//!   process's subscriptions to the topic; a process that exits is unsubscribed.
//! - [`PubSub::broadcast`] reaches every subscriber on every node; [`PubSub::broadcast_from`]
//!   skips the sender (on its own node, where it lives); [`PubSub::local_broadcast`] stays on
//!   this node; [`PubSub::direct_broadcast`] reaches one node's subscribers.
//! - Broadcasts from one sender reach each subscriber in the order they were made.
//! - `pool_size` is read from the cluster: erlnode serves every pool group any node serves
//!   (a BEAM broadcaster picks one group by its own pid, so a Rust subscriber must be in all),
//!   and broadcasts through a group every serving node has.
//! - A custom dispatcher module (`Phoenix.PubSub.broadcast(ps, topic, msg, MyDispatcher)`)
//!   cannot run on erlnode: Rust subscribers get such messages as the default dispatcher
//!   delivers them.

pub mod message;
pub mod view;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::Instrument;

use self::message::{ForwardToLocal, SCOPE, adapter_name, group_index, group_name, server_atom};
use self::view::{View, pick_group};
use crate::node::{Dest, Node, Process, normal};
use crate::ratelimit::RateLimit;
use crate::services::pg::{self, PgError};
use crate::term::{Atom, Pid, Reference, Term};

/// What went wrong, by whose fault.
#[derive(Clone, Debug, PartialEq)]
pub enum PubSubError {
    /// Local misuse: not a usable PubSub name.
    BadName(String),
    /// Local misuse: only processes of this node can subscribe here.
    NotLocal(Pid),
    /// Local misuse: the PubSub's name is registered by another process of this node.
    NameTaken(Atom),
    /// Peer misbehaved: a message to a pool worker had the wrong shape (what was wrong).
    Malformed(&'static str),
    /// Peer misbehaved: it went past a named limit (the constant's name).
    LimitExceeded(&'static str),
    /// The pg scope failed.
    Pg(PgError),
    /// The PubSub's processes are gone (the node is shutting down).
    Stopped,
}

impl fmt::Display for PubSubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PubSubError::BadName(n) => write!(f, "not a PubSub name: {n:?}"),
            PubSubError::NotLocal(p) => write!(f, "{} is not a process of this node", Term::Pid(p.clone())),
            PubSubError::NameTaken(n) => write!(f, "{} is registered by another process", n.as_str()),
            PubSubError::Malformed(what) => write!(f, "malformed Phoenix.PubSub message: {what}"),
            PubSubError::LimitExceeded(limit) => write!(f, "peer went past {limit}"),
            PubSubError::Pg(e) => write!(f, "pg: {e}"),
            PubSubError::Stopped => write!(f, "the PubSub has stopped"),
        }
    }
}

impl std::error::Error for PubSubError {}

impl From<PgError> for PubSubError {
    fn from(e: PgError) -> PubSubError {
        PubSubError::Pg(e)
    }
}

/// The PubSubs this node has joined, by name.
#[derive(Default)]
struct Joined(tokio::sync::Mutex<HashMap<Atom, PubSub>>);

/// A Phoenix.PubSub this node takes part in. Cheap to clone.
#[derive(Clone)]
pub struct PubSub {
    shared: Arc<Shared>,
}

impl fmt::Debug for PubSub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubSub({})", self.shared.server.as_str())
    }
}

struct Shared {
    node: Node,
    server: Atom,
    adapter: Atom,
    /// The process that watches the pg scope and the subscribers, registered as the PubSub.
    controller: Pid,
    subs: RwLock<Subscriptions>,
    view: RwLock<View>,
    /// Messages to the pool workers that were not `forward_to_local`.
    malformed: AtomicU64,
    malformed_log: RateLimit,
}

#[derive(Default)]
struct Subscriptions {
    by_topic: HashMap<Bytes, Vec<Pid>>,
    /// Each subscriber's monitor (held by the controller) and topics, one entry per subscription.
    by_pid: HashMap<Pid, (Reference, Vec<Bytes>)>,
}

/// How long [`PubSub::join`] waits for the local pg scope.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

impl PubSub {
    /// Joins the PubSub named `name` (`MyApp.PubSub` as Elixir writes it, or
    /// `Elixir.MyApp.PubSub`): starts the pg scope `Phoenix.PubSub` on this node if it is not
    /// running, and one worker per pool group the cluster serves. Joining a name twice gives
    /// the same PubSub.
    pub async fn join(node: &Node, name: &str) -> Result<PubSub, PubSubError> {
        let server = server_atom(name)?;
        let joined = node.extension_or_insert_with(Joined::default);
        let mut joined = joined.0.lock().await;
        if let Some(ps) = joined.get(&server) {
            return Ok(ps.clone());
        }
        let scope = Atom::new(SCOPE);
        if node.whereis(&scope).is_none() {
            match pg::start_scope(node, scope.clone()) {
                Ok(_) | Err(PgError::NameTaken(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (shared_tx, shared_rx) = tokio::sync::oneshot::channel::<Arc<Shared>>();
        let span = tracing::info_span!("phoenix_pubsub", name = %server.as_str());
        let controller = node.spawn(move |p: Process| {
            async move {
                let Ok(shared) = shared_rx.await else { return normal() };
                run_controller(p, shared, ready_tx).await
            }
            .instrument(span)
        });
        let shared = Arc::new(Shared {
            node: node.clone(),
            adapter: adapter_name(&server),
            server: server.clone(),
            controller: controller.clone(),
            subs: RwLock::new(Subscriptions::default()),
            view: RwLock::new(View::new()),
            malformed: AtomicU64::new(0),
            malformed_log: RateLimit::new(Duration::from_secs(10)),
        });
        if !node.register(server.clone(), &controller) {
            node.exit2(node.system_pid(), &controller, Term::atom("kill"));
            return Err(PubSubError::NameTaken(server));
        }
        let _ = shared_tx.send(shared.clone());
        match tokio::time::timeout(JOIN_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(_)) | Err(_) => return Err(PubSubError::Stopped),
        }
        let ps = PubSub { shared };
        joined.insert(server, ps.clone());
        Ok(ps)
    }

    /// The PubSub's name as an atom (`'Elixir.MyApp.PubSub'`).
    pub fn name(&self) -> &Atom {
        &self.shared.server
    }

    /// The pool size served: the highest pool group any node of the cluster serves.
    pub fn pool_size(&self) -> usize {
        read(&self.shared.view).pool_size()
    }

    /// The nodes serving this PubSub (this one included), as the local pg scope knows them.
    pub fn nodes(&self) -> Vec<Atom> {
        read(&self.shared.view).nodes().into_iter().collect()
    }

    /// `true` once this node's workers are members of every pool group the cluster serves,
    /// so that a broadcast from any node reaches this node's subscribers.
    pub fn is_ready(&self) -> bool {
        let view = read(&self.shared.view);
        (1..=view.pool_size()).all(|i| view.serves(i, self.shared.node.name()))
    }

    /// Waits until the PubSub is served on each of `nodes` as far as the local pg scope knows
    /// (their pg sync has arrived); `false` on timeout.
    pub async fn wait_for_nodes(&self, nodes: &[Atom], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let known = read(&self.shared.view).nodes();
            if nodes.iter().all(|n| known.contains(n)) && self.is_ready() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Subscribes the local process `pid` to `topic` (`Phoenix.PubSub.subscribe/2` called by
    /// `pid`). It will receive every message broadcast on the topic, as is.
    pub fn subscribe(&self, pid: &Pid, topic: impl AsRef<[u8]>) -> Result<(), PubSubError> {
        let node = &self.shared.node;
        if !node.is_local(pid) {
            return Err(PubSubError::NotLocal(pid.clone()));
        }
        let topic = Bytes::copy_from_slice(topic.as_ref());
        let mut subs = write(&self.shared.subs);
        let entry = subs.by_pid.entry(pid.clone()).or_insert_with(|| {
            // a pid that is already gone gets an immediate DOWN, which unsubscribes it
            (node.monitor(&self.shared.controller, Dest::Pid(pid.clone())), Vec::new())
        });
        entry.1.push(topic.clone());
        subs.by_topic.entry(topic).or_default().push(pid.clone());
        Ok(())
    }

    /// Drops every subscription of `pid` to `topic` (`Phoenix.PubSub.unsubscribe/2`).
    pub fn unsubscribe(&self, pid: &Pid, topic: impl AsRef<[u8]>) {
        let topic = topic.as_ref();
        let mut subs = write(&self.shared.subs);
        let Some((mref, topics)) = subs.by_pid.get_mut(pid) else { return };
        topics.retain(|t| &t[..] != topic);
        if topics.is_empty() {
            let mref = mref.clone();
            subs.by_pid.remove(pid);
            self.shared.node.demonitor(&self.shared.controller, &mref);
        }
        remove_from_topic(&mut subs.by_topic, topic, pid);
    }

    /// The local subscribers of `topic`, once per subscription.
    pub fn subscribers(&self, topic: impl AsRef<[u8]>) -> Vec<Pid> {
        read(&self.shared.subs).by_topic.get(topic.as_ref()).cloned().unwrap_or_default()
    }

    /// `Phoenix.PubSub.broadcast/3`: every subscriber of `topic` on every node receives
    /// `message`. Broadcasts made through this handle keep their order.
    pub fn broadcast(&self, topic: impl AsRef<[u8]>, message: Term) {
        self.broadcast_as(&self.shared.controller, None, topic.as_ref(), message);
    }

    /// `Phoenix.PubSub.broadcast_from/4`: as [`PubSub::broadcast`], but `from` (a local
    /// process) does not receive it. Broadcasts from one `from` keep their order.
    pub fn broadcast_from(&self, from: &Pid, topic: impl AsRef<[u8]>, message: Term) {
        self.broadcast_as(from, Some(from), topic.as_ref(), message);
    }

    /// `Phoenix.PubSub.local_broadcast/3`: only this node's subscribers.
    pub fn local_broadcast(&self, topic: impl AsRef<[u8]>, message: Term) {
        self.shared.dispatch(topic.as_ref(), &message, None);
    }

    /// `Phoenix.PubSub.local_broadcast_from/4`: only this node's subscribers, except `from`.
    pub fn local_broadcast_from(&self, from: &Pid, topic: impl AsRef<[u8]>, message: Term) {
        self.shared.dispatch(topic.as_ref(), &message, Some(from));
    }

    /// `Phoenix.PubSub.direct_broadcast/4`: only the subscribers on `node` (this node's
    /// through a local broadcast, another's through its pool worker).
    pub fn direct_broadcast(&self, node: &Atom, topic: impl AsRef<[u8]>, message: Term) {
        let topic = topic.as_ref();
        if node == self.shared.node.name() {
            self.shared.dispatch(topic, &message, None);
            return;
        }
        let index = self.group_for(&self.shared.controller);
        let fwd = ForwardToLocal::new(Bytes::copy_from_slice(topic), message).to_term();
        self.shared.node.send(Dest::Remote(group_name(&self.shared.adapter, index), node.clone()), fwd);
    }

    fn group_for(&self, sender: &Pid) -> usize {
        pick_group(sender, read(&self.shared.view).broadcast_pool_size(self.shared.node.name()))
    }

    fn broadcast_as(&self, sender: &Pid, except: Option<&Pid>, topic: &[u8], message: Term) {
        let own = self.shared.node.name();
        let targets = {
            let view = read(&self.shared.view);
            view.remote_members(pick_group(sender, view.broadcast_pool_size(own)), own)
        };
        if !targets.is_empty() {
            let fwd = ForwardToLocal::new(Bytes::copy_from_slice(topic), message.clone()).to_term();
            send_all(&self.shared.node, targets, fwd);
        }
        self.shared.dispatch(topic, &message, except);
    }

    /// How many messages to this node's pool workers were dropped as malformed.
    pub fn malformed_count(&self) -> u64 {
        self.shared.malformed.load(Ordering::Relaxed)
    }
}

/// Sends `msg` to each of `targets`, the last one without a copy.
fn send_all(node: &Node, mut targets: Vec<Pid>, msg: Term) {
    let last = targets.pop();
    for t in targets {
        node.send(Dest::Pid(t), msg.clone());
    }
    if let Some(t) = last {
        node.send(Dest::Pid(t), msg);
    }
}

fn remove_from_topic(by_topic: &mut HashMap<Bytes, Vec<Pid>>, topic: &[u8], pid: &Pid) {
    if let Some(pids) = by_topic.get_mut(topic) {
        pids.retain(|p| p != pid);
        if pids.is_empty() {
            by_topic.remove(topic);
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Delivers `message` to this node's subscribers of `topic`, except `except`
    /// (`Phoenix.PubSub.dispatch/3` of the default dispatcher).
    fn dispatch(&self, topic: &[u8], message: &Term, except: Option<&Pid>) {
        let subs = read(&self.subs);
        let Some(pids) = subs.by_topic.get(topic) else { return };
        for pid in pids {
            if Some(pid) != except {
                self.node.send(Dest::Pid(pid.clone()), message.clone());
            }
        }
    }

    /// A subscriber went down: drop all its subscriptions.
    fn subscriber_down(&self, pid: &Pid, mref: &Reference) {
        let mut subs = write(&self.subs);
        if subs.by_pid.get(pid).is_none_or(|(r, _)| r != mref) {
            return;
        }
        if let Some((_, topics)) = subs.by_pid.remove(pid) {
            for t in topics {
                remove_from_topic(&mut subs.by_topic, &t, pid);
            }
        }
    }

    fn note_malformed(&self, e: &PubSubError) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        if let Some(held) = self.malformed_log.allow(Instant::now()) {
            tracing::warn!(held_back = held, "dropped a message to a pool worker: {e}");
        }
    }
}

/// The controller: follows the pg scope (pool groups come and go with nodes), keeps one worker
/// per pool group, and unsubscribes subscribers that exit.
async fn run_controller(
    mut p: Process,
    shared: Arc<Shared>,
    ready: tokio::sync::oneshot::Sender<Result<(), PubSubError>>,
) -> Term {
    let scope = Atom::new(SCOPE);
    let (scope_ref, groups) = match pg::monitor_scope(&mut p, &scope).await {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return normal();
        }
    };
    let mut too_large_logged = false;
    {
        let mut view = write(&shared.view);
        for (group, pids) in groups {
            apply(&shared, &mut view, &group, &pids, true, &mut too_large_logged);
        }
    }
    let mut workers: Vec<Pid> = Vec::new();
    if let Err(e) = ensure_workers(&mut p, &shared, &mut workers).await {
        let _ = ready.send(Err(e));
        return normal();
    }
    let _ = ready.send(Ok(()));
    loop {
        let msg = p.receive().await;
        match msg.as_tuple() {
            Some([Term::Ref(r), verb, group, Term::List(pids)]) if *r == scope_ref => {
                let pids: Vec<Pid> = pids.iter().filter_map(|t| t.as_pid().cloned()).collect();
                let grew = {
                    let mut view = write(&shared.view);
                    let before = view.pool_size();
                    apply(&shared, &mut view, group, &pids, verb.is_atom("join"), &mut too_large_logged);
                    view.pool_size() > before
                };
                if grew && let Err(e) = ensure_workers(&mut p, &shared, &mut workers).await {
                    tracing::warn!("cannot serve the new pool groups: {e}");
                }
            }
            Some([tag, Term::Ref(mref), _, Term::Pid(pid), _]) if tag.is_atom("DOWN") => {
                shared.subscriber_down(pid, mref);
            }
            _ => tracing::debug!("controller ignored a message"),
        }
    }
}

fn apply(shared: &Shared, view: &mut View, group: &Term, pids: &[Pid], join: bool, too_large_logged: &mut bool) {
    match group_index(&shared.adapter, group) {
        Some(Ok(i)) if join => view.join(i, pids),
        Some(Ok(i)) => view.leave(i, pids),
        Some(Err(e)) if !std::mem::replace(too_large_logged, true) => {
            tracing::warn!("ignoring pool group {group}: {e}");
        }
        Some(Err(_)) | None => {}
    }
}

/// Starts workers for the pool groups the cluster serves that this node does not yet.
async fn ensure_workers(p: &mut Process, shared: &Arc<Shared>, workers: &mut Vec<Pid>) -> Result<(), PubSubError> {
    let scope = Atom::new(SCOPE);
    let want = read(&shared.view).pool_size();
    while workers.len() < want {
        let index = workers.len() + 1;
        let group = group_name(&shared.adapter, index);
        let s = shared.clone();
        let worker = p.node().spawn_link(p.pid(), move |w: Process| run_worker(w, s));
        if !p.node().register(group.clone(), &worker) {
            p.exit(&worker, Term::atom("kill"));
            return Err(PubSubError::NameTaken(group));
        }
        pg::join(p.node(), &scope, Term::Atom(group), vec![worker.clone()]).await?;
        workers.push(worker);
    }
    Ok(())
}

/// A pool worker (`Phoenix.PubSub.PG2Worker`): delivers what other nodes forward to it.
async fn run_worker(mut w: Process, shared: Arc<Shared>) -> Term {
    loop {
        let msg = w.receive().await;
        match ForwardToLocal::parse(msg) {
            Ok(f) => shared.dispatch(&f.topic, &f.message, None),
            Err(e) => shared.note_malformed(&e),
        }
    }
}
