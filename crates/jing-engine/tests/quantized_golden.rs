//! Models quantized by jing, end to end: the GGUF files `jing quantize` writes from the tiny
//! fixtures' safetensors, and the same checkpoints quantized at load (`--quant`).
//!
//! - A Q8_0 file written from a folder holds the bytes of the fixture script's Q8_0 file (see
//!   jing-formats' `quantize` test), so it must meet that file's golden in `golden-gguf.json`
//!   with the tolerances of `gguf_golden.rs`: 2e-4 and the exact argmax on the reference
//!   interpreter, 0.15 on the CPU kernels (8-bit activations in every matmul).
//! - Quantizing at load gives the model the weights of the file written for the same target
//!   (embeddings kept exact on both sides with `--token-embedding-type f32`), so the logits must
//!   be the same: bit for bit, except Llama, whose file stores q/k rows permuted for RoPE and so
//!   sums the attention dot products in another order (measured: 1e-6).
//! - Every target jing writes loads and runs on every CPU kernel table.

use std::path::{Path, PathBuf};

use jing_cpu::kernels::KernelTable;
use jing_cpu::CpuBackend;
use jing_formats::quantize::{quantize_to_gguf, QuantTarget, QuantizeOptions};
use jing_formats::DType;
use jing_graph::{Backend, Batch, KvCache, Reference};
use jing_models::{load_model, load_model_with, CausalLm, LoadQuant, LogitRows};

mod common;
use common::{argmax, fixture, floats, ids, max_abs_diff, read_json, Scratch};

const TOL: f32 = 2e-4;
const Q8_CPU_TOL: f32 = 0.15;

/// `jing quantize FIXTURE OUT --type t [--token-embedding-type embd]`, as a library call.
fn quantize(name: &str, t: &str, embd: Option<DType>, dir: &Scratch) -> PathBuf {
    let out = dir.0.join(format!("{name}-{t}.gguf"));
    let mut opts = QuantizeOptions::new(QuantTarget::parse(t).unwrap(), 2);
    opts.token_embedding_type = embd;
    quantize_to_gguf(&fixture(name), &out, &opts, &mut |_| {})
        .unwrap_or_else(|e| panic!("{name} to {t}: {e}"));
    out
}

/// Prompt logits `[n, vocab]` of one prefill.
fn prompt_logits(model: &dyn CausalLm, backend: &dyn Backend, prompt: &[u32]) -> Vec<f32> {
    let info = model.info();
    let mut cache = KvCache::new(info.cache_layers, info.cache_width, 64);
    let slot = cache.alloc_slot();
    let batch = Batch::sequence(slot, 0, prompt);
    let graph = model.build_step(&batch, &LogitRows::All);
    let out = backend
        .execute(&graph, &batch, &mut cache)
        .expect("prefill");
    out.get("logits").expect("logits").1.to_vec()
}

fn backends() -> Vec<(String, Box<dyn Backend>, bool)> {
    let mut v: Vec<(String, Box<dyn Backend>, bool)> =
        vec![("reference".into(), Box::new(Reference), true)];
    for table in KernelTable::available() {
        let cpu = CpuBackend::with_kernels(Some(2), table);
        v.push((format!("cpu {}", cpu.name()), Box::new(cpu), false));
    }
    v
}

fn load(path: &Path) -> Box<dyn CausalLm> {
    load_model(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn q8_0_files_written_from_safetensors_meet_the_q8_0_goldens() {
    let dir = Scratch::new("quantized-golden");
    for name in ["qwen2-tiny", "llama-tiny", "deepseek-v3-tiny"] {
        let path = quantize(name, "q8_0", None, &dir);
        let golden = &read_json(&fixture(name).join("golden-gguf.json"))["model-q8_0.gguf"];
        let prompt = ids(&golden["prompt_ids"]);
        let model = load(&path);
        let vocab = model.info().vocab_size;
        for (label, backend, reference) in backends() {
            let who = format!("{name} q8_0 by jing on {label}");
            let logits = prompt_logits(model.as_ref(), backend.as_ref(), &prompt);
            let n = prompt.len();
            let d_first = max_abs_diff(&logits[..vocab], &floats(&golden["first_logits"]));
            let d_last = max_abs_diff(&logits[(n - 1) * vocab..], &floats(&golden["last_logits"]));
            let tol = if reference { TOL } else { Q8_CPU_TOL };
            assert!(
                d_first <= tol && d_last <= tol,
                "{who}: {d_first} {d_last} > {tol}"
            );
            if reference {
                let am: Vec<u32> = logits.chunks(vocab).map(argmax).collect();
                assert_eq!(am, ids(&golden["argmax"]), "{who}: argmax");
            }
            eprintln!("{who}: first {d_first:.2e}, last {d_last:.2e}");
        }
    }
}

#[test]
fn quantizing_at_load_gives_the_logits_of_the_written_file() {
    let dir = Scratch::new("quantized-load");
    let prompt = [0u32, 5, 7, 11, 42, 3];
    for name in [
        "qwen2-tiny",
        "llama-tiny",
        "deepseek-v3-tiny",
        "deepseek-v3-fp8-tiny",
        "deepseek-v2-tiny",
        "deepseek-v2-lite-tiny",
    ] {
        for t in ["q8_0", "q4_k_m"] {
            let file = load(&quantize(name, t, Some(DType::F32), &dir));
            let quant = LoadQuant::new(QuantTarget::parse(t).unwrap(), 2);
            let at_load = load_model_with(&fixture(name), Some(&quant))
                .unwrap_or_else(|e| panic!("{name} --quant {t}: {e}"));
            let float = load(&fixture(name));
            let tol = if name.starts_with("llama") { 1e-5 } else { 0.0 };
            for (label, backend, _) in backends() {
                let a = prompt_logits(at_load.as_ref(), backend.as_ref(), &prompt);
                let b = prompt_logits(file.as_ref(), backend.as_ref(), &prompt);
                let d = max_abs_diff(&a, &b);
                let q = max_abs_diff(
                    &a,
                    &prompt_logits(float.as_ref(), backend.as_ref(), &prompt),
                );
                eprintln!("{name} {t} on {label}: at load vs file {d:.1e}, vs unquantized {q:.2e}");
                assert!(
                    d <= tol,
                    "{name} {t} on {label}: at load vs file {d} > {tol}"
                );
                assert!(q > 0.0, "{name} {t} on {label}: nothing was quantized");
            }
        }
    }
}

#[test]
fn every_target_loads_and_runs() {
    let dir = Scratch::new("quantized-targets");
    let prompt = [0u32, 5, 7];
    for name in ["qwen2-tiny", "deepseek-v3-tiny"] {
        for t in QuantTarget::names() {
            let model = load(&quantize(name, t, None, &dir));
            for (label, backend, _) in backends() {
                let logits = prompt_logits(model.as_ref(), backend.as_ref(), &prompt);
                assert!(
                    logits.iter().all(|v| v.is_finite()),
                    "{name} {t} on {label}: non-finite logits"
                );
            }
        }
    }
}
