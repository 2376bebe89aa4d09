//! The `gen_server` behaviour on the wire (STDLIB `gen_server` and `gen`): servers written in
//! Rust that BEAM code calls with `GenServer.call/cast`, and a client that calls any server.
//!
//! A call is the message `{'$gen_call', {From, Tag}, Request}`, answered by `{Tag, Reply}` sent
//! to `From`. `Tag` is opaque: since OTP 24 a BEAM caller sends `[alias | Ref]` and expects the
//! reply through the alias; `gen_server:multi_call` sends `{Ref, Node}`. Both are echoed
//! verbatim. The client monitors the server for the duration of the call and fails with the
//! reasons `gen:call` uses: `noproc`, `{nodedown, Node}`, `timeout`, or the server's exit reason.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::node::{Dest, Node, Process, normal};
use crate::term::{Atom, Pid, Reference, Term};

/// Who is calling, and the tag the reply must carry (echoed verbatim).
#[derive(Clone, Debug, PartialEq)]
pub struct From {
    /// The calling process.
    pub pid: Pid,
    /// The reply tag, as the caller sent it.
    pub tag: Term,
}

impl From {
    /// The term `{Pid, Tag}`, as `handle_call/3` receives it in Erlang.
    pub fn to_term(&self) -> Term {
        Term::Tuple(vec![Term::Pid(self.pid.clone()), self.tag.clone()])
    }
}

/// What `handle_call` decides.
#[derive(Debug)]
pub enum CallReply {
    /// Reply and go on.
    Reply(Term),
    /// Do not reply now (reply later with [`reply`]).
    NoReply,
    /// Stop with a reason, replying first if given.
    Stop {
        /// The exit reason.
        reason: Term,
        /// A reply to send before stopping.
        reply: Option<Term>,
    },
}

/// What `handle_cast` and `handle_info` decide.
#[derive(Debug)]
pub enum Next {
    /// Go on.
    Continue,
    /// Stop with this exit reason.
    Stop(Term),
}

/// A server. Each callback runs inside the server process, one message at a time.
pub trait GenServer: Send + Sized + 'static {
    /// Runs before the server takes messages; an `Err` stops it with that reason.
    fn init(&mut self, _p: &mut Process) -> impl Future<Output = Result<(), Term>> + Send {
        async { Ok(()) }
    }

    /// A `GenServer.call`.
    fn handle_call(&mut self, request: Term, from: &From, p: &mut Process) -> impl Future<Output = CallReply> + Send;

    /// A `GenServer.cast`.
    fn handle_cast(&mut self, _request: Term, _p: &mut Process) -> impl Future<Output = Next> + Send {
        async { Next::Continue }
    }

    /// Any other message (`DOWN`, `EXIT`, plain sends).
    fn handle_info(&mut self, _msg: Term, _p: &mut Process) -> impl Future<Output = Next> + Send {
        async { Next::Continue }
    }

    /// Runs when the server stops with `reason`.
    fn terminate(&mut self, _reason: &Term, _p: &mut Process) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Sends `reply` to a caller, as `gen:reply/2` does: through the alias when the tag is
/// `[alias | Ref]` (or `[[alias | Ref] | _]`), to the caller's pid otherwise.
pub fn reply(p: &Process, from: &From, reply: Term) {
    reply_owned(p, from.clone(), reply);
}

fn alias_of(tag: &Term) -> Option<&Reference> {
    match tag {
        Term::Improper(head, tail) if head.len() == 1 && head[0].is_atom("alias") => match &**tail {
            Term::Ref(r) => Some(r),
            _ => None,
        },
        Term::Improper(head, _) | Term::List(head) if !head.is_empty() => alias_of(&head[0]),
        _ => None,
    }
}

enum Incoming {
    Call(From, Term),
    Cast(Term),
    Info(Term),
}

