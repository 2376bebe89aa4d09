%% The initiator side: one of each interesting signal toward the acceptor node, so that the
%% recorded stream holds real OTP frames (atom-cache headers, fragments, many ops).
-module(sender).
-export([run/1]).

run([Peer0]) ->
    Peer = list_to_atom(Peer0),
    true = net_kernel:connect_node(Peer),
    Sink = {sink, Peer},
    Sink ! {hello, world, [hello, world]},
    Sink ! {hello, world, again},
    Sink ! {big, binary:copy(<<"x">>, 200000)},
    SinkPid = erpc:call(Peer, erlang, whereis, [sink]),
    SinkPid ! {to_pid, self()},
    link(SinkPid),
    unlink(SinkPid),
    M1 = monitor(process, SinkPid),
    demonitor(M1),
    M2 = monitor(process, Sink),
    demonitor(M2),
    M3 = monitor(process, {nosuch, Peer}),
    receive {'DOWN', M3, process, _, noproc} -> ok after 5000 -> exit(no_down) end,
    exit(SinkPid, not_really),
    Alias = alias(),
    Sink ! {alias, Alias},
    receive via_alias -> ok after 5000 -> exit(no_alias_message) end,
    Sink ! {stop, self()},
    receive {sink_got, Got} -> io:format("sink got ~p~n", [Got]) after 5000 -> io:format("no reply~n") end,
    halt(0).
