//! The article's second `PS` GenServer: `{:subscribe, topic}` / `{:unsubscribe, topic}` act on
//! the caller's pid and give `true`; `{:subscribers, topic}` lists pids (newest first, as the
//! article's `[sender | subscribers]` builds them); `{:broadcast, topic, message}` sends
//! `message` to every subscriber but the caller and gives `true`.
//!
//! Each subscriber is monitored; on `DOWN` it is dropped from every topic and the server logs
//! `DOWN <pid> for reason <reason>` (`:noconnection` when the subscriber's node died). One
//! monitor per subscriber, however many topics or repeated subscriptions it has.
//! `:sys.get_state(ps)` shows the topic → subscribers map.
//!
//! The requests are the serde type [`Request`], and [`PubSub`] runs either way, as
//! [`crate::apps::kv`] does: as a [`TypedGenServer`] (`gen_server::start_typed`; a request that
//! does not read as a [`Request`] gets `:not_implemented` from [`TypedGenServer::bad_call`]),
//! or as a plain [`GenServer`] (`gen_server::start`) that reads the same requests by hand
//! ([`Request::from_term`], moving the topic and message out of the request term). The plain
//! one is what `erlnode serve` and the benchmark host run: a broadcast call is on the
//! benchmark's hot path, where the typed path would add a copy of the message and the
//! allocations of reading through the request's encoding (see `benches/kv_call.rs`). Both
//! answer every request alike (tested). Casts are ignored (the article's server defines no
//! `handle_cast`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::gen_server::{CallReply, From, GenServer, Next, TypedGenServer};
use crate::node::{Dest, Process};
use crate::term::{Map, Pid, Reference, Term, typed};

/// A request, as BEAM code sends it (the conventions of [`crate::term::typed`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// `{:subscribe, topic}`: subscribes the caller, gives `true`.
    Subscribe(Term),
    /// `{:unsubscribe, topic}`: unsubscribes the caller, gives `true`.
    Unsubscribe(Term),
    /// `{:subscribers, topic}`: the subscribers' pids, newest first.
    Subscribers(Term),
    /// `{:broadcast, topic, message}`: sends `message` to every subscriber but the caller,
    /// gives `true`.
    Broadcast(Term, Term),
}

impl Request {
    /// Reads a request as [`crate::term::from_term`] would, but moving the topic and message
    /// out of `term` (no copy, no allocation); `None` for a term that is not a request.
    pub fn from_term(term: Term) -> Option<Request> {
        let Term::Tuple(t) = term else { return None };
        match <[Term; 2]>::try_from(t) {
            Ok([op, topic]) => match &op {
                Term::Atom(a) if a == "subscribe" => Some(Request::Subscribe(topic)),
                Term::Atom(a) if a == "unsubscribe" => Some(Request::Unsubscribe(topic)),
                Term::Atom(a) if a == "subscribers" => Some(Request::Subscribers(topic)),
                _ => None,
            },
            Err(t) => match <[Term; 3]>::try_from(t) {
                Ok([op, topic, message]) if op.is_atom("broadcast") => Some(Request::Broadcast(topic, message)),
                _ => None,
            },
        }
    }
}

/// A publish-subscribe server.
#[derive(Debug, Default)]
pub struct PubSub {
    topics: HashMap<Term, Vec<Pid>>,
    monitors: HashMap<Pid, Reference>,
}

impl PubSub {
    /// A server with no topics.
    pub fn new() -> PubSub {
        PubSub::default()
    }

    fn subscribe(&mut self, topic: Term, pid: &Pid, p: &Process) {
        let subs = self.topics.entry(topic).or_default();
        if !subs.contains(pid) {
            subs.insert(0, pid.clone());
        }
        if !self.monitors.contains_key(pid) {
            let mref = p.monitor(Dest::Pid(pid.clone()));
            self.monitors.insert(pid.clone(), mref);
        }
    }

    fn unsubscribe(&mut self, topic: &Term, pid: &Pid, p: &mut Process) {
        if let Some(subs) = self.topics.get_mut(topic) {
            subs.retain(|s| s != pid);
        }
        if !self.topics.values().any(|subs| subs.contains(pid)) {
            if let Some(mref) = self.monitors.remove(pid) {
                p.demonitor(&mref);
            }
        }
    }

    /// Subscribers of `topic`, newest first.
    pub fn subscribers(&self, topic: &Term) -> Vec<Pid> {
        self.topics.get(topic).cloned().unwrap_or_default()
    }

    /// Handles one call that reads as a [`Request`], from `from`, in the server process `p`.
    pub fn apply(&mut self, request: Request, from: &From, p: &mut Process) -> Term {
        match request {
            Request::Subscribe(topic) => self.subscribe(topic, &from.pid, p),
            Request::Unsubscribe(topic) => self.unsubscribe(&topic, &from.pid, p),
            Request::Subscribers(topic) => {
                return Term::List(self.subscribers(&topic).into_iter().map(Term::Pid).collect());
            }
            Request::Broadcast(topic, message) => {
                for s in self.topics.get(&topic).into_iter().flatten() {
                    if *s != from.pid {
                        p.send(Dest::Pid(s.clone()), message.clone());
                    }
                }
            }
        }
        Term::atom("true")
    }

