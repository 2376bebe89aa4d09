//! `Deserialize` values straight from External Term Format bytes, without building a
//! [`crate::term::Term`]: the type drives a cursor over the bytes, strings and byte slices are
//! borrowed from the input when the type asks for `&str`/`&[u8]` (uncompressed input only).
//!
//! The checks are those of `term::decode` (`erl_ext_dist`, BEAM's `binary_to_term`): atoms are
//! at most 255 characters of valid UTF-8 (or Latin-1 for the old atom tags), floats finite,
//! bignums at most [`MAX_BIG_BYTES`]; and so are its limits: a container may declare no more
//! elements than bytes remain, [`MAX_TERM_ELEMENTS`] in all, nesting at most
//! [`MAX_TERM_DEPTH`] deep. Values the type ignores (unknown map keys) and [`crate::term::Term`]
//! fields are read by `term::decode` itself. One check is left to the type: duplicate keys of a
//! map are not looked for (a struct reports a duplicate field, as serde does; a `HashMap`
//! keeps the last value).

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::error::{Error, ErrorKind, Segment};
use super::{ATOM_TOKEN, ELIXIR_STRUCT_KEY, TERM_TOKEN};
use crate::term::cursor::Cursor;
use crate::term::decode::{decode_body_at, parse_float_text};
use crate::term::tags::*;
use crate::term::{DecodeErrorKind, MAX_ATOM_CHARS, MAX_BIG_BYTES, MAX_TERM_DEPTH, MAX_TERM_ELEMENTS};

type Result<T> = std::result::Result<T, Error>;

/// A cursor over one encoded term (after the version byte).
pub(crate) struct Deserializer<'de, 'a> {
    c: Cursor<'a>,
    /// The same bytes with the input's lifetime, when they are the caller's input (not an
    /// inflated `COMPRESSED` payload): strings can then be borrowed.
    borrowed: Option<&'de [u8]>,
    depth: usize,
    elements: usize,
}

/// Text read from the input: borrowed for the input's lifetime, for the cursor's, or owned
/// (Latin-1 converted to UTF-8).
enum Text<'de, 'a> {
    Borrowed(&'de str),
    Transient(&'a str),
    Owned(String),
}

impl Text<'_, '_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Transient(s) => s,
            Text::Owned(s) => s,
        }
    }
}

fn visit_text<'de, V: Visitor<'de>>(visitor: V, t: Text<'de, '_>) -> Result<V::Value> {
    match t {
        Text::Borrowed(s) => visitor.visit_borrowed_str(s),
        Text::Transient(s) => visitor.visit_str(s),
        Text::Owned(s) => visitor.visit_string(s),
    }
}

/// An integer read from the input: sign and magnitude, `None` beyond 128 bits.
#[derive(Clone, Copy)]
struct Int {
    negative: bool,
    magnitude: Option<u128>,
}

impl Int {
    fn small(v: i64) -> Int {
        Int { negative: v < 0, magnitude: Some(v.unsigned_abs() as u128) }
    }

    fn get<T: TryFrom<i128> + TryFrom<u128>>(self) -> Option<T> {
        let m = self.magnitude?;
        if self.negative {
            if m <= 1u128 << 127 { T::try_from((m as i128).wrapping_neg()).ok() } else { None }
        } else {
            T::try_from(m).ok()
        }
    }

    fn describe(self) -> String {
        match (self.get::<i128>(), self.get::<u128>()) {
            (Some(v), _) => format!("the integer {v}"),
            (None, Some(v)) => format!("the integer {v}"),
            _ => "an integer beyond 128 bits".to_string(),
        }
    }
}

const NIL_ATOM: &str = "nil";
const UNDEFINED_ATOM: &str = "undefined";

