//! Our side of `gen_server:multi_call(Nodes, global_name_server, Req)`, as the locker and the
//! registrar use it, and the lock primitives built on it (`set_lock_on_nodes/2` with its
//! `check_replies/3` undo, `del_lock/2`).
//!
//! Each remote node gets a monitor on `{global_name_server, Node}` and the request
//! `{'$gen_call', {Gns, {Ref, Node}}, Req}`; the answer `{{Ref, Node}, Reply}` or a `DOWN` (the
//! node is then a "bad node", which `set_lock` does not count against us) completes it. Our own
//! node is answered inline, against our own tables, with the server's pid as caller.

use super::wire;
use super::{Action, Global};
use crate::term::{Atom, Reference, Term};

/// Who started a multi-call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Locker,
    Registrar,
}

/// One request of a multi-call in flight.
#[derive(Clone, Debug)]
pub(crate) struct PendingCall {
    pub owner: Owner,
    pub node: Atom,
    pub mref: Reference,
}

/// A multi-call in flight.
#[derive(Debug, Default)]
pub(crate) struct MultiCall {
    pending: usize,
    /// `{Node, Reply}` in arrival order.
    replies: Vec<(Atom, Term)>,
}

/// What a primitive is doing.
#[derive(Debug)]
pub(crate) enum PrimKind {
    /// `set_lock` on the nodes; `id` is `{ResourceId, LockRequesterId}`.
    SetLock { id: Term },
    /// Undoing a failed `set_lock` on the nodes that said `true`.
    SetLockUndo,
    /// A call whose replies do not matter (`del_lock`, `register`, `unregister`).
    Plain,
}

/// A primitive in flight.
#[derive(Debug)]
pub(crate) struct Prim {
    kind: PrimKind,
    mc: MultiCall,
}

/// How a primitive ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrimResult {
    /// `set_lock`: whether every node granted the lock.
    Bool(bool),
    /// Other calls: all answered (or down).
    Done,
}

impl Global {
    fn prim_slot(&mut self, owner: Owner) -> &mut Option<Prim> {
        match owner {
            Owner::Locker => &mut self.locker.prim,
            Owner::Registrar => &mut self.registrar.prim,
        }
    }

    /// Starts a multi-call; answers our own node at once.
    fn start_multicall(&mut self, owner: Owner, nodes: &[Atom], req: &Term) -> MultiCall {
        let mut mc = MultiCall::default();
        for node in nodes {
            if node == &self.node {
                let gns = self.gns.clone();
                let reply = self.local_call(&gns, req);
                mc.replies.push((node.clone(), reply));
                continue;
            }
            let tag = self.make_ref();
            let mref = self.make_ref();
            let dest = Self::gns_of(node);
            self.push(Action::Monitor { target: dest.clone(), reference: mref.clone() });
            let tag_term = Term::Tuple(vec![Term::Ref(tag.clone()), Term::Atom(node.clone())]);
            let msg = wire::call(&self.gns, tag_term, req.clone());
            self.push(Action::Send { to: dest, msg, connect: true });
            self.call_mrefs.insert(mref.clone(), tag.clone());
            self.calls.insert(tag, PendingCall { owner, node: node.clone(), mref });
            mc.pending += 1;
        }
        mc
    }

    /// Runs `kind` over `nodes`; `Some` when it finished without waiting.
    fn run_prim(&mut self, owner: Owner, kind: PrimKind, nodes: &[Atom], req: Term) -> Option<PrimResult> {
        let mc = self.start_multicall(owner, nodes, &req);
        if mc.pending == 0 {
            return self.finish_prim(owner, kind, mc.replies);
        }
        *self.prim_slot(owner) = Some(Prim { kind, mc });
        None
    }

    /// `set_lock_on_nodes(Id, Nodes)`: `id` is `{ResourceId, LockRequesterId}`.
    pub(crate) fn prim_set_lock(&mut self, owner: Owner, id: &Term, nodes: &[Atom]) -> Option<PrimResult> {
        if nodes.is_empty() {
            return Some(PrimResult::Bool(true));
        }
        // local_lock_check/2: probe our own table before asking the others.
        if nodes.len() > 1 && nodes.contains(&self.node) && !self.can_set_lock_term(id) {
            return Some(PrimResult::Bool(false));
        }
        let req = Term::Tuple(vec![Term::atom("set_lock"), id.clone()]);
        self.run_prim(owner, PrimKind::SetLock { id: id.clone() }, nodes, req)
    }