    /// `%{topic => [subscriber, ...]}`, newest subscriber first (`:sys.get_state(ps)`).
    fn state(&self) -> Term {
        let mut topics: Vec<(&Term, &Vec<Pid>)> = self.topics.iter().collect();
        topics.sort_by(|a, b| a.0.cmp(b.0));
        let entries =
            topics.into_iter().map(|(t, subs)| (t.clone(), Term::List(subs.iter().cloned().map(Term::Pid).collect())));
        Term::Map(Map::from_distinct_entries(entries.collect()))
    }

    /// A subscriber's `DOWN`: drops it from every topic (any other message is ignored).
    fn info(&mut self, msg: &Term) {
        if let Some([down, _mref, _process, Term::Pid(pid), reason]) = msg.as_tuple() {
            if down.is_atom("DOWN") {
                tracing::info!("DOWN {} for reason {}", render(&Term::Pid(pid.clone())), render(reason));
                self.monitors.remove(pid);
                for subs in self.topics.values_mut() {
                    subs.retain(|s| s != pid);
                }
            }
        }
    }
}

impl GenServer for PubSub {
    fn format_state(&self) -> Term {
        self.state()
    }

    async fn handle_call(&mut self, request: Term, from: &From, p: &mut Process) -> CallReply {
        CallReply::Reply(match Request::from_term(request) {
            Some(request) => self.apply(request, from, p),
            None => Term::atom("not_implemented"),
        })
    }

    async fn handle_info(&mut self, msg: Term, _p: &mut Process) -> Next {
        self.info(&msg);
        Next::Continue
    }
}

/// The same server on the typed behaviour (casts, any term, are ignored by the default
/// `handle_cast`).
impl TypedGenServer for PubSub {
    type Call = Request;
    type Reply = Term;
    type Cast = Term;

    fn format_state(&self) -> Term {
        self.state()
    }

    async fn handle_call(&mut self, request: Request, from: &From, p: &mut Process) -> CallReply<Term> {
        CallReply::Reply(self.apply(request, from, p))
    }

    async fn handle_info(&mut self, msg: Term, _p: &mut Process) -> Next {
        self.info(&msg);
        Next::Continue
    }

    async fn bad_call(&mut self, _request: Term, _error: typed::Error, _from: &From, _p: &mut Process) -> CallReply {
        CallReply::Reply(Term::atom("not_implemented"))
    }
}

