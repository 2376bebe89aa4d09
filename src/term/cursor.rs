//! A cursor over External Term Format bytes (`erts/doc/guides/erl_ext_dist.md`): the
//! bounds-checked reads of fixed-size big-endian fields that both decoders share, the one
//! that builds [`super::Term`]s (`decode`) and the one that fills serde types (`typed::de`).
//! Running out of input is [`DecodeErrorKind::UnexpectedEnd`] at the cursor, with the number
//! of bytes missing.

use super::decode::{DecodeError, DecodeErrorKind};

type Result<T> = std::result::Result<T, DecodeError>;

/// A position in an encoded term.
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    /// The input.
    pub(crate) buf: &'a [u8],
    /// The offset of the next byte to read (never past the end of `buf`).
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at `pos` of `buf`.
    #[inline]
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos }
    }

    /// `UnexpectedEnd` at the cursor: `needed` more bytes were expected.
    #[inline]
    pub(crate) fn end(&self, needed: usize) -> DecodeError {
        DecodeError { offset: self.pos, kind: DecodeErrorKind::UnexpectedEnd { needed } }
    }

    /// Bytes after the cursor.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next byte, not consumed.
    #[inline]
    pub(crate) fn peek(&self) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => Err(self.end(1)),
        }
    }

    /// The next `n` bytes, consumed.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let buf: &'a [u8] = self.buf;
        match buf.get(self.pos..).and_then(|r| r.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.end(n - self.remaining())),
        }
    }

    /// The next `N` bytes, consumed.
    #[inline]
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.end(1)),
        }
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_be_bytes)
    }
}
