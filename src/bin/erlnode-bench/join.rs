//! Scenario 11: joining a cluster. N BEAM nodes (`erl`, `global` and the default `pg` scope
//! running, `-kernel start_pg true`) form a full mesh; then a new node joins it by connecting
//! to one member, as a node started with `--connect` (or `net_kernel:connect_node/1`) does.
//! `global` then connects it to every other member (`connect_all`) and syncs its names with
//! each (`global:sync/0`).
//!
//! The joiner is either erlnode (`erlnode-bench joiner`, [`run_joiner`]) or a BEAM node (`erl`
//! with the same steps in `-eval`). Both boot first, print `ready`, and wait for a line on
//! stdin; the driver then reads their CPU, writes `go`, and the joiner connects, polls every
//! millisecond until it is connected to all N members and synced with each (BEAM:
//! `length(nodes()) >= N` then `global:sync()`; erlnode: [`Node::nodes`] and the name server's
//! known nodes, with no sync running), and prints `done MICROSECONDS`. The driver reads the
//! joiner's CPU, its RSS and the members' CPU at that moment, then closes stdin (the joiner
//! exits) and waits until the cluster has seen it go before the next pass.
//!
//! Rows, per cluster size: time from `go` to synced, the joiner's CPU over the join and its
//! RSS once joined, and the CPU all N members spent meanwhile (what the join costs the
//! cluster); then the members' CPU, and how often their threads were put on a CPU, over a
//! fixed window from `go` ([`SETTLE`]), whichever moment each joiner calls itself synced.
//! `ERLNODE_BENCH_MEMBER_ARGS` adds `erl` arguments to the members, and
//! `ERLNODE_BENCH_JOIN_PROFILE` prints what one member's processes received meanwhile.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use erlnode::Atom;
use erlnode::node::NodeConfig;
use erlnode::services::gns::GlobalService;

use crate::cluster::{Cluster, Side, cpu_ns, die_with_parent, env_words, eval_raw, host_threads, slices, start_beam};
use crate::harness::{BeamNode, DEFAULT_COOKIE, NodeOpts, erlang_atom, unique_name};
use crate::host::{proc_kib_field, rss_bytes};
use crate::report::{Goal, Unit};
use crate::{Run, interleave, row};

/// Cluster sizes: quick, full.
const SIZES: [&[usize]; 2] = [&[8, 32], &[8, 16, 32, 64, 100]];
/// Free memory each member needs before a size is attempted (a BEAM node with `global` and
/// `pg` idles at about 60 MB; twice that leaves room for the rest).
const MEMORY_PER_MEMBER: u64 = 120 << 20;
/// Members started at once.
const START_PARALLEL: usize = 4;
/// The fixed window from `go` over which the members' CPU is also read (longer than any join
/// here takes, so that it holds all the work a join causes).
const SETTLE: Duration = Duration::from_millis(1500);
/// `ERLNODE_BENCH_JOIN_PROFILE` (a diagnostic): before a join, one member starts counting the
/// messages its processes receive, by receiver and by the message's tag (its first element, or
/// the atom itself), with `erlang:trace/3` (in a fun: the evaluating shell keeps its bindings
/// from one evaluation to the next)...
const PROFILE_BEFORE: &str = "(fun() -> \
    Tr = spawn(fun() -> L = fun L(A) -> receive \
      {trace, P, 'receive', M} -> K = {P, if is_tuple(M), tuple_size(M) > 0 -> element(1, M); is_atom(M) -> M; true -> other end}, \
        L(maps:update_with(K, fun(V) -> V + 1 end, 1, A)); \
      {get, F} -> F ! {counts, A} end end, L(#{}) end), \
    {{input, I0}, {output, O0}} = erlang:statistics(io), {Cs0, _} = erlang:statistics(context_switches), \
    persistent_term:put(jio, {I0, O0, Cs0}), \
    persistent_term:put(jt, Tr), erlang:trace(processes, true, ['receive', {tracer, Tr}]), \
    erlang:trace(Tr, false, ['receive']), erlang:trace(self(), false, ['receive']), ok end)()";
/// ...and after it, the fifteen largest counts, with each receiver named by its registered name
/// or initial call, and the node's bytes in and out (`statistics(io)`) and process switches.
const PROFILE_AFTER: &str = "(fun() -> Tr = persistent_term:get(jt), erlang:trace(processes, false, ['receive']), \
    Tr ! {get, self()}, A = receive {counts, C} -> C after 5000 -> #{} end, \
    Named = [{case process_info(P, registered_name) of {registered_name, N} -> N; \
        _ -> case process_info(P, initial_call) of {initial_call, IC} -> IC; _ -> dead end end, Tag, Cn} \
      || {{P, Tag}, Cn} <- maps:to_list(A)], \
    {I0, O0, Cs0} = persistent_term:get(jio), {{input, I1}, {output, O1}} = erlang:statistics(io), \
    {Cs1, _} = erlang:statistics(context_switches), \
    {total, lists:sum([Cn || {_, _, Cn} <- Named]), io, I1 - I0, O1 - O0, switches, Cs1 - Cs0, \
     lists:sublist(lists:reverse(lists:keysort(3, Named)), 15)} end)()";
