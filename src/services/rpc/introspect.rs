//! Introspection over rpc, with the answers BEAM gives for its own processes (ERTS `erlang`
//! reference: `processes/0`, `process_info/1,2`, `memory/0,1`, `statistics/1`) and the
//! `observer_backend` calls etop and observer make on the node they watch (Runtime_Tools
//! `observer_backend.erl`: `vsn/0`, `sys_info/0`, `etop_collect/1`, `procs_info/1`).
//!
//! The figures are erlnode's own, read from the node when asked ([`crate::node::ProcessInfo`]):
//!
//! | item                 | what erlnode reports                                              |
//! |----------------------|-------------------------------------------------------------------|
//! | `reductions`         | messages the process has received                                  |
//! | `memory`             | bytes of its table entry, task (future) and mailbox room           |
//! | `status`             | `runnable` with messages queued, else `waiting`                    |
//! | `current_function`, `initial_call`, `dictionary` | what the process set when it started (`gen_server` sets BEAM's) |
//! | `group_leader`       | the one a peer's spawn request named, else the process itself       |
//! | `heap_size`, `total_heap_size` | `memory` in words; `stack_size` 0                        |
//! | `erlang:memory/0`    | `total`: resident set size; `processes`: the sum above; `system`: the rest; `atom`, `binary`, `code`, `ets`: 0 (erlnode has no atom table, code or ETS) |
//! | `statistics(runtime)` | the OS process's CPU time; `wall_clock`: time since the node was made |
//! | `statistics(reductions)` | messages received by all processes, living and exited          |
//! | `statistics(run_queue)` | processes with messages queued                                  |
//! | `statistics(io)`     | bytes through the distribution sockets                             |
//! | `statistics(context_switches)` | the OS process's voluntary and involuntary switches      |
//!
//! A pid of another node is `badarg`, a dead local pid `undefined`, as on BEAM.
//! `etop_collect/1` and `procs_info/1` run in the process `etop`/observer spawned (they send
//! as `self()`); the record shapes are `observer_backend.hrl`'s (`etop_info`,
//! `etop_proc_info`), checked against OTP 25, 27 and 29. `etop` on OTP 26+ also sets up `dbg`
//! tracing on the node it watches: `dbg:do_relay/2,3` and `net_adm:localhost/0` let it start (with
//! no trace events).

use std::sync::atomic::{AtomicU64, Ordering};

use super::{BoxFuture, Registry, RpcError, RpcResult};
use crate::dist::Mfa;
use crate::node::{Dest, MonitorTarget, Node, ProcessInfo};
use crate::term::{Atom, Pid, Term};

/// What `observer_backend:vsn/0` answers: the Runtime_Tools version of OTP 25
/// ([`super::builtins::OTP_RELEASE`]).
pub const RUNTIME_TOOLS_VSN: &str = "1.19";

/// The items `process_info/1` lists, in BEAM's order (`registered_name` only when there is one).
const DEFAULT_ITEMS: &[&str] = &[
    "registered_name",
    "current_function",
    "initial_call",
    "status",
    "message_queue_len",
    "links",
    "dictionary",
    "trap_exit",
    "error_handler",
    "priority",
    "group_leader",
    "total_heap_size",
    "heap_size",
    "stack_size",
    "reductions",
    "garbage_collection",
    "suspending",
];

/// Most processes in one `{procs_info, Pid, List}` message (`observer_backend:procs_info/1`).
const PROCS_INFO_CHUNK: usize = 10_000;

pub(super) fn install(r: &Registry) {
    r.register_builtin("erlang", "processes", 0, |node, _, _, _| {
        Ok(Term::List(node.processes().into_iter().map(Term::Pid).collect()))
    });
    r.register_builtin("erlang", "process_info", 1, process_info_1);
    r.register_builtin("erlang", "process_info", 2, process_info_2);
    r.register_builtin("erlang", "memory", 0, |node, _, _, _| Ok(memory_list(&Memory::read(node))));
    r.register_builtin("erlang", "memory", 1, memory_1);
    r.register_builtin("erlang", "statistics", 1, statistics);
    r.register_builtin("observer_backend", "vsn", 0, |_, _, _, _| {
        Ok(tuple(vec![Term::atom("ok"), Term::charlist(RUNTIME_TOOLS_VSN)]))
    });
    r.register_builtin("observer_backend", "sys_info", 0, |node, _, _, _| Ok(sys_info(node)));
    r.register_in_process("observer_backend", "etop_collect", 1, etop_collect);
    r.register_in_process("observer_backend", "procs_info", 1, procs_info);
    r.register_in_process("dbg", "do_relay", 2, dbg_relay);
    r.register_in_process("dbg", "do_relay", 3, dbg_relay);
    r.register_builtin("net_adm", "localhost", 0, |node, _, _, _| {
        let host = node.name().as_str().split_once('@').map(|(_, h)| h).unwrap_or("localhost");
        Ok(Term::charlist(host))
    });
}

