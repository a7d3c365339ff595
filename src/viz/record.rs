//! What the pictures are made of, and how a generation is recorded: which heads to keep
//! ([`HeadId`], [`Heads`], [`ExplainOptions`]), what one step keeps ([`StepView`]: its
//! attention maps, candidates and cache fill) and a whole run ([`Explanation`]); the
//! [`Recorder`] that reads them from the reference model's trace after each step, and
//! [`explain_generation`], which runs that loop.

pub use crate::attention::HeadId;
use crate::error::Result;
use crate::generate::{Decoding, GenerateConfig, Generator, StopReason, TextGenerator};
use crate::hparams::HParams;
use crate::kv_cache::KvCache;
use crate::model::Model;
use crate::sample::{SamplingParams, distribution};
use crate::tokenizer::Tokenizer;
use crate::trace::{Trace, TracedTensor};

use super::lens::{LogitLens, TokenSurprise, token_text};

/// Which heads' attention maps to record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Heads {
    /// Every head of every layer: `n_layer * n_head` maps per step (144 for GPT-2 124M).
    #[default]
    All,
    /// Only these.
    Only(Vec<HeadId>),
}

impl Heads {
    /// The chosen heads in layer-then-head order, without repeats, each checked against
    /// `hparams`: a layer or head the model does not have is an error.
    pub fn resolve(&self, hparams: &HParams) -> Result<Vec<HeadId>> {
        match self {
            Heads::All => Ok((0..hparams.n_layer)
                .flat_map(|layer| (0..hparams.n_head).map(move |head| HeadId { layer, head }))
                .collect()),
            Heads::Only(heads) => {
                for head in heads {
                    head.check(hparams)?;
                }
                let mut heads = heads.clone();
                heads.sort();
                heads.dedup();
                Ok(heads)
            }
        }
    }
}

/// How many candidates [`ExplainOptions::default`] keeps per step.
pub const DEFAULT_TOP_N: usize = 10;

/// What [`explain_generation`] and [`Recorder`] keep from each step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainOptions {
    /// Whose attention maps to keep (all by default).
    pub heads: Heads,
    /// How many of the most likely next tokens to keep per step; the others are summed
    /// into one "other" probability.
    pub top_n: usize,
    /// Whether to compute each step's [`LogitLens`] (`n_layer + 1` extra products with the
    /// embedding per position: for GPT-2 124M, about four times the step's own work).
    pub lens: bool,
}

impl Default for ExplainOptions {
    /// Every head, the [`DEFAULT_TOP_N`] most likely tokens.
    fn default() -> Self {
        Self { heads: Heads::All, top_n: DEFAULT_TOP_N, lens: false }
    }
}

// ----------------------------------------------------------------------------------------
// What is recorded

/// One head's attention weights for the queries of one step (or of several steps stacked,
/// see [`Explanation::attention_over_run`]): `[n_queries, n_keys]`, row-major.
///
/// The queries are the last `n_queries` positions: row `i` is the query at position
/// `n_keys - n_queries + i`, which sees keys `0..=` that position. Its later keys are the
/// masked future, with weight exactly 0.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionMap {
    /// Which layer and head.
    pub head: HeadId,
    /// The first step whose queries are shown (1-based).
    pub first_step: usize,
    /// The last step whose queries are shown (equal to `first_step` for one step).
    pub last_step: usize,
    /// Rows: the query positions run (`n_new` of the step).
    pub n_queries: usize,
    /// Columns: every key position so far.
    pub n_keys: usize,
    /// The weights, `[n_queries, n_keys]`; each row sums to 1.
    pub weights: Vec<f32>,
}

impl AttentionMap {
    /// Reads `head`'s weights of `step` from `trace` (the last ones recorded); `None` if the
    /// trace does not hold them with a `[n_new, n_keys]` shape (`n_new <= n_keys`).
    pub fn from_trace(trace: &Trace, head: HeadId, step: usize) -> Option<Self> {
        let tensor = last_tensor(trace, &head.trace_name())?;
        let &[n_queries, n_keys] = tensor.shape.as_slice() else {
            return None;
        };
        let consistent = n_queries <= n_keys && tensor.data.len() == n_queries * n_keys;
        consistent.then(|| Self {
            head,
            first_step: step,
            last_step: step,
            n_queries,
            n_keys,
            weights: tensor.data.clone(),
        })
    }

