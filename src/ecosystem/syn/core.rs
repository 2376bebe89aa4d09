//! One syn scope process's state (sans-IO): the peer scopes it knows (`nodes_map` in
//! `syn_gen_scope.erl`), and its table (the ETS tables `syn_registry_by_name_S` /
//! `syn_pg_by_name_S` and their by-pid twins). Inputs are peer messages, calls, `nodeup` and
//! `DOWN`s with the time passed in; outputs are [`Effect`]s for the driver.
//!
//! Rules kept from syn 3.4.1 (`syn_registry.erl`, `syn_pg.erl`, `syn_event_handler.erl`):
//! - `sync_register` / `sync_join` from a node not yet discovered are ignored; `ack_sync` is
//!   applied whatever the sender, and a sender not yet known is monitored and sent our own
//!   local entries back.
//! - Registry sync: unknown name → add; same pid → new meta and time; a name held by a pid of
//!   *this* node → conflict resolution (newer time wins, a tie goes to the larger pid; the
//!   loser is killed with `{syn_resolve_kill, Name, Meta}`); a name held by a pid of a third
//!   node → replaced only by a newer time.
//! - Pg sync: unknown (group, pid) → add; known → replaced only by a newer time.
//! - The `DOWN` of a peer scope purges its node's entries; the `DOWN` of a local process
//!   removes its entries and broadcasts `sync_unregister` / `sync_leave` with the exit reason.
//!
//! Two departures, both against hostile peers: entries an `ack_sync` claims for a pid that is
//! not on the sender's node are dropped (syn would store them), and a peer cannot unregister,
//! nor make leave, a process of this node (only this node's scope process broadcasts those).
//! Entries learnt from peers are bounded by [`MAX_REMOTE_ENTRIES`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::SynError;
use super::message::{Entry, Kind, MetaOrFun, PeerMessage, Request};
use crate::node::Dest;
use crate::term::{Atom, Pid, Term};

/// The most entries this scope process keeps for processes of other nodes. Past it, new
/// remote entries are dropped (and logged by the driver).
pub const MAX_REMOTE_ENTRIES: usize = 1_000_000;

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send `msg` to `to` (a peer scope process `{Name, Node}`, or a local process).
    Send {
        /// Where.
        to: Dest,
        /// What.
        msg: Term,
    },
    /// Monitor this process (a local entry's, or a peer scope); report its `DOWN`.
    Monitor(Pid),
    /// Stop monitoring this process.
    Demonitor(Pid),
    /// `exit(Pid, Reason)` from the scope process (the loser of a conflict).
    Kill {
        /// The process.
        pid: Pid,
        /// `{syn_resolve_kill, Name, Meta}`.
        reason: Term,
    },
}

#[derive(Clone, Debug, PartialEq)]
struct Value {
    meta: Term,
    time: i64,
}

/// A scope process's state. See the module docs.
#[derive(Debug)]
pub struct ScopeCore {
    kind: Kind,
    scope: Atom,
    node: Atom,
    me: Pid,
    name: Atom,
    /// Known peer scopes by node (`nodes_map`).
    peers: BTreeMap<Atom, Pid>,
    /// Registry: name → (pid, value).
    names: BTreeMap<Term, (Pid, Value)>,
    /// Pg: group → pid → value.
    groups: BTreeMap<Term, BTreeMap<Pid, Value>>,
    /// Keys (names or groups) per pid.
    by_pid: HashMap<Pid, BTreeSet<Term>>,
    remote_entries: usize,
    effects: Vec<Effect>,
}

fn t(elems: Vec<Term>) -> Term {
    Term::Tuple(elems)
}

fn error(reason: &str) -> Term {
    t(vec![Term::atom("error"), Term::atom(reason)])
}

impl ScopeCore {
    /// A scope process of `kind` for `scope`, running as `me` on `me.node`.
    pub fn new(kind: Kind, scope: Atom, me: Pid) -> ScopeCore {
        ScopeCore {
            kind,
            name: kind.process_name(&scope),
            scope,
            node: me.node.clone(),
            me,
            peers: BTreeMap::new(),
            names: BTreeMap::new(),
            groups: BTreeMap::new(),
            by_pid: HashMap::new(),
            remote_entries: 0,
            effects: Vec::new(),
        }
    }