/// Sorts a message, moving its parts out (no clone of the caller's tag or the request).
fn classify(msg: Term) -> Incoming {
    let Term::Tuple(t) = msg else { return Incoming::Info(msg) };
    match t.len() {
        3 if t.first().is_some_and(|tag| tag.is_atom("$gen_call")) => match <[Term; 3]>::try_from(t) {
            Ok([tag, Term::Tuple(from), req]) => match <[Term; 2]>::try_from(from) {
                Ok([Term::Pid(pid), reply_tag]) => Incoming::Call(From { pid, tag: reply_tag }, req),
                Ok(from) => Incoming::Info(Term::Tuple(vec![tag, Term::Tuple(from.into()), req])),
                Err(from) => Incoming::Info(Term::Tuple(vec![tag, Term::Tuple(from), req])),
            },
            Ok(t) => Incoming::Info(Term::Tuple(t.into())),
            Err(t) => Incoming::Info(Term::Tuple(t)),
        },
        2 if t.first().is_some_and(|tag| tag.is_atom("$gen_cast")) => match <[Term; 2]>::try_from(t) {
            Ok([_, req]) => Incoming::Cast(req),
            Err(t) => Incoming::Info(Term::Tuple(t)),
        },
        _ => Incoming::Info(Term::Tuple(t)),
    }
}

/// [`reply`] taking the [`From`] (the server loop's, no longer needed): its tag moves into
/// the reply instead of being cloned.
fn reply_owned(p: &Process, from: From, reply: Term) {
    let to = match alias_of(&from.tag) {
        Some(alias) => Dest::Alias(alias.clone()),
        None => Dest::Pid(from.pid),
    };
    p.send(to, Term::Tuple(vec![from.tag, reply]));
}

/// Runs `server` in the calling process until it stops; returns the exit reason.
pub async fn enter_loop<S: GenServer>(mut server: S, mut p: Process) -> Term {
    loop {
        let msg = p.receive().await;
        let reason = match classify(msg) {
            Incoming::Call(from, req) => match server.handle_call(req, &from, &mut p).await {
                CallReply::Reply(r) => {
                    reply_owned(&p, from, r);
                    continue;
                }
                CallReply::NoReply => continue,
                CallReply::Stop { reason, reply: r } => {
                    if let Some(r) = r {
                        reply_owned(&p, from, r);
                    }
                    reason
                }
            },
            Incoming::Cast(req) => match server.handle_cast(req, &mut p).await {
                Next::Continue => continue,
                Next::Stop(reason) => reason,
            },
            Incoming::Info(msg) => match server.handle_info(msg, &mut p).await {
                Next::Continue => continue,
                Next::Stop(reason) => reason,
            },
        };
        server.terminate(&reason, &mut p).await;
        return reason;
    }
}

/// Starts `server` in a new process, registered locally as `name` if given; returns once
/// `init` has run. `Err` carries the reason `init` failed with, or `{already_started, Pid}`.
pub async fn start<S: GenServer>(node: &Node, server: S, name: Option<Atom>) -> Result<Pid, Term> {
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), Term>>();
    let pid = node.spawn(move |mut p: Process| async move {
        let mut server = server;
        if let Some(n) = name {
            if !p.register(n.clone()) {
                let holder = p.node().whereis(&n).map(Term::Pid).unwrap_or_else(|| Term::atom("undefined"));
                let reason = Term::Tuple(vec![Term::atom("already_started"), holder]);
                let _ = tx.send(Err(reason.clone()));
                return normal();
            }
        }
        match server.init(&mut p).await {
            Ok(()) => {
                let _ = tx.send(Ok(()));
                enter_loop(server, p).await
            }
            Err(reason) => {
                let _ = tx.send(Err(reason.clone()));
                reason
            }
        }
    });
    match rx.await {
        Ok(Ok(())) => Ok(pid),
        Ok(Err(reason)) => Err(reason),
        Err(_) => Err(Term::atom("killed")),
    }
}

/// Why a call failed: the reasons `gen:call` exits with.
#[derive(Clone, Debug, PartialEq)]
pub enum CallError {
    /// No reply in time.
    Timeout,
    /// The server does not exist.
    NoProc,
    /// The server's node is not reachable.
    NodeDown(Atom),
    /// The server exited with this reason during the call.
    Exit(Term),
}

