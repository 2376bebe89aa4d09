//! Embedding erlnode in a Rust service: start a node, connect to a cluster, host a GenServer
//! that iex can call, and call a GenServer that lives on a BEAM node. Requests and replies are
//! Rust types (serde; the conventions are in `erlnode::term::typed`).
//!
//! ```text
//! $ iex --sname foo --cookie COOKIE-0123456789
//! iex(foo@host)1> Agent.start(fn -> 42 end, name: :counter)
//! $ cargo run --example embed -- foo@host
//! ...
//! iex(foo@host)2> GenServer.call({:greeter, :"embedded@host"}, {:hello, "iex"})
//! "hello, iex"
//! iex(foo@host)3> GenServer.call({:greeter, :"embedded@host"}, {:hello, :iex})
//! {:error, {:bad_request, "at {hello}: expected a UTF-8 binary or a charlist (string), found the atom `iex`"}}
//! ```

use std::time::Duration;

use erlnode::gen_server::{self, CallReply, From, TypedGenServer};
use erlnode::node::NodeConfig;
use erlnode::term::ExportFun;
use erlnode::{Atom, Dest, Process, Term};
use serde::{Deserialize, Serialize};

/// What the greeter answers: `{:hello, name}`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Greeting {
    Hello(String),
}

/// Answers `{hello, Name}` with the binary `"hello, Name"`.
struct Greeter;

impl TypedGenServer for Greeter {
    type Call = Greeting;
    type Reply = String;
    type Cast = Term;

    async fn handle_call(
        &mut self,
        Greeting::Hello(name): Greeting,
        _from: &From,
        _p: &mut Process,
    ) -> CallReply<String> {
        CallReply::Reply(format!("hello, {name}"))
    }
}

/// What `Agent.get(agent, fun)` sends: `{:get, fun}`.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum AgentCall {
    Get(ExportFun),
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let peer = std::env::args().nth(1).ok_or("usage: embed NODE (e.g. foo@host)")?;
    let cookie = std::env::var("ERLANG_COOKIE").unwrap_or_else(|_| "COOKIE-0123456789".into());
    let node = erlnode::services::start_node(NodeConfig::new("embedded", cookie)).await?;
    println!("started {}", node.name().as_str());

    // a Rust GenServer, registered as `greeter` (and cluster-wide with global)
    let greeter =
        gen_server::start_typed(&node, Greeter, Some(Atom::new("greeter"))).await.map_err(|r| r.to_string())?;
    let peer = Atom::new(&peer);
    if !node.connect(&peer).await {
        return Err(format!("cannot reach {}", peer.as_str()).into());
    }
    erlnode::services::register_name(&node, &Atom::new("greeter"), &greeter).await;

    // call an Agent on the BEAM node: Agent.get(:counter, &Function.identity/1)
    let identity = ExportFun { module: Atom::new("Elixir.Function"), function: Atom::new("identity"), arity: 1 };
    let counter = Dest::Remote(Atom::new("counter"), peer.clone());
    match node.call_typed::<i64>(counter, &AgentCall::Get(identity), Some(Duration::from_secs(5))).await {
        Ok(value) => println!("counter on {} holds {value}", peer.as_str()),
        Err(e) => println!("no counter on {}: {e}", peer.as_str()),
    }
    println!("serving `greeter` until Ctrl-C");
    tokio::signal::ctrl_c().await?;
    node.shutdown();
    Ok(())
}
