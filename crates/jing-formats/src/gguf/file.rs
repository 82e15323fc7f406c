//! [`GgufFile`]: one memory-mapped GGUF file, or a split set (`NAME-00001-of-0000N.gguf`)
//! merged into one view: the first part's metadata, every part's tensors, each tensor a
//! zero-copy view of its part's map.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jing_tensor::{Bytes, Weight};

use super::parse::{parse_header, GgufHeader, GgufTensorInfo};
use super::types::{supported_ggml_types, GgufValue};
use crate::error::FormatError;

/// Most parts a split set may have.
pub const MAX_SPLITS: usize = 9999;

/// One file of a (possibly split) GGUF model.
struct Part {
    path: PathBuf,
    data: Bytes,
    header: GgufHeader,
}

/// A tensor of a [`GgufFile`].
#[derive(Clone, Copy, Debug)]
pub struct GgufTensor<'a> {
    /// The tensor's header entry.
    pub info: &'a GgufTensorInfo,
    /// The file that holds it.
    pub file: &'a Path,
}

/// A GGUF model: one file or a split set, memory-mapped. Opening reads only the headers.
pub struct GgufFile {
    parts: Vec<Part>,
    /// Tensor name → (part, index in that part's header).
    tensors: BTreeMap<String, (usize, usize)>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path())
            .field("parts", &self.parts.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// `(stem, part number, part count)` of a split-file name `STEM-00001-of-00003.gguf`.
pub fn split_name(path: &Path) -> Option<(String, usize, usize)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (stem, no) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(no) || !digits(count) {
        return None;
    }
    let (no, count): (usize, usize) = (no.parse().ok()?, count.parse().ok()?);
    (no >= 1 && no <= count && !stem.is_empty()).then(|| (stem.to_string(), no, count))
}

/// The path of part `no` (1-based) of `count` of the split set `stem` next to `path`.
pub fn split_path(path: &Path, stem: &str, no: usize, count: usize) -> PathBuf {
    path.with_file_name(format!("{stem}-{no:05}-of-{count:05}.gguf"))
}

/// Whether `path` names a GGUF file (by extension).
pub fn is_gguf_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

