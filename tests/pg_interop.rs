//! `pg` scopes of the Rust node against real BEAM scopes (Kernel `pg`; protocol notes section
//! 8): the default scope of `erl -kernel start_pg true`, a named scope an Elixir node starts
//! with `:pg.start_link(:my_scope)`, a hidden node that is not a peer, and membership churn
//! racing with a SIGKILLed node and with connections dropped and restored. After each step the
//! BEAM scope must still be the same live process: a BEAM scope crashes on any message it does
//! not expect. Every test runs against each OTP version of the harness.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use erlnode::node::{NodeConfig, normal};
use erlnode::services::pg;
use erlnode::term::{Atom, Pid, Term};
use erlnode::{Dest, Node, Process};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(20);

async fn rust_node(epmd: &Epmd) -> Node {
    let config = NodeConfig::new(unique_name("rusty"), DEFAULT_COOKIE).epmd_port(epmd.port());
    erlnode::services::start_node(config).await.expect("rust node starts")
}

fn erl_pg() -> NodeOpts {
    NodeOpts::erlang().args(["-kernel", "start_pg", "true"])
}

/// A process that runs until it gets any message.
fn spawn_member(node: &Node) -> Pid {
    node.spawn(|mut p: Process| async move {
        p.receive().await;
        normal()
    })
}

/// A process registered as `inbox` passing everything it receives to the test.
fn spawn_inbox(node: &Node) -> mpsc::UnboundedReceiver<Term> {
    let (tx, rx) = mpsc::unbounded_channel();
    let pid = node.spawn(move |mut p: Process| async move {
        loop {
            let _ = tx.send(p.receive().await);
        }
    });
    assert!(node.register(Atom::new("inbox"), &pid));
    rx
}

/// The node name as an atom in the BEAM node's own syntax.
fn atom_for(beam: &BeamNode, node: &Node) -> String {
    match beam.lang() {
        Lang::Erlang => erlang_atom(node.name().as_str()),
        Lang::Elixir => elixir_atom(node.name().as_str()),
    }
}

/// Evaluates `expr` on `beam`, which must send `{reply, Value}` to our `inbox` (`{reply, ...}`
/// written by the caller in the node's syntax), and returns `Value`.
async fn ask(beam: &BeamNode, inbox: &mut mpsc::UnboundedReceiver<Term>, expr: &str) -> Term {
    let out = beam.eval_async(expr).await.unwrap_or_else(|e| panic!("{expr}: {e:?}"));
    let m = tokio::time::timeout(T, inbox.recv()).await.expect("a reply in the inbox").expect("inbox open");
    match m.as_tuple() {
        Some([tag, value]) if tag.is_atom("reply") => value.clone(),
        _ => panic!("unexpected inbox message {m} after {expr} -> {out}"),
    }
}

/// `pg:get_members(Scope, Group)` on an Erlang node, as pids.
async fn erl_members(
    erl: &BeamNode,
    node: &Node,
    inbox: &mut mpsc::UnboundedReceiver<Term>,
    scope: &str,
    group: &str,
) -> Vec<Pid> {
    let expr = format!("{{inbox, {}}} ! {{reply, pg:get_members({scope}, {group})}}, ok", atom_for(erl, node));
    pids(ask(erl, inbox, &expr).await)
}

/// `:pg.get_members(Scope, Group)` on an Elixir node, as pids.
async fn ex_members(
    ex: &BeamNode,
    node: &Node,
    inbox: &mut mpsc::UnboundedReceiver<Term>,
    scope: &str,
    group: &str,
) -> Vec<Pid> {
    let expr = format!("send({{:inbox, {}}}, {{:reply, :pg.get_members({scope}, {group})}}); :ok", atom_for(ex, node));
    pids(ask(ex, inbox, &expr).await)
}

fn pids(t: Term) -> Vec<Pid> {
    t.as_list()
        .unwrap_or_else(|| panic!("not a list: {t}"))
        .iter()
        .map(|p| p.as_pid().expect("a pid").clone())
        .collect()
}

fn set(v: &[Pid]) -> HashSet<Pid> {
    v.iter().cloned().collect()
}

/// Polls until `f` returns `Some` or the deadline passes.
async fn eventually<V>(what: &str, mut f: impl AsyncFnMut() -> Option<V>) -> V {
    let mut last = None;
    let ok = wait_until_async(T, async || {
        last = f().await;
        last.is_some()
    })
    .await;
    assert!(ok, "timed out waiting for: {what}");
    last.expect("checked above")
}

