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
use crate::penalties::{History, Penalties};
use crate::sample::{Sampler, SamplingParams, logprob, top_logprobs};
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
    /// runs on one). For the engine this starts `threads - 1` worker threads (see
    /// [`Workspace::new`] for the errors).
    fn new_state(&self, threads: usize) -> Result<Self::State>;

    /// Runs `tokens` (at least one) at positions `cache.len()..`, extends `cache`, and
    /// returns the logits of the last `n` of them (all, if there are fewer), `[n, n_vocab]`.
    fn tail_logits<'s>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        state: &'s mut Self::State,
        n: usize,
    ) -> Result<&'s [f32]>;

    /// [`tail_logits`](Self::tail_logits) of the last token only: `[n_vocab]`.
    fn last_logits<'s>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        state: &'s mut Self::State,
    ) -> Result<&'s [f32]> {
        self.tail_logits(tokens, cache, state, 1)
    }

    /// The logits the last [`last_logits`](Self::last_logits) call left in `state`,
    /// `[n_vocab]` (empty before any call).
    fn stored_logits<'s>(&self, state: &'s Self::State) -> &'s [f32];
}

impl Forward for Engine {
    type State = Workspace;

    fn hparams(&self) -> &HParams {
        Engine::hparams(self)
    }

    fn new_state(&self, threads: usize) -> Result<Workspace> {
        Workspace::new(threads)
    }

    fn tail_logits<'s>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        state: &'s mut Workspace,
        n: usize,
    ) -> Result<&'s [f32]> {
        self.forward(tokens, cache, state, Logits::Tail(n))
    }

    fn stored_logits<'s>(&self, state: &'s Workspace) -> &'s [f32] {
        last_row(state.logits(), self.hparams().n_vocab)
    }
}

impl Forward for Model {
    type State = Vec<f32>;

    fn hparams(&self) -> &HParams {
        &self.hparams
    }

    fn new_state(&self, _threads: usize) -> Result<Vec<f32>> {
        Ok(Vec::new())
    }

