//! Absorbed MLA for a prefill chunk: `T` consecutive tokens of one sequence. The per-token
//! loop of [`mla_attention`](crate::attention::mla_attention) reads every cache row once per
//! token with a dot product and an axpy; here the four products of absorbed attention are
//! matmuls through the kernel table, whose register tiles reuse each row for several tokens:
//!
//! ```text
//! q_lat[T, kvl]   = q_nope_h[T, dn] · W_UK[h]            (weight W_UK[h]ᵀ [kvl, dn])
//! S[T, n_ctx]     = [q_lat ‖ q_pe_h][T, kvl + dr] · Cᵀ     (weight C = cache rows [n_ctx, kvl + dr])
//! P               = softmax(scale · S), causal: token t sees positions 0..=p0 + t
//! o_lat[T, kvl]   = P · C[:, :kvl]                        (weight C_latᵀ [kvl, n_ctx])
//! o_h[T, dv]      = o_lat · W_UV[h]ᵀ                      (weight W_UV[h] [dv, kvl], as stored)
//! ```
//!
//! Same sums as the per-token loop, in another order (f32 throughout).

use jing_graph::{CacheError, KvCache, MlaAttention};
use jing_tensor::Weight;

use crate::exec::{softmax, Ctx};
use crate::kernels::OutMatrix;

/// Tokens from which a one-sequence batch takes this path.
pub(crate) const MLA_PREFILL_MIN_TOKENS: usize = 16;

/// Tokens per block of the score matmul: block `b` multiplies only the cache rows its last
/// token sees, so the causal upper triangle is mostly skipped.
const SCORE_BLOCK: usize = 64;

/// The first position if the batch is one sequence's consecutive tokens, long enough for this
/// path.
pub(crate) fn one_sequence_chunk(c: &Ctx) -> Option<usize> {
    let (slots, pos) = (&c.batch.slots, &c.batch.positions);
    if slots.len() < MLA_PREFILL_MIN_TOKENS {
        return None;
    }
    let p0 = pos[0];
    let same = slots.iter().all(|&s| s == slots[0]);
    let consecutive = pos.iter().enumerate().all(|(t, &p)| p == p0 + t);
    (same && consecutive).then_some(p0)
}

/// Heads `h0..h1` of node `out` for a one-sequence chunk starting at position `p0`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mla_prefill(
    c: &Ctx,
    a: &MlaAttention,
    cache: &KvCache,
    p0: usize,
    heads: std::ops::Range<usize>,
    q_nope: &[f32],
    q_pe: &[f32],
    out: &OutMatrix,
) -> Result<(), CacheError> {
    let (h_all, dn, dr, dv, kvl) = (a.n_heads, a.nope_dim, a.rope_dim, a.v_dim, a.kv_lora);
    let width = kvl + dr;
    let t_all = c.batch.len();
    let n_ctx = p0 + t_all;
    // C [n_ctx, kvl + dr]: the latent and rope key of every visible position, shared by all
    // heads; and C_latᵀ [kvl, n_ctx] for the value product.
    let rows = cache.rows(c.batch.slots[0], a.layer, n_ctx)?;
    let c_w = Weight::from_f32("mla.cache", vec![n_ctx, width], rows);
    let mut c_lat_t = vec![0.0f32; kvl * n_ctx];
    for (j, row) in rows.chunks_exact(width).enumerate() {
        for (ch, &v) in row[..kvl].iter().enumerate() {
            c_lat_t[ch * n_ctx + j] = v;
        }
    }
    let c_lat_t = Weight::from_f32("mla.cache_lat_t", vec![kvl, n_ctx], &c_lat_t);

    let w = &a.kv_b;
    let mut wrow = vec![0.0f32; kvl];
    let mut w_uk_t = vec![0.0f32; kvl * dn]; // [kvl, dn]
    let mut q_h = vec![0.0f32; t_all * dn]; // [T, dn]
    let mut q_ext = vec![0.0f32; t_all * width]; // [T, kvl + dr]
    let mut s = vec![0.0f32; t_all * n_ctx]; // [T, n_ctx]
    let mut o_lat = vec![0.0f32; t_all * kvl]; // [T, kvl]
    let mut o_h = vec![0.0f32; t_all * dv]; // [T, dv]
    for h in heads {
        let uk = h * (dn + dv); // first row of W_UK[h] in kv_b
        let uv = uk + dn; //       first row of W_UV[h]
        for d in 0..dn {
            w.row_to_f32(uk + d, &mut wrow);
            for (ch, &v) in wrow.iter().enumerate() {
                w_uk_t[ch * dn + d] = v;
            }
        }
        let w_uk_t_w = Weight::from_f32("mla.w_uk_t", vec![kvl, dn], &w_uk_t);
        for t in 0..t_all {
            q_h[t * dn..(t + 1) * dn].copy_from_slice(&q_nope[(t * h_all + h) * dn..][..dn]);
            q_ext[t * width + kvl..(t + 1) * width]
                .copy_from_slice(&q_pe[(t * h_all + h) * dr..][..dr]);
        }
        // q_lat into the first kvl columns of q_ext.
        (c.k.matmul)(
            &w_uk_t_w,
            &q_h,
            t_all,
            0..kvl,
            &OutMatrix::new(&mut q_ext, width),
        );
        // Scores, block by block of tokens, each against the positions its last token sees.
        for b0 in (0..t_all).step_by(SCORE_BLOCK) {
            let b1 = t_all.min(b0 + SCORE_BLOCK);
            let visible = p0 + b1;
            (c.k.matmul)(
                &c_w,
                &q_ext[b0 * width..b1 * width],
                b1 - b0,
                0..visible,
                &OutMatrix::new(&mut s[b0 * n_ctx..b1 * n_ctx], n_ctx),
            );
        }
        for (t, srow) in s.chunks_exact_mut(n_ctx).enumerate() {
            let (seen, hidden) = srow.split_at_mut(p0 + t + 1);
            for v in seen.iter_mut() {
                *v *= a.scale;
            }
            softmax(seen);
            hidden.fill(0.0);
        }
        (c.k.matmul)(
            &c_lat_t,
            &s,
            t_all,
            0..kvl,
            &OutMatrix::new(&mut o_lat, kvl),
        );
        let w_uv = w.slice_rows(uv, uv + dv);
        (c.k.matmul)(&w_uv, &o_lat, t_all, 0..dv, &OutMatrix::new(&mut o_h, dv));
        for (t, orow) in o_h.chunks_exact(dv).enumerate() {
            for (e, &v) in orow.iter().enumerate() {
                // SAFETY: column h·dv + e belongs to this thread's head (the caller's share).
                unsafe { out.write(t, h * dv + e, v) };
            }
        }
    }
    Ok(())
}
