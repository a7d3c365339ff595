//! Scoring against HuggingFace transformers: `tests/golden/hf_scoring.py` scores three texts
//! (shorter and longer than the 64-token context of `tests/fixtures/tiny-gpt2`) at three
//! strides with transformers' logits, by the window rule of `src/score.rs` written out
//! independently; every log-probability here must match within 1e-4 and the perplexity
//! within 1e-4 relative. The command line's `--perplexity` is checked against the same file.

use std::path::{Path, PathBuf};
use std::process::Command;

use gpt2_edu::checkpoint::load_dir;
use gpt2_edu::json::{self, Json};
use gpt2_edu::score::score;
use gpt2_edu::{Engine, Error, Model, Tokenizer, Workspace};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn golden() -> Json {
    json::parse(include_str!("golden/scoring.json")).unwrap()
}

fn number(value: &Json, key: &str) -> f64 {
    value.get(key).and_then(Json::as_f64).unwrap()
}

/// `[position, token, logprob, [[id, logprob], ...]]`.
fn token_entry(entry: &Json) -> (usize, u32, f64, Vec<(u32, f64)>) {
    let parts = entry.as_array().unwrap();
    let top = parts[3]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let pair = pair.as_array().unwrap();
            (pair[0].as_u64().unwrap() as u32, pair[1].as_f64().unwrap())
        })
        .collect();
    let (position, token) = (parts[0].as_u64().unwrap() as usize, parts[1].as_u64().unwrap());
    (position, token as u32, parts[2].as_f64().unwrap(), top)
}

#[test]
fn every_logprob_and_perplexity_matches_transformers() {
    let golden = golden();
    let (tokenizer, model) = load_dir(&repo("tests/fixtures/tiny-gpt2")).unwrap();
    let reference = model.clone();
    let engine = Engine::new(model).unwrap();
    let mut workspace = Workspace::new(2).unwrap();
    let cases = golden.get("cases").unwrap().as_array().unwrap();
    assert_eq!(cases.len(), 9);
    let (mut worst, mut longer_than_context) = (0.0f64, 0);
    for case in cases {
        let file = case.get("file").and_then(Json::as_str).unwrap();
        let text = std::fs::read_to_string(repo("tests/golden").join(file)).unwrap();
        let ids = tokenizer.encode(&text);
        let expected_ids: Vec<u32> = case
            .get("ids")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, expected_ids, "{file}: the tokenizer agrees");
        let stride = number(case, "stride") as usize;
        let label = format!("{file} at stride {stride}");
        let scores = score(&engine, &ids, stride, 3, &mut workspace).unwrap();
        longer_than_context += usize::from(ids.len() > 64);
        assert_eq!(scores.windows, number(case, "windows") as usize, "{label}");
        let expected = case.get("tokens").unwrap().as_array().unwrap();
        assert_eq!(scores.tokens.len(), expected.len(), "{label}");
        assert_eq!(scores.tokens.len(), ids.len() - 1, "{label}: every token from the second");
        for (got, want) in scores.tokens.iter().zip(expected) {
            let (position, token, logprob, top) = token_entry(want);
            assert_eq!((got.position, got.token), (position, token), "{label}");
            let error = (got.logprob - logprob).abs();
            worst = worst.max(error);
            assert!(error < 1e-4, "{label}, position {position}: {} vs {logprob}", got.logprob);
            for (rank, (&(id, lp), &(want_id, want_lp))) in got.top.iter().zip(&top).enumerate() {
                assert!((lp - want_lp).abs() < 1e-4, "{label}, {position}, rank {rank}");
                let gap_to_next = top.get(rank + 1).map_or(f64::INFINITY, |n| want_lp - n.1);
                let gap_to_previous =
                    if rank == 0 { f64::INFINITY } else { top[rank - 1].1 - want_lp };
                if gap_to_next.min(gap_to_previous) > 1e-4 {
                    assert_eq!(id, want_id, "{label}, position {position}, rank {rank}");
                }
            }
        }
        let (nll, perplexity) = (number(case, "nll"), number(case, "perplexity"));
        assert!((scores.nll() - nll).abs() / nll < 1e-4, "{label}: {} vs {nll}", scores.nll());
        assert!((scores.perplexity() - perplexity).abs() / perplexity < 1e-4, "{label}");
    }
    assert_eq!(longer_than_context, 6, "two texts are longer than n_ctx = 64, at 3 strides");
    assert!(worst < 1e-5, "worst difference {worst:e}");

    // The reference model scores the same, bit for bit (it gives the same logits).
    let ids =
        tokenizer.encode(&std::fs::read_to_string(repo("tests/golden/scoring-long.txt")).unwrap());
    let fast = score(&engine, &ids, 32, 2, &mut workspace).unwrap();
    let plain = score(&reference, &ids, 32, 2, &mut Vec::new()).unwrap();
    assert_eq!(fast, plain);
}

