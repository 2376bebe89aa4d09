//! Operating a Rust node from BEAM's own tools, on every OTP version of the harness: `sys` on
//! Rust GenServers (`get_state`, `get_status`, `suspend`/`resume`, `replace_state`,
//! `terminate`), introspection through `rpc` (`processes/0`, `process_info/1,2`, `memory/0,1`,
//! `statistics/1`, `system_info/1`), the `observer_backend` calls observer makes, and `etop` in
//! text mode listing the Rust node's processes.
//!
//! The expected shapes are what a BEAM `gen_server` and BEAM's BIFs give (checked on OTP 25,
//! 27 and 29 against a local `gen_server`).

mod common;

use std::time::Duration;

use common::*;
use erlnode::apps::kv::Kv;
use erlnode::apps::pubsub::PubSub;
use erlnode::gen_server;
use erlnode::node::NodeConfig;
use erlnode::{Atom, Node};

const T: Duration = Duration::from_secs(20);

async fn rust_node(epmd: &Epmd, prefix: &str) -> Node {
    erlnode::services::start_node(NodeConfig::new(unique_name(prefix), DEFAULT_COOKIE).epmd_port(epmd.port()))
        .await
        .expect("rust node starts")
}

/// `try Expr catch C:E -> {C, E} end` with fresh variable names.
fn catching(expr: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("try {expr} catch C{n}:E{n} -> {{C{n}, E{n}}} end")
}

