//! ModelDir (config.json + weights) and inspect.

mod common;

use common::*;
use jing_formats::{inspect, DType, FormatError, ModelDir};

const V3_CONFIG: &str = r#"{
  "architectures": ["DeepseekV3ForCausalLM"],
  "model_type": "deepseek_v3",
  "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
  "q_lora_rank": null, "kv_lora_rank": 8, "qk_nope_head_dim": 4, "qk_rope_head_dim": 2,
  "v_head_dim": 4, "vocab_size": 32, "rms_norm_eps": 1e-6, "topk_method": "noaux_tc",
  "rope_scaling": {"type": "yarn", "factor": 40},
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [8, 8]}
}"#;

/// A complete tiny folder: config, generation config, tokenizer files, 2 shards with an FP8
/// weight (8x8 blocks) whose scale lives in the second shard.
fn complete_folder(tag: &str) -> TempDir {
    let d = TempDir::new(tag);
    d.write("config.json", V3_CONFIG);
    d.write(
        "generation_config.json",
        r#"{"temperature": 0.6, "eos_token_id": [1, 2]}"#,
    );
    d.write("tokenizer.json", "{}");
    d.write("tokenizer_config.json", "{}");
    let codes: Vec<u8> = (0..20 * 12).map(|i| [0x38u8, 0x40][i % 2]).collect();
    write_st(
        &d.join("model-00001-of-00002.safetensors"),
        &[
            f8s("model.layers.0.mlp.up_proj.weight", &[20, 12], &codes),
            bf16s("model.norm.weight", &[16], &[1.0; 16]),
        ],
    );
    write_st(
        &d.join("model-00002-of-00002.safetensors"),
        &[f32s(
            "model.layers.0.mlp.up_proj.weight_scale_inv",
            &[3, 2],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        )],
    );
    write_index(
        d.path(),
        &[
            (
                "model.layers.0.mlp.up_proj.weight",
                "model-00001-of-00002.safetensors",
            ),
            ("model.norm.weight", "model-00001-of-00002.safetensors"),
            (
                "model.layers.0.mlp.up_proj.weight_scale_inv",
                "model-00002-of-00002.safetensors",
            ),
        ],
    );
    d
}

#[test]
fn model_dir_reads_config_and_block_size() {
    let d = complete_folder("modeldir");
    let m = ModelDir::open(d.path()).unwrap();
    assert_eq!(m.config.usize("hidden_size").unwrap(), 16);
    assert_eq!(m.config.opt_usize("q_lora_rank").unwrap(), None);
    assert_eq!(m.config.f64_or("rms_norm_eps", 1e-5).unwrap(), 1e-6);
    assert_eq!(m.config.str("topk_method").unwrap(), "noaux_tc");
    assert_eq!(
        m.config
            .section("rope_scaling")
            .unwrap()
            .f64("factor")
            .unwrap(),
        40.0
    );
    let g = m.generation_config.as_ref().unwrap();
    assert_eq!(g.f64("temperature").unwrap(), 0.6);
    assert_eq!(g.usize_list("eos_token_id").unwrap(), vec![1, 2]);
    assert_eq!(m.store.block_size(), [8, 8]);
    let w = m.store.get("model.layers.0.mlp.up_proj.weight").unwrap();
    assert_eq!(w.dtype, DType::F8E4M3);
    let v = w.to_f32_vec();
    // Row 17 (block row 2), col 9 (block col 1): code 0x40 = 2.0 when (17*12+9) is odd.
    assert_eq!(v[17 * 12 + 9], 2.0 * 6.0);
    assert_eq!(v[0], 1.0);
    assert!(m.file("tokenizer.json").is_some());
    assert!(m.file("nope.json").is_none());
}

