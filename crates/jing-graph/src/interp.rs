//! The reference interpreter: plain loops, f64 accumulation in every reduction, no threads.
//! It is slow on purpose and exists to be obviously right; every backend is tested against it.

use jing_tensor::Weight;

use crate::{
    select_experts, Backend, Batch, ExecError, Graph, KvCache, MlaAttention, MlaForm, Op, Outputs,
    Tensor,
};

/// The reference backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

enum Value {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

impl Value {
    fn f32(&self) -> &[f32] {
        match self {
            Value::F32(v) => v,
            Value::I32(_) => panic!("expected an f32 value"),
        }
    }
    fn i32(&self) -> &[i32] {
        match self {
            Value::I32(v) => v,
            Value::F32(_) => panic!("expected an i32 value"),
        }
    }
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// `y [m, N] = x [m, K] · Wᵀ` with rows of W dequantized one at a time.
fn matmul(x: &[f32], w: &Weight) -> Vec<f32> {
    let (n, k) = (w.rows(), w.cols());
    let m = x.len() / k;
    let mut y = vec![0.0f32; m * n];
    let mut row = vec![0.0f32; k];
    for r in 0..n {
        w.row_to_f32(r, &mut row);
        for i in 0..m {
            y[i * n + r] = dot64(&x[i * k..(i + 1) * k], &row) as f32;
        }
    }
    y
}

impl Backend for Reference {
    fn name(&self) -> String {
        "reference".into()
    }

