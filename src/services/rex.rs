//! `rex`, the `rpc` server every node runs (Kernel `rpc`, `rpc.erl`; protocol notes 9.1, 9.2),
//! both sides.
//!
//! **Server** ([`Rex`], registered as `rex` by [`crate::services::start`]). Since OTP 23 BEAM calls
//! through `SPAWN_REQUEST` ([`crate::services::rpc`]); `rex` still serves:
//!
//! - `{From, {call, M, F, A, GroupLeader}}`, what `erl_call -a`/`-e` and hidden C nodes send:
//!   applied in a new process, answered `{rex, Result}` to `From` (as a plain `SEND` when the
//!   peer did not negotiate `SEND_SENDER`, which is what `erl_call` needs);
//! - `gen_server` calls `{call, M, F, A, GL}` (OTP 23/24 `rpc:call`, in a new process) and
//!   `{block_call, M, F, A, GL}` (`rpc:block_call`: in the server itself, which blocks it);
//! - the cast `{cast, M, F, A, GL}`;
//! - `{From, {sbcast, Name, Msg}}` (`rpc:sbcast`), answered `{rex, Node, Node}` or
//!   `{rex, Node, {nonexisting_name, Name}}`;
//! - `{From, {send, Name, Msg}}`: sends `{From, Msg}` to `Name`;
//! - `{From, features_request}`: `{features_reply, Node, [erpc]}`.
//!
//! Results have `rpc`'s shape ([`crate::services::rpc::rpcify`]): the value, a thrown value, or
//! `{badrpc, {'EXIT', Reason}}`.
//!
//! **Client** ([`call`]): ask a node to apply `M:F(A...)` by sending
//! `{From, {call, M, F, A, GroupLeader}}` to `{rex, Node}` and waiting for `{rex, Result}`.

use std::time::Duration;

use crate::gen_server::{self, CallError, CallReply, GenServer, Next};
use crate::node::{Dest, Node, Process, normal};
use crate::services::rpc::{self, rpcify};
use crate::term::{Atom, Pid, Term};

/// The registered name.
pub const NAME: &str = "rex";

/// `rpc:call(Node, M, F, A)` through `rex`: the result, or `{badrpc, Reason}` as a term.
pub async fn call(
    node: &Node,
    peer: &Atom,
    module: &str,
    function: &str,
    args: Vec<Term>,
    timeout: Option<Duration>,
) -> Result<Term, CallError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (peer, module, function) = (peer.clone(), Atom::new(module), Atom::new(function));
    node.spawn(move |mut p: Process| async move {
        let dest = Dest::Remote(Atom::new(NAME), peer.clone());
        let mref = p.monitor(dest.clone());
        let req = Term::Tuple(vec![
            Term::atom("call"),
            Term::Atom(module),
            Term::Atom(function),
            Term::List(args),
            Term::atom("user"),
        ]);
        p.send(dest, Term::Tuple(vec![Term::Pid(p.pid().clone()), req]));
        let got = p
            .receive_match(timeout, |m| match m.as_tuple() {
                Some([tag, reply]) if tag.is_atom("rex") => Some(Ok(reply.clone())),
                Some([down, Term::Ref(r), _, _, reason]) if down.is_atom("DOWN") && *r == mref => {
                    Some(Err(reason.clone()))
                }
                _ => None,
            })
            .await;
        let result = match got {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(reason)) if reason.is_atom("noconnection") => Err(CallError::NodeDown(peer)),
            Some(Err(reason)) if reason.is_atom("noproc") => Err(CallError::NoProc),
            Some(Err(reason)) => Err(CallError::Exit(reason)),
            None => Err(CallError::Timeout),
        };
        let _ = tx.send(result);
        normal()
    });
    rx.await.unwrap_or(Err(CallError::Exit(Term::atom("killed"))))
}

/// The `rex` server.
#[derive(Debug, Default)]
pub struct Rex;

/// `{call, M, F, A, GL}` or `{block_call, M, F, A, GL}` or `{cast, M, F, A, GL}`: the request
/// tag and `(M, F, A)` (argument types unchecked: `apply` checks them).
fn mfa_request(t: &Term) -> Option<(&Atom, (Term, Term, Term))> {
    match t.as_tuple()? {
        [Term::Atom(tag), m, f, a, _gl] => Some((tag, (m.clone(), f.clone(), a.clone()))),
        _ => None,
    }
}

