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
        if word == "<UNK>" { "`<UNK>`".to_string() } else { word }
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
                if id == next as usize { format!("**{value}**") } else { value }
            })
            .collect();
        let seen: Vec<String> = tokens.iter().map(|&t| md(encoder.decode(&[t]).unwrap())).collect();
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
    assert!(LEARN.contains(&table), "LEARN.md section 12 should contain:\n{table}");
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
    assert!(LEARN.contains(&walkthrough), "LEARN.md section 15 should contain:\n{walkthrough}");
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

/// The sampling chapter's table: one real step of the dummy model (the logits after
/// "hello"), as probabilities under several settings.
fn sampling_table() -> String {
    use gpt2_edu::sample::{SamplingParams, distribution};
    let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    let model = Model::new(hparams, weights).unwrap();
    let logits = model.forward(&encoder.encode("hello")).unwrap();
    let settings: [(&str, f32, Option<usize>, Option<f32>); 7] = [
        ("greedy (T = 0)", 0.0, None, None),
        ("T = 1", 1.0, None, None),
        ("T = 0.5", 0.5, None, None),
        ("T = 2", 2.0, None, None),
        ("T = 1, top-k 2", 1.0, Some(2), None),
        ("T = 1, top-p 0.7", 1.0, None, Some(0.7)),
        ("T = 2, top-k 3, top-p 0.8", 2.0, Some(3), Some(0.8)),
    ];
    let mut table =
        String::from("| setting | hello | world | the | `<UNK>` |\n|---|---:|---:|---:|---:|\n");
    let cells: Vec<String> = logits.iter().map(|&l| format_fixed(l, PRINT_DECIMALS)).collect();
    table.push_str(&format!("| logits | {} |\n", cells.join(" | ")));
    for (name, temperature, top_k, top_p) in settings {
        let probs = distribution(
            &logits,
            &SamplingParams { temperature, top_k, top_p, ..SamplingParams::GREEDY },
        )
        .unwrap();
        let cells: Vec<String> = probs.iter().map(|&p| format!("{p:.4}")).collect();
        table.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
    }
    table
}

#[test]
fn sampling_table_matches_the_sampler() {
    let table = sampling_table();
    assert!(LEARN.contains(&table), "LEARN.md's sampling chapter should contain:\n{table}");
}

/// The dummy model's full pass on "hello world", traced.
fn hello_world_trace() -> gpt2_edu::Trace {
    let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    let model = Model::new(hparams, weights).unwrap();
    let mut trace = gpt2_edu::Trace::new();
    model.forward_full_traced(&encoder.encode("hello world"), &mut trace).unwrap();
    trace
}

/// A traced tensor's rows, each value with five decimals right-aligned in `width`.
fn rows(trace: &gpt2_edu::Trace, name: &str, width: usize) -> Vec<String> {
    let tensor = trace.get(name).unwrap();
    let n_cols = *tensor.shape.last().unwrap();
    tensor
        .data
        .chunks_exact(n_cols)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .map(|&x| format!("{:>width$}", format_fixed(x, PRINT_DECIMALS)))
                .collect();
            cells.join(" ")
        })
        .collect()
}

/// Section 4: head 0 of block 0's scores, masked scores and weights, as the trace prints
/// them, side by side in columns 39 characters apart.
#[test]
fn attention_grids_of_section_4_match_the_trace() {
    let trace = hello_world_trace();
    let grids: Vec<Vec<String>> = ["scores", "masked", "weights"]
        .iter()
        .map(|stage| {
            let tensor = trace.get(&format!("block.0.attn.{stage}.head.0")).unwrap();
            tensor.to_string().lines().map(String::from).collect()
        })
        .collect();
    let mut text = String::new();
    for line in 0..grids[0].len() {
        let cells: Vec<String> = grids.iter().map(|grid| format!("{:<38}", grid[line])).collect();
        text.push_str(cells.join(" ").trim_end());
        text.push('\n');
    }
    assert!(LEARN.contains(&text), "LEARN.md section 4 should contain:\n{text}");
}

