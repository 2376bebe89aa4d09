//! Erlang terms and the External Term Format.
//!
//! Implements the data model of the OTP *External Term Format* (`erts/doc/guides/erl_ext_dist.md`,
//! "External Term Format"): every term a modern BEAM node puts on the wire has a [`Term`]
//! variant, and every variant can be written back byte for byte.
//!
//! Representation choices:
//! - integers that fit `i64` are [`Term::Int`]; larger ones are [`Term::BigInt`] (never both
//!   for one value, so derived equality is Erlang's exact equality `=:=`);
//! - lists are [`Term::List`] (proper, `[]` when empty) or [`Term::Improper`] (at least one
//!   element and a tail that is not a list); a `STRING_EXT` decodes to a list of small integers;
//! - maps keep their wire order ([`Map`]), compare as Erlang compares them (order-free);
//! - binaries are [`bytes::Bytes`], so a decoder can hand out slices of a received buffer;
//! - local funs (`NEW_FUN_EXT`) are carried completely enough to be sent back unchanged.
//!
//! Rust types convert to and from terms with serde: [`to_vec`], [`from_slice`], [`to_term`],
//! [`from_term`]; the conventions are in [`typed`].
//!
//! Equality and ordering ([`Ord`]) follow Erlang's exact equality and standard term order
//! (Erlang Reference Manual, "Term Comparisons"), so terms can be keys of Rust maps.

mod atom;
mod bigint;
mod cursor;
mod decode;
mod display;
mod encode;
mod order;
mod parse;
pub mod tags;
pub mod typed;

pub use atom::{Atom, AtomTooLong, INLINE_CAP, MAX_ATOM_BYTES, MAX_ATOM_CHARS};
pub use bigint::{BIG_INLINE_BYTES, BigInt, Integer};
#[doc(hidden)]
pub use decode::decode_iterative;
pub use decode::{
    DecodeError, DecodeErrorKind, DecodeOptions, MAX_BIG_BYTES, MAX_DECOMPRESSED_SIZE, MAX_TERM_DEPTH,
    MAX_TERM_ELEMENTS, decode, decode_bytes, decode_term_at,
};
pub use display::{Elixir, elixir_float, erlang_atom_is_bare, erlang_float};
pub(crate) use encode::{AtomRefs, NoRefs, encode_body_with, write_atom_with};
pub use encode::{encode, encode_body_to, encode_compressed, encode_to};
pub use parse::{
    MAX_BINARY_BYTES, MAX_INTEGER_DIGITS, MAX_PARSE_DEPTH, MAX_SEGMENT_BITS, ParseError, parse_elixir, parse_erlang,
};
pub use typed::{from_slice, from_term, to_term, to_vec, to_writer};

use bytes::Bytes;

/// An Erlang term.
#[derive(Clone, Debug)]
pub enum Term {
    /// An integer that fits `i64`.
    Int(i64),
    /// An integer outside the `i64` range.
    BigInt(BigInt),
    /// A float (never NaN or infinite on the wire).
    Float(f64),
    /// An atom.
    Atom(Atom),
    /// A binary: a whole number of bytes.
    Binary(Bytes),
    /// A bitstring whose length is not a whole number of bytes.
    BitBinary(BitBinary),
    /// A proper list; the empty list `[]` is `List(vec![])`.
    List(Vec<Term>),
    /// An improper list: at least one element, and a tail that is not a list.
    Improper(Vec<Term>, Box<Term>),
    /// A tuple.
    Tuple(Vec<Term>),
    /// A map, in wire (or insertion) order.
    Map(Map),
    /// A process identifier.
    Pid(Pid),
    /// A port identifier.
    Port(Port),
    /// A reference.
    Ref(Reference),
    /// An external fun `fun M:F/A`.
    ExportFun(Box<ExportFun>),
    /// A local fun (closure), carried opaquely.
    LocalFun(Box<LocalFun>),
}

// Every element of a decoded container is one `Term`: its size is the decoder's memory per
// element (see `MAX_TERM_ELEMENTS`), and a variant growing it slows every container.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Term>() == 56);

/// A bitstring of `8 * (data.len() - 1) + bits` bits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BitBinary {
    /// The bytes; the last one holds `bits` significant high-order bits, the rest zero.
    pub data: Bytes,
    /// Significant bits in the last byte, `1..=7`.
    pub bits: u8,
}

