//! The acceptor's states (`dist_util:handshake_other_started`): the peer dialled us.
//!
//! [`AwaitName`] → [`StatusPending`] (the caller picks the status) → (on `alive`:
//! [`AwaitAliveReply`]) → (after a version 5 `'n'`: [`AwaitComplement`]) → [`AwaitReply`] →
//! [`Outcome`]. Each transition consumes the state, takes one message without its length
//! prefix, and appends framed replies to `out`. Bytes appended before an error (e.g. `s` +
//! `not_allowed`) should still be written.

use super::error::{DigestMessage, HandshakeError, Side};
use super::message;
use super::{LocalNode, Outcome, Status, digest_eq, gen_digest, negotiate};
use crate::dist::DistFlags;
use crate::term::Atom;

/// The low 32 bits: all that a version 5 `'n'` carries.
const LOW_32: DistFlags = DistFlags(0xffff_ffff);

#[derive(Debug)]
struct Common {
    local: LocalNode,
    wire_name: Vec<u8>,
    our_challenge: u32,
}

/// What the peer told us about itself.
#[derive(Debug, Clone)]
struct PeerInfo {
    name: Atom,
    flags: DistFlags,
    /// `None` until the complement arrives, after a version 5 name.
    creation: Option<u32>,
}

/// Waiting for the peer's name (`recv_name`).
#[derive(Debug)]
pub struct AwaitName(Common);

impl AwaitName {
    /// A fresh acceptor. `our_challenge` must be unpredictable (the caller draws it from a
    /// CSPRNG).
    pub fn new(local: LocalNode, our_challenge: u32) -> Result<AwaitName, HandshakeError> {
        let wire_name = local.validate()?;
        Ok(AwaitName(Common { local, wire_name, our_challenge }))
    }

    /// Handles `'N'` (or the version 5 `'n'`): validates the name and checks the mandatory flags
    /// (`check_dflags`). Missing flags append `s` + `not_allowed` to `out` and fail with
    /// [`HandshakeError::MissingFlags`]; so does a `NAME_ME` request
    /// ([`HandshakeError::NameMeUnsupported`]). A bad name closes without a reply, as OTP does.
    pub fn handle_name(self, msg: &[u8], out: &mut Vec<u8>) -> Result<StatusPending, HandshakeError> {
        let name_msg = message::decode_name(msg)?;
        if name_msg.flags.contains(DistFlags::NAME_ME) {
            message::encode_status(out, Status::NotAllowed.as_str());
            return Err(HandshakeError::NameMeUnsupported);
        }
        let name = message::name_from_wire(&name_msg.name)?;
        // After 'n', only the low 32 bits are known; the rest is checked after 'c'.
        let required = match name_msg.creation {
            Some(_) => DistFlags::MANDATORY,
            None => DistFlags::MANDATORY & LOW_32,
        };
        let missing = name_msg.flags.missing(required);
        if missing != DistFlags::EMPTY {
            message::encode_status(out, Status::NotAllowed.as_str());
            return Err(HandshakeError::MissingFlags { peer: Some(name), missing });
        }
        let peer = PeerInfo { name, flags: name_msg.flags, creation: name_msg.creation };
        Ok(StatusPending { common: self.0, peer })
    }
}

/// The name is in; the caller must choose the status (it knows about pending and up
/// connections to this node: see [`super::status_for_incoming`]).
#[derive(Debug)]
pub struct StatusPending {
    common: Common,
    peer: PeerInfo,
}

/// Where the handshake goes after the status.
#[derive(Debug)]
pub enum AfterStatus {
    /// The challenge was sent.
    Challenged(Challenged),
    /// `alive` was sent; the peer's `true`/`false` comes next.
    AwaitAliveReply(AwaitAliveReply),
}

/// The challenge was sent; what comes next depends on the name message version.
#[derive(Debug)]
pub enum Challenged {
    /// After `'N'`: the challenge reply.
    AwaitReply(AwaitReply),
    /// After `'n'`: the complement, then the challenge reply.
    AwaitComplement(AwaitComplement),
}

impl StatusPending {
    /// The peer's node name.
    pub fn peer(&self) -> &Atom {
        &self.peer.name
    }

    /// The peer's flags so far (only the low 32 bits after a version 5 name).
    pub fn peer_flags(&self) -> DistFlags {
        self.peer.flags
    }

