//! `Q2_K` and `Q3_K` on 512-bit vectors, in groups of [`G`] blocks as `Q4_K` (see the parent
//! module): the exact integers of each block in a vector of i32 lanes, one reduction per group,
//! the generic float terms four at a time, added in block order. So the results are the generic
//! kernels' bit for bit.
//!
//! The 2-bit codes of a block are two runs of 32 bytes (`qs[32h..32h + 32]`, elements
//! `128h + 32s + l` in bits `2s..2s + 2` of byte `l`). Each run is broadcast to both halves of
//! a vector and shifted by `[0 | 4]` or `[2 | 6]` bits, which gives the chunks of 32 codes
//! `(4h, 4h + 2)` and `(4h + 1, 4h + 3)`: the order of the activations' `qs_k4` (chunks
//! `0, 2, 1, 3, 4, 6, 5, 7`), so each 64 codes meet 64 activation codes in one load. Every
//! 128-bit lane then holds one sub-block of 16, whose scale a byte shuffle puts in its i16
//! lanes.
//!
//! Before, these types ran the shared 256-bit kernels, a horizontal sum and a scalar float
//! step per block: about 14 GB/s from L2 on one Zen 5 core, far below what memory delivers.

use super::*;
use jing_tensor::quant::{q2_k, q3_k};

/// The sub-block of 16 (`0..16`) in 128-bit lane `lane` of chunk pair `p` (chunks `(0, 2)`,
/// `(1, 3)`, `(4, 6)`, `(5, 7)`: sub-blocks `[2c, 2c + 1, 2c', 2c' + 1]`, one per lane).
const fn pair_sub_block(p: usize, lane: usize) -> usize {
    // The pair's first chunk: 0, 1, 4, 5; its second is two on.
    let c = (p / 2) * 4 + p % 2;
    if lane < 2 {
        2 * c + lane
    } else {
        2 * (c + 2) + lane - 2
    }
}

/// `SHUF_K23[h]`: the i16 scales that the packed sums of four of chunk pairs `2h` and `2h + 1`
/// meet (see `k4_block`: `vpackssdw` puts, per 128-bit lane, four sums of pair `2h` (words
/// 0-3) before four of pair `2h + 1` (words 4-7)), from a vector holding the block's 16 scale
/// bytes in every lane. An index with its top bit set makes a zero byte (the high byte of each
/// u8 -> i16).
static SHUF_K23: [[u8; 64]; 2] = {
    let mut t = [[0u8; 64]; 2];
    let mut h = 0;
    while h < 2 {
        let mut i = 0;
        while i < 64 {
            let (lane, word) = (i / 16, (i % 16) / 2);
            let p = 2 * h + if word >= 4 { 1 } else { 0 };
            t[h][i] = if i % 2 == 0 {
                pair_sub_block(p, lane) as u8
            } else {
                0x80
            };
            i += 1;
        }
        h += 1;
    }
    t
};

/// The i16 bit shifts that take a broadcast run of 2-bit codes to the chunk pairs: `[0 | 4]`
/// (chunks `4h`, `4h + 2`) and `[2 | 6]` (`4h + 1`, `4h + 3`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pair_shifts() -> [__m512i; 2] {
    let half = |lo: i16, hi: i16| {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_set1_epi16(lo)),
            _mm256_set1_epi16(hi),
        )
    };
    [half(0, 4), half(2, 6)]
}

/// The 2-bit codes (`0..=3`) of chunk pair `2h + k` from the broadcast run `q` of half `h`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn two_bit_pair(q: __m512i, shift: __m512i) -> __m512i {
    // The mask keeps each byte's bits in that byte across the 16-bit shift.
    _mm512_and_si512(_mm512_srlv_epi16(q, shift), _mm512_set1_epi8(3))
}

/// 32 bytes from the start of `b` in both halves of a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn ld32_twice(b: &[u8]) -> __m512i {
    _mm512_broadcast_i64x4(ld32(b))
}