/// A map in wire order. Equality and ordering ignore the order of entries.
#[derive(Clone, Debug, Default)]
pub struct Map {
    entries: Vec<(Term, Term)>,
}

impl Map {
    /// An empty map.
    pub fn new() -> Map {
        Map { entries: Vec::new() }
    }

    /// A map from entries, in the order given. Later duplicates replace earlier values.
    pub fn from_entries(entries: impl IntoIterator<Item = (Term, Term)>) -> Map {
        let mut m = Map::new();
        for (k, v) in entries {
            m.insert(k, v);
        }
        m
    }

    /// A map from entries the caller guarantees have distinct keys (a decoder that checked).
    pub fn from_distinct_entries(entries: Vec<(Term, Term)>) -> Map {
        Map { entries }
    }

    /// The value under `key` (exact equality, as Erlang map lookup).
    pub fn get(&self, key: &Term) -> Option<&Term> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Inserts or replaces; a new key goes last. Returns the previous value.
    pub fn insert(&mut self, key: Term, value: Term) -> Option<Term> {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &Term) -> Option<Term> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// Entries in wire order.
    pub fn entries(&self) -> &[(Term, Term)] {
        &self.entries
    }

    /// Entries in wire order, owned.
    pub fn into_entries(self) -> Vec<(Term, Term)> {
        self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries sorted by key in term order (how Erlang compares and prints maps).
    pub fn sorted_entries(&self) -> Vec<&(Term, Term)> {
        let mut v: Vec<&(Term, Term)> = self.entries.iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// A process identifier (`NEW_PID_EXT`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pid {
    /// The node the process lives on.
    pub node: Atom,
    /// Process number.
    pub id: u32,
    /// Serial (wraps of the process number).
    pub serial: u32,
    /// The node incarnation that created it.
    pub creation: u32,
}

/// A port identifier (`NEW_PORT_EXT`, `V4_PORT_EXT`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Port {
    /// The node the port lives on.
    pub node: Atom,
    /// Port number (up to 64 bits with `V4_NC`).
    pub id: u64,
    /// The node incarnation that created it.
    pub creation: u32,
}

/// Maximum number of 32-bit words in a reference (`NEWER_REFERENCE_EXT` with `V4_NC`).
pub const MAX_REF_WORDS: usize = 5;

/// A reference (`NEWER_REFERENCE_EXT`): up to five 32-bit words.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The node that made it.
    pub node: Atom,
    /// The node incarnation that made it.
    pub creation: u32,
    len: u8,
    words: [u32; MAX_REF_WORDS],
}

impl Reference {
    /// A reference with the given id words, in wire order (`ID[0]` first).
    ///
    /// Returns `None` for zero or more than [`MAX_REF_WORDS`] words.
    pub fn new(node: Atom, creation: u32, ids: &[u32]) -> Option<Reference> {
        if ids.is_empty() || ids.len() > MAX_REF_WORDS {
            return None;
        }
        let mut words = [0u32; MAX_REF_WORDS];
        words[..ids.len()].copy_from_slice(ids);
        Some(Reference { node, creation, len: ids.len() as u8, words })
    }

    /// The id words in wire order (`ID[0]` first).
    pub fn ids(&self) -> &[u32] {
        &self.words[..self.len as usize]
    }
}

/// An external fun, `fun Module:Function/Arity` (`EXPORT_EXT`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExportFun {
    /// Module.
    pub module: Atom,
    /// Function.
    pub function: Atom,
    /// Arity.
    pub arity: u8,
}

/// A local fun (`NEW_FUN_EXT`): every field the wire carries, so it can be re-sent unchanged.
///
/// `global` sends its resolve methods as local funs; a node must store and return them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LocalFun {
    /// Arity of the fun.
    pub arity: u8,
    /// MD5 of the module's significant parts.
    pub uniq: [u8; 16],
    /// Index in the module's fun table.
    pub index: u32,
    /// The defining module.
    pub module: Atom,
    /// `OldIndex` (an integer term).
    pub old_index: Term,
    /// `OldUniq` (an integer term).
    pub old_uniq: Term,
    /// The creating process (a pid term).
    pub pid: Term,
    /// Captured free variables.
    pub free_vars: Vec<Term>,
}

