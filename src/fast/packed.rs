//! Weights packed for the matrix-vector product, and the kernels that read them.
//!
//! Decoding computes `x @ W` for one row `x`, which reads all of `W` once, so the engine
//! stores `W` (`[n_in, n_out]`) the way that product reads it: cut into *panels* of
//! [`PANEL`] columns, each panel a contiguous `[n_in, width]` row-major block (`width` is
//! 16, or less for the last panel):
//!
//! ```text
//! W [n_in, n_out]  ->  panels = [panel 0: W[:, 0..16] | panel 1: W[:, 16..32] | ...]
//! W[k][j] = panels[(j / 16) * 16 * n_in + k * width + j % 16]
//! ```
//!
//! A thread computing a range of output columns then reads one contiguous stretch of
//! memory, 64 bytes per row of `W`, keeping its 16 partial sums in registers.
//!
//! **Exact.** Every output element is summed exactly as the plain `matrix::linear` sums it:
//! over `k` ascending, starting from `0.0`, the bias added last. So the kernels here give
//! the plain kernel's bits, whatever range of columns, number of rows or thread computes
//! them (tested below, on odd sizes, split as threads split them).

use std::fmt;
use std::ops::Range;

use crate::matrix::Linear;

/// Columns per weight panel: 16 floats, one 64-byte cache line per row of a panel.
pub const PANEL: usize = 16;

/// Where a share of a product's output columns goes: column `j` of row `i` is written to
/// `data[i * stride + j - col0]`. A thread computing columns `c0..c1` of an `n_out`-wide
/// product into its own buffer has `stride = c1 - c0, col0 = c0`; the whole product into
/// the caller's matrix has `stride = n_out, col0 = 0`.
pub struct OutColumns<'a> {
    /// The output rows, or the part of them this share fills.
    pub data: &'a mut [f32],
    /// Floats per row of `data`.
    pub stride: usize,
    /// The first column `data` holds.
    pub col0: usize,
}

impl OutColumns<'_> {
    /// Row `row`'s columns `cols`.
    pub fn at(&mut self, row: usize, cols: Range<usize>) -> &mut [f32] {
        let start = row * self.stride + cols.start - self.col0;
        &mut self.data[start..start + cols.len()]
    }
}

/// A matrix `W` (`[n_in, n_out]`) packed in column panels, with an optional bias `[n_out]`:
/// the engine's form of a [`Linear`] (`x @ W + b`), and of the transposed token embedding
/// (`x @ wte^T`, no bias). Private fields: the stored layout is not the documented
/// row-major one, so it is only read through the methods.
#[derive(Clone, PartialEq)]
pub struct PackedLinear {
    panels: Vec<f32>,
    bias: Option<Vec<f32>>,
    n_in: usize,
    n_out: usize,
}

impl fmt::Debug for PackedLinear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackedLinear")
            .field("n_in", &self.n_in)
            .field("n_out", &self.n_out)
            .field("bias", &self.bias.is_some())
            .finish_non_exhaustive()
    }
}

impl PackedLinear {
    /// Packs a layer's row-major `[n_in, n_out]` weight, in place (see
    /// [`pack_with`](Self::pack_with)).
    pub fn pack(layer: Linear) -> Self {
        Self::pack_with(layer, &mut Vec::new())
    }

    /// Packs a layer's row-major `[n_in, n_out]` weight in its own memory: the panels are
    /// laid out in `scratch` (reused from matrix to matrix, so no new memory is touched),
    /// then copied back over the row-major values. Row by row, so the source streams: row
    /// `k`'s columns `16p..` go to row `k` of panel `p`.
    pub fn pack_with(layer: Linear, scratch: &mut Vec<f32>) -> Self {
        let (n_in, n_out) = (layer.n_in(), layer.n_out());
        let Linear { w: mut panels, b } = layer;
        scratch.resize(panels.len(), 0.0);
        for (k, row) in panels.chunks_exact(n_out).enumerate() {
            for (p, part) in row.chunks(PANEL).enumerate() {
                let at = p * PANEL * n_in + k * part.len();
                scratch[at..at + part.len()].copy_from_slice(part);
            }
        }
        panels.copy_from_slice(scratch);
        Self { panels, bias: Some(b), n_in, n_out }
    }

