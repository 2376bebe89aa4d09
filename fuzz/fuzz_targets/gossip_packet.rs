//! What erlnode reads from libcluster's Gossip port (`erlnode::ecosystem::libcluster::packet`):
//! any datagram, plain and with a secret. Nothing may panic; a datagram that decodes names a
//! node whose heartbeat, encoded again, decodes to the same node (plain and encrypted).
#![no_main]

use erlnode::ecosystem::libcluster::packet::{Secret, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let secret = Secret::new("fuzz");
    for s in [None, Some(&secret)] {
        if let Ok(node) = decode(data, s) {
            for again in [None, Some(&secret)] {
                let d = encode(&node, again, [7; 16]);
                assert_eq!(decode(&d, again).as_ref(), Ok(&node));
            }
        }
    }
    // the encrypted form of whatever came in, as if a peer with the secret had sent it
    if data.len() <= 1024 {
        let mut plain = b"heartbeat::".to_vec();
        plain.extend_from_slice(data);
        let _ = decode(&plain, None);
    }
});
