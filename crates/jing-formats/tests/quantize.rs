//! `quantize_to_gguf` and quantizing at load, on the committed tiny fixtures:
//!
//! - HF folders written as GGUF give the very tensors (names, types, shapes, bytes) of the
//!   fixture script's files, which gguf-py wrote with its own layout code and Q8_0 quantizer:
//!   stacked experts, split MLA kv_b, permuted llama q/k, llama3 rope_freqs, tied embeddings;
//! - every written tensor is jing-tensor's `quantize_row` of its dequantized source (GGUF
//!   input for every target type; an FP8 checkpoint, block scales applied, for q8_0 and q4_0);
//! - the weights a model gets when quantized at load are the written file's weights;
//! - bad input is a clear error.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use common::TempDir;
use jing_formats::gguf::{gguf_name_for, GgufFile, GgufValue, GgufWriter};
use jing_formats::quantize::{quantize_to_gguf, LoadQuant, QuantTarget, QuantizeOptions};
use jing_formats::{DType, FormatError, ModelDir, Weight};
use jing_tensor::quant;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn target(name: &str) -> QuantTarget {
    QuantTarget::parse(name).unwrap()
}

/// Quantize `input` into `dir/out.gguf`, returning the opened result.
fn quantize(input: &Path, dir: &TempDir, t: &str, embd: Option<DType>) -> GgufFile {
    let out = dir.join(&format!("out-{t}.gguf"));
    let mut opts = QuantizeOptions::new(target(t), 2);
    opts.token_embedding_type = embd;
    let mut events = 0usize;
    quantize_to_gguf(input, &out, &opts, &mut |_| events += 1)
        .unwrap_or_else(|e| panic!("{} to {t}: {e}", input.display()));
    assert!(events > 0, "progress is reported");
    assert!(!dir.join(&format!("out-{t}.gguf.partial")).exists());
    GgufFile::open(&out).expect("the written file parses")
}

#[test]
fn hf_folders_give_the_fixture_scripts_tensors() {
    let cases = [
        ("qwen2-tiny", "model-q8_0.gguf", "q8_0"),
        ("llama-tiny", "model-q8_0.gguf", "q8_0"),
        ("deepseek-v3-tiny", "model-q8_0.gguf", "q8_0"),
        ("deepseek-v3-tiny", "model-f16.gguf", "f16"),
        ("deepseek-v2-tiny", "model-f16.gguf", "f16"),
        ("qwen2-tied-tiny", "model-f16.gguf", "f16"),
        ("llama-tiny", "model-f16.gguf", "f16"),
    ];
    for (name, file, t) in cases {
        let dir = TempDir::new("hf");
        let ours = quantize(&fixture(name), &dir, t, None);
        let reference = GgufFile::open(&fixture(name).join(file)).unwrap();
        assert_eq!(
            ours.architecture(),
            reference.architecture(),
            "{name} {file}"
        );
        for r in reference.tensors() {
            let n = &r.info.name;
            let o = ours
                .tensor(n)
                .unwrap_or_else(|| panic!("{name} {file}: `{n}` not written"));
            assert_eq!(o.info.ggml_type, r.info.ggml_type, "{name} {file}: {n}");
            assert_eq!(o.info.ne, r.info.ne, "{name} {file}: {n}");
            assert!(
                ours.bytes(n).unwrap().as_slice() == reference.bytes(n).unwrap().as_slice(),
                "{name} {file}: `{n}` bytes differ"
            );
        }
        // The script drops the MTP layer from the Q8_0 file; jing keeps it (counted in
        // block_count, as llama.cpp's current converter does for V3).
        let extra: Vec<_> = ours
            .tensors()
            .filter(|t| !reference.contains(&t.info.name))
            .map(|t| t.info.name.clone())
            .collect();
        assert!(
            extra.iter().all(|n| n.starts_with("blk.3.")),
            "{name} {file}: unexpected tensors {extra:?}"
        );
        assert_eq!(
            ours.get("general.file_type"),
            Some(&GgufValue::U32(target(t).file_type))
        );
    }
}

