//! Phoenix.PubSub's names and wire shapes (sans-IO), as `phoenix_pubsub` 2.2.0 writes them in
//! `lib/phoenix/pubsub/pg2.ex` (`Phoenix.PubSub.PG2`, `Phoenix.PubSub.PG2Worker`).
//!
//! | what | Elixir | Erlang |
//! |---|---|---|
//! | the PubSub | `MyApp.PubSub` | `'Elixir.MyApp.PubSub'` |
//! | the adapter name, pool group 1 | `MyApp.PubSub.Adapter` | `'Elixir.MyApp.PubSub.Adapter'` |
//! | pool group `i`, `2 ≤ i ≤ pool_size` | `:"Elixir.MyApp.PubSub.Adapter_2"` | `'Elixir.MyApp.PubSub.Adapter_2'` |
//! | the pg scope | `Phoenix.PubSub` | `'Elixir.Phoenix.PubSub'` |
//! | a broadcast between nodes | `{:forward_to_local, "topic", msg, Phoenix.PubSub}` | `{forward_to_local, <<"topic">>, Msg, 'Elixir.Phoenix.PubSub'}` |
//!
//! Every pool group has one worker per node, registered locally under the group's name and
//! joined to that pg group. A broadcaster picks one of the first `broadcast_pool_size` groups
//! (by `:erlang.phash2(self(), n)`) and sends the forward message to every *remote* member of
//! it; each receiving worker delivers to its node's subscribers with
//! `Phoenix.PubSub.local_broadcast/4` (so the sender is never excluded remotely, even for
//! `broadcast_from`). `direct_broadcast` sends it to `{Group, Node}` instead.
//!
//! The last element names the dispatcher module (`Phoenix.PubSub` unless the broadcaster gave
//! another); erlnode cannot run a BEAM module, so its subscribers get the message as the
//! default dispatcher delivers it, whatever the dispatcher.

use bytes::Bytes;

use super::PubSubError;
use crate::term::{Atom, Term};

/// The pg scope every `Phoenix.PubSub` uses (`Phoenix.PubSub.Application` starts it).
pub const SCOPE: &str = "Elixir.Phoenix.PubSub";
/// The default dispatcher module.
pub const DEFAULT_DISPATCHER: &str = "Elixir.Phoenix.PubSub";
/// The tag of the message between nodes.
pub const FORWARD_TO_LOCAL: &str = "forward_to_local";
/// The most pool groups erlnode serves for one PubSub. A peer announcing a group numbered
/// higher is logged and that group ignored (Phoenix's own default is one per 4 cores).
pub const MAX_POOL_SIZE: usize = 256;

/// The PubSub's atom from its name as Elixir writes it (`MyApp.PubSub`) or as Erlang does
/// (`Elixir.MyApp.PubSub`). A name without a dot and no capital is taken as a plain atom
/// (`{Phoenix.PubSub, name: :my_pubsub}` is allowed too).
pub fn server_atom(name: &str) -> Result<Atom, PubSubError> {
    let name = name.trim().trim_start_matches(':');
    if name.is_empty() {
        return Err(PubSubError::BadName(name.to_string()));
    }
    let full = if name.starts_with("Elixir.") || !name.starts_with(|c: char| c.is_ascii_uppercase()) {
        name.to_string()
    } else {
        format!("Elixir.{name}")
    };
    // room for the longest group name, `<name>.Adapter_256`
    if full.chars().count() + ".Adapter_256".len() > crate::term::MAX_ATOM_CHARS {
        return Err(PubSubError::BadName(name.to_string()));
    }
    Atom::try_new(&full).map_err(|_| PubSubError::BadName(name.to_string()))
}

/// `Module.concat(Name, "Adapter")`: the adapter name, which is also pool group 1.
pub fn adapter_name(server: &Atom) -> Atom {
    Atom::new(&format!("{}.Adapter", server.as_str()))
}

/// The name of pool group `index` (1-based): the adapter name for 1, `<adapter>_<index>` after.
pub fn group_name(adapter: &Atom, index: usize) -> Atom {
    if index <= 1 { adapter.clone() } else { Atom::new(&format!("{}_{index}", adapter.as_str())) }
}

/// Which pool group of `adapter` a pg group is, if it is one (1-based). Indices above
/// [`MAX_POOL_SIZE`] are `Err` so the caller can say so.
pub fn group_index(adapter: &Atom, group: &Term) -> Option<Result<usize, PubSubError>> {
    let name = group.as_atom()?.as_str();
    let rest = name.strip_prefix(adapter.as_str())?;
    if rest.is_empty() {
        return Some(Ok(1));
    }
    let digits = rest.strip_prefix('_')?;
    // as `:"#{adapter}_#{n}"` writes them: no sign, no leading zero, 2 or more
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match digits.parse::<usize>() {
        Ok(1) => None,
        Ok(n) if n <= MAX_POOL_SIZE => Some(Ok(n)),
        _ => Some(Err(PubSubError::LimitExceeded("MAX_POOL_SIZE"))),
    }
}

/// `{forward_to_local, Topic, Message, Dispatcher}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardToLocal {
    /// The topic (a binary; Phoenix guards `is_binary(topic)`).
    pub topic: Bytes,
    /// What subscribers receive.
    pub message: Term,
    /// The dispatcher module the broadcaster named.
    pub dispatcher: Atom,
}

