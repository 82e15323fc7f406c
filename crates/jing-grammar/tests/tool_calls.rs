//! Forced DeepSeek tool calls, read back with jing-tokenizer's parser.

mod common;

use common::{check_runs, tiny, tools};
use jing_grammar::{GrammarError, GrammarOptions, Grammars, ToolCallFormat, ToolChoice};
use jing_tokenizer::Tokenizer;
use serde_json::{json, Value};

const RUNS: u64 = 24;

#[test]
fn required_calls_parse_into_valid_calls() {
    let (tokenizer, grammars) = tiny();
    for format in [ToolCallFormat::V3, ToolCallFormat::V31] {
        let counts = check_runs(
            &tokenizer,
            &grammars,
            &ToolChoice::Required,
            format,
            &GrammarOptions::default(),
            RUNS,
        );
        assert!(
            counts.iter().any(|&n| n > 1),
            "{format:?}: never more than one call"
        );
    }
}

#[test]
fn a_named_tool_is_called_exactly_once() {
    let (tokenizer, grammars) = tiny();
    for format in [ToolCallFormat::V3, ToolCallFormat::V31] {
        for name in ["get_weather", "天气.查询", "ping"] {
            let choice = ToolChoice::Named(name.to_owned());
            check_runs(
                &tokenizer,
                &grammars,
                &choice,
                format,
                &GrammarOptions::default(),
                RUNS,
            );
        }
    }
}

#[test]
fn tool_calls_may_follow_reasoning() {
    let (tokenizer, grammars) = tiny();
    let opts = GrammarOptions::default().with_reasoning_end("</think>");
    for format in [ToolCallFormat::V3, ToolCallFormat::V31] {
        check_runs(
            &tokenizer,
            &grammars,
            &ToolChoice::Required,
            format,
            &opts,
            RUNS,
        );
    }
}

#[test]
fn the_exact_markup_of_each_format() {
    // With every choice but one masked away, the output is the one the format allows.
    let (tokenizer, grammars) = tiny();
    let tools = vec![json!({"type": "function", "function": {
        "name": "f",
        "parameters": {"type": "object", "properties": {}, "additionalProperties": false}
    }})];
    let cases = [
        (
            ToolCallFormat::V3,
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```\
             <｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        ),
        (
            ToolCallFormat::V31,
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{}<｜tool▁call▁end｜>\
             <｜tool▁calls▁end｜>",
        ),
    ];
    for (format, expected) in cases {
        let choice = ToolChoice::Named("f".into());
        let mut constraint = grammars
            .tool_calls(&tools, &choice, format, &GrammarOptions::default())
            .unwrap();
        let mut ids = Vec::new();
        while !constraint.is_finished() {
            assert!(ids.len() < 40, "{:?}", tokenizer.decode(&ids, false));
            let mut logits = vec![0.0f32; grammars.vocab_size()];
            constraint.mask(&mut logits).unwrap();
            let allowed: Vec<u32> = (0..logits.len() as u32)
                .filter(|&i| logits[i as usize].is_finite())
                .collect();
            // Forced text comes one token at a time; where JSON may also take whitespace, the
            // test takes the token that is not whitespace.
            let token = allowed
                .iter()
                .copied()
                .find(|&i| {
                    !grammars
                        .token_bytes(i)
                        .unwrap()
                        .iter()
                        .all(u8::is_ascii_whitespace)
                })
                .unwrap_or(allowed[0]);
            constraint.commit(token).unwrap();
            ids.push(token);
        }
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), expected);
    }
}

#[test]
fn malformed_tool_lists_are_request_errors() {
    let (_, grammars) = tiny();
    let opts = GrammarOptions::default();
    let f = |tools: Vec<Value>, choice: ToolChoice| match grammars.tool_calls(
        &tools,
        &choice,
        ToolCallFormat::V3,
        &opts,
    ) {
        Ok(_) => panic!("{tools:?} {choice:?} compiled"),
        Err(err) => err,
    };
    let named = |n: &str| ToolChoice::Named(n.to_owned());
    let cases: Vec<(GrammarError, &str)> = vec![
        (f(tools(), named("nope")), "\"nope\", which is not in tools"),
        (f(vec![], ToolChoice::Required), "tools is empty"),
        (
            f(vec![json!({"type": "retrieval"})], ToolChoice::Required),
            "tools[0]: \"type\" must be \"function\"",
        ),
        (
            f(vec![json!({"function": {"name": "a b"}})], ToolChoice::Required),
            "whitespace",
        ),
        (
            f(
                vec![json!({"function": {"name": "a"}}), json!({"function": {"name": "a"}})],
                ToolChoice::Required,
            ),
            "tools[1]: function.name \"a\" appears twice",
        ),
        (
            f(
                vec![json!({"function": {"name": "a", "parameters": {"type": "string"}}})],
                ToolChoice::Required,
            ),
            "tools[0].function.parameters: \"type\" is \"string\"",
        ),
        (
            f(
                vec![
                    json!({"function": {"name": "ok"}}),
                    json!({"function": {"name": "a", "parameters": {"type": "object", "properties": {"x": {"type": "array", "uniqueItems": true}}}}}),
                ],
                ToolChoice::Required,
            ),
            "tools[1].function.parameters: invalid or unsupported JSON schema: Unimplemented keys: [\"uniqueItems\"]",
        ),
    ];
    for (err, needle) in cases {
        assert!(err.is_request_error(), "{err:?}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
    }
}

#[test]
fn a_tokenizer_without_tool_tokens_cannot_force_calls() {
    // A byte-level BPE tokenizer with nothing but the 256 bytes and an EOS.
    let mut next = 0x100u32;
    let chars: Vec<char> = (0..=255u8)
        .map(|b| {
            if matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF) {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).unwrap()
            }
        })
        .collect();
    let vocab: serde_json::Map<String, Value> = chars
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), json!(i)))
        .collect();
    let json = json!({
        "version": "1.0",
        "added_tokens": [{"id": 256, "content": "</s>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                          "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                    "use_regex": true},
        "model": {"type": "BPE", "vocab": vocab, "merges": []}
    });
    let tokenizer = Tokenizer::from_bytes(json.to_string().as_bytes()).unwrap();
    let grammars = Grammars::new(&tokenizer, &[256]).unwrap();
    let err = match grammars.tool_calls(
        &tools(),
        &ToolChoice::Required,
        ToolCallFormat::V31,
        &GrammarOptions::default(),
    ) {
        Ok(_) => panic!("compiled without tool tokens"),
        Err(err) => err,
    };
    assert!(matches!(err, GrammarError::MissingToken { .. }), "{err:?}");
    assert!(err.to_string().contains("<｜tool▁calls▁begin｜>"), "{err}");
    // JSON still works on such a tokenizer, one byte at a time.
    assert!(grammars.json_object(&GrammarOptions::default()).is_ok());
}
