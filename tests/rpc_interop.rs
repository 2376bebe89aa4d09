//! `rpc`/`erpc` between the Rust node and real BEAM nodes (protocol notes section 9), every OTP
//! version of the harness: BEAM calling Rust functions with `rpc:call`, `erpc:call`,
//! `rpc:cast`, `rpc:block_call`, `erpc:multicall` over a mixed cluster with a node down, the
//! exact `undef`/error/exit/throw shapes, timeouts, a crashing and a killed Rust process;
//! `erl_call` against the Rust node; and the Rust node calling BEAM nodes.
//!
//! The expected shapes are what two BEAM nodes give each other (checked on OTP 25).

mod common;

use std::time::Duration;

use common::*;
use erlnode::Node;
use erlnode::node::NodeConfig;
use erlnode::services::rpc::RpcError;
use erlnode::term::{Atom, Term};

const T: Duration = Duration::from_secs(20);

async fn rust_node(epmd: &Epmd, prefix: &str) -> Node {
    erlnode::services::start_node(NodeConfig::new(unique_name(prefix), DEFAULT_COOKIE).epmd_port(epmd.port()))
        .await
        .expect("rust node starts")
}

fn erl_atom(node: &Node) -> String {
    erlang_atom(node.name().as_str())
}

fn ex_atom(node: &Node) -> String {
    elixir_atom(node.name().as_str())
}

/// `try Expr catch C:E -> {C, E} end` with variable names not used before (shell bindings
/// persist between evaluations).
fn catching(expr: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("try {expr} catch C{n}:E{n} -> {{C{n}, E{n}}} end")
}

