//! The `global` messages as typed values: what arrives at `global_name_server` is parsed here
//! into [`Incoming`] before any state changes, and everything the core sends is built here.
//!
//! Shapes are those of Kernel `global.erl` (OTP 25.2.3, protocol version 8), listed in its
//! header comment "Messages in the protocol" and checked against the traces in
//! `docs/traces/t2.out` and `t12_conflict_*.out`.

use super::GlobalError;
use super::limits::{MAX_KNOWN_NODES, MAX_NAMES, MAX_NAMES_EXT, MAX_OPS};
use crate::term::{Atom, ExportFun, Pid, Reference, Term};

/// `'$gen_cast'`.
pub const GEN_CAST: &str = "$gen_cast";
/// `'$gen_call'`.
pub const GEN_CALL: &str = "$gen_call";

/// One registered name as `exchange` carries it: `{Name, Pid, Method}`.
#[derive(Clone, Debug, PartialEq)]
pub struct NameEntry {
    /// The name (any term).
    pub name: Term,
    /// The registered process.
    pub pid: Pid,
    /// The resolve method, stored and re-sent verbatim.
    pub method: Term,
}

impl NameEntry {
    pub(crate) fn to_term(&self) -> Term {
        Term::Tuple(vec![self.name.clone(), Term::Pid(self.pid.clone()), self.method.clone()])
    }
}

/// A name registered by a C node: `{Name, Pid, RegNode}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtEntry {
    /// The name.
    pub name: Term,
    /// The registered (C node) process.
    pub pid: Pid,
    /// The Erlang node the registration went through.
    pub reg_node: Atom,
}

impl ExtEntry {
    pub(crate) fn to_term(&self) -> Term {
        Term::Tuple(vec![self.name.clone(), Term::Pid(self.pid.clone()), Term::Atom(self.reg_node.clone())])
    }
}

/// A name-table operation: `{insert, {Name, Pid, Method}}` or `{delete, Name}`.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Insert (or replace) a name.
    Insert(NameEntry),
    /// Delete a name.
    Delete(Term),
}

impl Op {
    pub(crate) fn to_term(&self) -> Term {
        match self {
            Op::Insert(e) => Term::Tuple(vec![Term::atom("insert"), e.to_term()]),
            Op::Delete(n) => Term::Tuple(vec![Term::atom("delete"), n.clone()]),
        }
    }
}

/// A call to the name server, `{'$gen_call', {From, Tag}, Request}`.
#[derive(Clone, Debug, PartialEq)]
pub enum CallReq {
    /// `{register, Name, Pid, Method}`.
    Register(NameEntry),
    /// `{register_ext, Name, Pid, Method, RegNode}`.
    RegisterExt(NameEntry, Atom),
    /// `{unregister, Name}`.
    Unregister(Term),
    /// `{set_lock, {ResourceId, LockRequesterId}}`; `None` when the id is not a pair.
    SetLock(Option<(Term, Term)>),
    /// `{del_lock, {ResourceId, LockRequesterId}}`; `None` when the id is not a pair.
    DelLock(Option<(Term, Term)>),
    /// `get_known`.
    GetKnown,
    /// `get_synced`.
    GetSynced,
    /// `get_protocol_version`.
    GetProtocolVersion,
    /// `get_names_ext`.
    GetNamesExt,
    /// Anything else (answered with an error, never left hanging).
    Other(Term),
}

