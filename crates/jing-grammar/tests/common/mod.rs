//! Shared test helpers: fixture loading, a random-logits driver for constraints, and a small
//! JSON-schema validator for the keywords the tests use.

#![allow(dead_code)]

use std::path::PathBuf;

use jing_grammar::{GrammarOptions, Grammars, TokenConstraint, ToolCallFormat, ToolChoice};
use jing_tokenizer::tool_calls::{parse, CALLS_END, CALL_END};
use jing_tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use serde_json::Value;

/// Extra logits past the tokenizer's vocabulary, as a model's padded embedding table has.
pub const PADDING: usize = 13;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// The committed tiny DeepSeek-style tokenizer and its grammars.
pub fn tiny() -> (Tokenizer, Grammars) {
    load(&fixture("tokenizer"))
}

pub fn load(dir: &std::path::Path) -> (Tokenizer, Grammars) {
    let tokenizer = Tokenizer::from_model_dir(dir).unwrap_or_else(|e| panic!("{e}"));
    let grammars =
        Grammars::new(&tokenizer, &tokenizer.eos_ids()).unwrap_or_else(|e| panic!("{e}"));
    (tokenizer, grammars)
}

/// The real DeepSeek-V3 tokenizer, from `JING_DEEPSEEK_TOKENIZER_DIR`.
pub fn deepseek_v3() -> (Tokenizer, Grammars) {
    let dir = std::env::var_os("JING_DEEPSEEK_TOKENIZER_DIR")
        .map(PathBuf::from)
        .expect(
            "set JING_DEEPSEEK_TOKENIZER_DIR to a directory holding DeepSeek-V3's tokenizer.json",
        );
    load(&dir)
}

/// Logit offsets added to the random logits, so that random runs finish: closing tokens
/// (those holding `"`, `}` or `]`) and EOS get a push.
pub fn closing_bias(grammars: &Grammars, extra: &[(u32, f32)]) -> Vec<f32> {
    let mut bias = vec![0.0f32; grammars.vocab_size() + PADDING];
    for (id, b) in bias.iter_mut().enumerate().take(grammars.vocab_size()) {
        if let Some(bytes) = grammars.token_bytes(id as u32) {
            if bytes.iter().any(|c| matches!(c, b'"' | b'}' | b']')) {
                *b += 3.0;
            }
        }
    }
    for &eos in grammars.eos_ids() {
        bias[eos as usize] += 4.0;
    }
    for &(id, b) in extra {
        bias[id as usize] += b;
    }
    bias
}

/// What one random run produced.
pub struct Run {
    /// Every committed id, EOS included.
    pub ids: Vec<u32>,
    /// Whether the constraint said it was finished (or an EOS was committed).
    pub finished: bool,
    /// Whether the run ended by committing an EOS.
    pub ended_with_eos: bool,
}

/// Drives `constraint` with seeded random logits (uniform in [-2, 2) plus `bias`) over a
/// model vocabulary [`PADDING`] larger than the tokenizer's, sampling from the masked logits
/// (Gumbel-max, i.e. softmax sampling) until finished or `max_steps`.
///
/// Checks on every step: the mask leaves at least one token, masks every padding id, keeps
/// every allowed logit unchanged, and `commit` accepts the sampled token. `on_mask` sees the
/// ids so far and the masked logits (to check where EOS is allowed).
pub fn drive(
    constraint: &mut dyn TokenConstraint,
    grammars: &Grammars,
    bias: &[f32],
    seed: u64,
    max_steps: usize,
    mut on_mask: impl FnMut(&[u32], &[f32]),
) -> Run {
    let mut rng = StdRng::seed_from_u64(seed);
    let vocab = grammars.vocab_size();
    let mut ids = Vec::new();
    for _ in 0..max_steps {
        if constraint.is_finished() {
            return Run {
                ids,
                finished: true,
                ended_with_eos: false,
            };
        }
        let raw: Vec<f32> = bias
            .iter()
            .map(|b| b + rng.random_range(-2.0f32..2.0))
            .collect();
        let mut logits = raw.clone();
        constraint
            .mask(&mut logits)
            .unwrap_or_else(|e| panic!("mask failed after {ids:?}: {e}"));
        assert!(
            logits[vocab..].iter().all(|l| *l == f32::NEG_INFINITY),
            "a padding id was left unmasked"
        );
        for (masked, raw) in logits.iter().zip(&raw) {
            assert!(
                *masked == f32::NEG_INFINITY || masked == raw,
                "an allowed logit changed"
            );
        }
        on_mask(&ids, &logits);
        let token = sample(&logits, &mut rng);
        assert!(logits[token as usize].is_finite(), "sampled a masked token");
        constraint
            .commit(token)
            .unwrap_or_else(|e| panic!("commit({token}) failed after {ids:?}: {e}"));
        ids.push(token);
        if grammars.eos_ids().contains(&token) {
            assert!(
                constraint.is_finished(),
                "EOS was allowed but did not finish the output"
            );
            return Run {
                ids,
                finished: true,
                ended_with_eos: true,
            };
        }
    }
    Run {
        finished: constraint.is_finished(),
        ids,
        ended_with_eos: false,
    }
}

