//! The AVX512-BF16 tile of the dequantized prefill path ([`Bf16TileFn`]): 4 bf16 weight rows
//! against up to 4 bf16 tokens with `vdpbf16ps`, which multiplies 32 bf16 pairs and adds them
//! pairwise into 16 f32 lanes in one instruction (twice the multiply-adds of an f32 FMA); and
//! the decoders of the GGUF block types to the bf16 rows it reads ([`dequant`]), which compute
//! the reference dequantization's f32 values in registers and round each once.
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

/// `out` = bf16 bits of the dequantized row `bytes` of `dtype` (rounded to nearest even).
///
/// Every block type but `Q8_K` is decoded in registers, with the reference dequantization's
/// f32 operations in its order (the same products, then the same subtraction or addition of a
/// min, never fused), so the values are bit-identical before the one rounding to bf16 and the
/// result is what the reference followed by [`convert`] gives; `Q8_K` (never a stored weight
/// type in practice) goes through the reference into `tmp` and [`convert`].
///
/// # Safety
/// [`available`] is true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(crate) unsafe fn dequant(dtype: DType, bytes: &[u8], out: &mut [u16], tmp: &mut [f32]) {
    use jing_tensor::quant::iq;
    assert_eq!(
        bytes.len() / dtype.block_bytes() * dtype.block_size(),
        out.len(),
        "dequant: row length"
    );
    match dtype {
        DType::Q8_0 => dequant_q8_0(bytes, out),
        DType::Q4_0 => dequant_q4_0(bytes, out),
        DType::Q4_1 => dequant_q4_1(bytes, out),
        DType::Q5_0 => dequant_q5_0(bytes, out),
        DType::Q5_1 => dequant_q5_1(bytes, out),
        DType::Q2K => dequant_q2_k(bytes, out),
        DType::Q3K => dequant_q3_k(bytes, out),
        // SAFETY: forwarded from the caller.
        DType::Q4K => unsafe { dequant_q4_k(bytes, out) },
        DType::Q5K => dequant_q5_k(bytes, out),
        // SAFETY: forwarded from the caller.
        DType::Q6K => unsafe { dequant_q6_k(bytes, out) },
        DType::IQ4NL => dequant_iq4_nl(bytes, out),
        DType::IQ4XS => dequant_iq4_xs(bytes, out),
        DType::IQ2XXS => dequant_iq::<iq::Iq2Xxs>(bytes, out),
        DType::IQ2XS => dequant_iq::<iq::Iq2Xs>(bytes, out),
        DType::IQ2S => dequant_iq::<iq::Iq2S>(bytes, out),
        DType::IQ3XXS => dequant_iq::<iq::Iq3Xxs>(bytes, out),
        DType::IQ3S => dequant_iq3_s(bytes, out),
        DType::IQ1S => dequant_iq::<iq::Iq1S>(bytes, out),
        DType::IQ1M => dequant_iq::<iq::Iq1M>(bytes, out),
        _ => {
            dequantize_row(dtype, bytes, tmp);
            // SAFETY: forwarded from the caller.
            unsafe { convert(tmp, out) }
        }
    }
}

/// The f16 at `b[at..at + 2]` (little-endian) as f32.
#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// The 16 bytes `b[..16]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn load16(b: &[u8]) -> __m128i {
    assert!(b.len() >= 16);
    // SAFETY: `b` has at least 16 readable bytes; unaligned load.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// The 32 bytes `b[..32]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn load32(b: &[u8]) -> __m256i {
    assert!(b.len() >= 32);
    // SAFETY: `b` has at least 32 readable bytes; unaligned load.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// 16 signed bytes as f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn f32_i8(q: __m128i) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))
}

/// 16 unsigned bytes as f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn f32_u8(q: __m128i) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q))
}

/// `o[..16]` = bf16 of `v0`, `o[16..32]` = bf16 of `v1` (nearest even).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn put32(o: &mut [u16], v0: __m512, v1: __m512) {
    assert!(o.len() >= 32);
    // The second operand fills the low half of the result.
    let b = _mm512_cvtne2ps_pbh(v1, v0);
    // SAFETY: `o` has at least 32 u16 (64 bytes); unaligned store. __m512bh and __m512i are
    // both 64 bytes of plain data.
    unsafe {
        _mm512_storeu_si512(
            o.as_mut_ptr().cast(),
            std::mem::transmute::<__m512bh, __m512i>(b),
        )
    };
}

