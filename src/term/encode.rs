//! Encoding terms in the External Term Format (`erts/doc/guides/erl_ext_dist.md`).
//!
//! The output is byte for byte what `term_to_binary(T, [{minor_version, 2}])` produces on OTP 26
//! and later, for every term whose encoding BEAM determines (checked against committed vectors
//! made by real BEAM, `tests/data/otp*/`):
//!
//! | term | encoding |
//! |---|---|
//! | integer `0..=255` | `SMALL_INTEGER_EXT` |
//! | other integer in `i32` | `INTEGER_EXT` |
//! | other integer | `SMALL_BIG_EXT` (up to 255 digits), else `LARGE_BIG_EXT` |
//! | float | `NEW_FLOAT_EXT` |
//! | atom | `SMALL_ATOM_UTF8_EXT` (up to 255 bytes), else `ATOM_UTF8_EXT` |
//! | `[]` | `NIL_EXT` |
//! | proper list of `0..=255` integers, up to 65535 long | `STRING_EXT` |
//! | other list | `LIST_EXT` (elements, then the tail; `NIL_EXT` when proper) |
//! | tuple | `SMALL_TUPLE_EXT` (up to 255), else `LARGE_TUPLE_EXT` |
//! | map | `MAP_EXT`, entries in the map's stored (wire) order |
//! | binary / bitstring | `BINARY_EXT` / `BIT_BINARY_EXT` |
//! | pid | `NEW_PID_EXT` |
//! | port | `V4_PORT_EXT` (OTP 26+ always uses it; OTP 25 wrote `NEW_PORT_EXT` for 32-bit ids) |
//! | reference | `NEWER_REFERENCE_EXT` |
//! | `fun M:F/A` | `EXPORT_EXT`, arity as `SMALL_INTEGER_EXT` |
//! | local fun | `NEW_FUN_EXT` with `Size` recomputed |
//!
//! The encoder is iterative (an explicit stack of slices), so a deep term cannot overflow the
//! thread's stack, and it never allocates per element.

use byteorder::{BigEndian, ByteOrder};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use std::io::Write;

use super::tags::*;
use super::{Atom, BigInt, LocalFun, Term};

/// Encodes `term` with the version byte: `131` followed by the term.
pub fn encode(term: &Term) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_hint(term));
    encode_to(term, &mut out);
    out
}

/// Appends `131` and the encoding of `term` to `out`.
pub fn encode_to(term: &Term, out: &mut Vec<u8>) {
    out.push(VERSION_MAGIC);
    encode_body_to(term, out);
}

/// Appends the encoding of `term` without the version byte (the payload form used inside
/// distribution headers, and by callers that write the `131` themselves).
pub fn encode_body_to(term: &Term, out: &mut Vec<u8>) {
    encode_body_with(term, out, &NoRefs);
}

/// Where the encoder may write an atom as `ATOM_CACHE_REF` (an index into the reference list
/// of the distribution header the term follows) instead of its text.
pub trait AtomRefs {
    /// `a`'s index in the header's reference list, if it has one.
    fn index(&self, a: &Atom) -> Option<u8>;
}

/// Every atom written as its text, as `term_to_binary` writes it.
pub struct NoRefs;

impl AtomRefs for NoRefs {
    #[inline(always)]
    fn index(&self, _: &Atom) -> Option<u8> {
        None
    }
}

/// [`encode_body_to`], writing the atoms `refs` has an index for as `ATOM_CACHE_REF`.
pub fn encode_body_with<R: AtomRefs>(term: &Term, out: &mut Vec<u8>, refs: &R) {
    out.reserve(size_hint(term));
    Encoder { out, refs }.run(term);
}

/// Writes `a` as a reference if `refs` has it, else as its text.
#[inline(always)]
pub fn write_atom_with<R: AtomRefs>(out: &mut Vec<u8>, a: &Atom, refs: &R) {
    match refs.index(a) {
        Some(i) => out.extend_from_slice(&[ATOM_CACHE_REF, i]),
        None => write_atom(out, a),
    }
}

