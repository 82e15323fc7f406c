//! Stored weights to f32 vectors, per dtype, for full vectors and for tails.

use super::L;
use crate::kernels::layout::{dt, dt_size};
use std::arch::x86_64::*;

/// 8 e4m3fn codes (low 8 bytes) to f32 times 2^-8, through f16 bits (see
/// `layout::fp8_as_f16_bits`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn fp8x8(codes: __m128i) -> __m256 {
    let h = _mm_slli_epi16::<7>(_mm_cvtepi8_epi16(codes));
    _mm256_cvtph_ps(_mm_and_si128(h, _mm_set1_epi16(0xBFFFu16 as i16)))
}

/// Weights `k..k+8` of the row at `p` as f32 (FP8 times 2^-8).
///
/// # Safety
/// `p` has at least `k + 8` elements of `D`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load_w<const D: u8>(p: *const u8, k: usize) -> __m256 {
    // SAFETY: the caller guarantees 8 elements at element `k`; the loads are unaligned.
    unsafe {
        match D {
            dt::F32 => _mm256_loadu_ps(p.add(k * 4).cast()),
            dt::BF16 => {
                let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(k * 2).cast()));
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
            }
            dt::F16 => _mm256_cvtph_ps(_mm_loadu_si128(p.add(k * 2).cast())),
            _ => fp8x8(_mm_loadl_epi64(p.add(k).cast())),
        }
    }
}

/// Weights `k..k+n` (`n < 8`) as f32, zeros in the other lanes: the bytes are copied into a
/// zeroed buffer, which is then loaded like a full vector.
///
/// # Safety
/// `p` has at least `k + n` elements of `D`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load_w_tail<const D: u8>(p: *const u8, k: usize, n: usize) -> __m256 {
    debug_assert!(n < L);
    let es = dt_size(D);
    let mut buf = [0u8; 32];
    // SAFETY: `n · es < 32` bytes exist from element `k` (caller) and fit `buf`; then `buf`
    // holds 8 elements of `D`.
    unsafe {
        std::ptr::copy_nonoverlapping(p.add(k * es), buf.as_mut_ptr(), n * es);
        load_w::<D>(buf.as_ptr(), 0)
    }
}

/// f32 bits `sign | 0000 | e4m3 magnitude << 20` from a code in the top byte of each i32 lane
/// (the arithmetic shift copies the sign down to bit 27, the mask keeps bits 31 and 26..20):
/// the value is `code · 2^-120` (see `layout::FP8_X_SCALE`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn fp8_top_byte(t: __m256i) -> __m256 {
    fp8_upper_half(_mm256_srai_epi32::<4>(t))
}

/// The f32 of [`fp8_top_byte`] from 16-bit halves already shifted: each i32 lane's upper half
/// is `sign_extend(code) << 4` (its lower half is ignored).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn fp8_upper_half(t: __m256i) -> __m256 {
    _mm256_castsi256_ps(_mm256_and_si256(
        t,
        _mm256_set1_epi32(0x87F0_0000u32 as i32),
    ))
}

/// 8 codes at `p` to `code · 2^-120`; only `n <= 8` of them exist, the rest read as 0.
///
/// # Safety
/// `p` has `n` bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn fp8x8_raw(p: *const u8, n: usize) -> __m256 {
    let mut buf = [0u8; 8];
    // SAFETY: `n <= 8` bytes exist at `p` (caller) and fit `buf`.
    unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n.min(8)) };
    let codes = _mm_set1_epi64x(i64::from_le_bytes(buf));
    fp8_top_byte(_mm256_slli_epi32::<24>(_mm256_cvtepu8_epi32(codes)))
}
