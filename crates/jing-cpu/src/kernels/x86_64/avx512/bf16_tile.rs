//! The AVX512-BF16 tile of the dequantized prefill path ([`Bf16TileFn`]): 4 bf16 weight rows
//! against up to 4 bf16 tokens with `vdpbf16ps`, which multiplies 32 bf16 pairs and adds them
//! pairwise into 16 f32 lanes in one instruction (twice the multiply-adds of an f32 FMA).
//!
//! [`Bf16TileFn`]: crate::kernels::dequant_panel::Bf16TileFn

use crate::kernels::driver::{MAX_TOKENS, ROWS};
use jing_tensor::quant::dequantize_row;
use jing_tensor::{f16_to_f32, DType};
use std::arch::x86_64::*;

/// Whether this CPU can run [`tile`].
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bf16")
}

/// `out[r][t] = Σ_k x_t[k] · w_r[k]` (see [`Bf16TileFn`](crate::kernels::dequant_panel::Bf16TileFn)).
///
/// # Safety
/// [`available`] is true; each `w[r]` has `k` readable u16, `k` a multiple of 32; token
/// `t < tokens` (`1 <= tokens <= MAX_TOKENS`) has `k` readable u16 at `x + t · x_stride`.
pub(crate) unsafe fn tile(
    w: &[*const u16; ROWS],
    x: *const u16,
    x_stride: usize,
    k: usize,
    tokens: usize,
) -> [[f32; MAX_TOKENS]; ROWS] {
    debug_assert!(k.is_multiple_of(32) && (1..=MAX_TOKENS).contains(&tokens));
    // SAFETY: (every arm) forwarded from the caller.
    unsafe {
        match tokens {
            1 => tile_t::<1>(w, x, x_stride, k),
            2 => tile_t::<2>(w, x, x_stride, k),
            3 => tile_t::<3>(w, x, x_stride, k),
            _ => tile_t::<4>(w, x, x_stride, k),
        }
    }
}

/// [`tile`] for `T` tokens: `ROWS x T` accumulators, one weight vector per row and one token
/// vector at a time in registers (4 x 4 + 4 + 1 of the 32 zmm registers).
///
/// # Safety
/// As [`tile`], with `tokens == T`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn tile_t<const T: usize>(
    w: &[*const u16; ROWS],
    x: *const u16,
    x_stride: usize,
    k: usize,
) -> [[f32; MAX_TOKENS]; ROWS] {
    let mut acc = [[_mm512_setzero_ps(); T]; ROWS];
    for kk in (0..k).step_by(32) {
        // SAFETY: kk + 32 <= k, so 32 u16 (64 bytes) are readable from each row at kk; the
        // loads are unaligned. __m512i and __m512bh are both 64 bytes of plain data.
        let wv: [__m512bh; ROWS] = std::array::from_fn(|r| unsafe {
            std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(w[r].add(kk).cast()))
        });
        for t in 0..T {
            // SAFETY: as above, for token t's row (t < T = tokens).
            let xv = unsafe {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    x.add(t * x_stride + kk).cast(),
                ))
            };
            for r in 0..ROWS {
                acc[r][t] = _mm512_dpbf16_ps(acc[r][t], xv, wv[r]);
            }
        }
    }
    let mut out = [[0.0f32; MAX_TOKENS]; ROWS];
    if T == MAX_TOKENS && ROWS == 4 {
        // A full tile: the 16 horizontal sums in one transposing tree (45 shuffles and adds
        // instead of 16 separate reductions, which cost as much as a short K loop).
        let mut v = [_mm512_setzero_ps(); 16];
        for (i, vi) in v.iter_mut().enumerate() {
            *vi = acc[i / T][i % T];
        }
        let mut sums = [0.0f32; 16];
        // SAFETY: `sums` has 16 f32 (64 bytes); unaligned store.
        unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), hsum16(&v)) };
        for (i, &s) in sums.iter().enumerate() {
            out[i / T][i % T] = s;
        }
        return out;
    }
    for r in 0..ROWS {
        for t in 0..T {
            out[r][t] = _mm512_reduce_add_ps(acc[r][t]);
        }
    }
    out
}

/// Lane `i` of the result is the sum of the 16 lanes of `v[i]`.
///
/// Within each 128-bit block, four vectors `a, b, c, d` go to `[Σa, Σb, Σc, Σd]` of that block
/// (unpack, add, shuffle, add); then the four blocks of each such vector are added across
/// blocks with two rounds of 128-bit shuffles, so block `k` of the result holds the sums of
/// `v[4k..4k + 4]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn hsum16(v: &[__m512; 16]) -> __m512 {
    let r0 = quad(v[0], v[1], v[2], v[3]);
    let r1 = quad(v[4], v[5], v[6], v[7]);
    let r2 = quad(v[8], v[9], v[10], v[11]);
    let r3 = quad(v[12], v[13], v[14], v[15]);
    pair(pair(r0, r1), pair(r2, r3))
}

