//! One-shot commands: a hidden node (as `erl_call` connects) that does one thing and exits.

use std::time::Duration;

use clap::Args;

use super::NodeOpts;
use super::term_cmd::{parse, render};
use crate::node::name::NameMode;
use crate::node::{Dest, Node, NodeConfig};
use crate::term::{Atom, Term};

/// `erlnode call DEST REQUEST`
#[derive(Args, Debug)]
pub struct CallArgs {
    /// Where: '{global, kv1}', '{kv1, foo@host}', '{via, syn, {users, kv1}}'.
    pub dest: String,
    /// The request, e.g. '{get, foo}' (a term starting with `-`, like `-1`, too).
    #[arg(allow_hyphen_values = true)]
    pub request: String,
    /// Milliseconds to wait for the reply.
    #[arg(long, default_value_t = 5000)]
    pub timeout: u64,
    /// A cluster member to resolve `{global, Name}` or `{via, syn, ...}` through (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
}

/// `erlnode send|cast DEST MESSAGE`
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Where: '{global, kv1}', '{kv1, foo@host}', '{via, syn, {users, kv1}}'.
    pub dest: String,
    /// The message or request (a term starting with `-`, like `-1`, too).
    #[arg(allow_hyphen_values = true)]
    pub message: String,
    /// A cluster member to resolve `{global, Name}` or `{via, syn, ...}` through (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
}

/// `erlnode rpc NODE MOD FUN [ARGS]`
#[derive(Args, Debug)]
pub struct RpcArgs {
    /// The node, e.g. foo@host.
    pub node: String,
    /// The module: `erlang`; with --elixir also `:erlang` or `Enum`.
    pub module: String,
    /// The function.
    pub function: String,
    /// The arguments as a list literal, e.g. '[1, foo]' (default `[]`).
    #[arg(default_value = "[]")]
    pub args: String,
    /// Milliseconds to wait for the result.
    #[arg(long, default_value_t = 5000)]
    pub timeout: u64,
    /// Elixir syntax in and out.
    #[arg(long)]
    pub elixir: bool,
}

/// A module or function name as typed: a term literal that is an atom (`foo`, `'Foo'`,
/// `:foo`, `Enum` in Elixir), else the text itself.
fn name_atom(text: &str, elixir: bool) -> Result<Atom, String> {
    if let Ok(Term::Atom(a)) = parse(text, elixir) {
        return Ok(a);
    }
    Atom::try_new(text).map_err(|e| e.to_string())
}

/// A destination as typed: `{global, Name}`, `{Name, Node}` or `{via, syn, {Scope, Name}}`.
enum Target {
    Global(Atom),
    Remote(Atom, Atom),
    /// `{via, syn, {Scope, Name}}` (or `{Scope, Name, Meta}`): the argument of `syn:whereis_name/1`.
    Syn(Term),
}

fn target(text: &str, elixir: bool) -> Result<Target, String> {
    let t = parse(text, elixir)?;
    match t.as_tuple() {
        Some([Term::Atom(g), Term::Atom(name)]) if g == "global" => Ok(Target::Global(name.clone())),
        Some([Term::Atom(name), Term::Atom(node)]) if node.as_str().contains('@') => {
            Ok(Target::Remote(name.clone(), node.clone()))
        }
        Some([v, s, key @ Term::Tuple(k)])
            if v.is_atom("via") && s.is_atom("syn") && matches!(k.first(), Some(Term::Atom(_))) =>
        {
            Ok(Target::Syn(key.clone()))
        }
        _ => Err(format!(
            "bad destination {text}: expected {{global, Name}}, {{Name, Node}} or {{via, syn, {{Scope, Name}}}}"
        )),
    }
}

/// Starts the one-shot node, named after the target's naming mode.
async fn start(opts: &NodeOpts, toward: &str) -> Result<Node, String> {
    start_node(opts, toward, true).await
}

/// Starts a one-shot node named `--sname`/`--name`, else a unique name in `toward`'s naming
/// mode; hidden (as `erl_call`) or visible (to take part in pg scopes).
pub(super) async fn start_node(opts: &NodeOpts, toward: &str, hidden: bool) -> Result<Node, String> {
    let (name, mode) = match opts.given_name() {
        Some(x) => x,
        None => {
            let long = toward.split_once('@').is_some_and(|(_, h)| h.contains('.'));
            let alive = format!("erlnode_{}_{}", std::process::id(), rand::random::<u16>());
            (alive, if long { NameMode::Long } else { NameMode::Short })
        }
    };
    let mut config = opts.with_transport(NodeConfig::new(name, opts.cookie()?).hidden(hidden))?;
    config.mode = mode;
    crate::services::start_node(config).await.map_err(|e| e.to_string())
}

pub(super) async fn connect(node: &Node, peer: &str) -> Result<Atom, String> {
    let peer = Atom::try_new(peer).map_err(|e| e.to_string())?;
    if node.connect(&peer).await {
        Ok(peer)
    } else {
        Err(format!("cannot connect to {} (not running, unreachable, or a different cookie)", peer.as_str()))
    }
}

