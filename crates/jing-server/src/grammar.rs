//! Output constraints: `response_format` (`json_object`, `json_schema`) and forced tool calls
//! (`tool_choice: "required"` or a named function) are enforced by constrained decoding
//! (jing-grammar, on llguidance): a [`TokenConstraint`] the engine applies to every sampled
//! token. This is the one place that maps a request to its constraint; each choice gets its
//! own (constraints carry state). The model's [`Grammars`] (its token trie) is built once, when
//! the model is installed.
//!
//! - When the prompt forced reasoning (R1-style templates), the constraint starts after
//!   `</think>`: the model thinks freely, then answers in the required form.
//! - Tool calls are forced in the syntax the model's template writes
//!   ([`crate::model::tool_call_format`]), so the streaming parser reads them back as usual,
//!   with single-line arguments as DeepSeek models write them. JSON answers may have bounded
//!   whitespace.
//! - A schema or tool list the compiler cannot handle is a 400 naming the place and the
//!   keyword; a failure of jing itself is a 500.

use jing_engine::TokenConstraint;
use jing_grammar::{GrammarError, GrammarOptions, Grammars, JsonWhitespace, ToolChoice as Forced};
use jing_tokenizer::reasoning::{ReasoningMode, THINK_END};

use crate::errors::ApiError;
use crate::model::Model;
use crate::types::chat::{ChatRequest, ResponseFormat, ToolChoice};

/// The model's constraint factory, or why there is none.
pub type ModelGrammars = Result<Grammars, String>;

/// Build the constraint factory of a model (once, at install).
pub fn build(tokenizer: &jing_tokenizer::Tokenizer, stop_ids: &[u32]) -> ModelGrammars {
    Grammars::new(tokenizer, stop_ids).map_err(|e| e.to_string())
}

/// The constraint for one choice of `req`, or `None` when the output is free text.
pub fn chat_constraint(
    model: &Model,
    req: &ChatRequest,
    reasoning: ReasoningMode,
) -> Result<Option<Box<dyn TokenConstraint>>, ApiError> {
    let forced = match &req.tool_choice {
        ToolChoice::Required => Some(Forced::Required),
        ToolChoice::Function(name) => Some(Forced::Named(name.clone())),
        ToolChoice::None | ToolChoice::Auto => None,
    };
    if forced.is_none() && req.response_format == ResponseFormat::Text {
        return Ok(None);
    }
    let param = if forced.is_some() {
        "tool_choice"
    } else {
        "response_format"
    };
    let grammars = model.grammars.as_ref().map_err(|why| {
        ApiError::invalid(
            param,
            format!(
                "This model cannot constrain its output ({why}), so `{param}` is not supported."
            ),
        )
    })?;
    let mut opts = GrammarOptions::default();
    if reasoning == ReasoningMode::Forced {
        opts = opts.with_reasoning_end(THINK_END);
    }
    let built = match (forced, &req.response_format) {
        // Arguments as DeepSeek models write them (`json.dumps` style, one line): what they
        // were trained on, and no room to spin on whitespace.
        (Some(choice), _) => grammars.tool_calls(
            req.tools.as_deref().unwrap_or_default(),
            &choice,
            model.tool_call_format,
            &opts.with_json_whitespace(JsonWhitespace::SingleLine),
        ),
        (None, ResponseFormat::JsonObject) => grammars.json_object(&opts),
        (None, ResponseFormat::JsonSchema { schema, .. }) => grammars.json_schema(schema, &opts),
        (None, ResponseFormat::Text) => return Ok(None),
    };
    built.map(Some).map_err(|e| grammar_error(e, param))
}

fn grammar_error(e: GrammarError, param: &str) -> ApiError {
    if !e.is_request_error() {
        return ApiError::server_error(format!("Preparing the output constraint failed: {e}"));
    }
    let param = match &e {
        GrammarError::Schema { location, .. } => location.clone(),
        GrammarError::InvalidTools(_) => "tools".to_string(),
        _ => param.to_string(),
    };
    ApiError::invalid(param, format!("{e}"))
}
