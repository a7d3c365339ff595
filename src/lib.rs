//! # gpt2-edu
//!
//! GPT-2 text generation from scratch, in plain Rust with no dependencies: every step
//! readable, every intermediate tensor visible, and a KV-cached decoder whose logits are
//! bit-identical to full recomputation. Read it alongside `LEARN.md`.
//!
//! ```
//! // The exercise: gen_text(prompt, n_tokens_to_generate) with the dummy model.
//! assert_eq!(gpt2_edu::gen_text("hello", 5).unwrap(), "hello world world world <UNK> <UNK>");
//!
//! // The same, one level down: token ids in, generated token ids out.
//! use gpt2_edu::{dummy, generate, Decoding, Engine, Model, Tokenizer};
//! let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
//! let model = Model::new(hparams, weights).unwrap(); // the reference GPT-2
//! let prompt = encoder.encode("hello");
//! assert_eq!(generate(&model, &prompt, 5, Decoding::Cached).unwrap(), vec![1, 1, 1, 3, 3]);
//! let engine = Engine::new(model).unwrap(); // the fast engine: the same numbers, bit for bit
//! assert_eq!(generate(&engine, &prompt, 5, Decoding::Cached).unwrap(), vec![1, 1, 1, 3, 3]);
//! ```
//!
//! Two levels. The **reference model** ([`Model`]: [`HParams`], plain row-major [`Weights`]
//! named after the checkpoint keys, one module per concept, a forward pass that calls the
//! weights by name) is what LEARN.md teaches. The **fast engine** ([`Engine`], in `fast/`:
//! packed weights, a thread pool, reused buffers) is what generation runs on, proven
//! bit-identical to the reference by `tests/engine.rs`.
//!
//! The modules are declared below in the order the data flows, and each may use only the
//! ones declared before it (`tests/layering.rs` checks it): sizes and errors, numeric
//! kernels and file formats, the concepts of a block, the block, the model, the engine,
//! generation, and the pictures.
//!
//! **Errors, not panics.** Everything a program reaches through the loaders
//! ([`load_dir`], [`load_bytes`], and [`load_dir_engine`], [`load_bytes_engine`], which
//! read a checkpoint straight into the engine), [`Model`], [`Engine`], [`Generator`], [`TextGenerator`]
//! and the sampler checks its arguments and returns an [`Error`] that says what was
//! expected and what was found. Two kinds of function are exceptions, and say so: the few
//! accessors that index, as slices do ([`KvCache::keys`]: `# Panics`), and the concept
//! modules' building blocks (`matrix`, `layer_norm`, `softmax`, `attention`, ...), which
//! take slices of the shapes their documentation gives, as picoGPT's functions take
//! arrays. They check those shapes with `debug_assert!` (on in the tests), and the model
//! above them only ever calls them with checked shapes.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod error; // what can go wrong
pub mod hparams; // every size in the model
pub mod math; // exp and tanh with the same bits on every platform
pub mod rng; // xorshift64, exactly specified, so numpy can rebuild the dummy weights
pub mod quant; // how a weight is stored in 16 or 8 bits
pub mod matrix; // row-major matrices: matmul, linear, dot
pub mod trace; // recording every intermediate tensor
pub mod json; // a strict JSON parser, for config.json and vocab.json
pub mod safetensors; // the weights' file format
mod unicode_tables; // \p{L} and \p{N}, for GPT-2's pre-tokenizer
pub mod tokenizer; // text to token ids and back
pub mod bpe; // GPT-2's byte-level BPE
pub mod layer_norm; // rows to mean 0, variance 1, then scaled and shifted
pub mod softmax; // scores to probabilities
pub mod gelu; // the feed-forward network's non-linearity
pub mod kv_cache; // every layer's keys and values so far
pub mod attention; // causal multi-head self-attention
pub mod block; // x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))
pub mod model; // the reference GPT-2: weights and the forward pass to logits
pub mod checkpoint; // loading a HuggingFace GPT-2 folder
pub mod fast; // the fast engine, bit-identical to the reference
pub mod penalties; // repetition, no-repeat n-gram, presence and frequency penalties
pub mod sample; // greedy, temperature, top-k, top-p, min-p, typical-p
pub mod generate; // the autoregressive loop, streaming, stop conditions
pub mod score; // log-probabilities of a text, and its perplexity
pub mod dummy; // the exercise's dummy model and gen_text
pub mod viz; // pictures of attention, probabilities and the cache

pub use bpe::Bpe;
pub use checkpoint::{CheckpointBytes, load_bytes, load_dir};
pub use dummy::{WordEncoder, gen_text, load_encoder_hparams_and_params};
pub use error::{Error, Result};
pub use fast::{Engine, Logits, Workspace, load_bytes_engine, load_dir_engine};
pub use generate::{
    Decoding, Forward, GenerateConfig, Generator, Prefill, Step, StopReason, TextGenerator,
    generate,
};
pub use hparams::HParams;
pub use kv_cache::KvCache;
pub use model::{Model, Weights};
pub use penalties::{History, Penalties};
pub use quant::Dtype;
pub use rng::XorShift64;
pub use sample::{Sampler, SamplingParams};
pub use tokenizer::{TextStream, Tokenizer};
pub use trace::Trace;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// LEARN.md's Rust examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../LEARN.md")]
pub struct LearnDoctests;
