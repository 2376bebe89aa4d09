//! Reading a control tuple straight from its encoding into a [`Control`], without building the
//! [`Term`] first (`erl_ext_dist` encodings of the control message; `erl_dist_protocol`,
//! "Protocol between Connected Nodes").
//!
//! This is the receive path's fast lane: every message carries a control tuple, nearly always
//! a small tuple of a small-integer op, pids, references and atoms (cache references or short
//! UTF-8 atoms). [`read_control`] reads exactly those encodings. Anything else (a field typed
//! [`Term`]: exit reasons, trace tokens, spawn options; an obsolete encoding, a mistyped
//! field, a wrong arity, an unknown op, truncation) makes it answer `None`, and the caller
//! decodes the tuple as a term and reads it with [`Control::from_term`], which gives the
//! typed error. So the fast lane never decides that
//! input is bad; what it accepts, the general path accepts too, with the same result (a test
//! checks this on mutated input).

use bytes::Bytes;

use super::control::{Control, Mfa, ProcRef, SpawnResult};
use crate::term::tags::{
    ATOM_CACHE_REF, INTEGER_EXT, NEW_PID_EXT, NEWER_REFERENCE_EXT, SMALL_ATOM_UTF8_EXT, SMALL_BIG_EXT,
    SMALL_INTEGER_EXT, SMALL_TUPLE_EXT, VERSION_MAGIC,
};
use crate::term::{Atom, DecodeOptions, MAX_REF_WORDS, Pid, Reference, Term};

/// A cursor over the encoded control tuple; every read is bounds-checked and fails as `None`.
pub(crate) struct Wire<'a> {
    data: &'a Bytes,
    pos: usize,
    atoms: Option<&'a [Atom]>,
}

impl<'a> Wire<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let b = self.data.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }

    /// An atom: a cache reference, or `SMALL_ATOM_UTF8_EXT` with ASCII text.
    fn atom(&mut self) -> Option<Atom> {
        match self.u8()? {
            ATOM_CACHE_REF => {
                let i = self.u8()? as usize;
                self.atoms?.get(i).cloned()
            }
            SMALL_ATOM_UTF8_EXT => {
                let n = self.u8()? as usize;
                let end = self.pos.checked_add(n)?;
                let text = self.data.get(self.pos..end)?;
                if !text.is_ascii() {
                    return None;
                }
                self.pos = end;
                // ASCII is UTF-8, and at most 255 bytes is at most 255 characters
                Atom::try_new(std::str::from_utf8(text).ok()?).ok()
            }
            _ => None,
        }
    }

    /// A pid in `NEW_PID_EXT`.
    fn pid(&mut self) -> Option<Pid> {
        if self.u8()? != NEW_PID_EXT {
            return None;
        }
        self.pid_body()
    }

    fn pid_body(&mut self) -> Option<Pid> {
        let node = self.atom()?;
        let id = self.u32()?;
        let serial = self.u32()?;
        let creation = self.u32()?;
        Some(Pid { node, id, serial, creation })
    }

    /// A reference in `NEWER_REFERENCE_EXT`.
    fn reference(&mut self) -> Option<Reference> {
        if self.u8()? != NEWER_REFERENCE_EXT {
            return None;
        }
        self.reference_body()
    }

    fn reference_body(&mut self) -> Option<Reference> {
        let len = self.u16()? as usize;
        if len == 0 || len > MAX_REF_WORDS {
            return None;
        }
        let node = self.atom()?;
        let creation = self.u32()?;
        let mut words = [0u32; MAX_REF_WORDS];
        for w in words.iter_mut().take(len) {
            *w = self.u32()?;
        }
        Reference::new(node, creation, &words[..len])
    }

    /// A non-negative integer in `SMALL_INTEGER_EXT`, `INTEGER_EXT` or an 8-byte-or-less
    /// positive `SMALL_BIG_EXT`.
    fn uint(&mut self) -> Option<u64> {
        match self.u8()? {
            SMALL_INTEGER_EXT => self.u8().map(u64::from),
            INTEGER_EXT => u64::try_from(self.u32()? as i32).ok(),
            SMALL_BIG_EXT => {
                let n = self.u8()? as usize;
                if n > 8 || self.u8()? != 0 {
                    return None;
                }
                let end = self.pos.checked_add(n)?;
                let digits = self.data.get(self.pos..end)?;
                self.pos = end;
                Some(digits.iter().rev().fold(0u64, |acc, &d| (acc << 8) | u64::from(d)))
            }
            _ => None,
        }
    }

    /// The unused slot of `SEND` and `REG_SEND` (BEAM writes `''`): any atom.
    pub(crate) fn skip_unused(&mut self) -> Option<()> {
        self.atom().map(drop)
    }
}

