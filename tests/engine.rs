//! The fast engine against the reference model, bit for bit.
//!
//! The reference model (`Model`: plain row-major weights, one thread, fresh buffers) is
//! what LEARN.md teaches; the engine (`Engine`: packed panels, a thread pool, a workspace)
//! is what generation runs on. Here the engine's logits must equal the reference's with
//! `f32::to_bits`, at prefill and at every decode step, with the prompt fed whole, token
//! by token and in random chunks, on 1, 2, 3 and 4 threads; and its KV cache must hold
//! exactly the reference's keys and values. On 240 random models (`tests/common`), the
//! dummy model, and the F32, F16, BF16 and legacy checkpoint fixtures.
//!
//! Every weight dtype the same way: the engine with bf16 or q8 weights against the
//! reference model of those weights (`Model::stored_as`), on the fixtures and the first
//! 40 random models (whose `n_embd` of 1 to 64 makes most Q8 blocks short).

mod common;

use std::path::Path;

use common::{assert_bits_eq, feeding_schedules, random_case};
use gpt2_edu::{Decoding, Dtype, Engine, KvCache, Logits, Model, Workspace, XorShift64, generate};

const N_MODELS: u64 = 240;

/// Random models per 16- and 8-bit dtype (the kernels are shared, only a panel's row of
/// weights is read differently, and each dtype's kernels have their own unit tests).
const N_MODELS_PER_DTYPE: u64 = 40;

/// What the reference model computes for a whole sequence: every position's logits
/// (`[n_seq, n_vocab]`) and the KV cache after it.
struct Reference {
    logits: Vec<f32>,
    cache: KvCache,
}

fn reference(model: &Model, tokens: &[u32]) -> Reference {
    let mut cache = KvCache::new(&model.hparams).unwrap();
    let logits = model.forward_cached(tokens, &mut cache).unwrap();
    Reference { logits, cache }
}

/// Runs `tokens` through `engine` on `threads` threads: the first ones in `chunks`
/// (prefill, every row's logits), then the rest one per step (decode, the last row only),
/// checking every step's logits and then the whole cache against the reference.
fn check_engine(
    engine: &Engine,
    threads: usize,
    tokens: &[u32],
    chunks: &[usize],
    reference: &Reference,
    what: &str,
) {
    let n_vocab = engine.hparams().n_vocab;
    let mut workspace = Workspace::new(threads).unwrap();
    let mut cache = KvCache::new(engine.hparams()).unwrap();
    let rows = |from: usize, to: usize| &reference.logits[from * n_vocab..to * n_vocab];
    let mut fed = 0;
    for &chunk in chunks {
        let new = &tokens[fed..fed + chunk];
        let logits = engine.forward(new, &mut cache, &mut workspace, Logits::All).unwrap();
        assert_bits_eq(
            logits,
            rows(fed, fed + chunk),
            &format!("{what}: prefill to {}", fed + chunk),
        );
        fed += chunk;
    }
    for t in fed..tokens.len() {
        let logits =
            engine.forward(&tokens[t..t + 1], &mut cache, &mut workspace, Logits::Last).unwrap();
        assert_bits_eq(logits, rows(t, t + 1), &format!("{what}: decode step at position {t}"));
    }
    assert_caches_eq(&cache, &reference.cache, what);
}

/// The two caches hold the same positions, with the same bits, in every layer and head.
fn assert_caches_eq(engine: &KvCache, reference: &KvCache, what: &str) {
    assert_eq!(engine.len(), reference.len(), "{what}: cache length");
    for layer in 0..reference.n_layer() {
        for head in 0..reference.n_head() {
            let at = format!("{what}: cache layer {layer} head {head}");
            assert_bits_eq(
                engine.keys(layer, head),
                reference.keys(layer, head),
                &format!("{at} keys"),
            );
            assert_bits_eq(
                engine.values(layer, head),
                reference.values(layer, head),
                &format!("{at} values"),
            );
        }
    }
}

/// Every feeding schedule of `prompt` and every thread count, on the sequence `tokens`
/// (the prompt, then the tokens decoded one by one).
fn check_all_ways(model: &Model, tokens: &[u32], n_prompt: usize, seed: u64, label: &str) {
    check_all_ways_in(Dtype::F32, model, tokens, n_prompt, seed, label);
}

/// [`check_all_ways`] for the engine in `dtype`, against the reference model of the
/// weights `dtype` stores.
fn check_all_ways_in(
    dtype: Dtype,
    model: &Model,
    tokens: &[u32],
    n_prompt: usize,
    seed: u64,
    label: &str,
) {
    let label = &format!("{label}, {dtype}");
    let reference = reference(&model.clone().stored_as(dtype).unwrap(), tokens);
    let engine = Engine::with_dtype(model.clone(), dtype).unwrap();
    let mut rng = XorShift64::new(seed + 2_000_000).unwrap();
    for (how, chunks) in feeding_schedules(n_prompt, &mut rng) {
        for threads in 1..=4 {
            let what = format!("{label}, prompt fed {how}, {threads} threads");
            check_engine(&engine, threads, tokens, &chunks, &reference, &what);
        }
    }
}