    /// Packs `m^T` for a row-major `m` of `[n_rows, n_cols]`, in place: the logits' form of
    /// `wte` (`[n_vocab, n_embd]` becomes `wte^T`, `[n_embd, n_vocab]`, no bias). Panel `p`
    /// is the transpose of rows `16p..16p + 16` of `m`, so each block of 16 rows is
    /// transposed where it lies, without a second copy of the matrix.
    pub fn pack_transposed(m: Vec<f32>, n_rows: usize, n_cols: usize) -> Self {
        debug_assert_eq!(m.len(), n_rows * n_cols);
        let mut panels = m;
        let mut block = Vec::with_capacity(PANEL * n_cols);
        for rows in panels.chunks_mut(PANEL * n_cols.max(1)) {
            // rows: [width, n_cols] -> its transpose [n_cols, width], in the same place.
            let width = rows.len() / n_cols.max(1);
            block.clear();
            block.extend_from_slice(rows);
            for (t, row) in block.chunks_exact(n_cols.max(1)).enumerate() {
                for (k, &value) in row.iter().enumerate() {
                    rows[k * width + t] = value;
                }
            }
        }
        Self { panels, bias: None, n_in: n_cols, n_out: n_rows }
    }

    /// Input width: rows of `W`.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Output width: columns of `W`.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// Panel `p` (`[n_in, width]`, row-major) and its width.
    fn panel(&self, p: usize) -> (&[f32], usize) {
        let start = p * PANEL;
        let width = PANEL.min(self.n_out - start);
        let begin = start * self.n_in;
        (&self.panels[begin..begin + self.n_in * width], width)
    }

    /// Appends column `j` of `W` (`[n_in]`) to `out`: for the packed `wte^T`, row `j` of
    /// `wte`, the embedding of token `j`.
    pub fn column_into(&self, j: usize, out: &mut Vec<f32>) {
        let (panel, width) = self.panel(j / PANEL);
        out.extend(panel.iter().skip(j % PANEL).step_by(width));
    }

    /// `W` as a row-major `[n_in, n_out]` matrix (for tests and inspection).
    pub fn to_row_major(&self) -> Vec<f32> {
        let mut columns = Vec::with_capacity(self.panels.len()); // [n_out, n_in]
        for j in 0..self.n_out {
            self.column_into(j, &mut columns);
        }
        let mut rows = vec![0.0; columns.len()];
        for (j, column) in columns.chunks_exact(self.n_in.max(1)).enumerate() {
            for (k, &w) in column.iter().enumerate() {
                rows[k * self.n_out + j] = w;
            }
        }
        rows
    }

    /// `x @ W (+ b)` for every row of `x`: `[n_rows, n_in] -> [n_rows, n_out]`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; x.len() / self.n_in.max(1) * self.n_out];
        let stride = self.n_out;
        self.columns_into(x, 0..self.n_out, OutColumns { data: &mut out, stride, col0: 0 });
        out
    }

    /// Columns `cols` of `x @ W (+ b)` for every row of `x` (`[n_rows, n_in]`), into `out`.
    /// `cols` must start at a panel boundary (a multiple of [`PANEL`]). Rows go through each
    /// panel two at a time (prefill) or, for a single row (decoding), four panels at once.
    pub fn columns_into(&self, x: &[f32], cols: Range<usize>, mut out: OutColumns) {
        debug_assert_eq!(x.len() % self.n_in.max(1), 0, "x must be [n_rows, n_in]");
        debug_assert!(cols.start % PANEL == 0 && cols.end <= self.n_out);
        let panels = cols.start / PANEL..cols.end.div_ceil(PANEL);
        if x.len() == self.n_in {
            self.decode_row(x, panels, &mut out);
        } else {
            self.prefill_rows(x, panels, &mut out);
        }
    }

    /// One row through `panels`: four full panels per pass, so 64 partial sums are in
    /// flight at once (one panel's 16 sums would each wait for the previous addition of the
    /// same sum) and four streams of memory are read side by side; then one at a time.
    fn decode_row(&self, x: &[f32], panels: Range<usize>, out: &mut OutColumns) {
        let mut p = panels.start;
        while p + 4 <= panels.end && (p + 4) * PANEL <= self.n_out {
            let sums = panels_1x64(x, std::array::from_fn(|i| self.panel(p + i).0));
            let cols = p * PANEL..(p + 4) * PANEL;
            self.store(out.at(0, cols.clone()), sums.as_flattened(), cols.start);
            p += 4;
        }
        for p in p..panels.end {
            let (panel, width) = self.panel(p);
            let mut sums = [0.0; PANEL];
            panel_row(x, panel, width, &mut sums[..width]);
            self.store(out.at(0, p * PANEL..p * PANEL + width), &sums, p * PANEL);
        }
    }

    /// Every row of `x` through `panels`, two rows per pass through a full panel (each
    /// weight loaded once for both), then any odd row alone.
    fn prefill_rows(&self, x: &[f32], panels: Range<usize>, out: &mut OutColumns) {
        let n_in = self.n_in;
        let n_rows = x.len() / n_in.max(1);
        for p in panels {
            let (panel, width) = self.panel(p);
            let cols = p * PANEL..p * PANEL + width;
            let mut row = 0;
            while width == PANEL && row + 2 <= n_rows {
                let sums = panel_2x16(&x[row * n_in..(row + 2) * n_in], panel);
                for (r, row_sums) in sums.iter().enumerate() {
                    self.store(out.at(row + r, cols.clone()), row_sums, cols.start);
                }
                row += 2;
            }
            for r in row..n_rows {
                let mut sums = [0.0; PANEL];
                panel_row(&x[r * n_in..(r + 1) * n_in], panel, width, &mut sums[..width]);
                self.store(out.at(r, cols.clone()), &sums, cols.start);
            }
        }
    }

    /// Sums for columns `j0..` into `dst`, the bias added last as `linear` adds it. Without
    /// a bias the sums are kept as they are (adding 0.0 would turn -0.0 into +0.0).
    fn store(&self, dst: &mut [f32], sums: &[f32], j0: usize) {
        match &self.bias {
            Some(b) => {
                for ((o, &s), &b) in dst.iter_mut().zip(sums).zip(&b[j0..]) {
                    *o = s + b;
                }
            }
            None => dst.copy_from_slice(&sums[..dst.len()]),
        }
    }
}

