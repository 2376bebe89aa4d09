//! [`Handshake`]: the typed states behind one value a driver can hold, plus the byte buffers.

use std::mem;

use super::acceptor::{self, AfterStatus, Challenged};
use super::error::HandshakeError;
use super::initiator::{self, StatusReceived};
use super::message::{self, Framing};
use super::{LocalNode, MAX_HANDSHAKE_MESSAGE_LEN, Outcome, Status};
use crate::dist::DistFlags;
use crate::term::Atom;

/// Which end of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We dialled the peer (`handshake_we_started`).
    Initiator,
    /// The peer dialled us (`handshake_other_started`).
    Acceptor,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Write [`Handshake::take_output`], then read and feed more bytes.
    NeedInput,
    /// Acceptor: the peer introduced itself. Choose a status (see
    /// [`super::status_for_incoming`]) and call [`Handshake::reply_status`].
    StatusRequest {
        /// The peer's node name.
        peer: Atom,
        /// The peer's flags (only the low 32 bits after a version 5 name).
        flags: DistFlags,
    },
    /// Initiator: the peer answered `alive` (it has a connection from us already). Call
    /// [`Handshake::answer_alive`] with `true` only if we are really connecting anew.
    AliveQuery {
        /// The node we dialled.
        peer: Atom,
    },
    /// Done. Write [`Handshake::take_output`] (the acceptor's `'a'`), then switch to 4-byte
    /// framing, starting with [`Outcome::leftover`].
    Complete(Outcome),
}

#[derive(Debug)]
enum State {
    InitAwaitStatus(initiator::AwaitStatus),
    InitAlive(initiator::AliveQuery),
    InitAwaitChallenge(initiator::AwaitChallenge),
    InitAwaitAck(initiator::AwaitAck),
    AccAwaitName(acceptor::AwaitName),
    AccStatusPending(acceptor::StatusPending),
    AccAwaitAliveReply(acceptor::AwaitAliveReply),
    AccAwaitComplement(acceptor::AwaitComplement),
    AccAwaitReply(acceptor::AwaitReply),
    /// Completed or failed: no more input is accepted.
    Finished,
}

/// One handshake, either role, fed with bytes in any split.
///
/// After every call, write [`Handshake::take_output`] to the socket, *including after an
/// error*: a rejection (`s` + `not_allowed`, `s` + `nok`, `s` + `false`) is queued there before
/// the error is returned. After an error or [`Progress::Complete`], further calls fail with
/// [`HandshakeError::Misuse`]; a misuse error itself leaves the state unchanged.
#[derive(Debug)]
pub struct Handshake {
    role: Role,
    state: State,
    framing: Framing,
    input: Vec<u8>,
    /// 2-byte frames as the typed states write them; [`Handshake::take_output`] reframes.
    output: Vec<u8>,
}

impl Handshake {
    /// Starts a handshake toward `peer` (the node we dialled); the `'N'` name message is queued
    /// at once.
    pub fn initiator(local: LocalNode, peer: Atom, our_challenge: u32) -> Result<Handshake, HandshakeError> {
        let mut output = Vec::new();
        let s = initiator::start(local, peer, our_challenge, &mut output)?;
        Ok(Handshake {
            role: Role::Initiator,
            state: State::InitAwaitStatus(s),
            framing: Framing::Tcp,
            input: Vec::new(),
            output,
        })
    }

    /// Waits for a handshake from a peer that dialled us.
    pub fn acceptor(local: LocalNode, our_challenge: u32) -> Result<Handshake, HandshakeError> {
        let s = acceptor::AwaitName::new(local, our_challenge)?;
        Ok(Handshake {
            role: Role::Acceptor,
            state: State::AccAwaitName(s),
            framing: Framing::Tcp,
            input: Vec::new(),
            output: Vec::new(),
        })
    }

    /// Delimits messages with `framing` instead of plain TCP's 2-byte lengths (call before any
    /// input or [`Handshake::take_output`]).
    pub fn with_framing(mut self, framing: Framing) -> Handshake {
        self.framing = framing;
        self
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Bytes to write to the peer (taken: a second call returns nothing new).
    pub fn take_output(&mut self) -> Vec<u8> {
        let frames = mem::take(&mut self.output);
        if self.framing == Framing::Tcp {
            return frames;
        }
        let mut out = Vec::with_capacity(frames.len() + 8);
        message::reframe(&frames, self.framing, &mut out);
        out
    }

    /// `true` once the handshake completed or failed.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Feeds bytes read from the socket, in any split, and advances as far as they allow.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<Progress, HandshakeError> {
        if self.is_finished() {
            return Err(HandshakeError::Misuse("handle_input after the handshake finished"));
        }
        self.input.extend_from_slice(data);
        self.advance()
    }

