//! Building the engine tensor by tensor ([`Engine::from_tensors`]), from a checkpoint
//! ([`load_dir_engine`], [`load_bytes_engine`]) or from random weights
//! ([`Weights::random_tensor`]), never holding the f32 model: the engine must equal the one
//! packed from the whole model (`Engine::with_dtype`), in every dtype, from every
//! checkpoint dtype, and refuse what that path refuses with the same error.
//! (`tests/bad_checkpoints.rs` loads every corrupt checkpoint both ways too.)

mod common;

use std::path::{Path, PathBuf};

use gpt2_edu::model::{Role, TensorSpec};
use gpt2_edu::safetensors::SafeTensors;
use gpt2_edu::viz::HeadId;
use gpt2_edu::{CheckpointBytes, Dtype, Engine, Error, HParams, Model, Tokenizer, Weights};
use gpt2_edu::{XorShift64, load_bytes, load_bytes_engine, load_dir, load_dir_engine};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The dtype the fixture's safetensors file stores its first tensor in.
fn stored_dtype(dir: &Path) -> String {
    SafeTensors::open(&dir.join("model.safetensors")).unwrap().tensors()[0].dtype.clone()
}

#[test]
fn every_checkpoint_dtype_loads_straight_into_every_engine_dtype() {
    let fixtures = [
        ("tiny-gpt2", "F32"),
        ("tiny-gpt2-f16", "F16"),
        ("tiny-gpt2-bf16", "BF16"),
        ("tiny-gpt2-legacy", "F32"), // no `transformer.` prefix, an lm_head.weight equal to wte
    ];
    for (name, file_dtype) in fixtures {
        let dir = fixture(name);
        assert_eq!(stored_dtype(&dir), file_dtype, "{name}");
        let (tokenizer, model) = load_dir(&dir).unwrap();
        let read = |file: &str| std::fs::read(dir.join(file)).unwrap();
        let (config, safetensors, vocab, merges) = (
            read("config.json"),
            read("model.safetensors"),
            read("vocab.json"),
            read("merges.txt"),
        );
        let files = CheckpointBytes {
            config: &config,
            safetensors: &safetensors,
            vocab: &vocab,
            merges: &merges,
        };
        let text = "Hello, world! The quick brown fox.";
        for dtype in Dtype::ALL {
            let expected = Engine::with_dtype(model.clone(), dtype).unwrap();
            let (dir_tokenizer, from_dir) = load_dir_engine(&dir, dtype).unwrap();
            let (bytes_tokenizer, from_bytes) = load_bytes_engine(&files, dtype).unwrap();
            assert_eq!(from_dir, expected, "{name} into {dtype}, from the folder");
            assert_eq!(from_bytes, expected, "{name} into {dtype}, from memory");
            assert_eq!(from_dir.dtype(), dtype);
            assert_eq!(dir_tokenizer.encode(text), tokenizer.encode(text), "{name}");
            assert_eq!(bytes_tokenizer.encode(text), tokenizer.encode(text), "{name}");
        }
        // The engines of two dtypes differ: the comparison above can fail.
        let f32_engine = load_dir_engine(&dir, Dtype::F32).unwrap().1;
        assert_ne!(f32_engine, load_dir_engine(&dir, Dtype::Q8).unwrap().1, "{name}");
    }
}

/// The random tensor source: [`Weights::random`]'s numbers, one tensor at a time, then
/// `edit`ed.
fn random_source(
    seed: u64,
    mut edit: impl FnMut(&TensorSpec, &mut Vec<f32>),
) -> impl FnMut(&TensorSpec, &mut Vec<f32>) -> gpt2_edu::Result<()> {
    let mut rng = XorShift64::new(seed).unwrap();
    move |spec, data| {
        *data = Weights::random_tensor(spec, &mut rng);
        edit(spec, data);
        Ok(())
    }
}

/// The whole-model way: `Weights::random(seed)`, the same `edit` on each tensor, then
/// `Model::new` and `Engine::with_dtype`.
fn whole_model_engine(
    hparams: HParams,
    seed: u64,
    dtype: Dtype,
    mut edit: impl FnMut(&TensorSpec, &mut Vec<f32>),
) -> gpt2_edu::Result<Engine> {
    let mut weights = Weights::random(&hparams, &mut XorShift64::new(seed).unwrap())?;
    weights.visit_mut(&hparams, |spec, data| {
        edit(spec, data);
        Ok::<(), Error>(())
    })?;
    Engine::with_dtype(Model::new(hparams, weights)?, dtype)
}

