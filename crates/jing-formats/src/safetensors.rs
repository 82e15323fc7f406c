//! One safetensors file: header parsing with hard limits, memory mapping, zero-copy tensor views,
//! and a small writer (for tests and tiny fixtures).
//!
//! Layout: an 8-byte little-endian header length `N`, `N` bytes of JSON
//! (`{"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
//! offsets relative to the data section), then the data section.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jing_tensor::{Bytes, DType};
use serde_json::Value;

use crate::error::{short_json, FormatError};

/// Largest header accepted (the limit of the reference `safetensors` crate).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// One tensor as a header describes it (already validated against the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// Tensor name as the header writes it.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Absolute byte range inside the file (header included in the offset).
    pub range: Range<usize>,
}

impl TensorEntry {
    /// Bytes of data.
    pub fn byte_len(&self) -> usize {
        self.range.len()
    }
}

/// A parsed and validated header.
#[derive(Clone, Debug, Default)]
pub struct Header {
    /// Tensors in file order (sorted by data offset).
    pub tensors: Vec<TensorEntry>,
    /// The optional `__metadata__` string map (non-string values are kept as JSON text).
    pub metadata: BTreeMap<String, String>,
    /// Offset of the data section (8 + header length).
    pub data_start: usize,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> FormatError {
    FormatError::CorruptHeader {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn bad_tensor(path: &Path, tensor: &str, reason: impl Into<String>) -> FormatError {
    FormatError::BadTensor {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        reason: reason.into(),
    }
}

/// Parse and validate the header of a whole safetensors file held in `file` (usually a memory
/// map: only the header pages are touched). `path` is only used in error messages.
///
/// Checks: header length within [`MAX_HEADER_LEN`] and the file, valid UTF-8 JSON object, every
/// entry with a supported dtype, an integer shape whose byte size matches `data_offsets`, data
/// within the file, and no two tensors overlapping. Never panics.
pub fn parse_header(path: &Path, file: &[u8]) -> Result<Header, FormatError> {
    let file_len = file.len() as u64;
    let Some(prefix) = file.get(..8) else {
        return Err(FormatError::Truncated {
            path: path.to_path_buf(),
            what: "the 8-byte header length".into(),
            needed: 8,
            actual: file_len,
        });
    };
    let n = u64::from_le_bytes(prefix.try_into().expect("8 bytes"));
    if n > MAX_HEADER_LEN {
        return Err(corrupt(
            path,
            format!(
                "header length prefix is {n} bytes, over the {MAX_HEADER_LEN}-byte limit (the first 8 bytes must be the little-endian JSON header length)"
            ),
        ));
    }
    if n > file_len - 8 {
        return Err(corrupt(
            path,
            format!(
                "header length prefix is {n} bytes but only {} bytes follow it (truncated file, or not a safetensors file)",
                file_len - 8
            ),
        ));
    }
    let data_start = 8 + n as usize;
    let header_bytes = &file[8..data_start];
    let text = std::str::from_utf8(header_bytes)
        .map_err(|e| corrupt(path, format!("header is not UTF-8 ({e})")))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| corrupt(path, format!("header is not valid JSON ({e})")))?;
    let Value::Object(map) = value else {
        return Err(corrupt(
            path,
            format!("header must be a JSON object, found {}", short_json(&value)),
        ));
    };

    let data_len = file_len - data_start as u64;
    let mut header = Header {
        tensors: Vec::with_capacity(map.len()),
        metadata: BTreeMap::new(),
        data_start,
    };
    for (name, v) in &map {
        if name == "__metadata__" {
            header.metadata = parse_metadata(path, v)?;
            continue;
        }
        header
            .tensors
            .push(parse_entry(path, name, v, data_start, data_len)?);
    }

    // Data must be inside the file: report the furthest-reaching tensor.
    if let Some(last) = header.tensors.iter().max_by_key(|t| t.range.end) {
        if last.range.end as u64 > file_len {
            return Err(FormatError::Truncated {
                path: path.to_path_buf(),
                what: format!(
                    "tensor `{}` (data_offsets [{}, {}])",
                    last.name,
                    last.range.start - data_start,
                    last.range.end - data_start
                ),
                needed: last.range.end as u64,
                actual: file_len,
            });
        }
    }

    // No overlaps (empty tensors can sit anywhere).
    header.tensors.sort_by_key(|t| (t.range.start, t.range.end));
    let mut prev: Option<&TensorEntry> = None;
    for t in header.tensors.iter().filter(|t| !t.range.is_empty()) {
        if let Some(p) = prev {
            if t.range.start < p.range.end {
                return Err(bad_tensor(
                    path,
                    &t.name,
                    format!(
                        "data_offsets [{}, {}] overlap tensor `{}` [{}, {}]",
                        t.range.start - data_start,
                        t.range.end - data_start,
                        p.name,
                        p.range.start - data_start,
                        p.range.end - data_start
                    ),
                ));
            }
        }
        prev = Some(t);
    }
    Ok(header)
}

fn parse_metadata(path: &Path, v: &Value) -> Result<BTreeMap<String, String>, FormatError> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => Ok(m
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect()),
        other => Err(corrupt(
            path,
            format!(
                "`__metadata__` must be an object of strings, found {}",
                short_json(other)
            ),
        )),
    }
}

