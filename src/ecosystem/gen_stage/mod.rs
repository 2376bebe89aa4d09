//! GenStage from Rust: a Rust producer that Elixir consumers subscribe to, emitting only what
//! they asked for, and a Rust consumer that subscribes to an Elixir producer and asks again as
//! GenStage consumers do.
//!
//! Follows gen_stage 1.3.2 (`lib/gen_stage.ex`, its "Message protocol" section;
//! `lib/gen_stage/dispatchers/demand_dispatcher.ex`; `lib/gen_stage/utils.ex`). The wire
//! shapes are in [`message`], the bookkeeping in [`core`].
//!
//! ```no_run
//! # async fn demo(node: erlnode::Node) -> Result<(), erlnode::ecosystem::gen_stage::GenStageError> {
//! use erlnode::ecosystem::gen_stage::{self, ConsumerOpts, Producer};
//! use erlnode::term::{Atom, Term};
//! use erlnode::Dest;
//!
//! // the Counter of GenStage's docs: handle_demand(demand, counter)
//! let mut next = 0i64;
//! let producer = Producer::start(&node, Some(Atom::new("counter")), move |demand| {
//!     let events = (next..next + demand as i64).map(Term::Int).collect();
//!     next += demand as i64;
//!     events
//! })?;
//! // iex> GenStage.sync_subscribe(consumer, to: {:counter, :"rust@host"}, max_demand: 100)
//!
//! let opts = ConsumerOpts { max_demand: 50, min_demand: 25, ..Default::default() };
//! let mut consumer = gen_stage::subscribe(&node, Dest::Remote(Atom::new("prod"), Atom::new("ex@host")), opts);
//! while let Some(batch) = consumer.events.recv().await { /* at most max_demand - min_demand events */ }
//! let exit_reason = consumer.exit.await;
//! # Ok(()) }
//! ```
//!
//! Semantics, as GenStage has them:
//! - A producer never sends a consumer more events than it asked for. The callback is called
//!   with the demand not yet served (at most [`MAX_DEMAND_CHUNK`] at a time); events it returns
//!   beyond demand wait in a buffer of [`DEFAULT_BUFFER_SIZE`] (the oldest are dropped past it,
//!   GenStage's `buffer_keep: :last`).
//! - A producer serving large demand makes one chunk at a time, reads its mailbox between
//!   chunks (a `cancel` stops it at once), and keeps to the pace of a remote consumer's
//!   connection: a consumer asking `2^62` gets events as fast as the socket takes them, never a
//!   queue that grows without bound (BEAM suspends such a producer on `busy_dist_port`).
//! - Both sides monitor each other: a consumer that dies loses its subscription; a producer
//!   that dies cancels the consumer's subscription with its exit reason.
//! - A consumer's `cancel` mode decides what a cancelled subscription does to it: `permanent`
//!   (default) exits with the reason, `transient` exits unless the reason is `normal`,
//!   `shutdown` or `{shutdown, _}`, `temporary` does not exit. This Rust consumer has one
//!   subscription, so under `temporary` it ends normally.

pub mod core;
pub mod message;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use self::core::{Effect, ProducerCore, split_batches};
use self::message::{ToConsumer, ToProducer};
use crate::node::{Dest, Node, Process, normal};
use crate::ratelimit::RateLimit;
use crate::term::{Atom, Pid, Reference, Term};

/// Events a producer buffers beyond demand (GenStage's default `buffer_size`).
pub const DEFAULT_BUFFER_SIZE: usize = 10_000;
/// The most demand passed to a producer's callback in one call.
pub const MAX_DEMAND_CHUNK: u64 = 10_000;
/// Signals waiting for a consumer's connection above which a producer waits before it makes
/// more (each an events batch of at most [`MAX_DEMAND_CHUNK`]).
pub const BUSY_DIST_SIGNALS: usize = 16;

/// What went wrong, by whose fault.
#[derive(Clone, Debug, PartialEq)]
pub enum GenStageError {
    /// Local misuse: the producer's name is registered by another process of this node.
    NameTaken(Atom),
}

impl fmt::Display for GenStageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenStageError::NameTaken(n) => write!(f, "{} is registered by another process", n.as_str()),
        }
    }
}

impl std::error::Error for GenStageError {}

static DROPPED_LOG: RateLimit = RateLimit::new(Duration::from_secs(10));

fn note_dropped(what: &str, msg: &Term) {
    if let Some(held) = DROPPED_LOG.allow(Instant::now()) {
        tracing::warn!(held_back = held, "GenStage: {what}: {msg}");
    }
}

