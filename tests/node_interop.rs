//! The Rust node as a member of a real BEAM cluster (issue: join as a visible node): connecting
//! both ways, ping, messages, links and monitors with real exit reasons, `noconnection` when a
//! node dies, GenServer calls both ways, a wrong cookie, and a silent peer. Every test runs
//! against each OTP version of the harness.

mod common;

use std::time::Duration;

use common::*;
use erlnode::gen_server::{self, CallError, CallReply, From, GenServer};
use erlnode::node::{NodeConfig, NodeEvent, normal};
use erlnode::term::{Atom, ExportFun, Pid, Term};
use erlnode::{Dest, Node, Process};

const T: Duration = Duration::from_secs(20);

async fn rust_node(epmd: &Epmd, prefix: &str) -> Node {
    rust_node_with(epmd, NodeConfig::new(unique_name(prefix), DEFAULT_COOKIE)).await
}

async fn rust_node_with(epmd: &Epmd, config: NodeConfig) -> Node {
    erlnode::services::start_node(config.epmd_port(epmd.port())).await.expect("rust node starts")
}

fn erl_atom(node: &Node) -> String {
    erlang_atom(node.name().as_str())
}

fn ex_atom(node: &Node) -> String {
    elixir_atom(node.name().as_str())
}

/// A process registered as `echo` answering `{From, Msg}` with `{echo, Msg}`.
fn spawn_echo(node: &Node) -> Pid {
    let pid = node.spawn(|mut p: Process| async move {
        loop {
            let m = p.receive().await;
            if let Some([Term::Pid(from), msg]) = m.as_tuple() {
                p.send(Dest::Pid(from.clone()), Term::Tuple(vec![Term::atom("echo"), msg.clone()]));
            }
        }
    });
    assert!(node.register(Atom::new("echo"), &pid));
    pid
}

#[test]
fn ping_both_ways_and_visible_on_both_sides() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let ex = BeamNode::start(&otp, &epmd, NodeOpts::elixir());
        let node = rust_node(&epmd, "rusty").await;

        // BEAM dials us
        assert_eq!(erl.eval_async(&format!("net_adm:ping({})", erl_atom(&node))).await.unwrap(), "pong");
        assert_eq!(erl.eval_async("nodes()").await.unwrap(), format!("[{}]", erl_atom(&node)));
        assert_eq!(node.nodes(), vec![Atom::new(erl.name())]);

        // we dial Elixir
        let ex_name = Atom::new(ex.name());
        assert!(node.ping(&ex_name).await);
        assert_eq!(ex.eval_async(&format!("Node.ping({})", ex_atom(&node))).await.unwrap(), ":pong");
        assert!(ex.eval_async("Node.list()").await.unwrap().contains(&ex_atom(&node)));
        let mut nodes = node.nodes();
        nodes.sort();
        let mut want = vec![Atom::new(erl.name()), ex_name.clone()];
        want.sort();
        assert_eq!(nodes, want);

        // a node that does not exist: pang, and nothing else is disturbed
        assert!(!node.ping(&Atom::new(&format!("nobody@{}", hostname_short()))).await);
        assert!(node.ping(&ex_name).await);
    });
}

#[test]
fn messages_both_ways_by_pid_and_name() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "rusty").await;
        spawn_echo(&node);

        // BEAM -> Rust by name, Rust -> BEAM by pid (the reply)
        let got = erl
            .eval_async(&format!(
                "{{echo, {}}} ! {{self(), {{hello, <<\"bin\">>, [1,2|3], #{{a => 1.5}}}}}}, \
                 receive R -> R after 5000 -> timeout end",
                erl_atom(&node)
            ))
            .await
            .unwrap();
        assert_eq!(got, "{echo,{hello,<<\"bin\">>,[1,2|3],#{a => 1.5}}}");

        // Rust -> BEAM by registered name
        erl.eval_async("register(inbox, self())").await.unwrap();
        node.send(Dest::Remote(Atom::new("inbox"), Atom::new(erl.name())), Term::atom("from_rust"));
        assert_eq!(erl.eval_async("receive M -> M after 5000 -> timeout end").await.unwrap(), "from_rust");
    });
}