#[test]
fn the_engine_equals_the_reference_bit_for_bit_on_random_models() {
    for seed in 1..=N_MODELS {
        let (model, prompt, n_generate, label) = random_case(seed);
        let generated = generate(&model, &prompt, n_generate, Decoding::Cached).unwrap();
        let tokens = [&prompt[..], &generated[..]].concat();
        check_all_ways(&model, &tokens, prompt.len(), seed, &label);
        let engine = Engine::new(model).unwrap();
        for decoding in [Decoding::Cached, Decoding::FullRecompute] {
            let ids = generate(&engine, &prompt, n_generate, decoding).unwrap();
            assert_eq!(ids, generated, "{label}: greedy ids, {decoding:?}");
        }
    }
}

#[test]
fn the_bf16_and_q8_engines_equal_their_reference_bit_for_bit_on_random_models() {
    for seed in 1..=N_MODELS_PER_DTYPE {
        let (model, prompt, n_generate, label) = random_case(seed);
        for dtype in [Dtype::Bf16, Dtype::Q8] {
            let stored = model.clone().stored_as(dtype).unwrap();
            let generated = generate(&stored, &prompt, n_generate, Decoding::Cached).unwrap();
            let tokens = [&prompt[..], &generated[..]].concat();
            check_all_ways_in(dtype, &model, &tokens, prompt.len(), seed, &label);
            let engine = Engine::with_dtype(model.clone(), dtype).unwrap();
            for decoding in [Decoding::Cached, Decoding::FullRecompute] {
                let ids = generate(&engine, &prompt, n_generate, decoding).unwrap();
                assert_eq!(ids, generated, "{label}, {dtype}: greedy ids, {decoding:?}");
            }
        }
    }
}

fn fixture(name: &str) -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    gpt2_edu::load_dir(&dir).unwrap().1
}

#[test]
fn the_engine_equals_the_reference_on_the_checkpoint_fixtures_and_the_dummy() {
    let (_, hparams, weights) = gpt2_edu::load_encoder_hparams_and_params();
    let mut models = vec![("the dummy".to_string(), Model::new(hparams, weights).unwrap())];
    for name in ["tiny-gpt2", "tiny-gpt2-f16", "tiny-gpt2-bf16", "tiny-gpt2-legacy"] {
        models.push((name.to_string(), fixture(name)));
    }
    for (seed, (label, model)) in models.into_iter().enumerate() {
        let n_vocab = model.hparams.n_vocab as u32;
        let tokens: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % n_vocab).collect();
        for dtype in Dtype::ALL {
            check_all_ways_in(dtype, &model, &tokens, 25, seed as u64 + 1, &label);
        }
    }
}

#[test]
fn bf16_and_q8_logits_differ_from_f32_a_little() {
    let model = fixture("tiny-gpt2");
    let tokens: Vec<u32> = (0..20).map(|i| i * 29 % 513).collect();
    let f32_logits = model.forward(&tokens).unwrap();
    // Measured: bf16 moves the largest logit error to 1.1% of the largest logit, q8 to 2.6%.
    for (dtype, max_error) in [(Dtype::Bf16, 0.025), (Dtype::Q8, 0.05)] {
        let engine = Engine::with_dtype(model.clone(), dtype).unwrap();
        assert_eq!(engine.dtype(), dtype);
        let (mut cache, mut workspace) =
            (KvCache::new(engine.hparams()).unwrap(), Workspace::new(2).unwrap());
        let logits = engine.forward(&tokens, &mut cache, &mut workspace, Logits::All).unwrap();
        let spread = f32_logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let error = logits.iter().zip(&f32_logits).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(error > 0.0, "{dtype}: the weights were rounded, so the logits move");
        assert!(error <= max_error * spread, "{dtype}: error {error} of logits up to {spread}");
    }
}

#[test]
fn a_weight_that_bf16_rounds_to_infinity_is_refused_by_name() {
    let mut model = fixture("tiny-gpt2");
    model.weights.blocks[0].mlp.c_proj.w[5] = f32::MAX;
    let expected = gpt2_edu::Error::NonFiniteWeight {
        tensor: "h.0.mlp.c_proj.weight (rounded to bf16)".into(),
        index: 5,
        value: "inf".into(),
    };
    assert_eq!(Engine::with_dtype(model.clone(), Dtype::Bf16).unwrap_err(), expected);
    assert_eq!(model.clone().stored_as(Dtype::Bf16).unwrap_err(), expected);
    // Q8 scales it like any other weight; f32 keeps it.
    assert!(Engine::with_dtype(model.clone(), Dtype::Q8).is_ok());
    assert!(Engine::new(model).is_ok());
}

