//! `gpt2-edu`: the command line. Parses the arguments (`cli.rs`), runs the dummy model or a
//! GPT-2 checkpoint (`run.rs`), and streams the result; `report.rs` puts the `--html`
//! report in place. Usage errors exit with code 2, runtime errors with 1.
//!
//! Nothing here uses `println!` or `eprintln!`: they panic when the write fails (a full
//! disk, `2>/dev/full`). Output goes through `writeln!`, whose errors end the run with a
//! message (exit 1), or quietly when the reader closed the pipe (`| head -c1`: exit 0, as
//! if the rest had been read). Messages to stderr go through [`say`], which cannot fail:
//! where stderr cannot be written, there is no one left to tell.

mod cli;
mod perplexity;
mod report;
mod run;

use std::io::{self, Write};
use std::process::ExitCode;

use cli::Command;

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> =
        std::env::args_os().skip(1).map(|a| a.into_string()).collect();
    let Ok(args) = args else {
        say("error: arguments must be valid UTF-8");
        return ExitCode::from(2);
    };
    let command = match cli::parse_args(args) {
        Ok(command) => command,
        Err(usage) => return usage_error(&usage.0),
    };
    let result = match command {
        Command::Help => writeln!(io::stdout(), "{}", cli::USAGE).map_err(Failure::from),
        Command::Version => {
            writeln!(io::stdout(), "gpt2-edu {}", env!("CARGO_PKG_VERSION")).map_err(Failure::from)
        }
        Command::Run(options) => run::run(&options),
    };
    match result {
        Ok(()) | Err(Failure::ClosedPipe) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => usage_error(&message),
        Err(Failure::Message(message)) => {
            say(&format!("error: {message}"));
            ExitCode::from(1)
        }
    }
}

/// Says what is wrong with the command line, and how to use it: exit code 2.
fn usage_error(message: &str) -> ExitCode {
    say(&format!("error: {message}\n\nUsage: gpt2-edu [OPTIONS] <PROMPT>   (see --help)"));
    ExitCode::from(2)
}

/// Writes `message` and a newline to stderr, ignoring a failed write (there is nowhere
/// else to report it).
pub fn say(message: &str) {
    let _ = writeln!(io::stderr(), "{message}");
}

/// Why a run stopped early.
pub enum Failure {
    /// Whoever reads our output went away (`gpt2-edu ... | head`): stop quietly.
    ClosedPipe,
    /// A command line that only shows its fault once it runs (an empty prompt, one read
    /// from a file too): reported like a parse error, exit code 2.
    Usage(String),
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
        match error {
            // The prompt is what the user typed: nothing to continue is a usage error.
            gpt2_edu::Error::EmptyPrompt => Failure::Usage(error.to_string()),
            _ => Failure::Message(error.to_string()),
        }
    }
}
