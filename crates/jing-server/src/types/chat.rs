//! `POST /v1/chat/completions` requests: the messages, normalized into the shape chat templates
//! expect, the tools and how they may be used, the output format, and the shared
//! [`GenerationParams`].
//!
//! Messages are rebuilt from the fields we know, never passed through: a template sees `role`,
//! `content` (a string, or `null` on an assistant turn with tool calls), `name`, `tool_calls`
//! (with `arguments` as a JSON string) and `tool_call_id`, nothing else. An earlier assistant
//! turn's `reasoning_content` (or `reasoning`, `thinking`) is accepted and dropped, and so is a
//! `<think>…</think>` block in its content: a DeepSeek model never sees its old chains of
//! thought (DeepSeek's current behaviour).

use jing_tokenizer::reasoning::THINK_END;
use serde_json::{Map, Value};

use super::fields::{index, join, kind, Fields};
use super::params::{self, GenerationParams};
use crate::config::Limits;
use crate::errors::{quote, ApiError};

/// How the model may use the tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// No tool calls: the output is plain text.
    None,
    /// The model decides.
    Auto,
    /// At least one call (enforced by constrained decoding).
    Required,
    /// Exactly this function (enforced by constrained decoding).
    Function(String),
}

/// `response_format`.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid against `schema`.
    JsonSchema {
        name: String,
        schema: Value,
        strict: bool,
    },
}

/// A checked chat request.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub model: String,
    /// Messages in the shape chat templates read.
    pub messages: Vec<Value>,
    /// The last message is an assistant message to continue (DeepSeek's `prefix: true`).
    pub prefix: bool,
    /// OpenAI `tools` (each `{"type":"function","function":{...}}`).
    pub tools: Option<Vec<Value>>,
    pub tool_choice: ToolChoice,
    pub response_format: ResponseFormat,
    pub params: GenerationParams,
    /// `Some(top_logprobs)` when `logprobs` is true.
    pub logprobs: Option<usize>,
}

/// The request's `model`, read first so that an unknown model is reported before anything
/// else.
pub fn model_name<'a>(f: &Fields<'a, '_>) -> Result<&'a str, ApiError> {
    f.required_string("model")
}

/// Read and check a chat request body.
pub fn parse(
    body: &Map<String, Value>,
    limits: &Limits,
    vocab: usize,
) -> Result<ChatRequest, ApiError> {
    let f = Fields::new(body, "");
    let model = model_name(&f)?.to_string();
    let raw = f.array("messages")?.ok_or_else(|| {
        ApiError::invalid(
            "messages",
            "`messages` is required: an array with at least one message.",
        )
    })?;
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must contain at least one message.",
        ));
    }
    if raw.len() > limits.max_messages {
        return Err(ApiError::invalid(
            "messages",
            format!(
                "`messages` has {} messages; this server accepts at most {}.",
                raw.len(),
                limits.max_messages
            ),
        ));
    }
    let mut messages = Vec::with_capacity(raw.len());
    let mut prefix = false;
    for (i, m) in raw.iter().enumerate() {
        let path = index("messages", i);
        let (msg, is_prefix) = message(m, &path)?;
        if is_prefix {
            if i + 1 != raw.len() || msg.get("role") != Some(&Value::from("assistant")) {
                return Err(ApiError::invalid(
                    join(&path, "prefix"),
                    "`prefix: true` goes on the last message, which must be an assistant message to continue.",
                ));
            }
            prefix = true;
        }
        messages.push(Value::Object(msg));
    }
    let tools = tools(&f, limits)?;
    let tool_choice = tool_choice(&f, tools.as_deref())?;
    let response_format = response_format(&f, limits)?;
    if tool_choice_needs_grammar(&tool_choice) && response_format != ResponseFormat::Text {
        return Err(ApiError::invalid(
            "response_format",
            "`response_format` cannot be combined with `tool_choice` \"required\" or a named function: the output is a tool call.",
        ));
    }
    let params = params::parse(&f, limits, vocab)?;
    let logprobs = match f.boolean("logprobs")? {
        Some(true) => Some(
            f.integer("top_logprobs", 0, limits.max_top_logprobs as i64)?
                .unwrap_or(0) as usize,
        ),
        _ => {
            if f.integer("top_logprobs", 0, limits.max_top_logprobs as i64)?
                .is_some_and(|k| k > 0)
            {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    "`top_logprobs` needs `logprobs: true`.",
                ));
            }
            None
        }
    };
    Ok(ChatRequest {
        model,
        messages,
        prefix,
        tools,
        tool_choice,
        response_format,
        params,
        logprobs,
    })
}

