//! What every visible node runs, so that nothing on the BEAM side waits on us in vain:
//! `net_kernel` (ping), `rex` and the `rpc`/`erpc` function registry, and in time `global`
//! and `pg`.

pub mod net_kernel;
pub mod rex;
pub mod rpc;

use crate::node::Node;
use crate::term::{Atom, Pid};

/// Registers `pid` under `name` cluster-wide (`global:register_name/2`). Until this node
/// speaks `global`, the name is registered locally only.
pub async fn register_name(node: &Node, name: &Atom, pid: &Pid) -> bool {
    node.register(name.clone(), pid)
}

/// Removes a name registered with [`register_name`].
pub async fn unregister_name(node: &Node, name: &Atom) {
    node.unregister(name);
}
