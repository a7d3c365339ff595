//! The whole model: hyper-parameters, weights, and the forward pass from token ids to
//! logits.
//!
//! ```text
//! x = wte[tokens] + wpe[pos0 .. pos0 + n_new]       [n_new] -> [n_new, n_embd]
//! for each block: x = block(x)                      [n_new, n_embd]
//! logits = ln_f(x) @ wte^T                          [n_new, n_embd] -> [n_new, n_vocab]
//! ```
//!
//! Three separate types, as in llama2.c: [`HParams`] (a small `Copy` struct of sizes),
//! [`Weights`] (plain data, named after the checkpoint keys, only ever borrowed during
//! inference) and the state, [`KvCache`], passed as `&mut`.
//!
//! There is one forward pass, [`Model::forward_traced`], which runs `n_new` tokens at
//! positions `pos0 = cache.len()` onwards. Two ways of using it:
//! - **full recomputation** ([`Model::forward`]): every position from scratch, with a fresh
//!   cache: the reference, `O(n^2)` work per generated token;
//! - **cached decoding** ([`Model::forward_cached`]): feed the prompt once (prefill), then
//!   one token per step; each step reuses the keys and values already in the cache.
//!
//! Every kernel computes each row independently, in a fixed summation order, so both ways
//! give bit-identical logits; `tests/kv_cache.rs` checks it on hundreds of random models.

use std::sync::Arc;

use crate::attention::Attention;
use crate::block::{Block, BlockScratch, Mlp};
use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::layer_norm::LayerNorm;
use crate::matrix::{Linear, TokenEmbedding};
use crate::rng::XorShift64;
use crate::threads::{Product, ThreadPool};
use crate::trace::Trace;

/// The hyper-parameters: every size in the model. Small and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HParams {
    /// Vocabulary size: how many different tokens exist.
    pub n_vocab: usize,
    /// Context length: the most positions the model can see (rows of `wpe`).
    pub n_ctx: usize,
    /// Embedding width: the size of each position's vector in the residual stream.
    pub n_embd: usize,
    /// Attention heads per block; each gets `d_head = n_embd / n_head` dimensions.
    pub n_head: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// The `eps` of every layer norm.
    pub layer_norm_eps: f32,
}

impl HParams {
    /// The exercise's dummy model: `n_vocab` 4, `n_ctx` 1024, `n_embd` 10, `n_head` 2,
    /// `n_layer` 2. (The exercise says 12 heads, but 12 heads cannot split 10 dimensions
    /// evenly; 2 heads of 5 can.)
    pub const fn dummy() -> Self {
        Self {
            n_vocab: 4,
            n_ctx: 1024,
            n_embd: 10,
            n_head: 2,
            n_layer: 2,
            layer_norm_eps: 1e-5,
        }
    }

    /// The sizes of OpenAI's smallest GPT-2 ("124M").
    pub const fn gpt2_124m() -> Self {
        Self {
            n_vocab: 50257,
            n_ctx: 1024,
            n_embd: 768,
            n_head: 12,
            n_layer: 12,
            layer_norm_eps: 1e-5,
        }
    }

    /// Dimensions per attention head, `n_embd / n_head`.
    pub fn d_head(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Width of the feed-forward network's hidden layer, `4 * n_embd` in GPT-2.
    pub fn n_ffn(&self) -> usize {
        4 * self.n_embd
    }

    /// Checks that the sizes describe a GPT-2: all positive, and `n_head` divides `n_embd`.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("n_vocab", self.n_vocab),
            ("n_ctx", self.n_ctx),
            ("n_embd", self.n_embd),
            ("n_head", self.n_head),
            ("n_layer", self.n_layer),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return Err(Error::InvalidHParams(format!(
                "{name} must be at least 1, found 0"
            )));
        }
        if self.n_embd % self.n_head != 0 {
            return Err(Error::InvalidHParams(format!(
                "n_head = {} must divide n_embd = {} so every head gets the same width",
                self.n_head, self.n_embd
            )));
        }
        if self.n_vocab > u32::MAX as usize {
            return Err(Error::InvalidHParams(format!(
                "n_vocab = {} does not fit token ids in u32",
                self.n_vocab
            )));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(Error::InvalidHParams(format!(
                "layer_norm_eps must be a positive number, found {}",
                self.layer_norm_eps
            )));
        }
        Ok(())
    }
}

/// Every learned number of the model, named after the GPT-2 checkpoint keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// Token embeddings, `[n_vocab, n_embd]`; also the output layer (tied). Stored in the
    /// logits' layout (see [`TokenEmbedding`]).
    pub wte: TokenEmbedding,
    /// Learned position embeddings, `[n_ctx, n_embd]`.
    pub wpe: Vec<f32>,
    /// The `n_layer` blocks (`h.0`, `h.1`, ...).
    pub blocks: Vec<Block>,
    /// The final layer norm.
    pub ln_f: LayerNorm,
}