/// The bytes a row of f32 values should become in `dtype`, computed independently of the
/// writer (block types by jing-tensor's reference quantizers).
fn expected_row(dtype: DType, x: &[f32]) -> Vec<u8> {
    match dtype {
        DType::F32 => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F16 => x
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes())
            .collect(),
        DType::BF16 => x
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_bits().to_le_bytes())
            .collect(),
        q => {
            let mut out = vec![0u8; q.row_bytes(x.len())];
            quant::quantize_row(q, x, &mut out);
            out
        }
    }
}

/// Check that every row `r` of `written` is `expected_row` of `source_row(r)`.
fn check_rows(what: &str, written: &Weight, mut source_row: impl FnMut(usize, &mut [f32])) {
    let cols = written.cols();
    let mut x = vec![0f32; cols];
    for r in 0..written.rows() {
        source_row(r, &mut x);
        assert!(
            written.row_data(r) == expected_row(written.dtype, &x).as_slice(),
            "{what}: row {r} is not {} of its source",
            written.dtype
        );
    }
}

/// A small qwen2-shaped GGUF whose rows are whole 256-element blocks (the fixtures' 64-wide
/// rows make every K type fall back), f16 weights of a smooth pseudo-random pattern.
fn k_block_gguf(dir: &TempDir) -> PathBuf {
    let f16 = |rows: usize, cols: usize, seed: usize| -> Vec<u8> {
        (0..rows * cols)
            .flat_map(|i| {
                let v = (((i * 7919 + seed * 104729) % 1000) as f32 / 1000.0 - 0.5) * 0.1;
                half::f16::from_f32(v).to_bits().to_le_bytes()
            })
            .collect()
    };
    let ty = |n: &str| jing_formats::gguf::GgmlType::from_name(n).unwrap();
    let mut w = GgufWriter::new()
        .kv("general.architecture", GgufValue::String("qwen2".into()))
        .kv("qwen2.block_count", GgufValue::U32(8))
        .kv("qwen2.attention.head_count", GgufValue::U32(4))
        .tensor("token_embd.weight", ty("F16"), &[8, 256], f16(8, 256, 1))
        .tensor("output.weight", ty("F16"), &[8, 256], f16(8, 256, 2))
        .f32_tensor("output_norm.weight", &[256], &[1.0; 256]);
    for l in 0..8 {
        w = w
            .tensor(
                &format!("blk.{l}.attn_v.weight"),
                ty("F16"),
                &[4, 256],
                f16(4, 256, l),
            )
            .tensor(
                &format!("blk.{l}.ffn_down.weight"),
                ty("F16"),
                &[4, 512],
                f16(4, 512, l + 9),
            )
            .tensor(
                &format!("blk.{l}.ffn_up.weight"),
                ty("F16"),
                &[4, 256],
                f16(4, 256, l + 17),
            );
    }
    dir.write("k-blocks.gguf", w.to_bytes())
}

#[test]
fn requantized_tensors_are_quantize_row_of_the_dequantized_source() {
    let all = [
        "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q4_k_m",
        "q5_k_m", "bf16", "f16", "f32",
    ];
    let dir = TempDir::new("requant");
    let inputs = [
        k_block_gguf(&dir),
        fixture("deepseek-v3-tiny").join("model-f16.gguf"),
        fixture("qwen2-tiny").join("model-q8_0.gguf"),
    ];
    for input in inputs {
        let source = GgufFile::open(&input).unwrap();
        let mut types_seen = HashSet::new();
        for t in all {
            let out = quantize(&input, &dir, t, None);
            assert_eq!(out.len(), source.len());
            for s in source.tensors() {
                let n = &s.info.name;
                let w = out.weight(n).unwrap();
                types_seen.insert(w.dtype);
                if w.dtype.ggml_type() == Some(s.info.ggml_type.id) {
                    // Kept (norms, or already this type): copied as stored.
                    assert!(
                        out.bytes(n).unwrap().as_slice() == source.bytes(n).unwrap().as_slice()
                    );
                    continue;
                }
                let src = source.weight(n).unwrap();
                let what = format!("{} {t} {n}", input.display());
                check_rows(&what, &w, |r, x| src.row_to_f32(r, x));
            }
        }
        let want: &[DType] = if input.ends_with("k-blocks.gguf") {
            &[
                DType::Q2K,
                DType::Q3K,
                DType::Q4K,
                DType::Q5K,
                DType::Q6K,
                DType::BF16,
            ]
        } else {
            // 64-wide rows: K types fall back to the 32-element types (and f16).
            &[
                DType::Q4_0,
                DType::Q4_1,
                DType::Q5_0,
                DType::Q5_1,
                DType::Q8_0,
                DType::F16,
            ]
        };
        for q in want {
            assert!(
                types_seen.contains(q),
                "{}: no {q} in {types_seen:?}",
                input.display()
            );
        }
    }
}

