//! The engine's forward pass: the reference model's steps, on packed weights, split over a
//! thread pool, into the buffers of a [`Workspace`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use super::attention::HeadScratch;
use super::packed::PackedLinear;
use super::pool::{Activation, ThreadPool};
use crate::attention::{Ablation, HeadId};
use crate::block::Block;
use crate::error::{Error, Result};
use crate::hparams::HParams;
use crate::kv_cache::{KvCache, LayerKv};
use crate::layer_norm::LayerNorm;
use crate::matrix::{Linear, add_in_place};
use crate::model::{Model, Role, TensorSpec, Weights, check_input};
use crate::model::{check_tensor, check_tensor_storable};
use crate::quant::Dtype;

/// Positions the engine runs through the blocks at once. A longer input goes in chunks of
/// this many, one after another through the cache (which gives the same bits as running
/// them together: every kernel computes each row alone), so the workspace never holds more
/// than `CHUNK` rows of activations: for a 1024-token prompt on GPT-2 124M, 8 MB instead of
/// 60 MB.
pub const CHUNK: usize = 128;

/// One block's weights, packed: the same tensors as [`crate::block::Block`], each matrix an
/// `Arc` so that the pool's workers can hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedBlock {
    /// `h.{i}.ln_1`.
    pub ln_1: LayerNorm,
    /// `h.{i}.attn.c_attn`, `[n_embd, 3 n_embd]`.
    pub attn_c_attn: Arc<PackedLinear>,
    /// `h.{i}.attn.c_proj`, `[n_embd, n_embd]`.
    pub attn_c_proj: Arc<PackedLinear>,
    /// `h.{i}.ln_2`.
    pub ln_2: LayerNorm,
    /// `h.{i}.mlp.c_fc`, `[n_embd, 4 n_embd]`.
    pub mlp_c_fc: Arc<PackedLinear>,
    /// `h.{i}.mlp.c_proj`, `[4 n_embd, n_embd]`.
    pub mlp_c_proj: Arc<PackedLinear>,
}

/// GPT-2, ready to run fast: the reference [`Model`]'s weights packed for the
/// matrix-vector product, run on a thread pool. Its logits are bit-identical to the
/// reference model's (`tests/engine.rs`). Immutable and `Sync`: one engine can serve many
/// generations, each with its own [`Workspace`] and [`KvCache`].
///
/// ```
/// use gpt2_edu::fast::{Engine, Logits, Workspace};
/// use gpt2_edu::{dummy, KvCache, Model, Tokenizer};
/// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
/// let model = Model::new(hparams, weights).unwrap();
/// let reference = model.forward(&encoder.encode("hello world")).unwrap(); // [2, n_vocab]
/// let engine = Engine::new(model).unwrap(); // packs the weights in place: one copy of them
/// let (mut cache, mut workspace) = (KvCache::new(engine.hparams()).unwrap(), Workspace::new(2).unwrap());
/// let logits = engine.forward(&encoder.encode("hello world"), &mut cache, &mut workspace, Logits::All).unwrap();
/// assert_eq!(logits, &reference[..]); // bit for bit
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Engine {
    hparams: HParams,
    dtype: Dtype,
    /// `wte^T`, `[n_embd, n_vocab]`: the logits' matrix, and the embedding's rows.
    wte: Arc<PackedLinear>,
    wpe: Vec<f32>,
    blocks: Vec<PackedBlock>,
    ln_f: LayerNorm,
    /// The model's heads switched off.
    ablation: Ablation,
}

/// Which rows of logits [`Engine::forward`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every new position's: `[n_new, n_vocab]` (what a test wants to compare).
    All,
    /// Only the last position's: `[1, n_vocab]`, all generation needs. The logits cost
    /// `n_vocab x n_embd` multiply-adds per row (38.6 M for GPT-2), so prefill skips them.
    Last,
    /// The last `n` positions' (all of them if there are fewer): `[n, n_vocab]`, what
    /// scoring a window needs.
    Tail(usize),
}

impl Engine {
    /// Packs `model`'s weights as f32, consuming it: [`with_dtype`](Self::with_dtype) with
    /// [`Dtype::F32`]. Its logits are the reference model's, bit for bit.
    pub fn new(model: Model) -> Result<Self> {
        Self::with_dtype(model, Dtype::F32)
    }

