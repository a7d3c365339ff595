//! The pictures of `src/viz.rs` on the dummy model: the recording changes nothing, the
//! terminal pictures show what they claim, the HTML report is well-formed, self-contained
//! and complete, and LEARN.md's pictures are the ones the code draws.

use std::path::Path;

use gpt2_edu::bpe::Bpe;
use gpt2_edu::checkpoint::load_dir;
use gpt2_edu::generate::{Decoding, GenerateConfig, StopReason, TextGenerator};
use gpt2_edu::sample::SamplingParams;
use gpt2_edu::viz::{self, ExplainOptions, Explanation, HeadId, Heads, HtmlReport, Recorder};
use gpt2_edu::{Error, Model, Tokenizer, dummy};

fn dummy_model() -> (dummy::WordEncoder, Model) {
    let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    (encoder, Model::new(hparams, weights).unwrap())
}

fn config(max_tokens: usize) -> GenerateConfig {
    GenerateConfig { max_tokens, ..GenerateConfig::default() }
}

fn sampling_config(max_tokens: usize, seed: u64) -> GenerateConfig {
    GenerateConfig {
        sampling: SamplingParams {
            temperature: 1.5,
            top_k: Some(3),
            top_p: None,
            ..SamplingParams::GREEDY
        },
        seed,
        ..config(max_tokens)
    }
}

/// A small random GPT-2 with the byte-level BPE tokenizer (513 tokens, 3 layers of 4 heads).
fn tiny_gpt2() -> (Bpe, Model) {
    load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2")).unwrap()
}

/// The worked example: "hello", 5 greedy tokens, every head.
fn worked_example() -> Explanation {
    let (encoder, model) = dummy_model();
    viz::explain_generation(&model, &encoder, "hello", &config(5), &ExplainOptions::default())
        .unwrap()
}

/// The text and token ids a plain `TextGenerator` produces.
fn generate_plainly(prompt: &str, config: &GenerateConfig) -> (String, Vec<u32>) {
    let (encoder, model) = dummy_model();
    let mut text = TextGenerator::new(&model, &encoder, prompt, config).unwrap();
    let mut out = text.prompt_text().to_string();
    for piece in text.by_ref() {
        out.push_str(&piece.unwrap());
    }
    (out, text.tokens().tokens().to_vec())
}

// ----------------------------------------------------------------------------------------
// Recording

#[test]
fn recording_does_not_change_the_generated_tokens() {
    let (encoder, model) = dummy_model();
    let configs = [
        config(5),
        GenerateConfig { decoding: Decoding::FullRecompute, ..config(7) },
        sampling_config(12, 5),
        sampling_config(12, 99),
    ];
    for config in configs {
        for prompt in ["hello", "hello world", "the big world"] {
            let (_, plain_ids) = generate_plainly(prompt, &config);
            let run = viz::explain_generation(
                &model,
                &encoder,
                prompt,
                &config,
                &ExplainOptions::default(),
            )
            .unwrap();
            assert_eq!(run.tokens, plain_ids, "{prompt:?} {config:?}");
            assert_eq!(run.steps.len(), config.max_tokens);
            for (step, &id) in run.steps.iter().zip(&run.tokens[run.n_prompt..]) {
                assert_eq!(step.chosen, Some(id), "each step names the token it chose");
            }
        }
    }
}

#[test]
fn the_worked_example_is_recorded_step_by_step() {
    let run = worked_example();
    assert_eq!(run.text, "hello world world world <UNK> <UNK>");
    assert_eq!(run.n_prompt, 1);
    assert_eq!(run.steps.len(), 5);
    for (i, step) in run.steps.iter().enumerate() {
        assert_eq!(step.number, i + 1);
        assert_eq!(step.seen.len(), i + 1, "step {} has seen {} tokens", i + 1, i + 1);
        assert_eq!(step.attention.len(), 4, "2 layers x 2 heads");
        for map in &step.attention {
            // Cached: step 1 runs the prompt (1 token here), each later step 1 token.
            assert_eq!((map.n_queries, map.n_keys), (1, i + 1));
        }
        assert_eq!(step.cache.layers[0].positions, i + 1);
        assert_eq!(step.cache.capacity, 6, "prompt + max_tokens");
    }
    // Step 1's probabilities are LEARN.md section 17's "T = 1" row.
    let step_1: Vec<(String, String)> = run.steps[0]
        .candidates
        .iter()
        .map(|c| (c.text.clone(), format!("{:.4}", c.probability)))
        .collect();
    let expected =
        [("world", "0.4379"), ("hello", "0.2667"), ("the", "0.2037"), ("<UNK>", "0.0918")];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(t, p)| (t.to_string(), p.to_string())).collect();
    assert_eq!(step_1, expected);
}

