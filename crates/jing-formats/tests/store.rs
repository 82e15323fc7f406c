//! TensorStore: single files, shards, FP8 scale pairing and every bad-input error.

mod common;

use common::*;
use jing_formats::{DType, FormatError, TensorStore};
use jing_tensor::f8e4m3_to_f32;

fn s(e: &FormatError) -> String {
    e.to_string()
}

#[test]
fn single_file_reference_writer() {
    let d = TempDir::new("single");
    let emb: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    write_st_reference(
        &d.join("model.safetensors"),
        &[
            bf16s("model.embed_tokens.weight", &[4, 3], &emb),
            f32s("model.norm.weight", &[3], &[1.0, 2.0, -3.0]),
            T {
                name: "pos".into(),
                dtype: DType::I64,
                shape: vec![2],
                data: [7i64, -1].iter().flat_map(|x| x.to_le_bytes()).collect(),
            },
            T {
                name: "half".into(),
                dtype: DType::F16,
                shape: vec![1],
                data: 0x3c00u16.to_le_bytes().to_vec(), // 1.0
            },
        ],
    );
    for path in [d.path().to_path_buf(), d.join("model.safetensors")] {
        let st = TensorStore::open(&path).unwrap();
        assert_eq!(
            st.names(),
            vec![
                "half",
                "model.embed_tokens.weight",
                "model.norm.weight",
                "pos"
            ]
        );
        assert_eq!(st.len(), 4);
        assert_eq!(st.file_count(), 1);
        assert!(st.index_path().is_none());
        assert!(st.contains("model.norm.weight"));
        assert!(!st.contains("lm_head.weight"));
        let info = st.info("model.embed_tokens.weight").unwrap();
        assert_eq!((info.dtype, info.shape), (DType::BF16, &[4usize, 3][..]));
        assert_eq!(info.byte_len, 24);
        assert_eq!(st.total_bytes(), 24 + 12 + 16 + 2);
        let counts = st.dtype_counts();
        assert_eq!(counts[0].dtype, DType::BF16);
        assert_eq!(counts[0].tensors, 1);
        assert_eq!(counts.iter().map(|c| c.tensors).sum::<usize>(), 4);

        let w = st.get("model.embed_tokens.weight").unwrap();
        assert_eq!(w.shape, vec![4, 3]);
        assert!(w.scale.is_none());
        assert_eq!(w.to_f32_vec(), emb);
        assert_eq!(
            st.get("model.norm.weight").unwrap().to_f32_vec(),
            vec![1.0, 2.0, -3.0]
        );
        assert_eq!(st.get("pos").unwrap().to_f32_vec(), vec![7.0, -1.0]);
        assert_eq!(st.get("half").unwrap().to_f32_vec(), vec![1.0]);
        assert!(st.get_opt("lm_head.weight").unwrap().is_none());
        assert!(st.get_opt("model.norm.weight").unwrap().is_some());
        assert_eq!(
            st.names_with_prefix("model."),
            vec!["model.embed_tokens.weight", "model.norm.weight"]
        );
    }
}

#[test]
fn any_single_safetensors_file_in_a_folder() {
    let d = TempDir::new("anyname");
    write_st(&d.join("weights.safetensors"), &[f32s("a", &[1], &[4.0])]);
    let st = TensorStore::open(d.path()).unwrap();
    assert_eq!(st.get("a").unwrap().to_f32_vec(), vec![4.0]);
}

/// 200 x 300 FP8 weight, 128x128 blocks: scale grid 2 x 3 with partial edge blocks both ways.
fn fp8_weight(rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>, usize, usize) {
    let codes: Vec<u8> = (0..rows * cols)
        .map(|i| [0x38u8, 0x40, 0x30, 0xb8, 0x01][i % 5])
        .collect();
    let (br, bc) = (rows.div_ceil(128), cols.div_ceil(128));
    let scales: Vec<f32> = (0..br * bc).map(|i| 0.25 * (i + 1) as f32).collect();
    (codes, scales, br, bc)
}

fn expected_dequant(codes: &[u8], scales: &[f32], cols: usize, block: [usize; 2]) -> Vec<f32> {
    let bc = cols.div_ceil(block[1]);
    codes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let (r, col) = (i / cols, i % cols);
            f8e4m3_to_f32(c) * scales[(r / block[0]) * bc + col / block[1]]
        })
        .collect()
}