/// Resolves `{global, Name}` by asking a cluster member, as `erl_call` would, through `rex`.
async fn resolve(node: &Node, t: Target, via: &[String]) -> Result<(Dest, Atom), String> {
    match t {
        Target::Remote(name, peer) => {
            let peer = connect(node, peer.as_str()).await?;
            Ok((Dest::Remote(name, peer.clone()), peer))
        }
        Target::Global(name) => {
            let what = format!("registered globally as {}", name.as_str());
            whereis_by_rpc(node, via, "global", vec![Term::Atom(name)], &what).await
        }
        Target::Syn(key) => {
            let what = format!("registered in syn as {key}");
            whereis_by_rpc(node, via, "syn", vec![key], &what).await
        }
    }
}

/// `Module:whereis_name(Args...)` on the first `via` node; connects to the owner of the pid.
async fn whereis_by_rpc(
    node: &Node,
    via: &[String],
    module: &str,
    args: Vec<Term>,
    what: &str,
) -> Result<(Dest, Atom), String> {
    let Some(first) = via.first() else {
        return Err(format!("{{{module}, ...}} needs --connect NODE (a cluster member to ask)"));
    };
    let peer = connect(node, first).await?;
    let reply = crate::services::rex::call(node, &peer, module, "whereis_name", args, Some(Duration::from_secs(5)))
        .await
        .map_err(|e| format!("asking {} for the process {what}: {e}", peer.as_str()))?;
    match reply {
        Term::Pid(pid) => {
            let owner = pid.node.clone();
            if owner != peer {
                connect(node, owner.as_str()).await?;
            }
            Ok((Dest::Pid(pid), owner))
        }
        Term::Tuple(t) if t.first().is_some_and(|b| b.is_atom("badrpc")) => {
            Err(format!("asking {} for the process {what}: {}", peer.as_str(), Term::Tuple(t)))
        }
        _ => Err(format!("no process is {what}")),
    }
}

pub(super) async fn ping(peer: &str, opts: &NodeOpts) -> Result<(), String> {
    let node = start(opts, peer).await?;
    let peer = Atom::try_new(peer).map_err(|e| e.to_string())?;
    let pong = node.ping(&peer).await;
    node.shutdown();
    if pong {
        println!("pong");
        Ok(())
    } else {
        println!("pang");
        Err(format!("{} did not answer", peer.as_str()))
    }
}

pub(super) async fn call(args: CallArgs, opts: &NodeOpts) -> Result<(), String> {
    let t = target(&args.dest, opts.elixir)?;
    let request = parse(&args.request, opts.elixir)?;
    let toward = match &t {
        Target::Remote(_, n) => n.as_str().to_string(),
        Target::Global(_) | Target::Syn(_) => args.connect.first().cloned().unwrap_or_default(),
    };
    let node = start(opts, &toward).await?;
    let (dest, _) = resolve(&node, t, &args.connect).await?;
    let result = node.call(dest, request, Some(Duration::from_millis(args.timeout))).await;
    node.shutdown();
    match result {
        Ok(reply) => {
            println!("{}", render(&reply, opts.elixir));
            Ok(())
        }
        Err(e) => Err(format!("call failed: {}", render(&e.reason(), opts.elixir))),
    }
}

pub(super) async fn send(args: SendArgs, opts: &NodeOpts, cast: bool) -> Result<(), String> {
    let t = target(&args.dest, opts.elixir)?;
    let mut msg = parse(&args.message, opts.elixir)?;
    if cast {
        msg = Term::Tuple(vec![Term::atom("$gen_cast"), msg]);
    }
    let toward = match &t {
        Target::Remote(_, n) => n.as_str().to_string(),
        Target::Global(_) | Target::Syn(_) => args.connect.first().cloned().unwrap_or_default(),
    };
    let node = start(opts, &toward).await?;
    let (dest, peer) = resolve(&node, t, &args.connect).await?;
    node.send(dest, msg);
    // a round trip on the same connection: everything sent before it has been written
    let ok = node.ping(&peer).await;
    node.shutdown();
    if ok { Ok(()) } else { Err(format!("{} went away", peer.as_str())) }
}

pub(super) async fn names(host: Option<String>) -> Result<(), String> {
    let host = host.unwrap_or_else(|| "localhost".to_string());
    let port = crate::epmd::client::epmd_port();
    let names =
        crate::epmd::client::names((host.as_str(), port)).await.map_err(|e| format!("EPMD on {host}:{port}: {e}"))?;
    for (name, port) in names {
        println!("name {name} at port {port}");
    }
    Ok(())
}

pub(super) async fn rpc(args: RpcArgs, opts: &NodeOpts) -> Result<(), String> {
    let module = name_atom(&args.module, args.elixir)?;
    let function = name_atom(&args.function, args.elixir)?;
    let call_args = match parse(&args.args, args.elixir)? {
        Term::List(v) => v,
        other => return Err(format!("the arguments must be a list, not {}", render(&other, args.elixir))),
    };
    let node = start(opts, &args.node).await?;
    let peer = connect(&node, &args.node).await?;
    let timeout = Some(Duration::from_millis(args.timeout));
    let result = node.rpc_call(&peer, module.as_str(), function.as_str(), call_args, timeout).await;
    node.shutdown();
    match result {
        Ok(v) => {
            println!("{}", render(&v, args.elixir));
            Ok(())
        }
        Err(e) => {
            let (class, reason) = e.erpc_exception();
            Err(format!("rpc failed: {}:{}", class.as_str(), render(&reason, args.elixir)))
        }
    }
}
