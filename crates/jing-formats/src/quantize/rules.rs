//! Which type each tensor gets: llama.cpp's rules (`src/llama-quant.cpp`:
//! `tensor_allows_quantization`, `llama_tensor_get_type`, `tensor_type_fallback`) for the
//! targets jing writes, so that `jing quantize` and `llama-quantize` give a tensor the same type.
//!
//! - Only tensors of 2 or more dimensions whose name ends in `weight` are quantized; norms
//!   (`*_norm.weight`) and the MoE router (`ffn_gate_inp.weight`) keep their type.
//! - A pure target gives every quantizable tensor its base type. The mixes (`q4_k_m`, `q5_k_m`)
//!   give the output head (or tied embeddings) Q6_K (Q8_0 when its rows are not whole 256-element
//!   blocks), and Q6_K to the `attn_v` (`attn_kv_b`) and `ffn_down` tensors of the layers
//!   `use_more_bits` picks (the first and last eighth, and every third between); models with
//!   8 experts get Q8_0 `attn_k`/`attn_v`, 70B dense models Q5_K `attn_v`.
//! - A row that is not whole blocks of the chosen type falls back: Q2_K/Q3_K to Q4_0, Q4_K to
//!   Q5_0, Q5_K to Q5_1, Q6_K to Q8_0, and to F16 when even 32-element blocks do not fit.
//!
//! llama.cpp walks the tensors in its loader's order (layer number, then name) and counts the
//! `attn_v` tensors as it goes; [`plan_types`] does the same, so the plan does not depend on the
//! order a file happens to list its tensors in.

use std::collections::HashMap;

use jing_tensor::DType;

use super::target::{Mix, QuantTarget};

/// What the rules need to know about the model (llama.cpp's hparams).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFacts {
    /// GGUF architecture (`deepseek2`, `qwen2`, `llama`).
    pub arch: String,
    /// Blocks, MTP blocks included (`block_count`, llama.cpp's `n_layer_all`).
    pub n_layer_all: usize,
    /// Routed experts (0 for dense models).
    pub n_expert: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
}

