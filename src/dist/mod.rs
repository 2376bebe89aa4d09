//! After the handshake: framing and ticks, the distribution header and atom cache,
//! fragments, and control messages (`erl_dist_protocol`, "Protocol between Connected Nodes"
//! and "Link Protocol"; `erl_ext_dist`, "Distribution Header" and "Distribution Header for
//! Fragmented Messages"). Pure: bytes in, messages out, time passed in.
//!
//! ```text
//!  socket bytes ──FrameDecoder──> Frame::Tick ──> Ticker::on_read
//!                                 Frame::Data ──> Receiver::handle_frame ──> DistMessage ──> Signal
//!                                                  (HeaderDecoder: 112 | 131,68 | 131,69/70,
//!                                                   atom cache, fragments; then the ETF codec)
//!  Control + payload ──lower_for_peer──> encode_message ──> frame bytes
//! ```
//!
//! Receiving accepts every framing and op a peer may send (pass-through only when the
//! negotiated flags have neither `DIST_HDR_ATOM_CACHE` nor `FRAGMENTS`, as BEAM requires).
//! Sending: [`encode_message`] writes a `131,68,0` header with no atom-cache references when
//! either flag is negotiated, pass-through otherwise. A connection's writer uses
//! [`encode_message_cached`] instead, which lists the message's atoms in the header as BEAM does
//! when `DIST_HDR_ATOM_CACHE` is negotiated ([`atom_cache_out`]). This node never sends
//! fragments, and sends only ops the negotiated flags allow.
//!
//! ```
//! use bytes::Bytes;
//! use erlnode::dist::{encode_message, Control, DistFlags, Receiver};
//! use erlnode::term::{Atom, Pid, Term};
//!
//! let flags = DistFlags(0xd07df7fbd); // OTP 25's set: headers and fragments
//! let to = Pid { node: Atom::new("a@host"), id: 88, serial: 0, creation: 7 };
//! let mut wire = Vec::new();
//! encode_message(&Control::Send { to }, Some(&Term::atom("hi")), flags, &mut wire).unwrap();
//! assert_eq!(&wire[4..7], &[131, 68, 0]);
//!
//! let mut rx = Receiver::new(flags);
//! let msg = rx.handle_frame(Bytes::copy_from_slice(&wire[4..])).unwrap().unwrap();
//! assert_eq!(msg.payload, Some(Term::atom("hi")));
//! ```

pub mod atom_cache_out;
pub mod control;
mod control_wire;
mod error;
pub mod flags;
pub mod frame;
pub mod header;
pub mod pool;
pub mod signal;
pub mod tick;

use bytes::{Bytes, BytesMut};

pub use atom_cache_out::OutAtomCache;
pub use control::{AltactTarget, Control, Mfa, ProcRef, SpawnResult, lower_for_peer};
pub use error::{DistError, Fault};
pub use flags::DistFlags;
pub use frame::{Frame, FrameDecoder, MAX_FRAME_SIZE, encode_frame, encode_tick};
pub use header::{Body, HeaderDecoder};
pub use signal::{AltActKind, Signal};
pub use tick::{TickAction, Ticker};

use crate::term::{DecodeOptions, Term, decode_term_at, encode_body_to, encode_to};

/// One message from a peer: its control message and, for the ops that have one, the payload
/// (the message, exit reason or spawn arguments that follow the control tuple).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DistMessage {
    /// The control message.
    pub control: Control,
    /// The payload; `Some` exactly when [`Control::has_payload`].
    pub payload: Option<Term>,
}

/// The receiving half of a connection: frames in, messages out.
#[derive(Debug)]
pub struct Receiver {
    headers: HeaderDecoder,
}

impl Receiver {
    /// A receiver for a connection with these negotiated flags (`ours AND theirs`).
    pub fn new(negotiated: DistFlags) -> Receiver {
        Receiver { headers: HeaderDecoder::new(negotiated) }
    }

    /// The header decoder (atom cache and fragments in flight), for inspection.
    pub fn headers(&self) -> &HeaderDecoder {
        &self.headers
    }