impl CallError {
    /// The exit reason as BEAM would raise it: `timeout`, `noproc`, `{nodedown, Node}`, Reason.
    pub fn reason(&self) -> Term {
        match self {
            CallError::Timeout => Term::atom("timeout"),
            CallError::NoProc => Term::atom("noproc"),
            CallError::NodeDown(n) => Term::Tuple(vec![Term::atom("nodedown"), Term::Atom(n.clone())]),
            CallError::Exit(r) => r.clone(),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call failed: {:?}", self.reason())
    }
}

impl std::error::Error for CallError {}

/// Calls a server from process `p` (`gen_server:call/3`); `timeout` `None` waits forever.
pub async fn call(p: &mut Process, dest: Dest, request: Term, timeout: Option<Duration>) -> Result<Term, CallError> {
    // {global, Name} is resolved locally first, as gen:call does; an unknown name is noproc
    let dest = match dest {
        Dest::Global(name) => match p.node().whereis_global(&name) {
            Some(pid) => Dest::Pid(pid),
            None => return Err(CallError::NoProc),
        },
        other => other,
    };
    let target_node = match &dest {
        Dest::Pid(pid) => pid.node.clone(),
        Dest::Remote(_, node) => node.clone(),
        Dest::Name(_) | Dest::Alias(_) | Dest::Global(_) => p.node().name().clone(),
    };
    let mref = p.monitor(dest.clone());
    let tag = Term::Ref(mref.clone());
    let msg = Term::Tuple(vec![Term::atom("$gen_call"), Term::Tuple(vec![Term::Pid(p.pid().clone()), tag]), request]);
    p.send(dest, msg);
    let got = p
        .receive_match(timeout, |m| match m.as_tuple() {
            Some([Term::Ref(r), reply]) if *r == mref => Some(Ok(reply.clone())),
            Some([down, Term::Ref(r), _, _, reason]) if *r == mref && down.is_atom("DOWN") => Some(Err(reason.clone())),
            _ => None,
        })
        .await;
    match got {
        Some(Ok(reply)) => {
            p.demonitor(&mref);
            Ok(reply)
        }
        Some(Err(reason)) if reason.is_atom("noconnection") => Err(CallError::NodeDown(target_node)),
        Some(Err(reason)) if reason.is_atom("noproc") => Err(CallError::NoProc),
        Some(Err(reason)) => Err(CallError::Exit(reason)),
        None => {
            p.demonitor(&mref);
            Err(CallError::Timeout)
        }
    }
}

/// Casts to a server (`gen_server:cast/2`): `{'$gen_cast', Request}`, no reply.
pub fn cast(p: &Process, dest: Dest, request: Term) {
    p.send(dest, Term::Tuple(vec![Term::atom("$gen_cast"), request]));
}

impl Node {
    /// Calls a server from outside any process: a short-lived process makes the call.
    pub async fn call(&self, dest: Dest, request: Term, timeout: Option<Duration>) -> Result<Term, CallError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(move |mut p: Process| async move {
            let _ = tx.send(call(&mut p, dest, request, timeout).await);
            normal()
        });
        rx.await.unwrap_or(Err(CallError::Exit(Term::atom("killed"))))
    }

