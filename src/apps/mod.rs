//! The article's servers ("Exploring Distributed Elixir"), hosted in Rust: a key-value store
//! and a publish-subscribe server that monitors its subscribers.

pub mod kv;
pub mod pubsub;

pub use kv::Kv;
pub use pubsub::PubSub;

use crate::node::Node;
use crate::term::{Atom, Pid};

/// Starts a KV server per name in `kvs` and a PubSub server per name in `pubsubs`, each
/// registered under its name both locally (`{kv1, zed@host}` reaches it) and with `global`
/// (`{global, kv1}` from any node): what `erlnode serve` runs. Fails with a message if a server
/// cannot start or a name is taken.
pub async fn start_servers(node: &Node, kvs: &[&str], pubsubs: &[&str]) -> Result<Vec<(Atom, Pid)>, String> {
    let mut started = Vec::new();
    for (name, kind) in kvs.iter().map(|n| (n, "kv")).chain(pubsubs.iter().map(|n| (n, "pubsub"))) {
        let atom = Atom::try_new(name).map_err(|e| e.to_string())?;
        let pid = match kind {
            "kv" => crate::gen_server::start(node, Kv::new(), None).await,
            _ => crate::gen_server::start(node, PubSub::new(), None).await,
        }
        .map_err(|r| format!("{kind} {name} did not start: {r}"))?;
        if !node.register(atom.clone(), &pid) {
            return Err(format!("the name {name} is taken on this node"));
        }
        if !crate::services::register_name(node, &atom, &pid).await {
            return Err(format!("the name {name} is taken in the cluster"));
        }
        started.push((atom, pid));
    }
    Ok(started)
}
