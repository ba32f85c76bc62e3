//! A fixed, seedless-by-design token hash and the signed feature-hashing accumulator.
//!
//! The hash reads words little-endian and uses only constants, so a token hashes to the same
//! 64 bits on every machine and in every run (unlike `std`'s `RandomState`).

const SEED: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xbf58_476d_1ce4_e5b9;

/// 64×64→128-bit multiply, folded to 64 bits (the mixing step of wyhash/foldhash).
const fn fold(a: u64, b: u64) -> u64 {
    let m = (a as u128) * (b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Hash of a token built from typed pieces; every piece is length- or kind-delimited, so
/// `("ab", "c")` and `("a", "bc")` differ. `const`, so token kinds hash at compile time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Token(u64);

impl Token {
    /// Starts a token of the given kind (e.g. `"layer"`).
    pub(super) const fn new(kind: &str) -> Self {
        Self(SEED).text(kind)
    }

    /// Appends text.
    pub(super) const fn text(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }

    /// Appends bytes: their length, then 8-byte little-endian words, then the zero-padded tail.
    pub(super) const fn bytes(self, bytes: &[u8]) -> Self {
        let mut h = fold(self.0 ^ bytes.len() as u64, K2);
        let mut rest = bytes;
        while let Some((word, tail)) = rest.split_first_chunk::<8>() {
            h = fold(h ^ u64::from_le_bytes(*word), K1);
            rest = tail;
        }
        if !rest.is_empty() {
            let mut w = 0u64;
            let mut i = 0;
            while i < rest.len() {
                w |= (rest[i] as u64) << (8 * i);
                i += 1;
            }
            h = fold(h ^ w, K1 ^ K2);
        }
        Self(h)
    }

    /// Appends an integer.
    pub(super) fn int(self, v: i64) -> Self {
        Self(fold(self.0 ^ (v as u64) ^ K1, K2.rotate_left(17)))
    }

    /// The finished 64-bit hash (murmur3's finaliser, so every output bit depends on every
    /// input bit).
    pub(super) fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Which bits of a token hash pick the dimension and the sign. The two vector kinds use
/// different bits so that their collisions are independent.
#[derive(Debug, Clone, Copy)]
pub(super) enum Bits {
    /// Dimension from bits 32–63, sign from bit 0.
    High,
    /// Dimension from bits 1–32, sign from bit 40.
    Low,
}

/// A signed feature-hashing vector of `D` dimensions.
#[derive(Debug, Clone)]
pub(super) struct Features<const D: usize> {
    values: [f32; D],
    bits: Bits,
}

impl<const D: usize> Features<D> {
    pub(super) fn new(bits: Bits) -> Self {
        Self { values: [0.0; D], bits }
    }

    /// Adds `weight` (or `-weight`) to the dimension the hash picks.
    pub(super) fn add(&mut self, hash: u64, weight: f32) {
        let (word, sign_bit) = match self.bits {
            Bits::High => (hash >> 32, 0),
            Bits::Low => ((hash >> 1) & 0xffff_ffff, 40),
        };
        // Lemire's multiply-shift range reduction: uniform over 0..D.
        let index = ((word * D as u64) >> 32) as usize;
        let signed = if hash >> sign_bit & 1 == 1 { -weight } else { weight };
        if let Some(v) = self.values.get_mut(index) {
            *v += signed;
        }
    }

    /// Adds another vector, scaled.
    pub(super) fn add_scaled(&mut self, other: &[f32; D], scale: f32) {
        for (v, o) in self.values.iter_mut().zip(other) {
            *v += o * scale;
        }
    }

    /// The vector scaled to unit L2 norm (all zeros stays all zeros).
    pub(super) fn normalized(&self) -> [f32; D] {
        let norm = self.values.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt();
        let mut out = self.values;
        if norm > 0.0 {
            for v in &mut out {
                *v = (f64::from(*v) / norm) as f32;
            }
        }
        out
    }
}
