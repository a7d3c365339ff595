//! Generation: the autoregressive loop. Run the model, choose the next token (the most
//! likely one, or a sample), append it, repeat.
//!
//! ```text
//! tokens = prompt
//! until a stop condition (max tokens, <|endoftext|>, a stop string):
//!     logits = model(tokens)[last]          [n_vocab]
//!     next   = argmax(logits)  or  sample(logits)
//!     tokens.push(next)
//! ```
//!
//! Two streaming layers: [`Generator`] yields token ids one at a time (an iterator that
//! owns the KV cache and the sampler); [`TextGenerator`] adds a tokenizer and yields text
//! pieces that never split a UTF-8 character, and stops at stop strings. [`generate`],
//! [`gen_text`](crate::gen_text) and the command line are all built on them.
//!
//! Both run on anything that implements [`Forward`]: the fast [`Engine`] (what generation
//! normally runs on) or the reference [`Model`] (whose steps can be traced, see
//! [`Generator::next_token_traced`]). The two give the same logits bit for bit, so the
//! same tokens.
//!
//! With [`Decoding::Cached`] the model sees the prompt once (prefill) and then only the one
//! newest token per step, reading everything earlier from the [`KvCache`]. With
//! [`Decoding::FullRecompute`] every step reruns the whole sequence, as the exercise's
//! reference does. Both produce the same tokens (and bit-identical logits).

use std::fmt::Debug;

use crate::error::{Error, Result};
use crate::fast::{Engine, Logits, Workspace, default_threads};
use crate::hparams::HParams;
use crate::kv_cache::KvCache;
use crate::model::Model;
use crate::sample::{Sampler, SamplingParams};
use crate::tokenizer::{TextStream, Tokenizer};
use crate::trace::Trace;

pub use crate::sample::argmax;

/// How each step's logits are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoding {
    /// Prefill the prompt into a KV cache, then one new position per step: `O(n)` attention
    /// work per token.
    Cached,
    /// Rerun every position from scratch at every step: `O(n^2)` per token.
    FullRecompute,
}

/// What a [`Generator`] runs: the fast [`Engine`] or the reference [`Model`]. Both compute
/// the same logits, bit for bit (`tests/engine.rs`).
pub trait Forward {
    /// What the forward pass keeps from step to step: the engine's [`Workspace`] (its
    /// threads and buffers); for the reference model, the last logits.
    type State: Debug;

    /// The sizes.
    fn hparams(&self) -> &HParams;

    /// A fresh state; `threads` is what the engine's products use (the reference model
    /// runs on one).
    fn new_state(&self, threads: usize) -> Self::State;

    /// Runs `tokens` (at least one) at positions `cache.len()..`, extends `cache`, and
    /// returns the logits of the last of them, `[n_vocab]`.
    fn last_logits<'s>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        state: &'s mut Self::State,
    ) -> Result<&'s [f32]>;
}

impl Forward for Engine {
    type State = Workspace;

    fn hparams(&self) -> &HParams {
        Engine::hparams(self)
    }

    fn new_state(&self, threads: usize) -> Workspace {
        Workspace::new(threads)
    }

    fn last_logits<'s>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        state: &'s mut Workspace,
    ) -> Result<&'s [f32]> {
        self.forward(tokens, cache, state, Logits::Last)
    }
}

impl Forward for Model {
    type State = Vec<f32>;

    fn hparams(&self) -> &HParams {
        &self.hparams
    }

    fn new_state(&self, _threads: usize) -> Vec<f32> {
        Vec::new()
    }

    fn last_logits<'s>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        state: &'s mut Vec<f32>,
    ) -> Result<&'s [f32]> {
        *state = self.forward_cached(tokens, cache)?;
        Ok(last_row(state, self.hparams.n_vocab))
    }
}

/// The last `n_vocab` logits: the last position's row.
fn last_row(logits: &[f32], n_vocab: usize) -> &[f32] {
    &logits[logits.len().saturating_sub(n_vocab)..]
}

/// The default seed of the sampler (any nonzero seed will do; this one is fixed so that
/// runs repeat).
pub const DEFAULT_SAMPLING_SEED: u64 = 42;

/// Everything about one generation except the model and the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// The most tokens to generate.
    pub max_tokens: usize,
    /// Cached decoding or full recomputation (same tokens either way).
    pub decoding: Decoding,
    /// Greedy, or temperature / top-k / top-p sampling.
    pub sampling: SamplingParams,
    /// The sampler's xorshift seed (not 0).
    pub seed: u64,
    /// Stop when the model produces its end-of-text token (GPT-2's `<|endoftext|>`).
    pub stop_at_end_of_text: bool,
    /// Stop when the text contains one of these; the text before it is kept.
    pub stop_strings: Vec<String>,
    /// Threads for the engine's products (results are the same for any number).
    pub threads: usize,
}

