//! syn between erlnode and real Elixir nodes running syn 3.4.1 (from `../shared/peers`, built per
//! OTP by the harness): Rust names seen and called from two BEAM nodes (`:syn.lookup/2`,
//! `{:via, :syn, ...}`), Elixir names looked up and called from Rust, groups with members on
//! both sides (`:syn.members/2`, `:syn.publish/3`, `:syn.multi_call/4` and Rust's own), exits
//! unregistering, the purge when erlnode goes away, and a name registered on both sides of a
//! partition resolved as syn resolves it.

mod common;
#[path = "common/served.rs"]
mod served;

use std::time::Duration;

use common::peers::PeerLibs;
use common::*;
use erlnode::ecosystem::syn::message::MultiCall;
use erlnode::ecosystem::syn::{Syn, SynError, multi_call_reply};
use erlnode::gen_server::{self, CallReply, From, GenServer};
use erlnode::node::{NodeConfig, normal};
use erlnode::term::{Atom, Pid, Term, parse_elixir};
use erlnode::{Dest, Node, Process};
use served::Served;
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(30);

async fn rust_node(epmd: &Epmd) -> Node {
    let config = NodeConfig::new(unique_name("rusty"), DEFAULT_COOKIE).epmd_port(epmd.port());
    erlnode::services::start_node(config).await.expect("rust node starts")
}

/// An Elixir node with syn running the scope `users`.
fn ex_node(otp: &Otp, epmd: &Epmd, libs: &PeerLibs, prefix: &str) -> BeamNode {
    let n = libs.start_elixir(otp, epmd, libs.elixir_node().prefix(prefix));
    for helper in ["exit_watch.ex", "syn_peer.ex"] {
        let helper = repo_root().join("erlang_interop").join(helper);
        let helper = elixir_string(helper.to_str().expect("UTF-8 path"));
        eval(&n, &format!("Code.compile_file({helper}) |> length()"));
    }
    assert_eq!(eval(&n, "SynPeer.start([:users])"), ":ok");
    n
}

fn eval(n: &BeamNode, expr: &str) -> String {
    n.eval(expr).unwrap_or_else(|e| panic!("{expr} on {}: {e:?}", n.name()))
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    assert!(wait_until_async(T, async || cond()).await, "timed out waiting for: {what}");
}

/// A Rust GenServer answering every call with `{echo_from_rust, Request}`.
struct Echo;

impl GenServer for Echo {
    async fn handle_call(&mut self, request: Term, _from: &From, _p: &mut Process) -> CallReply {
        CallReply::Reply(Term::Tuple(vec![Term::atom("echo_from_rust"), request]))
    }
}

/// A Rust group member: answers multi calls with `{pong_from_rust, N}`, passes anything else
/// to the test, exits on `stop`.
fn rust_member(node: &Node, n: i64) -> (Pid, mpsc::UnboundedReceiver<Term>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pid = node.spawn(move |mut p: Process| async move {
        loop {
            let m = p.receive().await;
            if let Some(call) = MultiCall::parse(&m) {
                multi_call_reply(&p, &call, Term::Tuple(vec![Term::atom("pong_from_rust"), Term::Int(n)]));
            } else if m.is_atom("stop") {
                return normal();
            } else {
                let _ = tx.send(m);
            }
        }
    });
    (pid, rx)
}