/// A cast, `{'$gen_cast', Request}`.
#[derive(Clone, Debug, PartialEq)]
pub enum Cast {
    /// `{init_connect, {Vsn, Tag}, Node, {locker, _, _HisKnown, HisTheLocker}}`.
    InitConnect {
        /// The version both sides will speak: `min(HisVsn, 8)`.
        vsn: i64,
        /// The version the peer announced.
        his_vsn: i64,
        /// The peer's session tag.
        his_tag: Term,
        /// The peer node.
        node: Atom,
        /// The peer's locker process.
        his_locker: Pid,
    },
    /// `{lock_set, Pid, IsSet, HisKnown, Tag}` (vsn 8) or `{lock_set, Pid, IsSet, HisKnown}`.
    LockSet(LockSet),
    /// `{exchange, Node, Names, NamesExt, Tag}`.
    Exchange {
        /// The sender.
        node: Atom,
        /// Our tag, as the sender echoes it.
        tag: Term,
        /// The sender's names, or why they could not be read.
        names: Result<Vec<NameEntry>, GlobalError>,
    },
    /// `{resolved, Node, HisResolved, HisKnown, _Unused, NamesExt, Tag}`.
    Resolved {
        /// The sender.
        node: Atom,
        /// Our tag, as the sender echoes it.
        tag: Term,
        /// The body, or why it could not be read.
        body: Result<ResolvedBody, GlobalError>,
    },
    /// `{new_nodes, Node, Ops, NamesExt, Nodes, ExtraInfo}`.
    NewNodes {
        /// The sender.
        node: Atom,
        /// Operations the sender applied.
        ops: Vec<Op>,
        /// External names among them.
        names_ext: Vec<ExtEntry>,
        /// The nodes the sender just learnt, with their versions (0 when unknown).
        nodes: Vec<(Atom, i64)>,
        /// `{lock, LockId}` from the extra info, if present.
        lock: Option<Term>,
    },
    /// `{in_sync, Node, IsKnown}`.
    InSync {
        /// The node that is now in sync with us.
        node: Atom,
    },
    /// `{async_del_name, _, _}` / `{async_del_lock, _, _}`: pre-R14 leftovers, ignored.
    Obsolete,
    /// Anything else.
    Other(Term),
}

/// The parts of `resolved` after the sender and tag.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedBody {
    /// Operations the sender resolved for us.
    pub ops: Vec<Op>,
    /// The sender's known nodes with versions.
    pub his_known: Vec<(Atom, i64)>,
    /// The sender's external names.
    pub names_ext: Vec<ExtEntry>,
}

/// `{lock_set, Pid, IsSet, HisKnown[, Tag]}`.
#[derive(Clone, Debug, PartialEq)]
pub struct LockSet {
    /// The sending locker.
    pub pid: Pid,
    /// Whether the sender's partition is locked.
    pub set: bool,
    /// The tag (our tag as the sender knows it); `None` for the 4-tuple of vsn < 8.
    pub tag: Option<Term>,
}

/// A plain message (`handle_info`).
#[derive(Clone, Debug, PartialEq)]
pub enum Info {
    /// `{init_connect_ack, Node, HisMyTag, HisHisTag}`.
    InitConnectAck {
        /// The sender.
        node: Atom,
        /// What the sender believes our tag is.
        my_tag: Term,
        /// The sender's own tag.
        his_tag: Term,
    },
    /// `{cancel_connect, Node, MyTag}`.
    CancelConnect {
        /// The sender.
        node: Atom,
        /// Our tag, as the sender knows it.
        tag: Term,
    },
    /// `{lost_connection, NodeA, XCreationA, OpIdA, NodeB}`.
    LostConnection {
        /// The reporter.
        node_a: Atom,
        /// The reporter's incarnation (an integer).
        xcreation: Term,
        /// The reporter's operation id (an integer).
        op_id: Term,
        /// The node the reporter lost.
        node_b: Atom,
    },
    /// `{remove_connection, Node}`.
    RemoveConnection {
        /// The node that asks us to disconnect from it.
        node: Atom,
    },
    /// `{'DOWN', Ref, process, Object, Reason}`.
    Down {
        /// The monitor reference.
        mref: Reference,
        /// Why.
        reason: Term,
    },
    /// `{{Ref, Node}, Reply}`: an answer to one of our multi-calls.
    Reply {
        /// The tag reference.
        tag: Reference,
        /// The node in the tag.
        node: Atom,
        /// The answer.
        reply: Term,
    },
    /// A `lock_set` sent straight to our locker (our locker is the name server).
    LockerLockSet(LockSet),
    /// `{whereis, Name, From}`.
    Whereis {
        /// The name.
        name: Term,
        /// The caller's pid.
        from_pid: Pid,
        /// The caller's reply tag.
        from_tag: Term,
    },
    /// `{'EXIT', ...}` and other messages BEAM's server ignores silently.
    Ignored,
    /// Anything else.
    Other(Term),
}

