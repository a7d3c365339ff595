//! Causal multi-head self-attention: each position looks back at itself and the earlier
//! positions and takes a weighted average of what it finds there.
//!
//! ```text
//! q, k, v  = split(x @ c_attn + b)                 [n_seq, n_embd] -> 3 x [n_seq, n_embd]
//! per head h (columns h*d_head..(h+1)*d_head of q, k, v):
//!   scores = q_h @ k_h^T / sqrt(d_head)            [n_seq, n_keys]
//!   scores[i, j] = -inf where key j is in query i's future       (the causal mask)
//!   weights = softmax(scores)  (row by row)        [n_seq, n_keys]
//!   out_h  = weights @ v_h                         [n_seq, d_head]
//! merged  = [out_0 | out_1 | ... ]                 [n_seq, n_embd]
//! out     = merged @ c_proj + b                    [n_seq, n_embd]
//! ```
//!
//! With a KV cache, the keys and values of earlier positions come from the cache, and only
//! the `n_new` newest positions are computed: query `i` sits at position `pos0 + i` and sees
//! keys `0..=pos0 + i`. A full recomputation is the special case `pos0 = 0`.
//!
//! Numerical care: dividing by `sqrt(d_head)` keeps the scores' spread independent of the
//! head size (otherwise softmax saturates); masked scores are `-inf`, which softmax turns
//! into weights of exactly `0.0`. The weighted sum then visits only the visible keys, in
//! ascending order, so a query computes bit-for-bit the same thing whether its keys came
//! from a cache or from the same pass.

use crate::kv_cache::LayerKv;
use crate::matrix::{Linear, columns, dot_fast};
use crate::softmax::softmax_in_place;
use crate::threads::{BlockMatrix, Product, ThreadPool};
use crate::trace::Trace;

/// The attention weights of one block, named as in GPT-2 checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    /// Query, key and value projections side by side: `[n_embd, 3 * n_embd]`.
    pub c_attn: Linear,
    /// Output projection: `[n_embd, n_embd]`.
    pub c_proj: Linear,
}

/// Buffers attention writes into, reused from step to step (named after what they hold).
#[derive(Debug, Default)]
pub struct AttentionScratch {
    /// `q | k | v` of the new positions, `[n_new, 3 n_embd]`.
    pub qkv: Vec<f32>,
    /// The queries alone, `[n_new, n_embd]`.
    pub queries: Vec<f32>,
    /// One head's scores, then weights, `[n_new, n_keys]`.
    pub scores: Vec<f32>,
    /// The heads' outputs side by side, `[n_new, n_embd]`.
    pub heads: Vec<f32>,
}

/// Self-attention of `n_new` new positions over the cache plus themselves, into `out`.
///
/// `normed` is the block's `ln_1` output for the new positions, `[n_new, n_embd]`; `kv` holds
/// this layer's keys and values for positions `0..pos0`. The new positions' keys and values
/// are written into `kv` at `pos0..pos0 + n_new`. `out` becomes `[n_new, n_embd]`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    normed: &[f32],
    n_embd: usize,
    n_head: usize,
    kv: &mut LayerKv,
    pos0: usize,
    layer: usize,
    pool: &ThreadPool,
    scratch: &mut AttentionScratch,
    out: &mut Vec<f32>,
    trace: &mut Trace,
) {
    debug_assert_eq!(normed.len() % n_embd, 0, "normed must be [n_new, n_embd]");
    let n_new = normed.len() / n_embd;
    let n_keys = pos0 + n_new;
    debug_assert!(kv.capacity >= n_keys, "cache too small");
    let AttentionScratch {
        qkv,
        queries,
        scores,
        heads,
    } = scratch;

    // qkv = normed @ attn.c_attn.w + attn.c_attn.b: [n_new, n_embd] -> [n_new, 3 * n_embd]
    qkv.resize(n_new * 3 * n_embd, 0.0);
    pool.compute(
        Product::Linear {
            layer,
            matrix: BlockMatrix::AttnQkv,
        },
        normed,
        qkv,
    );
    queries.clear();
    for (i, row) in qkv.chunks_exact(3 * n_embd).enumerate() {
        let (q_row, k_and_v) = row.split_at(n_embd);
        let (k_row, v_row) = k_and_v.split_at(n_embd);
        queries.extend_from_slice(q_row);
        kv.store(pos0 + i, k_row, v_row); // cache position pos0 + i
    }
    if trace.is_enabled() {
        // One thread, every step recorded.
        causal_self_attention(
            queries, kv, n_keys, n_embd, n_head, scores, heads, layer, trace,
        );
    } else {
        // The heads shared out between the threads, each head whole in one thread.
        heads.resize(n_new * n_embd, 0.0);
        pool.attend(queries, kv, n_keys, scores, heads);
    }
    trace.record(
        format_args!("block.{layer}.attn.merged"),
        &[n_new, n_embd],
        heads,
    );
    // out = heads @ attn.c_proj.w + attn.c_proj.b: [n_new, n_embd] -> [n_new, n_embd]
    out.resize(n_new * n_embd, 0.0);
    pool.compute(
        Product::Linear {
            layer,
            matrix: BlockMatrix::AttnProj,
        },
        heads,
        out,
    );
    trace.record(
        format_args!("block.{layer}.attn.c_proj"),
        &[n_new, n_embd],
        out,
    );
}

