//! MLA attention over the latent cache. Threads split the heads; each head's W_UK and W_UV are
//! read once per step (as stored, through the kernel table where they are matmul-shaped) and
//! applied to every token of the batch.

use jing_graph::{ExecError, GqaAttention, KvCache, MlaAttention, MlaForm, UkHead};

use crate::attention_prefill::{gqa_prefill, mla_prefill, one_sequence_chunk, write_head};
use crate::buffers::share;
use crate::exec::{softmax, Ctx};
use std::cell::RefCell;

use crate::exec::matmul_with;
use crate::kernels::{OutMatrix, QuantX};

pub(crate) fn mla_attention(c: &Ctx, i: usize, a: &MlaAttention) -> Result<(), ExecError> {
    let (h_all, dn, dr, dv, kvl) = (a.n_heads, a.nope_dim, a.rope_dim, a.v_dim, a.kv_lora);
    let width = kvl + dr;
    let t_all = c.batch.len();
    let (q_nope, q_pe) = (c.get(a.q_nope), c.get(a.q_pe));
    let (h0, h1) = share(h_all, c.tid, c.nth, 1);
    if h0 == h1 {
        return Ok(());
    }
    let cache = c.cache.read().unwrap_or_else(|e| e.into_inner());
    // SAFETY: this thread writes only the columns of its heads.
    let out = unsafe { c.vals.out_matrix(i, h_all * dv) };
    if matches!(a.form, MlaForm::Absorbed | MlaForm::Auto) {
        if let Some(p0) = one_sequence_chunk(c) {
            // A prefill chunk: the same products as matmuls (see `attention_prefill`).
            return Ok(mla_prefill(c, a, &cache, p0, h0..h1, q_nope, q_pe, &out)?);
        }
    }
    let w = &a.w;
    ATTN_SCRATCH.with_borrow_mut(|sc| {
        let AttnScratch {
            wrow,
            q_h,
            q_lat,
            q_cat,
            o_lat,
            o_t,
            o_h,
            scores,
            xq,
        } = sc;
        if matches!(a.form, MlaForm::Expanded) {
            return expanded(c, a, &cache, h0..h1, q_nope, q_pe, &out, scores);
        }
        // This thread's buffers for all its heads (`nh` of them).
        let nh = h1 - h0;
        resize(wrow, kvl); //               one row of W_UK[h]
        resize(q_h, t_all * dn); //         q_nope[:, h]          [T, dn]
        resize(q_lat, nh * t_all * kvl); // per head              [nh, T, kvl]
        resize(o_lat, nh * t_all * kvl); // per head              [nh, T, kvl]
        resize(o_h, t_all * dv); //                               [T, dv]
                                 // q_lat[h, t] = W_UK[h]ᵀ q_nope[t, h]: one pass over each W_UK[h].
        for (hh, h) in (h0..h1).enumerate() {
            let q_lat = &mut q_lat[hh * t_all * kvl..(hh + 1) * t_all * kvl];
            match &w.heads[h].uk {
                UkHead::Rows(uk) if t_all == 1 => {
                    // One token: the head's rows dequantized straight into the sum (no f32
                    // copy), one call.
                    (c.k.row_axpy)(uk, 0, &q_nope[h * dn..(h + 1) * dn], q_lat);
                }
                UkHead::Rows(uk) => {
                    // Several tokens: each row dequantized once for all of them.
                    for d in 0..dn {
                        uk.row_to_f32(d, wrow);
                        for t in 0..t_all {
                            let qv = q_nope[(t * h_all + h) * dn + d];
                            (c.k.axpy)(qv, wrow, &mut q_lat[t * kvl..(t + 1) * kvl]);
                        }
                    }
                }
                UkHead::Transposed(uk_t) => {
                    // As stored ([kvl, dn], any quant type): a matmul.
                    for t in 0..t_all {
                        q_h[t * dn..(t + 1) * dn]
                            .copy_from_slice(&q_nope[(t * h_all + h) * dn..][..dn]);
                    }
                    let y = OutMatrix::new(q_lat, kvl);
                    matmul_with(c, uk_t, q_h, t_all, 0..kvl, &y, xq, None);
                }
            }
        }
        // o_lat[h, t] = Σ_s softmax_s(scale · (q_lat[h, t]·c_kv[s] + q_pe[t, h]·k_pe[s])) c_kv[s].
        // For each token, the thread's heads against the cache rows where they lie: the scores
        // as a matmul of the queries [q_lat ‖ q_pe] with the rows [c_kv ‖ k_pe], the values as
        // a sum of rows weighted by every head at once; both read each row once for all the
        // heads. On 8 heads and one thread that is 0.11-0.15 µs per row of context against
        // 0.37-0.55 for a dot and an axpy per head and row (`benches/attention_rows.rs`).
        for t in 0..t_all {
            let n_ctx = c.batch.positions[t] + 1;
            let rows = cache.rows(c.batch.slots[t], a.layer, n_ctx)?;
            resize(q_cat, nh * width); //                         [nh, kvl + dr]
            for (hh, qc) in q_cat.chunks_exact_mut(width).enumerate() {
                qc[..kvl].copy_from_slice(&q_lat[(hh * t_all + t) * kvl..][..kvl]);
                qc[kvl..].copy_from_slice(&q_pe[(t * h_all + h0 + hh) * dr..][..dr]);
            }
            resize(scores, nh * n_ctx); //                        [nh, n_ctx]
            (c.k.rows_dot)(q_cat, nh, rows, width, scores);
            for p in scores.chunks_mut(n_ctx) {
                p.iter_mut().for_each(|v| *v *= a.scale);
                softmax(p);
            }
            resize(o_t, nh * kvl); //                             [nh, kvl]
            (c.k.rows_axpy)(scores, nh, rows, width, o_t);
            for (hh, o) in o_t.chunks_exact(kvl).enumerate() {
                o_lat[(hh * t_all + t) * kvl..][..kvl].copy_from_slice(o);
            }
        }
        // o[t, h] = W_UV[h] o_lat[h, t]  [T, dv]
        for (hh, h) in (h0..h1).enumerate() {
            let y = OutMatrix::new(o_h, dv);
            let o_lat = &o_lat[hh * t_all * kvl..(hh + 1) * t_all * kvl];
            matmul_with(c, &w.heads[h].uv, o_lat, t_all, 0..dv, &y, xq, None);
            write_head(&out, o_h, h, dv);
        }
        Ok(())
    })
}