/// A message that arrived at `global_name_server`.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A `gen_server` call.
    Call {
        /// The caller.
        from_pid: Pid,
        /// The reply tag, echoed verbatim.
        tag: Term,
        /// The request.
        req: CallReq,
    },
    /// A `gen_server` cast.
    Cast(Cast),
    /// Anything else.
    Info(Info),
}

// ------------------------------------------------------------------ reading helpers

fn bad(what: &'static str) -> GlobalError {
    GlobalError::Malformed { what }
}

fn atom_of(t: &Term, what: &'static str) -> Result<Atom, GlobalError> {
    t.as_atom().cloned().ok_or_else(|| bad(what))
}

fn pid_of(t: &Term, what: &'static str) -> Result<Pid, GlobalError> {
    t.as_pid().cloned().ok_or_else(|| bad(what))
}

fn bool_of(t: &Term, what: &'static str) -> Result<bool, GlobalError> {
    if t.is_atom("true") {
        Ok(true)
    } else if t.is_atom("false") {
        Ok(false)
    } else {
        Err(bad(what))
    }
}

fn is_integer(t: &Term) -> bool {
    matches!(t, Term::Int(_) | Term::BigInt(_))
}

fn list_of<'a>(t: &'a Term, limit: usize, what: &'static str) -> Result<&'a [Term], GlobalError> {
    let l = t.as_list().ok_or_else(|| bad(what))?;
    if l.len() > limit {
        return Err(GlobalError::TooLarge { what, limit });
    }
    Ok(l)
}

pub(crate) fn parse_name_entry(t: &Term) -> Result<NameEntry, GlobalError> {
    match t.as_tuple() {
        Some([name, pid, method]) => {
            Ok(NameEntry { name: name.clone(), pid: pid_of(pid, "name entry pid")?, method: method.clone() })
        }
        _ => Err(bad("name entry {Name, Pid, Method}")),
    }
}

pub(crate) fn parse_names(t: &Term) -> Result<Vec<NameEntry>, GlobalError> {
    list_of(t, MAX_NAMES, "name list")?.iter().map(parse_name_entry).collect()
}

fn parse_ext(t: &Term) -> Result<Vec<ExtEntry>, GlobalError> {
    list_of(t, MAX_NAMES_EXT, "external name list")?
        .iter()
        .map(|e| match e.as_tuple() {
            Some([name, pid, node]) => Ok(ExtEntry {
                name: name.clone(),
                pid: pid_of(pid, "external name pid")?,
                reg_node: atom_of(node, "external name node")?,
            }),
            _ => Err(bad("external name {Name, Pid, RegNode}")),
        })
        .collect()
}

pub(crate) fn parse_ops(t: &Term) -> Result<Vec<Op>, GlobalError> {
    list_of(t, MAX_OPS, "operation list")?
        .iter()
        .map(|op| match op.as_tuple() {
            Some([k, e]) if k.is_atom("insert") => Ok(Op::Insert(parse_name_entry(e)?)),
            Some([k, n]) if k.is_atom("delete") => Ok(Op::Delete(n.clone())),
            _ => Err(bad("operation {insert, _} | {delete, _}")),
        })
        .collect()
}

/// A known-node list: `[Node]` (vsn < 7) or `[{Node, Vsn}]`; a bare node gets version 0.
pub(crate) fn parse_known(t: &Term) -> Result<Vec<(Atom, i64)>, GlobalError> {
    list_of(t, MAX_KNOWN_NODES, "known node list")?
        .iter()
        .map(|e| match e {
            Term::Atom(a) => Ok((a.clone(), 0)),
            Term::Tuple(p) => match p.as_slice() {
                [Term::Atom(a), Term::Int(v)] => Ok((a.clone(), *v)),
                _ => Err(bad("known node {Node, Vsn}")),
            },
            _ => Err(bad("known node")),
        })
        .collect()
}

fn lock_pair(t: &Term) -> Option<(Term, Term)> {
    match t.as_tuple() {
        Some([r, q]) => Some((r.clone(), q.clone())),
        _ => None,
    }
}

