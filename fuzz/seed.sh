#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/<target>/, .gitignored) from the committed vectors and
# from small hand-made messages. Needs `escript` (OTP 25+ on PATH); safe to re-run: every seed
# is named by the SHA-1 of its bytes, as libFuzzer names corpus files.
#
#   decode_term          tests/data/otp*/ (BEAM-made ETF vectors, when present), the terms of
#                        the dist streams' frames, and term_to_binary of a term zoo in every
#                        option (compressed, minor_version 0/1/2, deterministic)
#   dist_receiver        tests/data/dist/<otp>/*.stream after the handshake, cut on frame
#                        boundaries into pieces of at most 60 KB, with the profile byte of
#                        their flags; single frames; every control op as a pass-through and a
#                        131,68,0 frame, under each profile
#   handshake_acceptor   'N' / 'n'+'c' names, 'r' replies with the right digest for cookie
#                        `fuzz`, and the real initiator handshakes from the dist streams
#   handshake_initiator  's' statuses, 'N' challenges, 'a' acks with the right digest, and the
#                        real acceptor handshakes
#   epmd_request         ALIVE2_REQ, PORT_PLEASE2_REQ (with and without the old trailing NUL),
#                        NAMES_REQ, KILL_REQ
#   epmd_replies         selector byte (0 ALIVE2, 1 PORT2, 2 NAMES, 3 KILL) then the reply
#   from_slice           the shapes of its typed targets (an Elixir user struct, role
#                        variants, borrowed fields, maps of lists, envelopes with a pid) as
#                        BEAM writes them under the decode_term options, and the term zoo
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
corpus="$here/corpus"
script="$(mktemp --suffix=.escript)"
trap 'rm -f "$script"' EXIT

for t in decode_term dist_receiver handshake_acceptor handshake_initiator epmd_request epmd_replies from_slice; do
    mkdir -p "$corpus/$t"
done

# Committed ETF vectors: every tests/data/otp*/*.etf up to the
# max_len the README's commands use.
shopt -s nullglob
for dir in "$root"/tests/data/otp*/; do
    find "$dir" -type f -name "*.etf" -size -65537c -print0 | while IFS= read -r -d '' f; do
        cp "$f" "$corpus/decode_term/$(sha1sum "$f" | cut -c1-40)"
    done
done

cat > "$script" <<'ERL'
#!/usr/bin/env escript
%%! -noshell
-mode(compile).

main([Root, Corpus]) ->
    Streams = streams(Root),
    decode_term(Corpus, Streams),
    dist_receiver(Corpus, Streams),
    handshake(Corpus, Streams),
    epmd(Corpus),
    from_slice(Corpus),
    ok.

%% ---------------------------------------------------------------- helpers

put(Corpus, Target, Bin) when is_binary(Bin) ->
    Name = lists:flatten([io_lib:format("~2.16.0b", [B]) || <<B>> <= crypto:hash(sha, Bin)]),
    ok = file:write_file(filename:join([Corpus, Target, Name]), Bin).

hs(Msg) -> <<(byte_size(Msg)):16, Msg/binary>>.
frame(Body) -> <<(byte_size(Body)):32, Body/binary>>.
body(Term) -> <<131, Rest/binary>> = term_to_binary(Term), Rest.

%% The cookie and challenge of erlnode::handshake::fuzz.
cookie() -> "fuzz".
our_challenge() -> 16#0bad_cafe.
digest(Challenge) -> erlang:md5([cookie(), integer_to_list(Challenge)]).

%% OTP 25's flags as the captured streams carry them, and erl_call's minimal set.
full_flags() -> 16#d07df7fbd.
old_flags() -> 16#7df7fbd.

%% {Otp, Flags profile byte, initiator->acceptor handshake msgs, frames, acceptor->initiator
%% handshake msgs, frames}; profile 1 is OTP 25's set, 3 adds ALTACT_SIG (OTP 28+).
streams(Root) ->
    lists:append(
      [begin
           Dir = filename:join([Root, "tests", "data", "dist", Otp]),
           {ok, Ini} = file:read_file(filename:join(Dir, "initiator_to_acceptor.stream")),
           {ok, Acc} = file:read_file(filename:join(Dir, "acceptor_to_initiator.stream")),
           {IniHs, IniFrames} = split(Ini, 2),
           {AccHs, AccFrames} = split(Acc, 3),
           Profile = case Otp of "otp29" -> 3; _ -> 1 end,
           [{Otp, Profile, IniHs, IniFrames, AccHs, AccFrames}]
       end || Otp <- ["otp25", "otp27", "otp29"],
              filelib:is_dir(filename:join([Root, "tests", "data", "dist", Otp]))]).

