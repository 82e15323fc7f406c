//! The matmul kernel: 4 weight rows streamed once each against up to 4 tokens, converting in
//! registers, with software prefetch ahead of each row stream.

use super::super::prefetch::{GroupPrefetch, LinesPrefetch, FAMILY_19H_AHEAD_FP8};
use super::load::*;
use super::{tail_mask, L};
use crate::kernels::driver::{row_at, RowGroup};
use crate::kernels::layout::dt_size;
use std::arch::x86_64::*;

/// The FP8 kernel reads 64 codes per row per step (see `layout::fp8_prepare_x`).
pub(super) const GROUP: usize = 4 * L;

/// `T` token vectors of `x` at column `j` (tokens `x_stride` apart).
///
/// # Safety
/// Each of the `T` tokens has 16 f32 at `j`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn load_x<const T: usize>(x: *const f32, x_stride: usize, j: usize) -> [__m512; T] {
    let mut v = [_mm512_setzero_ps(); T];
    for (t, v) in v.iter_mut().enumerate() {
        // SAFETY: guaranteed by the caller.
        *v = unsafe { _mm512_loadu_ps(x.add(t * x_stride + j)) };
    }
    v
}

/// The first `n < 16` values at column `j` of `T` tokens, zeros beyond.
///
/// # Safety
/// Each of the `T` tokens has `n` f32 at `j`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn load_x_tail<const T: usize>(
    x: *const f32,
    x_stride: usize,
    j: usize,
    n: usize,
) -> [__m512; T] {
    let mut v = [_mm512_setzero_ps(); T];
    for (t, v) in v.iter_mut().enumerate() {
        // SAFETY: the masked load reads only the `n` values the caller guarantees.
        *v = unsafe { _mm512_maskz_loadu_ps(tail_mask(n), x.add(t * x_stride + j)) };
    }
    v
}

/// Adds a block's sums, times the rows' scales of block `cb`, to the totals (shared by the
/// matmul kernels, `fp8_bf16`'s too).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) fn scale_into<const R: usize, const T: usize>(
    g: &RowGroup<'_, R>,
    cb: usize,
    acc: &[[[__m512; T]; R]; 2],
    total: &mut [[__m512; T]; R],
) {
    for r in 0..R {
        let s = _mm512_set1_ps(g.scale[r].get(cb));
        for t in 0..T {
            let a = _mm512_add_ps(acc[0][r][t], acc[1][r][t]);
            total[r][t] = _mm512_fmadd_ps(a, s, total[r][t]);
        }
    }
}

/// The `[R][T]` lane sums of the totals.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) fn reduce<const R: usize, const T: usize>(total: &[[__m512; T]; R]) -> [[f32; T]; R] {
    let mut out = [[0.0; T]; R];
    for r in 0..R {
        for t in 0..T {
            out[r][t] = _mm512_reduce_add_ps(total[r][t]);
        }
    }
    out
}

/// The 64 codes of one row step (`lanes`, 4 codes per i32 lane, code `4i + p` in byte `p` of
/// lane `i`) as f32 by position: `[w0, w1, w2, w3]`, `wp` holding codes `4i + p`.
///
/// Two codes per 16-bit half at a time: an arithmetic shift of each half by 4 decodes the code
/// in its top byte (see [`fp8_top_byte`]). In `lanes` those are positions 3 (upper half) and 1
/// (lower half); in `lanes` moved up one byte, 2 and 0. The upper half's code is in place, and
/// a shift of the i32 lane by 16 brings the lower half's up (zeros below it). Per 64 codes
/// that is one byte move, four shifts and four masks. Before, byte shuffles took the low bytes
/// up and swapped the halves (three shuffles, two shifts, four masks): `[256, 2048]` in L2 on
/// one Zen 4 thread read 29.3 GB/s against 28.2, three rounds each.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn fp8_decode_step(lanes: __m512i) -> [__m512; 4] {
    // The move up is within each 128-bit lane: a lane's byte 0 becomes zero instead of the
    // byte below it, which only ever lands under position 0's code and is masked off.
    let odd = _mm512_srai_epi16::<4>(lanes);
    let even = _mm512_srai_epi16::<4>(_mm512_bslli_epi128::<1>(lanes));
    [
        fp8_upper_half(_mm512_slli_epi32::<16>(even)),
        fp8_upper_half(_mm512_slli_epi32::<16>(odd)),
        fp8_upper_half(even),
        fp8_upper_half(odd),
    ]
}

