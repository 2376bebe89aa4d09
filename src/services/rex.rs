//! `rex`, the `rpc` server every node runs (Kernel `rpc`), client side: ask a node to apply
//! `M:F(A...)` by sending `{From, {call, M, F, A, GroupLeader}}` to `{rex, Node}` and waiting
//! for `{rex, Result}` (how `erl_call -a` and pre-OTP 23 `rpc:call` work; protocol notes 9.2).

use std::time::Duration;

use crate::gen_server::CallError;
use crate::node::{normal, Dest, Node, Process};
use crate::term::{Atom, Term};

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
