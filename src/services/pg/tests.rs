//! The scope core driven in memory: single exchanges checked effect by effect against the
//! recorded trace (protocol notes section 8, `traces/t8.out`), and a simulated cluster of
//! cores with connections that drop, members that die, and messages delivered in any order,
//! checked to never send what would crash a BEAM scope and to converge.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use proptest::prelude::*;

use super::PgError;
use super::core::{Effect, MAX_PEERS_PER_NODE, ScopeState};
use super::message::{self, PeerMessage};
use crate::node::Dest;
use crate::term::{Atom, Pid, Reference, Term};

fn pid(node: &str, id: u32) -> Pid {
    Pid { node: Atom::new(node), id, serial: 0, creation: 7 }
}

fn g(name: &str) -> Term {
    Term::atom(name)
}

fn effects(core: &mut ScopeState) -> Vec<Effect> {
    std::iter::from_fn(|| core.poll_effect()).collect()
}

fn send(to: &Pid, msg: Term) -> Effect {
    Effect::Send { to: Dest::Pid(to.clone()), msg }
}

fn scope(node: &str) -> ScopeState {
    ScopeState::new(Atom::new("pg"), pid(node, 1))
}

fn peer_msg(t: Term) -> PeerMessage {
    PeerMessage::parse(&t).unwrap().unwrap()
}

fn sorted(mut v: Vec<Pid>) -> Vec<Pid> {
    v.sort_by_key(|p| (p.node.clone(), p.id, p.serial));
    v
}

#[test]
fn start_and_nodeup_discover_visible_nodes_only() {
    let mut r = scope("r@h");
    r.start(&[Atom::new("a@h"), Atom::new("b@h")]);
    let disc = message::discover(r.me());
    assert_eq!(
        effects(&mut r),
        vec![
            Effect::Send { to: Dest::Remote(Atom::new("pg"), Atom::new("a@h")), msg: disc.clone() },
            Effect::Send { to: Dest::Remote(Atom::new("pg"), Atom::new("b@h")), msg: disc.clone() },
        ]
    );
    r.handle_nodeup(&Atom::new("hidden@h"), false);
    r.handle_nodeup(&Atom::new("r@h"), true);
    assert_eq!(effects(&mut r), vec![]);
    r.handle_nodeup(&Atom::new("c@h"), true);
    assert_eq!(effects(&mut r), vec![Effect::Send { to: Dest::Remote(Atom::new("pg"), Atom::new("c@h")), msg: disc }]);
}

#[test]
fn discover_is_answered_as_in_the_trace() {
    // t8.out: A's scope discovers R; R casts sync, monitors A's scope, discovers it back
    let mut r = scope("r@h");
    let member = pid("r@h", 7);
    r.join(g("g1"), std::slice::from_ref(&member)).unwrap();
    assert_eq!(effects(&mut r), vec![Effect::Monitor(member.clone())]);
    let a = pid("a@h", 75);
    r.handle_peer(peer_msg(message::discover(&a)), false).unwrap();
    assert_eq!(
        effects(&mut r),
        vec![
            send(&a, message::sync(r.me(), vec![(g("g1"), vec![member.clone()])])),
            Effect::Monitor(a.clone()),
            send(&a, message::discover(r.me())),
        ]
    );
    // A answers our discover with its sync: it is known now, nothing to send
    let beam_member = pid("a@h", 0);
    r.handle_peer(peer_msg(message::sync(&a, vec![(g("g1"), vec![beam_member.clone()])])), false).unwrap();
    assert_eq!(effects(&mut r), vec![]);
    assert_eq!(r.members(&g("g1")), vec![beam_member.clone(), member.clone()]);
    assert_eq!(r.local_members(&g("g1")), vec![member.clone()]);
    // a known peer discovering again gets a fresh sync, and no discover back
    r.handle_peer(peer_msg(message::discover(&a)), false).unwrap();
    assert_eq!(effects(&mut r), vec![send(&a, message::sync(r.me(), vec![(g("g1"), vec![member])]))]);
}

