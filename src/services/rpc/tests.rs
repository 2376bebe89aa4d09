//! The registry, the built-ins and the shape mappings, without a network. The shapes asserted
//! here are the ones two OTP 25 nodes produce (checked with `rpc:call`/`erpc:call` between two
//! real BEAM nodes; the interop tests check them against the Rust node).

use std::time::Duration;

use super::*;
use crate::node::SpawnOpts;

fn node() -> Node {
    Node::new_local(Atom::new("r@localhost"), 1)
}

fn a(s: &str) -> Term {
    Term::atom(s)
}

fn t(v: Vec<Term>) -> Term {
    Term::Tuple(v)
}

fn badrpc_exit(r: Term) -> Term {
    t(vec![a("badrpc"), t(vec![a("EXIT"), r])])
}

#[tokio::test]
async fn undef_has_beams_shape() {
    let n = node();
    let err = apply(&n, &Atom::new("nomod"), &Atom::new("nofun"), vec![Term::Int(1), Term::Int(2)]).await.unwrap_err();
    let frame = t(vec![a("nomod"), a("nofun"), Term::List(vec![Term::Int(1), Term::Int(2)]), Term::nil()]);
    // rpc:call(B, nomod, nofun, [1,2]) on OTP 25
    assert_eq!(err.rpc_result(), badrpc_exit(t(vec![a("undef"), Term::List(vec![frame.clone()])])));
    // erpc:call raises error:{exception, undef, [{nomod,nofun,[1,2],[]}]}
    assert_eq!(
        err.erpc_exception(),
        (Atom::new("error"), t(vec![a("exception"), a("undef"), Term::List(vec![frame])]))
    );
}

#[tokio::test]
async fn handler_errors_map_to_the_three_classes() {
    let n = node();
    n.rpc().register_sync("m", "err", 1, |args| Err(RpcError::error(args[0].clone())));
    n.rpc().register_sync("m", "exit", 0, |_| Err(RpcError::exit(a("bye"))));
    n.rpc().register_sync("m", "throw", 0, |_| Err(RpcError::throw(a("ball"))));
    n.rpc().register("m", "add", 2, |args| async move {
        tokio::task::yield_now().await;
        Ok(Term::Int(args[0].as_int().unwrap_or(0) + args[1].as_int().unwrap_or(0)))
    });
    let call = |f: &str, args: Vec<Term>| {
        let n = n.clone();
        let f = Atom::new(f);
        async move { apply(&n, &Atom::new("m"), &f, args).await }
    };
    assert_eq!(call("add", vec![Term::Int(2), Term::Int(3)]).await, Ok(Term::Int(5)));
    let err = call("err", vec![a("boom")]).await.unwrap_err();
    let frame = t(vec![a("m"), a("err"), Term::Int(1), Term::nil()]);
    assert_eq!(err, RpcError::Error { reason: a("boom"), stack: vec![frame.clone()] });
    assert_eq!(err.rpc_result(), badrpc_exit(t(vec![a("boom"), Term::List(vec![frame])])));
    let exit = call("exit", vec![]).await.unwrap_err();
    assert_eq!(exit.rpc_result(), badrpc_exit(a("bye")));
    assert_eq!(exit.erpc_exception(), (Atom::new("exit"), t(vec![a("exception"), a("bye")])));
    let throw = call("throw", vec![]).await.unwrap_err();
    assert_eq!(throw.rpc_result(), a("ball"), "rpc:call returns a thrown value");
    assert_eq!(throw.erpc_exception(), (Atom::new("throw"), a("ball")));
    // the arity is part of the key
    assert!(matches!(call("add", vec![]).await, Err(RpcError::Error { reason, .. }) if reason == a("undef")));
    assert!(n.rpc().unregister("m", "add", 2));
    assert!(!n.rpc().is_registered("m", "add", 2));
}

#[test]
fn erpc_reasons_map_like_rpcify_exception() {
    assert_eq!(RpcError::noconnection().rpc_result(), t(vec![a("badrpc"), a("nodedown")]));
    assert_eq!(RpcError::timeout().rpc_result(), t(vec![a("badrpc"), a("timeout")]));
    assert_eq!(RpcError::Erpc(a("notsup")).rpc_result(), t(vec![a("badrpc"), a("notsup")]));
    assert_eq!(RpcError::Erpc(a("system_limit")).rpc_result(), badrpc_exit(a("system_limit")));
    assert_eq!(RpcError::Signal(a("killed")).rpc_result(), badrpc_exit(a("killed")));
    assert_eq!(RpcError::Signal(a("killed")).erpc_exception().1, t(vec![a("signal"), a("killed")]));
    assert_eq!(rpcify(Ok(t(vec![a("EXIT"), a("x")]))), t(vec![a("badrpc"), t(vec![a("EXIT"), a("x")])]));
}

