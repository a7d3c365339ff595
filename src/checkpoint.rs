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
//! absent (the output layer is tied to `wte`) or present, in which case it must equal `wte`;
//! a config with `"tie_word_embeddings": false` must have it. Every tensor's shape is checked against `config.json`, and every weight must be finite.
//! Any other tensor is an error, so a checkpoint of some other architecture cannot load
//! silently.
//!
//! Two ways in, one way through: [`load_dir`] reads a folder, [`load_bytes`] takes the four
//! files' bytes ([`CheckpointBytes`], say from `include_bytes!`); both hand them to the same
//! checks, in the same order, with the same messages. So do the engine's loaders
//! ([`load_dir_engine`](crate::load_dir_engine),
//! [`load_bytes_engine`](crate::load_bytes_engine)), which read the tensors one at a time
//! straight into the engine instead of into a [`Model`]. Nothing is allocated that the
//! input's size does not justify: the text files have size limits ([`MAX_CONFIG_BYTES`],
//! [`MAX_VOCAB_BYTES`], [`MAX_MERGES_BYTES`]) checked before they are read, and nothing sized
//! by `config.json` is built before the safetensors header has confirmed it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use crate::bpe::Bpe;
use crate::error::{Error, Result};
use crate::hparams::HParams;
use crate::json::{self, Json};
use crate::model::{Model, TensorSpec, Weights, first_non_finite};
use crate::safetensors::SafeTensors;
use crate::tokenizer::Tokenizer;

/// The four files of a GPT-2 folder, as downloaded from the `gpt2` model repository.
pub const FILES: [&str; 4] = ["config.json", "model.safetensors", "vocab.json", "merges.txt"];

/// The largest `config.json` accepted: 1 MiB. GPT-2's is under 1 KB; the limit only stops
/// a wrong file from being read and parsed whole.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The largest `vocab.json` accepted: 32 MiB. GPT-2's (50,257 tokens) is 1 MB, and a
/// 256,000-token vocabulary is under 10 MB. Parsing holds the file as a JSON tree, about
/// ten times its size, so the limit also bounds that.
pub const MAX_VOCAB_BYTES: u64 = 32 << 20;

/// The largest `merges.txt` accepted: 32 MiB. GPT-2's (50,000 merges) is 456 KB.
pub const MAX_MERGES_BYTES: u64 = 32 << 20;

/// A GPT-2 checkpoint's four files, held in memory (say, compiled into the program with
/// `include_bytes!`). [`load_bytes`] checks them exactly as [`load_dir`] checks the files
/// of a folder, and names them by their usual file names in messages.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointBytes<'a> {
    /// The contents of `config.json`.
    pub config: &'a [u8],
    /// The contents of `model.safetensors`.
    pub safetensors: &'a [u8],
    /// The contents of `vocab.json`.
    pub vocab: &'a [u8],
    /// The contents of `merges.txt`.
    pub merges: &'a [u8],
}

/// Loads a GPT-2 folder: its tokenizer and its model.
///
/// The text files are read whole (each within its size limit, [`MAX_CONFIG_BYTES`], ...);
/// `model.safetensors` is read one tensor at a time, never whole. Then everything is
/// checked as [`load_bytes`] checks it, by the same code.
pub fn load_dir(dir: &Path) -> Result<(Bpe, Model)> {
    let (tokenizer, tensors) = open_dir(dir)?;
    Ok((tokenizer, tensors.into_model()?))
}

/// [`load_dir`] up to the weights: the tokenizer, and the weights ready to be read one
/// tensor at a time (the engine's loader, `load_dir_engine`, reads them straight into
/// the engine).
pub(crate) fn open_dir(dir: &Path) -> Result<(Bpe, CheckpointTensors<std::fs::File>)> {
    check_is_folder(dir)?;
    let paths = FILES.map(|file| dir.join(file));
    for path in &paths {
        check_is_regular_file(path)?;
    }
    let [config, safetensors, vocab, merges] = paths;
    let config = read_text_file(config, MAX_CONFIG_BYTES)?;
    let vocab = read_text_file(vocab, MAX_VOCAB_BYTES)?;
    let merges = read_text_file(merges, MAX_MERGES_BYTES)?;
    let weights = SafeTensors::open(&safetensors)?;
    open(Checkpoint { config, vocab, merges, weights })
}

