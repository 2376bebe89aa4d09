//! What is inside a frame, before the terms: pass-through (`112`), the distribution header
//! with atom-cache references (`131,68`), and fragments (`131,69` first, `131,70` later)
//! (`erl_ext_dist`, "Distribution Header" and "Distribution Header for Fragmented Messages";
//! `erl_dist_protocol`, "Protocol between Connected Nodes").
//!
//! [`HeaderDecoder`] is per connection and per direction: it owns the 2048-slot atom cache
//! that new entries in one header fill for later messages, and the fragmented messages being
//! reassembled. It hands out a [`Body`]: where the control term starts, and the atoms that
//! `ATOM_CACHE_REF` indices in the terms stand for. Decoding the terms is the caller's job.
//!
//! ```text
//! 131 68 N Flags(N/2+1 bytes, only if N > 0) AtomCacheRef*N  Control Payload?
//! 131 69 SequenceId:64 FragmentId:64 N Flags AtomCacheRef*N   first chunk of Control Payload?
//! 131 70 SequenceId:64 FragmentId:64                           next chunk
//! 112 131 Control [131 Payload]                                 (pass-through)
//! ```
//!
//! Atom cache references are parsed as the guide says: reference *i*'s flag nibble is the low
//! half of byte i/2 for even *i*, the high half for odd *i*; bit 3 is "new entry", bits 0-2
//! the segment; the nibble after the last reference has bit 0 "long atoms" (2-byte lengths).
//! Each reference is an internal index byte, followed for a new entry by the atom's length and
//! text. The slot is `segment * 256 + internal index`.
//!
//! A first fragment's header updates the cache when it arrives, before the message is
//! complete, because the sender encoded it before any later message.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use super::pool::BufferPool;
use super::{DistError, DistFlags};
use crate::term::Atom;

pub use crate::term::tags::VERSION_MAGIC;
/// `DIST_HEADER` (`'D'`): a normal distribution header.
pub const DIST_HEADER: u8 = 68;
/// `DIST_FRAG_HEADER` (`'E'`): the first fragment of a message.
pub const DIST_FRAG_HEADER: u8 = 69;
/// `DIST_FRAG_CONT` (`'F'`): a later fragment.
pub const DIST_FRAG_CONT: u8 = 70;
/// `PASS_THROUGH` (`'p'`): no header; terms carry their own version byte.
pub const PASS_THROUGH: u8 = 112;

/// Slots in the atom cache of one connection direction (8 segments of 256).
pub const ATOM_CACHE_SIZE: usize = 2048;
/// At most this many atom-cache references in one header (`NumberOfAtomCacheRefs` is a byte).
pub const MAX_ATOM_CACHE_REFS: usize = 255;
/// At most this many fragmented messages being reassembled at once on one connection.
///
/// BEAM interleaves fragments of messages from different senders; each sequence costs a
/// buffer, so a peer cannot open unboundedly many.
pub const MAX_FRAGMENTED_IN_FLIGHT: usize = 256;
/// The largest message (control plus payload bytes) that reassembly builds.
pub const MAX_MESSAGE_SIZE: usize = 128 * 1024 * 1024;
/// The most bytes held by all messages under reassembly together.
pub const MAX_REASSEMBLY_BYTES: usize = 256 * 1024 * 1024;

/// Bytes of SequenceId plus FragmentId.
const FRAGMENT_IDS_SIZE: usize = 16;

/// The atoms a receiver has been told about, by slot.
#[derive(Clone, Debug)]
pub struct AtomCache {
    slots: Vec<Option<Atom>>,
}

impl Default for AtomCache {
    fn default() -> Self {
        AtomCache::new()
    }
}

impl AtomCache {
    /// An empty cache of [`ATOM_CACHE_SIZE`] slots.
    pub fn new() -> AtomCache {
        AtomCache { slots: vec![None; ATOM_CACHE_SIZE] }
    }

    /// The atom in `slot`, if one was set.
    pub fn get(&self, slot: usize) -> Option<&Atom> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    /// Sets `slot` (ignored beyond [`ATOM_CACHE_SIZE`], which no header can name).
    pub fn set(&mut self, slot: usize, atom: Atom) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(atom);
        }
    }
}

