//! The whole model: the weights, and the forward pass from token ids to logits. This is
//! the *reference* GPT-2, the one LEARN.md walks through; the fast engine (`fast`) is proven
//! to compute exactly the same numbers.
//!
//! ```text
//! x = wte[tokens] + wpe[pos0 .. pos0 + n_new]       [n_new] -> [n_new, n_embd]
//! for each block: x = block(x)                      [n_new, n_embd]
//! logits = ln_f(x) @ wte^T                          [n_new, n_embd] -> [n_new, n_vocab]
//! ```
//!
//! Three separate types, as in llama2.c: [`HParams`] (a small `Copy` struct of sizes),
//! [`Weights`] (plain data, named after the checkpoint keys, every matrix row-major as the
//! checkpoint stores it) and the state, [`KvCache`], passed as `&mut`.
//!
//! There is one forward pass, [`Model::forward_traced`], which runs `n_new` tokens at
//! positions `pos0 = cache.len()` onwards and records every intermediate tensor into a
//! [`Trace`] (a disabled trace records nothing). Two ways of using it:
//! - **full recomputation** ([`Model::forward`]): every position from scratch, with a fresh
//!   cache: `O(n^2)` work per generated token;
//! - **cached decoding** ([`Model::forward_cached`]): feed the prompt once (prefill), then
//!   one token per step; each step reuses the keys and values already in the cache.
//!
//! Every kernel computes each row independently, in a fixed summation order, so both ways
//! give bit-identical logits; `tests/kv_cache.rs` checks it on hundreds of random models.

use std::convert::Infallible;

use crate::attention::{Ablation, Attention, HeadId};
use crate::block::{Block, Mlp};
use crate::error::{Error, Result};
use crate::hparams::HParams;
use crate::kv_cache::KvCache;
use crate::layer_norm::LayerNorm;
use crate::matrix::{Linear, add_in_place, matmul_transposed};
use crate::quant::{Dtype, Q8Matrix, round_matrix};
use crate::rng::XorShift64;
use crate::trace::Trace;

/// Every learned number of the model, named after the GPT-2 checkpoint keys. Every matrix
/// is row-major, exactly as the checkpoint stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// Token embeddings, `[n_vocab, n_embd]`: row `t` is token `t`'s vector. Also the output
    /// layer: the logits are `x @ wte^T` (the two are "tied").
    pub wte: Vec<f32>,
    /// Learned position embeddings, `[n_ctx, n_embd]`.
    pub wpe: Vec<f32>,
    /// The `n_layer` blocks (`h.0`, `h.1`, ...).
    pub blocks: Vec<Block>,
    /// The final layer norm.
    pub ln_f: LayerNorm,
}

/// What a tensor is for, which decides how [`Weights::random`] fills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `wte` or `wpe`.
    Embedding,
    /// The weight `[n_in, n_out]` of a [`Linear`].
    Weight,
    /// The bias `[n_out]` of a [`Linear`].
    Bias,
    /// A layer norm's gain `g` (the checkpoint's `.weight`).
    NormGain,
    /// A layer norm's bias `b`.
    NormBias,
}

/// One tensor as a GPT-2 checkpoint names it (without the `transformer.` prefix that
/// HuggingFace adds), with its shape under some [`HParams`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// `wte.weight`, `h.0.attn.c_attn.bias`, `ln_f.weight`, ...
    pub name: String,
    /// Its shape, such as `[n_embd, 3 * n_embd]`.
    pub shape: Vec<usize>,
    /// What it is for.
    pub role: Role,
}

