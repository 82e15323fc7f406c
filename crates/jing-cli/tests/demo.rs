//! The bundled demo model (`models/deepseek-r1-demo`, trained by `scripts/train_demo.py`) does
//! its job through the `jing` binary: held-out arithmetic problems, greedy, right answers after
//! the reasoning; and it is what `jing run` and `jing chat` use without `--model`.
//!
//! The problems: from the held-out set of `scripts/train_demo.py` (sha256("kind|a|b") = 0 mod
//! 20, never trained on; `eval_problems(1000)` in that script), one or two per kind, picked by
//! `scripts/eval_demo.py` among the ones the model gets right with the largest margin: the
//! smallest top-1 minus top-2 logit gap over every token of the greedy completion is at least
//! 3.0 (logits) in PyTorch (float32), far beyond anything float32 rounding or jing's kernel
//! choice could flip, so each answer is reliably right.

mod common;

use std::path::Path;

use common::{jing, run_program};

/// (question, the answer line after `</think>`).
const PROBLEMS: [(&str, &str); 6] = [
    ("What is 594 + 989?", "594 + 989 = 1583"),
    ("What is 998 + 706?", "998 + 706 = 1704"),
    ("What is 907 - 518?", "907 - 518 = 389"),
    ("What is 673 - 274?", "673 - 274 = 399"),
    ("Which is larger, 844 or 847?", "847 is larger."),
    ("Which is smaller, 529 or 525?", "525 is smaller."),
];

fn demo_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/deepseek-r1-demo")
        .display()
        .to_string()
}

/// The reasoning and the answer of a completion written after `<think>\n`.
fn split(text: &str) -> (&str, &str) {
    let (reasoning, answer) = text
        .rsplit_once("</think>")
        .unwrap_or_else(|| panic!("the reasoning never closed: {text:?}"));
    (reasoning.trim(), answer.trim())
}

#[test]
fn answers_held_out_problems() {
    let model = demo_dir();
    for (question, want) in PROBLEMS {
        // DeepSeek-R1's chat template renders exactly this (BOS comes from the tokenizer).
        let prompt = format!("<｜User｜>{question}<｜Assistant｜><think>\n");
        let r = jing(&[
            "run",
            "--model",
            &model,
            "--prompt",
            &prompt,
            "--temperature",
            "0",
            "--max-tokens",
            "200",
            "--json",
        ]);
        r.assert_ok();
        let out = r.json();
        let text = out["text"].as_str().expect("text");
        let (reasoning, answer) = split(text);
        assert_eq!(answer, want, "{question}\n{text}");
        assert!(
            reasoning.lines().count() >= 2,
            "{question}: worked step by step:\n{text}"
        );
    }
}

/// Without `--model`, `jing chat` talks to the demo model: two turns from a pipe, the second
/// with the first (its answer only, as R1's template keeps it) in the history.
#[test]
fn chat_uses_the_demo_by_default() {
    let (q1, a1) = PROBLEMS[0];
    let (q2, a2) = PROBLEMS[1];
    let run = run_program(
        env!("CARGO_BIN_EXE_jing"),
        &["chat", "--temperature", "0", "--max-tokens", "200"],
        Some(&format!("{q1}\n{q2}\n")),
    );
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("deepseek-r1-demo"),
        "loads the demo: {}",
        run.stderr
    );
    // Piped output: each turn's reasoning, then its answer on a line of its own.
    let lines: Vec<&str> = run.stdout.lines().map(str::trim).collect();
    for want in [a1, a2] {
        assert!(
            lines.contains(&want),
            "answer {want:?} missing:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("units:"),
        "reasoning shown:\n{}",
        run.stdout
    );
}