/// Softmax sampling by Gumbel-max over the finite logits.
fn sample(logits: &[f32], rng: &mut StdRng) -> u32 {
    let mut best = (f32::NEG_INFINITY, 0usize);
    for (id, &l) in logits.iter().enumerate() {
        if l.is_finite() {
            let u: f32 = rng.random_range(1e-7f32..1.0);
            let score = l - (-u.ln()).ln();
            if score > best.0 {
                best = (score, id);
            }
        }
    }
    assert!(best.0.is_finite(), "every token was masked");
    best.1 as u32
}

/// The text of `ids` without a trailing EOS, special tokens kept (as the tool-call parser
/// needs them).
pub fn text(tokenizer: &Tokenizer, grammars: &Grammars, ids: &[u32]) -> String {
    let ids = match ids.split_last() {
        Some((last, rest)) if grammars.eos_ids().contains(last) => rest,
        _ => ids,
    };
    tokenizer.decode(ids, false).unwrap()
}

/// Whether any EOS id survived the mask.
pub fn eos_allowed(grammars: &Grammars, logits: &[f32]) -> bool {
    grammars
        .eos_ids()
        .iter()
        .any(|&id| logits[id as usize].is_finite())
}

/// Checks `value` against `schema` for the keywords these tests use: `type`, `properties`,
/// `required`, `additionalProperties` (boolean), `enum`, `const`, `minimum`, `maximum`,
/// `minLength`, `maxLength`, `items`, `minItems`, `maxItems`, `anyOf`, `$ref` to `#/$defs/..`.
pub fn validate(root: &Value, schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let fail = |what: String| Err(format!("{path}: {what} (value {value})"));
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/$defs/")
            .expect("only #/$defs refs in tests");
        return validate(root, &root["$defs"][name], value, path);
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        if !options
            .iter()
            .any(|o| validate(root, o, value, path).is_ok())
        {
            return fail("matches no anyOf branch".into());
        }
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            // Past 64 bits serde_json reads integers as floats.
            "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            other => panic!("validator does not know type {other}"),
        };
        if !ok {
            return fail(format!("not of type {t}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return fail("not in enum".into());
        }
    }
    if let Some(c) = schema.get("const") {
        if c != value {
            return fail("not the const".into());
        }
    }
    if let Some(n) = value.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            return fail("below minimum".into());
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            return fail("above maximum".into());
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| chars < m)
        {
            return fail("shorter than minLength".into());
        }
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| chars > m)
        {
            return fail("longer than maxLength".into());
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            return fail("fewer than minItems".into());
        }
        if schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            return fail("more than maxItems".into());
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(root, item_schema, item, &format!("{path}[{i}]"))?;
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap();
            if !object.contains_key(key) {
                return fail(format!("missing required {key:?}"));
            }
        }
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => validate(root, property, item, &format!("{path}.{key}"))?,
                None => {
                    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                        return fail(format!("unexpected property {key:?}"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The whitespace runs of a JSON text outside its strings, with the character before each.
pub fn whitespace_outside_strings(json: &str) -> Vec<(Option<char>, String)> {
    let mut runs = Vec::new();
    let (mut in_string, mut escaped) = (false, false);
    let mut previous = None;
    let mut run = String::new();
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            previous = Some(c);
            continue;
        }
        if c.is_whitespace() {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            runs.push((previous, std::mem::take(&mut run)));
        }
        if c == '"' {
            in_string = true;
        }
        previous = Some(c);
    }
    if !run.is_empty() {
        runs.push((previous, run));
    }
    runs
}

/// Every token's bytes, where they are UTF-8, are the tokenizer's decoding of the token.
pub fn check_token_bytes(tokenizer: &Tokenizer, grammars: &Grammars) {
    assert_eq!(grammars.vocab_size(), tokenizer.vocab_size());
    let mut checked = 0;
    for id in 0..tokenizer.vocab_size() as u32 {
        let bytes = grammars
            .token_bytes(id)
            .unwrap_or_else(|| panic!("no bytes for {id}"));
        if let Ok(text) = std::str::from_utf8(bytes) {
            assert_eq!(tokenizer.decode(&[id], false).unwrap(), text, "token {id}");
            checked += 1;
        }
    }
    assert!(checked > tokenizer.vocab_size() / 2);
    // The byte 0xFF, a model token, is not mistaken for llguidance's special-token marker.
    let byte_ff = tokenizer.token_to_id("ÿ").unwrap();
    assert_eq!(grammars.token_bytes(byte_ff), Some(&[0xFF][..]));
    assert_eq!(grammars.token_bytes(tokenizer.vocab_size() as u32), None);
}

/// Example OpenAI tools: a schema with an enum, a non-ASCII name with a schema lacking
/// `type`, and a tool without parameters.
pub fn tools() -> Vec<Value> {
    vec![
        json!({"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "minLength": 1, "maxLength": 10},
                    "unit": {"enum": ["celsius", "fahrenheit"]}
                },
                "required": ["city"],
                "additionalProperties": false
            }
        }}),
        json!({"type": "function", "function": {
            "name": "天气.查询",
            "parameters": {
                "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 7}},
                "required": ["days"],
                "additionalProperties": false
            }
        }}),
        json!({"type": "function", "function": {"name": "ping"}}),
    ]
}

