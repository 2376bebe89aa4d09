//! Phoenix.PubSub between erlnode and real Elixir nodes running `phoenix_pubsub` 2.2.0 (from
//! `../shared/peers`, built per OTP by the harness), configured as a Phoenix app configures it:
//! `{Phoenix.PubSub, name: MyApp.PubSub, pool_size: N}` in a supervision tree. Rust subscribers
//! get every broadcast of every node exactly once; Elixir subscribers get Rust's broadcasts
//! exactly once and in order; the broadcast variants keep Phoenix's semantics; the pool size is
//! read from the cluster; PubSubs of other names stay apart; nodes join, leave and die.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::peers::PeerLibs;
use common::*;
use erlnode::ecosystem::phoenix_pubsub::PubSub;
use erlnode::node::{NodeConfig, normal};
use erlnode::term::{Atom, Pid, Term, parse_elixir};
use erlnode::{Node, Process};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(30);

async fn rust_node(epmd: &Epmd) -> Node {
    let config = NodeConfig::new(unique_name("rusty"), DEFAULT_COOKIE).epmd_port(epmd.port());
    erlnode::services::start_node(config).await.expect("rust node starts")
}

/// An Elixir node with the peer libraries and `ErlnodePeer` loaded, running `pubsubs`
/// (`(name, opts)` in Elixir syntax, e.g. `("MyApp.PubSub", "pool_size: 2")`).
fn ex_node(otp: &Otp, epmd: &Epmd, libs: &PeerLibs, prefix: &str, pubsubs: &[(&str, &str)]) -> BeamNode {
    let n = libs.start_elixir(otp, epmd, libs.elixir_node().prefix(prefix));
    for (name, opts) in pubsubs {
        assert_eq!(n.eval(&format!("ErlnodePeer.start_pubsub({name}, [{opts}])")).unwrap(), ":ok");
    }
    n
}

fn atom(node: &Node) -> String {
    elixir_atom(node.name().as_str())
}

/// A Rust process subscribed to `topics`, passing what it receives to the test.
fn rust_subscriber(node: &Node, ps: &PubSub, topics: &[&str]) -> (Pid, mpsc::UnboundedReceiver<Term>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pid = node.spawn(move |mut p: Process| async move {
        loop {
            let m = p.receive().await;
            if m.is_atom("stop") {
                return normal();
            }
            let _ = tx.send(m);
        }
    });
    for t in topics {
        ps.subscribe(&pid, t).unwrap();
    }
    (pid, rx)
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Term>, what: &str) -> Term {
    tokio::time::timeout(T, rx.recv()).await.unwrap_or_else(|_| panic!("timed out waiting for {what}")).expect("open")
}

/// Receives until `{done, S}` has come from each of `senders`; returns how often each
/// `{msg, S, I}` came.
async fn collect_until_done(rx: &mut mpsc::UnboundedReceiver<Term>, senders: i64) -> BTreeMap<(i64, i64), usize> {
    let mut counts = BTreeMap::new();
    let mut done = 0;
    while done < senders {
        let m = recv(rx, "broadcasts from BEAM").await;
        match m.as_tuple() {
            Some([tag, s, i]) if tag.is_atom("msg") => {
                *counts.entry((s.as_int().unwrap(), i.as_int().unwrap())).or_default() += 1;
            }
            Some([tag, _]) if tag.is_atom("done") => done += 1,
            _ => panic!("unexpected message {m}"),
        }
    }
    counts
}

fn eval(n: &BeamNode, expr: &str) -> String {
    n.eval(expr).unwrap_or_else(|e| panic!("{expr} on {}: {e:?}", n.name()))
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    assert!(wait_until_async(T, async || cond()).await, "timed out waiting for: {what}");
}

/// The messages an Elixir collector got, parsed.
fn got(n: &BeamNode, collector: &str, count: usize) -> Vec<Term> {
    let out = eval(n, &format!("ErlnodePeer.wait_got({collector}, {count})"));
    match parse_elixir(&out) {
        Ok(Term::List(l)) => l,
        _ => panic!("{collector} on {} got {out}", n.name()),
    }
}

