//! Running what the command line asks for: load the model, then either stream from the
//! fast engine (the default; a checkpoint is loaded straight into it, tensor by tensor) or
//! watch every step on the reference model (`--trace`, `--explain`, `--attention`,
//! `--html`). The two give the same tokens; the output modes share one [`Printer`].

use std::io::{self, Read, StdoutLock, Write};

use gpt2_edu::generate::{Forward, GenerateConfig, Prefill, Step, StopReason, TextGenerator};
use gpt2_edu::score::TokenScore;
use gpt2_edu::viz::{self, ExplainOptions, HeadId, Heads, Recorder, TokenSurprise};
use gpt2_edu::{Engine, Model, Tokenizer, Trace, checkpoint, dummy, load_dir_engine};

use crate::cli::{Options, PromptSource};
use crate::perplexity;
use crate::report::ReportFile;
use crate::{Failure, say};

/// Reads the prompt, loads the model, and generates as `options` ask.
pub fn run(options: &Options) -> Result<(), Failure> {
    let limit = if options.perplexity { MAX_SCORED_BYTES } else { MAX_PROMPT_BYTES };
    let prompt = read_prompt(&options.prompt, limit)?;
    if options.perplexity {
        let (tokenizer, engine) = load_engine(options)?;
        perplexity::run(tokenizer.as_ref(), &engine, &prompt, options)
    } else if options.observes() {
        // The reference model of the weights `dtype` stores: the engine's very numbers.
        let (tokenizer, model) = load_model(options)?;
        observe(tokenizer.as_ref(), &model.stored_as(options.dtype)?, &prompt, options)
    } else {
        let (tokenizer, engine) = load_engine(options)?;
        stream(tokenizer.as_ref(), &engine, &prompt, options)
    }
}

/// The reference model (the checkpoint of `--model`, else the dummy) with the heads of
/// `--ablate` switched off: what watching every step needs.
fn load_model(options: &Options) -> Result<(Box<dyn Tokenizer>, Model), Failure> {
    let (tokenizer, model): (Box<dyn Tokenizer>, Model) = match &options.model_dir {
        Some(dir) => {
            let (tokenizer, model) = checkpoint::load_dir(dir)?;
            (Box::new(tokenizer), model)
        }
        None => {
            let (encoder, model) = dummy_model(options)?;
            (Box::new(encoder), model)
        }
    };
    Ok((tokenizer, model.with_heads_off(&options.ablate).map_err(ablate_failure)?))
}

/// The engine in `--dtype`, with the heads of `--ablate` switched off. A checkpoint goes
/// straight into it, tensor by tensor, so loading never holds its f32 weights whole.
fn load_engine(options: &Options) -> Result<(Box<dyn Tokenizer>, Engine), Failure> {
    let (tokenizer, engine): (Box<dyn Tokenizer>, Engine) = match &options.model_dir {
        Some(dir) => {
            let (tokenizer, engine) = load_dir_engine(dir, options.dtype)?;
            (Box::new(tokenizer), engine)
        }
        None => {
            let (encoder, model) = dummy_model(options)?;
            (Box::new(encoder), Engine::with_dtype(model, options.dtype)?)
        }
    };
    Ok((tokenizer, engine.with_heads_off(&options.ablate).map_err(ablate_failure)?))
}

/// The exercise's dummy model, with the weights of `--weights-seed`.
fn dummy_model(options: &Options) -> Result<(dummy::WordEncoder, Model), Failure> {
    let seed = options.weights_seed;
    let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params_with_seed(seed)?;
    Ok((encoder, Model::new(hparams, weights)?))
}

/// `--ablate` naming a head the model does not have: a usage error.
fn ablate_failure(error: gpt2_edu::Error) -> Failure {
    Failure::Usage(format!("option '--ablate': {error}")) // "layer 5 does not exist: ..."
}

/// The longest prompt read from a file or standard input, in bytes: 1 MiB. GPT-2's context
/// holds 1024 tokens, a few KiB of text, so a longer prompt cannot fit anyway; without a
/// bound, `--prompt-file /dev/zero` (or an endless pipe) would read until memory runs out.
pub const MAX_PROMPT_BYTES: usize = 1 << 20;

