//! Integers beyond `i64`: sign and magnitude, the magnitude stored as ETF stores it
//! (little-endian base-256 digits, `SMALL_BIG_EXT`/`LARGE_BIG_EXT` in `erl_ext_dist`).
//!
//! Only what a term layer needs: construction, comparison, and decimal text both ways.

use std::cmp::Ordering;
use std::fmt;

/// An integer outside the `i64` range.
///
/// Invariant (kept by every constructor): the magnitude has no most-significant zero bytes, and
/// the value does not fit an `i64` (those are `Term::Int`). [`BigInt::normalize`] builds either.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BigInt {
    negative: bool,
    /// Little-endian base-256 digits, no trailing (most significant) zeros, never empty.
    magnitude: Vec<u8>,
}

/// An integer as the term layer holds it: small values as `i64`, others as [`BigInt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integer {
    /// Fits an `i64`.
    Small(i64),
    /// Does not fit an `i64`.
    Big(BigInt),
}

impl BigInt {
    /// Builds the canonical integer from a sign and little-endian magnitude digits.
    pub fn normalize(negative: bool, magnitude: &[u8]) -> Integer {
        let mut len = magnitude.len();
        while len > 0 && magnitude[len - 1] == 0 {
            len -= 1;
        }
        let mag = &magnitude[..len];
        if len <= 8 {
            let mut v: u64 = 0;
            for (i, b) in mag.iter().enumerate() {
                v |= (*b as u64) << (8 * i);
            }
            if !negative && v <= i64::MAX as u64 {
                return Integer::Small(v as i64);
            }
            if negative && v <= 1u64 << 63 {
                return Integer::Small((v as i64).wrapping_neg());
            }
        }
        Integer::Big(BigInt { negative: negative && len > 0, magnitude: mag.to_vec() })
    }

    /// `true` for values below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Little-endian base-256 digits of the absolute value.
    pub fn magnitude(&self) -> &[u8] {
        &self.magnitude
    }

    /// The value as `i128`, when it fits.
    pub fn to_i128(&self) -> Option<i128> {
        if self.magnitude.len() > 16 {
            return None;
        }
        let mut v: u128 = 0;
        for (i, b) in self.magnitude.iter().enumerate() {
            v |= (*b as u128) << (8 * i);
        }
        if self.negative {
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
            .magnitude
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

impl Ord for BigInt {
    fn cmp(&self, other: &BigInt) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => Self::cmp_magnitude(&self.magnitude, &other.magnitude),
            (true, true) => Self::cmp_magnitude(&other.magnitude, &self.magnitude),
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
        if self.negative {
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
        let Some(Integer::Big(n)) = BigInt::parse_decimal("-1000000000000000000000000000001") else {
            panic!()
        };
        assert_eq!(n.to_string(), "-1000000000000000000000000000001");
        assert!(n < b);
        assert_eq!(BigInt::parse_radix("ff", 16), Some(Integer::Small(255)));
    }
}
