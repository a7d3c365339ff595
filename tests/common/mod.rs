//! What `tests/kv_cache.rs` and `tests/engine.rs` share: random small GPT-2s, the ways to
//! feed a prompt, and a bit-for-bit comparison.

#![allow(dead_code)] // each test file uses its own part

use gpt2_edu::{HParams, Model, Weights, XorShift64};

/// A whole number in `lo..=hi` from the test's own xorshift.
pub fn pick(rng: &mut XorShift64, lo: usize, hi: usize) -> usize {
    lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize
}

/// A random small GPT-2 and a random prompt, with how many tokens to generate and a label.
/// Half the models keep the exercise's all-positive uniform weights; the other half get
/// centred weights and random layer-norm parameters, so that signs, cancellations and
/// non-trivial layer norms are all exercised.
pub fn random_case(seed: u64) -> (Model, Vec<u32>, usize, String) {
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
    let mut weights = Weights::random(&hparams, &mut rng).unwrap();
    let centred = seed.is_multiple_of(2);
    if centred {
        centre(&mut weights, &mut rng);
    }
    let prompt = (0..n_prompt).map(|_| pick(&mut rng, 0, hparams.n_vocab - 1) as u32).collect();
    let label = format!(
        "seed {seed}: {hparams:?}, centred {centred}, prompt {n_prompt}, generate {n_generate}"
    );
    (Model::new(hparams, weights).unwrap(), prompt, n_generate, label)
}

/// Maps every weight `u` in `[0, 1)` to `2u - 1` and gives the layer norms random gains
/// and biases.
fn centre(weights: &mut Weights, rng: &mut XorShift64) {
    let centre_all = |v: &mut Vec<f32>| v.iter_mut().for_each(|u| *u = 2.0 * *u - 1.0);
    centre_all(&mut weights.wte);
    centre_all(&mut weights.wpe);
    for block in &mut weights.blocks {
        let (attn, mlp) = (&mut block.attn, &mut block.mlp);
        for linear in [&mut attn.c_attn, &mut attn.c_proj, &mut mlp.c_fc, &mut mlp.c_proj] {
            centre_all(&mut linear.w);
            centre_all(&mut linear.b);
        }
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

/// `actual` equals `expected` bit for bit (`f32::to_bits`), element by element.
pub fn assert_bits_eq(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a.to_bits(), e.to_bits(), "{what}: element {i}: {a:e} != {e:e}");
    }
}

/// The chunk sizes to feed the prompt with: one at a time, all at once, random chunks.
pub fn feeding_schedules(n_prompt: usize, rng: &mut XorShift64) -> Vec<(&'static str, Vec<usize>)> {
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
