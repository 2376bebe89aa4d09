//! One test per convention of the module table, each checked four ways: `to_term` gives the
//! term of the Erlang (and Elixir) literal, `to_vec` gives its encoding byte for byte, and
//! `from_slice`/`from_term` read it back.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::*;
use crate::term::{Atom, Pid, Reference, decode, encode, parse_elixir, parse_erlang};

/// `v` is the term `erlang` (and `elixir`, when given) in every direction.
#[track_caller]
fn conv<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: T, erlang: &str, elixir: Option<&str>) {
    let want = parse_erlang(erlang).unwrap_or_else(|e| panic!("{erlang}: {e}"));
    if let Some(ex) = elixir {
        assert_eq!(parse_elixir(ex).unwrap(), want, "the Elixir and Erlang literals differ");
    }
    assert_eq!(to_term(&v).unwrap(), want, "to_term");
    assert_eq!(to_vec(&v).unwrap(), encode(&want), "to_vec bytes");
    assert_eq!(from_slice::<T>(&encode(&want)).unwrap(), v, "from_slice");
    assert_eq!(from_term::<T>(&want).unwrap(), v, "from_term");
}

/// Reading `erlang` gives `v` (the liberal side: forms that writing never produces).
#[track_caller]
fn reads<T: DeserializeOwned + PartialEq + Debug>(erlang: &str, v: T) {
    let t = parse_erlang(erlang).unwrap();
    assert_eq!(from_slice::<T>(&encode(&t)).unwrap(), v, "{erlang}");
}

