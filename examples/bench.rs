//! How fast does gpt2-edu decode, against the machine's memory-bandwidth ceiling?
//!
//! ```text
//! cargo run --release --example bench -- [--threads N] [--tokens N] [--prompt N] [--model DIR]
//!                                          [--dtype f32|bf16|q8] [--size 124M|355M|774M|1558M]
//! ```
//!
//! The detailed report is for the first dtype (`--dtype`, else f32); without `--dtype` a
//! table then gives one row per dtype (f32, bf16, q8), each timed on its own engine built
//! from the same weights: prefill, cached decode at context 128 and 512, the
//! weight bytes a step reads, the bandwidth achieved, and the fraction of the same-run
//! ceiling for that dtype's bytes.
//!
//! At batch size 1 every generated token reads every weight once, so
//! `ceiling (tokens/s) = read bandwidth (bytes/s) / weight bytes per token`. The benchmark
//! measures that bandwidth itself, in the same run, then times the model and prints a table
//! and one `key=value` line. Without `--model` it builds random weights of GPT-2 124M's shapes
//! from the crate's xorshift (no files needed); the speed does not depend on the values.
//! `--size` picks another official GPT-2 shape for those random weights (1558M in f32 needs
//! about 6.2 GB of memory for the weights alone; `--tokens 4` keeps its decode timing short).
//! With `--model` the table also says how long the checkpoint took to load.
//!
//! - **bandwidth**: two threads compare two equal buffers with `==` on byte slices, which
//!   std hands to the C library's `memcmp`, vectorised with the widest instructions the CPU
//!   has. This is the machine's read bandwidth, the honest ceiling. A shared machine's
//!   bandwidth drifts, and on the 2-core machine this was measured on it also jumps
//!   between two levels for seconds at a time (about 30 and about 50 GB/s for two threads,
//!   as the cores' neighbours come and go), so a probe before the timings and one after
//!   them may each see a different machine from the decode in between. The ceiling is
//!   therefore probed right beside every decode window at context 128: the dtypes' engines
//!   take turns, window after window (7 rounds), each window between two probes of 2 x 256
//!   MiB. A dtype's fraction of the ceiling is the median over its windows of the bytes it
//!   read per second against the mean of the probes either side, and its speed against
//!   the first dtype's is the median of the ratios within each round: same-moment ratios,
//!   not ratios of figures measured seconds apart. The probe before the timings (2 x 512
//!   MiB, best of three) is reported too. For comparison it also reports what portable code
//!   (the default x86-64 target: SSE2) reads when it sums f32s, walking one stretch of
//!   memory per thread, and four side by side.
//! - **prefill**: one forward pass over a `--prompt`-token prompt (128), logits for the last
//!   position only.
//! - **decode**: `--tokens` (32) cached one-token steps after a prefill to context 128 (the
//!   median of the alternating windows above; the cache is filled to 127 positions once and
//!   cut back to them, `KvCache::truncate`, before each window), and after a prefill to
//!   context 512 (the median of three windows, each engine on its own). Without `--dtype`
//!   all three engines are held at once for the alternating windows (1558M: about 11 GB).
//! - **full recomputation**: one forward over 128 (and 512) tokens per generated token.
//! - **peak memory**: the process's peak resident set while building or loading the engine
//!   (from random weights or `--model`, tensor by tensor: `Engine::from_tensors`), against
//!   the engine's weights plus the largest tensor in f32 (`wte`), which is all loading may
//!   hold beyond them; then, the peak reset (Linux: `/proc/self/clear_refs`), the peak
//!   while running, against the weights plus the KV cache. The key=value line's
//!   `peak_rss_mb` is running's, `load_peak_rss_mb` loading's.
//! - **where a step goes**: the parts of a cached step timed alone on the same thread pool,
//!   in the same order and over the same memory as a real step: the 48 block products
//!   (every layer's weights), the logits, and attention over a filled cache of context 128
//!   and 512. The whole step also holds layer norms, residual additions and the embedding,
//!   and was timed a few seconds earlier, on a machine whose speed drifts.

