//! The error type of this crate.
//!
//! Every variant that comes from a file names that file, says what was wrong
//! with it and, where there is one, what to do about it. Nothing in this crate
//! panics on bad input; it returns one of these instead.

use std::path::PathBuf;

/// The boxed error type that the `tokenizers` crate returns.
type BoxedError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong while loading a tokenizer or using it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A required file (or the model directory itself) does not exist.
    #[error("{path}: file not found; {hint}")]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
        /// What to do about it.
        hint: &'static str,
    },

    /// A file exists but could not be read.
    #[error("{path}: could not read the file: {source}")]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file is not valid JSON at all (truncated download, HTML error page,
    /// Git LFS pointer, ...).
    #[error(
        "{path}: not valid JSON ({source}); the file is probably truncated or is not the real \
         file (a Git LFS pointer or an HTML page): download it again"
    )]
    InvalidJson {
        /// The offending file.
        path: PathBuf,
        /// The JSON parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },

    /// `tokenizer.json` is valid JSON but not a tokenizer definition that the
    /// `tokenizers` library understands.
    #[error(
        "{path}: not a valid Hugging Face tokenizer definition: {message}; expected the \
         `tokenizer.json` written by the `tokenizers` library (a \"fast\" tokenizer)"
    )]
    InvalidTokenizer {
        /// The offending file.
        path: PathBuf,
        /// What the `tokenizers` library complained about.
        message: String,
    },

    /// `tokenizer_config.json` or `generation_config.json` is valid JSON but a
    /// field has an unexpected shape.
    #[error("{path}: field `{field}` is invalid: {message}")]
    InvalidConfig {
        /// The offending file.
        path: PathBuf,
        /// The field (or `<root>`), as far as it could be determined.
        field: String,
        /// What was wrong with it.
        message: String,
    },

    /// A configuration file names a special token (by text or by id) that the
    /// tokenizer's vocabulary does not contain.
    #[error(
        "{path}: `{field}` is {token}, which is not in the tokenizer's vocabulary \
         ({vocab_size} tokens); the config files do not belong to this tokenizer.json"
    )]
    UnknownSpecialToken {
        /// The configuration file that names the token.
        path: PathBuf,
        /// The field naming it (`bos_token`, `eos_token_id`, ...).
        field: &'static str,
        /// The token as written in the file (quoted text or an id).
        token: String,
        /// The size of the vocabulary, special tokens included.
        vocab_size: usize,
    },

    /// The `tokenizers` library failed to encode text.
    #[error("failed to encode text: {source}")]
    Encode {
        /// The underlying error.
        #[source]
        source: BoxedError,
    },

    /// The `tokenizers` library failed to decode ids.
    #[error("failed to decode token ids: {source}")]
    Decode {
        /// The underlying error.
        #[source]
        source: BoxedError,
    },
}

/// Shorthand for `Result<T, TokenizerError>`.
pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;
