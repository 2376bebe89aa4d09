//! The article's `KV` GenServer: `{:get, key}` gives the value or `nil`, `{:set, key, value}`
//! stores and gives `true`, `:keys` lists the keys; any other request gives
//! `:not_implemented` and the server carries on. A cast is applied the same way with the reply
//! dropped (`GenServer.cast(kv, {:set, k, v})` stores; the article's Elixir KV has no
//! `handle_cast` and would crash on one). `:sys.get_state(kv)` shows the map.

use std::collections::BTreeMap;

use crate::gen_server::{CallReply, From, GenServer, Next};
use crate::node::Process;
use crate::term::{Map, Term};

/// A key-value server: any term as key, any term as value.
#[derive(Debug, Default)]
pub struct Kv {
    map: BTreeMap<Term, Term>,
}

impl Kv {
    /// An empty store.
    pub fn new() -> Kv {
        Kv::default()
    }

    /// Handles one request (the whole protocol, without a process: used by rpc too).
    pub fn handle(&mut self, request: Term) -> Term {
        match request {
            Term::Tuple(t) => match <[Term; 3]>::try_from(t) {
                // the key and value move into the map
                Ok([op, key, value]) if op.is_atom("set") => {
                    self.map.insert(key, value);
                    Term::atom("true")
                }
                Ok(_) => Term::atom("not_implemented"),
                Err(t) => match t.as_slice() {
                    [op, key] if op.is_atom("get") => self.map.get(key).cloned().unwrap_or_else(|| Term::atom("nil")),
                    _ => Term::atom("not_implemented"),
                },
            },
            // keys in term order, as Map.keys/1 lists a small map's keys
            _ if request.is_atom("keys") => Term::List(self.map.keys().cloned().collect()),
            _ => Term::atom("not_implemented"),
        }
    }
}

impl GenServer for Kv {
    /// The map, as the article's Elixir KV's state (`:sys.get_state(kv)` gives `%{foo: 123}`).
    fn format_state(&self) -> Term {
        Term::Map(Map::from_distinct_entries(self.map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
    }

    async fn handle_call(&mut self, request: Term, _from: &From, _p: &mut Process) -> CallReply {
        CallReply::Reply(self.handle(request))
    }

    async fn handle_cast(&mut self, request: Term, _p: &mut Process) -> Next {
        self.handle(request);
        Next::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::Atom;
    use crate::tuple;

    #[test]
    fn protocol() {
        let mut kv = Kv::new();
        assert_eq!(kv.handle(tuple![Atom::from("get"), Atom::from("foo")]), Term::atom("nil"));
        assert_eq!(kv.handle(tuple![Atom::from("set"), Atom::from("foo"), 123]), Term::atom("true"));
        assert_eq!(kv.handle(tuple![Atom::from("set"), 1, 2]), Term::atom("true"));
        assert_eq!(kv.handle(tuple![Atom::from("get"), Atom::from("foo")]), Term::Int(123));
        assert_eq!(kv.handle(Term::atom("keys")), Term::List(vec![Term::Int(1), Term::atom("foo")]));
        assert_eq!(kv.handle(Term::atom("bogus")), Term::atom("not_implemented"));
    }
}
