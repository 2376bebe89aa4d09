//! Name-conflict resolution (`global:resolve_it/4` and the resolve methods of Kernel `global`:
//! `random_exit_name/3`, `random_notify_name/3`, `notify_all_name/3`), and the pid order BEAM's
//! `lists:sort/1` uses for lock requester ids.

use std::cmp::Ordering;

use super::Action;
use crate::node::Dest;
use crate::term::{Pid, Term};

/// The resolve methods we can apply without running Erlang code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// `random_exit_name/3`: the pid on the smaller node name keeps the name; the other is
    /// killed (`exit(Pid, kill)`).
    RandomExit,
    /// `random_notify_name/3`: as above, but the loser gets `{global_name_conflict, Name}`.
    RandomNotify,
    /// `notify_all_name/3`: both get `{global_name_conflict, Name, OtherPid}`; nobody keeps it.
    NotifyAll,
    /// Anything else: we cannot run it and treat it as returning `none`.
    Unknown,
}

/// Recognises a method term.
///
/// `global` sends its default as a *local* fun of module `global` (`#Fun<global.0.…>` in OTP
/// 25): `fun random_exit_name/3` is the only arity-3 fun in `global.erl`, so a local fun of
/// `global` with arity 3 and no free variables is taken to be it.
pub fn classify(method: &Term) -> MethodKind {
    match method {
        Term::ExportFun(f) if f.module == "global" && f.arity == 3 => match f.function.as_str() {
            "random_exit_name" => MethodKind::RandomExit,
            "random_notify_name" => MethodKind::RandomNotify,
            "notify_all_name" => MethodKind::NotifyAll,
            _ => MethodKind::Unknown,
        },
        Term::LocalFun(f) if f.module == "global" && f.arity == 3 && f.free_vars.is_empty() => MethodKind::RandomExit,
        // allow_tuple_fun/1: legacy {M, F} methods
        Term::Tuple(t) => match t.as_slice() {
            [m, Term::Atom(f)] if m.is_atom("global") => match f.as_str() {
                "random_exit_name" => MethodKind::RandomExit,
                "random_notify_name" => MethodKind::RandomNotify,
                "notify_all_name" => MethodKind::NotifyAll,
                _ => MethodKind::Unknown,
            },
            _ => MethodKind::Unknown,
        },
        _ => MethodKind::Unknown,
    }
}

/// What a resolve method decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// This pid keeps the name.
    Keep(Pid),
    /// Nobody keeps it (`none`, or anything a method returned that is not one of the pids).
    None,
}

/// `minmax/2`: the pid whose *node name* is smaller first.
fn minmax<'a>(p1: &'a Pid, p2: &'a Pid) -> (&'a Pid, &'a Pid) {
    if p1.node < p2.node { (p1, p2) } else { (p2, p1) }
}

/// `resolve_it(Method, Name, Pid1, Pid2)`: applies `method` and returns the decision plus the
/// signals it sends (the loser's `exit(Pid, kill)`, notifications).
pub fn resolve(method: &Term, name: &Term, pid1: &Pid, pid2: &Pid) -> (Resolution, Vec<Action>) {
    match classify(method) {
        MethodKind::RandomExit => {
            let (min, max) = minmax(pid1, pid2);
            tracing::info!(%name, loser = ?max, "global: Name conflict terminating");
            (Resolution::Keep(min.clone()), vec![Action::Exit { pid: max.clone(), reason: Term::atom("kill") }])
        }
        MethodKind::RandomNotify => {
            let (min, max) = minmax(pid1, pid2);
            let msg = Term::Tuple(vec![Term::atom("global_name_conflict"), name.clone()]);
            (Resolution::Keep(min.clone()), vec![Action::Send { to: Dest::Pid(max.clone()), msg, connect: true }])
        }
        MethodKind::NotifyAll => {
            let note = |to: &Pid, other: &Pid| Action::Send {
                to: Dest::Pid(to.clone()),
                msg: Term::Tuple(vec![Term::atom("global_name_conflict"), name.clone(), Term::Pid(other.clone())]),
                connect: true,
            };
            (Resolution::None, vec![note(pid1, pid2), note(pid2, pid1)])
        }
        MethodKind::Unknown => {
            tracing::info!(%name, %method, "global: cannot run resolve method; treating it as returning none");
            (Resolution::None, Vec::new())
        }
    }
}

