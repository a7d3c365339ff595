//! Matrices as plain row-major `Vec<f32>`, and `linear`, the operation a transformer is
//! mostly made of.
//!
//! A matrix of shape `[rows, cols]` is a `Vec<f32>` of length `rows * cols`; element
//! `(r, c)` sits at index `r * cols + c`. Weights are stored `[n_in, n_out]`, exactly as
//! GPT-2 checkpoints store them, so that
//!
//! ```text
//! matmul(a, b)     = a @ b             [m, n_in] @ [n_in, n_out]          -> [m, n_out]
//! linear(x, w, b)  = x @ w + b         [n_seq, n_in] @ [n_in, n_out] + [n_out] -> [n_seq, n_out]
//! ```
//!
//! reads like picoGPT's `linear`.
//!
//! **Numerical care.** Floating-point addition is not associative, so the *order* of a sum
//! decides its last bits. Every output element here is summed in one fixed order (over the
//! input dimension, ascending, starting from `0.0`, then the bias) that does not depend on
//! how many rows are computed together. One row computed alone is therefore bit-identical
//! to the same row computed inside a batch, which is what lets the KV-cached decoder match
//! full recomputation exactly (see `kv_cache`), and what the fast engine (`fast`) keeps,
//! so that it computes the very same bits.

use crate::quant::{Dtype, Q8Matrix, round_matrix};

/// A fully connected layer: weight `w` of shape `[n_in, n_out]` (row-major, exactly as the
/// checkpoint stores it) and bias `b` of shape `[n_out]`. GPT-2 calls these `Conv1D`; they
/// are plain affine maps.
///
/// ```
/// use gpt2_edu::matrix::Linear;
/// // w = [[1, 0, 1], [0, 1, 1]]: [n_in 2, n_out 3]; w[k * n_out + j] is weight (k, j).
/// let layer = Linear::new(vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0], vec![0.5; 3]);
/// assert_eq!((layer.n_in(), layer.n_out()), (2, 3));
/// assert_eq!(layer.w[1 * 3 + 2], 1.0); // weight (1, 2)
/// assert_eq!(layer.forward(&[1.0, 2.0]), vec![1.5, 2.5, 3.5]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// Weight, `[n_in, n_out]`, row-major: weight `(k, j)` is `w[k * n_out + j]`.
    pub w: Vec<f32>,
    /// Bias, `[n_out]`.
    pub b: Vec<f32>,
    /// The weight as 8-bit blocks, for a layer stored in Q8 ([`Model::stored_as`]), else
    /// `None`. When present, [`forward`](Self::forward) multiplies by these blocks in Q8's
    /// own order ([`Q8Matrix::matmul`]) and `w` holds the values they stand for
    /// (`scale * q`), for anything that reads the weights.
    ///
    /// [`Model::stored_as`]: crate::Model::stored_as
    pub q8: Option<Q8Matrix>,
}

impl Linear {
    /// A layer of f32 weights: `w` `[n_in, n_out]` row-major and `b` `[n_out]`.
    pub fn new(w: Vec<f32>, b: Vec<f32>) -> Self {
        Self { w, b, q8: None }
    }

    /// Output width: the length of the bias.
    pub fn n_out(&self) -> usize {
        self.b.len()
    }

    /// Input width: rows of `w` (0 for a layer with no outputs).
    pub fn n_in(&self) -> usize {
        self.w.len().checked_div(self.b.len()).unwrap_or(0)
    }

    /// Stores the weight in `dtype` (see `quant`): unchanged for F32; rounded to bf16; for
    /// Q8, quantized into [`q8`](Self::q8), `w` becoming the values the blocks stand for.
    /// Bias stays f32. (Storing a Q8 layer again would quantize those values again:
    /// `Model::stored_as` refuses to.)
    pub fn store_as(&mut self, dtype: Dtype) {
        match dtype {
            Dtype::F32 => {}
            Dtype::Bf16 => round_matrix(&mut self.w, self.b.len(), dtype),
            Dtype::Q8 => {
                let q8 = Q8Matrix::quantize(&self.w, self.n_out());
                self.w = q8.dequantize();
                self.q8 = Some(q8);
            }
        }
    }

    /// Applies the layer to every row of `x`: `[n_seq, n_in] -> [n_seq, n_out]`; a layer
    /// stored in Q8 multiplies by its blocks, then adds the bias in the same way.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        match &self.q8 {
            None => linear(x, &self.w, &self.b),
            Some(q8) => {
                let mut out = q8.matmul(x); // [n_seq, n_out]
                for out_row in out.chunks_exact_mut(self.b.len().max(1)) {
                    add_in_place(out_row, &self.b);
                }
                out
            }
        }
    }
}

