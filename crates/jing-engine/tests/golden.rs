//! Model goldens: tiny random checkpoints made by `scripts/make_fixtures.py` with HF
//! transformers (float64), compared with jing's logits, per-position argmax, greedy tokens and
//! the MTP module's logits, on the reference interpreter (both MLA forms) and on every CPU
//! kernel table this machine runs.
//!
//! Tolerance: |logit - golden| <= 2e-4 absolute. The fixtures record the float32-vs-float64
//! error of the reference itself (`f32_vs_f64_max_abs_diff`, 2e-6 .. 1e-5 on these models,
//! logits of magnitude up to ~8); jing accumulates in a different order and the SIMD kernels
//! in f32 blocks, so we allow 20-100x that, which still catches any wrong formula (those move
//! logits by 1e-2 or more). Argmax and greedy tokens must match exactly: the fixture script
//! guarantees a top-1/top-2 margin of at least 1e-3 at every step. The FP8 fixture also runs
//! with its matmuls against bf16 activations, within a wider tolerance ([`TOL_BF16`]).

use jing_cpu::kernels::{Fp8Activations, KernelTable};
use jing_cpu::CpuBackend;
use jing_graph::{Backend, Batch, KvCache, MlaForm, Reference};
use jing_models::deepseek::DeepSeek;
use jing_models::{load_model, CausalLm, LogitRows};
use serde_json::Value;

mod common;
use common::{argmax, fixture, floats, ids, max_abs_diff};

const TOL: f32 = 2e-4;

/// With the FP8 matmuls against bf16 activations ([`Fp8Activations::Bf16`]): each activation
/// rounded to bf16 (relative error up to 2^-9) moved these logits by 0.016-0.029 on every table
/// (an ulp flip anywhere changes the next layers' roundings, so tables differ from each other
/// by as much); 0.1 leaves 3x of that and is still a hundredth of the logits' range. The
/// greedy continuation is not compared: the fixture's top-1/top-2 margins are 1e-3. The
/// arithmetic of the bf16 kernels themselves is checked exactly in jing-cpu's kernel tests.
const TOL_BF16: f32 = 0.1;

fn golden(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("valid golden.json")
}

fn new_cache(m: &dyn CausalLm) -> KvCache {
    let info = m.info();
    KvCache::new(info.cache_layers, info.cache_width, 256)
}

/// Prompt logits (all positions), hidden states, then a greedy continuation token by token
/// through the cache; checks everything against the golden.
fn check_model(
    name: &str,
    model: &dyn CausalLm,
    mtp: Option<&DeepSeek>,
    backend: &dyn Backend,
    form: Option<MlaForm>,
) {
    check_model_within(name, model, mtp, backend, form, TOL, true)
}

/// [`check_model`] with logits within `tol` of the golden's.
fn check_model_within(
    name: &str,
    model: &dyn CausalLm,
    mtp: Option<&DeepSeek>,
    backend: &dyn Backend,
    form: Option<MlaForm>,
    tol: f32,
    greedy: bool,
) {
    let g = golden(name);
    let who = format!(
        "{name} on {}{}",
        backend.name(),
        form.map_or(String::new(), |f| format!(" ({f:?} MLA)"))
    );
    let prompt = ids(&g["prompt_ids"]);
    let n = prompt.len();
    let vocab = model.info().vocab_size;
    let mut cache = new_cache(model);
    let slot = cache.alloc_slot();

    let batch = Batch::sequence(slot, 0, &prompt);
    let mut graph = model.build_step(&batch, &LogitRows::All);
    if let Some(f) = form {
        graph.set_mla_form(f);
    }
    let out = backend
        .execute(&graph, &batch, &mut cache)
        .expect("prefill runs");
    let (shape, logits) = out.get("logits").expect("logits");
    assert_eq!(shape, &[n, vocab]);
    let got_argmax: Vec<u32> = logits.chunks(vocab).map(argmax).collect();
    assert_eq!(got_argmax, ids(&g["argmax"]), "{who}: argmax per position");
    let d_last = max_abs_diff(&logits[(n - 1) * vocab..], &floats(&g["last_logits"]));
    assert!(d_last <= tol, "{who}: last logits differ by {d_last}");
    let d_first = max_abs_diff(&logits[..vocab], &floats(&g["first_logits"]));
    assert!(d_first <= tol, "{who}: first logits differ by {d_first}");
    let hidden = out.get("hidden").expect("hidden").1.to_vec();

    // Greedy decode, one token per step through the latent cache.
    let want = ids(&g["greedy_ids"]);
    let mut tok = argmax(&logits[(n - 1) * vocab..]);
    let mut got = vec![tok];
    while got.len() < want.len() {
        let pos = n + got.len() - 1;
        let batch = Batch::sequence(slot, pos, &[tok]);
        let mut graph = model.build_step(&batch, &LogitRows::last_of_each_sequence(&batch));
        if let Some(f) = form {
            graph.set_mla_form(f);
        }
        let out = backend
            .execute(&graph, &batch, &mut cache)
            .expect("decode runs");
        tok = argmax(out.get("logits").expect("logits").1);
        got.push(tok);
    }
    if greedy {
        assert_eq!(got, want, "{who}: greedy continuation");
    }

    // The MTP module: position j gets the main model's hidden state at j and token j+1.
    if let (Some(mtp), Some(ds)) = (g.get("mtp_golden"), mtp) {
        let inputs = ids(&mtp["input_token_ids"]);
        let d = model.info().hidden_size;
        let mut batch = Batch::sequence(slot, 0, &inputs);
        batch
            .inputs
            .push(("hidden".into(), hidden[..inputs.len() * d].to_vec()));
        let mut graph = ds
            .build_mtp_step(&batch, &LogitRows::All)
            .expect("the fixture has an MTP layer");
        if let Some(f) = form {
            graph.set_mla_form(f);
        }
        let out = backend
            .execute(&graph, &batch, &mut cache)
            .expect("mtp runs");
        let logits = out.get("logits").expect("logits").1;
        let got: Vec<u32> = logits.chunks(vocab).map(argmax).collect();
        assert_eq!(got, ids(&mtp["argmax"]), "{who}: MTP argmax");
        let d = max_abs_diff(
            &logits[(inputs.len() - 1) * vocab..],
            &floats(&mtp["last_logits"]),
        );
        assert!(d <= tol, "{who}: MTP last logits differ by {d}");
    }
}

