use jing_formats::Config;
use serde_json::Value;

use crate::rope::Yarn;
use crate::ModelError;

/// How routed experts are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterKind {
    /// V3 `noaux_tc`: sigmoid scores, correction bias for selection only, groups scored by the
    /// sum of their two best biased scores.
    NoAuxTc,
    /// V2 `group_limited_greedy`: softmax scores, groups scored by their best score.
    GroupLimitedGreedy,
    /// V2-Lite `greedy`: softmax scores, plain top-k.
    Greedy,
}

/// The fields of a DeepSeek `config.json` that define the computation.
#[derive(Clone, Debug)]
pub struct DeepSeekConfig {
    pub architecture: String,
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// Width of the dense FFN layers.
    pub intermediate_size: usize,
    /// Width of one routed (and each shared) expert.
    pub moe_intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub n_routed_experts: usize,
    pub n_shared_experts: usize,
    pub num_experts_per_tok: usize,
    pub first_k_dense_replace: usize,
    pub moe_layer_freq: usize,
    pub router: RouterKind,
    pub sigmoid_scores: bool,
    pub n_group: usize,
    pub topk_group: usize,
    pub norm_topk_prob: bool,
    pub routed_scaling_factor: f32,
    pub q_lora_rank: Option<usize>,
    pub kv_lora_rank: usize,
    pub qk_nope_head_dim: usize,
    pub qk_rope_head_dim: usize,
    pub v_head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub yarn: Option<Yarn>,
    pub max_position_embeddings: usize,
    pub num_nextn_predict_layers: usize,
    pub tie_word_embeddings: bool,
}

fn positive(name: &str, v: usize) -> Result<usize, ModelError> {
    if v == 0 {
        return Err(ModelError::config(name, "must be positive"));
    }
    Ok(v)
}

impl DeepSeekConfig {
    /// Read a DeepSeek-V2/V3 `config.json`, checking every field the model uses.
    pub fn from_config(cfg: &Config) -> Result<DeepSeekConfig, ModelError> {
        let model_type = cfg
            .opt_str("model_type")?
            .ok_or_else(|| ModelError::config("model_type", "is missing"))?
            .to_string();
        let is_v3 = match model_type.as_str() {
            "deepseek_v3" => true,
            "deepseek_v2" => false,
            other => {
                return Err(ModelError::config(
                    "model_type",
                    format!("`{other}` is not a DeepSeek-V2/V3 model"),
                ))
            }
        };
        let architecture = cfg
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .unwrap_or(if is_v3 {
                "DeepseekV3ForCausalLM"
            } else {
                "DeepseekV2ForCausalLM"
            })
            .to_string();

        let topk_method =
            cfg.opt_str("topk_method")?
                .unwrap_or(if is_v3 { "noaux_tc" } else { "greedy" });
        let router = match topk_method {
            "noaux_tc" => RouterKind::NoAuxTc,
            "group_limited_greedy" => RouterKind::GroupLimitedGreedy,
            "greedy" => RouterKind::Greedy,
            other => {
                return Err(ModelError::config(
                    "topk_method",
                    format!("`{other}` is not supported (expected noaux_tc, group_limited_greedy or greedy)"),
                ))
            }
        };
        let scoring =
            cfg.opt_str("scoring_func")?
                .unwrap_or(if is_v3 { "sigmoid" } else { "softmax" });
        let sigmoid_scores = match scoring {
            "sigmoid" => true,
            "softmax" => false,
            other => {
                return Err(ModelError::config(
                    "scoring_func",
                    format!("`{other}` is not supported (expected sigmoid or softmax)"),
                ))
            }
        };

        let heads = positive("num_attention_heads", cfg.usize("num_attention_heads")?)?;
        let n_routed_experts = cfg.opt_usize("n_routed_experts")?.unwrap_or(0);
        let num_experts_per_tok = cfg.opt_usize("num_experts_per_tok")?.unwrap_or(0);
        let (n_group, topk_group) = match router {
            RouterKind::Greedy => (1, 1),
            _ => (
                cfg.opt_usize("n_group")?.unwrap_or(1).max(1),
                cfg.opt_usize("topk_group")?.unwrap_or(1).max(1),
            ),
        };
        if n_routed_experts > 0 {
            if num_experts_per_tok == 0 || num_experts_per_tok > n_routed_experts {
                return Err(ModelError::config(
                    "num_experts_per_tok",
                    format!("must be between 1 and n_routed_experts ({n_routed_experts})"),
                ));
            }
            if !n_routed_experts.is_multiple_of(n_group) || topk_group > n_group {
                return Err(ModelError::config(
                    "n_group",
                    format!("n_group {n_group} must divide n_routed_experts {n_routed_experts} and be at least topk_group {topk_group}"),
                ));
            }
        }

        let yarn = rope_yarn(cfg)?;
        let rope_theta = cfg
            .opt_f64("rope_theta")?
            .or(rope_params(cfg)
                .and_then(|p| p.get("rope_theta"))
                .and_then(Value::as_f64))
            .unwrap_or(10000.0);

        if cfg.opt_bool("attention_bias")?.unwrap_or(false) {
            return Err(ModelError::config(
                "attention_bias",
                "true is not supported by DeepSeek MLA checkpoints",
            ));
        }
        let hidden_act = cfg.opt_str("hidden_act")?.unwrap_or("silu");
        if hidden_act != "silu" {
            return Err(ModelError::config(
                "hidden_act",
                format!("`{hidden_act}` is not supported (expected silu)"),
            ));
        }
        let q_lora_rank = cfg.opt_usize("q_lora_rank")?.filter(|&r| r > 0);

        Ok(DeepSeekConfig {
            architecture,
            model_type,
            vocab_size: positive("vocab_size", cfg.usize("vocab_size")?)?,
            hidden_size: positive("hidden_size", cfg.usize("hidden_size")?)?,
            intermediate_size: cfg.usize("intermediate_size")?,
            moe_intermediate_size: cfg.opt_usize("moe_intermediate_size")?.unwrap_or(0),
            num_hidden_layers: positive("num_hidden_layers", cfg.usize("num_hidden_layers")?)?,
            num_attention_heads: heads,
            n_routed_experts,
            n_shared_experts: cfg.opt_usize("n_shared_experts")?.unwrap_or(0),
            num_experts_per_tok,
            first_k_dense_replace: cfg.opt_usize("first_k_dense_replace")?.unwrap_or(0),
            moe_layer_freq: positive(
                "moe_layer_freq",
                cfg.opt_usize("moe_layer_freq")?.unwrap_or(1),
            )?,
            router,
            sigmoid_scores,
            n_group,
            topk_group,
            norm_topk_prob: cfg.opt_bool("norm_topk_prob")?.unwrap_or(false),
            routed_scaling_factor: cfg.opt_f64("routed_scaling_factor")?.unwrap_or(1.0) as f32,
            q_lora_rank,
            kv_lora_rank: positive("kv_lora_rank", cfg.usize("kv_lora_rank")?)?,
            qk_nope_head_dim: positive("qk_nope_head_dim", cfg.usize("qk_nope_head_dim")?)?,
            qk_rope_head_dim: positive("qk_rope_head_dim", cfg.usize("qk_rope_head_dim")?)?,
            v_head_dim: positive("v_head_dim", cfg.usize("v_head_dim")?)?,
            rms_norm_eps: cfg.opt_f64("rms_norm_eps")?.unwrap_or(1e-6) as f32,
            rope_theta,
            yarn,
            max_position_embeddings: cfg.opt_usize("max_position_embeddings")?.unwrap_or(4096),
            num_nextn_predict_layers: cfg.opt_usize("num_nextn_predict_layers")?.unwrap_or(0),
            tie_word_embeddings: cfg.opt_bool("tie_word_embeddings")?.unwrap_or(false),
        })
    }

