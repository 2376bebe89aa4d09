//! EPMD messages, pure and sans-IO (`erl_dist_protocol`, "EPMD Protocol").
//!
//! Every request travels as `Len:16, Request`; replies are unframed and each has its own shape.
//! All integers are big-endian. Decoders take the bytes received so far and answer `Ok(None)`
//! when more are needed, `Err` when the bytes can never become a valid message, and
//! `Ok(Some((message, consumed)))` otherwise. Limits follow `erts/epmd/src/epmd_int.h`.
//!
//! ```text
//! ALIVE2_REQ     120 PortNo:16 NodeType:8 Protocol:8 High:16 Low:16 NLen:16 Name ELen:16 Extra
//! ALIVE2_X_RESP  118 Result:8 Creation:32        (registrant's High >= 6)
//! ALIVE2_RESP    121 Result:8 Creation:16        (older registrants)
//! PORT_PLEASE2_REQ 122 Name
//! PORT2_RESP     119 0 PortNo:16 NodeType:8 Protocol:8 High:16 Low:16 NLen:16 Name ELen:16 Extra
//!                119 Result>0
//! NAMES_REQ      110          reply: EpmdPort:32 then "name NAME at port PORT\n"*, then close
//! KILL_REQ       107          reply: "OK" or "NO"
//! ```

use std::fmt;

/// The well-known EPMD port, used when `ERL_EPMD_PORT` is unset.
pub const EPMD_PORT: u16 = 4369;

/// Register a node (`'x'`).
pub const ALIVE2_REQ: u8 = 120;
/// Registration reply with a 32-bit creation (`'v'`), sent when the registrant's High >= 6.
pub const ALIVE2_X_RESP: u8 = 118;
/// Registration reply with a 16-bit creation (`'y'`), sent to older registrants.
pub const ALIVE2_RESP: u8 = 121;
/// Look up a node's distribution port (`'z'`; `EPMD_PORT2_REQ` in `epmd.h`).
pub const PORT_PLEASE2_REQ: u8 = 122;
/// Reply to [`PORT_PLEASE2_REQ`] (`'w'`).
pub const PORT2_RESP: u8 = 119;
/// List the registered names (`'n'`).
pub const NAMES_REQ: u8 = 110;
/// Ask EPMD to exit (`'k'`); refused with `"NO"` while nodes are registered.
pub const KILL_REQ: u8 = 107;

/// `NodeType` of a normal Erlang node (`'M'`).
pub const NODE_TYPE_NORMAL: u8 = 77;
/// `NodeType` of a hidden node (`'H'`).
pub const NODE_TYPE_HIDDEN: u8 = 72;
/// `Protocol` 0: TCP/IPv4.
pub const PROTOCOL_TCP_IPV4: u8 = 0;
/// Highest distribution version we register (OTP 23+).
pub const DIST_VSN_HIGH: u16 = 6;
/// Lowest distribution version we register.
pub const DIST_VSN_LOW: u16 = 5;

/// Largest node name in bytes: 255 characters, UTF-8 (`MAXSYMLEN` in `epmd_int.h`).
pub const MAX_NAME_LEN: usize = 255 * 4;
/// Largest node name in characters: an atom's limit.
pub const MAX_NAME_CHARS: usize = 255;
/// Largest `Extra` field in bytes (`MAXSYMLEN` in `epmd_int.h`).
pub const MAX_EXTRA_LEN: usize = 255 * 4;
/// Largest request body (the `Len:16` value). epmd reads into `INBUF_SIZE = 3*MAXSYMLEN` bytes
/// and rejects a packet whose `Len + 2` does not fit strictly inside.
pub const MAX_REQUEST_LEN: usize = 3 * MAX_NAME_LEN - 3;
/// Largest NAMES reply we accept: the 4-byte port and every line, up to the close.
pub const MAX_NAMES_REPLY_LEN: usize = 1 << 20;

