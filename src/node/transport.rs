//! The byte stream a connection runs over: plain TCP (`inet_tcp_dist`) or TLS over TCP
//! (`inet_tls_dist`, `lib/ssl/src/inet_tls_dist.erl`). The handshake driver and the connection
//! tasks see one [`DistStream`] either way; only the handshake's framing differs
//! ([`Transport::framing`]).
//!
//! A refused or failed TLS handshake is logged here, once, with the peer's address; the log is
//! rate-limited ([`REFUSAL_LOG_BURST`] per [`REFUSAL_LOG_WINDOW`]) so that a flood of bad
//! connections cannot flood the log.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::handshake::message::Framing;
use crate::tls::TlsDist;

/// Refusals logged at most this often per window; the rest are counted and summed up.
pub const REFUSAL_LOG_BURST: u32 = 10;
/// The window of [`REFUSAL_LOG_BURST`].
pub const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(10);

/// The first byte of a TLS handshake record (RFC 8446, 5.1: `ContentType.handshake`).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The first byte of a TLS alert record (`ContentType.alert`).
const TLS_ALERT_RECORD: u8 = 0x15;

/// `-proto_dist`: how this node's connections are carried.
#[derive(Clone, Debug, Default)]
pub enum Transport {
    /// `inet_tcp`: plain TCP.
    #[default]
    Tcp,
    /// `inet_tls`: TLS over TCP with this configuration.
    Tls(Arc<TlsDist>),
}

impl Transport {
    /// How the distribution handshake frames its messages over this transport.
    pub fn framing(&self) -> Framing {
        match self {
            Transport::Tcp => Framing::Tcp,
            Transport::Tls(_) => Framing::Tls,
        }
    }

    /// `inet_tcp` or `inet_tls`, as `-proto_dist` names it.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Tcp => "inet_tcp",
            Transport::Tls(_) => "inet_tls",
        }
    }

    /// Runs the client side of TLS over a dialled socket (nothing for TCP); `host` is the host
    /// part of the node name dialled, which the server's certificate must name.
    pub(crate) async fn connect(&self, tcp: TcpStream, host: &str) -> Result<DistStream, String> {
        let Transport::Tls(tls) = self else { return Ok(DistStream::Tcp(tcp)) };
        let name = TlsDist::server_name(host)?;
        let addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        match TlsConnector::from(tls.client_config()).connect(name, tcp).await {
            Ok(s) => {
                tracing::debug!(version = ?s.get_ref().1.protocol_version(), "TLS up");
                Ok(DistStream::Tls(Box::new(TlsStream::Client(s))))
            }
            Err(e) => {
                let why = format!("TLS handshake with {host} ({addr}) failed: {e}");
                refusal(&why);
                Err(why)
            }
        }
    }

    /// Runs the server side of TLS over an accepted socket (nothing for TCP). A peer whose
    /// first bytes are not a TLS handshake record (a node without `-proto_dist inet_tls`) is
    /// refused before TLS starts.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> Result<DistStream, String> {
        let Transport::Tls(tls) = self else { return Ok(DistStream::Tcp(tcp)) };
        let addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(0) => return Err("closed before the TLS handshake".into()),
            Ok(_) => {
                let why = format!(
                    "refused a connection from {addr}: not TLS (a node without -proto_dist inet_tls dialled this \
                     TLS node)"
                );
                refusal(&why);
                return Err(why);
            }
            Err(e) => return Err(e.to_string()),
        }
        match TlsAcceptor::from(tls.server_config()).accept(tcp).await {
            Ok(s) => {
                tracing::debug!(version = ?s.get_ref().1.protocol_version(), "TLS up");
                Ok(DistStream::Tls(Box::new(TlsStream::Server(s))))
            }
            Err(e) => {
                let why = format!("TLS handshake with {addr} failed: {e}");
                refusal(&why);
                Err(why)
            }
        }
    }
}

