//! `global` in the hard cluster situations, with real BEAM nodes (issue: take part in global
//! natively): a BEAM node restarting as a new incarnation, a partition under "prevent
//! overlapping partitions" compared with what a BEAM node in the Rust node's place does, the
//! Rust node bridging two partitions, many concurrent registrations from both sides, and two
//! Rust nodes in one cluster. Every test runs against each harness OTP version with three BEAM
//! nodes and one or two Rust nodes, and prints the timings it measures.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use erlnode::node::NodeConfig;
use erlnode::services::{self, gns::GlobalService};
use erlnode::term::{Atom, Pid, Term};
use erlnode::{Dest, Node, Process};

/// Deadline for anything the cluster must reach (2 shared cores, many nodes).
const T: Duration = Duration::from_secs(60);

async fn rust_node(epmd: &Epmd, prefix: &str) -> Node {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    erlnode::services::start_node(NodeConfig::new(unique_name(prefix), DEFAULT_COOKIE).epmd_port(epmd.port()))
        .await
        .expect("starts")
}

/// A process that answers `{From, Tag}` with `{Tag, pong}` and ends on `stop`.
fn idle(node: &Node) -> Pid {
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

fn gns(node: &Node) -> std::sync::Arc<GlobalService> {
    node.extension::<GlobalService>().expect("a visible node runs global")
}

fn atom_text(t: &Term) -> String {
    match t {
        Term::Atom(a) => a.as_str().to_string(),
        other => format!("{other}"),
    }
}

/// One cluster member, BEAM or Rust, queried the same way.
#[derive(Clone, Copy)]
enum M<'a> {
    Beam(&'a BeamNode),
    Rust(&'a Node),
}

impl M<'_> {
    fn name(&self) -> String {
        match self {
            M::Beam(n) => n.name().to_string(),
            M::Rust(n) => n.name().as_str().to_string(),
        }
    }

    /// Evaluates `erl` (on `erl` nodes) or `ex` (on `elixir` nodes); `Err` names the node.
    async fn eval(n: &BeamNode, erl: &str, ex: &str, timeout: Duration) -> Result<String, String> {
        let expr = if n.lang() == Lang::Erlang { erl } else { ex };
        n.eval_timeout_async(expr, timeout).await.map_err(|e| format!("{} ({expr}): {e}", n.name()))
    }

    /// A space-separated word list printed as a string (`"a b"`; `[]` is Erlang's `""`).
    async fn words(n: &BeamNode, erl: &str, ex: &str) -> Result<BTreeSet<String>, String> {
        let s = Self::eval(n, erl, ex, DEFAULT_EVAL_TIMEOUT).await?;
        let s = if s.is_empty() || s == "[]" { "\"\"".to_string() } else { s };
        let body = s
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .ok_or_else(|| format!("{}: not a string: {s}", n.name()))?;
        Ok(body.split_whitespace().map(str::to_string).collect())
    }

    async fn connected(&self) -> Result<BTreeSet<String>, String> {
        match self {
            M::Beam(n) => {
                Self::words(
                    n,
                    "string:join([atom_to_list(N) || N <- lists:sort(nodes())], \" \")",
                    "Enum.map_join(Enum.sort(Node.list()), \" \", &Atom.to_string/1)",
                )
                .await
            }
            M::Rust(n) => Ok(n.nodes().iter().map(|a| a.as_str().to_string()).collect()),
        }
    }

    /// The nodes `global` has synced with.
    async fn known(&self) -> Result<BTreeSet<String>, String> {
        match self {
            M::Beam(n) => {
                Self::words(
                    n,
                    "string:join([atom_to_list(N) || N <- lists:sort(gen_server:call(global_name_server, get_known))], \" \")",
                    "Enum.map_join(Enum.sort(GenServer.call(:global_name_server, :get_known)), \" \", &Atom.to_string/1)",
                )
                .await
            }
            M::Rust(n) => Ok(gns(n).known_nodes().iter().map(|a| a.as_str().to_string()).collect()),
        }
    }

    /// The name table as `name=node_of_pid`.
    async fn table(&self) -> Result<BTreeSet<String>, String> {
        match self {
            M::Beam(n) => {
                Self::words(
                    n,
                    "string:join([atom_to_list(N) ++ \"=\" ++ case global:whereis_name(N) of P when is_pid(P) -> atom_to_list(node(P)); U -> atom_to_list(U) end \
                     || N <- lists:sort(global:registered_names())], \" \")",
                    "Enum.map_join(Enum.sort(:global.registered_names()), \" \", fn n -> case :global.whereis_name(n) do \
                     p when is_pid(p) -> \"#{n}=#{node(p)}\"; u -> \"#{n}=#{u}\" end end)",
                )
                .await
            }
            M::Rust(n) => Ok(services::registered_names(n)
                .iter()
                .map(|name| {
                    let owner = gns(n).whereis_name(name).map(|p| p.node.as_str().to_string()).unwrap_or("undefined".into());
                    format!("{}={owner}", atom_text(name))
                })
                .collect()),
        }
    }

    /// `:global.sync()` returned `ok` (BEAM); a Rust node has nothing to wait for.
    async fn sync(&self) -> Result<(), String> {
        match self {
            M::Beam(n) => match Self::eval(n, "global:sync()", ":global.sync()", T).await? {
                s if s == "ok" || s == ":ok" => Ok(()),
                s => Err(format!("{}: global:sync() = {s}", n.name())),
            },
            M::Rust(_) => Ok(()),
        }
    }
}

/// One check that `ms` form one cluster: each is connected to and synced with every other,
/// `:global.sync()` returns everywhere and every name table equals `table` (`name=node`).
async fn converged(ms: &[M<'_>], table: &BTreeSet<String>) -> Result<(), String> {
    let all: BTreeSet<String> = ms.iter().map(M::name).collect();
    for m in ms {
        m.sync().await?;
    }
    for m in ms {
        let mut others = all.clone();
        others.remove(&m.name());
        let (c, k, t) = (m.connected().await?, m.known().await?, m.table().await?);
        if !others.is_subset(&c) {
            return Err(format!("{} is connected to {c:?}, not to all of {others:?}", m.name()));
        }
        if k != others {
            return Err(format!("{} knows {k:?}, expected {others:?}", m.name()));
        }
        if &t != table {
            return Err(format!("{} has table {t:?}, expected {table:?}", m.name()));
        }
    }
    Ok(())
}

async fn wait_converged(ms: &[M<'_>], table: &BTreeSet<String>, what: &str) {
    let mut last = String::new();
    let ok = wait_until_async(T, async || match converged(ms, table).await {
        Ok(()) => true,
        Err(e) => {
            last = e;
            false
        }
    })
    .await;
    assert!(ok, "{what}: not converged within {T:?}: {last}");
}

fn table_of<const N: usize>(entries: [(&str, &str); N]) -> BTreeSet<String> {
    entries.iter().map(|(name, node)| format!("{name}={node}")).collect()
}

/// `global:register_name(Name, spawn(...))` on a BEAM node; the result atom.
async fn beam_register(n: &BeamNode, name: &str) -> String {
    let (erl, ex) = (
        format!("global:register_name({name}, spawn(fun() -> receive stop -> ok end end))"),
        format!(":global.register_name(:{name}, spawn(fn -> receive do :stop -> :ok end end))"),
    );
    M::eval(n, &erl, &ex, T).await.unwrap().trim_start_matches(':').to_string()
}

/// Starts BEAM nodes and joins each of the others to the first with a ping, as a person would in
/// iex.
async fn beam_cluster<const N: usize>(otp: &Otp, epmd: &Epmd, opts: [NodeOpts; N]) -> [BeamNode; N] {
    let nodes = opts.map(|o| BeamNode::start(otp, epmd, o));
    for n in &nodes[1..] {
        beam_ping(n, nodes[0].name()).await;
    }
    nodes
}

async fn beam_ping(from: &BeamNode, to: &str) {
    let (erl, ex) = (format!("net_adm:ping({})", erlang_atom(to)), format!("Node.ping({})", elixir_atom(to)));
    let r = M::eval(from, &erl, &ex, T).await.unwrap();
    assert!(r.ends_with("pong"), "{} pinging {to}: {r}", from.name());
}

// ---------------------------------------------------------------------------------------
// 1. a BEAM node restarts as a new incarnation
// ---------------------------------------------------------------------------------------

#[test]
fn beam_node_restarting_with_a_new_creation() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let opts = [NodeOpts::erlang().prefix("a"), NodeOpts::elixir().prefix("b"), NodeOpts::erlang().prefix("c")];
        let [a, b, c] = beam_cluster(&otp, &epmd, opts).await;
        let r = rust_node(&epmd, "r").await;
        assert!(r.connect(&Atom::new(a.name())).await);
        let rn = r.name().as_str().to_string();
        let r_pid = idle(&r);
        assert!(services::register_name(&r, &Atom::new("r_name"), &r_pid).await);
        assert_eq!(beam_register(&c, "c_name").await, "yes");
        assert_eq!(beam_register(&c, "c_gone").await, "yes");
        let table = table_of([("c_gone", c.name()), ("c_name", c.name()), ("r_name", &rn)]);
        wait_converged(&[M::Beam(&a), M::Beam(&b), M::Beam(&c), M::Rust(&r)], &table, "before the restart").await;
        let old_pid = services::whereis_name(&r, &Atom::new("c_name")).expect("c_name resolves");

        // SIGKILL c: its names vanish everywhere
        c.kill();
        let table = table_of([("r_name", &rn)]);
        let cn = Atom::new(c.name());
        assert!(wait_until_async(T, async || !r.is_connected(&cn)).await, "r still connected to the dead c");
        wait_converged(&[M::Beam(&a), M::Beam(&b), M::Rust(&r)], &table, "after c died").await;
        assert!(wait_until(T, || epmd.names().is_ok_and(|t| !t.contains(&format!("name {} ", c.alive_name())))));

        // the same name again, a new creation
        let c2 = BeamNode::start(&otp, &epmd, NodeOpts::erlang().exact_name(c.alive_name()));
        assert_eq!(c2.name(), c.name());
        // the new incarnation joins through the Rust node, which syncs it into the cluster
        beam_ping(&c2, &rn).await;
        let table = table_of([("r_name", &rn)]);
        wait_converged(&[M::Beam(&a), M::Beam(&b), M::Beam(&c2), M::Rust(&r)], &table, "after the restart").await;
        assert_eq!(beam_register(&c2, "c_name").await, "yes");
        assert_eq!(beam_register(&c2, "c_new").await, "yes");
        let table = table_of([("c_name", c2.name()), ("c_new", c2.name()), ("r_name", &rn)]);
        wait_converged(&[M::Beam(&a), M::Beam(&b), M::Beam(&c2), M::Rust(&r)], &table, "names of the new c").await;

        // c_name is the new incarnation's process, and the old pid does not resolve
        let new_pid = services::whereis_name(&r, &Atom::new("c_name")).expect("c_name resolves");
        assert_ne!(new_pid.creation, old_pid.creation, "old {old_pid:?}, new {new_pid:?}");
        assert_eq!(services::whereis_name(&r, &Atom::new("c_gone")), None);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let target = old_pid.clone();
        r.spawn(move |mut p: Process| async move {
            let mref = p.monitor(Dest::Pid(target));
            let down = p.receive().await;
            let _ = tx.send((mref, down));
            erlnode::node::normal()
        });
        let (mref, down) = tokio::time::timeout(T, rx).await.expect("a DOWN for the old pid").unwrap();
        match down.as_tuple() {
            Some([tag, Term::Ref(m), _, _, reason]) if tag.is_atom("DOWN") => {
                assert_eq!(m, &mref);
                assert!(reason.is_atom("noproc"), "DOWN for the old incarnation's pid: {down}");
            }
            _ => panic!("expected a DOWN, got {down}"),
        }
        // the new node calls the Rust name
        let reply = c2
            .eval_async(
                "P = global:whereis_name(r_name), P ! {self(), ping}, receive {ping, X} -> X after 5000 -> timeout end",
            )
            .await
            .unwrap();
        assert_eq!(reply, "pong");
    });
}