#[test]
fn prefill_asking_for_the_last_row_gives_the_last_row() {
    let model = fixture("tiny-gpt2");
    let tokens: Vec<u32> = (0..17).map(|i| i * 29 % 513).collect();
    let all = model.forward(&tokens).unwrap();
    let engine = Engine::new(model).unwrap();
    let (mut cache, mut workspace) =
        (KvCache::new(engine.hparams()).unwrap(), Workspace::new(2).unwrap());
    let last = engine.forward(&tokens, &mut cache, &mut workspace, Logits::Last).unwrap();
    assert_bits_eq(last, &all[16 * 513..], "the last row");
    for n in [1, 5, 17, 40] {
        cache.clear();
        let tail = engine.forward(&tokens, &mut cache, &mut workspace, Logits::Tail(n)).unwrap();
        let rows = n.min(17);
        assert_bits_eq(tail, &all[(17 - rows) * 513..], &format!("the last {n} rows"));
    }
}

#[test]
fn one_workspace_serves_two_engines_in_turn() {
    let (model_a, prompt_a, _, _) = random_case(5);
    let (model_b, prompt_b, _, _) = random_case(6);
    let (expected_a, expected_b) =
        (model_a.forward(&prompt_a).unwrap(), model_b.forward(&prompt_b).unwrap());
    let (engine_a, engine_b) = (Engine::new(model_a).unwrap(), Engine::new(model_b).unwrap());
    let mut workspace = Workspace::new(2).unwrap();
    for _ in 0..2 {
        for (engine, prompt, expected) in
            [(&engine_a, &prompt_a, &expected_a), (&engine_b, &prompt_b, &expected_b)]
        {
            let mut cache = KvCache::new(engine.hparams()).unwrap();
            let logits = engine.forward(prompt, &mut cache, &mut workspace, Logits::All).unwrap();
            assert_bits_eq(logits, expected, "an engine after another in the same workspace");
        }
    }
}

#[test]
fn the_engine_refuses_what_the_reference_refuses() {
    let model = fixture("tiny-gpt2"); // n_vocab 513, n_ctx 64
    let engine = Engine::new(model.clone()).unwrap();
    let mut workspace = Workspace::new(1).unwrap();
    for tokens in [vec![1, 513], vec![0; 65]] {
        let reference = model.forward_cached(&tokens, &mut KvCache::new(&model.hparams).unwrap());
        let ours = engine.forward(
            &tokens,
            &mut KvCache::new(engine.hparams()).unwrap(),
            &mut workspace,
            Logits::All,
        );
        assert_eq!(ours.map(<[f32]>::to_vec), reference);
        assert!(reference.is_err());
    }
}

#[test]
fn a_model_built_field_by_field_with_a_wrong_shape_is_refused_not_packed() {
    let mut model = fixture("tiny-gpt2");
    model.weights.blocks[1].mlp.c_fc.b.pop(); // Model's fields are public: nothing stops this
    let error = Engine::new(model).unwrap_err();
    assert_eq!(
        error,
        gpt2_edu::Error::ShapeMismatch {
            tensor: "h.1.mlp.c_fc.bias".into(),
            expected: vec![128],
            found: vec![127],
        }
    );
}

#[test]
fn the_engine_equals_the_reference_with_heads_switched_off() {
    use gpt2_edu::viz::HeadId;
    let off = |layer, head| HeadId { layer, head };
    let tiny = fixture("tiny-gpt2").with_heads_off(&[off(0, 1), off(2, 3)]).unwrap();
    let tokens: Vec<u32> = (0..30).map(|i| (i * 53 + 7) % 513).collect();
    check_all_ways(&tiny, &tokens, 18, 7, "tiny-gpt2 with heads 0.1 and 2.3 off");
    for seed in 1..=20 {
        let (model, prompt, n_generate, label) = random_case(seed);
        let hp = model.hparams;
        let heads = [off(seed as usize % hp.n_layer, seed as usize % hp.n_head)];
        let model = model.with_heads_off(&heads).unwrap();
        let generated = generate(&model, &prompt, n_generate, Decoding::Cached).unwrap();
        let tokens = [&prompt[..], &generated[..]].concat();
        check_all_ways(&model, &tokens, prompt.len(), seed, &format!("{label}, {heads:?} off"));
        let engine = Engine::new(model).unwrap();
        assert_eq!(engine.ablation().heads(), heads, "{label}");
        assert_eq!(generate(&engine, &prompt, n_generate, Decoding::Cached).unwrap(), generated);
    }
}

