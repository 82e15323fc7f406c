//! Constrained decoding for jing: token masks that force a JSON object, a JSON value valid
//! against a schema, or DeepSeek tool calls, built on [llguidance].
//!
//! [`Grammars`] holds the token trie of one model's tokenizer (built once, at startup) and
//! makes one [`TokenConstraint`] per request:
//!
//! - [`Grammars::json_object`]: OpenAI's `response_format: {"type": "json_object"}`;
//! - [`Grammars::json_schema`]: `response_format: {"type": "json_schema", ...}`; a schema the
//!   compiler cannot handle is a [`GrammarError::Schema`] naming what it does not support
//!   ([`GrammarError::is_request_error`]: answer HTTP 400);
//! - [`Grammars::tool_calls`]: `tool_choice: "required"` or a named function, in the exact
//!   DeepSeek V3/R1 or V3.1 markup that
//!   [`jing_tokenizer::tool_calls::parse`] reads, with arguments valid against each tool's
//!   `parameters`.
//!
//! [`GrammarOptions::reasoning_end`] lets R1-style models reason freely first (their chat
//! template opened `<think>`): the constraint then starts after `</think>`.
//!
//! # The contract with the engine
//!
//! Before sampling each token the engine calls [`TokenConstraint::mask`] with the logits
//! (the *model's* vocabulary size, which may exceed the tokenizer's: the extra padding ids are
//! always masked), samples from what is left, and calls [`TokenConstraint::commit`] with the
//! sampled id. End-of-sequence ids are allowed exactly where the constrained output may end.
//! Once the output cannot go on (`}` closing a JSON object, `<｜tool▁calls▁end｜>`) or an EOS
//! was committed where it may end, [`TokenConstraint::is_finished`] is true and the engine
//! stops with finish reason `stop` (the server reports `tool_calls` when the parsed answer
//! has calls). `max_tokens` may still cut the output first.
//!
//! ```
//! use jing_grammar::{GrammarOptions, Grammars};
//! use jing_tokenizer::Tokenizer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizer");
//! let tokenizer = Tokenizer::from_model_dir(&dir)?;
//! let grammars = Grammars::new(&tokenizer, &tokenizer.eos_ids())?;
//! let mut constraint = grammars.json_object(&GrammarOptions::default())?;
//! let mut logits = vec![0.0f32; grammars.vocab_size() + 3]; // the model's vocabulary size
//! constraint.mask(&mut logits)?;
//! let open = tokenizer.encode("{", false)?[0];
//! assert!(logits[open as usize].is_finite()); // `{` may start the object
//! assert!(logits[tokenizer.encode("a", false)?[0] as usize].is_infinite());
//! constraint.commit(open)?;
//! assert!(!constraint.is_finished());
//! # Ok(())
//! # }
//! ```
//!
//! [llguidance]: https://github.com/guidance-ai/llguidance

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod constraint;
mod error;
mod grammars;
mod vocab;

pub use error::GrammarError;
pub use grammars::{GrammarOptions, Grammars, JsonWhitespace, ToolChoice, DEFAULT_MAX_WHITESPACE};
pub use jing_engine::TokenConstraint;
pub use jing_tokenizer::tool_calls::ToolCallFormat;

/// The first line of a (possibly multi-line, backtrace-carrying) error message.
pub(crate) fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or("").trim()
}
