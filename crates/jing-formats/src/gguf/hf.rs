//! A GGUF model seen as a Hugging Face checkpoint: the `config.json` its metadata implies and
//! its tensors under HF names, so that one model file serves safetensors and GGUF alike (the
//! models never learn that GGUF exists).
//!
//! Tensor names follow llama.cpp's converter (`gguf-py` `constants.py`, `tensor_mapping.py`):
//! `token_embd` → `model.embed_tokens`, `blk.N.attn_q_a` → `model.layers.N.self_attn.q_a_proj`,
//! and so on. GGUF dimensions are innermost first, so a stored `{cols, rows}` is the `[rows,
//! cols]` HF writes; no data moves. Three layouts differ from HF's and are mapped here:
//!
//! - Routed experts are stacked per layer (`ffn_gate_exps` is `[experts, inter, hidden]`): each
//!   `mlp.experts.E.gate_proj.weight` is a zero-copy row slice of it.
//! - Newer DeepSeek GGUFs split `kv_b_proj` into `attn_k_b` (per head, transposed:
//!   `[heads, kv_lora, qk_nope]`) and `attn_v_b` (`[heads, v_head, kv_lora]`); the HF
//!   `kv_b_proj` `[heads·(qk_nope+v_head), kv_lora]` is rebuilt from them at load (copied once,
//!   dequantized when a part is quantized; small next to the experts). Older files store
//!   `attn_kv_b`, used as is.
//! - llama.cpp permutes the q/k rows of `llama` models so that RoPE rotates adjacent pairs; the
//!   config then says `rope_interleave: true` instead of undoing the permutation, which keeps
//!   the weights zero-copy (Qwen2 files are not permuted and keep the half-split rotation).
//!
//! Metadata semantics that differ from HF's config, and what is done about them:
//!
//! - YaRN: llama.cpp stores `rope.scaling.yarn_log_multiplier = 0.1 · mscale_all_dim` and
//!   assumes `mscale == mscale_all_dim` (RoPE magnitude factor 1, the `m²` correction on the
//!   softmax scale only). That is exact for every released DeepSeek config. A file with
//!   `rope.scaling.yarn_attn_factor` gets that RoPE magnitude factor instead.
//! - llama3 RoPE scaling is stored as the `rope_freqs` tensor (one divisor per frequency);
//!   it becomes the config's `rope_freq_factors`.
//! - DeepSeek routing: `expert_gating_func` 2 (sigmoid) is V3's `noaux_tc`, grouped when
//!   `expert_group_count` is present (older files lack it: plain top-k, as llama.cpp does);
//!   1 or absent is V2's softmax, `group_limited_greedy` when grouped, else `greedy`.
//! - Multi-token prediction: `nextn_predict_layers` trailing blocks (counted in `block_count`)
//!   whose `blk.N.nextn.*` tensors become `model.layers.N.{eh_proj,enorm,...}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jing_tensor::{Bytes, DType, Weight};
use serde_json::{json, Map, Value};

use super::file::GgufFile;
use super::types::{supported_ggml_types, GgmlType};
use crate::error::FormatError;

/// The architectures (`general.architecture`) jing runs from GGUF.
pub const GGUF_ARCHITECTURES: &[&str] = &["deepseek2", "qwen2", "llama"];

/// Where an HF-named tensor comes from.
#[derive(Clone, Debug)]
enum Source {
    /// A GGUF tensor, as stored.
    Direct(String),
    /// Expert `expert` of a stacked `[experts, rows, cols]` tensor.
    Expert {
        tensor: String,
        expert: usize,
        rows: usize,
    },
    /// `kv_b_proj` rebuilt from `attn_k_b` and `attn_v_b`.
    KvB { k_b: String, v_b: String },
}

/// An HF-named tensor of the view.
#[derive(Clone, Debug)]
struct Entry {
    source: Source,
    /// `None` when jing cannot compute with the stored GGML type.
    dtype: Option<DType>,
    ggml_type: &'static str,
    shape: Vec<usize>,
    file: PathBuf,
    byte_len: usize,
}

/// A GGUF model as an HF checkpoint: a synthesized `config.json` and HF tensor names.
pub struct HfView {
    file: Arc<GgufFile>,
    config: Value,
    generation: Option<Value>,
    entries: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for HfView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfView")
            .field("file", &self.file.path())
            .field("tensors", &self.entries.len())
            .finish()
    }
}

