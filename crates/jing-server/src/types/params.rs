//! The generation parameters chat and text completions share: how many choices, how long, how
//! to sample, where to stop, and how to stream. Ranges are OpenAI's; the caps are the server's
//! [`Limits`].

use serde_json::Value;

use super::fields::{index, kind, Fields};
use crate::config::Limits;
use crate::errors::{quote, ApiError};

/// Checked generation parameters. `None` means "not given": the server's defaults apply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationParams {
    pub n: usize,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<usize>,
    /// The name the request used for it (for error messages).
    pub max_tokens_param: &'static str,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// vLLM's extension; `-1` and `0` mean "all".
    pub top_k: Option<usize>,
    /// vLLM's extension.
    pub min_p: Option<f32>,
    /// vLLM's extension.
    pub repetition_penalty: Option<f32>,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub logit_bias: Vec<(u32, f32)>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    /// vLLM's extension: keep generating past end-of-sequence tokens.
    pub ignore_eos: bool,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

/// Read the shared parameters of a request body. `vocab` bounds `logit_bias` ids.
pub fn parse(f: &Fields, limits: &Limits, vocab: usize) -> Result<GenerationParams, ApiError> {
    let n = f.integer("n", 1, limits.max_n as i64)?.unwrap_or(1) as usize;
    let cap = limits.max_tokens.unwrap_or(u32::MAX as usize) as i64;
    let mct = f.integer("max_completion_tokens", 1, cap)?;
    let mt = f.integer("max_tokens", 1, cap)?;
    // Both names mean the same budget; the newer one wins, as in vLLM and SGLang.
    let (max_tokens, max_tokens_param) = match (mct, mt) {
        (Some(v), _) => (Some(v as usize), "max_completion_tokens"),
        (None, Some(v)) => (Some(v as usize), "max_tokens"),
        (None, None) => (None, "max_tokens"),
    };
    let temperature = f.number("temperature", 0.0, 2.0)?.map(|v| v as f32);
    let top_p = f.number("top_p", 0.0, 1.0)?.map(|v| v as f32);
    if top_p == Some(0.0) {
        return Err(ApiError::invalid(
            "top_p",
            "`top_p` must be greater than 0 and at most 1, got 0.",
        ));
    }
    let top_k = f
        .integer("top_k", -1, u32::MAX as i64)?
        .map(|k| k.max(0) as usize);
    let min_p = f.number("min_p", 0.0, 1.0)?.map(|v| v as f32);
    let repetition_penalty = f.number("repetition_penalty", 0.0, 10.0)?.map(|v| v as f32);
    if repetition_penalty == Some(0.0) {
        return Err(ApiError::invalid(
            "repetition_penalty",
            "`repetition_penalty` must be greater than 0 (1 is off).",
        ));
    }
    let presence_penalty = f.number("presence_penalty", -2.0, 2.0)?.unwrap_or(0.0) as f32;
    let frequency_penalty = f.number("frequency_penalty", -2.0, 2.0)?.unwrap_or(0.0) as f32;
    let seed = match f.get("seed") {
        None => None,
        Some(Value::Number(x)) => match (x.as_i64(), x.as_u64()) {
            // Negative seeds are accepted (OpenAI's type is a signed integer).
            (Some(i), _) => Some(i as u64),
            (None, Some(u)) => Some(u),
            _ => {
                return Err(ApiError::invalid(
                    "seed",
                    format!("`seed` must be an integer, got {x}."),
                ))
            }
        },
        Some(v) => {
            return Err(ApiError::invalid(
                "seed",
                format!("`seed` must be an integer, got {}.", kind(v)),
            ))
        }
    };
    let stream = f.boolean("stream")?.unwrap_or(false);
    let include_usage = match f.object("stream_options")? {
        Some(opts) => Fields::new(opts, "stream_options")
            .boolean("include_usage")?
            .unwrap_or(false),
        None => false,
    };
    Ok(GenerationParams {
        n,
        max_tokens,
        max_tokens_param,
        temperature,
        top_p,
        top_k,
        min_p,
        repetition_penalty,
        presence_penalty,
        frequency_penalty,
        logit_bias: logit_bias(f, limits, vocab)?,
        seed,
        stop: stop(f, limits)?,
        ignore_eos: f.boolean("ignore_eos")?.unwrap_or(false),
        stream,
        include_usage: stream && include_usage,
    })
}

