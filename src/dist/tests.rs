//! Receiver and encoder tests: real frames, round trips under every flag profile, and
//! abuse (random and mutated bytes).

use bytes::Bytes;
use proptest::prelude::*;

use super::control::tests::{one_of_each, pid};
use super::*;
use crate::term::{Atom, Map, Pid, Reference};

const PASS: DistFlags = FUZZ_PROFILES[0];
const FULL: DistFlags = FUZZ_PROFILES[1];
const OTP28: DistFlags = FUZZ_PROFILES[3];
const ERL_CALL: DistFlags = FUZZ_PROFILES[4];

/// The frame body of a complete frame written by [`encode_message`].
fn body(wire: &[u8]) -> Bytes {
    let len = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
    assert_eq!(len, wire.len() - 4, "length prefix");
    Bytes::copy_from_slice(&wire[4..])
}

fn node_pid(node: &str, id: u32, creation: u32) -> Pid {
    Pid { node: Atom::new(node), id, serial: 0, creation }
}

/// t14.out: OTP 25.2.3 answering `erlang:ports()` over rex, pass-through framing (profile A).
const T14_PORTS_REPLY: &[u8] = &[
    112, 131, 104, 3, 97, 22, 88, 119, 4, 97, 64, 118, 109, 0, 0, 0, 92, 0, 0, 0, 0, 107, 5, 18, 93, 88, 119, 7, 114,
    117, 115, 116, 64, 118, 109, 0, 0, 0, 8, 0, 0, 0, 0, 107, 5, 18, 223, 131, 104, 2, 119, 3, 114, 101, 120, 108, 0,
    0, 0, 6, 89, 119, 4, 97, 64, 118, 109, 0, 0, 0, 0, 107, 5, 18, 93, 89, 119, 4, 97, 64, 118, 109, 0, 0, 0, 3, 107,
    5, 18, 93, 89, 119, 4, 97, 64, 118, 109, 0, 0, 0, 5, 107, 5, 18, 93, 89, 119, 4, 97, 64, 118, 109, 0, 0, 0, 6, 107,
    5, 18, 93, 89, 119, 4, 97, 64, 118, 109, 0, 0, 0, 7, 107, 5, 18, 93, 89, 119, 4, 97, 64, 118, 109, 0, 0, 0, 8, 107,
    5, 18, 93, 106,
];

/// t14.out: the reply to `erlang:make_ref()`, pass-through.
const T14_MAKE_REF_REPLY: &[u8] = &[
    112, 131, 104, 3, 97, 22, 88, 119, 4, 97, 64, 118, 109, 0, 0, 0, 93, 0, 0, 0, 0, 107, 5, 18, 93, 88, 119, 7, 114,
    117, 115, 116, 64, 118, 109, 0, 0, 0, 9, 0, 0, 0, 0, 107, 5, 18, 223, 131, 104, 2, 119, 3, 114, 101, 120, 90, 0, 3,
    119, 4, 97, 64, 118, 109, 107, 5, 18, 93, 0, 3, 167, 165, 48, 80, 0, 2, 188, 53, 250, 8,
];