impl TensorSpec {
    /// How many numbers it holds: the product of its shape.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it holds no number.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Weights {
    /// `n_layer` blocks whose tensors are all empty: the frame the loader and
    /// [`Weights::random`] fill through [`visit_mut`](Self::visit_mut).
    pub fn empty(n_layer: usize) -> Self {
        let linear = || Linear::new(Vec::new(), Vec::new());
        let norm = || LayerNorm { g: Vec::new(), b: Vec::new() };
        let block = || Block {
            ln_1: norm(),
            attn: Attention { c_attn: linear(), c_proj: linear() },
            ln_2: norm(),
            mlp: Mlp { c_fc: linear(), c_proj: linear() },
        };
        Self {
            wte: Vec::new(),
            wpe: Vec::new(),
            blocks: (0..n_layer).map(|_| block()).collect(),
            ln_f: norm(),
        }
    }

    /// The one list of GPT-2's tensors: calls `visit` with each tensor's checkpoint name,
    /// shape under `hparams`, and data, in this order: `wte`, `wpe`, then for each block
    /// `mlp.c_fc`, `mlp.c_proj`, `attn.c_attn`, `attn.c_proj` (weight, then bias), `ln_1`,
    /// `ln_2` (weight, then bias), and last `ln_f`. The loader, the shape check and
    /// [`Weights::random`] all go through it. Stops at the first error `visit` returns.
    pub fn visit_mut<E>(
        &mut self,
        hparams: &HParams,
        mut visit: impl FnMut(&TensorSpec, &mut Vec<f32>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let HParams { n_vocab, n_ctx, n_embd, .. } = *hparams;
        let n_ffn = hparams.n_ffn();
        let mut at = |name: String, shape: &[usize], role, data: &mut Vec<f32>| {
            let shape = shape.to_vec();
            visit(&TensorSpec { name, shape, role }, data)
        };
        at("wte.weight".into(), &[n_vocab, n_embd], Role::Embedding, &mut self.wte)?;
        at("wpe.weight".into(), &[n_ctx, n_embd], Role::Embedding, &mut self.wpe)?;
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let Block { ln_1, attn, ln_2, mlp } = block;
            let linears = [
                ("mlp.c_fc", n_embd, n_ffn, &mut mlp.c_fc),
                ("mlp.c_proj", n_ffn, n_embd, &mut mlp.c_proj),
                ("attn.c_attn", n_embd, 3 * n_embd, &mut attn.c_attn),
                ("attn.c_proj", n_embd, n_embd, &mut attn.c_proj),
            ];
            for (part, n_in, n_out, layer) in linears {
                at(format!("h.{i}.{part}.weight"), &[n_in, n_out], Role::Weight, &mut layer.w)?;
                at(format!("h.{i}.{part}.bias"), &[n_out], Role::Bias, &mut layer.b)?;
            }
            for (part, norm) in [("ln_1", ln_1), ("ln_2", ln_2)] {
                at(format!("h.{i}.{part}.weight"), &[n_embd], Role::NormGain, &mut norm.g)?;
                at(format!("h.{i}.{part}.bias"), &[n_embd], Role::NormBias, &mut norm.b)?;
            }
        }
        at("ln_f.weight".into(), &[n_embd], Role::NormGain, &mut self.ln_f.g)?;
        at("ln_f.bias".into(), &[n_embd], Role::NormBias, &mut self.ln_f.b)
    }

    /// Every tensor a GPT-2 with `hparams` has, in [`visit_mut`](Self::visit_mut)'s order.
    pub fn specs(hparams: &HParams) -> Vec<TensorSpec> {
        let mut specs = Vec::new();
        let Ok(()) = Weights::empty(hparams.n_layer).visit_mut(hparams, |spec, _| {
            specs.push(spec.clone());
            Ok::<(), Infallible>(())
        });
        specs
    }

