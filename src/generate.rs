//! Generation: the autoregressive loop. Run the model, pick the most likely next token
//! (greedy decoding, `argmax`), append it, repeat.
//!
//! ```text
//! tokens = prompt
//! repeat n times:
//!     logits = model(tokens)[last]          [n_vocab]
//!     next   = argmax(logits)
//!     tokens.push(next)
//! ```
//!
//! With [`Decoding::Cached`] the model sees the prompt once (prefill) and then only the one
//! newest token per step, reading everything earlier from the [`KvCache`]. With
//! [`Decoding::FullRecompute`] every step reruns the whole sequence, as the exercise's
//! reference does. Both produce the same tokens (and bit-identical logits).

use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::model::Model;
use crate::trace::Trace;

/// How each step's logits are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoding {
    /// Prefill the prompt into a KV cache, then one new position per step: `O(n)` attention
    /// work per token.
    Cached,
    /// Rerun every position from scratch at every step: `O(n^2)` per token. The reference.
    FullRecompute,
}

/// Index of the largest logit; on a tie, the lowest index (as numpy's `argmax`).
///
/// ```
/// assert_eq!(gpt2_edu::generate::argmax(&[0.1, 2.0, -1.0, 2.0]), 1);
/// ```
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &logit) in logits.iter().enumerate() {
        if logit > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// A sequence being generated: the model, the tokens so far, and (when cached) the cache.
#[derive(Debug)]
pub struct Generator<'m> {
    model: &'m Model,
    decoding: Decoding,
    tokens: Vec<u32>,
    cache: KvCache,
}

impl<'m> Generator<'m> {
    /// Starts from `prompt`, which must be non-empty, in the vocabulary and shorter than
    /// the context. No work is done until the first [`step`](Self::step).
    pub fn new(model: &'m Model, prompt: &[u32], decoding: Decoding) -> Result<Self> {
        let hp = &model.hparams;
        if prompt.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if let Some(&token) = prompt.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(Error::TokenOutOfRange {
                token,
                n_vocab: hp.n_vocab,
            });
        }
        if prompt.len() > hp.n_ctx {
            return Err(Error::ContextOverflow {
                prompt_tokens: prompt.len(),
                new_tokens: 0,
                n_ctx: hp.n_ctx,
            });
        }
        let cache = match decoding {
            Decoding::Cached => KvCache::new(hp),
            Decoding::FullRecompute => KvCache::with_capacity(hp, 0),
        };
        Ok(Self {
            model,
            decoding,
            tokens: prompt.to_vec(),
            cache,
        })
    }

    /// The prompt and every token generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The KV cache (empty when decoding by full recomputation).
    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    /// The logits for the next position, `[n_vocab]`, recording this step's tensors into
    /// `trace`. Cached: runs only the tokens the cache has not seen (the whole prompt the
    /// first time, then one). Full: reruns every token.
    pub fn next_logits(&mut self, trace: &mut Trace) -> Result<Vec<f32>> {
        let n_ctx = self.model.hparams.n_ctx;
        if self.tokens.len() >= n_ctx {
            return Err(Error::ContextOverflow {
                prompt_tokens: self.tokens.len(),
                new_tokens: 1,
                n_ctx,
            });
        }
        let logits = match self.decoding {
            Decoding::Cached => {
                let unseen = &self.tokens[self.cache.len()..];
                self.model.forward_traced(unseen, &mut self.cache, trace)?
            }
            Decoding::FullRecompute => self.model.forward_full_traced(&self.tokens, trace)?,
        };
        let n_vocab = self.model.hparams.n_vocab;
        Ok(logits[logits.len() - n_vocab..].to_vec()) // last row: [n_vocab]
    }

    /// One greedy step: computes the next logits, appends their argmax and returns it.
    pub fn step(&mut self, trace: &mut Trace) -> Result<u32> {
        let next = argmax(&self.next_logits(trace)?);
        self.tokens.push(next);
        Ok(next)
    }
}

/// Checks, before any work, that `prompt_tokens + n_tokens` fit in the model's context
/// (`n_ctx`); otherwise [`Error::ContextOverflow`].
pub fn check_fits(model: &Model, prompt_tokens: usize, n_tokens: usize) -> Result<()> {
    let n_ctx = model.hparams.n_ctx;
    if prompt_tokens + n_tokens > n_ctx {
        return Err(Error::ContextOverflow {
            prompt_tokens,
            new_tokens: n_tokens,
            n_ctx,
        });
    }
    Ok(())
}

/// Generates `n_tokens` tokens greedily after `prompt` and returns only the new ids (the
/// original exercise's `generate`). The whole sequence, `prompt.len() + n_tokens`, must fit
/// in `n_ctx`; this is checked before any work is done.
pub fn generate(
    model: &Model,
    prompt: &[u32],
    n_tokens: usize,
    decoding: Decoding,
) -> Result<Vec<u32>> {
    check_fits(model, prompt.len(), n_tokens)?;
    let mut generator = Generator::new(model, prompt, decoding)?;
    let mut trace = Trace::disabled();
    (0..n_tokens).map(|_| generator.step(&mut trace)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[-5.0]), 0);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1e30]), 1);
    }
}