/// Encodes `term` compressed: `131, 80, UncompressedSize:32`, then a zlib stream of the term's
/// encoding (without version byte), as `term_to_binary(T, [{compressed, Level}])` lays it out.
///
/// `level` is the zlib level, clamped to `0..=9`. Unlike BEAM, which falls back to the plain
/// encoding when compression does not make it smaller, this always compresses; zlib output is
/// not expected to match BEAM's byte for byte.
pub fn encode_compressed(term: &Term, level: u32) -> Vec<u8> {
    let mut body = Vec::new();
    encode_body_to(term, &mut body);
    let mut out = Vec::with_capacity(6 + body.len() / 2 + 16);
    out.push(VERSION_MAGIC);
    out.push(COMPRESSED);
    // A body over 4 GiB cannot be described by the 32-bit size field; BEAM cannot build one
    // either. Truncation here would produce an undecodable term, so saturate visibly instead.
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    let mut z = ZlibEncoder::new(out, Compression::new(level.min(9)));
    // Writing into a Vec cannot fail.
    let _ = z.write_all(&body);
    match z.finish() {
        Ok(v) => v,
        Err(_) => unreachable!("zlib into a Vec<u8> cannot fail"),
    }
}

/// A cheap guess of the encoded size, to reserve once for the common shapes.
///
/// Never below [`MIN_RESERVE`]: small control messages and calls (a `'$gen_call'` is about
/// 200 bytes) would otherwise grow the buffer several times.
fn size_hint(term: &Term) -> usize {
    let guess = match term {
        Term::Binary(b) => 6 + b.len(),
        Term::BitBinary(b) => 7 + b.data.len(),
        Term::List(l) | Term::Tuple(l) => 8 + 2 * l.len(),
        Term::Map(m) => 8 + 8 * m.len(),
        _ => 32,
    };
    guess.max(MIN_RESERVE)
}

/// Smallest reservation made for an encoding.
const MIN_RESERVE: usize = 256;

/// Initial capacity of the encoder's work stack when the root is a container.
const STACK_RESERVE: usize = 16;