#[test]
fn rust_names_and_groups_are_seen_and_called_from_two_beam_nodes() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let a = ex_node(&otp, &epmd, &libs, "syn_a");
        let b = ex_node(&otp, &epmd, &libs, "syn_b");
        assert_eq!(eval(&b, &format!("Node.connect({})", elixir_atom(a.name()))), "true");
        let node = rust_node(&epmd).await;
        let (ea, eb) = (Atom::new(a.name()), Atom::new(b.name()));
        assert!(node.connect(&ea).await && node.connect(&eb).await);
        let syn = Syn::join(&node, "users").await.unwrap();
        assert!(syn.wait_for_nodes(&[ea.clone(), eb.clone()], T).await, "Rust discovers both scopes");
        let rust = elixir_atom(node.name().as_str());
        eventually("both BEAM nodes know Rust's scope processes", || {
            [&a, &b].iter().all(|n| {
                eval(n, &format!("{rust} in :syn.subcluster_nodes(:registry, :users) and {rust} in :syn.subcluster_nodes(:pg, :users)"))
                    == "true"
            })
        })
        .await;

        // a Rust GenServer under a syn name: looked up and called from both BEAM nodes
        let echo = gen_server::start(&node, Echo, None).await.unwrap();
        syn.register(Term::binary("rust_svc"), &echo, Term::atom("rmeta")).await.unwrap();
        eventually("both BEAM nodes see the Rust name", || {
            [&a, &b].iter().all(|n| {
                eval(n, "case :syn.lookup(:users, \"rust_svc\") do {pid, :rmeta} -> node(pid) |> to_string(); x -> inspect(x) end")
                    == format!("\"{}\"", node.name().as_str())
            })
        })
        .await;
        for n in [&a, &b] {
            let r = eval(n, "GenServer.call({:via, :syn, {:users, \"rust_svc\"}}, :hi)");
            assert_eq!(r, "{:echo_from_rust, :hi}", "on {}", n.name());
        }
        assert_eq!(
            syn.register(Term::binary("rust_svc"), &echo, Term::atom("rmeta")).await,
            Ok(()),
            "the same registration again is a noop"
        );
        // a name an Elixir node registered: looked up and called from Rust
        eval(&a, "SynPeer.echo(:users, \"ex_svc\", :emeta)");
        eventually("Rust sees the Elixir name", || syn.lookup(&Term::binary("ex_svc")).is_some()).await;
        let (pid, meta) = syn.lookup(&Term::binary("ex_svc")).unwrap();
        assert_eq!((pid.node.clone(), meta), (ea.clone(), Term::atom("emeta")));
        let reply = node.call(Dest::Pid(pid), Term::atom("from_rust"), Some(T)).await.unwrap();
        assert_eq!(reply, parse_elixir(&format!("{{:echo, {}, :from_rust}}", elixir_atom(a.name()))).unwrap());
        assert_eq!(
            syn.register(Term::binary("ex_svc"), &echo, Term::nil()).await,
            Err(SynError::Refused(Term::atom("taken")))
        );
        // an Elixir node registering a name for a Rust process: the call goes to Rust's scope
        let echo2 = gen_server::start(&node, Echo, None).await.unwrap();
        let echo2_term =
            format!(":erlang.binary_to_term({})", elixir_binary(&erlnode::term::encode(&Term::Pid(echo2.clone()))));
        assert_eq!(eval(&b, &format!(":syn.register(:users, \"by_beam\", {echo2_term}, :bm)")), ":ok");
        assert_eq!(syn.lookup(&Term::binary("by_beam")), Some((echo2.clone(), Term::atom("bm"))));
        // Rust's scope process broadcasts the registration to A after it answered B, so A may
        // learn of it a moment after B's call returned: wait for A's lookup, then call
        eventually("A sees the name B registered for a Rust process", || {
            eval(&a, "case :syn.lookup(:users, \"by_beam\") do {_, :bm} -> :found; x -> x end") == ":found"
        })
        .await;
        assert_eq!(eval(&a, "GenServer.call({:via, :syn, {:users, \"by_beam\"}}, :x)"), "{:echo_from_rust, :x}");

        // an Elixir node joining a Rust process to a group and making it leave: join_or_update_on_node
        // and leave_on_node answered by Rust's pg scope process
        assert_eq!(eval(&b, &format!(":syn.join(:users, \"by_beam_g\", {echo2_term}, :gm)")), ":ok");
        assert_eq!(syn.members(&Term::binary("by_beam_g")), vec![(echo2.clone(), Term::atom("gm"))]);
        eventually("A sees the member B added", || eval(&a, ":syn.member_count(:users, \"by_beam_g\")") == "1").await;
        assert_eq!(eval(&b, &format!(":syn.leave(:users, \"by_beam_g\", {echo2_term})")), ":ok");
        assert_eq!(eval(&b, &format!(":syn.leave(:users, \"by_beam_g\", {echo2_term})")), "{:error, :not_in_group}");
        eventually("A sees it leave", || eval(&a, ":syn.member_count(:users, \"by_beam_g\")") == "0").await;
        assert!(syn.members(&Term::binary("by_beam_g")).is_empty());

        // groups: a Rust member and an Elixir member
        let (m1, mut rx1) = rust_member(&node, 1);
        syn.join_group(Term::binary("room"), &m1, Term::atom("rust_m")).await.unwrap();
        eval(&a, "ma = SynPeer.member(:users, \"room\", :ex_m)");
        let mut want = vec![
            parse_elixir(&format!("{{{}, :ex_m}}", elixir_atom(a.name()))).unwrap(),
            parse_elixir(&format!("{{{rust}, :rust_m}}")).unwrap(),
        ];
        want.sort();
        let want = Term::List(want);
        eventually("both BEAM nodes list both members", || {
            [&a, &b]
                .iter()
                .all(|n| parse_elixir(&eval(n, "SynPeer.members(:users, \"room\")")).ok() == Some(want.clone()))
        })
        .await;
        eventually("Rust lists both members", || syn.members(&Term::binary("room")).len() == 2).await;
        assert_eq!(eval(&b, ":syn.publish(:users, \"room\", :hello_room)"), "{:ok, 2}");
        let got = tokio::time::timeout(T, rx1.recv()).await.unwrap().unwrap();
        assert_eq!(got, Term::atom("hello_room"));
        let mc = eval(
            &b,
            ":syn.multi_call(:users, \"room\", :ping) |> then(fn {r, bad} -> {Enum.map(r, fn {{p, m}, rep} -> {node(p), m, rep} end) |> Enum.sort(), bad} end)",
        );
        let mut want_mc = vec![
            parse_elixir(&format!("{{{a}, :ex_m, {{:pong, {a}}}}}", a = elixir_atom(a.name()))).unwrap(),
            parse_elixir(&format!("{{{rust}, :rust_m, {{:pong_from_rust, 1}}}}")).unwrap(),
        ];
        want_mc.sort();
        assert_eq!(parse_elixir(&mc).unwrap(), Term::Tuple(vec![Term::List(want_mc), Term::nil()]), "{mc}");
        // Rust publishes and multi-calls the group
        assert_eq!(syn.publish(&Term::binary("room"), Term::atom("from_rust")), 2);
        assert_eq!(eval(&a, "ErlnodePeer.wait_got(ma, 2)"), "[:hello_room, :from_rust]");
        let (mut replies, bad) = syn.multi_call(&Term::binary("room"), Term::atom("ping"), T).await;
        replies.sort_by(|x, y| x.1.cmp(&y.1));
        assert!(bad.is_empty());
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].1, parse_elixir(&format!("{{:pong, {}}}", elixir_atom(a.name()))).unwrap());
        assert_eq!(replies[1].1, parse_elixir("{:pong_from_rust, 1}").unwrap());
        assert_eq!(replies[1].0, (m1.clone(), Term::atom("rust_m")));

        // leave, exit: the BEAM nodes follow
        syn.leave_group(&Term::binary("room"), &m1).await.unwrap();
        eventually("the Rust member left, seen from B", || {
            eval(&b, "SynPeer.members(:users, \"room\") |> length()") == "1"
        })
        .await;
        node.exit2(node.system_pid(), &echo, Term::atom("kill"));
        eventually("the exited Rust process is unregistered on both BEAM nodes", || {
            [&a, &b].iter().all(|n| eval(n, ":syn.lookup(:users, \"rust_svc\")") == ":undefined")
        })
        .await;
        syn.unregister(&Term::binary("by_beam")).await.unwrap();
        eventually("unregistered from Rust, seen from A", || {
            eval(&a, ":syn.lookup(:users, \"by_beam\")") == ":undefined"
        })
        .await;
        assert_eq!(syn.dropped_count(), 0, "nothing a real syn node sent was dropped");
    });
}

