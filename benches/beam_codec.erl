%% BEAM's side of benches/codec.rs: times binary_to_term/1 and
%% term_to_binary(T, [{minor_version, 2}]) on the corpus files, one pass per request, so the
%% Rust bench can interleave BEAM passes with its own.
%%
%% benches/codec.rs compiles this module in memory in `erl -noshell` and speaks a line protocol
%% on standard input and output, one request per line:
%%
%%   info              -> OTP_RELEASE ERTS_VERSION EMU_FLAVOR
%%   load NAME PATH    -> ok            (reads the file, decodes it once)
%%   dec NAME MS       -> NS_PER_OP     (binary_to_term, for about MS milliseconds)
%%   enc NAME MS       -> NS_PER_OP     (term_to_binary with minor_version 2)
%%   quit              -> (halts)
%%
%% One pass: double the batch size until a batch takes at least a twentieth of the pass
%% (warm-up, not counted), then run batches until MS milliseconds are spent; the answer is the
%% time of the counted batches divided by their operations, in nanoseconds.
-module(beam_codec).
-export([main/0]).

main() ->
    loop(#{}).

loop(Files) ->
    case io:get_line("") of
        eof ->
            halt(0);
        Line ->
            case string:lexemes(string:trim(Line), " ") of
                ["info"] ->
                    reply("~s ~s ~p", [erlang:system_info(otp_release), erlang:system_info(version),
                                       erlang:system_info(emu_flavor)]),
                    loop(Files);
                ["load", Name, Path] ->
                    {ok, Bin} = file:read_file(Path),
                    Term = binary_to_term(Bin),
                    reply("ok", []),
                    loop(Files#{Name => {Bin, Term}});
                ["dec", Name, Ms] ->
                    {Bin, _} = maps:get(Name, Files),
                    reply("~.3f", [pass(fun(N) -> dec_loop(N, Bin, ok) end, list_to_integer(Ms))]),
                    loop(Files);
                ["enc", Name, Ms] ->
                    {_, Term} = maps:get(Name, Files),
                    reply("~.3f", [pass(fun(N) -> enc_loop(N, Term, 0) end, list_to_integer(Ms))]),
                    loop(Files);
                ["quit"] ->
                    halt(0)
            end
    end.

reply(Fmt, Args) ->
    io:format(Fmt ++ "~n", Args).

%% The result of each call is carried into the next iteration, so no call can be dropped.
dec_loop(0, _, Last) -> Last;
dec_loop(N, Bin, _) -> dec_loop(N - 1, Bin, binary_to_term(Bin)).

enc_loop(0, _, Acc) -> Acc;
enc_loop(N, Term, Acc) -> enc_loop(N - 1, Term, Acc + byte_size(term_to_binary(Term, [{minor_version, 2}]))).

%% Nanoseconds per operation over about Ms milliseconds.
pass(Run, Ms) ->
    erlang:garbage_collect(),
    PassNs = Ms * 1000000,
    Batch = calibrate(Run, 1, PassNs div 20),
    batches(Run, Batch, PassNs, 0, 0).

calibrate(Run, N, TargetNs) ->
    case time_ns(Run, N) of
        T when T >= TargetNs -> N;
        _ -> calibrate(Run, N * 2, TargetNs)
    end.

batches(_, _, PassNs, SpentNs, Ops) when SpentNs >= PassNs ->
    SpentNs / Ops;
batches(Run, Batch, PassNs, SpentNs, Ops) ->
    T = time_ns(Run, Batch),
    batches(Run, Batch, PassNs, SpentNs + T, Ops + Batch).

time_ns(Run, N) ->
    T0 = erlang:monotonic_time(nanosecond),
    _ = Run(N),
    erlang:monotonic_time(nanosecond) - T0.
