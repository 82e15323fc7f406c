//! Helpers for the integration tests: temporary folders and tiny checkpoints.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use jing_formats::DType;

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "jing-formats-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An owned tensor to write.
pub struct T {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

pub fn f32s(name: &str, shape: &[usize], v: &[f32]) -> T {
    T {
        name: name.into(),
        dtype: DType::F32,
        shape: shape.to_vec(),
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// bf16 by truncation (tests use values exact in bf16).
pub fn bf16s(name: &str, shape: &[usize], v: &[f32]) -> T {
    T {
        name: name.into(),
        dtype: DType::BF16,
        shape: shape.to_vec(),
        data: v
            .iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
    }
}

pub fn f8s(name: &str, shape: &[usize], codes: &[u8]) -> T {
    T {
        name: name.into(),
        dtype: DType::F8E4M3,
        shape: shape.to_vec(),
        data: codes.to_vec(),
    }
}

/// Write with jing's own writer.
pub fn write_st(path: &Path, tensors: &[T]) {
    jing_formats::safetensors::write(
        path,
        tensors.iter().map(|t| {
            (
                t.name.as_str(),
                t.dtype,
                t.shape.as_slice(),
                t.data.as_slice(),
            )
        }),
    )
    .unwrap();
}

/// Write with the reference `safetensors` crate (checks that jing reads what HF writes).
pub fn write_st_reference(path: &Path, tensors: &[T]) {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            let dt = match t.dtype {
                DType::F32 => Dtype::F32,
                DType::F16 => Dtype::F16,
                DType::BF16 => Dtype::BF16,
                DType::F8E4M3 => Dtype::F8_E4M3,
                DType::I32 => Dtype::I32,
                DType::I64 => Dtype::I64,
                other => panic!("safetensors has no {other} tensors"),
            };
            (
                t.name.clone(),
                TensorView::new(dt, t.shape.clone(), &t.data).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A hand-made file: 8-byte LE header length, header JSON, data.
pub fn raw_file(header_json: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header_json.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header_json.as_bytes());
    v.extend_from_slice(data);
    v
}

/// Write `model.safetensors.index.json` mapping each tensor to its shard.
pub fn write_index(dir: &Path, map: &[(&str, &str)]) {
    let weight_map: serde_json::Map<String, serde_json::Value> = map
        .iter()
        .map(|(t, s)| (t.to_string(), serde_json::Value::String(s.to_string())))
        .collect();
    let v = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), v.to_string()).unwrap();
}
