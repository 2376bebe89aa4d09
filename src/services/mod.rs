//! What every visible node runs, so that nothing on the BEAM side waits on us in vain:
//! `net_kernel` (ping), `global` (the global name server), `rex` and `erpc` (rpc to this node),
//! and `pg` process groups. The node layer knows none of them: [`start`] boots them on a
//! distributed node, as Kernel's application does on BEAM, and [`start_node`] does both steps.
//!
//! ```no_run
//! # async fn demo() -> Result<(), erlnode::node::StartError> {
//! use erlnode::node::NodeConfig;
//! // the usual node: distribution plus the standard services
//! let node = erlnode::services::start_node(NodeConfig::new("rusty", "COOKIE")).await?;
//! // the same, in two steps (to register rpc functions before peers can call them, say)
//! let bare = erlnode::Node::start_distribution(NodeConfig::new("bare", "COOKIE")).await?;
//! erlnode::services::start(&bare).await?;
//! # Ok(())
//! # }
//! ```

pub mod global;
pub mod gns;
pub mod net_kernel;
pub mod pg;
pub mod rex;
pub mod rpc;

use crate::node::{Node, NodeConfig, StartError};
use crate::term::{Atom, Pid, Term};

/// Starts a distributed node ([`Node::start_distribution`]) and the standard services on it
/// ([`start`]): what `erl -sname` gives, and what the CLI runs.
pub async fn start_node(config: NodeConfig) -> Result<Node, StartError> {
    let node = Node::start_distribution(config).await?;
    start(&node).await?;
    Ok(node)
}

/// Starts the services every BEAM node runs on `node`: `net_kernel`, the rpc service and
/// `rex`; on a visible node also `global` and the default `pg` scope (a hidden node takes no
/// part in them, as with `erl -hidden`).
pub async fn start(node: &Node) -> Result<(), StartError> {
    crate::gen_server::start(node, net_kernel::NetKernel, Some(Atom::new(net_kernel::NAME)))
        .await
        .map_err(|r| StartError::Service(net_kernel::NAME, r.to_string()))?;
    if !node.is_hidden() {
        // a visible node must speak global, or :global.sync() hangs on every BEAM node
        gns::start(node).await;
        // the default `pg` scope, as `-kernel start_pg true` runs it
        pg::start_scope(node, Atom::new(pg::DEFAULT_SCOPE)).map_err(|e| StartError::Service("pg", e.to_string()))?;
    }
    rpc::start(node);
    rex::start(node).await.map_err(|r| StartError::Service(rex::NAME, r.to_string()))?;
    Ok(())
}

/// Registers `pid` under `name` cluster-wide (`global:register_name/2`): `true` if the name
/// was free everywhere. On a hidden node (no `global`), the name is registered locally.
pub async fn register_name(node: &Node, name: &Atom, pid: &Pid) -> bool {
    match node.extension::<gns::GlobalService>() {
        Some(g) => g.register_name(Term::Atom(name.clone()), pid.clone()).await,
        None => node.register(name.clone(), pid),
    }
}

/// Removes a name registered with [`register_name`] (`global:unregister_name/1`).
pub async fn unregister_name(node: &Node, name: &Atom) {
    match node.extension::<gns::GlobalService>() {
        Some(g) => g.unregister_name(Term::Atom(name.clone())).await,
        None => {
            node.unregister(name);
        }
    }
}

/// The pid registered globally as `name` (`global:whereis_name/1`).
pub fn whereis_name(node: &Node, name: &Atom) -> Option<Pid> {
    node.whereis_global(&Term::Atom(name.clone()))
}

/// Every globally registered name (`global:registered_names/0`), sorted.
pub fn registered_names(node: &Node) -> Vec<Term> {
    let mut v = node.extension::<gns::GlobalService>().map(|g| g.registered_names()).unwrap_or_default();
    v.sort();
    v
}
