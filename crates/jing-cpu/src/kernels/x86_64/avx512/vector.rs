//! f32 vector helpers (dot, axpy) and scaled weight rows added to a vector (row_axpy).

use super::super::prefetch::GroupPrefetch;
use super::load::{load_w, load_w_tail};
use super::*;
use crate::kernels::driver::AxpyRows;
use crate::kernels::layout::dt_size;

/// See `Isa::row_axpy`: per block, each row's coefficient `a · scale` times its decoded
/// weights is fused-added into `y`, 16 columns of `y` loaded and stored once for all the rows.
///
/// # Safety
/// As `Isa::row_axpy`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn row_axpy_imp<const D: u8, const N: usize>(
    rows: &AxpyRows<'_, N>,
    y: &mut [f32],
) {
    let k = y.len();
    let py = y.as_mut_ptr();
    // The rows go side by side, a piece of each per step: the hardware prefetcher lost them
    // (one layer's W_UK rows of a V3-shaped FP8 checkpoint, as stored: 1.6x the time of one
    // row after another without this). The next groups' bytes go ahead in address order.
    let prefetch = GroupPrefetch::new(rows.ptr, k * dt_size(D));
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + rows.width);
        let c: [__m512; N] =
            std::array::from_fn(|i| _mm512_set1_ps(rows.a[i] * rows.scale[i].get(cb)));
        // SAFETY: k0..k1 are columns of K, within one scale block.
        unsafe { axpy_cols::<D, N>(&rows.ptr, &c, k0..k1, py, &prefetch) };
        k0 = k1;
        cb += 1;
    }
}

/// Columns `cols` of [`row_axpy_imp`] (within one scale block): each row's coefficient `c[i]`
/// times its decoded weights fused-added into `y` (at `py`), 16 columns at a time, the last
/// ones masked.
///
/// # Safety
/// As `Isa::row_axpy`; `cols` are columns of every row and of `y`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn axpy_cols<const D: u8, const N: usize>(
    rows: &[*const u8; N],
    c: &[__m512; N],
    cols: Range<usize>,
    py: *mut f32,
    prefetch: &GroupPrefetch<N>,
) {
    let mut j = cols.start;
    while j + L <= cols.end {
        prefetch.step(j * dt_size(D), L * dt_size(D));
        // SAFETY: j + 16 <= cols.end: within `y` and every row.
        unsafe {
            let mut v = _mm512_loadu_ps(py.add(j));
            for (&c, &row) in c.iter().zip(rows) {
                v = _mm512_fmadd_ps(c, load_w::<D>(row, j), v);
            }
            _mm512_storeu_ps(py.add(j), v);
        }
        j += L;
    }
    if j < cols.end {
        let n = cols.end - j;
        let m = tail_mask(n);
        // SAFETY: masked loads and store touch only elements j..cols.end.
        unsafe {
            let mut v = _mm512_maskz_loadu_ps(m, py.add(j));
            for (&c, &row) in c.iter().zip(rows) {
                v = _mm512_fmadd_ps(c, load_w_tail::<D>(row, j, n), v);
            }
            _mm512_mask_storeu_ps(py.add(j), m, v);
        }
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

/// `o_i += Σ_j p[i, j] · kv_j` (`RowsAxpyFn`), 32 columns at a time: for up to 8 heads, those
/// columns of their outputs stay in registers while the cache rows go by, each row's two
/// vectors loaded once for all the heads and fused-multiply-added with each head's
/// probability. Row by row in order, as the generic version, with one rounding per step
/// instead of two. (One axpy per head and row loaded and stored the outputs every time: three
/// memory accesses per multiply-add.)
///
/// # Safety
/// The CPU has the features; the shapes were checked (`rows_shape`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn rows_axpy_imp(p: &[f32], m: usize, kv: &[f32], stride: usize, o: &mut [f32]) {
    if m == 0 {
        return;
    }
    let k = o.len() / m;
    rows_axpy_loops!(
        rows_axpy_block,
        p,
        m,
        kv,
        stride,
        o,
        k,
        2 * L,
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
}

/// Heads `h0..h0 + H` and columns `cols` (at most 32) of [`rows_axpy_imp`].
///
/// # Safety
/// As `rows_axpy_imp`; `h0 + H <= m`, `cols` within `0..K`, `cols.len() <= 32`.
#[allow(clippy::too_many_arguments, reason = "the block's operands")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn rows_axpy_block<const H: usize>(
    p: &[f32],
    n: usize,
    h0: usize,
    kv: &[f32],
    stride: usize,
    cols: Range<usize>,
    o: &mut [f32],
    k: usize,
) {
    let len = cols.len();
    let mask = |from: usize| -> __mmask16 {
        if len >= from + L {
            !0
        } else if len > from {
            tail_mask(len - from)
        } else {
            0
        }
    };
    let (m0, m1) = (mask(0), mask(L));
    let (po, pk, pp) = (o.as_mut_ptr(), kv.as_ptr(), p.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); 2]; H];
    for (h, a) in acc.iter_mut().enumerate() {
        let at = po.wrapping_add((h0 + h) * k + cols.start);
        // SAFETY: the masks select columns `cols` of head h0 + h's output row (within `o`);
        // masked-off lanes are not read.
        unsafe {
            a[0] = _mm512_maskz_loadu_ps(m0, at);
            a[1] = _mm512_maskz_loadu_ps(m1, at.wrapping_add(L));
        }
    }
    for j in 0..n {
        let row = pk.wrapping_add(j * stride + cols.start);
        // SAFETY: columns `cols` of cache row j < n lie within `kv` (`rows_shape`); masked-off
        // lanes are not read.
        let (v0, v1) = unsafe {
            (
                _mm512_maskz_loadu_ps(m0, row),
                _mm512_maskz_loadu_ps(m1, row.wrapping_add(L)),
            )
        };
        for (h, a) in acc.iter_mut().enumerate() {
            // SAFETY: `p` is `[m, n]` and h0 + h < m, j < n.
            let b = _mm512_set1_ps(unsafe { *pp.add((h0 + h) * n + j) });
            a[0] = _mm512_fmadd_ps(b, v0, a[0]);
            a[1] = _mm512_fmadd_ps(b, v1, a[1]);
        }
    }
    for (h, a) in acc.iter().enumerate() {
        let at = po.wrapping_add((h0 + h) * k + cols.start);
        // SAFETY: as for the loads.
        unsafe {
            _mm512_mask_storeu_ps(at, m0, a[0]);
            _mm512_mask_storeu_ps(at.wrapping_add(L), m1, a[1]);
        }
    }
}