    /// `gen_server:multi_call(Nodes, global_name_server, {del_lock, Id})`.
    pub(crate) fn prim_del_lock(&mut self, owner: Owner, id: &Term, nodes: &[Atom]) -> Option<PrimResult> {
        let req = Term::Tuple(vec![Term::atom("del_lock"), id.clone()]);
        self.run_prim(owner, PrimKind::Plain, nodes, req)
    }

    /// Any other multi-call whose replies do not matter.
    pub(crate) fn prim_call(&mut self, owner: Owner, nodes: &[Atom], req: Term) -> Option<PrimResult> {
        self.run_prim(owner, PrimKind::Plain, nodes, req)
    }

    fn finish_prim(&mut self, owner: Owner, kind: PrimKind, replies: Vec<(Atom, Term)>) -> Option<PrimResult> {
        match kind {
            PrimKind::Plain => Some(PrimResult::Done),
            PrimKind::SetLockUndo => Some(PrimResult::Bool(false)),
            PrimKind::SetLock { id } => {
                // check_replies/3: any reply but `true` fails the lot.
                if replies.iter().all(|(_, r)| r.is_atom("true")) {
                    return Some(PrimResult::Bool(true));
                }
                if replies.len() == 1 {
                    return Some(PrimResult::Bool(false));
                }
                let granted: Vec<Atom> =
                    replies.iter().filter(|(_, r)| r.is_atom("true")).map(|(n, _)| n.clone()).collect();
                let req = Term::Tuple(vec![Term::atom("del_lock"), id]);
                self.run_prim(owner, PrimKind::SetLockUndo, &granted, req)
            }
        }
    }

    /// An answer (or a `DOWN`, `reply = None`) for one of our requests.
    fn call_answered(&mut self, tag: &Reference, node: &Atom, reply: Option<Term>) {
        let Some(pc) = self.calls.remove(tag) else {
            return;
        };
        self.call_mrefs.remove(&pc.mref);
        if reply.is_some() {
            self.demonitor(pc.mref.clone());
        }
        let owner = pc.owner;
        let done = {
            let Some(prim) = self.prim_slot(owner).as_mut() else {
                return;
            };
            if let Some(r) = reply {
                prim.mc.replies.push((node.clone(), r));
            }
            prim.mc.pending = prim.mc.pending.saturating_sub(1);
            prim.mc.pending == 0
        };
        if !done {
            return;
        }
        let Some(prim) = self.prim_slot(owner).take() else {
            return;
        };
        if let Some(result) = self.finish_prim(owner, prim.kind, prim.mc.replies) {
            match owner {
                Owner::Locker => self.locker_resume(result),
                Owner::Registrar => self.registrar_resume(result),
            }
        }
    }

    /// `{{Ref, Node}, Reply}` arrived; `false` if it is not ours.
    pub(crate) fn handle_reply(&mut self, tag: &Reference, node: &Atom, reply: Term) -> bool {
        if !self.calls.contains_key(tag) {
            return false;
        }
        self.call_answered(tag, node, Some(reply));
        true
    }

    /// A `DOWN` for a multi-call monitor; `false` if `mref` is not one.
    pub(crate) fn handle_call_down(&mut self, mref: &Reference) -> bool {
        let Some(tag) = self.call_mrefs.get(mref).cloned() else {
            return false;
        };
        let node = match self.calls.get(&tag) {
            Some(pc) => pc.node.clone(),
            None => return false,
        };
        self.call_answered(&tag, &node, None);
        true
    }

    /// The node went down: its outstanding requests count as bad nodes (the driver's `DOWN`
    /// for them, if it still comes, is then ignored).
    pub(crate) fn fail_calls_to(&mut self, node: &Atom) {
        let mut mine: Vec<(Reference, Reference)> =
            self.calls.iter().filter(|(_, pc)| &pc.node == node).map(|(t, pc)| (t.clone(), pc.mref.clone())).collect();
        mine.sort_by(|a, b| a.0.ids().cmp(b.0.ids()));
        for (tag, mref) in mine {
            self.demonitor(mref);
            self.call_answered(&tag, node, None);
        }
    }
}
