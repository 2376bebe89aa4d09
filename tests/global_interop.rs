//! `global` with real BEAM nodes (issue: take part in global natively): sync and
//! `:global.sync()`, connect-to-one-joins-all, names both ways, names vanishing on process and
//! node death, conflicts, and partitions. Every test runs against each harness OTP version.

mod common;

use std::time::{Duration, Instant};

use common::*;
use erlnode::node::NodeConfig;
use erlnode::services;
use erlnode::term::{Atom, Term};
use erlnode::{Dest, Node, Process};

const T: Duration = Duration::from_secs(30);

async fn rust_node(epmd: &Epmd, prefix: &str) -> Node {
    erlnode::services::start_node(NodeConfig::new(unique_name(prefix), DEFAULT_COOKIE).epmd_port(epmd.port()))
        .await
        .expect("starts")
}

fn idle(node: &Node) -> erlnode::term::Pid {
    node.spawn(|mut p: Process| async move {
        loop {
            let m = p.receive().await;
            if m.is_atom("stop") {
                return erlnode::node::normal();
            }
            if let Some([Term::Pid(from), tag]) = m.as_tuple() {
                p.send(Dest::Pid(from.clone()), Term::Tuple(vec![tag.clone(), Term::atom("pong")]));
            }
        }
    })
}

#[test]
fn sync_names_both_ways_and_connect_one_join_all() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let foo = BeamNode::start(&otp, &epmd, NodeOpts::elixir().prefix("foo"));
        let bar = BeamNode::start(&otp, &epmd, NodeOpts::elixir().prefix("bar"));
        foo.eval_async("{:ok, _} = Agent.start(fn -> 42 end, name: {:global, :agent1})").await.unwrap();
        assert_eq!(bar.eval_async(&format!("Node.connect({})", elixir_atom(foo.name()))).await.unwrap(), "true");
        assert_eq!(bar.eval_async(":global.sync()").await.unwrap(), ":ok");

        let zed = rust_node(&epmd, "zed").await;
        let started = Instant::now();
        assert!(zed.connect(&Atom::new(foo.name())).await);
        // transitive connection: zed ends up connected to bar too, and both list zed
        let z = elixir_atom(zed.name().as_str());
        for n in [&foo, &bar] {
            assert!(
                wait_until_async(T, async || n.eval_async("Node.list()").await.unwrap_or_default().contains(&z)).await,
                "{} does not list zed",
                n.name()
            );
        }
        assert!(wait_until_async(T, async || zed.nodes().len() == 2).await, "zed nodes: {:?}", zed.nodes());
        // :global.sync() completes everywhere (it hangs for a visible node that does not speak global)
        for n in [&foo, &bar] {
            assert_eq!(n.eval_timeout_async(":global.sync()", T).await.unwrap(), ":ok");
        }
        let synced_after = started.elapsed();
        eprintln!("sync with a 2-node cluster took {synced_after:?}");
        // their name resolves in Rust
        assert!(wait_until_async(T, async || services::whereis_name(&zed, &Atom::new("agent1")).is_some()).await);

        // a Rust name shows everywhere and iex can call through {:global, name}
        let kv = idle(&zed);
        let t0 = Instant::now();
        assert!(services::register_name(&zed, &Atom::new("kv1"), &kv).await);
        eprintln!("registering a name took {:?}", t0.elapsed());
        for n in [&foo, &bar] {
            let names = n.eval_async(":global.registered_names() |> Enum.sort()").await.unwrap();
            assert_eq!(names, "[:agent1, :kv1]", "on {}", n.name());
            let r = n.eval_async("send(:global.whereis_name(:kv1), {self(), :ping}); receive do {:ping, x} -> x after 5000 -> :timeout end").await.unwrap();
            assert_eq!(r, ":pong");
        }
        // the same name again is refused
        let other = idle(&zed);
        assert!(!services::register_name(&zed, &Atom::new("kv1"), &other).await);

        // the Rust process dies: the name vanishes everywhere
        zed.send(kv.clone(), Term::atom("stop"));
        for n in [&foo, &bar] {
            assert!(
                wait_until_async(T, async || n.eval_async(":global.registered_names()").await.unwrap_or_default()
                    == "[:agent1]")
                .await,
                "kv1 still on {}",
                n.name()
            );
        }
        // a BEAM node dies: its names vanish from Rust
        let ps = idle(&zed);
        assert!(services::register_name(&zed, &Atom::new("ps1"), &ps).await);
        foo.kill();
        assert!(wait_until_async(T, async || services::whereis_name(&zed, &Atom::new("agent1")).is_none()).await);
        assert!(
            wait_until_async(T, async || bar.eval_async(":global.registered_names()").await.unwrap_or_default()
                == "[:ps1]")
            .await
        );
        // the Rust node goes away: its names vanish on BEAM
        zed.shutdown();
        assert!(
            wait_until_async(T, async || bar.eval_async(":global.registered_names()").await.unwrap_or_default()
                == "[]")
            .await
        );
    });
}

