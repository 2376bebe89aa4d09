//! The sending side of the distribution header's atom cache (`erl_ext_dist`, "Distribution
//! Header"; BEAM's sender in `erts/emulator/beam/dist.c` and `external.c`,
//! `erts_encode_dist_ext` with its `ErtsAtomCacheMap`).
//!
//! A node that negotiated `DIST_HDR_ATOM_CACHE` keeps, per connection and direction, a table of
//! up to 2048 atoms that both ends agree on. A message's header lists the atoms its terms use
//! (at most 255): an atom the receiver already holds in that slot is listed by its slot alone,
//! a new one with its text, which the receiver stores for later messages. Inside the terms an
//! atom of the list is written as `ATOM_CACHE_REF, Index` (two bytes). BEAM sends this way, so
//! a BEAM peer reads our messages as it reads another BEAM node's: a cached atom is an array
//! lookup instead of a search of its atom table (about 85 ns per atom on this machine, and a
//! KV reply carries five), and the node names in pids and references stop being sent with
//! every message.
//!
//! Which atoms go in the list is a bounded scan ([`scan`]): the control tuple, then the payload
//! breadth-limited to [`SCAN_TERMS`] terms and [`SCAN_DEPTH`] levels. Atoms the scan does not
//! reach, or that lose their slot to another atom of the same message, are written as text, as
//! BEAM writes atoms that do not fit its list; the receiver reads both in one message.
//!
//! The table changes only with messages actually sent: [`OutAtomCache::begin`] opens a
//! message, [`OutAtomCache::commit`] keeps its new entries and [`OutAtomCache::rollback`]
//! restores the slots it took, for a message that was not written after all. A receiver that
//! saw a new entry we then forgot would read later references to the wrong atom.

use crate::term::{Atom, AtomRefs, Term};

/// Slots of the table this node uses (of the 2048 the format addresses: `segment * 256 +
/// index`, segments 0-7). Fewer than 2048 keeps the table small per connection; two hot atoms
/// that share a slot only cost their text now and then.
pub const SLOTS: usize = 1024;
/// At most this many atoms in one header (BEAM's `ERTS_MAX_INTERNAL_ATOM_CACHE_ENTRIES`).
pub const MAX_REFS: usize = 255;
/// Terms of a payload the scan looks at for atoms, at most.
pub const SCAN_TERMS: usize = 64;
/// Levels of a payload the scan descends, at most.
pub const SCAN_DEPTH: usize = 6;

/// The atoms this node has told one peer about, and the header of the message being encoded.
pub struct OutAtomCache {
    /// What the peer holds in each slot, as far as our messages have told it.
    slots: Box<[Option<Atom>]>,
    /// The message that last listed each slot (compared with `message`).
    listed_in: Box<[u32]>,
    /// Each slot's index in the current message's list, when `listed_in` says it is listed.
    index: Box<[u8]>,
    /// The current message's number (never 0 once a message began).
    message: u32,
    /// The current message's list: slot, and whether the entry is new (sent with its text).
    refs: Vec<(u16, bool)>,
    /// Slots a new entry of the current message overwrote, with what they held.
    undo: Vec<(u16, Option<Atom>)>,
    /// A new entry of the current message is over 255 bytes (lengths take two bytes).
    long_atoms: bool,
}

impl Default for OutAtomCache {
    fn default() -> Self {
        OutAtomCache::new()
    }
}

impl std::fmt::Debug for OutAtomCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.slots.iter().filter(|s| s.is_some()).count();
        f.debug_struct("OutAtomCache").field("held", &held).finish_non_exhaustive()
    }
}

/// The slot `a` goes in: FNV-1a of its text (BEAM uses its atom table index, which only it knows).
#[inline]
fn slot_of(a: &Atom) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in a.as_str().as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize % SLOTS
}

