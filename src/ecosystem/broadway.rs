//! Broadway from Rust: hand messages to a running Broadway pipeline on a BEAM node and get its
//! acknowledgements back, as `Broadway.test_message/3` and `Broadway.push_messages/2` do there.
//!
//! Follows broadway 1.3.0 (`lib/broadway/topology/producer_stage.ex`, `lib/broadway/message.ex`,
//! `lib/broadway/caller_acknowledger.ex`), tested with pipelines using
//! `Broadway.DummyProducer` on OTP 25, 27 and 29.
//!
//! | step | message |
//! |---|---|
//! | push | `GenServer.call(:"Elixir.MyPipeline.Broadway.Producer_0", {'Elixir.Broadway.Topology.ProducerStage', push_messages, [Message]})` → `ok` |
//! | a message | `%Broadway.Message{data: D, metadata: %{}, acknowledger: {Broadway.CallerAcknowledger, {Pid, Ref}, ok}, batcher: default, batch_key: default, batch_mode: bulk, status: ok}` |
//! | acks | `{ack, Ref, Successful, Failed}` to `Pid`, once per batch the pipeline acknowledges |
//!
//! ```no_run
//! # async fn demo(node: erlnode::Node) -> Result<(), erlnode::ecosystem::broadway::BroadwayError> {
//! use erlnode::ecosystem::broadway;
//! use erlnode::term::{Atom, Term};
//! let acks = broadway::push(&node, &Atom::new("ex@host"), "MyPipeline", vec![Term::Int(1)], std::time::Duration::from_secs(5)).await?;
//! for m in &acks.successful { /* m.data, m.status */ }
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use crate::gen_server::{self, CallError};
use crate::node::{Dest, Node, Process, normal};
use crate::term::{Atom, Map, Pid, Term};

/// The most messages one [`push`] takes (a bound on what it waits to be acknowledged).
pub const MAX_PUSH: usize = 100_000;

/// What went wrong, by whose fault.
#[derive(Clone, Debug, PartialEq)]
pub enum BroadwayError {
    /// Local misuse: more than [`MAX_PUSH`] messages, or a bad pipeline name.
    BadArgument(&'static str),
    /// The producer could not be called (no such pipeline, node down).
    Call(CallError),
    /// Peer misbehaved: the producer answered something else than `ok`.
    BadReply(Term),
    /// Not every message was acknowledged in time: how many were.
    Timeout(usize),
}

impl fmt::Display for BroadwayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadwayError::BadArgument(w) => write!(f, "bad argument: {w}"),
            BroadwayError::Call(e) => write!(f, "Broadway producer: {e}"),
            BroadwayError::BadReply(t) => write!(f, "unexpected reply from the Broadway producer: {t}"),
            BroadwayError::Timeout(n) => write!(f, "only {n} messages were acknowledged in time"),
        }
    }
}

impl std::error::Error for BroadwayError {}

/// An acknowledged message: its (possibly updated) data and its status (`ok` or
/// `{failed, Reason}`, `{error, ...}`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Acked {
    /// `message.data` as the pipeline left it.
    pub data: Term,
    /// `message.status`.
    pub status: Term,
}

/// What the pipeline acknowledged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acks {
    /// Messages acknowledged as successful.
    pub successful: Vec<Acked>,
    /// Messages acknowledged as failed.
    pub failed: Vec<Acked>,
}

/// The producer's name: `:"#{pipeline}.Broadway.Producer_#{index}"` (`Broadway.Topology`).
pub fn producer_name(pipeline: &str, index: usize) -> Result<Atom, BroadwayError> {
    let p = pipeline.trim().trim_start_matches(':');
    let full = if p.starts_with("Elixir.") || !p.starts_with(|c: char| c.is_ascii_uppercase()) {
        p.to_string()
    } else {
        format!("Elixir.{p}")
    };
    Atom::try_new(&format!("{full}.Broadway.Producer_{index}")).map_err(|_| BroadwayError::BadArgument("pipeline name"))
}

