//! After the handshake: framing and ticks, the distribution header and atom cache,
//! fragments, and control messages (`erl_dist_protocol`, "Protocol between Connected Nodes";
//! `erl_ext_dist`, "Distribution Header"). Pure: bytes in, messages out.

pub mod control;
mod error;
pub mod flags;
pub mod frame;
pub mod header;
pub mod tick;

pub use control::{AltactTarget, Control, Mfa, ProcRef, SpawnResult, lower_for_peer};
pub use error::{DistError, Fault};
pub use flags::DistFlags;
pub use frame::{Frame, FrameDecoder, MAX_FRAME_SIZE};
pub use tick::{TickAction, Ticker};
