//! Decoding the External Term Format (`erts/doc/guides/erl_ext_dist.md`).
//!
//! Accepts every tag a modern node sends and the obsolete ones a peer may still produce
//! (`FLOAT_EXT`, `ATOM_EXT`, `SMALL_ATOM_EXT`, `PID_EXT`, `PORT_EXT`, `REFERENCE_EXT`,
//! `NEW_REFERENCE_EXT`, `NEW_PORT_EXT`); `FUN_EXT` (removed in OTP 23) and `LOCAL_EXT` (only
//! meaningful to the node that wrote it) are typed "unsupported" errors.
//!
//! Where BEAM's `binary_to_term` is strict, so is this decoder (checked against OTP 25/27/29):
//! non-finite floats, duplicate map keys, atoms over 255 characters or with invalid UTF-8,
//! `BIT_BINARY_EXT` with `Bits` outside `1..=8` or an empty payload are rejected. Two deliberate
//! differences: trailing bytes after the term are an error for [`decode`] (BEAM ignores them),
//! and `NEWER_REFERENCE_EXT` with zero id words (which BEAM accepts but never makes) is rejected
//! because [`Reference`] cannot hold it. Normalisations: `STRING_EXT` becomes a list of
//! integers, a `LIST_EXT` tail that is itself a list is spliced in (as
//! [`Term::list_with_tail`]), bignums that fit `i64` become [`Term::Int`], `BIT_BINARY_EXT`
//! with 8 bits becomes a binary and unused trailing bits are cleared.
//!
//! Implementation: a hand-rolled byte cursor, not nom combinators: the decoder must bound its
//! native stack (a peer controls nesting depth), track exact byte offsets for errors, and the
//! per-element loop is the hot path of every received message; nom's combinator style fits
//! none of that without cost. nom is used where it is the clearest tool: the grammar of the
//! obsolete `FLOAT_EXT` text. Two paths decode containers:
//! - containers nested up to `REC_DEPTH` (32) deep recurse: each reserves its elements and
//!   decodes them straight into the vector's spare capacity, the common leaves inline and
//!   runs of numbers in a loop of their own, map keys and values into their pairs. Building
//!   each term where it goes matters: a term built aside and then copied costs a
//!   store-forwarding stall (a bignum list decoded 2.5x slower that way);
//! - deeper containers continue on an explicit stack of open containers ([`Dec::term_iter`]),
//!   so no input can make the decoder recurse more than `REC_DEPTH` levels.
//!
//! Both paths make the same checks in the same order: they accept the same inputs and report
//! the same errors at the same offsets (`decode_iterative` forces the second for the tests
//! and the fuzz target that compare them).
//!
//! Resource bounds: every element takes at least one byte, so an open container may only claim
//! as many elements as bytes remain, counting what enclosing containers already claimed; that
//! caps every preallocation by the input actually present. Nesting is capped by
//! [`MAX_TERM_DEPTH`], bignums by [`MAX_BIG_BYTES`], decompression by [`MAX_DECOMPRESSED_SIZE`].

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use std::cell::RefCell;

use bytes::Bytes;

use super::cursor::Cursor;
use super::tags::*;
use super::{Atom, BigInt, BitBinary, ExportFun, LocalFun, Map, Pid, Port, Reference, Term};
use super::{BIG_INLINE_BYTES, INLINE_CAP, MAX_ATOM_CHARS, MAX_REF_WORDS};

/// Deepest nesting of tuples, lists, maps and fun environments accepted.
///
/// BEAM itself has no limit, but the Rust term model clones, drops, compares and prints terms
/// recursively; this bound keeps those safe on a 2 MiB thread stack (tokio's and the test
/// harness's default) even in debug builds, where they overflow at about 1500 levels.
/// Lists nested through their tails (`[1 | [2 | ...]]`) do not count: they are spliced into
/// one list.
pub const MAX_TERM_DEPTH: usize = 1024;

/// Largest uncompressed size a `COMPRESSED` term may declare (128 MiB).
pub const MAX_DECOMPRESSED_SIZE: usize = 128 << 20;

/// Largest bignum magnitude accepted, in bytes: BEAM's integers are limited to 2^26 bits
/// (`1 bsl (1 bsl 26)` raises `system_limit`), i.e. 8 MiB.
pub const MAX_BIG_BYTES: usize = 1 << 23;

/// Most elements one decode may declare, summed over every container (tuple, list, map, fun
/// free variables) and `STRING_EXT` character in the term.
///
/// Each element is a [`Term`] of about 56 bytes, and costs as little as one byte on the wire
/// (`NIL_EXT`); inside a `COMPRESSED` term, up to [`MAX_DECOMPRESSED_SIZE`] such bytes come
/// from about a thousandth as many. Without a bound a 60 KB compressed term asks for gigabytes.
/// This one (8 Mi elements) keeps one decoded term below about 500 MB.
pub const MAX_TERM_ELEMENTS: usize = 1 << 23;

/// Containers nested up to this deep are decoded by recursion (fast: no frame stack to
/// allocate, elements built in place); deeper ones by the iterative decoder, whose explicit
/// stack keeps the native stack bounded however deep the input goes. Real messages rarely
/// nest past a dozen levels.
const REC_DEPTH: usize = 32;

/// Maps up to this size are checked for duplicate keys pairwise; larger ones through a hash set.
const MAP_PAIRWISE_MAX: usize = 16;

/// Binaries up to this size, decoded from a slice ([`decode`]), are slices of a shared copy of
/// the input around them instead of an allocation each (BEAM keeps binaries under 64 bytes on
/// the process heap, `ERL_ONHEAP_BIN_LIMIT`).
const SMALL_BINARY: usize = 64;

/// Bytes of input copied at a time for small binaries. A small binary kept alive keeps its
/// copy alive: at most this much memory (less when the input is shorter).
const BINARY_WINDOW: usize = 1024;

/// Where decoded binaries come from.
#[derive(Clone, Copy)]
enum Src<'a> {
    /// Zero-copy slices of the input's `Bytes`.
    Slice(&'a Bytes),
    /// Copies: small binaries slice the current [`Window`], larger ones get a buffer each.
    Copy(&'a RefCell<Window>),
}

/// A copy of the input from offset `start` on, which small binaries are slices of.
#[derive(Default)]
struct Window {
    start: usize,
    /// `None` until the first window (most terms have none: nothing to drop).
    bytes: Option<Bytes>,
    /// Small binaries copied each into a buffer of its own so far, up to [`WINDOW_AFTER`].
    single: usize,
}

/// Small binaries copied one by one before the first window. A window costs two allocations
/// (the copy, and the shared reference count its first slice creates) and an atomic count per
/// binary, so a term with only a few small binaries (a `'$gen_call'` with a key and a name)
/// is faster with one allocation each.
const WINDOW_AFTER: usize = 2;

impl Src<'_> {
    /// The binary `data`, found at `start` of `buf` (the input).
    #[inline(always)]
    fn binary(self, buf: &[u8], start: usize, data: &[u8]) -> Bytes {
        match self {
            Src::Slice(o) => o.slice(start..start + data.len()),
            Src::Copy(w) if data.len() <= SMALL_BINARY => small_binary(w, buf, start, data.len()),
            Src::Copy(_) => Bytes::copy_from_slice(data),
        }
    }
}

/// The `n` bytes (at most [`SMALL_BINARY`]) at `start` of `buf`, as a slice of the window,
/// which is first moved to `start` if it does not hold them: one allocation (and one
/// reference count) for the small binaries of up to [`BINARY_WINDOW`] bytes of input. A new
/// window starts where a binary does not fit the last, at least `BINARY_WINDOW -
/// SMALL_BINARY` bytes after it, so the copies add up to little more than the input's size.
/// The first [`WINDOW_AFTER`] small binaries get a buffer each instead.
#[inline]
fn small_binary(window: &RefCell<Window>, buf: &[u8], start: usize, n: usize) -> Bytes {
    if n == 0 {
        return Bytes::new();
    }
    let mut w = window.borrow_mut();
    if w.single < WINDOW_AFTER {
        w.single += 1;
        return Bytes::copy_from_slice(&buf[start..start + n]);
    }
    let off = start.wrapping_sub(w.start);
    match &w.bytes {
        Some(b) if off <= b.len() && b.len() - off >= n => b.slice(off..off + n),
        _ => {
            let len = (buf.len() - start).min(BINARY_WINDOW);
            let b = Bytes::copy_from_slice(&buf[start..start + len]);
            let first = b.slice(..n);
            w.bytes = Some(b);
            w.start = start;
            first
        }
    }
}

/// How to decode one term inside a larger buffer.
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions<'a> {
    /// The term starts with the version byte `131` (and may then be `COMPRESSED`).
    pub version_byte: bool,
    /// Atoms that `ATOM_CACHE_REF` indexes refer to: the distribution header's per-message
    /// reference list. `None` makes any `ATOM_CACHE_REF` an error.
    pub atom_cache: Option<&'a [Atom]>,
}

impl Default for DecodeOptions<'_> {
    /// With the version byte, without an atom cache.
    fn default() -> Self {
        DecodeOptions { version_byte: true, atom_cache: None }
    }
}

/// A malformed or unsupported encoded term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the input where the problem was found (the start of the offending
    /// field or term).
    pub offset: usize,
    /// What is wrong.
    pub kind: DecodeErrorKind,
}

/// What is wrong with an encoded term.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ends inside a term; at least `needed` more bytes were expected.
    UnexpectedEnd {
        /// Bytes missing for the field being read.
        needed: usize,
    },
    /// The first byte is not the version byte `131`.
    BadVersion(u8),
    /// Bytes remain after a complete term.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A tag byte this format does not define.
    UnknownTag(u8),
    /// A defined tag this decoder does not support (`FUN_EXT`, `LOCAL_EXT`).
    Unsupported(u8),
    /// `COMPRESSED` somewhere other than right after the version byte.
    MisplacedCompressed,
    /// A field that must be of one kind (an atom, an integer, a pid) has another tag.
    UnexpectedTag {
        /// What the field must be.
        expected: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// An atom's text is not valid UTF-8.
    InvalidAtomUtf8,
    /// An atom longer than 255 characters.
    AtomTooLong {
        /// Characters (or Latin-1 bytes) in it.
        chars: usize,
    },
    /// `ATOM_CACHE_REF` without an atom cache to resolve it.
    AtomCacheRefWithoutCache,
    /// `ATOM_CACHE_REF` beyond the end of the reference list.
    AtomCacheIndexOutOfRange {
        /// The index.
        index: u8,
        /// Entries in the list.
        len: usize,
    },
    /// A NaN or infinite float (BEAM has neither).
    NonFiniteFloat,
    /// `FLOAT_EXT` text that is not a float.
    BadFloatText,
    /// `BIT_BINARY_EXT` with `Bits` outside `1..=8` or no bytes.
    BadBitBinary {
        /// `Len`.
        len: u32,
        /// `Bits`.
        bits: u8,
    },
    /// A reference with zero or more than five id words.
    BadReferenceLength(u16),
    /// An `EXPORT_EXT` arity over 255.
    BadArity(i64),
    /// A bignum larger than [`MAX_BIG_BYTES`].
    BigTooLarge {
        /// Declared magnitude bytes.
        bytes: usize,
    },
    /// A container declares more elements than there are bytes left to hold them.
    TooManyElements {
        /// Elements declared.
        declared: usize,
        /// Bytes left, after those owed to enclosing containers.
        available: usize,
    },
    /// Nesting deeper than [`MAX_TERM_DEPTH`].
    TooDeep,
    /// The term declares more than [`MAX_TERM_ELEMENTS`] elements in all.
    TooManyTermElements {
        /// Elements declared so far, this container included.
        declared: usize,
    },
    /// Two equal keys in one map (BEAM rejects such maps).
    DuplicateMapKey,
    /// A `COMPRESSED` term declares more than [`MAX_DECOMPRESSED_SIZE`] bytes.
    DecompressedTooLarge {
        /// Declared uncompressed size.
        declared: usize,
    },
    /// The zlib stream is corrupt or truncated.
    BadCompressedData,
    /// The zlib stream inflates to a size other than the declared one.
    DecompressedSizeMismatch {
        /// Declared uncompressed size.
        declared: usize,
    },
    /// An error inside the inflated payload of a `COMPRESSED` term; the outer offset is the
    /// `COMPRESSED` tag, this one is within the inflated bytes.
    InCompressed {
        /// Offset within the inflated payload.
        offset: usize,
        /// The error there.
        kind: Box<DecodeErrorKind>,
    },
}

