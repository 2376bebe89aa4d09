//! The handshake messages and their length framing (`erl_dist_protocol`, "Distribution
//! Handshake"; `dist_util:send_name/recv_name`, `send_challenge/recv_challenge`, ...).
//!
//! On plain TCP every message has a 2-byte length prefix (`inet_tcp_dist` opens its sockets with
//! `{packet, 2}`); inside TLS the prefix is 4 bytes (`inet_tls_dist:fam_listen/3` and
//! `do_setup/7` pass `{packet, 4}` to `ssl`), see [`Framing`]. The encoders here always write
//! 2-byte frames; [`reframe`] turns a sequence of them into the other framing.
//!
//! Decoders take one message *without* its length prefix; [`decode_frame`] splits a byte stream
//! into messages. Decoding never panics and never allocates more than the bytes present.

use super::error::HandshakeError;
use super::{MAX_HANDSHAKE_MESSAGE_LEN, MAX_NODE_NAME_LEN, MAX_STATUS_TEXT_LEN, Status};
use crate::dist::DistFlags;
use crate::term::Atom;

/// Length of the frame header in front of every handshake message on plain TCP.
pub const HANDSHAKE_FRAME_HEADER_LEN: usize = 2;
/// Length of the frame header in front of every handshake message inside TLS.
pub const TLS_HANDSHAKE_FRAME_HEADER_LEN: usize = 4;

/// How handshake messages are delimited on the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Framing {
    /// Plain TCP (`inet_tcp_dist`): a 2-byte big-endian length.
    #[default]
    Tcp,
    /// Inside TLS (`inet_tls_dist`): a 4-byte big-endian length.
    Tls,
}

impl Framing {
    /// Bytes in front of every message.
    pub const fn header_len(self) -> usize {
        match self {
            Framing::Tcp => HANDSHAKE_FRAME_HEADER_LEN,
            Framing::Tls => TLS_HANDSHAKE_FRAME_HEADER_LEN,
        }
    }
}
/// Length of an MD5 digest in `'r'` and `'a'`.
pub const DIGEST_LEN: usize = 16;

/// `'N'`: the version 6 name message and the challenge message.
pub const TAG_NAME_NEW: u8 = b'N';
/// `'n'`: the version 5 name message (and challenge, which we never send).
pub const TAG_NAME_OLD: u8 = b'n';
/// `'s'`: a status message.
pub const TAG_STATUS: u8 = b's';
/// `'c'`: the complement after a version 5 name.
pub const TAG_COMPLEMENT: u8 = b'c';
/// `'r'`: the challenge reply.
pub const TAG_CHALLENGE_REPLY: u8 = b'r';
/// `'a'`: the challenge ack.
pub const TAG_CHALLENGE_ACK: u8 = b'a';

/// Splits one frame off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some((message, consumed)))` when a whole
/// message is present, and an error when the announced length exceeds
/// [`MAX_HANDSHAKE_MESSAGE_LEN`].
pub fn decode_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, HandshakeError> {
    decode_frame_with(buf, Framing::Tcp)
}

/// [`decode_frame`] for either framing.
pub fn decode_frame_with(buf: &[u8], framing: Framing) -> Result<Option<(&[u8], usize)>, HandshakeError> {
    let header_len = framing.header_len();
    let Some(header) = buf.get(..header_len) else {
        return Ok(None);
    };
    let len = header.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if len > MAX_HANDSHAKE_MESSAGE_LEN as u64 {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        return Err(HandshakeError::TooLong { what: "handshake message", len, limit: MAX_HANDSHAKE_MESSAGE_LEN });
    }
    // within MAX_HANDSHAKE_MESSAGE_LEN, so it fits
    let end = header_len + len as usize;
    Ok(buf.get(header_len..end).map(|msg| (msg, end)))
}

/// Appends the 2-byte frames in `frames` (as the encoders here write them) to `out` in
/// `framing`. `frames` is our own output, so a malformed tail cannot occur; it would be dropped.
pub fn reframe(frames: &[u8], framing: Framing, out: &mut Vec<u8>) {
    if framing == Framing::Tcp {
        out.extend_from_slice(frames);
        return;
    }
    let mut rest = frames;
    while let Ok(Some((msg, used))) = decode_frame(rest) {
        out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        out.extend_from_slice(msg);
        rest = &rest[used..];
    }
    debug_assert!(rest.is_empty(), "our own handshake output is whole 2-byte frames");
}

