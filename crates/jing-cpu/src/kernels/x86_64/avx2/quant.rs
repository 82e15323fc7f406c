//! The GGUF block-type matmul on AVX2 (see `x86_64::quant`): the integer primitives as
//! `vpmaddubsw` (u8 x i8 pairs to i16) then `vpmaddwd` (i16 pairs to i32).

use std::arch::x86_64::*;

/// `acc + Σ_4 u·x` per i32 lane (`u·x` pair sums must not saturate i16: `u <= 128`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8(acc: __m256i, u: __m256i, x: __m256i) -> __m256i {
    let p = _mm256_maddubs_epi16(u, x);
    _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
}

/// `acc + Σ_2 (pair sum of u·x) · sc` per i32 lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_i8_scaled(acc: __m256i, u: __m256i, x: __m256i, sc: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), sc))
}

/// `acc + Σ_4 w·x` per i32 lane, both signed: `|w| · (x with w's sign)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_i8_i8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
    dot_u8_i8(acc, _mm256_abs_epi8(w), _mm256_sign_epi8(x, w))
}

quant_kernels!("avx2,fma,f16c");

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_k4::<T, 144, 16, 0>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_k4::<T, 176, 48, 16>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_iq4_xs<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_iq4_xs_ymm::<T>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q6_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_q6_k_ymm::<T>(w, x)
}

/// `x` with byte `l` negated where bit `l` of `bits` is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn neg_where(x: __m256i, bits: u32) -> __m256i {
    let spread = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    );
    let sel = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let b = _mm256_and_si256(
        _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), spread),
        sel,
    );
    let m = _mm256_cmpeq_epi8(b, sel);
    _mm256_sub_epi8(_mm256_xor_si256(x, m), m)
}