impl DecodeErrorKind {
    /// `true` when the input is well-formed but uses something this decoder does not
    /// implement (the peer is incompatible rather than misbehaving).
    pub fn is_unsupported(&self) -> bool {
        match self {
            DecodeErrorKind::Unsupported(_) => true,
            DecodeErrorKind::InCompressed { kind, .. } => kind.is_unsupported(),
            _ => false,
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind::*;
        match self {
            UnexpectedEnd { needed } => write!(f, "input ends inside a term ({needed} more bytes needed)"),
            BadVersion(v) => write!(f, "version byte is {v}, expected {VERSION_MAGIC}"),
            TrailingBytes { count } => write!(f, "{count} bytes after the end of the term"),
            UnknownTag(t) => write!(f, "unknown tag {t}"),
            Unsupported(t) => write!(f, "unsupported tag {t}"),
            MisplacedCompressed => write!(f, "COMPRESSED is only allowed right after the version byte"),
            UnexpectedTag { expected, tag } => write!(f, "expected {expected}, found tag {tag}"),
            InvalidAtomUtf8 => write!(f, "atom text is not valid UTF-8"),
            AtomTooLong { chars } => write!(f, "atom of {chars} characters exceeds {MAX_ATOM_CHARS}"),
            AtomCacheRefWithoutCache => write!(f, "ATOM_CACHE_REF without an atom cache"),
            AtomCacheIndexOutOfRange { index, len } => {
                write!(f, "ATOM_CACHE_REF index {index} beyond the {len} cached atoms")
            }
            NonFiniteFloat => write!(f, "float is NaN or infinite"),
            BadFloatText => write!(f, "FLOAT_EXT text is not a float"),
            BadBitBinary { len, bits } => write!(f, "BIT_BINARY_EXT with Len {len} and Bits {bits}"),
            BadReferenceLength(n) => write!(f, "reference with {n} id words (1..={MAX_REF_WORDS} allowed)"),
            BadArity(a) => write!(f, "fun arity {a} exceeds 255"),
            BigTooLarge { bytes } => write!(f, "bignum of {bytes} bytes exceeds {MAX_BIG_BYTES}"),
            TooManyElements { declared, available } => {
                write!(f, "container declares {declared} elements but only {available} bytes remain")
            }
            TooDeep => write!(f, "term nested deeper than {MAX_TERM_DEPTH}"),
            TooManyTermElements { declared } => {
                write!(f, "term declares {declared} elements in all, over {MAX_TERM_ELEMENTS}")
            }
            DuplicateMapKey => write!(f, "map has duplicate keys"),
            DecompressedTooLarge { declared } => {
                write!(f, "compressed term declares {declared} bytes, over {MAX_DECOMPRESSED_SIZE}")
            }
            BadCompressedData => write!(f, "corrupt or truncated zlib data"),
            DecompressedSizeMismatch { declared } => {
                write!(f, "compressed term does not inflate to its declared {declared} bytes")
            }
            InCompressed { offset, kind } => write!(f, "{kind} at byte {offset} of the inflated term"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad external term: {} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for DecodeError {}

type Result<T> = std::result::Result<T, DecodeError>;

/// Decodes a whole buffer: the version byte `131`, one term (possibly `COMPRESSED`), and
/// nothing after it. Binaries are copied out of `input`: each over 64 bytes into a buffer of its
/// own, smaller ones as slices of a shared copy of up to 1 KiB of the input around them (one
/// allocation for many small binaries; keeping one alive keeps that copy).
pub fn decode(input: &[u8]) -> Result<Term> {
    let (t, end) = decode_in(input, None, 0, &DecodeOptions::default())?;
    finish(input, t, end)
}

/// Like [`decode`], but binaries in the result are zero-copy slices of `input`.
pub fn decode_bytes(input: Bytes) -> Result<Term> {
    let (t, end) = decode_in(&input, Some(&input), 0, &DecodeOptions::default())?;
    finish(&input, t, end)
}

/// Decodes one term starting at `offset` (with or without the version byte, per `opts`) and
/// returns it with the offset just past it. Binaries are zero-copy slices of `input`;
/// `ATOM_CACHE_REF` resolves through `opts.atom_cache`.
pub fn decode_term_at(input: &Bytes, offset: usize, opts: &DecodeOptions) -> Result<(Term, usize)> {
    decode_in(input, Some(input), offset, opts)
}

/// Decodes one term without the version byte starting at `offset` of `buf`, with the limits of
/// [`decode`]; returns it with the offset just past it. Binaries are copied out of `buf`. For
/// the typed decoder (`term::typed`), which meets `Term` fields and ignored values inside a
/// larger encoding.
pub(crate) fn decode_body_at(buf: &[u8], offset: usize) -> Result<(Term, usize)> {
    decode_in(buf, None, offset, &DecodeOptions { version_byte: false, atom_cache: None })
}

/// [`decode`] with every container decoded by the iterative path that terms nested deeper
/// than the recursion limit take. For tests and fuzz targets that check both paths accept
/// the same inputs and report the same errors; not part of the supported API.
#[doc(hidden)]
pub fn decode_iterative(input: &[u8]) -> Result<Term> {
    let opts = DecodeOptions::default();
    let (t, end) = decode_with(input, None, 0, &opts, 0)?;
    finish(input, t, end)
}

fn finish(input: &[u8], t: Term, end: usize) -> Result<Term> {
    if end == input.len() {
        Ok(t)
    } else {
        Err(DecodeError { offset: end, kind: DecodeErrorKind::TrailingBytes { count: input.len() - end } })
    }
}

fn decode_in(buf: &[u8], owner: Option<&Bytes>, offset: usize, opts: &DecodeOptions) -> Result<(Term, usize)> {
    decode_with(buf, owner, offset, opts, REC_DEPTH)
}

fn decode_with(
    buf: &[u8],
    owner: Option<&Bytes>,
    offset: usize,
    opts: &DecodeOptions,
    rec_limit: usize,
) -> Result<(Term, usize)> {
    let window = RefCell::new(Window::default());
    let src = match owner {
        Some(o) => Src::Slice(o),
        None => Src::Copy(&window),
    };
    let mut d = Dec {
        c: Cursor::new(buf, offset.min(buf.len())),
        src,
        cache: opts.atom_cache,
        owed: 0,
        elements: 0,
        rec_limit,
    };
    if offset > buf.len() {
        return Err(d.err_at(buf.len(), DecodeErrorKind::UnexpectedEnd { needed: offset - buf.len() + 1 }));
    }
    if opts.version_byte {
        let at = d.c.pos;
        let v = d.c.u8()?;
        if v != VERSION_MAGIC {
            return Err(d.err_at(at, DecodeErrorKind::BadVersion(v)));
        }
        if d.c.buf.get(d.c.pos) == Some(&COMPRESSED) {
            return d.compressed();
        }
    }
    let t = d.term()?;
    Ok((t, d.c.pos))
}

/// The top frame, which the caller knows is there.
#[inline]
fn pop(stack: &mut Vec<Frame>) -> Frame {
    match stack.pop() {
        Some(f) => f,
        None => unreachable!("popped only after looking at the top frame"),
    }
}

/// An open container waiting for more elements.
enum Frame {
    Tuple {
        elems: Vec<Term>,
        left: usize,
    },
    /// Elements of a `LIST_EXT`; when `left` reaches zero the tail follows.
    List {
        elems: Vec<Term>,
        left: usize,
    },
    /// A list whose elements are done; the next term is its (non-list) tail.
    ListTail {
        elems: Vec<Term>,
    },
    /// Entries of a `MAP_EXT`; with `key`, the key of the next entry is on the key stack
    /// (kept off the frame so that frames stay small: deep terms push many).
    Map {
        entries: Vec<(Term, Term)>,
        left: u32,
        key: bool,
        at: usize,
    },
    Fun {
        fun: Box<LocalFun>,
        left: usize,
    },
}

// Deep terms keep up to MAX_TERM_DEPTH frames: small frames keep that stack small
// (40 KiB), clear of glibc's 64 KiB free() threshold that consolidates the heap.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Frame>() <= 40);

/// How far [`Dec::fill`] got with the open container on top of the stack.
enum Fill {
    /// The container is complete: its frame is to be popped and closed.
    Done,
    /// The next element (or the list tail) is not a fast-path leaf.
    Other,
}

/// What followed the last element of a `LIST_EXT`.
enum Tail {
    /// `NIL_EXT` or a `STRING_EXT`: the list is proper and complete.
    Proper,
    /// Another `LIST_EXT`: its elements continue this list.
    More,
    /// Anything else: decode it as the tail.
    Other,
}

struct Dec<'a> {
    c: Cursor<'a>,
    /// Where binaries come from.
    src: Src<'a>,
    cache: Option<&'a [Atom]>,
    /// Bytes owed to elements that open containers have declared but not yet started: each
    /// takes at least one.
    owed: usize,
    /// Elements declared so far in this term, against [`MAX_TERM_ELEMENTS`].
    elements: usize,
    /// Containers nested this deep are decoded by [`Dec::term_iter`] instead of recursion
    /// ([`REC_DEPTH`]; tests lower it to check that both paths agree).
    rec_limit: usize,
}

impl<'a> Dec<'a> {
    #[inline]
    fn err_at(&self, offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { offset, kind }
    }

    /// `n` bytes as `Bytes`: a slice of the owner, or a copy.
    #[inline]
    fn bytes(&mut self, n: usize) -> Result<Bytes> {
        let start = self.c.pos;
        let s = self.c.take(n)?;
        Ok(self.src.binary(self.c.buf, start, s))
    }

    /// Reserves `n` more owed bytes for a container opened at `at`.
    #[inline]
    fn claim(&mut self, n: usize, at: usize) -> Result<()> {
        let available = self.c.remaining().saturating_sub(self.owed);
        if n > available {
            return Err(self.err_at(at, DecodeErrorKind::TooManyElements { declared: n, available }));
        }
        self.count_elements(n, at)?;
        self.owed += n;
        Ok(())
    }

    /// Counts `n` more elements (of a container or a `STRING_EXT` at `at`) against
    /// [`MAX_TERM_ELEMENTS`], before anything is allocated for them.
    #[inline]
    fn count_elements(&mut self, n: usize, at: usize) -> Result<()> {
        let declared = self.elements.saturating_add(n);
        if declared > MAX_TERM_ELEMENTS {
            return Err(self.err_at(at, DecodeErrorKind::TooManyTermElements { declared }));
        }
        self.elements = declared;
        Ok(())
    }

    #[inline]
    fn push(&self, stack: &mut Vec<Frame>, frame: Frame, at: usize, depth: usize) -> Result<()> {
        if depth + stack.len() >= MAX_TERM_DEPTH {
            return Err(self.err_at(at, DecodeErrorKind::TooDeep));
        }
        stack.push(frame);
        Ok(())
    }

    /// Decodes one complete term at the cursor.
    fn term(&mut self) -> Result<Term> {
        self.term_rec(0)
    }

    /// Decodes one complete term at the cursor, inside `depth` open containers, with an
    /// explicit stack instead of recursion: any depth up to [`MAX_TERM_DEPTH`] is safe.
    fn term_iter(&mut self, depth: usize) -> Result<Term> {
        let mut stack: Vec<Frame> = Vec::new();
        // keys of the open maps whose value is being decoded
        let mut keys: Vec<Term> = Vec::new();
        loop {
            let mut value = match stack.last_mut() {
                // the root term
                None => match self.value(&mut stack, depth)? {
                    Some(v) => v,
                    None => continue,
                },
                Some(top) => match self.fill(top, &mut keys)? {
                    Fill::Done => self.close(pop(&mut stack))?,
                    Fill::Other => {
                        // the next element needs the general path; it fills one of the slots
                        // the top container claimed
                        self.owed = self.owed.saturating_sub(1);
                        match self.value(&mut stack, depth)? {
                            Some(v) => v,
                            None => continue,
                        }
                    }
                },
            };
            // hand the value to the open containers, closing each that is now complete
            loop {
                let Some(top) = stack.last_mut() else { return Ok(value) };
                match top {
                    Frame::Tuple { elems, left } => {
                        elems.push(value);
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                    }
                    Frame::List { elems, left } => {
                        elems.push(value);
                        *left -= 1;
                        if *left > 0 || !self.list_complete(top)? {
                            break;
                        }
                    }
                    Frame::ListTail { .. } => {
                        let Frame::ListTail { elems } = pop(&mut stack) else { unreachable!("the top frame") };
                        value = Term::list_with_tail(elems, value);
                        continue;
                    }
                    Frame::Map { entries, left, key, .. } => {
                        if !*key {
                            keys.push(value);
                            *key = true;
                            break;
                        }
                        *key = false;
                        let Some(k) = keys.pop() else { unreachable!("a key for each map with `key`") };
                        entries.push((k, value));
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                    }
                    Frame::Fun { fun, left } => {
                        fun.free_vars.push(value);
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                    }
                }
                match self.close_up(&mut stack)? {
                    Some(v) => value = v,
                    None => break,
                }
            }
        }
    }

    /// After the last element of the list frame `top`: reads what follows (as
    /// [`Dec::list_tail`]); `true` when the list is complete, else it waits for more elements
    /// or (as a `ListTail` frame) for its tail.
    #[inline]
    fn list_complete(&mut self, top: &mut Frame) -> Result<bool> {
        let Frame::List { elems, left } = top else { unreachable!("called on a list frame") };
        Ok(match self.list_tail(elems, left)? {
            Tail::Proper => true,
            Tail::More => false,
            Tail::Other => {
                *top = Frame::ListTail { elems: std::mem::take(elems) };
                false
            }
        })
    }

    /// Closes the complete container on top of the stack. While it is a tuple or a proper
    /// list and its parent a tuple or a list, its term goes straight into the parent, and the
    /// parent is closed in turn if that completes it: in a deep term, a term returned and then
    /// pushed costs a store-forwarding stall per level. Returns the term of the last container
    /// closed when it goes anywhere else (a map, a fun, a list's tail, the root), `None` when
    /// the parent it went into wants more.
    fn close_up(&mut self, stack: &mut Vec<Frame>) -> Result<Option<Term>> {
        loop {
            let into_parent = matches!(
                stack.len().checked_sub(2).and_then(|i| stack.get(i..)),
                Some([Frame::Tuple { .. } | Frame::List { .. }, Frame::Tuple { .. } | Frame::List { .. }])
            );
            let frame = pop(stack);
            if !into_parent {
                return self.close(frame).map(Some);
            }
            let t = match frame {
                Frame::Tuple { elems, .. } => Term::Tuple(elems),
                Frame::List { elems, .. } => Term::List(elems),
                _ => unreachable!("a tuple or list frame"),
            };
            let Some(top) = stack.last_mut() else { unreachable!("the parent frame") };
            let (Frame::Tuple { elems, left } | Frame::List { elems, left }) = top else {
                unreachable!("a tuple or list frame")
            };
            elems.push(t);
            *left -= 1;
            if *left > 0 || (matches!(top, Frame::List { .. }) && !self.list_complete(top)?) {
                return Ok(None);
            }
        }
    }

    /// The term of a complete container (not a `ListTail`, which needs its tail).
    fn close(&self, frame: Frame) -> Result<Term> {
        Ok(match frame {
            Frame::Tuple { elems, .. } => Term::Tuple(elems),
            Frame::List { elems, .. } | Frame::ListTail { elems } => Term::List(elems),
            Frame::Map { entries, at, .. } => {
                if has_duplicate_keys(&entries) {
                    return Err(self.err_at(at, DecodeErrorKind::DuplicateMapKey));
                }
                Term::Map(Map::from_distinct_entries(entries))
            }
            Frame::Fun { fun, .. } => Term::LocalFun(fun),
        })
    }

    /// Adds leaf elements to the open container `top` while the input has them; stops at the
    /// first element that needs the general path, or when the container is complete.
    #[inline]
    fn fill(&mut self, top: &mut Frame, keys: &mut Vec<Term>) -> Result<Fill> {
        match top {
            Frame::Tuple { elems, left } => {
                while *left > 0 {
                    let Some(t) = self.leaf() else { return Ok(Fill::Other) };
                    elems.push(t);
                    *left -= 1;
                }
                Ok(Fill::Done)
            }
            Frame::List { elems, left } => loop {
                while *left > 0 {
                    let Some(t) = self.leaf() else { return Ok(Fill::Other) };
                    elems.push(t);
                    *left -= 1;
                }
                match self.list_tail(elems, left)? {
                    Tail::Proper => return Ok(Fill::Done),
                    Tail::More => {}
                    Tail::Other => {
                        *top = Frame::ListTail { elems: std::mem::take(elems) };
                        return Ok(Fill::Other);
                    }
                }
            },
            Frame::Map { entries, left, key, .. } => {
                while *left > 0 {
                    let k = match if *key { keys.pop() } else { None } {
                        Some(k) => k,
                        None => match self.leaf() {
                            Some(k) => k,
                            None => return Ok(Fill::Other),
                        },
                    };
                    *key = false;
                    let Some(v) = self.leaf() else {
                        keys.push(k);
                        *key = true;
                        return Ok(Fill::Other);
                    };
                    entries.push((k, v));
                    *left -= 1;
                }
                Ok(Fill::Done)
            }
            Frame::Fun { fun, left } => {
                while *left > 0 {
                    let Some(t) = self.leaf() else { return Ok(Fill::Other) };
                    fun.free_vars.push(t);
                    *left -= 1;
                }
                Ok(Fill::Done)
            }
            Frame::ListTail { .. } => Ok(Fill::Other),
        }
    }

    /// The fast path for the commonest leaves (small and 32-bit integers, floats, short UTF-8
    /// atoms, binaries, `[]`), complete in the input and valid. Anything else, including a
    /// malformed leaf, is `None` and left untouched for [`Dec::value`], which decodes it or
    /// reports the error. Counts as starting one element (`owed`).
    #[inline(always)]
    fn leaf(&mut self) -> Option<Term> {
        let t = self.leaf_raw()?;
        self.owed = self.owed.saturating_sub(1);
        Some(t)
    }

    /// [`Dec::leaf`] without counting the element started.
    #[inline(always)]
    fn leaf_raw(&mut self) -> Option<Term> {
        let (t, next) = fast_leaf(self.c.buf, self.c.pos, self.src, |t| t)?;
        self.c.pos = next;
        Some(t)
    }

    /// After the last element of a `LIST_EXT`: consumes a list tail that continues or ends the
    /// list, or leaves any other tail for the caller to decode.
    #[inline(always)]
    fn list_tail(&mut self, elems: &mut Vec<Term>, left: &mut usize) -> Result<Tail> {
        loop {
            let at = self.c.pos;
            match self.c.peek()? {
                NIL_EXT => {
                    self.c.pos += 1;
                    self.owed = self.owed.saturating_sub(1);
                    return Ok(Tail::Proper);
                }
                STRING_EXT => {
                    self.c.pos += 1;
                    let n = self.c.u16()? as usize;
                    let s = self.c.take(n)?;
                    self.count_elements(n, at)?;
                    elems.extend(s.iter().map(|&b| Term::Int(b as i64)));
                    self.owed = self.owed.saturating_sub(1);
                    return Ok(Tail::Proper);
                }
                LIST_EXT => {
                    self.c.pos += 1;
                    let n = self.c.u32()? as usize;
                    if n == 0 {
                        // LIST_EXT of no elements is just its own tail
                        continue;
                    }
                    self.owed = self.owed.saturating_sub(1);
                    self.claim(n.saturating_add(1), at)?;
                    elems.reserve(n);
                    *left = n;
                    return Ok(Tail::More);
                }
                _ => return Ok(Tail::Other),
            }
        }
    }

    /// Decodes a leaf term, or opens a container (pushing a frame) and returns `None`.
    fn value(&mut self, stack: &mut Vec<Frame>, depth: usize) -> Result<Option<Term>> {
        loop {
            let at = self.c.pos;
            let tag = self.c.u8()?;
            let t = match tag {
                SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => {
                    let n = if tag == SMALL_TUPLE_EXT { self.c.u8()? as usize } else { self.c.u32()? as usize };
                    if n == 0 {
                        Term::Tuple(Vec::new())
                    } else {
                        self.claim(n, at)?;
                        self.push(stack, Frame::Tuple { elems: Vec::with_capacity(n), left: n }, at, depth)?;
                        return Ok(None);
                    }
                }
                LIST_EXT => {
                    let n = self.c.u32()? as usize;
                    if n == 0 {
                        // no elements: the term is its tail, which fills this same slot
                        continue;
                    }
                    self.claim(n.saturating_add(1), at)?;
                    self.push(stack, Frame::List { elems: Vec::with_capacity(n), left: n }, at, depth)?;
                    return Ok(None);
                }
                MAP_EXT => {
                    let n = self.c.u32()? as usize;
                    if n == 0 {
                        Term::Map(Map::new())
                    } else {
                        self.claim(n.saturating_mul(2), at)?;
                        let frame = Frame::Map { entries: Vec::with_capacity(n), left: n as u32, key: false, at };
                        self.push(stack, frame, at, depth)?;
                        return Ok(None);
                    }
                }
                NEW_FUN_EXT => {
                    let (fun, num_free) = self.fun_head()?;
                    if num_free == 0 {
                        Term::LocalFun(fun)
                    } else {
                        self.claim(num_free, at)?;
                        self.push(stack, Frame::Fun { fun, left: num_free }, at, depth)?;
                        return Ok(None);
                    }
                }
                _ => self.scalar(tag, at)?,
            };
            return Ok(Some(t));
        }
    }

    /// Decodes one term at the cursor, inside `depth` open containers. Containers recurse
    /// (their elements are decoded by [`Dec::elem`]) up to `rec_limit` levels; deeper ones
    /// are handed whole to [`Dec::term_iter`], so the native stack stays small whatever the
    /// input. Both paths perform the same checks in the same order, so they accept the same
    /// inputs and report the same errors at the same offsets.
    fn term_rec(&mut self, depth: usize) -> Result<Term> {
        loop {
            let at = self.c.pos;
            let tag = self.c.u8()?;
            return match tag {
                SMALL_TUPLE_EXT | LARGE_TUPLE_EXT | LIST_EXT | MAP_EXT | NEW_FUN_EXT if depth >= self.rec_limit => {
                    self.c.pos = at;
                    self.term_iter(depth)
                }
                SMALL_TUPLE_EXT => {
                    let n = self.c.u8()? as usize;
                    self.tuple(n, at, depth)
                }
                LARGE_TUPLE_EXT => {
                    let n = self.c.u32()? as usize;
                    self.tuple(n, at, depth)
                }
                LIST_EXT => {
                    let n = self.c.u32()? as usize;
                    if n == 0 {
                        // no elements: the term is its tail, which fills this same slot
                        continue;
                    }
                    self.list(n, at, depth)
                }
                MAP_EXT => self.map(at, depth),
                NEW_FUN_EXT => {
                    let (mut fun, num_free) = self.fun_head()?;
                    if num_free > 0 {
                        self.claim(num_free, at)?;
                        for _ in 0..num_free {
                            let t = self.elem(depth + 1)?;
                            fun.free_vars.push(t);
                        }
                    }
                    Ok(Term::LocalFun(fun))
                }
                _ => self.scalar(tag, at),
            };
        }
    }

    /// One element of an open container (claimed by it): the fast leaves inline, anything
    /// else through [`Dec::term_rec`].
    #[inline(always)]
    fn elem(&mut self, depth: usize) -> Result<Term> {
        self.owed = self.owed.saturating_sub(1);
        match self.leaf_raw() {
            Some(t) => Ok(t),
            None => self.term_rec(depth),
        }
    }

    /// [`Dec::elem`] written into `slot`, which this writes exactly when it returns `Ok`.
    #[inline(always)]
    fn elem_into(&mut self, depth: usize, slot: &mut std::mem::MaybeUninit<Term>) -> Result<()> {
        self.owed = self.owed.saturating_sub(1);
        if let Some(((), next)) = fast_leaf(self.c.buf, self.c.pos, self.src, |t| {
            slot.write(t);
        }) {
            self.c.pos = next;
            return Ok(());
        }
        let t = self.term_rec(depth)?;
        slot.write(t);
        Ok(())
    }

    /// A tuple of `n` elements whose header (at `at`) has been read.
    fn tuple(&mut self, n: usize, at: usize, depth: usize) -> Result<Term> {
        if n == 0 {
            return Ok(Term::Tuple(Vec::new()));
        }
        self.claim(n, at)?;
        let mut elems = Vec::with_capacity(n);
        self.seq(&mut elems, n, depth + 1)?;
        Ok(Term::Tuple(elems))
    }

    /// Decodes `n` claimed elements at `depth` onto `elems`. The hot loop of the decoder:
    /// elements are written straight into the vector's reserved capacity, the cursor lives in
    /// a local, and `owed` is brought up to date only before a nested term (which may claim)
    /// and at the end.
    #[inline]
    fn seq(&mut self, elems: &mut Vec<Term>, n: usize, depth: usize) -> Result<()> {
        elems.reserve(n);
        let base = elems.len();
        let buf = self.c.buf;
        let src = self.src;
        let mut pos = self.c.pos;
        // elements before this index have been counted out of `owed`
        let mut synced = 0usize;
        // elements written into `slots`, in order
        let mut done = n;
        let mut result = Ok(());
        let Some(slots) = elems.spare_capacity_mut().get_mut(..n) else {
            unreachable!("reserve(n) leaves room for n more")
        };
        let mut i = 0;
        while let Some(slot) = slots.get_mut(i) {
            // the offset after the element when a fast path wrote it into `slot`
            let next = match buf.get(pos..pos.wrapping_add(9)) {
                Some(&[SMALL_INTEGER_EXT, b, ..]) => {
                    slot.write(Term::Int(b as i64));
                    Some(numbers(slots, &mut i, buf, pos + 2))
                }
                Some(&[INTEGER_EXT, b0, b1, b2, b3, ..]) => {
                    slot.write(Term::Int(i32::from_be_bytes([b0, b1, b2, b3]) as i64));
                    Some(numbers(slots, &mut i, buf, pos + 5))
                }
                Some(&[NEW_FLOAT_EXT, b0, b1, b2, b3, b4, b5, b6, b7])
                    if f64_finite([b0, b1, b2, b3, b4, b5, b6, b7]) =>
                {
                    slot.write(Term::Float(f64::from_bits(u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]))));
                    Some(numbers(slots, &mut i, buf, pos + 9))
                }
                Some(&[BINARY_EXT, b0, b1, b2, b3, ..]) => {
                    let start = pos + 5;
                    let n = u32::from_be_bytes([b0, b1, b2, b3]) as usize;
                    match buf.get(start..).and_then(|rest| rest.get(..n)) {
                        Some(data) => {
                            slot.write(Term::Binary(src.binary(buf, start, data)));
                            Some(start + n)
                        }
                        None => None,
                    }
                }
                Some(&[SMALL_BIG_EXT, n, sign, ..]) => {
                    let n = n as usize;
                    match buf.get(pos + 3..).and_then(|rest| rest.first_chunk::<BIG_INLINE_BYTES>()) {
                        Some(w) if n <= BIG_INLINE_BYTES => {
                            // BEAM treats any non-zero sign byte as negative
                            let negative = sign != 0;
                            write_inline_big(slot, negative, n, w);
                            Some(numbers(slots, &mut i, buf, pos + 3 + n))
                        }
                        _ => None,
                    }
                }
                _ => fast_leaf(buf, pos, src, |t| {
                    slot.write(t);
                })
                .map(|((), next)| next),
            };
            match next {
                Some(next) => pos = next,
                None => {
                    self.c.pos = pos;
                    self.owed = self.owed.saturating_sub(i + 1 - synced);
                    synced = i + 1;
                    match (self.term_rec(depth), slots.get_mut(i)) {
                        (Ok(t), Some(slot)) => {
                            slot.write(t);
                            pos = self.c.pos;
                        }
                        (Err(e), _) => {
                            result = Err(e);
                            done = i;
                            break;
                        }
                        (Ok(_), None) => unreachable!("slot {i} is the loop's"),
                    }
                }
            }
            i += 1;
        }
        // SAFETY: the loop wrote the first `done` slots of the spare capacity, in order, each
        // with a valid `Term`: every iteration writes its slot, except one that fails, which
        // stops the loop with `done` set to its index.
        unsafe { elems.set_len(base + done) };
        self.c.pos = pos;
        self.owed = self.owed.saturating_sub(done.saturating_sub(synced));
        result
    }

    /// A `LIST_EXT` of `n > 0` elements whose header (at `at`) has been read, with its tail.
    fn list(&mut self, n: usize, at: usize, depth: usize) -> Result<Term> {
        self.claim(n.saturating_add(1), at)?;
        let mut elems = Vec::with_capacity(n);
        let mut n = n;
        loop {
            self.seq(&mut elems, n, depth + 1)?;
            match self.list_tail(&mut elems, &mut n)? {
                Tail::Proper => return Ok(Term::List(elems)),
                // the tail is a list: its `n` elements continue this one
                Tail::More => {}
                Tail::Other => {
                    self.owed = self.owed.saturating_sub(1);
                    let tail = self.term_rec(depth + 1)?;
                    return Ok(Term::list_with_tail(elems, tail));
                }
            }
        }
    }

    /// A `MAP_EXT` whose tag (at `at`) has been read.
    fn map(&mut self, at: usize, depth: usize) -> Result<Term> {
        let n = self.c.u32()? as usize;
        if n == 0 {
            return Ok(Term::Map(Map::new()));
        }
        self.claim(n.saturating_mul(2), at)?;
        let mut entries: Vec<(Term, Term)> = Vec::with_capacity(n);
        let mut done = 0;
        let mut result = Ok(());
        for pair in entries.spare_capacity_mut().iter_mut().take(n) {
            let p = pair.as_mut_ptr();
            // SAFETY: `p` points to an uninitialised pair in the vector's spare capacity;
            // `addr_of_mut!` projects to its two fields without reading them or making
            // references to uninitialised `Term`s, and `MaybeUninit<Term>` has `Term`'s layout.
            // The two fields are disjoint, so the two references do not alias.
            let (k, v) = unsafe {
                (
                    &mut *(std::ptr::addr_of_mut!((*p).0) as *mut std::mem::MaybeUninit<Term>),
                    &mut *(std::ptr::addr_of_mut!((*p).1) as *mut std::mem::MaybeUninit<Term>),
                )
            };
            // each term is decoded in its place in the pair: one built aside and then copied
            // costs a store-forwarding stall
            if let Err(e) = self.elem_into(depth + 1, k) {
                result = Err(e);
                break;
            }
            if let Err(e) = self.elem_into(depth + 1, v) {
                // SAFETY: `elem_into` returned `Ok` for `k`, so it wrote it.
                unsafe { k.assume_init_drop() };
                result = Err(e);
                break;
            }
            done += 1;
        }
        // SAFETY: the loop wrote both halves of the first `done` pairs (a pair is counted
        // only once both are written; a failed one is dropped above).
        unsafe { entries.set_len(done) };
        result?;
        if has_duplicate_keys(&entries) {
            return Err(self.err_at(at, DecodeErrorKind::DuplicateMapKey));
        }
        Ok(Term::Map(Map::from_distinct_entries(entries)))
    }

    /// Any term but a container with elements: `tag` (at `at`) has been read.
    fn scalar(&mut self, tag: u8, at: usize) -> Result<Term> {
        Ok(match tag {
            SMALL_INTEGER_EXT => Term::Int(self.c.u8()? as i64),
            INTEGER_EXT => Term::Int(self.c.u32()? as i32 as i64),
            SMALL_ATOM_UTF8_EXT | ATOM_UTF8_EXT | ATOM_EXT | SMALL_ATOM_EXT | ATOM_CACHE_REF => {
                Term::Atom(self.atom_body(tag, at)?)
            }
            NIL_EXT => Term::List(Vec::new()),
            STRING_EXT => {
                let n = self.c.u16()? as usize;
                let s = self.c.take(n)?;
                self.count_elements(n, at)?;
                Term::List(s.iter().map(|&b| Term::Int(b as i64)).collect())
            }
            BINARY_EXT => {
                let n = self.c.u32()? as usize;
                Term::Binary(self.bytes(n)?)
            }
            NEW_FLOAT_EXT => {
                let f = f64::from_bits(self.c.u64()?);
                if !f.is_finite() {
                    return Err(self.err_at(at, DecodeErrorKind::NonFiniteFloat));
                }
                Term::Float(f)
            }
            SMALL_BIG_EXT | LARGE_BIG_EXT => self.big(tag, at)?,
            NEW_PID_EXT | PID_EXT => Term::Pid(self.pid_body(tag)?),
            NEWER_REFERENCE_EXT | NEW_REFERENCE_EXT | REFERENCE_EXT => Term::Ref(self.ref_body(tag, at)?),
            V4_PORT_EXT | NEW_PORT_EXT | PORT_EXT => Term::Port(self.port_body(tag)?),
            BIT_BINARY_EXT => self.bit_binary(at)?,
            EXPORT_EXT => {
                let module = self.atom()?;
                let function = self.atom()?;
                let a_at = self.c.pos;
                let arity = match self.integer()? {
                    Term::Int(a @ 0..=255) => a as u8,
                    Term::Int(a) => return Err(self.err_at(a_at, DecodeErrorKind::BadArity(a))),
                    _ => return Err(self.err_at(a_at, DecodeErrorKind::BadArity(i64::MAX))),
                };
                Term::ExportFun(Box::new(ExportFun { module, function, arity }))
            }
            FLOAT_EXT => {
                let text = self.c.take(31)?;
                match parse_float_text(text) {
                    Some(f) if f.is_finite() => Term::Float(f),
                    Some(_) => return Err(self.err_at(at, DecodeErrorKind::NonFiniteFloat)),
                    None => return Err(self.err_at(at, DecodeErrorKind::BadFloatText)),
                }
            }
            COMPRESSED => return Err(self.err_at(at, DecodeErrorKind::MisplacedCompressed)),
            FUN_EXT | LOCAL_EXT => return Err(self.err_at(at, DecodeErrorKind::Unsupported(tag))),
            // containers are the callers' (an empty tuple or map only reaches here from them)
            SMALL_TUPLE_EXT | LARGE_TUPLE_EXT | LIST_EXT | MAP_EXT | NEW_FUN_EXT => {
                unreachable!("containers are decoded by the callers")
            }
            _ => return Err(self.err_at(at, DecodeErrorKind::UnknownTag(tag))),
        })
    }

    /// An atom field (node, module, function name): any atom tag or `ATOM_CACHE_REF`.
    #[inline]
    fn atom(&mut self) -> Result<Atom> {
        let at = self.c.pos;
        let tag = self.c.u8()?;
        match tag {
            SMALL_ATOM_UTF8_EXT | ATOM_UTF8_EXT | ATOM_EXT | SMALL_ATOM_EXT | ATOM_CACHE_REF => self.atom_body(tag, at),
            _ => Err(self.err_at(at, DecodeErrorKind::UnexpectedTag { expected: "an atom", tag })),
        }
    }

    fn atom_body(&mut self, tag: u8, at: usize) -> Result<Atom> {
        match tag {
            SMALL_ATOM_UTF8_EXT | ATOM_UTF8_EXT => {
                let n = if tag == SMALL_ATOM_UTF8_EXT { self.c.u8()? as usize } else { self.c.u16()? as usize };
                if n <= INLINE_CAP {
                    let buf: &'a [u8] = self.c.buf;
                    if let Some(window) = buf.get(self.c.pos..).and_then(|r| r.first_chunk::<INLINE_CAP>()) {
                        // the `n` bytes are there: what `take` and `atom_utf8` below would do
                        self.c.pos += n;
                        return Atom::from_utf8_window(window, n)
                            .ok_or_else(|| self.err_at(at, DecodeErrorKind::InvalidAtomUtf8));
                    }
                }
                let text = self.c.take(n)?;
                let s = atom_utf8(text).ok_or_else(|| self.err_at(at, DecodeErrorKind::InvalidAtomUtf8))?;
                Atom::try_new(s).map_err(|e| self.err_at(at, DecodeErrorKind::AtomTooLong { chars: e.chars }))
            }
            SMALL_ATOM_EXT | ATOM_EXT => {
                let n = if tag == SMALL_ATOM_EXT { self.c.u8()? as usize } else { self.c.u16()? as usize };
                let text = self.c.take(n)?;
                if n > MAX_ATOM_CHARS {
                    return Err(self.err_at(at, DecodeErrorKind::AtomTooLong { chars: n }));
                }
                Ok(match std::str::from_utf8(text) {
                    Ok(s) if text.is_ascii() => Atom::new(s),
                    _ => {
                        // Latin-1: every byte is the code point of the same value
                        let s: String = text.iter().map(|&b| b as char).collect();
                        Atom::new(&s)
                    }
                })
            }
            _ => {
                // ATOM_CACHE_REF
                let index = self.c.u8()?;
                let cache = self.cache.ok_or_else(|| self.err_at(at, DecodeErrorKind::AtomCacheRefWithoutCache))?;
                cache.get(index as usize).cloned().ok_or_else(|| {
                    self.err_at(at, DecodeErrorKind::AtomCacheIndexOutOfRange { index, len: cache.len() })
                })
            }
        }
    }

    /// An integer field (`OldIndex`, `OldUniq`, an export's arity).
    fn integer(&mut self) -> Result<Term> {
        let at = self.c.pos;
        let tag = self.c.u8()?;
        match tag {
            SMALL_INTEGER_EXT => Ok(Term::Int(self.c.u8()? as i64)),
            INTEGER_EXT => Ok(Term::Int(self.c.u32()? as i32 as i64)),
            SMALL_BIG_EXT | LARGE_BIG_EXT => self.big(tag, at),
            _ => Err(self.err_at(at, DecodeErrorKind::UnexpectedTag { expected: "an integer", tag })),
        }
    }

    fn big(&mut self, tag: u8, at: usize) -> Result<Term> {
        let n = if tag == SMALL_BIG_EXT { self.c.u8()? as usize } else { self.c.u32()? as usize };
        if n > MAX_BIG_BYTES {
            return Err(self.err_at(at, DecodeErrorKind::BigTooLarge { bytes: n }));
        }
        // BEAM treats any non-zero sign byte as negative
        let negative = self.c.u8()? != 0;
        let digits = self.c.take(n)?;
        Ok(Term::integer(BigInt::normalize(negative, digits)))
    }

    fn pid_body(&mut self, tag: u8) -> Result<Pid> {
        let node = self.atom()?;
        let id = self.c.u32()?;
        let serial = self.c.u32()?;
        let creation = if tag == NEW_PID_EXT { self.c.u32()? } else { self.c.u8()? as u32 };
        Ok(Pid { node, id, serial, creation })
    }

    fn port_body(&mut self, tag: u8) -> Result<Port> {
        let node = self.atom()?;
        let id = if tag == V4_PORT_EXT { self.c.u64()? } else { self.c.u32()? as u64 };
        let creation = if tag == PORT_EXT { self.c.u8()? as u32 } else { self.c.u32()? };
        Ok(Port { node, id, creation })
    }

    fn ref_body(&mut self, tag: u8, at: usize) -> Result<Reference> {
        if tag == REFERENCE_EXT {
            let node = self.atom()?;
            let id = self.c.u32()?;
            let creation = self.c.u8()? as u32;
            return Reference::new(node, creation, &[id])
                .ok_or_else(|| self.err_at(at, DecodeErrorKind::BadReferenceLength(1)));
        }
        let len = self.c.u16()?;
        if len == 0 || len as usize > MAX_REF_WORDS {
            return Err(self.err_at(at, DecodeErrorKind::BadReferenceLength(len)));
        }
        let node = self.atom()?;
        let creation = if tag == NEWER_REFERENCE_EXT { self.c.u32()? } else { self.c.u8()? as u32 };
        let mut words = [0u32; MAX_REF_WORDS];
        for w in words.iter_mut().take(len as usize) {
            *w = self.c.u32()?;
        }
        Reference::new(node, creation, &words[..len as usize])
            .ok_or_else(|| self.err_at(at, DecodeErrorKind::BadReferenceLength(len)))
    }

    fn bit_binary(&mut self, at: usize) -> Result<Term> {
        let len = self.c.u32()?;
        let bits = self.c.u8()?;
        // BEAM (OTP 26+) rejects Bits outside 1..=8 and an empty payload (OTP 25 took
        // Len 0, Bits 0 as <<>>, but no BEAM writes that)
        if len == 0 || bits == 0 || bits > 8 {
            return Err(self.err_at(at, DecodeErrorKind::BadBitBinary { len, bits }));
        }
        let start = self.c.pos;
        let data = self.bytes(len as usize)?;
        if bits == 8 {
            return Ok(Term::Binary(data));
        }
        let mask = 0xffu8 << (8 - bits);
        let last = self.c.buf[start + len as usize - 1];
        let data = if last & !mask == 0 {
            data
        } else {
            // clear the unused low bits, as the model requires
            let mut v = data.to_vec();
            if let Some(l) = v.last_mut() {
                *l &= mask;
            }
            Bytes::from(v)
        };
        Ok(Term::BitBinary(BitBinary { data, bits }))
    }

    /// The fixed part of `NEW_FUN_EXT` (everything before the free variables).
    fn fun_head(&mut self) -> Result<(Box<LocalFun>, usize)> {
        // Size is redundant and, like BEAM, not checked
        let _size = self.c.u32()?;
        let arity = self.c.u8()?;
        let uniq: [u8; 16] = self.c.array()?;
        let index = self.c.u32()?;
        let num_free = self.c.u32()? as usize;
        let module = self.atom()?;
        let old_index = self.integer()?;
        let old_uniq = self.integer()?;
        let p_at = self.c.pos;
        let tag = self.c.u8()?;
        let pid = match tag {
            NEW_PID_EXT | PID_EXT => Term::Pid(self.pid_body(tag)?),
            _ => return Err(self.err_at(p_at, DecodeErrorKind::UnexpectedTag { expected: "a pid", tag })),
        };
        let free_vars = Vec::with_capacity(num_free.min(self.c.remaining()));
        let fun = LocalFun { arity, uniq, index, module, old_index, old_uniq, pid, free_vars };
        Ok((Box::new(fun), num_free))
    }

    /// `COMPRESSED` right after the version byte: inflate, then decode the payload.
    fn compressed(&mut self) -> Result<(Term, usize)> {
        let at = self.c.pos;
        self.c.pos += 1;
        let declared = self.c.u32()? as usize;
        if declared > MAX_DECOMPRESSED_SIZE {
            return Err(self.err_at(at, DecodeErrorKind::DecompressedTooLarge { declared }));
        }
        let zdata = &self.c.buf[self.c.pos..];
        let (inflated, consumed) = inflate(zdata, declared).map_err(|kind| self.err_at(at, kind))?;
        let inflated = Bytes::from(inflated);
        let mut inner = Dec {
            c: Cursor::new(&inflated, 0),
            src: Src::Slice(&inflated),
            cache: self.cache,
            owed: 0,
            elements: 0,
            rec_limit: self.rec_limit,
        };
        let wrap = |e: DecodeError| DecodeError {
            offset: at,
            kind: DecodeErrorKind::InCompressed { offset: e.offset, kind: Box::new(e.kind) },
        };
        let t = inner.term().map_err(wrap)?;
        if inner.c.pos != inflated.len() {
            let count = inflated.len() - inner.c.pos;
            return Err(wrap(DecodeError { offset: inner.c.pos, kind: DecodeErrorKind::TrailingBytes { count } }));
        }
        Ok((t, self.c.pos + consumed))
    }
}

/// The fast path for the commonest leaves (small and 32-bit integers, floats, short UTF-8
/// atoms, binaries, `[]`, small bignums) at `start`, complete in the input and valid: what
/// `put` makes of the term, and the offset after it. Anything else, including a malformed
/// leaf, is `None` (and `put` is not called), left for the general path, which decodes it or
/// reports the error.
#[inline(always)]
fn fast_leaf<R>(buf: &[u8], start: usize, src: Src, put: impl FnOnce(Term) -> R) -> Option<(R, usize)> {
    let (&tag, body) = buf.get(start..)?.split_first()?;
    // each arm hands its term to `put` itself, so that it can be built where it goes
    let (r, len) = match tag {
        SMALL_INTEGER_EXT => (put(Term::Int(*body.first()? as i64)), 2),
        INTEGER_EXT => (put(Term::Int(i32::from_be_bytes(*body.first_chunk()?) as i64)), 5),
        SMALL_ATOM_UTF8_EXT => {
            let (&n, rest) = body.split_first()?;
            let n = n as usize;
            let atom = match rest.first_chunk::<INLINE_CAP>() {
                Some(window) if n <= INLINE_CAP => Atom::from_utf8_window(window, n)?,
                // at most 255 bytes, so at most 255 characters: always a valid atom
                _ => Atom::try_new(atom_utf8(rest.get(..n)?)?).ok()?,
            };
            (put(Term::Atom(atom)), 2 + n)
        }
        NEW_FLOAT_EXT => {
            let f = f64::from_bits(u64::from_be_bytes(*body.first_chunk()?));
            if !f.is_finite() {
                return None;
            }
            (put(Term::Float(f)), 9)
        }
        BINARY_EXT => {
            let n = u32::from_be_bytes(*body.first_chunk()?) as usize;
            let data = body.get(4..)?.get(..n)?;
            (put(Term::Binary(src.binary(buf, start + 5, data))), 5 + n)
        }
        NIL_EXT => (put(Term::List(Vec::new())), 1),
        SMALL_BIG_EXT => {
            let (&n, rest) = body.split_first()?;
            let (&sign, digits) = rest.split_first()?;
            let n = n as usize;
            // BEAM treats any non-zero sign byte as negative
            let i = match digits.first_chunk::<BIG_INLINE_BYTES>() {
                Some(window) if n <= BIG_INLINE_BYTES => BigInt::normalize_window(sign != 0, n, window),
                _ => BigInt::normalize(sign != 0, digits.get(..n)?),
            };
            (put(Term::integer(i)), 3 + n)
        }
        _ => return None,
    };
    Some((r, start + len))
}

/// After a number written into `slots[*i]` by the element loop: while the next elements are
/// numbers too (small integers, integers, finite floats, bignums that fit inline), writes them
/// into the next slots in a loop that knows no other kind, advancing `*i` to the last slot
/// written; returns the offset after the last number. Lists and tuples of numbers spend their
/// time there. That loop is out of line, entered only when a number follows a number, so that
/// the element loop keeps its registers for the other kinds.
#[inline(always)]
fn numbers(slots: &mut [std::mem::MaybeUninit<Term>], i: &mut usize, buf: &[u8], pos: usize) -> usize {
    match buf.get(pos) {
        Some(&(SMALL_INTEGER_EXT | INTEGER_EXT | NEW_FLOAT_EXT | SMALL_BIG_EXT)) => {
            let (written, pos) = number_run(slots.get_mut(*i + 1..).unwrap_or_default(), buf, pos);
            *i += written;
            pos
        }
        _ => pos,
    }
}

/// The numbers at `pos`, written into the first slots of `slots`: how many, and the offset
/// after them.
#[inline(never)]
fn number_run(slots: &mut [std::mem::MaybeUninit<Term>], buf: &[u8], mut pos: usize) -> (usize, usize) {
    let mut k = 0;
    loop {
        let before = k;
        match buf.get(pos) {
            Some(&SMALL_INTEGER_EXT) => same_kind::<2>(
                slots,
                &mut k,
                buf,
                &mut pos,
                SMALL_INTEGER_EXT,
                |_| true,
                |&[_, b], slot| {
                    slot.write(Term::Int(b as i64));
                },
            ),
            Some(&INTEGER_EXT) => same_kind::<5>(
                slots,
                &mut k,
                buf,
                &mut pos,
                INTEGER_EXT,
                |_| true,
                |&[_, b0, b1, b2, b3], slot| {
                    slot.write(Term::Int(i32::from_be_bytes([b0, b1, b2, b3]) as i64));
                },
            ),
            Some(&NEW_FLOAT_EXT) => same_kind::<9>(
                slots,
                &mut k,
                buf,
                &mut pos,
                NEW_FLOAT_EXT,
                |&[_, b0, b1, b2, b3, b4, b5, b6, b7]| f64_finite([b0, b1, b2, b3, b4, b5, b6, b7]),
                |&[_, b0, b1, b2, b3, b4, b5, b6, b7], slot| {
                    slot.write(Term::Float(f64::from_bits(u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]))));
                },
            ),
            Some(&SMALL_BIG_EXT) => {
                while let Some(&[SMALL_BIG_EXT, n, sign, ref rest @ ..]) =
                    buf.get(pos..pos.wrapping_add(3 + BIG_INLINE_BYTES))
                {
                    let (n, negative) = (n as usize, sign != 0);
                    let Some(w) = rest.first_chunk::<BIG_INLINE_BYTES>().filter(|_| n <= BIG_INLINE_BYTES) else {
                        break;
                    };
                    let Some(slot) = slots.get_mut(k) else { break };
                    write_inline_big(slot, negative, n, w);
                    k += 1;
                    pos += 3 + n;
                }
            }
            _ => return (k, pos),
        }
        if k == before {
            return (k, pos);
        }
    }
}