fn elixir_binary(bytes: &[u8]) -> String {
    format!("<<{}>>", bytes.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", "))
}

#[test]
fn beam_nodes_purge_erlnode_when_it_goes_away() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let a = ex_node(&otp, &epmd, &libs, "syn_p");
        let node = rust_node(&epmd).await;
        let ea = Atom::new(a.name());
        assert!(node.connect(&ea).await);
        let syn = Syn::join(&node, "users").await.unwrap();
        assert!(syn.wait_for_nodes(std::slice::from_ref(&ea), T).await);
        let (m, _rx) = rust_member(&node, 1);
        syn.register(Term::binary("gone_soon"), &m, Term::nil()).await.unwrap();
        syn.join_group(Term::binary("g"), &m, Term::nil()).await.unwrap();
        eventually("A sees the name and the member", || {
            eval(&a, ":syn.lookup(:users, \"gone_soon\") != :undefined and :syn.member_count(:users, \"g\") == 1")
                == "true"
        })
        .await;
        // A's entries are purged from Rust when A disconnects Rust, and the other way round
        eval(&a, "SynPeer.holder(:users, \"a_name\", :x)");
        eventually("Rust sees A's name", || syn.lookup(&Term::binary("a_name")).is_some()).await;
        node.shutdown();
        eventually("A purged erlnode's name and member", || {
            eval(&a, ":syn.lookup(:users, \"gone_soon\") == :undefined and :syn.member_count(:users, \"g\") == 0")
                == "true"
        })
        .await;
        eventually("Rust purged A's name", || syn.lookup(&Term::binary("a_name")).is_none() && syn.nodes().is_empty())
            .await;
    });
}