/// Work left on the encoder's stack.
enum Work<'a> {
    /// Encode these terms in order.
    Terms(std::slice::Iter<'a, Term>),
    /// Encode these map entries in order, key then value.
    Entries(std::slice::Iter<'a, (Term, Term)>),
    /// Encode one term.
    One(&'a Term),
    /// Write `NIL_EXT` (the tail of a proper list).
    Nil,
    /// Patch the `Size` field of a `NEW_FUN_EXT` that starts at this offset.
    FunSize(usize),
}

struct Encoder<'o, 'r, R> {
    out: &'o mut Vec<u8>,
    refs: &'r R,
}

impl<R: AtomRefs> Encoder<'_, '_, R> {
    fn run<'a>(&mut self, root: &'a Term) {
        let container =
            matches!(root, Term::List(_) | Term::Improper(..) | Term::Tuple(_) | Term::Map(_) | Term::LocalFun(_));
        let mut stack: Vec<Work<'a>> = Vec::with_capacity(if container { STACK_RESERVE } else { 0 });
        self.term(root, &mut stack);
        while let Some(top) = stack.last_mut() {
            match top {
                Work::Terms(it) => {
                    // leaves are written in this loop; a container goes through `term`
                    let mut next = it.next();
                    while let Some(t) = next {
                        if !write_leaf(self.out, t, self.refs) {
                            break;
                        }
                        next = it.next();
                    }
                    match next {
                        Some(t) => {
                            // a container in last place replaces its parent's finished frame,
                            // so a chain of nested last elements keeps the stack flat
                            if it.len() == 0 {
                                stack.pop();
                            }
                            self.term(t, &mut stack)
                        }
                        None => {
                            stack.pop();
                        }
                    }
                }
                // entries of leaves are written in this loop
                Work::Entries(it) => loop {
                    match it.next() {
                        Some((k, v)) => {
                            if write_leaf(self.out, k, self.refs) {
                                if write_leaf(self.out, v, self.refs) {
                                    continue;
                                }
                                stack.push(Work::One(v));
                            } else {
                                stack.push(Work::One(v));
                                self.term(k, &mut stack);
                            }
                        }
                        None => {
                            stack.pop();
                        }
                    }
                    break;
                },
                Work::One(t) => {
                    let t: &'a Term = t;
                    stack.pop();
                    self.term(t, &mut stack);
                }
                Work::Nil => {
                    stack.pop();
                    self.out.push(NIL_EXT);
                }
                Work::FunSize(start) => {
                    let start = *start;
                    stack.pop();
                    let size = u32::try_from(self.out.len() - start).unwrap_or(u32::MAX);
                    BigEndian::write_u32(&mut self.out[start..start + 4], size);
                }
            }
        }
    }

    /// Writes `t`, or its header and pushes its children.
    fn term<'a>(&mut self, t: &'a Term, stack: &mut Vec<Work<'a>>) {
        let out = &mut *self.out;
        match t {
            Term::Int(_) | Term::BigInt(_) | Term::Float(_) | Term::Atom(_) | Term::Binary(_) => {
                write_leaf(out, t, self.refs);
            }
            Term::BitBinary(b) => {
                out.reserve(6 + b.data.len());
                out.push(BIT_BINARY_EXT);
                out.extend_from_slice(&len32(b.data.len()).to_be_bytes());
                out.push(b.bits);
                out.extend_from_slice(&b.data);
            }
            Term::List(l) if l.is_empty() => out.push(NIL_EXT),
            Term::List(l) => {
                if l.len() <= u16::MAX as usize {
                    if let Some(()) = try_string(out, l) {
                        return;
                    }
                }
                out.push(LIST_EXT);
                out.extend_from_slice(&len32(l.len()).to_be_bytes());
                stack.push(Work::Nil);
                stack.push(Work::Terms(l.iter()));
            }
            Term::Improper(l, tail) => {
                out.push(LIST_EXT);
                out.extend_from_slice(&len32(l.len()).to_be_bytes());
                stack.push(Work::One(tail));
                stack.push(Work::Terms(l.iter()));
            }
            Term::Tuple(elems) => {
                if elems.len() <= u8::MAX as usize {
                    out.push(SMALL_TUPLE_EXT);
                    out.push(elems.len() as u8);
                } else {
                    out.push(LARGE_TUPLE_EXT);
                    out.extend_from_slice(&len32(elems.len()).to_be_bytes());
                }
                if !elems.is_empty() {
                    stack.push(Work::Terms(elems.iter()));
                }
            }
            Term::Map(m) => {
                out.push(MAP_EXT);
                out.extend_from_slice(&len32(m.len()).to_be_bytes());
                if !m.is_empty() {
                    stack.push(Work::Entries(m.entries().iter()));
                }
            }
            Term::Pid(p) => {
                out.push(NEW_PID_EXT);
                write_atom_with(out, &p.node, self.refs);
                out.extend_from_slice(&p.id.to_be_bytes());
                out.extend_from_slice(&p.serial.to_be_bytes());
                out.extend_from_slice(&p.creation.to_be_bytes());
            }
            Term::Port(p) => {
                out.push(V4_PORT_EXT);
                write_atom_with(out, &p.node, self.refs);
                out.extend_from_slice(&p.id.to_be_bytes());
                out.extend_from_slice(&p.creation.to_be_bytes());
            }
            Term::Ref(r) => {
                let ids = r.ids();
                out.push(NEWER_REFERENCE_EXT);
                out.extend_from_slice(&(ids.len() as u16).to_be_bytes());
                write_atom_with(out, &r.node, self.refs);
                out.extend_from_slice(&r.creation.to_be_bytes());
                for w in ids {
                    out.extend_from_slice(&w.to_be_bytes());
                }
            }
            Term::ExportFun(f) => {
                out.push(EXPORT_EXT);
                write_atom_with(out, &f.module, self.refs);
                write_atom_with(out, &f.function, self.refs);
                out.push(SMALL_INTEGER_EXT);
                out.push(f.arity);
            }
            Term::LocalFun(f) => self.local_fun(f, stack),
        }
    }

    fn local_fun<'a>(&mut self, f: &'a LocalFun, stack: &mut Vec<Work<'a>>) {
        let out = &mut *self.out;
        out.push(NEW_FUN_EXT);
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, 0]); // Size, patched when the free variables are done
        out.push(f.arity);
        out.extend_from_slice(&f.uniq);
        out.extend_from_slice(&f.index.to_be_bytes());
        out.extend_from_slice(&len32(f.free_vars.len()).to_be_bytes());
        write_atom_with(out, &f.module, self.refs);
        // OldIndex, OldUniq and Pid are leaf terms (an integer, an integer, a pid), but the model
        // lets a caller put anything there; encode them through the general path.
        stack.push(Work::FunSize(start));
        stack.push(Work::Terms(f.free_vars.iter()));
        stack.push(Work::One(&f.pid));
        stack.push(Work::One(&f.old_uniq));
        stack.push(Work::One(&f.old_index));
    }
}