#[test]
fn a_prompt_of_several_tokens_is_one_step_with_one_query_row_per_token() {
    let (encoder, model) = dummy_model();
    let run = viz::explain_generation(
        &model,
        &encoder,
        "hello world the",
        &config(2),
        &ExplainOptions::default(),
    )
    .unwrap();
    let first = run.steps[0].attention_map(HeadId { layer: 1, head: 1 }).unwrap();
    assert_eq!((first.n_queries, first.n_keys), (3, 3));
    let second = run.steps[1].attention_map(HeadId { layer: 1, head: 1 }).unwrap();
    assert_eq!((second.n_queries, second.n_keys), (1, 4));
    assert_eq!(second.query_position(0), 3);
}

#[test]
fn stacked_cached_rows_equal_the_last_step_of_full_recomputation() {
    let (encoder, model) = dummy_model();
    let options = ExplainOptions::default();
    let cached =
        viz::explain_generation(&model, &encoder, "hello world", &config(4), &options).unwrap();
    let full_config = GenerateConfig { decoding: Decoding::FullRecompute, ..config(4) };
    let full =
        viz::explain_generation(&model, &encoder, "hello world", &full_config, &options).unwrap();
    for &head in &cached.heads {
        let stacked = cached.attention_over_run(head).unwrap();
        let last_full = full.steps.last().unwrap().attention_map(head).unwrap();
        assert_eq!((stacked.n_queries, stacked.n_keys), (5, 5));
        assert_eq!(stacked.weights, last_full.weights, "{head}: bit for bit");
        assert_eq!(full.attention_over_run(head).unwrap().weights, stacked.weights);
    }
}

#[test]
fn the_step_that_chooses_end_of_text_is_recorded() {
    // The dummy vocabulary has no end-of-text token; stop strings end a run the same way
    // (the step runs, then generation ends). Here the stop string is the first new word.
    let (encoder, model) = dummy_model();
    let config = GenerateConfig { stop_strings: vec!["world".into()], ..config(5) };
    let run =
        viz::explain_generation(&model, &encoder, "hello", &config, &ExplainOptions::default())
            .unwrap();
    assert_eq!(run.steps.len(), 1, "the step whose token reached the stop string");
    assert_eq!(run.steps[0].chosen, Some(1));
    assert_eq!(run.stop_reason, Some(gpt2_edu::generate::StopReason::StopString("world".into())));
}