/// Appends `parts` as one length-framed message to `out`.
fn push_frame(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    // Only our own messages are framed here; all are far below 64 KiB (names are capped).
    debug_assert!(len <= MAX_HANDSHAKE_MESSAGE_LEN);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// A node name as it travels in the handshake: Latin-1 bytes.
///
/// OTP sends `atom_to_binary(Node, latin1)` and turns received bytes back into an atom with
/// `list_to_atom/1`, so each byte is one character.
pub fn name_to_wire(name: &Atom) -> Result<Vec<u8>, HandshakeError> {
    let mut out = Vec::with_capacity(name.as_str().len());
    for c in name.as_str().chars() {
        let b = u8::try_from(u32::from(c))
            .map_err(|_| HandshakeError::Misuse("node name has characters outside Latin-1"))?;
        out.push(b);
    }
    if out.len() > MAX_NODE_NAME_LEN {
        return Err(HandshakeError::Misuse("node name longer than MAX_NODE_NAME_LEN"));
    }
    Ok(out)
}

fn latin1_lossy(bytes: &[u8], cap: usize) -> String {
    bytes.iter().take(cap).map(|&b| char::from(b)).collect()
}

/// Checks `name@host` with both parts non-empty and exactly one `@` (`dist_util:is_name_ok`)
/// and turns the Latin-1 bytes into an atom.
pub fn name_from_wire(bytes: &[u8]) -> Result<Atom, HandshakeError> {
    let invalid = || HandshakeError::InvalidNodeName { name: latin1_lossy(bytes, MAX_NODE_NAME_LEN) };
    if bytes.len() > MAX_NODE_NAME_LEN {
        return Err(HandshakeError::TooLong { what: "node name", len: bytes.len(), limit: MAX_NODE_NAME_LEN });
    }
    let mut parts = bytes.split(|&b| b == b'@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(host), None) if !name.is_empty() && !host.is_empty() => {}
        _ => return Err(invalid()),
    }
    Atom::try_new(&latin1_lossy(bytes, MAX_NODE_NAME_LEN)).map_err(|_| invalid())
}

/// Checks a name we are about to send or compare against.
pub(crate) fn validate_own_name(name: &Atom) -> Result<Vec<u8>, HandshakeError> {
    let wire = name_to_wire(name)?;
    name_from_wire(&wire).map_err(|_| HandshakeError::Misuse("node name is not name@host"))?;
    Ok(wire)
}

/// A received name message (`'N'` or legacy `'n'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameMsg {
    /// The sender's flags: all 64 bits for `'N'`, only the low 32 for `'n'`.
    pub flags: DistFlags,
    /// The sender's creation; `None` for `'n'` (it follows in the complement).
    pub creation: Option<u32>,
    /// The node name bytes (or the host alone with `NAME_ME`), not yet validated.
    pub name: Vec<u8>,
}

/// Encodes `'N'`: `$N, Flags:64, Creation:32, NLen:16, Name`.
pub fn encode_name(out: &mut Vec<u8>, flags: DistFlags, creation: u32, name: &[u8]) {
    push_frame(
        out,
        &[&[TAG_NAME_NEW], &flags.0.to_be_bytes(), &creation.to_be_bytes(), &(name.len() as u16).to_be_bytes(), name],
    );
}

/// Encodes the legacy `'n'`: `$n, Version:16, Flags:32, Name` (only tests and tools send it).
pub fn encode_name_old(out: &mut Vec<u8>, version: u16, flags: u32, name: &[u8]) {
    push_frame(out, &[&[TAG_NAME_OLD], &version.to_be_bytes(), &flags.to_be_bytes(), name]);
}

