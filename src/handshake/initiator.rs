//! The initiator's states (`dist_util:handshake_we_started`): we dialled the peer.
//!
//! `start` sends `'N'`; then [`AwaitStatus`] → (on `alive`: [`AliveQuery`]) →
//! [`AwaitChallenge`] → [`AwaitAck`] → [`Outcome`]. Each transition consumes the state, takes
//! one message without its length prefix, and appends framed replies to `out`. Bytes appended
//! before an error (e.g. `s` + `false`) should still be written.

use super::error::{DigestMessage, HandshakeError, Side};
use super::message::{self, DIGEST_LEN};
use super::{LocalNode, Outcome, Status, digest_eq, gen_digest, negotiate};
use crate::dist::DistFlags;
use crate::term::Atom;

#[derive(Debug)]
struct Common {
    local: LocalNode,
    peer: Atom,
    our_challenge: u32,
}

/// Sends our name (`send_name`): `'N'`, our 64-bit flags, our creation, our name.
///
/// `peer` is the node we dial: the challenge must carry exactly this name. `our_challenge` must
/// be unpredictable (the caller draws it from a CSPRNG).
pub fn start(
    local: LocalNode,
    peer: Atom,
    our_challenge: u32,
    out: &mut Vec<u8>,
) -> Result<AwaitStatus, HandshakeError> {
    let wire_name = local.validate()?;
    message::validate_own_name(&peer)?;
    message::encode_name(out, local.flags, local.creation, &wire_name);
    Ok(AwaitStatus(Common { local, peer, our_challenge }))
}

/// Waiting for the status (`recv_status`).
#[derive(Debug)]
pub struct AwaitStatus(Common);

/// What the status said.
#[derive(Debug)]
pub enum StatusReceived {
    /// `ok` or `ok_simultaneous`: the challenge comes next.
    Continue(AwaitChallenge, Status),
    /// `alive`: the caller must decide with [`AliveQuery::answer`].
    Alive(AliveQuery),
}

impl AwaitStatus {
    /// The node we dialled.
    pub fn peer(&self) -> &Atom {
        &self.0.peer
    }

    /// Handles the `'s'` message. `nok` and `not_allowed` end the handshake with
    /// [`HandshakeError::Rejected`]; `named:` (the reply to `NAME_ME`, which we never send) and
    /// unknown texts are [`HandshakeError::UnexpectedStatus`].
    pub fn handle_status(self, msg: &[u8]) -> Result<StatusReceived, HandshakeError> {
        let status = message::parse_status(message::decode_status(msg)?)?;
        match status {
            Status::Ok | Status::OkSimultaneous => Ok(StatusReceived::Continue(AwaitChallenge(self.0), status)),
            Status::Alive => Ok(StatusReceived::Alive(AliveQuery(self.0))),
            Status::Nok | Status::NotAllowed => Err(HandshakeError::Rejected { status, by: Side::Peer }),
        }
    }
}

/// The peer said `alive`: it already has a connection from us.
#[derive(Debug)]
pub struct AliveQuery(Common);

impl AliveQuery {
    /// The node we dialled.
    pub fn peer(&self) -> &Atom {
        &self.0.peer
    }

    /// Answers `true` (we really are connecting anew: the peer drops the old connection) or
    /// `false` (abort: ends with [`HandshakeError::Rejected`] by [`Side::Local`], after
    /// appending `s` + `false` to `out`).
    pub fn answer(self, proceed: bool, out: &mut Vec<u8>) -> Result<AwaitChallenge, HandshakeError> {
        if proceed {
            message::encode_status(out, "true");
            Ok(AwaitChallenge(self.0))
        } else {
            message::encode_status(out, "false");
            Err(HandshakeError::Rejected { status: Status::Alive, by: Side::Local })
        }
    }
}

/// Waiting for the challenge (`recv_challenge`).
#[derive(Debug)]
pub struct AwaitChallenge(Common);

impl AwaitChallenge {
    /// Handles the challenge `'N'`: checks the name is the node we dialled and that the peer has
    /// our mandatory flags, then sends `'r'` with our challenge and the digest of theirs.
    pub fn handle_challenge(self, msg: &[u8], out: &mut Vec<u8>) -> Result<AwaitAck, HandshakeError> {
        let ch = message::decode_challenge(msg)?;
        let Common { local, peer, our_challenge } = self.0;
        // "Name must be exactly the node name A dialled" (BEAM: list_to_existing_atom + compare).
        if message::name_to_wire(&peer)? != ch.name {
            let got = ch.name.iter().take(super::MAX_NODE_NAME_LEN).map(|&b| char::from(b)).collect();
            return Err(HandshakeError::NameMismatch { expected: peer, got });
        }
        let missing = ch.flags.missing(DistFlags::MANDATORY);
        if missing != DistFlags::EMPTY {
            return Err(HandshakeError::MissingFlags { peer: Some(peer), missing });
        }
        let digest = gen_digest(ch.challenge, &local.cookie);
        message::encode_challenge_reply(out, our_challenge, &digest);
        let outcome = Outcome {
            negotiated: negotiate(local.flags, ch.flags),
            name: peer,
            flags: ch.flags,
            creation: ch.creation,
            leftover: Vec::new(),
        };
        let expected = gen_digest(our_challenge, &local.cookie);
        Ok(AwaitAck { outcome, expected })
    }
}

/// Waiting for the challenge ack (`recv_challenge_ack`).
#[derive(Debug)]
pub struct AwaitAck {
    outcome: Outcome,
    expected: [u8; DIGEST_LEN],
}

impl AwaitAck {
    /// Handles `'a'`: the digest of our challenge must match, else
    /// [`HandshakeError::BadCookie`].
    pub fn handle_ack(self, msg: &[u8]) -> Result<Outcome, HandshakeError> {
        let digest = message::decode_challenge_ack(msg)?;
        if digest_eq(&digest, &self.expected) {
            Ok(self.outcome)
        } else {
            Err(HandshakeError::BadCookie { peer: self.outcome.name, message: DigestMessage::ChallengeAck })
        }
    }
}
