//! GGUF goldens: the tiny fixtures written as GGUF by `scripts/make_fixtures.py` (llama.cpp's
//! converter layout: stacked experts, split or legacy kv_b, permuted llama q/k, rope_freqs,
//! MTP nextn tensors, a split set, F32/F16/Q8_0), loaded through `load_model` exactly like a
//! safetensors folder and compared with the same goldens, plus their tokenizer and chat
//! template read from GGUF metadata against the HF tokenizer files.
//!
//! Tolerances:
//! - F32 / F16 files hold the safetensors weights exactly (F16 differs from the bf16 originals
//!   by <= 3e-8 in a few subnormals; `golden-gguf.json` records the float64 effect on the
//!   logits: <= 5e-8): they must meet golden.json's own bar, |logit - golden| <= 2e-4 with
//!   argmax, greedy tokens and MTP logits exact.
//! - Q8_0 files hold other weights (each 32-value block rounded to 8 bits: up to 2e-2 per
//!   weight here), so their reference is their own float64 golden in `golden-gguf.json`
//!   (computed by the fixture script from the bytes read back out of the written file). The
//!   reference interpreter dequantizes exactly and computes in f32 like for the other formats,
//!   so it must meet the same 2e-4 with exact argmax and greedy tokens (measured: 1e-6).
//! - The CPU kernels multiply Q8_0 weights with activations quantized to 8 bits per 32-value
//!   block (llama.cpp's Q8_0 x Q8_0 scheme: each input element off by up to amax/254, in every
//!   matmul of every layer and the LM head). Measured against the Q8_0 golden: 0.05 to 0.09 on
//!   logits of magnitude up to ~8 (about 1%), the same on every kernel table; so they get
//!   [`Q8_CPU_TOL`] = 0.15. A wrong block layout, scale or row/expert mapping moves logits by
//!   whole units. That error is larger than these files' smallest top-1/top-2 margins (1e-3 to
//!   2e-2), so greedy tokens are compared only where the golden's margin exceeds twice the
//!   tolerance (on the reference interpreter always).
//! - The distance of a Q8_0 model to the unquantized golden.json is recorded in
//!   golden-gguf.json, not tested: 0.1 for the dense models; in the MoE model quantization
//!   flips expert choices (logits move by up to 2), the quantized model's real behaviour.

use std::path::{Path, PathBuf};

use jing_cpu::kernels::KernelTable;
use jing_cpu::CpuBackend;
use jing_graph::{Backend, Batch, KvCache, MlaForm, Reference};
use jing_models::deepseek::DeepSeek;
use jing_models::{load_model, CausalLm, LogitRows};
use jing_tokenizer::template::{ChatTemplate, RenderOptions};
use jing_tokenizer::Tokenizer;
use serde_json::{json, Value};

mod common;
use common::{argmax, fixture, floats, ids, max_abs_diff, read_json};

const TOL: f32 = 2e-4;
const Q8_CPU_TOL: f32 = 0.15;

/// What one run produces.
struct Run {
    argmax: Vec<u32>,
    first: Vec<f32>,
    last: Vec<f32>,
    greedy: Vec<u32>,
    /// MTP argmax and last-row logits, when asked for.
    mtp: Option<(Vec<u32>, Vec<f32>)>,
}

