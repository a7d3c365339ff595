//! Loading a GPT-2 checkpoint straight into the engine, one tensor at a time.
//!
//! ```text
//! load_dir(dir)                 -> (Bpe, Model)   every weight in f32, the reference model
//! load_dir_engine(dir, dtype)   -> (Bpe, Engine)  each tensor read, checked, packed, freed
//! ```
//!
//! [`load_dir`](crate::load_dir) followed by [`Engine::with_dtype`] holds the whole f32
//! model before it shrinks to `dtype` (a 355M checkpoint in q8: 1.4 GB, for 0.4 GB of
//! weights). Here the checkpoint's tensors go through [`Engine::from_tensors`] as they are
//! read, so memory holds the engine so far plus one tensor in f32 (the largest is `wte`,
//! `[n_vocab, n_embd]`: 154 MB for GPT-2 124M). The same checks run, in the same order,
//! with the same messages, and the engine equals `Engine::with_dtype(load_dir(dir)?.1,
//! dtype)` (`tests/bad_checkpoints.rs`, `tests/engine.rs`). Any checkpoint dtype (F32, F16,
//! BF16) loads into any engine dtype: each tensor is converted to f32 as it is read, then
//! packed.

use std::io::{Read, Seek};
use std::path::Path;

use super::engine::Engine;
use crate::bpe::Bpe;
use crate::checkpoint::{self, CheckpointBytes, CheckpointTensors};
use crate::error::Result;
use crate::quant::Dtype;

/// Loads a GPT-2 folder (as [`load_dir`](crate::load_dir) reads it) straight into an
/// engine whose matrices are stored in `dtype`: its tokenizer, and the engine, without
/// ever holding the f32 model (see the module docs). The checks and the messages are
/// `load_dir`'s, then [`Engine::with_dtype`]'s (a weight bf16 would round to infinity),
/// and the engine equals `Engine::with_dtype(load_dir(dir)?.1, dtype)`.
///
/// ```
/// use gpt2_edu::{Dtype, Engine, load_dir, load_dir_engine};
/// let dir = std::path::Path::new("tests/fixtures/tiny-gpt2-bf16"); // a BF16 checkpoint
/// let (_, engine) = load_dir_engine(dir, Dtype::Q8)?;
/// assert_eq!(engine, Engine::with_dtype(load_dir(dir)?.1, Dtype::Q8)?);
/// # Ok::<(), gpt2_edu::Error>(())
/// ```
pub fn load_dir_engine(dir: &Path, dtype: Dtype) -> Result<(Bpe, Engine)> {
    let (tokenizer, tensors) = checkpoint::open_dir(dir)?;
    Ok((tokenizer, engine_from(tensors, dtype)?))
}

/// Loads a GPT-2 checkpoint held in memory (as [`load_bytes`](crate::load_bytes) reads it)
/// straight into an engine whose matrices are stored in `dtype`, tensor by tensor, as
/// [`load_dir_engine`] loads a folder: the same checks and messages, and the engine equals
/// `Engine::with_dtype(load_bytes(files)?.1, dtype)`.
///
/// ```
/// use gpt2_edu::{CheckpointBytes, Dtype, Tokenizer, generate, Decoding, load_bytes_engine};
/// let checkpoint = CheckpointBytes {
///     config: include_bytes!("../../tests/fixtures/tiny-gpt2/config.json"),
///     safetensors: include_bytes!("../../tests/fixtures/tiny-gpt2/model.safetensors"),
///     vocab: include_bytes!("../../tests/fixtures/tiny-gpt2/vocab.json"),
///     merges: include_bytes!("../../tests/fixtures/tiny-gpt2/merges.txt"),
/// };
/// let (tokenizer, engine) = load_bytes_engine(&checkpoint, Dtype::Bf16)?;
/// assert_eq!((engine.dtype(), engine.hparams().n_layer), (Dtype::Bf16, 3));
/// let ids = generate(&engine, &tokenizer.encode("hello"), 3, Decoding::Cached)?;
/// assert_eq!(ids.len(), 3);
/// # Ok::<(), gpt2_edu::Error>(())
/// ```
pub fn load_bytes_engine(files: &CheckpointBytes<'_>, dtype: Dtype) -> Result<(Bpe, Engine)> {
    let (tokenizer, tensors) = checkpoint::open_bytes(files)?;
    Ok((tokenizer, engine_from(tensors, dtype)?))
}

/// The engine, from a checkpoint whose weights are still in its file.
fn engine_from<R: Read + Seek>(mut tensors: CheckpointTensors<R>, dtype: Dtype) -> Result<Engine> {
    Engine::from_tensors(tensors.hparams(), dtype, |spec, data| tensors.read(spec, data))
}
