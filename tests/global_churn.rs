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
use erlnode::node::{NodeConfig, NodeEvent};
use erlnode::term::Atom;
use erlnode::Node;
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
    Node::start(NodeConfig::new(name, DEFAULT_COOKIE).epmd_port(epmd_port)).await.expect("starts")
}

/// Two unique short names, the first smaller than the second as atoms compare.
fn ordered_names() -> (String, String) {
    (unique_name("churna"), unique_name("churnb"))
}

/// Every nodedown seen so far on `events` (without waiting).
fn nodedowns(events: &mut broadcast::Receiver<NodeEvent>) -> Vec<(Atom, String)> {
    let mut downs = Vec::new();
    loop {
        match events.try_recv() {
            Ok(NodeEvent::Down { node, reason, .. }) => downs.push((node, reason)),
            Ok(NodeEvent::Up { .. }) => {}
            Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return downs,
        }
    }
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
        let beam = BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("churna").env("ERL_EPMD_PORT", &slow_port.to_string()));
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
