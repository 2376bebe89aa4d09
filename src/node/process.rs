//! Lightweight processes: a tokio task, a pid, a mailbox, and the link/monitor state BEAM keeps
//! per process (Erlang Reference Manual, "Processes": links, monitors, exit signals, aliases).
//!
//! The mailbox carries only messages; it allocates nothing until the first message arrives, so
//! an idle process costs little. Exit signals that kill are delivered out of band: the
//! reason is stored and the task is woken and dropped at its next poll, so a process that is
//! busy (or waiting on something other than its mailbox) still dies promptly, as on BEAM.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::spin::CallStamp;
use super::{Dest, Node};
use crate::dist::Mfa;
use crate::hash::PeerKeys;
use crate::term::{Atom, Pid, Reference, Term};

/// What a monitor watches: a pid, or a registered name on some node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MonitorTarget {
    /// A process by pid.
    Pid(Pid),
    /// A registered name on a node (the `DOWN` object is `{Name, Node}`).
    Name(Atom, Atom),
}

impl MonitorTarget {
    /// The object a `DOWN` message names: the pid, or `{Name, Node}`.
    pub fn down_object(&self) -> Term {
        match self {
            MonitorTarget::Pid(p) => Term::Pid(p.clone()),
            MonitorTarget::Name(n, node) => Term::Tuple(vec![Term::Atom(n.clone()), Term::Atom(node.clone())]),
        }
    }

    /// The node the target lives on.
    pub fn node(&self) -> &Atom {
        match self {
            MonitorTarget::Pid(p) => &p.node,
            MonitorTarget::Name(_, node) => node,
        }
    }
}

/// Someone who monitors this process, and how they named it.
#[derive(Clone, Debug)]
pub(crate) struct Watcher {
    /// The monitoring process (local or remote).
    pub pid: Pid,
    /// `Some(name)` when the monitor was set up by registered name.
    pub by_name: Option<Atom>,
    /// A remote watcher's place in the count of callers waiting (`spin::call_began`).
    pub call: CallStamp,
}

/// The mutable per-process state that other processes and connections touch.
#[derive(Debug, Default)]
pub(crate) struct ProcState {
    pub alive: bool,
    /// Active links. An unlink removes the entry at once; under the OTP 26 link protocol
    /// (`erl_dist_protocol`, "Link Protocol") an exit signal that crosses our UNLINK_ID then
    /// finds no link and is ignored, which is the outcome the protocol prescribes.
    pub links: HashSet<Pid, PeerKeys>,
    /// Monitors this process holds: reference to target.
    pub monitors: HashMap<Reference, MonitorTarget, PeerKeys>,
    /// Monitors on this process: reference to watcher (peers choose these references).
    pub monitored_by: HashMap<Reference, Watcher, PeerKeys>,
    pub name: Option<Atom>,
    pub aliases: HashSet<Reference, PeerKeys>,
    /// Spawn requests this process sent and not yet got a reply to: request id to node.
    pub spawn_requests: HashMap<Reference, Atom, PeerKeys>,
    /// What introspection reports (`process_info/2`); set once, when the process starts, by
    /// whoever knows (a spawn request, `gen_server`): nothing here is touched per message.
    pub labels: Labels,
}

/// How a process describes itself to `process_info/2`.
#[derive(Debug, Default)]
pub struct Labels {
    /// `initial_call`; `None` reports `{erlang, apply, 2}`, what BEAM shows for `spawn(Fun)`.
    pub initial_call: Option<Mfa>,
    /// `current_function` while the process waits; `None` reports the initial call.
    pub current_function: Option<Mfa>,
    /// The process dictionary (`proc_lib`'s `'$initial_call'` and `'$ancestors'`, ...).
    pub dictionary: Vec<(Term, Term)>,
    /// The group leader a spawn request named (where the process's I/O goes on BEAM).
    pub group_leader: Option<Pid>,
}

impl ProcState {
    /// Removes a monitor this process holds.
    pub fn forget_monitor(&mut self, mref: &Reference) -> Option<MonitorTarget> {
        let t = self.monitors.remove(mref);
        shrink_if_sparse(&mut self.monitors);
        t
    }

    /// Removes a monitor on this process.
    pub fn forget_watcher(&mut self, mref: &Reference) -> Option<Watcher> {
        let w = self.monitored_by.remove(mref);
        shrink_if_sparse(&mut self.monitored_by);
        w
    }

