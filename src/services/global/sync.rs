//! Sync sessions between name servers ("Connection algorithm" in `global.erl`, protocol notes
//! 7.2–7.3, 7.7) and "prevent overlapping partitions" (7.8).
//!
//! Per peer the server keeps what `global.erl` keeps in its process dictionary (our tag, the
//! peer's tag, the version, a buffered `exchange` or `resolved`, the lock id) and a "resolver"
//! entry while a session runs. Messages whose tag is not the current session's are stale: they
//! only cancel whatever locker work still carries that tag.

use super::locker::{Him, LockerMsg, NewNodesFun};
use super::server::InsertedBy;
use super::wire::{self, ExtEntry, NameEntry, Op, ResolvedBody};
use super::{
    Action, Global, GlobalError, LOST_CONN_INFO_CLEANUP, NodeDown, POP_VSN, PROTOCOL_VERSION, VERIFY_CONNECT_VSN,
};
use crate::term::{Atom, Pid, Term};

use super::limits::{MAX_KNOWN_NODES, MAX_LOST_CONNECTIONS};
use super::resolve::{self, Resolution};
use super::tables::LostRec;

/// `{wait_lock, Node}`.
#[derive(Clone, Debug, Default)]
pub(crate) enum WaitLock {
    #[default]
    None,
    /// The peer's names arrived before our locker had the lock.
    Exchange(Vec<NameEntry>),
    /// Our locker has the lock; the peer's names have not arrived.
    LockIsSet,
}

/// `{save_ops, Node}`.
#[derive(Clone, Debug, Default)]
pub(crate) enum SaveOps {
    #[default]
    None,
    /// The peer's `resolved` arrived before our resolution was done.
    Resolved(ResolvedBody),
    /// Our resolution is done; waiting for the peer's `resolved`.
    Ops(Vec<Op>),
}

/// An `init_connect` that came before our session with its node existed (`{pre_connect, Node}`).
#[derive(Clone, Debug)]
pub(crate) struct PreConnect {
    vsn: i64,
    his_vsn: i64,
    his_tag: Term,
    his_locker: Pid,
}

/// The per-node entries of `global.erl`'s process dictionary.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerState {
    pub sync_tag_my: Option<i64>,
    pub sync_tag_his: Option<Term>,
    pub prot_vsn: Option<i64>,
    pub wait_lock: WaitLock,
    pub save_ops: SaveOps,
    pub lock_id: Option<Term>,
    pub pre_connect: Option<PreConnect>,
}

fn tag_matches(mine: Option<i64>, theirs: &Term) -> bool {
    matches!((mine, theirs), (Some(m), Term::Int(t)) if m == *t)
}

fn tag_int(t: &Term) -> Option<i64> {
    t.as_int()
}

impl Global {
    fn peer(&mut self, node: &Atom) -> &mut PeerState {
        self.peers.entry(node.clone()).or_default()
    }

    fn my_tag(&self, node: &Atom) -> Option<i64> {
        self.peers.get(node).and_then(|p| p.sync_tag_my)
    }

    /// `reset_node_state/1`.
    fn reset_node_state(&mut self, node: &Atom) {
        self.peers.remove(node);
    }

    /// `handle_nodeup/2`: start a session unless the node is known or one is running.
    pub(crate) fn start_connect(&mut self, node: &Atom) {
        if self.known.contains_key(node) || self.resolvers.contains_key(node) {
            return;
        }
        if self.peers.len() >= MAX_KNOWN_NODES && !self.peers.contains_key(node) {
            tracing::error!(node = %node.as_str(), "global: too many sync sessions; not syncing");
            return;
        }
        let pre = self.peer(node).pre_connect.take();
        let my_tag = self.unique_integer();
        self.peer(node).sync_tag_my = Some(my_tag);
        let known_map =
            crate::term::Map::from_entries(self.known.iter().map(|(n, v)| (Term::Atom(n.clone()), Term::Int(*v))));
        let locker = Term::Tuple(vec![
            Term::atom("locker"),
            Term::atom("no_longer_a_pid"),
            Term::Map(known_map),
            Term::Pid(self.gns.clone()),
        ]);
        let init = Term::Tuple(vec![
            Term::atom("init_connect"),
            Term::Tuple(vec![Term::Int(PROTOCOL_VERSION), Term::Int(my_tag)]),
            Term::Atom(self.node.clone()),
            locker,
        ]);
        self.send_cast(node, init);
        self.resolvers.insert(node.clone(), my_tag);
        // resend_pre_connect/1
        if let Some(p) = pre {
            self.init_connect(p.vsn, node.clone(), p.his_locker, p.his_tag, p.his_vsn);
        }
    }