/// Prompt (all positions), greedy decode through the cache, and the MTP module when given.
fn run(
    model: &dyn CausalLm,
    mtp: Option<(&DeepSeek, &Value)>,
    backend: &dyn Backend,
    form: Option<MlaForm>,
    prompt: &[u32],
    n_greedy: usize,
) -> Run {
    let n = prompt.len();
    let vocab = model.info().vocab_size;
    let info = model.info();
    let mut cache = KvCache::new(info.cache_layers, info.cache_width, 256);
    let slot = cache.alloc_slot();
    let batch = Batch::sequence(slot, 0, prompt);
    let mut graph = model.build_step(&batch, &LogitRows::All);
    if let Some(f) = form {
        graph.set_mla_form(f);
    }
    let out = backend
        .execute(&graph, &batch, &mut cache)
        .expect("prefill");
    let (shape, logits) = out.get("logits").expect("logits");
    assert_eq!(shape, &[n, vocab]);
    let hidden = out.get("hidden").expect("hidden").1.to_vec();
    let argmaxes: Vec<u32> = logits.chunks(vocab).map(argmax).collect();
    let first = logits[..vocab].to_vec();
    let last = logits[(n - 1) * vocab..].to_vec();
    let mut tok = argmax(&last);
    let mut greedy = vec![tok];
    while greedy.len() < n_greedy {
        let pos = n + greedy.len() - 1;
        let batch = Batch::sequence(slot, pos, &[tok]);
        let mut graph = model.build_step(&batch, &LogitRows::last_of_each_sequence(&batch));
        if let Some(f) = form {
            graph.set_mla_form(f);
        }
        let out = backend.execute(&graph, &batch, &mut cache).expect("decode");
        tok = argmax(out.get("logits").expect("logits").1);
        greedy.push(tok);
    }
    let mtp = mtp.map(|(ds, mg)| {
        let inputs = ids(&mg["input_token_ids"]);
        let d = info.hidden_size;
        let mut batch = Batch::sequence(slot, 0, &inputs);
        batch
            .inputs
            .push(("hidden".into(), hidden[..inputs.len() * d].to_vec()));
        let mut graph = ds
            .build_mtp_step(&batch, &LogitRows::All)
            .expect("the GGUF has the MTP layer");
        if let Some(f) = form {
            graph.set_mla_form(f);
        }
        let out = backend.execute(&graph, &batch, &mut cache).expect("mtp");
        let logits = out.get("logits").expect("logits").1;
        (
            logits.chunks(vocab).map(argmax).collect(),
            logits[(inputs.len() - 1) * vocab..].to_vec(),
        )
    });
    Run {
        argmax: argmaxes,
        first,
        last,
        greedy,
        mtp,
    }
}

/// Compare a run with a golden (`golden.json`, or an entry of `golden-gguf.json`).
fn check(who: &str, r: &Run, g: &Value, tol: f32, exact_tokens: bool) {
    let d_first = max_abs_diff(&r.first, &floats(&g["first_logits"]));
    let d_last = max_abs_diff(&r.last, &floats(&g["last_logits"]));
    assert!(
        d_first <= tol,
        "{who}: first logits differ by {d_first} (> {tol})"
    );
    assert!(
        d_last <= tol,
        "{who}: last logits differ by {d_last} (> {tol})"
    );
    if exact_tokens {
        assert_eq!(r.argmax, ids(&g["argmax"]), "{who}: argmax per position");
        assert_eq!(
            r.greedy,
            ids(&g["greedy_ids"]),
            "{who}: greedy continuation"
        );
    }
    if let (Some((am, last)), Some(mg)) = (&r.mtp, g.get("mtp_golden")) {
        assert_eq!(am, &ids(&mg["argmax"]), "{who}: MTP argmax");
        let d = max_abs_diff(last, &floats(&mg["last_logits"]));
        assert!(d <= tol, "{who}: MTP last logits differ by {d}");
    }
}

/// A backend to run on: its label, the backend, the MLA form to force, and whether it is the
/// reference interpreter.
type Target = (String, Box<dyn Backend>, Option<MlaForm>, bool);

/// The backends every file runs on: the reference interpreter (both MLA forms for DeepSeek)
/// and every CPU kernel table with 2 threads.
fn backends(deepseek: bool) -> Vec<Target> {
    let mut v: Vec<Target> = Vec::new();
    if deepseek {
        v.push((
            "reference absorbed".into(),
            Box::new(Reference),
            Some(MlaForm::Absorbed),
            true,
        ));
        v.push((
            "reference expanded".into(),
            Box::new(Reference),
            Some(MlaForm::Expanded),
            true,
        ));
    } else {
        v.push(("reference".into(), Box::new(Reference), None, true));
    }
    for table in KernelTable::available() {
        let cpu = CpuBackend::with_kernels(Some(2), table);
        v.push((format!("cpu {}", cpu.name()), Box::new(cpu), None, false));
    }
    v
}

