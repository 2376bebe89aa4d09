//! An embedded EPMD (`erl_dist_protocol`, "EPMD Protocol"; behaviour from
//! `erts/epmd/src/epmd_srv.c`): a pure [`Registry`] state machine and a tokio driver,
//! [`EmbeddedEpmd`], that real `erl` nodes can register with and query.
//!
//! As epmd does:
//! - one request per connection; the connection closes after the reply, except after a
//!   successful ALIVE2, when it *is* the registration: its close (or any further byte)
//!   unregisters the name;
//! - ALIVE2 and KILL are accepted only from the local host; a live name cannot be registered
//!   twice (reply result 1, creation 99);
//! - a registrant with High >= 6 gets ALIVE2_X_RESP with a 32-bit creation that starts at a
//!   random value and increases on each re-registration of the same name (never below 4);
//!   older ones get ALIVE2_RESP with a creation in 1..=3;
//! - the NAMES reply is the exact `"name NAME at port PORT\n"` text `erl_epmd` and
//!   `epmd -names` parse.
//!
//! Against hostile peers: requests are bounded by [`super::proto::MAX_REQUEST_LEN`],
//! connections by [`ServerConfig::max_connections`], registrations by
//! [`ServerConfig::max_names`]; an unregistered connection idle for
//! [`ServerConfig::idle_timeout`] is closed; a malformed request closes that connection only.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::Instrument;

use super::EpmdError;
use super::proto::{
    ALIVE2_REFUSED_CREATION, ALIVE2_RESULT_REFUSED, Alive2Resp, KillResp, NamesResp, NodeEntry, Port2Resp, Request,
};

/// Default limit on simultaneous connections (registrations included).
pub const MAX_CONNECTIONS: usize = 1024;
/// Default limit on registered names.
pub const MAX_NAMES: usize = 512;
/// Default time an unregistered connection may stay silent (epmd allows 60 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Names whose creation is remembered after they unregister (`MAX_UNREG_COUNT` in epmd).
pub const MAX_RETIRED_NAMES: usize = 1000;
// A full NAMES reply at the default name limit fits what our client accepts:
// "name " NAME " at port " PORT "\n" per node, after the 4-byte port.
const _: () =
    assert!(4 + MAX_NAMES * (5 + super::proto::MAX_NAME_LEN + 9 + 5 + 1) <= super::proto::MAX_NAMES_REPLY_LEN);

/// How long [`ensure_epmd`] waits for an existing EPMD to answer NAMES.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Identifies a connection to the [`Registry`]; the driver picks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// What the driver must do after a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send `reply`, then do `then`.
    Reply {
        /// The reply bytes.
        reply: Vec<u8>,
        /// What follows the reply.
        then: Then,
    },
    /// Close the connection without a reply (epmd's answer to a non-local ALIVE2 or KILL).
    Close,
}

/// What follows a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Close the connection.
    Close,
    /// Keep the connection: it is now a registration. Call [`Registry::connection_closed`]
    /// when it closes or sends anything more.
    KeepRegistration,
    /// Close the connection and stop the server (an accepted KILL).
    StopServer,
}

struct Live {
    conn: ConnId,
    entry: NodeEntry,
    /// epmd's `cr_counter`.
    counter: u32,
}

/// The registry of an EPMD, pure: requests in, [`Outcome`]s out; randomness passed in.
pub struct Registry {
    epmd_port: u16,
    max_names: usize,
    live: Vec<Live>,
    /// Unregistered names and their last counter, oldest first, bounded by
    /// [`MAX_RETIRED_NAMES`].
    retired: VecDeque<(String, u32)>,
}

impl Registry {
    /// An empty registry for an EPMD listening on `epmd_port` (reported in NAMES replies).
    pub fn new(epmd_port: u16, max_names: usize) -> Self {
        Registry { epmd_port, max_names, live: Vec::new(), retired: VecDeque::new() }
    }

