//! Process groups interoperable with BEAM: Kernel `pg` (OTP 23+), the module
//! `lib/kernel/src/pg.erl` and its "Exchange protocol" comment; protocol notes section 8.
//!
//! A *scope* is a process registered locally under the scope name (`pg` for the default scope
//! a BEAM node runs with `-kernel start_pg true`; any other atom, such as the scopes
//! `Phoenix.PubSub` starts). It talks only to the scope of the same name on other visible
//! nodes. Processes join *groups* (any term); every node's scope learns every other node's
//! members, so [`get_members`] lists members cluster-wide.
//!
//! ```no_run
//! # async fn demo(node: erlnode::Node, worker: erlnode::term::Pid) -> Result<(), erlnode::services::pg::PgError> {
//! use erlnode::services::pg;
//! use erlnode::term::{Atom, Term};
//!
//! let scope = Atom::new(pg::DEFAULT_SCOPE);
//! pg::start_scope(&node, scope.clone())?;
//! pg::join(&node, &scope, Term::atom("workers"), vec![worker]).await?;
//! let everyone = pg::get_members(&node, &scope, &Term::atom("workers")).await;
//! # Ok(()) }
//! ```
//!
//! Layers: [`message`] parses and builds the wire shapes; [`core`] is the scope's state
//! machine (no I/O, unit-tested in memory); the driver is the process that feeds it messages,
//! `nodeup` events and `DOWN`s and carries out what it asks. The functions here are the API a
//! process uses, as `gen_server` calls to the local scope.

pub mod core;
mod driver;
pub mod message;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::gen_server::{self, CallError};
use crate::node::{Dest, Node, Process};
use crate::term::{Atom, Map, Pid, Reference, Term};

/// The scope `pg:start_link/0` starts (and the kernel application, with `start_pg`).
pub const DEFAULT_SCOPE: &str = "pg";

/// What went wrong, by whose fault.
#[derive(Clone, Debug, PartialEq)]
pub enum PgError {
    /// Peer misbehaved: a message from another scope had the wrong shape (what was wrong).
    Malformed(&'static str),
    /// Peer misbehaved: a "peer scope" pid on this very node.
    LocalPeer(Pid),
    /// Peer misbehaved: it announced a member that does not live on its node.
    ForeignMember {
        /// The peer scope.
        peer: Pid,
        /// The member it claimed.
        member: Pid,
    },
    /// Peer misbehaved: `leave` for a group it never announced (a BEAM scope would crash).
    UnknownGroup {
        /// The peer scope.
        peer: Pid,
        /// The group.
        group: Term,
    },
    /// Peer misbehaved: it went past a named limit (the constant's name).
    LimitExceeded(&'static str),
    /// Not an error of anyone: a scope on a hidden node; hidden nodes are not peers.
    HiddenPeer(Pid),
    /// Not an error of anyone: `join`/`leave` from a scope we do not (or no longer) know, as
    /// happens when a node flickers down and up; `pg` ignores these too.
    UnknownPeer(Pid),
    /// Local misuse: only processes of this node may join or leave (`{nolocal, Pid}`).
    NotLocal(Pid),
    /// Local misuse: the scope name is registered already.
    NameTaken(Atom),
    /// The scope could not be called (not running, or it exited during the call).
    Call(CallError),
    /// The scope answered something this API does not expect.
    BadReply(Term),
}

/// Whose fault a [`PgError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Another node sent something no correct scope sends.
    PeerMisbehaved,
    /// Nobody's: races of a live cluster, hidden nodes. Ignored quietly.
    Benign,
    /// The caller of this API.
    LocalMisuse,
    /// The local runtime: the scope is not running or did not answer as expected.
    Runtime,
}

impl PgError {
    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            PgError::Malformed(_)
            | PgError::LocalPeer(_)
            | PgError::ForeignMember { .. }
            | PgError::UnknownGroup { .. }
            | PgError::LimitExceeded(_) => Fault::PeerMisbehaved,
            PgError::HiddenPeer(_) | PgError::UnknownPeer(_) => Fault::Benign,
            PgError::NotLocal(_) | PgError::NameTaken(_) => Fault::LocalMisuse,
            PgError::Call(_) | PgError::BadReply(_) => Fault::Runtime,
        }
    }

    /// `true` for what a running cluster produces in normal operation (races, hidden nodes):
    /// worth a debug line, not a warning.
    pub fn is_benign(&self) -> bool {
        self.fault() == Fault::Benign
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Malformed(what) => write!(f, "malformed pg message: {what}"),
            PgError::LocalPeer(p) => write!(f, "peer scope {} claims to be on this node", Term::Pid(p.clone())),
            PgError::ForeignMember { peer, member } => write!(
                f,
                "peer scope {} announced {} of another node",
                Term::Pid(peer.clone()),
                Term::Pid(member.clone())
            ),
            PgError::UnknownGroup { peer, group } => {
                write!(f, "peer scope {} left group {group} it never joined", Term::Pid(peer.clone()))
            }
            PgError::LimitExceeded(limit) => write!(f, "peer went past {limit}"),
            PgError::HiddenPeer(p) => write!(f, "scope {} is on a hidden node", Term::Pid(p.clone())),
            PgError::UnknownPeer(p) => write!(f, "message from unknown peer scope {}", Term::Pid(p.clone())),
            PgError::NotLocal(p) => write!(f, "{{nolocal,{}}}", Term::Pid(p.clone())),
            PgError::NameTaken(n) => write!(f, "name {} is already registered", n.as_str()),
            PgError::Call(e) => write!(f, "{e}"),
            PgError::BadReply(t) => write!(f, "unexpected reply from the scope: {t}"),
        }
    }
}