/// Load `fixture/file` and check it on every backend against golden.json (float files) or
/// its own entry of golden-gguf.json (quantized files).
fn check_file(name: &str, file: &str) {
    let dir = fixture(name);
    let path = dir.join(file);
    let golden = read_json(&dir.join("golden.json"));
    let gg = read_json(&dir.join("golden-gguf.json"));
    let key = gg
        .as_object()
        .expect("object")
        .iter()
        .find(|(_, v)| {
            v["files"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == file))
        })
        .map(|(k, _)| k.clone())
        .unwrap_or_else(|| panic!("{name}: {file} not in golden-gguf.json"));
    let own = &gg[&key];
    let quantized = own["qtype"] == "Q8_0";
    let deepseek = name.starts_with("deepseek");
    let ds =
        deepseek.then(|| DeepSeek::open(&path).unwrap_or_else(|e| panic!("{name}/{file}: {e}")));
    let dense =
        (!deepseek).then(|| load_model(&path).unwrap_or_else(|e| panic!("{name}/{file}: {e}")));
    let model: &dyn CausalLm = match (&ds, &dense) {
        (Some(d), _) => d,
        (None, Some(m)) => m.as_ref(),
        _ => unreachable!(),
    };
    let has_mtp = ds.as_ref().is_some_and(|d| d.info().mtp_layers > 0);
    let mtp_golden = golden.get("mtp_golden").filter(|_| has_mtp && !quantized);
    let prompt = ids(&golden["prompt_ids"]);
    let n_greedy = ids(&golden["greedy_ids"]).len();
    let margin = own["min_margin"].as_f64().expect("min_margin") as f32;
    for (label, backend, form, reference) in backends(deepseek) {
        let who = format!("{name}/{file} on {label}");
        let r = run(
            model,
            ds.as_ref().zip(mtp_golden),
            backend.as_ref(),
            form,
            &prompt,
            n_greedy,
        );
        if quantized {
            let tol = if reference { TOL } else { Q8_CPU_TOL };
            check(&who, &r, own, tol, margin > 2.0 * tol);
        } else {
            check(&who, &r, &golden, TOL, true);
        }
    }
}

#[test]
fn deepseek_v3_f16_mla_split_with_mtp() {
    check_file("deepseek-v3-tiny", "model-f16.gguf");
    let m = DeepSeek::open(&fixture("deepseek-v3-tiny").join("model-f16.gguf")).expect("loads");
    assert_eq!(m.info().mtp_layers, 1, "the nextn layer is loaded");
}

#[test]
fn deepseek_v3_q8_0_without_mtp() {
    check_file("deepseek-v3-tiny", "model-q8_0.gguf");
    let m = DeepSeek::open(&fixture("deepseek-v3-tiny").join("model-q8_0.gguf")).expect("loads");
    assert_eq!(m.info().mtp_layers, 0);
}

#[test]
fn deepseek_v2_lite_f32_legacy_kv_b_split_files() {
    check_file("deepseek-v2-lite-tiny", "model-f32-00001-of-00002.gguf");
    // Any part of a split set opens the whole set.
    let m = load_model(&fixture("deepseek-v2-lite-tiny").join("model-f32-00002-of-00002.gguf"))
        .expect("second part opens the set");
    assert_eq!(m.info().n_layers, 3);
}

#[test]
fn deepseek_v2_f16_group_limited_routing() {
    check_file("deepseek-v2-tiny", "model-f16.gguf");
}

#[test]
fn qwen2_f16() {
    check_file("qwen2-tiny", "model-f16.gguf");
}

#[test]
fn qwen2_q8_0() {
    check_file("qwen2-tiny", "model-q8_0.gguf");
}

#[test]
fn qwen2_tied_f16() {
    check_file("qwen2-tied-tiny", "model-f16.gguf");
}

#[test]
fn llama_f16_permuted_qk_and_rope_freqs() {
    check_file("llama-tiny", "model-f16.gguf");
}