// ---------------------------------------------------------------------------------------
// 2. partition and rejoin under prevent_overlapping_partitions
// ---------------------------------------------------------------------------------------

/// What one member looks like after the partition, in roles (`A`, `B`, `C`, `X`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    connected: BTreeSet<String>,
    known: BTreeSet<String>,
    names: BTreeSet<String>,
}

/// The partition scenario's state, by role, if it has settled: every member's connections
/// equal its known nodes, connections are symmetric and group the members into cliques, each
/// clique holds exactly the names of its members, and `:global.sync()` returns everywhere.
async fn settled_views(ms: &[(&str, M<'_>)]) -> Result<BTreeMap<String, View>, String> {
    let role: BTreeMap<String, String> = ms.iter().map(|(r, m)| (m.name(), r.to_string())).collect();
    let roles = |s: BTreeSet<String>| -> BTreeSet<String> {
        s.into_iter().map(|n| role.get(&n).cloned().unwrap_or(n)).collect()
    };
    for (_, m) in ms {
        m.sync().await?;
    }
    let mut views = BTreeMap::new();
    for (r, m) in ms {
        let names = m.table().await?.into_iter().map(|e| e.split('=').next().unwrap_or_default().to_string()).collect();
        let view = View { connected: roles(m.connected().await?), known: roles(m.known().await?), names };
        views.insert(r.to_string(), view);
    }
    for (r, v) in &views {
        if v.connected != v.known {
            return Err(format!("{r} is connected to {:?} but knows {:?}", v.connected, v.known));
        }
        let mut clique = v.connected.clone();
        clique.insert(r.clone());
        for peer in &v.connected {
            let mut theirs = views.get(peer).map(|p| p.connected.clone()).unwrap_or_default();
            theirs.insert(peer.clone());
            if theirs != clique {
                return Err(format!("{r} sees clique {clique:?}, {peer} sees {theirs:?}"));
            }
        }
        let expected: BTreeSet<String> = clique.iter().map(|m| format!("{}_n", m.to_lowercase())).collect();
        if v.names != expected {
            return Err(format!("{r} in clique {clique:?} has names {:?}", v.names));
        }
    }
    Ok(views)
}

type Views = BTreeMap<String, View>;

/// `views` with roles `p` and `q` swapped (in role keys, peer sets and `<role>_n` names).
fn swapped(views: &Views, p: &str, q: &str) -> Views {
    let role = |r: &str| {
        if r == p {
            q.to_string()
        } else if r == q {
            p.to_string()
        } else {
            r.to_string()
        }
    };
    let name = |n: &str| match n.strip_suffix("_n") {
        Some(r) => format!("{}_n", role(&r.to_uppercase()).to_lowercase()),
        None => n.to_string(),
    };
    let set = |s: &BTreeSet<String>, f: &dyn Fn(&str) -> String| s.iter().map(|x| f(x)).collect();
    views
        .iter()
        .map(|(r, v)| {
            let v =
                View { connected: set(&v.connected, &role), known: set(&v.known, &role), names: set(&v.names, &name) };
            (role(r), v)
        })
        .collect()
}

/// The partitions (cliques) of a settled state.
fn partitions(views: &Views) -> BTreeSet<BTreeSet<String>> {
    views
        .iter()
        .map(|(r, v)| {
            let mut clique = v.connected.clone();
            clique.insert(r.clone());
            clique
        })
        .collect()
}

/// The two bystanders when `dropper` drops B: the other two of A, C and X.
fn bystanders(dropper: &str) -> (&'static str, &'static str) {
    if dropper == "A" { ("C", "X") } else { ("A", "C") }
}

/// What holds after `dropper` dropped B whoever is in X's place: the two bystanders, in the
/// same position, share one fate exactly (one's view is the other's with the two swapped, so
/// X as a bystander was dropped only where a BEAM node was too), and `dropper` and B end apart
/// unless everyone healed back into one clique (see [`allowed_outcomes`]).
fn check_partition_invariants(views: &Views, dropper: &str) -> Result<(), String> {
    let (p, q) = bystanders(dropper);
    if &swapped(views, p, q) != views {
        return Err(format!("{p} and {q}, in the same position, did not end the same: {views:#?}"));
    }
    let parts = partitions(views);
    if parts.len() > 1 && parts.iter().any(|c| c.contains(dropper) && c.contains("B")) {
        return Err(format!("{dropper} and B ended together: {views:#?}"));
    }
    Ok(())
}

/// Builds A, B, C (BEAM) and `x` all connected, each with a name `<role>_n`, has `dropper`
/// (A or X) drop its connection to B, waits until the state settles (see [`settled_views`]) and satisfies
/// [`check_partition_invariants`], and returns it by role. Then A pings the others back and
/// the whole cluster must converge again. A state that settled but broke the invariants
/// (for [`T`], then still so) is `Err` with the reason, for the caller to count and reject.
async fn partition_scenario(otp: &Otp, epmd: &Epmd, x: M<'_>, dropper: &str) -> Result<Views, (Views, String)> {
    let opts = [NodeOpts::erlang().prefix("a"), NodeOpts::erlang().prefix("b"), NodeOpts::elixir().prefix("c")];
    let [a, b, c] = beam_cluster(otp, epmd, opts).await;
    let x_pid;
    match x {
        M::Beam(n) => {
            beam_ping(n, a.name()).await;
            assert_eq!(beam_register(n, "x_n").await, "yes");
        }
        M::Rust(n) => {
            assert!(n.connect(&Atom::new(a.name())).await);
            x_pid = idle(n);
            assert!(services::register_name(n, &Atom::new("x_n"), &x_pid).await);
        }
    }
    for (n, name) in [(&a, "a_n"), (&b, "b_n"), (&c, "c_n")] {
        assert_eq!(beam_register(n, name).await, "yes");
    }
    let ms = [M::Beam(&a), M::Beam(&b), M::Beam(&c), x];
    let table = table_of([("a_n", a.name()), ("b_n", b.name()), ("c_n", c.name()), ("x_n", &x.name())]);
    wait_converged(&ms, &table, "before the partition").await;

    if std::env::var_os("ERLNODE_PARTITION_SYNC_LOOP").is_some() {
        // every BEAM node calls global:sync() back to back for 3 s from just before the drop,
        // which makes the one-clique outcome likely (see `allowed_outcomes`)
        let erl = "spawn(fun() -> D = erlang:monotonic_time(millisecond) + 3000, \
                   L = fun L() -> global:sync(), case erlang:monotonic_time(millisecond) > D of true -> ok; false -> L() end end, L() end), ok";
        let ex = "spawn(fn -> d = System.monotonic_time(:millisecond) + 3000; \
                  Stream.repeatedly(fn -> :global.sync(); System.monotonic_time(:millisecond) end) |> Enum.find(&(&1 > d)) end); :ok";
        for n in [&a, &b, &c] {
            M::eval(n, erl, ex, T).await.unwrap();
        }
        if let M::Beam(n) = x {
            M::eval(n, erl, ex, T).await.unwrap();
        }
    }
    let disc = format!("erlang:disconnect_node({})", erlang_atom(b.name()));
    match (dropper, x) {
        ("A", _) => assert_eq!(a.eval_async(&disc).await.unwrap(), "true"),
        (_, M::Beam(n)) => assert_eq!(n.eval_async(&disc).await.unwrap(), "true"),
        (_, M::Rust(n)) => assert!(n.disconnect(&Atom::new(b.name()))),
    }
    let roles = [("A", M::Beam(&a)), ("B", M::Beam(&b)), ("C", M::Beam(&c)), ("X", x)];
    let mut last = String::new();
    let mut views = BTreeMap::new();
    let ok = wait_until_async(T, async || {
        // settled: the same settled state twice in a row, one sync round apart
        let first = match settled_views(&roles).await {
            Ok(v) => v,
            Err(e) => {
                last = e;
                return false;
            }
        };
        if let Err(e) = check_partition_invariants(&first, dropper) {
            last = e;
            return false;
        }
        match settled_views(&roles).await {
            Ok(second) if second == first => {
                views = second;
                true
            }
            Ok(second) => {
                last = format!("still moving: {first:?} then {second:?}");
                false
            }
            Err(e) => {
                last = e;
                false
            }
        }
    })
    .await;
    let who = if matches!(x, M::Rust(_)) { "Rust" } else { "BEAM" };
    let outcome = if ok {
        Ok(views)
    } else {
        // a state that settled (twice alike) but broke the invariants is an outcome too: it is
        // returned for the caller to count and reject; anything else fails here
        let last_settled = match (settled_views(&roles).await, settled_views(&roles).await) {
            (Ok(first), Ok(second)) if first == second => Some(first),
            _ => None,
        };
        match last_settled {
            Some(v) if check_partition_invariants(&v, dropper).is_err() => Err((v, last.clone())),
            _ => panic!("{}: after {dropper} dropped B: {last}", x.name()),
        }
    };
    let (Ok(v) | Err((v, _))) = &outcome;
    eprintln!("after {dropper} dropped B ({who} in X's place): {:?}", partitions(v));

    // rejoin: A pings everyone back; one cluster, one table
    for n in [b.name(), c.name(), &x.name()] {
        beam_ping(&a, n).await;
    }
    wait_converged(&ms, &table, "after the rejoin").await;
    outcome
}

/// How many BEAM reference runs each scenario makes.
const REFERENCE_RUNS: usize = 2;
/// How many runs with the Rust node in X's place each scenario makes.
const RUST_RUNS: usize = 1;

/// `var` as a run count, else `default`: `ERLNODE_REFERENCE_RUNS` and `ERLNODE_RUST_RUNS`
/// tally the partition outcomes over many runs without changing what CI runs, e.g.
/// `ERLNODE_OTP_VERSIONS=29 ERLNODE_REFERENCE_RUNS=40 ERLNODE_RUST_RUNS=40 cargo test --test
/// global_cluster partition -- --nocapture` (`ERLNODE_PARTITION_DROPPERS=X` runs one scenario;
/// `ERLNODE_PARTITION_SYNC_LOOP=1` makes BEAM nodes call `global:sync()` in a loop around the
/// drop, see [`allowed_outcomes`]).
fn runs(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(s) if !s.trim().is_empty() => s.trim().parse().unwrap_or_else(|_| panic!("{var}: not a count: {s:?}")),
        _ => default,
    }
}

/// A drops B in a cluster of A, B, C and X (then, the same with X dropping B). Where everyone
/// ends depends, on BEAM itself, on a race between two `lost_connection` reports: the
/// dropper's (which makes the bystanders drop B) and B's own (which makes them drop the
/// dropper), and on which of them reaches each bystander before its connection goes. So a node
/// following the protocol ends in one of `{D} {B} {bystanders}`, `{D + bystanders} {B}` or
/// `{D} {B + bystanders}` (D the dropper; all three were seen with four BEAM nodes, and which
/// one a run reaches moves with timing: a node that reports its disconnect sooner than BEAM
/// does makes the second one likelier), or, rarely, healed back into one clique: a
/// `global:sync()` racing the partition re-dials a node (see [`allowed_outcomes`]). The test
/// asserts, for BEAM reference runs and for the Rust node in X's place alike, what is
/// deterministic (settled cliques holding exactly their members' names, X sharing the fate of
/// the bystander C, D and B apart unless all are together), that the outcome is one of those
/// four, and after the rejoin, one cluster and one table.
#[test]
fn partition_and_rejoin_as_a_beam_node_would() {
    for_each_otp_async(|otp| async move {
        let droppers = std::env::var("ERLNODE_PARTITION_DROPPERS").unwrap_or_else(|_| "A,X".into());
        for dropper in ["A", "X"] {
            if droppers.split(',').any(|d| d.trim() == dropper) {
                partition_against_reference(&otp, dropper).await;
            }
        }
    });
}

/// The outcomes the protocol allows when `dropper` drops B (see the test's doc).
///
/// The fourth, one clique of all four with one table, is BEAM's own too, and it comes from the
/// harness: [`settled_views`] calls `global:sync()` on every BEAM node while the partition
/// settles. In OTP 25-29 `global:sync/0` takes `nodes()` in the caller (`check_sync_nodes/0`);
/// the server's `handle_call({sync, Nodes}, ...)` passes those not in `synced` to
/// `start_sync/2`, whose `sync_init/2` calls `monitor_node(Node, true)` on each, and
/// `erlang:monitor_node/2` sets up a connection that is not there. So a node that
/// `prevent_overlapping_partitions` cut off (`lost_connection` -> `remove_connection` ->
/// `handle_nodedown/3`) between that `nodes()` and the call is dialled again. The new
/// connection syncs like any other, and `connect_all` spreads it: `resolved/5` calls
/// `sync_others(HisKnown)` and `new_nodes/6` calls `sync_others(AddedNodes)`, each
/// `sync_other/2` again a `monitor_node(Node, true, [allow_passive_connect])`. If the node
/// dialled still knew the dropper, or B, everyone reconnects (`global:sync([N])` after
/// `erlang:disconnect_node(N)` reconnects N on OTP 29, checked by hand).
///
/// Tallies on 2 shared cores, as `{D} {B} {bystanders}` / `{D + bystanders} {B}` /
/// `{D} {B + bystanders}` / one clique, with the `ERLNODE_*` knobs of [`runs`]:
///
/// | OTP | dropper | BEAM in X's place | Rust in X's place |
/// |-----|---------|-------------------|-------------------|
/// | 29  | X       | 102 / 12 / 6 / 0  | 79 / 14 / 17 / 0  |
/// | 27  | X       | 31 / 7 / 2 / 0    | 20 / 9 / 1 / 0    |
/// | 29  | A       | 31 / 8 / 1 / 0    | 17 / 10 / 3 / 0   |
/// | 27  | A       | 33 / 5 / 2 / 0    | 28 / 2 / 0 / 0    |
///
/// So the one clique is rare (seen once in a CI run, OTP 29, and once in a local default run,
/// OTP 27, dropper A, both with the Rust node in X's place; four BEAM nodes reach it as well
/// once the race window is wider). With `ERLNODE_PARTITION_SYNC_LOOP` set (every BEAM node
/// calls `global:sync()` back to back for 3 s from just before the drop, which only widens the
/// harness's own race), OTP 29 runs with four BEAM nodes, dropper X, end in one clique 10
/// times of 20 (0 / 2 / 8 / 10; Rust in X's place 5 / 0 / 9 / 1 of 15) and on OTP 27 9 times
/// of 15 (0 / 1 / 5 / 9; Rust 0 / 1 / 6 / 3 of 10).
fn allowed_outcomes(dropper: &str) -> Vec<BTreeSet<BTreeSet<String>>> {
    let (p, q) = bystanders(dropper);
    let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<String>>();
    vec![
        [set(&[dropper]), set(&["B"]), set(&[p, q])].into_iter().collect(),
        [set(&[dropper, p, q]), set(&["B"])].into_iter().collect(),
        [set(&[dropper]), set(&["B", p, q])].into_iter().collect(),
        [set(&[dropper, "B", p, q])].into_iter().collect(),
    ]
}

async fn partition_against_reference(otp: &Otp, dropper: &str) {
    let epmd = Epmd::start(otp);
    let allowed = allowed_outcomes(dropper);
    // outcome -> (BEAM runs, Rust runs); every run is counted before anything is asserted
    let mut tally: BTreeMap<BTreeSet<BTreeSet<String>>, (usize, usize)> = BTreeMap::new();
    let mut broken = Vec::new();
    let mut count =
        |who: &str, run: usize, outcome: Result<Views, (Views, String)>, tally: &mut BTreeMap<_, (usize, usize)>| {
            let (Ok(v) | Err((v, _))) = &outcome;
            let entry = tally.entry(partitions(v)).or_default();
            if who == "BEAM" {
                entry.0 += 1
            } else {
                entry.1 += 1
            }
            if let Err((_, why)) = &outcome {
                broken.push(format!("{who} run {run}: {why}"));
            } else if !allowed.contains(&partitions(v)) {
                broken.push(format!(
                    "{who} run {run} ended in {:?}, outside the protocol's outcomes {allowed:?}",
                    partitions(v)
                ));
            }
        };
    for run in 0..runs("ERLNODE_REFERENCE_RUNS", REFERENCE_RUNS) {
        let x = BeamNode::start(otp, &epmd, NodeOpts::erlang().prefix("x"));
        count("BEAM", run, partition_scenario(otp, &epmd, M::Beam(&x), dropper).await, &mut tally);
    }
    for run in 0..runs("ERLNODE_RUST_RUNS", RUST_RUNS) {
        let r = rust_node(&epmd, "x_rust").await;
        count("Rust", run, partition_scenario(otp, &epmd, M::Rust(&r), dropper).await, &mut tally);
        r.shutdown();
    }
    for (outcome, (beam, rust)) in &tally {
        eprintln!("[tally] {otp}, {dropper} dropped B: {outcome:?}: BEAM {beam}, Rust in X's place {rust}");
    }
    assert!(broken.is_empty(), "{dropper} dropped B: {}", broken.join("; "));
}

// ---------------------------------------------------------------------------------------
// 3. the Rust node bridges two partitions
// ---------------------------------------------------------------------------------------

#[test]
fn rust_node_bridges_two_partitions() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let a = BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("a"));
        let b = BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("b"));
        let c = BeamNode::start(&otp, &epmd, NodeOpts::elixir().prefix("c"));
        beam_ping(&b, a.name()).await;
        for (n, name) in [(&a, "a_n"), (&b, "b_n"), (&c, "c_n")] {
            assert_eq!(beam_register(n, name).await, "yes");
        }
        let r = rust_node(&epmd, "r").await;
        let rn = r.name().as_str().to_string();
        assert!(r.connect(&Atom::new(a.name())).await);
        let r_pid = idle(&r);
        assert!(services::register_name(&r, &Atom::new("r_n"), &r_pid).await);
        let ab = table_of([("a_n", a.name()), ("b_n", b.name()), ("r_n", &rn)]);
        wait_converged(&[M::Beam(&a), M::Beam(&b), M::Rust(&r)], &ab, "r joined {a, b}").await;
        wait_converged(&[M::Beam(&c)], &table_of([("c_n", c.name())]), "c alone").await;

        // r, synced with {a, b}, connects to c: one cluster, one table
        let t0 = Instant::now();
        assert!(r.connect(&Atom::new(c.name())).await);
        let all = [M::Beam(&a), M::Beam(&b), M::Beam(&c), M::Rust(&r)];
        let table = table_of([("a_n", a.name()), ("b_n", b.name()), ("c_n", c.name()), ("r_n", &rn)]);
        wait_converged(&all, &table, "after r bridged {a, b} and {c}").await;
        eprintln!("[figures] {otp}: bridging {{a, b, r}} and {{c}}: converged {:?} after connect", t0.elapsed());

        // and it stays one cluster: a name registered on c afterwards reaches everyone
        assert_eq!(beam_register(&c, "c_after").await, "yes");
        let table =
            table_of([("a_n", a.name()), ("b_n", b.name()), ("c_after", c.name()), ("c_n", c.name()), ("r_n", &rn)]);
        wait_converged(&all, &table, "a name registered after the bridge").await;
    });
}