/// The longest text `--perplexity` reads, in bytes: 64 MiB (WikiText-103's test set, a
/// usual benchmark, is 1.3 MB).
pub const MAX_SCORED_BYTES: usize = 64 << 20;

fn read_prompt(source: &PromptSource, limit: usize) -> Result<String, Failure> {
    match source {
        PromptSource::Text(text) => Ok(text.clone()), // the OS bounds the arguments
        PromptSource::File(path) => {
            let what = format!("the prompt file '{}'", path.display());
            let file = std::fs::File::open(path).map_err(|e| {
                Failure::Message(format!("cannot read prompt file '{}': {e}", path.display()))
            })?;
            read_bounded(file, &what, limit)
        }
        PromptSource::Stdin => {
            let what = if limit == MAX_PROMPT_BYTES { "the prompt" } else { "the text" };
            read_bounded(io::stdin().lock(), &format!("{what} on standard input"), limit)
        }
    }
}

/// Reads all of `reader` as UTF-8 text, but never more than `limit` bytes
/// ([`MAX_PROMPT_BYTES`] for a prompt): one byte more is an error that names `what`.
fn read_bounded(reader: impl Read, what: &str, limit: usize) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Message(format!("cannot read {what}: {e}")))?;
    if bytes.len() > limit && limit == MAX_PROMPT_BYTES {
        return Err(Failure::Message(format!(
            "{what} is longer than {MAX_PROMPT_BYTES} bytes (1 MiB), the most gpt2-edu reads: \
             GPT-2's context holds {} tokens, a few KiB of text; give a shorter prompt",
            gpt2_edu::HParams::gpt2_124m().n_ctx
        )));
    }
    if bytes.len() > limit {
        return Err(Failure::Message(format!(
            "{what} is longer than {limit} bytes, the most --perplexity reads; score a part of it"
        )));
    }
    String::from_utf8(bytes)
        .map_err(|e| Failure::Message(format!("cannot read {what}: it is not UTF-8 text ({e})")))
}

/// The default: the text (or the token ids) streamed as it is generated, one token at a
/// time, on the fast engine (or any [`Forward`]).
fn stream<M: Forward>(
    tokenizer: &dyn Tokenizer,
    model: &M,
    prompt: &str,
    options: &Options,
) -> Result<(), Failure> {
    if options.samples > 1 {
        return samples(tokenizer, model, prompt, options);
    }
    let text = TextGenerator::new(model, tokenizer, prompt, &options.generate_config())?;
    stream_text(tokenizer, text, options)
}

/// `--samples K`: the prompt run once, then `K` continuations from copies of its cache,
/// with the seeds `seed`, `seed + 1`, ..., each under a line that says which it is.
fn samples<M: Forward>(
    tokenizer: &dyn Tokenizer,
    model: &M,
    prompt: &str,
    options: &Options,
) -> Result<(), Failure> {
    let mut state = model.new_state(options.threads)?;
    let prefill = Prefill::new(model, &tokenizer.encode(prompt), &mut state)?;
    for i in 0..options.samples {
        let seed = options.seed + i as u64; // cannot overflow: checked with the options
        let config = GenerateConfig { seed, ..options.generate_config() };
        writeln!(io::stdout(), "[sample {} of {}, seed {seed}]", i + 1, options.samples)?;
        let tokens = prefill.generator_with_state(&mut state, &config, tokenizer.end_of_text())?;
        stream_text(
            tokenizer,
            TextGenerator::from_generator(tokens, tokenizer, &config)?,
            options,
        )?;
    }
    Ok(())
}

/// Streams `text`'s pieces (or ids), then the `--logprobs` table, then why it stopped.
fn stream_text<M: Forward>(
    tokenizer: &dyn Tokenizer,
    mut text: TextGenerator<'_, M>,
    options: &Options,
) -> Result<(), Failure> {
    let mut printer = Printer::start(options, &text)?;
    let mut logprobs = StepLog::new(options.logprobs);
    loop {
        let before = text.tokens().tokens().len();
        let Some(piece) = text.next_text()? else {
            break;
        };
        logprobs.record(text.last_step(), before);
        printer.piece(&piece, &text.tokens().tokens()[before..])?;
    }
    printer.finish(tokenizer, text.tokens().tokens())?;
    logprobs.print(tokenizer, &mut printer.out)?;
    report_stop(text.stop_reason());
    Ok(())
}