    /// `init_connect/6`.
    pub(crate) fn init_connect(&mut self, vsn: i64, node: Atom, his_locker: Pid, his_tag: Term, his_vsn: i64) {
        if node == self.node {
            return;
        }
        if self.peers.len() >= MAX_KNOWN_NODES && !self.peers.contains_key(&node) {
            tracing::error!(node = %node.as_str(), "global: too many sync sessions; init_connect ignored");
            return;
        }
        if his_vsn < 5 || his_locker.node != node {
            tracing::warn!(node = %node.as_str(), his_vsn, "global: init_connect from an unsupported version or with a foreign locker; ignored");
            return;
        }
        if self.pending.contains_key(&node) {
            if his_vsn < VERIFY_CONNECT_VSN {
                tracing::error!(node = %node.as_str(), his_vsn, "'global' got an out of sync connection attempt from an old version node; disconnecting");
                self.push(Action::Disconnect(node));
                return;
            }
            // An attempt crossing the running one: cancel both and start over. BEAM then takes
            // this very attempt into its new session although it just asked the peer to cancel
            // it, which recreates the crossing on the other side: two nodes in this state
            // restart each other forever. We drop it instead; the peer's fresh attempt, sent
            // when it handles our cancel_connect, finds us not pending.
            tracing::debug!(node = %node.as_str(), "global: crossing init_connect; restarting the connect");
            self.send_cancel_connect_message(&node, his_tag);
            let my_old = self.my_tag(&node);
            self.restart_connect(&node, my_old);
            return;
        }
        {
            let p = self.peer(&node);
            p.prot_vsn = Some(vsn);
            p.sync_tag_his = Some(his_tag.clone());
        }
        match (self.resolvers.get(&node).copied(), self.my_tag(&node)) {
            (Some(my_tag), Some(cur)) if my_tag == cur => {
                self.locker_send(LockerMsg::HisTheLocker(Him {
                    node: node.clone(),
                    locker: his_locker,
                    vsn,
                    my_tag,
                    his_tag: his_tag.clone(),
                }));
                if his_vsn >= VERIFY_CONNECT_VSN {
                    let ack = Term::Tuple(vec![
                        Term::atom("init_connect_ack"),
                        Term::Atom(self.node.clone()),
                        his_tag,
                        Term::Int(my_tag),
                    ]);
                    self.send_volatile(&node, ack);
                }
                self.pending.insert(node, his_vsn);
            }
            _ => {
                self.peer(&node).pre_connect = Some(PreConnect { vsn, his_vsn, his_tag, his_locker });
                // BEAM keeps it for the nodeup to come. When the node is already up (a session
                // cancelled without restart, e.g. by an in_sync), no nodeup will come: start
                // the session now, which takes this init_connect in.
                if self.up.contains(&node) && !self.known.contains_key(&node) {
                    self.start_connect(&node);
                }
            }
        }
    }

    /// `{init_connect_ack, Node, HisMyTag, HisHisTag}`: both sides must agree on the session.
    pub(crate) fn init_connect_ack(&mut self, node: Atom, his_my_tag: Term, his_his_tag: Term) {
        let mine = self.my_tag(&node);
        let my_his = self.peers.get(&node).and_then(|p| p.sync_tag_his.clone());
        if tag_matches(mine, &his_my_tag) && my_his.as_ref() == Some(&his_his_tag) {
            return;
        }
        // Our tags only grow: an ack naming an older one answers an attempt we have already
        // replaced, and the ack for the current one is on its way. (BEAM restarts here too,
        // which can keep two restarting nodes out of step.)
        if let (Some(m), Term::Int(t)) = (mine, &his_my_tag) {
            if *t < m {
                tracing::debug!(node = %node.as_str(), "global: stale init_connect_ack ignored");
                return;
            }
        }
        tracing::debug!(node = %node.as_str(), "global: init_connect_ack out of sync; restarting the connect");
        self.send_cancel_connect_message(&node, his_his_tag);
        self.restart_connect(&node, mine);
    }

