//! The one error type of the crate: everything a *user* can get wrong.
//!
//! Library code never panics on user input, never prints and never exits; it returns an
//! [`Error`] whose message says what was expected, what was found and, where it helps, what
//! to do. Programming mistakes inside the crate (a slice of the wrong length passed between
//! two of its own functions) are caught by `debug_assert!`s instead.

use std::fmt;

/// Something a caller asked for that the crate cannot do.
///
/// `#[non_exhaustive]`: new kinds of failure may be added without a major version, so a
/// `match` on it needs a `_` arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Seed 0 was given to the xorshift generator. Zero is xorshift's fixed point: every
    /// draw would be zero.
    ZeroSeed,
    /// The prompt encodes to no tokens at all, so there is nothing to continue.
    EmptyPrompt,
    /// The prompt plus the requested tokens do not fit in the model's context window.
    ContextOverflow {
        /// Tokens in the prompt (or already in the sequence).
        prompt_tokens: usize,
        /// Tokens asked for on top of them.
        new_tokens: usize,
        /// The model's context length, `n_ctx`.
        n_ctx: usize,
    },
    /// A token id that is not in the vocabulary.
    TokenOutOfRange {
        /// The offending id.
        token: u32,
        /// The vocabulary size; valid ids are `0..n_vocab`.
        n_vocab: usize,
    },
    /// Hyper-parameters that cannot describe a GPT-2 (for example `n_embd` not divisible
    /// by `n_head`).
    InvalidHParams(String),
    /// A weight tensor whose shape does not match the hyper-parameters.
    ShapeMismatch {
        /// The tensor's name, as in the checkpoint (`h.0.attn.c_attn.weight`, ...).
        tensor: String,
        /// The shape the hyper-parameters call for.
        expected: Vec<usize>,
        /// The shape that was found.
        found: Vec<usize>,
    },
    /// Sampling parameters out of range (a negative temperature, top-p outside (0, 1], ...).
    InvalidSampling(String),
    /// A layer or attention head asked for (to be shown) that the model does not have.
    NoSuchHead(String),
    /// A file could not be read or written (missing, unreadable, unwritable).
    Io {
        /// The file.
        path: String,
        /// The operating system's kind of failure (`NotFound`, `PermissionDenied`, ...), for
        /// a caller that wants to react to it; `Other` when the crate itself refused the
        /// file (a directory where a file should be, ...).
        kind: std::io::ErrorKind,
        /// What went wrong, in words.
        message: String,
    },
    /// A file was read but its contents are not what they must be (malformed JSON, a
    /// corrupt safetensors header, a bad merges line, ...).
    InvalidFile {
        /// The file.
        path: String,
        /// What is wrong, with what was expected and what was found.
        message: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    MissingTensor {
        /// The checkpoint file.
        path: String,
        /// The tensor's name, as looked up.
        tensor: String,
    },
    /// A weight that is not a finite number (NaN or infinite): every logit computed with it
    /// would be NaN.
    NonFiniteWeight {
        /// The tensor's name, as in the checkpoint (`h.0.attn.c_attn.weight`, ...).
        tensor: String,
        /// The first bad value's index in the tensor (row-major).
        index: usize,
        /// The value as written: `NaN`, `inf` or `-inf`.
        value: String,
    },
    /// The model computed logits that are not finite numbers (NaN or infinite): its
    /// weights or activations overflowed f32. Nothing sensible can be chosen from them.
    NonFiniteLogits {
        /// The position (0-based, in the whole sequence) whose next-token logits these were.
        position: usize,
    },
    /// A thread count out of range: at least 1 and at most
    /// [`MAX_THREADS`](crate::fast::MAX_THREADS).
    InvalidThreads {
        /// The number asked for.
        requested: usize,
        /// The largest number allowed.
        max: usize,
    },
    /// The operating system would not start a worker thread.
    ThreadStart(String),
    /// An argument outside what the function accepts (the message says which and why).
    InvalidArgument(String),
    /// A tensor is stored in a dtype the crate cannot convert to f32.
    UnsupportedDtype {
        /// The checkpoint file.
        path: String,
        /// The tensor's name.
        tensor: String,
        /// Its dtype, as written in the header.
        dtype: String,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ZeroSeed => write!(
                f,
                "seed 0 is not allowed: it is xorshift's fixed point and would draw only zeros; \
                 use any other seed"
            ),
            Error::EmptyPrompt => {
                write!(f, "the prompt is empty: give at least one word for the model to continue")
            }
            Error::ContextOverflow { prompt_tokens, new_tokens, n_ctx } => write!(
                f,
                "context overflow: {prompt_tokens} prompt tokens + {new_tokens} new tokens = {} \
                 tokens, but the model's context holds at most n_ctx = {n_ctx}; \
                 shorten the prompt or ask for fewer tokens",
                *prompt_tokens as u128 + *new_tokens as u128
            ),
            Error::TokenOutOfRange { token, n_vocab } => write!(
                f,
                "token id {token} is outside the vocabulary (expected an id below n_vocab = {n_vocab})"
            ),
            Error::InvalidHParams(why) => write!(f, "invalid hyper-parameters: {why}"),
            Error::ShapeMismatch { tensor, expected, found } => write!(
                f,
                "tensor `{tensor}` has shape {found:?} but the hyper-parameters call for {expected:?}"
            ),
            Error::InvalidSampling(why) => write!(f, "invalid sampling parameters: {why}"),
            Error::NoSuchHead(what) => write!(f, "{what}"),
            Error::Io { .. }
            | Error::InvalidFile { .. }
            | Error::MissingTensor { .. }
            | Error::NonFiniteWeight { .. }
            | Error::UnsupportedDtype { .. } => self.fmt_loading(f),
            Error::NonFiniteLogits { .. }
            | Error::InvalidThreads { .. }
            | Error::ThreadStart(_) => self.fmt_running(f),
            Error::InvalidArgument(why) => write!(f, "{why}"),
        }
    }
}