/// How long one join may take before the pass fails.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn join(c: &Cluster, run: &mut Run) -> Result<(), String> {
    let mut members: Vec<BeamNode> = Vec::new();
    for &n in SIZES[usize::from(!run.p.quick)] {
        if let Some(avail) = mem_available()
            && avail < (n - members.len()) as u64 * MEMORY_PER_MEMBER
        {
            run.notes.push(format!(
                "11. join: {n} members skipped: {} MiB available, {} MiB wanted",
                avail >> 20,
                ((n - members.len()) as u64 * MEMORY_PER_MEMBER) >> 20
            ));
            break;
        }
        let t = Instant::now();
        grow(c, &mut members, n)?;
        eprintln!("[bench] 11. join: {n} members meshed in {:.1} s", t.elapsed().as_secs_f64());
        let first = members[0].name().to_string();
        let pids: Vec<u32> = members.iter().map(|m| m.os_pid()).collect();
        let s = interleave(run.p.passes, |side, _warm| {
            let mut j = Joiner::start(c, side, &first, n)?;
            let profile = std::env::var_os("ERLNODE_BENCH_JOIN_PROFILE").is_some() && members.len() > 1;
            if profile {
                eval_raw(&members[1], PROFILE_BEFORE, 30)?;
            }
            let (cpu0, members0) = (cpu_ns(j.pid()), pids.iter().map(|&p| cpu_ns(p)).sum::<u64>());
            let slices_each0: Vec<u64> = pids.iter().map(|&p| slices(p)).collect();
            let go = Instant::now();
            let micros = j.go()?;
            let cpu = cpu_ns(j.pid()).saturating_sub(cpu0);
            let members_cpu = pids.iter().map(|&p| cpu_ns(p)).sum::<u64>().saturating_sub(members0);
            let rss = rss_bytes(j.pid()).unwrap_or(0);
            // the same over a fixed window, whichever moment each joiner calls itself synced
            std::thread::sleep(SETTLE.saturating_sub(go.elapsed()));
            let members_settled = pids.iter().map(|&p| cpu_ns(p)).sum::<u64>().saturating_sub(members0);
            let slices_each: Vec<u64> =
                pids.iter().zip(&slices_each0).map(|(&p, s0)| slices(p).saturating_sub(*s0)).collect();
            let members_slices = slices_each.iter().sum::<u64>();
            if profile {
                eprintln!("[bench] 11. join profile, {side:?} joiner, slices per member: {slices_each:?}");
                let got = eval_raw(&members[1], PROFILE_AFTER, 30)?;
                eprintln!("[bench] 11. join profile, {side:?} joiner, member 2 of {n}: {got}");
            }
            let name = j.name.clone();
            drop(j);
            wait_gone(&members[0], &name, n)?;
            Ok(vec![
                micros as f64 / 1e3,
                cpu as f64 / 1e6,
                rss as f64,
                members_cpu as f64 / 1e6,
                members_settled as f64 / 1e6,
                members_slices as f64,
            ])
        })?;
        let name = format!("11. join a {n}-node cluster (full mesh, global and pg)");
        run.rows.push(row(&name, "time to connected and global synced", Unit::Millis, &s, 0, Goal::None));
        run.rows.push(row(&name, "joiner CPU over the join", Unit::Millis, &s, 1, Goal::None));
        run.rows.push(row(&name, "joiner RSS once joined", Unit::MiB, &s, 2, Goal::None));
        run.rows.push(row(&name, "members' CPU over the join (all N)", Unit::Millis, &s, 3, Goal::None));
        let settled = format!("members' CPU over the {} ms from go (all N)", SETTLE.as_millis());
        run.rows.push(row(&name, &settled, Unit::Millis, &s, 4, Goal::None));
        let woken = format!("members' threads put on a CPU over the {} ms (all N)", SETTLE.as_millis());
        run.rows.push(row(&name, &woken, Unit::Count, &s, 5, Goal::None));
    }
    Ok(())
}

/// Extra `erl` arguments for the members, from `ERLNODE_BENCH_MEMBER_ARGS` (split at whitespace;
/// none by default), as `ERLNODE_BENCH_CLIENT_ARGS` is for the client nodes.
fn member_args() -> Vec<String> {
    env_words("ERLNODE_BENCH_MEMBER_ARGS")
}

