//! Causal multi-head self-attention: each position looks back at itself and the earlier
//! positions and takes a weighted average of what it finds there.
//!
//! ```text
//! qkv     = x @ c_attn.w + c_attn.b                [n_new, n_embd] -> [n_new, 3 n_embd]
//! q, k, v = split(qkv)                             3 x [n_new, n_embd]
//! per head h (columns h*d_head .. (h+1)*d_head of q, and of the cached k and v):
//!   scores  = q_h @ k_h^T / sqrt(d_head)           [n_new, n_keys]
//!   scores[i, j] = -inf where key j is in query i's future       (the causal mask)
//!   weights = softmax(scores)  (row by row)        [n_new, n_keys]
//!   out_h   = weights @ v_h                        [n_new, d_head]
//! merged  = [out_0 | out_1 | ... ]                 [n_new, n_embd]
//! out     = merged @ c_proj.w + c_proj.b           [n_new, n_embd]
//! ```
//!
//! This is picoGPT's `mha`, with a KV cache: the new positions' keys and values are
//! appended to the cache, and the heads read every key and value from it. Query `i` sits
//! at position `pos0 + i` and sees keys `0..=pos0 + i`; a full recomputation is the special
//! case `pos0 = 0`, an empty cache.
//!
//! Numerical care: dividing by `sqrt(d_head)` keeps the scores' spread independent of the
//! head size (otherwise softmax saturates); masked scores are `-inf`, which softmax turns
//! into weights of exactly `0.0`, and adding `0.0 * v` to a sum changes nothing. So a query
//! computes bit-for-bit the same thing whether its keys came from a cache or from the same
//! pass. The kernels [`attention_scores`] and [`causal_mask`] are shared with the fast
//! engine, which runs the heads on several threads.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::hparams::HParams;
use crate::kv_cache::LayerKv;
use crate::matrix::{Linear, columns, dot_fast, matmul, set_columns};
use crate::softmax::softmax_rows;
use crate::trace::Trace;

/// The attention weights of one block, named as in GPT-2 checkpoints (`h.0.attn.c_attn`,
/// `h.0.attn.c_proj`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    /// Query, key and value projections side by side: `[n_embd, 3 * n_embd]`.
    pub c_attn: Linear,
    /// Output projection: `[n_embd, n_embd]`.
    pub c_proj: Linear,
}

impl Attention {
    /// Self-attention of the `n_new` positions of `x` (`[n_new, n_embd]`, the block's `ln_1`
    /// output) starting at position `pos0`. `kv` holds this layer's keys and values for
    /// positions `0..pos0`; the new positions' are appended to it. Returns `[n_new, n_embd]`.
    /// Every step is recorded into `trace` as `block.{layer}.attn.*`. The heads in
    /// `heads_off` (see [`Ablation`]) are switched off: their columns of the merged heads
    /// stay zero.
    pub fn forward(
        &self,
        x: &[f32],
        n_head: usize,
        kv: &mut LayerKv,
        pos0: usize,
        (layer, heads_off): (usize, &[usize]),
        trace: &mut Trace,
    ) -> Vec<f32> {
        let n_embd = self.c_proj.n_out();
        let d_head = n_embd / n_head;
        let n_new = x.len() / n_embd;
        let n_keys = pos0 + n_new;

        let qkv = self.c_attn.forward(x); // [n_new, n_embd] -> [n_new, 3 n_embd]
        let q = columns(&qkv, 3 * n_embd, 0..n_embd); // [n_new, n_embd]
        let k = columns(&qkv, 3 * n_embd, n_embd..2 * n_embd); // [n_new, n_embd]
        let v = columns(&qkv, 3 * n_embd, 2 * n_embd..3 * n_embd); // [n_new, n_embd]
        kv.store(pos0, &k, &v); // the cache now holds positions 0..n_keys

        let mut merged = vec![0.0; n_new * n_embd]; // [n_new, n_embd]
        for h in 0..n_head {
            let cols = h * d_head..(h + 1) * d_head;
            let q_h = columns(&q, n_embd, cols.clone()); // [n_new, d_head]
            let k_h = kv.head_keys(h, n_keys); // [n_keys, d_head]
            let v_h = kv.head_values(h, n_keys); // [n_keys, d_head]
            let out_h = head(&q_h, k_h, v_h, d_head, pos0, (layer, h), trace); // [n_new, d_head]
            if !heads_off.contains(&h) {
                set_columns(&mut merged, n_embd, cols.start, &out_h); // switched off: stays 0
            }
        }
        trace.record(format_args!("block.{layer}.attn.merged"), &[n_new, n_embd], &merged);

        let out = self.c_proj.forward(&merged); // [n_new, n_embd] -> [n_new, n_embd]
        trace.record(format_args!("block.{layer}.attn.c_proj"), &[n_new, n_embd], &out);
        out
    }
}

