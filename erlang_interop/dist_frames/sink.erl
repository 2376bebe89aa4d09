%% The acceptor side: a registered `sink` that collects what arrives, and answers `stop`.
-module(sink).
-export([start/0]).

start() ->
    register(sink, spawn(fun() -> process_flag(trap_exit, true), loop([]) end)).

loop(Got) ->
    receive
        {stop, From} -> From ! {sink_got, lists:reverse(Got)};
        {alias, Alias} = M -> Alias ! via_alias, loop([M | Got]);
        M -> loop([summary(M) | Got])
    end.

summary({big, B}) when is_binary(B) -> {big, byte_size(B)};
summary(M) -> M.
