//! Interleaved `Q4_K`, `Q6_K`, `Q8_0` and `Q5_0` rows end to end. A Qwen2-shaped model whose
//! matmul weights are whole 256-blocks wide (hidden 256; the fixtures' hidden 64 has no such
//! rows) is quantized to `Q4_K` (then `Q6_K`, `Q8_0`, `Q5_0`) as it loads, once kept as stored and once
//! with every matmul weight interleaved by 16 rows as `CpuBackend::prepare_linear` does on an
//! AVX-512 VNNI CPU. The logits of a prefill of 20 tokens (dequantized weights), then of steps
//! of 3 and 1 tokens (8-bit activations, the interleaved kernel where the CPU has it), must be
//! the same bit for bit on every CPU kernel table and on the reference interpreter:
//! interleaving only moves bytes, and every kernel on the interleaved rows computes what the
//! generic one computes on the stored rows, as the tables' own `Q4_K` and `Q6_K` kernels do on
//! the stored rows. Their `Q8_0` and `Q5_0` kernels on the stored rows add a row's block terms
//! in another order (the interleaved kernels are the generic ones bit for bit, `jing-cpu`'s
//! kernel tests), so for those the tables agree up to that order and the reference exactly.
//!
//! Float weights in column panels (`jing_tensor::panels`) are checked the same way on a model
//! with rows longer than a panel.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use jing_cpu::kernels::KernelTable;
use jing_cpu::CpuBackend;
use jing_formats::quantize::{quantize_to_gguf, QuantTarget, QuantizeOptions};
use jing_formats::DType;
use jing_graph::{Backend, Batch, KvCache, Reference};
use jing_models::{load_model_prepared, CausalLm, LoadQuant, LogitRows, PrepareLinear};
use jing_tensor::Weight;

mod common;
use common::Scratch;

const HIDDEN: usize = 256;
const INTER: usize = 512;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const VOCAB: usize = 512;
const LAYERS: usize = 2;

/// A Qwen2 checkpoint of random f32 weights (q/k/v biases), with an LM head of its own or
/// (`tied`) none, the embedding table serving as the head.
fn write_model(dir: &Path, tied: bool) {
    write_model_inter(dir, tied, INTER)
}

/// [`write_model`] with MLPs `inter` wide.
fn write_model_inter(dir: &Path, tied: bool, inter: usize) {
    let hd = HIDDEN / HEADS;
    let config = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": HIDDEN,
        "intermediate_size": inter,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": tied,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![VOCAB, HIDDEN]),
        ("model.norm.weight".into(), vec![HIDDEN]),
    ];
    if !tied {
        shapes.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN]));
    }
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        for (name, shape) in [
            ("input_layernorm.weight", vec![HIDDEN]),
            ("post_attention_layernorm.weight", vec![HIDDEN]),
            ("self_attn.q_proj.weight", vec![HEADS * hd, HIDDEN]),
            ("self_attn.q_proj.bias", vec![HEADS * hd]),
            ("self_attn.k_proj.weight", vec![KV_HEADS * hd, HIDDEN]),
            ("self_attn.k_proj.bias", vec![KV_HEADS * hd]),
            ("self_attn.v_proj.weight", vec![KV_HEADS * hd, HIDDEN]),
            ("self_attn.v_proj.bias", vec![KV_HEADS * hd]),
            ("self_attn.o_proj.weight", vec![HIDDEN, HEADS * hd]),
            ("mlp.gate_proj.weight", vec![inter, HIDDEN]),
            ("mlp.up_proj.weight", vec![inter, HIDDEN]),
            ("mlp.down_proj.weight", vec![HIDDEN, inter]),
        ] {
            shapes.push((format!("{p}.{name}"), shape));
        }
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let norm = name.ends_with("norm.weight");
            (0..n)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    let v = if norm { 1.0 + 0.2 * u } else { 0.12 * u };
                    v.to_le_bytes()
                })
                .collect()
        })
        .collect();
    jing_formats::safetensors::write(
        &dir.join("model.safetensors"),
        shapes
            .iter()
            .zip(&data)
            .map(|((name, shape), d)| (name.as_str(), DType::F32, shape.as_slice(), d.as_slice())),
    )
    .unwrap();
}

/// Logits of a 20-token prefill, then of a 3-token and a 1-token step.
fn logits(model: &dyn CausalLm, backend: &dyn Backend) -> Vec<f32> {
    let info = model.info();
    let mut cache = KvCache::new(info.cache_layers, info.cache_width, 64);
    let slot = cache.alloc_slot();
    let tokens: Vec<u32> = (0..24).map(|i| (i * 37 + 11) % VOCAB as u32).collect();
    let mut out = Vec::new();
    for (pos, len) in [(0, 20), (20, 3), (23, 1)] {
        let batch = Batch::sequence(slot, pos, &tokens[pos..pos + len]);
        let graph = model.build_step(&batch, &LogitRows::All);
        let step = backend.execute(&graph, &batch, &mut cache).expect("step");
        out.extend_from_slice(step.get("logits").expect("logits").1);
    }
    out
}

