//! The handshake layer's one error type, classified by who is at fault.

use std::fmt;

use super::Status;
use crate::dist::DistFlags;
use crate::term::Atom;

/// Which side of the connection an event is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// This node.
    Local,
    /// The node at the other end of the socket.
    Peer,
}

/// The digest-carrying message in which a cookie mismatch was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestMessage {
    /// `'r'` (`send_challenge_reply`): checked by the acceptor.
    ChallengeReply,
    /// `'a'` (`send_challenge_ack`): checked by the initiator.
    ChallengeAck,
}

/// Who is to blame for a [`HandshakeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The peer sent something malformed or out of order.
    PeerMisbehaved,
    /// The peer is well-behaved but lacks a capability we require (or asks for one we lack).
    PeerIncompatible,
    /// The two nodes do not share a cookie (or a digest was tampered with in flight).
    BadCookie,
    /// One side turned the connection down with a status (`nok`, `not_allowed`, `alive`+false).
    Rejected,
    /// The peer answered with a name other than the node we dialled.
    NameMismatch,
    /// This node's own code called the API wrongly or configured it badly.
    LocalMisuse,
}

/// Everything that can end a handshake early.
///
/// Messages never contain the cookie. Bytes queued before the error (for example
/// `s` + `not_allowed`) are still available from the driver's output and should be written before
/// the socket is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// A message could not be parsed (`message` names it, e.g. `"name"`, `"challenge"`).
    Malformed {
        /// The message being parsed.
        message: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A message arrived with a tag the current state does not accept.
    UnexpectedMessage {
        /// What this state expected, e.g. `"'N' (challenge)"`.
        expected: &'static str,
        /// The tag byte received (0 for an empty message).
        tag: u8,
    },
    /// A status text that is not valid in this state (e.g. `named:` or unknown text).
    UnexpectedStatus {
        /// The received text, lossily decoded and capped at [`super::MAX_STATUS_TEXT_LEN`] bytes.
        text: String,
    },
    /// A peer-announced length exceeds a named limit.
    TooLong {
        /// What was too long.
        what: &'static str,
        /// The length announced or buffered.
        len: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// A node name is not `name@host` with both parts non-empty.
    InvalidNodeName {
        /// The name, lossily decoded and capped at [`super::MAX_NODE_NAME_LEN`] bytes.
        name: String,
    },
    /// The peer's flags lack flags we require.
    MissingFlags {
        /// The node that lacks them (as far as known).
        peer: Option<Atom>,
        /// The flags that were missing (after expanding `MANDATORY_25_DIGEST`).
        missing: DistFlags,
    },
    /// The peer asked for a dynamic name (`NAME_ME`), which this node does not implement.
    NameMeUnsupported,
    /// A digest did not match: the cookies differ (or a byte was changed in flight).
    BadCookie {
        /// The peer the digest came from.
        peer: Atom,
        /// The message whose digest was wrong.
        message: DigestMessage,
    },
    /// The handshake was turned down with a status.
    Rejected {
        /// The status that ended it (`Alive` here means the alive question was answered `false`).
        status: Status,
        /// Who turned it down.
        by: Side,
    },
    /// The challenge carried a different node name than the one we dialled.
    NameMismatch {
        /// The node we dialled.
        expected: Atom,
        /// The name the peer sent, lossily decoded.
        got: String,
    },
    /// The local code used the API in the wrong state, or configured it badly.
    Misuse(&'static str),
}

impl HandshakeError {
    /// Who is to blame.
    pub fn fault(&self) -> Fault {
        match self {
            HandshakeError::Malformed { .. }
            | HandshakeError::UnexpectedMessage { .. }
            | HandshakeError::UnexpectedStatus { .. }
            | HandshakeError::TooLong { .. }
            | HandshakeError::InvalidNodeName { .. } => Fault::PeerMisbehaved,
            HandshakeError::MissingFlags { .. } | HandshakeError::NameMeUnsupported => Fault::PeerIncompatible,
            HandshakeError::BadCookie { .. } => Fault::BadCookie,
            HandshakeError::Rejected { .. } => Fault::Rejected,
            HandshakeError::NameMismatch { .. } => Fault::NameMismatch,
            HandshakeError::Misuse(_) => Fault::LocalMisuse,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Malformed { message, reason } => {
                write!(f, "malformed handshake {message} message: {reason}")
            }
            HandshakeError::UnexpectedMessage { expected, tag } => {
                write!(f, "expected handshake message {expected}, got tag {tag}")
            }
            HandshakeError::UnexpectedStatus { text } => {
                write!(f, "unexpected handshake status {text:?}")
            }
            HandshakeError::TooLong { what, len, limit } => {
                write!(f, "{what} of {len} bytes exceeds the limit of {limit}")
            }
            HandshakeError::InvalidNodeName { name } => write!(f, "invalid node name {name:?}"),
            HandshakeError::MissingFlags { peer: Some(peer), missing } => {
                write!(f, "node {} lacks mandatory distribution flags {missing:?}", peer.as_str())
            }
            HandshakeError::MissingFlags { peer: None, missing } => {
                write!(f, "peer lacks mandatory distribution flags {missing:?}")
            }
            HandshakeError::NameMeUnsupported => {
                write!(f, "peer requested a dynamic node name (NAME_ME), which is not supported")
            }
            HandshakeError::BadCookie { peer, message } => {
                let which = match message {
                    DigestMessage::ChallengeReply => "challenge reply",
                    DigestMessage::ChallengeAck => "challenge ack",
                };
                write!(f, "invalid {which} digest from node {}: cookies differ", peer.as_str())
            }
            HandshakeError::Rejected { status, by: Side::Peer } => {
                write!(f, "peer rejected the connection with status {}", status.as_str())
            }
            HandshakeError::Rejected { status, by: Side::Local } => {
                write!(f, "connection rejected locally with status {}", status.as_str())
            }
            HandshakeError::NameMismatch { expected, got } => {
                write!(f, "dialled node {} but the peer calls itself {got:?}", expected.as_str())
            }
            HandshakeError::Misuse(what) => write!(f, "handshake API misuse: {what}"),
        }
    }
}

impl std::error::Error for HandshakeError {}
