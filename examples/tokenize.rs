//! Shows GPT-2's tokenizer at work, step by step: pre-tokens, bytes, and every merge.
//!
//! ```text
//! cargo run --release --example tokenize -- " GPT-2's tokens!"
//! ```
//!
//! It reads `tests/fixtures/gpt2-tokenizer/` (GPT-2's own `vocab.json` and `merges.txt`).

use std::path::Path;
use std::process::ExitCode;

use gpt2_edu::bpe::Bpe;

fn main() -> ExitCode {
    let text = std::env::args().nth(1).unwrap_or_else(|| " GPT-2's tokens!".to_string());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tokenizer");
    let bpe = match Bpe::from_files(&dir.join("vocab.json"), &dir.join("merges.txt")) {
        Ok(bpe) => bpe,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", bpe.explain(&text));
    ExitCode::SUCCESS
}
