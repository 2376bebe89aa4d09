//! Control messages by meaning: the view the node runtime works with.
//!
//! Several ops carry the same signal (`EXIT`, `EXIT_TT`, `PAYLOAD_EXIT` and `PAYLOAD_EXIT_TT`
//! are all "a link broke"); [`Signal`] has one variant per meaning, with the reason or message
//! in place whichever form it came in. Seq-trace tokens are accepted and dropped: this node
//! does not take part in sequential tracing.

use super::control::{AltactTarget, Control, Mfa, ProcRef, SpawnResult};
use super::{DistError, DistMessage};
use crate::term::{Atom, Pid, Reference, Term};

/// What an `ALTACT_SIG_SEND` delivers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AltActKind {
    /// A message.
    Message(Term),
    /// An exit signal with this reason.
    Exit(Term),
}

/// A signal from a remote process, normalised from its control message and payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `LINK`: `from` links to `to`.
    Link {
        /// Linking process.
        from: Pid,
        /// Local process.
        to: Pid,
    },
    /// `UNLINK_ID` (with `id`) or the obsolete `UNLINK` (`id` is `None`).
    Unlink {
        /// The unlink id to acknowledge with `UNLINK_ID_ACK`.
        id: Option<u64>,
        /// Unlinking process.
        from: Pid,
        /// Local process.
        to: Pid,
    },
    /// `UNLINK_ID_ACK`.
    UnlinkAck {
        /// The id of the acknowledged unlink.
        id: u64,
        /// Acknowledging process.
        from: Pid,
        /// Local process that unlinked.
        to: Pid,
    },
    /// A link broke: `EXIT`, `EXIT_TT`, `PAYLOAD_EXIT`, `PAYLOAD_EXIT_TT`.
    Exit {
        /// The process that exited.
        from: Pid,
        /// The linked local process.
        to: Pid,
        /// Exit reason.
        reason: Term,
    },
    /// `exit/2`: `EXIT2`, `EXIT2_TT`, `PAYLOAD_EXIT2`, `PAYLOAD_EXIT2_TT`.
    Exit2 {
        /// Sender of the exit signal.
        from: Pid,
        /// Local process.
        to: Pid,
        /// Exit reason (`kill` kills even a trapping process).
        reason: Term,
    },
    /// A message to a pid: `SEND`, `SEND_TT`, `SEND_SENDER`, `SEND_SENDER_TT`.
    Send {
        /// The sender, when the op carries it.
        from: Option<Pid>,
        /// Local process.
        to: Pid,
        /// The message.
        msg: Term,
    },
    /// A message to a registered name: `REG_SEND`, `REG_SEND_TT`.
    RegSend {
        /// The sender.
        from: Pid,
        /// Local registered name.
        to: Atom,
        /// The message.
        msg: Term,
    },
    /// A message to an alias: `ALIAS_SEND`, `ALIAS_SEND_TT`.
    AliasSend {
        /// The sender.
        from: Pid,
        /// The alias (a reference made here).
        alias: Reference,
        /// The message.
        msg: Term,
    },
    /// `MONITOR_P`.
    Monitor {
        /// Monitoring process.
        from: Pid,
        /// Local pid or registered name.
        to: ProcRef,
        /// The monitor reference.
        reference: Reference,
    },
    /// `DEMONITOR_P`.
    Demonitor {
        /// Monitoring process.
        from: Pid,
        /// Local pid or registered name.
        to: ProcRef,
        /// The monitor reference.
        reference: Reference,
    },
    /// A monitored process went away: `MONITOR_P_EXIT`, `PAYLOAD_MONITOR_P_EXIT`.
    MonitorExit {
        /// The monitored process (a name when it was monitored by name).
        from: ProcRef,
        /// Local monitoring process.
        to: Pid,
        /// The monitor reference.
        reference: Reference,
        /// Exit reason.
        reason: Term,
    },
    /// `SPAWN_REQUEST`, `SPAWN_REQUEST_TT`.
    SpawnRequest {
        /// Request id, echoed in the reply.
        req_id: Reference,
        /// Requesting process.
        from: Pid,
        /// Group leader for the new process.
        group_leader: Pid,
        /// What to run.
        mfa: Mfa,
        /// Spawn options (a list).
        opts: Term,
        /// Arguments (a list).
        args: Term,
    },
    /// `SPAWN_REPLY`, `SPAWN_REPLY_TT`.
    SpawnReply {
        /// The request id.
        req_id: Reference,
        /// Local requesting process.
        to: Pid,
        /// `ERTS_DIST_SPAWN_FLAG_*` bits.
        flags: u32,
        /// The new process or the error.
        result: SpawnResult,
    },
    /// `GROUP_LEADER`.
    GroupLeader {
        /// Requesting process.
        from: Pid,
        /// Local process whose group leader becomes `from`.
        to: Pid,
    },
    /// `ALTACT_SIG_SEND` (OTP 28).
    AltAct {
        /// A priority message or signal.
        prio: bool,
        /// The sender.
        from: Pid,
        /// The addressee.
        to: AltactTarget,
        /// Message or exit signal.
        kind: AltActKind,
    },
}

