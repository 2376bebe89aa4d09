//! 7. Phoenix.PubSub (`scripts/bench phoenix`).
//!
//! Phoenix.PubSub 2.2.0 from `../shared/peers` runs on three Elixir nodes
//! (`erlang_interop/bench_phoenix.ex`), all with `{Phoenix.PubSub, name: BenchPhx.PubSub}`, and
//! the erlnode host joins the same PubSub.
//!
//! - **Broadcasts into 1000 Elixir subscribers** (500 on each of two nodes, S1 and S2): the
//!   broadcaster is the erlnode host or the BEAM node P, each broadcasting `{msg, I}` in a loop;
//!   a pass ends when every subscriber got every broadcast. broadcasts/s = broadcasts / time to
//!   the last delivery; the broadcaster's CPU per broadcast.
//! - **Delivery to 1000 subscribers** on the erlnode host (Rust processes) or on P (Elixir
//!   processes): S1 broadcasts on a topic only that side subscribes to; deliveries/s to the last
//!   delivery, and the receiving node's CPU per delivery.

use crate::cluster::{Cluster, Side, cpu_ns, eval, eval_raw, ints, start_beam};
use crate::harness::peers::PeerLibs;
use crate::harness::{BeamNode, elixir_atom, elixir_string};
use crate::report::{Goal, Unit};
use crate::{Run, interleave, row, side_name};

/// Subscribers on each of S1 and S2.
const SUBS_PER_NODE: u64 = 500;
/// Subscribers of the delivery measurement.
const DELIVERY_SUBS: u64 = 1000;
/// Broadcasts per timed pass (quick, full): each is 1000 deliveries, so a pass is a few million
/// deliveries, which the receiving nodes take seconds to make.
const BROADCASTS: [u64; 2] = [2_000, 10_000];
/// Broadcasts of a warm-up pass.
const WARM_BROADCASTS: u64 = 200;
/// The longest a broadcaster loops (the count ends a pass first).
const MAX_SEND_MS: u64 = 60_000;
/// How long a pass may wait for its last delivery.
const DELIVERY_TIMEOUT_MS: u64 = 120_000;

struct Phx {
    /// The BEAM broadcaster, with the 1000 Elixir subscribers of the delivery measurement.
    p: BeamNode,
    /// S1 drives and, with S2, holds the 1000 subscribers of the broadcast measurement.
    s1: BeamNode,
    s2: BeamNode,
}

fn start_node(c: &Cluster, libs: &PeerLibs, prefix: &str) -> Result<BeamNode, String> {
    let n = start_beam(&c.otp, &c.epmd, &c.ebin, libs.elixir_node().prefix(prefix))?;
    let helper = crate::harness::repo_root().join("erlang_interop/bench_phoenix.ex");
    let helper = elixir_string(helper.to_str().ok_or("non-UTF-8 path")?);
    eval_raw(&n, &format!("Code.compile_file({helper}); :ok"), 60)?;
    eval_raw(&n, "ErlnodeBenchPhx.start()", 30)?;
    Ok(n)
}

