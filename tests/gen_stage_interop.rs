//! GenStage between erlnode and real Elixir nodes running gen_stage 1.3.2 (from `../shared/peers`,
//! built per OTP by the harness): a Rust producer feeding an Elixir GenStage consumer 10,000
//! events in order and never more than asked; a Rust consumer draining an Elixir producer with
//! max_demand/min_demand; either side dying mid-stream; hostile asks; messages pushed into a
//! Broadway pipeline (broadway 1.3.0, `Broadway.DummyProducer`) and their acknowledgements.

mod common;

use std::time::Duration;

use common::peers::PeerLibs;
use common::*;
use erlnode::ecosystem::broadway;
use erlnode::ecosystem::gen_stage::{self, CancelMode, ConsumerOpts, Producer};
use erlnode::node::NodeConfig;
use erlnode::term::{Atom, Term, parse_elixir};
use erlnode::{Dest, Node};

const T: Duration = Duration::from_secs(30);

async fn rust_node(epmd: &Epmd) -> Node {
    let config = NodeConfig::new(unique_name("rusty"), DEFAULT_COOKIE).epmd_port(epmd.port());
    erlnode::services::start_node(config).await.expect("rust node starts")
}

fn ex_node(otp: &Otp, epmd: &Epmd, libs: &PeerLibs) -> BeamNode {
    let n = libs.start_elixir(otp, epmd, libs.elixir_node().prefix("gs"));
    for helper in ["exit_watch.ex", "gen_stage_peer.ex"] {
        let helper = repo_root().join("erlang_interop").join(helper);
        let helper = elixir_string(helper.to_str().expect("UTF-8 path"));
        eval(&n, &format!("Code.compile_file({helper}) |> length()"));
    }
    eval(&n, "{:ok, _} = Application.ensure_all_started(:gen_stage)");
    n
}

fn eval(n: &BeamNode, expr: &str) -> String {
    n.eval(expr).unwrap_or_else(|e| panic!("{expr} on {}: {e:?}", n.name()))
}

fn counter(node: &Node, name: &str) -> Producer {
    let mut next = 0i64;
    Producer::start(node, Some(Atom::new(name)), move |demand| {
        let events = (next..next + demand as i64).map(Term::Int).collect();
        next += demand as i64;
        events
    })
    .unwrap()
}

fn ints(range: std::ops::Range<i64>) -> Term {
    Term::List(range.map(Term::Int).collect())
}

#[test]
fn a_rust_producer_feeds_elixir_consumers_in_order_and_never_more_than_asked() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let a = ex_node(&otp, &epmd, &libs);
        let node = rust_node(&epmd).await;
        assert!(node.connect(&Atom::new(a.name())).await);
        let producer = counter(&node, "rust_counter");
        let rust = elixir_atom(node.name().as_str());

        // a real GenStage consumer: 10,000 events, in order, none in excess
        eval(&a, &format!("c = GenStagePeer.collector({{:rust_counter, {rust}}}, max_demand: 100, min_demand: 50)"));
        let got = eval(
            &a,
            "GenStagePeer.events(c, 10_000) |> then(fn l when is_list(l) -> l == Enum.to_list(0..9999); x -> x end)",
        );
        assert_eq!(got, "true", "the first 10,000 events, in order");
        // the consumer dies mid-stream: the producer drops it and goes on serving others
        eval(&a, "Process.exit(c, :kill)");
        assert_eq!(eval(&a, "ExitWatch.exit_reason(c)"), ":killed");
        // a consumer speaking the protocol by hand: never more than outstanding demand
        let raw = eval(
            &a,
            &format!(
                "GenStagePeer.raw_consume({{:rust_counter, {rust}}}, 10_000, 100) |> then(fn {{:ok, l}} -> {{:ok, length(l), l == Enum.sort(l)}}; x -> x end)"
            ),
        );
        assert_eq!(raw, "{:ok, 10000, true}", "never more than asked, in order");
        // hostile asks: unknown subscription, negative, not an integer, garbage, 2^62
        let hostile = eval(&a, &format!("GenStagePeer.hostile({{:rust_counter, {rust}}})"));
        assert_eq!(
            parse_elixir(&hostile).unwrap(),
            parse_elixir("{{:cancel, :unknown_subscription}, :nothing, 50000, {:cancelled, :enough}}").unwrap(),
            "{hostile}"
        );
        assert!(node.is_alive(&producer.pid), "the producer survived it all");
        // unbounded demand from a node that stops reading: the producer keeps to the socket's
        // pace (busy_dist_port on BEAM), nothing queues up without bound on the Rust side
        let ea = Atom::new(a.name());
        eval(
            &a,
            &format!(
                "flood = spawn(fn -> ref = make_ref(); p = {{:rust_counter, {rust}}}; \
                 send(p, {{:\"$gen_producer\", {{self(), ref}}, {{:subscribe, nil, []}}}}); \
                 send(p, {{:\"$gen_producer\", {{self(), ref}}, {{:ask, 4_611_686_018_427_387_904}}}}); \
                 receive do :never -> :ok end end)"
            ),
        );
        a.suspend();
        let mut most = 0;
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            most = most.max(node.dist_queue_len(&ea).unwrap_or(0));
        }
        a.resume();
        assert!(most <= gen_stage::BUSY_DIST_SIGNALS + 1, "{most} signals queued for a node that stopped reading");
        assert!(node.is_alive(&producer.pid));
        eval(&a, "Process.exit(flood, :kill)");
        assert!(!a.log_contains("in excess"), "GenStage saw no excess: {:?}", a.logs());

        // the Rust producer dies mid-stream: a permanent Elixir consumer exits with its reason
        eval(&a, &format!("c2 = GenStagePeer.collector({{:rust_counter, {rust}}}, max_demand: 10)"));
        assert_eq!(eval(&a, "GenStagePeer.events(c2, 100) |> length()"), "100");
        node.exit2(node.system_pid(), &producer.pid, Term::atom("kill"));
        assert_eq!(eval(&a, "ExitWatch.exit_reason(c2)"), ":killed");
    });
}

