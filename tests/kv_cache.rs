//! The KV cache against full recomputation, on hundreds of random models.
//!
//! For every configuration the prompt is fed into the cache one token at a time, all at
//! once, and in random chunks, then tokens are generated greedily. At every step the cached
//! logits must be *bit-identical* (`f32::to_bits`) to a full recomputation of the whole
//! sequence, the cache's keys and values must equal those of a full pass (per layer and
//! head), and the greedy token ids must agree.

use gpt2_edu::generate::argmax;
use gpt2_edu::{Decoding, HParams, KvCache, Model, Trace, Weights, XorShift64, generate};

const N_CONFIGS: u64 = 240;

/// A whole number in `lo..=hi` from the test's own xorshift.
fn pick(rng: &mut XorShift64, lo: usize, hi: usize) -> usize {
    lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize
}

/// A random small GPT-2 and a random prompt. Half the models keep the exercise's all-positive
/// uniform weights; the other half get centred weights and random layer-norm parameters,
/// so that signs, cancellations and non-trivial layer norms are all exercised.
fn random_case(seed: u64) -> (Model, Vec<u32>, usize, String) {
    let mut rng = XorShift64::new(seed).unwrap();
    let n_head = pick(&mut rng, 1, 4);
    let d_head = pick(&mut rng, 1, 16);
    let n_prompt = pick(&mut rng, 1, 32);
    let n_generate = pick(&mut rng, 1, 6);
    let hparams = HParams {
        n_vocab: pick(&mut rng, 2, 64),
        n_ctx: n_prompt + n_generate + pick(&mut rng, 0, 3),
        n_embd: n_head * d_head,
        n_head,
        n_layer: pick(&mut rng, 1, 4),
        layer_norm_eps: 1e-5,
    };
    let mut weights = Weights::random(&hparams, &mut rng);
    let centred = seed % 2 == 0;
    if centred {
        centre(&mut weights, &mut rng);
    }
    let prompt = (0..n_prompt)
        .map(|_| pick(&mut rng, 0, hparams.n_vocab - 1) as u32)
        .collect();
    let label = format!(
        "seed {seed}: {hparams:?}, centred {centred}, prompt {n_prompt}, generate {n_generate}"
    );
    (
        Model::new(hparams, weights).unwrap(),
        prompt,
        n_generate,
        label,
    )
}

/// Maps every weight `u` in `[0, 1)` to `2u - 1` and gives the layer norms random gains
/// and biases.
fn centre(weights: &mut Weights, rng: &mut XorShift64) {
    let centre_all = |v: &mut Vec<f32>| v.iter_mut().for_each(|u| *u = 2.0 * *u - 1.0);
    centre_all(&mut weights.wte.w);
    centre_all(&mut weights.wpe);
    for linear in weights.linears_mut() {
        centre_all(&mut linear.w);
        centre_all(&mut linear.b);
    }
    let mut norms = vec![&mut weights.ln_f];
    for block in &mut weights.blocks {
        norms.push(&mut block.ln_1);
        norms.push(&mut block.ln_2);
    }
    for norm in norms {
        norm.g.iter_mut().for_each(|g| *g = 0.5 + rng.next_f32());
        norm.b.iter_mut().for_each(|b| *b = rng.next_f32() - 0.5);
    }
}

fn assert_bits_eq(cached: &[f32], full: &[f32], what: &str) {
    assert_eq!(cached.len(), full.len(), "{what}: lengths differ");
    for (i, (c, f)) in cached.iter().zip(full).enumerate() {
        assert_eq!(
            c.to_bits(),
            f.to_bits(),
            "{what}: element {i}: cached {c:e} != full {f:e}"
        );
    }
}

/// The chunk sizes to feed the prompt with: one at a time, all at once, random chunks.
fn feeding_schedules(n_prompt: usize, rng: &mut XorShift64) -> Vec<(&'static str, Vec<usize>)> {
    let mut random_chunks = Vec::new();
    let mut left = n_prompt;
    while left > 0 {
        let chunk = pick(rng, 1, left.min(7));
        random_chunks.push(chunk);
        left -= chunk;
    }
    vec![
        ("one at a time", vec![1; n_prompt]),
        ("all at once", vec![n_prompt]),
        ("in chunks", random_chunks),
    ]
}