impl<'de, 'a> Deserializer<'de, 'a> {
    /// A cursor at the start of `buf`, which must be the caller's input (`borrowed` is the
    /// same slice) or not (`None`, strings are then copied).
    pub(crate) fn new(buf: &'a [u8], borrowed: Option<&'de [u8]>, pos: usize) -> Self {
        Deserializer { c: Cursor::new(buf, pos), borrowed, depth: 0, elements: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.c.pos
    }

    fn malformed(&self, at: usize, kind: DecodeErrorKind) -> Error {
        Error::at(ErrorKind::Malformed(kind), at)
    }

    /// `n` bytes of text, borrowed from the input when it is the caller's.
    fn text(&mut self, n: usize, at: usize, utf8_error: DecodeErrorKind) -> Result<Text<'de, 'a>> {
        let start = self.c.pos;
        let bytes = self.c.take(n)?;
        // the same bytes, checked once: with the input's lifetime when they are the input
        let t = match self.borrowed.and_then(|b| b.get(start..start + n)) {
            Some(b) => std::str::from_utf8(b).map(Text::Borrowed),
            None => std::str::from_utf8(bytes).map(Text::Transient),
        };
        t.map_err(|_| self.malformed(at, utf8_error))
    }

    /// A container of `n` elements opened at `at`: each element takes at least one byte, so
    /// no more may be declared than bytes remain, and [`MAX_TERM_ELEMENTS`] in all.
    fn claim(&mut self, n: usize, at: usize) -> Result<()> {
        if n > self.c.remaining() {
            return Err(
                self.malformed(at, DecodeErrorKind::TooManyElements { declared: n, available: self.c.remaining() })
            );
        }
        self.count(n, at)
    }

    /// Counts `n` elements whose bytes are already read (a `STRING_EXT`'s characters) against
    /// [`MAX_TERM_ELEMENTS`], as the `Term` decoder does.
    fn count(&mut self, n: usize, at: usize) -> Result<()> {
        self.elements = self.elements.saturating_add(n);
        if self.elements > MAX_TERM_ELEMENTS {
            return Err(self.malformed(at, DecodeErrorKind::TooManyTermElements { declared: self.elements }));
        }
        Ok(())
    }

    fn enter(&mut self, at: usize) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_TERM_DEPTH {
            return Err(self.malformed(at, DecodeErrorKind::TooDeep));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// A description of the term at `at` for an error ("the atom `foo`", "a list").
    fn describe(&self, at: usize) -> String {
        let mut x = Deserializer::<'de, 'a> { c: Cursor::new(self.c.buf, at), borrowed: None, depth: 0, elements: 0 };
        let Ok(tag) = x.c.u8() else { return "the end of the input".to_string() };
        let d = match tag {
            SMALL_INTEGER_EXT | INTEGER_EXT | SMALL_BIG_EXT | LARGE_BIG_EXT => {
                x.c.pos = at;
                x.int().map(|i| i.describe()).ok()
            }
            NEW_FLOAT_EXT => x.c.array::<8>().ok().map(|b| format!("the float {:?}", f64::from_be_bytes(b))),
            FLOAT_EXT => Some("a float".to_string()),
            SMALL_ATOM_UTF8_EXT | ATOM_UTF8_EXT | ATOM_EXT | SMALL_ATOM_EXT => {
                x.c.pos = at;
                x.atom().ok().flatten().map(|t| format!("the atom `{}`", t.as_str()))
            }
            ATOM_CACHE_REF => Some("an atom cache reference".to_string()),
            BINARY_EXT => {
                x.c.u32().ok().map(|n| match x.c.take(n as usize).ok().and_then(|b| std::str::from_utf8(b).ok()) {
                    Some(s) if s.chars().count() <= 40 => format!("the binary {s:?}"),
                    _ => format!("a binary of {n} bytes"),
                })
            }
            BIT_BINARY_EXT => Some("a bitstring".to_string()),
            NIL_EXT => Some("the empty list []".to_string()),
            STRING_EXT => x.c.u16().ok().map(|n| format!("a list of {n} small integers")),
            LIST_EXT => {
                x.c.u32()
                    .ok()
                    .map(|n| if n == 1 { "a list of 1 element".into() } else { format!("a list of {n} elements") })
            }
            SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => {
                let n = if tag == SMALL_TUPLE_EXT { x.c.u8().map(|n| n as u32) } else { x.c.u32() };
                n.ok().map(|n| match x.atom().ok().flatten() {
                    Some(t) => format!("{} tagged `{}`", tuple_of(n as usize), t.as_str()),
                    None => tuple_of(n as usize).into_owned(),
                })
            }
            MAP_EXT => {
                x.c.u32().ok().map(|n| if n == 1 { "a map of 1 entry".into() } else { format!("a map of {n} entries") })
            }
            NEW_PID_EXT | PID_EXT => Some("a pid".to_string()),
            NEW_PORT_EXT | V4_PORT_EXT | PORT_EXT => Some("a port".to_string()),
            NEWER_REFERENCE_EXT | NEW_REFERENCE_EXT | REFERENCE_EXT => Some("a reference".to_string()),
            NEW_FUN_EXT | EXPORT_EXT => Some("a fun".to_string()),
            _ => None,
        };
        d.unwrap_or_else(|| format!("a term with tag {tag}"))
    }

    fn mismatch(&self, expected: &'static str, at: usize) -> Error {
        Error::mismatch(expected, self.describe(at), at)
    }

    /// Reads an atom if there is one at the cursor (`None`, cursor unmoved, otherwise).
    fn atom(&mut self) -> Result<Option<Text<'de, 'a>>> {
        let at = self.c.pos;
        let tag = self.c.peek()?;
        let (n, utf8) = match tag {
            SMALL_ATOM_UTF8_EXT | SMALL_ATOM_EXT => {
                self.c.pos += 1;
                (self.c.u8()? as usize, tag == SMALL_ATOM_UTF8_EXT)
            }
            ATOM_UTF8_EXT | ATOM_EXT => {
                self.c.pos += 1;
                (self.c.u16()? as usize, tag == ATOM_UTF8_EXT)
            }
            ATOM_CACHE_REF => return Err(self.malformed(at, DecodeErrorKind::AtomCacheRefWithoutCache)),
            _ => return Ok(None),
        };
        if utf8 {
            let t = self.text(n, at, DecodeErrorKind::InvalidAtomUtf8)?;
            let s = t.as_str();
            if s.len() > MAX_ATOM_CHARS {
                let chars = s.chars().count();
                if chars > MAX_ATOM_CHARS {
                    return Err(self.malformed(at, DecodeErrorKind::AtomTooLong { chars }));
                }
            }
            return Ok(Some(t));
        }
        // Latin-1: every byte is the code point of the same value
        let bytes = self.c.take(n)?;
        if n > MAX_ATOM_CHARS {
            return Err(self.malformed(at, DecodeErrorKind::AtomTooLong { chars: n }));
        }
        if bytes.is_ascii() {
            self.c.pos -= n;
            return self.text(n, at, DecodeErrorKind::InvalidAtomUtf8).map(Some);
        }
        Ok(Some(Text::Owned(bytes.iter().map(|&b| b as char).collect())))
    }

    /// The text of the atom at `at`, for an error message.
    fn atom_name(&self, at: usize) -> String {
        let mut c = Deserializer::new(self.c.buf, None, at);
        match c.atom() {
            Ok(Some(t)) => t.as_str().to_string(),
            _ => "?".to_string(),
        }
    }

    /// `true` (and consumed) when the cursor is at the atom `name`.
    fn eat_atom(&mut self, names: &[&str]) -> Result<bool> {
        // the common case without decoding the atom: an ASCII name under any atom tag
        let rest = self.c.buf.get(self.c.pos..).unwrap_or(&[]);
        let header = match rest {
            [SMALL_ATOM_UTF8_EXT | SMALL_ATOM_EXT, n, ..] => Some((2, *n as usize)),
            [ATOM_UTF8_EXT | ATOM_EXT, a, b, ..] => Some((3, u16::from_be_bytes([*a, *b]) as usize)),
            _ => None,
        };
        let Some((h, n)) = header else { return Ok(false) };
        if let Some(text) = rest.get(h..h + n) {
            if text.is_ascii() {
                let hit = names.iter().any(|name| name.as_bytes() == text);
                if hit {
                    self.c.pos += h + n;
                }
                return Ok(hit);
            }
        }
        let at = self.c.pos;
        match self.atom()? {
            Some(t) if names.contains(&t.as_str()) => Ok(true),
            _ => {
                self.c.pos = at;
                Ok(false)
            }
        }
    }

    /// An integer of any size at the cursor, or a mismatch.
    fn int_or(&mut self, expected: &'static str) -> Result<Int> {
        let at = self.c.pos;
        match self.c.peek()? {
            SMALL_INTEGER_EXT | INTEGER_EXT | SMALL_BIG_EXT | LARGE_BIG_EXT => self.int(),
            _ => Err(self.mismatch(expected, at)),
        }
    }

    /// The integer at the cursor (whose tag is an integer tag).
    fn int(&mut self) -> Result<Int> {
        let at = self.c.pos;
        let tag = self.c.u8()?;
        match tag {
            SMALL_INTEGER_EXT => Ok(Int::small(self.c.u8()? as i64)),
            INTEGER_EXT => Ok(Int::small(self.c.u32()? as i32 as i64)),
            _ => {
                let n = if tag == SMALL_BIG_EXT { self.c.u8()? as usize } else { self.c.u32()? as usize };
                if n > MAX_BIG_BYTES {
                    return Err(self.malformed(at, DecodeErrorKind::BigTooLarge { bytes: n }));
                }
                // BEAM treats any non-zero sign byte as negative
                let negative = self.c.u8()? != 0;
                let digits = self.c.take(n)?;
                let mut len = digits.len();
                while len > 0 && digits[len - 1] == 0 {
                    len -= 1;
                }
                let magnitude = (len <= 16)
                    .then(|| digits[..len].iter().enumerate().fold(0u128, |m, (i, &b)| m | (b as u128) << (8 * i)));
                Ok(Int { negative: negative && magnitude != Some(0), magnitude })
            }
        }
    }

    fn int_as<T: TryFrom<i128> + TryFrom<u128>>(&mut self, expected: &'static str) -> Result<T> {
        let at = self.c.pos;
        let i = self.int_or(expected)?;
        i.get().ok_or_else(|| Error::mismatch(expected, i.describe(), at))
    }

    fn float(&mut self) -> Result<f64> {
        let at = self.c.pos;
        match self.c.peek()? {
            NEW_FLOAT_EXT => {
                self.c.pos += 1;
                let f = f64::from_be_bytes(self.c.array()?);
                if !f.is_finite() {
                    return Err(self.malformed(at, DecodeErrorKind::NonFiniteFloat));
                }
                Ok(f)
            }
            FLOAT_EXT => {
                self.c.pos += 1;
                match parse_float_text(self.c.take(31)?) {
                    Some(f) if f.is_finite() => Ok(f),
                    Some(_) => Err(self.malformed(at, DecodeErrorKind::NonFiniteFloat)),
                    None => Err(self.malformed(at, DecodeErrorKind::BadFloatText)),
                }
            }
            SMALL_INTEGER_EXT | INTEGER_EXT | SMALL_BIG_EXT | LARGE_BIG_EXT => {
                let i = self.int()?;
                match (i.get::<i128>(), i.get::<u128>()) {
                    (Some(v), _) => Ok(v as f64),
                    (None, Some(v)) => Ok(v as f64),
                    _ => Err(Error::mismatch("a float", i.describe(), at)),
                }
            }
            _ => Err(self.mismatch("a float", at)),
        }
    }

    /// A string: a UTF-8 binary, or a charlist (`[]`, `STRING_EXT`, a proper list of code
    /// points).
    #[inline]
    fn string(&mut self, expected: &'static str) -> Result<Text<'de, 'a>> {
        // the common case first: a complete ASCII binary (Elixir strings mostly are)
        if let Some(t) = self.ascii_binary() {
            return Ok(t);
        }
        let at = self.c.pos;
        match self.c.peek()? {
            BINARY_EXT => {
                self.c.pos += 1;
                let n = self.c.u32()? as usize;
                self.text(n, at, DecodeErrorKind::UnexpectedTag { expected: "UTF-8 text", tag: BINARY_EXT })
                    .map_err(|_| Error::mismatch(expected, "a binary that is not UTF-8".to_string(), at))
            }
            NIL_EXT => {
                self.c.pos += 1;
                Ok(Text::Transient(""))
            }
            STRING_EXT => {
                self.c.pos += 1;
                let n = self.c.u16()? as usize;
                let bytes = self.c.take(n)?;
                self.count(n, at)?;
                if bytes.is_ascii() {
                    self.c.pos -= n;
                    return self.text(n, at, DecodeErrorKind::InvalidAtomUtf8);
                }
                Ok(Text::Owned(bytes.iter().map(|&b| b as char).collect()))
            }
            LIST_EXT => {
                self.c.pos += 1;
                let n = self.c.u32()? as usize;
                self.claim(n, at)?;
                let mut s = String::with_capacity(n);
                for _ in 0..n {
                    let c_at = self.c.pos;
                    let c = self.int_or("a character code")?.get::<u32>().and_then(char::from_u32);
                    match c {
                        Some(c) => s.push(c),
                        None => return Err(self.mismatch(expected, c_at)),
                    }
                }
                if self.c.peek()? != NIL_EXT {
                    return Err(Error::mismatch(expected, "an improper list".to_string(), at));
                }
                self.c.pos += 1;
                Ok(Text::Owned(s))
            }
            _ => Err(self.mismatch(expected, at)),
        }
    }

    /// A `BINARY_EXT` of ASCII text complete at the cursor, read; `None` (cursor unmoved)
    /// for anything else, which the general path reads or reports.
    #[inline(always)]
    fn ascii_binary(&mut self) -> Option<Text<'de, 'a>> {
        let buf: &'a [u8] = self.c.buf;
        let (&BINARY_EXT, rest) = buf.get(self.c.pos..)?.split_first()? else { return None };
        let n = u32::from_be_bytes(*rest.first_chunk::<4>()?) as usize;
        let text = rest.get(4..)?.get(..n)?;
        if !text.is_ascii() {
            return None;
        }
        let start = self.c.pos + 5;
        self.c.pos = start + n;
        // SAFETY: `text` was just checked to be ASCII, which is valid UTF-8; `borrowed`, when
        // there, is the same slice as `buf` with the input's lifetime, so the same bytes.
        Some(match self.borrowed.and_then(|b| b.get(start..start + n)) {
            Some(b) => Text::Borrowed(unsafe { std::str::from_utf8_unchecked(b) }),
            None => Text::Transient(unsafe { std::str::from_utf8_unchecked(text) }),
        })
    }

    /// The extent of the term at the cursor, read (and checked) by `term::decode`.
    fn skip_term(&mut self) -> Result<(usize, usize)> {
        let start = self.c.pos;
        let (_, end) = decode_body_at(self.c.buf, start)?;
        self.c.pos = end;
        Ok((start, end))
    }

    /// A tuple header at the cursor: its arity, or `None` (cursor unmoved).
    fn tuple_header(&mut self) -> Result<Option<usize>> {
        Ok(match self.c.peek()? {
            SMALL_TUPLE_EXT => {
                self.c.pos += 1;
                Some(self.c.u8()? as usize)
            }
            LARGE_TUPLE_EXT => {
                self.c.pos += 1;
                Some(self.c.u32()? as usize)
            }
            _ => None,
        })
    }

    fn visit_list<V: Visitor<'de>>(&mut self, visitor: V, expected: &'static str) -> Result<V::Value> {
        let at = self.c.pos;
        match self.c.peek()? {
            NIL_EXT => {
                self.c.pos += 1;
                visitor.visit_seq(Elements { de: self, left: 0, index: 0 })
            }
            STRING_EXT => {
                self.c.pos += 1;
                let n = self.c.u16()? as usize;
                let bytes = self.c.take(n)?;
                self.count(n, at)?;
                self.enter(at)?;
                let mut seq = Bytes { bytes, index: 0, at: at + 3 };
                let v = visitor.visit_seq(&mut seq)?;
                self.leave();
                if seq.index != n {
                    return Err(de::Error::invalid_length(n, &"fewer elements"));
                }
                Ok(v)
            }
            LIST_EXT => {
                self.c.pos += 1;
                let n = self.c.u32()? as usize;
                self.claim(n, at)?;
                self.enter(at)?;
                let mut seq = Elements { de: self, left: n, index: 0 };
                let v = visitor.visit_seq(&mut seq)?;
                if seq.left != 0 {
                    return Err(de::Error::invalid_length(n, &"fewer elements"));
                }
                self.leave();
                let tail_at = self.c.pos;
                if self.c.peek()? != NIL_EXT {
                    return Err(Error::mismatch(
                        expected,
                        format!("an improper list ending in {}", self.describe(tail_at)),
                        tail_at,
                    ));
                }
                self.c.pos += 1;
                Ok(v)
            }
            _ => Err(self.mismatch(expected, at)),
        }
    }

    fn visit_map<V: Visitor<'de>>(
        &mut self,
        visitor: V,
        expected: &'static str,
        elixir_struct: Option<&'static str>,
    ) -> Result<V::Value> {
        let at = self.c.pos;
        if self.c.peek()? != MAP_EXT {
            return Err(self.mismatch(expected, at));
        }
        self.c.pos += 1;
        let n = self.c.u32()? as usize;
        self.claim(n.saturating_mul(2), at)?;
        self.enter(at)?;
        let mut map = Entries { de: self, left: n, key_at: at, elixir_struct };
        let v = visitor.visit_map(&mut map)?;
        if map.left != 0 {
            return Err(de::Error::invalid_length(n, &"fewer entries"));
        }
        self.leave();
        Ok(v)
    }