#[test]
fn sys_drives_rust_gen_servers() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let ex = BeamNode::start(&otp, &epmd, NodeOpts::elixir());
        let node = rust_node(&epmd, "sysd").await;
        let kv = gen_server::start(&node, Kv::new(), Some(Atom::new("kv1"))).await.unwrap();
        assert!(erlnode::services::register_name(&node, &Atom::new("kv1"), &kv).await);
        gen_server::start(&node, PubSub::new(), Some(Atom::new("ps"))).await.unwrap();
        let r = erlang_atom(node.name().as_str());
        let x = elixir_atom(node.name().as_str());
        let ev = async |e: String| erl.eval_async(&e).await.unwrap_or_else(|err| panic!("{e}: {err:?}"));

        assert_eq!(ev(format!("gen_server:call({{kv1, {r}}}, {{set, foo, 123}})")).await, "true");
        // get_state: the map, from Erlang by {Name, Node} and from Elixir by {:global, Name}
        assert_eq!(ev(format!("sys:get_state({{kv1, {r}}})")).await, "#{foo => 123}");
        assert_eq!(ex.eval_async(&format!("Node.connect({x})")).await.unwrap(), "true");
        assert_eq!(ex.eval_timeout_async(":global.sync()", T).await.unwrap(), ":ok");
        assert_eq!(ex.eval_async(":sys.get_state({:global, :kv1})").await.unwrap(), "%{foo: 123}");

        // get_status, shaped as a BEAM gen_server's
        let status = format!(
            "case sys:get_status({{kv1, {r}}}) of \
               {{status, P, {{module, gen_server}}, [PD, running, P, [], \
                 [{{header, \"Status for generic server kv1\"}}, \
                  {{data, [{{\"Status\", running}}, {{\"Parent\", P}}, {{\"Logged events\", []}}]}}, \
                  {{data, [{{\"State\", #{{foo := 123}}}}]}}]]}} when is_pid(P), node(P) =:= {r} -> \
                 {{ok, proplists:get_value('$initial_call', PD)}}; \
               Other -> Other end"
        );
        assert_eq!(ev(status).await, "{ok,{'erlnode::apps::kv::Kv',init,1}}");
        let ex_status = ":sys.get_status({:global, :kv1}) |> elem(3) |> List.last() |> List.last() \
                         |> then(&match?({:data, [{~c\"State\", %{foo: 123}}]}, &1))";
        assert_eq!(ex.eval_async(ex_status).await.unwrap(), "true");

        // suspend: calls wait (time out) and status says suspended; resume: they are served
        assert_eq!(ev(format!("sys:suspend({{kv1, {r}}})")).await, "ok");
        assert_eq!(
            ev(catching(&format!("gen_server:call({{kv1, {r}}}, {{get, foo}}, 300)"))).await,
            format!("{{exit,{{timeout,{{gen_server,call,[{{kv1,{r}}},{{get,foo}},300]}}}}}}")
        );
        assert_eq!(ev(format!("lists:nth(2, element(4, sys:get_status({{kv1, {r}}})))")).await, "suspended");
        assert_eq!(ev(format!("sys:get_state({{kv1, {r}}})")).await, "#{foo => 123}");
        assert_eq!(ev(format!("sys:resume({{kv1, {r}}})")).await, "ok");
        assert_eq!(ev(format!("gen_server:call({{kv1, {r}}}, {{get, foo}})")).await, "123");

        // replace_state: an error, never a hang
        assert_eq!(
            ev(catching(&format!("sys:replace_state({{kv1, {r}}}, fun(S) -> S end)"))).await,
            "{error,{callback_failed,{gen_server,system_replace_state},\
             {error,{notsup,<<\"a Rust GenServer cannot run an Erlang fun; its state cannot be replaced\">>}}}}"
        );
        // an unknown system message is answered, as sys:handle_system_msg answers it
        assert_eq!(
            ev(format!("sys:statistics({{kv1, {r}}}, true)")).await,
            "{error,{unknown_system_msg,{debug,{statistics,true}}}}"
        );

        // the PubSub shows its topic -> subscribers map
        assert_eq!(ev(format!("gen_server:call({{ps, {r}}}, {{subscribe, news}})")).await, "true");
        assert_eq!(ev(format!("sys:get_state({{ps, {r}}}) =:= #{{news => [self()]}}")).await, "true");

        // the same servers on TypedGenServer look and answer the same to BEAM
        gen_server::start_typed(&node, Kv::new(), Some(Atom::new("kv2"))).await.unwrap();
        gen_server::start_typed(&node, PubSub::new(), Some(Atom::new("ps2"))).await.unwrap();
        assert_eq!(ev(format!("gen_server:call({{kv2, {r}}}, {{set, foo, 123}})")).await, "true");
        assert_eq!(ev(format!("gen_server:call({{kv2, {r}}}, {{get, foo}})")).await, "123");
        assert_eq!(ev(format!("gen_server:call({{kv2, {r}}}, {{get, foo, bar}})")).await, "not_implemented");
        assert_eq!(ev(format!("gen_server:call({{kv2, {r}}}, bogus)")).await, "not_implemented");
        assert_eq!(ev(format!("sys:get_state({{kv2, {r}}})")).await, "#{foo => 123}");
        let initial = |name: &str| {
            format!("proplists:get_value('$initial_call', hd(element(4, sys:get_status({{{name}, {r}}}))))")
        };
        assert_eq!(ev(initial("kv2")).await, "{'erlnode::apps::kv::Kv',init,1}");
        assert_eq!(ev(initial("ps2")).await, "{'erlnode::apps::pubsub::PubSub',init,1}");
        assert_eq!(ev(format!("gen_server:call({{ps2, {r}}}, {{subscribe, news}})")).await, "true");
        assert_eq!(ev(format!("gen_server:call({{ps2, {r}}}, {{publish, news, hi}})")).await, "not_implemented");
        assert_eq!(ev(format!("sys:get_state({{ps2, {r}}}) =:= #{{news => [self()]}}")).await, "true");

        // terminate: the server stops with the reason
        assert_eq!(ev(format!("sys:terminate({{kv1, {r}}}, normal)")).await, "ok");
        assert!(wait_until_async(T, async || node.whereis(&Atom::new("kv1")).is_none()).await);
        assert_eq!(
            ev(catching(&format!("sys:get_state({{kv1, {r}}})"))).await,
            format!("{{exit,{{noproc,{{sys,get_state,[{{kv1,{r}}}]}}}}}}")
        );
        node.shutdown();
    });
}

