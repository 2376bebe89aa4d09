//! The serving side of `erpc` (Kernel `erpc.erl`, `execute_call/4` and `execute_cast/3`;
//! protocol notes 9.1 and 9.3): what a process started by a peer's `SPAWN_REQUEST` runs. The
//! node layer sets the process up and replies ([`crate::node::SpawnHandler`]); this handler,
//! installed by [`super::start`], gives it its body:
//!
//! - `erpc:execute_call(Ref, M, F, A)` (`erpc:call`, `rpc:call`): applies `M:F(A...)` through
//!   the [`Registry`] and exits with `{Ref, return, Value}`, `{Ref, throw, V}`,
//!   `{Ref, exit, R}` or `{Ref, error, Reason, Stack}`;
//! - `erpc:execute_cast(M, F, A)` (`erpc:cast`, `rpc:cast`): applies and exits `normal`;
//! - any other `M:F(A...)` (`spawn(Node, M, F, A)`): applies; a function that is not
//!   registered exits with `{undef, [{M, F, Args, []}]}`, as BEAM's process does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{Registry, RpcError, RpcResult, apply_in};
use crate::dist::Mfa;
use crate::node::{Node, Process, SpawnHandler, normal};
use crate::term::{Atom, Term};

/// Runs spawn requests through the node's [`Registry`].
#[derive(Debug)]
pub(super) struct ErpcSpawner;

impl SpawnHandler for ErpcSpawner {
    fn run(&self, p: Process, mfa: Mfa, args: Vec<Term>) -> Pin<Box<dyn Future<Output = Term> + Send>> {
        let job = Job::new(mfa, args);
        Box::pin(job.run(p))
    }
}

/// Makes `registry` the node's rpc registry and answers spawn requests through it.
pub(super) fn install(node: &Node) -> Arc<Registry> {
    let registry = node.rpc();
    node.set_spawn_handler(Arc::new(ErpcSpawner));
    registry
}

/// What a spawned process runs.
enum Job {
    /// `erpc:execute_call(Ref, M, F, A)`.
    Call { res: Term, module: Term, function: Term, args: Term },
    /// `erpc:execute_cast(M, F, A)`.
    Cast { module: Term, function: Term, args: Term },
    /// Any other `M:F(Args...)`.
    Apply { module: Atom, function: Atom, args: Vec<Term> },
}

impl Job {
    fn new(mfa: Mfa, mut args: Vec<Term>) -> Job {
        let erpc = mfa.module == "erpc";
        if erpc && mfa.function == "execute_call" && args.len() == 4 {
            let (a, f, m, res) = (pop(&mut args), pop(&mut args), pop(&mut args), pop(&mut args));
            return Job::Call { res, module: m, function: f, args: a };
        }
        if erpc && mfa.function == "execute_cast" && args.len() == 3 {
            let (a, f, m) = (pop(&mut args), pop(&mut args), pop(&mut args));
            return Job::Cast { module: m, function: f, args: a };
        }
        Job::Apply { module: mfa.module, function: mfa.function, args }
    }

    async fn run(self, p: Process) -> Term {
        match self {
            Job::Call { res, module, function, args } => match apply_terms(&p, module, function, args).await {
                Ok(v) => Term::Tuple(vec![res, Term::atom("return"), v]),
                Err(e) => e.execute_call_reason(res),
            },
            Job::Cast { module, function, args } => match apply_terms(&p, module, function, args).await {
                Ok(_) => normal(),
                Err(e) => {
                    tracing::warn!("rpc cast failed: {e}");
                    e.process_exit_reason()
                }
            },
            Job::Apply { module, function, args } => match apply_in(&p, &module, &function, args).await {
                Ok(_) => normal(),
                Err(e) => {
                    tracing::warn!("spawned {}:{} failed: {e}", module.as_str(), function.as_str());
                    e.process_exit_reason()
                }
            },
        }
    }
}

fn pop(v: &mut Vec<Term>) -> Term {
    v.pop().unwrap_or_else(Term::nil)
}

/// `apply(M, F, A)` with the types checked as `erlang:apply/3` checks them (`badarg`).
async fn apply_terms(p: &Process, module: Term, function: Term, args: Term) -> RpcResult {
    match (module, function, args) {
        (Term::Atom(m), Term::Atom(f), Term::List(a)) => apply_in(p, &m, &f, a).await,
        (m, f, a) => Err(RpcError::badarg(&Atom::new("erlang"), &Atom::new("apply"), &[m, f, a])),
    }
}
