//! Control messages (`erl_dist_protocol`, "Protocol between Connected Nodes" and "Link
//! Protocol"; op codes from `enum dop` in `erts/emulator/beam/dist.h`).
//!
//! Every control message is a tuple whose first element is the op; [`Control`] has one
//! variant per op with typed fields, [`Control::from_term`] checks the shape (arity and the
//! type of each field) and [`Control::to_term`] builds the tuple back. Unused fields (the
//! second element of `SEND`, the third of `REG_SEND`) are read as anything and written as
//! the atom `''`, as BEAM writes them.
//!
//! The message term that follows some control messages (the *payload*: the message of a
//! send, the reason of a `PAYLOAD_*` exit, the argument list of a spawn request) is not part
//! of [`Control`]; [`Control::has_payload`] says whether one must follow.

use super::atom_cache_out;
use super::{DistError, DistFlags};
use crate::term::tags::{SMALL_INTEGER_EXT, SMALL_TUPLE_EXT};
use crate::term::{Atom, AtomRefs, NoRefs, Pid, Reference, Term, encode_body_with, write_atom_with};

/// A process named either by pid or by registered name (monitor targets and sources).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProcRef {
    /// A process identifier.
    Pid(Pid),
    /// A registered name on the node the message concerns.
    Name(Atom),
}

/// `{Module, Function, Arity}` of a spawn request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mfa {
    /// Module.
    pub module: Atom,
    /// Function.
    pub function: Atom,
    /// Arity (the length of the argument list in the payload).
    pub arity: u8,
}

/// The `Result` of a `SPAWN_REPLY`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SpawnResult {
    /// The new process.
    Spawned(Pid),
    /// Why no process was started (`badopt`, `notsup`, `system_limit`, ...).
    Error(Atom),
}

/// The addressee of an `ALTACT_SIG_SEND`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AltactTarget {
    /// A process.
    Pid(Pid),
    /// A process alias (flag `ALIAS`).
    Alias(Reference),
    /// A registered name (flag `NAME`).
    Name(Atom),
}

/// `SPAWN_REPLY` flag: a link was set up (`ERTS_DIST_SPAWN_FLAG_LINK`).
pub const ERTS_DIST_SPAWN_FLAG_LINK: u32 = 1 << 0;
/// `SPAWN_REPLY` flag: a monitor was set up (`ERTS_DIST_SPAWN_FLAG_MONITOR`).
pub const ERTS_DIST_SPAWN_FLAG_MONITOR: u32 = 1 << 1;

/// `ALTACT_SIG_SEND` flag: a priority message or signal.
pub const ERTS_DOP_ALTACT_SIG_FLG_PRIO: u32 = 1 << 0;
/// `ALTACT_SIG_SEND` flag: a seq-trace token is the fifth element.
pub const ERTS_DOP_ALTACT_SIG_FLG_TOKEN: u32 = 1 << 1;
/// `ALTACT_SIG_SEND` flag: `To` is an alias (a reference).
pub const ERTS_DOP_ALTACT_SIG_FLG_ALIAS: u32 = 1 << 2;
/// `ALTACT_SIG_SEND` flag: `To` is a registered name (an atom).
pub const ERTS_DOP_ALTACT_SIG_FLG_NAME: u32 = 1 << 3;
/// `ALTACT_SIG_SEND` flag: the payload is an exit reason, not a message.
pub const ERTS_DOP_ALTACT_SIG_FLG_EXIT: u32 = 1 << 4;

const ALTACT_KNOWN_FLAGS: u32 = ERTS_DOP_ALTACT_SIG_FLG_PRIO
    | ERTS_DOP_ALTACT_SIG_FLG_TOKEN
    | ERTS_DOP_ALTACT_SIG_FLG_ALIAS
    | ERTS_DOP_ALTACT_SIG_FLG_NAME
    | ERTS_DOP_ALTACT_SIG_FLG_EXIT;

/// A value that is one element of a control tuple.
trait Field: Sized {
    fn from_term(t: Term) -> Option<Self>;
    fn to_term(&self) -> Term;
    /// Appends the element's encoding (no version byte): the encoding of
    /// [`Field::to_term`], without building more than the element's own term, with the atoms
    /// `refs` has as cache references.
    fn encode<R: AtomRefs>(&self, out: &mut Vec<u8>, refs: &R) {
        encode_body_with(&self.to_term(), out, refs);
    }
    /// Shows the atoms of the element to `f` (those the scan of `atom_cache_out` reaches).
    fn atoms(&self, f: &mut dyn FnMut(&Atom)) {
        atom_cache_out::scan(&self.to_term(), f);
    }
}

impl Field for Term {
    fn from_term(t: Term) -> Option<Self> {
        Some(t)
    }
    fn to_term(&self) -> Term {
        self.clone()
    }
    fn encode<R: AtomRefs>(&self, out: &mut Vec<u8>, refs: &R) {
        encode_body_with(self, out, refs);
    }
    fn atoms(&self, f: &mut dyn FnMut(&Atom)) {
        atom_cache_out::scan(self, f);
    }
}

impl Field for Pid {
    fn from_term(t: Term) -> Option<Self> {
        match t {
            Term::Pid(p) => Some(p),
            _ => None,
        }
    }
    fn to_term(&self) -> Term {
        Term::Pid(self.clone())
    }
    fn atoms(&self, f: &mut dyn FnMut(&Atom)) {
        f(&self.node);
    }
}