/// Block `L` of the result is `[Σa, Σb, Σc, Σd]` over block `L` of each input.
#[inline]
#[target_feature(enable = "avx512f")]
fn quad(a: __m512, b: __m512, c: __m512, d: __m512) -> __m512 {
    let ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    let cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    _mm512_add_ps(
        _mm512_shuffle_ps::<0x44>(ab, cd),
        _mm512_shuffle_ps::<0xEE>(ab, cd),
    )
}

/// `[a.L0 + a.L1, a.L2 + a.L3, b.L0 + b.L1, b.L2 + b.L3]` (128-bit blocks `L`).
#[inline]
#[target_feature(enable = "avx512f")]
fn pair(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x88>(a, b),
        _mm512_shuffle_f32x4::<0xDD>(a, b),
    )
}

/// `out[i]` = the bf16 bits of `src[i]`, rounded to nearest even (NaN stays NaN), 32 at a time
/// with `vcvtne2ps2bf16`.
///
/// # Safety
/// [`available`] is true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(crate) unsafe fn convert(src: &[f32], out: &mut [u16]) {
    assert_eq!(src.len(), out.len(), "convert: lengths differ");
    let whole = src.len() / 32 * 32;
    for (s, o) in src[..whole]
        .chunks_exact(32)
        .zip(out[..whole].chunks_exact_mut(32))
    {
        // SAFETY: `s` has 32 f32 and `o` 32 u16 (64 bytes); unaligned loads and store.
        unsafe {
            let lo = _mm512_loadu_ps(s.as_ptr());
            let hi = _mm512_loadu_ps(s.as_ptr().add(16));
            // The second operand fills the low half of the result.
            let b = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(
                o.as_mut_ptr().cast(),
                std::mem::transmute::<__m512bh, __m512i>(b),
            );
        }
    }
    for (o, &v) in out[whole..].iter_mut().zip(&src[whole..]) {
        *o = crate::kernels::dequant_panel::bf16_bits(v);
    }
}

/// `out` = bf16 bits of the dequantized row `bytes` of `dtype` (rounded to nearest even):
/// `Q8_0`, `Q4_K` and `Q6_K` decoded in registers with the reference dequantization's f32 operations
/// in its order (so the values are bit-identical before the one rounding to bf16, as the
/// reference followed by [`convert`] gives), other types through the reference dequantization
/// into `tmp` and [`convert`].
///
/// # Safety
/// [`available`] is true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(crate) unsafe fn dequant(dtype: DType, bytes: &[u8], out: &mut [u16], tmp: &mut [f32]) {
    if dtype == DType::Q4K {
        // SAFETY: forwarded from the caller.
        return unsafe { dequant_q4_k(bytes, out) };
    }
    if dtype == DType::Q6K {
        // SAFETY: forwarded from the caller.
        return unsafe { dequant_q6_k(bytes, out) };
    }
    if dtype != DType::Q8_0 {
        dequantize_row(dtype, bytes, tmp);
        // SAFETY: forwarded from the caller.
        return unsafe { convert(tmp, out) };
    }
    // Q8_0 block: f16 scale d, then 32 i8 codes; value = d · code.
    const BB: usize = 34;
    assert_eq!(bytes.len() / BB * 32, out.len(), "dequant: row length");
    for (blk, o) in bytes.chunks_exact(BB).zip(out.chunks_exact_mut(32)) {
        let d = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
        let codes = &blk[2..34];
        // SAFETY: `codes` has 32 bytes and `o` 32 u16 (64 bytes); unaligned loads and store.
        unsafe {
            let q = _mm256_loadu_si256(codes.as_ptr().cast());
            let lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
            let hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256::<1>(q)));
            let dv = _mm512_set1_ps(d);
            let b = _mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, dv), _mm512_mul_ps(lo, dv));
            _mm512_storeu_si512(
                o.as_mut_ptr().cast(),
                std::mem::transmute::<__m512bh, __m512i>(b),
            );
        }
    }
}

