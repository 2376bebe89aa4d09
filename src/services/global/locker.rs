//! The locker ("the_locker" in `global.erl`): before two partitions exchange names, each locks
//! its own partition and one node of the other with the shared id
//! `{global, lists:sort([Locker1, Locker2])}`, boss (the largest node name) first.
//!
//! On BEAM it is a process that blocks in multi-calls and selective receives. Here it is a state
//! machine with a mailbox: while it waits for replies or for a specific message, other messages
//! stay queued, in order, as in a BEAM mailbox.
//!
//! Two ways to take the lock, as in OTP:
//! - **select**: after a wait (200 ms with no known nodes, else `min(1000 + 100·|known|, 3000)`
//!   ms, 0 right after a success), pick a pending peer, lock boss, `[Self, Peer]`, the rest, send
//!   `lock_set true` and wait for the peer's `lock_set`;
//! - **spontaneous**: the peer's `lock_set true` arrives first; lock boss, `[Self]`, the rest, and
//!   answer with our `lock_set`.
//!
//! Then the server is told (`lock_is_set`), and the lock is held until the server cancels the
//! session (after `resolved`, running the `new_nodes` send first) or the node goes away.

use std::collections::VecDeque;
use std::time::Duration;

use super::calls::{Owner, PrimResult};
use super::limits::MAX_LOCKER_MAILBOX;
use super::resolve::locker_lock_id;
use super::wire::{self, LockSet};
use super::{Action, Global, PGPV_VSN, VERIFY_CONNECT_VSN};
use crate::node::Dest;
use crate::term::{Atom, Pid, Term};

/// A peer whose locker we may sync with (`#him{}`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Him {
    pub node: Atom,
    pub locker: Pid,
    pub vsn: i64,
    pub my_tag: i64,
    pub his_tag: Term,
}

/// The `new_nodes` casts the locker sends before releasing the lock (the `Fun` of `cancel`).
#[derive(Clone, Debug)]
pub(crate) struct NewNodesFun {
    /// The nodes known before the sync, with versions.
    pub targets: Vec<(Atom, i64)>,
    /// For nodes speaking version 7 or later.
    pub msg_new: Term,
    /// For older nodes (plain node list).
    pub msg_old: Term,
}

/// A message for the locker.
#[derive(Clone, Debug)]
pub(crate) enum LockerMsg {
    HisTheLocker(Him),
    Cancel { node: Atom, tag: Option<i64>, fun: Option<NewNodesFun> },
    LockSet(LockSet),
    AddToKnown(Vec<Atom>),
    RemoveFromKnown(Atom),
}

#[derive(Clone, Debug)]
enum Purpose {
    Select(Him),
    Spontaneous { him: Him, pid: Pid },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SafelyStep {
    First,
    Second,
    Rest,
    UndoFirst,
    UndoBoth,
}

#[derive(Clone, Debug)]
enum AfterRelease {
    Idle,
    /// The sync with `node` is over: forget that peer entry.
    Done {
        node: Atom,
        tag: i64,
    },
}

#[derive(Clone, Debug, Default)]
enum Phase {
    /// The main loop: taking messages, waiting for the timer.
    #[default]
    Idle,
    /// `lock_nodes_safely/3` in progress.
    Safely { lock_id: Term, purpose: Purpose, first: Vec<Atom>, second: Vec<Atom>, step: SafelyStep },
    /// Our partition is locked; waiting for the peer's `lock_set` (`lock_is_set/5`).
    AwaitLockSet { him: Him, lock_id: Term, known1: Vec<Atom> },
    /// Both partitions locked; waiting for the server's cancel (`wait_cancel_lock/6`).
    Holding { node: Atom, tag: i64, lock_id: Term, known: Vec<Atom> },
    /// `delete_global_lock/2`: everyone but the boss, then the boss.
    Releasing { lock_id: Term, boss: Atom, boss_sent: bool, then: AfterRelease },
}

/// The locker's state (`#multi{}` plus where it is in its loop).
#[derive(Debug, Default)]
pub(crate) struct Locker {
    local: Vec<Him>,
    remote: Vec<Him>,
    known: Vec<Atom>,
    just_synced: bool,
    mailbox: VecDeque<LockerMsg>,
    phase: Phase,
    pub deadline: Option<std::time::Instant>,
    pub prim: Option<super::calls::Prim>,
}

impl Locker {
    /// `true` while the locker holds (or is taking or releasing) a partition lock.
    #[cfg(test)]
    pub fn holds(&self) -> bool {
        !matches!(self.phase, Phase::Idle) || self.prim.is_some()
    }

