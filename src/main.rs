//! `gpt2-edu`: the command line. Parses the arguments ([`gpt2_edu::cli`]), runs the dummy
//! model and prints the result. Usage errors exit with code 2, runtime errors with 1.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use gpt2_edu::cli::{self, Command, Options, PromptSource};
use gpt2_edu::{Generator, Model, Tokenizer, Trace, dummy, generate};

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
    let (encoder, hparams, weights) =
        dummy::load_encoder_hparams_and_params_with_seed(options.weights_seed)?;
    let model = Model::new(hparams, weights)?;
    let prompt_ids = encoder.encode(&prompt);
    let mut generator = Generator::new(&model, &prompt_ids, options.decoding)?;
    generate::check_fits(&model, prompt_ids.len(), options.n_tokens)?;

    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut trace = if options.trace {
        Trace::new()
    } else {
        Trace::disabled()
    };
    for step in 1..=options.n_tokens {
        let next = generator.step(&mut trace)?;
        if options.trace {
            let seen = encoder.decode(&generator.tokens()[..generator.tokens().len() - 1])?;
            writeln!(
                out,
                "=== step {step}: input \"{seen}\" -> next token {next} ({})",
                encoder.decode(&[next])?
            )?;
            write!(out, "{trace}")?;
            trace.clear();
        }
    }
    if options.print_ids {
        let ids: Vec<String> = generator.tokens().iter().map(u32::to_string).collect();
        writeln!(out, "{}", ids.join(" "))?;
    } else {
        writeln!(out, "{}", encoder.decode(generator.tokens())?)?;
    }
    out.flush()?;
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