/// Whether the tool choice forces a call (which only constrained decoding can guarantee).
pub fn tool_choice_needs_grammar(c: &ToolChoice) -> bool {
    matches!(c, ToolChoice::Required | ToolChoice::Function(_))
}

/// One message, normalized; and whether it carries `prefix: true`.
fn message(m: &Value, path: &str) -> Result<(Map<String, Value>, bool), ApiError> {
    let Value::Object(map) = m else {
        return Err(ApiError::invalid(
            path,
            format!("`{path}` must be an object, got {}.", kind(m)),
        ));
    };
    let f = Fields::new(map, path);
    let role = f.required_string("role")?;
    let role = match role {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        "tool" | "function" => "tool",
        other => {
            return Err(ApiError::invalid(
                f.path("role"),
                format!(
                    "`{}` must be one of system, developer, user, assistant, tool; got {}.",
                    f.path("role"),
                    quote(other)
                ),
            ))
        }
    };
    let mut out = Map::new();
    out.insert("role".into(), Value::from(role));
    let content = content(&f, role)?;
    if let Some(name) = f.string("name")? {
        out.insert("name".into(), Value::from(name));
    }
    let mut has_calls = false;
    if role == "assistant" {
        if let Some(calls) = f.array("tool_calls")? {
            let mut list = Vec::with_capacity(calls.len());
            for (j, call) in calls.iter().enumerate() {
                list.push(tool_call(call, &index(&f.path("tool_calls"), j))?);
            }
            has_calls = !list.is_empty();
            if has_calls {
                out.insert("tool_calls".into(), Value::Array(list));
            }
        }
    }
    if role == "tool" {
        if let Some(id) = f.string("tool_call_id")? {
            out.insert("tool_call_id".into(), Value::from(id));
        }
    }
    let prefix = f.boolean("prefix")?.unwrap_or(false);
    // An earlier answer's chain of thought written into its content is dropped too (R1's
    // template does so in most branches, not after a tool result); a prefix being continued
    // is kept whole.
    let content = match content {
        Some(text) if role == "assistant" && !prefix && text.contains(THINK_END) => {
            Some(text.rsplit(THINK_END).next().unwrap_or("").to_string())
        }
        other => other,
    };
    match content {
        Some(text) => {
            out.insert("content".into(), Value::String(text));
        }
        // An assistant turn may be only tool calls; templates test `content is none` for it.
        None if role == "assistant" && has_calls => {
            out.insert("content".into(), Value::Null);
        }
        None if role == "assistant" => {
            out.insert("content".into(), Value::from(""));
        }
        None => {
            let p = f.path("content");
            return Err(ApiError::invalid(
                p.clone(),
                format!("`{p}` is required for a {role} message."),
            ));
        }
    }
    // `reasoning_content`, `reasoning` and `thinking` are accepted and dropped (see the module
    // documentation); any other field is ignored.
    Ok((out, prefix))
}

/// A message's text: a string, or the text parts of an array joined. `None` when absent.
fn content(f: &Fields, role: &str) -> Result<Option<String>, ApiError> {
    let path = f.path("content");
    match f.get("content") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let ppath = index(&path, j);
                let Value::Object(pm) = part else {
                    return Err(ApiError::invalid(
                        ppath.clone(),
                        format!(
                            "`{ppath}` must be a content part object, got {}.",
                            kind(part)
                        ),
                    ));
                };
                let pf = Fields::new(pm, &ppath);
                match pf.required_string("type")? {
                    "text" => text.push_str(pf.required_string("text")?),
                    "refusal" if role == "assistant" => {
                        text.push_str(pf.required_string("refusal")?)
                    }
                    t @ ("image_url" | "input_audio" | "file" | "image" | "audio") => {
                        return Err(ApiError::invalid(
                            ppath,
                            format!(
                                "{t} content is not supported by this model: it reads text only."
                            ),
                        ))
                    }
                    other => {
                        return Err(ApiError::invalid(
                            pf.path("type"),
                            format!(
                            "`{}` {} is not a content part type this server knows (use \"text\").",
                            pf.path("type"),
                            quote(other)
                        ),
                        ))
                    }
                }
            }
            Ok(Some(text))
        }
        Some(v) => Err(ApiError::invalid(
            path.clone(),
            format!(
                "`{path}` must be a string or an array of content parts, got {}.",
                kind(v)
            ),
        )),
    }
}