/// Writes the `SMALL_BIG_EXT` value whose `n` magnitude bytes start `window` into `slot`: an
/// integer when it fits an `i64`, else an inline bignum, built in its slot (see [`same_kind`]).
#[inline(always)]
fn write_inline_big(slot: &mut std::mem::MaybeUninit<Term>, negative: bool, n: usize, window: &[u8; BIG_INLINE_BYTES]) {
    match BigInt::window_len(negative, n, window) {
        Ok(len) => slot.write(Term::BigInt(BigInt::from_window(negative, len, window))),
        Err(small) => slot.write(Term::Int(small)),
    };
}

/// The run of `W`-byte elements tagged `tag` at `pos` that `accept` takes, each written into
/// `slots[*k]` (then `*k` advanced) by `write`, built in place: a term built aside and then
/// copied costs a store-forwarding stall. Stops before the first other element, or when the
/// slots run out.
#[inline(always)]
fn same_kind<const W: usize>(
    slots: &mut [std::mem::MaybeUninit<Term>],
    k: &mut usize,
    buf: &[u8],
    pos: &mut usize,
    tag: u8,
    accept: impl Fn(&[u8; W]) -> bool,
    write: impl Fn(&[u8; W], &mut std::mem::MaybeUninit<Term>),
) {
    while let Some(w) = buf.get(*pos..).and_then(|rest| rest.first_chunk::<W>()) {
        if w[0] != tag || !accept(w) {
            return;
        }
        // the element is taken: only now may its slot be
        let Some(slot) = slots.get_mut(*k) else { return };
        write(w, slot);
        *k += 1;
        *pos += W;
    }
}