/// Hands `pid` to the BEAM shell process (registered as `shell`), bound as `var` there.
async fn bind_pid(beam: &BeamNode, node: &Node, var: &str, pid: &Pid) {
    let tag = var.to_lowercase();
    node.send(
        Dest::Remote(Atom::new("shell"), Atom::new(beam.name())),
        Term::Tuple(vec![Term::atom(&tag), Term::Pid(pid.clone())]),
    );
    let expr = match beam.lang() {
        Lang::Erlang => format!("{var} = receive {{{tag}, P}} -> P after 10000 -> timeout end, is_pid({var})"),
        Lang::Elixir => format!("{var} = receive do {{:{tag}, p}} -> p after 10000 -> :timeout end; is_pid({var})"),
    };
    assert_eq!(beam.eval_async(&expr).await.unwrap(), "true", "{expr}");
}

async fn assert_erl_scope_alive(erl: &BeamNode) {
    assert_eq!(
        erl.eval_async("whereis(pg) =:= PgPid").await.unwrap(),
        "true",
        "the BEAM pg scope was restarted or died"
    );
}

#[test]
fn default_scope_membership_with_erl() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, erl_pg());
        let node = rust_node(&epmd).await;
        let mut inbox = spawn_inbox(&node);
        // a visible node runs the default scope from the start
        let scope = Atom::new(pg::DEFAULT_SCOPE);
        let scope_pid = node.whereis(&scope).expect("the default pg scope runs");
        assert!(matches!(pg::start_scope(&node, scope.clone()), Err(pg::PgError::NameTaken(_))));
        assert_eq!(
            erl.eval_async("register(shell, self()), PgPid = whereis(pg), is_pid(PgPid)").await.unwrap(),
            "true"
        );
        let peer = Atom::new(erl.name());
        assert!(node.connect(&peer).await);
        let rust = atom_for(&erl, &node);

        // Rust joins: pg:get_members/2 on BEAM shows the Rust pid
        let m1 = spawn_member(&node);
        pg::join(&node, &scope, Term::atom("g1"), vec![m1.clone()]).await.unwrap();
        bind_pid(&erl, &node, "M1", &m1).await;
        eventually("BEAM sees M1 in g1", async || {
            (erl.eval_async("pg:get_members(g1) =:= [M1]").await.ok()? == "true").then_some(())
        })
        .await;
        assert_eq!(erl.eval_async("pg:get_local_members(g1)").await.unwrap(), "[]");
        assert_erl_scope_alive(&erl).await;

        // BEAM joins: Rust sees it, newest first as on BEAM
        let b1 = ask(&erl, &mut inbox, &format!(
            "B1 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(g1, B1), {{inbox, {rust}}} ! {{reply, B1}}, ok"
        ))
        .await;
        let b1 = b1.as_pid().expect("B1 is a pid").clone();
        eventually("Rust sees B1 in g1", async || {
            (pg::get_members(&node, &scope, &Term::atom("g1")).await == vec![b1.clone(), m1.clone()]).then_some(())
        })
        .await;
        assert_eq!(pg::get_local_members(&node, &scope, &Term::atom("g1")).await, vec![m1.clone()]);
        assert_eq!(erl_members(&erl, &node, &mut inbox, "pg", "g1").await, vec![b1.clone(), m1.clone()]);

        // a list join, a second group, then leaves
        let m2 = spawn_member(&node);
        pg::join(&node, &scope, Term::atom("g2"), vec![m1.clone(), m2.clone()]).await.unwrap();
        let want = set(&[m1.clone(), m2.clone()]);
        eventually("BEAM sees M1 and M2 in g2", async || {
            (set(&erl_members(&erl, &node, &mut inbox, "pg", "g2").await) == want).then_some(())
        })
        .await;
        assert!(pg::leave(&node, &scope, Term::atom("g2"), vec![m2.clone()]).await.unwrap());
        assert!(!pg::leave(&node, &scope, Term::atom("g2"), vec![m2.clone()]).await.unwrap(), "not_joined");
        eventually("BEAM sees only M1 in g2", async || {
            (erl_members(&erl, &node, &mut inbox, "pg", "g2").await == vec![m1.clone()]).then_some(())
        })
        .await;
        assert_erl_scope_alive(&erl).await;
        let theirs = pids(ask(&erl, &mut inbox, &format!("{{inbox, {rust}}} ! {{reply, [B1]}}, ok")).await);
        assert!(matches!(pg::join(&node, &scope, Term::atom("g1"), theirs).await, Err(pg::PgError::NotLocal(_))));

        // a Rust member dies: it disappears from every group on BEAM
        node.send(Dest::Pid(m1.clone()), Term::atom("stop"));
        eventually("BEAM drops the dead M1", async || {
            (erl.eval_async("{pg:get_members(g1), pg:get_members(g2), pg:which_groups()} =:= {[B1], [], [g1]}")
                .await
                .ok()?
                == "true")
                .then_some(())
        })
        .await;
        assert_erl_scope_alive(&erl).await;

        // a BEAM member dies: Rust drops it
        erl.eval_async("exit(B1, kill)").await.unwrap();
        eventually("Rust drops the dead B1", async || pg::which_groups(&node, &scope).await.is_empty().then_some(()))
            .await;

        // the BEAM node is SIGKILLed: its members disappear in Rust
        let b2 = ask(&erl, &mut inbox, &format!(
            "B2 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(g3, [B2]), {{inbox, {rust}}} ! {{reply, B2}}, ok"
        ))
        .await;
        let b2 = b2.as_pid().expect("B2 is a pid").clone();
        eventually("Rust sees B2", async || {
            (pg::get_members(&node, &scope, &Term::atom("g3")).await == vec![b2.clone()]).then_some(())
        })
        .await;
        assert_erl_scope_alive(&erl).await;
        erl.kill();
        eventually("Rust drops the members of the killed node", async || {
            pg::which_groups(&node, &scope).await.is_empty().then_some(())
        })
        .await;
        assert_eq!(node.whereis(&scope), Some(scope_pid.clone()));
        assert!(node.is_alive(&scope_pid));
    });
}