/// Loads a GPT-2 checkpoint held in memory: its tokenizer and its model. The checks and
/// the messages are [`load_dir`]'s, by the same code; the files are named `config.json`,
/// `model.safetensors`, `vocab.json` and `merges.txt` in messages.
///
/// ```
/// use gpt2_edu::{CheckpointBytes, Tokenizer, load_bytes};
/// let checkpoint = CheckpointBytes {
///     config: include_bytes!("../tests/fixtures/tiny-gpt2/config.json"),
///     safetensors: include_bytes!("../tests/fixtures/tiny-gpt2/model.safetensors"),
///     vocab: include_bytes!("../tests/fixtures/tiny-gpt2/vocab.json"),
///     merges: include_bytes!("../tests/fixtures/tiny-gpt2/merges.txt"),
/// };
/// let (tokenizer, model) = load_bytes(&checkpoint)?;
/// assert_eq!((model.hparams.n_layer, model.hparams.n_embd), (3, 32));
/// let logits = model.forward(&tokenizer.encode("hello"))?;
/// assert_eq!(logits.len() % model.hparams.n_vocab, 0);
///
/// // A corrupt buffer gets the message the same corrupt file would get.
/// let broken = CheckpointBytes { config: b"{\"n_layer\": 3,", ..checkpoint };
/// let error = load_bytes(&broken).unwrap_err().to_string();
/// assert_eq!(error, "config.json: invalid JSON at byte 14: expected a string key");
/// # Ok::<(), gpt2_edu::Error>(())
/// ```
pub fn load_bytes(files: &CheckpointBytes<'_>) -> Result<(Bpe, Model)> {
    let (tokenizer, tensors) = open_bytes(files)?;
    Ok((tokenizer, tensors.into_model()?))
}

/// [`load_bytes`] up to the weights, as [`open_dir`] is [`load_dir`] up to them.
pub(crate) fn open_bytes<'a>(
    files: &CheckpointBytes<'a>,
) -> Result<(Bpe, CheckpointTensors<Cursor<&'a [u8]>>)> {
    fn text<'a>(name: &str, bytes: &'a [u8], limit: u64) -> Result<Text<'a>> {
        let path = PathBuf::from(name);
        check_size(&path, bytes.len() as u64, limit)?;
        Ok(Text { path, bytes: Cow::Borrowed(bytes) })
    }
    let config = text("config.json", files.config, MAX_CONFIG_BYTES)?;
    let vocab = text("vocab.json", files.vocab, MAX_VOCAB_BYTES)?;
    let merges = text("merges.txt", files.merges, MAX_MERGES_BYTES)?;
    let weights =
        SafeTensors::from_reader(Path::new("model.safetensors"), Cursor::new(files.safetensors))?;
    open(Checkpoint { config, vocab, merges, weights })
}

/// A text file's bytes (read from disk, or borrowed), with the name messages give it.
struct Text<'a> {
    path: PathBuf,
    bytes: Cow<'a, [u8]>,
}

impl Text<'_> {
    /// The bytes as UTF-8 text.
    fn as_str(&self) -> Result<&str> {
        std::str::from_utf8(&self.bytes).map_err(|e| {
            Error::invalid_file(&self.path, format!("is not UTF-8 text ({e}); save it as UTF-8"))
        })
    }
}

/// A checkpoint's files, wherever they come from: the three text files' bytes, and the
/// safetensors file with its header read and checked.
struct Checkpoint<'a, R> {
    config: Text<'a>,
    vocab: Text<'a>,
    merges: Text<'a>,
    weights: SafeTensors<R>,
}

/// A checkpoint whose small parts are read and checked (`config.json`, the tokenizer, the
/// safetensors header and its tensor names), its weights still in the file: read them one
/// tensor at a time with [`read`](Self::read), in [`Weights::visit_mut`]'s order.
pub(crate) struct CheckpointTensors<R> {
    file: SafeTensors<R>,
    hparams: HParams,
    /// `transformer.` or nothing, as the file names its tensors.
    prefix: &'static str,
}

