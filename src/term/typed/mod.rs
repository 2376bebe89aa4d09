//! Typed terms: Rust types to and from Erlang/Elixir terms with [serde].
//!
//! ```
//! use erlnode::term::{from_slice, to_vec};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(rename = "Elixir.MyApp.User")]
//! struct User {
//!     name: String,
//!     age: u32,
//! }
//!
//! let bytes = to_vec(&User { name: "ann".into(), age: 33 }).unwrap(); // %MyApp.User{name: "ann", age: 33}
//! assert_eq!(from_slice::<User>(&bytes).unwrap(), User { name: "ann".into(), age: 33 });
//! ```
//!
//! [`to_vec`] writes the External Term Format (`erts/doc/guides/erl_ext_dist.md`) straight
//! from the value, tags chosen as `term_to_binary(T, [{minor_version, 2}])` chooses them;
//! [`from_slice`] reads straight from the bytes into the type (no [`Term`] built in between),
//! borrowing `&str` and `&[u8]` fields from the input. [`to_term`] and [`from_term`] do the same
//! for a [`Term`] (through its encoding, so that both paths share one implementation of the
//! conventions and can never disagree). The conventions follow Rustler's derives (`NifStruct`,
//! `NifMap`, `NifTuple`, `NifUnitEnum`, `NifTaggedEnum`), which Elixir+Rust developers know:
//!
//! | Rust (serde) | Elixir | Erlang |
//! |---|---|---|
//! | `bool` | `true`, `false` | `true`, `false` |
//! | integers, `i128`/`u128` | `42`, big integers | `42`, big integers |
//! | `f32`, `f64` (finite; reading also takes integers) | `1.5` | `1.5` |
//! | `String`, `&str`, `char` | `"text"` (reading also takes `~c"text"`) | `<<"text"/utf8>>` (reading also takes `"text"`) |
//! | bytes (`serde_bytes`) | `<<1, 2>>` | `<<1, 2>>` |
//! | `Option::None` / `Some(x)` | `nil` / `x` | `nil` (reading also takes `undefined`) / `X` |
//! | `()` | `{}` | `{}` |
//! | unit struct `struct Ok;` | `Ok` (an atom: the name serde gives) | `'Ok'` |
//! | unit variant `Color::Red` (`rename_all = "snake_case"`) | `:red` | `red` |
//! | newtype variant `Msg::Get(k)` | `{:get, k}` | `{get, K}` |
//! | tuple variant `Msg::Set(k, v)` | `{:set, k, v}` | `{set, K, V}` |
//! | struct variant `Msg::Move { x, y }` | `{:move, %{x: 1, y: 2}}` | `{move, #{x => 1, y => 2}}` |
//! | struct `Point { x, y }` | `%{x: 1, y: 2}` | `#{x => 1, y => 2}` |
//! | struct with `rename = "Elixir.MyApp.User"` | `%MyApp.User{name: "ann"}` | `#{'__struct__' => 'Elixir.MyApp.User', name => <<"ann">>}` |
//! | tuple struct, tuple, array `[T; N]` | `{a, b}` | `{A, B}` |
//! | newtype struct `Id(u64)` | the inner value | the inner value |
//! | `Vec<T>`, sequences | `[a, b]` (a proper list) | `[A, B]` |
//! | `HashMap`, `BTreeMap` | `%{k => v}` | `#{K => V}` |
//! | [`Term`], [`Atom`], [`Pid`], [`Reference`], [`Port`], [`Map`], ... | any term / an atom / a pid ... | the same |
//!
//! Reading is a little more liberal than writing, as listed: integers for floats, charlists for
//! strings, `undefined` for `None`, binaries as well as atoms for struct keys and variant
//! names; unknown map keys are ignored unless the type says `#[serde(deny_unknown_fields)]`.
//! A struct renamed `"Elixir.X"` reads plain maps too, and rejects a `__struct__` naming
//! another struct. Notes:
//! - `Option<T>` cannot tell `None` from `Some` of something written as `nil` (the atom `nil`,
//!   a `None` nested in `Some`), as in Elixir itself;
//! - maps are written in the Rust value's order (fields in declaration order). BEAM's own order
//!   of a map's entries is not fixed by the format (since OTP 26 small maps with atom keys are
//!   ordered by the atom table), so `term_to_binary` of the same map may order entries
//!   differently; every other term is written byte for byte as `term_to_binary` writes it;
//! - a list of integers `0..=255` is written as `STRING_EXT`, as BEAM does (so a `Vec<u8>`
//!   without `serde_bytes` is a charlist-like list, not a binary);
//! - [`Term`] and the other term types travel through serde as their encoding, so they cannot
//!   sit inside `#[serde(flatten)]` or an untagged enum (serde buffers those in its own data
//!   model, which has no such bytes); [`Atom`] can;
//! - a `COMPRESSED` input is inflated first (up to [`crate::term::MAX_DECOMPRESSED_SIZE`]);
//!   strings cannot then be borrowed from it, and error offsets count from the inflated bytes.
//!
//! Errors ([`Error`]) say where (the path into the term, `.users[3].name`) and what (expected
//! and found, or the malformation), and the byte offset; nothing panics on any input. The
//! decoder's checks and limits are those of [`crate::term::decode`] (depth, element counts,
//! bignum and atom sizes).
//!
//! [`Term`], [`Atom`] and the other term types implement `Serialize` and `Deserialize` through
//! two private newtype names: an atom is a newtype of its text (a string to other serde
//! formats), any other term a newtype of its `term_to_binary` bytes (bytes to other formats).
//! This format recognises the names and writes the atom, or splices the term's encoding in.

