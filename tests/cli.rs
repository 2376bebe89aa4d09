//! The `erlnode` command as a person uses it: `serve` next to real BEAM nodes, the one-shot
//! subcommands, `term`, and the errors (one clear line, non-zero exit).

mod common;
#[path = "common/served.rs"]
mod served;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use served::{Served, erlnode};

const T: Duration = Duration::from_secs(20);

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("erlnode runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

#[test]
fn serve_answers_iex_and_the_one_shot_commands() {
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let ex = BeamNode::start(otp, &epmd, NodeOpts::elixir());
        let mut zed = Served::start(epmd.port(), &[]);
        let z = elixir_atom(&zed.name);

        // iex talks to the Rust servers by {name, node}
        assert_eq!(ex.eval(&format!("Node.ping({z})")).unwrap(), ":pong");
        assert!(ex.eval("Node.list()").unwrap().contains(&z));
        assert_eq!(ex.eval(&format!("GenServer.call({{:kv1, {z}}}, {{:set, :foo, 123}})")).unwrap(), "true");
        assert_eq!(ex.eval(&format!("GenServer.call({{:kv1, {z}}}, {{:get, :foo}})")).unwrap(), "123");
        assert_eq!(ex.eval(&format!("GenServer.call({{:ps1, {z}}}, {{:subscribe, :t}})")).unwrap(), "true");

        // one-shot commands against it
        let cookie = ["--cookie", DEFAULT_COOKIE];
        let o = run(erlnode(epmd.port()).args(cookie).args(["ping", &zed.name]));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "pong");
        let kv = format!("{{kv1, '{}'}}", zed.name);
        let o = run(erlnode(epmd.port()).args(cookie).args(["call", &kv, "{get, foo}"]));
        assert_eq!((stdout(&o).as_str(), o.status.success()), ("123", true), "{}", stderr(&o));
        let o = run(erlnode(epmd.port()).args(cookie).args(["--elixir", "call", &format!("{{:kv1, {z}}}"), ":keys"]));
        assert_eq!(stdout(&o), "[:foo]", "{}", stderr(&o));
        let o = run(erlnode(epmd.port()).args(cookie).args(["cast", &kv, "{set, bar, 1}"]));
        assert!(o.status.success(), "{}", stderr(&o));
        let o = run(erlnode(epmd.port()).args(cookie).args(["call", &kv, "{get, bar}"]));
        assert_eq!(stdout(&o), "1");
        // send: a message to a process registered on the Elixir node
        ex.eval("Process.register(self(), :inbox)").unwrap();
        let inbox = format!("{{inbox, '{}'}}", ex.name());
        let o = run(erlnode(epmd.port()).args(cookie).args(["send", &inbox, "{msg, yo}"]));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(ex.eval("receive do m -> m after 5000 -> :timeout end").unwrap(), "{:msg, :yo}");
        // names lists what EPMD knows
        let o = run(erlnode(epmd.port()).args(["names"]));
        let alive = zed.name.split('@').next().unwrap().to_string();
        assert!(stdout(&o).contains(&format!("name {alive} at port")), "{}", stdout(&o));

        // the PubSub subscriber's node dies: the DOWN line, with :noconnection
        let sub_pid = ex.eval("self()").unwrap();
        let _ = sub_pid;
        ex.kill();
        assert!(wait_until(T, || zed.has_line("for reason :noconnection")), "no DOWN line: {:?}", zed.lines());
        assert!(zed.lines().iter().any(|l| l.contains("DOWN #PID<") && l.contains(ex.name())));

        // SIGTERM: a clean exit
        let st = zed.stop();
        assert!(st.success(), "serve exit status {st:?}");
        assert!(zed.has_line("shutting down"));
    });
}

#[test]
fn serve_with_idle_naps_answers_every_call() {
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        // idle threads sleep 20 µs between looks instead of spinning: every call still gets
        // its answer, each get the value the set before it stored
        let zed = Served::start(epmd.port(), &["--kv", "store", "--idle-nap-us", "20"]);
        let erl = BeamNode::start(otp, &epmd, NodeOpts::erlang());
        let z = erlang_atom(&zed.name);
        let calls = format!(
            "lists:foldl(fun(I, ok) -> true = gen_server:call({{store, {z}}}, {{set, k, I}}), \
             I = gen_server:call({{store, {z}}}, {{get, k}}), ok end, ok, lists:seq(1, 500))"
        );
        assert_eq!(erl.eval(&calls).unwrap(), "ok");
    });
}