#[test]
fn a_name_registered_on_both_sides_of_a_partition_is_resolved_as_syn_does() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let a = ex_node(&otp, &epmd, &libs, "syn_c");
        let node = rust_node(&epmd).await;
        let ea = Atom::new(a.name());
        assert!(node.connect(&ea).await);
        let syn = Syn::join(&node, "users").await.unwrap();
        assert!(syn.wait_for_nodes(std::slice::from_ref(&ea), T).await);
        // partition: A takes another cookie for Rust, so that nothing sent on either side in
        // the meantime reconnects them
        let rust = elixir_atom(node.name().as_str());
        eval(&a, &format!(":erlang.set_cookie({rust}, :partitioned)"));
        assert!(node.disconnect(&ea));
        eventually("both sides dropped each other", || syn.nodes().is_empty()).await;
        eventually("A dropped Rust", || {
            eval(&a, &format!("{rust} in :syn.subcluster_nodes(:registry, :users)")) == "false"
        })
        .await;
        // "older": A first, then Rust (Rust's is newer and wins); "newer": Rust first, then A
        eval(&a, "older = SynPeer.holder(:users, \"older\", :a_meta)");
        tokio::time::sleep(Duration::from_millis(5)).await; // distinct system times, not a wait for a condition
        let (r_wins, _r1) = rust_member(&node, 1);
        let (r_loses, _r2) = rust_member(&node, 2);
        syn.register(Term::binary("older"), &r_wins, Term::atom("r_meta")).await.unwrap();
        syn.register(Term::binary("newer"), &r_loses, Term::atom("r_meta")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        eval(&a, "newer = SynPeer.holder(:users, \"newer\", :a_meta)");
        let (tx, mut down) = mpsc::unbounded_channel();
        let target = r_loses.clone();
        node.spawn(move |mut p: Process| async move {
            let mref = p.monitor(Dest::Pid(target));
            let m = p
                .receive_match(None, |m| match m.as_tuple() {
                    Some([tag, Term::Ref(r), _, _, reason]) if tag.is_atom("DOWN") && *r == mref => {
                        Some(reason.clone())
                    }
                    _ => None,
                })
                .await;
            let _ = tx.send(m);
            normal()
        });
        // heal
        eval(&a, &format!(":erlang.set_cookie({rust}, {})", elixir_atom(DEFAULT_COOKIE)));
        assert!(node.connect(&ea).await);
        assert!(syn.wait_for_nodes(std::slice::from_ref(&ea), T).await);
        let reason = eval(&a, "ExitWatch.exit_reason(older)");
        assert_eq!(reason, "{:syn_resolve_kill, \"older\", :a_meta}", "A killed its older process");
        let reason = tokio::time::timeout(T, down.recv()).await.unwrap().unwrap().unwrap();
        assert_eq!(
            reason,
            parse_elixir("{:syn_resolve_kill, \"newer\", :r_meta}").unwrap(),
            "Rust killed its older one"
        );
        assert_eq!(eval(&a, "Process.alive?(newer)"), "true", "A kept its newer process");
        eventually("both agree on the winners", || {
            let on_a = eval(
                &a,
                "[\"older\", \"newer\"] |> Enum.map(fn n -> {pid, m} = :syn.lookup(:users, n); {node(pid), m} end)",
            );
            let want = format!("[{{{rust}, :r_meta}}, {{{}, :a_meta}}]", elixir_atom(a.name()));
            let rust_side = (syn.whereis(&Term::binary("older")), syn.lookup(&Term::binary("newer")).map(|x| x.0.node));
            let ok = parse_elixir(&on_a).ok() == parse_elixir(&want).ok()
                && rust_side == (Some(r_wins.clone()), Some(ea.clone()));
            if !ok {
                eprintln!("A: {on_a}, want {want}; Rust: {rust_side:?}");
            }
            ok
        })
        .await;
        assert!(node.is_alive(&r_wins));
    });
}