#[test]
fn real_pass_through_frames_from_otp25() {
    let a_creation = 1795494493; // 0x6b05125d
    let mut rx = Receiver::new(PASS);
    let m = rx.handle_frame(Bytes::from_static(T14_PORTS_REPLY)).unwrap().unwrap();
    assert_eq!(
        m.control,
        Control::SendSender { from: node_pid("a@vm", 92, a_creation), to: node_pid("rust@vm", 8, 1795494623) }
    );
    let reply = m.payload.clone().unwrap();
    let elems = reply.as_tuple().unwrap();
    assert!(elems[0].is_atom("rex"));
    assert_eq!(elems[1].as_list().unwrap().len(), 6);
    assert_eq!(
        m.clone().into_signal().unwrap(),
        Signal::Send {
            from: Some(node_pid("a@vm", 92, a_creation)),
            to: node_pid("rust@vm", 8, 1795494623),
            msg: reply
        }
    );
    // re-encoded, it reads back the same (the codec writes ports as V4_PORT_EXT, where OTP 25
    // wrote NEW_PORT_EXT, so the bytes differ there)
    let mut wire = Vec::new();
    encode_message(&m.control, m.payload.as_ref(), PASS, &mut wire).unwrap();
    assert_eq!(Receiver::new(PASS).handle_frame(body(&wire)).unwrap().unwrap(), m);

    let m = rx.handle_frame(Bytes::from_static(T14_MAKE_REF_REPLY)).unwrap().unwrap();
    let r = m.payload.as_ref().unwrap().as_tuple().unwrap()[1].as_ref().unwrap().clone();
    assert_eq!(r.ids(), [0x0003a7a5, 0x30500002, 0xbc35fa08]);
    // this one our encoder writes back byte for byte
    let mut wire = Vec::new();
    encode_message(&m.control, m.payload.as_ref(), PASS, &mut wire).unwrap();
    assert_eq!(&wire[4..], T14_MAKE_REF_REPLY);
    // the same frame is a protocol error once headers are negotiated
    let e = Receiver::new(FULL).handle_frame(Bytes::from_static(T14_MAKE_REF_REPLY)).unwrap_err();
    assert!(matches!(e, DistError::PassThroughNotAllowed));
}

/// A REG_SEND to `sink` and its message `{hello, world, [hello, world]}` as OTP 25 lays them
/// out with the atom cache (t7: `[{dist_header,5}]`): every atom is a cache reference, the
/// first message sends the texts and the next one reuses the slots.
fn t7_like_frames() -> (Bytes, Bytes) {
    let refs_first = [
        (0x100 + 17, Some("a@vm")),
        (3, Some("")),
        (0x200 + 40, Some("sink")),
        (0x500 + 1, Some("hello")),
        (0x700 + 255, Some("world")),
    ];
    let refs_again = [(0x100 + 17, None), (3, None), (0x200 + 40, None), (0x500 + 1, None), (0x700 + 255, None)];
    let terms: &[u8] = &[
        104, 4, 97, 6, 88, 82, 0, 0, 0, 0, 89, 0, 0, 0, 0, 0x6b, 0x05, 0x12, 0x5d, 82, 1, 82, 2, // control
        104, 3, 82, 3, 82, 4, 108, 0, 0, 0, 2, 82, 3, 82, 4, 106, // payload
    ];
    let mut first = vec![131, 68];
    header::write_atom_cache_refs(refs_first.iter().copied(), false, &mut first);
    first.extend_from_slice(terms);
    let mut again = vec![131, 68];
    header::write_atom_cache_refs(refs_again.iter().copied(), false, &mut again);
    again.extend_from_slice(terms);
    (Bytes::from(first), Bytes::from(again))
}

#[test]
fn atom_cache_references_resolve_per_message() {
    let (first, again) = t7_like_frames();
    let mut rx = Receiver::new(FULL);
    let expect = DistMessage {
        control: Control::RegSend { from: node_pid("a@vm", 89, 1795494493), to_name: Atom::new("sink") },
        payload: Some(crate::tuple![
            Atom::new("hello"),
            Atom::new("world"),
            Term::List(vec![Term::atom("hello"), Term::atom("world")])
        ]),
    };
    assert_eq!(rx.handle_frame(first).unwrap().unwrap(), expect);
    assert_eq!(rx.handle_frame(again.clone()).unwrap().unwrap(), expect);
    // without the first message, the second refers to empty slots
    let e = Receiver::new(FULL).handle_frame(again).unwrap_err();
    assert!(matches!(e, DistError::UnknownAtomCacheSlot { slot: 0x111 }));
}