impl Field for Reference {
    fn from_term(t: Term) -> Option<Self> {
        match t {
            Term::Ref(r) => Some(r),
            _ => None,
        }
    }
    fn to_term(&self) -> Term {
        Term::Ref(self.clone())
    }
    fn atoms(&self, f: &mut dyn FnMut(&Atom)) {
        f(&self.node);
    }
}

impl Field for Atom {
    fn from_term(t: Term) -> Option<Self> {
        match t {
            Term::Atom(a) => Some(a),
            _ => None,
        }
    }
    fn to_term(&self) -> Term {
        Term::Atom(self.clone())
    }
    fn atoms(&self, f: &mut dyn FnMut(&Atom)) {
        f(self);
    }
}

impl Field for ProcRef {
    fn from_term(t: Term) -> Option<Self> {
        match t {
            Term::Pid(p) => Some(ProcRef::Pid(p)),
            Term::Atom(a) => Some(ProcRef::Name(a)),
            _ => None,
        }
    }
    fn to_term(&self) -> Term {
        match self {
            ProcRef::Pid(p) => Term::Pid(p.clone()),
            ProcRef::Name(a) => Term::Atom(a.clone()),
        }
    }
}

/// Unlink ids: integers in `1..2^64` (a big integer on the wire above `i64::MAX`).
impl Field for u64 {
    fn from_term(t: Term) -> Option<Self> {
        match t {
            Term::Int(i) => u64::try_from(i).ok(),
            Term::BigInt(b) => b.to_i128().and_then(|i| u64::try_from(i).ok()),
            _ => None,
        }
    }
    fn to_term(&self) -> Term {
        Term::from(*self)
    }
}

/// Spawn reply flags.
impl Field for u32 {
    fn from_term(t: Term) -> Option<Self> {
        match t {
            Term::Int(i) => u32::try_from(i).ok(),
            _ => None,
        }
    }
    fn to_term(&self) -> Term {
        Term::Int(i64::from(*self))
    }
}

impl Field for Mfa {
    fn from_term(t: Term) -> Option<Self> {
        let Term::Tuple(elems) = t else { return None };
        let [m, f, a]: [Term; 3] = elems.try_into().ok()?;
        Some(Mfa { module: Atom::from_term(m)?, function: Atom::from_term(f)?, arity: u8::try_from(a.as_int()?).ok()? })
    }
    fn to_term(&self) -> Term {
        Term::Tuple(vec![
            Term::Atom(self.module.clone()),
            Term::Atom(self.function.clone()),
            Term::Int(i64::from(self.arity)),
        ])
    }
}

impl Field for SpawnResult {
    fn from_term(t: Term) -> Option<Self> {
        match t {
            Term::Pid(p) => Some(SpawnResult::Spawned(p)),
            Term::Atom(a) => Some(SpawnResult::Error(a)),
            _ => None,
        }
    }
    fn to_term(&self) -> Term {
        match self {
            SpawnResult::Spawned(p) => Term::Pid(p.clone()),
            SpawnResult::Error(a) => Term::Atom(a.clone()),
        }
    }
}

fn bad(op: u8, field: &'static str) -> DistError {
    DistError::BadControl { op, field }
}

