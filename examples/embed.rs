//! How another program embeds gpt2-edu: a checkpoint compiled into the binary with
//! `include_bytes!` (no files needed at run time), loaded with the same checks as a folder,
//! then text streamed as it is generated, with sampling, a stop string and each token's
//! probability; then a second prompt on the same threads.
//!
//! ```text
//! cargo run --release --example embed
//! ```
//!
//! The checkpoint is `tests/fixtures/tiny-gpt2`: GPT-2's architecture and a small real
//! vocabulary, with random weights, so the text is gibberish. Point the four
//! `include_bytes!` at a real GPT-2 folder's files for English (and a 500 MB binary).

use std::io::Write;
use std::process::ExitCode;

use gpt2_edu::{
    CheckpointBytes, Dtype, GenerateConfig, SamplingParams, TextGenerator, Workspace,
    load_bytes_engine,
};

/// The checkpoint's four files, inside the program.
const CHECKPOINT: CheckpointBytes<'static> = CheckpointBytes {
    config: include_bytes!("../tests/fixtures/tiny-gpt2/config.json"),
    safetensors: include_bytes!("../tests/fixtures/tiny-gpt2/model.safetensors"),
    vocab: include_bytes!("../tests/fixtures/tiny-gpt2/vocab.json"),
    merges: include_bytes!("../tests/fixtures/tiny-gpt2/merges.txt"),
};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Every file and tensor checked, each tensor packed as it is read (Dtype::Q8 for 8 bits).
    let (tokenizer, engine) = load_bytes_engine(&CHECKPOINT, Dtype::F32)?;
    let hp = *engine.hparams();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "loaded from memory: {} layers, {} heads, n_embd {}, {} tokens",
        hp.n_layer, hp.n_head, hp.n_embd, hp.n_vocab
    )?;

    // Two threads, started once, for both generations below.
    let mut workspace = Workspace::new(2)?;
    let config = GenerateConfig {
        max_tokens: 30,
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: Some(50),
            top_p: Some(0.95),
            ..SamplingParams::GREEDY
        },
        seed: 7,
        stop_strings: vec!["ch".into()], // a string this gibberish reaches (for real GPT-2, "\n\n")
        ..GenerateConfig::default()
    };
    for prompt in ["Once upon a time", "The weather today"] {
        let mut text =
            TextGenerator::with_state(&engine, &mut workspace, &tokenizer, prompt, &config)?;
        write!(out, "\n{}", text.prompt_text())?;
        let (mut total_logprob, mut n) = (0.0, 0);
        while let Some(piece) = text.next_text()? {
            write!(out, "{piece}")?;
            out.flush()?; // streaming: each piece as soon as it exists
            if let Some(step) = text.last_step() {
                total_logprob += step.logprob();
                n += 1;
            }
        }
        let reason = text.stop_reason().map(ToString::to_string).unwrap_or_default();
        writeln!(
            out,
            "\n[{n} tokens, {reason}; mean log-probability {:.3}]",
            total_logprob / n.max(1) as f64
        )?;
    }
    Ok(())
}
