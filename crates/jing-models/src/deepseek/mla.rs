//! Multi-head latent attention (DeepSeek-V2 paper §2.1; V3 report §2.1.1).

use std::sync::Arc;

use jing_graph::{GraphBuilder, RopeFreqs, Tensor};

use super::weights::{Attention, QProj};
use super::DeepSeekConfig;

/// Attention of layer `layer` for `x [T, d]` (already normed): `[T, d]`.
///
/// Only the normalised latent `c_kv` and the rotated shared key `k_pe` enter the cache; the
/// per-head keys and values are never stored (the attention op decides whether to fold W_UK
/// into the query or to decompress them on the fly).
pub fn attention(
    g: &mut GraphBuilder,
    c: &DeepSeekConfig,
    w: &Attention,
    rope: &Arc<RopeFreqs>,
    layer: usize,
    x: Tensor,
) -> Tensor {
    let t = g.n_tokens();
    let (h, dn, dr, kvl) = (
        c.num_attention_heads,
        c.qk_nope_head_dim,
        c.qk_rope_head_dim,
        c.kv_lora_rank,
    );
    let eps = c.rms_norm_eps;

    // Queries: q = W_UQ · norm(W_DQ · x), or W_Q · x without q_lora. The first projection
    // of x for the queries and the one for the keys and values (below) come side by side in
    // the graph, so an executor can run them as one stretch of weight reads.
    let q_first = match &w.q {
        QProj::LowRank { a, .. } => g.matmul(x, a), //                  [T, q_lora]
        QProj::Full(wq) => g.matmul(x, wq),         //                          [T, H·(dn+dr)]
    };
    let kv = g.matmul(x, &w.kv_a); //                                   [T, kvl + dr]
    let q = match &w.q {
        QProj::LowRank { norm, b, .. } => {
            let c_q = g.rms_norm(q_first, norm, eps);
            g.matmul(c_q, b) //                                         [T, H·(dn+dr)]
        }
        QProj::Full(_) => q_first,
    };
    let q = g.reshape(q, &[t, h, dn + dr]);
    let q_nope = g.slice(q, 0, dn); //                                  [T, H, dn]
    let q_pe = g.slice(q, dn, dr);
    let q_pe = g.rope(q_pe, rope); //                                   [T, H, dr]

    // Keys and values: the compressed latent and one rope key shared by all heads.
    let c_kv = g.slice(kv, 0, kvl);
    let c_kv = g.rms_norm(c_kv, &w.kv_a_norm, eps); //                  [T, kvl]
    let k_pe = g.slice(kv, kvl, dr);
    let k_pe = g.reshape(k_pe, &[t, 1, dr]);
    let k_pe = g.rope(k_pe, rope);
    let k_pe = g.reshape(k_pe, &[t, dr]); //                            [T, dr]
    let written = g.kv_write(layer, c_kv, k_pe); //                     cache ← [c_kv ‖ k_pe]

    let o = g.mla_attention(q_nope, q_pe, written, &w.mla, layer, c.softmax_scale()); //                                                               [T, H·dv]
    let out = g.matmul(o, &w.o); //                                     [T, d]
    g.name(out, format!("layers.{layer}.attn_out"))
}
