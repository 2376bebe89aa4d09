//! Exact equality (`=:=`) and the standard term order (Erlang Reference Manual, "Term
//! Comparisons"): `number < atom < reference < fun < port < pid < tuple < map < nil < list <
//! bit string`.
//!
//! Integers and floats compare by value; where they are numerically equal (`1 == 1.0`) the
//! integer sorts first, so the order stays total and agrees with exact equality, under which
//! `1 =/= 1.0`. Likewise `-0.0` sorts before `0.0` (OTP 27 treats them as different terms).

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use super::{BigInt, ExportFun, LocalFun, Map, Pid, Port, Reference, Term};

/// Rank of each term class in the standard order.
fn class(t: &Term) -> u8 {
    match t {
        Term::Int(_) | Term::BigInt(_) | Term::Float(_) => 0,
        Term::Atom(_) => 1,
        Term::Ref(_) => 2,
        Term::ExportFun(_) | Term::LocalFun(_) => 3,
        Term::Port(_) => 4,
        Term::Pid(_) => 5,
        Term::Tuple(_) => 6,
        Term::Map(_) => 7,
        Term::List(l) if l.is_empty() => 8,
        Term::List(_) | Term::Improper(_, _) => 9,
        Term::Binary(_) | Term::BitBinary(_) => 10,
    }
}

/// Compares an `i64` with a finite `f64` by mathematical value.
fn cmp_int_float(i: i64, f: f64) -> Ordering {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - t)).unwrap_or(Ordering::Equal),
        o => o,
    }
}

fn big_to_f64(b: &BigInt) -> f64 {
    let mut v = 0.0f64;
    for d in b.magnitude().iter().rev() {
        v = v * 256.0 + *d as f64;
    }
    if b.is_negative() { -v } else { v }
}

fn cmp_float(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal).then_with(|| a.is_sign_positive().cmp(&b.is_sign_positive()))
}

fn cmp_numbers(a: &Term, b: &Term) -> Ordering {
    use Term::{BigInt as B, Float as F, Int as I};
    match (a, b) {
        (I(x), I(y)) => x.cmp(y),
        (B(x), B(y)) => x.cmp(y),
        (I(_), B(y)) => {
            if y.is_negative() {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (B(x), I(_)) => {
            if x.is_negative() {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (F(x), F(y)) => cmp_float(*x, *y),
        // numerically equal int and float: the integer first
        (I(x), F(y)) => cmp_int_float(*x, *y).then(Ordering::Less),
        (F(x), I(y)) => cmp_int_float(*y, *x).reverse().then(Ordering::Greater),
        (B(x), F(y)) => cmp_float(big_to_f64(x), *y).then(Ordering::Less),
        (F(x), B(y)) => cmp_float(*x, big_to_f64(y)).then(Ordering::Greater),
        _ => Ordering::Equal,
    }
}

/// BEAM compares pids by serial, then number, then node, then creation (so `<rust@vm.3.0>`
/// sorts before `<a@vm.56.0>`); `global` builds lock ids from sorted pids, so this must agree.
fn cmp_pid(a: &Pid, b: &Pid) -> Ordering {
    a.serial.cmp(&b.serial).then(a.id.cmp(&b.id)).then_with(|| a.node.cmp(&b.node)).then(a.creation.cmp(&b.creation))
}

fn cmp_port(a: &Port, b: &Port) -> Ordering {
    a.node.cmp(&b.node).then(a.id.cmp(&b.id)).then(a.creation.cmp(&b.creation))
}

fn cmp_ref(a: &Reference, b: &Reference) -> Ordering {
    // the last id word is the most significant
    a.node
        .cmp(&b.node)
        .then_with(|| a.ids().len().cmp(&b.ids().len()))
        .then_with(|| a.ids().iter().rev().cmp(b.ids().iter().rev()))
        .then(a.creation.cmp(&b.creation))
}

fn cmp_export(a: &ExportFun, b: &ExportFun) -> Ordering {
    a.module.cmp(&b.module).then_with(|| a.function.cmp(&b.function)).then(a.arity.cmp(&b.arity))
}

fn cmp_local(a: &LocalFun, b: &LocalFun) -> Ordering {
    a.module
        .cmp(&b.module)
        .then(a.index.cmp(&b.index))
        .then(a.uniq.cmp(&b.uniq))
        .then_with(|| a.old_index.cmp(&b.old_index))
        .then_with(|| a.old_uniq.cmp(&b.old_uniq))
        .then_with(|| a.pid.cmp(&b.pid))
        .then_with(|| a.free_vars.cmp(&b.free_vars))
        .then(a.arity.cmp(&b.arity))
}

fn cmp_maps(a: &Map, b: &Map) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        let (x, y) = (a.sorted_entries(), b.sorted_entries());
        // keys first (all of them), then values in key order
        x.iter()
            .map(|e| &e.0)
            .cmp(y.iter().map(|e| &e.0))
            .then_with(|| x.iter().map(|e| &e.1).cmp(y.iter().map(|e| &e.1)))
    })
}

/// Compares two lists element by element; `tail_*` is the improper tail, if any.
fn cmp_lists(a: &[Term], tail_a: Option<&Term>, b: &[Term], tail_b: Option<&Term>) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        match x.cmp(y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    // one is a prefix of the other: compare what follows the common part
    let n = a.len().min(b.len());
    let rest_a = rest(&a[n..], tail_a);
    let rest_b = rest(&b[n..], tail_b);
    rest_a.cmp(&rest_b)
}

/// What follows a common prefix: a list class element, or the improper tail, or nil.
enum Rest<'a> {
    Nil,
    Cons,
    Tail(&'a Term),
}

fn rest<'a>(elems: &'a [Term], tail: Option<&'a Term>) -> Rest<'a> {
    if !elems.is_empty() {
        Rest::Cons
    } else {
        match tail {
            Some(t) => Rest::Tail(t),
            None => Rest::Nil,
        }
    }
}

impl Rest<'_> {
    fn cmp(&self, other: &Rest<'_>) -> Ordering {
        match (self, other) {
            (Rest::Nil, Rest::Nil) => Ordering::Equal,
            (Rest::Cons, Rest::Cons) => Ordering::Equal,
            (Rest::Tail(x), Rest::Tail(y)) => x.cmp(y),
            (Rest::Nil, Rest::Cons) => Ordering::Less,
            (Rest::Cons, Rest::Nil) => Ordering::Greater,
            // a non-list tail versus nil or another cons: compare as terms
            (Rest::Tail(x), Rest::Nil) => class(x).cmp(&8).then(Ordering::Greater),
            (Rest::Nil, Rest::Tail(y)) => 8.cmp(&class(y)).then(Ordering::Less),
            (Rest::Tail(x), Rest::Cons) => class(x).cmp(&9).then(Ordering::Less),
            (Rest::Cons, Rest::Tail(y)) => 9.cmp(&class(y)).then(Ordering::Greater),
        }
    }
}