fn tuple(v: Vec<Term>) -> Term {
    Term::Tuple(v)
}

fn pair(k: &str, v: Term) -> Term {
    tuple(vec![Term::atom(k), v])
}

fn int(n: impl TryInto<i64>) -> Term {
    Term::Int(n.try_into().unwrap_or(i64::MAX))
}

fn mfa(m: &Mfa) -> Term {
    tuple(vec![Term::Atom(m.module.clone()), Term::Atom(m.function.clone()), Term::Int(m.arity as i64)])
}

/// The local process `args[0]` names: `Ok(None)` when dead, `badarg` when not a local pid.
fn target(node: &Node, m: &Atom, f: &Atom, args: &[Term]) -> Result<Option<ProcessInfo>, RpcError> {
    match args.first() {
        Some(Term::Pid(pid)) if pid.node == *node.name() => Ok(node.process_info(pid)),
        _ => Err(RpcError::badarg(m, f, args)),
    }
}

fn process_info_1(node: &Node, m: &Atom, f: &Atom, args: &[Term]) -> RpcResult {
    let Some(info) = target(node, m, f, args)? else { return Ok(Term::atom("undefined")) };
    let items = DEFAULT_ITEMS
        .iter()
        .filter(|i| **i != "registered_name" || info.registered_name.is_some())
        .filter_map(|i| item(node, &info, i))
        .collect();
    Ok(Term::List(items))
}