/// Random valid blocks of IQ type `d` for `rows` rows of `cols` (scale `d` ~ 0.002).
fn iq_bytes(d: DType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut b: Vec<u8> = (0..d.row_bytes(cols) * rows)
        .map(|_| next() as u8)
        .collect();
    for blk in b.chunks_exact_mut(d.block_bytes()) {
        let v = (next() % 1000) as f32 / 1000.0 * 0.004 - 0.002;
        quant::iq::set_d(d, blk, half::f16::from_f32(v).to_bits());
    }
    b
}

/// llama.cpp's IQ types (which jing reads but does not write) as input: dequantized, then
/// quantized like any other source; as a target: refused, naming the type.
#[test]
fn iq_inputs_are_dequantized_and_iq_targets_refused() {
    let dir = TempDir::new("iq-input");
    let ty = |d: DType| jing_formats::gguf::GgmlType::from_id(d.ggml_type().unwrap()).unwrap();
    let mut w = GgufWriter::new()
        .kv("general.architecture", GgufValue::String("qwen2".into()))
        .kv("qwen2.block_count", GgufValue::U32(1))
        .kv("qwen2.attention.head_count", GgufValue::U32(4))
        .f32_tensor("output_norm.weight", &[256], &[1.0; 256]);
    for (i, &d) in DType::IQUANTS.iter().enumerate() {
        let name = format!("blk.0.t{i}.weight");
        w = w.tensor(&name, ty(d), &[2, 256], iq_bytes(d, 2, 256, i as u64 + 1));
    }
    let input = dir.write("iq.gguf", w.to_bytes());
    let source = GgufFile::open(&input).unwrap();
    for t in ["q8_0", "q4_k", "f16"] {
        let out = quantize(&input, &dir, t, None);
        for s in source.tensors() {
            let n = &s.info.name;
            if n.starts_with("output_norm") {
                continue;
            }
            let src = source.weight(n).unwrap();
            assert!(DType::IQUANTS.contains(&src.dtype), "{n}");
            let w = out.weight(n).unwrap();
            assert!(!DType::IQUANTS.contains(&w.dtype), "{t} {n}: {}", w.dtype);
            check_rows(&format!("iq {t} {n}"), &w, |r, x| src.row_to_f32(r, x));
        }
    }
    let err = QuantTarget::parse("iq4_xs").unwrap_err();
    assert!(
        err.contains("iq4_xs") && err.contains("does not write"),
        "{err}"
    );
}

#[test]
fn requantizing_is_reported_and_same_type_tensors_are_copied() {
    let dir = TempDir::new("requant-report");
    let input = fixture("qwen2-tiny").join("model-q8_0.gguf");
    let run = |t: &str| {
        let out = dir.join(&format!("{t}.gguf"));
        quantize_to_gguf(
            &input,
            &out,
            &QuantizeOptions::new(target(t), 2),
            &mut |_| {},
        )
        .unwrap()
    };
    // 23 Q8_0 weights (the others are f32 norms and biases).
    assert_eq!(run("q4_0").requantized, 23);
    let same = run("q8_0");
    assert_eq!(same.requantized, 0);
    assert_eq!(
        same.types,
        vec![("Q8_0".to_string(), 23), ("F32".to_string(), 16)]
    );
    assert_eq!(
        run("f16").requantized,
        0,
        "dequantizing is not requantizing"
    );
}

