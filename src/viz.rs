//! Seeing inside: pictures of what the model computed while it generated, as plain text
//! for the terminal and as one self-contained HTML file for the browser.
//!
//! Each generation step runs the model once and chooses one token. From that step's
//! [`Trace`] and the generator's state after it come three pictures:
//!
//! ```text
//! attention map  block.{l}.attn.weights.head.{h}                [n_new, n_keys]
//!                n_new  = positions run this step (cached: the whole prompt at step 1, then 1)
//!                n_keys = every position so far
//!                query i sits at position n_keys - n_new + i and sees keys 0..=that position;
//!                the later keys are the masked future: weight exactly 0, drawn empty (·)
//! candidates     p = distribution(logits[n_new - 1], sampling)  [n_vocab], the top N shown
//!                greedy: p = softmax(logits) at T = 1 (greedy's own distribution is one-hot)
//! cache fill     per layer: len of capacity positions, 2 (k and v) * len * n_embd * 4 bytes
//! ```
//!
//! Record a whole run with [`explain_generation`], or step by step beside your own
//! [`TextGenerator`] loop with a [`Recorder`]. Then draw with [`attention_heatmap`],
//! [`top_candidates`] and [`cache_fill`] (terminal) or [`html_report`] (browser).
//! Recording only reads the trace, so the generated tokens are the same as without it.
//!
//! Numerical care: probabilities are the f64s of [`distribution`], shown with 4 decimals.
//! The tokens not listed are summed into one "other" probability, so the listed numbers
//! and it add up to 1.
//!
//! ```
//! use gpt2_edu::generate::GenerateConfig;
//! use gpt2_edu::viz::{self, ExplainOptions, HeadId};
//! use gpt2_edu::{dummy, Model};
//! let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
//! let model = Model::new(hparams, weights).unwrap();
//! let config = GenerateConfig { max_tokens: 5, ..GenerateConfig::default() };
//! let options = ExplainOptions::default();
//! let run = viz::explain_generation(&model, &encoder, "hello", &config, &options).unwrap();
//! assert_eq!(run.text, "hello world world world <UNK> <UNK>");
//! let step = &run.steps[1]; // step 2: the model has seen "hello world"
//! let map = step.attention_map(HeadId { layer: 0, head: 0 }).unwrap();
//! assert_eq!((map.n_queries, map.n_keys), (1, 2)); // one new query, two keys
//! print!("{}", viz::attention_heatmap(map, &step.seen));
//! print!("{}", viz::top_candidates(step, 4));
//! print!("{}", viz::cache_fill(&step.cache));
//! ```

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::generate::{Decoding, GenerateConfig, Generator, StopReason, TextGenerator};
use crate::hparams::HParams;
use crate::kv_cache::KvCache;
use crate::model::Model;
use crate::sample::{SamplingParams, distribution};
use crate::tokenizer::Tokenizer;
use crate::trace::{Trace, TracedTensor, format_fixed};

// ----------------------------------------------------------------------------------------
// What to record

/// One attention head of one layer, whose weights the trace holds as
/// `block.{layer}.attn.weights.head.{head}`. Written `LAYER.HEAD` (`0.1`) on the command
/// line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeadId {
    /// The block, `0..n_layer`.
    pub layer: usize,
    /// The head within the block, `0..n_head`.
    pub head: usize,
}

impl HeadId {
    /// The name of this head's attention weights in a [`Trace`].
    pub fn trace_name(self) -> String {
        format!("block.{}.attn.weights.head.{}", self.layer, self.head)
    }

    /// Checks that the model has this layer and head; otherwise an
    /// [`Error::NoSuchHead`] that says which ones exist.
    pub fn check(self, hparams: &HParams) -> Result<()> {
        if self.layer >= hparams.n_layer {
            return Err(Error::NoSuchHead(format!(
                "layer {} does not exist: the model has {}",
                self.layer,
                count_with_range(hparams.n_layer, "layer")
            )));
        }
        if self.head >= hparams.n_head {
            return Err(Error::NoSuchHead(format!(
                "head {} does not exist: each layer of the model has {}",
                self.head,
                count_with_range(hparams.n_head, "head")
            )));
        }
        Ok(())
    }
}

/// `"12 layers (0-11)"`, `"1 layer (0)"`.
fn count_with_range(n: usize, noun: &str) -> String {
    match n {
        0 => format!("no {noun}s"),
        1 => format!("1 {noun} (0)"),
        _ => format!("{n} {noun}s (0-{})", n - 1),
    }
}

impl fmt::Display for HeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer, self.head)
    }
}

impl FromStr for HeadId {
    type Err = String;

    /// Parses `LAYER.HEAD`, such as `0.1` (layer 0, head 1). Whether the model has that
    /// head is checked later, by [`HeadId::check`].
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parsed = s.split_once('.').and_then(|(layer, head)| {
            Some(HeadId { layer: layer.parse().ok()?, head: head.parse().ok()? })
        });
        parsed.ok_or_else(|| {
            format!("expected LAYER.HEAD such as 0.1 (layer 0, head 1), found {s:?}")
        })
    }
}

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
}

