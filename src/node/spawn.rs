//! Spawning across nodes (`erl_dist_protocol`, "SPAWN_REQUEST" / "SPAWN_REPLY"; ERTS
//! `erlang:spawn_request/5`; protocol notes 9.1 and 9.3).
//!
//! **Serving.** A peer's `SPAWN_REQUEST {29, ReqId, From, GroupLeader, {M, F, Arity}, Opts}`
//! with the argument list as payload starts a local process. The `link` and `monitor` options
//! are set up before the process runs: `monitor` makes `From` a watcher of the new process
//! under the reference `ReqId`, so its exit reaches the requester as
//! `PAYLOAD_MONITOR_P_EXIT {28, NewPid, From, ReqId}`. The `SPAWN_REPLY {31, ReqId, From,
//! Flags, NewPid}` names the options set up (`ERTS_DIST_SPAWN_FLAG_LINK` = 1,
//! `ERTS_DIST_SPAWN_FLAG_MONITOR` = 2) and always precedes any signal from the new process on
//! the connection. What the process runs is up to the [`SpawnHandler`] whoever composed the
//! node installed (the rpc service runs `erpc:execute_call/4` and registered functions); with
//! none, the process exits with `{undef, [{M, F, Args, []}]}`, as BEAM's process does for a
//! function that is not loaded.
//!
//! A request with options this node does not understand is answered with the error `badopt`,
//! one beyond [`MAX_PROCESSES`] with `system_limit`.
//!
//! **Requesting.** [`Node::spawn_request`] sends a request for a local process and remembers
//! it until the reply; the reply installs the monitor and link the peer set up, and delivers
//! `{spawn_reply, ReqId, ok, Pid}` or `{spawn_reply, ReqId, error, Reason}` to the requester.
//! A lost connection answers every pending request with `noconnection`.

use super::outbound::SpawnWhat;
use super::process::Watcher;
use std::future::Future;
use std::pin::Pin;

use super::{MonitorTarget, Node, Outbound, Process};
use crate::dist::control::{ERTS_DIST_SPAWN_FLAG_LINK, ERTS_DIST_SPAWN_FLAG_MONITOR};
use crate::dist::{Mfa, SpawnResult};
use crate::term::{Atom, Pid, Reference, Term};

/// Most local processes this node runs; a spawn request beyond it is answered `system_limit`
/// (BEAM's default process limit, `+P`).
pub const MAX_PROCESSES: usize = 262_144;

/// The options of a spawn request that have an effect across nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpawnOpts {
    /// Link the requester and the new process.
    pub link: bool,
    /// The requester monitors the new process (the monitor reference is the request id).
    pub monitor: bool,
}

/// `spawn_opt` options that only tune the new process on BEAM; accepted and ignored here.
const TUNING_OPTIONS: &[&str] = &[
    "priority",
    "fullsweep_after",
    "min_heap_size",
    "min_bin_vheap_size",
    "max_heap_size",
    "message_queue_data",
    "async_dist",
];

impl SpawnOpts {
    /// Reads an option list as a peer sends it; `None` for anything this node does not
    /// understand (answered `badopt`).
    pub fn parse(opts: &Term) -> Option<SpawnOpts> {
        let Term::List(items) = opts else { return None };
        let mut o = SpawnOpts::default();
        for item in items {
            match item {
                Term::Atom(a) if a == "link" => o.link = true,
                Term::Atom(a) if a == "monitor" => o.monitor = true,
                Term::Tuple(t) => match t.as_slice() {
                    [Term::Atom(a), Term::List(_)] if a == "monitor" => o.monitor = true,
                    [Term::Atom(a), _] if TUNING_OPTIONS.contains(&a.as_str()) => {}
                    _ => return None,
                },
                _ => return None,
            }
        }
        Some(o)
    }

    /// The option list sent in a request.
    pub fn to_term(self) -> Term {
        let mut v = Vec::new();
        if self.link {
            v.push(Term::atom("link"));
        }
        if self.monitor {
            v.push(Term::atom("monitor"));
        }
        Term::List(v)
    }