#[test]
fn sharded_fp8_with_scale_in_other_shard() {
    let d = TempDir::new("sharded");
    let (codes, scales, br, bc) = fp8_weight(200, 300);
    let s1 = "model-00001-of-00002.safetensors";
    let s2 = "model-00002-of-00002.safetensors";
    write_st_reference(
        &d.join(s1),
        &[
            f8s(
                "model.layers.0.self_attn.q_a_proj.weight",
                &[200, 300],
                &codes,
            ),
            bf16s("model.norm.weight", &[2], &[1.0, 0.5]),
        ],
    );
    write_st(
        &d.join(s2),
        &[
            f32s(
                "model.layers.0.self_attn.q_a_proj.weight_scale_inv",
                &[br, bc],
                &scales,
            ),
            f32s("lm_head.weight", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
        ],
    );
    write_index(
        d.path(),
        &[
            ("model.layers.0.self_attn.q_a_proj.weight", s1),
            ("model.norm.weight", s1),
            ("model.layers.0.self_attn.q_a_proj.weight_scale_inv", s2),
            ("lm_head.weight", s2),
        ],
    );
    let st = TensorStore::open(d.path()).unwrap();
    assert_eq!(st.file_count(), 2);
    assert!(st
        .index_path()
        .unwrap()
        .ends_with("model.safetensors.index.json"));
    assert_eq!(st.len(), 4);
    assert!(st.missing_scales().is_empty());
    let w = st.get("model.layers.0.self_attn.q_a_proj.weight").unwrap();
    assert_eq!(w.dtype, DType::F8E4M3);
    let sc = w.scale.as_ref().unwrap();
    assert_eq!(sc.block, [128, 128]);
    assert_eq!(sc.block_cols, 3);
    assert_eq!(
        w.to_f32_vec(),
        expected_dequant(&codes, &scales, 300, [128, 128])
    );
    // A row slice crossing the block boundary keeps the grid.
    let tail = w.slice_rows(120, 200);
    assert_eq!(tail.to_f32_vec(), w.to_f32_vec()[120 * 300..].to_vec());
    assert_eq!(
        st.info("lm_head.weight").unwrap().file.file_name().unwrap(),
        s2
    );
    assert_eq!(
        st.get("lm_head.weight").unwrap().to_f32_vec(),
        vec![1.0, 2.0, 3.0, 4.0]
    );
}

#[test]
fn block_size_is_a_setting() {
    let d = TempDir::new("block");
    let (rows, cols) = (70, 40);
    let codes: Vec<u8> = (0..rows * cols).map(|i| (i % 0x77) as u8).collect();
    let scales: Vec<f32> = (0..(2 * 3)).map(|i| 1.0 + i as f32).collect(); // 64x16 blocks
    write_st(
        &d.join("model.safetensors"),
        &[
            f8s("w.weight", &[rows, cols], &codes),
            f32s("w.weight_scale_inv", &[2, 3], &scales),
        ],
    );
    let mut st = TensorStore::open(d.path()).unwrap();
    // With the default 128x128 grid the stored scale has the wrong shape.
    let e = st.get("w.weight").unwrap_err();
    assert!(matches!(e, FormatError::Weight { .. }), "{e}");
    assert!(s(&e).contains("w.weight_scale_inv"), "{e}");
    assert!(matches!(
        st.set_block_size([0, 16]),
        Err(FormatError::Setting(_))
    ));
    st.set_block_size([64, 16]).unwrap();
    assert_eq!(st.block_size(), [64, 16]);
    let w = st.get("w.weight").unwrap();
    assert_eq!(
        w.to_f32_vec(),
        expected_dequant(&codes, &scales, cols, [64, 16])
    );
}

#[test]
fn demo_scale_name_and_bf16_scales() {
    let d = TempDir::new("demo");
    write_st(
        &d.join("model0-mp1.safetensors"),
        &[
            f8s(
                "layers.0.attn.wq_a.weight",
                &[2, 2],
                &[0x38, 0x40, 0x30, 0x38],
            ),
            bf16s("layers.0.attn.wq_a.scale", &[1, 1], &[2.0]),
        ],
    );
    let st = TensorStore::open(d.path()).unwrap();
    let w = st.get("layers.0.attn.wq_a.weight").unwrap();
    assert_eq!(w.to_f32_vec(), vec![2.0, 4.0, 1.0, 2.0]);
}

#[test]
fn missing_scale_names_both_tensors() {
    let d = TempDir::new("noscale");
    write_st(
        &d.join("model.safetensors"),
        &[f8s(
            "model.layers.0.mlp.down_proj.weight",
            &[2, 2],
            &[0x38; 4],
        )],
    );
    let st = TensorStore::open(d.path()).unwrap();
    assert_eq!(st.missing_scales().len(), 1);
    assert_eq!(
        st.missing_scales()[0].scale,
        "model.layers.0.mlp.down_proj.weight_scale_inv"
    );
    let e = st.get("model.layers.0.mlp.down_proj.weight").unwrap_err();
    assert!(matches!(e, FormatError::MissingScale { .. }), "{e}");
    let m = s(&e);
    assert!(m.contains("`model.layers.0.mlp.down_proj.weight`"), "{m}");
    assert!(
        m.contains("`model.layers.0.mlp.down_proj.weight_scale_inv`"),
        "{m}"
    );
    assert!(m.contains("model.safetensors"), "{m}");
}

#[test]
fn missing_tensor_names_searched_files_and_suggests() {
    let d = TempDir::new("notensor");
    write_st(
        &d.join("model.safetensors"),
        &[f32s("model.norm.weight", &[1], &[1.0])],
    );
    let st = TensorStore::open(d.path()).unwrap();
    let e = st.get("lm_head.weight").unwrap_err();
    assert!(matches!(e, FormatError::MissingTensor { .. }), "{e}");
    let m = s(&e);
    assert!(
        m.contains("`lm_head.weight`") && m.contains("model.safetensors"),
        "{m}"
    );
    let e = st.get("norm.weight").unwrap_err();
    assert!(s(&e).contains("did you mean `model.norm.weight`"), "{e}");
    assert!(matches!(
        st.info("nope"),
        Err(FormatError::MissingTensor { .. })
    ));

    // Sharded: a tensor absent from the index names the index and the shards.
    let d = TempDir::new("notensor-sharded");
    write_st(&d.join("a.safetensors"), &[f32s("x", &[1], &[1.0])]);
    write_st(&d.join("b.safetensors"), &[f32s("y", &[1], &[1.0])]);
    write_index(d.path(), &[("x", "a.safetensors"), ("y", "b.safetensors")]);
    let st = TensorStore::open(d.path()).unwrap();
    let m = s(&st.get("z").unwrap_err());
    assert!(
        m.contains("a.safetensors") && m.contains("b.safetensors") && m.contains("index"),
        "{m}"
    );
}

#[test]
fn missing_shard() {
    let d = TempDir::new("noshard");
    write_st(
        &d.join("model-00001-of-00002.safetensors"),
        &[f32s("x", &[1], &[1.0])],
    );
    write_index(
        d.path(),
        &[
            ("x", "model-00001-of-00002.safetensors"),
            ("y", "model-00002-of-00002.safetensors"),
        ],
    );
    let e = TensorStore::open(d.path()).unwrap_err();
    assert!(matches!(e, FormatError::MissingShard { .. }), "{e}");
    let m = s(&e);
    assert!(
        m.contains("model-00002-of-00002.safetensors")
            && m.contains("index.json")
            && m.contains("`y`"),
        "{m}"
    );
    // Lenient open (for inspect) skips it and reports it.
    let (st, absent) = TensorStore::open_lenient(d.path()).unwrap();
    assert_eq!(absent.len(), 1);
    assert_eq!(absent[0].shard, "model-00002-of-00002.safetensors");
    assert_eq!(absent[0].tensors, 1);
    assert!(st.contains("x") && !st.contains("y"));
    let m = s(&st.get("y").unwrap_err());
    assert!(m.contains("absent shards"), "{m}");
}

#[test]
fn bad_index_files() {
    let d = TempDir::new("badindex");
    write_st(&d.join("a.safetensors"), &[f32s("x", &[1], &[1.0])]);
    d.write("model.safetensors.index.json", "{not json");
    assert!(matches!(
        TensorStore::open(d.path()),
        Err(FormatError::BadJson { .. })
    ));
    d.write("model.safetensors.index.json", r#"{"metadata": {}}"#);
    assert!(matches!(
        TensorStore::open(d.path()),
        Err(FormatError::BadIndex { .. })
    ));
    d.write(
        "model.safetensors.index.json",
        r#"{"weight_map": {"x": "../a.safetensors"}}"#,
    );
    let e = TensorStore::open(d.path()).unwrap_err();
    assert!(matches!(e, FormatError::BadIndex { .. }), "{e}");
    d.write(
        "model.safetensors.index.json",
        r#"{"weight_map": {"x": 3}}"#,
    );
    assert!(matches!(
        TensorStore::open(d.path()),
        Err(FormatError::BadIndex { .. })
    ));
}

#[test]
fn duplicate_tensors_without_index() {
    let d = TempDir::new("dup");
    write_st(&d.join("a.safetensors"), &[f32s("x", &[1], &[1.0])]);
    write_st(&d.join("b.safetensors"), &[f32s("x", &[1], &[2.0])]);
    let e = TensorStore::open(d.path()).unwrap_err();
    assert!(matches!(e, FormatError::DuplicateTensor { .. }), "{e}");
    // With an index, the index decides.
    write_index(d.path(), &[("x", "b.safetensors")]);
    // The index only names b, so only b is opened.
    let st = TensorStore::open(d.path()).unwrap();
    assert_eq!(st.get("x").unwrap().to_f32_vec(), vec![2.0]);
}

#[test]
fn no_weights_and_missing_paths() {
    let d = TempDir::new("empty");
    assert!(matches!(
        TensorStore::open(d.path()),
        Err(FormatError::NoWeights { .. })
    ));
    let e = TensorStore::open(&d.join("nope.safetensors")).unwrap_err();
    assert!(matches!(e, FormatError::MissingFile { .. }), "{e}");
    assert!(s(&e).contains("nope.safetensors"));
}

fn open_err(bytes: &[u8]) -> FormatError {
    let d = TempDir::new("bad");
    let p = d.write("model.safetensors", bytes);
    let e = TensorStore::open(&p).unwrap_err();
    assert!(
        s(&e).contains("model.safetensors"),
        "error must name the file: {e}"
    );
    // Opening the folder gives the same kind of error.
    let e2 = TensorStore::open(d.path()).unwrap_err();
    assert_eq!(std::mem::discriminant(&e), std::mem::discriminant(&e2));
    e
}

#[test]
fn truncated_file() {
    let d = TempDir::new("trunc");
    let p = d.join("model.safetensors");
    write_st(
        &p,
        &[f32s("a", &[4], &[1.0; 4]), f32s("b", &[4], &[2.0; 4])],
    );
    let bytes = std::fs::read(&p).unwrap();
    let e = open_err(&bytes[..bytes.len() - 5]);
    assert!(matches!(e, FormatError::Truncated { .. }), "{e}");
    assert!(s(&e).contains("truncated") && s(&e).contains("`b`"), "{e}");
    // Shorter than the length prefix.
    assert!(matches!(
        open_err(&bytes[..3]),
        FormatError::Truncated { .. }
    ));
    assert!(matches!(open_err(&[]), FormatError::Truncated { .. }));
}

#[test]
fn header_length_past_eof() {
    let mut bytes = raw_file(
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        &[0; 4],
    );
    bytes[..8].copy_from_slice(&10_000u64.to_le_bytes());
    let e = open_err(&bytes);
    assert!(matches!(e, FormatError::CorruptHeader { .. }), "{e}");
    assert!(s(&e).contains("10000"), "{e}");
    bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        open_err(&bytes),
        FormatError::CorruptHeader { .. }
    ));
}

