//! EPMD, the Erlang Port Mapper Daemon (`erl_dist_protocol`, "EPMD Protocol"; see also
//! `lib/kernel/src/erl_epmd.erl` and `erts/epmd/src/epmd_srv.c`).
//!
//! - [`proto`]: the messages, pure encode/decode with named limits.
//! - [`client`]: register a node (the connection stays open for the node's life), look up a
//!   node's port, list names.
//! - [`server`]: an embedded EPMD that real `erl` nodes register with, and [`ensure_epmd`],
//!   which starts one only if no EPMD answers on the port.
//!
//! ```no_run
//! # async fn demo() -> Result<(), erlnode::epmd::EpmdError> {
//! use erlnode::epmd;
//! let _own = epmd::ensure_epmd(epmd::epmd_port()).await?; // keep it alive
//! let addr = std::net::SocketAddr::from(([127, 0, 0, 1], epmd::epmd_port()));
//! let reg = epmd::register(addr, "rust", 45000, false).await?;
//! println!("creation {}", reg.creation());
//! let peer = epmd::port_please(("localhost", epmd::epmd_port()), "other").await?;
//! # drop(peer); Ok(()) }
//! ```

pub mod client;
pub mod proto;
pub mod server;

use std::fmt;

pub use client::{Registration, epmd_port, names, port_please, register};
pub use proto::{NodeEntry, ProtoError};
pub use server::{EmbeddedEpmd, EmbeddedEpmdHandle, ServerConfig, ensure_epmd};

/// Errors of the EPMD client and server drivers.
#[derive(Debug)]
pub enum EpmdError {
    /// Local misuse: an argument that cannot be sent (bad name, bad extra).
    InvalidArgument(ProtoError),
    /// The peer misbehaved: its bytes do not decode.
    Protocol(ProtoError),
    /// EPMD refused the registration (`result` non-zero; usually the name is taken).
    Refused {
        /// The result byte.
        result: u8,
    },
    /// EPMD closed the connection before a complete reply.
    Closed,
    /// No progress within the time limit.
    Timeout {
        /// What was being waited for.
        during: &'static str,
    },
    /// Transport failure (connect, read, write, bind).
    Io(std::io::Error),
}

impl fmt::Display for EpmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidArgument(e) => write!(f, "invalid argument: {e}"),
            Self::Protocol(e) => write!(f, "EPMD protocol error: {e}"),
            Self::Refused { result } => {
                write!(f, "EPMD refused the registration (result {result}; name in use?)")
            }
            Self::Closed => write!(f, "EPMD closed the connection before replying"),
            Self::Timeout { during } => write!(f, "EPMD timed out during {during}"),
            Self::Io(e) => write!(f, "EPMD I/O error: {e}"),
        }
    }
}

impl std::error::Error for EpmdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidArgument(e) | Self::Protocol(e) => Some(e),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for EpmdError {
    fn from(e: std::io::Error) -> Self {
        EpmdError::Io(e)
    }
}
