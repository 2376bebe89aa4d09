//! Replays of the BEAM side of real traces (`docs/traces/t2.out`, `t12_conflict_*.out`,
//! `t16.out`): BEAM's messages are fed in the order the trace shows, and our answers must have
//! the shapes BEAM expected (tags, lock ids, lists, versions).

use std::time::{Duration, Instant};

use super::super::wire::random_exit_name;
use super::super::{Action, Config, Global, NAME, OpId};
use crate::node::Dest;
use crate::term::{Atom, LocalFun, Pid, Reference, Term};
use crate::tuple;

const T0: i64 = -576460752303423488; // erlang:unique_integer([monotonic]) starts here

fn at(s: &str) -> Term {
    Term::atom(s)
}

fn node(s: &str) -> Atom {
    Atom::new(s)
}

fn pid(n: &str, id: u32, creation: u32) -> Pid {
    Pid { node: node(n), id, serial: 0, creation }
}

/// `#Fun<global.0.112854349>`: the default method as OTP 25's `global` sends it.
fn beam_fun(creator: &Pid) -> Term {
    Term::LocalFun(Box::new(LocalFun {
        arity: 3,
        uniq: [7; 16],
        index: 0,
        module: node("global"),
        old_index: Term::Int(0),
        old_uniq: Term::Int(112854349),
        pid: Term::Pid(creator.clone()),
        free_vars: vec![],
    }))
}

fn cast(x: Term) -> Term {
    tuple![at("$gen_cast"), x]
}

fn call(from: &Pid, tag: Term, req: Term) -> Term {
    tuple![at("$gen_call"), tuple![from.clone(), tag], req]
}

fn beam_ref(n: &str, i: u32) -> Reference {
    Reference::new(node(n), 1, &[i, 4255045749, 1077149697]).unwrap()
}

/// `{Ref, Node}`: the tag a BEAM multi_call uses.
fn mc_tag(r: &Reference, to: &str) -> Term {
    tuple![r.clone(), node(to)]
}

struct Us {
    g: Global,
    now: Instant,
}

impl Us {
    fn new(name: &str, gns: &Pid) -> Us {
        let now = Instant::now();
        let n = node(name);
        let creation = gns.creation;
        let mut c = 0u32;
        let refs = move || {
            c += 1;
            Reference::new(n.clone(), creation, &[c, 0, 0]).unwrap()
        };
        let g = Global::new(Config { node: node(name), gns_pid: gns.clone(), rng_seed: 1 }, refs, now);
        Us { g, now }
    }

    fn feed(&mut self, msg: Term) -> Vec<Action> {
        self.g.handle_message(msg, self.now).expect("accepted");
        self.g.drain_actions()
    }

    fn nodeup(&mut self, n: &str) -> Vec<Action> {
        self.g.handle_nodeup(node(n), self.now);
        self.g.drain_actions()
    }

    fn nodedown(&mut self, n: &str) -> Vec<Action> {
        self.g.handle_nodedown(node(n), self.now);
        self.g.drain_actions()
    }
}

fn sends(acts: &[Action]) -> Vec<(Dest, Term)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Send { to, msg, .. } => Some((to.clone(), msg.clone())),
            _ => None,
        })
        .collect()
}

fn gns(n: &str) -> Dest {
    Dest::Remote(node(NAME), node(n))
}

fn only_send(acts: &[Action]) -> (Dest, Term) {
    let s = sends(acts);
    assert_eq!(s.len(), 1, "{acts:?}");
    s.into_iter().next().unwrap()
}

/// The reply `{Tag, Reply}` to a call, sent to the caller.
fn expect_reply(acts: &[Action], caller: &Pid, tag: &Term, reply: Term) {
    assert!(
        acts.iter().any(|a| matches!(a, Action::Send { to: Dest::Pid(p), msg, .. }
            if p == caller && msg == &tuple![tag.clone(), reply.clone()])),
        "no reply {reply} to {caller:?} in {acts:?}"
    );
}