    fn reply_flags(self) -> u32 {
        let mut f = 0;
        if self.link {
            f |= ERTS_DIST_SPAWN_FLAG_LINK;
        }
        if self.monitor {
            f |= ERTS_DIST_SPAWN_FLAG_MONITOR;
        }
        f
    }
}

/// What a process started by a peer's `SPAWN_REQUEST` runs: the node layer sets up the process
/// (links, monitors, the reply) and hands its body to the handler installed with
/// [`Node::set_spawn_handler`]. The rpc service installs one that runs `erpc:execute_call/4`,
/// `erpc:execute_cast/3` and the functions registered for rpc.
pub trait SpawnHandler: Send + Sync + std::fmt::Debug + 'static {
    /// The body of the new process `p`, which runs `M:F(Args...)`; the value returned is its
    /// exit reason.
    fn run(&self, p: Process, mfa: Mfa, args: Vec<Term>) -> Pin<Box<dyn Future<Output = Term> + Send>>;
}

/// The body of a spawned process when no [`SpawnHandler`] is installed: no function is
/// loaded, so it exits `{undef, [{M, F, Args, []}]}`, as BEAM's process does.
fn undef_exit(mfa: &Mfa, args: Vec<Term>) -> Term {
    let frame = Term::Tuple(vec![
        Term::Atom(mfa.module.clone()),
        Term::Atom(mfa.function.clone()),
        Term::List(args),
        Term::nil(),
    ]);
    Term::Tuple(vec![Term::atom("undef"), Term::List(vec![frame])])
}

fn spawn_reply_msg(req_id: &Reference, ok: bool, result: Term) -> Term {
    Term::Tuple(vec![
        Term::atom("spawn_reply"),
        Term::Ref(req_id.clone()),
        Term::atom(if ok { "ok" } else { "error" }),
        result,
    ])
}

impl Node {
    /// A peer's `SPAWN_REQUEST` (see the module docs).
    pub(crate) fn handle_spawn_request(
        &self,
        req_id: Reference,
        from: Pid,
        group_leader: Pid,
        mfa: Mfa,
        opts: Term,
        args: Term,
    ) {
        let refuse = |why: &str| {
            tracing::debug!(?mfa, why, "spawn request refused");
            self.remote(
                &from.node.clone(),
                Outbound::SpawnReply {
                    req_id: req_id.clone(),
                    to: from.clone(),
                    flags: 0,
                    result: SpawnResult::Error(Atom::new(why)),
                },
            );
        };
        let Some(o) = SpawnOpts::parse(&opts) else { return refuse("badopt") };
        let Term::List(args) = args else { return refuse("badarg") };
        if self.process_count() >= MAX_PROCESSES {
            return refuse("system_limit");
        }
        tracing::trace!(?mfa, ?o, "spawn request");
        let handler = self.spawn_handler();
        let label = mfa.clone();
        self.spawn_with(
            |entry| {
                {
                    let mut st = entry.state();
                    st.labels.initial_call = Some(label);
                    st.labels.group_leader = Some(group_leader);
                    if o.link {
                        st.links.insert(from.clone());
                    }
                    if o.monitor {
                        st.monitored_by.insert(
                            req_id.clone(),
                            Watcher { pid: from.clone(), by_name: None, call: Default::default() },
                        );
                    }
                }
                let reply = Outbound::SpawnReply {
                    req_id: req_id.clone(),
                    to: from.clone(),
                    flags: o.reply_flags(),
                    result: SpawnResult::Spawned(entry.pid.clone()),
                };
                self.remote(&from.node, reply);
            },
            move |p| async move {
                match handler {
                    Some(h) => h.run(p, mfa, args).await,
                    None => undef_exit(&mfa, args),
                }
            },
        );
    }

