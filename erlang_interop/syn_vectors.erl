%% Captures what syn 3.4.1 sends between two BEAM nodes (the vectors in
%% src/ecosystem/syn/message.rs). Start `erl -sname beam_b` with syn running and
%% `syn:add_node_to_scopes([users])`, then `erlc syn_vectors.erl; erl -sname beam_a -s cap run`
%% (ERL_LIBS pointing at the peer libraries).
-module(cap).
-export([run/0]).
run() ->
  [_, Host] = string:split(atom_to_list(node()), "@"),
  B = list_to_atom("beam_b@" ++ Host),
  pong = net_adm:ping(B),
  {ok, _} = application:ensure_all_started(syn), syn:add_node_to_scopes([users]),
  timer:sleep(1000),
  Scope = rpc:call(B, erlang, whereis, [syn_registry_users]),
  PgScope = rpc:call(B, erlang, whereis, [syn_pg_users]),
  Self = self(),
  ok = rpc:call(B, erlang, apply, [fun() ->
        P = spawn(fun Loop() -> receive {trace, _, 'receive', M} -> Self ! {got, M}, Loop(); _ -> Loop() end end),
        erlang:trace(Scope, true, ['receive', {tracer, P}]), erlang:trace(PgScope, true, ['receive', {tracer, P}]), ok end, []]),
  Pid = spawn(fun() -> receive stop -> ok end end),
  ok = syn:register(users, <<"alice">>, Pid, meta),
  ok = syn:join(users, <<"room">>, Pid, gmeta),
  true = erlang:disconnect_node(B), timer:sleep(300), pong = net_adm:ping(B), timer:sleep(1000),
  BPid = rpc:call(B, erlang, spawn, [timer, sleep, [100000]]),
  ok = syn:register(users, <<"bob">>, BPid, bm),
  ok = syn:unregister(users, <<"alice">>),
  ok = syn:leave(users, <<"room">>, Pid),
  timer:sleep(500),
  Msgs = (fun F(Acc) -> receive {got, M} -> F([M|Acc]) after 200 -> lists:reverse(Acc) end end)([]),
  [io:format("~p~n~w~n", [M, binary_to_list(term_to_binary(M))]) || M <- Msgs],
  halt().