#[test]
fn joins_and_leaves_are_streamed_to_peers() {
    let mut r = scope("r@h");
    let a = pid("a@h", 75);
    r.handle_peer(peer_msg(message::discover(&a)), false).unwrap();
    effects(&mut r);
    let (m1, m2) = (pid("r@h", 7), pid("r@h", 8));
    r.join(g("g1"), std::slice::from_ref(&m1)).unwrap();
    assert_eq!(
        effects(&mut r),
        vec![Effect::Monitor(m1.clone()), send(&a, message::join(r.me(), &g("g1"), std::slice::from_ref(&m1)))]
    );
    // m1 again (a second membership, no second monitor), and m2, in one join
    r.join(g("g1"), &[m1.clone(), m2.clone()]).unwrap();
    assert_eq!(
        effects(&mut r),
        vec![Effect::Monitor(m2.clone()), send(&a, message::join(r.me(), &g("g1"), &[m1.clone(), m2.clone()]))]
    );
    assert_eq!(r.members(&g("g1")), vec![m1.clone(), m2.clone(), m1.clone()]);
    // leave once: m1 is still in g1 once, so it stays monitored
    assert_eq!(r.leave(&g("g1"), std::slice::from_ref(&m1)), Ok(true));
    assert_eq!(effects(&mut r), vec![send(&a, message::leave(r.me(), std::slice::from_ref(&m1), &[g("g1")]))]);
    assert_eq!(r.leave(&g("g1"), std::slice::from_ref(&m1)), Ok(true));
    assert_eq!(
        effects(&mut r),
        vec![Effect::Demonitor(m1.clone()), send(&a, message::leave(r.me(), std::slice::from_ref(&m1), &[g("g1")]))]
    );
    assert_eq!(r.leave(&g("g1"), std::slice::from_ref(&m1)), Ok(false));
    assert_eq!(r.leave(&g("other"), std::slice::from_ref(&m2)), Ok(false));
    assert_eq!(effects(&mut r), vec![]);
    assert_eq!(r.groups(), vec![g("g1")]);
    // remote pids may not join or leave
    let remote = pid("a@h", 9);
    assert_eq!(r.join(g("g1"), std::slice::from_ref(&remote)), Err(PgError::NotLocal(remote.clone())));
    assert_eq!(r.leave(&g("g1"), &[m2, remote.clone()]), Err(PgError::NotLocal(remote)));
    assert_eq!(effects(&mut r), vec![]);
}

#[test]
fn a_dead_local_member_leaves_every_group_it_was_in() {
    let mut r = scope("r@h");
    let a = pid("a@h", 75);
    r.handle_peer(peer_msg(message::discover(&a)), false).unwrap();
    let m = pid("r@h", 7);
    r.join(g("g1"), std::slice::from_ref(&m)).unwrap();
    r.join(g("g2"), std::slice::from_ref(&m)).unwrap();
    effects(&mut r);
    assert!(r.handle_down(&m));
    // one leave naming both groups (not one per monitor, as the trace's mini_pg did)
    assert_eq!(effects(&mut r), vec![send(&a, message::leave(r.me(), std::slice::from_ref(&m), &[g("g1"), g("g2")]))]);
    assert!(r.groups().is_empty());
    assert!(!r.handle_down(&m));
    assert_eq!(effects(&mut r), vec![]);
}

#[test]
fn remote_membership_follows_join_leave_sync_and_down() {
    let mut r = scope("r@h");
    let a = pid("a@h", 75);
    r.handle_peer(peer_msg(message::discover(&a)), false).unwrap();
    effects(&mut r);
    let (x, y, z) = (pid("a@h", 10), pid("a@h", 11), pid("a@h", 12));
    r.handle_peer(peer_msg(message::join(&a, &g("g1"), std::slice::from_ref(&x))), false).unwrap();
    r.handle_peer(peer_msg(message::join(&a, &g("g1"), &[y.clone(), z.clone()])), false).unwrap();
    r.handle_peer(peer_msg(message::join(&a, &g("g2"), std::slice::from_ref(&x))), false).unwrap();
    assert_eq!(r.members(&g("g1")), vec![y.clone(), z.clone(), x.clone()]);
    assert_eq!(r.local_members(&g("g1")), vec![]);
    r.handle_peer(peer_msg(message::leave(&a, &[y.clone(), x.clone()], &[g("g1")])), false).unwrap();
    assert_eq!(r.members(&g("g1")), vec![z.clone()]);
    assert_eq!(r.groups(), vec![g("g1"), g("g2")]);
    // a sync replaces everything A announced
    r.handle_peer(peer_msg(message::sync(&a, vec![(g("g3"), vec![y.clone()]), (g("g1"), vec![z.clone()])])), false)
        .unwrap();
    assert_eq!(r.groups(), vec![g("g1"), g("g3")]);
    assert_eq!(r.members(&g("g1")), vec![z.clone()]);
    assert_eq!(r.members(&g("g3")), vec![y.clone()]);
    // nothing of this is ever sent anywhere
    assert_eq!(effects(&mut r), vec![]);
    // A's scope goes DOWN (noconnection or not): all its members go
    assert!(r.handle_down(&a));
    assert!(r.groups().is_empty());
    assert!(r.peers().is_empty());
    // ... and late joins and leaves from it are ignored
    assert_eq!(
        r.handle_peer(peer_msg(message::join(&a, &g("g1"), std::slice::from_ref(&x))), false),
        Err(PgError::UnknownPeer(a.clone()))
    );
    assert!(r.groups().is_empty());
}