impl Default for ExplainOptions {
    /// Every head, the [`DEFAULT_TOP_N`] most likely tokens.
    fn default() -> Self {
        Self { heads: Heads::All, top_n: DEFAULT_TOP_N }
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
        SamplingParams { temperature: 1.0, top_k: None, top_p: None }
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
    hparams: HParams,
    config: GenerateConfig,
    heads: Vec<HeadId>,
    top_n: usize,
    token_texts: Vec<String>,
    n_prompt: Option<usize>,
    steps: Vec<StepView>,
}

impl<'t> Recorder<'t> {
    /// A recorder for a generation of `model` with `config`. A head in `options` that the
    /// model does not have is an error, reported here, before any work.
    pub fn new(
        model: &Model,
        tokenizer: &'t dyn Tokenizer,
        config: &GenerateConfig,
        options: &ExplainOptions,
    ) -> Result<Self> {
        Ok(Self {
            tokenizer,
            hparams: model.hparams,
            config: config.clone(),
            heads: options.heads.resolve(&model.hparams)?,
            top_n: options.top_n,
            token_texts: Vec::new(),
            n_prompt: None,
            steps: Vec::new(),
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
        let n_seen = match self.config.decoding {
            Decoding::Cached => generator.cache().len(),
            Decoding::FullRecompute => logits.shape.first().copied().unwrap_or(0),
        }
        .min(tokens.len());
        self.n_prompt.get_or_insert(n_seen);
        self.decode_texts(tokens)?;
        let number = self.steps.len() + 1;
        let ended_text = tokens.len() == n_seen; // the chosen token was <|endoftext|>
        let chosen = if ended_text { self.tokenizer.end_of_text() } else { Some(tokens[n_seen]) };
        let probabilities = distribution(last_row(logits), &shown_sampling(&self.config.sampling));
        let (ids, other_probability) = most_likely(&probabilities, self.top_n, chosen);
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
        });
        Ok(self.steps.last())
    }

    /// The steps recorded so far.
    pub fn steps(&self) -> &[StepView] {
        &self.steps
    }