#[test]
fn the_step_that_chooses_end_of_text_is_recorded_with_a_real_tokenizer() {
    let (tokenizer, model) = tiny_gpt2();
    let eot = tokenizer.end_of_text().unwrap();
    let prompt = "Once upon a time";
    // A seed whose sampled text ends with <|endoftext|> (found by the scan, not assumed).
    let (config, plain_ids) = (1..500)
        .map(|seed| GenerateConfig {
            sampling: SamplingParams {
                temperature: 1.5,
                top_k: None,
                top_p: None,
                ..SamplingParams::GREEDY
            },
            seed,
            ..config(30)
        })
        .map(|config| {
            let mut text = TextGenerator::new(&model, &tokenizer, prompt, &config).unwrap();
            text.by_ref().for_each(|piece| drop(piece.unwrap()));
            let ended = text.stop_reason() == Some(&StopReason::EndOfText);
            (config, text.tokens().tokens().to_vec(), ended)
        })
        .find_map(|(config, ids, ended)| ended.then_some((config, ids)))
        .expect("some seed samples <|endoftext|>");
    let run =
        viz::explain_generation(&model, &tokenizer, prompt, &config, &ExplainOptions::default())
            .unwrap();
    assert_eq!(run.tokens, plain_ids);
    assert_eq!(run.stop_reason, Some(StopReason::EndOfText));
    let n_generated = run.tokens.len() - run.n_prompt;
    assert_eq!(run.steps.len(), n_generated + 1, "one step per token, then the one that ended");
    let last = run.steps.last().unwrap();
    assert!(last.ended_text);
    assert_eq!(last.chosen, Some(eot));
    assert!(viz::top_candidates(last, 5).contains("<|endoftext|> (ends the text)"));
    for step in &run.steps {
        assert_eq!(step.attention.len(), 3 * 4, "3 layers x 4 heads");
        assert_eq!((step.n_vocab, step.candidates.len() >= 10), (513, true));
        let total =
            step.candidates.iter().map(|c| c.probability).sum::<f64>() + step.other_probability;
        assert!((total - 1.0).abs() < 1e-9);
    }
    // GPT-2 tokens carry their leading space, shown as ␣ in the labels.
    let first = &run.steps[0];
    assert!(first.seen.iter().any(|token| token.starts_with(' ')));
    let picture = viz::attention_heatmap(&first.attention[0], &first.seen);
    assert!(picture.contains("3 ␣up"), "{picture}");
    let html = viz::html_report(&run);
    assert_well_formed_and_self_contained(&html);
    assert!(html.contains("(503 other tokens)"), "513 tokens, the top 10 listed");
}

#[test]
fn chosen_heads_only_are_recorded_and_unknown_ones_are_errors() {
    let (encoder, model) = dummy_model();
    let only = ExplainOptions {
        heads: Heads::Only(vec![HeadId { layer: 1, head: 0 }]),
        top_n: 2,
        lens: false,
    };
    let run = viz::explain_generation(&model, &encoder, "hello", &config(3), &only).unwrap();
    for step in &run.steps {
        assert_eq!(step.attention.len(), 1);
        assert_eq!(step.attention[0].head, HeadId { layer: 1, head: 0 });
        assert_eq!(step.candidates.len(), 2);
    }
    for (head, message) in [
        (HeadId { layer: 2, head: 0 }, "layer 2 does not exist: the model has 2 layers (0-1)"),
        (
            HeadId { layer: 0, head: 2 },
            "head 2 does not exist: each layer of the model has 2 heads (0-1)",
        ),
    ] {
        let options =
            ExplainOptions { heads: Heads::Only(vec![head]), ..ExplainOptions::default() };
        let error =
            viz::explain_generation(&model, &encoder, "hello", &config(3), &options).unwrap_err();
        assert!(matches!(error, Error::NoSuchHead(_)), "{error:?}");
        assert!(error.to_string().contains(message), "{error}");
    }
}

#[test]
fn probabilities_are_the_samplers_distribution() {
    let (encoder, model) = dummy_model();
    let config = sampling_config(6, 7);
    let run =
        viz::explain_generation(&model, &encoder, "hello", &config, &ExplainOptions::default())
            .unwrap();
    for step in &run.steps {
        let zero = step.candidates.iter().filter(|c| c.probability == 0.0).count();
        assert_eq!(zero, 1, "top-k 3 of 4 tokens leaves one at zero");
        let chosen = step.chosen_candidate().unwrap();
        assert!(chosen.probability > 0.0, "the sampler never draws a zero-probability token");
        let total: f64 =
            step.candidates.iter().map(|c| c.probability).sum::<f64>() + step.other_probability;
        assert!((total - 1.0).abs() < 1e-9);
    }
}

// ----------------------------------------------------------------------------------------
// Terminal pictures

#[test]
fn heatmap_of_the_first_step_has_weight_one_on_the_only_key() {
    let run = worked_example();
    let step = &run.steps[0];
    let picture = viz::attention_heatmap(
        step.attention_map(HeadId { layer: 0, head: 0 }).unwrap(),
        &step.seen,
    );
    assert_eq!(
        picture,
        "attention weights, layer 0, head 0, step 1 (rows: queries, columns: keys, ·: masked future)\n           0 hello\n0 hello    █ 1.00\n"
    );
}

