//! Both roles in memory: a pair harness pumps bytes between an initiator and an acceptor in
//! random splits, and can tamper with a message in flight.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::message::{self, TAG_CHALLENGE_ACK, TAG_CHALLENGE_REPLY};
use super::*;

const SEEDS: u64 = 64;

fn node(name: &str, cookie: &str, flags: DistFlags) -> LocalNode {
    LocalNode { name: Atom::new(name), flags, creation: 0x6b00_0000 + name.len() as u32, cookie: Cookie::new(cookie) }
}

fn full() -> DistFlags {
    FlagOptions::FULL.flags()
}

/// How a side ended up.
#[derive(Debug)]
enum End {
    Done(Outcome),
    Failed(HandshakeError),
    /// Still waiting for input when the exchange stopped (the peer gave up and would close).
    Waiting,
}

impl End {
    fn done(&self) -> &Outcome {
        match self {
            End::Done(o) => o,
            other => panic!("expected a completed handshake, got {other:?}"),
        }
    }
    fn err(&self) -> &HandshakeError {
        match self {
            End::Failed(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

type Tamper = Box<dyn FnMut(Role, &mut Vec<u8>)>;

struct Pair {
    init: Handshake,
    acc: Handshake,
    rng: StdRng,
    /// Status the acceptor's caller chooses.
    status: Status,
    /// Answer the initiator's caller gives to `alive`.
    alive_answer: bool,
    /// Called on every message (without its length prefix) as it leaves its sender.
    tamper: Option<Tamper>,
    /// Bytes the acceptor "sends" right after its last handshake message (4-byte framed data).
    acc_data_after: Vec<u8>,
}

struct Ends {
    init: End,
    acc: End,
    /// Bytes delivered to the initiator after it completed, appended to its leftover.
    init_after: Vec<u8>,
}

impl Pair {
    fn new(init: LocalNode, acc: LocalNode, seed: u64) -> Pair {
        let dial = acc.name.clone();
        Pair {
            init: Handshake::initiator(init, dial, 0x1111_2222).unwrap(),
            acc: Handshake::acceptor(acc, 0xfedc_ba98).unwrap(),
            rng: StdRng::seed_from_u64(seed),
            status: Status::Ok,
            alive_answer: true,
            tamper: None,
            acc_data_after: Vec::new(),
        }
    }

    /// Splits `bytes` into frames, lets the tamper hook edit each message, and re-frames them.
    fn outgoing(&mut self, from: Role, bytes: Vec<u8>) -> Vec<u8> {
        let Some(tamper) = self.tamper.as_mut() else {
            return bytes;
        };
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while let Some((msg, used)) = message::decode_frame(rest).unwrap() {
            let mut msg = msg.to_vec();
            tamper(from, &mut msg);
            out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            out.extend_from_slice(&msg);
            rest = &rest[used..];
        }
        assert!(rest.is_empty(), "our output is whole frames");
        out
    }

    fn run(mut self) -> Ends {
        let mut to_acc = Vec::new();
        let mut to_init = Vec::new();
        let mut init: Option<End> = None;
        let mut acc: Option<End> = None;
        let mut init_after = Vec::new();
        let out = self.init.take_output();
        to_acc.extend(self.outgoing(Role::Initiator, out));
        for _ in 0..10_000 {
            if to_acc.is_empty() && to_init.is_empty() {
                break;
            }
            // pick a direction with bytes, then a random-sized chunk
            let to_acceptor = if to_acc.is_empty() {
                false
            } else if to_init.is_empty() {
                true
            } else {
                self.rng.random_bool(0.5)
            };
            let queue = if to_acceptor { &mut to_acc } else { &mut to_init };
            let n = self.rng.random_range(1..=queue.len());
            let chunk: Vec<u8> = queue.drain(..n).collect();
            if to_acceptor {
                if acc.is_some() {
                    continue; // the acceptor closed or switched to data
                }
                let mut r = self.acc.handle_input(&chunk);
                loop {
                    match r {
                        Ok(Progress::StatusRequest { .. }) => {
                            r = self.acc.reply_status(self.status);
                        }
                        Ok(Progress::NeedInput) => break,
                        Ok(Progress::Complete(o)) => {
                            acc = Some(End::Done(o));
                            break;
                        }
                        Ok(Progress::AliveQuery { .. }) => panic!("acceptor asked alive"),
                        Err(e) => {
                            acc = Some(End::Failed(e));
                            break;
                        }
                    }
                }
                let out = self.acc.take_output();
                to_init.extend(self.outgoing(Role::Acceptor, out));
                if matches!(acc, Some(End::Done(_))) {
                    to_init.extend(self.acc_data_after.clone());
                }
            } else {
                if init.is_some() {
                    if matches!(init, Some(End::Done(_))) {
                        init_after.extend(chunk);
                    }
                    continue;
                }
                let mut r = self.init.handle_input(&chunk);
                loop {
                    match r {
                        Ok(Progress::AliveQuery { .. }) => {
                            r = self.init.answer_alive(self.alive_answer);
                        }
                        Ok(Progress::NeedInput) => break,
                        Ok(Progress::Complete(o)) => {
                            init = Some(End::Done(o));
                            break;
                        }
                        Ok(Progress::StatusRequest { .. }) => panic!("initiator asked status"),
                        Err(e) => {
                            init = Some(End::Failed(e));
                            break;
                        }
                    }
                }
                let out = self.init.take_output();
                to_acc.extend(self.outgoing(Role::Initiator, out));
            }
        }
        Ends { init: init.unwrap_or(End::Waiting), acc: acc.unwrap_or(End::Waiting), init_after }
    }
}

fn run_seeds(make: impl Fn(u64) -> Pair, check: impl Fn(&Ends)) {
    for seed in 0..SEEDS {
        let ends = make(seed).run();
        check(&ends);
    }
}

#[test]
fn success_both_ways_in_random_splits() {
    for (a, b) in [("a@vm", "b@vm"), ("b@vm", "a@vm")] {
        run_seeds(
            |seed| Pair::new(node(a, "c", full()), node(b, "c", FlagOptions::PASS_THROUGH.flags()), seed),
            |ends| {
                let i = ends.init.done();
                let r = ends.acc.done();
                assert_eq!(i.name, Atom::new(b));
                assert_eq!(r.name, Atom::new(a));
                assert_eq!(i.flags, FlagOptions::PASS_THROUGH.flags(), "acceptor sends its full flags");
                assert_eq!(r.flags, full());
                assert_eq!(i.creation, 0x6b00_0000 + b.len() as u32);
                assert_eq!(r.creation, 0x6b00_0000 + a.len() as u32);
                assert_eq!(i.negotiated, FlagOptions::PASS_THROUGH.flags());
                assert_eq!(r.negotiated, i.negotiated);
                assert!(i.leftover.is_empty() && r.leftover.is_empty() && ends.init_after.is_empty());
            },
        );
    }
}

/// Inside TLS (`inet_tls_dist`, `{packet, 4}`) the same exchange runs with 4-byte lengths.
#[test]
fn tls_framing_both_ways_in_random_splits() {
    run_seeds(
        |seed| {
            let mut p = Pair::new(node("a@vm", "c", full()), node("b@vm", "c", full()), seed);
            p.init = Handshake::initiator(node("a@vm", "c", full()), Atom::new("b@vm"), 0x1111_2222)
                .unwrap()
                .with_framing(message::Framing::Tls);
            p.acc = Handshake::acceptor(node("b@vm", "c", full()), 0xfedc_ba98)
                .unwrap()
                .with_framing(message::Framing::Tls);
            p
        },
        |ends| {
            assert_eq!(ends.init.done().name, Atom::new("b@vm"));
            assert_eq!(ends.acc.done().name, Atom::new("a@vm"));
        },
    );
}

#[test]
fn tls_framing_puts_four_length_bytes_in_front() {
    let mut hs = Handshake::initiator(node("a@vm", "c", full()), Atom::new("b@vm"), 1)
        .unwrap()
        .with_framing(message::Framing::Tls);
    let out = hs.take_output();
    let mut plain = Vec::new();
    message::encode_name(&mut plain, full(), 0x6b00_0000 + 4, b"a@vm");
    assert_eq!(&out[..4], &((plain.len() - 2) as u32).to_be_bytes());
    assert_eq!(&out[4..], &plain[2..]);
    // a plain-TCP peer's 2-byte frame read as a 4-byte length is far over the limit
    let mut acc = Handshake::acceptor(node("b@vm", "c", full()), 7).unwrap().with_framing(message::Framing::Tls);
    let mut tcp = Vec::new();
    message::encode_name(&mut tcp, full(), 9, b"a@vm");
    assert!(matches!(acc.handle_input(&tcp), Err(HandshakeError::TooLong { .. })));
}

#[test]
fn leftover_bytes_after_the_ack_are_delivered() {
    // a tick and a small frame, sent by the acceptor right behind 'a'
    let data = vec![0, 0, 0, 0, 0, 0, 0, 3, 112, 1, 2];
    run_seeds(
        |seed| {
            let mut p = Pair::new(node("a@vm", "c", full()), node("b@vm", "c", full()), seed);
            p.acc_data_after = data.clone();
            p
        },
        |ends| {
            let i = ends.init.done();
            let mut got = i.leftover.clone();
            got.extend_from_slice(&ends.init_after);
            assert_eq!(got, data);
        },
    );
}

#[test]
fn leftover_after_the_reply_reaches_the_acceptor() {
    let mut acc = Handshake::acceptor(node("b@vm", "c", full()), 7).unwrap();
    let mut peer = Vec::new();
    message::encode_name(&mut peer, full(), 9, b"a@vm");
    assert!(matches!(acc.handle_input(&peer).unwrap(), Progress::StatusRequest { .. }));
    assert_eq!(acc.reply_status(Status::Ok).unwrap(), Progress::NeedInput);
    let mut reply = Vec::new();
    message::encode_challenge_reply(&mut reply, 5, &gen_digest(7, &Cookie::new("c")));
    reply.extend_from_slice(&[0, 0, 0, 0]);
    let Progress::Complete(o) = acc.handle_input(&reply).unwrap() else { panic!() };
    assert_eq!(o.leftover, vec![0, 0, 0, 0]);
    assert_eq!(o.creation, 9);
}

#[test]
fn wrong_cookie_both_directions() {
    for (ci, ca) in [("c1", "c2"), ("c2", "c1")] {
        run_seeds(
            |seed| Pair::new(node("a@vm", ci, full()), node("b@vm", ca, full()), seed),
            |ends| {
                // the acceptor checks 'r' first; it closes without sending 'a'
                assert_eq!(
                    ends.acc.err(),
                    &HandshakeError::BadCookie { peer: Atom::new("a@vm"), message: DigestMessage::ChallengeReply }
                );
                assert_eq!(ends.acc.err().fault(), Fault::BadCookie);
                assert!(matches!(ends.init, End::Waiting));
            },
        );
    }
}

fn flip_last_byte_of(tag: u8) -> Tamper {
    Box::new(move |_, msg: &mut Vec<u8>| {
        if msg.first() == Some(&tag) {
            if let Some(b) = msg.last_mut() {
                *b ^= 0x01;
            }
        }
    })
}

#[test]
fn tampered_digest_in_reply_is_a_cookie_error() {
    run_seeds(
        |seed| {
            let mut p = Pair::new(node("a@vm", "c", full()), node("b@vm", "c", full()), seed);
            p.tamper = Some(flip_last_byte_of(TAG_CHALLENGE_REPLY));
            p
        },
        |ends| {
            assert!(matches!(ends.acc.err(), HandshakeError::BadCookie { message: DigestMessage::ChallengeReply, .. }));
        },
    );
}

#[test]
fn tampered_digest_in_ack_is_a_cookie_error() {
    run_seeds(
        |seed| {
            let mut p = Pair::new(node("a@vm", "c", full()), node("b@vm", "c", full()), seed);
            p.tamper = Some(flip_last_byte_of(TAG_CHALLENGE_ACK));
            p
        },
        |ends| {
            ends.acc.done();
            assert_eq!(
                ends.init.err(),
                &HandshakeError::BadCookie { peer: Atom::new("b@vm"), message: DigestMessage::ChallengeAck }
            );
        },
    );
}

fn with_status(status: Status, alive_answer: bool) -> impl Fn(u64) -> Pair {
    move |seed| {
        let mut p = Pair::new(node("a@vm", "c", full()), node("b@vm", "c", full()), seed);
        p.status = status;
        p.alive_answer = alive_answer;
        p
    }
}

#[test]
fn status_ok_and_ok_simultaneous_continue() {
    for status in [Status::Ok, Status::OkSimultaneous] {
        run_seeds(with_status(status, true), |ends| {
            ends.init.done();
            ends.acc.done();
        });
    }
}

#[test]
fn status_nok_and_not_allowed_reject() {
    for status in [Status::Nok, Status::NotAllowed] {
        run_seeds(with_status(status, true), |ends| {
            assert_eq!(ends.acc.err(), &HandshakeError::Rejected { status, by: Side::Local });
            assert_eq!(ends.init.err(), &HandshakeError::Rejected { status, by: Side::Peer });
            assert_eq!(ends.init.err().fault(), Fault::Rejected);
        });
    }
}

#[test]
fn status_alive_answered_true_continues() {
    run_seeds(with_status(Status::Alive, true), |ends| {
        ends.init.done();
        ends.acc.done();
    });
}

#[test]
fn status_alive_answered_false_aborts_both() {
    run_seeds(with_status(Status::Alive, false), |ends| {
        assert_eq!(ends.init.err(), &HandshakeError::Rejected { status: Status::Alive, by: Side::Local });
        assert_eq!(ends.acc.err(), &HandshakeError::Rejected { status: Status::Alive, by: Side::Peer });
    });
}

#[test]
fn the_callers_are_asked_with_the_peer_names() {
    let mut init = Handshake::initiator(node("a@vm", "c", full()), Atom::new("b@vm"), 1).unwrap();
    let mut acc = Handshake::acceptor(node("b@vm", "c", full()), 2).unwrap();
    let Progress::StatusRequest { peer, flags } = acc.handle_input(&init.take_output()).unwrap() else { panic!() };
    assert_eq!(peer, Atom::new("a@vm"));
    assert_eq!(flags, full());
    assert_eq!(acc.reply_status(Status::Alive).unwrap(), Progress::NeedInput);
    let to_init = acc.take_output();
    assert_eq!(&to_init[2..], b"salive");
    let Progress::AliveQuery { peer } = init.handle_input(&to_init).unwrap() else { panic!() };
    assert_eq!(peer, Atom::new("b@vm"));
    assert_eq!(init.reply_status(Status::Ok).unwrap_err().fault(), Fault::LocalMisuse);
    assert_eq!(init.answer_alive(true).unwrap(), Progress::NeedInput);
    assert_eq!(&init.take_output()[2..], b"strue");
}

#[test]
fn acceptor_rejects_missing_mandatory_flags_with_not_allowed() {
    let no_utf8 = full().without(DistFlags::UTF8_ATOMS).without(DistFlags::MANDATORY_25_DIGEST);
    let no_v4 = full().without(DistFlags::V4_NC);
    for (flags, missing) in [(no_utf8, DistFlags::UTF8_ATOMS), (no_v4, DistFlags::V4_NC)] {
        run_seeds(
            |seed| Pair::new(node("a@vm", "c", flags), node("b@vm", "c", full()), seed),
            |ends| {
                assert_eq!(ends.acc.err(), &HandshakeError::MissingFlags { peer: Some(Atom::new("a@vm")), missing });
                assert_eq!(ends.acc.err().fault(), Fault::PeerIncompatible);
                assert_eq!(ends.init.err(), &HandshakeError::Rejected { status: Status::NotAllowed, by: Side::Peer });
            },
        );
    }
}

#[test]
fn digest_bit_stands_for_the_otp25_set() {
    let minimal = DistFlags::PUBLISHED | DistFlags::MANDATORY_25_DIGEST | DistFlags::MANDATORY_26;
    let ends = Pair::new(node("a@vm", "c", minimal), node("b@vm", "c", full()), 1).run();
    let r = ends.acc.done();
    assert_eq!(r.flags, minimal, "flags are reported as sent");
    assert_eq!(r.negotiated, full() & (minimal | DistFlags::MANDATORY_25));
    assert_eq!(ends.init.done().negotiated, r.negotiated);
}

#[test]
fn initiator_rejects_an_acceptor_missing_mandatory_flags() {
    let no_map = full().without(DistFlags::MAP_TAG).without(DistFlags::MANDATORY_25_DIGEST);
    run_seeds(
        |seed| Pair::new(node("a@vm", "c", full()), node("b@vm", "c", no_map), seed),
        |ends| {
            assert_eq!(
                ends.init.err(),
                &HandshakeError::MissingFlags { peer: Some(Atom::new("b@vm")), missing: DistFlags::MAP_TAG }
            );
            assert!(matches!(ends.acc, End::Waiting));
        },
    );
}

#[test]
fn challenge_name_must_be_the_dialled_node() {
    let mut init = Handshake::initiator(node("a@vm", "c", full()), Atom::new("b@vm"), 1).unwrap();
    let mut acc = Handshake::acceptor(node("b@other", "c", full()), 2).unwrap();
    let Progress::StatusRequest { .. } = acc.handle_input(&init.take_output()).unwrap() else { panic!() };
    acc.reply_status(Status::Ok).unwrap();
    let err = init.handle_input(&acc.take_output()).unwrap_err();
    assert_eq!(err, HandshakeError::NameMismatch { expected: Atom::new("b@vm"), got: "b@other".into() });
    assert_eq!(err.fault(), Fault::NameMismatch);
    assert!(init.take_output().is_empty(), "no 'r' after a mismatch");
    assert!(matches!(init.handle_input(&[]), Err(HandshakeError::Misuse(_))));
}

/// A version 5 peer: `'n'`, then `'c'` after the challenge.
#[test]
fn legacy_name_and_complement() {
    let cookie = Cookie::new("c");
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut acc = Handshake::acceptor(node("b@vm", "c", full()), 0xdead_beef).unwrap();
        let flags = full();
        let mut peer_out = Vec::new();
        message::encode_name_old(&mut peer_out, 5, flags.0 as u32, b"a@vm");
        let mut progress = feed_in_pieces(&mut acc, &peer_out, &mut rng);
        let Progress::StatusRequest { peer, flags: low } = progress else { panic!("{progress:?}") };
        assert_eq!(peer, Atom::new("a@vm"));
        assert_eq!(low, DistFlags(flags.0 & 0xffff_ffff));
        assert_eq!(acc.reply_status(Status::Ok).unwrap(), Progress::NeedInput);
        let out = acc.take_output();
        let (status, used) = message::decode_frame(&out).unwrap().unwrap();
        assert_eq!(status, b"sok");
        let (challenge, _) = message::decode_frame(&out[used..]).unwrap().unwrap();
        let ch = message::decode_challenge(challenge).unwrap();
        assert_eq!(ch.challenge, 0xdead_beef);
        assert_eq!(ch.flags, full());
        let mut peer_out = Vec::new();
        message::encode_complement(&mut peer_out, (flags.0 >> 32) as u32, 4242);
        message::encode_challenge_reply(&mut peer_out, 77, &gen_digest(ch.challenge, &cookie));
        progress = feed_in_pieces(&mut acc, &peer_out, &mut rng);
        let Progress::Complete(o) = progress else { panic!("{progress:?}") };
        assert_eq!(o.flags, flags);
        assert_eq!(o.creation, 4242);
        let ack = acc.take_output();
        let (ack, _) = message::decode_frame(&ack).unwrap().unwrap();
        assert_eq!(message::decode_challenge_ack(ack).unwrap(), gen_digest(77, &cookie));
    }
}

#[test]
fn legacy_complement_missing_high_mandatory_flags_is_not_allowed() {
    let mut acc = Handshake::acceptor(node("b@vm", "c", full()), 1).unwrap();
    let mut peer_out = Vec::new();
    message::encode_name_old(&mut peer_out, 5, full().0 as u32, b"a@vm");
    acc.handle_input(&peer_out).unwrap();
    acc.reply_status(Status::Ok).unwrap();
    let _ = acc.take_output();
    let mut c = Vec::new();
    message::encode_complement(&mut c, 0, 1); // no V4_NC
    let err = acc.handle_input(&c).unwrap_err();
    assert_eq!(err, HandshakeError::MissingFlags { peer: Some(Atom::new("a@vm")), missing: DistFlags::V4_NC });
    assert_eq!(&acc.take_output()[2..], b"snot_allowed");
}

fn feed_in_pieces(hs: &mut Handshake, mut bytes: &[u8], rng: &mut StdRng) -> Progress {
    let mut last = Progress::NeedInput;
    while !bytes.is_empty() {
        let n = rng.random_range(1..=bytes.len());
        last = hs.handle_input(&bytes[..n]).unwrap();
        bytes = &bytes[n..];
    }
    last
}

#[test]
fn acceptor_refuses_name_me_and_bad_names() {
    let mut acc = Handshake::acceptor(node("b@vm", "c", full()), 1).unwrap();
    let mut m = Vec::new();
    message::encode_name(&mut m, full() | DistFlags::NAME_ME, 0, b"vm");
    assert_eq!(acc.handle_input(&m).unwrap_err(), HandshakeError::NameMeUnsupported);
    assert_eq!(&acc.take_output()[2..], b"snot_allowed");

    let mut acc = Handshake::acceptor(node("b@vm", "c", full()), 1).unwrap();
    let mut m = Vec::new();
    message::encode_name(&mut m, full(), 1, b"novm");
    let err = acc.handle_input(&m).unwrap_err();
    assert_eq!(err, HandshakeError::InvalidNodeName { name: "novm".into() });
    assert_eq!(err.fault(), Fault::PeerMisbehaved);
    assert!(acc.take_output().is_empty(), "a bad name is closed without a reply");
}

#[test]
fn initiator_refuses_unknown_and_named_status() {
    for text in [&b"named:"[..], b"maybe", b"", b"true"] {
        let mut init = Handshake::initiator(node("a@vm", "c", full()), Atom::new("b@vm"), 1).unwrap();
        let mut m = Vec::new();
        m.extend_from_slice(&((text.len() + 1) as u16).to_be_bytes());
        m.push(b's');
        m.extend_from_slice(text);
        let err = init.handle_input(&m).unwrap_err();
        assert!(matches!(err, HandshakeError::UnexpectedStatus { .. }), "{err:?}");
    }
}

#[test]
fn local_misuse_is_typed() {
    let bad_name = node("nohost", "c", full());
    assert!(matches!(Handshake::acceptor(bad_name, 1), Err(HandshakeError::Misuse(_))));
    let name_me = node("a@vm", "c", full() | DistFlags::NAME_ME);
    assert!(matches!(Handshake::acceptor(name_me, 1), Err(HandshakeError::Misuse(_))));
    let mut acc = Handshake::acceptor(node("a@vm", "c", full()), 1).unwrap();
    assert_eq!(acc.answer_alive(true).unwrap_err().fault(), Fault::LocalMisuse);
    assert_eq!(acc.reply_status(Status::Ok).unwrap_err().fault(), Fault::LocalMisuse);
    // misuse did not poison the state
    let mut m = Vec::new();
    message::encode_name(&mut m, full(), 1, b"x@vm");
    assert!(matches!(acc.handle_input(&m).unwrap(), Progress::StatusRequest { .. }));
}

#[test]
fn too_much_input_while_waiting_on_the_caller_is_bounded() {
    let mut acc = Handshake::acceptor(node("b@vm", "c", full()), 1).unwrap();
    let mut m = Vec::new();
    message::encode_name(&mut m, full(), 1, b"a@vm");
    acc.handle_input(&m).unwrap();
    let junk = vec![0u8; MAX_HANDSHAKE_MESSAGE_LEN + 3];
    assert!(matches!(acc.handle_input(&junk), Err(HandshakeError::TooLong { .. })));
}

#[test]
fn digest_matches_otp() {
    // erlang:md5("c" ++ integer_to_list(2901765873))
    let d = gen_digest(2_901_765_873, &Cookie::new("c"));
    let mut md5 = Md5::new();
    md5.update(b"c2901765873");
    assert_eq!(d, <[u8; 16]>::from(md5.finalize()));
    assert_eq!(format!("{:?}", Cookie::new("secret")), "Cookie(<redacted>)");
}

#[test]
fn simultaneous_connect_rule() {
    let a = Atom::new("a@vm");
    let b = Atom::new("b@vm");
    assert_eq!(status_for_incoming(&a, &b, false, false), Status::Ok);
    assert_eq!(status_for_incoming(&b, &a, true, false), Status::Nok);
    assert_eq!(status_for_incoming(&a, &b, true, false), Status::OkSimultaneous);
    assert_eq!(status_for_incoming(&a, &b, false, true), Status::Alive);
    assert_eq!(status_for_incoming(&b, &a, true, true), Status::Alive);
    // exactly one of two crossing attempts survives
    for (x, y) in [(&a, &b), (&b, &a)] {
        let sx = status_for_incoming(x, y, true, false);
        let sy = status_for_incoming(y, x, true, false);
        assert_ne!(sx == Status::Nok, sy == Status::Nok);
    }
}

/// A full exchange as bytes: what the initiator sends, for the acceptor's truncation test.
fn valid_initiator_bytes() -> Vec<u8> {
    let mut b = Vec::new();
    message::encode_name(&mut b, full(), 1, b"a@vm");
    message::encode_challenge_reply(&mut b, 5, &gen_digest(0x0bad_cafe, &Cookie::new("fuzz")));
    b
}

#[test]
fn every_truncation_of_a_valid_exchange_needs_more_input() {
    let full_bytes = valid_initiator_bytes();
    let Ok(Progress::Complete(_)) = fuzz::acceptor(&full_bytes) else { panic!("fixture must complete") };
    for n in 0..full_bytes.len() {
        let p = fuzz::acceptor(&full_bytes[..n]).unwrap();
        assert!(matches!(p, Progress::NeedInput), "{n}: {p:?}");
    }
}

proptest! {
    #[test]
    fn garbage_into_the_acceptor_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = fuzz::acceptor(&data);
    }

    #[test]
    fn garbage_into_the_initiator_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = fuzz::initiator(&data);
    }

    #[test]
    fn garbage_after_a_valid_name_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut data = Vec::new();
        message::encode_name(&mut data, full(), 1, b"a@vm");
        data.extend_from_slice(&tail);
        let _ = fuzz::acceptor(&data);
        let mut old = Vec::new();
        message::encode_name_old(&mut old, 5, full().0 as u32, b"a@vm");
        old.extend_from_slice(&tail);
        let _ = fuzz::acceptor(&old);
    }

    #[test]
    fn garbage_after_a_valid_status_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
        for status in ["ok", "alive"] {
            let mut data = Vec::new();
            message::encode_status(&mut data, status);
            data.extend_from_slice(&tail);
            let _ = fuzz::initiator(&data);
        }
    }

    #[test]
    fn framed_garbage_messages_never_panic(
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
        tag in prop_oneof![Just(b'N'), Just(b'n'), Just(b's'), Just(b'r'), Just(b'a'), Just(b'c')],
    ) {
        let mut data = Vec::new();
        for m in &msgs {
            data.extend_from_slice(&((m.len() + 1) as u16).to_be_bytes());
            data.push(tag);
            data.extend_from_slice(m);
        }
        let _ = fuzz::acceptor(&data);
        let _ = fuzz::initiator(&data);
    }
}
