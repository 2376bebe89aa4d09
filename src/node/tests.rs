//! Local process semantics, checked without any network.

use std::time::Duration;

use super::*;

fn node() -> Node {
    Node::new_local(Atom::new("t@localhost"), 1)
}

const T: Duration = Duration::from_secs(5);

/// Spawns a process that forwards everything it receives to a channel the test reads.
/// Returns once the probe has set its `trap_exit` flag.
async fn probe(node: &Node, trap: bool) -> (Pid, tokio::sync::mpsc::UnboundedReceiver<Term>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pid = node.spawn(move |mut p: Process| async move {
        p.trap_exit(trap);
        let _ = tx.send(Term::atom("ready"));
        loop {
            let m = p.receive().await;
            if m.is_atom("stop") {
                return normal();
            }
            let _ = tx.send(m);
        }
    });
    assert_eq!(next(&mut rx).await, Term::atom("ready"));
    (pid, rx)
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Term>) -> Term {
    tokio::time::timeout(T, rx.recv()).await.expect("timely").expect("open")
}

async fn wait_dead(node: &Node, pid: &Pid) {
    let deadline = tokio::time::Instant::now() + T;
    while node.is_alive(pid) {
        assert!(tokio::time::Instant::now() < deadline, "process did not die");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn send_and_selective_receive() {
    let n = node();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pid = n.spawn(move |mut p: Process| async move {
        // take `b` first although `a` arrived first, then `a`
        let b = p.receive_match(Some(T), |m| m.is_atom("b").then(|| m.clone())).await;
        let a = p.receive().await;
        let _ = tx.send((a, b));
        normal()
    });
    n.send(pid.clone(), Term::atom("a"));
    n.send(pid, Term::atom("b"));
    let (a, b) = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(a, Term::atom("a"));
    assert_eq!(b, Some(Term::atom("b")));
}

#[tokio::test]
async fn receive_timeout_expires() {
    let n = node();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    n.spawn(move |mut p: Process| async move {
        let _ = tx.send(p.receive_timeout(Duration::from_millis(10)).await);
        normal()
    });
    assert_eq!(tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap(), None);
}

#[tokio::test]
async fn monitor_down_with_real_reason_and_noproc() {
    let n = node();
    let (watcher, mut rx) = probe(&n, false).await;
    let victim = n.spawn(|mut p: Process| async move {
        p.receive().await;
        Term::atom("boom")
    });
    let mref = n.monitor(&watcher, Dest::Pid(victim.clone()));
    n.send(victim.clone(), Term::atom("go"));
    assert_eq!(next(&mut rx).await, down_message(&mref, &Term::Pid(victim.clone()), Term::atom("boom")));
    // monitoring it again: it is gone, so noproc at once
    let mref2 = n.monitor(&watcher, Dest::Pid(victim.clone()));
    assert_eq!(next(&mut rx).await, down_message(&mref2, &Term::Pid(victim), Term::atom("noproc")));
    // by name: the DOWN names {Name, Node}
    let mref3 = n.monitor(&watcher, Dest::Name(Atom::new("nobody")));
    let object = Term::Tuple(vec![Term::atom("nobody"), Term::Atom(n.name().clone())]);
    assert_eq!(next(&mut rx).await, down_message(&mref3, &object, Term::atom("noproc")));
}

#[tokio::test]
async fn links_kill_non_trapping_and_notify_trapping() {
    let n = node();
    let (trapper, mut rx) = probe(&n, true).await;
    let (plain, _rx2) = probe(&n, false).await;
    let victim = n.spawn(|mut p: Process| async move {
        p.receive().await;
        Term::atom("crash")
    });
    n.link(&trapper, &victim);
    n.link(&plain, &victim);
    n.send(victim.clone(), Term::atom("go"));
    let exit = next(&mut rx).await;
    assert_eq!(exit, Term::Tuple(vec![Term::atom("EXIT"), Term::Pid(victim), Term::atom("crash")]));
    wait_dead(&n, &plain).await;
}

#[tokio::test]
async fn normal_exit_does_not_kill_linked() {
    let n = node();
    let (plain, _rx) = probe(&n, false).await;
    let victim = n.spawn(|mut p: Process| async move {
        p.receive().await;
        normal()
    });
    n.link(&plain, &victim);
    n.send(victim.clone(), Term::atom("go"));
    wait_dead(&n, &victim).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(n.is_alive(&plain));
}

#[tokio::test]
async fn exit2_kill_is_untrappable_and_becomes_killed() {
    let n = node();
    let (watcher, mut rx) = probe(&n, false).await;
    let (trapper, _rx) = probe(&n, true).await;
    let mref = n.monitor(&watcher, Dest::Pid(trapper.clone()));
    n.exit2(&watcher, &trapper, Term::atom("kill"));
    assert_eq!(next(&mut rx).await, down_message(&mref, &Term::Pid(trapper), Term::atom("killed")));
}

#[tokio::test]
async fn trapped_exit2_becomes_a_message() {
    let n = node();
    let (trapper, mut rx) = probe(&n, true).await;
    n.exit2(n.system_pid(), &trapper, Term::atom("shutdown"));
    assert_eq!(
        next(&mut rx).await,
        Term::Tuple(vec![Term::atom("EXIT"), Term::Pid(n.system_pid().clone()), Term::atom("shutdown")])
    );
}

#[tokio::test]
async fn panic_is_an_exit_reason() {
    let n = node();
    let (watcher, mut rx) = probe(&n, false).await;
    let victim = n.spawn(|mut p: Process| async move {
        p.receive().await;
        panic!("kaboom")
    });
    let mref = n.monitor(&watcher, Dest::Pid(victim.clone()));
    n.send(victim.clone(), Term::atom("go"));
    let expected = Term::Tuple(vec![Term::atom("panic"), Term::binary(b"kaboom")]);
    assert_eq!(next(&mut rx).await, down_message(&mref, &Term::Pid(victim), expected));
}

#[tokio::test]
async fn names_register_and_vanish_on_exit() {
    let n = node();
    let (pid, _rx) = probe(&n, false).await;
    assert!(n.register(Atom::new("srv"), &pid));
    assert!(!n.register(Atom::new("srv"), &pid));
    assert_eq!(n.whereis(&Atom::new("srv")), Some(pid.clone()));
    n.send(Atom::new("srv"), Term::atom("stop"));
    wait_dead(&n, &pid).await;
    assert_eq!(n.whereis(&Atom::new("srv")), None);
}

#[tokio::test]
async fn aliases_deliver_until_unaliased() {
    let n = node();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (atx, mut arx) = tokio::sync::mpsc::unbounded_channel();
    n.spawn(move |mut p: Process| async move {
        let a = p.alias();
        let _ = atx.send(a.clone());
        let m = p.receive().await;
        let _ = tx.send(m);
        p.unalias(&a);
        let _ = atx.send(a);
        let late = p.receive_timeout(Duration::from_millis(50)).await;
        let _ = tx.send(late.unwrap_or(Term::atom("nothing")));
        normal()
    });
    let alias = arx.recv().await.unwrap();
    n.send(Dest::Alias(alias), Term::atom("hi"));
    assert_eq!(next(&mut rx).await, Term::atom("hi"));
    let alias = arx.recv().await.unwrap();
    n.send(Dest::Alias(alias), Term::atom("late"));
    assert_eq!(next(&mut rx).await, Term::atom("nothing"));
}

#[tokio::test]
async fn connection_loss_fires_noconnection() {
    let n = node();
    let (trapper, mut rx) = probe(&n, true).await;
    let remote = Pid { node: Atom::new("far@away"), id: 5, serial: 0, creation: 9 };
    // pretend the link and monitor were set up over a connection
    n.remote_link(&remote, &trapper);
    let e = n.lookup(&trapper).unwrap();
    let mref = n.make_ref();
    e.state().monitors.insert(mref.clone(), MonitorTarget::Pid(remote.clone()));
    n.connection_lost(&Atom::new("far@away"));
    let mut got = vec![next(&mut rx).await, next(&mut rx).await];
    got.sort();
    let mut want = vec![
        down_message(&mref, &Term::Pid(remote.clone()), noconnection()),
        Term::Tuple(vec![Term::atom("EXIT"), Term::Pid(remote), noconnection()]),
    ];
    want.sort();
    assert_eq!(got, want);
}
