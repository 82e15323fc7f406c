//! `POST /v1/completions` requests: one or more prompts (text or token ids), an optional FIM
//! `suffix`, `echo`, legacy integer `logprobs`, and the shared [`GenerationParams`].

use serde_json::{Map, Value};

use super::fields::{index, kind, Fields};
use super::params::{self, GenerationParams};
use crate::config::Limits;
use crate::errors::ApiError;

/// One prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptInput {
    Text(String),
    Ids(Vec<u32>),
}

/// A checked completion request.
#[derive(Clone, Debug)]
pub struct CompletionRequest {
    pub model: String,
    pub prompts: Vec<PromptInput>,
    /// The text after the hole (fill in the middle).
    pub suffix: Option<String>,
    /// Prepend the prompt text to each choice's text.
    pub echo: bool,
    pub params: GenerationParams,
    /// Legacy `logprobs`: the number of alternatives per token.
    pub logprobs: Option<usize>,
}

/// Read and check a completion request body; `vocab` bounds token ids.
pub fn parse(
    body: &Map<String, Value>,
    limits: &Limits,
    vocab: usize,
) -> Result<CompletionRequest, ApiError> {
    let f = Fields::new(body, "");
    let model = f.required_string("model")?.to_string();
    let prompts = prompts(&f, vocab)?;
    let params = params::parse(&f, limits, vocab)?;
    if prompts.len() * params.n > limits.max_n {
        return Err(ApiError::invalid(
            "n",
            format!(
                "{} prompts with n = {} ask for {} choices; this server gives at most {} per request.",
                prompts.len(),
                params.n,
                prompts.len() * params.n,
                limits.max_n
            ),
        ));
    }
    if let Some(best_of) = f.integer("best_of", 1, limits.max_n as i64)? {
        if best_of as usize != params.n {
            return Err(ApiError::invalid(
                "best_of",
                "`best_of` other than `n` is not supported: ask for `n` choices and pick one.",
            ));
        }
    }
    let suffix = f.string("suffix")?.map(str::to_string);
    if suffix.is_some() && prompts.iter().any(|p| matches!(p, PromptInput::Ids(_))) {
        return Err(ApiError::invalid(
            "suffix",
            "`suffix` (fill in the middle) needs a text prompt, not token ids.",
        ));
    }
    let echo = f.boolean("echo")?.unwrap_or(false);
    let logprobs = f
        .integer("logprobs", 0, limits.max_completion_logprobs as i64)?
        .map(|k| k as usize);
    if echo && logprobs.is_some() {
        return Err(ApiError::invalid(
            "echo",
            "`echo` with `logprobs` would need the prompt's log-probabilities, which this server does not compute.",
        ));
    }
    if echo && suffix.is_some() {
        return Err(ApiError::invalid(
            "echo",
            "`echo` cannot be combined with `suffix`.",
        ));
    }
    Ok(CompletionRequest {
        model,
        prompts,
        suffix,
        echo,
        params,
        logprobs,
    })
}

/// `prompt`: a string, an array of strings, an array of token ids, or an array of such arrays.
fn prompts(f: &Fields, vocab: usize) -> Result<Vec<PromptInput>, ApiError> {
    let v = f.get("prompt").ok_or_else(|| {
        ApiError::invalid(
            "prompt",
            "`prompt` is required: a string, an array of strings or an array of token ids.",
        )
    })?;
    let ids = |items: &[Value], path: &str| -> Result<Vec<u32>, ApiError> {
        if items.is_empty() {
            return Err(ApiError::invalid(path, format!("`{path}` is empty.")));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_u64()
                    .filter(|&id| id < vocab as u64)
                    .map(|id| id as u32)
                    .ok_or_else(|| {
                        let p = index(path, i);
                        ApiError::invalid(
                            p.clone(),
                            format!(
                                "`{p}` must be a token id between 0 and {}, got {}.",
                                vocab.saturating_sub(1),
                                if x.is_number() {
                                    x.to_string()
                                } else {
                                    kind(x).to_string()
                                }
                            ),
                        )
                    })
            })
            .collect()
    };
    let out = match v {
        Value::String(s) => vec![PromptInput::Text(s.clone())],
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::invalid("prompt", "`prompt` is empty."))
        }
        Value::Array(items) if items.iter().all(Value::is_number) => {
            vec![PromptInput::Ids(ids(items, "prompt")?)]
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(PromptInput::Text(s.clone())),
                Value::Array(inner) => Ok(PromptInput::Ids(ids(inner, &index("prompt", i))?)),
                other => Err(ApiError::invalid(
                    index("prompt", i),
                    format!(
                        "`prompt[{i}]` must be a string or an array of token ids, got {}.",
                        kind(other)
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(ApiError::invalid(
                "prompt",
                format!(
                "`prompt` must be a string, an array of strings or an array of token ids, got {}.",
                kind(other)
            ),
            ))
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn completion(v: Value) -> Result<CompletionRequest, ApiError> {
        let Value::Object(m) = v else { unreachable!() };
        parse(&m, &Limits::default(), 100)
    }

    #[test]
    fn every_prompt_shape_is_read() {
        let r = completion(json!({"model": "m", "prompt": "hi"})).unwrap();
        assert_eq!(r.prompts, vec![PromptInput::Text("hi".into())]);
        let r = completion(json!({"model": "m", "prompt": [1, 2]})).unwrap();
        assert_eq!(r.prompts, vec![PromptInput::Ids(vec![1, 2])]);
        let r = completion(json!({"model": "m", "prompt": ["a", [3]], "n": 2})).unwrap();
        assert_eq!(
            r.prompts,
            vec![PromptInput::Text("a".into()), PromptInput::Ids(vec![3])]
        );
    }

    #[test]
    fn bad_prompts_and_options_name_the_field() {
        for (body, param) in [
            (json!({"model": "m"}), "prompt"),
            (json!({"model": "m", "prompt": []}), "prompt"),
            (json!({"model": "m", "prompt": [1, 100]}), "prompt[1]"),
            (json!({"model": "m", "prompt": [[1], [-1]]}), "prompt[1][0]"),
            (json!({"model": "m", "prompt": [1, "a"]}), "prompt[0]"),
            (
                json!({"model": "m", "prompt": "a", "logprobs": 6}),
                "logprobs",
            ),
            (
                json!({"model": "m", "prompt": "a", "best_of": 3}),
                "best_of",
            ),
            (
                json!({"model": "m", "prompt": [7], "suffix": "x"}),
                "suffix",
            ),
            (
                json!({"model": "m", "prompt": ["a", "b", "c"], "n": 6}),
                "n",
            ),
        ] {
            let e = completion(body.clone()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }
}