impl<R: Read + Seek> CheckpointTensors<R> {
    /// The hyper-parameters, from `config.json`.
    pub(crate) fn hparams(&self) -> HParams {
        self.hparams
    }

    /// Reads the tensor `spec` into `data`, checked as [`read_weights`] checks it.
    pub(crate) fn read(&mut self, spec: &TensorSpec, data: &mut Vec<f32>) -> Result<()> {
        read_tensor(&mut self.file, self.prefix, &self.hparams, spec, data)
    }

    /// Every tensor, read into a [`Model`].
    fn into_model(mut self) -> Result<Model> {
        let hparams = self.hparams;
        let mut weights = Weights::empty(hparams.n_layer);
        weights.visit_mut(&hparams, |spec, data| self.read(spec, data))?;
        Model::new(hparams, weights)
    }
}

/// The one opening path of [`load_dir`] and [`load_bytes`] (and of the engine's loaders):
/// the hyper-parameters, the tokenizer and their agreement first (small files, quick to
/// check), then the tensor names the safetensors header lists.
fn open<R: Read + Seek>(checkpoint: Checkpoint<'_, R>) -> Result<(Bpe, CheckpointTensors<R>)> {
    let Checkpoint { config, vocab, merges, weights } = checkpoint;
    let (hparams, tied) = config_from_text(&config.path, config.as_str()?)?;
    let tokenizer = Bpe::from_texts(vocab.as_str()?, &vocab.path, merges.as_str()?, &merges.path)?;
    if tokenizer.n_vocab() > hparams.n_vocab {
        return Err(Error::invalid_file(
            &vocab.path,
            format!(
                "holds {} tokens, but {}'s vocab_size is {}: the model has no embedding for \
                 tokens {} and up (is this vocab.json from the same checkpoint? a vocab_size \
                 larger than the tokenizer's is fine, a smaller one is not)",
                tokenizer.n_vocab(),
                config.path.display(),
                hparams.n_vocab,
                hparams.n_vocab
            ),
        ));
    }
    if !tied && weights.get("lm_head.weight").is_none() {
        return Err(Error::invalid_file(
            &config.path,
            "\"tie_word_embeddings\": false, but model.safetensors has no lm_head.weight: \
             transformers would give the model a random output layer; this crate computes \
             logits with wte, so it needs them tied (or an lm_head.weight equal to wte)",
        ));
    }
    let prefix = check_tensor_names(&weights, &hparams)?;
    Ok((tokenizer, CheckpointTensors { file: weights, hparams, prefix }))
}

/// An [`Error::Io`] for `path`, with the crate's own `message`.
fn refused(path: &Path, kind: std::io::ErrorKind, message: impl Into<String>) -> Error {
    Error::Io { path: path.display().to_string(), kind, message: message.into() }
}

/// The folder must be a folder. A file inside a checkpoint folder (the usual slip: the
/// path of `model.safetensors`) gets the folder to try instead.
fn check_is_folder(dir: &Path) -> Result<()> {
    let wanted =
        format!("a GPT-2 checkpoint is loaded from the folder that holds {}", FILES.join(", "));
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => {
            let parent =
                dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Err(refused(
                dir,
                std::io::ErrorKind::Other,
                format!("is a file, not a folder: {wanted}; try {}", parent.display()),
            ))
        }
        // A missing folder is reported as its first missing file, `dir/config.json`.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, &e)),
    }
}

