//! How a weight is stored in 16 or 8 bits, and what number it then stands for.
//!
//! Decoding one token reads every weight once, so at batch size 1 speed is bytes per
//! token. The engine can keep its matrices (the four per block and `wte`) in three forms:
//!
//! ```text
//! Dtype::F32   4 bytes per weight      the checkpoint's value
//! Dtype::Bf16  2 bytes per weight      the f32's top 16 bits, rounded to nearest-even
//! Dtype::Q8    36 bytes per 32 weights 32 signed bytes q and one f32 scale s: w = s * q
//! ```
//!
//! **What each dtype's product is.** F32 and Bf16 weights are multiplied as the f32s they
//! stand for ([`f32_from_bf16`] is exact): `x @ W + b` summed as `matrix::linear` sums it,
//! over `k` ascending from `0.0`, the bias last. So a bf16 model is the plain f32 model
//! whose weights are replaced by their bf16 values. Q8 is multiplied as ggml multiplies its
//! blocks, in the *block-sum* form ([`Q8Matrix::matmul`]): for each output `j`, each
//! block's 32 products `x[k] * q[k, j]` are summed in order (from `0.0`), that sum is
//! multiplied by the block's scale, and the blocks are added in order (from `0.0`), the
//! bias last:
//!
//! ```text
//! y[j] = sum over blocks b of  s[b, j] * (sum over k in block b of  x[k] * q[k, j])  + b[j]
//! ```
//!
//! Every step of those two sums is a *fused* multiply-add, `a.mul_add(b, sum)`: the
//! product and the addition rounded once, not twice (IEEE 754's `fusedMultiplyAdd`, the
//! same bits on every platform; one instruction on a CPU with FMA, a slower library call
//! without). It is one multiply per weight fewer than turning each `q` back into `s * q`
//! first (the scale is applied once per 32 weights), and fusing saves the separate
//! addition: three vector instructions per 8 weights instead of five, which is what
//! decides speed once the weights are this small, since the engine's threads then spend
//! as long computing as waiting for memory. The result is not
//! the f32 product of the values `s * q` (the roundings differ), so the reference model
//! stored in Q8 (`Model::stored_as`) keeps each matrix's blocks ([`Q8Matrix`], in
//! `matrix::Linear::q8`) and multiplies by them; its `w` still holds `s * q`, for
//! everything that reads the weights.
//!
//! **Q8 layout.** Along the input dimension of each output column, every run of
//! [`Q8_BLOCK`] = 32 consecutive weights `W[32b .. 32b + 32, j]` shares one scale
//! `s[b, j] = max |w| / 127` (the last run is shorter when `n_in` is not a multiple of 32).
//! Each weight is stored as `q = round(w / s)`, rounded half away from zero
//! (`f32::round`) and clamped to `-127..=127`, so the largest weight of the block maps to
//! +-127 and `-128` is never used. A block of zeros (or one so tiny that `max |w| / 127`
//! underflows to `0.0`) has scale `0.0` and stores zeros. For the logits' matrix
//! `wte^T` (`[n_embd, n_vocab]`) a block is 32 consecutive numbers of one token's
//! embedding, which is also what the embedding lookup reads back.
//!
//! Numerical care: bf16 keeps f32's 8 exponent bits, so it has f32's range and only loses
//! precision (8 significant bits instead of 24: a relative error of at most 2^-8); a
//! finite f32 within half a bf16 step of f32's largest value would round to infinity, and
//! the engine refuses such a weight rather than compute with it.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// How the engine stores its matrices (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dtype {
    /// 32-bit floats, the checkpoint's values: 4 bytes per weight.
    #[default]
    F32,
    /// bfloat16, the top 16 bits of an f32 rounded to nearest-even: 2 bytes per weight.
    Bf16,
    /// 8-bit integers in blocks of 32 with one f32 scale each (Q8_0-style): 1.125 bytes per
    /// weight.
    Q8,
}

impl Dtype {
    /// Every dtype, in order of size.
    pub const ALL: [Dtype; 3] = [Dtype::F32, Dtype::Bf16, Dtype::Q8];