#[test]
fn monitors_and_links_carry_real_reasons() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "rusty").await;
        let rust = erl_atom(&node);

        // a Rust process that exits with {shutdown, boom} when told to
        node.spawn(|mut p: Process| async move {
            p.register(Atom::new("victim"));
            p.receive().await;
            Term::Tuple(vec![Term::atom("shutdown"), Term::atom("boom")])
        });
        assert!(wait_until_async(T, async || node.whereis(&Atom::new("victim")).is_some()).await);
        // the monitor and the `go` come from one process, so they arrive in that order
        let down = erl
            .eval_async(&format!(
                "Mref = erlang:monitor(process, {{victim, {rust}}}), {{victim, {rust}}} ! go, \
                 receive {{'DOWN', Mref, process, Obj, R}} -> {{Obj, R}} after 5000 -> timeout end"
            ))
            .await
            .unwrap();
        assert_eq!(down, format!("{{{{victim,{rust}}},{{shutdown,boom}}}}"));

        // BEAM monitors a pid that does not exist on us: noproc at once
        let dead = erl
            .eval_async(&format!(
                "Dead = list_to_pid(\"<0.0.0>\"), _ = Dead, \
                 M2 = erlang:monitor(process, {{no_such_name, {rust}}}), \
                 receive {{'DOWN', M2, process, O2, R2}} -> {{O2, R2}} after 5000 -> timeout end"
            ))
            .await
            .unwrap();
        assert_eq!(dead, format!("{{{{no_such_name,{rust}}},noproc}}"));
    });
}

#[test]
fn links_both_ways_and_kill() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "rusty").await;
        let rust = erl_atom(&node);

        // a trapping Rust process that reports what reaches it
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Term>();
        let trapper = node.spawn(move |mut p: Process| async move {
            p.trap_exit(true);
            p.register(Atom::new("trapper"));
            loop {
                let m = p.receive().await;
                if let Some([Term::Pid(from), Term::Atom(a)]) = m.as_tuple() {
                    if a == "link_me" {
                        p.link(from);
                        p.send(Dest::Pid(from.clone()), Term::atom("linked"));
                        continue;
                    }
                }
                let _ = tx.send(m);
            }
        });
        assert!(wait_until_async(T, async || node.whereis(&Atom::new("trapper")).is_some()).await);

        // the Rust side links to a BEAM process that then exits with a custom reason
        let r = erl
            .eval_async(&format!(
                "Me = self(), W = spawn(fun() -> {{trapper, {rust}}} ! {{self(), link_me}}, \
                 receive linked -> Me ! linked end, receive die -> exit({{custom, 42}}) end end), \
                 receive linked -> W ! die, ok after 5000 -> timeout end"
            ))
            .await
            .unwrap();
        assert_eq!(r, "ok");
        let exit = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        let [tag, Term::Pid(from), reason] = exit.as_tuple().unwrap() else { panic!("{exit:?}") };
        assert!(tag.is_atom("EXIT"));
        assert_eq!(from.node.as_str(), erl.name());
        assert_eq!(reason.to_string(), "{custom,42}");

        // BEAM links to our process and kills it with exit(P, kill): untrappable, reason killed
        assert_eq!(erl.eval_async("process_flag(trap_exit, true), ok").await.unwrap(), "ok");
        let pid_term = Term::Pid(trapper.clone());
        // hand the pid to the shell: register it under a name we can send to
        erl.eval_async("register(shell, self())").await.unwrap();
        node.send(Dest::Remote(Atom::new("shell"), Atom::new(erl.name())), pid_term);
        let r = erl
            .eval_async(
                "receive Trapper when is_pid(Trapper) -> link(Trapper), exit(Trapper, kill), \
                 receive {'EXIT', Trapper, R} -> R after 5000 -> timeout end after 5000 -> nopid end",
            )
            .await
            .unwrap();
        assert_eq!(r, "killed");
        assert!(wait_until_async(T, async || !node.is_alive(&trapper)).await);
    });
}

#[test]
fn sigkill_of_beam_node_gives_noconnection() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "rusty").await;
        let mut events = node.monitor_nodes();
        let peer = Atom::new(erl.name());
        assert!(node.connect(&peer).await);
        erl.eval_async("register(target, spawn(fun() -> receive _ -> ok end end))").await.unwrap();

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Term>();
        let p2 = peer.clone();
        node.spawn(move |mut p: Process| async move {
            p.trap_exit(true);
            p.monitor(Dest::Remote(Atom::new("target"), p2.clone()));
            let _ = tx.send(Term::atom("armed"));
            let m = p.receive().await;
            let _ = tx.send(m);
            normal()
        });
        assert_eq!(tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap(), Term::atom("armed"));
        erl.kill();
        let down = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        let [tag, _ref, _, obj, reason] = down.as_tuple().unwrap() else { panic!("{down:?}") };
        assert!(tag.is_atom("DOWN"));
        assert_eq!(obj, &Term::Tuple(vec![Term::atom("target"), Term::Atom(peer.clone())]));
        assert!(reason.is_atom("noconnection"), "{down:?}");
        loop {
            match tokio::time::timeout(T, events.recv()).await.unwrap().unwrap() {
                NodeEvent::Down { node: n, .. } if n == peer => break,
                _ => {}
            }
        }
        assert!(node.nodes().is_empty());
    });
}