/// A running Rust producer.
#[derive(Clone, Debug)]
pub struct Producer {
    /// The producer process.
    pub pid: Pid,
}

impl Producer {
    /// Starts a producer (registered as `name` if given) whose events come from
    /// `handle_demand(demand)`, called as consumers ask (GenStage's `handle_demand/2`).
    pub fn start<F>(node: &Node, name: Option<Atom>, handle_demand: F) -> Result<Producer, GenStageError>
    where
        F: FnMut(u64) -> Vec<Term> + Send + 'static,
    {
        let (go, ready) = oneshot::channel::<bool>();
        let pid = node.spawn(move |p: Process| async move {
            if ready.await != Ok(true) {
                return normal();
            }
            run_producer(p, handle_demand).await
        });
        if let Some(name) = name
            && !node.register(name.clone(), &pid)
        {
            let _ = go.send(false);
            return Err(GenStageError::NameTaken(name));
        }
        let _ = go.send(true);
        Ok(Producer { pid })
    }
}

async fn run_producer<F: FnMut(u64) -> Vec<Term>>(mut p: Process, mut handle_demand: F) -> Term {
    let mut core = ProducerCore::new(p.pid().clone(), DEFAULT_BUFFER_SIZE);
    let mut monitors: HashMap<Reference, Term> = HashMap::new();
    let mut by_tag: HashMap<Term, Reference> = HashMap::new();
    loop {
        // with demand pending, read what is waiting (cancels, more asks) before making more
        let msg = if core.pending() > 0 { p.try_receive() } else { Some(p.receive().await) };
        let produced = msg.is_none();
        match msg {
            None => {
                let n = core.take_demand(MAX_DEMAND_CHUNK);
                core.events(handle_demand(n));
                if core.dropped() > 0 && core.buffered() >= DEFAULT_BUFFER_SIZE {
                    note_dropped(
                        "the producer made more than was asked; buffer full, oldest dropped",
                        &Term::Int(n as i64),
                    );
                }
            }
            Some(msg) => match ToProducer::parse(&msg) {
                Ok(Some((pid, tag, m))) => {
                    if let Err(e) = core.handle(pid, tag, m) {
                        note_dropped(&format!("refused ({e:?})"), &msg);
                    }
                }
                Ok(None) => match msg.as_tuple() {
                    Some([t, Term::Ref(r), _, _, _]) if t.is_atom("DOWN") => {
                        if let Some(tag) = monitors.remove(r) {
                            by_tag.remove(&tag);
                            core.consumer_down(&tag);
                        }
                    }
                    _ => note_dropped("a producer ignored a message", &msg),
                },
                Err(e) => note_dropped(e, &msg),
            },
        }
        let mut remote: Vec<Atom> = Vec::new();
        for e in core.take_effects() {
            match e {
                Effect::Send { to, msg } => {
                    if produced && to.node != *p.node().name() && !remote.contains(&to.node) {
                        remote.push(to.node.clone());
                    }
                    p.send(Dest::Pid(to), msg)
                }
                Effect::Monitor { pid, tag } => {
                    let r = p.monitor(Dest::Pid(pid));
                    monitors.insert(r.clone(), tag.clone());
                    by_tag.insert(tag, r);
                }
                Effect::Demonitor(tag) => {
                    if let Some(r) = by_tag.remove(&tag) {
                        monitors.remove(&r);
                        p.demonitor(&r);
                    }
                }
            }
        }
        if produced {
            // a batch went out: let the connections write it, and keep to their pace when
            // a consumer asks faster than the socket drains (BEAM's busy_dist_port)
            for n in &remote {
                p.node().dist_backpressure(n, BUSY_DIST_SIGNALS).await;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// What a cancelled subscription does to a consumer (`cancel:` of `subscribe_to`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CancelMode {
    /// Exit with the reason (the default).
    #[default]
    Permanent,
    /// Exit unless the reason is `normal`, `shutdown` or `{shutdown, _}`.
    Transient,
    /// Do not exit.
    Temporary,
}

/// A consumer's subscription options (GenStage's defaults: 1000 and half of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerOpts {
    /// `max_demand`: the most events in flight.
    pub max_demand: u64,
    /// `min_demand`: ask again when outstanding demand falls to it.
    pub min_demand: u64,
    /// `cancel`.
    pub cancel: CancelMode,
}

impl Default for ConsumerOpts {
    fn default() -> Self {
        ConsumerOpts { max_demand: 1000, min_demand: 500, cancel: CancelMode::Permanent }
    }
}

/// A running Rust consumer: its events, batch by batch, and how it ended.
pub struct Consumer {
    /// The consumer process.
    pub pid: Pid,
    /// Batches of at most `max_demand - min_demand` events. The consumer asks for more only
    /// once a batch has been taken (a bounded channel: the reader sets the pace).
    pub events: mpsc::Receiver<Vec<Term>>,
    /// The consumer's exit reason: the producer's cancel reason (or exit reason, if it died)
    /// under `permanent`/`transient`, `normal` otherwise.
    pub exit: oneshot::Receiver<Term>,
}

/// Subscribes a new Rust consumer to the producer `to`
/// (`GenStage.sync_subscribe(consumer, to: to, max_demand: ..., min_demand: ...)`).
pub fn subscribe(node: &Node, to: Dest, opts: ConsumerOpts) -> Consumer {
    let opts = ConsumerOpts {
        max_demand: opts.max_demand.max(1),
        min_demand: opts.min_demand.min(opts.max_demand.max(1) - 1),
        ..opts
    };
    let (tx, events) = mpsc::channel(1);
    let (exit_tx, exit) = oneshot::channel();
    let pid = node.spawn(move |mut p: Process| async move {
        let reason = run_consumer(&mut p, to, opts, tx).await;
        let _ = exit_tx.send(reason.clone());
        reason
    });
    Consumer { pid, events, exit }
}

fn is_transient_shutdown(reason: &Term) -> bool {
    reason.is_atom("normal")
        || reason.is_atom("shutdown")
        || matches!(reason.as_tuple(), Some([s, _]) if s.is_atom("shutdown"))
}

async fn run_consumer(p: &mut Process, to: Dest, opts: ConsumerOpts, tx: mpsc::Sender<Vec<Term>>) -> Term {
    let mref = p.monitor(to.clone());
    let tag = Term::Ref(mref.clone());
    let kw = |k: &str, v: u64| Term::Tuple(vec![Term::atom(k), Term::from(v)]);
    let sub_opts = Term::List(vec![kw("max_demand", opts.max_demand), kw("min_demand", opts.min_demand)]);
    let me = p.pid().clone();
    p.send(to.clone(), ToProducer::Subscribe { current: None, opts: sub_opts }.to_term(&me, &tag));
    p.send(to.clone(), ToProducer::Ask(opts.max_demand as i128).to_term(&me, &tag));
    let mut demand = opts.max_demand;
    let mut producer: Option<Pid> = None;
    let reason = loop {
        let msg = p.receive().await;
        match ToConsumer::parse(&msg) {
            Ok(Some((from, r, m))) if r == tag => {
                producer.get_or_insert(from);
                match m {
                    ToConsumer::Events(events) => {
                        let (d, batches) = split_batches(events, opts.min_demand, opts.max_demand, demand);
                        demand = d;
                        for (batch, ask) in batches {
                            if tx.send(batch).await.is_err() {
                                // nobody reads: cancel, as a consumer that stops would
                                let dest = producer.clone().map(Dest::Pid).unwrap_or(to.clone());
                                p.send(dest, ToProducer::Cancel(Term::atom("normal")).to_term(&me, &tag));
                                return normal();
                            }
                            if ask > 0 {
                                let dest = producer.clone().map(Dest::Pid).unwrap_or(to.clone());
                                p.send(dest, ToProducer::Ask(ask as i128).to_term(&me, &tag));
                            }
                        }
                    }
                    ToConsumer::Cancel(reason) => break reason,
                }
            }
            Ok(Some((from, r, _))) => {
                // events or a cancel for a subscription we do not have
                p.send(Dest::Pid(from), ToProducer::Cancel(Term::atom("unknown_subscription")).to_term(&me, &r));
                note_dropped("a consumer got a message for an unknown subscription", &msg);
            }
            Err(e) => note_dropped(e, &msg),
            Ok(None) => match msg.as_tuple() {
                Some([t, Term::Ref(r), _, _, reason]) if t.is_atom("DOWN") && *r == mref => break reason.clone(),
                _ => note_dropped("a consumer ignored a message", &msg),
            },
        }
    };
    p.demonitor(&mref);
    match opts.cancel {
        CancelMode::Permanent => reason,
        CancelMode::Transient if !is_transient_shutdown(&reason) => reason,
        _ => normal(),
    }
}