    fn tail_logits<'s>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        state: &'s mut Vec<f32>,
        n: usize,
    ) -> Result<&'s [f32]> {
        *state = self.forward_cached(tokens, cache)?;
        let rows = n.min(tokens.len()).saturating_mul(self.hparams.n_vocab);
        Ok(&state[state.len() - rows..])
    }

    fn stored_logits<'s>(&self, state: &'s Vec<f32>) -> &'s [f32] {
        last_row(state, self.hparams.n_vocab)
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
    /// Greedy, or temperature / top-k / top-p / min-p / typical-p sampling.
    pub sampling: SamplingParams,
    /// Repetition, no-repeat n-gram, presence and frequency penalties, applied to the
    /// logits before sampling or the greedy choice (see [`crate::penalties`]).
    pub penalties: Penalties,
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
    /// 20 tokens, cached, greedy, no penalties, stopping at end-of-text, no stop strings, as
    /// many threads as the machine offers.
    fn default() -> Self {
        Self {
            max_tokens: 20,
            decoding: Decoding::Cached,
            sampling: SamplingParams::GREEDY,
            penalties: Penalties::NONE,
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
/// (`n_ctx`); otherwise [`Error::ContextOverflow`] (the sum is never computed in a way
/// that could wrap around).
pub fn check_fits(hparams: &HParams, prompt_tokens: usize, n_tokens: usize) -> Result<()> {
    let n_ctx = hparams.n_ctx;
    if prompt_tokens.checked_add(n_tokens).is_none_or(|total| total > n_ctx) {
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
///
/// Beyond the iterator:
/// - [`next_step`](Self::next_step) also gives the step's logits, the chosen token's
///   log-probability and the most likely alternatives, computed only when asked for;
/// - [`next_logits`](Self::next_logits) and [`choose`](Self::choose) let the caller pick
///   each token (a custom sampler, constrained decoding);
/// - [`feed`](Self::feed) and [`resume`](Self::resume) add text and continue (a second
///   turn), reusing the cache;
/// - [`with_state`](Self::with_state) runs on a borrowed [`Workspace`], so one set of
///   threads serves many generations in turn.
///
/// Constrained decoding in a few lines: only tokens the caller allows, the most likely of
/// them each time.
///
/// ```
/// use gpt2_edu::generate::{GenerateConfig, Generator};
/// use gpt2_edu::{dummy, Engine, Model, Tokenizer};
/// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
/// let engine = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
/// let config = GenerateConfig { max_tokens: 4, ..GenerateConfig::default() };
/// let mut generator = Generator::new(&engine, &encoder.encode("hello"), &config, None).unwrap();
/// let allowed = encoder.encode("the hello"); // never "world" or <UNK>
/// loop {
///     let logits = generator.next_logits().unwrap();
///     let best = *allowed.iter().max_by(|&&a, &&b| logits[a as usize].total_cmp(&logits[b as usize])).unwrap();
///     if generator.choose(best).unwrap().is_none() {
///         break; // the budget of 4 tokens is spent
///     }
/// }
/// assert!(generator.tokens()[1..].iter().all(|t| allowed.contains(t)));
/// assert_eq!(generator.tokens().len(), 5);
/// ```
#[derive(Debug)]
pub struct Generator<'m, M: Forward = Engine> {
    sequence: Sequence<'m, M>,
    sampler: Sampler,
    /// What the penalties remember of the text; `None` without penalties.
    history: Option<History>,
    /// The penalised logits of the last step, `[vocab_limit]` (reused from step to step).
    penalised: Vec<f32>,
    remaining: usize,
    end_of_text: Option<u32>,
    /// Ids from here up are never generated (a padded vocabulary's padding).
    vocab_limit: usize,
    /// Where the last generated token sits in `tokens`, if the last action generated one.
    last_generated: Option<usize>,
    stopped: Option<StopReason>,
}

/// One generated token, with the logits it was chosen from. Borrowed from the generator
/// until its next step; the log-probabilities are computed only when asked for.
#[derive(Debug, Clone, Copy)]
pub struct Step<'g> {
    token: u32,
    logits: &'g [f32],
}

impl<'g> Step<'g> {
    /// The token chosen.
    pub fn token(&self) -> u32 {
        self.token
    }

    /// The model's logits for this position, `[n_vocab]`, before any sampling filter.
    pub fn logits(&self) -> &'g [f32] {
        self.logits
    }

    /// The natural log of the probability the model gave the chosen token:
    /// `log_softmax(logits)[token]`, at temperature 1 and before top-k / top-p (the
    /// model's own distribution, as llama.cpp and OpenAI's `logprobs` report it; see
    /// [`logprob`]).
    pub fn logprob(&self) -> f64 {
        logprob(self.logits, self.token).unwrap_or(f64::NAN) // the logits were checked
    }

    /// The `n` most likely tokens and their log-probabilities, most likely first (as
    /// [`top_logprobs`]); `n = 0` costs nothing.
    pub fn top(&self, n: usize) -> Vec<(u32, f64)> {
        top_logprobs(self.logits, n).unwrap_or_default() // the logits were checked
    }
}

impl<'m, M: Forward> Generator<'m, M> {
    /// Starts after `prompt`, with a state of its own (for the engine, a [`Workspace`] of
    /// `config.threads` threads). `end_of_text` is the tokenizer's end-of-text id, if it
    /// has one (generation stops there when `config.stop_at_end_of_text`). Everything that
    /// can be wrong is reported here, before any work: an empty prompt, ids outside the
    /// vocabulary, bad sampling parameters, a thread count out of range, and a request
    /// that cannot fit in `n_ctx`.
    pub fn new(
        model: &'m M,
        prompt: &[u32],
        config: &GenerateConfig,
        end_of_text: Option<u32>,
    ) -> Result<Self> {
        Self::check(model, prompt, config)?;
        let state = Held::Owned(model.new_state(config.threads)?);
        Self::start(model, state, prompt, config, end_of_text)
    }

    /// [`new`](Self::new), on a borrowed state: for the engine, a [`Workspace`] whose
    /// threads and buffers serve one generation after another, so no thread is started
    /// here (`config.threads` is then not used).
    ///
    /// ```
    /// use gpt2_edu::generate::{GenerateConfig, Generator};
    /// use gpt2_edu::{dummy, Engine, Model, Tokenizer, Workspace};
    /// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    /// let engine = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
    /// let mut workspace = Workspace::new(2).unwrap(); // one worker thread, started once
    /// let config = GenerateConfig { max_tokens: 3, ..GenerateConfig::default() };
    /// for prompt in ["hello", "the world"] {
    ///     let ids = encoder.encode(prompt);
    ///     let generator = Generator::with_state(&engine, &mut workspace, &ids, &config, None).unwrap();
    ///     let new: Vec<u32> = generator.collect::<Result<_, _>>().unwrap();
    ///     assert_eq!(new.len(), 3);
    /// }
    /// ```
    pub fn with_state(
        model: &'m M,
        state: &'m mut M::State,
        prompt: &[u32],
        config: &GenerateConfig,
        end_of_text: Option<u32>,
    ) -> Result<Self> {
        Self::check(model, prompt, config)?;
        Self::start(model, Held::Lent(state), prompt, config, end_of_text)
    }

    /// The checks of [`new`](Self::new) that need no state.
    fn check(model: &M, prompt: &[u32], config: &GenerateConfig) -> Result<()> {
        let hp = model.hparams();
        if prompt.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        check_ids(hp, prompt)?;
        check_fits(hp, prompt.len(), config.max_tokens)?;
        config.sampling.validate()?;
        config.penalties.validate()
    }

    fn start(
        model: &'m M,
        state: Held<'m, M::State>,
        prompt: &[u32],
        config: &GenerateConfig,
        end_of_text: Option<u32>,
    ) -> Result<Self> {
        let capacity = prompt.len() + config.max_tokens; // fits: checked
        let cache = KvCache::with_capacity(model.hparams(), capacity)?;
        Self::start_with_cache(model, state, prompt, cache, config, end_of_text)
    }

    /// [`start`](Self::start), with a cache that already holds the keys and values of the
    /// first `cache.len()` (fewer than all) of the prompt's tokens.
    fn start_with_cache(
        model: &'m M,
        state: Held<'m, M::State>,
        prompt: &[u32],
        cache: KvCache,
        config: &GenerateConfig,
        end_of_text: Option<u32>,
    ) -> Result<Self> {
        let hp = model.hparams();
        let sequence = Sequence {
            model,
            decoding: config.decoding,
            tokens: prompt.to_vec(),
            cache,
            state,
            logits_for: None,
        };
        let history = match config.penalties.is_none() {
            true => None,
            false => {
                let mut history = History::new(config.penalties, hp.n_vocab)?;
                history.push_context(prompt)?;
                Some(history)
            }
        };
        Ok(Self {
            sequence,
            sampler: Sampler::new(config.sampling, config.seed)?,
            history,
            penalised: Vec::new(),
            remaining: config.max_tokens,
            end_of_text: end_of_text.filter(|_| config.stop_at_end_of_text),
            vocab_limit: hp.n_vocab,
            last_generated: None,
            stopped: None,
        })
    }

    /// The prompt and every token generated or fed so far.
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

    /// How many more tokens may be generated.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Never generates an id at or above `n_ids` (at most the model's `n_vocab`): a
    /// tokenizer with fewer tokens than the model's padded vocabulary cannot decode the
    /// padding. [`TextGenerator`] sets this to its tokenizer's size.
    pub fn limit_vocab(&mut self, n_ids: usize) -> Result<()> {
        if n_ids == 0 {
            return Err(Error::InvalidArgument("a vocabulary limit of 0 allows no token".into()));
        }
        self.vocab_limit = n_ids.min(self.sequence.model.hparams().n_vocab);
        Ok(())
    }

    /// The logits for the next position, `[n_vocab]`. Cached: runs only the tokens the
    /// cache has not seen (the whole prompt the first time, then one). Full: reruns every
    /// token. Asking again before the sequence changes returns the same logits without
    /// running the model. Logits that are not finite are [`Error::NonFiniteLogits`].
    pub fn next_logits(&mut self) -> Result<&[f32]> {
        self.sequence.next_logits()
    }

    /// Generates one token, or returns `None` once a stop condition holds (then see
    /// [`stop_reason`](Self::stop_reason)). The end-of-text token ends generation and is
    /// not returned. With penalties, the sampler (or the greedy choice) sees the penalised
    /// logits; if they leave no token possible (a no-repeat n-gram size that bans the whole
    /// vocabulary), that is an [`Error::InvalidSampling`].
    pub fn next_token(&mut self) -> Result<Option<u32>> {
        self.last_generated = None;
        if !self.may_continue() {
            return Ok(None);
        }
        let limit = self.vocab_limit;
        let position = self.sequence.tokens.len();
        let logits = self.sequence.next_logits()?; // borrows `sequence` only
        let (sampler, penalised) = (&mut self.sampler, &mut self.penalised);
        let next =
            choose_token(sampler, self.history.as_ref(), penalised, &logits[..limit], position)?;
        self.accept(next)
    }

    /// [`next_token`](Self::next_token), with the step's logits: the token's
    /// log-probability and the most likely alternatives on demand.
    ///
    /// ```
    /// use gpt2_edu::generate::{GenerateConfig, Generator};
    /// use gpt2_edu::{dummy, Engine, Model, Tokenizer};
    /// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    /// let engine = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
    /// let config = GenerateConfig { max_tokens: 2, ..GenerateConfig::default() };
    /// let mut generator = Generator::new(&engine, &encoder.encode("hello"), &config, None).unwrap();
    /// let step = generator.next_step().unwrap().unwrap();
    /// assert_eq!(step.token(), 1); // "world", greedy: the most likely
    /// assert_eq!(step.top(2)[0], (1, step.logprob()));
    /// assert!(step.logprob() < 0.0 && step.logits().len() == 4);
    /// ```
    pub fn next_step(&mut self) -> Result<Option<Step<'_>>> {
        Ok(match self.next_token()? {
            Some(_) => self.last_step(),
            None => None,
        })
    }

    /// The step that produced the last token, if the last thing this generator did was to
    /// generate one (by [`next_token`](Self::next_token) or [`choose`](Self::choose) after
    /// [`next_logits`](Self::next_logits)).
    pub fn last_step(&self) -> Option<Step<'_>> {
        let at = self.last_generated?;
        (self.sequence.logits_for == Some(at)).then(|| Step {
            token: self.sequence.tokens[at],
            logits: self.sequence.model.stored_logits(&self.sequence.state),
        })
    }

    /// Appends `token` as the next generated token, chosen by the caller instead of the
    /// sampler (see the constrained-decoding example above): it counts against the budget,
    /// as generated for the presence and frequency penalties, and the end-of-text token
    /// ends generation. Returns `None`, appending nothing, once a
    /// stop condition holds. An id outside the vocabulary is an error.
    pub fn choose(&mut self, token: u32) -> Result<Option<u32>> {
        self.last_generated = None;
        check_ids(self.sequence.model.hparams(), &[token])?;
        if !self.may_continue() {
            return Ok(None);
        }
        self.accept(token)
    }

    /// Appends `tokens` to the sequence as context, not as generated tokens (more text for
    /// a second turn, say): they count neither against the budget nor as end-of-text, and
    /// the next step runs them through the model, reusing the cache for everything before.
    /// The ids must be in the vocabulary and the sequence, with the tokens still allowed,
    /// must fit in `n_ctx`. For the penalties they are context like the prompt: the
    /// repetition penalty and the n-grams see them, presence and frequency count only
    /// generated tokens (those of earlier turns included).
    ///
    /// ```
    /// use gpt2_edu::generate::{GenerateConfig, Generator, StopReason};
    /// use gpt2_edu::{dummy, Engine, Model, Tokenizer};
    /// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    /// let engine = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
    /// let config = GenerateConfig { max_tokens: 2, ..GenerateConfig::default() };
    /// let mut generator = Generator::new(&engine, &encoder.encode("hello"), &config, None).unwrap();
    /// let first: Vec<u32> = generator.by_ref().collect::<Result<_, _>>().unwrap();
    /// generator.feed(&encoder.encode("the"))?; // the second turn's text
    /// generator.resume(2)?;                    // and two more tokens
    /// let second: Vec<u32> = generator.by_ref().collect::<Result<_, _>>().unwrap();
    /// assert_eq!(generator.tokens().len(), 1 + 2 + 1 + 2);
    /// // The same as one generation from the whole text:
    /// let whole = [&[0][..], &first, &[2]].concat();
    /// let again = Generator::new(&engine, &whole, &config, None)?.collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(second, again);
    /// # Ok::<(), gpt2_edu::Error>(())
    /// ```
    pub fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        self.last_generated = None;
        let hp = self.sequence.model.hparams();
        check_ids(hp, tokens)?;
        let total = self.sequence.tokens.len().checked_add(tokens.len());
        check_fits(hp, total.unwrap_or(usize::MAX), self.remaining)?;
        if let Some(history) = self.history.as_mut() {
            history.push_context(tokens)?; // ids checked above: cannot fail halfway
        }
        self.sequence.tokens.extend_from_slice(tokens);
        self.sequence.reserve(self.remaining);
        Ok(())
    }

    /// Allows `max_tokens` more generated tokens from here, and clears the stop reason, so
    /// that a generation that ended (at its budget, a stop string or end-of-text) can go
    /// on, typically after [`feed`](Self::feed). The sequence plus `max_tokens` must fit in
    /// `n_ctx`.
    pub fn resume(&mut self, max_tokens: usize) -> Result<()> {
        check_fits(self.sequence.model.hparams(), self.sequence.tokens.len(), max_tokens)?;
        self.remaining = max_tokens;
        self.stopped = None;
        self.sequence.reserve(max_tokens);
        Ok(())
    }

    /// Whether another step may run; notes `MaxTokens` when the budget is spent.
    fn may_continue(&mut self) -> bool {
        if self.stopped.is_none() && self.remaining == 0 {
            self.stopped = Some(StopReason::MaxTokens);
        }
        self.stopped.is_none()
    }

    /// Appends the chosen token, or ends the text if it is the end-of-text token.
    fn accept(&mut self, next: u32) -> Result<Option<u32>> {
        if Some(next) == self.end_of_text {
            self.stopped = Some(StopReason::EndOfText);
            return Ok(None);
        }
        if let Some(history) = self.history.as_mut() {
            history.push_generated(next)?; // (cannot fail: sampled and chosen ids are checked)
        }
        self.sequence.tokens.push(next);
        self.last_generated = Some(self.sequence.tokens.len() - 1);
        self.remaining -= 1;
        Ok(Some(next))
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
        self.last_generated = None;
        if !self.may_continue() {
            return Ok(None);
        }
        let limit = self.vocab_limit;
        let position = self.sequence.tokens.len();
        let logits = self.sequence.next_logits_traced(trace)?;
        let (sampler, penalised) = (&mut self.sampler, &mut self.penalised);
        let next =
            choose_token(sampler, self.history.as_ref(), penalised, &logits[..limit], position)?;
        self.accept(next)
    }
}