/// Reading `erlang` as `T` fails with this message (path, expected and found).
#[track_caller]
fn fails<T: DeserializeOwned + Debug>(erlang: &str, message: &str) {
    let t = parse_erlang(erlang).unwrap();
    let e = from_slice::<T>(&encode(&t)).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with(message), "{erlang}: got `{text}`, want `{message}...`");
    let e2 = from_term::<T>(&t).unwrap_err();
    assert_eq!(e2.path(), e.path());
    assert_eq!(e2.offset(), None);
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "Elixir.MyApp.User")]
struct User {
    name: String,
    age: u32,
    email: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Msg {
    Ping,
    Get(String),
    Set(String, i64),
    Move { x: i32, y: i32 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Color {
    Red,
    DarkBlue,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Pair(u8, String);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Id(u64);

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "ok")]
struct Ok;

#[test]
fn scalars() {
    conv(true, "true", Some("true"));
    conv(false, "false", None);
    conv(0u8, "0", None);
    conv(255u8, "255", None);
    conv(-1i8, "-1", None);
    conv(70000i32, "70000", None);
    conv(i64::MIN, "-9223372036854775808", None);
    conv(u64::MAX, "18446744073709551615", None);
    conv(i128::MIN, "-170141183460469231731687303715884105728", None);
    conv(u128::MAX, "340282366920938463463374607431768211455", None);
    conv(1.5f64, "1.5", None);
    conv(-0.25f32, "-0.25", None);
    conv('é', "<<\"é\"/utf8>>", Some("\"é\""));
    conv(String::from("héllo"), "<<\"héllo\"/utf8>>", Some("\"héllo\""));
    conv((), "{}", Some("{}"));
}

#[test]
fn integers_check_their_range() {
    fails::<u8>("256", "at .: expected an integer (u8), found the integer 256");
    fails::<u64>("-1", "at .: expected an integer (u64), found the integer -1");
    fails::<i128>(
        "1180591620717411303424000000000000000000000",
        "at .: expected an integer (i128), found an integer beyond 128 bits",
    );
    fails::<i32>("1.0", "at .: expected an integer (i32), found the float 1.0");
    reads::<f64>("3", 3.0);
}

#[test]
fn strings_binaries_and_charlists() {
    reads::<String>("\"abc\"", "abc".into()); // a charlist (STRING_EXT)
    reads::<String>("[104, 233, 8364]", "hé€".into()); // code points beyond 255 (LIST_EXT)
    reads::<String>("[]", String::new());
    fails::<String>(
        "<<255>>",
        "at .: expected a UTF-8 binary or a charlist (string), found a binary that is not UTF-8",
    );
    fails::<String>("foo", "at .: expected a UTF-8 binary or a charlist (string), found the atom `foo`");
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Blob(#[serde(with = "serde_bytes")] Vec<u8>);
    conv(Blob(vec![1, 2, 255]), "<<1, 2, 255>>", Some("<<1, 2, 255>>"));
    // without serde_bytes a Vec<u8> is a list of small integers, which BEAM writes as STRING_EXT
    conv(vec![1u8, 2, 3], "[1, 2, 3]", None);
    assert_eq!(to_vec(&vec![104u8, 105]).unwrap(), [131, 107, 0, 2, 104, 105]);
}

#[test]
fn borrowed_strings_and_bytes() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct View<'a> {
        name: &'a str,
        #[serde(with = "serde_bytes")]
        raw: &'a [u8],
    }
    let bytes = encode(&parse_erlang("#{name => <<\"ann\">>, raw => <<0, 1>>}").unwrap());
    let v: View = from_slice(&bytes).unwrap();
    assert_eq!(v, View { name: "ann", raw: &[0, 1] });
    let inside = |p: *const u8| bytes.as_ptr_range().contains(&p);
    assert!(inside(v.name.as_ptr()) && inside(v.raw.as_ptr()), "borrowed from the input");
    // a charlist cannot be borrowed as UTF-8 text unless it is ASCII
    let e = from_slice::<View>(&encode(&parse_erlang("#{name => \"h\\x{e9}\", raw => <<>>}").unwrap())).unwrap_err();
    assert!(e.to_string().contains("at .name:"), "{e}");
}

#[test]
fn options_are_nil() {
    conv(None::<i32>, "nil", Some("nil"));
    conv(Some(5), "5", None);
    reads::<Option<i32>>("undefined", None);
    fails::<Option<i32>>("foo", "at .: expected an integer (i32), found the atom `foo`");
}

#[test]
fn enums_are_atoms_and_tagged_tuples() {
    conv(Color::DarkBlue, "dark_blue", Some(":dark_blue"));
    conv(Msg::Ping, "ping", Some(":ping"));
    conv(Msg::Get("k".into()), "{get, <<\"k\">>}", Some("{:get, \"k\"}"));
    conv(Msg::Set("k".into(), 7), "{set, <<\"k\">>, 7}", Some("{:set, \"k\", 7}"));
    conv(Msg::Move { x: 1, y: 2 }, "{move, #{x => 1, y => 2}}", Some("{:move, %{x: 1, y: 2}}"));
    fails::<Msg>(
        "{set, <<\"k\">>}",
        "at .: expected a tuple of 3 elements tagged `set`, found a tuple of 2 elements tagged `set`",
    );
    fails::<Msg>("{get, 1}", "at {get}: expected a UTF-8 binary or a charlist (string), found the integer 1");
    fails::<Msg>("{set, <<\"k\">>, x}", "at {set}[2]: expected an integer (i64), found the atom `x`");
    fails::<Msg>("ping2", "at .: unknown variant `ping2`, expected one of");
    fails::<Msg>("get", "at .: expected a tuple {get, Value}, found the atom `get`");
    fails::<Msg>("{ping}", "at .: expected the atom `ping`, found a tuple of 1 element tagged `ping`");
    fails::<Msg>("42", "at .: expected an atom or a tuple tagged with an atom (enum), found the integer 42");
}

#[test]
fn structs_are_atom_keyed_maps() {
    conv(Point { x: 1, y: -2 }, "#{x => 1, y => -2}", Some("%{x: 1, y: -2}"));
    // wire order does not matter; unknown keys are ignored; binary keys are accepted
    reads::<Point>("#{y => 2, z => [1, {2}], x => 1}", Point { x: 1, y: 2 });
    reads::<Point>("#{<<\"x\">> => 1, <<\"y\">> => 2}", Point { x: 1, y: 2 });
    fails::<Point>("#{x => 1}", "at .: missing field `y`");
    fails::<Point>("#{x => 1, y => <<\"2\">>}", "at .y: expected an integer (i32), found the binary \"2\"");
    fails::<Point>("{1, 2}", "at .: expected a map with atom keys (struct), found a tuple of 2 elements");
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        x: i32,
    }
    fails::<Strict>("#{x => 1, z => 2}", "at .: unknown field `z`, expected `x`");
}

#[test]
fn elixir_structs_carry_their_module() {
    let ann = || User { name: "ann".into(), age: 33, email: None };
    conv(
        ann(),
        "#{'__struct__' => 'Elixir.MyApp.User', name => <<\"ann\">>, age => 33, email => nil}",
        Some("%{__struct__: MyApp.User, name: \"ann\", age: 33, email: nil}"),
    );
    reads::<User>("#{name => <<\"ann\">>, age => 33, email => nil}", ann());
    fails::<User>(
        "#{'__struct__' => 'Elixir.Other', name => <<\"ann\">>, age => 33, email => nil}",
        "at .__struct__: expected `Elixir.MyApp.User` (the struct's name), found the atom `Elixir.Other`",
    );
}

