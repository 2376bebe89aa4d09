//! Calling functions on other nodes, as `erpc` does (protocol notes 9.3): a short-lived local
//! process sends `SPAWN_REQUEST` for `erpc:execute_call(Ref, M, F, A)` with the option
//! `monitor`, and reads the outcome from the `DOWN` reason of the remote process
//! (`erpc.erl`, `call/5` and `result/4`). On timeout the request is abandoned (or the monitor
//! removed, which sends `DEMONITOR_P`); nothing is killed, as with `erpc`. A peer that did not
//! negotiate `DFLAG_SPAWN` (a C node, a pre-OTP 23 node) is asked through its `rex` server
//! instead ([`super::super::rex::call`]).
//!
//! The calling process is also the group leader of the remote process, as with `erpc`: output
//! the remote function writes (`io:format`) is acknowledged and discarded, input requests are
//! answered `{error, enotsup}`, so the remote function never blocks on us.

use std::time::Duration;

use tokio::time::Instant;

use super::{RpcError, RpcResult};
use crate::dist::{DistFlags, Mfa};
use crate::node::{Dest, Node, Process, SpawnOpts, normal};
use crate::term::{Atom, Pid, Reference, Term};

/// What the calling process waits for.
enum Got {
    /// `{spawn_reply, ReqId, ok, Pid}`: keep waiting for the `DOWN`.
    Spawned,
    /// `{spawn_reply, ReqId, error, Reason}`.
    SpawnError(Term),
    /// `{'DOWN', ReqId, process, Pid, Reason}`.
    Down(Term),
    /// An I/O request from the remote process (we are its group leader).
    Io { from: Pid, reply_as: Term, request: Term },
}

fn classify(m: &Term, req: &Reference) -> Option<Got> {
    match m.as_tuple()? {
        [tag, Term::Ref(r), ok, result] if tag.is_atom("spawn_reply") && r == req => {
            if ok.is_atom("ok") {
                Some(Got::Spawned)
            } else {
                Some(Got::SpawnError(result.clone()))
            }
        }
        [tag, Term::Ref(r), _, _, reason] if tag.is_atom("DOWN") && r == req => Some(Got::Down(reason.clone())),
        [tag, Term::Pid(from), reply_as, request] if tag.is_atom("io_request") => {
            Some(Got::Io { from: from.clone(), reply_as: reply_as.clone(), request: request.clone() })
        }
        _ => None,
    }
}

/// The answer of a group leader that discards output and has no input (the I/O protocol,
/// STDLIB User's Guide "The Erlang I/O Protocol").
pub fn discard_io_reply(request: &Term) -> Term {
    let put = match request.as_tuple() {
        Some([Term::Atom(op), ..]) => op == "put_chars",
        _ => false,
    };
    let all_put = match request.as_tuple() {
        Some([Term::Atom(op), Term::List(reqs)]) if op == "requests" => {
            reqs.iter().all(|r| matches!(r.as_tuple(), Some([Term::Atom(op), ..]) if op == "put_chars"))
        }
        _ => false,
    };
    if put || all_put { Term::atom("ok") } else { Term::Tuple(vec![Term::atom("error"), Term::atom("enotsup")]) }
}

fn erpc_mfa(function: &str, arity: u8) -> Mfa {
    Mfa { module: Atom::new("erpc"), function: Atom::new(function), arity }
}

impl Node {
    /// `erpc:call(Peer, M, F, Args, Timeout)`: the function's value, or how it failed
    /// ([`RpcError`]; `rpc:call`'s shape is [`RpcError::rpc_result`]). `timeout` `None` waits
    /// forever. A call to this node itself runs the local function directly.
    pub async fn rpc_call(
        &self,
        peer: &Atom,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: Option<Duration>,
    ) -> RpcResult {
        let (m, f) = (Atom::new(module), Atom::new(function));
        if peer == self.name() {
            let call = super::apply(self, &m, &f, args);
            return match timeout {
                Some(t) => tokio::time::timeout(t, call).await.unwrap_or_else(|_| Err(RpcError::timeout())),
                None => call.await,
            };
        }
        if !self.connect(peer).await {
            return Err(RpcError::noconnection());
        }
        match self.peer_flags(peer) {
            None => Err(RpcError::noconnection()),
            Some(flags) if !flags.contains(DistFlags::SPAWN) => {
                let reply = super::super::rex::call(self, peer, module, function, args, timeout).await;
                match reply {
                    Ok(v) => match v.as_tuple() {
                        Some([tag, why]) if tag.is_atom("badrpc") => Err(RpcError::BadRpc(why.clone())),
                        _ => Ok(v),
                    },
                    Err(crate::gen_server::CallError::Timeout) => Err(RpcError::timeout()),
                    Err(crate::gen_server::CallError::NodeDown(_)) => Err(RpcError::noconnection()),
                    Err(e) => Err(RpcError::Signal(e.reason())),
                }
            }
            Some(_) => self.erpc_call(peer.clone(), m, f, args, timeout).await,
        }
    }