/// Small centred values in the norms too, so that every tensor is something to compare.
fn centre(spec: &TensorSpec, data: &mut [f32]) {
    if !matches!(spec.role, Role::NormGain | Role::NormBias) {
        data.iter_mut().for_each(|u| *u = (*u - 0.5) * 0.04);
    }
}

#[test]
fn an_engine_from_random_tensors_equals_the_engine_of_the_same_random_model() {
    let centre = |spec: &TensorSpec, data: &mut Vec<f32>| centre(spec, data);
    for seed in 1..=24 {
        let (model, _, _, label) = common::random_case(seed);
        let hparams = model.hparams;
        for dtype in Dtype::ALL {
            let expected = whole_model_engine(hparams, seed, dtype, centre).unwrap();
            let engine = Engine::from_tensors(hparams, dtype, random_source(seed, centre));
            assert_eq!(engine.unwrap(), expected, "{label}, {dtype}");
        }
        // Another seed gives another engine: the comparison can fail.
        let other = Engine::from_tensors(hparams, Dtype::F32, random_source(seed + 100, centre));
        assert_ne!(other.unwrap(), whole_model_engine(hparams, seed, Dtype::F32, centre).unwrap());
    }
}

fn tiny_hparams() -> HParams {
    HParams { n_vocab: 40, n_ctx: 8, n_embd: 8, n_head: 2, n_layer: 2, layer_norm_eps: 1e-5 }
}

#[test]
fn tensors_of_the_wrong_size_or_value_get_model_new_and_stored_as_errors() {
    let hparams = tiny_hparams();
    type Edit = fn(&TensorSpec, &mut Vec<f32>);
    let cases: [(&str, Edit, Dtype, Error); 5] = [
        (
            "a bias one number short",
            |spec, data| {
                if spec.name == "h.1.attn.c_proj.bias" {
                    data.pop();
                }
            },
            Dtype::Q8,
            Error::ShapeMismatch {
                tensor: "h.1.attn.c_proj.bias".into(),
                expected: vec![8],
                found: vec![7],
            },
        ),
        (
            "a NaN in wte",
            |spec, data| {
                if spec.name == "wte.weight" {
                    data[17] = f32::NAN
                }
            },
            Dtype::F32,
            Error::NonFiniteWeight { tensor: "wte.weight".into(), index: 17, value: "NaN".into() },
        ),
        (
            "a weight bf16 rounds to infinity",
            |spec, data| {
                if spec.name == "h.0.mlp.c_proj.weight" {
                    data[5] = f32::MAX
                }
            },
            Dtype::Bf16,
            Error::NonFiniteWeight {
                tensor: "h.0.mlp.c_proj.weight (rounded to bf16)".into(),
                index: 5,
                value: "inf".into(),
            },
        ),
        (
            // Model::new's errors come first, as with the whole model: checked before
            // anything is stored in bf16.
            "a weight bf16 cannot hold, then an empty tensor",
            |spec, data| match spec.name.as_str() {
                "h.0.mlp.c_fc.weight" => data[0] = -f32::MAX,
                "h.1.ln_2.weight" => data.clear(),
                _ => {}
            },
            Dtype::Bf16,
            Error::ShapeMismatch {
                tensor: "h.1.ln_2.weight".into(),
                expected: vec![8],
                found: vec![0],
            },
        ),
        (
            "two tensors of the wrong size: the first is named",
            |spec, data| match spec.name.as_str() {
                "wpe.weight" => data.push(0.0),
                "ln_f.bias" => data.clear(),
                _ => {}
            },
            Dtype::F32,
            Error::ShapeMismatch {
                tensor: "wpe.weight".into(),
                expected: vec![8, 8],
                found: vec![65],
            },
        ),
    ];
    for (what, edit, dtype, expected) in cases {
        let whole = whole_model_engine(hparams, 3, dtype, edit);
        assert_eq!(whole.as_ref().unwrap_err(), &expected, "{what}: the whole model");
        let by_tensor = Engine::from_tensors(hparams, dtype, random_source(3, edit));
        assert_eq!(by_tensor.unwrap_err(), expected, "{what}: tensor by tensor");
    }
    // f32::MAX is a fine weight in f32 and q8: only bf16 refuses it.
    let huge: Edit = |spec, data| {
        if spec.name == "h.0.mlp.c_proj.weight" {
            data[5] = f32::MAX
        }
    };
    for dtype in [Dtype::F32, Dtype::Q8] {
        let by_tensor = Engine::from_tensors(hparams, dtype, random_source(3, huge)).unwrap();
        assert_eq!(by_tensor, whole_model_engine(hparams, 3, dtype, huge).unwrap(), "{dtype}");
    }
}