    /// The sequence position of query row `row`: `n_keys - n_queries + row`.
    pub fn query_position(&self, row: usize) -> usize {
        self.n_keys.saturating_sub(self.n_queries) + row
    }

    /// Whether key `key` is in the future of query row `row` (masked: weight 0).
    pub fn is_masked(&self, row: usize, key: usize) -> bool {
        key > self.query_position(row)
    }

    /// The weight query row `row` gives key `key` (0 outside the map).
    pub fn weight(&self, row: usize, key: usize) -> f32 {
        if key >= self.n_keys {
            return 0.0;
        }
        self.weights.get(row * self.n_keys + key).copied().unwrap_or(0.0)
    }

    /// "layer 0, head 1, step 3" or "layer 0, head 1, steps 1-5 stacked".
    pub fn title(&self) -> String {
        let HeadId { layer, head } = self.head;
        if self.first_step == self.last_step {
            format!("layer {layer}, head {head}, step {}", self.first_step)
        } else {
            let (first, last) = (self.first_step, self.last_step);
            format!("layer {layer}, head {head}, steps {first}-{last} stacked")
        }
    }
}

/// One possible next token and its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its id.
    pub id: u32,
    /// Its text (decoded alone).
    pub text: String,
    /// Its probability in the shown distribution (see [`shown_sampling`]).
    pub probability: f64,
}

/// The KV cache of one layer after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerFill {
    /// Positions whose keys and values are stored.
    pub positions: usize,
    /// Bytes they take: `2 * positions * n_embd * 4`.
    pub bytes: usize,
    /// Bytes allocated for the layer: `2 * capacity * n_embd * 4`.
    pub capacity_bytes: usize,
}

/// How full the KV cache is, layer by layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFill {
    /// Positions the cache can hold.
    pub capacity: usize,
    /// One entry per layer.
    pub layers: Vec<LayerFill>,
}

impl CacheFill {
    /// Measures `cache`.
    pub fn of(cache: &KvCache) -> Self {
        let per_layer_capacity = cache.memory_bytes().checked_div(cache.n_layer()).unwrap_or(0);
        let layers = (0..cache.n_layer())
            .map(|_| LayerFill {
                positions: cache.len(),
                bytes: 2 * cache.len() * cache.n_embd() * size_of::<f32>(),
                capacity_bytes: per_layer_capacity,
            })
            .collect();
        Self { capacity: cache.capacity(), layers }
    }

    /// Bytes used and allocated, over all layers.
    pub fn total_bytes(&self) -> (usize, usize) {
        let used = self.layers.iter().map(|l| l.bytes).sum();
        let allocated = self.layers.iter().map(|l| l.capacity_bytes).sum();
        (used, allocated)
    }
}

/// Everything the pictures show about one generation step: one forward pass and the
/// choice after it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    /// 1-based.
    pub number: usize,
    /// The text of each token the model had seen, one per position (`n_keys` of them).
    pub seen: Vec<String>,
    /// The text of all those tokens together.
    pub seen_text: String,
    /// The token chosen: the one appended, or the end-of-text token when it ended the text
    /// (then it is not part of the output). `None` only if neither is known.
    pub chosen: Option<u32>,
    /// Whether the chosen token ended the text (`<|endoftext|>`).
    pub ended_text: bool,
    /// The recorded heads' attention maps, `[n_new, n_keys]` each, in layer-then-head order.
    pub attention: Vec<AttentionMap>,
    /// The most likely next tokens, most likely first (ties: lower id first), followed by
    /// the chosen token if a sampler picked one outside them.
    pub candidates: Vec<Candidate>,
    /// The summed probability of every token not in `candidates`.
    pub other_probability: f64,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// The sampling parameters of the run (the shown distribution is
    /// [`shown_sampling`] of them).
    pub sampling: SamplingParams,
    /// The KV cache after this step.
    pub cache: CacheFill,
    /// The logit lens of the positions run this step, if asked for
    /// ([`ExplainOptions::lens`]).
    pub lens: Option<LogitLens>,
    /// The surprise of each token this step's logits newly predict that is in the text:
    /// at the first step every prompt token from the second and the chosen one, then the
    /// chosen one (none when it ended the text).
    pub surprise: Vec<TokenSurprise>,
}

