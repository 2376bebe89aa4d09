//! The functions every erlnode node answers over `rpc`, with the results BEAM gives for them
//! (ERTS `erlang` module reference), so that tools that probe a node (`rpc:call(N, erlang,
//! node, [])`, `erl_call -a 'erlang node'`, observer-style `system_info` queries) work:
//!
//! | function                   | result                                                   |
//! |----------------------------|----------------------------------------------------------|
//! | `erlang:node/0`            | this node's name                                         |
//! | `erlang:nodes/0`           | connected visible nodes                                  |
//! | `erlang:nodes/1`           | `visible`, `hidden`, `connected`, `this`, `known`, or a list of them |
//! | `erlang:registered/0`      | locally registered names                                 |
//! | `erlang:whereis/1`         | pid or `undefined`                                       |
//! | `erlang:is_alive/0`        | `true` when distributed                                  |
//! | `erlang:system_info/1`     | see [`system_info`]                                      |
//! | `erlang:apply/3`           | applies another registered function                      |
//! | `global:whereis_name/1`    | the globally registered pid, or `undefined` (a hidden node, which runs no `global`, answers for its local names) |
//! | `erl_eval:eval_str/1`      | `{error, "..."}`: a Rust node cannot evaluate Erlang (what `erl_call -e` asks) |
//! | `code:ensure_loaded/1`     | `{module, M}` for a module with registered functions; for `shell`, `iex` and `'Elixir.IEx'` `{error, "erlnode is a Rust node: it cannot run a shell"}`, which `erl -remsh` and `iex --remsh` (OTP 26+) print before they exit; else `{error, nofile}` |
//! | `erlang:function_exported/3` | `true` for a function this node serves through rpc or spawn (observer asks it before it lists a node's processes with `observer_backend:procs_info/1`) |
//! | `shell:start/0`            | what OTP 25's `erl -remsh` calls: a process that writes [`NO_SHELL`] to the caller's group leader and exits |
//!
//! Errors follow BEAM's: a bad argument raises `badarg` with the stack a BIF leaves,
//! `[{erlang, F, Args, []}]`.

use super::{Registry, RpcError, RpcResult};
use crate::node::{Dest, Node, Process};
use crate::term::{Atom, Pid, Term};

/// `erlang:system_info(otp_release)`: the OTP release whose distribution protocol this node
/// implements and was checked against (OTP 25.2.3, whose MANDATORY_25_DIGEST handshake it
/// requires). A numeric string, as on BEAM, because tools parse it with `list_to_integer/1`.
pub const OTP_RELEASE: &str = "25";
/// `erlang:system_info(machine)`: BEAM answers `"BEAM"`; this node is not a BEAM.
pub const MACHINE: &str = "erlnode";
/// Why `erl -remsh` and `iex --remsh` cannot attach to this node.
pub const NO_SHELL: &str = "erlnode is a Rust node: it cannot run a shell";
/// The modules a remote shell loads first (`erl -remsh`, `iex --remsh` on Elixir 1.14 and later).
const SHELL_MODULES: &[&str] = &["shell", "iex", "Elixir.IEx"];
/// How long the stand-in shell waits for the caller's group leader to print [`NO_SHELL`].
const NO_SHELL_PRINT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// What `erl_eval:eval_str/1` (`erl_call -e`) answers.
pub const EVAL_UNSUPPORTED: &str = "erlnode is a Rust node: it cannot evaluate Erlang expressions";