#[test]
fn heatmap_over_the_run_leaves_the_future_empty() {
    let run = worked_example();
    let map = run.attention_over_run(HeadId { layer: 0, head: 0 }).unwrap();
    let picture = viz::attention_heatmap(&map, &run.token_texts);
    let lines: Vec<&str> = picture.lines().collect();
    assert_eq!(lines.len(), 2 + 5, "title, key labels, 5 query rows");
    assert!(lines[0].contains("layer 0, head 0, steps 1-5 stacked"), "{picture}");
    assert!(lines[1].contains("0 hello") && lines[1].contains("4 <UNK>"), "{picture}");
    // The first query sees only itself: weight 1 on key 0, then four masked cells.
    let first: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(first, ["0", "hello", "█", "1.00", "·", "·", "·", "·"]);
    // Query 2 ("world" at position 2) sees keys 0-2; keys 3 and 4 are its future.
    let third: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(&third[..2], ["2", "world"]);
    assert_eq!(third.iter().filter(|&&cell| cell == "·").count(), 2, "{picture}");
    assert_eq!(&third[third.len() - 2..], ["·", "·"]);
    // The last query sees everything.
    assert!(!lines[6].contains('·'), "{picture}");
}

#[test]
fn candidates_mark_the_chosen_token_and_sum_to_one() {
    let run = worked_example();
    let picture = viz::top_candidates(&run.steps[0], 2);
    let lines: Vec<&str> = picture.lines().collect();
    assert!(lines[0] == "step 1: \"hello\" -> world   (softmax at T = 1)", "{picture}");
    assert!(lines[1].starts_with("  ▶ world        0.4379 ██████████████████"), "{picture}");
    assert!(lines[2].starts_with("    hello        0.2667 ███████████"), "{picture}");
    assert!(lines[3].starts_with("    (2 other)    0.2955"), "{picture}");
    assert_eq!(lines.len(), 4);
}

#[test]
fn cache_fill_grows_one_position_per_step() {
    let run = worked_example();
    for step in &run.steps {
        let picture = viz::cache_fill(&step.cache);
        let n = step.number;
        assert!(
            picture.starts_with(&format!("KV cache: {n} of 6 positions filled in every layer\n")),
            "{picture}"
        );
        // 2 (keys, values) x n positions x 10 floats x 4 bytes per layer.
        assert!(picture.contains(&format!("{} B of 480 B", 80 * n)), "{picture}");
    }
}

#[test]
fn step_pictures_are_the_three_pictures_in_order() {
    let run = worked_example();
    let step = &run.steps[2];
    let head = HeadId { layer: 1, head: 0 };
    let expected = [
        viz::attention_heatmap(step.attention_map(head).unwrap(), &step.seen),
        viz::top_candidates(step, 3),
        viz::cache_fill(&step.cache),
    ]
    .join("\n");
    assert_eq!(viz::step_pictures(step, head, 3), expected);
}

// ----------------------------------------------------------------------------------------
// The HTML report

/// Checks that every element opened is closed, in order (void elements and `/>` need no
/// closing tag), and that the page loads and runs nothing: no script, no URL, no external
/// reference.
fn assert_well_formed_and_self_contained(html: &str) {
    const VOID: [&str; 6] = ["meta", "br", "hr", "img", "input", "link"];
    let lower = html.to_lowercase();
    for forbidden in
        ["<script", "http", "src=", "url(", "@import", "<link", "<iframe", "javascript:"]
    {
        assert!(!lower.contains(forbidden), "the report must not contain {forbidden:?}");
    }
    // Links only to anchors of the page itself (the navigation and the contents).
    for link in lower.split("href=\"").skip(1) {
        let target = &link[..link.find('"').unwrap()];
        let anchor = format!("id=\"{}\"", target.trim_start_matches('#'));
        assert!(target.starts_with('#') && lower.contains(&anchor), "link to {target:?}");
    }
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("an unclosed tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        assert!(!tag.contains('<'), "a '<' inside a tag: {tag}");
        if tag.starts_with('!') {
            continue; // <!DOCTYPE html>
        }
        if let Some(name) = tag.strip_prefix('/') {
            let expected = open.pop().unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(name, expected, "</{name}> closes <{expected}>");
            continue;
        }
        let name = tag.split_whitespace().next().unwrap().trim_end_matches('/').to_string();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "tag name {name:?}");
        if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            open.push(name);
        }
    }
    assert!(open.is_empty(), "never closed: {open:?}");
    assert!(!rest.contains('>'), "a stray '>' in text");
}

