//! `jing inspect`: what a checkpoint folder (or a single safetensors file, or a GGUF file or
//! split set) holds and what it lacks, without reading tensor data.

use std::fmt;
use std::path::{Path, PathBuf};

use jing_tensor::DType;
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::FormatError;
use crate::gguf::{is_gguf_path, GgufFile, GgufValue, HfView};
use crate::model_dir::{fp8_block_size, CONFIG_FILE, GENERATION_CONFIG_FILE};
use crate::store::{DTypeCount, TensorStore};

/// Config fields shown by `inspect`, in display order (only those present are shown).
pub const KEY_CONFIG_FIELDS: &[&str] = &[
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "q_lora_rank",
    "kv_lora_rank",
    "qk_nope_head_dim",
    "qk_rope_head_dim",
    "v_head_dim",
    "n_routed_experts",
    "num_experts_per_tok",
    "n_shared_experts",
    "first_k_dense_replace",
    "moe_intermediate_size",
    "intermediate_size",
    "vocab_size",
    "topk_method",
    "scoring_func",
    "n_group",
    "topk_group",
    "routed_scaling_factor",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "max_position_embeddings",
    "tie_word_embeddings",
    "use_sliding_window",
    "num_nextn_predict_layers",
    "quantization_config",
];

/// Files a complete folder has besides weights (their absence is listed as missing).
const REQUIRED_FILES: &[&str] = &[CONFIG_FILE, "tokenizer.json", "tokenizer_config.json"];

/// How many individual problems of one kind to list before summarising.
const LIST_LIMIT: usize = 10;

/// FP8 tensors and their scales.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fp8Summary {
    /// F8E4M3 tensors.
    pub tensors: usize,
    /// Of those, how many have a valid block scale.
    pub with_scale: usize,
    /// Block size used to check the scales.
    pub block: [usize; 2],
}

/// Tensors and bytes of one GGML type in a GGUF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgmlTypeCount {
    /// The GGML type's name ("Q8_0").
    pub ggml_type: String,
    /// Whether jing computes with it.
    pub supported: bool,
    /// How many tensors have it.
    pub tensors: usize,
    /// Their total data bytes.
    pub bytes: u64,
}

/// What `inspect` tells about a GGUF file beyond the common report.
#[derive(Clone, Debug)]
pub struct GgufSummary {
    /// Format version.
    pub version: u32,
    /// `general.architecture`.
    pub gguf_architecture: Option<String>,
    /// Every metadata entry, arrays shown by type and length (`[string; 129280]`).
    pub metadata: Vec<(String, String)>,
    /// Tensors and bytes per GGML type, largest first.
    pub types: Vec<GgmlTypeCount>,
}

/// Metadata keys whose value is too long to print in full.
const LONG_KEYS: &[&str] = &["tokenizer.chat_template"];

/// The result of [`inspect`]. `Display` prints it for people; [`InspectReport::to_json`] for
/// programs.
#[derive(Clone, Debug)]
pub struct InspectReport {
    /// The inspected path.
    pub path: PathBuf,
    /// Folder (true) or single safetensors file (false).
    pub is_dir: bool,
    /// `architectures[0]` of config.json.
    pub architecture: Option<String>,
    /// `model_type` of config.json.
    pub model_type: Option<String>,
    /// The [`KEY_CONFIG_FIELDS`] present in config.json, in that order.
    pub config: Vec<(String, Value)>,
    /// Number of tensors.
    pub tensors: usize,
    /// Tensors and bytes per dtype.
    pub dtypes: Vec<DTypeCount>,
    /// Total tensor data bytes.
    pub total_bytes: u64,
    /// Number of safetensors files opened.
    pub files: usize,
    /// The shard index, if the checkpoint is sharded.
    pub index: Option<PathBuf>,
    /// Present when the checkpoint has F8E4M3 tensors.
    pub fp8: Option<Fp8Summary>,
    /// Files the folder should have and does not (config.json, tokenizer files, weights, shards
    /// named by the index).
    pub missing: Vec<String>,
    /// Things worth knowing that do not stop loading (e.g. no generation_config.json).
    pub warnings: Vec<String>,
    /// Things that will make loading fail (corrupt config, FP8 tensors without scales, ...).
    pub problems: Vec<String>,
    /// Present for a GGUF file.
    pub gguf: Option<GgufSummary>,
}

