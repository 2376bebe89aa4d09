//! The name server's request handling (`handle_call/3`, `handle_cast/2` and `handle_info/2` of
//! `global.erl`) and its table operations: `ins_name`, `delete_global_name2`, `do_ops`,
//! `handle_set_lock`, `handle_del_lock`, and the `DOWN` clean-up of names and locks.

use super::limits::{MAX_LOCK_HOLDERS, MAX_LOCKS, MAX_NAMES, MAX_NAMES_EXT};
use super::tables::NameRec;
use super::wire::{CallReq, Cast, ExtEntry, Info, NameEntry, Op};
use super::{Global, GlobalError, PROTOCOL_VERSION};
use crate::term::{Atom, Pid, Term};

/// Who asked for a name to be inserted (`FromPidOrNode` and `ExtraInfo` of `ins_name`).
#[derive(Clone, Debug)]
pub(crate) enum InsertedBy {
    /// A `register` call from this process.
    Pid(Pid),
    /// Sync operations from `node`, made under the `global` lock with this requester id.
    Sync { lock: Option<Term> },
}

impl Global {
    // ------------------------------------------------------------------ calls

    pub(crate) fn handle_call(&mut self, from_pid: Pid, tag: Term, req: CallReq) -> Result<(), GlobalError> {
        let (reply, r) = match req {
            CallReq::Other(req) => {
                tracing::warn!(%req, from = ?from_pid, "global_name_server received an unexpected call");
                let reply = Term::Tuple(vec![Term::atom("error"), Term::atom("not_supported")]);
                (reply, Err(GlobalError::Unexpected { kind: "call" }))
            }
            req => (self.answer_call(&from_pid, req), Ok(())),
        };
        self.reply(&from_pid, tag, reply);
        r
    }

    /// The answer to a call, with its effects; `caller` is `From`'s pid.
    fn answer_call(&mut self, caller: &Pid, req: CallReq) -> Term {
        match req {
            CallReq::Register(e) => {
                self.ins_name(e, &InsertedBy::Pid(caller.clone()));
                Term::atom("yes")
            }
            CallReq::RegisterExt(e, reg_node) => {
                self.ins_name_ext(e, reg_node, &InsertedBy::Pid(caller.clone()));
                Term::atom("yes")
            }
            CallReq::Unregister(name) => {
                self.delete_global_name(&name);
                Term::atom("ok")
            }
            CallReq::SetLock(Some((res, req))) => Term::from(self.handle_set_lock(res, req, caller)),
            CallReq::SetLock(None) => {
                tracing::warn!(from = ?caller, "global: set_lock with a malformed id; answering false");
                Term::atom("false")
            }
            CallReq::DelLock(Some((res, req))) => {
                self.handle_del_lock(&res, &req, caller);
                Term::atom("true")
            }
            CallReq::DelLock(None) => Term::atom("true"),
            CallReq::GetKnown => self.mk_known_list(0),
            CallReq::GetSynced => Term::List(self.synced.iter().map(|n| Term::Atom(n.clone())).collect()),
            CallReq::GetProtocolVersion => Term::Int(PROTOCOL_VERSION),
            CallReq::GetNamesExt => super::wire::ext_term(&self.names.ext_entries()),
            CallReq::Other(_) => Term::Tuple(vec![Term::atom("error"), Term::atom("not_supported")]),
        }
    }

    /// Our own node's part of one of our multi-calls (`req` as it would go on the wire).
    pub(crate) fn local_call(&mut self, caller: &Pid, req: &Term) -> Term {
        match super::wire::parse(&super::wire::call(caller, Term::nil(), req.clone())) {
            Ok(super::wire::Incoming::Call { req, .. }) => self.answer_call(caller, req),
            _ => Term::Tuple(vec![Term::atom("error"), Term::atom("badarg")]),
        }
    }

    // ------------------------------------------------------------------ casts and infos

    pub(crate) fn handle_cast(&mut self, c: Cast) -> Result<(), GlobalError> {
        match c {
            Cast::InitConnect { vsn, his_vsn, his_tag, node, his_locker } => {
                self.init_connect(vsn, node, his_locker, his_tag, his_vsn);
                Ok(())
            }
            Cast::LockSet(ls) => {
                self.cast_lock_set(ls);
                Ok(())
            }
            Cast::Exchange { node, tag, names } => self.cast_exchange(node, tag, names),
            Cast::Resolved { node, tag, body } => self.cast_resolved(node, tag, body),
            Cast::NewNodes { node, ops, names_ext, nodes, lock } => {
                self.new_nodes(node, ops, names_ext, nodes, lock);
                Ok(())
            }
            Cast::InSync { node } => {
                self.in_sync(node);
                Ok(())
            }
            Cast::Obsolete => Ok(()),
            Cast::Other(req) => {
                tracing::warn!(%req, "global_name_server received an unexpected cast");
                Err(GlobalError::Unexpected { kind: "cast" })
            }
        }
    }

