//! An HF checkpoint laid out as llama.cpp's converter (`convert_hf_to_gguf.py`) writes it: the
//! GGUF metadata its `config.json` implies and every tensor under its GGUF name and layout, so
//! that `jing quantize` can write a GGUF file from a model folder. The reverse of [`HfView`]
//! (same name tables), with the same three layout changes:
//!
//! - routed experts are stacked per layer and projection (`blk.N.ffn_gate_exps.weight`,
//!   `[experts, rows, cols]`);
//! - DeepSeek's `kv_b_proj` `[heads·(nope+v), kv_lora]` is split into `attn_k_b` (per head,
//!   W_UK transposed: `[heads, kv_lora, nope]`) and `attn_v_b` (`[heads, v, kv_lora]`), as
//!   current converters write for MLA;
//! - Llama's q/k rows are permuted so that RoPE rotates adjacent pairs (Qwen2's are not), and
//!   llama3 RoPE scaling becomes the `rope_freqs` tensor.
//!
//! Tied embeddings (`tie_word_embeddings`) write no `output.weight`; DeepSeek MTP layers
//! (`num_nextn_predict_layers`) are kept as `blk.N.nextn.*`, counted in `block_count`. Nothing
//! is read here but headers: the tensors are described, and read when the file is written.
//!
//! [`HfView`]: super::HfView

use std::collections::{BTreeMap, HashSet};

use jing_tensor::DType;

use super::hf::{BLOCK_NAMES, EXPERT_NAMES, TOP_NAMES};
use super::types::GgufValue;
use crate::config::Config;
use crate::error::FormatError;
use crate::model_dir::ModelDir;
use crate::quantize::rules::ModelFacts;
use crate::store::scale_names;

/// Where the data of an output tensor comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum HfSource {
    /// An HF tensor as stored; `permute_heads`: llama's q/k row permutation over that many
    /// heads.
    Tensor {
        name: String,
        permute_heads: Option<usize>,
    },
    /// HF tensors of one shape stacked in order (experts 0..E of one projection).
    Stacked { names: Vec<String> },
    /// `attn_k_b` from `kv_b_proj`.
    KB {
        name: String,
        nope: usize,
        v_head: usize,
    },
    /// `attn_v_b` from `kv_b_proj`: the last `v_head` rows of each head's block.
    VB {
        name: String,
        nope: usize,
        v_head: usize,
    },
    /// Values computed from the config (`rope_freqs`).
    Values(Vec<f32>),
}

/// One tensor of the GGUF file to write.
#[derive(Clone, Debug)]
pub(crate) struct HfTensor {
    /// GGUF name.
    pub name: String,
    /// GGUF dimensions, innermost first.
    pub ne: Vec<u64>,
    pub source: HfSource,
}

/// A model folder as a GGUF file to write: metadata (without the tokenizer, which the caller
/// adds) and tensors.
pub(crate) struct HfConversion {
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<HfTensor>,
    pub facts: ModelFacts,
}

/// The rows of `[heads·head_dim, ..]` q/k weights after llama.cpp's permutation: output row
/// `r` of head `h` (`r = h·hd + 2j + t`) is source row `h·hd + t·hd/2 + j`.
pub(crate) fn llama_permutation(rows: usize, heads: usize) -> Vec<usize> {
    let hd = rows / heads.max(1);
    (0..rows)
        .map(|r| {
            let (h, within) = (r / hd, r % hd);
            let (j, t) = (within / 2, within % 2);
            h * hd + t * (hd / 2) + j
        })
        .collect()
}