fn cmp_bits(a: &Term, b: &Term) -> Ordering {
    let (da, ba) = bits_of(a);
    let (db, bb) = bits_of(b);
    da.cmp(db).then_with(|| {
        let la = da.len() as u64 * 8 - (8 - ba as u64) % 8;
        let lb = db.len() as u64 * 8 - (8 - bb as u64) % 8;
        la.cmp(&lb)
    })
}

fn bits_of(t: &Term) -> (&[u8], u8) {
    match t {
        Term::Binary(b) => (b, 8),
        Term::BitBinary(b) => (&b.data, b.bits),
        _ => (&[], 8),
    }
}

impl Ord for Pid {
    fn cmp(&self, other: &Pid) -> Ordering {
        cmp_pid(self, other)
    }
}

impl PartialOrd for Pid {
    fn partial_cmp(&self, other: &Pid) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Term {
    fn cmp(&self, other: &Term) -> Ordering {
        let (ca, cb) = (class(self), class(other));
        if ca != cb {
            return ca.cmp(&cb);
        }
        match (self, other) {
            (Term::Atom(a), Term::Atom(b)) => a.cmp(b),
            (Term::Ref(a), Term::Ref(b)) => cmp_ref(a, b),
            (Term::ExportFun(a), Term::ExportFun(b)) => cmp_export(a, b),
            (Term::LocalFun(a), Term::LocalFun(b)) => cmp_local(a, b),
            (Term::LocalFun(_), Term::ExportFun(_)) => Ordering::Less,
            (Term::ExportFun(_), Term::LocalFun(_)) => Ordering::Greater,
            (Term::Port(a), Term::Port(b)) => cmp_port(a, b),
            (Term::Pid(a), Term::Pid(b)) => cmp_pid(a, b),
            (Term::Tuple(a), Term::Tuple(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Term::Map(a), Term::Map(b)) => cmp_maps(a, b),
            (Term::List(a), Term::List(b)) => cmp_lists(a, None, b, None),
            (Term::List(a), Term::Improper(b, tb)) => cmp_lists(a, None, b, Some(tb)),
            (Term::Improper(a, ta), Term::List(b)) => cmp_lists(a, Some(ta), b, None),
            (Term::Improper(a, ta), Term::Improper(b, tb)) => cmp_lists(a, Some(ta), b, Some(tb)),
            _ if ca == 0 => cmp_numbers(self, other),
            _ if ca == 10 => cmp_bits(self, other),
            _ => Ordering::Equal,
        }
    }
}

impl PartialOrd for Term {
    fn partial_cmp(&self, other: &Term) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Term {
    fn eq(&self, other: &Term) -> bool {
        match (self, other) {
            (Term::Int(a), Term::Int(b)) => a == b,
            (Term::Atom(a), Term::Atom(b)) => a == b,
            (Term::Binary(a), Term::Binary(b)) => a == b,
            (Term::Tuple(a), Term::Tuple(b)) => a == b,
            (Term::List(a), Term::List(b)) => a == b,
            (Term::Pid(a), Term::Pid(b)) => a == b,
            (Term::Ref(a), Term::Ref(b)) => a == b,
            (Term::Float(a), Term::Float(b)) => a.to_bits() == b.to_bits(),
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}

impl Eq for Term {}

impl Hash for Term {
    fn hash<H: Hasher>(&self, state: &mut H) {
        class(self).hash(state);
        match self {
            Term::Int(i) => i.hash(state),
            Term::BigInt(b) => b.hash(state),
            Term::Float(f) => f.to_bits().hash(state),
            Term::Atom(a) => a.hash(state),
            Term::Binary(b) => {
                b.hash(state);
                8u8.hash(state)
            }
            Term::BitBinary(b) => {
                b.data.hash(state);
                b.bits.hash(state)
            }
            Term::List(l) => l.hash(state),
            Term::Improper(l, t) => {
                l.hash(state);
                t.hash(state)
            }
            Term::Tuple(t) => t.hash(state),
            Term::Map(m) => {
                // order-free: combine per-entry hashes commutatively
                let mut acc: u64 = 0;
                for (k, v) in m.entries() {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    k.hash(&mut h);
                    v.hash(&mut h);
                    acc = acc.wrapping_add(h.finish());
                }
                m.len().hash(state);
                acc.hash(state)
            }
            Term::Pid(p) => p.hash(state),
            Term::Port(p) => p.hash(state),
            Term::Ref(r) => r.hash(state),
            Term::ExportFun(f) => f.hash(state),
            Term::LocalFun(f) => f.hash(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Atom, BitBinary};
    use super::*;
    use bytes::Bytes;

    fn pid() -> Term {
        Term::Pid(Pid { node: Atom::new("a@h"), id: 1, serial: 0, creation: 1 })
    }

    #[test]
    fn class_order() {
        let ordered = vec![
            Term::Int(1),
            Term::atom("a"),
            Term::Ref(Reference::new(Atom::new("a@h"), 1, &[1, 2, 3]).unwrap()),
            Term::from(ExportFun { module: "m".into(), function: "f".into(), arity: 0 }),
            Term::Port(Port { node: Atom::new("a@h"), id: 1, creation: 1 }),
            pid(),
            Term::Tuple(vec![]),
            Term::Map(Map::new()),
            Term::nil(),
            Term::List(vec![Term::Int(1)]),
            Term::binary(b""),
        ];
        for w in ordered.windows(2) {
            assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn numbers() {
        assert!(Term::Int(1) < Term::Float(1.5));
        assert!(Term::Float(0.5) < Term::Int(1));
        assert_ne!(Term::Int(1), Term::Float(1.0));
        assert!(Term::Int(1) < Term::Float(1.0));
        assert!(Term::Float(-0.0) < Term::Float(0.0));
        assert!(Term::from(u64::MAX) > Term::Int(i64::MAX));
        assert!(Term::from(-(u64::MAX as i128)) < Term::Int(i64::MIN));
        assert!(Term::from(u64::MAX) < Term::Float(1e30));
    }

    #[test]
    fn lists_and_bits() {
        let l12 = crate::list![1, 2];
        let l1 = crate::list![1];
        assert!(l1 < l12);
        let imp = Term::list_with_tail(vec![Term::Int(1)], Term::Int(5));
        // [1|5] vs [1,2]: tail 5 (number) < cons
        assert!(imp < l12);
        // [1|5] vs [1]: tail 5 (number) < nil
        assert!(imp < l1);
        let bits = Term::BitBinary(BitBinary { data: Bytes::from_static(&[0xff, 0x80]), bits: 1 });
        assert!(Term::binary([0xff]) < bits);
        assert!(bits < Term::binary([0xff, 0x80]));
    }

    #[test]
    fn pids_compare_as_beam_compares_them() {
        // t2: [<rust@vm.3.0>, <a@vm.56.0>] is sorted
        let rust = Pid { node: Atom::new("rust@vm"), id: 3, serial: 0, creation: 1 };
        let a = Pid { node: Atom::new("a@vm"), id: 56, serial: 0, creation: 1 };
        assert!(rust < a);
        assert!(Term::Pid(rust) < Term::Pid(a));
    }

    #[test]
    fn tuples_by_size_first() {
        assert!(crate::tuple![9] < crate::tuple![1, 1]);
    }
}