#[test]
fn q4_k_m_gives_more_bits_where_llama_cpp_does() {
    let dir = TempDir::new("mix");
    let out = quantize(&k_block_gguf(&dir), &dir, "q4_k_m", None);
    let ty = |n: &str| out.weight(n).unwrap().dtype;
    assert_eq!(ty("output.weight"), DType::Q6K);
    assert_eq!(ty("token_embd.weight"), DType::Q4K);
    assert_eq!(ty("output_norm.weight"), DType::F32);
    // use_more_bits over 8 layers: 0 (first eighth), 7 (last eighth), 3 and 6 (every third).
    for l in 0..8 {
        let more = [0, 3, 6, 7].contains(&l);
        let want = if more { DType::Q6K } else { DType::Q4K };
        assert_eq!(ty(&format!("blk.{l}.attn_v.weight")), want, "attn_v {l}");
        assert_eq!(
            ty(&format!("blk.{l}.ffn_down.weight")),
            want,
            "ffn_down {l}"
        );
        assert_eq!(ty(&format!("blk.{l}.ffn_up.weight")), DType::Q4K);
    }
    let out = quantize(&k_block_gguf(&dir), &dir, "q8_0", Some(DType::F32));
    assert_eq!(out.weight("token_embd.weight").unwrap().dtype, DType::F32);
}

#[test]
fn fp8_checkpoints_are_dequantized_with_their_block_scales() {
    let name = "deepseek-v3-fp8-tiny";
    let hf = ModelDir::open(&fixture(name)).unwrap();
    let cfg = &hf.config;
    let (nope, v_head) = (
        cfg.usize("qk_nope_head_dim").unwrap(),
        cfg.usize("v_head_dim").unwrap(),
    );
    for t in ["q8_0", "q4_0"] {
        let dir = TempDir::new("fp8");
        let out = quantize(&fixture(name), &dir, t, None);
        let mut checked = 0;
        let mut fp8 = 0;
        for info in hf.store.iter() {
            let hf_name = info.name;
            if hf_name.ends_with("_scale_inv") {
                continue;
            }
            let src = hf.store.get(hf_name).unwrap();
            fp8 += (src.dtype == DType::F8E4M3) as usize;
            let gguf = gguf_name_for(hf_name).unwrap_or_else(|| panic!("{hf_name}"));
            if let Some(layer) = gguf.strip_suffix("attn_kv_b.weight") {
                // attn_k_b: per head, column c of W_UK; attn_v_b: the rows after it.
                let k_b = out.weight(&format!("{layer}attn_k_b.weight")).unwrap();
                let v_b = out.weight(&format!("{layer}attn_v_b.weight")).unwrap();
                let kv_lora = src.cols();
                let mut row = vec![0f32; kv_lora];
                check_rows(&format!("{t} {layer}attn_k_b"), &k_b, |r, x| {
                    let (head, c) = (r / kv_lora, r % kv_lora);
                    for (i, v) in x.iter_mut().enumerate() {
                        src.row_to_f32(head * (nope + v_head) + i, &mut row);
                        *v = row[c];
                    }
                });
                check_rows(&format!("{t} {layer}attn_v_b"), &v_b, |r, x| {
                    let (head, j) = (r / v_head, r % v_head);
                    src.row_to_f32(head * (nope + v_head) + nope + j, x)
                });
                checked += 2;
                continue;
            }
            let written = out.weight(&gguf).unwrap();
            // An expert is a block of rows of its stacked tensor.
            let expert = hf_name
                .split(".mlp.experts.")
                .nth(1)
                .map(|rest| rest.split('.').next().unwrap().parse::<usize>().unwrap());
            let offset = expert.map_or(0, |e| e * src.rows());
            let rows = if src.shape.len() == 1 {
                written.clone()
            } else {
                written.slice_rows(offset, offset + src.rows())
            };
            check_rows(&format!("{t} {hf_name}"), &rows, |r, x| {
                src.row_to_f32(r, x)
            });
            checked += 1;
        }
        assert!(fp8 > 10 && checked > 40, "{fp8} FP8 of {checked} checked");
    }
}