/// Per block of a group, `Σ_j v_j·S_j` over its 16 sub-blocks, with `v` (16 bytes per 128-bit
/// lane, lane `b` for block `b0 + b`, zero past `N`) the unsigned weights and `S_j` the
/// activations' sums of 16 codes (exact: `|Σ| <= 16·255·16·127`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn weighted_sums16<const N: usize>(v: __m512i, x: &XRow<'_>, b0: usize) -> __m128i {
    let s = &x.sums[16 * b0..16 * (b0 + N)];
    let mut padded = [0i16; 16 * G];
    let s: &[i16] = if N == G {
        s
    } else {
        padded[..16 * N].copy_from_slice(s);
        &padded
    };
    // SAFETY: `s` has 64 i16 (128 bytes); the loads are unaligned.
    let (s01, s23) = unsafe {
        (
            _mm512_loadu_si512(s.as_ptr().cast()),
            _mm512_loadu_si512(s[32..].as_ptr().cast()),
        )
    };
    // i32 lanes: blocks 0 and 1 (two 128-bit lanes each), then blocks 2 and 3.
    let a = _mm512_madd_epi16(_mm512_cvtepu8_epi16(_mm512_castsi512_si256(v)), s01);
    let b = _mm512_madd_epi16(_mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(v)), s23);
    // Lane `b`: the two lanes of block `b` added.
    let even = _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b);
    let odd = _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b);
    lane_sums(_mm512_add_epi32(even, odd))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q2_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    if T > 1 {
        // The 256-bit kernel is faster here: a group keeps a vector per block and token
        // (16 for 4 tokens) and runs out of registers (one Zen 5 core, 128 tokens: 107
        // against 80 GOP/s for `Q2_K`, 93 against 82 for `Q3_K`).
        return dot_q2_k_ymm::<T>(w, x);
    }
    let mut out = [0.0f32; T];
    let shuf = tables(&SHUF_K23);
    let shifts = pair_shifts();
    by_groups!(w.len() / 84, |N, b0| q2_group::<T, N>(
        w, x, b0, &shuf, &shifts, &mut out
    ));
    out
}

/// Blocks `b0..b0 + N` of a `Q2_K` row: per token, `Σ_b k_term(I_b, M_b)` added to `out` in
/// block order, `I = Σ_j sc_j Σ u·q` and `M = Σ_j m_j·S_j` (generic `dot_q2_k`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q2_group<const T: usize, const N: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
    b0: usize,
    shuf: &[__m512i; 2],
    shifts: &[__m512i; 2],
    out: &mut [f32; T],
) {
    prefetch(w, 84 * b0, 84 * N);
    // Per lane (block): its 16 scale bytes, scale in the low nibble, min in the high one.
    let raw = block_heads::<N, 84, { q2_k::SCALES }>(w, b0);
    let nib = _mm512_set1_epi8(0x0f);
    let sc = _mm512_and_si512(raw, nib);
    let mins = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), nib);
    // Written out per block, as in `k4_group`.
    let zero = [_mm512_setzero_si512(); T];
    let mut r = [zero; G];
    r[0] = q2_block::<T>(block::<84>(w, b0), x, b0, shuf, shifts, {
        _mm512_shuffle_i32x4::<0b00_00_00_00>(sc, sc)
    });
    if N > 1 {
        r[1] = q2_block::<T>(block::<84>(w, b0 + 1), x, b0 + 1, shuf, shifts, {
            _mm512_shuffle_i32x4::<0b01_01_01_01>(sc, sc)
        });
    }
    if N > 2 {
        r[2] = q2_block::<T>(block::<84>(w, b0 + 2), x, b0 + 2, shuf, shifts, {
            _mm512_shuffle_i32x4::<0b10_10_10_10>(sc, sc)
        });
    }
    if N > 3 {
        r[3] = q2_block::<T>(block::<84>(w, b0 + 3), x, b0 + 3, shuf, shifts, {
            _mm512_shuffle_i32x4::<0b11_11_11_11>(sc, sc)
        });
    }
    // d and dmin of each block as f32 lanes, zero past N: the last 16 bytes of each block
    // hold them in i32 3 (vector loads: the scalar reads of the f16s, stored and reloaded as a
    // vector, cost about 5% of the kernel).
    const { assert!(q2_k::D == 84 - 4 && q2_k::DMIN == q2_k::D + 2) };
    let (d, dmin) = f16_pairs_x4::<3>(block_heads::<N, 84, { 84 - 16 }>(w, b0));
    for t in 0..T {
        let i = reduce4(&[r[0][t], r[1][t], r[2][t], r[3][t]]);
        let m = weighted_sums16::<N>(mins, &x[t], b0);
        add_min_terms::<N>(&mut out[t], &x[t], b0, (d, dmin), (i, m));
    }
}

