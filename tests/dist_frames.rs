//! Real OTP streams through the `dist` layer: `tests/data/dist/<otp>/*.stream` are the raw
//! bytes both ways of a connection between two OTP nodes of the same release, recorded by
//! `erlang_interop/dist_frames/capture.sh` (handshake included). With OTP's default flags
//! they use distribution headers, the atom cache and fragments.

use bytes::{Bytes, BytesMut};
use erlnode::dist::{
    AltActKind, AltactTarget, Control, DistFlags, DistMessage, Frame, FrameDecoder, ProcRef, Receiver, Signal,
};
use erlnode::term::Term;

struct Stream {
    /// The flags in this side's `N` handshake message.
    flags: DistFlags,
    /// The frames after the handshake (ticks left out).
    frames: Vec<Bytes>,
}

/// Splits a recorded stream into its handshake messages (2-byte lengths) and the frames after
/// it (4-byte lengths). `handshake` is how many handshake messages this side sent.
fn split(raw: &[u8], handshake: usize) -> Stream {
    let mut pos = 0;
    let mut flags = None;
    for _ in 0..handshake {
        let len = u16::from_be_bytes([raw[pos], raw[pos + 1]]) as usize;
        let msg = &raw[pos + 2..pos + 2 + len];
        if msg[0] == b'N' {
            flags = Some(DistFlags(u64::from_be_bytes(msg[1..9].try_into().unwrap())));
        }
        pos += 2 + len;
    }
    let mut buf = BytesMut::from(&raw[pos..]);
    let mut dec = FrameDecoder::new();
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        if let Frame::Data(d) = f {
            frames.push(d);
        }
    }
    assert!(buf.is_empty(), "stream ends inside a frame");
    Stream { flags: flags.expect("an N message"), frames }
}

fn load(otp: &str) -> (Stream, Stream) {
    let dir = format!("{}/tests/data/dist/{otp}", env!("CARGO_MANIFEST_DIR"));
    let ini = std::fs::read(format!("{dir}/initiator_to_acceptor.stream")).unwrap();
    let acc = std::fs::read(format!("{dir}/acceptor_to_initiator.stream")).unwrap();
    // initiator: send_name, challenge_reply; acceptor: status, challenge, challenge_ack
    (split(&ini, 2), split(&acc, 3))
}

fn receive(s: &Stream, negotiated: DistFlags) -> Vec<DistMessage> {
    let mut rx = Receiver::new(negotiated);
    s.frames.iter().filter_map(|f| rx.handle_frame(f.clone()).unwrap()).collect()
}

