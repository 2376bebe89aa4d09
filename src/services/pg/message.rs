//! The messages `pg` scopes exchange (the "Exchange protocol" comment of Kernel `pg.erl`,
//! protocol notes section 8), parsed from and built into terms. Pure: no I/O, no state.
//!
//! | message | sent as |
//! |---|---|
//! | `{discover, PeerScopePid}` (and, since OTP 26, `{discover, Peer, _}`) | plain message |
//! | `{'$gen_cast', {sync, PeerScopePid, [{Group, [Pid]}]}}` | `gen_server:cast/2` |
//! | `{join, PeerScopePid, Group, PidOrPids}` | plain message |
//! | `{leave, PeerScopePid, PidOrPids, [Group]}` | plain message |
//!
//! A BEAM scope crashes (`erlang:error(badarg)`) on any other message, so the builders here are
//! the only way the scope composes what it sends.

use crate::term::{Pid, Term};

use super::PgError;

/// `discover`.
pub const DISCOVER: &str = "discover";
/// `sync`, inside a `'$gen_cast'`.
pub const SYNC: &str = "sync";
/// `join`.
pub const JOIN: &str = "join";
/// `leave`.
pub const LEAVE: &str = "leave";
/// The tag `gen_server:cast/2` wraps a request in.
pub const GEN_CAST: &str = "$gen_cast";

/// A message from another scope process, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerMessage {
    /// `{discover, Peer}` or `{discover, Peer, Features}`: "I exist; tell me your members".
    Discover {
        /// The discovering scope process.
        peer: Pid,
    },
    /// `{'$gen_cast', {sync, Peer, [{Group, [Pid]}]}}`: the peer's complete local membership,
    /// replacing whatever we held for it.
    Sync {
        /// The sending scope process.
        peer: Pid,
        /// Its groups and their local members, as sent (a group may repeat).
        groups: Vec<(Term, Vec<Pid>)>,
    },
    /// `{join, Peer, Group, PidOrPids}`: processes of the peer's node joined `group`.
    Join {
        /// The sending scope process.
        peer: Pid,
        /// The group.
        group: Term,
        /// Who joined (a single pid is a one-element list here).
        pids: Vec<Pid>,
    },
    /// `{leave, Peer, PidOrPids, Groups}`: processes of the peer's node left `groups` (or died).
    Leave {
        /// The sending scope process.
        peer: Pid,
        /// Who left.
        pids: Vec<Pid>,
        /// The groups they left.
        groups: Vec<Term>,
    },
}

impl PeerMessage {
    /// The scope process that sent it (as it claims).
    pub fn peer(&self) -> &Pid {
        match self {
            PeerMessage::Discover { peer }
            | PeerMessage::Sync { peer, .. }
            | PeerMessage::Join { peer, .. }
            | PeerMessage::Leave { peer, .. } => peer,
        }
    }

    /// Parses a message a scope received (a plain message or a `'$gen_cast'`). `Ok(None)`: not
    /// a scope-to-scope message at all (the caller decides what else it may be).
    pub fn parse(msg: &Term) -> Result<Option<PeerMessage>, PgError> {
        let Some(elems) = msg.as_tuple() else { return Ok(None) };
        let Some((tag, rest)) = elems.split_first() else { return Ok(None) };
        let Some(tag) = tag.as_atom() else { return Ok(None) };
        match tag.as_str() {
            DISCOVER => match rest {
                [Term::Pid(peer)] | [Term::Pid(peer), _] => Ok(Some(PeerMessage::Discover { peer: peer.clone() })),
                _ => Err(PgError::Malformed("discover")),
            },
            JOIN => match rest {
                [Term::Pid(peer), group, pids] => Ok(Some(PeerMessage::Join {
                    peer: peer.clone(),
                    group: group.clone(),
                    pids: pid_or_pids(pids).ok_or(PgError::Malformed("join: PidOrPids"))?,
                })),
                _ => Err(PgError::Malformed("join")),
            },
            LEAVE => match rest {
                [Term::Pid(peer), pids, Term::List(groups)] => Ok(Some(PeerMessage::Leave {
                    peer: peer.clone(),
                    pids: pid_or_pids(pids).ok_or(PgError::Malformed("leave: PidOrPids"))?,
                    groups: groups.clone(),
                })),
                _ => Err(PgError::Malformed("leave")),
            },
            GEN_CAST => match rest {
                [req] => parse_sync(req).map(Some),
                _ => Err(PgError::Malformed("$gen_cast")),
            },
            _ => Ok(None),
        }
    }
}