/// The next token from `logits` (`[vocab_limit]`): sampled (or greedy) from the logits
/// themselves, or, with penalties, from their penalised copy in `penalised`. A penalised
/// copy with no possible token left is an error that says why.
fn choose_token(
    sampler: &mut Sampler,
    history: Option<&History>,
    penalised: &mut Vec<f32>,
    logits: &[f32],
    position: usize,
) -> Result<u32> {
    let Some(history) = history else {
        return sampler.sample(logits);
    };
    penalised.clear();
    penalised.extend_from_slice(logits);
    history.apply(penalised);
    if penalised.iter().all(|&l| l == f32::NEG_INFINITY) {
        return Err(Error::InvalidSampling(format!(
            "after {position} tokens the penalties leave none of the {} tokens possible (a \
             no-repeat n-gram size bans every token that would repeat an n-gram of the text): \
             use a larger n-gram size, smaller penalties, or generate fewer tokens",
            logits.len()
        )));
    }
    sampler.sample(penalised)
}

/// Every id must be below `n_vocab`.
fn check_ids(hp: &HParams, ids: &[u32]) -> Result<()> {
    match ids.iter().find(|&&t| t as usize >= hp.n_vocab) {
        Some(&token) => Err(Error::TokenOutOfRange { token, n_vocab: hp.n_vocab }),
        None => Ok(()),
    }
}

