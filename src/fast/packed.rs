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
//! memory, one row of 16 weights after another, keeping its 16 partial sums in registers.
//!
//! **Three dtypes, one layout** ([`Dtype`], `quant`). The panels hold f32s or bf16s
//! (`u16`) at the same indices. Q8 adds one scale per block of 32 rows and column, and
//! stores each panel block by block: the block's 32 rows of bytes (`i8`, `[32, width]`,
//! fewer rows for the last block), then its `width` scales as little-endian f32 bytes:
//!
//! ```text
//! Q8 panel p = [ q rows 0..32 | 16 scales | q rows 32..64 | 16 scales | ... ]
//! q(k, j)     = bytes[(j / 16) * 16 * B + (k / 32) * 36 * width + (k % 32) * width + j % 16]
//!               with B = n_in + 4 * n_blocks, the bytes of one column
//! ```
//!
//! So a block's scales arrive in the same stream of memory as its weights, and the
//! hardware prefetcher fetches them along: kept apart, as 16 more streams read a cache
//! line at a time, waiting for them cost q8 decoding about a fifth of its speed.
//!
//! Every kernel is written once, generic over how a panel's stored numbers are read back
//! as the factors they stand for ([`Panel::widen`]: an f32 as it is, a bf16 widened by a
//! shift, a Q8 byte converted to f32) and over how they are summed ([`Panel::GROUP`],
//! [`Panel::add_product`], [`Panel::finish`]). LLVM turns each row of 16 into a few vector
//! instructions.
//!
//! **Exact.** Every output element is summed exactly as the reference sums it: f32 and
//! bf16 as the plain `matrix::linear` sums the weights' f32 values (over `k` ascending,
//! starting from `0.0`, the bias added last), Q8 as `quant::Q8Matrix::matmul` does (block
//! by block, fused multiply-adds, then the bias). So the kernels here give the reference's
//! bits, whatever range of columns, number of rows or thread computes them (tested below,
//! on odd sizes, split as threads split them, for every dtype).

use std::fmt;
use std::ops::Range;

use crate::matrix::Linear;
use crate::quant::{
    Dtype, Q8_BLOCK, Q8Matrix, bf16_from_f32, f32_from_bf16, q8_dequantize, q8_quantize, q8_scale,
};

/// Columns per weight panel: 16 weights, one 64-byte cache line per row of an f32 panel.
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

/// The panels' numbers, in one of the three dtypes.
#[derive(Clone, PartialEq)]
enum Stored {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
    /// Panel by panel, block by block: a block's rows of `q` (`[32, width]`, or fewer rows
    /// for the last block), then its `width` scales as little-endian f32 bytes.
    Q8(Vec<i8>),
}

/// A matrix `W` (`[n_in, n_out]`) packed in column panels, in one [`Dtype`], with an
/// optional bias `[n_out]` (always f32): the engine's form of a [`Linear`] (`x @ W + b`),
/// and of the transposed token embedding (`x @ wte^T`, no bias). Private fields: the stored
/// layout is not the documented row-major one, so it is only read through the methods.
#[derive(Clone, PartialEq)]
pub struct PackedLinear {
    stored: Stored,
    bias: Option<Vec<f32>>,
    n_in: usize,
    n_out: usize,
}

impl fmt::Debug for PackedLinear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackedLinear")
            .field("n_in", &self.n_in)
            .field("n_out", &self.n_out)
            .field("dtype", &self.dtype())
            .field("bias", &self.bias.is_some())
            .finish_non_exhaustive()
    }
}

impl PackedLinear {
    /// Packs a layer's row-major `[n_in, n_out]` weight as f32, in place (see
    /// [`pack_with`](Self::pack_with)).
    pub fn pack(layer: Linear) -> Self {
        Self::pack_with(layer, Dtype::F32, &mut Vec::new())
    }

    /// Packs a layer's row-major `[n_in, n_out]` weight in `dtype`. The f32 panels are laid
    /// out in `scratch` (reused from matrix to matrix, so no new memory is touched), then
    /// copied back over the row-major values, which for bf16 and q8 are then converted
    /// panel by panel into the smaller form. Row by row, so the source streams: row `k`'s
    /// columns `16p..` go to row `k` of panel `p`. A layer that already holds its Q8 blocks
    /// ([`Linear::q8`]) keeps them in Q8 (laid out in panels, not quantized again); in
    /// another dtype its `w` (the values they stand for) is packed.
    pub fn pack_with(layer: Linear, dtype: Dtype, scratch: &mut Vec<f32>) -> Self {
        let (n_in, n_out) = (layer.n_in(), layer.n_out());
        let Linear { w: mut panels, b, q8 } = layer;
        if let (Some(q8), Dtype::Q8) = (q8, dtype) {
            let stored = q8_in_panels(&q8);
            return Self { stored, bias: Some(b), n_in, n_out };
        }
        scratch.resize(panels.len(), 0.0);
        for (k, row) in panels.chunks_exact(n_out).enumerate() {
            for (p, part) in row.chunks(PANEL).enumerate() {
                let at = p * PANEL * n_in + k * part.len();
                scratch[at..at + part.len()].copy_from_slice(part);
            }
        }
        panels.copy_from_slice(scratch);
        let stored = convert(panels, n_in, n_out, dtype);
        Self { stored, bias: Some(b), n_in, n_out }
    }