#[test]
fn introspection_through_rpc() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "intro").await;
        let kv = gen_server::start(&node, Kv::new(), Some(Atom::new("kv1"))).await.unwrap();
        gen_server::start(&node, PubSub::new(), None).await.unwrap();
        let r = erlang_atom(node.name().as_str());
        let ev = async |e: String| erl.eval_async(&e).await.unwrap_or_else(|err| panic!("{e}: {err:?}"));
        let call = |f: &str, a: &str| format!("rpc:call({r}, erlang, {f}, [{a}])");

        assert_eq!(ev(format!("Kv = rpc:call({r}, erlang, whereis, [kv1]), node(Kv) =:= {r}")).await, "true");
        assert_eq!(ev(format!("lists:member(Kv, {})", call("processes", ""))).await, "true");
        assert_eq!(ev(format!("length({}) > 3", call("processes", ""))).await, "true");

        // process_info/2, one item and a list
        assert_eq!(ev(call("process_info", "Kv, registered_name")).await, "{registered_name,kv1}");
        assert_eq!(ev(call("process_info", "Kv, current_function")).await, "{current_function,{gen_server,loop,7}}");
        assert_eq!(ev(call("process_info", "Kv, initial_call")).await, "{initial_call,{proc_lib,init_p,5}}");
        assert_eq!(
            ev(call("process_info", "Kv, [status, message_queue_len, links, trap_exit]")).await,
            "[{status,waiting},{message_queue_len,0},{links,[]},{trap_exit,false}]"
        );
        assert_eq!(
            ev(call("process_info", "Kv, dictionary")).await,
            "{dictionary,[{'$initial_call',{'erlnode::apps::kv::Kv',init,1}},{'$ancestors',[]}]}"
        );
        assert_eq!(ev(format!("{{memory, M}} = {}, M > 0", call("process_info", "Kv, memory"))).await, "true");
        // process_info/1 lists BEAM's default items, registered_name first
        assert_eq!(
            ev(format!("[K || {{K, _}} <- {}]", call("process_info", "Kv"))).await,
            "[registered_name,current_function,initial_call,status,message_queue_len,links,\
             dictionary,trap_exit,error_handler,priority,group_leader,total_heap_size,heap_size,\
             stack_size,reductions,garbage_collection,suspending]"
                .replace(' ', "")
        );
        // queued messages and reductions: suspend the server, cast to it, look
        assert_eq!(ev(format!("{{reductions, R0}} = {}, ok", call("process_info", "Kv, reductions"))).await, "ok");
        assert_eq!(ev(format!("sys:suspend({{kv1, {r}}})")).await, "ok");
        ev(format!("[gen_server:cast({{kv1, {r}}}, {{set, N, N}}) || N <- [a, b, c]], ok")).await;
        assert!(
            wait_until_async(T, async || ev(call("process_info", "Kv, message_queue_len")).await
                == "{message_queue_len,3}")
            .await
        );
        assert_eq!(
            ev(call("process_info", "Kv, messages")).await,
            "{messages,[{'$gen_cast',{set,a,a}},{'$gen_cast',{set,b,b}},{'$gen_cast',{set,c,c}}]}"
        );
        assert_eq!(ev(call("process_info", "Kv, status")).await, "{status,runnable}");
        assert_eq!(ev(format!("sys:resume({{kv1, {r}}})")).await, "ok");
        assert_eq!(ev(format!("gen_server:call({{kv1, {r}}}, keys)")).await, "[a,b,c]");
        assert_eq!(
            ev(format!("{{reductions, R1}} = {}, R1 >= R0 + 5", call("process_info", "Kv, reductions"))).await,
            "true"
        );

        // monitors both ways: the PubSub monitors its subscriber
        assert_eq!(
            ev(format!("[Ps] = [P || P <- {}, P =/= Kv, {} =:= {{initial_call, {{proc_lib, init_p, 5}}}}, \
                        element(2, {}) =:= [{{'$initial_call',{{'erlnode::apps::pubsub::PubSub',init,1}}}},{{'$ancestors',[]}}]], ok",
                call("processes", ""), call("process_info", "P, initial_call"), call("process_info", "P, dictionary")))
            .await,
            "ok"
        );
        assert_eq!(ev("gen_server:call(Ps, {subscribe, t})".into()).await, "true");
        assert_eq!(
            ev(format!("{} =:= {{monitors, [{{process, self()}}]}}", call("process_info", "Ps, monitors"))).await,
            "true"
        );
        assert_eq!(ev(call("process_info", "Ps, monitored_by")).await, "{monitored_by,[]}");
        assert_eq!(
            ev(format!("{} =:= [{{registered_name, []}}]", call("process_info", "Ps, [registered_name]"))).await,
            "true"
        );
        assert_eq!(ev(call("process_info", "Ps, registered_name")).await, "[]");

        // a dead pid is undefined; a pid of another node and an unknown item are badarg
        assert_eq!(ev(format!("Dead = spawn({r}, erlang, node, []), is_pid(Dead)")).await, "true");
        assert!(wait_until_async(T, async || ev(call("process_info", "Dead")).await == "undefined").await);
        assert_eq!(ev(call("process_info", "Dead, status")).await, "undefined");
        assert!(ev(call("process_info", "self()")).await.starts_with("{badrpc,{'EXIT',{badarg,"));
        assert!(ev(call("process_info", "Kv, bogus")).await.starts_with("{badrpc,{'EXIT',{badarg,"));

        // memory, statistics, system_info
        assert_eq!(
            ev(format!("[K || {{K, V}} <- {}, is_integer(V)]", call("memory", ""))).await,
            "[total,processes,processes_used,system,atom,atom_used,binary,code,ets]"
        );
        assert_eq!(
            ev(format!(
                "{} >= {} andalso {} > 0",
                call("memory", "total"),
                call("memory", "processes"),
                call("memory", "processes")
            ))
            .await,
            "true"
        );
        assert_eq!(ev(format!("length({})", call("memory", "[total, ets]"))).await, "2");
        for (item, pattern) in [
            ("runtime", "{_A, _B} when is_integer(_A), is_integer(_B)"),
            ("wall_clock", "{_A, _B} when _A > 0, is_integer(_B)"),
            ("reductions", "{_A, _B} when _A > 0, is_integer(_B)"),
            ("run_queue", "_A when is_integer(_A)"),
            ("io", "{{input, _A}, {output, _B}} when _A > 0, _B > 0"),
            ("context_switches", "{_A, 0} when _A > 0"),
        ] {
            // fresh names: shell bindings persist between evaluations
            let pattern = pattern.replace("_A", &format!("A{item}")).replace("_B", &format!("B{item}"));
            let e = format!("case {} of {pattern} -> ok; O{item} -> O{item} end", call("statistics", item));
            assert_eq!(ev(e).await, "ok", "statistics({item})");
        }
        assert_eq!(ev(call("system_info", "process_limit")).await, "262144");
        assert_eq!(ev(call("system_info", "{wordsize, internal}")).await, "8");
        assert_eq!(ev(format!("is_integer({})", call("system_info", "logical_processors_online"))).await, "true");

        // observer_backend, as observer asks
        assert_eq!(ev(format!("rpc:call({r}, observer_backend, vsn, [])")).await, "{ok,\"1.19\"}");
        let sys_info = format!("SI = rpc:call({r}, observer_backend, sys_info, []), ");
        assert_eq!(
            ev(format!(
                "{sys_info} {{proplists:get_value(otp_release, SI), is_integer(proplists:get_value(uptime, SI)), \
                  proplists:get_value(process_count, SI) > 3, proplists:get_value(total, SI) > 0}}"
            ))
            .await,
            "{\"25\",true,true,true}"
        );
        // observer's Processes tab switches to a node only if it exports procs_info/1
        assert_eq!(
            ev(format!(
                "{{rpc:call({r}, erlang, function_exported, [observer_backend, procs_info, 1]), \
                  rpc:call({r}, erlang, function_exported, [observer_backend, nope, 1])}}"
            ))
            .await,
            "{true,false}"
        );
        // observer's System tab shows each count as a percentage of its limit
        let limits = "[atom_limit, process_limit, port_limit, ets_limit]";
        assert_eq!(
            ev(format!(
                "SL = rpc:call({r}, observer_backend, sys_info, []), \
                 [K || K <- {limits}, not (proplists:get_value(K, SL) > 0)]"
            ))
            .await,
            "[]",
            "a limit observer divides by is not positive"
        );
        let procs = "begin Me = self(), B = spawn_link(R, observer_backend, procs_info, [Me]), \
                     receive {procs_info, B, L} -> lists:keyfind(kv1, 5, L) end end"
            .replace("R,", &format!("{r},"));
        assert_eq!(
            ev(format!("case {procs} of {{etop_proc_info, Kv, M1, _, kv1, 0, {{gen_server, loop, 7}}, 0}} when M1 > 0 -> ok end"))
                .await,
            "ok"
        );
        node.shutdown();
        let _ = kv;
    });
}