    /// Random weights, uniform in `[0, 1)` like numpy's `np.random.rand`, drawn from `rng`
    /// in [`visit_mut`](Self::visit_mut)'s order, each matrix row-major: `wte`, `wpe`, then
    /// for each block `mlp.c_fc.w`, `mlp.c_fc.b`, `mlp.c_proj.w`, `mlp.c_proj.b`,
    /// `attn.c_attn.w`, `attn.c_attn.b`, `attn.c_proj.w`, `attn.c_proj.b`. Layer norms are
    /// the identity (gains 1, biases 0) and take no draws. This is the order of the
    /// exercise's `load_encoder_hparams_and_params`, so numpy can rebuild the same weights.
    /// Invalid hyper-parameters ([`HParams::validate`]: sizes that are zero or beyond
    /// memory, ...) are an error, before anything is allocated.
    pub fn random(hparams: &HParams, rng: &mut XorShift64) -> Result<Self> {
        hparams.validate()?;
        let mut weights = Weights::empty(hparams.n_layer);
        let Ok(()) = weights.visit_mut(hparams, |spec, data| {
            *data = Weights::random_tensor(spec, rng);
            Ok::<(), Infallible>(())
        });
        Ok(weights)
    }

    /// The one tensor `spec` of [`Weights::random`], drawn from `rng`: called for each
    /// tensor in [`visit_mut`](Self::visit_mut)'s order with the same `rng`, it gives
    /// `Weights::random`'s numbers, one tensor at a time (so an engine can be built from
    /// random weights without the whole f32 model ever in memory:
    /// [`Engine::from_tensors`](crate::Engine::from_tensors)). Layer norms are the identity
    /// and take no draws.
    ///
    /// ```
    /// use gpt2_edu::{HParams, Weights, XorShift64};
    /// let hparams = HParams { n_vocab: 5, n_ctx: 4, n_embd: 4, n_head: 2, n_layer: 1, layer_norm_eps: 1e-5 };
    /// let whole = Weights::random(&hparams, &mut XorShift64::new(3)?)?;
    /// let mut rng = XorShift64::new(3)?;
    /// let specs = Weights::specs(&hparams);
    /// let one_by_one: Vec<Vec<f32>> = specs.iter().map(|s| Weights::random_tensor(s, &mut rng)).collect();
    /// assert_eq!((&one_by_one[0], &one_by_one[2]), (&whole.wte, &whole.blocks[0].mlp.c_fc.w));
    /// # Ok::<(), gpt2_edu::Error>(())
    /// ```
    pub fn random_tensor(spec: &TensorSpec, rng: &mut XorShift64) -> Vec<f32> {
        match spec.role {
            Role::NormGain => vec![1.0; spec.len()],
            Role::NormBias => vec![0.0; spec.len()],
            Role::Embedding | Role::Weight | Role::Bias => rng.uniform_vec(spec.len()),
        }
    }
}

/// A model ready to run: hyper-parameters plus weights whose shapes were checked, and the
/// attention heads switched off, if any ([`with_heads_off`](Self::with_heads_off)).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The sizes.
    pub hparams: HParams,
    /// The learned numbers.
    pub weights: Weights,
    /// The heads switched off: none unless asked for.
    ablation: Ablation,
    /// `wte^T` (`[n_embd, n_vocab]`) in Q8, for a model stored in Q8
    /// ([`stored_as`](Self::stored_as)): the logits' product, in Q8's order.
    wte_q8: Option<Q8Matrix>,
}

impl Model {
    /// Checks the hyper-parameters, the shape of every weight tensor against them, and
    /// that every weight is a finite number. Nothing is allocated: absurd sizes are an
    /// error, whatever the weights hold.
    pub fn new(hparams: HParams, mut weights: Weights) -> Result<Self> {
        hparams.validate()?;
        check_shapes(&hparams, &mut weights)?;
        check_q8_shapes(&weights)?;
        Ok(Self { hparams, weights, ablation: Ablation::none(), wte_q8: None })
    }

    /// This model with `heads` switched off (replacing any switched off before): each one's
    /// output is zero before its block's `attn.c_proj` ([`Ablation`]), in every forward
    /// pass, and in the [`Engine`](crate::Engine) built from it. A layer or head the model
    /// does not have is an [`Error::NoSuchHead`].
    pub fn with_heads_off(mut self, heads: &[HeadId]) -> Result<Self> {
        self.ablation = Ablation::new(heads, &self.hparams)?;
        Ok(self)
    }