impl Default for GenerateConfig {
    /// 20 tokens, cached, greedy, stopping at end-of-text, no stop strings, as many threads
    /// as the machine offers.
    fn default() -> Self {
        Self {
            max_tokens: 20,
            decoding: Decoding::Cached,
            sampling: SamplingParams::GREEDY,
            seed: DEFAULT_SAMPLING_SEED,
            stop_at_end_of_text: true,
            stop_strings: Vec::new(),
            threads: default_threads(),
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` were generated.
    MaxTokens,
    /// The model produced its end-of-text token (which is not part of the output).
    EndOfText,
    /// The text reached this stop string (which is not part of the output).
    StopString(String),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::MaxTokens => write!(f, "reached the maximum number of tokens"),
            StopReason::EndOfText => write!(f, "the model ended the text (<|endoftext|>)"),
            StopReason::StopString(s) => write!(f, "reached the stop string {s:?}"),
        }
    }
}

/// Checks, before any work, that `prompt_tokens + n_tokens` fit in the model's context
/// (`n_ctx`); otherwise [`Error::ContextOverflow`].
pub fn check_fits(hparams: &HParams, prompt_tokens: usize, n_tokens: usize) -> Result<()> {
    let n_ctx = hparams.n_ctx;
    if prompt_tokens.saturating_add(n_tokens) > n_ctx {
        return Err(Error::ContextOverflow { prompt_tokens, new_tokens: n_tokens, n_ctx });
    }
    Ok(())
}

/// Token-by-token generation on an [`Engine`] (or the reference [`Model`]): owns the tokens
/// so far, the KV cache and the sampler, and yields one new token id per
/// [`next_token`](Self::next_token) (or per `next()`, as an [`Iterator`]).
///
/// ```
/// use gpt2_edu::generate::{GenerateConfig, Generator, StopReason};
/// use gpt2_edu::{dummy, Engine, Model, Tokenizer};
/// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
/// let engine = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
/// let config = GenerateConfig { max_tokens: 5, ..GenerateConfig::default() };
/// let mut generator = Generator::new(&engine, &encoder.encode("hello"), &config, None).unwrap();
/// let ids: Vec<u32> = generator.by_ref().collect::<Result<_, _>>().unwrap();
/// assert_eq!(ids, vec![1, 1, 1, 3, 3]);
/// assert_eq!(generator.stop_reason(), Some(&StopReason::MaxTokens));
/// ```
#[derive(Debug)]
pub struct Generator<'m, M: Forward = Engine> {
    sequence: Sequence<'m, M>,
    sampler: Sampler,
    remaining: usize,
    end_of_text: Option<u32>,
    stopped: Option<StopReason>,
}

impl<'m, M: Forward> Generator<'m, M> {
    /// Starts after `prompt`. `end_of_text` is the tokenizer's end-of-text id, if it has one
    /// (generation stops there when `config.stop_at_end_of_text`). Everything that can be
    /// wrong is reported here, before any work: an empty prompt, ids outside the
    /// vocabulary, bad sampling parameters, and a request that cannot fit in `n_ctx`.
    pub fn new(
        model: &'m M,
        prompt: &[u32],
        config: &GenerateConfig,
        end_of_text: Option<u32>,
    ) -> Result<Self> {
        let hp = model.hparams();
        if prompt.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if let Some(&token) = prompt.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(Error::TokenOutOfRange { token, n_vocab: hp.n_vocab });
        }
        check_fits(hp, prompt.len(), config.max_tokens)?;
        let sampler = Sampler::new(config.sampling, config.seed)?;
        let sequence = Sequence {
            model,
            decoding: config.decoding,
            tokens: prompt.to_vec(),
            cache: KvCache::with_capacity(hp, prompt.len() + config.max_tokens),
            state: model.new_state(config.threads),
        };
        Ok(Self {
            sequence,
            sampler,
            remaining: config.max_tokens,
            end_of_text: end_of_text.filter(|_| config.stop_at_end_of_text),
            stopped: None,
        })
    }

    /// The prompt and every token generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.sequence.tokens
    }

    /// The KV cache (under full recomputation, refilled from scratch at every step).
    pub fn cache(&self) -> &KvCache {
        &self.sequence.cache
    }

