//! [`TemplateError`]: everything that can go wrong loading or rendering a chat
//! template.

use std::path::PathBuf;

use crate::error::TokenizerError;

/// A chat template could not be loaded or rendered.
///
/// Every variant says what happened in words meant for the operator (loading)
/// or the API client (rendering: a [`Raised`](TemplateError::Raised) message
/// is the template's own complaint about the conversation, e.g. "Conversation
/// roles must alternate ...").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The model ships no chat template.
    #[error(
        "{}has no chat template (no `chat_template` in tokenizer_config.json and no \
         chat_template.jinja); pass one with --chat-template FILE",
        .dir.as_ref().map(|d| format!("the model directory {} ", d.display())).unwrap_or_else(|| "the model ".to_string())
    )]
    Missing {
        /// The model directory, when one was looked at.
        dir: Option<PathBuf>,
    },

    /// A template file could not be read.
    #[error("cannot read chat template {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The `chat_template` value or file has the wrong shape.
    #[error("invalid chat template in {origin}: {message}")]
    InvalidConfig {
        /// Where the template came from (a file, or `tokenizer_config.json`).
        origin: String,
        /// What is wrong.
        message: String,
    },

    /// A template source is larger than [`RenderLimits::max_source_bytes`](super::RenderLimits::max_source_bytes).
    #[error("chat template {name:?} is {size} bytes, over the limit of {limit} bytes")]
    SourceTooLarge {
        /// The template's name.
        name: String,
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A template does not compile.
    #[error("chat template {name:?} does not compile: {message}")]
    Syntax {
        /// The template's name.
        name: String,
        /// The compiler's message, with line information.
        message: String,
    },

    /// A template of the requested name does not exist.
    #[error("no chat template named {name:?} (available: {available})")]
    UnknownName {
        /// The requested name.
        name: String,
        /// The names there are, comma separated.
        available: String,
    },

    /// Several named templates and none called `default` (Hugging Face
    /// refuses these too unless a name is given).
    #[error(
        "the model has several chat templates and none is named \"default\"; choose one of: \
         {available}"
    )]
    NoDefault {
        /// The names there are, comma separated.
        available: String,
    },

    /// The messages, tools or variables handed to [`render`](super::ChatTemplate::render)
    /// are not what a chat template expects.
    #[error("invalid chat input: {0}")]
    InvalidInput(String),

    /// The template called `raise_exception(message)`.
    #[error("the chat template rejected the conversation: {message}")]
    Raised {
        /// The template's message, verbatim.
        message: String,
    },

    /// Rendering used up its fuel: the template loops too long or builds too
    /// much data.
    #[error(
        "rendering the chat template did too much work (fuel of {fuel} used up); the template \
         loops too long or the conversation is too large"
    )]
    OutOfFuel {
        /// The fuel budget.
        fuel: u64,
    },

    /// Rendering nested too deeply: macros or recursive loops (the limit is
    /// [`RenderLimits::recursion_limit`](super::RenderLimits::recursion_limit)),
    /// or a value nested too deeply to print or compare, or one that contains
    /// itself (the limit is 256 levels).
    #[error("rendering the chat template nested deeper than the recursion limit of {limit}")]
    RecursionLimit {
        /// The limit.
        limit: usize,
    },

    /// The rendered prompt grew past [`RenderLimits::max_output_bytes`](super::RenderLimits::max_output_bytes).
    #[error("the rendered prompt is larger than the limit of {limit} bytes")]
    OutputTooLarge {
        /// The limit.
        limit: usize,
    },

    /// Any other failure while rendering (a type error, an undefined value
    /// used where a string is needed, ...).
    #[error("rendering the chat template failed: {message}")]
    Render {
        /// The engine's message.
        message: String,
    },

    /// Encoding the rendered prompt failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}