/// `Q4_K` rows to bf16 bits. Super-block (144 bytes): f16 `d`, f16 `dmin`, 12 bytes of 6-bit
/// scales and mins for 8 sub-blocks of 32, then 128 bytes of 4-bit codes (sub-block `2i` in the
/// low nibbles of bytes `32i..32i + 32`, sub-block `2i + 1` in the high ones). Value:
/// `(d · sc_j) · q - dmin · m_j`, one multiply then one subtract, as the reference does.
///
/// # Safety
/// [`available`] is true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn dequant_q4_k(bytes: &[u8], out: &mut [u16]) {
    const BB: usize = 144;
    assert_eq!(bytes.len() / BB * 256, out.len(), "dequant: row length");
    for (blk, o) in bytes.chunks_exact(BB).zip(out.chunks_exact_mut(256)) {
        let d = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
        let dmin = f16_to_f32(u16::from_le_bytes([blk[2], blk[3]]));
        let (sc, mn) = jing_tensor::quant::unpack_scales_mins_k4(&blk[4..16]);
        for i in 0..4 {
            let qs = &blk[16 + 32 * i..16 + 32 * i + 32];
            // SAFETY: `qs` has 32 bytes and each 32-value run of `o` 64 bytes; unaligned
            // loads and stores.
            unsafe {
                let q = _mm256_loadu_si256(qs.as_ptr().cast());
                let mask = _mm256_set1_epi8(0x0f);
                let lo = _mm256_and_si256(q, mask);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
                for (j, codes) in [(2 * i, lo), (2 * i + 1, hi)] {
                    let dl = _mm512_set1_ps(d * sc[j] as f32);
                    let ml = _mm512_set1_ps(dmin * mn[j] as f32);
                    let c0 =
                        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(codes)));
                    let c1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                        _mm256_extracti128_si256::<1>(codes),
                    ));
                    let v0 = _mm512_sub_ps(_mm512_mul_ps(dl, c0), ml);
                    let v1 = _mm512_sub_ps(_mm512_mul_ps(dl, c1), ml);
                    let b = _mm512_cvtne2ps_pbh(v1, v0);
                    _mm512_storeu_si512(
                        o[32 * j..].as_mut_ptr().cast(),
                        std::mem::transmute::<__m512bh, __m512i>(b),
                    );
                }
            }
        }
    }
}

/// `Q6_K` rows to bf16 bits. Super-block (210 bytes): `ql[128]`, `qh[64]`, 16 i8 scales, f16
/// `d`; value `(d · sc_j) · (q - 32)` for sub-block `j` of 16 (one multiply, as the reference).
/// Values `128h + 32s + l` (`s < 4`, `l < 32`) take their low 4 bits from nibble `s / 2` of
/// `ql[64h + 32(s % 2) + l]` and their top 2 bits from bits `2s..2s + 2` of `qh[32h + l]`.
///
/// # Safety
/// [`available`] is true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn dequant_q6_k(bytes: &[u8], out: &mut [u16]) {
    const BB: usize = 210;
    assert_eq!(bytes.len() / BB * 256, out.len(), "dequant: row length");
    for (blk, o) in bytes.chunks_exact(BB).zip(out.chunks_exact_mut(256)) {
        let d = f16_to_f32(u16::from_le_bytes([blk[208], blk[209]]));
        for h in 0..2 {
            for s in 0..4 {
                let ql = &blk[64 * h + 32 * (s % 2)..][..32];
                let qh = &blk[128 + 32 * h..][..32];
                let j0 = 8 * h + 2 * s; // sub-blocks j0 (l < 16) and j0 + 1
                let dl0 = _mm512_set1_ps(d * (blk[192 + j0] as i8) as f32);
                let dl1 = _mm512_set1_ps(d * (blk[192 + j0 + 1] as i8) as f32);
                // SAFETY: `ql` and `qh` have 32 bytes and the 32-value run of `o` 64 bytes;
                // unaligned loads and store.
                unsafe {
                    let low = _mm256_and_si256(
                        _mm256_srl_epi16(
                            _mm256_loadu_si256(ql.as_ptr().cast()),
                            _mm_cvtsi32_si128(4 * (s / 2) as i32),
                        ),
                        _mm256_set1_epi8(0x0f),
                    );
                    let high = _mm256_and_si256(
                        _mm256_srl_epi16(
                            _mm256_loadu_si256(qh.as_ptr().cast()),
                            _mm_cvtsi32_si128(2 * s as i32),
                        ),
                        _mm256_set1_epi8(3),
                    );
                    // q - 32 in -32..=31, as i8.
                    let q = _mm256_sub_epi8(
                        _mm256_or_si256(low, _mm256_slli_epi16::<4>(high)),
                        _mm256_set1_epi8(32),
                    );
                    let c0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
                    let c1 =
                        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256::<1>(q)));
                    let b = _mm512_cvtne2ps_pbh(_mm512_mul_ps(dl1, c1), _mm512_mul_ps(dl0, c0));
                    _mm512_storeu_si512(
                        o[128 * h + 32 * s..].as_mut_ptr().cast(),
                        std::mem::transmute::<__m512bh, __m512i>(b),
                    );
                }
            }
        }
    }
}