/// The expanded form: decompress each head's keys and values for each token's context, then
/// plain attention. Slow (no reuse across tokens); kept as the CPU twin of the form a backend
/// may pick for long prefills.
#[allow(clippy::too_many_arguments, reason = "the attention's operands")]
fn expanded(
    c: &Ctx,
    a: &MlaAttention,
    cache: &KvCache,
    heads: std::ops::Range<usize>,
    q_nope: &[f32],
    q_pe: &[f32],
    out: &OutMatrix,
    scores: &mut Vec<f32>,
) -> Result<(), ExecError> {
    let (h_all, dn, dr, dv, kvl) = (a.n_heads, a.nope_dim, a.rope_dim, a.v_dim, a.kv_lora);
    let width = kvl + dr;
    let w = &a.w;
    for h in heads {
        let (uk, uv) = (w.uk_f32(h), w.uv_f32(h)); // [dn, kvl], [dv, kvl]
        let w_uk: Vec<&[f32]> = uk.chunks_exact(kvl).collect();
        let w_uv: Vec<&[f32]> = uv.chunks_exact(kvl).collect();
        for t in 0..c.batch.len() {
            let n_ctx = c.batch.positions[t] + 1;
            let rows = cache.rows(c.batch.slots[t], a.layer, n_ctx)?;
            let qn = &q_nope[(t * h_all + h) * dn..][..dn];
            let qp = &q_pe[(t * h_all + h) * dr..][..dr];
            scores.clear();
            let mut values: Vec<f32> = Vec::with_capacity(n_ctx * dv);
            for r in rows.chunks(width) {
                let lat = &r[..kvl];
                let k_nope: Vec<f32> = w_uk.iter().map(|wk| (c.k.dot)(wk, lat)).collect();
                scores.push(((c.k.dot)(qn, &k_nope) + (c.k.dot)(qp, &r[kvl..])) * a.scale);
                values.extend(w_uv.iter().map(|wv| (c.k.dot)(wv, lat)));
            }
            softmax(scores);
            let mut o = vec![0.0f32; dv];
            for (v, &p) in values.chunks(dv).zip(scores.iter()) {
                (c.k.axpy)(p, v, &mut o);
            }
            for (e, v) in o.into_iter().enumerate() {
                // SAFETY: column h·dv + e belongs to this thread's head.
                unsafe { out.write(t, h * dv + e, v) };
            }
        }
    }
    Ok(())
}