// ------------------------------------------------------------------ parsing

/// Classifies and parses a message that arrived at the name server.
pub fn parse(msg: &Term) -> Result<Incoming, GlobalError> {
    let Some(t) = msg.as_tuple() else {
        return Ok(Incoming::Info(Info::Other(msg.clone())));
    };
    match t {
        [k, from, req] if k.is_atom(GEN_CALL) => {
            let Some([from_pid, tag]) = from.as_tuple() else {
                return Err(bad("call From"));
            };
            let from_pid = pid_of(from_pid, "call From pid")?;
            Ok(Incoming::Call { from_pid, tag: tag.clone(), req: parse_call(req)? })
        }
        [k, req] if k.is_atom(GEN_CAST) => Ok(Incoming::Cast(parse_cast(req)?)),
        _ => Ok(Incoming::Info(parse_info(msg, t)?)),
    }
}

fn parse_call(req: &Term) -> Result<CallReq, GlobalError> {
    if req.is_atom("get_known") {
        return Ok(CallReq::GetKnown);
    }
    if req.is_atom("get_synced") {
        return Ok(CallReq::GetSynced);
    }
    if req.is_atom("get_protocol_version") {
        return Ok(CallReq::GetProtocolVersion);
    }
    if req.is_atom("get_names_ext") {
        return Ok(CallReq::GetNamesExt);
    }
    let Some(t) = req.as_tuple() else {
        return Ok(CallReq::Other(req.clone()));
    };
    Ok(match t {
        [k, name, pid, method] if k.is_atom("register") => CallReq::Register(NameEntry {
            name: name.clone(),
            pid: pid_of(pid, "register pid")?,
            method: method.clone(),
        }),
        [k, name, pid, method, node] if k.is_atom("register_ext") => CallReq::RegisterExt(
            NameEntry { name: name.clone(), pid: pid_of(pid, "register_ext pid")?, method: method.clone() },
            atom_of(node, "register_ext node")?,
        ),
        [k, name] if k.is_atom("unregister") => CallReq::Unregister(name.clone()),
        [k, id] if k.is_atom("set_lock") => CallReq::SetLock(lock_pair(id)),
        [k, id] if k.is_atom("del_lock") => CallReq::DelLock(lock_pair(id)),
        _ => CallReq::Other(req.clone()),
    })
}

fn parse_lock_set(t: &[Term]) -> Result<LockSet, GlobalError> {
    match t {
        [_, pid, set, _known, tag] => Ok(LockSet {
            pid: pid_of(pid, "lock_set pid")?,
            set: bool_of(set, "lock_set flag")?,
            tag: Some(tag.clone()),
        }),
        [_, pid, set, _known] => {
            Ok(LockSet { pid: pid_of(pid, "lock_set pid")?, set: bool_of(set, "lock_set flag")?, tag: None })
        }
        _ => Err(bad("lock_set")),
    }
}

