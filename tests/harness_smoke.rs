//! Proves the interop harness (tests/common) against every configured OTP version: real EPMDs,
//! `erl` and `elixir` nodes that connect to each other, the eval control channel, log capture
//! and SIGKILL with the survivor noticing.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

#[test]
fn erl_and_elixir_nodes_connect_and_see_each_other_go_down() {
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let erl = BeamNode::start(otp, &epmd, NodeOpts::erlang().prefix("smoke_erl"));
        let ex =
            BeamNode::start(otp, &epmd, NodeOpts::elixir().prefix("smoke_ex").args(["-kernel", "net_ticktime", "4"]));

        // Names are what `-sname` makes of this host, and both are registered in our EPMD.
        let host = hostname_short();
        assert!(erl.name().ends_with(&format!("@{host}")), "{}", erl.name());
        assert_eq!(erl.eval("node()").unwrap(), erlang_atom(erl.name()));
        assert_eq!(ex.eval("Node.self()").unwrap(), elixir_atom(ex.name()));
        let names = epmd.names().unwrap();
        assert!(names.contains(&format!("name {} at port", erl.alive_name())), "{names}");
        assert!(names.contains(&format!("name {} at port", ex.alive_name())), "{names}");

        // Both nodes really run the OTP version under test.
        let release = format!("\"{}\"", otp.version());
        assert_eq!(erl.eval("erlang:system_info(otp_release)").unwrap(), release);
        assert_eq!(ex.eval("System.otp_release()").unwrap(), release);
        assert_eq!(ex.eval(":net_kernel.get_net_ticktime()").unwrap(), "4");

        // Round trips keep bindings, as in a shell.
        assert_eq!(erl.eval("X = 6 * 7.").unwrap(), "42");
        assert_eq!(erl.eval("{X + 1, <<\"é\"/utf8>>, [a, \"b\"]}").unwrap(), "{43,<<\"é\"/utf8>>,[a,\"b\"]}");
        assert_eq!(ex.eval("x = [1, :two, \"three\"]").unwrap(), r#"[1, :two, "three"]"#);
        assert_eq!(ex.eval("{length(x), %{a: 1}}").unwrap(), "{3, %{a: 1}}");

        // Connect from the Elixir side; both see each other.
        assert_eq!(ex.eval(&format!("Node.connect({})", elixir_atom(erl.name()))).unwrap(), "true");
        let erl_sees = format!("[{}]", erlang_atom(ex.name()));
        assert!(wait_until(T, || erl.eval("nodes()").as_deref() == Ok(erl_sees.as_str())));
        let ex_sees = format!("[{}]", elixir_atom(erl.name()));
        assert!(wait_until(T, || ex.eval("Node.list()").as_deref() == Ok(ex_sees.as_str())));
        // Messages flow: a remote call through rpc.
        assert_eq!(
            ex.eval(&format!(":rpc.call({}, :erlang, :node, [])", elixir_atom(erl.name()))).unwrap(),
            elixir_atom(erl.name())
        );

        // A watcher on the Elixir node prints what it sees when the erl node dies.
        let watch = format!(
            r#"parent = self()
               spawn(fn ->
                 :ok = :net_kernel.monitor_nodes(true)
                 ref = Process.monitor({{:init, {node}}})
                 send(parent, :armed)
                 for _ <- 1..2 do
                   receive do
                     {{:nodedown, n}} -> IO.puts("nodedown #{{n}}")
                     {{:DOWN, ^ref, :process, _, reason}} -> IO.puts("DOWN init #{{inspect(reason)}}")
                   end
                 end
               end)
               receive do :armed -> :armed after 5000 -> :timeout end"#,
            node = elixir_atom(erl.name())
        );
        assert_eq!(ex.eval(&watch).unwrap(), ":armed");

        erl.kill();
        assert!(!erl.is_alive());
        assert_eq!(erl.eval("1"), Err(EvalError::NodeDown));
        assert!(ex.wait_for_log(&format!("nodedown {}", erl.name()), T).is_some(), "{:?}", ex.logs());
        assert!(ex.wait_for_log("DOWN init :noconnection", T).is_some(), "{:?}", ex.logs());
        assert!(wait_until(T, || ex.eval("Node.list()").as_deref() == Ok("[]")));
        // Its EPMD registration went with it.
        assert!(wait_until(T, || !epmd.names().unwrap().contains(erl.alive_name())));
    });
}

