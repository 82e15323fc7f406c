//! The error type of this crate.

/// Everything that can go wrong while preparing a constraint.
///
/// [`is_request_error`](Self::is_request_error) tells the caller's fault (a schema, a tool list
/// or an option in the request: HTTP 400) from a problem with the model's tokenizer or with
/// jing itself (HTTP 500, or a startup failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrammarError {
    /// The tokenizer cannot back a token trie (found once, at startup).
    #[error("constrained decoding is unavailable for this tokenizer: {reason}")]
    UnsupportedTokenizer {
        /// What is wrong with it.
        reason: String,
    },

    /// The end-of-sequence ids given to [`Grammars::new`](crate::Grammars::new) are unusable.
    #[error("invalid end-of-sequence ids: {reason}")]
    InvalidEos {
        /// What is wrong with them.
        reason: String,
    },

    /// A JSON schema (the `response_format` one, or a tool's `parameters`) is invalid or uses
    /// a feature the grammar compiler does not support.
    #[error("{location}: {message}")]
    Schema {
        /// Where the schema sits in the request, e.g. `response_format.json_schema.schema` or
        /// `tools[1].function.parameters`.
        location: String,
        /// What is wrong, naming the unsupported keyword where that is the cause.
        message: String,
    },

    /// The `tools` array or `tool_choice` is malformed.
    #[error("{0}")]
    InvalidTools(String),

    /// The model's tokenizer lacks a token that the requested output format needs (a model
    /// without DeepSeek tool-call tokens asked for a tool call).
    #[error(
        "this model's tokenizer has no {token:?} token, which {needed_for} needs; the model \
         cannot produce that format"
    )]
    MissingToken {
        /// The token text.
        token: String,
        /// What needed it.
        needed_for: &'static str,
    },

    /// A [`GrammarOptions`](crate::GrammarOptions) field is out of range.
    #[error("invalid grammar option: {0}")]
    InvalidOptions(String),

    /// The grammar compiler rejected a grammar that jing generated, or failed inside: a bug in
    /// jing, not in the request.
    #[error("internal grammar error (a bug in jing; please report it): {0}")]
    Internal(String),
}

impl GrammarError {
    /// Whether the request is at fault (answer HTTP 400 with this message), as opposed to the
    /// tokenizer or jing itself.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            Self::Schema { .. }
                | Self::InvalidTools(_)
                | Self::MissingToken { .. }
                | Self::InvalidOptions(_)
        )
    }
}