/// etop in text mode, started on a BEAM node against the Rust node, lists the Rust node's
/// processes by name. Its output is captured by a group leader that collects io requests
/// (and answers `io:getopts/0`, which OTP 29's etop asks, with no options).
#[test]
fn etop_lists_rust_processes() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "etopd").await;
        gen_server::start(&node, Kv::new(), Some(Atom::new("kv1"))).await.unwrap();
        let r = erlang_atom(node.name().as_str());
        let ev = async |e: String| erl.eval_async(&e).await.unwrap_or_else(|err| panic!("{e}: {err:?}"));
        let collector = "Gl = spawn(fun() -> (fun Loop(Acc) -> receive \
             {io_request, From, Ref, Req} -> \
               From ! {io_reply, Ref, case Req of getopts -> []; {get_geometry, _} -> {error, enotsup}; _ -> ok end}, \
               Text = case Req of {put_chars, _, M, F, A} -> apply(M, F, A); {put_chars, _, C} -> C; _ -> [] end, \
               Loop([Text | Acc]); \
             {get, P} -> P ! {text, unicode:characters_to_list(lists:reverse(Acc))}, Loop(Acc) end end)([]) end), ok";
        assert_eq!(ev(collector.to_string()).await, "ok");
        let start = format!(
            "spawn(fun() -> group_leader(Gl, self()), \
               etop:start([{{node, {r}}}, {{output, text}}, {{interval, 1}}, {{lines, 30}}, {{tracing, off}}]) end), ok"
        );
        assert_eq!(ev(start).await, "ok");
        assert_eq!(
            ev("GetText = fun() -> Gl ! {get, self()}, receive {text, Tx} -> Tx end end, ok".into()).await,
            "ok"
        );
        let get = "GetText()".to_string();
        let listed = wait_until_async(T, async || {
            let text = ev(get.clone()).await;
            text.contains("kv1") && text.contains("net_kernel") && text.contains("gen_server:loop/7")
        })
        .await;
        let text = ev(get.clone()).await;
        assert!(listed, "etop output: {text}");
        // the header names the Rust node
        assert!(text.contains(node.name().as_str()) || text.contains(&r), "{text}");
        assert_eq!(ev("etop:stop()".into()).await, "stop");
        node.shutdown();
    });
}

