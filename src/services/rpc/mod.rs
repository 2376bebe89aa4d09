//! Remote procedure calls (Kernel `rpc` and `erpc`; protocol notes section 9): the registry of
//! Rust functions other nodes may call, the outcome of a call in `erpc`'s terms, and the
//! mapping of that outcome to the shapes BEAM code sees.
//!
//! A BEAM node calls `erpc:call(Node, M, F, A)` (and `rpc:call`, which is built on it since
//! OTP 23) by sending `SPAWN_REQUEST` for `erpc:execute_call/4`; the new process applies
//! `M:F(A...)` and exits with `{Ref, return, Value}`, `{Ref, throw, Value}`,
//! `{Ref, exit, Reason}` or `{Ref, error, Reason, Stack}` (`erpc.erl`, `execute_call/4`). A Rust
//! node cannot load Erlang modules, so `M:F/Arity` is looked up in a [`Registry`] of Rust
//! handlers instead; what is not registered fails with `undef`, exactly as a missing module or
//! function fails on BEAM:
//!
//! ```text
//! rpc:call(R, nomod, f, [1])   -> {badrpc, {'EXIT', {undef, [{nomod, f, [1], []}]}}}
//! erpc:call(R, nomod, f, [1])  -> raises error:{exception, undef, [{nomod, f, [1], []}]}
//! ```
//!
//! ```no_run
//! # async fn demo(node: erlnode::Node) {
//! use erlnode::services::rpc::RpcError;
//! use erlnode::Term;
//! node.rpc().register_sync("metrics", "snapshot", 0, |_args| Ok(Term::Int(42)));
//! node.rpc().register("metrics", "add", 2, |args| async move {
//!     match (args[0].as_int(), args[1].as_int()) {
//!         (Some(a), Some(b)) => Ok(Term::Int(a + b)),
//!         _ => Err(RpcError::error(Term::atom("badarith"))),
//!     }
//! });
//! # }
//! ```
//!
//! The serving side ([`start`]) answers peers' spawn requests through the registry
//! (`server.rs`); the calling side ([`crate::Node::rpc_call`], [`crate::Node::rpc_cast`],
//! [`crate::Node::multicall`]) is in [`client`]; the built-in functions every node answers
//! (`erlang:node/0`, `erlang:nodes/0,1`, ...) are in [`builtins`].

pub mod builtins;
pub mod client;
pub mod introspect;
mod server;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use crate::node::{Node, Process};
use crate::term::{Atom, Pid, Term};

/// What a handler returns.
pub type RpcResult = Result<Term, RpcError>;

/// How a remote call failed, in `erpc`'s terms. A handler returns [`RpcError::Error`],
/// [`RpcError::Exit`] or [`RpcError::Throw`] (the three exception classes); the calling side
/// also sees the other variants.
#[derive(Clone, Debug, PartialEq)]
pub enum RpcError {
    /// `error:Reason` with a stack trace. An empty `stack` is filled in with
    /// `[{Module, Function, Arity, []}]`, the frame a function raising on BEAM leaves after
    /// `erpc` trims the stack. `erpc` raises `error:{exception, Reason, Stack}`; `rpc` returns
    /// `{badrpc, {'EXIT', {Reason, Stack}}}`.
    Error {
        /// The reason.
        reason: Term,
        /// The stack: a list of `{M, F, ArityOrArgs, Location}`.
        stack: Vec<Term>,
    },
    /// `exit:Reason`. `erpc` raises `exit:{exception, Reason}`; `rpc` returns
    /// `{badrpc, {'EXIT', Reason}}`.
    Exit(Term),
    /// `throw:Value`. `erpc` rethrows `Value`; `rpc` returns `Value` as the result.
    Throw(Term),
    /// The process running the call ended without a result (killed, crashed, or an unexpected
    /// exit reason). `erpc` raises `exit:{signal, Reason}`; `rpc` returns
    /// `{badrpc, {'EXIT', Reason}}`.
    Signal(Term),
    /// `erpc`'s own errors: `noconnection`, `timeout`, `notsup`, `badarg`, `system_limit`, ...
    /// `erpc` raises `error:{erpc, Reason}`; `rpc` returns `{badrpc, nodedown}` for
    /// `noconnection`, `{badrpc, timeout}`, `{badrpc, notsup}`, else `{badrpc, {'EXIT', Reason}}`.
    Erpc(Term),
    /// A peer without `DFLAG_SPAWN`, asked through `rex`, answered `{badrpc, Reason}`.
    BadRpc(Term),
}

