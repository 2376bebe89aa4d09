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
    Node::start(NodeConfig::new(unique_name(prefix), DEFAULT_COOKIE).epmd_port(epmd.port())).await.expect("starts")
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
                wait_until_async(T, async || n.eval_async(":global.registered_names()").await.unwrap_or_default() == "[:agent1]").await,
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
            wait_until_async(T, async || bar.eval_async(":global.registered_names()").await.unwrap_or_default() == "[:ps1]").await
        );
        // the Rust node goes away: its names vanish on BEAM
        zed.shutdown();
        assert!(
            wait_until_async(T, async || bar.eval_async(":global.registered_names()").await.unwrap_or_default() == "[]").await
        );
    });
}