    /// Packs a matrix already in Q8 (such as `wte^T`'s blocks, `[n_embd, n_vocab]`, of a
    /// model stored in Q8), with no bias.
    pub fn pack_q8(q8: &Q8Matrix) -> Self {
        let (n_in, n_out) = (q8.n_in(), q8.n_out);
        Self { stored: q8_in_panels(q8), bias: None, n_in, n_out }
    }

    /// Packs `m^T` for a row-major `m` of `[n_rows, n_cols]` in `dtype`: the logits' form of
    /// `wte` (`[n_vocab, n_embd]` becomes `wte^T`, `[n_embd, n_vocab]`, no bias; Q8 blocks
    /// are 32 numbers of one row of `m`). Panel `p` is the transpose of rows `16p..16p + 16`
    /// of `m`, so each block of 16 rows is transposed where it lies, without a second copy
    /// of the matrix.
    pub fn pack_transposed(m: Vec<f32>, n_rows: usize, n_cols: usize, dtype: Dtype) -> Self {
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
        let stored = convert(panels, n_cols, n_rows, dtype);
        Self { stored, bias: None, n_in: n_cols, n_out: n_rows }
    }

    /// Input width: rows of `W`.
    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Output width: columns of `W`.
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// How the weights are stored.
    pub fn dtype(&self) -> Dtype {
        match self.stored {
            Stored::F32(_) => Dtype::F32,
            Stored::Bf16(_) => Dtype::Bf16,
            Stored::Q8(_) => Dtype::Q8,
        }
    }

    /// Bytes a product reads: the weights in their dtype (Q8's scales included) and the
    /// f32 bias.
    pub fn bytes(&self) -> usize {
        let bias = self.bias.as_ref().map_or(0, |b| 4 * b.len());
        self.dtype().matrix_bytes(self.n_in, self.n_out) + bias
    }

    /// The columns of panel `p` of f32 or bf16 weights, and where it starts.
    fn panel_at(&self, p: usize) -> (usize, usize) {
        (PANEL.min(self.n_out - p * PANEL), p * PANEL * self.n_in)
    }

    /// Appends column `j` of `W` (`[n_in]`, the f32 values it stands for) to `out`: for the
    /// packed `wte^T`, row `j` of `wte`, the embedding of token `j`.
    pub fn column_into(&self, j: usize, out: &mut Vec<f32>) {
        let (p, c) = (j / PANEL, j % PANEL);
        match &self.stored {
            Stored::F32(w) => out.extend((0..self.n_in).map(|k| self.f32_panel(w, p).factor(k, c))),
            Stored::Bf16(w) => {
                out.extend((0..self.n_in).map(|k| self.bf16_panel(w, p).factor(k, c)))
            }
            Stored::Q8(bytes) => {
                out.extend((0..self.n_in).map(|k| self.q8_panel(bytes, p).value(k, c)))
            }
        }
    }