/// Result code epmd sends in a refused ALIVE2 reply (with creation 99).
pub const ALIVE2_RESULT_REFUSED: u8 = 1;
/// The creation epmd puts in a refused ALIVE2 reply.
pub const ALIVE2_REFUSED_CREATION: u32 = 99;

/// Why bytes could not be decoded, or a value could not be encoded.
///
/// Decoding errors mean the peer misbehaved; [`ProtoError::InvalidName`] and
/// [`ProtoError::ExtraTooLong`] from an encoder mean the caller passed a bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// A request framed with `Len = 0`.
    EmptyRequest,
    /// A request framed with `Len` above [`MAX_REQUEST_LEN`].
    RequestTooLong {
        /// The announced length.
        len: usize,
    },
    /// A request whose first byte is no request we handle.
    UnknownRequest {
        /// The op code.
        tag: u8,
    },
    /// A reply whose first byte is not the one expected.
    UnexpectedReply {
        /// The op code expected.
        expected: &'static str,
        /// The byte received.
        tag: u8,
    },
    /// Inner lengths disagree with the frame (fields overrun it, or bytes are left over).
    LengthMismatch {
        /// Which message.
        what: &'static str,
    },
    /// A node name that is empty, too long, not UTF-8, or contains NUL.
    InvalidName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An `Extra` field above [`MAX_EXTRA_LEN`].
    ExtraTooLong {
        /// Its length.
        len: usize,
    },
    /// A NAMES reply above [`MAX_NAMES_REPLY_LEN`].
    NamesReplyTooLong,
    /// A NAMES reply shorter than its 4-byte port, or ending inside a line.
    NamesReplyTruncated,
    /// A NAMES reply line not of the form `name NAME at port PORT`.
    BadNamesLine {
        /// The line's position, from 0.
        line: usize,
    },
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyRequest => write!(f, "empty EPMD request"),
            Self::RequestTooLong { len } => {
                write!(f, "EPMD request of {len} bytes exceeds {MAX_REQUEST_LEN}")
            }
            Self::UnknownRequest { tag } => write!(f, "unknown EPMD request {tag}"),
            Self::UnexpectedReply { expected, tag } => {
                write!(f, "expected {expected} from EPMD, got op {tag}")
            }
            Self::LengthMismatch { what } => write!(f, "{what}: inner lengths disagree with frame"),
            Self::InvalidName { reason } => write!(f, "invalid node name: {reason}"),
            Self::ExtraTooLong { len } => write!(f, "Extra of {len} bytes exceeds {MAX_EXTRA_LEN}"),
            Self::NamesReplyTooLong => write!(f, "NAMES reply exceeds {MAX_NAMES_REPLY_LEN} bytes"),
            Self::NamesReplyTruncated => write!(f, "NAMES reply truncated"),
            Self::BadNamesLine { line } => write!(f, "malformed NAMES reply line {line}"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// Checks a node name (the part before `@`) as epmd does: 1..=255 UTF-8 characters in at most
/// [`MAX_NAME_LEN`] bytes, no NUL.
pub fn validate_name(bytes: &[u8]) -> Result<&str, ProtoError> {
    if bytes.is_empty() {
        return Err(ProtoError::InvalidName { reason: "empty" });
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err(ProtoError::InvalidName { reason: "too long" });
    }
    if bytes.contains(&0) {
        return Err(ProtoError::InvalidName { reason: "contains NUL" });
    }
    let s = std::str::from_utf8(bytes).map_err(|_| ProtoError::InvalidName { reason: "not UTF-8" })?;
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(ProtoError::InvalidName { reason: "more than 255 characters" });
    }
    Ok(s)
}

/// What a node registers and what PORT2_RESP returns: the fields of ALIVE2_REQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node's distribution listen port.
    pub port: u16,
    /// [`NODE_TYPE_NORMAL`] or [`NODE_TYPE_HIDDEN`] (any byte is carried through).
    pub node_type: u8,
    /// [`PROTOCOL_TCP_IPV4`].
    pub protocol: u8,
    /// Highest distribution version supported.
    pub highest_version: u16,
    /// Lowest distribution version supported.
    pub lowest_version: u16,
    /// The node name without `@host`.
    pub name: String,
    /// Opaque extra data, usually empty.
    pub extra: Vec<u8>,
}

