//! f32 vector helpers (dot, axpy) and one scaled weight row added to a vector (row_axpy).

use super::load::{load_w8, load_w8_tail, load_x8};
use super::STEP;
use crate::kernels::layout::RowScale;
use std::arch::aarch64::*;

/// See `Isa::row_axpy`: per block, the coefficient `a · scale` times the decoded weights is
/// fused-added into `y`.
///
/// # Safety
/// As `Isa::row_axpy`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn row_axpy_imp<const D: u8>(
    row: *const u8,
    scale: RowScale<'_>,
    width: usize,
    a: f32,
    y: &mut [f32],
) {
    let k = y.len();
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let c = a * scale.get(cb);
        let mut j = k0;
        while j + STEP <= k1 {
            let yj = &mut y[j..j + STEP];
            // SAFETY: j + 8 <= K: within the row (caller) and within `yj` (8 values).
            unsafe {
                let w = load_w8::<D>(row, j);
                let p = yj.as_mut_ptr();
                vst1q_f32(p, vfmaq_n_f32(vld1q_f32(p), w[0], c));
                vst1q_f32(p.add(4), vfmaq_n_f32(vld1q_f32(p.add(4)), w[1], c));
            }
            j += STEP;
        }
        if j < k1 {
            let n = k1 - j;
            let mut out = [0.0f32; STEP];
            // SAFETY: columns j..k1 <= K exist in the row and in `y`; the tail loads read only
            // those, and `out` has room for 8.
            unsafe {
                let w = load_w8_tail::<D>(row, j, n);
                let yv = load_x8(y.as_ptr(), j, n);
                vst1q_f32(out.as_mut_ptr(), vfmaq_n_f32(yv[0], w[0], c));
                vst1q_f32(out.as_mut_ptr().add(4), vfmaq_n_f32(yv[1], w[1], c));
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