/// Each checkpoint file must be a regular file (or a symlink to one). Anything else is
/// said for what it is, and is never opened (opening a FIFO would block).
fn check_is_regular_file(path: &Path) -> Result<()> {
    use std::io::ErrorKind;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) if meta.is_dir() => {
            Err(refused(path, ErrorKind::Other, "is a directory, but it should be a file"))
        }
        Ok(meta) => Err(refused(
            path,
            ErrorKind::Other,
            format!(
                "is not a regular file ({}), so it is not read; it should be a file",
                file_kind(&meta.file_type())
            ),
        )),
        Err(e) => match std::fs::symlink_metadata(path) {
            Ok(link) if link.file_type().is_symlink() => Err(refused(
                path,
                e.kind(),
                format!(
                    "is a symlink that cannot be followed ({e}): a symlink loop, or a link to \
                     nothing; point it at the file"
                ),
            )),
            _ if e.kind() == ErrorKind::NotFound => Err(not_found(path)),
            _ => Err(Error::io(path, &e)),
        },
    }
}

/// What kind of file that is not a regular file or a directory `kind` is.
fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        } else if kind.is_socket() {
            return "a socket";
        } else if kind.is_char_device() {
            return "a character device";
        } else if kind.is_block_device() {
            return "a block device";
        }
    }
    let _ = kind;
    "a special file"
}

/// The error for a checkpoint file that is not there, with a hint when the folder holds
/// what people often have instead: PyTorch's `pytorch_model.bin`, or a sharded checkpoint.
fn not_found(path: &Path) -> Error {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut message =
        format!("not found; a GPT-2 folder needs {} (see the README)", FILES.join(", "));
    if path.file_name().is_some_and(|name| name == "model.safetensors") {
        if dir.join("pytorch_model.bin").is_file() {
            message = format!(
                "not found; this folder has pytorch_model.bin instead, PyTorch's pickle format, \
                 which this crate does not read (unpickling can run code): download \
                 model.safetensors from the same model repository, or convert with Python's \
                 transformers: GPT2LMHeadModel.from_pretrained(\"{0}\").save_pretrained(\"{0}\")",
                dir.display()
            );
        } else if dir.join("model.safetensors.index.json").is_file() {
            message = "not found; this folder holds a sharded checkpoint \
                       (model.safetensors.index.json and model-0000x-of-0000y.safetensors), \
                       which this crate does not read: save the model as one \
                       model.safetensors"
                .to_string();
        }
    }
    refused(path, std::io::ErrorKind::NotFound, message)
}

/// A text file's size must be at most `limit` bytes, checked before it is read.
fn check_size(path: &Path, len: u64, limit: u64) -> Result<()> {
    if len <= limit {
        return Ok(());
    }
    Err(Error::invalid_file(
        path,
        format!(
            "{len} bytes, over the {limit}-byte limit for this file (GPT-2's is 1 MB or less): \
             is it the right file?"
        ),
    ))
}

/// Reads a text file of at most `limit` bytes, checking its size before reading it (and
/// reading at most one byte past the limit, should it grow meanwhile).
fn read_text_file(path: PathBuf, limit: u64) -> Result<Text<'static>> {
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, &e))?;
    let len = file.metadata().map_err(|e| Error::io(&path, &e))?.len();
    check_size(&path, len, limit)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io(&path, &e))?;
    check_size(&path, bytes.len() as u64, limit)?;
    Ok(Text { path, bytes: Cow::Owned(bytes) })
}

/// Reads the hyper-parameters from a HuggingFace GPT-2 `config.json`: `n_layer`, `n_head`,
/// `n_embd`, `n_positions` (or the older `n_ctx`), `vocab_size`, `layer_norm_epsilon`.
/// Settings that would make the model compute something else than this crate does (another
/// activation, a different feed-forward width, other attention scaling) are refused, and so
/// are those settings written with the wrong JSON type (`"n_inner": "64"`).
pub fn load_config(path: &Path) -> Result<HParams> {
    check_is_regular_file(path)?;
    let config = read_text_file(path.to_path_buf(), MAX_CONFIG_BYTES)?;
    Ok(config_from_text(path, config.as_str()?)?.0)
}

