//! GGUF files with llama.cpp's IQ block types (the "i-quants" of Unsloth's DeepSeek-R1 files),
//! end to end: a small qwen2-shaped model whose matmul weights are random valid blocks of every
//! IQ type, and the DeepSeek-V3 tiny fixture (MLA, routed and shared experts) with its matmul
//! weights, experts included, as random `IQ4_NL` blocks (its rows of 64 fit no 256-element
//! type), run, and their logits are those of the same models with the weights dequantized and
//! stored as f32:
//!
//! - on the reference interpreter, exactly (it computes with the dequantized weights);
//! - on every CPU kernel table, within the error of the 8-bit activations of the integer
//!   kernels (decode-sized prompts) and the bf16 rounding of the dequantized-panel path
//!   (prefill-sized ones): 5% of the largest logit (measured: 2%, this random 2-layer model
//!   amplifies it);
//! - and, on the integer path, the SIMD tables agree with the generic one far closer than that
//!   (their IQ integer dot products are the generic ones; the other ops round differently).

use jing_cpu::kernels::{KernelTable, DEQUANT_MIN_TOKENS};
use jing_cpu::CpuBackend;
use jing_formats::gguf::{GgmlType, GgufFile, GgufValue, GgufWriter};
use jing_graph::{Backend, Batch, KvCache, Reference};
use jing_models::{load_model, CausalLm, LogitRows};
use jing_tensor::{quant, DType};
use std::path::PathBuf;

mod common;
use common::{fixture, max_abs_diff, Scratch};

const D: usize = 256;
const FF: usize = 512;
const VOCAB: usize = 16;
const LAYERS: usize = 2;

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// f16 bits of a random value of magnitude about `m` (a power-of-two band), random sign.
fn f16_near(rng: &mut Rng, m: f32) -> u16 {
    let e = (m.log2().floor() as i32 + 15).clamp(1, 30) as u16;
    let mant = (rng.next() % 1024) as u16;
    let sign = (rng.next() & 1) as u16;
    sign << 15 | e << 10 | mant
}

/// A `[rows, cols]` weight of random valid `dtype` blocks whose values are about 0.03, and its
/// dequantized values.
fn iq_weight(rng: &mut Rng, dtype: DType, rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
    let bb = dtype.block_bytes();
    let mut bytes: Vec<u8> = (0..dtype.row_bytes(cols) * rows)
        .map(|_| rng.next() as u8)
        .collect();
    // The mean |value| of this type's blocks with d = 1, to pick `d`.
    let bs = dtype.block_size();
    let mut probe = bytes[..bb].to_vec();
    quant::iq::set_d(dtype, &mut probe, 0x3c00);
    let mut v = vec![0f32; bs];
    quant::dequantize_row(dtype, &probe, &mut v);
    let mean = v.iter().map(|x| x.abs()).sum::<f32>() / bs as f32;
    for blk in bytes.chunks_exact_mut(bb) {
        let d = f16_near(rng, 0.03 / mean);
        quant::iq::set_d(dtype, blk, d);
    }
    let mut values = vec![0f32; rows * cols];
    quant::dequantize_row(dtype, &bytes, &mut values);
    (bytes, values)
}

