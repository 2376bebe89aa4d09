//! Length framing after the handshake (`erl_dist_protocol`, "Protocol between Connected
//! Nodes"): every packet is `Length:32/big` followed by `Length` bytes, and a packet of
//! length 0 is a *tick* (keep-alive) that carries nothing and needs no reply.
//!
//! [`FrameDecoder`] is incremental: feed it a [`BytesMut`] that the driver appends socket reads
//! to, and it hands out whole frames, `Ok(None)` meaning "need more bytes". The size limit is
//! checked from the length prefix alone, before any of the body is buffered.

use bytes::{Buf, Bytes, BytesMut};

use super::DistError;

/// Default limit on one frame's body, in bytes (128 MiB).
///
/// Without `DFLAG_FRAGMENTS` a BEAM peer sends a whole message as one frame, so this bounds
/// the largest message such a peer can deliver; with fragments, frames are at most 64 KiB plus
/// the fragment header. A peer announcing more is refused before anything is buffered.
pub const MAX_FRAME_SIZE: usize = 128 * 1024 * 1024;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_SIZE: usize = 4;

/// The four zero bytes of a tick.
pub const TICK: [u8; 4] = [0, 0, 0, 0];

/// One unit read from a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A zero-length packet: the peer is alive.
    Tick,
    /// A packet's body (without its length prefix), never empty.
    Data(Bytes),
}

/// Incremental decoder of length-prefixed frames.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder with the [`MAX_FRAME_SIZE`] limit.
    pub fn new() -> FrameDecoder {
        FrameDecoder { max_frame_size: MAX_FRAME_SIZE }
    }

    /// A decoder with a custom limit on a frame's body (at most `u32::MAX` is meaningful).
    pub fn with_max_frame_size(max_frame_size: usize) -> FrameDecoder {
        FrameDecoder { max_frame_size }
    }

    /// The limit on a frame's body.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The size (length prefix included) of the frame at the front of `buf`, once its prefix
    /// is there: what a driver makes room for before reading the rest. A length beyond the
    /// limit counts as the limit ([`FrameDecoder::decode`] refuses it anyway).
    pub fn frame_len(&self, buf: &[u8]) -> Option<usize> {
        let prefix = <[u8; 4]>::try_from(buf.get(..LENGTH_PREFIX_SIZE)?).ok()?;
        Some(LENGTH_PREFIX_SIZE + (u32::from_be_bytes(prefix) as usize).min(self.max_frame_size))
    }

    /// Takes the next whole frame off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds less than a whole frame (nothing is consumed; the
    /// caller reads more, after making room with [`FrameDecoder::frame_len`]), and
    /// [`DistError::FrameTooLarge`] as soon as a length prefix beyond the limit is seen. The
    /// returned body shares `buf`'s allocation (no copy).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DistError> {
        let Some(prefix) = buf.get(..LENGTH_PREFIX_SIZE).and_then(|p| <[u8; 4]>::try_from(p).ok()) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_frame_size {
            return Err(DistError::FrameTooLarge { len, max: self.max_frame_size });
        }
        if len == 0 {
            buf.advance(LENGTH_PREFIX_SIZE);
            return Ok(Some(Frame::Tick));
        }
        if buf.len() - LENGTH_PREFIX_SIZE < len {
            // the driver makes room for the rest (see `frame_len`)
            return Ok(None);
        }
        buf.advance(LENGTH_PREFIX_SIZE);
        Ok(Some(Frame::Data(buf.split_to(len).freeze())))
    }
}

/// Appends a frame holding `body` (length prefix included).
///
/// Fails with [`DistError::FrameTooLarge`] if `body` does not fit the 32-bit length.
pub fn encode_frame(body: &[u8], out: &mut Vec<u8>) -> Result<(), DistError> {
    let len =
        u32::try_from(body.len()).map_err(|_| DistError::FrameTooLarge { len: body.len(), max: u32::MAX as usize })?;
    out.reserve(LENGTH_PREFIX_SIZE + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Appends a tick (four zero bytes).
pub fn encode_tick(out: &mut Vec<u8>) {
    out.extend_from_slice(&TICK);
}

/// Reserves a length prefix at the end of `out`, to be filled by [`finish_frame`] once the body
/// has been appended after it. Returns the prefix position.
pub(crate) fn begin_frame(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&TICK);
    at
}

/// Writes the length of everything appended since [`begin_frame`] returned `at`.
pub(crate) fn finish_frame(out: &mut Vec<u8>, at: usize) -> Result<(), DistError> {
    let body = out.len() - at - LENGTH_PREFIX_SIZE;
    let Ok(len) = u32::try_from(body) else {
        out.truncate(at);
        return Err(DistError::FrameTooLarge { len: body, max: u32::MAX as usize });
    };
    out[at..at + LENGTH_PREFIX_SIZE].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_data_in_one_buffer() {
        let mut wire = Vec::new();
        encode_tick(&mut wire);
        encode_frame(b"hello", &mut wire).unwrap();
        encode_tick(&mut wire);
        let mut buf = BytesMut::from(&wire[..]);
        let mut d = FrameDecoder::new();
        assert_eq!(d.decode(&mut buf).unwrap(), Some(Frame::Tick));
        assert_eq!(d.decode(&mut buf).unwrap(), Some(Frame::Data(Bytes::from_static(b"hello"))));
        assert_eq!(d.decode(&mut buf).unwrap(), Some(Frame::Tick));
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn byte_by_byte_needs_more_until_complete() {
        let mut wire = Vec::new();
        encode_frame(&[1, 2, 3], &mut wire).unwrap();
        let mut d = FrameDecoder::new();
        let mut buf = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = d.decode(&mut buf).unwrap();
            if i + 1 < wire.len() {
                assert_eq!(got, None, "after {} bytes", i + 1);
            } else {
                assert_eq!(got, Some(Frame::Data(Bytes::from_static(&[1, 2, 3]))));
            }
        }
    }

    #[test]
    fn too_large_is_refused_from_the_prefix() {
        let mut d = FrameDecoder::with_max_frame_size(10);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 11][..]);
        assert!(matches!(d.decode(&mut buf), Err(DistError::FrameTooLarge { len: 11, max: 10 })));
        // exactly the limit is fine
        let mut buf = BytesMut::from(&[0u8, 0, 0, 10][..]);
        assert!(matches!(d.decode(&mut buf), Ok(None)));
        assert_eq!(d.frame_len(&buf), Some(14));
        assert_eq!(d.frame_len(&[0, 0, 0, 99]), Some(14), "capped at the limit");
        assert_eq!(d.frame_len(&[0, 0, 0]), None);
        // the default limit refuses a 4 GiB announcement without buffering
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert!(matches!(FrameDecoder::new().decode(&mut buf), Err(DistError::FrameTooLarge { .. })));
    }

    #[test]
    fn begin_finish_frame() {
        let mut out = vec![9];
        let at = begin_frame(&mut out);
        out.extend_from_slice(b"abc");
        finish_frame(&mut out, at).unwrap();
        assert_eq!(out, [9, 0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