    fn visit_tuple<V: Visitor<'de>>(&mut self, len: usize, visitor: V, expected: &'static str) -> Result<V::Value> {
        let at = self.c.pos;
        match self.tuple_header()? {
            Some(n) if n == len => {
                self.claim(n, at)?;
                self.enter(at)?;
                let mut seq = Elements { de: self, left: n, index: 0 };
                let v = visitor.visit_seq(&mut seq)?;
                if seq.left != 0 {
                    return Err(de::Error::invalid_length(n, &"fewer elements"));
                }
                self.leave();
                Ok(v)
            }
            _ => {
                self.c.pos = at;
                Err(self.mismatch(expected, at))
            }
        }
    }
}

/// "a tuple of N elements" for the common small N without allocating.
fn tuple_of(len: usize) -> std::borrow::Cow<'static, str> {
    const NAMES: [&str; 9] = [
        "the empty tuple {}",
        "a tuple of 1 element",
        "a tuple of 2 elements",
        "a tuple of 3 elements",
        "a tuple of 4 elements",
        "a tuple of 5 elements",
        "a tuple of 6 elements",
        "a tuple of 7 elements",
        "a tuple of 8 elements",
    ];
    match NAMES.get(len) {
        Some(s) => (*s).into(),
        None => format!("a tuple of {len} elements").into(),
    }
}

