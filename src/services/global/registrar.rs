//! The registrar ("the_registrar" in `global.erl`): runs local registrations one at a time
//! under `trans_all_known/1` (protocol notes 7.4).
//!
//! 1. `set_lock {global, Registrar}` on the boss, then on every known node and ourselves; on a
//!    `false`, release the boss and sleep a random time (up to 1/8 s doubling each try, at most
//!    8 s: `random_sleep/1`), then retry; also retry if the known set grew meanwhile.
//! 2. Run the operation: `register`/`unregister` as a multi-call to the same nodes (ourselves
//!    included), from the pid that holds the lock.
//! 3. `del_lock` everywhere, the boss last.

use std::collections::VecDeque;
use std::time::Duration;

use super::calls::{Owner, PrimResult};
use super::{Action, Global, OpId};
use crate::term::{Atom, Pid, Term};

/// A local request.
#[derive(Clone, Debug)]
pub(crate) enum RegOp {
    Register { name: Term, pid: Pid, method: Term },
    ReRegister { name: Term, pid: Pid, method: Term },
    Unregister { name: Term },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    LockBoss,
    LockAll,
    UndoBoss,
    Sleeping,
    Body,
    DelRest,
    DelBoss,
}

#[derive(Debug)]
struct Run {
    op: OpId,
    req: RegOp,
    times: u32,
    step: Step,
    known: Vec<Atom>,
    nodes: Vec<Atom>,
    boss: Atom,
    result: Term,
}

/// The registrar's queue and the request it is running.
#[derive(Debug, Default)]
pub(crate) struct Registrar {
    pub queue: VecDeque<(OpId, RegOp)>,
    cur: Option<Run>,
    pub deadline: Option<std::time::Instant>,
    pub prim: Option<super::calls::Prim>,
}

impl Global {
    fn reg_id(&self) -> Term {
        Term::Tuple(vec![Term::atom("global"), Term::Pid(self.gns.clone())])
    }

    /// Starts the next request if the registrar is free.
    pub(crate) fn registrar_kick(&mut self) {
        if self.registrar.cur.is_some() {
            return;
        }
        let Some((op, req)) = self.registrar.queue.pop_front() else {
            return;
        };
        let boss = self.node.clone();
        self.registrar.cur = Some(Run {
            op,
            req,
            times: 0,
            step: Step::LockBoss,
            known: Vec::new(),
            nodes: Vec::new(),
            boss,
            result: Term::atom("no"),
        });
        self.registrar_try_lock();
    }

    /// `set_lock_known/2`: boss first.
    fn registrar_try_lock(&mut self) {
        let known: Vec<Atom> = self.known.keys().cloned().collect();
        let mut nodes = vec![self.node.clone()];
        nodes.extend(known.iter().cloned());
        let boss = nodes.iter().max().cloned().unwrap_or_else(|| self.node.clone());
        let Some(run) = self.registrar.cur.as_mut() else {
            return;
        };
        run.known = known;
        run.nodes = nodes;
        run.boss = boss.clone();
        run.step = Step::LockBoss;
        let id = self.reg_id();
        if let Some(r) = self.prim_set_lock(Owner::Registrar, &id, &[boss]) {
            self.registrar_resume(r);
        }
    }

    pub(crate) fn registrar_resume(&mut self, r: PrimResult) {
        let mut r = r;
        while let Some(n) = self.registrar_step(r) {
            r = n;
        }
        self.registrar_kick();
    }

    fn registrar_step(&mut self, r: PrimResult) -> Option<PrimResult> {
        let id = self.reg_id();
        let (step, nodes, boss) = {
            let run = self.registrar.cur.as_ref()?;
            (run.step, run.nodes.clone(), run.boss.clone())
        };
        let ok = r == PrimResult::Bool(true);
        match step {
            Step::LockBoss if ok => {
                self.set_step(Step::LockAll);
                self.prim_set_lock(Owner::Registrar, &id, &nodes)
            }
            Step::LockBoss => {
                self.registrar_sleep();
                None
            }
            Step::LockAll => {
                let grew = ok && {
                    let known = self.registrar.cur.as_ref().map(|r| r.known.clone()).unwrap_or_default();
                    self.known.keys().any(|n| !known.contains(n))
                };
                if ok && !grew {
                    self.registrar_body(&nodes)
                } else {
                    self.set_step(Step::UndoBoss);
                    self.prim_del_lock(Owner::Registrar, &id, &[boss])
                }
            }
            Step::UndoBoss => {
                self.registrar_sleep();
                None
            }
            Step::Sleeping => None,
            Step::Body => {
                self.set_step(Step::DelRest);
                let rest: Vec<Atom> = nodes.iter().filter(|n| **n != boss).cloned().collect();
                self.prim_del_lock(Owner::Registrar, &id, &rest)
            }
            Step::DelRest => {
                self.set_step(Step::DelBoss);
                self.prim_del_lock(Owner::Registrar, &id, &[boss])
            }
            Step::DelBoss => {
                let run = self.registrar.cur.take()?;
                self.push(Action::OpDone { op: run.op, result: run.result });
                None
            }
        }
    }

    fn set_step(&mut self, s: Step) {
        if let Some(run) = self.registrar.cur.as_mut() {
            run.step = s;
        }
    }

    /// The registrar holds `{global, Self}` on `nodes`: run the request.
    fn registrar_body(&mut self, nodes: &[Atom]) -> Option<PrimResult> {
        let req = self.registrar.cur.as_ref()?.req.clone();
        self.set_step(Step::Body);
        let (result, call) = match req {
            RegOp::Register { name, pid, method } => {
                let free = !self.names.contains(&name);
                let dup = self.names.names_of(&pid);
                if free && dup.is_empty() {
                    let call = Term::Tuple(vec![Term::atom("register"), name, Term::Pid(pid), method]);
                    (Term::atom("yes"), Some(call))
                } else {
                    if free {
                        tracing::error!(?pid, names = ?dup, "global: pid registered under several names");
                    }
                    (Term::atom("no"), None)
                }
            }
            RegOp::ReRegister { name, pid, method } => {
                let call = Term::Tuple(vec![Term::atom("register"), name, Term::Pid(pid), method]);
                (Term::atom("yes"), Some(call))
            }
            RegOp::Unregister { name } => (Term::atom("ok"), Some(Term::Tuple(vec![Term::atom("unregister"), name]))),
        };
        if let Some(run) = self.registrar.cur.as_mut() {
            run.result = result;
        }
        match call {
            Some(c) => self.prim_call(Owner::Registrar, nodes, c),
            None => Some(PrimResult::Done),
        }
    }

    /// `random_sleep(Times)`: uniform in 1..=Tmax ms, Tmax = 2^Times * 1000 / 8, at most 8000.
    fn registrar_sleep(&mut self) {
        let times = self.registrar.cur.as_ref().map(|r| r.times).unwrap_or(0);
        let tmax: u64 = if times > 5 { 8000 } else { ((1u64 << times) * 1000) / 8 };
        let t = 1 + self.random_below(tmax);
        self.registrar.deadline = Some(self.now + Duration::from_millis(t));
        if let Some(run) = self.registrar.cur.as_mut() {
            run.times += 1;
            run.step = Step::Sleeping;
        }
    }

    pub(crate) fn registrar_timeout(&mut self) {
        match self.registrar.deadline {
            Some(d) if d <= self.now => {
                self.registrar.deadline = None;
                self.registrar_try_lock();
            }
            _ => {}
        }
    }
}