pub(super) fn install(r: &Registry) {
    r.register_builtin("erlang", "node", 0, |node, _, _, _| Ok(Term::Atom(node.name().clone())));
    r.register_builtin("erlang", "nodes", 0, |node, _, _, _| Ok(atoms(node.nodes())));
    r.register_builtin("erlang", "nodes", 1, nodes);
    r.register_builtin("erlang", "registered", 0, |node, _, _, _| Ok(atoms(node.registered())));
    r.register_builtin("erlang", "whereis", 1, |node, m, f, args| match args {
        [Term::Atom(name)] => Ok(node.whereis(name).map(Term::Pid).unwrap_or_else(|| Term::atom("undefined"))),
        _ => Err(RpcError::badarg(m, f, args)),
    });
    r.register_builtin("erlang", "is_alive", 0, |node, _, _, _| {
        Ok(Term::atom(if node.is_distributed() { "true" } else { "false" }))
    });
    r.register_builtin("erlang", "system_info", 1, system_info);
    r.register_builtin("global", "whereis_name", 1, |node, _, _, args| {
        let found = match args {
            [name] => match node.whereis_global(name) {
                Some(pid) => Some(pid),
                // a hidden node runs no global: services::register_name registered locally
                None if node.extension::<crate::services::gns::GlobalService>().is_none() => match name {
                    Term::Atom(a) => node.whereis(a),
                    _ => None,
                },
                None => None,
            },
            _ => None,
        };
        Ok(found.map(Term::Pid).unwrap_or_else(|| Term::atom("undefined")))
    });
    super::introspect::install(r);
    r.register_builtin("erlang", "function_exported", 3, |node, m, f, args| match args {
        [Term::Atom(module), Term::Atom(function), Term::Int(arity)] => Ok(Term::atom(
            if usize::try_from(*arity).is_ok_and(|a| node.rpc().is_registered(module.as_str(), function.as_str(), a)) {
                "true"
            } else {
                "false"
            },
        )),
        _ => Err(RpcError::badarg(m, f, args)),
    });
    r.register_builtin("code", "ensure_loaded", 1, |node, m, f, args| match args {
        [Term::Atom(module)] if SHELL_MODULES.contains(&module.as_str()) => {
            Ok(Term::Tuple(vec![Term::atom("error"), Term::charlist(NO_SHELL)]))
        }
        [Term::Atom(module)] if node.rpc().has_module(module.as_str()) => {
            Ok(Term::Tuple(vec![Term::atom("module"), Term::Atom(module.clone())]))
        }
        [Term::Atom(_)] => Ok(Term::Tuple(vec![Term::atom("error"), Term::atom("nofile")])),
        _ => Err(RpcError::badarg(m, f, args)),
    });
    r.register_in_process("shell", "start", 0, no_shell);
    r.register_builtin("erl_eval", "eval_str", 1, |_, _, _, _| {
        Ok(Term::Tuple(vec![Term::atom("error"), Term::charlist(EVAL_UNSUPPORTED)]))
    });
}

/// `shell:start/0`, which OTP 25's `erl -remsh` calls through `rpc` with its group as the
/// group leader, and links to the pid it returns: a process that prints [`NO_SHELL`] there
/// and exits, so the user reads why instead of a bare "Shell process terminated!".
fn no_shell(node: Node, me: Pid, _args: Vec<Term>) -> super::BoxFuture {
    Box::pin(async move {
        let gl = node.process_info(&me).and_then(|i| i.group_leader);
        let shell = node.spawn(move |mut p: Process| async move {
            let Some(gl) = gl else { return crate::node::normal() };
            let reply_as = Term::Ref(p.make_ref());
            let text = Term::binary(format!("{NO_SHELL}\n"));
            let req = Term::Tuple(vec![Term::atom("put_chars"), Term::atom("unicode"), text]);
            p.send(
                Dest::Pid(gl),
                Term::Tuple(vec![Term::atom("io_request"), Term::Pid(p.pid().clone()), reply_as.clone(), req]),
            );
            p.receive_match(Some(NO_SHELL_PRINT_TIMEOUT), |m| match m.as_tuple() {
                Some([tag, r, _]) if tag.is_atom("io_reply") && *r == reply_as => Some(()),
                _ => None,
            })
            .await;
            Term::atom("no_shell")
        });
        Ok(Term::Pid(shell))
    })
}

fn atoms(v: Vec<Atom>) -> Term {
    Term::List(v.into_iter().map(Term::Atom).collect())
}