#[test]
fn llama_q8_0() {
    check_file("llama-tiny", "model-q8_0.gguf");
}

/// Every GGUF file of the fixtures, with its fixture folder.
fn all_gguf_files() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for name in [
        "deepseek-v3-tiny",
        "deepseek-v2-lite-tiny",
        "deepseek-v2-tiny",
        "qwen2-tiny",
        "qwen2-tied-tiny",
        "llama-tiny",
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixture(name))
            .expect("fixture folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
            .filter(|p| !p.to_string_lossy().contains("-00002-of-"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name} has GGUF files");
        out.extend(files.into_iter().map(|p| (name.to_string(), p)));
    }
    out
}

#[test]
fn tokenizer_from_gguf_matches_the_hf_tokenizer() {
    let cases = read_json(&fixture("tokenizer").join("golden.json"));
    let cases = cases["cases"].as_array().expect("cases");
    for (name, path) in all_gguf_files() {
        let who = format!("{name}/{}", path.file_name().unwrap().to_string_lossy());
        let hf = Tokenizer::from_model_dir(&fixture(&name)).expect("HF tokenizer");
        let gguf = Tokenizer::from_gguf(&path).unwrap_or_else(|e| panic!("{who}: {e}"));
        for c in cases {
            let text = c["text"].as_str().expect("text");
            let with = gguf.encode(text, true).expect("encode");
            assert_eq!(with, ids(&c["ids"]), "{who}: {text:?} with special tokens");
            let without = gguf.encode(text, false).expect("encode");
            assert_eq!(without, ids(&c["ids_no_special"]), "{who}: {text:?}");
            assert_eq!(
                gguf.decode(&with, false).expect("decode"),
                c["decoded"].as_str().expect("decoded"),
                "{who}: decode {text:?}"
            );
            assert_eq!(
                gguf.decode(&without, false).expect("decode"),
                c["decoded_no_special"].as_str().expect("decoded"),
                "{who}: decode {text:?} without BOS"
            );
            assert_eq!(
                gguf.decode(&with, true).expect("decode"),
                hf.decode(&with, true).expect("decode"),
                "{who}: decode {text:?} skipping special tokens"
            );
        }
        let golden = read_json(&fixture(&name).join("golden.json"));
        let text = golden["text_prompt"].as_str().expect("text_prompt");
        assert_eq!(
            gguf.encode(text, true).unwrap(),
            ids(&golden["text_prompt_ids"]),
            "{who}: text prompt"
        );
        assert_eq!(gguf.bos_id(), hf.bos_id(), "{who}: bos");
        assert_eq!(gguf.eos_ids(), hf.eos_ids(), "{who}: eos");
        assert_eq!(gguf.bos_token(), hf.bos_token(), "{who}: bos text");
        assert_eq!(gguf.eos_token(), hf.eos_token(), "{who}: eos text");
        assert_eq!(gguf.add_bos_token(), hf.add_bos_token(), "{who}: add_bos");
        assert_eq!(gguf.vocab_size(), hf.vocab_size(), "{who}: vocab size");
        for id in 0..hf.vocab_size() as u32 + 20 {
            assert_eq!(
                gguf.id_to_token(id),
                hf.id_to_token(id),
                "{who}: token {id}"
            );
            assert_eq!(
                gguf.is_special(id),
                hf.is_special(id),
                "{who}: special {id}"
            );
        }
        assert_eq!(
            gguf.chat_template(),
            hf.chat_template(),
            "{who}: chat template"
        );

        // The chat template found from the .gguf path renders like the folder's.
        let messages = vec![
            json!({"role": "system", "content": "Be brief."}),
            json!({"role": "user", "content": "Hello 世界"}),
            json!({"role": "assistant", "content": "<think>hm</think>Hi!"}),
            json!({"role": "user", "content": "2+2?"}),
        ];
        let opts = RenderOptions::default().with_generation_prompt(true);
        let from_gguf = ChatTemplate::for_model(&path, &gguf)
            .and_then(|t| t.render(&messages, &opts))
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        let from_dir = ChatTemplate::for_model(&fixture(&name), &hf)
            .and_then(|t| t.render(&messages, &opts))
            .expect("folder template");
        assert_eq!(from_gguf, from_dir, "{who}: rendered chat");
    }
}

