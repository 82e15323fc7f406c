use std::path::Path;
use std::sync::Arc;

use jing_formats::ModelDir;
use jing_graph::{Batch, Graph, GraphBuilder, RopeFreqs, RopeStyle, Tensor};

use super::mla::attention;
use super::moe::moe;
use super::mtp::Mtp;
use super::weights::{Block, Ffn};
use super::DeepSeekConfig;
use crate::common::mlp;
use crate::common::{finish_step, Loader, PrepareLinear, W};
use crate::rope::{default_freqs, yarn_freqs};
use crate::{CausalLm, LogitRows, ModelError, ModelInfo};

/// A DeepSeek-V2/V3 model: embedding, decoder blocks, final norm, LM head, and the MTP modules.
pub struct DeepSeek {
    pub config: DeepSeekConfig,
    info: ModelInfo,
    embed: W,
    blocks: Vec<Block>,
    norm: W,
    lm_head: W,
    mtp: Vec<Mtp>,
    rope: Arc<RopeFreqs>,
}

impl DeepSeek {
    /// Load from an opened model folder, the matmul weights through `prepare` (see
    /// [`PrepareLinear`]).
    pub fn load(dir: &ModelDir, prepare: Option<&PrepareLinear>) -> Result<DeepSeek, ModelError> {
        let c = DeepSeekConfig::from_config(&dir.config)?;
        let mut ld = Loader::new(&dir.store, prepare);
        let d = c.hidden_size;
        let mut embed = ld.tensor(
            "model.embed_tokens.weight",
            &[c.vocab_size, d],
            "vocab_size x hidden_size",
        )?;
        let blocks = (0..c.num_hidden_layers)
            .map(|l| Block::load(&mut ld, l, &c))
            .collect::<Result<Vec<_>, _>>()?;
        let norm = ld.tensor("model.norm.weight", &[d], "hidden_size")?;
        let lm_head = ld.lm_head(c.tie_word_embeddings, &mut embed, c.vocab_size, d)?;
        // MTP modules follow the main layers; a checkpoint converted without them still loads.
        let mtp = (0..c.num_nextn_predict_layers)
            .map(|i| c.num_hidden_layers + i)
            .filter(|l| {
                dir.store
                    .contains(&format!("model.layers.{l}.eh_proj.weight"))
            })
            .map(|l| Mtp::load(&mut ld, l, &c))
            .collect::<Result<Vec<_>, _>>()?;

        let rope = Arc::new(match &c.yarn {
            Some(y) => yarn_freqs(c.rope_theta, c.qk_rope_head_dim, y, RopeStyle::Interleaved),
            None => default_freqs(c.rope_theta, c.qk_rope_head_dim, RopeStyle::Interleaved),
        });
        let k = c.num_experts_per_tok;
        let active = embed.stored_bytes() / c.vocab_size
            + blocks.iter().map(|b| b.active_bytes(k)).sum::<usize>()
            + norm.stored_bytes()
            + lm_head.stored_bytes();
        let info = ModelInfo {
            architecture: c.architecture.clone(),
            vocab_size: c.vocab_size,
            cache_layers: c.num_hidden_layers + mtp.len(),
            cache_width: c.kv_lora_rank + c.qk_rope_head_dim,
            max_position_embeddings: c.max_position_embeddings,
            hidden_size: d,
            n_layers: c.num_hidden_layers,
            mtp_layers: mtp.len(),
            active_bytes_per_token: active,
            total_bytes: ld.bytes,
            mapped: ld.mapped(),
        };
        Ok(DeepSeek {
            config: c,
            info,
            embed,
            blocks,
            norm,
            lm_head,
            mtp,
            rope,
        })
    }

    /// Open the folder and load.
    pub fn open(path: &Path) -> Result<DeepSeek, ModelError> {
        DeepSeek::load(&ModelDir::open(path)?, None)
    }

    /// One decoder block: `h + attn(norm(h))`, then `h + ffn(norm(h))`.
    fn block(&self, g: &mut GraphBuilder, layer: usize, b: &Block, h: Tensor) -> Tensor {
        let eps = self.config.rms_norm_eps;
        let a = g.rms_norm(h, &b.attn_norm, eps);
        let a = attention(g, &self.config, &b.attn, &self.rope, layer, a);
        let h = g.add(h, a);
        let f = g.rms_norm(h, &b.ffn_norm, eps);
        let f = match &b.ffn {
            Ffn::Dense(m) => mlp(g, m, f),
            Ffn::Moe(m) => moe(g, &self.config, m, f),
        };
        let h = g.add(h, f);
        g.name(h, format!("layers.{layer}.out"))
    }

    /// The MTP module's step: for each batch token (the token at position i+1), with the host
    /// input `hidden` holding the main model's final-normed hidden state at position i, the
    /// logits for position i+2. Returns `None` when the checkpoint has no MTP module.
    pub fn build_mtp_step(&self, batch: &Batch, rows: &LogitRows) -> Option<Graph> {
        let m = self.mtp.first()?;
        let eps = self.config.rms_norm_eps;
        let mut g = GraphBuilder::new(batch.len());
        let emb = g.embed(m.embed.as_ref().unwrap_or(&self.embed)); //     [T, d]
        let hidden = g.input("hidden", self.config.hidden_size); //         [T, d]
        let u = m.input(&mut g, eps, emb, hidden);
        let y = self.block(&mut g, m.layer, &m.block, u);
        let head = m.head.as_ref().unwrap_or(&self.lm_head);
        Some(finish_step(g, y, rows, &m.head_norm, head, eps))
    }
}

impl CausalLm for DeepSeek {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn build_step(&self, batch: &Batch, rows: &LogitRows) -> Graph {
        let mut g = GraphBuilder::new(batch.len());
        let mut h = g.embed(&self.embed); //                                [T, d]
        for (l, b) in self.blocks.iter().enumerate() {
            h = self.block(&mut g, l, b, h);
        }
        finish_step(
            g,
            h,
            rows,
            &self.norm,
            &self.lm_head,
            self.config.rms_norm_eps,
        )
    }
}
