//! The penalties and the min-p / typical-p filters against transformers.
//!
//! `tests/golden/hf_penalties.py` writes `tests/golden/penalties.json`: transformers' own
//! `RepetitionPenaltyLogitsProcessor`, `NoRepeatNGramLogitsProcessor` (and OpenAI's
//! presence/frequency formula in numpy) on random logits and histories; its warper chain
//! (temperature, top-k, top-p, `MinPLogitsWarper`, `TypicalLogitsWarper`) on random
//! logits; and greedy `generate()` with `repetition_penalty` and `no_repeat_ngram_size` on
//! the tiny checkpoint fixture. `-inf` is written as `null`.

use std::path::Path;

use gpt2_edu::generate::{Decoding, GenerateConfig, Generator};
use gpt2_edu::json::{self, Json};
use gpt2_edu::penalties::{History, Penalties};
use gpt2_edu::sample::{SamplingParams, warped_logits};
use gpt2_edu::{Engine, Tokenizer, load_dir};

/// The largest difference allowed between our processed logits and transformers'.
const TOLERANCE: f64 = 1e-6;

fn golden() -> Json {
    json::parse(include_str!("golden/penalties.json")).unwrap()
}

fn cases(name: &str) -> Vec<Json> {
    golden().get(name).unwrap().as_array().unwrap().to_vec()
}

fn ids(value: &Json) -> Vec<u32> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

/// Numbers, `null` read as `-inf`.
fn floats(value: &Json) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap_or(f64::NEG_INFINITY)).collect()
}

fn number(case: &Json, key: &str) -> f64 {
    case.get(key).and_then(Json::as_f64).unwrap()
}

fn optional(case: &Json, key: &str) -> Option<f64> {
    case.get(key).and_then(Json::as_f64)
}