#[test]
fn fragmented_message_through_the_receiver() {
    // t7: a 200 KB message in 4 fragments of 64 KB; here a big binary split the same way
    let payload = crate::tuple![Atom::new("big"), Term::binary(vec![b'x'; 200_000])];
    let control = Control::RegSend { from: pid(90), to_name: Atom::new("sink") };
    let mut wire = Vec::new();
    encode_message(&control, Some(&payload), FULL, &mut wire).unwrap();
    let data = &wire[7..]; // after length and 131,68,0
    let chunks: Vec<&[u8]> = data.chunks(65536).collect();
    assert_eq!(chunks.len(), 4);
    let seq = 3092376454563u64;
    let mut rx = Receiver::new(FULL);
    // a small unfragmented message may arrive between fragments
    let mut small = Vec::new();
    encode_message(&Control::Link { from: pid(1), to: pid(2) }, None, FULL, &mut small).unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        let id = (chunks.len() - i) as u64;
        let mut f = vec![131, if i == 0 { 69 } else { 70 }];
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        if i == 0 {
            f.push(0); // no atom cache refs
        }
        f.extend_from_slice(chunk);
        let got = rx.handle_frame(Bytes::from(f)).unwrap();
        if id > 1 {
            assert_eq!(got, None);
            assert!(rx.handle_frame(body(&small)).unwrap().is_some());
        } else {
            assert_eq!(got, Some(DistMessage { control: control.clone(), payload: Some(payload.clone()) }));
        }
    }
    assert_eq!(rx.headers().fragmented_in_flight(), 0);
}

#[test]
fn every_op_round_trips_under_every_profile() {
    for flags in FUZZ_PROFILES {
        for control in one_of_each() {
            let payload = control.has_payload().then(|| Term::atom("payload"));
            let mut wire = Vec::new();
            let sent = encode_message(&control, payload.as_ref(), flags, &mut wire);
            match control.required_flag() {
                Some((_, f)) if !flags.contains(f) => {
                    assert!(matches!(sent, Err(DistError::NotNegotiated { .. })), "{control:?}");
                    assert!(wire.is_empty());
                    continue;
                }
                _ => sent.unwrap(),
            }
            let framing = if uses_dist_header(flags) { [131, 68, 0] } else { [112, 131, 104] };
            assert_eq!(&wire[4..7], &framing);
            let got = Receiver::new(flags).handle_frame(body(&wire)).unwrap().unwrap();
            assert_eq!(got, DistMessage { control, payload });
        }
    }
}

#[test]
fn lowered_messages_are_always_sendable() {
    for flags in FUZZ_PROFILES {
        for control in one_of_each() {
            let payload = control.has_payload().then(|| Term::atom("p"));
            match lower_for_peer(control.clone(), payload.clone(), flags) {
                Ok((c, p)) => {
                    let mut wire = Vec::new();
                    encode_message(&c, p.as_ref(), flags, &mut wire).unwrap();
                    Receiver::new(flags).handle_frame(body(&wire)).unwrap().unwrap();
                }
                Err(e) => assert!(matches!(e, DistError::NotNegotiated { .. }), "{control:?}: {e}"),
            }
        }
    }
    // erl_call: SEND_SENDER must go out as SEND (protocol notes 1.4)
    let (c, _) =
        lower_for_peer(Control::SendSender { from: pid(1), to: pid(2) }, Some(Term::Int(1)), ERL_CALL).unwrap();
    assert_eq!(c, Control::Send { to: pid(2) });
}