#[test]
fn bad_scoring_requests_are_errors() {
    let (tokenizer, model) = load_dir(&repo("tests/fixtures/tiny-gpt2")).unwrap();
    let engine = Engine::new(model).unwrap();
    let mut workspace = Workspace::new(1).unwrap();
    let ids = tokenizer.encode("Hello there");
    for stride in [0, 65] {
        let error = score(&engine, &ids, stride, 0, &mut workspace).unwrap_err().to_string();
        assert!(error.contains("stride must be between 1 and n_ctx = 64"), "{error}");
    }
    let error = score(&engine, &ids[..1], 8, 0, &mut workspace).unwrap_err().to_string();
    assert!(error.contains("at least 2 tokens"), "{error}");
    let error = score(&engine, &[1, 999], 8, 0, &mut workspace).unwrap_err();
    assert_eq!(error, Error::TokenOutOfRange { token: 999, n_vocab: 513 });
    let _: &Model;
}

/// The last line of `--perplexity`: `perplexity=P tokens=N nll=L`.
fn summary_line(stdout: &str) -> (f64, usize, f64) {
    let last = stdout.lines().last().unwrap();
    let field = |name: &str| -> &str {
        last.split(' ').find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap()
    };
    (
        field("perplexity").parse().unwrap(),
        field("tokens").parse().unwrap(),
        field("nll").parse().unwrap(),
    )
}

