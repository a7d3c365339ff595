//! The fast engine: what generation runs on. The same GPT-2 as the reference model
//! (`model`, `block`, `attention`), computed faster, and proven to give the same bits.
//!
//! ```text
//! reference (what LEARN.md teaches)        engine (this folder)
//! Weights: row-major [n_in, n_out]   --->  PackedLinear: 16-column panels (packed.rs)
//! one thread, fresh Vecs                   a thread pool (pool.rs), reused buffers (Workspace)
//! Model::forward_traced                    Engine::forward (engine.rs)
//! load_dir: every weight in f32            load_dir_engine: tensor by tensor (load.rs)
//! ```
//!
//! **Invariants**, each checked by a test:
//! - *Bit-identical to the reference.* Every number is computed with the same operations in
//!   the same order as the reference model computes it: products summed over `k`
//!   ascending from `0.0`, bias last; attention heads with the reference's own kernels
//!   (`attention::attention_scores`, `attention::causal_mask`, `softmax::softmax_rows`);
//!   GELU element-wise. Only where the numbers live and which thread computes them
//!   differ. `tests/engine.rs` compares logits and KV caches with `f32::to_bits` on
//!   hundreds of random models and the checkpoint fixtures.
//! - *Any thread count, the same bits.* The pool splits each product by output columns and
//!   attention by whole heads, so no sum is ever split between threads.
//! - *No allocation per decode step.* The [`Workspace`] owns every buffer; the KV cache is
//!   allocated once; tasks travel over bounded channels.
//! - *One copy of the weights.* [`Engine::new`] consumes the reference [`Model`] and packs
//!   each matrix in turn, `wte` in place; [`load_dir_engine`] never builds the f32 model at
//!   all, packing each tensor as it is read ([`Engine::from_tensors`]).
//! - *Nothing below imports it.* The reference and the concept modules never use this
//!   folder; it uses their kernels. (`tests/layering.rs` checks the arrows.)
//!
//! The engine records no trace: to watch every intermediate tensor, run the reference
//! model (the command line does so for `--trace`, `--explain` and `--html`).
//!
//! [`Model`]: crate::model::Model

mod attention;
mod engine;
mod load;
mod packed;
mod pool;

pub use engine::{CHUNK, Engine, Logits, Workspace, default_threads};
pub use load::{load_bytes_engine, load_dir_engine};
pub use pool::MAX_THREADS;

/// Internals, public for the benchmark (`examples/bench.rs` times a step's parts on the
/// engine's own pool and matrices) and for inspection. Not a stable API.
pub mod internals {
    pub use super::attention::HeadScratch;
    pub use super::engine::PackedBlock;
    pub use super::packed::{OutColumns, PANEL, PackedLinear};
    pub use super::pool::{Activation, ThreadPool};
}