/// The model twice: matmul weights as IQ blocks, and the same weights dequantized to f32.
fn write_models(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let head = |w: GgufWriter| {
        w.kv("general.architecture", GgufValue::String("qwen2".into()))
            .kv("qwen2.block_count", GgufValue::U32(LAYERS as u32))
            .kv("qwen2.embedding_length", GgufValue::U32(D as u32))
            .kv("qwen2.feed_forward_length", GgufValue::U32(FF as u32))
            .kv("qwen2.attention.head_count", GgufValue::U32(4))
            .kv("qwen2.attention.head_count_kv", GgufValue::U32(2))
            .kv("qwen2.rope.freq_base", GgufValue::F32(1e4))
            .kv(
                "qwen2.attention.layer_norm_rms_epsilon",
                GgufValue::F32(1e-6),
            )
            .kv("qwen2.context_length", GgufValue::U32(256))
    };
    let embd: Vec<f32> = (0..VOCAB * D).map(|_| rng.unit() * 2.0 - 1.0).collect();
    let out: Vec<f32> = (0..VOCAB * D).map(|_| (rng.unit() - 0.5) * 0.2).collect();
    let mut iq = head(GgufWriter::new())
        .f32_tensor("token_embd.weight", &[VOCAB, D], &embd)
        .f32_tensor("output.weight", &[VOCAB, D], &out)
        .f32_tensor("output_norm.weight", &[D], &[1.0; D]);
    let mut f32s = head(GgufWriter::new())
        .f32_tensor("token_embd.weight", &[VOCAB, D], &embd)
        .f32_tensor("output.weight", &[VOCAB, D], &out)
        .f32_tensor("output_norm.weight", &[D], &[1.0; D]);
    // Every IQ type in turn over the 14 matmul weights (IQ4_NL, the one 32-element type, where
    // the row is not 256 wide is never needed: all rows are).
    let mut types = DType::IQUANTS.iter().cycle();
    for l in 0..LAYERS {
        let p = format!("blk.{l}.");
        for (n, shape) in [
            ("attn_q.weight", [D, D]),
            ("attn_k.weight", [128, D]),
            ("attn_v.weight", [128, D]),
            ("attn_output.weight", [D, D]),
            ("ffn_gate.weight", [FF, D]),
            ("ffn_up.weight", [FF, D]),
            ("ffn_down.weight", [D, FF]),
        ] {
            let dtype = *types.next().unwrap();
            let (bytes, values) = iq_weight(&mut rng, dtype, shape[0], shape[1]);
            let ty = GgmlType::from_id(dtype.ggml_type().unwrap()).unwrap();
            iq = iq.tensor(&format!("{p}{n}"), ty, &shape, bytes);
            f32s = f32s.f32_tensor(&format!("{p}{n}"), &shape, &values);
        }
        for (n, len) in [
            ("attn_norm.weight", D),
            ("ffn_norm.weight", D),
            ("attn_q.bias", D),
            ("attn_k.bias", 128),
            ("attn_v.bias", 128),
        ] {
            let v: Vec<f32> = if n.contains("norm") {
                vec![1.0; len]
            } else {
                (0..len).map(|_| (rng.unit() - 0.5) * 0.1).collect()
            };
            iq = iq.f32_tensor(&format!("{p}{n}"), &[len], &v);
            f32s = f32s.f32_tensor(&format!("{p}{n}"), &[len], &v);
        }
    }
    let (a, b) = (dir.join("iq.gguf"), dir.join("f32.gguf"));
    std::fs::write(&a, iq.to_bytes()).unwrap();
    std::fs::write(&b, f32s.to_bytes()).unwrap();
    (a, b)
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

/// The IQ model against its f32 twin (see the module docs) on a decode-sized and a
/// prefill-sized prompt.
fn check_twins(iq_path: &std::path::Path, f32_path: &std::path::Path, vocab: u32) {
    let iq = load_model(iq_path).unwrap_or_else(|e| panic!("IQ model: {e}"));
    let float = load_model(f32_path).unwrap();
    let short: Vec<u32> = vec![1, 5, 7, 11, 3, 2];
    let long: Vec<u32> = (0..DEQUANT_MIN_TOKENS as u32 + 4)
        .map(|i| (i * 7 + 3) % vocab)
        .collect();
    for prompt in [&short, &long] {
        let want = prompt_logits(float.as_ref(), &Reference, prompt);
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let got = prompt_logits(iq.as_ref(), &Reference, prompt);
        assert_eq!(
            max_abs_diff(&got, &want),
            0.0,
            "reference, {} tokens",
            prompt.len()
        );
        let mut generic: Option<Vec<f32>> = None;
        for table in KernelTable::available() {
            let cpu = CpuBackend::with_kernels(Some(2), table);
            let got = prompt_logits(iq.as_ref(), &cpu, prompt);
            let d = max_abs_diff(&got, &want);
            let g = generic.get_or_insert_with(|| got.clone());
            let dg = max_abs_diff(&got, g);
            eprintln!(
                "{} on cpu {}, {} tokens: max |diff| {d:.2e} (logits up to {scale:.2}), vs generic {dg:.2e}",
                iq_path.display(),
                cpu.name(),
                prompt.len()
            );
            assert!(
                d <= 0.05 * scale,
                "cpu {}, {} tokens: {d} > 5% of {scale}",
                cpu.name(),
                prompt.len()
            );
            assert!(
                prompt.len() >= DEQUANT_MIN_TOKENS || dg <= 1e-5 * scale,
                "cpu {}, {} tokens: {dg} from the generic table",
                cpu.name(),
                prompt.len()
            );
        }
    }
}

#[test]
fn iq_weights_give_the_logits_of_their_dequantized_values() {
    let dir = Scratch::new("iq-qwen2");
    let (iq_path, f32_path) = write_models(&dir.0);
    check_twins(&iq_path, &f32_path, VOCAB as u32);
}

#[test]
fn deepseek_v3_with_iq4_nl_experts_gives_the_logits_of_its_dequantized_weights() {
    let dir = Scratch::new("iq-deepseek");
    let src = GgufFile::open(&fixture("deepseek-v3-tiny").join("model-f16.gguf")).unwrap();
    let mut rng = Rng(0x0bad_cafe_f00d_d00d);
    let (mut iq, mut f32s) = (GgufWriter::new(), GgufWriter::new());
    for (k, v) in src.metadata() {
        if k != "general.alignment" {
            iq = iq.kv(k, v.clone());
            f32s = f32s.kv(k, v.clone());
        }
    }
    let mut converted = 0;
    for t in src.tensors() {
        let (name, shape) = (&t.info.name, &t.info.shape);
        let cols = *shape.last().unwrap();
        let keep = shape.len() < 2
            || name.starts_with("token_embd")
            || name.contains("norm")
            || name.contains("ffn_gate_inp")
            || !cols.is_multiple_of(32);
        if keep {
            let bytes = src.bytes(name).unwrap().as_slice().to_vec();
            iq = iq.tensor(name, t.info.ggml_type, shape, bytes.clone());
            f32s = f32s.tensor(name, t.info.ggml_type, shape, bytes);
            continue;
        }
        let dtype = if cols.is_multiple_of(256) {
            DType::IQ2XXS
        } else {
            DType::IQ4NL
        };
        let rows = shape.iter().product::<usize>() / cols;
        let (bytes, values) = iq_weight(&mut rng, dtype, rows, cols);
        let ty = GgmlType::from_id(dtype.ggml_type().unwrap()).unwrap();
        iq = iq.tensor(name, ty, shape, bytes);
        f32s = f32s.f32_tensor(name, shape, &values);
        converted += 1;
    }
    assert!(converted >= 10, "{converted} tensors converted");
    let (a, b) = (dir.0.join("ds-iq.gguf"), dir.0.join("ds-f32.gguf"));
    std::fs::write(&a, iq.to_bytes()).unwrap();
    std::fs::write(&b, f32s.to_bytes()).unwrap();
    let vocab = src
        .opt_strings("tokenizer.ggml.tokens")
        .unwrap()
        .map_or(64, |t| t.len());
    check_twins(&a, &b, vocab.min(1000) as u32);
}