fn parse_entry(
    path: &Path,
    name: &str,
    v: &Value,
    data_start: usize,
    data_len: u64,
) -> Result<TensorEntry, FormatError> {
    let Value::Object(obj) = v else {
        return Err(bad_tensor(
            path,
            name,
            format!(
                "header entry must be an object with dtype, shape and data_offsets, found {}",
                short_json(v)
            ),
        ));
    };
    let dtype_name = match obj.get("dtype") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(bad_tensor(
                path,
                name,
                format!("`dtype` must be a string, found {}", short_json(other)),
            ))
        }
        None => return Err(bad_tensor(path, name, "header entry has no `dtype`")),
    };
    let Some(dtype) = DType::from_safetensors_name(dtype_name) else {
        return Err(FormatError::UnsupportedDType {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            dtype: dtype_name.to_string(),
        });
    };
    let shape_v = obj
        .get("shape")
        .ok_or_else(|| bad_tensor(path, name, "header entry has no `shape`"))?;
    let shape = match shape_v {
        Value::Array(dims) => dims
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>(),
        _ => None,
    }
    .ok_or_else(|| {
        bad_tensor(
            path,
            name,
            format!(
                "`shape` must be a list of non-negative integers, found {}",
                short_json(shape_v)
            ),
        )
    })?;
    let offs_v = obj
        .get("data_offsets")
        .ok_or_else(|| bad_tensor(path, name, "header entry has no `data_offsets`"))?;
    let offsets = match offs_v {
        Value::Array(o) if o.len() == 2 => match (o[0].as_u64(), o[1].as_u64()) {
            (Some(b), Some(e)) => Some((b, e)),
            _ => None,
        },
        _ => None,
    };
    let Some((begin, end)) = offsets else {
        return Err(bad_tensor(
            path,
            name,
            format!(
                "`data_offsets` must be [begin, end] with non-negative integers, found {}",
                short_json(offs_v)
            ),
        ));
    };
    if begin > end {
        return Err(bad_tensor(
            path,
            name,
            format!("data_offsets [{begin}, {end}] are reversed"),
        ));
    }
    let needed = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size()));
    let Some(needed) = needed else {
        return Err(bad_tensor(
            path,
            name,
            format!("shape {shape:?} is too large"),
        ));
    };
    if needed as u64 != end - begin {
        return Err(bad_tensor(
            path,
            name,
            format!(
                "shape {shape:?} of {dtype_name} needs {needed} bytes but data_offsets [{begin}, {end}] span {}",
                end - begin
            ),
        ));
    }
    // Absolute offsets; anything past the file is reported as truncation by the caller, but the
    // numbers must at least fit in memory-address arithmetic.
    let abs = |o: u64| -> Option<usize> { usize::try_from(o).ok()?.checked_add(data_start) };
    let (Some(start), Some(stop)) = (abs(begin), abs(end)) else {
        return Err(FormatError::Truncated {
            path: path.to_path_buf(),
            what: format!("tensor `{name}` (data_offsets [{begin}, {end}])"),
            needed: end.saturating_add(data_start as u64),
            actual: data_len + data_start as u64,
        });
    };
    Ok(TensorEntry {
        name: name.to_string(),
        dtype,
        shape,
        range: start..stop,
    })
}

/// A memory-mapped safetensors file with a validated header. Tensors are zero-copy [`Bytes`]
/// views into the map; the map lives as long as any view of it.
pub struct SafetensorsFile {
    path: PathBuf,
    /// The whole file.
    data: Bytes,
    header: Header,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("tensors", &self.header.tensors.len())
            .finish()
    }
}

impl SafetensorsFile {
    /// The whole file, as mapped.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Memory-map `path` and validate its header (the data is not read).
    pub fn open(path: &Path) -> Result<SafetensorsFile, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, "open", e))?;
        let meta = file
            .metadata()
            .map_err(|e| FormatError::io(path, "read the size of", e))?;
        if meta.is_dir() {
            return Err(FormatError::CorruptHeader {
                path: path.to_path_buf(),
                reason: "this is a folder, not a safetensors file".into(),
            });
        }
        if meta.len() < 8 {
            return Err(FormatError::Truncated {
                path: path.to_path_buf(),
                what: "the 8-byte header length".into(),
                needed: 8,
                actual: meta.len(),
            });
        }
        // SAFETY: the map is read-only and shared by every tensor view taken from it. The file
        // must not be modified or truncated while it is mapped (doing so is undefined behaviour
        // or a SIGBUS); checkpoints are read-only inputs, so jing never writes to them, and users
        // must not rewrite a checkpoint while jing has it open.
        let mmap = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| FormatError::io(path, "memory-map", e))?;
        let len = mmap.len();
        Self::from_bytes(path, Bytes::new(Arc::new(mmap), 0..len))
    }

    /// Parse a whole file already in memory (e.g. `Bytes::from_vec`); `path` names it in
    /// errors. Tensor views share `data`.
    pub fn from_bytes(path: &Path, data: Bytes) -> Result<SafetensorsFile, FormatError> {
        let header = parse_header(path, data.as_slice())?;
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            data,
            header,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensors in data order.
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.header.tensors
    }

    /// The `__metadata__` map (empty when absent).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.header.metadata
    }

    /// File size in bytes.
    pub fn file_len(&self) -> usize {
        self.data.len()
    }

    /// A zero-copy view of a tensor's data. `entry` must come from this file's [`tensors`].
    ///
    /// [`tensors`]: SafetensorsFile::tensors
    pub fn bytes(&self, entry: &TensorEntry) -> Bytes {
        self.data.slice(entry.range.clone())
    }
}