#[test]
fn missing_config_json() {
    let d = TempDir::new("noconfig");
    write_st(&d.join("model.safetensors"), &[f32s("x", &[1], &[1.0])]);
    let e = ModelDir::open(d.path()).unwrap_err();
    assert!(matches!(e, FormatError::MissingFile { .. }), "{e}");
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn wrong_config_field_type() {
    let d = complete_folder("badtype");
    d.write(
        "config.json",
        r#"{"hidden_size": "big", "quantization_config": {"weight_block_size": [128]}}"#,
    );
    // A bad block size fails at open, naming the field.
    let e = ModelDir::open(d.path()).unwrap_err();
    assert!(matches!(e, FormatError::ConfigType { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("quantization_config.weight_block_size"),
        "{e}"
    );
    d.write("config.json", r#"{"hidden_size": "big"}"#);
    let m = ModelDir::open(d.path()).unwrap();
    let e = m.config.usize("hidden_size").unwrap_err();
    assert!(matches!(e, FormatError::ConfigType { .. }), "{e}");
    let s = e.to_string();
    assert!(
        s.contains("config.json")
            && s.contains("`hidden_size`")
            && s.contains("integer")
            && s.contains("\"big\""),
        "{s}"
    );
    d.write("config.json", "{oops");
    let e = ModelDir::open(d.path()).unwrap_err();
    assert!(matches!(e, FormatError::BadJson { .. }), "{e}");
}

#[test]
fn inspect_complete_folder() {
    let d = complete_folder("inspect-ok");
    let r = inspect(d.path()).unwrap();
    assert!(r.is_ok(), "{r}");
    assert!(
        r.missing.is_empty() && r.problems.is_empty() && r.warnings.is_empty(),
        "{r}"
    );
    assert_eq!(r.architecture.as_deref(), Some("DeepseekV3ForCausalLM"));
    assert_eq!(r.model_type.as_deref(), Some("deepseek_v3"));
    assert_eq!(r.tensors, 3);
    assert_eq!(r.files, 2);
    let fp8 = r.fp8.as_ref().unwrap();
    assert_eq!((fp8.tensors, fp8.with_scale, fp8.block), (1, 1, [8, 8]));
    let keys: Vec<&str> = r.config.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"kv_lora_rank")
            && keys.contains(&"q_lora_rank")
            && keys.contains(&"rope_scaling")
    );
    assert!(!keys.contains(&"n_routed_experts"), "only present fields");
    assert_eq!(r.total_bytes, 240 + 32 + 24);
    let text = r.to_string();
    for needle in [
        "DeepseekV3ForCausalLM",
        "deepseek_v3",
        "kv_lora_rank: 8",
        "F8_E4M3",
        "BF16",
        "F32",
        "2 shards",
        "status: ok",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let j = r.to_json();
    assert_eq!(j["architecture"], "DeepseekV3ForCausalLM");
    assert_eq!(j["tensors"], 3);
    assert_eq!(j["files"], 2);
    assert_eq!(j["config"]["kv_lora_rank"], 8);
    assert_eq!(j["fp8"]["with_scale"], 1);
    assert_eq!(j["dtypes"].as_array().unwrap().len(), 3);
    assert_eq!(j["ok"], true);
}

#[test]
fn inspect_lists_what_is_missing() {
    let d = complete_folder("inspect-missing");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    std::fs::remove_file(d.join("generation_config.json")).unwrap();
    std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).unwrap();
    let r = inspect(d.path()).unwrap();
    assert!(!r.is_ok());
    assert!(r.missing.iter().any(|m| m == "tokenizer.json"), "{r}");
    assert!(
        r.missing
            .iter()
            .any(|m| m.contains("model-00002-of-00002.safetensors")),
        "{r}"
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("generation_config.json")),
        "{r}"
    );
    // The FP8 weight lost its scale with the shard.
    assert!(
        r.problems.iter().any(|p| p.contains("weight_scale_inv")),
        "{r}"
    );
    assert_eq!(r.fp8.as_ref().unwrap().with_scale, 0);
    let text = r.to_string();
    assert!(
        text.contains("missing:") && text.contains("warnings:") && text.contains("incomplete"),
        "{text}"
    );

    let empty = TempDir::new("inspect-empty");
    let r = inspect(empty.path()).unwrap();
    for m in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        assert!(r.missing.iter().any(|x| x == m), "{r}");
    }
    assert!(r.missing.iter().any(|x| x.starts_with("weights")), "{r}");
    assert!(inspect(&empty.join("nope")).is_err());
}

#[test]
fn inspect_single_file_and_broken_config() {
    let d = complete_folder("inspect-file");
    let r = inspect(&d.join("model-00001-of-00002.safetensors")).unwrap();
    assert!(!r.is_dir);
    assert_eq!(r.tensors, 2);
    assert!(r.missing.is_empty());
    // Alone, the FP8 weight has no scale.
    assert_eq!(r.problems.len(), 1, "{r}");
    assert_eq!(r.to_json()["kind"], "file");

    d.write("config.json", "{broken");
    let r = inspect(d.path()).unwrap();
    assert!(r.problems.iter().any(|p| p.contains("config.json")), "{r}");
    assert_eq!(r.tensors, 3);
}
