//! ETF decoding (`erlnode::term`): whatever the bytes, decoding returns a term or an error,
//! and a term that decodes round-trips: encode it, decode again, get an equal term, and the
//! encoding is a fixed point (encoding the re-decoded term gives the same bytes).
//!
//! The recursive decoding path (shallow containers) and the iterative one (deep containers,
//! forced everywhere by `decode_iterative`) must give the same term or the same error.
//!
//! The same bytes are also decoded as a distribution-header body (no version byte, with an
//! atom cache), as `dist` does; the atom-cache references re-encode as plain atoms.
#![no_main]

use bytes::Bytes;
use erlnode::term::{
    Atom, DecodeOptions, Term, decode, decode_bytes, decode_iterative, decode_term_at, encode, encode_body_to,
};
use libfuzzer_sys::fuzz_target;

fn round_trip(term: &Term) {
    let wire = encode(term);
    let back = match decode(&wire) {
        Ok(t) => t,
        Err(e) => panic!("{term:?} encoded as {wire:?} does not decode: {e}"),
    };
    assert_eq!(&back, term, "{term:?} came back as {back:?}");
    assert_eq!(encode(&back), wire, "encoding of {term:?} is not a fixed point");
}

fuzz_target!(|data: &[u8]| {
    let owned = Bytes::copy_from_slice(data);

    // Whole buffer, version byte first: the copying and the zero-copy decoder must agree.
    let copied = decode(data);
    let sliced = decode_bytes(owned.clone());
    assert_eq!(copied, sliced);
    // Shallow containers are decoded by recursion, deep ones iteratively: both paths must
    // accept the same inputs and report the same errors at the same offsets.
    assert_eq!(copied, decode_iterative(data));
    if let Ok(term) = &copied {
        round_trip(term);
    }

    // A term inside a dist header body: no version byte, ATOM_CACHE_REF resolves.
    let cache = [Atom::new("a"), Atom::new("erlang"), Atom::new("fuzz@localhost")];
    let opts = DecodeOptions { version_byte: false, atom_cache: Some(&cache) };
    if let Ok((term, end)) = decode_term_at(&owned, 0, &opts) {
        assert!(end <= data.len());
        round_trip(&term);
        let mut body = Vec::new();
        encode_body_to(&term, &mut body);
        let plain = DecodeOptions { version_byte: false, atom_cache: None };
        let back = decode_term_at(&Bytes::from(body), 0, &plain).map(|(t, _)| t);
        assert_eq!(back.as_ref(), Ok(&term));
    }
});
