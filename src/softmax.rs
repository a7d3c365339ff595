//! Softmax: turns a row of scores into probabilities.
//!
//! ```text
//! softmax(x)_i = exp(x_i - max(x)) / sum_j exp(x_j - max(x))
//! ```
//!
//! Shape: one row of any length `n` in, the same row out, summing to 1. Used over attention
//! scores (`[n_keys]` per query) and, for sampling, over logits (`[n_vocab]`).
//!
//! Numerical care: subtracting the row's maximum first changes nothing mathematically
//! (the factor `exp(-max)` cancels) but keeps every `exp` at most 1, so large scores cannot
//! overflow to infinity. A score of `-inf` (a masked position) becomes exactly `0.0`,
//! which is how the causal mask works. At least one entry must be finite.

use crate::math::exp;

/// Softmax of one row, in place. The sum is taken left to right; `exp` is the crate's own
/// ([`crate::math::exp`]), identical on every platform.
///
/// ```
/// let mut row = [1.0, 1.0, f32::NEG_INFINITY];
/// gpt2_edu::softmax::softmax_in_place(&mut row);
/// assert_eq!(row, [0.5, 0.5, 0.0]);
/// ```
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    debug_assert!(max.is_finite(), "softmax needs at least one finite entry");
    for x in row.iter_mut() {
        *x = exp(*x - max); // a loop of its own, which compiles to vector instructions
    }
    let sum = row.iter().fold(0.0, |sum, &x| sum + x); // in order, from 0.0
    for x in row.iter_mut() {
        *x /= sum;
    }
}

/// [`softmax_in_place`] of every row of a `[n_rows, n_cols]` matrix: attention turns each
/// query's scores into weights this way.
pub fn softmax_rows(m: &mut [f32], n_cols: usize) {
    for row in m.chunks_exact_mut(n_cols) {
        softmax_in_place(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn sums_to_one_and_matches_hand_values() {
        let mut row = [0.0, f32::ln(3.0)];
        softmax_in_place(&mut row);
        // exp(0) = 1, exp(ln 3) = 3: probabilities 1/4 and 3/4.
        assert_relative_eq!(row[0], 0.25, max_relative = 1e-6);
        assert_relative_eq!(row[1], 0.75, max_relative = 1e-6);
    }

    #[test]
    fn is_shift_invariant() {
        let mut a = [0.5, -1.25, 3.0, 2.0];
        let mut b = a.map(|x| x + 100.0);
        softmax_in_place(&mut a);
        softmax_in_place(&mut b);
        for (x, y) in a.iter().zip(&b) {
            assert_relative_eq!(x, y, max_relative = 1e-5);
        }
        assert_relative_eq!(a.iter().sum::<f32>(), 1.0, max_relative = 1e-6);
    }

    #[test]
    fn huge_scores_do_not_overflow() {
        let mut row = [1e30, 1e30, 0.0];
        softmax_in_place(&mut row);
        assert_eq!(row, [0.5, 0.5, 0.0]);
    }

    #[test]
    fn rows_are_normalised_one_by_one() {
        let mut m = [0.0, 0.0, 1.0, f32::NEG_INFINITY]; // [2, 2]
        softmax_rows(&mut m, 2);
        assert_eq!(m, [0.5, 0.5, 1.0, 0.0]);
    }

    #[test]
    fn masked_entries_become_exact_zeros() {
        let mut row = [2.0, f32::NEG_INFINITY, 1.0, f32::NEG_INFINITY];
        softmax_in_place(&mut row);
        assert_eq!(row[1].to_bits(), 0.0f32.to_bits());
        assert_eq!(row[3].to_bits(), 0.0f32.to_bits());
        assert_relative_eq!(row[0] + row[2], 1.0, max_relative = 1e-6);
    }
}
