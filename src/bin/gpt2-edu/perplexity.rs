//! `--perplexity FILE`: scores a text instead of generating, and `--logprobs K`: each
//! token's log-probability with the `K` most likely alternatives, for a scored text or for
//! the generated tokens.
//!
//! The output of `--perplexity` ends with one line a script can read:
//!
//! ```text
//! perplexity=1415.3428 tokens=357 nll=7.255127
//! ```
//!
//! `tokens` is how many tokens were scored (every one from the second), `nll` their mean
//! negative log-likelihood in nats, and `perplexity` is `e^nll`.

use std::io::{self, Write};

use gpt2_edu::score::{Scores, TokenScore, score};
use gpt2_edu::{Engine, HParams, Tokenizer, Workspace};

use crate::Failure;
use crate::cli::Options;

/// Scores `text` with `engine` and prints the summary (and with `--logprobs`, every token).
pub fn run(
    tokenizer: &dyn Tokenizer,
    engine: &Engine,
    text: &str,
    options: &Options,
) -> Result<(), Failure> {
    let n_ctx = engine.hparams().n_ctx;
    let stride = options.stride.unwrap_or((n_ctx / 2).max(1));
    if stride > n_ctx {
        return Err(Failure::Usage(format!(
            "option '--stride' must be at most the model's context, n_ctx = {n_ctx}; found {stride}"
        )));
    }
    let ids = tokenizer.encode(text); // exactly the text: no end-of-text token added
    let top_n = options.logprobs.unwrap_or(0);
    let scores = score(engine, &ids, stride, top_n, &mut Workspace::new(options.threads)?)?;
    let mut out = io::stdout().lock();
    if options.logprobs.is_some() {
        writeln!(out, "{}", table_header("position", top_n))?;
        for token in &scores.tokens {
            writeln!(out, "{}", table_row(tokenizer, token.position, token)?)?;
        }
        writeln!(out)?;
    }
    summary(&mut out, &scores, ids.len(), engine.hparams(), stride)?;
    out.flush()?;
    Ok(())
}

/// The readable summary, and last the line a script reads.
fn summary(
    out: &mut impl Write,
    scores: &Scores,
    n_tokens: usize,
    hparams: &HParams,
    stride: usize,
) -> Result<(), Failure> {
    let (nll, n, windows) = (scores.nll(), scores.tokens.len(), scores.windows);
    writeln!(
        out,
        "scored {n} of {n_tokens} tokens in {windows} window{} of {} tokens, moving by {stride} \
         (the first token is only context)",
        if windows == 1 { "" } else { "s" },
        hparams.n_ctx,
    )?;
    writeln!(
        out,
        "mean negative log-likelihood {nll:.6} nats per token ({:.4} bits); a uniform guess \
         over the {} tokens would be {:.4}",
        nll / std::f64::consts::LN_2,
        hparams.n_vocab,
        (hparams.n_vocab as f64).ln(),
    )?;
    writeln!(out, "perplexity={:.4} tokens={n} nll={nll:.6}", scores.perplexity())?;
    Ok(())
}

/// The header of a logprobs table: `what` names the first column.
pub fn table_header(what: &str, top_n: usize) -> String {
    let alternatives = match top_n {
        0 => String::new(),
        n => format!("  the {n} most likely, with theirs"),
    };
    format!(
        "log-probabilities (natural log, the model's own distribution, before any penalty or \
         filter):\n{what:>8}  {:<16} {:>9}{alternatives}",
        "token", "logprob"
    )
}

/// One row: where, the token, its log-probability, and the alternatives.
pub fn table_row(
    tokenizer: &dyn Tokenizer,
    at: usize,
    token: &TokenScore,
) -> Result<String, Failure> {
    let mut row = format!("{at:>8}  {:<16} {:>9.4}", shown(tokenizer, token.token)?, token.logprob);
    for &(id, logprob) in &token.top {
        row.push_str(&format!("  {} {logprob:.4}", shown(tokenizer, id)?));
    }
    Ok(row)
}

/// A token as text a reader can tell apart: quoted, with escapes (`"\n"`), and any byte
/// that is not part of a whole UTF-8 character as `<0xE2>`.
pub fn shown(tokenizer: &dyn Tokenizer, id: u32) -> Result<String, Failure> {
    let bytes = tokenizer.decode_bytes(&[id])?;
    Ok(match std::str::from_utf8(&bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => bytes.iter().map(|b| format!("<0x{b:02X}>")).collect(),
    })
}