    /// Handles one request on connection `conn`. `local_peer` says whether the peer is on this
    /// host; `fresh` is a random value, used as the first creation counter of a new name.
    pub fn handle(&mut self, conn: ConnId, local_peer: bool, req: Request, fresh: u32) -> Outcome {
        match req {
            Request::Alive2(entry) => {
                if !local_peer {
                    tracing::warn!(name = %entry.name, "ALIVE2_REQ from a non-local address");
                    return Outcome::Close;
                }
                let high = entry.highest_version;
                let (result, creation) = match self.register(conn, entry, fresh) {
                    Some(creation) => (0, creation),
                    None => (ALIVE2_RESULT_REFUSED, ALIVE2_REFUSED_CREATION),
                };
                let resp = if high >= 6 {
                    Alive2Resp::X { result, creation }
                } else {
                    // 1..=3 (or 99) fits.
                    Alive2Resp::Legacy { result, creation: creation as u16 }
                };
                let mut reply = Vec::new();
                resp.encode(&mut reply);
                let then = if result == 0 { Then::KeepRegistration } else { Then::Close };
                Outcome::Reply { reply, then }
            }
            Request::PortPlease2 { name } => {
                let resp = match self.live.iter().find(|l| l.entry.name == name) {
                    Some(l) => Port2Resp::Found(l.entry.clone()),
                    None => Port2Resp::NotFound { result: 1 },
                };
                let mut reply = Vec::new();
                // Entries were validated on the way in, so encoding cannot fail.
                if resp.encode(&mut reply).is_err() {
                    return Outcome::Close;
                }
                Outcome::Reply { reply, then: Then::Close }
            }
            Request::Names => {
                let mut reply = Vec::new();
                NamesResp { epmd_port: u32::from(self.epmd_port), names: self.names() }.encode(&mut reply);
                Outcome::Reply { reply, then: Then::Close }
            }
            Request::Kill => {
                if !local_peer {
                    return Outcome::Close;
                }
                if self.live.is_empty() {
                    Outcome::Reply { reply: KillResp::Ok.as_bytes().to_vec(), then: Then::StopServer }
                } else {
                    Outcome::Reply { reply: KillResp::No.as_bytes().to_vec(), then: Then::Close }
                }
            }
        }
    }

    /// Registers `entry` for `conn`; the creation, or `None` if refused.
    fn register(&mut self, conn: ConnId, entry: NodeEntry, fresh: u32) -> Option<u32> {
        if self.live.iter().any(|l| l.entry.name == entry.name || l.conn == conn) {
            tracing::info!(name = %entry.name, "ALIVE2_REQ refused: name already registered");
            return None;
        }
        if self.live.len() >= self.max_names {
            tracing::warn!(name = %entry.name, "ALIVE2_REQ refused: name limit reached");
            return None;
        }
        let counter = match self.retired.iter().position(|(n, _)| *n == entry.name) {
            Some(i) => self.retired.remove(i).map_or(fresh, |(_, c)| c),
            None => fresh,
        };
        // epmd's bump_creation: increment, and never below 4.
        let counter = counter.wrapping_add(1).max(4);
        let creation = if entry.highest_version >= 6 { counter } else { counter % 3 + 1 };
        tracing::debug!(name = %entry.name, port = entry.port, creation, "registered");
        self.live.push(Live { conn, entry, counter });
        Some(creation)
    }

    /// Unregisters whatever `conn` registered; returns the name.
    pub fn connection_closed(&mut self, conn: ConnId) -> Option<String> {
        let i = self.live.iter().position(|l| l.conn == conn)?;
        let l = self.live.remove(i);
        if self.retired.len() >= MAX_RETIRED_NAMES {
            self.retired.pop_front();
        }
        self.retired.push_back((l.entry.name.clone(), l.counter));
        tracing::debug!(name = %l.entry.name, "unregistered");
        Some(l.entry.name)
    }

    /// Registered `(name, port)`, in registration order.
    pub fn names(&self) -> Vec<(String, u16)> {
        self.live.iter().map(|l| (l.entry.name.clone(), l.entry.port)).collect()
    }

    /// The entry registered under `name`.
    pub fn lookup(&self, name: &str) -> Option<&NodeEntry> {
        self.live.iter().find(|l| l.entry.name == name).map(|l| &l.entry)
    }
}