#[test]
fn serve_answers_sixteen_callers_at_once_while_it_naps() {
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        // 16 callers at once are more than spin::BUSY_CALLERS: idle threads nap 20 µs between
        // looks (the default --busy-nap-us), and every caller still gets its own answers
        let zed = Served::start(epmd.port(), &["--kv", "store", "--busy-nap-us", "20"]);
        let erl = BeamNode::start(otp, &epmd, NodeOpts::erlang());
        let z = erlang_atom(&zed.name);
        let calls = format!(
            "Self = self(), \
             Run = fun(K) -> lists:foldl(fun(I, ok) -> true = gen_server:call({{store, {z}}}, {{set, K, I}}), \
                 I = gen_server:call({{store, {z}}}, {{get, K}}), ok end, ok, lists:seq(1, 300)) end, \
             [spawn(fun() -> Self ! {{done, K, Run(K)}} end) || K <- lists:seq(1, 16)], \
             lists:usort([receive {{done, K, R}} -> R after 60000 -> {{timeout, K}} end || K <- lists:seq(1, 16)])"
        );
        assert_eq!(erl.eval(&calls).unwrap(), "[ok]");
    });
}

#[test]
fn serve_without_any_epmd_embeds_one_that_erl_can_use() {
    for_each_otp(|otp| {
        let port = free_port().unwrap();
        // on a single-threaded runtime: the embedded EPMD, the node and the KV share one thread
        let zed = Served::start(port, &["--kv", "store", "--threads", "1"]);
        // a real erl node registers with the embedded EPMD and calls the Rust KV
        let fake_epmd = Epmd::at_port(otp, port);
        let erl = BeamNode::start(otp, &fake_epmd, NodeOpts::erlang());
        let z = erlang_atom(&zed.name);
        assert_eq!(erl.eval(&format!("gen_server:call({{store, {z}}}, {{set, k, v}})")).unwrap(), "true");
        assert_eq!(erl.eval(&format!("gen_server:call({{store, {z}}}, {{get, k}})")).unwrap(), "v");
        let o = run(erlnode(port).args(["names"]));
        assert!(stdout(&o).contains(&format!("name {} at port", erl.alive_name())), "{}", stdout(&o));
    });
}

#[test]
fn one_shot_errors_are_one_clear_line_and_a_failure_status() {
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let erl = BeamNode::start(otp, &epmd, NodeOpts::erlang());
        let cookie = ["--cookie", DEFAULT_COOKIE];
        let host = hostname_short();
        let cases: Vec<(Vec<String>, &str)> = vec![
            (vec!["ping".into(), format!("nobody@{host}")], "did not answer"),
            (vec!["call".into(), format!("{{kv1, 'nobody@{host}'}}"), "x".into()], "cannot connect"),
            (vec!["call".into(), format!("{{nothere, '{}'}}", erl.name()), "x".into()], "noproc"),
            (vec!["call".into(), "{kv1, foo".into(), "x".into()], "malformed term literal"),
        ];
        for (args, needle) in cases {
            let o = run(erlnode(epmd.port()).args(cookie).args(&args));
            assert!(!o.status.success(), "{args:?} should fail");
            let err = stderr(&o);
            let last = err.lines().last().unwrap_or_default();
            assert!(last.starts_with("erlnode: ") && last.contains(needle), "{args:?}: {err}");
        }
        // a wrong cookie
        let o = run(erlnode(epmd.port()).args(["--cookie", "WRONG", "ping", erl.name()]));
        assert!(!o.status.success());
        assert_eq!(stdout(&o), "pang");
        // a timeout: a process that never answers
        erl.eval("register(mute, spawn(fun() -> receive after infinity -> ok end end))").unwrap();
        let o = run(erlnode(epmd.port()).args(cookie).args([
            "call",
            "--timeout",
            "200",
            &format!("{{mute, '{}'}}", erl.name()),
            "x",
        ]));
        assert!(!o.status.success());
        assert!(stderr(&o).contains("timeout"), "{}", stderr(&o));
    });
}