#[test]
fn named_scope_with_elixir() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let ex = BeamNode::start(&otp, &epmd, NodeOpts::elixir());
        let node = rust_node(&epmd).await;
        let mut inbox = spawn_inbox(&node);
        let scope = Atom::new("my_scope");
        let scope_pid = pg::start_scope(&node, scope.clone()).unwrap();
        // a Rust member joined before any peer exists reaches the peer through the sync
        let early = spawn_member(&node);
        pg::join(&node, &scope, Term::atom("early"), vec![early.clone()]).await.unwrap();
        let peer = Atom::new(ex.name());
        assert!(node.connect(&peer).await);
        let rust = atom_for(&ex, &node);

        // Elixir starts the scope after the connection: its init discovers us
        assert_eq!(ex.eval_async("Process.register(self(), :shell)").await.unwrap(), "true");
        ex.eval_async("spawn(fn -> {:ok, _} = :pg.start_link(:my_scope); Process.sleep(:infinity) end)").await.unwrap();
        eventually("my_scope runs on Elixir", async || {
            (ex.eval_async("is_pid(Process.whereis(:my_scope))").await.ok()? == "true").then_some(())
        })
        .await;
        assert_eq!(ex.eval_async("scope = Process.whereis(:my_scope); is_pid(scope)").await.unwrap(), "true");
        let alive = async || {
            assert_eq!(
                ex.eval_async("Process.whereis(:my_scope) == scope and Process.alive?(scope)").await.unwrap(),
                "true",
                "the Elixir scope died or was restarted"
            );
        };
        eventually("Elixir sees the early Rust member", async || {
            (ex_members(&ex, &node, &mut inbox, ":my_scope", ":early").await == vec![early.clone()]).then_some(())
        })
        .await;
        // the default scope of the Rust node is not involved
        assert_eq!(ex.eval_async("Process.whereis(:pg)").await.unwrap(), "nil");

        // Rust joins a group named by a compound term
        let group = Term::Tuple(vec![Term::atom("room"), Term::binary("lobby")]);
        let m = spawn_member(&node);
        pg::join(&node, &scope, group.clone(), vec![m.clone()]).await.unwrap();
        eventually("Elixir sees the Rust member in {:room, \"lobby\"}", async || {
            (ex_members(&ex, &node, &mut inbox, ":my_scope", "{:room, \"lobby\"}").await == vec![m.clone()])
                .then_some(())
        })
        .await;
        alive().await;

        // Elixir joins the same group
        let e = ask(
            &ex,
            &mut inbox,
            &format!(
                "e = spawn(fn -> receive do :stop -> :ok end end); :ok = :pg.join(:my_scope, {{:room, \"lobby\"}}, e); \
             send({{:inbox, {rust}}}, {{:reply, e}}); :ok"
            ),
        )
        .await;
        let e = e.as_pid().expect("a pid").clone();
        eventually("Rust sees the Elixir member", async || {
            (pg::get_members(&node, &scope, &group).await == vec![e.clone(), m.clone()]).then_some(())
        })
        .await;
        alive().await;

        // the Rust member dies; then the Elixir one leaves
        node.send(Dest::Pid(m.clone()), Term::atom("stop"));
        eventually("Elixir drops the dead Rust member", async || {
            (ex_members(&ex, &node, &mut inbox, ":my_scope", "{:room, \"lobby\"}").await == vec![e.clone()])
                .then_some(())
        })
        .await;
        alive().await;
        assert_eq!(ex.eval_async(":pg.leave(:my_scope, {:room, \"lobby\"}, [e])").await.unwrap(), ":ok");
        eventually("Rust sees the Elixir member leave", async || {
            pg::get_members(&node, &scope, &group).await.is_empty().then_some(())
        })
        .await;
        assert_eq!(pg::which_groups(&node, &scope).await, vec![Term::atom("early")]);

        // SIGKILL with an Elixir member in a group
        let e2 = ask(
            &ex,
            &mut inbox,
            &format!(
                "e2 = spawn(fn -> receive do :stop -> :ok end end); :ok = :pg.join(:my_scope, :early, [e2]); \
             send({{:inbox, {rust}}}, {{:reply, e2}}); :ok"
            ),
        )
        .await;
        let e2 = e2.as_pid().expect("a pid").clone();
        eventually("Rust sees e2", async || {
            (pg::get_members(&node, &scope, &Term::atom("early")).await == vec![e2.clone(), early.clone()])
                .then_some(())
        })
        .await;
        alive().await;
        ex.kill();
        eventually("Rust drops the killed node's members", async || {
            (pg::get_members(&node, &scope, &Term::atom("early")).await == vec![early.clone()]).then_some(())
        })
        .await;
        assert_eq!(node.whereis(&scope), Some(scope_pid));
    });
}

