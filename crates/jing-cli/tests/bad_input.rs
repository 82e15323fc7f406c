//! Bad input to the `jing` binary: broken model folders, broken safetensors files, bad
//! prompts. Every case must exit non-zero with a clear `error: ...` on stderr that names what
//! is wrong, and never panic or hang (each child is killed after 60 s).

mod common;

use common::{fixture, jing, read_safetensors, write_safetensors, TempDir};

const V3: &str = "deepseek-v3-tiny";
const FP8: &str = "deepseek-v3-fp8-tiny";
const FP8_SHARD2: &str = "model-00002-of-00002.safetensors";

/// `jing run` (greedy, 2 tokens) on a model folder.
fn run_model(dir: &std::path::Path) -> common::Run {
    let d = dir.to_str().expect("utf-8 path");
    jing(&[
        "run",
        "--model",
        d,
        "--prompt-ids",
        "0,5,7",
        "--max-tokens",
        "2",
        "--temperature",
        "0",
    ])
}

/// `jing logits` on a model folder.
fn logits_model(dir: &std::path::Path) -> common::Run {
    let d = dir.to_str().expect("utf-8 path");
    jing(&["logits", "--model", d, "--prompt-ids", "0,5,7"])
}

#[test]
fn missing_model_folder() {
    let t = TempDir::new("no-such-model");
    let dir = t.join("does-not-exist");
    let msg = run_model(&dir).assert_clean_error(&["does-not-exist", "does not exist"]);
    assert!(msg.contains("--model"), "says how to fix it: {msg}");
    logits_model(&dir).assert_clean_error(&["does-not-exist"]);
}

#[test]
fn missing_config() {
    let t = TempDir::copy_of(V3, "no-config");
    std::fs::remove_file(t.join("config.json")).unwrap();
    run_model(t.path()).assert_clean_error(&["config.json"]);
}

#[test]
fn unknown_model_type() {
    let t = TempDir::copy_of(V3, "llama4");
    t.edit_json("config.json", |c| {
        c.insert("model_type".into(), "llama4".into());
    });
    run_model(t.path()).assert_clean_error(&["config.json", "model_type", "llama4"]);
}

#[test]
fn hidden_size_mismatch() {
    let t = TempDir::copy_of(V3, "hidden-48");
    t.edit_json("config.json", |c| {
        assert_eq!(c["hidden_size"], 64);
        c.insert("hidden_size".into(), 48.into());
    });
    // Names the tensor and both shapes.
    let msg = run_model(t.path()).assert_clean_error(&["64", "48"]);
    assert!(
        msg.contains("`model.") || msg.contains("`lm_head"),
        "names a tensor: {msg}"
    );
}

#[test]
fn config_field_of_wrong_type() {
    let t = TempDir::copy_of(V3, "layers-three");
    t.edit_json("config.json", |c| {
        c.insert("num_hidden_layers".into(), "three".into());
    });
    run_model(t.path()).assert_clean_error(&["config.json", "num_hidden_layers", "three"]);
}

#[test]
fn truncated_safetensors() {
    let t = TempDir::copy_of(V3, "truncated");
    let path = t.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    run_model(t.path()).assert_clean_error(&["model.safetensors", "truncated"]);
}

#[test]
fn corrupt_safetensors_header() {
    let t = TempDir::copy_of(V3, "corrupt-header");
    let path = t.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..40].copy_from_slice(b"#garbage#garbage#garbage#garbage");
    std::fs::write(&path, &bytes).unwrap();
    run_model(t.path()).assert_clean_error(&["model.safetensors", "header"]);

    // Invalid UTF-8 too.
    bytes[8..40].fill(0xff);
    std::fs::write(&path, &bytes).unwrap();
    run_model(t.path()).assert_clean_error(&["model.safetensors", "header"]);
}

#[test]
fn missing_tensor() {
    let t = TempDir::copy_of(V3, "no-final-norm");
    let path = t.join("model.safetensors");
    let mut st = read_safetensors(&path);
    st.remove("model.norm.weight");
    write_safetensors(&path, &st);
    run_model(t.path()).assert_clean_error(&["model.norm.weight"]);
}