/// `erlnode ARGS...` against `epmd`, with the test cookie; (stdout, stderr, success).
fn erlnode_cmd(epmd: &Epmd, args: &[&str]) -> (String, String, bool) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_erlnode"))
        .args(["--cookie", DEFAULT_COOKIE])
        .args(args)
        .env("ERL_EPMD_PORT", epmd.port().to_string())
        .output()
        .expect("erlnode runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (text(&o.stdout), text(&o.stderr), o.status.success())
}

#[test]
fn serve_syn_registers_the_served_names_and_one_shots_call_via_syn_and_serves_a_counter_stage() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let a = ex_node(&otp, &epmd, &libs, "syn_s");
        // killed with the test process however the test ends (Served runs it through spawn_guarded)
        let served = Served::start(
            epmd.port(),
            &["--syn", "users", "--syn", "other", "--counter-stage", "counter", "--connect", a.name()],
        );
        let zed_name = served.name.clone();
        let zed = elixir_atom(&zed_name);
        let seen = wait_until_async(T, async || {
            eval(&a, ":syn.lookup(:users, :kv1) |> then(fn {pid, :undefined} -> node(pid); x -> x end)") == zed
                && eval(&a, ":syn.lookup(:users, :ps1) != :undefined") == "true"
        })
        .await;
        assert!(seen, "A never saw kv1 and ps1 of erlnode serve --syn users");
        // iex: the served KV through syn
        assert_eq!(eval(&a, "GenServer.call({:via, :syn, {:users, :kv1}}, {:set, :k, 1})"), "true");
        // one-shots: resolved through A (syn's own whereis_name) or through erlnode serve
        for via in [a.name(), zed_name.as_str()] {
            let (out, err, ok) =
                erlnode_cmd(&epmd, &["call", "{via, syn, {users, kv1}}", "{get, k}", "--connect", via]);
            assert_eq!((out.as_str(), ok), ("1", true), "through {via}: {err}");
        }
        let (_, err, ok) =
            erlnode_cmd(&epmd, &["cast", "{via, syn, {users, kv1}}", "{set, j, 2}", "--connect", a.name()]);
        assert!(ok, "{err}");
        let (out, _, _) = erlnode_cmd(&epmd, &["call", "{via, syn, {users, kv1}}", "{get, j}", "--connect", &zed_name]);
        assert_eq!(out, "2");
        eval(&a, "SynPeer.echo(:users, :ex_echo, nil)");
        let (out, err, _) = erlnode_cmd(
            &epmd,
            &["--elixir", "call", "{:via, :syn, {:users, :ex_echo}}", ":hi", "--connect", &zed_name],
        );
        assert_eq!(out, format!("{{:echo, {}, :hi}}", elixir_atom(a.name())), "{err}");
        eval(&a, "Process.register(self(), :inbox); :syn.register(:users, :inbox, self())");
        let (_, err, ok) =
            erlnode_cmd(&epmd, &["send", "{via, syn, {users, inbox}}", "{msg, yo}", "--connect", a.name()]);
        assert!(ok, "{err}");
        assert_eq!(eval(&a, "receive do m -> m after 5000 -> :timeout end"), "{:msg, :yo}");
        let (_, err, ok) = erlnode_cmd(&epmd, &["call", "{via, syn, {users, nobody}}", "x", "--connect", a.name()]);
        assert!(!ok && err.contains("no process is registered in syn as {users,nobody}"), "{err}");
        let (_, err, ok) = erlnode_cmd(&epmd, &["call", "{via, syn, {nosuchscope, kv1}}", "x", "--connect", &zed_name]);
        assert!(!ok && err.contains("invalid_scope"), "{err}");
        let (out, err, _) =
            erlnode_cmd(&epmd, &["call", "{via, syn, {other, kv1}}", "{get, k}", "--connect", &zed_name]);
        assert_eq!(out, "1", "kv1 is in the second scope too: {err}");
        // --counter-stage: the Counter of GenStage's docs, streamed from iex
        let stream = format!(
            "{{:ok, _}} = Application.ensure_all_started(:gen_stage); GenStage.stream([{{{{:counter, {zed}}}, max_demand: 10}}]) |> Enum.take(5)"
        );
        assert_eq!(eval(&a, &stream), "[0, 1, 2, 3, 4]");
        // killed (SIGKILL, on drop): A purges erlnode's names
        drop(served);
        eventually("A purged the killed erlnode's names", || eval(&a, ":syn.lookup(:users, :kv1)") == ":undefined")
            .await;
    });
}
