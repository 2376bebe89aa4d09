//! The EPMD client (tokio driver over [`super::proto`]), as `lib/kernel/src/erl_epmd.erl` uses
//! EPMD: one connection per request, except ALIVE2 whose connection lives as long as the node.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::time::{Instant, timeout_at};

use super::EpmdError;
use super::proto::{Alive2Resp, EPMD_PORT, MAX_NAMES_REPLY_LEN, NamesResp, NodeEntry, Port2Resp, ProtoError, Request};

/// Time allowed to connect to EPMD.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a whole reply after the request is sent (`erl_epmd` waits 10 s).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The EPMD port: `ERL_EPMD_PORT` if set to a valid port, else 4369.
pub fn epmd_port() -> u16 {
    std::env::var("ERL_EPMD_PORT").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(EPMD_PORT)
}

/// A live registration. The TCP connection to EPMD is the registration: dropping this value
/// closes it, and EPMD unregisters the name.
#[derive(Debug)]
pub struct Registration {
    stream: TcpStream,
    creation: u32,
    name: String,
}

impl Registration {
    /// The creation EPMD assigned; it goes into the handshake and into local pids.
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// The registered name (without `@host`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Resolves when EPMD closes the registration connection (EPMD exited), or sends bytes it
    /// never should. The registration is then gone.
    pub async fn closed(&mut self) {
        let mut b = [0u8; 64];
        // Any outcome (EOF, bytes, error) means the registration is no longer trustworthy.
        let _ = self.stream.read(&mut b).await;
    }
}

async fn connect<A: ToSocketAddrs>(epmd: A) -> Result<TcpStream, EpmdError> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let stream = timeout_at(deadline, TcpStream::connect(epmd))
        .await
        .map_err(|_| EpmdError::Timeout { during: "connect" })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Encodes `req` first (so a bad argument fails before any connection), then connects.
async fn connect_with<A: ToSocketAddrs>(epmd: A, req: &Request) -> Result<(TcpStream, Vec<u8>), EpmdError> {
    let mut out = Vec::new();
    req.encode(&mut out).map_err(EpmdError::InvalidArgument)?;
    Ok((connect(epmd).await?, out))
}

async fn send(stream: &mut TcpStream, out: &[u8]) -> Result<(), EpmdError> {
    timeout_at(Instant::now() + REPLY_TIMEOUT, stream.write_all(out))
        .await
        .map_err(|_| EpmdError::Timeout { during: "send" })??;
    Ok(())
}

/// Reads until `decode` yields a value, EPMD closes, or the deadline passes.
async fn read_reply<T>(
    stream: &mut TcpStream,
    during: &'static str,
    decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, ProtoError>,
) -> Result<T, EpmdError> {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some((value, _)) = decode(&buf).map_err(EpmdError::Protocol)? {
            return Ok(value);
        }
        let n = timeout_at(deadline, stream.read(&mut chunk)).await.map_err(|_| EpmdError::Timeout { during })??;
        if n == 0 {
            return Err(EpmdError::Closed);
        }
        // Every reply decoded here is bounded by its decoder's limits (< 3 KiB), so the
        // buffer never outgrows one limit plus one chunk.
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
}

/// Registers `alive` (the name without `@host`) with the EPMD at `epmd` (ALIVE2_REQ: node type
/// 77, or 72 when `hidden`; protocol 0; versions 6 / 5).
///
/// EPMD only accepts registrations from its own host. A refusal (name taken) is
/// [`EpmdError::Refused`].
pub async fn register<A: ToSocketAddrs>(
    epmd: A,
    alive: &str,
    listen_port: u16,
    hidden: bool,
) -> Result<Registration, EpmdError> {
    let req = Request::Alive2(NodeEntry::new(alive, listen_port, hidden));
    let (mut stream, out) = connect_with(epmd, &req).await?;
    send(&mut stream, &out).await?;
    let resp = read_reply(&mut stream, "ALIVE2 reply", Alive2Resp::decode).await?;
    if resp.result() != 0 {
        return Err(EpmdError::Refused { result: resp.result() });
    }
    tracing::debug!(name = alive, creation = resp.creation(), "registered with EPMD");
    Ok(Registration { stream, creation: resp.creation(), name: alive.to_owned() })
}

/// Looks up `alive` (the name without `@host`) at the EPMD `epmd` (a `SocketAddr`, or
/// `(host, port)`). `Ok(None)` if it is not registered.
pub async fn port_please<A: ToSocketAddrs>(epmd: A, alive: &str) -> Result<Option<NodeEntry>, EpmdError> {
    let req = Request::PortPlease2 { name: alive.to_owned() };
    let (mut stream, out) = connect_with(epmd, &req).await?;
    send(&mut stream, &out).await?;
    match read_reply(&mut stream, "PORT2 reply", Port2Resp::decode).await? {
        Port2Resp::Found(entry) => Ok(Some(entry)),
        Port2Resp::NotFound { .. } => Ok(None),
    }
}

/// Lists the names registered at `epmd` with their distribution ports (NAMES_REQ).
pub async fn names<A: ToSocketAddrs>(epmd: A) -> Result<Vec<(String, u16)>, EpmdError> {
    Ok(names_reply(epmd).await?.names)
}

/// Like [`names`], with the port EPMD reports for itself.
pub async fn names_reply<A: ToSocketAddrs>(epmd: A) -> Result<NamesResp, EpmdError> {
    let (mut stream, out) = connect_with(epmd, &Request::Names).await?;
    send(&mut stream, &out).await?;
    // The reply ends when EPMD closes: read it all, bounded.
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| EpmdError::Timeout { during: "NAMES reply" })??;
        if n == 0 {
            break;
        }
        if buf.len() + n > MAX_NAMES_REPLY_LEN {
            return Err(EpmdError::Protocol(ProtoError::NamesReplyTooLong));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
    NamesResp::decode(&buf).map_err(EpmdError::Protocol)
}

/// Asks `epmd` to exit (KILL_REQ). `Ok(true)` if it agreed ("OK"), `Ok(false)` if it refused
/// because nodes are registered ("NO").
pub async fn kill<A: ToSocketAddrs>(epmd: A) -> Result<bool, EpmdError> {
    let (mut stream, out) = connect_with(epmd, &Request::Kill).await?;
    send(&mut stream, &out).await?;
    let resp = read_reply(&mut stream, "KILL reply", super::proto::KillResp::decode).await?;
    Ok(resp == super::proto::KillResp::Ok)
}
