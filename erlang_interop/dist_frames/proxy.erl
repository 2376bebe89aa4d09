%% A recording TCP proxy: accepts one connection on ListenPort, connects to TargetPort, and
%% forwards bytes both ways, appending each direction's raw stream to its own file.
-module(proxy).
-export([start/1]).

start([ListenPort, TargetPort, OutDir]) ->
    {ok, L} = gen_tcp:listen(list_to_integer(ListenPort),
                             [binary, {active, false}, {reuseaddr, true}, {ip, {127,0,0,1}}]),
    {ok, A} = gen_tcp:accept(L),
    {ok, B} = gen_tcp:connect({127,0,0,1}, list_to_integer(TargetPort), [binary, {active, false}]),
    Self = self(),
    PA = spawn(fun() -> pump_to(A, B, filename:join(OutDir, "initiator_to_acceptor.stream"), Self) end),
    PB = spawn(fun() -> pump_to(B, A, filename:join(OutDir, "acceptor_to_initiator.stream"), Self) end),
    ok = gen_tcp:controlling_process(A, PA),
    ok = gen_tcp:controlling_process(B, PB),
    receive done -> ok end,
    receive done -> ok after 2000 -> ok end,
    halt(0).

pump_to(From, To, File, Parent) ->
    {ok, F} = file:open(File, [write, raw, binary]),
    pump(From, To, F, Parent),
    file:close(F),
    Parent ! done.

pump(From, To, F, Parent) ->
    case gen_tcp:recv(From, 0) of
        {ok, Data} ->
            ok = file:write(F, Data),
            gen_tcp:send(To, Data),
            pump(From, To, F, Parent);
        {error, _} ->
            gen_tcp:close(To)
    end.