/// The Rust functions the tests call, registered under `test:*` and `metrics:snapshot/0`.
/// `test:notify/1` forwards its argument to the returned channel.
fn register_test_functions(node: &Node) -> tokio::sync::mpsc::UnboundedReceiver<Term> {
    let rpc = node.rpc();
    rpc.register_sync("metrics", "snapshot", 0, |_| {
        Ok(Term::List(vec![Term::Tuple(vec![Term::atom("requests"), Term::Int(42)])]))
    });
    rpc.register_sync("test", "fail_error", 0, |_| Err(RpcError::error(Term::atom("boom"))));
    rpc.register_sync("test", "fail_exit", 0, |_| Err(RpcError::exit(Term::atom("bye"))));
    rpc.register_sync("test", "fail_throw", 0, |_| Err(RpcError::throw(Term::atom("ball"))));
    rpc.register("test", "slow", 1, |args| async move {
        let ms = args.first().and_then(Term::as_int).unwrap_or(0).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Term::atom("done"))
    });
    rpc.register("test", "wait", 0, |_| async {
        std::future::pending::<()>().await;
        Ok(Term::nil())
    });
    rpc.register_sync("test", "crash", 0, |_| panic!("crashed on purpose"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    rpc.register_sync("test", "notify", 1, move |args| {
        let _ = tx.send(args.into_iter().next().unwrap_or_else(Term::nil));
        Ok(Term::atom("ok"))
    });
    rx
}

#[test]
fn beam_calls_rust_with_rpc_and_erpc() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let ex = BeamNode::start(&otp, &epmd, NodeOpts::elixir());
        let node = rust_node(&epmd, "rpcd").await;
        let mut notified = register_test_functions(&node);
        let r = erl_atom(&node);
        let ev = async |e: String| erl.eval_async(&e).await.unwrap();

        // built-ins, rpc and erpc, Erlang and Elixir
        assert_eq!(ev(format!("rpc:call({r}, erlang, node, [])")).await, r);
        assert_eq!(ev(format!("erpc:call({r}, erlang, node, [])")).await, r);
        let x = ex_atom(&node);
        assert_eq!(ex.eval_async(&format!(":rpc.call({x}, :erlang, :node, [])")).await.unwrap(), x);
        assert_eq!(ex.eval_async(&format!(":erpc.call({x}, :erlang, :node, [])")).await.unwrap(), x);
        assert_eq!(
            ex.eval_async(&format!(":erpc.call({x}, :metrics, :snapshot, [])")).await.unwrap(),
            "[requests: 42]"
        );
        assert_eq!(ev(format!("rpc:call({r}, erlang, system_info, [otp_release])")).await, "\"25\"");
        assert_eq!(
            ev(format!("rpc:call({r}, erlang, whereis, [rex]) =:= rpc:call({r}, erlang, whereis, [rex])")).await,
            "true"
        );
        assert_eq!(ev(format!("is_pid(rpc:call({r}, erlang, whereis, [net_kernel]))")).await, "true");
        let nodes = ev(format!("rpc:call({r}, erlang, nodes, [])")).await;
        assert!(nodes.contains(&erlang_atom(erl.name())), "{nodes}");

        // undef, exactly as BEAM reports it
        assert_eq!(
            ev(format!("rpc:call({r}, nomod, nofun, [1,2])")).await,
            "{badrpc,{'EXIT',{undef,[{nomod,nofun,[1,2],[]}]}}}"
        );
        assert_eq!(
            ev(catching(&format!("erpc:call({r}, nomod, nofun, [1,2])"))).await,
            "{error,{exception,undef,[{nomod,nofun,[1,2],[]}]}}"
        );
        // a known module, an unknown arity
        assert_eq!(
            ev(format!("rpc:call({r}, erlang, node, [x])")).await,
            "{badrpc,{'EXIT',{undef,[{erlang,node,[x],[]}]}}}"
        );

        // a Rust function that fails, in each class
        assert_eq!(
            ev(format!("rpc:call({r}, test, fail_error, [])")).await,
            "{badrpc,{'EXIT',{boom,[{test,fail_error,0,[]}]}}}"
        );
        assert_eq!(
            ev(catching(&format!("erpc:call({r}, test, fail_error, [])"))).await,
            "{error,{exception,boom,[{test,fail_error,0,[]}]}}"
        );
        assert_eq!(ev(format!("rpc:call({r}, test, fail_exit, [])")).await, "{badrpc,{'EXIT',bye}}");
        assert_eq!(ev(catching(&format!("erpc:call({r}, test, fail_exit, [])"))).await, "{exit,{exception,bye}}");
        assert_eq!(ev(format!("rpc:call({r}, test, fail_throw, [])")).await, "ball");
        assert_eq!(ev(catching(&format!("erpc:call({r}, test, fail_throw, [])"))).await, "{throw,ball}");
        assert_eq!(
            ev(format!("rpc:call({r}, erlang, system_info, [nonsense])")).await,
            "{badrpc,{'EXIT',{badarg,[{erlang,system_info,[nonsense],[]}]}}}"
        );

        // timeouts: the caller gives up, nothing is killed
        assert_eq!(ev(catching(&format!("erpc:call({r}, test, slow, [2000], 100)"))).await, "{error,{erpc,timeout}}");
        assert_eq!(ev(format!("rpc:call({r}, test, slow, [2000], 100)")).await, "{badrpc,timeout}");
        assert_eq!(ev(format!("rpc:call({r}, test, slow, [10], 5000)")).await, "done");

        // the Rust process crashes during the call
        assert_eq!(
            ev(format!("rpc:call({r}, test, crash, [])")).await,
            "{badrpc,{'EXIT',{panic,<<\"crashed on purpose\">>}}}"
        );
        assert_eq!(
            ev(catching(&format!("erpc:call({r}, test, crash, [])"))).await,
            "{exit,{signal,{panic,<<\"crashed on purpose\">>}}}"
        );
        // ... or is killed while it runs (a plain remote spawn, monitored, then killed)
        assert_eq!(
            ev(format!(
                "{{P, M}} = spawn_monitor({r}, test, wait, []), exit(P, kill), \
                 receive {{'DOWN', M, process, P, Why}} -> Why after 5000 -> timeout end"
            ))
            .await,
            "killed"
        );
        // a remote spawn of something that does not exist exits with undef
        assert_eq!(
            ev(format!(
                "{{P2, M2}} = spawn_monitor({r}, nomod, f, []), \
                 receive {{'DOWN', M2, process, P2, Why2}} -> Why2 after 5000 -> timeout end"
            ))
            .await,
            "{undef,[{nomod,f,[],[]}]}"
        );

        // rpc:cast and erpc:cast run the function without waiting
        assert_eq!(ev(format!("rpc:cast({r}, test, notify, [from_rpc_cast])")).await, "true");
        assert_eq!(tokio::time::timeout(T, notified.recv()).await.unwrap().unwrap(), Term::atom("from_rpc_cast"));
        assert_eq!(ex.eval_async(&format!(":erpc.cast({x}, :test, :notify, [:from_elixir])")).await.unwrap(), ":ok");
        assert_eq!(tokio::time::timeout(T, notified.recv()).await.unwrap().unwrap(), Term::atom("from_elixir"));

        // through rex: block_call, sbcast
        assert_eq!(ev(format!("rpc:block_call({r}, erlang, node, [])")).await, r);
        assert_eq!(
            ev(format!("rpc:block_call({r}, nomod, f, [])")).await,
            "{badrpc,{'EXIT',{undef,[{nomod,f,[],[]}]}}}"
        );
        assert_eq!(ev(format!("rpc:sbcast([{r}], no_such_name, hi)")).await, format!("{{[],[{r}]}}"));
        assert_eq!(ev(format!("rpc:sbcast([{r}], rex, hi)")).await, format!("{{[{r}],[]}}"));
        // what OTP 23/24 rpc:call sends: a gen_server call to rex
        assert_eq!(ev(format!("gen_server:call({{rex, {r}}}, {{call, erlang, node, [], user}}, 5000)")).await, r);
        assert_eq!(
            ev(format!("gen_server:call({{rex, {r}}}, {{call, test, fail_throw, [], user}}, 5000)")).await,
            "ball"
        );
        // features_request, as a BEAM node asks on connect
        assert_eq!(
            ev(format!("{{rex, {r}}} ! {{self(), features_request}}, receive {{features_reply, _, F}} -> F after 5000 -> timeout end")).await,
            "[erpc]"
        );
        // global:whereis_name answers from the Rust node's global name server
        let probe = node.spawn(|mut p: erlnode::Process| async move {
            p.receive().await;
            erlnode::node::normal()
        });
        assert!(erlnode::services::register_name(&node, &Atom::new("rpc_global_probe"), &probe).await);
        // (each attempt binds a fresh variable: shell bindings persist)
        let mut n = 0;
        let agreed = wait_until_async(T, async || {
            n += 1;
            let expr = format!(
                "P{n} = rpc:call({r}, global, whereis_name, [rpc_global_probe]), \
                 is_pid(P{n}) andalso P{n} =:= global:whereis_name(rpc_global_probe)"
            );
            erl.eval_async(&expr).await.unwrap() == "true"
        })
        .await;
        assert!(agreed, "global:whereis_name through rpc");
        assert_eq!(ev(format!("rpc:call({r}, global, whereis_name, [nobody_here])")).await, "undefined");

        // the Rust node is still well
        assert_eq!(ev(format!("rpc:call({r}, erlang, node, [])")).await, r);
    });
}