impl StepView {
    /// The attention map of `head`, if it was recorded.
    pub fn attention_map(&self, head: HeadId) -> Option<&AttentionMap> {
        self.attention.iter().find(|map| map.head == head)
    }

    /// The chosen token's candidate entry, if any.
    pub fn chosen_candidate(&self) -> Option<&Candidate> {
        let chosen = self.chosen?;
        self.candidates.iter().find(|c| c.id == chosen)
    }
}

/// A whole recorded generation: the tokens and every step.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The prompt's token ids, then the generated ones.
    pub tokens: Vec<u32>,
    /// Each token's text, decoded alone.
    pub token_texts: Vec<String>,
    /// How many of `tokens` are the prompt.
    pub n_prompt: usize,
    /// All the tokens' text, decoded together (a stop string, if reached, is included: it
    /// is part of the last token).
    pub text: String,
    /// One entry per forward pass, in order.
    pub steps: Vec<StepView>,
    /// Why generation ended.
    pub stop_reason: Option<StopReason>,
    /// The model's sizes.
    pub hparams: HParams,
    /// How the text was generated.
    pub config: GenerateConfig,
    /// The heads whose attention maps were recorded.
    pub heads: Vec<HeadId>,
}

impl Explanation {
    /// `head`'s attention over the whole run: each position's query row, taken from the step
    /// that ran it, stacked into `[n_keys, n_keys]` (rows shorter than `n_keys` padded with
    /// the masked zeros). With the KV cache each step runs only its new rows; stacked, they
    /// form the triangle a full recomputation computes at the last step (bit for bit).
    /// `None` if `head` was not recorded.
    pub fn attention_over_run(&self, head: HeadId) -> Option<AttentionMap> {
        let n_keys = self.steps.last()?.attention_map(head)?.n_keys;
        let mut weights = Vec::with_capacity(n_keys * n_keys); // [n_keys, n_keys]
        let mut next_position = 0;
        for step in &self.steps {
            let map = step.attention_map(head)?;
            for row in 0..map.n_queries {
                if map.query_position(row) != next_position {
                    continue; // a row an earlier step already ran (full recomputation)
                }
                weights.extend((0..n_keys).map(|key| map.weight(row, key)));
                next_position += 1;
            }
        }
        (next_position == n_keys).then_some(AttentionMap {
            head,
            first_step: 1,
            last_step: self.steps.len(),
            n_queries: n_keys,
            n_keys,
            weights,
        })
    }

    /// Whether token `position` belongs to the prompt.
    pub fn is_prompt(&self, position: usize) -> bool {
        position < self.n_prompt
    }
}

// ----------------------------------------------------------------------------------------
// Recording

/// The parameters whose distribution the pictures show: the sampler's own, except for
/// greedy decoding, whose distribution is one-hot (1 on the winner, 0 elsewhere) and would
/// show nothing. For greedy, the plain softmax at temperature 1 is shown instead: the
/// model's own belief, whose most likely token is the one greedy takes.
pub fn shown_sampling(sampling: &SamplingParams) -> SamplingParams {
    if sampling.is_greedy() {
        SamplingParams { temperature: 1.0, top_k: None, top_p: None, ..SamplingParams::GREEDY }
    } else {
        *sampling
    }
}