/// One pool thread's buffers for decode attention (MLA and GQA), kept across nodes and steps.
#[derive(Default)]
struct AttnScratch {
    wrow: Vec<f32>,
    q_h: Vec<f32>,
    q_lat: Vec<f32>,
    q_cat: Vec<f32>,
    o_lat: Vec<f32>,
    o_t: Vec<f32>,
    o_h: Vec<f32>,
    scores: Vec<f32>,
    xq: QuantX,
}

thread_local! {
    static ATTN_SCRATCH: RefCell<AttnScratch> = RefCell::new(AttnScratch::default());
}

/// `v` as `len` zeros, in its own memory.
fn resize(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

/// Grouped-query attention (Llama, Qwen2): threads split the query heads; each head reads its
/// KV head's keys and values from the cache rows `[k (n_kv·d) ‖ v (n_kv·d)]`.
pub(crate) fn gqa_attention(c: &Ctx, i: usize, a: &GqaAttention) -> Result<(), ExecError> {
    let (h_all, kv, d) = (a.n_heads, a.n_kv_heads, a.head_dim);
    let group = h_all / kv;
    let width = 2 * kv * d;
    let q = c.get(a.q);
    let (h0, h1) = share(h_all, c.tid, c.nth, 1);
    if h0 == h1 {
        return Ok(());
    }
    let cache = c.cache.read().unwrap_or_else(|e| e.into_inner());
    // SAFETY: this thread writes only the columns of its heads.
    let out = unsafe { c.vals.out_matrix(i, h_all * d) };
    if let Some(p0) = one_sequence_chunk(c) {
        // A prefill chunk: the same products as matmuls (see `attention_prefill`).
        return Ok(gqa_prefill(c, a, &cache, p0, h0..h1, q, &out)?);
    }
    ATTN_SCRATCH.with_borrow_mut(|sc| {
        let (scores, o) = (&mut sc.scores, &mut sc.o_h);
        let nh = h1 - h0;
        for t in 0..c.batch.len() {
            let n_ctx = c.batch.positions[t] + 1;
            let rows = cache.rows(c.batch.slots[t], a.layer, n_ctx)?;
            resize(scores, nh * n_ctx); //                        [nh, n_ctx]
            resize(o, nh * d); //                                 [nh, d]
                               // Per KV head, the thread's query heads of its group (consecutive in `q`, in
                               // `scores` and in `o`) against its keys and values where they lie in the cache
                               // rows: each row is read once for all of them (see `mla_attention`).
            let mut h = h0;
            while h < h1 {
                let g = h / group;
                let hg = h1.min((g + 1) * group);
                let (heads, at) = (hg - h, h - h0);
                let qg = &q[(t * h_all + h) * d..(t * h_all + hg) * d];
                let sg = &mut scores[at * n_ctx..(at + heads) * n_ctx];
                (c.k.rows_dot)(qg, heads, &rows[g * d..], width, sg);
                for p in sg.chunks_mut(n_ctx) {
                    p.iter_mut().for_each(|v| *v *= a.scale);
                    softmax(p);
                }
                let og = &mut o[at * d..(at + heads) * d];
                (c.k.rows_axpy)(sg, heads, &rows[(kv + g) * d..], width, og);
                h = hg;
            }
            for (hh, h) in (h0..h1).enumerate() {
                for (e, &v) in o[hh * d..(hh + 1) * d].iter().enumerate() {
                    // SAFETY: column h·d + e belongs to this thread's head.
                    unsafe { out.write(t, h * d + e, v) };
                }
            }
        }
        Ok(())
    })
}
