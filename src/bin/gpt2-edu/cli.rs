//! The command line, parsed by hand (no dependencies): a pure function from arguments to
//! a [`Command`] or a [`UsageError`], so it can be tested without running anything. The
//! rest of the binary (`main.rs`, `run.rs`) prints and exits; this module never does.
//!
//! Every option may be given once. Values go in the next argument or after `=`
//! (`-n 5`, `--tokens=5`). `--` ends the options.

use std::fmt;
use std::path::PathBuf;

use gpt2_edu::Dtype;
use gpt2_edu::dummy::DEFAULT_WEIGHTS_SEED;
use gpt2_edu::fast::{MAX_THREADS, default_threads};
use gpt2_edu::generate::{DEFAULT_SAMPLING_SEED, Decoding, GenerateConfig};
use gpt2_edu::penalties::Penalties;
use gpt2_edu::sample::SamplingParams;
use gpt2_edu::viz::HeadId;

/// `gpt2-edu --help`.
pub const USAGE: &str = "\
gpt2-edu: GPT-2 text generation from scratch, every step visible.

Usage: gpt2-edu [OPTIONS] <PROMPT>
       gpt2-edu [OPTIONS] --prompt-file <PATH>
       gpt2-edu [--model <DIR>] --perplexity <FILE> [--stride <S>] [--logprobs <K>]

Without --model, runs the exercise's dummy GPT-2 (vocabulary: hello, world, the, <UNK>):
    gpt2-edu \"hello\" -n 5      ->  hello world world world <UNK> <UNK>
With --model DIR, runs a GPT-2 checkpoint folder (config.json, model.safetensors,
vocab.json, merges.txt). The prompt is printed, then the text streams as it is generated.