impl Weights {
    /// Random weights, uniform in `[0, 1)` like numpy's `np.random.rand`, drawn from `rng`
    /// in exactly this order, each matrix row-major: `wte`, `wpe`, then for each block
    /// `mlp.c_fc.w`, `mlp.c_fc.b`, `mlp.c_proj.w`, `mlp.c_proj.b`, `attn.c_attn.w`,
    /// `attn.c_attn.b`, `attn.c_proj.w`, `attn.c_proj.b`. Layer norms are the identity
    /// (gains 1, biases 0) and take no draws. This is the order of the exercise's
    /// `load_encoder_hparams_and_params`, so numpy can rebuild the same weights.
    pub fn random(hparams: &HParams, rng: &mut XorShift64) -> Self {
        let HParams {
            n_vocab,
            n_ctx,
            n_embd,
            ..
        } = *hparams;
        let wte = rng.uniform_vec(n_vocab * n_embd); // [n_vocab, n_embd]
        let wpe = rng.uniform_vec(n_ctx * n_embd); // [n_ctx, n_embd]
        let mut linear = |n_in: usize, n_out: usize| {
            let w = rng.uniform_vec(n_in * n_out); // [n_in, n_out], drawn row-major
            let b = rng.uniform_vec(n_out); // [n_out]
            Linear::new(w, b, n_in, n_out)
        };
        let mut blocks = Vec::with_capacity(hparams.n_layer);
        for _ in 0..hparams.n_layer {
            let mlp = Mlp {
                c_fc: linear(n_embd, hparams.n_ffn()),
                c_proj: linear(hparams.n_ffn(), n_embd),
            };
            let attn = Attention {
                c_attn: linear(n_embd, 3 * n_embd),
                c_proj: linear(n_embd, n_embd),
            };
            blocks.push(Block {
                ln_1: LayerNorm::identity(n_embd),
                attn,
                ln_2: LayerNorm::identity(n_embd),
                mlp,
            });
        }
        Weights {
            wte: TokenEmbedding::new(wte, n_vocab, n_embd),
            wpe,
            blocks,
            ln_f: LayerNorm::identity(n_embd),
        }
    }
}

impl Weights {
    /// Every fully connected layer, block by block: `attn.c_attn`, `attn.c_proj`,
    /// `mlp.c_fc`, `mlp.c_proj`. For changing the weights in place (tests, experiments).
    pub fn linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        self.blocks.iter_mut().flat_map(|block| {
            [
                &mut block.attn.c_attn,
                &mut block.attn.c_proj,
                &mut block.mlp.c_fc,
                &mut block.mlp.c_proj,
            ]
        })
    }
}

/// A model ready to run: hyper-parameters plus weights whose shapes were checked. The weights
/// sit behind an `Arc` so that worker threads can share them (see [`Workspace`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The sizes.
    pub hparams: HParams,
    /// The learned numbers.
    pub weights: Arc<Weights>,
}

/// Which rows of logits a forward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every new position's: `[n_new, n_vocab]` (what a trace or a test wants to see).
    All,
    /// Only the last position's: `[1, n_vocab]`, all generation needs. The logits cost
    /// `n_vocab x n_embd` multiply-adds per row (38.6 M for GPT-2), so prefill skips them.
    Last,
}

/// The forward pass's working state besides the KV cache (llama2.c's `RunState`): the
/// thread pool and every intermediate buffer, reused from step to step so that a decode step
/// allocates nothing. One workspace serves one model.
#[derive(Debug)]
pub struct Workspace {
    pool: ThreadPool,
    /// The residual stream, `[n_new, n_embd]`.
    residual: Vec<f32>,
    /// Every block's intermediate results.
    block: BlockScratch,
    /// `ln_f` of the rows whose logits are wanted, `[rows, n_embd]`.
    final_normed: Vec<f32>,
    /// `[rows, n_vocab]`.
    logits: Vec<f32>,
}

impl Workspace {
    /// A workspace for `model` whose matrix products use `n_threads` threads (the caller's
    /// plus `n_threads - 1` workers).
    pub fn new(model: &Model, n_threads: usize) -> Self {
        Self {
            pool: ThreadPool::new(Arc::clone(&model.weights), n_threads),
            residual: Vec::new(),
            block: BlockScratch::default(),
            final_normed: Vec::new(),
            logits: Vec::new(),
        }
    }

    /// Threads used for the matrix products.
    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }
}