/// One head, `(layer, h)`: `softmax(mask(q_h @ k_h^T / sqrt(d_head))) @ v_h`, for queries at
/// positions `pos0..` over keys `0..n_keys`: `[n_new, d_head] -> [n_new, d_head]`.
fn head(
    q_h: &[f32],
    k_h: &[f32],
    v_h: &[f32],
    d_head: usize,
    pos0: usize,
    (layer, h): (usize, usize),
    trace: &mut Trace,
) -> Vec<f32> {
    let (n_new, n_keys) = (q_h.len() / d_head, k_h.len() / d_head);
    trace.record(format_args!("block.{layer}.attn.q.head.{h}"), &[n_new, d_head], q_h);
    trace.record(format_args!("block.{layer}.attn.k.head.{h}"), &[n_keys, d_head], k_h);
    trace.record(format_args!("block.{layer}.attn.v.head.{h}"), &[n_keys, d_head], v_h);
    let shape = [n_new, n_keys];

    let mut scores = vec![0.0; n_new * n_keys];
    attention_scores(q_h, k_h, d_head, &mut scores); // q_h @ k_h^T / sqrt(d_head)
    trace.record(format_args!("block.{layer}.attn.scores.head.{h}"), &shape, &scores);
    causal_mask(&mut scores, n_keys, pos0);
    trace.record(format_args!("block.{layer}.attn.masked.head.{h}"), &shape, &scores);
    softmax_rows(&mut scores, n_keys); // the weights: each row sums to 1, the future is 0
    trace.record(format_args!("block.{layer}.attn.weights.head.{h}"), &shape, &scores);

    matmul(&scores, v_h, n_keys, d_head) // weights @ v_h: [n_new, n_keys] @ [n_keys, d_head]
}

/// The scores of one head: `scores[i, j] = q_h[i] . k_h[j] / sqrt(d_head)` for every query
/// row `i` of `q_h` (`[n_new, d_head]`) and key row `j` of `k_h` (`[n_keys, d_head]`), into
/// `scores` (`[n_new, n_keys]`).
pub fn attention_scores(q_h: &[f32], k_h: &[f32], d_head: usize, scores: &mut [f32]) {
    let n_keys = k_h.len() / d_head;
    debug_assert_eq!(scores.len(), q_h.len() / d_head * n_keys, "scores: [n_new, n_keys]");
    let scale = (d_head as f32).sqrt();
    for (q_i, score_row) in q_h.chunks_exact(d_head).zip(scores.chunks_exact_mut(n_keys)) {
        for (s, k_j) in score_row.iter_mut().zip(k_h.chunks_exact(d_head)) {
            *s = dot_fast(q_i, k_j) / scale;
        }
    }
}

/// The causal mask, in place: in a `[n_new, n_keys]` score matrix whose query `i` sits at
/// position `pos0 + i`, every key `j > pos0 + i` (the future) becomes `-inf`.
pub fn causal_mask(scores: &mut [f32], n_keys: usize, pos0: usize) {
    for (i, score_row) in scores.chunks_exact_mut(n_keys).enumerate() {
        for s in &mut score_row[(pos0 + i + 1).min(n_keys)..] {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// One attention head of one layer, whose weights the trace holds as
/// `block.{layer}.attn.weights.head.{head}`. Written `LAYER.HEAD` (`0.1`) on the command
/// line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeadId {
    /// The block, `0..n_layer`.
    pub layer: usize,
    /// The head within the block, `0..n_head`.
    pub head: usize,
}

impl HeadId {
    /// The name of this head's attention weights in a [`Trace`].
    pub fn trace_name(self) -> String {
        format!("block.{}.attn.weights.head.{}", self.layer, self.head)
    }

    /// Checks that the model has this layer and head; otherwise an
    /// [`Error::NoSuchHead`] that says which ones exist.
    pub fn check(self, hparams: &HParams) -> Result<()> {
        if self.layer >= hparams.n_layer {
            return Err(Error::NoSuchHead(format!(
                "layer {} does not exist: the model has {}",
                self.layer,
                count_with_range(hparams.n_layer, "layer")
            )));
        }
        if self.head >= hparams.n_head {
            return Err(Error::NoSuchHead(format!(
                "head {} does not exist: each layer of the model has {}",
                self.head,
                count_with_range(hparams.n_head, "head")
            )));
        }
        Ok(())
    }
}

/// `"12 layers (0-11)"`, `"1 layer (0)"`.
fn count_with_range(n: usize, noun: &str) -> String {
    match n {
        0 => format!("no {noun}s"),
        1 => format!("1 {noun} (0)"),
        _ => format!("{n} {noun}s (0-{})", n - 1),
    }
}

impl fmt::Display for HeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer, self.head)
    }
}

impl FromStr for HeadId {
    type Err = String;

    /// Parses `LAYER.HEAD`, such as `0.1` (layer 0, head 1). Whether the model has that
    /// head is checked later, by [`HeadId::check`].
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parsed = s.split_once('.').and_then(|(layer, head)| {
            Some(HeadId { layer: layer.parse().ok()?, head: head.parse().ok()? })
        });
        parsed.ok_or_else(|| {
            format!("expected LAYER.HEAD such as 0.1 (layer 0, head 1), found {s:?}")
        })
    }
}