    /// Packs `model`'s weights in `dtype` (the four matrices of each block and `wte`;
    /// `wpe`, biases and layer norms stay f32), consuming it: the tensors are handed one by
    /// one to [`from_tensors`](Self::from_tensors), which packs every matrix in its own
    /// memory as it comes (through one scratch buffer the size of the largest) and frees
    /// its f32 form; `wte` is transposed in place. So the f32 weights exist once, and
    /// shrink matrix by matrix. The logits equal, bit for bit, those of the reference
    /// model [`model.stored_as(dtype)`](Model::stored_as); the embedding lookup reads the
    /// same stored `wte` back. `Model`'s fields are public, so the model is checked again
    /// first, exactly as [`Model::new`] checks it (a walk over the tensors' lengths):
    /// wrong sizes are an error, never a panic; so is a weight bf16 would round to
    /// infinity ([`Model::stored_as`]). The heads the model switched off stay off. A model
    /// already stored in Q8 packs its own blocks (not quantized again) into the same Q8
    /// engine; asking it for another dtype is [`Error::InvalidArgument`].
    ///
    /// ```
    /// use gpt2_edu::{dummy, Dtype, Engine, KvCache, Logits, Model, Workspace};
    /// let (_, hparams, weights) = dummy::load_encoder_hparams_and_params();
    /// let model = Model::new(hparams, weights).unwrap();
    /// let stored = model.clone().stored_as(Dtype::Q8).unwrap(); // the q8 engine's reference
    /// let engine = Engine::with_dtype(model, Dtype::Q8).unwrap();
    /// let (mut cache, mut workspace) = (KvCache::new(&hparams).unwrap(), Workspace::new(2).unwrap());
    /// let logits = engine.forward(&[0, 1], &mut cache, &mut workspace, Logits::All).unwrap();
    /// assert_eq!(logits, &stored.forward(&[0, 1]).unwrap()[..]); // bit for bit
    /// assert_eq!(Engine::with_dtype(stored.clone(), Dtype::Q8).unwrap(), engine);
    /// assert!(Engine::with_dtype(stored, Dtype::F32).is_err());
    /// ```
    pub fn with_dtype(model: Model, dtype: Dtype) -> Result<Self> {
        if model.is_q8() {
            return Self::from_q8_model(model, dtype);
        }
        let ablation = model.ablation().clone();
        let Model { hparams, mut weights, .. } = Model::new(model.hparams, model.weights)?;
        let mut tensors = VecDeque::new(); // moved, not copied: the model's own Vecs
        let Ok(()) = weights.visit_mut(&hparams, |_, data| {
            tensors.push_back(std::mem::take(data));
            Ok::<(), Infallible>(())
        });
        let engine = Self::from_tensors(hparams, dtype, |_, data| {
            *data = tensors.pop_front().unwrap_or_default();
            Ok(())
        })?;
        Ok(Self { ablation, ..engine })
    }

    /// Builds the engine from tensors handed over one at a time, never holding the whole
    /// f32 model: `read(spec, data)` is called once per tensor, in
    /// [`Weights::visit_mut`]'s order (`wte`, `wpe`, then each block's matrices with their
    /// biases and its layer norms, then `ln_f`; [`Weights::specs`] lists them), and must
    /// fill `data` (empty when given) with the tensor `spec` names, row-major, `spec.len()`
    /// numbers. Each matrix is packed in `dtype` as soon as its bias has come, and its f32
    /// numbers freed, so memory holds the engine so far plus one f32 tensor (and the
    /// scratch buffer of one block matrix). This is how
    /// [`load_dir_engine`](crate::load_dir_engine) loads a checkpoint, and
    /// [`with_dtype`](Self::with_dtype) packs a model.
    ///
    /// The result equals `Engine::with_dtype(Model::new(hparams, weights)?, dtype)` for
    /// the `weights` the same calls would fill, errors included: invalid `hparams` are
    /// refused before `read` is called; an error `read` returns is returned at once; then,
    /// once every tensor has been read, the first tensor of the wrong length or with a
    /// non-finite number ([`Model::new`]'s errors), else the first weight bf16 would round
    /// to infinity ([`Model::stored_as`]'s). No head is switched off
    /// ([`with_heads_off`](Self::with_heads_off)).
    ///
    /// ```
    /// use gpt2_edu::{Dtype, Engine, HParams, Model, Weights, XorShift64};
    /// let hparams = HParams { n_vocab: 8, n_ctx: 4, n_embd: 4, n_head: 2, n_layer: 2, layer_norm_eps: 1e-5 };
    /// let mut rng = XorShift64::new(7)?;
    /// let engine = Engine::from_tensors(hparams, Dtype::Q8, |spec, data| {
    ///     *data = Weights::random_tensor(spec, &mut rng); // or read it from a file
    ///     Ok(())
    /// })?;
    /// let weights = Weights::random(&hparams, &mut XorShift64::new(7)?)?;
    /// assert_eq!(engine, Engine::with_dtype(Model::new(hparams, weights)?, Dtype::Q8)?);
    /// # Ok::<(), gpt2_edu::Error>(())
    /// ```
    pub fn from_tensors(
        hparams: HParams,
        dtype: Dtype,
        mut read: impl FnMut(&TensorSpec, &mut Vec<f32>) -> Result<()>,
    ) -> Result<Self> {
        hparams.validate()?;
        let mut frame = Weights::empty(hparams.n_layer); // wpe and the layer norms stay here
        let mut packer = Packer::new(hparams, dtype);
        frame.visit_mut(&hparams, |spec, data| {
            read(spec, data)?;
            packer.take(spec, data);
            Ok::<(), Error>(())
        })?;
        packer.finish(frame)
    }