/// A preparation that interleaves every weight it can, counting them.
fn counting_prepare() -> (PrepareLinear, Arc<AtomicUsize>) {
    let interleaved_weights = Arc::new(AtomicUsize::new(0));
    let count = interleaved_weights.clone();
    let prepare: PrepareLinear = Arc::new(move |w: &Weight| {
        let p = w.interleave_rows16();
        count.fetch_add(p.is_some() as usize, Ordering::Relaxed);
        p
    });
    (prepare, interleaved_weights)
}

#[test]
fn interleaved_models_give_the_same_logits() {
    let dir = Scratch::new("interleaved-rows");
    write_model(&dir.0, false);
    for target in ["q4_k", "q6_k", "q8_0", "q5_0"] {
        let quant = LoadQuant::new(QuantTarget::parse(target).unwrap(), 2);
        let plain = load_model_prepared(&dir.0, Some(&quant), None).unwrap();
        let (prepare, interleaved_weights) = counting_prepare();
        let interleaved = load_model_prepared(&dir.0, Some(&quant), Some(&prepare)).unwrap();
        // q, k, v, o, gate, up, down per layer, and the LM head.
        assert_eq!(
            interleaved_weights.load(Ordering::Relaxed),
            7 * LAYERS + 1,
            "{target}"
        );
        same_logits(
            target,
            plain.as_ref(),
            interleaved.as_ref(),
            target.ends_with("_k"),
        );
    }
}

/// Float weights with rows longer than a panel, in column panels as `CpuBackend::prepare_linear`
/// loads them on x86 (`Weight::in_panels`): a model whose MLPs are 2304 wide, so that its down
/// projections (`[256, 2304]`) have rows of two panels, in f32 and converted to bf16 as it
/// loads. The reference reads the same values (bit for bit); the kernel tables add each row's
/// two panel sums, so they agree up to that order.
#[test]
fn float_models_in_panels_give_the_same_logits() {
    let dir = Scratch::new("panels");
    write_model_inter(&dir.0, false, jing_tensor::panels::PANEL_COLS + 256);
    let bf16 = LoadQuant::new(QuantTarget::parse("bf16").unwrap(), 2);
    for (what, quant) in [("f32", None), ("bf16", Some(&bf16))] {
        let plain = load_model_prepared(&dir.0, quant, None).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let prepare: PrepareLinear = Arc::new(move |w: &Weight| {
            let p = w.in_panels();
            counted.fetch_add(p.is_some() as usize, Ordering::Relaxed);
            p
        });
        let in_panels = load_model_prepared(&dir.0, quant, Some(&prepare)).unwrap();
        // The down projection of each layer.
        assert_eq!(count.load(Ordering::Relaxed), LAYERS, "{what}");
        same_logits(what, plain.as_ref(), in_panels.as_ref(), false);
    }
}

/// Tied embeddings: the table, quantized in a GGUF file (`Q6_K` for `q4_k_m`, `Q8_0` for
/// `q8_0`), is interleaved once for the LM head and read by rows from that layout for the
/// embedding.
#[test]
fn a_tied_table_interleaved_gives_the_same_logits() {
    let dir = Scratch::new("interleaved-tied");
    write_model(&dir.0, true);
    for (target, exact) in [("q4_k_m", true), ("q8_0", false)] {
        let file = dir.0.join(format!("tied-{target}.gguf"));
        let opts = QuantizeOptions::new(QuantTarget::parse(target).unwrap(), 2);
        quantize_to_gguf(&dir.0, &file, &opts, &mut |_| {}).unwrap();
        let plain = load_model_prepared(&file, None, None).unwrap();
        let (prepare, interleaved_weights) = counting_prepare();
        let interleaved = load_model_prepared(&file, None, Some(&prepare)).unwrap();
        // q, k, v, o, gate, up, down per layer, and the table once.
        assert_eq!(
            interleaved_weights.load(Ordering::Relaxed),
            7 * LAYERS + 1,
            "{target}"
        );
        same_logits(target, plain.as_ref(), interleaved.as_ref(), exact);
    }
}

/// The logits of `plain` and `interleaved` on the reference (bit for bit) and on every kernel
/// table (bit for bit where `tables_exact`, else within the order of a row's block terms).
fn same_logits(target: &str, plain: &dyn CausalLm, interleaved: &dyn CausalLm, tables_exact: bool) {
    // (name, backend, whether it must give the same bits)
    let mut backends: Vec<(String, Box<dyn Backend>, bool)> =
        vec![("reference".into(), Box::new(Reference), true)];
    for table in KernelTable::available() {
        backends.push((
            table.name.into(),
            Box::new(CpuBackend::with_kernels(Some(2), table)),
            tables_exact,
        ));
    }
    for (name, backend, exact) in &backends {
        let want = logits(plain, backend.as_ref());
        let got = logits(interleaved, backend.as_ref());
        assert!(
            want.iter().all(|v| v.is_finite()),
            "{target} {name}: logits not finite"
        );
        let same = if *exact {
            want.iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        } else {
            // The order of ~K/32 f32 terms per row: a few ulps of the largest logit.
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            want.iter()
                .zip(&got)
                .all(|(a, b)| (a - b).abs() <= 1e-5 * scale)
        };
        assert!(
            same,
            "{target} {name}: interleaved weights changed the logits"
        );
    }
}