/// `true` when the big-endian IEEE 754 bits are a finite float (BEAM has no NaN or infinity).
#[inline(always)]
fn f64_finite(bits: [u8; 8]) -> bool {
    f64::from_bits(u64::from_be_bytes(bits)).is_finite()
}

/// Inflates one zlib stream from the start of `z`, which must produce exactly `declared` bytes.
/// Returns the bytes and how much of `z` the stream took. Memory grows with the output actually
/// produced, never beyond `declared + 1`.
pub(super) fn inflate(z: &[u8], declared: usize) -> std::result::Result<(Vec<u8>, usize), DecodeErrorKind> {
    use flate2::{Decompress, FlushDecompress, Status};
    let limit = declared + 1; // one extra byte detects streams that inflate too far
    let mut out: Vec<u8> = Vec::with_capacity(limit.min(z.len().saturating_mul(4).max(1024)));
    let mut d = Decompress::new(true);
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(DecodeErrorKind::DecompressedSizeMismatch { declared });
            }
            let grow = out.capacity().max(1024).min(limit - out.len());
            out.reserve_exact(grow);
        }
        let (in_before, out_before) = (d.total_in(), out.len());
        let input = z.get(in_before as usize..).unwrap_or(&[]);
        let status =
            d.decompress_vec(input, &mut out, FlushDecompress::None).map_err(|_| DecodeErrorKind::BadCompressedData)?;
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                if d.total_in() == in_before && out.len() == out_before && out.len() < out.capacity() {
                    // no progress with room to write: the stream is truncated
                    return Err(DecodeErrorKind::BadCompressedData);
                }
            }
        }
    }
    if out.len() != declared {
        return Err(DecodeErrorKind::DecompressedSizeMismatch { declared });
    }
    Ok((out, d.total_in() as usize))
}