#[test]
fn a_sync_from_an_unknown_peer_admits_it_and_answers_with_ours() {
    let mut r = scope("r@h");
    let m = pid("r@h", 7);
    r.join(g("g1"), std::slice::from_ref(&m)).unwrap();
    effects(&mut r);
    let a = pid("a@h", 75);
    let x = pid("a@h", 10);
    r.handle_peer(peer_msg(message::sync(&a, vec![(g("g1"), vec![x.clone()])])), false).unwrap();
    assert_eq!(
        effects(&mut r),
        vec![Effect::Monitor(a.clone()), send(&a, message::sync(r.me(), vec![(g("g1"), vec![m.clone()])]))]
    );
    assert_eq!(r.members(&g("g1")), vec![x, m]);
}

#[test]
fn hidden_foreign_local_and_malformed_peers_are_ignored() {
    let mut r = scope("r@h");
    let h = pid("hidden@h", 5);
    assert_eq!(r.handle_peer(peer_msg(message::discover(&h)), true), Err(PgError::HiddenPeer(h.clone())));
    assert_eq!(r.handle_peer(peer_msg(message::sync(&h, vec![])), true), Err(PgError::HiddenPeer(h.clone())));
    let me_too = pid("r@h", 99);
    assert_eq!(r.handle_peer(peer_msg(message::discover(&me_too)), false), Err(PgError::LocalPeer(me_too)));
    assert_eq!(effects(&mut r), vec![]);
    assert!(r.peers().is_empty());

    let a = pid("a@h", 75);
    r.handle_peer(peer_msg(message::discover(&a)), false).unwrap();
    effects(&mut r);
    let elsewhere = pid("b@h", 3);
    assert_eq!(
        r.handle_peer(peer_msg(message::join(&a, &g("g1"), std::slice::from_ref(&elsewhere))), false),
        Err(PgError::ForeignMember { peer: a.clone(), member: elsewhere.clone() })
    );
    assert_eq!(
        r.handle_peer(peer_msg(message::sync(&a, vec![(g("g1"), vec![elsewhere.clone()])])), false),
        Err(PgError::ForeignMember { peer: a.clone(), member: elsewhere })
    );
    // a leave naming a group A never announced would crash a BEAM scope: refused whole
    let x = pid("a@h", 10);
    r.handle_peer(peer_msg(message::join(&a, &g("g1"), std::slice::from_ref(&x))), false).unwrap();
    assert_eq!(
        r.handle_peer(peer_msg(message::leave(&a, std::slice::from_ref(&x), &[g("g1"), g("nope")])), false),
        Err(PgError::UnknownGroup { peer: a.clone(), group: g("nope") })
    );
    assert_eq!(r.members(&g("g1")), vec![x]);
    assert_eq!(effects(&mut r), vec![]);
}

#[test]
fn peers_per_node_are_limited() {
    let mut r = scope("r@h");
    for i in 0..MAX_PEERS_PER_NODE as u32 {
        r.handle_peer(peer_msg(message::discover(&pid("a@h", 100 + i))), false).unwrap();
    }
    let extra = pid("a@h", 999);
    effects(&mut r);
    assert_eq!(
        r.handle_peer(peer_msg(message::discover(&extra)), false),
        Err(PgError::LimitExceeded("MAX_PEERS_PER_NODE"))
    );
    assert_eq!(effects(&mut r), vec![]);
    // another node is not affected
    r.handle_peer(peer_msg(message::discover(&pid("b@h", 1))), false).unwrap();
}

