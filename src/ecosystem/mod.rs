//! The protocols of libraries above OTP that a node may join: what a Phoenix application's
//! cluster runs besides Kernel and STDLIB.
//!
//! ```text
//!   apps (KV, PubSub)          the article's servers
//!   ──────────────────────────────────────────────────────────────────────────────
//!   ecosystem:  phoenix_pubsub (Phoenix.PubSub 2.x, PG2 adapter, over pg)
//!               libcluster     (Cluster.Strategy.Gossip: UDP multicast discovery)
//!               syn            (syn 3.4.1 scopes: registry and process groups)
//!               gen_stage      (GenStage 1.3 producers and consumers, demand-driven)
//!               broadway       (Broadway 1.3: push messages, receive acknowledgements)
//!   ──────────────────────────────────────────────────────────────────────────────
//!   services:   net_kernel, global, pg, rex          gen_server behaviour
//!   node:       processes, names, links, monitors, routing
//! ```
//!
//! Each module speaks one library's messages through [`crate::services`] and the behaviours,
//! names the upstream files and versions it follows, and shows every wire shape in its docs.
//! The libraries themselves run only on the BEAM nodes; erlnode implements their protocol,
//! not their code.

pub mod broadway;
pub mod gen_stage;
pub mod libcluster;
pub mod phoenix_pubsub;
pub mod syn;