/// The hyper-parameters in the text of a `config.json` (`path` is for messages).
/// The hyper-parameters, and whether the output layer is tied to `wte`
/// (`tie_word_embeddings`, true when absent).
fn config_from_text(path: &Path, text: &str) -> Result<(HParams, bool)> {
    let bad = |message: String| Error::invalid_file(path, message);
    let config = json::parse(text).map_err(|e| bad(e.to_string()))?;
    if config.as_object().is_none() {
        return Err(bad(format!("expected a JSON object, found {}", config.kind())));
    }
    let hparams = hparams_from_config(&config).map_err(bad)?;
    hparams.validate().map_err(|e| bad(e.to_string()))?;
    check_supported(&config, &hparams).map_err(bad)?;
    let tied = match config.get("tie_word_embeddings") {
        None => true,
        Some(Json::Bool(tied)) => *tied,
        Some(other) => {
            return Err(
                bad(wrong_type("tie_word_embeddings", "true or false", other).unwrap_err()),
            );
        }
    };
    Ok((hparams, tied))
}

/// A JSON value as a message shows it: `the number 5`, `the string "64"`, `an array`, ...
fn shown(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(text) => format!("the number {text}"),
        Json::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Json::String(_) => "a string".into(),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
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
            .ok_or_else(|| format!("\"{key}\" must be a whole number, found {}", shown(value))),
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
        Some(value) => value.as_f64().map(|eps| eps as f32).ok_or_else(|| {
            format!("\"layer_norm_epsilon\" must be a number, found {}", shown(value))
        }),
    }
}

/// The error for a guard key of `config.json` with the wrong JSON type.
fn wrong_type(key: &str, expected: &str, value: &Json) -> std::result::Result<(), String> {
    Err(format!("\"{key}\" must be {expected}, found {}", shown(value)))
}

/// Refuses configurations whose model differs from the one this crate computes, and
/// those keys written with another JSON type than transformers writes (transformers would
/// read `"scale_attn_weights": "false"` as true, being a non-empty string; guessing what
/// was meant is not safe).
fn check_supported(config: &Json, hparams: &HParams) -> std::result::Result<(), String> {
    match config.get("model_type") {
        None => {}
        Some(Json::String(kind)) if kind == "gpt2" => {}
        Some(Json::String(kind)) => {
            return Err(format!("model_type is \"{kind}\", expected \"gpt2\""));
        }
        Some(other) => return wrong_type("model_type", "the string \"gpt2\"", other),
    }
    match config.get("activation_function") {
        None => {}
        Some(Json::String(activation))
            if matches!(activation.as_str(), "gelu_new" | "gelu_pytorch_tanh") => {}
        Some(Json::String(activation)) => {
            return Err(format!(
                "activation_function \"{activation}\" is not supported (GPT-2 uses the tanh GELU, \"gelu_new\")"
            ));
        }
        Some(other) => {
            return wrong_type("activation_function", "a string such as \"gelu_new\"", other);
        }
    }
    check_ffn_and_scaling(config, hparams)
}

/// [`check_supported`]'s second half: the feed-forward width and the attention scaling.
fn check_ffn_and_scaling(config: &Json, hparams: &HParams) -> std::result::Result<(), String> {
    match config.get("n_inner") {
        None | Some(Json::Null) => {}
        Some(value) => match value.as_u64() {
            Some(n_inner) if n_inner == hparams.n_ffn() as u64 => {}
            Some(n_inner) => {
                return Err(format!(
                    "n_inner {n_inner} is not supported (expected null or 4 * n_embd = {})",
                    hparams.n_ffn()
                ));
            }
            None => return wrong_type("n_inner", "null or a whole number", value),
        },
    }
    for (key, default) in [("scale_attn_weights", true), ("scale_attn_by_inverse_layer_idx", false)]
    {
        match config.get(key) {
            None => {}
            Some(Json::Bool(value)) if *value == default => {}
            Some(Json::Bool(value)) => {
                return Err(format!("\"{key}\": {value} is not supported (GPT-2 uses {default})"));
            }
            Some(other) => {
                return wrong_type(key, &format!("true or false ({default} for GPT-2)"), other);
            }
        }
    }
    Ok(())
}

/// Reads every weight from a GPT-2 `model.safetensors` file, checking names, shapes,
/// dtypes and values, as [`read_weights`] does.
pub fn load_weights(path: &Path, hparams: &HParams) -> Result<Weights> {
    check_is_regular_file(path)?;
    read_weights(&mut SafeTensors::open(path)?, hparams)
}