/// The sections `<section class="step" data-step="N">` ... `</section>`, in order.
fn step_sections(html: &str) -> Vec<&str> {
    html.split("<section class=\"step\"")
        .skip(1)
        .map(|s| &s[..s.find("</section>").unwrap()])
        .collect()
}

/// Every value of `attribute="..."` in `html`.
fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!("{attribute}=\"");
    html.split(needle.as_str()).skip(1).map(|s| &s[..s.find('"').unwrap()]).collect()
}

#[test]
fn html_report_is_well_formed_and_self_contained() {
    assert_well_formed_and_self_contained(&viz::html_report(&worked_example()));
    let (encoder, model) = dummy_model();
    for config in
        [sampling_config(9, 3), GenerateConfig { decoding: Decoding::FullRecompute, ..config(3) }]
    {
        let run = viz::explain_generation(
            &model,
            &encoder,
            "the < & > \"world\"",
            &config,
            &ExplainOptions::default(),
        )
        .unwrap();
        assert_well_formed_and_self_contained(&viz::html_report(&run));
    }
}

#[test]
fn html_report_has_one_attention_map_per_layer_head_and_step() {
    let html = viz::html_report(&worked_example());
    let steps = step_sections(&html);
    assert_eq!(steps.len(), 5);
    for (i, step) in steps.iter().enumerate() {
        assert!(step.starts_with(&format!(" data-step=\"{}\"", i + 1)));
        let mut maps: Vec<(String, String)> = step
            .split("<figure class=\"attention\"")
            .skip(1)
            .map(|figure| {
                let layer = attribute_values(figure, "data-layer")[0].to_string();
                let head = attribute_values(figure, "data-head")[0].to_string();
                (layer, head)
            })
            .collect();
        maps.sort();
        let expected: Vec<(String, String)> = [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
            .iter()
            .map(|(l, h)| (l.to_string(), h.to_string()))
            .collect();
        assert_eq!(maps, expected, "step {}", i + 1);
        // Step i+1 runs one query over i+1 keys: i+1 visible cells per map, no masked ones.
        assert_eq!(step.matches("<rect").count(), 4 * (i + 1));
    }
    // The stacked overview: one 5 x 5 triangle (15 visible cells) per head.
    let run = &html[html.find("<section class=\"run\"").unwrap()..];
    assert_eq!(run.matches("<figure class=\"attention-run\"").count(), 4);
    assert_eq!(run.matches("<rect").count(), 4 * 15, "the masked future is drawn empty");
}

#[test]
fn html_report_holds_the_escaped_tokens() {
    let html = viz::html_report(&worked_example());
    let tokens: Vec<&str> = html
        .split("<span class=\"token ")
        .skip(1)
        .filter(|s| s.contains("data-pos"))
        .map(|s| &s[s.find('>').unwrap() + 1..s.find("</span>").unwrap()])
        .collect();
    assert_eq!(tokens, ["hello", "world", "world", "world", "&lt;UNK&gt;", "&lt;UNK&gt;"]);
    assert_eq!(html.matches("class=\"token prompt\" data-pos").count(), 1);
    assert_eq!(html.matches("class=\"token generated\" data-pos").count(), 5);
    assert!(!html.contains("<UNK>"), "token text must be escaped");
    assert!(html.contains("<pre>hello world world world &lt;UNK&gt; &lt;UNK&gt;</pre>"));
}

#[test]
fn html_report_probabilities_sum_to_one_per_step() {
    let (encoder, model) = dummy_model();
    let top_2 = ExplainOptions { top_n: 2, ..ExplainOptions::default() };
    for (config, options) in [
        (config(5), ExplainOptions::default()),
        (config(5), top_2.clone()),
        (sampling_config(8, 11), top_2),
    ] {
        let run = viz::explain_generation(&model, &encoder, "hello", &config, &options).unwrap();
        let html = viz::html_report(&run);
        for step in step_sections(&html) {
            let table = &step[step.find("<table class=\"candidates\">").unwrap()..];
            let table = &table[..table.find("</table>").unwrap()];
            let p: Vec<f64> =
                attribute_values(table, "data-p").iter().map(|v| v.parse().unwrap()).collect();
            assert!(p.len() >= 2);
            let total: f64 = p.iter().sum();
            assert!((total - 1.0).abs() < 1e-9, "{p:?}");
            assert_eq!(table.matches("class=\"candidate chosen\"").count(), 1);
        }
    }
}

/// A writer that takes `capacity` bytes, then fails like a full disk.
struct FullAfter {
    written: Vec<u8>,
    capacity: usize,
}

impl std::io::Write for FullAfter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = self.capacity - self.written.len();
        if room == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "the disk is full"));
        }
        let n = bytes.len().min(room);
        self.written.extend_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn html_report_write_errors_are_the_writers() {
    let run = worked_example();
    let page = viz::html_report(&run);
    for capacity in [0, 100, page.len() / 2, page.len() - 1] {
        let mut out = FullAfter { written: Vec::new(), capacity };
        let error = viz::write_html_report(&run, &mut out).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{capacity}");
        assert_eq!(out.written, page.as_bytes()[..capacity], "{capacity}");
    }
    let mut out = FullAfter { written: Vec::new(), capacity: page.len() };
    viz::write_html_report(&run, &mut out).unwrap();
    assert_eq!(out.written, page.as_bytes());
}