/// `stop`: a string or an array of strings. Empty strings are dropped (they would match
/// everywhere).
fn stop(f: &Fields, limits: &Limits) -> Result<Vec<String>, ApiError> {
    let items: Vec<&Value> = match f.get("stop") {
        None => return Ok(Vec::new()),
        Some(v @ Value::String(_)) => vec![v],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => {
            return Err(ApiError::invalid(
                "stop",
                format!(
                    "`stop` must be a string or an array of strings, got {}.",
                    kind(v)
                ),
            ))
        }
    };
    if items.len() > limits.max_stop {
        return Err(ApiError::invalid(
            "stop",
            format!(
                "`stop` has {} sequences; this server accepts at most {}.",
                items.len(),
                limits.max_stop
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        let Value::String(s) = v else {
            return Err(ApiError::invalid(
                index("stop", i),
                format!("`stop[{i}]` must be a string, got {}.", kind(v)),
            ));
        };
        if s.len() > limits.max_stop_bytes {
            return Err(ApiError::invalid(
                index("stop", i),
                format!(
                    "`stop[{i}]` is {} bytes long; this server accepts at most {}.",
                    s.len(),
                    limits.max_stop_bytes
                ),
            ));
        }
        if !s.is_empty() {
            out.push(s.clone());
        }
    }
    Ok(out)
}

/// `logit_bias`: token id (as a string key) to a bias in [-100, 100].
fn logit_bias(f: &Fields, limits: &Limits, vocab: usize) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(map) = f.object("logit_bias")? else {
        return Ok(Vec::new());
    };
    if map.len() > limits.max_logit_bias {
        return Err(ApiError::invalid(
            "logit_bias",
            format!(
                "`logit_bias` has {} entries; this server accepts at most {}.",
                map.len(),
                limits.max_logit_bias
            ),
        ));
    }
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        let id = key
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&id| (id as usize) < vocab);
        let Some(id) = id else {
            return Err(ApiError::invalid(
                "logit_bias",
                format!(
                    "`logit_bias` key {} is not a token id of this model (0 to {}).",
                    quote(key),
                    vocab.saturating_sub(1)
                ),
            ));
        };
        let bias = value.as_f64().filter(|b| (-100.0..=100.0).contains(b));
        let Some(bias) = bias else {
            return Err(ApiError::invalid(
                "logit_bias",
                format!("`logit_bias[{id}]` must be a number between -100 and 100."),
            ));
        };
        out.push((id, bias as f32));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: Value) -> Result<GenerationParams, ApiError> {
        let Value::Object(m) = v else { unreachable!() };
        parse(&Fields::new(&m, ""), &Limits::default(), 100)
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let p = parse_json(json!({"max_tokens": 5, "max_completion_tokens": 7})).unwrap();
        assert_eq!(
            (p.max_tokens, p.max_tokens_param),
            (Some(7), "max_completion_tokens")
        );
        let p = parse_json(json!({"max_tokens": 5})).unwrap();
        assert_eq!(p.max_tokens, Some(5));
    }

    #[test]
    fn ranges_and_caps_are_enforced_with_the_field_named() {
        for (body, param) in [
            (json!({"temperature": 2.5}), "temperature"),
            (json!({"top_p": 0}), "top_p"),
            (json!({"n": 17}), "n"),
            (json!({"n": 0}), "n"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"presence_penalty": -3}), "presence_penalty"),
            (json!({"stop": ["a", 1]}), "stop[1]"),
            (json!({"stop": vec!["x"; 17]}), "stop"),
            (json!({"stop": "x".repeat(300)}), "stop[0]"),
            (json!({"logit_bias": {"100": 1}}), "logit_bias"),
            (json!({"logit_bias": {"5": 101}}), "logit_bias"),
            (json!({"seed": "x"}), "seed"),
            (json!({"stream": "yes"}), "stream"),
        ] {
            let e = parse_json(body.clone()).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }

    #[test]
    fn nulls_are_defaults_and_usage_needs_a_stream() {
        let p = parse_json(json!({"temperature": null, "stop": null, "n": null,
            "stream_options": {"include_usage": true}}))
        .unwrap();
        assert_eq!(p.n, 1);
        assert!(!p.include_usage);
        let p = parse_json(
            json!({"stream": true, "stream_options": {"include_usage": true},
            "stop": "END", "seed": -1, "logit_bias": {"7": -100}}),
        )
        .unwrap();
        assert!(p.include_usage);
        assert_eq!(p.stop, vec!["END".to_string()]);
        assert_eq!(p.seed, Some(u64::MAX));
        assert_eq!(p.logit_bias, vec![(7, -100.0)]);
    }
}
