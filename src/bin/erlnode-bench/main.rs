//! `erlnode-bench`: erlnode against BEAM itself, side by side, in one run.
//!
//! ```text
//! scripts/bench [--quick] [--tls] [all|kv|ingest|sends|pubsub|cost|scale|phoenix|connect|genstage|syn|join|wire]...
//! cargo run --release --bin erlnode-bench -- --quick all     (build erlnode too: scripts/bench does)
//! ```
//!
//! Every scenario measures the same work served by erlnode (an `erlnode-bench host` process
//! running the library's KV and PubSub) and by a BEAM node (the article's KV and PubSub in
//! Elixir), driven by the same Erlang load generator on a BEAM client node
//! (`erlang_interop/erlnode_bench.erl`). Passes alternate the two (A B, B A, A B, ...); the
//! table shows medians and erlnode / BEAM. Results go to stdout and to
//! `target/bench-cluster.md`. Everything runs on loopback against a private EPMD, with OTP
//! provisioned by `scripts/provision-otp` (`--otp`, default 25).

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../../tests/common/mod.rs"]
mod harness;

mod cluster;
mod host;
mod join;
mod phoenix;
mod report;
mod synstage;
mod wire;

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use cluster::{Cluster, Host, Side, eval, ints};
use harness::{DEFAULT_COOKIE, erlang_atom, unique_name};
use report::{Goal, Row, Unit};

/// erlnode against BEAM, side by side.
#[derive(Parser, Debug)]
#[command(name = "erlnode-bench")]
struct Cli {
    #[command(subcommand)]
    host: Option<HostCmd>,
    /// Scenarios to run (default: all).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// Short passes (about two minutes for everything).
    #[arg(long)]
    quick: bool,
    /// Passes per measurement (default 3 quick, 5 full).
    #[arg(long)]
    passes: Option<usize>,
    /// OTP major version of the BEAM nodes.
    #[arg(long, default_value_t = 25)]
    otp: u32,
    /// Where the Markdown table goes.
    #[arg(long, default_value = "target/bench-cluster.md")]
    out: std::path::PathBuf,
    /// Every node, BEAM and erlnode, runs `-proto_dist inet_tls` with certificates made for the
    /// run by the `openssl` command (`target/bench-cluster/tls`).
    #[arg(long)]
    tls: bool,
}