#[test]
fn unsupported_dtype() {
    let t = TempDir::copy_of(V3, "f64");
    let path = t.join("model.safetensors");
    let mut st = read_safetensors(&path);
    // A real F64 tensor: the BF16 values widened, same shape, consistent byte size.
    let norm = st.get_mut("model.norm.weight");
    assert_eq!(norm.dtype, "BF16");
    norm.data = norm
        .data
        .chunks(2)
        .flat_map(|b| {
            (f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64).to_le_bytes()
        })
        .collect();
    norm.dtype = "F64".into();
    write_safetensors(&path, &st);
    run_model(t.path()).assert_clean_error(&["model.safetensors", "model.norm.weight", "F64"]);

    // U8 with the same byte size (shape [128] instead of [64] BF16).
    let mut st = read_safetensors(&path);
    let norm = st.get_mut("model.norm.weight");
    norm.data.truncate(128);
    norm.dtype = "U8".into();
    norm.shape = vec![128];
    write_safetensors(&path, &st);
    run_model(t.path()).assert_clean_error(&["model.safetensors", "model.norm.weight", "U8"]);
}

#[test]
fn missing_shard() {
    let t = TempDir::copy_of(FP8, "missing-shard");
    std::fs::remove_file(t.join(FP8_SHARD2)).unwrap();
    run_model(t.path()).assert_clean_error(&[FP8_SHARD2]);

    // `jing inspect` reports the missing shard and fails.
    let d = t.path().to_str().unwrap();
    for args in [vec!["inspect", d], vec!["inspect", d, "--json"]] {
        let r = jing(&args);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert_eq!(r.code, Some(1), "`{}` exits 1:\n{all}", r.cmd);
        assert!(!all.contains("panicked"), "`{}` panicked:\n{all}", r.cmd);
        assert!(
            all.contains(FP8_SHARD2),
            "`{}` names the missing shard:\n{all}",
            r.cmd
        );
        eprintln!("{} ->\n{}", r.cmd, all.trim_end());
    }
    let r = jing(&["inspect", d, "--json"]);
    let v = r.json();
    assert_eq!(
        v["ok"],
        serde_json::Value::Bool(false),
        "inspect --json says not ok: {v}"
    );
}

#[test]
fn missing_fp8_scale() {
    let t = TempDir::copy_of(FP8, "no-scale");
    let weight = "model.layers.0.self_attn.o_proj.weight";
    let scale = format!("{weight}_scale_inv");
    // Remove the scale from its shard and from the index, as a converter that dropped it would.
    t.edit_json("model.safetensors.index.json", |idx| {
        let map = idx["weight_map"].as_object_mut().unwrap();
        let shard = map.remove(&scale).expect("scale in the index");
        let shard = shard.as_str().unwrap().to_string();
        let mut st = read_safetensors(&t.join(&shard));
        st.remove(&scale);
        write_safetensors(&t.join(&shard), &st);
    });
    run_model(t.path()).assert_clean_error(&[weight, &scale]);
}

#[test]
fn prompt_id_beyond_vocab() {
    let m = fixture(V3).display().to_string();
    let args = ["--model", &m, "--prompt-ids", "0,99999"];
    jing(&[&["run"], &args[..], &["--max-tokens", "2"]].concat())
        .assert_clean_error(&["99999", "512"]);
    jing(&[&["logits"], &args[..]].concat()).assert_clean_error(&["99999", "512"]);
}

#[test]
fn prompt_plus_max_tokens_beyond_context() {
    let m = fixture(V3).display().to_string();
    let r = jing(&[
        "run",
        "--model",
        &m,
        "--max-model-len",
        "8",
        "--prompt-ids",
        "0,1,2",
        "--max-tokens",
        "20",
    ]);
    r.assert_clean_error(&["23", "8"]);
    // A prompt alone longer than the context, through `jing logits`.
    jing(&[
        "logits",
        "--model",
        &m,
        "--max-model-len",
        "2",
        "--prompt-ids",
        "0,1,2",
    ])
    .assert_clean_error(&["3", "2"]);
}

#[test]
fn config_not_json() {
    let t = TempDir::copy_of(V3, "config-not-json");
    std::fs::write(t.join("config.json"), "{\"model_type\": \"deepseek_v3\",\n").unwrap();
    run_model(t.path()).assert_clean_error(&["config.json", "not valid JSON"]);
}

#[test]
fn missing_tokenizer() {
    let t = TempDir::copy_of(V3, "no-tokenizer");
    std::fs::remove_file(t.join("tokenizer.json")).unwrap();
    run_model(t.path()).assert_clean_error(&["tokenizer.json"]);
    // `jing inspect` lists it as missing.
    let r = jing(&["inspect", t.path().to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{}:\n{}{}", r.cmd, r.stdout, r.stderr);
    assert!(
        r.stdout.contains("tokenizer.json"),
        "{}:\n{}",
        r.cmd,
        r.stdout
    );
}