/// Starts members until there are `n`, then meshes them through the first (`global`'s
/// `connect_all` does the rest) and waits until it has synced with all.
fn grow(c: &Cluster, members: &mut Vec<BeamNode>, n: usize) -> Result<(), String> {
    while members.len() < n {
        let batch = START_PARALLEL.min(n - members.len());
        let started: Vec<Result<BeamNode, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..batch)
                .map(|_| {
                    s.spawn(|| {
                        let opts = NodeOpts::erlang().prefix("jm").args(["-kernel", "start_pg", "true"]);
                        let opts = opts.args(member_args());
                        start_beam(&c.otp, &c.epmd, &c.ebin, opts)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("member start panicked".into()))).collect()
        });
        for m in started {
            members.push(m?);
        }
    }
    let first = &members[0];
    let list: Vec<String> = members[1..].iter().map(|m| erlang_atom(m.name())).collect();
    let got = eval_raw(
        first,
        &format!(
            "lists:all(fun(N) -> net_kernel:connect_node(N) end, [{}]) andalso \
             erlnode_bench:wait_nodes({}, 120000) andalso (global:sync() =:= ok)",
            list.join(", "),
            n - 1
        ),
        180,
    )?;
    if got != "true" {
        return Err(format!("11. join: the {n} members did not mesh: {got}"));
    }
    Ok(())
}

/// Waits until `first` no longer sees `joiner` and its name server has caught up.
fn wait_gone(first: &BeamNode, joiner: &str, n: usize) -> Result<(), String> {
    let got = eval_raw(
        first,
        &format!(
            "erlnode_bench:wait_nodes({}, 60000) andalso not lists:member({}, nodes()) andalso (global:sync() =:= ok)",
            n - 1,
            erlang_atom(joiner)
        ),
        90,
    )?;
    if got != "true" { Err(format!("11. join: {joiner} still seen after the pass: {got}")) } else { Ok(()) }
}

/// A joining node's OS process, erlnode or BEAM.
struct Joiner {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Joiner {
    fn start(c: &Cluster, side: Side, first: &str, n: usize) -> Result<Joiner, String> {
        let sname = unique_name("joiner");
        let host = first.split_once('@').map(|(_, h)| h).ok_or("member name without @")?;
        let mut cmd = match side {
            Side::Erlnode => {
                let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
                cmd.args(["joiner", "--sname", &sname, "--cookie", DEFAULT_COOKIE])
                    .args(["--epmd-port", &c.epmd.port().to_string(), "--first", first, "--expect"])
                    .arg(n.to_string())
                    .args(["--threads", &host_threads().to_string()])
                    .env("RUST_LOG", "warn");
                cmd
            }
            Side::Beam => {
                let mut cmd = Command::new(c.otp.tool("erl"));
                cmd.args(["-noshell", "-sname", &sname, "-setcookie", DEFAULT_COOKIE, "-start_epmd", "false"])
                    .args(["-kernel", "start_pg", "true", "-pa"])
                    .arg(&c.ebin)
                    .arg("-eval")
                    .arg(format!("erlnode_bench:join({}, {n})", erlang_atom(first)))
                    .env("ERL_EPMD_PORT", c.epmd.port().to_string());
                cmd
            }
        };
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start the joiner: {e}"))?;
        let stdin = child.stdin.take();
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let j = Joiner { child, stdin, lines, name: format!("{sname}@{host}") };
        j.expect("ready", Duration::from_secs(60))?;
        Ok(j)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line starting with `word`; the rest of it.
    fn expect(&self, word: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix(word) {
                        return Ok(rest.trim().to_string());
                    }
                }
                Err(_) => return Err(format!("joiner {}: no `{word}` within {timeout:?}", self.name)),
            }
        }
    }

    /// Starts the join; the microseconds it took, as the joiner measured them.
    fn go(&mut self) -> Result<u64, String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin.write_all(b"go\n").and_then(|_| stdin.flush()).map_err(|e| e.to_string())?;
        let done = self.expect("done", JOIN_TIMEOUT)?;
        done.parse().map_err(|_| format!("joiner {}: done {done:?}", self.name))
    }
}

impl Drop for Joiner {
    fn drop(&mut self) {
        // stdin closing ends both kinds of joiner; kill in case it does not
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    proc_kib_field("/proc/meminfo", "MemAvailable:")
}

/// `erlnode-bench joiner`: the erlnode joiner (see the module docs).
pub fn run_joiner(
    sname: &str,
    cookie: &str,
    epmd_port: u16,
    first: &str,
    expect: usize,
    threads: usize,
) -> Result<(), String> {
    crate::host::apply_spin_knobs();
    let rt = erlnode::cli::runtime(threads).map_err(|e| e.to_string())?;
    rt.block_on(async {
        let config = NodeConfig::new(sname, cookie).epmd_port(epmd_port);
        let node = erlnode::services::start_node(config).await.map_err(|e| format!("cannot start: {e}"))?;
        println!("ready {}", node.name().as_str());
        tokio::task::spawn_blocking(|| std::io::stdin().lock().read_line(&mut String::new()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let first = Atom::new(first);
        if !node.connect(&first).await {
            return Err(format!("cannot connect to {}", first.as_str()));
        }
        let global = node.extension::<GlobalService>().ok_or("no global")?;
        loop {
            let nodes = node.nodes();
            if nodes.len() >= expect
                && global.known_nodes().len() >= expect
                && !nodes.iter().any(|n| global.is_syncing(n))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        println!("done {}", t0.elapsed().as_micros());
        crate::host::until_stdin_closes(&node).await
    })?;
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}