#[test]
fn subscribers_hear_joins_and_leaves() {
    let mut r = scope("r@h");
    let a = pid("a@h", 75);
    r.handle_peer(peer_msg(message::discover(&a)), false).unwrap();
    let m = pid("r@h", 7);
    r.join(g("g1"), std::slice::from_ref(&m)).unwrap();
    effects(&mut r);
    let watcher = pid("r@h", 50);
    let whole = Reference::new(Atom::new("r@h"), 7, &[1, 2, 3]).unwrap();
    let one = Reference::new(Atom::new("r@h"), 7, &[4, 5, 6]).unwrap();
    assert_eq!(r.monitor_scope(whole.clone(), watcher.clone()), vec![(g("g1"), vec![m.clone()])]);
    assert_eq!(r.monitor_group(one.clone(), watcher.clone(), g("g2")), vec![]);
    let note = |r: &Reference, verb: &str, group: &str, pids: &[Pid]| {
        send(
            &watcher,
            Term::Tuple(vec![
                Term::Ref(r.clone()),
                Term::atom(verb),
                g(group),
                Term::List(pids.iter().cloned().map(Term::Pid).collect()),
            ]),
        )
    };
    let x = pid("a@h", 10);
    r.handle_peer(peer_msg(message::join(&a, &g("g2"), std::slice::from_ref(&x))), false).unwrap();
    let got = effects(&mut r);
    assert_eq!(got.len(), 2);
    assert!(got.contains(&note(&whole, "join", "g2", std::slice::from_ref(&x))));
    assert!(got.contains(&note(&one, "join", "g2", std::slice::from_ref(&x))));
    assert!(r.demonitor(&one));
    assert!(!r.demonitor(&one));
    r.handle_down(&m);
    let got = effects(&mut r);
    assert!(got.contains(&note(&whole, "leave", "g1", std::slice::from_ref(&m))), "{got:?}");
    r.handle_down(&a);
    assert_eq!(effects(&mut r), vec![note(&whole, "leave", "g2", std::slice::from_ref(&x))]);
}

// ---------------------------------------------------------------------- simulated cluster

#[derive(Debug)]
enum Item {
    Msg { from: usize, msg: Term },
    Down(Pid),
}

struct SimScope {
    core: ScopeState,
    inbox: VecDeque<Item>,
    monitors: HashSet<Pid>,
}

/// Several nodes, each running the scope `pg`, wired through a fake network: per-destination
/// FIFO inboxes, connections that can drop (in-flight messages lost, `DOWN noconnection` to
/// monitors across), and local members that die.
struct Sim {
    nodes: Vec<Atom>,
    scopes: Vec<SimScope>,
    connected: HashSet<(usize, usize)>,
    alive: HashSet<Pid>,
    /// What each node's API calls established: member -> groups (multiset), the truth the
    /// cluster must converge to.
    model: Vec<HashMap<Pid, Vec<Term>>>,
}

impl Sim {
    fn new(n: usize) -> Sim {
        let nodes: Vec<Atom> = (0..n).map(|i| Atom::new(&format!("n{i}@h"))).collect();
        let scopes = nodes
            .iter()
            .map(|node| SimScope {
                core: ScopeState::new(Atom::new("pg"), Pid { node: node.clone(), id: 1, serial: 0, creation: 1 }),
                inbox: VecDeque::new(),
                monitors: HashSet::new(),
            })
            .collect();
        Sim { nodes, scopes, connected: HashSet::new(), alive: HashSet::new(), model: vec![HashMap::new(); n] }
    }

    fn is_connected(&self, a: usize, b: usize) -> bool {
        self.connected.contains(&(a.min(b), a.max(b)))
    }

    fn node_index(&self, node: &Atom) -> Option<usize> {
        self.nodes.iter().position(|n| n == node)
    }

    fn member(&self, node: usize, id: u32) -> Pid {
        Pid { node: self.nodes[node].clone(), id, serial: 0, creation: 1 }
    }