    /// The heads switched off.
    pub fn ablation(&self) -> &Ablation {
        &self.ablation
    }

    /// The reference model of weights stored in `dtype`: every matrix the engine keeps in
    /// `dtype` (the four of each block, and `wte`, which the logits and the embedding
    /// lookup both read) replaced by the f32 values it stands for ([`crate::quant`]);
    /// `wpe`, biases and layer norms stay f32. For Q8 each matrix also keeps its blocks
    /// ([`Linear::q8`], and `wte^T`'s), and its products are Q8's block sums. So this model
    /// *defines* what [`Engine::with_dtype`](crate::Engine::with_dtype) computes, bit for
    /// bit. A weight that bf16 rounds to infinity (within half a step of `f32::MAX`) is
    /// [`Error::NonFiniteWeight`]. F32 returns the model unchanged; a model already stored
    /// in Q8 cannot be stored again ([`Error::InvalidArgument`]: its `w` are no longer the
    /// checkpoint's values).
    ///
    /// ```
    /// use gpt2_edu::{dummy, Dtype, Model};
    /// let (_, hparams, weights) = dummy::load_encoder_hparams_and_params();
    /// let model = Model::new(hparams, weights).unwrap().stored_as(Dtype::Bf16).unwrap();
    /// assert!(model.weights.wte.iter().all(|w| w.to_bits() & 0xFFFF == 0)); // bf16 values
    /// let q8 = model.clone().stored_as(Dtype::Q8).unwrap();
    /// assert!(q8.weights.blocks[0].mlp.c_fc.q8.is_some());
    /// assert!(q8.stored_as(Dtype::Q8).is_err());
    /// ```
    pub fn stored_as(mut self, dtype: Dtype) -> Result<Self> {
        if self.is_q8() {
            return Err(Error::InvalidArgument(
                "this model is already stored in q8: store the f32 model instead".into(),
            ));
        }
        let hparams = self.hparams;
        check_storable(&hparams, &mut self.weights, dtype)?;
        let (n_vocab, n_embd) = (hparams.n_vocab, hparams.n_embd);
        if dtype == Dtype::Q8 {
            self.wte_q8 = Some(Q8Matrix::quantize_transposed(&self.weights.wte, n_vocab, n_embd));
        }
        // wte is [n_vocab, n_embd]; the logits read it as wte^T [n_embd, n_vocab], so its
        // Q8 blocks run along a row: 32 numbers of one token's embedding.
        round_rows(&mut self.weights.wte, n_embd, dtype);
        for block in &mut self.weights.blocks {
            block.matrices_mut().into_iter().for_each(|layer| layer.store_as(dtype));
        }
        Ok(self)
    }

    /// `wte^T`'s Q8 blocks, taken out of the model (for the engine, which packs them).
    pub(crate) fn take_wte_q8(&mut self) -> Option<Q8Matrix> {
        self.wte_q8.take()
    }

    /// Whether any matrix is stored in Q8 ([`stored_as`](Self::stored_as)).
    pub fn is_q8(&self) -> bool {
        self.wte_q8.is_some() || self.weights.blocks.iter().any(Block::has_q8)
    }

