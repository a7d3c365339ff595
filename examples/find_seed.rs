//! The scan that chose the dummy model's default weights seed: try seeds 1, 2, 3, ... and
//! report every seed (up to a limit) for which the exercise's three worked examples hold.
//!
//! ```text
//! cargo run --release --example find_seed            # seeds 1..=10000
//! cargo run --release --example find_seed -- 100000  # a longer scan
//! ```
//!
//! The first seed it prints is `DEFAULT_WEIGHTS_SEED`. The numpy reference finds the same
//! seed on its own: `python3 tests/golden/dummy_reference.py --find-seed`.

use gpt2_edu::dummy::{DEFAULT_WEIGHTS_SEED, WORKED_EXAMPLES, worked_examples_hold};
use std::process::ExitCode;

fn main() -> ExitCode {
    let limit = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => 10_000,
        Some(Ok(limit)) if limit > 0 => limit,
        Some(_) => {
            eprintln!("usage: find_seed [LIMIT]   (LIMIT: a positive whole number)");
            return ExitCode::from(2);
        }
    };
    println!("worked examples:");
    for (prompt, n_tokens, expected) in WORKED_EXAMPLES {
        println!("  gen_text({prompt:?}, {n_tokens}) == {expected:?}");
    }
    let start = std::time::Instant::now();
    let hits: Vec<u64> = (1..=limit)
        .filter(|&seed| worked_examples_hold(seed).expect("seeds from 1 are valid"))
        .collect();
    println!(
        "{} of seeds 1..={limit} reproduce all three ({:.1} s); the first few: {:?}",
        hits.len(),
        start.elapsed().as_secs_f64(),
        &hits[..hits.len().min(10)]
    );
    println!("DEFAULT_WEIGHTS_SEED = {DEFAULT_WEIGHTS_SEED}");
    if hits.first() == Some(&DEFAULT_WEIGHTS_SEED) {
        ExitCode::SUCCESS
    } else {
        eprintln!("the smallest seed found is not DEFAULT_WEIGHTS_SEED");
        ExitCode::FAILURE
    }
}