impl InspectReport {
    /// Whether nothing is missing and nothing is broken (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.problems.is_empty()
    }

    /// The same information as JSON.
    pub fn to_json(&self) -> Value {
        let config: serde_json::Map<String, Value> = self.config.iter().cloned().collect();
        json!({
            "path": self.path.display().to_string(),
            "kind": if self.is_dir { "folder" } else { "file" },
            "architecture": self.architecture,
            "model_type": self.model_type,
            "config": config,
            "tensors": self.tensors,
            "files": self.files,
            "index": self.index.as_ref().map(|p| p.display().to_string()),
            "total_bytes": self.total_bytes,
            "dtypes": self.dtypes.iter().map(|d| json!({
                "dtype": d.dtype.safetensors_name(),
                "tensors": d.tensors,
                "bytes": d.bytes,
            })).collect::<Vec<_>>(),
            "fp8": self.fp8.as_ref().map(|f| json!({
                "tensors": f.tensors,
                "with_scale": f.with_scale,
                "block_size": f.block,
            })),
            "missing": self.missing,
            "warnings": self.warnings,
            "problems": self.problems,
            "ok": self.is_ok(),
            "gguf": self.gguf.as_ref().map(|g| json!({
                "version": g.version,
                "architecture": g.gguf_architecture,
                "metadata": g
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<serde_json::Map<String, Value>>(),
                "ggml_types": g.types.iter().map(|t| json!({
                    "type": t.ggml_type,
                    "supported": t.supported,
                    "tensors": t.tensors,
                    "bytes": t.bytes,
                })).collect::<Vec<_>>(),
            })),
        })
    }
}

/// Human-readable byte count ("1.50 GiB").
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.gguf {
            Some(g) => format!(
                "GGUF v{}, {} file{}",
                g.version,
                self.files,
                if self.files == 1 { "" } else { "s" }
            ),
            None if self.is_dir => "folder".into(),
            None => "file".into(),
        };
        writeln!(f, "{} ({kind})", self.path.display())?;
        if let Some(g) = &self.gguf {
            writeln!(
                f,
                "GGUF architecture: {}",
                g.gguf_architecture.as_deref().unwrap_or("?")
            )?;
        }
        if self.architecture.is_some() || self.model_type.is_some() {
            writeln!(
                f,
                "architecture: {} (model_type {})",
                self.architecture.as_deref().unwrap_or("?"),
                self.model_type.as_deref().unwrap_or("?")
            )?;
        }
        if !self.config.is_empty() {
            let from = if self.gguf.is_some() {
                " (as implied by the GGUF metadata)"
            } else {
                ""
            };
            writeln!(f, "config{from}:")?;
            for (k, v) in &self.config {
                writeln!(f, "  {k}: {v}")?;
            }
        }
        let sharding = match &self.index {
            Some(i) => format!(
                " ({} shards via {})",
                self.files,
                i.file_name().unwrap_or_default().to_string_lossy()
            ),
            None => format!(
                " ({} file{})",
                self.files,
                if self.files == 1 { "" } else { "s" }
            ),
        };
        writeln!(
            f,
            "tensors: {}{sharding}, {} bytes ({})",
            self.tensors,
            self.total_bytes,
            human_bytes(self.total_bytes)
        )?;
        match &self.gguf {
            Some(g) => {
                for t in &g.types {
                    writeln!(
                        f,
                        "  {:<8} {:>7} tensors  {:>16} bytes  ({}){}",
                        t.ggml_type,
                        t.tensors,
                        t.bytes,
                        human_bytes(t.bytes),
                        if t.supported { "" } else { "  not supported" }
                    )?;
                }
                writeln!(f, "metadata: {} entries", g.metadata.len())?;
                for (k, v) in &g.metadata {
                    writeln!(f, "  {k}: {v}")?;
                }
            }
            None => {
                for d in &self.dtypes {
                    writeln!(
                        f,
                        "  {:<8} {:>7} tensors  {:>16} bytes  ({})",
                        d.dtype.safetensors_name(),
                        d.tensors,
                        d.bytes,
                        human_bytes(d.bytes)
                    )?;
                }
            }
        }
        if let Some(fp8) = &self.fp8 {
            writeln!(
                f,
                "fp8: {} of {} F8_E4M3 tensors have {}x{} block scales",
                fp8.with_scale, fp8.tensors, fp8.block[0], fp8.block[1]
            )?;
        }
        let list = |f: &mut fmt::Formatter<'_>, title: &str, items: &[String]| -> fmt::Result {
            if !items.is_empty() {
                writeln!(f, "{title}:")?;
                for i in items {
                    writeln!(f, "  - {i}")?;
                }
            }
            Ok(())
        };
        list(f, "missing", &self.missing)?;
        list(f, "problems", &self.problems)?;
        list(f, "warnings", &self.warnings)?;
        if self.is_ok() {
            writeln!(f, "status: ok")?;
        } else {
            writeln!(f, "status: incomplete or broken (see above)")?;
        }
        Ok(())
    }
}