/// What [`HfView::info`] tells about a tensor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ViewInfo<'a> {
    pub name: &'a str,
    pub dtype: Option<DType>,
    pub shape: &'a [usize],
    pub file: &'a Path,
    pub byte_len: usize,
}

/// The HF suffix (after `model.layers.N.`) of a GGUF block tensor suffix (after `blk.N.`).
pub(crate) const BLOCK_NAMES: &[(&str, &str)] = &[
    ("attn_norm.weight", "input_layernorm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_q.bias", "self_attn.q_proj.bias"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_k.bias", "self_attn.k_proj.bias"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_v.bias", "self_attn.v_proj.bias"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("attn_output.bias", "self_attn.o_proj.bias"),
    ("attn_q_a.weight", "self_attn.q_a_proj.weight"),
    ("attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"),
    ("attn_q_b.weight", "self_attn.q_b_proj.weight"),
    (
        "attn_kv_a_mqa.weight",
        "self_attn.kv_a_proj_with_mqa.weight",
    ),
    ("attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"),
    ("attn_kv_b.weight", "self_attn.kv_b_proj.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
    ("ffn_gate_inp.weight", "mlp.gate.weight"),
    ("exp_probs_b.bias", "mlp.gate.e_score_correction_bias"),
    (
        "ffn_gate_shexp.weight",
        "mlp.shared_experts.gate_proj.weight",
    ),
    ("ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"),
    (
        "ffn_down_shexp.weight",
        "mlp.shared_experts.down_proj.weight",
    ),
    ("nextn.eh_proj.weight", "eh_proj.weight"),
    ("nextn.embed_tokens.weight", "embed_tokens.weight"),
    ("nextn.enorm.weight", "enorm.weight"),
    ("nextn.hnorm.weight", "hnorm.weight"),
    ("nextn.shared_head_head.weight", "shared_head.head.weight"),
    ("nextn.shared_head_norm.weight", "shared_head.norm.weight"),
];

/// Stacked expert tensors and the HF projection each holds.
pub(crate) const EXPERT_NAMES: &[(&str, &str)] = &[
    ("ffn_gate_exps.weight", "gate_proj.weight"),
    ("ffn_up_exps.weight", "up_proj.weight"),
    ("ffn_down_exps.weight", "down_proj.weight"),
];

/// Model-level tensors.
pub(crate) const TOP_NAMES: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// `(layer, suffix)` of `blk.N.suffix`.
fn block_parts(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (n, suffix) = rest.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 9 {
        return None;
    }
    Some((n.parse().ok()?, suffix))
}

/// The GGUF name an HF tensor name comes from, for error messages (`None` for names the view
/// does not map).
pub fn gguf_name_for(hf: &str) -> Option<String> {
    if let Some(&(g, _)) = TOP_NAMES.iter().find(|(_, h)| *h == hf) {
        return Some(g.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (n, suffix) = rest.split_once('.')?;
    if let Some(&(g, _)) = BLOCK_NAMES.iter().find(|(_, h)| *h == suffix) {
        return Some(format!("blk.{n}.{g}"));
    }
    if let Some(e) = suffix.strip_prefix("mlp.experts.") {
        let (_, proj) = e.split_once('.')?;
        let &(g, _) = EXPERT_NAMES.iter().find(|(_, h)| *h == proj)?;
        return Some(format!("blk.{n}.{g}"));
    }
    None
}

impl HfView {
    /// Build the view of `file`: its config from the metadata of a supported architecture, and
    /// every tensor under its HF name (tensors with no HF counterpart keep their GGUF name).
    pub fn new(file: Arc<GgufFile>) -> Result<HfView, FormatError> {
        let path = file.path().to_path_buf();
        let arch = file
            .opt_str("general.architecture")?
            .ok_or_else(|| FormatError::GgufKey {
                path: path.clone(),
                key: "general.architecture".into(),
                problem: "is missing (every llama.cpp GGUF has it)".into(),
            })?
            .to_string();
        let config = match arch.as_str() {
            "deepseek2" => deepseek2_config(&file)?,
            "qwen2" | "llama" => dense_config(&file, &arch)?,
            other => {
                return Err(FormatError::GgufUnsupported {
                    path,
                    what: format!(
                        "architecture `{other}` is not supported; jing runs GGUF architectures {}",
                        GGUF_ARCHITECTURES.join(", ")
                    ),
                })
            }
        };
        let generation = generation_config(&file)?;
        let entries = map_tensors(&file)?;
        Ok(HfView {
            file,
            config,
            generation,
            entries,
        })
    }

    /// The GGUF model.
    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// The `config.json` the metadata implies.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// A `generation_config.json` from the tokenizer ids and `general.sampling.*`.
    pub fn generation_config(&self) -> Option<&Value> {
        self.generation.as_ref()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.keys().map(String::as_str)
    }

    pub(crate) fn names_with_prefix<'a>(&'a self, prefix: &'a str) -> Vec<&'a str> {
        self.entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix))
            .collect()
    }

    pub(crate) fn info(&self, name: &str) -> Option<ViewInfo<'_>> {
        let (k, e) = self.entries.get_key_value(name)?;
        Some(ViewInfo {
            name: k,
            dtype: e.dtype,
            shape: &e.shape,
            file: &e.file,
            byte_len: e.byte_len,
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = ViewInfo<'_>> + '_ {
        self.entries.iter().map(|(k, e)| ViewInfo {
            name: k,
            dtype: e.dtype,
            shape: &e.shape,
            file: &e.file,
            byte_len: e.byte_len,
        })
    }

    fn unsupported(&self, e: &Entry) -> FormatError {
        let tensor = match &e.source {
            Source::Direct(t) | Source::Expert { tensor: t, .. } => t.clone(),
            Source::KvB { k_b, v_b } => format!("{k_b}` or `{v_b}"),
        };
        FormatError::GgufTensorType {
            path: e.file.clone(),
            tensor,
            ggml_type: e.ggml_type.to_string(),
            supported: supported_ggml_types(),
        }
    }

    /// The tensor `name` (an HF name, or a GGUF name the view does not map) as a [`Weight`]:
    /// zero-copy except for a rebuilt `kv_b_proj`.
    pub(crate) fn get(&self, name: &str) -> Option<Result<Weight, FormatError>> {
        let e = self.entries.get(name)?;
        Some(self.load(name, e))
    }

    /// For a `kv_b_proj` the file stores as `attn_k_b` `[H, kv_lora, nope]` and `attn_v_b`
    /// `[H, v, kv_lora]`: those two, as stored (zero-copy, each in its own type). `None` for
    /// any other name.
    pub(crate) fn mla_parts(&self, name: &str) -> Option<Result<(Weight, Weight), FormatError>> {
        let e = self.entries.get(name)?;
        let Source::KvB { k_b, v_b } = &e.source else {
            return None;
        };
        if e.dtype.is_none() {
            return Some(Err(self.unsupported(e)));
        }
        Some(
            self.file
                .weight(k_b)
                .and_then(|k| Ok((k, self.file.weight(v_b)?))),
        )
    }

    fn load(&self, name: &str, e: &Entry) -> Result<Weight, FormatError> {
        let Some(dtype) = e.dtype else {
            return Err(self.unsupported(e));
        };
        let weight_err = |source| FormatError::Weight {
            path: e.file.clone(),
            source: Box::new(source),
        };
        match &e.source {
            Source::Direct(t) => self.file.weight(t),
            Source::Expert {
                tensor,
                expert,
                rows,
            } => {
                let info = self.file.tensor(tensor).expect("mapped tensor exists").info;
                let cols = info.ne[0];
                let row_bytes = info.ggml_type.row_bytes(cols).expect("validated") as usize;
                let bytes = self.file.bytes(tensor).expect("mapped tensor exists");
                let start = expert * rows * row_bytes;
                let data = bytes.slice(start..start + rows * row_bytes);
                Weight::new(
                    format!("{tensor}[expert {expert}]"),
                    dtype,
                    vec![*rows, cols as usize],
                    data,
                )
                .map_err(weight_err)
            }
            Source::KvB { k_b, v_b } => {
                let (k, v) = (self.file.weight(k_b)?, self.file.weight(v_b)?);
                rebuild_kv_b(&e.file, name, &k, &v)
            }
        }
    }
}

/// `kv_b_proj` `[H·(nope+v), kv_lora]` from `k_b` `[H, kv_lora, nope]` (per head, W_UK
/// transposed) and `v_b` `[H, v, kv_lora]`: per head, W_UKᵀ's transpose then W_UV. Same float
/// type when both parts share one, else f32 (exact for every GGUF type).
pub(crate) fn rebuild_kv_b(
    path: &Path,
    name: &str,
    k: &Weight,
    v: &Weight,
) -> Result<Weight, FormatError> {
    let bad = |reason: String| FormatError::BadTensor {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        reason,
    };
    let (&[h, kvl, nope], &[hv, dv, kvl2]) = (k.shape.as_slice(), v.shape.as_slice()) else {
        return Err(bad(format!(
            "attn_k_b {:?} and attn_v_b {:?} must be 3-D [heads, kv_lora, qk_nope] and [heads, v_head, kv_lora]",
            k.shape, v.shape
        )));
    };
    if h != hv || kvl != kvl2 {
        return Err(bad(format!(
            "attn_k_b {:?} and attn_v_b {:?} disagree on heads or kv_lora_rank",
            k.shape, v.shape
        )));
    }
    let (kf, vf) = (k.to_f32_vec(), v.to_f32_vec());
    let rows = h * (nope + dv);
    let mut out = vec![0f32; rows * kvl];
    for head in 0..h {
        let base = head * (nope + dv);
        for c in 0..kvl {
            for i in 0..nope {
                out[(base + i) * kvl + c] = kf[(head * kvl + c) * nope + i];
            }
        }
        for j in 0..dv {
            let src = &vf[(head * dv + j) * kvl..(head * dv + j + 1) * kvl];
            out[(base + nope + j) * kvl..(base + nope + j + 1) * kvl].copy_from_slice(src);
        }
    }
    let dtype = if k.dtype == v.dtype && matches!(k.dtype, DType::F16 | DType::BF16) {
        k.dtype
    } else {
        DType::F32
    };
    let data = match dtype {
        DType::F16 => out
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes())
            .collect(),
        DType::BF16 => out
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_bits().to_le_bytes())
            .collect(),
        _ => out.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    Weight::new(name, dtype, vec![rows, kvl], Bytes::from_vec(data)).map_err(|source| {
        FormatError::Weight {
            path: path.to_path_buf(),
            source: Box::new(source),
        }
    })
}

/// Every GGUF tensor under its HF name.
fn map_tensors(file: &GgufFile) -> Result<BTreeMap<String, Entry>, FormatError> {
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let insert = |out: &mut BTreeMap<String, Entry>, hf: String, entry: Entry| {
        if out.contains_key(&hf) {
            return Err(FormatError::BadTensor {
                path: entry.file.clone(),
                tensor: hf,
                reason: "two GGUF tensors map to this name".into(),
            });
        }
        out.insert(hf, entry);
        Ok(())
    };
    for t in file.tensors() {
        let name = t.info.name.as_str();
        let ty = t.info.ggml_type;
        let direct = |shape: Vec<usize>| Entry {
            source: Source::Direct(name.to_string()),
            dtype: ty.dtype(),
            ggml_type: ty.name,
            shape,
            file: t.file.to_path_buf(),
            byte_len: t.info.range.len(),
        };
        if let Some(&(_, hf)) = TOP_NAMES.iter().find(|(g, _)| *g == name) {
            insert(&mut out, hf.to_string(), direct(t.info.shape.clone()))?;
            continue;
        }
        let Some((layer, suffix)) = block_parts(name) else {
            insert(&mut out, name.to_string(), direct(t.info.shape.clone()))?;
            continue;
        };
        if let Some(&(_, hf)) = BLOCK_NAMES.iter().find(|(g, _)| *g == suffix) {
            insert(
                &mut out,
                format!("model.layers.{layer}.{hf}"),
                direct(t.info.shape.clone()),
            )?;
            continue;
        }
        if let Some(&(_, proj)) = EXPERT_NAMES.iter().find(|(g, _)| *g == suffix) {
            let &[experts, rows, cols] = t.info.shape.as_slice() else {
                return Err(FormatError::BadTensor {
                    path: t.file.to_path_buf(),
                    tensor: name.to_string(),
                    reason: format!(
                        "stacked experts must be 3-D [experts, rows, cols], found {:?}",
                        t.info.shape
                    ),
                });
            };
            let per = t.info.range.len() / experts.max(1);
            for x in 0..experts {
                insert(
                    &mut out,
                    format!("model.layers.{layer}.mlp.experts.{x}.{proj}"),
                    Entry {
                        source: Source::Expert {
                            tensor: name.to_string(),
                            expert: x,
                            rows,
                        },
                        dtype: ty.dtype(),
                        ggml_type: ty.name,
                        shape: vec![rows, cols],
                        file: t.file.to_path_buf(),
                        byte_len: per,
                    },
                )?;
            }
            continue;
        }
        if suffix == "attn_k_b.weight" {
            let v_b = format!("blk.{layer}.attn_v_b.weight");
            let Some(v) = file.tensor(&v_b) else {
                return Err(FormatError::MissingTensor {
                    name: v_b,
                    searched: crate::error::summarise_files(file.paths()),
                    hint: format!(" (`{name}` needs it to rebuild kv_b_proj)"),
                });
            };
            let (k_shape, v_shape) = (&t.info.shape, &v.info.shape);
            // The parts' shapes come from the file: a hostile one must not overflow here.
            let too_big = || FormatError::BadTensor {
                path: t.file.to_path_buf(),
                tensor: name.to_string(),
                reason: format!(
                    "kv_b_proj rebuilt from shapes {k_shape:?} and {v_shape:?} (of `{v_b}`) \
                     would be too large"
                ),
            };
            let shape = match (k_shape.as_slice(), v_shape.as_slice()) {
                (&[h, kvl, nope], &[_, dv, _]) => vec![
                    nope.checked_add(dv)
                        .and_then(|d| h.checked_mul(d))
                        .ok_or_else(too_big)?,
                    kvl,
                ],
                _ => k_shape.clone(),
            };
            // Rebuilt in the parts' float type when they share one, else in f32.
            let weight_type = |g: GgmlType| g.dtype().filter(|d| d.is_weight());
            let dtype = match (weight_type(ty), weight_type(v.info.ggml_type)) {
                (Some(a), Some(b)) if a == b && matches!(a, DType::F16 | DType::BF16) => Some(a),
                (Some(_), Some(_)) => Some(DType::F32),
                _ => None,
            };
            let (ggml_type, elem) = match dtype {
                Some(DType::F32) => ("F32", 4),
                Some(_) => (ty.name, 2),
                None if weight_type(ty).is_none() => (ty.name, 0),
                None => (v.info.ggml_type.name, 0),
            };
            let byte_len = shape
                .iter()
                .try_fold(elem, |a: usize, &d| a.checked_mul(d))
                .ok_or_else(too_big)?;
            insert(
                &mut out,
                format!("model.layers.{layer}.self_attn.kv_b_proj.weight"),
                Entry {
                    source: Source::KvB {
                        k_b: name.to_string(),
                        v_b,
                    },
                    dtype,
                    ggml_type,
                    byte_len,
                    shape,
                    file: t.file.to_path_buf(),
                },
            )?;
            continue;
        }
        if suffix == "attn_v_b.weight" {
            if !file.contains(&format!("blk.{layer}.attn_k_b.weight")) {
                return Err(FormatError::MissingTensor {
                    name: format!("blk.{layer}.attn_k_b.weight"),
                    searched: crate::error::summarise_files(file.paths()),
                    hint: format!(" (`{name}` needs it to rebuild kv_b_proj)"),
                });
            }
            continue;
        }
        insert(&mut out, name.to_string(), direct(t.info.shape.clone()))?;
    }
    Ok(out)
}

/// Reads the keys of one architecture (`{arch}.key`) with errors naming the full key.
struct Keys<'a> {
    file: &'a GgufFile,
    arch: &'a str,
}

impl Keys<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }
    fn usize(&self, k: &str) -> Result<usize, FormatError> {
        self.file.usize(&self.key(k))
    }
    fn opt_usize(&self, k: &str) -> Result<Option<usize>, FormatError> {
        self.file.opt_usize(&self.key(k))
    }
    fn opt_f64(&self, k: &str) -> Result<Option<f64>, FormatError> {
        self.file.opt_f64(&self.key(k))
    }
    fn opt_bool(&self, k: &str) -> Result<Option<bool>, FormatError> {
        self.file.opt_bool(&self.key(k))
    }
    fn opt_str(&self, k: &str) -> Result<Option<&str>, FormatError> {
        self.file.opt_str(&self.key(k))
    }
    fn invalid(&self, k: &str, problem: impl Into<String>) -> FormatError {
        FormatError::GgufKey {
            path: self.file.path().to_path_buf(),
            key: self.key(k),
            problem: problem.into(),
        }
    }
}

