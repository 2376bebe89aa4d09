//! syn's names and wire shapes (sans-IO), protocol version `'3.0'`, as syn 3.4.1 writes them in
//! `src/syn_gen_scope.erl`, `src/syn_registry.erl` and `src/syn_pg.erl`.
//!
//! Per scope `S` every node runs two scope processes, registered locally as
//! `syn_registry_S` and `syn_pg_S`, which talk only to the process of the same name on other
//! nodes (`{ProcessName, Node} ! Msg`). Between scope processes (plain messages):
//!
//! | message | when |
//! |---|---|
//! | `{'3.0', discover, ScopePid}` | at scope start to every node, then on `nodeup` |
//! | `{'3.0', ack_sync, ScopePid, [{Key, Pid, Meta, Time}]}` | the answer to `discover`, and once back to a newly known node: the sender's *local* entries |
//! | `{'3.0', sync_register, Name, Pid, Meta, Time, Reason}` | a registration (or its new meta / time) |
//! | `{'3.0', sync_unregister, Name, Pid, Meta, Reason}` | an unregistration |
//! | `{'3.0', sync_join, Group, Pid, Meta, Time, Reason}` | a join (or its new meta) |
//! | `{'3.0', sync_leave, Group, Pid, Meta, Reason}` | a leave |
//!
//! `Time` is `erlang:system_time()` (native units: nanoseconds on Linux). Writes for a pid
//! go as `gen_server:call` to the scope process on the pid's node:
//!
//! | request | replies |
//! |---|---|
//! | `{'3.0', register_or_update_on_node, ReqNode, Name, Pid, MetaOrFun}` | `{ok, {Callback, PrevMeta, Meta, Time, TableByName, TableByPid}}`, `{noop, Meta}`, `{error, taken \| not_alive \| undefined}`, `{raise, Class, Reason, Stack}` |
//! | `{'3.0', unregister_on_node, ReqNode, Name, Pid}` | `{ok, TableByPid}`, `{error, undefined \| race_condition}` |
//! | `{'3.0', join_or_update_on_node, ReqNode, Group, Pid, MetaOrFun}` | as register, callbacks `on_process_joined` / `on_group_process_updated` |
//! | `{'3.0', leave_on_node, ReqNode, Group, Pid}` | `{ok, {Meta, TableByPid}}`, `{error, not_in_group}` |
//! | `{'3.0', subcluster_nodes}` | `[Node]` |
//! | anything else | `undefined` |
//!
//! The table names in the replies are the caller's own ETS tables (`syn_registry_by_name_S`,
//! `syn_registry_by_pid_S`, `syn_pg_by_name_S`, `syn_pg_by_pid_S`): a BEAM caller inserts the
//! entry there at once. Group members are called by `syn:multi_call/4` with
//! `{syn_multi_call, Message, {CallerPid, Ref}, Meta}` and answer
//! `{syn_multi_call_reply, Ref, Reply}` (`syn:multi_call_reply/2`).

use super::SynError;
use crate::term::{Atom, Pid, Term};

/// The protocol version tag first in every message.
pub const VERSION: &str = "3.0";

/// Which of a scope's two processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `syn_registry`: unique names.
    Registry,
    /// `syn_pg`: process groups.
    Pg,
}

