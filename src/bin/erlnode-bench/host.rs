//! `erlnode-bench host`: the erlnode side of the benchmarks, one OS process like the BEAM
//! server node it is compared with. It runs the library's [`Kv`] and [`PubSub`] (started on
//! demand), a counting `bench_sink` and a `bench_ctl` answering the same requests as
//! `erlang_interop/erlnode_bench.erl`'s (see there), plus the erlnode side of the Phoenix,
//! GenStage and syn scenarios (`phoenix.rs`, `synstage.rs`). It prints `ready NODE` once registered
//! and exits when its stdin closes (so it cannot outlive the driver).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use erlnode::apps::{Kv, PubSub};
use erlnode::ecosystem::gen_stage::Producer;
use erlnode::ecosystem::phoenix_pubsub as phoenix;
use erlnode::ecosystem::syn::Syn;
use erlnode::gen_server::{self, CallReply, From, GenServer};
use erlnode::node::{NodeConfig, normal};
use erlnode::{Atom, Dest, Process, Term};

/// How long `{stop, Pid}` waits for the process to be gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `node::spin` setting.
type SetDuration = fn(Duration);

/// Runs the host until stdin closes.
pub fn run(
    sname: &str,
    cookie: &str,
    epmd_port: u16,
    hidden: bool,
    threads: usize,
    ssl_dist_optfile: Option<&std::path::Path>,
) -> Result<(), String> {
    apply_spin_knobs();
    let rt = erlnode::cli::runtime(threads).map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut config = NodeConfig::new(sname, cookie).epmd_port(epmd_port).hidden(hidden);
        if let Some(f) = ssl_dist_optfile {
            config = config.tls(erlnode::tls::TlsDist::from_optfile(f).map_err(|e| e.to_string())?);
        }
        let node = erlnode::services::start_node(config).await.map_err(|e| format!("cannot start: {e}"))?;
        let sink = node.spawn(sink);
        node.register(Atom::new("bench_sink"), &sink);
        gen_server::start(&node, Ctl, Some(Atom::new("bench_ctl"))).await.map_err(|r| format!("ctl: {r}"))?;
        println!("ready {}", node.name().as_str());
        // stdin closing (the driver exiting, or dropping us) ends the host
        until_stdin_closes(&node).await
    })?;
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// The settings of `node::spin` the hosts and scenario 11's joiner read from the environment:
/// the variable, its setter, and what it does (for the report's header, `{}` standing for the
/// value in µs).
pub const SPIN_KNOBS: [(&str, SetDuration, &str); 4] = [
    ("ERLNODE_BENCH_HOST_SPIN_US", erlnode::node::spin::set_budget, "spin {} µs before sleeping"),
    ("ERLNODE_BENCH_HOST_NAP_US", erlnode::node::spin::set_nap, "sleep {} µs between looks instead of spinning"),
    (
        "ERLNODE_BENCH_HOST_BUSY_NAP_US",
        erlnode::node::spin::set_busy_nap,
        "sleep {} µs between looks while spin::BUSY_CALLERS or more callers wait (0: spin)",
    ),
    ("ERLNODE_BENCH_HOST_SPIN_GATHER_US", erlnode::node::spin::set_gather, "spin {} µs more once a socket is readable"),
];

/// Applies the [`SPIN_KNOBS`] that are set in the environment.
pub fn apply_spin_knobs() {
    for (var, set, _) in SPIN_KNOBS {
        if let Some(us) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
            set(Duration::from_micros(us));
        }
    }
}

/// Waits until stdin closes (the driver exiting, or dropping this process), then shuts the
/// node down.
pub async fn until_stdin_closes(node: &erlnode::Node) -> Result<(), String> {
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await
    .map_err(|e| e.to_string())?;
    node.shutdown();
    Ok(())
}