fn process_info_2(node: &Node, m: &Atom, f: &Atom, args: &[Term]) -> RpcResult {
    let info = target(node, m, f, args)?;
    let badarg = || RpcError::badarg(m, f, args);
    match args.get(1) {
        Some(Term::Atom(a)) => {
            let known = item_known(a.as_str());
            match info {
                _ if !known => Err(badarg()),
                None => Ok(Term::atom("undefined")),
                // a process without a name: `[]`, not a tuple, as BEAM answers
                Some(i) if a == "registered_name" && i.registered_name.is_none() => Ok(Term::nil()),
                Some(i) => item(node, &i, a.as_str()).ok_or_else(badarg),
            }
        }
        Some(Term::List(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for t in items {
                match t {
                    Term::Atom(a) if item_known(a.as_str()) => names.push(a.as_str()),
                    _ => return Err(badarg()),
                }
            }
            let Some(i) = info else { return Ok(Term::atom("undefined")) };
            Ok(Term::List(names.into_iter().filter_map(|n| item(node, &i, n)).collect()))
        }
        _ => Err(badarg()),
    }
}

fn item_known(name: &str) -> bool {
    DEFAULT_ITEMS.contains(&name) || matches!(name, "messages" | "monitors" | "monitored_by" | "memory")
}

/// `{Item, Value}` for one `process_info` item (`registered_name` gives `{registered_name, []}`
/// for a process without a name, as in a list answer).
fn item(node: &Node, i: &ProcessInfo, name: &str) -> Option<Term> {
    let pids = |v: &[Pid]| Term::List(v.iter().cloned().map(Term::Pid).collect());
    let words = int(i.memory / 8);
    let value = match name {
        "registered_name" => i.registered_name.clone().map(Term::Atom).unwrap_or_else(Term::nil),
        "current_function" => mfa(&i.current_function),
        "initial_call" => mfa(&i.initial_call),
        "status" => Term::atom(i.status.as_str()),
        "message_queue_len" => int(i.message_queue_len),
        "messages" => Term::List(node.process_messages(&i.pid).unwrap_or_default()),
        "links" => pids(&i.links),
        "monitors" => Term::List(
            i.monitors
                .iter()
                .map(|t| match t {
                    MonitorTarget::Pid(p) => pair("process", Term::Pid(p.clone())),
                    MonitorTarget::Name(..) => pair("process", t.down_object()),
                })
                .collect(),
        ),
        "monitored_by" => pids(&i.monitored_by),
        "dictionary" => Term::List(i.dictionary.iter().map(|(k, v)| tuple(vec![k.clone(), v.clone()])).collect()),
        "trap_exit" => Term::atom(if i.trap_exit { "true" } else { "false" }),
        "error_handler" => Term::atom("error_handler"),
        "priority" => Term::atom("normal"),
        "group_leader" => Term::Pid(i.group_leader.clone().unwrap_or_else(|| i.pid.clone())),
        "total_heap_size" | "heap_size" => words,
        "stack_size" => Term::Int(0),
        "reductions" => int(i.reductions),
        "memory" => int(i.memory),
        "garbage_collection" | "suspending" => Term::nil(),
        _ => return None,
    };
    Some(pair(name, value))
}

/// The node's memory figures (see the module docs).
struct Memory {
    total: u64,
    processes: u64,
}

impl Memory {
    fn read(node: &Node) -> Memory {
        let processes: u64 = node.all_process_info().iter().map(|i| i.memory as u64).sum();
        let total = resident_bytes().unwrap_or(0).max(processes);
        Memory { total, processes }
    }

    fn get(&self, item: &str) -> Option<u64> {
        Some(match item {
            "total" => self.total,
            "processes" | "processes_used" => self.processes,
            "system" => self.total - self.processes,
            "atom" | "atom_used" | "binary" | "code" | "ets" => 0,
            _ => return None,
        })
    }
}

const MEMORY_ITEMS: &[&str] =
    &["total", "processes", "processes_used", "system", "atom", "atom_used", "binary", "code", "ets"];

fn memory_list(m: &Memory) -> Term {
    Term::List(MEMORY_ITEMS.iter().map(|i| pair(i, int(m.get(i).unwrap_or(0)))).collect())
}

fn memory_1(node: &Node, m: &Atom, f: &Atom, args: &[Term]) -> RpcResult {
    let mem = Memory::read(node);
    let badarg = || RpcError::badarg(m, f, args);
    match args {
        [Term::Atom(a)] => mem.get(a.as_str()).map(int).ok_or_else(badarg),
        [Term::List(items)] => {
            let mut out = Vec::with_capacity(items.len());
            for t in items {
                let Term::Atom(a) = t else { return Err(badarg()) };
                out.push(pair(a.as_str(), int(mem.get(a.as_str()).ok_or_else(badarg)?)));
            }
            Ok(Term::List(out))
        }
        _ => Err(badarg()),
    }
}

/// The resident set size of this OS process (Linux `/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).unwrap_or(4096))
}

/// `(cpu milliseconds, context switches)` of this OS process.
fn rusage() -> (u64, u64) {
    // SAFETY: getrusage writes the struct it is given; zeroed is a valid rusage
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0, 0);
    }
    let ms = |t: libc::timeval| (t.tv_sec as u64) * 1000 + (t.tv_usec as u64) / 1000;
    (ms(ru.ru_utime) + ms(ru.ru_stime), (ru.ru_nvcsw + ru.ru_nivcsw) as u64)
}

/// The "since the last call" halves of `statistics/1`'s pairs, per node.
#[derive(Default)]
struct LastAsked {
    runtime: AtomicU64,
    wall_clock: AtomicU64,
    reductions: AtomicU64,
}

fn since(last: &AtomicU64, now: u64) -> Term {
    tuple(vec![int(now), int(now.saturating_sub(last.swap(now, Ordering::Relaxed)))])
}

fn total_reductions(node: &Node) -> u64 {
    node.exited_reductions() + node.all_process_info().iter().map(|i| i.reductions).sum::<u64>()
}

fn run_queue(node: &Node) -> usize {
    node.all_process_info().iter().filter(|i| i.message_queue_len > 0).count()
}