/// Reads every weight of a GPT-2 with `hparams` from an open safetensors file, checking
/// names, shapes and dtypes, and that every value is finite. The tensors are the ones
/// [`Weights::visit_mut`] lists, each read straight into its place, row-major as stored
/// (GPT-2's `Conv1D` keeps its weights `[n_in, n_out]`, the layout `linear` uses, so
/// nothing is transposed). An `lm_head.weight` must equal `wte`; it is compared as soon as
/// `wte` has been read, a chunk at a time, never held whole.
///
/// Nothing sized by `hparams` is allocated before the file's own tensor list has been
/// checked against it: a `config.json` claiming a billion layers is refused at once.
pub fn read_weights<R: Read + Seek>(
    file: &mut SafeTensors<R>,
    hparams: &HParams,
) -> Result<Weights> {
    let prefix = check_tensor_names(file, hparams)?;
    let mut weights = Weights::empty(hparams.n_layer);
    weights.visit_mut(hparams, |spec, data| read_tensor(file, prefix, hparams, spec, data))?;
    Ok(weights)
}

/// The file's tensor names against `hparams`, before anything sized by them is built: the
/// naming prefix (returned), the number of blocks, and no tensor a GPT-2 does not have.
fn check_tensor_names<R>(file: &SafeTensors<R>, hparams: &HParams) -> Result<&'static str> {
    let prefix = naming_prefix(file)?;
    check_layer_count(file, prefix, hparams)?;
    check_no_unexpected_tensors(file, prefix, hparams)?;
    Ok(prefix)
}

/// Reads the tensor `spec` (named with `prefix`) into `data`: its shape and dtype checked,
/// every value finite; after `wte`, the `lm_head.weight` check.
fn read_tensor<R: Read + Seek>(
    file: &mut SafeTensors<R>,
    prefix: &str,
    hparams: &HParams,
    spec: &TensorSpec,
    data: &mut Vec<f32>,
) -> Result<()> {
    let name = format!("{prefix}{}", spec.name);
    *data = file.read_f32(&name, &spec.shape)?;
    check_finite(file.path(), &name, data)?;
    if spec.name == "wte.weight" {
        check_lm_head(file, prefix, hparams, data)?;
    }
    Ok(())
}

/// An `lm_head.weight`, if the file has one, must be finite and equal `wte` (GPT-2 ties
/// them, and this crate computes logits with `wte`). It is compared with `wte` a chunk at
/// a time as it is read, so it never exists whole in memory.
fn check_lm_head<R: Read + Seek>(
    file: &mut SafeTensors<R>,
    prefix: &str,
    hparams: &HParams,
    wte: &[f32],
) -> Result<()> {
    const NAME: &str = "lm_head.weight";
    if file.get(NAME).is_none() {
        return Ok(());
    }
    let (mut at, mut first_bad, mut differs) = (0, None, false);
    file.read_f32_chunks(NAME, &[hparams.n_vocab, hparams.n_embd], |chunk| {
        if first_bad.is_none() {
            let bad = first_non_finite(chunk);
            first_bad = bad.map(|i| (at + i, chunk[i]));
        }
        differs |= chunk != &wte[at..at + chunk.len()]; // the shapes were checked equal
        at += chunk.len();
    })?;
    if let Some((index, value)) = first_bad {
        return Err(non_finite(file.path(), NAME, index, &value.to_string()));
    }
    if differs {
        return Err(Error::invalid_file(
            file.path(),
            format!(
                "{NAME} differs from {prefix}wte.weight; GPT-2 ties them and this crate computes logits with wte"
            ),
        ));
    }
    Ok(())
}

/// Every weight must be a finite number: one NaN or infinity makes every logit NaN, and
/// generation would produce garbage (or fail far from the cause). [`Model::new`] checks it
/// too; here the message also names the file, and comes before the next tensor is read.
fn check_finite(path: &Path, tensor: &str, data: &[f32]) -> Result<()> {
    match first_non_finite(data) {
        None => Ok(()),
        Some(index) => Err(non_finite(path, tensor, index, &data[index].to_string())),
    }
}