impl NodeEntry {
    /// An entry as erlnode registers it: protocol 0, versions 6 / 5, no extra.
    pub fn new(name: &str, port: u16, hidden: bool) -> Self {
        NodeEntry {
            port,
            node_type: if hidden { NODE_TYPE_HIDDEN } else { NODE_TYPE_NORMAL },
            protocol: PROTOCOL_TCP_IPV4,
            highest_version: DIST_VSN_HIGH,
            lowest_version: DIST_VSN_LOW,
            name: name.to_owned(),
            extra: Vec::new(),
        }
    }

    fn check(&self) -> Result<(), ProtoError> {
        validate_name(self.name.as_bytes())?;
        if self.extra.len() > MAX_EXTRA_LEN {
            return Err(ProtoError::ExtraTooLong { len: self.extra.len() });
        }
        Ok(())
    }

    /// `PortNo NodeType Protocol High Low NLen Name ELen Extra`, shared by ALIVE2_REQ and
    /// PORT2_RESP.
    fn encode_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.port.to_be_bytes());
        out.push(self.node_type);
        out.push(self.protocol);
        out.extend_from_slice(&self.highest_version.to_be_bytes());
        out.extend_from_slice(&self.lowest_version.to_be_bytes());
        // Lengths fit: check() bounds both by 1020.
        out.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&(self.extra.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.extra);
    }

    fn fields_len(&self) -> usize {
        2 + 1 + 1 + 2 + 2 + 2 + self.name.len() + 2 + self.extra.len()
    }

    /// Parses the fields from `r`; `Ok(None)` when `r` ends first.
    fn decode_fields(r: &mut Reader<'_>) -> Result<Option<Self>, ProtoError> {
        let Some(head) = r.take(10) else {
            return Ok(None);
        };
        let mut h = Reader::new(head);
        let (Some(port), Some(node_type), Some(protocol), Some(high), Some(low), Some(nlen)) =
            (h.u16(), h.u8(), h.u8(), h.u16(), h.u16(), h.u16())
        else {
            return Ok(None);
        };
        let nlen = usize::from(nlen);
        if nlen > MAX_NAME_LEN {
            return Err(ProtoError::InvalidName { reason: "too long" });
        }
        let Some(name) = r.take(nlen) else {
            return Ok(None);
        };
        let Some(elen) = r.u16() else { return Ok(None) };
        let elen = usize::from(elen);
        if elen > MAX_EXTRA_LEN {
            return Err(ProtoError::ExtraTooLong { len: elen });
        }
        let Some(extra) = r.take(elen) else {
            return Ok(None);
        };
        Ok(Some(NodeEntry {
            port,
            node_type,
            protocol,
            highest_version: high,
            lowest_version: low,
            name: validate_name(name)?.to_owned(),
            extra: extra.to_vec(),
        }))
    }
}

/// A request to EPMD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// ALIVE2_REQ: register a node; the connection then stays open for the node's life.
    Alive2(NodeEntry),
    /// PORT_PLEASE2_REQ: look up a node by name (without `@host`).
    PortPlease2 {
        /// The node name.
        name: String,
    },
    /// NAMES_REQ: list registered names.
    Names,
    /// KILL_REQ: ask EPMD to exit.
    Kill,
}