/// `--logprobs K`: each generated token's log-probability and the `K` most likely
/// alternatives, taken from each step as it happens and listed after the text.
struct StepLog {
    top_n: Option<usize>,
    rows: Vec<TokenScore>,
}

impl StepLog {
    fn new(top_n: Option<usize>) -> Self {
        Self { top_n, rows: Vec::new() }
    }

    /// Takes in the step that generated the token at `position`, if one did.
    fn record(&mut self, step: Option<Step<'_>>, position: usize) {
        if let (Some(top_n), Some(step)) = (self.top_n, step) {
            let (token, logprob, top) = (step.token(), step.logprob(), step.top(top_n));
            self.rows.push(TokenScore { position, token, logprob, top });
        }
    }

    /// The table, after a blank line (nothing without `--logprobs`).
    fn print(&self, tokenizer: &dyn Tokenizer, out: &mut impl Write) -> Result<(), Failure> {
        let Some(top_n) = self.top_n else {
            return Ok(());
        };
        writeln!(out, "\n{}", perplexity::table_header("step", top_n))?;
        for (step, row) in self.rows.iter().enumerate() {
            writeln!(out, "{}", perplexity::table_row(tokenizer, step + 1, row)?)?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Every step watched, on the reference model: its tensors (`--trace`), its pictures
/// (`--explain`, `--attention`) and the HTML report (`--html`); then the text.
fn observe(
    tokenizer: &dyn Tokenizer,
    model: &Model,
    prompt: &str,
    options: &Options,
) -> Result<(), Failure> {
    let config = options.generate_config();
    let mut watcher = Watcher::new(tokenizer, model, options)?; // bad heads, unwritable report
    let mut text = TextGenerator::new(model, tokenizer, prompt, &config)?;
    let mut printer = Printer::start(options, &text)?;
    let mut logprobs = StepLog::new(options.logprobs);
    let mut trace = Trace::new();
    loop {
        let before = text.tokens().tokens().len();
        // May run a step and still return None: the step that chose <|endoftext|>.
        let piece = text.next_text_traced(&mut trace)?;
        watcher.after_step(&trace, text.tokens(), before, &mut printer.out)?;
        trace.clear();
        let Some(piece) = piece else {
            break;
        };
        logprobs.record(text.last_step(), before);
        printer.piece(&piece, &text.tokens().tokens()[before..])?;
    }
    printer.finish(tokenizer, text.tokens().tokens())?;
    logprobs.print(tokenizer, &mut printer.out)?;
    watcher.finish(text.tokens(), &mut printer.out)?;
    report_stop(text.stop_reason());
    Ok(())
}

/// Says why generation stopped, on stderr, unless it simply reached the token count.
fn report_stop(reason: Option<&StopReason>) {
    match reason {
        Some(StopReason::MaxTokens) | None => {}
        Some(reason) => say(&format!("(stopped: {reason})")),
    }
}

/// Prints the generated text or ids: streamed piece by piece, or, when steps are printed
/// (`--trace`, `--explain`, `--attention`), once at the end, on its own line after them.
/// With `--ids --stop`, the ids also wait for the end: only then is it known which tokens
/// the kept text (before the stop string) holds.
struct Printer {
    out: StdoutLock<'static>,
    print_ids: bool,
    at_the_end: bool,
    /// The prompt's text and every piece so far: what is printed at the end.
    kept_text: String,
    /// How many of the tokens are the prompt's.
    n_prompt: usize,
}

impl Printer {
    /// Prints the prompt (its text, or its ids), unless everything comes at the end.
    fn start<M: Forward>(options: &Options, text: &TextGenerator<'_, M>) -> Result<Self, Failure> {
        let mut out = io::stdout().lock();
        let ids_wait = options.print_ids && !options.stop_strings.is_empty();
        let at_the_end = options.text_at_the_end() || ids_wait;
        let prompt_ids = text.tokens().tokens();
        if options.print_ids && !at_the_end {
            let ids: Vec<String> = prompt_ids.iter().map(u32::to_string).collect();
            write!(out, "{}", ids.join(" "))?;
        } else if !at_the_end {
            write!(out, "{}", text.prompt_text())?;
        }
        out.flush()?;
        Ok(Self {
            out,
            print_ids: options.print_ids,
            at_the_end,
            kept_text: text.prompt_text().to_string(),
            n_prompt: prompt_ids.len(),
        })
    }

    /// One step's output: its text `piece` (whole characters only) or its new ids.
    fn piece(&mut self, piece: &str, new_ids: &[u32]) -> Result<(), Failure> {
        if self.at_the_end {
            self.kept_text.push_str(piece);
            return Ok(());
        }
        if self.print_ids {
            for id in new_ids {
                write!(self.out, " {id}")?;
            }
        } else {
            write!(self.out, "{piece}")?;
        }
        self.out.flush()?; // one token at a time, as it is generated
        Ok(())
    }

    /// Ends the output: the kept text (or its ids) if it was held back, then a newline.
    fn finish(&mut self, tokenizer: &dyn Tokenizer, tokens: &[u32]) -> Result<(), Failure> {
        if self.at_the_end && self.print_ids {
            let kept = kept_tokens(tokenizer, tokens, self.n_prompt, &self.kept_text)?;
            let ids: Vec<String> = kept.iter().map(u32::to_string).collect();
            write!(self.out, "{}", ids.join(" "))?;
        } else if self.at_the_end {
            write!(self.out, "{}", self.kept_text)?;
        }
        writeln!(self.out)?;
        self.out.flush()?;
        Ok(())
    }
}

/// The longest run of `tokens` (at least the `n_prompt` of the prompt) whose text is the
/// beginning of `kept_text`: with a stop string, the tokens before the one in which the stop
/// string begins. Decodes from the end; the stop string lies in the last few tokens.
fn kept_tokens<'t>(
    tokenizer: &dyn Tokenizer,
    tokens: &'t [u32],
    n_prompt: usize,
    kept_text: &str,
) -> Result<&'t [u32], Failure> {
    for end in (n_prompt.min(tokens.len())..=tokens.len()).rev() {
        if kept_text.starts_with(tokenizer.decode(&tokens[..end])?.as_str()) {
            return Ok(&tokens[..end]);
        }
    }
    Ok(&tokens[..n_prompt.min(tokens.len())])
}

/// What `--trace`, `--explain`, `--attention` and `--html` show of each step. Each step is
/// shown (and written to the report) as it comes, then forgotten: the memory is one step's.
struct Watcher<'t> {
    tokenizer: &'t dyn Tokenizer,
    options: &'t Options,
    recorder: Option<Recorder<'t>>,
    report: Option<ReportFile>,
    shown_head: HeadId,
    step: usize,
    /// Every token's surprise so far (`--surprise`).
    surprise: Vec<TokenSurprise>,
}