#[test]
fn receive_errors() {
    let mut rx = Receiver::new(PASS);
    let mut wire = Vec::new();
    encode_message(&Control::Send { to: pid(2) }, Some(&Term::Int(1)), PASS, &mut wire).unwrap();
    // payload missing: cut after the control term
    let ctl_len = {
        let mut v = Vec::new();
        crate::term::encode_to(&Control::Send { to: pid(2) }.to_term(), &mut v);
        v.len()
    };
    let cut = Bytes::copy_from_slice(&wire[4..4 + 1 + ctl_len]);
    assert!(matches!(rx.handle_frame(cut), Err(DistError::MissingPayload { op: 2 })));
    // a third term
    let mut extra = wire[4..].to_vec();
    extra.extend_from_slice(&[131, 106]);
    assert!(matches!(rx.handle_frame(Bytes::from(extra)), Err(DistError::TrailingBytes { count: 2 })));
    // a payload after LINK
    let mut link = Vec::new();
    encode_message(&Control::Link { from: pid(1), to: pid(2) }, None, PASS, &mut link).unwrap();
    let mut with = link[4..].to_vec();
    with.extend_from_slice(&[131, 106]);
    assert!(matches!(rx.handle_frame(Bytes::from(with)), Err(DistError::UnexpectedPayload { op: 1 })));
    // a control that is not a tuple, an unknown op, a bad term
    assert!(matches!(rx.handle_frame(Bytes::from_static(&[112, 131, 106])), Err(DistError::NotAControlTuple)));
    let e = rx.handle_frame(Bytes::from_static(&[112, 131, 104, 1, 97, 99])).unwrap_err();
    assert!(matches!(e, DistError::UnknownOp { op: 99 }));
    assert_eq!(e.fault(), Fault::PeerIncompatible);
    assert!(matches!(rx.handle_frame(Bytes::from_static(&[112, 131, 104, 2, 97])), Err(DistError::Term(_))));
    // an ATOM_CACHE_REF beyond the header's list
    let mut rx = Receiver::new(FULL);
    let e = rx.handle_frame(Bytes::from_static(&[131, 68, 0, 104, 1, 82, 0])).unwrap_err();
    assert!(matches!(e, DistError::Term(_)), "{e:?}");
    // ticks are nothing
    assert_eq!(rx.handle_frame(Bytes::new()).unwrap(), None);
}

#[test]
fn encode_refuses_local_mistakes() {
    let mut out = vec![1, 2];
    let e = encode_message(&Control::Send { to: pid(2) }, None, FULL, &mut out).unwrap_err();
    assert!(matches!(e, DistError::PayloadMismatch { op: 2, needs_payload: true }));
    assert_eq!(e.fault(), Fault::LocalMisuse);
    let e = encode_message(&Control::Link { from: pid(1), to: pid(2) }, Some(&Term::Int(1)), FULL, &mut out);
    assert!(matches!(e, Err(DistError::PayloadMismatch { op: 1, needs_payload: false })));
    let alt = one_of_each().into_iter().find(|c| c.op() == 37).unwrap();
    assert!(matches!(
        encode_message(&alt, Some(&Term::Int(1)), FULL, &mut out),
        Err(DistError::NotNegotiated { op: "ALTACT_SIG_SEND", .. })
    ));
    assert!(encode_message(&alt, Some(&Term::Int(1)), OTP28, &mut out).is_ok());
    assert_eq!(&out[..2], &[1, 2], "earlier bytes untouched");
}

#[test]
fn fuzz_entry_point_smoke() {
    fuzz_receiver(&[]);
    fuzz_receiver(&[0]);
    let (first, again) = t7_like_frames();
    let mut stream = vec![1];
    for f in [first, again] {
        encode_frame(&f, &mut stream).unwrap();
    }
    encode_tick(&mut stream);
    fuzz_receiver(&stream);
    let mut stream = vec![0, 0, 0, 0, T14_PORTS_REPLY.len() as u8];
    stream.extend_from_slice(T14_PORTS_REPLY);
    fuzz_receiver(&stream);
}

// ---- property tests ----

fn atom_strategy() -> impl Strategy<Value = Atom> {
    prop_oneof![
        Just(Atom::new("")),
        Just(Atom::new("a@vm")),
        "[a-z_@]{1,12}".prop_map(|s| Atom::new(&s)),
        "[äöü€😀a-z]{1,8}".prop_map(|s| Atom::new(&s)),
        Just(Atom::new(&"z".repeat(255))),
        // over 255 bytes: an atom-cache header then uses two-byte lengths
        Just(Atom::new(&"é".repeat(200))),
    ]
}

