//! Typed decoding (`erlnode::term::from_slice`): whatever the bytes, reading them into a few
//! typed targets returns a value or an error (never a panic, an OOM or a hang), an error's
//! offset lies inside the input (or, for a `COMPRESSED` term, inside what it inflates to), and
//! a value that was read writes (`to_vec`) bytes that read back to an equal value.
//!
//! The targets cover the conventions: an Elixir struct with strings, options, bignums, bytes,
//! maps, tuples and enums of every variant kind; a struct borrowing `&str` and `&[u8]` from
//! the input; a map of lists of options; and `Term` fields (which `term::decode` reads).
#![no_main]

use std::collections::BTreeMap;

use erlnode::term::{Atom, Pid, Term, from_slice, to_vec};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "Elixir.MyApp.User")]
struct User {
    name: String,
    age: u32,
    email: Option<String>,
    tags: Vec<String>,
    role: Role,
    #[serde(with = "serde_bytes")]
    avatar: Vec<u8>,
    score: f64,
    big: i128,
    pos: (i32, u64),
    meta: BTreeMap<String, i64>,
    flags: Vec<u8>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Role {
    Admin,
    Member(u64),
    Custom(String, u8),
    Limited { until: i64, reason: Option<String> },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Borrowed<'a> {
    name: &'a str,
    #[serde(with = "serde_bytes")]
    raw: &'a [u8],
    kind: Atom,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Envelope {
    from: Pid,
    body: Term,
    rest: Vec<Term>,
}

fn error_in_input(data: &[u8], e: &erlnode::term::typed::Error) {
    let compressed = data.get(1) == Some(&80);
    if let Some(o) = e.offset() {
        assert!(compressed || o <= data.len(), "offset {o} beyond {} bytes: {e}", data.len());
    }
    let _ = e.to_string();
}

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    match from_slice::<T>(data) {
        Ok(v) => {
            let again = to_vec(&v).unwrap_or_else(|e| panic!("{v:?} read but does not write: {e}"));
            let back: T = from_slice(&again).unwrap_or_else(|e| panic!("{v:?} wrote {again:?}, which does not read: {e}"));
            assert_eq!(back, v);
        }
        Err(e) => error_in_input(data, &e),
    }
}

fn check_borrowed(data: &[u8]) {
    match from_slice::<Borrowed>(data) {
        Ok(v) => {
            let again = to_vec(&v).unwrap_or_else(|e| panic!("{v:?} read but does not write: {e}"));
            let back: Borrowed = from_slice(&again).unwrap_or_else(|e| panic!("{v:?} wrote {again:?}, which does not read: {e}"));
            assert_eq!(back, v);
        }
        Err(e) => error_in_input(data, &e),
    }
}

fuzz_target!(|data: &[u8]| {
    check::<User>(data);
    check::<Vec<Role>>(data);
    check_borrowed(data);
    check::<BTreeMap<String, Vec<Option<i128>>>>(data);
    check::<Envelope>(data);
    check::<Term>(data);
});