/// `Q8_0` rows to bf16 bits. Block (34 bytes): f16 `d`, then 32 i8 codes; value `code · d`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_q8_0(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
        let d = _mm512_set1_ps(f16_at(blk, 0));
        let q = load32(&blk[2..]);
        let lo = f32_i8(_mm256_castsi256_si128(q));
        let hi = f32_i8(_mm256_extracti128_si256::<1>(q));
        put32(o, _mm512_mul_ps(lo, d), _mm512_mul_ps(hi, d));
    }
}

/// The 16 low nibbles and the 16 high nibbles of `q`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn nibbles(q: __m128i) -> (__m128i, __m128i) {
    let mask = _mm_set1_epi8(0x0f);
    (
        _mm_and_si128(q, mask),
        _mm_and_si128(_mm_srli_epi16::<4>(q), mask),
    )
}

/// `Q4_0` rows to bf16 bits. Block (18 bytes): f16 `d`, 16 bytes of nibbles (element `l` in
/// the low nibble of byte `l`, element `l + 16` in its high nibble); value `(q - 8) · d`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_q4_0(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
        let d = _mm512_set1_ps(f16_at(blk, 0));
        let (lo, hi) = nibbles(load16(&blk[2..]));
        let eight = _mm_set1_epi8(8);
        let c0 = f32_i8(_mm_sub_epi8(lo, eight));
        let c1 = f32_i8(_mm_sub_epi8(hi, eight));
        put32(o, _mm512_mul_ps(c0, d), _mm512_mul_ps(c1, d));
    }
}

/// `Q4_1` rows to bf16 bits. Block (20 bytes): f16 `d`, f16 `m`, nibbles as `Q4_0`; value
/// `q · d + m`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_q4_1(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(20).zip(out.chunks_exact_mut(32)) {
        let d = _mm512_set1_ps(f16_at(blk, 0));
        let m = _mm512_set1_ps(f16_at(blk, 2));
        let (lo, hi) = nibbles(load16(&blk[4..]));
        let v0 = _mm512_add_ps(_mm512_mul_ps(f32_u8(lo), d), m);
        let v1 = _mm512_add_ps(_mm512_mul_ps(f32_u8(hi), d), m);
        put32(o, v0, v1);
    }
}

/// The 5-bit codes of a `Q5_0`/`Q5_1` block: nibbles at `qs` as `Q4_0`, and bit `i` of the u32
/// at `qh` as bit 4 of element `i`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn q5_codes(blk: &[u8], qh: usize, qs: usize) -> (__m128i, __m128i) {
    let h = u32::from_le_bytes([blk[qh], blk[qh + 1], blk[qh + 2], blk[qh + 3]]);
    let (lo, hi) = nibbles(load16(&blk[qs..]));
    let sixteen = _mm_set1_epi8(16);
    (
        _mm_mask_add_epi8(lo, h as __mmask16, lo, sixteen),
        _mm_mask_add_epi8(hi, (h >> 16) as __mmask16, hi, sixteen),
    )
}

/// `Q5_0` rows to bf16 bits. Block (22 bytes): f16 `d`, u32 of high bits, 16 bytes of
/// nibbles; value `(q - 16) · d`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_q5_0(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(22).zip(out.chunks_exact_mut(32)) {
        let d = _mm512_set1_ps(f16_at(blk, 0));
        let (lo, hi) = q5_codes(blk, 2, 6);
        let sixteen = _mm_set1_epi8(16);
        let c0 = f32_i8(_mm_sub_epi8(lo, sixteen));
        let c1 = f32_i8(_mm_sub_epi8(hi, sixteen));
        put32(o, _mm512_mul_ps(c0, d), _mm512_mul_ps(c1, d));
    }
}

/// `Q5_1` rows to bf16 bits. Block (24 bytes): f16 `d`, f16 `m`, u32 of high bits, 16 bytes
/// of nibbles; value `q · d + m`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_q5_1(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(24).zip(out.chunks_exact_mut(32)) {
        let d = _mm512_set1_ps(f16_at(blk, 0));
        let m = _mm512_set1_ps(f16_at(blk, 2));
        let (lo, hi) = q5_codes(blk, 4, 8);
        let v0 = _mm512_add_ps(_mm512_mul_ps(f32_u8(lo), d), m);
        let v1 = _mm512_add_ps(_mm512_mul_ps(f32_u8(hi), d), m);
        put32(o, v0, v1);
    }
}