#[test]
fn rust_and_elixir_subscribers_get_every_broadcast_exactly_once() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let ps_opts = [("MyApp.PubSub", "pool_size: 2"), ("Other.PubSub", "")];
        let a = ex_node(&otp, &epmd, &libs, "phx_a", &ps_opts);
        let b = ex_node(&otp, &epmd, &libs, "phx_b", &ps_opts);
        assert_eq!(eval(&b, &format!("Node.connect({})", elixir_atom(a.name()))), "true");
        let node = rust_node(&epmd).await;
        assert!(node.connect(&Atom::new(a.name())).await);
        let ps = PubSub::join(&node, "MyApp.PubSub").await.unwrap();
        assert_eq!(PubSub::join(&node, "Elixir.MyApp.PubSub").await.unwrap().name(), ps.name(), "the same PubSub");
        let (ea, eb) = (Atom::new(a.name()), Atom::new(b.name()));
        assert!(ps.wait_for_nodes(&[ea.clone(), eb.clone()], T).await, "Rust sees both nodes' pools");
        assert_eq!(ps.pool_size(), 2, "the pool size comes from the cluster");
        let rust = atom(&node);
        eventually("both BEAM nodes see Rust in both pool groups", || {
            [&a, &b].iter().all(|n| eval(n, &format!("ErlnodePeer.serves?(MyApp.PubSub, 2, {rust})")) == "true")
        })
        .await;

        // BEAM -> Rust: 8 senders on each node (so both pool groups), 25 messages each
        let (sub, mut rx) = rust_subscriber(&node, &ps, &["room:1", "room:2"]);
        eval(&a, "ErlnodePeer.broadcast_many(MyApp.PubSub, \"room:1\", 8, 25)");
        eval(&b, "ErlnodePeer.broadcast_many(MyApp.PubSub, \"room:1\", 8, 25)");
        let counts = collect_until_done(&mut rx, 16).await;
        assert_eq!(counts.len(), 8 * 25, "every (sender, i) of the first 8 senders");
        assert!(counts.values().all(|&n| n == 2), "once from each node: {counts:?}");

        // Rust -> BEAM: every Elixir subscriber gets each broadcast once, in order (on another
        // topic: A's workers may still be delivering B's broadcasts to A's room:1)
        eval(&a, "ca = ErlnodePeer.collector(MyApp.PubSub, \"room:2\")");
        eval(&b, "cb = ErlnodePeer.collector(MyApp.PubSub, \"room:2\")");
        eval(&b, "co = ErlnodePeer.collector(Other.PubSub, \"room:2\")");
        for i in 0..50 {
            ps.broadcast("room:2", Term::Tuple(vec![Term::atom("from_rust"), Term::Int(i)]));
        }
        let want: Vec<Term> = (0..50).map(|i| Term::Tuple(vec![Term::atom("from_rust"), Term::Int(i)])).collect();
        assert_eq!(got(&a, "ca", 50), want);
        assert_eq!(got(&b, "cb", 50), want);
        for w in &want {
            let m = recv(&mut rx, "Rust's own broadcast, delivered locally").await;
            assert_eq!(&m, w, "local delivery in order");
        }

        // broadcast_from: not to the sender itself; everyone else as broadcast
        ps.broadcast_from(&sub, "room:2", Term::atom("from_sub"));
        let (sub2, mut rx2) = rust_subscriber(&node, &ps, &["room:2"]);
        ps.broadcast_from(&sub, "room:2", Term::atom("from_sub_again"));
        assert_eq!(recv(&mut rx2, "broadcast_from to another Rust subscriber").await, Term::atom("from_sub_again"));
        assert_eq!(got(&a, "ca", 52)[50..], [Term::atom("from_sub"), Term::atom("from_sub_again")]);

        // local_broadcast stays on this node; direct_broadcast reaches one node
        ps.local_broadcast("room:2", Term::atom("local"));
        ps.direct_broadcast(&eb, "room:2", Term::atom("direct_to_b"));
        ps.broadcast("room:2", Term::atom("marker"));
        assert_eq!(recv(&mut rx, "local").await, Term::atom("local"));
        assert_eq!(recv(&mut rx, "marker").await, Term::atom("marker"), "the sender got nothing of broadcast_from");
        assert_eq!(got(&a, "ca", 53)[52..], [Term::atom("marker")]);
        assert_eq!(got(&b, "cb", 54)[52..], [Term::atom("direct_to_b"), Term::atom("marker")]);
        assert_eq!(eval(&b, "ErlnodePeer.got(co)"), "[]", "Other.PubSub got nothing of MyApp.PubSub");

        // a custom dispatcher: BEAM subscribers get what it makes, Rust ones the message as is
        let sent = eval(&a, "Phoenix.PubSub.broadcast(MyApp.PubSub, \"room:2\", :custom_x, ErlnodePeer.Dispatcher)");
        assert_eq!(sent, ":ok");
        assert_eq!(recv(&mut rx, "a custom-dispatched message").await, Term::atom("custom_x"));
        assert_eq!(got(&b, "cb", 55)[54..], [parse_elixir("{:custom, :custom_x}").unwrap()]);

        // Other.PubSub: Rust joins it too; the two stay apart
        let other = PubSub::join(&node, "Other.PubSub").await.unwrap();
        assert!(other.wait_for_nodes(&[ea.clone(), eb.clone()], T).await);
        assert_eq!(other.pool_size(), 1);
        let (_osub, mut orx) = rust_subscriber(&node, &other, &["room:2"]);
        eventually("BEAM sees Rust in Other.PubSub", || {
            eval(&a, &format!("ErlnodePeer.serves?(Other.PubSub, 1, {rust})")) == "true"
        })
        .await;
        eval(&a, "Phoenix.PubSub.broadcast(Other.PubSub, \"room:2\", :other_only)");
        assert_eq!(recv(&mut orx, "Other.PubSub's broadcast").await, Term::atom("other_only"));
        assert_eq!(got(&b, "co", 1), [Term::atom("other_only")]);
        other.broadcast("room:2", Term::atom("other_from_rust"));
        assert_eq!(got(&b, "co", 2)[1..], [Term::atom("other_from_rust")]);
        ps.broadcast("room:2", Term::atom("marker2"));
        assert_eq!(recv(&mut rx, "marker2").await, Term::atom("marker2"), "nothing of Other.PubSub reached MyApp's");
        assert_eq!(got(&b, "cb", 56)[55..], [Term::atom("marker2")]);
        assert_eq!(ps.malformed_count(), 0);

        // unsubscribe; a subscriber that exits is unsubscribed
        ps.unsubscribe(&sub, "room:2");
        eval(&a, "Phoenix.PubSub.broadcast(MyApp.PubSub, \"room:2\", :after_unsubscribe)");
        for want in ["local", "marker", "custom_x", "marker2", "after_unsubscribe"] {
            assert_eq!(recv(&mut rx2, want).await, Term::atom(want), "the second subscriber gets everything");
        }
        assert!(rx.try_recv().is_err(), "the unsubscribed process got nothing");
        assert_eq!(ps.subscribers("room:2"), vec![sub2.clone()]);
        node.send(sub2.clone(), Term::atom("stop"));
        eventually("the exited subscriber is unsubscribed", || ps.subscribers("room:2").is_empty()).await;
    });
}