#[test]
fn hidden_nodes_are_not_peers() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let hidden = BeamNode::start(&otp, &epmd, erl_pg().hidden());
        let node = rust_node(&epmd).await;
        let scope = Atom::new(pg::DEFAULT_SCOPE);
        let m = spawn_member(&node);
        pg::join(&node, &scope, Term::atom("g"), vec![m]).await.unwrap();
        let rust = atom_for(&hidden, &node);
        assert_eq!(hidden.eval_async(&format!("net_adm:ping({rust})")).await.unwrap(), "pong");
        assert_eq!(node.hidden_nodes(), vec![Atom::new(hidden.name())]);
        assert_eq!(
            hidden
                .eval_async("PgPid = whereis(pg), B = spawn(fun() -> receive _ -> ok end end), pg:join(g, B)")
                .await
                .unwrap(),
            "ok"
        );
        // even a discover sent by hand gets no sync. Our scope handles messages in order, so
        // once it answers a call from the same sender it has dealt with the discover; any sync
        // it sent would then be in the hidden scope's queue ahead of sys:get_state/1.
        let check = format!(
            "{{pg, {rust}}} ! {{discover, PgPid}}, [g] = gen_server:call({{pg, {rust}}}, which_groups), \
             _ = sys:get_state(pg), length(pg:get_members(g))"
        );
        assert_eq!(hidden.eval_async(&check).await.unwrap(), "1", "the hidden scope learned our member");
        assert_eq!(pg::get_members(&node, &scope, &Term::atom("g")).await.len(), 1, "only our own member");
        assert_eq!(hidden.eval_async("whereis(pg) =:= PgPid").await.unwrap(), "true");
    });
}