/// A control-tuple field, read from its encoding.
pub(crate) trait WireField: Sized {
    fn read(w: &mut Wire) -> Option<Self>;
}

impl WireField for Pid {
    fn read(w: &mut Wire) -> Option<Self> {
        w.pid()
    }
}

impl WireField for Reference {
    fn read(w: &mut Wire) -> Option<Self> {
        w.reference()
    }
}

impl WireField for Atom {
    fn read(w: &mut Wire) -> Option<Self> {
        w.atom()
    }
}

/// Term fields (exit reasons, trace tokens, spawn options) are left to the general path: they
/// are rare on the hot path, and decoding one alone would not count its elements together
/// with the tuple's, as the general decoder's limits do.
impl WireField for Term {
    fn read(_: &mut Wire) -> Option<Self> {
        None
    }
}

impl WireField for ProcRef {
    fn read(w: &mut Wire) -> Option<Self> {
        match w.data.get(w.pos)? {
            &NEW_PID_EXT => w.pid().map(ProcRef::Pid),
            _ => w.atom().map(ProcRef::Name),
        }
    }
}

impl WireField for SpawnResult {
    fn read(w: &mut Wire) -> Option<Self> {
        match w.data.get(w.pos)? {
            &NEW_PID_EXT => w.pid().map(SpawnResult::Spawned),
            _ => w.atom().map(SpawnResult::Error),
        }
    }
}

impl WireField for u64 {
    fn read(w: &mut Wire) -> Option<Self> {
        w.uint()
    }
}

impl WireField for u32 {
    fn read(w: &mut Wire) -> Option<Self> {
        u32::try_from(w.uint()?).ok()
    }
}

impl WireField for Mfa {
    fn read(w: &mut Wire) -> Option<Self> {
        if w.u8()? != SMALL_TUPLE_EXT || w.u8()? != 3 {
            return None;
        }
        let module = w.atom()?;
        let function = w.atom()?;
        if w.u8()? != SMALL_INTEGER_EXT {
            return None;
        }
        let arity = w.u8()?;
        Some(Mfa { module, function, arity })
    }
}