    /// `{cancel_connect, Node, MyTag}`: the peer gave up this session.
    pub(crate) fn cancel_connect(&mut self, node: Atom, tag: Term) {
        let mine = self.my_tag(&node);
        if !tag_matches(mine, &tag) {
            return;
        }
        self.cancel_locker(&node, mine, None);
        self.reset_node_state(&node);
        self.pending.remove(&node);
        self.restart_connect(&node, mine);
    }

    /// `restart_connect/3`.
    fn restart_connect(&mut self, node: &Atom, my_tag: Option<i64>) {
        self.cancel_locker(node, my_tag, None);
        self.reset_node_state(node);
        self.pending.remove(node);
        // BEAM restarts only when it had a tag (no tag meaning "node down"); we know which
        // nodes are up.
        if my_tag.is_some() || self.up.contains(node) {
            self.start_connect(node);
        }
    }

    fn send_cancel_connect_message(&mut self, node: &Atom, his_tag: Term) {
        let msg = Term::Tuple(vec![Term::atom("cancel_connect"), Term::Atom(self.node.clone()), his_tag]);
        self.send_volatile(node, msg);
    }

    /// `cancel_locker/4`: tells the locker, the peer (if the session is pending) and drops the
    /// resolver of this tag.
    pub(crate) fn cancel_locker(&mut self, node: &Atom, tag: Option<i64>, fun: Option<NewNodesFun>) {
        self.locker_send(LockerMsg::Cancel { node: node.clone(), tag, fun });
        // send_cancel_connect/3
        if self.pending.get(node).is_some_and(|v| *v >= VERIFY_CONNECT_VSN) && self.my_tag(node) == tag {
            if let Some(his) = self.peers.get(node).and_then(|p| p.sync_tag_his.clone()) {
                self.send_cancel_connect_message(node, his);
            }
        }
        if tag.is_some() && self.resolvers.get(node).copied() == tag {
            self.resolvers.remove(node);
        }
    }

    /// `cancel_resolved_locker/3`: as `cancel_locker`, without telling the peer.
    fn cancel_resolved_locker(&mut self, node: &Atom, fun: Option<NewNodesFun>) {
        let tag = self.my_tag(node);
        self.pending.remove(node);
        self.cancel_locker(node, tag, fun);
        self.reset_node_state(node);
    }

    /// A `lock_set` cast: for our locker if its tag is the session's (4-tuples always).
    pub(crate) fn cast_lock_set(&mut self, ls: wire::LockSet) {
        match &ls.tag {
            Some(t) if !tag_matches(self.my_tag(&ls.pid.node), t) => {
                tracing::debug!(node = %ls.pid.node.as_str(), "global: lock_set with a stale tag dropped");
            }
            _ => self.locker_send(LockerMsg::LockSet(ls)),
        }
    }

    /// The locker holds the lock in both partitions (`lock_is_set/3` of the server).
    pub(crate) fn lock_is_set(&mut self, node: &Atom, my_tag: i64, lock_id: Term) {
        if self.my_tag(node) != Some(my_tag) {
            self.cancel_locker(node, Some(my_tag), None);
            return;
        }
        let his_tag =
            self.peers.get(node).and_then(|p| p.sync_tag_his.clone()).unwrap_or_else(|| Term::atom("undefined"));
        let names = wire::names_term(self.names.entries());
        let ex = Term::Tuple(vec![Term::atom("exchange"), Term::Atom(self.node.clone()), names, Term::nil(), his_tag]);
        self.send_cast(node, ex);
        let p = self.peer(node);
        p.lock_id = Some(lock_id);
        match std::mem::take(&mut p.wait_lock) {
            WaitLock::Exchange(list) => self.resolve_names(node, list),
            _ => p.wait_lock = WaitLock::LockIsSet,
        }
    }