#[test]
fn a_rust_consumer_drains_an_elixir_producer_and_follows_its_death() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let a = ex_node(&otp, &epmd, &libs);
        let node = rust_node(&epmd).await;
        let ea = Atom::new(a.name());
        assert!(node.connect(&ea).await);
        eval(&a, "p = GenStagePeer.counter(:ex_counter)");
        let opts = ConsumerOpts { max_demand: 50, min_demand: 25, ..Default::default() };
        let mut c = gen_stage::subscribe(&node, Dest::Remote(Atom::new("ex_counter"), ea.clone()), opts);
        let mut got = Vec::new();
        while got.len() < 1000 {
            let batch = tokio::time::timeout(T, c.events.recv()).await.expect("events").expect("open");
            assert!(batch.len() <= 25, "batches of at most max - min");
            got.extend(batch);
        }
        assert_eq!(Term::List(got[..1000].to_vec()), ints(0..1000), "in order");
        // the producer dies mid-stream: the permanent consumer exits with its reason
        eval(&a, "Process.exit(p, :kill)");
        while tokio::time::timeout(T, c.events.recv()).await.expect("the consumer ends").is_some() {}
        let reason = tokio::time::timeout(T, c.exit).await.unwrap().unwrap();
        assert_eq!(reason, Term::atom("killed"));

        // transient: a producer cancelling with :normal ends the consumer normally
        eval(&a, "p2 = GenStagePeer.counter(:ex_counter2)");
        let opts = ConsumerOpts { max_demand: 10, min_demand: 5, cancel: CancelMode::Transient };
        let mut c2 = gen_stage::subscribe(&node, Dest::Remote(Atom::new("ex_counter2"), ea.clone()), opts);
        assert_eq!(tokio::time::timeout(T, c2.events.recv()).await.unwrap().unwrap().len(), 5);
        eval(&a, "GenStage.stop(p2, :normal)");
        // the consumer hands over what it still has, then ends
        while tokio::time::timeout(T, c2.events.recv()).await.expect("the consumer ends").is_some() {}
        let reason = tokio::time::timeout(T, c2.exit).await.unwrap().unwrap();
        assert_eq!(reason, Term::atom("normal"));
    });
}

#[test]
fn rust_pushes_messages_into_a_broadway_pipeline_and_gets_the_acks() {
    for_each_otp_async(|otp| async move {
        let libs = PeerLibs::get(&otp);
        let epmd = Epmd::start(&otp);
        let a = ex_node(&otp, &epmd, &libs);
        let helper = repo_root().join("erlang_interop/broadway_peer.ex");
        eval(&a, &format!("Code.compile_file({}) |> length()", elixir_string(helper.to_str().unwrap())));
        assert_eq!(eval(&a, "BroadwayPeer.start()"), ":ok");
        let node = rust_node(&epmd).await;
        let ea = Atom::new(a.name());
        assert!(node.connect(&ea).await);
        let data: Vec<Term> = (0..100)
            .map(|i| if i % 10 == 3 { Term::Tuple(vec![Term::atom("fail"), Term::Int(i)]) } else { Term::Int(i) })
            .collect();
        let acks = broadway::push(&node, &ea, "BroadwayPeer", data, T).await.unwrap();
        let mut ok: Vec<Term> = acks.successful.iter().map(|m| m.data.clone()).collect();
        ok.sort();
        let want: Vec<Term> =
            (0..100).filter(|i| i % 10 != 3).map(|i| Term::Tuple(vec![Term::atom("done"), Term::Int(i)])).collect();
        assert_eq!(ok, want, "every successful message, processed");
        assert!(acks.successful.iter().all(|m| m.status.is_atom("ok")));
        assert_eq!(acks.failed.len(), 10);
        assert!(acks.failed.iter().all(|m| m.status == parse_elixir("{:failed, :boom}").unwrap()), "{:?}", acks.failed);
        // no such pipeline: the call fails as GenServer.call would
        let err = broadway::push(&node, &ea, "NoSuchPipeline", vec![Term::Int(1)], T).await.unwrap_err();
        assert!(matches!(err, broadway::BroadwayError::Call(_)), "{err:?}");
    });
}