/// One row of `x` through four full panels at once: 64 partial sums.
fn panels_1x64(x_row: &[f32], panels: [&[f32]; 4]) -> [[f32; PANEL]; 4] {
    let mut sums = [[0.0f32; PANEL]; 4];
    for (k, &x_k) in x_row.iter().enumerate() {
        for (panel_sums, panel) in sums.iter_mut().zip(&panels) {
            let w_k = &panel[k * PANEL..(k + 1) * PANEL];
            for (s, &w) in panel_sums.iter_mut().zip(w_k) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{linear, matmul_transposed};

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// `n` draws in [-1, 1).
    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::XorShift64::new(seed).unwrap();
        (0..n).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
    }

    /// Columns `0..cut` and `cut..n_out` computed apart, as two threads would, then joined.
    fn in_two_shares(packed: &PackedLinear, x: &[f32], cut: usize) -> Vec<f32> {
        let (n_rows, n_out) = (x.len() / packed.n_in(), packed.n_out());
        let mut joined = vec![f32::NAN; n_rows * n_out];
        let tail = OutColumns { data: &mut joined, stride: n_out, col0: 0 };
        packed.columns_into(x, cut..n_out, tail);
        let mut head = vec![f32::NAN; n_rows * cut];
        packed.columns_into(x, 0..cut, OutColumns { data: &mut head, stride: cut, col0: 0 });
        if cut > 0 {
            for (r, part) in head.chunks_exact(cut).enumerate() {
                joined[r * n_out..r * n_out + cut].copy_from_slice(part);
            }
        }
        joined
    }

    #[test]
    fn packed_linear_equals_the_plain_kernel_bit_for_bit_on_odd_sizes() {
        for (n_rows, n_in, n_out) in [
            (1, 7, 1),
            (3, 33, 7),
            (4, 5, 33),
            (9, 64, 33),
            (1, 768, 768),
            (6, 769, 50),
            (5, 16, 50257),
        ] {
            let seed = (n_rows * n_in + n_out) as u64;
            let layer = Linear { w: random(n_in * n_out, seed), b: random(n_out, seed + 1) };
            let x = random(n_rows * n_in, 99);
            let plain = linear(&x, &layer.w, &layer.b);
            let packed = PackedLinear::pack(layer.clone());
            assert_eq!(packed.to_row_major(), layer.w, "{n_in}x{n_out} unpacks");
            let what = format!("{n_rows}x{n_in}x{n_out}");
            assert_eq!(bits(&packed.forward(&x)), bits(&plain), "{what}");
            let cut = n_out / 3 / PANEL * PANEL;
            assert_eq!(bits(&in_two_shares(&packed, &x, cut)), bits(&plain), "split {what}");
        }
    }

    #[test]
    fn packed_embedding_rows_and_logits_equal_the_plain_ones_bit_for_bit() {
        for (n_rows, n_vocab, n_embd) in
            [(1, 1, 7), (2, 7, 1), (1, 33, 16), (3, 50, 33), (1, 768, 64), (1, 50257, 8)]
        {
            let wte = random(n_vocab * n_embd, (n_vocab + n_embd) as u64);
            let packed = PackedLinear::pack_transposed(wte.clone(), n_vocab, n_embd);
            let mut row = Vec::new();
            packed.column_into(n_vocab - 1, &mut row);
            assert_eq!(row, wte[(n_vocab - 1) * n_embd..].to_vec(), "the last token's row");
            let x = random(n_rows * n_embd, 7);
            let plain = matmul_transposed(&x, &wte, n_embd, n_vocab);
            let what = format!("{n_vocab}x{n_embd}");
            assert_eq!(bits(&packed.forward(&x)), bits(&plain), "{what}");
            let cut = n_vocab / 2 / PANEL * PANEL;
            assert_eq!(bits(&in_two_shares(&packed, &x, cut)), bits(&plain), "split {what}");
        }
    }
}