fn parse_cast(req: &Term) -> Result<Cast, GlobalError> {
    let Some(t) = req.as_tuple() else {
        return Ok(Cast::Other(req.clone()));
    };
    let Some(Term::Atom(k)) = t.first() else {
        return Ok(Cast::Other(req.clone()));
    };
    Ok(match (k.as_str(), t) {
        ("init_connect", [_, vsn_t, node, locker]) => {
            // {Vsn, Tag}, or a longer tuple from a future version: speak ours then.
            let vsn_t = vsn_t.as_tuple().ok_or_else(|| bad("init_connect version"))?;
            let (his_vsn, his_tag) = match vsn_t {
                [Term::Int(v), tag] => (*v, tag.clone()),
                [Term::Int(v), tag, _, ..] => (*v, tag.clone()),
                _ => return Err(bad("init_connect version")),
            };
            let vsn = if vsn_t.len() > 2 { super::PROTOCOL_VERSION } else { his_vsn.min(super::PROTOCOL_VERSION) };
            let node = atom_of(node, "init_connect node")?;
            let his_locker = match locker.as_tuple() {
                Some([l, _, _, locker]) if l.is_atom("locker") => pid_of(locker, "init_connect locker")?,
                _ => return Err(bad("init_connect {locker, _, _, Locker}")),
            };
            Cast::InitConnect { vsn, his_vsn, his_tag, node, his_locker }
        }
        ("lock_set", [_, _, _, _] | [_, _, _, _, _]) => Cast::LockSet(parse_lock_set(t)?),
        ("exchange", [_, node, names, _ext, tag]) => {
            let node = atom_of(node, "exchange node")?;
            Cast::Exchange { node, tag: tag.clone(), names: parse_names(names) }
        }
        ("resolved", [_, node, ops, known, _unused, ext, tag]) => {
            let node = atom_of(node, "resolved node")?;
            let body = (|| {
                Ok(ResolvedBody { ops: parse_ops(ops)?, his_known: parse_known(known)?, names_ext: parse_ext(ext)? })
            })();
            Cast::Resolved { node, tag: tag.clone(), body }
        }
        ("new_nodes", [_, node, ops, ext, nodes, extra]) => {
            let node = atom_of(node, "new_nodes node")?;
            let lock = extra.as_list().and_then(|l| {
                l.iter().find_map(|e| match e.as_tuple() {
                    Some([k, v]) if k.is_atom("lock") => Some(v.clone()),
                    _ => None,
                })
            });
            Cast::NewNodes { node, ops: parse_ops(ops)?, names_ext: parse_ext(ext)?, nodes: parse_known(nodes)?, lock }
        }
        ("in_sync", [_, node, _]) => Cast::InSync { node: atom_of(node, "in_sync node")? },
        ("async_del_name" | "async_del_lock", [_, _, _]) => Cast::Obsolete,
        _ => Cast::Other(req.clone()),
    })
}

fn parse_info(msg: &Term, t: &[Term]) -> Result<Info, GlobalError> {
    // {{Ref, Node}, Reply}: an answer to our multi_call
    if let [Term::Tuple(tag), reply] = t {
        if let [Term::Ref(r), Term::Atom(n)] = tag.as_slice() {
            return Ok(Info::Reply { tag: r.clone(), node: n.clone(), reply: reply.clone() });
        }
    }
    let Some(Term::Atom(k)) = t.first() else {
        return Ok(Info::Other(msg.clone()));
    };
    Ok(match (k.as_str(), t) {
        ("init_connect_ack", [_, node, my_tag, his_tag]) => Info::InitConnectAck {
            node: atom_of(node, "init_connect_ack node")?,
            my_tag: my_tag.clone(),
            his_tag: his_tag.clone(),
        },
        ("cancel_connect", [_, node, tag]) => {
            Info::CancelConnect { node: atom_of(node, "cancel_connect node")?, tag: tag.clone() }
        }
        ("lost_connection", [_, node_a, xcreation, op_id, node_b]) => {
            if !is_integer(xcreation) || !is_integer(op_id) {
                return Err(bad("lost_connection XCreation/OpId"));
            }
            Info::LostConnection {
                node_a: atom_of(node_a, "lost_connection node")?,
                xcreation: xcreation.clone(),
                op_id: op_id.clone(),
                node_b: atom_of(node_b, "lost_connection node")?,
            }
        }
        ("remove_connection", [_, node]) => Info::RemoveConnection { node: atom_of(node, "remove_connection node")? },
        ("DOWN", [_, mref, kind, _obj, reason]) if kind.is_atom("process") => {
            let mref = mref.as_ref().cloned().ok_or_else(|| bad("DOWN reference"))?;
            Info::Down { mref, reason: reason.clone() }
        }
        ("lock_set", [_, _, _, _] | [_, _, _, _, _]) => Info::LockerLockSet(parse_lock_set(t)?),
        ("whereis", [_, name, from]) => match from.as_tuple() {
            Some([p, tag]) => {
                Info::Whereis { name: name.clone(), from_pid: pid_of(p, "whereis From")?, from_tag: tag.clone() }
            }
            _ => return Err(bad("whereis From")),
        },
        ("EXIT", [_, _, _]) => Info::Ignored,
        _ => Info::Other(msg.clone()),
    })
}

// ------------------------------------------------------------------ building