impl DistMessage {
    /// The signal this message carries. Fails only if the payload does not match the op
    /// (impossible for messages from [`Receiver`](super::Receiver)).
    pub fn into_signal(self) -> Result<Signal, DistError> {
        let op = self.control.op();
        let mut payload = self.payload;
        if payload.is_some() && !self.control.has_payload() {
            return Err(DistError::PayloadMismatch { op, needs_payload: false });
        }
        let mut take = move || payload.take().ok_or(DistError::PayloadMismatch { op, needs_payload: true });
        Ok(match self.control {
            Control::Link { from, to } => Signal::Link { from, to },
            Control::Unlink { from, to } => Signal::Unlink { id: None, from, to },
            Control::UnlinkId { id, from, to } => Signal::Unlink { id: Some(id), from, to },
            Control::UnlinkIdAck { id, from, to } => Signal::UnlinkAck { id, from, to },
            Control::Exit { from, to, reason } | Control::ExitTt { from, to, reason, .. } => {
                Signal::Exit { from, to, reason }
            }
            Control::PayloadExit { from, to } | Control::PayloadExitTt { from, to, .. } => {
                Signal::Exit { from, to, reason: take()? }
            }
            Control::Exit2 { from, to, reason } | Control::Exit2Tt { from, to, reason, .. } => {
                Signal::Exit2 { from, to, reason }
            }
            Control::PayloadExit2 { from, to } | Control::PayloadExit2Tt { from, to, .. } => {
                Signal::Exit2 { from, to, reason: take()? }
            }
            Control::Send { to } | Control::SendTt { to, .. } => Signal::Send { from: None, to, msg: take()? },
            Control::SendSender { from, to } | Control::SendSenderTt { from, to, .. } => {
                Signal::Send { from: Some(from), to, msg: take()? }
            }
            Control::RegSend { from, to_name, .. } | Control::RegSendTt { from, to_name, .. } => {
                Signal::RegSend { from, to: to_name, msg: take()? }
            }
            Control::AliasSend { from, alias } | Control::AliasSendTt { from, alias, .. } => {
                Signal::AliasSend { from, alias, msg: take()? }
            }
            Control::MonitorP { from, to, reference } => Signal::Monitor { from, to, reference },
            Control::DemonitorP { from, to, reference } => Signal::Demonitor { from, to, reference },
            Control::MonitorPExit { from, to, reference, reason } => {
                Signal::MonitorExit { from, to, reference, reason }
            }
            Control::PayloadMonitorPExit { from, to, reference } => {
                Signal::MonitorExit { from, to, reference, reason: take()? }
            }
            Control::SpawnRequest { req_id, from, group_leader, mfa, opts }
            | Control::SpawnRequestTt { req_id, from, group_leader, mfa, opts, .. } => {
                Signal::SpawnRequest { req_id, from, group_leader, mfa, opts, args: take()? }
            }
            Control::SpawnReply { req_id, to, flags, result }
            | Control::SpawnReplyTt { req_id, to, flags, result, .. } => {
                Signal::SpawnReply { req_id, to, flags, result }
            }
            Control::GroupLeader { from, to } => Signal::GroupLeader { from, to },
            Control::AltactSigSend { prio, exit, from, to, .. } => {
                let p = take()?;
                Signal::AltAct { prio, from, to, kind: if exit { AltActKind::Exit(p) } else { AltActKind::Message(p) } }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::control::tests::{one_of_each, pid};

    #[test]
    fn every_op_has_a_meaning() {
        for control in one_of_each() {
            let payload = control.has_payload().then(|| Term::atom("p"));
            let op = control.op();
            let s = DistMessage { control, payload }.into_signal().unwrap();
            let expect_payload_in_signal = match &s {
                Signal::Exit { reason, .. } | Signal::Exit2 { reason, .. } | Signal::MonitorExit { reason, .. } => {
                    [24, 25, 26, 27, 28].contains(&op).then_some(reason)
                }
                Signal::Send { msg, .. } | Signal::RegSend { msg, .. } | Signal::AliasSend { msg, .. } => Some(msg),
                Signal::SpawnRequest { args, .. } => Some(args),
                Signal::AltAct { kind: AltActKind::Exit(p) | AltActKind::Message(p), .. } => Some(p),
                _ => None,
            };
            if let Some(p) = expect_payload_in_signal {
                assert_eq!(p, &Term::atom("p"), "op {op}");
            }
        }
    }

    #[test]
    fn forms_of_one_meaning_agree() {
        let token = Term::atom("token");
        let reason = Term::atom("bye");
        let a =
            DistMessage { control: Control::Exit { from: pid(1), to: pid(2), reason: reason.clone() }, payload: None };
        let b = DistMessage {
            control: Control::PayloadExitTt { from: pid(1), to: pid(2), token: token.clone() },
            payload: Some(reason.clone()),
        };
        assert_eq!(a.into_signal().unwrap(), b.into_signal().unwrap());
        let s = DistMessage {
            control: Control::SendSenderTt { from: pid(1), to: pid(2), token },
            payload: Some(Term::Int(1)),
        };
        assert_eq!(s.into_signal().unwrap(), Signal::Send { from: Some(pid(1)), to: pid(2), msg: Term::Int(1) });
    }

    #[test]
    fn payload_mismatch_is_an_error() {
        let m = DistMessage { control: Control::Send { to: pid(2) }, payload: None };
        assert!(matches!(m.into_signal(), Err(DistError::PayloadMismatch { op: 2, needs_payload: true })));
        let m = DistMessage { control: Control::Link { from: pid(1), to: pid(2) }, payload: Some(Term::Int(0)) };
        assert!(matches!(m.into_signal(), Err(DistError::PayloadMismatch { op: 1, needs_payload: false })));
    }
}