impl OutAtomCache {
    /// An empty table: the peer holds nothing from us yet.
    pub fn new() -> OutAtomCache {
        OutAtomCache {
            slots: vec![None; SLOTS].into_boxed_slice(),
            listed_in: vec![0; SLOTS].into_boxed_slice(),
            index: vec![0; SLOTS].into_boxed_slice(),
            message: 0,
            refs: Vec::new(),
            undo: Vec::new(),
            long_atoms: false,
        }
    }

    /// Opens a message with an empty list.
    pub fn begin(&mut self) {
        self.message = self.message.wrapping_add(1);
        if self.message == 0 {
            self.listed_in.fill(0);
            self.message = 1;
        }
        self.refs.clear();
        self.undo.clear();
        self.long_atoms = false;
    }

    /// Lists `a` in the current message if there is room and its slot is free in this message.
    pub fn offer(&mut self, a: &Atom) {
        if self.refs.len() >= MAX_REFS {
            return;
        }
        let s = slot_of(a);
        if self.listed_in[s] == self.message {
            // listed already: this atom, or another that shares its slot (written as text)
            return;
        }
        self.listed_in[s] = self.message;
        self.index[s] = self.refs.len() as u8;
        let new = self.slots[s].as_ref() != Some(a);
        if new {
            let old = self.slots[s].replace(a.clone());
            self.undo.push((s as u16, old));
            self.long_atoms |= a.as_str().len() > usize::from(u8::MAX);
        }
        self.refs.push((s as u16, new));
    }

    /// Appends the current message's list (`header::write_atom_cache_refs`): new entries with
    /// their text, known ones by slot.
    pub fn write_refs(&self, out: &mut Vec<u8>) {
        let refs = self.refs.iter().map(|&(slot, new)| {
            let slot = usize::from(slot);
            (slot, new.then(|| self.slots[slot].as_ref().map_or("", |a| a.as_str())))
        });
        super::header::write_atom_cache_refs(refs, self.long_atoms, out);
    }

    /// The current message was written: its new entries stay.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// The current message was not written: the slots its new entries took get back what they
    /// held, and nothing is listed.
    pub fn rollback(&mut self) {
        for (slot, old) in self.undo.drain(..).rev() {
            self.slots[usize::from(slot)] = old;
        }
        // a fresh message: the list is emptied and nothing counts as listed
        self.begin();
    }
}

impl AtomRefs for OutAtomCache {
    #[inline]
    fn index(&self, a: &Atom) -> Option<u8> {
        let s = slot_of(a);
        (self.listed_in[s] == self.message && self.slots[s].as_ref() == Some(a)).then(|| self.index[s])
    }
}

/// Shows `f` the atoms of `t` within [`SCAN_TERMS`] terms and [`SCAN_DEPTH`] levels, parents
/// before children.
pub fn scan(t: &Term, f: &mut dyn FnMut(&Atom)) {
    let mut budget = SCAN_TERMS;
    scan_at(t, 0, &mut budget, f);
}

fn scan_at(t: &Term, depth: usize, budget: &mut usize, f: &mut dyn FnMut(&Atom)) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    let children: &[Term] = match t {
        Term::Atom(a) => return f(a),
        Term::Pid(p) => return f(&p.node),
        Term::Ref(r) => return f(&r.node),
        Term::Port(p) => return f(&p.node),
        Term::ExportFun(e) => {
            f(&e.module);
            return f(&e.function);
        }
        Term::LocalFun(l) => {
            f(&l.module);
            return scan_at(&l.pid, depth + 1, budget, f);
        }
        Term::Tuple(elems) | Term::List(elems) => elems,
        Term::Improper(elems, tail) => {
            scan_children(elems, depth, budget, f);
            return scan_at(tail, depth + 1, budget, f);
        }
        Term::Map(m) => {
            if depth < SCAN_DEPTH {
                for (k, v) in m.entries() {
                    scan_at(k, depth + 1, budget, f);
                    scan_at(v, depth + 1, budget, f);
                }
            }
            return;
        }
        _ => return,
    };
    scan_children(children, depth, budget, f);
}