impl ForwardToLocal {
    /// With the default dispatcher.
    pub fn new(topic: Bytes, message: Term) -> ForwardToLocal {
        ForwardToLocal { topic, message, dispatcher: Atom::new(DEFAULT_DISPATCHER) }
    }

    /// Reads the message a pool worker receives.
    pub fn parse(msg: Term) -> Result<ForwardToLocal, PubSubError> {
        let Term::Tuple(elems) = msg else {
            return Err(PubSubError::Malformed("not a tuple"));
        };
        let Ok::<[Term; 4], _>([tag, topic, message, dispatcher]) = elems.try_into() else {
            return Err(PubSubError::Malformed("not a 4-tuple"));
        };
        if !tag.is_atom(FORWARD_TO_LOCAL) {
            return Err(PubSubError::Malformed("not forward_to_local"));
        }
        let Term::Binary(topic) = topic else {
            return Err(PubSubError::Malformed("topic is not a binary"));
        };
        let Term::Atom(dispatcher) = dispatcher else {
            return Err(PubSubError::Malformed("dispatcher is not an atom"));
        };
        Ok(ForwardToLocal { topic, message, dispatcher })
    }

    /// The term sent to a remote worker.
    pub fn to_term(&self) -> Term {
        Term::Tuple(vec![
            Term::atom(FORWARD_TO_LOCAL),
            Term::Binary(self.topic.clone()),
            self.message.clone(),
            Term::Atom(self.dispatcher.clone()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{decode, encode, parse_erlang};

    #[test]
    fn names_as_elixir_and_erlang_write_them() {
        let s = server_atom("MyApp.PubSub").unwrap();
        assert_eq!(s.as_str(), "Elixir.MyApp.PubSub");
        assert_eq!(server_atom("Elixir.MyApp.PubSub").unwrap(), s);
        assert_eq!(server_atom(":my_pubsub").unwrap().as_str(), "my_pubsub");
        assert!(server_atom("").is_err());
        assert!(server_atom(&"A".repeat(250)).is_err());
        let a = adapter_name(&s);
        assert_eq!(a.as_str(), "Elixir.MyApp.PubSub.Adapter");
        assert_eq!(group_name(&a, 1), a);
        assert_eq!(group_name(&a, 3).as_str(), "Elixir.MyApp.PubSub.Adapter_3");
    }

    #[test]
    fn group_indices_only_for_this_adapters_groups() {
        let a = adapter_name(&server_atom("MyApp.PubSub").unwrap());
        let idx = |g: &str| group_index(&a, &Term::atom(g)).map(|r| r.ok());
        assert_eq!(idx("Elixir.MyApp.PubSub.Adapter"), Some(Some(1)));
        assert_eq!(idx("Elixir.MyApp.PubSub.Adapter_2"), Some(Some(2)));
        assert_eq!(idx("Elixir.MyApp.PubSub.Adapter_256"), Some(Some(256)));
        assert_eq!(idx("Elixir.MyApp.PubSub.Adapter_257"), Some(None));
        assert_eq!(idx("Elixir.MyApp.PubSub.Adapter_99999999999999999999999"), Some(None));
        for not_ours in [
            "Elixir.MyApp.PubSub.Adapter_1",
            "Elixir.MyApp.PubSub.Adapter_02",
            "Elixir.MyApp.PubSub.Adapter_",
            "Elixir.MyApp.PubSub.Adapter_x",
            "Elixir.MyApp.PubSub.Adapterx",
            "Elixir.MyApp.PubSub2.Adapter",
            "Elixir.Other.Adapter",
        ] {
            assert_eq!(idx(not_ours), None, "{not_ours}");
        }
        assert!(group_index(&a, &Term::binary("Elixir.MyApp.PubSub.Adapter")).is_none());
    }

    #[test]
    fn forward_to_local_as_a_beam_node_sends_it() {
        // term_to_binary({forward_to_local, <<"t">>, {hi, 1}, 'Elixir.Phoenix.PubSub'}) on OTP 27
        let beam: &[u8] = &[
            131, 104, 4, 119, 16, 102, 111, 114, 119, 97, 114, 100, 95, 116, 111, 95, 108, 111, 99, 97, 108, 109, 0, 0,
            0, 1, 116, 104, 2, 119, 2, 104, 105, 97, 1, 119, 21, 69, 108, 105, 120, 105, 114, 46, 80, 104, 111, 101,
            110, 105, 120, 46, 80, 117, 98, 83, 117, 98,
        ];
        let f = ForwardToLocal::parse(decode(beam).unwrap()).unwrap();
        assert_eq!(&f.topic[..], b"t");
        assert_eq!(f.message, parse_erlang("{hi, 1}").unwrap());
        assert_eq!(f.dispatcher.as_str(), DEFAULT_DISPATCHER);
        assert_eq!(encode(&ForwardToLocal::new(Bytes::from_static(b"t"), f.message.clone()).to_term()), beam);
    }

    #[test]
    fn malformed_forwards_are_typed_errors() {
        for bad in [
            "forward_to_local",
            "{forward_to_local, <<\"t\">>, m}",
            "{forward_to_local, \"t\", m, 'Elixir.Phoenix.PubSub'}",
            "{forward_to_local, <<\"t\">>, m, <<\"Elixir.Phoenix.PubSub\">>}",
            "{other, <<\"t\">>, m, 'Elixir.Phoenix.PubSub'}",
        ] {
            let t = parse_erlang(bad).unwrap();
            assert!(matches!(ForwardToLocal::parse(t), Err(PubSubError::Malformed(_))), "{bad}");
        }
    }
}