    /// Sends `status`. `ok`/`ok_simultaneous` go on with the challenge, `alive` waits for the
    /// peer's answer, `nok`/`not_allowed` end with [`HandshakeError::Rejected`] by
    /// [`Side::Local`] (after appending the status to `out`).
    pub fn send_status(self, status: Status, out: &mut Vec<u8>) -> Result<AfterStatus, HandshakeError> {
        message::encode_status(out, status.as_str());
        match status {
            Status::Ok | Status::OkSimultaneous => {
                Ok(AfterStatus::Challenged(send_challenge(self.common, self.peer, out)))
            }
            Status::Alive => Ok(AfterStatus::AwaitAliveReply(AwaitAliveReply { common: self.common, peer: self.peer })),
            Status::Nok | Status::NotAllowed => Err(HandshakeError::Rejected { status, by: Side::Local }),
        }
    }
}

/// `send_challenge`: `'N'` with our full flags, our challenge, our creation and our name.
fn send_challenge(common: Common, peer: PeerInfo, out: &mut Vec<u8>) -> Challenged {
    message::encode_challenge(out, common.local.flags, common.our_challenge, common.local.creation, &common.wire_name);
    match peer.creation {
        Some(creation) => Challenged::AwaitReply(AwaitReply::new(common, peer.name, peer.flags, creation)),
        None => Challenged::AwaitComplement(AwaitComplement { common, peer }),
    }
}

/// `alive` was sent; waiting for `s` + `true`/`false` (`recv_status_reply`).
#[derive(Debug)]
pub struct AwaitAliveReply {
    common: Common,
    peer: PeerInfo,
}

impl AwaitAliveReply {
    /// The peer's node name.
    pub fn peer(&self) -> &Atom {
        &self.peer.name
    }

    /// `true` sends the challenge; `false` ends with [`HandshakeError::Rejected`] by
    /// [`Side::Peer`]. The caller must drop the old connection before using the new one.
    pub fn handle_status(self, msg: &[u8], out: &mut Vec<u8>) -> Result<Challenged, HandshakeError> {
        match message::decode_status(msg)? {
            b"true" => Ok(send_challenge(self.common, self.peer, out)),
            b"false" => Err(HandshakeError::Rejected { status: Status::Alive, by: Side::Peer }),
            other => Err(message::unexpected_status(other)),
        }
    }
}

/// Waiting for the complement `'c'` after a version 5 name (`recv_complement`).
#[derive(Debug)]
pub struct AwaitComplement {
    common: Common,
    peer: PeerInfo,
}

impl AwaitComplement {
    /// Adds the high flag bits and the creation, and checks the full mandatory set (missing
    /// flags append `s` + `not_allowed`, as `check_dflags` does at this point).
    pub fn handle_complement(self, msg: &[u8], out: &mut Vec<u8>) -> Result<AwaitReply, HandshakeError> {
        let (high, creation) = message::decode_complement(msg)?;
        let flags = (self.peer.flags & LOW_32) | DistFlags(u64::from(high) << 32);
        let missing = flags.missing(DistFlags::MANDATORY);
        if missing != DistFlags::EMPTY {
            message::encode_status(out, Status::NotAllowed.as_str());
            return Err(HandshakeError::MissingFlags { peer: Some(self.peer.name), missing });
        }
        Ok(AwaitReply::new(self.common, self.peer.name, flags, creation))
    }
}

/// Waiting for the challenge reply `'r'` (`recv_challenge_reply`).
#[derive(Debug)]
pub struct AwaitReply {
    common: Common,
    outcome: Outcome,
}

impl AwaitReply {
    fn new(common: Common, name: Atom, flags: DistFlags, creation: u32) -> AwaitReply {
        let outcome =
            Outcome { negotiated: negotiate(common.local.flags, flags), name, flags, creation, leftover: Vec::new() };
        AwaitReply { common, outcome }
    }

    /// The peer's node name.
    pub fn peer(&self) -> &Atom {
        &self.outcome.name
    }

    /// Checks the digest of our challenge (else [`HandshakeError::BadCookie`]; nothing is sent,
    /// as OTP closes the socket) and sends `'a'` with the digest of the peer's challenge.
    pub fn handle_reply(self, msg: &[u8], out: &mut Vec<u8>) -> Result<Outcome, HandshakeError> {
        let (their_challenge, digest) = message::decode_challenge_reply(msg)?;
        let cookie = &self.common.local.cookie;
        if !digest_eq(&digest, &gen_digest(self.common.our_challenge, cookie)) {
            return Err(HandshakeError::BadCookie { peer: self.outcome.name, message: DigestMessage::ChallengeReply });
        }
        message::encode_challenge_ack(out, &gen_digest(their_challenge, cookie));
        Ok(self.outcome)
    }
}