#[test]
fn execute_call_reasons_read_back() {
    let res = Term::Ref(node().make_ref());
    let cases = vec![
        RpcError::error(a("boom")).with_frame(&Atom::new("m"), &Atom::new("f"), 0),
        RpcError::exit(a("bye")),
        RpcError::throw(a("ball")),
        RpcError::Erpc(a("badarg")),
    ];
    for e in cases {
        let reason = e.clone().execute_call_reason(res.clone());
        assert_eq!(RpcError::from_down(&res, reason), Err(e));
    }
    let ok = t(vec![res.clone(), a("return"), Term::Int(7)]);
    assert_eq!(RpcError::from_down(&res, ok), Ok(Term::Int(7)));
    // another reference, or a plain reason: a signal, as erpc reports it
    let other = Term::Ref(node().make_ref());
    let foreign = t(vec![other, a("return"), Term::Int(7)]);
    assert_eq!(RpcError::from_down(&res, foreign.clone()), Err(RpcError::Signal(foreign)));
    assert_eq!(RpcError::from_down(&res, a("noconnection")), Err(RpcError::noconnection()));
}

#[tokio::test]
async fn builtins() {
    let n = node();
    let call = |m: &str, f: &str, args: Vec<Term>| {
        let (n, m, f) = (n.clone(), Atom::new(m), Atom::new(f));
        async move { apply(&n, &m, &f, args).await }
    };
    assert_eq!(call("erlang", "node", vec![]).await, Ok(a("r@localhost")));
    assert_eq!(call("erlang", "nodes", vec![]).await, Ok(Term::nil()));
    assert_eq!(call("erlang", "nodes", vec![a("this")]).await, Ok(Term::List(vec![a("r@localhost")])));
    assert_eq!(call("erlang", "is_alive", vec![]).await, Ok(a("false")));
    assert_eq!(call("erlang", "system_info", vec![a("otp_release")]).await, Ok(Term::charlist(builtins::OTP_RELEASE)));
    assert_eq!(call("erlang", "system_info", vec![a("machine")]).await, Ok(Term::charlist("erlnode")));
    let bad = call("erlang", "system_info", vec![a("nonsense")]).await.unwrap_err();
    let frame = t(vec![a("erlang"), a("system_info"), Term::List(vec![a("nonsense")]), Term::nil()]);
    assert_eq!(bad, RpcError::Error { reason: a("badarg"), stack: vec![frame] });
    assert_eq!(call("erlang", "whereis", vec![a("nobody")]).await, Ok(a("undefined")));
    let pid = n.spawn(|mut p| async move {
        p.receive().await;
        crate::node::normal()
    });
    assert!(n.register(Atom::new("someone"), &pid));
    assert_eq!(call("erlang", "whereis", vec![a("someone")]).await, Ok(Term::Pid(pid.clone())));
    assert_eq!(call("global", "whereis_name", vec![a("someone")]).await, Ok(Term::Pid(pid)));
    assert_eq!(call("erlang", "registered", vec![]).await, Ok(Term::List(vec![a("someone")])));
    // erlang:apply/3 reaches the registry
    let via_apply = call("erlang", "apply", vec![a("erlang"), a("node"), Term::nil()]).await;
    assert_eq!(via_apply, Ok(a("r@localhost")));
    // erl_call -e: a clear error, not a hang
    let eval = call("erl_eval", "eval_str", vec![Term::binary("1 + 2.\n")]).await.unwrap();
    assert!(matches!(eval.as_tuple(), Some([e, Term::List(_)]) if e.is_atom("error")), "{eval}");
}

#[tokio::test]
async fn calling_this_node_runs_locally_with_a_timeout() {
    let n = node();
    n.rpc().register("m", "slow", 0, |_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(Term::nil())
    });
    let me = n.name().clone();
    assert_eq!(n.rpc_call(&me, "erlang", "node", vec![], None).await, Ok(Term::Atom(me.clone())));
    let slow = n.rpc_call(&me, "m", "slow", vec![], Some(Duration::from_millis(20))).await;
    assert_eq!(slow, Err(RpcError::timeout()));
    // a node that is not distributed cannot reach anyone
    let other = Atom::new("x@localhost");
    assert_eq!(n.rpc_call(&other, "erlang", "node", vec![], None).await, Err(RpcError::noconnection()));
    let all = n.multicall(&[me.clone(), other], "erlang", "node", vec![], None).await;
    assert_eq!(all, vec![Ok(Term::Atom(me)), Err(RpcError::noconnection())]);
}

#[test]
fn spawn_options() {
    let parse = |t: Term| SpawnOpts::parse(&t);
    assert_eq!(parse(Term::nil()), Some(SpawnOpts::default()));
    assert_eq!(parse(Term::List(vec![a("monitor")])), Some(SpawnOpts { link: false, monitor: true }));
    assert_eq!(parse(Term::List(vec![a("link"), a("monitor")])), Some(SpawnOpts { link: true, monitor: true }));
    let mon_opts = t(vec![a("monitor"), Term::List(vec![t(vec![a("alias"), a("demonitor")])])]);
    assert_eq!(parse(Term::List(vec![mon_opts])), Some(SpawnOpts { link: false, monitor: true }));
    assert_eq!(parse(Term::List(vec![t(vec![a("priority"), a("high")])])), Some(SpawnOpts::default()));
    assert_eq!(parse(Term::List(vec![a("bogus")])), None);
    assert_eq!(parse(a("monitor")), None);
    let o = SpawnOpts { link: true, monitor: true };
    assert_eq!(SpawnOpts::parse(&o.to_term()), Some(o));
}