macro_rules! int_hint {
    ($($method:ident $visit:ident $t:ty,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            let v: $t = self.int_as(concat!("an integer (", stringify!($t), ")"))?;
            visitor.$visit(v)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let at = self.c.pos;
        match self.c.peek()? {
            SMALL_INTEGER_EXT | INTEGER_EXT | SMALL_BIG_EXT | LARGE_BIG_EXT => {
                let i = self.int()?;
                if let Some(v) = i.get::<u64>() {
                    visitor.visit_u64(v)
                } else if let Some(v) = i.get::<i64>() {
                    visitor.visit_i64(v)
                } else if let Some(v) = i.get::<i128>() {
                    visitor.visit_i128(v)
                } else if let Some(v) = i.get::<u128>() {
                    visitor.visit_u128(v)
                } else {
                    Err(Error::at(ErrorKind::Unrepresentable("an integer beyond 128 bits".into()), at))
                }
            }
            NEW_FLOAT_EXT | FLOAT_EXT => visitor.visit_f64(self.float()?),
            SMALL_ATOM_UTF8_EXT | ATOM_UTF8_EXT | ATOM_EXT | SMALL_ATOM_EXT | ATOM_CACHE_REF => {
                let Some(t) = self.atom()? else { unreachable!("an atom tag") };
                match t.as_str() {
                    "true" => visitor.visit_bool(true),
                    "false" => visitor.visit_bool(false),
                    NIL_ATOM | UNDEFINED_ATOM => visitor.visit_none(),
                    _ => visit_text(visitor, t),
                }
            }
            BINARY_EXT => {
                self.c.pos += 1;
                let n = self.c.u32()? as usize;
                let start = self.c.pos;
                let bytes = self.c.take(n)?;
                // text when it is UTF-8 (a String field in an untagged enum), else bytes
                match self.borrowed.and_then(|b| b.get(start..start + n)) {
                    Some(b) => match std::str::from_utf8(b) {
                        Ok(s) => visitor.visit_borrowed_str(s),
                        Err(_) => visitor.visit_borrowed_bytes(b),
                    },
                    None => match std::str::from_utf8(bytes) {
                        Ok(s) => visitor.visit_str(s),
                        Err(_) => visitor.visit_bytes(bytes),
                    },
                }
            }
            NIL_EXT | STRING_EXT | LIST_EXT => self.visit_list(visitor, "a proper list"),
            SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => {
                let n = self.tuple_header()?.unwrap_or(0);
                self.c.pos = at;
                self.visit_tuple(n, visitor, "a tuple")
            }
            MAP_EXT => self.visit_map(visitor, "a map", None),
            tag @ (NEW_PID_EXT | PID_EXT | NEW_PORT_EXT | V4_PORT_EXT | PORT_EXT | NEWER_REFERENCE_EXT
            | NEW_REFERENCE_EXT | REFERENCE_EXT | NEW_FUN_EXT | EXPORT_EXT | BIT_BINARY_EXT) => {
                // well formed? then it only lacks a place in serde's data model
                self.skip_term()?;
                let _ = tag;
                Err(Error::at(
                    ErrorKind::Unrepresentable(
                        format!(
                            "{} has no place in serde's data model: give this field a type from erlnode::term \
                             (Pid, Reference, Port, Term)",
                            self.describe(at)
                        )
                        .into(),
                    ),
                    at,
                ))
            }
            _ => {
                self.skip_term()?;
                Err(self.mismatch("a term", at))
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let at = self.c.pos;
        match self.atom()? {
            Some(t) if t.as_str() == "true" => visitor.visit_bool(true),
            Some(t) if t.as_str() == "false" => visitor.visit_bool(false),
            _ => Err(self.mismatch("a boolean (true or false)", at)),
        }
    }

    int_hint! {
        deserialize_i8 visit_i8 i8,
        deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64,
        deserialize_i128 visit_i128 i128,
        deserialize_u8 visit_u8 u8,
        deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32,
        deserialize_u64 visit_u64 u64,
        deserialize_u128 visit_u128 u128,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f32(self.float()? as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let at = self.c.pos;
        let t = self.string("a one-character binary (char)")?;
        let mut chars = t.as_str().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(self.mismatch("a one-character binary (char)", at)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let t = self.string("a UTF-8 binary or a charlist (string)")?;
        visit_text(visitor, t)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let at = self.c.pos;
        match self.c.peek()? {
            BINARY_EXT => {
                self.c.pos += 1;
                let n = self.c.u32()? as usize;
                let start = self.c.pos;
                let bytes = self.c.take(n)?;
                match self.borrowed.and_then(|b| b.get(start..start + n)) {
                    Some(b) => visitor.visit_borrowed_bytes(b),
                    None => visitor.visit_bytes(bytes),
                }
            }
            NIL_EXT => {
                self.c.pos += 1;
                visitor.visit_bytes(&[])
            }
            STRING_EXT => {
                self.c.pos += 1;
                let n = self.c.u16()? as usize;
                let bytes = self.c.take(n)?;
                visitor.visit_bytes(bytes)
            }
            _ => Err(self.mismatch("a binary (bytes)", at)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.eat_atom(&[NIL_ATOM, UNDEFINED_ATOM])? { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let at = self.c.pos;
        match self.tuple_header()? {
            Some(0) => visitor.visit_unit(),
            _ => Err(self.mismatch("the empty tuple {} (unit)", at)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value> {
        let at = self.c.pos;
        if self.eat_atom(&[name])? {
            visitor.visit_unit()
        } else {
            Err(Error::mismatch(format!("the atom `{name}`"), self.describe(at), at))
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value> {
        if name == TERM_TOKEN {
            let (start, end) = self.skip_term()?;
            return match self.borrowed.and_then(|b| b.get(start..end)) {
                Some(b) => visitor.visit_borrowed_bytes(b),
                None => visitor.visit_bytes(&self.c.buf[start..end]),
            };
        }
        if name == ATOM_TOKEN {
            let at = self.c.pos;
            return match self.atom()? {
                Some(t) => visit_text(visitor, t),
                None => Err(self.mismatch("an atom", at)),
            };
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.visit_list(visitor, "a proper list")
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        let at = self.c.pos;
        match self.visit_tuple(len, visitor, "") {
            Err(e) if matches!(e.kind(), ErrorKind::Mismatch { expected, .. } if expected.is_empty()) => {
                Err(Error::mismatch(tuple_of(len), self.describe(at), at))
            }
            r => r,
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.visit_map(visitor, "a map", None)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if name.starts_with("Elixir.") {
            self.visit_map(visitor, "a map (an Elixir struct)", Some(name))
        } else {
            self.visit_map(visitor, "a map with atom keys (struct)", None)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        const EXPECTED: &str = "an atom or a tuple tagged with an atom (enum)";
        let at = self.c.pos;
        if let Some(t) = self.atom()? {
            return visitor.visit_enum(Variant { de: self, tag: t, rest: None, at, tag_at: at });
        }
        match self.tuple_header()? {
            Some(n @ 1..) => {
                self.claim(n, at)?;
                let tag_at = self.c.pos;
                match self.atom()? {
                    Some(t) => {
                        self.enter(at)?;
                        let v = visitor.visit_enum(Variant { de: self, tag: t, rest: Some(n - 1), at, tag_at })?;
                        self.leave();
                        Ok(v)
                    }
                    None => Err(self.mismatch(EXPECTED, at)),
                }
            }
            _ => Err(self.mismatch(EXPECTED, at)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let at = self.c.pos;
        if let Some(t) = self.atom()? {
            return visit_text(visitor, t);
        }
        match self.c.peek()? {
            BINARY_EXT => self.deserialize_str(visitor),
            SMALL_INTEGER_EXT | INTEGER_EXT => visitor.visit_u64(self.int_as("an atom (a field or variant name)")?),
            _ => Err(self.mismatch("an atom (a field or variant name)", at)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.skip_term()?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a list or tuple.
struct Elements<'x, 'de, 'a> {
    de: &'x mut Deserializer<'de, 'a>,
    left: usize,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let at = self.de.c.pos;
        let i = self.index;
        self.index += 1;
        seed.deserialize(&mut *self.de).map(Some).map_err(|e| e.or_at(at).within(Segment::Index(i)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The elements of a `STRING_EXT`: small integers.
struct Bytes<'a> {
    bytes: &'a [u8],
    index: usize,
    /// Offset of the first byte.
    at: usize,
}

impl<'de> de::SeqAccess<'de> for &mut Bytes<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let Some(&b) = self.bytes.get(self.index) else { return Ok(None) };
        let i = self.index;
        self.index += 1;
        seed.deserialize(Byte(b)).map(Some).map_err(|e| e.or_at(self.at + i).within(Segment::Index(i)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.bytes.len() - self.index)
    }
}

/// One element of a `STRING_EXT`: the integer `0..=255`.
struct Byte(u8);

impl<'de> de::Deserializer<'de> for Byte {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u8(self.0)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value> {
        if name == TERM_TOKEN {
            // the element as an encoded term of its own: SMALL_INTEGER_EXT
            visitor.visit_bytes(&[SMALL_INTEGER_EXT, self.0])
        } else if name == ATOM_TOKEN {
            Err(Error::mismatch("an atom", format!("the integer {}", self.0), 0))
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_some(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// The entries of a map; for an Elixir struct, its `__struct__` entry is checked and hidden.
struct Entries<'x, 'de, 'a> {
    de: &'x mut Deserializer<'de, 'a>,
    left: usize,
    key_at: usize,
    elixir_struct: Option<&'static str>,
}

impl<'de> de::MapAccess<'de> for Entries<'_, 'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        loop {
            if self.left == 0 {
                return Ok(None);
            }
            self.left -= 1;
            self.key_at = self.de.c.pos;
            if let Some(name) = self.elixir_struct {
                if self.de.eat_atom(&[ELIXIR_STRUCT_KEY])? {
                    let at = self.de.c.pos;
                    if !self.de.eat_atom(&[name])? {
                        let expected = format!("`{name}` (the struct's name)");
                        return Err(Error::mismatch(expected, self.de.describe(at), at)
                            .within(Segment::Key(ELIXIR_STRUCT_KEY.to_string())));
                    }
                    continue;
                }
            }
            let at = self.key_at;
            return seed.deserialize(&mut *self.de).map(Some).map_err(|e| e.or_at(at));
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let at = self.de.c.pos;
        seed.deserialize(&mut *self.de).map_err(|e| e.or_at(at).within(Segment::Key(key_text(self.de, self.key_at))))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// A map key at `at`, as a path segment: an atom's or UTF-8 binary's text, an integer.
fn key_text(de: &Deserializer<'_, '_>, at: usize) -> String {
    let mut c = Deserializer::new(de.c.buf, None, at);
    if let Ok(Some(t)) = c.atom() {
        return t.as_str().to_string();
    }
    c.c.pos = at;
    match c.c.peek() {
        Ok(BINARY_EXT) => match c.string("") {
            Ok(t) => format!("{:?}", t.as_str()),
            Err(_) => "<binary key>".to_string(),
        },
        Ok(SMALL_INTEGER_EXT | INTEGER_EXT | SMALL_BIG_EXT | LARGE_BIG_EXT) => match c.int().map(|i| i.get::<i128>()) {
            Ok(Some(i)) => i.to_string(),
            _ => "<integer key>".to_string(),
        },
        _ => format!("<{}>", de.describe(at)),
    }
}

/// An enum variant: its tag read, the payload (`rest` elements of the tuple) to follow.
struct Variant<'x, 'de, 'a> {
    de: &'x mut Deserializer<'de, 'a>,
    tag: Text<'de, 'a>,
    /// `None` for a bare atom, else the number of tuple elements after the tag.
    rest: Option<usize>,
    at: usize,
    tag_at: usize,
}

impl<'x, 'de, 'a> de::EnumAccess<'de> for Variant<'x, 'de, 'a> {
    type Error = Error;
    type Variant = Payload<'x, 'de, 'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Payload<'x, 'de, 'a>)> {
        let v = match self.tag {
            Text::Borrowed(s) => seed.deserialize(de::value::BorrowedStrDeserializer::<Error>::new(s)),
            Text::Transient(s) => seed.deserialize(s.into_deserializer()),
            Text::Owned(s) => seed.deserialize(s.into_deserializer()),
        }
        .map_err(|e| e.or_at(self.at))?;
        Ok((v, Payload { de: self.de, rest: self.rest, at: self.at, tag_at: self.tag_at }))
    }
}

/// What follows an enum variant's tag.
struct Payload<'x, 'de, 'a> {
    de: &'x mut Deserializer<'de, 'a>,
    rest: Option<usize>,
    at: usize,
    tag_at: usize,
}

impl Payload<'_, '_, '_> {
    /// An error in the payload, with the variant as its path segment.
    fn inside(&self, e: Error) -> Error {
        e.within(Segment::Variant(self.de.atom_name(self.tag_at)))
    }

    fn wrong(&self, expected: impl FnOnce(&str) -> String) -> Error {
        let name = self.de.atom_name(self.tag_at);
        Error::mismatch(expected(&name), self.de.describe(self.at), self.at)
    }
}

impl<'de> de::VariantAccess<'de> for Payload<'_, 'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        match self.rest {
            None => Ok(()),
            Some(_) => Err(self.wrong(|n| format!("the atom `{n}`"))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        match self.rest {
            Some(1) => {
                let at = self.de.c.pos;
                seed.deserialize(&mut *self.de).map_err(|e| self.inside(e.or_at(at)))
            }
            _ => Err(self.wrong(|n| format!("a tuple {{{n}, Value}}"))),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        match self.rest {
            Some(n) if n == len => {
                let mut seq = Elements { de: &mut *self.de, left: n, index: 1 };
                let v = visitor.visit_seq(&mut seq);
                let left = seq.left;
                let v = v.map_err(|e| self.inside(e))?;
                if left != 0 {
                    return Err(self.inside(de::Error::invalid_length(n, &"fewer elements")));
                }
                Ok(v)
            }
            _ => Err(self.wrong(|n| format!("a tuple of {} elements tagged `{n}`", len + 1))),
        }
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value> {
        match self.rest {
            Some(1) => {
                let v = self.de.visit_map(visitor, "a map with atom keys (struct variant)", None);
                v.map_err(|e| self.inside(e))
            }
            _ => Err(self.wrong(|n| format!("a tuple {{{n}, Map}}"))),
        }
    }
}
