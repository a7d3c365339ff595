//! A small, persistent pool of worker threads that split each product by output columns.
//!
//! ```text
//! out = x @ W + b      [n_rows, n_in] @ [n_in, n_out]
//! columns cut into chunks of 128 (8 panels; a head for attention):  0..128 | 128..256 | ...
//! each thread, the caller's included, claims the next chunk until none is left
//! ```
//!
//! Chunks are claimed, not dealt out in fixed shares, because a woken worker starts some
//! microseconds after the caller and a shared machine runs its two cores at different
//! speeds: with one fixed half each, the caller waited for the worker 12% of an f32 decode
//! step and 6-11% of a q8 one (measured on this 2-core machine), doing nothing. Claiming
//! changes which thread computes a column, never how, so the bits stay the same.
//!
//! The pool knows nothing of GPT-2: it is handed a packed matrix (an `Arc`, so the workers
//! can hold it) or a layer's KV cache, and splits that one job. Every output element is
//! computed whole by one thread, with the same kernel and the same summation order, so
//! 1, 2, 3 or 4 threads give bit-identical results. Decoding one token reads every weight
//! once; splitting the columns lets both cores read memory at once.
//!
//! Safe Rust cannot lend a worker a borrowed slice for an unknown time, so the workers own
//! what they need: the matrix, through its `Arc`; the input, copied into a shared buffer
//! once per product (a few KB while decoding); and an output buffer each, copied back by
//! the caller. Attention is split the same way, by whole heads: the caller lends the
//! layer's KV cache by *moving* it into a shared slot for the call ([`ThreadPool::attend`]),
//! which moves three pointers, not the cache. Tasks travel over bounded channels and every
//! buffer is reused, so a decode step allocates nothing. Waiting threads spin briefly
//! before they sleep, because a product takes microseconds and waking a sleeping thread
//! takes about as long.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use super::attention::{HeadScratch, attend_heads};
use super::packed::{OutColumns, PANEL, PackedLinear, SIDE_BY_SIDE};
use crate::error::{Error, Result};
use crate::gelu::gelu_in_place;
use crate::kv_cache::LayerKv;

/// What to apply to each result of a product, in the thread that computed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Nothing: `x @ W + b`.
    None,
    /// GELU, element-wise, so the values are the same as GELU applied afterwards.
    Gelu,
}

/// One job the pool splits by output columns.
#[derive(Debug, Clone)]
enum Job {
    /// `x @ W + b`, then the activation.
    Product(Arc<PackedLinear>, Activation),
    /// Causal self-attention of the queries `x` (`[n_rows, n_embd]`) over the first
    /// `n_keys` positions of the KV cache lent by [`ThreadPool::attend`]; the output is the
    /// merged heads, split between threads by whole heads.
    Attention { n_keys: usize },
}

impl Job {
    /// `(n_in, n_out)`: the width of a row of `x` and of a row of the output.
    fn widths(&self, kv: &LayerKv) -> (usize, usize) {
        match self {
            Job::Product(matrix, _) => (matrix.n_in(), matrix.n_out()),
            Job::Attention { .. } => (kv.n_embd(), kv.n_embd()), // queries in, heads out
        }
    }

    /// The columns a thread claims at a time: as many panels as the decode kernel reads
    /// side by side (a narrower chunk would send it down its slower one-panel path), or
    /// one head.
    fn chunk_columns(&self, kv: &LayerKv) -> usize {
        match self {
            Job::Product(..) => SIDE_BY_SIDE * PANEL,
            Job::Attention { .. } => kv.d_head.max(1),
        }
    }

    /// Columns `cols` for every row of `x`, into `out`. Attention reads the lent cache `kv`.
    fn run(
        &self,
        kv: &LayerKv,
        scratch: &mut HeadScratch,
        x: &[f32],
        cols: Range<usize>,
        out: OutColumns,
    ) {
        match self {
            Job::Product(matrix, activation) => {
                let (col0, stride, share) = (out.col0, out.stride, cols.clone());
                let data = &mut *out.data;
                matrix.columns_into(x, cols, OutColumns { data, stride, col0 });
                if *activation == Activation::Gelu {
                    for row in data.chunks_mut(stride) {
                        gelu_in_place(&mut row[share.start - col0..share.end - col0]);
                    }
                }
            }
            Job::Attention { n_keys } => {
                let heads = cols.start / kv.d_head..cols.end / kv.d_head;
                attend_heads(x, kv, *n_keys, heads, scratch, out);
            }
        }
    }
}

