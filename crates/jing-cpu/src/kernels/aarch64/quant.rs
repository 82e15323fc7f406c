//! The GGUF block-type matmul kernels on 128-bit NEON vectors, written once and stamped out per
//! table by [`quant_kernels!`]: the `neon` and `neon-dotprod` tables differ only in the one
//! integer primitive the invoking module defines (with its target features):
//!
//! - `dot_i8(acc, a, b)`: `acc` plus `Σ a·b` of the 16 signed byte pairs, spread over the four
//!   i32 lanes (which pairs land in which lane is the primitive's business: every caller only
//!   uses the sum of the lanes). `SDOT` does it in one instruction; plain NEON as `SMULL` +
//!   `SMLAL2` (i16 pair sums) + `SADALP` (widened into the i32 lanes).
//!
//! NEON multiplies signed bytes by signed bytes, so the weight codes are unpacked to their
//! signed values (`u - 8`, `u - 16`, `u - 4`, `u - 32`) before the dot product, where the
//! generic kernel (and x86, whose multiply is unsigned × signed) subtracts `offset · Σ q`
//! afterwards; both are the same exact integer. Every weight code is within `-128..=127` and
//! every activation code within `-127..=127`, so an i16 sum of two products is at most
//! `2 · 128 · 127 = 32 512` and nothing saturates: all integer dot products are exact and
//! equal to the generic ones.
//!
//! The float steps, as in `x86_64::quant`:
//! - K-quants (and `Q8_K`): the integers of a 256-block are reduced to one exact i32, then the
//!   generic float step (`k_term`) runs in block order, so these results are bit-identical to
//!   the generic kernel's.
//! - 32-element types: four blocks at a time, their four exact i32 sums times `d·dx` go into
//!   an f32 vector with fused multiply-adds, and the lanes are summed at the end of the row.
//!   The terms are the generic ones; only their rounding (`fma` rounds once) and summation
//!   order differ, within the bound `x86_64::quant` states and the unit tests check:
//!   `|simd - generic| <= 2·(nb + 4)·u·Σ_b |term_b|`.
//!
//! Files: this one (entry point, loads, small helpers), `quant32` (the 32-element types),
//! `quant_k` (the K-quants and `Q8_K`).

