//! `gpt2-edu`: the command line. Parses the arguments (`cli.rs`), runs the dummy model or a
//! GPT-2 checkpoint (`run.rs`), and streams the result. Usage errors exit with code 2,
//! runtime errors with 1.

mod cli;
mod run;

use std::io::{self, Write};
use std::process::ExitCode;

use cli::Command;

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> =
        std::env::args_os().skip(1).map(|a| a.into_string()).collect();
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
        Command::Run(options) => run::run(&options),
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
pub enum Failure {
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