/// How an erlnode process of the benchmark starts its node.
#[derive(clap::Args, Debug)]
struct NodeArgs {
    #[arg(long)]
    sname: String,
    #[arg(long)]
    cookie: String,
    #[arg(long)]
    epmd_port: u16,
    /// Runtime worker threads, as `erlnode serve --threads`.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Subcommand, Debug)]
enum HostCmd {
    /// (internal) Run the erlnode side: a node with bench_ctl and bench_sink.
    Host {
        #[command(flatten)]
        node: NodeArgs,
        /// Run as a hidden node.
        #[arg(long)]
        hidden: bool,
        /// `-proto_dist inet_tls` with this `-ssl_dist_optfile`.
        #[arg(long)]
        ssl_dist_optfile: Option<std::path::PathBuf>,
    },
    /// The erlnode joiner of scenario 11 (`join.rs`).
    Joiner {
        #[command(flatten)]
        node: NodeArgs,
        /// The member to connect to.
        #[arg(long)]
        first: String,
        /// Members to be connected to and synced with.
        #[arg(long)]
        expect: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    All,
    /// 1. GenServer.call into KV, 1/16/64 callers.
    Kv,
    /// 2. One-way ingest into a registered counter.
    Ingest,
    /// 3. Rust to BEAM and Rust to Rust sends.
    Sends,
    /// 4. PubSub fan-out, 10 and 1000 subscribers.
    Pubsub,
    /// 5. Cost: idle RSS, time to EPMD, ping, idle processes.
    Cost,
    /// 6. Scale: 1/2/4 client nodes; 10/1k/100k subscribers.
    Scale,
    /// 7. Phoenix.PubSub: broadcasts into 1000 Elixir subscribers, delivery to 1000 subscribers.
    Phoenix,
    /// 8. Connection setup: connect + disconnect from a hidden client, over and over.
    Connect,
    /// 9. GenStage: events/s from a Counter producer into an Elixir consumer on another node.
    Genstage,
    /// 10. syn: registrations/s, local lookups/s, lookups/s served over erpc.
    Syn,
    /// 11. Joining a cluster of 8 to 100 BEAM nodes (full mesh, global and pg).
    Join,
    /// Scenario 12, wire: the KV and ingest loads with syscalls, wake-ups and TCP segments counted on
    /// the client and the server (needs `perf` and `ss`; not part of `all`).
    Wire,
}

/// Sizes and durations of one run.
struct Params {
    quick: bool,
    passes: usize,
    /// Length of one timed measurement.
    dur_ms: u64,
    keys: u32,
    small_n: u64,
    kib1_n: u64,
    kib64_n: u64,
    send_n: u64,
    idle_procs: u64,
    big_subs: u64,
}

impl Params {
    fn new(quick: bool, passes: Option<usize>) -> Params {
        Params {
            quick,
            passes: passes.unwrap_or(if quick { 3 } else { 5 }).max(1),
            dur_ms: if quick { 300 } else { 1500 },
            keys: 1000,
            small_n: if quick { 100_000 } else { 1_000_000 },
            kib1_n: if quick { 50_000 } else { 300_000 },
            kib64_n: if quick { 2_000 } else { 20_000 },
            send_n: if quick { 300_000 } else { 2_000_000 },
            idle_procs: 100_000,
            big_subs: if quick { 10_000 } else { 100_000 },
        }
    }
}

/// Upper bound of calls per KV caller (the duration ends a pass first).
const MAX_CALLS_PER_CALLER: u64 = 1_000_000;
/// Upper bound of broadcasts per pass.
const MAX_BROADCASTS: u64 = 1_000_000;

struct Run {
    p: Params,
    rows: Vec<Row>,
    notes: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(HostCmd::Host { node: NodeArgs { sname, cookie, epmd_port, threads }, hidden, ssl_dist_optfile }) =
        &cli.host
    {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
        return match host::run(sname, cookie, *epmd_port, *hidden, *threads, ssl_dist_optfile.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("erlnode-bench host: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(HostCmd::Joiner { node: NodeArgs { sname, cookie, epmd_port, threads }, first, expect }) = &cli.host {
        return match join::run_joiner(sname, cookie, *epmd_port, first, *expect, *threads) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("erlnode-bench joiner: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut scenarios = cli.scenarios.clone();
    if scenarios.is_empty() || scenarios.contains(&Scenario::All) {
        scenarios = vec![
            Scenario::Cost,
            Scenario::Kv,
            Scenario::Ingest,
            Scenario::Sends,
            Scenario::Scale,
            Scenario::Phoenix,
            Scenario::Genstage,
            Scenario::Syn,
            Scenario::Join,
        ];
    }
    if scenarios.contains(&Scenario::Scale) {
        // scale runs the PubSub sizes of scenario 4 too
        scenarios.retain(|s| *s != Scenario::Pubsub);
    }
    if cli.tls {
        if let Err(e) = cluster::enable_tls() {
            eprintln!("erlnode-bench: --tls: {e}");
            return ExitCode::FAILURE;
        }
    }
    let started = Instant::now();
    let load_before = loadavg();
    let mut run = Run { p: Params::new(cli.quick, cli.passes), rows: Vec::new(), notes: Vec::new() };
    let result = run_all(&mut run, &scenarios, cli.otp, &cli.out, started, &load_before);
    let text = write_report(&run, cli.otp, &cli.out, started, &load_before, result.as_ref().err());
    println!("{text}");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("erlnode-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_all(
    run: &mut Run,
    scenarios: &[Scenario],
    otp: u32,
    out: &std::path::Path,
    started: Instant,
    load_before: &str,
) -> Result<(), String> {
    let mut cluster = Cluster::start(otp)?;
    for s in scenarios {
        let t = Instant::now();
        eprintln!("[bench] {s:?} ...");
        let r = match s {
            Scenario::Kv => kv(&cluster, run),
            Scenario::Ingest => ingest(&cluster, run),
            Scenario::Sends => sends(&cluster, run),
            Scenario::Pubsub => pubsub(&cluster, run, false),
            Scenario::Cost => cost(&cluster, run),
            Scenario::Scale => scale(&mut cluster, run),
            Scenario::Phoenix => phoenix::phoenix(&cluster, run),
            Scenario::Connect => connect(&cluster, run),
            Scenario::Genstage => synstage::genstage(&cluster, run),
            Scenario::Syn => synstage::syn(&cluster, run),
            Scenario::Join => join::join(&cluster, run),
            Scenario::Wire => wire::wire(&cluster, run),
            Scenario::All => Ok(()),
        };
        eprintln!("[bench] {s:?} done in {:.1} s", t.elapsed().as_secs_f64());
        if let Err(e) = r {
            run.notes.push(format!("{s:?} failed: {e}"));
            eprintln!("[bench] {s:?} failed: {e}");
        }
        // the table so far, in case a later scenario hangs the run
        write_report(run, otp, out, started, load_before, None);
    }
    Ok(())
}

fn write_report(
    run: &Run,
    otp: u32,
    out: &std::path::Path,
    started: Instant,
    load_before: &str,
    err: Option<&String>,
) -> String {
    let mut header = vec![
        format!(
            "mode: {}, {} passes, {} ms per timed pass, OTP {otp}",
            if run.p.quick { "quick" } else { "full" },
            run.p.passes,
            run.p.dur_ms
        ),
        format!("machine: {} CPUs; load average {load_before} at start, {} at end", cpus(), loadavg()),
        format!("wall time: {:.0} s", started.elapsed().as_secs_f64()),
    ];
    if let Some(exe) = cluster::baseline_exe() {
        header.push(format!(
            "**the BEAM column is erlnode built as {} (ERLNODE_BENCH_BASELINE)**: a before/after in one run",
            exe.display()
        ));
        for (k, v) in cluster::baseline_env() {
            header.push(format!("the baseline host runs with {k}={v} (ERLNODE_BENCH_BASELINE_ENV)"));
        }
    }
    for (var, _, what) in host::SPIN_KNOBS {
        if let Ok(us) = std::env::var(var) {
            header.push(format!("erlnode hosts {} ({var})", what.replace("{}", &us)));
        }
    }
    let host_threads = cluster::host_threads();
    if host_threads != 0 {
        header.push(format!("erlnode hosts with {host_threads} runtime thread(s) (ERLNODE_BENCH_HOST_THREADS)"));
    }
    if let Some(f) = cluster::tls_optfile() {
        header.push(format!("every node runs -proto_dist inet_tls -ssl_dist_optfile {} (--tls)", f.display()));
    }
    let client_args = cluster::client_args();
    if !client_args.is_empty() {
        header.push(format!("client nodes started with `{}` (ERLNODE_BENCH_CLIENT_ARGS)", client_args.join(" ")));
    }
    if let Some(e) = err {
        header.push(format!("run failed: {e}"));
    }
    let text = report::markdown("erlnode vs BEAM: cluster benchmarks", &header, &run.rows, &run.notes);
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(out, &text) {
        eprintln!("[bench] cannot write {}: {e}", out.display());
    }
    text
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
}

/// Runs `f` for both sides, `passes` times, alternating which goes first (A B, B A, ...),
/// after one unrecorded warm-up each (`warm = true`). Returns per-side, per-pass samples.
fn interleave(
    passes: usize,
    mut f: impl FnMut(Side, bool) -> Result<Vec<f64>, String>,
) -> Result<[Vec<Vec<f64>>; 2], String> {
    for side in Side::BOTH {
        f(side, true)?;
    }
    let mut out: [Vec<Vec<f64>>; 2] = [Vec::new(), Vec::new()];
    for pass in 0..passes {
        let order = if pass % 2 == 0 { Side::BOTH } else { [Side::Beam, Side::Erlnode] };
        for side in order {
            let sample = f(side, false)?;
            out[side as usize].push(sample);
        }
    }
    Ok(out)
}

/// Column `i` of every pass.
fn col(samples: &[Vec<f64>], i: usize) -> Vec<f64> {
    samples.iter().map(|s| s.get(i).copied().unwrap_or(f64::NAN)).collect()
}

fn row(scenario: &str, metric: &str, unit: Unit, s: &[Vec<Vec<f64>>; 2], i: usize, goal: Goal) -> Row {
    Row { scenario: scenario.into(), metric: metric.into(), unit, erlnode: col(&s[0], i), beam: col(&s[1], i), goal }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Erlnode => "erlnode",
        Side::Beam => "BEAM",
    }
}

// ------------------------------------------------------------------------------------------
// 1. KV calls
// ------------------------------------------------------------------------------------------

/// `kv_pass` from the driver: -> [calls/s, p50 µs, p99 µs, server RSS, server CPU µs per call,
/// client CPU µs per call]
fn kv_pass(
    c: &Cluster,
    side: Side,
    nodes: usize,
    callers: u32,
    p: &Params,
    warm: bool,
    run_notes: &mut Vec<String>,
) -> Result<Vec<f64>, String> {
    let (keys, dur_ms) = (p.keys, if warm { 100 } else { p.dur_ms });
    let expr = format!(
        "erlnode_bench:kv_pass({}, {}, {callers}, {keys}, {MAX_CALLS_PER_CALLER}, {dur_ms})",
        c.ctl(side),
        c.client_list(nodes)
    );
    let (r, cpu, ccpu) = c.cpu_of(side, nodes, || eval(c.driver(), &expr, dur_ms / 1000 + 120));
    let r = r?;
    let v = ints(&r).filter(|v| v.len() == 6).ok_or_else(|| format!("kv_pass gave {r}"))?;
    let (calls, elapsed, p50, p99, errors, rss) = (v[0], v[1], v[2], v[3], v[4], v[5]);
    if errors > 0 {
        run_notes.push(format!(
            "KV on {} ({nodes} nodes x {callers} callers): {errors} of {calls} calls failed",
            side_name(side)
        ));
    }
    let per_call = |ns: u64| ns as f64 / 1e3 / calls.max(1) as f64;
    Ok(vec![
        calls as f64 * 1e6 / elapsed.max(1) as f64,
        p50 as f64,
        p99 as f64,
        rss as f64,
        per_call(cpu),
        per_call(ccpu),
    ])
}

fn kv(c: &Cluster, run: &mut Run) -> Result<(), String> {
    for callers in [1u32, 16, 64] {
        let mut notes = Vec::new();
        let s = interleave(run.p.passes, |side, warm| kv_pass(c, side, 1, callers, &run.p, warm, &mut notes))?;
        run.notes.extend(notes);
        let name = format!("1. KV call, {callers} caller{}", if callers == 1 { "" } else { "s" });
        let goal = if callers == 1 { 1.2 } else { 1.5 };
        run.rows.push(row(&name, "calls/s", Unit::PerSec("calls"), &s, 0, Goal::RatioAtLeast(goal)));
        run.rows.push(row(&name, "p50 latency", Unit::Micros, &s, 1, Goal::None));
        run.rows.push(row(&name, "p99 latency", Unit::Micros, &s, 2, Goal::RatioAtMost(1.0)));
        run.rows.push(row(&name, "server CPU per call", Unit::MicrosF, &s, 4, Goal::None));
        run.rows.push(row(&name, "client node CPU per call", Unit::MicrosF, &s, 5, Goal::None));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// 8. Connection setup
// ------------------------------------------------------------------------------------------

/// Connections set up per pass (each: EPMD lookup, TCP connect, TLS handshake under `--tls`,
/// distribution handshake; then `erlang:disconnect_node/1`).
const CONNECTS_PER_PASS: [u32; 2] = [20, 100];

/// `net_kernel:connect_node/1` from a fresh hidden client node (no `global` traffic on the
/// connection), as the client measures it: p50 and p99 of `CONNECTS_PER_PASS` setups.
fn connect(c: &Cluster, run: &mut Run) -> Result<(), String> {
    let opts = harness::NodeOpts::erlang().prefix("bconn").hidden();
    let client = cluster::start_beam(&c.otp, &c.epmd, &c.ebin, opts)?;
    let k = CONNECTS_PER_PASS[usize::from(!run.p.quick)];
    let s = interleave(run.p.passes, |side, warm| {
        let k = if warm { 5 } else { k };
        let n = erlang_atom(c.server(side));
        let r = eval(&client, &format!("erlnode_bench:connect_times({n}, {k})"), 120)?;
        let v = ints(&r).filter(|v| v.len() == 3).ok_or_else(|| format!("connect gave {r}"))?;
        if v[2] > 0 {
            return Err(format!("{} of {k} connections to {} failed", v[2], side_name(side)));
        }
        Ok(vec![v[0] as f64, v[1] as f64])
    })?;
    let name = format!("8. connection setup{}", if cluster::tls_optfile().is_some() { " (TLS)" } else { "" });
    run.rows.push(row(&name, "p50 connect", Unit::Micros, &s, 0, Goal::None));
    run.rows.push(row(&name, "p99 connect", Unit::Micros, &s, 1, Goal::None));
    Ok(())
}

// ------------------------------------------------------------------------------------------
// 2. One-way ingest
// ------------------------------------------------------------------------------------------

fn ingest(c: &Cluster, run: &mut Run) -> Result<(), String> {
    let kinds = [
        ("{msg, i}", "small", run.p.small_n),
        ("1 KiB binary", "{bin, 1024}", run.p.kib1_n),
        ("64 KiB binary", "{bin, 65536}", run.p.kib64_n),
    ];
    for (label, kind, n) in kinds {
        let mut notes = Vec::new();
        let s = interleave(run.p.passes, |side, warm| {
            let (n, dur) = if warm { (n / 10, 100) } else { (n, run.p.dur_ms * 2) };
            let expr =
                format!("erlnode_bench:ingest({{bench_sink, {}}}, {kind}, {n}, {dur})", erlang_atom(c.server(side)));
            let (r, cpu, ccpu) = c.cpu_of(side, 1, || eval(c.driver(), &expr, dur / 1000 + 120));
            let r = r?;
            let v = ints(&r).filter(|v| v.len() == 3).ok_or_else(|| format!("ingest gave {r}"))?;
            if v[0] != v[1] {
                notes.push(format!("ingest {label} into {}: sent {}, counted {}", side_name(side), v[0], v[1]));
            }
            let per_msg = |ns: u64| ns as f64 / 1e3 / v[1].max(1) as f64;
            Ok(vec![v[1] as f64 * 1e6 / v[2].max(1) as f64, per_msg(cpu), per_msg(ccpu)])
        })?;
        run.notes.extend(notes);
        let name = format!("2. ingest BEAM → server, {label}");
        run.rows.push(row(&name, "msgs/s", Unit::PerSec("msgs"), &s, 0, Goal::RatioAtLeast(1.5)));
        run.rows.push(row(&name, "server CPU per msg", Unit::MicrosF, &s, 1, Goal::None));
        run.rows.push(row(&name, "client node CPU per msg", Unit::MicrosF, &s, 2, Goal::None));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// 3. Rust to BEAM, Rust to Rust
// ------------------------------------------------------------------------------------------

fn sends(c: &Cluster, run: &mut Run) -> Result<(), String> {
    let c2 = c.clients.get(1).ok_or("no second client")?;
    // (label, erlnode sender -> receiver, BEAM sender -> receiver)
    let cases = [
        ("3. Rust → BEAM (BEAM: BEAM → BEAM)", c.driver().name(), c.driver().name(), None),
        ("3. Rust → Rust (BEAM: BEAM → BEAM)", c.host2.name(), c2.name(), Some(1e6)),
    ];
    for (label, to_from_rust, to_from_beam, floor) in cases {
        let mut notes = Vec::new();
        let s = interleave(run.p.passes, |side, warm| {
            let n = if warm { run.p.send_n / 10 } else { run.p.send_n };
            let dur = if warm { 100 } else { run.p.dur_ms * 2 };
            let to = match side {
                Side::Erlnode => to_from_rust,
                Side::Beam => to_from_beam,
            };
            let expr = format!(
                "erlnode_bench:burst_from({}, {{bench_sink, {}}}, small, {n}, {dur})",
                c.ctl(side),
                erlang_atom(to)
            );
            let r = eval(c.driver(), &expr, dur / 1000 + 120)?;
            let v = ints(&r).filter(|v| v.len() == 2).ok_or_else(|| format!("burst gave {r}"))?;
            if v[0] < 0 {
                notes.push(format!("{label}: {} sink did not answer", side_name(side)));
            }
            Ok(vec![v[0] as f64 * 1e6 / v[1].max(1) as f64])
        })?;
        run.notes.extend(notes);
        let goal = match floor {
            Some(f) => Goal::AtLeast(f),
            None => Goal::None,
        };
        run.rows.push(row(label, "small msgs/s", Unit::PerSec("msgs"), &s, 0, goal));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// 4. PubSub fan-out (and 6., subscriber scale)
// ------------------------------------------------------------------------------------------

/// -> [broadcasts/s, deliveries/s, server RSS with subscribers, heap bytes per subscriber, setup ms]
fn pubsub_pass(c: &Cluster, side: Side, subs: u64, dur_ms: u64, notes: &mut Vec<String>) -> Result<Vec<f64>, String> {
    let setup_ms = if subs > 10_000 { 240_000 } else { 120_000 };
    let expr = format!(
        "erlnode_bench:pubsub({}, {}, {subs}, {MAX_BROADCASTS}, {dur_ms}, {setup_ms})",
        c.ctl(side),
        c.client_list(2)
    );
    let r = eval(c.driver(), &expr, (dur_ms + setup_ms) / 1000 + 300)?;
    let Some(v) = ints(&r).filter(|v| v.len() == 8) else {
        notes.push(format!("PubSub {subs} subscribers on {}: {r}", side_name(side)));
        return Ok(vec![f64::NAN; 5]);
    };
    let (b, elapsed, delivered, setup_us, rss1, heap0, heap1) = (v[0], v[1], v[2], v[3], v[5], v[6], v[7]);
    if delivered != b * subs as i64 {
        notes.push(format!(
            "PubSub {subs} subscribers on {}: {delivered} deliveries for {b} broadcasts",
            side_name(side)
        ));
    }
    let secs = elapsed.max(1) as f64 / 1e6;
    Ok(vec![
        b as f64 / secs,
        delivered as f64 / secs,
        rss1 as f64,
        (heap1 - heap0) as f64 / subs as f64,
        setup_us as f64 / 1e3,
    ])
}

fn pubsub(c: &Cluster, run: &mut Run, with_big: bool) -> Result<(), String> {
    let mut sizes = vec![10u64, 1000];
    if with_big {
        sizes.push(run.p.big_subs);
    }
    for subs in sizes {
        let mut notes = Vec::new();
        // subscribing is O(n) per subscriber on both sides (the article's list), so 100k
        // subscribers take minutes: one pass
        let passes = match subs {
            0..=1000 => run.p.passes,
            1001..=10_000 => run.p.passes.min(3),
            _ => 1,
        };
        let s = interleave(passes, |side, warm| {
            if warm && subs > 1000 {
                return Ok(vec![]); // the big setup is warm-up enough
            }
            pubsub_pass(c, side, subs, if warm { 100 } else { run.p.dur_ms }, &mut notes)
        })?;
        run.notes.extend(notes);
        if subs <= 1000 {
            let name = format!("4. PubSub fan-out, {subs} subscribers on 2 nodes");
            run.rows.push(row(&name, "broadcasts/s", Unit::PerSec("broadcasts"), &s, 0, Goal::RatioAtLeast(2.0)));
            run.rows.push(row(&name, "deliveries/s", Unit::PerSec("msgs"), &s, 1, Goal::None));
        }
        if with_big {
            let name = format!("6. scale: {subs} subscribers");
            if subs > 1000 {
                run.rows.push(row(&name, "broadcasts/s", Unit::PerSec("broadcasts"), &s, 0, Goal::RatioAtLeast(2.0)));
            }
            run.rows.push(row(&name, "server RSS with subscribers", Unit::MiB, &s, 2, Goal::RatioAtMost(1.0)));
            run.rows.push(row(&name, "server heap per subscriber", Unit::Bytes, &s, 3, Goal::RatioAtMost(1.0)));
            run.rows.push(row(&name, "time to subscribe all", Unit::Millis, &s, 4, Goal::None));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// 5. Cost
// ------------------------------------------------------------------------------------------

/// A started OS process, killed with its process group on drop.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: the unreaped child keeps its pid (= its group id) reserved.
        unsafe {
            libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn spawn_grouped(mut cmd: Command) -> Result<Proc, String> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cluster::die_with_parent(&mut cmd);
    cmd.spawn().map(Proc).map_err(|e| format!("cannot start {cmd:?}: {e}"))
}

fn erlnode_exe() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("erlnode");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} is missing: build it (scripts/bench does: cargo build --release --bins)", bin.display()))
    }
}

/// Starts a node, times its EPMD registration, lets it settle, reads its RSS.
/// -> [ms to registered, idle RSS]
fn start_cost(c: &Cluster, side: Side, settle: Duration) -> Result<Vec<f64>, String> {
    let sname = unique_name("cost");
    let mut cmd;
    match side {
        Side::Erlnode => {
            cmd = Command::new(erlnode_exe()?);
            cmd.args(["--sname", &sname, "--cookie", DEFAULT_COOKIE, "serve"])
                .args(["--threads", &cluster::host_threads().to_string()])
                .env("RUST_LOG", "warn");
        }
        Side::Beam => {
            cmd = Command::new(c.otp.tool("erl"));
            cmd.args(["-sname", &sname, "-noshell", "-setcookie", DEFAULT_COOKIE, "-start_epmd", "false"]);
            for var in ["ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS", "ERL_LIBS"] {
                cmd.env_remove(var);
            }
        }
    }
    cmd.env("ERL_EPMD_PORT", c.epmd.port().to_string());
    let needle = format!("name {sname} at port");
    let t0 = Instant::now();
    let proc = spawn_grouped(cmd)?;
    let deadline = t0 + Duration::from_secs(30);
    let registered = loop {
        if c.epmd.names().is_ok_and(|n| n.contains(&needle)) {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not register in EPMD", side_name(side)));
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    std::thread::sleep(settle);
    let rss = host::rss_bytes(proc.0.id()).ok_or("no RSS")?;
    Ok(vec![registered.as_secs_f64() * 1e3, rss as f64])
}

/// Wall time of a one-shot ping of the BEAM server, as a separate OS process. -> [ms]
fn ping_cost(c: &Cluster, side: Side) -> Result<Vec<f64>, String> {
    let target = c.srv.name();
    let mut cmd;
    match side {
        Side::Erlnode => {
            cmd = Command::new(erlnode_exe()?);
            cmd.args(["--cookie", DEFAULT_COOKIE, "ping", target]);
        }
        Side::Beam => {
            cmd = Command::new(c.otp.tool("erl"));
            let eval = format!("io:format(\"~p~n\", [net_adm:ping({})]), halt().", erlang_atom(target));
            cmd.args([
                "-sname",
                &unique_name("ping"),
                "-hidden",
                "-noshell",
                "-setcookie",
                DEFAULT_COOKIE,
                "-start_epmd",
                "false",
                "-eval",
                &eval,
            ]);
        }
    }
    cmd.env("ERL_EPMD_PORT", c.epmd.port().to_string()).stdin(Stdio::null());
    let t0 = Instant::now();
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("pong") {
        return Err(format!("{} ping gave {text:?} {}", side_name(side), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(vec![ms])
}

/// Memory of 100k idle processes on a fresh node of each side. -> [RSS, heap bytes per process]
fn idle_cost(c: &Cluster, side: Side, n: u64) -> Result<Vec<f64>, String> {
    let (ctl, _keep): (String, Box<dyn std::any::Any>) = match side {
        Side::Erlnode => {
            let h = Host::start(c.epmd.port(), "idle")?;
            (format!("{{bench_ctl, {}}}", erlang_atom(h.name())), Box::new(h))
        }
        Side::Beam => {
            let b = cluster::start_beam(&c.otp, &c.epmd, &c.ebin, harness::NodeOpts::erlang().prefix("idle"))?;
            eval(&b, "erlnode_bench:start_server_side()", 10)?;
            (format!("{{bench_ctl, {}}}", erlang_atom(b.name())), Box::new(b))
        }
    };
    let r = eval(c.driver(), &format!("erlnode_bench:idle_cost({ctl}, {n})"), 180)?;
    let v = ints(&r).filter(|v| v.len() == 4).ok_or_else(|| format!("idle_cost gave {r}"))?;
    Ok(vec![(v[1] - v[0]) as f64 / n as f64, (v[3] - v[2]) as f64 / n as f64])
}

fn cost(c: &Cluster, run: &mut Run) -> Result<(), String> {
    let settle = Duration::from_millis(if run.p.quick { 500 } else { 2000 });
    let s = interleave(run.p.passes, |side, warm| {
        if warm {
            return Ok(vec![]);
        }
        start_cost(c, side, settle)
    })?;
    run.rows.push(row(
        "5. cost: `erlnode serve` vs `erl -sname`",
        "start to registered in EPMD",
        Unit::Millis,
        &s,
        0,
        Goal::AtMost(20.0),
    ));
    run.rows.push(row(
        "5. cost: `erlnode serve` vs `erl -sname`",
        "idle RSS",
        Unit::MiB,
        &s,
        1,
        Goal::AtMost(8.0 * 1024.0 * 1024.0),
    ));
    let s = interleave(run.p.passes, |side, _warm| ping_cost(c, side))?;
    run.rows.push(row(
        "5. cost: `erlnode ping` vs `erl -eval net_adm:ping`",
        "end to end",
        Unit::Millis,
        &s,
        0,
        Goal::AtMost(15.0),
    ));
    let n = run.p.idle_procs;
    let s = interleave(run.p.passes.min(3), |side, warm| {
        if warm {
            return Ok(vec![]);
        }
        idle_cost(c, side, n)
    })?;
    let name = format!("5. cost: {n} idle processes, fresh node");
    run.rows.push(row(&name, "RSS per process", Unit::Bytes, &s, 0, Goal::AtMost(1024.0)));
    run.rows.push(row(&name, "heap per process", Unit::Bytes, &s, 1, Goal::AtMost(1024.0)));
    Ok(())
}

// ------------------------------------------------------------------------------------------
// 6. Scale
// ------------------------------------------------------------------------------------------

fn scale(c: &mut Cluster, run: &mut Run) -> Result<(), String> {
    c.ensure_clients(4)?;
    // fresh servers: memory figures must not include what earlier scenarios left in the heap
    c.restart_servers()?;
    let c: &Cluster = c;
    for nodes in [1usize, 2, 4] {
        let mut notes = Vec::new();
        let s = interleave(run.p.passes, |side, warm| kv_pass(c, side, nodes, 16, &run.p, warm, &mut notes))?;
        run.notes.extend(notes);
        let name = format!("6. scale: KV, {nodes} client node{} x 16 callers", if nodes == 1 { "" } else { "s" });
        run.rows.push(row(&name, "calls/s", Unit::PerSec("calls"), &s, 0, Goal::RatioAtLeast(1.5)));
        run.rows.push(row(&name, "p99 latency", Unit::Micros, &s, 2, Goal::RatioAtMost(1.0)));
        run.rows.push(row(&name, "server RSS", Unit::MiB, &s, 3, Goal::RatioAtMost(1.0)));
    }
    pubsub(c, run, true)
}