#[test]
fn gguf_config_matches_config_json() {
    // The config the metadata implies reads like the HF one for every field the models use.
    for (name, path) in all_gguf_files() {
        let who = format!("{name}/{}", path.file_name().unwrap().to_string_lossy());
        let hf = jing_formats::ModelDir::open(&fixture(&name)).expect("folder");
        let gg = jing_formats::ModelDir::open(&path).unwrap_or_else(|e| panic!("{who}: {e}"));
        let fields = [
            "model_type",
            "hidden_size",
            "intermediate_size",
            "num_attention_heads",
            "vocab_size",
            "rms_norm_eps",
            "tie_word_embeddings",
            "q_lora_rank",
            "kv_lora_rank",
            "qk_nope_head_dim",
            "qk_rope_head_dim",
            "v_head_dim",
            "n_routed_experts",
            "num_experts_per_tok",
            "n_shared_experts",
            "moe_intermediate_size",
            "first_k_dense_replace",
            "routed_scaling_factor",
            "topk_method",
            "scoring_func",
            "norm_topk_prob",
            "num_key_value_heads",
        ];
        for f in fields {
            let (a, b) = (hf.config.get(f), gg.config.get(f));
            if f == "num_key_value_heads" && name.starts_with("deepseek") {
                continue;
            }
            let same = match (a, b) {
                (Some(x), Some(y)) if x.is_number() && y.is_number() => {
                    (x.as_f64().unwrap() - y.as_f64().unwrap()).abs()
                        <= 1e-6 * x.as_f64().unwrap().abs().max(1e-6)
                }
                (x, y) => x == y,
            };
            let optional_default = a.is_none()
                && matches!(
                    (f, b),
                    ("tie_word_embeddings", Some(Value::Bool(false)))
                        | ("norm_topk_prob", Some(Value::Bool(false)))
                        | ("scoring_func", Some(_))
                        | ("topk_method", Some(_))
                );
            assert!(
                same || optional_default,
                "{who}: `{f}` is {b:?} from GGUF, {a:?} in config.json"
            );
        }
    }
}

/// Texts for the real-vocabulary checks: scripts, digits, whitespace runs, code, special
/// tokens written inline.
const REAL_TEXTS: &[&str] = &[
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "深度求索（DeepSeek）是一家专注于通用人工智能的中国公司。我们的目标是探索AGI的本质。",
    "日本語のテキストも正しく扱えるはずです。ひらがな、カタカナ、漢字。",
    "한국어 텍스트도 처리해야 합니다. Ελληνικά και русский текст, µ ÀÖ ǅ",
    "Emoji: 😀🎉👨‍👩‍👧‍👦 🇨🇳 🦀 and skin tones 👍🏽",
    "Rare CJK: 𠀀𠀁𪚥 and math 𝔸𝔹ℂ ∀x∈ℝ, fullwidth ＡＢＣ１２３！？",
    "  leading spaces, trailing spaces   \n\n\ttabs\r\nCRLF \n \n\n  ",
    "fn main() {\n    println!(\"{}\", 1 + 2 * 3_000);\n}\n// it's a 'quote' they're we'll I'd",
    "Numbers 1234567 and 3.14159, dates 2024-01-01, 0x1F, ١٢٣ ٤٥٦ and ½ ⅓.",
    "<｜begin▁of▁sentence｜><｜User｜>你好<｜Assistant｜><think>\n嗯</think>\n\n你好！<｜end▁of▁sentence｜>",
    "!!!???... ---=== ''''```` \"\"\" $$$ %%% &&& ***",
];