split(Bin, N) -> split_hs(Bin, N, []).
split_hs(Rest, 0, Acc) -> {lists:reverse(Acc), frames(Rest, [])};
split_hs(<<Len:16, Msg:Len/binary, Rest/binary>>, N, Acc) -> split_hs(Rest, N - 1, [Msg | Acc]).
frames(<<>>, Acc) -> lists:reverse(Acc);
frames(<<Len:32, Body:Len/binary, Rest/binary>>, Acc) -> frames(Rest, [Body | Acc]).

%% Cuts a list of frame bodies into framed pieces of at most Max bytes.
pieces(Frames, Max) -> pieces(Frames, Max, <<>>, []).
pieces([], _, <<>>, Acc) -> lists:reverse(Acc);
pieces([], _, Cur, Acc) -> lists:reverse([Cur | Acc]);
pieces([F | Fs], Max, Cur, Acc) ->
    Bin = frame(F),
    if
        byte_size(Bin) > Max -> pieces(Fs, Max, Cur, Acc);
        byte_size(Cur) + byte_size(Bin) > Max -> pieces(Fs, Max, Bin, [Cur | Acc]);
        true -> pieces(Fs, Max, <<Cur/binary, Bin/binary>>, Acc)
    end.

%% ---------------------------------------------------------------- ETF