/// `{'$gen_cast', X}`.
pub fn cast(x: Term) -> Term {
    Term::Tuple(vec![Term::atom(GEN_CAST), x])
}

/// `{'$gen_call', {From, Tag}, Req}`.
pub fn call(from: &Pid, tag: Term, req: Term) -> Term {
    Term::Tuple(vec![Term::atom(GEN_CALL), Term::Tuple(vec![Term::Pid(from.clone()), tag]), req])
}

/// The default resolve method as a Rust node sends it: `fun global:random_exit_name/3`
/// (EXPORT_EXT; BEAM accepts and stores it, protocol notes 7.4).
pub fn random_exit_name() -> Term {
    Term::from(ExportFun { module: Atom::new("global"), function: Atom::new("random_exit_name"), arity: 3 })
}

pub(crate) fn names_term(entries: impl IntoIterator<Item = NameEntry>) -> Term {
    Term::List(entries.into_iter().map(|e| e.to_term()).collect())
}

pub(crate) fn ops_term(ops: &[Op]) -> Term {
    Term::List(ops.iter().map(Op::to_term).collect())
}

pub(crate) fn ext_term(ext: &[ExtEntry]) -> Term {
    Term::List(ext.iter().map(ExtEntry::to_term).collect())
}

pub(crate) fn node_vsn_list(nodes: &[(Atom, i64)]) -> Term {
    Term::List(nodes.iter().map(|(n, v)| Term::Tuple(vec![Term::Atom(n.clone()), Term::Int(*v)])).collect())
}

pub(crate) fn node_list(nodes: &[Atom]) -> Term {
    Term::List(nodes.iter().map(|n| Term::Atom(n.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(node: &str, id: u32) -> Pid {
        Pid { node: Atom::new(node), id, serial: 0, creation: 1 }
    }

    #[test]
    fn parses_a_multi_call_reply_tag() {
        let r = Reference::new(Atom::new("r@h"), 1, &[1, 2, 3]).unwrap();
        let m = Term::Tuple(vec![Term::Tuple(vec![Term::Ref(r.clone()), Term::atom("a@h")]), Term::atom("true")]);
        assert_eq!(
            parse(&m).unwrap(),
            Incoming::Info(Info::Reply { tag: r, node: Atom::new("a@h"), reply: Term::atom("true") })
        );
    }

    #[test]
    fn future_version_speaks_ours() {
        let m = cast(Term::Tuple(vec![
            Term::atom("init_connect"),
            Term::Tuple(vec![Term::Int(9), Term::Int(-5), Term::atom("extra")]),
            Term::atom("a@h"),
            Term::Tuple(vec![
                Term::atom("locker"),
                Term::atom("no_longer_a_pid"),
                Term::nil(),
                Term::Pid(pid("a@h", 56)),
            ]),
        ]));
        match parse(&m).unwrap() {
            Incoming::Cast(Cast::InitConnect { vsn, his_vsn, .. }) => {
                assert_eq!((vsn, his_vsn), (8, 9))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_shapes_are_errors_not_panics() {
        for m in [
            cast(Term::Tuple(vec![Term::atom("init_connect"), Term::Int(8), Term::atom("a@h"), Term::nil()])),
            cast(Term::Tuple(vec![Term::atom("lock_set"), Term::Int(1), Term::atom("true"), Term::nil()])),
            Term::Tuple(vec![Term::atom(GEN_CALL), Term::Int(1), Term::atom("get_known")]),
            Term::Tuple(vec![
                Term::atom("lost_connection"),
                Term::atom("a@h"),
                Term::atom("x"),
                Term::Int(1),
                Term::atom("b@h"),
            ]),
        ] {
            assert!(parse(&m).is_err(), "{m:?}");
        }
        // a bad exchange body keeps node and tag so the session can be cancelled
        let m =
            cast(Term::Tuple(vec![Term::atom("exchange"), Term::atom("a@h"), Term::Int(3), Term::nil(), Term::Int(7)]));
        match parse(&m).unwrap() {
            Incoming::Cast(Cast::Exchange { names: Err(_), tag, .. }) => assert_eq!(tag, Term::Int(7)),
            other => panic!("{other:?}"),
        }
    }
}