#[test]
fn multicall_over_a_mixed_cluster_and_rust_calling_beam() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let a = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let b = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "rpcm").await;
        register_test_functions(&node);
        let r = erl_atom(&node);
        let (ea, eb) = (erlang_atom(a.name()), erlang_atom(b.name()));
        let down = format!("nobody_{}@{}", std::process::id(), hostname_short());
        let down_atom = erlang_atom(&down);

        // BEAM: one call to each of Rust, BEAM, and a node that is down
        assert_eq!(
            a.eval_async(&format!("erpc:multicall([{r}, {eb}, {down_atom}], erlang, node, [])")).await.unwrap(),
            format!("[{{ok,{r}}},{{ok,{eb}}},{{error,{{erpc,noconnection}}}}]")
        );
        assert_eq!(
            a.eval_async(&format!("rpc:multicall([{r}, {eb}, {down_atom}], erlang, node, [])")).await.unwrap(),
            format!("{{[{r},{eb}],[{down_atom}]}}")
        );
        assert_eq!(
            a.eval_async(&format!("erpc:multicall([{r}, {eb}], test, fail_throw, [])")).await.unwrap(),
            "[{throw,ball},{error,{exception,undef,[{test,fail_throw,[],[]}]}}]"
        );

        // Rust calling BEAM
        let (an, bn, dn) = (Atom::new(a.name()), Atom::new(b.name()), Atom::new(&down));
        let rev =
            node.rpc_call(&an, "lists", "reverse", vec![Term::List(vec![Term::Int(1), Term::Int(2)])], Some(T)).await;
        assert_eq!(rev, Ok(Term::List(vec![Term::Int(2), Term::Int(1)])));
        let undef = node.rpc_call(&an, "nomod", "nofun", vec![Term::Int(1)], Some(T)).await.unwrap_err();
        assert_eq!(undef.rpc_result().to_string(), "{badrpc,{'EXIT',{undef,[{nomod,nofun,[1],[]}]}}}");
        let err = node.rpc_call(&an, "erlang", "error", vec![Term::atom("boom")], Some(T)).await.unwrap_err();
        assert_eq!(err.erpc_exception().1.to_string(), "{exception,boom,[{erlang,error,[boom],[]}]}");
        let exit = node.rpc_call(&an, "erlang", "exit", vec![Term::atom("bye")], Some(T)).await;
        assert_eq!(exit, Err(RpcError::Exit(Term::atom("bye"))));
        let throw = node.rpc_call(&an, "erlang", "throw", vec![Term::atom("ball")], Some(T)).await;
        assert_eq!(throw, Err(RpcError::Throw(Term::atom("ball"))));
        let slow = node.rpc_call(&an, "timer", "sleep", vec![Term::Int(3000)], Some(Duration::from_millis(100))).await;
        assert_eq!(slow, Err(RpcError::timeout()));
        // the remote function prints: we are its group leader, and we answer
        let printed = node.rpc_call(&an, "io", "format", vec![Term::charlist("hello~n")], Some(T)).await;
        assert_eq!(printed, Ok(Term::atom("ok")));
        assert_eq!(node.rpc_call(&dn, "erlang", "node", vec![], Some(T)).await, Err(RpcError::noconnection()));

        let all =
            node.multicall(&[an.clone(), bn.clone(), dn, node.name().clone()], "erlang", "node", vec![], Some(T)).await;
        let shapes: Vec<String> = all.into_iter().map(|r| erlnode::services::rpc::rpcify(r).to_string()).collect();
        assert_eq!(
            shapes,
            vec![
                a.name().to_string(),
                b.name().to_string(),
                "{badrpc,nodedown}".to_string(),
                node.name().as_str().to_string()
            ]
        );

        // rpc_cast to BEAM
        node.rpc_cast(
            &bn,
            "application",
            "set_env",
            vec![Term::atom("kernel"), Term::atom("rpc_cast_probe"), Term::Int(42)],
        )
        .await;
        let seen = wait_until_async(T, async || {
            b.eval_async("application:get_env(kernel, rpc_cast_probe)").await.unwrap() == "{ok,42}"
        })
        .await;
        assert!(seen, "the cast ran on {}", b.name());
        let _ = ea;
    });
}

