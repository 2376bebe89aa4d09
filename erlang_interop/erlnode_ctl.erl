%% erlnode_ctl: the control channel the Rust test harness (tests/common/mod.rs)
%% uses to drive an `erl` or `elixir` node the way a person types into its
%% shell: it evaluates expressions read from stdin and writes each result back
%% as a framed line on stdout, keeping variable bindings between expressions.
%%
%% Protocol (one line each way, all payloads hex-encoded UTF-8):
%%   request:  "<Id> <TimeoutMs> <HexSource>\n"
%%   reply:    "\x1eERLNODE_CTL <Id> <Status> <HexText>\n"
%%             Status = ok | exception | syntax | timeout
%%   at start: "\x1eERLNODE_CTL 0 ready <Hex of node()>\n"
%% The reply marker may follow output the expression printed without a final
%% newline on the same line; everything that is not a reply is the node's log.
%% End of stdin (the test process went away) halts the node.
%%
%% Expressions run in one long-lived evaluator process (so `self()`, monitors
%% and messages carry over between expressions, as in the shell); it is
%% replaced, keeping the bindings, if it dies or overruns its timeout.
%% Erlang nodes evaluate Erlang (erl_eval, printed with ~0tp), Elixir nodes
%% evaluate Elixir (Code.eval_string, printed with inspect/2).
-module(erlnode_ctl).
-export([start/1]).

-define(MARK, "\x1eERLNODE_CTL").

start(Lang) when Lang =:= erlang; Lang =:= elixir ->
    ok = io:setopts(standard_io, [binary, {encoding, unicode}]),
    reply(0, ready, atom_to_binary(node(), utf8)),
    loop(Lang, spawn_evaluator(Lang, initial_bindings(Lang)), initial_bindings(Lang)).

initial_bindings(erlang) -> erl_eval:new_bindings();
initial_bindings(elixir) -> [].

loop(Lang, Eval, Bindings) ->
    case io:get_line(standard_io, "") of
        eof ->
            erlang:halt(0);
        {error, _} ->
            erlang:halt(1);
        Line ->
            case parse_request(Line) of
                {ok, Id, Timeout, Src} ->
                    {Eval1, Bindings1} = run(Lang, Eval, Bindings, Id, Timeout, Src),
                    loop(Lang, Eval1, Bindings1);
                error ->
                    reply(-1, syntax, <<"bad control request">>),
                    loop(Lang, Eval, Bindings)
            end
    end.

parse_request(Line) ->
    try
        [IdB, TimeoutB, Hex] =
            binary:split(string:trim(unicode:characters_to_binary(Line), trailing, "\r\n"),
                         <<" ">>, [global]),
        {ok, binary_to_integer(IdB), binary_to_integer(TimeoutB), binary:decode_hex(Hex)}
    catch
        _:_ -> error
    end.

run(Lang, Eval0, Bindings, Id, Timeout, Src) ->
    Eval = case is_process_alive(Eval0) of
               true -> Eval0;
               false -> spawn_evaluator(Lang, Bindings)
           end,
    Ref = erlang:monitor(process, Eval),
    Eval ! {eval, self(), Ref, Src},
    receive
        {Ref, Status, Text, NewBindings} ->
            erlang:demonitor(Ref, [flush]),
            reply(Id, Status, Text),
            {Eval, NewBindings};
        {'DOWN', Ref, process, Eval, Reason} ->
            reply(Id, exception, format("exit:~0tp", [Reason])),
            {spawn_evaluator(Lang, Bindings), Bindings}
    after Timeout ->
            erlang:demonitor(Ref, [flush]),
            exit(Eval, kill),
            reply(Id, timeout, integer_to_binary(Timeout)),
            {spawn_evaluator(Lang, Bindings), Bindings}
    end.

spawn_evaluator(Lang, Bindings) ->
    spawn(fun() -> evaluator(Lang, Bindings) end).

evaluator(Lang, Bindings) ->
    receive
        {eval, From, Ref, Src} ->
            {Status, Text, NewBindings} = eval(Lang, Src, Bindings),
            From ! {Ref, Status, Text, NewBindings},
            evaluator(Lang, NewBindings)
    end.

eval(erlang, Src, Bindings) ->
    case scan(unicode:characters_to_list(Src)) of
        {ok, Tokens} ->
            case erl_parse:parse_exprs(Tokens) of
                {ok, Exprs} ->
                    try erl_eval:exprs(Exprs, Bindings) of
                        {value, Value, NewBindings} ->
                            {ok, format("~0tp", [Value]), NewBindings}
                    catch
                        Class:Reason ->
                            {exception, format("~0tp:~0tp", [Class, Reason]), Bindings}
                    end;
                {error, {_Loc, Mod, Msg}} ->
                    {syntax, format("~ts", [Mod:format_error(Msg)]), Bindings}
            end;
        {error, Text} ->
            {syntax, Text, Bindings}
    end;
eval(elixir, Src, Bindings) ->
    try 'Elixir.Code':eval_string(Src, Bindings, [{file, <<"erlnode_ctl">>}]) of
        {Value, NewBindings} ->
            {ok, 'Elixir.Kernel':inspect(Value, [{limit, infinity}, {printable_limit, infinity}]),
             NewBindings}
    catch
        Class:Reason:Stack ->
            {exception, 'Elixir.Exception':format_banner(Class, Reason, Stack), Bindings}
    end.

%% Tokens of one expression sequence; the final '.' is optional.
scan(Chars) ->
    case erl_scan:string(Chars) of
        {ok, [], _} ->
            {error, <<"empty expression">>};
        {ok, Tokens, End} ->
            case lists:last(Tokens) of
                {dot, _} -> {ok, Tokens};
                _ -> {ok, Tokens ++ [{dot, End}]}
            end;
        {error, {_Loc, Mod, Msg}, _} ->
            {error, format("~ts", [Mod:format_error(Msg)])}
    end.

format(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).

reply(Id, Status, Text) ->
    Bin = unicode:characters_to_binary(Text),
    io:put_chars(standard_io,
                 [?MARK, " ", integer_to_binary(Id), " ", atom_to_binary(Status, utf8), " ",
                  binary:encode_hex(Bin), "\n"]).
