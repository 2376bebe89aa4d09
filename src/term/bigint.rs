//! Integers beyond `i64`: sign and magnitude, the magnitude stored as ETF stores it
//! (little-endian base-256 digits, `SMALL_BIG_EXT`/`LARGE_BIG_EXT` in `erl_ext_dist`).
//!
//! Only what a term layer needs: construction, comparison, and decimal text both ways.
//!
//! Representation: magnitudes of up to [`BIG_INLINE_BYTES`] bytes (every `i128`/`u128`, and
//! up to 2^360) are stored inline, the rest in one heap allocation; `Term` is 56 bytes either
//! way, so the inline form costs no space, and decoding a typical bignum allocates nothing.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Magnitudes of at most this many bytes are stored inline in a [`BigInt`].
pub const BIG_INLINE_BYTES: usize = 45;

/// An integer outside the `i64` range.
///
/// Invariant (kept by every constructor): the magnitude has no most-significant zero bytes, and
/// the value does not fit an `i64` (those are `Term::Int`). [`BigInt::normalize`] builds either.
#[derive(Clone)]
pub struct BigInt(Repr);

#[derive(Clone)]
enum Repr {
    /// A magnitude of `len <= BIG_INLINE_BYTES` bytes; the digits past `len` are unused
    /// (zero, or whatever followed the magnitude on the wire).
    Inline { negative: bool, len: u8, digits: [u8; BIG_INLINE_BYTES] },
    /// A longer magnitude.
    Heap { negative: bool, magnitude: Box<[u8]> },
}

/// An integer as the term layer holds it: small values as `i64`, others as [`BigInt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integer {
    /// Fits an `i64`.
    Small(i64),
    /// Does not fit an `i64`.
    Big(BigInt),
}

/// The value of a magnitude without high zero bytes (little-endian digits) when it fits an
/// `i64`.
#[inline(always)]
fn small_value(negative: bool, mag: &[u8]) -> Option<i64> {
    if mag.len() > 8 {
        return None;
    }
    let mut v: u64 = 0;
    for (i, b) in mag.iter().enumerate() {
        v |= (*b as u64) << (8 * i);
    }
    if !negative && v <= i64::MAX as u64 {
        Some(v as i64)
    } else if negative && v <= 1u64 << 63 {
        Some((v as i64).wrapping_neg())
    } else {
        None
    }
}

impl BigInt {
    /// Builds the canonical integer from a sign and little-endian magnitude digits.
    #[inline]
    pub fn normalize(negative: bool, magnitude: &[u8]) -> Integer {
        let mut len = magnitude.len();
        while len > 0 && magnitude[len - 1] == 0 {
            len -= 1;
        }
        let mag = &magnitude[..len];
        if let Some(v) = small_value(negative, mag) {
            return Integer::Small(v);
        }
        // len > 0 here: zero fits an i64
        Integer::Big(BigInt(if len <= BIG_INLINE_BYTES {
            let mut digits = [0u8; BIG_INLINE_BYTES];
            digits[..len].copy_from_slice(mag);
            Repr::Inline { negative, len: len as u8, digits }
        } else {
            Repr::Heap { negative, magnitude: mag.into() }
        }))
    }

    /// [`BigInt::normalize`] of the first `len` bytes of `window` (`len <= BIG_INLINE_BYTES`;
    /// the bytes after them are ignored): the decoder's path for bignums that may be stored
    /// inline. It copies the whole fixed-size window instead of `len` bytes into a zeroed
    /// array, so past `len` an inline magnitude's digits are arbitrary; nothing reads them
    /// (equality, order and hashing go through [`BigInt::magnitude`]).
    #[inline(always)]
    pub(crate) fn normalize_window(negative: bool, len: usize, window: &[u8; BIG_INLINE_BYTES]) -> Integer {
        match Self::window_len(negative, len, window) {
            Ok(len) => Integer::Big(Self::from_window(negative, len, window)),
            Err(small) => Integer::Small(small),
        }
    }

