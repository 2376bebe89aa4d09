//! What a node tells about its processes and itself (ERTS `erlang:processes/0`,
//! `erlang:process_info/2`, `erlang:statistics/1`), as plain Rust values: the services layer
//! gives them BEAM's term shapes for tools on other nodes.
//!
//! Nothing here is kept up to date per message. The figures are read when someone asks:
//! the mailbox length and the count of messages received (kept under the lock a push takes
//! anyway), the link and monitor tables, the labels a process set when it started, and the
//! room its task and mailbox take.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::process::{Labels, ProcessEntry};
use super::{MonitorTarget, Node};
use crate::dist::Mfa;
use crate::term::{Atom, Pid, Term};

/// What a process is doing, as `process_info(Pid, status)` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessStatus {
    /// Messages are queued for it: it runs or is about to.
    Runnable,
    /// Its mailbox is empty (it waits for a message, or works on something else).
    Waiting,
    /// It is exiting.
    Exiting,
}

impl ProcessStatus {
    /// The atom BEAM uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessStatus::Runnable => "runnable",
            ProcessStatus::Waiting => "waiting",
            ProcessStatus::Exiting => "exiting",
        }
    }
}

/// One process, as `process_info/2` describes it.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// The pid.
    pub pid: Pid,
    /// Its local name.
    pub registered_name: Option<Atom>,
    /// What it is doing.
    pub status: ProcessStatus,
    /// Messages waiting, including those a selective receive holds aside.
    pub message_queue_len: usize,
    /// Linked processes.
    pub links: Vec<Pid>,
    /// What it monitors.
    pub monitors: Vec<MonitorTarget>,
    /// Who monitors it.
    pub monitored_by: Vec<Pid>,
    /// Bytes erlnode holds for it: its table entry, its task (the future, which holds its
    /// locals and a GenServer's state struct, not what they point to), its mailbox's room.
    pub memory: usize,
    /// Messages it has received: erlnode's stand-in for BEAM's reductions.
    pub reductions: u64,
    /// `initial_call` (`{erlang, apply, 2}` for a process spawned from Rust).
    pub initial_call: Mfa,
    /// `current_function`: where it waits (the initial call unless it said otherwise).
    pub current_function: Mfa,
    /// The process dictionary.
    pub dictionary: Vec<(Term, Term)>,
    /// `process_flag(trap_exit, _)`.
    pub trap_exit: bool,
    /// The group leader a peer's spawn request named; `None` for a process started from Rust.
    pub group_leader: Option<Pid>,
}

fn mfa(m: &str, f: &str, arity: u8) -> Mfa {
    Mfa { module: Atom::new(m), function: Atom::new(f), arity }
}

impl ProcessInfo {
    fn read(entry: &ProcessEntry) -> Option<ProcessInfo> {
        let (message_queue_len, reductions, memory) = entry.figures();
        let st = entry.state();
        if !st.alive {
            return None;
        }
        let Labels { initial_call, current_function, dictionary, group_leader } = &st.labels;
        let initial_call = initial_call.clone().unwrap_or_else(|| mfa("erlang", "apply", 2));
        let current_function = current_function.clone().unwrap_or_else(|| initial_call.clone());
        let tables = (st.links.capacity() + st.monitors.capacity() + st.monitored_by.capacity())
            * (std::mem::size_of::<Pid>() + std::mem::size_of::<MonitorTarget>());
        let mut links: Vec<Pid> = st.links.iter().cloned().collect();
        links.sort();
        Some(ProcessInfo {
            pid: entry.pid.clone(),
            registered_name: st.name.clone(),
            status: if message_queue_len > 0 { ProcessStatus::Runnable } else { ProcessStatus::Waiting },
            message_queue_len,
            links,
            monitors: st.monitors.values().cloned().collect(),
            monitored_by: st.monitored_by.values().map(|w| w.pid.clone()).collect(),
            memory: memory + tables,
            reductions,
            initial_call,
            current_function,
            dictionary: dictionary.clone(),
            trap_exit: entry.traps_exits(),
            group_leader: group_leader.clone(),
        })
    }
}

impl Node {
    /// Live local processes (`erlang:processes/0`), oldest first.
    pub fn processes(&self) -> Vec<Pid> {
        let mut v: Vec<Pid> = self.inner.processes.all().into_iter().map(|e| e.pid.clone()).collect();
        v.sort_by_key(|p| (p.serial, p.id));
        v
    }

    /// A live local process's figures (`process_info/1,2`); `None` for a dead or remote pid.
    pub fn process_info(&self, pid: &Pid) -> Option<ProcessInfo> {
        self.lookup(pid).and_then(|e| ProcessInfo::read(&e))
    }

    /// Every live local process's figures, in one pass over the table.
    pub fn all_process_info(&self) -> Vec<ProcessInfo> {
        let mut v: Vec<ProcessInfo> = self.inner.processes.all().iter().filter_map(|e| ProcessInfo::read(e)).collect();
        v.sort_by_key(|i| (i.pid.serial, i.pid.id));
        v
    }

    /// A copy of the messages waiting in a local process's mailbox
    /// (`process_info(Pid, messages)`; messages a selective receive holds aside are counted
    /// in [`ProcessInfo::message_queue_len`] but not listed).
    pub fn process_messages(&self, pid: &Pid) -> Option<Vec<Term>> {
        self.lookup(pid).filter(|e| e.state().alive).map(|e| e.queued_messages())
    }

    /// Time since this node was made (`statistics(wall_clock)`).
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Messages received by processes that have exited (the part of the node's total
    /// `reductions` that no live process holds any more).
    pub fn exited_reductions(&self) -> u64 {
        self.inner.exited_reductions.load(Ordering::Relaxed)
    }

    /// Bytes read from and written to distribution connections (`statistics(io)`).
    pub fn dist_io(&self) -> (u64, u64) {
        self.distribution().map(|d| d.io()).unwrap_or((0, 0))
    }
}