/// `[rows, cols]` of a 2-D tensor, or an error naming it.
fn matrix_shape(file: &GgufFile, name: &str) -> Result<[usize; 2], FormatError> {
    let Some(t) = file.tensor(name) else {
        return Err(FormatError::MissingTensor {
            name: name.into(),
            searched: crate::error::summarise_files(file.paths()),
            hint: String::new(),
        });
    };
    match t.info.shape.as_slice() {
        &[r, c] => Ok([r, c]),
        other => Err(FormatError::BadTensor {
            path: t.file.to_path_buf(),
            tensor: name.into(),
            reason: format!("must be 2-D, found {other:?}"),
        }),
    }
}

/// The fields every architecture shares.
fn common_config(k: &Keys, m: &mut Map<String, Value>) -> Result<(), FormatError> {
    let [vocab, hidden] = matrix_shape(k.file, "token_embd.weight")?;
    let embedding = k.usize("embedding_length")?;
    if embedding != hidden {
        return Err(k.invalid(
            "embedding_length",
            format!("is {embedding} but token_embd.weight has {hidden} columns"),
        ));
    }
    m.insert("vocab_size".into(), json!(vocab));
    m.insert("hidden_size".into(), json!(hidden));
    m.insert(
        "num_attention_heads".into(),
        json!(k.usize("attention.head_count")?),
    );
    m.insert(
        "rms_norm_eps".into(),
        json!(k
            .opt_f64("attention.layer_norm_rms_epsilon")?
            .unwrap_or(1e-6)),
    );
    m.insert(
        "rope_theta".into(),
        json!(k.opt_f64("rope.freq_base")?.unwrap_or(10000.0)),
    );
    m.insert(
        "max_position_embeddings".into(),
        json!(k.opt_usize("context_length")?.unwrap_or(4096)),
    );
    m.insert(
        "tie_word_embeddings".into(),
        json!(!k.file.contains("output.weight")),
    );
    m.insert("hidden_act".into(), json!("silu"));
    Ok(())
}