use std::process::ExitCode;
use std::time::Instant;

use std::sync::Arc;

use gpt2_edu::fast::internals::{Activation, HeadScratch, PackedLinear, ThreadPool};
use gpt2_edu::fast::{Engine, Logits, Workspace, default_threads};
use gpt2_edu::kv_cache::LayerKv;
use gpt2_edu::model::Role;
use gpt2_edu::sample::argmax;
use gpt2_edu::{Dtype, HParams, KvCache, Weights, XorShift64, load_dir_engine};

struct Options {
    threads: usize,
    tokens: usize,
    prompt: usize,
    model: Option<std::path::PathBuf>,
    /// The dtypes to time: all three, or the one `--dtype` names.
    dtypes: Vec<Dtype>,
    /// The shape of the random weights without `--model`.
    size: HParams,
}

/// `--size`: one of the four released GPT-2 shapes.
fn parse_size(name: &str) -> Result<HParams, String> {
    match name {
        "124M" => Ok(HParams::gpt2_124m()),
        "355M" => Ok(HParams::gpt2_355m()),
        "774M" => Ok(HParams::gpt2_774m()),
        "1558M" => Ok(HParams::gpt2_1558m()),
        other => Err(format!("--size expects 124M, 355M, 774M or 1558M, found '{other}'")),
    }
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        threads: default_threads(),
        tokens: 32,
        prompt: 128,
        model: None,
        dtypes: Dtype::ALL.to_vec(),
        size: HParams::gpt2_124m(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or(format!("{flag} expects a positive whole number, found '{v}'"))
        };
        match flag.as_str() {
            "--threads" => options.threads = number(value()?)?,
            "--tokens" => options.tokens = number(value()?)?,
            "--prompt" => options.prompt = number(value()?)?,
            "--model" => options.model = Some(value()?.into()),
            "--dtype" => {
                options.dtypes = vec![value()?.parse::<Dtype>().map_err(|e| e.to_string())?]
            }
            "--size" => options.size = parse_size(&value()?)?,
            other => {
                return Err(format!(
                    "unknown option '{other}' (options: --threads N --tokens N --prompt N \
                     --model DIR --dtype f32|bf16|q8 --size 124M|355M|774M|1558M)"
                ));
            }
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    let threads = options.threads;
    let (first_bandwidth, portable, portable4) = (
        memcmp_read_bandwidth(threads),
        portable_read_bandwidth::<1>(threads),
        portable_read_bandwidth::<4>(threads),
    );
    reset_peak_memory();

    let dtype = options.dtypes[0];
    let start = Instant::now();
    let engine = build_engine(options, dtype)?;
    let load_s = start.elapsed().as_secs_f64();
    // Loading's peak, then the peak from here on: running's.
    let load_peak_mb = peak_memory_mb();
    reset_peak_memory();
    let weights_mb = model_bytes(engine.hparams(), dtype) as f64 / 1e6;
    let hp = *engine.hparams();
    let largest_mb = largest_tensor_bytes(&hp) as f64 / 1e6;
    let needed = options.prompt.max(512) + options.tokens;
    if needed > hp.n_ctx {
        return Err(format!("the benchmark needs {needed} positions but n_ctx is {}", hp.n_ctx));
    }
    let weight_bytes = engine.weight_bytes_per_token();
    let mut timer = Timer::new(&engine, threads, needed)?;
    timer.run_from_empty(8, 1); // warm-up: threads started, buffers grown, weights paged in
    let prefill_s = timer.run_from_empty(options.prompt, 3);
    let full128_s = timer.run_from_empty(128, 3);
    let full512_s = timer.run_from_empty(512, 1);
    let decode512 = timer.decode(512, options.tokens);
    let peak_mb = peak_memory_mb();
    let parts = step_parts(&engine, threads, options.tokens);

    let cache_mb = timer.cache.memory_bytes() as f64 / 1e6;
    drop(timer);
    // One row per dtype, each on its own engine (the first is the one timed above), all
    // held at once so that their decode windows can alternate.
    let mut engines = vec![engine];
    let mut per_dtype = vec![DtypeRow::new(&engines[0], options.prompt as f64 / prefill_s)];
    per_dtype[0].decode512 = decode512;
    for &other in &options.dtypes[1..] {
        let (engine, row) = time_dtype(options, other)?;
        engines.push(engine);
        per_dtype.push(row);
    }
    alternate_windows(&engines, options, &mut per_dtype)?;
    let decode128 = per_dtype[0].decode128;
    let bandwidth = per_dtype[0].bandwidth;
    let ceiling = bandwidth * 1e9 / weight_bytes as f64;
    let rows = [
        (
            "model",
            format!("{} x {}", hp.n_layer, hp.n_embd),
            format!(
                "n_layer x n_embd, {:.1} s to {}",
                load_s,
                if options.model.is_some() { "load" } else { "build" }
            ),
        ),
        ("threads", format!("{threads}"), String::new()),
        ("weights", format!("{dtype}"), "the dtype of this report's engine".into()),
        (
            "read bandwidth (memcmp, widest vectors)",
            format!("{bandwidth:.1} GB/s"),
            format!("the ceiling's: median of the probes beside {ROUNDS} decode windows"),
        ),
        (
            "read bandwidth (memcmp, before the timings)",
            format!("{first_bandwidth:.1} GB/s"),
            "best of three".into(),
        ),
        (
            "read bandwidth (portable SSE2 f32 sum)",
            format!("{portable:.1} GB/s"),
            "safe default-target code, 1 stream per thread".into(),
        ),
        (
            "read bandwidth (the same, 4 streams)",
            format!("{portable4:.1} GB/s"),
            "4 stretches read side by side per thread".into(),
        ),
        (
            "weight bytes per token",
            format!("{:.1} MB", weight_bytes as f64 / 1e6),
            "every weight read once".into(),
        ),
        ("ceiling", format!("{ceiling:.1} tok/s"), "bandwidth / weight bytes".into()),
        (
            "prefill",
            format!("{:.1} tok/s", options.prompt as f64 / prefill_s),
            format!("{} tokens in {:.0} ms", options.prompt, prefill_s * 1e3),
        ),
        (
            "cached decode, context 128",
            format!("{decode128:.1} tok/s"),
            format!("{:.1} ms/token", 1e3 / decode128),
        ),
        (
            "cached decode, context 512",
            format!("{decode512:.1} tok/s"),
            format!("{:.1} ms/token", 1e3 / decode512),
        ),
        (
            "full recomputation, context 128",
            format!("{:.2} tok/s", 1.0 / full128_s),
            format!("{:.0} ms/token", full128_s * 1e3),
        ),
        (
            "full recomputation, context 512",
            format!("{:.2} tok/s", 1.0 / full512_s),
            format!("{:.0} ms/token", full512_s * 1e3),
        ),
        ("cache speedup at 512", format!("{:.0}x", decode512 * full512_s), "cached / full".into()),
        (
            "weight reads achieved",
            format!("{:.1} GB/s", weight_bytes as f64 * decode128 / 1e9),
            "at context 128".into(),
        ),
        (
            "fraction of ceiling",
            format!("{:.0}%", 100.0 * per_dtype[0].fraction),
            "cached decode at 128 / the bandwidth probed beside it: median".into(),
        ),
        (
            "peak memory",
            format!("{peak_mb:.0} MB"),
            format!(
                "running: {:.2}x weights {weights_mb:.0} MB + KV cache {cache_mb:.0} MB (target 1.1x)",
                peak_mb / (weights_mb + cache_mb)
            ),
        ),
        (
            "peak memory while loading",
            format!("{load_peak_mb:.0} MB"),
            format!(
                "{:.2}x weights {weights_mb:.0} MB + largest f32 tensor {largest_mb:.0} MB (target 1x)",
                load_peak_mb / (weights_mb + largest_mb)
            ),
        ),
    ];
    for (name, value, detail) in rows {
        println!("{name:<42} {value:>12}  {detail}");
    }
    println!("where a cached step goes (each part timed alone, ms per token):");
    let step128 = 1e3 / decode128;
    let parts_rows = [
        (&*format!("block products ({})", 4 * hp.n_layer), parts.products_ms, parts.products_gb_s),
        ("logits", parts.logits_ms, parts.logits_gb_s),
    ];
    for (name, ms, gb_s) in parts_rows {
        println!("  {name:<40} {ms:>9.2} ms  {gb_s:.1} GB/s");
    }
    println!("  {:<40} {:>9.2} ms", "attention, context 128", parts.attention_ms[0]);
    println!("  {:<40} {:>9.2} ms", "attention, context 512", parts.attention_ms[1]);
    let sum = parts.products_ms + parts.logits_ms + parts.attention_ms[0];
    let label = "parts at 128 together";
    println!("  {label:<40} {sum:>9.2} ms  the whole step above: {step128:.2} ms");
    print_dtype_table(&per_dtype, options.prompt);
    let mut dtype_keys = String::new();
    for row in &per_dtype {
        let d = row.dtype;
        dtype_keys += &format!(
            " prefill_tok_s_{d}={:.1} decode_tok_s_ctx128_{d}={:.1} decode_tok_s_ctx512_{d}={:.1} ceiling_tok_s_{d}={:.1} ceiling_fraction_{d}={:.3}",
            row.prefill,
            row.decode128,
            row.decode512,
            row.ceiling(),
            row.fraction,
        );
    }
    println!(
        "dtype={dtype} prefill_tok_s={:.1} decode_tok_s_ctx128={decode128:.1} decode_tok_s_ctx512={decode512:.1} full_tok_s_ctx128={:.2} full_tok_s_ctx512={:.3} weight_gb_s={:.1} bandwidth_gb_s={bandwidth:.1} portable_read_gb_s={portable:.1} portable_read4_gb_s={portable4:.1} ceiling_tok_s={ceiling:.1} ceiling_fraction={:.3} peak_rss_mb={peak_mb:.0} weights_mb={weights_mb:.0} kv_cache_mb={cache_mb:.0} load_s={load_s:.2} load_peak_rss_mb={load_peak_mb:.0} largest_tensor_mb={largest_mb:.0} products_ms={:.2} logits_ms={:.2} attention_ms_ctx128={:.2} attention_ms_ctx512={:.2} threads={threads}{dtype_keys}",
        options.prompt as f64 / prefill_s,
        1.0 / full128_s,
        1.0 / full512_s,
        weight_bytes as f64 * decode128 / 1e9,
        per_dtype[0].fraction,
        parts.products_ms,
        parts.logits_ms,
        parts.attention_ms[0],
        parts.attention_ms[1],
    );
    Ok(())
}

/// The parts of one cached step, each timed alone (see the module docs).
struct StepParts {
    products_ms: f64,
    products_gb_s: f64,
    logits_ms: f64,
    logits_gb_s: f64,
    /// At context 128 and 512.
    attention_ms: [f64; 2],
}

/// Times the parts of a cached step `reps` times each on a pool of `threads`: best run.
fn step_parts(engine: &Engine, threads: usize, reps: usize) -> StepParts {
    let hp = *engine.hparams();
    let (e, f) = (hp.n_embd, hp.n_ffn());
    let pool = ThreadPool::new(threads).expect("a valid thread count");
    let x: Vec<f32> = (0..f).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
    let best_ms = |work: &mut dyn FnMut()| -> f64 {
        (0..reps.max(1))
            .map(|_| {
                let start = Instant::now();
                work();
                start.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    // Each block's four products, in a step's order, GELU fused as the engine fuses it.
    let products: Vec<(&Arc<PackedLinear>, Activation)> = engine
        .blocks()
        .iter()
        .flat_map(|b| {
            [
                (&b.attn_c_attn, Activation::None),
                (&b.attn_c_proj, Activation::None),
                (&b.mlp_c_fc, Activation::Gelu),
                (&b.mlp_c_proj, Activation::None),
            ]
        })
        .collect();
    let mut out = Vec::with_capacity(hp.n_vocab.max(f));
    let products_ms = best_ms(&mut || {
        for &(matrix, activation) in &products {
            pool.compute(matrix, activation, &x[..matrix.n_in()], &mut out);
        }
    });
    let logits_ms =
        best_ms(&mut || pool.compute(engine.wte(), Activation::None, &x[..e], &mut out));
    // One query over a filled cache per layer, every layer's cache its own memory, laid out
    // as `KvCache::new` lays it out (room for n_ctx positions per head).
    let mut layers: Vec<LayerKv> = (0..hp.n_layer)
        .map(|_| LayerKv {
            keys: x.iter().cycle().take(hp.n_ctx * e).copied().collect(),
            values: x.iter().rev().cycle().take(hp.n_ctx * e).copied().collect(),
            capacity: hp.n_ctx,
            d_head: hp.d_head(),
        })
        .collect();
    let (mut scratch, mut heads) = (HeadScratch::default(), vec![0.0; e]);
    let mut attention = |n_keys: usize| {
        best_ms(&mut || {
            for kv in &mut layers {
                pool.attend(&x[..e], kv, n_keys, &mut scratch, &mut heads);
            }
        })
    };
    let attention_ms = [attention(128), attention(512)];
    let products_bytes: f64 = products.iter().map(|(m, _)| m.bytes() as f64).sum();
    let logits_bytes = engine.wte().bytes() as f64;
    StepParts {
        products_ms,
        products_gb_s: products_bytes / products_ms / 1e6,
        logits_ms,
        logits_gb_s: logits_bytes / logits_ms / 1e6,
        attention_ms,
    }
}

/// An engine in `dtype` of one of GPT-2's shapes, weights from xorshift (seed 1, drawn as
/// `Weights::random` draws them) mapped to small centred values (as trained weights are;
/// the values do not change the speed, only that no number overflows). Layer norms stay
/// the identity. Built tensor by tensor, as a checkpoint loads: the f32 model never exists.
fn random_gpt2(hparams: HParams, dtype: Dtype) -> gpt2_edu::Result<Engine> {
    let mut rng = XorShift64::new(1)?;
    Engine::from_tensors(hparams, dtype, |spec, data| {
        *data = Weights::random_tensor(spec, &mut rng);
        if !matches!(spec.role, Role::NormGain | Role::NormBias) {
            data.iter_mut().for_each(|u| *u = (*u - 0.5) * 0.04);
        }
        Ok(())
    })
}

/// Bytes of the largest tensor of a model of `hp` in f32 (`wte`): what loading may hold
/// beyond the engine it builds.
fn largest_tensor_bytes(hp: &HParams) -> usize {
    Weights::specs(hp).iter().map(|spec| 4 * spec.len()).max().unwrap_or(0)
}

/// Bytes of every weight of a model of `hp` whose matrices are stored in `dtype`.
fn model_bytes(hp: &HParams, dtype: Dtype) -> usize {
    Weights::specs(hp)
        .iter()
        .map(|spec| match (spec.role, spec.name.as_str()) {
            (Role::Weight, _) => dtype.matrix_bytes(spec.shape[0], spec.shape[1]),
            (_, "wte.weight") => dtype.matrix_bytes(spec.shape[1], spec.shape[0]),
            _ => 4 * spec.len(),
        })
        .sum()
}

/// The model (`--model`, else random weights of `--size`), packed in `dtype` as it is
/// read or drawn, tensor by tensor.
fn build_engine(options: &Options, dtype: Dtype) -> Result<Engine, String> {
    let engine = match &options.model {
        Some(dir) => load_dir_engine(dir, dtype).map(|(_, engine)| engine),
        None => random_gpt2(options.size, dtype),
    };
    engine.map_err(|e| e.to_string())
}

/// One dtype's speeds.
struct DtypeRow {
    dtype: Dtype,
    prefill: f64,
    /// The median of the alternating windows ([`alternate_windows`]).
    decode128: f64,
    decode512: f64,
    weight_bytes: usize,
    /// The median of the bandwidth probed beside each of its decode windows, GB/s.
    bandwidth: f64,
    /// The median over its windows of the weight bytes read per second / the bandwidth
    /// probed beside that window.
    fraction: f64,
    /// The median over rounds of its decode speed / the first dtype's in the same round.
    vs_first: f64,
}

impl DtypeRow {
    /// A row for `engine` with its prefill speed; the decode figures are filled in later.
    fn new(engine: &Engine, prefill: f64) -> Self {
        Self {
            dtype: engine.dtype(),
            prefill,
            decode128: 0.0,
            decode512: 0.0,
            weight_bytes: engine.weight_bytes_per_token(),
            bandwidth: 0.0,
            fraction: 0.0,
            vs_first: 0.0,
        }
    }

    /// The ceiling for this dtype's bytes: bandwidth / weight bytes per token.
    fn ceiling(&self) -> f64 {
        self.bandwidth * 1e9 / self.weight_bytes as f64
    }
}

/// Times forward passes of one engine over a fixed token sequence, with its own workspace
/// and cache.
struct Timer<'e> {
    engine: &'e Engine,
    workspace: Workspace,
    cache: KvCache,
    tokens: Vec<u32>,
}

impl<'e> Timer<'e> {
    /// A timer for up to `n_tokens` positions.
    fn new(engine: &'e Engine, threads: usize, n_tokens: usize) -> Result<Self, String> {
        let hp = *engine.hparams();
        let tokens = (0..n_tokens as u32).map(|i| (i * 7919 + 13) % hp.n_vocab as u32).collect();
        Ok(Self {
            engine,
            workspace: Workspace::new(threads).map_err(|e| e.to_string())?,
            cache: KvCache::new(&hp).map_err(|e| e.to_string())?,
            tokens,
        })
    }

    /// Seconds for one forward over `tokens[range]` after what the cache holds.
    fn forward(&mut self, range: std::ops::Range<usize>) -> f64 {
        let start = Instant::now();
        let tokens = &self.tokens[range];
        let logits =
            self.engine.forward(tokens, &mut self.cache, &mut self.workspace, Logits::Last);
        std::hint::black_box(argmax(logits.expect("fits in n_ctx")));
        start.elapsed().as_secs_f64()
    }

    /// Tokens per second of `steps` one-token steps after the first `context` positions of
    /// the cache (filled once by the caller; each window forgets its own steps afterwards).
    fn window(&mut self, context: usize, steps: usize) -> f64 {
        self.cache.truncate(context);
        let start = Instant::now();
        for t in context..context + steps {
            self.forward(t..t + 1);
        }
        steps as f64 / start.elapsed().as_secs_f64()
    }

    /// Prefill and full recomputation: the median seconds of a forward over `n` tokens from
    /// an empty cache.
    fn run_from_empty(&mut self, n: usize, reps: usize) -> f64 {
        median((0..reps).map(|_| {
            self.cache.clear();
            self.forward(0..n)
        }))
    }

    /// Cached decoding at `context`: prefill to it (untimed), then `steps` one-token steps,
    /// three times; tokens per second of the median of the three (this shared machine's
    /// speed drifts within seconds, and one window of 32 steps lasts under a second).
    fn decode(&mut self, context: usize, steps: usize) -> f64 {
        let seconds = median((0..3).map(|_| {
            self.cache.clear();
            self.forward(0..context - 1);
            let start = Instant::now();
            for t in context - 1..context - 1 + steps {
                self.forward(t..t + 1);
            }
            start.elapsed().as_secs_f64()
        }));
        steps as f64 / seconds
    }
}

/// An engine in `dtype`, with its prefill and cached decode at context 512 (context 128 is
/// timed by [`alternate_windows`]).
fn time_dtype(options: &Options, dtype: Dtype) -> Result<(Engine, DtypeRow), String> {
    let engine = build_engine(options, dtype)?;
    let mut timer = Timer::new(&engine, options.threads, options.prompt.max(512) + options.tokens)?;
    timer.run_from_empty(8, 1); // warm-up
    let prefill_s = timer.run_from_empty(options.prompt, 3);
    let decode512 = timer.decode(512, options.tokens);
    drop(timer);
    let mut row = DtypeRow::new(&engine, options.prompt as f64 / prefill_s);
    row.decode512 = decode512;
    Ok((engine, row))
}

/// Rounds of [`alternate_windows`].
const ROUNDS: usize = 7;

/// Decode at context 128, in windows timed beside the bandwidth they are compared with.
/// This shared machine's bandwidth drifts, and sometimes jumps between two levels for
/// seconds at a time (measured here: 28-33 or 45-55 GB/s for two threads, as other tenants
/// come and go), so the dtypes take turns, round after round, each engine's window between
/// two bandwidth probes. Each figure is then a median over rounds of what was measured
/// together: the fraction of the ceiling against the probes either side of its own window,
/// a dtype against the first in the same round.
fn alternate_windows(
    engines: &[Engine],
    options: &Options,
    rows: &mut [DtypeRow],
) -> Result<(), String> {
    let probe = BandwidthProbe::new(256 << 20);
    let mut timers = engines
        .iter()
        .map(|engine| Timer::new(engine, options.threads, 128 + options.tokens))
        .collect::<Result<Vec<_>, _>>()?;
    for timer in &mut timers {
        timer.forward(0..127); // the context every window starts from
    }
    // speeds[r][d]: tokens/s of dtype d in round r; bandwidths likewise, GB/s.
    let (mut speeds, mut bandwidths) = (vec![], vec![]);
    let mut before = probe.once(options.threads);
    for _ in 0..ROUNDS {
        let (mut speed, mut bandwidth) = (vec![], vec![]);
        for timer in &mut timers {
            speed.push(timer.window(127, options.tokens));
            let after = probe.once(options.threads);
            bandwidth.push((before + after) / 2.0);
            before = after;
        }
        speeds.push(speed);
        bandwidths.push(bandwidth);
    }
    for (d, row) in rows.iter_mut().enumerate() {
        let gb_s = |r: usize| row.weight_bytes as f64 * speeds[r][d] / 1e9;
        row.decode128 = median((0..ROUNDS).map(|r| speeds[r][d]));
        row.bandwidth = median((0..ROUNDS).map(|r| bandwidths[r][d]));
        row.fraction = median((0..ROUNDS).map(|r| gb_s(r) / bandwidths[r][d]));
        row.vs_first = median((0..ROUNDS).map(|r| speeds[r][d] / speeds[r][0]));
    }
    Ok(())
}

/// The per-dtype table: speeds, bytes, bandwidth achieved and the fraction of the ceiling,
/// with each dtype's decode speed against the first's.
fn print_dtype_table(rows: &[DtypeRow], prompt: usize) {
    println!(
        "per dtype (decode 128, its ceiling and its fraction: medians of {ROUNDS} alternating rounds):\n  {:<6} {:>12} {:>12} {:>12} {:>10} {:>9} {:>12} {:>9} {:>8}",
        "dtype",
        format!("prefill {prompt}"),
        "decode 128",
        "decode 512",
        "MB/token",
        "GB/s",
        "ceiling",
        "fraction",
        "vs first"
    );
    for row in rows {
        println!(
            "  {:<6} {:>8.1} t/s {:>8.1} t/s {:>8.1} t/s {:>10.1} {:>9.1} {:>8.1} t/s {:>8.0}% {:>7.2}x",
            row.dtype.to_string(),
            row.prefill,
            row.decode128,
            row.decode512,
            row.weight_bytes as f64 / 1e6,
            row.weight_bytes as f64 * row.decode128 / 1e9,
            row.ceiling(),
            100.0 * row.fraction,
            row.vs_first,
        );
    }
}

fn median(times: impl Iterator<Item = f64>) -> f64 {
    let mut times: Vec<f64> = times.collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Two 512 MiB buffers compared by `threads` threads: read bytes per second, best of three.
fn memcmp_read_bandwidth(threads: usize) -> f64 {
    let probe = BandwidthProbe::new(512 << 20);
    (0..3).map(|_| probe.once(threads)).fold(0.0, f64::max)
}

/// Two equal buffers (far larger than any cache), compared with `==` on byte slices: std
/// hands that to the C library's `memcmp`.
struct BandwidthProbe {
    a: Vec<u8>,
    b: Vec<u8>,
}

impl BandwidthProbe {
    fn new(bytes: usize) -> Self {
        let a: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
        Self { b: a.clone(), a }
    }

    /// GB/s read by one comparison of the buffers, split between `threads` threads.
    fn once(&self, threads: usize) -> f64 {
        let chunk = self.a.len().div_ceil(threads);
        let start = Instant::now();
        let equal = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .a
                .chunks(chunk)
                .zip(self.b.chunks(chunk))
                .map(|(x, y)| s.spawn(move || x == y))
                .collect();
            handles.into_iter().all(|h| h.join().unwrap_or(false))
        });
        assert!(equal);
        2.0 * self.a.len() as f64 / start.elapsed().as_secs_f64() / 1e9
    }
}

/// A 1 GiB f32 buffer summed by `threads` threads in portable code, each thread walking
/// `STREAMS` equal stretches of its part side by side, 16 floats (one cache line) from each
/// in turn: best of three.
fn portable_read_bandwidth<const STREAMS: usize>(threads: usize) -> f64 {
    let data: Vec<f32> = (0..1usize << 28).map(|i| (i % 7) as f32).collect();
    let chunk = data.len().div_ceil(threads);
    let sum = |part: &[f32]| {
        let len = part.len() / STREAMS / 16 * 16;
        let stretches: [&[f32]; STREAMS] = std::array::from_fn(|i| &part[i * len..(i + 1) * len]);
        let mut acc = [[0.0f32; 16]; STREAMS];
        for k in (0..len).step_by(16) {
            for (acc, stretch) in acc.iter_mut().zip(&stretches) {
                for (a, &x) in acc.iter_mut().zip(&stretch[k..k + 16]) {
                    *a += x;
                }
            }
        }
        acc.iter().flatten().sum::<f32>()
    };
    let once = || {
        let start = Instant::now();
        let total: f32 = std::thread::scope(|s| {
            let handles: Vec<_> =
                data.chunks(chunk).map(|part| s.spawn(move || sum(part))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        std::hint::black_box(total);
        4.0 * data.len() as f64 / start.elapsed().as_secs_f64() / 1e9
    };
    (0..3).map(|_| once()).fold(0.0, f64::max)
}

/// Linux: forget the peak resident set so far (the probe's buffers), so the reported peak is
/// the model's. Elsewhere the peak is simply not reset.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Linux: the peak resident set (`VmHWM`) in MB; 0 where unknown.
fn peak_memory_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1e3)
}