/// The number of threads to use by default: what the operating system says is available.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Model {
    /// Checks the hyper-parameters and the shape of every weight tensor against them.
    pub fn new(hparams: HParams, weights: Weights) -> Result<Self> {
        hparams.validate()?;
        check_shapes(&hparams, &weights)?;
        Ok(Self {
            hparams,
            weights: Arc::new(weights),
        })
    }

    /// **Full recomputation** (the reference): runs every position of `tokens` from
    /// scratch and returns the logits of every position, `[n_seq, n_vocab]`.
    pub fn forward(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.forward_full_traced(tokens, &mut Trace::disabled())
    }

    /// [`forward`](Self::forward), recording every intermediate tensor into `trace`.
    pub fn forward_full_traced(&self, tokens: &[u32], trace: &mut Trace) -> Result<Vec<f32>> {
        let mut fresh = KvCache::with_capacity(&self.hparams, tokens.len());
        self.forward_traced(tokens, &mut fresh, trace)
    }

    /// **Cached decoding**: runs the `n_new` new `tokens` at positions `cache.len()..`,
    /// attending to the keys and values already in `cache` and appending their own.
    /// Returns the new positions' logits, `[n_new, n_vocab]`. Feed the prompt first
    /// (prefill, all at once or in chunks), then one token per step.
    pub fn forward_cached(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        self.forward_traced(tokens, cache, &mut Trace::disabled())
    }

    /// [`forward_cached`](Self::forward_cached), recording every intermediate tensor into
    /// `trace` when it is enabled. Single-threaded, with a workspace of its own; see
    /// [`forward_with`](Self::forward_with) for the fast path.
    pub fn forward_traced(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        trace: &mut Trace,
    ) -> Result<Vec<f32>> {
        let mut workspace = Workspace::new(self, 1);
        Ok(self
            .forward_with(tokens, cache, &mut workspace, Logits::All, trace)?
            .to_vec())
    }

    /// The forward pass itself (see the module docs): runs `tokens` at positions
    /// `cache.len()..` using `workspace`'s threads and buffers, and returns the logits kept
    /// by `keep` (`[n_new or 1, n_vocab]`), borrowed from the workspace.
    pub fn forward_with<'w>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        workspace: &'w mut Workspace,
        keep: Logits,
        trace: &mut Trace,
    ) -> Result<&'w [f32]> {
        self.check_input(tokens, cache)?;
        if !workspace.pool.serves(&self.weights) {
            return Err(Error::WorkspaceMismatch);
        }
        let HParams {
            n_vocab, n_embd, ..
        } = self.hparams;
        let pos0 = cache.len();
        let n_new = tokens.len();
        let Workspace {
            pool,
            residual: x,
            block: scratch,
            final_normed,
            logits,
        } = workspace;

        self.embed(tokens, pos0, x, trace); // [n_new] -> [n_new, n_embd]
        for (layer, block) in self.weights.blocks.iter().enumerate() {
            let kv = cache.layer_mut(layer);
            block.forward(x, &self.hparams, kv, pos0, layer, pool, scratch, trace);
        }
        cache.advance(n_new);

        let kept = match keep {
            Logits::All => &x[..],
            Logits::Last => &x[x.len().saturating_sub(n_embd)..],
        };
        self.weights
            .ln_f
            .forward_into(kept, self.hparams.layer_norm_eps, final_normed);
        let n_rows = final_normed.len() / n_embd;
        trace.record(format_args!("ln_f"), &[n_rows, n_embd], final_normed);
        logits.resize(n_rows * n_vocab, 0.0);
        pool.compute(Product::Logits, final_normed, logits); // x @ wte^T: [rows, n_embd] -> [rows, n_vocab]
        trace.record(format_args!("logits"), &[n_rows, n_vocab], logits);
        Ok(logits)
    }

    /// Token embedding plus position embedding for positions `pos0..pos0 + n_new`, into
    /// `x`: `[n_new] -> [n_new, n_embd]`.
    fn embed(&self, tokens: &[u32], pos0: usize, x: &mut Vec<f32>, trace: &mut Trace) {
        let n_embd = self.hparams.n_embd;
        let shape = [tokens.len(), n_embd];
        let wpe_rows = &self.weights.wpe[pos0 * n_embd..(pos0 + tokens.len()) * n_embd];
        x.clear();
        for &t in tokens {
            self.weights.wte.row_into(t as usize, x); // row t of wte
        }
        trace.record(format_args!("wte"), &shape, x);
        trace.record(format_args!("wpe"), &shape, wpe_rows);
        crate::matrix::add_in_place(x, wpe_rows);
        trace.record(format_args!("embeddings"), &shape, x);
    }

    /// Every way the input can be wrong, reported before any work is done.
    fn check_input(&self, tokens: &[u32], cache: &KvCache) -> Result<()> {
        let hp = &self.hparams;
        if (cache.n_layer(), cache.n_embd()) != (hp.n_layer, hp.n_embd) {
            return Err(Error::ShapeMismatch {
                tensor: "KV cache [n_layer, n_embd]".into(),
                expected: vec![hp.n_layer, hp.n_embd],
                found: vec![cache.n_layer(), cache.n_embd()],
            });
        }
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(Error::TokenOutOfRange {
                token,
                n_vocab: hp.n_vocab,
            });
        }
        let limit = hp.n_ctx.min(cache.capacity());
        if cache.len() + tokens.len() > limit {
            return Err(Error::ContextOverflow {
                prompt_tokens: cache.len(),
                new_tokens: tokens.len(),
                n_ctx: limit,
            });
        }
        Ok(())
    }
}