    /// The peer whose message the locker is waiting for, holding our partition's lock: its
    /// `lock_set` (`lock_is_set/5`) or the server's cancel for it (`wait_cancel_lock/6`).
    #[cfg(test)]
    pub fn waiting_on_peer(&self) -> Option<&Atom> {
        match &self.phase {
            Phase::AwaitLockSet { him, .. } => Some(&him.node),
            Phase::Holding { node, .. } => Some(node),
            _ => None,
        }
    }
}

fn host(node: &Atom) -> &str {
    node.as_str().split_once('@').map(|(_, h)| h).unwrap_or("")
}

/// `L -- [X]` for each X of `remove` (one occurrence each).
fn subtract(list: &[Atom], remove: &[Atom]) -> Vec<Atom> {
    let mut out = list.to_vec();
    for r in remove {
        if let Some(i) = out.iter().position(|x| x == r) {
            out.remove(i);
        }
    }
    out
}

impl Global {
    /// Puts a message in the locker's mailbox.
    pub(crate) fn locker_send(&mut self, m: LockerMsg) {
        if self.locker.mailbox.len() >= MAX_LOCKER_MAILBOX {
            tracing::error!(?m, "global: locker mailbox full; message dropped");
            return;
        }
        self.locker.mailbox.push_back(m);
    }

    fn the_boss(&self) -> Atom {
        let mut boss = self.node.clone();
        for n in &self.locker.known {
            if *n > boss {
                boss = n.clone();
            }
        }
        boss
    }

    /// Lets the locker take whatever it can from its mailbox in its current phase.
    pub(crate) fn locker_poll(&mut self) {
        loop {
            let progressed = match &self.locker.phase {
                Phase::Idle => match self.locker.mailbox.pop_front() {
                    Some(m) => {
                        self.locker_idle_msg(m);
                        if matches!(self.locker.phase, Phase::Idle) {
                            self.locker_rearm();
                        }
                        true
                    }
                    None => false,
                },
                Phase::AwaitLockSet { .. } => self.locker_await_lock_set(),
                Phase::Holding { .. } => self.locker_holding(),
                Phase::Safely { .. } | Phase::Releasing { .. } => false,
            };
            if !progressed {
                break;
            }
        }
    }

    /// The main loop's wait: restarted by every message, as BEAM's `receive ... after` is.
    /// Like BEAM's `after 0` branch, every turn that finds the mailbox empty forgets
    /// `just_synced`, also one with nothing to do: only the wait right after a sync is skipped.
    fn locker_rearm(&mut self) {
        let just_synced = if self.locker.mailbox.is_empty() {
            std::mem::take(&mut self.locker.just_synced)
        } else {
            self.locker.just_synced
        };
        if self.locker.local.is_empty() && self.locker.remote.is_empty() {
            self.locker.deadline = None;
            return;
        }
        let ms = if just_synced {
            0
        } else if self.locker.known.is_empty() {
            200
        } else {
            (1000 + 100 * self.locker.known.len() as u64).min(3000)
        };
        self.locker.deadline = Some(self.now + Duration::from_millis(ms));
    }

    fn enter_idle(&mut self) {
        self.locker.phase = Phase::Idle;
        self.locker_rearm();
    }