/// An earlier assistant tool call: `{id, type: "function", function: {name, arguments}}`, with
/// `arguments` made a JSON string if a client sent an object.
fn tool_call(call: &Value, path: &str) -> Result<Value, ApiError> {
    let Value::Object(map) = call else {
        return Err(ApiError::invalid(
            path,
            format!("`{path}` must be an object, got {}.", kind(call)),
        ));
    };
    let f = Fields::new(map, path);
    let fpath = f.path("function");
    let func = f
        .object("function")?
        .ok_or_else(|| ApiError::invalid(fpath.clone(), format!("`{fpath}` is required.")))?;
    let ff = Fields::new(func, &fpath);
    let name = ff.required_string("name")?;
    let arguments = match ff.get("arguments") {
        None => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(v) => {
            let p = ff.path("arguments");
            return Err(ApiError::invalid(
                p.clone(),
                format!("`{p}` must be a JSON string, got {}.", kind(v)),
            ));
        }
    };
    let mut function = Map::new();
    function.insert("name".into(), Value::from(name));
    function.insert("arguments".into(), Value::from(arguments));
    let mut out = Map::new();
    if let Some(id) = f.string("id")? {
        out.insert("id".into(), Value::from(id));
    }
    out.insert("type".into(), Value::from("function"));
    out.insert("function".into(), Value::Object(function));
    Ok(Value::Object(out))
}

/// Whether `name` is a valid function name (OpenAI: `^[a-zA-Z0-9_-]{1,64}$`; dots are allowed
/// too, as some clients namespace their tools).
fn valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn tools(f: &Fields, limits: &Limits) -> Result<Option<Vec<Value>>, ApiError> {
    let Some(list) = f.array("tools")? else {
        return Ok(None);
    };
    if list.len() > limits.max_tools {
        return Err(ApiError::invalid(
            "tools",
            format!(
                "`tools` has {} tools; this server accepts at most {}.",
                list.len(),
                limits.max_tools
            ),
        ));
    }
    let size = serde_json::to_string(list).map(|s| s.len()).unwrap_or(0);
    if size > limits.max_schema_bytes {
        return Err(ApiError::invalid(
            "tools",
            format!(
                "`tools` is {size} bytes of JSON; this server accepts at most {}.",
                limits.max_schema_bytes
            ),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, tool) in list.iter().enumerate() {
        let path = index("tools", i);
        let Value::Object(map) = tool else {
            return Err(ApiError::invalid(
                path.clone(),
                format!("`{path}` must be an object, got {}.", kind(tool)),
            ));
        };
        let t = Fields::new(map, &path);
        match t.string("type")? {
            Some("function") | None => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    t.path("type"),
                    format!(
                        "`{}` must be \"function\", got {}.",
                        t.path("type"),
                        quote(other)
                    ),
                ))
            }
        }
        let fpath = t.path("function");
        let func = t
            .object("function")?
            .ok_or_else(|| ApiError::invalid(fpath.clone(), format!("`{fpath}` is required.")))?;
        let ff = Fields::new(func, &fpath);
        let name = ff.required_string("name")?;
        if !valid_function_name(name) {
            return Err(ApiError::invalid(
                ff.path("name"),
                format!(
                    "`{}` {} must be 1 to 64 letters, digits, '_', '-' or '.'.",
                    ff.path("name"),
                    quote(name)
                ),
            ));
        }
        if !names.insert(name) {
            return Err(ApiError::invalid(
                ff.path("name"),
                format!("Two tools are named {}: names must be unique.", quote(name)),
            ));
        }
        ff.string("description")?;
        ff.object("parameters")?;
        ff.boolean("strict")?;
    }
    Ok(Some(list.clone()))
}

fn tool_choice(f: &Fields, tools: Option<&[Value]>) -> Result<ToolChoice, ApiError> {
    let has_tools = tools.is_some_and(|t| !t.is_empty());
    let choice = match f.get("tool_choice") {
        None => {
            return Ok(if has_tools {
                ToolChoice::Auto
            } else {
                ToolChoice::None
            })
        }
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    format!(
                        "`tool_choice` must be \"none\", \"auto\", \"required\" or {{\"type\":\"function\",\"function\":{{\"name\":...}}}}, got {}.",
                        quote(other)
                    ),
                ))
            }
        },
        Some(Value::Object(map)) => {
            let t = Fields::new(map, "tool_choice");
            let fpath = t.path("function");
            let func = t.object("function")?.ok_or_else(|| {
                ApiError::invalid(fpath.clone(), format!("`{fpath}` is required."))
            })?;
            ToolChoice::Function(Fields::new(func, &fpath).required_string("name")?.to_string())
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "tool_choice",
                format!("`tool_choice` must be a string or an object, got {}.", kind(v)),
            ))
        }
    };
    match &choice {
        // DeepSeek's own sample sends `tool_choice: "none"` with `tools: null`.
        ToolChoice::None => {}
        ToolChoice::Auto if !has_tools => return Ok(ToolChoice::None),
        ToolChoice::Auto => {}
        ToolChoice::Required if !has_tools => {
            return Err(ApiError::invalid(
                "tool_choice",
                "`tool_choice` \"required\" needs at least one tool in `tools`.",
            ))
        }
        ToolChoice::Required => {}
        ToolChoice::Function(name) => {
            let known = tools.unwrap_or_default().iter().any(|t| {
                t.pointer("/function/name").and_then(Value::as_str) == Some(name.as_str())
            });
            if !known {
                return Err(ApiError::invalid(
                    "tool_choice",
                    format!(
                        "`tool_choice` names the function {}, which is not in `tools`.",
                        quote(name)
                    ),
                ));
            }
        }
    }
    Ok(choice)
}

