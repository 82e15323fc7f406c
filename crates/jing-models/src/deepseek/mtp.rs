//! The multi-token-prediction module (V3 report §2.2), stored as the extra layer(s) after the
//! main layers. It predicts token i+2 from the main model's final-normed hidden state at i and
//! the embedding of token i+1, through one more decoder block with its own cache layer. It is
//! loaded with the model and used for speculative decoding.

use jing_graph::{GraphBuilder, Tensor};

use super::weights::Block;
use super::DeepSeekConfig;
use crate::common::{Loader, W};
use crate::ModelError;

pub struct Mtp {
    /// Checkpoint layer index (= num_hidden_layers + module index); also its cache layer.
    pub layer: usize,
    /// The module's own copy of the embedding, when stored (it equals the main one).
    pub embed: Option<W>,
    pub enorm: W,
    pub hnorm: W,
    /// `[hidden, 2·hidden]`, input `[enorm(emb) ‖ hnorm(h)]`.
    pub eh_proj: W,
    pub block: Block,
    pub head_norm: W,
    /// The module's copy of the LM head, when stored.
    pub head: Option<W>,
}

impl Mtp {
    pub fn load(ld: &mut Loader, layer: usize, c: &DeepSeekConfig) -> Result<Mtp, ModelError> {
        let d = c.hidden_size;
        let p = format!("model.layers.{layer}");
        let opt =
            |ld: &mut Loader, name: String, shape: &[usize]| -> Result<Option<W>, ModelError> {
                if ld.store.contains(&name) {
                    Ok(Some(ld.tensor(&name, shape, "vocab_size x hidden_size")?))
                } else {
                    Ok(None)
                }
            };
        Ok(Mtp {
            layer,
            embed: opt(ld, format!("{p}.embed_tokens.weight"), &[c.vocab_size, d])?,
            enorm: ld.tensor(&format!("{p}.enorm.weight"), &[d], "hidden_size")?,
            hnorm: ld.tensor(&format!("{p}.hnorm.weight"), &[d], "hidden_size")?,
            eh_proj: ld.linear(
                &format!("{p}.eh_proj.weight"),
                &[d, 2 * d],
                "hidden_size x 2*hidden_size",
            )?,
            block: Block::load(ld, layer, c)?,
            head_norm: ld.tensor(&format!("{p}.shared_head.norm.weight"), &[d], "hidden_size")?,
            head: opt(
                ld,
                format!("{p}.shared_head.head.weight"),
                &[c.vocab_size, d],
            )?,
        })
    }

    /// The module's input for `emb [T, d]` (embeddings of the next tokens) and
    /// `hidden [T, d]` (main model, final-normed): `eh_proj([enorm(emb) ‖ hnorm(hidden)])`.
    pub fn input(&self, g: &mut GraphBuilder, eps: f32, emb: Tensor, hidden: Tensor) -> Tensor {
        let e = g.rms_norm(emb, &self.enorm, eps);
        let h = g.rms_norm(hidden, &self.hnorm, eps);
        let eh = g.concat(e, h); //                              [T, 2d]
        g.matmul(eh, &self.eh_proj) //                           [T, d]
    }
}