    fn locker_idle_msg(&mut self, m: LockerMsg) {
        match m {
            LockerMsg::HisTheLocker(him) => {
                if host(&him.node) == host(&self.node) {
                    self.locker.local.insert(0, him);
                } else {
                    self.locker.remote.insert(0, him);
                }
            }
            LockerMsg::Cancel { tag: None, .. } => {}
            LockerMsg::Cancel { fun: Some(_), node, .. } => {
                // BEAM's main loop only matches `no_fun` cancels; the send is not run.
                tracing::warn!(node = %node.as_str(), "global locker: unexpected cancel with a fun");
            }
            LockerMsg::Cancel { node, tag: Some(tag), fun: None } => self.remove_him(&node, tag),
            LockerMsg::LockSet(LockSet { set: false, .. }) => {}
            LockerMsg::LockSet(LockSet { pid, set: true, tag }) => {
                let found = self.find_him(&pid.node);
                match found {
                    Some(him) if tag.as_ref().is_none_or(|t| t == &Term::Int(him.my_tag)) => {
                        let lock_id = locker_lock_id(&self.gns, &pid);
                        self.locker_start_safely(lock_id, Purpose::Spontaneous { him, pid }, Vec::new());
                    }
                    _ => {
                        // not_there: a version-5 style `lock_set false` straight to its locker
                        let msg = Term::Tuple(vec![
                            Term::atom("lock_set"),
                            Term::Pid(self.gns.clone()),
                            Term::atom("false"),
                            wire::node_list(&self.locker.known),
                        ]);
                        self.push(Action::Send { to: Dest::Pid(pid), msg, connect: true });
                    }
                }
            }
            LockerMsg::AddToKnown(nodes) => self.locker_add_known(nodes),
            LockerMsg::RemoveFromKnown(n) => self.locker_remove_known(&n),
        }
    }

    fn locker_add_known(&mut self, nodes: Vec<Atom>) {
        let mut k = nodes;
        k.append(&mut self.locker.known);
        self.locker.known = k;
    }

    fn locker_remove_known(&mut self, n: &Atom) {
        if let Some(i) = self.locker.known.iter().position(|x| x == n) {
            self.locker.known.remove(i);
        }
    }

    /// `update_locker_known/1`: take every pending known-set change from the mailbox.
    fn locker_update_known(&mut self) {
        let mut rest = VecDeque::new();
        while let Some(m) = self.locker.mailbox.pop_front() {
            match m {
                LockerMsg::AddToKnown(n) => self.locker_add_known(n),
                LockerMsg::RemoveFromKnown(n) => self.locker_remove_known(&n),
                other => rest.push_back(other),
            }
        }
        self.locker.mailbox = rest;
    }

    fn find_him(&self, node: &Atom) -> Option<Him> {
        self.locker.local.iter().chain(self.locker.remote.iter()).find(|h| &h.node == node).cloned()
    }

    fn remove_him(&mut self, node: &Atom, tag: i64) {
        for list in [&mut self.locker.local, &mut self.locker.remote] {
            if let Some(i) = list.iter().position(|h| &h.node == node && h.my_tag == tag) {
                list.remove(i);
            }
        }
    }

    /// The wait is over: lock a partition unless someone holds the `global` lock here.
    pub(crate) fn locker_timeout(&mut self) {
        let Some(d) = self.locker.deadline else {
            return;
        };
        if d > self.now || !matches!(self.locker.phase, Phase::Idle) {
            return;
        }
        self.locker.deadline = None;
        if self.locks.is_set(&Term::atom("global")) {
            self.locker_rearm();
            return;
        }
        self.select_node();
    }

    /// `select_node/1`: same-host peers first, a random one of them.
    fn select_node(&mut self) {
        let use_remote = self.locker.local.is_empty();
        let known = self.locker.known.clone();
        let list = if use_remote { &mut self.locker.remote } else { &mut self.locker.local };
        list.retain(|h| !known.contains(&h.node));
        let len = list.len() as u64;
        if len == 0 {
            self.locker_rearm();
            return;
        }
        let i = self.random_below(len) as usize;
        let list = if use_remote { &self.locker.remote } else { &self.locker.local };
        let Some(him) = list.get(i).cloned() else {
            return;
        };
        let lock_id = locker_lock_id(&self.gns, &him.locker);
        let extra = vec![him.node.clone()];
        self.locker_start_safely(lock_id, Purpose::Select(him), extra);
    }

    /// `lock_nodes_safely(LockId, Extra, S)`.
    fn locker_start_safely(&mut self, lock_id: Term, purpose: Purpose, extra: Vec<Atom>) {
        let boss = self.the_boss();
        let first = vec![boss.clone()];
        if boss != self.node && !self.can_set_lock_term(&lock_id) {
            return self.locker_safely_done(purpose, lock_id, false);
        }
        let mut second = vec![self.node.clone()];
        second.extend(extra);
        self.locker.phase =
            Phase::Safely { lock_id: lock_id.clone(), purpose, first: first.clone(), second, step: SafelyStep::First };
        self.locker.deadline = None;
        if let Some(r) = self.prim_set_lock(Owner::Locker, &lock_id, &first) {
            self.locker_resume(r);
        }
    }