/// Collects a [`StepView`] after each step of a generation you run yourself, with an
/// enabled [`Trace`]:
///
/// ```
/// use gpt2_edu::generate::{GenerateConfig, TextGenerator};
/// use gpt2_edu::viz::{self, ExplainOptions, Recorder};
/// use gpt2_edu::{dummy, Model, Trace};
/// let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
/// let model = Model::new(hparams, weights).unwrap();
/// let config = GenerateConfig { max_tokens: 3, ..GenerateConfig::default() };
/// let mut recorder = Recorder::new(&model, &encoder, &config, &ExplainOptions::default()).unwrap();
/// let mut text = TextGenerator::new(&model, &encoder, "hello", &config).unwrap();
/// let mut trace = Trace::new();
/// loop {
///     let piece = text.next_text_traced(&mut trace).unwrap(); // may run a step even when None
///     if let Some(step) = recorder.record_step(&trace, text.tokens()).unwrap() {
///         print!("{}", viz::top_candidates(step, 4));
///     }
///     trace.clear();
///     if piece.is_none() {
///         break;
///     }
/// }
/// let run = recorder.finish(text.tokens()).unwrap();
/// assert_eq!(run.steps.len(), 3);
/// ```
pub struct Recorder<'t> {
    tokenizer: &'t dyn Tokenizer,
    model: &'t Model,
    lens: bool,
    /// The next position whose surprise is to be recorded.
    next_scored: usize,
    hparams: HParams,
    config: GenerateConfig,
    heads: Vec<HeadId>,
    top_n: usize,
    token_texts: Vec<String>,
    n_prompt: Option<usize>,
    steps: Vec<StepView>,
    /// Steps recorded, forgotten ones included.
    n_steps: usize,
}

impl<'t> Recorder<'t> {
    /// A recorder for a generation of `model` with `config`. A head in `options` that the
    /// model does not have is an error, reported here, before any work.
    pub fn new(
        model: &'t Model,
        tokenizer: &'t dyn Tokenizer,
        config: &GenerateConfig,
        options: &ExplainOptions,
    ) -> Result<Self> {
        Ok(Self {
            tokenizer,
            model,
            lens: options.lens,
            next_scored: 1,
            hparams: model.hparams,
            config: config.clone(),
            heads: options.heads.resolve(&model.hparams)?,
            top_n: options.top_n,
            token_texts: Vec::new(),
            n_prompt: None,
            steps: Vec::new(),
            n_steps: 0,
        })
    }

    /// Records the step whose tensors are in `trace` (enabled, cleared after each step),
    /// given the generator after it, which must have been built with this recorder's
    /// `config`. Returns `None` (and records nothing) when the trace holds no step: the
    /// call that filled it ran no forward pass.
    pub fn record_step(
        &mut self,
        trace: &Trace,
        generator: &Generator<'_, Model>,
    ) -> Result<Option<&StepView>> {
        let Some(logits) = last_tensor(trace, "logits") else {
            return Ok(None);
        };
        let tokens = generator.tokens();
        let n_seen = self.positions_seen(logits, generator);
        self.n_prompt.get_or_insert(n_seen);
        self.decode_texts(tokens)?;
        self.n_steps += 1;
        let number = self.n_steps;
        let ended_text = tokens.len() == n_seen; // the chosen token was <|endoftext|>
        let chosen = if ended_text { self.tokenizer.end_of_text() } else { Some(tokens[n_seen]) };
        let probabilities = distribution(last_row(logits), &shown_sampling(&self.config.sampling))?;
        let (ids, other_probability) = most_likely(&probabilities, self.top_n, chosen);
        let surprise = self.surprises(logits, n_seen, tokens)?;
        let pos0 = n_seen.saturating_sub(logits.shape.first().copied().unwrap_or(0));
        let lens = self.lens_of(trace, pos0)?;
        self.steps.push(StepView {
            number,
            seen: self.token_texts[..n_seen].to_vec(),
            seen_text: self.tokenizer.decode(&tokens[..n_seen])?,
            chosen,
            ended_text,
            attention: self.attention_maps(trace, number),
            candidates: self.candidates(&ids, &probabilities)?,
            other_probability,
            n_vocab: probabilities.len(),
            sampling: self.config.sampling,
            cache: CacheFill::of(generator.cache()),
            lens,
            surprise,
        });
        Ok(self.steps.last())
    }

    /// The step's logit lens, when it is asked for.
    fn lens_of(&self, trace: &Trace, pos0: usize) -> Result<Option<LogitLens>> {
        match self.lens {
            true => LogitLens::from_trace(self.model, self.tokenizer, trace, pos0),
            false => Ok(None),
        }
    }

    /// How many positions the step's forward pass had seen once it ran: the cache's length
    /// (cached), or the rows of its logits (full recomputation).
    fn positions_seen(&self, logits: &TracedTensor, generator: &Generator<'_, Model>) -> usize {
        let n = match self.config.decoding {
            Decoding::Cached => generator.cache().len(),
            Decoding::FullRecompute => logits.shape.first().copied().unwrap_or(0),
        };
        n.min(generator.tokens().len())
    }

