//! `erlnode serve`: a node hosting the article's KV and PubSub servers, and `erlnode epmd`.

use std::net::SocketAddr;

use clap::Args;

use super::NodeOpts;
use crate::node::NodeConfig;
use crate::node::name::NameMode;
use crate::term::Atom;

/// `erlnode serve`
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Connect to this node at start (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
    /// Start a KV server registered globally under NAME (repeatable).
    #[arg(long = "kv", value_name = "NAME")]
    pub kv: Vec<String>,
    /// Start a PubSub server registered globally under NAME (repeatable).
    #[arg(long = "pubsub", value_name = "NAME")]
    pub pubsub: Vec<String>,
    /// Join this syn scope and register the served names in it too (repeatable).
    #[arg(long = "syn", value_name = "SCOPE")]
    pub syn: Vec<String>,
    /// Start a GenStage producer registered as NAME that emits 0, 1, 2, ... strictly on
    /// demand (the Counter of GenStage's docs).
    #[arg(long = "counter-stage", value_name = "NAME")]
    pub counter_stage: Option<String>,
    /// Run as a hidden node.
    #[arg(long)]
    pub hidden: bool,
    /// Listen on this port (default: any free port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Runtime worker threads: 0 for one per core, 1 to run everything on one thread.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// While idle, sleep this many µs between looks at the peers' sockets instead of spinning,
    /// however many callers wait (0, the default: see --busy-nap-us). Less CPU per call for this
    /// node and its BEAM neighbours, at the price of up to this much latency per round trip
    /// (`node::spin::set_nap`).
    #[arg(long, default_value_t = 0, value_name = "US")]
    pub idle_nap_us: u64,
    /// While 4 or more remote callers wait on this node at once, sleep this many µs between
    /// looks at the peers' sockets instead of spinning (0: always spin; `node::spin::set_busy_nap`).
    #[arg(long, default_value_t = crate::node::spin::DEFAULT_BUSY_NAP.as_micros() as u64, value_name = "US")]
    pub busy_nap_us: u64,
    /// Take part in libcluster's Gossip strategy: find and be found by BEAM nodes running a
    /// `Cluster.Strategy.Gossip` topology.
    #[command(flatten)]
    pub gossip: GossipArgs,
}

/// `serve --gossip ...`: a Gossip topology's `config:`, with libcluster's defaults.
#[derive(Args, Debug)]
pub struct GossipArgs {
    /// Join the Gossip topology.
    #[arg(long)]
    pub gossip: bool,
    /// Its `port`.
    #[arg(long, value_name = "P", default_value_t = crate::ecosystem::libcluster::DEFAULT_PORT, requires = "gossip")]
    pub gossip_port: u16,
    /// Its `multicast_addr`.
    #[arg(long, value_name = "A", default_value_t = crate::ecosystem::libcluster::DEFAULT_MULTICAST_ADDR, requires = "gossip")]
    pub gossip_addr: std::net::Ipv4Addr,
    /// Its `multicast_if`: the interface multicast goes out on (127.0.0.1 keeps it on this host).
    #[arg(long, value_name = "IF", requires = "gossip")]
    pub gossip_if: Option<std::net::Ipv4Addr>,
    /// Its `secret` (default: $ERLNODE_GOSSIP_SECRET, else none).
    #[arg(long, value_name = "S", env = "ERLNODE_GOSSIP_SECRET", hide_env_values = true, requires = "gossip")]
    pub gossip_secret: Option<String>,
}

pub(super) async fn run(args: ServeArgs, opts: NodeOpts) -> Result<(), String> {
    crate::node::spin::set_nap(std::time::Duration::from_micros(args.idle_nap_us));
    crate::node::spin::set_busy_nap(std::time::Duration::from_micros(args.busy_nap_us));
    let (name, mode) = opts.given_name().unwrap_or_else(|| ("erlnode".to_string(), NameMode::Short));
    let mut config = opts.with_transport(NodeConfig::new(name, opts.cookie()?).hidden(args.hidden))?;
    config.mode = mode;
    if let Some(p) = args.port {
        config = config.port(p);
    }
    let node = crate::services::start_node(config).await.map_err(|e| format!("cannot start: {e}"))?;
    let (mut kvs, mut pss) = (args.kv, args.pubsub);
    if kvs.is_empty() && pss.is_empty() {
        kvs.push("kv1".into());
        pss.push("ps1".into());
    }
    // join the cluster first, so the names are registered cluster-wide at once
    for peer in &args.connect {
        let peer = Atom::try_new(peer).map_err(|e| e.to_string())?;
        if !node.connect(&peer).await {
            tracing::warn!("could not connect to {}", peer.as_str());
        }
    }
    let kvs: Vec<&str> = kvs.iter().map(String::as_str).collect();
    let pss: Vec<&str> = pss.iter().map(String::as_str).collect();
    let names = crate::apps::start_servers(&node, &kvs, &pss).await?;
    let mut scopes = Vec::new();
    for scope in &args.syn {
        let syn =
            crate::ecosystem::syn::Syn::join(&node, scope).await.map_err(|e| format!("syn scope {scope}: {e}"))?;
        for (name, pid) in &names {
            syn.register(crate::term::Term::Atom(name.clone()), pid, crate::term::Term::atom("undefined"))
                .await
                .map_err(|e| format!("registering {} in syn scope {scope}: {e}", name.as_str()))?;
        }
        scopes.push(syn);
    }
    if !scopes.is_empty() {
        crate::ecosystem::syn::serve_rpc(&node);
    }
    if let Some(name) = &args.counter_stage {
        let atom = Atom::try_new(name).map_err(|e| e.to_string())?;
        let mut next = 0i64;
        crate::ecosystem::gen_stage::Producer::start(&node, Some(atom), move |demand| {
            let events = (next..next.saturating_add(demand as i64)).map(crate::term::Term::Int).collect();
            next = next.saturating_add(demand as i64);
            events
        })
        .map_err(|e| format!("--counter-stage {name}: {e}"))?;
    }
    let _gossip = match args.gossip.gossip {
        false => None,
        true => {
            let config = crate::ecosystem::libcluster::GossipConfig {
                port: args.gossip.gossip_port,
                multicast_addr: args.gossip.gossip_addr,
                multicast_if: args.gossip.gossip_if,
                secret: args.gossip.gossip_secret.clone(),
                ..Default::default()
            };
            let g = crate::ecosystem::libcluster::start_gossip(&node, config)
                .await
                .map_err(|e| format!("cannot join the gossip on port {}: {e}", args.gossip.gossip_port))?;
            tracing::info!(
                "gossiping on {} to {}:{}",
                g.local_addr(),
                args.gossip.gossip_addr,
                args.gossip.gossip_port
            );
            Some(g)
        }
    };
    let served: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    println!("erlnode: {} is up; serving {}", node.name().as_str(), served.join(", "));
    wait_for_signal().await;
    tracing::info!("shutting down");
    for (name, _) in &names {
        crate::services::unregister_name(&node, name).await;
    }
    node.shutdown();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub(super) async fn epmd(port: Option<u16>) -> Result<(), String> {
    let port = port.unwrap_or_else(crate::epmd::client::epmd_port);
    let server = crate::epmd::server::EmbeddedEpmd::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    let handle = server.spawn().map_err(|e| e.to_string())?;
    println!("erlnode epmd: listening on port {port}");
    wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}
