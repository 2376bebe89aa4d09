//! # erlnode
//!
//! A Rust node that speaks the Erlang distribution protocol well enough to be a first-class,
//! visible member of a BEAM cluster.
//!
//! ```text
//!   apps (KV, PubSub)      services (net_kernel, global, pg, rex)      your processes
//!   ──────────────────────────────────────────────────────────────────────────────────
//!   node:      processes, mailboxes, links, monitors, registry, routing   (tokio)
//!   ──────────────────────────────────────────────────────────────────────────────────
//!   dist:      framing, ticks, distribution header + atom cache,        (sans-IO)
//!              fragments, control messages
//!   handshake: name / status / challenge / digest                        (sans-IO)
//!   epmd:      ALIVE2, PORT_PLEASE2, NAMES; client and embedded server
//!   term:      External Term Format                                      (pure)
//! ```
//!
//! OTP references: *Distribution Protocol* (`erts/doc/guides/erl_dist_protocol.md`) and
//! *External Term Format* (`erts/doc/guides/erl_ext_dist.md`).
#![warn(missing_docs)]

pub mod apps;
pub mod cli;
pub mod dist;
pub mod epmd;
pub mod gen_server;
pub mod handshake;
pub mod node;
pub mod services;
pub mod term;

pub use node::{Dest, Node, Process};
pub use term::{Atom, Term};
