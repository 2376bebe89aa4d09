//! GenStage's message protocol (sans-IO), as gen_stage 1.3.2 documents it ("Message protocol",
//! `lib/gen_stage.ex`) and implements it (`handle_info/2` clauses of `GenStage`).
//!
//! | from → to | message |
//! |---|---|
//! | consumer → producer | `{'$gen_producer', {ConsumerPid, Ref}, {subscribe, Current, Opts}}` (`Current`: `nil` or `{Ref, Reason}` to cancel first) |
//! | consumer → producer | `{'$gen_producer', {ConsumerPid, Ref}, {ask, Demand}}` |
//! | consumer → producer | `{'$gen_producer', {ConsumerPid, Ref}, {cancel, Reason}}` |
//! | producer → consumer | `{'$gen_consumer', {ProducerPid, Ref}, [Event, ...]}` |
//! | producer → consumer | `{'$gen_consumer', {ProducerPid, Ref}, {cancel, Reason}}` |
//!
//! `Ref` is the subscription tag (the consumer's monitor reference on BEAM, but any term). An
//! `ask` or events for an unknown tag are answered with `{cancel, unknown_subscription}`; a
//! second `subscribe` with a known tag with `{cancel, duplicated_subscription}`.

use crate::term::{Pid, Term};

/// `'$gen_producer'`.
pub const GEN_PRODUCER: &str = "$gen_producer";
/// `'$gen_consumer'`.
pub const GEN_CONSUMER: &str = "$gen_consumer";

/// A message to a producer.
#[derive(Clone, Debug, PartialEq)]
pub enum ToProducer {
    /// `{subscribe, Current, Opts}`.
    Subscribe {
        /// A subscription to cancel first: `(Tag, Reason)`.
        current: Option<(Term, Term)>,
        /// The subscription options (a keyword list).
        opts: Term,
    },
    /// `{ask, Demand}`; `Demand` as sent (it may be negative or huge).
    Ask(i128),
    /// `{cancel, Reason}`.
    Cancel(Term),
}

/// A message to a consumer.
#[derive(Clone, Debug, PartialEq)]
pub enum ToConsumer {
    /// A non-empty list of events.
    Events(Vec<Term>),
    /// `{cancel, Reason}`.
    Cancel(Term),
}

/// `{Tag, {Pid, Ref}, Body}` split: `Ok(None)` for a message without the tag, `Err` for one
/// with the tag but a wrong shape (what was wrong).
fn envelope<'a>(tag: &str, msg: &'a Term) -> Result<Option<(&'a Pid, &'a Term, &'a Term)>, &'static str> {
    let Some([t, from, body]) = msg.as_tuple() else { return Ok(None) };
    if !t.is_atom(tag) {
        return Ok(None);
    }
    match from.as_tuple() {
        Some([Term::Pid(pid), r]) => Ok(Some((pid, r, body))),
        _ => Err("the from is not {Pid, Ref}"),
    }
}

/// `Term::Int` or a big integer, as `i128` (saturating: a peer may send 2^100).
fn integer(t: &Term) -> Option<i128> {
    match t {
        Term::Int(i) => Some(*i as i128),
        Term::BigInt(b) => Some(b.to_string().parse::<i128>().unwrap_or(if b.to_string().starts_with('-') {
            i128::MIN
        } else {
            i128::MAX
        })),
        _ => None,
    }
}

impl ToProducer {
    /// Parses a message to a producer: `(ConsumerPid, Ref, Message)`.
    pub fn parse(msg: &Term) -> Result<Option<(Pid, Term, ToProducer)>, &'static str> {
        let Some((pid, r, body)) = envelope(GEN_PRODUCER, msg)? else { return Ok(None) };
        let m = match body.as_tuple() {
            Some([v, current, opts]) if v.is_atom("subscribe") => {
                let current = match current.as_tuple() {
                    Some([r, reason]) => Some((r.clone(), reason.clone())),
                    _ if current.is_atom("nil") => None,
                    _ => return Err("subscribe's current is neither nil nor {Ref, Reason}"),
                };
                ToProducer::Subscribe { current, opts: opts.clone() }
            }
            Some([v, n]) if v.is_atom("ask") => ToProducer::Ask(integer(n).ok_or("ask's demand is not an integer")?),
            Some([v, reason]) if v.is_atom("cancel") => ToProducer::Cancel(reason.clone()),
            _ => return Err("not subscribe, ask or cancel"),
        };
        Ok(Some((pid.clone(), r.clone(), m)))
    }

    /// The message as a consumer sends it from `{pid, tag}`.
    pub fn to_term(&self, pid: &Pid, tag: &Term) -> Term {
        let body = match self {
            ToProducer::Subscribe { current, opts } => Term::Tuple(vec![
                Term::atom("subscribe"),
                match current {
                    None => Term::atom("nil"),
                    Some((r, reason)) => Term::Tuple(vec![r.clone(), reason.clone()]),
                },
                opts.clone(),
            ]),
            ToProducer::Ask(n) => Term::Tuple(vec![Term::atom("ask"), Term::from(*n)]),
            ToProducer::Cancel(reason) => Term::Tuple(vec![Term::atom("cancel"), reason.clone()]),
        };
        Term::Tuple(vec![Term::atom(GEN_PRODUCER), Term::Tuple(vec![Term::Pid(pid.clone()), tag.clone()]), body])
    }
}