/// `erl -remsh` and `iex --remsh` against the Rust node end at once with a message saying it
/// cannot run a shell (OTP 26+ load `shell` or `iex` there first; they need no terminal). On
/// every version, `shell:start/0` (what OTP 25's `-remsh`, which needs a terminal, calls
/// through `rpc`) returns a process that writes the message to the caller's group leader.
#[test]
fn remote_shells_are_refused_at_once() {
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let erl = BeamNode::start(&otp, &epmd, NodeOpts::erlang());
        let node = rust_node(&epmd, "remsh").await;
        let r = erlang_atom(node.name().as_str());
        let ev = async |e: String| erl.eval_async(&e).await.unwrap_or_else(|err| panic!("{e}: {err:?}"));
        let no_shell = erlnode::services::rpc::builtins::NO_SHELL;

        assert_eq!(
            ev(format!("rpc:call({r}, code, ensure_loaded, ['Elixir.IEx'])")).await,
            format!("{{error,\"{no_shell}\"}}")
        );
        assert_eq!(
            ev(format!("rpc:call({r}, code, ensure_loaded, [observer_backend])")).await,
            "{module,observer_backend}"
        );
        assert_eq!(ev(format!("rpc:call({r}, code, ensure_loaded, [nomod])")).await, "{error,nofile}");
        let collector = "Gl2 = spawn(fun() -> (fun Loop(Acc) -> receive \
             {io_request, From, Ref, {put_chars, unicode, C}} -> From ! {io_reply, Ref, ok}, Loop([C | Acc]); \
             {get, P} -> P ! {text, unicode:characters_to_list(lists:reverse(Acc))}, Loop(Acc) end end)([]) end), ok";
        assert_eq!(ev(collector.into()).await, "ok");
        let start = format!(
            "Me2 = self(), spawn(fun() -> group_leader(Gl2, self()), Me2 ! {{shell, rpc:call({r}, shell, start, [])}} end), \
             receive {{shell, Sh}} -> is_pid(Sh) andalso node(Sh) =:= {r} end"
        );
        assert_eq!(ev(start).await, "true");
        let printed = wait_until_async(T, async || {
            ev("Gl2 ! {get, self()}, receive {text, Tx2} -> Tx2 end".into()).await == format!("\"{no_shell}\\n\"")
        })
        .await;
        assert!(printed, "the stand-in shell printed nothing");

        if otp.version() >= 26 {
            let name = node.name().as_str().to_string();
            let runs: [(&str, Vec<String>); 2] = [
                (
                    "erl",
                    vec![
                        "-sname".into(),
                        unique_name("rsh"),
                        "-setcookie".into(),
                        DEFAULT_COOKIE.into(),
                        "-remsh".into(),
                        name.clone(),
                    ],
                ),
                (
                    "iex",
                    vec![
                        "--sname".into(),
                        unique_name("ish"),
                        "--cookie".into(),
                        DEFAULT_COOKIE.into(),
                        "--remsh".into(),
                        name.clone(),
                    ],
                ),
            ];
            for (tool, args) in runs {
                let mut child = std::process::Command::new(otp.tool(tool))
                    .args(&args)
                    .env("ERL_EPMD_PORT", epmd.port().to_string())
                    .env("PATH", format!("{}:{}", otp.bin_dir().display(), std::env::var("PATH").unwrap_or_default()))
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("starts");
                let ended = wait_until_async(T, async || child.try_wait().ok().flatten().is_some()).await;
                if !ended {
                    let _ = child.kill();
                }
                let out = child.wait_with_output().expect("output");
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                assert!(ended, "{tool} --remsh still running: {text}");
                assert_eq!(out.status.code(), Some(1), "{tool}: {text}");
                assert!(text.contains(no_shell), "{tool}: {text}");
            }
        }
        node.shutdown();
    });
}