/// Runs erl_call from the harness's OTP against the Rust node (`-timeout`: erl_call gives
/// up by itself); returns (success, stdout, stderr).
///
/// Each call gets its own client node name (`-h`). Without one, erl_call is always `c17`, so
/// a call made right after another can find the node still holding the previous call's
/// connection from `c17` (its close not yet read) and is refused; a BEAM node refuses it the
/// same way (checked by hand: with a `c17` connection up, erl_call fails against both).
async fn erl_call(
    otp: &Otp,
    epmd: &Epmd,
    alive: &str,
    cookie: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let me = format!("ec{}_{}", std::process::id(), CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut cmd = std::process::Command::new(otp.tool("erl_call"));
    cmd.args(["-timeout", "20", "-h", &me, "-sname", alive, "-c", cookie])
        .args(args)
        .env("ERL_EPMD_PORT", epmd.port().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let input = stdin.map(str::to_string);
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd.spawn().expect("erl_call runs");
        let mut w = child.stdin.take().expect("stdin");
        if let Some(input) = input {
            w.write_all(input.as_bytes()).expect("write stdin");
        }
        drop(w);
        child.wait_with_output().expect("erl_call output")
    })
    .await
    .expect("erl_call task");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn erl_call_against_the_rust_node() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let node = rust_node(&epmd, "rpce").await;
        register_test_functions(&node);
        let alive = node.name().as_str().split('@').next().unwrap().to_string();

        let (ok, out, err) = erl_call(&otp, &epmd, &alive, DEFAULT_COOKIE, &["-a", "erlang node"], None).await;
        assert!(ok, "erl_call -a failed: {err}");
        assert_eq!(out, node.name().as_str());

        let (ok, out, err) = erl_call(&otp, &epmd, &alive, DEFAULT_COOKIE, &["-a", "metrics snapshot"], None).await;
        assert!(ok, "{err}");
        assert_eq!(out.replace(' ', ""), "[{requests,42}]");

        let (ok, out, err) = erl_call(&otp, &epmd, &alive, DEFAULT_COOKIE, &["-a", "nomod f [1]"], None).await;
        assert!(ok, "erl_call -a nomod failed: {err} (output: {out})");
        assert!(out.replace(' ', "").starts_with("{badrpc,{'EXIT',{undef,[{nomod,f,"), "{out}");

        let (ok, out, err) = erl_call(&otp, &epmd, &alive, DEFAULT_COOKIE, &["-e"], Some("X = 1 + 2, X * 2.\n")).await;
        assert!(ok, "{err}");
        assert!(out.starts_with("{error,"), "{out}");
        assert!(out.contains("cannot evaluate Erlang"), "{out}");

        let (ok, out, err) = erl_call(&otp, &epmd, &alive, "wrong_cookie", &["-a", "erlang node"], None).await;
        assert!(!ok, "a wrong cookie must fail: {out}");
        assert!(err.contains("failed to connect"), "{err}");
        // and the node is still fine
        let (ok, out, err) = erl_call(&otp, &epmd, &alive, DEFAULT_COOKIE, &["-a", "erlang node"], None).await;
        assert!(ok, "erl_call -a after the wrong cookie failed: {err} (output: {out})");
        assert_eq!(out, node.name().as_str());
    });
}