fn statistics(node: &Node, m: &Atom, f: &Atom, args: &[Term]) -> RpcResult {
    let [Term::Atom(what)] = args else { return Err(RpcError::badarg(m, f, args)) };
    let last = node.extension_or_insert_with(LastAsked::default);
    Ok(match what.as_str() {
        "runtime" => since(&last.runtime, rusage().0),
        "wall_clock" => since(&last.wall_clock, node.uptime().as_millis() as u64),
        "reductions" => since(&last.reductions, total_reductions(node)),
        "run_queue" => int(run_queue(node)),
        "io" => {
            let (input, output) = node.dist_io();
            tuple(vec![pair("input", int(input)), pair("output", int(output))])
        }
        "context_switches" => tuple(vec![int(rusage().1), Term::Int(0)]),
        "scheduler_wall_time" | "scheduler_wall_time_all" => Term::atom("undefined"),
        _ => return Err(RpcError::badarg(m, f, args)),
    })
}

/// `observer_backend:sys_info/0`, in OTP 27's order, from `erlang:system_info/1`.
fn sys_info(node: &Node) -> Term {
    let info = |item: &str| super::builtins::system_info_item(node, item).unwrap_or_else(|| Term::atom("undefined"));
    let (input, output) = node.dist_io();
    let mut v = vec![
        pair("uptime", int(node.uptime().as_millis() as u64)),
        pair("run_queue", int(run_queue(node))),
        pair("io_input", int(input)),
        pair("io_output", int(output)),
    ];
    for i in [
        "logical_processors",
        "logical_processors_online",
        "logical_processors_available",
        "schedulers",
        "schedulers_online",
    ] {
        v.push(pair(i, info(i)));
    }
    v.push(pair("schedulers_available", info("schedulers_online")));
    for i in
        ["otp_release", "version", "system_architecture", "kernel_poll", "smp_support", "threads", "thread_pool_size"]
    {
        v.push(pair(i, info(i)));
    }
    v.push(pair("wordsize_internal", Term::Int(8)));
    v.push(pair("wordsize_external", Term::Int(8)));
    v.push(pair("alloc_info", Term::nil()));
    for i in [
        "process_count",
        "atom_limit",
        "atom_count",
        "process_limit",
        "process_count",
        "port_limit",
        "port_count",
        "ets_limit",
        "ets_count",
        "dist_buf_busy_limit",
    ] {
        v.push(pair(i, info(i)));
    }
    let Term::List(mem) = memory_list(&Memory::read(node)) else { unreachable!("memory_list makes a list") };
    v.extend(mem);
    Term::List(v)
}

/// `#etop_proc_info{}` for every process but `me`.
fn etop_procs(node: &Node, me: &Pid) -> Vec<Term> {
    node.all_process_info()
        .into_iter()
        .filter(|i| &i.pid != me)
        .map(|i| {
            let name = match &i.registered_name {
                Some(n) => Term::Atom(n.clone()),
                None => initial_call_name(&i),
            };
            tuple(vec![
                Term::atom("etop_proc_info"),
                Term::Pid(i.pid.clone()),
                int(i.memory),
                int(i.reductions),
                name,
                Term::Int(0),
                mfa(&i.current_function),
                int(i.message_queue_len),
            ])
        })
        .collect()
}

/// `observer_backend:initial_call/2`: a `proc_lib` process is named by its `'$initial_call'`
/// (`proc_lib:translate_initial_call/1`), any other by its initial call.
fn initial_call_name(i: &ProcessInfo) -> Term {
    let proc_lib = i.initial_call.module == "proc_lib" && i.initial_call.function == "init_p";
    let own = i.dictionary.iter().find(|(k, _)| k.is_atom("$initial_call")).map(|(_, v)| v.clone());
    match own {
        Some(v) if proc_lib => v,
        _ => mfa(&i.initial_call),
    }
}

/// `erlang:timestamp()`.
fn timestamp() -> Term {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let s = now.as_secs();
    tuple(vec![int(s / 1_000_000), int(s % 1_000_000), int(now.subsec_micros())])
}

/// `observer_backend:etop_collect(Collector)`: sends `{self(), #etop_info{}}` to `Collector`.
fn etop_collect(node: Node, me: Pid, args: Vec<Term>) -> BoxFuture {
    Box::pin(async move {
        let [Term::Pid(collector)] = args.as_slice() else {
            return Err(badarg("observer_backend", "etop_collect", &args));
        };
        let procs = etop_procs(&node, &me);
        let mem = Memory::read(&node);
        let memi = ["total", "processes", "ets", "atom", "code", "binary"]
            .iter()
            .map(|i| pair(i, int(mem.get(i).unwrap_or(0))))
            .collect();
        let info = tuple(vec![
            Term::atom("etop_info"),
            timestamp(),
            int(procs.len()),
            Term::atom("undefined"),
            Term::atom("undefined"),
            int(run_queue(&node)),
            Term::nil(),
            Term::List(memi),
            Term::List(procs),
        ]);
        node.send_as(&me, Dest::Pid(collector.clone()), tuple(vec![Term::Pid(me.clone()), info]));
        Ok(Term::atom("ok"))
    })
}

