//! What every visible node runs, so that nothing on the BEAM side waits on us in vain:
//! `net_kernel` (ping), `global` (the global name server), `rex` and `erpc` (rpc to this node),
//! and `pg` process groups.

pub mod global;
pub mod gns;
pub mod net_kernel;
pub mod pg;
pub mod rex;
pub mod rpc;

use crate::node::Node;
use crate::term::{Atom, Pid, Term};

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
