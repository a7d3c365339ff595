//! Matrices as plain row-major `Vec<f32>`, and `linear`, the operation a transformer is
//! mostly made of.
//!
//! A matrix of shape `[rows, cols]` is a `Vec<f32>` of length `rows * cols`; element
//! `(r, c)` sits at index `r * cols + c`. Weights are stored `[n_in, n_out]`, exactly as
//! GPT-2 checkpoints store them, so that
//!
//! ```text
//! linear(x, w, b) = x @ w + b        [n_seq, n_in] @ [n_in, n_out] + [n_out] -> [n_seq, n_out]
//! ```
//!
//! reads like picoGPT's `linear`.
//!
//! **Numerical care.** Floating-point addition is not associative, so the *order* of a sum
//! decides its last bits. Every output element here is summed in one fixed order (over the
//! input dimension, ascending, then the bias) that does not depend on how many rows are
//! computed together. One row computed alone is therefore bit-identical to the same row
//! computed inside a batch, which is what lets the KV-cached decoder match full
//! recomputation exactly (see `kv_cache`).

/// A fully connected layer: weight `w` of shape `[n_in, n_out]` and bias `b` of shape
/// `[n_out]`. GPT-2 calls these `Conv1D`; they are plain affine maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// Weight, row-major `[n_in, n_out]`.
    pub w: Vec<f32>,
    /// Bias, `[n_out]`.
    pub b: Vec<f32>,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
}

impl Linear {
    /// Applies the layer to every row of `x`: `[n_seq, n_in] -> [n_seq, n_out]`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        linear(x, &self.w, &self.b, self.n_in, self.n_out)
    }
}

/// `x @ w + b`: `[n_seq, n_in] @ [n_in, n_out] + [n_out] -> [n_seq, n_out]`.
///
/// Each output row is `b + sum_k x[k] * w[k, :]`, accumulated over `k` in ascending order
/// and the bias added last, the same order for every row.
///
/// ```
/// use gpt2_edu::matrix::linear;
/// // [1, 2] @ [2, 3] + [3]
/// let x = [1.0, 2.0];
/// let w = [1.0, 0.0, 1.0, /* row k=1 */ 0.0, 1.0, 1.0];
/// let b = [0.5, 0.5, 0.5];
/// assert_eq!(linear(&x, &w, &b, 2, 3), vec![1.5, 2.5, 3.5]);
/// ```
pub fn linear(x: &[f32], w: &[f32], b: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    debug_assert_eq!(x.len() % n_in, 0, "x must be [n_seq, n_in]");
    debug_assert_eq!(w.len(), n_in * n_out, "w must be [n_in, n_out]");
    debug_assert_eq!(b.len(), n_out, "b must be [n_out]");
    let n_seq = x.len() / n_in;
    let mut out = vec![0.0; n_seq * n_out]; // [n_seq, n_out]
    for (x_row, out_row) in x.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
        // out_row += x_row[k] * w[k, :], one input feature at a time.
        for (&x_k, w_row) in x_row.iter().zip(w.chunks_exact(n_out)) {
            for (o, &w_kj) in out_row.iter_mut().zip(w_row) {
                *o += x_k * w_kj;
            }
        }
        for (o, &b_j) in out_row.iter_mut().zip(b) {
            *o += b_j;
        }
    }
    out
}

/// The dot product `sum_i a[i] * b[i]`, summed left to right.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold(0.0, |sum, (&a_i, &b_i)| sum + a_i * b_i)
}

/// `x @ m^T`: `[n_seq, n_in] @ [n_out, n_in]^T -> [n_seq, n_out]`, each element one
/// [`dot`] of a row of `x` with a row of `m`.
///
/// GPT-2 computes its logits this way: the token-embedding matrix `wte` `[n_vocab, n_embd]`
/// is reused ("tied") as the output layer, so `logits = x @ wte^T`.
pub fn matmul_transposed(x: &[f32], m: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    debug_assert_eq!(x.len() % n_in, 0, "x must be [n_seq, n_in]");
    debug_assert_eq!(m.len(), n_out * n_in, "m must be [n_out, n_in]");
    let n_seq = x.len() / n_in;
    let mut out = vec![0.0; n_seq * n_out]; // [n_seq, n_out]
    for (x_row, out_row) in x.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
        for (o, m_row) in out_row.iter_mut().zip(m.chunks_exact(n_in)) {
            *o = dot(x_row, m_row);
        }
    }
    out
}

/// `x += y`, element by element: the residual connection.
pub fn add_in_place(x: &mut [f32], y: &[f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (x_i, &y_i) in x.iter_mut().zip(y) {
        *x_i += y_i;
    }
}

/// Columns `cols` of every row of a `[rows, n_cols]` matrix, as a new `[rows, cols.len()]`
/// matrix. Used to cut one attention head out of `q`, `k` or `v`.
pub fn columns(m: &[f32], n_cols: usize, cols: std::ops::Range<usize>) -> Vec<f32> {
    debug_assert_eq!(m.len() % n_cols, 0);
    debug_assert!(cols.end <= n_cols);
    m.chunks_exact(n_cols)
        .flat_map(|row| row[cols.clone()].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_a_hand_computed_product() {
        // [[1, 2], [3, 4]] @ [[1, 2, 3], [4, 5, 6]] + [10, 20, 30]
        let x = [1.0, 2.0, 3.0, 4.0];
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [10.0, 20.0, 30.0];
        let y = linear(&x, &w, &b, 2, 3);
        assert_eq!(y, vec![19.0, 32.0, 45.0, 29.0, 46.0, 63.0]);
    }

    #[test]
    fn linear_row_alone_equals_row_in_batch_bit_for_bit() {
        // Awkward values whose sums depend on order, to make the property non-trivial.
        let n_in = 7;
        let n_out = 5;
        let x: Vec<f32> = (0..3 * n_in)
            .map(|i| (i as f32 * 0.37).sin() * 1e3)
            .collect();
        let w: Vec<f32> = (0..n_in * n_out).map(|i| (i as f32 * 0.11).cos()).collect();
        let b: Vec<f32> = (0..n_out).map(|i| i as f32 * 1e-3).collect();
        let batch = linear(&x, &w, &b, n_in, n_out);
        for r in 0..3 {
            let alone = linear(&x[r * n_in..(r + 1) * n_in], &w, &b, n_in, n_out);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&alone), bits(&batch[r * n_out..(r + 1) * n_out]));
        }
    }

    #[test]
    fn matmul_transposed_is_dot_products_with_rows() {
        let x = [1.0, 2.0]; // [1, 2]
        let m = [1.0, 1.0, 2.0, -1.0, 0.0, 3.0]; // [3, 2]
        assert_eq!(matmul_transposed(&x, &m, 2, 3), vec![3.0, 0.0, 6.0]);
    }

    #[test]
    fn columns_cuts_a_head() {
        let m = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]; // [2, 4]
        assert_eq!(columns(&m, 4, 2..4), vec![2.0, 3.0, 6.0, 7.0]);
    }
}