    /// Why generation ended, once it has.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.stopped.as_ref()
    }

    /// The logits for the next position, `[n_vocab]`. Cached: runs only the tokens the
    /// cache has not seen (the whole prompt the first time, then one). Full: reruns every
    /// token.
    pub fn next_logits(&mut self) -> Result<&[f32]> {
        self.sequence.next_logits()
    }

    /// Generates one token, or returns `None` once a stop condition holds (then see
    /// [`stop_reason`](Self::stop_reason)). The end-of-text token ends generation and is
    /// not returned.
    pub fn next_token(&mut self) -> Result<Option<u32>> {
        if !self.may_continue() {
            return Ok(None);
        }
        let logits = self.sequence.next_logits()?; // borrows `sequence` only
        let next = self.sampler.sample(logits);
        Ok(self.accept(next))
    }

    /// Whether another step may run; notes `MaxTokens` when the budget is spent.
    fn may_continue(&mut self) -> bool {
        if self.stopped.is_none() && self.remaining == 0 {
            self.stopped = Some(StopReason::MaxTokens);
        }
        self.stopped.is_none()
    }

    /// Appends the chosen token, or ends the text if it is the end-of-text token.
    fn accept(&mut self, next: u32) -> Option<u32> {
        if Some(next) == self.end_of_text {
            self.stopped = Some(StopReason::EndOfText);
            return None;
        }
        self.sequence.tokens.push(next);
        self.remaining -= 1;
        Some(next)
    }

    /// Ends generation early for `reason` (used for stop strings).
    fn stop(&mut self, reason: StopReason) {
        self.stopped = Some(reason);
    }
}

impl<'m> Generator<'m, Model> {
    /// [`next_token`](Self::next_token) on the reference model, recording every
    /// intermediate tensor of this step's forward pass into `trace` (all the new positions'
    /// logits included). The tokens are the same as without the trace.
    pub fn next_token_traced(&mut self, trace: &mut Trace) -> Result<Option<u32>> {
        if !self.may_continue() {
            return Ok(None);
        }
        let logits = self.sequence.next_logits_traced(trace)?;
        let next = self.sampler.sample(logits);
        Ok(self.accept(next))
    }
}

/// What running the model needs, apart from choosing tokens: the tokens so far, the cache and
/// the forward pass's state. Kept apart from the sampler so both can be borrowed at once.
#[derive(Debug)]
struct Sequence<'m, M: Forward> {
    model: &'m M,
    decoding: Decoding,
    tokens: Vec<u32>,
    cache: KvCache,
    state: M::State,
}

impl<M: Forward> Sequence<'_, M> {
    /// The positions the next forward pass runs. Cached: the ones the cache has not seen.
    /// Full: all of them, with the cache emptied so that every position is recomputed.
    fn unseen(&mut self) -> std::ops::Range<usize> {
        if self.decoding == Decoding::FullRecompute {
            self.cache.clear();
        }
        self.cache.len()..self.tokens.len()
    }

    /// The logits for the position after `tokens`, `[n_vocab]`.
    fn next_logits(&mut self) -> Result<&[f32]> {
        let unseen = self.unseen();
        self.model.last_logits(&self.tokens[unseen], &mut self.cache, &mut self.state)
    }
}

impl Sequence<'_, Model> {
    /// [`next_logits`](Self::next_logits) on the reference model, traced.
    fn next_logits_traced(&mut self, trace: &mut Trace) -> Result<&[f32]> {
        let unseen = self.unseen();
        self.state = self.model.forward_traced(&self.tokens[unseen], &mut self.cache, trace)?;
        Ok(last_row(&self.state, self.model.hparams.n_vocab))
    }
}

impl<M: Forward> Iterator for Generator<'_, M> {
    type Item = Result<u32>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_token().transpose()
    }
}

/// Text generation: a [`Generator`] plus a tokenizer. Yields pieces of text as tokens are
/// generated, never half a UTF-8 character, and stops at stop strings (the stop string
/// itself is not yielded; text that might be its beginning is held back until it is
/// certain).
///
/// ```
/// use gpt2_edu::generate::{GenerateConfig, StopReason, TextGenerator};
/// use gpt2_edu::{dummy, Engine, Model};
/// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
/// let engine = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
/// let config = GenerateConfig { max_tokens: 5, stop_strings: vec!["<UNK>".into()], ..GenerateConfig::default() };
/// let mut text = TextGenerator::new(&engine, &encoder, "hello", &config).unwrap();
/// let generated: String = text.by_ref().collect::<Result<_, _>>().unwrap();
/// assert_eq!(generated, " world world world ");
/// assert_eq!(text.stop_reason(), Some(&StopReason::StopString("<UNK>".into())));
/// ```
pub struct TextGenerator<'a, M: Forward = Engine> {
    tokens: Generator<'a, M>,
    stream: TextStream<'a, dyn Tokenizer + 'a>,
    prompt_text: String,
    stop_strings: Vec<String>,
    held: String,
    finished: bool,
}