/// Our outgoing multi-call requests: `(node, tag term, request)`, with their monitors checked.
fn our_calls(acts: &[Action], me: &Pid) -> Vec<(Atom, Term, Term)> {
    let mut out = Vec::new();
    for a in acts {
        if let Action::Send { to: Dest::Remote(name, n), msg, connect: true } = a {
            if name != NAME {
                continue;
            }
            if let Some([k, from, req]) = msg.as_tuple() {
                if k.is_atom("$gen_call") {
                    let [p, tag] = from.as_tuple().unwrap() else { panic!() };
                    assert_eq!(p, &Term::Pid(me.clone()));
                    assert_eq!(tag.as_tuple().unwrap()[1], Term::Atom(n.clone()), "tag is {{Ref, Node}}");
                    assert!(
                        acts.iter().any(|m| matches!(m, Action::Monitor { target, .. } if target == &gns(n.as_str())))
                    );
                    out.push((n.clone(), tag.clone(), req.clone()));
                }
            }
        }
    }
    out
}

fn monitor_ref_of(acts: &[Action], target: &Pid) -> Reference {
    acts.iter()
        .find_map(|a| match a {
            Action::Monitor { target: Dest::Pid(p), reference } if p == target => Some(reference.clone()),
            _ => None,
        })
        .expect("monitor")
}

fn down(r: &Reference, p: &Pid, reason: &str) -> Term {
    tuple![at("DOWN"), r.clone(), at("process"), p.clone(), at(reason)]
}

fn op_done(acts: &[Action], op: OpId) -> Option<Term> {
    acts.iter().find_map(|a| match a {
        Action::OpDone { op: o, result } if *o == op => Some(result.clone()),
        _ => None,
    })
}

/// BEAM node `peer` (locker `locker`, tag `his_tag`) syncs with us as in t2/t12: our
/// init_connect, its init_connect and ack, its set_lock call, its lock_set, its exchange of
/// `his_names`, its resolved. Returns our messages after its exchange and after its resolved.
struct BeamPeer<'a> {
    name: &'a str,
    locker: Pid,
    his_tag: i64,
    known_vsns: Vec<(&'a str, i64)>,
}

