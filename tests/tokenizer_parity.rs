//! GPT-2's byte-level BPE against HuggingFace: the real `vocab.json` and `merges.txt`
//! (`tests/fixtures/gpt2-tokenizer/`, copied from OpenAI's release) and a corpus of tricky
//! strings whose golden ids come from HuggingFace's `GPT2TokenizerFast`
//! (`tests/golden/hf_reference.py` writes `tests/golden/tokenizer_corpus.json`).

use std::path::Path;

use gpt2_edu::bpe::Bpe;
use gpt2_edu::json::{self, Json};
use gpt2_edu::{Tokenizer, tokenizer::TextStream};

fn gpt2_tokenizer() -> Bpe {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tokenizer");
    Bpe::from_files(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap()
}

fn corpus() -> Vec<(String, Vec<u32>)> {
    let text = include_str!("golden/tokenizer_corpus.json");
    let json = json::parse(text).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let text = case.get("text").and_then(Json::as_str).unwrap().to_string();
            let ids = case.get("ids").and_then(Json::as_array).unwrap();
            (text, ids.iter().map(|id| id.as_u64().unwrap() as u32).collect())
        })
        .collect()
}

#[test]
fn encode_matches_huggingface_on_every_corpus_string() {
    let bpe = gpt2_tokenizer();
    let corpus = corpus();
    assert!(corpus.len() >= 150, "corpus has {} strings", corpus.len());
    let mismatches: Vec<String> = corpus
        .iter()
        .filter(|(text, ids)| &bpe.encode(text) != ids)
        .map(|(text, ids)| format!("{text:?}: ours {:?}, HuggingFace {ids:?}", bpe.encode(text)))
        .collect();
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn decode_of_encode_is_the_identity() {
    let bpe = gpt2_tokenizer();
    for (text, _) in corpus() {
        assert_eq!(bpe.decode(&bpe.encode(&text)).unwrap(), text);
    }
}

#[test]
fn streaming_decode_equals_whole_decode_and_never_splits_a_character() {
    let bpe = gpt2_tokenizer();
    for (text, ids) in corpus() {
        let mut stream = TextStream::new(&bpe, &[]);
        let mut streamed = String::new();
        for &id in &ids {
            streamed.push_str(&stream.push(id).unwrap()); // a String: always whole characters
        }
        streamed.push_str(&stream.finish());
        assert_eq!(streamed, text);
    }
}

#[test]
fn well_known_ids() {
    let bpe = gpt2_tokenizer();
    assert_eq!(bpe.n_vocab(), 50257);
    assert_eq!(bpe.end_of_text(), Some(50256));
    assert_eq!(bpe.encode("The dog"), vec![464, 3290]);
    assert_eq!(bpe.encode("Hello<|endoftext|>World"), vec![15496, 50256, 10603]);
    // An emoji spans two tokens; the first alone is half a character and decodes to U+FFFD.
    let ids = bpe.encode("😀");
    assert_eq!(ids.len(), 2);
    assert_eq!(bpe.decode(&ids[..1]).unwrap(), "\u{FFFD}");
    assert_eq!(bpe.decode(&ids).unwrap(), "😀");
}
