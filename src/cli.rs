//! The command line, parsed by hand (no dependencies): a pure function from arguments to
//! a [`Command`] or a [`UsageError`], so it can be tested without running anything. The
//! binary (`src/main.rs`) prints and exits; this module never does.
//!
//! Every option may be given once. Values go in the next argument or after `=`
//! (`-n 5`, `--tokens=5`). `--` ends the options.

use std::fmt;
use std::path::PathBuf;

use crate::dummy::DEFAULT_WEIGHTS_SEED;
use crate::generate::Decoding;

/// `gpt2-edu --help`.
pub const USAGE: &str = "\
gpt2-edu: GPT-2 text generation from scratch, every step visible.

Usage: gpt2-edu [OPTIONS] <PROMPT>
       gpt2-edu [OPTIONS] --prompt-file <PATH>

Without --model, runs the exercise's dummy GPT-2 (vocabulary: hello, world, the, <UNK>):
    gpt2-edu \"hello\" -n 5      ->  hello world world world <UNK> <UNK>
With --model DIR, runs a GPT-2 checkpoint folder (config.json, model.safetensors,
vocab.json, merges.txt). The prompt is printed, then the text streams as it is generated.

Options:
      --model <DIR>         a GPT-2 checkpoint folder (HuggingFace layout)
  -n, --tokens <N>          tokens to generate [default: 20]
      --no-cache            recompute every position at every step (same output, slower)
      --ids                 print the prompt's and the generated token ids instead of text
      --trace               print every intermediate tensor of every step
      --weights-seed <S>    xorshift seed of the dummy weights [default: 348]; not with --model
      --prompt-file <PATH>  read the prompt from a file ('-' for standard input)
  -h, --help                print this help
  -V, --version             print the version

Exit codes: 0 success, 1 runtime error (e.g. context overflow), 2 usage error.";

/// Default number of tokens to generate.
pub const DEFAULT_TOKENS: usize = 20;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Generate text.
    Run(Options),
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
}

/// Where the prompt comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSource {
    /// Given on the command line.
    Text(String),
    /// Read from a file.
    File(PathBuf),
    /// Read from standard input (`--prompt-file -`).
    Stdin,
}

/// The options of a generation run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The prompt.
    pub prompt: PromptSource,
    /// A GPT-2 checkpoint folder; `None` runs the dummy model.
    pub model_dir: Option<PathBuf>,
    /// How many tokens to generate.
    pub n_tokens: usize,
    /// Cached or full recomputation.
    pub decoding: Decoding,
    /// Print token ids instead of text.
    pub print_ids: bool,
    /// Print every step's intermediate tensors.
    pub trace: bool,
    /// Seed of the dummy model's weights (never 0).
    pub weights_seed: u64,
}

/// A command line that cannot be understood; the message says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses the arguments after the program name.
///
/// ```
/// use gpt2_edu::cli::{parse_args, Command};
/// let Command::Run(options) = parse_args(["hello", "-n", "5"]).unwrap() else { panic!() };
/// assert_eq!(options.n_tokens, 5);
/// assert!(parse_args(["hello", "--bogus"]).is_err());
/// ```
pub fn parse_args<I, S>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let mut seen: Vec<&'static str> = Vec::new();
    let mut positional: Vec<String> = Vec::new();
    let mut n_tokens = None;
    let mut weights_seed = None;
    let mut prompt_file = None;
    let mut model_dir = None;
    let (mut no_cache, mut print_ids, mut trace) = (false, false, false);

    while let Some(arg) = args.next() {
        if arg == "--" {
            positional.extend(args.by_ref());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            positional.push(arg);
            continue;
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let name = canonical_name(&flag)
            .ok_or_else(|| UsageError(format!("unknown option '{flag}' (see --help)")))?;
        if seen.contains(&name) {
            return Err(UsageError(format!("option '{name}' given more than once")));
        }
        seen.push(name);
        let takes_value = matches!(
            name,
            "--tokens" | "--weights-seed" | "--prompt-file" | "--model"
        );
        if !takes_value && inline_value.is_some() {
            return Err(UsageError(format!("option '{name}' takes no value")));
        }
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| UsageError(format!("option '{name}' needs a value")))
        };
        match name {
            "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            "--tokens" => n_tokens = Some(parse_number(name, &value()?)?),
            "--weights-seed" => {
                let seed = parse_number(name, &value()?)?;
                if seed == 0 {
                    return Err(UsageError(
                        "option '--weights-seed' must not be 0 (xorshift's fixed point)".into(),
                    ));
                }
                weights_seed = Some(seed);
            }
            "--prompt-file" => prompt_file = Some(value()?),
            "--model" => model_dir = Some(PathBuf::from(value()?)),
            "--no-cache" => no_cache = true,
            "--ids" => print_ids = true,
            "--trace" => trace = true,
            _ => unreachable!("every canonical name is handled"),
        }
    }

    if model_dir.is_some() && weights_seed.is_some() {
        return Err(UsageError(
            "--weights-seed sets the dummy model's weights; it cannot be used with --model".into(),
        ));
    }
    let prompt = match (prompt_file, positional.len()) {
        (Some(_), n) if n > 0 => {
            return Err(UsageError(
                "give the prompt either as an argument or with --prompt-file, not both".into(),
            ));
        }
        (Some(path), _) if path == "-" => PromptSource::Stdin,
        (Some(path), _) => PromptSource::File(PathBuf::from(path)),
        (None, 0) => {
            return Err(UsageError(
                "missing prompt: try gpt2-edu \"hello\" -n 5 (see --help)".into(),
            ));
        }
        (None, 1) => PromptSource::Text(positional.remove(0)),
        (None, n) => {
            return Err(UsageError(format!(
                "expected one prompt but found {n} arguments ({}); quote a prompt of several words",
                positional.join(", ")
            )));
        }
    };
    Ok(Command::Run(Options {
        prompt,
        model_dir,
        n_tokens: n_tokens.unwrap_or(DEFAULT_TOKENS as u64) as usize,
        decoding: if no_cache {
            Decoding::FullRecompute
        } else {
            Decoding::Cached
        },
        print_ids,
        trace,
        weights_seed: weights_seed.unwrap_or(DEFAULT_WEIGHTS_SEED),
    }))
}