    /// The whole run, once `generator` has finished.
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
            self.token_texts.push(self.tokenizer.decode(&[id])?);
        }
        Ok(())
    }

    fn attention_maps(&self, trace: &Trace, step: usize) -> Vec<AttentionMap> {
        self.heads.iter().filter_map(|&head| AttentionMap::from_trace(trace, head, step)).collect()
    }

    fn candidates(&self, ids: &[usize], probabilities: &[f64]) -> Result<Vec<Candidate>> {
        ids.iter()
            .map(|&id| {
                Ok(Candidate {
                    id: id as u32,
                    text: self.tokenizer.decode(&[id as u32])?,
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
    if let Some(chosen) = chosen.map(|id| id as usize) {
        if chosen < probabilities.len() && !ids.contains(&chosen) {
            ids.push(chosen);
        }
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

// ----------------------------------------------------------------------------------------
// Terminal pictures

/// Shades from weight 0 to 1, in five equal bands: `[0, 0.2)` is a space, `[0.8, 1]` a full
/// block.
const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];

/// Shown in place of a masked (future) attention weight.
pub const MASKED: char = '·';

/// Width of a row label (`"12 ␣world"`) in a heatmap.
const ROW_LABEL_WIDTH: usize = 10;

/// Width of a heatmap column: a shade, a space and two decimals (`"▒ 0.43"`), or a
/// column label.
const CELL_WIDTH: usize = 8;

/// Width of a token in the candidates picture.
const TOKEN_WIDTH: usize = 12;

/// Characters of a bar at probability 1 (candidates) or at a full cache.
const BAR_WIDTH: usize = 40;

/// The shading character for an attention weight in `[0, 1]`.
pub fn shade(weight: f32) -> char {
    let band = (weight.clamp(0.0, 1.0) * SHADES.len() as f32) as usize; // NaN -> 0
    SHADES[band.min(SHADES.len() - 1)]
}

/// A token's text with its invisible characters made visible, so that a label shows
/// exactly what the token holds: space `␣`, newline `↵`, tab `⇥`, carriage return `␍`,
/// other control characters escaped (`\u{1b}`), an empty text `∅`.
pub fn visible_token(text: &str) -> String {
    if text.is_empty() {
        return "∅".into();
    }
    text.chars()
        .map(|c| match c {
            ' ' => "␣".to_string(),
            '\n' => "↵".to_string(),
            '\t' => "⇥".to_string(),
            '\r' => "␍".to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// `text` cut to at most `width` characters, its last one `…` if it was cut.
fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    kept + "…"
}

/// `text` shortened and padded with spaces to exactly `width` characters.
fn fit(text: &str, width: usize) -> String {
    format!("{:<width$}", shorten(text, width))
}

/// `"3 world"`: a position and its visible token (`?` if no label was given).
fn position_label(position: usize, labels: &[String]) -> String {
    let token = labels.get(position).map_or("?".to_string(), |t| visible_token(t));
    format!("{position} {token}")
}

/// One layer and head's attention weights as a text grid: a title line, a header of key
/// labels, then one row per query (`"▒ 0.43"`: shade and weight with 2 decimals), the
/// masked future shown as [`MASKED`]. `labels` holds the text of each position's token
/// (`n_keys` of them, such as [`StepView::seen`]); labels are `position token` with
/// invisible characters made visible ([`visible_token`]), cut to fit. Lines carry no
/// trailing spaces.
///
/// ```text
/// attention weights, layer 0, head 0, step 2 (rows: queries, columns: keys, ·: masked future)
///            0 hello  1 world
/// 1 world    ▒ 0.43   ▒ 0.57
/// ```
pub fn attention_heatmap(map: &AttentionMap, labels: &[String]) -> String {
    let mut lines = vec![format!(
        "attention weights, {} (rows: queries, columns: keys, {MASKED}: masked future)",
        map.title()
    )];
    let header: Vec<String> =
        (0..map.n_keys).map(|key| fit(&position_label(key, labels), CELL_WIDTH)).collect();
    lines.push(format!("{} {}", " ".repeat(ROW_LABEL_WIDTH), header.join(" ")));
    for row in 0..map.n_queries {
        lines.push(heatmap_row(map, row, labels));
    }
    as_text(&lines)
}

/// One query row of [`attention_heatmap`].
fn heatmap_row(map: &AttentionMap, row: usize, labels: &[String]) -> String {
    let label = fit(&position_label(map.query_position(row), labels), ROW_LABEL_WIDTH);
    let cells: Vec<String> = (0..map.n_keys)
        .map(|key| {
            let cell = if map.is_masked(row, key) {
                MASKED.to_string()
            } else {
                let weight = map.weight(row, key);
                format!("{} {}", shade(weight), format_fixed(weight, 2))
            };
            fit(&cell, CELL_WIDTH)
        })
        .collect();
    format!("{label} {}", cells.join(" "))
}

/// `"T = 0.8, top-k 3"`: the knobs of a sampler.
fn sampling_knobs(sampling: &SamplingParams) -> String {
    let mut knobs = vec![format!("T = {}", sampling.temperature)];
    knobs.extend(sampling.top_k.map(|k| format!("top-k {k}")));
    knobs.extend(sampling.top_p.map(|p| format!("top-p {p}")));
    knobs.join(", ")
}

/// Which distribution is shown, in a few words (terminal): `"softmax at T = 1"` for greedy,
/// `"sampler: T = 0.8, top-k 3"` otherwise.
fn short_distribution_caption(sampling: &SamplingParams) -> String {
    if sampling.is_greedy() {
        "softmax at T = 1".into()
    } else {
        format!("sampler: {}", sampling_knobs(sampling))
    }
}

/// Which distribution is shown, in a sentence (HTML).
fn distribution_caption(sampling: &SamplingParams) -> String {
    if sampling.is_greedy() {
        "softmax of the logits at temperature 1 (greedy decoding takes the most likely token; \
         its own distribution would be 1 on that token and 0 elsewhere)"
            .into()
    } else {
        format!("the distribution the sampler draws from ({})", sampling_knobs(sampling))
    }
}

/// `text` as a quoted string, keeping only its last `width` characters (`"…ld world"`).
fn quoted_tail(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return format!("{text:?}");
    }
    let tail: String = text.chars().skip(n + 1 - width).collect();
    format!("{:?}", format!("…{tail}"))
}

/// `round(fraction * BAR_WIDTH)`, for a fraction in `[0, 1]`.
fn bar_length(fraction: f64) -> usize {
    (fraction.clamp(0.0, 1.0) * BAR_WIDTH as f64).round() as usize // NaN -> 0
}

/// A bar of [`bar_length`] full blocks.
fn bar(fraction: f64) -> String {
    "█".repeat(bar_length(fraction))
}

/// The text of the chosen token for a title: `world`, `<|endoftext|> (ends the text)`.
fn chosen_label(step: &StepView) -> String {
    let text = match step.chosen_candidate() {
        Some(candidate) => visible_token(&candidate.text),
        None => step.chosen.map_or("(none)".to_string(), |id| format!("id {id}")),
    };
    if step.ended_text { text + " (ends the text)" } else { text }
}

/// The `n` most likely next tokens of a step as bars, the chosen one marked `▶`, and the
/// rest of the vocabulary summed into one line. Probabilities are those of the
/// distribution the sampler draws from ([`shown_sampling`]: softmax at T = 1 for greedy).
///
/// ```text
/// step 1: "hello" -> world   (softmax at T = 1)
///   ▶ world        0.4379 ██████████████████
///     hello        0.2667 ███████████
/// ```
pub fn top_candidates(step: &StepView, n: usize) -> String {
    let mut lines = vec![format!(
        "step {}: {} -> {}   ({})",
        step.number,
        quoted_tail(&step.seen_text, 40),
        chosen_label(step),
        short_distribution_caption(&step.sampling)
    )];
    let shown = shown_candidates(step, n);
    for candidate in &shown {
        let marker = if Some(candidate.id) == step.chosen { '▶' } else { ' ' };
        let token = fit(&visible_token(&candidate.text), TOKEN_WIDTH);
        let p = candidate.probability;
        lines.push(format!("  {marker} {token} {p:.4} {}", bar(p)));
    }
    let n_other = step.n_vocab.saturating_sub(shown.len());
    if n_other > 0 {
        let other: f64 = 1.0 - shown.iter().map(|c| c.probability).sum::<f64>();
        let label = format!("{:<TOKEN_WIDTH$}", format!("({n_other} other)")); // never cut
        lines.push(format!("    {label} {:.4} {}", other.max(0.0), bar(other)));
    }
    as_text(&lines)
}

/// The first `n` candidates, plus the chosen one if it comes later.
fn shown_candidates(step: &StepView, n: usize) -> Vec<&Candidate> {
    let mut shown: Vec<&Candidate> = step.candidates.iter().take(n).collect();
    if let Some(chosen) = step.chosen_candidate() {
        if !shown.iter().any(|c| c.id == chosen.id) {
            shown.push(chosen);
        }
    }
    shown
}

/// `lines`, each without trailing spaces and ended by a newline.
fn as_text(lines: &[String]) -> String {
    lines.iter().map(|line| line.trim_end().to_string() + "\n").collect()
}

/// `"400 B"`, `"1.5 KiB"`, `"72.0 MiB"`.
pub fn format_bytes(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// The KV cache's fill, one line per layer: positions used of capacity, a bar (`█` used,
/// `░` free) and the bytes, then the total.
///
/// ```text
/// KV cache: 5 of 6 positions filled in every layer
///   layer 0  5/6  █████████████████████████████████░░░░░░░  400 B of 480 B
/// ```
pub fn cache_fill(fill: &CacheFill) -> String {
    if fill.capacity == 0 {
        return "KV cache: none (capacity 0)\n".into();
    }
    let positions = fill.layers.first().map_or(0, |l| l.positions);
    let mut lines =
        vec![format!("KV cache: {positions} of {} positions filled in every layer", fill.capacity)];
    let count_width = format!("{0}/{0}", fill.capacity).len();
    for (layer, layer_fill) in fill.layers.iter().enumerate() {
        lines.push(cache_layer_line(layer, layer_fill, fill.capacity, count_width));
    }
    lines.push(cache_total_line(fill));
    as_text(&lines)
}

/// `"  layer 0  5/6  ██████░░  400 B of 480 B"`.
fn cache_layer_line(layer: usize, fill: &LayerFill, capacity: usize, count_width: usize) -> String {
    let used = bar_length(fill.positions as f64 / capacity as f64);
    format!(
        "  layer {layer:<2} {:<count_width$}  {}{}  {} of {}",
        format!("{}/{capacity}", fill.positions),
        "█".repeat(used),
        "░".repeat(BAR_WIDTH - used),
        format_bytes(fill.bytes),
        format_bytes(fill.capacity_bytes)
    )
}

/// `"  in all: 800 B used, 960 B allocated = 2 (k, v) x 2 layers x 6 positions x 10 floats x 4 bytes"`.
fn cache_total_line(fill: &CacheFill) -> String {
    let (used, allocated) = fill.total_bytes();
    let n_layer = fill.layers.len();
    let bytes_per_float = size_of::<f32>();
    let n_embd = allocated.checked_div(2 * n_layer * fill.capacity * bytes_per_float).unwrap_or(0);
    format!(
        "  in all: {} used, {} allocated = 2 (k, v) x {n_layer} layers x {} positions x {n_embd} floats x {bytes_per_float} bytes",
        format_bytes(used),
        format_bytes(allocated),
        fill.capacity
    )
}

/// The three terminal pictures of one step, separated by blank lines: `head`'s attention
/// map (if it was recorded), the `top_n` candidates and the cache fill. What
/// `gpt2-edu --explain` prints after each step.
pub fn step_pictures(step: &StepView, head: HeadId, top_n: usize) -> String {
    let mut pictures = Vec::new();
    if let Some(map) = step.attention_map(head) {
        pictures.push(attention_heatmap(map, &step.seen));
    }
    pictures.push(top_candidates(step, top_n));
    pictures.push(cache_fill(&step.cache));
    pictures.join("\n")
}

// ----------------------------------------------------------------------------------------
// The HTML report

/// Side of one attention cell in the SVG maps, in pixels.
const CELL_PX: usize = 28;

/// Room for the query labels (left) and the rotated key labels (top), in pixels.
const SVG_LABEL_PX: usize = 90;

/// Characters of a token label in an SVG map.
const SVG_LABEL_CHARS: usize = 11;

/// Maps with at most this many keys print each weight inside its cell; larger ones show it
/// only in the cell's tooltip.
const MAX_KEYS_WITH_NUMBERS: usize = 16;

/// Pixels of a probability bar at probability 1, and of a full cache bar.
const BAR_PX: f64 = 300.0;

/// The report's style sheet: system fonts only, nothing loaded.
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;color:#222;margin:2em;max-width:90em}
.token{font-family:ui-monospace,monospace;border:1px solid #999;border-radius:3px;padding:0 .3em;margin:.1em;display:inline-block}
.prompt{background:#eee}
.generated{background:#d7ecff;border-color:#3a7bd5}
.step{border-top:1px solid #ccc;margin-top:2em}
table td{padding:.1em .6em;font-family:ui-monospace,monospace}
td.num{text-align:right}
.bar{display:inline-block;height:.8em;background:#3a7bd5}
.free{display:inline-block;height:.8em;background:#ddd}
tr.chosen td{font-weight:bold}
tr.other td{color:#666}
.maps{display:flex;flex-wrap:wrap;gap:1.5em}
figure{margin:0}
figcaption{font-size:.9em}
svg.map text{font:10px ui-monospace,monospace;pointer-events:none}
svg.map rect{fill:#1f4e9c;stroke:#bbb;stroke-width:.5}
svg.map text.light{fill:#fff}
.note{color:#555;font-size:.9em}";

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, safe in HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A token's visible text ([`visible_token`]), HTML-escaped.
fn html_token(text: &str) -> String {
    escape_html(&visible_token(text))
}

/// One self-contained HTML5 page showing a recorded generation: the tokens (prompt and
/// generated told apart), then for every step the next-token probabilities as bars (every
/// row carries its probability in `data-p`; the kept candidates and the "other" row sum to
/// 1), every recorded head's attention map as an SVG grid (`<figure class="attention"
/// data-layer=".." data-head="..">`, cells shaded by weight, the masked future left empty,
/// each weight in a tooltip) and the KV cache's fill per layer; last, every head's
/// attention over the whole run, stacked. Inline CSS and SVG only: no script, nothing
/// fetched. All token text is HTML-escaped.
pub fn html_report(explanation: &Explanation) -> String {
    let mut body = vec![
        "<h1>Inside one generation</h1>".to_string(),
        html_summary(explanation),
        html_tokens(explanation),
    ];
    body.extend(explanation.steps.iter().map(html_step));
    body.push(html_run_overview(explanation));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>gpt2-edu: inside one generation</title>\n<style>\n{STYLE}\n</style>\n</head>\n\
         <body>\n{}\n</body>\n</html>\n",
        body.join("\n")
    )
}

/// Writes [`html_report`] to `path`. A path that cannot be written is an [`Error::Io`]
/// naming it.
pub fn write_html_report(explanation: &Explanation, path: &Path) -> Result<()> {
    std::fs::write(path, html_report(explanation)).map_err(|error| Error::Io {
        path: path.display().to_string(),
        message: format!("writing the HTML report failed: {error}"),
    })
}

/// The model's sizes and how the text was generated.
fn html_summary(explanation: &Explanation) -> String {
    let hp = &explanation.hparams;
    let config = &explanation.config;
    let decoding = match config.decoding {
        Decoding::Cached => "cached decoding (KV cache)",
        Decoding::FullRecompute => "full recomputation (every position rerun at every step)",
    };
    let stop =
        explanation.stop_reason.as_ref().map_or("still running".to_string(), StopReason::to_string);
    format!(
        "<p class=\"summary\">Model: n_layer {}, n_head {}, n_embd {}, n_vocab {}, n_ctx {}. \
         {decoding}; probabilities shown: {}. Stopped: {}.</p>",
        hp.n_layer,
        hp.n_head,
        hp.n_embd,
        hp.n_vocab,
        hp.n_ctx,
        escape_html(&distribution_caption(&config.sampling)),
        escape_html(&stop)
    )
}

/// Every token as a box, prompt and generated told apart, then the whole text.
fn html_tokens(explanation: &Explanation) -> String {
    let boxes: Vec<String> = explanation
        .token_texts
        .iter()
        .enumerate()
        .map(|(position, text)| {
            let kind = if explanation.is_prompt(position) { "prompt" } else { "generated" };
            let id = explanation.tokens.get(position).copied().unwrap_or(0);
            format!(
                "<span class=\"token {kind}\" data-pos=\"{position}\" title=\"position {position}, id {id}, {kind}\">{}</span>",
                html_token(text)
            )
        })
        .collect();
    format!(
        "<section class=\"tokens\">\n<h2>Tokens</h2>\n<p>{}</p>\n\
         <p class=\"note\"><span class=\"token prompt\">prompt</span> \
         <span class=\"token generated\">generated</span> \
         (␣ is a space, ↵ a newline)</p>\n<pre>{}</pre>\n</section>",
        boxes.join(" "),
        escape_html(&explanation.text)
    )
}

/// One step: its probabilities, its attention maps and the cache.
fn html_step(step: &StepView) -> String {
    let maps: Vec<String> = step
        .attention
        .iter()
        .map(|map| html_attention_figure(map, &step.seen, "attention"))
        .collect();
    format!(
        "<section class=\"step\" data-step=\"{}\">\n<h2>Step {}: after {} → {}</h2>\n\
         <h3>Next-token probabilities</h3>\n<p class=\"note\">{}</p>\n{}\n\
         <h3>Attention</h3>\n<p class=\"note\">Rows: queries; columns: keys; blank: the masked \
         future. Darker means more weight; hover a cell for its weight.</p>\n\
         <div class=\"maps\">\n{}\n</div>\n<h3>KV cache</h3>\n{}\n</section>",
        step.number,
        step.number,
        escape_html(&quoted_tail(&step.seen_text, 60)),
        escape_html(&chosen_label(step)),
        escape_html(&distribution_caption(&step.sampling)),
        html_candidates(step),
        maps.join("\n"),
        html_cache(&step.cache)
    )
}

/// The step's candidates as a table of bars, then the "other" row.
fn html_candidates(step: &StepView) -> String {
    let mut rows: Vec<String> = step
        .candidates
        .iter()
        .map(|c| {
            let chosen = Some(c.id) == step.chosen;
            let class = if chosen { "candidate chosen" } else { "candidate" };
            let marker = if chosen { "▶" } else { "" };
            html_probability_row(class, c.probability, marker, &html_token(&c.text))
        })
        .collect();
    let n_other = step.n_vocab.saturating_sub(step.candidates.len());
    if n_other > 0 {
        let label = format!("({n_other} other tokens)");
        rows.push(html_probability_row("other", step.other_probability, "", &label));
    }
    format!("<table class=\"candidates\">\n{}\n</table>", rows.join("\n"))
}

/// `<tr class=.. data-p=..>`: marker, (escaped) label, probability, bar.
fn html_probability_row(class: &str, p: f64, marker: &str, label: &str) -> String {
    format!(
        "<tr class=\"{class}\" data-p=\"{p}\"><td>{marker}</td><td>{label}</td>\
         <td class=\"num\">{p:.4}</td><td><span class=\"bar\" style=\"width:{:.1}px\"></span></td></tr>",
        p.clamp(0.0, 1.0) * BAR_PX
    )
}

/// The cache's fill per layer, as a table of bars.
fn html_cache(fill: &CacheFill) -> String {
    if fill.capacity == 0 {
        return "<p class=\"note\">No KV cache (capacity 0).</p>".into();
    }
    let rows: Vec<String> = fill
        .layers
        .iter()
        .enumerate()
        .map(|(layer, l)| {
            let used = l.positions as f64 / fill.capacity as f64 * BAR_PX;
            format!(
                "<tr class=\"cache-layer\" data-layer=\"{layer}\"><td>layer {layer}</td>\
                 <td class=\"num\">{} / {}</td><td><span class=\"bar\" style=\"width:{used:.1}px\">\
                 </span><span class=\"free\" style=\"width:{:.1}px\"></span></td>\
                 <td class=\"num\">{} of {}</td></tr>",
                l.positions,
                fill.capacity,
                BAR_PX - used,
                format_bytes(l.bytes),
                format_bytes(l.capacity_bytes)
            )
        })
        .collect();
    format!("<table class=\"cache\">\n{}\n</table>", rows.join("\n"))
}

/// Every recorded head's attention over the whole run ([`Explanation::attention_over_run`]).
fn html_run_overview(explanation: &Explanation) -> String {
    let maps: Vec<String> = explanation
        .heads
        .iter()
        .filter_map(|&head| explanation.attention_over_run(head))
        .map(|map| html_attention_figure(&map, &explanation.token_texts, "attention-run"))
        .collect();
    format!(
        "<section class=\"run\">\n<h2>All steps together</h2>\n<p class=\"note\">Each \
         position's query row, from the step that ran it, stacked: the triangle a full \
         recomputation would compute at the last step.</p>\n<div class=\"maps\">\n{}\n</div>\n\
         </section>",
        maps.join("\n")
    )
}

/// `<figure class="{class}" data-layer data-head>`: a caption and the SVG grid.
fn html_attention_figure(map: &AttentionMap, labels: &[String], class: &str) -> String {
    format!(
        "<figure class=\"{class}\" data-layer=\"{}\" data-head=\"{}\">\
         <figcaption>{}</figcaption>\n{}\n</figure>",
        map.head.layer,
        map.head.head,
        escape_html(&map.title()),
        svg_attention(map, labels)
    )
}

/// The attention map as an SVG grid: key labels on top (rotated), query labels on the
/// left, one shaded square per visible weight, nothing for the masked future.
fn svg_attention(map: &AttentionMap, labels: &[String]) -> String {
    let width = SVG_LABEL_PX + map.n_keys * CELL_PX + 2;
    let height = SVG_LABEL_PX + map.n_queries * CELL_PX + 2;
    let mut svg = vec![format!(
        "<svg class=\"map\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    )];
    for key in 0..map.n_keys {
        let x = SVG_LABEL_PX + key * CELL_PX + CELL_PX / 2;
        svg.push(format!(
            "<text transform=\"translate({x},{}) rotate(-90)\" dominant-baseline=\"middle\">{}</text>",
            SVG_LABEL_PX - 4,
            svg_label(key, labels)
        ));
    }
    for row in 0..map.n_queries {
        let y = SVG_LABEL_PX + row * CELL_PX + CELL_PX / 2;
        svg.push(format!(
            "<text x=\"{}\" y=\"{y}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
            SVG_LABEL_PX - 4,
            svg_label(map.query_position(row), labels)
        ));
        svg.extend(
            (0..map.n_keys)
                .filter(|&key| !map.is_masked(row, key))
                .map(|key| svg_cell(map, row, key, labels)),
        );
    }
    svg.push("</svg>".into());
    svg.join("\n")
}

/// `"3 world"`, shortened and escaped.
fn svg_label(position: usize, labels: &[String]) -> String {
    escape_html(&shorten(&position_label(position, labels), SVG_LABEL_CHARS))
}

/// One visible weight: a square whose opacity is the weight, its value in a tooltip and,
/// in small maps, printed inside.
fn svg_cell(map: &AttentionMap, row: usize, key: usize, labels: &[String]) -> String {
    let weight = map.weight(row, key);
    let opacity = if weight.is_nan() { 0.0 } else { weight.clamp(0.0, 1.0) };
    let (x, y) = (SVG_LABEL_PX + key * CELL_PX, SVG_LABEL_PX + row * CELL_PX);
    let tooltip = format!(
        "query {} → key {}: {}",
        position_label(map.query_position(row), labels),
        position_label(key, labels),
        format_fixed(weight, 4)
    );
    let mut cell = format!(
        "<rect x=\"{x}\" y=\"{y}\" width=\"{CELL_PX}\" height=\"{CELL_PX}\" fill-opacity=\"{}\">\
         <title>{}</title></rect>",
        format_fixed(opacity, 4),
        escape_html(&tooltip)
    );
    if map.n_keys <= MAX_KEYS_WITH_NUMBERS {
        let class = if opacity > 0.5 { " class=\"light\"" } else { "" };
        cell.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" dominant-baseline=\"middle\"{class}>{}</text>",
            x + CELL_PX / 2,
            y + CELL_PX / 2,
            format_fixed(weight, 2)
        ));
    }
    cell
}

// ----------------------------------------------------------------------------------------
// The worked example's pictures (LEARN.md, section 19)

/// The pictures of LEARN.md's section 19, each one `text` block there: the dummy model on
/// `"hello"`, 5 greedy tokens with the KV cache, giving `hello world world world <UNK> <UNK>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnPictures {
    /// Every layer's and head's attention over the whole run, stacked: a 5 x 5 triangle each.
    pub attention: String,
    /// Layer 0, head 0 at step 5 alone: the single query row a cached decode step computes.
    pub decode_step: String,
    /// The top candidates of each of the five steps.
    pub candidates: String,
    /// The KV cache after the first step and after the last.
    pub cache: String,
}

impl LearnPictures {
    /// The four pictures, in the order above.
    pub fn blocks(&self) -> [&str; 4] {
        [&self.attention, &self.decode_step, &self.candidates, &self.cache]
    }
}

/// Draws [`LearnPictures`] (by running the dummy model; the weights are fixed, so the
/// pictures are the same on every platform).
pub fn learn_pictures() -> Result<LearnPictures> {
    let (encoder, hparams, weights) = crate::dummy::load_encoder_hparams_and_params();
    let model = Model::new(hparams, weights)?;
    let config = GenerateConfig { max_tokens: 5, ..GenerateConfig::default() };
    let run = explain_generation(&model, &encoder, "hello", &config, &ExplainOptions::default())?;
    let (Some(first), Some(last)) = (run.steps.first(), run.steps.last()) else {
        return Err(Error::EmptyPrompt); // unreachable: "hello" is one token, 5 steps run
    };
    let attention: Vec<String> = run
        .heads
        .iter()
        .filter_map(|&head| run.attention_over_run(head))
        .map(|map| attention_heatmap(&map, &run.token_texts))
        .collect();
    let decode_step = last
        .attention_map(HeadId { layer: 0, head: 0 })
        .map_or(String::new(), |map| attention_heatmap(map, &last.seen));
    let candidates: Vec<String> = run.steps.iter().map(|step| top_candidates(step, 4)).collect();
    let cache = [first, last]
        .map(|step| format!("after step {}:\n{}", step.number, cache_fill(&step.cache)));
    Ok(LearnPictures {
        attention: attention.join("\n"),
        decode_step,
        candidates: candidates.join("\n"),
        cache: cache.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_2x2() -> AttentionMap {
        // Block 0, head 0 of "hello world" (LEARN.md section 4).
        AttentionMap {
            head: HeadId { layer: 0, head: 0 },
            first_step: 1,
            last_step: 1,
            n_queries: 2,
            n_keys: 2,
            weights: vec![1.0, 0.0, 0.42844, 0.57156],
        }
    }

    #[test]
    fn shades_cover_zero_to_one_in_five_bands() {
        assert_eq!(shade(0.0), ' ');
        assert_eq!(shade(0.19), ' ');
        assert_eq!(shade(0.2), '░');
        assert_eq!(shade(0.5), '▒');
        assert_eq!(shade(0.7), '▓');
        assert_eq!(shade(1.0), '█');
        assert_eq!(shade(f32::NAN), ' ');
        assert_eq!(shade(7.0), '█');
    }

    #[test]
    fn queries_are_the_last_positions_and_see_no_later_key() {
        let map =
            AttentionMap { n_queries: 1, n_keys: 3, weights: vec![0.2, 0.3, 0.5], ..map_2x2() };
        assert_eq!(map.query_position(0), 2);
        assert!(!map.is_masked(0, 2));
        let full = map_2x2();
        assert!(full.is_masked(0, 1));
        assert!(!full.is_masked(1, 1));
        assert_eq!(full.weight(5, 5), 0.0, "outside the map");
    }

    #[test]
    fn heatmap_shows_weights_and_an_empty_future() {
        let labels = ["hello".to_string(), "world".to_string()];
        let picture = attention_heatmap(&map_2x2(), &labels);
        let lines: Vec<&str> = picture.lines().collect();
        assert!(lines[0].contains("layer 0, head 0, step 1"), "{picture}");
        assert_eq!(lines[1], "           0 hello  1 world");
        assert_eq!(lines[2], "0 hello    █ 1.00   ·");
        assert_eq!(lines[3], "1 world    ▒ 0.43   ▒ 0.57");
    }

    #[test]
    fn invisible_characters_become_visible() {
        assert_eq!(visible_token(" world\n"), "␣world↵");
        assert_eq!(visible_token("a\tb\r"), "a⇥b␍");
        assert_eq!(visible_token("\u{1b}"), "\\u{1b}");
        assert_eq!(visible_token(""), "∅");
        assert_eq!(fit("abcdefghijk", 5), "abcd…");
        assert_eq!(fit("ab", 4), "ab  ");
    }

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(escape_html("<UNK> & \"x\" 'y'"), "&lt;UNK&gt; &amp; &quot;x&quot; &#39;y&#39;");
    }

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
        let top_k_1 = SamplingParams { temperature: 0.7, top_k: Some(1), top_p: None };
        assert_eq!(shown_sampling(&top_k_1).temperature, 1.0, "top-k 1 is greedy too");
        let sampling = SamplingParams { temperature: 0.7, top_k: Some(3), top_p: Some(0.9) };
        assert_eq!(shown_sampling(&sampling), sampling);
    }

    #[test]
    fn candidates_of_a_large_vocabulary_end_with_the_others_line() {
        let step = StepView {
            number: 1,
            seen: vec!["The".into()],
            seen_text: "The".into(),
            chosen: Some(7),
            ended_text: false,
            attention: Vec::new(),
            candidates: vec![Candidate { id: 7, text: " dog".into(), probability: 0.25 }],
            other_probability: 0.75,
            n_vocab: 50257,
            sampling: SamplingParams::GREEDY,
            cache: CacheFill { capacity: 0, layers: Vec::new() },
        };
        let picture = top_candidates(&step, 10);
        assert_eq!(
            picture,
            "step 1: \"The\" -> ␣dog   (softmax at T = 1)\n  \
             ▶ ␣dog         0.2500 ██████████\n    \
             (50256 other) 0.7500 ██████████████████████████████\n"
        );
    }

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(format_bytes(400), "400 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(75_497_472), "72.0 MiB");
    }

    #[test]
    fn cache_fill_counts_positions_and_bytes() {
        let hparams = HParams::dummy();
        let cache = KvCache::with_capacity(&hparams, 6);
        let fill = CacheFill::of(&cache);
        assert_eq!(fill.layers.len(), 2);
        assert_eq!(fill.layers[0], LayerFill { positions: 0, bytes: 0, capacity_bytes: 480 });
        let picture = cache_fill(&fill);
        assert!(
            picture.starts_with("KV cache: 0 of 6 positions filled in every layer\n"),
            "{picture}"
        );
        assert!(picture.contains("0 B of 480 B"), "{picture}");
        assert!(picture.contains("x 6 positions x 10 floats x 4 bytes"), "{picture}");
        let none = CacheFill::of(&KvCache::with_capacity(&hparams, 0));
        assert_eq!(cache_fill(&none), "KV cache: none (capacity 0)\n");
    }
}