#[test]
fn garbage_header() {
    let e = open_err(&raw_file("{\"a\": [garbage", &[0; 4]));
    assert!(matches!(e, FormatError::CorruptHeader { .. }), "{e}");
    assert!(s(&e).contains("JSON"), "{e}");
    let e = open_err(&raw_file("\u{0}\u{1}\u{2}\u{3}", &[]));
    assert!(matches!(e, FormatError::CorruptHeader { .. }), "{e}");
    let mut b = raw_file("{}", &[]);
    b[8] = 0xff; // invalid UTF-8
    assert!(matches!(open_err(&b), FormatError::CorruptHeader { .. }));
}

#[test]
fn offsets_past_end() {
    let e = open_err(&raw_file(
        r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
        &[0; 8],
    ));
    assert!(matches!(e, FormatError::Truncated { .. }), "{e}");
    assert!(s(&e).contains("`w`"), "{e}");
}

#[test]
fn unsupported_dtypes() {
    for dt in ["F8_E5M2", "U8", "BOOL", "F64"] {
        let size = if dt == "F64" { 8 } else { 1 };
        let e = open_err(&raw_file(
            &format!(
                r#"{{"t.weight":{{"dtype":"{dt}","shape":[2],"data_offsets":[0,{}]}}}}"#,
                2 * size
            ),
            &vec![0; 2 * size],
        ));
        assert!(matches!(e, FormatError::UnsupportedDType { .. }), "{e}");
        let m = s(&e);
        assert!(
            m.contains(dt) && m.contains("`t.weight`") && m.contains("not support"),
            "{m}"
        );
        assert!(
            m.contains("F8_E4M3") && m.contains("BF16"),
            "lists the supported dtypes: {m}"
        );
    }
}