#[test]
fn tuples_newtypes_and_unit_structs() {
    conv(Pair(1, "a".into()), "{1, <<\"a\">>}", Some("{1, \"a\"}"));
    conv((1u8, true, 'x'), "{1, true, <<\"x\">>}", None);
    conv([1u8, 2, 3], "{1, 2, 3}", None);
    conv(Id(7), "7", None);
    conv(Ok, "ok", Some(":ok"));
    fails::<Pair>("{1, <<\"a\">>, 3}", "at .: expected a tuple of 2 elements, found a tuple of 3 elements");
    fails::<Ok>("error", "at .: expected the atom `ok`, found the atom `error`");
}

#[test]
fn sequences_are_proper_lists() {
    conv(vec![Point { x: 1, y: 2 }], "[#{x => 1, y => 2}]", Some("[%{x: 1, y: 2}]"));
    conv(Vec::<String>::new(), "[]", None);
    conv(vec![300i32, 1], "[300, 1]", None);
    conv(vec![1i32, 300], "[1, 300]", None); // a STRING_EXT start turned into a LIST_EXT
    conv(vec![vec![1u8], vec![]], "[[1], []]", None);
    let long: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    let t = to_term(&long).unwrap();
    assert_eq!(to_vec(&long).unwrap(), encode(&t), "over 65535 small integers: a LIST_EXT, as BEAM");
    assert_eq!(from_slice::<Vec<u8>>(&to_vec(&long).unwrap()).unwrap(), long);
    fails::<Vec<i32>>("[1 | 2]", "at .: expected a proper list, found an improper list ending in the integer 2");
    fails::<Vec<i32>>("[1, a]", "at [1]: expected an integer (i32), found the atom `a`");
    fails::<Vec<i32>>("{1}", "at .: expected a proper list, found a tuple of 1 element");
}

#[test]
fn maps_are_maps() {
    let m: BTreeMap<String, Vec<u32>> = [("a".to_string(), vec![1]), ("b".to_string(), vec![])].into();
    conv(m, "#{<<\"a\">> => [1], <<\"b\">> => []}", Some("%{\"a\" => [1], \"b\" => []}"));
    let k: BTreeMap<i32, bool> = [(1, true)].into();
    conv(k, "#{1 => true}", None);
    fails::<BTreeMap<String, i32>>("#{<<\"a\">> => x}", "at .\"a\": expected an integer (i32), found the atom `x`");
}

#[test]
fn terms_atoms_pids_and_refs_are_fields() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Envelope {
        from: Pid,
        tag: Reference,
        kind: Atom,
        body: Term,
        list: Vec<Term>,
    }
    let pid = Pid { node: Atom::new("a@h"), id: 1, serial: 2, creation: 3 };
    let r = Reference::new(Atom::new("a@h"), 3, &[1, 2, 3]).unwrap();
    let body = parse_erlang("{x, [1, 2.5 | improper], #{<<\"k\">> => <<7:3>>}}").unwrap();
    let e = Envelope {
        from: pid.clone(),
        tag: r.clone(),
        kind: Atom::new("cast"),
        body: body.clone(),
        list: vec![Term::Int(1), Term::atom("a")],
    };
    let mut want = crate::term::Map::new();
    want.insert(Term::atom("from"), Term::Pid(pid));
    want.insert(Term::atom("tag"), Term::Ref(r));
    want.insert(Term::atom("kind"), Term::atom("cast"));
    want.insert(Term::atom("body"), body);
    want.insert(Term::atom("list"), parse_erlang("[1, a]").unwrap());
    let want = Term::Map(want);
    assert_eq!(to_term(&e).unwrap(), want);
    assert_eq!(to_vec(&e).unwrap(), encode(&want));
    assert_eq!(from_slice::<Envelope>(&encode(&want)).unwrap(), e);
    assert_eq!(from_term::<Envelope>(&want).unwrap(), e);
    // a Term is any term, at the root too; a list of small integers holds Terms as well
    let t = parse_erlang("[1, {2}]").unwrap();
    assert_eq!(from_slice::<Term>(&encode(&t)).unwrap(), t);
    assert_eq!(
        from_slice::<Vec<Term>>(&encode(&parse_erlang("\"ab\"").unwrap())).unwrap(),
        [Term::Int(97), Term::Int(98)]
    );
    fails::<Pid>("foo", "at .: invalid type: an atom, expected a pid");
    fails::<Atom>("<<\"foo\">>", "at .: expected an atom, found the binary \"foo\"");
    // serde's generic data model has no pid: a pid meets a type that is not Pid or Term
    let e = from_slice::<String>(
        &to_vec(&Term::Pid(Pid { node: Atom::new("a@h"), id: 1, serial: 0, creation: 1 })).unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("found a pid"), "{e}");
}