impl Term {
    /// The atom `name`.
    pub fn atom(name: &str) -> Term {
        Term::Atom(Atom::new(name))
    }

    /// A binary holding a copy of `data`.
    pub fn binary(data: impl AsRef<[u8]>) -> Term {
        Term::Binary(Bytes::copy_from_slice(data.as_ref()))
    }

    /// A charlist (Erlang string): a list of the code points of `s`.
    pub fn charlist(s: &str) -> Term {
        Term::List(s.chars().map(|c| Term::Int(c as i64)).collect())
    }

    /// The empty list `[]`.
    pub fn nil() -> Term {
        Term::List(Vec::new())
    }

    /// A tuple.
    pub fn tuple(elems: Vec<Term>) -> Term {
        Term::Tuple(elems)
    }

    /// A list `[elems... | tail]`, normalised: a list tail is spliced in, so the result is
    /// [`Term::List`] when the tail is a proper list and [`Term::Improper`] otherwise.
    pub fn list_with_tail(mut elems: Vec<Term>, tail: Term) -> Term {
        match tail {
            Term::List(rest) => {
                elems.extend(rest);
                Term::List(elems)
            }
            Term::Improper(rest, t) => {
                elems.extend(rest);
                Term::Improper(elems, t)
            }
            other if elems.is_empty() => other,
            other => Term::Improper(elems, Box::new(other)),
        }
    }

    /// An integer of any size.
    pub fn integer(i: Integer) -> Term {
        match i {
            Integer::Small(v) => Term::Int(v),
            Integer::Big(b) => Term::BigInt(b),
        }
    }

    /// The atom, if this is one.
    pub fn as_atom(&self) -> Option<&Atom> {
        match self {
            Term::Atom(a) => Some(a),
            _ => None,
        }
    }

    /// `true` if this is the atom `name`.
    pub fn is_atom(&self, name: &str) -> bool {
        matches!(self, Term::Atom(a) if a.as_str() == name)
    }

    /// The elements, if this is a tuple.
    pub fn as_tuple(&self) -> Option<&[Term]> {
        match self {
            Term::Tuple(t) => Some(t),
            _ => None,
        }
    }

    /// The elements, if this is a proper list (`[]` gives an empty slice).
    pub fn as_list(&self) -> Option<&[Term]> {
        match self {
            Term::List(l) => Some(l),
            _ => None,
        }
    }

    /// The value, if this is an integer that fits `i64`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Term::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The pid, if this is one.
    pub fn as_pid(&self) -> Option<&Pid> {
        match self {
            Term::Pid(p) => Some(p),
            _ => None,
        }
    }

    /// The reference, if this is one.
    pub fn as_ref(&self) -> Option<&Reference> {
        match self {
            Term::Ref(r) => Some(r),
            _ => None,
        }
    }

    /// The bytes, if this is a binary.
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Term::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The map, if this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Term::Map(m) => Some(m),
            _ => None,
        }
    }
}

macro_rules! from_small_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Term {
            fn from(v: $t) -> Term { Term::Int(v as i64) }
        }
    )*};
}
from_small_int!(i8, i16, i32, i64, u8, u16, u32, isize);