/// Section 9: the logits of "hello world", one row per position.
#[test]
fn logits_table_of_section_9_matches_the_trace() {
    let trace = hello_world_trace();
    let mut text = String::from("logits [2, 4]        hello    world      the    <UNK>\n");
    for (label, row) in ["after \"hello\"", "after \"world\""].iter().zip(rows(&trace, "logits", 8))
    {
        text.push_str(&format!("  {label}   {row}\n"));
    }
    assert!(LEARN.contains(&text), "LEARN.md section 9 should contain:\n{text}");
}

/// The introduction's cross-entropy example: -ln p of two possible next tokens after
/// "hello", from the sampling chapter's T = 1 probabilities.
#[test]
fn cross_entropy_example_matches_the_probabilities() {
    use gpt2_edu::sample::{SamplingParams, distribution};
    let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    let model = Model::new(hparams, weights).unwrap();
    let logits = model.forward(&encoder.encode("hello")).unwrap();
    let p = distribution(
        &logits,
        &SamplingParams { temperature: 1.0, top_k: None, top_p: None, ..SamplingParams::GREEDY },
    )
    .unwrap();
    for id in [1, 2] {
        let claim = format!("-ln {:.4} = {:.4} nats", p[id], -p[id].ln());
        assert!(LEARN.contains(&claim), "LEARN.md's introduction should say {claim}");
    }
}

/// Numbers quoted in the prose of sections 4-6: the second position's attention weights in
/// both heads of block 0, and a value of the feed-forward layer before and after GELU.
#[test]
fn numbers_quoted_in_sections_4_to_6_match_the_trace() {
    let trace = hello_world_trace();
    let data = |name: &str| trace.get(name).unwrap().data.clone();
    for (head, quoted) in [(0, "0.43 / 0.57"), (1, "0.73 / 0.27")] {
        let w = data(&format!("block.0.attn.weights.head.{head}"));
        assert_eq!(format!("{:.2} / {:.2}", w[2], w[3]), quoted);
        assert!(LEARN.contains(quoted));
    }
    let (before, after) = (data("block.0.mlp.c_fc"), data("block.0.mlp.gelu"));
    let at = before.iter().position(|&x| format_fixed(x, PRINT_DECIMALS) == "-0.42288").unwrap();
    let quoted = format!("`{}` becomes `{}`", "-0.42288", format_fixed(after[at], PRINT_DECIMALS));
    let prose = LEARN.replace('\n', " "); // the sentence may be wrapped anywhere
    assert!(prose.contains(&quoted), "LEARN.md section 6 should say {quoted}");
}

/// The logits of the third step of "hello" (the model has seen "hello world world":
/// "hello" is the prompt, "world world" was generated), with the history the penalties
/// see at that step.
fn third_step() -> (Vec<f32>, Vec<u32>, Vec<u32>) {
    let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    let model = Model::new(hparams, weights).unwrap();
    let (prompt, generated) = (encoder.encode("hello"), encoder.encode("world world"));
    let logits = model.forward(&[prompt.clone(), generated.clone()].concat()).unwrap();
    (logits[logits.len() - hparams.n_vocab..].to_vec(), prompt, generated)
}