/// The heart of attention, for queries at the *last* `n_new` positions of the `n_keys`
/// positions in `kv`.
///
/// `q`: `[n_new, n_embd]`; `kv` holds each head's keys and values for positions `0..n_keys`
/// (`[n_keys, d_head]` per head). Query `i` is at position `pos0 + i` where
/// `pos0 = n_keys - n_new`, and attends to keys `0..=pos0 + i`. `scores` is scratch space;
/// `heads` becomes the merged heads, `[n_new, n_embd]`. This is the one-thread version that
/// can record every step; [`ThreadPool::attend`] shares the heads out between threads.
#[allow(clippy::too_many_arguments)]
pub fn causal_self_attention(
    q: &[f32],
    kv: &LayerKv,
    n_keys: usize,
    n_embd: usize,
    n_head: usize,
    scores: &mut Vec<f32>,
    heads: &mut Vec<f32>,
    layer: usize,
    trace: &mut Trace,
) {
    heads.clear();
    heads.resize(q.len(), 0.0); // [n_new, n_embd]
    let out = HeadsOut {
        heads,
        stride: n_embd,
        col0: 0,
    };
    attend_heads(q, kv, n_keys, n_head, 0..n_head, scores, out, layer, trace);
}

/// Where [`attend_heads`] writes: head `h`'s output for query `i` goes to
/// `heads[i * stride + h * d_head - col0..][..d_head]`.
pub struct HeadsOut<'a> {
    /// The merged heads, or the columns of them that one thread computes.
    pub heads: &'a mut [f32],
    /// Floats per query row in `heads`.
    pub stride: usize,
    /// The column of the merged heads that `heads` starts at.
    pub col0: usize,
}

