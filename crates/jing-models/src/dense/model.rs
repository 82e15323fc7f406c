use std::sync::Arc;

use jing_formats::ModelDir;
use jing_graph::{Batch, Graph, GraphBuilder, RopeFreqs, RopeStyle, Tensor};

use super::DenseConfig;
use crate::common::{finish_step, mlp, Loader, Mlp, PrepareLinear, W};
use crate::rope::{default_freqs, factor_freqs, llama3_freqs};
use crate::{CausalLm, LogitRows, ModelError, ModelInfo};

/// A linear layer with an optional bias.
struct Linear {
    w: W,
    b: Option<W>,
}

impl Linear {
    fn load(
        ld: &mut Loader,
        name: &str,
        out: usize,
        inp: usize,
        bias: bool,
        why: &str,
    ) -> Result<Linear, ModelError> {
        Ok(Linear {
            w: ld.linear(&format!("{name}.weight"), &[out, inp], why)?,
            b: if bias {
                Some(ld.tensor(&format!("{name}.bias"), &[out], why)?)
            } else {
                None
            },
        })
    }

    fn apply(&self, g: &mut GraphBuilder, x: Tensor) -> Tensor {
        let y = g.matmul(x, &self.w);
        self.bias(g, y)
    }

    /// `y + b` (`y` itself without a bias): the second half of [`Linear::apply`].
    fn bias(&self, g: &mut GraphBuilder, y: Tensor) -> Tensor {
        match &self.b {
            Some(b) => g.add_bias(y, b),
            None => y,
        }
    }

    fn bytes(&self) -> usize {
        self.w.stored_bytes() + self.b.as_ref().map_or(0, |b| b.stored_bytes())
    }
}

struct Block {
    attn_norm: W,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: W,
    mlp: Mlp,
}

/// A Llama or Qwen2 model.
pub struct Dense {
    pub config: DenseConfig,
    info: ModelInfo,
    embed: W,
    blocks: Vec<Block>,
    norm: W,
    lm_head: W,
    rope: Arc<RopeFreqs>,
}