// ---------------------------------------------------------------------------------------
// 4. many concurrent registrations from both sides
// ---------------------------------------------------------------------------------------

#[test]
fn many_concurrent_registrations_from_both_sides() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let opts = [NodeOpts::elixir().prefix("e"), NodeOpts::erlang().prefix("a"), NodeOpts::erlang().prefix("b")];
        let [e, a, b] = beam_cluster(&otp, &epmd, opts).await;
        let r = rust_node(&epmd, "r").await;
        assert!(r.connect(&Atom::new(e.name())).await);
        let all = [M::Beam(&e), M::Beam(&a), M::Beam(&b), M::Rust(&r)];
        wait_converged(&all, &BTreeSet::new(), "before registering").await;

        // Rust registers m00..m49, Elixir m25..m74, all at once: m25..m49 on both sides. The
        // Elixir side tells the Rust side when it starts (a message to a Rust process
        // registered as `go`), so both run at the same time.
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let go = r.spawn(move |mut p: Process| async move {
            let _ = p.receive().await;
            let _ = go_tx.send(());
            erlnode::node::normal()
        });
        assert!(r.register(Atom::new("go"), &go));
        let ex = format!("send({{:go, {}}}, :go); ", elixir_atom(r.name().as_str()))
            + "25..74 |> Task.async_stream(fn i -> n = String.to_atom(\"m#{i}\"); \
                  p = spawn(fn -> receive do :stop -> :ok end end); {n, :global.register_name(n, p)} end, \
                  max_concurrency: 50, timeout: :infinity) |> Enum.map_join(\" \", fn {:ok, {n, res}} -> \"#{n}=#{res}\" end)";
        let pids: Vec<Pid> = (0..50).map(|_| idle(&r)).collect();
        let t0 = Instant::now();
        let rust_side = async {
            tokio::time::timeout(T, go_rx).await.expect("the Elixir side starts").unwrap();
            let mut set = tokio::task::JoinSet::new();
            // the contested names first, in the opposite order to the Elixir side's, so that
            // the two sides meet somewhere in the middle
            for (i, pid) in pids.iter().enumerate().skip(25).rev().chain(pids.iter().enumerate().take(25)) {
                let (node, pid, name) = (r.clone(), pid.clone(), format!("m{i:02}"));
                set.spawn(async move {
                    let ok = services::register_name(&node, &Atom::new(&name), &pid).await;
                    (name, (pid, ok))
                });
            }
            let mut out = BTreeMap::new();
            while let Some(res) = set.join_next().await {
                let (name, v) = res.expect("registration task");
                out.insert(name, v);
            }
            out
        };
        let (beam_res, rust_res) = tokio::join!(e.eval_timeout_async(&ex, Duration::from_secs(120)), rust_side);
        let elapsed = t0.elapsed();
        let beam_res = beam_res.unwrap();
        let beam_res: BTreeMap<String, bool> = beam_res
            .trim_matches('"')
            .split_whitespace()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad entry {kv} in {beam_res}"));
                (k.to_string(), v == "yes")
            })
            .collect();
        assert_eq!(beam_res.len(), 50, "{beam_res:?}");
        assert_eq!(rust_res.len(), 50);

        let (rn, en) = (r.name().as_str().to_string(), e.name().to_string());
        let mut expected = BTreeSet::new();
        let (mut rust_won, mut beam_won) = (0, 0);
        for i in 0..75 {
            let name = format!("m{i:02}");
            let rust_ok = rust_res.get(&name).map(|(_, ok)| *ok);
            let beam_ok = beam_res.get(&name).copied();
            let winner = match (rust_ok, beam_ok) {
                (Some(true), None | Some(false)) => &rn,
                (None | Some(false), Some(true)) => &en,
                other => panic!("{name}: Rust registered {:?}, Elixir {:?}: not exactly one winner", other.0, other.1),
            };
            if rust_ok.is_some() && beam_ok.is_some() {
                if winner == &rn { rust_won += 1 } else { beam_won += 1 }
            }
            expected.insert(format!("{name}={winner}"));
        }
        wait_converged(&all, &expected, "after the concurrent registrations").await;
        for (name, (pid, ok)) in &rust_res {
            if *ok {
                assert_eq!(services::whereis_name(&r, &Atom::new(name)).as_ref(), Some(pid), "{name}");
            }
        }
        eprintln!(
            "[figures] {otp}: 50 Rust + 50 Elixir concurrent registrations (25 contested: Rust won {rust_won}, Elixir {beam_won}) took {elapsed:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------
// 5. two Rust nodes in one cluster; 6. figures
// ---------------------------------------------------------------------------------------

/// Sends `{self(), ping}` to `to` from a process of `node` and waits for `{ping, pong}`.
async fn ping_through(node: &Node, to: Dest) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.spawn(move |mut p: Process| async move {
        let me = p.pid().clone();
        p.send(to, Term::Tuple(vec![Term::Pid(me), Term::atom("ping")]));
        let got = p.receive_timeout(T).await;
        let _ = tx
            .send(got.is_some_and(|m| matches!(m.as_tuple(), Some([t, v]) if t.is_atom("ping") && v.is_atom("pong"))));
        erlnode::node::normal()
    });
    rx.await.unwrap_or(false)
}