/// The largest difference between `ours` and `theirs`; masked (`-inf`) entries must be
/// masked in both.
fn largest_difference(ours: &[f64], theirs: &[f64], what: &str) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "{what}");
    let mut worst = 0.0f64;
    for (id, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        let masked = (a == f64::NEG_INFINITY, b == f64::NEG_INFINITY);
        assert!(masked.0 == masked.1, "{what}: id {id} is {a} here and {b} in transformers");
        if !masked.0 {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

#[test]
fn penalised_logits_equal_transformers_processors_within_1e_6() {
    let mut worst = [0.0f64; 4];
    let mut banned = 0;
    for (i, case) in cases("processors").iter().enumerate() {
        let n_vocab = case.get("n_vocab").and_then(Json::as_u64).unwrap() as usize;
        let logits: Vec<f32> =
            floats(case.get("logits").unwrap()).iter().map(|&l| l as f32).collect();
        let all = Penalties {
            repetition_penalty: number(case, "repetition_penalty") as f32,
            no_repeat_ngram: Some(number(case, "no_repeat_ngram") as usize),
            presence_penalty: number(case, "presence_penalty") as f32,
            frequency_penalty: number(case, "frequency_penalty") as f32,
        };
        let only = [
            (
                "repetition_only",
                Penalties { repetition_penalty: all.repetition_penalty, ..Penalties::NONE },
            ),
            ("ngram_only", Penalties { no_repeat_ngram: all.no_repeat_ngram, ..Penalties::NONE }),
            (
                "presence_frequency_only",
                Penalties { repetition_penalty: 1.0, no_repeat_ngram: None, ..all },
            ),
            ("all", all),
        ];
        for (k, (key, penalties)) in only.into_iter().enumerate() {
            let mut history = History::new(penalties, n_vocab).unwrap();
            history.push_context(&ids(case.get("prompt").unwrap())).unwrap();
            for token in ids(case.get("generated").unwrap()) {
                history.push_generated(token).unwrap();
            }
            let mut ours = logits.clone();
            history.apply(&mut ours);
            let ours: Vec<f64> = ours.iter().map(|&l| l as f64).collect();
            let theirs = floats(case.get(key).unwrap());
            banned += theirs.iter().filter(|l| **l == f64::NEG_INFINITY).count();
            let what = format!("case {i}, {key}");
            worst[k] = worst[k].max(largest_difference(&ours, &theirs, &what));
        }
    }
    println!(
        "largest differences (repetition, n-gram, presence/frequency, all): {:e} {:e} {:e} {:e}",
        worst[0], worst[1], worst[2], worst[3]
    );
    assert!(worst.iter().all(|&w| w <= TOLERANCE), "{worst:?}");
    assert_eq!(worst[0], 0.0, "the repetition penalty is f32 arithmetic, as in transformers");
    assert!(banned > 50, "the cases do ban tokens ({banned})");
}

#[test]
fn warped_logits_equal_transformers_warpers_within_1e_6() {
    let (mut worst, mut masked) = (0.0f64, 0);
    for (i, case) in cases("warpers").iter().enumerate() {
        let logits: Vec<f32> =
            floats(case.get("logits").unwrap()).iter().map(|&l| l as f32).collect();
        let params = SamplingParams {
            temperature: number(case, "temperature") as f32,
            top_k: optional(case, "top_k").map(|k| k as usize),
            top_p: optional(case, "top_p").map(|p| p as f32),
            min_p: optional(case, "min_p").map(|p| p as f32),
            typical_p: optional(case, "typical_p").map(|p| p as f32),
        };
        let ours = warped_logits(&logits, &params).unwrap();
        let theirs = floats(case.get("warped").unwrap());
        masked += theirs.iter().filter(|l| **l == f64::NEG_INFINITY).count();
        worst = worst.max(largest_difference(&ours, &theirs, &format!("case {i}, {params:?}")));
    }
    println!("largest warped-logit difference: {worst:e}");
    assert!(worst <= TOLERANCE, "{worst}");
    assert!(masked > 500, "the cases do filter ({masked} masked)");
}

#[test]
fn greedy_with_penalties_equals_transformers_generate_where_the_top_two_are_apart() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2");
    let (tokenizer, model) = load_dir(&dir).unwrap();
    let engine = Engine::new(model).unwrap();
    let (mut compared, mut differs_from_plain_greedy) = (0, 0);
    for case in cases("greedy") {
        let prompt = case.get("prompt").and_then(Json::as_str).unwrap();
        let prompt_ids = tokenizer.encode(prompt);
        assert_eq!(prompt_ids, ids(case.get("prompt_ids").unwrap()), "{prompt:?}");
        let expected = ids(case.get("generated").unwrap());
        let gaps = floats(case.get("top2_gaps").unwrap());
        let penalties = Penalties {
            repetition_penalty: number(&case, "repetition_penalty") as f32,
            no_repeat_ngram: optional(&case, "no_repeat_ngram").map(|n| n as usize),
            ..Penalties::NONE
        };
        let run = |penalties| {
            let config = GenerateConfig {
                max_tokens: expected.len(),
                decoding: Decoding::Cached,
                penalties,
                threads: 1,
                ..GenerateConfig::default()
            };
            let mut generator = Generator::new(&engine, &prompt_ids, &config, None).unwrap();
            generator.limit_vocab(512).unwrap(); // transformers' min_new_tokens bans <|endoftext|>
            generator.collect::<Result<Vec<u32>, _>>().unwrap()
        };
        let ours = run(penalties);
        if ours != run(Penalties::NONE) {
            differs_from_plain_greedy += 1;
        }
        for (step, ((a, b), gap)) in ours.iter().zip(&expected).zip(&gaps).enumerate() {
            if *gap <= 1e-4 {
                break; // from here either continuation is right
            }
            assert_eq!(a, b, "{prompt:?} {penalties:?}: step {step} (top-2 gap {gap})");
            compared += 1;
        }
    }
    assert!(compared > 700, "compared only {compared} tokens");
    assert!(differs_from_plain_greedy >= 20, "the penalties change the text");
}