/// Serialize tensors `(name, dtype, shape, little-endian data)` into safetensors bytes (header
/// padded to 8 bytes, data in the given order). Errors if a data length does not match its
/// shape or a name repeats.
pub fn serialize<'a>(
    tensors: impl IntoIterator<Item = (&'a str, DType, &'a [usize], &'a [u8])>,
) -> Result<Vec<u8>, FormatError> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    let label = Path::new("<serialize>");
    for (name, dtype, shape, bytes) in tensors {
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size()));
        if numel != Some(bytes.len()) {
            return Err(bad_tensor(
                label,
                name,
                format!(
                    "shape {shape:?} of {dtype} does not match {} data bytes",
                    bytes.len()
                ),
            ));
        }
        if name == "__metadata__" || header.contains_key(name) {
            return Err(bad_tensor(label, name, "duplicate or reserved tensor name"));
        }
        let begin = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({
                "dtype": dtype.safetensors_name(),
                "shape": shape,
                "data_offsets": [begin, data.len()],
            }),
        );
    }
    let mut h = Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + data.len());
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    Ok(out)
}

/// [`serialize`] to a file.
pub fn write<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, DType, &'a [usize], &'a [u8])>,
) -> Result<(), FormatError> {
    let bytes = serialize(tensors)?;
    std::fs::write(path, bytes).map_err(|e| FormatError::Io {
        path: path.to_path_buf(),
        action: "write",
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Header, FormatError> {
        parse_header(Path::new("t.safetensors"), bytes)
    }

    fn with_header(json: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn round_trip() {
        let a = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let b = [9u8; 3];
        let bytes = serialize([
            ("a", DType::BF16, &[2usize, 2][..], &a[..]),
            ("b", DType::F8E4M3, &[3usize][..], &b[..]),
            ("empty", DType::F32, &[0usize, 4][..], &[][..]),
        ])
        .unwrap();
        let h = parse(&bytes).unwrap();
        assert_eq!(h.tensors.len(), 3);
        let ta = h.tensors.iter().find(|t| t.name == "a").unwrap();
        assert_eq!(&bytes[ta.range.clone()], &a);
        assert_eq!(ta.shape, vec![2, 2]);
    }

    #[test]
    fn hostile_headers_are_errors() {
        // Empty / short input.
        assert!(matches!(parse(&[]), Err(FormatError::Truncated { .. })));
        assert!(matches!(parse(&[1, 2]), Err(FormatError::Truncated { .. })));
        // Huge header length.
        let mut v = u64::MAX.to_le_bytes().to_vec();
        v.extend_from_slice(b"{}");
        assert!(matches!(parse(&v), Err(FormatError::CorruptHeader { .. })));
        // Shape product overflow.
        let h = with_header(
            r#"{"x":{"dtype":"F32","shape":[18446744073709551615,2],"data_offsets":[0,0]}}"#,
            &[],
        );
        assert!(matches!(parse(&h), Err(FormatError::BadTensor { .. })));
        // Offsets near u64::MAX.
        let h = with_header(
            r#"{"x":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[18446744073709551613,18446744073709551615]}}"#,
            &[],
        );
        assert!(matches!(parse(&h), Err(FormatError::Truncated { .. })));
        // Overlap.
        let h = with_header(
            r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
            &[0; 8],
        );
        let e = parse(&h).unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        // Wrong field types.
        for bad in [
            r#"{"x":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}"#,
            r#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
            r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#,
            r#"{"x":{"dtype":"F32","shape":[1]}}"#,
            r#"{"x":3}"#,
        ] {
            assert!(
                matches!(
                    parse(&with_header(bad, &[0; 4])),
                    Err(FormatError::BadTensor { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            parse(&with_header("[1,2]", &[])),
            Err(FormatError::CorruptHeader { .. })
        ));
        assert!(matches!(
            parse(&with_header(r#"{"__metadata__":5}"#, &[])),
            Err(FormatError::CorruptHeader { .. })
        ));
    }

    #[test]
    fn metadata_is_kept() {
        let h = with_header(r#"{"__metadata__":{"format":"pt","n":3}}"#, &[]);
        let h = parse(&h).unwrap();
        assert_eq!(h.metadata["format"], "pt");
        assert_eq!(h.metadata["n"], "3");
    }
}