/// `rope_scaling` from `rope.scaling.*` (YaRN only; `none` and absence give `None`).
fn yarn_scaling(k: &Keys) -> Result<Option<Value>, FormatError> {
    let kind = k.opt_str("rope.scaling.type")?.unwrap_or("none");
    match kind {
        "none" => Ok(None),
        "yarn" => {
            let factor = k.opt_f64("rope.scaling.factor")?.ok_or_else(|| {
                k.invalid("rope.scaling.factor", "is missing (YaRN needs its factor)")
            })?;
            let original = k
                .opt_usize("rope.scaling.original_context_length")?
                .ok_or_else(|| {
                    k.invalid(
                        "rope.scaling.original_context_length",
                        "is missing (YaRN needs the original context length)",
                    )
                })?;
            let mut s = json!({
                "type": "yarn",
                "factor": factor,
                "original_max_position_embeddings": original,
                "beta_fast": k.opt_f64("rope.scaling.yarn_beta_fast")?.unwrap_or(32.0),
                "beta_slow": k.opt_f64("rope.scaling.yarn_beta_slow")?.unwrap_or(1.0),
            });
            // llama.cpp writes 0.1 * mscale_all_dim and takes mscale = mscale_all_dim.
            if let Some(mul) = k.opt_f64("rope.scaling.yarn_log_multiplier")? {
                let all = mul / 0.1;
                s["mscale_all_dim"] = json!(all);
                s["mscale"] = json!(all);
            }
            if let Some(a) = k.opt_f64("rope.scaling.yarn_attn_factor")? {
                s["attention_factor"] = json!(a);
            }
            Ok(Some(s))
        }
        other => Err(k.invalid(
            "rope.scaling.type",
            format!("is `{other}`; jing supports none and yarn for this architecture"),
        )),
    }
}

