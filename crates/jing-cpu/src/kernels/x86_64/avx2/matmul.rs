//! The matmul kernel: 4 weight rows streamed once each against up to 2 tokens, converting in
//! registers, with software prefetch ahead of each row stream. (16 registers do not hold
//! 4 x 4 accumulators; 3 or 4 tokens take two passes, the second from cache.)

use super::super::prefetch::{GroupPrefetch, LinesPrefetch};
use super::load::*;
use super::{hsum, tail_mask, L};
use crate::kernels::driver::{row_at, RowGroup};
use crate::kernels::layout::dt_size;
use std::arch::x86_64::*;

/// The FP8 kernel reads 32 codes per row per step (see `layout::fp8_prepare_x`).
pub(super) const GROUP: usize = 4 * L;

/// `T` token vectors of `x` at column `j` (tokens `x_stride` apart); only the first `n <= 8`
/// columns are read when `n < 8`, zeros beyond.
///
/// # Safety
/// Each of the `T` tokens has `n` f32 at `j`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_x<const T: usize>(
    x: *const f32,
    x_stride: usize,
    j: usize,
    n: usize,
) -> [__m256; T] {
    let mut v = [_mm256_setzero_ps(); T];
    for (t, v) in v.iter_mut().enumerate() {
        let p = x.wrapping_add(t * x_stride + j);
        // SAFETY: the caller guarantees `n` values at `p`; the masked load reads only those.
        *v = unsafe {
            if n >= L {
                _mm256_loadu_ps(p)
            } else {
                _mm256_maskload_ps(p, tail_mask(n))
            }
        };
    }
    v
}

/// Adds a block's sums, times the rows' scales of block `cb`, to the totals (shared by both
/// matmul kernels).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_into<const R: usize, const T: usize>(
    g: &RowGroup<'_, R>,
    cb: usize,
    acc: &[[[__m256; T]; R]; 2],
    total: &mut [[__m256; T]; R],
) {
    for r in 0..R {
        let s = _mm256_set1_ps(g.scale[r].get(cb));
        for t in 0..T {
            let a = _mm256_add_ps(acc[0][r][t], acc[1][r][t]);
            total[r][t] = _mm256_fmadd_ps(a, s, total[r][t]);
        }
    }
}

/// The `[R][T]` lane sums of the totals.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce<const R: usize, const T: usize>(total: &[[__m256; T]; R]) -> [[f32; T]; R] {
    let mut out = [[0.0; T]; R];
    for r in 0..R {
        for t in 0..T {
            out[r][t] = hsum(total[r][t]);
        }
    }
    out
}

/// The 32 codes of one row step (`lanes`, code `4i + p` in byte `p` of i32 lane `i`) as f32 by
/// position: `[w0, w1, w2, w3]`, `wp` holding codes `4i + p`.
///
/// Two codes per 16-bit half at a time: an arithmetic shift of each half by 4 decodes the code
/// in its top byte (see [`fp8_top_byte`]). In `lanes` those are positions 3 (upper half) and 1
/// (lower half); in `lanes` moved up one byte, 2 and 0. The upper half's code is in place, and
/// a shift of the i32 lane by 16 brings the lower half's up (zeros below it). Per 32 codes that
/// is one byte move, four shifts and four masks, where shifting each i32 lane by itself took
/// three shifts to bring each position to the top, four to decode and four masks:
/// `[256, 2048]` in L2 on one Zen 4 thread read 20.7 GB/s against 20.2, three rounds each.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fp8_decode_step(lanes: __m256i) -> [__m256; 4] {
    // The move up is within each 128-bit lane: a lane's byte 0 becomes zero instead of the
    // byte below it, which only ever lands under position 0's code and is masked off.
    let odd = _mm256_srai_epi16::<4>(lanes);
    let even = _mm256_srai_epi16::<4>(_mm256_bslli_epi128::<1>(lanes));
    [
        fp8_upper_half(_mm256_slli_epi32::<16>(even)),
        fp8_upper_half(_mm256_slli_epi32::<16>(odd)),
        fp8_upper_half(even),
        fp8_upper_half(odd),
    ]
}