/// Encodes `'c'`: `$c, FlagsHigh:32, Creation:32`.
pub fn encode_complement(out: &mut Vec<u8>, flags_high: u32, creation: u32) {
    push_frame(out, &[&[TAG_COMPLEMENT], &flags_high.to_be_bytes(), &creation.to_be_bytes()]);
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes a name message: `'N'` (trailing bytes after the name are ignored, as OTP does) or the
/// version 5 `'n'` (the version field is ignored, as OTP does; the name is the rest).
pub fn decode_name(msg: &[u8]) -> Result<NameMsg, HandshakeError> {
    let short = || HandshakeError::Malformed { message: "name", reason: "truncated" };
    match msg.first() {
        Some(&TAG_NAME_NEW) => {
            let flags = be_u64(msg, 1).ok_or_else(short)?;
            let creation = be_u32(msg, 9).ok_or_else(short)?;
            let nlen = usize::from(be_u16(msg, 13).ok_or_else(short)?);
            let name = msg.get(15..15 + nlen).ok_or_else(short)?;
            Ok(NameMsg { flags: DistFlags(flags), creation: Some(creation), name: name.to_vec() })
        }
        Some(&TAG_NAME_OLD) => {
            let _version = be_u16(msg, 1).ok_or_else(short)?;
            let flags = be_u32(msg, 3).ok_or_else(short)?;
            let name = msg.get(7..).ok_or_else(short)?;
            Ok(NameMsg { flags: DistFlags(u64::from(flags)), creation: None, name: name.to_vec() })
        }
        other => {
            Err(HandshakeError::UnexpectedMessage { expected: "'N' or 'n' (name)", tag: other.copied().unwrap_or(0) })
        }
    }
}

/// Decodes `'c'`: exactly `$c, FlagsHigh:32, Creation:32`. Returns `(flags_high, creation)`.
pub fn decode_complement(msg: &[u8]) -> Result<(u32, u32), HandshakeError> {
    match msg.first() {
        Some(&TAG_COMPLEMENT) => {}
        other => {
            return Err(HandshakeError::UnexpectedMessage {
                expected: "'c' (complement)",
                tag: other.copied().unwrap_or(0),
            });
        }
    }
    if msg.len() != 9 {
        return Err(HandshakeError::Malformed { message: "complement", reason: "length is not 9" });
    }
    match (be_u32(msg, 1), be_u32(msg, 5)) {
        (Some(high), Some(creation)) => Ok((high, creation)),
        _ => Err(HandshakeError::Malformed { message: "complement", reason: "truncated" }),
    }
}

/// Encodes a status message: `$s` followed by the text.
pub fn encode_status(out: &mut Vec<u8>, text: &str) {
    push_frame(out, &[&[TAG_STATUS], text.as_bytes()]);
}

/// Returns the text of a status message, or an error if `msg` is not `'s'`.
pub fn decode_status(msg: &[u8]) -> Result<&[u8], HandshakeError> {
    match msg.split_first() {
        Some((&TAG_STATUS, text)) => Ok(text),
        other => Err(HandshakeError::UnexpectedMessage {
            expected: "'s' (status)",
            tag: other.map(|(t, _)| *t).unwrap_or(0),
        }),
    }
}

/// The error for a status text that does not fit the state.
pub(crate) fn unexpected_status(text: &[u8]) -> HandshakeError {
    HandshakeError::UnexpectedStatus { text: latin1_lossy(text, MAX_STATUS_TEXT_LEN) }
}

/// Parses a status reply to `send_name` (`dist_util:recv_status`).
pub fn parse_status(text: &[u8]) -> Result<Status, HandshakeError> {
    Status::ALL.iter().copied().find(|s| s.as_str().as_bytes() == text).ok_or_else(|| unexpected_status(text))
}

/// A received challenge message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeMsg {
    /// The sender's full flags.
    pub flags: DistFlags,
    /// The challenge we must answer.
    pub challenge: u32,
    /// The sender's creation.
    pub creation: u32,
    /// The sender's node name, not yet validated.
    pub name: Vec<u8>,
}

/// Encodes the challenge: `$N, Flags:64, Challenge:32, Creation:32, NLen:16, Name`.
pub fn encode_challenge(out: &mut Vec<u8>, flags: DistFlags, challenge: u32, creation: u32, name: &[u8]) {
    push_frame(
        out,
        &[
            &[TAG_NAME_NEW],
            &flags.0.to_be_bytes(),
            &challenge.to_be_bytes(),
            &creation.to_be_bytes(),
            &(name.len() as u16).to_be_bytes(),
            name,
        ],
    );
}

/// Decodes the challenge (`'N'` only: we never accept a version 5 challenge, since
/// `HANDSHAKE_23` is mandatory). Trailing bytes after the name are ignored, as OTP does.
pub fn decode_challenge(msg: &[u8]) -> Result<ChallengeMsg, HandshakeError> {
    match msg.first() {
        Some(&TAG_NAME_NEW) => {}
        other => {
            return Err(HandshakeError::UnexpectedMessage {
                expected: "'N' (challenge)",
                tag: other.copied().unwrap_or(0),
            });
        }
    }
    let short = || HandshakeError::Malformed { message: "challenge", reason: "truncated" };
    let flags = be_u64(msg, 1).ok_or_else(short)?;
    let challenge = be_u32(msg, 9).ok_or_else(short)?;
    let creation = be_u32(msg, 13).ok_or_else(short)?;
    let nlen = usize::from(be_u16(msg, 17).ok_or_else(short)?);
    let name = msg.get(19..19 + nlen).ok_or_else(short)?;
    Ok(ChallengeMsg { flags: DistFlags(flags), challenge, creation, name: name.to_vec() })
}