impl std::error::Error for PgError {}

impl From<CallError> for PgError {
    fn from(e: CallError) -> PgError {
        PgError::Call(e)
    }
}

/// Starts the scope `scope` on `node` (`pg:start/1`): a process registered as `scope` that
/// discovers the same scope on every visible node, now and on each `nodeup`. Must run inside
/// the node's tokio runtime.
pub fn start_scope(node: &Node, scope: Atom) -> Result<Pid, PgError> {
    driver::spawn(node, scope)
}

async fn call(node: &Node, scope: &Atom, request: Term) -> Result<Term, PgError> {
    Ok(node.call(Dest::Name(scope.clone()), request, None).await?)
}

fn pids_term(pids: Vec<Pid>) -> Term {
    Term::List(pids.into_iter().map(Term::Pid).collect())
}

fn check_local(node: &Node, pids: &[Pid]) -> Result<(), PgError> {
    match pids.iter().find(|p| p.node != *node.name()) {
        Some(p) => Err(PgError::NotLocal(p.clone())),
        None => Ok(()),
    }
}

/// `pg:join/3`: local processes `pids` join `group` in `scope`. A process may join a group
/// more than once (and must leave as often). Remote pids are refused ([`PgError::NotLocal`]).
pub async fn join(node: &Node, scope: &Atom, group: Term, pids: Vec<Pid>) -> Result<(), PgError> {
    check_local(node, &pids)?;
    let reply = call(node, scope, Term::Tuple(vec![Term::atom("join_local"), group, pids_term(pids)])).await?;
    if reply.is_atom("ok") { Ok(()) } else { Err(PgError::BadReply(reply)) }
}

/// `pg:leave/3`: each of `pids` leaves `group` once. `Ok(false)` is `not_joined`: none of them
/// was a member.
pub async fn leave(node: &Node, scope: &Atom, group: Term, pids: Vec<Pid>) -> Result<bool, PgError> {
    check_local(node, &pids)?;
    let reply = call(node, scope, Term::Tuple(vec![Term::atom("leave_local"), group, pids_term(pids)])).await?;
    match &reply {
        r if r.is_atom("ok") => Ok(true),
        r if r.is_atom("not_joined") => Ok(false),
        _ => Err(PgError::BadReply(reply)),
    }
}

fn pid_list(reply: Term) -> Vec<Pid> {
    reply.as_list().map(|l| l.iter().filter_map(|p| p.as_pid().cloned()).collect()).unwrap_or_default()
}