#[test]
fn two_rust_nodes_in_one_cluster() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let opts = [NodeOpts::erlang().prefix("a"), NodeOpts::erlang().prefix("b"), NodeOpts::elixir().prefix("c")];
        let [a, b, c] = beam_cluster(&otp, &epmd, opts).await;
        wait_converged(&[M::Beam(&a), M::Beam(&b), M::Beam(&c)], &BTreeSet::new(), "the BEAM cluster").await;

        // figure: from connect until :global.sync() on the BEAM node returns with r1 synced
        let r1 = rust_node(&epmd, "r1").await;
        let r1n = r1.name().as_str().to_string();
        let t0 = Instant::now();
        assert!(r1.connect(&Atom::new(a.name())).await);
        let connected = t0.elapsed();
        let mut synced = None;
        assert!(
            wait_until_async(T, async || {
                let done =
                    M::Beam(&a).sync().await.is_ok() && M::Beam(&a).known().await.is_ok_and(|k| k.contains(&r1n));
                if done {
                    synced = Some(t0.elapsed());
                }
                done
            })
            .await
        );
        let five_beam = [M::Beam(&a), M::Beam(&b), M::Beam(&c), M::Rust(&r1)];
        wait_converged(&five_beam, &BTreeSet::new(), "r1 joined").await;
        eprintln!(
            "[figures] {otp}: r1 joining a 3-node cluster: connected in {connected:?}, a's :global.sync() returned with r1 synced after {:?}, \
             whole cluster synced after {:?}",
            synced.unwrap_or_default(),
            t0.elapsed()
        );

        let r2 = rust_node(&epmd, "r2").await;
        let r2n = r2.name().as_str().to_string();
        assert!(r2.connect(&Atom::new(b.name())).await);
        let all = [M::Beam(&a), M::Beam(&b), M::Beam(&c), M::Rust(&r1), M::Rust(&r2)];
        wait_converged(&all, &BTreeSet::new(), "r2 joined").await;

        // names from either Rust node resolve on the other and on BEAM
        let (p1, p2) = (idle(&r1), idle(&r2));
        assert!(services::register_name(&r1, &Atom::new("r1_n"), &p1).await);
        assert!(services::register_name(&r2, &Atom::new("r2_n"), &p2).await);
        assert_eq!(beam_register(&a, "a_n").await, "yes");
        let table = table_of([("a_n", a.name()), ("r1_n", &r1n), ("r2_n", &r2n)]);
        wait_converged(&all, &table, "names of both Rust nodes").await;
        assert_eq!(services::whereis_name(&r2, &Atom::new("r1_n")), Some(p1.clone()));
        assert_eq!(services::whereis_name(&r1, &Atom::new("r2_n")), Some(p2.clone()));
        assert!(ping_through(&r2, Dest::Global(Term::atom("r1_n"))).await, "r2 -> {{global, r1_n}}");
        assert!(ping_through(&r1, Dest::Global(Term::atom("r2_n"))).await, "r1 -> {{global, r2_n}}");
        let reply = c
            .eval_async("send(:global.whereis_name(:r1_n), {self(), :ping}); receive do {:ping, x} -> x after 5000 -> :timeout end")
            .await
            .unwrap();
        assert_eq!(reply, ":pong");
        // the same name from the other Rust node is refused
        assert!(!services::register_name(&r2, &Atom::new("r1_n"), &p2).await);

        // r1 goes away: its names vanish everywhere, the rest stays one cluster
        r1.shutdown();
        let rest = [M::Beam(&a), M::Beam(&b), M::Beam(&c), M::Rust(&r2)];
        let table = table_of([("a_n", a.name()), ("r2_n", &r2n)]);
        wait_converged(&rest, &table, "after r1 shut down").await;
        assert_eq!(services::whereis_name(&r2, &Atom::new("r1_n")), None);

        // figures: how long one registration takes, from Rust and from BEAM, in this cluster
        const N: u32 = 20;
        let t0 = Instant::now();
        for i in 0..N {
            let pid = idle(&r2);
            assert!(services::register_name(&r2, &Atom::new(&format!("tr{i}")), &pid).await);
        }
        let rust_each = t0.elapsed() / N;
        let beam_us = a
            .eval_async(&format!(
                "element(1, timer:tc(fun() -> [yes = global:register_name(list_to_atom(\"tb\" ++ integer_to_list(I)), \
                 spawn(fun() -> receive stop -> ok end end)) || I <- lists:seq(0, {})] end))",
                N - 1
            ))
            .await
            .unwrap();
        let beam_each = Duration::from_micros(beam_us.parse::<u64>().expect("microseconds")) / N;
        eprintln!(
            "[figures] {otp}: one registration in a cluster of 3 BEAM + 1 Rust: from Rust {rust_each:?}, from BEAM {beam_each:?} (mean of {N})"
        );
        let mut table = table;
        for i in 0..N {
            table.insert(format!("tr{i}={r2n}"));
            table.insert(format!("tb{i}={}", a.name()));
        }
        wait_converged(&rest, &table, "after the timed registrations").await;
    });
}
