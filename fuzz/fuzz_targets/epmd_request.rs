//! What the embedded EPMD server parses from a client (`erlnode::epmd::proto::Request`):
//! `Len:16` framed ALIVE2_REQ, PORT_PLEASE2_REQ, NAMES_REQ, KILL_REQ. Nothing may panic; a
//! request that decodes must encode and decode back to itself; every strict prefix of a
//! decoded frame is "need more bytes", never an error or a different request.
#![no_main]

use erlnode::epmd::proto::{MAX_REQUEST_LEN, Request};
use libfuzzer_sys::fuzz_target;

fn round_trip(req: &Request) {
    let mut wire = Vec::new();
    req.encode(&mut wire).expect("a decoded request encodes");
    match Request::decode(&wire) {
        Ok(Some((back, used))) => {
            assert_eq!(&back, req);
            assert_eq!(used, wire.len());
        }
        other => panic!("{req:?} encoded as {wire:?} decodes as {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    // The server's read loop: the buffer as it grows.
    match Request::decode(data) {
        Ok(Some((req, used))) => {
            assert!(used <= data.len() && used <= 2 + MAX_REQUEST_LEN);
            round_trip(&req);
            for cut in 0..used {
                assert!(
                    matches!(Request::decode(&data[..cut]), Ok(None)),
                    "prefix of {cut} bytes of a {used}-byte request"
                );
            }
        }
        Ok(None) => assert!(data.len() < 2 + MAX_REQUEST_LEN),
        Err(_) => {}
    }
    // A body on its own, as after the length.
    if let Ok(req) = Request::decode_body(data) {
        round_trip(&req);
    }
});