#[test]
fn heads_off_in_every_dtype_equal_the_reference_bit_for_bit() {
    use gpt2_edu::{Dtype, viz::HeadId};
    let heads = [HeadId { layer: 0, head: 1 }, HeadId { layer: 2, head: 3 }];
    let tokens: Vec<u32> = (0..12).map(|i| i * 41 % 513).collect();
    for dtype in [Dtype::Bf16, Dtype::Q8] {
        let model = fixture("tiny-gpt2").with_heads_off(&heads).unwrap();
        let reference = model.clone().stored_as(dtype).unwrap().forward(&tokens).unwrap();
        let plain = fixture("tiny-gpt2").stored_as(dtype).unwrap().forward(&tokens).unwrap();
        assert_ne!(reference, plain, "{dtype}: the heads are off");
        let engine = Engine::with_dtype(model, dtype).unwrap();
        let (mut cache, mut workspace) =
            (KvCache::new(engine.hparams()).unwrap(), Workspace::new(3).unwrap());
        let fast = engine.forward(&tokens, &mut cache, &mut workspace, Logits::All).unwrap();
        assert_bits_eq(fast, &reference, &format!("{dtype} with heads 0.1 and 2.3 off"));
    }
}

#[test]
fn a_model_stored_in_q8_packs_into_the_same_q8_engine_and_no_other() {
    let model = fixture("tiny-gpt2");
    let stored = model.clone().stored_as(Dtype::Q8).unwrap();
    assert!(stored.is_q8() && !model.is_q8());
    let from_f32 = Engine::with_dtype(model, Dtype::Q8).unwrap();
    assert_eq!(Engine::with_dtype(stored.clone(), Dtype::Q8).unwrap(), from_f32);
    for dtype in [Dtype::F32, Dtype::Bf16] {
        let error = Engine::with_dtype(stored.clone(), dtype).unwrap_err().to_string();
        assert!(error.contains("stored in q8") && error.contains(&dtype.to_string()), "{error}");
    }
    let error = stored.clone().stored_as(Dtype::Q8).unwrap_err().to_string();
    assert!(error.contains("already stored in q8"), "{error}");
}

#[test]
fn q8_blocks_of_the_wrong_shape_are_refused_not_multiplied() {
    let stored = fixture("tiny-gpt2").stored_as(Dtype::Q8).unwrap();
    let (hparams, mut weights) = (stored.hparams, stored.weights);
    let q8 = weights.blocks[2].attn.c_proj.q8.as_mut().unwrap();
    q8.scales.pop(); // Linear's fields are public too
    let error = Model::new(hparams, weights.clone()).unwrap_err();
    assert!(
        matches!(&error, gpt2_edu::Error::ShapeMismatch { tensor, .. }
            if tensor == "h.2.attn.c_proj (q8 blocks)"),
        "{error:?}"
    );
    weights.blocks[2].attn.c_proj.q8.as_mut().unwrap().n_out = 0;
    assert!(Model::new(hparams, weights).is_err());
}

#[test]
fn inputs_longer_than_a_chunk_run_in_chunks_with_the_same_bits_and_logits() {
    use gpt2_edu::{HParams, Weights, fast::CHUNK};
    let hparams = HParams {
        n_vocab: 37,
        n_ctx: 3 * CHUNK + 20,
        n_embd: 16,
        n_head: 2,
        n_layer: 2,
        layer_norm_eps: 1e-5,
    };
    let weights = Weights::random(&hparams, &mut XorShift64::new(9).unwrap()).unwrap();
    let model = Model::new(hparams, weights).unwrap();
    let tokens: Vec<u32> = (0..hparams.n_ctx as u32).map(|i| (i * 13 + 5) % 37).collect();
    let reference = reference(&model, &tokens);
    let n = tokens.len();
    for dtype in Dtype::ALL {
        let engine = Engine::with_dtype(model.clone(), dtype).unwrap();
        let expected = model.clone().stored_as(dtype).unwrap().forward(&tokens).unwrap();
        let last_rows = |rows: usize| &expected[(n - rows) * 37..];
        for (keep, rows) in [
            (Logits::All, n),
            (Logits::Last, 1),
            (Logits::Tail(CHUNK + 30), CHUNK + 30), // from the middle of the second-to-last chunk
            (Logits::Tail(5), 5),
            (Logits::Tail(10 * n), n),
        ] {
            let (mut cache, mut workspace) =
                (KvCache::new(&hparams).unwrap(), Workspace::new(2).unwrap());
            let logits = engine.forward(&tokens, &mut cache, &mut workspace, keep).unwrap();
            assert_bits_eq(logits, last_rows(rows), &format!("{dtype} {keep:?}"));
            assert_eq!(workspace.logits().len(), rows * 37);
            if dtype == Dtype::F32 {
                assert_caches_eq(&cache, &reference.cache, &format!("{keep:?}"));
            }
        }
    }
}