    /// The steps recorded so far (and not forgotten).
    pub fn steps(&self) -> &[StepView] {
        &self.steps
    }

    /// Drops the steps recorded so far; the next step's number still counts them. For a
    /// caller that shows each step as it comes ([`HtmlReport`](super::HtmlReport), the
    /// terminal pictures) and need not hold them all: a step keeps every recorded head's
    /// attention map, `n_layer * n_head` of them. [`finish`](Self::finish) then returns
    /// only the steps recorded since.
    pub fn forget_steps(&mut self) {
        self.steps.clear();
    }

    /// The whole run, once `generator` has finished (its `steps`: those not forgotten).
    pub fn finish(mut self, generator: &Generator<'_, Model>) -> Result<Explanation> {
        let tokens = generator.tokens().to_vec();
        self.decode_texts(&tokens)?;
        Ok(Explanation {
            n_prompt: self.n_prompt.unwrap_or(tokens.len()),
            text: self.tokenizer.decode(&tokens)?,
            token_texts: self.token_texts,
            tokens,
            steps: self.steps,
            stop_reason: generator.stop_reason().cloned(),
            hparams: self.hparams,
            config: self.config,
            heads: self.heads,
        })
    }

    /// Decodes the tokens not decoded yet, each alone.
    fn decode_texts(&mut self, tokens: &[u32]) -> Result<()> {
        for &id in &tokens[self.token_texts.len().min(tokens.len())..] {
            self.token_texts.push(token_text(self.tokenizer, id)?);
        }
        Ok(())
    }

    /// The surprise of each token of `tokens` that a row of `logits` (`[n_rows, n_vocab]`,
    /// the last of them at position `n_seen - 1`) predicts and that has none yet.
    fn surprises(
        &mut self,
        logits: &TracedTensor,
        n_seen: usize,
        tokens: &[u32],
    ) -> Result<Vec<TokenSurprise>> {
        let n_vocab = logits.shape.last().copied().unwrap_or(0).max(1);
        let pos0 = n_seen.saturating_sub(logits.data.len() / n_vocab);
        let mut surprise = Vec::new();
        for (row, row_logits) in logits.data.chunks_exact(n_vocab).enumerate() {
            let target = pos0 + row + 1; // the position row `row` predicts
            if target == self.next_scored && target < tokens.len() {
                surprise.push(TokenSurprise::of(
                    self.tokenizer,
                    row_logits,
                    target,
                    tokens[target],
                )?);
                self.next_scored += 1;
            }
        }
        Ok(surprise)
    }

    fn attention_maps(&self, trace: &Trace, step: usize) -> Vec<AttentionMap> {
        self.heads.iter().filter_map(|&head| AttentionMap::from_trace(trace, head, step)).collect()
    }

    fn candidates(&self, ids: &[usize], probabilities: &[f64]) -> Result<Vec<Candidate>> {
        ids.iter()
            .map(|&id| {
                Ok(Candidate {
                    id: id as u32,
                    text: token_text(self.tokenizer, id as u32)?,
                    probability: probabilities[id],
                })
            })
            .collect()
    }
}

/// The tensor recorded last under `name` (the current step's, even if the trace was not
/// cleared after the previous one).
fn last_tensor<'t>(trace: &'t Trace, name: &str) -> Option<&'t TracedTensor> {
    trace.tensors().iter().rev().find(|t| t.name == name)
}

/// The last row of `logits` (`[n_new, n_vocab]`): the next token's logits, `[n_vocab]`.
fn last_row(logits: &TracedTensor) -> &[f32] {
    let n_vocab = logits.shape.last().copied().unwrap_or(0);
    &logits.data[logits.data.len().saturating_sub(n_vocab)..]
}

/// The `top_n` most likely ids (ties: lower id first), then `chosen` if it is not among
/// them; and the summed probability of all the other ids.
fn most_likely(probabilities: &[f64], top_n: usize, chosen: Option<u32>) -> (Vec<usize>, f64) {
    let mut ids: Vec<usize> = (0..probabilities.len()).collect();
    ids.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]).then(a.cmp(&b)));
    ids.truncate(top_n);
    if let Some(chosen) = chosen.map(|id| id as usize)
        && chosen < probabilities.len()
        && !ids.contains(&chosen)
    {
        ids.push(chosen);
    }
    let other =
        (0..probabilities.len()).filter(|id| !ids.contains(id)).map(|id| probabilities[id]).sum();
    (ids, other)
}