/// Feeds `tokens` into a cache in the given chunks, checking each chunk's logits against a
/// full recomputation of everything fed so far; then generates greedily, checking every
/// step the same way. Returns the generated ids and the final cache.
fn run_schedule(
    model: &Model,
    prompt: &[u32],
    chunks: &[usize],
    n_generate: usize,
    what: &str,
) -> (Vec<u32>, KvCache) {
    let n_vocab = model.hparams.n_vocab;
    let mut cache = KvCache::new(&model.hparams);
    let mut tokens: Vec<u32> = Vec::new();
    let mut last_logits = Vec::new();
    let mut fed = 0;
    for &chunk in chunks {
        let new = &prompt[fed..fed + chunk];
        tokens.extend_from_slice(new);
        let cached = model.forward_cached(new, &mut cache).unwrap(); // [chunk, n_vocab]
        let full = model.forward(&tokens).unwrap(); // [fed + chunk, n_vocab]
        assert_bits_eq(
            &cached,
            &full[fed * n_vocab..],
            &format!("{what}, prefill up to {}", fed + chunk),
        );
        last_logits = cached[(chunk - 1) * n_vocab..].to_vec();
        fed += chunk;
    }
    let mut generated = Vec::new();
    for step in 0..n_generate {
        let next = argmax(&last_logits);
        generated.push(next);
        tokens.push(next);
        if step + 1 == n_generate {
            break;
        }
        let cached = model.forward_cached(&[next], &mut cache).unwrap(); // [1, n_vocab]
        let full = model.forward(&tokens).unwrap();
        assert_bits_eq(
            &cached,
            &full[(tokens.len() - 1) * n_vocab..],
            &format!("{what}, decode step {step}"),
        );
        last_logits = cached;
    }
    (generated, cache)
}

/// The cache's keys and values against the ones a full pass computes, per layer and head.
fn assert_cache_matches_full_pass(model: &Model, tokens: &[u32], cache: &KvCache, what: &str) {
    let hp = &model.hparams;
    let mut trace = Trace::new();
    model.forward_full_traced(tokens, &mut trace).unwrap();
    assert_eq!(cache.len(), tokens.len(), "{what}: cache length");
    for layer in 0..hp.n_layer {
        for head in 0..hp.n_head {
            for (name, cached) in [
                ("k", cache.keys(layer, head)),
                ("v", cache.values(layer, head)),
            ] {
                let full = &trace
                    .get(&format!("block.{layer}.attn.{name}.head.{head}"))
                    .unwrap()
                    .data;
                assert_bits_eq(
                    cached,
                    full,
                    &format!("{what}: layer {layer} head {head} {name}"),
                );
            }
        }
    }
}

#[test]
fn cached_decoding_is_bit_identical_to_full_recomputation() {
    let mut shapes = std::collections::BTreeSet::new();
    for seed in 1..=N_CONFIGS {
        let (model, prompt, n_generate, label) = random_case(seed);
        let hp = model.hparams;
        shapes.insert((hp.n_layer, hp.n_head));
        let reference = generate(&model, &prompt, n_generate, Decoding::FullRecompute).unwrap();
        let mut schedule_rng = XorShift64::new(seed + 1_000_000).unwrap();
        for (how, chunks) in feeding_schedules(prompt.len(), &mut schedule_rng) {
            let what = format!("{label}, prompt fed {how} {chunks:?}");
            let (generated, cache) = run_schedule(&model, &prompt, &chunks, n_generate, &what);
            assert_eq!(generated, reference, "{what}: greedy ids");
            let fed: Vec<u32> = [&prompt[..], &generated[..n_generate - 1]].concat();
            assert_cache_matches_full_pass(&model, &fed, &cache, &what);
        }
        let cached = generate(&model, &prompt, n_generate, Decoding::Cached).unwrap();
        assert_eq!(
            cached, reference,
            "{label}: generate(Cached) vs generate(FullRecompute)"
        );
    }
    // The random configurations really cover the ranges the claim is about.
    assert_eq!(
        shapes.len(),
        16,
        "every n_layer 1-4 x n_head 1-4 combination: {shapes:?}"
    );
}