/// The long name of an option given by its long or short name.
fn canonical_name(flag: &str) -> Option<&'static str> {
    Some(match flag {
        "-n" | "--tokens" => "--tokens",
        "--no-cache" => "--no-cache",
        "--ids" => "--ids",
        "--trace" => "--trace",
        "--weights-seed" => "--weights-seed",
        "--prompt-file" => "--prompt-file",
        "--model" => "--model",
        "-h" | "--help" => "--help",
        "-V" | "--version" => "--version",
        _ => return None,
    })
}

/// A non-negative whole number that fits in `usize` and `u64`.
fn parse_number(name: &str, value: &str) -> Result<u64, UsageError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&n| usize::try_from(n).is_ok())
        .ok_or_else(|| {
            UsageError(format!(
                "option '{name}' expects a non-negative whole number, found '{value}'"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse_args(args.iter().copied()) {
            Ok(Command::Run(options)) => options,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        parse_args(args.iter().copied()).unwrap_err().0
    }

    #[test]
    fn defaults_and_every_option() {
        let options = run(&["hello"]);
        assert_eq!(options.prompt, PromptSource::Text("hello".into()));
        assert_eq!(options.n_tokens, DEFAULT_TOKENS);
        assert_eq!(options.decoding, Decoding::Cached);
        assert_eq!(options.weights_seed, DEFAULT_WEIGHTS_SEED);

        let options = run(&[
            "--tokens=7",
            "--no-cache",
            "--ids",
            "--trace",
            "--weights-seed",
            "9",
            "--",
            "-x",
        ]);
        assert_eq!(options.n_tokens, 7);
        assert_eq!(options.decoding, Decoding::FullRecompute);
        assert!(options.print_ids && options.trace);
        assert_eq!(options.weights_seed, 9);
        assert_eq!(options.prompt, PromptSource::Text("-x".into()));
        assert_eq!(run(&["--prompt-file", "-"]).prompt, PromptSource::Stdin);
        assert_eq!(
            run(&["x", "--model=dir"]).model_dir,
            Some(PathBuf::from("dir"))
        );
        assert_eq!(run(&["x"]).model_dir, None);
        assert_eq!(parse_args(["-V"]), Ok(Command::Version));
        assert_eq!(parse_args(["x", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        assert!(usage_error(&["hi", "--bogus"]).contains("unknown option '--bogus'"));
        assert!(usage_error(&["hi", "-n"]).contains("needs a value"));
        assert!(usage_error(&["hi", "-n", "-3"]).contains("found '-3'"));
        assert!(usage_error(&["hi", "-n", "x"]).contains("found 'x'"));
        assert!(usage_error(&["hi", "-n", "1", "--tokens", "2"]).contains("more than once"));
        assert!(usage_error(&["hi", "--weights-seed", "0"]).contains("must not be 0"));
        assert!(usage_error(&["hi", "--ids=yes"]).contains("takes no value"));
        assert!(usage_error(&[]).contains("missing prompt"));
        assert!(usage_error(&["a", "b"]).contains("found 2 arguments"));
        assert!(usage_error(&["a", "--prompt-file", "p"]).contains("not both"));
        assert!(
            usage_error(&["a", "--model", "d", "--weights-seed", "2"])
                .contains("cannot be used with --model")
        );
        assert!(usage_error(&["a", "--model"]).contains("needs a value"));
    }
}