impl ModelFacts {
    /// llama.cpp's `LLM_TYPE_70B`: 80-layer Llama with grouped KV heads, or 80-layer Qwen2.
    fn is_70b(&self) -> bool {
        match self.arch.as_str() {
            "llama" => self.n_layer_all == 80 && self.n_head != self.n_head_kv,
            "qwen2" => self.n_layer_all == 80,
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttentionQ,
    AttentionK,
    /// `attn_v`, `attn_qkv` and `attn_kv_b`: llama.cpp treats them alike.
    AttentionV,
    AttentionOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

/// llama.cpp's `tensor_get_category` (substring tests, in its order).
fn category(name: &str) -> Category {
    if name == "output.weight" {
        return Category::Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return Category::TokenEmbd;
    }
    let has = |s: &str| name.contains(s);
    if has("attn_qkv.weight") || has("attn_kv_b.weight") || has("attn_v.weight") {
        Category::AttentionV
    } else if has("attn_k.weight") {
        Category::AttentionK
    } else if has("attn_q.weight") {
        Category::AttentionQ
    } else if has("attn_output.weight") {
        Category::AttentionOutput
    } else if has("ffn_up") {
        Category::FfnUp
    } else if has("ffn_gate") {
        Category::FfnGate
    } else if has("ffn_down") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

/// Name parts that llama.cpp never quantizes (the ones that can occur in the architectures
/// jing converts, plus a few generic ones).
const NEVER_QUANTIZED: &[&str] = &[
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "position_embd.weight",
    "token_types.weight",
    "ssm_conv1d",
    "attn_rel_b.weight",
];

/// ggml's `ggml_n_dims`: dimensions up to the last one above 1 (at least 1).
pub(crate) fn n_dims(ne: &[u64]) -> usize {
    ne.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// llama.cpp's `tensor_allows_quantization`: 2-D or more, named `...weight`, not a norm or a
/// router.
pub(crate) fn allows_quantization(name: &str, ne: &[u64]) -> bool {
    n_dims(ne) >= 2 && name.ends_with("weight") && !NEVER_QUANTIZED.iter().any(|s| name.contains(s))
}

/// `blk.N.` → N.
pub(crate) fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    let (n, _) = rest.split_once('.')?;
    if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// llama.cpp's loader order: tensors outside blocks first, then by layer, then by name.
pub(crate) fn llama_order(a: &str, b: &str) -> std::cmp::Ordering {
    let layer = |n: &str| layer_of(n).map_or(-1, |l| l as i64);
    layer(a).cmp(&layer(b)).then_with(|| a.cmp(b))
}

/// `use_more_bits`: the first and last eighth of the layers, and every third one between.
fn use_more_bits(i_layer: usize, n_layers: usize) -> bool {
    let (i, n) = (i_layer as i64, n_layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// `tensor_type_fallback`: a type whose blocks fit a row of `cols` elements.
pub(crate) fn fallback(dtype: DType, cols: u64) -> DType {
    let fits = |d: DType| cols.is_multiple_of(d.block_size() as u64);
    if fits(dtype) {
        return dtype;
    }
    let smaller = match dtype {
        DType::Q2K | DType::Q3K => DType::Q4_0,
        DType::Q4K => DType::Q5_0,
        DType::Q5K => DType::Q5_1,
        DType::Q6K => DType::Q8_0,
        other => other,
    };
    if fits(smaller) {
        smaller
    } else {
        DType::F16
    }
}

/// The running counts llama.cpp keeps while it walks the tensors.
struct Walk<'a> {
    target: &'a QuantTarget,
    facts: &'a ModelFacts,
    tied_embeddings: bool,
    n_attention_wv: usize,
    i_attention_wv: usize,
    i_ffn_down: usize,
}

impl Walk<'_> {
    /// `(layer, layers)` for the per-layer rules: counted in walk order, or (with experts,
    /// whose tensors llama.cpp cannot count reliably) read from the name.
    fn layer_info(&self, counted: usize, name: &str) -> Result<(usize, usize), String> {
        let n = self.facts.n_layer_all;
        if self.facts.n_expert > 1 {
            let l = layer_of(name)
                .ok_or_else(|| format!("cannot tell the layer of tensor `{name}`"))?;
            if l >= n {
                return Err(format!(
                    "tensor `{name}` is in layer {l}, but the model has {n} blocks"
                ));
            }
            return Ok((l, n));
        }
        Ok((counted, n))
    }

    /// `llama_tensor_get_type_impl` for the mixes.
    fn mix_type(&mut self, mix: Mix, name: &str, cols: u64) -> Result<DType, String> {
        let base = self.target.base;
        let facts = self.facts;
        let cat = category(name);
        let mut t = base;
        if cat == Category::Output || (self.tied_embeddings && cat == Category::TokenEmbd) {
            if !cols.is_multiple_of(base.block_size() as u64) {
                t = DType::Q8_0;
            } else if t != DType::Q8_0 {
                t = DType::Q6K;
            }
        } else if cat == Category::TokenEmbd {
            // Keeps the base type.
        } else if cat == Category::AttentionV {
            if use_more_bits(self.i_attention_wv, self.n_attention_wv) {
                t = DType::Q6K;
            }
            if facts.is_70b() && matches!(t, DType::Q3K | DType::Q4K) {
                t = DType::Q5K;
            }
            if facts.n_expert == 8 {
                t = DType::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::AttentionK {
            if facts.n_expert == 8 {
                t = DType::Q8_0;
            }
        } else if cat == Category::FfnDown {
            let (layer, layers) = self.layer_info(self.i_ffn_down, name)?;
            if use_more_bits(layer, layers) {
                t = DType::Q6K;
            }
            self.i_ffn_down += 1;
        } else if cat == Category::AttentionOutput {
            if facts.n_expert == 8 && mix == Mix::Q4KM {
                t = DType::Q5K;
            }
        } else if matches!(cat, Category::FfnGate | Category::FfnUp) {
            // No rule for these mixes, but llama.cpp still checks the layer.
            self.layer_info(0, name)?;
        }
        Ok(t)
    }
}

/// The type of every quantizable tensor of a model (`tensors`: GGUF names and `ne`), by name;
/// tensors that are not quantizable are absent (they keep their type). `token_embd`, when
/// given, is the type of the token embeddings (llama-quantize's `--token-embedding-type`). An
/// error names a tensor the rules cannot place.
pub fn plan_types(
    target: &QuantTarget,
    facts: &ModelFacts,
    tensors: &[(String, Vec<u64>)],
    token_embd: Option<DType>,
) -> Result<HashMap<String, DType>, String> {
    let mut order: Vec<&(String, Vec<u64>)> = tensors.iter().collect();
    order.sort_by(|a, b| llama_order(&a.0, &b.0));
    let mut walk = Walk {
        target,
        facts,
        tied_embeddings: !tensors.iter().any(|(n, _)| n == "output.weight"),
        n_attention_wv: tensors
            .iter()
            .filter(|(n, _)| category(n) == Category::AttentionV)
            .count(),
        i_attention_wv: 0,
        i_ffn_down: 0,
    };
    let mut plan = HashMap::new();
    for (name, ne) in order {
        if !allows_quantization(name, ne) {
            continue;
        }
        let cols = ne.first().copied().unwrap_or(1);
        if let (Some(t), Category::TokenEmbd) = (token_embd, category(name)) {
            if !cols.is_multiple_of(t.block_size() as u64) {
                return Err(format!(
                    "`{name}` has rows of {cols}, not whole {t} blocks (--token-embedding-type)"
                ));
            }
            plan.insert(name.clone(), t);
            continue;
        }
        let dtype = if !target.is_quantized() {
            target.base
        } else {
            let chosen = match target.mix {
                Some(mix) => walk.mix_type(mix, name, cols)?,
                None => target.base,
            };
            fallback(chosen, cols)
        };
        plan.insert(name.clone(), dtype);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(arch: &str, layers: usize) -> (ModelFacts, Vec<(String, Vec<u64>)>) {
        let facts = ModelFacts {
            arch: arch.into(),
            n_layer_all: layers,
            n_expert: 0,
            n_head: 32,
            n_head_kv: 8,
        };
        let mut t = vec![
            ("token_embd.weight".to_string(), vec![4096, 32000]),
            ("output.weight".to_string(), vec![4096, 32000]),
            ("output_norm.weight".to_string(), vec![4096]),
        ];
        for l in 0..layers {
            for (n, ne) in [
                ("attn_q.weight", vec![4096, 4096]),
                ("attn_k.weight", vec![4096, 1024]),
                ("attn_v.weight", vec![4096, 1024]),
                ("attn_output.weight", vec![4096, 4096]),
                ("ffn_down.weight", vec![14336, 4096]),
                ("ffn_up.weight", vec![4096, 14336]),
                ("attn_norm.weight", vec![4096]),
            ] {
                t.push((format!("blk.{l}.{n}"), ne));
            }
        }
        (facts, t)
    }

    #[test]
    fn q4_k_m_matches_llama_quantize_on_a_32_layer_llama() {
        // llama-quantize Q4_K_M on Llama-3-8B: Q6_K output and 16 of 32 attn_v / ffn_down
        // (layers 0-3, 28-31 and every third from 6).
        let (facts, tensors) = dense("llama", 32);
        let q4km = QuantTarget::parse("q4_k_m").unwrap();
        let plan = plan_types(&q4km, &facts, &tensors, None).unwrap();
        assert_eq!(plan["output.weight"], DType::Q6K);
        assert_eq!(plan["token_embd.weight"], DType::Q4K);
        assert!(!plan.contains_key("output_norm.weight"));
        assert!(!plan.contains_key("blk.0.attn_norm.weight"));
        let more: Vec<usize> = (0..32)
            .filter(|l| plan[&format!("blk.{l}.attn_v.weight")] == DType::Q6K)
            .collect();
        assert_eq!(
            more,
            vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
        for l in 0..32 {
            let down = plan[&format!("blk.{l}.ffn_down.weight")];
            assert_eq!(down == DType::Q6K, more.contains(&l), "layer {l}");
            assert_eq!(plan[&format!("blk.{l}.attn_q.weight")], DType::Q4K);
            assert_eq!(plan[&format!("blk.{l}.ffn_up.weight")], DType::Q4K);
        }
        // Order-independent: the plan is the same for any listing order.
        let mut shuffled = tensors.clone();
        shuffled.reverse();
        assert_eq!(plan_types(&q4km, &facts, &shuffled, None).unwrap(), plan);
    }

    #[test]
    fn tied_embeddings_get_the_output_type_and_pure_targets_do_not_mix() {
        let (facts, mut tensors) = dense("qwen2", 8);
        tensors.retain(|(n, _)| n != "output.weight");
        let q5km = QuantTarget::parse("q5_k_m").unwrap();
        let plan = plan_types(&q5km, &facts, &tensors, None).unwrap();
        assert_eq!(plan["token_embd.weight"], DType::Q6K);
        let pure =
            plan_types(&QuantTarget::parse("q4_k").unwrap(), &facts, &tensors, None).unwrap();
        assert!(pure.values().all(|&t| t == DType::Q4K), "{pure:?}");
        let f16 = plan_types(&QuantTarget::parse("f16").unwrap(), &facts, &tensors, None).unwrap();
        assert!(f16.values().all(|&t| t == DType::F16));
    }

    #[test]
    fn rows_that_are_not_whole_blocks_fall_back_like_llama_cpp() {
        assert_eq!(fallback(DType::Q4K, 4096), DType::Q4K);
        assert_eq!(fallback(DType::Q4K, 64), DType::Q5_0);
        assert_eq!(fallback(DType::Q5K, 64), DType::Q5_1);
        assert_eq!(fallback(DType::Q6K, 64), DType::Q8_0);
        assert_eq!(fallback(DType::Q2K, 96), DType::Q4_0);
        assert_eq!(fallback(DType::Q3K, 96), DType::Q4_0);
        assert_eq!(fallback(DType::Q8_0, 200), DType::F16);
        assert_eq!(fallback(DType::Q4K, 200), DType::F16);
        // A mix's output head whose rows are not whole Q4_K blocks becomes Q8_0.
        let facts = ModelFacts {
            arch: "qwen2".into(),
            n_layer_all: 1,
            n_expert: 0,
            n_head: 4,
            n_head_kv: 2,
        };
        let t = vec![
            ("output.weight".to_string(), vec![64, 512]),
            ("blk.0.ffn_down.weight".to_string(), vec![128, 64]),
        ];
        let plan = plan_types(&QuantTarget::parse("q4_k_m").unwrap(), &facts, &t, None).unwrap();
        assert_eq!(plan["output.weight"], DType::Q8_0);
        assert_eq!(
            plan["blk.0.ffn_down.weight"],
            DType::Q8_0,
            "Q6_K falls back"
        );
    }

    #[test]
    fn moe_layers_come_from_names_and_eight_experts_get_q8_0_attention() {
        let mut facts = ModelFacts {
            arch: "deepseek2".into(),
            n_layer_all: 16,
            n_expert: 64,
            n_head: 16,
            n_head_kv: 1,
        };
        let t = vec![
            (
                "blk.15.ffn_down_exps.weight".to_string(),
                vec![1536, 2048, 64],
            ),
            (
                "blk.4.ffn_down_exps.weight".to_string(),
                vec![1536, 2048, 64],
            ),
            (
                "blk.5.ffn_down_exps.weight".to_string(),
                vec![1536, 2048, 64],
            ),
            ("blk.5.ffn_down_shexp.weight".to_string(), vec![3072, 2048]),
            ("blk.5.attn_kv_b.weight".to_string(), vec![512, 4096]),
            ("blk.5.ffn_gate_inp.weight".to_string(), vec![2048, 64]),
        ];
        let q4km = QuantTarget::parse("q4_k_m").unwrap();
        let plan = plan_types(&q4km, &facts, &t, None).unwrap();
        assert_eq!(plan["blk.15.ffn_down_exps.weight"], DType::Q6K);
        // Layers 0-1 and 14-15 of 16, and 2 + 3k + 2: 4, 7, 10, 13.
        assert_eq!(plan["blk.4.ffn_down_exps.weight"], DType::Q6K);
        assert_eq!(plan["blk.5.ffn_down_exps.weight"], DType::Q4K);
        assert_eq!(plan["blk.5.ffn_down_shexp.weight"], DType::Q4K);
        assert!(!plan.contains_key("blk.5.ffn_gate_inp.weight"));
        facts.n_expert = 8;
        let plan = plan_types(&q4km, &facts, &t, None).unwrap();
        assert_eq!(plan["blk.5.attn_kv_b.weight"], DType::Q8_0);
        facts.n_layer_all = 4;
        let err = plan_types(&q4km, &facts, &t, None).unwrap_err();
        assert!(
            err.contains("blk.4.ffn_down_exps.weight") && err.contains("4 blocks"),
            "{err}"
        );
    }
}