/// A `%Broadway.Message{}` acknowledged by `Broadway.CallerAcknowledger` to `{pid, tag}`.
pub fn message(data: Term, pid: &Pid, tag: &Term) -> Term {
    let ack = Term::Tuple(vec![
        Term::atom("Elixir.Broadway.CallerAcknowledger"),
        Term::Tuple(vec![Term::Pid(pid.clone()), tag.clone()]),
        Term::atom("ok"),
    ]);
    Term::Map(Map::from_entries([
        (Term::atom("__struct__"), Term::atom("Elixir.Broadway.Message")),
        (Term::atom("data"), data),
        (Term::atom("metadata"), Term::Map(Map::new())),
        (Term::atom("acknowledger"), ack),
        (Term::atom("batcher"), Term::atom("default")),
        (Term::atom("batch_key"), Term::atom("default")),
        (Term::atom("batch_mode"), Term::atom("bulk")),
        (Term::atom("status"), Term::atom("ok")),
    ]))
}

/// The data and status of an acknowledged `%Broadway.Message{}`.
pub fn acked(m: &Term) -> Option<Acked> {
    let map = m.as_map()?;
    Some(Acked { data: map.get(&Term::atom("data"))?.clone(), status: map.get(&Term::atom("status"))?.clone() })
}

/// `{ack, Tag, Successful, Failed}` for `tag`: the two lists, parsed.
pub fn parse_ack(msg: &Term, tag: &Term) -> Option<(Vec<Acked>, Vec<Acked>)> {
    match msg.as_tuple()? {
        [a, t, Term::List(ok), Term::List(failed)] if a.is_atom("ack") && t == tag => {
            Some((ok.iter().filter_map(acked).collect(), failed.iter().filter_map(acked).collect()))
        }
        _ => None,
    }
}

/// Pushes `data` as Broadway messages to producer 0 of `pipeline` on `node_name` and waits,
/// up to `timeout` in all, until every one was acknowledged.
pub async fn push(
    node: &Node,
    node_name: &Atom,
    pipeline: &str,
    data: Vec<Term>,
    timeout: Duration,
) -> Result<Acks, BroadwayError> {
    if data.len() > MAX_PUSH {
        return Err(BroadwayError::BadArgument("more than MAX_PUSH messages"));
    }
    let dest = Dest::Remote(producer_name(pipeline, 0)?, node_name.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.spawn(move |mut p: Process| async move {
        let _ = tx.send(push_from(&mut p, dest, data, timeout).await);
        normal()
    });
    rx.await.unwrap_or(Err(BroadwayError::Timeout(0)))
}

async fn push_from(p: &mut Process, dest: Dest, data: Vec<Term>, timeout: Duration) -> Result<Acks, BroadwayError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let tag = Term::Ref(p.make_ref());
    let n = data.len();
    let messages: Vec<Term> = data.into_iter().map(|d| message(d, p.pid(), &tag)).collect();
    let req = Term::Tuple(vec![
        Term::atom("Elixir.Broadway.Topology.ProducerStage"),
        Term::atom("push_messages"),
        Term::List(messages),
    ]);
    let reply = gen_server::call(p, dest, req, Some(timeout)).await.map_err(BroadwayError::Call)?;
    if !reply.is_atom("ok") {
        return Err(BroadwayError::BadReply(reply));
    }
    let mut acks = Acks::default();
    while acks.successful.len() + acks.failed.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let got = p.receive_match(Some(left), |m| parse_ack(m, &tag)).await;
        let Some((ok, failed)) = got else {
            return Err(BroadwayError::Timeout(acks.successful.len() + acks.failed.len()));
        };
        acks.successful.extend(ok);
        acks.failed.extend(failed);
    }
    Ok(acks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_messages_and_acks() {
        assert_eq!(producer_name("MyPipeline", 0).unwrap().as_str(), "Elixir.MyPipeline.Broadway.Producer_0");
        assert_eq!(producer_name(":my_bw", 1).unwrap().as_str(), "my_bw.Broadway.Producer_1");
        let pid = Pid { node: Atom::new("a@h"), id: 1, serial: 0, creation: 1 };
        let tag = Term::Int(7);
        let m = message(Term::Int(42), &pid, &tag);
        assert_eq!(acked(&m), Some(Acked { data: Term::Int(42), status: Term::atom("ok") }));
        let ack = Term::Tuple(vec![Term::atom("ack"), tag.clone(), Term::List(vec![m.clone()]), Term::nil()]);
        assert_eq!(parse_ack(&ack, &tag).map(|(s, f)| (s.len(), f.len())), Some((1, 0)));
        assert_eq!(parse_ack(&ack, &Term::Int(8)), None, "another push's acks");
    }
}