fn scan_children(elems: &[Term], depth: usize, budget: &mut usize, f: &mut dyn FnMut(&Atom)) {
    if depth >= SCAN_DEPTH {
        return;
    }
    for e in elems {
        if *budget == 0 {
            return;
        }
        scan_at(e, depth + 1, budget, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{Pid, encode_body_with};

    fn pid(node: &str) -> Term {
        Term::Pid(Pid { node: Atom::from(node), id: 1, serial: 0, creation: 1 })
    }

    #[test]
    fn the_second_message_lists_known_atoms_by_slot_only() {
        let mut c = OutAtomCache::new();
        let t = Term::Tuple(vec![Term::atom("ok"), pid("a@host")]);
        c.begin();
        scan(&t, &mut |a| c.offer(a));
        let mut first = Vec::new();
        c.write_refs(&mut first);
        c.commit();
        c.begin();
        scan(&t, &mut |a| c.offer(a));
        let mut second = Vec::new();
        c.write_refs(&mut second);
        assert_eq!(first[0], 2);
        assert_eq!(second[0], 2);
        // flags: both new, then both old
        assert_eq!(first[1] & 0x88, 0x88);
        assert_eq!(second[1] & 0x88, 0);
        assert_eq!(second.len(), 1 + 2 + 2, "count, flags, two slot indices");
        assert!(first.len() > second.len() + "ok".len() + "a@host".len());
        let mut body = Vec::new();
        encode_body_with(&t, &mut body, &c);
        assert_eq!(&body[..4], &[crate::term::tags::SMALL_TUPLE_EXT, 2, crate::term::tags::ATOM_CACHE_REF, 0]);
    }

    #[test]
    fn a_rolled_back_message_leaves_the_table_as_it_was() {
        let mut c = OutAtomCache::new();
        c.begin();
        c.offer(&Atom::from("kept"));
        c.commit();
        c.begin();
        c.offer(&Atom::from("dropped"));
        c.offer(&Atom::from("kept"));
        c.rollback();
        c.begin();
        c.offer(&Atom::from("kept"));
        c.offer(&Atom::from("dropped"));
        assert_eq!(c.refs.iter().map(|r| r.1).collect::<Vec<_>>(), [false, true]);
    }

    #[test]
    fn atoms_sharing_a_slot_in_one_message_are_written_as_text() {
        let names: Vec<Atom> = (0..5000).map(|i| Atom::from(format!("a{i}").as_str())).collect();
        let (x, y) = names
            .iter()
            .enumerate()
            .find_map(|(i, x)| names[i + 1..].iter().find(|y| slot_of(x) == slot_of(y)).map(|y| (x, y)))
            .expect("two atoms in one slot among 5000");
        let mut c = OutAtomCache::new();
        c.begin();
        c.offer(x);
        c.offer(y);
        assert_eq!(c.refs.len(), 1);
        assert_eq!(c.index(x), Some(0));
        assert_eq!(c.index(y), None);
    }

    #[test]
    fn the_list_stops_at_255_and_the_scan_at_its_budget() {
        let many = Term::List((0..400).map(|i| Term::atom(&format!("x{i}"))).collect());
        let mut seen = 0;
        scan(&many, &mut |_| seen += 1);
        assert_eq!(seen, SCAN_TERMS - 1, "the list itself is one of the terms");
        let mut c = OutAtomCache::new();
        c.begin();
        for i in 0..400 {
            c.offer(&Atom::from(format!("y{i}").as_str()));
        }
        assert!(c.refs.len() <= MAX_REFS);
        let deep = (0..20).fold(Term::atom("bottom"), |t, _| Term::Tuple(vec![t]));
        let mut seen = Vec::new();
        scan(&deep, &mut |a| seen.push(a.clone()));
        assert!(seen.is_empty(), "below SCAN_DEPTH");
    }
}