    /// Bytes an `[n_in, n_out]` matrix takes in this dtype (Q8: its scales included).
    ///
    /// ```
    /// use gpt2_edu::quant::Dtype;
    /// assert_eq!(Dtype::F32.matrix_bytes(768, 768), 4 * 768 * 768);
    /// assert_eq!(Dtype::Bf16.matrix_bytes(768, 768), 2 * 768 * 768);
    /// assert_eq!(Dtype::Q8.matrix_bytes(768, 768), 768 * 768 + 4 * (768 / 32) * 768);
    /// assert_eq!(Dtype::Q8.matrix_bytes(33, 1), 33 + 4 * 2); // the last block is short
    /// ```
    pub fn matrix_bytes(self, n_in: usize, n_out: usize) -> usize {
        match self {
            Dtype::F32 => 4 * n_in * n_out,
            Dtype::Bf16 => 2 * n_in * n_out,
            Dtype::Q8 => n_in * n_out + 4 * n_in.div_ceil(Q8_BLOCK) * n_out,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::Q8 => "q8",
        })
    }
}

impl FromStr for Dtype {
    type Err = Error;

    /// `f32`, `bf16` or `q8` (as [`Display`](fmt::Display) writes them).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "f32" => Ok(Dtype::F32),
            "bf16" => Ok(Dtype::Bf16),
            "q8" => Ok(Dtype::Q8),
            other => Err(Error::InvalidArgument(format!(
                "unknown weight dtype '{other}': expected f32, bf16 or q8"
            ))),
        }
    }
}

/// Weights per Q8 block: 32 consecutive weights along the input dimension of one output
/// column share one scale (as in ggml's Q8_0).
pub const Q8_BLOCK: usize = 32;