/// Counts messages; `{'$bench_done', From}` sends `{'$bench_count', Count}` to `From`.
async fn sink(mut p: Process) -> Term {
    let mut count: i64 = 0;
    loop {
        let msg = p.receive().await;
        if let Some([tag, Term::Pid(from)]) = msg.as_tuple() {
            if tag.is_atom("$bench_done") {
                p.send(Dest::Pid(from.clone()), Term::Tuple(vec![Term::atom("$bench_count"), Term::Int(count)]));
                count = 0;
                continue;
            }
        }
        count += 1;
    }
}

struct Ctl;

impl GenServer for Ctl {
    async fn handle_call(&mut self, req: Term, _from: &From, p: &mut Process) -> CallReply {
        let node = p.node().clone();
        let reply = match req.as_tuple() {
            Some([op, kind]) if op.is_atom("start") => {
                let started = if kind.is_atom("kv") {
                    gen_server::start(&node, Kv::new(), None).await
                } else {
                    gen_server::start(&node, PubSub::new(), None).await
                };
                match started {
                    Ok(pid) => Term::Pid(pid),
                    Err(r) => r,
                }
            }
            Some([op, Term::Pid(pid)]) if op.is_atom("stop") => {
                p.exit(pid, Term::atom("kill"));
                let deadline = Instant::now() + STOP_TIMEOUT;
                while node.is_alive(pid) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Term::atom(if node.is_alive(pid) { "timeout" } else { "ok" })
            }
            Some([op, dest, kind, Term::Int(n), Term::Int(dur_ms), Term::Pid(reply_to)]) if op.is_atom("burst") => {
                match dest_of(dest) {
                    Some(dest) => {
                        let (kind, n, dur, reply_to) =
                            (kind.clone(), *n, Duration::from_millis(*dur_ms as u64), reply_to.clone());
                        node.spawn(move |p| burst(p, dest, kind, n, dur, reply_to));
                        Term::atom("ok")
                    }
                    None => Term::atom("bad_dest"),
                }
            }
            Some([op, Term::Int(n)]) if op.is_atom("spawn_idle") => {
                for _ in 0..*n {
                    node.spawn(|mut p: Process| async move {
                        let _ = p.receive().await;
                        normal()
                    });
                }
                Term::atom("ok")
            }
            Some([op, Term::List(nodes)]) if op.is_atom("phx_join") => {
                let nodes: Vec<Atom> = nodes.iter().filter_map(|n| n.as_atom().cloned()).collect();
                match phoenix::PubSub::join(&node, PHX_PUBSUB).await {
                    Ok(ps) if ps.wait_for_nodes(&nodes, Duration::from_secs(30)).await => Term::atom("ok"),
                    Ok(_) => Term::atom("timeout"),
                    Err(e) => Term::binary(e.to_string()),
                }
            }
            Some([op, Term::Binary(topic), Term::Int(n), Term::Int(dur_ms)]) if op.is_atom("phx_broadcast") => {
                match phoenix::PubSub::join(&node, PHX_PUBSUB).await {
                    Ok(ps) => {
                        let (sent, us) = phx_broadcast(&ps, topic, *n, Duration::from_millis(*dur_ms as u64)).await;
                        Term::Tuple(vec![Term::Int(sent), Term::Int(us)])
                    }
                    Err(e) => Term::binary(e.to_string()),
                }
            }
            Some([op, Term::Binary(topic), Term::Int(n)]) if op.is_atom("phx_subscribe") => {
                match phoenix::PubSub::join(&node, PHX_PUBSUB).await {
                    Ok(ps) => {
                        for _ in 0..*n {
                            let pid = node.spawn(|mut p: Process| async move {
                                loop {
                                    let _ = p.receive().await;
                                    PHX_DELIVERED.fetch_add(1, Ordering::Relaxed);
                                }
                            });
                            let _ = ps.subscribe(&pid, topic);
                        }
                        Term::atom("ok")
                    }
                    Err(e) => Term::binary(e.to_string()),
                }
            }
            Some([op, Term::Atom(name)]) if op.is_atom("stage_counter") => stage_counter(&node, name),
            Some([op, Term::Atom(scope), Term::List(nodes)]) if op.is_atom("syn_join") => {
                let nodes: Vec<Atom> = nodes.iter().filter_map(|n| n.as_atom().cloned()).collect();
                erlnode::ecosystem::syn::serve_rpc(&node);
                match Syn::join(&node, scope.as_str()).await {
                    Ok(syn) if syn.wait_for_nodes(&nodes, Duration::from_secs(30)).await => Term::atom("ok"),
                    Ok(_) => Term::atom("timeout"),
                    Err(e) => Term::binary(e.to_string()),
                }
            }
            Some([op, Term::Atom(scope)]) if op.is_atom("syn_count") => match Syn::join(&node, scope.as_str()).await {
                Ok(syn) => Term::Int(syn.registry_count() as i64),
                Err(e) => Term::binary(e.to_string()),
            },
            Some([op, Term::Atom(scope), tag, Term::Int(n)]) if op.is_atom("syn_register") => {
                match Syn::join(&node, scope.as_str()).await {
                    Ok(syn) => syn_register(&node, &syn, tag, *n).await,
                    Err(e) => Term::binary(e.to_string()),
                }
            }
            Some([op, Term::Atom(scope), tag, Term::Int(keys), Term::Int(dur_ms)]) if op.is_atom("syn_lookup_loop") => {
                match Syn::join(&node, scope.as_str()).await {
                    Ok(syn) => syn_lookup_loop(&syn, tag, *keys, Duration::from_millis(*dur_ms as u64)).await,
                    Err(e) => Term::binary(e.to_string()),
                }
            }
            _ if req.is_atom("phx_count") => Term::Int(PHX_DELIVERED.load(Ordering::Relaxed)),
            _ if req.is_atom("heap") => Term::Int(heap_bytes() as i64),
            _ if req.is_atom("rss") => Term::Int(rss_bytes(std::process::id()).unwrap_or(0) as i64),
            _ if req.is_atom("ping") => Term::atom("pong"),
            _ => Term::atom("not_implemented"),
        };
        CallReply::Reply(reply)
    }
}