    /// This engine with `heads` switched off (replacing any switched off before), as
    /// [`Model::with_heads_off`] switches them off in the reference model: a layer or head
    /// the model does not have is an [`Error::NoSuchHead`].
    pub fn with_heads_off(mut self, heads: &[HeadId]) -> Result<Self> {
        self.ablation = Ablation::new(heads, &self.hparams)?;
        Ok(self)
    }

    /// [`with_dtype`](Self::with_dtype) for a model stored in Q8 ([`Model::stored_as`]):
    /// its blocks are packed as they are, not quantized again, so the engine computes that
    /// model's products. Every matrix must be in Q8 (a model half in Q8 has no one dtype
    /// to run in), and so must `dtype`.
    fn from_q8_model(mut model: Model, dtype: Dtype) -> Result<Self> {
        let (ablation, wte_q8) = (model.ablation().clone(), model.take_wte_q8());
        let Model { hparams, weights, .. } = Model::new(model.hparams, model.weights)?;
        let all_q8 = weights.blocks.iter().all(Block::all_q8);
        let (Some(wte_t), true, Dtype::Q8) = (wte_q8, all_q8, dtype) else {
            return Err(Error::InvalidArgument(format!(
                "this model is stored in q8, in part or whole (Model::stored_as): its engine \
                 must be q8 too, from a model stored whole, not {dtype}; build the {dtype} \
                 engine from the f32 model"
            )));
        };
        let Weights { wpe, blocks, ln_f, .. } = weights;
        let mut scratch = Vec::new();
        let mut pack = |layer| Arc::new(PackedLinear::pack_with(layer, dtype, &mut scratch));
        let blocks = blocks
            .into_iter()
            .map(|block| PackedBlock {
                ln_1: block.ln_1,
                attn_c_attn: pack(block.attn.c_attn),
                attn_c_proj: pack(block.attn.c_proj),
                ln_2: block.ln_2,
                mlp_c_fc: pack(block.mlp.c_fc),
                mlp_c_proj: pack(block.mlp.c_proj),
            })
            .collect();
        let wte = Arc::new(PackedLinear::pack_q8(&wte_t));
        Ok(Self { hparams, dtype, wte, wpe, blocks, ln_f, ablation })
    }

    /// How the matrices are stored.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Bytes of weights one decode step reads: every matrix in its dtype with its f32 bias,
    /// the layer norms, and one row each of `wpe` and (in its dtype) `wte`.
    pub fn weight_bytes_per_token(&self) -> usize {
        let e = self.hparams.n_embd;
        let norms = 4 * 2 * e * (2 * self.blocks.len() + 1);
        let matrices: usize = self
            .blocks
            .iter()
            .flat_map(|b| [&b.attn_c_attn, &b.attn_c_proj, &b.mlp_c_fc, &b.mlp_c_proj])
            .map(|m| m.bytes())
            .sum();
        let embedding_rows = 4 * e + self.dtype.matrix_bytes(e, 1);
        matrices + self.wte.bytes() + norms + embedding_rows
    }

    /// The sizes.
    pub fn hparams(&self) -> &HParams {
        &self.hparams
    }

    /// The heads switched off (those of the model it was built from).
    pub fn ablation(&self) -> &Ablation {
        &self.ablation
    }

    /// The blocks' packed weights (for the benchmark's timings of a step's parts).
    pub fn blocks(&self) -> &[PackedBlock] {
        &self.blocks
    }