/// Inspect a model folder or a single `.safetensors` file. Only headers and JSON files are
/// read. Problems found in a folder are reported in the result; an error is returned only when
/// `path` does not exist, or for a single file that cannot be read.
pub fn inspect(path: &Path) -> Result<InspectReport, FormatError> {
    if !path.exists() {
        return Err(FormatError::MissingFile {
            path: path.to_path_buf(),
            what: "model folder or safetensors file".into(),
            hint: "check the path".into(),
        });
    }
    let is_dir = path.is_dir();
    let mut r = InspectReport {
        path: path.to_path_buf(),
        is_dir,
        architecture: None,
        model_type: None,
        config: Vec::new(),
        tensors: 0,
        dtypes: Vec::new(),
        total_bytes: 0,
        files: 0,
        index: None,
        fp8: None,
        missing: Vec::new(),
        warnings: Vec::new(),
        problems: Vec::new(),
        gguf: None,
    };

    if !is_dir && is_gguf_path(path) {
        inspect_gguf(&mut r, path)?;
        return Ok(r);
    }
    if !is_dir {
        let store = TensorStore::open_file(path)?;
        summarise_store(&mut r, &store);
        return Ok(r);
    }

    // Config and companion files.
    let mut config: Option<Config> = None;
    for name in REQUIRED_FILES {
        if !path.join(name).is_file() {
            r.missing.push((*name).to_string());
        }
    }
    if !path.join(GENERATION_CONFIG_FILE).is_file() {
        r.warnings.push(format!(
            "{GENERATION_CONFIG_FILE} not found: default sampling settings will be used"
        ));
    }
    if path.join(CONFIG_FILE).is_file() {
        match Config::from_file(&path.join(CONFIG_FILE)) {
            Ok(c) => config = Some(c),
            Err(e) => r.problems.push(e.to_string()),
        }
    }
    if let Some(c) = &config {
        read_config(&mut r, c);
    }

    // Weights.
    match TensorStore::open_lenient(path) {
        Ok((mut store, absent)) => {
            for a in &absent {
                r.missing.push(format!(
                    "{} (shard named by the index for {} tensors)",
                    a.shard, a.tensors
                ));
            }
            if let Some(c) = &config {
                match fp8_block_size(c) {
                    Ok(Some(b)) => {
                        if let Err(e) = store.set_block_size(b) {
                            r.problems.push(e.to_string());
                        }
                    }
                    Ok(None) => {}
                    Err(e) => r.problems.push(e.to_string()),
                }
            }
            summarise_store(&mut r, &store);
            if let Some(c) = &config {
                let has_fp8 = r.fp8.is_some();
                let quant = c.has("quantization_config");
                if quant && !has_fp8 {
                    r.warnings.push(
                        "config.json has quantization_config but no tensor is F8_E4M3 (a converted bf16 checkpoint?); jing uses the tensors' own dtypes".into(),
                    );
                }
                if has_fp8 && !quant {
                    r.warnings.push(
                        "F8_E4M3 tensors present but config.json has no quantization_config; assuming 128x128 blocks".into(),
                    );
                }
            }
        }
        Err(FormatError::NoWeights { .. }) => {
            r.missing.push(
                "weights (model.safetensors or model.safetensors.index.json + shards)".into(),
            );
        }
        Err(e) => r.problems.push(e.to_string()),
    }
    Ok(r)
}

