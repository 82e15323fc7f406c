//! JSON mode and JSON schemas, driven by seeded random logits over the tiny fixture
//! tokenizers.

mod common;

use common::{
    closing_bias, drive, eos_allowed, fixture, load, text, tiny, validate,
    whitespace_outside_strings, PADDING,
};
use jing_grammar::{GrammarError, GrammarOptions, Grammars, JsonWhitespace};
use serde_json::{json, Value};

const RUNS: u64 = 30;
const MAX_STEPS: usize = 600;

#[test]
fn grammars_are_shareable() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Grammars>();
}

#[test]
fn json_object_runs_give_json_objects_and_eos_only_where_complete() {
    for dir in ["tokenizer", "deepseek-v3-tiny"] {
        let (tokenizer, grammars) = load(&fixture(dir));
        let bias = closing_bias(&grammars, &[]);
        let mut finished = 0;
        for seed in 0..RUNS {
            let mut constraint = grammars.json_object(&GrammarOptions::default()).unwrap();
            let run = drive(
                constraint.as_mut(),
                &grammars,
                &bias,
                seed,
                MAX_STEPS,
                |ids, logits| {
                    if eos_allowed(&grammars, logits) {
                        let so_far = text(&tokenizer, &grammars, ids);
                        let value: Value = serde_json::from_str(&so_far)
                            .unwrap_or_else(|e| panic!("EOS allowed after {so_far:?}: {e}"));
                        assert!(value.is_object(), "{so_far}");
                    }
                },
            );
            if !run.finished {
                continue;
            }
            finished += 1;
            let out = text(&tokenizer, &grammars, &run.ids);
            let value: Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("seed {seed}: {out:?} is not JSON: {e}"));
            assert!(value.is_object(), "seed {seed}: {out}");
        }
        assert!(
            finished >= RUNS * 2 / 3,
            "{dir}: only {finished} of {RUNS} runs finished"
        );
    }
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "score": {"type": "number", "minimum": -1, "maximum": 1},
            "member": {"type": "boolean"},
            "role": {"enum": ["admin", "user", "guest"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
            "address": {"$ref": "#/$defs/address"},
            "nickname": {"anyOf": [{"type": "string", "maxLength": 8}, {"type": "null"}]}
        },
        "required": ["name", "age", "role", "address"],
        "additionalProperties": false,
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 10},
                    "zip": {"type": "integer", "minimum": 10000, "maximum": 99999}
                },
                "required": ["city"],
                "additionalProperties": false
            }
        }
    })
}

#[test]
fn json_schema_runs_validate_against_the_schema() {
    let (tokenizer, grammars) = tiny();
    let schema = person_schema();
    let bias = closing_bias(&grammars, &[]);
    for whitespace in [
        JsonWhitespace::default(),
        JsonWhitespace::SingleLine,
        JsonWhitespace::Compact,
    ] {
        let opts = GrammarOptions::default().with_json_whitespace(whitespace);
        let mut finished = 0;
        for seed in 0..RUNS {
            let mut constraint = grammars.json_schema(&schema, &opts).unwrap();
            let run = drive(
                constraint.as_mut(),
                &grammars,
                &bias,
                seed,
                MAX_STEPS,
                |ids, logits| {
                    if eos_allowed(&grammars, logits) {
                        let so_far = text(&tokenizer, &grammars, ids);
                        let value: Value = serde_json::from_str(&so_far).unwrap();
                        validate(&schema, &schema, &value, "$").unwrap();
                    }
                },
            );
            if !run.finished {
                continue;
            }
            finished += 1;
            let out = text(&tokenizer, &grammars, &run.ids);
            let value: Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("seed {seed}: {out:?} is not JSON: {e}"));
            validate(&schema, &schema, &value, "$")
                .unwrap_or_else(|e| panic!("seed {seed}: {out}: {e}"));
            check_whitespace(whitespace, &out);
        }
        assert!(
            finished >= RUNS * 2 / 3,
            "{whitespace:?}: only {finished} of {RUNS} finished"
        );
    }
}