#[test]
fn t2_full_sync_registration_and_names_dropped() {
    let r = pid("rust@vm", 3, 1795494601);
    let a56 = pid("a@vm", 56, 1795494473); // A's locker
    let a57 = pid("a@vm", 57, 1795494473);
    let a85 = pid("a@vm", 85, 1795494473);
    let c91 = pid("c@vm", 91, 1795494729);
    let c57 = pid("c@vm", 57, 1795494729); // C's registrar
    let c0 = pid("c@vm", 0, 1795494729);
    let c92 = pid("c@vm", 92, 1795494729);
    let fun = beam_fun(&a57);
    let mut us = Us::new("rust@vm", &r);
    let a_tag = T0 + 1;

    // nodeup: our init_connect, with our gns as the locker
    let acts = us.nodeup("a@vm");
    let (to, m) = only_send(&acts);
    assert_eq!(to, gns("a@vm"));
    let init = super::harness::cast_body(&m).to_vec();
    assert_eq!(init[0], at("init_connect"));
    assert_eq!(init[1], tuple![8, T0]);
    assert_eq!(init[2], at("rust@vm"));
    let locker = init[3].as_tuple().unwrap();
    assert_eq!((&locker[0], &locker[1], &locker[3]), (&at("locker"), &at("no_longer_a_pid"), &Term::Pid(r.clone())));

    // A's init_connect (its known map is ignored) -> init_connect_ack {ack, Us, HisTag, MyTag}
    let known_map = Term::Map(crate::term::Map::from_entries([(at("c@vm"), Term::Int(8))]));
    let acts = us.feed(cast(tuple![
        at("init_connect"),
        tuple![8, a_tag],
        node("a@vm"),
        tuple![at("locker"), at("no_longer_a_pid"), known_map, a56.clone()]
    ]));
    let acts_sends: Vec<_> = acts.iter().filter(|a| matches!(a, Action::Send { .. })).collect();
    assert_eq!(
        acts_sends,
        vec![&Action::Send {
            to: gns("a@vm"),
            msg: tuple![at("init_connect_ack"), node("rust@vm"), a_tag, T0],
            connect: false
        }]
    );
    assert!(us.feed(tuple![at("init_connect_ack"), node("a@vm"), T0, a_tag]).is_empty());

    // A's locker: set_lock {global, sort([RLocker, ALocker])} from a multi_call -> true
    let lock_id = tuple![at("global"), Term::List(vec![Term::Pid(r.clone()), Term::Pid(a56.clone())])];
    let tag = mc_tag(&beam_ref("a@vm", 143984), "rust@vm");
    let acts = us.feed(call(&a56, tag.clone(), tuple![at("set_lock"), lock_id.clone()]));
    expect_reply(&acts, &a56, &tag, at("true"));

    // A's lock_set -> our lock_set (tagged with A's tag) and our exchange of all our names
    let acts = us.feed(cast(tuple![at("lock_set"), a56.clone(), at("true"), Term::List(vec![at("c@vm")]), T0]));
    let s = sends(&acts);
    assert_eq!(
        s,
        vec![
            (gns("a@vm"), cast(tuple![at("lock_set"), r.clone(), at("true"), Term::nil(), a_tag])),
            (gns("a@vm"), cast(tuple![at("exchange"), node("rust@vm"), Term::nil(), Term::nil(), a_tag])),
        ]
    );

    // A's exchange of its partition's names -> our resolved: nothing for A, known [] (A is pending)
    let acts = us.feed(cast(tuple![
        at("exchange"),
        node("a@vm"),
        Term::List(vec![
            tuple![at("c_name"), c91.clone(), fun.clone()],
            tuple![at("a_name"), a85.clone(), fun.clone()]
        ]),
        Term::nil(),
        T0
    ]));
    assert_eq!(
        sends(&acts),
        vec![(
            gns("a@vm"),
            cast(tuple![at("resolved"), node("rust@vm"), Term::nil(), Term::nil(), at("unused"), Term::nil(), a_tag])
        )]
    );

    // A's resolved with its known [{c@vm, 8}]: apply, connect to C and tell it in_sync
    let acts = us.feed(cast(tuple![
        at("resolved"),
        node("a@vm"),
        Term::nil(),
        Term::List(vec![tuple![node("c@vm"), 8]]),
        at("unused"),
        Term::nil(),
        T0
    ]));
    assert!(acts.contains(&Action::Connect(node("c@vm"))));
    assert!(sends(&acts).contains(&(gns("c@vm"), cast(tuple![at("in_sync"), node("rust@vm"), at("true")]))));
    assert!(!sends(&acts).iter().any(|(_, m)| super::harness::is_cast(m, "new_nodes")), "we knew nobody before");
    // the fun is stored verbatim, and both pids are monitored
    assert_eq!(us.g.registered_names(), vec![at("a_name"), at("c_name")]);
    assert_eq!(us.g.names.get(&at("a_name")).unwrap().method, fun);
    let c_name_ref = monitor_ref_of(&acts, &c91);
    monitor_ref_of(&acts, &a85);
    assert_eq!(us.g.known_nodes(), vec![node("a@vm"), node("c@vm")]);
    // our locker released its hold; A's locker still holds until its del_lock
    assert_eq!(us.g.lock_requester(&at("global")), Some(lock_id.as_tuple().unwrap()[1].clone()));
    let tag = mc_tag(&beam_ref("a@vm", 143993), "rust@vm");
    let acts = us.feed(call(&a56, tag.clone(), tuple![at("del_lock"), lock_id.clone()]));
    expect_reply(&acts, &a56, &tag, at("true"));
    assert_eq!(us.g.lock_requester(&at("global")), None);

    // C comes up: already known, so no init_connect; its in_sync from a short-lived process
    assert!(sends(&us.nodeup("c@vm")).is_empty());
    assert!(sends(&us.feed(cast(tuple![at("in_sync"), node("c@vm"), at("true")]))).is_empty());
    let _ = c92;
    assert_eq!(us.g.synced_nodes(), vec![node("a@vm"), node("c@vm")]);

    // C's registrar registers c_init: set_lock twice (we are the boss), register, del_lock
    let reg_id = tuple![at("global"), c57.clone()];
    for i in [119283u32, 119285] {
        let tag = mc_tag(&beam_ref("c@vm", i), "rust@vm");
        expect_reply(&us.feed(call(&c57, tag.clone(), tuple![at("set_lock"), reg_id.clone()])), &c57, &tag, at("true"));
    }
    let tag = mc_tag(&beam_ref("c@vm", 119291), "rust@vm");
    let acts = us.feed(call(&c57, tag.clone(), tuple![at("register"), at("c_init"), c0.clone(), fun.clone()]));
    expect_reply(&acts, &c57, &tag, at("yes"));
    monitor_ref_of(&acts, &c0);
    let tag = mc_tag(&beam_ref("c@vm", 119299), "rust@vm");
    expect_reply(&us.feed(call(&c57, tag.clone(), tuple![at("del_lock"), reg_id.clone()])), &c57, &tag, at("true"));
    assert_eq!(us.g.whereis(&at("c_init")), Some(c0.clone()));
    // ... and unregisters it
    let tag = mc_tag(&beam_ref("c@vm", 119304), "rust@vm");
    expect_reply(&us.feed(call(&c57, tag.clone(), tuple![at("set_lock"), reg_id.clone()])), &c57, &tag, at("true"));
    let tag = mc_tag(&beam_ref("c@vm", 119312), "rust@vm");
    let acts = us.feed(call(&c57, tag.clone(), tuple![at("unregister"), at("c_init")]));
    expect_reply(&acts, &c57, &tag, at("ok"));
    assert!(acts.iter().any(|a| matches!(a, Action::Demonitor { .. })));
    let tag = mc_tag(&beam_ref("c@vm", 119319), "rust@vm");
    expect_reply(&us.feed(call(&c57, tag.clone(), tuple![at("del_lock"), reg_id.clone()])), &c57, &tag, at("true"));
    assert_eq!(us.g.whereis(&at("c_init")), None);

    // We register kv1: lock {global, Us} on the boss (us) then on all, register, release
    let kv1 = pid("rust@vm", 7, 1795494601);
    let op = us.g.register_name(at("kv1"), kv1.clone(), random_exit_name());
    let acts = us.g.drain_actions();
    let calls = our_calls(&acts, &r);
    let my_reg = tuple![at("global"), r.clone()];
    let mut nodes: Vec<Atom> = calls.iter().map(|(n, _, _)| n.clone()).collect();
    nodes.sort();
    assert_eq!(nodes, vec![node("a@vm"), node("c@vm")], "boss (us) locked locally, then all known");
    for (_, _, req) in &calls {
        assert_eq!(req, &tuple![at("set_lock"), my_reg.clone()]);
    }
    assert_eq!(us.g.lock_requester(&at("global")), Some(Term::Pid(r.clone())));
    let mut acts = Vec::new();
    for (n, tag, _) in &calls {
        acts.extend(us.feed(tuple![tag.clone(), at("true")]));
        let _ = n;
    }
    let calls = our_calls(&acts, &r);
    assert_eq!(calls.len(), 2);
    for (_, _, req) in &calls {
        assert_eq!(req, &tuple![at("register"), at("kv1"), kv1.clone(), random_exit_name()]);
    }
    let kv1_ref = monitor_ref_of(&acts, &kv1);
    let mut acts = Vec::new();
    for (_, tag, _) in &calls {
        acts.extend(us.feed(tuple![tag.clone(), at("yes")]));
    }
    let calls = our_calls(&acts, &r);
    assert_eq!(calls.len(), 2, "del_lock on the non-boss nodes");
    for (_, _, req) in &calls {
        assert_eq!(req, &tuple![at("del_lock"), my_reg.clone()]);
    }
    let mut acts = Vec::new();
    for (_, tag, _) in &calls {
        acts.extend(us.feed(tuple![tag.clone(), at("true")]));
    }
    assert_eq!(op_done(&acts, op), Some(at("yes")));
    assert_eq!(us.g.lock_requester(&at("global")), None);
    assert_eq!(us.g.whereis(&at("kv1")), Some(kv1.clone()));

    // kv1's process dies: the name goes
    us.feed(down(&kv1_ref, &kv1, "killed"));
    assert_eq!(us.g.whereis(&at("kv1")), None);

    // C halts: A reports the lost connection; we pass it on and ask C to disconnect from us
    let lost = tuple![at("lost_connection"), node("a@vm"), 1505389161484718665i64, T0 + 3, node("c@vm")];
    let acts = us.feed(lost.clone());
    assert_eq!(
        sends(&acts),
        vec![(gns("c@vm"), lost.clone()), (gns("c@vm"), tuple![at("remove_connection"), node("rust@vm")]),]
    );
    assert!(acts.iter().all(|a| !matches!(a, Action::Send { connect: true, .. })), "volatile sends only");
    assert_eq!(us.g.known_nodes(), vec![node("a@vm")]);
    // the nodedown that follows: C's names go, and we do not report a loss we asked for
    let acts = us.nodedown("c@vm");
    assert!(sends(&acts).is_empty(), "{acts:?}");
    assert_eq!(us.g.registered_names(), vec![at("a_name")]);
    let _ = c_name_ref;
    // a duplicate report is ignored
    assert!(us.feed(lost).is_empty());
    let _ = (a57, Duration::ZERO);
}