    /// Asks `peer` to spawn `M:F(Args...)` for the local process `from` (`spawn_request/5`);
    /// returns the request id. The reply arrives in `from`'s mailbox as
    /// `{spawn_reply, ReqId, ok, Pid}` or `{spawn_reply, ReqId, error, Reason}`; with
    /// `opts.monitor`, the new process's exit arrives as `{'DOWN', ReqId, process, Pid, Reason}`.
    /// A peer that does not support spawning is answered `notsup` at once.
    pub fn spawn_request(&self, from: &Pid, peer: &Atom, mfa: Mfa, args: Vec<Term>, opts: SpawnOpts) -> Reference {
        let req_id = self.make_ref();
        let entry = self.lookup(from);
        if self.peer_flags(peer).is_some_and(|f| !f.contains(crate::dist::DistFlags::SPAWN)) {
            if let Some(e) = entry {
                e.deliver(spawn_reply_msg(&req_id, false, Term::atom("notsup")));
            }
            return req_id;
        }
        if let Some(e) = entry {
            e.state().spawn_requests.insert(req_id.clone(), peer.clone());
        }
        let signal = Outbound::SpawnRequest {
            req_id: req_id.clone(),
            from: from.clone(),
            group_leader: from.clone(),
            what: Box::new(SpawnWhat { mfa, opts: opts.to_term(), args: Term::List(args) }),
        };
        self.remote(peer, signal);
        req_id
    }

    /// Forgets a spawn request that has not been answered (`spawn_request_abandon/1`): `true`
    /// if it was still pending. A late reply then undoes the link and monitor.
    pub fn spawn_request_abandon(&self, from: &Pid, req_id: &Reference) -> bool {
        self.lookup(from).is_some_and(|e| e.state().spawn_requests.remove(req_id).is_some())
    }

    /// A peer's `SPAWN_REPLY` to one of our requests.
    pub(crate) fn handle_spawn_reply(&self, req_id: Reference, to: Pid, flags: u32, result: SpawnResult) {
        let entry = self.lookup(&to);
        let pending = entry.as_ref().and_then(|e| e.state().spawn_requests.remove(&req_id));
        match (entry, pending, result) {
            (Some(e), Some(_), SpawnResult::Spawned(pid)) => {
                {
                    let mut st = e.state();
                    if flags & ERTS_DIST_SPAWN_FLAG_MONITOR != 0 {
                        st.monitors.insert(req_id.clone(), MonitorTarget::Pid(pid.clone()));
                    }
                    if flags & ERTS_DIST_SPAWN_FLAG_LINK != 0 {
                        st.links.insert(pid.clone());
                    }
                }
                e.deliver(spawn_reply_msg(&req_id, true, Term::Pid(pid)));
            }
            (Some(e), Some(_), SpawnResult::Error(why)) => e.deliver(spawn_reply_msg(&req_id, false, Term::Atom(why))),
            (entry, _, SpawnResult::Spawned(pid)) => {
                // abandoned, or the requester is gone: undo what the peer set up
                let node = pid.node.clone();
                if flags & ERTS_DIST_SPAWN_FLAG_LINK != 0 {
                    let reason = Term::atom(if entry.is_some() { "abandoned" } else { "noproc" });
                    self.remote(&node, Outbound::Exit { from: to.clone(), to: pid.clone(), reason });
                }
                if flags & ERTS_DIST_SPAWN_FLAG_MONITOR != 0 {
                    self.remote(
                        &node,
                        Outbound::Demonitor { from: to, target: MonitorTarget::Pid(pid), reference: req_id },
                    );
                }
            }
            (_, _, SpawnResult::Error(_)) => {}
        }
    }

    /// Answers a pending spawn request with `{spawn_reply, ReqId, error, noconnection}`.
    pub(crate) fn spawn_request_failed(&self, from: &Pid, req_id: &Reference) {
        if let Some(e) = self.lookup(from) {
            if e.state().spawn_requests.remove(req_id).is_some() {
                e.deliver(spawn_reply_msg(req_id, false, super::noconnection()));
            }
        }
    }
}
