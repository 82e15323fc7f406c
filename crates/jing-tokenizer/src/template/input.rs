//! Turning the request's messages, tools and variables into the values a
//! template sees, the way transformers' `apply_chat_template` prepares them.

use minijinja::Value;
use serde_json::{Map, Value as Json};

use super::error::TemplateError;
use super::RenderOptions;

/// The names under which a message's reasoning may arrive; the first is the
/// one chat templates read (transformers' `_REASONING_FIELDS`).
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "thinking", "reasoning"];

/// Template variables the caller may not set through
/// [`RenderOptions::variables`]: [`render`](super::ChatTemplate::render)
/// provides them.
pub(crate) const RESERVED: [&str; 4] = ["messages", "tools", "documents", "add_generation_prompt"];

/// The `messages` value: each message a map, in transformers' shape.
///
/// * Keys whose value is `null` are dropped (transformers >= 5), unless
///   [`RenderOptions::keep_null_fields`] is set.
/// * A message carrying reasoning under any of `reasoning_content`,
///   `thinking` or `reasoning` gets it under both `thinking` (first key) and
///   `reasoning_content` (last key), as transformers' `_alias_reasoning_fields`
///   does.
pub(crate) fn messages(messages: &[Json], opts: &RenderOptions) -> Result<Value, TemplateError> {
    if messages.is_empty() {
        return Err(TemplateError::InvalidInput(
            "cannot apply a chat template to an empty conversation; provide at least one message"
                .to_string(),
        ));
    }
    let mut out = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let Json::Object(map) = message else {
            return Err(TemplateError::InvalidInput(format!(
                "messages[{i}] must be an object, found {}",
                kind(message)
            )));
        };
        out.push(message_value(map, opts.keep_null_fields)?);
    }
    Ok(Value::from(out))
}

fn message_value(map: &Map<String, Json>, keep_null: bool) -> Result<Value, TemplateError> {
    let kept = map.iter().filter(|(_, v)| keep_null || !v.is_null());
    let reasoning = REASONING_FIELDS
        .iter()
        .find_map(|k| map.get(*k).filter(|v| !v.is_null()));
    let mut pairs: Vec<(Value, Value)> = Vec::with_capacity(map.len() + 2);
    if let Some(r) = reasoning {
        pairs.push((Value::from("thinking"), json_value(r)?));
    }
    for (k, v) in kept {
        pairs.push((Value::from(k.as_str()), json_value(v)?));
    }
    if let Some(r) = reasoning {
        pairs.push((Value::from("reasoning_content"), json_value(r)?));
    }
    // A repeated key keeps its first position and takes the last value, as
    // in a Python dict.
    Ok(Value::from_pairs(pairs))
}

/// A list argument (`tools`, `documents`): `None` when not given.
pub(crate) fn list(items: Option<&Vec<Json>>) -> Result<Value, TemplateError> {
    Ok(match items {
        Some(items) => Value::from(
            items
                .iter()
                .map(json_value)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => Value::from(()),
    })
}

/// Deepest JSON nesting accepted in messages, tools and variables
/// (serde_json's parser stops at 128).
const MAX_JSON_DEPTH: usize = 256;

/// A JSON value as a template value (maps keep their key order).
///
/// # Errors
///
/// Nesting deeper than 256 levels.
pub(crate) fn json_value(v: &Json) -> Result<Value, TemplateError> {
    json_value_at(v, 0)
}

fn json_value_at(v: &Json, depth: usize) -> Result<Value, TemplateError> {
    if depth > MAX_JSON_DEPTH {
        return Err(TemplateError::InvalidInput(format!(
            "JSON nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    Ok(match v {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(
            items
                .iter()
                .map(|v| json_value_at(v, depth + 1))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Json::Object(map) => Value::from_pairs(
            map.iter()
                .map(|(k, v)| Ok((Value::from(k.as_str()), json_value_at(v, depth + 1)?)))
                .collect::<Result<Vec<_>, TemplateError>>()?,
        ),
    })
}

/// Checks the caller's extra variables.
pub(crate) fn check_variables(opts: &RenderOptions) -> Result<(), TemplateError> {
    for name in opts.variables.keys() {
        if RESERVED.contains(&name.as_str()) {
            return Err(TemplateError::InvalidInput(format!(
                "template variable {name:?} is set by the renderer and cannot be passed as an \
                 extra variable"
            )));
        }
    }
    Ok(())
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}