/// `true` if bytes read from a peer we spoke plain distribution to look like a TLS record: the
/// peer runs `-proto_dist inet_tls` (it answers our name message with an alert).
pub(crate) fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [TLS_ALERT_RECORD | TLS_HANDSHAKE_RECORD, 3, ..])
}

/// Logs a refusal (a TLS failure, or a peer on the other transport), rate-limited.
pub(crate) fn refusal(why: &str) {
    static LIMIT: Mutex<Option<(Instant, u32, u64)>> = Mutex::new(None);
    let mut g = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let (start, logged, suppressed) = g.get_or_insert((now, 0, 0));
    if now.duration_since(*start) > REFUSAL_LOG_WINDOW {
        if *suppressed > 0 {
            tracing::warn!("{suppressed} more TLS refusals were not logged");
        }
        (*start, *logged, *suppressed) = (now, 0, 0);
    }
    if *logged < REFUSAL_LOG_BURST {
        *logged += 1;
        tracing::warn!("{why}");
    } else {
        *suppressed += 1;
    }
}

/// One connection's byte stream.
#[derive(Debug)]
pub(crate) enum DistStream {
    /// `inet_tcp`.
    Tcp(TcpStream),
    /// `inet_tls` (boxed: the TLS state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl DistStream {
    /// The TLS version negotiated, for logs (`None` on TCP).
    pub(crate) fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match self {
            DistStream::Tcp(_) => None,
            DistStream::Tls(s) => s.get_ref().1.protocol_version(),
        }
    }

    /// The socket's descriptor.
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            DistStream::Tcp(s) => s.as_raw_fd(),
            DistStream::Tls(s) => s.get_ref().0.as_raw_fd(),
        }
    }

    /// Splits into a reading and a writing half for the connection's two tasks. TCP splits
    /// without a lock; TLS shares its state through tokio's split.
    pub(crate) fn into_split(self) -> (DistRead, DistWrite) {
        match self {
            DistStream::Tcp(s) => {
                let (r, w) = s.into_split();
                (DistRead::Tcp(r), DistWrite::Tcp(w))
            }
            DistStream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (DistRead::Tls(r), DistWrite::Tls(w))
            }
        }
    }
}

/// `AsyncRead` for a type with `Tcp` and `Tls` variants, delegated to the variant's stream.
macro_rules! delegate_read {
    ($ty:ident) => {
        impl AsyncRead for $ty {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_read(cx, buf),
                    $ty::Tls(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }
    };
}

/// `AsyncWrite` for a type with `Tcp` and `Tls` variants, delegated to the variant's stream.
macro_rules! delegate_write {
    ($ty:ident) => {
        impl AsyncWrite for $ty {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_write(cx, buf),
                    $ty::Tls(s) => Pin::new(s).poll_write(cx, buf),
                }
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_flush(cx),
                    $ty::Tls(s) => Pin::new(s).poll_flush(cx),
                }
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_shutdown(cx),
                    $ty::Tls(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

delegate_read!(DistStream);
delegate_write!(DistStream);

/// The reading half of a [`DistStream`].
#[derive(Debug)]
pub(crate) enum DistRead {
    Tcp(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

delegate_read!(DistRead);

/// The writing half of a [`DistStream`].
#[derive(Debug)]
pub(crate) enum DistWrite {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

delegate_write!(DistWrite);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_record_is_told_from_a_handshake_frame() {
        // an alert (what OTP's ssl answers a plain 'N' with) and a ClientHello
        assert!(looks_like_tls(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a]));
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        // plain distribution: a 2-byte length, then 's' (status) or 'N'
        assert!(!looks_like_tls(&[0x00, 0x03, b's', b'o', b'k']));
        assert!(!looks_like_tls(&[0x15]));
        assert_eq!(Transport::Tcp.framing(), Framing::Tcp);
        assert_eq!(Transport::Tcp.name(), "inet_tcp");
    }
}
