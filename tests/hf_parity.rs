//! Real GPT-2 checkpoints against HuggingFace transformers.
//!
//! `tests/golden/hf_reference.py` builds a small random GPT-2 (3 layers, 4 heads, n_embd 32,
//! 64 positions, a 513-token vocabulary: GPT-2's first 256 merges plus `<|endoftext|>`),
//! saves it as safetensors in F32, F16, BF16 and in the older official layout (no
//! `transformer.` prefix, `attn.bias` buffers, an explicit `lm_head.weight`), and writes
//! `tests/golden/tiny_gpt2.json`: transformers' full-forward logits for a fixed token
//! sequence and its greedy continuations (with cache) for several prompts.

use std::path::{Path, PathBuf};

use gpt2_edu::checkpoint::load_dir;
use gpt2_edu::json::{self, Json};
use gpt2_edu::{Decoding, Tokenizer, generate};

const TOLERANCE: f32 = 1e-4;

fn golden() -> Json {
    json::parse(include_str!("golden/tiny_gpt2.json")).unwrap()
}

fn ids(value: &Json) -> Vec<u32> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

fn floats(value: &Json) -> Vec<f32> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

fn variant_dir(variant: &Json) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(variant.get("dir").and_then(Json::as_str).unwrap())
}

fn variants() -> Vec<(String, Json)> {
    let golden = golden();
    let variants = golden.get("variants").unwrap().as_object().unwrap().to_vec();
    assert_eq!(variants.len(), 4, "f32, f16, bf16 and legacy");
    variants
}

#[test]
fn full_forward_logits_match_transformers_within_1e_4() {
    let tokens = ids(golden().get("logits_tokens").unwrap());
    for (name, variant) in variants() {
        let (_, model) = load_dir(&variant_dir(&variant)).unwrap();
        let ours = model.forward(&tokens).unwrap();
        let theirs: Vec<f32> =
            variant.get("logits").unwrap().as_array().unwrap().iter().flat_map(floats).collect();
        assert_eq!(ours.len(), theirs.len(), "{name}");
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < TOLERANCE, "{name}: largest logit difference {worst:e}");
    }
}

#[test]
fn prompts_tokenize_as_transformers_and_greedy_ids_agree_where_the_top_two_are_apart() {
    for (name, variant) in variants() {
        let (tokenizer, model) = load_dir(&variant_dir(&variant)).unwrap();
        for case in variant.get("greedy").unwrap().as_array().unwrap() {
            let prompt = case.get("prompt").and_then(Json::as_str).unwrap();
            let prompt_ids = tokenizer.encode(prompt);
            assert_eq!(prompt_ids, ids(case.get("prompt_ids").unwrap()), "{name}: {prompt:?}");
            let expected = ids(case.get("generated").unwrap());
            let gaps = floats(case.get("top2_gaps").unwrap());
            let cached = generate(&model, &prompt_ids, expected.len(), Decoding::Cached).unwrap();
            let full =
                generate(&model, &prompt_ids, expected.len(), Decoding::FullRecompute).unwrap();
            assert_eq!(
                cached, full,
                "{name}: {prompt:?}: cached and full recomputation agree exactly"
            );
            // Compare step by step until a step whose top two logits are within the
            // tolerance: from there on either continuation is a correct answer.
            for (step, ((ours, theirs), gap)) in cached.iter().zip(&expected).zip(&gaps).enumerate()
            {
                if *gap <= TOLERANCE {
                    break;
                }
                assert_eq!(ours, theirs, "{name}: {prompt:?}: step {step} (top-2 gap {gap})");
            }
        }
    }
}

#[test]
fn half_precision_checkpoints_differ_from_f32_only_by_rounding() {
    // A sanity check on the goldens themselves: F16/BF16 weights are the F32 ones rounded,
    // so their logits are close to, but not equal to, the F32 logits.
    let tokens = ids(golden().get("logits_tokens").unwrap());
    let dir = |v: &str| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(v);
    let f32_logits = load_dir(&dir("tiny-gpt2")).unwrap().1.forward(&tokens).unwrap();
    for (variant, bound) in [("tiny-gpt2-f16", 0.05), ("tiny-gpt2-bf16", 0.5)] {
        let logits = load_dir(&dir(variant)).unwrap().1.forward(&tokens).unwrap();
        let worst = logits.iter().zip(&f32_logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst > 0.0 && worst < bound, "{variant}: {worst}");
    }
}

/// The official 124M checkpoint, when `GPT2_DIR` points at a folder holding its four files:
/// the greedy continuation of "The dog" that transformers' own test suite expects
/// (`test_lm_generate_gpt2` in `tests/models/gpt2/test_modeling_gpt2.py`).
#[test]
#[ignore = "needs the official GPT-2 124M checkpoint: GPT2_DIR=/path/to/gpt2 cargo test --release -- --ignored"]
fn official_gpt2_124m_continues_the_dog_as_transformers_does() {
    let dir = std::env::var("GPT2_DIR")
        .expect("set GPT2_DIR to a folder with the gpt2 checkpoint's four files");
    let (tokenizer, model) = load_dir(Path::new(&dir)).unwrap();
    let prompt = tokenizer.encode("The dog");
    assert_eq!(prompt, vec![464, 3290]);
    let generated = generate(&model, &prompt, 18, Decoding::Cached).unwrap();
    let expected = [
        464, 3290, 373, 1043, 287, 257, 2214, 1474, 262, 16246, 286, 2688, 290, 2688, 27262, 13,
        198, 198, 464, 3290,
    ];
    assert_eq!([prompt, generated].concat(), expected);
}