    /// A primitive the locker started has finished.
    pub(crate) fn locker_resume(&mut self, r: PrimResult) {
        let mut r = r;
        loop {
            let next = match std::mem::take(&mut self.locker.phase) {
                Phase::Safely { lock_id, purpose, first, second, step } => {
                    self.locker_safely_step(lock_id, purpose, first, second, step, r)
                }
                Phase::Releasing { lock_id, boss, boss_sent, then } => {
                    self.locker_release_step(lock_id, boss, boss_sent, then)
                }
                other => {
                    self.locker.phase = other;
                    None
                }
            };
            match next {
                Some(n) => r = n,
                None => break,
            }
        }
        self.locker_poll();
    }

    fn locker_safely_step(
        &mut self,
        lock_id: Term,
        purpose: Purpose,
        first: Vec<Atom>,
        second: Vec<Atom>,
        step: SafelyStep,
        r: PrimResult,
    ) -> Option<PrimResult> {
        let ok = r == PrimResult::Bool(true);
        let (next_step, prim) = match (step, ok) {
            (SafelyStep::First, true) => {
                self.locker_update_known();
                let second = subtract(&second, &first);
                let res = self.prim_set_lock(Owner::Locker, &lock_id, &second);
                self.locker.phase = Phase::Safely { lock_id, purpose, first, second, step: SafelyStep::Second };
                return res;
            }
            (SafelyStep::First, false) => {
                self.locker_safely_done(purpose, lock_id, false);
                return None;
            }
            (SafelyStep::Second, true) => {
                let rest = subtract(&self.locker.known, &first);
                (SafelyStep::Rest, self.prim_set_lock(Owner::Locker, &lock_id, &rest))
            }
            (SafelyStep::Second, false) => (SafelyStep::UndoFirst, self.prim_del_lock(Owner::Locker, &lock_id, &first)),
            (SafelyStep::Rest, true) => {
                self.locker_safely_done(purpose, lock_id, true);
                return None;
            }
            (SafelyStep::Rest, false) => {
                let mut so_far = first.clone();
                so_far.extend(second.iter().cloned());
                (SafelyStep::UndoBoth, self.prim_del_lock(Owner::Locker, &lock_id, &so_far))
            }
            (SafelyStep::UndoFirst | SafelyStep::UndoBoth, _) => {
                self.locker_safely_done(purpose, lock_id, false);
                return None;
            }
        };
        self.locker.phase = Phase::Safely { lock_id, purpose, first, second, step: next_step };
        prim
    }

    fn send_lock_set(&mut self, set: bool, to: &Pid, vsn: i64, his_tag: &Term) {
        let mut t = vec![
            Term::atom("lock_set"),
            Term::Pid(self.gns.clone()),
            Term::from(set),
            wire::node_list(&self.locker.known),
        ];
        if vsn >= VERIFY_CONNECT_VSN {
            t.push(his_tag.clone());
        }
        let msg = Term::Tuple(t);
        if vsn < 6 {
            self.push(Action::Send { to: Dest::Pid(to.clone()), msg, connect: true });
        } else {
            self.send_cast(&to.node.clone(), msg);
        }
    }

    fn locker_safely_done(&mut self, purpose: Purpose, lock_id: Term, set: bool) {
        match purpose {
            Purpose::Select(him) => {
                if set {
                    let mut known1 = vec![self.node.clone(), him.node.clone()];
                    known1.extend(self.locker.known.iter().cloned());
                    self.send_lock_set(true, &him.locker, him.vsn, &him.his_tag);
                    self.locker.phase = Phase::AwaitLockSet { him, lock_id, known1 };
                } else {
                    self.enter_idle();
                }
            }
            Purpose::Spontaneous { him, pid } => {
                self.send_lock_set(set, &pid, him.vsn, &him.his_tag);
                if set {
                    let mut known = vec![self.node.clone()];
                    known.extend(self.locker.known.iter().cloned());
                    self.locker.phase =
                        Phase::Holding { node: him.node.clone(), tag: him.my_tag, lock_id: lock_id.clone(), known };
                    self.lock_is_set(&him.node, him.my_tag, lock_id);
                } else {
                    self.locker.just_synced = false;
                    self.enter_idle();
                }
            }
        }
    }

