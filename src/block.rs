//! One transformer block: attention then a feed-forward network, each behind a layer norm
//! and added back to its input (pre-norm residual connections).
//!
//! ```text
//! x = x + attn(ln_1(x))                     [n_seq, n_embd]
//! x = x + mlp(ln_2(x))                      [n_seq, n_embd]
//! mlp(x) = c_proj(gelu(c_fc(x)))            [n_seq, n_embd] -> [n_seq, 4*n_embd] -> [n_seq, n_embd]
//! ```
//!
//! The residual stream `x` keeps its shape through every block; each block only adds to it.
//! GPT-2 stacks `n_layer` of these.

use crate::attention::Attention;
use crate::gelu::gelu_in_place;
use crate::hparams::HParams;
use crate::kv_cache::LayerKv;
use crate::layer_norm::LayerNorm;
use crate::matrix::{Linear, add_in_place};
use crate::trace::Trace;

/// The feed-forward network ("MLP") of one block, named as in GPT-2 checkpoints
/// (`h.0.mlp.c_fc`, `h.0.mlp.c_proj`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// Expansion: `[n_embd, 4 * n_embd]`.
    pub c_fc: Linear,
    /// Projection back: `[4 * n_embd, n_embd]`.
    pub c_proj: Linear,
}

impl Mlp {
    /// `c_proj(gelu(c_fc(x)))`: `[n_seq, n_embd] -> [n_seq, 4 n_embd] -> [n_seq, n_embd]`,
    /// every step recorded into `trace` as `block.{layer}.mlp.*`.
    pub fn forward(&self, x: &[f32], layer: usize, trace: &mut Trace) -> Vec<f32> {
        let n_seq = x.len() / self.c_fc.n_in();
        let hidden_shape = [n_seq, self.c_fc.n_out()];

        let mut hidden = self.c_fc.forward(x); // [n_seq, n_embd] -> [n_seq, 4 n_embd]
        trace.record(format_args!("block.{layer}.mlp.c_fc"), &hidden_shape, &hidden);
        gelu_in_place(&mut hidden);
        trace.record(format_args!("block.{layer}.mlp.gelu"), &hidden_shape, &hidden);
        let out = self.c_proj.forward(&hidden); // [n_seq, 4 n_embd] -> [n_seq, n_embd]
        trace.record(format_args!("block.{layer}.mlp.c_proj"), &[n_seq, self.c_proj.n_out()], &out);
        out
    }
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

impl Block {
    /// Whether any of its matrices is stored in Q8 ([`Linear::q8`](crate::matrix::Linear::q8)).
    pub fn has_q8(&self) -> bool {
        self.matrices().iter().any(|(_, layer)| layer.q8.is_some())
    }

    /// Whether all four of its matrices are stored in Q8.
    pub fn all_q8(&self) -> bool {
        self.matrices().iter().all(|(_, layer)| layer.q8.is_some())
    }

    /// Its four matrices with their names in the checkpoint (after `h.{i}.`):
    /// `attn.c_attn`, `attn.c_proj`, `mlp.c_fc`, `mlp.c_proj`.
    pub(crate) fn matrices(&self) -> [(&'static str, &Linear); 4] {
        [
            ("attn.c_attn", &self.attn.c_attn),
            ("attn.c_proj", &self.attn.c_proj),
            ("mlp.c_fc", &self.mlp.c_fc),
            ("mlp.c_proj", &self.mlp.c_proj),
        ]
    }

    /// The same four matrices, to change.
    pub(crate) fn matrices_mut(&mut self) -> [&mut Linear; 4] {
        let (attn, mlp) = (&mut self.attn, &mut self.mlp);
        [&mut attn.c_attn, &mut attn.c_proj, &mut mlp.c_fc, &mut mlp.c_proj]
    }

    /// Runs block `layer` on the residual stream `x` (`[n_new, n_embd]`, updated in place)
    /// for the `n_new` positions starting at `pos0`, reading and extending this layer's
    /// cache `kv`. Every intermediate tensor is recorded into `trace`. The attention heads
    /// in `heads_off` are switched off ([`Ablation`](crate::attention::Ablation)).
    pub fn forward(
        &self,
        x: &mut [f32],
        hparams: &HParams,
        kv: &mut LayerKv,
        pos0: usize,
        (layer, heads_off): (usize, &[usize]),
        trace: &mut Trace,
    ) {
        let HParams { n_embd, n_head, layer_norm_eps: eps, .. } = *hparams;
        let shape = [x.len() / n_embd, n_embd]; // [n_new, n_embd]

        // x = x + attn(ln_1(x))
        let normed = self.ln_1.forward(x, eps);
        trace.record(format_args!("block.{layer}.ln_1"), &shape, &normed);
        add_in_place(x, &self.attn.forward(&normed, n_head, kv, pos0, (layer, heads_off), trace));
        trace.record(format_args!("block.{layer}.residual_1"), &shape, x);

        // x = x + mlp(ln_2(x))
        let normed = self.ln_2.forward(x, eps);
        trace.record(format_args!("block.{layer}.ln_2"), &shape, &normed);
        add_in_place(x, &self.mlp.forward(&normed, layer, trace));
        trace.record(format_args!("block.{layer}.residual_2"), &shape, x);
    }
}
