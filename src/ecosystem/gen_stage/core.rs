//! The producer's and the consumer's bookkeeping (sans-IO), as gen_stage 1.3.2 keeps it:
//! [`ProducerCore`] follows `GenStage`'s producer clauses and `GenStage.DemandDispatcher`
//! (`lib/gen_stage.ex`, `lib/gen_stage/dispatchers/demand_dispatcher.ex`); [`split_batches`]
//! is `GenStage.Utils.split_batches/5` (`lib/gen_stage/utils.ex`), the consumer's rule for
//! when to ask again.
//!
//! Against hostile consumers: a non-positive `ask` is refused (GenStage would let the demand go
//! negative), demand is kept in `u64` and saturates, [`ProducerCore::take_demand`] hands the
//! producer's callback at most a chunk at a time (so 2^62 asked is produced chunk by chunk as
//! it is delivered, never buffered), and events produced beyond demand are buffered up to
//! `buffer_size`, keeping the last ones as GenStage's default `buffer_keep: :last` does.

use std::collections::VecDeque;

use super::message::{ToConsumer, ToProducer};
use crate::term::{Pid, Term};

/// What the producer's driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send `msg` to `to`.
    Send {
        /// The consumer.
        to: Pid,
        /// The message.
        msg: Term,
    },
    /// Monitor the consumer of subscription `tag`; report its death with
    /// [`ProducerCore::consumer_down`].
    Monitor {
        /// The consumer.
        pid: Pid,
        /// The subscription.
        tag: Term,
    },
    /// Stop monitoring the consumer of `tag`.
    Demonitor(Term),
}

/// What was wrong with a message, for the log; the reply (if any) is already among the effects.
#[derive(Clone, Debug, PartialEq)]
pub enum Refused {
    /// `ask` for an unknown subscription (answered with `{cancel, unknown_subscription}`).
    UnknownSubscription,
    /// `subscribe` with a tag already in use (answered with `{cancel, duplicated_subscription}`).
    Duplicated,
    /// `ask` of zero or less: ignored.
    NonPositiveDemand(i128),
}

#[derive(Clone, Debug)]
struct Sub {
    pid: Pid,
    tag: Term,
    demand: u64,
}

/// A producer's subscriptions, demand and buffer.
#[derive(Debug)]
pub struct ProducerCore {
    me: Pid,
    subs: Vec<Sub>,
    buffer: VecDeque<Term>,
    buffer_size: usize,
    pending: u64,
    dropped: u64,
    effects: Vec<Effect>,
}

impl ProducerCore {
    /// A producer running as `me`, buffering at most `buffer_size` events.
    pub fn new(me: Pid, buffer_size: usize) -> ProducerCore {
        ProducerCore {
            me,
            subs: Vec::new(),
            buffer: VecDeque::new(),
            buffer_size,
            pending: 0,
            dropped: 0,
            effects: Vec::new(),
        }
    }