/// An atom's UTF-8 text, checked. Nearly every atom is ASCII, which a word-at-a-time check
/// accepts several times faster than full UTF-8 validation (which cost 7% of decoding a
/// `'$gen_call'`).
#[inline]
fn atom_utf8(text: &[u8]) -> Option<&str> {
    if text.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(text) })
    } else {
        std::str::from_utf8(text).ok()
    }
}

fn has_duplicate_keys(entries: &[(Term, Term)]) -> bool {
    if entries.len() <= MAP_PAIRWISE_MAX {
        for (i, (k, _)) in entries.iter().enumerate() {
            if entries[i + 1..].iter().any(|(k2, _)| k == k2) {
                return true;
            }
        }
        return false;
    }
    match duplicate_keys_fast(entries) {
        Some(found) => found,
        None => duplicate_keys_sip(entries),
    }
}

/// Most probe steps [`duplicate_keys_fast`] takes per key (on average over the map) before
/// it gives up: with a uniform hash and a table at most half full, a key takes about 1.5.
const PROBE_BUDGET_PER_KEY: usize = 8;

/// Looks for equal keys through an open-addressing table of key hashes (`crate::hash`'s keyed
/// `FoldHasher` over `Term`'s `Hash`), at most half full, probed linearly. `None` when
/// probing takes more than [`PROBE_BUDGET_PER_KEY`] steps per key, which a keyed hash makes
/// very unlikely unless a peer found colliding keys: the caller then uses SipHash, whose cost
/// does not depend on the keys, so chosen keys can at worst double the work, never make it
/// quadratic.
fn duplicate_keys_fast(entries: &[(Term, Term)]) -> Option<bool> {
    let n = entries.len();
    if n >= u32::MAX as usize {
        return None;
    }
    let seeds = crate::hash::seeds();
    let cap = n.checked_mul(2)?.next_power_of_two();
    let mask = cap - 1;
    // a slot: the high 32 bits of the key's hash, and 1 + the key's index (0 = empty)
    let mut slots: Vec<u64> = vec![0; cap];
    let mut budget = n.saturating_mul(PROBE_BUDGET_PER_KEY);
    for (i, (k, _)) in entries.iter().enumerate() {
        let h = fold_key_hash(seeds, k);
        let tag = h & 0xffff_ffff_0000_0000;
        let mut at = h as usize & mask;
        loop {
            let slot = slots.get_mut(at)?;
            if *slot == 0 {
                *slot = tag | (i as u64 + 1);
                break;
            }
            if *slot & 0xffff_ffff_0000_0000 == tag {
                let other = (*slot & 0xffff_ffff) as usize - 1;
                if entries.get(other).is_some_and(|(o, _)| o == k) {
                    return Some(true);
                }
            }
            budget = budget.checked_sub(1)?;
            at = (at + 1) & mask;
        }
    }
    Some(false)
}