fn setup(c: &Cluster) -> Result<Phx, String> {
    let libs = PeerLibs::get(&c.otp);
    let phx = Phx {
        p: start_node(c, &libs, "bphx_p")?,
        s1: start_node(c, &libs, "bphx_s")?,
        s2: start_node(c, &libs, "bphx_s")?,
    };
    let host = elixir_atom(c.host.name());
    for peer in [phx.p.name(), phx.s2.name(), c.host.name()] {
        let got = eval_raw(&phx.s1, &format!("Node.connect({})", elixir_atom(peer)), 30)?;
        if got != "true" {
            return Err(format!("{} cannot connect to {peer}: {got}", phx.s1.name()));
        }
    }
    let nodes = [phx.p.name(), phx.s1.name(), phx.s2.name()].map(elixir_atom).join(", ");
    let joined =
        eval_raw(&phx.s1, &format!("GenServer.call({{:bench_ctl, {host}}}, {{:phx_join, [{nodes}]}}, 60_000)"), 90)?;
    if joined != ":ok" {
        return Err(format!("the host did not join BenchPhx.PubSub: {joined}"));
    }
    for s in [&phx.s1, &phx.s2] {
        eval_raw(s, &format!("ErlnodeBenchPhx.subscribe(\"bench\", {SUBS_PER_NODE})"), 60)?;
    }
    eval_raw(&phx.p, &format!("ErlnodeBenchPhx.subscribe(\"to_beam\", {DELIVERY_SUBS})"), 60)?;
    let got = eval_raw(
        &phx.s1,
        &format!("GenServer.call({{:bench_ctl, {host}}}, {{:phx_subscribe, \"to_rust\", {DELIVERY_SUBS}}}, 60_000)"),
        90,
    )?;
    if got != ":ok" {
        return Err(format!("the host's subscribers: {got}"));
    }
    // every node sees the 4 pool workers (3 BEAM nodes and the host)
    let members = "length(:pg.get_members(Phoenix.PubSub, BenchPhx.PubSub.Adapter))";
    for n in [&phx.p, &phx.s1, &phx.s2] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while eval_raw(n, members, 10)? != "4" {
            if std::time::Instant::now() > deadline {
                return Err(format!("{} does not see 4 pool workers", n.name()));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    Ok(phx)
}

/// One timed pass on S1: -> [sent, send µs, delivered, all-delivered µs]
fn measure(phx: &Phx, start: &str, counters: &str, per_broadcast: u64) -> Result<Vec<i64>, String> {
    let expr =
        format!("ErlnodeBenchPhx.measure(fn -> {start} end, [{counters}], {per_broadcast}, {DELIVERY_TIMEOUT_MS})");
    let r = eval(&phx.s1, &expr, DELIVERY_TIMEOUT_MS / 1000 + 120)?;
    ints(&r).filter(|v| v.len() == 4).ok_or_else(|| format!("measure gave {r}"))
}

pub(crate) fn phoenix(c: &Cluster, run: &mut Run) -> Result<(), String> {
    let phx = setup(c)?;
    let host = elixir_atom(c.host.name());
    let (p, s2) = (elixir_atom(phx.p.name()), elixir_atom(phx.s2.name()));
    let n_timed = BROADCASTS[usize::from(!run.p.quick)];
    let mut notes = Vec::new();

    let s = interleave(run.p.passes, |side, warm| {
        let n = if warm { WARM_BROADCASTS } else { n_timed };
        let (start, pid) = match side {
            Side::Erlnode => (
                format!(
                    "GenServer.call({{:bench_ctl, {host}}}, {{:phx_broadcast, \"bench\", {n}, {MAX_SEND_MS}}}, :infinity)"
                ),
                c.host.os_pid(),
            ),
            Side::Beam => (
                format!(
                    ":erpc.call({p}, ErlnodeBenchPhx, :broadcast_loop, [\"bench\", {n}, {MAX_SEND_MS}], :infinity)"
                ),
                phx.p.os_pid(),
            ),
        };
        let counters =
            format!("fn -> ErlnodeBenchPhx.count() end, fn -> :erpc.call({s2}, ErlnodeBenchPhx, :count, []) end");
        let cpu0 = cpu_ns(pid);
        let v = measure(&phx, &start, &counters, 2 * SUBS_PER_NODE)?;
        let cpu = cpu_ns(pid).saturating_sub(cpu0);
        let (sent, send_us, delivered, all_us) = (v[0], v[1], v[2], v[3]);
        if delivered != sent * (2 * SUBS_PER_NODE) as i64 {
            notes.push(format!("broadcast from {}: {delivered} deliveries for {sent} broadcasts", side_name(side)));
        }
        Ok(vec![
            sent as f64 * 1e6 / all_us.max(1) as f64,
            cpu as f64 / 1e3 / sent.max(1) as f64,
            sent as f64 * 1e6 / send_us.max(1) as f64,
        ])
    })?;
    let name = "7. Phoenix.PubSub broadcasts into 1000 Elixir subscribers on 2 nodes";
    run.rows.push(row(name, "broadcasts/s", Unit::PerSec("broadcasts"), &s, 0, Goal::RatioAtLeast(1.5)));
    run.rows.push(row(name, "broadcaster CPU per broadcast", Unit::MicrosF, &s, 1, Goal::None));
    run.rows.push(row(name, "broadcaster send rate", Unit::PerSec("broadcasts"), &s, 2, Goal::None));

    let s = interleave(run.p.passes, |side, warm| {
        let n = if warm { WARM_BROADCASTS } else { n_timed };
        let (topic, counter, pid) = match side {
            Side::Erlnode => {
                ("to_rust", format!("fn -> GenServer.call({{:bench_ctl, {host}}}, :phx_count) end"), c.host.os_pid())
            }
            Side::Beam => {
                ("to_beam", format!("fn -> :erpc.call({p}, ErlnodeBenchPhx, :count, []) end"), phx.p.os_pid())
            }
        };
        let start = format!("ErlnodeBenchPhx.broadcast_loop(\"{topic}\", {n}, {MAX_SEND_MS})");
        let cpu0 = cpu_ns(pid);
        let v = measure(&phx, &start, &counter, DELIVERY_SUBS)?;
        let cpu = cpu_ns(pid).saturating_sub(cpu0);
        let (sent, delivered, all_us) = (v[0], v[2], v[3]);
        if delivered != sent * DELIVERY_SUBS as i64 {
            notes.push(format!("delivery to {}: {delivered} deliveries for {sent} broadcasts", side_name(side)));
        }
        Ok(vec![delivered as f64 * 1e6 / all_us.max(1) as f64, cpu as f64 / 1e3 / delivered.max(1) as f64])
    })?;
    let name = "7. Phoenix.PubSub delivery to 1000 subscribers on the node";
    run.rows.push(row(name, "deliveries/s", Unit::PerSec("msgs"), &s, 0, Goal::RatioAtLeast(1.0)));
    run.rows.push(row(name, "receiving node CPU per delivery", Unit::MicrosF, &s, 1, Goal::None));
    run.notes.extend(notes);
    Ok(())
}
