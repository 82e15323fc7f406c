//! Stored weights to f32 vectors, per dtype, 8 at a time (two vectors of 4), for full steps
//! and for tails. FP8 decodes to `code · 2^-8` through f16 bits (`layout::fp8_as_f16_bits`),
//! so FP8 and f16 share one conversion, `FCVTL`, which every AArch64 CPU has. (The intrinsic
//! `vcvt_f32_f16` only reached stable Rust in 1.94, above the workspace's rust-version, hence
//! the few lines of inline assembly.)

use super::STEP;
use crate::kernels::layout::{dt, dt_size};
use std::arch::aarch64::*;
use std::arch::asm;

/// Eight f16 (bits) as f32, exactly.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn f16x8(h: uint16x8_t) -> [float32x4_t; 2] {
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: FCVTL and FCVTL2 (base Advanced SIMD) only read `h` and write `lo` and `hi`:
    // no memory, no stack, no flags. `out` (not `lateout`) keeps `lo` out of `h`'s register,
    // which the second instruction still reads.
    unsafe {
        asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            lo = out(vreg) lo,
            hi = out(vreg) hi,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    [lo, hi]
}

/// Four f16 (bits) as f32, exactly.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn f16x4(h: [u16; 4]) -> float32x4_t {
    // SAFETY: `h` has 4 u16; NEON loads need no alignment.
    let h = unsafe { vld1_u16(h.as_ptr()) };
    let out: float32x4_t;
    // SAFETY: FCVTL only reads `h` and writes `out`: no memory, no stack, no flags.
    unsafe {
        asm!(
            "fcvtl {out:v}.4s, {h:v}.4h",
            h = in(vreg) h,
            out = lateout(vreg) out,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// 8 e4m3fn codes as the f16 bits of `code · 2^-8`: `(sign_extend(code) << 7) & 0xBFFF` on
/// 16-bit lanes (see `layout::fp8_as_f16_bits`).
#[inline]
#[target_feature(enable = "neon")]
fn fp8x8(codes: uint8x8_t) -> uint16x8_t {
    let h = vshlq_n_s16::<7>(vmovl_s8(vreinterpret_s8_u8(codes)));
    vandq_u16(vreinterpretq_u16_s16(h), vdupq_n_u16(0xBFFF))
}

/// Weights `k..k + 8` of the row at `p` as f32 (FP8 times 2^-8).
///
/// # Safety
/// `p` has at least `k + 8` elements of `D`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn load_w8<const D: u8>(p: *const u8, k: usize) -> [float32x4_t; 2] {
    // SAFETY: the caller guarantees 8 elements at element `k`; NEON loads need no alignment.
    unsafe {
        match D {
            dt::F32 => {
                let q = p.add(k * 4).cast::<f32>();
                [vld1q_f32(q), vld1q_f32(q.add(4))]
            }
            dt::BF16 => {
                let h = vld1q_u16(p.add(k * 2).cast());
                [
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
                    vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
                ]
            }
            dt::F16 => f16x8(vld1q_u16(p.add(k * 2).cast())),
            _ => f16x8(fp8x8(vld1_u8(p.add(k)))),
        }
    }
}

/// Weights `k..k + n` (`n < 8`) as f32, zeros beyond: the bytes are copied into a zeroed
/// buffer, which is then loaded like a full step (NEON has no masked loads).
///
/// # Safety
/// `p` has at least `k + n` elements of `D`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn load_w8_tail<const D: u8>(
    p: *const u8,
    k: usize,
    n: usize,
) -> [float32x4_t; 2] {
    debug_assert!(n < STEP);
    let es = dt_size(D);
    let mut buf = [0u8; 4 * STEP];
    // SAFETY: `n · es < 32` bytes exist from element `k` (caller) and fit `buf`; then `buf`
    // holds 8 elements of `D`.
    unsafe {
        std::ptr::copy_nonoverlapping(p.add(k * es), buf.as_mut_ptr(), n * es);
        load_w8::<D>(buf.as_ptr(), 0)
    }
}

/// `x[j..j + n]` (`n <= 8`) as two vectors, zeros beyond `n`.
///
/// # Safety
/// `x` has at least `j + n` f32.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn load_x8(x: *const f32, j: usize, n: usize) -> [float32x4_t; 2] {
    // SAFETY: the caller guarantees `n` values at `x + j`; a short tail is copied into a
    // zeroed buffer of 8 first.
    unsafe {
        if n >= STEP {
            [vld1q_f32(x.add(j)), vld1q_f32(x.add(j + 4))]
        } else {
            let mut buf = [0.0f32; STEP];
            std::ptr::copy_nonoverlapping(x.add(j), buf.as_mut_ptr(), n);
            [vld1q_f32(buf.as_ptr()), vld1q_f32(buf.as_ptr().add(4))]
        }
    }
}