#[test]
fn one_token_decode_steps_equal_the_full_pass_on_the_dummy_model_for_a_long_sequence() {
    let (_, hparams, weights) = gpt2_edu::load_encoder_hparams_and_params();
    let model = Model::new(hparams, weights).unwrap();
    let tokens: Vec<u32> = (0..300u32).map(|i| (i * 7 + i / 3) % 4).collect();
    let mut cache = KvCache::new(&model.hparams);
    let full = model.forward(&tokens).unwrap();
    for (t, &token) in tokens.iter().enumerate() {
        let cached = model.forward_cached(&[token], &mut cache).unwrap();
        assert_bits_eq(&cached, &full[t * 4..(t + 1) * 4], &format!("position {t}"));
    }
}

/// The fast path with 1, 2, 3 and 4 threads: bit-identical logits and caches, at prefill and
/// at every decode step, and equal to the single-threaded reference path.
#[test]
fn one_to_four_threads_give_bit_identical_logits() {
    use gpt2_edu::model::{Logits, Workspace};
    let tiny = gpt2_edu::checkpoint::load_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2"),
    )
    .unwrap()
    .1;
    let mut models = vec![(
        "tiny GPT-2".to_string(),
        tiny,
        (0..40).map(|i| (i * 37 % 513) as u32).collect::<Vec<u32>>(),
    )];
    for seed in [3, 8, 21] {
        let (model, prompt, _, label) = random_case(seed);
        models.push((label, model, prompt));
    }
    for (label, model, tokens) in models {
        let split = tokens.len() / 2;
        let reference = model.forward(&tokens).unwrap(); // single-threaded, every row
        let n_vocab = model.hparams.n_vocab;
        // A trace takes attention's one-thread path, head by head, recording each step.
        let traced = model
            .forward_full_traced(&tokens, &mut Trace::new())
            .unwrap();
        assert_bits_eq(&traced, &reference, &format!("{label}: traced"));
        for threads in 1..=4 {
            let mut workspace = Workspace::new(&model, threads);
            let mut cache = KvCache::new(&model.hparams);
            let mut trace = Trace::disabled();
            let prefill = model
                .forward_with(
                    &tokens[..split],
                    &mut cache,
                    &mut workspace,
                    Logits::All,
                    &mut trace,
                )
                .unwrap();
            assert_bits_eq(
                prefill,
                &reference[..split * n_vocab],
                &format!("{label}: {threads} threads, prefill"),
            );
            for t in split..tokens.len() {
                let step = model
                    .forward_with(
                        &tokens[t..t + 1],
                        &mut cache,
                        &mut workspace,
                        Logits::Last,
                        &mut trace,
                    )
                    .unwrap();
                assert_bits_eq(
                    step,
                    &reference[t * n_vocab..(t + 1) * n_vocab],
                    &format!("{label}: {threads} threads, step {t}"),
                );
            }
        }
    }
}

#[test]
fn a_workspace_serves_only_its_own_model() {
    use gpt2_edu::model::{Logits, Workspace};
    let (model_a, prompt, _, _) = random_case(5);
    let (model_b, _, _, _) = random_case(5); // same values, but another model
    let mut workspace = Workspace::new(&model_a, 2);
    let mut cache = KvCache::new(&model_b.hparams);
    let result = model_b.forward_with(
        &prompt,
        &mut cache,
        &mut workspace,
        Logits::Last,
        &mut Trace::disabled(),
    );
    assert_eq!(result.unwrap_err(), gpt2_edu::Error::WorkspaceMismatch);
}
