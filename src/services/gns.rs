//! The `global_name_server` process: the driver that runs the sans-IO [`Global`] core inside
//! the node (Kernel `global`). One process, registered as `global_name_server`, whose pid is
//! also the core's locker and registrar; every message to it, every visible nodeup/nodedown
//! (ordered with the messages, as `net_kernel:monitor_nodes/2` delivers them) and every timer
//! goes into the core, and the core's actions are carried out here.
//!
//! The local API ([`GlobalService::register_name`], [`GlobalService::whereis_name`], ...) shares
//! the core through a mutex: queries read it directly; registrations start an operation and
//! wait for its `OpDone`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::global::{self, Action, Config, Global, OpId};
use crate::node::{Dest, GlobalNames, Node, Process, normal};
use crate::term::{Atom, Pid, Term};

/// A message the driver sends itself to wake up and re-read the core's timer.
const WAKE: &str = "$erlnode_global_wake";
/// A message reporting that `Connect(Node)` failed: `{'$erlnode_global_connect_failed', Node}`.
const CONNECT_FAILED: &str = "$erlnode_global_connect_failed";
/// How long a local registration may take (BEAM has no limit; ours fails with `no`).
const OP_TIMEOUT: Duration = Duration::from_secs(120);

/// The core and the operations waiting on it.
struct Shared {
    core: Global,
    waiters: HashMap<OpId, oneshot::Sender<Term>>,
}

/// The handle the node keeps (as an extension) to reach its name server.
pub struct GlobalService {
    node: Node,
    gns: Pid,
    shared: Mutex<Shared>,
}

impl std::fmt::Debug for GlobalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalService").field("gns", &self.gns).finish()
    }
}

impl GlobalNames for GlobalService {
    fn whereis(&self, name: &Term) -> Option<Pid> {
        self.lock().core.whereis(name)
    }
}

impl GlobalService {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds one input to the core and carries out what it asks.
    fn step(&self, input: impl FnOnce(&mut Global)) {
        let actions = {
            let mut sh = self.lock();
            input(&mut sh.core);
            Self::drain(&mut sh)
        };
        for a in actions {
            self.execute(a);
        }
    }

    /// Takes the core's actions; finished operations are answered here, under the lock.
    fn drain(sh: &mut Shared) -> Vec<Action> {
        let mut rest = Vec::new();
        for a in sh.core.drain_actions() {
            match a {
                Action::OpDone { op, result } => {
                    if let Some(w) = sh.waiters.remove(&op) {
                        let _ = w.send(result);
                    }
                }
                other => rest.push(other),
            }
        }
        rest
    }

    fn execute(&self, action: Action) {
        let node = &self.node;
        match action {
            Action::Send { to, msg, connect: true } => node.send_as(&self.gns, to, msg),
            Action::Send { to, msg, connect: false } => node.send_noconnect(&self.gns, to, msg),
            Action::Monitor { target, reference } => node.monitor_with(&self.gns, target, reference),
            Action::Demonitor { reference } => node.demonitor(&self.gns, &reference),
            Action::Exit { pid, reason } => node.exit2(&self.gns, &pid, reason),
            Action::Connect(peer) => {
                let (node, gns) = (node.clone(), self.gns.clone());
                tokio::spawn(async move {
                    if !node.connect(&peer).await {
                        let msg = Term::Tuple(vec![Term::atom(CONNECT_FAILED), Term::Atom(peer)]);
                        node.send(Dest::Pid(gns), msg);
                    }
                });
            }
            Action::Disconnect(peer) => {
                node.disconnect(&peer);
            }
            Action::OpDone { .. } => {}
        }
    }

    /// Starts an operation and waits for its result (`no` if it takes unreasonably long).
    async fn op(&self, start: impl FnOnce(&mut Global) -> OpId) -> Term {
        let (tx, rx) = oneshot::channel();
        let actions = {
            let mut sh = self.lock();
            let op = start(&mut sh.core);
            sh.waiters.insert(op, tx);
            Self::drain(&mut sh)
        };
        for a in actions {
            self.execute(a);
        }
        // the core's timer may have moved (a back-off): let the driver look again
        self.node.send(Dest::Pid(self.gns.clone()), Term::atom(WAKE));
        match tokio::time::timeout(OP_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            _ => Term::atom("no"),
        }
    }