pub fn schema_of(tools: &[Value], name: &str) -> Value {
    let tool = tools
        .iter()
        .find(|t| t["function"]["name"] == name)
        .unwrap_or_else(|| panic!("the model called {name:?}, which is not a tool"));
    let mut schema = tool["function"]
        .get("parameters")
        .cloned()
        .unwrap_or_else(|| json!({}));
    schema["type"] = json!("object");
    schema
}

/// Runs random tool-call generations and checks each finished one with the parser; returns
/// how many calls each finished run made.
pub fn check_runs(
    tokenizer: &Tokenizer,
    grammars: &Grammars,
    choice: &ToolChoice,
    format: ToolCallFormat,
    opts: &GrammarOptions,
    runs: u64,
) -> Vec<usize> {
    let tools = tools();
    let id = |s: &str| tokenizer.token_to_id(s).unwrap();
    // Enough push on the ends that runs finish, not so much that one call is all there is.
    let mut extra = vec![(id(CALL_END), 3.0), (id(CALLS_END), 1.0)];
    if let Some(end) = opts
        .reasoning_end
        .as_deref()
        .and_then(|e| tokenizer.token_to_id(e))
    {
        // About one chance in eight per step to end the reasoning, whatever the vocabulary.
        extra.push((end, (grammars.vocab_size() as f32).ln() - 2.0));
    }
    let bias = closing_bias(grammars, &extra);
    let mut counts = Vec::new();
    for seed in 0..runs {
        let mut constraint = grammars.tool_calls(&tools, choice, format, opts).unwrap();
        let run = drive(
            constraint.as_mut(),
            grammars,
            &bias,
            seed,
            600,
            |_, logits| {
                assert!(
                    !eos_allowed(grammars, logits),
                    "EOS allowed inside tool calls"
                );
            },
        );
        if !run.finished {
            continue;
        }
        assert!(!run.ended_with_eos);
        let out = text(tokenizer, grammars, &run.ids);
        let answer = match &opts.reasoning_end {
            Some(end) => {
                let (reasoning, answer) = out
                    .split_once(end.as_str())
                    .unwrap_or_else(|| panic!("no {end:?} in {out:?}"));
                assert!(
                    !reasoning.contains("<｜"),
                    "markup in the reasoning: {out:?}"
                );
                answer.to_owned()
            }
            None => out.clone(),
        };
        assert!(answer.ends_with(CALLS_END), "{out:?}");
        let parsed = parse(&answer, format, seed);
        assert!(
            parsed.errors.is_empty(),
            "seed {seed}: {out:?}: {:?}",
            parsed.errors
        );
        assert_eq!(parsed.content.trim(), "", "seed {seed}: content in {out:?}");
        assert!(!parsed.tool_calls.is_empty(), "{out:?}");
        if let ToolChoice::Named(name) = choice {
            assert_eq!(parsed.tool_calls.len(), 1, "{out:?}");
            assert_eq!(&parsed.tool_calls[0].name, name);
        }
        for call in &parsed.tool_calls {
            let arguments: Value = serde_json::from_str(&call.arguments).unwrap();
            let schema = schema_of(&tools, &call.name);
            validate(&schema, &schema, &arguments, &call.name)
                .unwrap_or_else(|e| panic!("seed {seed}: {out:?}: {e}"));
        }
        counts.push(parsed.tool_calls.len());
    }
    assert!(
        counts.len() as u64 >= runs * 2 / 3,
        "{choice:?} {format:?}: only {} of {runs} runs finished",
        counts.len()
    );
    counts
}
