//! Layer normalisation: each row rescaled to mean 0 and variance 1, then scaled and shifted
//! by learned parameters.
//!
//! ```text
//! mean = sum(x) / n            var = sum((x - mean)^2) / n      (biased, as GPT-2)
//! layer_norm(x) = g * (x - mean) / sqrt(var + eps) + b
//! ```
//!
//! Shape: `[n_seq, n_embd]` in, same shape out; `g` (gain) and `b` (bias) are `[n_embd]`.
//! Each row is normalised on its own, so one row computed alone is bit-identical to the same
//! row in a batch. Numerical care: `eps` (1e-5 in GPT-2) keeps the division finite when a
//! row is constant, and the variance is computed from the centred values, not as
//! `E[x^2] - mean^2`, which can cancel catastrophically.

/// The learned parameters of one layer norm, named as in GPT-2 checkpoints
/// (`ln_1.weight` is `g`, `ln_1.bias` is `b`).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    /// Gain, `[n_embd]`.
    pub g: Vec<f32>,
    /// Bias, `[n_embd]`.
    pub b: Vec<f32>,
}

impl LayerNorm {
    /// The identity-initialised layer norm: gains 1, biases 0.
    pub fn identity(n_embd: usize) -> Self {
        Self { g: vec![1.0; n_embd], b: vec![0.0; n_embd] }
    }

    /// Normalises every row of `x`: `[n_seq, n_embd] -> [n_seq, n_embd]`.
    pub fn forward(&self, x: &[f32], eps: f32) -> Vec<f32> {
        layer_norm(x, &self.g, &self.b, eps)
    }

    /// [`forward`](Self::forward) into a reused buffer.
    pub fn forward_into(&self, x: &[f32], eps: f32, out: &mut Vec<f32>) {
        layer_norm_into(x, &self.g, &self.b, eps, out);
    }
}

/// Layer norm of every row of `x` (`[n_seq, n_embd]`, with `n_embd = g.len()`).
pub fn layer_norm(x: &[f32], g: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    layer_norm_into(x, g, b, eps, &mut out);
    out
}

/// [`layer_norm`] into `out`, which is cleared first (its memory is kept).
pub fn layer_norm_into(x: &[f32], g: &[f32], b: &[f32], eps: f32, out: &mut Vec<f32>) {
    let n_embd = g.len();
    debug_assert_eq!(b.len(), n_embd);
    debug_assert_eq!(x.len() % n_embd, 0, "x must be [n_seq, n_embd]");
    out.clear(); // becomes [n_seq, n_embd]
    for row in x.chunks_exact(n_embd) {
        let mean = row.iter().sum::<f32>() / n_embd as f32;
        let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n_embd as f32;
        let inv_std = 1.0 / (var + eps).sqrt();
        out.extend(
            row.iter()
                .zip(g.iter().zip(b))
                .map(|(&v, (&g_i, &b_i))| (v - mean) * inv_std * g_i + b_i),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn rows_get_mean_zero_and_variance_one() {
        let x = [1.0, 2.0, 3.0, 4.0, -10.0, 0.0, 10.0, 20.0]; // [2, 4]
        let y = LayerNorm::identity(4).forward(&x, 1e-5);
        for row in y.chunks_exact(4) {
            let mean = row.iter().sum::<f32>() / 4.0;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 4.0;
            assert_relative_eq!(mean, 0.0, epsilon = 1e-6);
            assert_relative_eq!(var, 1.0, max_relative = 1e-4);
        }
    }

    #[test]
    fn hand_computed_row() {
        // [1, 3]: mean 2, var 1, so (x - 2) / sqrt(1 + eps) = [-1, 1] (up to eps); then g, b.
        let y = layer_norm(&[1.0, 3.0], &[2.0, 1.0], &[0.5, 0.0], 0.0);
        assert_eq!(y, vec![-1.5, 1.0]);
    }

    #[test]
    fn constant_row_stays_finite() {
        let y = layer_norm(&[5.0; 4], &[1.0; 4], &[0.0; 4], 1e-5);
        assert_eq!(y, vec![0.0; 4]);
    }
}
