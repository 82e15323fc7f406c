//! MLA attention over the latent cache. Threads split the heads; each head's W_UK and W_UV are
//! read once per step (as stored, through the kernel table where they are matmul-shaped) and
//! applied to every token of the batch.

use jing_graph::{ExecError, GqaAttention, MlaAttention, MlaForm, UkHead};

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
            o_lat,
            o_h,
            scores,
            xq,
        } = sc;
        // This thread's buffers for all its heads.
        resize(wrow, kvl); //          one row of W_UK[h]
        resize(q_h, t_all * dn); //    q_nope[:, h]        [T, dn]
        resize(q_lat, t_all * kvl); //                     [T, kvl]
        resize(o_lat, t_all * kvl); //                     [T, kvl]
        resize(o_h, t_all * dv); //                        [T, dv]
        for h in h0..h1 {
            let head = &w.heads[h];
            match a.form {
                MlaForm::Absorbed | MlaForm::Auto => {
                    // q_lat[t] = W_UK[h]ᵀ q_nope[t, h]  [T, kvl]: one pass over W_UK[h].
                    match &head.uk {
                        UkHead::Rows(uk) => {
                            q_lat.fill(0.0);
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
                    // o_lat[t] = Σ_s softmax(scale · (q_lat·c_kv[s] + q_pe·k_pe[s])) c_kv[s]
                    o_lat.fill(0.0);
                    for t in 0..t_all {
                        let n_ctx = c.batch.positions[t] + 1;
                        let rows = cache.rows(c.batch.slots[t], a.layer, n_ctx)?;
                        let ql = &q_lat[t * kvl..(t + 1) * kvl];
                        let qp = &q_pe[(t * h_all + h) * dr..][..dr];
                        scores.clear();
                        scores.extend(rows.chunks(width).map(|row| {
                            ((c.k.dot)(ql, &row[..kvl]) + (c.k.dot)(qp, &row[kvl..])) * a.scale
                        }));
                        softmax(scores);
                        let ol = &mut o_lat[t * kvl..(t + 1) * kvl];
                        for (row, &p) in rows.chunks(width).zip(scores.iter()) {
                            (c.k.axpy)(p, &row[..kvl], ol);
                        }
                    }
                    // o[t, h] = W_UV[h] o_lat[t]  [T, dv]
                    let y = OutMatrix::new(o_h, dv);
                    matmul_with(c, &head.uv, o_lat, t_all, 0..dv, &y, xq, None);
                    write_head(&out, o_h, h, dv);
                }
                MlaForm::Expanded => {
                    // Decompress this head's keys and values for each token's context, then plain
                    // attention. Slow (no reuse across tokens); kept as the CPU twin of the form a
                    // backend may pick for long prefills.
                    let (uk, uv) = (w.uk_f32(h), w.uv_f32(h)); // [dn, kvl], [dv, kvl]
                    let w_uk: Vec<&[f32]> = uk.chunks_exact(kvl).collect();
                    let w_uv: Vec<&[f32]> = uv.chunks_exact(kvl).collect();
                    for t in 0..t_all {
                        let n_ctx = c.batch.positions[t] + 1;
                        let rows = cache.rows(c.batch.slots[t], a.layer, n_ctx)?;
                        let qn = &q_nope[(t * h_all + h) * dn..][..dn];
                        let qp = &q_pe[(t * h_all + h) * dr..][..dr];
                        scores.clear();
                        let mut values: Vec<f32> = Vec::with_capacity(n_ctx * dv);
                        for r in rows.chunks(width) {
                            let lat = &r[..kvl];
                            let k_nope: Vec<f32> =
                                w_uk.iter().map(|wk| (c.k.dot)(wk, lat)).collect();
                            scores.push(
                                ((c.k.dot)(qn, &k_nope) + (c.k.dot)(qp, &r[kvl..])) * a.scale,
                            );
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
            }
        }
        Ok(())
    })
}

/// One pool thread's buffers for decode attention (MLA and GQA), kept across nodes and steps.
#[derive(Default)]
struct AttnScratch {
    wrow: Vec<f32>,
    q_h: Vec<f32>,
    q_lat: Vec<f32>,
    o_lat: Vec<f32>,
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
        resize(o, d);
        for t in 0..c.batch.len() {
            let n_ctx = c.batch.positions[t] + 1;
            let rows = cache.rows(c.batch.slots[t], a.layer, n_ctx)?;
            for h in h0..h1 {
                let g = h / group;
                let (k_off, v_off) = (g * d, kv * d + g * d);
                let qh = &q[(t * h_all + h) * d..][..d];
                scores.clear();
                scores.extend(
                    rows.chunks(width)
                        .map(|row| (c.k.dot)(qh, &row[k_off..k_off + d]) * a.scale),
                );
                softmax(scores);
                o.fill(0.0);
                for (row, &p) in rows.chunks(width).zip(scores.iter()) {
                    (c.k.axpy)(p, &row[v_off..v_off + d], o);
                }
                for (e, &v) in o.iter().enumerate() {
                    // SAFETY: column h·d + e belongs to this thread's head.
                    unsafe { out.write(t, h * d + e, v) };
                }
            }
        }
        Ok(())
    })
}
