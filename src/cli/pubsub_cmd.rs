//! `erlnode pubsub`: tail a Phoenix.PubSub topic from the terminal, or broadcast into it.
//!
//! `subscribe` runs a visible node (pg scopes only talk to visible nodes), joins the PubSub
//! and prints every message broadcast on the topics. `broadcast` is a hidden one-shot, like
//! `erl_call`: it asks the node it dials which nodes serve the PubSub (their pool workers, from
//! `pg:get_members/2`), sends one `forward_to_local` to each through one pool group, delivers
//! nothing locally, and exits once every node got it on its connection.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::NodeOpts;
use super::oneshot::{connect, start_node};
use super::term_cmd::{parse, render};
use crate::ecosystem::phoenix_pubsub::PubSub;
use crate::ecosystem::phoenix_pubsub::message::{ForwardToLocal, SCOPE, adapter_name, group_index, server_atom};
use crate::ecosystem::phoenix_pubsub::view::{View, pick_group};
use crate::node::{Dest, Node, Process, normal};
use crate::term::{Atom, Pid, Term};

/// `erlnode pubsub ...`
#[derive(Subcommand, Debug)]
pub enum PubSubCmd {
    /// Print every message broadcast on TOPIC..., one per line.
    Subscribe(SubscribeArgs),
    /// Broadcast TERM on TOPIC to every subscriber in the cluster.
    Broadcast(BroadcastArgs),
}

/// `erlnode pubsub subscribe`
#[derive(Args, Debug)]
pub struct SubscribeArgs {
    /// The PubSub, as Elixir names it: `MyApp.PubSub` (`Elixir.MyApp.PubSub` works too).
    #[arg(long)]
    pub server: String,
    /// A node of the cluster to join through (repeatable).
    #[arg(long, required = true)]
    pub connect: Vec<String>,
    /// Exit after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// The topics.
    #[arg(required = true)]
    pub topics: Vec<String>,
}

/// `erlnode pubsub broadcast`
#[derive(Args, Debug)]
pub struct BroadcastArgs {
    /// The PubSub, as Elixir names it: `MyApp.PubSub` (`Elixir.MyApp.PubSub` works too).
    #[arg(long)]
    pub server: String,
    /// A node of the cluster to ask (repeatable; the first that answers is used).
    #[arg(long, required = true)]
    pub connect: Vec<String>,
    /// The topic.
    pub topic: String,
    /// The message, e.g. '{new_msg, <<"hi">>}' (Elixir syntax with --elixir).
    #[arg(allow_hyphen_values = true)]
    pub term: String,
}

/// How long a one-shot waits for the cluster's view of the PubSub.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn run(cmd: PubSubCmd, opts: &NodeOpts) -> Result<(), String> {
    match cmd {
        PubSubCmd::Subscribe(args) => subscribe(args, opts).await,
        PubSubCmd::Broadcast(args) => broadcast(args, opts).await,
    }
}

async fn subscribe(args: SubscribeArgs, opts: &NodeOpts) -> Result<(), String> {
    server_atom(&args.server).map_err(|e| e.to_string())?;
    let node = start_node(opts, &args.connect[0], false).await?;
    let mut peers = Vec::new();
    for c in &args.connect {
        peers.push(connect(&node, c).await?);
    }
    let pubsub = PubSub::join(&node, &args.server).await.map_err(|e| e.to_string())?;
    if !pubsub.wait_for_nodes(&peers, SYNC_TIMEOUT).await {
        let missing: Vec<&str> = peers.iter().filter(|p| !pubsub.nodes().contains(p)).map(|p| p.as_str()).collect();
        node.shutdown();
        return Err(format!("no Phoenix.PubSub named {} on {}", args.server, missing.join(", ")));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Term>();
    let printer = node.spawn(move |mut p: Process| async move {
        loop {
            if tx.send(p.receive().await).is_err() {
                return normal();
            }
        }
    });
    for t in &args.topics {
        pubsub.subscribe(&printer, t).map_err(|e| e.to_string())?;
    }
    eprintln!(
        "erlnode: {} subscribed to {} on {} (pool size {}, nodes: {})",
        node.name().as_str(),
        args.topics.join(", "),
        args.server,
        pubsub.pool_size(),
        pubsub.nodes().iter().map(Atom::as_str).collect::<Vec<_>>().join(", ")
    );
    let mut seen = 0u64;
    let mut out = std::io::stdout();
    while args.count.is_none_or(|n| seen < n) {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(msg) = msg else { break };
        seen += 1;
        if writeln!(out, "{}", render(&msg, opts.elixir)).and_then(|()| out.flush()).is_err() {
            break; // the reader went away (`| head`)
        }
    }
    node.shutdown();
    Ok(())
}

async fn broadcast(args: BroadcastArgs, opts: &NodeOpts) -> Result<(), String> {
    let server = server_atom(&args.server).map_err(|e| e.to_string())?;
    let message = parse(&args.term, opts.elixir)?;
    let node = start_node(opts, &args.connect[0], true).await?;
    let result = broadcast_via(&node, &server, &args, message).await;
    node.shutdown();
    result
}

async fn broadcast_via(node: &Node, server: &Atom, args: &BroadcastArgs, message: Term) -> Result<(), String> {
    let mut last_err = String::new();
    for c in &args.connect {
        let peer = match connect(node, c).await {
            Ok(p) => p,
            Err(e) => {
                last_err = e;
                continue;
            }
        };
        let view = match cluster_view(node, &peer, server).await {
            Ok(v) => v,
            Err(e) => {
                last_err = e;
                continue;
            }
        };
        if view.nodes().is_empty() {
            return Err(format!("no Phoenix.PubSub named {} in the cluster of {}", args.server, peer.as_str()));
        }
        let own = node.name();
        let group = pick_group(node.system_pid(), view.broadcast_pool_size(own));
        let targets = view.remote_members(group, own);
        let fwd = ForwardToLocal::new(bytes::Bytes::from(args.topic.clone().into_bytes()), message).to_term();
        for t in &targets {
            if !node.is_connected(&t.node) {
                connect(node, t.node.as_str()).await?;
            }
            node.send(Dest::Pid(t.clone()), fwd.clone());
        }
        // a round trip on each connection: everything sent before it has been written
        for t in &targets {
            if !node.ping(&t.node).await {
                return Err(format!("{} went away before the broadcast was confirmed", t.node.as_str()));
            }
        }
        return Ok(());
    }
    Err(last_err)
}

/// The pool groups of `server` across the cluster, as `peer`'s pg scope knows them.
async fn cluster_view(node: &Node, peer: &Atom, server: &Atom) -> Result<View, String> {
    let adapter = adapter_name(server);
    let scope = Term::atom(SCOPE);
    let rpc =
        |f: &'static str, args: Vec<Term>| crate::services::rex::call(node, peer, "pg", f, args, Some(SYNC_TIMEOUT));
    let groups = rpc("which_groups", vec![scope.clone()])
        .await
        .map_err(|e| format!("asking {} for the pg groups: {e}", peer.as_str()))?;
    let mut view = View::new();
    for g in groups.as_list().unwrap_or_default() {
        let Some(Ok(index)) = group_index(&adapter, g) else { continue };
        let members = rpc("get_members", vec![scope.clone(), g.clone()])
            .await
            .map_err(|e| format!("asking {} for the members of {g}: {e}", peer.as_str()))?;
        let pids: Vec<Pid> = members.as_list().unwrap_or_default().iter().filter_map(|p| p.as_pid().cloned()).collect();
        view.join(index, &pids);
    }
    Ok(view)
}