    async fn erpc_call(&self, peer: Atom, m: Atom, f: Atom, args: Vec<Term>, timeout: Option<Duration>) -> RpcResult {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(move |mut p: Process| async move {
            let _ = tx.send(erpc_call_in(&mut p, &peer, m, f, args, timeout).await);
            normal()
        });
        rx.await.unwrap_or_else(|_| Err(RpcError::Signal(Term::atom("killed"))))
    }

    /// `erpc:cast(Peer, M, F, Args)`: runs the function there and does not wait. Returns once
    /// the request is on its way (after connecting if needed); a peer that cannot be reached
    /// is ignored, as with `erpc:cast`.
    pub async fn rpc_cast(&self, peer: &Atom, module: &str, function: &str, args: Vec<Term>) {
        let (m, f) = (Atom::new(module), Atom::new(function));
        if peer == self.name() {
            self.spawn(move |p| async move {
                if let Err(e) = super::apply_in(&p, &m, &f, args).await {
                    tracing::warn!("rpc cast failed: {e}");
                }
                normal()
            });
            return;
        }
        if !self.connect(peer).await {
            return;
        }
        let spawn = self.peer_flags(peer).is_some_and(|f| f.contains(DistFlags::SPAWN));
        let (m, f) = (Term::Atom(m), Term::Atom(f));
        if spawn {
            let args = vec![m, f, Term::List(args)];
            self.spawn_request(self.system_pid(), peer, erpc_mfa("execute_cast", 3), args, SpawnOpts::default());
        } else {
            let req = Term::Tuple(vec![Term::atom("cast"), m, f, Term::List(args), Term::atom("user")]);
            self.cast(Dest::Remote(Atom::new(super::super::rex::NAME), peer.clone()), req);
        }
    }

    /// `erpc:multicall(Peers, M, F, Args, Timeout)`: calls every peer concurrently; one result
    /// per peer, in order. A node that is down gives `Err(RpcError::Erpc(noconnection))`, whose
    /// `rpc` shape is `{badrpc, nodedown}`.
    pub async fn multicall(
        &self,
        peers: &[Atom],
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: Option<Duration>,
    ) -> Vec<RpcResult> {
        let tasks: Vec<_> = peers
            .iter()
            .map(|peer| {
                let (node, peer, m, f, a) =
                    (self.clone(), peer.clone(), module.to_string(), function.to_string(), args.clone());
                tokio::spawn(async move { node.rpc_call(&peer, &m, &f, a, timeout).await })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap_or_else(|_| Err(RpcError::Signal(Term::atom("killed")))));
        }
        out
    }
}

/// `erpc:call/5` from inside process `p`.
async fn erpc_call_in(
    p: &mut Process,
    peer: &Atom,
    m: Atom,
    f: Atom,
    args: Vec<Term>,
    timeout: Option<Duration>,
) -> RpcResult {
    let res = Term::Ref(p.make_ref());
    let call_args = vec![res.clone(), Term::Atom(m), Term::Atom(f), Term::List(args)];
    let opts = SpawnOpts { link: false, monitor: true };
    let node = p.node().clone();
    let req = node.spawn_request(p.pid(), peer, erpc_mfa("execute_call", 4), call_args, opts);
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match p.receive_match(remaining, |m| classify(m, &req)).await {
            Some(Got::Spawned) => continue,
            Some(Got::SpawnError(why)) => return Err(RpcError::Erpc(why)),
            Some(Got::Down(reason)) => return RpcError::from_down(&res, reason),
            Some(Got::Io { from, reply_as, request }) => {
                let reply = discard_io_reply(&request);
                p.send(Dest::Pid(from), Term::Tuple(vec![Term::atom("io_reply"), reply_as, reply]));
            }
            None => {
                if node.spawn_request_abandon(p.pid(), &req) {
                    return Err(RpcError::timeout());
                }
                // spawned: stop watching (DEMONITOR_P); a result that already arrived wins
                node.demonitor(p.pid(), &req);
                let late = p.receive_match(Some(Duration::ZERO), |m| match classify(m, &req) {
                    Some(Got::Down(r)) => Some(r),
                    _ => None,
                });
                return match late.await {
                    Some(reason) => RpcError::from_down(&res, reason),
                    None => Err(RpcError::timeout()),
                };
            }
        }
    }
}