/// Encodes `'r'`: `$r, Challenge:32, Digest:16`.
pub fn encode_challenge_reply(out: &mut Vec<u8>, challenge: u32, digest: &[u8; DIGEST_LEN]) {
    push_frame(out, &[&[TAG_CHALLENGE_REPLY], &challenge.to_be_bytes(), digest]);
}

/// Decodes `'r'` (exactly 21 bytes). Returns the peer's challenge and its digest.
pub fn decode_challenge_reply(msg: &[u8]) -> Result<(u32, [u8; DIGEST_LEN]), HandshakeError> {
    match msg.first() {
        Some(&TAG_CHALLENGE_REPLY) => {}
        other => {
            return Err(HandshakeError::UnexpectedMessage {
                expected: "'r' (challenge reply)",
                tag: other.copied().unwrap_or(0),
            });
        }
    }
    let malformed = || HandshakeError::Malformed { message: "challenge reply", reason: "length is not 21" };
    if msg.len() != 1 + 4 + DIGEST_LEN {
        return Err(malformed());
    }
    let challenge = be_u32(msg, 1).ok_or_else(malformed)?;
    let digest: [u8; DIGEST_LEN] = msg.get(5..).and_then(|d| d.try_into().ok()).ok_or_else(malformed)?;
    Ok((challenge, digest))
}

/// Encodes `'a'`: `$a, Digest:16`.
pub fn encode_challenge_ack(out: &mut Vec<u8>, digest: &[u8; DIGEST_LEN]) {
    push_frame(out, &[&[TAG_CHALLENGE_ACK], digest]);
}

/// Decodes `'a'` (exactly 17 bytes). Returns the digest.
pub fn decode_challenge_ack(msg: &[u8]) -> Result<[u8; DIGEST_LEN], HandshakeError> {
    match msg.split_first() {
        Some((&TAG_CHALLENGE_ACK, digest)) => digest
            .try_into()
            .map_err(|_| HandshakeError::Malformed { message: "challenge ack", reason: "length is not 17" }),
        other => Err(HandshakeError::UnexpectedMessage {
            expected: "'a' (challenge ack)",
            tag: other.map(|(t, _)| *t).unwrap_or(0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_needs_more_then_splits() {
        assert_eq!(decode_frame(&[]).unwrap(), None);
        assert_eq!(decode_frame(&[0]).unwrap(), None);
        assert_eq!(decode_frame(&[0, 3, b's', b'o']).unwrap(), None);
        assert_eq!(decode_frame(&[0, 3, b's', b'o', b'k', 9]).unwrap(), Some((&b"sok"[..], 5)));
        assert!(matches!(decode_frame(&[0xff, 0xff]), Err(HandshakeError::TooLong { .. })));
    }

    #[test]
    fn name_round_trip_and_extra_bytes_ignored() {
        let mut out = Vec::new();
        encode_name(&mut out, DistFlags(0xd07df7fbd), 7, b"a@vm");
        let (msg, used) = decode_frame(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        let n = decode_name(msg).unwrap();
        assert_eq!(n, NameMsg { flags: DistFlags(0xd07df7fbd), creation: Some(7), name: b"a@vm".to_vec() });
        let mut extra = msg.to_vec();
        extra.extend_from_slice(b"junk");
        assert_eq!(decode_name(&extra).unwrap(), n);
    }

    #[test]
    fn node_names_are_checked_like_is_name_ok() {
        assert_eq!(name_from_wire(b"a@vm").unwrap(), Atom::new("a@vm"));
        for bad in [&b"avm"[..], b"@vm", b"a@", b"a@b@c", b""] {
            assert!(matches!(name_from_wire(bad), Err(HandshakeError::InvalidNodeName { .. })), "{bad:?}");
        }
        // Latin-1: byte 0xe9 is 'é'
        assert_eq!(name_from_wire(b"\xe9@vm").unwrap(), Atom::new("é@vm"));
        assert_eq!(name_to_wire(&Atom::new("é@vm")).unwrap(), b"\xe9@vm");
        assert!(name_to_wire(&Atom::new("ł@vm")).is_err());
    }
}
