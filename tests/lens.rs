//! The logit lens and the surprise of each token, against the model's own logits, against
//! transformers' hidden states (`tests/golden/hf_ablation.py`, "lens") and against scoring.

use std::path::Path;

use gpt2_edu::Model;
use gpt2_edu::generate::GenerateConfig;
use gpt2_edu::json::{self, Json};
use gpt2_edu::sample::logprob;
use gpt2_edu::viz::{self, ExplainOptions, Explanation, Heads};

fn fixture() -> (gpt2_edu::Bpe, Model) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2");
    gpt2_edu::load_dir(&dir).unwrap()
}

fn explain(model: &Model, tokenizer: &gpt2_edu::Bpe, prompt: &str, n: usize) -> Explanation {
    let config = GenerateConfig { max_tokens: n, ..GenerateConfig::default() };
    let options = ExplainOptions { heads: Heads::Only(vec![]), lens: true, ..Default::default() };
    viz::explain_generation(model, tokenizer, prompt, &config, &options).unwrap()
}

#[test]
fn the_last_row_of_the_lens_is_the_models_prediction() {
    let (tokenizer, model) = fixture();
    let run = explain(&model, &tokenizer, "The quick brown fox", 5);
    for step in &run.steps {
        let lens = step.lens.as_ref().unwrap();
        assert_eq!(lens.rows.len(), 4, "embeddings and after each of 3 blocks");
        let logits = model.forward(&run.tokens[..step.seen.len()]).unwrap();
        let last = lens.rows.last().unwrap().last().unwrap();
        let row = &logits[logits.len() - 513..];
        // Greedy chose the top of the real logits; the lens's last row names it too, with
        // the same probability as the step's candidates (both softmax at T = 1).
        assert_eq!(Some(last.id), step.chosen, "step {}", step.number);
        assert_eq!(last.probability, step.candidates[0].probability, "step {}", step.number);
        assert!((last.probability - logprob(row, last.id).unwrap().exp()).abs() < 1e-12);
    }
    assert_eq!(run.steps[0].lens.as_ref().unwrap().rows[0].len(), 12, "the prompt's positions");
    assert_eq!(run.steps[1].lens.as_ref().unwrap().first_position, 12);
}

#[test]
fn the_lens_matches_transformers_hidden_states() {
    let (tokenizer, model) = fixture();
    let golden = json::parse(include_str!("golden/ablation.json")).unwrap();
    let lens = golden.get("lens").unwrap();
    let prompt = lens.get("prompt").and_then(Json::as_str).unwrap();
    let run = explain(&model, &tokenizer, prompt, 1);
    let ours = run.steps[0].lens.as_ref().unwrap();
    let theirs = lens.get("rows").unwrap().as_array().unwrap();
    assert_eq!(ours.rows.len(), theirs.len());
    let (mut compared, mut worst) = (0, 0.0_f64);
    for (layer, (our_row, their_row)) in ours.rows.iter().zip(theirs).enumerate() {
        let list = |key: &str| their_row.get(key).unwrap().as_array().unwrap();
        let (top, p, gap) = (list("top"), list("probability"), list("top2_gap"));
        for (position, cell) in our_row.iter().enumerate() {
            worst = worst.max((cell.probability - p[position].as_f64().unwrap()).abs());
            if gap[position].as_f64().unwrap() > 1e-4 {
                let expected = top[position].as_u64().unwrap() as u32;
                assert_eq!(cell.id, expected, "layer row {layer}, position {position}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 4 * 12, "every cell's top token compared");
    assert!(worst < 1e-5, "largest probability difference {worst:e}");
}

#[test]
fn surprise_is_minus_log2_of_each_tokens_probability_with_the_top_five_alternatives() {
    let (tokenizer, model) = fixture();
    let run = explain(&model, &tokenizer, "Hello", 4);
    let surprise: Vec<_> = run.steps.iter().flat_map(|s| s.surprise.clone()).collect();
    let positions: Vec<usize> = surprise.iter().map(|s| s.position).collect();
    assert_eq!(positions, (1..run.tokens.len()).collect::<Vec<_>>(), "every token from the second");
    let logits = model.forward(&run.tokens).unwrap(); // [n_seq, 513]
    for s in &surprise {
        let row = &logits[(s.position - 1) * 513..s.position * 513];
        let expected = -logprob(row, run.tokens[s.position]).unwrap() / std::f64::consts::LN_2;
        assert!((s.bits - expected).abs() < 1e-9, "{s:?}");
        assert_eq!(s.alternatives.len(), 5);
        assert!(s.alternatives.windows(2).all(|w| w[0].1 >= w[1].1));
        if !run.is_prompt(s.position) {
            let text = &run.token_texts[s.position];
            assert_eq!(&s.alternatives[0].0, text, "greedy took the most likely");
        }
    }
}