    /// The effects produced so far.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// How many consumers are subscribed.
    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// Demand asked by consumers and not yet passed to the producer's callback.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Events dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Events buffered (produced beyond demand).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn send(&mut self, to: &Pid, tag: &Term, m: ToConsumer) {
        let msg = m.to_term(&self.me, tag);
        self.effects.push(Effect::Send { to: to.clone(), msg });
    }

    /// A `$gen_producer` message from `{pid, tag}`.
    pub fn handle(&mut self, pid: Pid, tag: Term, msg: ToProducer) -> Result<(), Refused> {
        match msg {
            ToProducer::Subscribe { current, opts: _ } => {
                if self.subs.iter().any(|s| s.tag == tag) {
                    self.send(&pid, &tag, ToConsumer::Cancel(Term::atom("duplicated_subscription")));
                    return Err(Refused::Duplicated);
                }
                if let Some((old, reason)) = current {
                    self.cancel(&old, reason);
                }
                self.effects.push(Effect::Monitor { pid: pid.clone(), tag: tag.clone() });
                self.subs.push(Sub { pid, tag, demand: 0 });
                Ok(())
            }
            ToProducer::Ask(n) => {
                let Some(i) = self.subs.iter().position(|s| s.tag == tag) else {
                    self.send(&pid, &tag, ToConsumer::Cancel(Term::atom("unknown_subscription")));
                    return Err(Refused::UnknownSubscription);
                };
                if n <= 0 {
                    return Err(Refused::NonPositiveDemand(n));
                }
                let n = u64::try_from(n).unwrap_or(u64::MAX);
                self.subs[i].demand = self.subs[i].demand.saturating_add(n);
                let from_buffer = self.dispatch_buffer();
                self.pending = self.pending.saturating_add(n.saturating_sub(from_buffer));
                Ok(())
            }
            ToProducer::Cancel(reason) => {
                self.cancel(&tag, reason);
                Ok(())
            }
        }
    }

    /// `producer_cancel/4`: confirms with `{cancel, Reason}` to the registered consumer.
    fn cancel(&mut self, tag: &Term, reason: Term) {
        if let Some(i) = self.subs.iter().position(|s| s.tag == *tag) {
            let s = self.subs.remove(i);
            self.effects.push(Effect::Demonitor(s.tag.clone()));
            self.send(&s.pid, &s.tag, ToConsumer::Cancel(reason));
            self.trim_pending();
        }
    }

    /// The consumer of `tag` died: its subscription goes (no message: it is gone).
    pub fn consumer_down(&mut self, tag: &Term) {
        self.subs.retain(|s| s.tag != *tag);
        self.trim_pending();
    }

    /// Demand pending for the callback never exceeds what the consumers still want.
    fn trim_pending(&mut self) {
        let wanted = self.subs.iter().fold(0u64, |a, s| a.saturating_add(s.demand));
        self.pending = self.pending.min(wanted.saturating_sub(self.buffer.len() as u64));
    }

    /// Up to `max` of the pending demand, for one call of the producer's callback
    /// (`handle_demand/2`).
    pub fn take_demand(&mut self, max: u64) -> u64 {
        let n = self.pending.min(max);
        self.pending -= n;
        n
    }

    /// Events the producer made: dispatched to the consumers with the most demand first
    /// (`DemandDispatcher`), the rest buffered.
    pub fn events(&mut self, events: Vec<Term>) {
        self.buffer.extend(events);
        self.dispatch_buffer();
        while self.buffer.len() > self.buffer_size {
            self.buffer.pop_front();
            self.dropped += 1;
        }
    }

    /// Sends buffered events to consumers with demand; how many went.
    fn dispatch_buffer(&mut self) -> u64 {
        let mut sent = 0u64;
        while !self.buffer.is_empty() {
            let Some(i) =
                (0..self.subs.len()).filter(|&i| self.subs[i].demand > 0).max_by_key(|&i| self.subs[i].demand)
            else {
                break;
            };
            let n = (self.subs[i].demand.min(self.buffer.len() as u64)) as usize;
            let batch: Vec<Term> = self.buffer.drain(..n).collect();
            self.subs[i].demand -= n as u64;
            sent += n as u64;
            let (pid, tag) = (self.subs[i].pid.clone(), self.subs[i].tag.clone());
            self.send(&pid, &tag, ToConsumer::Events(batch));
        }
        sent
    }
}

