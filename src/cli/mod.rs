//! The `erlnode` command line: `serve` runs a node hosting the article's KV and PubSub servers;
//! the other subcommands are one-shot nodes (hidden, like `erl_call`) that connect, do one
//! thing, and exit with a meaningful status.

mod oneshot;
mod pubsub_cmd;
mod serve;
mod term_cmd;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::node::name::NameMode;

/// A Rust node for Erlang/Elixir clusters.
#[derive(Parser, Debug)]
#[command(name = "erlnode", version, about, long_about = None)]
pub struct Cli {
    /// How this node is named and authenticated.
    #[command(flatten)]
    pub opts: NodeOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How this node is named and authenticated.
#[derive(Args, Debug, Clone, Default)]
pub struct NodeOpts {
    /// Short node name (`-sname`): `NAME` or `NAME@HOST`.
    #[arg(long, conflicts_with = "name", global = true)]
    pub sname: Option<String>,
    /// Long node name (`-name`): `NAME@HOST.DOMAIN`.
    #[arg(long, global = true)]
    pub name: Option<String>,
    /// The cookie (default: $ERLANG_COOKIE, else ~/.erlang.cookie as `erl` reads it).
    #[arg(long, env = "ERLANG_COOKIE", hide_env_values = true, global = true)]
    pub cookie: Option<String>,
    /// Elixir syntax for terms typed and printed (default: Erlang syntax).
    #[arg(long, global = true)]
    pub elixir: bool,
    /// How connections are carried (`erl -proto_dist`): inet_tcp (default) or inet_tls.
    #[arg(long, value_enum, global = true, value_name = "PROTO")]
    pub proto_dist: Option<ProtoDist>,
    /// TLS options for inet_tls, in OTP's `-ssl_dist_optfile` format (the same file the BEAM
    /// nodes use).
    #[arg(long, global = true, value_name = "FILE")]
    pub ssl_dist_optfile: Option<std::path::PathBuf>,
}

/// `-proto_dist`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoDist {
    /// Plain TCP.
    #[value(name = "inet_tcp")]
    InetTcp,
    /// TLS over TCP; needs --ssl-dist-optfile.
    #[value(name = "inet_tls")]
    InetTls,
}

impl NodeOpts {
    /// The name and mode given, if any.
    pub fn given_name(&self) -> Option<(String, NameMode)> {
        match (&self.sname, &self.name) {
            (Some(s), _) => Some((s.clone(), NameMode::Short)),
            (None, Some(n)) => Some((n.clone(), NameMode::Long)),
            (None, None) => None,
        }
    }

    /// `config` with the transport these options ask for: TLS reads the optfile now, so every
    /// problem with it stops the command before it starts a node.
    pub fn with_transport(&self, config: crate::node::NodeConfig) -> Result<crate::node::NodeConfig, String> {
        match (self.proto_dist.unwrap_or(ProtoDist::InetTcp), &self.ssl_dist_optfile) {
            (ProtoDist::InetTcp, None) => Ok(config),
            (ProtoDist::InetTcp, Some(_)) => Err("--ssl-dist-optfile needs --proto-dist inet_tls".into()),
            (ProtoDist::InetTls, None) => Err("--proto-dist inet_tls needs --ssl-dist-optfile FILE".into()),
            (ProtoDist::InetTls, Some(file)) => {
                let tls = crate::tls::TlsDist::from_optfile(file).map_err(|e| e.to_string())?;
                Ok(config.tls(tls))
            }
        }
    }

    /// The cookie given, else `~/.erlang.cookie`.
    pub fn cookie(&self) -> Result<String, String> {
        match &self.cookie {
            Some(c) => Ok(c.clone()),
            None => crate::node::default_cookie().map_err(|e| format!("no cookie: {e}")),
        }
    }
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node serving the article's KV and PubSub servers (kv1 and ps1 by default).
    Serve(serve::ServeArgs),
    /// Ping a node (`Node.ping`): prints pong or pang.
    Ping {
        /// The node, e.g. foo@host.
        node: String,
    },
    /// Call a GenServer: prints the reply.
    Call(oneshot::CallArgs),
    /// Cast to a GenServer.
    Cast(oneshot::SendArgs),
    /// Send a message.
    Send(oneshot::SendArgs),
    /// Call a function on a node (`erpc:call`): prints the result.
    Rpc(oneshot::RpcArgs),
    /// List the nodes registered with EPMD on HOST (default: this host).
    Names {
        /// The host.
        host: Option<String>,
    },
    /// Run an EPMD server (`ERL_EPMD_PORT`, default 4369) until interrupted.
    Epmd {
        /// The port.
        #[arg(long)]
        port: Option<u16>,
    },
    /// Tail a Phoenix.PubSub topic, or broadcast into one.
    #[command(subcommand)]
    Pubsub(pubsub_cmd::PubSubCmd),
    /// Inspect or produce External Term Format bytes.
    #[command(subcommand)]
    Term(term_cmd::TermCmd),
}

/// Logs to stderr, filtered by `RUST_LOG` (default `default_level`).
fn init_logging(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The tokio runtime for `threads` worker threads: 0 means one per core (tokio's default), 1 a
/// runtime that runs everything on the calling thread.
///
/// One thread costs less CPU per message when the node's work is a few processes in turn, as the
/// article's KV and PubSub are: no worker wakes another to steal a task it will not find (see
/// `benches/CLUSTER.md`, "Findings"). More threads let connections and processes run in parallel.
/// An idle thread watches the distribution sockets briefly before it sleeps
/// ([`crate::node::spin`]).
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let spin = crate::node::spin::before_park;
    match threads {
        0 => tokio::runtime::Builder::new_multi_thread().enable_all().on_thread_park(spin).build(),
        1 => tokio::runtime::Builder::new_current_thread().enable_all().on_thread_park(spin).build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().on_thread_park(spin).build(),
    }
}

/// Runs the command line; the exit code says whether it worked.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let opts = cli.opts;
    // long-running commands log what they do; one-shot ones only what went wrong
    let default_level = match cli.command {
        Command::Serve(_) | Command::Epmd { .. } => "info",
        _ => "warn",
    };
    init_logging(default_level);
    let threads = match &cli.command {
        Command::Serve(args) => args.threads,
        _ => 0,
    };
    let rt = match runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("erlnode: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args, opts).await,
            Command::Ping { node } => oneshot::ping(&node, &opts).await,
            Command::Call(args) => oneshot::call(args, &opts).await,
            Command::Cast(args) => oneshot::send(args, &opts, true).await,
            Command::Send(args) => oneshot::send(args, &opts, false).await,
            Command::Rpc(args) => oneshot::rpc(args, &opts).await,
            Command::Names { host } => oneshot::names(host).await,
            Command::Epmd { port } => serve::epmd(port).await,
            Command::Term(cmd) => term_cmd::run(cmd, opts.elixir),
            Command::Pubsub(cmd) => pubsub_cmd::run(cmd, &opts).await,
        }
    });
    // one-shot commands must not wait for lingering connection tasks
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("erlnode: {msg}");
            ExitCode::FAILURE
        }
    }
}