#[test]
fn the_source_s_own_error_comes_back_and_bad_sizes_are_refused_before_any_read() {
    let hparams = tiny_hparams();
    // The source fails at ln_f.weight, after an earlier tensor of the wrong size: every
    // tensor is read before the checks are reported, as loading the whole model would.
    let mut rng = XorShift64::new(3).unwrap();
    let mut names = Vec::new();
    let error = Engine::from_tensors(hparams, Dtype::Q8, |spec, data| {
        names.push(spec.name.clone());
        *data = Weights::random_tensor(spec, &mut rng);
        match spec.name.as_str() {
            "h.0.attn.c_attn.weight" => data.truncate(3),
            "ln_f.weight" => return Err(Error::InvalidArgument("the file ran out".into())),
            _ => {}
        }
        Ok(())
    });
    assert_eq!(error.unwrap_err(), Error::InvalidArgument("the file ran out".into()));
    let specs: Vec<String> = Weights::specs(&hparams).into_iter().map(|s| s.name).collect();
    assert_eq!(names, specs[..specs.len() - 1], "every tensor up to ln_f.weight, in order");

    let mut reads = 0;
    let bad = HParams { n_head: 3, ..hparams }; // 3 does not divide n_embd = 8
    let error = Engine::from_tensors(bad, Dtype::F32, |_, _| {
        reads += 1;
        Ok(())
    });
    assert_eq!(error.unwrap_err(), Model::new(bad, Weights::empty(2)).unwrap_err());
    assert_eq!(reads, 0, "nothing is read for sizes that cannot be a GPT-2");
}

#[test]
fn heads_switched_off_on_the_engine_equal_heads_switched_off_on_the_model() {
    let dir = fixture("tiny-gpt2");
    let heads = [HeadId { layer: 0, head: 1 }, HeadId { layer: 2, head: 3 }];
    let model = load_dir(&dir).unwrap().1.with_heads_off(&heads).unwrap();
    for dtype in Dtype::ALL {
        let engine = load_dir_engine(&dir, dtype).unwrap().1;
        assert!(engine.ablation().heads().is_empty());
        let engine = engine.with_heads_off(&heads).unwrap();
        assert_eq!(engine, Engine::with_dtype(model.clone(), dtype).unwrap(), "{dtype}");
        assert_eq!(engine.ablation().heads(), heads);
    }
    let engine = load_dir_engine(&dir, Dtype::F32).unwrap().1;
    let nowhere = [HeadId { layer: 3, head: 0 }];
    let model = load_dir(&dir).unwrap().1;
    assert_eq!(
        engine.with_heads_off(&nowhere).unwrap_err(),
        model.with_heads_off(&nowhere).unwrap_err()
    );
}

#[test]
fn a_checkpoint_weight_bf16_cannot_hold_is_refused_by_the_bf16_loader_alone() {
    let dir = fixture("tiny-gpt2");
    let read = |file: &str| std::fs::read(dir.join(file)).unwrap();
    let mut safetensors = read("model.safetensors");
    let name = "transformer.h.0.mlp.c_proj.weight";
    let file = SafeTensors::open(&dir.join("model.safetensors")).unwrap();
    let header_end = 8 + u64::from_le_bytes(safetensors[..8].try_into().unwrap()) as usize;
    let at = header_end + file.get(name).unwrap().data_offsets.0 as usize + 4 * 5;
    safetensors[at..at + 4].copy_from_slice(&f32::MAX.to_le_bytes()); // weight 5
    let (config, vocab, merges) = (read("config.json"), read("vocab.json"), read("merges.txt"));
    let files = CheckpointBytes {
        config: &config,
        safetensors: &safetensors,
        vocab: &vocab,
        merges: &merges,
    };
    let model = load_bytes(&files).unwrap().1; // a finite weight: the checkpoint is fine
    assert_eq!(model.weights.blocks[0].mlp.c_proj.w[5], f32::MAX);
    let refused = Engine::with_dtype(model.clone(), Dtype::Bf16).unwrap_err();
    assert_eq!(load_bytes_engine(&files, Dtype::Bf16).unwrap_err(), refused);
    assert!(refused.to_string().contains("h.0.mlp.c_proj.weight (rounded to bf16)"), "{refused}");
    for dtype in [Dtype::F32, Dtype::Q8] {
        let engine = load_bytes_engine(&files, dtype).unwrap().1;
        assert_eq!(engine, Engine::with_dtype(model.clone(), dtype).unwrap(), "{dtype}");
    }
}