fn check(otp: &str) {
    let (ini, acc) = load(otp);
    let negotiated = ini.flags & acc.flags;
    assert!(negotiated.contains(DistFlags::DIST_HDR_ATOM_CACHE | DistFlags::FRAGMENTS));

    // the headers really use the atom cache: new entries first, bare references later
    let refs: Vec<u8> = ini.frames.iter().filter(|f| f[..2] == [131, 68]).map(|f| f[2]).collect();
    assert!(refs.iter().any(|&n| n > 0), "{refs:?}");
    let new_flags = |f: &Bytes| f[3] & 0x08 != 0;
    let with_refs: Vec<&Bytes> = ini.frames.iter().filter(|f| f[..2] == [131, 68] && f[2] > 0).collect();
    assert!(with_refs.iter().any(|f| new_flags(f)) && with_refs.iter().any(|f| !new_flags(f)));
    // and a message came in fragments
    assert!(ini.frames.iter().filter(|f| f[..2] == [131, 69]).count() >= 1);
    assert!(ini.frames.iter().filter(|f| f[..2] == [131, 70]).count() >= 2);

    let sent = receive(&ini, negotiated);
    let signals: Vec<Signal> = sent.iter().cloned().map(|m| m.into_signal().unwrap()).collect();
    let to_sink: Vec<&Term> = signals
        .iter()
        .filter_map(|s| match s {
            Signal::RegSend { to, msg, .. } if to.as_str() == "sink" => Some(msg),
            _ => None,
        })
        .collect();
    assert_eq!(
        to_sink[0],
        &erlnode::tuple![
            erlnode::term::Atom::new("hello"),
            erlnode::term::Atom::new("world"),
            Term::List(vec![Term::atom("hello"), Term::atom("world")])
        ]
    );
    assert!(to_sink[1].as_tuple().unwrap()[2].is_atom("again"));
    let big = to_sink[2].as_tuple().unwrap();
    assert!(big[0].is_atom("big"));
    assert_eq!(big[1].as_binary().unwrap().len(), 200_000);
    assert!(big[1].as_binary().unwrap().iter().all(|&b| b == b'x'));

    let ops: Vec<u8> = sent.iter().map(|m| m.control.op()).collect();
    for op in [6, 29, 1, 35, 19, 20] {
        assert!(ops.contains(&op), "op {op} missing from {ops:?}");
    }
    // erpc:call(Peer, erlang, whereis, [sink]) spawns erpc:execute_call(Ref, erlang, whereis, [sink])
    assert!(signals.iter().any(|s| matches!(s, Signal::SpawnRequest { mfa, args, .. }
        if mfa.module.as_str() == "erpc" && args.as_list().unwrap().iter().any(|a| a.is_atom("whereis")))));
    assert!(signals.iter().any(|s| matches!(s, Signal::Monitor { to: ProcRef::Name(n), .. } if n.as_str() == "sink")));
    assert!(signals.iter().any(|s| matches!(s, Signal::Exit2 { reason, .. } if reason.is_atom("not_really"))));
    assert!(signals.iter().any(|s| matches!(s, Signal::Unlink { id: Some(_), .. })));

    assert!(
        signals.iter().any(|s| matches!(s, Signal::Monitor { to: ProcRef::Name(n), .. } if n.as_str() == "nosuch"))
    );

    // the other way: the spawn reply, the unlink acknowledgement, `noproc` for the monitor of a
    // name nobody has, a message to an alias, the sink's answer
    let back = receive(&acc, negotiated);
    let ops: Vec<u8> = back.iter().map(|m| m.control.op()).collect();
    for op in [31, 36, 28] {
        assert!(ops.contains(&op), "op {op} missing from {ops:?}");
    }
    let back_signals: Vec<Signal> = back.iter().cloned().map(|m| m.into_signal().unwrap()).collect();
    assert!(back_signals.iter().any(|s| matches!(s, Signal::MonitorExit { from: ProcRef::Name(n), reason, .. }
        if n.as_str() == "nosuch" && reason.is_atom("noproc"))));
    // OTP 28+ sends to an alias with ALTACT_SIG_SEND when both sides have ALTACT_SIG
    let alias_op = if negotiated.contains(DistFlags::ALTACT_SIG) { 37 } else { 33 };
    assert!(ops.contains(&alias_op), "{ops:?}");
    assert!(back_signals.iter().any(|s| match s {
        Signal::AliasSend { msg, .. } => msg.is_atom("via_alias"),
        Signal::AltAct { to: AltactTarget::Alias(_), kind: AltActKind::Message(msg), prio: false, .. } => {
            msg.is_atom("via_alias")
        }
        _ => false,
    }));
    let answered = back.iter().any(|m| {
        matches!(m.control, Control::Send { .. } | Control::SendSender { .. })
            && m.payload.as_ref().and_then(Term::as_tuple).is_some_and(|t| t[0].is_atom("sink_got"))
    });
    assert!(answered, "the sink answered");
}

#[test]
fn otp25_streams_decode() {
    check("otp25");
}

#[test]
fn otp27_streams_decode() {
    check("otp27");
}

#[test]
fn otp29_streams_decode() {
    check("otp29");
}

/// Every stream re-encoded by this node reads back as the same messages, under the same flags.
#[test]
fn recorded_messages_survive_our_encoder() {
    for otp in ["otp25", "otp27", "otp29"] {
        let (ini, acc) = load(otp);
        let negotiated = ini.flags & acc.flags;
        for s in [&ini, &acc] {
            for m in receive(s, negotiated) {
                let mut wire = Vec::new();
                erlnode::dist::encode_message(&m.control, m.payload.as_ref(), negotiated, &mut wire).unwrap();
                let back = Receiver::new(negotiated).handle_frame(Bytes::copy_from_slice(&wire[4..])).unwrap();
                assert_eq!(back, Some(m), "{otp}");
            }
        }
    }
}

/// The byte stream as a fuzz seed: the entry point must get through it.
#[test]
fn recorded_streams_through_the_fuzz_entry() {
    let dir = format!("{}/tests/data/dist/otp25", env!("CARGO_MANIFEST_DIR"));
    let ini = std::fs::read(format!("{dir}/initiator_to_acceptor.stream")).unwrap();
    let (stream, _) = load("otp25");
    let skip = ini.len() - stream.frames.iter().map(|f| f.len() + 4).sum::<usize>();
    let mut data = vec![1u8]; // profile B, OTP 25's flags
    data.extend_from_slice(&ini[skip..]);
    erlnode::dist::fuzz_receiver(&data);
}