/// One `Q2_K` block `b` (`blk`), whose 16 scales (`0..=15`) are bytes `0..16` of every
/// 128-bit lane of `scales`: per token, i32 lanes summing to `I`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q2_block<const T: usize>(
    blk: &[u8; 84],
    x: &[XRow<'_>; T],
    b: usize,
    shuf: &[__m512i; 2],
    shifts: &[__m512i; 2],
    scales: __m512i,
) -> [__m512i; T] {
    let mut acc = [_mm512_setzero_si512(); T];
    for h in 0..2 {
        let q = ld32_twice(&blk[q2_k::QS + 32 * h..]);
        let u = [two_bit_pair(q, shifts[0]), two_bit_pair(q, shifts[1])];
        let s = _mm512_shuffle_epi8(scales, shuf[h]);
        for t in 0..T {
            // Chunk pairs 2h and 2h + 1 (their scales by `SHUF_K23[h]`).
            acc[t] = packed_sums(acc[t], &u, &x[t].qs_k4[256 * b + 128 * h..], s);
        }
    }
    acc
}

/// The 6-bit scales of four `Q3_K` blocks as unsigned bytes (`s + 32`), from `heads`: per
/// 128-bit lane the block's bytes `94..110` (two code bytes, the 12 packed scale bytes, `d`).
/// The generic `q3_k::unpack_scales` for four blocks at once.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q3_scales_x4(heads: __m512i) -> __m512i {
    // With a0, a1, a2 the three u32 words of packed scales (bytes 2..14 of each lane):
    //   [a0 & 0x0f.., a1 & 0x0f.., a0 >> 4 & 0x0f.., a1 >> 4 & 0x0f..]
    // | [a2 & 0x03.., a2 >> 2 & 0x03.., a2 >> 4 & 0x03.., a2 >> 6 & 0x03..] << 4.
    let x = _mm512_shuffle_epi8(
        heads,
        _mm512_broadcast_i32x4(_mm_setr_epi8(
            2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 8, 9,
        )),
    );
    let y = _mm512_shuffle_epi8(
        heads,
        _mm512_broadcast_i32x4(_mm_setr_epi8(
            10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13,
        )),
    );
    let low = _mm512_and_si512(
        _mm512_srlv_epi32(x, _mm512_set4_epi32(4, 4, 0, 0)),
        _mm512_set1_epi8(0x0f),
    );
    let high = _mm512_and_si512(
        _mm512_srlv_epi32(y, _mm512_set4_epi32(6, 4, 2, 0)),
        _mm512_set1_epi8(0x03),
    );
    _mm512_or_si512(low, _mm512_slli_epi32::<4>(high))
}

/// `BITS_Q3[p]`: the bit of the high-bit mask that chunk pair `p`'s codes take (bit `c` for
/// chunk `c`), in the bytes of each 256-bit half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q3_bits() -> [__m512i; 4] {
    let half = |lo: u8, hi: u8| {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_set1_epi8(1 << lo)),
            _mm256_set1_epi8((1u8 << hi) as i8),
        )
    };
    [half(0, 2), half(1, 3), half(4, 6), half(5, 7)]
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q3_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    if T > 1 {
        // The 256-bit kernel is faster here: a group keeps a vector per block and token
        // (16 for 4 tokens) and runs out of registers (one Zen 5 core, 128 tokens: 107
        // against 80 GOP/s for `Q2_K`, 93 against 82 for `Q3_K`).
        return dot_q3_k_ymm::<T>(w, x);
    }
    let mut out = [0.0f32; T];
    let shuf = tables(&SHUF_K23);
    let shifts = pair_shifts();
    let bits = q3_bits();
    by_groups!(w.len() / 110, |N, b0| q3_group::<T, N>(
        w, x, b0, &shuf, &shifts, &bits, &mut out
    ));
    out
}