    /// `W` as a row-major `[n_in, n_out]` matrix of the f32 values it stands for (for tests
    /// and inspection).
    pub fn to_row_major(&self) -> Vec<f32> {
        let mut columns = Vec::with_capacity(self.n_in * self.n_out); // [n_out, n_in]
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
    /// panel two at a time (prefill) or, for a single row (decoding), eight panels at once.
    pub fn columns_into(&self, x: &[f32], cols: Range<usize>, mut out: OutColumns) {
        debug_assert_eq!(x.len() % self.n_in.max(1), 0, "x must be [n_rows, n_in]");
        debug_assert!(cols.start.is_multiple_of(PANEL) && cols.end <= self.n_out);
        let panels = cols.start / PANEL..cols.end.div_ceil(PANEL);
        match &self.stored {
            Stored::F32(w) => self.run(x, panels, &mut out, |p| self.f32_panel(w, p)),
            Stored::Bf16(w) => self.run(x, panels, &mut out, |p| self.bf16_panel(w, p)),
            Stored::Q8(bytes) => self.run(x, panels, &mut out, |p| self.q8_panel(bytes, p)),
        }
    }

    fn f32_panel<'a>(&self, w: &'a [f32], p: usize) -> F32Panel<'a> {
        let (width, at) = self.panel_at(p);
        F32Panel { w: &w[at..at + self.n_in * width], width }
    }

    fn bf16_panel<'a>(&self, w: &'a [u16], p: usize) -> Bf16Panel<'a> {
        let (width, at) = self.panel_at(p);
        Bf16Panel { w: &w[at..at + self.n_in * width], width }
    }

    fn q8_panel<'a>(&self, bytes: &'a [i8], p: usize) -> Q8Panel<'a> {
        let width = PANEL.min(self.n_out - p * PANEL);
        let per_column = q8_column_bytes(self.n_in);
        let at = p * PANEL * per_column;
        Q8Panel { bytes: &bytes[at..at + width * per_column], width, n_in: self.n_in }
    }

    /// The product on panels read through `panel(p)`: the decode or the prefill kernel.
    fn run<'a, P: Panel<'a>>(
        &self,
        x: &[f32],
        panels: Range<usize>,
        out: &mut OutColumns,
        panel: impl Fn(usize) -> P,
    ) {
        if x.len() == self.n_in {
            self.decode_row(x, panels, out, panel);
        } else {
            self.prefill_rows(x, panels, out, panel);
        }
    }

    /// One row through `panels`: [`SIDE_BY_SIDE`] full panels per pass, then one at a time.
    fn decode_row<'a, P: Panel<'a>>(
        &self,
        x: &[f32],
        panels: Range<usize>,
        out: &mut OutColumns,
        panel: impl Fn(usize) -> P,
    ) {
        let (mut p, n) = (panels.start, SIDE_BY_SIDE);
        while p + n <= panels.end && (p + n) * PANEL <= self.n_out {
            let sums = panels_1xn(x, std::array::from_fn(|i| panel(p + i)));
            let cols = p * PANEL..(p + n) * PANEL;
            self.store(out.at(0, cols.clone()), sums.as_flattened(), cols.start);
            p += n;
        }
        for p in p..panels.end {
            let panel = panel(p);
            let width = panel.width();
            let mut sums = [0.0; PANEL];
            panel_row(x, panel, &mut sums[..width]);
            self.store(out.at(0, p * PANEL..p * PANEL + width), &sums, p * PANEL);
        }
    }

    /// Every row of `x` through `panels`: eight rows per pass through a full panel (each
    /// weight loaded once for all eight, whose sums are eight independent chains of
    /// additions), then two at a time, then any odd row alone.
    fn prefill_rows<'a, P: Panel<'a>>(
        &self,
        x: &[f32],
        panels: Range<usize>,
        out: &mut OutColumns,
        panel: impl Fn(usize) -> P,
    ) {
        let n_in = self.n_in;
        let n_rows = x.len() / n_in.max(1);
        for p in panels {
            let panel = panel(p);
            let width = panel.width();
            let cols = p * PANEL..p * PANEL + width;
            let mut row = 0;
            if width == PANEL {
                let (rows, cols) = (row..n_rows, cols.clone());
                row = self.rows_through::<P, PREFILL_ROWS>(x, panel, cols.clone(), out, rows);
                row = self.rows_through::<P, 2>(x, panel, cols, out, row..n_rows);
            }
            for r in row..n_rows {
                let mut sums = [0.0; PANEL];
                panel_row(&x[r * n_in..(r + 1) * n_in], panel, &mut sums[..width]);
                self.store(out.at(r, cols.clone()), &sums, cols.start);
            }
        }
    }

    /// Rows `rows` of `x`, `R` at a time while `R` are left, through the full panel
    /// `panel` (columns `cols`); returns the first row not done.
    #[inline(always)]
    fn rows_through<'a, P: Panel<'a>, const R: usize>(
        &self,
        x: &[f32],
        panel: P,
        cols: Range<usize>,
        out: &mut OutColumns,
        rows: Range<usize>,
    ) -> usize {
        let (n_in, mut row) = (self.n_in, rows.start);
        while row + R <= rows.end {
            let sums = panel_rx16::<P, R>(&x[row * n_in..(row + R) * n_in], panel);
            for (r, row_sums) in sums.iter().enumerate() {
                self.store(out.at(row + r, cols.clone()), row_sums, cols.start);
            }
            row += R;
        }
        row
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

/// f32 panels (the panel layout, `[n_in, n_out]` in all) converted to `dtype`, each weight
/// as `quant` stores it: bf16 rounded to nearest-even, Q8 with one scale per 32 rows of a
/// column (`quant::Q8Matrix`'s values, in the panel layout).
fn convert(panels: Vec<f32>, n_in: usize, n_out: usize, dtype: Dtype) -> Stored {
    match dtype {
        Dtype::F32 => Stored::F32(panels),
        Dtype::Bf16 => Stored::Bf16(panels.iter().map(|&w| bf16_from_f32(w)).collect()),
        Dtype::Q8 => {
            let mut column = Vec::with_capacity(Q8_BLOCK);
            Stored::Q8(q8_blocks(n_in, n_out, |p, width, rows, bytes| {
                // Panel p's rows `rows`, quantized column by column, then their scales.
                let at = p * PANEL * n_in;
                let block = &panels[at + rows.start * width..at + rows.end * width]; // [rows, width]
                let start = bytes.len();
                bytes.resize(start + block.len(), 0);
                let mut scales = [0.0f32; PANEL];
                for (c, scale) in scales[..width].iter_mut().enumerate() {
                    column.clear();
                    column.extend(block.iter().skip(c).step_by(width));
                    *scale = q8_scale(&column);
                    for (i, &w) in column.iter().enumerate() {
                        bytes[start + i * width + c] = q8_quantize(w, *scale);
                    }
                }
                push_scales(bytes, &scales[..width]);
            }))
        }
    }
}

/// A row-major [`Q8Matrix`] `[n_in, n_out]` in the panel layout ([`Stored::Q8`]): `q` as
/// the f32s would be, each block followed by its scales.
fn q8_in_panels(q8: &Q8Matrix) -> Stored {
    let (n_in, n_out) = (q8.n_in(), q8.n_out);
    Stored::Q8(q8_blocks(n_in, n_out, |p, width, rows, bytes| {
        let cols = p * PANEL..p * PANEL + width;
        for k in rows.clone() {
            bytes.extend_from_slice(&q8.q[k * n_out..][cols.clone()]);
        }
        push_scales(bytes, &q8.scales[rows.start / Q8_BLOCK * n_out..][cols]);
    }))
}

/// The Q8 panels' bytes ([`Stored::Q8`]), written block by block in their order:
/// `block(p, width, rows, bytes)` appends panel `p`'s rows `rows` of `q` (`[rows, width]`)
/// and then their scales. Built in place, with no second copy of the matrix.
fn q8_blocks(
    n_in: usize,
    n_out: usize,
    mut block: impl FnMut(usize, usize, Range<usize>, &mut Vec<i8>),
) -> Vec<i8> {
    let mut bytes = Vec::with_capacity(n_out * q8_column_bytes(n_in));
    for p in 0..n_out.div_ceil(PANEL) {
        let width = PANEL.min(n_out - p * PANEL);
        for b in 0..n_in.div_ceil(Q8_BLOCK) {
            block(p, width, b * Q8_BLOCK..(b * Q8_BLOCK + Q8_BLOCK).min(n_in), &mut bytes);
        }
    }
    bytes
}

/// Appends `scales` as little-endian f32 bytes.
fn push_scales(bytes: &mut Vec<i8>, scales: &[f32]) {
    bytes.extend(scales.iter().flat_map(|s| s.to_le_bytes().map(|b| b as i8)));
}

/// Bytes per column of a Q8 panel: `n_in` bytes of `q` and 4 per block for the scale.
fn q8_column_bytes(n_in: usize) -> usize {
    n_in + 4 * n_in.div_ceil(Q8_BLOCK)
}

/// One panel (`[n_in, width]`) of some dtype, read row by row as the factors a product
/// multiplies `x[k]` by: the f32 weights, the bf16 ones widened, or Q8's `q` as f32. The
/// products are summed in *groups* of rows: Q8's blocks of 32, each group's sum then
/// scaled and added to the total ([`finish`](Self::finish)); f32 and bf16 have one group,
/// all `n_in` rows, which is the total.
trait Panel<'a>: Copy {
    /// A stored weight: `f32`, `u16` (bf16) or `i8` (Q8's `q`).
    type Raw: Copy + 'a;
    /// Rows per group: [`Q8_BLOCK`] for Q8, all of them (`usize::MAX`) otherwise.
    const GROUP: usize = usize::MAX;
    /// Columns: 16, or fewer for the last panel.
    fn width(self) -> usize;
    /// Rows `k` of a full (16-wide) panel, as stored; `k` lies within one group (Q8 keeps
    /// each block's scales after its rows). The kernels take a group's rows as one slice,
    /// so the loop over them has no bounds checks.
    fn rows(self, k: Range<usize>) -> &'a [[Self::Raw; PANEL]];
    /// The factor a stored weight stands for.
    fn widen(raw: Self::Raw) -> f32;
    /// Factor `(k, c)` of a panel of any width.
    fn factor(self, k: usize, c: usize) -> f32;
    /// One step of a group's sum: `s + x * w`, rounded twice (f32, bf16: `matrix::linear`'s
    /// step), or once for Q8 (`x.mul_add(w, s)`: `Q8Matrix::matmul`'s step).
    #[inline(always)]
    fn add_product(s: f32, x: f32, w: f32) -> f32 {
        s + x * w
    }
    /// Adds group `g`'s sums `part` (one per column) to the totals `sums`. With one group
    /// the totals are the sums themselves (copied, not added to `0.0`, which would turn a
    /// `-0.0` into `+0.0`: `matrix::linear` starts its sums at the first product).
    #[inline(always)]
    fn finish(self, _g: usize, sums: &mut [f32], part: &[f32]) {
        sums.copy_from_slice(part);
    }
}

