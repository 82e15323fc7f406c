//! DeepSeek tool-call parsing (whole and streaming).
//!
//! DeepSeek models call tools by writing special markers into the answer
//! text (the spellings use U+FF5C `｜` and U+2581 `▁`):
//!
//! - V3 / R1 ([`ToolCallFormat::V3`]):
//!   `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>`,
//!   further calls after a `"\n"`, then `<｜tool▁calls▁end｜>`.
//! - V3.1 ([`ToolCallFormat::V31`]):
//!   `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>…<｜tool▁calls▁end｜>`.
//!
//! [`parse`] turns a complete answer into [`ParsedOutput`]: the text outside
//! the calls and the calls, each with an OpenAI-style `call_…` id.
//! [`ToolCallParser`] does the same while the text streams in and returns
//! [`ToolCallDelta`]s shaped like OpenAI's streaming `tool_calls` deltas.
//! Feed it the *answer* part only (after
//! [`ReasoningSplitter`](crate::reasoning::ReasoningSplitter)), and decode
//! with special tokens kept, or the markers are gone.
//!
//! # What is accepted
//!
//! - `content` is the text outside tool-call sections, verbatim (like vLLM;
//!   SGLang strips it). Marker text is never part of it except for invalid
//!   calls (below); stray `<｜tool▁calls▁end｜>`, `<｜tool▁call▁end｜>` and
//!   `<｜tool▁sep｜>` outside a section are dropped.
//! - Whitespace between calls is dropped. `<｜tool▁call▁begin｜>` without a
//!   preceding `<｜tool▁calls▁begin｜>` opens a section (as SGLang). Text after
//!   `<｜tool▁calls▁end｜>` is content again, and a later section is parsed too;
//!   indices keep counting.
//! - Names and the V3 type are trimmed. A name must be non-empty, at most
//!   [`MAX_HEADER_BYTES`] bytes, without whitespace or control characters;
//!   the V3 type must be `function`. Names are not checked against the
//!   request's tools: that is the server's business.
//! - Arguments are the text after `<｜tool▁sep｜>` (V3.1) or after the name
//!   line (V3), with a leading code-fence line (```` ```json ````, in either
//!   format) skipped and surrounding whitespace and the closing fence's
//!   backticks trimmed, up to `<｜tool▁call▁end｜>`. A call missing that
//!   marker ends at `<｜tool▁calls▁end｜>`, at the next
//!   `<｜tool▁call▁begin｜>`, or at the end of the text (the V3 template quirk
//!   that leaves a single call unclosed). Arguments must parse as a JSON
//!   *object* (`serde_json`); they are returned **as the model wrote them**,
//!   not re-serialized, so that the concatenated streamed fragments equal the
//!   final `arguments`.
//!
//! # Invalid calls
//!
//! Nothing here panics, and a call list is never reported with an invalid
//! call in it. A call that fails a rule above (bad or unknown type, missing
//! `<｜tool▁sep｜>`, bad name, no arguments, arguments that are not a JSON
//! object, text ending inside the call, e.g. cut by `max_tokens`) is dropped
//! from the calls, and its raw text — from `<｜tool▁call▁begin｜>` through its
//! `<｜tool▁call▁end｜>` when present — is appended to `content` verbatim, as
//! vLLM and SGLang do with output they cannot parse; the failure is recorded
//! in [`ParsedOutput::errors`]. Valid calls of the same output are kept.
//! Non-whitespace text inside a section but outside any call ends the section
//! (the text becomes content) and is recorded as
//! [`ToolCallErrorKind::UnexpectedText`].
//!
//! A server finishes with `"tool_calls"` exactly when
//! [`ParsedOutput::has_tool_calls`] is true (and `"stop"` / `"length"`
//! otherwise), so an empty call list never goes out with a `"tool_calls"`
//! finish.
//!
//! # Streaming
//!
//! A call is announced ([`ToolCallDelta::Start`]: index, id, name) as soon as
//! its name is complete and valid; its arguments then stream as
//! [`ToolCallDelta::Arguments`] fragments, holding back only a tail that may
//! be whitespace, fence backticks or the start of a marker. Whether the
//! arguments are valid JSON is known only at the end of the call; if they are
//! not, the parser emits [`ToolCallDelta::Invalid`] for the announced index
//! followed by the call's raw text as [`ToolCallDelta::Content`]. Calls
//! failing before the announcement just stream as content. Indices count
//! announced calls, so a call invalidated after its announcement leaves a
//! gap. Every decision depends on the text only, never on how it was cut:
//! the deltas of any cutting, accumulated, give [`ToolCallParser::output`],
//! which equals [`parse`] of the whole text with the same id seed.
//!
//! ```
//! use jing_tokenizer::tool_calls::{parse, ToolCallFormat};
//!
//! let text = "Let me look.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather\
//!             <｜tool▁sep｜>{\"city\": \"巴黎\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
//! let output = parse(text, ToolCallFormat::V31, 7);
//! assert_eq!(output.content, "Let me look.");
//! assert_eq!(output.tool_calls[0].name, "get_weather");
//! assert_eq!(output.tool_calls[0].arguments, "{\"city\": \"巴黎\"}");
//! assert!(output.tool_calls[0].id.starts_with("call_"));
//! assert!(output.errors.is_empty());
//! ```