/// A state the generator owns, or one lent to it.
#[derive(Debug)]
enum Held<'m, S> {
    Owned(S),
    Lent(&'m mut S),
}

impl<S> std::ops::Deref for Held<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        match self {
            Held::Owned(state) => state,
            Held::Lent(state) => state,
        }
    }
}

impl<S> std::ops::DerefMut for Held<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        match self {
            Held::Owned(state) => state,
            Held::Lent(state) => state,
        }
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
    state: Held<'m, M::State>,
    /// `Some(n)`: the state holds the logits for the position after the first `n` tokens.
    logits_for: Option<usize>,
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

    /// The logits for the position after `tokens`, `[n_vocab]`, computed once per position.
    fn next_logits(&mut self) -> Result<&[f32]> {
        let n = self.tokens.len();
        if self.logits_for != Some(n) {
            let unseen = self.unseen();
            self.logits_for = None;
            self.model.last_logits(&self.tokens[unseen], &mut self.cache, &mut self.state)?;
            self.logits_for = Some(n);
        }
        let logits = self.model.stored_logits(&self.state);
        check_finite(logits, n - 1)?;
        Ok(logits)
    }

    /// Makes room in the cache for the tokens so far plus `more`.
    fn reserve(&mut self, more: usize) {
        let capacity = self.tokens.len().saturating_add(more);
        self.cache.grow_to(self.model.hparams(), capacity);
    }
}