fn check_whitespace(whitespace: JsonWhitespace, out: &str) {
    let runs = whitespace_outside_strings(out);
    match whitespace {
        JsonWhitespace::Compact | JsonWhitespace::Flexible { max_per_gap: 0 } => {
            assert!(runs.is_empty(), "whitespace in compact JSON: {out}")
        }
        JsonWhitespace::SingleLine => {
            for (before, run) in runs {
                assert!(
                    run == " " && matches!(before, Some(',' | ':')),
                    "single-line JSON has {run:?} after {before:?}: {out}"
                );
            }
        }
        JsonWhitespace::Flexible { max_per_gap } => {
            for (_, run) in runs {
                assert!(
                    run.len() <= max_per_gap as usize,
                    "{run:?} is too long: {out}"
                );
            }
        }
    }
}

#[test]
fn whitespace_is_bounded_per_gap() {
    let (tokenizer, grammars) = tiny();
    // Push every whitespace-holding token hard: the bound must still hold.
    let mut extra = Vec::new();
    for id in 0..grammars.vocab_size() as u32 {
        if grammars
            .token_bytes(id)
            .is_some_and(|b| !b.is_empty() && b.iter().all(|c| c.is_ascii_whitespace()))
        {
            extra.push((id, 4.0));
        }
    }
    let bias = closing_bias(&grammars, &extra);
    let whitespace = JsonWhitespace::Flexible { max_per_gap: 3 };
    let opts = GrammarOptions::default().with_json_whitespace(whitespace);
    let mut saw_whitespace = false;
    for seed in 0..10 {
        let mut constraint = grammars.json_object(&opts).unwrap();
        let run = drive(
            constraint.as_mut(),
            &grammars,
            &bias,
            seed,
            MAX_STEPS,
            |_, _| {},
        );
        let out = text(&tokenizer, &grammars, &run.ids);
        saw_whitespace |= !whitespace_outside_strings(&out).is_empty();
        if run.finished {
            check_whitespace(whitespace, &out);
        }
    }
    assert!(
        saw_whitespace,
        "the bias should have produced some whitespace"
    );
}

#[test]
fn the_mask_allows_exactly_what_may_come_next() {
    let (tokenizer, grammars) = tiny();
    let id = |s: &str| {
        let ids = tokenizer.encode(s, false).unwrap();
        assert_eq!(ids.len(), 1, "{s:?} is not one token");
        ids[0]
    };
    let mut constraint = grammars.json_object(&GrammarOptions::default()).unwrap();
    let mut logits = vec![1.0f32; grammars.vocab_size() + PADDING];
    constraint.mask(&mut logits).unwrap();
    assert!(logits[id("{") as usize].is_finite());
    for bad in ["a", "[", "\"", "}"] {
        assert!(
            logits[id(bad) as usize].is_infinite(),
            "{bad:?} allowed first"
        );
    }
    for &eos in grammars.eos_ids() {
        assert!(
            logits[eos as usize].is_infinite(),
            "EOS allowed before any JSON"
        );
    }
    // A token the mask refused is refused by commit too, and the request ends with an error.
    let err = constraint.commit(id("a")).unwrap_err();
    assert!(err.contains("constrained decoding"), "{err}");

    let mut constraint = grammars.json_object(&GrammarOptions::default()).unwrap();
    for piece in ["{", "}"] {
        assert!(!constraint.is_finished());
        let mut logits = vec![0.0f32; grammars.vocab_size()];
        constraint.mask(&mut logits).unwrap();
        assert!(logits[id(piece) as usize].is_finite());
        constraint.commit(id(piece)).unwrap();
    }
    assert!(constraint.is_finished(), "`{{}}` is a complete object");
    // Once finished: only EOS, and committing anything else is an error.
    let mut logits = vec![0.0f32; grammars.vocab_size() + PADDING];
    constraint.mask(&mut logits).unwrap();
    let allowed: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i].is_finite())
        .collect();
    let eos: Vec<usize> = grammars.eos_ids().iter().map(|&i| i as usize).collect();
    assert_eq!(allowed, eos);
    assert!(constraint.commit(id("a")).is_err());
    constraint.commit(grammars.eos_ids()[0]).unwrap();
    assert!(constraint.is_finished());
}

