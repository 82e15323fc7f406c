//! Free reasoning before the constrained part (`GrammarOptions::reasoning_end`).

mod common;

use common::{closing_bias, drive, eos_allowed, text, tiny, PADDING};
use jing_grammar::{GrammarError, GrammarOptions, Grammars, TokenConstraint};
use jing_tokenizer::Tokenizer;
use serde_json::{json, Value};

const RUNS: u64 = 30;
const MAX_STEPS: usize = 600;

/// Commits the tokens of `text`, checking that the mask allowed each.
fn feed(constraint: &mut dyn TokenConstraint, grammars: &Grammars, tokenizer: &Tokenizer, s: &str) {
    for id in tokenizer.encode(s, false).unwrap() {
        let mut logits = vec![0.0f32; grammars.vocab_size() + PADDING];
        constraint.mask(&mut logits).unwrap();
        assert!(
            logits[id as usize].is_finite(),
            "token {id} of {s:?} was masked"
        );
        constraint.commit(id).unwrap();
    }
}

fn allowed(constraint: &mut dyn TokenConstraint, grammars: &Grammars, id: u32) -> bool {
    let mut logits = vec![0.0f32; grammars.vocab_size() + PADDING];
    constraint.mask(&mut logits).unwrap();
    logits[id as usize].is_finite()
}

#[test]
fn reasoning_then_a_schema_valid_answer() {
    let (tokenizer, grammars) = tiny();
    let end = tokenizer.token_to_id("</think>").unwrap();
    let schema = json!({
        "type": "object",
        "properties": {"answer": {"type": "integer", "minimum": 0, "maximum": 99}},
        "required": ["answer"],
        "additionalProperties": false
    });
    let opts = GrammarOptions::default().with_reasoning_end("</think>");
    let bias = closing_bias(&grammars, &[(end, 1.0)]);
    let mut finished = 0;
    let mut reasoned = 0;
    for seed in 0..RUNS {
        let mut constraint = grammars.json_schema(&schema, &opts).unwrap();
        let run = drive(
            constraint.as_mut(),
            &grammars,
            &bias,
            seed,
            MAX_STEPS,
            |ids, logits| {
                if !ids.contains(&end) {
                    assert!(
                        !eos_allowed(&grammars, logits),
                        "EOS allowed while reasoning"
                    );
                }
            },
        );
        if !run.finished {
            continue;
        }
        finished += 1;
        // `</think>` came exactly once, as its token; nothing special before it.
        assert_eq!(run.ids.iter().filter(|&&id| id == end).count(), 1);
        let at = run.ids.iter().position(|&id| id == end).unwrap();
        let reasoning = tokenizer.decode(&run.ids[..at], false).unwrap();
        assert!(!reasoning.contains("</think>"), "{reasoning:?}");
        assert!(
            run.ids[..at].iter().all(|&id| !tokenizer.is_special(id)),
            "a special token in the reasoning {reasoning:?}"
        );
        reasoned += usize::from(at > 0);
        let answer = text(&tokenizer, &grammars, &run.ids[at + 1..]);
        let gap = answer.len() - answer.trim_start().len();
        assert!(
            gap <= 8,
            "{gap} bytes of whitespace after </think>: {answer:?}"
        );
        let value: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("seed {seed}: {answer:?}: {e}"));
        let n = value["answer"].as_u64().unwrap();
        assert!(n <= 99 && value.as_object().unwrap().len() == 1, "{value}");
    }
    assert!(
        finished as u64 >= RUNS * 2 / 3,
        "only {finished} of {RUNS} runs finished"
    );
    assert!(reasoned > 0, "no run reasoned before answering");
}

#[test]
fn the_end_tag_cannot_be_spelled_out() {
    let (tokenizer, grammars) = tiny();
    let opts = GrammarOptions::default().with_reasoning_end("</think>");
    let mut constraint = grammars.json_object(&opts).unwrap();
    let open = tokenizer.encode("{", false).unwrap()[0];
    // Anything may start the reasoning, `{` included; the end tag may come at once.
    assert!(allowed(constraint.as_mut(), &grammars, open));
    assert!(allowed(
        constraint.as_mut(),
        &grammars,
        tokenizer.token_to_id("</think>").unwrap()
    ));
    feed(
        constraint.as_mut(),
        &grammars,
        &tokenizer,
        "Let me think </think",
    );
    // `>` would complete the tag as text: refused. Other text goes on.
    let close = tokenizer.encode(">", false).unwrap()[0];
    assert!(!allowed(constraint.as_mut(), &grammars, close));
    feed(constraint.as_mut(), &grammars, &tokenizer, " more");
    assert!(!constraint.is_finished());
    // Special tokens other than the end tag are refused too.
    let calls = tokenizer.token_to_id("<｜tool▁calls▁begin｜>").unwrap();
    assert!(!allowed(constraint.as_mut(), &grammars, calls));
    feed(constraint.as_mut(), &grammars, &tokenizer, "</think>\n\n{}");
    assert!(constraint.is_finished());
}

#[test]
fn an_end_tag_that_is_not_one_token() {
    let (tokenizer, grammars) = tiny();
    let opts = GrammarOptions::default().with_reasoning_end("END!");
    let mut constraint = grammars.json_object(&opts).unwrap();
    feed(constraint.as_mut(), &grammars, &tokenizer, "a plan: END");
    let letter = tokenizer.encode("a", false).unwrap()[0];
    let open = tokenizer.encode("{", false).unwrap()[0];
    assert!(allowed(constraint.as_mut(), &grammars, letter));
    feed(constraint.as_mut(), &grammars, &tokenizer, "!");
    // The tag ended the reasoning: now only the answer (or a little whitespace).
    assert!(!allowed(constraint.as_mut(), &grammars, letter));
    assert!(allowed(constraint.as_mut(), &grammars, open));
    let bias = closing_bias(&grammars, &[]);
    let run = drive(
        constraint.as_mut(),
        &grammars,
        &bias,
        3,
        MAX_STEPS,
        |_, _| {},
    );
    assert!(run.finished);
    let answer = text(&tokenizer, &grammars, &run.ids);
    let value: Value = serde_json::from_str(&answer).unwrap();
    assert!(value.is_object());
}

#[test]
fn bad_reasoning_ends_are_request_errors() {
    let (_, grammars) = tiny();
    for end in ["", &"x".repeat(65)] {
        let opts = GrammarOptions::default().with_reasoning_end(end);
        let err = match grammars.json_object(&opts) {
            Ok(_) => panic!("{end:?} accepted"),
            Err(err) => err,
        };
        assert!(matches!(err, GrammarError::InvalidOptions(_)), "{err:?}");
        assert!(err.is_request_error());
    }
}