/// The `FoldHasher` hash of a map key. Integers, atoms and binaries (the usual keys) are
/// hashed directly as a kind word and their value or bytes; other keys through `Term`'s
/// `Hash`. Keys equal under exact equality are the same variant, so they get equal hashes.
#[inline]
fn fold_key_hash(seeds: [u64; 2], k: &Term) -> u64 {
    let mut h = crate::hash::FoldHasher::new(seeds);
    match k {
        Term::Int(i) => {
            h.mix(1);
            h.mix(*i as u64);
        }
        Term::Atom(a) => {
            h.mix(2);
            h.write(a.as_str().as_bytes());
        }
        Term::Binary(b) => {
            h.mix(3);
            h.write(b);
        }
        _ => {
            h.mix(4);
            k.hash(&mut h);
        }
    }
    h.finish()
}

/// The duplicate-key check whose cost chosen keys cannot change (std's SipHash, randomly
/// keyed), for maps where [`duplicate_keys_fast`] ran out of probes.
fn duplicate_keys_sip(entries: &[(Term, Term)]) -> bool {
    // One keyed 64-bit digest per key (std's randomly keyed SipHash, so a peer cannot pick
    // keys that collide); equal digests are checked with real equality. A digest collision
    // between different keys (odds about n^2 / 2^65) falls back to a set of the keys.
    let state = RandomState::new();
    let mut seen: HashMap<u64, usize, BuildDigest> = HashMap::with_capacity_and_hasher(entries.len(), BuildDigest);
    for (i, (k, _)) in entries.iter().enumerate() {
        match seen.entry(key_digest(&state, k)) {
            Entry::Vacant(e) => {
                e.insert(i);
            }
            Entry::Occupied(e) => match entries.get(*e.get()) {
                Some((other, _)) if other == k => return true,
                _ => {
                    let mut set: HashSet<&Term> = HashSet::with_capacity(entries.len());
                    return !entries.iter().all(|(k, _)| set.insert(k));
                }
            },
        }
    }
    false
}