/// Llama-3 RoPE scaling as llama.cpp's `rope_freqs` (one divisor per frequency), computed the
/// way the converter does (frequencies in f32, the blend in f64).
fn llama3_rope_factors(base: f64, head_dim: usize, s: &Config) -> Result<Vec<f32>, FormatError> {
    let factor = s.f64("factor")?;
    let low = s.f64("low_freq_factor")?;
    let high = s.f64("high_freq_factor")?;
    let old = s.f64("original_max_position_embeddings")?;
    Ok((0..head_dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / head_dim as f32;
            let freq = 1.0f32 / (base as f32).powf(exponent);
            let wavelen = 2.0 * std::f64::consts::PI / freq as f64;
            if wavelen < old / high {
                1.0
            } else if wavelen > old / low {
                factor as f32
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect())
}

/// `0.1 · mscale · ln(factor) + 1` (YaRN's magnitude correction).
fn yarn_mscale(factor: f64, m: f64) -> f64 {
    if factor <= 1.0 {
        1.0
    } else {
        0.1 * m * factor.ln() + 1.0
    }
}

/// Builds the metadata list with the architecture prefix.
struct Meta {
    arch: &'static str,
    kv: Vec<(String, GgufValue)>,
}

impl Meta {
    fn put(&mut self, key: &str, v: GgufValue) {
        self.kv.push((key.to_string(), v));
    }
    fn arch_u32(&mut self, key: &str, v: usize) {
        let k = format!("{}.{key}", self.arch);
        self.kv.push((k, GgufValue::U32(v as u32)));
    }
    fn arch_f32(&mut self, key: &str, v: f64) {
        let k = format!("{}.{key}", self.arch);
        self.kv.push((k, GgufValue::F32(v as f32)));
    }
    fn arch_bool(&mut self, key: &str, v: bool) {
        let k = format!("{}.{key}", self.arch);
        self.kv.push((k, GgufValue::Bool(v)));
    }
    fn arch_str(&mut self, key: &str, v: &str) {
        let k = format!("{}.{key}", self.arch);
        self.kv.push((k, GgufValue::String(v.into())));
    }
}

/// The architectures jing converts, by `model_type`.
const HF_ARCHITECTURES: &[(&str, &str)] = &[
    ("deepseek_v3", "deepseek2"),
    ("deepseek_v2", "deepseek2"),
    ("qwen2", "qwen2"),
    ("llama", "llama"),
];

/// The GGUF architecture of an HF `model_type`.
pub(crate) fn gguf_arch(model_type: &str) -> Option<&'static str> {
    HF_ARCHITECTURES
        .iter()
        .find(|(m, _)| *m == model_type)
        .map(|(_, a)| *a)
}

/// `rope_scaling`, or transformers 5's `rope_parameters`, with its kind (`default` when there
/// is none).
fn rope_section(cfg: &Config) -> Result<(Option<Config>, String), FormatError> {
    let section = match cfg.opt_section("rope_scaling")? {
        Some(s) => Some(s),
        None => cfg.opt_section("rope_parameters")?,
    };
    let kind = match &section {
        None => "default".to_string(),
        Some(s) => match s.opt_str("rope_type")? {
            Some(k) => k.to_string(),
            None => s.str_or("type", "default")?.to_string(),
        },
    };
    Ok((section, kind))
}

fn rope_theta(cfg: &Config) -> Result<f64, FormatError> {
    match cfg.opt_f64("rope_theta")? {
        Some(t) => Ok(t),
        None => cfg.f64_or("rope_parameters.rope_theta", 10000.0),
    }
}

/// Plan the conversion of the model folder `dir` with `file_type` as `general.file_type`.
pub(crate) fn plan_hf(dir: &ModelDir, file_type: u32) -> Result<HfConversion, FormatError> {
    let cfg = &dir.config;
    let path = dir.dir.clone();
    let fail = |what: String| FormatError::Quantize {
        path: path.clone(),
        what,
    };
    let model_type = cfg.str_or("model_type", "")?.to_string();
    let Some(arch) = gguf_arch(&model_type) else {
        let names: Vec<&str> = HF_ARCHITECTURES.iter().map(|(m, _)| *m).collect();
        return Err(fail(format!(
            "config.json model_type `{model_type}` is not supported; jing converts {}",
            names.join(", ")
        )));
    };
    let deepseek = arch == "deepseek2";
    let layers = cfg.usize("num_hidden_layers")?;
    let hidden = cfg.usize("hidden_size")?;
    let heads = cfg.usize("num_attention_heads")?;
    if heads == 0 {
        return Err(fail("num_attention_heads must be positive".into()));
    }
    let kv_heads = cfg.usize_or("num_key_value_heads", heads)?;
    let vocab = cfg.usize("vocab_size")?;
    let tied = cfg.bool_or("tie_word_embeddings", false)?;
    // MTP layers count as blocks when the checkpoint has them.
    let nextn = if deepseek {
        let n = cfg.usize_or("num_nextn_predict_layers", 0)?;
        let present = dir
            .store
            .contains(&format!("model.layers.{layers}.eh_proj.weight"));
        if present {
            n
        } else {
            0
        }
    } else {
        0
    };
    let blocks = layers + nextn;

    let mut m = Meta {
        arch,
        kv: Vec::new(),
    };
    m.put("general.architecture", GgufValue::String(arch.into()));
    m.put("general.type", GgufValue::String("model".into()));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string();
    m.put("general.name", GgufValue::String(name));
    m.put("general.quantization_version", GgufValue::U32(2));
    m.put("general.file_type", GgufValue::U32(file_type));
    m.arch_u32("block_count", blocks);
    m.arch_u32(
        "context_length",
        cfg.usize_or("max_position_embeddings", 4096)?,
    );
    m.arch_u32("embedding_length", hidden);
    m.arch_u32("feed_forward_length", cfg.usize("intermediate_size")?);
    m.arch_u32("attention.head_count", heads);
    m.arch_u32(
        "attention.head_count_kv",
        if deepseek { 1 } else { kv_heads },
    );
    m.arch_f32("rope.freq_base", rope_theta(cfg)?);
    m.arch_f32(
        "attention.layer_norm_rms_epsilon",
        cfg.f64_or("rms_norm_eps", 1e-6)?,
    );
    let (rope, rope_kind) = rope_section(cfg)?;

    let mut extra_tensors = Vec::new();
    let mut mla = None;
    let mut n_expert = 0;
    if deepseek {
        if cfg.usize_or("moe_layer_freq", 1)? != 1 {
            return Err(fail(
                "moe_layer_freq other than 1 has no GGUF equivalent (llama.cpp puts MoE in every layer after the dense ones)".into(),
            ));
        }
        n_expert = cfg.usize_or("n_routed_experts", 0)?;
        let is_v3 = model_type == "deepseek_v3";
        m.arch_u32("expert_count", n_expert);
        m.arch_u32("expert_used_count", cfg.usize_or("num_experts_per_tok", 0)?);
        let topk_method = cfg.str_or("topk_method", if is_v3 { "noaux_tc" } else { "greedy" })?;
        if topk_method != "greedy" {
            if let Some(g) = cfg.opt_usize("n_group")? {
                m.arch_u32("expert_group_count", g);
            }
            if let Some(g) = cfg.opt_usize("topk_group")? {
                m.arch_u32("expert_group_used_count", g);
            }
        }
        let scoring = cfg.str_or("scoring_func", if is_v3 { "sigmoid" } else { "softmax" })?;
        let gating = match scoring {
            "softmax" => 1,
            "sigmoid" => 2,
            other => {
                return Err(fail(format!(
                    "scoring_func `{other}` is not supported (softmax or sigmoid)"
                )))
            }
        };
        m.arch_u32("expert_gating_func", gating);
        m.arch_u32(
            "leading_dense_block_count",
            cfg.usize_or("first_k_dense_replace", 0)?,
        );
        m.arch_u32("vocab_size", vocab);
        if let Some(r) = cfg.opt_usize("q_lora_rank")?.filter(|&r| r > 0) {
            m.arch_u32("attention.q_lora_rank", r);
        }
        let kv_lora = cfg.usize("kv_lora_rank")?;
        let rope_dim = cfg.usize("qk_rope_head_dim")?;
        let nope = cfg.usize("qk_nope_head_dim")?;
        let v_head = cfg.usize("v_head_dim")?;
        m.arch_u32("attention.kv_lora_rank", kv_lora);
        m.arch_u32("attention.key_length", kv_lora + rope_dim);
        m.arch_u32("attention.value_length", kv_lora);
        m.arch_u32("attention.key_length_mla", nope + rope_dim);
        m.arch_u32("attention.value_length_mla", v_head);
        m.arch_u32(
            "expert_feed_forward_length",
            cfg.usize_or("moe_intermediate_size", 0)?,
        );
        m.arch_u32("expert_shared_count", cfg.usize_or("n_shared_experts", 0)?);
        m.arch_f32(
            "expert_weights_scale",
            cfg.f64_or("routed_scaling_factor", 1.0)?,
        );
        if cfg.bool_or("norm_topk_prob", false)? {
            m.arch_bool("expert_weights_norm", true);
        }
        m.arch_u32("rope.dimension_count", rope_dim);
        match (rope_kind.as_str(), &rope) {
            ("default", _) => {}
            ("yarn" | "deepseek_yarn", Some(s)) => {
                let factor = s.f64("factor")?;
                m.arch_str("rope.scaling.type", "yarn");
                m.arch_f32("rope.scaling.factor", factor);
                m.arch_u32(
                    "rope.scaling.original_context_length",
                    s.usize("original_max_position_embeddings")?,
                );
                if let Some(b) = s.opt_f64("beta_fast")? {
                    m.arch_f32("rope.scaling.yarn_beta_fast", b);
                }
                if let Some(b) = s.opt_f64("beta_slow")? {
                    m.arch_f32("rope.scaling.yarn_beta_slow", b);
                }
                if let Some(all) = s.opt_f64("mscale_all_dim")? {
                    // llama.cpp's convention: 0.1 · mscale_all_dim, RoPE magnitude 1 unless
                    // mscale differs (then their ratio, as jing's GGUF view reads it back).
                    m.arch_f32("rope.scaling.yarn_log_multiplier", 0.1 * all);
                    if let Some(ms) = s.opt_f64("mscale")? {
                        if ms != all {
                            m.arch_f32(
                                "rope.scaling.yarn_attn_factor",
                                yarn_mscale(factor, ms) / yarn_mscale(factor, all),
                            );
                        }
                    }
                }
            }
            (other, _) => {
                return Err(fail(format!(
                    "rope scaling `{other}` is not supported for DeepSeek (none or yarn)"
                )))
            }
        }
        if nextn > 0 {
            m.arch_u32("nextn_predict_layers", nextn);
        }
        mla = Some((nope, v_head));
    } else {
        if cfg.bool_or("use_sliding_window", false)? {
            return Err(fail(
                "sliding-window attention (use_sliding_window) is not supported".into(),
            ));
        }
        if cfg.bool_or("mlp_bias", false)? {
            return Err(fail("mlp_bias is not supported".into()));
        }
        let head_dim = cfg.usize_or("head_dim", hidden / heads)?;
        if head_dim != hidden / heads {
            m.arch_u32("attention.key_length", head_dim);
            m.arch_u32("attention.value_length", head_dim);
        }
        if arch == "llama" {
            m.arch_u32("vocab_size", vocab);
            m.arch_u32("rope.dimension_count", head_dim);
        }
        match (rope_kind.as_str(), &rope) {
            ("default", _) => {}
            ("llama3", Some(s)) if arch == "llama" => {
                let factors = llama3_rope_factors(rope_theta(cfg)?, head_dim, s)?;
                extra_tensors.push(HfTensor {
                    name: "rope_freqs.weight".into(),
                    ne: vec![factors.len() as u64],
                    source: HfSource::Values(factors),
                });
            }
            (other, _) => {
                return Err(fail(format!(
                    "rope scaling `{other}` is not supported for {model_type} (none{})",
                    if arch == "llama" { " or llama3" } else { "" }
                )))
            }
        }
    }

    let mut tensors = map_tensors(
        dir, arch, layers, blocks, tied, heads, kv_heads, mla, n_expert,
    )?;
    tensors.extend(extra_tensors);
    Ok(HfConversion {
        metadata: m.kv,
        tensors,
        facts: ModelFacts {
            arch: arch.to_string(),
            n_layer_all: blocks,
            n_expert,
            n_head: heads,
            n_head_kv: kv_heads,
        },
    })
}

/// `(N, suffix)` of `model.layers.N.suffix`.
fn layer_parts(name: &str) -> Option<(usize, &str)> {
    let (n, suffix) = name.strip_prefix("model.layers.")?.split_once('.')?;
    if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((n.parse().ok()?, suffix))
}

/// GGUF `ne` of an HF shape (outermost first).
fn ne_of(shape: &[usize]) -> Vec<u64> {
    shape.iter().rev().map(|&d| d as u64).collect()
}

/// Every HF tensor of the folder as the GGUF tensor(s) it becomes.
#[allow(clippy::too_many_arguments)]
fn map_tensors(
    dir: &ModelDir,
    arch: &str,
    layers: usize,
    blocks: usize,
    tied: bool,
    heads: usize,
    kv_heads: usize,
    mla: Option<(usize, usize)>,
    n_expert: usize,
) -> Result<Vec<HfTensor>, FormatError> {
    let store = &dir.store;
    let path = dir.dir.clone();
    let fail = |what: String| FormatError::Quantize {
        path: path.clone(),
        what,
    };
    // FP8 block scales travel with their weights.
    let mut scales = HashSet::new();
    for t in store.iter() {
        if t.dtype == DType::F8E4M3 {
            scales.extend(scale_names(t.name));
        }
    }
    let mut out = Vec::new();
    // (layer, projection) → expert index → HF name.
    let mut experts: BTreeMap<(usize, &str), BTreeMap<usize, String>> = BTreeMap::new();
    for t in store.iter() {
        let name = t.name;
        if scales.contains(name) || name.ends_with("rotary_emb.inv_freq") {
            continue;
        }
        let direct = |gguf: String, permute_heads: Option<usize>| HfTensor {
            name: gguf,
            ne: ne_of(t.shape),
            source: HfSource::Tensor {
                name: name.to_string(),
                permute_heads,
            },
        };
        if let Some(&(g, _)) = TOP_NAMES.iter().find(|(_, h)| *h == name) {
            if g == "output.weight" && tied {
                continue;
            }
            out.push(direct(g.to_string(), None));
            continue;
        }
        let Some((layer, suffix)) = layer_parts(name) else {
            return Err(fail(format!("tensor `{name}` has no GGUF name")));
        };
        if layer >= blocks {
            // Layers past the model's (and its MTP layers'): the converter drops them too.
            continue;
        }
        if let Some(e) = suffix.strip_prefix("mlp.experts.") {
            let parsed = e.split_once('.').and_then(|(x, proj)| {
                let &(g, _) = EXPERT_NAMES.iter().find(|(_, h)| *h == proj)?;
                Some((x.parse::<usize>().ok()?, g))
            });
            let Some((x, proj)) = parsed else {
                return Err(fail(format!("tensor `{name}` has no GGUF name")));
            };
            experts
                .entry((layer, proj))
                .or_default()
                .insert(x, name.to_string());
            continue;
        }
        if suffix == "self_attn.kv_b_proj.weight" {
            if let Some((nope, v_head)) = mla {
                let &[rows, kv_lora] = t.shape else {
                    return Err(fail(format!("`{name}` must be 2-D, found {:?}", t.shape)));
                };
                if rows != heads * (nope + v_head) {
                    return Err(fail(format!(
                        "`{name}` has {rows} rows, expected heads·(qk_nope_head_dim+v_head_dim) = {}",
                        heads * (nope + v_head)
                    )));
                }
                let (h, kvl, n, v) = (heads as u64, kv_lora as u64, nope as u64, v_head as u64);
                out.push(HfTensor {
                    name: format!("blk.{layer}.attn_k_b.weight"),
                    ne: vec![n, kvl, h],
                    source: HfSource::KB {
                        name: name.to_string(),
                        nope,
                        v_head,
                    },
                });
                out.push(HfTensor {
                    name: format!("blk.{layer}.attn_v_b.weight"),
                    ne: vec![kvl, v, h],
                    source: HfSource::VB {
                        name: name.to_string(),
                        nope,
                        v_head,
                    },
                });
                continue;
            }
        }
        let Some(&(g, _)) = BLOCK_NAMES.iter().find(|(_, h)| *h == suffix) else {
            return Err(fail(format!("tensor `{name}` has no GGUF name")));
        };
        // MTP-only names exist only in MTP layers (and their embed_tokens is the MTP's own).
        if g.starts_with("nextn.") && layer < layers {
            return Err(fail(format!(
                "tensor `{name}` is an MTP tensor in main layer {layer}"
            )));
        }
        let permute = match (arch, g) {
            ("llama", "attn_q.weight" | "attn_q.bias") => Some(heads),
            ("llama", "attn_k.weight" | "attn_k.bias") => Some(kv_heads),
            _ => None,
        };
        out.push(direct(format!("blk.{layer}.{g}"), permute));
    }
    for ((layer, proj), by_index) in experts {
        let names: Vec<String> = by_index.values().cloned().collect();
        let complete = by_index.keys().copied().eq(0..n_expert);
        if !complete {
            return Err(fail(format!(
                "layer {layer} has {} `{proj}` experts (indices {:?}..), expected 0..{n_expert}",
                names.len(),
                by_index.keys().next()
            )));
        }
        let shape = store.info(&names[0])?.shape.to_vec();
        for n in &names {
            let s = store.info(n)?.shape;
            if s != shape.as_slice() || s.len() != 2 {
                return Err(fail(format!(
                    "expert `{n}` has shape {s:?}, expert 0 has {shape:?}"
                )));
            }
        }
        let mut ne = ne_of(&shape);
        ne.push(names.len() as u64);
        out.push(HfTensor {
            name: format!("blk.{layer}.{proj}"),
            ne,
            source: HfSource::Stacked { names },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_permutation_pairs_the_halves_of_each_head() {
        // 2 heads of 4 rows: rows (0, 2) and (1, 3) of each head become adjacent.
        assert_eq!(llama_permutation(8, 2), vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }

    #[test]
    fn llama3_factors_keep_high_frequencies_and_divide_low_ones() {
        let cfg = Config::from_value(
            "c.json",
            serde_json::json!({"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 256}),
        )
        .unwrap();
        let f = llama3_rope_factors(500000.0, 8, &cfg).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0], 1.0);
        assert_eq!(f[3], 8.0);
    }
}
