//! The article's second `PS` GenServer: `{:subscribe, topic}` / `{:unsubscribe, topic}` act on
//! the caller's pid and give `true`; `{:subscribers, topic}` lists pids (newest first, as the
//! article's `[sender | subscribers]` builds them); `{:broadcast, topic, message}` sends
//! `message` to every subscriber but the caller and gives `true`.
//!
//! Each subscriber is monitored; on `DOWN` it is dropped from every topic and the server logs
//! `DOWN <pid> for reason <reason>` (`:noconnection` when the subscriber's node died). One
//! monitor per subscriber, however many topics or repeated subscriptions it has.
//! `:sys.get_state(ps)` shows the topic → subscribers map.

use std::collections::HashMap;

use crate::gen_server::{CallReply, From, GenServer, Next};
use crate::node::{Dest, Process};
use crate::term::{Map, Pid, Reference, Term};

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
}

impl GenServer for PubSub {
    /// `%{topic => [subscriber, ...]}`, newest subscriber first (`:sys.get_state(ps)`).
    fn format_state(&self) -> Term {
        let mut topics: Vec<(&Term, &Vec<Pid>)> = self.topics.iter().collect();
        topics.sort_by(|a, b| a.0.cmp(b.0));
        let entries =
            topics.into_iter().map(|(t, subs)| (t.clone(), Term::List(subs.iter().cloned().map(Term::Pid).collect())));
        Term::Map(Map::from_distinct_entries(entries.collect()))
    }

    async fn handle_call(&mut self, request: Term, from: &From, p: &mut Process) -> CallReply {
        let reply = match request.as_tuple() {
            Some([op, topic]) if op.is_atom("subscribe") => {
                self.subscribe(topic.clone(), &from.pid, p);
                Term::atom("true")
            }
            Some([op, topic]) if op.is_atom("unsubscribe") => {
                self.unsubscribe(topic, &from.pid, p);
                Term::atom("true")
            }
            Some([op, topic]) if op.is_atom("subscribers") => {
                Term::List(self.subscribers(topic).into_iter().map(Term::Pid).collect())
            }
            Some([op, topic, message]) if op.is_atom("broadcast") => {
                for s in self.topics.get(topic).into_iter().flatten() {
                    if *s != from.pid {
                        p.send(Dest::Pid(s.clone()), message.clone());
                    }
                }
                Term::atom("true")
            }
            _ => Term::atom("not_implemented"),
        };
        CallReply::Reply(reply)
    }

    async fn handle_info(&mut self, msg: Term, _p: &mut Process) -> Next {
        if let Some([down, _mref, _process, Term::Pid(pid), reason]) = msg.as_tuple() {
            if down.is_atom("DOWN") {
                tracing::info!("DOWN {} for reason {}", render(&Term::Pid(pid.clone())), render(reason));
                self.monitors.remove(pid);
                for subs in self.topics.values_mut() {
                    subs.retain(|s| s != pid);
                }
            }
        }
        Next::Continue
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
    use crate::gen_server::start;
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
}
