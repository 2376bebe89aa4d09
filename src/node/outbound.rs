//! Signals from local processes to processes on other nodes, by meaning. The connection layer
//! lowers each to the control message the negotiated flags allow (`SEND_SENDER` or `SEND`,
//! `PAYLOAD_EXIT` or `EXIT`, ...; `erl_dist_protocol`, "Protocol between Connected Nodes").

use super::MonitorTarget;
use crate::dist::{Mfa, ProcRef, SpawnResult};
use crate::term::{Atom, Pid, Reference, Term};

/// A signal for a process on another node. Fields are named after the control-message fields
/// they become (`erl_dist_protocol`, "Control Messages").
#[allow(missing_docs)]
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A message to a pid; `from` is the sender when known.
    Send { from: Option<Pid>, to: Pid, msg: Term },
    /// A message to a registered name on the peer.
    RegSend { from: Pid, name: Atom, msg: Term },
    /// A message to a process alias on the peer.
    AliasSend { from: Pid, alias: Reference, msg: Term },
    /// Set up a link.
    Link { from: Pid, to: Pid },
    /// Remove a link (OTP 26 protocol); the peer acknowledges with the same id.
    UnlinkId { id: u64, from: Pid, to: Pid },
    /// Acknowledge the peer's unlink.
    UnlinkIdAck { id: u64, from: Pid, to: Pid },
    /// A linked process exited.
    Exit { from: Pid, to: Pid, reason: Term },
    /// `exit/2`.
    Exit2 { from: Pid, to: Pid, reason: Term },
    /// Monitor a process by pid or by name.
    Monitor { from: Pid, target: MonitorTarget, reference: Reference },
    /// Remove a monitor.
    Demonitor { from: Pid, target: MonitorTarget, reference: Reference },
    /// A monitored process exited; `from` is its pid, or its name when monitored by name.
    MonitorExit { from: ProcRef, to: Pid, reference: Reference, reason: Term },
    /// Answer to a spawn request.
    SpawnReply { req_id: Reference, to: Pid, flags: u32, result: SpawnResult },
    /// Ask the peer to spawn a process (boxed: the largest signal, and a rare one).
    SpawnRequest { req_id: Reference, from: Pid, group_leader: Pid, what: Box<SpawnWhat> },
}

/// What a spawn request asks the peer to run.
#[derive(Clone, Debug)]
pub struct SpawnWhat {
    /// `{Module, Function, Arity}`.
    pub mfa: Mfa,
    /// The option list.
    pub opts: Term,
    /// The argument list (the payload).
    pub args: Term,
}

impl Outbound {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Outbound::Send { .. } => "send",
            Outbound::RegSend { .. } => "reg_send",
            Outbound::AliasSend { .. } => "alias_send",
            Outbound::Link { .. } => "link",
            Outbound::UnlinkId { .. } => "unlink_id",
            Outbound::UnlinkIdAck { .. } => "unlink_id_ack",
            Outbound::Exit { .. } => "exit",
            Outbound::Exit2 { .. } => "exit2",
            Outbound::Monitor { .. } => "monitor",
            Outbound::Demonitor { .. } => "demonitor",
            Outbound::MonitorExit { .. } => "monitor_exit",
            Outbound::SpawnReply { .. } => "spawn_reply",
            Outbound::SpawnRequest { .. } => "spawn_request",
        }
    }
}