/// `Isa::dot_rows` for FP8 and exactly `T <= 2` tokens, `x` in the layout of
/// `layout::fp8_prepare_x` and the scales times its factor. Shifts and masks only: no widening
/// conversions. With one token, two accumulator sets (even and odd code positions) give 2·R
/// independent FMA chains; with two, the R·T chains are enough.
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_rows_fp8<const R: usize, const T: usize>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; T]; R] {
    let odd = if T == 1 { 1 } else { 0 }; // the accumulator set of odd positions
    debug_assert!(!g.lines, "FP8 rows are never in lines");
    let (k, width) = (g.cols, g.width);
    let prefetch = GroupPrefetch::new(g.ptr, k); // one byte per weight
    let mut total = [[_mm256_setzero_ps(); T]; R];
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let mut acc = [[[_mm256_setzero_ps(); T]; R]; 2];
        let mut j = k0;
        while j + GROUP <= k1 {
            let mut lanes = [_mm256_setzero_si256(); R];
            for r in 0..R {
                // SAFETY: j + 32 <= K, within every row.
                lanes[r] = unsafe { _mm256_loadu_si256(g.ptr[r].add(j).cast()) };
            }
            prefetch.step(j, GROUP);
            // SAFETY: j + GROUP <= K, within every token of `x`; position `p`'s vector is at
            // j + 8p (`layout::fp8_prepare_x`).
            let xv: [[__m256; T]; 4] =
                std::array::from_fn(|p| unsafe { load_x(x, x_stride, j + p * L, L) });
            for r in 0..R {
                let w = fp8_decode_step(lanes[r]);
                for (p, (w, xv)) in w.iter().zip(&xv).enumerate() {
                    // Odd positions into the second set (with one token).
                    let set = if p % 2 == 1 { odd } else { 0 };
                    for t in 0..T {
                        acc[set][r][t] = _mm256_fmadd_ps(*w, xv[t], acc[set][r][t]);
                    }
                }
            }
            j += GROUP;
        }
        while j < k1 {
            let n = L.min(k1 - j);
            // SAFETY: columns j..j+n <= K exist in every token of `x`.
            let xv = unsafe { load_x::<T>(x, x_stride, j, n) };
            for r in 0..R {
                // SAFETY: columns j..j+n exist in every row.
                let w = unsafe { fp8x8_raw(g.ptr[r].add(j), n) };
                for t in 0..T {
                    acc[0][r][t] = _mm256_fmadd_ps(w, xv[t], acc[0][r][t]);
                }
            }
            j += n;
        }
        scale_into(g, cb, &acc, &mut total);
        k0 = k1;
        cb += 1;
    }
    reduce(&total)
}

/// One 8-column step of `dot_rows` into `acc`.
///
/// # Safety
/// Columns `j..j + 8` exist in every row of `g` and every token of `x`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn step<const D: u8, const R: usize, const T: usize, const LINES: bool>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
    j: usize,
    (prefetch, lines): (&GroupPrefetch<R>, &LinesPrefetch),
    acc: &mut [[__m256; T]; R],
) {
    // SAFETY: guaranteed by the caller.
    let xv = unsafe { load_x::<T>(x, x_stride, j, L) };
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
            acc[r][t] = _mm256_fmadd_ps(w, xv[t], acc[r][t]);
        }
    }
}

/// `Isa::dot_rows` for BF16, F16 and F32 and exactly `T` tokens: [`dot_rows_in`] for rows in
/// lines or not.
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
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

/// `Isa::dot_rows` for BF16, F16 and F32, exactly `T <= 2` tokens and rows in lines (`LINES`: one
/// stream, [`LinesPrefetch`]) or not ([`GroupPrefetch`]). With one
/// token, two accumulator sets (even and odd 8-column steps) give 2·R independent FMA
/// chains; with two, the R·T chains are enough.
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_in<const D: u8, const R: usize, const T: usize, const LINES: bool>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; T]; R] {
    let (k, width) = (g.cols, g.width);
    let prefetch = GroupPrefetch::new(g.ptr, k * dt_size(D));
    let lines = LinesPrefetch::new(g.ptr[0]);
    let mut total = [[_mm256_setzero_ps(); T]; R];
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let mut acc = [[[_mm256_setzero_ps(); T]; R]; 2];
        let mut j = k0;
        if T == 1 {
            while j + 2 * L <= k1 {
                // SAFETY: j + 16 <= K, within every row and token.
                unsafe {
                    step::<D, R, T, LINES>(g, x, x_stride, j, (&prefetch, &lines), &mut acc[0]);
                    step::<D, R, T, LINES>(g, x, x_stride, j + L, (&prefetch, &lines), &mut acc[1]);
                }
                j += 2 * L;
            }
        }
        while j + L <= k1 {
            // SAFETY: j + 8 <= K, within every row and token.
            unsafe { step::<D, R, T, LINES>(g, x, x_stride, j, (&prefetch, &lines), &mut acc[0]) };
            j += L;
        }
        if j < k1 {
            let n = k1 - j;
            // SAFETY: columns j..k1 <= K exist in every token and every row; the tail loads
            // read only those.
            let xv = unsafe { load_x::<T>(x, x_stride, j, n) };
            for r in 0..R {
                // SAFETY: as above.
                let w = unsafe {
                    load_w_tail::<D>(g.ptr[r].add(row_at::<LINES>(j * dt_size(D))), 0, n)
                };
                for t in 0..T {
                    acc[1][r][t] = _mm256_fmadd_ps(w, xv[t], acc[1][r][t]);
                }
            }
        }
        scale_into(g, cb, &acc, &mut total);
        k0 = k1;
        cb += 1;
    }
    reduce(&total)
}
