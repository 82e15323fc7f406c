//! The GGUF reader: every metadata type, tensor layouts, split sets, the HF view, hostile files
//! (each limit and check named in the error), and a time-boxed property test that mutates
//! valid files: the reader returns an error or a valid file, never panics or reads past the
//! bytes it was given.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::TempDir;
use jing_formats::gguf::{
    parse_header, GgmlType, GgufArray, GgufFile, GgufValue, GgufWriter, HfView,
};
use jing_formats::{Bytes, DType, FormatError, ModelDir, TensorStore};
use proptest::prelude::*;

fn ty(name: &str) -> GgmlType {
    GgmlType::from_name(name).expect("known type")
}

fn parse(bytes: &[u8]) -> Result<GgufFile, FormatError> {
    GgufFile::from_bytes(Path::new("t.gguf"), Bytes::from_vec(bytes.to_vec()))
}

fn err(bytes: &[u8]) -> String {
    match parse(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A file with one of every metadata type, nested arrays, and tensors of several types.
fn rich() -> GgufWriter {
    let q8_row: Vec<u8> = (0..34 * 2).map(|i| (i * 7) as u8).collect();
    GgufWriter::new()
        .kv("general.architecture", GgufValue::String("llama".into()))
        .kv("u8", GgufValue::U8(200))
        .kv("i8", GgufValue::I8(-5))
        .kv("u16", GgufValue::U16(60000))
        .kv("i16", GgufValue::I16(-30000))
        .kv("u32", GgufValue::U32(4_000_000_000))
        .kv("i32", GgufValue::I32(-7))
        .kv("u64", GgufValue::U64(u64::MAX))
        .kv("i64", GgufValue::I64(i64::MIN))
        .kv("f32", GgufValue::F32(1.5))
        .kv("f64", GgufValue::F64(-2.25))
        .kv("bool", GgufValue::Bool(true))
        .kv("str", GgufValue::String("héllo 世界".into()))
        .kv(
            "strings",
            GgufValue::Array(GgufArray::String(vec!["a".into(), "".into(), "ß".into()])),
        )
        .kv("ints", GgufValue::Array(GgufArray::I32(vec![1, -2, 3])))
        .kv(
            "nested",
            GgufValue::Array(GgufArray::Array(vec![
                GgufArray::U8(vec![1, 2]),
                GgufArray::Array(vec![GgufArray::F64(vec![0.5])]),
                GgufArray::Bool(vec![]),
            ])),
        )
        .f32_tensor("w", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        .tensor("q", ty("Q8_0"), &[2, 32], q8_row)
        .tensor(
            "e",
            ty("F16"),
            &[2, 2, 2],
            (0..8u16)
                .flat_map(|i| half::f16::from_f32(i as f32).to_bits().to_le_bytes())
                .collect(),
        )
        .f32_tensor("v", &[4], &[0.5; 4])
}

#[test]
fn every_metadata_type_round_trips() {
    let f = parse(&rich().to_bytes()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.get("u8"), Some(&GgufValue::U8(200)));
    assert_eq!(f.get("i8"), Some(&GgufValue::I8(-5)));
    assert_eq!(f.get("u16"), Some(&GgufValue::U16(60000)));
    assert_eq!(f.get("i16"), Some(&GgufValue::I16(-30000)));
    assert_eq!(f.opt_u64("u32").unwrap(), Some(4_000_000_000));
    assert!(f.opt_u64("i32").is_err(), "negative is not unsigned");
    assert_eq!(f.opt_u64("u64").unwrap(), Some(u64::MAX));
    assert_eq!(f.get("i64").unwrap().as_i64(), Some(i64::MIN));
    assert_eq!(f.opt_f64("f32").unwrap(), Some(1.5));
    assert_eq!(f.opt_f64("f64").unwrap(), Some(-2.25));
    assert_eq!(f.opt_bool("bool").unwrap(), Some(true));
    assert_eq!(f.opt_str("str").unwrap(), Some("héllo 世界"));
    assert_eq!(
        f.opt_strings("strings").unwrap().unwrap(),
        &["a".to_string(), "".into(), "ß".into()]
    );
    assert_eq!(f.opt_i64s("ints").unwrap(), Some(vec![1, -2, 3]));
    let nested = f.get("nested").unwrap().as_array().unwrap();
    assert_eq!(nested.len(), 3);
    // Wrong types name the key and what was expected.
    let e = f.opt_str("u8").unwrap_err().to_string();
    assert!(e.contains("`u8`") && e.contains("string"), "{e}");
    // Metadata keeps file order.
    assert_eq!(f.metadata()[1].0, "u8");
}

#[test]
fn tensors_are_zero_copy_views_with_reversed_dims() {
    let bytes = rich().to_bytes();
    let f = parse(&bytes).unwrap();
    assert_eq!(f.len(), 4);
    let w = f.weight("w").unwrap();
    assert_eq!(w.shape, vec![2, 3]);
    assert_eq!(w.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let t = f.tensor("w").unwrap();
    assert_eq!(t.info.ne, vec![3, 2], "GGUF stores innermost first");
    assert_eq!(t.info.range.start % 32, 0, "data aligned");
    let q = f.weight("q").unwrap();
    assert_eq!((q.dtype, q.shape.clone()), (DType::Q8_0, vec![2, 32]));
    assert_eq!(q.data.len(), 68);
    let e = f.weight("e").unwrap();
    assert_eq!(e.shape, vec![2, 2, 2]);
    assert_eq!(e.to_f32_vec(), (0..8).map(|i| i as f32).collect::<Vec<_>>());
    assert!(matches!(
        f.weight("absent"),
        Err(FormatError::MissingTensor { .. })
    ));
}

#[test]
fn custom_alignment_is_honoured() {
    let bytes = GgufWriter::new()
        .alignment(64)
        .f32_tensor("a", &[3], &[1.0, 2.0, 3.0])
        .f32_tensor("b", &[1], &[4.0])
        .to_bytes();
    let h = parse_header(Path::new("t.gguf"), &bytes).unwrap();
    assert_eq!(h.alignment, 64);
    assert!(h.tensors.iter().all(|t| t.range.start % 64 == 0));
    let f = parse(&bytes).unwrap();
    assert_eq!(f.weight("b").unwrap().to_f32_vec(), vec![4.0]);
}

/// Replace the 8 bytes at `at` with `v`.
fn patch_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn hostile_headers_are_errors_that_say_what_is_wrong() {
    let good = rich().to_bytes();
    // Magic, version, endianness.
    assert!(err(b"GGUX\x03\0\0\0").contains("magic"));
    assert!(err(b"").contains("file ends"));
    let mut v1 = good.clone();
    v1[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(err(&v1).contains("version 1"));
    let mut be = good.clone();
    be[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(err(&be).contains("big-endian"));
    let mut v9 = good.clone();
    v9[4..8].copy_from_slice(&9u32.to_le_bytes());
    assert!(err(&v9).contains("unknown GGUF version 9"));
    // Counts over the limits.
    let mut t = good.clone();
    patch_u64(&mut t, 8, u64::MAX);
    assert!(err(&t).contains("tensors, over the limit"));
    let mut k = good.clone();
    patch_u64(&mut k, 16, 1 << 40);
    assert!(err(&k).contains("metadata entries, over the limit"));
    // A string length far past the file.
    let mut s = good.clone();
    let at = find(&s, b"general.architecture") - 8;
    patch_u64(&mut s, at, 1 << 62);
    assert!(err(&s).contains("over the"), "{}", err(&s));
    let mut s2 = good.clone();
    patch_u64(&mut s2, at, 60_000);
    assert!(err(&s2).contains("file ends"), "{}", err(&s2));
    // Truncations anywhere: an error, never a panic.
    for n in 0..good.len() {
        assert!(parse(&good[..n]).is_err(), "prefix of {n} bytes parsed");
    }
}

#[test]
fn hostile_values_and_tensor_infos_are_errors() {
    let e = |w: GgufWriter| err(&w.to_bytes());
    let deep = (0..6).fold(GgufArray::U8(vec![1]), |a, _| GgufArray::Array(vec![a]));
    assert!(e(GgufWriter::new().kv("d", GgufValue::Array(deep))).contains("nests arrays"));
    assert!(e(GgufWriter::new()
        .kv("k", GgufValue::U8(1))
        .kv("k", GgufValue::U8(2)))
    .contains("appears twice"));
    assert!(e(GgufWriter::new().alignment(48)).contains("power of two"));
    assert!(
        e(GgufWriter::new().kv("general.alignment", GgufValue::U64(32)))
            .contains("general.alignment")
    );
    assert!(e(GgufWriter::new()
        .f32_tensor("x", &[1], &[1.0])
        .f32_tensor("x", &[1], &[1.0]))
    .contains("appears twice"));
    assert!(e(GgufWriter::new().raw_tensor("x", 4, &[4], vec![0; 16])).contains("type id 4"));
    assert!(e(GgufWriter::new().raw_tensor("x", 0, &[], vec![])).contains("dimensions"));
    assert!(
        e(GgufWriter::new().raw_tensor("x", 0, &[1, 1, 1, 1, 1], vec![0; 4]))
            .contains("dimensions")
    );
    assert!(e(GgufWriter::new().raw_tensor("x", 8, &[33], vec![0; 68])).contains("block size"));
    assert!(
        e(GgufWriter::new().raw_tensor("x", 0, &[u64::MAX / 2, 4], vec![])).contains("overflows")
    );
    // Data past the end of the file.
    let mut short = GgufWriter::new()
        .f32_tensor("x", &[8], &[1.0; 8])
        .to_bytes();
    short.truncate(short.len() - 4);
    assert!(matches!(parse(&short), Err(FormatError::Truncated { .. })));
    // A bool that is neither 0 nor 1.
    let mut b = GgufWriter::new().kv("b", GgufValue::Bool(true)).to_bytes();
    // 24-byte header, 8-byte key length, the key, the 4-byte type, then the value.
    b[24 + 8 + 1 + 4] = 7;
    assert!(err(&b).contains("bool of value 7"));
    // Misaligned and overlapping offsets.
    let two = GgufWriter::new()
        .f32_tensor("a", &[8], &[1.0; 8])
        .f32_tensor("b", &[8], &[2.0; 8])
        .to_bytes();
    let off_b = find(&two, &[1, 0, 0, 0, 0, 0, 0, 0, b'b']) + 9 + 4 + 8 + 4;
    let mut mis = two.clone();
    patch_u64(&mut mis, off_b, 4);
    assert!(err(&mis).contains("alignment"));
    let mut over = two.clone();
    patch_u64(&mut over, off_b, 0);
    assert!(err(&over).contains("overlaps"));
}

#[test]
fn unsupported_types_are_named_with_the_tensor() {
    // TQ1_0: a valid GGUF type jing has no kernel for.
    let f = parse(
        &GgufWriter::new()
            .tensor("blk.0.ffn_down.weight", ty("TQ1_0"), &[1, 256], vec![0; 54])
            .to_bytes(),
    )
    .unwrap();
    let e = f.weight("blk.0.ffn_down.weight").unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, FormatError::GgufTensorType { .. }), "{s}");
    assert!(
        s.contains("blk.0.ffn_down.weight") && s.contains("TQ1_0") && s.contains("Q8_0"),
        "{s}"
    );
    // The IQ types (llama.cpp's i-quants) are read.
    let f = parse(
        &GgufWriter::new()
            .tensor("a.weight", ty("IQ2_XXS"), &[2, 256], vec![0; 2 * 66])
            .tensor("b.weight", ty("IQ4_NL"), &[1, 64], vec![0; 2 * 18])
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(f.weight("a.weight").unwrap().dtype, DType::IQ2XXS);
    assert_eq!(f.weight("b.weight").unwrap().dtype, DType::IQ4NL);
}

/// A tiny but complete qwen2 GGUF (2 layers) with `ffn_down` of type `down`.
fn tiny_qwen2(down: GgmlType) -> GgufWriter {
    let (d, ff, v) = (32usize, 32usize, 8usize);
    let mut w = GgufWriter::new()
        .kv("general.architecture", GgufValue::String("qwen2".into()))
        .kv("qwen2.block_count", GgufValue::U32(2))
        .kv("qwen2.embedding_length", GgufValue::U32(d as u32))
        .kv("qwen2.feed_forward_length", GgufValue::U32(ff as u32))
        .kv("qwen2.attention.head_count", GgufValue::U32(4))
        .kv("qwen2.attention.head_count_kv", GgufValue::U32(2))
        .kv("qwen2.rope.freq_base", GgufValue::F32(1e6))
        .kv(
            "qwen2.attention.layer_norm_rms_epsilon",
            GgufValue::F32(1e-6),
        )
        .kv("qwen2.context_length", GgufValue::U32(4096))
        .f32_tensor("token_embd.weight", &[v, d], &vec![0.1; v * d])
        .f32_tensor("output_norm.weight", &[d], &[1.0; 32]);
    for l in 0..2 {
        let p = format!("blk.{l}.");
        for (n, shape) in [
            ("attn_q.weight", [d, d]),
            ("attn_k.weight", [16, d]),
            ("attn_v.weight", [16, d]),
            ("attn_output.weight", [d, d]),
            ("ffn_gate.weight", [ff, d]),
            ("ffn_up.weight", [ff, d]),
        ] {
            w = w.f32_tensor(&format!("{p}{n}"), &shape, &vec![0.01; shape[0] * shape[1]]);
        }
        for (n, len) in [("attn_q.bias", d), ("attn_k.bias", 16), ("attn_v.bias", 16)] {
            w = w.f32_tensor(&format!("{p}{n}"), &[len], &vec![0.0; len]);
        }
        w = w
            .f32_tensor(&format!("{p}attn_norm.weight"), &[d], &[1.0; 32])
            .f32_tensor(&format!("{p}ffn_norm.weight"), &[d], &[1.0; 32]);
        let bytes = down.row_bytes(ff as u64).unwrap() as usize * d;
        w = w.tensor(
            &format!("{p}ffn_down.weight"),
            down,
            &[d, ff],
            vec![0; bytes],
        );
    }
    w
}

#[test]
fn hf_view_of_a_dense_file() {
    let d = TempDir::new("gguf-view");
    let path = d.write("m.gguf", tiny_qwen2(ty("F32")).to_bytes());
    let m = ModelDir::open(&path).unwrap();
    assert!(m.gguf.is_some());
    assert_eq!(m.config.str("model_type").unwrap(), "qwen2");
    assert_eq!(m.config.usize("num_hidden_layers").unwrap(), 2);
    assert_eq!(m.config.usize("num_key_value_heads").unwrap(), 2);
    assert_eq!(m.config.usize("vocab_size").unwrap(), 8);
    assert!(m.config.bool("tie_word_embeddings").unwrap());
    assert_eq!(m.config.f64("rope_theta").unwrap(), 1e6);
    let w = m
        .store
        .get("model.layers.1.self_attn.k_proj.weight")
        .unwrap();
    assert_eq!(w.shape, vec![16, 32]);
    assert!(m.store.contains("model.embed_tokens.weight"));
    assert!(!m.store.contains("lm_head.weight"));
    let e = m
        .store
        .get("model.layers.0.mlp.gate.weight")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not found") && e.contains("m.gguf"), "{e}");
    let e = m
        .store
        .get("model.layers.0.self_attn.q_b_proj.weight")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("blk.0.attn_q_b.weight"),
        "names the GGUF tensor: {e}"
    );
    // Unsupported block types fail when the tensor is read, naming it.
    let path = d.write("mxfp4.gguf", tiny_qwen2(ty("MXFP4")).to_bytes());
    let m = ModelDir::open(&path).unwrap();
    let e = m
        .store
        .get("model.layers.0.mlp.down_proj.weight")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("blk.0.ffn_down.weight") && e.contains("MXFP4"),
        "{e}"
    );
    // An IQ type is read.
    let path = d.write("iq.gguf", tiny_qwen2(ty("IQ4_NL")).to_bytes());
    let m = ModelDir::open(&path).unwrap();
    let w = m.store.get("model.layers.0.mlp.down_proj.weight").unwrap();
    assert_eq!(w.dtype, DType::IQ4NL);
}

/// MLA's `kv_b_proj` is rebuilt from `attn_k_b` and `attn_v_b` shapes, which come from the
/// file: shapes whose product overflows (a zero dimension keeps the tensor itself empty, so
/// the reader's size checks pass) are an error naming the tensor, not an arithmetic panic (a
/// fuzzer's find).
#[test]
fn hostile_kv_b_shapes_are_errors_not_overflows() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/deepseek-v2-tiny/model-f16.gguf");
    let Ok(mut b) = std::fs::read(&path) else {
        eprintln!("no fixture at {}; skipping", path.display());
        return;
    };
    let name = b"blk.0.attn_k_b.weight";
    // The tensor info: the name, then n_dims (u32), then the dims in GGUF order (innermost
    // first: nope, kv_lora, heads).
    let dims = find(&b, name) + name.len() + 4;
    patch_u64(&mut b, dims, 0);
    patch_u64(&mut b, dims + 16, 1 << 62);
    let e = HfView::new(Arc::new(parse(&b).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("attn_k_b") && e.contains("kv_b_proj") && e.contains("too large"),
        "{e}"
    );
}

#[test]
fn unsupported_architecture_and_missing_keys_are_named() {
    let w = GgufWriter::new().kv("general.architecture", GgufValue::String("mamba".into()));
    let f = Arc::new(parse(&w.to_bytes()).unwrap());
    let e = HfView::new(f).unwrap_err().to_string();
    assert!(e.contains("mamba") && e.contains("deepseek2"), "{e}");
    let f = Arc::new(parse(&GgufWriter::new().to_bytes()).unwrap());
    assert!(HfView::new(f)
        .unwrap_err()
        .to_string()
        .contains("general.architecture"));
    let w = tiny_qwen2(ty("F32")).kv(
        "qwen2.rope.scaling.type",
        GgufValue::String("longrope".into()),
    );
    let e = HfView::new(Arc::new(parse(&w.to_bytes()).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("qwen2.rope.scaling.type") && e.contains("longrope"),
        "{e}"
    );
}

#[test]
fn split_sets_merge_and_check_their_parts() {
    let d = TempDir::new("gguf-split");
    let part = |no: u16, count: u16, total: i32, names: &[&str]| {
        let mut w = GgufWriter::new();
        if no == 0 {
            w = w.kv("general.architecture", GgufValue::String("llama".into()));
        }
        w = w
            .kv("split.no", GgufValue::U16(no))
            .kv("split.count", GgufValue::U16(count))
            .kv("split.tensors.count", GgufValue::I32(total));
        for n in names {
            w = w.f32_tensor(n, &[2], &[no as f32, 1.0]);
        }
        w.to_bytes()
    };
    d.write("m-00001-of-00002.gguf", part(0, 2, 3, &["a", "b"]));
    d.write("m-00002-of-00002.gguf", part(1, 2, 3, &["c"]));
    for first in ["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"] {
        let f = GgufFile::open(&d.join(first)).unwrap();
        assert_eq!(f.paths().len(), 2);
        assert_eq!(f.len(), 3);
        assert_eq!(f.architecture(), Some("llama"));
        assert_eq!(f.weight("c").unwrap().to_f32_vec(), vec![1.0, 1.0]);
        assert_eq!(f.tensor("c").unwrap().file, d.join("m-00002-of-00002.gguf"));
    }
    // A missing part is named.
    d.write("n-00001-of-00002.gguf", part(0, 2, 3, &["a"]));
    let e = GgufFile::open(&d.join("n-00001-of-00002.gguf"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("n-00002-of-00002.gguf") && e.contains("part 2"),
        "{e}"
    );
    // Parts that disagree with their names, or with the tensor count.
    d.write("o-00001-of-00002.gguf", part(0, 2, 2, &["a"]));
    d.write("o-00002-of-00002.gguf", part(0, 2, 2, &["b"]));
    let e = GgufFile::open(&d.join("o-00001-of-00002.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("split.no"), "{e}");
    d.write("p-00001-of-00002.gguf", part(0, 2, 9, &["a"]));
    d.write("p-00002-of-00002.gguf", part(1, 2, 9, &["b"]));
    let e = GgufFile::open(&d.join("p-00001-of-00002.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("split.tensors.count"), "{e}");
    // The same tensor in two parts.
    d.write("q-00001-of-00002.gguf", part(0, 2, 2, &["a"]));
    d.write("q-00002-of-00002.gguf", part(1, 2, 2, &["a"]));
    assert!(matches!(
        GgufFile::open(&d.join("q-00001-of-00002.gguf")),
        Err(FormatError::DuplicateTensor { .. })
    ));
    // A renamed part of a set.
    d.write("renamed.gguf", part(0, 2, 3, &["a"]));
    let e = GgufFile::open(&d.join("renamed.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("split set"), "{e}");
}

/// Everything a caller may do with a parsed file, to prove none of it panics: metadata, every
/// tensor's bytes and weight, and the HF view with every tensor read through it.
fn exercise(bytes: &[u8]) {
    let Ok(f) = parse(bytes) else {
        return;
    };
    for (k, v) in f.metadata() {
        let _ = (k.len(), v.summary(), v.as_u64(), v.as_f64());
    }
    for t in f.tensors() {
        let b = f.bytes(&t.info.name).unwrap();
        assert_eq!(b.len(), t.info.range.len());
        if let Ok(w) = f.weight(&t.info.name) {
            if w.numel() <= 4096 {
                let _ = w.to_f32_vec();
            }
        }
    }
    if let Ok(view) = HfView::new(Arc::new(f)) {
        let store = TensorStore::from_gguf(Arc::new(view));
        for name in store.names() {
            if let Ok(w) = store.get(name) {
                if w.numel() <= 4096 {
                    let _ = w.to_f32_vec();
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    /// Overwrite 8 bytes with a little-endian number (counts, lengths, offsets, dims).
    Word(usize, u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop_oneof![
                any::<u64>(),
                0u64..64,
                Just(u64::MAX),
                Just(1 << 32),
                Just(i64::MAX as u64)
            ]
        )
            .prop_map(|(i, v)| Mutation::Word(i, v)),
    ]
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = b.len().max(1);
        match *m {
            Mutation::Set(i, v) if !b.is_empty() => b[i % n] = v,
            Mutation::Insert(i, v) => b.insert(i % (b.len() + 1), v),
            Mutation::Remove(i) if !b.is_empty() => {
                b.remove(i % n);
            }
            Mutation::Truncate(i) => b.truncate(i % n),
            Mutation::Word(i, v) if b.len() >= 8 => {
                let at = i % (b.len() - 7);
                b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    /// Mutated valid files parse into a valid file or fail with an error; nothing panics, and
    /// every view of a file that parses stays inside its bytes.
    #[test]
    fn mutated_files_never_panic(muts in prop::collection::vec(mutation(), 1..6), seed in 0usize..3) {
        let base = match seed {
            0 => rich().to_bytes(),
            1 => tiny_qwen2(ty("Q8_0")).to_bytes(),
            _ => GgufWriter::new()
                .kv("a", GgufValue::Array(GgufArray::Array(vec![GgufArray::String(vec!["x".into()])])))
                .f32_tensor("t", &[2, 2], &[1.0; 4])
                .to_bytes(),
        };
        let bytes = apply(base, &muts);
        let start = std::time::Instant::now();
        exercise(&bytes);
        prop_assert!(start.elapsed().as_secs() < 2, "parsing took {:?}", start.elapsed());
    }
}

#[test]
fn inspect_reports_a_gguf_file() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let r = jing_formats::inspect(&fixtures.join("deepseek-v3-tiny/model-q8_0.gguf")).unwrap();
    assert!(r.is_ok(), "{r}");
    let g = r.gguf.as_ref().expect("GGUF summary");
    assert_eq!(g.gguf_architecture.as_deref(), Some("deepseek2"));
    assert_eq!(r.architecture.as_deref(), Some("DeepseekV3ForCausalLM"));
    assert_eq!(r.model_type.as_deref(), Some("deepseek_v3"));
    let types: Vec<&str> = g.types.iter().map(|t| t.ggml_type.as_str()).collect();
    assert!(types.contains(&"Q8_0") && types.contains(&"F32") && types.contains(&"F16"));
    assert!(g
        .metadata
        .iter()
        .any(|(k, v)| k == "tokenizer.ggml.tokens" && v == "[string; 512]"));
    let text = r.to_string();
    assert!(
        text.contains("GGUF v3") && text.contains("deepseek2.expert_count"),
        "{text}"
    );
    assert!(text.contains("kv_lora_rank"), "{text}");
    let j = r.to_json();
    assert_eq!(j["gguf"]["architecture"], "deepseek2");
    // A split set reports both files.
    let r = jing_formats::inspect(
        &fixtures.join("deepseek-v2-lite-tiny/model-f32-00001-of-00002.gguf"),
    )
    .unwrap();
    assert_eq!(r.files, 2);
    assert!(r.is_ok(), "{r}");
    // Tensors of types jing cannot compute with are problems, named.
    let d = TempDir::new("gguf-inspect");
    let path = d.write("mxfp4.gguf", tiny_qwen2(ty("MXFP4")).to_bytes());
    let r = jing_formats::inspect(&path).unwrap();
    assert!(!r.is_ok());
    assert!(
        r.problems[0].contains("blk.0.ffn_down.weight (MXFP4)"),
        "{:?}",
        r.problems
    );
    // IQ types are not.
    let path = d.write("iq.gguf", tiny_qwen2(ty("IQ4_NL")).to_bytes());
    let r = jing_formats::inspect(&path).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}
