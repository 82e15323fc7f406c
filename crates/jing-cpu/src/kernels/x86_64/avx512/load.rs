//! Stored weights to f32 vectors, per dtype, for full vectors and for tails.

use super::tail_mask;
use crate::kernels::layout::dt;
use std::arch::x86_64::*;

/// 16 bf16 to f32: the bits are the top half of an f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) fn bf16x16(h: __m256i) -> __m512 {
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
}

/// 16 e4m3fn codes to f32 times 2^-8, through f16 bits (see `layout::fp8_as_f16_bits`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) fn fp8x16(codes: __m128i) -> __m512 {
    let h = _mm256_slli_epi16::<7>(_mm256_cvtepi8_epi16(codes));
    _mm512_cvtph_ps(_mm256_and_si256(h, _mm256_set1_epi16(0xBFFFu16 as i16)))
}

/// Weights `k..k+16` of the row at `p` as f32 (FP8 times 2^-8).
///
/// # Safety
/// `p` has at least `k + 16` elements of `D`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn load_w<const D: u8>(p: *const u8, k: usize) -> __m512 {
    // SAFETY: the caller guarantees 16 elements at element `k`; the loads are unaligned.
    unsafe {
        match D {
            dt::F32 => _mm512_loadu_ps(p.add(k * 4).cast()),
            dt::BF16 => bf16x16(_mm256_loadu_si256(p.add(k * 2).cast())),
            dt::F16 => _mm512_cvtph_ps(_mm256_loadu_si256(p.add(k * 2).cast())),
            _ => fp8x16(_mm_loadu_si128(p.add(k).cast())),
        }
    }
}

/// Weights `k..k+n` (`n < 16`) as f32, zeros in the other lanes.
///
/// # Safety
/// `p` has at least `k + n` elements of `D`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn load_w_tail<const D: u8>(p: *const u8, k: usize, n: usize) -> __m512 {
    let m = tail_mask(n);
    // SAFETY: masked-off lanes are not accessed (no fault, no read); the first `n` exist.
    unsafe {
        match D {
            dt::F32 => _mm512_maskz_loadu_ps(m, p.add(k * 4).cast()),
            dt::BF16 => bf16x16(_mm256_maskz_loadu_epi16(m, p.add(k * 2).cast())),
            dt::F16 => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p.add(k * 2).cast())),
            _ => fp8x16(_mm_maskz_loadu_epi8(m, p.add(k).cast())),
        }
    }
}

/// f32 bits `sign | 0000 | e4m3 magnitude << 20` from a code in the top byte of each i32 lane
/// (arithmetic shift copies the sign down to bit 27, the mask keeps bits 31 and 26..20): the
/// value is `code · 2^-120`, exact for normals and, as f32 subnormals, for e4m3 subnormals too.
/// (Needs denormal inputs honoured, i.e. MXCSR.DAZ clear, Rust's default.)
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) fn fp8_top_byte(t: __m512i) -> __m512 {
    fp8_upper_half(_mm512_srai_epi32::<4>(t))
}

/// The f32 of [`fp8_top_byte`] from 16-bit halves already shifted: each i32 lane's upper half
/// is `sign_extend(code) << 4` (its lower half is ignored).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) fn fp8_upper_half(t: __m512i) -> __m512 {
    _mm512_castsi512_ps(_mm512_and_si512(
        t,
        _mm512_set1_epi32(0x87F0_0000u32 as i32),
    ))
}

/// 16 codes to `code · 2^-120` (the raw decode of [`fp8_top_byte`], for the columns of a block
/// that do not fill a group of 64).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) fn fp8x16_raw(codes: __m128i) -> __m512 {
    fp8_top_byte(_mm512_slli_epi32::<24>(_mm512_cvtepu8_epi32(codes)))
}
