//! The engine's attention: a range of heads computed by one thread, into that thread's
//! columns of the merged output, with no allocation once its buffers have grown.
//!
//! Each head is computed start to finish with the reference's own kernels, in the
//! reference's order (`attention::attention_scores`, `attention::causal_mask`,
//! `softmax::softmax_rows`, `matrix::matmul_into`), so it gives the reference's bits
//! whichever thread runs it. Only the data movement differs: a head's queries are gathered
//! into a reused buffer and its output scattered into the merged heads, where the
//! reference cuts and pastes fresh `Vec`s.

use std::ops::Range;

use super::packed::OutColumns;
use crate::attention::{attention_scores, causal_mask};
use crate::kv_cache::LayerKv;
use crate::matrix::matmul_into;
use crate::softmax::softmax_rows;

/// One thread's buffers for its heads, reused from step to step.
#[derive(Debug, Default)]
pub struct HeadScratch {
    /// One head's queries, `[n_new, d_head]`.
    q_h: Vec<f32>,
    /// One head's scores, then weights, `[n_new, n_keys]`.
    weights: Vec<f32>,
    /// One head's output, `[n_new, d_head]`.
    out_h: Vec<f32>,
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
    let n_new = queries.len() / n_embd;
    let pos0 = n_keys - n_new;
    let HeadScratch {
        q_h,
        weights,
        out_h,
    } = scratch;
    for h in heads {
        let cols = h * d..(h + 1) * d;
        q_h.clear();
        for row in queries.chunks_exact(n_embd) {
            q_h.extend_from_slice(&row[cols.clone()]); // [n_new, d_head]
        }
        let (k_h, v_h) = (kv.head_keys(h, n_keys), kv.head_values(h, n_keys));
        weights.resize(n_new * n_keys, 0.0);
        attention_scores(q_h, k_h, d, weights);
        causal_mask(weights, n_keys, pos0);
        softmax_rows(weights, n_keys);
        out_h.resize(n_new * d, 0.0);
        matmul_into(weights, v_h, n_keys, d, out_h); // weights @ v_h: [n_new, d_head]
        for (i, row) in out_h.chunks_exact(d).enumerate() {
            out.at(i, cols.clone()).copy_from_slice(row);
        }
    }
}