impl Request {
    /// Appends the framed request (`Len:16` included). Fails only on an invalid name or extra.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        match self {
            Request::Alive2(entry) => {
                entry.check()?;
                out.extend_from_slice(&((1 + entry.fields_len()) as u16).to_be_bytes());
                out.push(ALIVE2_REQ);
                entry.encode_fields(out);
            }
            Request::PortPlease2 { name } => {
                validate_name(name.as_bytes())?;
                out.extend_from_slice(&((1 + name.len()) as u16).to_be_bytes());
                out.push(PORT_PLEASE2_REQ);
                out.extend_from_slice(name.as_bytes());
            }
            Request::Names => out.extend_from_slice(&[0, 1, NAMES_REQ]),
            Request::Kill => out.extend_from_slice(&[0, 1, KILL_REQ]),
        }
        Ok(())
    }

    /// Decodes one framed request from the start of `buf`.
    ///
    /// Returns the request and the bytes it used, `Ok(None)` if `buf` holds only part of it.
    /// A frame longer than [`MAX_REQUEST_LEN`] is rejected as soon as its length is seen.
    pub fn decode(buf: &[u8]) -> Result<Option<(Request, usize)>, ProtoError> {
        let mut r = Reader::new(buf);
        let Some(len) = r.u16() else { return Ok(None) };
        let len = usize::from(len);
        if len == 0 {
            return Err(ProtoError::EmptyRequest);
        }
        if len > MAX_REQUEST_LEN {
            return Err(ProtoError::RequestTooLong { len });
        }
        let Some(body) = r.take(len) else {
            return Ok(None);
        };
        Ok(Some((Self::decode_body(body)?, 2 + len)))
    }

    /// Decodes a request body (the bytes after `Len:16`), which must be complete.
    pub fn decode_body(body: &[u8]) -> Result<Request, ProtoError> {
        let mut r = Reader::new(body);
        let tag = r.u8().ok_or(ProtoError::EmptyRequest)?;
        let req = match tag {
            ALIVE2_REQ => {
                let mismatch = ProtoError::LengthMismatch { what: "ALIVE2_REQ" };
                let entry = NodeEntry::decode_fields(&mut r)?.ok_or(mismatch.clone())?;
                if !r.rest().is_empty() {
                    return Err(mismatch);
                }
                Request::Alive2(entry)
            }
            PORT_PLEASE2_REQ => {
                let mut name = r.rest();
                // epmd drops one trailing NUL (old clients sent C strings).
                if let [head @ .., 0] = name {
                    name = head;
                }
                Request::PortPlease2 { name: validate_name(name)?.to_owned() }
            }
            NAMES_REQ | KILL_REQ => {
                if !r.rest().is_empty() {
                    return Err(ProtoError::LengthMismatch {
                        what: if tag == NAMES_REQ { "NAMES_REQ" } else { "KILL_REQ" },
                    });
                }
                if tag == NAMES_REQ { Request::Names } else { Request::Kill }
            }
            tag => return Err(ProtoError::UnknownRequest { tag }),
        };
        Ok(req)
    }
}

/// The reply to ALIVE2_REQ. `result` 0 is success; anything else is a refusal (epmd gives no
/// reason; the usual one is a name already registered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alive2Resp {
    /// ALIVE2_X_RESP: 32-bit creation.
    X {
        /// 0 on success.
        result: u8,
        /// The node's creation.
        creation: u32,
    },
    /// ALIVE2_RESP: 16-bit creation (registrants with High < 6).
    Legacy {
        /// 0 on success.
        result: u8,
        /// The node's creation.
        creation: u16,
    },
}

impl Alive2Resp {
    /// The result byte; 0 is success.
    pub fn result(&self) -> u8 {
        match *self {
            Alive2Resp::X { result, .. } | Alive2Resp::Legacy { result, .. } => result,
        }
    }

    /// The creation, widened to 32 bits.
    pub fn creation(&self) -> u32 {
        match *self {
            Alive2Resp::X { creation, .. } => creation,
            Alive2Resp::Legacy { creation, .. } => u32::from(creation),
        }
    }