#[test]
fn t2_our_locker_may_move_first() {
    // Same start as t2, but our locker's wait (200 ms, we know nobody) ends before A's: we lock
    // ourselves (the boss) and A, then send lock_set; A answers with its own lock_set.
    let r = pid("rust@vm", 3, 1);
    let a56 = pid("a@vm", 56, 2);
    let mut us = Us::new("rust@vm", &r);
    us.nodeup("a@vm");
    us.feed(cast(tuple![
        at("init_connect"),
        tuple![8, T0 + 1],
        node("a@vm"),
        tuple![at("locker"), at("no_longer_a_pid"), Term::Map(crate::term::Map::new()), a56.clone()]
    ]));
    us.feed(tuple![at("init_connect_ack"), node("a@vm"), T0, T0 + 1]);
    let t = us.g.next_timeout().expect("locker waits");
    assert_eq!(t - us.now, Duration::from_millis(200));
    us.now = t;
    us.g.handle_timeout(t);
    let acts = us.g.drain_actions();
    let lock_id = tuple![at("global"), Term::List(vec![Term::Pid(r.clone()), Term::Pid(a56.clone())])];
    let calls = our_calls(&acts, &r);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, node("a@vm"));
    assert_eq!(calls[0].2, tuple![at("set_lock"), lock_id.clone()]);
    let acts = us.feed(tuple![calls[0].1.clone(), at("true")]);
    assert_eq!(
        sends(&acts),
        vec![(gns("a@vm"), cast(tuple![at("lock_set"), r.clone(), at("true"), Term::nil(), T0 + 1]))]
    );
    // A's answer from its spontaneous path: our exchange follows
    let acts = us.feed(cast(tuple![at("lock_set"), a56.clone(), at("true"), Term::nil(), T0]));
    assert_eq!(
        sends(&acts),
        vec![(gns("a@vm"), cast(tuple![at("exchange"), node("rust@vm"), Term::nil(), Term::nil(), T0 + 1]))]
    );
    // a stale lock_set (old tag) is dropped by the server
    assert!(us.feed(cast(tuple![at("lock_set"), a56.clone(), at("true"), Term::nil(), T0 - 7])).is_empty());
}