/// Generates text exactly as [`TextGenerator`] does, recording every step's pictures
/// (see [`Recorder`]). Errors: those of [`TextGenerator::new`], and a head in `options`
/// that the model does not have, both before any work.
pub fn explain_generation(
    model: &Model,
    tokenizer: &dyn Tokenizer,
    prompt: &str,
    config: &GenerateConfig,
    options: &ExplainOptions,
) -> Result<Explanation> {
    let mut recorder = Recorder::new(model, tokenizer, config, options)?;
    let mut text = TextGenerator::new(model, tokenizer, prompt, config)?;
    let mut trace = Trace::new();
    loop {
        // A call that returns `None` may still have run a step (the one that chose
        // <|endoftext|>), so record before deciding to stop.
        let piece = text.next_text_traced(&mut trace)?;
        recorder.record_step(&trace, text.tokens())?;
        trace.clear();
        if piece.is_none() {
            break;
        }
    }
    recorder.finish(text.tokens())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_heads_are_errors_that_say_what_exists() {
        let hparams = HParams::dummy(); // 2 layers of 2 heads
        let error = Heads::Only(vec![HeadId { layer: 2, head: 0 }])
            .resolve(&hparams)
            .unwrap_err()
            .to_string();
        assert!(error.contains("layer 2 does not exist: the model has 2 layers (0-1)"), "{error}");
        let error = HeadId { layer: 1, head: 5 }.check(&hparams).unwrap_err().to_string();
        assert!(
            error.contains("head 5 does not exist: each layer of the model has 2 heads (0-1)"),
            "{error}"
        );
        let repeated = Heads::Only(vec![
            HeadId { layer: 1, head: 1 },
            HeadId { layer: 0, head: 1 },
            HeadId { layer: 1, head: 1 },
        ]);
        assert_eq!(
            repeated.resolve(&hparams).unwrap(),
            vec![HeadId { layer: 0, head: 1 }, HeadId { layer: 1, head: 1 }]
        );
        assert_eq!(Heads::All.resolve(&hparams).unwrap().len(), 4);
    }

    #[test]
    fn head_ids_parse_as_layer_dot_head() {
        assert_eq!("3.7".parse(), Ok(HeadId { layer: 3, head: 7 }));
        assert_eq!(HeadId { layer: 3, head: 7 }.to_string(), "3.7");
        for bad in ["3", "3.", ".7", "a.b", "3.7.1", "-1.0"] {
            assert!(bad.parse::<HeadId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn candidates_are_the_most_likely_then_the_chosen_and_the_rest_sums_up() {
        let probabilities = [0.1, 0.4, 0.05, 0.4, 0.05];
        let (ids, other) = most_likely(&probabilities, 2, Some(1));
        assert_eq!(ids, vec![1, 3], "ties: the lower id first");
        assert!((other - 0.2).abs() < 1e-12);
        let (ids, other) = most_likely(&probabilities, 2, Some(4));
        assert_eq!(ids, vec![1, 3, 4], "a sampled token outside the top is kept");
        assert!((other - 0.15).abs() < 1e-12);
    }

    #[test]
    fn greedy_shows_the_softmax_at_temperature_one() {
        let shown = shown_sampling(&SamplingParams::GREEDY);
        assert_eq!((shown.temperature, shown.top_k, shown.top_p), (1.0, None, None));
        let top_k_1 = SamplingParams {
            temperature: 0.7,
            top_k: Some(1),
            top_p: None,
            ..SamplingParams::GREEDY
        };
        assert_eq!(shown_sampling(&top_k_1).temperature, 1.0, "top-k 1 is greedy too");
        let sampling = SamplingParams {
            temperature: 0.7,
            top_k: Some(3),
            top_p: Some(0.9),
            ..SamplingParams::GREEDY
        };
        assert_eq!(shown_sampling(&sampling), sampling);
    }
}
