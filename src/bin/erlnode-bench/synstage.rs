//! 9. GenStage and 10. syn (`scripts/bench genstage syn`).
//!
//! gen_stage 1.3.2 and syn 3.4.1 from `../shared/peers` run on two Elixir nodes
//! (`erlang_interop/bench_synstage.ex`): C, which consumes and drives, and B, the BEAM node
//! erlnode is compared with.
//!
//! - **9. GenStage**: a fresh Elixir consumer on C (`max_demand` 1000, GenStage's default,
//!   `min_demand` 500) subscribes to a Counter producer (the one of GenStage's docs) on the
//!   erlnode host (`erlnode::ecosystem::gen_stage::Producer`, what `erlnode serve
//!   --counter-stage` runs) or on B (`GenStage` in Elixir) and runs until it got N events.
//!   events/s to the consumer; the producer node's and the consumer node's CPU per event.
//! - **10. syn registrations**: a loop on the host (Rust, `Syn::register`) or on B
//!   (`:syn.register/4`) starts N processes and registers each under its own name, one after
//!   the other, as an application registering its processes does (one process per name: syn
//!   keeps a `bag` table by pid, so thousands of names on one pid make every BEAM insert scan
//!   them); every registration is acknowledged by the local scope process and broadcast to
//!   the other two nodes. registrations/s to the last acknowledgement; to the
//!   moment C sees all N (`:syn.registry_count(Scope, Node)`); the registering node's CPU.
//! - **10. syn lookups**. On BEAM `:syn.lookup/2` is a read of the caller's node's ETS table,
//!   so a remote caller is not comparable with it; two fair comparisons instead, both of 1000
//!   names that C registered (so both nodes hold the same replicated table):
//!   local lookups by one process of the node (Rust `Syn::lookup` on the host, `:syn.lookup/2`
//!   on B), and lookups served to 16 callers on C over `:erpc.call(Node, :syn, :lookup, ...)`
//!   (erlnode answers it from its `syn_registry` as `erlnode serve` does; B runs syn's own
//!   function), with the serving node's CPU per lookup.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cluster::{Cluster, Side, cpu_ns, eval, eval_raw, ints, start_beam};
use crate::harness::peers::PeerLibs;
use crate::harness::{BeamNode, elixir_atom, elixir_string};
use crate::report::{Goal, Unit};
use crate::{Run, interleave, row, side_name};

/// The scope every node of the scenario joins.
const SCOPE: &str = ":bench_syn";
/// The Counter producer's registered name, on both sides.
const COUNTER: &str = ":bench_counter";
/// Events per timed pass (quick, full).
const EVENTS: [u64; 2] = [200_000, 1_000_000];
/// Events of a warm-up pass.
const WARM_EVENTS: u64 = 20_000;
/// The consumer's `max_demand` (GenStage's default).
const MAX_DEMAND: u64 = 1000;
/// Names registered per timed pass (quick, full).
const REGISTRATIONS: [u64; 2] = [5_000, 20_000];
/// Names of a warm-up pass.
const WARM_REGISTRATIONS: u64 = 500;
/// Names C registers for the lookups.
const LOOKUP_KEYS: u64 = 1000;
/// Callers on C of the rpc lookups.
const RPC_CALLERS: u64 = 16;
/// How long any one wait may take.
const TIMEOUT_MS: u64 = 120_000;

/// Tags of registration passes, so no two passes use the same names.
static PASS: AtomicU64 = AtomicU64::new(0);

struct Nodes {
    /// Consumes, drives, and registers the names looked up.
    c: BeamNode,
    /// The BEAM producer and syn node.
    b: BeamNode,
}

fn start_node(c: &Cluster, libs: &PeerLibs, prefix: &str) -> Result<BeamNode, String> {
    let n = start_beam(&c.otp, &c.epmd, &c.ebin, libs.elixir_node().prefix(prefix))?;
    let helper = crate::harness::repo_root().join("erlang_interop/bench_synstage.ex");
    let helper = elixir_string(helper.to_str().ok_or("non-UTF-8 path")?);
    eval_raw(&n, &format!("Code.compile_file({helper}); :ok"), 60)?;
    Ok(n)
}

fn setup(c: &Cluster) -> Result<Nodes, String> {
    let libs = PeerLibs::get(&c.otp);
    let n = Nodes { c: start_node(c, &libs, "bsyn_c")?, b: start_node(c, &libs, "bsyn_b")? };
    for peer in [n.b.name(), c.host.name()] {
        let got = eval_raw(&n.c, &format!("Node.connect({})", elixir_atom(peer)), 30)?;
        if got != "true" {
            return Err(format!("{} cannot connect to {peer}: {got}", n.c.name()));
        }
    }
    let got = eval_raw(&n.b, &format!("Node.connect({})", elixir_atom(c.host.name())), 30)?;
    if got != "true" {
        return Err(format!("{} cannot connect to the host: {got}", n.b.name()));
    }
    Ok(n)
}