/// Blocks `b0..b0 + N` of a `Q3_K` row: per token, `Σ_b k_term_sym(I_b)` added to `out` in
/// block order, `I = Σ_j sc_j Σ (u - 4)·q` (generic `dot_q3_k`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q3_group<const T: usize, const N: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
    b0: usize,
    shuf: &[__m512i; 2],
    shifts: &[__m512i; 2],
    bits: &[__m512i; 4],
    out: &mut [f32; T],
) {
    prefetch(w, 110 * b0, 110 * N);
    let heads = block_heads::<N, 110, { q3_k::SCALES - 2 }>(w, b0);
    let sc = q3_scales_x4(heads);
    // Written out per block, as in `k4_group`.
    let zero = [_mm512_setzero_si512(); T];
    let mut r = [zero; G];
    r[0] = q3_block::<T>(block::<110>(w, b0), x, b0, shuf, shifts, bits, {
        _mm512_shuffle_i32x4::<0b00_00_00_00>(sc, sc)
    });
    if N > 1 {
        r[1] = q3_block::<T>(block::<110>(w, b0 + 1), x, b0 + 1, shuf, shifts, bits, {
            _mm512_shuffle_i32x4::<0b01_01_01_01>(sc, sc)
        });
    }
    if N > 2 {
        r[2] = q3_block::<T>(block::<110>(w, b0 + 2), x, b0 + 2, shuf, shifts, bits, {
            _mm512_shuffle_i32x4::<0b10_10_10_10>(sc, sc)
        });
    }
    if N > 3 {
        r[3] = q3_block::<T>(block::<110>(w, b0 + 3), x, b0 + 3, shuf, shifts, bits, {
            _mm512_shuffle_i32x4::<0b11_11_11_11>(sc, sc)
        });
    }
    // d of each block, the last two bytes of its heads (i32 3's high half).
    const { assert!(q3_k::D == q3_k::SCALES - 2 + 14 && q3_k::D + 2 == 110) };
    let (_, d) = f16_pairs_x4::<3>(heads);
    add_sym_terms_f32::<T, N>(&r, d, x, b0, out);
}

/// One `Q3_K` block `b` (`blk`), whose 16 scales plus 32 are bytes `0..16` of every 128-bit
/// lane of `scales`: per token, i32 lanes summing to `I`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q3_block<const T: usize>(
    blk: &[u8; 110],
    x: &[XRow<'_>; T],
    b: usize,
    shuf: &[__m512i; 2],
    shifts: &[__m512i; 2],
    bits: &[__m512i; 4],
    scales: __m512i,
) -> [__m512i; T] {
    let (four, bias) = (_mm512_set1_epi8(4), _mm512_set1_epi16(32));
    // Bit c of hm[l]: the third bit of code l of chunk c.
    let hm = ld32_twice(&blk[q3_k::HMASK..]);
    let mut acc = [_mm512_setzero_si512(); T];
    for h in 0..2 {
        let q = ld32_twice(&blk[q3_k::QS + 32 * h..]);
        // u = code + 4, in 0..=7.
        let code = |k: usize| {
            let low = two_bit_pair(q, shifts[k]);
            _mm512_mask_add_epi8(low, _mm512_test_epi8_mask(hm, bits[2 * h + k]), low, four)
        };
        let u = [code(0), code(1)];
        let s = _mm512_sub_epi16(_mm512_shuffle_epi8(scales, shuf[h]), bias);
        for t in 0..T {
            // Chunk pairs 2h and 2h + 1 (their scales by `SHUF_K23[h]`).
            acc[t] = packed_sums(acc[t], &u, &x[t].qs_k4[256 * b + 128 * h..], s);
        }
    }
    // Σ sc_j (u - 4)·q = Σ sc_j u·q - 4 Σ sc_j S_j: the offset as 8 i32 lanes to subtract.
    let sc16 = _mm256_sub_epi16(
        _mm256_cvtepu8_epi16(_mm512_castsi512_si128(scales)),
        _mm256_set1_epi16(32),
    );
    for t in 0..T {
        let off = _mm256_madd_epi16(sc16, ld_i16x16(&x[t].sums[16 * b..]));
        let off = _mm512_zextsi256_si512(_mm256_slli_epi32::<2>(off));
        acc[t] = _mm512_sub_epi32(acc[t], off);
    }
    acc
}
