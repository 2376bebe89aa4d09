#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%%
%% Writes External Term Format vectors made by this BEAM:
%%
%%   escript erlang_interop/make_vectors.escript OUTDIR
%%
%% For every case NAME: OUTDIR/NAME.etf = term_to_binary(T, [{minor_version, 2}]) (or the
%% encoding the case's flags name), and one line in OUTDIR/index.txt:
%%
%%   NAME <TAB> RENDER <TAB> FLAGS
%%
%% RENDER is a canonical, unambiguous text of the term (tests/vectors.rs renders the decoded
%% term the same way); renders longer than 1024 bytes are written as "MD5:" ++ hex(md5(Render)).
%% FLAGS is "exact" when erlnode must re-encode the term to the very same bytes, otherwise
%% "decode-only:" and the reason. Some big cases also get OUTDIR/NAME.z.etf, made with
%% term_to_binary(T, [compressed]), checked by decoding only.
%%
%% Rendering:
%%   integer       decimal
%%   float         F:<16 lowercase hex digits of the IEEE-754 bits>
%%   atom          A:<hex of UTF-8>
%%   binary        B:<hex>;  bitstring BS:<bits in last byte>:<hex, last byte zero-padded>
%%   tuple         {e1,e2}   list [e1,e2]   improper [e1,e2|tail]   nil []
%%   map           #{k=>v,...} sorted by key in term order
%%   pid           P:<node hex>:<id>:<serial>:<creation>
%%   port          PT:<node hex>:<id>:<creation>
%%   reference     R:<node hex>:<creation>:<w0>.<w1>...   (words in wire order)
%%   export fun    E:<module hex>:<function hex>:<arity>
%%   local fun     L:<module hex>:<arity>:<index>:<uniq hex>:<old index>:<old uniq>:<pid>:[free vars]
-mode(compile).

main([OutDir]) ->
    ok = filelib:ensure_path(OutDir),
    Cases = cases(),
    Names = [N || {N, _, _} <- Cases],
    length(Names) =:= length(lists:usort(Names)) orelse error(duplicate_names),
    Lines = [write_case(OutDir, C) || C <- Cases],
    ok = file:write_file(filename:join(OutDir, "index.txt"), Lines),
    io:format("~s: ~b cases written to ~s~n", [erlang:system_info(otp_release), length(Cases), OutDir]);
main(_) ->
    io:format(standard_error, "usage: make_vectors.escript OUTDIR~n", []),
    halt(2).

%% {Name, Term, Options}; Options: [compressed] adds NAME.z.etf; {encode, Opts} replaces the
%% term_to_binary options (and makes the case decode-only).
write_case(Dir, {Name, Term, Opts}) ->
    {Bin, Flags} =
        case proplists:get_value(encode, Opts) of
            undefined ->
                {term_to_binary(Term, [{minor_version, 2}]), exact_flag(Term)};
            EncOpts ->
                {term_to_binary(Term, EncOpts),
                 "decode-only:term_to_binary options " ++ lists:flatten(io_lib:format("~w", [EncOpts]))}
        end,
    %% the bytes must decode back to the term in this BEAM, or the case is useless
    Term =:= binary_to_term(Bin) orelse is_function(Term) orelse error({no_round_trip, Name}),
    ok = file:write_file(filename:join(Dir, Name ++ ".etf"), Bin),
    case lists:member(compressed, Opts) of
        true ->
            Z = term_to_binary(Term, [compressed]),
            <<131, 80, _/binary>> = Z,
            ok = file:write_file(filename:join(Dir, Name ++ ".z.etf"), Z);
        false ->
            ok
    end,
    R = render(Term),
    Render = case iolist_size(R) > 1024 of
                 true -> ["MD5:", hex(erlang:md5(R))];
                 false -> R
             end,
    [Name, $\t, Render, $\t, Flags, $\n].

%% OTP 26 made V4_PORT_EXT the only port encoding; OTP 25 still writes NEW_PORT_EXT for ports
%% whose number fits 32 bits (and V4_PORT_EXT for larger ones). erlnode encodes as OTP 26+ does.
exact_flag(Term) ->
    Release = list_to_integer(erlang:system_info(otp_release)),
    case Release < 26 andalso has_port32(Term) of
        true -> "decode-only:OTP 25 writes NEW_PORT_EXT, OTP 26+ and erlnode V4_PORT_EXT";
        false -> "exact"
    end.

has_port32(P) when is_port(P) ->
    element(1, split_binary(term_to_binary(P), 2)) =:= <<131, 89>>;
has_port32(T) when is_tuple(T) -> has_port32(tuple_to_list(T));
has_port32([H | T]) -> has_port32(H) orelse has_port32(T);
has_port32(M) when is_map(M) -> has_port32(maps:to_list(M));
has_port32(_) -> false.

%% ---------------------------------------------------------------------------------------------
%% The corpus

cases() ->
    Other = <<119, 10, "other@host">>,
    RemotePid = binary_to_term(<<131, 88, Other/binary, 123:32, 4:32, 7:32>>),
    RemotePidBig = binary_to_term(<<131, 88, Other/binary, 16#FFFFFFFF:32, 16#FFFFFFFF:32, 16#FFFFFFFF:32>>),
    RemotePort = binary_to_term(<<131, 120, Other/binary, 5:64, 7:32>>),
    RemotePortBig = binary_to_term(<<131, 120, Other/binary, (1 bsl 40 + 3):64, 7:32>>),
    RemoteRef3 = binary_to_term(<<131, 90, 3:16, Other/binary, 7:32, 1:32, 2:32, 3:32>>),
    RemoteRef5 = binary_to_term(<<131, 90, 5:16, Other/binary, 7:32, 1:32, 2:32, 3:32, 4:32, 5:32>>),
    RemoteRef1 = binary_to_term(<<131, 90, 1:16, Other/binary, 9:32, 42:32>>),
    Alias = alias(),
    Ref = make_ref(),
    {NoFree, WithFree, Nested} = local_funs(),
    Deep = fun Deep(0, Acc, _) -> Acc; Deep(N, Acc, W) -> Deep(N - 1, W(Acc), W) end,
    Map = fun(N) -> maps:from_list([{list_to_atom("k" ++ integer_to_list(I)), I} || I <- lists:seq(1, N)]) end,
    NegZero = neg_zero(),
    <<MaxDouble/float>> = <<16#7FEFFFFFFFFFFFFF:64>>,
    Bin64K = binary:copy(<<"0123456789abcdef">>, 4096),
    Bin1M = pseudo_random(1 bsl 20),
    [
     %% integers
     {"int_0", 0, []},
     {"int_minus_1", -1, []},
     {"int_255", 255, []},
     {"int_256", 256, []},
     {"int_2_27", 1 bsl 27, []},
     {"int_minus_2_27_minus_1", -(1 bsl 27) - 1, []},
     {"int_i32_max", (1 bsl 31) - 1, []},
     {"int_2_31", 1 bsl 31, []},
     {"int_minus_2_31", -(1 bsl 31), []},
     {"int_minus_2_31_minus_1", -(1 bsl 31) - 1, []},
     {"int_i64_max", (1 bsl 63) - 1, []},
     {"int_2_63", 1 bsl 63, []},
     {"int_i64_min", -(1 bsl 63), []},
     {"int_minus_2_63_minus_1", -(1 bsl 63) - 1, []},
     {"int_2_64", 1 bsl 64, []},
     {"int_2_2040_minus_1", (1 bsl 2040) - 1, []},
     {"int_2_2040", 1 bsl 2040, []},
     {"int_2_2000", 1 bsl 2000, []},
     {"int_minus_2_2000", -(1 bsl 2000), []},
     %% floats
     {"float_0", 0.0, []},
     {"float_minus_0", NegZero, []},
     {"float_1_5", 1.5, []},
     {"float_1e300", 1.0e300, []},
     {"float_minus_1e_minus_300", -1.0e-300, []},
     {"float_min_subnormal", 5.0e-324, []},
     {"float_max", MaxDouble, []},
     {"float_pi", math:pi(), []},
     %% atoms
     {"atom_empty", '', []},
     {"atom_ok", ok, []},
     {"atom_true", true, []},
     {"atom_quoted", 'Quoted atom', []},
     {"atom_255_ascii", list_to_atom(lists:duplicate(255, $a)), []},
     {"atom_255_e_acute", list_to_atom(lists:duplicate(255, 16#E9)), []},
     {"atom_255_emoji", list_to_atom(lists:duplicate(255, 16#1F600)), []},
     {"atom_mixed_unicode", list_to_atom([$h, 16#E9, $l, 16#3B1, 16#1F600]), []},
     %% binaries and bitstrings
     {"binary_empty", <<>>, []},
     {"binary_1", <<42>>, []},
     {"binary_64k", Bin64K, [compressed]},
     {"binary_1m", Bin1M, []},
     {"bits_1_1", <<1:1>>, []},
     {"bits_255_3_2", <<255, 3:2>>, []},
     {"bits_7", <<16#AB, 16#CD, 5:7>>, []},
     %% lists
     {"nil", [], []},
     {"list_123", [1, 2, 3], []},
     {"improper_1_2", [1 | 2], []},
     {"improper_abc", [a, b | c], []},
     {"improper_binary_tail", [1, 2 | <<"t">>], []},
     {"string_abc", "abc", []},
     {"string_65535", [I rem 256 || I <- lists:seq(1, 65535)], []},
     {"list_65536_bytes", [I rem 256 || I <- lists:seq(1, 65536)], [compressed]},
     {"list_70000_bytes", [I rem 256 || I <- lists:seq(1, 70000)], [compressed]},
     {"list_300_codepoints", lists:seq(300, 599), []},
     {"list_mixed", [1, 256, -1, a, "x", <<"y">>, 1.0], []},
     {"list_of_lists", [[], [[]], "ab", [1 | 2]], []},
     %% tuples
     {"tuple_empty", {}, []},
     {"tuple_1", {1}, []},
     {"tuple_255", list_to_tuple(lists:seq(1, 255)), []},
     {"tuple_256", list_to_tuple(lists:seq(1, 256)), []},
     {"tuple_deep_1000", Deep(1000, leaf, fun(X) -> {X} end), [compressed]},
     {"list_deep_1000", Deep(1000, leaf, fun(X) -> [X] end), [compressed]},
     {"mixed_deep_990", Deep(330, [], fun(X) -> {a, [#{k => X}]} end), []},
     %% maps
     {"map_empty", #{}, []},
     {"map_1", #{a => 1}, []},
     {"map_32", Map(32), []},
     {"map_33", Map(33), []},
     {"map_1000", Map(1000), [compressed]},
     {"map_int_keys_100", maps:from_list([{I, I * I} || I <- lists:seq(1, 100)]), []},
     {"map_non_atom_keys",
      #{{1, 2} => tuple, <<"bin">> => binary, #{x => 1} => map, [1, 2] => list, 1 => int,
        2.5 => float, "str" => string, [] => nil, RemotePid => pid}, []},
     {"map_nested", #{a => #{b => #{c => 1}}, d => [#{}], e => {#{f => g}}}, []},
     {"map_50_map_keys", maps:from_list([{#{I => I}, I} || I <- lists:seq(1, 50)]), []},
     %% pids, ports, references
     {"pid_local", self(), []},
     {"pid_remote", RemotePid, []},
     {"pid_remote_max", RemotePidBig, []},
     {"port_local", hd(erlang:ports()), []},
     {"port_remote", RemotePort, []},
     {"port_remote_64bit", RemotePortBig, []},
     {"ref_local", Ref, []},
     {"ref_alias", Alias, []},
     {"ref_remote_1", RemoteRef1, []},
     {"ref_remote_3", RemoteRef3, []},
     {"ref_remote_5", RemoteRef5, []},
     %% funs
     {"fun_export_lists_map", fun lists:map/2, []},
     {"fun_export_elixir_identity", fun 'Elixir.Function':identity/1, []},
     {"fun_export_unicode", fun 'modülé':'fün'/255, []},
     {"fun_local_no_free", NoFree, []},
     {"fun_local_free", WithFree, []},
     {"fun_local_nested", Nested, []},
     %% messages
     {"gen_call", {'$gen_call', {self(), [alias | Alias]}, {set, foo, 123}}, []},
     {"gen_call_remote", {'$gen_call', {RemotePid, [alias | RemoteRef3]}, {get, <<"key">>}}, []},
     {"gen_reply", {[alias | Alias], {ok, 123}}, []},
     {"monitor_down", {'DOWN', Ref, process, {reg_name, 'other@host'}, noconnection}, []},
     {"mixed_message", {ok, [1, 2.0, "str", <<"bin">>, #{k => v}, {RemotePort, RemoteRef5}]}, []},
     %% obsolete encodings a BEAM still writes when asked: decode-only
     {"legacy_float_ext", 1.5, [{encode, [{minor_version, 0}]}]},
     {"legacy_float_ext_neg", -1.0e-300, [{encode, [{minor_version, 0}]}]},
     {"legacy_atom_ext", {ok, 'Quoted atom', [list_to_atom([16#E9])]}, [{encode, [{minor_version, 1}]}]}
    ].

neg_zero() ->
    <<F/float>> = <<16#8000000000000000:64>>,
    F.

%% Deterministic bytes (xorshift32), identical on every OTP so git stores the file once.
pseudo_random(N) ->
    pseudo_random(N, 16#9E3779B9, []).
pseudo_random(0, _, Acc) ->
    list_to_binary(Acc);
pseudo_random(N, X0, Acc) ->
    X1 = X0 bxor ((X0 bsl 13) band 16#FFFFFFFF),
    X2 = X1 bxor (X1 bsr 17),
    X3 = X2 bxor ((X2 bsl 5) band 16#FFFFFFFF),
    pseudo_random(N - 1, X3, [X3 band 255 | Acc]).

%% Real local funs from a compiled module.
local_funs() ->
    Src = "-module(vec_funs).\n"
          "-export([no_free/0, with_free/2, nested/1]).\n"
          "no_free() -> fun(X) -> X + 1 end.\n"
          "with_free(A, B) -> fun(X) -> {A, B, X} end.\n"
          "nested(A) -> F = fun(Y) -> {A, Y} end, fun(Z) -> F(Z) end.\n",
    {ok, Tokens, _} = erl_scan:string(Src),
    Forms = split_forms(Tokens, [], []),
    {ok, vec_funs, Beam} = compile:forms(Forms, [binary]),
    {module, vec_funs} = code:load_binary(vec_funs, "vec_funs.erl", Beam),
    {vec_funs:no_free(), vec_funs:with_free(42, <<"free">>), vec_funs:nested({x, [1]})}.

split_forms([], [], Acc) ->
    lists:reverse(Acc);
split_forms([{dot, _} = Dot | Rest], Cur, Acc) ->
    {ok, Form} = erl_parse:parse_form(lists:reverse([Dot | Cur])),
    split_forms(Rest, [], [Form | Acc]);
split_forms([T | Rest], Cur, Acc) ->
    split_forms(Rest, [T | Cur], Acc).

%% ---------------------------------------------------------------------------------------------
%% The canonical rendering

render(I) when is_integer(I) -> integer_to_list(I);
render(F) when is_float(F) ->
    <<B:64>> = <<F/float>>,
    ["F:", hex(<<B:64>>)];
render(A) when is_atom(A) -> ["A:", hex(atom_to_binary(A, utf8))];
render(B) when is_binary(B) -> ["B:", hex(B)];
render(B) when is_bitstring(B) ->
    Bits = bit_size(B) rem 8,
    Pad = 8 - Bits,
    ["BS:", integer_to_list(Bits), ":", hex(<<B/bitstring, 0:Pad>>)];
render(T) when is_tuple(T) -> ["{", join([render(E) || E <- tuple_to_list(T)]), "}"];
render([]) -> "[]";
render(L) when is_list(L) -> ["[", render_list(L, []), "]"];
render(M) when is_map(M) ->
    Sorted = lists:sort(fun({K1, _}, {K2, _}) -> K1 =< K2 end, maps:to_list(M)),
    ["#{", join([[render(K), "=>", render(V)] || {K, V} <- Sorted]), "}"];
render(P) when is_pid(P) ->
    <<131, 88, Rest/binary>> = term_to_binary(P, [{minor_version, 2}]),
    {Node, <<Id:32, Serial:32, Creation:32>>} = next_term(Rest),
    ["P:", hex(atom_to_binary(Node, utf8)), ":", ints([Id, Serial, Creation])];
render(P) when is_port(P) ->
    {Node, Id, Creation} =
        case term_to_binary(P, [{minor_version, 2}]) of
            <<131, 120, Rest/binary>> ->
                {N, <<I:64, C:32>>} = next_term(Rest),
                {N, I, C};
            <<131, 89, Rest/binary>> ->
                {N, <<I:32, C:32>>} = next_term(Rest),
                {N, I, C}
        end,
    ["PT:", hex(atom_to_binary(Node, utf8)), ":", ints([Id, Creation])];
render(R) when is_reference(R) ->
    <<131, 90, Len:16, Rest/binary>> = term_to_binary(R, [{minor_version, 2}]),
    {Node, <<Creation:32, Words/binary>>} = next_term(Rest),
    Len = byte_size(Words) div 4,
    ["R:", hex(atom_to_binary(Node, utf8)), ":", integer_to_list(Creation), ":",
     lists:join(".", [integer_to_list(W) || <<W:32>> <= Words])];
render(F) when is_function(F) ->
    case erlang:fun_info(F, type) of
        {type, external} ->
            {module, M} = erlang:fun_info(F, module),
            {name, N} = erlang:fun_info(F, name),
            {arity, A} = erlang:fun_info(F, arity),
            ["E:", hex(atom_to_binary(M, utf8)), ":", hex(atom_to_binary(N, utf8)), ":",
             integer_to_list(A)];
        {type, local} ->
            <<131, 112, _Size:32, Arity:8, Uniq:16/binary, Index:32, NumFree:32, Rest0/binary>> =
                term_to_binary(F, [{minor_version, 2}]),
            {Module, Rest1} = next_term(Rest0),
            {OldIndex, Rest2} = next_term(Rest1),
            {OldUniq, Rest3} = next_term(Rest2),
            {Pid, Rest4} = next_term(Rest3),
            {Free, <<>>} = lists:foldl(fun(_, {Acc, R}) ->
                                               {T, R2} = next_term(R),
                                               {[T | Acc], R2}
                                       end, {[], Rest4}, lists:seq(1, NumFree)),
            ["L:", hex(atom_to_binary(Module, utf8)), ":", ints([Arity, Index]), ":", hex(Uniq), ":",
             ints([OldIndex, OldUniq]), ":", render(Pid), ":", render(lists:reverse(Free))]
    end.

render_list([H | T], Acc) when is_list(T) -> render_list(T, [render(H) | Acc]);
render_list([H | T], Acc) -> [join(lists:reverse([render(H) | Acc])), "|", render(T)];
render_list([], Acc) -> join(lists:reverse(Acc)).

%% The next encoded term (no version byte) at the start of Bin, and the bytes after it.
next_term(Bin) ->
    {T, Used} = binary_to_term(<<131, Bin/binary>>, [used]),
    <<_:(Used - 1)/binary, Rest/binary>> = Bin,
    {T, Rest}.

join(Items) -> lists:join(",", Items).

ints(Is) -> lists:join(":", [integer_to_list(I) || I <- Is]).

hex(Bin) -> [[nib(B bsr 4), nib(B band 15)] || <<B>> <= Bin].

nib(N) when N < 10 -> $0 + N;
nib(N) -> $a + N - 10.