impl From<u64> for Term {
    fn from(v: u64) -> Term {
        Term::integer(Integer::from(v as u128))
    }
}
impl From<usize> for Term {
    fn from(v: usize) -> Term {
        Term::from(v as u64)
    }
}
impl From<i128> for Term {
    fn from(v: i128) -> Term {
        Term::integer(Integer::from(v))
    }
}
impl From<u128> for Term {
    fn from(v: u128) -> Term {
        Term::integer(Integer::from(v))
    }
}
impl From<Integer> for Term {
    fn from(v: Integer) -> Term {
        Term::integer(v)
    }
}
impl From<f64> for Term {
    fn from(v: f64) -> Term {
        Term::Float(v)
    }
}
impl From<bool> for Term {
    /// The atoms `true` and `false`.
    fn from(v: bool) -> Term {
        Term::atom(if v { "true" } else { "false" })
    }
}
impl From<Atom> for Term {
    fn from(v: Atom) -> Term {
        Term::Atom(v)
    }
}
impl From<Pid> for Term {
    fn from(v: Pid) -> Term {
        Term::Pid(v)
    }
}
impl From<Port> for Term {
    fn from(v: Port) -> Term {
        Term::Port(v)
    }
}
impl From<Reference> for Term {
    fn from(v: Reference) -> Term {
        Term::Ref(v)
    }
}
impl From<Map> for Term {
    fn from(v: Map) -> Term {
        Term::Map(v)
    }
}
impl From<ExportFun> for Term {
    fn from(v: ExportFun) -> Term {
        Term::ExportFun(Box::new(v))
    }
}
impl From<Bytes> for Term {
    /// A binary.
    fn from(v: Bytes) -> Term {
        Term::Binary(v)
    }
}
impl From<&[u8]> for Term {
    /// A binary.
    fn from(v: &[u8]) -> Term {
        Term::binary(v)
    }
}
impl<T: Into<Term>> From<Vec<T>> for Term {
    /// A proper list.
    fn from(v: Vec<T>) -> Term {
        Term::List(v.into_iter().map(Into::into).collect())
    }
}

macro_rules! from_tuple {
    ($($name:ident),+) => {
        impl<$($name: Into<Term>),+> From<($($name,)+)> for Term {
            #[allow(non_snake_case)]
            fn from(($($name,)+): ($($name,)+)) -> Term {
                Term::Tuple(vec![$($name.into()),+])
            }
        }
    };
}
from_tuple!(A);
from_tuple!(A, B);
from_tuple!(A, B, C);
from_tuple!(A, B, C, D);
from_tuple!(A, B, C, D, E);
from_tuple!(A, B, C, D, E, F);
from_tuple!(A, B, C, D, E, F, G);
from_tuple!(A, B, C, D, E, F, G, H);

/// Builds a tuple term from expressions that convert into [`Term`]:
/// `tuple![Atom::from("set"), Atom::from("foo"), 123]`.
#[macro_export]
macro_rules! tuple {
    ($($e:expr),* $(,)?) => { $crate::term::Term::Tuple(vec![$($crate::term::Term::from($e)),*]) };
}

/// Builds a proper list term from expressions that convert into [`Term`]: `list![1, 2, 3]`.
#[macro_export]
macro_rules! list {
    ($($e:expr),* $(,)?) => { $crate::term::Term::List(vec![$($crate::term::Term::from($e)),*]) };
}

/// Builds an atom term: `atom!("ok")`.
#[macro_export]
macro_rules! atom {
    ($s:expr) => {
        $crate::term::Term::Atom($crate::term::Atom::from($s))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_helpers() {
        let t = crate::tuple![Atom::from("set"), Atom::from("foo"), 123];
        assert_eq!(t, Term::Tuple(vec![Term::atom("set"), Term::atom("foo"), Term::Int(123)]));
        assert_eq!(Term::from((Atom::from("ok"), 1u8)), crate::tuple![Atom::from("ok"), 1]);
        assert_eq!(crate::list![1, 2], Term::List(vec![Term::Int(1), Term::Int(2)]));
        assert!(matches!(Term::from(u64::MAX), Term::BigInt(_)));
        assert_eq!(Term::from(i64::MIN as i128), Term::Int(i64::MIN));
    }

    #[test]
    fn list_with_tail_normalises() {
        let l = Term::list_with_tail(vec![Term::Int(1)], Term::List(vec![Term::Int(2)]));
        assert_eq!(l, crate::list![1, 2]);
        let i = Term::list_with_tail(vec![Term::Int(1)], Term::Int(2));
        assert!(matches!(i, Term::Improper(_, _)));
        assert_eq!(Term::list_with_tail(vec![], Term::Int(2)), Term::Int(2));
    }

    #[test]
    fn maps_compare_without_order() {
        let a = Map::from_entries([(Term::Int(1), Term::atom("a")), (Term::Int(2), Term::atom("b"))]);
        let b = Map::from_entries([(Term::Int(2), Term::atom("b")), (Term::Int(1), Term::atom("a"))]);
        assert_eq!(Term::Map(a.clone()), Term::Map(b));
        assert_eq!(a.get(&Term::Int(2)), Some(&Term::atom("b")));
        assert_eq!(a.get(&Term::Float(2.0)), None);
    }
}