    fn drain(&mut self, i: usize) {
        while let Some(e) = self.scopes[i].core.poll_effect() {
            match e {
                Effect::Send { to, msg } => {
                    let target = match &to {
                        Dest::Pid(p) => self.node_index(&p.node).filter(|&j| self.scopes[j].core.me() == p),
                        Dest::Remote(name, node) => {
                            assert!(name == &Atom::new("pg"));
                            self.node_index(node)
                        }
                        other => panic!("unexpected destination {other:?}"),
                    };
                    // messages to subscribers or dead pids vanish; noconnect
                    if let Some(j) = target.filter(|&j| j != i && self.is_connected(i, j)) {
                        self.scopes[j].inbox.push_back(Item::Msg { from: i, msg });
                    }
                }
                Effect::Monitor(p) => {
                    assert!(self.scopes[i].monitors.insert(p.clone()), "monitored twice: {p:?}");
                    let gone = match self.node_index(&p.node) {
                        Some(j) if j == i => !self.alive.contains(&p),
                        Some(j) => !self.is_connected(i, j),
                        None => true,
                    };
                    if gone {
                        self.scopes[i].inbox.push_back(Item::Down(p));
                    }
                }
                Effect::Demonitor(p) => {
                    assert!(self.scopes[i].monitors.remove(&p), "demonitor of unmonitored {p:?}");
                    self.scopes[i].inbox.retain(|it| !matches!(it, Item::Down(d) if *d == p));
                }
            }
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        if a == b || self.is_connected(a, b) {
            return;
        }
        self.connected.insert((a.min(b), a.max(b)));
        let (na, nb) = (self.nodes[a].clone(), self.nodes[b].clone());
        for (i, other) in [(a, nb), (b, na)] {
            // as the driver does: DOWNs already queued (those of the lost connection) first
            self.take_downs(i);
            self.scopes[i].core.handle_nodeup(&other, true);
            self.drain(i);
        }
    }

    fn take_downs(&mut self, i: usize) {
        while let Some(k) = self.scopes[i].inbox.iter().position(|it| matches!(it, Item::Down(_))) {
            let Some(Item::Down(p)) = self.scopes[i].inbox.remove(k) else { unreachable!() };
            assert!(self.scopes[i].monitors.remove(&p), "DOWN without a monitor: {p:?}");
            self.scopes[i].core.handle_down(&p);
            self.drain(i);
        }
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        if !self.connected.remove(&(a.min(b), a.max(b))) {
            return;
        }
        for (x, y) in [(a, b), (b, a)] {
            // in-flight messages are lost; monitors across fire with noconnection
            self.scopes[x].inbox.retain(|it| !matches!(it, Item::Msg { from, .. } if *from == y));
            let node_y = self.nodes[y].clone();
            let downs: Vec<Pid> = self.scopes[x].monitors.iter().filter(|p| p.node == node_y).cloned().collect();
            for p in downs {
                self.scopes[x].inbox.push_back(Item::Down(p));
            }
        }
    }

    fn join(&mut self, i: usize, member: Pid, group: Term) {
        self.alive.insert(member.clone());
        self.scopes[i].core.join(group.clone(), std::slice::from_ref(&member)).unwrap();
        self.model[i].entry(member).or_default().push(group);
        self.drain(i);
    }

    fn leave(&mut self, i: usize, member: Pid, group: Term) {
        let left = self.scopes[i].core.leave(&group, std::slice::from_ref(&member)).unwrap();
        let groups = self.model[i].entry(member.clone()).or_default();
        let pos = groups.iter().position(|x| *x == group);
        assert_eq!(left, pos.is_some());
        if let Some(k) = pos {
            groups.remove(k);
        }
        if groups.is_empty() {
            self.model[i].remove(&member);
        }
        self.drain(i);
    }

    fn kill(&mut self, i: usize, member: &Pid) {
        if self.alive.remove(member) {
            self.model[i].remove(member);
            if self.scopes[i].monitors.contains(member) {
                self.scopes[i].inbox.push_back(Item::Down(member.clone()));
            }
        }
    }

    /// Delivers one item to scope `i`; `false` if its inbox was empty.
    fn step(&mut self, i: usize) -> bool {
        let Some(item) = self.scopes[i].inbox.pop_front() else { return false };
        match item {
            Item::Down(p) => {
                assert!(self.scopes[i].monitors.remove(&p), "DOWN without a monitor: {p:?}");
                self.scopes[i].core.handle_down(&p);
            }
            Item::Msg { msg, .. } => {
                let parsed = PeerMessage::parse(&msg).expect("our own messages parse").expect("a pg message");
                match self.scopes[i].core.handle_peer(parsed, false) {
                    Ok(()) | Err(PgError::UnknownPeer(_)) => {}
                    // UnknownGroup is where a BEAM scope would have crashed
                    Err(e) => panic!("scope {i} refused {msg}: {e}"),
                }
            }
        }
        self.drain(i);
        true
    }

    fn settle(&mut self) {
        loop {
            let mut progressed = false;
            for i in 0..self.scopes.len() {
                progressed |= self.step(i);
            }
            if !progressed {
                return;
            }
        }
    }

    /// With every node connected and quiet, every scope sees exactly what every node's API
    /// established.
    fn assert_converged(&self) {
        let mut truth: BTreeMap<Term, Vec<Pid>> = BTreeMap::new();
        for (i, model) in self.model.iter().enumerate() {
            let mut local: BTreeMap<Term, Vec<Pid>> = BTreeMap::new();
            for (p, groups) in model {
                for grp in groups {
                    truth.entry(grp.clone()).or_default().push(p.clone());
                    local.entry(grp.clone()).or_default().push(p.clone());
                }
            }
            let core = &self.scopes[i].core;
            assert_eq!(core.local_groups(), local.keys().cloned().collect::<Vec<_>>(), "local groups of {i}");
            for (grp, pids) in &local {
                assert_eq!(sorted(core.local_members(grp)), sorted(pids.clone()), "local {grp} on {i}");
            }
        }
        for (i, s) in self.scopes.iter().enumerate() {
            assert_eq!(s.core.groups(), truth.keys().cloned().collect::<Vec<_>>(), "groups seen by {i}");
            for (grp, pids) in &truth {
                assert_eq!(sorted(s.core.members(grp)), sorted(pids.clone()), "members of {grp} seen by {i}");
            }
            assert_eq!(s.core.peers().len(), self.scopes.len() - 1, "peers of {i}");
        }
    }
}

#[test]
fn three_nodes_converge_through_churn() {
    let mut sim = Sim::new(3);
    let (a0, b0) = (sim.member(0, 100), sim.member(1, 100));
    sim.join(0, a0.clone(), g("g"));
    sim.connect(0, 1);
    sim.join(1, b0.clone(), g("g"));
    sim.join(0, a0.clone(), g("h"));
    sim.settle();
    sim.connect(1, 2);
    sim.connect(0, 2);
    sim.settle();
    sim.assert_converged();
    sim.kill(0, &a0);
    sim.disconnect(1, 2);
    sim.settle();
    assert_eq!(sim.scopes[2].core.members(&g("g")), vec![], "node 2 lost node 1 and a0 died");
    sim.connect(1, 2);
    sim.settle();
    sim.assert_converged();
    assert_eq!(sim.scopes[2].core.members(&g("g")), vec![b0]);
}

#[derive(Clone, Debug)]
enum Op {
    Join(usize, u32, u8),
    Leave(usize, u32, u8),
    Kill(usize, u32),
    Connect(usize, usize),
    Disconnect(usize, usize),
    Step(usize),
}

fn op(nodes: usize) -> impl Strategy<Value = Op> {
    let n = 0..nodes;
    prop_oneof![
        3 => (n.clone(), 0..3u32, 0..3u8).prop_map(|(i, m, g)| Op::Join(i, m, g)),
        2 => (n.clone(), 0..3u32, 0..3u8).prop_map(|(i, m, g)| Op::Leave(i, m, g)),
        1 => (n.clone(), 0..3u32).prop_map(|(i, m)| Op::Kill(i, m)),
        2 => (n.clone(), n.clone()).prop_map(|(a, b)| Op::Connect(a, b)),
        1 => (n.clone(), n.clone()).prop_map(|(a, b)| Op::Disconnect(a, b)),
        8 => n.prop_map(Op::Step),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any interleaving of API calls, deaths, partitions and deliveries: no scope ever receives
    /// a message a BEAM scope would crash on, and once the cluster is whole and quiet, all
    /// scopes agree with what the API calls established.
    #[test]
    fn any_interleaving_converges(ops in proptest::collection::vec(op(3), 0..120)) {
        let mut sim = Sim::new(3);
        // member slot -> current incarnation (a killed member is replaced by a fresh pid)
        let mut incarnation: HashMap<(usize, u32), u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Join(i, m, grp) => {
                    let id = 100 + 10 * m + incarnation.get(&(i, m)).copied().unwrap_or(0) * 1000;
                    let member = sim.member(i, id);
                    sim.join(i, member, Term::Int(grp as i64));
                }
                Op::Leave(i, m, grp) => {
                    let id = 100 + 10 * m + incarnation.get(&(i, m)).copied().unwrap_or(0) * 1000;
                    let member = sim.member(i, id);
                    sim.leave(i, member, Term::Int(grp as i64));
                }
                Op::Kill(i, m) => {
                    let k = incarnation.entry((i, m)).or_insert(0);
                    let member = sim.member(i, 100 + 10 * m + *k * 1000);
                    sim.kill(i, &member);
                    *k += 1;
                }
                Op::Connect(a, b) => sim.connect(a, b),
                Op::Disconnect(a, b) => sim.disconnect(a, b),
                Op::Step(i) => { sim.step(i); }
            }
        }
        sim.settle();
        for a in 0..3 {
            for b in a + 1..3 {
                sim.connect(a, b);
            }
        }
        sim.settle();
        sim.assert_converged();
    }
}

