//! Scoring a text: how likely the model finds each of its tokens, and the perplexity.
//!
//! A language model gives, at every position, a probability to every possible next token.
//! Scoring a text reads off the probability of the token that actually comes next:
//!
//! ```text
//! logprob[i] = log p(tokens[i] | tokens[..i])      for i = 1..n   (token 0 has no context)
//! NLL        = -mean(logprob)                      nats per token: the cross-entropy
//! perplexity = e^NLL                               "as unsure as a uniform choice among P"
//! ```
//!
//! **Texts longer than the context.** The model sees at most `n_ctx` tokens, so a long
//! text is scored in windows: window `k` holds the `n_ctx` tokens starting at
//! `b = k * stride`, and its *new positions* are those after the previous window's end.
//! Each token from the second on is scored exactly once, in the first window in which it
//! is among the new positions, given that window's tokens before it as context:
//!
//! ```text
//! n_ctx 8, stride 4:   window 0 holds tokens 0..8    and scores tokens 1..8
//!                      window 1 holds tokens 4..12   and scores 8..12   (context: 4 to 7 tokens)
//!                      window 2 holds tokens 8..16   and scores 12..16  ...
//! ```
//!
//! This is HuggingFace's perplexity recipe. A smaller stride gives every token (after the
//! first window) at least `n_ctx - stride` tokens of context, and so a lower perplexity,
//! at the price of more windows. With `stride = n_ctx` the windows do not overlap and a
//! window's first token has nothing before it in its window; it is then scored by the
//! window before, from that window's last position (HuggingFace's recipe drops it, one
//! token per window), so that here too every token is scored once.
//!
//! Numbers: each window runs on the fast engine ([`Forward::tail_logits`], only the rows
//! that score something), and each log-probability is a log-softmax in f64
//! ([`logprob`]).

use crate::error::{Error, Result};
use crate::generate::Forward;
use crate::kv_cache::KvCache;
use crate::sample::{logprob, top_logprobs};

/// One scored token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScore {
    /// Where it is in the text (1 or more: the first token is never scored).
    pub position: usize,
    /// The token.
    pub token: u32,
    /// `log p(token | what precedes it in its window)`, natural log.
    pub logprob: f64,
    /// The most likely tokens at that position with their log-probabilities, most likely
    /// first (as many as asked for; none by default).
    pub top: Vec<(u32, f64)>,
}

/// The scores of a text: one [`TokenScore`] per token from the second on.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// In text order.
    pub tokens: Vec<TokenScore>,
    /// How many windows were run.
    pub windows: usize,
}

impl Scores {
    /// The mean negative log-likelihood, in nats per token: the cross-entropy.
    pub fn nll(&self) -> f64 {
        let total: f64 = self.tokens.iter().map(|t| -t.logprob).sum();
        total / self.tokens.len().max(1) as f64
    }

    /// `e^nll`: the perplexity per token.
    pub fn perplexity(&self) -> f64 {
        self.nll().exp()
    }
}

/// Scores `tokens` with `model` (see the module documentation for the windows), with the
/// `top_n` most likely alternatives of each token (0 for none). `state` is the forward
/// pass's state (for the engine, a [`Workspace`](crate::Workspace)).
///
/// Errors, before any work: fewer than two tokens (nothing to score), an id outside the
/// vocabulary, or a `stride` outside `1..=n_ctx`.
///
/// ```
/// use gpt2_edu::score::score;
/// use gpt2_edu::{dummy, Engine, Model, Tokenizer, Workspace};
/// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
/// let engine = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
/// let tokens = encoder.encode("hello world world");
/// let scores = score(&engine, &tokens, 512, 0, &mut Workspace::new(1).unwrap()).unwrap();
/// assert_eq!(scores.tokens.len(), 2); // "world" after "hello", "world" after "hello world"
/// assert!((scores.tokens[0].logprob.exp() - 0.4379).abs() < 5e-5); // LEARN.md section 17
/// let nll = -(scores.tokens[0].logprob + scores.tokens[1].logprob) / 2.0;
/// assert_eq!((scores.nll(), scores.perplexity()), (nll, nll.exp()));
/// ```
pub fn score<M: Forward>(
    model: &M,
    tokens: &[u32],
    stride: usize,
    top_n: usize,
    state: &mut M::State,
) -> Result<Scores> {
    let hp = *model.hparams();
    check(tokens, stride, hp.n_vocab, hp.n_ctx)?;
    let mut cache = KvCache::with_capacity(&hp, hp.n_ctx)?;
    let mut scored = Vec::with_capacity(tokens.len() - 1);
    let mut windows = 0;
    for (begin, targets) in Windows::new(tokens.len(), hp.n_ctx, stride) {
        cache.clear(); // every window starts from nothing
        let inputs = &tokens[begin..targets.end - 1]; // up to the last target's predecessor
        let logits = model.tail_logits(inputs, &mut cache, state, targets.len())?;
        for (row, position) in logits.chunks_exact(hp.n_vocab).zip(targets) {
            let token = tokens[position];
            let top = if top_n == 0 { Vec::new() } else { top_logprobs(row, top_n)? };
            scored.push(TokenScore { position, token, logprob: logprob(row, token)?, top });
        }
        windows += 1;
    }
    Ok(Scores { tokens: scored, windows })
}