fn check_everywhere(name: &str) {
    let model = DeepSeek::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let m = Some(&model);
    check_model(name, &model, m, &Reference, Some(MlaForm::Absorbed));
    check_model(name, &model, m, &Reference, Some(MlaForm::Expanded));
    for table in KernelTable::available() {
        for threads in [1, 2, 3] {
            let cpu = CpuBackend::with_kernels(Some(threads), table);
            check_model(name, &model, m, &cpu, None);
        }
    }
    let cpu = CpuBackend::new(Some(2));
    check_model(name, &model, m, &cpu, Some(MlaForm::Expanded));
}

/// The dense (Llama, Qwen2) fixtures, loaded through `load_model` like the CLI does.
fn check_dense(name: &str) {
    let model = load_model(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    check_model(name, model.as_ref(), None, &Reference, None);
    for table in KernelTable::available() {
        for threads in [1, 2, 3] {
            let cpu = CpuBackend::with_kernels(Some(threads), table);
            check_model(name, model.as_ref(), None, &cpu, None);
        }
    }
}

#[test]
fn qwen2_bf16_with_qkv_bias() {
    check_dense("qwen2-tiny");
}

#[test]
fn qwen2_tied_embeddings() {
    check_dense("qwen2-tied-tiny");
}

#[test]
fn llama3_rope_scaling_gqa() {
    check_dense("llama-tiny");
}

#[test]
fn deepseek_v3_bf16() {
    check_everywhere("deepseek-v3-tiny");
}

#[test]
fn deepseek_v3_fp8_sharded() {
    check_everywhere("deepseek-v3-fp8-tiny");
}

#[test]
fn deepseek_v3_fp8_against_bf16_activations() {
    let name = "deepseek-v3-fp8-tiny";
    let model = DeepSeek::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    for table in KernelTable::available() {
        let table = table.with_fp8_activations(Fp8Activations::Bf16);
        for threads in [1, 2] {
            let cpu = CpuBackend::with_kernels(Some(threads), table);
            check_model_within(name, &model, Some(&model), &cpu, None, TOL_BF16, false);
        }
    }
}

#[test]
fn deepseek_v2_lite_f32() {
    check_everywhere("deepseek-v2-lite-tiny");
}

#[test]
fn deepseek_v2_f16() {
    check_everywhere("deepseek-v2-tiny");
}

#[test]
fn deepseek_r1_demo_trained() {
    // The bundled demo model (`models/deepseek-r1-demo`, trained by scripts/train_demo.py; its
    // golden.json is written there the same way, on a held-out chat prompt).
    check_everywhere("../../models/deepseek-r1-demo");
}

#[test]
fn several_sequences_in_one_batch_match_separate_runs() {
    // Continuous batching's core property: two prompts in one step give the same logits as
    // each alone.
    let model = DeepSeek::open(&fixture("deepseek-v3-tiny")).expect("loads");
    let cpu = CpuBackend::new(Some(2));
    let a: Vec<u32> = vec![0, 5, 9, 200, 17];
    let b: Vec<u32> = vec![0, 42, 42, 7];
    let vocab = model.info().vocab_size;
    let alone = |p: &[u32]| {
        let mut cache = new_cache(&model);
        let s = cache.alloc_slot();
        let batch = Batch::sequence(s, 0, p);
        let g = model.build_step(&batch, &LogitRows::All);
        cpu.execute(&g, &batch, &mut cache)
            .expect("runs")
            .get("logits")
            .expect("logits")
            .1
            .to_vec()
    };
    let (la, lb) = (alone(&a), alone(&b));
    let mut cache = new_cache(&model);
    let (sa, sb) = (cache.alloc_slot(), cache.alloc_slot());
    let mut batch = Batch::sequence(sa, 0, &a);
    let other = Batch::sequence(sb, 0, &b);
    batch.tokens.extend(&other.tokens);
    batch.positions.extend(&other.positions);
    batch.slots.extend(&other.slots);
    let g = model.build_step(&batch, &LogitRows::All);
    let out = cpu.execute(&g, &batch, &mut cache).expect("runs");
    let both = out.get("logits").expect("logits").1;
    assert!(max_abs_diff(&both[..a.len() * vocab], &la) <= 1e-5);
    assert!(max_abs_diff(&both[a.len() * vocab..], &lb) <= 1e-5);
}
