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
    Node::start(NodeConfig::new(unique_name(prefix), DEFAULT_COOKIE).epmd_port(epmd.port())).await.expect("starts")
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
        let s = if s == "[]" { String::new() } else { s };
        let body = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).ok_or_else(|| format!("{}: not a string: {s}", n.name()))?;
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
        let a = BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("a"));
        let b = BeamNode::start(&otp, &epmd, NodeOpts::elixir().prefix("b"));
        let c = BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix("c"));
        beam_ping(&b, a.name()).await;
        beam_ping(&c, a.name()).await;
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
        beam_ping(&c2, a.name()).await;
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
            .eval_async("P = global:whereis_name(r_name), P ! {self(), ping}, receive {ping, X} -> X after 5000 -> timeout end")
            .await
            .unwrap();
        assert_eq!(reply, "pong");
    });
}
