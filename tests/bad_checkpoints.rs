//! Broken checkpoint folders: every way a file can be wrong gives one clear error that names
//! the file or tensor, never a panic and never a silently wrong model.
//!
//! Loading from memory ([`load_bytes`]) and from a folder ([`load_dir`]) are one code path,
//! and the first tests below prove they agree on good and corrupt files alike; so the
//! thousands of corruptions of the fuzz-like tests run in memory, with no file written.
//!
//! Every corruption is also loaded straight into the engine ([`load_dir_engine`],
//! [`load_bytes_engine`], in each dtype), which must refuse it with the very same message.

use std::path::{Path, PathBuf};

use gpt2_edu::checkpoint::{FILES, load_config, load_dir, load_weights};
use gpt2_edu::safetensors::SafeTensors;
use gpt2_edu::{CheckpointBytes, Dtype, Engine, Tokenizer, load_bytes};
use gpt2_edu::{load_bytes_engine, load_dir_engine};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2")
}

/// A fresh copy of the tiny F32 checkpoint folder, removed again when dropped.
struct ScratchCopy(PathBuf);

impl std::ops::Deref for ScratchCopy {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_copy(test: &str) -> ScratchCopy {
    let dir = std::env::temp_dir().join(format!("gpt2-edu-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for file in FILES {
        std::fs::copy(fixture().join(file), dir.join(file)).unwrap();
    }
    ScratchCopy(dir)
}

/// The error of loading the folder `dir`, which loading it straight into the engine must
/// give too, word for word, in every dtype.
fn error_of(dir: &Path) -> String {
    let error = match load_dir(dir) {
        Ok(_) => panic!("{} loaded, but it should not", dir.display()),
        Err(error) => error.to_string(),
    };
    for dtype in Dtype::ALL {
        match load_dir_engine(dir, dtype) {
            Ok(_) => panic!("{} loaded into a {dtype} engine, but it should not", dir.display()),
            Err(engine_error) => assert_eq!(engine_error.to_string(), error, "{dtype}"),
        }
    }
    error
}

/// A safetensors file from `(name, dtype, shape, bytes)` entries, laid out back to back.
fn write_safetensors(path: &Path, entries: &[(String, &str, Vec<usize>, Vec<u8>)]) {
    let mut header = Vec::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in entries {
        let (begin, end) = (data.len(), data.len() + bytes.len());
        header.push(format!(
            r#""{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{begin},{end}]}}"#
        ));
        data.extend_from_slice(bytes);
    }
    let header = format!("{{{}}}", header.join(","));
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&data);
    std::fs::write(path, file).unwrap();
}

/// The tiny checkpoint's tensors as F32 entries, to be edited and written back.
fn original_entries() -> Vec<(String, &'static str, Vec<usize>, Vec<u8>)> {
    let mut file = SafeTensors::open(&fixture().join("model.safetensors")).unwrap();
    let tensors = file.tensors().to_vec();
    tensors
        .iter()
        .map(|t| {
            let values = file.read_f32(&t.name, &t.shape).unwrap();
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (t.name.clone(), "F32", t.shape.clone(), bytes)
        })
        .collect()
}

#[test]
fn a_missing_file_is_named() {
    for file in FILES {
        let dir = scratch_copy("missing");
        std::fs::remove_file(dir.join(file)).unwrap();
        let error = error_of(&dir);
        assert!(error.contains(file) && error.contains("not found"), "{error}");
    }
}

/// The tiny checkpoint's four files, read into memory.
struct FixtureBytes {
    config: Vec<u8>,
    safetensors: Vec<u8>,
    vocab: Vec<u8>,
    merges: Vec<u8>,
}

impl FixtureBytes {
    fn read() -> Self {
        let read = |file: &str| std::fs::read(fixture().join(file)).unwrap();
        FixtureBytes {
            config: read("config.json"),
            safetensors: read("model.safetensors"),
            vocab: read("vocab.json"),
            merges: read("merges.txt"),
        }
    }