impl ToConsumer {
    /// Parses a message to a consumer: `(ProducerPid, Ref, Message)`.
    pub fn parse(msg: &Term) -> Result<Option<(Pid, Term, ToConsumer)>, &'static str> {
        let Some((pid, r, body)) = envelope(GEN_CONSUMER, msg)? else { return Ok(None) };
        let m = match body {
            Term::List(events) if !events.is_empty() => ToConsumer::Events(events.clone()),
            _ => match body.as_tuple() {
                Some([v, reason]) if v.is_atom("cancel") => ToConsumer::Cancel(reason.clone()),
                _ => return Err("neither a non-empty list of events nor {cancel, Reason}"),
            },
        };
        Ok(Some((pid.clone(), r.clone(), m)))
    }

    /// The message as a producer sends it from `{pid, tag}`.
    pub fn to_term(&self, pid: &Pid, tag: &Term) -> Term {
        let body = match self {
            ToConsumer::Events(e) => Term::List(e.clone()),
            ToConsumer::Cancel(reason) => Term::Tuple(vec![Term::atom("cancel"), reason.clone()]),
        };
        Term::Tuple(vec![Term::atom(GEN_CONSUMER), Term::Tuple(vec![Term::Pid(pid.clone()), tag.clone()]), body])
    }
}