fn parse_sync(req: &Term) -> Result<PeerMessage, PgError> {
    let [tag, Term::Pid(peer), Term::List(entries)] = req.as_tuple().unwrap_or(&[]) else {
        return Err(PgError::Malformed("cast: not {sync, Peer, Groups}"));
    };
    if !tag.is_atom(SYNC) {
        return Err(PgError::Malformed("cast: not {sync, Peer, Groups}"));
    }
    let mut groups = Vec::with_capacity(entries.len());
    for entry in entries {
        let [group, Term::List(pids)] = entry.as_tuple().unwrap_or(&[]) else {
            return Err(PgError::Malformed("sync: entry is not {Group, [Pid]}"));
        };
        let pids = pids.iter().map(|p| p.as_pid().cloned()).collect::<Option<Vec<Pid>>>();
        groups.push((group.clone(), pids.ok_or(PgError::Malformed("sync: member is not a pid"))?));
    }
    Ok(PeerMessage::Sync { peer: peer.clone(), groups })
}

/// `PidOrPids`: a pid, or a proper list of pids.
fn pid_or_pids(t: &Term) -> Option<Vec<Pid>> {
    match t {
        Term::Pid(p) => Some(vec![p.clone()]),
        Term::List(l) => l.iter().map(|p| p.as_pid().cloned()).collect(),
        _ => None,
    }
}

/// `PidOrPids` as `pg` sends it: a bare pid for one, a list otherwise.
fn pid_or_pids_term(pids: &[Pid]) -> Term {
    match pids {
        [one] => Term::Pid(one.clone()),
        many => Term::List(many.iter().cloned().map(Term::Pid).collect()),
    }
}

/// `{discover, Me}`.
pub fn discover(me: &Pid) -> Term {
    Term::Tuple(vec![Term::atom(DISCOVER), Term::Pid(me.clone())])
}

/// `{'$gen_cast', {sync, Me, [{Group, [Pid]}]}}`.
pub fn sync(me: &Pid, groups: Vec<(Term, Vec<Pid>)>) -> Term {
    let entries = groups
        .into_iter()
        .map(|(g, pids)| Term::Tuple(vec![g, Term::List(pids.into_iter().map(Term::Pid).collect())]))
        .collect();
    let req = Term::Tuple(vec![Term::atom(SYNC), Term::Pid(me.clone()), Term::List(entries)]);
    Term::Tuple(vec![Term::atom(GEN_CAST), req])
}

/// `{join, Me, Group, PidOrPids}`.
pub fn join(me: &Pid, group: &Term, pids: &[Pid]) -> Term {
    Term::Tuple(vec![Term::atom(JOIN), Term::Pid(me.clone()), group.clone(), pid_or_pids_term(pids)])
}

