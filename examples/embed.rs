//! Embedding erlnode in a Rust service: start a node, connect to a cluster, host a GenServer
//! that iex can call, and call a GenServer that lives on a BEAM node.
//!
//! ```text
//! $ iex --sname foo --cookie COOKIE-0123456789
//! iex(foo@host)1> Agent.start(fn -> 42 end, name: :counter)
//! $ cargo run --example embed -- foo@host
//! ...
//! iex(foo@host)2> GenServer.call({:greeter, :"embedded@host"}, {:hello, "iex"})
//! "hello, iex"
//! ```

use std::time::Duration;

use erlnode::gen_server::{self, CallReply, From, GenServer};
use erlnode::node::NodeConfig;
use erlnode::term::ExportFun;
use erlnode::{Atom, Dest, Process, Term};

/// Answers `{hello, Name}` with the binary `"hello, Name"`.
struct Greeter;

impl GenServer for Greeter {
    async fn handle_call(&mut self, request: Term, _from: &From, _p: &mut Process) -> CallReply {
        match request.as_tuple() {
            Some([tag, Term::Binary(name)]) if tag.is_atom("hello") => {
                let mut text = b"hello, ".to_vec();
                text.extend_from_slice(name);
                CallReply::Reply(Term::binary(text))
            }
            _ => CallReply::Reply(Term::atom("not_implemented")),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let peer = std::env::args().nth(1).ok_or("usage: embed NODE (e.g. foo@host)")?;
    let cookie = std::env::var("ERLANG_COOKIE").unwrap_or_else(|_| "COOKIE-0123456789".into());
    let node = erlnode::services::start_node(NodeConfig::new("embedded", cookie)).await?;
    println!("started {}", node.name().as_str());

    // a Rust GenServer, registered as `greeter` (and cluster-wide with global)
    let greeter = gen_server::start(&node, Greeter, Some(Atom::new("greeter"))).await.map_err(|r| r.to_string())?;
    let peer = Atom::new(&peer);
    if !node.connect(&peer).await {
        return Err(format!("cannot reach {}", peer.as_str()).into());
    }
    erlnode::services::register_name(&node, &Atom::new("greeter"), &greeter).await;

    // call an Agent on the BEAM node: Agent.get(:counter, &Function.identity/1)
    let identity =
        Term::from(ExportFun { module: Atom::new("Elixir.Function"), function: Atom::new("identity"), arity: 1 });
    let request = Term::Tuple(vec![Term::atom("get"), identity]);
    match node.call(Dest::Remote(Atom::new("counter"), peer.clone()), request, Some(Duration::from_secs(5))).await {
        Ok(value) => println!("counter on {} holds {}", peer.as_str(), value.elixir()),
        Err(e) => println!("no counter on {}: {e}", peer.as_str()),
    }
    println!("serving `greeter` until Ctrl-C");
    tokio::signal::ctrl_c().await?;
    node.shutdown();
    Ok(())
}
