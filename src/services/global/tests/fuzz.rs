//! Real protocol messages, mutated, fed into running cores: nothing may panic, no message storm
//! may start (the harness fails a run that makes 20 000 deliveries without time passing), no
//! multi-call may stay in flight, our locker must let go, and no lock may remain but those a
//! forged `set_lock` asked for (a peer may take any lock in the name of any live process).
//!
//! Sync *liveness* is not a property under forgery: a forged `in_sync` or `new_nodes` tells a
//! node lies about who it is synced with, which BEAM cannot recover from either; the unforged
//! cluster tests check liveness.

use std::time::Duration;

use proptest::prelude::*;

use super::harness::{Cluster, atom};
use crate::node::Dest;
use crate::services::global::Action;
use crate::term::{Atom, Pid, Term};

const NODES: [&str; 3] = ["a@h", "b@h", "c@h"];

/// Every message sent to a name server during a full 3-node sync with registrations.
fn corpus() -> Vec<Term> {
    let mut c = Cluster::new(&NODES, 77);
    let p = c.spawn("b@h");
    c.register("b@h", "x", &p);
    c.connect("a@h", "b@h");
    c.connect("b@h", "c@h");
    c.settle(Duration::from_secs(30));
    let q = c.spawn("c@h");
    c.register("c@h", "y", &q);
    c.settle(Duration::from_secs(30));
    c.log
        .iter()
        .filter_map(|l| match &l.action {
            Action::Send { to: Dest::Remote(..), msg, .. } => Some(msg.clone()),
            Action::Send { to: Dest::Pid(p), msg, .. } if p.id == 3 => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn count(t: &Term) -> usize {
    1 + match t {
        Term::Tuple(v) | Term::List(v) => v.iter().map(count).sum(),
        _ => 0,
    }
}

/// Replaces the `n`-th subterm (pre-order) with `with`.
fn replace(t: &mut Term, n: &mut usize, with: &Term) -> bool {
    if *n == 0 {
        *t = with.clone();
        return true;
    }
    *n -= 1;
    if let Term::Tuple(v) | Term::List(v) = t {
        for e in v {
            if replace(e, n, with) {
                return true;
            }
        }
    }
    false
}

fn junk(k: u8, i: i64) -> Term {
    match k % 9 {
        0 => Term::Int(i),
        1 => Term::atom("junk"),
        2 => Term::nil(),
        3 => Term::Tuple(vec![]),
        4 => Term::Pid(Pid { node: atom(NODES[(i.unsigned_abs() % 3) as usize]), id: 900, serial: 0, creation: 7 }),
        5 => Term::Pid(Pid { node: atom("ghost@h"), id: 1, serial: 0, creation: 1 }),
        6 => Term::atom(NODES[(i.unsigned_abs() % 3) as usize]),
        7 => Term::Int(super::super::MIN_64BIT_SMALL_INT + (i % 8)),
        _ => Term::List(vec![Term::Int(i); 3]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn mutated_messages_never_panic_and_never_wedge(
        seed in 0u64..1000,
        warmup in 0usize..60,
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u16>(), 0u8..9, -4i64..4, 0usize..3), 1..6),
    ) {
        let corpus = corpus();
        let mut c = Cluster::new(&NODES, seed);
        let p = c.spawn("a@h");
        c.register("a@h", "x", &p);
        c.connect("a@h", "b@h");
        c.connect("b@h", "c@h");
        for _ in 0..warmup {
            if !c.step() { break; }
        }
        let mut forged_locks = Vec::new();
        for (which, at, kind, i, target) in muts {
            let mut m = corpus[which.index(corpus.len())].clone();
            let mut n = at as usize % count(&m);
            replace(&mut m, &mut n, &junk(kind, i));
            forged_locks.extend(set_lock_ids(&m));
            let now = c.now;
            let node = atom(NODES[target]);
            if let Some(core) = c.cores.get_mut(&node) {
                let _ = core.handle_message(m, now);
            }
            c.flush(&node);
            c.step();
        }
        c.settle(Duration::from_secs(600));
        // A replayed or forged `lock_set true` carrying the live session tag makes a locker lock
        // its partition and wait for a sync the peer never started. BEAM's locker waits the same
        // way (neither `lock_is_set/5` nor `wait_cancel_lock/6` has a timeout) until the nodedown
        // cancels the session; so a locker still waiting on a peer must let go once that peer
        // disconnects. A locker stuck anywhere else (in a multi-call, releasing) is a wedge.
        let waiting: Vec<(Atom, Atom)> = c
            .cores
            .values()
            .filter_map(|g| g.locker.waiting_on_peer().map(|p| (g.node().clone(), p.clone())))
            .collect();
        for (n, peer) in &waiting {
            c.disconnect(n.as_str(), peer.as_str());
        }
        c.settle(Duration::from_secs(600));
        // A peer may take any lock in the name of any live process (BEAM trusts `From` too), so
        // locks a forged set_lock asked for may stay; nothing else may.
        for g in c.cores.values() {
            prop_assert!(g.calls.is_empty(), "{:?}: calls in flight", g.node());
            prop_assert!(!g.locker.holds(), "{:?}: locker still holds a lock", g.node());
            for (res, req) in g.locks.ids() {
                prop_assert!(
                    forged_locks.contains(&(res.clone(), req.clone())),
                    "{:?}: lock {} {} left", g.node(), res, req
                );
            }
        }
    }
}

/// `{Resource, Requester}` of a `set_lock` call.
fn set_lock_ids(m: &Term) -> Vec<(Term, Term)> {
    match m.as_tuple() {
        Some([k, _, req]) if k.is_atom("$gen_call") => match req.as_tuple() {
            Some([s, id]) if s.is_atom("set_lock") => match id.as_tuple() {
                Some([r, q]) => vec![(r.clone(), q.clone())],
                _ => vec![],
            },
            _ => vec![],
        },
        _ => vec![],
    }
}