/// Rows `k` of a full panel `w` (`[n_in, 16]`) as rows of 16.
#[inline(always)]
fn full_rows<T>(w: &[T], k: Range<usize>) -> &[[T; PANEL]] {
    w[k.start * PANEL..k.end * PANEL].as_chunks().0
}

#[derive(Clone, Copy)]
struct F32Panel<'a> {
    w: &'a [f32],
    width: usize,
}

impl<'a> Panel<'a> for F32Panel<'a> {
    type Raw = f32;
    fn width(self) -> usize {
        self.width
    }
    #[inline(always)]
    fn rows(self, k: Range<usize>) -> &'a [[f32; PANEL]] {
        full_rows(self.w, k)
    }
    #[inline(always)]
    fn widen(raw: f32) -> f32 {
        raw
    }
    fn factor(self, k: usize, c: usize) -> f32 {
        self.w[k * self.width + c]
    }
}

#[derive(Clone, Copy)]
struct Bf16Panel<'a> {
    w: &'a [u16],
    width: usize,
}

impl<'a> Panel<'a> for Bf16Panel<'a> {
    type Raw = u16;
    fn width(self) -> usize {
        self.width
    }
    #[inline(always)]
    fn rows(self, k: Range<usize>) -> &'a [[u16; PANEL]] {
        full_rows(self.w, k)
    }
    #[inline(always)]
    fn widen(raw: u16) -> f32 {
        f32_from_bf16(raw)
    }
    fn factor(self, k: usize, c: usize) -> f32 {
        f32_from_bf16(self.w[k * self.width + c])
    }
}

