//! A tiny, exactly specified random-number generator: Marsaglia's xorshift64.
//!
//! The dummy model's weights are random, and we want *the same* random weights in Rust,
//! in numpy and on every platform, so the generator is written out here rather than taken
//! from a library whose algorithm may change:
//!
//! ```text
//! state_0 = seed                                   (seed != 0)
//! x ^= x << 13;  x ^= x >> 7;  x ^= x << 17        (u64, wrapping shifts drop high bits)
//! next_u64() = the new x
//! next_f32() = (next_u64() >> 40) as f32 / 2^24    (the top 24 bits: uniform in [0, 1))
//! ```
//!
//! The shift triple (13, 7, 17) is one of the full-period 64-bit triples listed in
//! G. Marsaglia, "Xorshift RNGs", Journal of Statistical Software 8(14), 2003,
//! <https://doi.org/10.18637/jss.v008.i14>. Every nonzero seed runs through all
//! `2^64 - 1` nonzero states; zero maps to itself forever, so it is rejected.
//!
//! Why the top 24 bits: an `f32` has a 24-bit significand, so `k / 2^24` for
//! `k < 2^24` is exact: every value is representable and the draw is uniform over
//! 2^24 evenly spaced points in `[0, 1)`, never 1.
//!
//! The same generator in Python, for checking the crate's weights against numpy:
//!
//! ```python
//! def xorshift64_uniform(seed, n):
//!     x, out = seed, []
//!     for _ in range(n):
//!         x ^= (x << 13) & 0xFFFF_FFFF_FFFF_FFFF
//!         x ^= x >> 7
//!         x ^= (x << 17) & 0xFFFF_FFFF_FFFF_FFFF
//!         out.append((x >> 40) / 2**24)
//!     return out
//! ```

use crate::error::{Error, Result};

/// Marsaglia's xorshift64 generator (see the module docs for the exact recurrence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator whose first state is `seed` itself. Seed 0 is an error
    /// ([`Error::ZeroSeed`]): xorshift would return 0 forever.
    pub fn new(seed: u64) -> Result<Self> {
        if seed == 0 {
            return Err(Error::ZeroSeed);
        }
        Ok(Self { state: seed })
    }

    /// Advances the state and returns it.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// A uniform `f32` in `[0, 1)`: the top 24 bits of [`next_u64`](Self::next_u64)
    /// divided by `2^24`.
    pub fn next_f32(&mut self) -> f32 {
        const TWO_POW_24: f32 = (1u32 << 24) as f32;
        (self.next_u64() >> 40) as f32 / TWO_POW_24
    }

    /// A uniform `f64` in `[0, 1)`: the top 53 bits of [`next_u64`](Self::next_u64)
    /// divided by `2^53` (every value exact). Used to draw samples.
    pub fn next_f64(&mut self) -> f64 {
        const TWO_POW_53: f64 = (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 / TWO_POW_53
    }

    /// `n` uniform draws in `[0, 1)`, like numpy's `np.random.rand(n)`.
    pub fn uniform_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_state_from_seed_one_by_hand() {
        // x = 1;  x ^= x << 13 -> 8193;  x ^= x >> 7 -> 8193 ^ 64 = 8257;
        // x ^= x << 17 -> 8257 ^ 1_082_261_504 = 1_082_269_761 (no overlapping bits).
        let mut rng = XorShift64::new(1).unwrap();
        assert_eq!(rng.next_u64(), 1_082_269_761);
    }

    #[test]
    fn zero_seed_is_rejected() {
        assert_eq!(XorShift64::new(0), Err(Error::ZeroSeed));
    }

    #[test]
    fn uniform_draws_are_in_unit_interval_and_look_uniform() {
        let mut rng = XorShift64::new(42).unwrap();
        let draws = rng.uniform_vec(100_000);
        assert!(draws.iter().all(|&u| (0.0..1.0).contains(&u)));
        let mean = draws.iter().map(|&u| u as f64).sum::<f64>() / draws.len() as f64;
        // The mean of 1e5 uniforms has standard deviation 1/sqrt(12e5) ~ 0.0009.
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    }

    #[test]
    fn f32_draw_is_top_24_bits() {
        let mut a = XorShift64::new(7).unwrap();
        let mut b = XorShift64::new(7).unwrap();
        let bits = a.next_u64() >> 40;
        assert_eq!(b.next_f32(), bits as f32 / 16_777_216.0);
    }
}
