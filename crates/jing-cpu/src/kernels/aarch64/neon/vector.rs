//! f32 vector helpers (dot, axpy) and scaled weight rows added to a vector (row_axpy).

use super::load::{load_w8, load_w8_tail, load_x8};
use super::STEP;
use crate::kernels::driver::AxpyRows;
use std::arch::aarch64::*;

/// See `Isa::row_axpy`: per block, each row's coefficient `a · scale` times its decoded
/// weights is fused-added into `y`, 8 columns of `y` loaded and stored once for all the rows.
///
/// # Safety
/// As `Isa::row_axpy`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn row_axpy_imp<const D: u8, const N: usize>(
    rows: &AxpyRows<'_, N>,
    y: &mut [f32],
) {
    let k = y.len();
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + rows.width);
        let c: [f32; N] = std::array::from_fn(|i| rows.a[i] * rows.scale[i].get(cb));
        let mut j = k0;
        while j + STEP <= k1 {
            let yj = &mut y[j..j + STEP];
            // SAFETY: j + 8 <= K: within every row (caller) and within `yj` (8 values).
            unsafe {
                let p = yj.as_mut_ptr();
                let mut v = [vld1q_f32(p), vld1q_f32(p.add(4))];
                for (&c, &row) in c.iter().zip(&rows.ptr) {
                    let w = load_w8::<D>(row, j);
                    v = [vfmaq_n_f32(v[0], w[0], c), vfmaq_n_f32(v[1], w[1], c)];
                }
                vst1q_f32(p, v[0]);
                vst1q_f32(p.add(4), v[1]);
            }
            j += STEP;
        }
        if j < k1 {
            let n = k1 - j;
            let mut out = [0.0f32; STEP];
            // SAFETY: columns j..k1 <= K exist in every row and in `y`; the tail loads read
            // only those, and `out` has room for 8.
            unsafe {
                let mut v = load_x8(y.as_ptr(), j, n);
                for (&c, &row) in c.iter().zip(&rows.ptr) {
                    let w = load_w8_tail::<D>(row, j, n);
                    v = [vfmaq_n_f32(v[0], w[0], c), vfmaq_n_f32(v[1], w[1], c)];
                }
                vst1q_f32(out.as_mut_ptr(), v[0]);
                vst1q_f32(out.as_mut_ptr().add(4), v[1]);
            }
            y[j..k1].copy_from_slice(&out[..n]);
        }
        k0 = k1;
        cb += 1;
    }
}

/// `Σ a·b` with 4 accumulators (16 columns per step).
///
/// # Safety
/// `a.len() == b.len()`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn dot_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut j = 0;
    while j + 16 <= n {
        for (u, v) in acc.iter_mut().enumerate() {
            // SAFETY: j + 16 <= n, within both slices.
            let (x, y) = unsafe { (vld1q_f32(pa.add(j + 4 * u)), vld1q_f32(pb.add(j + 4 * u))) };
            *v = vfmaq_f32(*v, x, y);
        }
        j += 16;
    }
    while j < n {
        let m = STEP.min(n - j);
        // SAFETY: columns j..j + m <= n exist in both slices; the tail loads read only those.
        let (x, y) = unsafe { (load_x8(pa, j, m), load_x8(pb, j, m)) };
        acc[0] = vfmaq_f32(acc[0], x[0], y[0]);
        acc[1] = vfmaq_f32(acc[1], x[1], y[1]);
        j += m;
    }
    vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ))
}

/// `y += a·x`, fused.
///
/// # Safety
/// `x.len() == y.len()`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn axpy_imp(a: f32, x: &[f32], y: &mut [f32]) {
    let n = y.len();
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let mut j = 0;
    while j + 4 <= n {
        // SAFETY: j + 4 <= n, within both slices.
        unsafe {
            vst1q_f32(
                py.add(j),
                vfmaq_n_f32(vld1q_f32(py.add(j)), vld1q_f32(px.add(j)), a),
            )
        };
        j += 4;
    }
    for k in j..n {
        // SAFETY: k < n, within both slices.
        unsafe { *py.add(k) = a.mul_add(*px.add(k), *py.add(k)) };
    }
}

/// `o_i += Σ_j p[i, j] · kv_j` (`RowsAxpyFn`), 8 columns at a time, as the x86 versions: for
/// up to 8 heads, those columns of their outputs stay in registers while the cache rows go by,
/// each row's two vectors loaded once for all the heads. The last `K % 8` columns take the
/// generic loop (NEON has no masked loads).
///
/// # Safety
/// The CPU has NEON; the shapes were checked (`rows_shape`).
#[target_feature(enable = "neon")]
pub(super) unsafe fn rows_axpy_imp(p: &[f32], m: usize, kv: &[f32], stride: usize, o: &mut [f32]) {
    if m == 0 {
        return;
    }
    let k = o.len() / m;
    let whole = k / STEP * STEP;
    rows_axpy_loops!(
        rows_axpy_block,
        p,
        m,
        kv,
        stride,
        &mut *o,
        whole,
        STEP,
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    if whole < k {
        crate::kernels::generic::rows_axpy_cols(p, m, kv, stride, o, whole..k);
    }
}

/// Heads `h0..h0 + H` and columns `cols` (8 of them) of [`rows_axpy_imp`].
///
/// # Safety
/// As `rows_axpy_imp`; `h0 + H <= m`, `cols` within `0..K` and 8 long.
#[allow(clippy::too_many_arguments, reason = "the block's operands")]
#[inline]
#[target_feature(enable = "neon")]
unsafe fn rows_axpy_block<const H: usize>(
    p: &[f32],
    n: usize,
    h0: usize,
    kv: &[f32],
    stride: usize,
    cols: std::ops::Range<usize>,
    o: &mut [f32],
    k: usize,
) {
    debug_assert_eq!(cols.len(), 8);
    let c = cols.start;
    let (po, pk, pp) = (o.as_mut_ptr(), kv.as_ptr(), p.as_ptr());
    let mut acc = [[vdupq_n_f32(0.0); 2]; H];
    for (h, a) in acc.iter_mut().enumerate() {
        // SAFETY: columns c..c + 8 of head h0 + h's output row lie within `o`.
        unsafe {
            let at = po.add((h0 + h) * k + c);
            a[0] = vld1q_f32(at);
            a[1] = vld1q_f32(at.add(4));
        }
    }
    for j in 0..n {
        // SAFETY: columns c..c + 8 of cache row j < n lie within `kv` (`rows_shape`).
        let (v0, v1) = unsafe {
            let row = pk.add(j * stride + c);
            (vld1q_f32(row), vld1q_f32(row.add(4)))
        };
        for (h, a) in acc.iter_mut().enumerate() {
            // SAFETY: `p` is `[m, n]` and h0 + h < m, j < n.
            let b = vdupq_n_f32(unsafe { *pp.add((h0 + h) * n + j) });
            a[0] = vfmaq_f32(a[0], b, v0);
            a[1] = vfmaq_f32(a[1], b, v1);
        }
    }
    for (h, a) in acc.iter().enumerate() {
        // SAFETY: as for the loads.
        unsafe {
            let at = po.add((h0 + h) * k + c);
            vst1q_f32(at, a[0]);
            vst1q_f32(at.add(4), a[1]);
        }
    }
}