    /// `wte^T`, packed: the logits' matrix.
    pub fn wte(&self) -> &Arc<PackedLinear> {
        &self.wte
    }

    /// The forward pass: runs `tokens` at positions `cache.len()..`, extends `cache`, and
    /// returns the logits `keep` asks for (`[n_new or 1, n_vocab]`), borrowed from
    /// `workspace`. The same checks as the reference model's, before any work; no
    /// allocation once the workspace's buffers have grown.
    pub fn forward<'w>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        workspace: &'w mut Workspace,
        keep: Logits,
    ) -> Result<&'w [f32]> {
        check_input(&self.hparams, tokens, cache)?;
        let Workspace { pool, buffers } = workspace;
        let n_new = tokens.len();
        let rows = match keep {
            Logits::All => n_new,
            Logits::Last => n_new.min(1),
            Logits::Tail(n) => n.min(n_new),
        };
        buffers.logits.clear();
        for (c, chunk) in tokens.chunks(CHUNK).enumerate() {
            self.run_blocks(chunk, cache, pool, buffers);
            // This chunk's positions among the last `rows`: their logits, appended.
            let (start, end) = (c * CHUNK, c * CHUNK + chunk.len());
            let wanted = end.saturating_sub((n_new - rows).max(start));
            if wanted > 0 {
                self.append_logits(wanted, pool, buffers);
            }
        }
        Ok(&buffers.logits)
    }

    /// Runs `tokens` (at most [`CHUNK`]) through the blocks at positions `cache.len()..`,
    /// into `buffers.residual` (`[n_new, n_embd]`), and extends `cache`.
    fn run_blocks(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        pool: &ThreadPool,
        buffers: &mut Buffers,
    ) {
        let pos0 = cache.len();
        self.embed(tokens, pos0, &mut buffers.residual); // [n_new] -> [n_new, n_embd]
        for (layer, block) in self.blocks.iter().enumerate() {
            let heads_off = self.ablation.heads_off(layer);
            self.block(block, heads_off, cache.layer_mut(layer), pos0, pool, buffers);
        }
        cache.advance(tokens.len());
    }

    /// `wte[tokens] + wpe[pos0..]` into `x`: `[n_new] -> [n_new, n_embd]`.
    fn embed(&self, tokens: &[u32], pos0: usize, x: &mut Vec<f32>) {
        let n_embd = self.hparams.n_embd;
        x.clear();
        for &t in tokens {
            self.wte.column_into(t as usize, x); // row t of wte
        }
        add_in_place(x, &self.wpe[pos0 * n_embd..(pos0 + tokens.len()) * n_embd]);
    }

    /// `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))` on `buffers.residual`.
    fn block(
        &self,
        block: &PackedBlock,
        heads_off: &[usize],
        kv: &mut LayerKv,
        pos0: usize,
        pool: &ThreadPool,
        buffers: &mut Buffers,
    ) {
        let eps = self.hparams.layer_norm_eps;
        block.ln_1.forward_into(&buffers.residual, eps, &mut buffers.normed);
        self.attention(block, heads_off, kv, pos0, pool, buffers);
        let Buffers { residual: x, normed, sublayer, hidden, .. } = buffers;
        add_in_place(x, sublayer);

        block.ln_2.forward_into(x, eps, normed);
        pool.compute(&block.mlp_c_fc, Activation::Gelu, normed, hidden); // [n_new, 4 n_embd]
        pool.compute(&block.mlp_c_proj, Activation::None, hidden, sublayer); // [n_new, n_embd]
        add_in_place(x, sublayer);
    }

    /// Attention of `buffers.normed` into `buffers.sublayer`: the q, k, v projection, the
    /// new keys and values into the cache, the heads on the threads (those in `heads_off`
    /// then zeroed), the output projection.
    fn attention(
        &self,
        block: &PackedBlock,
        heads_off: &[usize],
        kv: &mut LayerKv,
        pos0: usize,
        pool: &ThreadPool,
        buffers: &mut Buffers,
    ) {
        let n_embd = self.hparams.n_embd;
        let Buffers { normed, qkv, queries, heads, heads_scratch, sublayer, .. } = buffers;
        pool.compute(&block.attn_c_attn, Activation::None, normed, qkv); // [n_new, 3 n_embd]
        queries.clear();
        for (i, row) in qkv.chunks_exact(3 * n_embd).enumerate() {
            let (q, k_and_v) = row.split_at(n_embd);
            let (k, v) = k_and_v.split_at(n_embd);
            queries.extend_from_slice(q); // [n_new, n_embd]
            kv.store(pos0 + i, k, v);
        }
        let n_keys = pos0 + queries.len() / n_embd;
        pool.attend(queries, kv, n_keys, heads_scratch, heads); // [n_new, n_embd]
        switch_off(heads, n_embd, kv.d_head, heads_off);
        pool.compute(&block.attn_c_proj, Activation::None, heads, sublayer); // [n_new, n_embd]
    }

    /// `ln_f` of the last `rows` rows of the residual stream, then `x @ wte^T`
    /// (`[rows, n_vocab]`), appended to `buffers.logits` (moved there, not copied, when it is
    /// the first part: a decode step's only one).
    fn append_logits(&self, rows: usize, pool: &ThreadPool, buffers: &mut Buffers) {
        let x = &buffers.residual;
        let kept = &x[x.len() - rows * self.hparams.n_embd..];
        self.ln_f.forward_into(kept, self.hparams.layer_norm_eps, &mut buffers.final_normed);
        let part = &mut buffers.chunk_logits;
        pool.compute(&self.wte, Activation::None, &buffers.final_normed, part);
        if buffers.logits.is_empty() {
            std::mem::swap(&mut buffers.logits, part);
        } else {
            buffers.logits.extend_from_slice(part);
        }
    }
}