fn sync_to_exchange(us: &mut Us, r: &Pid, peer: &BeamPeer<'_>) -> Vec<Action> {
    us.nodeup(peer.name);
    let t = peer.his_tag;
    us.feed(cast(tuple![
        at("init_connect"),
        tuple![8, t],
        node(peer.name),
        tuple![at("locker"), at("no_longer_a_pid"), Term::Map(crate::term::Map::new()), peer.locker.clone()]
    ]));
    let my = us.g.peers.get(&node(peer.name)).and_then(|p| p.sync_tag_my).expect("session");
    us.feed(tuple![at("init_connect_ack"), node(peer.name), my, t]);
    let lock_id = super::super::resolve::locker_lock_id(r, &peer.locker);
    let tag = mc_tag(&beam_ref(peer.name, 1), us.g.node().as_str());
    expect_reply(
        &us.feed(call(&peer.locker, tag.clone(), tuple![at("set_lock"), lock_id])),
        &peer.locker,
        &tag,
        at("true"),
    );
    let known: Vec<Term> = peer.known_vsns.iter().map(|(n, _)| Term::Atom(node(n))).collect();
    us.feed(cast(tuple![at("lock_set"), peer.locker.clone(), at("true"), Term::List(known), my]))
}

#[test]
fn t12_beam_resolves_and_kills_our_process() {
    let r2 = pid("rust@vm", 2, 11);
    let r3 = pid("rust@vm", 3, 11);
    let a56 = pid("a@vm", 56, 22);
    let a85 = pid("a@vm", 85, 22);
    let fun = beam_fun(&a56);
    let mut us = Us::new("rust@vm", &r2);
    let op = us.g.register_name(at("dup"), r3.clone(), random_exit_name());
    let acts = us.g.drain_actions();
    assert_eq!(op_done(&acts, op), Some(at("yes")), "alone: only our own table");
    let dup_ref = monitor_ref_of(&acts, &r3);
    let peer = BeamPeer { name: "a@vm", locker: a56.clone(), his_tag: T0, known_vsns: vec![] };
    let acts = sync_to_exchange(&mut us, &r2, &peer);
    assert_eq!(
        sends(&acts)[1],
        (
            gns("a@vm"),
            cast(tuple![
                at("exchange"),
                node("rust@vm"),
                Term::List(vec![tuple![at("dup"), r3.clone(), random_exit_name()]]),
                Term::nil(),
                T0
            ])
        )
    );
    // a@vm < rust@vm: A resolves; we resolve nothing
    let acts = us.feed(cast(tuple![
        at("exchange"),
        node("a@vm"),
        Term::List(vec![tuple![at("dup"), a85.clone(), fun.clone()]]),
        Term::nil(),
        T0
    ]));
    assert!(!acts.iter().any(|a| matches!(a, Action::Exit { .. })));
    assert_eq!(
        sends(&acts),
        vec![(
            gns("a@vm"),
            cast(tuple![at("resolved"), node("rust@vm"), Term::nil(), Term::nil(), at("unused"), Term::nil(), T0])
        )]
    );
    // A killed our process (PAYLOAD_EXIT2 kill): its monitor reports it
    us.feed(down(&dup_ref, &r3, "killed"));
    assert_eq!(us.g.whereis(&at("dup")), None);
    us.feed(cast(tuple![
        at("resolved"),
        node("a@vm"),
        Term::List(vec![tuple![at("insert"), tuple![at("dup"), a85.clone(), fun.clone()]]]),
        Term::nil(),
        at("unused"),
        Term::nil(),
        T0
    ]));
    assert_eq!(us.g.whereis(&at("dup")), Some(a85));
    assert_eq!(us.g.known_nodes(), vec![node("a@vm")]);
}

