//! The weight tree of a DeepSeek checkpoint, read by HF tensor names and checked against the
//! shapes `config.json` implies, so that a mismatched file fails at load with both shapes named
//! instead of computing garbage.

use std::sync::Arc;

use jing_graph::MlaWeights;

use super::DeepSeekConfig;
use crate::common::{Loader, Mlp, W};
use crate::ModelError;

/// The query path: a low-rank pair with a norm between (V2, V3), or one projection (V2-Lite).
pub enum QProj {
    LowRank { a: W, norm: W, b: W },
    Full(W),
}

pub struct Attention {
    pub q: QProj,
    /// `[kv_lora + rope, hidden]`: the latent and the shared rope key.
    pub kv_a: W,
    pub kv_a_norm: W,
    /// Per head W_UK and W_UV, as stored: HF `kv_b_proj` `[H·(nope + v), kv_lora]`, or GGUF's
    /// `attn_k_b` / `attn_v_b` parts.
    pub mla: Arc<MlaWeights>,
    pub o: W,
}

impl Attention {
    pub fn load(
        ld: &mut Loader,
        prefix: &str,
        c: &DeepSeekConfig,
    ) -> Result<Attention, ModelError> {
        let (d, h) = (c.hidden_size, c.num_attention_heads);
        let q_out = h * c.qk_head_dim();
        let p = format!("{prefix}.self_attn");
        let q = match c.q_lora_rank {
            Some(r) => QProj::LowRank {
                a: ld.linear(&format!("{p}.q_a_proj.weight"), &[r, d], "q_lora_rank x hidden_size")?,
                norm: ld.tensor(&format!("{p}.q_a_layernorm.weight"), &[r], "q_lora_rank")?,
                b: ld.linear(
                    &format!("{p}.q_b_proj.weight"),
                    &[q_out, r],
                    "num_attention_heads*(qk_nope_head_dim+qk_rope_head_dim) x q_lora_rank",
                )?,
            },
            None => QProj::Full(ld.linear(
                &format!("{p}.q_proj.weight"),
                &[q_out, d],
                "num_attention_heads*(qk_nope_head_dim+qk_rope_head_dim) x hidden_size (q_lora_rank is null)",
            )?),
        };
        Ok(Attention {
            q,
            kv_a: ld.linear(
                &format!("{p}.kv_a_proj_with_mqa.weight"),
                &[c.kv_lora_rank + c.qk_rope_head_dim, d],
                "(kv_lora_rank+qk_rope_head_dim) x hidden_size",
            )?,
            kv_a_norm: ld.tensor(
                &format!("{p}.kv_a_layernorm.weight"),
                &[c.kv_lora_rank],
                "kv_lora_rank",
            )?,
            mla: Arc::new(Self::load_mla(ld, &p, c)?),
            o: ld.linear(
                &format!("{p}.o_proj.weight"),
                &[d, h * c.v_head_dim],
                "hidden_size x num_attention_heads*v_head_dim",
            )?,
        })
    }

    /// MLA's up-projections: the checkpoint's `kv_b_proj`, or the two parts a GGUF file (or a
    /// quantizing load) keeps it as.
    fn load_mla(ld: &mut Loader, p: &str, c: &DeepSeekConfig) -> Result<MlaWeights, ModelError> {
        let (h, dn, dv, kvl) = (
            c.num_attention_heads,
            c.qk_nope_head_dim,
            c.v_head_dim,
            c.kv_lora_rank,
        );
        let name = format!("{p}.kv_b_proj.weight");
        if let Some((k_b, v_b)) = ld.store.mla_parts(&name)? {
            let k_b = ld.check(
                &format!("{p}.attn_k_b (of kv_b_proj)"),
                k_b,
                &[h, kvl, dn],
                "num_attention_heads x kv_lora_rank x qk_nope_head_dim",
            )?;
            let v_b = ld.check(
                &format!("{p}.attn_v_b (of kv_b_proj)"),
                v_b,
                &[h, dv, kvl],
                "num_attention_heads x v_head_dim x kv_lora_rank",
            )?;
            // One matmul per head on each: the backend may rearrange them head by head.
            let (k_b, v_b) = (ld.linear_in_slices(k_b, kvl), ld.linear_in_slices(v_b, dv));
            return Ok(MlaWeights::from_split(&k_b, &v_b));
        }
        let kv_b = ld.tensor(
            &name,
            &[h * (dn + dv), kvl],
            "num_attention_heads*(qk_nope_head_dim+v_head_dim) x kv_lora_rank",
        )?;
        // For a backend that rearranges its weights as they load: W_UK and W_UV each in one
        // piece, W_UV (a matmul per head) rearranged as the other matmul weights are. A copy
        // of `kv_b_proj`, made also where the model is too big for the rest to be rearranged
        // (V3 in FP8: 16.8 MB a layer, about a thousandth of its bytes).
        if ld.prepare.is_some() {
            if let Some([uk, uv]) = MlaWeights::split_kv_b(&kv_b, h, dn, dv) {
                ld.copied(&kv_b);
                let uv = ld.linear_in_slices(Arc::new(uv), dv);
                return Ok(MlaWeights::from_uk_uv(&uk, &uv, h));
            }
        }
        Ok(MlaWeights::from_kv_b(&kv_b, h, dn, dv))
    }