#[derive(Clone, Copy)]
struct Q8Panel<'a> {
    /// Block by block: its rows of `q`, then its scales' bytes ([`Stored::Q8`]).
    bytes: &'a [i8],
    width: usize,
    n_in: usize,
}

impl Q8Panel<'_> {
    /// Where block `b` starts (every block before it is full: 32 rows and the scales).
    fn block_at(self, b: usize) -> usize {
        b * (Q8_BLOCK + 4) * self.width
    }

    /// Where `q[k][0]` is.
    fn row_at(self, k: usize) -> usize {
        self.block_at(k / Q8_BLOCK) + k % Q8_BLOCK * self.width
    }

    /// Block `b`'s scales, `[width]`.
    fn scales(self, b: usize) -> impl Iterator<Item = f32> {
        let rows = Q8_BLOCK.min(self.n_in - b * Q8_BLOCK);
        let at = self.block_at(b) + rows * self.width;
        let bytes = &self.bytes[at..at + 4 * self.width];
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([0, 1, 2, 3].map(|i| b[i] as u8)))
    }

    /// The f32 weight `(k, c)` stands for: `scale * q`.
    fn value(self, k: usize, c: usize) -> f32 {
        let scale = self.scales(k / Q8_BLOCK).nth(c).expect("c < width");
        q8_dequantize(self.bytes[self.row_at(k) + c], scale)
    }
}

impl<'a> Panel<'a> for Q8Panel<'a> {
    type Raw = i8;
    const GROUP: usize = Q8_BLOCK;
    fn width(self) -> usize {
        self.width
    }
    /// (`k` within one block, as every kernel asks: its rows are contiguous.)
    #[inline(always)]
    fn rows(self, k: Range<usize>) -> &'a [[i8; PANEL]] {
        let at = self.row_at(k.start);
        self.bytes[at..at + k.len() * PANEL].as_chunks().0
    }
    #[inline(always)]
    fn widen(raw: i8) -> f32 {
        f32::from(raw)
    }
    fn factor(self, k: usize, c: usize) -> f32 {
        f32::from(self.bytes[self.row_at(k) + c])
    }
    #[inline(always)]
    fn add_product(s: f32, x: f32, w: f32) -> f32 {
        x.mul_add(w, s)
    }
    /// `sums[c] += scale[g, c] * part[c]` (fused): the block's sum, scaled, added in block
    /// order.
    #[inline(always)]
    fn finish(self, g: usize, sums: &mut [f32], part: &[f32]) {
        for ((s, scale), &p) in sums.iter_mut().zip(self.scales(g)).zip(part) {
            *s = scale.mul_add(p, *s);
        }
    }
}

