//! `global` while a cluster forms and short-lived nodes come and go: no connection between
//! live nodes may go down, so no `lost_connection` about a live node may be multicast and no
//! member may be asked to disconnect a live node ("prevent overlapping partitions", protocol
//! notes 7.8). BEAM in the same place keeps every live connection; so must erlnode. Every test
//! runs against each harness OTP version.
//!
//! The simultaneous-connect race the benchmark cluster hit (two nodes dialling each other, the
//! smaller one's dial slow to reach the bigger one) is made deterministic by giving the slow
//! dialler an EPMD that answers late: a proxy in front of the test's EPMD that holds every
//! new connection for [`EPMD_DELAY`] before forwarding it.

mod common;

use std::time::Duration;

use common::*;
use erlnode::Node;
use erlnode::node::{NodeConfig, NodeEvent};
use erlnode::term::Atom;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

const T: Duration = Duration::from_secs(30);
/// How long the slow EPMD holds each new connection (every lookup of the slow node).
const EPMD_DELAY: Duration = Duration::from_millis(400);
/// What a node's log says when `global` drops a member to prevent overlapping partitions
/// (BEAM: "requested disconnect from" / "disconnected node ... in order to prevent
/// overlapping partitions"; erlnode logs the same text).
const POP_WARNING: &str = "prevent overlapping partitions";

/// A TCP proxy to `epmd_port` that holds each new connection for `delay` before forwarding.
async fn slow_epmd(epmd_port: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("binds");
    let port = listener.local_addr().expect("has an address").port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", epmd_port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

async fn rust_node(name: String, epmd_port: u16) -> Node {
    erlnode::services::start_node(NodeConfig::new(name, DEFAULT_COOKIE).epmd_port(epmd_port)).await.expect("starts")
}

/// Two unique short names, the first smaller than the second as atoms compare.
fn ordered_names() -> (String, String) {
    (unique_name("churna"), unique_name("churnb"))
}

fn pop_warnings(n: &BeamNode) -> Vec<String> {
    n.logs().into_iter().filter(|l| l.contains(POP_WARNING)).collect()
}

/// Waits until `events` has been quiet for a moment (no fixed sleep: polls up to `T`), then
/// returns every nodedown it carried.
async fn settle(events: &mut broadcast::Receiver<NodeEvent>, quiet: Duration) -> Vec<(Atom, String)> {
    let deadline = tokio::time::Instant::now() + T;
    let mut downs = Vec::new();
    loop {
        match tokio::time::timeout(quiet, events.recv()).await {
            Err(_) => return downs,
            Ok(Ok(NodeEvent::Down { node, reason, .. })) => downs.push((node, reason)),
            Ok(Ok(NodeEvent::Up { .. })) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) => return downs,
        }
        if tokio::time::Instant::now() > deadline {
            return downs;
        }
    }
}

/// The smaller node starts dialling the bigger one, but its EPMD lookup is slow; meanwhile the
/// bigger node dials it and that connection comes up (the smaller node accepts it with
/// `ok_simultaneous`). The smaller node's late dial then finds the bigger node connected
/// (status `alive`). BEAM answers `false` there (its own attempt was given up when it accepted
/// with `ok_simultaneous`) and keeps the connection; answering `true` replaced the live
/// connection on both sides, so both reported a nodedown, `global` multicast
/// `lost_connection` and the cluster's members disconnected one of them. Run with erlnode and
/// with BEAM as the slow node.
#[test]
fn a_late_simultaneous_dial_does_not_replace_the_live_connection() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let slow_port = slow_epmd(epmd.port(), EPMD_DELAY).await;

        // erlnode as the slow, smaller node
        let (small_name, big_name) = ordered_names();
        let small = rust_node(small_name, slow_port).await;
        let big = rust_node(big_name, epmd.port()).await;
        assert!(small.name() < big.name());
        let mut small_events = small.monitor_nodes();
        let mut big_events = big.monitor_nodes();
        let (s, target) = (small.clone(), big.name().clone());
        let slow = tokio::spawn(async move { s.connect(&target).await });
        // the slow dial is stuck at EPMD; the fast one comes up first
        assert!(big.connect(small.name()).await);
        assert!(slow.await.expect("dial task"), "the slow dial reports the connection");
        let quiet = EPMD_DELAY * 3;
        let (small_downs, big_downs) = tokio::join!(settle(&mut small_events, quiet), settle(&mut big_events, quiet));
        assert_eq!(small_downs, vec![], "{:?}: a live connection went down", small.name());
        assert_eq!(big_downs, vec![], "{:?}: a live connection went down", big.name());
        assert!(small.is_connected(big.name()) && big.is_connected(small.name()));

        // BEAM in the same place: its late dial gives up, nothing goes down
        let beam = BeamNode::start(
            &otp,
            &epmd,
            NodeOpts::erlang().prefix("churna").env("ERL_EPMD_PORT", &slow_port.to_string()),
        );
        let big2 = rust_node(unique_name("churnb"), epmd.port()).await;
        assert!(beam.name() < big2.name().as_str());
        let mut big2_events = big2.monitor_nodes();
        let dial = format!("spawn(fun() -> net_kernel:connect_node({}) end), ok", erlang_atom(big2.name().as_str()));
        assert_eq!(beam.eval_async(&dial).await.unwrap(), "ok");
        assert!(big2.connect(&Atom::new(beam.name())).await);
        assert_eq!(settle(&mut big2_events, quiet).await, vec![], "BEAM as the slow node");
        assert!(big2.is_connected(&Atom::new(beam.name())));
    });
}