/// Generates [`Control`], the op constants and the per-op conversions from one table:
/// `NAME = op, Variant { fields } = [tuple elements after the op, `_` for unused],
/// payload = bool, needs = [FLAG]`.
macro_rules! controls {
    (
        $(
            $(#[$doc:meta])*
            $CONST:ident = $op:literal, $Variant:ident { $($field:ident : $ty:ty),* }
                = [$($elem:tt),*], payload = $payload:literal, needs = [$($flag:ident)?];
        )*
        @manual { $($manual:tt)* }
    ) => {
        /// Control-message op codes, spelled as in `erl_dist_protocol` (`DOP_*` in `dist.h`).
        pub mod op {
            $( #[doc = concat!("`", stringify!($CONST), "` (", stringify!($op), ").")]
               pub const $CONST: u8 = $op; )*
            /// `ALTACT_SIG_SEND` (37), OTP 28.
            pub const ALTACT_SIG_SEND: u8 = 37;
        }

        /// A control message: one variant per op, fields in tuple order.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum Control {
            $( $(#[$doc])* $Variant { $( #[allow(missing_docs)] $field: $ty ),* }, )*
            $($manual)*
        }

        impl Control {
            fn table_op(&self) -> Option<(u8, &'static str)> {
                match self {
                    $( Control::$Variant { .. } => Some(($op, stringify!($CONST))), )*
                    _ => None,
                }
            }

            fn table_has_payload(&self) -> Option<bool> {
                match self {
                    $( Control::$Variant { .. } => Some($payload), )*
                    _ => None,
                }
            }

            fn table_needs(&self) -> Option<Option<(&'static str, DistFlags)>> {
                match self {
                    $( Control::$Variant { .. } => Some(controls!(@needs $($flag)?)), )*
                    _ => None,
                }
            }

            /// Appends the tuple's encoding (as `encode_body_to(&self.to_term())` writes
            /// it, without building the tuple); `false` for ops not in the table.
            fn table_encode<R: AtomRefs>(&self, out: &mut Vec<u8>, refs: &R) -> bool {
                match self {
                    $( Control::$Variant { $($field),* } => {
                        let arity = 1 + controls!(@count $($elem)*);
                        out.extend_from_slice(&[SMALL_TUPLE_EXT, arity as u8, SMALL_INTEGER_EXT, $op]);
                        $( controls!(@encode out, refs, $elem); )*
                        true
                    } )*
                    _ => false,
                }
            }

            /// Shows the atoms of the tuple to `f`; `false` for ops not in the table.
            #[allow(unused_variables)]
            fn table_atoms(&self, f: &mut dyn FnMut(&Atom)) -> bool {
                match self {
                    $( Control::$Variant { $($field),* } => {
                        $( controls!(@atoms f, $elem); )*
                        true
                    } )*
                    _ => false,
                }
            }

            fn table_to_term(&self) -> Option<Term> {
                match self {
                    $( Control::$Variant { $($field),* } => Some(Term::Tuple(vec![
                        Term::Int($op) $(, controls!(@put $elem))*
                    ])), )*
                    _ => None,
                }
            }

            /// Reads the encoded tuple of a table op (`arity` elements, the op read already);
            /// `None` for other ops and for whatever the fast lane does not read.
            pub(crate) fn table_from_wire(
                op: u8,
                arity: usize,
                w: &mut super::control_wire::Wire,
            ) -> Option<Control> {
                match op {
                    $( $op => {
                        if arity != 1 + controls!(@count $($elem)*) {
                            return None;
                        }
                        $( controls!(@wire w, $elem); )*
                        Some(Control::$Variant { $($field),* })
                    } )*
                    _ => None,
                }
            }

            #[allow(unused_mut, unused_variables)]
            /// Reads the tuple of a table op; gives `elems` back for other ops.
            fn table_from_elems(op: u8, elems: Vec<Term>) -> Result<Result<Control, DistError>, Vec<Term>> {
                match op {
                    $( $op => Ok((move || {
                        if elems.len() != 1 + controls!(@count $($elem)*) {
                            return Err(bad(op, "arity"));
                        }
                        let mut it = elems.into_iter().skip(1);
                        $( controls!(@get op, it, $elem); )*
                        Ok(Control::$Variant { $($field),* })
                    })()), )*
                    _ => Err(elems),
                }
            }
        }
    };
    (@encode $out:ident, $refs:ident, _) => { write_atom_with($out, &Atom::new(""), $refs) };
    (@encode $out:ident, $refs:ident, $f:ident) => { Field::encode($f, $out, $refs) };
    (@atoms $fun:ident, _) => { $fun(&Atom::new("")) };
    (@atoms $fun:ident, $f:ident) => { Field::atoms($f, $fun) };
    (@put _) => { Term::Atom(Atom::new("")) };
    (@put $f:ident) => { Field::to_term($f) };
    (@get $op:ident, $it:ident, _) => { let _ = $it.next(); };
    (@get $op:ident, $it:ident, $f:ident) => {
        let $f = $it.next().and_then(Field::from_term).ok_or(bad($op, stringify!($f)))?;
    };
    (@wire $w:ident, _) => { $w.skip_unused()?; };
    (@wire $w:ident, $f:ident) => { let $f = super::control_wire::WireField::read($w)?; };
    (@count) => { 0usize };
    (@count $head:tt $($rest:tt)*) => { 1usize + controls!(@count $($rest)*) };
    (@needs) => { None };
    (@needs $flag:ident) => { Some((stringify!($flag), DistFlags::$flag)) };
}

controls! {
    /// `{1, FromPid, ToPid}`: set up a link.
    LINK = 1, Link { from: Pid, to: Pid } = [from, to], payload = false, needs = [];
    /// `{2, Unused, ToPid}` + Msg.
    SEND = 2, Send { to: Pid } = [_, to], payload = true, needs = [];
    /// `{3, FromPid, ToPid, Reason}`: a link broke.
    EXIT = 3, Exit { from: Pid, to: Pid, reason: Term } = [from, to, reason], payload = false, needs = [];
    /// `{4, FromPid, ToPid}`: the old unlink (unsupported from OTP 26; see `UNLINK_ID`).
    UNLINK = 4, Unlink { from: Pid, to: Pid } = [from, to], payload = false, needs = [];
    /// `{6, FromPid, Unused, ToName}` + Msg.
    REG_SEND = 6, RegSend { from: Pid, to_name: Atom } = [from, _, to_name], payload = true, needs = [];
    /// `{7, FromPid, ToPid}`: `group_leader/2`.
    GROUP_LEADER = 7, GroupLeader { from: Pid, to: Pid } = [from, to], payload = false, needs = [];
    /// `{8, FromPid, ToPid, Reason}`: `exit/2`.
    EXIT2 = 8, Exit2 { from: Pid, to: Pid, reason: Term } = [from, to, reason], payload = false, needs = [];
    /// `{12, Unused, ToPid, TraceToken}` + Msg.
    SEND_TT = 12, SendTt { to: Pid, token: Term } = [_, to, token], payload = true, needs = [];
    /// `{13, FromPid, ToPid, TraceToken, Reason}`.
    EXIT_TT = 13, ExitTt { from: Pid, to: Pid, token: Term, reason: Term }
        = [from, to, token, reason], payload = false, needs = [];
    /// `{16, FromPid, Unused, ToName, TraceToken}` + Msg.
    REG_SEND_TT = 16, RegSendTt { from: Pid, to_name: Atom, token: Term }
        = [from, _, to_name, token], payload = true, needs = [];
    /// `{18, FromPid, ToPid, TraceToken, Reason}`.
    EXIT2_TT = 18, Exit2Tt { from: Pid, to: Pid, token: Term, reason: Term }
        = [from, to, token, reason], payload = false, needs = [];
    /// `{19, FromPid, ToProc, Ref}`: monitor a pid or a registered name.
    MONITOR_P = 19, MonitorP { from: Pid, to: ProcRef, reference: Reference }
        = [from, to, reference], payload = false, needs = [DIST_MONITOR];
    /// `{20, FromPid, ToProc, Ref}`: remove a monitor.
    DEMONITOR_P = 20, DemonitorP { from: Pid, to: ProcRef, reference: Reference }
        = [from, to, reference], payload = false, needs = [DIST_MONITOR];
    /// `{21, FromProc, ToPid, Ref, Reason}`: a monitored process exited.
    MONITOR_P_EXIT = 21, MonitorPExit { from: ProcRef, to: Pid, reference: Reference, reason: Term }
        = [from, to, reference, reason], payload = false, needs = [DIST_MONITOR];
    /// `{22, FromPid, ToPid}` + Msg.
    SEND_SENDER = 22, SendSender { from: Pid, to: Pid } = [from, to], payload = true, needs = [SEND_SENDER];
    /// `{23, FromPid, ToPid, TraceToken}` + Msg.
    SEND_SENDER_TT = 23, SendSenderTt { from: Pid, to: Pid, token: Term }
        = [from, to, token], payload = true, needs = [SEND_SENDER];
    /// `{24, FromPid, ToPid}` + Reason.
    PAYLOAD_EXIT = 24, PayloadExit { from: Pid, to: Pid } = [from, to], payload = true, needs = [EXIT_PAYLOAD];
    /// `{25, FromPid, ToPid, TraceToken}` + Reason.
    PAYLOAD_EXIT_TT = 25, PayloadExitTt { from: Pid, to: Pid, token: Term }
        = [from, to, token], payload = true, needs = [EXIT_PAYLOAD];
    /// `{26, FromPid, ToPid}` + Reason.
    PAYLOAD_EXIT2 = 26, PayloadExit2 { from: Pid, to: Pid } = [from, to], payload = true, needs = [EXIT_PAYLOAD];
    /// `{27, FromPid, ToPid, TraceToken}` + Reason.
    PAYLOAD_EXIT2_TT = 27, PayloadExit2Tt { from: Pid, to: Pid, token: Term }
        = [from, to, token], payload = true, needs = [EXIT_PAYLOAD];
    /// `{28, FromProc, ToPid, Ref}` + Reason.
    PAYLOAD_MONITOR_P_EXIT = 28, PayloadMonitorPExit { from: ProcRef, to: Pid, reference: Reference }
        = [from, to, reference], payload = true, needs = [EXIT_PAYLOAD];
    /// `{29, ReqId, From, GroupLeader, {Module, Function, Arity}, OptList}` + ArgList.
    SPAWN_REQUEST = 29, SpawnRequest { req_id: Reference, from: Pid, group_leader: Pid, mfa: Mfa, opts: Term }
        = [req_id, from, group_leader, mfa, opts], payload = true, needs = [SPAWN];
    /// `{30, ReqId, From, GroupLeader, {Module, Function, Arity}, OptList, Token}` + ArgList.
    SPAWN_REQUEST_TT = 30, SpawnRequestTt {
        req_id: Reference, from: Pid, group_leader: Pid, mfa: Mfa, opts: Term, token: Term
    } = [req_id, from, group_leader, mfa, opts, token], payload = true, needs = [SPAWN];
    /// `{31, ReqId, To, Flags, Result}`.
    SPAWN_REPLY = 31, SpawnReply { req_id: Reference, to: Pid, flags: u32, result: SpawnResult }
        = [req_id, to, flags, result], payload = false, needs = [SPAWN];
    /// `{32, ReqId, To, Flags, Result, Token}`.
    SPAWN_REPLY_TT = 32, SpawnReplyTt { req_id: Reference, to: Pid, flags: u32, result: SpawnResult, token: Term }
        = [req_id, to, flags, result, token], payload = false, needs = [SPAWN];
    /// `{33, FromPid, Alias}` + Msg.
    ALIAS_SEND = 33, AliasSend { from: Pid, alias: Reference } = [from, alias], payload = true, needs = [ALIAS];
    /// `{34, FromPid, Alias, Token}` + Msg.
    ALIAS_SEND_TT = 34, AliasSendTt { from: Pid, alias: Reference, token: Term }
        = [from, alias, token], payload = true, needs = [ALIAS];
    /// `{35, Id, FromPid, ToPid}`: remove a link (new link protocol).
    UNLINK_ID = 35, UnlinkId { id: u64, from: Pid, to: Pid } = [id, from, to], payload = false, needs = [UNLINK_ID];
    /// `{36, Id, FromPid, ToPid}`: acknowledge an `UNLINK_ID`.
    UNLINK_ID_ACK = 36, UnlinkIdAck { id: u64, from: Pid, to: Pid }
        = [id, from, to], payload = false, needs = [UNLINK_ID];
    @manual {
        /// `{37, Flags, SenderPid, To}` or `{37, Flags, SenderPid, To, Token}` + Msg or exit
        /// Reason (OTP 28). The flags word is derived: `PRIO` from `prio`, `EXIT` from `exit`,
        /// `TOKEN` from `token`, `ALIAS`/`NAME` from the kind of `to`.
        AltactSigSend {
            /// A priority message or signal.
            prio: bool,
            /// The payload is an exit reason (an exit signal), not a message.
            exit: bool,
            /// The sender.
            from: Pid,
            /// The addressee.
            to: AltactTarget,
            /// The seq-trace token, if any.
            token: Option<Term>,
        },
    }
}

impl Control {
    /// The op code.
    pub fn op(&self) -> u8 {
        self.table_op().map_or(op::ALTACT_SIG_SEND, |(op, _)| op)
    }

    /// The op's name as OTP spells it (`"SEND_SENDER"`).
    pub fn name(&self) -> &'static str {
        self.table_op().map_or("ALTACT_SIG_SEND", |(_, name)| name)
    }

    /// `true` if a payload term follows this control message.
    pub fn has_payload(&self) -> bool {
        self.table_has_payload().unwrap_or(true)
    }

    /// The distribution flag a peer must have negotiated to receive this message, with its
    /// name. Monitors by name need `DIST_MONITOR_NAME`.
    pub fn required_flag(&self) -> Option<(&'static str, DistFlags)> {
        match self {
            Control::MonitorP { to: ProcRef::Name(_), .. } | Control::DemonitorP { to: ProcRef::Name(_), .. } => {
                Some(("DIST_MONITOR_NAME", DistFlags::DIST_MONITOR_NAME))
            }
            Control::AltactSigSend { .. } => Some(("ALTACT_SIG", DistFlags::ALTACT_SIG)),
            other => other.table_needs().flatten(),
        }
    }

    /// Fails with [`DistError::NotNegotiated`] unless `negotiated` allows sending this message.
    pub fn check_allowed(&self, negotiated: DistFlags) -> Result<(), DistError> {
        match self.required_flag() {
            Some((flag, bits)) if !negotiated.contains(bits) => Err(DistError::NotNegotiated { op: self.name(), flag }),
            _ => Ok(()),
        }
    }

    /// Appends the encoding of the control tuple without the version byte (the bytes of
    /// `encode_body_to(&self.to_term(), out)`, without building the tuple first).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        self.encode_body_with(out, &NoRefs);
    }

    /// [`Control::encode_body`] with the atoms `refs` has as cache references.
    pub(crate) fn encode_body_with<R: AtomRefs>(&self, out: &mut Vec<u8>, refs: &R) {
        if !self.table_encode(out, refs) {
            encode_body_with(&self.to_term(), out, refs);
        }
    }

    /// Shows the atoms of the control tuple to `f`.
    pub(crate) fn atoms(&self, f: &mut dyn FnMut(&Atom)) {
        if !self.table_atoms(f) {
            atom_cache_out::scan(&self.to_term(), f);
        }
    }

    /// The control tuple.
    pub fn to_term(&self) -> Term {
        if let Some(t) = self.table_to_term() {
            return t;
        }
        match self {
            Control::AltactSigSend { prio, exit, from, to, token } => {
                let mut flags = 0;
                if *prio {
                    flags |= ERTS_DOP_ALTACT_SIG_FLG_PRIO;
                }
                if *exit {
                    flags |= ERTS_DOP_ALTACT_SIG_FLG_EXIT;
                }
                if token.is_some() {
                    flags |= ERTS_DOP_ALTACT_SIG_FLG_TOKEN;
                }
                let to = match to {
                    AltactTarget::Pid(p) => Term::Pid(p.clone()),
                    AltactTarget::Alias(r) => {
                        flags |= ERTS_DOP_ALTACT_SIG_FLG_ALIAS;
                        Term::Ref(r.clone())
                    }
                    AltactTarget::Name(a) => {
                        flags |= ERTS_DOP_ALTACT_SIG_FLG_NAME;
                        Term::Atom(a.clone())
                    }
                };
                let mut elems =
                    vec![Term::Int(op::ALTACT_SIG_SEND.into()), Term::Int(flags.into()), Term::Pid(from.clone()), to];
                elems.extend(token.clone());
                Term::Tuple(elems)
            }
            // every other variant is in the table
            _ => Term::nil(),
        }
    }

    /// Reads a control tuple. Unknown ops, wrong arities and mistyped fields are errors.
    pub fn from_term(term: Term) -> Result<Control, DistError> {
        let Term::Tuple(elems) = term else { return Err(DistError::NotAControlTuple) };
        let op = match elems.first() {
            Some(Term::Int(op)) => *op,
            _ => return Err(DistError::NotAControlTuple),
        };
        let Ok(op8) = u8::try_from(op) else { return Err(DistError::UnknownOp { op }) };
        let elems = match Control::table_from_elems(op8, elems) {
            Ok(result) => return result,
            Err(elems) => elems,
        };
        if op8 == op::ALTACT_SIG_SEND {
            return altact_from_elems(elems);
        }
        Err(DistError::UnknownOp { op })
    }
}