/// The same name registered on both sides of a partition that then joins: the node with the
/// smaller name resolves it with `random_exit_name` (its own pid wins... or rather the pid on the
/// smaller node wins), and the loser is killed — in both directions.
#[test]
fn conflicts_resolve_as_beam_resolves_them_both_ways() {
    for_each_otp_async(|otp| async move {
        for rust_is_smaller in [false, true] {
            let epmd = Epmd::start(&otp);
            // node names decide who resolves: "aaa..." sorts before "zzz..."
            let (rust_prefix, beam_prefix) =
                if rust_is_smaller { ("aaa_rust", "zzz_beam") } else { ("zzz_rust", "aaa_beam") };
            let beam = BeamNode::start(&otp, &epmd, NodeOpts::elixir().prefix(beam_prefix));
            let zed = rust_node(&epmd, rust_prefix).await;
            let beam_pid = beam
                .eval_async(
                    "pid = spawn(fn -> receive do :never -> :ok end end); :yes = :global.register_name(:dup, pid); pid",
                )
                .await
                .unwrap();
            let rust_pid = idle(&zed);
            assert!(services::register_name(&zed, &Atom::new("dup"), &rust_pid).await);
            // join the partitions
            assert!(zed.connect(&Atom::new(beam.name())).await);
            assert_eq!(beam.eval_timeout_async(":global.sync()", T).await.unwrap(), ":ok");
            if rust_is_smaller {
                // the Rust pid wins everywhere, the BEAM process was killed
                assert!(
                    wait_until_async(T, async || beam.eval_async("Process.alive?(pid)").await.as_deref()
                        == Ok("false"))
                    .await
                );
                let owner = beam.eval_async("node(:global.whereis_name(:dup))").await.unwrap();
                assert_eq!(owner, elixir_atom(zed.name().as_str()));
                assert_eq!(services::whereis_name(&zed, &Atom::new("dup")), Some(rust_pid.clone()));
            } else {
                // the BEAM pid wins everywhere, the Rust process was killed
                assert!(wait_until_async(T, async || !zed.is_alive(&rust_pid)).await, "rust loser still alive");
                assert_eq!(beam.eval_async(":global.whereis_name(:dup) == pid").await.unwrap(), "true");
                assert!(
                    wait_until_async(T, async || {
                        services::whereis_name(&zed, &Atom::new("dup")).is_some_and(|p| p.node.as_str() == beam.name())
                    })
                    .await
                );
            }
            let _ = beam_pid;
            zed.shutdown();
        }
    });
}

/// Both sides register one name at the same moment: exactly one wins, and the tables agree.
#[test]
fn concurrent_registration_of_one_name_has_one_winner() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let beam = BeamNode::start(&otp, &epmd, NodeOpts::elixir().prefix("beam"));
        let zed = rust_node(&epmd, "zed").await;
        assert!(zed.connect(&Atom::new(beam.name())).await);
        assert_eq!(beam.eval_timeout_async(":global.sync()", T).await.unwrap(), ":ok");
        for round in 0..5 {
            let name = format!("race{round}");
            beam.eval_async("me = spawn(fn -> receive do :never -> :ok end end)").await.unwrap();
            let rust_pid = idle(&zed);
            let (expr, atom) = (format!(":global.register_name(:{name}, me)"), Atom::new(&name));
            let (beam_res, rust_res) =
                tokio::join!(beam.eval_async(&expr), services::register_name(&zed, &atom, &rust_pid));
            let beam_won = beam_res.unwrap() == ":yes";
            assert!(beam_won != rust_res, "round {round}: beam {beam_won}, rust {rust_res}");
            let owner_on_beam = beam.eval_async(&format!("node(:global.whereis_name(:{name}))")).await.unwrap();
            let owner_in_rust = services::whereis_name(&zed, &Atom::new(&name)).map(|p| p.node.as_str().to_string());
            let winner = if beam_won { beam.name().to_string() } else { zed.name().as_str().to_string() };
            assert_eq!(owner_on_beam, elixir_atom(&winner), "round {round}");
            assert_eq!(owner_in_rust.as_deref(), Some(winner.as_str()), "round {round}");
        }
    });
}
