//! Seeing inside: pictures of what the model computed while it generated, as plain text
//! for the terminal and as one self-contained HTML file for the browser.
//!
//! Each generation step runs the model once and chooses one token. From that step's
//! [`Trace`](crate::Trace) and the generator's state after it come three pictures:
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
//! [`TextGenerator`](crate::TextGenerator) loop on the reference model with a
//! [`Recorder`]. Then draw with [`attention_heatmap`], [`top_candidates`] and
//! [`cache_fill`] (terminal) or [`html_report`] (browser); or write the report as the
//! steps come with [`HtmlReport`], holding one step at a time. Recording only reads the
//! trace, so the generated tokens are the same as without it.
//!
//! Numerical care: probabilities are the f64s of
//! [`distribution`](crate::sample::distribution), shown with 4 decimals. The tokens not
//! listed are summed into one "other" probability, so the listed numbers and it add up
//! to 1.
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
//!
//! The parts, one file each: `record.rs` (what a step's pictures are made of, and the
//! recorder), `terminal.rs` (plain-text pictures), `html.rs` (the report) and `svg.rs` (its
//! attention grids); `learn.rs` draws LEARN.md's worked example.

mod html;
mod html_run;
mod learn;
mod lens;
mod record;
mod svg;
mod terminal;

pub use html::{HtmlReport, escape_html, html_report, write_html_report};
pub use html_run::FULL_MAPS_UP_TO_HEADS;
pub use learn::{LearnPictures, learn_pictures};
pub use lens::{LensCell, LogitLens, SURPRISE_ALTERNATIVES, TokenSurprise, token_text};
pub use record::{
    AttentionMap, CacheFill, Candidate, DEFAULT_TOP_N, ExplainOptions, Explanation, HeadId, Heads,
    LayerFill, Recorder, StepView, explain_generation, shown_sampling,
};
pub use terminal::{
    MASKED, attention_heatmap, cache_fill, format_bytes, lens_grid, shade, step_pictures,
    surprise_shade, surprise_text, top_candidates, visible_token,
};
