//! The scope process: feeds [`ScopeState`] its mailbox, `nodeup` events and `DOWN`s, answers
//! the local API's calls, and carries out the effects it returns.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tracing::Instrument;

use super::core::{Effect, ScopeState};
use super::message::PeerMessage;
use super::{PgError, groups_map, pids_term};
use crate::gen_server::{self, From};
use crate::node::{Dest, Node, NodeEvent, Process, normal};
use crate::term::{Atom, Pid, Reference, Term};

/// Spawns the scope process and registers it as `scope` before it runs.
pub(super) fn spawn(node: &Node, scope: Atom) -> Result<Pid, PgError> {
    // subscribe before the first discover goes out, so that no nodeup falls in between
    let events = node.monitor_nodes();
    let (go, ready) = tokio::sync::oneshot::channel::<bool>();
    let name = scope.clone();
    let pid = node.spawn(move |p: Process| async move {
        if ready.await != Ok(true) {
            return normal();
        }
        let span = tracing::info_span!("pg", scope = %name.as_str());
        run(p, name, events).instrument(span).await
    });
    if !node.register(scope.clone(), &pid) {
        let _ = go.send(false);
        return Err(PgError::NameTaken(scope));
    }
    let _ = go.send(true);
    Ok(pid)
}

struct Driver {
    p: Process,
    core: ScopeState,
    /// Monitors of local members and peer scopes, by pid (the core names them by pid).
    monitors: HashMap<Pid, Reference>,
    /// Monitors of subscribers (`monitor_scope`, `monitor`): the reference is the
    /// subscription's.
    subscriptions: HashSet<Reference>,
}

async fn run(p: Process, scope: Atom, mut events: broadcast::Receiver<NodeEvent>) -> Term {
    let core = ScopeState::new(scope, p.pid().clone());
    let mut d = Driver { p, core, monitors: HashMap::new(), subscriptions: HashSet::new() };
    let visible = d.p.node().nodes();
    d.core.start(&visible);
    d.flush();
    let mut events_open = true;
    loop {
        tokio::select! {
            msg = d.p.receive() => d.on_message(msg),
            ev = events.recv(), if events_open => match ev {
                Ok(NodeEvent::Up { node, visible }) => {
                    d.take_downs().await;
                    d.core.handle_nodeup(&node, visible);
                }
                // wait for the DOWN of the peer scope's monitor, as pg does
                Ok(NodeEvent::Down { .. }) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "node events lagged; discovering every visible node again");
                    d.take_downs().await;
                    let visible = d.p.node().nodes();
                    d.core.start(&visible);
                }
                Err(RecvError::Closed) => events_open = false,
            },
        }
        d.flush();
    }
}

impl Driver {
    fn on_message(&mut self, msg: Term) {
        if let Some([tag, Term::Tuple(from), request]) = msg.as_tuple() {
            if tag.is_atom("$gen_call") {
                if let [Term::Pid(pid), reply_tag] = from.as_slice() {
                    let from = From { pid: pid.clone(), tag: reply_tag.clone() };
                    let reply = self.on_call(request, &from);
                    gen_server::reply(&self.p, &from, reply);
                    return;
                }
            }
        }
        if let Some([tag, Term::Ref(r), kind, object, _reason]) = msg.as_tuple() {
            if tag.is_atom("DOWN") && kind.is_atom("process") {
                self.on_down(r, object);
                return;
            }
        }
        match PeerMessage::parse(&msg) {
            Ok(Some(m)) => {
                let hidden = self.p.node().hidden_nodes().contains(&m.peer().node);
                if let Err(e) = self.core.handle_peer(m, hidden) {
                    log_ignored(&e, &msg);
                }
            }
            Ok(None) => tracing::debug!(%msg, "unexpected message ignored"),
            Err(e) => log_ignored(&e, &msg),
        }
    }

    /// Handles every `DOWN` already queued, ahead of other messages. Called before acting on
    /// `nodeup`: node events come on their own channel, while in `pg` `nodeup` is a message
    /// queued behind the `DOWN`s of the lost connection (our runtime delivers those before it
    /// announces the new connection). Without this, a peer scope from the old connection would
    /// still look known after we discover its node again, and a `leave` we then stream to it
    /// would name groups the restarted exchange has not announced: a BEAM scope crashes on that.
    async fn take_downs(&mut self) {
        let is_down = |m: &Term| match m.as_tuple() {
            Some([tag, Term::Ref(r), kind, object, _]) if tag.is_atom("DOWN") && kind.is_atom("process") => {
                Some((r.clone(), object.clone()))
            }
            _ => None,
        };
        while let Some((r, object)) = self.p.receive_match(Some(Duration::ZERO), is_down).await {
            self.on_down(&r, &object);
            self.flush();
        }
    }

