//! The state of one `pg` scope, as a pure state machine (Kernel `pg`, the scope `gen_server`).
//!
//! Inputs are the things a scope process reacts to: the local API (`join`, `leave`,
//! `monitor`), messages from peer scopes ([`PeerMessage`]), `nodeup`, and the death of a
//! monitored process. Outputs are [`Effect`]s the driver carries out in order: messages to
//! send, processes to monitor or stop monitoring. No sockets, no clock, no references minted
//! here, so every exchange can be replayed in a test.
//!
//! The model follows `pg.erl`: `local` maps each joined local process to the groups it joined
//! (a multiset, a process may join a group more than once); `peers` maps each known remote
//! scope process to the groups and members it announced; `groups` is the union, the table
//! `get_members/2` reads. A remote member is dropped only when its scope says `leave`, sends a
//! `sync` without it, or goes `DOWN` (noconnection included): BEAM never monitors remote
//! members one by one, so the owner scope reports its members' deaths.
//!
//! One deliberate difference keeps BEAM peers safe: a BEAM scope crashes (`badkey`) on a
//! `leave` naming a group it does not hold for us. Every peer therefore receives a full `sync`
//! from us before any `join`/`leave` reaches it: on `discover` (as `pg` does) and also when an
//! unknown peer's `sync` makes us add it (where `pg` stays silent and waits for its
//! `discover`). Each `join`/`leave` after that describes a change to what it already holds.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::node::Dest;
use crate::term::{Atom, Pid, Reference, Term};

use super::PgError;
use super::message::{self, PeerMessage};

/// Most (group, member) pairs one peer scope may announce. Beyond it a `sync` or `join` is
/// refused (and logged by the driver).
pub const MAX_PEER_MEMBERSHIPS: usize = 1 << 20;

/// Most scope processes one node may have us know at once. A node runs one process per scope;
/// a restarted scope can briefly overlap with its predecessor whose `DOWN` is still queued.
pub const MAX_PEERS_PER_NODE: usize = 8;

/// Something the driver must do, in the order the core emits them.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send `msg` to `to` (`erlang:send(To, Msg, [noconnect])` in `pg`: never dial for it).
    Send {
        /// A peer scope pid, `{Scope, Node}`, or a local subscriber.
        to: Dest,
        /// The message.
        msg: Term,
    },
    /// Monitor this process; report its death with [`ScopeState::handle_down`].
    Monitor(Pid),
    /// Stop monitoring this process (and drop a `DOWN` for it already queued).
    Demonitor(Pid),
}

/// Who watches membership changes: the whole scope (`monitor_scope/1`) or one group
/// (`monitor/2`); notified with `{Ref, join | leave, Group, [Pid]}`.
#[derive(Clone, Debug)]
struct Subscriber {
    pid: Pid,
    group: Option<Term>,
}

/// Members of one group: everyone, and the local ones, oldest first (reads reverse this, so
/// the newest member comes first as in `pg`).
#[derive(Clone, Debug, Default)]
struct Members {
    all: Vec<Pid>,
    local: Vec<Pid>,
}

/// What one peer scope announced.
#[derive(Clone, Debug, Default)]
struct Peer {
    groups: BTreeMap<Term, Vec<Pid>>,
    memberships: usize,
}

/// One scope's state. See the module docs.
#[derive(Debug)]
pub struct ScopeState {
    scope: Atom,
    me: Pid,
    local: HashMap<Pid, Vec<Term>>,
    peers: HashMap<Pid, Peer>,
    groups: BTreeMap<Term, Members>,
    subscribers: HashMap<Reference, Subscriber>,
    effects: VecDeque<Effect>,
}

impl ScopeState {
    /// The state of scope `scope` run by the process `me`.
    pub fn new(scope: Atom, me: Pid) -> ScopeState {
        ScopeState {
            scope,
            me,
            local: HashMap::new(),
            peers: HashMap::new(),
            groups: BTreeMap::new(),
            subscribers: HashMap::new(),
            effects: VecDeque::new(),
        }
    }

    /// The scope name.
    pub fn scope(&self) -> &Atom {
        &self.scope
    }

    /// The scope process.
    pub fn me(&self) -> &Pid {
        &self.me
    }

    /// The next thing to do, oldest first.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    // ------------------------------------------------------------------ node events

    /// The scope started while connected to `visible` nodes: `{discover, Me}` to the same
    /// scope name on each (`pg:init/1`).
    pub fn start(&mut self, visible: &[Atom]) {
        for node in visible {
            self.handle_nodeup(node, true);
        }
    }

