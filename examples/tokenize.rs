//! Shows GPT-2's tokenizer at work, step by step: pre-tokens, bytes, and every merge.
//!
//! ```text
//! cargo run --release --example tokenize -- " GPT-2's tokens!"
//! ```
//!
//! It reads `tests/fixtures/gpt2-tokenizer/` (GPT-2's own `vocab.json` and `merges.txt`).
//! A text that is not UTF-8, or a stdout that cannot be written (a full disk), is an error
//! with exit code 1; a closed pipe (`| head`) ends it quietly.

use std::ffi::OsString;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::process::ExitCode;

use gpt2_edu::bpe::Bpe;

fn main() -> ExitCode {
    match run(std::env::args_os().nth(1), &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "error: {message}"); // stderr may be gone too
            ExitCode::FAILURE
        }
    }
}

/// Explains the tokens of `text` (the first argument; a default without one) on `out`.
/// A closed pipe is not an error: whoever read the output has seen what they wanted.
/// (`pub` for `tests/tokenize_example.rs`, which compiles this file as a module.)
pub fn run(text: Option<OsString>, out: &mut impl Write) -> Result<(), String> {
    let text = match text.map(OsString::into_string) {
        None => " GPT-2's tokens!".to_string(),
        Some(Ok(text)) => text,
        Some(Err(raw)) => {
            return Err(format!(
                "the text {raw:?} is not valid UTF-8; GPT-2's tokenizer reads UTF-8 text, \
                 so pass the text in UTF-8"
            ));
        }
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tokenizer");
    let bpe = Bpe::from_files(&dir.join("vocab.json"), &dir.join("merges.txt"))
        .map_err(|error| error.to_string())?;
    match out.write_all(bpe.explain(&text).as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {error}"))
        }
        _ => Ok(()),
    }
}