#[test]
fn t12_we_resolve_and_kill_the_beam_process() {
    let r2 = pid("R1@vm", 2, 11);
    let r3 = pid("R1@vm", 3, 11);
    let a56 = pid("a@vm", 56, 22);
    let a85 = pid("a@vm", 85, 22);
    let fun = beam_fun(&a56);
    let mut us = Us::new("R1@vm", &r2);
    us.g.register_name(at("dup"), r3.clone(), random_exit_name());
    us.g.drain_actions();
    let peer = BeamPeer { name: "a@vm", locker: a56.clone(), his_tag: T0, known_vsns: vec![] };
    sync_to_exchange(&mut us, &r2, &peer);
    // 'R1@vm' < a@vm: we resolve, with our method: the pid on the smaller node name wins
    let acts = us.feed(cast(tuple![
        at("exchange"),
        node("a@vm"),
        Term::List(vec![tuple![at("dup"), a85.clone(), fun.clone()]]),
        Term::nil(),
        T0
    ]));
    assert!(acts.contains(&Action::Exit { pid: a85.clone(), reason: at("kill") }));
    assert_eq!(
        sends(&acts),
        vec![(
            gns("a@vm"),
            cast(tuple![
                at("resolved"),
                node("R1@vm"),
                Term::List(vec![tuple![at("insert"), tuple![at("dup"), r3.clone(), random_exit_name()]]]),
                Term::nil(),
                at("unused"),
                Term::nil(),
                T0
            ])
        )]
    );
    us.feed(cast(tuple![at("resolved"), node("a@vm"), Term::nil(), Term::nil(), at("unused"), Term::nil(), T0]));
    assert_eq!(us.g.whereis(&at("dup")), Some(r3));
}