    fn borrowed(&self) -> CheckpointBytes<'_> {
        CheckpointBytes {
            config: &self.config,
            safetensors: &self.safetensors,
            vocab: &self.vocab,
            merges: &self.merges,
        }
    }

    /// The bytes of `file` (one of [`FILES`]).
    fn file_mut(&mut self, file: &str) -> &mut Vec<u8> {
        match file {
            "config.json" => &mut self.config,
            "model.safetensors" => &mut self.safetensors,
            "vocab.json" => &mut self.vocab,
            _ => &mut self.merges,
        }
    }
}

/// The error of loading `files` from memory, which loading them straight into the engine
/// must give too, word for word, in every dtype.
fn bytes_error(files: CheckpointBytes<'_>) -> String {
    let error = match load_bytes(&files) {
        Ok(_) => panic!("the bytes loaded, but they should not"),
        Err(error) => error.to_string(),
    };
    for dtype in Dtype::ALL {
        assert_eq!(engine_bytes_error(&files, dtype), error, "{dtype}");
    }
    error
}

/// The error of loading `files` straight into an engine in `dtype`.
fn engine_bytes_error(files: &CheckpointBytes<'_>, dtype: Dtype) -> String {
    match load_bytes_engine(files, dtype) {
        Ok(_) => panic!("the bytes loaded into a {dtype} engine, but they should not"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn memory_and_folder_give_identical_models_and_tokenizers() {
    let bytes = FixtureBytes::read();
    let (tokenizer, model) = load_bytes(&bytes.borrowed()).unwrap();
    let (dir_tokenizer, dir_model) = load_dir(&fixture()).unwrap();
    assert_eq!(model, dir_model, "hyper-parameters and every weight");
    assert_eq!(tokenizer.n_vocab(), dir_tokenizer.n_vocab());
    let all_ids: Vec<u32> = (0..tokenizer.n_vocab() as u32).collect();
    assert_eq!(tokenizer.decode_bytes(&all_ids), dir_tokenizer.decode_bytes(&all_ids));
    let text = "The quick brown fox, naïvely, jumps!";
    assert_eq!(tokenizer.encode(text), dir_tokenizer.encode(text));
    assert_eq!(model.hparams.n_layer, 3, "not an empty model");
}

#[test]
fn a_corrupt_buffer_gets_the_same_error_as_the_same_corrupt_file() {
    let original = FixtureBytes::read();
    let header_end = 8 + u64::from_le_bytes(original.safetensors[..8].try_into().unwrap()) as usize;
    let nan = f32::NAN.to_le_bytes();
    type Edit = Box<dyn Fn(&mut Vec<u8>)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("config.json", Box::new(|b| b.truncate(14))),
        ("config.json", Box::new(|b| b.splice(0..0, "\u{feff}".bytes()).for_each(drop))),
        ("config.json", Box::new(|b| b.push(0xFF))),
        ("vocab.json", Box::new(|b| b.truncate(b.len() / 2))),
        ("merges.txt", Box::new(|b| b.extend(b"\nnot-a-pair\n"))),
        ("model.safetensors", Box::new(|b| b.truncate(5))),
        ("model.safetensors", Box::new(move |b| b.truncate(header_end - 1))),
        ("model.safetensors", Box::new(|b| b.truncate(b.len() - 1))),
        ("model.safetensors", Box::new(move |b| b[header_end / 2] ^= 0x20)),
        (
            "model.safetensors",
            Box::new(move |b| b[header_end + 8..header_end + 12].copy_from_slice(&nan)),
        ),
        ("model.safetensors", Box::new(|b| b.clear())),
    ];
    let dir = scratch_copy("parity");
    for (file, edit) in &edits {
        let mut bytes = FixtureBytes::read();
        edit(bytes.file_mut(file));
        std::fs::write(dir.join(file), &*bytes.file_mut(file)).unwrap();
        let from_file = error_of(&dir);
        let from_bytes = bytes_error(bytes.borrowed());
        let prefix = format!("{}{}", dir.display(), std::path::MAIN_SEPARATOR);
        assert_eq!(from_file.replace(&prefix, ""), from_bytes, "{file}");
        assert!(
            from_bytes.starts_with(file)
                || from_bytes.contains(&format!("`{file}"))
                || from_bytes.contains("tensor"),
            "{from_bytes}"
        );
        std::fs::write(dir.join(file), original_file(file)).unwrap();
    }
}

/// The fixture's `file`, as committed.
fn original_file(file: &str) -> Vec<u8> {
    std::fs::read(fixture().join(file)).unwrap()
}

#[test]
fn every_truncation_of_the_safetensors_file_is_an_error() {
    let mut bytes = FixtureBytes::read();
    let original = std::mem::take(&mut bytes.safetensors);
    let header_end = 8 + u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let mut lengths: Vec<usize> = (0..original.len()).step_by(997).collect();
    lengths.extend([1, 7, 8, 9, header_end - 1, header_end, header_end + 1, original.len() - 1]);
    for len in lengths {
        let error =
            bytes_error(CheckpointBytes { safetensors: &original[..len], ..bytes.borrowed() });
        assert!(error.starts_with("model.safetensors: "), "{len}: {error}");
    }
    // And one on disk, through load_weights.
    let hparams = load_config(&fixture().join("config.json")).unwrap();
    let dir = scratch_copy("truncated");
    let path = dir.join("model.safetensors");
    std::fs::write(&path, &original[..header_end + 1]).unwrap();
    let error = load_weights(&path, &hparams).unwrap_err().to_string();
    assert!(error.contains("model.safetensors: the tensors' data ends at byte"), "{error}");
}

#[test]
fn header_bit_flips_are_errors_or_harmless() {
    let bytes = FixtureBytes::read();
    let original = &bytes.safetensors;
    let (_, reference) = load_dir(&fixture()).unwrap();
    let engines = Dtype::ALL.map(|dtype| Engine::with_dtype(reference.clone(), dtype).unwrap());
    let header_end = 8 + u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let (mut errors, mut harmless) = (0, 0);
    // Every bit of the length field, and every bit of every header byte.
    let mut flipped = original.clone();
    for byte in 0..header_end {
        for bit in 0..8 {
            flipped[byte] ^= 1 << bit;
            let files = CheckpointBytes { safetensors: &flipped, ..bytes.borrowed() };
            let which = (8 * byte + bit) % 3; // each flip, one engine dtype in turn
            let dtype = Dtype::ALL[which];
            match (load_bytes(&files), load_bytes_engine(&files, dtype)) {
                (Err(error), Err(engine_error)) => {
                    assert_eq!(engine_error, error, "byte {byte} bit {bit}, {dtype}");
                    errors += 1;
                }
                // Only a flip that changes nothing the model reads (the metadata's value, say)
                // may load, and then it must load the very same weights.
                (Ok((_, model)), Ok((_, engine))) => {
                    assert_eq!(model, reference, "byte {byte} bit {bit} loaded different weights");
                    assert_eq!(engine, engines[which], "byte {byte} bit {bit}, {dtype}");
                    harmless += 1;
                }
                (model, engine) => panic!(
                    "byte {byte} bit {bit}: the model loaded ({}) but the {dtype} engine did \
                     not, or the other way round ({})",
                    model.is_ok(),
                    engine.is_ok()
                ),
            }
            flipped[byte] ^= 1 << bit;
        }
    }
    assert!(errors > 20 * harmless, "{errors} errors, {harmless} harmless flips");
}

#[test]
fn an_oversized_header_is_refused_before_reading_it() {
    let dir = scratch_copy("oversized");
    let mut bytes = (200_000_000u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    let error = error_of(&dir);
    assert!(
        error.contains(
            "model.safetensors: header length 200000000 bytes is over the 100000000-byte limit"
        ),
        "{error}"
    );
}

#[test]
fn an_unsupported_dtype_a_missing_tensor_and_an_unexpected_tensor_are_named() {
    let dir = scratch_copy("tensors");
    let path = dir.join("model.safetensors");

    let mut entries = original_entries();
    let wte = entries.iter_mut().find(|e| e.0 == "transformer.wte.weight").unwrap();
    wte.1 = "I32"; // same size as F32: the layout is valid, the dtype is not loadable
    write_safetensors(&path, &entries);
    let error = error_of(&dir);
    assert!(
        error.contains("tensor `transformer.wte.weight` has dtype I32, but only F32, F16 and BF16"),
        "{error}"
    );

    let mut entries = original_entries();
    entries.retain(|e| e.0 != "transformer.h.1.ln_2.bias");
    write_safetensors(&path, &entries);
    let error = error_of(&dir);
    assert!(error.contains("tensor `transformer.h.1.ln_2.bias` is missing"), "{error}");

    let mut entries = original_entries();
    entries.push(("transformer.h.3.ln_1.weight".into(), "F32", vec![32], vec![0; 128]));
    write_safetensors(&path, &entries);
    let error = error_of(&dir);
    assert!(error.contains("unexpected tensor `transformer.h.3.ln_1.weight`"), "{error}");

    let mut entries = original_entries();
    let wte = entries.iter().find(|e| e.0 == "transformer.wte.weight").unwrap();
    let mut lm_head = wte.3.clone();
    lm_head[0] ^= 1;
    entries.push(("lm_head.weight".into(), "F32", wte.2.clone(), lm_head));
    write_safetensors(&path, &entries);
    let error = error_of(&dir);
    assert!(error.contains("lm_head.weight differs from transformer.wte.weight"), "{error}");
}

#[test]
fn a_shape_that_disagrees_with_config_json_is_named_with_both_shapes() {
    let dir = scratch_copy("shape");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"vocab_size\": 513", "\"vocab_size\": 514"),
    )
    .unwrap();
    let error = error_of(&dir);
    assert_eq!(
        error,
        "tensor `transformer.wte.weight` has shape [513, 32] but the hyper-parameters call for [514, 32]"
    );
}

#[test]
fn corrupt_text_files_are_named() {
    for (file, edit, needle) in [
        ("config.json", "{\"n_layer\": 3,", "config.json: invalid JSON at byte 14"),
        (
            "config.json",
            "{\"n_layer\": 3}",
            "config.json: \"n_positions\" (or \"n_ctx\") is missing",
        ),
        (
            "config.json",
            "{\"n_layer\": 3, \"n_head\": 5, \"n_embd\": 32, \"n_positions\": 64, \"vocab_size\": 513}",
            "n_head = 5 must divide n_embd = 32",
        ),
        (
            "config.json",
            "{\"n_layer\": 3, \"n_head\": 4, \"n_embd\": 32, \"n_positions\": 64, \"vocab_size\": 513, \"activation_function\": \"relu\"}",
            "activation_function \"relu\" is not supported",
        ),
        ("vocab.json", "{\"a\": 0", "vocab.json: invalid JSON"),
        (
            "merges.txt",
            "#version: 0.2\nĠ t\nnot-a-pair\n",
            "merges.txt: line 3: expected two tokens",
        ),
        ("model.safetensors", "", "model.safetensors: too short"),
    ] {
        let dir = scratch_copy("text");
        std::fs::write(dir.join(file), edit).unwrap();
        let error = error_of(&dir);
        assert!(error.contains(needle), "{file}: {error}");
    }
}

/// The fixture's config.json with `from` replaced by `to` (which must change it).
fn config_with(from: &str, to: &str) -> Vec<u8> {
    let config = String::from_utf8(original_file("config.json")).unwrap();
    assert!(config.contains(from), "{from}");
    config.replace(from, to).into_bytes()
}

#[test]
fn a_config_claiming_a_billion_layers_is_refused_before_anything_is_built() {
    let bytes = FixtureBytes::read();
    let config = config_with("\"n_layer\": 3", "\"n_layer\": 1000000000");
    let start = std::time::Instant::now();
    let error = bytes_error(CheckpointBytes { config: &config, ..bytes.borrowed() });
    assert_eq!(
        error,
        "model.safetensors: holds 3 blocks (h.0 to h.2), but config.json says n_layer = \
         1000000000: is config.json from this checkpoint?"
    );
    assert!(start.elapsed().as_secs_f64() < 1.0, "took {:?}", start.elapsed());
}

/// A safetensors file's bytes from `(name, shape)` F32 entries whose values are
/// `value(i)` for the i-th element of the whole file.
fn safetensors_bytes(entries: &[(String, Vec<usize>)], value: impl Fn(usize) -> f32) -> Vec<u8> {
    let mut header = Vec::new();
    let mut n = 0;
    for (name, shape) in entries {
        let len: usize = shape.iter().product();
        header.push(format!(
            r#""{name}":{{"dtype":"F32","shape":{shape:?},"data_offsets":[{},{}]}}"#,
            4 * n,
            4 * (n + len)
        ));
        n += len;
    }
    let header = format!("{{{}}}", header.join(","));
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend((0..n).flat_map(|i| value(i).to_le_bytes()));
    file
}

#[test]
fn ten_thousand_layers_load_in_linear_time() {
    // n_embd 4: every tensor is tiny, so the time is the per-tensor bookkeeping (it was
    // quadratic in the layer count: a linear search per tensor).
    let n_layer = 10_000;
    let config = format!(
        r#"{{"n_layer": {n_layer}, "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 513}}"#
    );
    let hparams = gpt2_edu::HParams {
        n_vocab: 513,
        n_ctx: 8,
        n_embd: 4,
        n_head: 1,
        n_layer,
        layer_norm_eps: 1e-5,
    };
    let entries: Vec<(String, Vec<usize>)> =
        gpt2_edu::Weights::specs(&hparams).into_iter().map(|s| (s.name, s.shape)).collect();
    let safetensors = safetensors_bytes(&entries, |i| (i % 7) as f32 * 0.01);
    let bytes = FixtureBytes::read();
    let start = std::time::Instant::now();
    let checkpoint = CheckpointBytes {
        config: config.as_bytes(),
        safetensors: &safetensors,
        ..bytes.borrowed()
    };
    let (_, model) = load_bytes(&checkpoint).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(model.weights.blocks.len(), n_layer);
    assert_eq!(model.weights.blocks[n_layer - 1].ln_2.b.len(), 4);
    assert!(seconds < 5.0, "{n_layer} layers took {seconds:.1} s to load");
    let start = std::time::Instant::now();
    let (_, engine) = load_bytes_engine(&checkpoint, Dtype::Q8).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(engine.blocks().len(), n_layer);
    assert!(seconds < 5.0, "{n_layer} layers took {seconds:.1} s to load into the engine");
}

#[test]
fn a_header_with_a_huge_shape_is_refused_having_kept_little() {
    let bytes = FixtureBytes::read();
    // One ignored tensor whose shape has a million dimensions of 1 (so its size is 4 bytes).
    let dims = vec!["1"; 1_000_000].join(",");
    let header = format!(r#"{{"junk":{{"dtype":"F32","shape":[{dims}],"data_offsets":[0,4]}}}}"#);
    let mut safetensors = (header.len() as u64).to_le_bytes().to_vec();
    safetensors.extend_from_slice(header.as_bytes());
    safetensors.extend_from_slice(&[0; 4]);
    let error = bytes_error(CheckpointBytes { safetensors: &safetensors, ..bytes.borrowed() });
    assert_eq!(
        error,
        "model.safetensors: tensor `junk`: \"shape\" has more than 64 dimensions (corrupt header?)"
    );
}

#[test]
fn text_files_over_their_size_limit_are_refused_before_reading() {
    let bytes = FixtureBytes::read();
    let big = vec![b' '; (1 << 20) + 1];
    let error = bytes_error(CheckpointBytes { config: &big, ..bytes.borrowed() });
    assert_eq!(
        error,
        "config.json: 1048577 bytes, over the 1048576-byte limit for this file (GPT-2's is 1 MB \
         or less): is it the right file?"
    );
    let dir = scratch_copy("limits");
    let file = std::fs::File::create(dir.join("vocab.json")).unwrap();
    file.set_len(64 << 20).unwrap(); // sparse: nothing is written, nor read
    let error = error_of(&dir);
    assert!(error.ends_with("vocab.json: 67108864 bytes, over the 33554432-byte limit for this file (GPT-2's is 1 MB or less): is it the right file?"), "{error}");
}

#[test]
fn a_vocab_size_above_the_tokenizers_loads_and_one_below_is_named_with_both_sizes() {
    let mut bytes = FixtureBytes::read();
    // A padded vocabulary: 520 embeddings for 513 tokens.
    bytes.config = config_with("\"vocab_size\": 513", "\"vocab_size\": 520");
    let mut entries = original_entries();
    let wte = entries.iter_mut().find(|e| e.0 == "transformer.wte.weight").unwrap();
    wte.2 = vec![520, 32];
    wte.3.resize(520 * 32 * 4, 0);
    let dir = scratch_copy("padded");
    write_safetensors(&dir.join("model.safetensors"), &entries);
    bytes.safetensors = std::fs::read(dir.join("model.safetensors")).unwrap();
    let (tokenizer, model) = load_bytes(&bytes.borrowed()).unwrap();
    assert_eq!((tokenizer.n_vocab(), model.hparams.n_vocab), (513, 520));

    let bytes = FixtureBytes::read();
    let config = config_with("\"vocab_size\": 513", "\"vocab_size\": 500");
    let error = bytes_error(CheckpointBytes { config: &config, ..bytes.borrowed() });
    assert!(
        error.starts_with(
            "vocab.json: holds 513 tokens, but config.json's vocab_size is 500: the model has no \
             embedding for tokens 500 and up"
        ),
        "{error}"
    );
}

#[test]
fn non_finite_weights_are_named_with_the_tensor_and_index() {
    let dir = scratch_copy("nan");
    let path = dir.join("model.safetensors");
    let mut entries = original_entries();
    let c_fc = entries.iter_mut().find(|e| e.0 == "transformer.h.1.mlp.c_fc.weight").unwrap();
    c_fc.3[40..44].copy_from_slice(&f32::INFINITY.to_le_bytes());
    write_safetensors(&path, &entries);
    let error = error_of(&dir);
    assert!(
        error.ends_with(
            "model.safetensors: tensor `transformer.h.1.mlp.c_fc.weight` holds inf at index 10 \
             (row-major): every weight must be a finite number (corrupt weights, or a model \
             saved after its training diverged)"
        ),
        "{error}"
    );

    // lm_head.weight equal to wte.weight but for a NaN: the NaN is what is wrong.
    let mut entries = original_entries();
    let wte = entries.iter().find(|e| e.0 == "transformer.wte.weight").unwrap();
    let mut lm_head = wte.3.clone();
    lm_head[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    entries.push(("lm_head.weight".into(), "F32", wte.2.clone(), lm_head));
    write_safetensors(&path, &entries);
    let error = error_of(&dir);
    assert!(error.contains("tensor `lm_head.weight` holds NaN at index 2"), "{error}");
}

#[test]
fn an_lm_head_longer_than_one_read_is_compared_with_wte_in_every_part() {
    // 8200 embeddings of 32: 262,400 numbers, more than the 262,144 f32s of one 1 MiB read,
    // so lm_head.weight comes in two chunks and the second is compared at its own offset.
    let n_vocab = 8200;
    let config = config_with("\"vocab_size\": 513", &format!("\"vocab_size\": {n_vocab}"));
    let mut entries = original_entries();
    let wte = entries.iter_mut().find(|e| e.0 == "transformer.wte.weight").unwrap();
    wte.2 = vec![n_vocab, 32];
    let wte_values: Vec<f32> = (0..n_vocab * 32).map(|i| (i % 101) as f32 * 0.01 - 0.5).collect();
    wte.3 = wte_values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let dir = scratch_copy("long-lm-head");
    std::fs::write(dir.join("config.json"), &config).unwrap();
    let with_lm_head = |lm_head: &[f32]| {
        let mut entries = entries.clone();
        let bytes = lm_head.iter().flat_map(|v| v.to_le_bytes()).collect();
        entries.push(("lm_head.weight".into(), "F32", vec![n_vocab, 32], bytes));
        write_safetensors(&dir.join("model.safetensors"), &entries);
    };
    with_lm_head(&wte_values);
    let (_, model) = load_dir(&dir).unwrap();
    assert_eq!(model.weights.wte, wte_values);
    assert_eq!(
        load_dir_engine(&dir, Dtype::Q8).unwrap().1,
        Engine::with_dtype(model, Dtype::Q8).unwrap()
    );

    let last = n_vocab * 32 - 1; // in the second chunk
    let mut lm_head = wte_values.clone();
    lm_head[last] += 1.0;
    with_lm_head(&lm_head);
    let error = error_of(&dir);
    assert!(error.ends_with("lm_head.weight differs from transformer.wte.weight; GPT-2 ties them and this crate computes logits with wte"), "{error}");
    lm_head[last - 1] = f32::NEG_INFINITY; // also in the second chunk: named at its index
    with_lm_head(&lm_head);
    let error = error_of(&dir);
    assert!(
        error.contains(&format!("tensor `lm_head.weight` holds -inf at index {}", last - 1)),
        "{error}"
    );
}

#[test]
fn a_tensor_named_the_other_way_is_named_not_wte() {
    let dir = scratch_copy("prefix");
    let path = dir.join("model.safetensors");
    let mut entries = original_entries();
    entries.push(("h.0.ln_1.weight".into(), "F32", vec![32], vec![0; 128]));
    write_safetensors(&path, &entries);
    let error = error_of(&dir);
    assert!(
        error.ends_with(
            "model.safetensors: unexpected tensor `h.0.ln_1.weight`: it lacks the `transformer.` \
             prefix that `transformer.wte.weight` and the others have: a checkpoint names all \
             its tensors one way"
        ),
        "{error}"
    );

    let mut entries = original_entries();
    for entry in &mut entries {
        entry.0 = entry.0.trim_start_matches("transformer.").to_string();
    }
    entries.push(("transformer.h.9.attn.bias".into(), "F32", vec![1], vec![0; 4]));
    write_safetensors(&path, &entries);
    let error = error_of(&dir);
    assert!(
        error.ends_with(
            "unexpected tensor `transformer.h.9.attn.bias`: it has the `transformer.` prefix, but \
             `wte.weight` and the others do not: a checkpoint names all its tensors one way"
        ),
        "{error}"
    );
}

#[test]
fn wrongly_typed_guard_keys_are_refused_not_ignored() {
    let bytes = FixtureBytes::read();
    for (from, to, needle) in [
        (
            "\"model_type\": \"gpt2\"",
            "\"model_type\": 5",
            "\"model_type\" must be the string \"gpt2\", found the number 5",
        ),
        (
            "\"n_inner\": null",
            "\"n_inner\": \"128\"",
            "\"n_inner\" must be null or a whole number, found the string \"128\"",
        ),
        (
            "\"n_inner\": null",
            "\"n_inner\": 64",
            "n_inner 64 is not supported (expected null or 4 * n_embd = 128)",
        ),
        (
            "\"scale_attn_weights\": true",
            "\"scale_attn_weights\": \"false\"",
            "\"scale_attn_weights\" must be true or false (true for GPT-2), found the string \"false\"",
        ),
        (
            "\"scale_attn_by_inverse_layer_idx\": false",
            "\"scale_attn_by_inverse_layer_idx\": null",
            "\"scale_attn_by_inverse_layer_idx\" must be true or false (false for GPT-2), found null",
        ),
        (
            "\"activation_function\": \"gelu_new\"",
            "\"activation_function\": [\"gelu_new\"]",
            "\"activation_function\" must be a string such as \"gelu_new\", found an array",
        ),
        ("\"n_embd\": 32", "\"n_embd\": 4611686018427387904", "4 * n_embd would need more than"),
        (
            "\"n_embd\": 32",
            "\"n_embd\": 32.0",
            "\"n_embd\" must be a whole number, found the number 32.0",
        ),
        (
            "\"tie_word_embeddings\": true",
            "\"tie_word_embeddings\": \"yes\"",
            "\"tie_word_embeddings\" must be true or false, found the string \"yes\"",
        ),
        (
            // Untied, with no output layer in the file: transformers would make a random one.
            "\"tie_word_embeddings\": true",
            "\"tie_word_embeddings\": false",
            "\"tie_word_embeddings\": false, but model.safetensors has no lm_head.weight",
        ),
    ] {
        let config = config_with(from, to);
        let error = bytes_error(CheckpointBytes { config: &config, ..bytes.borrowed() });
        assert!(error.starts_with("config.json: ") && error.contains(needle), "{to}: {error}");
    }
}

#[test]
fn a_byte_order_mark_is_refused_with_how_to_fix_it() {
    for file in ["config.json", "vocab.json"] {
        let mut bytes = FixtureBytes::read();
        bytes.file_mut(file).splice(0..0, "\u{feff}".bytes());
        let error = bytes_error(bytes.borrowed());
        assert_eq!(
            error,
            format!(
                "{file}: invalid JSON at byte 0: the text starts with a UTF-8 byte-order mark \
                 (bytes EF BB BF), which JSON does not allow (RFC 8259, section 8.1): save the \
                 file as UTF-8 without BOM"
            )
        );
    }
}

#[cfg(unix)]
#[test]
fn what_stands_where_a_file_should_be_is_named() {
    use std::os::unix::fs::symlink;
    let dir = scratch_copy("kinds");
    type Make<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Make, &str); 4] = [
        (
            "vocab.json",
            &|p| std::fs::create_dir(p).unwrap(),
            "is a directory, but it should be a file",
        ),
        (
            "merges.txt",
            &|p| symlink("/dev/null", p).unwrap(),
            "is not a regular file (a character device), so it is not read; it should be a file",
        ),
        ("config.json", &|p| symlink(p, p).unwrap(), "is a symlink that cannot be followed"),
        (
            "model.safetensors",
            &|p| {
                let made = std::process::Command::new("mkfifo").arg(p).status().unwrap();
                assert!(made.success());
            },
            "is not a regular file (a FIFO), so it is not read",
        ),
    ];
    for (file, make, needle) in cases {
        let path = dir.join(file);
        std::fs::remove_file(&path).unwrap();
        make(&path);
        let error = error_of(&dir);
        assert!(error.starts_with(&format!("{}: {needle}", path.display())), "{error}");
        if file == "config.json" {
            assert!(error.contains("symbolic links"), "the OS's reason, ELOOP: {error}");
        }
        let _ = std::fs::remove_dir(&path).or_else(|_| std::fs::remove_file(&path));
        std::fs::write(&path, original_file(file)).unwrap();
    }
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_says_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_copy("unreadable");
    let path = dir.join("merges.txt");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&path).is_ok() {
        // Root reads anything: then the folder must load as usual.
        assert!(load_dir(&dir).is_ok());
        return;
    }
    let error = error_of(&dir);
    assert!(error.contains("merges.txt: cannot read it: Permission denied"), "{error}");
}

#[test]
fn a_file_given_for_the_folder_or_a_pytorch_only_folder_gets_a_hint() {
    let dir = scratch_copy("hints");
    let error = error_of(&dir.join("model.safetensors"));
    assert_eq!(
        error,
        format!(
            "{}: is a file, not a folder: a GPT-2 checkpoint is loaded from the folder that holds \
             config.json, model.safetensors, vocab.json, merges.txt; try {}",
            dir.join("model.safetensors").display(),
            dir.display()
        )
    );
    std::fs::rename(dir.join("model.safetensors"), dir.join("pytorch_model.bin")).unwrap();
    let error = error_of(&dir);
    assert!(
        error.contains(
            "model.safetensors: not found; this folder has pytorch_model.bin instead, PyTorch's \
             pickle format, which this crate does not read"
        ),
        "{error}"
    );
}
