//! The distribution handshake, both roles, as pure state machines (`erl_dist_protocol`,
//! "Distribution Handshake"; `lib/kernel/src/dist_util.erl`: `handshake_we_started`,
//! `handshake_other_started`).
//!
//! ```text
//!   initiator (A, dialled B)                       acceptor (B)
//!   'N' flags:64 creation:32 name   ───────────▶   check mandatory flags
//!                                                  ask the caller: which status?
//!                                  ◀───────────    's' ok | ok_simultaneous | nok | not_allowed | alive
//!   (alive) 's' true | false        ───────────▶
//!                                  ◀───────────    'N' flags:64 challenge:32 creation:32 name
//!   name == dialled? flags ok?
//!   'r' challengeA:32 digest(B)     ───────────▶   digest ok? (else: bad cookie)
//!                                  ◀───────────    'a' digest(A)
//!   digest ok? ─── done: both sides switch to 4-byte framing ───
//! ```
//!
//! `digest(C) = MD5(cookie ++ integer_to_list(C))`, `C` an unsigned 32-bit challenge.
//! A version 5 name (`'n'`, 32-bit flags, no creation) is accepted too; its initiator then sends
//! the complement `'c'` (high flags, creation) after the challenge.
//!
//! Sans-IO: nothing here touches a socket or a clock, and our challenge is passed in. Timeouts
//! (OTP's `net_setuptime`, 7 s per step) and closing the socket are the driver's job.
//! Two levels of API:
//! - [`initiator`] and [`acceptor`]: one type per state; a transition consumes the state,
//!   takes one unframed message and appends framed replies to an output buffer.
//! - [`Handshake`]: a facade that owns the byte buffers, accepts input in any split, and tells
//!   the driver what it needs next ([`Progress`]).

pub mod acceptor;
mod error;
mod facade;
pub mod fuzz;
pub mod initiator;
pub mod message;
mod profile;

#[cfg(test)]
mod tests;

use std::fmt;

use md5::{Digest, Md5};

use crate::dist::DistFlags;
use crate::term::{Atom, MAX_ATOM_CHARS};

pub use error::{DigestMessage, Fault, HandshakeError, Side};
pub use facade::{Handshake, Progress, Role};
pub use profile::FlagOptions;

/// Longest handshake message we accept. The longest legitimate one is the challenge:
/// 19 bytes plus a name of at most [`MAX_NODE_NAME_LEN`]; the rest is slack for the "ignored
/// extra bytes" the protocol allows after a name.
pub const MAX_HANDSHAKE_MESSAGE_LEN: usize = 2048;

/// Longest node name (bytes on the wire). Names are Latin-1 (one byte per character) and must
/// become an atom, so this is BEAM's atom limit of 255 characters.
pub const MAX_NODE_NAME_LEN: usize = MAX_ATOM_CHARS;

/// How much of an unexpected status text is kept in an error.
pub const MAX_STATUS_TEXT_LEN: usize = 64;

/// The status the acceptor sends after the name (`dist_util:send_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `ok`: continue.
    Ok,
    /// `ok_simultaneous`: continue; the acceptor dropped its own attempt toward the initiator.
    OkSimultaneous,
    /// `nok`: simultaneous connect and the acceptor's own attempt wins; give up this one.
    Nok,
    /// `not_allowed`: missing mandatory flags, or the node is not allowed.
    NotAllowed,
    /// `alive`: a connection is already up; the initiator answers `true` (continue, the old one is
    /// dropped) or `false` (abort).
    Alive,
}

impl Status {
    /// Every status, for parsing.
    pub const ALL: [Status; 5] = [Status::Ok, Status::OkSimultaneous, Status::Nok, Status::NotAllowed, Status::Alive];

    /// The text on the wire, as OTP spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::OkSimultaneous => "ok_simultaneous",
            Status::Nok => "nok",
            Status::NotAllowed => "not_allowed",
            Status::Alive => "alive",
        }
    }

    /// `true` if the handshake goes on straight to the challenge after this status.
    pub const fn continues(self) -> bool {
        matches!(self, Status::Ok | Status::OkSimultaneous)
    }
}

/// The status for an incoming attempt from `peer`, given what we know about that node
/// (`net_kernel`'s `accept_pending` handling; protocol notes 2.4):
///
/// - a connection is up: `alive` (the peer decides whether it replaces it);
/// - we have a pending outgoing attempt: `nok` if our name is greater in atom order (ours wins),
///   else `ok_simultaneous` (the caller must then abandon its outgoing attempt);
/// - otherwise `ok`.
pub fn status_for_incoming(our_name: &Atom, peer_name: &Atom, pending_outgoing: bool, connection_up: bool) -> Status {
    if connection_up {
        Status::Alive
    } else if pending_outgoing {
        if our_name > peer_name { Status::Nok } else { Status::OkSimultaneous }
    } else {
        Status::Ok
    }
}

/// A magic cookie. Its bytes never appear in `Debug` output or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(Vec<u8>);

impl Cookie {
    /// A cookie from its text (the atom's characters, as in `-setcookie`).
    pub fn new(cookie: impl Into<Vec<u8>>) -> Cookie {
        Cookie(cookie.into())
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cookie(<redacted>)")
    }
}

/// `MD5(cookie ++ integer_to_list(challenge))` (`dist_util:gen_digest`).
pub fn gen_digest(challenge: u32, cookie: &Cookie) -> [u8; message::DIGEST_LEN] {
    let mut md5 = Md5::new();
    md5.update(&cookie.0);
    md5.update(challenge.to_string().as_bytes());
    md5.finalize().into()
}

/// Compares digests without an early exit.
fn digest_eq(a: &[u8; message::DIGEST_LEN], b: &[u8; message::DIGEST_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who we are, for one handshake.
#[derive(Debug, Clone)]
pub struct LocalNode {
    /// Our full node name, `name@host` (Latin-1 characters only, as OTP sends it).
    pub name: Atom,
    /// The flags we advertise (see [`FlagOptions`]). `NAME_ME` is not supported.
    pub flags: DistFlags,
    /// Our creation, from EPMD's `ALIVE2_X_RESP`.
    pub creation: u32,
    /// The cookie shared with the peer.
    pub cookie: Cookie,
}

impl LocalNode {
    /// Checks the configuration; returns our name as wire bytes.
    fn validate(&self) -> Result<Vec<u8>, HandshakeError> {
        if self.flags.contains(DistFlags::NAME_ME) {
            return Err(HandshakeError::Misuse("NAME_ME (dynamic names) is not supported"));
        }
        message::validate_own_name(&self.name)
    }
}

/// What a completed handshake established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The peer's node name.
    pub name: Atom,
    /// The peer's flags exactly as it sent them (for a version 5 name: low bits from `'n'`,
    /// high bits from `'c'`).
    pub flags: DistFlags,
    /// The peer's creation.
    pub creation: u32,
    /// What the connection may use: ours AND theirs, both digest-expanded
    /// (`dist_util:adjust_flags`). Send only what this allows.
    pub negotiated: DistFlags,
    /// Bytes that arrived after the last handshake message: the start of the 4-byte framed
    /// stream. Always empty from the typed-state API, which sees whole messages only.
    pub leftover: Vec<u8>,
}

/// `ours AND theirs`, with `MANDATORY_25_DIGEST` expanded on both sides.
fn negotiate(ours: DistFlags, theirs: DistFlags) -> DistFlags {
    ours.expand_digest() & theirs.expand_digest()
}