/// A vocabulary-only GGUF made from a real `tokenizer.json` the way llama.cpp's converter
/// lists it (every id, added special tokens as control, other added tokens as user-defined,
/// merges as "a b"), written to `path`.
fn gguf_from_tokenizer_json(dir: &Path, pre: &str, path: &Path) {
    use jing_formats::gguf::{GgufArray, GgufValue, GgufWriter};
    let t = read_json(&dir.join("tokenizer.json"));
    let mut texts: Vec<Option<(String, i32)>> = Vec::new();
    let mut put = |id: usize, text: &str, ty: i32| {
        if texts.len() <= id {
            texts.resize(id + 1, None);
        }
        texts[id] = Some((text.to_string(), ty));
    };
    for (text, id) in t["model"]["vocab"].as_object().expect("vocab") {
        put(id.as_u64().unwrap() as usize, text, 1);
    }
    for a in t["added_tokens"].as_array().expect("added_tokens") {
        let ty = if a["special"] == true { 3 } else { 4 };
        put(
            a["id"].as_u64().unwrap() as usize,
            a["content"].as_str().unwrap(),
            ty,
        );
    }
    let (tokens, types): (Vec<String>, Vec<i32>) = texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or((format!("[PAD{i}]"), 5)))
        .unzip();
    let merges: Vec<String> = t["model"]["merges"]
        .as_array()
        .expect("merges")
        .iter()
        .map(|m| match m {
            Value::String(s) => s.clone(),
            Value::Array(p) => format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap()),
            other => panic!("merge {other}"),
        })
        .collect();
    let bytes = GgufWriter::new()
        .kv(
            "general.architecture",
            GgufValue::String("deepseek2".into()),
        )
        .kv("tokenizer.ggml.model", GgufValue::String("gpt2".into()))
        .kv("tokenizer.ggml.pre", GgufValue::String(pre.into()))
        .kv(
            "tokenizer.ggml.tokens",
            GgufValue::Array(GgufArray::String(tokens)),
        )
        .kv(
            "tokenizer.ggml.token_type",
            GgufValue::Array(GgufArray::I32(types)),
        )
        .kv(
            "tokenizer.ggml.merges",
            GgufValue::Array(GgufArray::String(merges)),
        )
        .to_bytes();
    std::fs::write(path, bytes).expect("write the GGUF");
}

fn check_real_vocabulary(env: &str, pre: &str) {
    let dir = PathBuf::from(
        std::env::var_os(env)
            .unwrap_or_else(|| panic!("set {env} to a folder with tokenizer.json")),
    );
    let hf = Tokenizer::from_file(&dir.join("tokenizer.json")).expect("HF tokenizer");
    let path =
        std::env::temp_dir().join(format!("jing-gguf-vocab-{}-{pre}.gguf", std::process::id()));
    gguf_from_tokenizer_json(&dir, pre, &path);
    let gguf = Tokenizer::from_gguf(&path);
    let _ = std::fs::remove_file(&path);
    let gguf = gguf.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gguf.vocab_size(), hf.vocab_size());
    let cases = read_json(&fixture("tokenizer").join("golden.json"));
    let golden_texts = cases["cases"].as_array().expect("cases");
    let texts = REAL_TEXTS
        .iter()
        .copied()
        .chain(golden_texts.iter().map(|c| c["text"].as_str().unwrap()));
    for text in texts {
        let want = hf.encode(text, false).unwrap();
        assert_eq!(gguf.encode(text, false).unwrap(), want, "{pre}: {text:?}");
        assert_eq!(
            gguf.decode(&want, false).unwrap(),
            hf.decode(&want, false).unwrap()
        );
    }
}

#[test]
#[ignore = "needs DeepSeek-V3's tokenizer.json via JING_DEEPSEEK_TOKENIZER_DIR"]
fn gguf_pre_tokenizer_deepseek_v3_matches_the_real_tokenizer() {
    check_real_vocabulary("JING_DEEPSEEK_TOKENIZER_DIR", "deepseek-v3");
}

#[test]
#[ignore = "needs DeepSeek-V2's tokenizer.json via JING_DEEPSEEK_V2_TOKENIZER_DIR"]
fn gguf_pre_tokenizer_deepseek_llm_matches_the_real_tokenizer() {
    check_real_vocabulary("JING_DEEPSEEK_V2_TOKENIZER_DIR", "deepseek-llm");
}