/// The error for the non-finite `value` at `index` of `tensor` in the file `path`.
fn non_finite(path: &Path, tensor: &str, index: usize, value: &str) -> Error {
    let why = Error::NonFiniteWeight { tensor: tensor.into(), index, value: value.into() };
    Error::invalid_file(path, why.to_string())
}

/// The prefix every tensor name has: `transformer.` if the token embedding is
/// `transformer.wte.weight` (HuggingFace's `GPT2LMHeadModel`), none if it is `wte.weight`
/// (`GPT2Model`). The other tensors are then held to the same naming.
fn naming_prefix<R>(file: &SafeTensors<R>) -> Result<&'static str> {
    if file.get("transformer.wte.weight").is_some() {
        Ok("transformer.")
    } else if file.get("wte.weight").is_some() {
        Ok("")
    } else {
        Err(Error::invalid_file(
            file.path(),
            "has neither `wte.weight` nor `transformer.wte.weight`, the token embeddings every \
             GPT-2 checkpoint has (is this a GPT-2 checkpoint?)",
        ))
    }
}

/// The file's blocks must be the `n_layer` that `config.json` says: checked from the
/// tensor names alone (the highest `h.{i}.` plus one), before anything sized by `n_layer`
/// is built. More blocks than that are left to [`check_no_unexpected_tensors`], which
/// names the first extra tensor.
fn check_layer_count<R>(file: &SafeTensors<R>, prefix: &str, hparams: &HParams) -> Result<()> {
    let layer_of = |name: &str| {
        let rest = name.strip_prefix(prefix)?.strip_prefix("h.")?;
        rest.split('.').next()?.parse::<usize>().ok()
    };
    let n_file = file.tensors().iter().filter_map(|t| layer_of(&t.name)).max().map_or(0, |i| i + 1);
    if n_file >= hparams.n_layer {
        return Ok(());
    }
    let blocks = match n_file {
        0 => "no block at all (no tensor named h.0.*)".to_string(),
        1 => "1 block (h.0)".to_string(),
        n => format!("{n} blocks (h.0 to h.{})", n - 1),
    };
    Err(Error::invalid_file(
        file.path(),
        format!(
            "holds {blocks}, but config.json says n_layer = {}: is config.json from this checkpoint?",
            hparams.n_layer
        ),
    ))
}

/// Every tensor in the file must be a GPT-2 weight or one of the buffers known to be
/// harmless; anything else means this is not the model we are about to compute. A tensor
/// named the other way (with the `transformer.` prefix when `wte.weight` has none, or
/// without it when it has) is named as such.
fn check_no_unexpected_tensors<R>(
    file: &SafeTensors<R>,
    prefix: &str,
    hparams: &HParams,
) -> Result<()> {
    let mut known: HashSet<String> =
        Weights::specs(hparams).into_iter().map(|spec| format!("{prefix}{}", spec.name)).collect();
    for i in 0..hparams.n_layer {
        for buffer in ["attn.bias", "attn.masked_bias"] {
            known.insert(format!("{prefix}h.{i}.{buffer}"));
        }
    }
    known.insert("lm_head.weight".into());
    let Some(unexpected) = file.tensors().iter().find(|t| !known.contains(&t.name)) else {
        return Ok(());
    };
    let name = &unexpected.name;
    let why = match (prefix, name.strip_prefix("transformer.")) {
        ("", Some(_)) => "it has the `transformer.` prefix, but `wte.weight` and the others do \
                          not: a checkpoint names all its tensors one way"
            .to_string(),
        ("transformer.", None) if known.contains(&format!("transformer.{name}")) => {
            "it lacks the `transformer.` prefix that `transformer.wte.weight` and the others \
             have: a checkpoint names all its tensors one way"
                .to_string()
        }
        _ => format!(
            "not part of a {}-layer GPT-2 (config.json says n_layer = {}; is this the right \
             checkpoint and config.json?)",
            hparams.n_layer, hparams.n_layer
        ),
    };
    Err(Error::invalid_file(file.path(), format!("unexpected tensor `{name}`: {why}")))
}
