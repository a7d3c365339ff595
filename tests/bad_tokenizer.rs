//! Broken tokenizer files and hostile text: every bad `vocab.json` or `merges.txt` gives one
//! message that names the file, the line and the culprit; harmless differences (a byte order
//! mark, CRLF or CR line endings) load the same tokenizer; and no text makes `encode` panic
//! or lose a byte.

use std::path::Path;

use gpt2_edu::bpe::{Bpe, bytes_to_unicode};
use gpt2_edu::{Tokenizer, XorShift64};

fn fixture_texts() -> (String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tokenizer");
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    (read("vocab.json"), read("merges.txt"))
}

fn load(vocab: &str, merges: &str) -> gpt2_edu::Result<Bpe> {
    Bpe::from_texts(vocab, Path::new("vocab.json"), merges, Path::new("merges.txt"))
}

fn error_of(vocab: &str, merges: &str) -> String {
    match load(vocab, merges) {
        Ok(_) => panic!("loaded, but it should not:\n{merges}"),
        Err(error) => error.to_string(),
    }
}

/// A small `vocab.json`: the 256 single bytes (ids 0..256), then `extra`.
fn byte_vocab(extra: &[&str]) -> String {
    let bytes = bytes_to_unicode().map(|c| c.to_string());
    let tokens = bytes.iter().map(String::as_str).chain(extra.iter().copied());
    let entries: Vec<String> = tokens.enumerate().map(|(id, t)| format!("{t:?}: {id}")).collect();
    format!("{{{}}}", entries.join(", "))
}

/// Texts whose encoding exercises many merges, for comparing two loads of the tokenizer.
const SAMPLES: [&str; 4] = [
    "The dog's  tokens!\n\n\tindentation   and 3.14159",
    "unbelievably antidisestablishmentarianism",
    "Ünïcödé 中文 😀 <|endoftext|> done",
    "    def merge(self, piece):\r\n        return []",
];