    /// Takes one frame body (without its length prefix). Returns `Ok(None)` for a tick (empty
    /// frame) and while a fragmented message is incomplete.
    ///
    /// Any error means the peer broke the protocol (or uses something this node does not know,
    /// see [`DistError::fault`]); the connection should be closed, since the atom cache and
    /// fragment state may no longer match the peer's.
    pub fn handle_frame(&mut self, frame: Bytes) -> Result<Option<DistMessage>, DistError> {
        self.handle_frame_with(frame, |m| m)
    }

    /// [`Receiver::handle_frame`] handing the message to `f` (no moves of the large
    /// [`DistMessage`] through return values on the receive path); `Ok(Some(f(message)))`.
    pub fn handle_frame_with<T>(
        &mut self,
        frame: Bytes,
        f: impl FnOnce(DistMessage) -> T,
    ) -> Result<Option<T>, DistError> {
        match self.headers.handle_into(frame)? {
            Some(fr) => {
                let atoms = fr.header.then(|| self.headers.atoms());
                decode_body(&fr.data, fr.start, atoms, f).map(Some)
            }
            None => Ok(None),
        }
    }
}

/// Decodes the control term and the payload of a message body: the terms in `data` from
/// `start`, with header framing when `atoms` is given (pass-through otherwise).
fn decode_body<T>(
    data: &Bytes,
    start: usize,
    atoms: Option<&[crate::term::Atom]>,
    f: impl FnOnce(DistMessage) -> T,
) -> Result<T, DistError> {
    let opts = DecodeOptions { version_byte: atoms.is_none(), atom_cache: atoms };
    let (control, mut pos) = match control_wire::read_control(data, start, &opts) {
        Some(read) => read,
        None => {
            let (control, pos) = decode_term_at(data, start, &opts)?;
            (Control::from_term(control)?, pos)
        }
    };
    let payload = if pos < data.len() {
        let (payload, end) = decode_term_at(data, pos, &opts)?;
        pos = end;
        Some(payload)
    } else {
        None
    };
    if pos < data.len() {
        return Err(DistError::TrailingBytes { count: data.len() - pos });
    }
    let op = control.op();
    match (control.has_payload(), payload.is_some()) {
        (true, false) => Err(DistError::MissingPayload { op }),
        (false, true) => Err(DistError::UnexpectedPayload { op }),
        _ => Ok(f(DistMessage { control, payload })),
    }
}

/// `true` when the negotiated flags make BEAM use distribution headers (and refuse
/// pass-through frames).
pub fn uses_dist_header(negotiated: DistFlags) -> bool {
    negotiated.contains(DistFlags::DIST_HDR_ATOM_CACHE) || negotiated.contains(DistFlags::FRAGMENTS)
}

/// Whether `control` with `payload` may be sent under `negotiated`: the op is allowed
/// ([`Control::check_allowed`]) and a payload is there exactly when the op carries one.
fn check_sendable(control: &Control, payload: Option<&Term>, negotiated: DistFlags) -> Result<(), DistError> {
    control.check_allowed(negotiated)?;
    if control.has_payload() != payload.is_some() {
        return Err(DistError::PayloadMismatch { op: control.op(), needs_payload: control.has_payload() });
    }
    Ok(())
}

/// Appends one complete frame (length prefix included) carrying `control` and `payload`.
///
/// With `DIST_HDR_ATOM_CACHE` or `FRAGMENTS` negotiated: `131,68,0`, the control term and the
/// payload without version bytes; otherwise pass-through: `112`, then each term with its own
/// `131`. Fails, writing nothing, if the negotiated flags do not allow the op
/// ([`DistError::NotNegotiated`]; see [`lower_for_peer`]), if the payload does not match
/// [`Control::has_payload`], or if the frame would exceed 4 GiB.
pub fn encode_message(
    control: &Control,
    payload: Option<&Term>,
    negotiated: DistFlags,
    out: &mut Vec<u8>,
) -> Result<(), DistError> {
    check_sendable(control, payload, negotiated)?;
    let at = frame::begin_frame(out);
    if uses_dist_header(negotiated) {
        out.extend_from_slice(&[header::VERSION_MAGIC, header::DIST_HEADER, 0]);
        control.encode_body(out);
        if let Some(p) = payload {
            encode_body_to(p, out);
        }
    } else {
        out.extend_from_slice(&[header::PASS_THROUGH, header::VERSION_MAGIC]);
        control.encode_body(out);
        if let Some(p) = payload {
            encode_to(p, out);
        }
    }
    frame::finish_frame(out, at)
}