/// `erlang:nodes(Arg)`, `Arg` a node type or a list of node types.
fn nodes(node: &Node, m: &Atom, f: &Atom, args: &[Term]) -> RpcResult {
    let kinds: Vec<&Atom> = match args {
        [Term::Atom(a)] => vec![a],
        [Term::List(l)] => {
            let mut v = Vec::with_capacity(l.len());
            for t in l {
                match t {
                    Term::Atom(a) => v.push(a),
                    _ => return Err(RpcError::badarg(m, f, args)),
                }
            }
            v
        }
        _ => return Err(RpcError::badarg(m, f, args)),
    };
    let mut out: Vec<Atom> = Vec::new();
    for k in kinds {
        let add: Vec<Atom> = match k.as_str() {
            "visible" => node.nodes(),
            "hidden" => node.hidden_nodes(),
            "connected" => {
                let mut v = node.nodes();
                v.extend(node.hidden_nodes());
                v
            }
            "this" => vec![node.name().clone()],
            "known" => {
                let mut v = vec![node.name().clone()];
                v.extend(node.nodes());
                v.extend(node.hidden_nodes());
                v
            }
            _ => return Err(RpcError::badarg(m, f, args)),
        };
        for n in add {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    Ok(atoms(out))
}

/// `erlang:system_info(Item)` for the items that make sense on a Rust node, and those
/// observer's System tab reads (`observer_backend:sys_info/0`): `otp_release`
/// ([`OTP_RELEASE`]), `machine` ([`MACHINE`]), `version` (this crate's version),
/// `system_version`, `system_architecture`, `process_count`, `process_limit`
/// ([`crate::node::MAX_PROCESSES`]), `wordsize` and `{wordsize, internal | external}` (8),
/// `schedulers`, `schedulers_online`, `logical_processors`, `logical_processors_online`,
/// `logical_processors_available` (the runtime's available parallelism), `multi_scheduling`
/// (`enabled`), `smp_support`, `threads`, `kernel_poll` (`true`), `thread_pool_size` (0),
/// `creation`, `atom_count`/`port_count`/`ets_count` (0: erlnode has no atom table, ports or
/// ETS), their limits, `dist_buf_busy_limit`, `alloc_util_allocators` (`[]`). Anything else
/// raises `badarg`, as BEAM does for an unknown item.
pub fn system_info(node: &Node, m: &Atom, f: &Atom, args: &[Term]) -> RpcResult {
    let item = match args {
        [Term::Atom(item)] => Some(item.as_str()),
        [Term::Tuple(t)] => match t.as_slice() {
            [w, Term::Atom(k)] if w.is_atom("wordsize") && (k == "internal" || k == "external") => Some("wordsize"),
            _ => None,
        },
        _ => None,
    };
    item.and_then(|i| system_info_item(node, i)).ok_or_else(|| RpcError::badarg(m, f, args))
}

/// One `erlang:system_info/1` item (see [`system_info`]); `None` if unknown.
pub fn system_info_item(node: &Node, item: &str) -> Option<Term> {
    let cpus = || std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1);
    Some(match item {
        "otp_release" => Term::charlist(OTP_RELEASE),
        "machine" => Term::charlist(MACHINE),
        "version" => Term::charlist(env!("CARGO_PKG_VERSION")),
        "system_version" => Term::charlist(&format!(
            "erlnode {} (Rust node, OTP {OTP_RELEASE} distribution)\n",
            env!("CARGO_PKG_VERSION")
        )),
        "system_architecture" => Term::charlist(&format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)),
        "process_count" => Term::Int(node.process_count() as i64),
        "process_limit" => Term::Int(crate::node::MAX_PROCESSES as i64),
        "wordsize" => Term::Int(8),
        "schedulers"
        | "schedulers_online"
        | "logical_processors"
        | "logical_processors_online"
        | "logical_processors_available" => Term::Int(cpus()),
        "multi_scheduling" => Term::atom("enabled"),
        "smp_support" | "threads" | "kernel_poll" => Term::atom("true"),
        "thread_pool_size" | "atom_count" | "port_count" | "ets_count" => Term::Int(0),
        // erlnode has no ports or ETS tables and takes any atom a peer sends; the limits are
        // BEAM's defaults, since observer's System tab divides each count by its limit (a 0
        // crashed it: `badarith` in `observer_sys_wx:get_limit_count_info/2`, OTP 25)
        "atom_limit" => Term::Int(1_048_576),
        "port_limit" => Term::Int(65_536),
        "ets_limit" => Term::Int(8_192),
        "dist_buf_busy_limit" => Term::Int(1024 * 1024),
        "alloc_util_allocators" => Term::nil(),
        "creation" => Term::Int(node.creation() as i64),
        _ => return None,
    })
}