impl Error {
    /// The messages of the errors of loading a checkpoint (the rest are in `fmt`).
    fn fmt_loading(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, message, .. } | Error::InvalidFile { path, message } => {
                write!(f, "{path}: {message}")
            }
            Error::MissingTensor { path, tensor } => {
                write!(f, "{path}: tensor `{tensor}` is missing (is this a GPT-2 checkpoint?)")
            }
            Error::NonFiniteWeight { tensor, index, value } => write!(
                f,
                "tensor `{tensor}` holds {value} at index {index} (row-major): every weight must be \
                 a finite number (corrupt weights, or a model saved after its training diverged)"
            ),
            Error::UnsupportedDtype { path, tensor, dtype } => write!(
                f,
                "{path}: tensor `{tensor}` has dtype {dtype}, but only F32, F16 and BF16 can be loaded"
            ),
            _ => Ok(()), // `fmt` sends only the errors above here
        }
    }

    /// The messages of the errors of running the engine (the rest are in `fmt`).
    fn fmt_running(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NonFiniteLogits { position } => write!(
                f,
                "the logits for the token after position {position} are not finite (NaN or \
                 infinite): the model's numbers overflowed f32, so no token can be chosen"
            ),
            Error::InvalidThreads { requested, max } => write!(
                f,
                "{requested} threads asked for: the thread count must be between 1 and {max}"
            ),
            Error::ThreadStart(why) => write!(f, "could not start a worker thread: {why}"),
            _ => Ok(()), // `fmt` sends only the errors above here
        }
    }

    /// An [`Error::InvalidFile`] for `path`.
    pub fn invalid_file(path: &std::path::Path, message: impl Into<String>) -> Self {
        Error::InvalidFile { path: path.display().to_string(), message: message.into() }
    }

    /// An [`Error::Io`] for a file at `path` that could not be read.
    pub fn io(path: &std::path::Path, error: &std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            kind: error.kind(),
            message: format!("cannot read it: {error}"),
        }
    }

    /// An [`Error::Io`] for a file at `path` that could not be written.
    pub fn io_write(path: &std::path::Path, error: &std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            kind: error.kind(),
            message: format!("cannot write it: {error}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_overflow_message_names_all_three_numbers() {
        let message =
            Error::ContextOverflow { prompt_tokens: 1000, new_tokens: 30, n_ctx: 1024 }.to_string();
        assert!(message.contains("1000 prompt tokens"), "{message}");
        assert!(message.contains("30 new tokens"), "{message}");
        assert!(message.contains("= 1030 tokens"), "{message}");
        assert!(message.contains("n_ctx = 1024"), "{message}");
    }

    #[test]
    fn context_overflow_message_does_not_overflow() {
        let message = Error::ContextOverflow { prompt_tokens: 3, new_tokens: usize::MAX, n_ctx: 8 }
            .to_string();
        assert!(message.contains(&format!("= {} tokens", usize::MAX as u128 + 3)), "{message}");
    }
}
