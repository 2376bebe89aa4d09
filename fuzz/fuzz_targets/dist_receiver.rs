//! After the handshake (`erlnode::dist`): the first byte picks one of
//! `erlnode::dist::FUZZ_PROFILES` (pass-through, OTP 25, fragments only, ALTACT_SIG, erl_call's
//! minimal set), the rest is the byte stream from the peer: 4-byte framing, distribution
//! headers, atom cache, fragments, control messages, payloads. Nothing may panic, and every
//! message received must come back equal after `encode_message` (`fuzz_receiver` asserts it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    erlnode::dist::fuzz_receiver(data);
});