    /// Acceptor, after [`Progress::StatusRequest`]: sends `status` and goes on.
    pub fn reply_status(&mut self, status: Status) -> Result<Progress, HandshakeError> {
        let s = match mem::replace(&mut self.state, State::Finished) {
            State::AccStatusPending(s) => s,
            other => {
                self.state = other;
                return Err(HandshakeError::Misuse("reply_status without a pending status request"));
            }
        };
        self.state = match s.send_status(status, &mut self.output)? {
            AfterStatus::Challenged(c) => challenged(c),
            AfterStatus::AwaitAliveReply(a) => State::AccAwaitAliveReply(a),
        };
        self.advance()
    }

    /// Initiator, after [`Progress::AliveQuery`]: answers `true` (go on) or `false` (abort).
    pub fn answer_alive(&mut self, proceed: bool) -> Result<Progress, HandshakeError> {
        let q = match mem::replace(&mut self.state, State::Finished) {
            State::InitAlive(q) => q,
            other => {
                self.state = other;
                return Err(HandshakeError::Misuse("answer_alive without a pending alive query"));
            }
        };
        self.state = State::InitAwaitChallenge(q.answer(proceed, &mut self.output)?);
        self.advance()
    }

    /// Runs transitions while whole messages are buffered. Any error leaves `Finished` behind.
    fn advance(&mut self) -> Result<Progress, HandshakeError> {
        loop {
            // States waiting on the caller do not consume input.
            match &self.state {
                State::AccStatusPending(s) => {
                    let progress = Progress::StatusRequest { peer: s.peer().clone(), flags: s.peer_flags() };
                    return self.check_buffered().map(|()| progress);
                }
                State::InitAlive(q) => {
                    let progress = Progress::AliveQuery { peer: q.peer().clone() };
                    return self.check_buffered().map(|()| progress);
                }
                State::Finished => {
                    return Err(HandshakeError::Misuse("handshake already finished"));
                }
                _ => {}
            }
            let (msg, used) = match message::decode_frame_with(&self.input, self.framing) {
                Ok(Some((msg, used))) => (msg.to_vec(), used),
                Ok(None) => return Ok(Progress::NeedInput),
                Err(e) => {
                    self.state = State::Finished;
                    return Err(e);
                }
            };
            self.input.drain(..used);
            let out = &mut self.output;
            self.state = match mem::replace(&mut self.state, State::Finished) {
                State::InitAwaitStatus(s) => match s.handle_status(&msg)? {
                    StatusReceived::Continue(c, _) => State::InitAwaitChallenge(c),
                    StatusReceived::Alive(q) => State::InitAlive(q),
                },
                State::InitAwaitChallenge(s) => State::InitAwaitAck(s.handle_challenge(&msg, out)?),
                State::InitAwaitAck(s) => {
                    let mut outcome = s.handle_ack(&msg)?;
                    outcome.leftover = mem::take(&mut self.input);
                    return Ok(Progress::Complete(outcome));
                }
                State::AccAwaitName(s) => State::AccStatusPending(s.handle_name(&msg, out)?),
                State::AccAwaitAliveReply(s) => challenged(s.handle_status(&msg, out)?),
                State::AccAwaitComplement(s) => State::AccAwaitReply(s.handle_complement(&msg, out)?),
                State::AccAwaitReply(s) => {
                    let mut outcome = s.handle_reply(&msg, out)?;
                    outcome.leftover = mem::take(&mut self.input);
                    return Ok(Progress::Complete(outcome));
                }
                State::AccStatusPending(_) | State::InitAlive(_) | State::Finished => {
                    // Excluded by the match above.
                    return Err(HandshakeError::Misuse("internal: waiting state consumed input"));
                }
            };
        }
    }

    /// While waiting on the caller the peer has nothing legitimate to send; bound what we keep.
    fn check_buffered(&mut self) -> Result<(), HandshakeError> {
        let limit = self.framing.header_len() + MAX_HANDSHAKE_MESSAGE_LEN;
        if self.input.len() > limit {
            self.state = State::Finished;
            return Err(HandshakeError::TooLong { what: "unread handshake input", len: self.input.len(), limit });
        }
        Ok(())
    }
}

fn challenged(c: Challenged) -> State {
    match c {
        Challenged::AwaitReply(r) => State::AccAwaitReply(r),
        Challenged::AwaitComplement(c) => State::AccAwaitComplement(c),
    }
}