zoo() ->
    Pid = self(),
    Ref = make_ref(),
    Port = hd(erlang:ports()),
    Fun = fun(X) -> {X, Pid} end,
    [0, 1, 255, 256, -1, 16#7fffffff, -16#80000000, 16#80000000, 1 bsl 64, -(1 bsl 64),
     1 bsl 300, -(1 bsl 2040), 1 bsl 2048,
     0.0, -0.0, 1.5, -3.25e-300, 1.0e300, 2.2250738585072014e-308,
     '', a, 'Hello World', 'ünïcödé', '原子', list_to_atom(lists:duplicate(255, $z)),
     <<>>, <<1, 2, 3>>, <<0:3>>, <<255, 1:1>>, binary:copy(<<"ab">>, 200),
     [], [1, 2, 3], "string", [1 | 2], [a, b | c], [[[[]]]], lists:seq(1, 300),
     {}, {a}, {1, 2, 3}, list_to_tuple(lists:seq(1, 300)),
     #{}, #{a => 1, <<"b">> => [2], {c} => #{d => e}}, maps:from_list([{I, I} || I <- lists:seq(1, 40)]),
     Pid, Ref, Port, alias(), fun lists:map/2, Fun,
     {ok, [{Pid, Ref}, #{k => {1.0, "x"}}, <<"bin">>, -5]},
     erlang:make_tuple(3, lists:duplicate(100, <<"compressible">>))].

decode_term(Corpus, Streams) ->
    Opts = [[], [compressed], [{compressed, 9}], [{minor_version, 0}], [{minor_version, 1}],
            [{minor_version, 2}], [deterministic]],
    [put(Corpus, decode_term, term_to_binary(T, O)) || T <- zoo(), O <- Opts],
    %% Each pass-through term of a frame, and each frame as a header body (atom-cache refs).
    [put(Corpus, decode_term, F) || {_, _, _, Fs, _, _} <- Streams, F <- lists:sublist(Fs, 40),
                                    byte_size(F) =< 65536],
    ok.

from_slice(Corpus) ->
    Opts = [[], [compressed], [{minor_version, 1}], [{minor_version, 2}], [deterministic]],
    Roles = [admin, {member, 7}, {custom, <<"x"/utf8>>, 3}, {limited, #{until => -1, reason => nil}},
             {limited, #{until => 1 bsl 40, reason => "why"}}],
    User = #{'__struct__' => 'Elixir.MyApp.User', name => <<"ann"/utf8>>, age => 33, email => nil,
             tags => [<<"a">>, "b"], role => {custom, <<"é"/utf8>>, 255}, avatar => <<0, 1, 2>>,
             score => 1.5, big => -(1 bsl 100), pos => {-1, 1 bsl 63}, meta => #{<<"k">> => 1},
             flags => [1, 2, 3]},
    Shapes = [User, maps:remove('__struct__', User), [User, User#{email => <<"e@x">>}], Roles,
              #{name => <<"ann">>, raw => <<1, 2>>, kind => ok},
              #{name => "ann", raw => [], kind => 'héllo'},
              #{<<"a">> => [1, nil, undefined, 1 bsl 70], <<"b">> => []},
              #{from => self(), body => {x, [1 | 2], #{}}, rest => "ab"}],
    [put(Corpus, from_slice, term_to_binary(T, O)) || T <- Shapes ++ zoo(), O <- Opts],
    ok.

%% ---------------------------------------------------------------- dist

controls() ->
    P = self(),
    R = make_ref(),
    Tok = {0, 1, 2, P, 3},
    [{{1, P, P}, none}, {{2, '', P}, {msg, 1}}, {{3, P, P, normal}, none}, {{4, P, P}, none},
     {{6, P, '', rex}, {call, erlang, node, [], P}}, {{7, P, P}, none},
     {{8, P, P, kill}, none}, {{12, '', P, Tok}, hello}, {{13, P, P, Tok, shutdown}, none},
     {{16, P, '', net_kernel, Tok}, {'$gen_call', {P, R}, {is_auth, node()}}},
     {{18, P, P, Tok, killed}, none}, {{19, P, P, R}, none}, {{19, P, name, R}, none},
     {{20, P, P, R}, none}, {{21, P, P, R, noproc}, none}, {{21, name, P, R, noconnection}, none},
     {{22, P, P}, msg}, {{23, P, P, Tok}, msg}, {{24, P, P}, {shutdown, x}},
     {{25, P, P, Tok}, reason}, {{26, P, P}, kill}, {{27, P, P, Tok}, kill},
     {{28, P, P, R}, noproc}, {{28, name, P, R}, noproc},
     {{29, R, P, P, {erlang, apply, 2}, [link, monitor]}, [erlang, node]},
     {{30, R, P, P, {m, f, 0}, [], Tok}, []},
     {{31, R, P, 0, P}, none}, {{31, R, P, 3, badarg}, none}, {{32, R, P, 1, P, Tok}, none},
     {{33, P, R}, msg}, {{34, P, R, Tok}, msg}, {{35, 7, P, P}, none}, {{36, 7, P, P}, none},
     {{37, 0, P, P}, msg}, {{37, 1, P, P}, msg}, {{37, 4, P, R}, msg}, {{37, 8, P, reg}, msg},
     {{37, 16, P, P}, kill}, {{37, 2, P, P, Tok}, msg}].

dist_receiver(Corpus, Streams) ->
    %% The recorded streams: pieces on frame boundaries, and each early frame on its own.
    [put(Corpus, dist_receiver, <<Profile, Piece/binary>>)
     || {_, Profile, _, Fs, _, Fs2} <- Streams, Frames <- [Fs, Fs2], Piece <- pieces(Frames, 60000)],
    [put(Corpus, dist_receiver, <<Profile, (frame(F))/binary>>)
     || {_, Profile, _, Fs, _, _} <- Streams, F <- lists:sublist(Fs, 20), byte_size(F) < 60000],
    %% Every op, pass-through (112) and with an empty distribution header (131,68,0), under each
    %% of the five profiles, plus a tick before it; and one whole stream of all of them.
    Frames = [{<<112, (term_to_binary(C))/binary, (payload(Pl, fun term_to_binary/1))/binary>>,
               <<131, 68, 0, (body(C))/binary, (payload(Pl, fun body/1))/binary>>}
              || {C, Pl} <- controls()],
    [put(Corpus, dist_receiver, <<Profile, 0:32, (frame(F))/binary>>)
     || {Pass, Hdr} <- Frames, F <- [Pass, Hdr], Profile <- [0, 1, 2, 3, 4]],
    [put(Corpus, dist_receiver, <<Profile, (iolist_to_binary([frame(element(E, F)) || F <- Frames]))/binary>>)
     || {Profile, E} <- [{0, 1}, {1, 2}, {3, 2}, {4, 1}]],
    ok.

payload(none, _) -> <<>>;
payload(T, Enc) -> Enc(T).

%% ---------------------------------------------------------------- handshake

handshake(Corpus, Streams) ->
    Peer = <<"peer@localhost">>,
    %% What the dialling peer sends to our acceptor: name, then the challenge reply.
    NameN = hs(<<$N, (full_flags()):64, 16#abcd:32, (byte_size(Peer)):16, Peer/binary>>),
    NameOld = hs(<<$n, 5:16, (old_flags()):32, Peer/binary>>),
    Complement = hs(<<$c, (full_flags() bsr 32):32, 16#abcd:32>>),
    Reply = hs(<<$r, 16#12345678:32, (digest(our_challenge()))/binary>>),
    BadReply = hs(<<$r, 16#12345678:32, 0:128>>),
    Leftover = <<0:32, (frame(<<112, (term_to_binary({2, '', self()}))/binary, 131, 106>>))/binary>>,
    [put(Corpus, handshake_acceptor, B)
     || B <- [NameN, NameOld, <<NameN/binary, Reply/binary>>, <<NameN/binary, BadReply/binary>>,
              <<NameN/binary, Reply/binary, Leftover/binary>>,
              <<NameOld/binary, Complement/binary, Reply/binary>>]],
    [put(Corpus, handshake_acceptor, iolist_to_binary([hs(M) || M <- Hs]))
     || {_, _, Hs, _, _, _} <- Streams],
    %% What the peer we dialled sends to our initiator: status, challenge, ack.
    Challenge = hs(<<$N, (full_flags()):64, 16#55aa55aa:32, 16#abcd:32, (byte_size(Peer)):16, Peer/binary>>),
    Ack = hs(<<$a, (digest(our_challenge()))/binary>>),
    Statuses = [hs(<<$s, S/binary>>) || S <- [<<"ok">>, <<"ok_simultaneous">>, <<"nok">>,
                                              <<"not_allowed">>, <<"alive">>, <<"named:">>]],
    [put(Corpus, handshake_initiator, B)
     || B <- Statuses ++
             [<<S/binary, Challenge/binary>> || S <- Statuses] ++
             [<<S/binary, Challenge/binary, Ack/binary>> || S <- Statuses] ++
             [<<(hd(Statuses))/binary, Challenge/binary, Ack/binary, Leftover/binary>>]],
    [put(Corpus, handshake_initiator, iolist_to_binary([hs(M) || M <- Hs]))
     || {_, _, _, _, Hs, _} <- Streams],
    ok.

%% ---------------------------------------------------------------- EPMD

node_fields(Name, Extra) ->
    <<4370:16, $M, 0, 6:16, 5:16, (byte_size(Name)):16, Name/binary, (byte_size(Extra)):16, Extra/binary>>.

epmd(Corpus) ->
    Req = fun(Body) -> <<(byte_size(Body)):16, Body/binary>> end,
    [put(Corpus, epmd_request, B)
     || B <- [Req(<<120, (node_fields(<<"node">>, <<>>))/binary>>),
              Req(<<120, (node_fields(<<"ünï"/utf8>>, <<"extra">>))/binary>>),
              Req(<<122, "node">>), Req(<<122, "node", 0>>), Req(<<110>>), Req(<<107>>)]],
    [put(Corpus, epmd_replies, B)
     || B <- [<<0, 118, 0, 16#12345678:32>>, <<0, 118, 1, 99:32>>, <<0, 121, 0, 3:16>>,
              <<1, 119, 0, (node_fields(<<"node">>, <<>>))/binary>>,
              <<1, 119, 0, (node_fields(<<"x">>, <<"extra">>))/binary>>, <<1, 119, 1>>,
              <<2, 4369:32>>, <<2, 4369:32, "name foo at port 1234\nname bar at port 56789\n">>,
              <<3, "OK">>, <<3, "NO">>]],
    ok.
ERL

escript "$script" "$root" "$corpus"
for t in "$corpus"/*/; do
    echo "$(basename "$t"): $(find "$t" -type f | wc -l) seeds"
done