/// `{leave, Me, PidOrPids, Groups}`.
pub fn leave(me: &Pid, pids: &[Pid], groups: &[Term]) -> Term {
    Term::Tuple(vec![Term::atom(LEAVE), Term::Pid(me.clone()), pid_or_pids_term(pids), Term::List(groups.to_vec())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::Atom;

    fn pid(node: &str, id: u32) -> Pid {
        Pid { node: Atom::new(node), id, serial: 0, creation: 1 }
    }

    #[test]
    fn built_messages_parse_back() {
        let me = pid("a@h", 1);
        let (p1, p2) = (pid("a@h", 2), pid("a@h", 3));
        let g = Term::atom("g");
        let cases = [
            (discover(&me), PeerMessage::Discover { peer: me.clone() }),
            (
                join(&me, &g, std::slice::from_ref(&p1)),
                PeerMessage::Join { peer: me.clone(), group: g.clone(), pids: vec![p1.clone()] },
            ),
            (
                join(&me, &g, &[p1.clone(), p2.clone()]),
                PeerMessage::Join { peer: me.clone(), group: g.clone(), pids: vec![p1.clone(), p2.clone()] },
            ),
            (
                leave(&me, std::slice::from_ref(&p2), &[g.clone(), Term::Int(7)]),
                PeerMessage::Leave { peer: me.clone(), pids: vec![p2.clone()], groups: vec![g.clone(), Term::Int(7)] },
            ),
            (
                sync(&me, vec![(g.clone(), vec![p1.clone(), p2.clone()]), (Term::nil(), vec![])]),
                PeerMessage::Sync {
                    peer: me.clone(),
                    groups: vec![(g.clone(), vec![p1.clone(), p2.clone()]), (Term::nil(), vec![])],
                },
            ),
        ];
        for (term, want) in cases {
            assert_eq!(PeerMessage::parse(&term).unwrap(), Some(want), "{term}");
        }
    }

    #[test]
    fn shapes_match_the_wire() {
        let me = pid("a@h", 1);
        assert_eq!(discover(&me).to_string(), format!("{{discover,{}}}", Term::Pid(me.clone())));
        let s = sync(&me, vec![(Term::atom("g"), vec![me.clone()])]).to_string();
        assert!(s.starts_with("{'$gen_cast',{sync,"), "{s}");
        // one pid is sent bare, as pg:join(G, Pid) does
        let j = join(&me, &Term::atom("g"), std::slice::from_ref(&me));
        assert!(matches!(j.as_tuple(), Some([_, _, _, Term::Pid(_)])));
    }

    #[test]
    fn the_otp26_discover_with_features_is_accepted() {
        let me = pid("a@h", 1);
        let t = Term::Tuple(vec![Term::atom("discover"), Term::Pid(me.clone()), Term::Map(Default::default())]);
        assert_eq!(PeerMessage::parse(&t).unwrap(), Some(PeerMessage::Discover { peer: me }));
    }

    #[test]
    fn malformed_and_foreign_messages() {
        let me = Term::Pid(pid("a@h", 1));
        let bad = [
            Term::Tuple(vec![Term::atom("discover"), Term::atom("x")]),
            Term::Tuple(vec![Term::atom("join"), me.clone(), Term::atom("g"), Term::atom("notapid")]),
            Term::Tuple(vec![Term::atom("join"), me.clone(), Term::atom("g"), Term::List(vec![Term::Int(1)])]),
            Term::Tuple(vec![Term::atom("leave"), me.clone(), me.clone(), Term::atom("g")]),
            Term::Tuple(vec![Term::atom("$gen_cast"), Term::atom("sync")]),
            Term::Tuple(vec![
                Term::atom("$gen_cast"),
                Term::Tuple(vec![Term::atom("sync"), me.clone(), Term::List(vec![Term::atom("g")])]),
            ]),
            Term::Tuple(vec![
                Term::atom("$gen_cast"),
                Term::Tuple(vec![
                    Term::atom("sync"),
                    me.clone(),
                    Term::List(vec![Term::Tuple(vec![Term::atom("g"), Term::List(vec![Term::Int(1)])])]),
                ]),
            ]),
        ];
        for t in bad {
            assert!(PeerMessage::parse(&t).is_err(), "{t}");
        }
        for t in [Term::atom("hello"), Term::Tuple(vec![]), Term::Tuple(vec![Term::atom("other"), me])] {
            assert_eq!(PeerMessage::parse(&t).unwrap(), None, "{t}");
        }
    }
}