fn pid_strategy() -> impl Strategy<Value = Pid> {
    (atom_strategy(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(node, id, serial, creation)| Pid {
        node,
        id,
        serial,
        creation,
    })
}

fn ref_strategy() -> impl Strategy<Value = Reference> {
    (atom_strategy(), any::<u32>(), prop::collection::vec(any::<u32>(), 1..=5))
        .prop_map(|(node, creation, ids)| Reference::new(node, creation, &ids).unwrap())
}

fn term_strategy() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Term::Int),
        any::<i128>().prop_map(Term::from),
        (-1e300f64..1e300).prop_map(Term::Float),
        atom_strategy().prop_map(Term::Atom),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Term::binary),
        pid_strategy().prop_map(Term::Pid),
        ref_strategy().prop_map(Term::Ref),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Term::Tuple),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Term::List),
            (prop::collection::vec(inner.clone(), 1..3), inner.clone()).prop_map(|(h, t)| Term::list_with_tail(h, t)),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(|kv| Term::Map(Map::from_entries(kv))),
        ]
    })
}

#[derive(Clone, Copy, Debug)]
enum K {
    /// Unused: anything on the wire, `''` when re-encoded.
    U,
    P,
    R,
    A,
    T,
    /// Pid or atom.
    PA,
    Mfa,
    U32,
    U64,
}

/// Element kinds after the op, per op (ALTACT_SIG_SEND is generated separately).
const SHAPES: &[(u8, &[K])] = {
    use K::*;
    &[
        (1, &[P, P]),
        (2, &[U, P]),
        (3, &[P, P, T]),
        (4, &[P, P]),
        (6, &[P, U, A]),
        (7, &[P, P]),
        (8, &[P, P, T]),
        (12, &[U, P, T]),
        (13, &[P, P, T, T]),
        (16, &[P, U, A, T]),
        (18, &[P, P, T, T]),
        (19, &[P, PA, R]),
        (20, &[P, PA, R]),
        (21, &[PA, P, R, T]),
        (22, &[P, P]),
        (23, &[P, P, T]),
        (24, &[P, P]),
        (25, &[P, P, T]),
        (26, &[P, P]),
        (27, &[P, P, T]),
        (28, &[PA, P, R]),
        (29, &[R, P, P, Mfa, T]),
        (30, &[R, P, P, Mfa, T, T]),
        (31, &[R, P, U32, PA]),
        (32, &[R, P, U32, PA, T]),
        (33, &[P, R]),
        (34, &[P, R, T]),
        (35, &[U64, P, P]),
        (36, &[U64, P, P]),
    ]
};

fn element(k: K) -> BoxedStrategy<Term> {
    match k {
        K::U | K::T => term_strategy().boxed(),
        K::P => pid_strategy().prop_map(Term::Pid).boxed(),
        K::R => ref_strategy().prop_map(Term::Ref).boxed(),
        K::A => atom_strategy().prop_map(Term::Atom).boxed(),
        K::PA => prop_oneof![pid_strategy().prop_map(Term::Pid), atom_strategy().prop_map(Term::Atom)].boxed(),
        K::Mfa => (atom_strategy(), atom_strategy(), any::<u8>()).prop_map(|(m, f, a)| crate::tuple![m, f, a]).boxed(),
        K::U32 => any::<u32>().prop_map(Term::from).boxed(),
        K::U64 => any::<u64>().prop_map(Term::from).boxed(),
    }
}

fn table_control() -> impl Strategy<Value = Control> {
    (0..SHAPES.len()).prop_flat_map(|i| {
        let (op, kinds) = SHAPES[i];
        kinds.iter().map(|k| element(*k)).collect::<Vec<_>>().prop_map(move |elems| {
            let mut t = vec![Term::Int(op.into())];
            t.extend(elems);
            Control::from_term(Term::Tuple(t)).expect("generated shape is valid")
        })
    })
}

fn altact_control() -> impl Strategy<Value = Control> {
    let target = prop_oneof![
        pid_strategy().prop_map(AltactTarget::Pid),
        ref_strategy().prop_map(AltactTarget::Alias),
        atom_strategy().prop_map(AltactTarget::Name),
    ];
    (any::<bool>(), any::<bool>(), pid_strategy(), target, prop::option::of(term_strategy()))
        .prop_map(|(prio, exit, from, to, token)| Control::AltactSigSend { prio, exit, from, to, token })
}

