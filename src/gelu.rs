//! GELU, the feed-forward network's non-linearity.
//!
//! ```text
//! gelu(x) = 0.5 * x * (1 + tanh( sqrt(2/pi) * (x + 0.044715 * x^3) ))
//! ```
//!
//! This is the tanh approximation of `x * Phi(x)` (Phi the standard normal CDF) from
//! Hendrycks & Gimpel, "Gaussian Error Linear Units", 2016, section 2; GPT-2 uses exactly
//! this form (`gelu_new` in HuggingFace transformers). Shape: element-wise, any shape in,
//! same shape out. Numerical care: for large |x| `tanh` saturates to +-1, so the result
//! goes smoothly to `x` or `0` without overflow.

use crate::math::tanh;

/// `sqrt(2 / pi)`, rounded to f32.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU of one number (tanh approximation).
///
/// ```
/// assert_eq!(gpt2_edu::gelu::gelu(0.0), 0.0);
/// ```
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
}

/// Applies [`gelu`] to every element: `[n_seq, 4 * n_embd]` in, same shape out.
pub fn gelu_in_place(x: &mut [f32]) {
    for x_i in x {
        *x_i = gelu(*x_i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn constant_is_sqrt_2_over_pi() {
        assert_relative_eq!(
            SQRT_2_OVER_PI as f64,
            (2.0 / std::f64::consts::PI).sqrt(),
            max_relative = 1e-7
        );
    }

    #[test]
    fn zero_and_known_values() {
        assert_eq!(gelu(0.0), 0.0);
        // By hand: gelu(1) = 0.5 * (1 + tanh(0.7978846 * 1.044715)) = 0.5 * (1 + tanh(0.8335626))
        //                  = 0.5 * (1 + 0.6823617) = 0.8411920
        assert_relative_eq!(gelu(1.0), 0.841_192, max_relative = 1e-6);
        // gelu(-1) = -1 + gelu(1) because x * Phi(x) + (-x) * Phi(-x) ... = x; here: gelu(x) - gelu(-x) = x.
        assert_relative_eq!(gelu(1.0) - gelu(-1.0), 1.0, max_relative = 1e-6);
    }

    #[test]
    fn saturates_to_identity_and_zero() {
        assert_eq!(gelu(20.0), 20.0);
        assert_eq!(gelu(-20.0), -0.0);
        assert!(gelu(1e30).is_finite());
    }
}
