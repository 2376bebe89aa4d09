//! What a Phoenix.PubSub pool worker on erlnode reads (`ForwardToLocal::parse`), from any
//! term the ETF decoder accepts. Nothing may panic; a message that parses is rebuilt to an
//! equal term.
#![no_main]

use erlnode::ecosystem::phoenix_pubsub::message::ForwardToLocal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = erlnode::term::decode(data) {
        if let Ok(f) = ForwardToLocal::parse(t.clone()) {
            assert_eq!(f.to_term(), t);
        }
    }
});