fn deepseek2_config(file: &GgufFile) -> Result<Value, FormatError> {
    let k = Keys {
        file,
        arch: "deepseek2",
    };
    let mut m = Map::new();
    common_config(&k, &mut m)?;
    let heads = k.usize("attention.head_count")?;

    // Blocks: trailing `nextn_predict_layers` blocks are MTP modules when their tensors exist.
    let blocks = k.usize("block_count")?;
    let nextn = k.opt_usize("nextn_predict_layers")?.unwrap_or(0);
    let (layers, mtp) = if nextn > 0
        && nextn < blocks
        && file.contains(&format!("blk.{}.nextn.eh_proj.weight", blocks - nextn))
    {
        (blocks - nextn, nextn)
    } else {
        (blocks, 0)
    };
    m.insert("num_hidden_layers".into(), json!(layers));
    m.insert("num_nextn_predict_layers".into(), json!(mtp));

    // MLA dimensions: rope from metadata, nope and v from the split tensors when present, else
    // from the (MLA or legacy) key/value lengths.
    let rope = k.usize("rope.dimension_count")?;
    let kv_lora = k.usize("attention.kv_lora_rank")?;
    let (nope, v_head) = match (
        file.tensor("blk.0.attn_k_b.weight"),
        file.tensor("blk.0.attn_v_b.weight"),
    ) {
        (Some(kb), Some(vb)) => match (kb.info.shape.as_slice(), vb.info.shape.as_slice()) {
            (&[_, _, nope], &[_, dv, _]) => (nope, dv),
            _ => {
                return Err(FormatError::BadTensor {
                    path: kb.file.to_path_buf(),
                    tensor: kb.info.name.clone(),
                    reason: "attn_k_b and attn_v_b must be 3-D".into(),
                })
            }
        },
        _ => {
            let key_len = match k.opt_usize("attention.key_length_mla")? {
                Some(v) => v,
                None => k.usize("attention.key_length")?,
            };
            let v_len = match k.opt_usize("attention.value_length_mla")? {
                Some(v) => v,
                None => k.usize("attention.value_length")?,
            };
            if key_len <= rope {
                return Err(k.invalid(
                    "attention.key_length",
                    format!("is {key_len}, not more than rope.dimension_count {rope}"),
                ));
            }
            (key_len - rope, v_len)
        }
    };
    m.insert("kv_lora_rank".into(), json!(kv_lora));
    m.insert("qk_rope_head_dim".into(), json!(rope));
    m.insert("qk_nope_head_dim".into(), json!(nope));
    m.insert("v_head_dim".into(), json!(v_head));
    m.insert(
        "q_lora_rank".into(),
        match k.opt_usize("attention.q_lora_rank")? {
            Some(r) if r > 0 => json!(r),
            _ => Value::Null,
        },
    );
    m.insert("num_key_value_heads".into(), json!(heads));

    // FFN and MoE.
    m.insert(
        "intermediate_size".into(),
        json!(k.usize("feed_forward_length")?),
    );
    let experts = k.opt_usize("expert_count")?.unwrap_or(0);
    m.insert("n_routed_experts".into(), json!(experts));
    m.insert(
        "moe_intermediate_size".into(),
        json!(k.opt_usize("expert_feed_forward_length")?.unwrap_or(0)),
    );
    m.insert(
        "num_experts_per_tok".into(),
        json!(k.opt_usize("expert_used_count")?.unwrap_or(0)),
    );
    m.insert(
        "n_shared_experts".into(),
        json!(k.opt_usize("expert_shared_count")?.unwrap_or(0)),
    );
    m.insert(
        "first_k_dense_replace".into(),
        json!(k.opt_usize("leading_dense_block_count")?.unwrap_or(0)),
    );
    m.insert("moe_layer_freq".into(), json!(1));
    m.insert(
        "routed_scaling_factor".into(),
        json!(k.opt_f64("expert_weights_scale")?.unwrap_or(1.0)),
    );
    m.insert(
        "norm_topk_prob".into(),
        json!(k.opt_bool("expert_weights_norm")?.unwrap_or(false)),
    );
    let groups = k.opt_usize("expert_group_count")?.unwrap_or(1).max(1);
    // Groups without a used count select among all groups (no group limit).
    let groups_used = k
        .opt_usize("expert_group_used_count")?
        .unwrap_or(groups)
        .max(1);
    let sigmoid = match k.opt_usize("expert_gating_func")? {
        None | Some(0) | Some(1) => false,
        Some(2) => true,
        Some(other) => {
            return Err(k.invalid(
                "expert_gating_func",
                format!("is {other}; jing supports 1 (softmax) and 2 (sigmoid)"),
            ))
        }
    };
    let (model_type, arch, topk_method, scoring) = if sigmoid {
        (
            "deepseek_v3",
            "DeepseekV3ForCausalLM",
            "noaux_tc",
            "sigmoid",
        )
    } else if groups > 1 {
        (
            "deepseek_v2",
            "DeepseekV2ForCausalLM",
            "group_limited_greedy",
            "softmax",
        )
    } else {
        ("deepseek_v2", "DeepseekV2ForCausalLM", "greedy", "softmax")
    };
    m.insert("model_type".into(), json!(model_type));
    m.insert("architectures".into(), json!([arch]));
    m.insert("topk_method".into(), json!(topk_method));
    m.insert("scoring_func".into(), json!(scoring));
    m.insert("n_group".into(), json!(groups));
    m.insert("topk_group".into(), json!(groups_used));
    m.insert("attention_bias".into(), json!(false));
    if let Some(s) = yarn_scaling(&k)? {
        m.insert("rope_scaling".into(), s);
    }
    Ok(Value::Object(m))
}

