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

/// Columns per weight panel: 16 floats, one 64-byte cache line per row.
pub const PANEL: usize = 16;

/// A fully connected layer: weight `W` of shape `[n_in, n_out]` and bias `b` of shape
/// `[n_out]`. GPT-2 calls these `Conv1D`; they are plain affine maps.
///
/// **Layout, chosen for the matrix-vector product.** Decoding computes `x @ W` for one row
/// `x`, which reads all of `W` once, so `W` is stored the way that product reads it: cut
/// into *panels* of [`PANEL`] columns, each panel a contiguous `[n_in, PANEL]` row-major
/// block (the last panel may be narrower):
///
/// ```text
/// W [n_in, n_out]  ->  w = [panel 0: W[:, 0..16] | panel 1: W[:, 16..32] | ...]
/// W[k][j] = w[(j / 16) * 16 * n_in + k * width + j % 16]      width = 16, or less for the last
/// ```
///
/// A thread computing a range of output columns then reads one contiguous stretch of
/// memory, 64 bytes per row of `W`, keeping its 16 partial sums in registers.
/// [`Linear::new`] packs a checkpoint's row-major `[n_in, n_out]` matrix;
/// [`Linear::to_row_major`] unpacks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// Weight `[n_in, n_out]`, packed in column panels (see above).
    pub w: Vec<f32>,
    /// Bias, `[n_out]`.
    pub b: Vec<f32>,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
}

impl Linear {
    /// A layer from a row-major `[n_in, n_out]` weight (as checkpoints store it) and a bias.
    pub fn new(w_row_major: Vec<f32>, b: Vec<f32>, n_in: usize, n_out: usize) -> Self {
        let w = if w_row_major.len() == n_in * n_out {
            pack_panels(&w_row_major, n_in, n_out)
        } else {
            w_row_major // a wrong size is reported by Model::new's shape check
        };
        Self { w, b, n_in, n_out }
    }

    /// `W[k][j]`.
    pub fn weight(&self, k: usize, j: usize) -> f32 {
        let (panel, width) = self.panel(j / PANEL);
        panel[k * width + j % PANEL]
    }

    /// The weight as a row-major `[n_in, n_out]` matrix.
    pub fn to_row_major(&self) -> Vec<f32> {
        let mut rows = Vec::with_capacity(self.n_in * self.n_out);
        for k in 0..self.n_in {
            rows.extend((0..self.n_out).map(|j| self.weight(k, j)));
        }
        rows
    }

    /// Panel `p` (`[n_in, width]`, row-major) and its width.
    fn panel(&self, p: usize) -> (&[f32], usize) {
        self.panels().panel(p)
    }

    /// The packed weight, as the fast kernel reads it.
    fn panels(&self) -> Panels<'_> {
        Panels {
            w: &self.w,
            n_in: self.n_in,
            n_out: self.n_out,
        }
    }

    /// Applies the layer to every row of `x`: `[n_seq, n_in] -> [n_seq, n_out]`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; x.len() / self.n_in * self.n_out];
        linear_columns(x, self, 0..self.n_out, &mut out, self.n_out, 0);
        out
    }
}

/// A `[n_in, n_out]` matrix packed in column panels (see [`Linear`]), borrowed: what the fast
/// kernel reads, whether the matrix is a layer's weight or the transposed token embedding.
#[derive(Clone, Copy)]
struct Panels<'a> {
    w: &'a [f32],
    n_in: usize,
    n_out: usize,
}

impl<'a> Panels<'a> {
    /// Panel `p` (`[n_in, width]`, row-major) and its width.
    fn panel(self, p: usize) -> (&'a [f32], usize) {
        let start = p * PANEL;
        let width = PANEL.min(self.n_out - start);
        let begin = start * self.n_in;
        (&self.w[begin..begin + self.n_in * width], width)
    }
}