    /// For [`BigInt::normalize_window`] in two steps, so that the bignum can be built where
    /// it goes: the value when it fits an `i64`, else the length of its magnitude for
    /// [`BigInt::from_window`].
    #[inline(always)]
    pub(crate) fn window_len(negative: bool, len: usize, window: &[u8; BIG_INLINE_BYTES]) -> Result<u8, i64> {
        let mut len = len.min(BIG_INLINE_BYTES);
        while len > 0 && window[len - 1] == 0 {
            len -= 1;
        }
        match small_value(negative, &window[..len]) {
            Some(v) => Err(v),
            None => Ok(len as u8),
        }
    }

    /// The bignum of the first `len` bytes of `window`, where [`BigInt::window_len`] gave
    /// `len` (so the magnitude has no high zero bytes and the value does not fit an `i64`).
    #[inline(always)]
    pub(crate) fn from_window(negative: bool, len: u8, window: &[u8; BIG_INLINE_BYTES]) -> BigInt {
        BigInt(Repr::Inline { negative, len: len.min(BIG_INLINE_BYTES as u8), digits: *window })
    }

    /// `true` for values below zero.
    pub fn is_negative(&self) -> bool {
        match &self.0 {
            Repr::Inline { negative, .. } | Repr::Heap { negative, .. } => *negative,
        }
    }

    /// Little-endian base-256 digits of the absolute value.
    pub fn magnitude(&self) -> &[u8] {
        match &self.0 {
            // `len <= BIG_INLINE_BYTES` by construction; `get` keeps this panic-free anyway
            Repr::Inline { len, digits, .. } => digits.get(..*len as usize).unwrap_or(digits),
            Repr::Heap { magnitude, .. } => magnitude,
        }
    }

    /// The value as `i128`, when it fits.
    pub fn to_i128(&self) -> Option<i128> {
        let magnitude = self.magnitude();
        if magnitude.len() > 16 {
            return None;
        }
        let mut v: u128 = 0;
        for (i, b) in magnitude.iter().enumerate() {
            v |= (*b as u128) << (8 * i);
        }
        if self.is_negative() {
            if v <= 1u128 << 127 { Some((v as i128).wrapping_neg()) } else { None }
        } else {
            i128::try_from(v).ok()
        }
    }

    /// Parses optional sign and decimal digits (`"-123..."`). `None` for anything else.
    pub fn parse_decimal(s: &str) -> Option<Integer> {
        Self::parse_radix(s, 10)
    }

    /// Parses optional sign and digits in `radix` (2..=36), as Erlang's `Base#Digits`.
    pub fn parse_radix(s: &str, radix: u32) -> Option<Integer> {
        if !(2..=36).contains(&radix) {
            return None;
        }
        let (negative, digits) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if digits.is_empty() {
            return None;
        }
        // magnitude as little-endian u32 limbs, multiply-add per digit
        let mut limbs: Vec<u32> = vec![0];
        for c in digits.chars() {
            if c == '_' {
                continue;
            }
            let d = c.to_digit(radix)?;
            let mut carry = d as u64;
            for limb in limbs.iter_mut() {
                let v = (*limb as u64) * radix as u64 + carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                limbs.push(carry as u32);
            }
        }
        let bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        Some(Self::normalize(negative, &bytes))
    }

    /// Decimal digits of the absolute value.
    fn magnitude_decimal(&self) -> String {
        // little-endian u32 limbs, repeatedly divided by 10^9
        let mut limbs: Vec<u32> = self
            .magnitude()
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect();
        let mut chunks: Vec<u32> = Vec::new();
        while limbs.iter().any(|&l| l != 0) {
            let mut rem: u64 = 0;
            for limb in limbs.iter_mut().rev() {
                let cur = (rem << 32) | *limb as u64;
                *limb = (cur / 1_000_000_000) as u32;
                rem = cur % 1_000_000_000;
            }
            chunks.push(rem as u32);
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
        }
        let mut out = String::new();
        for (i, c) in chunks.iter().rev().enumerate() {
            if i == 0 {
                out.push_str(&c.to_string());
            } else {
                out.push_str(&format!("{c:09}"));
            }
        }
        if out.is_empty() {
            out.push('0');
        }
        out
    }

