use jing_formats::Config;

use crate::rope::Llama3Scaling;
use crate::ModelError;

/// Which family a dense checkpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `LlamaForCausalLM` (`model_type: llama`).
    Llama,
    /// `Qwen2ForCausalLM` (`model_type: qwen2`): q/k/v projections carry biases.
    Qwen2,
}

/// The fields of a Llama or Qwen2 `config.json` that define the computation.
#[derive(Clone, Debug)]
pub struct DenseConfig {
    pub family: Family,
    pub architecture: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub llama3: Option<Llama3Scaling>,
    /// Per-frequency divisors of the RoPE base frequencies (`rope_freq_factors`: llama.cpp's
    /// `rope_freqs`, which is how GGUF stores Llama-3 scaling).
    pub rope_freq_factors: Option<Vec<f32>>,
    /// RoPE rotates adjacent pairs `(x[2j], x[2j+1])` instead of halves (`rope_interleave`:
    /// q/k rows stored in that order, as llama.cpp stores Llama).
    pub rope_interleave: bool,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Biases on the q/k/v projections (always for Qwen2, `attention_bias` for Llama).
    pub qkv_bias: bool,
    /// A bias on the output projection (Llama's `attention_bias`).
    pub o_bias: bool,
}

impl DenseConfig {
    pub fn from_config(cfg: &Config) -> Result<DenseConfig, ModelError> {
        let model_type = cfg.str("model_type")?;
        let family = match model_type {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            other => {
                return Err(ModelError::config(
                    "model_type",
                    format!("`{other}` is not a Llama or Qwen2 model"),
                ))
            }
        };
        let architecture = cfg
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|v| v.as_str())
            .unwrap_or(match family {
                Family::Llama => "LlamaForCausalLM",
                Family::Qwen2 => "Qwen2ForCausalLM",
            })
            .to_string();
        let hidden = cfg.usize("hidden_size")?;
        let heads = cfg.usize("num_attention_heads")?;
        if hidden == 0 || heads == 0 {
            return Err(ModelError::config(
                "num_attention_heads",
                "hidden_size and num_attention_heads must be positive",
            ));
        }
        let kv_heads = cfg.usize_or("num_key_value_heads", heads)?;
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(ModelError::config(
                "num_key_value_heads",
                format!("{kv_heads} must divide num_attention_heads ({heads})"),
            ));
        }
        let head_dim = cfg.usize_or("head_dim", hidden / heads)?;
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(ModelError::config(
                "head_dim",
                format!("{head_dim} must be even and positive"),
            ));
        }
        let hidden_act = cfg.str_or("hidden_act", "silu")?;
        if hidden_act != "silu" {
            return Err(ModelError::config(
                "hidden_act",
                format!("`{hidden_act}` is not supported (expected silu)"),
            ));
        }
        if cfg.bool_or("mlp_bias", false)? {
            return Err(ModelError::config("mlp_bias", "true is not supported"));
        }
        if family == Family::Qwen2 && cfg.bool_or("use_sliding_window", false)? {
            return Err(ModelError::config(
                "use_sliding_window",
                "sliding-window attention is not supported (the R1-Distill checkpoints disable it)",
            ));
        }
        let attention_bias = cfg.bool_or("attention_bias", false)?;
        let rope_theta = match cfg.opt_f64("rope_theta")? {
            Some(t) => t,
            None => cfg.f64_or("rope_parameters.rope_theta", 10000.0)?,
        };
        let rope = cfg
            .opt_section("rope_scaling")?
            .or(cfg.opt_section("rope_parameters")?);
        let llama3 = match rope {
            None => None,
            Some(r) => {
                let kind = match r.opt_str("rope_type")? {
                    Some(k) => k.to_string(),
                    None => r.str_or("type", "default")?.to_string(),
                };
                match kind.as_str() {
                    "default" => None,
                    "llama3" => Some(Llama3Scaling {
                        factor: r.f64("factor")?,
                        low_freq_factor: r.f64("low_freq_factor")?,
                        high_freq_factor: r.f64("high_freq_factor")?,
                        original_max_position_embeddings: r.f64("original_max_position_embeddings")?,
                    }),
                    other => {
                        return Err(ModelError::config(
                            "rope_scaling.rope_type",
                            format!("`{other}` is not supported for Llama/Qwen2 models (expected llama3 or none)"),
                        ))
                    }
                }
            }
        };
        let rope_freq_factors = match cfg.get("rope_freq_factors") {
            None => None,
            Some(v) => {
                let f: Option<Vec<f32>> = v.as_array().and_then(|a| {
                    a.iter()
                        .map(|x| x.as_f64().filter(|f| *f > 0.0).map(|f| f as f32))
                        .collect()
                });
                match f {
                    Some(f) if f.len() == head_dim / 2 && llama3.is_none() => Some(f),
                    _ => {
                        return Err(ModelError::config(
                            "rope_freq_factors",
                            format!("must be {} positive numbers (one per frequency), and not combined with rope_scaling", head_dim / 2),
                        ))
                    }
                }
            }
        };
        Ok(DenseConfig {
            family,
            architecture,
            vocab_size: cfg.usize("vocab_size")?,
            hidden_size: hidden,
            intermediate_size: cfg.usize("intermediate_size")?,
            num_hidden_layers: cfg.usize("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            rms_norm_eps: cfg.f64_or("rms_norm_eps", 1e-6)? as f32,
            rope_theta,
            llama3,
            rope_freq_factors,
            rope_interleave: cfg.bool_or("rope_interleave", false)?,
            max_position_embeddings: cfg.usize_or("max_position_embeddings", 4096)?,
            tie_word_embeddings: cfg.bool_or("tie_word_embeddings", false)?,
            qkv_bias: family == Family::Qwen2 || attention_bias,
            o_bias: family == Family::Llama && attention_bias,
        })
    }
}