/// Bits `2s..2s + 2` of each of the 32 bytes `q`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn crumbs(q: __m256i, s: usize) -> __m256i {
    _mm256_and_si256(
        _mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * s as i32)),
        _mm256_set1_epi8(3),
    )
}

/// `Q2_K` rows to bf16 bits. Super-block (84 bytes): 16 bytes of (scale, min) nibbles, 64
/// bytes of 2-bit codes (value `128h + 32s + l` in bits `2s..2s + 2` of byte `32h + l`), f16
/// `d`, f16 `dmin`; value `(d · sc_j) · q - dmin · m_j` for sub-block `j` of 16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_q2_k(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(84).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(blk, 80);
        let dmin = f16_at(blk, 82);
        for h in 0..2 {
            let qs = load32(&blk[16 + 32 * h..]);
            for s in 0..4 {
                let q = crumbs(qs, s);
                let j0 = 8 * h + 2 * s; // sub-blocks j0 (l < 16) and j0 + 1
                let (s0, s1) = (blk[j0], blk[j0 + 1]);
                let dl0 = _mm512_set1_ps(d * (s0 & 0x0f) as f32);
                let dl1 = _mm512_set1_ps(d * (s1 & 0x0f) as f32);
                let ml0 = _mm512_set1_ps(dmin * (s0 >> 4) as f32);
                let ml1 = _mm512_set1_ps(dmin * (s1 >> 4) as f32);
                let c0 = f32_u8(_mm256_castsi256_si128(q));
                let c1 = f32_u8(_mm256_extracti128_si256::<1>(q));
                let v0 = _mm512_sub_ps(_mm512_mul_ps(dl0, c0), ml0);
                let v1 = _mm512_sub_ps(_mm512_mul_ps(dl1, c1), ml1);
                put32(&mut o[128 * h + 32 * s..], v0, v1);
            }
        }
    }
}

/// `Q3_K` rows to bf16 bits. Super-block (110 bytes): `hmask[32]`, `qs[64]` (low 2 bits as
/// `Q2_K`), 12 bytes of 6-bit scales, f16 `d`; value `(d · (sc_j - 32)) · (q - 4)` for
/// sub-block `j` of 16, where the high bit of `q` for value `128h + 32s + l` is bit `4h + s`
/// of `hmask[l]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_q3_k(bytes: &[u8], out: &mut [u16]) {
    use jing_tensor::quant::q3_k;
    for (blk, o) in bytes.chunks_exact(110).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(blk, q3_k::D);
        let sc = q3_scales(&blk[q3_k::SCALES..q3_k::SCALES + 12]);
        let hm = load32(&blk[q3_k::HMASK..]);
        let four = _mm256_set1_epi8(4);
        for h in 0..2 {
            let qs = load32(&blk[q3_k::QS + 32 * h..]);
            for s in 0..4 {
                let low = crumbs(qs, s);
                // q - 4: subtract 4 where the high bit is clear.
                let clear =
                    _mm256_testn_epi8_mask(hm, _mm256_set1_epi8((1u8 << (4 * h + s)) as i8));
                let q = _mm256_mask_sub_epi8(low, clear, low, four);
                let j0 = 8 * h + 2 * s;
                let dl0 = _mm512_set1_ps(d * (sc[j0] as i8 - 32) as f32);
                let dl1 = _mm512_set1_ps(d * (sc[j0 + 1] as i8 - 32) as f32);
                let c0 = f32_i8(_mm256_castsi256_si128(q));
                let c1 = f32_i8(_mm256_extracti128_si256::<1>(q));
                put32(
                    &mut o[128 * h + 32 * s..],
                    _mm512_mul_ps(dl0, c0),
                    _mm512_mul_ps(dl1, c1),
                );
            }
        }
    }
}