impl Sequence<'_, Model> {
    /// [`next_logits`](Self::next_logits) on the reference model, traced: always run, so
    /// that the trace records this step.
    fn next_logits_traced(&mut self, trace: &mut Trace) -> Result<&[f32]> {
        let n = self.tokens.len();
        if self.cache.len() == n {
            self.cache.clear(); // already run untraced (next_logits): rerun it all, traced
        }
        let unseen = self.unseen();
        self.logits_for = None;
        *self.state = self.model.forward_traced(&self.tokens[unseen], &mut self.cache, trace)?;
        self.logits_for = Some(n);
        let logits = last_row(&self.state, self.model.hparams.n_vocab);
        check_finite(logits, n - 1)?;
        Ok(logits)
    }
}

/// [`Error::NonFiniteLogits`] unless every logit is a finite number.
fn check_finite(logits: &[f32], position: usize) -> Result<()> {
    match logits.iter().all(|l| l.is_finite()) {
        true => Ok(()),
        false => Err(Error::NonFiniteLogits { position }),
    }
}

impl<M: Forward> Iterator for Generator<'_, M> {
    type Item = Result<u32>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_token().transpose()
    }
}

/// A prompt run once, to start several generations from (`--samples K`): its keys and
/// values are computed here, and each generation copies them instead of running the
/// prompt again. The prompt's last token is left for each generation's first step, so
/// that the step has logits of its own; since cached decoding equals full recomputation
/// bit for bit, each generation is exactly the one [`Generator::new`] would make.
///
/// ```
/// use gpt2_edu::generate::{GenerateConfig, Generator, Prefill};
/// use gpt2_edu::sample::SamplingParams;
/// use gpt2_edu::{dummy, Engine, Model, Tokenizer, Workspace};
/// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
/// let engine = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
/// let prompt = encoder.encode("hello world the");
/// let mut workspace = Workspace::new(1).unwrap();
/// let prefill = Prefill::new(&engine, &prompt, &mut workspace).unwrap(); // runs "hello world"
/// for seed in 1..4 {
///     let sampling = SamplingParams { temperature: 1.0, ..SamplingParams::GREEDY };
///     let config = GenerateConfig { max_tokens: 5, sampling, seed, ..GenerateConfig::default() };
///     let shared: Vec<u32> = prefill.generator_with_state(&mut workspace, &config, None).unwrap()
///         .collect::<Result<_, _>>().unwrap();
///     let alone: Vec<u32> = Generator::new(&engine, &prompt, &config, None).unwrap()
///         .collect::<Result<_, _>>().unwrap();
///     assert_eq!(shared, alone);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Prefill<'m, M: Forward> {
    model: &'m M,
    prompt: Vec<u32>,
    /// The keys and values of all but the prompt's last token.
    cache: KvCache,
}

