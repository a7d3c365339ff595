//! LEARN.md must stay true: its worked-trace table is rebuilt here from the code, and every
//! file it cites must exist. (Its Rust example runs as a doctest, see `src/lib.rs`.)

use gpt2_edu::generate::argmax;
use gpt2_edu::trace::{PRINT_DECIMALS, format_fixed};
use gpt2_edu::{Model, Tokenizer, dummy};

const LEARN: &str = include_str!("../LEARN.md");

/// The table of section 12: for each step, what the model sees, the last position's logits
/// (the winner in bold) and the chosen word.
fn worked_trace_table(prompt: &str, n_tokens: usize) -> String {
    let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    let model = Model::new(hparams, weights).unwrap();
    let md = |word: String| {
        if word == "<UNK>" {
            "`<UNK>`".to_string()
        } else {
            word
        }
    };
    let mut table =
        String::from("| step | the model sees | hello | world | the | `<UNK>` | next |\n");
    table.push_str("|---:|---|---:|---:|---:|---:|---|\n");
    let mut tokens = encoder.encode(prompt);
    for step in 1..=n_tokens {
        let logits = model.forward(&tokens).unwrap();
        let last = &logits[logits.len() - hparams.n_vocab..];
        let next = argmax(last);
        let cells: Vec<String> = last
            .iter()
            .enumerate()
            .map(|(id, &logit)| {
                let value = format_fixed(logit, PRINT_DECIMALS);
                if id == next as usize {
                    format!("**{value}**")
                } else {
                    value
                }
            })
            .collect();
        let seen: Vec<String> = tokens
            .iter()
            .map(|&t| md(encoder.decode(&[t]).unwrap()))
            .collect();
        table.push_str(&format!(
            "| {step} | {} | {} | {} |\n",
            seen.join(" "),
            cells.join(" | "),
            md(encoder.decode(&[next]).unwrap())
        ));
        tokens.push(next);
    }
    table
}

#[test]
fn worked_trace_table_matches_the_code() {
    let table = worked_trace_table("hello", 5);
    assert!(
        LEARN.contains(&table),
        "LEARN.md section 12 should contain:\n{table}"
    );
}

#[test]
fn every_cited_file_exists() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cited = 0;
    for quoted in LEARN.split('`').skip(1).step_by(2) {
        let is_path = ["src/", "tests/", "snapshots/", "examples/"]
            .iter()
            .any(|prefix| quoted.starts_with(prefix))
            && !quoted.contains(' ');
        if is_path {
            let path = quoted.split("::").next().unwrap();
            assert!(
                std::path::Path::new(root).join(path).exists(),
                "LEARN.md cites missing {path}"
            );
            cited += 1;
        }
    }
    assert!(cited > 20, "found only {cited} cited paths");
}

#[test]
fn tokenization_walkthrough_matches_the_tokenizer() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tokenizer");
    let bpe =
        gpt2_edu::bpe::Bpe::from_files(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap();
    let walkthrough = bpe.explain(" GPT-2's tokens!");
    assert!(
        LEARN.contains(&walkthrough),
        "LEARN.md section 15 should contain:\n{walkthrough}"
    );
}

#[test]
fn parameter_counts_in_the_table_are_right() {
    let count = |hp: gpt2_edu::HParams| {
        let per_block = 2 * 2 * hp.n_embd // ln_1, ln_2
            + hp.n_embd * 3 * hp.n_embd + 3 * hp.n_embd // c_attn
            + hp.n_embd * hp.n_embd + hp.n_embd // attn.c_proj
            + hp.n_embd * hp.n_ffn() + hp.n_ffn() // c_fc
            + hp.n_ffn() * hp.n_embd + hp.n_embd; // mlp.c_proj
        (hp.n_vocab + hp.n_ctx) * hp.n_embd + hp.n_layer * per_block + 2 * hp.n_embd
    };
    assert_eq!(count(gpt2_edu::HParams::dummy()), 12_960);
    assert_eq!(count(gpt2_edu::HParams::gpt2_124m()), 124_439_808);
    assert!(LEARN.contains("| parameters | 12,960 | 124,439,808 |"));
}