mod ids;
mod parser;
mod scan;

pub use ids::ToolCallIds;
pub use parser::ToolCallParser;

use serde_json::{json, Value};

/// Opens a tool-call section.
pub const CALLS_BEGIN: &str = "<｜tool▁calls▁begin｜>";
/// Closes a tool-call section.
pub const CALLS_END: &str = "<｜tool▁calls▁end｜>";
/// Opens one call.
pub const CALL_BEGIN: &str = "<｜tool▁call▁begin｜>";
/// Closes one call.
pub const CALL_END: &str = "<｜tool▁call▁end｜>";
/// Separates the type (V3) or the name (V3.1) from the rest of a call.
pub const SEP: &str = "<｜tool▁sep｜>";

/// Longest accepted V3 type or function name, in bytes. Longer text before
/// `<｜tool▁sep｜>` (or before the end of a V3 name line) makes the call
/// invalid as soon as it is seen, so that a runaway call does not hold back
/// the stream.
pub const MAX_HEADER_BYTES: usize = 256;

/// Which DeepSeek tool-call syntax the model writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolCallFormat {
    /// DeepSeek-V3, V3-0324, R1: ``function<｜tool▁sep｜>NAME\n```json\nARGS\n``` ``.
    V3,
    /// DeepSeek-V3.1 / V3.1-Terminus: `NAME<｜tool▁sep｜>ARGS`.
    V31,
}

/// One valid tool call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolCall {
    /// The index the call was announced with in the stream.
    pub index: usize,
    /// `call_` followed by 24 hex digits, from [`ToolCallIds`].
    pub id: String,
    /// The function name.
    pub name: String,
    /// The arguments: a JSON object, as the model wrote it (trimmed).
    pub arguments: String,
}

impl ToolCall {
    /// The call as an element of an OpenAI `message.tool_calls` array:
    /// `{"id", "type": "function", "function": {"name", "arguments"}}`.
    pub fn to_openai_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "function",
            "function": { "name": self.name, "arguments": self.arguments },
        })
    }
}

