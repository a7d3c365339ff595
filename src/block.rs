//! One transformer block: attention then a feed-forward network, each behind a layer norm
//! and added back to its input (pre-norm residual connections).
//!
//! ```text
//! x = x + attn(ln_1(x))                     [n_seq, n_embd]
//! x = x + ffn(ln_2(x))                      [n_seq, n_embd]
//! ffn(x) = c_proj(gelu(c_fc(x)))            [n_seq, n_embd] -> [n_seq, 4*n_embd] -> [n_seq, n_embd]
//! ```
//!
//! The residual stream `x` keeps its shape through every block; each block only adds to it.
//! GPT-2 stacks `n_layer` of these.

use crate::attention::{Attention, AttentionScratch, attention};
use crate::gelu::gelu_in_place;
use crate::kv_cache::LayerKv;
use crate::layer_norm::LayerNorm;
use crate::matrix::{Linear, add_in_place};
use crate::model::HParams;
use crate::threads::{BlockMatrix, Product, ThreadPool};
use crate::trace::Trace;

/// The feed-forward network ("MLP") of one block, named as in GPT-2 checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// Expansion: `[n_embd, 4 * n_embd]`.
    pub c_fc: Linear,
    /// Projection back: `[4 * n_embd, n_embd]`.
    pub c_proj: Linear,
}

/// The weights of one block, named as in GPT-2 checkpoints (`h.0.ln_1`, `h.0.attn`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Layer norm before attention.
    pub ln_1: LayerNorm,
    /// Causal self-attention.
    pub attn: Attention,
    /// Layer norm before the feed-forward network.
    pub ln_2: LayerNorm,
    /// Feed-forward network.
    pub mlp: Mlp,
}

/// Buffers a block writes into, reused from step to step.
#[derive(Debug, Default)]
pub struct BlockScratch {
    /// `ln_1(x)`, then `ln_2(x)`: `[n_new, n_embd]`.
    pub normed: Vec<f32>,
    /// Attention's own buffers.
    pub attention: AttentionScratch,
    /// The attention's or the MLP's output, before it is added to `x`: `[n_new, n_embd]`.
    pub sublayer_out: Vec<f32>,
    /// The MLP's hidden layer, `[n_new, 4 n_embd]`.
    pub hidden: Vec<f32>,
}

/// `c_proj(gelu(c_fc(normed)))` into `out`: `[n_new, n_embd] -> [n_new, 4 n_embd] -> [n_new, n_embd]`.
fn mlp(
    normed: &[f32],
    n_ffn: usize,
    layer: usize,
    pool: &ThreadPool,
    hidden: &mut Vec<f32>,
    out: &mut Vec<f32>,
    trace: &mut Trace,
) {
    let n_new = normed.len() * 4 / n_ffn;
    let n_embd = n_ffn / 4;
    hidden.resize(n_new * n_ffn, 0.0);
    if trace.is_enabled() {
        // hidden = gelu(normed @ mlp.c_fc.w + mlp.c_fc.b), each step recorded.
        pool.compute(
            Product::Linear {
                layer,
                matrix: BlockMatrix::MlpFc,
            },
            normed,
            hidden,
        );
        trace.record(
            format_args!("block.{layer}.mlp.c_fc"),
            &[n_new, n_ffn],
            hidden,
        );
        gelu_in_place(hidden);
        trace.record(
            format_args!("block.{layer}.mlp.gelu"),
            &[n_new, n_ffn],
            hidden,
        );
    } else {
        // The same, with each thread applying GELU to the columns it computed.
        pool.compute(
            Product::Linear {
                layer,
                matrix: BlockMatrix::MlpFcGelu,
            },
            normed,
            hidden,
        );
    }
    out.resize(n_new * n_embd, 0.0);
    pool.compute(
        Product::Linear {
            layer,
            matrix: BlockMatrix::MlpProj,
        },
        hidden,
        out,
    );
    trace.record(
        format_args!("block.{layer}.mlp.c_proj"),
        &[n_new, n_embd],
        out,
    );
}

impl Block {
    /// Runs the block on the residual stream `x` (`[n_new, n_embd]`, updated in place) for
    /// the `n_new` positions starting at `pos0`, reading and extending this layer's `kv`.
    /// The matrix products run on `pool`; `scratch` holds the intermediate results.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &mut [f32],
        hparams: &HParams,
        kv: &mut LayerKv,
        pos0: usize,
        layer: usize,
        pool: &ThreadPool,
        scratch: &mut BlockScratch,
        trace: &mut Trace,
    ) {
        let HParams {
            n_embd,
            n_head,
            layer_norm_eps: eps,
            ..
        } = *hparams;
        let shape = [x.len() / n_embd, n_embd]; // [n_new, n_embd]
        let BlockScratch {
            normed,
            attention: attn_scratch,
            sublayer_out,
            hidden,
        } = scratch;

        // x = x + attn(ln_1(x))
        self.ln_1.forward_into(x, eps, normed);
        trace.record(format_args!("block.{layer}.ln_1"), &shape, normed);
        attention(
            normed,
            n_embd,
            n_head,
            kv,
            pos0,
            layer,
            pool,
            attn_scratch,
            sublayer_out,
            trace,
        );
        add_in_place(x, sublayer_out);
        trace.record(format_args!("block.{layer}.residual_1"), &shape, x);

        // x = x + ffn(ln_2(x))
        self.ln_2.forward_into(x, eps, normed);
        trace.record(format_args!("block.{layer}.ln_2"), &shape, normed);
        mlp(
            normed,
            hparams.n_ffn(),
            layer,
            pool,
            hidden,
            sublayer_out,
            trace,
        );
        add_in_place(x, sublayer_out);
        trace.record(format_args!("block.{layer}.residual_2"), &shape, x);
    }
}