    fn cmp_magnitude(a: &[u8], b: &[u8]) -> Ordering {
        a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
    }
}

impl PartialEq for BigInt {
    fn eq(&self, other: &BigInt) -> bool {
        self.is_negative() == other.is_negative() && self.magnitude() == other.magnitude()
    }
}

impl Eq for BigInt {}

impl Hash for BigInt {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.is_negative().hash(state);
        self.magnitude().hash(state);
    }
}

impl Ord for BigInt {
    fn cmp(&self, other: &BigInt) -> Ordering {
        match (self.is_negative(), other.is_negative()) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => Self::cmp_magnitude(self.magnitude(), other.magnitude()),
            (true, true) => Self::cmp_magnitude(other.magnitude(), self.magnitude()),
        }
    }
}

impl PartialOrd for BigInt {
    fn partial_cmp(&self, other: &BigInt) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_negative() {
            f.write_str("-")?;
        }
        f.write_str(&self.magnitude_decimal())
    }
}

impl fmt::Debug for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BigInt({self})")
    }
}

impl From<i128> for Integer {
    fn from(v: i128) -> Integer {
        BigInt::normalize(v < 0, &v.unsigned_abs().to_le_bytes())
    }
}

impl From<u128> for Integer {
    fn from(v: u128) -> Integer {
        BigInt::normalize(false, &v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_i64_small() {
        assert_eq!(BigInt::normalize(true, &[0, 0, 0, 0, 0, 0, 0, 0x80]), Integer::Small(i64::MIN));
        assert!(matches!(BigInt::normalize(false, &[0, 0, 0, 0, 0, 0, 0, 0x80]), Integer::Big(_)));
        assert_eq!(BigInt::normalize(true, &[]), Integer::Small(0));
    }

    #[test]
    fn decimal_both_ways() {
        let two_64 = "18446744073709551616";
        let Some(Integer::Big(b)) = BigInt::parse_decimal(two_64) else { panic!() };
        assert_eq!(b.magnitude(), &[0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(b.to_string(), two_64);
        let Some(Integer::Big(n)) = BigInt::parse_decimal("-1000000000000000000000000000001") else { panic!() };
        assert_eq!(n.to_string(), "-1000000000000000000000000000001");
        assert!(n < b);
        assert_eq!(BigInt::parse_radix("ff", 16), Some(Integer::Small(255)));
    }

    #[test]
    fn inline_and_heap_magnitudes_behave_alike() {
        for len in [9, BIG_INLINE_BYTES - 1, BIG_INLINE_BYTES, BIG_INLINE_BYTES + 1, 300] {
            let mut mag = vec![0u8; len];
            mag[len - 1] = 1;
            mag[0] = 5;
            // trailing zero digits are dropped whatever the representation
            let mut padded = mag.clone();
            padded.extend_from_slice(&[0, 0, 0]);
            let Integer::Big(a) = BigInt::normalize(false, &padded) else { panic!("{len}") };
            assert_eq!(a.magnitude(), &mag[..], "{len}");
            assert!(!a.is_negative());
            let Integer::Big(n) = BigInt::normalize(true, &mag) else { panic!("{len}") };
            assert!(n.is_negative() && n < a && n != a);
            assert_eq!(a, a.clone());
            let mut bigger = mag.clone();
            bigger.push(1);
            let Integer::Big(b) = BigInt::normalize(false, &bigger) else { panic!("{len}") };
            assert!(a < b, "{len}");
            assert_eq!(BigInt::parse_decimal(&a.to_string()), Some(Integer::Big(a.clone())));
            assert_eq!(BigInt::parse_decimal(&n.to_string()), Some(Integer::Big(n)));
        }
    }
}