/// Reads the control tuple that starts at `start` in `data` (with the version byte first when
/// `opts.version_byte`), returning it and the offset just past it; `None` when the encoding
/// is not one the fast lane reads (see the module documentation).
pub fn read_control(data: &Bytes, start: usize, opts: &DecodeOptions) -> Option<(Control, usize)> {
    let mut w = Wire { data, pos: start, atoms: opts.atom_cache };
    if opts.version_byte && w.u8()? != VERSION_MAGIC {
        return None;
    }
    if w.u8()? != SMALL_TUPLE_EXT {
        return None;
    }
    let arity = w.u8()? as usize;
    if w.u8()? != SMALL_INTEGER_EXT {
        return None;
    }
    let op = w.u8()?;
    let control = Control::table_from_wire(op, arity, &mut w)?;
    Some((control, w.pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::control::tests::{one_of_each, pid};
    use crate::dist::{DistFlags, encode_message};
    use crate::term::decode_term_at;

    const HEADERS: DistFlags = DistFlags(0xd07df7fbd | DistFlags::ALTACT_SIG.0);
    const PASS: DistFlags = DistFlags(0xd075f5fbd | DistFlags::ALTACT_SIG.0 | DistFlags::SPAWN.0);

    /// The general path: the tuple as a term, then `Control::from_term`.
    fn slow(data: &Bytes, start: usize, opts: &DecodeOptions) -> Option<(Control, usize)> {
        let (t, end) = decode_term_at(data, start, opts).ok()?;
        Some((Control::from_term(t).ok()?, end))
    }

    /// The control tuple's bytes as a frame body carries them, and where the tuple starts.
    fn body(c: &Control, flags: DistFlags) -> (Bytes, usize) {
        let payload = c.has_payload().then(|| Term::atom("p"));
        let mut wire = Vec::new();
        encode_message(c, payload.as_ref(), flags, &mut wire).unwrap();
        let start = if flags == HEADERS { 3 } else { 1 };
        (Bytes::from(wire.split_off(4)), start)
    }

    #[test]
    fn reads_what_the_general_path_reads() {
        for flags in [HEADERS, PASS] {
            let opts = DecodeOptions { version_byte: flags == PASS, atom_cache: None };
            for c in one_of_each() {
                let (data, start) = body(&c, flags);
                let fast = read_control(&data, start, &opts);
                assert_eq!(slow(&data, start, &opts).map(|(c, _)| c), Some(c.clone()));
                if fast.is_some() {
                    assert_eq!(fast, slow(&data, start, &opts), "{c:?}");
                }
                // every op without a term field is read by the fast lane
                let has_term_field = matches!(
                    c,
                    Control::Exit { .. }
                        | Control::Exit2 { .. }
                        | Control::MonitorPExit { .. }
                        | Control::SpawnRequest { .. }
                        | Control::AltactSigSend { .. }
                ) || c.name().ends_with("_TT");
                assert_eq!(fast.is_some(), !has_term_field, "{c:?}");
            }
        }
    }

    #[test]
    fn atom_cache_references() {
        // {22, FromPid, ToPid} with both node atoms as cache reference 1
        let atoms = [Atom::new("x"), Atom::new("a@vm")];
        let mut v = vec![SMALL_TUPLE_EXT, 3, SMALL_INTEGER_EXT, 22];
        for id in [1u32, 2] {
            v.extend_from_slice(&[NEW_PID_EXT, ATOM_CACHE_REF, 1]);
            for w in [id, 0, 1795494485] {
                v.extend_from_slice(&w.to_be_bytes());
            }
        }
        let data = Bytes::from(v);
        let opts = DecodeOptions { version_byte: false, atom_cache: Some(&atoms) };
        let (c, end) = read_control(&data, 0, &opts).unwrap();
        assert_eq!(c, Control::SendSender { from: pid(1), to: pid(2) });
        assert_eq!(end, data.len());
        // an index beyond the list, or no list: left to the general path (which fails)
        let short = DecodeOptions { version_byte: false, atom_cache: Some(&atoms[..1]) };
        assert_eq!(read_control(&data, 0, &short), None);
        assert!(slow(&data, 0, &short).is_none());
        let none = DecodeOptions { version_byte: false, atom_cache: None };
        assert_eq!(read_control(&data, 0, &none), None);
    }

    #[test]
    fn mutated_input_is_read_as_the_general_path_reads_it_or_left_to_it() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let atoms = [Atom::new("a@vm"), Atom::new(""), Atom::new("rex")];
        let mut accepted = 0;
        for flags in [HEADERS, PASS] {
            for c in one_of_each() {
                let (data, start) = body(&c, flags);
                for _ in 0..400 {
                    let mut v = data.to_vec();
                    for _ in 0..1 + next() % 3 {
                        let i = (next() as usize) % v.len();
                        match next() % 4 {
                            0 => v[i] = next() as u8,
                            1 => v.truncate(i),
                            2 => v[i] = [ATOM_CACHE_REF, 0, 1, 2, SMALL_BIG_EXT, INTEGER_EXT][next() as usize % 6],
                            _ => v.insert(i, next() as u8),
                        }
                        if v.is_empty() {
                            v.push(0);
                        }
                    }
                    let data = Bytes::from(v);
                    let cache = [None, Some(&atoms[..])][next() as usize % 2];
                    let opts = DecodeOptions { version_byte: flags == PASS, atom_cache: cache };
                    if let Some(fast) = read_control(&data, start, &opts) {
                        accepted += 1;
                        assert_eq!(Some(fast), slow(&data, start, &opts), "{data:?}");
                    }
                }
            }
        }
        assert!(accepted > 1000, "mutations the fast lane still read: {accepted}");
    }
}