#[test]
fn html_report_is_written_to_a_writer() {
    let run = worked_example();
    let mut written = Vec::new();
    viz::write_html_report(&run, &mut written).unwrap();
    assert_eq!(String::from_utf8(written).unwrap(), viz::html_report(&run));
}

/// The report written step by step, each step forgotten once written, is the page
/// `html_report` makes of the whole recorded run: cached, full recomputation, sampled,
/// and with one head only.
#[test]
fn html_report_written_as_the_steps_come_is_the_whole_runs_page() {
    let (encoder, model) = dummy_model();
    let one_head = ExplainOptions {
        heads: Heads::Only(vec![HeadId { layer: 1, head: 0 }]),
        top_n: 3,
        lens: false,
    };
    let full = GenerateConfig { decoding: Decoding::FullRecompute, ..config(4) };
    for (config, options) in [
        (config(5), ExplainOptions::default()),
        (full, ExplainOptions::default()),
        (sampling_config(9, 3), ExplainOptions::default()),
        (config(5), one_head),
    ] {
        let run =
            viz::explain_generation(&model, &encoder, "hello world", &config, &options).unwrap();
        let mut recorder = Recorder::new(&model, &encoder, &config, &options).unwrap();
        let heads = options.heads.resolve(&model.hparams).unwrap();
        let mut report = HtmlReport::start(Vec::new(), &model.hparams, &config, &heads).unwrap();
        let mut text = TextGenerator::new(&model, &encoder, "hello world", &config).unwrap();
        let mut trace = gpt2_edu::Trace::new();
        loop {
            let piece = text.next_text_traced(&mut trace).unwrap();
            if let Some(step) = recorder.record_step(&trace, text.tokens()).unwrap() {
                report.step(step).unwrap();
            }
            recorder.forget_steps();
            assert!(recorder.steps().is_empty());
            trace.clear();
            if piece.is_none() {
                break;
            }
        }
        let tail = recorder.finish(text.tokens()).unwrap();
        assert!(tail.steps.is_empty(), "forgotten");
        assert_eq!((&tail.tokens, &tail.text), (&run.tokens, &run.text));
        let page = String::from_utf8(report.finish(&tail).unwrap()).unwrap();
        assert_eq!(page, viz::html_report(&run), "{config:?} {options:?}");
        let n_maps = heads.len() * (run.steps.len() + 1); // each step's, then the overview's
        assert_eq!(page.matches("<figure").count(), n_maps);
    }
}