/// Heads `head_range` of [`causal_self_attention`], each head computed start to finish by
/// the calling thread, in the same order whichever thread that is.
#[allow(clippy::too_many_arguments)]
pub fn attend_heads(
    q: &[f32],
    kv: &LayerKv,
    n_keys: usize,
    n_head: usize,
    head_range: std::ops::Range<usize>,
    scores: &mut Vec<f32>,
    out: HeadsOut,
    layer: usize,
    trace: &mut Trace,
) {
    let d_head = kv.d_head;
    let n_embd = n_head * d_head;
    debug_assert_eq!(q.len() % n_embd, 0, "q must be [n_new, n_embd]");
    let n_new = q.len() / n_embd;
    debug_assert!(n_keys >= n_new, "the new positions are the last keys");
    let pos0 = n_keys - n_new;
    let scale = (d_head as f32).sqrt();
    scores.resize(n_new * n_keys, 0.0); // [n_new, n_keys]

    for h in head_range {
        let cols = h * d_head..(h + 1) * d_head; // this head's columns of q
        let keys = kv.head_keys(h, n_keys); // [n_keys, d_head]
        let values = kv.head_values(h, n_keys); // [n_keys, d_head]
        trace.record_with(
            format_args!("block.{layer}.attn.q.head.{h}"),
            &[n_new, d_head],
            || columns(q, n_embd, cols.clone()),
        );
        trace.record(
            format_args!("block.{layer}.attn.k.head.{h}"),
            &[n_keys, d_head],
            keys,
        );
        trace.record(
            format_args!("block.{layer}.attn.v.head.{h}"),
            &[n_keys, d_head],
            values,
        );

        // scores = q_h @ k_h^T / sqrt(d_head): [n_new, d_head] @ [d_head, n_keys] -> [n_new, n_keys].
        // The future is only computed when a trace wants to show it before the mask.
        for (i, score_row) in scores.chunks_exact_mut(n_keys).enumerate() {
            let q_h = &q[i * n_embd + cols.start..i * n_embd + cols.end];
            let visible = if trace.is_enabled() {
                n_keys
            } else {
                pos0 + i + 1
            };
            for (s, k_j) in score_row[..visible]
                .iter_mut()
                .zip(keys.chunks_exact(d_head))
            {
                *s = dot_fast(q_h, k_j) / scale;
            }
        }
        trace.record(
            format_args!("block.{layer}.attn.scores.head.{h}"),
            &[n_new, n_keys],
            scores,
        );
        causal_mask(scores, n_keys, pos0);
        trace.record(
            format_args!("block.{layer}.attn.masked.head.{h}"),
            &[n_new, n_keys],
            scores,
        );
        for score_row in scores.chunks_exact_mut(n_keys) {
            softmax_in_place(score_row); // scores become weights; masked ones exactly 0
        }
        let weights = &scores[..];
        trace.record(
            format_args!("block.{layer}.attn.weights.head.{h}"),
            &[n_new, n_keys],
            weights,
        );

        // out_h = weights @ v_h: [n_new, n_keys] @ [n_keys, d_head] -> [n_new, d_head],
        // written into this head's columns of the output. Only visible keys are visited.
        for (i, weight_row) in weights.chunks_exact(n_keys).enumerate() {
            let at = i * out.stride + cols.start - out.col0;
            let out_h = &mut out.heads[at..at + d_head];
            out_h.fill(0.0);
            for (&w_ij, v_j) in weight_row[..=pos0 + i]
                .iter()
                .zip(values.chunks_exact(d_head))
            {
                for (o, &v) in out_h.iter_mut().zip(v_j) {
                    *o += w_ij * v;
                }
            }
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
        for (pos, (k, v)) in keys.iter().zip(values).enumerate() {
            kv.store(pos, k, v);
        }
        kv
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
    fn first_position_copies_its_own_value() {
        // One key: softmax of a single score is 1, so the output is that value exactly.
        let v = [0.25, -3.0, 7.5, 1.0];
        let kv = cache_with(&[[2.0; 4]], &[v], 2);
        let (mut scores, mut out) = (Vec::new(), Vec::new());
        causal_self_attention(
            &[1.0; 4],
            &kv,
            1,
            4,
            2,
            &mut scores,
            &mut out,
            0,
            &mut Trace::disabled(),
        );
        assert_eq!(out, v.to_vec());
    }

    #[test]
    fn equal_scores_average_the_visible_values() {
        // Keys all zero -> equal scores; query at position 1 of 3 averages values 0 and 1
        // and ignores value 2 (the future).
        let q = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]; // [3, 2]
        let kv = cache_with(
            &[[0.0; 2]; 3],
            &[[1.0, 10.0], [3.0, 20.0], [100.0, 100.0]],
            1,
        );
        let (mut scores, mut out) = (Vec::new(), Vec::new());
        causal_self_attention(
            &q,
            &kv,
            3,
            2,
            1,
            &mut scores,
            &mut out,
            0,
            &mut Trace::disabled(),
        );
        assert_eq!(&out[2..4], &[2.0, 15.0]);
    }
}