/// Elixir-syntax rendering for the log line the article prints.
fn render(t: &Term) -> String {
    t.elixir().to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::gen_server::tests::sys;
    use crate::gen_server::{start, start_typed};
    use crate::node::{Node, normal};
    use crate::term::Atom;

    const T: Option<Duration> = Some(Duration::from_secs(5));

    fn req(op: &str, topic: &str) -> Term {
        Term::Tuple(vec![Term::atom(op), Term::atom(topic)])
    }

    #[tokio::test]
    async fn subscribe_broadcast_and_drop_on_down() {
        let n = Node::new_local(Atom::new("ps@localhost"), 5);
        let ps = start(&n, PubSub::new(), None).await.unwrap();
        subscribe_broadcast_and_drop_on_down_with(n, ps).await;
    }

    #[tokio::test]
    async fn typed_subscribe_broadcast_and_drop_on_down() {
        let n = Node::new_local(Atom::new("ps@localhost"), 5);
        let ps = start_typed(&n, PubSub::new(), None).await.unwrap();
        subscribe_broadcast_and_drop_on_down_with(n, ps).await;
    }

    async fn subscribe_broadcast_and_drop_on_down_with(n: Node, ps: Pid) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // two subscribers; the first broadcasts and must not receive its own message
        let mut subs = Vec::new();
        for i in 0..2 {
            let (tx, ps) = (tx.clone(), ps.clone());
            let (rtx, rrx) = tokio::sync::oneshot::channel();
            let pid = n.spawn(move |mut p: Process| async move {
                let dest = Dest::Pid(ps);
                for _ in 0..2 {
                    // subscribing twice does not duplicate
                    crate::gen_server::call(&mut p, dest.clone(), req("subscribe", "t1"), T).await.unwrap();
                }
                let _ = rtx.send(());
                if i == 0 {
                    let _go = p.receive().await;
                    let b = Term::Tuple(vec![Term::atom("broadcast"), Term::atom("t1"), Term::atom("yo")]);
                    crate::gen_server::call(&mut p, dest, b, T).await.unwrap();
                    let own = p.receive_timeout(Duration::from_millis(50)).await;
                    let _ = tx.send((i, own.unwrap_or(Term::atom("none"))));
                } else {
                    let got = p.receive().await;
                    let _ = tx.send((i, got));
                    let _stop = p.receive().await;
                }
                normal()
            });
            rrx.await.unwrap();
            subs.push(pid);
        }
        let listed = n.call(Dest::Pid(ps.clone()), req("subscribers", "t1"), T).await.unwrap();
        assert_eq!(listed, Term::List(vec![Term::Pid(subs[1].clone()), Term::Pid(subs[0].clone())]));
        // sys:get_state shows the topic with both, newest first
        let state = Term::Map(Map::from_distinct_entries(vec![(Term::atom("t1"), listed)]));
        assert_eq!(sys(&n, &ps, Term::atom("get_state")).await, Some(crate::tuple![Atom::from("ok"), state]));
        n.send(subs[0].clone(), Term::atom("go"));
        let mut got = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        got.sort_by_key(|(i, _)| *i);
        assert_eq!(got, vec![(0, Term::atom("none")), (1, Term::atom("yo"))]);
        // subscriber 0 has exited: its DOWN removes it
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let listed = n.call(Dest::Pid(ps.clone()), req("subscribers", "t1"), T).await.unwrap();
            if listed == Term::List(vec![Term::Pid(subs[1].clone())]) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "subscriber not dropped: {listed:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Requests, and terms that are close to one but are not.
    fn samples() -> Vec<Term> {
        let t = || Term::atom("t1");
        let tup = Term::Tuple;
        vec![
            tup(vec![Term::atom("subscribe"), t()]),
            tup(vec![Term::atom("subscribers"), t()]),
            tup(vec![Term::atom("broadcast"), t(), Term::atom("yo")]),
            tup(vec![Term::atom("unsubscribe"), t()]),
            tup(vec![Term::atom("subscribers"), t()]),
            // not requests
            Term::atom("subscribe"),
            Term::atom("bogus"),
            Term::Int(1),
            tup(vec![]),
            tup(vec![Term::atom("subscribe")]),
            tup(vec![Term::atom("subscribe"), t(), t()]),
            tup(vec![Term::atom("broadcast"), t()]),
            tup(vec![Term::atom("broadcast"), t(), t(), t()]),
            tup(vec![Term::binary(b"subscribe"), t()]),
            tup(vec![Term::atom("Subscribe"), t()]),
            tup(vec![Term::atom("publish"), t(), t()]),
            Term::List(vec![Term::atom("subscribe"), t()]),
        ]
    }

    #[test]
    fn reading_by_hand_agrees_with_serde() {
        for t in samples() {
            assert_eq!(Request::from_term(t.clone()), crate::term::from_term::<Request>(&t).ok(), "{t}");
        }
    }

    #[tokio::test]
    async fn typed_and_plain_servers_answer_alike() {
        let n = Node::new_local(Atom::new("ps@localhost"), 5);
        let plain = start(&n, PubSub::new(), None).await.unwrap();
        let typed = start_typed(&n, PubSub::new(), None).await.unwrap();
        // one caller process talks to both, so replies naming it are the same
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (p1, p2) = (plain.clone(), typed.clone());
        let caller = n.spawn(move |mut p: Process| async move {
            let mut replies = Vec::new();
            for t in samples() {
                // a cast of anything is ignored and the server carries on
                crate::gen_server::cast(&p, Dest::Pid(p1.clone()), t.clone());
                crate::gen_server::cast(&p, Dest::Pid(p2.clone()), t.clone());
                let a = crate::gen_server::call(&mut p, Dest::Pid(p1.clone()), t.clone(), T).await;
                let b = crate::gen_server::call(&mut p, Dest::Pid(p2.clone()), t.clone(), T).await;
                replies.push((t, a, b));
            }
            let _ = tx.send((p.pid().clone(), replies));
            normal()
        });
        let (me, replies) = rx.await.unwrap();
        assert_eq!(me, caller);
        let (yes, no) = (Ok(Term::atom("true")), Ok(Term::atom("not_implemented")));
        let me = Ok(Term::List(vec![Term::Pid(me)]));
        let want = [Ok(Term::atom("true")), me, yes.clone(), yes, Ok(Term::List(vec![]))];
        for (i, (t, plain, typed)) in replies.into_iter().enumerate() {
            let want = want.get(i).unwrap_or(&no);
            assert_eq!((&plain, &typed), (want, want), "{t}");
        }
        // both show the same state (sys:get_state): the topic, left with no subscribers
        let topics = Term::Map(Map::from_distinct_entries(vec![(Term::atom("t1"), Term::List(vec![]))]));
        let state = Some(Term::Tuple(vec![Term::atom("ok"), topics]));
        assert_eq!(sys(&n, &plain, Term::atom("get_state")).await, state);
        assert_eq!(sys(&n, &typed, Term::atom("get_state")).await, state);
    }
}