impl<'t> Watcher<'t> {
    /// Checks the asked-for head and the report's path before any work.
    fn new(
        tokenizer: &'t dyn Tokenizer,
        model: &'t Model,
        options: &'t Options,
    ) -> Result<Self, Failure> {
        let shown_head = options.attention.unwrap_or(HeadId { layer: 0, head: 0 });
        let pictures =
            options.explain || options.attention.is_some() || options.lens || options.surprise;
        let (mut recorder, mut report) = (None, None);
        if pictures || options.html.is_some() {
            shown_head.check(&model.hparams)?; // "layer 12 does not exist: ..." before any work
            // --attention narrows the report to its head, as it does the pictures.
            let heads = match (&options.html, options.attention) {
                (Some(_), None) => Heads::All,
                _ => Heads::Only(vec![shown_head]),
            };
            let config = options.generate_config();
            let lens = options.lens || options.html.is_some();
            let explain = ExplainOptions { heads, lens, ..ExplainOptions::default() };
            if let Some(path) = &options.html {
                let heads = explain.heads.resolve(&model.hparams)?;
                report = Some(ReportFile::create(path, &model.hparams, &config, &heads)?);
            }
            recorder = Some(Recorder::new(model, tokenizer, &config, &explain)?);
        }
        Ok(Self { tokenizer, options, recorder, report, shown_head, step: 0, surprise: Vec::new() })
    }

