//! Property tests of `term::typed`: every value of the supported shapes round-trips through
//! `to_vec`/`from_slice` and `to_term`/`from_term`, both paths agree with the `Term` codec, and
//! no input (arbitrary bytes, damaged encodings of real values) makes `from_slice` panic or
//! report an offset outside the input.
//!
//! (cargo-fuzz runs the same garbage-input check longer: `fuzz/fuzz_targets/from_slice.rs`.)

mod typed_values;

use erlnode::term::typed::ErrorKind;
use erlnode::term::{Term, decode, encode, from_slice, from_term, to_term, to_vec};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use typed_values::*;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) -> Result<(), TestCaseError> {
    let bytes = to_vec(v).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&from_slice::<T>(&bytes).unwrap(), v);
    let t = to_term(v).unwrap();
    prop_assert_eq!(&from_term::<T>(&t).unwrap(), v);
    // the two paths agree with each other and with the Term codec
    prop_assert_eq!(&encode(&t), &bytes);
    prop_assert_eq!(&decode(&bytes).unwrap(), &t);
    Ok(())
}

/// Reading garbage into `T` may fail but never panics, and an offset is inside the input.
fn garbage<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = from_slice::<T>(bytes) {
        if let Some(o) = e.offset() {
            // offsets inside a COMPRESSED term count from the inflated bytes
            let compressed = bytes.get(1) == Some(&80);
            prop_assert!(compressed || o <= bytes.len(), "offset {} beyond {} bytes: {}", o, bytes.len(), e);
        }
        let _ = e.to_string();
    }
    Ok(())
}

/// `from_slice` into `T` accepts exactly what it accepted before a re-encoding: a value read
/// from any input writes bytes that read back to it.
fn reads_back<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    if let Ok(v) = from_slice::<T>(bytes) {
        let again = to_vec(&v).unwrap();
        prop_assert_eq!(from_slice::<T>(&again).unwrap(), v);
    }
    Ok(())
}

fn damage(bytes: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for &(i, v) in edits {
        if !b.is_empty() {
            let n = b.len();
            b[i % n] = v;
        }
    }
    b.truncate(b.len().saturating_sub(cut));
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn users_round_trip(u in user()) {
        round_trip(&u)?;
    }

    #[test]
    fn plain_values_round_trip(p in plain()) {
        round_trip(&p)?;
    }

    #[test]
    fn envelopes_with_any_term_round_trip(e in envelope()) {
        round_trip(&e)?;
    }

    #[test]
    fn collections_round_trip(v in prop::collection::vec(user(), 0..5), r in prop::collection::vec(role(), 0..300)) {
        round_trip(&v)?;
        round_trip(&r)?;
        round_trip(&(v, r))?;
    }

    #[test]
    fn a_value_is_read_as_term_too(u in user()) {
        // any value's bytes read as a Term give the Term to_term makes
        let bytes = to_vec(&u).unwrap();
        prop_assert_eq!(from_slice::<Term>(&bytes).unwrap(), to_term(&u).unwrap());
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..200), version in any::<bool>()) {
        if version && !bytes.is_empty() {
            bytes[0] = 131;
        }
        garbage::<User>(&bytes)?;
        garbage::<Envelope>(&bytes)?;
        garbage::<Vec<Role>>(&bytes)?;
        garbage::<Term>(&bytes)?;
        garbage::<std::collections::HashMap<String, Vec<Option<i128>>>>(&bytes)?;
        reads_back::<Vec<Role>>(&bytes)?;
        reads_back::<Plain>(&bytes)?;
    }

    #[test]
    fn damaged_encodings_never_panic(
        e in envelope(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in 0usize..4,
    ) {
        let bytes = damage(&to_vec(&e).unwrap(), &edits, cut);
        garbage::<Envelope>(&bytes)?;
        garbage::<User>(&bytes)?;
        reads_back::<Envelope>(&bytes)?;
        // a cut encoding is malformed, never a mismatch or a panic
        if cut > 0 && edits.is_empty() {
            let err = from_slice::<Envelope>(&bytes).unwrap_err();
            prop_assert!(matches!(err.kind(), ErrorKind::Malformed(_)), "{}", err);
        }
    }

    #[test]
    fn damaged_users_never_panic(
        u in user(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let bytes = damage(&to_vec(&u).unwrap(), &edits, 0);
        garbage::<User>(&bytes)?;
        reads_back::<User>(&bytes)?;
    }
}
