//! The pictures of LEARN.md's section 19, drawn from the dummy model, so that the chapter
//! can be checked against what the code draws (`tests/viz.rs`).

use super::record::{ExplainOptions, HeadId, explain_generation};
use super::terminal::{attention_heatmap, cache_fill, top_candidates};
use crate::error::{Error, Result};
use crate::generate::GenerateConfig;
use crate::model::Model;

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