/// Why a call was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ToolCallErrorKind {
    /// V3 format: the text before `<｜tool▁sep｜>` is not `function`.
    #[error("unknown tool call type {0:?}, expected \"function\"")]
    UnknownCallType(String),
    /// The name is empty or has whitespace or control characters.
    #[error("invalid function name {0:?}")]
    InvalidName(String),
    /// The type or the name is longer than [`MAX_HEADER_BYTES`].
    #[error("tool call header longer than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLong,
    /// The call ended before `<｜tool▁sep｜>` (or, V3, before the name line
    /// ended).
    #[error("tool call without separator or name line")]
    MissingSeparator,
    /// The call has no argument text.
    #[error("tool call without arguments")]
    MissingArguments,
    /// The arguments are not valid JSON.
    #[error("tool call arguments are not valid JSON: {0}")]
    InvalidJson(String),
    /// The arguments are valid JSON but not an object.
    #[error("tool call arguments are not a JSON object")]
    ArgumentsNotObject,
    /// The text ended inside the call and what was there is not a valid
    /// call (typically cut by `max_tokens`).
    #[error("output ended inside a tool call")]
    Unterminated,
    /// Non-whitespace text inside a tool-call section but outside any call;
    /// the section ends there and the text is content.
    #[error("unexpected text inside the tool-call section")]
    UnexpectedText,
}

/// A rejected call or a stray piece of text in a section.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolCallError {
    /// The index, when the call had been announced before it failed.
    pub index: Option<usize>,
    /// The name, when it had been read.
    pub name: Option<String>,
    /// What was wrong.
    pub kind: ToolCallErrorKind,
}

/// A parsed answer: the text outside the calls and the valid calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ParsedOutput {
    /// The text outside tool-call sections, plus the raw text of invalid
    /// calls, in output order.
    pub content: String,
    /// The valid calls, in output order.
    pub tool_calls: Vec<ToolCall>,
    /// What was rejected, in output order.
    pub errors: Vec<ToolCallError>,
}

impl ParsedOutput {
    /// Whether there is at least one valid call: then, and only then, the
    /// finish reason is `"tool_calls"`.
    pub fn has_tool_calls(&self) -> bool {
        !self.tool_calls.is_empty()
    }

    /// Whether anything was rejected.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// One streaming event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ToolCallDelta {
    /// Answer text (a `content` delta).
    Content(String),
    /// A call begins: the first OpenAI delta of this index.
    Start {
        /// The call's index.
        index: usize,
        /// The call's id.
        id: String,
        /// The function name.
        name: String,
    },
    /// The next piece of a call's arguments; the pieces of an index
    /// concatenate to its [`ToolCall::arguments`]. Never empty.
    Arguments {
        /// The call's index.
        index: usize,
        /// Argument text.
        fragment: String,
    },
    /// An announced call turned out invalid; its raw text follows as
    /// [`ToolCallDelta::Content`]. The server should drop the index from its
    /// own accounting (the client has seen it already).
    Invalid {
        /// The call's index.
        index: usize,
        /// What was wrong.
        error: ToolCallErrorKind,
    },
}

impl ToolCallDelta {
    /// The element of an OpenAI streaming `delta.tool_calls` array for
    /// [`Start`](Self::Start) (`index`, `id`, `type`, `function.name`,
    /// `function.arguments: ""`) and [`Arguments`](Self::Arguments)
    /// (`index`, `function.arguments`); `None` for the others.
    pub fn to_openai_json(&self) -> Option<Value> {
        match self {
            Self::Start { index, id, name } => Some(json!({
                "index": index,
                "id": id,
                "type": "function",
                "function": { "name": name, "arguments": "" },
            })),
            Self::Arguments { index, fragment } => Some(json!({
                "index": index,
                "function": { "arguments": fragment },
            })),
            Self::Content(_) | Self::Invalid { .. } => None,
        }
    }
}

/// Parses a complete answer; ids come from [`ToolCallIds::new`]`(id_seed)`.
///
/// The same as pushing `text` into a [`ToolCallParser`] in any pieces and
/// calling [`finish`](ToolCallParser::finish).
pub fn parse(text: &str, format: ToolCallFormat, id_seed: u64) -> ParsedOutput {
    let mut parser = ToolCallParser::new(format, id_seed);
    parser.push(text);
    parser.finish();
    parser.into_output()
}