/// The repetition chapter's first table: each penalty on the third step's logits, and the
/// token greedy decoding then takes.
fn penalties_table() -> String {
    use gpt2_edu::penalties::{History, Penalties};
    let (logits, prompt, generated) = third_step();
    let none = Penalties::NONE;
    let settings: [(&str, Penalties); 7] = [
        ("none (the model's logits)", none),
        ("repetition penalty 2", Penalties { repetition_penalty: 2.0, ..none }),
        ("repetition penalty 3", Penalties { repetition_penalty: 3.0, ..none }),
        ("no-repeat n-gram 2", Penalties { no_repeat_ngram: Some(2), ..none }),
        ("no-repeat n-gram 1", Penalties { no_repeat_ngram: Some(1), ..none }),
        ("presence penalty 0.5", Penalties { presence_penalty: 0.5, ..none }),
        ("frequency penalty 0.1", Penalties { frequency_penalty: 0.1, ..none }),
    ];
    let words = ["hello", "world", "the", "`<UNK>`"];
    let mut table = String::from(
        "| penalty | hello | world | the | `<UNK>` | greedy takes |\n|---|---:|---:|---:|---:|---|\n",
    );
    for (name, penalties) in settings {
        let mut history = History::new(penalties, logits.len()).unwrap();
        history.push_context(&prompt).unwrap();
        for &t in &generated {
            history.push_generated(t).unwrap();
        }
        let mut penalised = logits.clone();
        history.apply(&mut penalised);
        let cells: Vec<String> =
            penalised.iter().map(|&l| format_fixed(l, PRINT_DECIMALS)).collect();
        let next = words[argmax(&penalised) as usize];
        table.push_str(&format!("| {name} | {} | {next} |\n", cells.join(" | ")));
    }
    table
}

/// The repetition chapter's second table: min-p and typical-p on the same step, as
/// probabilities, beside plain T = 1 and top-p.
fn cut_off_table() -> String {
    use gpt2_edu::sample::{SamplingParams, distribution};
    let (logits, _, _) = third_step();
    let t1 = SamplingParams { temperature: 1.0, ..SamplingParams::GREEDY };
    let settings: [(&str, SamplingParams); 6] = [
        ("T = 1", t1),
        ("T = 1, top-p 0.5", SamplingParams { top_p: Some(0.5), ..t1 }),
        ("T = 1, min-p 0.5", SamplingParams { min_p: Some(0.5), ..t1 }),
        ("T = 1, min-p 0.2", SamplingParams { min_p: Some(0.2), ..t1 }),
        ("T = 1, typical-p 0.5", SamplingParams { typical_p: Some(0.5), ..t1 }),
        ("T = 1, typical-p 0.2", SamplingParams { typical_p: Some(0.2), ..t1 }),
    ];
    let mut table =
        String::from("| setting | hello | world | the | `<UNK>` |\n|---|---:|---:|---:|---:|\n");
    for (name, params) in settings {
        let probs = distribution(&logits, &params).unwrap();
        let cells: Vec<String> = probs.iter().map(|&p| format!("{p:.4}")).collect();
        table.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
    }
    table
}

#[test]
fn repetition_tables_match_the_penalties_and_the_sampler() {
    let (penalties, cut_offs) = (penalties_table(), cut_off_table());
    for table in [penalties, cut_offs] {
        assert!(LEARN.contains(&table), "LEARN.md's repetition section should contain:\n{table}");
    }
}

/// The numbers the repetition section quotes: the min-p bar, the entropy and each token's
/// surprise at the third step.
#[test]
fn numbers_quoted_in_the_repetition_section_match_the_code() {
    use gpt2_edu::sample::{SamplingParams, distribution};
    let (logits, _, _) = third_step();
    let t1 = SamplingParams { temperature: 1.0, ..SamplingParams::GREEDY };
    let p = distribution(&logits, &t1).unwrap();
    let entropy: f64 = -p.iter().map(|&q| q * q.ln()).sum::<f64>();
    let surprise = |id: usize| format!("{:.3}", -p[id].ln());
    let quoted = [
        format!("as `world` ({:.4})", 0.5 * p[1]),
        format!("from the entropy ({entropy:.3} nats here)"),
        format!("`<UNK>` ({}) is the", surprise(3)),
        format!(
            "then `world` ({}), `the` ({}), `hello` ({})",
            surprise(1),
            surprise(2),
            surprise(0)
        ),
    ];
    for claim in quoted {
        assert!(LEARN.contains(&claim), "LEARN.md's repetition section should say {claim}");
    }
}