/// Limits of an [`EmbeddedEpmd`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Simultaneous connections; more are closed at once.
    pub max_connections: usize,
    /// Registered names; more ALIVE2 requests are refused.
    pub max_names: usize,
    /// How long an unregistered connection may take to send its request, and to take the
    /// reply.
    pub idle_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { max_connections: MAX_CONNECTIONS, max_names: MAX_NAMES, idle_timeout: IDLE_TIMEOUT }
    }
}

struct Shared {
    registry: Mutex<Registry>,
    config: ServerConfig,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry's methods do not panic midway; a poisoned lock still holds a
        // consistent registry.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bound, not yet serving, embedded EPMD.
pub struct EmbeddedEpmd {
    listener: TcpListener,
    config: ServerConfig,
}

impl EmbeddedEpmd {
    /// Binds the listening socket (e.g. `0.0.0.0:4369`, or port 0 for tests).
    pub async fn bind(addr: SocketAddr) -> Result<Self, EpmdError> {
        let listener = TcpListener::bind(addr).await?;
        Ok(EmbeddedEpmd { listener, config: ServerConfig::default() })
    }

    /// Replaces the default limits.
    pub fn with_config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, EpmdError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until a local KILL_REQ is accepted (only when no names are registered).
    pub async fn run(self) -> Result<(), EpmdError> {
        let (tx, rx) = watch::channel(false);
        let shared = self.shared()?;
        serve(self.listener, shared, tx.clone(), rx).await;
        Ok(())
    }

    /// Serves in a spawned task; dropping the handle, or [`EmbeddedEpmdHandle::shutdown`],
    /// stops it and closes every connection (registered nodes see their EPMD go away).
    #[must_use = "dropping the handle stops the server"]
    pub fn spawn(self) -> Result<EmbeddedEpmdHandle, EpmdError> {
        let local_addr = self.local_addr()?;
        let shared = self.shared()?;
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(
            serve(self.listener, shared.clone(), tx.clone(), rx)
                .instrument(tracing::info_span!("embedded_epmd", %local_addr)),
        );
        Ok(EmbeddedEpmdHandle { local_addr, stop: tx, task: Some(task), shared })
    }

    fn shared(&self) -> Result<Arc<Shared>, EpmdError> {
        let port = self.local_addr()?.port();
        Ok(Arc::new(Shared {
            registry: Mutex::new(Registry::new(port, self.config.max_names)),
            config: self.config.clone(),
        }))
    }
}

/// A running embedded EPMD; dropping it stops the server.
#[must_use = "dropping the handle stops the server"]
pub struct EmbeddedEpmdHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl EmbeddedEpmdHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The names registered right now.
    pub fn names(&self) -> Vec<(String, u16)> {
        self.shared.registry().names()
    }

    /// Stops the server and waits until its listener and connections are closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedEpmdHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    // Resolves on `true`, or when every sender is gone.
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    mut stop_rx: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(shared.config.max_connections));
    let mut next_id = 0u64;
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut stop_rx) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Reap finished connection tasks.
        while conns.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing");
            continue;
        };
        next_id += 1;
        let id = ConnId(next_id);
        let shared = shared.clone();
        let stop = stop.clone();
        let stop_rx = stop_rx.clone();
        conns.spawn(
            async move {
                if let Err(e) = connection(stream, peer, id, &shared, &stop, stop_rx).await {
                    tracing::debug!("connection closed: {e}");
                }
                drop(permit);
            }
            .instrument(tracing::debug_span!("epmd_conn", %peer)),
        );
    }
    // Dropping the JoinSet aborts the connection tasks; their guards unregister.
    conns.shutdown().await;
}

/// Unregisters the connection's name however its task ends (close, error, abort).
struct Unregister<'a> {
    shared: &'a Shared,
    id: ConnId,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.shared.registry().connection_closed(self.id);
    }
}