/// The churn a BEAM node runs: join fresh processes to `race` as fast as it can, killing one
/// or making one leave now and then, until told to stop.
const ERL_CHURN: &str = "Churn = spawn(fun() -> \
    L = fun L(N, Acc) -> \
        P = spawn(fun() -> receive _ -> ok end end), \
        ok = pg:join(race, P), \
        Acc1 = case Acc of \
            [H | T] when N rem 3 =:= 0 -> exit(H, kill), T; \
            [H | T] when N rem 3 =:= 1 -> ok = pg:leave(race, H), T; \
            _ -> Acc \
        end, \
        receive stop -> ok after 1 -> L(N + 1, [P | Acc1]) end \
    end, \
    L(0, []) end), ok";

#[test]
fn joins_race_with_a_killed_node_and_dropped_connections() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let observer = BeamNode::start(&otp, &epmd, erl_pg().prefix("observer"));
        let victim = BeamNode::start(&otp, &epmd, erl_pg().prefix("victim"));
        let node = rust_node(&epmd).await;
        let mut inbox = spawn_inbox(&node);
        let scope = Atom::new(pg::DEFAULT_SCOPE);
        let scope_pid = node.whereis(&scope).expect("the default pg scope runs");
        let (obs, vic) = (Atom::new(observer.name()), Atom::new(victim.name()));
        assert!(node.connect(&obs).await);
        assert!(node.connect(&vic).await);
        assert_eq!(observer.eval_async("PgPid = whereis(pg), is_pid(PgPid)").await.unwrap(), "true");
        victim.eval_async(ERL_CHURN).await.unwrap();

        // Rust churns too, until told to stop: join fresh members, stop or unjoin older ones
        let race = Term::atom("race");
        let rounds = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let churn = {
            let (node, scope, race) = (node.clone(), scope.clone(), race.clone());
            let (rounds, stop) = (rounds.clone(), stop.clone());
            tokio::spawn(async move {
                let mut mine: Vec<Pid> = Vec::new();
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let m = spawn_member(&node);
                    pg::join(&node, &scope, race.clone(), vec![m.clone()]).await.unwrap();
                    mine.push(m);
                    match i % 3 {
                        0 if mine.len() > 1 => node.send(Dest::Pid(mine.remove(0)), Term::atom("stop")),
                        1 if mine.len() > 1 => {
                            let gone = mine.remove(0);
                            assert!(pg::leave(&node, &scope, race.clone(), vec![gone]).await.unwrap());
                        }
                        _ => {}
                    }
                    i += 1;
                    rounds.store(i, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                mine
            })
        };
        let progressed = async |since: u32| {
            let ok = wait_until_async(T, async || rounds.load(Ordering::Relaxed) >= since + 20).await;
            assert!(ok, "the Rust churn stalled");
        };

        // the victim's members reach us while everyone churns
        eventually("victim members arrive", async || {
            let n = pg::get_members(&node, &scope, &race).await.iter().filter(|p| p.node == vic).count();
            (n >= 20).then_some(())
        })
        .await;
        // drop and restore the observer's connection while membership changes on all sides
        for _ in 0..5 {
            progressed(rounds.load(Ordering::Relaxed)).await;
            assert!(node.disconnect(&obs));
            // disconnect/1 starts the close; connect/1 would still find the closing connection
            assert!(wait_until_async(T, async || !node.nodes().contains(&obs)).await, "the connection stays up");
            assert!(node.connect(&obs).await);
        }
        progressed(rounds.load(Ordering::Relaxed)).await;
        victim.kill();
        progressed(rounds.load(Ordering::Relaxed)).await;
        stop.store(true, Ordering::Relaxed);
        let mine = churn.await.expect("the churn task ends");
        let want = set(&mine);
        assert!(!want.is_empty());

        eventually("Rust holds exactly its own members", async || {
            (set(&pg::get_members(&node, &scope, &race).await) == want).then_some(())
        })
        .await;
        assert_eq!(set(&pg::get_local_members(&node, &scope, &race).await), want);
        eventually("the observer holds exactly the Rust members", async || {
            (set(&erl_members(&observer, &node, &mut inbox, "pg", "race").await) == want).then_some(())
        })
        .await;
        assert_eq!(observer.eval_async("whereis(pg) =:= PgPid").await.unwrap(), "true", "the observer's pg crashed");
        assert_eq!(node.whereis(&scope), Some(scope_pid.clone()));
        assert!(node.is_alive(&scope_pid));
    });
}