fn term_list(reply: Term) -> Vec<Term> {
    match reply {
        Term::List(l) => l,
        _ => Vec::new(),
    }
}

/// `pg:get_members/2`: the members of `group` on every node, newest first; empty if the scope
/// is not running (as `pg` answers without its table).
pub async fn get_members(node: &Node, scope: &Atom, group: &Term) -> Vec<Pid> {
    let req = Term::Tuple(vec![Term::atom("get_members"), group.clone()]);
    call(node, scope, req).await.map(pid_list).unwrap_or_default()
}

/// `pg:get_local_members/2`: the members of `group` on this node.
pub async fn get_local_members(node: &Node, scope: &Atom, group: &Term) -> Vec<Pid> {
    let req = Term::Tuple(vec![Term::atom("get_local_members"), group.clone()]);
    call(node, scope, req).await.map(pid_list).unwrap_or_default()
}

/// `pg:which_groups/1`: every group with a member on some node, in term order.
pub async fn which_groups(node: &Node, scope: &Atom) -> Vec<Term> {
    call(node, scope, Term::atom("which_groups")).await.map(term_list).unwrap_or_default()
}

/// `pg:which_local_groups/1`: the groups with a member on this node.
pub async fn which_local_groups(node: &Node, scope: &Atom) -> Vec<Term> {
    call(node, scope, Term::atom("which_local_groups")).await.map(term_list).unwrap_or_default()
}

/// `pg:monitor_scope/1`, called by process `p`: it will receive `{Ref, join, Group, [Pid]}`
/// and `{Ref, leave, Group, [Pid]}` for every change in the scope. Returns the reference and
/// the groups with their members now.
pub async fn monitor_scope(p: &mut Process, scope: &Atom) -> Result<(Reference, Vec<(Term, Vec<Pid>)>), PgError> {
    let reply = gen_server::call(p, Dest::Name(scope.clone()), Term::atom("monitor"), None).await?;
    match reply.as_tuple() {
        Some([Term::Ref(r), Term::Map(m)]) => {
            let groups = m.entries().iter().map(|(g, pids)| (g.clone(), pid_list(pids.clone()))).collect();
            Ok((r.clone(), groups))
        }
        _ => Err(PgError::BadReply(reply)),
    }
}

/// `pg:monitor/2`, called by process `p`: like [`monitor_scope`] for one group.
pub async fn monitor(p: &mut Process, scope: &Atom, group: Term) -> Result<(Reference, Vec<Pid>), PgError> {
    let req = Term::Tuple(vec![Term::atom("monitor"), group]);
    let reply = gen_server::call(p, Dest::Name(scope.clone()), req, None).await?;
    match reply.as_tuple() {
        Some([Term::Ref(r), pids]) => Ok((r.clone(), pid_list(pids.clone()))),
        _ => Err(PgError::BadReply(reply)),
    }
}

/// `pg:demonitor/2`: ends a subscription of `p` and drops its queued notifications; `false`
/// if the reference was not a subscription.
pub async fn demonitor(p: &mut Process, scope: &Atom, reference: &Reference) -> Result<bool, PgError> {
    let req = Term::Tuple(vec![Term::atom("demonitor"), Term::Ref(reference.clone())]);
    let reply = gen_server::call(p, Dest::Name(scope.clone()), req, None).await?;
    if !reply.is_atom("ok") {
        return Ok(false);
    }
    // flush {Ref, join | leave, _, _} already queued
    let is_ours = |m: &Term| match m.as_tuple() {
        Some([Term::Ref(r), verb, _, _]) => r == reference && (verb.is_atom("join") || verb.is_atom("leave")),
        _ => false,
    };
    while p.receive_match(Some(std::time::Duration::ZERO), |m| is_ours(m).then_some(())).await.is_some() {}
    Ok(true)
}

/// `#{Group => Pids}`, as `monitor_scope` replies.
fn groups_map(groups: Vec<(Term, Vec<Pid>)>) -> Term {
    Term::Map(Map::from_entries(groups.into_iter().map(|(g, pids)| (g, pids_term(pids)))))
}