/// The article's KV as a plain GenServer for this test.
struct Kv(std::collections::BTreeMap<Term, Term>);

impl GenServer for Kv {
    async fn handle_call(&mut self, request: Term, _from: &From, _p: &mut Process) -> CallReply {
        match request.as_tuple() {
            Some([op, k, v]) if op.is_atom("set") => {
                self.0.insert(k.clone(), v.clone());
                CallReply::Reply(Term::atom("true"))
            }
            Some([op, k]) if op.is_atom("get") => CallReply::Reply(self.0.get(k).cloned().unwrap_or(Term::atom("nil"))),
            _ => CallReply::Reply(Term::atom("not_implemented")),
        }
    }
}

#[test]
fn genserver_calls_both_ways() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let ex = BeamNode::start(&otp, &epmd, NodeOpts::elixir());
        let node = rust_node(&epmd, "rusty").await;
        gen_server::start(&node, Kv(Default::default()), Some(Atom::new("kv"))).await.unwrap();
        let dest = format!("{{:kv, {}}}", ex_atom(&node));

        // Elixir calls the Rust server by {name, node} and by pid
        assert_eq!(ex.eval_async(&format!("GenServer.call({dest}, {{:set, :foo, 123}})")).await.unwrap(), "true");
        assert_eq!(ex.eval_async(&format!("GenServer.call({dest}, {{:get, :foo}})")).await.unwrap(), "123");
        assert_eq!(ex.eval_async(&format!("GenServer.call({dest}, :bogus)")).await.unwrap(), ":not_implemented");
        let missing = format!("{{:nokv, {}}}", ex_atom(&node));
        let err = ex
            .eval_async(&format!("try do GenServer.call({missing}, :x) catch :exit, {{r, _}} -> r end"))
            .await
            .unwrap();
        assert_eq!(err, ":noproc");

        // Rust calls an Agent on the Elixir node, with an export fun as the Agent's function
        ex.eval_async("{:ok, _} = Agent.start(fn -> 42 end, name: :agent1)").await.unwrap();
        let identity =
            Term::from(ExportFun { module: Atom::new("Elixir.Function"), function: Atom::new("identity"), arity: 1 });
        let agent = Dest::Remote(Atom::new("agent1"), Atom::new(ex.name()));
        let got = node.call(agent.clone(), Term::Tuple(vec![Term::atom("get"), identity]), Some(T)).await;
        assert_eq!(got, Ok(Term::Int(42)));
        let add_one = Term::Tuple(vec![Term::atom("Elixir.Kernel"), Term::atom("+"), Term::List(vec![Term::Int(1)])]);
        let upd = node.call(agent.clone(), Term::Tuple(vec![Term::atom("update"), add_one]), Some(T)).await;
        assert_eq!(upd, Ok(Term::atom("ok")));
        assert_eq!(ex.eval_async("Agent.get(:agent1, & &1)").await.unwrap(), "43");

        // errors as BEAM raises them
        let none = Dest::Remote(Atom::new("nobody"), Atom::new(ex.name()));
        assert_eq!(node.call(none, Term::nil(), Some(T)).await, Err(CallError::NoProc));
        let ghost = Atom::new(&format!("ghost@{}", hostname_short()));
        assert_eq!(
            node.call(Dest::Remote(Atom::new("x"), ghost.clone()), Term::nil(), Some(T)).await,
            Err(CallError::NodeDown(ghost))
        );
    });
}

#[test]
fn wrong_cookie_is_refused_both_ways_and_the_listener_keeps_serving() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let good = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let bad = BeamNode::start(&otp, &epmd, NodeOpts::erlang().cookie("WRONG"));
        let node = rust_node(&epmd, "rusty").await;
        // they dial us with the wrong cookie
        assert_eq!(bad.eval_async(&format!("net_adm:ping({})", erl_atom(&node))).await.unwrap(), "pang");
        // we dial them
        assert!(!node.ping(&Atom::new(bad.name())).await);
        assert!(node.nodes().is_empty());
        // still serving others
        assert_eq!(good.eval_async(&format!("net_adm:ping({})", erl_atom(&node))).await.unwrap(), "pong");
    });
}

