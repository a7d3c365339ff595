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
//! use gpt2_edu::{dummy, generate, Decoding, Model, Tokenizer};
//! let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
//! let model = Model::new(hparams, weights).unwrap();
//! let ids = generate(&model, &encoder.encode("hello"), 5, Decoding::Cached).unwrap();
//! assert_eq!(ids, vec![1, 1, 1, 3, 3]);
//! ```
//!
//! The modules follow the data: matrices and the random weights, then each piece of a
//! block in the order a token meets it, the block, the cache, the whole model, and the
//! generation loop.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

// Numbers: row-major matrices and `linear`, and the random numbers of the dummy weights.
pub mod matrix;

pub mod rng;

// The pieces of a block, in the order a token meets them.
// exp and tanh with the same bits on every platform, used by the pieces below.
pub mod math;

pub mod gelu;

pub mod softmax;

pub mod layer_norm;

pub mod attention;

pub mod block;

// The state that makes decoding fast, then the whole model and the loop around it.
pub mod kv_cache;

pub mod threads;

pub mod model;

pub mod sample;

pub mod generate;

// The exercise's dummy model, looking inside, the command line, and what can go wrong.
pub mod dummy;

pub mod trace;

pub mod viz;

// Real checkpoints: a JSON parser, the safetensors format, the byte-level BPE tokenizer.
pub mod json;

pub mod safetensors;

pub mod tokenizer;

pub mod bpe;

mod unicode_tables;

pub mod checkpoint;

pub mod cli;

pub mod error;

pub use dummy::{gen_text, load_encoder_hparams_and_params};
pub use error::{Error, Result};
pub use generate::{Decoding, Generator, generate};
pub use kv_cache::KvCache;
pub use model::{HParams, Model, Weights};
pub use rng::XorShift64;
pub use tokenizer::Tokenizer;
pub use trace::Trace;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// LEARN.md's Rust examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../LEARN.md")]
pub struct LearnDoctests;