    /// The effects produced so far, oldest first.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// The scope's name.
    pub fn scope(&self) -> &Atom {
        &self.scope
    }

    /// The nodes whose scope process is known (`syn:subcluster_nodes/2`).
    pub fn nodes(&self) -> Vec<Atom> {
        self.peers.keys().cloned().collect()
    }

    /// The scope process of `node`, if known.
    pub fn peer(&self, node: &Atom) -> Option<&Pid> {
        self.peers.get(node)
    }

    /// `handle_continue(after_init)`: discover every connected (visible) node.
    pub fn start(&mut self, nodes: &[Atom]) {
        for n in nodes {
            self.nodeup(n);
        }
    }

    /// `{nodeup, Node}`: `{'3.0', discover, Self}` to the node's scope process.
    pub fn nodeup(&mut self, node: &Atom) {
        if *node != self.node {
            let msg = PeerMessage::Discover(self.me.clone()).to_term(self.kind);
            self.send_to_node(node, msg);
        }
    }

    fn send_to_node(&mut self, node: &Atom, msg: Term) {
        self.effects.push(Effect::Send { to: Dest::Remote(self.name.clone(), node.clone()), msg });
    }

    fn broadcast(&mut self, msg: Term, except: Option<&Atom>) {
        let nodes: Vec<Atom> = self.peers.keys().filter(|n| Some(*n) != except).cloned().collect();
        for n in nodes {
            self.send_to_node(&n, msg.clone());
        }
    }