/// `a @ b`: `[m, n_in] @ [n_in, n_out] -> [m, n_out]`.
///
/// Each output row is `sum_k a[k] * b[k, :]`, accumulated from `0.0` over `k` in ascending
/// order, the same order for every row.
///
/// ```
/// use gpt2_edu::matrix::matmul;
/// // [[1, 2]] @ [[1, 0, 1], [0, 1, 1]]
/// assert_eq!(matmul(&[1.0, 2.0], &[1.0, 0.0, 1.0, 0.0, 1.0, 1.0], 2, 3), vec![1.0, 2.0, 3.0]);
/// ```
pub fn matmul(a: &[f32], b: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    let n_rows = a.len().checked_div(n_in).unwrap_or(0);
    let mut out = vec![0.0; n_rows * n_out]; // [m, n_out]
    matmul_into(a, b, n_in, n_out, &mut out);
    out
}

/// [`matmul`] into `out` (`[m, n_out]`), which is overwritten.
pub fn matmul_into(a: &[f32], b: &[f32], n_in: usize, n_out: usize, out: &mut [f32]) {
    debug_assert_eq!(b.len(), n_in * n_out, "b must be [n_in, n_out]");
    debug_assert_eq!(a.len() / n_in.max(1) * n_out, out.len(), "out must be [m, n_out]");
    for (a_row, out_row) in a.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
        out_row.fill(0.0);
        // out_row += a_row[k] * b[k, :], one input feature at a time.
        for (&a_k, b_row) in a_row.iter().zip(b.chunks_exact(n_out)) {
            for (o, &b_kj) in out_row.iter_mut().zip(b_row) {
                *o += a_k * b_kj;
            }
        }
    }
}

/// `x @ w + b`: `[n_seq, n_in] @ [n_in, n_out] + [n_out] -> [n_seq, n_out]`, with
/// `n_out = b.len()` and `n_in = w.len() / n_out`.
///
/// The product is [`matmul`]'s, and the bias is added last, the same order for every row.
///
/// ```
/// use gpt2_edu::matrix::linear;
/// // [1, 2] @ [2, 3] + [3]
/// let x = [1.0, 2.0];
/// let w = [1.0, 0.0, 1.0, /* row k=1 */ 0.0, 1.0, 1.0];
/// let b = [0.5, 0.5, 0.5];
/// assert_eq!(linear(&x, &w, &b), vec![1.5, 2.5, 3.5]);
/// ```
pub fn linear(x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let n_out = b.len();
    let n_in = w.len().checked_div(n_out).unwrap_or(0);
    debug_assert_eq!(w.len(), n_in * n_out, "w must be [n_in, n_out]");
    debug_assert_eq!(x.len() % n_in.max(1), 0, "x must be [n_seq, n_in]");
    let mut out = matmul(x, w, n_in, n_out); // [n_seq, n_out]
    for out_row in out.chunks_exact_mut(n_out) {
        add_in_place(out_row, b);
    }
    out
}

/// The dot product `sum_i a[i] * b[i]`, summed left to right.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |sum, (&a_i, &b_i)| sum + a_i * b_i)
}