#[test]
fn a_silent_peer_is_declared_down_after_net_ticktime() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node_with(
            &epmd,
            NodeConfig::new(unique_name("rusty"), DEFAULT_COOKIE).net_ticktime(Duration::from_secs(4)),
        )
        .await;
        let peer = Atom::new(erl.name());
        assert!(node.ping(&peer).await);
        let mut events = node.monitor_nodes();
        // SIGSTOP: the peer's socket stays open, but it says nothing any more
        let started = std::time::Instant::now();
        erl.suspend();
        loop {
            match tokio::time::timeout(T, events.recv()).await.unwrap().unwrap() {
                NodeEvent::Down { node: n, reason, .. } if n == peer => {
                    assert_eq!(reason, "net_tick_timeout");
                    break;
                }
                _ => {}
            }
        }
        let took = started.elapsed();
        erl.resume();
        assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(12), "declared down after {took:?}");
    });
}

#[test]
fn node_watchers_get_nodeup_before_the_first_message_and_nodedown_after() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "rusty").await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Term>();
        let watcher = node.spawn(move |mut p: Process| async move {
            p.register(Atom::new("watcher"));
            loop {
                let m = p.receive().await;
                let _ = tx.send(m);
            }
        });
        node.monitor_nodes_messages(&watcher, true);
        // the BEAM node connects and at once sends to the watcher
        erl.eval_async(&format!("{{watcher, {}}} ! hello, ok", erl_atom(&node))).await.unwrap();
        let first = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        assert_eq!(first.to_string(), format!("{{nodeup,{},[{{node_type,visible}}]}}", erlang_atom(erl.name())));
        assert_eq!(tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap(), Term::atom("hello"));
        erl.kill();
        let down = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        let [tag, n, _info] = down.as_tuple().unwrap() else { panic!("{down:?}") };
        assert!(tag.is_atom("nodedown"));
        assert_eq!(n, &Term::atom(erl.name()));
    });
}

/// Completes a real handshake with `node` as a made-up node `evil@host`, returning the socket.
async fn handshake_as_evil(epmd: &Epmd, node: &Node) -> tokio::net::TcpStream {
    use erlnode::handshake::{Cookie, FlagOptions, Handshake, LocalNode, Progress};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let alive = node.name().as_str().split('@').next().unwrap().to_string();
    let entry = erlnode::epmd::client::port_please(("127.0.0.1", epmd.port()), &alive).await.unwrap().unwrap();
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", entry.port)).await.unwrap();
    let local = LocalNode {
        name: Atom::new(&format!("{}@{}", unique_name("evil"), hostname_short())),
        flags: FlagOptions::PASS_THROUGH.flags(),
        creation: 7,
        cookie: Cookie::new(DEFAULT_COOKIE.as_bytes().to_vec()),
    };
    let mut hs = Handshake::initiator(local, node.name().clone(), 1234).unwrap();
    let mut buf = vec![0u8; 4096];
    loop {
        let out = hs.take_output();
        sock.write_all(&out).await.unwrap();
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed during handshake");
        if let Progress::Complete(_) = hs.handle_input(&buf[..n]).unwrap() {
            return sock;
        }
    }
}

#[test]
fn a_peer_sending_garbage_is_cut_off_and_nobody_else_notices() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "rusty").await;
        spawn_echo(&node);
        // a BEAM node is connected and talking to us throughout
        let echo = format!("{{echo, {}}} ! {{self(), hi}}, receive R -> R after 5000 -> timeout end", erl_atom(&node));
        assert_eq!(erl.eval_async(&echo).await.unwrap(), "{echo,hi}");

        let garbage: Vec<(&str, Vec<u8>)> = vec![
            ("random bytes in a frame", vec![0, 0, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02]),
            // pass-through frame whose control tuple has an unknown op
            ("unknown control op", {
                let mut body = vec![112u8];
                body.extend(erlnode::term::encode(&Term::Tuple(vec![Term::Int(99), Term::atom("x")])));
                let mut f = (body.len() as u32).to_be_bytes().to_vec();
                f.extend(body);
                f
            }),
            // a length prefix far beyond any limit: refused before any allocation
            ("a 4 GiB frame", vec![0xff, 0xff, 0xff, 0xf0, 112]),
            // a term nested beyond the depth limit
            ("a term nested too deep", {
                let mut body = vec![112u8, 131];
                for _ in 0..100_000 {
                    body.extend([104, 1]);
                }
                body.push(106);
                let mut f = (body.len() as u32).to_be_bytes().to_vec();
                f.extend(body);
                f
            }),
        ];
        for (what, bytes) in garbage {
            let mut sock = handshake_as_evil(&epmd, &node).await;
            sock.write_all(&bytes).await.unwrap();
            // the node closes the connection: EOF (or a reset) within the deadline
            let mut buf = [0u8; 64];
            let closed = tokio::time::timeout(T, async {
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return true,
                        Ok(_) => continue, // ticks or anything else before the close
                    }
                }
            })
            .await;
            assert_eq!(closed, Ok(true), "{what}: connection not closed");
            // the BEAM node is still connected and served
            assert_eq!(erl.eval_async(&echo).await.unwrap(), "{echo,hi}", "after {what}");
            assert_eq!(node.nodes(), vec![Atom::new(erl.name())], "after {what}");
        }
    });
}