    /// A node connected. A visible one may run this scope: send it `{discover, Me}`. Hidden
    /// nodes are not peers.
    pub fn handle_nodeup(&mut self, node: &Atom, visible: bool) {
        if !visible || node == &self.me.node {
            return;
        }
        let msg = message::discover(&self.me);
        self.effects.push_back(Effect::Send { to: Dest::Remote(self.scope.clone(), node.clone()), msg });
    }

    /// A monitored process went `DOWN` (for any reason, `noconnection` included): a local
    /// member leaves all its groups and peers hear `leave`; a peer scope's members are
    /// dropped. `false` if the pid was neither.
    pub fn handle_down(&mut self, pid: &Pid) -> bool {
        if let Some(groups) = self.local.remove(pid) {
            for g in &groups {
                self.table_remove(g, std::slice::from_ref(pid), true);
            }
            self.broadcast(message::leave(&self.me, std::slice::from_ref(pid), &groups));
            return true;
        }
        if let Some(peer) = self.peers.remove(pid) {
            for (g, pids) in &peer.groups {
                self.table_remove(g, pids, false);
            }
            return true;
        }
        false
    }

    // ------------------------------------------------------------------ peer messages

    /// A message from another scope. `peer_hidden`: the sender's node is connected as hidden.
    /// An `Err` means the message was ignored whole; nothing was changed or sent.
    pub fn handle_peer(&mut self, msg: PeerMessage, peer_hidden: bool) -> Result<(), PgError> {
        let peer = msg.peer().clone();
        if peer.node == self.me.node {
            return Err(PgError::LocalPeer(peer));
        }
        match msg {
            PeerMessage::Discover { peer } => {
                if peer_hidden {
                    return Err(PgError::HiddenPeer(peer));
                }
                // we are being discovered: exchange (pg's handle_discover)
                if self.peers.contains_key(&peer) {
                    self.send_sync(&peer);
                } else {
                    self.check_peer_room(&peer)?;
                    self.send_sync(&peer);
                    self.add_peer(&peer);
                    let msg = message::discover(&self.me);
                    self.effects.push_back(Effect::Send { to: Dest::Pid(peer), msg });
                }
                Ok(())
            }
            PeerMessage::Sync { peer, groups } => {
                if peer_hidden {
                    return Err(PgError::HiddenPeer(peer));
                }
                let merged = check_members(&peer, groups)?;
                if !self.peers.contains_key(&peer) {
                    // it knows us (it answers our discover); make sure it holds our members
                    // before any join/leave of ours reaches it (see the module docs)
                    self.check_peer_room(&peer)?;
                    self.add_peer(&peer);
                    self.send_sync(&peer);
                }
                self.apply_sync(&peer, merged);
                Ok(())
            }
            PeerMessage::Join { peer, group, pids } => {
                let Some(known) = self.peers.get(&peer) else { return Err(PgError::UnknownPeer(peer)) };
                if let Some(p) = pids.iter().find(|p| p.node != peer.node) {
                    return Err(PgError::ForeignMember { peer: peer.clone(), member: p.clone() });
                }
                if known.memberships.saturating_add(pids.len()) > MAX_PEER_MEMBERSHIPS {
                    return Err(PgError::LimitExceeded("MAX_PEER_MEMBERSHIPS"));
                }
                if pids.is_empty() {
                    return Ok(());
                }
                if let Some(known) = self.peers.get_mut(&peer) {
                    known.groups.entry(group.clone()).or_default().extend(pids.iter().rev().cloned());
                    known.memberships += pids.len();
                }
                self.table_add(&group, &pids, false);
                Ok(())
            }
            PeerMessage::Leave { peer, pids, groups } => {
                let Some(known) = self.peers.get_mut(&peer) else { return Err(PgError::UnknownPeer(peer)) };
                if let Some(g) = groups.iter().find(|g| !known.groups.contains_key(g)) {
                    return Err(PgError::UnknownGroup { peer: peer.clone(), group: g.clone() });
                }
                let mut removed_per_group = Vec::new();
                for g in groups {
                    let Some(members) = known.groups.get_mut(&g) else { continue };
                    let removed = remove_each(members, &pids);
                    known.memberships -= removed.len();
                    if members.is_empty() {
                        known.groups.remove(&g);
                    }
                    removed_per_group.push((g, removed));
                }
                for (g, removed) in removed_per_group {
                    self.table_remove(&g, &removed, false);
                }
                Ok(())
            }
        }
    }

    fn check_peer_room(&self, peer: &Pid) -> Result<(), PgError> {
        let same_node = self.peers.keys().filter(|p| p.node == peer.node).count();
        if same_node >= MAX_PEERS_PER_NODE {
            return Err(PgError::LimitExceeded("MAX_PEERS_PER_NODE"));
        }
        Ok(())
    }

    fn add_peer(&mut self, peer: &Pid) {
        self.peers.insert(peer.clone(), Peer::default());
        self.effects.push_back(Effect::Monitor(peer.clone()));
    }