fn dense_config(file: &GgufFile, arch: &str) -> Result<Value, FormatError> {
    let k = Keys { file, arch };
    let mut m = Map::new();
    common_config(&k, &mut m)?;
    let hidden = m["hidden_size"].as_u64().unwrap_or(0) as usize;
    let heads = k.usize("attention.head_count")?;
    if heads == 0 {
        return Err(k.invalid("attention.head_count", "must be positive"));
    }
    let kv_heads = k.opt_usize("attention.head_count_kv")?.unwrap_or(heads);
    let head_dim = k
        .opt_usize("attention.key_length")?
        .unwrap_or(hidden / heads);
    if let Some(vl) = k.opt_usize("attention.value_length")? {
        if vl != head_dim {
            return Err(k.invalid(
                "attention.value_length",
                format!("is {vl} but key_length is {head_dim}; jing needs equal q/k/v head sizes"),
            ));
        }
    }
    if let Some(rd) = k.opt_usize("rope.dimension_count")? {
        if rd != head_dim {
            return Err(k.invalid(
                "rope.dimension_count",
                format!("is {rd} but the head size is {head_dim}; partial RoPE is not supported"),
            ));
        }
    }
    m.insert("num_hidden_layers".into(), json!(k.usize("block_count")?));
    m.insert("num_key_value_heads".into(), json!(kv_heads));
    m.insert("head_dim".into(), json!(head_dim));
    m.insert(
        "intermediate_size".into(),
        json!(k.usize("feed_forward_length")?),
    );
    match arch {
        "qwen2" => {
            m.insert("model_type".into(), json!("qwen2"));
            m.insert("architectures".into(), json!(["Qwen2ForCausalLM"]));
            m.insert("use_sliding_window".into(), json!(false));
        }
        _ => {
            m.insert("model_type".into(), json!("llama"));
            m.insert("architectures".into(), json!(["LlamaForCausalLM"]));
            // llama.cpp permutes q/k rows so that RoPE rotates adjacent pairs.
            m.insert("rope_interleave".into(), json!(true));
            m.insert(
                "attention_bias".into(),
                json!(file.contains("blk.0.attn_q.bias")),
            );
        }
    }
    match k.opt_str("rope.scaling.type")?.unwrap_or("none") {
        "none" => {}
        other => {
            return Err(k.invalid(
                "rope.scaling.type",
                format!("is `{other}`; jing supports llama3 scaling (the rope_freqs tensor) and none for this architecture"),
            ))
        }
    }
    if let Some(t) = file.tensor("rope_freqs.weight") {
        let w = file.weight("rope_freqs.weight")?;
        if w.dtype != DType::F32 || w.shape != [head_dim / 2] {
            return Err(FormatError::BadTensor {
                path: t.file.to_path_buf(),
                tensor: "rope_freqs.weight".into(),
                reason: format!(
                    "must be F32 of shape [{}] (one factor per frequency), found {} {:?}",
                    head_dim / 2,
                    t.info.ggml_type.name,
                    w.shape
                ),
            });
        }
        m.insert("rope_freq_factors".into(), json!(w.to_f32_vec()));
    }
    Ok(Value::Object(m))
}