#[test]
fn byte_length_not_matching_shape() {
    let e = open_err(&raw_file(
        r#"{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}"#,
        &[0; 4],
    ));
    assert!(matches!(e, FormatError::BadTensor { .. }), "{e}");
    assert!(
        s(&e).contains("`w`") && s(&e).contains("needs 6 bytes"),
        "{e}"
    );
}

#[test]
fn overlapping_tensors() {
    let e = open_err(&raw_file(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
        &[0; 12],
    ));
    assert!(matches!(e, FormatError::BadTensor { .. }), "{e}");
}

#[test]
fn zero_copy_views_share_the_map() {
    let d = TempDir::new("zerocopy");
    write_st(
        &d.join("model.safetensors"),
        &[f32s("a", &[2], &[1.0, 2.0]), f32s("b", &[1], &[3.0])],
    );
    let st = TensorStore::open(d.path()).unwrap();
    let a = st.get("a").unwrap();
    let b = st.get("b").unwrap();
    // Both views point into one buffer, at their offsets.
    let pa = a.data.as_slice().as_ptr() as usize;
    let pb = b.data.as_slice().as_ptr() as usize;
    assert_eq!(pb - pa, 8);
    drop(st); // views keep the map alive
    assert_eq!(a.to_f32_vec(), vec![1.0, 2.0]);
}