/// Panels decoded side by side: eight, so 128 partial sums are in flight at once (one
/// panel's 16 would each wait for the previous addition of the same sum) and eight streams
/// of memory are read together, which the hardware prefetcher keeps ahead of.
pub(crate) const SIDE_BY_SIDE: usize = 8;

/// `part[c] = add_product(part[c], x_k, row[c])` for one row of 16.
#[inline(always)]
fn add_row<'a, P: Panel<'a>>(part: &mut [f32; PANEL], x_k: f32, row: &[P::Raw; PANEL]) {
    let row = row.map(P::widen);
    for (s, w) in part.iter_mut().zip(row) {
        *s = P::add_product(*s, x_k, w);
    }
}

/// One row of `x` through [`SIDE_BY_SIDE`] full panels at once, group by group; within a
/// group the sums run over `k` ascending. Each panel's rows of the group are taken as one
/// slice of `n` rows, so the loop over them has no bounds checks.
#[inline(always)]
fn panels_1xn<'a, P: Panel<'a>>(
    x_row: &[f32],
    panels: [P; SIDE_BY_SIDE],
) -> [[f32; PANEL]; SIDE_BY_SIDE] {
    let mut sums = [[0.0f32; PANEL]; SIDE_BY_SIDE];
    for (g, x_group) in x_row.chunks(P::GROUP).enumerate() {
        let part = match <&[f32; Q8_BLOCK]>::try_from(x_group) {
            // A whole Q8 block: sizes the compiler knows, so it keeps the sums in registers.
            Ok(x_block) => block_1xn(x_block, g * P::GROUP, &panels),
            Err(_) => {
                let mut part = [[0.0f32; PANEL]; SIDE_BY_SIDE];
                let n = x_group.len();
                let k = g * P::GROUP..g * P::GROUP + n;
                let rows = panels.map(|panel| &panel.rows(k.clone())[..n]);
                for i in 0..n {
                    for (panel_part, panel_rows) in part.iter_mut().zip(&rows) {
                        add_row::<P>(panel_part, x_group[i], &panel_rows[i]);
                    }
                }
                part
            }
        };
        for ((panel_sums, panel), panel_part) in sums.iter_mut().zip(panels).zip(&part) {
            panel.finish(g, panel_sums, panel_part);
        }
    }
    sums
}

/// `part[i][c] = sum x[k] * panel_i[k0 + k][c]` over one block of rows, `k` ascending from
/// `0.0`. The sums are this function's own (returned, not written through a reference), so
/// they stay in registers: through a `&mut`, LLVM stored all eight vectors back to memory
/// after every row, about a cycle per 16 weights.
#[inline(always)]
fn block_1xn<'a, P: Panel<'a>>(
    x: &[f32; Q8_BLOCK],
    k0: usize,
    panels: &[P; SIDE_BY_SIDE],
) -> [[f32; PANEL]; SIDE_BY_SIDE] {
    let mut part = [[0.0f32; PANEL]; SIDE_BY_SIDE];
    let rows: [&[[P::Raw; PANEL]; Q8_BLOCK]; SIDE_BY_SIDE] =
        panels.map(|panel| panel.rows(k0..k0 + Q8_BLOCK).try_into().expect("a block's rows"));
    for k in 0..Q8_BLOCK {
        for (panel_part, panel_rows) in part.iter_mut().zip(&rows) {
            add_row::<P>(panel_part, x[k], &panel_rows[k]);
        }
    }
    part
}

/// One row of `x` through one panel (`[n_in, width]`): `out[c] = sum_k x[k] panel[k][c]`,
/// group by group.
fn panel_row<'a, P: Panel<'a>>(x_row: &[f32], panel: P, out: &mut [f32]) {
    let width = panel.width();
    out.fill(0.0);
    for (g, x_group) in x_row.chunks(P::GROUP).enumerate() {
        let mut part = [0.0f32; PANEL]; // four SSE registers
        let k0 = g * P::GROUP;
        if width == PANEL {
            let rows = panel.rows(k0..k0 + x_group.len());
            for (&x_k, row) in x_group.iter().zip(rows) {
                add_row::<P>(&mut part, x_k, row);
            }
        } else {
            for (i, &x_k) in x_group.iter().enumerate() {
                for (c, s) in part[..width].iter_mut().enumerate() {
                    *s = P::add_product(*s, x_k, panel.factor(k0 + i, c));
                }
            }
        }
        panel.finish(g, out, &part[..width]);
    }
}