/// Bytes of a key hashed in one hasher write (longer atoms and binaries use `Hash`).
const DIGEST_INLINE: usize = 63;

/// The keyed digest of a map key. Keys equal under exact equality get equal digests: atoms,
/// integers and short binaries (the common keys) are hashed as a kind byte and their bytes
/// in one hasher write, as that is several times cheaper than `Term`'s `Hash`, which the
/// other keys use.
fn key_digest(state: &RandomState, k: &Term) -> u64 {
    let mut h = state.build_hasher();
    let mut buf = [0u8; 1 + DIGEST_INLINE];
    let n = match k {
        Term::Int(i) => {
            buf[0] = 1;
            buf[1..9].copy_from_slice(&i.to_le_bytes());
            9
        }
        Term::Atom(a) if a.as_str().len() <= DIGEST_INLINE => {
            let s = a.as_str().as_bytes();
            buf[0] = 2;
            buf[1..1 + s.len()].copy_from_slice(s);
            1 + s.len()
        }
        Term::Binary(b) if b.len() <= DIGEST_INLINE => {
            buf[0] = 3;
            buf[1..1 + b.len()].copy_from_slice(b);
            1 + b.len()
        }
        _ => {
            k.hash(&mut h);
            return h.finish();
        }
    };
    h.write(&buf[..n]);
    h.finish()
}

/// Hashes the `u64` digests of [`key_digest`], which are already uniform, as themselves.
#[derive(Clone, Copy, Default)]
struct BuildDigest;

/// The hasher of [`BuildDigest`].
#[derive(Default)]
struct DigestHasher(u64);

impl BuildHasher for BuildDigest {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // only `write_u64` is used (the key is a u64); fold anything else in anyway
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Parses the 31-byte `FLOAT_EXT` text: a float as `printf("%.20e")` writes it, NUL padded.
/// BEAM accepts `[+-]digits.digits[e[+-]digits]` with nothing else before the first NUL
/// (checked: `"1"`, `"1e5"`, `" 1.5"` and `"1.5 "` are rejected).
pub(super) fn parse_float_text(text: &[u8]) -> Option<f64> {
    use nom::Parser;
    use nom::character::complete::{char, digit1, one_of};
    use nom::combinator::{all_consuming, opt, recognize};

    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let s = std::str::from_utf8(&text[..end]).ok()?;
    let sign = || opt(one_of::<_, _, nom::error::Error<&str>>("+-"));
    let exponent = opt((one_of("eE"), sign(), digit1));
    let mut float = all_consuming(recognize((sign(), digit1, char('.'), digit1, exponent)));
    let (_, matched) = float.parse(s).ok()?;
    matched.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &[u8]) -> DecodeErrorKind {
        decode(input).unwrap_err().kind
    }

    #[test]
    fn scalars() {
        assert_eq!(decode(&[131, 97, 7]).unwrap(), Term::Int(7));
        assert_eq!(decode(&[131, 98, 255, 255, 255, 254]).unwrap(), Term::Int(-2));
        assert_eq!(decode(&[131, 110, 2, 0, 1, 0]).unwrap(), Term::Int(1));
        assert_eq!(decode(&[131, 110, 2, 2, 1, 0]).unwrap(), Term::Int(-1));
        assert_eq!(decode(&[131, 110, 0, 1]).unwrap(), Term::Int(0));
        assert_eq!(decode(&[131, 119, 2, b'o', b'k']).unwrap(), Term::atom("ok"));
        assert_eq!(decode(&[131, 100, 0, 2, 0xe9, b'a']).unwrap(), Term::atom("éa"));
    }

    #[test]
    fn old_float_text() {
        let mut b = vec![131, 99];
        let mut text = b"1.50000000000000000000e+00".to_vec();
        text.resize(31, 0);
        b.extend_from_slice(&text);
        assert_eq!(decode(&b).unwrap(), Term::Float(1.5));
        for bad in [&b"1"[..], b"1e5", b" 1.5", b"1.5 ", b"inf", b"1.5xyz"] {
            let mut b = vec![131, 99];
            let mut text = bad.to_vec();
            text.resize(31, 0);
            b.extend_from_slice(&text);
            assert_eq!(err(&b), DecodeErrorKind::BadFloatText, "{bad:?}");
        }
        let mut b = vec![131, 99];
        let mut text = b"1.0e999".to_vec();
        text.resize(31, 0);
        b.extend_from_slice(&text);
        assert_eq!(err(&b), DecodeErrorKind::NonFiniteFloat);
    }

    #[test]
    fn list_tails_are_spliced() {
        // [1 | [2 | 3]] written with a LIST_EXT tail
        let b = [131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 97, 3];
        assert_eq!(decode(&b).unwrap(), Term::Improper(vec![Term::Int(1), Term::Int(2)], Box::new(Term::Int(3))));
        // [1 | "ab"] is the proper list [1, 97, 98]
        let b = [131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 97, 98];
        assert_eq!(decode(&b).unwrap(), crate::list![1, 97, 98]);
        // LIST_EXT with no elements is its tail (BEAM agrees)
        assert_eq!(decode(&[131, 108, 0, 0, 0, 0, 97, 1]).unwrap(), Term::Int(1));
        assert_eq!(decode(&[131, 107, 0, 0]).unwrap(), Term::nil());
    }

    #[test]
    fn strictness_matches_beam() {
        assert_eq!(err(&[131, 70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0]), DecodeErrorKind::NonFiniteFloat);
        assert_eq!(err(&[131, 116, 0, 0, 0, 2, 97, 1, 97, 1, 97, 1, 97, 2]), DecodeErrorKind::DuplicateMapKey);
        assert_eq!(err(&[131, 77, 0, 0, 0, 0, 0]), DecodeErrorKind::BadBitBinary { len: 0, bits: 0 });
        assert_eq!(err(&[131, 77, 0, 0, 0, 1, 9, 255]), DecodeErrorKind::BadBitBinary { len: 1, bits: 9 });
        assert_eq!(decode(&[131, 77, 0, 0, 0, 1, 8, 255]).unwrap(), Term::binary([255]));
        let bits = decode(&[131, 77, 0, 0, 0, 1, 3, 255]).unwrap();
        assert_eq!(bits, Term::BitBinary(BitBinary { data: Bytes::from_static(&[0xe0]), bits: 3 }));
        assert_eq!(err(&[131, 118, 0, 2, 255, 0]), DecodeErrorKind::InvalidAtomUtf8);
        assert_eq!(err(&[131, 97, 1, 0]), DecodeErrorKind::TrailingBytes { count: 1 });
        assert_eq!(err(&[130, 97, 1]), DecodeErrorKind::BadVersion(130));
        assert_eq!(err(&[131, 117]), DecodeErrorKind::Unsupported(117));
        assert_eq!(err(&[131, 121]), DecodeErrorKind::Unsupported(121));
        assert_eq!(err(&[131, 104, 1, 80]), DecodeErrorKind::MisplacedCompressed);
    }

    #[test]
    fn duplicate_keys_in_large_maps() {
        let encode = super::super::encode;
        let kinds = [
            Term::Int(-5),
            Term::Int(i64::MIN),
            Term::atom("k"),
            Term::binary(b"k"),
            Term::binary(vec![7u8; 100]),
            crate::tuple![1, 2],
            Term::Float(1.0),
        ];
        for dup in kinds {
            // 40 integer keys (1 among them, next to the float 1.0: a different key)
            let mut entries: Vec<(Term, Term)> = (0..40).map(|i| (Term::Int(i), Term::Int(i))).collect();
            entries.push((dup.clone(), Term::nil()));
            let ok = Term::Map(Map::from_distinct_entries(entries.clone()));
            assert_eq!(decode(&encode(&ok)).unwrap(), ok, "{dup:?}");
            entries.insert(10, (dup.clone(), Term::Int(0)));
            let bad = Term::Map(Map::from_distinct_entries(entries));
            assert_eq!(err(&encode(&bad)), DecodeErrorKind::DuplicateMapKey, "{dup:?}");
        }
    }

