//! The fast engine against the reference model, bit for bit.
//!
//! The reference model (`Model`: plain row-major weights, one thread, fresh buffers) is
//! what LEARN.md teaches; the engine (`Engine`: packed panels, a thread pool, a workspace)
//! is what generation runs on. Here the engine's logits must equal the reference's with
//! `f32::to_bits`, at prefill and at every decode step, with the prompt fed whole, token
//! by token and in random chunks, on 1, 2, 3 and 4 threads; and its KV cache must hold
//! exactly the reference's keys and values. On 240 random models (`tests/common`), the
//! dummy model, and the F32, F16, BF16 and legacy checkpoint fixtures.

mod common;

use std::path::Path;

use common::{assert_bits_eq, feeding_schedules, random_case};
use gpt2_edu::{Decoding, Engine, KvCache, Logits, Model, Workspace, XorShift64, generate};

const N_MODELS: u64 = 240;

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
    let reference = reference(model, tokens);
    let engine = Engine::new(model.clone()).unwrap();
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
        check_all_ways(&model, &tokens, 25, seed as u64 + 1, &label);
    }
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