    /// Shows the step whose tensors are in `trace`; `before` tokens were there before it.
    fn after_step(
        &mut self,
        trace: &Trace,
        generator: &gpt2_edu::Generator<'_, Model>,
        before: usize,
        out: &mut StdoutLock<'static>,
    ) -> Result<(), Failure> {
        if let Some(recorder) = self.recorder.as_mut() {
            if let Some(view) = recorder.record_step(trace, generator)? {
                if self.options.explain {
                    writeln!(out, "{}", viz::step_pictures(view, self.shown_head, 10))?;
                } else if let Some(map) = view.attention_map(self.shown_head)
                    && self.options.attention.is_some()
                {
                    writeln!(out, "{}", viz::attention_heatmap(map, &view.seen))?;
                }
                if let (true, Some(lens)) = (self.options.lens, &view.lens) {
                    writeln!(out, "{}", viz::lens_grid(lens, view.number, &view.seen))?;
                }
                self.surprise.extend(view.surprise.iter().cloned());
                if let Some(report) = self.report.as_mut() {
                    report.step(view)?;
                }
            }
            recorder.forget_steps(); // shown and written: not held
        }
        if self.options.trace && !trace.tensors().is_empty() {
            self.step += 1;
            let tokens = generator.tokens();
            let seen = self.tokenizer.decode(&tokens[..before])?;
            let chosen = match tokens.get(before) {
                Some(&id) => format!("next token {id} ({:?})", self.tokenizer.decode(&[id])?),
                None => "stop".to_string(),
            };
            writeln!(out, "=== step {}: input {seen:?} -> {chosen}", self.step)?;
            write!(out, "{trace}")?;
        }
        Ok(())
    }

    /// Prints the text shaded by surprise (`--surprise`), then ends the HTML report, if
    /// one was asked for, and puts it in place.
    fn finish(
        self,
        generator: &gpt2_edu::Generator<'_, Model>,
        out: &mut StdoutLock<'static>,
    ) -> Result<(), Failure> {
        let Some(recorder) = self.recorder else {
            return Ok(());
        };
        let run = recorder.finish(generator)?;
        if self.options.surprise {
            let n_vocab = run.hparams.n_vocab;
            writeln!(out, "\n{}", viz::surprise_text(&run.token_texts, &self.surprise, n_vocab))?;
        }
        if let (Some(report), Some(path)) = (self.report, &self.options.html) {
            report.finish(&run)?;
            say(&format!("(wrote the HTML report to {})", path.display()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<String, Failure>) -> String {
        match result {
            Err(Failure::Message(message)) => message,
            Ok(_) => panic!("expected an error, got the text"),
            Err(_) => panic!("expected a message"),
        }
    }

    #[test]
    fn prompts_are_read_up_to_one_mib() {
        let at_the_limit = "a".repeat(MAX_PROMPT_BYTES);
        let read = read_bounded(at_the_limit.as_bytes(), "the test prompt", MAX_PROMPT_BYTES);
        assert_eq!(read.ok().map(|text| text.len()), Some(MAX_PROMPT_BYTES));
        let over = at_the_limit + "a";
        let said = message(read_bounded(over.as_bytes(), "the test prompt", MAX_PROMPT_BYTES));
        assert!(said.starts_with("the test prompt is longer than 1048576 bytes (1 MiB)"), "{said}");
        let said = message(read_bounded(&[0xff, b'a'][..], "the test prompt", MAX_PROMPT_BYTES));
        assert!(said.contains("not UTF-8"), "{said}");
        assert_eq!(
            read_bounded(io::repeat(b'x'), "zeros", MAX_PROMPT_BYTES).ok(),
            None,
            "endless input ends"
        );
    }
}
