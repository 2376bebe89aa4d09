//! Atoms: short UTF-8 names, compared by their text.
//!
//! An Erlang atom is at most 255 *characters* (OTP "Atoms" in the Efficiency Guide, and
//! `erl_ext_dist`: ATOM_UTF8_EXT carries up to 255 characters, so up to 1020 bytes).
//!
//! Representation: atoms up to [`INLINE_CAP`] bytes live inline (no allocation, which covers
//! nearly every atom on the wire: `'$gen_call'`, `ok`, most node names), longer ones share an
//! `Arc<str>`. An `Atom` is 24 bytes either way: the inline length doubles as the tag. There is deliberately no global intern table: a peer can send any number of
//! distinct atoms, and a table would either grow without bound or need a lock on every message.
//! Comparing two atoms is a short byte comparison.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Maximum number of characters (Unicode scalar values) in an atom, as in BEAM.
pub const MAX_ATOM_CHARS: usize = 255;
/// Maximum number of UTF-8 bytes an atom can take (255 characters of up to 4 bytes).
pub const MAX_ATOM_BYTES: usize = MAX_ATOM_CHARS * 4;
/// Atoms of at most this many bytes are stored inline.
pub const INLINE_CAP: usize = 23;

/// An Erlang atom.
#[derive(Clone)]
pub struct Atom(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: InlineLen, buf: [u8; INLINE_CAP] },
    Heap(Arc<str>),
}

/// The length of an inline atom, `0..=INLINE_CAP`: an enum rather than a `u8` so that its
/// unused values can tell `Repr::Heap` apart, and `Repr` needs no tag byte of its own.
#[derive(Clone, Copy)]
#[repr(u8)]
enum InlineLen {
    L0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
    L16,
    L17,
    L18,
    L19,
    L20,
    L21,
    L22,
    L23,
}

impl InlineLen {
    /// `n.min(INLINE_CAP)` as an `InlineLen` (compiles to that `min`).
    #[inline]
    fn new(n: usize) -> InlineLen {
        use InlineLen::*;
        match n {
            0 => L0,
            1 => L1,
            2 => L2,
            3 => L3,
            4 => L4,
            5 => L5,
            6 => L6,
            7 => L7,
            8 => L8,
            9 => L9,
            10 => L10,
            11 => L11,
            12 => L12,
            13 => L13,
            14 => L14,
            15 => L15,
            16 => L16,
            17 => L17,
            18 => L18,
            19 => L19,
            20 => L20,
            21 => L21,
            22 => L22,
            _ => L23,
        }
    }
}

const _: () = assert!(InlineLen::L23 as usize == INLINE_CAP);
const _: () = assert!(std::mem::size_of::<Atom>() == 24);

/// The text given for an atom is too long to be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomTooLong {
    /// Number of characters in the rejected text.
    pub chars: usize,
}

impl fmt::Display for AtomTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "atom of {} characters exceeds the limit of {MAX_ATOM_CHARS}", self.chars)
    }
}

impl std::error::Error for AtomTooLong {}

impl Atom {
    /// Makes an atom, checking the 255-character limit.
    pub fn try_new(s: &str) -> Result<Atom, AtomTooLong> {
        if s.len() > MAX_ATOM_CHARS {
            let chars = s.chars().count();
            if chars > MAX_ATOM_CHARS {
                return Err(AtomTooLong { chars });
            }
        }
        Ok(Self::new_unchecked(s))
    }

    /// The atom whose UTF-8 text is the first `len` bytes of `window` (`len <= INLINE_CAP`),
    /// or `None` if they are not valid UTF-8. The decoder's path for short atoms: it copies
    /// the whole fixed-size window rather than `len` bytes into a zeroed buffer, so the bytes
    /// of an inline atom past its length are arbitrary; nothing reads them (`as_str` stops
    /// at the length, and equality, order and hashing go through it).
    #[inline]
    pub(crate) fn from_utf8_window(window: &[u8; INLINE_CAP], len: usize) -> Option<Atom> {
        let text = window.get(..len)?;
        if !text.is_ascii() {
            std::str::from_utf8(text).ok()?;
        }
        Some(Atom(Repr::Inline { len: InlineLen::new(len), buf: *window }))
    }

    /// Makes an atom from text the caller knows is at most 255 characters.
    fn new_unchecked(s: &str) -> Atom {
        if s.len() <= INLINE_CAP {
            let mut buf = [0u8; INLINE_CAP];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            Atom(Repr::Inline { len: InlineLen::new(s.len()), buf })
        } else {
            Atom(Repr::Heap(Arc::from(s)))
        }
    }

    /// Makes an atom from text.
    ///
    /// # Panics
    /// If `s` has more than 255 characters; use [`Atom::try_new`] for untrusted text.
    pub fn new(s: &str) -> Atom {
        match Self::try_new(s) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }

    /// The atom's text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: `Inline` is made by `new_unchecked`, which copies the bytes of a `&str`
            // whole (`len` is that str's length), and by `from_utf8_window`, which checks that
            // its first `len` bytes are UTF-8; so `buf[..len]` is valid UTF-8.
            Repr::Inline { len, buf } => unsafe { std::str::from_utf8_unchecked(&buf[..*len as u8 as usize]) },
            Repr::Heap(s) => s,
        }
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Atom) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Atom {}

impl PartialEq<str> for Atom {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for Atom {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Ord for Atom {
    /// Atoms compare by their text, byte-wise on UTF-8, as BEAM compares them.
    fn cmp(&self, other: &Atom) -> Ordering {
        self.as_str().as_bytes().cmp(other.as_str().as_bytes())
    }
}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Atom) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Atom {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Borrow<str> for Atom {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Atom({:?})", self.as_str())
    }
}

impl From<&str> for Atom {
    /// # Panics
    /// If `s` has more than 255 characters.
    fn from(s: &str) -> Atom {
        Atom::new(s)
    }
}

impl From<String> for Atom {
    fn from(s: String) -> Atom {
        Atom::new(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_compare_by_text() {
        let short = Atom::new("ok");
        let long = Atom::new("a_rather_long_atom_that_does_not_fit_inline");
        assert_eq!(short.as_str(), "ok");
        assert_eq!(long.as_str(), "a_rather_long_atom_that_does_not_fit_inline");
        assert!(short > Atom::new("alpha"));
        assert_eq!(long.clone(), Atom::from("a_rather_long_atom_that_does_not_fit_inline"));
    }

    #[test]
    fn limit_is_characters_not_bytes() {
        let s: String = "é".repeat(255);
        assert!(Atom::try_new(&s).is_ok());
        let s: String = "é".repeat(256);
        assert_eq!(Atom::try_new(&s), Err(AtomTooLong { chars: 256 }));
    }
}
