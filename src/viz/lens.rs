//! Two readings of a step's trace beyond its attention: the **logit lens** (what the model
//! would predict if it stopped after each layer) and each token's **surprise**.
//!
//! ```text
//! logit lens   for the residual stream x_l entering block l (l = 0: the embeddings) and
//!              leaving the last block (l = n_layer):
//!              lens_l = ln_f(x_l) @ wte^T                      [n_new, n_embd] -> [n_new, n_vocab]
//!              shown: the top token of each row and its softmax probability
//!              the last row is exactly the model's logits (the same ln_f, the same wte)
//! surprise     bits(t) = -log2 p(t | the tokens before it)   p: softmax of the logits at T = 1
//! ```
//!
//! (nostalgebraist, "interpreting GPT: the logit lens", 2020.) Numerical care: the
//! probabilities are softmaxes in f64 with the row's maximum subtracted; the lens reuses
//! the model's own `ln_f` and tied embedding, so its last row has the logits' bits.

use crate::error::Result;
use crate::model::Model;
use crate::sample::{logprob, top_logprobs};
use crate::tokenizer::Tokenizer;
use crate::trace::{Trace, TracedTensor};

/// How many alternatives a [`TokenSurprise`] keeps.
pub const SURPRISE_ALTERNATIVES: usize = 5;

/// One cell of the logit lens: the most likely token at one (layer, position).
#[derive(Debug, Clone, PartialEq)]
pub struct LensCell {
    /// Its id (ties: the lower id).
    pub id: u32,
    /// Its text, decoded alone.
    pub text: String,
    /// Its probability in `softmax(ln_f(x) @ wte^T)`.
    pub probability: f64,
}

/// The logit lens of one step: `rows[l][i]` is the top token of the residual stream
/// entering block `l` (`l = n_layer`: leaving the last block) at position
/// `first_position + i`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitLens {
    /// The first position shown (the step's first new position).
    pub first_position: usize,
    /// `n_layer + 1` rows of `n_new` cells each.
    pub rows: Vec<Vec<LensCell>>,
}

impl LogitLens {
    /// The lens of the step whose tensors `trace` holds (the last recorded `embeddings` and
    /// `block.{l}.residual_2`), for positions from `first_position`; `None` if the trace
    /// does not hold them with the model's width.
    pub fn from_trace(
        model: &Model,
        tokenizer: &dyn Tokenizer,
        trace: &Trace,
        first_position: usize,
    ) -> Result<Option<Self>> {
        let n_layer = model.hparams.n_layer;
        let names = std::iter::once("embeddings".to_string())
            .chain((0..n_layer).map(|l| format!("block.{l}.residual_2")));
        let mut rows = Vec::with_capacity(n_layer + 1);
        for name in names {
            let Some(x) = last_tensor(trace, &name) else {
                return Ok(None);
            };
            if x.shape.last() != Some(&model.hparams.n_embd) {
                return Ok(None);
            }
            rows.push(lens_row(model, tokenizer, &x.data)?);
        }
        Ok(Some(Self { first_position, rows }))
    }

    /// Row label: `"embeddings"`, `"after block 0"`, ...
    pub fn row_label(row: usize) -> String {
        match row {
            0 => "embeddings".into(),
            _ => format!("after block {}", row - 1),
        }
    }
}

/// The top token and its probability at each position of the residual stream `x`
/// (`[n_new, n_embd]`): `softmax(ln_f(x) @ wte^T)`.
fn lens_row(model: &Model, tokenizer: &dyn Tokenizer, x: &[f32]) -> Result<Vec<LensCell>> {
    let (hp, w) = (&model.hparams, &model.weights);
    let normed = w.ln_f.forward(x, hp.layer_norm_eps); // [n_new, n_embd]
    let logits = model.logits(&normed); // [n_new, n_vocab]
    logits
        .chunks_exact(hp.n_vocab)
        .map(|row| {
            let (id, probability) = top_of(row);
            Ok(LensCell { id, text: token_text(tokenizer, id)?, probability })
        })
        .collect()
}

/// The most likely id of `logits` (ties: the lower id) and its softmax probability.
fn top_of(logits: &[f32]) -> (u32, f64) {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    let max = f64::from(logits[best]);
    let sum: f64 = logits.iter().map(|&l| (f64::from(l) - max).exp()).sum();
    (best as u32, 1.0 / sum)
}

/// How surprised the model was by one token: `-log2 p`, and what it expected instead.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSurprise {
    /// The token's position in the text (from 1: the first token has no prediction).
    pub position: usize,
    /// The token.
    pub id: u32,
    /// Its surprisal in bits, `-log2 p` (0: certain; `log2 n_vocab`: a uniform guess).
    pub bits: f64,
    /// Its probability `p`.
    pub probability: f64,
    /// The [`SURPRISE_ALTERNATIVES`] most likely tokens there, most likely first: (text, p).
    pub alternatives: Vec<(String, f64)>,
}

impl TokenSurprise {
    /// The surprise of `token` at `position`, predicted by `logits` (`[n_vocab]`, the row of
    /// the position before): the model's own distribution, temperature 1, no filter.
    pub fn of(
        tokenizer: &dyn Tokenizer,
        logits: &[f32],
        position: usize,
        token: u32,
    ) -> Result<Self> {
        let ln_p = logprob(logits, token)?;
        let alternatives = top_logprobs(logits, SURPRISE_ALTERNATIVES)?
            .into_iter()
            .map(|(id, lp)| Ok((token_text(tokenizer, id)?, lp.exp())))
            .collect::<Result<_>>()?;
        let bits = -ln_p / std::f64::consts::LN_2;
        Ok(Self { position, id: token, bits, probability: ln_p.exp(), alternatives })
    }
}

/// Token `id`'s text, decoded alone; a token whose bytes are not whole UTF-8 characters
/// (one byte of a character split between tokens) as its bytes, `<0xE2><0x80>`, so that
/// two such tokens never look the same.
pub fn token_text(tokenizer: &dyn Tokenizer, id: u32) -> Result<String> {
    let bytes = tokenizer.decode_bytes(&[id])?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e.as_bytes().iter().map(|b| format!("<0x{b:02X}>")).collect(),
    })
}

/// The tensor recorded last under `name`.
pub(super) fn last_tensor<'t>(trace: &'t Trace, name: &str) -> Option<&'t TracedTensor> {
    trace.tensors().iter().rev().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_of_a_row_is_its_largest_logit_with_its_softmax_probability() {
        let (id, p) = top_of(&[0.0, 2.0_f32.ln(), 0.0, 2.0_f32.ln()]);
        assert_eq!(id, 1, "ties: the lower id");
        assert!((p - 2.0 / 6.0).abs() < 1e-7, "{p}");
        assert_eq!(LogitLens::row_label(0), "embeddings");
        assert_eq!(LogitLens::row_label(3), "after block 2");
    }
}
