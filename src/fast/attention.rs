//! The engine's attention: a range of heads computed by one thread, into that thread's
//! columns of the merged output, with no allocation once its buffers have grown.
//!
//! Each head is computed start to finish with the reference's own kernels, in the
//! reference's order (`attention::attention_scores`, `softmax::softmax_in_place`,
//! `matrix::matmul_into`), so it gives the reference's bits whichever thread runs it.
//!
//! One difference: the reference computes every query's scores against every key, masks
//! the future to `-inf` and multiplies its weights of exactly `0.0` into the sum; the
//! engine reads only the visible keys `0..=pos`. The bits are the same: the softmax's
//! maximum ignores `-inf`, each masked `exp(-inf) = 0.0` adds `+0.0` to a positive sum,
//! and each `0.0 * v` adds a zero to an output that, having started at `+0.0`, is never
//! `-0.0` (so for finite values nothing changes). In a 128-token prefill that skips half of
//! attention's work. Otherwise only the data movement differs: each query's slice of a head
//! is read where it lies and the head's output written straight into its columns of the
//! merged heads, where the reference cuts and pastes fresh `Vec`s.

use std::ops::Range;

use super::packed::OutColumns;
use crate::attention::attention_scores;
use crate::kv_cache::LayerKv;
use crate::matrix::matmul_into;
use crate::softmax::softmax_in_place;

/// One thread's buffer for its heads, reused from step to step.
#[derive(Debug, Default)]
pub struct HeadScratch {
    /// One query's scores, then weights, `[n_keys]`.
    weights: Vec<f32>,
}

/// Heads `heads` of causal self-attention of the queries `queries` (`[n_new, n_embd]`, at
/// positions `n_keys - n_new..`) over the first `n_keys` positions of `kv`, into the merged
/// heads' columns `out` (head `h` fills columns `h * d_head..(h + 1) * d_head`).
pub fn attend_heads(
    queries: &[f32],
    kv: &LayerKv,
    n_keys: usize,
    heads: Range<usize>,
    scratch: &mut HeadScratch,
    mut out: OutColumns,
) {
    let (d, n_embd) = (kv.d_head, kv.n_embd());
    let pos0 = n_keys - queries.len() / n_embd;
    let weights = &mut scratch.weights;
    for h in heads {
        let cols = h * d..(h + 1) * d; // this head's columns of the queries and the output
        let (k_h, v_h) = (kv.head_keys(h, n_keys), kv.head_values(h, n_keys)); // [n_keys, d_head]
        for (i, query) in queries.chunks_exact(n_embd).enumerate() {
            let visible = pos0 + i + 1; // query i sees keys 0..=pos0 + i: the causal mask
            weights.resize(visible, 0.0);
            attention_scores(&query[cols.clone()], &k_h[..visible * d], d, weights); // [1, visible]
            softmax_in_place(weights);
            let out_i = out.at(i, cols.clone()); // [d_head]
            matmul_into(weights, &v_h[..visible * d], visible, d, out_i); // weights @ v_h
        }
    }
}