fn response_format(f: &Fields, limits: &Limits) -> Result<ResponseFormat, ApiError> {
    let Some(rf) = f.object("response_format")? else {
        return Ok(ResponseFormat::Text);
    };
    let r = Fields::new(rf, "response_format");
    match r.required_string("type")? {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let spath = r.path("json_schema");
            let js = r.object("json_schema")?.ok_or_else(|| {
                ApiError::invalid(
                    spath.clone(),
                    format!("`{spath}` is required for type \"json_schema\"."),
                )
            })?;
            let s = Fields::new(js, &spath);
            let name = s.string("name")?.unwrap_or("response").to_string();
            let strict = s.boolean("strict")?.unwrap_or(false);
            let schema = match s.get("schema") {
                None => Value::Object(Map::new()),
                Some(v @ Value::Object(_)) => v.clone(),
                Some(Value::Bool(true)) => Value::Object(Map::new()),
                Some(v) => {
                    return Err(ApiError::invalid(
                        s.path("schema"),
                        format!("`{}` must be a JSON Schema object, got {}.", s.path("schema"), kind(v)),
                    ))
                }
            };
            let size = schema.to_string().len();
            if size > limits.max_schema_bytes {
                return Err(ApiError::invalid(
                    s.path("schema"),
                    format!(
                        "The schema is {size} bytes of JSON; this server accepts at most {}.",
                        limits.max_schema_bytes
                    ),
                ));
            }
            Ok(ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            })
        }
        other => Err(ApiError::invalid(
            r.path("type"),
            format!(
                "`response_format.type` must be \"text\", \"json_object\" or \"json_schema\", got {}.",
                quote(other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(v: Value) -> Result<ChatRequest, ApiError> {
        let Value::Object(m) = v else { unreachable!() };
        parse(&m, &Limits::default(), 1000)
    }

    #[test]
    fn messages_are_rebuilt_from_known_fields_and_reasoning_is_dropped() {
        let r = chat(json!({"model": "m", "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}]},
            {"role": "user", "content": "hi", "extra": 1},
            {"role": "assistant", "content": null, "reasoning_content": "secret",
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            {"role": "assistant", "content": "<think>hmm</think>\n\nIt is 42."},
        ]}))
        .unwrap();
        assert_eq!(
            r.messages[0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(r.messages[1], json!({"role": "user", "content": "hi"}));
        assert_eq!(
            r.messages[2],
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]})
        );
        assert_eq!(
            r.messages[3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "42"})
        );
        assert_eq!(
            r.messages[4],
            json!({"role": "assistant", "content": "\n\nIt is 42."})
        );
        assert!(!r.prefix);
        assert_eq!(r.tool_choice, ToolChoice::None);
    }

    #[test]
    fn bad_messages_name_the_offending_field() {
        for (body, param) in [
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": []}), "messages"),
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (
                json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user"}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
                "messages[0].content[0]",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x", "prefix": true}]}),
                "messages[0].prefix",
            ),
            (
                json!({"model": "m", "messages": [{"role": "assistant", "content": "x", "prefix": true}, {"role": "user", "content": "y"}]}),
                "messages[0].prefix",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}),
                "top_logprobs",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}),
                "response_format.type",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "a b"}}]}),
                "tools[0].function.name",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                "tool_choice",
            ),
        ] {
            let e = chat(body.clone()).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }

    #[test]
    fn tool_choice_none_without_tools_and_a_prefix_message_are_accepted() {
        let r = chat(json!({"model": "m", "tools": null, "tool_choice": "none",
            "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "```py\n", "prefix": true}],
            "logprobs": true, "top_logprobs": 2}))
        .unwrap();
        assert!(r.prefix);
        assert_eq!(r.tool_choice, ToolChoice::None);
        assert_eq!(r.logprobs, Some(2));
        let r = chat(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}))
        .unwrap();
        assert_eq!(r.tool_choice, ToolChoice::Auto);
    }
}