fn is_local(peer: &SocketAddr, local: Option<SocketAddr>) -> bool {
    let canon = |ip: IpAddr| ip.to_canonical();
    let p = canon(peer.ip());
    p.is_loopback() || local.is_some_and(|l| canon(l.ip()) == p)
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    shared: &Shared,
    stop: &watch::Sender<bool>,
    mut stop_rx: watch::Receiver<bool>,
) -> io::Result<()> {
    let _guard = Unregister { shared, id };
    let idle = shared.config.idle_timeout;
    let local_peer = is_local(&peer, stream.local_addr().ok());

    // Read exactly one request.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    let req = loop {
        match Request::decode(&buf) {
            Ok(Some((req, used))) => {
                if used != buf.len() {
                    // epmd: "got N bytes in packet, expected M".
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "bytes after request"));
                }
                break req;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("malformed request: {e}");
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        // Decode rejects a frame over MAX_REQUEST_LEN as soon as its length is in, so `buf`
        // stays below MAX_REQUEST_LEN + 2 + one chunk.
        let n = tokio::select! {
            _ = stopped(&mut stop_rx) => return Ok(()),
            r = timeout(idle, stream.read(&mut chunk)) => r.map_err(|_| io::ErrorKind::TimedOut)??,
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    };

    let outcome = shared.registry().handle(id, local_peer, req, rand::random());
    let (reply, then) = match outcome {
        Outcome::Close => return Ok(()),
        Outcome::Reply { reply, then } => (reply, then),
    };
    timeout(idle, stream.write_all(&reply)).await.map_err(|_| io::ErrorKind::TimedOut)??;
    match then {
        Then::Close => {
            let _ = stream.shutdown().await;
        }
        Then::StopServer => {
            let _ = stream.shutdown().await;
            tracing::info!("KILL_REQ accepted; stopping");
            let _ = stop.send(true);
        }
        Then::KeepRegistration => {
            // The registration lasts until the peer closes or sends anything (epmd: "got more
            // than expected on ALIVE socket"), or the server stops. No idle timeout here.
            tokio::select! {
                _ = stopped(&mut stop_rx) => {}
                _ = stream.read(&mut chunk) => {}
            }
        }
    }
    Ok(())
}

