//! The acceptor side of the distribution handshake (`erlnode::handshake`): the bytes are what
//! the dialling peer sends (`'N'`/`'n'` name, `'s'` alive answer, `'c'` complement, `'r'`
//! challenge reply), fed in one piece by `erlnode::handshake::fuzz::acceptor`. Nothing may
//! panic. Fed again in small pieces, the outcome and the bytes written back must be the same
//! ("fed with bytes in any split").
//!
//! The acceptor is `fuzz@localhost`, cookie `fuzz`, challenge `0x0bad_cafe`, so a seed with the
//! right digest gets to `Complete`.
#![no_main]

mod common;

use erlnode::handshake::{Handshake, Progress, Status, fuzz};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = fuzz::acceptor(data);
    assert!(!matches!(whole, Ok(Progress::StatusRequest { .. })), "stopped at a status request");
    let start = || Handshake::acceptor(common::local(), common::OUR_CHALLENGE);
    let answer = |hs: &mut Handshake, mut p| {
        while let Ok(Progress::StatusRequest { .. }) = p {
            p = hs.reply_status(Status::Ok);
        }
        p
    };
    common::assert_split_invariant(start, answer, data, &whole);
});