impl<'m, M: Forward> Prefill<'m, M> {
    /// Runs all of `prompt` but its last token through `model`. The prompt must be
    /// non-empty, in the vocabulary, and fit in `n_ctx`.
    pub fn new(model: &'m M, prompt: &[u32], state: &mut M::State) -> Result<Self> {
        let hp = model.hparams();
        if prompt.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        check_ids(hp, prompt)?;
        check_fits(hp, prompt.len(), 0)?;
        let mut cache = KvCache::with_capacity(hp, prompt.len() - 1)?;
        if prompt.len() > 1 {
            model.tail_logits(&prompt[..prompt.len() - 1], &mut cache, state, 1)?;
        }
        Ok(Self { model, prompt: prompt.to_vec(), cache })
    }

    /// The prompt.
    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// A generation after the prompt, with a state of its own (as [`Generator::new`]).
    pub fn generator(
        &self,
        config: &GenerateConfig,
        end_of_text: Option<u32>,
    ) -> Result<Generator<'m, M>> {
        Generator::check(self.model, &self.prompt, config)?;
        let state = Held::Owned(self.model.new_state(config.threads)?);
        self.start(state, config, end_of_text)
    }

    /// A generation after the prompt, on a borrowed state (as [`Generator::with_state`]).
    pub fn generator_with_state<'s>(
        &'s self,
        state: &'s mut M::State,
        config: &GenerateConfig,
        end_of_text: Option<u32>,
    ) -> Result<Generator<'s, M>> {
        Generator::check(self.model, &self.prompt, config)?;
        let prefill: &'s Prefill<'s, M> = self; // (the model is borrowed for 's too)
        prefill.start(Held::Lent(state), config, end_of_text)
    }

    fn start(
        &self,
        state: Held<'m, M::State>,
        config: &GenerateConfig,
        end_of_text: Option<u32>,
    ) -> Result<Generator<'m, M>> {
        let capacity = self.prompt.len() + config.max_tokens; // fits: checked
        let cache = self.cache.copy_with_room(self.model.hparams(), capacity);
        Generator::start_with_cache(self.model, state, &self.prompt, cache, config, end_of_text)
    }
}