/// BEAM's order of two pids: serial, then number, then node name, then creation.
///
/// Checked against OTP 25 (`lists:sort/1` of external pids): `<rust@vm.3.0>` sorts before
/// `<a@vm.56.0>`, so the node is *not* the first key, and the lock id
/// `{global, lists:sort([Locker1, Locker2])}` must be built with this order to equal BEAM's.
pub fn beam_pid_cmp(a: &Pid, b: &Pid) -> Ordering {
    a.cmp(b)
}

/// `{global, lists:sort([P1, P2])}`: the lock id two lockers share.
pub fn locker_lock_id(p1: &Pid, p2: &Pid) -> Term {
    let (x, y) = if beam_pid_cmp(p1, p2) == Ordering::Greater { (p2, p1) } else { (p1, p2) };
    Term::Tuple(vec![Term::atom("global"), Term::List(vec![Term::Pid(x.clone()), Term::Pid(y.clone())])])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{Atom, ExportFun, LocalFun};

    fn pid(node: &str, id: u32, serial: u32) -> Pid {
        Pid { node: Atom::new(node), id, serial, creation: 1 }
    }

    #[test]
    fn pid_order_is_beams() {
        // from t2.out: A's locker sorted [<rust@vm.3.0>, <a@vm.56.0>]
        let r = pid("rust@vm", 3, 0);
        let a = pid("a@vm", 56, 0);
        assert_eq!(
            locker_lock_id(&a, &r),
            Term::Tuple(vec![Term::atom("global"), Term::List(vec![Term::Pid(r.clone()), Term::Pid(a.clone())])])
        );
        assert_eq!(locker_lock_id(&a, &r), locker_lock_id(&r, &a));
        // serial first, then number, then node (checked with erl)
        assert_eq!(beam_pid_cmp(&pid("a@vm", 2, 1), &pid("zz@vm", 3, 0)), Ordering::Greater);
        assert_eq!(beam_pid_cmp(&pid("a@vm", 3, 0), &pid("rust@vm", 3, 0)), Ordering::Less);
    }

    #[test]
    fn methods_are_recognised() {
        let exp = |f: &str| Term::from(ExportFun { module: Atom::new("global"), function: Atom::new(f), arity: 3 });
        assert_eq!(classify(&exp("random_exit_name")), MethodKind::RandomExit);
        assert_eq!(classify(&exp("random_notify_name")), MethodKind::RandomNotify);
        assert_eq!(classify(&exp("notify_all_name")), MethodKind::NotifyAll);
        let local = LocalFun {
            arity: 3,
            uniq: [0; 16],
            index: 0,
            module: Atom::new("global"),
            old_index: Term::Int(0),
            old_uniq: Term::Int(112854349),
            pid: Term::Pid(pid("a@vm", 0, 0)),
            free_vars: vec![],
        };
        assert_eq!(classify(&Term::LocalFun(Box::new(local.clone()))), MethodKind::RandomExit);
        let mut other = local;
        other.module = Atom::new("my_app");
        assert_eq!(classify(&Term::LocalFun(Box::new(other))), MethodKind::Unknown);
    }

    #[test]
    fn random_exit_kills_the_pid_on_the_larger_node_name() {
        let r1 = pid("R1@vm", 3, 0); // 'R' < 'a'
        let a = pid("a@vm", 85, 0);
        let (res, acts) = resolve(&exp_default(), &Term::atom("dup"), &a, &r1);
        assert_eq!(res, Resolution::Keep(r1));
        assert_eq!(acts, vec![Action::Exit { pid: a, reason: Term::atom("kill") }]);
    }

    fn exp_default() -> Term {
        super::super::wire::random_exit_name()
    }
}