/// Steps first, as they ran; then the tokens, the text and why it stopped; then the
/// overview. The summary at the top holds only what is known before the first step.
#[test]
fn html_report_puts_the_tokens_after_the_steps() {
    let html = viz::html_report(&worked_example());
    let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("no {needle}"));
    assert!(at("<p class=\"summary\">Model: n_layer 2") < at("<section class=\"step\""));
    assert!(html.rfind("<section class=\"step\"").unwrap() < at("<section class=\"tokens\">"));
    assert!(at("<section class=\"tokens\">") < at("<section class=\"run\""));
    let tokens = &html[at("<section class=\"tokens\">")..at("<section class=\"run\"")];
    assert!(
        tokens.contains("<p class=\"summary\">Stopped: reached the maximum number of tokens.</p>")
    );
    assert_eq!(html.matches("Stopped:").count(), 1);
}

#[test]
fn forgotten_steps_still_count() {
    let (encoder, model) = dummy_model();
    let config = config(3);
    let options = ExplainOptions::default();
    let mut recorder = Recorder::new(&model, &encoder, &config, &options).unwrap();
    let mut text = TextGenerator::new(&model, &encoder, "hello", &config).unwrap();
    let mut trace = gpt2_edu::Trace::new();
    let mut numbers = Vec::new();
    while text.next_text_traced(&mut trace).unwrap().is_some() {
        numbers.extend(recorder.record_step(&trace, text.tokens()).unwrap().map(|s| s.number));
        if numbers.len() == 2 {
            recorder.forget_steps();
        }
        trace.clear();
    }
    assert_eq!(numbers, [1, 2, 3]);
    let run = recorder.finish(text.tokens()).unwrap();
    assert_eq!(run.steps.iter().map(|s| s.number).collect::<Vec<_>>(), [3], "kept since");
    assert_eq!(run.attention_over_run(HeadId { layer: 0, head: 0 }), None, "rows are missing");
}

// ----------------------------------------------------------------------------------------
// The worked example's pictures

fn in_snapshot_folder(check: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(check);
}

#[test]
fn learn_pictures_snapshot() {
    let pictures = viz::learn_pictures().unwrap();
    in_snapshot_folder(|| {
        insta::assert_snapshot!("viz_worked_example", pictures.blocks().join("\n"));
    });
}

#[test]

fn learn_md_holds_the_pictures() {
    const LEARN: &str = include_str!("../LEARN.md");
    for picture in viz::learn_pictures().unwrap().blocks() {
        let block = format!("```text\n{picture}```\n");
        assert!(LEARN.contains(&block), "LEARN.md section 19 should contain:\n{block}");
    }
}

#[test]
fn a_model_with_many_heads_shows_each_layers_mean_map() {
    // 5 layers of 4 heads: 20 > FULL_MAPS_UP_TO_HEADS.
    let hparams = gpt2_edu::HParams {
        n_vocab: 4,
        n_ctx: 8,
        n_embd: 8,
        n_head: 4,
        n_layer: 5,
        layer_norm_eps: 1e-5,
    };
    let mut rng = gpt2_edu::XorShift64::new(3).unwrap();
    let model =
        Model::new(hparams, gpt2_edu::Weights::random(&hparams, &mut rng).unwrap()).unwrap();
    let (encoder, _, _) = gpt2_edu::dummy::load_encoder_hparams_and_params();
    let config = GenerateConfig { max_tokens: 2, ..GenerateConfig::default() };
    let run =
        viz::explain_generation(&model, &encoder, "hello", &config, &ExplainOptions::default())
            .unwrap();
    let html = viz::html_report(&run);
    assert_eq!(html.matches("<figure").count(), 5 * (2 + 1), "one mean map per layer and step");
    assert!(html.contains("layer 4, mean of 4 heads, step 2"));
    let step = &run.steps[1];
    let mean: f32 = (0..4)
        .map(|h| step.attention_map(HeadId { layer: 4, head: h }).unwrap().weights[0])
        .sum::<f32>()
        / 4.0;
    assert!(
        html.contains(&format!("0 hello: {}", gpt2_edu::trace::format_fixed(mean, 4))),
        "{mean}"
    );
}
