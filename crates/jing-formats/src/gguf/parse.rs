//! The GGUF header parser: magic, version, metadata key/values of every type (arrays nested up
//! to [`MAX_DEPTH`]), tensor infos, alignment and the data section, with hard limits on every
//! count, length and offset. It reads a byte slice (usually a memory map: only the header pages
//! are touched), never panics and never reads past the slice; every error names the file, what
//! was being read and at which byte.
//!
//! Layout (little-endian): `"GGUF"`, `u32` version (2 or 3), `u64` tensor count, `u64` key/value
//! count; then each key/value (`u64`-length string key, `u32` type, value); then each tensor
//! info (`u64`-length string name, `u32` n_dims, `u64` dims innermost first, `u32` GGML type,
//! `u64` offset into the data section); then padding to `general.alignment` (default 32) and the
//! data section.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

use super::types::{GgmlType, GgufArray, GgufType, GgufValue};
use crate::error::FormatError;

/// `"GGUF"` read as a little-endian `u32`.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Most tensors one file may describe (DeepSeek-V3 has about 1,200).
pub const MAX_TENSORS: u64 = 1 << 20;
/// Most metadata key/values one file may hold.
pub const MAX_KV: u64 = 1 << 16;
/// Longest metadata key, in bytes.
pub const MAX_KEY_LEN: u64 = 1 << 16;
/// Longest tensor name, in bytes (GGML itself allows 63).
pub const MAX_TENSOR_NAME_LEN: u64 = 1 << 10;
/// Longest string value, in bytes (a chat template is a few KiB).
pub const MAX_STRING_LEN: u64 = 64 << 20;
/// Most items in one metadata array (vocabularies have up to ~260k tokens).
pub const MAX_ARRAY_LEN: u64 = 1 << 24;
/// Deepest nesting of arrays inside arrays (1 = a plain array).
pub const MAX_DEPTH: usize = 4;
/// Most bytes the header (metadata and tensor infos) may span.
pub const MAX_HEADER_BYTES: u64 = 1 << 30;
/// Most bytes all metadata strings together may hold once decoded.
pub const MAX_METADATA_BYTES: u64 = 1 << 30;
/// Most dimensions of a tensor (GGML_MAX_DIMS).
pub const MAX_DIMS: u32 = 4;
/// Largest `general.alignment` accepted.
pub const MAX_ALIGNMENT: u64 = 1 << 20;

/// One tensor as the header describes it, validated against the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// Tensor name.
    pub name: String,
    /// GGML type.
    pub ggml_type: GgmlType,
    /// GGML dimensions, innermost (contiguous) first: `ne[0]` is the number of columns.
    pub ne: Vec<u64>,
    /// The same dimensions outermost first (`[rows, cols]` for a matrix), the order jing uses.
    pub shape: Vec<usize>,
    /// Absolute byte range of the data inside the file.
    pub range: Range<usize>,
}

/// A parsed and validated GGUF header.
#[derive(Clone, Debug)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, GgufValue)>,
    /// Key → position in `metadata`.
    pub index: HashMap<String, usize>,
    /// Tensor infos in file order.
    pub tensors: Vec<GgufTensorInfo>,
    /// `general.alignment`, or 32.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: usize,
}

impl GgufHeader {
    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
    /// Decoded string bytes so far (against [`MAX_METADATA_BYTES`]).
    string_bytes: u64,
}