/// Stamps out the quantized matmul for one table (see the module docs). The invoking module
/// imports `std::arch::aarch64::*` and `f16x4` (four f16 bits to f32), and provides `dot_i8`
/// compiled with the features `$feat`.
macro_rules! quant_kernels {
    ($feat:literal) => {
        use crate::kernels::generic::quant::{f16_at, f32_at, k_term, k_term_sym, u32_at};
        use crate::kernels::layout::check_matmul_q;
        use crate::kernels::qact::{QuantX, XRow};
        use crate::kernels::OutMatrix;
        use jing_tensor::quant::{q2_k, q3_k, q6_k, unpack_scales_mins_k4};
        use jing_tensor::{DType, Weight};
        use std::ops::Range;

        /// The quantized matmul of the table ([`MatmulQFn`](crate::kernels::MatmulQFn)).
        pub(crate) fn matmul_q(w: &Weight, x: &QuantX, rows: Range<usize>, y: &OutMatrix) {
            check_matmul_q(w, x, &rows, y);
            if w.layout != jing_tensor::RowLayout::Rows {
                // Interleaved rows: no NEON kernel reads them (no NEON table makes them).
                return crate::kernels::generic::matmul_q(w, x, rows, y);
            }
            // SAFETY: only reachable through the kernel table, which checked the CPU
            // features; the contract on `y` is the caller's and `check_matmul_q` checked the
            // shapes.
            unsafe { run(w, x, rows, y) }
        }

        /// # Safety
        /// The CPU has the features `$feat`; the MatmulQFn contract on `y` holds and the
        /// shapes are checked.
        #[target_feature(enable = $feat)]
        unsafe fn run(w: &Weight, x: &QuantX, rows: Range<usize>, y: &OutMatrix) {
            // The row slices from the data once (`row_data` per row costs a call into the
            // byte owner).
            let (data, rb) = (w.data.as_slice(), w.row_bytes());
            macro_rules! drive {
                ($dot:ident) => {
                    drive_rows!($dot, data, rb, rows.clone(), x, y)
                };
            }
            match w.dtype {
                DType::Q4_0 => drive!(dot_q4_0),
                DType::Q4_1 => drive!(dot_q4_1),
                DType::Q5_0 => drive!(dot_q5_0),
                DType::Q5_1 => drive!(dot_q5_1),
                DType::Q8_0 => drive!(dot_q8_0),
                DType::Q2K => drive!(dot_q2_k),
                DType::Q3K => drive!(dot_q3_k),
                DType::Q4K => drive!(dot_q4_k),
                DType::Q5K => drive!(dot_q5_k),
                DType::Q6K => drive!(dot_q6_k),
                DType::Q8K => drive!(dot_q8_k),
                // Types without a NEON kernel (yet): the generic one.
                _ => crate::kernels::generic::matmul_q(w, x, rows, y),
            }
        }

        // ---- loads and small helpers ---------------------------------------------------

        /// 16 bytes from the start of `b` (bounds-checked).
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_u8(b: &[u8]) -> uint8x16_t {
            let b = &b[..16];
            // SAFETY: `b` has 16 bytes; NEON loads need no alignment.
            unsafe { vld1q_u8(b.as_ptr()) }
        }

        /// 16 activation (or `Q8` weight) codes from the start of `q` (bounds-checked).
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_i8(q: &[i8]) -> int8x16_t {
            let q = &q[..16];
            // SAFETY: `q` has 16 bytes; NEON loads need no alignment.
            unsafe { vld1q_s8(q.as_ptr()) }
        }

        /// 8 i16 from the start of `s` (bounds-checked).
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_i16(s: &[i16]) -> int16x8_t {
            let s = &s[..8];
            // SAFETY: `s` has 8 i16; NEON loads need no alignment.
            unsafe { vld1q_s16(s.as_ptr()) }
        }

        /// 4 f32 from the start of `v` (bounds-checked).
        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_f32(v: &[f32]) -> float32x4_t {
            let v = &v[..4];
            // SAFETY: `v` has 4 f32; NEON loads need no alignment.
            unsafe { vld1q_f32(v.as_ptr()) }
        }

        /// Lane `j` of the result is the sum of the 4 lanes of `p[j]` (exact: the callers'
        /// sums fit i32).
        #[inline]
        #[target_feature(enable = $feat)]
        fn reduce4(p: &[int32x4_t; 4]) -> int32x4_t {
            vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]))
        }

        /// `Σ a·b` of a 16-byte weight vector and 16 activation codes: one sub-block.
        #[inline]
        #[target_feature(enable = $feat)]
        fn dot16(a: int8x16_t, q: &[i8]) -> int32x4_t {
            dot_i8(vdupq_n_s32(0), a, ld_i8(q))
        }

        /// Every byte of `q` shifted right by `n` (`n < 8`).
        #[inline]
        #[target_feature(enable = $feat)]
        fn shr(q: uint8x16_t, n: usize) -> uint8x16_t {
            vshlq_u8(q, vdupq_n_s8(-(n as i8)))
        }

        /// Bits `n..n + 2` of every byte, as 0..=3.
        #[inline]
        #[target_feature(enable = $feat)]
        fn two_bits(q: uint8x16_t, n: usize) -> uint8x16_t {
            vandq_u8(shr(q, n), vdupq_n_u8(3))
        }

        /// Bit `n` of every byte, as 0 or 1.
        #[inline]
        #[target_feature(enable = $feat)]
        fn bit(q: uint8x16_t, n: usize) -> uint8x16_t {
            vandq_u8(shr(q, n), vdupq_n_u8(1))
        }

        /// Unsigned codes as the signed values `u - off` (`u - off` within `-128..=127`).
        #[inline]
        #[target_feature(enable = $feat)]
        fn minus(u: uint8x16_t, off: u8) -> int8x16_t {
            vreinterpretq_s8_u8(vsubq_u8(u, vdupq_n_u8(off)))
        }

        /// 16 i8 as four i32 vectors (`[0..4, 4..8, 8..12, 12..16]`).
        #[inline]
        #[target_feature(enable = $feat)]
        fn widen_i8(v: int8x16_t) -> [int32x4_t; 4] {
            let (lo, hi) = (vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v));
            [
                vmovl_s16(vget_low_s16(lo)),
                vmovl_high_s16(lo),
                vmovl_s16(vget_low_s16(hi)),
                vmovl_high_s16(hi),
            ]
        }

        /// `Σ a·b` over 8 i16 pairs (exact: the callers' sums fit i32).
        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_i16(a: int16x8_t, b: int16x8_t) -> int32x4_t {
            vmlal_high_s16(vmull_s16(vget_low_s16(a), vget_low_s16(b)), a, b)
        }

        quant_kernels_32!($feat);
        quant_kernels_k!($feat);
    };
}