fn altact_from_elems(elems: Vec<Term>) -> Result<Control, DistError> {
    const OP: u8 = op::ALTACT_SIG_SEND;
    let mut it = elems.into_iter().skip(1);
    let (Some(flags), Some(from), Some(to)) = (it.next(), it.next(), it.next()) else {
        return Err(bad(OP, "arity"));
    };
    let token = it.next();
    if it.next().is_some() {
        return Err(bad(OP, "arity"));
    }
    let flags = u32::from_term(flags).ok_or(bad(OP, "flags"))?;
    if flags & !ALTACT_KNOWN_FLAGS != 0 {
        return Err(bad(OP, "flags"));
    }
    if (flags & ERTS_DOP_ALTACT_SIG_FLG_TOKEN != 0) != token.is_some() {
        return Err(bad(OP, "arity"));
    }
    let from = Pid::from_term(from).ok_or(bad(OP, "from"))?;
    let alias = flags & ERTS_DOP_ALTACT_SIG_FLG_ALIAS != 0;
    let name = flags & ERTS_DOP_ALTACT_SIG_FLG_NAME != 0;
    let to = match (to, alias, name) {
        (Term::Pid(p), false, false) => AltactTarget::Pid(p),
        (Term::Ref(r), true, false) => AltactTarget::Alias(r),
        (Term::Atom(a), false, true) => AltactTarget::Name(a),
        _ => return Err(bad(OP, "to")),
    };
    Ok(Control::AltactSigSend {
        prio: flags & ERTS_DOP_ALTACT_SIG_FLG_PRIO != 0,
        exit: flags & ERTS_DOP_ALTACT_SIG_FLG_EXIT != 0,
        from,
        to,
        token,
    })
}