impl<'a> Reader<'a> {
    fn bad(&self, reason: impl Into<String>) -> FormatError {
        FormatError::BadGguf {
            path: self.path.to_path_buf(),
            reason: reason.into(),
        }
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(self.bad(format!(
                "file ends while reading {} (needs {n} bytes at byte {}, the file has {})",
                what(),
                self.pos,
                self.buf.len()
            )));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], FormatError> {
        let b = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A `u64`-length-prefixed UTF-8 string of at most `max` bytes.
    fn string(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<String, FormatError> {
        let at = self.pos;
        let len = self.u64(&|| format!("the length of {}", what()))?;
        if len > max {
            return Err(self.bad(format!(
                "{} at byte {at} claims {len} bytes, over the {max}-byte limit",
                what()
            )));
        }
        self.string_bytes += len;
        if self.string_bytes > MAX_METADATA_BYTES {
            return Err(self.bad(format!(
                "metadata strings exceed {MAX_METADATA_BYTES} bytes in total (at {})",
                what()
            )));
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| self.bad(format!("{} at byte {at} is not UTF-8 ({e})", what())))
    }

    fn value_type(&mut self, what: &dyn Fn() -> String) -> Result<GgufType, FormatError> {
        let at = self.pos;
        let id = self.u32(what)?;
        GgufType::from_id(id).ok_or_else(|| {
            self.bad(format!(
                "{} at byte {at} has value type {id}, which GGUF does not define (0..=12)",
                what()
            ))
        })
    }

    fn value(
        &mut self,
        ty: GgufType,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> Result<GgufValue, FormatError> {
        Ok(match ty {
            GgufType::U8 => GgufValue::U8(self.array::<1>(what)?[0]),
            GgufType::I8 => GgufValue::I8(self.array::<1>(what)?[0] as i8),
            GgufType::U16 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            GgufType::I16 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            GgufType::U32 => GgufValue::U32(u32::from_le_bytes(self.array(what)?)),
            GgufType::I32 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            GgufType::U64 => GgufValue::U64(u64::from_le_bytes(self.array(what)?)),
            GgufType::I64 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            GgufType::F32 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            GgufType::F64 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            GgufType::Bool => GgufValue::Bool(self.bool(what)?),
            GgufType::String => GgufValue::String(self.string(MAX_STRING_LEN, what)?),
            GgufType::Array => GgufValue::Array(self.array_value(depth + 1, what)?),
        })
    }

    fn bool(&mut self, what: &dyn Fn() -> String) -> Result<bool, FormatError> {
        let at = self.pos;
        match self.array::<1>(what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.bad(format!(
                "{} at byte {at} is a bool of value {b} (must be 0 or 1)",
                what()
            ))),
        }
    }

    /// An array (element type, count, items) at nesting level `depth` (1 = outermost).
    fn array_value(
        &mut self,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> Result<GgufArray, FormatError> {
        let at = self.pos;
        if depth > MAX_DEPTH {
            return Err(self.bad(format!(
                "{} at byte {at} nests arrays {depth} deep, over the limit of {MAX_DEPTH}",
                what()
            )));
        }
        let elem = self.value_type(&|| format!("the element type of {}", what()))?;
        let count = self.u64(&|| format!("the item count of {}", what()))?;
        if count > MAX_ARRAY_LEN {
            return Err(self.bad(format!(
                "{} at byte {at} claims {count} items, over the limit of {MAX_ARRAY_LEN}",
                what()
            )));
        }
        // Each item takes at least `min_bytes`: a count the rest of the file cannot hold is
        // rejected before anything is allocated for it.
        if count.saturating_mul(elem.min_bytes()) > self.remaining() {
            return Err(self.bad(format!(
                "{} at byte {at} claims {count} items of {} but only {} bytes follow",
                what(),
                elem.name(),
                self.remaining()
            )));
        }
        let n = count as usize;
        Ok(match elem {
            GgufType::U8 => GgufArray::U8(self.items(n, what, |r, w| Ok(r.array::<1>(w)?[0]))?),
            GgufType::I8 => {
                GgufArray::I8(self.items(n, what, |r, w| Ok(r.array::<1>(w)?[0] as i8))?)
            }
            GgufType::U16 => {
                GgufArray::U16(self.items(n, what, |r, w| Ok(u16::from_le_bytes(r.array(w)?)))?)
            }
            GgufType::I16 => {
                GgufArray::I16(self.items(n, what, |r, w| Ok(i16::from_le_bytes(r.array(w)?)))?)
            }
            GgufType::U32 => {
                GgufArray::U32(self.items(n, what, |r, w| Ok(u32::from_le_bytes(r.array(w)?)))?)
            }
            GgufType::I32 => {
                GgufArray::I32(self.items(n, what, |r, w| Ok(i32::from_le_bytes(r.array(w)?)))?)
            }
            GgufType::U64 => {
                GgufArray::U64(self.items(n, what, |r, w| Ok(u64::from_le_bytes(r.array(w)?)))?)
            }
            GgufType::I64 => {
                GgufArray::I64(self.items(n, what, |r, w| Ok(i64::from_le_bytes(r.array(w)?)))?)
            }
            GgufType::F32 => {
                GgufArray::F32(self.items(n, what, |r, w| Ok(f32::from_le_bytes(r.array(w)?)))?)
            }
            GgufType::F64 => {
                GgufArray::F64(self.items(n, what, |r, w| Ok(f64::from_le_bytes(r.array(w)?)))?)
            }
            GgufType::Bool => GgufArray::Bool(self.items(n, what, |r, w| r.bool(w))?),
            GgufType::String => {
                GgufArray::String(self.items(n, what, |r, w| r.string(MAX_STRING_LEN, w))?)
            }
            GgufType::Array => {
                GgufArray::Array(self.items(n, what, |r, w| r.array_value(depth + 1, w))?)
            }
        })
    }

    /// `n` items read by `read`, each named "item i of <what>" in errors.
    fn items<T>(
        &mut self,
        n: usize,
        what: &dyn Fn() -> String,
        read: impl Fn(&mut Self, &dyn Fn() -> String) -> Result<T, FormatError>,
    ) -> Result<Vec<T>, FormatError> {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            v.push(read(self, &|| format!("item {i} of {}", what()))?);
        }
        Ok(v)
    }
}

/// Parse and validate the header of a whole GGUF file held in `file`; `path` only names it in
/// errors.
///
/// Checks: magic and version; counts, string lengths, array lengths and nesting within the
/// limits of this module; UTF-8 keys and strings; no repeated key or tensor name; a power-of-two
/// `general.alignment` of type u32; 1 to 4 dimensions per tensor whose element count is a whole
/// number of blocks of a known GGML type; every tensor's data aligned, inside the file and not
/// overlapping another's.
pub fn parse_header(path: &Path, file: &[u8]) -> Result<GgufHeader, FormatError> {
    let mut r = Reader {
        buf: file,
        pos: 0,
        path,
        string_bytes: 0,
    };
    let magic = r.u32(&|| "the magic number".into())?;
    if magic != GGUF_MAGIC {
        return Err(r.bad(format!(
            "the file starts with {:02x?}, not the GGUF magic \"GGUF\"",
            magic.to_le_bytes()
        )));
    }
    let version = r.u32(&|| "the version".into())?;
    match version {
        2 | 3 => {}
        1 => return Err(r.bad("GGUF version 1 (32-bit counts, 2023) is not supported; convert the model again with a current llama.cpp")),
        v if matches!(v.swap_bytes(), 1..=3) => {
            return Err(r.bad("this is a big-endian GGUF, which jing does not read; use the little-endian file"))
        }
        v => return Err(r.bad(format!("unknown GGUF version {v} (jing reads 2 and 3)"))),
    }
    let n_tensors = r.u64(&|| "the tensor count".into())?;
    if n_tensors > MAX_TENSORS {
        return Err(r.bad(format!(
            "the header claims {n_tensors} tensors, over the limit of {MAX_TENSORS}"
        )));
    }
    let n_kv = r.u64(&|| "the metadata count".into())?;
    if n_kv > MAX_KV {
        return Err(r.bad(format!(
            "the header claims {n_kv} metadata entries, over the limit of {MAX_KV}"
        )));
    }

    // Metadata.
    let mut metadata = Vec::with_capacity((n_kv as usize).min(1024));
    let mut index = HashMap::new();
    for i in 0..n_kv {
        let key = r.string(MAX_KEY_LEN, &|| format!("the key of metadata entry {i}"))?;
        let what = || format!("metadata `{key}`");
        let ty = r.value_type(&|| format!("the type of {}", what()))?;
        let value = r.value(ty, 0, &what)?;
        if index.insert(key.clone(), metadata.len()).is_some() {
            return Err(r.bad(format!("metadata key `{key}` appears twice")));
        }
        metadata.push((key, value));
        if r.pos as u64 > MAX_HEADER_BYTES {
            return Err(r.bad(format!("the header is over {MAX_HEADER_BYTES} bytes")));
        }
    }

    let alignment = match metadata_value(&metadata, &index, "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(GgufValue::U32(a))
            if *a > 0 && a.is_power_of_two() && (*a as u64) <= MAX_ALIGNMENT =>
        {
            *a as u64
        }
        Some(other) => {
            return Err(r.bad(format!(
                "`general.alignment` must be a u32 power of two up to {MAX_ALIGNMENT}, found {} {}",
                other.value_type().name(),
                other.summary()
            )))
        }
    };

    // Tensor infos (offsets checked once the data section is known).
    struct Raw {
        name: String,
        ggml_type: GgmlType,
        ne: Vec<u64>,
        offset: u64,
        bytes: u64,
    }
    let mut raw: Vec<Raw> = Vec::with_capacity((n_tensors as usize).min(4096));
    let mut names: BTreeMap<String, ()> = BTreeMap::new();
    for i in 0..n_tensors {
        let name = r.string(MAX_TENSOR_NAME_LEN, &|| format!("the name of tensor {i}"))?;
        let what = |w: &str| format!("the {w} of tensor `{name}`");
        let at = r.pos;
        let n_dims = r.u32(&|| what("dimension count"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(r.bad(format!(
                "tensor `{name}` (byte {at}) has {n_dims} dimensions (must be 1 to {MAX_DIMS})"
            )));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            let v = r.u64(&|| what(&format!("dimension {d}")))?;
            if v > i64::MAX as u64 {
                return Err(r.bad(format!(
                    "tensor `{name}` has dimension {d} = {v}, too large"
                )));
            }
            ne.push(v);
        }
        let at = r.pos;
        let type_id = r.u32(&|| what("type"))?;
        let Some(ggml_type) = GgmlType::from_id(type_id) else {
            return Err(r.bad(format!(
                "tensor `{name}` (byte {at}) has GGML type id {type_id}, which GGML does not define (or no longer supports)"
            )));
        };
        let offset = r.u64(&|| what("data offset"))?;
        let numel = ne.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let bytes = numel.and_then(|n| {
            let cols = ne[0];
            if cols == 0 || n == 0 {
                return Some(0);
            }
            ggml_type.row_bytes(cols)?.checked_mul(n / cols)
        });
        let Some(bytes) = bytes else {
            let why = if numel.is_some() && !ne[0].is_multiple_of(ggml_type.block_size as u64) {
                format!(
                    "its row length {} is not a multiple of the {} block size {}",
                    ne[0], ggml_type.name, ggml_type.block_size
                )
            } else {
                format!("its size {ne:?} overflows")
            };
            return Err(r.bad(format!("tensor `{name}` ({}): {why}", ggml_type.name)));
        };
        if names.insert(name.clone(), ()).is_some() {
            return Err(r.bad(format!("tensor name `{name}` appears twice")));
        }
        raw.push(Raw {
            name,
            ggml_type,
            ne,
            offset,
            bytes,
        });
        if r.pos as u64 > MAX_HEADER_BYTES {
            return Err(r.bad(format!("the header is over {MAX_HEADER_BYTES} bytes")));
        }
    }

    // Data section: after padding to the alignment.
    let end = r.pos as u64;
    let data_offset = end.div_ceil(alignment) * alignment;
    let file_len = file.len() as u64;
    if data_offset > file_len && !raw.is_empty() {
        return Err(FormatError::Truncated {
            path: path.to_path_buf(),
            what: "the padding before the tensor data".into(),
            needed: data_offset,
            actual: file_len,
        });
    }
    let data_len = file_len.saturating_sub(data_offset);

    let mut tensors = Vec::with_capacity(raw.len());
    for t in raw {
        if !t.offset.is_multiple_of(alignment) {
            return Err(r.bad(format!(
                "tensor `{}` starts at data offset {}, not a multiple of the alignment {alignment}",
                t.name, t.offset
            )));
        }
        let end = t.offset.checked_add(t.bytes);
        if end.is_none_or(|e| e > data_len) {
            return Err(FormatError::Truncated {
                path: path.to_path_buf(),
                what: format!(
                    "tensor `{}` ({} {:?}, {} bytes at data offset {})",
                    t.name, t.ggml_type.name, t.ne, t.bytes, t.offset
                ),
                needed: data_offset.saturating_add(t.offset).saturating_add(t.bytes),
                actual: file_len,
            });
        }
        // Both fit in the file, so in usize.
        let start = (data_offset + t.offset) as usize;
        let stop = start + t.bytes as usize;
        let shape = t.ne.iter().rev().map(|&d| d as usize).collect();
        tensors.push(GgufTensorInfo {
            name: t.name,
            ggml_type: t.ggml_type,
            ne: t.ne,
            shape,
            range: start..stop,
        });
    }

    // No overlaps (empty tensors can sit anywhere).
    let mut order: Vec<&GgufTensorInfo> = tensors.iter().filter(|t| !t.range.is_empty()).collect();
    order.sort_by_key(|t| (t.range.start, t.range.end));
    for w in order.windows(2) {
        if w[1].range.start < w[0].range.end {
            return Err(r.bad(format!(
                "the data of tensor `{}` (bytes {:?}) overlaps tensor `{}` (bytes {:?})",
                w[1].name, w[1].range, w[0].name, w[0].range
            )));
        }
    }

    Ok(GgufHeader {
        version,
        metadata,
        index,
        tensors,
        alignment,
        data_offset: data_offset.min(file_len) as usize,
    })
}

fn metadata_value<'m>(
    metadata: &'m [(String, GgufValue)],
    index: &HashMap<String, usize>,
    key: &str,
) -> Option<&'m GgufValue> {
    index.get(key).map(|&i| &metadata[i].1)
}
