//! `term::typed` against real BEAM (every OTP version of the harness): generated values go
//! `to_vec` → `binary_to_term` → `term_to_binary` → `from_slice` and come back equal (and, for
//! values without maps, BEAM writes our very bytes); hand-written values are the Erlang
//! literal the conventions table says, and an Elixir node sees `%MyApp.Point{}` structs and
//! tagged tuples as Elixir code writes them. A typed GenServer answers `GenServer.call` from
//! Elixir (and a request that does not fit its type), and a typed call reaches an Elixir
//! GenServer.

mod common;
mod typed_values;

use std::time::Duration;

use common::*;
use erlnode::gen_server::{self, CallReply, From, TypedCallError, TypedGenServer};
use erlnode::node::NodeConfig;
use erlnode::term::{Atom, Term, from_slice, to_vec};
use erlnode::{Dest, Process};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use typed_values::*;

/// Values per type and OTP version.
const CASES: usize = 48;
/// Values per `eval` (one expression carries the batch both ways).
const BATCH: usize = 16;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit")).collect()
}

/// The hex strings in a printed list of binaries: `[<<"83...">>,<<"...">>]`.
fn binaries_in(printed: &str) -> Vec<String> {
    printed.split("<<\"").skip(1).map(|s| s.split("\">>").next().unwrap_or("").replace(['\n', ' '], "")).collect()
}

/// `CASES` values of `strategy`, the same on every run.
fn generate<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>) -> Vec<T> {
    let mut runner = TestRunner::deterministic();
    (0..CASES).map(|_| strategy.new_tree(&mut runner).expect("a value").current()).collect()
}

/// Every value through BEAM and back; with `same_bytes`, BEAM's encoding must be ours.
fn through_beam<T>(node: &BeamNode, values: &[T], same_bytes: bool)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    for batch in values.chunks(BATCH) {
        let ours: Vec<Vec<u8>> = batch.iter().map(|v| to_vec(v).expect("to_vec")).collect();
        let list: Vec<String> = ours.iter().map(|b| format!("<<\"{}\">>", hex(b))).collect();
        let expr = format!(
            "[binary:encode_hex(term_to_binary(binary_to_term(binary:decode_hex(H)), [{{minor_version, 2}}])) || H <- [{}]]",
            list.join(",")
        );
        let printed = node.eval(&expr).unwrap_or_else(|e| panic!("{}: {e}", node.otp()));
        let theirs = binaries_in(&printed);
        assert_eq!(theirs.len(), batch.len(), "{}: {printed}", node.otp());
        for ((v, ours), theirs) in batch.iter().zip(&ours).zip(&theirs) {
            let theirs = unhex(theirs);
            let back: T = from_slice(&theirs).unwrap_or_else(|e| panic!("{}: {v:?}: {e}", node.otp()));
            assert_eq!(&back, v, "{}", node.otp());
            if same_bytes {
                assert_eq!(&theirs, ours, "{}: BEAM wrote other bytes for {v:?}", node.otp());
            }
        }
    }
}

#[test]
fn generated_values_round_trip_through_beam() {
    let users = generate(user());
    let plains = generate(plain());
    let envelopes = generate(envelope());
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let erl = BeamNode::start(otp, &epmd, NodeOpts::erlang());
        through_beam(&erl, &users, false);
        through_beam(&erl, &plains, true);
        through_beam(&erl, &envelopes, false);
        through_beam(&erl, std::slice::from_ref(&users), false);
    });
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "Elixir.MyApp.Point")]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Msg {
    Ping,
    Get(String),
    Set(String, i64),
    Move { x: i32, y: i32 },
}

/// `to_vec(v)` is, for BEAM, the term of `literal`.
fn beam_reads_as<T: Serialize>(node: &BeamNode, v: &T, literal: &str) {
    let expr = format!("binary_to_term(binary:decode_hex(<<\"{}\">>)) =:= ({literal})", hex(&to_vec(v).unwrap()));
    assert_eq!(node.eval(&expr).as_deref(), Ok("true"), "{}: {literal}", node.otp());
}