/// The bf16 nearest to `x`: its top 16 bits, rounded to nearest, ties to even (the same
/// rounding as an f32 operation). A NaN stays a NaN (its top bits, with the quiet bit set,
/// so that dropping the low bits cannot turn it into an infinity); infinities stay
/// infinities; a finite value beyond bf16's largest (about 3.3895e38) plus half a step
/// becomes an infinity.
///
/// ```
/// use gpt2_edu::quant::{bf16_from_f32, f32_from_bf16};
/// // 1 + 2^-8 is halfway between the bf16s 1 and 1 + 2^-7: ties go to even, so to 1.
/// assert_eq!(f32_from_bf16(bf16_from_f32(1.0 + 1.0 / 256.0)), 1.0);
/// assert_eq!(f32_from_bf16(bf16_from_f32(0.1)), 0.10009765625);
/// ```
pub fn bf16_from_f32(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    // Add just under half of the dropped part's range, plus one if the kept part is odd:
    // a carry into bit 16 happens exactly when rounding to nearest-even goes up.
    let round = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The f32 a bf16 stands for: its 16 bits on top, zeros below. Exact.
pub fn f32_from_bf16(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// `x` rounded to bf16 and back: the f32 value a bf16 weight stands for.
pub fn round_to_bf16(x: f32) -> f32 {
    f32_from_bf16(bf16_from_f32(x))
}

/// A Q8 block's scale: `max |w| / 127` over the block's weights (`0.0` for zeros).
pub fn q8_scale(block: &[f32]) -> f32 {
    block.iter().fold(0.0f32, |max, w| max.max(w.abs())) / 127.0
}

/// Weight `w` of a block with scale `scale`, as Q8 stores it: `w / scale` rounded half
/// away from zero, clamped to `-127..=127`; `0` when the scale is `0.0`.
///
/// ```
/// use gpt2_edu::quant::q8_quantize;
/// assert_eq!(q8_quantize(2.5, 1.0), 3); // half away from zero
/// assert_eq!(q8_quantize(-2.5, 1.0), -3);
/// assert_eq!(q8_quantize(1.0, 0.0), 0); // a block of zeros
/// ```
pub fn q8_quantize(w: f32, scale: f32) -> i8 {
    if scale == 0.0 {
        return 0;
    }
    (w / scale).round().clamp(-127.0, 127.0) as i8
}

/// The f32 a Q8 weight stands for: `scale * q`, rounded once.
#[inline(always)]
pub fn q8_dequantize(q: i8, scale: f32) -> f32 {
    scale * q as f32
}

/// A matrix `W` (`[n_in, n_out]`) in Q8, laid out as the f32 matrix is: `q` row-major
/// `[n_in, n_out]`, and `scales` `[n_in.div_ceil(32), n_out]`, the scale of weight
/// `(k, j)` being `scales[(k / 32) * n_out + j]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Q8Matrix {
    /// The weights as signed bytes, `[n_in, n_out]` row-major.
    pub q: Vec<i8>,
    /// One scale per block of 32 rows and per column, `[n_in.div_ceil(32), n_out]`.
    pub scales: Vec<f32>,
    /// Output width: columns of `W`.
    pub n_out: usize,
}

impl Q8Matrix {
    /// Input width: rows of `W` (0 for a matrix with no columns).
    pub fn n_in(&self) -> usize {
        self.q.len().checked_div(self.n_out).unwrap_or(0)
    }

    /// `x @ W` in the block-sum form (see the module docs): `[n_rows, n_in] -> [n_rows,
    /// n_out]`. For each row and column, block `b`'s products `x[k] * q[k, j]` are summed
    /// over `k` ascending from `0.0`, multiplied by `scales[b, j]`, and added to the
    /// column's sum, blocks in order from `0.0`; each step a fused multiply-add
    /// ([`f32::mul_add`]). Add a bias afterwards (as `matrix::Linear::forward` does) to get
    /// `x @ W + b`.
    ///
    /// ```
    /// use gpt2_edu::quant::Q8Matrix;
    /// // One column of 33 weights: a full block of 32, then a short one.
    /// let w: Vec<f32> = (0..33).map(|k| k as f32 - 16.0).collect();
    /// let q8 = Q8Matrix::quantize(&w, 1);
    /// let x = vec![1.0; 33];
    /// let block_0: f32 = q8.q[..32].iter().map(|&q| q as f32).sum(); // small integers: exact
    /// let sum = q8.scales[0].mul_add(block_0, 0.0);
    /// let expected = q8.scales[1].mul_add(q8.q[32] as f32, sum);
    /// assert_eq!(q8.matmul(&x), vec![expected]);
    /// ```
    pub fn matmul(&self, x: &[f32]) -> Vec<f32> {
        let (n_in, n_out) = (self.n_in(), self.n_out);
        let mut out = Vec::with_capacity(x.len() / n_in.max(1) * n_out); // [n_rows, n_out]
        for x_row in x.chunks_exact(n_in.max(1)) {
            for j in 0..n_out {
                let mut sum = 0.0f32;
                for (b, x_block) in x_row.chunks(Q8_BLOCK).enumerate() {
                    let mut block_sum = 0.0f32;
                    for (i, &x_k) in x_block.iter().enumerate() {
                        let q = self.q[(b * Q8_BLOCK + i) * n_out + j] as f32;
                        block_sum = x_k.mul_add(q, block_sum); // x_k * q + block_sum
                    }
                    sum = self.scales[b * n_out + j].mul_add(block_sum, sum);
                }
                out.push(sum);
            }
        }
        out
    }

    /// Quantizes a row-major `[n_in, n_out]` matrix (`n_in = w.len() / n_out`).
    ///
    /// ```
    /// use gpt2_edu::quant::Q8Matrix;
    /// // One column of 3 weights: one (short) block, scale 0.5 / 127.
    /// let q8 = Q8Matrix::quantize(&[0.5, -0.25, 0.001], 1);
    /// assert_eq!(q8.q, vec![127, -64, 0]); // -0.25 / (0.5 / 127) = -63.5: away from zero
    /// assert_eq!(q8.scales, vec![0.5 / 127.0]);
    /// assert_eq!(q8.dequantize()[0], 0.5);
    /// ```
    pub fn quantize(w: &[f32], n_out: usize) -> Self {
        let n_in = w.len().checked_div(n_out).unwrap_or(0);
        let n_blocks = n_in.div_ceil(Q8_BLOCK);
        let mut scales = vec![0.0; n_blocks * n_out]; // [n_blocks, n_out]
        let mut column_block = Vec::with_capacity(Q8_BLOCK);
        for b in 0..n_blocks {
            let rows = b * Q8_BLOCK..(b * Q8_BLOCK + Q8_BLOCK).min(n_in);
            for (j, scale) in scales[b * n_out..(b + 1) * n_out].iter_mut().enumerate() {
                column_block.clear();
                column_block.extend(rows.clone().map(|k| w[k * n_out + j]));
                *scale = q8_scale(&column_block);
            }
        }
        let q = w
            .iter()
            .enumerate()
            .map(|(i, &w)| q8_quantize(w, scales[(i / n_out / Q8_BLOCK) * n_out + i % n_out]))
            .collect();
        Self { q, scales, n_out }
    }

    /// Quantizes `m^T` for a row-major `m` of `[n_rows, n_cols]`: the logits' form of `wte`
    /// (`[n_vocab, n_embd]` becomes `wte^T`, `[n_embd, n_vocab]`), whose blocks are 32
    /// consecutive numbers of one row of `m`, one token's embedding.
    pub fn quantize_transposed(m: &[f32], n_rows: usize, n_cols: usize) -> Self {
        let mut transposed = vec![0.0; m.len()]; // [n_cols, n_rows]
        for (r, row) in m.chunks_exact(n_cols.max(1)).enumerate() {
            for (c, &value) in row.iter().enumerate() {
                transposed[c * n_rows + r] = value;
            }
        }
        Self::quantize(&transposed, n_rows)
    }

    /// The f32 values the matrix stands for, `[n_in, n_out]` row-major: `scale * q`.
    pub fn dequantize(&self) -> Vec<f32> {
        let n_out = self.n_out.max(1);
        let scale = |i: usize| self.scales[(i / n_out / Q8_BLOCK) * n_out + i % n_out];
        self.q.iter().enumerate().map(|(i, &q)| q8_dequantize(q, scale(i))).collect()
    }
}

/// A row-major `[n_in, n_out]` matrix replaced by the f32 values `dtype` would store for
/// it: unchanged for F32, [`round_to_bf16`] for Bf16, [`Q8Matrix`] and back for Q8.
pub fn round_matrix(w: &mut [f32], n_out: usize, dtype: Dtype) {
    match dtype {
        Dtype::F32 => {}
        Dtype::Bf16 => w.iter_mut().for_each(|w| *w = round_to_bf16(*w)),
        Dtype::Q8 => {
            let values = Q8Matrix::quantize(w, n_out).dequantize();
            w.copy_from_slice(&values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_keeps_the_top_16_bits_rounded_to_nearest_even() {
        // 0x3F80_8000 is exactly halfway between 0x3F80 and 0x3F81: to even, 0x3F80.
        assert_eq!(bf16_from_f32(f32::from_bits(0x3F80_8000)), 0x3F80);
        // 0x3F81_8000 is halfway between 0x3F81 and 0x3F82: to even, 0x3F82.
        assert_eq!(bf16_from_f32(f32::from_bits(0x3F81_8000)), 0x3F82);
        assert_eq!(bf16_from_f32(f32::from_bits(0x3F80_8001)), 0x3F81); // above half: up
        assert_eq!(bf16_from_f32(f32::from_bits(0x3F80_7FFF)), 0x3F80); // below half: down
        assert_eq!(bf16_from_f32(-0.0), 0x8000);
        assert_eq!(f32_from_bf16(0x4049), 3.140625); // pi's bf16
        assert_eq!(round_to_bf16(std::f32::consts::PI), 3.140625);
        // Non-finite values stay what they are; the largest f32 overflows to infinity.
        assert_eq!(round_to_bf16(f32::INFINITY), f32::INFINITY);
        assert_eq!(round_to_bf16(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(round_to_bf16(f32::NAN).is_nan());
        assert!(round_to_bf16(f32::from_bits(0x7F80_0001)).is_nan()); // low-bit NaN stays NaN
        assert_eq!(round_to_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(f32_from_bf16(0x7F7F), 3.3895314e38); // bf16's largest finite value
    }

    #[test]
    fn bf16_rounding_is_within_half_a_step_of_every_value() {
        let mut rng = crate::rng::XorShift64::new(3).unwrap();
        for _ in 0..10_000 {
            let x = (rng.next_f32() - 0.5) * 1e3;
            let r = round_to_bf16(x);
            // 8 significant bits: a step is 2^(e - 7) for 2^e <= |x| < 2^(e + 1), and the
            // error at most half a step, so at most 2^-8 of |x|.
            let step = f32::from_bits(x.abs().to_bits() & 0x7F80_0000) / 128.0;
            assert!((r - x).abs() <= step / 2.0, "{x} -> {r}");
            assert!((r - x).abs() <= x.abs() / 256.0, "{x} -> {r}");
            assert_eq!(r.to_bits() & 0xFFFF, 0, "the low 16 bits are zero");
        }
    }

    #[test]
    fn q8_blocks_run_down_each_column_and_the_last_one_is_short() {
        // [n_in 33, n_out 2]: column 0 holds k, column 1 holds -2k; blocks are rows 0..32
        // and the short block 32..33.
        let w: Vec<f32> = (0..33).flat_map(|k| [k as f32, -2.0 * k as f32]).collect();
        let q8 = Q8Matrix::quantize(&w, 2);
        assert_eq!(q8.scales, vec![31.0 / 127.0, 62.0 / 127.0, 32.0 / 127.0, 64.0 / 127.0]);
        assert_eq!(&q8.q[62..66], [127, -127, 127, -127]); // row 31, then row 32 (its own block)
        assert_eq!(q8.q[2 * 10], (10.0f32 / (31.0 / 127.0)).round() as i8); // 41
        assert_eq!(q8.q[2 * 10], 41);
        let values = q8.dequantize();
        for (k, pair) in values.chunks_exact(2).enumerate() {
            let step = if k < 32 { 31.0 / 127.0 } else { 32.0 / 127.0 };
            assert!((pair[0] - k as f32).abs() <= step / 2.0 * 1.0001, "row {k}");
            assert_eq!(pair[0], q8_dequantize(q8.q[2 * k], q8.scales[k / 32 * 2]));
        }
    }

    #[test]
    fn an_all_zero_q8_block_stores_zeros_and_tiny_ones_do_not_overflow() {
        let q8 = Q8Matrix::quantize(&[0.0; 40], 1);
        assert_eq!((q8.scales, q8.q), (vec![0.0, 0.0], vec![0; 40]));
        let tiny = [f32::from_bits(1), -f32::from_bits(3), 0.0]; // subnormals
        let q8 = Q8Matrix::quantize(&tiny, 1);
        assert!(q8.q.iter().all(|q| (-127..=127).contains(q)), "{:?}", q8.q);
        assert!(q8.dequantize().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn dtypes_parse_and_print_their_names() {
        for dtype in Dtype::ALL {
            assert_eq!(dtype.to_string().parse::<Dtype>(), Ok(dtype));
        }
        assert_eq!("bf16".parse::<Dtype>(), Ok(Dtype::Bf16));
        let err = "f16".parse::<Dtype>().unwrap_err().to_string();
        assert!(err.contains("'f16'") && err.contains("f32, bf16 or q8"), "{err}");
    }

    #[test]
    fn rounding_a_matrix_is_each_dtypes_stored_values() {
        let w = vec![0.1f32, -0.7, 0.33, 1.0 / 3.0];
        let mut f32s = w.clone();
        round_matrix(&mut f32s, 2, Dtype::F32);
        assert_eq!(f32s, w);
        let mut bf16s = w.clone();
        round_matrix(&mut bf16s, 2, Dtype::Bf16);
        assert_eq!(bf16s, w.iter().map(|&x| round_to_bf16(x)).collect::<Vec<_>>());
        let mut q8s = w.clone();
        round_matrix(&mut q8s, 2, Dtype::Q8);
        assert_eq!(q8s, Q8Matrix::quantize(&w, 2).dequantize());
        assert_eq!(q8s[1], -0.7); // the column's largest magnitude comes back exactly
    }
}