#[test]
fn control_channel_reports_errors_timeouts_and_logs() {
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let erl = BeamNode::start(otp, &epmd, NodeOpts::erlang().prefix("ctl_erl"));
        let ex = BeamNode::start(otp, &epmd, NodeOpts::elixir().prefix("ctl_ex"));

        // Erlang: exceptions, syntax errors, timeouts, and bindings surviving all three.
        assert_eq!(erl.eval("A = 1").unwrap(), "1");
        assert_eq!(erl.eval("1 / 0"), Err(EvalError::Exception("error:badarith".into())));
        assert_eq!(erl.eval("throw(up)"), Err(EvalError::Exception("throw:up".into())));
        assert!(matches!(erl.eval("foo("), Err(EvalError::Syntax(_))));
        assert_eq!(
            erl.eval_timeout("receive never -> ok end", Duration::from_millis(200)),
            Err(EvalError::Timeout(Duration::from_millis(200)))
        );
        assert_eq!(erl.eval("A + 1").unwrap(), "2");
        // The evaluator keeps its pid (so monitors and messages carry over) ...
        let pid = erl.eval("self()").unwrap();
        assert_eq!(erl.eval("self() ! hello, ok").unwrap(), "ok");
        assert_eq!(erl.eval("receive M -> M after 1000 -> none end").unwrap(), "hello");
        assert_eq!(erl.eval("self()").unwrap(), pid);
        // ... and is replaced when it dies, bindings kept.
        assert_eq!(erl.eval("exit(self(), kill)"), Err(EvalError::Exception("exit:killed".into())));
        assert_eq!(erl.eval("A").unwrap(), "1");

        // Output is captured as log lines, also a partial line before a reply.
        assert_eq!(erl.eval("io:format(\"hello from erl~n\"), io:format(\"partial\")").unwrap(), "ok");
        assert!(erl.wait_for_log("hello from erl", T).is_some());
        assert!(erl.wait_for_log("partial", T).is_some(), "{:?}", erl.logs());

        // Elixir: the same through Code.eval_string and inspect/2.
        assert_eq!(ex.eval("a = 1").unwrap(), "1");
        let err = ex.eval("1 / 0").unwrap_err();
        assert!(matches!(&err, EvalError::Exception(e) if e.contains("ArithmeticError")), "{err:?}");
        assert!(matches!(ex.eval("foo("), Err(EvalError::Exception(e)) if e.contains("TokenMissingError")));
        assert_eq!(
            ex.eval_timeout("Process.sleep(:infinity)", Duration::from_millis(200)),
            Err(EvalError::Timeout(Duration::from_millis(200)))
        );
        assert_eq!(ex.eval("a + 1").unwrap(), "2");
        assert_eq!(ex.eval(r#"IO.puts("hello from elixir")"#).unwrap(), ":ok");
        assert!(ex.wait_for_log("hello from elixir", T).is_some(), "{:?}", ex.logs());
        // Big values are printed whole, on one line.
        let big = ex.eval("Enum.to_list(1..500)").unwrap();
        assert!(big.ends_with(", 499, 500]") && !big.contains('\n'), "{big}");
    });
}

#[test]
fn async_eval_and_parallel_nodes_do_not_collide() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let nodes: Vec<BeamNode> = (0..3)
            .map(|i| BeamNode::start(&otp, &epmd, NodeOpts::erlang().prefix(&format!("par{i}")).hidden()))
            .collect();
        let mut names: Vec<&str> = nodes.iter().map(BeamNode::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 3);
        for n in &nodes {
            assert_eq!(n.eval_async("node()").await.unwrap(), erlang_atom(n.name()));
        }
        // Hidden nodes connect but do not show up in nodes().
        let other = erlang_atom(nodes[1].name());
        assert_eq!(nodes[0].eval_async(&format!("net_kernel:connect_node({other})")).await.unwrap(), "true");
        assert_eq!(nodes[0].eval_async("nodes()").await.unwrap(), "[]");
        assert_eq!(nodes[0].eval_async("nodes(hidden)").await.unwrap(), format!("[{other}]"));
        let back = format!("[{}]", erlang_atom(nodes[0].name()));
        assert!(
            wait_until_async(T, async || nodes[1].eval_async("nodes(hidden)").await.as_deref() == Ok(back.as_str()))
                .await
        );
        // Output arrives while the test awaits.
        assert_eq!(nodes[2].eval_async("io:format(\"tick~n\")").await.unwrap(), "ok");
        assert!(wait_until_async(T, async || nodes[2].log_contains("tick")).await);
    });
}

#[test]
fn a_node_that_cannot_start_reports_why() {
    for_each_otp(|otp| {
        let mut epmd = Epmd::start(otp);
        epmd.kill();
        // No EPMD to register with: the node's boot fails, and the error carries its output.
        let err = BeamNode::try_start(otp, &epmd, NodeOpts::erlang().prefix("noepmd")).unwrap_err();
        assert!(err.to_string().contains("did not start (exited)"), "{err}");
        assert!(err.to_string().contains("register/listen error"), "{err}");
    });
}