/// [`encode_message`] for a connection that keeps an atom cache towards its peer: with
/// `DIST_HDR_ATOM_CACHE` negotiated, the header lists the atoms of the control tuple and of
/// the payload's first terms, and `cache` learns the ones the peer did not hold
/// ([`atom_cache_out`]); without it, exactly [`encode_message`]. Fails, writing nothing and
/// leaving `cache` as it was, when [`encode_message`] would.
pub fn encode_message_cached(
    control: &Control,
    payload: Option<&Term>,
    negotiated: DistFlags,
    cache: &mut OutAtomCache,
    out: &mut Vec<u8>,
) -> Result<(), DistError> {
    if !negotiated.contains(DistFlags::DIST_HDR_ATOM_CACHE) {
        return encode_message(control, payload, negotiated, out);
    }
    check_sendable(control, payload, negotiated)?;
    cache.begin();
    control.atoms(&mut |a| cache.offer(a));
    if let Some(p) = payload {
        atom_cache_out::scan(p, &mut |a| cache.offer(a));
    }
    let at = frame::begin_frame(out);
    out.extend_from_slice(&[header::VERSION_MAGIC, header::DIST_HEADER]);
    cache.write_refs(out);
    control.encode_body_with(out, cache);
    if let Some(p) = payload {
        crate::term::encode_body_with(p, out, cache);
    }
    match frame::finish_frame(out, at) {
        Ok(()) => {
            cache.commit();
            Ok(())
        }
        Err(e) => {
            cache.rollback();
            Err(e)
        }
    }
}

/// Flag sets the fuzz entry point chooses from: pass-through (profile A), OTP 25 (profile
/// B), fragments alone, OTP 28 with `ALTACT_SIG`, and `erl_call`'s minimal set.
pub const FUZZ_PROFILES: [DistFlags; 5] = [
    DistFlags(0xd075f5fbd),
    DistFlags(0xd07df7fbd),
    DistFlags(0xd075f5fbd | DistFlags::FRAGMENTS.0),
    DistFlags(0xd07df7fbd | DistFlags::ALTACT_SIG.0),
    DistFlags(0x407074f9c),
];

/// Fuzz entry point: the first byte picks a flag profile from [`FUZZ_PROFILES`], the rest is
/// a byte stream from a peer. Frames go through [`FrameDecoder`] and [`Receiver`] until an
/// error or the end; nothing may panic. Every message received is re-encoded with
/// [`encode_message`] (when the flags allow sending it) and must decode to the same message.
pub fn fuzz_receiver(data: &[u8]) {
    let Some((&select, stream)) = data.split_first() else { return };
    let flags = FUZZ_PROFILES[select as usize % FUZZ_PROFILES.len()];
    let mut frames = FrameDecoder::with_max_frame_size(1 << 20);
    let mut rx = Receiver::new(flags);
    let mut buf = BytesMut::from(stream);
    loop {
        let frame = match frames.decode(&mut buf) {
            Ok(Some(Frame::Data(f))) => f,
            Ok(Some(Frame::Tick)) => continue,
            Ok(None) | Err(_) => return,
        };
        let msg = match rx.handle_frame(frame) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(_) => return,
        };
        let mut wire = Vec::new();
        if encode_message(&msg.control, msg.payload.as_ref(), flags, &mut wire).is_err() {
            continue;
        }
        let again = wire.get(frame::LENGTH_PREFIX_SIZE..).map(Bytes::copy_from_slice).unwrap_or_default();
        let back = Receiver::new(flags).handle_frame(again);
        assert!(matches!(&back, Ok(Some(m)) if *m == msg), "re-encoded {msg:?} came back as {back:?}");
    }
}

#[cfg(test)]
mod tests;
