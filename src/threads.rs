//! A small, persistent pool of worker threads that split each matrix product by output
//! columns.
//!
//! ```text
//! out = x @ W + b      [n_rows, n_in] @ [n_in, n_out]
//! thread 0 (the caller): columns 0..c1     thread 1: columns c1..c2     ...
//! ```
//!
//! Every output element is computed whole by one thread, with the same kernel and the same
//! summation order, so 1, 2, 3 or 4 threads give bit-identical results. Decoding one token
//! reads every weight once; splitting the columns lets both cores read memory at once.
//!
//! Safe Rust cannot lend a worker a borrowed slice for an unknown time, so the workers own
//! what they need: the weights, shared through an `Arc`; the input, copied into a shared
//! buffer once per product (a few KB while decoding); and an output buffer each, copied back
//! by the caller. Attention is split the same way, by heads (each head's columns of the
//! merged output): the caller lends the layer's KV cache to the pool by *moving* it into a
//! shared slot for the duration ([`ThreadPool::attend`]), which moves three pointers, not
//! the cache. Tasks are small `Copy` messages over bounded channels, and every buffer is
//! reused, so a decode step allocates nothing. Waiting threads spin briefly before they
//! sleep, because a product takes microseconds and waking a sleeping thread takes about as
//! long.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use crate::attention::{HeadsOut, attend_heads};
use crate::gelu::gelu_in_place;
use crate::kv_cache::LayerKv;
use crate::matrix::{Linear, PANEL, linear_columns};
use crate::model::Weights;
use crate::trace::Trace;

/// Which matrix of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMatrix {
    /// `attn.c_attn`: `[n_embd, 3 n_embd]`.
    AttnQkv,
    /// `attn.c_proj`: `[n_embd, n_embd]`.
    AttnProj,
    /// `mlp.c_fc`: `[n_embd, 4 n_embd]`.
    MlpFc,
    /// `mlp.c_fc` followed by GELU on each result, so the threads share the GELUs too
    /// (element-wise, so the values are the same as GELU applied afterwards).
    MlpFcGelu,
    /// `mlp.c_proj`: `[4 n_embd, n_embd]`.
    MlpProj,
}

/// A product the pool can split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// `x @ w + b` for one matrix of one block.
    Linear {
        /// The block.
        layer: usize,
        /// The matrix.
        matrix: BlockMatrix,
    },
    /// `x @ wte^T`: the logits.
    Logits,
}

/// What the pool splits by output columns: a product, or attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Product(Product),
    /// Causal self-attention of the queries `x` (`[n_rows, n_embd]`) over the first
    /// `n_keys` positions of the KV cache lent by [`ThreadPool::attend`]; the output is the
    /// merged heads, split between threads by whole heads.
    Attention {
        n_keys: usize,
        n_head: usize,
    },
}

impl BlockMatrix {
    /// This matrix of block `layer`.
    fn of(self, weights: &Weights, layer: usize) -> &Linear {
        let block = &weights.blocks[layer];
        match self {
            BlockMatrix::AttnQkv => &block.attn.c_attn,
            BlockMatrix::AttnProj => &block.attn.c_proj,
            BlockMatrix::MlpFc | BlockMatrix::MlpFcGelu => &block.mlp.c_fc,
            BlockMatrix::MlpProj => &block.mlp.c_proj,
        }
    }
}

impl Job {
    /// `(n_in, n_out)`: the width of a row of `x` and of a row of the output.
    fn shape(self, weights: &Weights) -> (usize, usize) {
        let n_embd = weights.wte.n_embd;
        match self {
            Job::Product(Product::Logits) => (n_embd, weights.wte.n_vocab),
            Job::Product(Product::Linear { layer, matrix }) => {
                let lin = matrix.of(weights, layer);
                (lin.n_in, lin.n_out)
            }
            Job::Attention { .. } => (n_embd, n_embd), // queries in, merged heads out
        }
    }

