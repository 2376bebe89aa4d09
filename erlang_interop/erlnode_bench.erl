%% erlnode_bench: the BEAM side of erlnode's cluster benchmarks (`scripts/bench`, the Rust
%% driver is src/bin/erlnode-bench/).
%%
%% Every BEAM node of a benchmark run loads this module (`-pa`). It holds:
%%
%% - the load generators a client node runs (`kv_pass/6`, `ingest/4`, `burst_from/5`, `pubsub/6`,
%%   `idle_cost/2`, `connect_times/2`), each bounded in count and in time and returning plain
%%   figures;
%% - the pieces a server node runs next to the Elixir KV and PubSub: `bench_sink` (a counting
%%   process) and `bench_ctl` (starts and stops servers, sends bursts, reports its RSS). The
%%   Rust host (`erlnode-bench host`) answers the same `bench_ctl` requests, so one driver
%%   measures both servers the same way.
%%
%% bench_ctl requests (gen_server:call):
%%   {start, kv | pubsub}                        -> Pid (a fresh, unlinked server)
%%   {stop, Pid}                                 -> ok once Pid is dead
%%   {burst, Dest, Kind, N, DurMs, ReplyTo}      -> ok; then a process sends up to N messages
%%                                                  of Kind to Dest (at most DurMs), then
%%                                                  {'$bench_done', ReplyTo}
%%   {spawn_idle, N}                             -> ok once N idle processes exist
%%   rss                                         -> VmRSS of the OS process, in bytes
%%   heap                                        -> bytes allocated now (erlang:memory(total);
%%                                                  erlnode: malloc'd bytes in use)
%% A sink counts every message; on {'$bench_done', From} it sends {'$bench_count', Count} to
%% From and starts again from zero.
-module(erlnode_bench).

-export([start_server_side/0, start_sink/0, sink/1, ctl_loop/0, burst/5, idle/0]).
-export([kv/6, kv_pass/6, kv_caller/6, ingest/4, burst_from/5, pubsub/6, sub_spawner/6, subscriber/4,
         idle_cost/2, rss/0, connect_times/2]).
-export([wait_nodes/2, join/2]).

-define(CALL_TIMEOUT, 10000).

now_us() -> erlang:monotonic_time(microsecond).

%% ---------------------------------------------------------------------------------------
%% Server side
%% ---------------------------------------------------------------------------------------

%% Registers bench_sink and bench_ctl on this node (idempotent).
start_server_side() ->
    start_sink(),
    case whereis(bench_ctl) of
        undefined ->
            Pid = spawn(?MODULE, ctl_loop, []),
            register(bench_ctl, Pid),
            ok;
        _ -> ok
    end.

start_sink() ->
    case whereis(bench_sink) of
        undefined ->
            register(bench_sink, spawn(?MODULE, sink, [0])),
            ok;
        _ -> ok
    end.

sink(Count) ->
    receive
        {'$bench_done', From} ->
            From ! {'$bench_count', Count},
            sink(0);
        _ ->
            sink(Count + 1)
    end.

ctl_loop() ->
    receive
        {'$gen_call', From, Req} ->
            gen_server:reply(From, ctl(Req)),
            ctl_loop();
        _ ->
            ctl_loop()
    end.

ctl({start, kv}) -> start_server('Elixir.BenchKV');
ctl({start, pubsub}) -> start_server('Elixir.BenchPS');
ctl({stop, Pid}) ->
    MRef = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', MRef, process, Pid, _} -> ok
    after ?CALL_TIMEOUT -> timeout
    end;
ctl({burst, Dest, Kind, N, DurMs, ReplyTo}) ->
    spawn(?MODULE, burst, [Dest, Kind, N, DurMs, ReplyTo]),
    ok;
ctl({spawn_idle, N}) ->
    spawn_idle(N);
ctl(rss) -> rss();
ctl(heap) -> erlang:memory(total);
ctl(ping) -> pong;
ctl(_) -> not_implemented.

start_server(Mod) ->
    {ok, Pid} = gen_server:start(Mod, [], []),
    Pid.

spawn_idle(0) -> ok;
spawn_idle(N) ->
    spawn(?MODULE, idle, []),
    spawn_idle(N - 1).

idle() ->
    receive stop -> ok end.

%% VmRSS of this OS process, in bytes.
rss() ->
    {ok, B} = file:read_file("/proc/self/status"),
    {match, [Kb]} = re:run(B, "VmRSS:\\s+([0-9]+) kB", [{capture, all_but_first, list}]),
    list_to_integer(Kb) * 1024.

%% Sends up to N messages of Kind to Dest for at most DurMs, then {'$bench_done', ReplyTo}.
burst(Dest, Kind, N, DurMs, ReplyTo) ->
    Sent = send_loop(Dest, Kind, payload(Kind), N, now_us() + DurMs * 1000, 0),
    Dest ! {'$bench_done', ReplyTo},
    Sent.

payload(small) -> none;
payload({bin, Size}) -> binary:copy(<<"x">>, Size).

send_loop(_Dest, _Kind, _Bin, N, _Deadline, I) when I >= N -> I;
send_loop(Dest, Kind, Bin, N, Deadline, I) ->
    case I band 255 =:= 0 andalso now_us() >= Deadline of
        true -> I;
        false ->
            Dest ! case Kind of small -> {msg, I}; _ -> Bin end,
            send_loop(Dest, Kind, Bin, N, Deadline, I + 1)
    end.

%% ---------------------------------------------------------------------------------------
%% Load generators (run on a client node)
%% ---------------------------------------------------------------------------------------

%% GenServer calls into KV server Server from CallersPerNode processes on each of Nodes:
%% alternating {set, K, V} / {get, K} over Keys keys, each caller at most MaxPerCaller calls
%% and DurMs milliseconds. -> {Calls, ElapsedUs, P50Us, P99Us, Errors}
kv(Server, Nodes, CallersPerNode, Keys, MaxPerCaller, DurMs) ->
    Ref = make_ref(),
    Self = self(),
    Pids = [spawn(Node, ?MODULE, kv_caller, [Self, Ref, Server, I, Keys, MaxPerCaller])
            || Node <- Nodes, I <- lists:seq(1, CallersPerNode)],
    [receive {ready, Ref, P} -> ok after 60000 -> error({not_ready, P}) end || P <- Pids],
    [P ! {go, Ref, DurMs} || P <- Pids],
    Results = [receive {done, Ref, P, N, E, D, L} -> {N, E, D, L}
               after DurMs + 60000 -> error({no_result, P})
               end || P <- Pids],
    Calls = lists:sum([N || {N, _, _, _} <- Results]),
    Errors = lists:sum([E || {_, E, _, _} <- Results]),
    Elapsed = lists:max([D || {_, _, D, _} <- Results]),
    Lats = lists:sort(lists:append([L || {_, _, _, L} <- Results])),
    {Calls, Elapsed, percentile(Lats, 50), percentile(Lats, 99), Errors}.

%% Sets up a connection to Node K times (net_kernel:connect_node/1, then
%% erlang:disconnect_node/1), each bounded by net_setuptime.
%% -> {P50Us, P99Us, Failures}
connect_times(Node, K) ->
    Ts = [begin
              {T, Up} = timer:tc(net_kernel, connect_node, [Node]),
              erlang:disconnect_node(Node),
              {T, Up}
          end || _ <- lists:seq(1, K)],
    Lats = lists:sort([T || {T, true} <- Ts]),
    {percentile(Lats, 50), percentile(Lats, 99), length([x || {_, false} <- Ts])}.

%% kv/6 against a fresh KV from bench_ctl Ctl, stopped afterwards.
%% -> {Calls, ElapsedUs, P50Us, P99Us, Errors, ServerRssAfter}
kv_pass(Ctl, Nodes, CallersPerNode, Keys, MaxPerCaller, DurMs) ->
    Server = gen_server:call(Ctl, {start, kv}, ?CALL_TIMEOUT),
    {Calls, Elapsed, P50, P99, Errors} = kv(Server, Nodes, CallersPerNode, Keys, MaxPerCaller, DurMs),
    Rss = gen_server:call(Ctl, rss, ?CALL_TIMEOUT),
    ok = gen_server:call(Ctl, {stop, Server}, ?CALL_TIMEOUT),
    {Calls, Elapsed, P50, P99, Errors, Rss}.

kv_caller(Coord, Ref, Server, I, Keys, Max) ->
    Coord ! {ready, Ref, self()},
    receive {go, Ref, DurMs} -> ok end,
    T0 = now_us(),
    {N, E, L} = kv_loop(Server, I * 7919, Keys, Max, T0 + DurMs * 1000, T0, 0, 0, []),
    Coord ! {done, Ref, self(), N, E, now_us() - T0, L}.

kv_loop(_S, _Base, _Keys, Max, _Deadline, _T, N, E, L) when N >= Max -> {N, E, L};
kv_loop(_S, _Base, _Keys, _Max, Deadline, T, N, E, L) when T >= Deadline -> {N, E, L};
kv_loop(S, Base, Keys, Max, Deadline, T, N, E, L) ->
    K = (Base + N div 2) rem Keys,
    Req = case N band 1 of 0 -> {set, K, N}; 1 -> {get, K} end,
    E2 = try gen_server:call(S, Req, ?CALL_TIMEOUT) of
             true when N band 1 =:= 0 -> E;
             V when N band 1 =:= 1, is_integer(V) -> E;
             _ -> E + 1
         catch _:_ -> E + 1
         end,
    T2 = now_us(),
    kv_loop(S, Base, Keys, Max, Deadline, T2, N + 1, E2, [T2 - T | L]).

percentile([], _) -> 0;
percentile(Sorted, P) ->
    Len = length(Sorted),
    lists:nth(max(1, min(Len, (Len * P + 99) div 100)), Sorted).

%% One-way sends from this process: up to N messages of Kind to Dest within DurMs, then
%% waits for the sink's count. -> {Sent, Counted, ElapsedUs}
ingest(Dest, Kind, N, DurMs) ->
    T0 = now_us(),
    Sent = send_loop(Dest, Kind, payload(Kind), N, T0 + DurMs * 1000, 0),
    Dest ! {'$bench_done', self()},
    receive
        {'$bench_count', C} -> {Sent, C, now_us() - T0}
    after DurMs + 60000 -> {Sent, -1, now_us() - T0}
    end.

%% Asks the bench_ctl Ctl to send a burst to Dest and waits for the sink's count.
%% -> {Counted, ElapsedUs}
burst_from(Ctl, Dest, Kind, N, DurMs) ->
    T0 = now_us(),
    ok = gen_server:call(Ctl, {burst, Dest, Kind, N, DurMs, self()}, ?CALL_TIMEOUT),
    receive
        {'$bench_count', C} -> {C, now_us() - T0}
    after DurMs + 60000 -> {-1, now_us() - T0}
    end.

%% PubSub fan-out: a fresh PubSub from Ctl, NSubs subscribers spread over Nodes, then
%% broadcasts from this process (at most MaxB, DurMs) until every subscriber has every one.
%% -> {Broadcasts, ElapsedUs, Delivered, SetupUs, RssBefore, RssWithSubs, HeapBefore, HeapWithSubs}
pubsub(Ctl, Nodes, NSubs, MaxB, DurMs, SetupMs) ->
    RssBefore = gen_server:call(Ctl, rss, ?CALL_TIMEOUT),
    HeapBefore = gen_server:call(Ctl, heap, ?CALL_TIMEOUT),
    Ps = gen_server:call(Ctl, {start, pubsub}, ?CALL_TIMEOUT),
    Topic = bench_topic,
    Ref = make_ref(),
    Self = self(),
    NN = length(Nodes),
    Shares = [{Node, NSubs div NN + case I =< NSubs rem NN of true -> 1; false -> 0 end}
              || {I, Node} <- lists:zip(lists:seq(1, NN), Nodes)],
    T0 = now_us(),
    Spawners = [spawn(Node, ?MODULE, sub_spawner, [Self, Ref, Ps, Topic, Count, SetupMs])
                || {Node, Count} <- Shares, Count > 0],
    Ready = [receive {subscribed, Ref, S, Ok} -> Ok after SetupMs + 10000 -> false end
             || S <- Spawners],
    SetupUs = now_us() - T0,
    Result = case lists:all(fun(X) -> X end, Ready) of
        false -> {setup_failed, SetupUs};
        true ->
            RssSubs = gen_server:call(Ctl, rss, ?CALL_TIMEOUT),
            HeapSubs = gen_server:call(Ctl, heap, ?CALL_TIMEOUT),
            T1 = now_us(),
            B = bcast_loop(Ps, Topic, MaxB, T1 + DurMs * 1000, 0),
            true = gen_server:call(Ps, {broadcast, Topic, bench_done}, 60000),
            Counts = [receive {counted, Ref, S, C} -> C after 120000 -> -1 end || S <- Spawners],
            {B, now_us() - T1, lists:sum(Counts), SetupUs, RssBefore, RssSubs, HeapBefore, HeapSubs}
    end,
    gen_server:call(Ctl, {stop, Ps}, ?CALL_TIMEOUT),
    [S ! {stop, Ref} || S <- Spawners],
    [receive {stopped, Ref, S} -> ok after 60000 -> ok end || S <- Spawners],
    Result.

bcast_loop(_Ps, _Topic, Max, _Deadline, B) when B >= Max -> B;
bcast_loop(Ps, Topic, Max, Deadline, B) ->
    case now_us() >= Deadline of
        true -> B;
        false ->
            true = gen_server:call(Ps, {broadcast, Topic, {bench_msg, B}}, 60000),
            bcast_loop(Ps, Topic, Max, Deadline, B + 1)
    end.

%% Runs on a subscriber node: Count subscribers, reports once all have subscribed, then the
%% sum of what they received once each got bench_done.
sub_spawner(Coord, Ref, Ps, Topic, Count, SetupMs) ->
    Self = self(),
    Subs = [spawn(?MODULE, subscriber, [Self, Ref, Ps, Topic]) || _ <- lists:seq(1, Count)],
    Deadline = now_us() + SetupMs * 1000,
    Ok = collect_subscribed(Ref, Count, Deadline),
    Coord ! {subscribed, Ref, Self, Ok},
    case collect_counts(Ref, Count, 0) of
        stopped -> ok;
        Sum ->
            Coord ! {counted, Ref, Self, Sum},
            receive {stop, Ref} -> ok after 600000 -> ok end
    end,
    [exit(S, kill) || S <- Subs],
    Coord ! {stopped, Ref, Self}.

collect_subscribed(_Ref, 0, _Deadline) -> true;
collect_subscribed(Ref, N, Deadline) ->
    Wait = max(0, (Deadline - now_us()) div 1000),
    receive {subscribed, Ref} -> collect_subscribed(Ref, N - 1, Deadline)
    after Wait -> false
    end.

collect_counts(_Ref, 0, Sum) -> Sum;
collect_counts(Ref, N, Sum) ->
    receive
        {count, Ref, C} -> collect_counts(Ref, N - 1, Sum + C);
        {stop, Ref} -> stopped
    after 120000 -> -1
    end.

subscriber(Spawner, Ref, Ps, Topic) ->
    true = gen_server:call(Ps, {subscribe, Topic}, infinity),
    Spawner ! {subscribed, Ref},
    sub_loop(Spawner, Ref, 0).

sub_loop(Spawner, Ref, C) ->
    receive
        bench_done ->
            Spawner ! {count, Ref, C},
            receive {stop, Ref} -> ok end;
        {bench_msg, _} ->
            sub_loop(Spawner, Ref, C + 1)
    end.

%% Memory of N idle processes on the node of bench_ctl Ctl.
%% -> {RssBefore, RssAfter, HeapBefore, HeapAfter}
idle_cost(Ctl, N) ->
    Before = gen_server:call(Ctl, rss, ?CALL_TIMEOUT),
    HeapBefore = gen_server:call(Ctl, heap, ?CALL_TIMEOUT),
    ok = gen_server:call(Ctl, {spawn_idle, N}, 120000),
    timer:sleep(200),
    After = gen_server:call(Ctl, rss, ?CALL_TIMEOUT),
    HeapAfter = gen_server:call(Ctl, heap, ?CALL_TIMEOUT),
    {Before, After, HeapBefore, HeapAfter}.

%% true once this node is connected to at least N nodes; false after TimeoutMs.
wait_nodes(N, TimeoutMs) ->
    wait_nodes_until(N, now_us() + TimeoutMs * 1000).

wait_nodes_until(N, Deadline) ->
    case length(nodes()) >= N of
        true -> true;
        false ->
            case now_us() > Deadline of
                true -> false;
                false -> timer:sleep(1), wait_nodes_until(N, Deadline)
            end
    end.

%% The BEAM joiner of scenario 11 (src/bin/erlnode-bench/join.rs): prints ready, waits for a
%% line on stdin, connects to First, waits until connected to N nodes and global is synced,
%% prints done MICROSECONDS, and halts when stdin closes.
join(First, N) ->
    io:format("ready ~s~n", [node()]),
    _ = io:get_line(""),
    T0 = now_us(),
    true = net_kernel:connect_node(First),
    true = wait_nodes(N, 120000),
    ok = global:sync(),
    io:format("done ~b~n", [now_us() - T0]),
    _ = io:get_line(""),
    halt().