    /// `lock_is_set/5`'s selective receive; `true` if a message was taken.
    fn locker_await_lock_set(&mut self) -> bool {
        let Phase::AwaitLockSet { him, lock_id, known1 } = &self.locker.phase else {
            return false;
        };
        let (him, lock_id, known1) = (him.clone(), lock_id.clone(), known1.clone());
        let my = Term::Int(him.my_tag);
        let pos = self.locker.mailbox.iter().position(|m| match m {
            LockerMsg::LockSet(ls) => ls.pid.node == him.node,
            LockerMsg::Cancel { node, tag, .. } => node == &him.node && *tag == Some(him.my_tag),
            _ => false,
        });
        let Some(i) = pos else { return false };
        let Some(m) = self.locker.mailbox.remove(i) else {
            return false;
        };
        match m {
            LockerMsg::LockSet(ls) => {
                let current = ls.tag.as_ref().is_none_or(|t| t == &my);
                match (ls.set, current) {
                    (true, true) => {
                        // lock_is_set_true_received/6
                        self.locker.phase = Phase::Holding {
                            node: him.node.clone(),
                            tag: him.my_tag,
                            lock_id: lock_id.clone(),
                            known: known1,
                        };
                        self.lock_is_set(&him.node, him.my_tag, lock_id);
                    }
                    (false, true) => {
                        tracing::debug!(node = %him.node.as_str(), "global locker: peer could not lock its partition");
                        self.locker_release(lock_id, &known1, AfterRelease::Idle);
                    }
                    (_, false) => {} // an old session's answer: keep waiting
                }
            }
            LockerMsg::Cancel { fun, .. } => {
                if let Some(f) = fun {
                    self.run_new_nodes(f);
                }
                self.locker_release(lock_id, &known1, AfterRelease::Done { node: him.node, tag: him.my_tag });
            }
            _ => {}
        }
        true
    }

    /// `wait_cancel_lock/6`'s selective receive.
    fn locker_holding(&mut self) -> bool {
        let Phase::Holding { node, tag, lock_id, known } = &self.locker.phase else {
            return false;
        };
        let (node, tag, lock_id, known) = (node.clone(), *tag, lock_id.clone(), known.clone());
        let pos = self
            .locker
            .mailbox
            .iter()
            .position(|m| matches!(m, LockerMsg::Cancel { node: n, tag: Some(t), .. } if n == &node && *t == tag));
        let Some(i) = pos else { return false };
        if let Some(LockerMsg::Cancel { fun: Some(f), .. }) = self.locker.mailbox.remove(i) {
            self.run_new_nodes(f);
        }
        self.locker_release(lock_id, &known, AfterRelease::Done { node, tag });
        true
    }

    /// The cancel's fun: `new_nodes` to every node known before the sync.
    fn run_new_nodes(&mut self, f: NewNodesFun) {
        for (n, v) in f.targets {
            let msg = if v >= PGPV_VSN { f.msg_new.clone() } else { f.msg_old.clone() };
            self.send_cast(&n, msg);
        }
    }

    /// `delete_global_lock(LockId, Nodes)`.
    fn locker_release(&mut self, lock_id: Term, nodes: &[Atom], then: AfterRelease) {
        let mut boss = self.node.clone();
        for n in nodes {
            if *n > boss {
                boss = n.clone();
            }
        }
        let others = subtract(nodes, std::slice::from_ref(&boss));
        self.locker.phase = Phase::Releasing { lock_id: lock_id.clone(), boss, boss_sent: false, then };
        if let Some(r) = self.prim_del_lock(Owner::Locker, &lock_id, &others) {
            self.locker_resume(r);
        }
    }

    fn locker_release_step(
        &mut self,
        lock_id: Term,
        boss: Atom,
        boss_sent: bool,
        then: AfterRelease,
    ) -> Option<PrimResult> {
        if !boss_sent {
            self.locker.phase =
                Phase::Releasing { lock_id: lock_id.clone(), boss: boss.clone(), boss_sent: true, then };
            return self.prim_del_lock(Owner::Locker, &lock_id, std::slice::from_ref(&boss));
        }
        if let AfterRelease::Done { node, tag } = then {
            self.remove_him(&node, tag);
            self.locker.just_synced = true;
        }
        self.enter_idle();
        None
    }
}