    /// The columns a thread's share must be a multiple of: a panel, or a head.
    fn column_unit(self, weights: &Weights) -> usize {
        match self {
            Job::Attention { n_head, .. } => weights.wte.n_embd / n_head,
            _ => PANEL,
        }
    }

    /// Columns `cols` for every row of `x`, into `out` (`[n_rows, out_stride]`, column `j`
    /// at `j - out_col0`). Attention reads the lent cache `kv` and uses `scores` as scratch.
    #[allow(clippy::too_many_arguments)]
    fn compute(
        self,
        weights: &Weights,
        kv: &LayerKv,
        scores: &mut Vec<f32>,
        x: &[f32],
        cols: (usize, usize),
        out: &mut [f32],
        out_stride: usize,
        out_col0: usize,
    ) {
        match self {
            Job::Product(Product::Logits) => {
                let wte = &weights.wte;
                wte.logits_columns(x, cols.0..cols.1, out, out_stride, out_col0);
            }
            Job::Product(Product::Linear { layer, matrix }) => {
                let lin = matrix.of(weights, layer);
                linear_columns(x, lin, cols.0..cols.1, out, out_stride, out_col0);
                if matrix == BlockMatrix::MlpFcGelu {
                    for row in out.chunks_mut(out_stride) {
                        gelu_in_place(&mut row[cols.0 - out_col0..cols.1 - out_col0]);
                    }
                }
            }
            Job::Attention { n_keys, n_head } => {
                let heads = cols.0 / kv.d_head..cols.1 / kv.d_head;
                let out = HeadsOut {
                    heads: out,
                    stride: out_stride,
                    col0: out_col0,
                };
                let mut no_trace = Trace::disabled();
                attend_heads(x, kv, n_keys, n_head, heads, scores, out, 0, &mut no_trace);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Task {
    Compute {
        job: Job,
        n_rows: usize,
        cols: (usize, usize),
    },
    Quit,
}

#[derive(Debug)]
struct Worker {
    tasks: SyncSender<Task>,
    done: Receiver<()>,
    output: Arc<Mutex<Vec<f32>>>,
    thread: Option<JoinHandle<()>>,
}

/// The caller's thread plus `n_threads - 1` workers.
#[derive(Debug)]
pub struct ThreadPool {
    weights: Arc<Weights>,
    input: Arc<RwLock<Vec<f32>>>,
    /// A layer's KV cache while it is lent to the pool for attention; empty otherwise.
    kv: Arc<RwLock<LayerKv>>,
    workers: Vec<Worker>,
}

/// How a waiting thread waits: it checks for news `SPINS` times in a tight loop, then
/// `YIELDS` times giving its core to any other runnable thread, then sleeps. Products take
/// microseconds, so the next task usually arrives while spinning; yielding keeps a busy
/// machine (other programs, parallel tests) from losing a core to the wait.
const SPINS: u32 = 200;
const YIELDS: u32 = 2_000;

impl ThreadPool {
    /// A pool over `weights` with `n_threads` threads in all (at least 1: the caller).
    pub fn new(weights: Arc<Weights>, n_threads: usize) -> Self {
        let input = Arc::new(RwLock::new(Vec::new()));
        let kv = Arc::new(RwLock::new(LayerKv::default()));
        let workers = (1..n_threads.max(1))
            .map(|index| {
                let shared = (Arc::clone(&weights), Arc::clone(&input), Arc::clone(&kv));
                spawn_worker(index, shared)
            })
            .collect();
        Self {
            weights,
            input,
            kv,
            workers,
        }
    }

    /// Threads in all, the caller's included.
    pub fn n_threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Whether this pool computes over exactly these weights.
    pub fn serves(&self, weights: &Arc<Weights>) -> bool {
        Arc::ptr_eq(&self.weights, weights)
    }

    /// `out = x @ W (+ b)` for `product`: `x` is `[n_rows, n_in]`, `out` `[n_rows, n_out]`.
    /// The caller computes the first share of the columns while the workers compute theirs.
    pub fn compute(&self, product: Product, x: &[f32], out: &mut [f32]) {
        let no_scores = &mut Vec::new(); // products need no scratch; this never allocates
        self.run(Job::Product(product), x, out, no_scores);
    }

    /// Causal self-attention (see [`crate::attention::causal_self_attention`]) of the queries
    /// `q` (`[n_rows, n_embd]`) over the first `n_keys` positions of one layer's cache, into
    /// the merged heads `heads` (`[n_rows, n_embd]`), each thread computing whole heads.
    /// `scores` is the caller's scratch for its own heads (`[n_rows, n_keys]`); each worker
    /// keeps its own.
    ///
    /// The workers cannot borrow `kv`, so it is moved into the pool for the call (a swap of
    /// its three pointers, not a copy) and moved back before returning.
    pub fn attend(
        &self,
        q: &[f32],
        kv: &mut LayerKv,
        n_keys: usize,
        scores: &mut Vec<f32>,
        heads: &mut [f32],
    ) {
        let n_head = self.weights.wte.n_embd / kv.d_head;
        let lend = |kv: &mut LayerKv| {
            let mut slot = self
                .kv
                .write()
                .expect("no thread panicked holding the cache");
            std::mem::swap(&mut *slot, kv);
        };
        lend(kv); // the cache into the pool
        self.run(Job::Attention { n_keys, n_head }, q, heads, scores);
        lend(kv); // and back
    }

    /// Splits `job` by output columns between the caller and the workers.
    fn run(&self, job: Job, x: &[f32], out: &mut [f32], scores: &mut Vec<f32>) {
        let (n_in, n_out) = job.shape(&self.weights);
        let n_rows = x.len() / n_in;
        debug_assert_eq!(out.len(), n_rows * n_out);
        let shares = split_columns(n_out, self.n_threads(), job.column_unit(&self.weights));
        if !self.workers.is_empty() {
            let mut shared = self
                .input
                .write()
                .expect("no thread panicked while holding the input");
            shared.clear();
            shared.extend_from_slice(x);
        }
        // Workers with an empty share (a tiny product) are left idle.
        let busy = || {
            self.workers
                .iter()
                .zip(&shares[1..])
                .filter(|(_, (c0, c1))| c1 > c0)
        };
        for (worker, &cols) in busy() {
            let task = Task::Compute { job, n_rows, cols };
            worker
                .tasks
                .send(task)
                .expect("worker threads live as long as the pool");
        }
        {
            let kv = self
                .kv
                .read()
                .expect("no thread panicked while lending the cache");
            job.compute(&self.weights, &kv, scores, x, shares[0], out, n_out, 0);
        }
        for (worker, &(c0, c1)) in busy() {
            wait(&worker.done).expect("worker threads live as long as the pool");
            let part = worker.output.lock().expect("no worker panicked");
            let width = c1 - c0;
            for (out_row, part_row) in out.chunks_exact_mut(n_out).zip(part.chunks_exact(width)) {
                out_row[c0..c1].copy_from_slice(part_row);
            }
        }
    }
}

/// `n_out` columns in `n_parts` contiguous shares, cut at multiples of `unit`.
fn split_columns(n_out: usize, n_parts: usize, unit: usize) -> Vec<(usize, usize)> {
    let cut = |i: usize| {
        if i == n_parts {
            n_out
        } else {
            (n_out * i / n_parts) / unit * unit
        }
    };
    (0..n_parts).map(|i| (cut(i), cut(i + 1))).collect()
}

/// Receives one message: spins, then yields, then sleeps (see [`SPINS`]).
fn wait<T>(channel: &Receiver<T>) -> Option<T> {
    for attempt in 0..SPINS + YIELDS {
        match channel.try_recv() {
            Ok(message) => return Some(message),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if attempt < SPINS => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    channel.recv().ok()
}

/// What a worker shares with the caller: the weights, the input, and the lent KV cache.
type Shared = (Arc<Weights>, Arc<RwLock<Vec<f32>>>, Arc<RwLock<LayerKv>>);

fn spawn_worker(index: usize, (weights, input, kv): Shared) -> Worker {
    let (tasks, task_inbox) = sync_channel::<Task>(1);
    let (done_outbox, done) = sync_channel::<()>(1);
    let output = Arc::new(Mutex::new(Vec::new()));
    let my_output = Arc::clone(&output);
    let thread = std::thread::Builder::new()
        .name(format!("gpt2-edu worker {index}"))
        .spawn(move || {
            let mut scores = Vec::new(); // this worker's attention scores
            while let Some(Task::Compute { job, n_rows, cols }) = wait(&task_inbox) {
                {
                    let x = input
                        .read()
                        .expect("the caller does not panic while writing");
                    let kv = kv.read().expect("the caller does not panic while lending");
                    let mut out = my_output
                        .lock()
                        .expect("only this worker writes its output");
                    let width = cols.1 - cols.0;
                    out.resize(n_rows * width, 0.0); // grows once, then reused
                    let (scores, out) = (&mut scores, &mut out);
                    job.compute(&weights, &kv, scores, &x, cols, out, width, cols.0);
                }
                if done_outbox.send(()).is_err() {
                    return;
                }
            }
        })
        .expect("the operating system can start a thread");
    Worker {
        tasks,
        done,
        output,
        thread: Some(thread),
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.tasks.send(Task::Quit);
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_column_once() {
        for (n_out, parts) in [(10, 1), (10, 3), (2304, 2), (50257, 4), (7, 4)] {
            let shares = split_columns(n_out, parts, PANEL);
            assert_eq!(shares.len(), parts);
            assert_eq!(shares[0].0, 0);
            assert_eq!(shares[parts - 1].1, n_out);
            for pair in shares.windows(2) {
                assert_eq!(pair[0].1, pair[1].0);
            }
        }
        // Attention's shares are whole heads: cuts at multiples of d_head = 64.
        for (c0, c1) in split_columns(768, 5, 64) {
            assert_eq!((c0 % 64, c1 % 64), (0, 0));
        }
    }

    #[test]
    fn attention_shared_out_equals_one_thread_and_gives_the_cache_back() {
        use crate::attention::causal_self_attention;
        // The dummy model: n_embd 10, 2 heads of 5; a cache with room for 8 positions.
        let (_, hparams, weights) = crate::dummy::load_encoder_hparams_and_params();
        let mut rng = crate::rng::XorShift64::new(11).unwrap();
        let capacity = 8;
        let mut kv = LayerKv {
            keys: rng.uniform_vec(capacity * hparams.n_embd),
            values: rng.uniform_vec(capacity * hparams.n_embd),
            capacity,
            d_head: hparams.d_head(),
        };
        let before = kv.clone();
        let queries = rng.uniform_vec(3 * hparams.n_embd); // 3 new positions, keys 0..6
        let (mut scores, mut one_thread) = (Vec::new(), Vec::new());
        let n = (hparams.n_embd, hparams.n_head);
        let mut no_trace = Trace::disabled();
        let (kv_ref, s, o) = (&kv, &mut scores, &mut one_thread);
        causal_self_attention(&queries, kv_ref, 6, n.0, n.1, s, o, 0, &mut no_trace);
        let pool_weights = Arc::new(weights);
        for threads in 1..=3 {
            let pool = ThreadPool::new(Arc::clone(&pool_weights), threads);
            let mut shared = vec![f32::NAN; queries.len()];
            pool.attend(&queries, &mut kv, 6, &mut scores, &mut shared);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&shared), bits(&one_thread), "{threads} threads");
            assert_eq!(kv, before, "the cache is back with the caller, unchanged");
        }
    }
}