/// The 16 `Q3_K` sub-block scales plus 32 (`0..64`, byte `j` of the result): what
/// `q3_k::unpack_scales` gives (plus 32), with word operations instead of a loop per scale.
#[inline(always)]
fn q3_scales(s: &[u8]) -> [u8; 16] {
    let low = u64::from_le_bytes(s[..8].try_into().expect("8 bytes"));
    let high = u32::from_le_bytes(s[8..12].try_into().expect("4 bytes")) as u64;
    const M4: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const M2: u64 = 0x0303_0303;
    // Scale j < 8: low nibble of byte j, top bits (high >> 2(j / 4)) of byte j % 4; scale
    // j >= 8: high nibble of byte j - 8, top bits (high >> 2(j / 4)) of byte j % 4.
    let top_a = (high & M2) | ((high >> 2) & M2) << 32;
    let top_b = ((high >> 4) & M2) | ((high >> 6) & M2) << 32;
    let a = (low & M4) | top_a << 4;
    let b = ((low >> 4) & M4) | top_b << 4;
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&b.to_le_bytes());
    out
}

/// `Q5_K` rows to bf16 bits. Super-block (176 bytes): f16 `d`, f16 `dmin`, 12 bytes of 6-bit
/// scales and mins (as `Q4_K`), `qh[32]`, then 128 bytes of nibbles as `Q4_K`; bit 4 of value
/// `32j + l` is bit `j` of `qh[l]`. Value `(d · sc_j) · q - dmin · m_j`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_q5_k(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(176).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(blk, 0);
        let dmin = f16_at(blk, 2);
        let (sc, mn) = jing_tensor::quant::unpack_scales_mins_k4(&blk[4..16]);
        let qh = load32(&blk[16..]);
        let mask = _mm256_set1_epi8(0x0f);
        let sixteen = _mm256_set1_epi8(16);
        for i in 0..4 {
            let q = load32(&blk[48 + 32 * i..]);
            let lo = _mm256_and_si256(q, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
            for (j, low) in [(2 * i, lo), (2 * i + 1, hi)] {
                let set = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((1u8 << j) as i8));
                let codes = _mm256_mask_add_epi8(low, set, low, sixteen);
                let dl = _mm512_set1_ps(d * sc[j] as f32);
                let ml = _mm512_set1_ps(dmin * mn[j] as f32);
                let c0 = f32_u8(_mm256_castsi256_si128(codes));
                let c1 = f32_u8(_mm256_extracti128_si256::<1>(codes));
                let v0 = _mm512_sub_ps(_mm512_mul_ps(dl, c0), ml);
                let v1 = _mm512_sub_ps(_mm512_mul_ps(dl, c1), ml);
                put32(&mut o[32 * j..], v0, v1);
            }
        }
    }
}

/// The 32 `IQ4` codes of the 16 nibble bytes `qs` (low nibbles first, then high ones), as
/// two runs of 16 i8.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn iq4_codes(qs: &[u8]) -> (__m128i, __m128i) {
    use jing_tensor::quant::iq_tables::KVALUES_IQ4NL;
    // SAFETY: the table has 16 i8 (16 bytes); unaligned load.
    let kv = unsafe { _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()) };
    let (lo, hi) = nibbles(load16(qs));
    (_mm_shuffle_epi8(kv, lo), _mm_shuffle_epi8(kv, hi))
}

/// `IQ4_NL` rows to bf16 bits. Block (18 bytes): f16 `d`, 16 bytes of nibbles as `Q4_0`;
/// value `(d · 1) · kvalue[q]` (the integer form's `dc · m · c`, `m = 1`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_iq4_nl(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
        let dl = _mm512_set1_ps(f16_at(blk, 0));
        let (lo, hi) = iq4_codes(&blk[2..]);
        put32(
            o,
            _mm512_mul_ps(dl, f32_i8(lo)),
            _mm512_mul_ps(dl, f32_i8(hi)),
        );
    }
}

/// `IQ4_XS` rows to bf16 bits. Super-block (136 bytes): f16 `d`, u16 of high scale bits, 4
/// bytes of low ones, then per 32 elements 16 nibble bytes as `IQ4_NL`; value
/// `(d · (s - 32)) · kvalue[q]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_iq4_xs(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(136).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(blk, 0);
        for ib in 0..8 {
            let s = jing_tensor::quant::iq::iq4_xs_scale(blk, ib) as i16 - 32;
            let dl = _mm512_set1_ps(d * s as f32);
            let (lo, hi) = iq4_codes(&blk[8 + 16 * ib..]);
            put32(
                &mut o[32 * ib..],
                _mm512_mul_ps(dl, f32_i8(lo)),
                _mm512_mul_ps(dl, f32_i8(hi)),
            );
        }
    }
}

