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
use crate::matrix::{Linear, columns, dot};
use crate::softmax::softmax_in_place;
use crate::trace::Trace;

/// The attention weights of one block, named as in GPT-2 checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    /// Query, key and value projections side by side: `[n_embd, 3 * n_embd]`.
    pub c_attn: Linear,
    /// Output projection: `[n_embd, n_embd]`.
    pub c_proj: Linear,
}

/// Self-attention of `n_new` new positions over the cache plus themselves.
///
/// `x` is the block's `ln_1` output for the new positions, `[n_new, n_embd]`; `kv` holds
/// this layer's keys and values for positions `0..pos0`. The new positions' keys and values
/// are written into `kv` at `pos0..pos0 + n_new`. Returns `[n_new, n_embd]`.
pub fn attention(
    x: &[f32],
    w: &Attention,
    n_head: usize,
    kv: &mut LayerKv,
    pos0: usize,
    layer: usize,
    trace: &mut Trace,
) -> Vec<f32> {
    let n_embd = w.c_proj.n_out;
    debug_assert_eq!(x.len() % n_embd, 0, "x must be [n_new, n_embd]");
    let n_new = x.len() / n_embd;
    let n_keys = pos0 + n_new;
    debug_assert!(kv.keys.len() >= n_keys * n_embd, "cache too small");

    let qkv = w.c_attn.forward(x); // [n_new, n_embd] -> [n_new, 3 * n_embd]
    let mut q = Vec::with_capacity(n_new * n_embd); // [n_new, n_embd]
    for (i, row) in qkv.chunks_exact(3 * n_embd).enumerate() {
        let (q_row, k_and_v) = row.split_at(n_embd);
        let (k_row, v_row) = k_and_v.split_at(n_embd);
        q.extend_from_slice(q_row);
        let at = (pos0 + i) * n_embd;
        kv.keys[at..at + n_embd].copy_from_slice(k_row); // cache row pos0 + i
        kv.values[at..at + n_embd].copy_from_slice(v_row);
    }
    let keys = &kv.keys[..n_keys * n_embd]; // [n_keys, n_embd]
    let values = &kv.values[..n_keys * n_embd]; // [n_keys, n_embd]

    let merged = causal_self_attention(&q, keys, values, n_embd, n_head, layer, trace); // [n_new, n_embd]
    trace.record(
        format_args!("block.{layer}.attn.merged"),
        &[n_new, n_embd],
        &merged,
    );
    let out = w.c_proj.forward(&merged); // [n_new, n_embd] -> [n_new, n_embd]
    trace.record(
        format_args!("block.{layer}.attn.c_proj"),
        &[n_new, n_embd],
        &out,
    );
    out
}

/// The heart of attention, for queries at the *last* `n_new` positions of the key sequence.
///
/// `q`: `[n_new, n_embd]`; `keys`, `values`: `[n_keys, n_embd]` with `n_keys >= n_new`.
/// Query `i` is at position `pos0 + i` where `pos0 = n_keys - n_new`, and attends to keys
/// `0..=pos0 + i`. Returns the merged heads, `[n_new, n_embd]`.
pub fn causal_self_attention(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    n_embd: usize,
    n_head: usize,
    layer: usize,
    trace: &mut Trace,
) -> Vec<f32> {
    debug_assert_eq!(q.len() % n_embd, 0, "q must be [n_new, n_embd]");
    debug_assert_eq!(
        keys.len(),
        values.len(),
        "keys and values must both be [n_keys, n_embd]"
    );
    debug_assert_eq!(n_embd % n_head, 0, "n_head must divide n_embd");
    let d_head = n_embd / n_head;
    let n_new = q.len() / n_embd;
    let n_keys = keys.len() / n_embd;
    debug_assert!(n_keys >= n_new, "the new positions are the last keys");
    let pos0 = n_keys - n_new;
    let scale = (d_head as f32).sqrt();

    let mut merged = vec![0.0; n_new * n_embd]; // [n_new, n_embd]
    for h in 0..n_head {
        let cols = h * d_head..(h + 1) * d_head; // this head's columns of q, k, v
        trace.record_with(
            format_args!("block.{layer}.attn.q.head.{h}"),
            &[n_new, d_head],
            || columns(q, n_embd, cols.clone()),
        );
        trace.record_with(
            format_args!("block.{layer}.attn.k.head.{h}"),
            &[n_keys, d_head],
            || columns(keys, n_embd, cols.clone()),
        );
        trace.record_with(
            format_args!("block.{layer}.attn.v.head.{h}"),
            &[n_keys, d_head],
            || columns(values, n_embd, cols.clone()),
        );

        // scores = q_h @ k_h^T / sqrt(d_head): [n_new, d_head] @ [d_head, n_keys] -> [n_new, n_keys]
        let mut scores = vec![0.0; n_new * n_keys];
        for (i, score_row) in scores.chunks_exact_mut(n_keys).enumerate() {
            for (j, s) in score_row.iter_mut().enumerate() {
                *s = dot(
                    head_of_row(q, i, n_embd, h, d_head),
                    head_of_row(keys, j, n_embd, h, d_head),
                ) / scale;
            }
        }
        trace.record(
            format_args!("block.{layer}.attn.scores.head.{h}"),
            &[n_new, n_keys],
            &scores,
        );
        causal_mask(&mut scores, n_keys, pos0);
        trace.record(
            format_args!("block.{layer}.attn.masked.head.{h}"),
            &[n_new, n_keys],
            &scores,
        );
        for score_row in scores.chunks_exact_mut(n_keys) {
            softmax_in_place(score_row); // scores become weights; masked ones exactly 0
        }
        let weights = scores;
        trace.record(
            format_args!("block.{layer}.attn.weights.head.{h}"),
            &[n_new, n_keys],
            &weights,
        );

        // out_h = weights @ v_h: [n_new, n_keys] @ [n_keys, d_head] -> [n_new, d_head],
        // written into this head's columns of `merged`. Only visible keys are visited.
        for (i, weight_row) in weights.chunks_exact(n_keys).enumerate() {
            let out = &mut merged[i * n_embd + cols.start..i * n_embd + cols.end];
            for (j, &w_ij) in weight_row[..=pos0 + i].iter().enumerate() {
                for (o, &v) in out
                    .iter_mut()
                    .zip(head_of_row(values, j, n_embd, h, d_head))
                {
                    *o += w_ij * v;
                }
            }
        }
    }
    merged
}

/// Head `h`'s `d_head` values in row `row` of a `[rows, n_embd]` matrix.
fn head_of_row(m: &[f32], row: usize, n_embd: usize, h: usize, d_head: usize) -> &[f32] {
    let start = row * n_embd + h * d_head;
    &m[start..start + d_head]
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
        let out = causal_self_attention(&[1.0; 4], &[2.0; 4], &v, 4, 2, 0, &mut Trace::disabled());
        assert_eq!(out, v.to_vec());
    }

    #[test]
    fn equal_scores_average_the_visible_values() {
        // Keys all zero -> equal scores; query at position 1 of 3 averages values 0 and 1
        // and ignores value 2 (the future).
        let q = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]; // [3, 2]
        let keys = [0.0; 6];
        let values = [1.0, 10.0, 3.0, 20.0, 100.0, 100.0]; // [3, 2]
        let out = causal_self_attention(&q, &keys, &values, 2, 1, 0, &mut Trace::disabled());
        assert_eq!(&out[2..4], &[2.0, 15.0]);
    }
}