impl Kind {
    /// The handler module's name (`syn_registry`, `syn_pg`).
    pub fn module(self) -> &'static str {
        match self {
            Kind::Registry => "syn_registry",
            Kind::Pg => "syn_pg",
        }
    }

    fn sync_verb(self) -> &'static str {
        match self {
            Kind::Registry => "sync_register",
            Kind::Pg => "sync_join",
        }
    }

    fn unsync_verb(self) -> &'static str {
        match self {
            Kind::Registry => "sync_unregister",
            Kind::Pg => "sync_leave",
        }
    }

    fn write_verb(self) -> &'static str {
        match self {
            Kind::Registry => "register_or_update_on_node",
            Kind::Pg => "join_or_update_on_node",
        }
    }

    fn remove_verb(self) -> &'static str {
        match self {
            Kind::Registry => "unregister_on_node",
            Kind::Pg => "leave_on_node",
        }
    }

    /// The scope process's registered name: `syn_registry_S` / `syn_pg_S`
    /// (`syn_gen_scope:start_link/3`).
    pub fn process_name(self, scope: &Atom) -> Atom {
        Atom::new(&format!("{}_{}", self.module(), scope.as_str()))
    }

    /// The ETS table names a BEAM node uses for this scope (`syn_backbone:get_table_name/2`):
    /// `(syn_registry_by_name_S, syn_registry_by_pid_S)`.
    pub fn table_names(self, scope: &Atom) -> (Atom, Atom) {
        let m = self.module();
        (Atom::new(&format!("{m}_by_name_{}", scope.as_str())), Atom::new(&format!("{m}_by_pid_{}", scope.as_str())))
    }
}

/// The longest scope name: the longest derived atom (`syn_registry_by_name_S`) must still be
/// an atom.
pub fn scope_atom(scope: &str) -> Result<Atom, SynError> {
    let scope = scope.trim().trim_start_matches(':');
    if scope.is_empty() || scope.chars().count() + "syn_registry_by_name_".len() > crate::term::MAX_ATOM_CHARS {
        return Err(SynError::BadScope(scope.to_string()));
    }
    Atom::try_new(scope).map_err(|_| SynError::BadScope(scope.to_string()))
}

/// One entry of an `ack_sync`: `{Key, Pid, Meta, Time}` (a registry name or a group).
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The name (registry) or group (pg).
    pub key: Term,
    /// The process.
    pub pid: Pid,
    /// Its metadata.
    pub meta: Term,
    /// When it was written, `erlang:system_time()` on the pid's node.
    pub time: i64,
}

impl Entry {
    /// `{Key, Pid, Meta, Time}`.
    pub fn to_term(&self) -> Term {
        Term::Tuple(vec![self.key.clone(), Term::Pid(self.pid.clone()), self.meta.clone(), Term::Int(self.time)])
    }

    fn parse(t: &Term) -> Result<Entry, SynError> {
        match t.as_tuple() {
            Some([key, Term::Pid(pid), meta, time]) => {
                Ok(Entry { key: key.clone(), pid: pid.clone(), meta: meta.clone(), time: parse_time(time)? })
            }
            _ => Err(SynError::Malformed("an ack_sync entry is not {Key, Pid, Meta, Time}")),
        }
    }
}

fn parse_time(t: &Term) -> Result<i64, SynError> {
    t.as_int().ok_or(SynError::Malformed("a time is not a small integer"))
}

/// A message between scope processes of one kind.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerMessage {
    /// `{'3.0', discover, ScopePid}`.
    Discover(Pid),
    /// `{'3.0', ack_sync, ScopePid, Entries}`.
    AckSync(Pid, Vec<Entry>),
    /// `sync_register` / `sync_join`, with the reason.
    Sync(Entry, Term),
    /// `sync_unregister` / `sync_leave`: `(Key, Pid, Meta, Reason)`.
    Unsync(Term, Pid, Term, Term),
}