fn map_file(path: &Path) -> Result<Bytes, FormatError> {
    let file = File::open(path).map_err(|e| FormatError::io(path, "open", e))?;
    let meta = file
        .metadata()
        .map_err(|e| FormatError::io(path, "read the size of", e))?;
    if meta.is_dir() {
        return Err(FormatError::BadGguf {
            path: path.to_path_buf(),
            reason: "this is a folder, not a file".into(),
        });
    }
    if meta.len() == 0 {
        return Err(FormatError::BadGguf {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    // SAFETY: the map is read-only and shared by every tensor view taken from it. The file must
    // not be modified or truncated while it is mapped (that is undefined behaviour or a SIGBUS);
    // model files are read-only inputs that jing never writes, and users must not rewrite a
    // model while jing has it open.
    let mmap =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| FormatError::io(path, "memory-map", e))?;
    let len = mmap.len();
    Ok(Bytes::new(Arc::new(mmap), 0..len))
}

impl GgufFile {
    /// Open a GGUF file. A file named `NAME-0000K-of-0000N.gguf` (any part) opens the whole
    /// split set; every part must be present and agree on `split.count`.
    pub fn open(path: &Path) -> Result<GgufFile, FormatError> {
        if !path.exists() {
            return Err(FormatError::MissingFile {
                path: path.to_path_buf(),
                what: "GGUF file".into(),
                hint: "check the path".into(),
            });
        }
        let Some((stem, _, count)) = split_name(path) else {
            let part = Self::part(path, map_file(path)?)?;
            let file = Self::from_parts(vec![part])?;
            if let Some(n) = file.split_count()? {
                if n > 1 {
                    return Err(FormatError::GgufUnsupported {
                        path: path.to_path_buf(),
                        what: format!("this file is part of a split set of {n} files (split.count) but its name does not say which; keep the names llama.cpp gave them (NAME-00001-of-{n:05}.gguf)"),
                    });
                }
            }
            return Ok(file);
        };
        if count > MAX_SPLITS {
            return Err(FormatError::GgufUnsupported {
                path: path.to_path_buf(),
                what: format!("a split set of {count} files is over the limit of {MAX_SPLITS}"),
            });
        }
        let mut parts = Vec::with_capacity(count);
        for no in 1..=count {
            let p = split_path(path, &stem, no, count);
            if !p.is_file() {
                return Err(FormatError::MissingFile {
                    path: p,
                    what: format!("part {no} of the {count}-file GGUF split set"),
                    hint: "download every part of the model into the same folder".into(),
                });
            }
            parts.push(Self::part(&p, map_file(&p)?)?);
        }
        Self::from_parts(parts)
    }

    /// Parse one whole file already in memory (tests, fuzzing); `path` names it in errors.
    pub fn from_bytes(path: &Path, data: Bytes) -> Result<GgufFile, FormatError> {
        Self::from_parts(vec![Self::part(path, data)?])
    }

    fn part(path: &Path, data: Bytes) -> Result<Part, FormatError> {
        let header = parse_header(path, data.as_slice())?;
        Ok(Part {
            path: path.to_path_buf(),
            data,
            header,
        })
    }

    fn from_parts(parts: Vec<Part>) -> Result<GgufFile, FormatError> {
        let n = parts.len();
        let mut tensors: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut total = 0usize;
        for (pi, part) in parts.iter().enumerate() {
            if n > 1 {
                let key_u64 = |key: &str| -> Result<u64, FormatError> {
                    part.header
                        .get(key)
                        .and_then(GgufValue::as_u64)
                        .ok_or_else(|| FormatError::GgufKey {
                            path: part.path.clone(),
                            key: key.into(),
                            problem: "is missing or not an unsigned integer (every part of a split set has split.no and split.count)".into(),
                        })
                };
                let (no, count) = (key_u64("split.no")?, key_u64("split.count")?);
                if no != pi as u64 || count != n as u64 {
                    return Err(FormatError::GgufKey {
                        path: part.path.clone(),
                        key: "split.no".into(),
                        problem: format!(
                            "says part {} of {count}, but the file name says part {} of {n}; the files were renamed or mixed from different downloads",
                            no + 1,
                            pi + 1
                        ),
                    });
                }
            }
            for (ti, t) in part.header.tensors.iter().enumerate() {
                if let Some(&(prev, _)) = tensors.get(t.name.as_str()) {
                    return Err(FormatError::DuplicateTensor {
                        tensor: t.name.clone(),
                        first: parts[prev].path.clone(),
                        second: part.path.clone(),
                    });
                }
                tensors.insert(t.name.clone(), (pi, ti));
            }
            total += part.header.tensors.len();
        }
        let file = GgufFile { parts, tensors };
        if n > 1 {
            if let Some(v) = file.parts[0].header.get("split.tensors.count") {
                if v.as_u64() != Some(total as u64) {
                    return Err(FormatError::GgufKey {
                        path: file.parts[0].path.clone(),
                        key: "split.tensors.count".into(),
                        problem: format!(
                            "is {} but the {n} parts hold {total} tensors; a part is damaged or from another download",
                            v.summary()
                        ),
                    });
                }
            }
        }
        Ok(file)
    }

    /// The first (or only) file.
    pub fn path(&self) -> &Path {
        &self.parts[0].path
    }

    /// Every file, in part order.
    pub fn paths(&self) -> Vec<&Path> {
        self.parts.iter().map(|p| p.path.as_path()).collect()
    }

    /// GGUF version of the first file.
    pub fn version(&self) -> u32 {
        self.parts[0].header.version
    }

    /// `split.count`, if the first file has it.
    fn split_count(&self) -> Result<Option<u64>, FormatError> {
        match self.get("split.count") {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.key_error("split.count", "an unsigned integer", v)),
        }
    }

    /// The metadata of the first file, in file order (split parts after the first carry only
    /// their `split.*` keys).
    pub fn metadata(&self) -> &[(String, GgufValue)] {
        &self.parts[0].header.metadata
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.parts[0].header.get(key)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(GgufValue::as_str)
    }

    fn key_error(&self, key: &str, expected: &str, found: &GgufValue) -> FormatError {
        FormatError::GgufKey {
            path: self.path().to_path_buf(),
            key: key.into(),
            problem: format!(
                "should be {expected}, found {} {}",
                found.value_type().name(),
                found.summary()
            ),
        }
    }

    fn missing_key(&self, key: &str, expected: &str) -> FormatError {
        FormatError::GgufKey {
            path: self.path().to_path_buf(),
            key: key.into(),
            problem: format!("is missing (expected {expected})"),
        }
    }

    /// An optional non-negative integer key (any integer type).
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, FormatError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.key_error(key, "a non-negative integer", v)),
        }
    }

    /// A required non-negative integer key that fits in `usize`.
    pub fn usize(&self, key: &str) -> Result<usize, FormatError> {
        self.opt_usize(key)?
            .ok_or_else(|| self.missing_key(key, "a non-negative integer"))
    }

    /// An optional non-negative integer key that fits in `usize`.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, FormatError> {
        match self.opt_u64(key)? {
            None => Ok(None),
            Some(v) => usize::try_from(v)
                .map(Some)
                .map_err(|_| self.key_error(key, "a smaller integer", &GgufValue::U64(v))),
        }
    }

    /// An optional number key (any numeric type).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, FormatError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.key_error(key, "a number", v)),
        }
    }

    /// An optional boolean key.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, FormatError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.key_error(key, "true or false", v)),
        }
    }

    /// An optional string key.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, FormatError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.key_error(key, "a string", v)),
        }
    }

    /// An optional string-array key.
    pub fn opt_strings(&self, key: &str) -> Result<Option<&[String]>, FormatError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .and_then(|a| a.as_strings())
                .map(Some)
                .ok_or_else(|| self.key_error(key, "an array of strings", v)),
        }
    }

    /// An optional integer-array key.
    pub fn opt_i64s(&self, key: &str) -> Result<Option<Vec<i64>>, FormatError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .and_then(|a| a.to_i64_vec())
                .map(Some)
                .ok_or_else(|| self.key_error(key, "an array of integers", v)),
        }
    }

    /// Number of tensors (all parts).
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the model has no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// A tensor's header entry and file.
    pub fn tensor(&self, name: &str) -> Option<GgufTensor<'_>> {
        let &(p, t) = self.tensors.get(name)?;
        Some(GgufTensor {
            info: &self.parts[p].header.tensors[t],
            file: &self.parts[p].path,
        })
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = GgufTensor<'_>> + '_ {
        self.tensors.values().map(|&(p, t)| GgufTensor {
            info: &self.parts[p].header.tensors[t],
            file: &self.parts[p].path,
        })
    }

    /// Each part's whole memory map (see [`crate::prefault`]).
    pub fn maps(&self) -> Vec<Bytes> {
        self.parts.iter().map(|p| p.data.clone()).collect()
    }

    /// Total tensor data bytes.
    pub fn total_bytes(&self) -> u64 {
        self.tensors().map(|t| t.info.range.len() as u64).sum()
    }

    /// A zero-copy view of a tensor's stored bytes (any GGML type).
    pub fn bytes(&self, name: &str) -> Option<Bytes> {
        let &(p, t) = self.tensors.get(name)?;
        let part = &self.parts[p];
        Some(part.data.slice(part.header.tensors[t].range.clone()))
    }

    /// The tensor as a zero-copy [`Weight`] of shape `[.., rows, cols]` (GGUF's dimensions
    /// reversed), named `name`. A GGML type jing cannot compute with is
    /// [`FormatError::GgufTensorType`].
    pub fn weight(&self, name: &str) -> Result<Weight, FormatError> {
        let Some(t) = self.tensor(name) else {
            return Err(FormatError::MissingTensor {
                name: name.to_string(),
                searched: crate::error::summarise_files(self.paths()),
                hint: String::new(),
            });
        };
        let Some(dtype) = t.info.ggml_type.dtype() else {
            return Err(FormatError::GgufTensorType {
                path: t.file.to_path_buf(),
                tensor: name.to_string(),
                ggml_type: t.info.ggml_type.name.to_string(),
                supported: supported_ggml_types(),
            });
        };
        let data = self.bytes(name).expect("tensor exists");
        Weight::new(name, dtype, t.info.shape.clone(), data).map_err(|source| FormatError::Weight {
            path: t.file.to_path_buf(),
            source: Box::new(source),
        })
    }
}
