//! Loading real GPT-2: a HuggingFace model folder with `config.json`, `model.safetensors`,
//! `vocab.json` and `merges.txt`, all parsed by hand.
//!
//! Nothing about the model changes from the dummy: the same [`Model`], forward pass, KV
//! cache and generation loop run it. Only the sizes ([`HParams`], from `config.json`) and the
//! weights (from `model.safetensors`) differ.
//!
//! Tensor names follow the checkpoint: `wte.weight`, `wpe.weight`, `h.{i}.ln_1.weight`,
//! `h.{i}.attn.c_attn.weight`, ... with or without the `transformer.` prefix that
//! HuggingFace's `save_pretrained` adds. The `h.{i}.attn.bias` and `h.{i}.attn.masked_bias`
//! buffers of older checkpoints (a stored causal mask) are ignored. `lm_head.weight` may be
//! absent (the output layer is tied to `wte`) or present, in which case it must equal `wte`.
//! Every tensor's shape is checked against `config.json`. Any other tensor is an error, so
//! a checkpoint of some other architecture cannot load silently.

use std::path::Path;

use crate::bpe::Bpe;
use crate::error::{Error, Result};
use crate::hparams::HParams;
use crate::json::{self, Json};
use crate::model::{Model, Weights};
use crate::safetensors::SafeTensors;
use crate::tokenizer::Tokenizer;

/// The four files of a GPT-2 folder, as downloaded from the `gpt2` model repository.
pub const FILES: [&str; 4] = ["config.json", "model.safetensors", "vocab.json", "merges.txt"];

/// Loads a GPT-2 folder: its tokenizer and its model.
pub fn load_dir(dir: &Path) -> Result<(Bpe, Model)> {
    for file in FILES {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(Error::Io {
                path: path.display().to_string(),
                kind: std::io::ErrorKind::NotFound,
                message: format!(
                    "not found; a GPT-2 folder needs {} (see the README)",
                    FILES.join(", ")
                ),
            });
        }
    }
    let hparams = load_config(&dir.join("config.json"))?;
    let weights = load_weights(&dir.join("model.safetensors"), &hparams)?;
    let tokenizer = Bpe::from_files(&dir.join("vocab.json"), &dir.join("merges.txt"))?;
    if tokenizer.n_vocab() > hparams.n_vocab {
        return Err(Error::invalid_file(
            &dir.join("vocab.json"),
            format!(
                "{} tokens, but the model's vocab_size is {}",
                tokenizer.n_vocab(),
                hparams.n_vocab
            ),
        ));
    }
    Ok((tokenizer, Model::new(hparams, weights)?))
}

/// Reads the hyper-parameters from a HuggingFace GPT-2 `config.json`: `n_layer`, `n_head`,
/// `n_embd`, `n_positions` (or the older `n_ctx`), `vocab_size`, `layer_norm_epsilon`.
/// Settings that would make the model compute something else than this crate does (another
/// activation, a different feed-forward width, other attention scaling) are refused.
pub fn load_config(path: &Path) -> Result<HParams> {
    let bad = |message: String| Error::invalid_file(path, message);
    let config = read_config_object(path)?;
    let hparams = hparams_from_config(&config).map_err(bad)?;
    hparams.validate().map_err(|e| bad(e.to_string()))?;
    check_supported(&config, &hparams).map_err(bad)?;
    Ok(hparams)
}

/// Reads and parses the file at `path`, which must hold a JSON object.
fn read_config_object(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, &e))?;
    let config = json::parse(&text).map_err(|e| Error::invalid_file(path, e.to_string()))?;
    if config.as_object().is_none() {
        return Err(Error::invalid_file(
            path,
            format!("expected a JSON object, found {}", config.kind()),
        ));
    }
    Ok(config)
}

/// The hyper-parameters a `config.json` object sets, each read and type-checked (their
/// consistency is [`HParams::validate`]'s job).
fn hparams_from_config(config: &Json) -> std::result::Result<HParams, String> {
    let n_ctx = context_length(config)?;
    let layer_norm_eps = layer_norm_epsilon(config)?;
    Ok(HParams {
        n_vocab: required_size(config, "vocab_size")?,
        n_ctx,
        n_embd: required_size(config, "n_embd")?,
        n_head: required_size(config, "n_head")?,
        n_layer: required_size(config, "n_layer")?,
        layer_norm_eps,
    })
}

/// `config[key]` as a size: a whole number that fits in `usize`, or `None` when the key is
/// absent or `null`.
fn optional_size(config: &Json, key: &str) -> std::result::Result<Option<usize>, String> {
    match config.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("\"{key}\" must be a whole number, found {value:?}")),
    }
}

/// `config[key]` as a size, which must be there.
fn required_size(config: &Json, key: &str) -> std::result::Result<usize, String> {
    optional_size(config, key)?.ok_or_else(|| format!("\"{key}\" is missing"))
}