impl Dense {
    /// Load from an opened model folder, the matmul weights through `prepare` (see
    /// [`PrepareLinear`]).
    pub fn load(dir: &ModelDir, prepare: Option<&PrepareLinear>) -> Result<Dense, ModelError> {
        let c = DenseConfig::from_config(&dir.config)?;
        let mut ld = Loader::new(&dir.store, prepare);
        let (d, h, kv, hd) = (
            c.hidden_size,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim,
        );
        let mut embed = ld.tensor(
            "model.embed_tokens.weight",
            &[c.vocab_size, d],
            "vocab_size x hidden_size",
        )?;
        let mut blocks = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let a = format!("{p}.self_attn");
            blocks.push(Block {
                attn_norm: ld.tensor(
                    &format!("{p}.input_layernorm.weight"),
                    &[d],
                    "hidden_size",
                )?,
                q: Linear::load(
                    &mut ld,
                    &format!("{a}.q_proj"),
                    h * hd,
                    d,
                    c.qkv_bias,
                    "num_attention_heads*head_dim x hidden_size",
                )?,
                k: Linear::load(
                    &mut ld,
                    &format!("{a}.k_proj"),
                    kv * hd,
                    d,
                    c.qkv_bias,
                    "num_key_value_heads*head_dim x hidden_size",
                )?,
                v: Linear::load(
                    &mut ld,
                    &format!("{a}.v_proj"),
                    kv * hd,
                    d,
                    c.qkv_bias,
                    "num_key_value_heads*head_dim x hidden_size",
                )?,
                o: Linear::load(
                    &mut ld,
                    &format!("{a}.o_proj"),
                    d,
                    h * hd,
                    c.o_bias,
                    "hidden_size x num_attention_heads*head_dim",
                )?,
                ffn_norm: ld.tensor(
                    &format!("{p}.post_attention_layernorm.weight"),
                    &[d],
                    "hidden_size",
                )?,
                mlp: Mlp::load(
                    &mut ld,
                    &format!("{p}.mlp"),
                    d,
                    c.intermediate_size,
                    "intermediate_size x hidden_size",
                )?,
            });
        }
        let norm = ld.tensor("model.norm.weight", &[d], "hidden_size")?;
        let lm_head = ld.lm_head(c.tie_word_embeddings, &mut embed, c.vocab_size, d)?;
        let style = if c.rope_interleave {
            RopeStyle::Interleaved
        } else {
            RopeStyle::Neox
        };
        let rope = Arc::new(match (&c.llama3, &c.rope_freq_factors) {
            (Some(s), _) => llama3_freqs(c.rope_theta, hd, s, style),
            (None, Some(f)) => factor_freqs(c.rope_theta, hd, f, style),
            (None, None) => default_freqs(c.rope_theta, hd, style),
        });
        let active = embed.stored_bytes() / c.vocab_size
            + blocks
                .iter()
                .map(|b| {
                    b.attn_norm.stored_bytes()
                        + b.ffn_norm.stored_bytes()
                        + b.q.bytes()
                        + b.k.bytes()
                        + b.v.bytes()
                        + b.o.bytes()
                        + b.mlp.bytes()
                })
                .sum::<usize>()
            + norm.stored_bytes()
            + lm_head.stored_bytes();
        let info = ModelInfo {
            architecture: c.architecture.clone(),
            vocab_size: c.vocab_size,
            cache_layers: c.num_hidden_layers,
            cache_width: 2 * kv * hd,
            max_position_embeddings: c.max_position_embeddings,
            hidden_size: d,
            n_layers: c.num_hidden_layers,
            mtp_layers: 0,
            active_bytes_per_token: active,
            total_bytes: ld.bytes,
            mapped: ld.mapped(),
        };
        Ok(Dense {
            config: c,
            info,
            embed,
            blocks,
            norm,
            lm_head,
            rope,
        })
    }

    /// Grouped-query self-attention of layer `layer` for `x [T, d]` (normed): `[T, d]`.
    fn attention(&self, g: &mut GraphBuilder, layer: usize, b: &Block, x: Tensor) -> Tensor {
        let c = &self.config;
        let t = g.n_tokens();
        let (h, kv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        // The three projections of x first, side by side in the graph: they read only x, so
        // an executor can run them as one stretch of weight reads.
        let q = g.matmul(x, &b.q.w); //                                 [T, H·hd]
        let k = g.matmul(x, &b.k.w); //                                 [T, KV·hd]
        let v = g.matmul(x, &b.v.w); //                                 [T, KV·hd]
        let (q, k, v) = (b.q.bias(g, q), b.k.bias(g, k), b.v.bias(g, v));
        let q = g.reshape(q, &[t, h, hd]);
        let q = g.rope(q, &self.rope); //                               [T, H, hd]
        let k = g.reshape(k, &[t, kv, hd]);
        let k = g.rope(k, &self.rope);
        let k = g.reshape(k, &[t, kv * hd]);
        let written = g.kv_write(layer, k, v); //                       cache ← [k ‖ v]
        let o = g.gqa_attention(q, written, layer, kv, (hd as f32).powf(-0.5)); // [T, H·hd]
        b.o.apply(g, o) //                                              [T, d]
    }
}

impl CausalLm for Dense {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn build_step(&self, batch: &Batch, rows: &LogitRows) -> Graph {
        let eps = self.config.rms_norm_eps;
        let mut g = GraphBuilder::new(batch.len());
        let mut h = g.embed(&self.embed); //                            [T, d]
        for (l, b) in self.blocks.iter().enumerate() {
            let a = g.rms_norm(h, &b.attn_norm, eps);
            let a = self.attention(&mut g, l, b, a);
            h = g.add(h, a);
            let f = g.rms_norm(h, &b.ffn_norm, eps);
            let f = mlp(&mut g, &b.mlp, f);
            h = g.add(h, f);
            h = g.name(h, format!("layers.{l}.out"));
        }
        finish_step(g, h, rows, &self.norm, &self.lm_head, eps)
    }
}