    /// This node's entries, as an `ack_sync` carries them.
    pub fn local_entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for (pid, keys) in &self.by_pid {
            if pid.node != self.node {
                continue;
            }
            for key in keys {
                if let Some(v) = self.value(key, pid) {
                    out.push(Entry { key: key.clone(), pid: pid.clone(), meta: v.meta.clone(), time: v.time });
                }
            }
        }
        out
    }

    fn value(&self, key: &Term, pid: &Pid) -> Option<&Value> {
        match self.kind {
            Kind::Registry => self.names.get(key).filter(|(p, _)| p == pid).map(|(_, v)| v),
            Kind::Pg => self.groups.get(key).and_then(|m| m.get(pid)),
        }
    }

    /// Registry: who holds `name`, with its metadata.
    pub fn lookup(&self, name: &Term) -> Option<(Pid, Term)> {
        self.names.get(name).map(|(p, v)| (p.clone(), v.meta.clone()))
    }

    /// Registry: how many names (of every node).
    pub fn count(&self) -> usize {
        match self.kind {
            Kind::Registry => self.names.len(),
            Kind::Pg => self.groups.len(),
        }
    }

    /// Pg: the members of `group` with their metadata, in pid order.
    pub fn members(&self, group: &Term) -> Vec<(Pid, Term)> {
        self.groups.get(group).map(|m| m.iter().map(|(p, v)| (p.clone(), v.meta.clone())).collect()).unwrap_or_default()
    }

    /// Pg: the groups that have a member.
    pub fn group_names(&self) -> Vec<Term> {
        self.groups.keys().cloned().collect()
    }

    /// The keys (names or groups) `pid` has here.
    pub fn keys_of(&self, pid: &Pid) -> Vec<Term> {
        self.by_pid.get(pid).map(|k| k.iter().cloned().collect()).unwrap_or_default()
    }

    fn insert(&mut self, key: Term, pid: Pid, meta: Term, time: i64) -> Result<(), SynError> {
        let remote = pid.node != self.node;
        let is_new = self.value(&key, &pid).is_none();
        if remote && is_new {
            if self.remote_entries >= MAX_REMOTE_ENTRIES {
                return Err(SynError::LimitExceeded("MAX_REMOTE_ENTRIES"));
            }
            self.remote_entries += 1;
        }
        let v = Value { meta, time };
        match self.kind {
            Kind::Registry => {
                if let Some((old, _)) = self.names.insert(key.clone(), (pid.clone(), v))
                    && old != pid
                {
                    self.forget_key(&old, &key);
                }
            }
            Kind::Pg => {
                self.groups.entry(key.clone()).or_default().insert(pid.clone(), v);
            }
        }
        self.by_pid.entry(pid).or_default().insert(key);
        Ok(())
    }

    fn forget_key(&mut self, pid: &Pid, key: &Term) {
        if let Some(keys) = self.by_pid.get_mut(pid) {
            if keys.remove(key) && pid.node != self.node {
                self.remote_entries = self.remote_entries.saturating_sub(1);
            }
            if keys.is_empty() {
                self.by_pid.remove(pid);
                if pid.node == self.node {
                    self.effects.push(Effect::Demonitor(pid.clone()));
                }
            }
        }
    }

    /// Removes (key, pid); the removed metadata.
    fn remove(&mut self, key: &Term, pid: &Pid) -> Option<Term> {
        let meta = match self.kind {
            Kind::Registry => match self.names.get(key) {
                Some((p, _)) if p == pid => self.names.remove(key).map(|(_, v)| v.meta),
                _ => None,
            },
            Kind::Pg => {
                let m = self.groups.get_mut(key)?;
                let v = m.remove(pid);
                if m.is_empty() {
                    self.groups.remove(key);
                }
                v.map(|v| v.meta)
            }
        }?;
        self.forget_key(pid, key);
        Some(meta)
    }

    /// A message from a peer scope process; `now` is `erlang:system_time()` here.
    pub fn handle_peer(&mut self, msg: PeerMessage, now: i64) -> Result<(), SynError> {
        match msg {
            PeerMessage::Discover(peer) => {
                if peer.node == self.node {
                    return Err(SynError::LocalPeer(peer));
                }
                let ack = PeerMessage::AckSync(self.me.clone(), self.local_entries()).to_term(self.kind);
                self.send_to_node(&peer.node, ack);
                self.learn_peer(peer);
                Ok(())
            }
            PeerMessage::AckSync(peer, entries) => {
                if peer.node == self.node {
                    return Err(SynError::LocalPeer(peer));
                }
                let mut first_err = None;
                for e in entries {
                    if e.pid.node != peer.node {
                        first_err.get_or_insert(SynError::ForeignEntry { peer: peer.clone(), pid: e.pid });
                        continue;
                    }
                    let reason = t(vec![
                        Term::atom("syn_remote_scope_node_up"),
                        Term::Atom(self.scope.clone()),
                        Term::Atom(peer.node.clone()),
                    ]);
                    if let Err(err) = self.sync(e, reason, now) {
                        first_err.get_or_insert(err);
                    }
                }
                if !self.peers.contains_key(&peer.node) {
                    let ack = PeerMessage::AckSync(self.me.clone(), self.local_entries()).to_term(self.kind);
                    self.send_to_node(&peer.node, ack);
                    self.learn_peer(peer);
                }
                first_err.map_or(Ok(()), Err)
            }
            PeerMessage::Sync(e, reason) => {
                if !self.peers.contains_key(&e.pid.node) {
                    // node not yet discovered (ack_sync not yet received): syn ignores it
                    return Ok(());
                }
                self.sync(e, reason, now)
            }
            PeerMessage::Unsync(key, pid, _meta, _reason) => {
                if pid.node == self.node {
                    return Err(SynError::ForeignEntry { peer: self.me.clone(), pid });
                }
                self.remove(&key, &pid);
                Ok(())
            }
        }
    }

    fn learn_peer(&mut self, peer: Pid) {
        if !self.peers.contains_key(&peer.node) {
            self.peers.insert(peer.node.clone(), peer.clone());
            self.effects.push(Effect::Monitor(peer));
        }
    }

    fn sync(&mut self, e: Entry, reason: Term, now: i64) -> Result<(), SynError> {
        match self.kind {
            Kind::Registry => self.registry_sync(e, reason, now),
            Kind::Pg => match self.groups.get(&e.key).and_then(|m| m.get(&e.pid)) {
                Some(v) if e.time <= v.time => Ok(()),
                _ => self.insert(e.key, e.pid, e.meta, e.time),
            },
        }
    }

    /// `syn_registry:handle_registry_sync/6`.
    fn registry_sync(&mut self, e: Entry, _reason: Term, now: i64) -> Result<(), SynError> {
        let Some((held_by, held)) = self.names.get(&e.key).cloned() else {
            return self.insert(e.key, e.pid, e.meta, e.time);
        };
        if held_by == e.pid {
            return self.insert(e.key, e.pid, e.meta, e.time);
        }
        if held_by.node == self.node {
            self.resolve_conflict(e, held_by, held, now);
            return Ok(());
        }
        if held.time < e.time {
            self.remove(&e.key, &held_by);
            return self.insert(e.key, e.pid, e.meta, e.time);
        }
        Ok(())
    }

    /// `syn_registry:resolve_conflict/5` with `syn_event_handler`'s default rule.
    fn resolve_conflict(&mut self, e: Entry, local: Pid, held: Value, now: i64) {
        let keep_remote = match e.time.cmp(&held.time) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => e.pid > local,
        };
        let conflict = Term::atom("syn_conflict_resolution");
        if keep_remote {
            let name = e.key.clone();
            self.remove(&name, &local);
            // over the limit, the name is just gone here; the remote node keeps it
            let _ = self.insert(e.key, e.pid, e.meta, e.time);
            let reason = t(vec![Term::atom("syn_resolve_kill"), name.clone(), held.meta.clone()]);
            self.effects.push(Effect::Kill { pid: local.clone(), reason });
            let msg = PeerMessage::Unsync(name, local, held.meta, conflict).to_term(self.kind);
            self.broadcast(msg, None);
        } else {
            if let Some((_, v)) = self.names.get_mut(&e.key) {
                v.time = now;
            }
            let entry = Entry { key: e.key, pid: local, meta: held.meta, time: now };
            let msg = PeerMessage::Sync(entry, conflict).to_term(self.kind);
            self.broadcast(msg, None);
        }
    }

    /// The `DOWN` of a monitored process: a peer scope (purge its node) or a local process
    /// with entries (remove them, broadcast with `reason`).
    pub fn handle_down(&mut self, pid: &Pid, reason: &Term) {
        if pid.node != self.node {
            if self.peers.get(&pid.node) == Some(pid) {
                self.peers.remove(&pid.node);
                self.purge(&pid.node.clone());
            }
            return;
        }
        for key in self.keys_of(pid) {
            if let Some(meta) = self.remove(&key, pid) {
                let msg = PeerMessage::Unsync(key, pid.clone(), meta, reason.clone()).to_term(self.kind);
                self.broadcast(msg, None);
            }
        }
    }

    fn purge(&mut self, node: &Atom) {
        let pids: Vec<Pid> = self.by_pid.keys().filter(|p| p.node == *node).cloned().collect();
        for pid in pids {
            for key in self.keys_of(&pid) {
                self.remove(&key, &pid);
            }
        }
    }

    /// A `gen_server:call` to the scope process. `alive` says whether a local pid is alive
    /// (`is_process_alive/1`); the reply is syn's.
    pub fn handle_call(&mut self, req: &Term, now: i64, alive: impl Fn(&Pid) -> bool) -> Term {
        match Request::parse(self.kind, req) {
            Some(Request::SubclusterNodes) => Term::List(self.nodes().into_iter().map(Term::Atom).collect()),
            Some(Request::Write { requester, key, pid, meta }) => {
                if pid.node != self.node || !alive(&pid) {
                    return error("not_alive");
                }
                self.write(requester, key, pid, meta, now)
            }
            Some(Request::Remove { requester, key, pid }) => self.remove_call(requester, key, pid),
            None => Term::atom("undefined"),
        }
    }

    fn write(&mut self, requester: Atom, key: Term, pid: Pid, meta: MetaOrFun, now: i64) -> Term {
        let current = match self.kind {
            Kind::Registry => match self.names.get(&key) {
                Some((p, _)) if *p != pid => return error("taken"),
                other => other.map(|(_, v)| v.meta.clone()),
            },
            Kind::Pg => self.value(&key, &pid).map(|v| v.meta.clone()),
        };
        let meta = match (meta, &current) {
            (MetaOrFun::Fun(_), None) => return error("undefined"),
            (MetaOrFun::Fun(f), Some(_)) => {
                // a BEAM fun cannot run here: raised in the caller, as a failing fun would be
                let reason = t(vec![Term::atom("erlnode_cannot_apply_fun"), f]);
                return t(vec![Term::atom("raise"), Term::atom("error"), reason, Term::nil()]);
            }
            (MetaOrFun::Meta(m), Some(c)) if m == *c => return t(vec![Term::atom("noop"), m]),
            (MetaOrFun::Meta(m), _) => m,
        };
        let first_for_pid = !self.by_pid.contains_key(&pid);
        let callback = match (self.kind, current.is_some()) {
            (Kind::Registry, false) => "on_process_registered",
            (Kind::Registry, true) => "on_registry_process_updated",
            (Kind::Pg, false) => "on_process_joined",
            (Kind::Pg, true) => "on_group_process_updated",
        };
        // local entries are not bounded by MAX_REMOTE_ENTRIES
        let _ = self.insert(key.clone(), pid.clone(), meta.clone(), now);
        if first_for_pid {
            self.effects.push(Effect::Monitor(pid.clone()));
        }
        let entry = Entry { key, pid, meta: meta.clone(), time: now };
        self.broadcast(PeerMessage::Sync(entry, Term::atom("normal")).to_term(self.kind), Some(&requester));
        let (by_name, by_pid) = self.kind.table_names(&self.scope);
        let prev = current.unwrap_or_else(|| Term::atom("undefined"));
        t(vec![
            Term::atom("ok"),
            t(vec![Term::atom(callback), prev, meta, Term::Int(now), Term::Atom(by_name), Term::Atom(by_pid)]),
        ])
    }

    fn remove_call(&mut self, requester: Atom, key: Term, pid: Pid) -> Term {
        let (_, by_pid) = self.kind.table_names(&self.scope);
        match self.kind {
            Kind::Registry => match self.names.get(&key) {
                None => error("undefined"),
                Some((p, _)) if *p != pid => error("race_condition"),
                Some(_) => {
                    let meta = self.remove(&key, &pid).unwrap_or_else(Term::nil);
                    let msg = PeerMessage::Unsync(key, pid, meta, Term::atom("normal")).to_term(self.kind);
                    self.broadcast(msg, Some(&requester));
                    t(vec![Term::atom("ok"), Term::Atom(by_pid)])
                }
            },
            Kind::Pg => match self.remove(&key, &pid) {
                None => error("not_in_group"),
                Some(meta) => {
                    let msg = PeerMessage::Unsync(key, pid, meta.clone(), Term::atom("normal")).to_term(self.kind);
                    self.broadcast(msg, Some(&requester));
                    t(vec![Term::atom("ok"), t(vec![meta, Term::Atom(by_pid)])])
                }
            },
        }
    }

    /// Applies the reply of a write to a scope process on another node, as syn's client does
    /// (`add_to_local_table` on the caller's node, so a lookup right after sees it).
    pub fn apply_remote_write(&mut self, key: Term, pid: Pid, meta: Term, time: i64) -> Result<(), SynError> {
        self.insert(key, pid, meta, time)
    }

    /// Applies a successful remote remove, as syn's client does.
    pub fn apply_remote_remove(&mut self, key: &Term, pid: &Pid) {
        self.remove(key, pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(node: &str, id: u32) -> Pid {
        Pid { node: Atom::new(node), id, serial: 0, creation: 1 }
    }

    fn core(kind: Kind) -> ScopeCore {
        ScopeCore::new(kind, Atom::new("users"), pid("rust@h", 1))
    }

    fn sends(effects: &[Effect]) -> Vec<(String, Term)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { to: Dest::Remote(name, node), msg } => {
                    Some((format!("{}@{}", name.as_str(), node.as_str()), msg.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn call(c: &mut ScopeCore, req: Request, now: i64) -> Term {
        let req = req.to_term(c.kind);
        c.handle_call(&req, now, |_| true)
    }

    fn write(kind: Kind, key: &str, p: &Pid, meta: Term) -> Request {
        let _ = kind;
        Request::Write {
            requester: Atom::new("rust@h"),
            key: Term::atom(key),
            pid: p.clone(),
            meta: MetaOrFun::Meta(meta),
        }
    }

    #[test]
    fn discover_ack_sync_and_broadcasts() {
        let mut c = core(Kind::Registry);
        let local = pid("rust@h", 10);
        assert_eq!(
            call(&mut c, write(Kind::Registry, "svc", &local, Term::Int(1)), 100),
            Term::Tuple(vec![
                Term::atom("ok"),
                Term::Tuple(vec![
                    Term::atom("on_process_registered"),
                    Term::atom("undefined"),
                    Term::Int(1),
                    Term::Int(100),
                    Term::atom("syn_registry_by_name_users"),
                    Term::atom("syn_registry_by_pid_users"),
                ])
            ])
        );
        assert_eq!(c.take_effects(), vec![Effect::Monitor(local.clone())], "no peers yet: nothing broadcast");
        // a peer discovers us: ack_sync with our local entry, monitor the peer scope
        let peer = pid("a@h", 80);
        c.handle_peer(PeerMessage::Discover(peer.clone()), 200).unwrap();
        let fx = c.take_effects();
        let entry = Entry { key: Term::atom("svc"), pid: local.clone(), meta: Term::Int(1), time: 100 };
        assert_eq!(
            sends(&fx),
            vec![(
                "syn_registry_users@a@h".into(),
                PeerMessage::AckSync(c.me.clone(), vec![entry]).to_term(Kind::Registry)
            )]
        );
        assert!(fx.contains(&Effect::Monitor(peer.clone())));
        // its ack_sync: stored; already known, so no ack back
        let theirs = Entry { key: Term::atom("theirs"), pid: pid("a@h", 5), meta: Term::nil(), time: 50 };
        c.handle_peer(PeerMessage::AckSync(peer.clone(), vec![theirs]), 300).unwrap();
        assert!(c.take_effects().is_empty());
        assert_eq!(c.lookup(&Term::atom("theirs")), Some((pid("a@h", 5), Term::nil())));
        // re-registering with the same meta is a noop; a new meta is broadcast except to the requester
        assert_eq!(
            call(&mut c, write(Kind::Registry, "svc", &local, Term::Int(1)), 400),
            Term::Tuple(vec![Term::atom("noop"), Term::Int(1)])
        );
        let req = Request::Write {
            requester: Atom::new("a@h"),
            key: Term::atom("svc"),
            pid: local.clone(),
            meta: MetaOrFun::Meta(Term::Int(2)),
        };
        call(&mut c, req, 500);
        assert!(sends(&c.take_effects()).is_empty(), "the requester is the only peer");
        call(&mut c, write(Kind::Registry, "svc2", &local, Term::Int(3)), 600);
        let fx = c.take_effects();
        assert_eq!(sends(&fx).len(), 1);
        assert!(!fx.iter().any(|e| matches!(e, Effect::Monitor(_))), "one monitor per pid");
        // taken by someone else; not alive; unknown call
        assert_eq!(call(&mut c, write(Kind::Registry, "theirs", &local, Term::nil()), 700), error("taken"));
        let req = write(Kind::Registry, "x", &local, Term::nil()).to_term(Kind::Registry);
        assert_eq!(c.handle_call(&req, 1, |_| false), error("not_alive"));
        assert_eq!(c.handle_call(&Term::atom("what"), 1, |_| true), Term::atom("undefined"));
        // the local process dies: both names go, broadcast with the reason
        c.handle_down(&local, &Term::atom("killed"));
        let fx = c.take_effects();
        assert_eq!(sends(&fx).len(), 2);
        assert!(fx.contains(&Effect::Demonitor(local.clone())));
        assert_eq!(c.lookup(&Term::atom("svc")), None);
        // the peer scope goes down: its entries are purged
        c.handle_down(&peer, &Term::atom("noconnection"));
        assert_eq!(c.lookup(&Term::atom("theirs")), None);
        assert!(c.nodes().is_empty());
    }

    #[test]
    fn sync_from_an_unknown_node_is_ignored_and_foreign_entries_dropped() {
        let mut c = core(Kind::Registry);
        let e = Entry { key: Term::atom("n"), pid: pid("a@h", 5), meta: Term::nil(), time: 1 };
        c.handle_peer(PeerMessage::Sync(e.clone(), Term::atom("normal")), 1).unwrap();
        assert_eq!(c.count(), 0);
        let liar = pid("b@h", 9);
        let err = c.handle_peer(PeerMessage::AckSync(liar.clone(), vec![e]), 1).unwrap_err();
        assert!(matches!(err, SynError::ForeignEntry { .. }));
        assert_eq!(c.count(), 0);
        assert!(c.nodes().contains(&Atom::new("b@h")), "the sender is still a peer");
        // a peer cannot unregister a local process
        let local = pid("rust@h", 3);
        call(&mut c, write(Kind::Registry, "mine", &local, Term::nil()), 5);
        let unsync = PeerMessage::Unsync(Term::atom("mine"), local.clone(), Term::nil(), Term::atom("normal"));
        assert!(c.handle_peer(unsync, 6).is_err());
        assert_eq!(c.lookup(&Term::atom("mine")).map(|x| x.0), Some(local));
    }

    #[test]
    fn conflicts_resolve_as_syn_does() {
        // newer remote time wins: local loser killed, sync_unregister for it to all
        let mut c = core(Kind::Registry);
        let local = pid("rust@h", 10);
        let peer = pid("a@h", 80);
        c.handle_peer(PeerMessage::AckSync(peer.clone(), vec![]), 0).unwrap();
        call(&mut c, write(Kind::Registry, "n", &local, Term::atom("lm")), 100);
        c.take_effects();
        let remote = Entry { key: Term::atom("n"), pid: pid("a@h", 5), meta: Term::atom("rm"), time: 200 };
        c.handle_peer(PeerMessage::Sync(remote.clone(), Term::atom("normal")), 300).unwrap();
        let fx = c.take_effects();
        let kill = Term::Tuple(vec![Term::atom("syn_resolve_kill"), Term::atom("n"), Term::atom("lm")]);
        assert!(fx.contains(&Effect::Kill { pid: local.clone(), reason: kill }), "{fx:?}");
        assert!(fx.contains(&Effect::Demonitor(local.clone())));
        let unsync = PeerMessage::Unsync(
            Term::atom("n"),
            local.clone(),
            Term::atom("lm"),
            Term::atom("syn_conflict_resolution"),
        );
        assert_eq!(sends(&fx), vec![("syn_registry_users@a@h".into(), unsync.to_term(Kind::Registry))]);
        assert_eq!(c.lookup(&Term::atom("n")), Some((pid("a@h", 5), Term::atom("rm"))));

        // older remote time loses: keep local, re-broadcast it with the resolve time
        let mut c = core(Kind::Registry);
        c.handle_peer(PeerMessage::AckSync(peer.clone(), vec![]), 0).unwrap();
        call(&mut c, write(Kind::Registry, "n", &local, Term::atom("lm")), 100);
        c.take_effects();
        let old = Entry { time: 50, ..remote.clone() };
        c.handle_peer(PeerMessage::Sync(old, Term::atom("normal")), 300).unwrap();
        let fx = c.take_effects();
        assert!(!fx.iter().any(|e| matches!(e, Effect::Kill { .. })));
        let keep = Entry { key: Term::atom("n"), pid: local.clone(), meta: Term::atom("lm"), time: 300 };
        let sync = PeerMessage::Sync(keep, Term::atom("syn_conflict_resolution"));
        assert_eq!(sends(&fx), vec![("syn_registry_users@a@h".into(), sync.to_term(Kind::Registry))]);

        // a tie goes to the larger pid (BEAM order: serial, then number, then node)
        for (remote_id, remote_wins) in [(11, true), (9, false)] {
            let mut c = core(Kind::Registry);
            c.handle_peer(PeerMessage::AckSync(peer.clone(), vec![]), 0).unwrap();
            call(&mut c, write(Kind::Registry, "n", &local, Term::atom("lm")), 100);
            let tie = Entry { pid: pid("a@h", remote_id), time: 100, ..remote.clone() };
            c.handle_peer(PeerMessage::Sync(tie, Term::atom("normal")), 300).unwrap();
            let killed = c.take_effects().iter().any(|e| matches!(e, Effect::Kill { .. }));
            assert_eq!(killed, remote_wins, "remote pid id {remote_id}");
        }

        // between two other nodes: only a newer time replaces
        let mut c = core(Kind::Registry);
        let b = pid("b@h", 81);
        c.handle_peer(PeerMessage::AckSync(peer.clone(), vec![remote.clone()]), 0).unwrap();
        c.handle_peer(PeerMessage::AckSync(b, vec![]), 0).unwrap();
        let older = Entry { pid: pid("b@h", 7), time: 150, ..remote.clone() };
        c.handle_peer(PeerMessage::Sync(older.clone(), Term::atom("normal")), 1).unwrap();
        assert_eq!(c.lookup(&Term::atom("n")).unwrap().0, pid("a@h", 5));
        c.handle_peer(PeerMessage::Sync(Entry { time: 250, ..older }, Term::atom("normal")), 1).unwrap();
        assert_eq!(c.lookup(&Term::atom("n")).unwrap().0, pid("b@h", 7));
    }

    #[test]
    fn groups_join_leave_and_replies() {
        let mut c = core(Kind::Pg);
        let (p1, p2) = (pid("rust@h", 10), pid("rust@h", 11));
        call(&mut c, write(Kind::Pg, "g", &p1, Term::atom("m1")), 1);
        let r = call(&mut c, write(Kind::Pg, "g", &p2, Term::atom("m2")), 2);
        assert_eq!(r.as_tuple().unwrap()[1].as_tuple().unwrap()[0], Term::atom("on_process_joined"));
        let r = call(&mut c, write(Kind::Pg, "g", &p2, Term::atom("m3")), 3);
        assert_eq!(r.as_tuple().unwrap()[1].as_tuple().unwrap()[0], Term::atom("on_group_process_updated"));
        assert_eq!(c.members(&Term::atom("g")), vec![(p1.clone(), Term::atom("m1")), (p2.clone(), Term::atom("m3"))]);
        let leave = Request::Remove { requester: Atom::new("rust@h"), key: Term::atom("g"), pid: p1.clone() };
        assert_eq!(
            call(&mut c, leave.clone(), 4),
            Term::Tuple(vec![Term::atom("ok"), Term::Tuple(vec![Term::atom("m1"), Term::atom("syn_pg_by_pid_users")])])
        );
        assert_eq!(call(&mut c, leave, 5), error("not_in_group"));
        // a remote member: newer time only
        let peer = pid("a@h", 80);
        let e = Entry { key: Term::atom("g"), pid: pid("a@h", 3), meta: Term::atom("r1"), time: 10 };
        c.handle_peer(PeerMessage::AckSync(peer.clone(), vec![e.clone()]), 6).unwrap();
        c.handle_peer(PeerMessage::Sync(Entry { meta: Term::atom("old"), time: 5, ..e.clone() }, Term::nil()), 7)
            .unwrap();
        assert_eq!(c.members(&Term::atom("g")).len(), 2);
        assert!(c.members(&Term::atom("g")).contains(&(pid("a@h", 3), Term::atom("r1"))));
        c.handle_peer(PeerMessage::Unsync(Term::atom("g"), pid("a@h", 3), Term::nil(), Term::atom("normal")), 8)
            .unwrap();
        assert_eq!(c.members(&Term::atom("g")), vec![(p2.clone(), Term::atom("m3"))]);
        // a fun from BEAM cannot run here: raised in the caller
        let f = Term::ExportFun(Box::new(crate::term::ExportFun {
            module: Atom::new("m"),
            function: Atom::new("f"),
            arity: 1,
        }));
        let req =
            Request::Write { requester: Atom::new("a@h"), key: Term::atom("g"), pid: p2, meta: MetaOrFun::Fun(f) };
        assert_eq!(call(&mut c, req, 9).as_tuple().unwrap()[0], Term::atom("raise"));
    }

    #[test]
    fn remote_entries_are_bounded() {
        let mut c = core(Kind::Pg);
        c.remote_entries = MAX_REMOTE_ENTRIES;
        let e = Entry { key: Term::atom("g"), pid: pid("a@h", 3), meta: Term::nil(), time: 1 };
        let err = c.handle_peer(PeerMessage::AckSync(pid("a@h", 80), vec![e]), 1).unwrap_err();
        assert_eq!(err, SynError::LimitExceeded("MAX_REMOTE_ENTRIES"));
        assert!(c.members(&Term::atom("g")).is_empty());
    }
}