    /// `{'$gen_cast', {sync, Me, LocalMembership}}` to `peer`.
    fn send_sync(&mut self, peer: &Pid) {
        let groups: Vec<(Term, Vec<Pid>)> = self
            .groups
            .iter()
            .filter(|(_, m)| !m.local.is_empty())
            .map(|(g, m)| (g.clone(), m.local.iter().rev().cloned().collect()))
            .collect();
        let msg = message::sync(&self.me, groups);
        self.effects.push_back(Effect::Send { to: Dest::Pid(peer.clone()), msg });
    }

    /// Replaces what `peer` announced with `new`, changing the table only where it differs.
    fn apply_sync(&mut self, peer: &Pid, new: BTreeMap<Term, Vec<Pid>>) {
        let Some(known) = self.peers.get_mut(peer) else { return };
        let old = std::mem::take(&mut known.groups);
        known.memberships = new.values().map(Vec::len).sum();
        known.groups = new.clone();
        for (g, old_pids) in &old {
            match new.get(g) {
                Some(new_pids) if new_pids == old_pids => {}
                Some(new_pids) => {
                    let gone = multiset_minus(old_pids, new_pids);
                    let mut came = multiset_minus(new_pids, old_pids);
                    came.reverse();
                    self.table_remove(g, &gone, false);
                    self.table_add(g, &came, false);
                }
                None => self.table_remove(g, old_pids, false),
            }
        }
        for (g, new_pids) in &new {
            if !old.contains_key(g) {
                let newest_first: Vec<Pid> = new_pids.iter().rev().cloned().collect();
                self.table_add(g, &newest_first, false);
            }
        }
    }

    // ------------------------------------------------------------------ local API

    /// `pg:join/3`: local processes `pids` join `group` (a process may join a group more than
    /// once). Each newly joined process is monitored; peers hear `join`. Remote pids are
    /// refused, as by `pg`; an empty list changes nothing.
    pub fn join(&mut self, group: Term, pids: &[Pid]) -> Result<(), PgError> {
        if let Some(p) = pids.iter().find(|p| p.node != self.me.node) {
            return Err(PgError::NotLocal(p.clone()));
        }
        if pids.is_empty() {
            return Ok(());
        }
        for p in pids {
            let groups = self.local.entry(p.clone()).or_insert_with(|| {
                self.effects.push_back(Effect::Monitor(p.clone()));
                Vec::new()
            });
            groups.push(group.clone());
        }
        self.table_add(&group, pids, true);
        self.broadcast(message::join(&self.me, &group, pids));
        Ok(())
    }

    /// `pg:leave/3`: each of `pids` leaves `group` once. `Ok(false)` (`not_joined`) if none of
    /// them was in it. A process that left its last group is no longer monitored.
    pub fn leave(&mut self, group: &Term, pids: &[Pid]) -> Result<bool, PgError> {
        if let Some(p) = pids.iter().find(|p| p.node != self.me.node) {
            return Err(PgError::NotLocal(p.clone()));
        }
        let mut left = Vec::new();
        for p in pids {
            let Some(groups) = self.local.get_mut(p) else { continue };
            let Some(i) = groups.iter().position(|g| g == group) else { continue };
            groups.remove(i);
            left.push(p.clone());
            if groups.is_empty() {
                self.local.remove(p);
                self.effects.push_back(Effect::Demonitor(p.clone()));
            }
        }
        if left.is_empty() {
            return Ok(false);
        }
        self.table_remove(group, &left, true);
        self.broadcast(message::leave(&self.me, &left, std::slice::from_ref(group)));
        Ok(true)
    }

    /// `pg:monitor_scope/1`: `subscriber` (which the driver monitors under `reference`) hears
    /// every change as `{Ref, join | leave, Group, [Pid]}`. Returns the current groups.
    pub fn monitor_scope(&mut self, reference: Reference, subscriber: Pid) -> Vec<(Term, Vec<Pid>)> {
        self.subscribers.insert(reference, Subscriber { pid: subscriber, group: None });
        self.groups.keys().map(|g| (g.clone(), self.members(g))).collect()
    }

    /// `pg:monitor/2`: like [`ScopeState::monitor_scope`] for one group; returns its members.
    pub fn monitor_group(&mut self, reference: Reference, subscriber: Pid, group: Term) -> Vec<Pid> {
        let members = self.members(&group);
        self.subscribers.insert(reference, Subscriber { pid: subscriber, group: Some(group) });
        members
    }

    /// Ends a subscription (`pg:demonitor/2`, or the subscriber died); `false` if unknown.
    pub fn demonitor(&mut self, reference: &Reference) -> bool {
        self.subscribers.remove(reference).is_some()
    }