    /// `global:register_name(Name, Pid)`: `true` if registered cluster-wide.
    pub async fn register_name(&self, name: Term, pid: Pid) -> bool {
        self.op(|core| core.register_name(name, pid, global::wire::random_exit_name())).await.is_atom("yes")
    }

    /// `global:re_register_name(Name, Pid)`.
    pub async fn re_register_name(&self, name: Term, pid: Pid) {
        self.op(|core| core.re_register_name(name, pid, global::wire::random_exit_name())).await;
    }

    /// `global:unregister_name(Name)`.
    pub async fn unregister_name(&self, name: Term) {
        self.op(|core| core.unregister_name(name)).await;
    }

    /// `global:whereis_name(Name)`.
    pub fn whereis_name(&self, name: &Term) -> Option<Pid> {
        self.lock().core.whereis(name)
    }

    /// `global:registered_names()`.
    pub fn registered_names(&self) -> Vec<Term> {
        self.lock().core.registered_names()
    }

    /// Nodes this name server has synced with.
    pub fn known_nodes(&self) -> Vec<Atom> {
        self.lock().core.known_nodes()
    }

    /// `true` while a sync session with `node` runs.
    pub fn is_syncing(&self, node: &Atom) -> bool {
        self.lock().core.is_syncing(node)
    }
}

/// Starts the name server of `node` (a visible node) and attaches it to the node.
pub async fn start(node: &Node) -> Arc<GlobalService> {
    let (ready_tx, ready_rx) = oneshot::channel::<Arc<GlobalService>>();
    let n = node.clone();
    node.spawn(move |p: Process| async move {
        let gns = p.pid().clone();
        p.register(Atom::new(global::NAME));
        let refs_node = n.clone();
        let config = Config { node: n.name().clone(), gns_pid: gns.clone(), rng_seed: rand::random() };
        let core = Global::new(config, move || refs_node.make_ref(), Instant::now());
        let service = Arc::new(GlobalService {
            node: n.clone(),
            gns: gns.clone(),
            shared: Mutex::new(Shared { core, waiters: HashMap::new() }),
        });
        n.monitor_nodes_messages(&gns, true);
        let _ = ready_tx.send(service.clone());
        run(service, p).await
    });
    let service = ready_rx.await.expect("global_name_server starts");
    node.set_global_names(service.clone());
    node.set_extension(service.clone());
    service
}

async fn run(service: Arc<GlobalService>, mut p: Process) -> Term {
    loop {
        let timeout = service.lock().core.next_timeout().map(|t| t.saturating_duration_since(Instant::now()));
        let msg = match timeout {
            Some(d) => p.receive_timeout(d).await,
            None => Some(p.receive().await),
        };
        let now = Instant::now();
        let Some(msg) = msg else {
            service.step(|core| core.handle_timeout(now));
            continue;
        };
        if msg.is_atom(WAKE) {
            continue;
        }
        match msg.as_tuple() {
            Some([tag, Term::Atom(peer), info]) if tag.is_atom("nodeup") || tag.is_atom("nodedown") => {
                if !is_visible(info) {
                    continue;
                }
                let (up, peer) = (tag.is_atom("nodeup"), peer.clone());
                service.step(|core| if up { core.handle_nodeup(peer, now) } else { core.handle_nodedown(peer, now) });
            }
            Some([tag, Term::Atom(peer)]) if tag.is_atom(CONNECT_FAILED) => {
                let peer = peer.clone();
                service.step(|core| core.handle_connect_failed(peer, now));
            }
            _ => service.step(|core| {
                if let Err(e) = core.handle_message(msg, now) {
                    tracing::debug!("global: {e}");
                }
            }),
        }
    }
    #[allow(unreachable_code)]
    normal()
}

fn is_visible(info: &Term) -> bool {
    info.as_list().is_some_and(|items| {
        items.iter().any(|i| matches!(i.as_tuple(), Some([k, v]) if k.is_atom("node_type") && v.is_atom("visible")))
    })
}