fn ctl(c: &Cluster, req: &str) -> String {
    format!("GenServer.call({{:bench_ctl, {}}}, {req}, :infinity)", elixir_atom(c.host.name()))
}

fn side_of<'a>(c: &'a Cluster, n: &'a Nodes, side: Side) -> (&'a str, u32) {
    match side {
        Side::Erlnode => (c.host.name(), c.host.os_pid()),
        Side::Beam => (n.b.name(), n.b.os_pid()),
    }
}

pub(crate) fn genstage(c: &Cluster, run: &mut Run) -> Result<(), String> {
    let n = setup(c)?;
    let got = eval_raw(&n.c, &ctl(c, &format!("{{:stage_counter, {COUNTER}}}")), 30)?;
    if got != ":ok" {
        return Err(format!("the host's Counter: {got}"));
    }
    eval_raw(&n.b, &format!("ErlnodeBenchStage.counter({COUNTER}); :ok"), 30)?;
    let n_timed = EVENTS[usize::from(!run.p.quick)];
    let mut notes = Vec::new();
    let s = interleave(run.p.passes, |side, warm| {
        let k = if warm { WARM_EVENTS } else { n_timed };
        let (node, pid) = side_of(c, &n, side);
        let expr =
            format!("ErlnodeBenchStage.consume({{{COUNTER}, {}}}, {k}, {MAX_DEMAND}, {TIMEOUT_MS})", elixir_atom(node));
        let (cpu0, c_cpu0) = (cpu_ns(pid), cpu_ns(n.c.os_pid()));
        let r = eval(&n.c, &expr, TIMEOUT_MS / 1000 + 60)?;
        let cpu = cpu_ns(pid).saturating_sub(cpu0);
        let c_cpu = cpu_ns(n.c.os_pid()).saturating_sub(c_cpu0);
        let v = ints(&r).filter(|v| v.len() == 2).ok_or_else(|| format!("consume gave {r}"))?;
        if v[0] < 0 {
            return Err(format!("the consumer got fewer than {k} events from {} in time", side_name(side)));
        }
        if v[0] > (k + MAX_DEMAND) as i64 {
            notes.push(format!(
                "GenStage from {}: {} events for a demand of {k} + {MAX_DEMAND}",
                side_name(side),
                v[0]
            ));
        }
        let events = v[0].max(1) as f64;
        Ok(vec![v[0] as f64 * 1e6 / v[1].max(1) as f64, cpu as f64 / events, c_cpu as f64 / events])
    })?;
    let name = "9. GenStage Counter producer → Elixir consumer on another node (max_demand 1000)";
    run.rows.push(row(name, "events/s", Unit::PerSec("events"), &s, 0, Goal::RatioAtLeast(1.5)));
    run.rows.push(row(name, "producer node CPU per event", Unit::Nanos, &s, 1, Goal::None));
    run.rows.push(row(name, "consumer node (C) CPU per event", Unit::Nanos, &s, 2, Goal::None));
    run.notes.extend(notes);
    Ok(())
}