impl RpcError {
    /// `erlang:error(Reason)`; the stack is filled in with the called function.
    pub fn error(reason: Term) -> RpcError {
        RpcError::Error { reason, stack: Vec::new() }
    }

    /// `erlang:exit(Reason)`.
    pub fn exit(reason: Term) -> RpcError {
        RpcError::Exit(reason)
    }

    /// `erlang:throw(Value)`.
    pub fn throw(value: Term) -> RpcError {
        RpcError::Throw(value)
    }

    /// `error:undef` for `M:F(Args)`, with the stack BEAM reports: `[{M, F, Args, []}]`.
    pub fn undef(module: &Atom, function: &Atom, args: &[Term]) -> RpcError {
        RpcError::bif_error(Term::atom("undef"), module, function, args)
    }

    /// `error:badarg` raised by a built-in `M:F(Args)`: `[{M, F, Args, []}]`, as for a BIF.
    pub fn badarg(module: &Atom, function: &Atom, args: &[Term]) -> RpcError {
        RpcError::bif_error(Term::atom("badarg"), module, function, args)
    }

    fn bif_error(reason: Term, module: &Atom, function: &Atom, args: &[Term]) -> RpcError {
        let frame = Term::Tuple(vec![
            Term::Atom(module.clone()),
            Term::Atom(function.clone()),
            Term::List(args.to_vec()),
            Term::nil(),
        ]);
        RpcError::Error { reason, stack: vec![frame] }
    }

    /// `erpc` reason `noconnection` (the node is down or unreachable).
    pub fn noconnection() -> RpcError {
        RpcError::Erpc(Term::atom("noconnection"))
    }

    /// `erpc` reason `timeout`.
    pub fn timeout() -> RpcError {
        RpcError::Erpc(Term::atom("timeout"))
    }

    /// Fills an empty error stack with `[{M, F, Arity, []}]`.
    pub(crate) fn with_frame(self, module: &Atom, function: &Atom, arity: usize) -> RpcError {
        match self {
            RpcError::Error { reason, stack } if stack.is_empty() => {
                let frame = Term::Tuple(vec![
                    Term::Atom(module.clone()),
                    Term::Atom(function.clone()),
                    Term::Int(arity as i64),
                    Term::nil(),
                ]);
                RpcError::Error { reason, stack: vec![frame] }
            }
            other => other,
        }
    }

    /// The exception `erpc:call/4,5` raises, as `(Class, Reason)`.
    pub fn erpc_exception(&self) -> (Atom, Term) {
        let t = |v: Vec<Term>| Term::Tuple(v);
        match self {
            RpcError::Error { reason, stack } => {
                (Atom::new("error"), t(vec![Term::atom("exception"), reason.clone(), Term::List(stack.clone())]))
            }
            RpcError::Exit(r) => (Atom::new("exit"), t(vec![Term::atom("exception"), r.clone()])),
            RpcError::Throw(v) => (Atom::new("throw"), v.clone()),
            RpcError::Signal(r) => (Atom::new("exit"), t(vec![Term::atom("signal"), r.clone()])),
            RpcError::Erpc(r) => (Atom::new("error"), t(vec![Term::atom("erpc"), r.clone()])),
            RpcError::BadRpc(r) => (Atom::new("error"), t(vec![Term::atom("badrpc"), r.clone()])),
        }
    }