#[test]
fn t16_bridging_a_beam_node_into_our_partition() {
    // We are synced with C (which registered c_init); A, alone with a_name, connects to us.
    let r = pid("rust@vm", 2, 11);
    let c56 = pid("c@vm", 56, 33);
    let c0 = pid("c@vm", 0, 33);
    let a56 = pid("a@vm", 56, 22);
    let a85 = pid("a@vm", 85, 22);
    let fun = beam_fun(&a56);
    let mut us = Us::new("rust@vm", &r);
    let peer_c = BeamPeer { name: "c@vm", locker: c56.clone(), his_tag: T0, known_vsns: vec![] };
    sync_to_exchange(&mut us, &r, &peer_c);
    us.feed(cast(tuple![at("exchange"), node("c@vm"), Term::nil(), Term::nil(), T0]));
    us.feed(cast(tuple![at("resolved"), node("c@vm"), Term::nil(), Term::nil(), at("unused"), Term::nil(), T0]));
    let lock_c = super::super::resolve::locker_lock_id(&r, &c56);
    let tag = mc_tag(&beam_ref("c@vm", 2), "rust@vm");
    us.feed(call(&c56, tag, tuple![at("del_lock"), lock_c]));
    assert_eq!(us.g.known_nodes(), vec![node("c@vm")]);
    let tag = mc_tag(&beam_ref("c@vm", 3), "rust@vm");
    us.feed(call(&pid("c@vm", 57, 33), tag, tuple![at("register"), at("c_init"), c0.clone(), fun.clone()]));

    // A connects; A's lock_set reaches our locker: we lock the boss (us) and the rest of our
    // partition (C) with the shared id
    let peer_a = BeamPeer { name: "a@vm", locker: a56.clone(), his_tag: T0 + 10, known_vsns: vec![] };
    let acts = sync_to_exchange(&mut us, &r, &peer_a);
    let lock_a = super::super::resolve::locker_lock_id(&r, &a56);
    let calls = our_calls(&acts, &r);
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].0.clone(), calls[0].2.clone()), (node("c@vm"), tuple![at("set_lock"), lock_a.clone()]));
    let acts = us.feed(tuple![calls[0].1.clone(), at("true")]);
    let my_tag_a = us.g.peers.get(&node("a@vm")).and_then(|p| p.sync_tag_my).unwrap();
    // our lock_set carries our partition; our exchange carries all names we know, not only ours
    assert_eq!(
        sends(&acts),
        vec![
            (gns("a@vm"), cast(tuple![at("lock_set"), r.clone(), at("true"), Term::List(vec![at("c@vm")]), T0 + 10])),
            (
                gns("a@vm"),
                cast(tuple![
                    at("exchange"),
                    node("rust@vm"),
                    Term::List(vec![tuple![at("c_init"), c0.clone(), fun.clone()]]),
                    Term::nil(),
                    T0 + 10
                ])
            ),
        ]
    );
    // A's names: our resolved tells A about C
    let acts = us.feed(cast(tuple![
        at("exchange"),
        node("a@vm"),
        Term::List(vec![tuple![at("a_name"), a85.clone(), fun.clone()]]),
        Term::nil(),
        my_tag_a
    ]));
    assert_eq!(
        sends(&acts),
        vec![(
            gns("a@vm"),
            cast(tuple![
                at("resolved"),
                node("rust@vm"),
                Term::nil(),
                Term::List(vec![tuple![node("c@vm"), 8]]),
                at("unused"),
                Term::nil(),
                T0 + 10
            ])
        )]
    );
    // A's resolved: C must hear about A and a_name (new_nodes, before we release our lock on C)
    let acts = us.feed(cast(tuple![
        at("resolved"),
        node("a@vm"),
        Term::nil(),
        Term::nil(),
        at("unused"),
        Term::nil(),
        my_tag_a
    ]));
    let s = sends(&acts);
    let nn = cast(tuple![
        at("new_nodes"),
        node("rust@vm"),
        Term::List(vec![tuple![at("insert"), tuple![at("a_name"), a85.clone(), fun.clone()]]]),
        Term::nil(),
        Term::List(vec![tuple![node("a@vm"), 8]]),
        Term::List(vec![tuple![at("vsn"), 8], tuple![at("lock"), lock_a.clone()]])
    ]);
    assert_eq!(s[0], (gns("c@vm"), nn));
    let calls = our_calls(&acts, &r);
    assert_eq!((calls[0].0.clone(), calls[0].2.clone()), (node("c@vm"), tuple![at("del_lock"), lock_a]));
    assert_eq!(us.g.known_nodes(), vec![node("a@vm"), node("c@vm")]);
    assert_eq!(us.g.registered_names(), vec![at("a_name"), at("c_init")]);
}