#[test]
fn other_formats_see_atoms_as_strings_and_terms_as_their_encoding() {
    // serde's own value types stand in for another format
    use serde::de::IntoDeserializer;
    let a: Atom = Atom::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer("hi")).unwrap();
    assert_eq!(a, Atom::new("hi"));
    let enc = encode(&Term::Int(5));
    let t: Term = Term::deserialize(serde::de::value::BytesDeserializer::<serde::de::value::Error>::new(&enc)).unwrap();
    assert_eq!(t, Term::Int(5));
}

#[test]
fn writing_refuses_what_beam_cannot_hold() {
    assert!(matches!(to_vec(&f64::NAN).unwrap_err().kind(), ErrorKind::Unrepresentable(_)));
    #[derive(Serialize)]
    enum Long {
        #[serde(
            rename = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        )]
        A,
    }
    assert!(matches!(to_vec(&Long::A).unwrap_err().kind(), ErrorKind::Unrepresentable(_)));
}

#[test]
fn malformed_input_is_an_error_with_an_offset() {
    let bytes = to_vec(&Point { x: 1, y: 2 }).unwrap();
    for cut in 0..bytes.len() {
        let e = from_slice::<Point>(&bytes[..cut]).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Malformed(_)), "{cut}: {e}");
        assert!(e.offset().is_some_and(|o| o <= cut), "{cut}: {e}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(from_slice::<Point>(&extra).unwrap_err().to_string().contains("1 bytes after the end"));
    assert!(matches!(
        from_slice::<Point>(&[130, 106]).unwrap_err().kind(),
        ErrorKind::Malformed(DecodeErrorKind::BadVersion(130))
    ));
    // a container claiming more elements than bytes remain fails before allocating
    let e = from_slice::<Vec<u8>>(&[131, 108, 255, 255, 255, 255, 106]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Malformed(DecodeErrorKind::TooManyElements { .. })), "{e}");
    // a bad atom inside an ignored value is still found by the Term decoder's checks
    let e = from_slice::<Point>(&[131, 116, 0, 0, 0, 1, 119, 1, b'z', 119, 1, 0xff]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Malformed(DecodeErrorKind::InvalidAtomUtf8)), "{e}");
}

#[test]
fn compressed_input_is_inflated() {
    let v = vec![String::from("a"); 100];
    let z = crate::term::encode_compressed(&to_term(&v).unwrap(), 6);
    assert_eq!(from_slice::<Vec<String>>(&z).unwrap(), v);
    // borrowing needs the caller's bytes
    assert!(from_slice::<Vec<&str>>(&z).is_err());
}

/// A type that nests as deep as its input.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Nest {
    Leaf,
    Node(Vec<Nest>),
}

#[test]
fn depth_is_limited_like_the_term_decoder() {
    let deep = |n: usize| (0..n).fold(Nest::Leaf, |acc, _| Nest::Node(vec![acc]));
    // the Term decoder's limit, on a 2 MiB stack (tokio's and the test harness's default)
    let ok = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            // each level is a tuple and a list
            let v = deep(crate::term::MAX_TERM_DEPTH / 2);
            let bytes = to_vec(&v).unwrap();
            let back: Nest = from_slice(&bytes).unwrap();
            let too_deep = to_vec(&deep(crate::term::MAX_TERM_DEPTH / 2 + 1)).unwrap();
            let e = from_slice::<Nest>(&too_deep).unwrap_err();
            (back == v, matches!(e.kind(), ErrorKind::Malformed(DecodeErrorKind::TooDeep)))
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(ok, (true, true));
    // and decode agrees that the deepest accepted one is a term
    assert!(decode(&to_vec(&deep(crate::term::MAX_TERM_DEPTH / 2)).unwrap()).is_ok());
}

#[test]
fn atoms_work_in_untagged_enums() {
    // serde buffers untagged content in its own data model: atoms arrive there as text
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Either {
        Num(i64),
        Name(Atom),
    }
    reads::<Either>("foo", Either::Name(Atom::new("foo")));
    reads::<Either>("5", Either::Num(5));
}