#[test]
fn replies_to_alias_tags_arrive_through_the_alias() {
    // OTP 25/27 answer an alias with ALIAS_SEND (op 33); OTP 28+ with ALTACT_SIG_SEND (op 37)
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let ex = BeamNode::start(&otp, &epmd, NodeOpts::elixir());
        ex.eval_async("{:ok, _} = Agent.start(fn -> 42 end, name: :agent1)").await.unwrap();
        let node = rust_node(&epmd, "rusty").await;
        let peer = Atom::new(ex.name());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Term>();
        node.spawn(move |mut p: Process| async move {
            let alias = p.alias();
            let tag = Term::Improper(vec![Term::atom("alias")], Box::new(Term::Ref(alias.clone())));
            let identity = Term::from(ExportFun {
                module: Atom::new("Elixir.Function"),
                function: Atom::new("identity"),
                arity: 1,
            });
            let from = Term::Tuple(vec![Term::Pid(p.pid().clone()), tag.clone()]);
            let call = Term::Tuple(vec![Term::atom("$gen_call"), from, Term::Tuple(vec![Term::atom("get"), identity])]);
            p.send(Dest::Remote(Atom::new("agent1"), peer), call);
            let got = p.receive_timeout(T).await.unwrap_or(Term::atom("timeout"));
            let _ = tx.send(got);
            // after unalias, a late message to the alias is dropped
            p.unalias(&alias);
            normal()
        });
        let got = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        let [tag, value] = got.as_tuple().unwrap() else { panic!("{got:?}") };
        assert!(matches!(tag, Term::Improper(..)), "{got:?}");
        assert_eq!(value, &Term::Int(42));
    });
}

#[test]
fn otp28_priority_messages_and_exit_signals_to_an_alias() {
    for_each_otp_async(|otp| async move {
        if otp.version() < 28 {
            // erlang:send/3 with [priority] and exit/3 arrived in OTP 28 (ALTACT_SIG_SEND)
            return;
        }
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "rusty").await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Term>();
        node.spawn(move |mut p: Process| async move {
            p.trap_exit(true);
            let alias = p.alias();
            let _ = tx.send(Term::Ref(alias));
            loop {
                let m = p.receive().await;
                let _ = tx.send(m);
            }
        });
        let alias = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        erl.eval_async("register(shell, self())").await.unwrap();
        node.send(Dest::Remote(Atom::new("shell"), Atom::new(erl.name())), alias);
        let r = erl
            .eval_async(
                "receive A -> erlang:send(A, prio_hi, [priority]), exit(A, boom, [priority]) after 5000 -> timeout end",
            )
            .await
            .unwrap();
        assert_eq!(r, "true");
        assert_eq!(tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap(), Term::atom("prio_hi"));
        let exit = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        let [tag, Term::Pid(from), reason] = exit.as_tuple().unwrap() else { panic!("{exit:?}") };
        assert!(tag.is_atom("EXIT"));
        assert_eq!(from.node.as_str(), erl.name());
        assert!(reason.is_atom("boom"));
    });
}

#[test]
fn long_names_both_ways() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang().long_names());
        let ex = BeamNode::start(&otp, &epmd, NodeOpts::elixir().long_names());
        let name = format!("{}@127.0.0.1", unique_name("rusty"));
        let node = rust_node_with(&epmd, NodeConfig::new(name.clone(), DEFAULT_COOKIE).long_names()).await;
        assert_eq!(node.name().as_str(), name);
        assert_eq!(erl.eval_async(&format!("net_adm:ping({})", erl_atom(&node))).await.unwrap(), "pong");
        assert!(node.ping(&Atom::new(ex.name())).await);
        assert!(ex.eval_async("Node.list()").await.unwrap().contains(&ex_atom(&node)));
        // a short-named peer cannot be reached from a long-named node, as between BEAM nodes
        assert!(!node.ping(&Atom::new(&format!("nobody@{}", hostname_short()))).await);
    });
}