impl<'a, M: Forward> TextGenerator<'a, M> {
    /// Encodes `prompt` and prepares to continue it (see [`Generator::new`] for the errors).
    pub fn new(
        model: &'a M,
        tokenizer: &'a (dyn Tokenizer + 'a),
        prompt: &str,
        config: &GenerateConfig,
    ) -> Result<Self> {
        let prompt_ids = tokenizer.encode(prompt);
        let tokens = Generator::new(model, &prompt_ids, config, tokenizer.end_of_text())?;
        Ok(Self {
            tokens,
            stream: TextStream::new(tokenizer, &prompt_ids),
            prompt_text: tokenizer.decode(&prompt_ids)?,
            stop_strings: config.stop_strings.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
            finished: false,
        })
    }

    /// The prompt as the model sees it (decoded from its token ids).
    pub fn prompt_text(&self) -> &str {
        &self.prompt_text
    }

    /// The token-level generator (token ids so far, the cache, the stop reason).
    pub fn tokens(&self) -> &Generator<'a, M> {
        &self.tokens
    }

    /// Why generation ended, once it has.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.tokens.stop_reason()
    }

    /// Generates one token and returns the text that became certain (possibly empty: half
    /// a character, or the possible beginning of a stop string, waits), or `None` once
    /// generation has ended.
    pub fn next_text(&mut self) -> Result<Option<String>> {
        if self.finished {
            return Ok(None);
        }
        let token = self.tokens.next_token()?;
        self.text_after(token)
    }

    /// Takes in the token just generated (`None`: generation ended) and returns the text
    /// that became certain.
    fn text_after(&mut self, token: Option<u32>) -> Result<Option<String>> {
        match token {
            Some(id) => {
                let piece = self.stream.push(id)?;
                self.held.push_str(&piece);
            }
            None => {
                let rest = self.stream.finish();
                self.held.push_str(&rest);
                self.finished = true;
            }
        }
        if let Some((at, stop)) = self.first_stop_string() {
            self.held.truncate(at);
            self.tokens.stop(StopReason::StopString(stop));
            self.finished = true;
        }
        if self.finished {
            let rest = std::mem::take(&mut self.held);
            return Ok(Some(rest).filter(|rest| !rest.is_empty()));
        }
        let ready = self.held.len() - self.longest_partial_stop();
        Ok(Some(self.held.drain(..ready).collect()))
    }

    /// The earliest stop string in the held text: (byte offset, stop string).
    fn first_stop_string(&self) -> Option<(usize, String)> {
        self.stop_strings
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|at| (at, s.clone())))
            .min_by_key(|(at, _)| *at)
    }

    /// Bytes at the end of the held text that could be the beginning of a stop string.
    fn longest_partial_stop(&self) -> usize {
        self.stop_strings
            .iter()
            .flat_map(|s| (1..s.len()).filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|prefix| self.held.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0)
    }
}

impl TextGenerator<'_, Model> {
    /// [`next_text`](Self::next_text) on the reference model, recording this step's
    /// tensors into `trace` (see [`Generator::next_token_traced`]).
    pub fn next_text_traced(&mut self, trace: &mut Trace) -> Result<Option<String>> {
        if self.finished {
            return Ok(None);
        }
        let token = self.tokens.next_token_traced(trace)?;
        self.text_after(token)
    }
}

impl<M: Forward> Iterator for TextGenerator<'_, M> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_text().transpose()
    }
}

/// Generates `n_tokens` tokens greedily after `prompt` and returns only the new ids (the
/// original exercise's `generate`), built on [`Generator`]: on the reference [`Model`] or
/// on an [`Engine`], with the same result. The whole sequence, `prompt.len() + n_tokens`,
/// must fit in `n_ctx`; this is checked before any work is done.
pub fn generate<M: Forward>(
    model: &M,
    prompt: &[u32],
    n_tokens: usize,
    decoding: Decoding,
) -> Result<Vec<u32>> {
    let config = GenerateConfig { max_tokens: n_tokens, decoding, ..GenerateConfig::default() };
    Generator::new(model, prompt, &config, None)?.collect()
}