/// Heads switched off ("ablated"): each one's output, its `d_head` columns of the merged
/// heads, is zero before `attn.c_proj`, so the block hears nothing from it. The head still
/// computes its weights (the pictures show them); they just go nowhere. Zeroing those
/// columns is the same as zeroing the head's `d_head` rows of `c_proj.w`, which is how
/// `tests/golden/hf_ablation.py` does it in transformers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ablation {
    /// `off[layer]`: the heads of that layer switched off, ascending, no repeats.
    off: Vec<Vec<usize>>,
}

impl Ablation {
    /// No head switched off.
    pub fn none() -> Self {
        Self::default()
    }

    /// `heads` switched off (in any order, repeats ignored), each checked against
    /// `hparams`: a layer or head the model does not have is an [`Error::NoSuchHead`].
    pub fn new(heads: &[HeadId], hparams: &HParams) -> Result<Self> {
        let mut off = vec![Vec::new(); hparams.n_layer];
        for &id in heads {
            id.check(hparams)?;
            off[id.layer].push(id.head);
        }
        for layer in &mut off {
            layer.sort_unstable();
            layer.dedup();
        }
        Ok(Self { off })
    }

    /// The heads of block `layer` that are switched off, ascending.
    pub fn heads_off(&self, layer: usize) -> &[usize] {
        self.off.get(layer).map_or(&[], Vec::as_slice)
    }

    /// Every head switched off, in layer-then-head order.
    pub fn heads(&self) -> Vec<HeadId> {
        let per_layer = self.off.iter().enumerate();
        per_layer
            .flat_map(|(layer, heads)| heads.iter().map(move |&head| HeadId { layer, head }))
            .collect()
    }

    /// Whether no head is switched off.
    pub fn is_empty(&self) -> bool {
        self.off.iter().all(Vec::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer cache holding these key and value rows (`[n_embd]` each), `n_head` heads.
    fn cache_with<const E: usize>(
        keys: &[[f32; E]],
        values: &[[f32; E]],
        n_head: usize,
    ) -> LayerKv {
        let mut kv = LayerKv {
            keys: vec![0.0; keys.len() * E],
            values: vec![0.0; keys.len() * E],
            capacity: keys.len(),
            d_head: E / n_head,
        };
        kv.store(0, keys.as_flattened(), values.as_flattened());
        kv
    }

    /// The identity layer `[n, n]` with a zero bias.
    fn identity(n: usize) -> Linear {
        let mut w = vec![0.0; n * n];
        for i in 0..n {
            w[i * n + i] = 1.0;
        }
        Linear::new(w, vec![0.0; n])
    }

    #[test]
    fn causal_mask_hides_exactly_the_future() {
        let mut scores = vec![1.0; 3 * 3]; // full pass: pos0 = 0
        causal_mask(&mut scores, 3, 0);
        let inf = f32::NEG_INFINITY;
        assert_eq!(scores, vec![1.0, inf, inf, 1.0, 1.0, inf, 1.0, 1.0, 1.0]);

        let mut one_step = vec![1.0; 4]; // one new query at position 3 sees all 4 keys
        causal_mask(&mut one_step, 4, 3);
        assert_eq!(one_step, vec![1.0; 4]);
    }

    #[test]
    fn scores_are_scaled_dot_products() {
        // d_head 4: sqrt = 2. q = [1, 2, 0, 0]; keys [1, 1, 1, 1] and [0, 0, 0, 2].
        let mut scores = [0.0; 2];
        attention_scores(
            &[1.0, 2.0, 0.0, 0.0],
            &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0],
            4,
            &mut scores,
        );
        assert_eq!(scores, [1.5, 0.0]);
    }

    #[test]
    fn first_position_copies_its_own_value() {
        // One key: softmax of a single score is 1, so each head outputs that value exactly.
        // With c_attn = [I | I | I] (q = k = v = x) and c_proj = I, the output is x itself.
        let x = [0.25, -3.0, 7.5, 1.0];
        let mut w = vec![0.0; 4 * 12]; // [4, 12]
        for k in 0..4 {
            for part in 0..3 {
                w[k * 12 + part * 4 + k] = 1.0;
            }
        }
        let attn = Attention { c_attn: Linear::new(w, vec![0.0; 12]), c_proj: identity(4) };
        let mut kv = cache_with::<4>(&[[0.0; 4]], &[[0.0; 4]], 2);
        let out = attn.forward(&x, 2, &mut kv, 0, (0, &[]), &mut Trace::disabled());
        assert_eq!(out, x.to_vec());
        assert_eq!(kv.head_values(1, 1), &x[2..], "the new value was cached, head-major");
    }

    #[test]
    fn equal_scores_average_the_visible_values() {
        // Keys all zero -> equal scores; query at position 1 of 3 averages values 0 and 1
        // and gives value 2 (the future) weight 0.
        let kv = cache_with(&[[0.0; 2]; 3], &[[1.0, 10.0], [3.0, 20.0], [100.0, 100.0]], 1);
        let q = [1.0; 6]; // [3, 2]
        let out = head(
            &q,
            kv.head_keys(0, 3),
            kv.head_values(0, 3),
            2,
            0,
            (0, 0),
            &mut Trace::disabled(),
        );
        assert_eq!(&out[2..4], &[2.0, 15.0]);
    }
}
