//! Attention for a prefill chunk: `T` consecutive tokens of one sequence. The per-token loops
//! of [`mla_attention`](crate::attention::mla_attention) and
//! [`gqa_attention`](crate::attention::gqa_attention) read every cache row once per token with
//! a dot product and an axpy; here the products are matmuls through the kernel table, whose
//! register tiles reuse each row for several tokens. Grouped-query attention, per query head
//! `h` of KV head `g`: `S = q_h · K_gᵀ`, `P = softmax(scale · S)` (causal), `o_h = P · V_g`.
//! Absorbed MLA:
//!
//! ```text
//! q_lat[T, kvl]   = q_nope_h[T, dn] · W_UK[h]            (weight W_UK[h]ᵀ [kvl, dn]: GGUF's
//!                                                          attn_k_b as stored, or kv_b's rows
//!                                                          transposed to f32)
//! S[T, n_ctx]     = [q_lat ‖ q_pe_h][T, kvl + dr] · Cᵀ     (weight C = cache rows [n_ctx, kvl + dr])
//! P               = softmax(scale · S), causal: token t sees positions 0..=p0 + t
//! o_lat[T, kvl]   = P · C[:, :kvl]                        (rows_axpy over the cache rows)
//! o_h[T, dv]      = o_lat · W_UV[h]ᵀ                      (weight W_UV[h] [dv, kvl], as stored)
//! ```
//!
//! Same sums as the per-token loop, in another order (f32 throughout).

use jing_graph::{CacheError, GqaAttention, KvCache, MlaAttention, UkHead};
use jing_tensor::Weight;

use crate::exec::{softmax, Ctx};
use crate::kernels::OutMatrix;

/// Tokens from which a one-sequence batch takes this path.
pub(crate) const PREFILL_MIN_TOKENS: usize = 16;

/// Tokens per block of the score matmul: block `b` multiplies only the cache rows its last
/// token sees, so the causal upper triangle is mostly skipped.
const SCORE_BLOCK: usize = 64;

