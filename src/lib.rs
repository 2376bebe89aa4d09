//! # erlnode
//!
//! A Rust node that speaks the Erlang distribution protocol well enough to be a first-class,
//! visible member of a BEAM cluster.
//!
//! ```text
//!   apps:      the article's KV and PubSub                                your processes
//!   ──────────────────────────────────────────────────────────────────────────────────
//!   ecosystem: Phoenix.PubSub, libcluster's Gossip, syn, GenStage, Broadway
//!   ──────────────────────────────────────────────────────────────────────────────────
//!   services:  net_kernel, global, pg, rex/erpc; the gen_server behaviour
//!   ──────────────────────────────────────────────────────────────────────────────────
//!   node:      processes, mailboxes, links, monitors, registry, routing   (tokio)
//!   ──────────────────────────────────────────────────────────────────────────────────
//!   dist:      framing, ticks, distribution header + atom cache,        (sans-IO)
//!              fragments, control messages
//!   handshake: name / status / challenge / digest                        (sans-IO)
//!   tls:       -proto_dist inet_tls: the -ssl_dist_optfile format, rustls configuration
//!   epmd:      ALIVE2, PORT_PLEASE2, NAMES; client and embedded server
//!   term:      External Term Format                                      (pure)
//! ```
//!
//! OTP references: *Distribution Protocol* (`erts/doc/guides/erl_dist_protocol.md`) and
//! *External Term Format* (`erts/doc/guides/erl_ext_dist.md`).
//!
//! # Embedding
//!
//! Start a node, host a GenServer that iex calls with `GenServer.call({:echo, :"rusty@host"},
//! :hi)`, and call a server on another node. (`examples/embed.rs` is a complete program.)
//!
//! ```no_run
//! use std::time::Duration;
//! use erlnode::gen_server::{self, CallReply, From, GenServer};
//! use erlnode::node::NodeConfig;
//! use erlnode::{Atom, Dest, Process, Term};
//!
//! struct Echo;
//!
//! impl GenServer for Echo {
//!     async fn handle_call(&mut self, request: Term, _from: &From, _p: &mut Process) -> CallReply {
//!         CallReply::Reply(request)
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let node = erlnode::services::start_node(NodeConfig::new("rusty", "COOKIE-0123456789")).await?;
//! let echo = gen_server::start(&node, Echo, Some(Atom::new("echo"))).await.map_err(|r| r.to_string())?;
//! node.connect(&Atom::new("foo@host")).await;
//! erlnode::services::register_name(&node, &Atom::new("echo"), &echo).await; // {:global, :echo}
//! let kv = Dest::Remote(Atom::new("kv1"), Atom::new("foo@host"));
//! let reply = node.call(kv, erlnode::tuple![Atom::from("get"), Atom::from("foo")], Some(Duration::from_secs(5))).await?;
//! println!("{reply}");
//! # Ok(())
//! # }
//! ```
//!
//! And the same node from the outside, with the term layer alone:
//!
//! ```
//! use erlnode::term::{decode, encode, parse_erlang};
//! let t = parse_erlang("{set, foo, 123}").unwrap();
//! let bytes = encode(&t);
//! assert_eq!(bytes, [131, 104, 3, 119, 3, 115, 101, 116, 119, 3, 102, 111, 111, 97, 123]);
//! assert_eq!(decode(&bytes).unwrap().elixir().to_string(), "{:set, :foo, 123}");
//! ```
#![warn(missing_docs)]

pub mod apps;
pub mod cli;
pub mod dist;
pub mod ecosystem;
pub mod epmd;
pub mod gen_server;
pub mod handshake;
mod hash;
pub mod node;
mod ratelimit;
pub mod services;
pub mod term;
pub mod tls;

pub use node::{Dest, Node, Process};
pub use term::{Atom, Term};