/// `true` if the node may start another worker ([`crate::node::MAX_PROCESSES`]).
fn may_spawn(node: &Node) -> bool {
    node.process_count() < crate::node::MAX_PROCESSES
}

/// What `rex` answers when it cannot start a worker.
fn system_limit() -> Term {
    Term::Tuple(vec![Term::atom("badrpc"), Term::Tuple(vec![Term::atom("EXIT"), Term::atom("system_limit")])])
}

/// Applies `M:F(A)` in the process `p` and gives `rpc`'s shape of the outcome.
async fn execute(p: &Process, (m, f, a): (Term, Term, Term)) -> Term {
    let result = match (m, f, a) {
        (Term::Atom(m), Term::Atom(f), Term::List(a)) => rpc::apply_in(p, &m, &f, a).await,
        (m, f, a) => Err(rpc::RpcError::badarg(&Atom::new("erlang"), &Atom::new("apply"), &[m, f, a])),
    };
    rpcify(result)
}

impl GenServer for Rex {
    async fn handle_call(&mut self, request: Term, from: &gen_server::From, p: &mut Process) -> CallReply {
        match mfa_request(&request) {
            Some((tag, _)) if tag == "call" && !may_spawn(p.node()) => CallReply::Reply(system_limit()),
            Some((tag, mfa)) if tag == "call" => {
                let from = from.clone();
                p.node().spawn(move |worker: Process| async move {
                    let result = execute(&worker, mfa).await;
                    gen_server::reply(&worker, &from, result);
                    normal()
                });
                CallReply::NoReply
            }
            Some((tag, mfa)) if tag == "block_call" => CallReply::Reply(execute(p, mfa).await),
            // rex ignores other calls; the caller times out, as on BEAM
            _ => CallReply::NoReply,
        }
    }

    async fn handle_cast(&mut self, request: Term, p: &mut Process) -> Next {
        if let Some((tag, mfa)) = mfa_request(&request) {
            if tag == "cast" && may_spawn(p.node()) {
                p.node().spawn(move |worker: Process| async move {
                    let result = execute(&worker, mfa).await;
                    tracing::trace!(?result, "rex cast done");
                    normal()
                });
            }
        }
        Next::Continue
    }

    async fn handle_info(&mut self, msg: Term, p: &mut Process) -> Next {
        let Some([Term::Pid(from), req]) = msg.as_tuple() else { return Next::Continue };
        let from = from.clone();
        let me = Term::Atom(p.node().name().clone());
        if req.is_atom("features_request") {
            let reply = Term::Tuple(vec![Term::atom("features_reply"), me, Term::List(vec![Term::atom("erpc")])]);
            p.send(Dest::Pid(from), reply);
            return Next::Continue;
        }
        if let Some((tag, mfa)) = mfa_request(req) {
            if tag == "call" && !may_spawn(p.node()) {
                p.send(Dest::Pid(from), Term::Tuple(vec![Term::atom(NAME), system_limit()]));
            } else if tag == "call" {
                p.node().spawn(move |worker: Process| async move {
                    let result = execute(&worker, mfa).await;
                    worker.send(Dest::Pid(from), Term::Tuple(vec![Term::atom(NAME), result]));
                    normal()
                });
            }
            return Next::Continue;
        }
        match req.as_tuple() {
            Some([Term::Atom(tag), Term::Atom(name), m]) if tag == "sbcast" || tag == "send" => {
                let found = p.node().whereis(name);
                let rex_reply = |answer: Term| Term::Tuple(vec![Term::atom(NAME), me.clone(), answer]);
                match found {
                    Some(pid) if tag == "sbcast" => {
                        p.send(Dest::Pid(pid), m.clone());
                        p.send(Dest::Pid(from), rex_reply(me.clone()));
                    }
                    Some(pid) => p.send(Dest::Pid(pid), Term::Tuple(vec![Term::Pid(from), m.clone()])),
                    None => {
                        let missing = Term::Tuple(vec![Term::atom("nonexisting_name"), Term::Atom(name.clone())]);
                        p.send(Dest::Pid(from), rex_reply(missing));
                    }
                }
            }
            _ => tracing::debug!(?msg, "rex: unexpected message"),
        }
        Next::Continue
    }
}

/// Starts `rex` on `node`.
pub async fn start(node: &Node) -> Result<Pid, Term> {
    gen_server::start(node, Rex, Some(Atom::new(NAME))).await
}
