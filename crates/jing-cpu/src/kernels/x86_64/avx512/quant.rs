//! The GGUF block-type matmul with AVX-512 VNNI on 256-bit vectors (see `x86_64::quant`):
//! `vpdpbusd` (u8 x i8, four products into i32) and `vpdpwssd` (i16 pairs into i32). A CPU with
//! AVX-512 but without VNNI uses the AVX2 version instead.

use std::arch::x86_64::*;

/// `acc + Σ_4 u·x` per i32 lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_u8_i8(acc: __m256i, u: __m256i, x: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(acc, u, x)
}

/// `acc + Σ_2 (pair sum of u·x) · sc` per i32 lane (`vpmaddubsw` pairs must not saturate:
/// `u <= 63`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_u8_i8_scaled(acc: __m256i, u: __m256i, x: __m256i, sc: __m256i) -> __m256i {
    _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(u, x), sc)
}

/// `acc + Σ_4 w·x` per i32 lane, both signed: `|w| · (x with w's sign)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_i8_i8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
    dot_u8_i8(acc, _mm256_abs_epi8(w), _mm256_sign_epi8(x, w))
}

quant_kernels!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q4_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_k4_zmm::<T, 144, 16, 0>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q5_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_k4_zmm::<T, 176, 48, 16>(w, x)
}

/// `SHUF4[h][k]` (`k`: 0 for the low nibbles, 1 for the high ones): for the 64 code bytes
/// `64h..64h + 64` of a block, whose low nibbles are sub-blocks `4h` (first 32) and `4h + 2`
/// (last 32) and high nibbles `4h + 1` and `4h + 3`, picks i16 scale `j` of each 128-bit lane
/// of a vector holding the 8 scales in every lane: sub-block `4h + k` in lanes 0-1, `4h + k + 2`
/// in lanes 2-3.
static SHUF4: [[[u8; 64]; 2]; 2] = {
    let mut t = [[[0u8; 64]; 2]; 2];
    let mut h = 0;
    while h < 2 {
        let mut k = 0;
        while k < 2 {
            let mut i = 0;
            while i < 64 {
                let j = 4 * h + k + if i < 32 { 0 } else { 2 };
                t[h][k][i] = (2 * j + i % 2) as u8;
                i += 1;
            }
            k += 1;
        }
        h += 1;
    }
    t
};

/// 64 bytes from the start of `b` (bounds-checked).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn ld64(b: &[u8]) -> __m512i {
    let b = &b[..64];
    // SAFETY: `b` has 64 bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

/// Activation codes `at..at + 32` and `at + 64..at + 96` of `q` as one vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn ldx_split(q: &[i8], at: usize) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(ldx(&q[at..])), ldx(&q[at + 64..]))
}

/// The integer part of `Q4_K`/`Q5_K` block `b` on 512-bit vectors, 64 code bytes (4
/// sub-blocks) per step: per token, i32 lanes summing to `I = Σ_j sc_j Σ u·q` (the same
/// integers as `dot_k4`); and the block's scales and mins (`k4_scales_mins`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn k4_block_zmm<const T: usize, const QS: usize, const QH: usize>(
    blk: &[u8],
    x: &[XRow<'_>; T],
    b: usize,
    shuf: &[[__m512i; 2]; 2],
) -> (__m256i, [__m512i; T]) {
    let nib = _mm512_set1_epi8(0x0f);
    let sm = k4_scales_mins(blk);
    let scales = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm));
    let qh = if QH > 0 {
        let v = ld32(&blk[QH..]);
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(v), v)
    } else {
        _mm512_setzero_si512()
    };
    let mut acc = [_mm512_setzero_si512(); T];
    for h in 0..2 {
        let q = ld64(&blk[QS + 64 * h..]);
        let mut lo = _mm512_and_si512(q, nib);
        let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), nib);
        if QH > 0 {
            // Fifth bit of sub-block j: bit j of qh; the low half of `lo` is sub-block 4h,
            // its high half 4h + 2 (and +1 for `hi`).
            let one = _mm512_set1_epi8(1);
            let cnt_lo = _mm512_inserti64x4::<1>(
                _mm512_set1_epi16((4 * h) as i16),
                _mm256_set1_epi16((4 * h + 2) as i16),
            );
            let cnt_hi = _mm512_add_epi16(cnt_lo, _mm512_set1_epi16(1));
            let h0 = _mm512_and_si512(_mm512_srlv_epi16(qh, cnt_lo), one);
            let h1 = _mm512_and_si512(_mm512_srlv_epi16(qh, cnt_hi), one);
            lo = _mm512_or_si512(lo, _mm512_slli_epi16::<4>(h0));
            hi = _mm512_or_si512(hi, _mm512_slli_epi16::<4>(h1));
        }
        let s_lo = _mm512_shuffle_epi8(scales, shuf[h][0]);
        let s_hi = _mm512_shuffle_epi8(scales, shuf[h][1]);
        for t in 0..T {
            let base = 256 * b + 128 * h;
            let p_lo = _mm512_maddubs_epi16(lo, ldx_split(x[t].qs, base));
            let p_hi = _mm512_maddubs_epi16(hi, ldx_split(x[t].qs, base + 32));
            acc[t] = _mm512_dpwssd_epi32(acc[t], p_lo, s_lo);
            acc[t] = _mm512_dpwssd_epi32(acc[t], p_hi, s_hi);
        }
    }
    (sm, acc)
}

/// `Q4_K`/`Q5_K` on 512-bit vectors: per block, the exact `I` (a horizontal sum), then the
/// generic float step (`k4_term`), so the result is the generic kernel's bit for bit.
/// (Reducing and scaling eight blocks at a time measured slower: the per-block vectors spill.)
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_k4_zmm<const T: usize, const BB: usize, const QS: usize, const QH: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
) -> [f32; T] {
    let mut out = [0.0f32; T];
    // SAFETY: (both) each `SHUF4[h][k]` is 64 bytes; the loads are unaligned.
    let shuf: [[__m512i; 2]; 2] = std::array::from_fn(|h| {
        std::array::from_fn(|k| unsafe { _mm512_loadu_si512(SHUF4[h][k].as_ptr().cast()) })
    });
    for (b, blk) in w.chunks_exact(BB).enumerate() {
        let (sm, acc) = k4_block_zmm::<T, QS, QH>(blk, x, b, &shuf);
        for t in 0..T {
            out[t] += k4_term(blk, sm, &x[t], b, _mm512_reduce_add_epi32(acc[t]));
        }
    }
    out
}
