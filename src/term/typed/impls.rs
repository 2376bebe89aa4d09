//! `Serialize` and `Deserialize` for the term types, through the private newtype names of the
//! module docs: an atom is a newtype of its text, any other term a newtype of its encoding.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

use super::{ATOM_TOKEN, TERM_TOKEN};
use crate::term::tags::VERSION_MAGIC;
use crate::term::{Atom, BigInt, BitBinary, ExportFun, Integer, LocalFun, Map, Pid, Port, Reference, Term};

/// Bytes that serialize as bytes (without pulling in `serde_bytes`).
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Term {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(TERM_TOKEN, &RawBytes(&crate::term::encode(self)))
    }
}

impl Serialize for Atom {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(ATOM_TOKEN, self.as_str())
    }
}

struct TermVisitor;

impl TermVisitor {
    fn decode<E: de::Error>(bytes: &[u8]) -> Result<Term, E> {
        // a whole encoding from another format starts with the version byte; this format
        // hands over the term itself (no term starts with tag 131)
        let r = match bytes.first() {
            Some(&VERSION_MAGIC) => crate::term::decode(bytes),
            _ => crate::term::decode::decode_body_at(bytes, 0).and_then(|(t, end)| {
                if end == bytes.len() {
                    Ok(t)
                } else {
                    let kind = crate::term::DecodeErrorKind::TrailingBytes { count: bytes.len() - end };
                    Err(crate::term::DecodeError { offset: end, kind })
                }
            }),
        };
        r.map_err(E::custom)
    }
}

impl<'de> Visitor<'de> for TermVisitor {
    type Value = Term;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an Erlang term")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Term, E> {
        Self::decode(v)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Term, A::Error> {
        // formats that write bytes as a sequence of numbers
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        Self::decode(&bytes)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Term, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> serde::Deserialize<'de> for Term {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Term, D::Error> {
        d.deserialize_newtype_struct(TERM_TOKEN, TermVisitor)
    }
}

struct AtomVisitor;

impl<'de> Visitor<'de> for AtomVisitor {
    type Value = Atom;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an atom")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Atom, E> {
        Atom::try_new(v).map_err(E::custom)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Atom, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Atom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Atom, D::Error> {
        d.deserialize_newtype_struct(ATOM_TOKEN, AtomVisitor)
    }
}

/// What a term is, for "expected a pid, found ..." messages.
fn kind_of(t: &Term) -> &'static str {
    match t {
        Term::Int(_) | Term::BigInt(_) => "an integer",
        Term::Float(_) => "a float",
        Term::Atom(_) => "an atom",
        Term::Binary(_) => "a binary",
        Term::BitBinary(_) => "a bitstring",
        Term::List(_) | Term::Improper(..) => "a list",
        Term::Tuple(_) => "a tuple",
        Term::Map(_) => "a map",
        Term::Pid(_) => "a pid",
        Term::Port(_) => "a port",
        Term::Ref(_) => "a reference",
        Term::ExportFun(_) | Term::LocalFun(_) => "a fun",
    }
}

/// `Serialize`/`Deserialize` for a term type through [`Term`]: `$to` makes the term from a
/// reference to the value, `$from` takes the value out of a term of the right kind.
macro_rules! via_term {
    ($($ty:ty, $what:literal, |$v:ident| $to:expr, $from:pat => $out:expr;)*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let $v = self;
                let t: Term = $to;
                t.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                #[allow(unreachable_patterns)]
                match Term::deserialize(d)? {
                    $from => Ok($out),
                    other => Err(de::Error::invalid_type(de::Unexpected::Other(kind_of(&other)), &$what)),
                }
            }
        }
    )*};
}

via_term! {
    Pid, "a pid", |v| Term::Pid(v.clone()), Term::Pid(p) => p;
    Port, "a port", |v| Term::Port(v.clone()), Term::Port(p) => p;
    Reference, "a reference", |v| Term::Ref(v.clone()), Term::Ref(r) => r;
    ExportFun, "an external fun", |v| Term::ExportFun(Box::new(v.clone())), Term::ExportFun(f) => *f;
    LocalFun, "a local fun", |v| Term::LocalFun(Box::new(v.clone())), Term::LocalFun(f) => *f;
    Map, "a map", |v| Term::Map(v.clone()), Term::Map(m) => m;
    BitBinary, "a bitstring", |v| Term::BitBinary(v.clone()), Term::BitBinary(b) => b;
    BigInt, "an integer outside the i64 range", |v| Term::BigInt(v.clone()), Term::BigInt(b) => b;
}

impl Serialize for Integer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Term::integer(self.clone()).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Integer, D::Error> {
        match Term::deserialize(d)? {
            Term::Int(i) => Ok(Integer::Small(i)),
            Term::BigInt(b) => Ok(Integer::Big(b)),
            other => Err(de::Error::invalid_type(de::Unexpected::Other(kind_of(&other)), &"an integer")),
        }
    }
}