#[test]
fn every_call_is_answered() {
    let r = pid("rust@vm", 2, 11);
    let caller = pid("a@vm", 77, 22);
    let mut us = Us::new("rust@vm", &r);
    let cases = [
        (at("get_protocol_version"), Term::Int(8)),
        (at("get_known"), Term::nil()),
        (at("get_synced"), Term::nil()),
        (at("get_names_ext"), Term::nil()),
        (tuple![at("set_lock"), tuple![at("res"), at("me")]], at("true")),
        (tuple![at("set_lock"), tuple![at("res"), at("other")]], at("false")),
        (tuple![at("del_lock"), tuple![at("res"), at("me")]], at("true")),
        (tuple![at("unregister"), at("nobody")], at("ok")),
    ];
    for (i, (req, want)) in cases.into_iter().enumerate() {
        let tag = mc_tag(&beam_ref("a@vm", i as u32), "rust@vm");
        let acts = us.feed(call(&caller, tag.clone(), req));
        expect_reply(&acts, &caller, &tag, want);
    }
    // an unknown call is answered too (BEAM would leave the caller waiting)
    let tag = tuple![at("alias"), 1];
    us.g.handle_message(call(&caller, tag.clone(), at("info")), us.now).unwrap_err();
    let acts = us.g.drain_actions();
    expect_reply(&acts, &caller, &tag, tuple![at("error"), at("not_supported")]);
    // replies to [alias | Ref] tags go to the alias
    let alias = beam_ref("a@vm", 99);
    let tag = Term::Improper(vec![at("alias")], Box::new(Term::Ref(alias.clone())));
    let acts = us.feed(call(&caller, tag.clone(), at("get_protocol_version")));
    assert_eq!(sends(&acts), vec![(Dest::Alias(alias), tuple![tag, 8])]);
}