/// Writes `t` if it is a leaf the element loop handles itself (numbers, atoms, binaries,
/// pids, `[]`); `false` (and nothing written) for anything else.
#[inline(always)]
fn write_leaf<R: AtomRefs>(out: &mut Vec<u8>, t: &Term, refs: &R) -> bool {
    match t {
        Term::Int(i) => write_int(out, *i),
        Term::Float(f) => {
            let b = f.to_bits().to_be_bytes();
            out.extend_from_slice(&[NEW_FLOAT_EXT, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        }
        Term::Atom(a) => write_atom_with(out, a, refs),
        Term::Binary(b) => {
            out.reserve(5 + b.len());
            let n = len32(b.len()).to_be_bytes();
            out.extend_from_slice(&[BINARY_EXT, n[0], n[1], n[2], n[3]]);
            out.extend_from_slice(b);
        }
        Term::BigInt(b) => write_big(out, b),
        Term::List(l) if l.is_empty() => out.push(NIL_EXT),
        _ => return false,
    }
    true
}

/// A length as the 32-bit field the format has. Terms with 2^32 or more elements cannot be
/// represented (BEAM cannot build them either); the field saturates rather than wrapping.
#[inline]
pub(super) fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Writes `l` as `STRING_EXT` if every element is an integer `0..=255`; `None` writes nothing.
fn try_string(out: &mut Vec<u8>, l: &[Term]) -> Option<()> {
    let start = out.len();
    out.reserve(3 + l.len());
    out.push(STRING_EXT);
    out.extend_from_slice(&(l.len() as u16).to_be_bytes());
    for t in l {
        match t {
            Term::Int(i @ 0..=255) => out.push(*i as u8),
            _ => {
                out.truncate(start);
                return None;
            }
        }
    }
    Some(())
}

#[inline]
pub(super) fn write_int(out: &mut Vec<u8>, i: i64) {
    if (0..=255).contains(&i) {
        out.extend_from_slice(&[SMALL_INTEGER_EXT, i as u8]);
    } else if let Ok(v) = i32::try_from(i) {
        let b = v.to_be_bytes();
        out.extend_from_slice(&[INTEGER_EXT, b[0], b[1], b[2], b[3]]);
    } else {
        let mag = i.unsigned_abs().to_le_bytes();
        let n = 8 - (i.unsigned_abs().leading_zeros() / 8) as usize;
        out.push(SMALL_BIG_EXT);
        out.push(n as u8);
        out.push((i < 0) as u8);
        out.extend_from_slice(&mag[..n]);
    }
}

fn write_big(out: &mut Vec<u8>, b: &BigInt) {
    let mag = b.magnitude();
    if mag.len() <= u8::MAX as usize {
        out.push(SMALL_BIG_EXT);
        out.push(mag.len() as u8);
    } else {
        out.push(LARGE_BIG_EXT);
        out.extend_from_slice(&len32(mag.len()).to_be_bytes());
    }
    out.push(b.is_negative() as u8);
    out.extend_from_slice(mag);
}

#[inline]
pub(super) fn write_atom(out: &mut Vec<u8>, a: &Atom) {
    let s = a.as_str().as_bytes();
    if s.len() <= u8::MAX as usize {
        out.reserve(2 + s.len());
        out.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, s.len() as u8]);
    } else {
        out.push(ATOM_UTF8_EXT);
        // at most 255 characters of up to 4 bytes: fits 16 bits
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_pick_the_smallest_tag() {
        assert_eq!(encode(&Term::Int(0)), [131, 97, 0]);
        assert_eq!(encode(&Term::Int(255)), [131, 97, 255]);
        assert_eq!(encode(&Term::Int(256)), [131, 98, 0, 0, 1, 0]);
        assert_eq!(encode(&Term::Int(-1)), [131, 98, 255, 255, 255, 255]);
        assert_eq!(encode(&Term::Int(1 << 31)), [131, 110, 4, 0, 0, 0, 0, 128]);
        assert_eq!(encode(&Term::Int(i64::MIN)), [131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128]);
    }

    #[test]
    fn lists_strings_and_tails() {
        assert_eq!(encode(&Term::charlist("abc")), [131, 107, 0, 3, 97, 98, 99]);
        assert_eq!(encode(&Term::nil()), [131, 106]);
        let improper = Term::Improper(vec![Term::Int(1), Term::Int(2)], Box::new(Term::Int(3)));
        assert_eq!(encode(&improper), [131, 108, 0, 0, 0, 2, 97, 1, 97, 2, 97, 3]);
        let mixed = Term::List(vec![Term::Int(1), Term::atom("a")]);
        assert_eq!(encode(&mixed), [131, 108, 0, 0, 0, 2, 97, 1, 119, 1, b'a', 106]);
    }

    #[test]
    fn compressed_has_the_size_header() {
        let t = Term::List(vec![Term::Int(1000); 100]);
        let z = encode_compressed(&t, 6);
        let plain = encode(&t);
        assert_eq!(&z[..2], &[131, 80]);
        assert_eq!(BigEndian::read_u32(&z[2..6]) as usize, plain.len() - 1);
    }
}