    pub fn bytes(&self) -> usize {
        let q = match &self.q {
            QProj::LowRank { a, norm, b } => {
                a.stored_bytes() + norm.stored_bytes() + b.stored_bytes()
            }
            QProj::Full(w) => w.stored_bytes(),
        };
        q + self.kv_a.stored_bytes()
            + self.kv_a_norm.stored_bytes()
            + self.mla.stored_bytes
            + self.o.stored_bytes()
    }
}

/// Routed experts with their router, plus the shared experts (stored as one wide MLP).
pub struct Moe {
    /// `[n_routed_experts, hidden]`.
    pub router: W,
    /// V3's `e_score_correction_bias` `[n_routed_experts]`, used for selection only.
    pub bias: Option<W>,
    pub gate: Arc<Vec<W>>,
    pub up: Arc<Vec<W>>,
    pub down: Arc<Vec<W>>,
    pub shared: Option<Mlp>,
}

impl Moe {
    pub fn load(ld: &mut Loader, prefix: &str, c: &DeepSeekConfig) -> Result<Moe, ModelError> {
        let (d, e, i) = (c.hidden_size, c.n_routed_experts, c.moe_intermediate_size);
        let p = format!("{prefix}.mlp");
        let router = ld.tensor(
            &format!("{p}.gate.weight"),
            &[e, d],
            "n_routed_experts x hidden_size",
        )?;
        let bias_name = format!("{p}.gate.e_score_correction_bias");
        let bias = if c.sigmoid_scores && ld.store.contains(&bias_name) {
            Some(ld.tensor(&bias_name, &[e], "n_routed_experts")?)
        } else {
            None
        };
        let (mut gate, mut up, mut down) = (
            Vec::with_capacity(e),
            Vec::with_capacity(e),
            Vec::with_capacity(e),
        );
        for x in 0..e {
            let m = Mlp::load(
                ld,
                &format!("{p}.experts.{x}"),
                d,
                i,
                "moe_intermediate_size x hidden_size",
            )?;
            gate.push(m.gate);
            up.push(m.up);
            down.push(m.down);
        }
        let shared = if c.n_shared_experts > 0 {
            Some(Mlp::load(
                ld,
                &format!("{p}.shared_experts"),
                d,
                c.n_shared_experts * i,
                "n_shared_experts*moe_intermediate_size x hidden_size",
            )?)
        } else {
            None
        };
        Ok(Moe {
            router,
            bias,
            gate: Arc::new(gate),
            up: Arc::new(up),
            down: Arc::new(down),
            shared,
        })
    }

    /// Bytes one token reads: router, shared experts and `k` routed experts.
    pub fn active_bytes(&self, k: usize) -> usize {
        let expert =
            self.gate[0].stored_bytes() + self.up[0].stored_bytes() + self.down[0].stored_bytes();
        self.router.stored_bytes() + self.shared.as_ref().map_or(0, Mlp::bytes) + k * expert
    }
}

pub enum Ffn {
    Dense(Mlp),
    Moe(Moe),
}

/// One decoder block: pre-norm attention and pre-norm FFN, both residual.
pub struct Block {
    pub attn_norm: W,
    pub attn: Attention,
    pub ffn_norm: W,
    pub ffn: Ffn,
}

impl Block {
    pub fn load(ld: &mut Loader, l: usize, c: &DeepSeekConfig) -> Result<Block, ModelError> {
        let prefix = format!("model.layers.{l}");
        let d = c.hidden_size;
        let ffn = if c.is_moe_layer(l) {
            Ffn::Moe(Moe::load(ld, &prefix, c)?)
        } else {
            Ffn::Dense(Mlp::load(
                ld,
                &format!("{prefix}.mlp"),
                d,
                c.intermediate_size,
                "intermediate_size x hidden_size",
            )?)
        };
        Ok(Block {
            attn_norm: ld.tensor(
                &format!("{prefix}.input_layernorm.weight"),
                &[d],
                "hidden_size",
            )?,
            attn: Attention::load(ld, &prefix, c)?,
            ffn_norm: ld.tensor(
                &format!("{prefix}.post_attention_layernorm.weight"),
                &[d],
                "hidden_size",
            )?,
            ffn,
        })
    }

    /// Bytes one token reads in this block.
    pub fn active_bytes(&self, k: usize) -> usize {
        let ffn = match &self.ffn {
            Ffn::Dense(m) => m.bytes(),
            Ffn::Moe(m) => m.active_bytes(k),
        };
        self.attn_norm.stored_bytes() + self.ffn_norm.stored_bytes() + self.attn.bytes() + ffn
    }
}