// ---------------------------------------------------------------------- the scope process

mod driver {
    use std::time::Duration;

    use super::g;
    use crate::node::{Node, Process, normal};
    use crate::services::pg::{self, PgError};
    use crate::term::{Atom, Pid, Reference, Term};

    const T: Duration = Duration::from_secs(5);

    fn member(node: &Node) -> Pid {
        node.spawn(|mut p: Process| async move {
            p.receive().await;
            normal()
        })
    }

    async fn until(mut cond: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + T;
        while !cond().await {
            assert!(tokio::time::Instant::now() < deadline, "condition not reached in {T:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The subscription (reference and snapshot) first, then `Err(Message)` for each message.
    type Received = Result<(Reference, Term), Term>;

    /// What a subscriber process receives, forwarded to the test.
    fn subscriber(
        node: &Node,
        scope: Atom,
        group: Option<Term>,
    ) -> (Pid, tokio::sync::mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let pid = node.spawn(move |mut p: Process| async move {
            let first = match group {
                None => pg::monitor_scope(&mut p, &scope).await.map(|(r, groups)| {
                    let groups = groups.into_iter().map(|(g, pids)| Term::Tuple(vec![g, pids_term(pids)])).collect();
                    (r, Term::List(groups))
                }),
                Some(group) => pg::monitor(&mut p, &scope, group).await.map(|(r, pids)| (r, pids_term(pids))),
            };
            let (r, snapshot) = first.expect("subscribed");
            let _ = tx.send(Ok((r.clone(), snapshot)));
            loop {
                let m = p.receive().await;
                if m.is_atom("unsubscribe") {
                    let _ = tx.send(Err(Term::atom(&pg::demonitor(&mut p, &scope, &r).await.unwrap().to_string())));
                    continue;
                }
                let _ = tx.send(Err(m));
            }
        });
        (pid, rx)
    }

    fn pids_term(pids: Vec<Pid>) -> Term {
        Term::List(pids.into_iter().map(Term::Pid).collect())
    }

    #[tokio::test]
    async fn the_scope_process_serves_the_api() {
        let node = Node::new_local(Atom::new("r@h"), 3);
        let scope = Atom::new("s");
        let scope_pid = pg::start_scope(&node, scope.clone()).unwrap();
        assert_eq!(node.whereis(&scope), Some(scope_pid.clone()));
        assert_eq!(pg::start_scope(&node, scope.clone()), Err(PgError::NameTaken(scope.clone())));

        let (a, b) = (member(&node), member(&node));
        let (whole_pid, mut whole) = subscriber(&node, scope.clone(), None);
        let (r_whole, snap) = whole.recv().await.unwrap().unwrap();
        assert_eq!(snap, Term::nil());
        pg::join(&node, &scope, g("x"), vec![a.clone()]).await.unwrap();
        pg::join(&node, &scope, g("x"), vec![b.clone(), a.clone()]).await.unwrap();
        pg::join(&node, &scope, g("y"), vec![b.clone()]).await.unwrap();
        assert_eq!(pg::get_members(&node, &scope, &g("x")).await, vec![b.clone(), a.clone(), a.clone()]);
        assert_eq!(pg::get_local_members(&node, &scope, &g("y")).await, vec![b.clone()]);
        assert_eq!(pg::which_groups(&node, &scope).await, vec![g("x"), g("y")]);
        assert_eq!(pg::which_local_groups(&node, &scope).await, vec![g("x"), g("y")]);
        let note = |verb: &str, group: &str, pids: &[Pid]| {
            Err(Term::Tuple(vec![Term::Ref(r_whole.clone()), Term::atom(verb), g(group), pids_term(pids.to_vec())]))
        };
        assert_eq!(whole.recv().await.unwrap(), note("join", "x", std::slice::from_ref(&a)));
        assert_eq!(whole.recv().await.unwrap(), note("join", "x", &[b.clone(), a.clone()]));
        assert_eq!(whole.recv().await.unwrap(), note("join", "y", std::slice::from_ref(&b)));

        let (_, mut only_y) = subscriber(&node, scope.clone(), Some(g("y")));
        let (_, snap) = only_y.recv().await.unwrap().unwrap();
        assert_eq!(snap, pids_term(vec![b.clone()]));

        // a member dies: it leaves every group, once per membership
        node.send(b.clone(), Term::atom("stop"));
        until(async || pg::get_members(&node, &scope, &g("x")).await == vec![a.clone(), a.clone()]).await;
        assert!(pg::which_groups(&node, &scope).await == vec![g("x")]);
        let mut got = vec![whole.recv().await.unwrap(), whole.recv().await.unwrap()];
        got.sort_by_key(|m| format!("{m:?}"));
        let mut want = vec![note("leave", "x", std::slice::from_ref(&b)), note("leave", "y", std::slice::from_ref(&b))];
        want.sort_by_key(|m| format!("{m:?}"));
        assert_eq!(got, want);
        assert!(matches!(only_y.recv().await.unwrap(), Err(Term::Tuple(t)) if t[1].is_atom("leave")));

        // leave twice (a joined twice), then not_joined; remote pids are refused
        assert_eq!(pg::leave(&node, &scope, g("x"), vec![a.clone()]).await, Ok(true));
        assert_eq!(pg::leave(&node, &scope, g("x"), vec![a.clone()]).await, Ok(true));
        assert_eq!(pg::leave(&node, &scope, g("x"), vec![a.clone()]).await, Ok(false));
        let remote = Pid { node: Atom::new("other@h"), id: 1, serial: 0, creation: 1 };
        assert_eq!(pg::join(&node, &scope, g("x"), vec![remote.clone()]).await, Err(PgError::NotLocal(remote)));
        assert!(pg::which_groups(&node, &scope).await.is_empty());
        for _ in 0..2 {
            assert_eq!(whole.recv().await.unwrap(), note("leave", "x", std::slice::from_ref(&a)));
        }

        // unsubscribe: no more notifications. After a round trip through the scope, anything
        // it sent the subscriber is queued there ahead of our `ping`.
        node.send(whole_pid.clone(), Term::atom("unsubscribe"));
        assert_eq!(whole.recv().await.unwrap(), Err(Term::atom("true")));
        pg::join(&node, &scope, g("z"), vec![a.clone()]).await.unwrap();
        assert_eq!(pg::get_members(&node, &scope, &g("z")).await, vec![a.clone()]);
        node.send(whole_pid, Term::atom("ping"));
        assert_eq!(whole.recv().await.unwrap(), Err(Term::atom("ping")));
        assert_eq!(pg::leave(&node, &scope, g("z"), vec![a.clone()]).await, Ok(true));
        // a scope that does not exist answers as pg does without its table
        assert!(pg::get_members(&node, &Atom::new("nope"), &g("x")).await.is_empty());
        assert!(matches!(
            pg::join(&node, &Atom::new("nope"), g("x"), vec![a]).await,
            Err(PgError::Call(crate::gen_server::CallError::NoProc))
        ));
        assert!(node.is_alive(&scope_pid));
    }
}