    /// The logits of rows `x` (`[n_rows, n_embd]`, after `ln_f`): `x @ wte^T`,
    /// `[n_rows, n_vocab]`. In Q8, the block sums of `wte^T`'s blocks.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        let HParams { n_vocab, n_embd, .. } = self.hparams;
        match &self.wte_q8 {
            None => matmul_transposed(x, &self.weights.wte, n_embd, n_vocab), // x @ wte^T
            Some(wte_t) => wte_t.matmul(x),
        }
    }

    /// **Full recomputation**: runs every position of `tokens` from scratch and returns the
    /// logits of every position, `[n_seq, n_vocab]`.
    pub fn forward(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.forward_full_traced(tokens, &mut Trace::disabled())
    }

    /// [`forward`](Self::forward), recording every intermediate tensor into `trace`.
    pub fn forward_full_traced(&self, tokens: &[u32], trace: &mut Trace) -> Result<Vec<f32>> {
        let mut fresh = KvCache::with_capacity(&self.hparams, tokens.len())?;
        self.forward_traced(tokens, &mut fresh, trace)
    }

    /// **Cached decoding**: runs the `n_new` new `tokens` at positions `cache.len()..`,
    /// attending to the keys and values already in `cache` and appending their own.
    /// Returns the new positions' logits, `[n_new, n_vocab]`. Feed the prompt first
    /// (prefill, all at once or in chunks), then one token per step.
    pub fn forward_cached(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        self.forward_traced(tokens, cache, &mut Trace::disabled())
    }

    /// The forward pass itself (see the module docs): runs `tokens` at positions
    /// `cache.len()..`, extends `cache`, records every intermediate tensor into `trace`,
    /// and returns the new positions' logits, `[n_new, n_vocab]`.
    pub fn forward_traced(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        trace: &mut Trace,
    ) -> Result<Vec<f32>> {
        check_input(&self.hparams, tokens, cache)?;
        let HParams { n_vocab, n_embd, layer_norm_eps: eps, .. } = self.hparams;
        let (pos0, n_new) = (cache.len(), tokens.len());

        let mut x = self.embed(tokens, pos0, trace); // [n_new] -> [n_new, n_embd]
        for (layer, block) in self.weights.blocks.iter().enumerate() {
            let (kv, heads_off) = (cache.layer_mut(layer), self.ablation.heads_off(layer));
            block.forward(&mut x, &self.hparams, kv, pos0, (layer, heads_off), trace);
        }
        cache.advance(n_new);

        let x = self.weights.ln_f.forward(&x, eps); // [n_new, n_embd]
        trace.record(format_args!("ln_f"), &[n_new, n_embd], &x);
        let logits = self.logits(&x); // x @ wte^T
        trace.record(format_args!("logits"), &[n_new, n_vocab], &logits);
        Ok(logits)
    }

    /// Token embedding plus position embedding for positions `pos0..pos0 + n_new`:
    /// `[n_new] -> [n_new, n_embd]`.
    fn embed(&self, tokens: &[u32], pos0: usize, trace: &mut Trace) -> Vec<f32> {
        let n_embd = self.hparams.n_embd;
        let shape = [tokens.len(), n_embd];
        let mut x: Vec<f32> = tokens
            .iter()
            .flat_map(|&t| self.weights.wte[t as usize * n_embd..][..n_embd].iter().copied())
            .collect(); // rows `tokens` of wte
        let wpe_rows = &self.weights.wpe[pos0 * n_embd..(pos0 + tokens.len()) * n_embd];
        trace.record(format_args!("wte"), &shape, &x);
        trace.record(format_args!("wpe"), &shape, wpe_rows);
        add_in_place(&mut x, wpe_rows);
        trace.record(format_args!("embeddings"), &shape, &x);
        x
    }
}

/// The columns of a tensor the engine stores in its dtype (the blocks' matrices and
/// `wte`), `None` for the ones it keeps in f32.
fn matrix_columns(spec: &TensorSpec) -> Option<usize> {
    match spec.role {
        Role::Weight => Some(spec.shape[1]),
        Role::Embedding if spec.name == "wte.weight" => Some(spec.shape[1]),
        _ => None,
    }
}

/// The one way storing weights in `dtype` can fail: a finite weight within half a bf16
/// step of `f32::MAX` rounds to infinity in bf16. Named as the loader names a non-finite
/// weight, with the dtype (Q8 and f32 always succeed).
pub(crate) fn check_storable(hparams: &HParams, weights: &mut Weights, dtype: Dtype) -> Result<()> {
    weights.visit_mut(hparams, |spec, data| check_tensor_storable(spec, data, dtype))
}