mod de;
mod error;
mod impls;
mod ser;

use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};

pub use error::{Error, ErrorKind, Segment};

use super::tags::{COMPRESSED, VERSION_MAGIC};
#[cfg(doc)]
use super::{Atom, Map, Pid, Port, Reference};
use super::{DecodeErrorKind, MAX_DECOMPRESSED_SIZE, Term};

/// The newtype name under which a [`Term`] travels through serde: its encoding, as bytes.
pub(crate) const TERM_TOKEN: &str = "$erlnode::private::Term";
/// The newtype name under which an [`crate::term::Atom`] travels through serde: its text.
pub(crate) const ATOM_TOKEN: &str = "$erlnode::private::Atom";
/// The key naming an Elixir struct's module.
pub(crate) const ELIXIR_STRUCT_KEY: &str = "__struct__";

/// Encodes `value` as `term_to_binary` would: the version byte `131`, then the term.
pub fn to_vec<T: ?Sized + Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(128);
    to_writer(value, &mut out)?;
    Ok(out)
}

/// Appends `131` and the encoding of `value` to `out` (on error, `out` may hold part of it).
pub fn to_writer<T: ?Sized + Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    out.push(VERSION_MAGIC);
    value.serialize(&mut ser::Serializer::new(out))
}

/// Decodes a `T` from a whole encoded term (version byte, one term, nothing after it; a
/// `COMPRESSED` term is inflated first). Strings and bytes are borrowed from `input` where `T`
/// asks for `&str`/`&[u8]`.
pub fn from_slice<'de, T: Deserialize<'de>>(input: &'de [u8]) -> Result<T, Error> {
    let malformed = |kind, at| Error::at(ErrorKind::Malformed(kind), at);
    match input {
        [] => Err(malformed(DecodeErrorKind::UnexpectedEnd { needed: 1 }, 0)),
        [VERSION_MAGIC, COMPRESSED, ..] => {
            let declared = match input.get(2..6) {
                Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
                None => return Err(malformed(DecodeErrorKind::UnexpectedEnd { needed: 6 - input.len() }, input.len())),
            };
            if declared > MAX_DECOMPRESSED_SIZE {
                return Err(malformed(DecodeErrorKind::DecompressedTooLarge { declared }, 1));
            }
            let (inflated, used) = super::decode::inflate(&input[6..], declared).map_err(|k| malformed(k, 1))?;
            if 6 + used != input.len() {
                let count = input.len() - 6 - used;
                return Err(malformed(DecodeErrorKind::TrailingBytes { count }, 6 + used));
            }
            let mut d = de::Deserializer::new(&inflated, None, 0);
            finish(T::deserialize(&mut d), &d, inflated.len())
        }
        [VERSION_MAGIC, ..] => {
            let mut d = de::Deserializer::new(input, Some(input), 1);
            finish(T::deserialize(&mut d), &d, input.len())
        }
        [v, ..] => Err(malformed(DecodeErrorKind::BadVersion(*v), 0)),
    }
}

fn finish<T>(r: Result<T, Error>, d: &de::Deserializer<'_, '_>, len: usize) -> Result<T, Error> {
    let v = r.map_err(|e| e.or_at(d.position()))?;
    if d.position() != len {
        let count = len - d.position();
        return Err(Error::at(ErrorKind::Malformed(DecodeErrorKind::TrailingBytes { count }), d.position()));
    }
    Ok(v)
}

/// The [`Term`] for `value` (what [`crate::term::decode`] makes of [`to_vec`]'s bytes).
pub fn to_term<T: ?Sized + Serialize>(value: &T) -> Result<Term, Error> {
    let bytes = bytes::Bytes::from(to_vec(value)?);
    Ok(super::decode_bytes(bytes)?)
}

/// Reads a `T` from a term; errors carry the path but no byte offset.
pub fn from_term<T: DeserializeOwned>(term: &Term) -> Result<T, Error> {
    from_slice(&super::encode(term)).map_err(Error::without_offset)
}

#[cfg(test)]
mod tests;