#[test]
fn quantizing_at_load_gives_the_written_files_weights() {
    for name in [
        "qwen2-tiny",
        "llama-tiny",
        "deepseek-v3-tiny",
        "deepseek-v3-fp8-tiny",
        "deepseek-v2-lite-tiny",
    ] {
        for t in ["q8_0", "q4_k_m", "q2_k", "bf16"] {
            let dir = TempDir::new("load");
            let out = dir.join("out.gguf");
            quantize_to_gguf(
                &fixture(name),
                &out,
                &QuantizeOptions::new(target(t), 2),
                &mut |_| {},
            )
            .unwrap();
            let file = ModelDir::open(&out).unwrap();
            let mut loaded = ModelDir::open(&fixture(name)).unwrap();
            let converted = loaded
                .quantize_on_load(LoadQuant::new(target(t), 2))
                .unwrap();
            // bf16 checkpoints are already bf16.
            assert!(converted > 0 || t == "bf16", "{name} {t}");
            let llama = name.starts_with("llama");
            let mut compared = 0;
            for info in file.store.iter() {
                let n = info.name;
                if n.contains("embed_tokens")
                    || n == "rope_freqs.weight"
                    || !loaded.store.contains(n)
                {
                    continue; // Embeddings stay as stored at load.
                }
                let (a, b) = (loaded.store.get(n).unwrap(), file.store.get(n).unwrap());
                assert_eq!(a.shape, b.shape, "{name} {t} {n}");
                if a.dtype != b.dtype && a.dtype.is_float() && b.dtype == DType::F32 {
                    // Norms, biases and routers: f32 in the file, as stored at load; same values.
                    assert_eq!(a.to_f32_vec(), b.to_f32_vec(), "{name} {t} {n}");
                    continue;
                }
                assert_eq!(a.dtype, b.dtype, "{name} {t} {n}");
                // The file's llama q/k rows are permuted for RoPE; rows are quantized alone.
                let heads = match n {
                    _ if !llama => None,
                    _ if n.ends_with("q_proj.weight") => Some(8),
                    _ if n.ends_with("k_proj.weight") => Some(2),
                    _ => None,
                };
                for r in 0..a.rows() {
                    let src = heads.map_or(r, |h| {
                        let hd = a.rows() / h;
                        let within = r % hd;
                        (r - within) + (within % 2) * (hd / 2) + within / 2
                    });
                    assert!(
                        b.row_data(r) == a.row_data(src),
                        "{name} {t} {n}: row {r} differs"
                    );
                }
                compared += 1;
            }
            assert!(compared > 10, "{name} {t}: {compared}");
        }
    }
}

fn quantize_err(input: &Path, output: &Path, t: &str) -> String {
    let err: FormatError = quantize_to_gguf(
        input,
        output,
        &QuantizeOptions::new(target(t), 1),
        &mut |_| {},
    )
    .expect_err("must fail");
    err.to_string()
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = TempDir::new("bad");
    let err = QuantTarget::parse("q9_k").unwrap_err();
    assert!(err.contains("q9_k") && err.contains("q4_k_m"), "{err}");

    // An architecture jing does not run.
    let mistral = TempDir::new("mistral");
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixture("qwen2-tiny").join(f), mistral.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("qwen2-tiny").join("config.json")).unwrap())
            .unwrap();
    cfg["model_type"] = "mistral".into();
    mistral.write("config.json", cfg.to_string());
    let err = quantize_err(mistral.path(), &dir.join("m.gguf"), "q8_0");
    assert!(
        err.contains("model_type `mistral`") && err.contains("qwen2"),
        "{err}"
    );

    // A tensor of a type jing cannot read, that the target needs converted.
    let tq = GgufWriter::new()
        .kv("general.architecture", GgufValue::String("llama".into()))
        .kv("llama.block_count", GgufValue::U32(1))
        .raw_tensor("blk.0.attn_q.weight", 34, &[256, 2], vec![0; 2 * 54])
        .to_bytes();
    let tq_path = dir.write("tq.gguf", tq);
    let err = quantize_err(&tq_path, &dir.join("tq-q8.gguf"), "q8_0");
    assert!(
        err.contains("blk.0.attn_q.weight") && err.contains("TQ1_0"),
        "{err}"
    );
    assert!(!dir.join("tq-q8.gguf").exists() && !dir.join("tq-q8.gguf.partial").exists());

    // Never onto the input, only to a .gguf path in an existing folder.
    let input = dir.join("in.gguf");
    std::fs::copy(fixture("qwen2-tiny").join("model-f16.gguf"), &input).unwrap();
    let err = quantize_err(&input, &input, "q8_0");
    assert!(err.contains("overwrite the input"), "{err}");
    let err = quantize_err(&input, &dir.join("out.bin"), "q8_0");
    assert!(err.contains(".gguf"), "{err}");
    let err = quantize_err(&input, &dir.join("no/such/dir/out.gguf"), "q8_0");
    assert!(err.contains("folder does not exist"), "{err}");
    let err = quantize_err(&dir.join("missing.gguf"), &dir.join("o.gguf"), "q8_0");
    assert!(err.contains("not found"), "{err}");
}