/// `observer_backend:procs_info(Collector)`: sends `{procs_info, self(), [#etop_proc_info{}]}`
/// in chunks of [`PROCS_INFO_CHUNK`].
fn procs_info(node: Node, me: Pid, args: Vec<Term>) -> BoxFuture {
    Box::pin(async move {
        let [Term::Pid(collector)] = args.as_slice() else {
            return Err(badarg("observer_backend", "procs_info", &args));
        };
        let procs = etop_procs(&node, &me);
        let msg =
            |chunk: &[Term]| tuple(vec![Term::atom("procs_info"), Term::Pid(me.clone()), Term::List(chunk.to_vec())]);
        if procs.is_empty() {
            node.send_as(&me, Dest::Pid(collector.clone()), msg(&[]));
        }
        for c in procs.chunks(PROCS_INFO_CHUNK) {
            node.send_as(&me, Dest::Pid(collector.clone()), msg(c));
        }
        Ok(Term::atom("ok"))
    })
}

fn badarg(m: &str, f: &str, args: &[Term]) -> RpcError {
    RpcError::badarg(&Atom::new(m), &Atom::new(f), args)
}

/// `dbg:do_relay(Parent, {port, Fun})` (OTP 25) and `dbg:do_relay(Session, Parent, {port, Fun})`
/// (OTP 26+, whose `etop` always traces a remote node): what `dbg:tracer(Node, port, Fun)`
/// spawns on the traced node. `dbg` waits for `{started, Tracer}` (`{started, Tracer,
/// Session}`) without a timeout, so this answers at once. A Rust node cannot trace, but the
/// tracer `dbg:trace_port(ip, {Port, QSize})` describes is a TCP port the tracing tool (etop's
/// reader) connects to: it is opened and left silent (no trace events: etop shows no runtime),
/// and closes when `dbg` ends the relay (the link). Any other tracer is answered the same way.
fn dbg_relay(node: Node, me: Pid, args: Vec<Term>) -> BoxFuture {
    Box::pin(async move {
        let (session, parent, relp) = match args.as_slice() {
            [parent, relp] => (None, parent, relp),
            [_name, parent, relp] => (Some(Term::Ref(node.make_ref())), parent, relp),
            _ => return Err(badarg("dbg", "do_relay", &args)),
        };
        let Term::Pid(parent) = parent else { return Err(badarg("dbg", "do_relay", &args)) };
        let listener = match trace_ip_port(relp) {
            Some(port) => tokio::net::TcpListener::bind(("0.0.0.0", port)).await.ok(),
            None => None,
        };
        let mut started = vec![Term::atom("started"), Term::Pid(me.clone())];
        started.extend(session);
        node.send_as(&me, Dest::Pid(parent.clone()), tuple(started));
        // until the link to `dbg` ends this process: hold any connection, send nothing
        let mut held = Vec::new();
        loop {
            match &listener {
                Some(l) => match l.accept().await {
                    Ok((sock, _)) if held.len() < MAX_TRACE_CLIENTS => held.push(sock),
                    Ok(_) => {}
                    Err(_) => std::future::pending::<()>().await,
                },
                None => std::future::pending::<()>().await,
            }
        }
    })
}

/// Most connections a relay's silent trace port holds (etop opens one).
const MAX_TRACE_CLIENTS: usize = 8;

/// The TCP port of a `{port, Fun}` tracer made by `dbg:trace_port(ip, {Port, QSize})`: the
/// fun's environment is `[QSize, Port]` (OTP 25, 27 and 29).
fn trace_ip_port(relp: &Term) -> Option<u16> {
    let [tag, Term::LocalFun(f)] = relp.as_tuple()? else { return None };
    if !tag.is_atom("port") || f.module != "dbg" {
        return None;
    }
    match f.free_vars.as_slice() {
        [Term::Int(_qsize), Term::Int(port)] => u16::try_from(*port).ok().filter(|p| *p > 0),
        _ => None,
    }
}