Options:
      --model <DIR>         a GPT-2 checkpoint folder (HuggingFace layout)
  -n, --tokens <N>          tokens to generate [default: 20]
      --no-cache            recompute every position at every step (same output, slower)
      --ids                 print the prompt's and the generated token ids instead of text
                            (with --stop: the ids of the text kept, once it is known)
      --trace               print every intermediate tensor of every step
      --temperature <T>     sampling temperature, >= 0; 0 = greedy [default: 0]
      --top-k <K>           sample only from the K most likely tokens (K >= 1)
      --top-p <P>           sample only from the most likely tokens whose probability
                            reaches P, 0 < P <= 1 (nucleus sampling)
      --min-p <P>           sample only from tokens at least P times as likely as the most
                            likely one, 0 < P <= 1
      --typical-p <P>       sample only from the tokens whose surprise (-ln p) is nearest
                            the entropy, until their probability reaches P, 0 < P <= 1
      --repetition-penalty <R>
                            divide each positive logit of a token already in the prompt or
                            the output by R, multiply each negative one by R; R > 0, 1 = none
                            (R > 1 discourages repeats; it punishes the prompt's words too)
      --no-repeat-ngram <N> never generate a token that would repeat an N-token sequence
                            already in the prompt or the output, N >= 1 (1: no token twice)
      --presence-penalty <P>
                            subtract P from the logit of every token generated so far
                            (OpenAI's presence penalty; any finite number) [default: 0]
      --frequency-penalty <F>
                            subtract F from a token's logit per time it was generated
                            (OpenAI's frequency penalty; any finite number) [default: 0]
      --seed <S>            the sampler's seed: the same seed gives the same text [default: 42]
      --stop <STR>          stop when the text contains STR (repeatable; STR is not printed)
      --ignore-eot          keep generating after <|endoftext|> (GPT-2 stops there by default)
      --threads <N>         threads for the fast engine, 1 to 256 [default: all available]
      --dtype <D>           how the matrices are stored: f32, bf16 (2 bytes a weight) or q8
                            (8-bit blocks of 32 with a scale), for the engine and for the
                            reference model that --trace, --explain and --html run [default: f32]
      --explain             print each step's pictures: attention map, top candidates, cache
      --attention[=L.H]     print each step's attention map of layer L, head H [default: 0.0]
      --html <FILE>         write a self-contained HTML report of every layer's and head's
                            attention, the logit lens, the text shaded by surprise, the
                            probabilities and the cache
      --lens                print each step's logit lens: every layer's residual stream put
                            through ln_f and the tied embedding, its top token and probability
      --surprise            after the text, print it again shaded by each token's surprisal
                            (-log2 p, in bits: the model's own distribution at T = 1)
      --ablate <L.H>        switch off head H of layer L (repeatable): its output is zero
                            before attn.c_proj, for generation, --perplexity and pictures
      --weights-seed <S>    xorshift seed of the dummy weights [default: 348]; not with --model
      --prompt-file <PATH>  read the prompt from a file ('-' for standard input); at most
                            1 MiB is read, more is an error (GPT-2 reads 1024 tokens)
      --logprobs <K>        after the text, list each generated token's log-probability
                            and the K most likely tokens with theirs (K from 0 to 100):
                            the model's own distribution, before any penalty or filter
      --samples <K>         K continuations of the prompt (K from 1 to 1000), with the seeds
                            S, S+1, ... of --seed: the prompt is run once and its cache
                            copied; each equals the run with its seed alone
      --perplexity <FILE>   score FILE's text ('-' for standard input; at most 64 MiB),
                            tokenized exactly as it is, instead of generating: print a
                            summary and, last, 'perplexity=P tokens=N nll=L' (N tokens
                            scored, L their mean negative log-likelihood in nats, P = e^L)
      --stride <S>          with --perplexity: texts longer than the context are scored in
                            windows of n_ctx tokens moving by S, 1 <= S <= n_ctx
                            [default: n_ctx / 2]; each token is scored once, in the first
                            window where it is new (a smaller S: more context, more work)
  -h, --help                print this help
  -V, --version             print the version

Without --temperature, --top-k, --top-p, --min-p or --typical-p, decoding is greedy: always
the most likely token; any of those filters alone samples at temperature 1. The penalties
apply to greedy decoding too, first, in transformers' order: repetition penalty, no-repeat
n-gram, presence and frequency; then temperature, top-k, top-p, min-p, typical-p.
Generation runs on the fast engine; --trace, --explain, --attention, --lens, --surprise
and --html run the reference model instead, so that every step can be watched. Both give the same tokens.

Exit codes: 0 success; 1 runtime error (e.g. context overflow, an unreadable file, output
that cannot be written); 2 usage error (e.g. an unknown option, a missing prompt, or a
prompt with nothing to continue once tokenized: \"\" and, for the dummy model, \"  \").
A reader that closes the pipe early (| head) ends the run quietly, with 0.";

/// Default number of tokens to generate.
pub const DEFAULT_TOKENS: usize = 20;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Generate text, or score it (boxed: the options are far larger than the other
    /// variants).
    Run(Box<Options>),
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
#[derive(Debug, Clone, PartialEq)]
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
    /// Greedy or sampling, checked with [`SamplingParams::validate`].
    pub sampling: SamplingParams,
    /// The penalties, checked with [`Penalties::validate`].
    pub penalties: Penalties,
    /// The sampler's seed (never 0).
    pub seed: u64,
    /// Stop at the tokenizer's end-of-text token.
    pub stop_at_end_of_text: bool,
    /// Stop strings, in the order given.
    pub stop_strings: Vec<String>,
    /// Threads for the matrix products (at least 1).
    pub threads: usize,
    /// How the matrices are stored (`--dtype`), on both levels.
    pub dtype: Dtype,
    /// Print each step's pictures: attention map, candidates, cache (`--explain`).
    pub explain: bool,
    /// Print each step's attention map of this head (`--attention[=LAYER.HEAD]`).
    pub attention: Option<HeadId>,
    /// Write the HTML report here (`--html FILE`).
    pub html: Option<PathBuf>,
    /// Print each step's logit lens (`--lens`).
    pub lens: bool,
    /// Print the text shaded by surprisal after it (`--surprise`).
    pub surprise: bool,
    /// Heads switched off (`--ablate L.H`, repeatable), in the order given.
    pub ablate: Vec<HeadId>,
    /// Score the text of `prompt` instead of generating (`--perplexity FILE`).
    pub perplexity: bool,
    /// `--stride S`, for `--perplexity` (`None`: `n_ctx / 2`).
    pub stride: Option<usize>,
    /// `--logprobs K`: list each token's log-probability and `K` alternatives.
    pub logprobs: Option<usize>,
    /// `--samples K`: this many continuations of the prompt, seeds `seed`, `seed + 1`, ...
    pub samples: usize,
}

impl Options {
    /// Whether a step of the model is watched (`--trace`, `--explain`, `--attention`,
    /// `--html`): then the reference model runs, recording every tensor.
    pub fn observes(&self) -> bool {
        self.trace
            || self.explain
            || self.attention.is_some()
            || self.html.is_some()
            || self.lens
            || self.surprise
    }

    /// Whether the text is printed once at the end, after every step's tensors or
    /// pictures, rather than streamed.
    pub fn text_at_the_end(&self) -> bool {
        self.trace || self.explain || self.attention.is_some() || self.lens
    }

    /// The generation these options ask for.
    pub fn generate_config(&self) -> GenerateConfig {
        GenerateConfig {
            max_tokens: self.n_tokens,
            decoding: self.decoding,
            sampling: self.sampling,
            penalties: self.penalties,
            seed: self.seed,
            stop_at_end_of_text: self.stop_at_end_of_text,
            stop_strings: self.stop_strings.clone(),
            threads: self.threads,
        }
    }
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
pub fn parse_args<I, S>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let mut flags = Flags::default();
    let mut previous = String::new();
    while let Some(arg) = args.next() {
        if arg == "--" {
            flags.positional.extend(args.by_ref());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            if previous == "--attention" {
                flags.after_attention.push(arg.clone()); // `--attention 5.1`: see prompt_source
            }
            flags.positional.push(arg.clone());
        } else if let Some(command) = flags.take_option(&arg, &mut args)? {
            return Ok(command); // --help or --version
        }
        previous = arg;
    }
    flags.into_options().map(|options| Command::Run(Box::new(options)))
}

/// The command line as given, before defaults and checks between options.
#[derive(Default)]
struct Flags {
    seen: Vec<&'static str>,
    positional: Vec<String>,
    /// Positional arguments given right after a bare `--attention`.
    after_attention: Vec<String>,
    n_tokens: Option<u64>,
    weights_seed: Option<u64>,
    prompt_file: Option<String>,
    model_dir: Option<PathBuf>,
    sampling: SamplingParams,
    penalties: Penalties,
    seed: Option<u64>,
    stop_strings: Vec<String>,
    ignore_eot: bool,
    threads: Option<usize>,
    dtype: Option<Dtype>,
    explain: bool,
    attention: Option<HeadId>,
    html: Option<PathBuf>,
    lens: bool,
    surprise: bool,
    ablate: Vec<HeadId>,
    no_cache: bool,
    print_ids: bool,
    trace: bool,
    perplexity: Option<String>,
    stride: Option<usize>,
    logprobs: Option<usize>,
    samples: Option<usize>,
}

impl Flags {
    /// Takes in the option `arg` (`--name`, `-n`, or `--name=value`), reading its value from
    /// `rest` if it needs one. Returns the command for `--help` and `--version`.
    fn take_option(
        &mut self,
        arg: &str,
        rest: &mut impl Iterator<Item = String>,
    ) -> Result<Option<Command>, UsageError> {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg, None),
        };
        let name = canonical_name(flag).ok_or_else(|| unknown_option(flag))?;
        if self.seen.contains(&name) && name != "--stop" && name != "--ablate" {
            return Err(UsageError(format!("option '{name}' given more than once")));
        }
        self.seen.push(name);
        if name == "--attention" {
            // The one option whose value is optional: `--attention` or `--attention=1.3`.
            let head = inline_value.as_deref().unwrap_or("0.0").parse::<HeadId>();
            let head = head.map_err(|e| UsageError(format!("option '--attention': {e}")))?;
            self.attention = Some(head);
            return Ok(None);
        }
        let takes_value = OPTIONS.iter().any(|o| o.long == name && o.takes_value);
        if !takes_value && inline_value.is_some() {
            return Err(UsageError(format!("option '{name}' takes no value")));
        }
        let value = || {
            inline_value
                .or_else(|| rest.next())
                .ok_or_else(|| UsageError(format!("option '{name}' needs a value")))
        };
        self.set(name, value)
    }

    /// Records option `name`, reading its value with `value` if it takes one.
    fn set(
        &mut self,
        name: &'static str,
        value: impl FnOnce() -> Result<String, UsageError>,
    ) -> Result<Option<Command>, UsageError> {
        match name {
            "--help" => return Ok(Some(Command::Help)),
            "--version" => return Ok(Some(Command::Version)),
            "--tokens" => self.n_tokens = Some(parse_number(name, &value()?)?),
            "--weights-seed" => self.weights_seed = Some(parse_seed(name, &value()?)?),
            "--seed" => self.seed = Some(parse_seed(name, &value()?)?),
            "--temperature" | "--top-k" | "--top-p" | "--min-p" | "--typical-p" => {
                self.set_sampling(name, &value()?)?;
            }
            "--repetition-penalty"
            | "--no-repeat-ngram"
            | "--presence-penalty"
            | "--frequency-penalty" => self.set_penalty(name, &value()?)?,
            "--stop" => self.stop_strings.push(parse_stop(&value()?)?),
            "--ignore-eot" => self.ignore_eot = true,
            "--explain" => self.explain = true,
            "--html" => self.html = Some(PathBuf::from(value()?)),
            "--lens" => self.lens = true,
            "--surprise" => self.surprise = true,
            "--ablate" => self.ablate.push(parse_head(name, &value()?)?),
            "--threads" => self.threads = Some(parse_threads(&value()?)?),
            "--dtype" => self.dtype = Some(parse_dtype(&value()?)?),
            "--prompt-file" => self.prompt_file = Some(value()?),
            "--model" => self.model_dir = Some(PathBuf::from(value()?)),
            "--no-cache" => self.no_cache = true,
            "--ids" => self.print_ids = true,
            "--trace" => self.trace = true,
            "--perplexity" => self.perplexity = Some(value()?),
            "--stride" => self.stride = Some(parse_stride(&value()?)?),
            "--logprobs" => self.logprobs = Some(parse_logprobs(&value()?)?),
            "--samples" => self.samples = Some(parse_samples(&value()?)?),
            _ => unreachable!("every canonical name is handled"),
        }
        Ok(None)
    }

    /// One of the sampler's options: `--temperature`, `--top-k`, `--top-p`, `--min-p`,
    /// `--typical-p` (their ranges are checked once all are known).
    fn set_sampling(&mut self, name: &'static str, value: &str) -> Result<(), UsageError> {
        let sampling = &mut self.sampling;
        match name {
            "--temperature" => sampling.temperature = parse_float(name, value)?,
            "--top-k" => sampling.top_k = Some(parse_number(name, value)? as usize),
            "--top-p" => sampling.top_p = Some(parse_float(name, value)?),
            "--min-p" => sampling.min_p = Some(parse_float(name, value)?),
            _ => sampling.typical_p = Some(parse_float(name, value)?),
        }
        Ok(())
    }

    /// One of the penalties: `--repetition-penalty`, `--no-repeat-ngram`,
    /// `--presence-penalty`, `--frequency-penalty`.
    fn set_penalty(&mut self, name: &'static str, value: &str) -> Result<(), UsageError> {
        let penalties = &mut self.penalties;
        match name {
            "--repetition-penalty" => penalties.repetition_penalty = parse_float(name, value)?,
            "--no-repeat-ngram" => {
                penalties.no_repeat_ngram = Some(parse_number(name, value)? as usize);
            }
            "--presence-penalty" => penalties.presence_penalty = parse_float(name, value)?,
            _ => penalties.frequency_penalty = parse_float(name, value)?,
        }
        Ok(())
    }

    /// The sampling options settled and checked: a filter alone samples at T = 1.
    fn settle_sampling(&mut self) -> Result<(), UsageError> {
        let SamplingParams { top_k, top_p, min_p, typical_p, .. } = self.sampling;
        let a_filter = top_k.is_some() || top_p.is_some() || min_p.is_some() || typical_p.is_some();
        if a_filter && !self.seen.contains(&"--temperature") {
            self.sampling.temperature = 1.0; // a filter alone means sampling at T = 1
        }
        self.sampling.validate().map_err(|e| UsageError(e.to_string()))?;
        self.penalties.validate().map_err(|e| UsageError(e.to_string()))
    }

    /// The options, with their defaults, once the options agree with each other.
    fn into_options(mut self) -> Result<Options, UsageError> {
        self.settle_sampling()?;
        self.check_perplexity_options()?;
        self.check_samples()?;
        if self.model_dir.is_some() && self.weights_seed.is_some() {
            return Err(UsageError(
                "--weights-seed sets the dummy model's weights; it cannot be used with --model"
                    .into(),
            ));
        }
        let perplexity = self.perplexity.is_some();
        let prompt = self.take_prompt()?;
        Ok(Options {
            prompt,
            model_dir: self.model_dir,
            n_tokens: self.n_tokens.unwrap_or(DEFAULT_TOKENS as u64) as usize,
            decoding: if self.no_cache { Decoding::FullRecompute } else { Decoding::Cached },
            print_ids: self.print_ids,
            trace: self.trace,
            weights_seed: self.weights_seed.unwrap_or(DEFAULT_WEIGHTS_SEED),
            sampling: self.sampling,
            penalties: self.penalties,
            seed: self.seed.unwrap_or(DEFAULT_SAMPLING_SEED),
            stop_at_end_of_text: !self.ignore_eot,
            stop_strings: self.stop_strings,
            threads: self.threads.unwrap_or_else(|| default_threads().min(MAX_THREADS)),
            dtype: self.dtype.unwrap_or_default(),
            explain: self.explain,
            attention: self.attention,
            html: self.html,
            lens: self.lens,
            surprise: self.surprise,
            ablate: self.ablate,
            perplexity,
            stride: self.stride,
            logprobs: self.logprobs,
            samples: self.samples.unwrap_or(1),
        })
    }

    /// Where the text comes from: the file `--perplexity` scores, or the prompt.
    fn take_prompt(&mut self) -> Result<PromptSource, UsageError> {
        match self.perplexity.take() {
            Some(path) => prompt_source(Some(path), Vec::new(), &[]),
            None => prompt_source(
                self.prompt_file.take(),
                std::mem::take(&mut self.positional),
                &self.after_attention,
            ),
        }
    }

    /// `--perplexity` scores a text instead of generating: a prompt and the options of
    /// generation make no sense with it, and `--stride` none without it.
    /// `--samples K`: several continuations need sampling (greedy would repeat one), seeds
    /// that stay seeds, and the streaming output (not the step-by-step pictures).
    fn check_samples(&self) -> Result<(), UsageError> {
        let Some(k) = self.samples.filter(|&k| k > 1) else {
            return Ok(());
        };
        if self.sampling.is_greedy() {
            return Err(UsageError(
                "--samples needs sampling (--temperature, --top-k, --top-p, --min-p or \
                 --typical-p): greedy decoding gives the same text every time"
                    .into(),
            ));
        }
        let seed = self.seed.unwrap_or(DEFAULT_SAMPLING_SEED);
        if seed.checked_add(k as u64 - 1).is_none() {
            return Err(UsageError(format!(
                "--samples {k} with --seed {seed}: the seeds {seed} to {seed} + {} would pass \
                 the largest 64-bit number; choose a smaller seed",
                k - 1
            )));
        }
        let watching = ["--trace", "--explain", "--attention", "--html", "--lens", "--surprise"];
        match self.seen.iter().find(|name| watching.contains(name)) {
            Some(name) => Err(UsageError(format!(
                "option '{name}' watches one generation; it cannot be used with --samples"
            ))),
            None => Ok(()),
        }
    }

    fn check_perplexity_options(&self) -> Result<(), UsageError> {
        if self.perplexity.is_none() {
            return match self.stride {
                Some(_) => Err(UsageError("option '--stride' only applies to --perplexity".into())),
                None => Ok(()),
            };
        }
        if !self.positional.is_empty() {
            return Err(UsageError(format!(
                "--perplexity scores its file's text, so there is no prompt; found {}",
                self.positional.join(", ")
            )));
        }
        let generation_only = self.seen.iter().find(|name| GENERATION_ONLY.contains(name));
        match generation_only {
            Some(name) => Err(UsageError(format!(
                "option '{name}' is for generating text; it does not apply to --perplexity"
            ))),
            None => Ok(()),
        }
    }
}

/// The options that only mean something when text is generated.
const GENERATION_ONLY: [&str; 23] = [
    "--tokens",
    "--no-cache",
    "--ids",
    "--trace",
    "--temperature",
    "--top-k",
    "--top-p",
    "--min-p",
    "--typical-p",
    "--repetition-penalty",
    "--no-repeat-ngram",
    "--presence-penalty",
    "--frequency-penalty",
    "--seed",
    "--stop",
    "--ignore-eot",
    "--explain",
    "--attention",
    "--html",
    "--lens",
    "--surprise",
    "--prompt-file",
    "--samples",
];

/// The most alternatives `--logprobs` lists per token.
pub const MAX_LOGPROBS: usize = 100;

/// A `--stride`: at least 1 (its upper bound, `n_ctx`, is checked once the model is known).
/// `L.H`, a head: whether the model has it is checked once the model is loaded.
fn parse_head(name: &str, value: &str) -> Result<HeadId, UsageError> {
    value.parse::<HeadId>().map_err(|e| UsageError(format!("option '{name}': {e}")))
}

fn parse_stride(value: &str) -> Result<usize, UsageError> {
    match parse_number("--stride", value)? {
        0 => Err(UsageError("option '--stride' must be at least 1 (and at most n_ctx)".into())),
        n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

/// The most continuations `--samples` makes.
pub const MAX_SAMPLES: usize = 1000;

/// A `--samples` count: 1 to [`MAX_SAMPLES`].
fn parse_samples(value: &str) -> Result<usize, UsageError> {
    match parse_number("--samples", value)? {
        0 => Err(UsageError("option '--samples' must be at least 1".into())),
        n if n > MAX_SAMPLES as u64 => Err(UsageError(format!(
            "option '--samples' makes at most {MAX_SAMPLES} continuations, found {n}"
        ))),
        n => Ok(n as usize),
    }
}

/// A `--logprobs` count: 0 to [`MAX_LOGPROBS`].
fn parse_logprobs(value: &str) -> Result<usize, UsageError> {
    match parse_number("--logprobs", value)? {
        n if n > MAX_LOGPROBS as u64 => Err(UsageError(format!(
            "option '--logprobs' lists at most {MAX_LOGPROBS} alternatives per token, found {n}"
        ))),
        n => Ok(n as usize),
    }
}

/// Where the prompt comes from: one positional argument, or `--prompt-file` (`-`: stdin).
/// `after_attention` are the positional arguments that came right after a bare
/// `--attention`: its value is optional, so it only takes one after `=`.
fn prompt_source(
    file: Option<String>,
    mut positional: Vec<String>,
    after_attention: &[String],
) -> Result<PromptSource, UsageError> {
    if let Some(value) = after_attention.first().filter(|_| positional.len() > 1) {
        return Err(UsageError(format!(
            "expected one prompt but found {} arguments ({}); '--attention' takes its value \
             only after '=': write --attention={value}",
            positional.len(),
            positional.join(", ")
        )));
    }
    match (file, positional.len()) {
        (Some(_), n) if n > 0 => Err(UsageError(
            "give the prompt either as an argument or with --prompt-file, not both".into(),
        )),
        (Some(path), _) if path == "-" => Ok(PromptSource::Stdin),
        (Some(path), _) => Ok(PromptSource::File(PathBuf::from(path))),
        (None, 0) => {
            Err(UsageError("missing prompt: try gpt2-edu \"hello\" -n 5 (see --help)".into()))
        }
        (None, 1) => Ok(PromptSource::Text(positional.remove(0))),
        (None, n) => Err(UsageError(format!(
            "expected one prompt but found {n} arguments ({}); quote a prompt of several words",
            positional.join(", ")
        ))),
    }
}

/// A `--stop` string: not empty.
fn parse_stop(stop: &str) -> Result<String, UsageError> {
    if stop.is_empty() {
        return Err(UsageError("option '--stop' needs a non-empty string".into()));
    }
    Ok(stop.to_string())
}

/// A `--dtype`: `f32`, `bf16` or `q8`.
fn parse_dtype(value: &str) -> Result<Dtype, UsageError> {
    value.parse().map_err(|_| {
        UsageError(format!("option '--dtype' must be f32, bf16 or q8, found '{value}'"))
    })
}

/// A `--threads` count: from 1 to [`MAX_THREADS`]. Checked here, before any thread starts:
/// 20000 threads would take minutes to start, and `u64::MAX` cannot be allocated.
fn parse_threads(value: &str) -> Result<usize, UsageError> {
    let whole_number = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    // A whole number too long for u128 is too many threads too, not "not a number".
    let count = whole_number.then(|| value.parse::<u128>().unwrap_or(u128::MAX));
    match count {
        Some(0) => Err(UsageError(format!(
            "option '--threads' must be at least 1 (and at most {MAX_THREADS})"
        ))),
        Some(n) if n > MAX_THREADS as u128 => Err(UsageError(format!(
            "option '--threads' must be at most {MAX_THREADS}, found {value} (the fast engine \
             runs at most {MAX_THREADS} threads; more than the machine's cores only slow it)"
        ))),
        Some(n) => Ok(n as usize),
        None => parse_number("--threads", value).map(|n| n as usize), // its message
    }
}

/// One command-line option: its long name, short name and whether a value follows.
struct OptionSpec {
    long: &'static str,
    short: Option<&'static str>,
    takes_value: bool,
}

const fn option(long: &'static str, short: Option<&'static str>, takes_value: bool) -> OptionSpec {
    OptionSpec { long, short, takes_value }
}

/// Every option the command line knows.
const OPTIONS: [OptionSpec; 33] = [
    option("--model", None, true),
    option("--tokens", Some("-n"), true),
    option("--no-cache", None, false),
    option("--ids", None, false),
    option("--trace", None, false),
    option("--temperature", None, true),
    option("--top-k", None, true),
    option("--top-p", None, true),
    option("--min-p", None, true),
    option("--typical-p", None, true),
    option("--repetition-penalty", None, true),
    option("--no-repeat-ngram", None, true),
    option("--presence-penalty", None, true),
    option("--frequency-penalty", None, true),
    option("--seed", None, true),
    option("--stop", None, true),
    option("--ignore-eot", None, false),
    option("--threads", None, true),
    option("--dtype", None, true),
    option("--explain", None, false),
    option("--attention", None, false),
    option("--html", None, true),
    option("--lens", None, false),
    option("--surprise", None, false),
    option("--ablate", None, true),
    option("--weights-seed", None, true),
    option("--prompt-file", None, true),
    option("--perplexity", None, true),
    option("--stride", None, true),
    option("--logprobs", None, true),
    option("--samples", None, true),
    option("--help", Some("-h"), false),
    option("--version", Some("-V"), false),
];

/// "unknown option '--thread'; did you mean '--threads'?": the options `flag` begins
/// (`--top`: `--top-k` or `--top-p`), or else the known option closest to it (fewest
/// single-character edits, at most a third of its length), if there is one.
fn unknown_option(flag: &str) -> UsageError {
    let begun: Vec<String> = OPTIONS
        .iter()
        .filter(|o| flag.len() > 2 && o.long.starts_with(flag))
        .map(|o| format!("'{}'", o.long))
        .collect();
    let closest = OPTIONS
        .iter()
        .map(|o| (edit_distance(flag, o.long), o.long))
        .min()
        .filter(|&(distance, _)| distance <= flag.chars().count().div_ceil(3))
        .map(|(_, long)| format!("'{long}'"));
    let suggestion = match begun.split_last() {
        Some((last, [])) => format!("; did you mean {last}?"),
        Some((last, others)) => format!("; did you mean {} or {last}?", others.join(", ")),
        None => closest.map_or(String::new(), |long| format!("; did you mean {long}?")),
    };
    UsageError(format!("unknown option '{flag}'{suggestion} (see --help)"))
}

/// Levenshtein distance: the fewest single-character insertions, deletions and
/// substitutions that turn `a` into `b`. One row of the table at a time.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect(); // distances from "" to b's prefixes
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The long name of an option given by its long or short name.
fn canonical_name(flag: &str) -> Option<&'static str> {
    OPTIONS.iter().find(|o| o.long == flag || o.short == Some(flag)).map(|o| o.long)
}

/// A seed for xorshift: a whole number, not 0.
fn parse_seed(name: &str, value: &str) -> Result<u64, UsageError> {
    match parse_number(name, value)? {
        0 => Err(UsageError(format!("option '{name}' must not be 0 (xorshift's fixed point)"))),
        seed => Ok(seed),
    }
}

/// A number such as `0.7` or `1e-3`; its range is checked by [`SamplingParams::validate`].
fn parse_float(name: &str, value: &str) -> Result<f32, UsageError> {
    value
        .parse::<f32>()
        .map_err(|_| UsageError(format!("option '{name}' expects a number, found '{value}'")))
}

/// A non-negative whole number that fits in `usize` and `u64`.
fn parse_number(name: &str, value: &str) -> Result<u64, UsageError> {
    value.parse::<u64>().ok().filter(|&n| usize::try_from(n).is_ok()).ok_or_else(|| {
        UsageError(format!("option '{name}' expects a non-negative whole number, found '{value}'"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse_args(args.iter().copied()) {
            Ok(Command::Run(options)) => *options,
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
        assert_eq!(run(&["x", "--model=dir"]).model_dir, Some(PathBuf::from("dir")));
        assert_eq!(run(&["x"]).model_dir, None);

        let options =
            run(&["x", "--temperature", "0.7", "--top-k=40", "--top-p", "0.9", "--seed", "7"]);
        assert_eq!(
            options.sampling,
            SamplingParams {
                temperature: 0.7,
                top_k: Some(40),
                top_p: Some(0.9),
                ..SamplingParams::GREEDY
            }
        );
        assert_eq!(options.seed, 7);
        assert_eq!(
            run(&["x", "--top-k", "5"]).sampling.temperature,
            1.0,
            "top-k alone samples at T = 1"
        );
        assert_eq!(run(&["x"]).sampling, SamplingParams::GREEDY);
        let options = run(&["x", "--min-p=0.1", "--typical-p", "0.9"]);
        assert_eq!((options.sampling.min_p, options.sampling.typical_p), (Some(0.1), Some(0.9)));
        assert_eq!(options.sampling.temperature, 1.0, "min-p or typical-p alone samples at T = 1");
        let options = run(&[
            "x",
            "--repetition-penalty",
            "1.3",
            "--no-repeat-ngram=3",
            "--presence-penalty",
            "-0.5",
            "--frequency-penalty",
            "0.25",
        ]);
        let penalties = Penalties {
            repetition_penalty: 1.3,
            no_repeat_ngram: Some(3),
            presence_penalty: -0.5,
            frequency_penalty: 0.25,
        };
        assert_eq!(options.penalties, penalties);
        assert_eq!(options.generate_config().penalties, penalties);
        assert_eq!(options.sampling, SamplingParams::GREEDY, "penalties alone stay greedy");
        assert_eq!(run(&["x"]).penalties, Penalties::NONE);
        let options = run(&["x", "--stop", "a", "--stop", "b b", "--ignore-eot"]);
        assert_eq!(options.stop_strings, vec!["a".to_string(), "b b".to_string()]);
        assert!(!options.stop_at_end_of_text);
        assert!(run(&["x"]).stop_at_end_of_text);
        assert_eq!(run(&["x", "--threads", "3"]).threads, 3);
        assert_eq!(run(&["x"]).dtype, Dtype::F32);
        assert_eq!(run(&["x", "--dtype", "q8"]).dtype, Dtype::Q8);
        assert_eq!(run(&["x", "--dtype=bf16"]).dtype, Dtype::Bf16);
        let message = usage_error(&["x", "--dtype", "f16"]);
        assert_eq!(message, "option '--dtype' must be f32, bf16 or q8, found 'f16'");
        assert_eq!(run(&["x", "--attention"]).attention, Some(HeadId { layer: 0, head: 0 }));
        assert_eq!(run(&["x", "--attention=1.3"]).attention, Some(HeadId { layer: 1, head: 3 }));
        assert!(run(&["x", "--explain"]).explain);
        assert_eq!(run(&["x", "--html", "r.html"]).html, Some(PathBuf::from("r.html")));
        let options = run(&["x", "--ablate", "1.2", "--ablate=0.3", "--lens", "--surprise"]);
        let heads = vec![HeadId { layer: 1, head: 2 }, HeadId { layer: 0, head: 3 }];
        assert_eq!((options.ablate, options.lens, options.surprise), (heads, true, true));
        assert!(run(&["x", "--lens"]).observes() && run(&["x", "--surprise"]).observes());
        assert!(run(&["x"]).threads >= 1);
        assert_eq!(parse_args(["-V"]), Ok(Command::Version));
        assert_eq!(parse_args(["x", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        assert_eq!(usage_error(&["hi", "--bogus"]), "unknown option '--bogus' (see --help)");
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
        assert!(
            usage_error(&["a", "--temperature", "-1"])
                .contains("temperature must be a finite number >= 0")
        );
        assert!(usage_error(&["a", "--temperature", "nan"]).contains("found NaN"));
        assert!(usage_error(&["a", "--temperature", "inf"]).contains("found inf"));
        assert!(
            usage_error(&["a", "--temperature", "warm"]).contains("expects a number, found 'warm'")
        );
        assert!(usage_error(&["a", "--top-p", "0"]).contains("top-p must be in (0, 1]"));
        assert!(usage_error(&["a", "--top-p", "1.01"]).contains("top-p must be in (0, 1]"));
        assert!(usage_error(&["a", "--top-k", "0"]).contains("top-k must be at least 1"));
        assert!(usage_error(&["a", "--top-k", "2.5"]).contains("non-negative whole number"));
        assert!(usage_error(&["a", "--seed", "0"]).contains("must not be 0"));
        assert!(usage_error(&["a", "--seed", "1", "--seed", "2"]).contains("more than once"));
        assert!(usage_error(&["a", "--stop", ""]).contains("non-empty"));
        assert!(usage_error(&["a", "--stop"]).contains("needs a value"));
        assert!(usage_error(&["a", "--threads", "0"]).contains("at least 1"));
        assert_eq!(run(&["a", "--threads", "256"]).threads, MAX_THREADS);
        let huge = "9".repeat(50);
        for too_many in ["257", "20000", "18446744073709551615", &huge] {
            let message = usage_error(&["a", "--threads", too_many]);
            assert!(message.contains("must be at most 256"), "{too_many}: {message}");
        }
        assert!(usage_error(&["a", "--attention=x"]).contains("option '--attention'"));
        assert!(usage_error(&["a", "--html"]).contains("needs a value"));
        for bad in ["1", "x.y", "1.2.3", "-1.0", ""] {
            let said = usage_error(&["a", "--ablate", bad]);
            assert!(said.starts_with("option '--ablate': expected LAYER.HEAD"), "{said}");
        }
    }

    #[test]
    fn unknown_options_suggest_the_closest_known_one() {
        for (typed, meant) in [
            ("--thread", "--threads"),
            ("-threads", "--threads"),
            ("--tokns", "--tokens"),
            ("--no-cahce", "--no-cache"),
            ("--temp", "--temperature"),
            ("--Model", "--model"),
            ("--atention", "--attention"),
        ] {
            assert_eq!(
                usage_error(&["hi", typed]),
                format!("unknown option '{typed}'; did you mean '{meant}'? (see --help)")
            );
        }
        assert_eq!(
            usage_error(&["hi", "--top"]),
            "unknown option '--top'; did you mean '--top-k' or '--top-p'? (see --help)"
        );
        // Too far from everything: no guess.
        for typed in ["--bogus", "-x", "--zzz"] {
            assert_eq!(
                usage_error(&["hi", typed]),
                format!("unknown option '{typed}' (see --help)")
            );
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("é", "e"), 1, "characters, not bytes");
    }

    #[test]
    fn a_value_after_a_bare_attention_is_explained() {
        let message = usage_error(&["hello", "--attention", "5.1"]);
        assert_eq!(
            message,
            "expected one prompt but found 2 arguments (hello, 5.1); '--attention' takes its \
             value only after '=': write --attention=5.1"
        );
        // Alone, the argument after --attention is the prompt.
        let options = run(&["--attention", "hello"]);
        assert_eq!(options.prompt, PromptSource::Text("hello".into()));
        assert_eq!(options.attention, Some(HeadId { layer: 0, head: 0 }));
        assert!(usage_error(&["a", "b"]).ends_with("quote a prompt of several words"));
    }

    #[test]
    fn the_help_names_the_thread_limit() {
        assert!(USAGE.contains(&format!("1 to {MAX_THREADS}")), "update --help's --threads");
    }

    #[test]
    fn random_argument_vectors_never_panic() {
        // Pieces a user (or a cat on the keyboard) might type: every option name, values of
        // every kind, and junk.
        let mut pool: Vec<String> = OPTIONS.iter().map(|o| o.long.to_string()).collect();
        pool.extend(OPTIONS.iter().filter_map(|o| o.short.map(String::from)));
        pool.extend(
            [
                "hello",
                "-",
                "--",
                "=",
                "--=",
                "-n=3",
                "--tokens=",
                "--top-p=0.5",
                "--seed=0",
                "0",
                "1",
                "-1",
                "0.5",
                "1e309",
                "nan",
                "-inf",
                "18446744073709551616",
                "2.5",
                "",
                " ",
                "é",
                "🙂",
                "--\u{0}",
                "-x",
                "---",
                "--tokens=5=6",
                "--temperature=",
            ]
            .map(String::from),
        );
        let mut rng = gpt2_edu::XorShift64::new(2024).unwrap();
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 7) as usize;
            let args: Vec<String> = (0..len)
                .map(|_| pool[(rng.next_u64() % pool.len() as u64) as usize].clone())
                .collect();
            // Must return (Ok or a usage error), never panic; errors must say something.
            if let Err(UsageError(message)) = parse_args(args.clone()) {
                assert!(!message.is_empty(), "{args:?}");
            }
        }
    }
}