/// The `generation_config.json` a GGUF file implies: BOS/EOS ids from the tokenizer metadata
/// and sampling defaults from `general.sampling.*` (`do_sample` only when there are some).
pub fn generation_config(file: &GgufFile) -> Result<Option<Value>, FormatError> {
    let mut m = Map::new();
    if let Some(b) = file.opt_u64("tokenizer.ggml.bos_token_id")? {
        m.insert("bos_token_id".into(), json!(b));
    }
    let mut eos = Vec::new();
    for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
        if let Some(e) = file.opt_u64(key)? {
            if !eos.contains(&e) {
                eos.push(e);
            }
        }
    }
    match eos.len() {
        0 => {}
        1 => {
            m.insert("eos_token_id".into(), json!(eos[0]));
        }
        _ => {
            m.insert("eos_token_id".into(), json!(eos));
        }
    }
    let mut sampling = false;
    for (key, hf) in [
        ("general.sampling.temp", "temperature"),
        ("general.sampling.top_p", "top_p"),
        ("general.sampling.top_k", "top_k"),
        ("general.sampling.min_p", "min_p"),
        ("general.sampling.penalty_repeat", "repetition_penalty"),
    ] {
        if let Some(v) = file.opt_f64(key)? {
            m.insert(hf.into(), json!(v));
            sampling = true;
        }
    }
    if sampling {
        m.insert("do_sample".into(), json!(true));
    }
    Ok((!m.is_empty()).then_some(Value::Object(m)))
}