/// The Phoenix.PubSub of `scripts/bench phoenix` (`erlang_interop/bench_phoenix.ex`).
const PHX_PUBSUB: &str = "BenchPhx.PubSub";
/// Messages the host's Phoenix.PubSub subscribers got.
static PHX_DELIVERED: AtomicI64 = AtomicI64::new(0);

/// Broadcasts `{msg, I}` on `topic` up to `n` times or for `dur`, as
/// `ErlnodeBenchPhx.broadcast_loop/3` does: -> (sent, elapsed µs).
async fn phx_broadcast(ps: &phoenix::PubSub, topic: &[u8], n: i64, dur: Duration) -> (i64, i64) {
    let t0 = Instant::now();
    let deadline = t0 + dur;
    let mut i = 0;
    while i < n {
        if i % 64 == 0 && Instant::now() >= deadline {
            break;
        }
        ps.broadcast(topic, Term::Tuple(vec![Term::atom("msg"), Term::Int(i)]));
        i += 1;
        if i % 1024 == 0 {
            // let the connection writers run (a BEAM sender is suspended on a busy dist buffer)
            tokio::task::yield_now().await;
        }
    }
    (i, t0.elapsed().as_micros() as i64)
}

/// `{stage_counter, Name}`: the Counter of GenStage's docs (what `erlnode serve --counter-stage`
/// runs) registered as `Name`; `ok` if it runs already.
fn stage_counter(node: &erlnode::Node, name: &Atom) -> Term {
    if node.whereis(name).is_some() {
        return Term::atom("ok");
    }
    let mut next = 0i64;
    let started = Producer::start(node, Some(name.clone()), move |demand| {
        let events = (next..next + demand as i64).map(Term::Int).collect();
        next += demand as i64;
        events
    });
    match started {
        Ok(_) => Term::atom("ok"),
        Err(e) => Term::binary(e.to_string()),
    }
}