/// A job's output columns, cut into chunks for the threads to claim.
#[derive(Debug, Clone, Copy)]
struct Chunks {
    n_rows: usize,
    n_out: usize,
    width: usize,
}

impl Chunks {
    /// The columns of chunk `c`, if there is one.
    fn cols(self, c: usize) -> Option<Range<usize>> {
        let start = c.checked_mul(self.width).filter(|&start| start < self.n_out)?;
        Some(start..(start + self.width).min(self.n_out))
    }

    /// How many chunks there are.
    fn count(self) -> usize {
        self.n_out.div_ceil(self.width)
    }

    /// Claims the next chunk from `next`: its index and columns, or `None` when all are
    /// claimed. (The counter only hands out indices; the data itself is ordered by the
    /// channels and locks, so `Relaxed` is enough.)
    fn claim(self, next: &AtomicUsize) -> Option<(usize, Range<usize>)> {
        let c = next.fetch_add(1, Ordering::Relaxed);
        self.cols(c).map(|cols| (c, cols))
    }
}

#[derive(Debug)]
enum Task {
    Run { job: Job, chunks: Chunks },
    Quit,
}

/// What a worker computed for one job: the chunks it claimed, in order, and their
/// results one after another, each `[n_rows, its columns]`.
#[derive(Debug, Default)]
struct WorkerOutput {
    chunks: Vec<usize>,
    data: Vec<f32>,
}

#[derive(Debug)]
struct Worker {
    tasks: SyncSender<Task>,
    done: Receiver<()>,
    output: Arc<Mutex<WorkerOutput>>,
    thread: Option<JoinHandle<()>>,
}

/// What the workers share with the caller: the input rows, a KV cache while it is lent,
/// and the index of the next chunk to claim.
#[derive(Debug, Clone, Default)]
struct Shared {
    input: Arc<RwLock<Vec<f32>>>,
    kv: Arc<RwLock<LayerKv>>,
    next: Arc<AtomicUsize>,
}

/// The caller's thread plus `n_threads - 1` workers.
#[derive(Debug)]
pub struct ThreadPool {
    shared: Shared,
    workers: Vec<Worker>,
}

/// The most threads a pool may have. Far more than any machine this crate targets has
/// cores (each thread takes a share of every product, so threads beyond the cores only
/// wait), and small enough that asking for an absurd number is an error, not a hang.
pub const MAX_THREADS: usize = 256;

/// How a waiting thread waits: it checks for news `SPINS` times in a tight loop, then
/// `YIELDS` times giving its core to any other runnable thread, then sleeps. Products take
/// microseconds, so the next task usually arrives while spinning; yielding keeps a busy
/// machine (other programs, parallel tests) from losing a core to the wait.
const SPINS: u32 = 200;
const YIELDS: u32 = 2_000;

impl ThreadPool {
    /// A pool of `n_threads` threads in all: the caller's plus `n_threads - 1` workers,
    /// started now. One thread starts none (everything runs on the caller's thread, so a
    /// single-threaded target works). `n_threads` must be `1..=`[`MAX_THREADS`]
    /// ([`Error::InvalidThreads`]); a thread the operating system will not start is
    /// [`Error::ThreadStart`] (the ones already started are stopped again).
    pub fn new(n_threads: usize) -> Result<Self> {
        if !(1..=MAX_THREADS).contains(&n_threads) {
            return Err(Error::InvalidThreads { requested: n_threads, max: MAX_THREADS });
        }
        let mut pool = Self { shared: Shared::default(), workers: Vec::new() };
        for index in 1..n_threads {
            let worker = spawn_worker(index, pool.shared.clone())
                .map_err(|e| Error::ThreadStart(format!("worker {index} of {n_threads}: {e}")))?;
            pool.workers.push(worker); // dropping `pool` on an error stops these
        }
        Ok(pool)
    }

    /// Threads in all, the caller's included.
    pub fn n_threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// `out = activation(x @ W + b)` for `matrix`: `x` is `[n_rows, n_in]`, and `out` becomes
    /// `[n_rows, n_out]`. The caller computes the first share of the columns while the
    /// workers compute theirs.
    pub fn compute(
        &self,
        matrix: &Arc<PackedLinear>,
        activation: Activation,
        x: &[f32],
        out: &mut Vec<f32>,
    ) {
        let job = Job::Product(Arc::clone(matrix), activation);
        self.split(job, x, out, &mut HeadScratch::default());
    }

