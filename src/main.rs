//! `gpt2-edu`: the command line. Parses the arguments ([`gpt2_edu::cli`]), runs the dummy
//! model or a GPT-2 checkpoint, and streams the result. Usage errors exit with code 2, runtime errors with 1.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use gpt2_edu::cli::{self, Command, Options, PromptSource};
use gpt2_edu::generate::{GenerateConfig, StopReason, TextGenerator};
use gpt2_edu::viz::{self, ExplainOptions, HeadId, Heads, Recorder};
use gpt2_edu::{Model, Tokenizer, Trace, checkpoint, dummy};

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let Ok(args) = args else {
        eprintln!("error: arguments must be valid UTF-8");
        return ExitCode::from(2);
    };
    let command = match cli::parse_args(args) {
        Ok(command) => command,
        Err(usage) => {
            eprintln!("error: {usage}\n\nUsage: gpt2-edu [OPTIONS] <PROMPT>   (see --help)");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => writeln!(io::stdout(), "{}", cli::USAGE).map_err(Failure::from),
        Command::Version => {
            writeln!(io::stdout(), "gpt2-edu {}", env!("CARGO_PKG_VERSION")).map_err(Failure::from)
        }
        Command::Run(options) => run(&options),
    };
    match result {
        Ok(()) | Err(Failure::ClosedPipe) => ExitCode::SUCCESS,
        Err(Failure::Message(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Why a run stopped early.
enum Failure {
    /// Whoever reads our output went away (`gpt2-edu ... | head`): stop quietly.
    ClosedPipe,
    /// Anything else: reported on stderr, exit code 1.
    Message(String),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            Failure::ClosedPipe
        } else {
            Failure::Message(format!("cannot write the output: {error}"))
        }
    }
}

impl From<gpt2_edu::Error> for Failure {
    fn from(error: gpt2_edu::Error) -> Self {
        Failure::Message(error.to_string())
    }
}

fn run(options: &Options) -> Result<(), Failure> {
    let prompt = read_prompt(&options.prompt)?;
    match &options.model_dir {
        Some(dir) => {
            let (tokenizer, model) = checkpoint::load_dir(dir)?;
            generate_and_print(&tokenizer, &model, &prompt, options)
        }
        None => {
            let (encoder, hparams, weights) =
                dummy::load_encoder_hparams_and_params_with_seed(options.weights_seed)?;
            generate_and_print(&encoder, &Model::new(hparams, weights)?, &prompt, options)
        }
    }
}

/// Generates and prints, as the options ask: streamed text (the default), token ids, every
/// step's tensors (--trace) or pictures (--explain, --attention) followed by the text; and
/// the HTML report (--html FILE).
fn generate_and_print(
    tokenizer: &dyn Tokenizer,
    model: &Model,
    prompt: &str,
    options: &Options,
) -> Result<(), Failure> {
    let config = GenerateConfig {
        max_tokens: options.n_tokens,
        decoding: options.decoding,
        sampling: options.sampling,
        seed: options.seed,
        stop_at_end_of_text: options.stop_at_end_of_text,
        stop_strings: options.stop_strings.clone(),
        threads: options.threads,
    };
    // Per-step pictures replace the streamed text, as --trace does; the text comes at the end.
    let draws_steps = options.explain || options.attention.is_some();
    let shown_head = options.attention.unwrap_or(HeadId { layer: 0, head: 0 });
    let mut recorder = if draws_steps || options.html.is_some() {
        shown_head.check(&model.hparams)?; // "layer 12 does not exist: ..." before any work
        let heads = match options.html {
            Some(_) => Heads::All,
            None => Heads::Only(vec![shown_head]),
        };
        let explain = ExplainOptions {
            heads,
            ..ExplainOptions::default()
        };
        Some(Recorder::new(model, tokenizer, &config, &explain)?)
    } else {
        None
    };
    let mut text = TextGenerator::new(model, tokenizer, prompt, &config)?;
    if let Some(path) = &options.html {
        // Fail before any work if the report cannot be written, not after the output.
        std::fs::File::create(path).map_err(|e| {
            Failure::Message(format!(
                "cannot write the HTML report to {}: {e}",
                path.display()
            ))
        })?;
    }
    let mut out = io::stdout().lock();
    let mut trace = if options.trace || recorder.is_some() {
        Trace::new()
    } else {
        Trace::disabled()
    };
    let text_at_the_end = options.trace || draws_steps;
    if options.print_ids {
        let ids: Vec<String> = text.tokens().tokens().iter().map(u32::to_string).collect();
        write!(out, "{}", ids.join(" "))?;
    } else if !text_at_the_end {
        write!(out, "{}", text.prompt_text())?;
    }
    out.flush()?;

    let mut step = 0;
    loop {
        let before = text.tokens().tokens().len();
        // May run a step and still return None: the step that chose <|endoftext|>.
        let piece = text.next_text(&mut trace)?;
        if let Some(recorder) = recorder.as_mut() {
            if let Some(view) = recorder.record_step(&trace, text.tokens())? {
                if options.explain {
                    writeln!(out, "{}", viz::step_pictures(view, shown_head, 10))?;
                } else if let Some(map) = view.attention_map(shown_head).filter(|_| draws_steps) {
                    writeln!(out, "{}", viz::attention_heatmap(map, &view.seen))?;
                }
            }
        }
        let tokens = text.tokens().tokens();
        let new_ids = &tokens[before..];
        if options.trace && !trace.tensors().is_empty() {
            step += 1;
            let seen = tokenizer.decode(&tokens[..before])?;
            let chosen = match new_ids.first() {
                Some(&id) => format!("next token {id} ({:?})", tokenizer.decode(&[id])?),
                None => "stop".to_string(),
            };
            writeln!(out, "=== step {step}: input {seen:?} -> {chosen}")?;
            write!(out, "{trace}")?;
        }
        trace.clear();
        let Some(piece) = piece else {
            break;
        };
        if text_at_the_end {
            // Printed once generation ends.
        } else if options.print_ids {
            for id in new_ids {
                write!(out, " {id}")?;
            }
        } else {
            write!(out, "{piece}")?; // whole characters only
        }
        out.flush()?; // one token at a time, as it is generated
    }
    if text_at_the_end {
        writeln!(out, "{}", tokenizer.decode(text.tokens().tokens())?)?;
    } else {
        writeln!(out)?;
    }
    out.flush()?;
    if let (Some(recorder), Some(path)) = (recorder, &options.html) {
        viz::write_html_report(&recorder.finish(text.tokens())?, path)?;
        eprintln!("(wrote the HTML report to {})", path.display());
    }
    match text.stop_reason() {
        Some(StopReason::MaxTokens) | None => {}
        Some(reason) => eprintln!("(stopped: {reason})"),
    }
    Ok(())
}

fn read_prompt(source: &PromptSource) -> Result<String, Failure> {
    match source {
        PromptSource::Text(text) => Ok(text.clone()),
        PromptSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            Failure::Message(format!("cannot read prompt file '{}': {e}", path.display()))
        }),
        PromptSource::Stdin => {
            let mut text = String::new();
            io::stdin().read_to_string(&mut text).map_err(|e| {
                Failure::Message(format!("cannot read the prompt from standard input: {e}"))
            })?;
            Ok(text)
        }
    }
}