/// `{syn_register, Scope, Tag, N}`, as `ErlnodeBenchSyn.register_loop/3`: starts N processes
/// linked to a holder and registers each as `{Tag, I}` (meta `I`), one after the other.
/// Killing the holder unregisters them all. -> `{Holder, µs}`
async fn syn_register(node: &erlnode::Node, syn: &Syn, tag: &Term, n: i64) -> Term {
    async fn wait(mut p: Process) -> Term {
        let _ = p.receive().await;
        normal()
    }
    let holder = node.spawn(wait);
    let t0 = Instant::now();
    for i in 1..=n {
        let pid = node.spawn_link(&holder, wait);
        let name = Term::Tuple(vec![tag.clone(), Term::Int(i)]);
        if let Err(e) = syn.register(name, &pid, Term::Int(i)).await {
            return Term::binary(format!("register {i}: {e}"));
        }
    }
    Term::Tuple(vec![Term::Pid(holder), Term::Int(t0.elapsed().as_micros() as i64)])
}

/// `{syn_lookup_loop, Scope, Tag, Keys, DurMs}`, as `ErlnodeBenchSyn.lookup_loop/4`: local
/// lookups of `{Tag, 1..Keys}` for `DurMs`. -> `{Lookups, µs, Misses}`
async fn syn_lookup_loop(syn: &Syn, tag: &Term, keys: i64, dur: Duration) -> Term {
    let keys = keys.max(1);
    let names: Vec<Term> = (1..=keys).map(|i| Term::Tuple(vec![tag.clone(), Term::Int(i)])).collect();
    let t0 = Instant::now();
    let deadline = t0 + dur;
    let (mut n, mut misses) = (0i64, 0i64);
    loop {
        if n % 256 == 0 {
            if Instant::now() >= deadline {
                break;
            }
            tokio::task::yield_now().await;
        }
        if syn.lookup(&names[(n % keys) as usize]).is_none() {
            misses += 1;
        }
        n += 1;
    }
    Term::Tuple(vec![Term::Int(n), Term::Int(t0.elapsed().as_micros() as i64), Term::Int(misses)])
}

fn dest_of(t: &Term) -> Option<Dest> {
    match t {
        Term::Pid(p) => Some(Dest::Pid(p.clone())),
        Term::Atom(a) => Some(Dest::Name(a.clone())),
        _ => match t.as_tuple() {
            Some([Term::Atom(name), Term::Atom(node)]) => Some(Dest::Remote(name.clone(), node.clone())),
            _ => None,
        },
    }
}

/// Sends up to `n` messages of `kind` (`small`: `{msg, I}`; `{bin, Size}`: one binary) to
/// `dest` for at most `dur`, then `{'$bench_done', ReplyTo}`.
async fn burst(p: Process, dest: Dest, kind: Term, n: i64, dur: Duration, reply_to: erlnode::term::Pid) -> Term {
    let bin = match kind.as_tuple() {
        Some([_, Term::Int(size)]) => Some(Term::binary(vec![b'x'; (*size).clamp(0, 1 << 24) as usize])),
        _ => None,
    };
    let deadline = Instant::now() + dur;
    for i in 0..n {
        if i % 256 == 0 && Instant::now() >= deadline {
            break;
        }
        let msg = match &bin {
            Some(b) => b.clone(),
            None => Term::Tuple(vec![Term::atom("msg"), Term::Int(i)]),
        };
        p.send(dest.clone(), msg);
        if i % 4096 == 4095 {
            // let the connection writers run (a BEAM sender is suspended on a busy dist buffer)
            tokio::task::yield_now().await;
        }
    }
    p.send(dest, Term::Tuple(vec![Term::atom("$bench_done"), Term::Pid(reply_to)]));
    normal()
}

/// Bytes allocated and not freed (glibc `mallinfo2`: arena chunks in use plus mmapped ones),
/// the counterpart of `erlang:memory(total)`; unlike RSS it drops when memory is freed.
fn heap_bytes() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let mi = unsafe { libc::mallinfo2() };
    (mi.uordblks + mi.hblkhd) as u64
}

/// `VmRSS` of an OS process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    proc_kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// The `KEY: N kB` line of a `/proc` file (`status`, `meminfo`), in bytes.
pub fn proc_kib_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