/// Runs the `erlnode` binary; returns (success, stdout, stderr).
async fn erlnode_cli(epmd: &Epmd, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_erlnode"));
    cmd.args(["--cookie", DEFAULT_COOKIE]).args(args).env("ERL_EPMD_PORT", epmd.port().to_string());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("erlnode runs")).await.expect("cli task");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn erlnode_rpc_command() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let ex = BeamNode::start(&otp, &epmd, NodeOpts::elixir());
        let node = rust_node(&epmd, "rpcc").await;
        register_test_functions(&node);

        let (ok, out, err) = erlnode_cli(&epmd, &["rpc", erl.name(), "lists", "reverse", "[[1, 2, 3]]"]).await;
        assert!(ok, "{err}");
        assert_eq!(out, "[3,2,1]");
        let (ok, out, err) = erlnode_cli(&epmd, &["rpc", ex.name(), "Enum", "reverse", "[[1, 2]]", "--elixir"]).await;
        assert!(ok, "{err}");
        assert_eq!(out, "[2, 1]");
        let (ok, out, err) = erlnode_cli(&epmd, &["rpc", ex.name(), ":erlang", "node", "--elixir"]).await;
        assert!(ok, "{err}");
        assert_eq!(out, elixir_atom(ex.name()));
        // the Rust node's own functions, through the same path
        let (ok, out, err) = erlnode_cli(&epmd, &["rpc", node.name().as_str(), "metrics", "snapshot"]).await;
        assert!(ok, "{err}");
        assert_eq!(out, "[{requests,42}]");
        // failures: a nonzero status and the exception erpc raises
        let (ok, _, err) = erlnode_cli(&epmd, &["rpc", erl.name(), "nomod", "f", "[1]"]).await;
        assert!(!ok);
        assert!(err.contains("rpc failed: error:{exception,undef,[{nomod,f,[1],[]}]}"), "{err}");
        let (ok, _, err) =
            erlnode_cli(&epmd, &["rpc", erl.name(), "timer", "sleep", "[5000]", "--timeout", "100"]).await;
        assert!(!ok);
        assert!(err.contains("{erpc,timeout}"), "{err}");
    });
}

#[test]
fn rust_calls_rust() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let server = rust_node(&epmd, "rpcs").await;
        register_test_functions(&server);
        let client = rust_node(&epmd, "rpcr").await;
        let s = server.name().clone();
        let baseline = client.process_count();
        assert_eq!(client.rpc_call(&s, "erlang", "node", vec![], Some(T)).await, Ok(Term::Atom(s.clone())));
        let undef = client.rpc_call(&s, "nomod", "f", vec![Term::Int(1)], Some(T)).await.unwrap_err();
        assert_eq!(undef.rpc_result().to_string(), "{badrpc,{'EXIT',{undef,[{nomod,f,[1],[]}]}}}");
        let err = client.rpc_call(&s, "test", "fail_error", vec![], Some(T)).await.unwrap_err();
        assert_eq!(err.erpc_exception().1.to_string(), "{exception,boom,[{test,fail_error,0,[]}]}");
        let slow = client.rpc_call(&s, "test", "slow", vec![Term::Int(2000)], Some(Duration::from_millis(50))).await;
        assert_eq!(slow, Err(RpcError::timeout()));
        let crash = client.rpc_call(&s, "test", "crash", vec![], Some(T)).await.unwrap_err();
        assert_eq!(crash.rpc_result().to_string(), "{badrpc,{'EXIT',{panic,<<\"crashed on purpose\">>}}}");
        // and through rex, as for a peer without SPAWN
        let via_rex = erlnode::services::rex::call(&client, &s, "metrics", "snapshot", vec![], Some(T)).await;
        assert_eq!(via_rex.unwrap().to_string(), "[{requests,42}]");
        // the calling processes are gone: nothing leaks per call
        assert!(
            wait_until_async(T, async || client.process_count() == baseline).await,
            "{} processes",
            client.process_count()
        );
    });
}
