//! Snapshots of every intermediate tensor of the dummy model on "hello world", stored in
//! the top-level `snapshots/` folder where a learner can read them next to LEARN.md.
//!
//! The tensors come from the library's own [`Trace`], printed with five fixed decimals and
//! negative zero normalised, so the files are stable across platforms. CI runs with
//! `INSTA_UPDATE=no`: a missing or changed snapshot fails. After an intended change, review
//! with `cargo insta review` or rerun with `INSTA_UPDATE=always` and read the diff.

use gpt2_edu::trace::{PRINT_DECIMALS, format_fixed};
use gpt2_edu::{KvCache, Model, Tokenizer, Trace, dummy};

/// insta settings: snapshots live in `<crate>/snapshots`, named after the stage alone.
fn in_snapshot_folder(check: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(check);
}

fn dummy_model() -> (dummy::WordEncoder, Model) {
    let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    (encoder, Model::new(hparams, weights).unwrap())
}

/// The traced tensors whose names start with `prefix`, in the order they were computed.
fn stage(trace: &Trace, names: &[&str]) -> String {
    let mut text = String::new();
    for name in names {
        let tensor = trace.get(name).unwrap_or_else(|| panic!("trace has no {name}"));
        text.push_str(&tensor.to_string());
        text.push('\n');
    }
    text
}

/// Every tensor name one block records, in order.
fn block_names(layer: usize, n_head: usize) -> Vec<String> {
    let mut names = vec![format!("block.{layer}.ln_1")];
    for head in 0..n_head {
        for part in ["q", "k", "v", "scores", "masked", "weights"] {
            names.push(format!("block.{layer}.attn.{part}.head.{head}"));
        }
    }
    for part in [
        "attn.merged",
        "attn.c_proj",
        "residual_1",
        "ln_2",
        "mlp.c_fc",
        "mlp.gelu",
        "mlp.c_proj",
        "residual_2",
    ] {
        names.push(format!("block.{layer}.{part}"));
    }
    names
}

#[test]
fn every_intermediate_tensor_of_hello_world() {
    let (encoder, model) = dummy_model();
    let mut trace = Trace::new();
    model.forward_full_traced(&encoder.encode("hello world"), &mut trace).unwrap();

    let mut expected_names: Vec<String> = ["wte", "wpe", "embeddings"].map(String::from).to_vec();
    for layer in 0..model.hparams.n_layer {
        expected_names.extend(block_names(layer, model.hparams.n_head));
    }
    expected_names.extend(["ln_f", "logits"].map(String::from));
    let recorded: Vec<&str> = trace.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(recorded, expected_names, "the trace records exactly these, in this order");

    in_snapshot_folder(|| {
        insta::assert_snapshot!("embeddings", stage(&trace, &["wte", "wpe", "embeddings"]));
        for layer in 0..model.hparams.n_layer {
            let names = block_names(layer, model.hparams.n_head);
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            insta::assert_snapshot!(format!("block_{layer}"), stage(&trace, &names));
        }
        insta::assert_snapshot!("logits", stage(&trace, &["ln_f", "logits"]));
    });
}

/// The cache's keys and values, per layer and head, as a readable table.
fn cache_text(cache: &KvCache) -> String {
    let mut text = format!("positions filled: {} of {}\n", cache.len(), cache.capacity());
    let d_head = cache.n_embd() / cache.n_head();
    for layer in 0..cache.n_layer() {
        for head in 0..cache.n_head() {
            for (name, rows) in
                [("keys", cache.keys(layer, head)), ("values", cache.values(layer, head))]
            {
                text.push_str(&format!(
                    "layer {layer} head {head} {name} [{}, {d_head}]\n",
                    cache.len()
                ));
                for row in rows.chunks_exact(d_head) {
                    let cells: Vec<String> = row
                        .iter()
                        .map(|&x| format!("{:>8}", format_fixed(x, PRINT_DECIMALS)))
                        .collect();
                    text.push_str(&format!("  {}\n", cells.join(" ")));
                }
            }
        }
    }
    text
}

#[test]
fn kv_cache_after_prefill_and_three_decode_steps() {
    let (encoder, model) = dummy_model();
    let mut cache = KvCache::new(&model.hparams).unwrap();
    let logits = model.forward_cached(&encoder.encode("hello world"), &mut cache).unwrap();
    let mut next = gpt2_edu::generate::argmax(&logits[logits.len() - 4..]);
    in_snapshot_folder(|| {
        insta::assert_snapshot!("kv_cache_prefill", cache_text(&cache));
        for step in 1..=3 {
            let logits = model.forward_cached(&[next], &mut cache).unwrap();
            insta::assert_snapshot!(format!("kv_cache_step_{step}"), cache_text(&cache));
            next = gpt2_edu::generate::argmax(&logits);
        }
    });
    assert_eq!(cache.len(), 5);
}

#[test]
fn a_cached_prefill_records_the_same_tensors_as_the_full_pass() {
    let (encoder, model) = dummy_model();
    let tokens = encoder.encode("hello world");
    let mut full = Trace::new();
    model.forward_full_traced(&tokens, &mut full).unwrap();
    let mut cached = Trace::new();
    model.forward_traced(&tokens, &mut KvCache::new(&model.hparams).unwrap(), &mut cached).unwrap();
    assert_eq!(full.tensors(), cached.tensors());
}
