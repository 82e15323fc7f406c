//! `jing quantize` and `--quant` through the binary: a folder written as GGUF runs like the
//! folder quantized at load, carries the folder's tokenizer and chat template, and bad input
//! fails cleanly. (The written bytes and logits are checked in jing-formats' and jing-engine's
//! `quantize` tests.)

mod common;

use common::{fixture, jing, run_program, TempDir};
use serde_json::Value;

fn path_str(p: &std::path::Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// `jing logits` of a prompt, with extra arguments.
fn logits(model: &str, extra: &[&str]) -> Value {
    let mut args = vec!["logits", "--model", model, "--prompt-ids", "0,5,7,11"];
    args.extend_from_slice(extra);
    jing(&args).assert_ok().json()
}

#[test]
fn quantized_file_and_quant_at_load_give_the_same_logits() {
    let t = TempDir::new("quantize");
    for name in ["qwen2-tiny", "deepseek-v3-fp8-tiny"] {
        let folder = path_str(&fixture(name));
        let out = path_str(&t.join(&format!("{name}-q4_k_m.gguf")));
        let run = jing(&[
            "quantize",
            &folder,
            &out,
            "--type",
            "q4_k_m",
            "--token-embedding-type",
            "f32",
            "--threads",
            "2",
        ]);
        run.assert_ok();
        assert!(run.stderr.contains("wrote"), "{}", run.stderr);
        let from_file = logits(&out, &[]);
        let at_load = logits(&folder, &["--quant", "q4_k_m"]);
        let float = logits(&folder, &[]);
        assert_eq!(from_file["last_logits"], at_load["last_logits"], "{name}");
        assert_ne!(
            from_file["last_logits"], float["last_logits"],
            "{name}: quantized"
        );
    }
}

#[test]
fn the_written_file_carries_the_tokenizer_and_chat_template() {
    let t = TempDir::new("quantize-tok");
    let folder = path_str(&fixture("deepseek-v3-tiny"));
    let out = path_str(&t.join("v3-q8_0.gguf"));
    jing(&["quantize", &folder, &out, "--type", "q8_0"]).assert_ok();
    let prompt = "Hello world, 12345 <think>\n你好</think>";
    let ids = |model: &str| {
        jing(&[
            "run",
            "--model",
            model,
            "--prompt",
            prompt,
            "--max-tokens",
            "1",
            "--temperature",
            "0",
            "--json",
        ])
        .assert_ok()
        .json()["prompt_ids"]
            .clone()
    };
    assert_eq!(ids(&out), ids(&folder));
    let messages = t.join("m.json");
    std::fs::write(
        &messages,
        r#"[{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"}]"#,
    )
    .unwrap();
    let render = |model: &str| {
        jing(&[
            "template",
            "--model",
            model,
            "--messages",
            &path_str(&messages),
            "--add-generation-prompt",
            "--json",
        ])
        .assert_ok()
        .json()
    };
    assert_eq!(render(&out), render(&folder));
}

#[test]
fn bad_input_fails_cleanly() {
    let t = TempDir::new("quantize-bad");
    let folder = path_str(&fixture("qwen2-tiny"));
    let out = path_str(&t.join("o.gguf"));
    jing(&["quantize", &folder, &out, "--type", "q9_k"])
        .assert_clean_error(&["q9_k", "q4_k_m", "q8_0"]);
    jing(&[
        "run",
        "--model",
        &folder,
        "--prompt-ids",
        "0",
        "--quant",
        "q3_k_xl",
    ])
    .assert_clean_error(&["q3_k_xl"]);
    let missing = path_str(&t.join("nope"));
    jing(&["quantize", &missing, &out, "--type", "q8_0"])
        .assert_clean_error(&["nope", "not found"]);
    let gguf = path_str(&fixture("qwen2-tiny").join("model-f16.gguf"));
    jing(&["quantize", &gguf, &gguf, "--type", "q8_0"])
        .assert_clean_error(&["overwrite the input"]);
    let other = TempDir::copy_of("qwen2-tiny", "quantize-mistral");
    other.edit_json("config.json", |c| {
        c.insert("model_type".into(), "mistral".into());
    });
    jing(&["quantize", &path_str(other.path()), &out, "--type", "q8_0"])
        .assert_clean_error(&["model_type `mistral`", "not supported"]);
    assert!(!t.join("o.gguf").exists() && !t.join("o.gguf.partial").exists());
}

/// gguf-py (llama.cpp's Python reader) reads a file jing wrote: names, types, shapes and the
/// tokenizer keys. Needs the fixture script's virtual environment.
#[test]
#[ignore = "needs /work/.venv-fixtures (Python with gguf-py); run with --ignored"]
fn gguf_py_reads_the_written_file() {
    let t = TempDir::new("quantize-gguf-py");
    let out = path_str(&t.join("v3.gguf"));
    let folder = path_str(&fixture("deepseek-v3-tiny"));
    jing(&["quantize", &folder, &out, "--type", "q4_k_m"]).assert_ok();
    let script = r#"
import sys, gguf, collections
r = gguf.GGUFReader(sys.argv[1])
types = collections.Counter(t.tensor_type.name for t in r.tensors)
assert r.fields["general.architecture"].contents() == "deepseek2"
assert len(r.fields["tokenizer.ggml.tokens"].contents()) == 512
for t in r.tensors:
    gguf.quants.dequantize(t.data, t.tensor_type)
print(len(r.tensors), dict(types))
"#;
    let py = run_program(
        "/work/.venv-fixtures/bin/python",
        &["-c", script, &out],
        None,
    );
    py.assert_ok();
    assert!(py.stdout.starts_with("76 "), "{}", py.stdout);
}