impl PeerMessage {
    /// Parses a message to a `kind` scope process: `Ok(None)` if it does not start with
    /// `'3.0'` (not syn's), `Err` if it does but has the wrong shape.
    pub fn parse(kind: Kind, msg: &Term) -> Result<Option<PeerMessage>, SynError> {
        let Some(t) = msg.as_tuple() else { return Ok(None) };
        let [v, verb, rest @ ..] = t else { return Ok(None) };
        if !v.is_atom(VERSION) {
            return Ok(None);
        }
        let Some(verb) = verb.as_atom() else { return Err(SynError::Malformed("the verb is not an atom")) };
        let verb = verb.as_str();
        match rest {
            [Term::Pid(p)] if verb == "discover" => Ok(Some(PeerMessage::Discover(p.clone()))),
            [Term::Pid(p), Term::List(entries)] if verb == "ack_sync" => {
                let entries = entries.iter().map(Entry::parse).collect::<Result<Vec<_>, _>>()?;
                Ok(Some(PeerMessage::AckSync(p.clone(), entries)))
            }
            [key, Term::Pid(pid), meta, time, reason] if verb == kind.sync_verb() => {
                let e = Entry { key: key.clone(), pid: pid.clone(), meta: meta.clone(), time: parse_time(time)? };
                Ok(Some(PeerMessage::Sync(e, reason.clone())))
            }
            [key, Term::Pid(pid), meta, reason] if verb == kind.unsync_verb() => {
                Ok(Some(PeerMessage::Unsync(key.clone(), pid.clone(), meta.clone(), reason.clone())))
            }
            _ => Err(SynError::Malformed("a '3.0' message of unknown verb or shape")),
        }
    }

    /// The message as a `kind` scope process sends it.
    pub fn to_term(&self, kind: Kind) -> Term {
        let v = Term::atom(VERSION);
        match self {
            PeerMessage::Discover(p) => Term::Tuple(vec![v, Term::atom("discover"), Term::Pid(p.clone())]),
            PeerMessage::AckSync(p, entries) => Term::Tuple(vec![
                v,
                Term::atom("ack_sync"),
                Term::Pid(p.clone()),
                Term::List(entries.iter().map(Entry::to_term).collect()),
            ]),
            PeerMessage::Sync(e, reason) => Term::Tuple(vec![
                v,
                Term::atom(kind.sync_verb()),
                e.key.clone(),
                Term::Pid(e.pid.clone()),
                e.meta.clone(),
                Term::Int(e.time),
                reason.clone(),
            ]),
            PeerMessage::Unsync(key, pid, meta, reason) => Term::Tuple(vec![
                v,
                Term::atom(kind.unsync_verb()),
                key.clone(),
                Term::Pid(pid.clone()),
                meta.clone(),
                reason.clone(),
            ]),
        }
    }
}

/// Metadata as a write request carries it: a term, or (`syn:update_registry/3`,
/// `syn:update_member/4`) a fun that computes it from the current one.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaOrFun {
    /// A plain value.
    Meta(Term),
    /// A fun, which erlnode cannot run.
    Fun(Term),
}

impl MetaOrFun {
    fn parse(t: &Term) -> MetaOrFun {
        match t {
            Term::ExportFun(_) | Term::LocalFun(_) => MetaOrFun::Fun(t.clone()),
            _ => MetaOrFun::Meta(t.clone()),
        }
    }
}

/// A `gen_server:call` to a scope process.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `register_or_update_on_node` / `join_or_update_on_node`.
    Write {
        /// The node that asked (not sent the broadcast: it updates its table from the reply).
        requester: Atom,
        /// Name or group.
        key: Term,
        /// The process (of this node).
        pid: Pid,
        /// The new metadata.
        meta: MetaOrFun,
    },
    /// `unregister_on_node` / `leave_on_node`.
    Remove {
        /// The node that asked.
        requester: Atom,
        /// Name or group.
        key: Term,
        /// The process.
        pid: Pid,
    },
    /// `{'3.0', subcluster_nodes}`.
    SubclusterNodes,
}

impl Request {
    /// Parses a call's request; `None` for anything syn answers with `undefined`.
    pub fn parse(kind: Kind, req: &Term) -> Option<Request> {
        let t = req.as_tuple()?;
        let [v, verb, rest @ ..] = t else { return None };
        if !v.is_atom(VERSION) {
            return None;
        }
        let verb = verb.as_atom()?.as_str();
        match rest {
            [] if verb == "subcluster_nodes" => Some(Request::SubclusterNodes),
            [Term::Atom(requester), key, Term::Pid(pid), meta] if verb == kind.write_verb() => Some(Request::Write {
                requester: requester.clone(),
                key: key.clone(),
                pid: pid.clone(),
                meta: MetaOrFun::parse(meta),
            }),
            [Term::Atom(requester), key, Term::Pid(pid)] if verb == kind.remove_verb() => {
                Some(Request::Remove { requester: requester.clone(), key: key.clone(), pid: pid.clone() })
            }
            _ => None,
        }
    }