fn message() -> impl Strategy<Value = (Control, Option<Term>)> {
    (prop_oneof![9 => table_control(), 1 => altact_control()], term_strategy()).prop_map(|(c, p)| {
        let payload = c.has_payload().then_some(p);
        (c, payload)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// A connection's messages through one sender atom cache and one receiver: every message
    /// reads back as sent, whichever atoms earlier messages left in the cache (the fixed atoms
    /// of the strategy recur, so slots are reused and replaced).
    #[test]
    fn messages_through_the_atom_cache_read_back(
        msgs in prop::collection::vec(message(), 1..12),
        profile in 0..FUZZ_PROFILES.len(),
    ) {
        let flags = FUZZ_PROFILES[profile];
        let mut cache = OutAtomCache::new();
        let mut rx = Receiver::new(flags);
        for (control, payload) in msgs {
            let mut wire = Vec::new();
            let plain = encode_message(&control, payload.as_ref(), flags, &mut Vec::new());
            match encode_message_cached(&control, payload.as_ref(), flags, &mut cache, &mut wire) {
                Ok(()) => {
                    let got = rx.handle_frame(body(&wire)).unwrap().unwrap();
                    prop_assert_eq!(&got, &DistMessage { control: control.clone(), payload });
                }
                Err(e) => prop_assert_eq!(Some(e.to_string()), plain.err().map(|e| e.to_string())),
            }
        }
    }

    #[test]
    fn any_message_round_trips((control, payload) in message(), profile in 0..FUZZ_PROFILES.len()) {
        let flags = FUZZ_PROFILES[profile];
        let mut wire = Vec::new();
        match encode_message(&control, payload.as_ref(), flags, &mut wire) {
            Ok(()) => {
                let got = Receiver::new(flags).handle_frame(body(&wire)).unwrap().unwrap();
                prop_assert_eq!(&got, &DistMessage { control: control.clone(), payload });
                // the signal view never fails on received messages
                got.into_signal().unwrap();
            }
            Err(DistError::NotNegotiated { .. }) => {
                let (_, needed) = control.required_flag().unwrap();
                prop_assert!(!flags.contains(needed));
            }
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        fuzz_receiver(&data);
        // and as one frame body under every profile
        for flags in FUZZ_PROFILES {
            let _ = Receiver::new(flags).handle_frame(Bytes::from(data.clone()));
        }
    }

    #[test]
    fn framed_garbage_never_panics(
        profile in any::<u8>(),
        frames in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64).prop_map(|mut v| { v.insert(0, 112); v }),
                prop::collection::vec(any::<u8>(), 0..64).prop_map(|mut v| { v.splice(0..0, [131, 68]); v }),
                prop::collection::vec(any::<u8>(), 16..64).prop_map(|mut v| { v.splice(0..0, [131, 69]); v }),
                prop::collection::vec(any::<u8>(), 16..64).prop_map(|mut v| { v.splice(0..0, [131, 70]); v }),
            ],
            0..8,
        ),
    ) {
        let mut stream = vec![profile];
        for f in frames {
            encode_frame(&f, &mut stream).unwrap();
        }
        fuzz_receiver(&stream);
    }

    #[test]
    fn mutated_frames_never_panic(
        (control, payload) in message(),
        profile in 0..FUZZ_PROFILES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let flags = FUZZ_PROFILES[profile];
        let mut wire = Vec::new();
        if encode_message(&control, payload.as_ref(), flags, &mut wire).is_err() {
            return Ok(());
        }
        let mut b = wire[4..].to_vec();
        for (at, byte, how) in edits {
            if b.is_empty() { break; }
            let i = at.index(b.len());
            match how {
                0 => b[i] = byte,
                1 => { b.remove(i); }
                _ => b.insert(i, byte),
            }
        }
        let _ = Receiver::new(flags).handle_frame(Bytes::from(b.clone()));
        let mut stream = vec![profile as u8];
        encode_frame(&b, &mut stream).unwrap();
        fuzz_receiver(&stream);
    }
}