#[test]
fn nodes_join_leave_and_die_and_the_pool_follows_the_cluster() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let a = ex_node(&otp, &epmd, &libs, "phx_a", &[("MyApp.PubSub", "pool_size: 1")]);
        let node = rust_node(&epmd).await;
        assert!(node.connect(&Atom::new(a.name())).await);
        let ps = PubSub::join(&node, "MyApp.PubSub").await.unwrap();
        let ea = Atom::new(a.name());
        assert!(ps.wait_for_nodes(std::slice::from_ref(&ea), T).await);
        assert_eq!(ps.pool_size(), 1);
        let (_sub, mut rx) = rust_subscriber(&node, &ps, &["t"]);
        let rust = atom(&node);

        // a node with a larger pool joins (a pool size migration in progress: it broadcasts on
        // 1 group, listens on 3): erlnode serves its groups too, and broadcasts on group 1 only
        let b = ex_node(&otp, &epmd, &libs, "phx_b", &[("MyApp.PubSub", "pool_size: 3, broadcast_pool_size: 1")]);
        assert_eq!(eval(&b, &format!("Node.connect({})", elixir_atom(a.name()))), "true");
        let eb = Atom::new(b.name());
        assert!(ps.wait_for_nodes(&[ea.clone(), eb.clone()], T).await, "erlnode serves B's pool");
        assert_eq!(ps.pool_size(), 3);
        eventually("B sees erlnode in its 3 groups", || {
            eval(&b, &format!("ErlnodePeer.serves?(MyApp.PubSub, 3, {rust})")) == "true"
        })
        .await;
        eval(&b, "cb = ErlnodePeer.collector(MyApp.PubSub, \"t\")");
        eval(&a, "ca = ErlnodePeer.collector(MyApp.PubSub, \"t\")");
        for i in 0..20 {
            ps.broadcast("t", Term::Int(i));
        }
        let want: Vec<Term> = (0..20).map(Term::Int).collect();
        assert_eq!(got(&a, "ca", 20), want, "A (pool 1) gets everything");
        assert_eq!(got(&b, "cb", 20), want);
        for w in &want {
            assert_eq!(&recv(&mut rx, "erlnode's own broadcasts, locally").await, w);
        }
        eval(&b, "ErlnodePeer.broadcast_many(MyApp.PubSub, \"t\", 6, 10)");
        assert!(collect_until_done(&mut rx, 6).await.values().all(|&n| n == 1));

        // malformed messages to a pool worker are dropped and counted; the worker carries on
        let worker = "MyApp.PubSub.Adapter";
        eval(&a, &format!("send({{{worker}, {rust}}}, :garbage)"));
        eval(&a, &format!("send({{{worker}, {rust}}}, {{:forward_to_local, 'charlist topic', :m, Phoenix.PubSub}})"));
        eval(&a, &format!("send({{{worker}, {rust}}}, {{:forward_to_local, \"t\", :m}})"));
        eventually("3 malformed messages counted", || ps.malformed_count() == 3).await;
        eval(&a, "Phoenix.PubSub.broadcast(MyApp.PubSub, \"t\", :still_works)");
        assert_eq!(recv(&mut rx, "a broadcast after the garbage").await, Term::atom("still_works"));

        // B dies: its pool goes from the view, broadcasts both ways go on
        b.kill();
        eventually("erlnode forgets B", || ps.nodes().len() == 2).await;
        ps.broadcast("t", Term::atom("after_b"));
        // ca has erlnode's 20, B's 6 x (10 + done), still_works
        let seen = 20 + 6 * 11 + 1;
        assert_eq!(got(&a, "ca", seen + 1)[seen..], [Term::atom("after_b")]);
        eval(&a, "Phoenix.PubSub.broadcast(MyApp.PubSub, \"t\", :from_a_after_b)");
        assert_eq!(recv(&mut rx, "after_b (local)").await, Term::atom("after_b"));
        assert_eq!(recv(&mut rx, "A's broadcast after B died").await, Term::atom("from_a_after_b"));

        // C joins, leaves cleanly (its PubSub stops), and erlnode follows
        let c = ex_node(&otp, &epmd, &libs, "phx_c", &[("MyApp.PubSub", "pool_size: 1")]);
        assert_eq!(eval(&c, &format!("Node.connect({})", elixir_atom(a.name()))), "true");
        let ec = Atom::new(c.name());
        assert!(ps.wait_for_nodes(std::slice::from_ref(&ec), T).await);
        eval(&c, "cc = ErlnodePeer.collector(MyApp.PubSub, \"t\")");
        ps.broadcast("t", Term::atom("to_c"));
        assert_eq!(got(&c, "cc", 1), [Term::atom("to_c")]);
        eval(&c, "Application.stop(:phoenix_pubsub); Supervisor.which_children(MyApp.PubSub.Adapter_supervisor)");
        eventually("erlnode forgets C's pool", || !ps.nodes().contains(&ec)).await;
        assert_eq!(recv(&mut rx, "to_c (local)").await, Term::atom("to_c"));
        ps.broadcast("t", Term::atom("last"));
        assert_eq!(
            got(&a, "ca", seen + 4)[seen + 1..],
            [Term::atom("from_a_after_b"), Term::atom("to_c"), Term::atom("last")]
        );
    });
}