    /// The request as syn's client functions send it.
    pub fn to_term(&self, kind: Kind) -> Term {
        let v = Term::atom(VERSION);
        match self {
            Request::SubclusterNodes => Term::Tuple(vec![v, Term::atom("subcluster_nodes")]),
            Request::Write { requester, key, pid, meta } => Term::Tuple(vec![
                v,
                Term::atom(kind.write_verb()),
                Term::Atom(requester.clone()),
                key.clone(),
                Term::Pid(pid.clone()),
                match meta {
                    MetaOrFun::Meta(m) | MetaOrFun::Fun(m) => m.clone(),
                },
            ]),
            Request::Remove { requester, key, pid } => Term::Tuple(vec![
                v,
                Term::atom(kind.remove_verb()),
                Term::Atom(requester.clone()),
                key.clone(),
                Term::Pid(pid.clone()),
            ]),
        }
    }
}

/// `{syn_multi_call, Message, {CallerPid, Ref}, Meta}`: what a group member receives from
/// `syn:multi_call/4`.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiCall {
    /// The message.
    pub message: Term,
    /// `{CallerPid, Ref}`: where [`MultiCall::reply`] goes.
    pub caller: (Pid, Term),
    /// The member's metadata in the group.
    pub meta: Term,
}

impl MultiCall {
    /// Recognises a multi-call message; `None` for anything else.
    pub fn parse(msg: &Term) -> Option<MultiCall> {
        match msg.as_tuple()? {
            [tag, message, Term::Tuple(from), meta] if tag.is_atom("syn_multi_call") => match from.as_slice() {
                [Term::Pid(pid), r] => {
                    Some(MultiCall { message: message.clone(), caller: (pid.clone(), r.clone()), meta: meta.clone() })
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The message as syn builds it.
    pub fn to_term(&self) -> Term {
        Term::Tuple(vec![
            Term::atom("syn_multi_call"),
            self.message.clone(),
            Term::Tuple(vec![Term::Pid(self.caller.0.clone()), self.caller.1.clone()]),
            self.meta.clone(),
        ])
    }

    /// The answer `syn:multi_call_reply/2` sends: `(to, {syn_multi_call_reply, Ref, Reply})`.
    pub fn reply(&self, reply: Term) -> (Pid, Term) {
        (self.caller.0.clone(), Term::Tuple(vec![Term::atom("syn_multi_call_reply"), self.caller.1.clone(), reply]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{decode, encode};

    fn pid(node: &str, id: u32) -> Pid {
        Pid { node: Atom::new(node), id, serial: 0, creation: 3 }
    }

    #[test]
    fn names_are_syns() {
        let s = Atom::new("users");
        assert_eq!(Kind::Registry.process_name(&s).as_str(), "syn_registry_users");
        assert_eq!(Kind::Pg.process_name(&s).as_str(), "syn_pg_users");
        let (n, p) = Kind::Registry.table_names(&s);
        assert_eq!((n.as_str(), p.as_str()), ("syn_registry_by_name_users", "syn_registry_by_pid_users"));
        let (n, p) = Kind::Pg.table_names(&s);
        assert_eq!((n.as_str(), p.as_str()), ("syn_pg_by_name_users", "syn_pg_by_pid_users"));
        assert!(scope_atom("").is_err());
        assert!(scope_atom(&"x".repeat(250)).is_err());
        assert_eq!(scope_atom(":users").unwrap().as_str(), "users");
    }

    #[test]
    fn peer_messages_round_trip_and_hostile_shapes_are_errors() {
        let e = Entry {
            key: Term::binary("n"),
            pid: pid("a@h", 90),
            meta: Term::atom("m"),
            time: 1_733_390_000_000_000_000,
        };
        for (kind, m) in [
            (Kind::Registry, PeerMessage::Discover(pid("a@h", 80))),
            (Kind::Pg, PeerMessage::AckSync(pid("a@h", 80), vec![e.clone(), e.clone()])),
            (Kind::Registry, PeerMessage::Sync(e.clone(), Term::atom("normal"))),
            (Kind::Pg, PeerMessage::Sync(e.clone(), Term::atom("normal"))),
            (Kind::Pg, PeerMessage::Unsync(Term::atom("g"), pid("a@h", 9), Term::nil(), Term::atom("killed"))),
        ] {
            assert_eq!(PeerMessage::parse(kind, &m.to_term(kind)).unwrap(), Some(m));
        }
        // a registry process does not take pg's verbs
        let join = PeerMessage::Sync(e.clone(), Term::atom("normal")).to_term(Kind::Pg);
        assert!(PeerMessage::parse(Kind::Registry, &join).is_err());
        for bad in [
            Term::Tuple(vec![Term::atom("3.0"), Term::Int(1)]),
            Term::Tuple(vec![Term::atom("3.0"), Term::atom("discover"), Term::atom("x")]),
            Term::Tuple(vec![
                Term::atom("3.0"),
                Term::atom("ack_sync"),
                Term::Pid(pid("a@h", 1)),
                Term::List(vec![Term::Int(1)]),
            ]),
            Term::Tuple(vec![
                Term::atom("3.0"),
                Term::atom("sync_register"),
                Term::atom("n"),
                Term::Pid(pid("a@h", 1)),
                Term::nil(),
                Term::Float(1.0),
                Term::atom("normal"),
            ]),
        ] {
            assert!(PeerMessage::parse(Kind::Registry, &bad).is_err(), "{bad}");
        }
        assert_eq!(PeerMessage::parse(Kind::Registry, &Term::atom("hello")), Ok(None));
        assert_eq!(
            PeerMessage::parse(Kind::Registry, &Term::Tuple(vec![Term::atom("2.0"), Term::atom("x")])),
            Ok(None)
        );
    }

    // What syn 3.4.1 on OTP 27 sent to the scope processes of another node (`beam_b@vm`),
    // captured by `erlang_interop/syn_vectors.erl` (trace of `receive` on `syn_registry_users`
    // and `syn_pg_users`, then `term_to_binary/1`).
    const DISCOVER: &[u8] = &[
        131, 104, 3, 119, 3, 51, 46, 48, 119, 8, 100, 105, 115, 99, 111, 118, 101, 114, 88, 119, 9, 98, 101, 97, 109,
        95, 97, 64, 118, 109, 0, 0, 0, 99, 0, 0, 0, 0, 107, 19, 222, 214,
    ];
    const ACK_SYNC: &[u8] = &[
        131, 104, 4, 119, 3, 51, 46, 48, 119, 8, 97, 99, 107, 95, 115, 121, 110, 99, 88, 119, 9, 98, 101, 97, 109, 95,
        97, 64, 118, 109, 0, 0, 0, 99, 0, 0, 0, 0, 107, 19, 222, 214, 108, 0, 0, 0, 1, 104, 4, 109, 0, 0, 0, 5, 97,
        108, 105, 99, 101, 88, 119, 9, 98, 101, 97, 109, 95, 97, 64, 118, 109, 0, 0, 0, 103, 0, 0, 0, 0, 107, 19, 222,
        214, 119, 4, 109, 101, 116, 97, 110, 8, 0, 51, 1, 232, 167, 209, 82, 238, 24, 106,
    ];
    const SYNC_REGISTER: &[u8] = &[
        131, 104, 7, 119, 3, 51, 46, 48, 119, 13, 115, 121, 110, 99, 95, 114, 101, 103, 105, 115, 116, 101, 114, 109,
        0, 0, 0, 5, 97, 108, 105, 99, 101, 88, 119, 9, 98, 101, 97, 109, 95, 97, 64, 118, 109, 0, 0, 0, 103, 0, 0, 0,
        0, 107, 19, 222, 212, 119, 4, 109, 101, 116, 97, 110, 8, 0, 232, 197, 178, 172, 205, 82, 238, 24, 119, 6, 110,
        111, 114, 109, 97, 108,
    ];
    const SYNC_UNREGISTER: &[u8] = &[
        131, 104, 6, 119, 3, 51, 46, 48, 119, 15, 115, 121, 110, 99, 95, 117, 110, 114, 101, 103, 105, 115, 116, 101,
        114, 109, 0, 0, 0, 5, 97, 108, 105, 99, 101, 88, 119, 9, 98, 101, 97, 109, 95, 97, 64, 118, 109, 0, 0, 0, 103,
        0, 0, 0, 0, 107, 19, 222, 212, 119, 4, 109, 101, 116, 97, 119, 6, 110, 111, 114, 109, 97, 108,
    ];
    const SYNC_JOIN: &[u8] = &[
        131, 104, 7, 119, 3, 51, 46, 48, 119, 9, 115, 121, 110, 99, 95, 106, 111, 105, 110, 109, 0, 0, 0, 4, 114, 111,
        111, 109, 88, 119, 9, 98, 101, 97, 109, 95, 97, 64, 118, 109, 0, 0, 0, 103, 0, 0, 0, 0, 107, 19, 222, 212, 119,
        5, 103, 109, 101, 116, 97, 110, 8, 0, 133, 149, 179, 172, 205, 82, 238, 24, 119, 6, 110, 111, 114, 109, 97,
        108,
    ];
    const SYNC_LEAVE: &[u8] = &[
        131, 104, 6, 119, 3, 51, 46, 48, 119, 10, 115, 121, 110, 99, 95, 108, 101, 97, 118, 101, 109, 0, 0, 0, 4, 114,
        111, 111, 109, 88, 119, 9, 98, 101, 97, 109, 95, 97, 64, 118, 109, 0, 0, 0, 103, 0, 0, 0, 0, 107, 19, 222, 212,
        119, 5, 103, 109, 101, 116, 97, 119, 6, 110, 111, 114, 109, 97, 108,
    ];
    /// `syn:register(users, <<"bob">>, BPid, bm)` on `beam_a@vm` for a pid of `beam_b@vm`.
    const REGISTER_CALL: &[u8] = &[
        131, 104, 3, 119, 9, 36, 103, 101, 110, 95, 99, 97, 108, 108, 104, 2, 88, 119, 9, 98, 101, 97, 109, 95, 97, 64,
        118, 109, 0, 0, 0, 10, 0, 0, 0, 0, 107, 19, 222, 214, 108, 0, 0, 0, 1, 119, 5, 97, 108, 105, 97, 115, 90, 0, 5,
        119, 9, 98, 101, 97, 109, 95, 97, 64, 118, 109, 107, 19, 222, 214, 0, 2, 173, 95, 229, 133, 0, 2, 173, 86, 183,
        57, 0, 0, 5, 3, 0, 0, 0, 0, 104, 6, 119, 3, 51, 46, 48, 119, 26, 114, 101, 103, 105, 115, 116, 101, 114, 95,
        111, 114, 95, 117, 112, 100, 97, 116, 101, 95, 111, 110, 95, 110, 111, 100, 101, 119, 9, 98, 101, 97, 109, 95,
        97, 64, 118, 109, 109, 0, 0, 0, 3, 98, 111, 98, 88, 119, 9, 98, 101, 97, 109, 95, 98, 64, 118, 109, 0, 0, 0,
        111, 0, 0, 0, 0, 107, 19, 222, 209, 119, 2, 98, 109,
    ];

    #[test]
    fn replays_what_a_beam_node_sent() {
        let parse = |kind, bytes: &[u8]| {
            let t = decode(bytes).unwrap();
            let m = PeerMessage::parse(kind, &t).unwrap().unwrap_or_else(|| panic!("not syn's: {t}"));
            assert_eq!(encode(&m.to_term(kind)), bytes, "re-encodes byte for byte");
            m
        };
        let PeerMessage::Discover(scope) = parse(Kind::Registry, DISCOVER) else { panic!() };
        assert_eq!(scope.node.as_str(), "beam_a@vm");
        let PeerMessage::AckSync(_, entries) = parse(Kind::Registry, ACK_SYNC) else { panic!() };
        assert_eq!(entries.len(), 1);
        assert_eq!((&entries[0].key, &entries[0].meta), (&Term::binary("alice"), &Term::atom("meta")));
        assert!(entries[0].time > 1_700_000_000_000_000_000, "nanoseconds: {}", entries[0].time);
        let PeerMessage::Sync(e, reason) = parse(Kind::Registry, SYNC_REGISTER) else { panic!() };
        assert_eq!((e.key, e.meta, reason), (Term::binary("alice"), Term::atom("meta"), Term::atom("normal")));
        let PeerMessage::Unsync(name, _, _, _) = parse(Kind::Registry, SYNC_UNREGISTER) else { panic!() };
        assert_eq!(name, Term::binary("alice"));
        let PeerMessage::Sync(e, _) = parse(Kind::Pg, SYNC_JOIN) else { panic!() };
        assert_eq!((e.key, e.meta), (Term::binary("room"), Term::atom("gmeta")));
        assert!(matches!(parse(Kind::Pg, SYNC_LEAVE), PeerMessage::Unsync(..)));
        // the call: {'$gen_call', {From, [alias | Ref]}, Request}
        let call = decode(REGISTER_CALL).unwrap();
        let req = &call.as_tuple().unwrap()[2];
        let Some(Request::Write { requester, key, pid, meta }) = Request::parse(Kind::Registry, req) else {
            panic!("{req}")
        };
        assert_eq!((requester.as_str(), pid.node.as_str()), ("beam_a@vm", "beam_b@vm"));
        assert_eq!((key, meta), (Term::binary("bob"), MetaOrFun::Meta(Term::atom("bm"))));
        assert_eq!(&Request::parse(Kind::Registry, req).unwrap().to_term(Kind::Registry), req);
    }

    #[test]
    fn requests_and_multi_calls() {
        let w = Request::Write {
            requester: Atom::new("b@h"),
            key: Term::atom("g"),
            pid: pid("a@h", 5),
            meta: MetaOrFun::Meta(Term::Int(1)),
        };
        assert_eq!(Request::parse(Kind::Pg, &w.to_term(Kind::Pg)), Some(w.clone()));
        assert_eq!(Request::parse(Kind::Registry, &w.to_term(Kind::Pg)), None, "pg's verb to the registry");
        let r = Request::Remove { requester: Atom::new("b@h"), key: Term::atom("g"), pid: pid("a@h", 5) };
        assert_eq!(Request::parse(Kind::Registry, &r.to_term(Kind::Registry)), Some(r));
        assert_eq!(
            Request::parse(Kind::Pg, &Request::SubclusterNodes.to_term(Kind::Pg)),
            Some(Request::SubclusterNodes)
        );
        assert_eq!(Request::parse(Kind::Pg, &Term::atom("x")), None);
        let mc = MultiCall { message: Term::atom("ping"), caller: (pid("a@h", 7), Term::Int(1)), meta: Term::nil() };
        assert_eq!(MultiCall::parse(&mc.to_term()), Some(mc.clone()));
        let (to, msg) = mc.reply(Term::atom("pong"));
        assert_eq!(to, pid("a@h", 7));
        assert_eq!(msg.as_tuple().unwrap()[0], Term::atom("syn_multi_call_reply"));
    }
}