/// Rewrites a message into the form the peer accepts, given the negotiated flags, as BEAM
/// does when it builds one (`dsig_send_*` in `dist.c`):
///
/// - `SEND_SENDER(_TT)` without `SEND_SENDER` becomes `SEND(_TT)` (the sender is dropped);
/// - `PAYLOAD_EXIT`, `PAYLOAD_EXIT2`, `PAYLOAD_MONITOR_P_EXIT` (and `_TT` forms) without
///   `EXIT_PAYLOAD` become `EXIT`, `EXIT2`, `MONITOR_P_EXIT` with the payload moved into the
///   control tuple as the reason;
/// - anything else the flags do not allow (`ALIAS_SEND` without `ALIAS`, `SPAWN_*` without
///   `SPAWN`, `UNLINK_ID*` without `UNLINK_ID`, `ALTACT_SIG_SEND` without `ALTACT_SIG`,
///   monitors without `DIST_MONITOR`) is [`DistError::NotNegotiated`]: there is no equivalent.
///
/// The result always passes [`Control::check_allowed`].
pub fn lower_for_peer(
    control: Control,
    payload: Option<Term>,
    negotiated: DistFlags,
) -> Result<(Control, Option<Term>), DistError> {
    if control.check_allowed(negotiated).is_ok() {
        return Ok((control, payload));
    }
    let op = control.op();
    let reason = |payload: Option<Term>| payload.ok_or(DistError::PayloadMismatch { op, needs_payload: true });
    let lowered = match control {
        Control::SendSender { to, .. } => (Control::Send { to }, payload),
        Control::SendSenderTt { to, token, .. } => (Control::SendTt { to, token }, payload),
        Control::PayloadExit { from, to } => (Control::Exit { from, to, reason: reason(payload)? }, None),
        Control::PayloadExitTt { from, to, token } => {
            (Control::ExitTt { from, to, token, reason: reason(payload)? }, None)
        }
        Control::PayloadExit2 { from, to } => (Control::Exit2 { from, to, reason: reason(payload)? }, None),
        Control::PayloadExit2Tt { from, to, token } => {
            (Control::Exit2Tt { from, to, token, reason: reason(payload)? }, None)
        }
        Control::PayloadMonitorPExit { from, to, reference } => {
            (Control::MonitorPExit { from, to, reference, reason: reason(payload)? }, None)
        }
        other => return other.check_allowed(negotiated).map(|()| (other, payload)),
    };
    lowered.0.check_allowed(negotiated)?;
    Ok(lowered)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pid(id: u32) -> Pid {
        Pid { node: Atom::new("a@vm"), id, serial: 0, creation: 1795494485 }
    }

    pub(crate) fn reference(w: u32) -> Reference {
        Reference::new(Atom::new("a@vm"), 1795494485, &[w, 2, 3]).unwrap()
    }

    /// One of every op, for table-driven tests.
    pub(crate) fn one_of_each() -> Vec<Control> {
        let token = || Term::tuple(vec![Term::Int(0), Term::Int(1)]);
        let mfa = Mfa { module: Atom::new("m"), function: Atom::new("f"), arity: 2 };
        vec![
            Control::Link { from: pid(1), to: pid(2) },
            Control::Send { to: pid(2) },
            Control::Exit { from: pid(1), to: pid(2), reason: Term::atom("bye") },
            Control::Unlink { from: pid(1), to: pid(2) },
            Control::RegSend { from: pid(1), to_name: Atom::new("rex") },
            Control::GroupLeader { from: pid(1), to: pid(2) },
            Control::Exit2 { from: pid(1), to: pid(2), reason: Term::atom("kill") },
            Control::SendTt { to: pid(2), token: token() },
            Control::ExitTt { from: pid(1), to: pid(2), token: token(), reason: Term::atom("x") },
            Control::RegSendTt { from: pid(1), to_name: Atom::new("rex"), token: token() },
            Control::Exit2Tt { from: pid(1), to: pid(2), token: token(), reason: Term::atom("x") },
            Control::MonitorP { from: pid(1), to: ProcRef::Name(Atom::new("victim")), reference: reference(1) },
            Control::DemonitorP { from: pid(1), to: ProcRef::Pid(pid(2)), reference: reference(1) },
            Control::MonitorPExit {
                from: ProcRef::Pid(pid(2)),
                to: pid(1),
                reference: reference(1),
                reason: Term::atom("noproc"),
            },
            Control::SendSender { from: pid(1), to: pid(2) },
            Control::SendSenderTt { from: pid(1), to: pid(2), token: token() },
            Control::PayloadExit { from: pid(1), to: pid(2) },
            Control::PayloadExitTt { from: pid(1), to: pid(2), token: token() },
            Control::PayloadExit2 { from: pid(1), to: pid(2) },
            Control::PayloadExit2Tt { from: pid(1), to: pid(2), token: token() },
            Control::PayloadMonitorPExit {
                from: ProcRef::Name(Atom::new("nosuch")),
                to: pid(1),
                reference: reference(2),
            },
            Control::SpawnRequest {
                req_id: reference(3),
                from: pid(1),
                group_leader: pid(3),
                mfa: mfa.clone(),
                opts: Term::List(vec![Term::atom("link")]),
            },
            Control::SpawnRequestTt {
                req_id: reference(3),
                from: pid(1),
                group_leader: pid(3),
                mfa,
                opts: Term::nil(),
                token: token(),
            },
            Control::SpawnReply {
                req_id: reference(3),
                to: pid(1),
                flags: ERTS_DIST_SPAWN_FLAG_LINK,
                result: SpawnResult::Spawned(pid(9)),
            },
            Control::SpawnReplyTt {
                req_id: reference(3),
                to: pid(1),
                flags: 0,
                result: SpawnResult::Error(Atom::new("badopt")),
                token: token(),
            },
            Control::AliasSend { from: pid(1), alias: reference(4) },
            Control::AliasSendTt { from: pid(1), alias: reference(4), token: token() },
            Control::UnlinkId { id: 1, from: pid(1), to: pid(2) },
            Control::UnlinkIdAck { id: u64::MAX, from: pid(2), to: pid(1) },
            Control::AltactSigSend {
                prio: true,
                exit: false,
                from: pid(1),
                to: AltactTarget::Alias(reference(5)),
                token: None,
            },
            Control::AltactSigSend {
                prio: false,
                exit: true,
                from: pid(1),
                to: AltactTarget::Name(Atom::new("kv")),
                token: Some(token()),
            },
        ]
    }

    #[test]
    fn every_op_round_trips_through_its_tuple() {
        let all = one_of_each();
        let mut ops: Vec<u8> = all.iter().map(Control::op).collect();
        ops.dedup();
        assert_eq!(ops.len(), 30, "one variant per op");
        for c in all {
            let t = c.to_term();
            let elems = t.as_tuple().unwrap();
            assert_eq!(elems[0], Term::Int(c.op().into()), "{c:?}");
            assert_eq!(Control::from_term(t.clone()).unwrap(), c, "{t:?}");
        }
    }

    #[test]
    fn encoding_without_the_tuple_writes_the_same_bytes() {
        for c in one_of_each() {
            let mut direct = Vec::new();
            c.encode_body(&mut direct);
            let mut via_term = Vec::new();
            crate::term::encode_body_to(&c.to_term(), &mut via_term);
            assert_eq!(direct, via_term, "{c:?}");
        }
    }

    #[test]
    fn tuples_as_beam_writes_them() {
        // {2, '', ToPid} and {6, From, '', rex}: the unused slot is the empty atom
        let t = Control::Send { to: pid(2) }.to_term();
        assert_eq!(t, Term::tuple(vec![Term::Int(2), Term::atom(""), Term::Pid(pid(2))]));
        let t = Control::RegSend { from: pid(1), to_name: Atom::new("rex") }.to_term();
        assert_eq!(t, Term::tuple(vec![Term::Int(6), Term::Pid(pid(1)), Term::atom(""), Term::atom("rex")]));
        // ALTACT flags: PRIO|ALIAS = 5; EXIT|NAME|TOKEN = 26
        let all = one_of_each();
        let a =
            all.iter().filter(|c| c.op() == 37).map(|c| c.to_term().as_tuple().unwrap()[1].clone()).collect::<Vec<_>>();
        assert_eq!(a, vec![Term::Int(5), Term::Int(26)]);
    }

    #[test]
    fn names_and_payloads() {
        assert_eq!(op::SEND_SENDER, 22);
        assert_eq!(op::PAYLOAD_MONITOR_P_EXIT, 28);
        assert_eq!(op::ALTACT_SIG_SEND, 37);
        let with_payload: Vec<u8> = one_of_each().iter().filter(|c| c.has_payload()).map(Control::op).collect();
        assert_eq!(with_payload, [2, 6, 12, 16, 22, 23, 24, 25, 26, 27, 28, 29, 30, 33, 34, 37, 37]);
        assert_eq!(Control::SendSender { from: pid(1), to: pid(2) }.name(), "SEND_SENDER");
    }

    #[test]
    fn malformed_controls_are_typed_errors() {
        let cases = [
            (Term::atom("x"), "not a tuple"),
            (Term::tuple(vec![]), "empty"),
            (Term::tuple(vec![Term::atom("link")]), "op not an int"),
        ];
        for (t, why) in cases {
            assert!(matches!(Control::from_term(t), Err(DistError::NotAControlTuple)), "{why}");
        }
        assert!(matches!(
            Control::from_term(Term::tuple(vec![Term::Int(5), Term::Pid(pid(1))])),
            Err(DistError::UnknownOp { op: 5 })
        ));
        assert!(matches!(Control::from_term(Term::tuple(vec![Term::Int(-1)])), Err(DistError::UnknownOp { op: -1 })));
        assert!(matches!(Control::from_term(Term::tuple(vec![Term::Int(1000)])), Err(DistError::UnknownOp { .. })));
        // LINK with three elements after the op
        let t = Term::tuple(vec![Term::Int(1), Term::Pid(pid(1)), Term::Pid(pid(2)), Term::Int(0)]);
        assert!(matches!(Control::from_term(t), Err(DistError::BadControl { op: 1, field: "arity" })));
        // LINK with an atom for ToPid
        let t = Term::tuple(vec![Term::Int(1), Term::Pid(pid(1)), Term::atom("x")]);
        assert!(matches!(Control::from_term(t), Err(DistError::BadControl { op: 1, field: "to" })));
        // UNLINK_ID with a negative id
        let t = Term::tuple(vec![Term::Int(35), Term::Int(-1), Term::Pid(pid(1)), Term::Pid(pid(2))]);
        assert!(matches!(Control::from_term(t), Err(DistError::BadControl { op: 35, field: "id" })));
        // spawn request with arity 256
        let mfa = Term::tuple(vec![Term::atom("m"), Term::atom("f"), Term::Int(256)]);
        let t = Term::tuple(vec![
            Term::Int(29),
            Term::Ref(reference(1)),
            Term::Pid(pid(1)),
            Term::Pid(pid(1)),
            mfa,
            Term::nil(),
        ]);
        assert!(matches!(Control::from_term(t), Err(DistError::BadControl { op: 29, field: "mfa" })));
        // ALTACT: NAME flag with a pid, TOKEN flag without a token, unknown flag bit
        let alt = |flags: i64, to: Term, extra: Option<Term>| {
            let mut v = vec![Term::Int(37), Term::Int(flags), Term::Pid(pid(1)), to];
            v.extend(extra);
            Control::from_term(Term::Tuple(v))
        };
        assert!(matches!(alt(8, Term::Pid(pid(2)), None), Err(DistError::BadControl { op: 37, field: "to" })));
        assert!(matches!(alt(2, Term::Pid(pid(2)), None), Err(DistError::BadControl { op: 37, field: "arity" })));
        assert!(matches!(alt(64, Term::Pid(pid(2)), None), Err(DistError::BadControl { op: 37, field: "flags" })));
        assert!(alt(0, Term::Pid(pid(2)), None).is_ok());
    }

    #[test]
    fn big_unlink_ids() {
        let c = Control::UnlinkId { id: u64::MAX, from: pid(1), to: pid(2) };
        let t = c.to_term();
        assert!(matches!(t.as_tuple().unwrap()[1], Term::BigInt(_)));
        assert_eq!(Control::from_term(t).unwrap(), c);
    }

    #[test]
    fn lowering_follows_the_flags() {
        let none = DistFlags::EMPTY.with(DistFlags::DIST_MONITOR);
        let (c, p) =
            lower_for_peer(Control::SendSender { from: pid(1), to: pid(2) }, Some(Term::Int(1)), none).unwrap();
        assert_eq!(c, Control::Send { to: pid(2) });
        assert_eq!(p, Some(Term::Int(1)));
        let (c, p) =
            lower_for_peer(Control::PayloadExit2 { from: pid(1), to: pid(2) }, Some(Term::atom("kill")), none).unwrap();
        assert_eq!(c, Control::Exit2 { from: pid(1), to: pid(2), reason: Term::atom("kill") });
        assert_eq!(p, None);
        let (c, _) = lower_for_peer(
            Control::PayloadMonitorPExit { from: ProcRef::Pid(pid(2)), to: pid(1), reference: reference(1) },
            Some(Term::atom("noproc")),
            none,
        )
        .unwrap();
        assert!(matches!(c, Control::MonitorPExit { .. }));
        // with the flags, unchanged
        let all = DistFlags(0xd07df7fbd);
        let sender = Control::SendSender { from: pid(1), to: pid(2) };
        assert_eq!(lower_for_peer(sender.clone(), Some(Term::Int(1)), all).unwrap().0, sender);
        // no equivalent
        for c in [
            Control::AliasSend { from: pid(1), alias: reference(1) },
            Control::UnlinkId { id: 1, from: pid(1), to: pid(2) },
        ] {
            assert!(matches!(lower_for_peer(c, None, none), Err(DistError::NotNegotiated { .. })));
        }
        let alt = one_of_each().into_iter().find(|c| c.op() == 37).unwrap();
        assert!(matches!(
            lower_for_peer(alt, Some(Term::Int(1)), all),
            Err(DistError::NotNegotiated { op: "ALTACT_SIG_SEND", flag: "ALTACT_SIG" })
        ));
        // a payload exit without its reason is the caller's mistake
        assert!(matches!(
            lower_for_peer(Control::PayloadExit { from: pid(1), to: pid(2) }, None, none),
            Err(DistError::PayloadMismatch { op: 24, needs_payload: true })
        ));
    }
}