#[test]
fn conventions_as_beam_reads_them() {
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let erl = BeamNode::start(otp, &epmd, NodeOpts::erlang());
        beam_reads_as(&erl, &Point { x: 1, y: -2 }, "#{'__struct__' => 'Elixir.MyApp.Point', x => 1, y => -2}");
        beam_reads_as(&erl, &Msg::Ping, "ping");
        beam_reads_as(&erl, &Msg::Get("k".into()), "{get, <<\"k\">>}");
        beam_reads_as(&erl, &Msg::Set("k".into(), 1 << 40), "{set, <<\"k\">>, 1 bsl 40}");
        beam_reads_as(&erl, &Msg::Move { x: 1, y: 2 }, "{move, #{x => 1, y => 2}}");
        beam_reads_as(&erl, &None::<i32>, "nil");
        beam_reads_as(&erl, &(), "{}");
        beam_reads_as(&erl, &vec![104u8, 105], "\"hi\"");
        beam_reads_as(&erl, &serde_bytes::ByteBuf::from(vec![104, 105]), "<<\"hi\">>");
        beam_reads_as(&erl, &"héllo", "<<\"héllo\"/utf8>>");
        beam_reads_as(&erl, &i128::MIN, "-(1 bsl 127)");
        beam_reads_as(&erl, &u128::MAX, "(1 bsl 128) - 1");
        beam_reads_as(&erl, &(true, 1.5, [1u16, 2]), "{true, 1.5, {1, 2}}");

        // and what Erlang code writes (OTP 25 defaults to Latin-1 atom tags), read back
        let read = |expr: &str| {
            let printed = erl.eval(&format!("binary:encode_hex(term_to_binary({expr}))")).unwrap();
            unhex(&binaries_in(&format!("[{printed}]"))[0])
        };
        assert_eq!(from_slice::<Msg>(&read("{set, \"k\", 7}")).unwrap(), Msg::Set("k".into(), 7));
        assert_eq!(from_slice::<Option<Msg>>(&read("undefined")).unwrap(), None);
        assert_eq!(from_slice::<Point>(&read("#{y => 2, x => 1, z => 3}")).unwrap(), Point { x: 1, y: 2 });
    });
}

#[test]
fn elixir_sees_structs_and_tagged_tuples() {
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let ex = BeamNode::start(otp, &epmd, NodeOpts::elixir());
        ex.eval("defmodule MyApp.Point do defstruct [:x, :y] end").unwrap();
        let bytes = to_vec(&Point { x: 1, y: 2 }).unwrap();
        let expr = format!("inspect(:erlang.binary_to_term(Base.decode16!(\"{}\")))", hex(&bytes));
        assert_eq!(ex.eval(&expr).unwrap(), "\"%MyApp.Point{x: 1, y: 2}\"", "{otp}");
        let bytes = to_vec(&Msg::Move { x: 3, y: 4 }).unwrap();
        let expr =
            format!("match?({{:move, %{{x: 3, y: 4}}}}, :erlang.binary_to_term(Base.decode16!(\"{}\")))", hex(&bytes));
        assert_eq!(ex.eval(&expr).unwrap(), "true", "{otp}");
        // and back from what Elixir writes
        let printed = ex.eval("Base.encode16(:erlang.term_to_binary(%MyApp.Point{x: 5, y: 6}))").unwrap();
        let back: Point = from_slice(&unhex(printed.trim_matches('"'))).unwrap();
        assert_eq!(back, Point { x: 5, y: 6 }, "{otp}");
        let printed = ex.eval("Base.encode16(:erlang.term_to_binary({:get, ~c\"key\"}))").unwrap();
        assert_eq!(from_slice::<Msg>(&unhex(printed.trim_matches('"'))).unwrap(), Msg::Get("key".into()), "{otp}");
    });
}

/// A typed server: `{:move, %{x: .., y: ..}}` moves the point, `:ping` answers `:pong`-ish.
struct Mover(Point);