    /// Causal self-attention of the queries `q` (`[n_rows, n_embd]`, the last `n_rows` of
    /// `n_keys` positions) over one layer's cache `kv`, into the merged heads `heads` (made
    /// `[n_rows, n_embd]`), each thread computing whole heads. `scratch` is the caller's
    /// buffers for its own heads; each worker keeps its own.
    ///
    /// The workers cannot borrow `kv`, so it is moved into the pool for the call (a swap of
    /// its three pointers, not a copy) and moved back before returning.
    pub fn attend(
        &self,
        q: &[f32],
        kv: &mut LayerKv,
        n_keys: usize,
        scratch: &mut HeadScratch,
        heads: &mut Vec<f32>,
    ) {
        let lend = |kv: &mut LayerKv| {
            let mut slot = self.shared.kv.write().expect("no thread panicked holding the cache");
            std::mem::swap(&mut *slot, kv);
        };
        lend(kv); // the cache into the pool
        self.split(Job::Attention { n_keys }, q, heads, scratch);
        lend(kv); // and back
    }

    /// Splits `job` by output columns between the caller and the workers: each claims
    /// chunks until none is left, the caller writing its own straight into `out`.
    fn split(&self, job: Job, x: &[f32], out: &mut Vec<f32>, scratch: &mut HeadScratch) {
        let kv = self.shared.kv.read().expect("no thread panicked while lending the cache");
        let (n_in, n_out) = job.widths(&kv);
        let n_rows = x.len() / n_in.max(1);
        out.resize(n_rows * n_out, 0.0);
        let chunks = Chunks { n_rows, n_out, width: job.chunk_columns(&kv) };
        self.shared.next.store(0, Ordering::Relaxed); // before any task is sent
        // As many workers as there are chunks beyond the caller's first (a tiny product
        // is the caller's alone).
        let helpers = &self.workers[..self.workers.len().min(chunks.count().saturating_sub(1))];
        if !helpers.is_empty() {
            self.share_input(x);
        }
        for worker in helpers {
            let task = Task::Run { job: job.clone(), chunks };
            worker.tasks.send(task).expect("worker threads live as long as the pool");
        }
        while let Some((_, cols)) = chunks.claim(&self.shared.next) {
            job.run(&kv, scratch, x, cols, OutColumns { data: out, stride: n_out, col0: 0 });
        }
        for worker in helpers {
            wait(&worker.done).expect("worker threads live as long as the pool");
            let part = worker.output.lock().expect("no worker panicked");
            let mut results = part.data.as_slice();
            for cols in part.chunks.iter().filter_map(|&c| chunks.cols(c)) {
                let (this, rest) = results.split_at(n_rows * cols.len());
                for (out_row, row) in out.chunks_exact_mut(n_out).zip(this.chunks_exact(cols.len()))
                {
                    out_row[cols.clone()].copy_from_slice(row);
                }
                results = rest;
            }
        }
    }

