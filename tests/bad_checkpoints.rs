//! Broken checkpoint folders: every way a file can be wrong gives one clear error that names
//! the file or tensor, never a panic and never a silently wrong model.

use std::path::{Path, PathBuf};

use gpt2_edu::checkpoint::{FILES, load_config, load_dir, load_weights};
use gpt2_edu::safetensors::SafeTensors;

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

fn error_of(dir: &Path) -> String {
    match load_dir(dir) {
        Ok(_) => panic!("{} loaded, but it should not", dir.display()),
        Err(error) => error.to_string(),
    }
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

#[test]
fn every_truncation_of_the_safetensors_file_is_an_error() {
    let original = std::fs::read(fixture().join("model.safetensors")).unwrap();
    let hparams = load_config(&fixture().join("config.json")).unwrap();
    let dir = scratch_copy("truncated");
    let path = dir.join("model.safetensors");
    let header_end = 8 + u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let mut lengths: Vec<usize> = (0..original.len()).step_by(997).collect();
    lengths.extend([1, 7, 8, 9, header_end - 1, header_end, header_end + 1, original.len() - 1]);
    for len in lengths {
        std::fs::write(&path, &original[..len]).unwrap();
        let error = load_weights(&path, &hparams).expect_err(&format!("truncated to {len} bytes"));
        assert!(error.to_string().contains("model.safetensors"), "{len}: {error}");
    }
}

#[test]
fn header_bit_flips_are_errors_or_harmless() {
    let original = std::fs::read(fixture().join("model.safetensors")).unwrap();
    let hparams = load_config(&fixture().join("config.json")).unwrap();
    let reference = load_weights(&fixture().join("model.safetensors"), &hparams).unwrap();
    let dir = scratch_copy("flipped");
    let path = dir.join("model.safetensors");
    let header_end = 8 + u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let (mut errors, mut harmless) = (0, 0);
    // Every bit of the length field, and every bit of every third header byte.
    let positions = (0..8).chain((8..header_end).step_by(3));
    for byte in positions {
        for bit in 0..8 {
            let mut flipped = original.clone();
            flipped[byte] ^= 1 << bit;
            std::fs::write(&path, &flipped).unwrap();
            match load_weights(&path, &hparams) {
                Err(_) => errors += 1,
                // Only a flip that changes nothing the model reads (the metadata's value, say)
                // may load, and then it must load the very same weights.
                Ok(weights) => {
                    assert_eq!(
                        weights, reference,
                        "byte {byte} bit {bit} loaded different weights"
                    );
                    harmless += 1;
                }
            }
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