/// Compares every tensor's shape with what `hparams` calls for; the error names the
/// tensor as a GPT-2 checkpoint does.
fn check_shapes(hparams: &HParams, weights: &Weights) -> Result<()> {
    let HParams {
        n_vocab,
        n_ctx,
        n_embd,
        ..
    } = *hparams;
    let check = |tensor: String, expected: &[usize], found: Vec<usize>| {
        if expected == found.as_slice() {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                tensor,
                expected: expected.to_vec(),
                found,
            })
        }
    };
    let flat = |len: usize, expected: &[usize]| -> Vec<usize> {
        if len == expected.iter().product::<usize>() {
            expected.to_vec()
        } else {
            vec![len]
        }
    };
    let check_linear = |name: String, lin: &Linear, n_in: usize, n_out: usize| {
        check(
            format!("{name}.weight"),
            &[n_in, n_out],
            vec![lin.n_in, lin.n_out],
        )?;
        check(
            format!("{name}.weight"),
            &[n_in, n_out],
            flat(lin.w.len(), &[n_in, n_out]),
        )?;
        check(format!("{name}.bias"), &[n_out], vec![lin.b.len()])
    };
    let check_ln = |name: String, ln: &LayerNorm| {
        check(format!("{name}.weight"), &[n_embd], vec![ln.g.len()])?;
        check(format!("{name}.bias"), &[n_embd], vec![ln.b.len()])
    };

    let wte = &weights.wte;
    check(
        "wte.weight".into(),
        &[n_vocab, n_embd],
        vec![wte.n_vocab, wte.n_embd],
    )?;
    check(
        "wte.weight".into(),
        &[n_vocab, n_embd],
        flat(wte.w.len(), &[n_vocab, n_embd]),
    )?;
    check(
        "wpe.weight".into(),
        &[n_ctx, n_embd],
        flat(weights.wpe.len(), &[n_ctx, n_embd]),
    )?;
    check("h".into(), &[hparams.n_layer], vec![weights.blocks.len()])?;
    for (i, block) in weights.blocks.iter().enumerate() {
        check_ln(format!("h.{i}.ln_1"), &block.ln_1)?;
        check_linear(
            format!("h.{i}.attn.c_attn"),
            &block.attn.c_attn,
            n_embd,
            3 * n_embd,
        )?;
        check_linear(
            format!("h.{i}.attn.c_proj"),
            &block.attn.c_proj,
            n_embd,
            n_embd,
        )?;
        check_ln(format!("h.{i}.ln_2"), &block.ln_2)?;
        check_linear(
            format!("h.{i}.mlp.c_fc"),
            &block.mlp.c_fc,
            n_embd,
            hparams.n_ffn(),
        )?;
        check_linear(
            format!("h.{i}.mlp.c_proj"),
            &block.mlp.c_proj,
            hparams.n_ffn(),
            n_embd,
        )?;
    }
    check_ln("ln_f".into(), &weights.ln_f)
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
        let weights = Weights::random(&hparams, &mut XorShift64::new(9).unwrap());
        (hparams, weights)
    }

    #[test]
    fn heads_must_divide_the_embedding() {
        let hparams = HParams {
            n_head: 12,
            ..HParams::dummy()
        };
        let err = hparams.validate().unwrap_err().to_string();
        assert!(err.contains("n_head = 12 must divide n_embd = 10"), "{err}");
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
    }

    #[test]
    fn out_of_vocabulary_and_overlong_inputs_are_errors() {
        let (hparams, weights) = tiny();
        let model = Model::new(hparams, weights).unwrap();
        assert_eq!(
            model.forward(&[1, 5]),
            Err(Error::TokenOutOfRange {
                token: 5,
                n_vocab: 5
            })
        );
        assert!(matches!(
            model.forward(&[0; 9]),
            Err(Error::ContextOverflow { n_ctx: 8, .. })
        ));
    }

    #[test]
    fn logits_have_one_row_per_position() {
        let (hparams, weights) = tiny();
        let model = Model::new(hparams, weights).unwrap();
        assert_eq!(model.forward(&[0, 1, 2]).unwrap().len(), 3 * 5);
    }
}