impl TypedGenServer for Mover {
    type Call = Msg;
    type Reply = Point;
    type Cast = Term;

    async fn handle_call(&mut self, request: Msg, _from: &From, _p: &mut Process) -> CallReply<Point> {
        if let Msg::Move { x, y } = request {
            self.0 = Point { x: self.0.x + x, y: self.0.y + y };
        }
        CallReply::Reply(Point { x: self.0.x, y: self.0.y })
    }
}

#[test]
fn typed_genservers_both_ways() {
    const T: Duration = Duration::from_secs(20);
    for_each_otp_async(|otp| async move {
        let epmd = Epmd::start(&otp);
        let ex = BeamNode::start(&otp, &epmd, NodeOpts::elixir());
        let config = NodeConfig::new(unique_name("typed"), DEFAULT_COOKIE).epmd_port(epmd.port());
        let node = erlnode::services::start_node(config).await.expect("rust node starts");
        gen_server::start_typed(&node, Mover(Point { x: 0, y: 0 }), Some(Atom::new("mover"))).await.unwrap();
        ex.eval_async("defmodule MyApp.Point do defstruct [:x, :y] end").await.unwrap();
        let dest = format!("{{:mover, {}}}", elixir_atom(node.name().as_str()));

        // Elixir calls the typed server with its own terms
        let got = ex.eval_async(&format!("GenServer.call({dest}, {{:move, %{{x: 2, y: 3}}}})")).await.unwrap();
        assert_eq!(got, "%MyApp.Point{x: 2, y: 3}", "{otp}");
        let got = ex.eval_async(&format!("GenServer.call({dest}, :ping)")).await.unwrap();
        assert_eq!(got, "%MyApp.Point{x: 2, y: 3}", "{otp}");
        // a request that does not fit gets the documented reply, and the server carries on
        let got = ex.eval_async(&format!("GenServer.call({dest}, {{:move, %{{x: 1}}}})")).await.unwrap();
        assert_eq!(got, "{:error, {:bad_request, \"at {move}: missing field `y`\"}}", "{otp}");
        let got = ex.eval_async(&format!("GenServer.call({dest}, {{:teleport, 1}})")).await.unwrap();
        assert!(got.starts_with("{:error, {:bad_request, \"at .: unknown variant `teleport`"), "{otp}: {got}");
        let got = ex.eval_async(&format!("GenServer.call({dest}, :ping)")).await.unwrap();
        assert_eq!(got, "%MyApp.Point{x: 2, y: 3}", "{otp}");

        // Rust calls an Elixir GenServer with typed requests and replies
        ex.eval_async(
            "defmodule Echo do
               use GenServer
               def init(s), do: {:ok, s}
               def handle_call({:get, key}, _from, s), do: {:reply, %MyApp.Point{x: String.length(key), y: 0}, s}
               def handle_call(other, _from, s), do: {:reply, {:other, other}, s}
             end",
        )
        .await
        .unwrap();
        ex.eval_async("{:ok, _} = GenServer.start(Echo, nil, name: :echo)").await.unwrap();
        assert!(node.connect(&Atom::new(ex.name())).await, "{otp}");
        let echo = Dest::Remote(Atom::new("echo"), Atom::new(ex.name()));
        let got: Point = node.call_typed(echo.clone(), &Msg::Get("four".into()), Some(T)).await.unwrap();
        assert_eq!(got, Point { x: 4, y: 0 }, "{otp}");
        match node.call_typed::<Point>(echo, &Msg::Ping, Some(T)).await {
            Err(TypedCallError::Reply { reply, error }) => {
                assert_eq!(reply, Term::Tuple(vec![Term::atom("other"), Term::atom("ping")]), "{otp}");
                assert!(error.to_string().contains("expected a map (an Elixir struct)"), "{otp}: {error}");
            }
            other => panic!("{otp}: {other:?}"),
        }
        node.shutdown();
    });
}
