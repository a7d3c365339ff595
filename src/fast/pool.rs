//! A small, persistent pool of worker threads that split each product by output columns.
//!
//! ```text
//! out = x @ W + b      [n_rows, n_in] @ [n_in, n_out]
//! thread 0 (the caller): columns 0..c1     thread 1: columns c1..c2     ...
//! ```
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
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use super::attention::{HeadScratch, attend_heads};
use super::packed::{OutColumns, PANEL, PackedLinear};
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

    /// The columns a thread's share must be a multiple of: a panel, or a head.
    fn column_unit(&self, kv: &LayerKv) -> usize {
        match self {
            Job::Product(..) => PANEL,
            Job::Attention { .. } => kv.d_head,
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

#[derive(Debug)]
enum Task {
    Run { job: Job, n_rows: usize, cols: Range<usize> },
    Quit,
}

#[derive(Debug)]
struct Worker {
    tasks: SyncSender<Task>,
    done: Receiver<()>,
    output: Arc<Mutex<Vec<f32>>>,
    thread: Option<JoinHandle<()>>,
}

/// What the workers share with the caller: the input rows, and a KV cache while it is lent.
#[derive(Debug, Clone, Default)]
struct Shared {
    input: Arc<RwLock<Vec<f32>>>,
    kv: Arc<RwLock<LayerKv>>,
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

    /// Splits `job` by output columns between the caller and the workers.
    fn split(&self, job: Job, x: &[f32], out: &mut Vec<f32>, scratch: &mut HeadScratch) {
        let kv = self.shared.kv.read().expect("no thread panicked while lending the cache");
        let (n_in, n_out) = job.widths(&kv);
        let n_rows = x.len() / n_in.max(1);
        out.resize(n_rows * n_out, 0.0);
        let (n_parts, unit) = (self.n_threads(), job.column_unit(&kv));
        self.share_input(x);
        // Worker i takes share i + 1; one with an empty share (a tiny product) stays idle.
        let busy = || {
            let shares = (1..n_parts).map(|i| share(n_out, n_parts, unit, i));
            self.workers.iter().zip(shares).filter(|(_, cols)| !cols.is_empty())
        };
        for (worker, cols) in busy() {
            let task = Task::Run { job: job.clone(), n_rows, cols };
            worker.tasks.send(task).expect("worker threads live as long as the pool");
        }
        let mine = OutColumns { data: out, stride: n_out, col0: 0 };
        job.run(&kv, scratch, x, share(n_out, n_parts, unit, 0), mine);
        for (worker, cols) in busy() {
            wait(&worker.done).expect("worker threads live as long as the pool");
            let part = worker.output.lock().expect("no worker panicked");
            for (out_row, part_row) in
                out.chunks_exact_mut(n_out).zip(part.chunks_exact(cols.len()))
            {
                out_row[cols.clone()].copy_from_slice(part_row);
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

/// Share `i` of `n_out` columns cut into `n_parts` contiguous shares at multiples of
/// `unit` (computed, not stored, so that splitting a product allocates nothing).
fn share(n_out: usize, n_parts: usize, unit: usize, i: usize) -> Range<usize> {
    let unit = unit.max(1);
    let cut = |i: usize| if i == n_parts { n_out } else { (n_out * i / n_parts) / unit * unit };
    cut(i)..cut(i + 1)
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
    let output = Arc::new(Mutex::new(Vec::new()));
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
    output: &Mutex<Vec<f32>>,
) {
    let mut scratch = HeadScratch::default(); // this worker's attention buffers
    while let Some(Task::Run { job, n_rows, cols }) = wait(inbox) {
        {
            let x = shared.input.read().expect("the caller does not panic while writing");
            let kv = shared.kv.read().expect("the caller does not panic while lending");
            let mut out = output.lock().expect("only this worker writes its output");
            out.resize(n_rows * cols.len(), 0.0); // grows once, then reused
            let (stride, col0) = (cols.len(), cols.start);
            job.run(&kv, &mut scratch, &x, cols, OutColumns { data: &mut out, stride, col0 });
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
    fn shares_cover_every_column_once() {
        for (n_out, parts) in [(10, 1), (10, 3), (2304, 2), (50257, 4), (7, 4)] {
            let shares: Vec<_> = (0..parts).map(|i| share(n_out, parts, PANEL, i)).collect();
            assert_eq!(shares.len(), parts);
            assert_eq!(shares[0].start, 0);
            assert_eq!(shares[parts - 1].end, n_out);
            for pair in shares.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
        }
        // Attention's shares are whole heads: cuts at multiples of d_head = 64.
        for cols in (0..5).map(|i| share(768, 5, 64, i)) {
            assert_eq!((cols.start % 64, cols.end % 64), (0, 0));
        }
    }

    #[test]
    fn a_product_on_one_to_four_threads_equals_the_packed_kernel_alone() {
        let mut rng = crate::rng::XorShift64::new(5).unwrap();
        let layer = Linear::new(rng.uniform_vec(40 * 200), rng.uniform_vec(200));
        let matrix = Arc::new(PackedLinear::pack(layer));
        let x = rng.uniform_vec(3 * 40);
        let mut alone = matrix.forward(&x);
        for threads in 1..=4 {
            let pool = ThreadPool::new(threads).unwrap();
            let mut out = Vec::new();
            pool.compute(&matrix, Activation::None, &x, &mut out);
            assert_eq!(bits(&out), bits(&alone), "{threads} threads");
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