/// Accumulator sets of the FP8 kernel for `T` tokens: with one token, a set per code position,
/// so that every FMA of a step starts a chain of its own (4·R chains; two sets, a chain of two
/// FMAs per step, read 2-4% less in L2); with more, the R·T chains are enough.
const fn fp8_sets(t: usize) -> usize {
    if t == 1 {
        4
    } else {
        1
    }
}

/// Each row's 64 codes of one step times the token vectors of their positions (`xv[p]` for
/// position `p`), into `acc` (position `p` into set `p % sets`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn fp8_step<const R: usize, const T: usize>(
    lanes: &[__m512i; R],
    xv: &[[__m512; T]; 4],
    acc: &mut [[[__m512; T]; R]; 4],
) {
    for r in 0..R {
        let w = fp8_decode_step(lanes[r]);
        for (p, (w, xv)) in w.iter().zip(xv).enumerate() {
            let set = p % fp8_sets(T);
            for t in 0..T {
                acc[set][r][t] = _mm512_fmadd_ps(*w, xv[t], acc[set][r][t]);
            }
        }
    }
}

/// `Isa::dot_rows` for FP8 and exactly `T` tokens, `x` in the layout of `layout::fp8_prepare_x`
/// and the scales times its factor. Shifts, shuffles and masks only ([`fp8_decode_step`]): no
/// cross-lane widening (the bottleneck of `fp8x16`).
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn dot_rows_fp8<const R: usize, const T: usize>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; T]; R] {
    debug_assert!(!g.lines, "FP8 rows are never in lines");
    let (k, width) = (g.cols, g.width);
    // One byte per weight.
    let prefetch = GroupPrefetch::with_19h_ahead(g.ptr, k, FAMILY_19H_AHEAD_FP8);
    let mut total = [[_mm512_setzero_ps(); T]; R];
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let mut acc = [[[_mm512_setzero_ps(); T]; R]; 4];
        let mut j = k0;
        while j + GROUP <= k1 {
            let mut lanes = [_mm512_setzero_si512(); R];
            for r in 0..R {
                // SAFETY: j + 64 <= K, within every row.
                lanes[r] = unsafe { _mm512_loadu_si512(g.ptr[r].add(j).cast()) };
            }
            prefetch.step(j, GROUP);
            // SAFETY: j + GROUP <= K, within every token of `x`; position `p`'s vector
            // is at j + 16p (`layout::fp8_prepare_x`).
            let xv: [[__m512; T]; 4] =
                std::array::from_fn(|p| unsafe { load_x(x, x_stride, j + p * L) });
            fp8_step(&lanes, &xv, &mut acc);
            j += GROUP;
        }
        while j < k1 {
            let n = L.min(k1 - j);
            let m = if n == L { !0 } else { tail_mask(n) };
            // SAFETY: columns j..j+n <= K exist in every token of `x`.
            let xv = unsafe {
                if n == L {
                    load_x::<T>(x, x_stride, j)
                } else {
                    load_x_tail::<T>(x, x_stride, j, n)
                }
            };
            for r in 0..R {
                // SAFETY: columns j..j+n exist in every row; the masked load reads only those.
                let w = fp8x16_raw(unsafe { _mm_maskz_loadu_epi8(m, g.ptr[r].add(j).cast()) });
                for t in 0..T {
                    acc[0][r][t] = _mm512_fmadd_ps(w, xv[t], acc[0][r][t]);
                }
            }
            j += n;
        }
        // Four sets to the two `scale_into` adds (sets 1-3 are zero for more tokens).
        for r in 0..R {
            for t in 0..T {
                acc[0][r][t] = _mm512_add_ps(acc[0][r][t], acc[2][r][t]);
                acc[1][r][t] = _mm512_add_ps(acc[1][r][t], acc[3][r][t]);
            }
        }
        scale_into(g, cb, &[acc[0], acc[1]], &mut total);
        k0 = k1;
        cb += 1;
    }
    reduce(&total)
}