    pub(crate) fn handle_info(&mut self, i: Info) -> Result<(), GlobalError> {
        match i {
            Info::Reply { tag, node, reply } => {
                if !self.handle_reply(&tag, &node, reply) {
                    tracing::debug!(node = %node.as_str(), "global: late multi_call reply dropped");
                }
            }
            Info::Down { mref, reason } => {
                if !self.handle_call_down(&mref) {
                    self.handle_down(&mref, &reason);
                }
            }
            Info::InitConnectAck { node, my_tag, his_tag } => self.init_connect_ack(node, my_tag, his_tag),
            Info::CancelConnect { node, tag } => self.cancel_connect(node, tag),
            Info::LostConnection { node_a, xcreation, op_id, node_b } => {
                self.lost_connection(node_a, xcreation, op_id, node_b)
            }
            Info::RemoveConnection { node } => self.remove_connection(node),
            Info::LockerLockSet(ls) => self.locker_send(super::locker::LockerMsg::LockSet(ls)),
            Info::Whereis { name, from_pid, from_tag } => {
                let r = self.whereis(&name).map(Term::Pid).unwrap_or_else(|| Term::atom("undefined"));
                self.reply(&from_pid, from_tag, r);
            }
            Info::Ignored => {}
            Info::Other(msg) => {
                tracing::warn!(%msg, "global_name_server received an unexpected message");
                return Err(GlobalError::Unexpected { kind: "info" });
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ names

    /// `ins_name/6`: replaces any holder of the name, monitors the pid, and drops the name again
    /// if the `global` lock it was registered under is gone (`lock_still_set/3`).
    pub(crate) fn ins_name(&mut self, e: NameEntry, by: &InsertedBy) {
        self.delete_global_name(&e.name);
        if self.names.len() >= MAX_NAMES {
            tracing::error!(name = %e.name, limit = MAX_NAMES, "global: name table full; registration dropped");
            return;
        }
        let mref = self.monitor_pid(&e.pid);
        let name = e.name.clone();
        self.names.insert(e.name, NameRec { pid: e.pid, method: e.method, mref });
        if !self.lock_still_set(by) {
            self.delete_global_name(&name);
        }
    }

    fn ins_name_ext(&mut self, e: NameEntry, reg_node: Atom, by: &InsertedBy) {
        self.delete_global_name(&e.name);
        if self.names.ext_len() >= MAX_NAMES_EXT {
            tracing::error!(name = %e.name, "global: external name table full; registration dropped");
            return;
        }
        let ext = ExtEntry { name: e.name.clone(), pid: e.pid.clone(), reg_node };
        self.ins_name(e, by);
        if self.names.contains(&ext.name) {
            self.names.insert_ext(ext);
        }
    }

    /// `delete_global_name2/2`.
    pub(crate) fn delete_global_name(&mut self, name: &Term) {
        if let Some(rec) = self.names.remove(name) {
            self.demonitor(rec.mref);
        }
    }

    /// `lock_still_set/3`.
    fn lock_still_set(&self, by: &InsertedBy) -> bool {
        let global = Term::atom("global");
        match (self.locks.get(&global), by) {
            (Some(rec), InsertedBy::Pid(p)) => rec.holders.iter().any(|(h, _)| h == p),
            (Some(rec), InsertedBy::Sync { lock }) => match lock.as_ref().and_then(|l| l.as_tuple()) {
                Some([g, id]) if g.is_atom("global") => id == &rec.requester,
                _ => false,
            },
            (None, _) => !self.global_lock_down,
        }
    }

    /// `do_ops/5`: external names first, then the other inserts, then deletes.
    pub(crate) fn do_ops(&mut self, ops: &[Op], names_ext: &[ExtEntry], by: &InsertedBy) {
        let mut ext_names: Vec<&Term> = Vec::new();
        for op in ops {
            if let Op::Insert(e) = op {
                if let Some(x) = names_ext.iter().find(|x| x.name == e.name && x.pid == e.pid) {
                    self.ins_name_ext(e.clone(), x.reg_node.clone(), by);
                    ext_names.push(&e.name);
                }
            }
        }
        for op in ops {
            if let Op::Insert(e) = op {
                if !ext_names.contains(&&e.name) {
                    self.ins_name(e.clone(), by);
                }
            }
        }
        for op in ops {
            if let Op::Delete(n) = op {
                self.delete_global_name(n);
            }
        }
    }

    // ------------------------------------------------------------------ locks

    fn can_set_lock(&self, res: &Term, req: &Term) -> bool {
        self.locks.get(res).is_none_or(|l| &l.requester == req)
    }

    /// `can_set_lock/1` for an id term `{ResourceId, LockRequesterId}`.
    pub(crate) fn can_set_lock_term(&self, id: &Term) -> bool {
        match id.as_tuple() {
            Some([res, req]) => self.can_set_lock(res, req),
            _ => false,
        }
    }

    /// `handle_set_lock/3`.
    pub(crate) fn handle_set_lock(&mut self, res: Term, req: Term, pid: &Pid) -> bool {
        match self.locks.get(&res) {
            Some(l) if l.requester != req => false,
            Some(l) if l.holders.iter().any(|(p, _)| p == pid) => true,
            Some(l) if l.holders.len() >= MAX_LOCK_HOLDERS => {
                tracing::warn!(resource = %res, "global: too many lock holders; set_lock refused");
                false
            }
            None if self.locks.len() >= MAX_LOCKS => {
                tracing::warn!(resource = %res, "global: lock table full; set_lock refused");
                false
            }
            _ => {
                // The server does not monitor itself (its locks die with it anyway).
                let mref = if pid == &self.gns { None } else { Some(self.monitor_pid(pid)) };
                self.locks.add_holder(res, req, pid.clone(), mref);
                true
            }
        }
    }

    /// `handle_del_lock/3`.
    pub(crate) fn handle_del_lock(&mut self, res: &Term, req: &Term, pid: &Pid) {
        if self.locks.get(res).is_some_and(|l| &l.requester == req) {
            self.remove_lock(res, pid, false);
        }
    }

    /// `remove_lock/6`: `down` says whether the holder died (sets `global_lock_down`).
    fn remove_lock(&mut self, res: &Term, pid: &Pid, down: bool) {
        let (mref, gone) = self.locks.remove_holder(res, pid);
        if let Some(m) = mref {
            if !down {
                self.demonitor(m);
            }
        }
        if gone && res.is_atom("global") {
            self.global_lock_down = down;
        }
    }

    /// A monitored pid died: drop its lock and name (`delete_lock/2`, `del_name/2`).
    pub(crate) fn handle_down(&mut self, mref: &crate::term::Reference, reason: &Term) {
        if let Some((res, pid)) = self.locks.by_mref(mref) {
            tracing::debug!(resource = %res, ?pid, %reason, "global: lock holder died");
            self.remove_lock(&res, &pid, true);
        }
        if let Some(name) = self.names.by_mref(mref).cloned() {
            tracing::debug!(%name, %reason, "global: registered process died");
            // the monitor fired; nothing to demonitor
            self.names.remove(&name);
        }
    }

    /// The connection to `node` is gone: its processes' names and locks go, as their monitors
    /// would report `noconnection`, and calls waiting on it fail.
    pub(crate) fn drop_node_resources(&mut self, node: &Atom) {
        for name in self.names.on_node(node) {
            self.delete_global_name(&name);
        }
        for (res, pid) in self.locks.held_on_node(node) {
            let (mref, gone) = self.locks.remove_holder(&res, &pid);
            if let Some(m) = mref {
                self.demonitor(m);
            }
            if gone && res.is_atom("global") {
                self.global_lock_down = true;
            }
        }
        self.fail_calls_to(node);
    }

    /// `mk_known_list/2`: plain nodes for `vsn < 7`, else `{Node, Vsn}`.
    pub(crate) fn mk_known_list(&self, vsn: i64) -> Term {
        if vsn < super::PGPV_VSN {
            Term::List(self.known.keys().map(|n| Term::Atom(n.clone())).collect())
        } else {
            let v: Vec<(Atom, i64)> = self.known.iter().map(|(n, v)| (n.clone(), *v)).collect();
            super::wire::node_vsn_list(&v)
        }
    }
}
