//! Stop conditions and streaming: `<|endoftext|>`, stop strings, the context limit, and text
//! that arrives piece by piece yet always equals decoding the whole sequence.

use std::path::Path;

use gpt2_edu::bpe::Bpe;
use gpt2_edu::checkpoint::load_dir;
use gpt2_edu::generate::{GenerateConfig, Generator, StopReason, TextGenerator};
use gpt2_edu::sample::SamplingParams;
use gpt2_edu::{Engine, Error, Model, Tokenizer, XorShift64, dummy};

/// The tiny checkpoint, on the fast engine (what generation runs on).
fn tiny_gpt2() -> (Bpe, Engine) {
    let (tokenizer, model) =
        load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2")).unwrap();
    (tokenizer, Engine::new(model).unwrap())
}

fn hot(seed: u64, max_tokens: usize) -> GenerateConfig {
    GenerateConfig {
        max_tokens,
        sampling: SamplingParams {
            temperature: 1.5,
            top_k: None,
            top_p: None,
            ..SamplingParams::GREEDY
        },
        seed,
        ..GenerateConfig::default()
    }
}

/// All the text pieces of a generation, concatenated, and how it stopped.
fn run_text(
    model: &Engine,
    tokenizer: &dyn Tokenizer,
    prompt: &str,
    config: &GenerateConfig,
) -> (String, Option<StopReason>, Vec<u32>) {
    let mut text = TextGenerator::new(model, tokenizer, prompt, config).unwrap();
    let mut out = String::new();
    for piece in text.by_ref() {
        out.push_str(&piece.unwrap());
    }
    (out, text.stop_reason().cloned(), text.tokens().tokens().to_vec())
}

#[test]
fn end_of_text_stops_generation_unless_turned_off() {
    let (tokenizer, model) = tiny_gpt2();
    let eot = tokenizer.end_of_text().unwrap();
    let prompt = tokenizer.encode("Once upon a time");
    // Find a seed whose sample hits <|endoftext|> (found by the scan, not assumed).
    let unstopped = |seed| {
        let config = GenerateConfig { stop_at_end_of_text: false, ..hot(seed, 40) };
        Generator::new(&model, &prompt, &config, Some(eot))
            .unwrap()
            .collect::<Result<Vec<u32>, _>>()
            .unwrap()
    };
    let (seed, ids) = (1..500)
        .map(|seed| (seed, unstopped(seed)))
        .find(|(_, ids)| ids.contains(&eot))
        .expect("some seed samples <|endoftext|>");
    let at = ids.iter().position(|&id| id == eot).unwrap();
    assert_eq!(ids.len(), 40, "with the stop turned off, <|endoftext|> is just a token");

    let mut generator = Generator::new(&model, &prompt, &hot(seed, 40), Some(eot)).unwrap();
    let stopped: Vec<u32> = generator.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        stopped,
        ids[..at].to_vec(),
        "seed {seed}: same tokens up to <|endoftext|>, which is not yielded"
    );
    assert_eq!(generator.stop_reason(), Some(&StopReason::EndOfText));
    assert!(generator.next().is_none(), "stays stopped");
}

#[test]
fn stop_strings_cut_the_text_exactly_where_the_first_one_begins() {
    let (tokenizer, model) = tiny_gpt2();
    let mut rng = XorShift64::new(99).unwrap();
    for seed in 1..=40 {
        let (full, reason, _) = run_text(&model, &tokenizer, "The quick brown fox", &hot(seed, 30));
        assert_eq!(reason, Some(StopReason::MaxTokens));
        // Stop strings taken from the text itself (so they do occur), plus one that never does.
        let chars: Vec<(usize, char)> = full.char_indices().collect();
        if chars.len() < 4 {
            continue;
        }
        let start = chars[(rng.next_u64() % (chars.len() as u64 - 2)) as usize].0;
        let len = 1 + (rng.next_u64() % 6) as usize;
        let stop: String = full[start..].chars().take(len).collect();
        let stops = vec!["NEVER-IN-TEXT".to_string(), stop.clone()];
        let config = GenerateConfig { stop_strings: stops, ..hot(seed, 30) };
        let (cut, reason, _) = run_text(&model, &tokenizer, "The quick brown fox", &config);
        let first = full.find(&stop).unwrap();
        assert_eq!(cut, full[..first], "seed {seed}, stop {stop:?}");
        assert_eq!(reason, Some(StopReason::StopString(stop)));
    }
}

#[test]
fn a_stop_string_spanning_tokens_is_never_partly_printed() {
    let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
    let model = Engine::new(Model::new(hparams, weights).unwrap()).unwrap();
    let config = GenerateConfig {
        max_tokens: 5,
        stop_strings: vec!["world wor".into()],
        ..GenerateConfig::default()
    };
    let mut text = TextGenerator::new(&model, &encoder, "hello", &config).unwrap();
    let pieces: Vec<String> = text.by_ref().collect::<Result<_, _>>().unwrap();
    // " world" could be the start of "world wor", so "world" waits; the second " world"
    // completes the stop string, and the held "world" is dropped with it.
    assert_eq!(pieces, vec![" ".to_string()]);
    assert_eq!(text.stop_reason(), Some(&StopReason::StopString("world wor".into())));
}