/// A GGUF file or split set: metadata, tensor types, the config its metadata implies and what
/// would stop jing from loading it. Only an unreadable file is an error.
fn inspect_gguf(r: &mut InspectReport, path: &Path) -> Result<(), FormatError> {
    let file = std::sync::Arc::new(GgufFile::open(path)?);
    r.files = file.paths().len();
    r.tensors = file.len();
    r.total_bytes = file.total_bytes();
    let mut types: Vec<GgmlTypeCount> = Vec::new();
    for t in file.tensors() {
        let ty = t.info.ggml_type;
        let bytes = t.info.range.len() as u64;
        match types.iter_mut().find(|c| c.ggml_type == ty.name) {
            Some(c) => {
                c.tensors += 1;
                c.bytes += bytes;
            }
            None => types.push(GgmlTypeCount {
                ggml_type: ty.name.to_string(),
                supported: ty.dtype().is_some_and(DType::is_weight),
                tensors: 1,
                bytes,
            }),
        }
    }
    types.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.ggml_type.cmp(&b.ggml_type)));
    let unsupported: Vec<String> = file
        .tensors()
        .filter(|t| !t.info.ggml_type.dtype().is_some_and(DType::is_weight))
        .map(|t| format!("{} ({})", t.info.name, t.info.ggml_type.name))
        .collect();
    if !unsupported.is_empty() {
        let n = unsupported.len();
        r.problems.push(format!(
            "{n} tensor{} of a GGML type jing cannot compute with (supported: {}): {}{}",
            if n == 1 { "" } else { "s" },
            crate::gguf::supported_ggml_types(),
            unsupported
                .iter()
                .take(LIST_LIMIT)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if n > LIST_LIMIT { ", ..." } else { "" }
        ));
    }
    let metadata = file
        .metadata()
        .iter()
        .map(|(k, v)| {
            let shown = match v {
                GgufValue::String(s) if LONG_KEYS.contains(&k.as_str()) => {
                    format!("<{} bytes>", s.len())
                }
                other => other.summary(),
            };
            (k.clone(), shown)
        })
        .collect();
    if file.get("tokenizer.ggml.tokens").is_none() {
        r.missing
            .push("tokenizer (tokenizer.ggml.tokens): give the tokenizer separately".into());
    }
    if file.get("tokenizer.chat_template").is_none() {
        r.warnings
            .push("no tokenizer.chat_template: chat needs --chat-template FILE".into());
    }
    r.gguf = Some(GgufSummary {
        version: file.version(),
        gguf_architecture: file.architecture().map(String::from),
        metadata,
        types,
    });
    match HfView::new(file) {
        Ok(view) => match Config::from_value(path, view.config().clone()) {
            Ok(c) => read_config(r, &c),
            Err(e) => r.problems.push(e.to_string()),
        },
        Err(e) => r.problems.push(e.to_string()),
    }
    Ok(())
}

fn read_config(r: &mut InspectReport, c: &Config) {
    r.architecture = match c.get("architectures") {
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(String::from),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    match c.opt_str("model_type") {
        Ok(m) => r.model_type = m.map(String::from),
        Err(e) => r.problems.push(e.to_string()),
    }
    for &k in KEY_CONFIG_FIELDS {
        if let Some(v) = c.value().get(k) {
            r.config.push((k.to_string(), v.clone()));
        }
    }
}

fn summarise_store(r: &mut InspectReport, store: &TensorStore) {
    r.tensors = store.len();
    r.dtypes = store.dtype_counts();
    r.total_bytes = store.total_bytes();
    r.files = store.file_count();
    r.index = store.index_path().map(Path::to_path_buf);

    let fp8: Vec<&str> = store
        .iter()
        .filter(|t| t.dtype == DType::F8E4M3)
        .map(|t| t.name)
        .collect();
    if fp8.is_empty() {
        return;
    }
    let mut with_scale = 0;
    let mut errors = Vec::new();
    for name in &fp8 {
        // `get` only builds views and checks the scale grid: no tensor data is read.
        match store.get(name) {
            Ok(_) => with_scale += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    let n_err = errors.len();
    r.problems.extend(errors.into_iter().take(LIST_LIMIT));
    if n_err > LIST_LIMIT {
        r.problems.push(format!(
            "... and {} more FP8 tensors without a valid block scale",
            n_err - LIST_LIMIT
        ));
    }
    r.fp8 = Some(Fp8Summary {
        tensors: fp8.len(),
        with_scale,
        block: store.block_size(),
    });
}