/// The token-embedding matrix `wte` (`[n_vocab, n_embd]`), which GPT-2 uses twice: its row
/// `t` is token `t`'s embedding, and `x @ wte^T` gives the logits (the output layer is "tied"
/// to the input embedding).
///
/// **Layout, chosen for the logits.** The logits read all of `wte` once per token, the
/// largest single read of a decode step (31% of GPT-2 124M's bytes). So `wte` is stored as
/// `wte^T` (`[n_embd, n_vocab]`) packed in [`PANEL`]-column panels, exactly like a
/// [`Linear`] weight, and the logits run through the same fast kernel as every other matrix:
///
/// ```text
/// panel p = wte^T[:, 16p .. 16p + 16] = (wte[16p .. 16p + 16, :])^T     [n_embd, 16]
/// wte[t][k] = w[(t / 16) * 16 * n_embd + k * width + t % 16]         width = 16, or less for the last
/// ```
///
/// Panel `p` is the transpose of 16 consecutive rows of `wte`, so packing transposes each
/// block of 16 rows where it lies, without a second copy of the matrix. An embedding lookup
/// gathers one column of a panel ([`TokenEmbedding::row_into`]).
///
/// ```
/// use gpt2_edu::matrix::TokenEmbedding;
/// // wte = [[1, 2], [3, 4], [5, 6]]: 3 tokens, n_embd = 2
/// let wte = TokenEmbedding::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2);
/// assert_eq!(wte.row(1), vec![3.0, 4.0]);
/// assert_eq!(wte.logits(&[1.0, 10.0]), vec![21.0, 43.0, 65.0]); // x @ wte^T
/// assert_eq!(wte.to_row_major(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEmbedding {
    /// `wte^T`, `[n_embd, n_vocab]`, packed in column panels (see above).
    pub w: Vec<f32>,
    /// Vocabulary size: rows of `wte`.
    pub n_vocab: usize,
    /// Embedding width: columns of `wte`.
    pub n_embd: usize,
}

impl TokenEmbedding {
    /// The embedding from a row-major `[n_vocab, n_embd]` matrix, as checkpoints store it.
    /// Packs in place, one block of [`PANEL`] rows at a time.
    pub fn new(wte_row_major: Vec<f32>, n_vocab: usize, n_embd: usize) -> Self {
        let mut w = wte_row_major;
        if w.len() == n_vocab * n_embd {
            let mut block = Vec::with_capacity(PANEL * n_embd);
            for rows in w.chunks_mut(PANEL * n_embd) {
                // rows: [width, n_embd] -> its transpose [n_embd, width], in the same place.
                let width = rows.len() / n_embd;
                block.clear();
                block.extend_from_slice(rows);
                for (t, row) in block.chunks_exact(n_embd).enumerate() {
                    for (k, &value) in row.iter().enumerate() {
                        rows[k * width + t] = value;
                    }
                }
            }
        } // a wrong size is reported by Model::new's shape check
        Self { w, n_vocab, n_embd }
    }

    /// The product's view of `wte^T`.
    fn panels(&self) -> Panels<'_> {
        Panels {
            w: &self.w,
            n_in: self.n_embd,
            n_out: self.n_vocab,
        }
    }

    /// Appends token `t`'s embedding (row `t` of `wte`, `[n_embd]`) to `out`.
    pub fn row_into(&self, t: usize, out: &mut Vec<f32>) {
        let (panel, width) = self.panels().panel(t / PANEL);
        out.extend(panel.iter().skip(t % PANEL).step_by(width));
    }

    /// Token `t`'s embedding, `[n_embd]`.
    pub fn row(&self, t: usize) -> Vec<f32> {
        let mut row = Vec::with_capacity(self.n_embd);
        self.row_into(t, &mut row);
        row
    }

    /// `wte` as a row-major `[n_vocab, n_embd]` matrix.
    pub fn to_row_major(&self) -> Vec<f32> {
        let mut rows = Vec::with_capacity(self.w.len());
        for t in 0..self.n_vocab {
            self.row_into(t, &mut rows);
        }
        rows
    }

    /// The logits `x @ wte^T`: `[n_rows, n_embd] -> [n_rows, n_vocab]`, bit-identical to
    /// [`matmul_transposed`] with the row-major `wte`.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; x.len() / self.n_embd * self.n_vocab];
        self.logits_columns(x, 0..self.n_vocab, &mut out, self.n_vocab, 0);
        out
    }

    /// Columns `cols` of the logits, laid out as [`linear_columns`] lays out its result.
    pub fn logits_columns(
        &self,
        x: &[f32],
        cols: std::ops::Range<usize>,
        out: &mut [f32],
        out_stride: usize,
        out_col0: usize,
    ) {
        panel_columns(x, self.panels(), None, cols, out, out_stride, out_col0);
    }
}