/// Kills a child process (by pid) when the test ends, however it ends.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a pid; at worst the child is gone already (ESRCH).
        unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGKILL) };
    }
}

/// `erlnode` with the test's EPMD, cookie and no log noise.
fn erlnode_cmd(epmd: &Epmd) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_erlnode"));
    c.env("ERL_EPMD_PORT", epmd.port().to_string()).env_remove("RUST_LOG").args(["--cookie", DEFAULT_COOKIE]);
    c
}

#[test]
fn the_cli_tails_a_topic_and_broadcasts_into_it() {
    use std::io::{BufRead, BufReader};
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let a = ex_node(&otp, &epmd, &libs, "phx_a", &[("MyApp.PubSub", "pool_size: 2")]);
        let b = ex_node(&otp, &epmd, &libs, "phx_b", &[("MyApp.PubSub", "pool_size: 2")]);
        assert_eq!(eval(&b, &format!("Node.connect({})", elixir_atom(a.name()))), "true");
        eval(&b, "cb = ErlnodePeer.collector(MyApp.PubSub, \"room:cli\")");

        let mut tail = erlnode_cmd(&epmd);
        tail.args(["--elixir", "pubsub", "subscribe", "--server", "MyApp.PubSub", "--connect", a.name()])
            .args(["--count", "4", "room:cli"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // killed with the test process, even one that panics before the tailer is done
        let mut tail = spawn_guarded(tail).expect("erlnode pubsub subscribe starts");
        let reap = KillOnDrop(tail.id());
        let mut err = BufReader::new(tail.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("a line on stderr");
        let name = line
            .strip_prefix("erlnode: ")
            .and_then(|l| l.split_once(" subscribed to room:cli on MyApp.PubSub (pool size 2"))
            .map(|(n, _)| n.to_string())
            .unwrap_or_else(|| panic!("unexpected: {line}"));
        let tailer = elixir_atom(&name);
        eventually("both nodes see the tailer in both pool groups", || {
            [&a, &b].iter().all(|n| eval(n, &format!("ErlnodePeer.serves?(MyApp.PubSub, 2, {tailer})")) == "true")
        })
        .await;

        // the tailer's lines, read as they come (with a deadline, so that a lost message fails
        // the test instead of hanging it)
        let stdout = tail.stdout.take().expect("stdout");
        let (line_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(l).is_err() {
                    break;
                }
            }
        });
        let next_line = || lines.recv_timeout(T).expect("the tailer prints the next message");
        // Each broadcast goes out once the one before has reached both the tailer and B's
        // collector: broadcasts from different nodes travel on different connections, and
        // nothing orders them otherwise (Erlang orders messages per sender and receiver only).
        eval(&b, "Phoenix.PubSub.broadcast(MyApp.PubSub, \"room:cli\", %{from: :b, n: 1})");
        assert_eq!(next_line(), "%{from: :b, n: 1}");
        eval(&a, "Phoenix.PubSub.broadcast(MyApp.PubSub, \"room:cli\", {:from_a, \"hi\"})");
        assert_eq!(next_line(), "{:from_a, \"hi\"}");
        assert_eq!(got(&b, "cb", 2).len(), 2, "B's collector has both broadcasts");
        let sent = erlnode_cmd(&epmd)
            .args(["pubsub", "broadcast", "--server", "Elixir.MyApp.PubSub", "--connect", a.name()])
            .args(["room:cli", "-1"])
            .output()
            .expect("erlnode pubsub broadcast runs");
        assert!(sent.status.success(), "broadcast failed: {}", String::from_utf8_lossy(&sent.stderr));
        assert_eq!(next_line(), "-1");
        assert_eq!(got(&b, "cb", 3).len(), 3, "B's collector has the CLI's broadcast");
        eval(&b, "Phoenix.PubSub.broadcast(MyApp.PubSub, \"room:cli\", :bye)");
        assert_eq!(next_line(), ":bye");
        let status = tail.wait().expect("the tailer exits");
        std::mem::forget(reap); // reaped: its pid is no longer ours to kill
        assert!(status.success(), "the tailer exits 0 after 4 messages");
        assert!(lines.recv_timeout(Duration::from_millis(200)).is_err(), "and prints nothing more");
        assert_eq!(
            got(&b, "cb", 4),
            [
                parse_elixir("%{from: :b, n: 1}").unwrap(),
                parse_elixir("{:from_a, \"hi\"}").unwrap(),
                Term::Int(-1),
                Term::atom("bye")
            ],
            "the CLI's broadcast reached B once"
        );

        let nope = erlnode_cmd(&epmd)
            .args(["pubsub", "broadcast", "--server", "Nope.PubSub", "--connect", a.name(), "t", "x"])
            .output()
            .expect("erlnode pubsub broadcast runs");
        assert!(!nope.status.success());
        let msg = String::from_utf8_lossy(&nope.stderr);
        assert!(msg.contains("no Phoenix.PubSub named Nope.PubSub in the cluster of"), "{msg}");
    });
}