/// One 16-column step of `dot_rows` into `acc`.
///
/// # Safety
/// Columns `j..j + 16` exist in every row of `g` and every token of `x`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn step<const D: u8, const R: usize, const T: usize, const LINES: bool>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
    j: usize,
    (prefetch, lines): (&GroupPrefetch<R>, &LinesPrefetch),
    acc: &mut [[__m512; T]; R],
) {
    // SAFETY: guaranteed by the caller.
    let xv = unsafe { load_x::<T>(x, x_stride, j) };
    // Rows in lines are one stream (prefetched as one, where the hardware needs help).
    match LINES {
        false => prefetch.step(j * dt_size(D), L * dt_size(D)),
        true => lines.step(j * dt_size(D)),
    }
    let at = row_at::<LINES>(j * dt_size(D));
    for r in 0..R {
        // SAFETY: guaranteed by the caller; `at` is where column `j` of the row lies, and its
        // step does not leave the line.
        let w = unsafe { load_w::<D>(g.ptr[r].add(at), 0) };
        for t in 0..T {
            acc[r][t] = _mm512_fmadd_ps(w, xv[t], acc[r][t]);
        }
    }
}

/// `Isa::dot_rows` for BF16, F16 and F32 and exactly `T` tokens: [`dot_rows_in`] for rows in
/// lines or not.
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn dot_rows<const D: u8, const R: usize, const T: usize>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; T]; R] {
    // SAFETY: forwarded from the caller.
    unsafe {
        match g.lines {
            true => dot_rows_in::<D, R, T, true>(g, x, x_stride),
            false => dot_rows_in::<D, R, T, false>(g, x, x_stride),
        }
    }
}

/// `Isa::dot_rows` for BF16, F16 and F32, exactly `T` tokens and rows in lines (`LINES`: one
/// stream, [`LinesPrefetch`]) or not ([`GroupPrefetch`]). With one
/// token, two accumulator sets (even and odd 16-column steps) give 2·R independent FMA
/// chains; with more, the R·T chains are enough.
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn dot_rows_in<const D: u8, const R: usize, const T: usize, const LINES: bool>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; T]; R] {
    let (k, width) = (g.cols, g.width);
    let prefetch = GroupPrefetch::new(g.ptr, k * dt_size(D));
    let lines = LinesPrefetch::new(g.ptr[0]);
    let mut total = [[_mm512_setzero_ps(); T]; R];
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let mut acc = [[[_mm512_setzero_ps(); T]; R]; 2];
        let mut j = k0;
        if T == 1 {
            while j + 2 * L <= k1 {
                // SAFETY: j + 32 <= K, within every row and token.
                unsafe {
                    step::<D, R, T, LINES>(g, x, x_stride, j, (&prefetch, &lines), &mut acc[0]);
                    step::<D, R, T, LINES>(g, x, x_stride, j + L, (&prefetch, &lines), &mut acc[1]);
                }
                j += 2 * L;
            }
        }
        while j + L <= k1 {
            // SAFETY: j + 16 <= K, within every row and token.
            unsafe { step::<D, R, T, LINES>(g, x, x_stride, j, (&prefetch, &lines), &mut acc[0]) };
            j += L;
        }
        if j < k1 {
            let n = k1 - j;
            // SAFETY: columns j..k1 <= K exist in every token; the masked loads read only
            // those.
            let xv = unsafe { load_x_tail::<T>(x, x_stride, j, n) };
            for r in 0..R {
                // SAFETY: as above, in every row.
                let w = unsafe {
                    load_w_tail::<D>(g.ptr[r].add(row_at::<LINES>(j * dt_size(D))), 0, n)
                };
                for t in 0..T {
                    acc[1][r][t] = _mm512_fmadd_ps(w, xv[t], acc[1][r][t]);
                }
            }
        }
        scale_into(g, cb, &acc, &mut total);
        k0 = k1;
        cb += 1;
    }
    reduce(&total)
}
