//! After the handshake: framing and ticks, the distribution header and atom cache,
//! fragments, and control messages (`erl_dist_protocol`, "Protocol between Connected Nodes";
//! `erl_ext_dist`, "Distribution Header"). Pure: bytes in, messages out.

pub mod flags;

pub use flags::DistFlags;
