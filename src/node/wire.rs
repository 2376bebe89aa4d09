//! Between the runtime's signals and the dist layer's control messages: [`encode_outbound`]
//! turns an [`Outbound`] into the fullest control message and lets
//! [`crate::dist::lower_for_peer`] fit it to the negotiated flags; [`dispatch`] applies an
//! incoming control message to local processes (`erl_dist_protocol`, "Protocol between
//! Connected Nodes").

use super::{MonitorTarget, Node, Outbound, ProcRef};
use crate::dist::{AltactTarget, Control, DistError, DistFlags, DistMessage};
use crate::term::{Atom, Term};

fn wire_target(t: &MonitorTarget) -> ProcRef {
    match t {
        MonitorTarget::Pid(p) => ProcRef::Pid(p.clone()),
        MonitorTarget::Name(n, _) => ProcRef::Name(n.clone()),
    }
}

/// Appends the frame for `sig` to `out`.
/// Atoms go through `cache`, the connection's atom cache towards the peer.
pub(crate) fn encode_outbound(
    sig: Outbound,
    negotiated: DistFlags,
    cache: &mut crate::dist::OutAtomCache,
    out: &mut Vec<u8>,
) -> Result<(), DistError> {
    let (control, payload) = match sig {
        Outbound::Send { from: Some(from), to, msg } => (Control::SendSender { from, to }, Some(msg)),
        Outbound::Send { from: None, to, msg } => (Control::Send { to }, Some(msg)),
        Outbound::RegSend { from, name, msg } => (Control::RegSend { from, to_name: name }, Some(msg)),
        Outbound::AliasSend { from, alias, msg } => (Control::AliasSend { from, alias }, Some(msg)),
        Outbound::Link { from, to } => (Control::Link { from, to }, None),
        Outbound::UnlinkId { id, from, to } => (Control::UnlinkId { id, from, to }, None),
        Outbound::UnlinkIdAck { id, from, to } => (Control::UnlinkIdAck { id, from, to }, None),
        Outbound::Exit { from, to, reason } => (Control::PayloadExit { from, to }, Some(reason)),
        Outbound::Exit2 { from, to, reason } => (Control::PayloadExit2 { from, to }, Some(reason)),
        Outbound::Monitor { from, target, reference } => {
            (Control::MonitorP { from, to: wire_target(&target), reference }, None)
        }
        Outbound::Demonitor { from, target, reference } => {
            (Control::DemonitorP { from, to: wire_target(&target), reference }, None)
        }
        Outbound::MonitorExit { from, to, reference, reason } => {
            (Control::PayloadMonitorPExit { from, to, reference }, Some(reason))
        }
        Outbound::SpawnReply { req_id, to, flags, result } => (Control::SpawnReply { req_id, to, flags, result }, None),
        Outbound::SpawnRequest { req_id, from, group_leader, what } => {
            let super::outbound::SpawnWhat { mfa, opts, args } = *what;
            (Control::SpawnRequest { req_id, from, group_leader, mfa, opts }, Some(args))
        }
    };
    let (control, payload) = crate::dist::lower_for_peer(control, payload, negotiated)?;
    crate::dist::encode_message_cached(&control, payload.as_ref(), negotiated, cache, out)
}

/// Applies a control message from `peer`. Errors are protocol violations: the caller closes
/// the connection.
pub(crate) fn dispatch(node: &Node, peer: &Atom, msg: DistMessage) -> Result<(), DistError> {
    let DistMessage { control, payload } = msg;
    let need = |op: u8, p: Option<Term>| p.ok_or(DistError::MissingPayload { op });
    match control {
        Control::Link { from, to } => node.remote_link(&from, &to),
        Control::Send { to } | Control::SendTt { to, .. } => node.remote_send(&to, need(2, payload)?),
        Control::SendSender { to, .. } | Control::SendSenderTt { to, .. } => node.remote_send(&to, need(22, payload)?),
        Control::RegSend { to_name, .. } | Control::RegSendTt { to_name, .. } => {
            node.remote_reg_send(&to_name, need(6, payload)?)
        }
        Control::AliasSend { alias, .. } | Control::AliasSendTt { alias, .. } => {
            node.remote_alias_send(&alias, need(33, payload)?)
        }
        Control::Exit { from, to, reason } | Control::ExitTt { from, to, reason, .. } => {
            node.remote_exit(&from, &to, reason)
        }
        Control::PayloadExit { from, to } | Control::PayloadExitTt { from, to, .. } => {
            node.remote_exit(&from, &to, need(24, payload)?)
        }
        Control::Exit2 { from, to, reason } | Control::Exit2Tt { from, to, reason, .. } => {
            node.remote_exit2(&from, &to, reason)
        }
        Control::PayloadExit2 { from, to } | Control::PayloadExit2Tt { from, to, .. } => {
            node.remote_exit2(&from, &to, need(26, payload)?)
        }
        Control::Unlink { from, to } => node.remote_unlink_old(&from, &to),
        Control::UnlinkId { id, from, to } => node.remote_unlink(id, &from, &to),
        Control::UnlinkIdAck { .. } => {}
        Control::MonitorP { from, to, reference } => node.remote_monitor(&from, &to, &reference),
        Control::DemonitorP { to, reference, .. } => node.remote_demonitor(&to, &reference),
        Control::MonitorPExit { to, reference, reason, .. } => node.remote_monitor_exit(&to, &reference, reason),
        Control::PayloadMonitorPExit { to, reference, .. } => {
            node.remote_monitor_exit(&to, &reference, need(28, payload)?)
        }
        Control::GroupLeader { .. } => {}
        Control::SpawnRequest { req_id, from, group_leader, mfa, opts }
        | Control::SpawnRequestTt { req_id, from, group_leader, mfa, opts, .. } => {
            node.handle_spawn_request(req_id, from, group_leader, mfa, opts, need(29, payload)?)
        }
        Control::SpawnReply { req_id, to, flags, result } | Control::SpawnReplyTt { req_id, to, flags, result, .. } => {
            tracing::trace!(peer = %peer.as_str(), "spawn reply");
            node.handle_spawn_reply(req_id, to, flags, result)
        }
        // OTP 28: a message or an exit signal to a pid, an alias or a name. We have no
        // priority queues, so a priority message is delivered in order with the others.
        Control::AltactSigSend { exit, from, to, .. } => {
            let payload = need(37, payload)?;
            match (to, exit) {
                (AltactTarget::Pid(pid), false) => node.remote_send(&pid, payload),
                (AltactTarget::Alias(alias), false) => node.remote_alias_send(&alias, payload),
                (AltactTarget::Name(name), false) => node.remote_reg_send(&name, payload),
                (AltactTarget::Pid(pid), true) => node.remote_exit2(&from, &pid, payload),
                (AltactTarget::Alias(alias), true) => node.remote_alias_exit(&from, &alias, payload),
                (AltactTarget::Name(name), true) => {
                    if let Some(pid) = node.whereis(&name) {
                        node.remote_exit2(&from, &pid, payload);
                    }
                }
            }
        }
    }
    Ok(())
}