/// Row-major `[n_in, n_out]` to column panels (see [`Linear`]).
fn pack_panels(w: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    debug_assert_eq!(w.len(), n_in * n_out);
    let mut packed = Vec::with_capacity(w.len());
    for start in (0..n_out).step_by(PANEL) {
        let end = (start + PANEL).min(n_out);
        for row in w.chunks_exact(n_out) {
            packed.extend_from_slice(&row[start..end]);
        }
    }
    packed
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

// ---------------------------------------------------------------------------------------
// Fast kernels. Same results as the plain ones above (bit for bit for `linear_columns` and
// `TokenEmbedding::logits_columns`, which keep the plain summation order; `dot_fast` sums in
// a different, but fixed, order), made fast by streaming memory in order, keeping partial
// sums in registers, and working on any range of output columns so that threads can split a
// product without splitting any sum.
// ---------------------------------------------------------------------------------------

/// Columns `cols` of `x @ W + b` for every row of `x` (`[n_rows, n_in]`), written to
/// `out[i * out_stride + (j - out_col0)]` for row `i` and column `j`. `cols` must start at a
/// panel boundary (a multiple of [`PANEL`]).
///
/// Each element is summed exactly as [`linear`] sums it (over `k` ascending, starting from 0,
/// bias last), whatever the range, the number of rows or the thread computing it, so results
/// are bit-identical to the plain kernel. Rows go through each panel two at a time (prefill)
/// or one at a time (decoding), with the panel's 16 partial sums per row in registers.
pub fn linear_columns(
    x: &[f32],
    lin: &Linear,
    cols: std::ops::Range<usize>,
    out: &mut [f32],
    out_stride: usize,
    out_col0: usize,
) {
    let bias = Some(&lin.b[..]);
    panel_columns(x, lin.panels(), bias, cols, out, out_stride, out_col0);
}

/// [`linear_columns`] for any panel-packed matrix, with or without a bias.
fn panel_columns(
    x: &[f32],
    lin: Panels,
    bias: Option<&[f32]>,
    cols: std::ops::Range<usize>,
    out: &mut [f32],
    out_stride: usize,
    out_col0: usize,
) {
    debug_assert_eq!(x.len() % lin.n_in, 0, "x must be [n_rows, n_in]");
    debug_assert!(cols.start % PANEL == 0 && cols.end <= lin.n_out && cols.start >= out_col0);
    let n_in = lin.n_in;
    let n_rows = x.len() / n_in;
    let panels = cols.start / PANEL..cols.end.div_ceil(PANEL);
    let out_at = |row: usize, p: usize| row * out_stride + p * PANEL - out_col0;
    // Sums for columns `j0..` into `dst`, the bias added last as `linear` adds it (without a
    // bias the sums are kept as they are: adding 0.0 would turn -0.0 into +0.0).
    let store = |dst: &mut [f32], sums: &[f32], j0: usize| match bias {
        Some(b) => {
            for ((o, &s), &b) in dst.iter_mut().zip(sums).zip(&b[j0..]) {
                *o = s + b;
            }
        }
        None => dst.copy_from_slice(&sums[..dst.len()]),
    };
    if n_rows == 1 {
        // Decoding: four full panels per pass, so 64 partial sums are in flight at once (one
        // panel's 16 sums would each wait for the previous addition of the same sum), and
        // four streams of memory are read side by side.
        let mut p = panels.start;
        while p + 4 <= panels.end && (p + 4) * PANEL <= lin.n_out {
            let sums = panels_1x64(x, std::array::from_fn(|i| lin.panel(p + i).0));
            let dst = &mut out[out_at(0, p)..out_at(0, p) + 4 * PANEL];
            store(dst, sums.as_flattened(), p * PANEL);
            p += 4;
        }
        for p in p..panels.end {
            let (panel, width) = lin.panel(p);
            let mut sums = [0.0; PANEL];
            panel_row(x, panel, width, &mut sums[..width]);
            store(&mut out[out_at(0, p)..][..width], &sums, p * PANEL);
        }
        return;
    }
    for p in panels {
        let (panel, width) = lin.panel(p);
        let mut row = 0;
        if width == PANEL {
            // Prefill: two rows per pass, each weight loaded once for both.
            while row + 2 <= n_rows {
                let sums = panel_2x16(&x[row * n_in..(row + 2) * n_in], panel);
                for (r, row_sums) in sums.iter().enumerate() {
                    store(&mut out[out_at(row + r, p)..][..PANEL], row_sums, p * PANEL);
                }
                row += 2;
            }
        }
        for r in row..n_rows {
            let mut sums = [0.0; PANEL];
            panel_row(
                &x[r * n_in..(r + 1) * n_in],
                panel,
                width,
                &mut sums[..width],
            );
            store(&mut out[out_at(r, p)..][..width], &sums, p * PANEL);
        }
    }
}

/// One row of `x` through four full panels at once: 64 partial sums.
fn panels_1x64(x_row: &[f32], panels: [&[f32]; 4]) -> [[f32; PANEL]; 4] {
    let mut sums = [[0.0f32; PANEL]; 4];
    for (k, &x_k) in x_row.iter().enumerate() {
        for (panel_sums, panel) in sums.iter_mut().zip(&panels) {
            for (s, &w) in panel_sums
                .iter_mut()
                .zip(&panel[k * PANEL..(k + 1) * PANEL])
            {
                *s += x_k * w;
            }
        }
    }
    sums
}

/// One row of `x` through one panel (`[n_in, width]`): `out[c] = sum_k x[k] panel[k][c]`.
fn panel_row(x_row: &[f32], panel: &[f32], width: usize, out: &mut [f32]) {
    if width == PANEL {
        let mut sums = [0.0f32; PANEL]; // four SSE registers
        for (&x_k, w_k) in x_row.iter().zip(panel.chunks_exact(PANEL)) {
            for (s, &w) in sums.iter_mut().zip(w_k) {
                *s += x_k * w;
            }
        }
        out.copy_from_slice(&sums);
    } else {
        out.fill(0.0);
        for (&x_k, w_k) in x_row.iter().zip(panel.chunks_exact(width)) {
            for (s, &w) in out.iter_mut().zip(w_k) {
                *s += x_k * w;
            }
        }
    }
}

/// Two rows of `x` (`[2, n_in]`) through one full panel: 32 partial sums in registers, each
/// weight loaded once for both rows.
fn panel_2x16(x_rows: &[f32], panel: &[f32]) -> [[f32; PANEL]; 2] {
    let (x0, x1) = x_rows.split_at(x_rows.len() / 2);
    let mut sums = [[0.0f32; PANEL]; 2];
    for ((&a, &b), w_k) in x0.iter().zip(x1).zip(panel.chunks_exact(PANEL)) {
        let [row_a, row_b] = &mut sums;
        for ((sa, sb), &w) in row_a.iter_mut().zip(row_b.iter_mut()).zip(w_k) {
            *sa += a * w;
            *sb += b * w;
        }
    }
    sums
}

/// Partial sums kept side by side by [`dot_fast`]: 16 lanes, four SSE registers.
const LANES: usize = 16;

/// The dot product, fast: 16 independent partial sums (so additions need not wait for each
/// other), combined in a fixed order, then the leftover elements. Not bit-identical to
/// [`dot`], but always the same for the same inputs.
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

    /// A random layer of the given shape, its weights in [-1, 1).
    fn random_linear(n_in: usize, n_out: usize, seed: u64) -> Linear {
        let mut rng = crate::rng::XorShift64::new(seed).unwrap();
        let mut draw = |n: usize| {
            (0..n)
                .map(|_| rng.next_f32() * 2.0 - 1.0)
                .collect::<Vec<f32>>()
        };
        Linear {
            w: draw(n_in * n_out),
            b: draw(n_out),
            n_in,
            n_out,
        }
    }

    #[test]
    fn fast_linear_equals_the_plain_kernel_bit_for_bit_on_odd_sizes() {
        for (n_rows, n_in, n_out) in [
            (1, 7, 1),
            (3, 33, 7),
            (4, 5, 33),
            (9, 64, 33),
            (1, 768, 768),
            (6, 769, 50),
            (5, 16, 50257),
        ] {
            let lin = random_linear(n_in, n_out, (n_rows * n_in + n_out) as u64);
            let x: Vec<f32> = random_linear(n_rows, n_in, 99).w;
            let plain = linear(&x, &lin.to_row_major(), &lin.b, n_in, n_out);
            // All columns at once, then split into uneven ranges as threads would.
            let mut fast = vec![f32::NAN; n_rows * n_out];
            linear_columns(&x, &lin, 0..n_out, &mut fast, n_out, 0);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&plain), "{n_rows}x{n_in}x{n_out}");
            let cut = n_out / 3 / PANEL * PANEL;
            let mut split = vec![f32::NAN; n_rows * n_out];
            linear_columns(&x, &lin, cut..n_out, &mut split, n_out, 0);
            let mut part = vec![f32::NAN; n_rows * cut];
            linear_columns(&x, &lin, 0..cut, &mut part, cut, 0);
            for r in 0..n_rows {
                split[r * n_out..r * n_out + cut].copy_from_slice(&part[r * cut..(r + 1) * cut]);
            }
            assert_eq!(bits(&split), bits(&plain), "split {n_rows}x{n_in}x{n_out}");
        }
    }

    #[test]
    fn fast_dot_is_close_to_the_plain_dot_on_odd_sizes() {
        for (n, seed) in [
            (1, 1),
            (7, 2),
            (15, 3),
            (16, 4),
            (33, 5),
            (768, 6),
            (50257, 7),
        ] {
            let a = random_linear(1, n, seed).w;
            let b = random_linear(1, n, seed + 100).w;
            let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let scale: f64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| (x as f64 * y as f64).abs())
                .sum();
            for value in [dot(&a, &b), dot_fast(&a, &b)] {
                // Both are within f32 rounding of the exact sum: n * eps * sum |a_i b_i|.
                assert!(
                    (value as f64 - exact).abs() <= n as f64 * 6e-8 * scale,
                    "n = {n}"
                );
            }
        }
    }

    #[test]
    fn packed_embedding_rows_and_logits_equal_the_plain_ones_bit_for_bit() {
        for (n_rows, n_vocab, n_embd) in [
            (1, 1, 7),
            (2, 7, 1),
            (1, 33, 16),
            (3, 50, 33),
            (1, 768, 64),
            (1, 50257, 8),
        ] {
            let wte_rows = random_linear(n_vocab, n_embd, (n_vocab + n_embd) as u64).w;
            let wte = TokenEmbedding::new(wte_rows.clone(), n_vocab, n_embd);
            assert_eq!(wte.to_row_major(), wte_rows, "{n_vocab}x{n_embd}");
            let last = n_vocab - 1;
            assert_eq!(wte.row(last), wte_rows[last * n_embd..].to_vec());
            let x = random_linear(n_rows, n_embd, 7).w;
            let plain = matmul_transposed(&x, &wte_rows, n_embd, n_vocab);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&wte.logits(&x)), bits(&plain), "{n_vocab}x{n_embd}");
            // A share of the columns, as a thread computes it.
            let cut = n_vocab / 2 / PANEL * PANEL;
            let mut part = vec![f32::NAN; n_rows * (n_vocab - cut)];
            wte.logits_columns(&x, cut..n_vocab, &mut part, n_vocab - cut, cut);
            for (r, part_row) in part.chunks_exact(n_vocab - cut).enumerate() {
                assert_eq!(
                    bits(part_row),
                    bits(&plain[r * n_vocab + cut..(r + 1) * n_vocab])
                );
            }
        }
    }

    #[test]
    fn columns_cuts_a_head() {
        let m = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]; // [2, 4]
        assert_eq!(columns(&m, 4, 2..4), vec![2.0, 3.0, 6.0, 7.0]);
    }
}
