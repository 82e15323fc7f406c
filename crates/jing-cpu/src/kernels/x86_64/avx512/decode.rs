//! Decode (m = 1): 4 weight rows streamed once each against one token, converting in
//! registers, with software prefetch ahead of each row stream.

use super::load::*;
use super::{tail_mask, L};
use crate::kernels::driver::RowGroup;
use crate::kernels::layout::dt_size;
use std::arch::x86_64::*;

/// How far ahead (bytes) each decode row stream prefetches into L1. Measured on Zen 5: the
/// hardware prefetchers alone leave BF16 decode at ~60% of a plain read loop's bandwidth,
/// prefetching brings it to ~75%; 2 KiB was best among 0.5..8 KiB (and L1 vs L2 hints made no
/// difference).
pub(super) const PREFETCH: usize = 2048;

/// Prefetch the lines `PREFETCH` bytes past `row[at..at + len]` (at most one per 64 bytes;
/// for steps shorter than a line, only from steps that start a line).
#[inline(always)]
pub(super) fn prefetch_ahead(row: *const u8, at: usize, len: usize) {
    if len >= 64 || at.is_multiple_of(64) {
        let mut o = 0;
        while o < len.max(1) {
            // SAFETY: a prefetch is a hint, never a memory access: any address is allowed
            // (`wrapping_add` keeps the pointer arithmetic itself defined).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(at + PREFETCH + o).cast()) };
            o += 64;
        }
    }
}

/// FP8 decode reads 64 codes per row per step (see `layout::fp8_decode_x`).
pub(super) const GROUP: usize = 4 * L;

/// `Isa::dot_rows` for FP8, `x` in the layout of `layout::fp8_decode_x` and the scales times
/// its factor. Shifts and masks only: no cross-lane widening (the bottleneck of `fp8x16`).
///
/// # Safety
/// As `Isa::dot_rows`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn dot_rows_fp8<const R: usize>(g: &RowGroup<'_, R>, x: *const f32) -> [f32; R] {
    let (k, width) = (g.cols, g.width);
    let mut total = [_mm512_setzero_ps(); R];
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let mut a0 = [_mm512_setzero_ps(); R];
        let mut a1 = [_mm512_setzero_ps(); R];
        let mut j = k0;
        while j + GROUP <= k1 {
            // SAFETY: j + 64 <= K, within `x` and every row.
            let xs = unsafe {
                [
                    _mm512_loadu_ps(x.add(j)),
                    _mm512_loadu_ps(x.add(j + L)),
                    _mm512_loadu_ps(x.add(j + 2 * L)),
                    _mm512_loadu_ps(x.add(j + 3 * L)),
                ]
            };
            for r in 0..R {
                // SAFETY: as above.
                let lane = unsafe { _mm512_loadu_si512(g.ptr[r].add(j).cast()) };
                prefetch_ahead(g.ptr[r], j, GROUP);
                let w0 = fp8_top_byte(_mm512_slli_epi32::<24>(lane));
                let w1 = fp8_top_byte(_mm512_slli_epi32::<16>(lane));
                let w2 = fp8_top_byte(_mm512_slli_epi32::<8>(lane));
                let w3 = fp8_top_byte(lane);
                a0[r] = _mm512_fmadd_ps(w0, xs[0], a0[r]);
                a1[r] = _mm512_fmadd_ps(w1, xs[1], a1[r]);
                a0[r] = _mm512_fmadd_ps(w2, xs[2], a0[r]);
                a1[r] = _mm512_fmadd_ps(w3, xs[3], a1[r]);
            }
            j += GROUP;
        }
        while j + L <= k1 {
            // SAFETY: j + 16 <= K.
            let x0 = unsafe { _mm512_loadu_ps(x.add(j)) };
            for r in 0..R {
                // SAFETY: as above.
                let w0 = fp8x16_raw(unsafe { _mm_loadu_si128(g.ptr[r].add(j).cast()) });
                a0[r] = _mm512_fmadd_ps(w0, x0, a0[r]);
            }
            j += L;
        }
        if j < k1 {
            let m = tail_mask(k1 - j);
            // SAFETY: the masked loads read only elements j..k1 <= K.
            let x0 = unsafe { _mm512_maskz_loadu_ps(m, x.add(j)) };
            for r in 0..R {
                // SAFETY: as above.
                let w1 = fp8x16_raw(unsafe { _mm_maskz_loadu_epi8(m, g.ptr[r].add(j).cast()) });
                a1[r] = _mm512_fmadd_ps(w1, x0, a1[r]);
            }
        }
        for r in 0..R {
            let s = _mm512_set1_ps(g.scale[r].get(cb));
            total[r] = _mm512_fmadd_ps(_mm512_add_ps(a0[r], a1[r]), s, total[r]);
        }
        k0 = k1;
        cb += 1;
    }
    let mut out = [0.0; R];
    for (o, t) in out.iter_mut().zip(total) {
        *o = _mm512_reduce_add_ps(t);
    }
    out
}

/// See `Isa::dot_rows`. Two accumulators per row (even and odd 16-column steps) give 2·R
/// independent FMA chains; a block's sum is scaled into the row's total at the block's end.
///
/// # Safety
/// As `Isa::dot_rows`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn dot_rows<const D: u8, const R: usize>(
    g: &RowGroup<'_, R>,
    x: *const f32,
) -> [f32; R] {
    let (k, width) = (g.cols, g.width);
    let mut total = [_mm512_setzero_ps(); R];
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let mut a0 = [_mm512_setzero_ps(); R];
        let mut a1 = [_mm512_setzero_ps(); R];
        let mut j = k0;
        while j + 2 * L <= k1 {
            // SAFETY: j + 32 <= K, within `x` and every row.
            let (x0, x1) = unsafe { (_mm512_loadu_ps(x.add(j)), _mm512_loadu_ps(x.add(j + L))) };
            for r in 0..R {
                // SAFETY: as above.
                let (w0, w1) = unsafe { (load_w::<D>(g.ptr[r], j), load_w::<D>(g.ptr[r], j + L)) };
                prefetch_ahead(g.ptr[r], j * dt_size(D), 2 * L * dt_size(D));
                a0[r] = _mm512_fmadd_ps(w0, x0, a0[r]);
                a1[r] = _mm512_fmadd_ps(w1, x1, a1[r]);
            }
            j += 2 * L;
        }
        if j + L <= k1 {
            // SAFETY: j + 16 <= K.
            let x0 = unsafe { _mm512_loadu_ps(x.add(j)) };
            for r in 0..R {
                // SAFETY: as above.
                let w0 = unsafe { load_w::<D>(g.ptr[r], j) };
                a0[r] = _mm512_fmadd_ps(w0, x0, a0[r]);
            }
            j += L;
        }
        if j < k1 {
            let n = k1 - j;
            // SAFETY: the masked loads read only elements j..k1 <= K.
            let x0 = unsafe { _mm512_maskz_loadu_ps(tail_mask(n), x.add(j)) };
            for r in 0..R {
                // SAFETY: as above.
                let w1 = unsafe { load_w_tail::<D>(g.ptr[r], j, n) };
                a1[r] = _mm512_fmadd_ps(w1, x0, a1[r]);
            }
        }
        for r in 0..R {
            let s = _mm512_set1_ps(g.scale[r].get(cb));
            total[r] = _mm512_fmadd_ps(_mm512_add_ps(a0[r], a1[r]), s, total[r]);
        }
        k0 = k1;
        cb += 1;
    }
    let mut out = [0.0; R];
    for (o, t) in out.iter_mut().zip(total) {
        *o = _mm512_reduce_add_ps(t);
    }
    out
}
