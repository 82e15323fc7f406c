//! f32 vector helpers (dot, axpy) and one scaled weight row added to a vector (row_axpy).

use super::load::{load_w, load_w_tail};
use super::*;
use crate::kernels::layout::RowScale;

/// See `Isa::row_axpy`: per block, the coefficient `a · scale` times the decoded weights is
/// fused-added into `y`.
///
/// # Safety
/// As `Isa::row_axpy`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn row_axpy_imp<const D: u8>(
    row: *const u8,
    scale: RowScale<'_>,
    width: usize,
    a: f32,
    y: &mut [f32],
) {
    let k = y.len();
    let py = y.as_mut_ptr();
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let c = _mm512_set1_ps(a * scale.get(cb));
        let mut j = k0;
        while j + L <= k1 {
            // SAFETY: j + 16 <= K: within `y` and the row.
            unsafe {
                let v = _mm512_fmadd_ps(c, load_w::<D>(row, j), _mm512_loadu_ps(py.add(j)));
                _mm512_storeu_ps(py.add(j), v);
            }
            j += L;
        }
        if j < k1 {
            let n = k1 - j;
            let m = tail_mask(n);
            // SAFETY: masked loads and store touch only elements j..k1 <= K.
            unsafe {
                let v = _mm512_fmadd_ps(
                    c,
                    load_w_tail::<D>(row, j, n),
                    _mm512_maskz_loadu_ps(m, py.add(j)),
                );
                _mm512_mask_storeu_ps(py.add(j), m, v);
            }
        }
        k0 = k1;
        cb += 1;
    }
}

/// `Σ a·b` with 4 accumulators (64 columns per step).
///
/// # Safety
/// The CPU has the features; `a.len() == b.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn dot_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut j = 0;
    while j + 4 * L <= n {
        for (u, v) in acc.iter_mut().enumerate() {
            // SAFETY: j + 64 <= n, within both slices.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(j + u * L)),
                    _mm512_loadu_ps(pb.add(j + u * L)),
                )
            };
            *v = _mm512_fmadd_ps(x, y, *v);
        }
        j += 4 * L;
    }
    while j + L <= n {
        // SAFETY: j + 16 <= n.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(j)), _mm512_loadu_ps(pb.add(j))) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        j += L;
    }
    if j < n {
        let m = tail_mask(n - j);
        // SAFETY: masked loads read only elements j..n.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pa.add(j)),
                _mm512_maskz_loadu_ps(m, pb.add(j)),
            )
        };
        acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

/// `y += a·x`, fused.
///
/// # Safety
/// The CPU has the features; `x.len() == y.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn axpy_imp(a: f32, x: &[f32], y: &mut [f32]) {
    let n = y.len();
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let av = _mm512_set1_ps(a);
    let mut j = 0;
    while j + L <= n {
        // SAFETY: j + 16 <= n, within both slices.
        unsafe {
            let v = _mm512_fmadd_ps(av, _mm512_loadu_ps(px.add(j)), _mm512_loadu_ps(py.add(j)));
            _mm512_storeu_ps(py.add(j), v);
        }
        j += L;
    }
    if j < n {
        let m = tail_mask(n - j);
        // SAFETY: masked loads and store touch only elements j..n.
        unsafe {
            let v = _mm512_fmadd_ps(
                av,
                _mm512_maskz_loadu_ps(m, px.add(j)),
                _mm512_maskz_loadu_ps(m, py.add(j)),
            );
            _mm512_mask_storeu_ps(py.add(j), m, v);
        }
    }
}