    /// Removes the monitors on this process held by processes on `node` (its connection is
    /// gone).
    pub fn forget_watchers_on(&mut self, node: &Atom) {
        self.monitored_by.retain(|_, w| &w.pid.node != node);
        shrink_if_sparse(&mut self.monitored_by);
    }
}

/// Entries' worth of room a monitor table keeps however empty it gets (above the callers a busy
/// server usually has at once, so that a table does not shrink and grow again with every wave).
const TABLE_KEEP: usize = 256;

/// Gives back a table's room once it is three-quarters empty, keeping twice what is left (so
/// shrinking and growing again stay amortised O(1)). A server that had 100,000 callers at once
/// monitoring it would otherwise keep their room for good, where BEAM frees each monitor.
fn shrink_if_sparse<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > TABLE_KEEP && map.len() * 4 < map.capacity() {
        map.shrink_to((map.len() * 2).max(TABLE_KEEP));
    }
}

/// Out-of-band kill: the reason and the waker of the process task.
#[derive(Debug, Default)]
struct KillSlot {
    reason: Option<Term>,
    waker: Option<Waker>,
}

/// Messages' worth of room an empty mailbox keeps; a mailbox that grew beyond it during a burst
/// releases the memory when it is next found empty.
const MAILBOX_KEEP: usize = 256;

/// A process's message queue and the waker of the process when it waits on an empty queue.
#[derive(Debug, Default)]
struct Mailbox {
    inner: Mutex<MailboxInner>,
}

#[derive(Debug, Default)]
struct MailboxInner {
    queue: VecDeque<Term>,
    waker: Option<Waker>,
    /// Messages ever queued: what erlnode reports as `reductions` (counted under the lock
    /// the push takes anyway, so it costs nothing on the message path).
    received: u64,
}