/// The first position if the batch is one sequence's consecutive tokens, long enough for this
/// path.
pub(crate) fn one_sequence_chunk(c: &Ctx) -> Option<usize> {
    let (slots, pos) = (&c.batch.slots, &c.batch.positions);
    if slots.len() < PREFILL_MIN_TOKENS {
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
    // heads (the value product reads its latent columns where they lie).
    let rows = cache.rows(c.batch.slots[0], a.layer, n_ctx)?;
    let c_w = Weight::from_f32("mla.cache", vec![n_ctx, width], rows);

    let mut wrow = vec![0.0f32; kvl];
    let mut w_uk_t = vec![0.0f32; kvl * dn]; // [kvl, dn]
    let mut q_h = vec![0.0f32; t_all * dn]; // [T, dn]
    let mut q_ext = vec![0.0f32; t_all * width]; // [T, kvl + dr]
    let mut s = vec![0.0f32; t_all * n_ctx]; // [T, n_ctx]
    let mut o_lat = vec![0.0f32; t_all * kvl]; // [T, kvl]
    let mut p_block = Vec::new(); // a block of P's rows, [SCORE_BLOCK, ≤ n_ctx]
    let mut o_h = vec![0.0f32; t_all * dv]; // [T, dv]
    for h in heads {
        let head = &a.w.heads[h];
        // W_UK[h]ᵀ [kvl, dn]: as stored (GGUF), or transposed from kv_b's rows.
        let transposed;
        let w_uk_t_w = match &head.uk {
            UkHead::Transposed(w) => w,
            UkHead::Rows(w) => {
                for d in 0..dn {
                    w.row_to_f32(d, &mut wrow);
                    for (ch, &v) in wrow.iter().enumerate() {
                        w_uk_t[ch * dn + d] = v;
                    }
                }
                transposed = Weight::from_f32("mla.w_uk_t", vec![kvl, dn], &w_uk_t);
                &transposed
            }
        };
        for t in 0..t_all {
            q_h[t * dn..(t + 1) * dn].copy_from_slice(&q_nope[(t * h_all + h) * dn..][..dn]);
            q_ext[t * width + kvl..(t + 1) * width]
                .copy_from_slice(&q_pe[(t * h_all + h) * dr..][..dr]);
        }
        // q_lat into the first kvl columns of q_ext.
        (c.k.matmul)(
            w_uk_t_w,
            &q_h,
            t_all,
            0..kvl,
            &OutMatrix::new(&mut q_ext, width),
        );
        // Scores, block by block of tokens, each against the positions its last token sees.
        causal_scores(c, &c_w, &q_ext, t_all, p0, &mut s);
        causal_softmax(&mut s, n_ctx, p0, a.scale);
        causal_values(c, &s, n_ctx, p0, rows, width, &mut o_lat, &mut p_block);
        (c.k.matmul)(
            &head.uv,
            &o_lat,
            t_all,
            0..dv,
            &OutMatrix::new(&mut o_h, dv),
        );
        write_head(out, &o_h, h, dv);
    }
    Ok(())
}

/// Head `h`'s output `o_h` (`[T, d]`) into columns `h·d..(h + 1)·d` of the node's output.
pub(crate) fn write_head(out: &OutMatrix, o_h: &[f32], h: usize, d: usize) {
    for (t, orow) in o_h.chunks_exact(d).enumerate() {
        for (e, &v) in orow.iter().enumerate() {
            // SAFETY: the callers pass heads of their own share, whose columns no other
            // thread writes.
            unsafe { out.write(t, h * d + e, v) };
        }
    }
}

/// Scale the first `p0 + t + 1` entries of row `t` of `s` ([T, n_ctx]) by `scale`, softmax
/// them, and zero the rest (positions after the token).
fn causal_softmax(s: &mut [f32], n_ctx: usize, p0: usize, scale: f32) {
    for (t, srow) in s.chunks_exact_mut(n_ctx).enumerate() {
        let (seen, hidden) = srow.split_at_mut(p0 + t + 1);
        for v in seen.iter_mut() {
            *v *= scale;
        }
        softmax(seen);
        hidden.fill(0.0);
    }
}

/// `s[t, j] = x[t] · W[j]` for `j` up to what each token sees, in blocks of [`SCORE_BLOCK`]
/// tokens (`x` is `[T, K]`, `W` is `[n_ctx, K]`, `s` is `[T, n_ctx]`; entries past a block's
/// last visible position are left as they were).
fn causal_scores(c: &Ctx, w: &Weight, x: &[f32], t_all: usize, p0: usize, s: &mut [f32]) {
    let (k, n_ctx) = (w.cols(), w.rows());
    for b0 in (0..t_all).step_by(SCORE_BLOCK) {
        let b1 = t_all.min(b0 + SCORE_BLOCK);
        (c.k.matmul)(
            w,
            &x[b0 * k..b1 * k],
            b1 - b0,
            0..p0 + b1,
            &OutMatrix::new(&mut s[b0 * n_ctx..b1 * n_ctx], n_ctx),
        );
    }
}

/// `o[t] = Σ_j P[t, j] · v_j` (`P` is `[T, n_ctx]`, `o` is `[T, K]`, `v_j` the first K values
/// of `rows[j·stride..]`), in blocks of [`SCORE_BLOCK`] tokens, each over the positions its
/// last token sees: the causal upper triangle of `P` (zero) is skipped, and the cache rows are
/// read where they lie (no transposed copy). `p_block` is scratch.
#[allow(clippy::too_many_arguments)]
fn causal_values(
    c: &Ctx,
    p: &[f32],
    n_ctx: usize,
    p0: usize,
    rows: &[f32],
    stride: usize,
    o: &mut [f32],
    p_block: &mut Vec<f32>,
) {
    let t_all = p.len() / n_ctx;
    let k = o.len() / t_all;
    o.fill(0.0);
    for b0 in (0..t_all).step_by(SCORE_BLOCK) {
        let b1 = t_all.min(b0 + SCORE_BLOCK);
        let seen = p0 + b1;
        p_block.clear();
        for t in b0..b1 {
            p_block.extend_from_slice(&p[t * n_ctx..t * n_ctx + seen]);
        }
        (c.k.rows_axpy)(p_block, b1 - b0, rows, stride, &mut o[b0 * k..b1 * k]);
    }
}

/// Query heads `heads` of a grouped-query attention node for a one-sequence chunk starting at
/// position `p0`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gqa_prefill(
    c: &Ctx,
    a: &GqaAttention,
    cache: &KvCache,
    p0: usize,
    heads: std::ops::Range<usize>,
    q: &[f32],
    out: &OutMatrix,
) -> Result<(), CacheError> {
    let (h_all, kv, d) = (a.n_heads, a.n_kv_heads, a.head_dim);
    let group = h_all / kv;
    let width = 2 * kv * d;
    let t_all = c.batch.len();
    let n_ctx = p0 + t_all;
    let rows = cache.rows(c.batch.slots[0], a.layer, n_ctx)?;
    let mut k_g = vec![0.0f32; n_ctx * d]; // [n_ctx, d]
    let mut q_h = vec![0.0f32; t_all * d]; // [T, d]
    let mut s = vec![0.0f32; t_all * n_ctx]; // [T, n_ctx]
    let mut o_h = vec![0.0f32; t_all * d]; // [T, d]
    let mut p_block = Vec::new(); // a block of P's rows, [SCORE_BLOCK, ≤ n_ctx]
    let mut loaded: Option<(usize, Weight)> = None;
    for h in heads {
        let g = h / group;
        // This head's keys as a weight, built once per KV head (the values are read where
        // they lie).
        if loaded.as_ref().is_none_or(|(lg, _)| *lg != g) {
            for (j, row) in rows.chunks_exact(width).enumerate() {
                k_g[j * d..(j + 1) * d].copy_from_slice(&row[g * d..(g + 1) * d]);
            }
            loaded = Some((g, Weight::from_f32("gqa.k", vec![n_ctx, d], &k_g)));
        }
        let Some((_, k_w)) = loaded.as_ref() else {
            unreachable!("loaded above")
        };
        for t in 0..t_all {
            q_h[t * d..(t + 1) * d].copy_from_slice(&q[(t * h_all + h) * d..][..d]);
        }
        causal_scores(c, k_w, &q_h, t_all, p0, &mut s);
        causal_softmax(&mut s, n_ctx, p0, a.scale);
        let values = &rows[(kv + g) * d..];
        causal_values(c, &s, n_ctx, p0, values, width, &mut o_h, &mut p_block);
        write_head(out, &o_h, h, d);
    }
    Ok(())
}
