#!/usr/bin/env escript
%% -*- erlang -*-
%%! -name erlnode_bench@127.0.0.1 -start_epmd false -erl_epmd_port 0
%%
%% Writes the codec benchmark corpus: one term per file, as
%% term_to_binary(T, [{minor_version, 2}]) makes it, into benches/corpus/NAME.etf.
%%
%%   escript erlang_interop/make_bench_corpus.escript [OUT_DIR]
%%
%% OUT_DIR defaults to benches/corpus next to this script's directory. The node is distributed
%% (a -name without EPMD), so pids and references carry a real node name, as on the wire.
%% Every term is deterministic except the $gen_call message (its pid and reference).
-mode(compile).

main(Args) ->
    Dir = case Args of
              [D] -> D;
              [] -> filename:join([filename:dirname(escript:script_name()), "..", "benches", "corpus"])
          end,
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    lists:foreach(
      fun({Name, Term}) ->
              Bin = term_to_binary(Term, [{minor_version, 2}]),
              Term = binary_to_term(Bin),
              Path = filename:join(Dir, Name ++ ".etf"),
              ok = file:write_file(Path, Bin),
              io:format("~-16s ~9b bytes~n", [Name, byte_size(Bin)])
      end, corpus()).

corpus() ->
    Seq = lists:seq(1, 1000),
    [%% 1000 small integers: SMALL_INTEGER_EXT below 256, INTEGER_EXT above (a LIST_EXT,
     %% not a STRING_EXT, since some exceed 255)
     {"small_ints", Seq},
     %% a tuple of 1000 atoms, 100 distinct names of varying length
     {"atom_tuple", list_to_tuple([atom_n(I) || I <- Seq])},
     %% a 1000-key map with mixed keys and values
     {"map_1000", maps:from_list([{map_key(I), map_value(I)} || I <- Seq])},
     %% one 1 MiB binary
     {"binary_1mib", << <<(I rem 251)>> || I <- lists:seq(0, 1048575) >>},
     %% 1000 binaries of 0..63 bytes
     {"binaries_1000", [binary:copy(<<(I rem 256)>>, I rem 64) || I <- Seq]},
     %% 1000 bignums around 2^200 (SMALL_BIG_EXT of 26 bytes)
     {"bigints_1000", [(1 bsl 200) + I * 7919 || I <- Seq]},
     %% 1000 floats (NEW_FLOAT_EXT)
     {"floats_1000", [I * 1.1 / 3 || I <- Seq]},
     %% {{{...{ok}...}}}: 1000 nested one-element tuples
     {"nested_1000", lists:foldl(fun(_, T) -> {T} end, ok, Seq)},
     %% what gen_server:call puts on the wire for a KV set
     {"gen_call", gen_call()}].

atom_n(I) ->
    list_to_atom(lists:flatten(io_lib:format("atom_~s_~b", [lists:duplicate(I rem 7, $x), I rem 100]))).

map_key(I) when I rem 3 =:= 0 -> I;
map_key(I) when I rem 3 =:= 1 -> list_to_atom("key_" ++ integer_to_list(I));
map_key(I) -> <<"key_", (integer_to_binary(I))/binary>>.

map_value(I) ->
    case I rem 6 of
        0 -> I * 1000;
        1 -> <<"value number ", (integer_to_binary(I))/binary>>;
        2 -> atom_n(I);
        3 -> I / 7;
        4 -> {I, <<"x">>, [a, b]};
        5 -> [I, I + 1, I + 2]
    end.

%% A real '$gen_call' message: a fake server receives what gen_server:call sends (on OTP 24+
%% {'$gen_call', {Pid, [alias | Ref]}, Request}) and replies, so the call completes.
gen_call() ->
    Parent = self(),
    Server = spawn(fun() ->
                           receive
                               {'$gen_call', From, _} = Msg ->
                                   Parent ! {captured, Msg},
                                   gen_server:reply(From, ok)
                           end
                   end),
    Request = {set, <<"user:42">>, #{name => <<"Ada Lovelace">>, visits => 3, tags => [admin, math]}},
    ok = gen_server:call(Server, Request, 5000),
    receive {captured, Msg} -> Msg after 5000 -> error(no_gen_call) end.