/// The terms of one message, ready to decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    /// The bytes holding the terms (the frame itself, or the reassembled fragments).
    pub data: Bytes,
    /// Where the control term starts in `data`.
    pub start: usize,
    /// `Some`: header framing; the terms have no version byte and `ATOM_CACHE_REF` index *i*
    /// is `atoms[i]`. `None`: pass-through; each term starts with its own `131`.
    pub atoms: Option<Vec<Atom>>,
}

/// A message's terms as [`HeaderDecoder::handle_into`] hands them out: a [`Body`] whose atoms
/// are [`HeaderDecoder::atoms`].
#[derive(Debug)]
pub(crate) struct Framed {
    /// The bytes holding the terms.
    pub data: Bytes,
    /// Where the control term starts in `data`.
    pub start: usize,
    /// Header framing (the atoms apply, terms have no version byte); `false`: pass-through.
    pub header: bool,
}

/// A small cursor over peer bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self, what: &'static str) -> Result<u8, DistError> {
        let b = *self.buf.get(self.pos).ok_or(DistError::Truncated { what })?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DistError> {
        let end = self.pos.checked_add(n).ok_or(DistError::Truncated { what })?;
        let s = self.buf.get(self.pos..end).ok_or(DistError::Truncated { what })?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DistError> {
        let b = self.bytes(2, what)?;
        b.try_into().map(u16::from_be_bytes).map_err(|_| DistError::Truncated { what })
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DistError> {
        let b = self.bytes(8, what)?;
        b.try_into().map(u64::from_be_bytes).map_err(|_| DistError::Truncated { what })
    }
}

/// Reads the atom-cache section that starts at `input[offset]` (`NumberOfAtomCacheRefs`),
/// updating `cache` with new entries. Returns the atoms of the references, in order, and the
/// offset just after the section.
///
/// Atom texts are UTF-8 when `DFLAG_UTF8_ATOMS` was negotiated (`utf8`), Latin-1 otherwise.
pub fn read_atom_cache_refs(
    input: &[u8],
    offset: usize,
    cache: &mut AtomCache,
    utf8: bool,
) -> Result<(Vec<Atom>, usize), DistError> {
    let mut atoms = Vec::new();
    let (end, _) = read_atom_cache_refs_into(input, offset, cache, utf8, &mut atoms)?;
    Ok((atoms, end))
}

/// [`read_atom_cache_refs`] into a caller's vector (cleared first), so that the receive path
/// reuses one allocation for every message. Also says whether the section had new entries.
fn read_atom_cache_refs_into(
    input: &[u8],
    offset: usize,
    cache: &mut AtomCache,
    utf8: bool,
    atoms: &mut Vec<Atom>,
) -> Result<(usize, bool), DistError> {
    atoms.clear();
    let mut r = Reader { buf: input, pos: offset };
    let n = r.u8("NumberOfAtomCacheRefs")? as usize;
    if n == 0 {
        return Ok((r.pos, false));
    }
    let flags = r.bytes(n / 2 + 1, "atom cache flags")?;
    let nibble = |i: usize| {
        let byte = flags.get(i / 2).copied().unwrap_or(0);
        if i % 2 == 0 { byte & 0x0f } else { byte >> 4 }
    };
    let long_atoms = nibble(n) & 0x01 != 0;
    atoms.reserve(n);
    let mut any_new = false;
    for i in 0..n {
        let f = nibble(i);
        let new_entry = f & 0x08 != 0;
        any_new |= new_entry;
        let segment = (f & 0x07) as usize;
        let internal = r.u8("InternalSegmentIndex")? as usize;
        let slot = segment * 256 + internal;
        if new_entry {
            let len = if long_atoms { r.u16("atom length")? as usize } else { r.u8("atom length")? as usize };
            let text = r.bytes(len, "atom text")?;
            let atom = if utf8 {
                std::str::from_utf8(text).ok().and_then(|s| Atom::try_new(s).ok())
            } else {
                let s: String = text.iter().map(|&b| char::from(b)).collect();
                Atom::try_new(&s).ok()
            }
            .ok_or(DistError::BadAtomText { index: i })?;
            cache.set(slot, atom.clone());
            atoms.push(atom);
        } else {
            let atom = cache.get(slot).ok_or(DistError::UnknownAtomCacheSlot { slot })?;
            atoms.push(atom.clone());
        }
    }
    Ok((r.pos, any_new))
}

/// Atom-cache sections a [`HeaderDecoder`] remembers.
const MAX_KEPT_SECTIONS: usize = 8;

/// An atom-cache section without new entries, and the atoms it stood for.
#[derive(Debug)]
struct Section {
    bytes: Vec<u8>,
    atoms: Vec<Atom>,
}

/// Whose atoms the last message had.
#[derive(Clone, Copy, Debug)]
enum Current {
    /// A kept section's.
    Section(usize),
    /// `scratch`.
    Scratch,
}

/// A message being reassembled.
#[derive(Debug)]
struct Partial {
    atoms: Vec<Atom>,
    next_fragment: u64,
    /// A region of the decoder's [`BufferPool`], sized for the whole message when the
    /// fragments are equal.
    data: BytesMut,
}

/// Turns frames into message bodies for one connection direction: checks the framing the
/// negotiated flags allow, keeps the atom cache, and reassembles fragments.
#[derive(Debug)]
pub struct HeaderDecoder {
    cache: AtomCache,
    in_flight: HashMap<u64, Partial>,
    buffered: usize,
    /// Recent atom-cache sections that had no new entries, with their atoms: a message with
    /// the same section as one of these (messages between the same processes, of the same
    /// kind) reuses the atoms without reading the cache again. Emptied by any new entry.
    sections: Vec<Section>,
    /// Where the next section goes once `sections` is full.
    evict: usize,
    /// The atoms of the last message when they are not a section's (fragments, new entries).
    scratch: Vec<Atom>,
    /// Which atoms the last message had.
    current: Current,
    /// Where reassembled messages are built (reused once the messages are dropped).
    pool: BufferPool,
    allow_pass_through: bool,
    utf8_atoms: bool,
    max_message_size: usize,
}

impl HeaderDecoder {
    /// A decoder for a connection with these negotiated flags.
    ///
    /// Pass-through frames are accepted only when neither `DIST_HDR_ATOM_CACHE` nor
    /// `FRAGMENTS` was negotiated (with either, BEAM only sends headers, and treats a
    /// pass-through frame as a protocol error). Header and fragment frames are always
    /// accepted.
    pub fn new(negotiated: DistFlags) -> HeaderDecoder {
        HeaderDecoder {
            cache: AtomCache::new(),
            in_flight: HashMap::new(),
            buffered: 0,
            sections: Vec::new(),
            evict: 0,
            scratch: Vec::new(),
            current: Current::Scratch,
            pool: BufferPool::new(),
            allow_pass_through: !negotiated.contains(DistFlags::DIST_HDR_ATOM_CACHE)
                && !negotiated.contains(DistFlags::FRAGMENTS),
            utf8_atoms: negotiated.contains(DistFlags::UTF8_ATOMS),
            max_message_size: MAX_MESSAGE_SIZE,
        }
    }

    /// Lowers (or raises) the limit on one reassembled message from [`MAX_MESSAGE_SIZE`].
    pub fn with_max_message_size(mut self, max: usize) -> HeaderDecoder {
        self.max_message_size = max;
        self
    }

    /// The atom cache as the peer has filled it so far.
    pub fn atom_cache(&self) -> &AtomCache {
        &self.cache
    }

    /// Fragmented messages currently being reassembled.
    pub fn fragmented_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Takes one frame body (without its length prefix). Returns `Ok(None)` for a tick (an
    /// empty frame) and for a fragment that does not complete its message.
    pub fn handle(&mut self, frame: Bytes) -> Result<Option<Body>, DistError> {
        Ok(self.handle_into(frame)?.map(|f| Body {
            data: f.data,
            start: f.start,
            atoms: f.header.then(|| self.atoms().to_vec()),
        }))
    }

    /// [`HeaderDecoder::handle`] without building the [`Body`]: with header framing, the atoms
    /// of the references are [`HeaderDecoder::atoms`] until the next call.
    pub(crate) fn handle_into(&mut self, frame: Bytes) -> Result<Option<Framed>, DistError> {
        let (first, second) = match (frame.first(), frame.get(1)) {
            (None, _) => return Ok(None),
            (Some(&a), b) => (a, b.copied()),
        };
        match (first, second) {
            (PASS_THROUGH, _) => {
                if !self.allow_pass_through {
                    return Err(DistError::PassThroughNotAllowed);
                }
                Ok(Some(Framed { data: frame, start: 1, header: false }))
            }
            (VERSION_MAGIC, Some(DIST_HEADER)) => {
                let start = self.read_refs(&frame, 2)?;
                Ok(Some(Framed { data: frame, start, header: true }))
            }
            (VERSION_MAGIC, Some(DIST_FRAG_HEADER)) => self.first_fragment(frame),
            (VERSION_MAGIC, Some(DIST_FRAG_CONT)) => self.next_fragment(frame),
            (VERSION_MAGIC, Some(tag)) => Err(DistError::UnknownFrameKind { tag }),
            (VERSION_MAGIC, None) => Err(DistError::Truncated { what: "header tag" }),
            (tag, _) => Err(DistError::UnknownFrameKind { tag }),
        }
    }

    /// The atoms of the last message's atom-cache references (see
    /// [`HeaderDecoder::handle_into`]).
    pub(crate) fn atoms(&self) -> &[Atom] {
        match self.current {
            Current::Section(i) => self.sections.get(i).map_or(&[][..], |s| &s.atoms),
            Current::Scratch => &self.scratch,
        }
    }

    /// Reads the atom-cache section at `offset` (the atoms are then [`HeaderDecoder::atoms`]);
    /// returns where it ends.
    fn read_refs(&mut self, frame: &[u8], offset: usize) -> Result<usize, DistError> {
        let rest = frame.get(offset..).unwrap_or_default();
        // the same references as a recent message, none new: the same atoms (the last hit is
        // the likeliest)
        let last = match self.current {
            Current::Section(i) => i,
            Current::Scratch => 0,
        };
        let n = self.sections.len();
        for i in (0..n).map(|k| (last + k) % n) {
            if let Some(sec) = self.sections.get(i) {
                if rest.starts_with(&sec.bytes) {
                    self.current = Current::Section(i);
                    return Ok(offset + sec.bytes.len());
                }
            }
        }
        self.current = Current::Scratch;
        let (end, any_new) =
            read_atom_cache_refs_into(frame, offset, &mut self.cache, self.utf8_atoms, &mut self.scratch)?;
        if any_new {
            // slots changed: what the kept sections meant may have too
            self.sections.clear();
            self.evict = 0;
        } else {
            let sec = Section {
                bytes: frame.get(offset..end).unwrap_or_default().to_vec(),
                atoms: std::mem::take(&mut self.scratch),
            };
            let i = if self.sections.len() < MAX_KEPT_SECTIONS {
                self.sections.push(sec);
                self.sections.len() - 1
            } else {
                let i = self.evict;
                self.evict = (i + 1) % MAX_KEPT_SECTIONS;
                if let Some(old) = self.sections.get_mut(i) {
                    self.scratch = std::mem::replace(old, sec).atoms;
                }
                i
            };
            self.current = Current::Section(i);
        }
        Ok(end)
    }

    fn first_fragment(&mut self, frame: Bytes) -> Result<Option<Framed>, DistError> {
        /// How many fragments' worth of the first fragment's size a reassembly buffer may
        /// reserve up front.
        const PREALLOC_FRAGMENTS: u64 = 16;
        let mut r = Reader { buf: &frame, pos: 2 };
        let sequence = r.u64("SequenceId")?;
        let fragment = r.u64("FragmentId")?;
        if fragment == 0 {
            return Err(DistError::ZeroFragmentId { sequence });
        }
        if self.in_flight.contains_key(&sequence) {
            return Err(DistError::SequenceInUse { sequence });
        }
        let start = self.read_refs(&frame, r.pos)?;
        if fragment == 1 {
            // a message in a single fragment
            return Ok(Some(Framed { data: frame, start, header: true }));
        }
        if self.in_flight.len() >= MAX_FRAGMENTED_IN_FLIGHT {
            return Err(DistError::TooManyFragmentedMessages { max: MAX_FRAGMENTED_IN_FLIGHT });
        }
        let chunk = frame.get(start..).unwrap_or_default();
        self.reserve(0, chunk.len())?;
        // room for the whole message at once (fragments are usually equal in size), so that
        // joining them copies each byte once; the peer-given count is trusted only up to
        // PREALLOC_FRAGMENTS times the bytes actually received
        let expected = chunk.len().saturating_mul(fragment.min(PREALLOC_FRAGMENTS) as usize);
        let mut data = self.pool.region(expected.min(self.max_message_size).max(chunk.len()));
        data.extend_from_slice(chunk);
        self.in_flight.insert(sequence, Partial { atoms: self.atoms().to_vec(), next_fragment: fragment - 1, data });
        Ok(None)
    }

    fn next_fragment(&mut self, frame: Bytes) -> Result<Option<Framed>, DistError> {
        let mut r = Reader { buf: &frame, pos: 2 };
        let sequence = r.u64("SequenceId")?;
        let fragment = r.u64("FragmentId")?;
        let chunk = frame.get(2 + FRAGMENT_IDS_SIZE..).unwrap_or_default();
        let expected = match self.in_flight.get(&sequence) {
            Some(p) => p.next_fragment,
            None => return Err(DistError::UnknownSequence { sequence }),
        };
        if fragment != expected {
            return Err(DistError::FragmentOutOfOrder { sequence, expected, got: fragment });
        }
        let have = self.in_flight.get(&sequence).map_or(0, |p| p.data.len());
        self.reserve(have, chunk.len())?;
        let Some(partial) = self.in_flight.get_mut(&sequence) else {
            return Err(DistError::UnknownSequence { sequence });
        };
        partial.data.extend_from_slice(chunk);
        partial.next_fragment -= 1;
        if partial.next_fragment > 0 {
            return Ok(None);
        }
        let Some(done) = self.in_flight.remove(&sequence) else {
            return Err(DistError::UnknownSequence { sequence });
        };
        self.buffered -= done.data.len();
        // the atoms now are the reassembled message's
        self.scratch = done.atoms;
        self.current = Current::Scratch;
        Ok(Some(Framed { data: done.data.freeze(), start: 0, header: true }))
    }

    /// Accounts for `more` bytes joining a message that holds `have`, within the limits.
    fn reserve(&mut self, have: usize, more: usize) -> Result<(), DistError> {
        let len = have.saturating_add(more);
        if len > self.max_message_size {
            return Err(DistError::MessageTooLarge { len, max: self.max_message_size });
        }
        let total = self.buffered.saturating_add(more);
        if total > MAX_REASSEMBLY_BYTES {
            return Err(DistError::MessageTooLarge { len: total, max: MAX_REASSEMBLY_BYTES });
        }
        self.buffered = total;
        Ok(())
    }
}

/// Writes the atom-cache section of a distribution header: the number of references, their
/// flag nibbles (reference *i*'s in the low half of byte *i*/2 for even *i*, the high half for
/// odd; bit 3 "new entry", bits 0-2 the segment; the nibble after the last holds "long atoms"),
/// then each reference's internal index, followed for a new entry by its length (two bytes
/// with `long_atoms`, else one) and text. `refs` gives each reference's cache slot and, for a
/// new entry, its text; at most 255. The sender is [`super::atom_cache_out`]; tests and
/// fixtures call it with slots of their own.
pub(crate) fn write_atom_cache_refs<'t>(
    refs: impl ExactSizeIterator<Item = (usize, Option<&'t str>)> + Clone,
    long_atoms: bool,
    out: &mut Vec<u8>,
) {
    let n = refs.len();
    out.push(n as u8);
    if n == 0 {
        return;
    }
    let flags_at = out.len();
    out.resize(flags_at + n / 2 + 1, 0);
    let nibbles = refs.clone().map(|(slot, text)| (if text.is_some() { 0x08 } else { 0 }) | (slot / 256) as u8);
    for (i, nibble) in nibbles.chain([u8::from(long_atoms)]).enumerate() {
        out[flags_at + i / 2] |= if i % 2 == 0 { nibble } else { nibble << 4 };
    }
    for (slot, text) in refs {
        out.push((slot % 256) as u8);
        if let Some(t) = text {
            if long_atoms {
                out.extend_from_slice(&(t.len() as u16).to_be_bytes());
            } else {
                out.push(t.len() as u8);
            }
            out.extend_from_slice(t.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: DistFlags = DistFlags(0xd07df7fbd);
    const PASS: DistFlags = DistFlags(0xd075f5fbd);

    fn header(refs: &[(usize, Option<&str>)], long: bool, body: &[u8]) -> Bytes {
        let mut v = vec![VERSION_MAGIC, DIST_HEADER];
        write_atom_cache_refs(refs.iter().copied(), long, &mut v);
        v.extend_from_slice(body);
        Bytes::from(v)
    }

    fn names(b: &Body) -> Vec<&str> {
        b.atoms.as_ref().unwrap().iter().map(Atom::as_str).collect()
    }

    #[test]
    fn zero_refs_is_three_bytes() {
        let mut d = HeaderDecoder::new(FULL);
        let b = d.handle(Bytes::from_static(&[131, 68, 0, 104, 0])).unwrap().unwrap();
        assert_eq!(b.start, 3);
        assert_eq!(b.atoms, Some(vec![]));
    }

    #[test]
    fn nibbles_segments_and_persistence() {
        // Reference 0: new, segment 0; reference 1: new, segment 7 (slot 7*256+3);
        // reference 2: new, segment 2. Flags: byte0 = 0x8 | (0x8|7)<<4 = 0xf8, byte1 = 0x8|2 = 0x0a,
        // the header nibble (index 3) is the high half of byte 1: 0.
        let frame = header(&[(5, Some("rex")), (7 * 256 + 3, Some("global")), (2 * 256, Some("sink"))], false, b"T");
        assert_eq!(&frame[3..5], &[0xf8, 0x0a]);
        let mut d = HeaderDecoder::new(FULL);
        let b = d.handle(frame).unwrap().unwrap();
        assert_eq!(names(&b), ["rex", "global", "sink"]);
        assert_eq!(&b.data[b.start..], b"T");
        // the next message reuses them without text, in another order
        let b = d.handle(header(&[(2 * 256, None), (5, None), (7 * 256 + 3, None)], false, b"U")).unwrap().unwrap();
        assert_eq!(names(&b), ["sink", "rex", "global"]);
        assert_eq!(d.atom_cache().get(1795), Some(&Atom::new("global")));
        // a slot can be overwritten
        let b = d.handle(header(&[(5, Some("other")), (5, None)], false, b"")).unwrap().unwrap();
        assert_eq!(names(&b), ["other", "other"]);
    }

    #[test]
    fn a_repeated_section_gives_the_atoms_the_cache_holds_now() {
        let mut d = HeaderDecoder::new(FULL);
        d.handle(header(&[(5, Some("rex")), (6, Some("kv"))], false, b"")).unwrap();
        for _ in 0..3 {
            let b = d.handle(header(&[(5, None), (6, None)], false, b"A")).unwrap().unwrap();
            assert_eq!(names(&b), ["rex", "kv"]);
            assert_eq!(&b.data[b.start..], b"A");
        }
        // a new entry overwrites slot 5; the same section as before now means the new atom
        d.handle(header(&[(5, Some("other"))], false, b"")).unwrap();
        let b = d.handle(header(&[(5, None), (6, None)], false, b"B")).unwrap().unwrap();
        assert_eq!(names(&b), ["other", "kv"]);
        // ... also when a first fragment's header is what overwrote it
        d.handle(frag_first(1, 2, &[(6, Some("x"))], b"")).unwrap();
        let b = d.handle(header(&[(5, None), (6, None)], false, b"")).unwrap().unwrap();
        assert_eq!(names(&b), ["other", "x"]);
        // a reassembled message brings its own atoms; the next message reads its section again
        let b = d.handle(frag_cont(1, 1, b"")).unwrap().unwrap();
        assert_eq!(names(&b), ["x"]);
        let b = d.handle(header(&[(5, None), (6, None)], false, b"")).unwrap().unwrap();
        assert_eq!(names(&b), ["other", "x"]);
        // a section that only starts the same way is read in full
        let b = d.handle(header(&[(5, None), (6, None), (5, None)], false, b"")).unwrap().unwrap();
        assert_eq!(names(&b), ["other", "x", "other"]);
        // sections that alternate, more of them than are kept, and a new entry among them
        let mut d = HeaderDecoder::new(FULL);
        let texts: Vec<String> = (0..12).map(|i| format!("a{i}")).collect();
        let fill: Vec<(usize, Option<&str>)> = texts.iter().enumerate().map(|(i, t)| (i, Some(t.as_str()))).collect();
        d.handle(header(&fill, false, b"")).unwrap();
        for round in 0..3 {
            for i in 0..12 {
                let refs = [(i, None), ((i + 1) % 12, None)];
                let b = d.handle(header(&refs, false, b"")).unwrap().unwrap();
                assert_eq!(names(&b), [texts[i].as_str(), texts[(i + 1) % 12].as_str()], "round {round}");
            }
            d.handle(header(&[(3, Some("a3"))], false, b"")).unwrap();
        }
    }

    #[test]
    fn long_atoms_use_two_byte_lengths() {
        let long = "ä".repeat(200); // 400 bytes of UTF-8, 200 characters
        let frame = header(&[(1, Some(&long)), (300, Some("x"))], true, b"");
        let mut d = HeaderDecoder::new(FULL);
        let b = d.handle(frame).unwrap().unwrap();
        assert_eq!(names(&b), [long.as_str(), "x"]);
    }

    #[test]
    fn latin1_without_utf8_atoms() {
        let mut v = vec![131, 68];
        // one new entry in segment 0, slot 9: "år" in Latin-1
        v.extend_from_slice(&[1, 0x08, 9, 2, 0xe5, b'r']);
        let mut d = HeaderDecoder::new(FULL.without(DistFlags::UTF8_ATOMS));
        assert_eq!(names(&d.handle(Bytes::from(v.clone())).unwrap().unwrap()), ["år"]);
        // the same bytes are not UTF-8
        let mut d = HeaderDecoder::new(FULL);
        assert!(matches!(d.handle(Bytes::from(v)), Err(DistError::BadAtomText { index: 0 })));
    }

    #[test]
    fn header_errors() {
        let mut d = HeaderDecoder::new(FULL);
        // an old entry that was never sent
        let e = d.handle(header(&[(300, None)], false, b"")).unwrap_err();
        assert!(matches!(e, DistError::UnknownAtomCacheSlot { slot: 300 }));
        // atom text too long for an atom (256 characters)
        let e = d.handle(header(&[(1, Some(&"a".repeat(256)))], true, b"")).unwrap_err();
        assert!(matches!(e, DistError::BadAtomText { index: 0 }));
        // every truncation of a valid header fails cleanly
        let full = header(&[(1, Some("abc")), (2, Some("de"))], false, b"");
        for cut in 2..full.len() {
            let e = HeaderDecoder::new(FULL).handle(full.slice(..cut)).unwrap_err();
            assert!(matches!(e, DistError::Truncated { .. }), "cut at {cut}: {e:?}");
        }
        assert!(matches!(d.handle(Bytes::from_static(&[131])), Err(DistError::Truncated { .. })));
        assert!(matches!(d.handle(Bytes::from_static(&[131, 80])), Err(DistError::UnknownFrameKind { tag: 80 })));
        assert!(matches!(d.handle(Bytes::from_static(&[7])), Err(DistError::UnknownFrameKind { tag: 7 })));
        assert_eq!(d.handle(Bytes::new()).unwrap(), None, "an empty frame is a tick");
    }

    #[test]
    fn pass_through_only_without_header_flags() {
        let p = Bytes::from_static(&[112, 131, 106]);
        let b = HeaderDecoder::new(PASS).handle(p.clone()).unwrap().unwrap();
        assert_eq!((b.start, b.atoms), (1, None));
        for flags in [FULL, PASS.with(DistFlags::FRAGMENTS), PASS.with(DistFlags::DIST_HDR_ATOM_CACHE)] {
            let e = HeaderDecoder::new(flags).handle(p.clone()).unwrap_err();
            assert!(matches!(e, DistError::PassThroughNotAllowed));
            assert_eq!(e.fault(), crate::dist::Fault::PeerMisbehaved);
        }
        // headers are accepted under the pass-through profile too
        assert!(HeaderDecoder::new(PASS).handle(header(&[], false, b"x")).unwrap().is_some());
    }

    fn frag_first(seq: u64, id: u64, refs: &[(usize, Option<&str>)], chunk: &[u8]) -> Bytes {
        let mut v = vec![131, 69];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        write_atom_cache_refs(refs.iter().copied(), false, &mut v);
        v.extend_from_slice(chunk);
        Bytes::from(v)
    }

    fn frag_cont(seq: u64, id: u64, chunk: &[u8]) -> Bytes {
        let mut v = vec![131, 70];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(chunk);
        Bytes::from(v)
    }

    #[test]
    fn interleaved_fragments_reassemble_per_sequence() {
        let mut d = HeaderDecoder::new(FULL);
        // as in t7: sequence 3092376454563 in 4 fragments, another message interleaved
        let s1 = 3092376454563;
        let s2 = 7;
        assert_eq!(d.handle(frag_first(s1, 4, &[(1, Some("sink"))], b"AA")).unwrap(), None);
        assert_eq!(d.handle(frag_first(s2, 2, &[(2, Some("rex")), (1, None)], b"xx")).unwrap(), None);
        assert_eq!(d.fragmented_in_flight(), 2);
        assert_eq!(d.handle(frag_cont(s1, 3, b"BB")).unwrap(), None);
        let b2 = d.handle(frag_cont(s2, 1, b"yy")).unwrap().unwrap();
        assert_eq!((&b2.data[..], b2.start), (&b"xxyy"[..], 0));
        assert_eq!(names(&b2), ["rex", "sink"]);
        assert_eq!(d.handle(frag_cont(s1, 2, b"CC")).unwrap(), None);
        // a plain header message in between uses the cache filled by a first fragment
        let b = d.handle(header(&[(1, None)], false, b"")).unwrap().unwrap();
        assert_eq!(names(&b), ["sink"]);
        let b1 = d.handle(frag_cont(s1, 1, b"DD")).unwrap().unwrap();
        assert_eq!(&b1.data[..], b"AABBCCDD");
        assert_eq!(names(&b1), ["sink"]);
        assert_eq!(d.fragmented_in_flight(), 0);
        // a single-fragment message is complete at once
        let b = d.handle(frag_first(9, 1, &[], b"Z")).unwrap().unwrap();
        assert_eq!(&b.data[b.start..], b"Z");
    }

    #[test]
    fn fragment_errors() {
        let mut d = HeaderDecoder::new(FULL);
        assert!(matches!(d.handle(frag_cont(1, 1, b"")), Err(DistError::UnknownSequence { sequence: 1 })));
        assert!(matches!(d.handle(frag_first(1, 0, &[], b"")), Err(DistError::ZeroFragmentId { sequence: 1 })));
        d.handle(frag_first(1, 3, &[], b"a")).unwrap();
        assert!(matches!(d.handle(frag_first(1, 3, &[], b"a")), Err(DistError::SequenceInUse { sequence: 1 })));
        assert!(matches!(
            d.handle(frag_cont(1, 1, b"")),
            Err(DistError::FragmentOutOfOrder { sequence: 1, expected: 2, got: 1 })
        ));
        assert!(matches!(d.handle(frag_cont(1, u64::MAX, b"")), Err(DistError::FragmentOutOfOrder { .. })));
        assert!(matches!(d.handle(Bytes::from_static(&[131, 70, 0, 0])), Err(DistError::Truncated { .. })));
    }

    #[test]
    fn in_flight_limit() {
        let mut d = HeaderDecoder::new(FULL);
        for s in 0..MAX_FRAGMENTED_IN_FLIGHT as u64 {
            assert_eq!(d.handle(frag_first(s, 2, &[], b"")).unwrap(), None);
        }
        let e = d.handle(frag_first(u64::MAX, 2, &[], b"")).unwrap_err();
        assert!(matches!(e, DistError::TooManyFragmentedMessages { max: MAX_FRAGMENTED_IN_FLIGHT }));
        // finishing one frees a place
        assert!(d.handle(frag_cont(0, 1, b"")).unwrap().is_some());
        assert_eq!(d.handle(frag_first(u64::MAX, 2, &[], b"")).unwrap(), None);
    }

    #[test]
    fn size_limit() {
        let mut d = HeaderDecoder::new(FULL).with_max_message_size(10);
        d.handle(frag_first(1, 4, &[], b"12345")).unwrap();
        d.handle(frag_cont(1, 3, b"67890")).unwrap();
        let e = d.handle(frag_cont(1, 2, b"x")).unwrap_err();
        assert!(matches!(e, DistError::MessageTooLarge { len: 11, max: 10 }), "{e:?}");
        // the first fragment alone can be too large
        let e = d.handle(frag_first(2, 2, &[], b"12345678901")).unwrap_err();
        assert!(matches!(e, DistError::MessageTooLarge { len: 11, max: 10 }), "{e:?}");
    }
}