    /// Appends the reply.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Alive2Resp::X { result, creation } => {
                out.extend_from_slice(&[ALIVE2_X_RESP, result]);
                out.extend_from_slice(&creation.to_be_bytes());
            }
            Alive2Resp::Legacy { result, creation } => {
                out.extend_from_slice(&[ALIVE2_RESP, result]);
                out.extend_from_slice(&creation.to_be_bytes());
            }
        }
    }

    /// Decodes the reply from the start of `buf`; `Ok(None)` if incomplete.
    pub fn decode(buf: &[u8]) -> Result<Option<(Alive2Resp, usize)>, ProtoError> {
        let mut r = Reader::new(buf);
        let Some(tag) = r.u8() else { return Ok(None) };
        let resp = match tag {
            ALIVE2_X_RESP => {
                let (Some(result), Some(creation)) = (r.u8(), r.u32()) else {
                    return Ok(None);
                };
                Alive2Resp::X { result, creation }
            }
            ALIVE2_RESP => {
                let (Some(result), Some(creation)) = (r.u8(), r.u16()) else {
                    return Ok(None);
                };
                Alive2Resp::Legacy { result, creation }
            }
            tag => {
                return Err(ProtoError::UnexpectedReply { expected: "ALIVE2_X_RESP", tag });
            }
        };
        Ok(Some((resp, r.pos)))
    }
}

/// The reply to PORT_PLEASE2_REQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port2Resp {
    /// The node is registered.
    Found(NodeEntry),
    /// No such node; `result` is non-zero.
    NotFound {
        /// The non-zero result byte.
        result: u8,
    },
}

impl Port2Resp {
    /// Appends the reply. Fails only on an entry with an invalid name or extra.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        match self {
            Port2Resp::Found(entry) => {
                entry.check()?;
                out.extend_from_slice(&[PORT2_RESP, 0]);
                entry.encode_fields(out);
            }
            // A zero result would read back as Found.
            Port2Resp::NotFound { result } => out.extend_from_slice(&[PORT2_RESP, (*result).max(1)]),
        }
        Ok(())
    }

    /// Decodes the reply from the start of `buf`; `Ok(None)` if incomplete.
    pub fn decode(buf: &[u8]) -> Result<Option<(Port2Resp, usize)>, ProtoError> {
        let mut r = Reader::new(buf);
        let Some(tag) = r.u8() else { return Ok(None) };
        if tag != PORT2_RESP {
            return Err(ProtoError::UnexpectedReply { expected: "PORT2_RESP", tag });
        }
        let Some(result) = r.u8() else {
            return Ok(None);
        };
        if result != 0 {
            return Ok(Some((Port2Resp::NotFound { result }, r.pos)));
        }
        let Some(entry) = NodeEntry::decode_fields(&mut r)? else {
            return Ok(None);
        };
        Ok(Some((Port2Resp::Found(entry), r.pos)))
    }
}

/// The reply to NAMES_REQ: EPMD's own port, then one text line per registered node. Its end
/// is the connection closing, so it is decoded whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesResp {
    /// The port EPMD listens on (`erl_epmd` checks it against its own idea of the port).
    pub epmd_port: u32,
    /// `(name, port)` in the order EPMD sent them.
    pub names: Vec<(String, u16)>,
}

impl NamesResp {
    /// Appends the whole reply in epmd's exact format: `EpmdPort:32` then
    /// `"name NAME at port PORT\n"` per node (parsed by `erl_epmd` and `epmd -names`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epmd_port.to_be_bytes());
        for (name, port) in &self.names {
            encode_names_line(name, *port, out);
        }
    }

    /// Decodes a complete reply (every byte up to the close).
    pub fn decode(buf: &[u8]) -> Result<NamesResp, ProtoError> {
        if buf.len() > MAX_NAMES_REPLY_LEN {
            return Err(ProtoError::NamesReplyTooLong);
        }
        let mut r = Reader::new(buf);
        let epmd_port = r.u32().ok_or(ProtoError::NamesReplyTruncated)?;
        let text = r.rest();
        let mut names = Vec::new();
        let mut lines = text.split(|&b| b == b'\n').enumerate().peekable();
        while let Some((i, line)) = lines.next() {
            if lines.peek().is_none() {
                // After the last '\n': must be empty, else the reply stopped mid-line.
                if !line.is_empty() {
                    return Err(ProtoError::NamesReplyTruncated);
                }
                break;
            }
            names.push(parse_names_line(line).ok_or(ProtoError::BadNamesLine { line: i })?);
        }
        Ok(NamesResp { epmd_port, names })
    }
}