    /// What `rpc:call/4,5` returns for this failure (`rpc.erl`, `rpcify_exception/2`). A throw
    /// is returned as the value, so this is not always a `{badrpc, _}`.
    pub fn rpc_result(&self) -> Term {
        let badrpc = |r: Term| Term::Tuple(vec![Term::atom("badrpc"), r]);
        let exit = |r: Term| badrpc(Term::Tuple(vec![Term::atom("EXIT"), r]));
        match self {
            RpcError::Error { reason, stack } => exit(Term::Tuple(vec![reason.clone(), Term::List(stack.clone())])),
            RpcError::Exit(r) | RpcError::Signal(r) => exit(r.clone()),
            RpcError::Throw(v) => match v.as_tuple() {
                Some([tag, _]) if tag.is_atom("EXIT") => badrpc(v.clone()),
                _ => v.clone(),
            },
            RpcError::Erpc(r) if r.is_atom("noconnection") => badrpc(Term::atom("nodedown")),
            RpcError::Erpc(r) if r.is_atom("timeout") || r.is_atom("notsup") => badrpc(r.clone()),
            RpcError::Erpc(r) => exit(r.clone()),
            RpcError::BadRpc(r) => badrpc(r.clone()),
        }
    }

    /// The exit reason of an `erpc:execute_call/4` process that raised this
    /// (`{Ref, throw, V}`, `{Ref, exit, R}`, `{Ref, error, R, Stack}`).
    pub(crate) fn execute_call_reason(self, res: Term) -> Term {
        match self {
            RpcError::Error { reason, stack } => Term::Tuple(vec![res, Term::atom("error"), reason, Term::List(stack)]),
            RpcError::Exit(r) | RpcError::Signal(r) => Term::Tuple(vec![res, Term::atom("exit"), r]),
            RpcError::Throw(v) => Term::Tuple(vec![res, Term::atom("throw"), v]),
            RpcError::Erpc(r) => Term::Tuple(vec![res, Term::atom("error"), Term::Tuple(vec![Term::atom("erpc"), r])]),
            RpcError::BadRpc(r) => Term::Tuple(vec![res, Term::atom("exit"), r]),
        }
    }

    /// The exit reason of a plain process that raised this (`spawn(Node, M, F, A)`): `Reason`
    /// for an exit, `{Reason, Stack}` for an error, `{{nocatch, V}, Stack}` for a throw.
    pub(crate) fn process_exit_reason(self) -> Term {
        match self {
            RpcError::Error { reason, stack } => Term::Tuple(vec![reason, Term::List(stack)]),
            RpcError::Throw(v) => Term::Tuple(vec![Term::Tuple(vec![Term::atom("nocatch"), v]), Term::nil()]),
            RpcError::Exit(r) | RpcError::Signal(r) | RpcError::Erpc(r) | RpcError::BadRpc(r) => r,
        }
    }