/// The context length: `n_positions`, or the older `n_ctx`; if both are given they must
/// agree.
fn context_length(config: &Json) -> std::result::Result<usize, String> {
    match (optional_size(config, "n_positions")?, optional_size(config, "n_ctx")?) {
        (Some(p), Some(c)) if p != c => {
            Err(format!("\"n_positions\" ({p}) and \"n_ctx\" ({c}) disagree"))
        }
        (Some(n), _) | (None, Some(n)) => Ok(n),
        (None, None) => Err("\"n_positions\" (or \"n_ctx\") is missing".into()),
    }
}

/// `layer_norm_epsilon` as an f32 (nearest), 1e-5 (GPT-2's) when absent.
fn layer_norm_epsilon(config: &Json) -> std::result::Result<f32, String> {
    match config.get("layer_norm_epsilon") {
        None => Ok(1e-5),
        Some(value) => value
            .as_f64()
            .map(|eps| eps as f32)
            .ok_or_else(|| format!("\"layer_norm_epsilon\" must be a number, found {value:?}")),
    }
}

/// Refuses configurations whose model differs from the one this crate computes.
fn check_supported(config: &Json, hparams: &HParams) -> std::result::Result<(), String> {
    if let Some(kind) = config.get("model_type").and_then(Json::as_str) {
        if kind != "gpt2" {
            return Err(format!("model_type is \"{kind}\", expected \"gpt2\""));
        }
    }
    if let Some(activation) = config.get("activation_function").and_then(Json::as_str) {
        if !matches!(activation, "gelu_new" | "gelu_pytorch_tanh") {
            return Err(format!(
                "activation_function \"{activation}\" is not supported (GPT-2 uses the tanh GELU, \"gelu_new\")"
            ));
        }
    }
    if let Some(n_inner) = config.get("n_inner").and_then(Json::as_u64) {
        if n_inner as usize != hparams.n_ffn() {
            return Err(format!(
                "n_inner {n_inner} is not supported (expected null or 4 * n_embd = {})",
                hparams.n_ffn()
            ));
        }
    }
    for (key, default) in [("scale_attn_weights", true), ("scale_attn_by_inverse_layer_idx", false)]
    {
        if let Some(Json::Bool(value)) = config.get(key) {
            if *value != default {
                return Err(format!("\"{key}\": {value} is not supported (GPT-2 uses {default})"));
            }
        }
    }
    Ok(())
}

/// Reads every weight from a GPT-2 `model.safetensors`, checking names, shapes and dtypes.
/// The tensors are the ones [`Weights::visit_mut`] lists, each read straight into its
/// place, row-major as stored (GPT-2's `Conv1D` keeps its weights `[n_in, n_out]`, the
/// layout `linear` uses, so nothing is transposed).
pub fn load_weights(path: &Path, hparams: &HParams) -> Result<Weights> {
    let file = SafeTensors::open(path)?;
    let has_prefix = file.tensors().iter().any(|t| t.name.starts_with("transformer."));
    let prefix = if has_prefix { "transformer." } else { "" };
    check_no_unexpected_tensors(&file, prefix, hparams)?;
    let mut weights = Weights::empty(hparams.n_layer);
    weights.visit_mut(hparams, |spec, data| {
        *data = file.read_f32(&format!("{prefix}{}", spec.name), &spec.shape)?;
        Ok::<(), Error>(())
    })?;
    if file.get("lm_head.weight").is_some() {
        let lm_head = file.read_f32("lm_head.weight", &[hparams.n_vocab, hparams.n_embd])?;
        if lm_head != weights.wte {
            return Err(Error::invalid_file(
                path,
                "lm_head.weight differs from wte.weight; GPT-2 ties them and this crate computes logits with wte",
            ));
        }
    }
    Ok(weights)
}

/// Every tensor in the file must be a GPT-2 weight or one of the buffers known to be
/// harmless; anything else means this is not the model we are about to compute.
fn check_no_unexpected_tensors(file: &SafeTensors, prefix: &str, hparams: &HParams) -> Result<()> {
    let mut known: Vec<String> =
        Weights::specs(hparams).into_iter().map(|spec| format!("{prefix}{}", spec.name)).collect();
    for i in 0..hparams.n_layer {
        for buffer in ["attn.bias", "attn.masked_bias"] {
            known.push(format!("{prefix}h.{i}.{buffer}"));
        }
    }
    known.push("lm_head.weight".into());
    match file.tensors().iter().find(|t| !known.contains(&t.name)) {
        Some(unexpected) => Err(Error::invalid_file(
            file.path(),
            format!(
                "unexpected tensor `{}`: not part of a {}-layer GPT-2 (is this the right checkpoint and config.json?)",
                unexpected.name, hparams.n_layer
            ),
        )),
        None => Ok(()),
    }
}