/// Appends one NAMES line, `"name NAME at port PORT\n"`.
pub fn encode_names_line(name: &str, port: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(b"name ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b" at port ");
    out.extend_from_slice(port.to_string().as_bytes());
    out.push(b'\n');
}

fn parse_names_line(line: &[u8]) -> Option<(String, u16)> {
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix("name ")?;
    // Like erl_epmd: the name runs to the first space.
    let (name, rest) = rest.split_once(' ')?;
    let port = rest.strip_prefix("at port ")?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = port.parse().ok()?;
    validate_name(name.as_bytes()).ok()?;
    Some((name.to_owned(), port))
}

/// The reply to KILL_REQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillResp {
    /// `"OK"`: EPMD exits.
    Ok,
    /// `"NO"`: refused because nodes are registered.
    No,
}

impl KillResp {
    /// The two reply bytes.
    pub fn as_bytes(&self) -> &'static [u8; 2] {
        match self {
            KillResp::Ok => b"OK",
            KillResp::No => b"NO",
        }
    }

    /// Decodes the reply; `Ok(None)` if incomplete.
    pub fn decode(buf: &[u8]) -> Result<Option<(KillResp, usize)>, ProtoError> {
        match buf {
            [] | [b'O' | b'N'] => Ok(None),
            [b'O', b'K', ..] => Ok(Some((KillResp::Ok, 2))),
            [b'N', b'O', ..] => Ok(Some((KillResp::No, 2))),
            [tag, ..] => Err(ProtoError::UnexpectedReply { expected: "OK or NO", tag: *tag }),
        }
    }
}