    /// Whether layer `l` has a routed-expert FFN (vLLM's predicate).
    pub fn is_moe_layer(&self, l: usize) -> bool {
        self.n_routed_experts > 0
            && l >= self.first_k_dense_replace
            && l.is_multiple_of(self.moe_layer_freq)
    }

    /// `qk_nope_head_dim + qk_rope_head_dim`.
    pub fn qk_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }

    /// Softmax scale of attention: `qk_head_dim^-1/2`, times `mscale²` with
    /// `mscale = 0.1 · mscale_all_dim · ln(factor) + 1` under YaRN (HF's V3 class, vLLM and
    /// DeepSeek's reference apply it; HF's V2 class omits it, which we treat as its bug).
    pub fn softmax_scale(&self) -> f32 {
        let mut s = (self.qk_head_dim() as f64).powf(-0.5);
        if let Some(y) = &self.yarn {
            if let Some(ma) = y.mscale_all_dim.filter(|&m| m != 0.0) {
                let m = crate::rope::yarn_get_mscale(y.factor, ma);
                s *= m * m;
            }
        }
        s as f32
    }
}

/// `rope_scaling` (HF 4.x and DeepSeek's files) or `rope_parameters` (HF 5.x).
fn rope_params(cfg: &Config) -> Option<&Value> {
    cfg.get("rope_scaling")
        .or_else(|| cfg.get("rope_parameters"))
}

fn rope_yarn(cfg: &Config) -> Result<Option<Yarn>, ModelError> {
    let Some(p) = rope_params(cfg) else {
        return Ok(None);
    };
    let kind = p
        .get("type")
        .or_else(|| p.get("rope_type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => Ok(None),
        "yarn" | "deepseek_yarn" => {
            let name = "rope_scaling";
            let num = |k: &str| -> Result<Option<f64>, ModelError> {
                match p.get(k).filter(|v| !v.is_null()) {
                    None => Ok(None),
                    Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                        ModelError::config(
                            &format!("{name}.{k}"),
                            format!("must be a number, found {v}"),
                        )
                    }),
                }
            };
            let factor = num("factor")?
                .ok_or_else(|| ModelError::config("rope_scaling.factor", "is missing"))?;
            let original = num("original_max_position_embeddings")?.ok_or_else(|| {
                ModelError::config(
                    "rope_scaling.original_max_position_embeddings",
                    "is missing",
                )
            })?;
            Ok(Some(Yarn {
                factor,
                original_max_position_embeddings: original as usize,
                beta_fast: num("beta_fast")?.filter(|&b| b != 0.0).unwrap_or(32.0),
                beta_slow: num("beta_slow")?.filter(|&b| b != 0.0).unwrap_or(1.0),
                mscale: num("mscale")?,
                mscale_all_dim: num("mscale_all_dim")?,
                attention_factor: num("attention_factor")?,
                truncate: p.get("truncate").and_then(Value::as_bool).unwrap_or(true),
            }))
        }
        other => Err(ModelError::config(
            "rope_scaling.type",
            format!("`{other}` is not supported for DeepSeek models (expected yarn)"),
        )),
    }
}