/// [`score`]'s checks.
fn check(tokens: &[u32], stride: usize, n_vocab: usize, n_ctx: usize) -> Result<()> {
    if tokens.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "scoring needs at least 2 tokens (the first is only context), found {}",
            tokens.len()
        )));
    }
    if let Some(&token) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(Error::TokenOutOfRange { token, n_vocab });
    }
    if !(1..=n_ctx).contains(&stride) {
        return Err(Error::InvalidArgument(format!(
            "the stride must be between 1 and n_ctx = {n_ctx}, found {stride}"
        )));
    }
    Ok(())
}

/// The windows of a text of `n` tokens: `(begin, targets)`, where the window holds tokens
/// `begin..begin + n_ctx` (fewer at the end) and scores the positions `targets` (see the
/// module documentation; with `stride = n_ctx`, `targets` ends one past the window).
#[derive(Debug, Clone)]
pub struct Windows {
    n: usize,
    n_ctx: usize,
    stride: usize,
    begin: usize,
    /// The first position not scored yet.
    next: usize,
}

impl Windows {
    /// The windows for `n` tokens, `n_ctx` per window, moving by `stride` (`1..=n_ctx`).
    pub fn new(n: usize, n_ctx: usize, stride: usize) -> Self {
        Self { n, n_ctx, stride: stride.clamp(1, n_ctx.max(1)), begin: 0, next: 1 }
    }
}

impl Iterator for Windows {
    type Item = (usize, std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.n {
            return None;
        }
        let begin = self.begin;
        let window_end = begin.saturating_add(self.n_ctx);
        // Without overlap, the next window's first token has no context in it: score it
        // here, from this window's last position.
        let end = if self.stride == self.n_ctx { window_end.saturating_add(1) } else { window_end };
        let targets = self.next..end.min(self.n);
        self.begin = begin.saturating_add(self.stride);
        self.next = targets.end;
        Some((begin, targets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_score_every_token_once_with_context_from_their_window() {
        for n in 2..40 {
            for n_ctx in 1..10 {
                for stride in 1..=n_ctx {
                    let mut seen = vec![0; n];
                    for (begin, targets) in Windows::new(n, n_ctx, stride) {
                        for i in targets {
                            seen[i] += 1;
                            // Context: the window's tokens before i, at least one; only
                            // without overlap is i the token just past the window.
                            assert!(begin < i, "{n} {n_ctx} {stride}");
                            assert!(i - begin < n_ctx || (stride == n_ctx && i - begin == n_ctx));
                        }
                    }
                    assert_eq!(seen[0], 0);
                    assert!(seen[1..].iter().all(|&c| c == 1), "{n} {n_ctx} {stride}: {seen:?}");
                }
            }
        }
    }

    #[test]
    fn the_module_docs_example_is_what_the_windows_do() {
        let windows: Vec<_> = Windows::new(17, 8, 4).collect();
        assert_eq!(windows, vec![(0, 1..8), (4, 8..12), (8, 12..16), (12, 16..17)]);
        let no_overlap: Vec<_> = Windows::new(17, 8, 8).collect();
        assert_eq!(no_overlap, vec![(0, 1..9), (8, 9..17)]);
    }
}