/// What [`Engine::from_tensors`] holds while the tensors come in: the matrices packed so
/// far, the weight waiting for its bias, and the first problem found (after which nothing
/// more is packed, only checked).
struct Packer {
    hparams: HParams,
    dtype: Dtype,
    /// The f32 panels of one block matrix, reused from matrix to matrix.
    scratch: Vec<f32>,
    /// `wte^T`, packed.
    wte: Option<Arc<PackedLinear>>,
    /// A block matrix's weight `[n_in, n_out]`, until its bias comes.
    weight: Vec<f32>,
    /// Every block's four matrices in the order they came: `mlp.c_fc`, `mlp.c_proj`,
    /// `attn.c_attn`, `attn.c_proj`.
    matrices: Vec<Arc<PackedLinear>>,
    /// The first tensor [`Model::new`] would refuse.
    invalid: Option<Error>,
    /// The first weight bf16 would round to infinity.
    unstorable: Option<Error>,
}

impl Packer {
    fn new(hparams: HParams, dtype: Dtype) -> Self {
        Self {
            hparams,
            dtype,
            scratch: Vec::new(),
            wte: None,
            weight: Vec::new(),
            matrices: Vec::with_capacity(4 * hparams.n_layer),
            invalid: None,
            unstorable: None,
        }
    }

    /// Checks the tensor `spec` just read into `data`, and packs it if it is a matrix
    /// (taking it out of `data`), or a bias that completes one; `wpe` and the layer norms
    /// are left in `data`, f32.
    fn take(&mut self, spec: &TensorSpec, data: &mut Vec<f32>) {
        if self.invalid.is_none() {
            self.invalid = check_tensor(spec, data).err();
        }
        if self.invalid.is_none() && self.unstorable.is_none() {
            self.unstorable = check_tensor_storable(spec, data, self.dtype).err();
        }
        if self.invalid.is_some() || self.unstorable.is_some() {
            (*data, self.weight) = (Vec::new(), Vec::new()); // no engine will be built
            return;
        }
        let (dtype, take) = (self.dtype, std::mem::take::<Vec<f32>>);
        match spec.role {
            Role::Embedding if spec.name == "wte.weight" => {
                let (n_vocab, n_embd) = (self.hparams.n_vocab, self.hparams.n_embd);
                let wte = PackedLinear::pack_transposed(take(data), n_vocab, n_embd, dtype);
                self.wte = Some(Arc::new(wte)); // [n_vocab, n_embd] -> wte^T [n_embd, n_vocab]
            }
            Role::Weight => self.weight = take(data),
            Role::Bias => {
                let layer = Linear::new(take(&mut self.weight), take(data));
                let packed = PackedLinear::pack_with(layer, dtype, &mut self.scratch);
                self.matrices.push(Arc::new(packed));
            }
            Role::Embedding | Role::NormGain | Role::NormBias => {}
        }
    }

