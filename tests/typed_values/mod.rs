//! Rust types of every shape `term::typed` supports, with proptest strategies; shared by the
//! typed property tests and the typed interop test.

use std::collections::BTreeMap;

use erlnode::term::{Atom, Pid, Reference, Term};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// An Elixir struct with most field shapes.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename = "Elixir.MyApp.User")]
pub struct User {
    pub name: String,
    pub age: u32,
    pub email: Option<String>,
    pub tags: Vec<String>,
    pub role: Role,
    #[serde(with = "serde_bytes")]
    pub avatar: Vec<u8>,
    pub score: f64,
    pub big: i128,
    pub ubig: u128,
    pub pos: (i32, i64),
    pub meta: BTreeMap<String, i64>,
    pub flags: Vec<u8>,
    pub ok: bool,
    pub id: UserId,
    pub unit: (),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub struct UserId(pub u64);

/// Every kind of enum variant.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Guest,
    Member(u64),
    Custom(String, u8),
    Limited { until: i64, reason: Option<String> },
}

/// No maps anywhere (a tuple struct): its encoding is fixed by the format, so BEAM's bytes
/// must equal ours. (BEAM orders a small map's atom keys by the atom table, not by name.)
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub struct Plain(
    pub i64,
    pub Vec<PlainRole>,
    pub String,
    pub Vec<u32>,
    pub Vec<Vec<i16>>,
    pub Option<(bool, char)>,
    pub i128,
    pub f64,
);

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename_all = "snake_case")]
pub enum PlainRole {
    Admin,
    Member(u64),
    Custom(String, u8),
}

/// A message with fields holding any term, an atom, a pid and a reference.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
pub struct Envelope {
    pub kind: Atom,
    pub from: Pid,
    pub tag: Reference,
    pub body: Term,
    pub users: Vec<User>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-z ]{0,12}", 1 => "\\PC{0,8}", 1 => "[é😀a]{0,40}"]
}

fn finite() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |f| f.is_finite())
}

pub fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Admin),
        Just(Role::Guest),
        any::<u64>().prop_map(Role::Member),
        (text(), any::<u8>()).prop_map(|(s, n)| Role::Custom(s, n)),
        (any::<i64>(), prop::option::of(text())).prop_map(|(until, reason)| Role::Limited { until, reason }),
    ]
}

pub fn user() -> impl Strategy<Value = User> {
    (
        (text(), any::<u32>(), prop::option::of(text()), prop::collection::vec(text(), 0..4), role()),
        (prop::collection::vec(any::<u8>(), 0..20), finite(), any::<i128>(), any::<u128>(), any::<(i32, i64)>()),
        (
            prop::collection::btree_map(text(), any::<i64>(), 0..4),
            prop::collection::vec(any::<u8>(), 0..6),
            any::<bool>(),
            any::<u64>(),
        ),
    )
        .prop_map(|((name, age, email, tags, role), (avatar, score, big, ubig, pos), (meta, flags, ok, id))| {
            User {
                name,
                age,
                email,
                tags,
                role,
                avatar,
                score,
                big,
                ubig,
                pos,
                meta,
                flags,
                ok,
                id: UserId(id),
                unit: (),
            }
        })
}

pub fn plain() -> impl Strategy<Value = Plain> {
    let role = prop_oneof![
        Just(PlainRole::Admin),
        any::<u64>().prop_map(PlainRole::Member),
        (text(), any::<u8>()).prop_map(|(s, n)| PlainRole::Custom(s, n)),
    ];
    (
        any::<i64>(),
        prop::collection::vec(role, 0..4),
        text(),
        prop::collection::vec(prop_oneof![0u32..300, any::<u32>()], 0..6),
        prop::collection::vec(prop::collection::vec(any::<i16>(), 0..4), 0..3),
        prop::option::of((any::<bool>(), any::<char>())),
        any::<i128>(),
        finite(),
    )
        .prop_map(|(id, roles, text, chars, nested, opt, big, f)| Plain(id, roles, text, chars, nested, opt, big, f))
}

fn atom() -> impl Strategy<Value = Atom> {
    prop_oneof!["[a-z_]{0,10}", "[é😀a]{1,20}"].prop_map(|s| Atom::new(&s))
}

fn pid() -> impl Strategy<Value = Pid> {
    (atom(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(n, id, serial, creation)| Pid {
        node: Atom::new(&format!("{}@host", n.as_str())),
        id: id & 0x7fff,
        serial: serial & 0x1fff,
        creation,
    })
}

fn reference() -> impl Strategy<Value = Reference> {
    (prop::collection::vec(any::<u32>(), 3..=5), any::<u32>())
        .prop_map(|(ids, creation)| Reference::new(Atom::new("r@host"), creation, &ids).unwrap())
}

pub fn term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Term::Int),
        any::<i128>().prop_map(Term::from),
        finite().prop_map(Term::Float),
        atom().prop_map(Term::Atom),
        prop::collection::vec(any::<u8>(), 0..10).prop_map(Term::binary),
        pid().prop_map(Term::Pid),
        reference().prop_map(Term::Ref),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Term::List),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Term::Tuple),
            (prop::collection::vec(inner.clone(), 1..3), inner.clone()).prop_map(|(h, t)| Term::list_with_tail(h, t)),
            prop::collection::vec((inner.clone(), inner), 0..3)
                .prop_map(|kv| Term::Map(erlnode::term::Map::from_entries(kv))),
        ]
    })
}

pub fn envelope() -> impl Strategy<Value = Envelope> {
    (atom(), pid(), reference(), term(), prop::collection::vec(user(), 0..2))
        .prop_map(|(kind, from, tag, body, users)| Envelope { kind, from, tag, body, users })
}
