//! How long does GPT-2's tokenizer take to encode ordinary text, and one very long word?
//!
//! ```text
//! cargo run --release --example bpe_timing
//! ```
//!
//! Prints one line per case: the input's size, the tokens it encodes to, and the best of a
//! few runs. Ordinary text is `LEARN.md` (prose and code); the long words have no spaces, so
//! each is a single pre-token and the merge loop alone decides the time. A merge loop that
//! rescans every pair after every merge takes time quadratic in the word's length.

use std::path::Path;
use std::time::{Duration, Instant};

use gpt2_edu::{Bpe, Tokenizer, XorShift64};

/// The shortest of `runs` timings of `encode(text)`, and the token count.
fn best_of(bpe: &Bpe, text: &str, runs: usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n_tokens = 0;
    for _ in 0..runs {
        let start = Instant::now();
        n_tokens = bpe.encode(text).len();
        best = best.min(start.elapsed());
    }
    (best, n_tokens)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/fixtures/gpt2-tokenizer");
    let bpe = Bpe::from_files(&dir.join("vocab.json"), &dir.join("merges.txt"))
        .expect("the committed GPT-2 tokenizer loads");
    let learn_md = std::fs::read_to_string(root.join("LEARN.md")).expect("LEARN.md is readable");
    let mut rng = XorShift64::new(7).expect("seed is not zero");
    let random_letters: String =
        (0..100_000).map(|_| char::from(b'a' + (rng.next_u64() % 26) as u8)).collect();
    let cases = [
        ("LEARN.md", learn_md, 20),
        ("'a' x 10,000", "a".repeat(10_000), 3),
        ("'a' x 100,000", "a".repeat(100_000), 1),
        ("100,000 random letters", random_letters, 1),
    ];
    for (name, text, runs) in cases {
        let (time, n_tokens) = best_of(&bpe, &text, runs);
        println!(
            "{name:<24} {:>7} bytes -> {n_tokens:>6} tokens  {:>10.3} ms  (best of {runs})",
            text.len(),
            time.as_secs_f64() * 1e3
        );
    }
}