    // ------------------------------------------------------------------ reads

    /// `pg:get_members/2`: every member of `group` on every node, newest first.
    pub fn members(&self, group: &Term) -> Vec<Pid> {
        self.groups.get(group).map(|m| m.all.iter().rev().cloned().collect()).unwrap_or_default()
    }

    /// `pg:get_local_members/2`: the members of `group` on this node, newest first.
    pub fn local_members(&self, group: &Term) -> Vec<Pid> {
        self.groups.get(group).map(|m| m.local.iter().rev().cloned().collect()).unwrap_or_default()
    }

    /// `pg:which_groups/1`: every group with a member anywhere, in term order.
    pub fn groups(&self) -> Vec<Term> {
        self.groups.keys().cloned().collect()
    }

    /// `pg:which_local_groups/1`: the groups with a local member.
    pub fn local_groups(&self) -> Vec<Term> {
        self.groups.iter().filter(|(_, m)| !m.local.is_empty()).map(|(g, _)| g.clone()).collect()
    }

    /// The peer scope processes we exchange with.
    pub fn peers(&self) -> Vec<Pid> {
        self.peers.keys().cloned().collect()
    }

    // ------------------------------------------------------------------ internals

    fn broadcast(&mut self, msg: Term) {
        for peer in self.peers.keys() {
            self.effects.push_back(Effect::Send { to: Dest::Pid(peer.clone()), msg: msg.clone() });
        }
    }

    /// Adds `pids` (newest first, as `pg` lists them) to `group`.
    fn table_add(&mut self, group: &Term, pids: &[Pid], local: bool) {
        if pids.is_empty() {
            return;
        }
        let m = self.groups.entry(group.clone()).or_default();
        // pg prepends `Pids ++ All`: stored oldest first, the list is appended reversed
        m.all.extend(pids.iter().rev().cloned());
        if local {
            m.local.extend(pids.iter().rev().cloned());
        }
        self.notify("join", group, pids);
    }

    fn table_remove(&mut self, group: &Term, pids: &[Pid], local: bool) {
        let Some(m) = self.groups.get_mut(group) else { return };
        let removed = remove_each(&mut m.all, pids);
        if local {
            remove_each(&mut m.local, &removed);
        }
        if m.all.is_empty() {
            self.groups.remove(group);
        }
        if !removed.is_empty() {
            self.notify("leave", group, &removed);
        }
    }

    fn notify(&mut self, action: &str, group: &Term, pids: &[Pid]) {
        for (r, s) in &self.subscribers {
            if s.group.as_ref().is_none_or(|g| g == group) {
                let msg = Term::Tuple(vec![
                    Term::Ref(r.clone()),
                    Term::atom(action),
                    group.clone(),
                    Term::List(pids.iter().cloned().map(Term::Pid).collect()),
                ]);
                self.effects.push_back(Effect::Send { to: Dest::Pid(s.pid.clone()), msg });
            }
        }
    }
}

/// Validates a peer's `sync`: members live on the peer's node, within the limit. Repeated
/// groups are merged.
fn check_members(peer: &Pid, groups: Vec<(Term, Vec<Pid>)>) -> Result<BTreeMap<Term, Vec<Pid>>, PgError> {
    let total = groups.iter().fold(0usize, |n, (_, pids)| n.saturating_add(pids.len()));
    if total > MAX_PEER_MEMBERSHIPS {
        return Err(PgError::LimitExceeded("MAX_PEER_MEMBERSHIPS"));
    }
    let mut merged: BTreeMap<Term, Vec<Pid>> = BTreeMap::new();
    for (g, pids) in groups {
        if let Some(p) = pids.iter().find(|p| p.node != peer.node) {
            return Err(PgError::ForeignMember { peer: peer.clone(), member: p.clone() });
        }
        if !pids.is_empty() {
            // sent newest first; stored oldest first
            merged.entry(g).or_default().extend(pids.into_iter().rev());
        }
    }
    Ok(merged)
}

/// Removes one occurrence of each of `pids` from `list` (`list -- pids`, taking the newest
/// occurrence as `lists:delete/2` does on `pg`'s newest-first lists); returns those removed.
fn remove_each(list: &mut Vec<Pid>, pids: &[Pid]) -> Vec<Pid> {
    let mut removed = Vec::new();
    for p in pids {
        if let Some(i) = list.iter().rposition(|x| x == p) {
            list.remove(i);
            removed.push(p.clone());
        }
    }
    removed
}

/// `a -- b` as multisets, keeping `a`'s order.
fn multiset_minus(a: &[Pid], b: &[Pid]) -> Vec<Pid> {
    let mut rest = a.to_vec();
    remove_each(&mut rest, b);
    rest
}