/// A cursor over peer bytes: every read is checked, none panics.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).and_then(|b| b.try_into().ok()).map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes)
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(req: &Request) -> Vec<u8> {
        let mut v = Vec::new();
        req.encode(&mut v).unwrap();
        v
    }

    /// What OTP 25's erl_epmd sends for `-sname foo` on port 40000 (from its source:
    /// `[?int16(Len), ?EPMD_ALIVE2_REQ, ?int16(Port), $M, 0, ?int16(6), ?int16(5), ...]`).
    #[test]
    fn alive2_req_bytes() {
        let req = Request::Alive2(NodeEntry::new("foo", 40000, false));
        let bytes = enc(&req);
        let expected = [0, 16, 120, 0x9c, 0x40, 77, 0, 0, 6, 0, 5, 0, 3, b'f', b'o', b'o', 0, 0];
        assert_eq!(bytes, expected);
        assert_eq!(Request::decode(&bytes).unwrap(), Some((req, bytes.len())));
        let hidden = enc(&Request::Alive2(NodeEntry::new("foo", 40000, true)));
        assert_eq!(hidden[5], NODE_TYPE_HIDDEN);
    }

    #[test]
    fn simple_requests() {
        assert_eq!(enc(&Request::Names), [0, 1, 110]);
        assert_eq!(enc(&Request::Kill), [0, 1, 107]);
        let pp = enc(&Request::PortPlease2 { name: "abc".into() });
        assert_eq!(pp, [0, 4, 122, b'a', b'b', b'c']);
        // A trailing NUL (C clients) is dropped, as epmd does.
        let nul = [0, 5, 122, b'a', b'b', b'c', 0];
        assert_eq!(Request::decode(&nul).unwrap(), Some((Request::PortPlease2 { name: "abc".into() }, 7)));
    }

    #[test]
    fn truncated_requests_need_more() {
        let bytes = enc(&Request::Alive2(NodeEntry::new("node", 1, false)));
        for n in 0..bytes.len() {
            assert_eq!(Request::decode(&bytes[..n]).unwrap(), None, "prefix {n}");
        }
    }

    #[test]
    fn malformed_requests() {
        assert_eq!(Request::decode(&[0, 0]), Err(ProtoError::EmptyRequest));
        assert_eq!(Request::decode(&[0xff, 0xff]), Err(ProtoError::RequestTooLong { len: 0xffff }));
        assert_eq!(Request::decode(&[0, 1, 99]), Err(ProtoError::UnknownRequest { tag: 99 }));
        assert!(matches!(Request::decode(&[0, 2, 110, 0]), Err(ProtoError::LengthMismatch { .. })));
        // PORT_PLEASE2 with an empty name, or a NUL inside it.
        assert!(matches!(Request::decode(&[0, 1, 122]), Err(ProtoError::InvalidName { .. })));
        assert!(matches!(Request::decode(&[0, 4, 122, b'a', 0, b'b']), Err(ProtoError::InvalidName { .. })));
        // ALIVE2 whose NLen overruns the frame.
        let mut b = enc(&Request::Alive2(NodeEntry::new("node", 1, false)));
        b[12] = 200;
        assert!(matches!(Request::decode(&b), Err(ProtoError::LengthMismatch { .. })));
        // ALIVE2 with bytes after Extra.
        let mut b = enc(&Request::Alive2(NodeEntry::new("node", 1, false)));
        b[1] += 1;
        b.push(0);
        assert!(matches!(Request::decode(&b), Err(ProtoError::LengthMismatch { .. })));
        // Invalid UTF-8 name.
        let mut b = enc(&Request::Alive2(NodeEntry::new("node", 1, false)));
        b[13] = 0xff;
        assert!(matches!(Request::decode(&b), Err(ProtoError::InvalidName { .. })));
    }

    #[test]
    fn encode_rejects_bad_values() {
        let long = "a".repeat(256);
        let mut out = Vec::new();
        assert!(Request::PortPlease2 { name: long.clone() }.encode(&mut out).is_err());
        assert!(Request::Alive2(NodeEntry::new(&long, 1, false)).encode(&mut out).is_err());
        assert!(Request::Alive2(NodeEntry::new("", 1, false)).encode(&mut out).is_err());
        let mut e = NodeEntry::new("a", 1, false);
        e.extra = vec![0; MAX_EXTRA_LEN + 1];
        assert_eq!(Request::Alive2(e).encode(&mut out), Err(ProtoError::ExtraTooLong { len: 1021 }));
        assert!(out.is_empty());
        // 255 four-byte characters are fine.
        let wide = "\u{1F600}".repeat(255);
        assert!(Request::PortPlease2 { name: wide }.encode(&mut out).is_ok());
    }

    #[test]
    fn alive2_resp() {
        let x = [118, 0, 0x6b, 0x05, 0x4d, 0xc8];
        assert_eq!(Alive2Resp::decode(&x).unwrap(), Some((Alive2Resp::X { result: 0, creation: 1795509704 }, 6)));
        let old = [121, 1, 0, 99];
        let (r, n) = Alive2Resp::decode(&old).unwrap().unwrap();
        assert_eq!((r.result(), r.creation(), n), (1, 99, 4));
        for n in 0..6 {
            assert_eq!(Alive2Resp::decode(&x[..n]).unwrap(), None);
        }
        assert!(matches!(Alive2Resp::decode(b"N"), Err(ProtoError::UnexpectedReply { .. })));
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(out, old);
    }

    #[test]
    fn port2_resp() {
        let entry = NodeEntry::new("n1", 45678, false);
        let mut out = Vec::new();
        Port2Resp::Found(entry.clone()).encode(&mut out).unwrap();
        assert_eq!(&out[..2], [119, 0]);
        assert_eq!(Port2Resp::decode(&out).unwrap(), Some((Port2Resp::Found(entry), out.len())));
        for n in 0..out.len() {
            assert_eq!(Port2Resp::decode(&out[..n]).unwrap(), None);
        }
        assert_eq!(Port2Resp::decode(&[119, 1]).unwrap(), Some((Port2Resp::NotFound { result: 1 }, 2)));
        // NLen beyond the limit is an error at once, not a wait for 64 KiB.
        assert!(matches!(
            Port2Resp::decode(&[119, 0, 0, 1, 77, 0, 0, 6, 0, 5, 0xff, 0xff]),
            Err(ProtoError::InvalidName { .. })
        ));
    }

    #[test]
    fn names_resp() {
        let mut bytes = vec![0, 0, 0x11, 0x11];
        bytes.extend_from_slice(b"name a at port 1\nname bb at port 65535\n");
        let r = NamesResp::decode(&bytes).unwrap();
        assert_eq!(r.epmd_port, 4369);
        assert_eq!(r.names, [("a".to_string(), 1), ("bb".to_string(), 65535)]);
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(NamesResp::decode(&[0, 0, 0x11, 0x11]).unwrap().names, []);
        assert_eq!(NamesResp::decode(&[0, 0, 0x11]), Err(ProtoError::NamesReplyTruncated));
        let mut partial = vec![0, 0, 0x11, 0x11];
        partial.extend_from_slice(b"name a at port 1\nname b at");
        assert_eq!(NamesResp::decode(&partial), Err(ProtoError::NamesReplyTruncated));
        for bad in ["nome a at port 1\n", "name a at port x\n", "name a at port 70000\n", "name  at port 1\n"] {
            let mut b = vec![0, 0, 0x11, 0x11];
            b.extend_from_slice(bad.as_bytes());
            assert_eq!(NamesResp::decode(&b), Err(ProtoError::BadNamesLine { line: 0 }), "{bad}");
        }
    }

    #[test]
    fn kill_resp() {
        assert_eq!(KillResp::decode(b"O").unwrap(), None);
        assert_eq!(KillResp::decode(b"OK").unwrap(), Some((KillResp::Ok, 2)));
        assert_eq!(KillResp::decode(b"NO").unwrap(), Some((KillResp::No, 2)));
        assert!(KillResp::decode(b"XY").is_err());
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_\\-\u{e9}\u{4e2d}]{1,40}"
    }

    fn entry_strategy() -> impl Strategy<Value = NodeEntry> {
        (
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            name_strategy(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(port, node_type, protocol, highest_version, lowest_version, name, extra)| NodeEntry {
                port,
                node_type,
                protocol,
                highest_version,
                lowest_version,
                name,
                extra,
            })
    }

    proptest! {
        #[test]
        fn request_round_trip(entry in entry_strategy(), which in 0u8..4) {
            let req = match which {
                0 => Request::Alive2(entry),
                1 => Request::PortPlease2 { name: entry.name },
                2 => Request::Names,
                _ => Request::Kill,
            };
            let bytes = enc(&req);
            prop_assert_eq!(Request::decode(&bytes).unwrap(), Some((req, bytes.len())));
            for n in 0..bytes.len() {
                prop_assert_eq!(Request::decode(&bytes[..n]).unwrap(), None);
            }
        }

        #[test]
        fn port2_round_trip(entry in entry_strategy()) {
            let mut out = Vec::new();
            Port2Resp::Found(entry.clone()).encode(&mut out).unwrap();
            prop_assert_eq!(Port2Resp::decode(&out).unwrap(), Some((Port2Resp::Found(entry), out.len())));
        }

        #[test]
        fn names_round_trip(names in proptest::collection::vec((name_strategy(), any::<u16>()), 0..20), port in any::<u32>()) {
            let r = NamesResp { epmd_port: port, names };
            let mut out = Vec::new();
            r.encode(&mut out);
            prop_assert_eq!(NamesResp::decode(&out).unwrap(), r);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::decode(&bytes);
            let _ = Alive2Resp::decode(&bytes);
            let _ = Port2Resp::decode(&bytes);
            let _ = NamesResp::decode(&bytes);
            let _ = KillResp::decode(&bytes);
            // Anything accepted re-encodes to the bytes it used.
            if let Ok(Some((req, n))) = Request::decode(&bytes) {
                // (A PORT_PLEASE2 name's trailing NUL is dropped on decode.)
                if !(matches!(&req, Request::PortPlease2 { .. }) && bytes.get(n - 1) == Some(&0)) {
                    prop_assert_eq!(enc(&req), &bytes[..n]);
                }
            }
        }
    }
}