#[test]
fn the_command_line_prints_the_same_perplexity() {
    let golden = golden();
    let case = golden
        .get("cases")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c.get("file").and_then(Json::as_str) == Some("scoring-long.txt")
                && number(c, "stride") == 32.0
        })
        .unwrap()
        .clone();
    let output = Command::new(env!("CARGO_BIN_EXE_gpt2-edu"))
        .args([
            "--model",
            "tests/fixtures/tiny-gpt2",
            "--perplexity",
            "tests/golden/scoring-long.txt",
        ])
        .args(["--stride", "32"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let (perplexity, tokens, nll) = summary_line(&stdout);
    assert_eq!(tokens, number(&case, "n_tokens") as usize - 1);
    assert!((perplexity - number(&case, "perplexity")).abs() / perplexity < 1e-4, "{stdout}");
    assert!((nll - number(&case, "nll")).abs() < 1e-4, "{stdout}");
    assert!(stdout.contains("11 windows of 64 tokens, moving by 32"), "{stdout}");
}

/// A logprobs row: the step or position, the token as shown (quoted, or `<0x..>` bytes),
/// its log-probability, and the alternatives.
fn row_fields(row: &str) -> (usize, String, f64, Vec<(String, f64)>) {
    fn token(rest: &str) -> (String, &str) {
        let rest = rest.trim_start();
        let end = if let Some(quoted) = rest.strip_prefix('"') {
            let mut escaped = false;
            1 + quoted
                .char_indices()
                .find(|&(_, c)| {
                    let close = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    close
                })
                .unwrap()
                .0
                + 1
        } else {
            rest.find(' ').unwrap_or(rest.len())
        };
        (rest[..end].to_string(), &rest[end..])
    }
    fn number(rest: &str) -> (f64, &str) {
        let rest = rest.trim_start();
        let end = rest.find(' ').unwrap_or(rest.len());
        (rest[..end].parse().unwrap(), &rest[end..])
    }
    let row = row.trim_start();
    let at_end = row.find(' ').unwrap();
    let at = row[..at_end].parse().unwrap();
    let (shown, rest) = token(&row[at_end..]);
    let (logprob, mut rest) = number(rest);
    let mut top = Vec::new();
    while !rest.trim().is_empty() {
        let (alternative, after) = token(rest);
        let (value, after) = number(after);
        top.push((alternative, value));
        rest = after;
    }
    (at, shown, logprob, top)
}

fn run(args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpt2-edu"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.unwrap_or("").as_bytes()); // it may exit before reading
    drop(input);
    let output = child.wait_with_output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

#[test]
fn perplexity_lists_every_token_with_logprobs_and_the_dummy_matches_learn_md() {
    // "hello world world" on the dummy model: world after hello has p = 0.4379 (LEARN.md
    // section 17's T = 1 row), so its log-probability is ln 0.4379 = -0.8257.
    let (code, out, err) =
        run(&["--perplexity", "-", "--logprobs", "2"], Some("hello world world"));
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("log-probabilities (natural log"), "{out}");
    assert!(lines[1].contains("position") && lines[1].contains("the 2 most likely"), "{out}");
    let (position, token, logprob, top) = row_fields(lines[2]);
    assert_eq!((position, token.as_str()), (1, "\"world\""), "{out}");
    assert!((logprob.exp() - 0.4379).abs() < 1e-4, "{out}"); // both rounded to 4 places
    assert_eq!(top[0], ("\"world\"".to_string(), logprob), "the greedy choice was made");
    assert_eq!(top[1].0, "\"hello\"");
    assert!((top[1].1.exp() - 0.2667).abs() < 1e-4, "{out}");
    let (perplexity, tokens, nll) = summary_line(&out);
    assert_eq!(tokens, 2);
    let second = row_fields(lines[3]).2;
    assert!((nll + (logprob + second) / 2.0).abs() < 1e-4, "{out}");
    assert!((perplexity - nll.exp()).abs() < 1e-3 * perplexity);
    assert!(
        out.contains("scored 2 of 3 tokens in 1 window of 1024 tokens, moving by 512"),
        "{out}"
    );
}

#[test]
fn generated_tokens_logprobs_equal_scoring_the_generated_text() {
    let (code, out, err) = run(
        &["--model", "tests/fixtures/tiny-gpt2", "Once upon", "-n", "6", "--temperature", "1.2"]
            .iter()
            .chain(&["--seed", "3", "--logprobs", "1"])
            .copied()
            .collect::<Vec<_>>(),
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let table: Vec<&str> =
        out.lines().skip_while(|l| !l.starts_with("log-probabilities")).skip(2).collect();
    assert_eq!(table.len(), 6, "{out}");
    // Score the same tokens with the library: the generator's steps and the scorer's
    // windows are different code, and must agree.
    let (tokenizer, model) = load_dir(&repo("tests/fixtures/tiny-gpt2")).unwrap();
    let engine = Engine::new(model).unwrap();
    let config = gpt2_edu::GenerateConfig {
        max_tokens: 6,
        sampling: gpt2_edu::SamplingParams { temperature: 1.2, ..gpt2_edu::SamplingParams::GREEDY },
        seed: 3,
        ..gpt2_edu::GenerateConfig::default()
    };
    let prompt = tokenizer.encode("Once upon");
    let generated: Vec<u32> =
        gpt2_edu::Generator::new(&engine, &prompt, &config, tokenizer.end_of_text())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let all = [prompt.clone(), generated].concat();
    let scores = score(&engine, &all, 32, 1, &mut Workspace::new(1).unwrap()).unwrap();
    for (step, (row, scored)) in table.iter().zip(&scores.tokens[prompt.len() - 1..]).enumerate() {
        let (number, _, logprob, top) = row_fields(row);
        assert_eq!(number, step + 1);
        assert!((logprob - scored.logprob).abs() < 1e-4, "{row} vs {scored:?}");
        assert!((top[0].1 - scored.top[0].1).abs() < 1e-4, "{row} vs {scored:?}");
    }
}

#[test]
fn scoring_options_out_of_place_are_usage_errors() {
    for (args, needle) in [
        (&["--stride", "8", "hello"][..], "'--stride' only applies to --perplexity"),
        (&["--perplexity", "-", "hello"][..], "there is no prompt; found hello"),
        (&["--perplexity", "-", "-n", "5"][..], "option '--tokens' is for generating text"),
        (&["--perplexity", "-", "--temperature", "1"][..], "'--temperature' is for generating"),
        (&["--perplexity", "-", "--stride", "0"][..], "'--stride' must be at least 1"),
        (
            &["--perplexity", "-", "--stride", "1025"][..],
            "at most the model's context, n_ctx = 1024",
        ),
        (&["hello", "--logprobs", "101"][..], "'--logprobs' lists at most 100"),
        (&["hello", "--logprobs", "-1"][..], "'--logprobs'"),
    ] {
        let (code, _, err) = run(args, Some("hello world"));
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, _, err) = run(&["--perplexity", "-"], Some("hello"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("at least 2 tokens"), "{err}");
}

#[test]
fn learn_md_quotes_the_stride_table_as_computed() {
    let learn = std::fs::read_to_string(repo("LEARN.md")).unwrap();
    let (tokenizer, model) = load_dir(&repo("tests/fixtures/tiny-gpt2")).unwrap();
    let engine = Engine::new(model).unwrap();
    let text = std::fs::read_to_string(repo("tests/golden/scoring-long.txt")).unwrap();
    let ids = tokenizer.encode(&text);
    assert_eq!(ids.len(), 358, "LEARN.md calls it the 358-token text");
    for stride in [64, 32, 17] {
        let scores = score(&engine, &ids, stride, 0, &mut Workspace::new(1).unwrap()).unwrap();
        let row = format!("| {stride} | {} | {:.4} |", scores.windows, scores.perplexity());
        assert!(learn.contains(&row), "LEARN.md section 21 should have the row {row}");
    }
}

#[test]
fn learn_md_shows_the_logprobs_table_the_command_prints() {
    let (code, out, err) = run(&["hello", "-n", "2", "--logprobs", "2"], None);
    assert_eq!(code, Some(0), "{err}");
    let learn = std::fs::read_to_string(repo("LEARN.md")).unwrap();
    let shown = format!("$ gpt2-edu \"hello\" -n 2 --logprobs 2\n{out}```");
    assert!(learn.contains(&shown), "LEARN.md section 17 should show exactly:\n{shown}");
}