    fn execute(
        &self,
        graph: &Graph,
        batch: &Batch,
        cache: &mut KvCache,
    ) -> Result<Outputs, ExecError> {
        graph.validate_batch(batch)?;
        let last_use = graph.last_uses();
        let mut vals: Vec<Option<Value>> = (0..graph.nodes.len()).map(|_| None).collect();
        for (i, node) in graph.nodes.iter().enumerate() {
            let get = |t: &Tensor| vals[t.0].as_ref().expect("input computed earlier");
            let shape = &node.shape;
            let out = match &node.op {
                Op::Embed { table } => {
                    let d = table.cols();
                    let mut y = vec![0.0; batch.len() * d];
                    for (row, &tok) in y.chunks_mut(d).zip(&batch.tokens) {
                        table.row_to_f32(tok as usize, row);
                    }
                    Value::F32(y)
                }
                Op::Input { name } => Value::F32(batch.input(name).expect("validated").to_vec()),
                Op::MatMul { x, w } => Value::F32(matmul(get(x).f32(), w)),
                Op::RmsNorm { x, w, eps } => {
                    let wv = w.to_f32_vec();
                    let d = wv.len();
                    let mut y = get(x).f32().to_vec();
                    for row in y.chunks_mut(d) {
                        let ms = dot64(row, row) / d as f64;
                        let inv = 1.0 / (ms + *eps as f64).sqrt();
                        for (v, g) in row.iter_mut().zip(&wv) {
                            *v = (*v as f64 * inv) as f32 * g;
                        }
                    }
                    Value::F32(y)
                }
                Op::Add { a, b } => Value::F32(
                    get(a)
                        .f32()
                        .iter()
                        .zip(get(b).f32())
                        .map(|(x, y)| x + y)
                        .collect(),
                ),
                Op::AddBias { x, bias } => {
                    let b = bias.to_f32_vec();
                    let mut y = get(x).f32().to_vec();
                    for row in y.chunks_mut(b.len()) {
                        row.iter_mut().zip(&b).for_each(|(v, c)| *v += c);
                    }
                    Value::F32(y)
                }
                Op::Mul { a, b } => Value::F32(
                    get(a)
                        .f32()
                        .iter()
                        .zip(get(b).f32())
                        .map(|(x, y)| x * y)
                        .collect(),
                ),
                Op::Scale { x, s } => Value::F32(get(x).f32().iter().map(|v| v * s).collect()),
                Op::SiluMul { gate, up } => Value::F32(
                    get(gate)
                        .f32()
                        .iter()
                        .zip(get(up).f32())
                        .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                        .collect(),
                ),
                Op::Sigmoid { x } => Value::F32(
                    get(x)
                        .f32()
                        .iter()
                        .map(|&v| 1.0 / (1.0 + (-v).exp()))
                        .collect(),
                ),
                Op::Softmax { x } => {
                    let d = *shape.last().expect("dim");
                    let mut y = get(x).f32().to_vec();
                    y.chunks_mut(d).for_each(softmax64);
                    Value::F32(y)
                }
                Op::Slice { x, start, len } => {
                    let xv = get(x).f32();
                    let d = graph.node(*x).shape.last().copied().expect("dim");
                    Value::F32(
                        xv.chunks(d)
                            .flat_map(|r| r[*start..start + len].iter().copied())
                            .collect(),
                    )
                }
                Op::Concat { a, b } => {
                    let da = *graph.node(*a).shape.last().expect("dim");
                    let db = *graph.node(*b).shape.last().expect("dim");
                    let (av, bv) = (get(a).f32(), get(b).f32());
                    Value::F32(
                        av.chunks(da)
                            .zip(bv.chunks(db))
                            .flat_map(|(x, y)| x.iter().chain(y).copied())
                            .collect(),
                    )
                }
                Op::Reshape { x } => match get(x) {
                    Value::F32(v) => Value::F32(v.clone()),
                    Value::I32(v) => Value::I32(v.clone()),
                },
                Op::Rope { x, freqs } => {
                    let mut y = get(x).f32().to_vec();
                    let (h, d) = (shape[1], shape[2]);
                    for (t, tok) in y.chunks_mut(h * d).enumerate() {
                        for head in tok.chunks_mut(d) {
                            freqs.apply(head, batch.positions[t]);
                        }
                    }
                    Value::F32(y)
                }
                Op::TakeRows { x, rows } => {
                    let w = graph.node(*x).numel() / graph.node(*x).shape[0];
                    match get(x) {
                        Value::F32(v) => Value::F32(
                            rows.iter()
                                .flat_map(|&r| v[r * w..(r + 1) * w].iter().copied())
                                .collect(),
                        ),
                        Value::I32(v) => Value::I32(
                            rows.iter()
                                .flat_map(|&r| v[r * w..(r + 1) * w].iter().copied())
                                .collect(),
                        ),
                    }
                }
                Op::MoeSelect {
                    scores,
                    bias,
                    top_k,
                    n_group,
                    topk_group,
                    group_score,
                } => {
                    let bias = bias.as_ref().map(|b| b.to_f32_vec());
                    let e = *graph.node(*scores).shape.last().expect("dim");
                    let mut ids = vec![0i32; shape[0] * top_k];
                    for (s, o) in get(scores).f32().chunks(e).zip(ids.chunks_mut(*top_k)) {
                        select_experts(
                            s,
                            bias.as_deref(),
                            *top_k,
                            *n_group,
                            *topk_group,
                            *group_score,
                            o,
                        );
                    }
                    Value::I32(ids)
                }
                Op::GatherCols { x, ids } => {
                    let e = *graph.node(*x).shape.last().expect("dim");
                    let k = shape[1];
                    let (xv, iv) = (get(x).f32(), get(ids).i32());
                    Value::F32(
                        (0..shape[0] * k)
                            .map(|j| xv[(j / k) * e + iv[j] as usize])
                            .collect(),
                    )
                }
                Op::NormalizeRows { x } => {
                    let d = *shape.last().expect("dim");
                    let mut y = get(x).f32().to_vec();
                    for row in y.chunks_mut(d) {
                        let s = row.iter().map(|&v| v as f64).sum::<f64>() + 1e-20;
                        row.iter_mut().for_each(|v| *v = (*v as f64 / s) as f32);
                    }
                    Value::F32(y)
                }
                Op::MatMulId { x, experts, ids } => {
                    let (t, k, n) = (shape[0], shape[1], shape[2]);
                    let kin = experts[0].cols();
                    let shared = graph.node(*x).shape.len() == 2;
                    let (xv, iv) = (get(x).f32(), get(ids).i32());
                    let mut y = vec![0.0f32; t * k * n];
                    for j in 0..t * k {
                        let xrow = if shared {
                            &xv[(j / k) * kin..(j / k + 1) * kin]
                        } else {
                            &xv[j * kin..(j + 1) * kin]
                        };
                        let r = matmul(xrow, &experts[iv[j] as usize]);
                        y[j * n..(j + 1) * n].copy_from_slice(&r);
                    }
                    Value::F32(y)
                }
                Op::WeightedSum { x, w } => {
                    let xs = &graph.node(*x).shape;
                    let (t, k, d) = (xs[0], xs[1], xs[2]);
                    let (xv, wv) = (get(x).f32(), get(w).f32());
                    let mut y = vec![0.0f32; t * d];
                    for ti in 0..t {
                        for c in 0..d {
                            let s: f64 = (0..k)
                                .map(|j| wv[ti * k + j] as f64 * xv[(ti * k + j) * d + c] as f64)
                                .sum();
                            y[ti * d + c] = s as f32;
                        }
                    }
                    Value::F32(y)
                }
                Op::KvWrite {
                    layer,
                    left: c_kv,
                    right: k_pe,
                } => {
                    let rows = {
                        let (a, b) = (get(c_kv).f32(), get(k_pe).f32());
                        let da = *graph.node(*c_kv).shape.last().expect("dim");
                        let db = *graph.node(*k_pe).shape.last().expect("dim");
                        a.chunks(da)
                            .zip(b.chunks(db))
                            .flat_map(|(x, y)| x.iter().chain(y).copied())
                            .collect::<Vec<f32>>()
                    };
                    let w = shape[1];
                    for (t, row) in rows.chunks(w).enumerate() {
                        cache.write(batch.slots[t], *layer, batch.positions[t], row)?;
                    }
                    Value::F32(rows)
                }
                Op::Attention(a) => Value::F32(gqa_reference(a, get(&a.q).f32(), batch, cache)?),
                Op::MlaAttention(a) => Value::F32(mla_reference(
                    a,
                    get(&a.q_nope).f32(),
                    get(&a.q_pe).f32(),
                    batch,
                    cache,
                )?),
            };
            vals[i] = Some(out);
            for t in node.op.inputs() {
                if last_use[t.0] == i {
                    vals[t.0] = None;
                }
            }
        }
        let values = graph
            .outputs
            .iter()
            .map(|(name, t)| {
                // Ids come out as their numeric values.
                let v = match vals[t.0].as_ref().expect("output computed") {
                    Value::F32(v) => v.clone(),
                    Value::I32(v) => v.iter().map(|&x| x as f32).collect(),
                };
                (name.clone(), graph.node(*t).shape.clone(), v)
            })
            .collect();
        Ok(Outputs { values })
    }
}

fn softmax64(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    for (v, x) in row.iter_mut().zip(e) {
        *v = (x / s) as f32;
    }
}

/// MLA attention in either form (see [`MlaAttention`]); `Auto` means absorbed here.
fn mla_reference(
    a: &MlaAttention,
    q_nope: &[f32],
    q_pe: &[f32],
    batch: &Batch,
    cache: &KvCache,
) -> Result<Vec<f32>, ExecError> {
    let (h, dn, dr, dv, c) = (a.n_heads, a.nope_dim, a.rope_dim, a.v_dim, a.kv_lora);
    let width = c + dr;
    // W_UK[h] [dn, c] and W_UV[h] [dv, c], dequantized.
    let uk: Vec<Vec<f32>> = (0..h).map(|head| a.w.uk_f32(head)).collect();
    let uv: Vec<Vec<f32>> = (0..h).map(|head| a.w.uv_f32(head)).collect();
    let w_uk = |head: usize, d: usize| &uk[head][d * c..][..c];
    let w_uv = |head: usize, e: usize| &uv[head][e * c..][..c];
    let mut out = vec![0.0f32; batch.len() * h * dv];
    for t in 0..batch.len() {
        let n_ctx = batch.positions[t] + 1;
        let rows = cache.rows(batch.slots[t], a.layer, n_ctx)?;
        for head in 0..h {
            let qn = &q_nope[(t * h + head) * dn..][..dn];
            let qp = &q_pe[(t * h + head) * dr..][..dr];
            let mut scores: Vec<f64> = Vec::with_capacity(n_ctx);
            let o: Vec<f64> = match a.form {
                MlaForm::Absorbed | MlaForm::Auto => {
                    // q_lat = W_UKᵀ q_nope  [c]
                    let mut q_lat = vec![0.0f64; c];
                    for (d, &qv) in qn.iter().enumerate() {
                        for (l, &wv) in q_lat.iter_mut().zip(w_uk(head, d)) {
                            *l += qv as f64 * wv as f64;
                        }
                    }
                    let q_lat: Vec<f32> = q_lat.into_iter().map(|v| v as f32).collect();
                    for row in rows.chunks(width) {
                        let s = dot64(&q_lat, &row[..c]) + dot64(qp, &row[c..]);
                        scores.push(s * a.scale as f64);
                    }
                    let p = softmax_f64(&scores);
                    // o_lat = Σ_s p_s c_kv[s]  [c];  o = W_UV o_lat  [dv]
                    let mut o_lat = vec![0.0f64; c];
                    for (row, &ps) in rows.chunks(width).zip(&p) {
                        for (l, &v) in o_lat.iter_mut().zip(&row[..c]) {
                            *l += ps * v as f64;
                        }
                    }
                    let o_lat: Vec<f32> = o_lat.into_iter().map(|v| v as f32).collect();
                    (0..dv).map(|e| dot64(w_uv(head, e), &o_lat)).collect()
                }
                MlaForm::Expanded => {
                    // k_nope[s] = W_UK c_kv[s], v[s] = W_UV c_kv[s], then plain attention.
                    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(n_ctx);
                    for row in rows.chunks(width) {
                        let lat = &row[..c];
                        let k_nope: f64 = (0..dn)
                            .map(|d| qn[d] as f64 * (dot64(w_uk(head, d), lat) as f32) as f64)
                            .sum();
                        scores.push((k_nope + dot64(qp, &row[c..])) * a.scale as f64);
                        vs.push(
                            (0..dv)
                                .map(|e| dot64(w_uv(head, e), lat) as f32 as f64)
                                .collect(),
                        );
                    }
                    let p = softmax_f64(&scores);
                    (0..dv)
                        .map(|e| vs.iter().zip(&p).map(|(v, ps)| v[e] * ps).sum())
                        .collect()
                }
            };
            for (dst, v) in out[(t * h + head) * dv..][..dv].iter_mut().zip(o) {
                *dst = v as f32;
            }
        }
    }
    Ok(out)
}

fn softmax_f64(s: &[f64]) -> Vec<f64> {
    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|&v| (v - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

/// Grouped-query attention (see [`crate::GqaAttention`]).
fn gqa_reference(
    a: &crate::GqaAttention,
    q: &[f32],
    batch: &Batch,
    cache: &KvCache,
) -> Result<Vec<f32>, ExecError> {
    let (h, kv, d) = (a.n_heads, a.n_kv_heads, a.head_dim);
    let group = h / kv;
    let width = 2 * kv * d;
    let mut out = vec![0.0f32; batch.len() * h * d];
    for t in 0..batch.len() {
        let n_ctx = batch.positions[t] + 1;
        let rows = cache.rows(batch.slots[t], a.layer, n_ctx)?;
        for head in 0..h {
            let g = head / group;
            let qh = &q[(t * h + head) * d..][..d];
            let scores: Vec<f64> = rows
                .chunks(width)
                .map(|row| dot64(qh, &row[g * d..(g + 1) * d]) * a.scale as f64)
                .collect();
            let p = softmax_f64(&scores);
            for e in 0..d {
                let v: f64 = rows
                    .chunks(width)
                    .zip(&p)
                    .map(|(row, ps)| ps * row[kv * d + g * d + e] as f64)
                    .sum();
                out[(t * h + head) * d + e] = v as f32;
            }
        }
    }
    Ok(out)
}