/// A TERM starting with `-` is a term, not an option (`erlnode term encode -1`), and a term
/// nested 500 deep that `term decode` prints reads back to the same bytes.
#[test]
fn negative_and_deeply_nested_terms() {
    let enc = run(Command::new(env!("CARGO_BIN_EXE_erlnode")).args(["term", "encode", "-1"]));
    assert!(enc.status.success(), "{}", stderr(&enc));
    assert_eq!(enc.stdout, vec![131, 98, 255, 255, 255, 255]);
    let enc = run(Command::new(env!("CARGO_BIN_EXE_erlnode")).args(["term", "encode", "-1.5e3", "--compressed"]));
    assert!(enc.status.success(), "{}", stderr(&enc));
    let deep = (0..500).fold(erlnode::Term::Int(1), |t, _| erlnode::Term::List(vec![t]));
    let bytes = erlnode::term::encode(&deep);
    let f = std::env::temp_dir().join(format!("{}.etf", unique_name("deep")));
    std::fs::write(&f, &bytes).unwrap();
    let dec = run(Command::new(env!("CARGO_BIN_EXE_erlnode")).args(["term", "decode", f.to_str().unwrap()]));
    let _ = std::fs::remove_file(&f);
    assert!(dec.status.success(), "{}", stderr(&dec));
    let again = run(Command::new(env!("CARGO_BIN_EXE_erlnode")).args(["term", "encode", &stdout(&dec)]));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(again.stdout, bytes);
}

#[test]
fn term_encode_and_decode_round_trip() {
    let enc = run(Command::new(env!("CARGO_BIN_EXE_erlnode")).args(["term", "encode", "{set, foo, 123}"]));
    assert!(enc.status.success());
    assert_eq!(enc.stdout, vec![131, 104, 3, 119, 3, 115, 101, 116, 119, 3, 102, 111, 111, 97, 123]);
    for (text, elixir) in [
        ("{set,foo,123}", "{:set, :foo, 123}"),
        ("#{a => [1,2|3],<<\"k\">> => 1.5}", "%{:a => [1, 2 | 3], \"k\" => 1.5}"),
    ] {
        let enc = run(Command::new(env!("CARGO_BIN_EXE_erlnode")).args(["term", "encode", text]));
        let mut dec = Command::new(env!("CARGO_BIN_EXE_erlnode"))
            .args(["term", "decode", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        dec.stdin.take().unwrap().write_all(&enc.stdout).unwrap();
        let out = dec.wait_with_output().unwrap();
        assert_eq!(stdout(&out), text);
        // and back: encode "$(decode f.etf)" gives the same bytes
        let again = run(Command::new(env!("CARGO_BIN_EXE_erlnode")).args(["term", "encode", &stdout(&out)]));
        assert_eq!(again.stdout, enc.stdout);
        let f = std::env::temp_dir().join(format!("{}.etf", unique_name("t")));
        std::fs::write(&f, &enc.stdout).unwrap();
        let ex =
            run(Command::new(env!("CARGO_BIN_EXE_erlnode")).args(["term", "decode", "--elixir", f.to_str().unwrap()]));
        assert_eq!(stdout(&ex), elixir);
        let _ = std::fs::remove_file(f);
    }
    let bad = run(Command::new(env!("CARGO_BIN_EXE_erlnode")).args(["term", "decode", "-"]).stdin(Stdio::null()));
    assert!(!bad.status.success());
    assert!(stderr(&bad).starts_with("erlnode: not a valid term"), "{}", stderr(&bad));
}

#[test]
fn readme_walkthrough_with_serve_connecting_to_foo() {
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let foo = BeamNode::start(otp, &epmd, NodeOpts::elixir().prefix("foo"));
        foo.eval("{:ok, _} = Agent.start(fn -> 42 end, name: {:global, :agent1})").unwrap();
        let zed = Served::start(epmd.port(), &["--connect", foo.name()]);
        let bar = BeamNode::start(otp, &epmd, NodeOpts::elixir().prefix("bar"));
        assert_eq!(bar.eval(&format!("Node.connect({})", elixir_atom(foo.name()))).unwrap(), "true");
        let z = elixir_atom(&zed.name);
        assert!(wait_until(T, || bar.eval("Node.list()").unwrap_or_default().contains(&z)), "bar does not list zed");
        assert!(wait_until(T, || bar.eval(":global.registered_names() |> Enum.sort()").as_deref()
            == Ok("[:agent1, :kv1, :ps1]")));
        assert_eq!(bar.eval("GenServer.call({:global, :kv1}, {:set, :foo, 123})").unwrap(), "true");
        assert_eq!(bar.eval("GenServer.call({:global, :kv1}, {:get, :foo})").unwrap(), "123");
        assert_eq!(bar.eval("GenServer.call({:global, :ps1}, {:subscribe, :topic1})").unwrap(), "true");
        // from a shell, through a cluster member
        let o = run(erlnode(epmd.port()).args([
            "--cookie",
            DEFAULT_COOKIE,
            "call",
            "--connect",
            foo.name(),
            "{global, kv1}",
            "{get, foo}",
        ]));
        assert_eq!(stdout(&o), "123", "{}", stderr(&o));
        bar.kill();
        assert!(wait_until(T, || zed.has_line("for reason :noconnection")), "{:?}", zed.lines());
    });
}