/// The value of `key` in a keyword list (`[{max_demand, 10}, ...]`).
pub fn keyword<'a>(opts: &'a Term, key: &str) -> Option<&'a Term> {
    opts.as_list()?.iter().find_map(|kv| match kv.as_tuple() {
        Some([k, v]) if k.is_atom(key) => Some(v),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{Atom, decode};

    fn pid() -> Pid {
        Pid { node: Atom::new("a@h"), id: 5, serial: 0, creation: 1 }
    }

    #[test]
    fn round_trips_and_bad_shapes() {
        let tag = Term::atom("t");
        for m in [
            ToProducer::Subscribe { current: None, opts: Term::List(vec![]) },
            ToProducer::Subscribe { current: Some((Term::Int(1), Term::atom("x"))), opts: Term::nil() },
            ToProducer::Ask(-5),
            ToProducer::Ask(1 << 62),
            ToProducer::Cancel(Term::atom("normal")),
        ] {
            assert_eq!(ToProducer::parse(&m.to_term(&pid(), &tag)).unwrap(), Some((pid(), tag.clone(), m)));
        }
        for m in [ToConsumer::Events(vec![Term::Int(1)]), ToConsumer::Cancel(Term::atom("normal"))] {
            assert_eq!(ToConsumer::parse(&m.to_term(&pid(), &tag)).unwrap(), Some((pid(), tag.clone(), m)));
        }
        let env = |tag: &str, from: Term, body: Term| Term::Tuple(vec![Term::atom(tag), from, body]);
        let from = Term::Tuple(vec![Term::Pid(pid()), Term::Int(1)]);
        assert!(ToProducer::parse(&env(GEN_PRODUCER, Term::atom("x"), Term::atom("y"))).is_err());
        assert!(
            ToProducer::parse(&env(GEN_PRODUCER, from.clone(), Term::Tuple(vec![Term::atom("ask"), Term::atom("x")])))
                .is_err()
        );
        assert!(ToConsumer::parse(&env(GEN_CONSUMER, from.clone(), Term::nil())).is_err(), "an empty event list");
        assert_eq!(ToProducer::parse(&Term::atom("hello")), Ok(None));
        assert_eq!(
            keyword(&Term::List(vec![Term::Tuple(vec![Term::atom("max_demand"), Term::Int(7)])]), "max_demand"),
            Some(&Term::Int(7))
        );
    }

    /// What a GenStage consumer on OTP 27 (gen_stage 1.3.2) sent to a producer on another node:
    /// `GenStage.sync_subscribe(c, to: {:prod, node_b}, max_demand: 50)`, traced with
    /// `:erlang.trace(producer, true, [:receive])` and `:erlang.term_to_binary/1` (then asks of
    /// 25, `max_demand - min_demand`, as batches were handled).
    #[test]
    fn replays_a_subscribe_and_ask_a_beam_consumer_sent() {
        for bytes in [SUBSCRIBE, ASK] {
            let t = decode(bytes).unwrap();
            let (_, r, m) = ToProducer::parse(&t).unwrap().unwrap();
            assert!(matches!(r, Term::Ref(_)));
            match m {
                ToProducer::Subscribe { current: None, opts } => {
                    assert_eq!(keyword(&opts, "max_demand"), Some(&Term::Int(50)));
                }
                ToProducer::Ask(n) => assert_eq!(n, 50),
                other => panic!("{other:?}"),
            }
        }
    }

    const SUBSCRIBE: &[u8] = &[
        131, 104, 3, 119, 13, 36, 103, 101, 110, 95, 112, 114, 111, 100, 117, 99, 101, 114, 104, 2, 88, 119, 7, 103,
        115, 95, 97, 64, 118, 109, 0, 0, 0, 113, 0, 0, 0, 0, 107, 19, 235, 163, 90, 0, 3, 119, 7, 103, 115, 95, 97, 64,
        118, 109, 107, 19, 235, 163, 0, 3, 75, 126, 230, 8, 0, 1, 213, 65, 214, 181, 104, 3, 119, 9, 115, 117, 98, 115,
        99, 114, 105, 98, 101, 119, 3, 110, 105, 108, 108, 0, 0, 0, 1, 104, 2, 119, 10, 109, 97, 120, 95, 100, 101,
        109, 97, 110, 100, 97, 50, 106,
    ];
    const ASK: &[u8] = &[
        131, 104, 3, 119, 13, 36, 103, 101, 110, 95, 112, 114, 111, 100, 117, 99, 101, 114, 104, 2, 88, 119, 7, 103,
        115, 95, 97, 64, 118, 109, 0, 0, 0, 113, 0, 0, 0, 0, 107, 19, 235, 163, 90, 0, 3, 119, 7, 103, 115, 95, 97, 64,
        118, 109, 107, 19, 235, 163, 0, 3, 75, 126, 230, 8, 0, 1, 213, 65, 214, 181, 104, 2, 119, 3, 97, 115, 107, 97,
        50,
    ];
}
