//! Switching heads off (`Model::with_heads_off`, `--ablate L.H`) against HuggingFace
//! transformers, whose heads `tests/golden/hf_ablation.py` switches off by zeroing their
//! `attn.c_proj` rows: greedy continuations with one and with two heads off, token for
//! token wherever the top two logits are more than 1e-4 apart, on the reference model and
//! on the engine.

use std::path::Path;

use gpt2_edu::json::{self, Json};
use gpt2_edu::viz::HeadId;
use gpt2_edu::{Decoding, Engine, Model, Tokenizer, generate};

const TOLERANCE: f32 = 1e-4;

fn golden() -> Json {
    json::parse(include_str!("golden/ablation.json")).unwrap()
}

fn ids(value: &Json) -> Vec<u32> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

fn heads(value: &Json) -> Vec<HeadId> {
    let pairs = value.as_array().unwrap().iter().map(ids);
    pairs.map(|p| HeadId { layer: p[0] as usize, head: p[1] as usize }).collect()
}

fn fixture() -> (gpt2_edu::Bpe, Model) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2");
    gpt2_edu::load_dir(&dir).unwrap()
}

/// `ours` equals `theirs` up to the first step whose top-two gap is within the tolerance
/// (from there either continuation is right); returns how many steps were compared.
fn assert_agree(ours: &[u32], theirs: &[u32], gaps: &[f32], what: &str) -> usize {
    let mut compared = 0;
    for (step, ((a, b), gap)) in ours.iter().zip(theirs).zip(gaps).enumerate() {
        if *gap <= TOLERANCE {
            break;
        }
        assert_eq!(a, b, "{what}: step {step} (top-2 gap {gap})");
        compared += 1;
    }
    compared
}

fn check_case(model: &Model, tokenizer: &gpt2_edu::Bpe, prompt_ids: &[u32], case: &Json) -> usize {
    let off = heads(case.get("heads_off").unwrap());
    let expected = ids(case.get("generated").unwrap());
    let gaps: Vec<f32> = case
        .get("top2_gaps")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_f64().unwrap() as f32)
        .collect();
    let ablated = model.clone().with_heads_off(&off).unwrap();
    let ours = generate(&ablated, prompt_ids, expected.len(), Decoding::Cached).unwrap();
    let what = format!("{:?} with {off:?} off", tokenizer.decode(prompt_ids).unwrap());
    let compared = assert_agree(&ours, &expected, &gaps, &what);
    let engine = Engine::new(ablated).unwrap();
    for decoding in [Decoding::Cached, Decoding::FullRecompute] {
        let fast = generate(&engine, prompt_ids, expected.len(), decoding).unwrap();
        assert_eq!(fast, ours, "{what}: the engine, {decoding:?}");
    }
    compared
}

#[test]
fn greedy_continuations_with_heads_off_match_transformers() {
    let (tokenizer, model) = fixture();
    let golden = golden();
    let mut compared = 0;
    for case in golden.get("greedy").unwrap().as_array().unwrap() {
        let prompt = case.get("prompt").and_then(Json::as_str).unwrap();
        let prompt_ids = tokenizer.encode(prompt);
        assert_eq!(prompt_ids, ids(case.get("prompt_ids").unwrap()), "{prompt:?}");
        compared += check_case(&model, &tokenizer, &prompt_ids, case);
    }
    assert_eq!(compared, 9 * 12, "every step of every case is compared");
}

#[test]
fn each_single_head_off_matches_transformers() {
    let (tokenizer, model) = fixture();
    let sweep = golden().get("sweep").unwrap().clone();
    let prompt_ids = ids(sweep.get("prompt_ids").unwrap());
    let mut compared = 0;
    for case in sweep.get("cases").unwrap().as_array().unwrap() {
        compared += check_case(&model, &tokenizer, &prompt_ids, case);
    }
    assert!(compared >= 12 * 10, "most steps compared: {compared}");
}

#[test]
fn switching_heads_off_changes_the_logits_and_an_empty_set_changes_nothing() {
    let (_, model) = fixture();
    let tokens: Vec<u32> = (0..10).map(|i| i * 41 % 513).collect();
    let plain = model.forward(&tokens).unwrap();
    assert_eq!(model.clone().with_heads_off(&[]).unwrap().forward(&tokens).unwrap(), plain);
    let off = model.clone().with_heads_off(&[HeadId { layer: 1, head: 2 }]).unwrap();
    let ablated = off.forward(&tokens).unwrap();
    let moved = plain.iter().zip(&ablated).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(moved > 0.01, "{moved}");
    // The trace shows the head's columns of the merged heads at exactly zero.
    let mut trace = gpt2_edu::Trace::new();
    off.forward_full_traced(&tokens, &mut trace).unwrap();
    let merged = trace.get("block.1.attn.merged").unwrap();
    for row in merged.data.chunks_exact(32) {
        assert!(row[16..24].iter().all(|&x| x == 0.0) && row[..16].iter().any(|&x| x != 0.0));
    }
}

#[test]
fn heads_the_model_does_not_have_are_errors() {
    let (_, model) = fixture();
    for (bad, says) in [
        (HeadId { layer: 3, head: 0 }, "layer 3 does not exist: the model has 3 layers (0-2)"),
        (
            HeadId { layer: 0, head: 4 },
            "head 4 does not exist: each layer of the model has 4 heads (0-3)",
        ),
    ] {
        let error = model.clone().with_heads_off(&[bad]).unwrap_err().to_string();
        assert!(error.contains(says), "{error}");
    }
}

/// LEARN.md's experiment: each head of tiny-gpt2 switched off in turn, how many of the 12
/// greedy tokens after "Once upon a time, there was" change. The table in LEARN.md is this.
#[test]
fn learn_md_states_which_head_changes_the_continuation_most() {
    let (tokenizer, model) = fixture();
    let prompt = tokenizer.encode("Once upon a time, there was");
    let baseline = generate(&model, &prompt, 12, Decoding::Cached).unwrap();
    let mut lines = Vec::new();
    for layer in 0..3 {
        let changed: Vec<String> = (0..4)
            .map(|head| {
                let off = model.clone().with_heads_off(&[HeadId { layer, head }]).unwrap();
                let ids = generate(&off, &prompt, 12, Decoding::Cached).unwrap();
                ids.iter().zip(&baseline).filter(|(a, b)| a != b).count().to_string()
            })
            .collect();
        lines.push(format!("| layer {layer} | {} |", changed.join(" | ")));
    }
    let table = lines.join("\n");
    let learn = include_str!("../LEARN.md");
    assert!(learn.contains(&table), "LEARN.md should hold:\n{table}");
}