    /// The engine, from the packed matrices and what `frame` kept (`wpe`, layer norms);
    /// or the first problem found.
    fn finish(self, frame: Weights) -> Result<Engine> {
        if let Some(error) = self.invalid.or(self.unstorable) {
            return Err(error);
        }
        let Weights { wpe, blocks, ln_f, .. } = frame;
        let mut matrices = self.matrices.into_iter();
        let mut next = || matrices.next().expect("visit_mut lists four matrices per block");
        let blocks = blocks
            .into_iter()
            .map(|Block { ln_1, ln_2, .. }| {
                let [mlp_c_fc, mlp_c_proj, attn_c_attn, attn_c_proj] =
                    [next(), next(), next(), next()];
                PackedBlock { ln_1, attn_c_attn, attn_c_proj, ln_2, mlp_c_fc, mlp_c_proj }
            })
            .collect();
        let wte = self.wte.expect("visit_mut lists wte first");
        let (hparams, dtype, ablation) = (self.hparams, self.dtype, Ablation::none());
        Ok(Engine { hparams, dtype, wte, wpe, blocks, ln_f, ablation })
    }
}

/// Zeroes the columns of the heads in `heads_off` in the merged heads (`[n_new, n_embd]`,
/// head `h` in columns `h * d_head..(h + 1) * d_head`): the reference leaves them at zero.
fn switch_off(merged: &mut [f32], n_embd: usize, d_head: usize, heads_off: &[usize]) {
    for row in merged.chunks_exact_mut(n_embd) {
        for &h in heads_off {
            row[h * d_head..(h + 1) * d_head].fill(0.0);
        }
    }
}

impl TryFrom<Model> for Engine {
    type Error = crate::error::Error;

    fn try_from(model: Model) -> Result<Self> {
        Engine::new(model)
    }
}

/// The engine's working state besides the KV cache (llama2.c's `RunState`): a thread pool
/// and every intermediate buffer, reused from step to step so that a decode step allocates
/// nothing. Any engine can use any workspace; one generation at a time.
#[derive(Debug)]
pub struct Workspace {
    pool: ThreadPool,
    buffers: Buffers,
}

/// The intermediate results of one forward pass, each named after what it holds.
#[derive(Debug, Default)]
struct Buffers {
    /// The residual stream, `[n_new, n_embd]`.
    residual: Vec<f32>,
    /// `ln_1(x)`, then `ln_2(x)`: `[n_new, n_embd]`.
    normed: Vec<f32>,
    /// `q | k | v` of the new positions, `[n_new, 3 n_embd]`.
    qkv: Vec<f32>,
    /// The queries alone, `[n_new, n_embd]`.
    queries: Vec<f32>,
    /// The heads' outputs side by side, `[n_new, n_embd]`.
    heads: Vec<f32>,
    /// The calling thread's buffers for its heads.
    heads_scratch: HeadScratch,
    /// The MLP's hidden layer, `[n_new, 4 n_embd]`.
    hidden: Vec<f32>,
    /// The attention's or the MLP's output, before it is added to `x`: `[n_new, n_embd]`.
    sublayer: Vec<f32>,
    /// `ln_f` of the rows whose logits are wanted, `[rows, n_embd]`.
    final_normed: Vec<f32>,
    /// `[rows, n_vocab]`: every chunk's part of the logits asked for.
    logits: Vec<f32>,
    /// One chunk's part of them.
    chunk_logits: Vec<f32>,
}

impl Workspace {
    /// A workspace whose products use `n_threads` threads: the caller's plus
    /// `n_threads - 1` workers, started now and kept until the workspace is dropped. One
    /// thread starts no worker. `n_threads` must be `1..=`[`MAX_THREADS`](super::MAX_THREADS)
    /// (else [`Error::InvalidThreads`]); a thread that cannot
    /// be started is [`Error::ThreadStart`].
    ///
    /// A workspace serves one generation at a time, and any number in turn: lend it to each
    /// with [`Generator::with_state`](crate::Generator::with_state), and no thread is
    /// started again.
    pub fn new(n_threads: usize) -> Result<Self> {
        Ok(Self { pool: ThreadPool::new(n_threads)?, buffers: Buffers::default() })
    }

    /// Threads used for the products, the caller's included.
    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }

    /// The thread pool (for the benchmark's timings of a step's parts).
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// The logits of the last [`Engine::forward`] run in this workspace (empty before any).
    pub fn logits(&self) -> &[f32] {
        &self.buffers.logits
    }
}

/// The number of threads to use by default: what the operating system says is available
/// (1 where it cannot say, as on wasm32), at most [`MAX_THREADS`](super::MAX_THREADS).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(super::MAX_THREADS)
}
