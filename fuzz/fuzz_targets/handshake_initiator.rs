//! The initiator side of the distribution handshake (`erlnode::handshake`): we dialled
//! `peer@localhost`, and the bytes are what it sends back (`'s'` status, `'N'` challenge,
//! `'a'` challenge ack), fed in one piece by `erlnode::handshake::fuzz::initiator`. Nothing
//! may panic. Fed again in small pieces, the outcome and the bytes written back must be the
//! same.
//!
//! The initiator is `fuzz@localhost`, cookie `fuzz`, challenge `0x0bad_cafe`, so a seed with
//! the right digest gets to `Complete`.
#![no_main]

mod common;

use erlnode::handshake::{Handshake, Progress, fuzz};
use erlnode::term::Atom;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = fuzz::initiator(data);
    assert!(!matches!(whole, Ok(Progress::AliveQuery { .. })), "stopped at an alive query");
    let start = || {
        let mut hs = Handshake::initiator(common::local(), Atom::new("peer@localhost"), common::OUR_CHALLENGE)?;
        // fuzz::initiator drops the name message it queues at once.
        let _ = hs.take_output();
        Ok(hs)
    };
    let answer = |hs: &mut Handshake, mut p| {
        while let Ok(Progress::AliveQuery { .. }) = p {
            p = hs.answer_alive(true);
        }
        p
    };
    common::assert_split_invariant(start, answer, data, &whole);
});