/// `GenStage.Utils.split_batches/5`: splits `events` into batches of at most
/// `max - min`, each with the demand to ask after it is handled; returns the new outstanding
/// demand. Events beyond `demand` are kept (GenStage logs them as "in excess").
pub fn split_batches(mut events: Vec<Term>, min: u64, max: u64, demand: u64) -> (u64, Vec<(Vec<Term>, u64)>) {
    let (mut old, mut new) = (demand, demand);
    let mut batches = Vec::new();
    let limit = (max - min).max(1) as usize;
    while !events.is_empty() {
        let rest = events.split_off(limit.min(events.len()));
        let batch = std::mem::replace(&mut events, rest);
        let mut size = batch.len() as u64;
        if old < size {
            size = old;
            old = 0;
        } else {
            old -= size;
        }
        let diff = new.saturating_sub(size);
        let ask = if diff <= min {
            new = max;
            max - diff
        } else {
            new = diff;
            0
        };
        batches.push((batch, ask));
    }
    (new, batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::Atom;

    fn pid(id: u32) -> Pid {
        Pid { node: Atom::new("a@h"), id, serial: 0, creation: 1 }
    }

    fn events_sent(fx: &[Effect]) -> Vec<(Pid, usize)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Send { to, msg } => match ToConsumer::parse(msg) {
                    Ok(Some((_, _, ToConsumer::Events(ev)))) => Some((to.clone(), ev.len())),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    fn sub(c: &mut ProducerCore, p: &Pid, tag: i64) {
        c.handle(p.clone(), Term::Int(tag), ToProducer::Subscribe { current: None, opts: Term::nil() }).unwrap();
    }

    #[test]
    fn demand_drives_production_and_nothing_exceeds_it() {
        let mut c = ProducerCore::new(pid(1), 10);
        let (a, b) = (pid(2), pid(3));
        sub(&mut c, &a, 1);
        sub(&mut c, &b, 2);
        assert!(matches!(c.take_effects()[0], Effect::Monitor { .. }));
        c.handle(a.clone(), Term::Int(1), ToProducer::Ask(5)).unwrap();
        c.handle(b.clone(), Term::Int(2), ToProducer::Ask(3)).unwrap();
        assert_eq!(c.pending(), 8);
        assert_eq!(c.take_demand(6), 6);
        c.events((0..6).map(Term::Int).collect());
        // the one with the most demand first
        assert_eq!(events_sent(&c.take_effects()), vec![(a.clone(), 5), (b.clone(), 1)]);
        assert_eq!(c.take_demand(100), 2);
        c.events((6..10).map(Term::Int).collect());
        assert_eq!(events_sent(&c.take_effects()), vec![(b.clone(), 2)]);
        assert_eq!(c.buffered(), 2, "made beyond demand: buffered");
        c.handle(a.clone(), Term::Int(1), ToProducer::Ask(1)).unwrap();
        assert_eq!(events_sent(&c.take_effects()), vec![(a.clone(), 1)]);
        assert_eq!(c.pending(), 0, "served from the buffer");
    }

    #[test]
    fn hostile_asks_and_unknown_tags() {
        let mut c = ProducerCore::new(pid(1), 3);
        let a = pid(2);
        assert_eq!(c.handle(a.clone(), Term::Int(9), ToProducer::Ask(5)), Err(Refused::UnknownSubscription));
        let fx = c.take_effects();
        assert_eq!(
            fx,
            vec![Effect::Send {
                to: a.clone(),
                msg: ToConsumer::Cancel(Term::atom("unknown_subscription")).to_term(&pid(1), &Term::Int(9))
            }]
        );
        sub(&mut c, &a, 1);
        assert_eq!(c.handle(a.clone(), Term::Int(1), ToProducer::Ask(-3)), Err(Refused::NonPositiveDemand(-3)));
        assert_eq!(c.pending(), 0);
        c.handle(a.clone(), Term::Int(1), ToProducer::Ask(1 << 62)).unwrap();
        c.handle(a.clone(), Term::Int(1), ToProducer::Ask(i128::MAX)).unwrap();
        assert_eq!(c.pending(), u64::MAX, "saturates");
        assert_eq!(c.take_demand(1000), 1000, "a chunk at a time");
        assert_eq!(
            c.handle(a.clone(), Term::Int(1), ToProducer::Subscribe { current: None, opts: Term::nil() }),
            Err(Refused::Duplicated)
        );
        // no demand left after the consumer cancels; events made then are buffered, bounded
        c.take_effects();
        c.handle(a.clone(), Term::Int(1), ToProducer::Cancel(Term::atom("normal"))).unwrap();
        let fx = c.take_effects();
        assert!(fx.contains(&Effect::Demonitor(Term::Int(1))));
        assert_eq!(c.pending(), 0);
        c.events((0..10).map(Term::Int).collect());
        assert_eq!((c.buffered(), c.dropped()), (3, 7));
    }

    #[test]
    fn split_batches_asks_as_gen_stage_does() {
        // max 50, min 25 (as captured: asks of 25 after each batch of 25)
        let (demand, batches) = split_batches((0..50).map(Term::Int).collect(), 25, 50, 50);
        let asks: Vec<(usize, u64)> = batches.iter().map(|(b, a)| (b.len(), *a)).collect();
        assert_eq!(asks, vec![(25, 25), (25, 25)]);
        assert_eq!(demand, 50);
        // max 1000, min 750: the docs' example
        let (demand, batches) = split_batches((0..500).map(Term::Int).collect(), 750, 1000, 1000);
        assert_eq!(batches.iter().map(|(b, a)| (b.len(), *a)).collect::<Vec<_>>(), vec![(250, 250), (250, 250)]);
        assert_eq!(demand, 1000);
        let (demand, batches) = split_batches((0..100).map(Term::Int).collect(), 750, 1000, 1000);
        assert_eq!((demand, batches[0].1), (900, 0));
    }
}
