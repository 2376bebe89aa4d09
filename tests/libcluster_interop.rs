//! libcluster 3.5.0 (from `../shared/peers`, built per OTP by the harness) on real Elixir
//! nodes, with erlnode in the cluster: `Cluster.Strategy.Gossip` both ways, with and without a
//! secret (each direction on its own: a BEAM topology that dials nobody finds erlnode dialling
//! it, and an erlnode that only announces itself is dialled by libcluster); the Epmd and
//! LocalEpmd strategies; hostile datagrams and a node that refuses the handshake; and
//! `erlnode serve --gossip`. Multicast stays on `lo` (`multicast_if` 127.0.0.1) on a port of
//! its own per test.

mod common;
#[path = "common/served.rs"]
mod served;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use common::peers::PeerLibs;
use common::*;
use erlnode::Node;
use erlnode::ecosystem::libcluster::packet::{self, Secret};
use erlnode::ecosystem::libcluster::{self, DEFAULT_MULTICAST_ADDR, Gossip, GossipConfig};
use erlnode::node::NodeConfig;
use erlnode::term::Atom;
use served::Served;

const T: Duration = Duration::from_secs(30);
const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

async fn rust_node(epmd: &Epmd, cookie: &str) -> Node {
    let config = NodeConfig::new(unique_name("rusty"), cookie).epmd_port(epmd.port());
    erlnode::services::start_node(config).await.expect("rust node starts")
}

/// A UDP port no socket of this host is bound to now.
fn free_udp_port() -> u16 {
    loop {
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind");
        let port = s.local_addr().expect("addr").port();
        if port > 1024 {
            return port;
        }
    }
}

fn gossip_config(port: u16, secret: Option<&str>) -> GossipConfig {
    GossipConfig {
        port,
        multicast_if: Some(LO),
        secret: secret.map(str::to_string),
        max_interval: Duration::from_millis(500),
        ..Default::default()
    }
}

/// The Elixir `config:` of a Gossip topology on `port`, on `lo`.
fn ex_gossip(port: u16, secret: Option<&str>) -> String {
    let secret = secret.map(|s| format!(", secret: {}", elixir_string(s))).unwrap_or_default();
    format!("[port: {port}, multicast_if: \"127.0.0.1\"{secret}]")
}

fn eval(n: &BeamNode, expr: &str) -> String {
    n.eval(expr).unwrap_or_else(|e| panic!("{expr} on {}: {e:?}", n.name()))
}

fn beam_lists(n: &BeamNode, node: &Node) -> bool {
    eval(n, &format!("{} in Node.list()", elixir_atom(node.name().as_str()))) == "true"
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    assert!(wait_until_async(T, async || cond()).await, "timed out waiting for: {what}");
}

/// A socket sending to the gossip group on `port` by `lo`, as a hostile host would.
fn sender() -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
    s.set_multicast_if_v4(&LO).expect("multicast_if");
    s.set_multicast_loop_v4(true).expect("loop");
    s
}

fn send(s: &socket2::Socket, port: u16, datagram: &[u8]) {
    let to = SocketAddr::V4(SocketAddrV4::new(DEFAULT_MULTICAST_ADDR, port));
    s.send_to(datagram, &to.into()).expect("send");
}

#[test]
fn gossip_both_ways_with_and_without_a_secret() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        for secret in [None, Some("s3cret")] {
            // erlnode dials a BEAM node whose topology dials nobody
            let port = free_udp_port();
            let a = libs.start_elixir(&otp, &epmd, libs.elixir_node().prefix("gossip_a"));
            assert_eq!(eval(&a, &format!("ErlnodePeer.Cluster.gossip({}, false)", ex_gossip(port, secret))), ":ok");
            let node = rust_node(&epmd, DEFAULT_COOKIE).await;
            let g: Gossip = libcluster::start_gossip(&node, gossip_config(port, secret)).await.expect("gossip starts");
            let ea = Atom::new(a.name());
            eventually("erlnode hears A and dials it", || node.is_connected(&ea)).await;
            assert!(beam_lists(&a, &node));
            assert_eq!(eval(&a, "ErlnodePeer.Cluster.dialled()"), "[]", "A dialled nobody ({secret:?})");
            let s = g.stats();
            assert!(s.heartbeats >= 1 && s.connects >= 1, "{s:?}");
            assert_eq!((s.malformed, s.wrong_secret, s.connect_failures), (0, 0, 0), "{s:?}");
            drop(g);
            node.shutdown();

            // libcluster dials an erlnode that only announces itself
            let port = free_udp_port();
            let b = libs.start_elixir(&otp, &epmd, libs.elixir_node().prefix("gossip_b"));
            assert_eq!(eval(&b, &format!("ErlnodePeer.Cluster.gossip({})", ex_gossip(port, secret))), ":ok");
            let node = rust_node(&epmd, DEFAULT_COOKIE).await;
            let announce = GossipConfig { connect: false, ..gossip_config(port, secret) };
            let g = libcluster::start_gossip(&node, announce).await.expect("gossip starts");
            let rust = elixir_atom(node.name().as_str());
            eventually("B hears erlnode and dials it", || {
                eval(&b, &format!("{rust} in ErlnodePeer.Cluster.dialled()")) == "true"
            })
            .await;
            assert!(beam_lists(&b, &node));
            assert_eq!(g.stats().connects, 0);
            drop(g);
            node.shutdown();
        }

        // another secret: nobody connects, and erlnode counts B's heartbeats as wrong_secret
        let port = free_udp_port();
        let c = libs.start_elixir(&otp, &epmd, libs.elixir_node().prefix("gossip_c"));
        assert_eq!(eval(&c, &format!("ErlnodePeer.Cluster.gossip({})", ex_gossip(port, Some("theirs")))), ":ok");
        let node = rust_node(&epmd, DEFAULT_COOKIE).await;
        let g = libcluster::start_gossip(&node, gossip_config(port, Some("ours"))).await.expect("gossip starts");
        eventually("erlnode hears C's heartbeats and drops them", || g.stats().wrong_secret >= 2).await;
        assert!(node.nodes().is_empty(), "{:?}", node.nodes());
        assert!(!beam_lists(&c, &node));
        assert_eq!(g.stats().connects, 0);
    });
}