/// The benchmark cluster in small: a BEAM server, two BEAM clients and two erlnode nodes join
/// one by one (each connect makes `global` connect everybody, so connections cross), then
/// short-lived visible nodes, BEAM and erlnode, join through a client and are SIGKILLed. Live
/// nodes may drop the killed ones (BEAM does, with the same warning), but no connection
/// between live nodes may go down, and no live node may be asked to leave. The erlnode nodes
/// dial through a slow EPMD, which makes their connects cross the others' more often.
#[test]
fn churn_of_short_lived_nodes_disconnects_no_live_node() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let slow_port = slow_epmd(epmd.port(), EPMD_DELAY / 4).await;
        let srv = BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("churns"));
        let cli: Vec<BeamNode> =
            (0..2).map(|_| BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("churnc"))).collect();
        let r1 = rust_node(unique_name("churnr"), slow_port).await;
        let r2 = rust_node(unique_name("churnq"), epmd.port()).await;
        let mut r_events = [r1.monitor_nodes(), r2.monitor_nodes()];
        let mut live: Vec<String> =
            vec![srv.name().to_string(), r1.name().as_str().to_string(), r2.name().as_str().to_string()];
        live.extend(cli.iter().map(|c| c.name().to_string()));

        // formation, as the benchmark does it: the server connects the erlnode nodes, then
        // each client connects to everybody and syncs
        for r in [&r1, &r2] {
            let got =
                srv.eval_async(&format!("net_kernel:connect_node({})", erlang_atom(r.name().as_str()))).await.unwrap();
            assert_eq!(got, "true");
        }
        for c in &cli {
            for peer in &live {
                if peer != c.name() {
                    let got = c.eval_async(&format!("net_kernel:connect_node({})", erlang_atom(peer))).await.unwrap();
                    assert_eq!(got, "true", "{} to {peer}", c.name());
                }
            }
            assert_eq!(c.eval_timeout_async("global:sync()", T).await.unwrap(), "ok");
        }

        // churn: short-lived nodes join through the first client and die
        for round in 0..4 {
            let driver = &cli[round % 2];
            let (name, killed): (String, Box<dyn FnOnce()>) = if round % 2 == 0 {
                let b = BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("churni"));
                (b.name().to_string(), Box::new(move || b.kill()))
            } else {
                let r = rust_node(unique_name("churnj"), epmd.port()).await;
                (r.name().as_str().to_string(), Box::new(move || r.shutdown()))
            };
            let got = driver.eval_async(&format!("net_kernel:connect_node({})", erlang_atom(&name))).await.unwrap();
            assert_eq!(got, "true");
            let atom = erlang_atom(&name);
            let joined = wait_until_async(T, async || {
                srv.eval_async(&format!("lists:member({atom}, nodes())")).await.unwrap_or_default() == "true"
            })
            .await;
            assert!(joined, "{name} did not join everybody");
            killed();
            assert!(
                wait_until_async(T, async || srv
                    .eval_async(&format!("lists:member({atom}, nodes())"))
                    .await
                    .unwrap_or_default()
                    == "false")
                .await,
                "{name} still listed"
            );
        }
        for c in &cli {
            assert_eq!(c.eval_timeout_async("global:sync()", T).await.unwrap(), "ok");
        }

        // nobody lost a live node
        for (r, events) in [&r1, &r2].into_iter().zip(r_events.iter_mut()) {
            let downs: Vec<(Atom, String)> = settle(events, EPMD_DELAY)
                .await
                .into_iter()
                .filter(|(n, _)| live.iter().any(|l| l == n.as_str()))
                .collect();
            assert_eq!(downs, vec![], "{:?} lost live nodes", r.name());
        }
        for b in std::iter::once(&srv).chain(&cli) {
            // "... at node Self requested disconnect from node Rm ..." / "... disconnected node Rm ..."
            let about_live = |l: &String| {
                live.iter()
                    .any(|n| l.contains(&format!("from node {n} ")) || l.contains(&format!("disconnected node {n} ")))
            };
            let warned: Vec<String> = pop_warnings(b).into_iter().filter(about_live).collect();
            assert_eq!(warned, Vec::<String>::new(), "{} dropped live nodes", b.name());
            let others: Vec<String> = live.iter().filter(|n| n.as_str() != b.name()).map(|n| erlang_atom(n)).collect();
            let check = format!("lists:sort(nodes()) =:= lists:sort([{}])", others.join(","));
            assert_eq!(
                b.eval_async(&check).await.unwrap(),
                "true",
                "nodes() on {}: {:?}",
                b.name(),
                b.eval_async("nodes()").await
            );
        }
    });
}