    /// Casts to a server from outside any process.
    pub fn cast(&self, dest: Dest, request: Term) {
        self.send(dest, Term::Tuple(vec![Term::atom("$gen_cast"), request]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(i64);

    impl GenServer for Counter {
        async fn handle_call(&mut self, request: Term, _from: &From, _p: &mut Process) -> CallReply {
            match request.as_tuple() {
                Some([op, Term::Int(n)]) if op.is_atom("add") => {
                    self.0 += n;
                    CallReply::Reply(Term::Int(self.0))
                }
                _ if request.is_atom("crash") => CallReply::Stop { reason: Term::atom("crashed"), reply: None },
                _ if request.is_atom("slow") => CallReply::NoReply,
                _ => CallReply::Reply(Term::atom("not_implemented")),
            }
        }

        async fn handle_cast(&mut self, request: Term, _p: &mut Process) -> Next {
            if let Some(n) = request.as_int() {
                self.0 = n;
            }
            Next::Continue
        }
    }

    fn node() -> Node {
        Node::new_local(Atom::new("gs@localhost"), 3)
    }

    const T: Option<Duration> = Some(Duration::from_secs(5));

    #[tokio::test]
    async fn call_cast_and_errors() {
        let n = node();
        let pid = start(&n, Counter(0), Some(Atom::new("counter"))).await.unwrap();
        let add = |k: i64| Term::Tuple(vec![Term::atom("add"), Term::Int(k)]);
        assert_eq!(n.call(Dest::Pid(pid.clone()), add(2), T).await, Ok(Term::Int(2)));
        assert_eq!(n.call(Dest::Name(Atom::new("counter")), add(3), T).await, Ok(Term::Int(5)));
        n.cast(Dest::Pid(pid.clone()), Term::Int(100));
        assert_eq!(n.call(Dest::Pid(pid.clone()), add(1), T).await, Ok(Term::Int(101)));
        assert_eq!(
            n.call(Dest::Pid(pid.clone()), Term::atom("slow"), Some(Duration::from_millis(20))).await,
            Err(CallError::Timeout)
        );
        assert_eq!(n.call(Dest::Name(Atom::new("nobody")), add(1), T).await, Err(CallError::NoProc));
        assert_eq!(
            n.call(Dest::Pid(pid.clone()), Term::atom("crash"), T).await,
            Err(CallError::Exit(Term::atom("crashed")))
        );
        assert_eq!(n.call(Dest::Pid(pid), add(1), T).await, Err(CallError::NoProc));
        // a second server under a taken name is refused
        start(&n, Counter(0), Some(Atom::new("c2"))).await.unwrap();
        let err = start(&n, Counter(0), Some(Atom::new("c2"))).await.unwrap_err();
        assert!(matches!(err.as_tuple(), Some([a, Term::Pid(_)]) if a.is_atom("already_started")));
    }

    #[test]
    fn classify_moves_calls_apart_and_keeps_anything_else_whole() {
        let pid = Pid { node: Atom::new("a@h"), id: 1, serial: 0, creation: 1 };
        let call = |from: Term| Term::Tuple(vec![Term::atom("$gen_call"), from, Term::Int(7)]);
        let good = call(Term::Tuple(vec![Term::Pid(pid.clone()), Term::atom("tag")]));
        assert!(matches!(classify(good),
            Incoming::Call(From { pid: p, tag }, Term::Int(7)) if p == pid && tag.is_atom("tag")));
        let cast = Term::Tuple(vec![Term::atom("$gen_cast"), Term::Int(3)]);
        assert!(matches!(classify(cast), Incoming::Cast(Term::Int(3))));
        // not quite a call or a cast: the message as it came
        for odd in [
            call(Term::Tuple(vec![Term::atom("notapid"), Term::atom("tag")])),
            call(Term::Tuple(vec![Term::Pid(pid.clone())])),
            call(Term::atom("x")),
            Term::Tuple(vec![Term::atom("$gen_call"), Term::Int(1)]),
            Term::Tuple(vec![Term::atom("$gen_cast"), Term::Int(1), Term::Int(2)]),
            Term::Tuple(vec![]),
            Term::atom("$gen_call"),
        ] {
            assert!(matches!(classify(odd.clone()), Incoming::Info(m) if m == odd), "{odd:?}");
        }
    }

    #[tokio::test]
    async fn alias_tags_are_answered_through_the_alias() {
        let n = node();
        let server = start(&n, Counter(0), None).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        n.spawn(move |mut p: Process| async move {
            let alias = p.alias();
            // what a BEAM caller sends: {'$gen_call', {Self, [alias | Ref]}, Req}
            let tag = Term::Improper(vec![Term::atom("alias")], Box::new(Term::Ref(alias.clone())));
            let req = Term::Tuple(vec![Term::atom("add"), Term::Int(7)]);
            let from = Term::Tuple(vec![Term::Pid(p.pid().clone()), tag.clone()]);
            p.send(Dest::Pid(server), Term::Tuple(vec![Term::atom("$gen_call"), from, req]));
            let _ = tx.send(p.receive_timeout(Duration::from_secs(5)).await);
            normal()
        });
        let got = rx.await.unwrap().unwrap();
        let tag = got.as_tuple().unwrap()[0].clone();
        assert!(matches!(tag, Term::Improper(..)), "tag echoed verbatim: {got:?}");
        assert_eq!(got.as_tuple().unwrap()[1], Term::Int(7));
    }
}