#[test]
fn hostile_datagrams_and_a_refusing_node() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let node = rust_node(&epmd, DEFAULT_COOKIE).await;
        let port = free_udp_port();
        let g = libcluster::start_gossip(
            &node,
            GossipConfig { max_interval: Duration::from_secs(5), ..gossip_config(port, None) },
        )
        .await
        .expect("gossip starts");
        let s = sender();
        let bad: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"garbage".to_vec(),
            b"heartbeat::".to_vec(),
            b"heartbeat::\x83t\x00\x00\x00\x01w\x04node".to_vec(), // truncated
            b"heartbeat::\x83t\x00\x00\x00\x01w\x04nodew\x08notanode".to_vec(), // not a node name
            b"heartbeat::\x83t\x00\x00\x00\x01w\x04nodem\x00\x00\x00\x03a@h".to_vec(), // a binary, not an atom
            b"heartbeat::\x83t\xff\xff\xff\xff".to_vec(),          // 4 G entries claimed
            packet::encode(&Atom::new("x@h"), Some(&Secret::new("k")), [1; 16]), // encrypted, we have none
            vec![0xAB; 9000],                                      // too long
        ];
        for d in &bad {
            send(&s, port, d);
        }
        eventually("every hostile datagram read", || g.stats().malformed >= bad.len() as u64).await;
        // a flood of 10,000, in bursts the socket's receive buffer holds
        for burst in 0..100u64 {
            for i in 0..100u64 {
                send(&s, port, &(burst * 100 + i).to_le_bytes());
            }
            let want = bad.len() as u64 + (burst + 1) * 100;
            eventually("the burst read", || g.stats().malformed >= want).await;
        }
        let st = g.stats();
        assert_eq!(st.malformed, bad.len() as u64 + 10_000, "{st:?}");
        assert_eq!((st.heartbeats, st.wrong_secret, st.connects), (0, 0, 0), "{st:?}");

        // still works: a heartbeat naming a real node is heard and dialled
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("heard"));
        send(&s, port, &packet::encode(&Atom::new(erl.name()), None, [0; 16]));
        eventually("erlnode dials the node it heard of", || node.is_connected(&Atom::new(erl.name()))).await;

        // a node with another cookie: dialled once, then backed off, not once per heartbeat
        let other = BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("refuses").cookie("another_cookie"));
        let refusing = packet::encode(&Atom::new(other.name()), None, [0; 16]);
        let before = g.stats();
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(3) {
            send(&s, port, &refusing);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eventually("the attempts' outcomes", || {
            let st = g.stats();
            st.connect_failures - before.connect_failures == st.connects - before.connects
        })
        .await;
        let st = g.stats();
        let attempts = st.connects - before.connects;
        // 60 heartbeats in 3 s; backoff 1 s then 2 s allows at most 3 attempts
        assert!((1..=3).contains(&attempts), "{attempts} attempts for 60 heartbeats: {st:?}");
        assert!(!node.is_connected(&Atom::new(other.name())));
    });
}

#[test]
fn epmd_and_local_epmd_strategies_connect_to_erlnode() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let node = rust_node(&epmd, DEFAULT_COOKIE).await;
        let rust = elixir_atom(node.name().as_str());
        let a = libs.start_elixir(&otp, &epmd, libs.elixir_node().prefix("epmd_a"));
        let topo = format!("[epmd: [strategy: Cluster.Strategy.Epmd, config: [hosts: [{rust}]]]]");
        assert_eq!(eval(&a, &format!("ErlnodePeer.Cluster.start({topo})")), ":ok");
        eventually("Cluster.Strategy.Epmd connects A to erlnode", || beam_lists(&a, &node)).await;
        a.kill();
        eventually("A is gone", || node.nodes().is_empty()).await;

        let b = libs.start_elixir(&otp, &epmd, libs.elixir_node().prefix("local_b"));
        let topo = "[local: [strategy: Cluster.Strategy.LocalEpmd]]";
        assert_eq!(eval(&b, &format!("ErlnodePeer.Cluster.start({topo})")), ":ok");
        eventually("Cluster.Strategy.LocalEpmd connects B to erlnode", || beam_lists(&b, &node)).await;
    });
}

#[test]
fn serve_gossip_joins_a_libcluster_cluster() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let port = free_udp_port();
        let a = libs.start_elixir(&otp, &epmd, libs.elixir_node().prefix("serve_a"));
        assert_eq!(eval(&a, &format!("ErlnodePeer.Cluster.gossip({})", ex_gossip(port, Some("s")))), ":ok");
        let port = port.to_string();
        let zed = Served::start(
            epmd.port(),
            &["--gossip", "--gossip-port", &port, "--gossip-if", "127.0.0.1", "--gossip-secret", "s"],
        );
        let zed = elixir_atom(&zed.name);
        let joined = wait_until_async(T, async || eval(&a, &format!("{zed} in Node.list()")) == "true").await;
        assert!(joined, "erlnode serve --gossip joined A's cluster");
        let set = Some(eval(&a, &format!("GenServer.call({{:kv1, {zed}}}, {{:set, :k, 1}})")));
        assert_eq!(set.as_deref(), Some("true"), "A calls the KV of the node it found");
    });
}