#[test]
fn index_entry_missing_from_its_shard() {
    let d = TempDir::new("indexlies");
    write_st(&d.join("a.safetensors"), &[f32s("x", &[1], &[1.0])]);
    write_index(
        d.path(),
        &[("x", "a.safetensors"), ("ghost", "a.safetensors")],
    );
    let st = TensorStore::open(d.path()).unwrap();
    let e = st.get("ghost").unwrap_err();
    assert!(matches!(e, FormatError::MissingTensor { .. }), "{e}");
    assert!(
        s(&e).contains("a.safetensors") && s(&e).contains("index"),
        "{e}"
    );
}

/// Every prefix and many single-byte corruptions of a valid file are errors or valid stores,
/// never panics.
#[test]
fn corrupted_bytes_never_panic() {
    use jing_formats::safetensors::SafetensorsFile;
    use jing_tensor::Bytes;
    let d = TempDir::new("fuzz");
    let p = d.join("x.safetensors");
    write_st(
        &p,
        &[
            f8s("w.weight", &[3, 5], &[0x38; 15]),
            f32s("w.weight_scale_inv", &[1, 1], &[2.0]),
            bf16s("n", &[2], &[1.0, 2.0]),
        ],
    );
    let good = std::fs::read(&p).unwrap();
    let label = std::path::Path::new("x.safetensors");
    let try_bytes = |b: Vec<u8>| {
        if let Ok(f) = SafetensorsFile::from_bytes(label, Bytes::from_vec(b)) {
            for t in f.tensors() {
                let _ = f.bytes(t).as_slice().len();
            }
        }
    };
    for n in 0..good.len() {
        try_bytes(good[..n].to_vec());
    }
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for i in 0..header_end {
        for v in [0u8, b'9', b'"', b'-', b'}', 0xff] {
            let mut b = good.clone();
            b[i] = v;
            try_bytes(b);
        }
    }
    // Through the store too (pairing path), for the mutated-digit cases.
    for i in 8..header_end {
        let mut b = good.clone();
        if b[i].is_ascii_digit() {
            b[i] = b'7';
            std::fs::write(&p, &b).unwrap();
            if let Ok(st) = TensorStore::open(&p) {
                for n in st.names() {
                    if let Ok(w) = st.get(n) {
                        let _ = w.to_f32_vec();
                    }
                }
            }
        }
    }
}