/// Text generation: a [`Generator`] plus a tokenizer. Yields pieces of text as tokens are
/// generated, never half a UTF-8 character, and stops at stop strings (the stop string
/// itself is not yielded; text that might be its beginning is held back until it is
/// certain). Each step decodes only the new token. `Send` when the model is `Sync` and
/// the tokenizer `Sync` (as [`Engine`] and [`Bpe`](crate::bpe::Bpe) are), so a
/// generation can move to another thread.
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
///
/// Each piece's token, with its log-probability and alternatives, is
/// [`last_step`](Self::last_step):
///
/// ```
/// use gpt2_edu::generate::{GenerateConfig, TextGenerator};
/// use gpt2_edu::{dummy, Engine, Model};
/// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
/// let engine = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
/// let config = GenerateConfig { max_tokens: 3, ..GenerateConfig::default() };
/// let mut text = TextGenerator::new(&engine, &encoder, "hello", &config).unwrap();
/// while let Some(piece) = text.next_text().unwrap() {
///     let step = text.last_step().unwrap();
///     let p = step.logprob().exp();
///     println!("{piece:?}: p = {p:.3}, alternatives {:?}", step.top(2));
///     assert!(p > 0.0 && p <= 1.0);
/// }
/// ```
pub struct TextGenerator<'a, M: Forward = Engine, T: Tokenizer + ?Sized + 'a = dyn Tokenizer + 'a> {
    tokens: Generator<'a, M>,
    stream: TextStream<'a, T>,
    prompt_text: String,
    stop_strings: Vec<String>,
    held: String,
    finished: bool,
}