pub(crate) fn syn(c: &Cluster, run: &mut Run) -> Result<(), String> {
    let n = setup(c)?;
    for node in [&n.c, &n.b] {
        eval_raw(node, &format!("ErlnodeBenchSyn.start({SCOPE})"), 30)?;
    }
    let nodes = [n.c.name(), n.b.name()].map(elixir_atom).join(", ");
    let joined = eval_raw(&n.c, &ctl(c, &format!("{{:syn_join, {SCOPE}, [{nodes}]}}")), 60)?;
    if joined != ":ok" {
        return Err(format!("the host did not join {SCOPE}: {joined}"));
    }
    // the names looked up: registered by C, so the host and B hold the same replicated table
    eval_raw(&n.c, &format!("ErlnodeBenchSyn.register_loop({SCOPE}, :look, {LOOKUP_KEYS}); :ok"), 60)?;
    let host_count = ctl(c, &format!("{{:syn_count, {SCOPE}}}"));
    for (what, expr) in [(c.host.name(), host_count.clone()), (n.b.name(), format!(":syn.registry_count({SCOPE})"))] {
        let node = if what == c.host.name() { &n.c } else { &n.b };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while eval_raw(node, &expr, 30)? != LOOKUP_KEYS.to_string() {
            if std::time::Instant::now() > deadline {
                return Err(format!("{what} does not see the {LOOKUP_KEYS} names C registered"));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    // registrations
    let n_timed = REGISTRATIONS[usize::from(!run.p.quick)];
    let mut notes = Vec::new();
    let s = interleave(run.p.passes, |side, warm| {
        let k = if warm { WARM_REGISTRATIONS } else { n_timed };
        let (node, pid) = side_of(c, &n, side);
        let tag = format!(":r{}", PASS.fetch_add(1, Ordering::Relaxed));
        let start = match side {
            Side::Erlnode => ctl(c, &format!("{{:syn_register, {SCOPE}, {tag}, {k}}}")),
            Side::Beam => format!(
                ":erpc.call({}, ErlnodeBenchSyn, :register_loop, [{SCOPE}, {tag}, {k}], :infinity)",
                elixir_atom(node)
            ),
        };
        let node = elixir_atom(node);
        let expr = format!(
            "t0 = System.monotonic_time(:microsecond); {{holder, us}} = {start}; \
             w = ErlnodeBenchSyn.wait_count({SCOPE}, {node}, {k}, {TIMEOUT_MS}); \
             all = System.monotonic_time(:microsecond) - t0; \
             :persistent_term.put(:bench_holder, holder); {{us, if(w < 0, do: -1, else: all)}}"
        );
        let cpu0 = cpu_ns(pid);
        let r = eval(&n.c, &expr, TIMEOUT_MS / 1000 + 60)?;
        let cpu = cpu_ns(pid).saturating_sub(cpu0);
        let v = ints(&r).filter(|v| v.len() == 2).ok_or_else(|| format!("registrations gave {r}"))?;
        // the holder's exit unregisters its names everywhere (untimed)
        let purge = format!(
            "Process.exit(:persistent_term.get(:bench_holder), :kill); \
             ErlnodeBenchSyn.wait_count({SCOPE}, {node}, 0, {TIMEOUT_MS})"
        );
        if eval_raw(&n.c, &purge, TIMEOUT_MS / 1000 + 60)? == "-1" {
            notes.push(format!("syn: the names registered on {} were not purged in time", side_name(side)));
        }
        if v[1] < 0 {
            notes.push(format!("syn: C did not see all {k} names registered on {} in time", side_name(side)));
        }
        Ok(vec![
            k as f64 * 1e6 / v[0].max(1) as f64,
            if v[1] < 0 { f64::NAN } else { k as f64 * 1e6 / v[1].max(1) as f64 },
            cpu as f64 / 1e3 / k as f64,
        ])
    })?;
    let name = "10. syn registrations: start a process, register it, next (3-node scope)";
    run.rows.push(row(name, "registrations/s (acknowledged)", Unit::PerSec("regs"), &s, 0, Goal::None));
    run.rows.push(row(name, "registrations/s (all seen on a third node)", Unit::PerSec("regs"), &s, 1, Goal::None));
    run.rows.push(row(name, "registering node CPU per registration", Unit::MicrosF, &s, 2, Goal::None));

    // local lookups
    let dur = run.p.dur_ms * 2;
    let s = interleave(run.p.passes, |side, warm| {
        let d = if warm { 100 } else { dur };
        let (node, _) = side_of(c, &n, side);
        let expr = match side {
            Side::Erlnode => ctl(c, &format!("{{:syn_lookup_loop, {SCOPE}, :look, {LOOKUP_KEYS}, {d}}}")),
            Side::Beam => format!(
                ":erpc.call({}, ErlnodeBenchSyn, :lookup_loop, [{SCOPE}, :look, {LOOKUP_KEYS}, {d}], :infinity)",
                elixir_atom(node)
            ),
        };
        let r = eval(&n.c, &expr, d / 1000 + 60)?;
        let v = ints(&r).filter(|v| v.len() == 3).ok_or_else(|| format!("lookup loop gave {r}"))?;
        if v[2] > 0 {
            notes.push(format!("syn local lookups on {}: {} misses of {}", side_name(side), v[2], v[0]));
        }
        Ok(vec![v[0] as f64 * 1e6 / v[1].max(1) as f64])
    })?;
    let name = "10. syn lookups by one process on the node (1000 names)";
    run.rows.push(row(name, "lookups/s", Unit::PerSec("lookups"), &s, 0, Goal::None));

    // lookups over rpc
    let s = interleave(run.p.passes, |side, warm| {
        let d = if warm { 100 } else { dur };
        let (node, pid) = side_of(c, &n, side);
        let expr = format!(
            "ErlnodeBenchSyn.rpc_lookups({}, {SCOPE}, :look, {LOOKUP_KEYS}, {RPC_CALLERS}, {d})",
            elixir_atom(node)
        );
        let cpu0 = cpu_ns(pid);
        let r = eval(&n.c, &expr, d / 1000 + 60)?;
        let cpu = cpu_ns(pid).saturating_sub(cpu0);
        let v = ints(&r).filter(|v| v.len() == 3).ok_or_else(|| format!("rpc lookups gave {r}"))?;
        if v[2] > 0 {
            notes.push(format!("syn rpc lookups on {}: {} misses of {}", side_name(side), v[2], v[0]));
        }
        Ok(vec![v[0] as f64 * 1e6 / v[1].max(1) as f64, cpu as f64 / 1e3 / v[0].max(1) as f64])
    })?;
    let name = "10. syn lookups served over :erpc to 16 callers on another node (1000 names)";
    run.rows.push(row(name, "lookups/s", Unit::PerSec("lookups"), &s, 0, Goal::None));
    run.rows.push(row(name, "serving node CPU per lookup", Unit::MicrosF, &s, 1, Goal::None));
    run.notes.extend(notes);
    Ok(())
}