/// [`check_storable`] for one tensor: whether `data`, the tensor `spec`, can be stored in
/// `dtype`, with the same error.
pub(crate) fn check_tensor_storable(spec: &TensorSpec, data: &[f32], dtype: Dtype) -> Result<()> {
    if dtype != Dtype::Bf16 {
        return Ok(());
    }
    let bad = matrix_columns(spec)
        .and_then(|_| data.iter().position(|&w| !crate::quant::round_to_bf16(w).is_finite()));
    match bad {
        None => Ok(()),
        Some(index) => Err(Error::NonFiniteWeight {
            tensor: format!("{} (rounded to {dtype})", spec.name),
            index,
            value: crate::quant::round_to_bf16(data[index]).to_string(),
        }),
    }
}

/// A `[n_rows, n_cols]` matrix read transposed (`wte^T`) rounded to `dtype`: Q8 blocks of
/// 32 along each row. A row of `[n_rows, n_cols]` is a column of its transpose, so each row
/// is rounded as a one-column matrix `[n_cols, 1]`.
fn round_rows(m: &mut [f32], n_cols: usize, dtype: Dtype) {
    for row in m.chunks_exact_mut(n_cols.max(1)) {
        round_matrix(row, 1, dtype);
    }
}

/// A layer's Q8 blocks, if it has them, must be its own shape: `q` as long as `w`, one
/// column per bias, one scale per block of 32 rows and column. (That they stand for `w`
/// is [`Model::stored_as`]'s to keep.)
fn check_q8_shapes(weights: &Weights) -> Result<()> {
    for (i, block) in weights.blocks.iter().enumerate() {
        for (name, layer) in block.matrices() {
            let Some(q8) = &layer.q8 else { continue };
            let n_blocks = layer.n_in().div_ceil(crate::quant::Q8_BLOCK);
            if q8.q.len() != layer.w.len()
                || q8.n_out != layer.n_out()
                || q8.scales.len() != n_blocks * layer.n_out()
            {
                return Err(Error::ShapeMismatch {
                    tensor: format!("h.{i}.{name} (q8 blocks)"),
                    expected: vec![layer.w.len(), n_blocks * layer.n_out()],
                    found: vec![q8.q.len(), q8.scales.len()],
                });
            }
        }
    }
    Ok(())
}

/// Every way the input to a forward pass can be wrong, reported before any work is done:
/// a cache made for other sizes, a token outside the vocabulary, more positions than the
/// context or the cache holds. The reference model and the engine share it.
pub(crate) fn check_input(hparams: &HParams, tokens: &[u32], cache: &KvCache) -> Result<()> {
    let hp = hparams;
    let shape = |layers, heads, width| vec![layers, heads, width];
    let expected = shape(hp.n_layer, hp.n_head, hp.n_embd);
    let found = shape(cache.n_layer(), cache.n_head(), cache.n_embd());
    if found != expected {
        return Err(Error::ShapeMismatch {
            tensor: "KV cache [n_layer, n_head, n_embd] (made for another model?)".into(),
            expected,
            found,
        });
    }
    if tokens.is_empty() {
        return Err(Error::InvalidArgument(
            "no tokens to run: the forward pass needs at least one".into(),
        ));
    }
    if let Some(&token) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
        return Err(Error::TokenOutOfRange { token, n_vocab: hp.n_vocab });
    }
    let limit = hp.n_ctx.min(cache.capacity());
    if cache.len().saturating_add(tokens.len()) > limit {
        return Err(Error::ContextOverflow {
            prompt_tokens: cache.len(),
            new_tokens: tokens.len(),
            n_ctx: limit,
        });
    }
    Ok(())
}