#[test]
fn an_unknown_side_of_a_merge_is_named_itself_with_its_line() {
    let vocab = byte_vocab(&["ab", "abc"]);
    let error = error_of(&vocab, "#version: 0.2\na b\nab zq\n");
    assert!(
        error.starts_with(r#"merges.txt: line 3: "zq" is not in the vocabulary (in "ab zq")"#),
        "{error}"
    );
    assert!(error.contains("same tokenizer"), "{error}");
    assert!(!error.contains("abzq"), "the concatenation is not the culprit: {error}");

    let error = error_of(&vocab, "#version: 0.2\nxy zq\n");
    assert!(
        error.starts_with(r#"merges.txt: line 2: "xy" and "zq" are not in the vocabulary"#),
        "{error}"
    );
}

#[test]
fn a_merge_whose_result_is_no_token_is_named_as_such() {
    let error = error_of(&byte_vocab(&["ab"]), "a b\nab c\n");
    assert!(
        error.starts_with(
            r#"merges.txt: line 2: merging "ab" and "c" makes "abc", which is not in the vocabulary"#
        ),
        "{error}"
    );
}

#[test]
fn a_version_header_below_the_first_line_is_called_a_misplaced_header() {
    let vocab = byte_vocab(&["ab"]);
    // GPT-2's header has one space; HuggingFace's trainer writes a longer one.
    for header in ["#version: 0.2", "#version: 0.2 - Trained by `huggingface/tokenizers`"] {
        let error = error_of(&vocab, &format!("#version: 0.2\na b\n{header}\n"));
        assert!(error.starts_with("merges.txt: line 3: "), "{error}");
        assert!(error.contains("`#version` header, which may only be the first line"), "{error}");
    }
    assert!(load(&vocab, "#version: 0.2 - Trained by `huggingface/tokenizers`\na b\n").is_ok());
}

#[test]
fn a_byte_order_mark_is_refused_with_how_to_fix_it_wherever_it_is() {
    let (vocab, merges) = fixture_texts();
    assert!(load(&vocab, &merges).is_ok());
    for (vocab, merges, file) in [
        (format!("\u{feff}{vocab}"), merges.clone(), "vocab.json"),
        (vocab.clone(), format!("\u{feff}{merges}"), "merges.txt"),
    ] {
        let error = load(&vocab, &merges).unwrap_err().to_string();
        assert!(error.starts_with(file), "{error}");
        assert!(error.contains("byte-order mark (bytes EF BB BF)"), "{error}");
        assert!(error.contains("save the file as UTF-8 without BOM"), "{error}");
    }

    // Two merges files joined: the second one's BOM lands on a line of its own.
    let error = error_of(&byte_vocab(&["ab"]), "#version: 0.2\na b\n\u{feff}#version: 0.2\n");
    assert!(error.starts_with("merges.txt: line 3: "), "{error}");
    assert!(error.contains("U+FEFF, a byte order mark"), "{error}");
}

#[test]
fn crlf_and_cr_only_line_endings_load_the_same_merges() {
    let (vocab, merges) = fixture_texts();
    let plain = load(&vocab, &merges).unwrap();
    for ending in ["\r\n", "\r"] {
        let converted = merges.replace('\n', ending);
        let bpe = load(&vocab, &converted).unwrap();
        for text in SAMPLES {
            assert_eq!(bpe.encode(text), plain.encode(text), "{ending:?} {text:?}");
        }
        // The first and the last merge of the file: every line was read.
        let id = |token: &str| (0..50257).find(|&id| bpe.token_text(id).as_deref() == Some(token));
        let rank = |l, r| bpe.merge_rank(id(l).unwrap(), id(r).unwrap());
        assert_eq!(rank("Ġ", "t"), Some(0), "{ending:?}");
        assert_eq!(rank("Ġg", "azed"), Some(49_999), "{ending:?}");
    }
}

#[test]
fn no_merges_beside_a_vocabulary_that_needs_them_is_an_error() {
    let (vocab, _) = fixture_texts();
    for merges in ["", "#version: 0.2\n", "\n\n"] {
        let error = error_of(&vocab, merges);
        assert!(
            error.starts_with(
                "merges.txt: no merges found, but the vocabulary has 50000 tokens of more \
                 than one byte"
            ),
            "{error}"
        );
    }
    // A vocabulary of bytes (and <|endoftext|>) needs no merges: each byte is a token.
    let bytes_only = load(&byte_vocab(&["<|endoftext|>"]), "#version: 0.2\n").unwrap();
    assert_eq!(bytes_only.encode("hi<|endoftext|>"), vec![u32::from(b'h'), u32::from(b'i'), 256]);
}

/// A random string of `len` characters from an alphabet of letters, digits, whitespace,
/// punctuation, contractions' apostrophes, multi-byte characters and special-token pieces.
fn random_text(rng: &mut XorShift64, len: usize) -> String {
    const PIECES: &[&str] = &[
        "a",
        "e",
        "t",
        "Z",
        "q",
        "7",
        "0",
        " ",
        " ",
        "  ",
        "\n",
        "\r\n",
        "\t",
        "'",
        "'s",
        "'ll",
        "!",
        ".",
        "-",
        "é",
        "ß",
        "中",
        "😀",
        "\u{301}",
        "\u{a0}",
        "\u{2028}",
        "<|",
        "|>",
        "<|endoftext|>",
        "endoftext",
    ];
    (0..len).map(|_| PIECES[(rng.next_u64() % PIECES.len() as u64) as usize]).collect()
}

#[test]
fn encode_never_panics_and_decode_gives_the_text_back() {
    let (vocab, merges) = fixture_texts();
    let bpe = load(&vocab, &merges).unwrap();
    let mut rng = XorShift64::new(2024).unwrap();
    let mut texts: Vec<String> = (0..300).map(|i| random_text(&mut rng, i % 60)).collect();
    // Long words: one pre-token of many bytes each, where the merge loop does the most work.
    let letters: String =
        (0..20_000).map(|_| char::from(b'a' + (rng.next_u64() % 26) as u8)).collect();
    texts.extend([letters, "a".repeat(20_001), "中".repeat(5_000), "!?".repeat(5_000)]);
    for text in &texts {
        let ids = bpe.encode(text);
        assert!(ids.iter().all(|&id| id < 50257), "{text:?}");
        assert_eq!(&bpe.decode(&ids).unwrap(), text);
    }
}
