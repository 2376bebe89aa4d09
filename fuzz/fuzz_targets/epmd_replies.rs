//! What the EPMD client parses from EPMD (`erlnode::epmd::proto`): the first byte picks the
//! reply (ALIVE2_X_RESP/ALIVE2_RESP, PORT2_RESP, the NAMES text, KILL's `OK`/`NO`), the rest
//! is EPMD's bytes. Nothing may panic; a reply that decodes must encode and decode back to
//! itself; a strict prefix of a decoded reply is "need more bytes".
#![no_main]

use erlnode::epmd::proto::{Alive2Resp, KillResp, MAX_NAMES_REPLY_LEN, NamesResp, Port2Resp, ProtoError};
use libfuzzer_sys::fuzz_target;

type Decoder<T> = fn(&[u8]) -> Result<Option<(T, usize)>, ProtoError>;

/// Decodes with an incremental decoder, checks prefixes, and returns the value.
fn incremental<T: PartialEq + std::fmt::Debug>(decode: Decoder<T>, buf: &[u8]) -> Option<T> {
    let (value, used) = decode(buf).ok()??;
    assert!(used <= buf.len());
    for cut in 0..used {
        assert!(matches!(decode(&buf[..cut]), Ok(None)), "prefix of {cut} of a {used}-byte reply");
    }
    Some(value)
}

fn check_again<T: PartialEq + std::fmt::Debug>(decode: Decoder<T>, value: &T, wire: &[u8]) {
    match decode(wire) {
        Ok(Some((back, used))) => {
            assert_eq!(&back, value);
            assert_eq!(used, wire.len());
        }
        other => panic!("{value:?} encoded as {wire:?} decodes as {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, buf)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            if let Some(r) = incremental(Alive2Resp::decode, buf) {
                let mut wire = Vec::new();
                r.encode(&mut wire);
                check_again(Alive2Resp::decode, &r, &wire);
            }
        }
        1 => {
            if let Some(r) = incremental(Port2Resp::decode, buf) {
                let mut wire = Vec::new();
                r.encode(&mut wire).expect("a decoded reply encodes");
                check_again(Port2Resp::decode, &r, &wire);
            }
        }
        2 => {
            if let Ok(r) = NamesResp::decode(buf) {
                assert!(buf.len() <= MAX_NAMES_REPLY_LEN);
                let mut wire = Vec::new();
                r.encode(&mut wire);
                assert_eq!(NamesResp::decode(&wire).as_ref(), Ok(&r), "re-encoded as {wire:?}");
            }
        }
        _ => {
            if let Some(r) = incremental(KillResp::decode, buf) {
                check_again(KillResp::decode, &r, r.as_bytes());
            }
        }
    }
});