/// Compares every tensor's length with the shape `hparams` (already validated) calls for,
/// and checks that every value is finite; the error names the tensor as a GPT-2 checkpoint
/// does.
fn check_shapes(hparams: &HParams, weights: &mut Weights) -> Result<()> {
    if weights.blocks.len() != hparams.n_layer {
        return Err(Error::ShapeMismatch {
            tensor: "h".into(),
            expected: vec![hparams.n_layer],
            found: vec![weights.blocks.len()],
        });
    }
    weights.visit_mut(hparams, |spec, data| check_tensor(spec, data))
}

/// [`Model::new`]'s check of one tensor: `data` must hold the `spec.len()` numbers of the
/// tensor `spec` names, every one finite.
pub(crate) fn check_tensor(spec: &TensorSpec, data: &[f32]) -> Result<()> {
    if data.len() != spec.len() {
        return Err(Error::ShapeMismatch {
            tensor: spec.name.clone(),
            expected: spec.shape.clone(),
            found: vec![data.len()],
        });
    }
    match first_non_finite(data) {
        None => Ok(()),
        Some(index) => Err(Error::NonFiniteWeight {
            tensor: spec.name.clone(),
            index,
            value: data[index].to_string(),
        }),
    }
}

/// The index of the first NaN or infinity in `data`, if any. Loading checks every weight,
/// so this is written to be fast: each run of 64 numbers is tested without a branch per
/// number (which the compiler turns into vector instructions), and only a run that holds
/// one is searched for it.
pub(crate) fn first_non_finite(data: &[f32]) -> Option<usize> {
    const RUN: usize = 64;
    let run =
        data.chunks(RUN).position(|run| !run.iter().fold(true, |ok, v| ok & v.is_finite()))?;
    let at = run * RUN;
    data[at..].iter().position(|v| !v.is_finite()).map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (HParams, Weights) {
        let hparams = HParams {
            n_vocab: 5,
            n_ctx: 8,
            n_embd: 4,
            n_head: 2,
            n_layer: 1,
            layer_norm_eps: 1e-5,
        };
        let weights = Weights::random(&hparams, &mut XorShift64::new(9).unwrap()).unwrap();
        (hparams, weights)
    }

    #[test]
    fn a_wrong_shape_is_named() {
        let (hparams, mut weights) = tiny();
        weights.blocks[0].mlp.c_fc.b.pop();
        let err = Model::new(hparams, weights).unwrap_err();
        assert_eq!(
            err,
            Error::ShapeMismatch {
                tensor: "h.0.mlp.c_fc.bias".into(),
                expected: vec![16],
                found: vec![15],
            }
        );
        let (hparams, mut weights) = tiny();
        weights.blocks.clear();
        let err = Model::new(hparams, weights).unwrap_err().to_string();
        assert!(err.contains("tensor `h` has shape [0]"), "{err}");
    }

    #[test]
    fn a_non_finite_weight_is_named_with_its_index() {
        for (bad, value) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")]
        {
            let (hparams, mut weights) = tiny();
            weights.blocks[0].attn.c_attn.w[7] = bad;
            weights.blocks[0].attn.c_attn.w[9] = bad; // only the first is named
            let err = Model::new(hparams, weights).unwrap_err();
            let expected = Error::NonFiniteWeight {
                tensor: "h.0.attn.c_attn.weight".into(),
                index: 7,
                value: value.into(),
            };
            assert_eq!(err, expected);
            assert!(
                err.to_string().starts_with(&format!(
                    "tensor `h.0.attn.c_attn.weight` holds {value} at index 7"
                )),
                "{err}"
            );
        }
        let (hparams, mut weights) = tiny();
        weights.ln_f.b[3] = f32::NAN;
        let err = Model::new(hparams, weights).unwrap_err().to_string();
        assert!(err.starts_with("tensor `ln_f.bias` holds NaN at index 3"), "{err}");
    }

    #[test]
    fn the_first_non_finite_number_is_found_wherever_it_is() {
        assert_eq!(first_non_finite(&[]), None);
        let mut data = vec![1.0f32; 200];
        assert_eq!(first_non_finite(&data), None);
        for (at, bad) in
            [(0, f32::NAN), (63, f32::INFINITY), (64, f32::NEG_INFINITY), (199, f32::NAN)]
        {
            data[at] = bad;
            data[at.max(150)] = f32::NAN; // a later one is not the first
            assert_eq!(first_non_finite(&data), Some(at), "{at}");
            data.fill(1.0);
        }
        assert_eq!(first_non_finite(&[f32::MAX, -f32::MAX, f32::MIN_POSITIVE, -0.0]), None);
    }

    #[test]
    fn absurd_sizes_with_empty_weights_are_an_error_not_an_abort() {
        let (tiny, _) = tiny();
        for hparams in [
            HParams { n_ctx: 1 << 62, ..tiny },
            HParams { n_embd: 1 << 62, n_head: 1, ..tiny },
            HParams { n_vocab: 1 << 32, ..tiny },
            HParams { n_layer: 1 << 60, ..tiny },
        ] {
            let err = Model::new(hparams, Weights::empty(0)).unwrap_err();
            assert!(matches!(err, Error::InvalidHParams(_)), "{hparams:?}: {err}");
        }
        // Addressable but wrong sizes get the shape check, which allocates nothing.
        let hparams = HParams { n_ctx: 1 << 40, ..tiny };
        let err = Model::new(hparams, Weights::empty(1)).unwrap_err();
        assert_eq!(
            err,
            Error::ShapeMismatch {
                tensor: "wte.weight".into(),
                expected: vec![5, 4],
                found: vec![0]
            }
        );
    }

    #[test]
    fn the_tensor_list_names_every_checkpoint_tensor_once_with_its_shape() {
        let (hparams, _) = tiny();
        let specs = Weights::specs(&hparams);
        assert_eq!(specs.len(), 2 + 12 + 2, "wte, wpe, 12 per block, ln_f");
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            &names[..4],
            ["wte.weight", "wpe.weight", "h.0.mlp.c_fc.weight", "h.0.mlp.c_fc.bias"]
        );
        let c_attn = specs.iter().find(|s| s.name == "h.0.attn.c_attn.weight").unwrap();
        assert_eq!((c_attn.shape.clone(), c_attn.role), (vec![4, 12], Role::Weight));
        let total: usize = specs.iter().map(TensorSpec::len).sum();
        assert_eq!(
            total,
            (5 + 8) * 4 + (4 * 16 + 16 + 16 * 4 + 4 + 4 * 12 + 12 + 4 * 4 + 4 + 16) + 8
        );
    }

    #[test]
    fn random_weights_are_drawn_in_the_documented_order() {
        let (hparams, weights) = tiny();
        let mut rng = XorShift64::new(9).unwrap();
        assert_eq!(weights.wte, rng.uniform_vec(5 * 4));
        assert_eq!(weights.wpe, rng.uniform_vec(8 * 4));
        assert_eq!(weights.blocks[0].mlp.c_fc.w, rng.uniform_vec(4 * 16));
        assert_eq!(weights.blocks[0].ln_1, LayerNorm::identity(hparams.n_embd));
    }

    #[test]
    fn out_of_vocabulary_and_overlong_inputs_are_errors() {
        let (hparams, weights) = tiny();
        let model = Model::new(hparams, weights).unwrap();
        assert_eq!(model.forward(&[1, 5]), Err(Error::TokenOutOfRange { token: 5, n_vocab: 5 }));
        assert!(matches!(model.forward(&[0; 9]), Err(Error::ContextOverflow { n_ctx: 8, .. })));
    }

    #[test]
    fn logits_have_one_row_per_position() {
        let (hparams, weights) = tiny();
        let model = Model::new(hparams, weights).unwrap();
        assert_eq!(model.forward(&[0, 1, 2]).unwrap().len(), 3 * 5);
    }
}
