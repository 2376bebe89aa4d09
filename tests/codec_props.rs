//! Property tests of the codec: every term round-trips (plain and compressed), and no input,
//! arbitrary or a damaged BEAM vector, makes the decoder panic or report an offset outside
//! the input.

use std::path::Path;

use bytes::Bytes;
use erlnode::term::{
    Atom, BigInt, BitBinary, DecodeError, DecodeOptions, ExportFun, LocalFun, Map, Pid, Port, Reference, Term, decode,
    decode_bytes, decode_iterative, decode_term_at, encode, encode_body_to, encode_compressed,
};
use proptest::prelude::*;

fn atom() -> impl Strategy<Value = Atom> {
    prop_oneof![
        4 => "[a-z_@.]{0,12}",
        1 => "\\PC{0,8}",
        1 => "[é😀a]{200,255}",
    ]
    .prop_map(|s| Atom::new(&s))
}

fn node() -> impl Strategy<Value = Atom> {
    prop_oneof![Just(Atom::new("a@host")), Just(Atom::new("nonode@nohost")), atom()]
}

fn pid() -> impl Strategy<Value = Pid> {
    (node(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(node, id, serial, creation)| Pid {
        node,
        id,
        serial,
        creation,
    })
}

fn integer() -> impl Strategy<Value = Term> {
    prop_oneof![
        3 => any::<i64>().prop_map(Term::Int),
        2 => (0i64..=255).prop_map(Term::Int),
        1 => (i32::MIN as i64..=i32::MAX as i64).prop_map(Term::Int),
        2 => any::<i128>().prop_map(Term::from),
        1 => (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(neg, mag)| Term::integer(BigInt::normalize(neg, &mag))),
    ]
}

fn leaf() -> impl Strategy<Value = Term> {
    prop_oneof![
        integer(),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Term::Float),
        atom().prop_map(Term::Atom),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Term::Binary(Bytes::from(b))),
        (prop::collection::vec(any::<u8>(), 1..6), 1u8..=7).prop_map(|(mut d, bits)| {
            if let Some(l) = d.last_mut() {
                *l &= 0xffu8 << (8 - bits);
            }
            Term::BitBinary(BitBinary { data: Bytes::from(d), bits })
        }),
        Just(Term::nil()),
        pid().prop_map(Term::Pid),
        (node(), any::<u64>(), any::<u32>()).prop_map(|(node, id, creation)| Term::Port(Port { node, id, creation })),
        (node(), any::<u32>(), prop::collection::vec(any::<u32>(), 1..=5))
            .prop_map(|(node, creation, ids)| Term::Ref(Reference::new(node, creation, &ids).unwrap())),
        (atom(), atom(), any::<u8>()).prop_map(|(module, function, arity)| Term::from(ExportFun {
            module,
            function,
            arity
        })),
        prop::collection::vec(0i64..=255, 0..20).prop_map(|l| Term::List(l.into_iter().map(Term::Int).collect())),
    ]
}

/// A tail for an improper list: anything but a list.
fn non_list(t: Term) -> Term {
    match t {
        Term::List(_) | Term::Improper(..) => Term::atom("tail"),
        other => other,
    }
}

fn term() -> impl Strategy<Value = Term> {
    leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Term::Tuple),
            prop::collection::vec(inner.clone(), 0..8).prop_map(Term::List),
            (prop::collection::vec(inner.clone(), 1..6), inner.clone())
                .prop_map(|(elems, tail)| Term::Improper(elems, Box::new(non_list(tail)))),
            prop::collection::vec((inner.clone(), inner.clone()), 0..8).prop_map(|kv| Term::Map(Map::from_entries(kv))),
            (
                any::<u8>(),
                any::<[u8; 16]>(),
                any::<u32>(),
                atom(),
                0i64..=i32::MAX as i64,
                0i64..=i32::MAX as i64,
                pid(),
                prop::collection::vec(inner, 0..4)
            )
                .prop_map(|(arity, uniq, index, module, oi, ou, pid, free_vars)| {
                    Term::LocalFun(Box::new(LocalFun {
                        arity,
                        uniq,
                        index,
                        module,
                        old_index: Term::Int(oi),
                        old_uniq: Term::Int(ou),
                        pid: Term::Pid(pid),
                        free_vars,
                    }))
                }),
        ]
    })
}