impl Mailbox {
    fn push(&self, msg: Term) {
        let waker = {
            let mut inner = lock(&self.inner);
            inner.queue.push_back(msg);
            inner.received += 1;
            inner.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn try_pop(&self) -> Option<Term> {
        lock(&self.inner).queue.pop_front()
    }

    fn len(&self) -> usize {
        lock(&self.inner).queue.len()
    }

    /// `(queued, received so far, room in bytes)`.
    fn stats(&self) -> (usize, u64, usize) {
        let inner = lock(&self.inner);
        (inner.queue.len(), inner.received, inner.queue.capacity() * std::mem::size_of::<Term>())
    }

    fn snapshot(&self) -> Vec<Term> {
        lock(&self.inner).queue.iter().cloned().collect()
    }

    /// The oldest message, waiting for one if needed. Cancel-safe: a message is taken only
    /// when the future completes.
    async fn pop(&self) -> Term {
        std::future::poll_fn(|cx| {
            let mut inner = lock(&self.inner);
            match inner.queue.pop_front() {
                Some(m) => Poll::Ready(m),
                None => {
                    if inner.queue.capacity() > MAILBOX_KEEP {
                        // a burst has drained: give its memory back, as BEAM frees a message
                        // once it is received
                        inner.queue = VecDeque::new();
                    }
                    match &inner.waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => inner.waker = Some(cx.waker().clone()),
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// The shared half of a process: reachable from the process table.
#[derive(Debug)]
pub(crate) struct ProcessEntry {
    pub pid: Pid,
    mailbox: Mailbox,
    trap_exit: AtomicBool,
    state: Mutex<ProcState>,
    kill: Mutex<KillSlot>,
    /// Messages the process passed over in a selective receive, oldest first (they are still
    /// in its queue for `process_info`); only the process itself changes them, and only in a
    /// selective receive: a plain receive reads `saved_len` and takes no lock.
    saved: Mutex<VecDeque<Term>>,
    /// `saved`'s length.
    saved_len: AtomicUsize,
    /// The size of the process's task (its future, which holds its locals), set at spawn.
    task_bytes: AtomicUsize,
}

/// Locks a mutex, recovering the data if a panicking holder poisoned it: the state is kept
/// consistent by short, non-panicking critical sections, so the data is still valid.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ProcessEntry {
    pub(crate) fn new(pid: Pid) -> Arc<ProcessEntry> {
        let state = ProcState { alive: true, ..ProcState::default() };
        let entry = ProcessEntry {
            pid,
            mailbox: Mailbox::default(),
            trap_exit: AtomicBool::new(false),
            state: Mutex::new(state),
            kill: Mutex::new(KillSlot::default()),
            saved: Mutex::new(VecDeque::new()),
            saved_len: AtomicUsize::new(0),
            task_bytes: AtomicUsize::new(0),
        };
        Arc::new(entry)
    }

    /// Queues a message. Messages to a process that has exited vanish, as on BEAM.
    pub(crate) fn deliver(&self, msg: Term) {
        self.mailbox.push(msg);
    }

    pub(crate) fn set_task_bytes(&self, n: usize) {
        self.task_bytes.store(n, Ordering::Relaxed);
    }

    /// `(message_queue_len, reductions, bytes)`: the figures `process_info/2` reports.
    pub(crate) fn figures(&self) -> (usize, u64, usize) {
        let (queued, received, room) = self.mailbox.stats();
        let saved = self.saved_len.load(Ordering::Relaxed);
        let bytes = std::mem::size_of::<ProcessEntry>()
            + self.task_bytes.load(Ordering::Relaxed)
            + room
            + saved * std::mem::size_of::<Term>();
        (queued + saved, received, bytes)
    }

    /// The messages waiting, oldest first: those a selective receive passed over, then the
    /// mailbox (a copy; only for introspection).
    pub(crate) fn queued_messages(&self) -> Vec<Term> {
        let mut v: Vec<Term> = lock(&self.saved).iter().cloned().collect();
        v.extend(self.mailbox.snapshot());
        v
    }

    /// Runs `f` on the passed-over messages and publishes their new count.
    fn with_saved<T>(&self, f: impl FnOnce(&mut VecDeque<Term>) -> T) -> T {
        let mut saved = lock(&self.saved);
        let t = f(&mut saved);
        self.saved_len.store(saved.len(), Ordering::Relaxed);
        t
    }

    fn has_saved(&self) -> bool {
        self.saved_len.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn traps_exits(&self) -> bool {
        self.trap_exit.load(Ordering::Acquire)
    }

    pub(crate) fn set_trap_exit(&self, on: bool) -> bool {
        self.trap_exit.swap(on, Ordering::AcqRel)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, ProcState> {
        lock(&self.state)
    }

    /// Makes the process exit with `reason` at its next poll (the first reason wins).
    pub(crate) fn kill(&self, reason: Term) {
        let mut k = lock(&self.kill);
        if k.reason.is_none() {
            k.reason = Some(reason);
        }
        if let Some(w) = k.waker.take() {
            w.wake();
        }
    }

    fn poll_killed(&self, cx: &Context<'_>) -> Option<Term> {
        let mut k = lock(&self.kill);
        if let Some(r) = k.reason.take() {
            return Some(r);
        }
        match &k.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => k.waker = Some(cx.waker().clone()),
        }
        None
    }
}

/// Runs a process body; completes with the exit reason: the body's result, the reason of a
/// killing exit signal, or `{panic, Message}` when the body panics.
pub(crate) struct Guarded<F> {
    fut: Pin<Box<F>>,
    entry: Arc<ProcessEntry>,
}

impl<F> Guarded<F> {
    pub(crate) fn new(fut: F, entry: Arc<ProcessEntry>) -> Guarded<F> {
        Guarded { fut: Box::pin(fut), entry }
    }
}

impl<F: Future<Output = Term>> Future for Guarded<F> {
    type Output = Term;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Term> {
        if let Some(reason) = self.entry.poll_killed(cx) {
            return Poll::Ready(reason);
        }
        let fut = self.fut.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(p) => p,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                Poll::Ready(Term::Tuple(vec![Term::atom("panic"), Term::binary(msg.as_bytes())]))
            }
        }
    }
}

/// The exit reason `normal`.
pub fn normal() -> Term {
    Term::atom("normal")
}

/// A running process, as seen from its own body: its mailbox, and the process operations of
/// the `erlang` module (`send`, `link`, `monitor`, `exit`, ...).
pub struct Process {
    node: Node,
    entry: Arc<ProcessEntry>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("pid", &self.entry.pid).finish()
    }
}

impl Process {
    pub(crate) fn new(node: Node, entry: Arc<ProcessEntry>) -> Process {
        Process { node, entry }
    }

    /// This process's pid (`self()`).
    pub fn pid(&self) -> &Pid {
        &self.entry.pid
    }

    /// The node this process runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Sends `msg` to `to` (`erlang:send/2`). Never fails, as on BEAM.
    pub fn send(&self, to: impl Into<Dest>, msg: Term) {
        self.node.send_from(Some(&self.entry.pid), to.into(), msg);
    }

    /// The next message, waiting as long as it takes.
    pub async fn receive(&mut self) -> Term {
        if let Some(m) = self.pop_saved() {
            return m;
        }
        self.entry.mailbox.pop().await
    }

    /// The oldest passed-over message, if any (no lock when there is none).
    fn pop_saved(&self) -> Option<Term> {
        if !self.entry.has_saved() {
            return None;
        }
        self.entry.with_saved(|s| s.pop_front())
    }

    /// The next message if one is waiting, without waiting (`receive ... after 0`).
    pub fn try_receive(&mut self) -> Option<Term> {
        self.pop_saved().or_else(|| self.entry.mailbox.try_pop())
    }

    /// The next message, or `None` after `timeout`.
    pub async fn receive_timeout(&mut self, timeout: Duration) -> Option<Term> {
        if let Some(m) = self.pop_saved() {
            return Some(m);
        }
        tokio::time::timeout(timeout, self.entry.mailbox.pop()).await.ok()
    }

    /// Selective receive: the first message (oldest first) for which `select` returns `Some`,
    /// leaving the others in the mailbox in order; `None` after `timeout` (`None` waits forever).
    pub async fn receive_match<T>(
        &mut self,
        timeout: Option<Duration>,
        mut select: impl FnMut(&Term) -> Option<T>,
    ) -> Option<T> {
        if self.entry.has_saved() {
            let found = self.entry.with_saved(|saved| {
                for i in 0..saved.len() {
                    if let Some(t) = select(&saved[i]) {
                        saved.remove(i);
                        return Some(t);
                    }
                }
                None
            });
            if found.is_some() {
                return found;
            }
        }
        let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
        loop {
            let msg = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.entry.mailbox.pop()).await {
                    Ok(m) => m,
                    Err(_) => return None,
                },
                None => self.entry.mailbox.pop().await,
            };
            if let Some(t) = select(&msg) {
                return Some(t);
            }
            self.entry.with_saved(|s| s.push_back(msg));
        }
    }

    /// Number of messages waiting (`process_info(self(), message_queue_len)`).
    pub fn message_queue_len(&self) -> usize {
        self.entry.saved_len.load(Ordering::Relaxed) + self.entry.mailbox.len()
    }

    /// Sets `trap_exit`; returns the previous value (`process_flag(trap_exit, On)`).
    pub fn trap_exit(&self, on: bool) -> bool {
        self.entry.set_trap_exit(on)
    }

    /// Links to `pid` (`link/1`). Linking to a process that does not exist delivers an exit
    /// signal `noproc` to this process, as BEAM does.
    pub fn link(&self, pid: &Pid) {
        self.node.link(&self.entry.pid, pid);
    }

    /// Removes the link to `pid` (`unlink/1`).
    pub fn unlink(&self, pid: &Pid) {
        self.node.unlink(&self.entry.pid, pid);
    }

    /// Monitors a process (`monitor(process, Target)`); returns the monitor reference.
    pub fn monitor(&self, target: impl Into<Dest>) -> Reference {
        self.node.monitor(&self.entry.pid, target.into())
    }

    /// Removes a monitor (`demonitor(Ref, [flush])`): also drops a `DOWN` for it already queued.
    pub fn demonitor(&mut self, reference: &Reference) {
        self.node.demonitor(&self.entry.pid, reference);
        let is_down = |m: &Term| match m.as_tuple() {
            Some([tag, Term::Ref(r), ..]) => tag.is_atom("DOWN") && r == reference,
            _ => false,
        };
        let mut keep = VecDeque::new();
        while let Some(m) = self.entry.mailbox.try_pop() {
            if !is_down(&m) {
                keep.push_back(m);
            }
        }
        if self.entry.has_saved() || !keep.is_empty() {
            self.entry.with_saved(|saved| {
                saved.retain(|m| !is_down(m));
                saved.extend(keep);
            });
        }
    }

    /// Sends an exit signal to `pid` (`exit/2`).
    pub fn exit(&self, pid: &Pid, reason: Term) {
        self.node.exit2(&self.entry.pid, pid, reason);
    }

    /// Registers this process under `name` locally (`register/2`); `false` if taken.
    pub fn register(&self, name: Atom) -> bool {
        self.node.register(name, &self.entry.pid)
    }

    /// A new unique reference (`make_ref/0`).
    pub fn make_ref(&self) -> Reference {
        self.node.make_ref()
    }

    /// Describes this process to `process_info/2` (`initial_call`, `current_function`, the
    /// dictionary); meant to be called once, when the process starts.
    pub fn set_labels(&self, initial_call: Option<Mfa>, current_function: Option<Mfa>, dictionary: Vec<(Term, Term)>) {
        let mut st = self.entry.state();
        let group_leader = st.labels.group_leader.take();
        st.labels = Labels { initial_call, current_function, dictionary, group_leader };
    }

    /// The group leader of a process a peer spawned (`group_leader()`; `None` for a process
    /// started from Rust, which has none).
    pub fn group_leader(&self) -> Option<Pid> {
        self.entry.state().labels.group_leader.clone()
    }

    /// This process's dictionary as `process_info(self(), dictionary)` reports it.
    pub fn dictionary(&self) -> Vec<(Term, Term)> {
        self.entry.state().labels.dictionary.clone()
    }

    /// A new active alias of this process (`alias/0`).
    pub fn alias(&self) -> Reference {
        self.node.alias(&self.entry)
    }

    /// Deactivates an alias (`unalias/1`); `false` if it was not one of this process's.
    pub fn unalias(&self, alias: &Reference) -> bool {
        self.node.unalias(&self.entry, alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_tables_give_back_the_room_of_monitors_gone() {
        let node = Atom::new("a@h");
        let refs: Vec<Reference> =
            (0..10_000u32).map(|i| Reference::new(node.clone(), 1, &[i, 1, 2]).unwrap()).collect();
        let pid = Pid { node: node.clone(), id: 1, serial: 0, creation: 1 };
        let mut st = ProcState::default();
        for r in &refs {
            st.monitored_by.insert(r.clone(), Watcher { pid: pid.clone(), by_name: None, call: CallStamp::default() });
            st.monitors.insert(r.clone(), MonitorTarget::Pid(pid.clone()));
        }
        for r in &refs[..9_990] {
            assert!(st.forget_watcher(r).is_some());
            assert!(st.forget_monitor(r).is_some());
        }
        assert_eq!((st.monitored_by.len(), st.monitors.len()), (10, 10));
        assert!(st.monitored_by.capacity() <= 2 * TABLE_KEEP, "{}", st.monitored_by.capacity());
        assert!(st.monitors.capacity() <= 2 * TABLE_KEEP, "{}", st.monitors.capacity());
        // what is left is still there
        for r in &refs[9_990..] {
            assert!(st.forget_watcher(r).is_some());
            assert!(st.forget_monitor(r).is_some());
        }
        assert!(st.forget_watcher(&refs[0]).is_none());
        // a lost connection takes its node's watchers, and their room
        let far = Pid { node: Atom::new("b@h"), ..pid.clone() };
        for r in &refs {
            st.monitored_by.insert(r.clone(), Watcher { pid: far.clone(), by_name: None, call: CallStamp::default() });
        }
        st.monitored_by
            .insert(refs[0].clone(), Watcher { pid: pid.clone(), by_name: None, call: CallStamp::default() });
        st.forget_watchers_on(&far.node);
        assert_eq!(st.monitored_by.len(), 1);
        assert!(st.monitored_by.capacity() <= 2 * TABLE_KEEP, "{}", st.monitored_by.capacity());
    }

    #[tokio::test]
    async fn a_drained_burst_gives_its_memory_back() {
        let mb = Mailbox::default();
        for i in 0..10_000 {
            mb.push(Term::Int(i));
        }
        for i in 0..10_000 {
            assert_eq!(mb.pop().await, Term::Int(i));
        }
        assert!(lock(&mb.inner).queue.capacity() >= 10_000, "the burst's room is kept while it is being received");
        // found empty: the room goes
        assert!(tokio::time::timeout(Duration::from_millis(1), mb.pop()).await.is_err());
        assert_eq!(lock(&mb.inner).queue.capacity(), 0);
        // a small queue keeps its room
        for i in 0..100 {
            mb.push(Term::Int(i));
        }
        for _ in 0..100 {
            mb.pop().await;
        }
        assert!(tokio::time::timeout(Duration::from_millis(1), mb.pop()).await.is_err());
        assert!(lock(&mb.inner).queue.capacity() >= 100);
        // and messages still arrive
        mb.push(Term::Int(7));
        assert_eq!(mb.pop().await, Term::Int(7));
    }
}