    /// Copies `x` where the workers read it (nothing to do without workers).
    fn share_input(&self, x: &[f32]) {
        if !self.workers.is_empty() {
            let mut shared =
                self.shared.input.write().expect("no thread panicked while holding the input");
            shared.clear();
            shared.extend_from_slice(x);
        }
    }
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

/// Starts worker `index`, waiting for tasks.
fn spawn_worker(index: usize, shared: Shared) -> std::io::Result<Worker> {
    let (tasks, inbox) = sync_channel::<Task>(1);
    let (outbox, done) = sync_channel::<()>(1);
    let output = Arc::new(Mutex::new(WorkerOutput::default()));
    let my_output = Arc::clone(&output);
    let thread = std::thread::Builder::new()
        .name(format!("gpt2-edu worker {index}"))
        .spawn(move || work(&shared, &inbox, &outbox, &my_output))?;
    Ok(Worker { tasks, done, output, thread: Some(thread) })
}

/// A worker's life: run each task into its own output buffer, say when it is done.
fn work(
    shared: &Shared,
    inbox: &Receiver<Task>,
    outbox: &SyncSender<()>,
    output: &Mutex<WorkerOutput>,
) {
    let mut scratch = HeadScratch::default(); // this worker's attention buffers
    while let Some(Task::Run { job, chunks }) = wait(inbox) {
        {
            let x = shared.input.read().expect("the caller does not panic while writing");
            let kv = shared.kv.read().expect("the caller does not panic while lending");
            let mut out = output.lock().expect("only this worker writes its output");
            let WorkerOutput { chunks: claimed, data } = &mut *out;
            claimed.clear();
            data.clear(); // keeps its memory: grows over the first steps, then reused
            while let Some((c, cols)) = chunks.claim(&shared.next) {
                let start = data.len();
                data.resize(start + chunks.n_rows * cols.len(), 0.0);
                let (stride, col0) = (cols.len(), cols.start);
                let chunk_out = OutColumns { data: &mut data[start..], stride, col0 };
                job.run(&kv, &mut scratch, &x, cols, chunk_out);
                claimed.push(c);
            }
        }
        if outbox.send(()).is_err() {
            return;
        }
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
    use crate::matrix::Linear;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn thread_counts_out_of_range_are_errors_and_one_thread_starts_no_worker() {
        for n in [0, MAX_THREADS + 1, usize::MAX] {
            let error = ThreadPool::new(n).unwrap_err();
            assert_eq!(error, Error::InvalidThreads { requested: n, max: MAX_THREADS });
        }
        assert!(ThreadPool::new(1).unwrap().workers.is_empty());
        assert_eq!(ThreadPool::new(3).unwrap().n_threads(), 3);
    }

    #[test]
    fn chunks_cover_every_column_once_and_end_at_n_out() {
        for (n_out, width) in [(10, 128), (128, 128), (2304, 128), (50257, 128), (768, 64)] {
            let chunks = Chunks { n_rows: 1, n_out, width };
            let next = AtomicUsize::new(0);
            let claimed: Vec<_> = std::iter::from_fn(|| chunks.claim(&next)).collect();
            assert_eq!(claimed.len(), chunks.count(), "{n_out}");
            let mut end = 0;
            for (i, (c, cols)) in claimed.iter().enumerate() {
                assert_eq!((*c, cols.start, cols.start % width), (i, end, 0), "{n_out}");
                end = cols.end;
            }
            assert_eq!(end, n_out);
            assert_eq!(chunks.claim(&next), None, "claiming past the end keeps failing");
        }
        assert_eq!(Chunks { n_rows: 1, n_out: 10, width: 4 }.cols(usize::MAX), None);
    }

    #[test]
    fn a_product_on_one_to_four_threads_equals_the_packed_kernel_alone() {
        let mut rng = crate::rng::XorShift64::new(5).unwrap();
        // 1000 columns: 8 chunks (the last of 104), so every thread count claims several.
        let layer = Linear::new(rng.uniform_vec(40 * 1000), rng.uniform_vec(1000));
        let matrix = Arc::new(PackedLinear::pack(layer));
        let x = rng.uniform_vec(3 * 40);
        let mut alone = matrix.forward(&x);
        for threads in 1..=4 {
            let pool = ThreadPool::new(threads).unwrap();
            let mut out = vec![f32::NAN; 7]; // stale contents are overwritten, every column
            for rows in [3, 1, 3] {
                // decode (one row) between two prefills: chunks of other sizes each time
                pool.compute(&matrix, Activation::None, &x[..rows * 40], &mut out);
                assert_eq!(bits(&out), bits(&alone[..rows * 1000]), "{threads} threads");
            }
        }
        gelu_in_place(&mut alone);
        let mut out = Vec::new();
        ThreadPool::new(2).unwrap().compute(&matrix, Activation::Gelu, &x, &mut out);
        assert_eq!(bits(&out), bits(&alone), "GELU in the threads");
    }

    #[test]
    fn attention_shared_out_equals_one_thread_and_gives_the_cache_back() {
        // 2 heads of 5; a cache with room for 8 positions, 6 of them used.
        let mut rng = crate::rng::XorShift64::new(11).unwrap();
        let (capacity, n_embd) = (8, 10);
        let mut kv = LayerKv {
            keys: rng.uniform_vec(capacity * n_embd),
            values: rng.uniform_vec(capacity * n_embd),
            capacity,
            d_head: 5,
        };
        let before = kv.clone();
        let queries = rng.uniform_vec(3 * n_embd); // 3 new positions, keys 0..6
        let mut one_thread = vec![f32::NAN; queries.len()];
        let all = OutColumns { data: &mut one_thread, stride: n_embd, col0: 0 };
        attend_heads(&queries, &kv, 6, 0..2, &mut HeadScratch::default(), all);
        for threads in 1..=3 {
            let pool = ThreadPool::new(threads).unwrap();
            let mut shared = Vec::new();
            pool.attend(&queries, &mut kv, 6, &mut HeadScratch::default(), &mut shared);
            assert_eq!(bits(&shared), bits(&one_thread), "{threads} threads");
            assert_eq!(kv, before, "the cache is back with the caller, unchanged");
        }
    }
}
