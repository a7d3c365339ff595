//! The reference model's KV cache against its full recomputation, on hundreds of random
//! models. (`tests/engine.rs` checks the fast engine against this reference.)
//!
//! For every configuration the prompt is fed into the cache one token at a time, all at
//! once, and in random chunks, then tokens are generated greedily. At every step the cached
//! logits must be *bit-identical* (`f32::to_bits`) to a full recomputation of the whole
//! sequence, the cache's keys and values must equal those of a full pass (per layer and
//! head), and the greedy token ids must agree.

mod common;

use common::{assert_bits_eq, feeding_schedules, random_case};
use gpt2_edu::sample::argmax;
use gpt2_edu::{Decoding, KvCache, Model, Trace, XorShift64, generate};

const N_CONFIGS: u64 = 240;

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
    let mut cache = KvCache::new(&model.hparams).unwrap();
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
            for (name, cached) in [("k", cache.keys(layer, head)), ("v", cache.values(layer, head))]
            {
                let full =
                    &trace.get(&format!("block.{layer}.attn.{name}.head.{head}")).unwrap().data;
                assert_bits_eq(cached, full, &format!("{what}: layer {layer} head {head} {name}"));
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
        assert_eq!(cached, reference, "{label}: generate(Cached) vs generate(FullRecompute)");
    }
    // The random configurations really cover the ranges the claim is about.
    assert_eq!(shapes.len(), 16, "every n_layer 1-4 x n_head 1-4 combination: {shapes:?}");
}

#[test]
fn a_truncated_cache_decodes_as_if_the_forgotten_tokens_never_came() {
    for seed in 1..=40 {
        let (model, prompt, _, label) = random_case(seed);
        if prompt.len() < 2 {
            continue;
        }
        let keep = prompt.len() / 2;
        let other: Vec<u32> = prompt[keep..].iter().rev().copied().collect();
        let mut cache = KvCache::new(&model.hparams).unwrap();
        model.forward_cached(&prompt, &mut cache).unwrap();
        cache.truncate(prompt.len() + 1); // beyond the filled positions: nothing changes
        assert_eq!(cache.len(), prompt.len(), "{label}");
        cache.truncate(keep);
        assert_eq!(cache.len(), keep, "{label}");
        let rewound = model.forward_cached(&other, &mut cache).unwrap();
        let fed: Vec<u32> = [&prompt[..keep], &other[..]].concat();
        let full = model.forward(&fed).unwrap();
        assert_bits_eq(&rewound, &full[keep * model.hparams.n_vocab..], &label);
        assert_cache_matches_full_pass(&model, &fed, &cache, &label);
    }
}

#[test]
fn one_token_decode_steps_equal_the_full_pass_on_the_dummy_model_for_a_long_sequence() {
    let (_, hparams, weights) = gpt2_edu::load_encoder_hparams_and_params();
    let model = Model::new(hparams, weights).unwrap();
    let tokens: Vec<u32> = (0..300u32).map(|i| (i * 7 + i / 3) % 4).collect();
    // The reference model, one position at a time, against its own full pass.
    let mut cache = KvCache::new(&model.hparams).unwrap();
    let full = model.forward(&tokens).unwrap();
    for (t, &token) in tokens.iter().enumerate() {
        let cached = model.forward_cached(&[token], &mut cache).unwrap();
        assert_bits_eq(&cached, &full[t * 4..(t + 1) * 4], &format!("position {t}"));
    }
}
