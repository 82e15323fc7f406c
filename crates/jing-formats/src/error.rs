//! [`FormatError`]: everything that can go wrong while reading a checkpoint. Every message names
//! the file, and the tensor or field where there is one, and says what to do next.

use std::path::{Path, PathBuf};

use jing_tensor::WeightError;

/// The safetensors dtypes jing reads, as listed in error messages.
pub const SUPPORTED_DTYPES: &str = "F32, F16, BF16, F8_E4M3, I32, I64";

/// An error from reading a checkpoint folder, a safetensors file or a JSON config.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A file or folder that must exist does not.
    #[error("{}: not found ({what}); {hint}", .path.display())]
    MissingFile {
        path: PathBuf,
        /// What the file is for, e.g. "model config".
        what: String,
        /// What to do next.
        hint: String,
    },

    /// A folder without any `*.safetensors` file.
    #[error("{}: no weights found (no model.safetensors, no model.safetensors.index.json, no *.safetensors file); download the checkpoint's *.safetensors files into this folder", .dir.display())]
    NoWeights { dir: PathBuf },

    /// A shard named by the index's `weight_map` is not in the folder.
    #[error("{}: shard `{shard}` is named by the index (for {tensors} tensors, e.g. `{example}`) but is not in the folder{others}; the download is incomplete, fetch the missing shard(s)", .index.display())]
    MissingShard {
        index: PathBuf,
        /// The shard's file name as the index writes it (relative to the index's folder).
        shard: String,
        tensors: usize,
        example: String,
        /// " (and N more shards are missing)" or empty.
        others: String,
    },

    /// The index JSON is not what HF writes.
    #[error("{}: invalid index: {reason}; the file should be {{\"weight_map\": {{\"tensor name\": \"shard file\", ...}}}}, re-download it", .path.display())]
    BadIndex { path: PathBuf, reason: String },

    /// An I/O error reading a file that exists.
    #[error("{}: cannot {action}: {source}", .path.display())]
    Io {
        path: PathBuf,
        /// "open", "read", "memory-map", ...
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The safetensors header is unreadable (bad length prefix, bad JSON, bad entry).
    #[error("{}: corrupt safetensors header: {reason}; the file is damaged or not a safetensors file, re-download it", .path.display())]
    CorruptHeader { path: PathBuf, reason: String },

    /// The header describes more data than the file holds.
    #[error("{}: file is truncated: {what} ends at byte {needed} but the file has only {actual} bytes; the download is incomplete or the header is wrong, re-download it", .path.display())]
    Truncated {
        path: PathBuf,
        /// What needs the bytes: "the header", or "tensor `name` (data_offsets [a, b])".
        what: String,
        needed: u64,
        actual: u64,
    },

    /// A tensor's dtype is not one jing reads.
    #[error("{}: tensor `{tensor}` has dtype {dtype}, which jing does not support (supported: {}); convert the checkpoint (e.g. to BF16) or ask for support", .path.display(), SUPPORTED_DTYPES)]
    UnsupportedDType {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },

    /// A tensor's header entry is inconsistent: its byte length does not match its shape,
    /// its offsets are reversed or it overlaps another tensor.
    #[error("{}: tensor `{tensor}`: {reason}; the file is corrupt, re-download it", .path.display())]
    BadTensor {
        path: PathBuf,
        tensor: String,
        reason: String,
    },

    /// Two files of one store hold the same tensor name and no index says which one to use.
    #[error("tensor `{tensor}` is in both {} and {}; keep only one copy of the checkpoint in the folder (or add model.safetensors.index.json)", .first.display(), .second.display())]
    DuplicateTensor {
        tensor: String,
        first: PathBuf,
        second: PathBuf,
    },

    /// A tensor the caller asked for is not in the checkpoint.
    #[error("tensor `{name}` not found (searched {searched}){hint}; check the model type and that the checkpoint is complete")]
    MissingTensor {
        name: String,
        /// The file(s) searched, already summarised for display.
        searched: String,
        /// ", did you mean `...`?" or empty.
        hint: String,
    },

    /// An FP8 tensor without its `_scale_inv` companion.
    #[error("FP8 tensor `{name}` (in {}) has no block scale `{scale_name}` (searched {searched}); the checkpoint is incomplete or was converted without its scales, re-download it", .path.display())]
    MissingScale {
        name: String,
        scale_name: String,
        path: PathBuf,
        searched: String,
    },

    /// A tensor whose data or scale does not fit its shape (see [`WeightError`]).
    #[error("{}: {source}; the file is corrupt or the FP8 block size is wrong (check quantization_config.weight_block_size)", .path.display())]
    Weight {
        path: PathBuf,
        #[source]
        source: Box<WeightError>,
    },

    /// A JSON file (config.json, generation_config.json, an index) that does not parse.
    #[error("{}: not valid JSON: {reason}; fix or re-download the file", .path.display())]
    BadJson { path: PathBuf, reason: String },

    /// A required config field is absent (or null).
    #[error("{}: field `{field}` is missing (expected {expected}); add it or use a config from the model's repository", .path.display())]
    ConfigMissing {
        path: PathBuf,
        field: String,
        expected: &'static str,
    },

    /// A config field has the wrong JSON type or an out-of-range value.
    #[error("{}: field `{field}` should be {expected}, found {found}; fix the value in the config", .path.display())]
    ConfigType {
        path: PathBuf,
        field: String,
        expected: &'static str,
        /// The value found, as JSON (shortened).
        found: String,
    },

    /// A GGUF file whose bytes break the format or one of the reader's hard limits.
    #[error("{}: not a valid GGUF file: {reason}; the file is damaged, truncated or not GGUF, re-download it", .path.display())]
    BadGguf { path: PathBuf, reason: String },

    /// A GGUF metadata key that a loader needs is missing or has the wrong type or value.
    #[error("{}: GGUF metadata `{key}` {problem}", .path.display())]
    GgufKey {
        path: PathBuf,
        key: String,
        /// e.g. "is missing (expected an unsigned integer)".
        problem: String,
    },

    /// A GGUF tensor whose block type jing cannot compute with.
    #[error("{}: tensor `{tensor}` is stored as GGML type {ggml_type}, which jing cannot compute with (supported: {supported}); use a GGUF quantized to one of those", .path.display())]
    GgufTensorType {
        path: PathBuf,
        tensor: String,
        /// The GGML type's name (or `type id N`).
        ggml_type: String,
        supported: String,
    },

    /// A GGUF file that is valid but holds something jing does not run (another architecture,
    /// an unknown tokenizer, a missing split part...).
    #[error("{}: {what}", .path.display())]
    GgufUnsupported { path: PathBuf, what: String },

    /// A model folder was expected and a file was given.
    #[error("{} is a file, not a model folder: pass the folder that holds config.json and the *.safetensors files, or a .gguf file", .0.display())]
    NotAFolder(PathBuf),
    /// A model that `jing quantize` (or quantizing at load) cannot convert: an unsupported
    /// architecture or config, a tensor of a type it cannot read, an output path it must not
    /// write.
    #[error("{}: cannot quantize: {what}", .path.display())]
    Quantize { path: PathBuf, what: String },
    /// An invalid store setting (e.g. a zero FP8 block size).
    #[error("invalid setting: {0}")]
    Setting(String),
}

impl FormatError {
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> FormatError {
        if source.kind() == std::io::ErrorKind::NotFound {
            return FormatError::MissingFile {
                path: path.to_path_buf(),
                what: "file".into(),
                hint: "check the path".into(),
            };
        }
        FormatError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

/// "a.safetensors" or "a, b and 3 more files" — for error messages.
pub(crate) fn summarise_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> String {
    let names: Vec<String> = paths.into_iter().map(|p| p.display().to_string()).collect();
    match names.len() {
        0 => "no files".to_string(),
        1..=3 => names.join(", "),
        n => format!("{}, {} and {} more files", names[0], names[1], n - 2),
    }
}

/// A JSON value shortened for an error message.
pub(crate) fn short_json(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let head: String = s.chars().take(57).collect();
        format!("{head}...")
    } else {
        s
    }
}
