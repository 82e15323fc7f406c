//! From a request to prompt token ids.
//!
//! Chat: the conversation is rendered with the model's chat template the way vLLM and
//! transformers 4 do (`null` fields kept, so DeepSeek templates render tool-call turns), then
//! encoded *without* special tokens: the template writes BOS itself, so it appears once. The
//! rendered prompt also says how the output starts: R1-style templates end the generation
//! prompt with `<think>\n`, so the model is inside its reasoning from the first token
//! ([`ReasoningMode::Forced`]); otherwise it may open one itself ([`ReasoningMode::Optional`]).
//!
//! DeepSeek's chat prefix completion (`prefix: true` on a last assistant message) renders the
//! conversation with that message and cuts the prompt right after its text, so the model
//! continues it instead of starting a new turn; the continuation is plain answer text.
//!
//! Text completions encode the prompt with the tokenizer's special tokens (BOS as the
//! tokenizer adds it); FIM builds DeepSeek's `<｜fim▁begin｜>prefix<｜fim▁hole｜>suffix
//! <｜fim▁end｜>` prompt when the vocabulary has those tokens.

use jing_tokenizer::reasoning::{ReasoningMode, THINK_START};
use jing_tokenizer::template::{RenderOptions, TemplateError};
use serde_json::Value;

use crate::errors::ApiError;
use crate::model::Model;
use crate::types::chat::ChatRequest;
use crate::types::completion::PromptInput;

/// A tokenized prompt.
#[derive(Clone, Debug)]
pub struct Prompt {
    pub ids: Vec<u32>,
    /// How the output starts (chat); `Disabled` for text completions.
    pub reasoning: ReasoningMode,
    /// The prompt text, when known (for `echo` and `--log-requests`).
    pub text: Option<String>,
}

/// Marks where a prefix message's text ends in the rendered prompt. Private-use characters
/// that no client text is expected to contain (a message that does is refused).
const PREFIX_END: &str = "\u{F8FF}jing-prefix-end\u{F8FF}";

/// The reasoning mode a rendered chat prompt implies (see the module documentation).
pub fn reasoning_mode(prompt: &str) -> ReasoningMode {
    if prompt.trim_end().ends_with(THINK_START) {
        ReasoningMode::Forced
    } else {
        ReasoningMode::Optional
    }
}

fn template_error(e: TemplateError) -> ApiError {
    match e {
        TemplateError::Raised { message } => ApiError::invalid(
            "messages",
            format!("The model's chat template rejected the conversation: {message}"),
        ),
        TemplateError::OutOfFuel { .. }
        | TemplateError::RecursionLimit { .. }
        | TemplateError::OutputTooLarge { .. } => ApiError::invalid(
            "messages",
            format!("The conversation is too large for the chat template's limits: {e}"),
        ),
        TemplateError::InvalidInput(msg) => ApiError::invalid("messages", msg),
        other => ApiError::invalid(
            "messages",
            format!(
                "The conversation could not be rendered with the model's chat template: {other}"
            ),
        ),
    }
}

/// Render and tokenize a chat request.
pub fn chat(model: &Model, req: &ChatRequest) -> Result<Prompt, ApiError> {
    let template = model.template.as_ref().ok_or_else(|| {
        ApiError::bad_request(
            "This model has no chat template, so it cannot serve chat completions: use /v1/completions, or start the server with a model folder that has one.",
        )
    })?;
    let mut opts = RenderOptions::default()
        .with_keep_null_fields(true)
        .with_generation_prompt(!req.prefix);
    if let Some(tools) = &req.tools {
        opts = opts.with_tools(tools.clone());
    }
    let text = if req.prefix {
        let mut messages = req.messages.clone();
        let last = messages
            .last_mut()
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("The prefix message is missing."))?;
        let content = last
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if content.contains(PREFIX_END) {
            return Err(ApiError::invalid(
                "messages",
                "The prefix message contains a reserved character sequence.",
            ));
        }
        last.insert(
            "content".into(),
            Value::from(format!("{content}{PREFIX_END}")),
        );
        let rendered = template.render(&messages, &opts).map_err(template_error)?;
        match rendered.rfind(PREFIX_END) {
            Some(at) => rendered[..at].to_string(),
            None => {
                return Err(ApiError::invalid(
                    "messages",
                    "The model's chat template does not render the assistant prefix message, so prefix completion is not possible with it.",
                ))
            }
        }
    } else {
        template
            .render(&req.messages, &opts)
            .map_err(template_error)?
    };
    let ids = model
        .tokenizer
        .encode(&text, false)
        .map_err(|e| ApiError::server_error(format!("The prompt could not be tokenized: {e}")))?;
    let reasoning = if req.prefix {
        ReasoningMode::Disabled
    } else {
        reasoning_mode(&text)
    };
    Ok(Prompt {
        ids,
        reasoning,
        text: Some(text),
    })
}

/// Tokenize one text-completion prompt (with an optional FIM suffix).
pub fn completion(
    model: &Model,
    input: &PromptInput,
    suffix: Option<&str>,
) -> Result<Prompt, ApiError> {
    let tok = &model.tokenizer;
    let encode_err = |e: jing_tokenizer::TokenizerError| {
        ApiError::server_error(format!("The prompt could not be tokenized: {e}"))
    };
    let (ids, text) = match (input, suffix) {
        (PromptInput::Ids(ids), _) => (ids.clone(), None),
        (PromptInput::Text(text), None) => {
            let mut ids = tok.encode(text, true).map_err(encode_err)?;
            // As `jing run`: BOS when the tokenizer config asks for it and its post-processor
            // did not add one.
            if let Some(bos) = tok.bos_id() {
                if tok.add_bos_token() && ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
            (ids, Some(text.clone()))
        }
        (PromptInput::Text(text), Some(suffix)) => {
            let [begin, hole, end] = model.fim.as_ref().ok_or_else(|| {
                ApiError::invalid(
                    "suffix",
                    "This model's vocabulary has no fill-in-the-middle tokens (<｜fim▁begin｜>, <｜fim▁hole｜>, <｜fim▁end｜>), so `suffix` is not supported.",
                )
            })?;
            let fim = format!("{begin}{text}{hole}{suffix}{end}");
            let mut ids = tok.encode(&fim, false).map_err(encode_err)?;
            if let Some(bos) = tok.bos_id() {
                ids.insert(0, bos);
            }
            (ids, Some(text.clone()))
        }
    };
    if ids.is_empty() {
        return Err(ApiError::invalid(
            "prompt",
            "The prompt is empty after tokenization: give at least one token.",
        ));
    }
    Ok(Prompt {
        ids,
        reasoning: ReasoningMode::Disabled,
        text,
    })
}