    fn on_down(&mut self, r: &Reference, object: &Term) {
        if self.subscriptions.remove(r) {
            self.core.demonitor(r);
            return;
        }
        let Term::Pid(pid) = object else { return };
        if self.monitors.get(pid) == Some(r) {
            self.monitors.remove(pid);
            self.core.handle_down(pid);
        }
    }

    fn on_call(&mut self, request: &Term, from: &From) -> Term {
        let ok = Term::atom("ok");
        match request.as_tuple() {
            Some([op, group, who]) if op.is_atom("join_local") || op.is_atom("leave_local") => {
                let Some(pids) = pid_or_pids(who) else { return error(Term::atom("badarg")) };
                let result = if op.is_atom("join_local") {
                    self.core.join(group.clone(), &pids).map(|()| ok)
                } else {
                    self.core.leave(group, &pids).map(|left| if left { ok } else { Term::atom("not_joined") })
                };
                result.unwrap_or_else(|e| match e {
                    PgError::NotLocal(p) => error(Term::Tuple(vec![Term::atom("nolocal"), Term::Pid(p)])),
                    _ => error(Term::atom("badarg")),
                })
            }
            Some([op, group]) if op.is_atom("get_members") => pids_term(self.core.members(group)),
            Some([op, group]) if op.is_atom("get_local_members") => pids_term(self.core.local_members(group)),
            Some([op, group]) if op.is_atom("monitor") => {
                let r = self.subscribe(&from.pid);
                let members = self.core.monitor_group(r.clone(), from.pid.clone(), group.clone());
                Term::Tuple(vec![Term::Ref(r), pids_term(members)])
            }
            Some([op, Term::Ref(r)]) if op.is_atom("demonitor") => {
                if self.subscriptions.remove(r) {
                    self.core.demonitor(r);
                    self.p.demonitor(r);
                    ok
                } else {
                    Term::atom("false")
                }
            }
            _ if request.is_atom("which_groups") => Term::List(self.core.groups()),
            _ if request.is_atom("which_local_groups") => Term::List(self.core.local_groups()),
            _ if request.is_atom("monitor") => {
                let r = self.subscribe(&from.pid);
                let groups = self.core.monitor_scope(r.clone(), from.pid.clone());
                Term::Tuple(vec![Term::Ref(r), groups_map(groups)])
            }
            _ => {
                tracing::debug!(%request, "unsupported call");
                error(Term::atom("badarg"))
            }
        }
    }

    fn subscribe(&mut self, subscriber: &Pid) -> Reference {
        let r = self.p.monitor(Dest::Pid(subscriber.clone()));
        self.subscriptions.insert(r.clone());
        r
    }

    /// Carries out what the core asked for. Sends to a node that is not connected are dropped
    /// (`pg` sends with `noconnect`): a scope never dials a node by itself.
    fn flush(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Send { to, msg } => self.p.node().send_noconnect(self.p.pid(), to, msg),
                Effect::Monitor(pid) => {
                    let r = self.p.monitor(Dest::Pid(pid.clone()));
                    if let Some(old) = self.monitors.insert(pid, r) {
                        self.p.demonitor(&old);
                    }
                }
                Effect::Demonitor(pid) => {
                    if let Some(r) = self.monitors.remove(&pid) {
                        self.p.demonitor(&r);
                    }
                }
            }
        }
    }
}

fn pid_or_pids(t: &Term) -> Option<Vec<Pid>> {
    match t {
        Term::Pid(p) => Some(vec![p.clone()]),
        Term::List(l) => l.iter().map(|p| p.as_pid().cloned()).collect(),
        _ => None,
    }
}

fn error(reason: Term) -> Term {
    Term::Tuple(vec![Term::atom("error"), reason])
}

fn log_ignored(e: &PgError, msg: &Term) {
    if e.is_benign() {
        tracing::debug!(error = %e, %msg, "pg message ignored");
    } else {
        tracing::warn!(error = %e, %msg, "pg message ignored");
    }
}
