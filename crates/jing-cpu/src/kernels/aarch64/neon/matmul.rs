//! The float matmul kernel (`Isa::dot_rows`): up to 4 weight rows streamed once each against
//! up to 4 tokens, 8 columns per step, converting in registers. 4 rows x 4 tokens of
//! accumulators plus the step's weights and `x` take 26 of the 32 vector registers. With 1
//! or 2 tokens, each step's two halves go to two accumulator sets, so that enough independent
//! FMA chains keep the pipes busy.

use super::load::{load_w8, load_w8_tail, load_x8};
use super::STEP;
use crate::kernels::driver::{row_at, RowGroup};
use std::arch::aarch64::*;

/// The `T` tokens' `x[j..j + n]` (tokens `x_stride` apart), zeros beyond `n <= 8`.
///
/// # Safety
/// Each of the `T` tokens has `n` f32 at `j`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_x<const T: usize>(
    x: *const f32,
    x_stride: usize,
    j: usize,
    n: usize,
) -> [[float32x4_t; 2]; T] {
    let mut v = [[vdupq_n_f32(0.0); 2]; T];
    for (t, v) in v.iter_mut().enumerate() {
        // SAFETY: the caller guarantees `n` values at column `j` of token `t`.
        *v = unsafe { load_x8(x.wrapping_add(t * x_stride), j, n) };
    }
    v
}

/// `Isa::dot_rows` for F32, BF16, F16 and FP8 and exactly `T <= 4` tokens: [`dot_rows_in`] for
/// rows in lines or not.
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`.
#[inline]
#[target_feature(enable = "neon")]
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

/// `Isa::dot_rows` for F32, BF16, F16 and FP8 (as `code · 2^-8`, the scales times 256),
/// exactly `T <= 4` tokens and rows in lines (`LINES`) or not.
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_rows_in<const D: u8, const R: usize, const T: usize, const LINES: bool>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; T]; R] {
    // The accumulator set of each step's second half.
    let odd = usize::from(T <= 2);
    let (k, width) = (g.cols, g.width);
    let mut total = [[vdupq_n_f32(0.0); T]; R];
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let mut acc = [[[vdupq_n_f32(0.0); T]; R]; 2];
        let mut j = k0;
        while j < k1 {
            let n = STEP.min(k1 - j);
            // SAFETY: columns j..j + n <= K exist in every token of `x`.
            let xv = unsafe { load_x::<T>(x, x_stride, j, n) };
            // Where column j lies from each row's start (a step stays in its line).
            let at = row_at::<LINES>(j * crate::kernels::layout::dt_size(D));
            for r in 0..R {
                // SAFETY: columns j..j + n exist in every row, at `at`; the tail load reads
                // only those.
                let w = unsafe {
                    if n == STEP {
                        load_w8::<D>(g.ptr[r].add(at), 0)
                    } else {
                        load_w8_tail::<D>(g.ptr[r].add(at), 0, n)
                    }
                };
                for t in 0..T {
                    acc[0][r][t] = vfmaq_f32(acc[0][r][t], w[0], xv[t][0]);
                    acc[odd][r][t] = vfmaq_f32(acc[odd][r][t], w[1], xv[t][1]);
                }
            }
            j += n;
        }
        for r in 0..R {
            let s = vdupq_n_f32(g.scale[r].get(cb));
            for t in 0..T {
                let a = vaddq_f32(acc[0][r][t], acc[1][r][t]);
                total[r][t] = vfmaq_f32(total[r][t], a, s);
            }
        }
        k0 = k1;
        cb += 1;
    }
    let mut out = [[0.0; T]; R];
    for r in 0..R {
        for t in 0..T {
            out[r][t] = vaddvq_f32(total[r][t]);
        }
    }
    out
}