fn check_error_offset(e: &DecodeError, len: usize) {
    assert!(e.offset <= len, "error offset {} beyond input of {len} bytes: {e}", e.offset);
    assert!(!e.to_string().is_empty());
}

/// Every decoding entry point on `input`: no panic, offsets inside the input, and the
/// recursive and iterative decoding paths agree (same term or same error).
fn decode_everything(input: &[u8]) {
    let plain = decode(input);
    if let Err(e) = &plain {
        check_error_offset(e, input.len());
    }
    assert_eq!(plain, decode_iterative(input), "the decoding paths disagree on {input:?}");
    let b = Bytes::copy_from_slice(input);
    if let Err(e) = decode_bytes(b.clone()) {
        check_error_offset(&e, input.len());
    }
    let cache = [Atom::new("cached"), Atom::new("other")];
    for version_byte in [true, false] {
        let opts = DecodeOptions { version_byte, atom_cache: Some(&cache) };
        match decode_term_at(&b, 0, &opts) {
            Ok((_, end)) => assert!(end <= input.len()),
            Err(e) => check_error_offset(&e, input.len()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(t in term()) {
        let bytes = encode(&t);
        let back = decode(&bytes).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(&decode_iterative(&bytes).unwrap(), &t);
        // encoding is a function of the term: the decoded term encodes to the same bytes
        prop_assert_eq!(encode(&back), bytes.clone());
        prop_assert_eq!(decode_bytes(Bytes::from(bytes.clone())).unwrap(), t.clone());
        let mut body = Vec::new();
        encode_body_to(&t, &mut body);
        prop_assert_eq!(&body[..], &bytes[1..]);
        let opts = DecodeOptions { version_byte: false, atom_cache: None };
        let (t2, end) = decode_term_at(&Bytes::from(body.clone()), 0, &opts).unwrap();
        prop_assert_eq!(end, body.len());
        prop_assert_eq!(t2, t);
    }

    #[test]
    fn compressed_round_trip(t in term()) {
        prop_assert_eq!(decode(&encode_compressed(&t, 6)).unwrap(), t.clone());
        prop_assert_eq!(decode(&encode_compressed(&t, 0)).unwrap(), t);
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(mut input in prop::collection::vec(any::<u8>(), 0..300), versioned in any::<bool>()) {
        if versioned {
            input.insert(0, 131);
        }
        decode_everything(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_encodings_never_panic(
        t in term(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&t);
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        decode_everything(&bytes);
        let cut = cut.index(bytes.len() + 1);
        decode_everything(&bytes[..cut]);
    }
}

/// Every BEAM vector (OTP 27 set) truncated at every length and with bytes flipped.
#[test]
fn damaged_vectors_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/otp27");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "etf") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        checked += 1;
        // every cut of the small ones; 64 spread cuts (headers included) of the big ones
        let step = if bytes.len() <= 2048 { 1 } else { bytes.len() / 64 };
        for cut in (0..bytes.len()).step_by(step).chain(0..bytes.len().min(12)) {
            let e = decode(&bytes[..cut]).expect_err("a strict prefix of a term is not a term");
            check_error_offset(&e, cut);
        }
        let step = (bytes.len() / 64).max(1);
        for i in (0..bytes.len()).step_by(step) {
            for x in [0x01u8, 0x80, 0xff] {
                let mut m = bytes.clone();
                m[i] ^= x;
                decode_everything(&m);
            }
        }
    }
    assert!(checked >= 95, "only {checked} vectors checked");
}