    #[test]
    fn huge_counts_fail_before_allocating() {
        let e = decode(&[131, 105, 255, 255, 255, 255, 97, 1]).unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(matches!(e.kind, DecodeErrorKind::TooManyElements { declared: 0xffff_ffff, .. }));
        // nested claims add up: {[x, y]} with only 3 bytes left for 2 elements + tail + ...
        let e = decode(&[131, 104, 2, 108, 0, 0, 0, 2, 97, 1]).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::TooManyElements { .. }), "{e}");
    }

    #[test]
    fn atom_cache_refs() {
        let input = Bytes::from_static(&[104, 2, 82, 1, 82, 0]);
        let cache = [Atom::new("a"), Atom::new("b")];
        let opts = DecodeOptions { version_byte: false, atom_cache: Some(&cache) };
        let (t, end) = decode_term_at(&input, 0, &opts).unwrap();
        assert_eq!(t, Term::Tuple(vec![Term::atom("b"), Term::atom("a")]));
        assert_eq!(end, 6);
        let opts = DecodeOptions { version_byte: false, atom_cache: Some(&cache[..1]) };
        let e = decode_term_at(&input, 0, &opts).unwrap_err();
        assert_eq!(e.offset, 2);
        assert_eq!(e.kind, DecodeErrorKind::AtomCacheIndexOutOfRange { index: 1, len: 1 });
        let opts = DecodeOptions { version_byte: false, atom_cache: None };
        assert_eq!(decode_term_at(&input, 0, &opts).unwrap_err().kind, DecodeErrorKind::AtomCacheRefWithoutCache);
    }

    #[test]
    fn term_at_offset_reports_the_end() {
        let input = Bytes::from_static(&[0, 0, 131, 109, 0, 0, 0, 2, 7, 8, 131, 106]);
        let (t, end) = decode_term_at(&input, 2, &DecodeOptions::default()).unwrap();
        assert_eq!(t, Term::binary([7, 8]));
        assert_eq!(end, 10);
        let (t, end) = decode_term_at(&input, end, &DecodeOptions::default()).unwrap();
        assert_eq!((t, end), (Term::nil(), 12));
    }

    #[test]
    fn compressed_round_trip_and_errors() {
        let t = Term::List((0..1000).map(Term::Int).collect());
        let z = super::super::encode_compressed(&t, 6);
        assert_eq!(decode(&z).unwrap(), t);
        assert_eq!(decode_bytes(Bytes::from(z.clone())).unwrap(), t);
        // wrong declared size
        let mut bad = z.clone();
        bad[5] ^= 1;
        assert!(matches!(err(&bad), DecodeErrorKind::DecompressedSizeMismatch { .. }));
        // truncated stream
        let e = decode(&z[..z.len() - 3]).unwrap_err();
        assert_eq!(e.offset, 1);
        // trailing data after a compressed term is reported at the end of the zlib stream
        let mut extra = z.clone();
        extra.push(0);
        assert_eq!(
            decode(&extra).unwrap_err(),
            DecodeError { offset: z.len(), kind: DecodeErrorKind::TrailingBytes { count: 1 } }
        );
    }

    #[test]
    fn element_budget_bounds_compressed_amplification() {
        // Fuzzing found (decode_term, -rss_limit_mb=2048): a 58 KB COMPRESSED term inflating to
        // a LIST_EXT of 60 million NIL_EXT made the decoder ask for 3.36 GB at once, one
        // 56-byte Term per inflated byte. The same shape just over MAX_TERM_ELEMENTS must fail
        // before anything is allocated for the elements.
        use flate2::{Compression, write::ZlibEncoder};
        use std::io::Write;
        let n = MAX_TERM_ELEMENTS;
        let mut inner = vec![LIST_EXT];
        inner.extend_from_slice(&(n as u32).to_be_bytes());
        inner.resize(5 + n + 1, NIL_EXT);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
        z.write_all(&inner).unwrap();
        let mut b = vec![VERSION_MAGIC, COMPRESSED];
        b.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        b.extend_from_slice(&z.finish().unwrap());
        assert!(b.len() < 64 << 10, "{}", b.len());
        let kind = DecodeErrorKind::TooManyTermElements { declared: n + 1 };
        assert_eq!(err(&b), DecodeErrorKind::InCompressed { offset: 0, kind: Box::new(kind) });

        // uncompressed, the budget counts every container and STRING_EXT in the term
        let mut b = vec![VERSION_MAGIC, SMALL_TUPLE_EXT, 2, STRING_EXT, 0xff, 0xff];
        b.resize(b.len() + 0xffff, 1);
        b.extend_from_slice(&[LIST_EXT, 0x00, 0x80, 0, 0]);
        b.resize(b.len() + (1 << 23) + 1, NIL_EXT);
        let declared = 2 + 0xffff + (1 << 23) + 1;
        assert_eq!(err(&b), DecodeErrorKind::TooManyTermElements { declared });
    }

    #[test]
    fn zero_copy_binaries() {
        let input = Bytes::from(vec![131, 109, 0, 0, 0, 3, 1, 2, 3]);
        let Term::Binary(b) = decode_bytes(input.clone()).unwrap() else { panic!() };
        assert_eq!(b.as_ptr(), input[6..].as_ptr());
    }

    #[test]
    fn small_binaries_from_a_slice_share_windows_of_the_input() {
        // binaries of 0..=80 bytes (small and not), across several windows
        let t = Term::List((0..300u32).map(|i| Term::binary(vec![i as u8; (i % 81) as usize])).collect());
        let input = crate::term::encode(&t);
        let back = decode(&input).unwrap();
        assert_eq!(back, t);
        assert_eq!(decode_iterative(&input).unwrap(), t);
        let Term::List(l) = back else { panic!() };
        let (Term::Binary(a), Term::Binary(b)) = (&l[3], &l[4]) else { panic!() };
        // the first two small binaries get a buffer each; then neighbours share a window:
        // contiguous in one copy (the 5-byte header between them)
        assert_eq!(a.as_ptr() as usize + a.len() + 5, b.as_ptr() as usize);
        // never a slice of the caller's buffer
        assert!(l.iter().all(|t| match t {
            Term::Binary(b) => !input.as_ptr_range().contains(&b.as_ptr()) || b.is_empty(),
            _ => false,
        }));
    }

    fn nested(depth: usize, open: &[u8], close: &[u8]) -> Vec<u8> {
        let mut b = vec![131];
        for _ in 0..depth {
            b.extend_from_slice(open);
        }
        b.extend_from_slice(&[97, 1]);
        for _ in 0..depth {
            b.extend_from_slice(close);
        }
        b
    }

    /// A term `depth` containers deep, cycling through every kind of container, with leaves
    /// of every fast-path kind beside each level.
    fn mixed_deep(depth: usize) -> Term {
        let mut t = Term::atom("bottom");
        for i in 0..depth {
            let leaves = vec![
                Term::Int(i as i64),
                Term::Int(-70000 * i as i64),
                Term::Float(i as f64 / 3.0),
                Term::binary(vec![i as u8; i % 5]),
                Term::atom("leaf"),
                Term::nil(),
            ];
            t = match i % 5 {
                0 => Term::Tuple([vec![t], leaves].concat()),
                1 => Term::List([leaves, vec![t]].concat()),
                2 => Term::list_with_tail(leaves, Term::Tuple(vec![t])),
                3 => Term::Map(Map::from_distinct_entries(vec![(Term::Int(1), t), (Term::atom("k"), Term::nil())])),
                _ => Term::LocalFun(Box::new(LocalFun {
                    arity: 1,
                    uniq: [7; 16],
                    index: 2,
                    module: Atom::new("m"),
                    old_index: Term::Int(3),
                    old_uniq: Term::Int(4),
                    pid: Term::Pid(Pid { node: Atom::new("a@b"), id: 1, serial: 2, creation: 3 }),
                    free_vars: vec![t, Term::Int(5)],
                })),
            };
        }
        t
    }

    #[test]
    fn recursive_and_iterative_paths_agree() {
        let encode = super::super::encode;
        // shallower than, at and past the recursion limit, where the paths hand over
        for depth in [1, 5, REC_DEPTH - 1, REC_DEPTH, REC_DEPTH + 1, 3 * REC_DEPTH + 2] {
            let t = mixed_deep(depth);
            let wire = encode(&t);
            assert_eq!(decode(&wire).as_ref(), Ok(&t), "depth {depth}");
            assert_eq!(decode_iterative(&wire).as_ref(), Ok(&t), "depth {depth}");
            assert_eq!(decode_bytes(Bytes::from(wire.clone())).as_ref(), Ok(&t), "depth {depth}");
            // damaged copies fail (or not) the same way on both paths, at the same offset
            for i in 1..wire.len() {
                for x in [0x01u8, 0x80, 0xff] {
                    let mut m = wire.clone();
                    m[i] ^= x;
                    assert_eq!(decode(&m), decode_iterative(&m), "depth {depth}, byte {i} ^ {x}");
                }
                assert_eq!(decode(&wire[..i]), decode_iterative(&wire[..i]), "depth {depth}, cut at {i}");
            }
        }
    }

    #[test]
    fn failed_maps_and_lists_release_what_they_decoded() {
        // a map whose second value fails after its key (a zero-copy binary) was decoded into
        // place, and a list failing after binaries: every slice of the input is dropped, so
        // the input is unique again
        let encode = super::super::encode;
        let good = Term::Map(Map::from_distinct_entries(vec![
            (Term::binary(b"k1"), Term::binary(b"v1")),
            (Term::binary(b"k2"), Term::Float(2.0)),
        ]));
        let mut wire = encode(&good);
        let at = wire.iter().position(|&b| b == NEW_FLOAT_EXT).unwrap();
        wire[at + 1..at + 9].copy_from_slice(&f64::INFINITY.to_bits().to_be_bytes());
        let list = encode(&Term::List(vec![Term::binary(b"a"), Term::binary(b"b"), Term::Int(1)]));
        let mut bad_list = list.clone();
        let last = bad_list.len() - 3;
        bad_list[last] = 255; // the tag of the integer
        for bytes in [wire, bad_list] {
            let input = Bytes::from(bytes);
            assert!(decode_bytes(input.clone()).is_err());
            assert!(input.is_unique(), "a decoded binary outlived its failed decode");
        }
    }

    #[test]
    fn number_runs_stop_where_they_should() {
        let encode = super::super::encode;
        let nums = |base: i64| {
            vec![Term::Int(base), Term::Int(base + 1_000_000), Term::Float(base as f64 + 0.5), Term::Int(7)]
        };
        // a container that ends inside a run, in a parent whose run goes on after it
        let t = Term::List([nums(1), vec![Term::Tuple(nums(2))], nums(3), vec![Term::List(nums(4))], nums(5)].concat());
        let wire = encode(&t);
        assert_eq!(decode(&wire).as_ref(), Ok(&t));
        assert_eq!(decode_iterative(&wire).as_ref(), Ok(&t));
        // a non-finite float inside a run is an error at its tag, on both paths
        let mut bad = wire.clone();
        let at = bad.iter().position(|&b| b == NEW_FLOAT_EXT).unwrap();
        bad[at + 1..at + 9].copy_from_slice(&f64::NAN.to_bits().to_be_bytes());
        let e = decode(&bad).unwrap_err();
        assert_eq!(e, DecodeError { offset: at, kind: DecodeErrorKind::NonFiniteFloat });
        assert_eq!(decode_iterative(&bad), Err(e));
        // a run that reaches the end of the input
        for cut in wire.len() - 12..wire.len() {
            assert_eq!(decode(&wire[..cut]), decode_iterative(&wire[..cut]), "cut at {cut}");
        }
    }

    #[test]
    fn max_depth_is_safe_on_a_small_stack() {
        // the term model drops, compares and hashes recursively: the limit must leave those
        // safe on a 2 MiB thread, even in a debug build
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                for (open, close) in [(&[104u8, 1][..], &[][..]), (&[108, 0, 0, 0, 1][..], &[106][..])] {
                    let ok = nested(MAX_TERM_DEPTH, open, close);
                    let t = decode(&ok).unwrap();
                    let t2 = t.clone();
                    assert!(t == t2);
                    assert!(t.cmp(&t2) == std::cmp::Ordering::Equal);
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    std::hash::Hash::hash(&t, &mut h);
                    assert!(decode(&super::super::encode(&t)).unwrap() == t);
                    let _ = format!("{t:?}");
                    drop(t);
                    drop(t2);
                    let deep = nested(MAX_TERM_DEPTH + 1, open, close);
                    let e = decode(&deep).unwrap_err();
                    assert_eq!(e.kind, DecodeErrorKind::TooDeep);
                    assert_eq!(e.offset, 1 + MAX_TERM_DEPTH * open.len());
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