/// `x @ m^T`: `[n_seq, n_in] @ [n_out, n_in]^T -> [n_seq, n_out]`, each element one
/// [`dot`] of a row of `x` with a row of `m`.
///
/// GPT-2 computes its logits this way: the token-embedding matrix `wte` `[n_vocab, n_embd]`
/// is reused ("tied") as the output layer, so `logits = x @ wte^T`.
pub fn matmul_transposed(x: &[f32], m: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    debug_assert_eq!(x.len() % n_in.max(1), 0, "x must be [n_seq, n_in]");
    debug_assert_eq!(m.len(), n_out * n_in, "m must be [n_out, n_in]");
    let n_seq = x.len().checked_div(n_in).unwrap_or(0);
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
/// matrix. Used to cut one attention head out of `q`, or `q`, `k`, `v` out of `qkv`.
pub fn columns(m: &[f32], n_cols: usize, cols: std::ops::Range<usize>) -> Vec<f32> {
    debug_assert_eq!(m.len() % n_cols, 0);
    debug_assert!(cols.end <= n_cols);
    m.chunks_exact(n_cols).flat_map(|row| row[cols.clone()].iter().copied()).collect()
}

/// Writes `part` (`[rows, width]`) into columns `col0..col0 + width` of the `[rows, n_cols]`
/// matrix `m`: the inverse of [`columns`]. Used to merge the attention heads.
pub fn set_columns(m: &mut [f32], n_cols: usize, col0: usize, part: &[f32]) {
    let width = part.len() / (m.len() / n_cols).max(1);
    debug_assert!(col0 + width <= n_cols);
    for (row, part_row) in m.chunks_exact_mut(n_cols).zip(part.chunks_exact(width)) {
        row[col0..col0 + width].copy_from_slice(part_row);
    }
}

/// Partial sums kept side by side by [`dot_fast`]: 16 lanes, four SSE registers.
const LANES: usize = 16;

/// The dot product, with 16 independent partial sums (so that additions need not wait for
/// each other), combined in a fixed order, then the leftover elements. Not bit-identical to
/// [`dot`], but always the same for the same inputs. Attention scores use it.
pub fn dot_fast(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x * y;
        }
    }
    // Fold the 16 lanes pairwise: 16 -> 8 -> 4 -> 2 -> 1.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    let mut sum = acc[0];
    for (&x, &y) in rest_a.iter().zip(rest_b) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// `n` draws in [-1, 1).
    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::XorShift64::new(seed).unwrap();
        (0..n).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
    }

    #[test]
    fn linear_matches_a_hand_computed_product() {
        // [[1, 2], [3, 4]] @ [[1, 2, 3], [4, 5, 6]] + [10, 20, 30]
        let x = [1.0, 2.0, 3.0, 4.0];
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [10.0, 20.0, 30.0];
        let y = linear(&x, &w, &b);
        assert_eq!(y, vec![19.0, 32.0, 45.0, 29.0, 46.0, 63.0]);
    }

    #[test]
    fn linear_row_alone_equals_row_in_batch_bit_for_bit() {
        // Awkward values whose sums depend on order, to make the property non-trivial.
        let n_in = 7;
        let n_out = 5;
        let x: Vec<f32> = (0..3 * n_in).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        let w: Vec<f32> = (0..n_in * n_out).map(|i| (i as f32 * 0.11).cos()).collect();
        let b: Vec<f32> = (0..n_out).map(|i| i as f32 * 1e-3).collect();
        let batch = linear(&x, &w, &b);
        for r in 0..3 {
            let alone = linear(&x[r * n_in..(r + 1) * n_in], &w, &b);
            assert_eq!(bits(&alone), bits(&batch[r * n_out..(r + 1) * n_out]));
        }
    }

    #[test]
    fn linear_is_matmul_then_the_bias() {
        let (x, w, b) = (random(3 * 9, 1), random(9 * 4, 2), random(4, 3));
        let mut expected = matmul(&x, &w, 9, 4);
        for row in expected.chunks_exact_mut(4) {
            for (e, b) in row.iter_mut().zip(&b) {
                *e += b;
            }
        }
        assert_eq!(bits(&linear(&x, &w, &b)), bits(&expected));
        let layer = Linear::new(w, b);
        assert_eq!((layer.n_in(), layer.n_out()), (9, 4));
        assert_eq!(bits(&layer.forward(&x)), bits(&expected));
    }

    #[test]
    fn matmul_transposed_is_dot_products_with_rows() {
        let x = [1.0, 2.0]; // [1, 2]
        let m = [1.0, 1.0, 2.0, -1.0, 0.0, 3.0]; // [3, 2]
        assert_eq!(matmul_transposed(&x, &m, 2, 3), vec![3.0, 0.0, 6.0]);
    }

    #[test]
    fn fast_dot_is_close_to_the_plain_dot_on_odd_sizes() {
        for (n, seed) in [(1, 1), (7, 2), (15, 3), (16, 4), (33, 5), (768, 6), (50257, 7)] {
            let a = random(n, seed);
            let b = random(n, seed + 100);
            let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let scale: f64 = a.iter().zip(&b).map(|(&x, &y)| (x as f64 * y as f64).abs()).sum();
            for value in [dot(&a, &b), dot_fast(&a, &b)] {
                // Both are within f32 rounding of the exact sum: n * eps * sum |a_i b_i|.
                assert!((value as f64 - exact).abs() <= n as f64 * 6e-8 * scale, "n = {n}");
            }
        }
    }

    #[test]
    fn columns_cuts_a_head_and_set_columns_puts_it_back() {
        let m = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]; // [2, 4]
        let head = columns(&m, 4, 2..4);
        assert_eq!(head, vec![2.0, 3.0, 6.0, 7.0]);
        let mut merged = vec![0.0; 8];
        set_columns(&mut merged, 4, 2, &head);
        assert_eq!(merged, vec![0.0, 0.0, 2.0, 3.0, 0.0, 0.0, 6.0, 7.0]);
    }
}
