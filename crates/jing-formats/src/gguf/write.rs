//! A small GGUF writer (version 3, little-endian) that builds the file in memory, for tests,
//! fuzzing seeds and tiny fixtures; the header code is shared with the streaming writer
//! ([`GgufStreamWriter`](super::GgufStreamWriter)) that `jing quantize` uses for real models.

use super::parse::{DEFAULT_ALIGNMENT, GGUF_MAGIC};
use super::types::{GgmlType, GgufArray, GgufValue};

/// Builds a GGUF file in memory.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<(String, u32, Vec<u64>, Vec<u8>)>,
    alignment: Option<u32>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Add a metadata entry (in order; repeated keys are written twice, which readers reject).
    pub fn kv(mut self, key: &str, value: GgufValue) -> GgufWriter {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Set `general.alignment` (written as a u32 entry).
    pub fn alignment(mut self, a: u32) -> GgufWriter {
        self.alignment = Some(a);
        self.metadata
            .push(("general.alignment".into(), GgufValue::U32(a)));
        self
    }

    /// Add a tensor of `shape` (outermost first, jing's order; written reversed as GGUF's
    /// `ne`) with its stored bytes.
    pub fn tensor(
        mut self,
        name: &str,
        ty: GgmlType,
        shape: &[usize],
        data: Vec<u8>,
    ) -> GgufWriter {
        let ne = shape.iter().rev().map(|&d| d as u64).collect();
        self.tensors.push((name.to_string(), ty.id, ne, data));
        self
    }

    /// Add an f32 tensor.
    pub fn f32_tensor(self, name: &str, shape: &[usize], values: &[f32]) -> GgufWriter {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, GgmlType::from_id(0).expect("F32"), shape, data)
    }

    /// Add a tensor with a raw type id and `ne` (innermost first), unchecked: for hostile files.
    pub fn raw_tensor(mut self, name: &str, type_id: u32, ne: &[u64], data: Vec<u8>) -> GgufWriter {
        self.tensors
            .push((name.to_string(), type_id, ne.to_vec(), data));
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let align = self
            .alignment
            .map_or(DEFAULT_ALIGNMENT, |a| a as u64)
            .max(1) as usize;
        let infos: Vec<HeaderTensor<'_>> = self
            .tensors
            .iter()
            .map(|(name, ty, ne, data)| HeaderTensor {
                name,
                type_id: *ty,
                ne,
                size: data.len() as u64,
            })
            .collect();
        let (mut out, offsets) = header_bytes(&self.metadata, &infos, align as u64);
        let base = out.len();
        for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
            out.resize(base + off as usize, 0);
            out.extend_from_slice(data);
        }
        out
    }
}

/// A tensor info as the header writes it.
pub(super) struct HeaderTensor<'a> {
    pub name: &'a str,
    pub type_id: u32,
    /// Dimensions, innermost first.
    pub ne: &'a [u64],
    /// Bytes of data (the next tensor starts at the next multiple of the alignment).
    pub size: u64,
}

/// The header (magic, version 3, counts, metadata, tensor infos) padded to `align`, and each
/// tensor's offset into the data section.
pub(super) fn header_bytes(
    metadata: &[(String, GgufValue)],
    tensors: &[HeaderTensor<'_>],
    align: u64,
) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    out.extend_from_slice(&GGUF_MAGIC.to_le_bytes());
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend_from_slice(&type_id(v).to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0u64;
    let mut offsets = Vec::with_capacity(tensors.len());
    for t in tensors {
        put_str(&mut out, t.name);
        out.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
        for d in t.ne {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.type_id.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offsets.push(offset);
        offset = (offset + t.size).div_ceil(align) * align;
    }
    out.resize(
        (out.len() as u64).div_ceil(align) as usize * align as usize,
        0,
    );
    (out, offsets)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn type_id(v: &GgufValue) -> u32 {
    match v {
        GgufValue::U8(_) => 0,
        GgufValue::I8(_) => 1,
        GgufValue::U16(_) => 2,
        GgufValue::I16(_) => 3,
        GgufValue::U32(_) => 4,
        GgufValue::I32(_) => 5,
        GgufValue::F32(_) => 6,
        GgufValue::Bool(_) => 7,
        GgufValue::String(_) => 8,
        GgufValue::Array(_) => 9,
        GgufValue::U64(_) => 10,
        GgufValue::I64(_) => 11,
        GgufValue::F64(_) => 12,
    }
}

fn array_type_id(a: &GgufArray) -> u32 {
    match a {
        GgufArray::U8(_) => 0,
        GgufArray::I8(_) => 1,
        GgufArray::U16(_) => 2,
        GgufArray::I16(_) => 3,
        GgufArray::U32(_) => 4,
        GgufArray::I32(_) => 5,
        GgufArray::F32(_) => 6,
        GgufArray::Bool(_) => 7,
        GgufArray::String(_) => 8,
        GgufArray::Array(_) => 9,
        GgufArray::U64(_) => 10,
        GgufArray::I64(_) => 11,
        GgufArray::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.push(*x as u8),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(b) => out.push(*b as u8),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(a) => put_array(out, a),
    }
}

fn put_array(out: &mut Vec<u8>, a: &GgufArray) {
    out.extend_from_slice(&array_type_id(a).to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    match a {
        GgufArray::U8(v) => out.extend_from_slice(v),
        GgufArray::I8(v) => v.iter().for_each(|x| out.push(*x as u8)),
        GgufArray::U16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::I16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::U32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::U64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::Bool(v) => v.iter().for_each(|x| out.push(*x as u8)),
        GgufArray::String(v) => v.iter().for_each(|s| put_str(out, s)),
        GgufArray::Array(v) => v.iter().for_each(|x| put_array(out, x)),
    }
}
