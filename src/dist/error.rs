//! The one error type of the `dist` layer, classified by who is at fault.

use std::fmt;

/// Who caused a [`DistError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The peer sent bytes that break the protocol: close the connection.
    PeerMisbehaved,
    /// The peer sent something valid in some OTP release that this node does not understand
    /// (an unknown control op, for instance).
    PeerIncompatible,
    /// This node asked for something the connection cannot carry (a control message the
    /// negotiated flags do not allow, a payload where none belongs).
    LocalMisuse,
}

/// An error after the handshake: framing, header, atom cache, fragments, control messages.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DistError {
    /// A length prefix announced a frame beyond the limit (or a frame to send does not fit
    /// the 32-bit length).
    FrameTooLarge {
        /// Announced body length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A frame whose first bytes are neither `112` (pass-through) nor `131,68|69|70`.
    UnknownFrameKind {
        /// The first byte (or the second, after `131`).
        tag: u8,
    },
    /// A pass-through (`112`) frame although `DIST_HDR_ATOM_CACHE` or `FRAGMENTS` was
    /// negotiated; BEAM logs "Got message from incompatible erlang" and disconnects.
    PassThroughNotAllowed,
    /// A frame or header ended before a field it must hold.
    Truncated {
        /// The field that is missing.
        what: &'static str,
    },
    /// An atom text in the atom-cache section is not valid (not UTF-8, or too long).
    BadAtomText {
        /// Reference index in the header.
        index: usize,
    },
    /// An atom-cache reference names a cache slot that was never filled.
    UnknownAtomCacheSlot {
        /// The slot (`segment * 256 + internal index`).
        slot: usize,
    },
    /// A continuation fragment of a sequence that was never started (or already finished).
    UnknownSequence {
        /// The SequenceId.
        sequence: u64,
    },
    /// A first fragment for a sequence that is still being reassembled.
    SequenceInUse {
        /// The SequenceId.
        sequence: u64,
    },
    /// A fragment whose FragmentId is not the one expected (they count down to 1).
    FragmentOutOfOrder {
        /// The SequenceId.
        sequence: u64,
        /// The FragmentId expected next.
        expected: u64,
        /// The FragmentId received.
        got: u64,
    },
    /// A FragmentId of 0.
    ZeroFragmentId {
        /// The SequenceId.
        sequence: u64,
    },
    /// More fragmented messages in flight than
    /// [`MAX_FRAGMENTED_IN_FLIGHT`](super::header::MAX_FRAGMENTED_IN_FLIGHT).
    TooManyFragmentedMessages {
        /// The limit.
        max: usize,
    },
    /// A reassembled message, or all of them together, would exceed the limit.
    MessageTooLarge {
        /// Size it would reach.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A term inside the frame did not decode.
    Term(crate::term::DecodeError),
    /// The control term is not a tuple whose first element is an integer op.
    NotAControlTuple,
    /// A control op this node does not know.
    UnknownOp {
        /// The op.
        op: i64,
    },
    /// A known control op with the wrong arity or a field of the wrong type.
    BadControl {
        /// The op.
        op: u8,
        /// The field (or `"arity"`, `"flags"`).
        field: &'static str,
    },
    /// A control message that needs a payload arrived (or is being sent) without one.
    MissingPayload {
        /// The op.
        op: u8,
    },
    /// A control message that has no payload arrived (or is being sent) with one.
    UnexpectedPayload {
        /// The op.
        op: u8,
    },
    /// Bytes after the last term of a message.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A payload given where the op has none, or missing where it needs one (when sending
    /// or converting a message built locally).
    PayloadMismatch {
        /// The op.
        op: u8,
        /// Whether the op needs a payload.
        needs_payload: bool,
    },
    /// A control message the negotiated flags do not allow sending.
    NotNegotiated {
        /// The op, as OTP spells it.
        op: &'static str,
        /// The missing distribution flag.
        flag: &'static str,
    },
}

impl DistError {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            DistError::NotNegotiated { .. } | DistError::PayloadMismatch { .. } => Fault::LocalMisuse,
            DistError::UnknownOp { .. } => Fault::PeerIncompatible,
            _ => Fault::PeerMisbehaved,
        }
    }
}

impl From<crate::term::DecodeError> for DistError {
    fn from(e: crate::term::DecodeError) -> Self {
        DistError::Term(e)
    }
}

impl fmt::Display for DistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max}")
            }
            DistError::UnknownFrameKind { tag } => write!(f, "unknown frame kind (tag {tag})"),
            DistError::PassThroughNotAllowed => {
                write!(f, "pass-through frame although DIST_HDR_ATOM_CACHE or FRAGMENTS was negotiated")
            }
            DistError::Truncated { what } => write!(f, "frame ends before its {what}"),
            DistError::BadAtomText { index } => write!(f, "atom cache reference {index}: invalid atom text"),
            DistError::UnknownAtomCacheSlot { slot } => write!(f, "atom cache slot {slot} was never filled"),
            DistError::UnknownSequence { sequence } => write!(f, "fragment of unknown sequence {sequence}"),
            DistError::SequenceInUse { sequence } => write!(f, "sequence {sequence} started twice"),
            DistError::FragmentOutOfOrder { sequence, expected, got } => {
                write!(f, "sequence {sequence}: fragment {got} where {expected} was expected")
            }
            DistError::ZeroFragmentId { sequence } => write!(f, "sequence {sequence}: fragment id 0"),
            DistError::TooManyFragmentedMessages { max } => {
                write!(f, "more than {max} fragmented messages in flight")
            }
            DistError::MessageTooLarge { len, max } => {
                write!(f, "reassembled message of {len} bytes exceeds the limit of {max}")
            }
            DistError::Term(e) => write!(f, "term: {e}"),
            DistError::PayloadMismatch { op, needs_payload: true } => {
                write!(f, "control op {op} needs a payload")
            }
            DistError::PayloadMismatch { op, needs_payload: false } => {
                write!(f, "control op {op} takes no payload")
            }
            DistError::NotAControlTuple => write!(f, "control message is not a tuple starting with an op"),
            DistError::UnknownOp { op } => write!(f, "unknown control op {op}"),
            DistError::BadControl { op, field } => write!(f, "control op {op}: bad {field}"),
            DistError::MissingPayload { op } => write!(f, "control op {op} needs a payload"),
            DistError::UnexpectedPayload { op } => write!(f, "control op {op} takes no payload"),
            DistError::TrailingBytes { count } => write!(f, "{count} bytes after the message"),
            DistError::NotNegotiated { op, flag } => write!(f, "{op} needs DFLAG_{flag}, not negotiated"),
        }
    }
}

impl std::error::Error for DistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DistError::Term(e) => Some(e),
            _ => None,
        }
    }
}