impl<'a, M: Forward, T: Tokenizer + ?Sized> TextGenerator<'a, M, T> {
    /// Encodes `prompt` and prepares to continue it (see [`Generator::new`] for the
    /// errors). Ids the tokenizer has no text for (the padding of a model's vocabulary
    /// larger than the tokenizer's) are never generated.
    pub fn new(
        model: &'a M,
        tokenizer: &'a T,
        prompt: &str,
        config: &GenerateConfig,
    ) -> Result<Self> {
        let prompt_ids = tokenizer.encode(prompt);
        let tokens = Generator::new(model, &prompt_ids, config, tokenizer.end_of_text())?;
        Self::start(tokens, tokenizer, &prompt_ids, config)
    }

    /// [`new`](Self::new) on a borrowed state (see [`Generator::with_state`]): one
    /// [`Workspace`] can serve many generations in turn.
    pub fn with_state(
        model: &'a M,
        state: &'a mut M::State,
        tokenizer: &'a T,
        prompt: &str,
        config: &GenerateConfig,
    ) -> Result<Self> {
        let prompt_ids = tokenizer.encode(prompt);
        let eot = tokenizer.end_of_text();
        let tokens = Generator::with_state(model, state, &prompt_ids, config, eot)?;
        Self::start(tokens, tokenizer, &prompt_ids, config)
    }

    /// Text generation around a generator made some other way (from a [`Prefill`], say):
    /// its tokens so far are the prompt; `config` gives the stop strings.
    pub fn from_generator(
        tokens: Generator<'a, M>,
        tokenizer: &'a T,
        config: &GenerateConfig,
    ) -> Result<Self> {
        let prompt_ids = tokens.tokens().to_vec();
        Self::start(tokens, tokenizer, &prompt_ids, config)
    }

    fn start(
        mut tokens: Generator<'a, M>,
        tokenizer: &'a T,
        prompt_ids: &[u32],
        config: &GenerateConfig,
    ) -> Result<Self> {
        tokens.limit_vocab(tokenizer.n_vocab())?;
        Ok(Self {
            tokens,
            stream: TextStream::new(tokenizer, prompt_ids),
            prompt_text: tokenizer.decode(prompt_ids)?,
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

    /// The step of the token the last [`next_text`](Self::next_text) generated (its
    /// logits, log-probability and alternatives), if it generated one.
    pub fn last_step(&self) -> Option<Step<'_>> {
        self.tokens.last_step()
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

    /// Adds `text` to the sequence as context (a second turn), not as generated text: it is
    /// not yielded and cannot complete a stop string. Returns the generated text that was
    /// held back (the possible beginning of a stop string, half a character), which the
    /// new text makes final. See [`Generator::feed`] for the checks; follow with
    /// [`resume`](Self::resume) to generate again after generation ended.
    pub fn feed_text(&mut self, text: &str) -> Result<String> {
        let ids = self.stream.tokenizer().encode(text);
        self.tokens.feed(&ids)?;
        let mut released = std::mem::take(&mut self.held);
        released.push_str(&self.stream.skip(&ids));
        Ok(released)
    }

    /// Allows `max_tokens` more tokens and continues after generation ended (see
    /// [`Generator::resume`]).
    pub fn resume(&mut self, max_tokens: usize) -> Result<()> {
        self.tokens.resume(max_tokens)?;
        self.finished = false;
        Ok(())
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

impl<T: Tokenizer + ?Sized> TextGenerator<'_, Model, T> {
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

impl<M: Forward, T: Tokenizer + ?Sized> Iterator for TextGenerator<'_, M, T> {
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