    /// Reads the exit reason of an `erpc:execute_call/4` process (the `DOWN` reason), as
    /// `erpc:call` does (`erpc.erl`, `result/4`).
    pub(crate) fn from_down(res: &Term, reason: Term) -> RpcResult {
        if let Some(t) = reason.as_tuple() {
            match t {
                [r, tag, v] if r == res && tag.is_atom("return") => return Ok(v.clone()),
                [r, tag, v] if r == res && tag.is_atom("throw") => return Err(RpcError::Throw(v.clone())),
                [r, tag, v] if r == res && tag.is_atom("exit") => return Err(RpcError::Exit(v.clone())),
                [r, tag, reason, stack] if r == res && tag.is_atom("error") => {
                    let stack = match stack {
                        Term::List(s) => s.clone(),
                        other => vec![other.clone()],
                    };
                    return Err(RpcError::Error { reason: reason.clone(), stack });
                }
                [r, tag, e] if r == res && tag.is_atom("error") => {
                    if let Some([erpc, why]) = e.as_tuple() {
                        if erpc.is_atom("erpc") {
                            return Err(RpcError::Erpc(why.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        if reason.is_atom("noconnection") {
            return Err(RpcError::noconnection());
        }
        Err(RpcError::Signal(reason))
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (class, reason) = self.erpc_exception();
        write!(f, "{}:{}", class.as_str(), reason)
    }
}

impl std::error::Error for RpcError {}

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = RpcResult> + Send>>;

/// A registered function.
#[derive(Clone)]
enum Handler {
    /// A user function (sync ones are wrapped in a ready future).
    User(Arc<dyn Fn(Vec<Term>) -> BoxFuture + Send + Sync>),
    /// A built-in that needs the node (`erlang:nodes/0`, ...).
    Builtin(fn(&Node, &Atom, &Atom, &[Term]) -> RpcResult),
    /// A built-in that acts as the process running the call, given the node and that
    /// process's pid (it sends as `self()`, like `observer_backend:etop_collect/1`).
    InProcess(InProcessFn),
}

/// A built-in run as the calling process: `(node, self(), args)`.
pub(crate) type InProcessFn = fn(Node, Pid, Vec<Term>) -> BoxFuture;

/// The functions this node runs for `rpc`/`erpc` callers, by `{Module, Function, Arity}`.
///
/// Registering an `M:F/A` that is already there replaces it, so an application can take over a
/// built-in (for example `global:whereis_name/1` once a `global` implementation exists).
#[derive(Default)]
pub struct Registry {
    map: RwLock<HashMap<(Atom, Atom, usize), Handler>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.map.read().unwrap_or_else(|e| e.into_inner()).len();
        write!(f, "Registry({n} functions)")
    }
}

impl Registry {
    /// A registry holding the [`builtins`].
    pub fn with_builtins() -> Registry {
        let r = Registry::default();
        builtins::install(&r);
        r
    }

    /// Registers an async function: `handler(args)` runs in its own process for each call
    /// (the process `erpc` monitors), `args.len() == arity`.
    pub fn register<F, Fut>(&self, module: &str, function: &str, arity: usize, handler: F)
    where
        F: Fn(Vec<Term>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RpcResult> + Send + 'static,
    {
        let h: Arc<dyn Fn(Vec<Term>) -> BoxFuture + Send + Sync> = Arc::new(move |args| Box::pin(handler(args)));
        self.insert(module, function, arity, Handler::User(h));
    }

    /// Registers a synchronous function. It runs on the async runtime: keep it short (use
    /// [`Registry::register`] for anything that waits).
    pub fn register_sync<F>(&self, module: &str, function: &str, arity: usize, handler: F)
    where
        F: Fn(Vec<Term>) -> RpcResult + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.register(module, function, arity, move |args| {
            let handler = handler.clone();
            async move { handler(args) }
        });
    }

    pub(crate) fn register_builtin(
        &self,
        module: &str,
        function: &str,
        arity: usize,
        f: fn(&Node, &Atom, &Atom, &[Term]) -> RpcResult,
    ) {
        self.insert(module, function, arity, Handler::Builtin(f));
    }

    pub(crate) fn register_in_process(&self, module: &str, function: &str, arity: usize, f: InProcessFn) {
        self.insert(module, function, arity, Handler::InProcess(f));
    }

    fn insert(&self, module: &str, function: &str, arity: usize, h: Handler) {
        let key = (Atom::new(module), Atom::new(function), arity);
        self.map.write().unwrap_or_else(|e| e.into_inner()).insert(key, h);
    }

    /// Removes a function; `false` if it was not registered.
    pub fn unregister(&self, module: &str, function: &str, arity: usize) -> bool {
        let key = (Atom::new(module), Atom::new(function), arity);
        self.map.write().unwrap_or_else(|e| e.into_inner()).remove(&key).is_some()
    }

    /// `true` if `M:F/Arity` is registered.
    pub fn is_registered(&self, module: &str, function: &str, arity: usize) -> bool {
        let key = (Atom::new(module), Atom::new(function), arity);
        self.map.read().unwrap_or_else(|e| e.into_inner()).contains_key(&key)
    }

    /// `true` if any function of `module` is registered.
    pub fn has_module(&self, module: &str) -> bool {
        self.map.read().unwrap_or_else(|e| e.into_inner()).keys().any(|(m, _, _)| m == module)
    }

    fn lookup(&self, module: &Atom, function: &Atom, arity: usize) -> Option<Handler> {
        let key = (module.clone(), function.clone(), arity);
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(&key).cloned()
    }
}

impl Node {
    /// The functions this node runs for `rpc:call`/`erpc:call` callers: the node's
    /// [`Registry`], made (with the [`builtins`]) on first use. Peers reach it once the rpc
    /// service runs ([`start`], part of [`crate::services::start`]).
    pub fn rpc(&self) -> Arc<Registry> {
        self.extension_or_insert_with(Registry::with_builtins)
    }
}

/// Starts the rpc service on `node`: processes that peers spawn (`erpc:call`, `rpc:call`,
/// `spawn/4`) run the functions of [`Node::rpc`].
pub fn start(node: &Node) -> Arc<Registry> {
    server::install(node)
}

/// Applies `M:F(Args)` on `node` as `erlang:apply/3` would: the registered handler's result,
/// `undef` if there is none, and an error without a stack given the frame of the function.
/// A built-in that acts as a process runs in a new one.
pub async fn apply(node: &Node, module: &Atom, function: &Atom, args: Vec<Term>) -> RpcResult {
    apply_with(node, None, module, function, args).await
}

/// [`apply`] from inside the process `p` that runs the call (`erpc:execute_call/4`, `rex`'s
/// workers): built-ins that act as a process act as `p`.
pub async fn apply_in(p: &Process, module: &Atom, function: &Atom, args: Vec<Term>) -> RpcResult {
    apply_with(p.node(), Some(p), module, function, args).await
}

async fn apply_with(node: &Node, p: Option<&Process>, module: &Atom, function: &Atom, args: Vec<Term>) -> RpcResult {
    let arity = args.len();
    if module == "erlang" && function == "apply" && arity == 3 {
        if let [Term::Atom(m), Term::Atom(f), Term::List(a)] = args.as_slice() {
            let (m, f, a) = (m.clone(), f.clone(), a.clone());
            return Box::pin(apply_with(node, p, &m, &f, a)).await;
        }
        return Err(RpcError::badarg(module, function, &args));
    }
    let handler = node.rpc().lookup(module, function, arity);
    let result = match handler {
        None => return Err(RpcError::undef(module, function, &args)),
        Some(Handler::Builtin(f)) => f(node, module, function, &args),
        Some(Handler::InProcess(f)) => match p {
            Some(p) => f(node.clone(), p.pid().clone(), args).await,
            None => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                node.spawn(move |p: Process| async move {
                    let _ = tx.send(f(p.node().clone(), p.pid().clone(), args).await);
                    crate::node::normal()
                });
                rx.await.unwrap_or_else(|_| Err(RpcError::Signal(Term::atom("killed"))))
            }
        },
        Some(Handler::User(h)) => h(args).await,
    };
    result.map_err(|e| e.with_frame(module, function, arity))
}

/// What `rpc:call` would return for `result` (the value, or [`RpcError::rpc_result`]).
pub fn rpcify(result: RpcResult) -> Term {
    match result {
        Ok(v) => match v.as_tuple() {
            Some([tag, _]) if tag.is_atom("EXIT") => Term::Tuple(vec![Term::atom("badrpc"), v]),
            _ => v,
        },
        Err(e) => e.rpc_result(),
    }
}

#[cfg(test)]
mod tests;