/// `o[..64]` = bf16 of the 64 signed codes `v` (byte `l` is value `l`) times `dl[l / 16]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn put64(o: &mut [u16], v: __m512i, dl: [f32; 4]) {
    let (d0, d1) = (_mm512_set1_ps(dl[0]), _mm512_set1_ps(dl[1]));
    let (d2, d3) = (_mm512_set1_ps(dl[2]), _mm512_set1_ps(dl[3]));
    put32(
        o,
        _mm512_mul_ps(d0, f32_i8(_mm512_castsi512_si128(v))),
        _mm512_mul_ps(d1, f32_i8(_mm512_extracti32x4_epi32::<1>(v))),
    );
    put32(
        &mut o[32..],
        _mm512_mul_ps(d2, f32_i8(_mm512_extracti32x4_epi32::<2>(v))),
        _mm512_mul_ps(d3, f32_i8(_mm512_extracti32x4_epi32::<3>(v))),
    );
}

/// `IQ3_S` rows to bf16 bits, 64 values (16 grid entries) per step with a gather. Super-block
/// (110 bytes): f16 `d`, 64 low index bytes, 8 bytes of ninth index bits (bit `i % 8` of byte
/// `i / 8` for entry `i`), 32 sign bytes (bit `l % 8` of byte `l / 8` for value `l`), 4 bytes
/// of 4-bit scales `s` per 32 values; value `(d · (2s + 1)) · ±grid` (as
/// `jing_tensor::quant::iq::Iq3S`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_iq3_s(bytes: &[u8], out: &mut [u16]) {
    use jing_tensor::quant::iq_tables::IQ3S_GRID;
    for (blk, o) in bytes.chunks_exact(110).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(blk, 0);
        for q in 0..4 {
            let low = _mm512_cvtepu8_epi32(load16(&blk[2 + 16 * q..]));
            let ninth = u16::from_le_bytes([blk[66 + 2 * q], blk[67 + 2 * q]]);
            let idx = _mm512_mask_add_epi32(low, ninth, low, _mm512_set1_epi32(256));
            // SAFETY: every index is below 512, the table's length (u32 entries, scale 4).
            let grid = unsafe { _mm512_i32gather_epi32::<4>(idx, IQ3S_GRID.as_ptr().cast()) };
            let signs = u64::from_le_bytes(blk[74 + 8 * q..82 + 8 * q].try_into().expect("8"));
            let v = _mm512_mask_sub_epi8(grid, signs, _mm512_setzero_si512(), grid);
            // Scales 2s + 1 of values 64q..64q + 32 (low nibble) and 64q + 32..64q + 64.
            let dl0 = d * (2 * (blk[106 + q] & 15) as i16 + 1) as f32;
            let dl1 = d * (2 * (blk[106 + q] >> 4) as i16 + 1) as f32;
            put64(&mut o[64 * q..], v, [dl0, dl0, dl1, dl1]);
        }
    }
}

/// A codebook IQ type's rows to bf16 bits: the integer form (see `jing_tensor::quant::iq`)
/// 8 codes at a time in registers; value `(dc · m_j) · c` for sub-block `j` of 16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn dequant_iq<I: jing_tensor::quant::iq::IqGroups>(bytes: &[u8], out: &mut [u16]) {
    for (blk, o) in bytes.chunks_exact(I::BYTES).zip(out.chunks_exact_mut(256)) {
        let dc = I::dc(blk);
        for q in 0..8 {
            let g = |i: usize| I::group(blk, 4 * q + i) as i64;
            let lo = _mm_set_epi64x(g(1), g(0));
            let hi = _mm_set_epi64x(g(3), g(2));
            let dl0 = _mm512_set1_ps(dc * I::scale(blk, 2 * q) as f32);
            let dl1 = _mm512_set1_ps(dc * I::scale(blk, 2 * q + 1) as f32);
            put32(
                &mut o[32 * q..],
                _mm512_mul_ps(dl0, f32_i8(lo)),
                _mm512_mul_ps(dl1, f32_i8(hi)),
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