/// Makes sure an EPMD serves `port`: if one answers on `127.0.0.1:port`, use it (`None`);
/// otherwise bind `0.0.0.0:port` and serve in-process (`Some(handle)`; keep it alive). If
/// another process binds the port first, use theirs.
pub async fn ensure_epmd(port: u16) -> Result<Option<EmbeddedEpmdHandle>, EpmdError> {
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let answers = || async { matches!(timeout(PROBE_TIMEOUT, super::client::names(local)).await, Ok(Ok(_))) };
    if answers().await {
        return Ok(None);
    }
    match EmbeddedEpmd::bind(SocketAddr::from(([0, 0, 0, 0], port))).await {
        Ok(server) => {
            tracing::info!(port, "no EPMD running; serving an embedded one");
            Ok(Some(server.spawn()?))
        }
        Err(EpmdError::Io(e)) if e.kind() == io::ErrorKind::AddrInUse => {
            // Lost a race: someone bound between our probe and our bind. Give their EPMD a
            // moment to start answering.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                if answers().await {
                    return Ok(None);
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(EpmdError::Io(e));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epmd::proto::{ALIVE2_RESP, ALIVE2_X_RESP};

    fn alive(name: &str, port: u16) -> Request {
        Request::Alive2(NodeEntry::new(name, port, false))
    }

    fn creation(o: &Outcome) -> (u8, u32) {
        match o {
            Outcome::Reply { reply, .. } => {
                let (r, _) = Alive2Resp::decode(reply).unwrap().unwrap();
                (r.result(), r.creation())
            }
            Outcome::Close => panic!("closed"),
        }
    }

    #[test]
    fn register_lookup_unregister() {
        let mut reg = Registry::new(4369, 10);
        let o = reg.handle(ConnId(1), true, alive("a", 100), 1000);
        assert!(matches!(&o, Outcome::Reply { reply, then: Then::KeepRegistration } if reply[0] == ALIVE2_X_RESP));
        assert_eq!(creation(&o), (0, 1001));
        assert_eq!(reg.lookup("a").map(|e| e.port), Some(100));

        // Duplicate live name: result 1, creation 99, connection closes.
        let dup = reg.handle(ConnId(2), true, alive("a", 101), 5);
        assert_eq!(creation(&dup), (1, 99));
        assert!(matches!(dup, Outcome::Reply { then: Then::Close, .. }));

        let o = reg.handle(ConnId(3), true, Request::PortPlease2 { name: "a".into() }, 0);
        let Outcome::Reply { reply, then: Then::Close } = o else { panic!() };
        assert_eq!(Port2Resp::decode(&reply).unwrap().unwrap().0, Port2Resp::Found(NodeEntry::new("a", 100, false)));

        let Outcome::Reply { reply, .. } = reg.handle(ConnId(4), true, Request::Names, 0) else { panic!() };
        let mut expected = vec![0, 0, 0x11, 0x11];
        expected.extend_from_slice(b"name a at port 100\n");
        assert_eq!(reply, expected);

        assert_eq!(reg.connection_closed(ConnId(2)), None);
        assert_eq!(reg.connection_closed(ConnId(1)), Some("a".into()));
        let o = reg.handle(ConnId(5), true, Request::PortPlease2 { name: "a".into() }, 0);
        assert_eq!(o, Outcome::Reply { reply: vec![119, 1], then: Then::Close });
    }

    #[test]
    fn creation_changes_per_registration() {
        let mut reg = Registry::new(4369, 10);
        let c1 = creation(&reg.handle(ConnId(1), true, alive("a", 1), 0xffff_ffff));
        // Wraps past zero to 4 (epmd never hands out 0..=3 to version 6 nodes).
        assert_eq!(c1, (0, 4));
        reg.connection_closed(ConnId(1));
        let c2 = creation(&reg.handle(ConnId(2), true, alive("a", 1), 77));
        assert_eq!(c2, (0, 5), "the retired counter is reused, not the fresh value");
        // Old registrants: ALIVE2_RESP, creation 1..=3.
        let mut old = NodeEntry::new("old", 1, false);
        old.highest_version = 5;
        let o = reg.handle(ConnId(3), true, Request::Alive2(old), 10);
        let Outcome::Reply { reply, .. } = &o else { panic!() };
        assert_eq!(reply[0], ALIVE2_RESP);
        assert_eq!(creation(&o), (0, 11 % 3 + 1));
    }

    #[test]
    fn limits_and_locality() {
        let mut reg = Registry::new(4369, 1);
        assert_eq!(reg.handle(ConnId(1), false, alive("a", 1), 9), Outcome::Close);
        assert_eq!(creation(&reg.handle(ConnId(1), true, alive("a", 1), 9)).0, 0);
        assert_eq!(creation(&reg.handle(ConnId(2), true, alive("b", 1), 9)), (1, 99));
        // KILL: refused while names are registered, silent from afar, accepted when empty.
        assert_eq!(reg.handle(ConnId(3), false, Request::Kill, 0), Outcome::Close);
        assert_eq!(
            reg.handle(ConnId(3), true, Request::Kill, 0),
            Outcome::Reply { reply: b"NO".to_vec(), then: Then::Close }
        );
        reg.connection_closed(ConnId(1));
        assert_eq!(
            reg.handle(ConnId(3), true, Request::Kill, 0),
            Outcome::Reply { reply: b"OK".to_vec(), then: Then::StopServer }
        );
    }

    #[test]
    fn retired_names_are_bounded() {
        let mut reg = Registry::new(4369, 10);
        for i in 0..(MAX_RETIRED_NAMES as u64 + 5) {
            reg.handle(ConnId(i), true, alive(&format!("n{i}"), 1), 0);
            reg.connection_closed(ConnId(i));
        }
        assert_eq!(reg.retired.len(), MAX_RETIRED_NAMES);
    }

    #[test]
    fn locality() {
        let l: SocketAddr = "10.0.0.5:4369".parse().unwrap();
        assert!(is_local(&"127.0.0.1:5".parse().unwrap(), Some(l)));
        assert!(is_local(&"[::ffff:127.0.0.1]:5".parse().unwrap(), Some(l)));
        assert!(is_local(&"10.0.0.5:5".parse().unwrap(), Some(l)));
        assert!(!is_local(&"10.0.0.6:5".parse().unwrap(), Some(l)));
    }
}
