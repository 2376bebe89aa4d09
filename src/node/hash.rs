//! Hashers for the runtime's tables: cheaper than the standard SipHash on the routing path.
//!
//! - [`LocalKeys`] hashes keys this node chose itself (registered names, its own references):
//!   a peer can look such keys up but cannot insert colliding ones, so no secret is needed.
//! - [`PeerKeys`] hashes keys a peer chooses (references of its monitors, its pids, node
//!   names): a folded 64x64->128-bit multiply keyed with a per-process random seed, the
//!   construction of foldhash and aHash's fallback, so a peer cannot aim keys at one bucket
//!   without knowing the seed.
//!
//! Both are zero-sized `BuildHasher`s (`BuildHasherDefault`), so a table costs no more memory
//! than with a unit hasher; an idle process has five of them.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// Builds [`LocalKeyHasher`]s.
pub(crate) type LocalKeys = BuildHasherDefault<LocalKeyHasher>;
/// Builds [`PeerKeyHasher`]s.
pub(crate) type PeerKeys = BuildHasherDefault<PeerKeyHasher>;

/// An FxHash-style word hasher for keys chosen locally.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LocalKeyHasher(u64);

impl LocalKeyHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
}

impl WordHasher for LocalKeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(Self::K).rotate_left(26);
    }
    fn value(&self) -> u64 {
        self.0
    }
}

/// A seeded folded-multiply hasher for keys a peer chooses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerKeyHasher {
    acc: u64,
    key: u64,
}

/// Random per process, drawn on first use.
fn seed() -> [u64; 2] {
    static SEED: OnceLock<[u64; 2]> = OnceLock::new();
    *SEED.get_or_init(|| [rand::random(), rand::random::<u64>() | 1])
}

impl Default for PeerKeyHasher {
    fn default() -> Self {
        let [acc, key] = seed();
        PeerKeyHasher { acc, key }
    }
}

fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = (a as u128).wrapping_mul(b as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

impl WordHasher for PeerKeyHasher {
    fn add(&mut self, word: u64) {
        self.acc = folded_multiply(self.acc ^ word, self.key);
    }
    fn value(&self) -> u64 {
        folded_multiply(self.acc, self.key ^ 0x9e37_79b9_7f4a_7c15)
    }
}

/// A hasher fed whole 64-bit words.
trait WordHasher {
    fn add(&mut self, word: u64);
    fn value(&self) -> u64;
}

/// Feeds bytes eight at a time; the last partial word carries its length.
fn add_bytes(h: &mut impl WordHasher, bytes: &[u8]) {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h.add(u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    w[..rest.len()].copy_from_slice(rest);
    h.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
}

macro_rules! word_hasher {
    ($t:ty) => {
        impl Hasher for $t {
            fn finish(&self) -> u64 {
                self.value()
            }
            fn write(&mut self, bytes: &[u8]) {
                add_bytes(self, bytes);
            }
            fn write_u8(&mut self, n: u8) {
                self.add(n as u64);
            }
            fn write_u16(&mut self, n: u16) {
                self.add(n as u64);
            }
            fn write_u32(&mut self, n: u32) {
                self.add(n as u64);
            }
            fn write_u64(&mut self, n: u64) {
                self.add(n);
            }
            fn write_usize(&mut self, n: usize) {
                self.add(n as u64);
            }
        }
    };
}

word_hasher!(LocalKeyHasher);
word_hasher!(PeerKeyHasher);

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;
    use crate::term::{Atom, Reference};

    #[test]
    fn distinct_keys_spread() {
        // references that differ in one word, atoms that differ in one byte or in length
        let refs: Vec<Reference> =
            (0..10_000u32).map(|i| Reference::new(Atom::new("a@h"), 1, &[i, 0, 0]).unwrap()).collect();
        let atoms: Vec<Atom> = (0..2_000).map(|i| Atom::new(&"x".repeat(i % 200 + 1 + i / 200))).collect();
        for hashes in [
            refs.iter().map(|r| PeerKeys::default().hash_one(r)).collect::<HashSet<u64>>(),
            refs.iter().map(|r| LocalKeys::default().hash_one(r)).collect(),
        ] {
            assert_eq!(hashes.len(), refs.len());
        }
        let low_bits: HashSet<u64> = refs.iter().map(|r| PeerKeys::default().hash_one(r) & 0x3ff).collect();
        assert!(low_bits.len() > 900, "low bits spread: {}", low_bits.len());
        let a: HashSet<u64> = atoms.iter().map(|a| LocalKeys::default().hash_one(a)).collect();
        assert_eq!(a.len(), atoms.iter().collect::<HashSet<_>>().len());
    }

    #[test]
    fn the_seed_is_fixed_per_process() {
        let r = Reference::new(Atom::new("a@h"), 1, &[7]).unwrap();
        assert_eq!(PeerKeys::default().hash_one(&r), PeerKeys::default().hash_one(&r));
    }
}