    pub(crate) fn cast_exchange(
        &mut self,
        node: Atom,
        tag: Term,
        names: Result<Vec<NameEntry>, GlobalError>,
    ) -> Result<(), GlobalError> {
        let mine = self.my_tag(&node);
        if !tag_matches(mine, &tag) {
            self.cancel_locker(&node, tag_int(&tag), None);
            return Ok(());
        }
        let names = match names {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(node = %node.as_str(), error = %e, "global: malformed exchange; restarting the sync");
                self.restart_connect(&node, mine);
                return Err(e);
            }
        };
        let p = self.peer(&node);
        match std::mem::take(&mut p.wait_lock) {
            WaitLock::LockIsSet => self.resolve_names(&node, names),
            _ => p.wait_lock = WaitLock::Exchange(names),
        }
        Ok(())
    }

    /// The resolver: `exchange_names/4` on the peer's names, then `exchange_ops`.
    fn resolve_names(&mut self, node: &Atom, names: Vec<NameEntry>) {
        let Some(my_tag) = self.my_tag(node) else {
            return;
        };
        let mut ops = Vec::new();
        let mut res = Vec::new();
        for e in names {
            let ours = self.names.get(&e.name).cloned();
            match ours {
                None => ops.push(Op::Insert(e)),
                Some(r) if r.pid == e.pid => {}
                Some(r) if self.node < *node => {
                    // Name clash: the smaller node resolves, with our entry's method.
                    let (decision, signals) = resolve::resolve(&r.method, &e.name, &e.pid, &r.pid);
                    for a in signals {
                        self.push(a);
                    }
                    match decision {
                        Resolution::Keep(p) if p == e.pid => ops.push(Op::Insert(e)),
                        Resolution::Keep(p) if p == r.pid => {
                            res.push(Op::Insert(NameEntry { name: e.name, pid: r.pid, method: r.method }))
                        }
                        _ => {
                            ops.push(Op::Delete(e.name.clone()));
                            res.push(Op::Delete(e.name));
                        }
                    }
                }
                Some(_) => {} // the other node resolves it
            }
        }
        ops.reverse();
        res.reverse();
        self.exchange_ops(node, my_tag, ops, res);
    }

    /// `{exchange_ops, Node, MyTag, Ops, Resolved}` from the resolver.
    fn exchange_ops(&mut self, node: &Atom, tag: i64, ops: Vec<Op>, resolved: Vec<Op>) {
        if self.my_tag(node) != Some(tag) {
            self.cancel_locker(node, Some(tag), None);
            return;
        }
        let known = self.mk_known_list(self.node_vsn(node));
        let his_tag =
            self.peers.get(node).and_then(|p| p.sync_tag_his.clone()).unwrap_or_else(|| Term::atom("undefined"));
        let msg = Term::Tuple(vec![
            Term::atom("resolved"),
            Term::Atom(self.node.clone()),
            wire::ops_term(&resolved),
            known,
            Term::atom("unused"),
            wire::ext_term(&self.names.ext_entries()),
            his_tag,
        ]);
        self.send_cast(node, msg);
        let p = self.peer(node);
        if let SaveOps::Resolved(body) = std::mem::replace(&mut p.save_ops, SaveOps::Ops(ops)) {
            self.resolved(node, body);
        }
    }

    pub(crate) fn cast_resolved(
        &mut self,
        node: Atom,
        tag: Term,
        body: Result<ResolvedBody, GlobalError>,
    ) -> Result<(), GlobalError> {
        let mine = self.my_tag(&node);
        if !tag_matches(mine, &tag) {
            self.cancel_locker(&node, tag_int(&tag), None);
            return Ok(());
        }
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(node = %node.as_str(), error = %e, "global: malformed resolved; restarting the sync");
                self.restart_connect(&node, mine);
                return Err(e);
            }
        };
        let p = self.peer(&node);
        if matches!(p.save_ops, SaveOps::Ops(_)) {
            self.resolved(&node, body);
        } else {
            p.save_ops = SaveOps::Resolved(body);
        }
        Ok(())
    }

    /// `resolved/5`: both sides are done; apply, learn the peer's partition, tell ours.
    fn resolved(&mut self, node: &Atom, body: ResolvedBody) {
        let p = self.peer(node);
        let mut ops = match std::mem::take(&mut p.save_ops) {
            SaveOps::Ops(o) => o,
            _ => Vec::new(),
        };
        ops.extend(body.ops);
        let prot_vsn = p.prot_vsn.unwrap_or(PROTOCOL_VERSION);
        let lock_id = p.lock_id.clone();
        // Known may have shrunk since the lock was taken.
        let known_before: Vec<(Atom, i64)> = self.known.iter().map(|(n, v)| (n.clone(), *v)).collect();
        let mut new_nodes: Vec<(Atom, i64)> = vec![(node.clone(), self.node_vsn(node))];
        for (n, v) in &body.his_known {
            new_nodes.push((n.clone(), if *v == 0 { self.node_vsn(n) } else { *v }));
        }
        let his_known_nodes: Vec<Atom> = body.his_known.iter().map(|(n, _)| n.clone()).collect();
        self.sync_others(&his_known_nodes);
        let extra = Term::List(vec![
            Term::Tuple(vec![Term::atom("vsn"), Term::Int(prot_vsn)]),
            Term::Tuple(vec![Term::atom("lock"), lock_id.clone().unwrap_or_else(|| Term::atom("undefined"))]),
        ]);
        self.do_ops(&ops, &body.names_ext, &InsertedBy::Sync { lock: lock_id });
        for n in &his_known_nodes {
            self.cancel_resolved_locker(n, None);
        }
        // The locker that holds the lock sends new_nodes before it releases the lock.
        let ops_t = wire::ops_term(&ops);
        let ext_t = wire::ext_term(&body.names_ext);
        let mk = |nodes: Term| {
            Term::Tuple(vec![
                Term::atom("new_nodes"),
                Term::Atom(self.node.clone()),
                ops_t.clone(),
                ext_t.clone(),
                nodes,
                extra.clone(),
            ])
        };
        let nn_names: Vec<Atom> = new_nodes.iter().map(|(n, _)| n.clone()).collect();
        let fun = NewNodesFun {
            targets: known_before,
            msg_new: mk(wire::node_vsn_list(&new_nodes)),
            msg_old: mk(wire::node_list(&nn_names)),
        };
        self.cancel_resolved_locker(node, Some(fun));
        let added = self.add_to_known(&new_nodes);
        self.locker_send(LockerMsg::AddToKnown(added));
        if !self.synced.contains(node) {
            self.synced.push(node.clone());
        }
        tracing::info!(node = %node.as_str(), "global: synced");
    }

    /// `new_nodes/6`: a member of our partition synced with another partition.
    pub(crate) fn new_nodes(
        &mut self,
        node: Atom,
        ops: Vec<Op>,
        names_ext: Vec<ExtEntry>,
        nodes: Vec<(Atom, i64)>,
        lock: Option<Term>,
    ) {
        let added = self.add_to_known(&nodes);
        self.sync_others(&added);
        self.do_ops(&ops, &names_ext, &InsertedBy::Sync { lock });
        tracing::debug!(from = %node.as_str(), ?added, "global: new nodes");
        self.locker_send(LockerMsg::AddToKnown(added));
    }

    /// `{in_sync, Node, _}`: `Node` learnt about us from its partition; no session is needed.
    pub(crate) fn in_sync(&mut self, node: Atom) {
        if node == self.node {
            return;
        }
        if !self.synced.contains(&node) && self.synced.len() < MAX_KNOWN_NODES {
            self.synced.push(node.clone());
        }
        // BEAM drops {pending, Node} first so that no cancel_connect goes out: a genuine sender
        // has already ended its session with us. We cancel while still pending: that
        // cancel_connect is then ignored (its tag is stale, or we are known there), but if the
        // sender's locker is still in a session with us it lets go of our partition's lock
        // instead of waiting for a lock_set we will never send.
        let tag = self.my_tag(&node);
        self.cancel_locker(&node, tag, None);
        self.pending.remove(&node);
        self.reset_node_state(&node);
    }

    /// `add_to_known/2`: returns the nodes that were new.
    fn add_to_known(&mut self, nodes: &[(Atom, i64)]) -> Vec<Atom> {
        let mut added = Vec::new();
        for (n, v) in nodes {
            if n == &self.node || self.known.contains_key(n) {
                continue;
            }
            if self.known.len() >= MAX_KNOWN_NODES {
                tracing::error!(node = %n.as_str(), "global: too many known nodes; not added");
                break;
            }
            self.known.insert(n.clone(), *v);
            added.insert(0, n.clone());
        }
        added
    }

    /// `sync_others/1`: connect to each node and tell it we are in sync.
    fn sync_others(&mut self, nodes: &[Atom]) {
        for n in nodes {
            if n == &self.node {
                continue;
            }
            self.push(Action::Connect(n.clone()));
            let msg = Term::Tuple(vec![Term::atom("in_sync"), Term::Atom(self.node.clone()), Term::atom("true")]);
            self.send_cast(n, msg);
        }
    }

    // ------------------------------------------------------------------ node loss

    /// `handle_nodedown/3`.
    pub(crate) fn nodedown(&mut self, node: &Atom, what: NodeDown) {
        let tag = self.my_tag(node);
        self.cancel_locker(node, tag, None);
        self.locker_send(LockerMsg::RemoveFromKnown(node.clone()));
        self.reset_node_state(node);
        match what {
            NodeDown::RemoveConnection => {
                self.removing.insert(node.clone());
            }
            NodeDown::Disconnected => {
                if !self.removing.remove(node) {
                    self.inform_connection_loss(node);
                }
            }
        }
        self.pending.remove(node);
        self.known.remove(node);
        self.synced.retain(|n| n != node);
    }

    /// `inform_connection_loss/2`: `{lost_connection, Self, XCreation, OpId, Node}` to all.
    fn inform_connection_loss(&mut self, node: &Atom) {
        let op_id = self.unique_integer();
        let msg = Term::Tuple(vec![
            Term::atom("lost_connection"),
            Term::Atom(self.node.clone()),
            Term::Int(self.xcreation),
            Term::Int(op_id),
            Term::Atom(node.clone()),
        ]);
        self.volatile_multicast(&msg, node);
    }

    /// `gns_volatile_multicast(Msg, Ignore, ?pop_vsn, true, S)`: known and pending nodes.
    fn volatile_multicast(&mut self, msg: &Term, ignore: &Atom) {
        let targets: Vec<Atom> = self
            .known
            .iter()
            .chain(self.pending.iter())
            .filter(|(n, v)| *n != ignore && **v >= POP_VSN)
            .map(|(n, _)| n.clone())
            .collect();
        for n in targets {
            self.send_volatile(&n, msg.clone());
        }
    }

    fn potentially_known(&self, node: &Atom) -> bool {
        self.known.contains_key(node) || self.pending.contains_key(node)
    }

    /// `{lost_connection, NodeA, XCreationA, OpIdA, NodeB}` (protocol notes 7.8).
    pub(crate) fn lost_connection(&mut self, node_a: Atom, xcreation: Term, op_id: Term, node_b: Atom) {
        let key = (node_a.clone(), node_b.clone());
        if let Some(seen) = self.lost.get(&key) {
            if seen.xcreation == xcreation && op_id <= seen.op_id {
                return;
            }
        }
        let msg = Term::Tuple(vec![
            Term::atom("lost_connection"),
            Term::Atom(node_a.clone()),
            xcreation.clone(),
            op_id.clone(),
            Term::Atom(node_b.clone()),
        ]);
        self.volatile_multicast(&msg, &node_a);
        let expires = self.now + LOST_CONN_INFO_CLEANUP;
        self.lost.save(key, LostRec { xcreation, op_id, expires }, MAX_LOST_CONNECTIONS);
        let rm = if node_b == self.node { node_a } else { node_b };
        if !self.potentially_known(&rm) {
            return;
        }
        if self.node_vsn(&rm) < POP_VSN {
            self.push(Action::Disconnect(rm.clone()));
        } else {
            let msg = Term::Tuple(vec![Term::atom("remove_connection"), Term::Atom(self.node.clone())]);
            self.send_volatile(&rm, msg);
        }
        tracing::warn!(
            node = %self.node.as_str(), rm = %rm.as_str(),
            "'global' requested disconnect from node in order to prevent overlapping partitions"
        );
        self.nodedown(&rm, NodeDown::RemoveConnection);
    }

    /// `{remove_connection, Node}`: `Node` removes us from its partition; disconnect from it.
    pub(crate) fn remove_connection(&mut self, node: Atom) {
        if !self.potentially_known(&node) {
            return;
        }
        self.push(Action::Disconnect(node.clone()));
        self.nodedown(&node, NodeDown::RemoveConnection);
        tracing::warn!(
            node = %self.node.as_str(), peer = %node.as_str(),
            "'global' disconnected node in order to prevent overlapping partitions"
        );
    }
}