/// One group's sums for `R` rows: `part[r][c] = sum_i xs[r][i] * rows[i][c]`, `i`
/// ascending from `0.0`. Returned, not written through a reference, so that the `R`
/// vectors of sums stay in registers (through a `&mut` LLVM stored them after every row).
#[inline(always)]
fn group_rx16<'a, P: Panel<'a>, const R: usize>(
    xs: [&[f32]; R],
    rows: &[[P::Raw; PANEL]],
) -> [[f32; PANEL]; R] {
    let mut part = [[0.0f32; PANEL]; R];
    for (i, row) in rows.iter().enumerate() {
        let w = row.map(P::widen);
        for (row_part, x) in part.iter_mut().zip(&xs) {
            let x_k = x[i];
            for (s, &w) in row_part.iter_mut().zip(&w) {
                *s = P::add_product(*s, x_k, w);
            }
        }
    }
    part
}

/// Rows a prefill pass takes through a panel at once: eight chains of additions in
/// flight, enough to keep two fused multiply-add units busy through a four-cycle latency
/// (with two, q8's prefill waited on its additions at half f32's speed).
const PREFILL_ROWS: usize = 8;

/// `R` rows of `x` (`[R, n_in]`) through one full panel: `R x 16` partial sums in
/// registers, each weight widened once for all `R` rows. Each sum runs over `k` ascending,
/// group by group, exactly as [`panel_row`]'s.
#[inline(always)]
fn panel_rx16<'a, P: Panel<'a>, const R: usize>(x_rows: &[f32], panel: P) -> [[f32; PANEL]; R] {
    let n_in = x_rows.len() / R;
    let mut sums = [[0.0f32; PANEL]; R];
    let (mut g, mut k0) = (0, 0);
    while k0 < n_in {
        let k1 = k0 + P::GROUP.min(n_in - k0);
        let xs: [&[f32]; R] = std::array::from_fn(|r| &x_rows[r * n_in + k0..r * n_in + k1]);
        let part = group_rx16::<P, R>(xs, panel.rows(k0..k1));
        for (row_sums, row_part) in sums.iter_mut().zip(&part) {
            panel.finish(g, row_sums, row_part);
        }
        (g, k0) = (g + 1, k1);
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

    /// The plain reference product of each dtype: `matrix::linear` on the values `quant`
    /// says the stored weights stand for.
    #[test]
    fn packed_linear_equals_the_plain_kernel_bit_for_bit_on_odd_sizes_in_every_dtype() {
        let mut q8_differs = 0;
        for dtype in Dtype::ALL {
            for (n_rows, n_in, n_out) in [
                (1, 7, 1),
                (3, 33, 7),
                (4, 5, 33),
                (9, 64, 33),
                (1, 65, 144), // a short last Q8 block, eight full panels side by side and a ninth
                (1, 32, 144), // f32 and bf16 too through the kernel for exactly 32 rows
                (1, 768, 768),
                (6, 769, 50),
                (19, 65, 40),  // eight rows per pass twice, then two, then one
                (16, 768, 33), // eight rows per pass twice over 24 whole Q8 blocks
                (5, 16, 50257),
            ] {
                let seed = (n_rows * n_in + n_out) as u64;
                let layer = Linear::new(random(n_in * n_out, seed), random(n_out, seed + 1));
                let x = random(n_rows * n_in, 99);
                let mut reference = layer.clone();
                reference.store_as(dtype);
                let stored = reference.w.clone();
                let plain = reference.forward(&x);
                if dtype == Dtype::Q8 {
                    // Not the f32 product of the stored values: Q8 sums its blocks first
                    // (the two agree on some tiny products, so counted over all of them).
                    let f32_product = linear(&x, &stored, &layer.b);
                    q8_differs += usize::from(bits(&plain) != bits(&f32_product));
                    let kept = PackedLinear::pack_with(reference.clone(), dtype, &mut Vec::new());
                    assert_eq!(bits(&kept.forward(&x)), bits(&plain), "q8 blocks kept");
                }
                let packed = PackedLinear::pack_with(layer.clone(), dtype, &mut Vec::new());
                assert_eq!(packed.dtype(), dtype);
                let what = format!("{dtype} {n_rows}x{n_in}x{n_out}");
                assert_eq!(bits(&packed.to_row_major()), bits(&stored), "{what} unpacks");
                assert_eq!(bits(&packed.forward(&x)), bits(&plain), "{what}");
                let cut = n_out / 3 / PANEL * PANEL;
                assert_eq!(bits(&in_two_shares(&packed, &x, cut)), bits(&plain), "split {what}");
                if dtype != Dtype::F32 {
                    // Not a vacuous check: the stored values differ from the f32 ones.
                    assert_ne!(bits(&stored), bits(&layer.w), "{what} rounds");
                }
            }
        }
        assert!(q8_differs >= 6, "q8's product differs from f32's on {q8_differs} of 9 sizes");
    }

    #[test]
    fn packed_embedding_rows_and_logits_equal_the_plain_ones_bit_for_bit_in_every_dtype() {
        for dtype in Dtype::ALL {
            for (n_rows, n_vocab, n_embd) in
                [(1, 1, 7), (2, 7, 1), (1, 33, 16), (3, 50, 33), (1, 768, 64), (1, 50257, 8)]
            {
                let wte = random(n_vocab * n_embd, (n_vocab + n_embd) as u64);
                // wte^T's Q8 blocks run along each row of wte: each row as a one-column matrix.
                let mut stored = wte.clone();
                for row in stored.chunks_exact_mut(n_embd) {
                    crate::quant::round_matrix(row, 1, dtype);
                }
                let wte_t_q8 = Q8Matrix::quantize_transposed(&wte, n_vocab, n_embd);
                let packed = PackedLinear::pack_transposed(wte.clone(), n_vocab, n_embd, dtype);
                let mut row = Vec::new();
                packed.column_into(n_vocab - 1, &mut row);
                let what = format!("{dtype} {n_vocab}x{n_embd}");
                let last = &stored[(n_vocab - 1) * n_embd..];
                assert_eq!(bits(&row), bits(last), "{what}: the last token's row");
                let x = random(n_rows * n_embd, 7);
                let plain = match dtype {
                    Dtype::Q8 => wte_t_q8.matmul(&x),
                    _ => matmul_transposed(&x, &stored, n_embd, n_vocab),
                };
                if dtype == Dtype::Q8 {
                    let kept = PackedLinear::pack_q8(&wte_t_q8);
                    assert_eq!(bits(&kept.forward(&x)), bits(&plain), "{dtype} blocks kept");
                }
                assert_eq!(bits(&packed.forward(&x)), bits(&plain), "{what}");
                let cut = n_vocab / 2 / PANEL * PANEL;
                assert_eq!(bits(&in_two_shares(&packed, &x, cut)), bits(&plain), "split {what}");
            }
        }
    }

    /// The Q8 layout the module docs give: each block's rows of `q`, then its scales.
    #[test]
    fn q8_panels_hold_each_blocks_rows_then_its_scales_at_the_documented_indices() {
        let (n_in, n_out) = (33, 20); // blocks of 32 and 1 row; panels of 16 and 4 columns
        let q8 = Q8Matrix::quantize(&random(n_in * n_out, 4), n_out);
        let Stored::Q8(bytes) = q8_in_panels(&q8) else { unreachable!("q8 in, q8 out") };
        let (n_blocks, b) = (2, n_in + 4 * 2); // b: the bytes of one column
        assert_eq!(bytes.len(), n_out * b);
        for j in 0..n_out {
            let width = PANEL.min(n_out - j / PANEL * PANEL);
            let panel = j / PANEL * PANEL * b;
            for k in 0..n_in {
                let at = panel + k / 32 * 36 * width + k % 32 * width + j % PANEL;
                assert_eq!(bytes[at], q8.q[k * n_out + j], "q({k}, {j})");
            }
            for block in 0..n_blocks {
                let rows = 32.min(n_in - block * 32);
                let at = panel + block * 36 * width + rows * width + 4 * (j % PANEL);
                let scale = f32::from_le_bytes([0, 1, 2, 3].map(|i| bytes[at + i] as u8));
                assert_eq!(scale, q8.scales[block * n_out + j], "scale({block}, {j})");
            }
        }
    }

    #[test]
    fn bytes_are_the_dtypes_weights_plus_the_f32_bias() {
        let layer = Linear::new(random(65 * 20, 1), random(20, 2));
        let sizes: Vec<usize> = Dtype::ALL
            .iter()
            .map(|&d| PackedLinear::pack_with(layer.clone(), d, &mut Vec::new()).bytes())
            .collect();
        assert_eq!(sizes, [4 * 65 * 20 + 80, 2 * 65 * 20 + 80, 65 * 20 + 4 * 3 * 20 + 80]);
    }
}