#[test]
fn commit_refuses_padding_ids() {
    let (_, grammars) = tiny();
    let mut constraint = grammars.json_object(&GrammarOptions::default()).unwrap();
    let err = constraint
        .commit(grammars.vocab_size() as u32 + 1)
        .unwrap_err();
    assert!(err.contains("past the tokenizer"), "{err}");
}

#[test]
fn unsupported_schemas_are_request_errors_naming_the_feature() {
    let (_, grammars) = tiny();
    let opts = GrammarOptions::default();
    let cases = [
        (json!({"type": "array", "uniqueItems": true}), "uniqueItems"),
        (
            json!({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}),
            "not",
        ),
        (
            json!({"type": "string", "format": "no-such-format"}),
            "no-such-format",
        ),
        (json!({"$ref": "https://example.com/schema.json"}), "$ref"),
        (json!({"type": "frobnicate"}), "frobnicate"),
        (json!("not a schema"), "must be an object"),
        (json!(false), "no value"),
    ];
    for (schema, needle) in cases {
        let err = match grammars.json_schema(&schema, &opts) {
            Ok(_) => panic!("{schema} compiled"),
            Err(err) => err,
        };
        assert!(err.is_request_error(), "{err:?}");
        assert!(matches!(err, GrammarError::Schema { .. }), "{err:?}");
        let message = err.to_string();
        eprintln!("{message}");
        assert!(message.contains(needle), "{schema}: {message}");
        assert!(
            message.starts_with("response_format.json_schema.schema: "),
            "{message}"
        );
        assert!(message.len() < 1000, "{message}");
    }
}

#[test]
fn request_supplied_compile_options_are_ignored() {
    let (tokenizer, grammars) = tiny();
    // `lenient` would accept the unsupported keyword; it must not be honoured.
    let schema = json!({"type": "array", "uniqueItems": true, "x-guidance": {"lenient": true}});
    assert!(grammars
        .json_schema(&schema, &GrammarOptions::default())
        .is_err());
    // A whitespace pattern from the request does not widen the default bound.
    let schema = json!({"type": "object", "x-guidance": {"whitespace_pattern": "[ ]{1,1000}"}});
    let opts = GrammarOptions::default().with_json_whitespace(JsonWhitespace::Compact);
    let mut constraint = grammars.json_schema(&schema, &opts).unwrap();
    let bias = closing_bias(&grammars, &[]);
    let run = drive(
        constraint.as_mut(),
        &grammars,
        &bias,
        7,
        MAX_STEPS,
        |_, _| {},
    );
    check_whitespace(
        JsonWhitespace::Compact,
        &text(&tokenizer, &grammars, &run.ids),
    );
}

#[test]
fn bad_eos_ids_are_refused() {
    let (tokenizer, _) = tiny();
    let err = Grammars::new(&tokenizer, &[]).unwrap_err();
    assert!(matches!(err, GrammarError::InvalidEos { .. }), "{err}");
    let err = Grammars::new(&tokenizer, &[tokenizer.vocab_size() as u32]).unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    assert!(!err.is_request_error());
}

#[test]
fn token_bytes_agree_with_the_tokenizer() {
    for dir in ["tokenizer", "deepseek-v3-tiny"] {
        let (tokenizer, grammars) = load(&fixture(dir));
        common::check_token_bytes(&tokenizer, &grammars);
    }
}
