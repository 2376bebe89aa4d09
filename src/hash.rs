//! The crate's two cheap hashers, in place of the standard SipHash where it costs too much:
//! the routing tables of `node` and the decoder's duplicate-map-key check (`term::decode`).
//!
//! - [`FoldHasher`] ([`PeerKeys`] as a table's hasher) is for keys a peer chooses (references of
//!   its monitors, its pids, node names, map keys it sent): each word is folded into the state
//!   by a 64x64->128-bit multiplication with a secret odd seed, the two halves of the product
//!   xored (the construction of foldhash and aHash's fallback). The seeds are random per
//!   process, so a peer cannot aim keys at one bucket without knowing them.
//! - [`LocalKeyHasher`] ([`LocalKeys`]) is for keys this node minted itself (its own pids,
//!   registered names, its own references): a peer can look such keys up but cannot insert
//!   colliding ones, so one unkeyed multiply per word is enough.
//!
//! Both builders are zero-sized (`BuildHasherDefault`), so a table costs no more memory than
//! with a unit hasher; an idle process has five of them.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// Builds [`FoldHasher`]s with the process's seeds: for tables whose keys a peer chooses.
pub(crate) type PeerKeys = BuildHasherDefault<FoldHasher>;
/// Builds [`LocalKeyHasher`]s: for tables whose keys this node minted.
pub(crate) type LocalKeys = BuildHasherDefault<LocalKeyHasher>;

/// The secret seeds of [`FoldHasher`], random per process (drawn from std's random hash keys).
#[inline]
pub(crate) fn seeds() -> [u64; 2] {
    static SEEDS: OnceLock<[u64; 2]> = OnceLock::new();
    *SEEDS.get_or_init(|| {
        let s = RandomState::new();
        [s.hash_one(0x5eed_u64) | 1, s.hash_one(0xfeed_u64) | 1]
    })
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    p as u64 ^ (p >> 64) as u64
}

/// A keyed 64-bit hash: each word folded into the state by a multiplication with a secret
/// odd seed. Much cheaper than SipHash per word.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FoldHasher {
    state: u64,
    seeds: [u64; 2],
}

impl FoldHasher {
    /// A hasher keyed with `seeds` (the second one odd).
    #[inline]
    pub(crate) fn new(seeds: [u64; 2]) -> FoldHasher {
        FoldHasher { state: seeds[0], seeds }
    }

    /// Folds one word into the state.
    #[inline]
    pub(crate) fn mix(&mut self, word: u64) {
        self.state = fold_mul(self.state ^ word, self.seeds[1]);
    }

    #[inline]
    fn value(&self) -> u64 {
        fold_mul(self.state ^ self.seeds[0].rotate_left(32), self.seeds[1])
    }
}

impl Default for FoldHasher {
    #[inline]
    fn default() -> FoldHasher {
        FoldHasher::new(seeds())
    }
}

/// An FxHash-style word hasher, unkeyed: for keys this node minted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LocalKeyHasher(u64);

impl LocalKeyHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(Self::K).rotate_left(26);
    }

    #[inline]
    fn value(&self) -> u64 {
        self.0
    }
}

/// Feeds `bytes` to `mix` eight at a time, little-endian; the length goes into the last word,
/// so "ab" and "ab\0" differ.
#[inline]
fn mix_bytes(bytes: &[u8], mut mix: impl FnMut(u64)) {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        mix(u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    w[..rest.len()].copy_from_slice(rest);
    mix(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56));
}

/// `Hasher` for a type with `mix(word)` and `value()`: every integer is one word.
macro_rules! word_hasher {
    ($t:ty) => {
        impl Hasher for $t {
            #[inline]
            fn finish(&self) -> u64 {
                self.value()
            }
            #[inline]
            fn write(&mut self, bytes: &[u8]) {
                mix_bytes(bytes, |w| self.mix(w));
            }
            #[inline]
            fn write_u8(&mut self, n: u8) {
                self.mix(n as u64);
            }
            #[inline]
            fn write_u16(&mut self, n: u16) {
                self.mix(n as u64);
            }
            #[inline]
            fn write_u32(&mut self, n: u32) {
                self.mix(n as u64);
            }
            #[inline]
            fn write_u64(&mut self, n: u64) {
                self.mix(n);
            }
            #[inline]
            fn write_usize(&mut self, n: usize) {
                self.mix(n as u64);
            }
            #[inline]
            fn write_i64(&mut self, n: i64) {
                self.mix(n as u64);
            }
        }
    };
}

word_hasher!(FoldHasher);
word_hasher!(LocalKeyHasher);

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

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
        assert_eq!(seeds(), seeds());
        assert_eq!(seeds()[1] & 1, 1, "the multiplier is odd");
    }

    #[test]
    fn bytes_differ_by_length_and_content() {
        let h = |b: &[u8]| {
            let mut f = FoldHasher::new(seeds());
            f.write(b);
            f.finish()
        };
        assert_ne!(h(b"ab"), h(b"ab\0"));
        assert_ne!(h(&[0; 8]), h(&[0; 16]));
        assert_ne!(h(b"abcdefgh1"), h(b"abcdefgh2"));
    }
}