#[test]
fn streamed_text_equals_decoding_the_whole_sequence_even_for_broken_utf8() {
    let (tokenizer, model) = tiny_gpt2();
    for seed in 1..=20 {
        // Hot sampling over byte-level tokens produces partial and invalid UTF-8.
        let config = GenerateConfig {
            sampling: SamplingParams {
                temperature: 3.0,
                top_k: None,
                top_p: None,
                ..SamplingParams::GREEDY
            },
            ..hot(seed, 40)
        };
        let (streamed, _, ids) = run_text(&model, &tokenizer, "é", &config);
        let whole = String::from_utf8_lossy(&tokenizer.decode_bytes(&ids).unwrap()).into_owned();
        assert_eq!(format!("é{streamed}"), whole, "seed {seed}");
    }
}

#[test]
fn a_request_that_cannot_fit_is_refused_before_any_work() {
    let (tokenizer, model) = tiny_gpt2(); // n_ctx 64
    let prompt = tokenizer.encode("Hello world"); // a few tokens
    let fits = GenerateConfig { max_tokens: 64 - prompt.len(), ..GenerateConfig::default() };
    let generated: Vec<u32> =
        Generator::new(&model, &prompt, &fits, None).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(prompt.len() + generated.len(), 64, "exactly n_ctx is fine");
    let too_many = GenerateConfig { max_tokens: 65 - prompt.len(), ..GenerateConfig::default() };
    assert_eq!(
        Generator::new(&model, &prompt, &too_many, None).unwrap_err(),
        Error::ContextOverflow {
            prompt_tokens: prompt.len(),
            new_tokens: 65 - prompt.len(),
            n_ctx: 64
        }
    );
    let bad = GenerateConfig {
        sampling: SamplingParams {
            temperature: -1.0,
            top_k: None,
            top_p: None,
            ..SamplingParams::GREEDY
        },
        ..GenerateConfig::default()
    };
    assert!(matches!(Generator::new(&model, &prompt, &bad, None), Err(Error::InvalidSampling(_))));
    assert_eq!(
        Generator::new(&model, &[], &GenerateConfig::default(), None).unwrap_err(),
        Error::EmptyPrompt
    );
}

/// Presence and frequency count generated tokens only: the prompt and fed text are
/// context. The repetition penalty and n-grams see both. Checked against the model's own
/// logits, penalised by hand.
#[test]
fn penalties_count_generated_tokens_not_fed_ones() {
    use gpt2_edu::penalties::Penalties;
    let (_, hparams, weights) = dummy::load_encoder_hparams_and_params();
    let model = Model::new(hparams, weights).unwrap();
    let presence = Penalties { presence_penalty: 100.0, ..Penalties::NONE };
    let config = GenerateConfig { max_tokens: 1, penalties: presence, ..GenerateConfig::default() };
    let mut generator = Generator::new(&model, &[1], &config, None).unwrap(); // "world"
    // The prompt's "world" is not generated: greedy still takes world (1), the argmax.
    assert_eq!(generator.next_token().unwrap(), Some(1));
    generator.feed(&[3]).unwrap(); // "<UNK>", fed: context, not generated
    generator.resume(1).unwrap();
    let logits = model.forward(&[1, 1, 3]).unwrap();
    let mut by_hand = logits[logits.len() - 4..].to_vec();
    by_hand[1] -= 100.0; // only the generated world
    let next = generator.next_token().unwrap().unwrap();
    assert_eq!(next, gpt2_edu::generate::argmax(&by_hand));
    assert_ne!(next, 1);
    // choose() counts as generated: after choosing world, it is penalised, and the loop
    // "world world" (world is the argmax after it) is broken.
    let mut generator = Generator::new(&model, &[1], &config, None).unwrap();
    generator.choose(1).unwrap();
    generator.resume(1).unwrap();
    let logits = model.forward(&[1, 1]).unwrap();
    let mut by_hand = logits[logits.len() - 4..].to_vec();
    assert_eq!(gpt2_edu::generate::argmax(&by_hand), 1);
    by_hand[1] -= 100.0;
    let next = generator.next_token().unwrap();
    assert_eq!(next, Some(gpt2_edu::generate::argmax(&by_hand)));
    assert_ne!(next, Some(1));
    // Bad penalties are refused before any work.
    let bad = GenerateConfig {
        penalties: Penalties { repetition_penalty: 0.0, ..Penalties::NONE },
        ..GenerateConfig::default()
    };
    let error = Generator::new(&model, &[1], &bad, None).unwrap_err();
    assert!(matches!(error, Error::InvalidSampling(_)), "{error}");
}
