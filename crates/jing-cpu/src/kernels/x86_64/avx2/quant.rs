//! The GGUF block-type matmul on AVX2 (see `x86_64::quant`): the integer primitives as
//! `vpmaddubsw` (u8 x i8 pairs to i16) then `vpmaddwd` (i16 pairs to i32), and the `Q4_K`/`Q5_K`
//! kernels (see below).

use crate::kernels::x86_64::block;
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
fn dot_q4_0<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_q4_0_ymm::<T>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_iq4_nl<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_iq4_nl_ymm::<T>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_1<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_q4_1_ymm::<T>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_0<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_q5_0_ymm::<T>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_1<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_q5_1_ymm::<T>(w, x)
}

/// `Q6_K` takes one token through the row loop's decode path (see `drive_rows!`).
const Q6K_ONE_TOKEN: bool = true;

/// Interleaved rows (`jing_tensor::RowLayout`): this table makes none and has no kernel for
/// them, so the generic one (a CPU whose table this is never interleaves).
fn interleaved(w: &Weight, x: &QuantX, rows: Range<usize>, y: &OutMatrix) {
    crate::kernels::generic::matmul_q(w, x, rows, y)
}

/// No special path for short rows here (see the VNNI module's).
#[target_feature(enable = "avx2,fma,f16c")]
fn short_rows(
    _d: DType,
    _data: &[u8],
    _rb: usize,
    _rows: Range<usize>,
    _x: &QuantX,
    _y: &OutMatrix,
) -> bool {
    false
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q8_0<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_q8_0_ymm::<T>(w, x)
}

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
fn dot_q3_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_q3_k_ymm::<T>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q6_k<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_q6_k_ymm::<T>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_iq2_xxs<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_iq2_xxs_ymm::<T>(w, x)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_iq3_xxs<const T: usize>(w: &[u8], x: &[XRow<'_>; T]) -> [f32; T] {
    dot_iq3_xxs_ymm::<T>(w, x)
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

// ---- Q4_K / Q5_K ------------------------------------------------------------------------
//
// As in the AVX-512 kernels (`avx512::quant`), the 6-bit scales and mins are unpacked in a
// vector (done per block in scalar code, this took a third of the kernel's time) and turned
// into i16 by byte shuffles, and the exact integers `I = Σ_j sc_j Σ u·q` and
// `M = Σ_j m_j·S_j` (`S_j` the sums of 32 activation codes) of several dot products are
// reduced together instead of one horizontal sum each:
//
// - one token (decode): blocks in groups of `G`, the scales of two blocks unpacked together
//   (one per 128-bit lane), the group's `I` and `M` reduced together ([`k4_group`]);
// - a tile of 2-4 tokens: block by block, the tokens' `I` and `M` reduced together
//   ([`dot_k4_tiles`]).
//
// The float terms are the generic `k_term`s (the same f32 operations, lane by lane, no fused
// multiply-add), added to each token's sum one by one in block order: the generic kernel's
// result, bit for bit.

/// Blocks per group of the `Q4_K`/`Q5_K` (and `Q2_K`) kernels.
const G: usize = 4;

/// `K4_SCALE[j]`: from a vector holding a block's 8 scale bytes in bytes `0..8` of each
/// 128-bit lane (see [`k4_scales_mins_x2`]), scale `j` as i16 in all 16 lanes (an index with
/// its top bit set makes a zero byte: the high byte of each u8 -> i16).
static K4_SCALE: [[u8; 32]; 8] = {
    let mut t = [[0u8; 32]; 8];
    let mut j = 0;
    while j < 8 {
        let mut i = 0;
        while i < 32 {
            t[j][i] = if i % 2 == 0 { j as u8 } else { 0x80 };
            i += 1;
        }
        j += 1;
    }
    t
};

/// Per 128-bit lane: bytes `8..16` (a block's 8 mins, see [`k4_scales_mins_x2`]) as 8 i16.
static K4_MINS: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        t[i] = if i % 2 == 0 {
            (8 + (i % 16) / 2) as u8
        } else {
            0x80
        };
        i += 1;
    }
    t
};

/// 32 bytes of a table as a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn table32(t: &[u8; 32]) -> __m256i {
    // SAFETY: `t` is 32 bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(t.as_ptr().cast()) }
}

/// `Q4_K`/`Q5_K` (`BB` bytes per block, low nibbles at `QS`, fifth bits at `QH`, 0: none):
/// one token in groups of `G` blocks, a tile of several block by block (see above; groups of
/// several tokens' vectors spilled registers, and were slower than the old kernel).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_k4<const T: usize, const BB: usize, const QS: usize, const QH: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
) -> [f32; T] {
    if T > 1 {
        return dot_k4_tiles::<T, BB, QS, QH>(w, x);
    }
    let (x, mut acc) = (std::array::from_ref(&x[0]), 0.0f32);
    by_groups!(w.len() / BB, |N, b0| k4_group::<N, BB, QS, QH>(
        w, x, b0, &mut acc
    ));
    let mut out = [0.0f32; T];
    out[0] = acc;
    out
}

/// The 6-bit scales and mins of two `Q4_K`/`Q5_K` blocks (`heads`: the first 16 bytes of
/// each, `d`, `dmin` and the 12 packed scale bytes, one block per 128-bit lane) as bytes: per
/// lane, the block's 8 scales then its 8 mins (layout:
/// `jing_tensor::quant::unpack_scales_mins_k4`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_scales_mins_x2(heads: __m256i) -> __m256i {
    // Per lane, u32 words [d|dmin, a0, a1, a2] (a: the 12 scale bytes). Wanted:
    //   [a0 & 0x3f.., (a2 & 0x0f..) | hi2(a0), a1 & 0x3f.., (a2 >> 4 & 0x0f..) | hi2(a1)]
    // with hi2(a) = the top 2 bits of each byte of a moved to bits 4-5 = (a >> 2) & 0x30...
    let x = _mm256_shuffle_epi32::<0b11_10_11_01>(heads); // [a0, a2, a1, a2]
    let y = _mm256_shuffle_epi32::<0b10_10_01_01>(heads); // [a0, a0, a1, a1]
    let (k6, k4, k2) = (0x3f3f_3f3f, 0x0f0f_0f0f, 0x3030_3030);
    let low = _mm256_and_si256(
        _mm256_srlv_epi32(x, _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4)),
        _mm256_setr_epi32(k6, k4, k6, k4, k6, k4, k6, k4),
    );
    let high = _mm256_and_si256(
        _mm256_srli_epi32::<2>(y),
        _mm256_setr_epi32(0, k2, 0, k2, 0, k2, 0, k2),
    );
    _mm256_or_si256(low, high)
}

/// The sums of 32 codes of blocks `b`, `b + 1` of `x` (8 i16 per block), zero for the second
/// unless `two`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sums32_x2(x: &XRow<'_>, b: usize, two: bool) -> __m256i {
    if two {
        ld_i16x16(&x.sums32[8 * b..])
    } else {
        let s = &x.sums32[8 * b..8 * b + 8];
        // SAFETY: `s` has 8 i16 (16 bytes); the load is unaligned.
        let lo = unsafe { _mm_loadu_si128(s.as_ptr().cast()) };
        _mm256_set_m128i(_mm_setzero_si128(), lo)
    }
}

/// The first 16 bytes (`d`, `dmin` and the 12 packed scale bytes) of block `b0 + j` of a row
/// of `BB`-byte blocks, zero if `j >= N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_head<const N: usize, const BB: usize>(w: &[u8], b0: usize, j: usize) -> __m128i {
    if j < N {
        ld16(block::<BB>(w, b0 + j))
    } else {
        _mm_setzero_si128()
    }
}

/// Lane `j`: the sum of the 8 i32 lanes of `v[j]` (exact: the callers' sums fit i32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sums4(v: [__m256i; 4]) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// Blocks `b0..b0 + N` of a `Q4_K`/`Q5_K` row for one token: `Σ_b k_term(I_b, M_b)` added to
/// `acc` in block order, with `I = Σ_j sc_j Σ u·q` and `M = Σ_j m_j·S_j` (generic `dot_k4`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_group<const N: usize, const BB: usize, const QS: usize, const QH: usize>(
    w: &[u8],
    x: &[XRow<'_>; 1],
    b0: usize,
    acc: &mut f32,
) {
    prefetch(w, BB * b0, BB * N);
    let hd = [
        k4_head::<N, BB>(w, b0, 0),
        k4_head::<N, BB>(w, b0, 1),
        k4_head::<N, BB>(w, b0, 2),
        k4_head::<N, BB>(w, b0, 3),
    ];
    // Blocks 0, 1 and 2, 3 of the group, one per 128-bit lane: [scales | mins] bytes.
    let sm01 = k4_scales_mins_x2(_mm256_set_m128i(hd[1], hd[0]));
    let sm23 = k4_scales_mins_x2(_mm256_set_m128i(hd[3], hd[2]));
    // Each block gets its lane of the scales in both lanes.
    let zero = _mm256_setzero_si256();
    let i0 = k4_block::<1, BB, QS, QH>(
        block::<BB>(w, b0),
        x,
        b0,
        _mm256_permute2x128_si256::<0x00>(sm01, sm01),
    )[0];
    let i1 = if N > 1 {
        k4_block::<1, BB, QS, QH>(
            block::<BB>(w, b0 + 1),
            x,
            b0 + 1,
            _mm256_permute2x128_si256::<0x11>(sm01, sm01),
        )[0]
    } else {
        zero
    };
    let i2 = if N > 2 {
        k4_block::<1, BB, QS, QH>(
            block::<BB>(w, b0 + 2),
            x,
            b0 + 2,
            _mm256_permute2x128_si256::<0x00>(sm23, sm23),
        )[0]
    } else {
        zero
    };
    let i3 = if N > 3 {
        k4_block::<1, BB, QS, QH>(
            block::<BB>(w, b0 + 3),
            x,
            b0 + 3,
            _mm256_permute2x128_si256::<0x11>(sm23, sm23),
        )[0]
    } else {
        zero
    };
    // Lane j: I of block j.
    let i = sums4([i0, i1, i2, i3]);
    // M per block: the mins as i16 (zero for absent blocks) times the sums of 32 codes gives
    // 4 partial sums per 128-bit lane, [b0 | b1] and [b2 | b3]; hadd makes
    // [b0, b0, b2, b2 | b1, b1, b3, b3] (pairs), then [b0, b2, b1, b3].
    let mins = table32(&K4_MINS);
    let p01 = _mm256_madd_epi16(_mm256_shuffle_epi8(sm01, mins), sums32_x2(&x[0], b0, N > 1));
    let p23 = if N > 2 {
        _mm256_madd_epi16(
            _mm256_shuffle_epi8(sm23, mins),
            sums32_x2(&x[0], b0 + 2, N > 3),
        )
    } else {
        zero
    };
    let h = _mm256_hadd_epi32(p01, p23);
    let m = _mm_hadd_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
    let m = _mm_shuffle_epi32::<0b11_01_10_00>(m);
    // [d, dmin] (an f16 pair, word 0 of the head) of each block, zero past N, as f32:
    // f = [d0, dmin0, d1, dmin1 | d2, dmin2, d3, dmin3].
    let f = _mm256_cvtph_ps(_mm_unpacklo_epi64(
        _mm_unpacklo_epi32(hd[0], hd[1]),
        _mm_unpacklo_epi32(hd[2], hd[3]),
    ));
    let (lo, hi) = (_mm256_castps256_ps128(f), _mm256_extractf128_ps::<1>(f));
    let d = _mm_shuffle_ps::<0b10_00_10_00>(lo, hi);
    let dmin = _mm_shuffle_ps::<0b11_01_11_01>(lo, hi);
    add_min_terms::<N>(acc, &x[0], b0, (d, dmin), (i, m));
}

/// `v` with bit `j` (< 8) of each byte moved to bit 4 (and other bits elsewhere: the caller
/// masks; the 16-bit shifts carry nothing from the neighbouring byte into bit 4).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bit_to_4(v: __m256i, j: usize) -> __m256i {
    match j {
        0 => _mm256_slli_epi16::<4>(v),
        1 => _mm256_slli_epi16::<3>(v),
        2 => _mm256_slli_epi16::<2>(v),
        3 => _mm256_slli_epi16::<1>(v),
        4 => v,
        5 => _mm256_srli_epi16::<1>(v),
        6 => _mm256_srli_epi16::<2>(v),
        _ => _mm256_srli_epi16::<3>(v),
    }
}

/// `Q4_K`/`Q5_K` for a tile of 2 to 4 tokens, block by block (the groups of [`k4_group`] for
/// several tokens would need too many registers): each block is unpacked once for the tile
/// (its scales and mins in one vector, as in [`k4_scales_mins_x2`]), and the exact `I` and `M`
/// of the tokens are reduced together, one token per lane, for the generic float terms.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_k4_tiles<const T: usize, const BB: usize, const QS: usize, const QH: usize>(
    w: &[u8],
    x: &[XRow<'_>; T],
) -> [f32; T] {
    const { assert!(T <= 4, "a tile has at most 4 tokens") };
    let mut out = [0.0f32; T];
    let mins = table32(&K4_MINS);
    let zero = _mm256_setzero_si256();
    for b in 0..w.len() / BB {
        let blk = block::<BB>(w, b);
        // The block's head in both 128-bit lanes, so its scales are in both.
        let head = ld16(blk);
        let sm = k4_scales_mins_x2(_mm256_set_m128i(head, head));
        let a = k4_block::<T, BB, QS, QH>(blk, x, b, sm);
        // Lane t: I of token t (via [Σlo a0..a3 | Σhi a0..a3]), zero past T.
        let at = |t: usize| if t < T { a[t] } else { zero };
        let h = _mm256_hadd_epi32(
            _mm256_hadd_epi32(at(0), at(1)),
            _mm256_hadd_epi32(at(2), at(3)),
        );
        let i = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
        // M of each token: the mins (i16, both lanes) times the sums of 32 codes of tokens
        // [t0 | t1] and [t2 | t3] make 4 partial sums per lane; hadd makes
        // [t0, t0, t2, t2 | t1, t1, t3, t3] (pairs), then [t0, t2, t1, t3].
        let m16 = _mm256_shuffle_epi8(sm, mins);
        let s = |t: usize| {
            if t < T {
                let s = &x[t].sums32[8 * b..8 * b + 8];
                // SAFETY: `s` has 8 i16 (16 bytes); the load is unaligned.
                unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
            } else {
                _mm_setzero_si128()
            }
        };
        let p01 = _mm256_madd_epi16(m16, _mm256_set_m128i(s(1), s(0)));
        let p23 = _mm256_madd_epi16(m16, _mm256_set_m128i(s(3), s(2)));
        let h = _mm256_hadd_epi32(p01, p23);
        let m = _mm_hadd_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
        let m = _mm_shuffle_epi32::<0b11_01_10_00>(m);
        // [d, dmin, ..] of the block (f16, word 0 of the head) as f32, each in all lanes.
        let f = _mm_cvtph_ps(head);
        let (d, dmin) = (
            _mm_shuffle_ps::<0>(f, f),
            _mm_shuffle_ps::<0b01_01_01_01>(f, f),
        );
        let dx = |t: usize| if t < T { x[t].d[b] } else { 0.0 };
        let dx = _mm_setr_ps(dx(0), dx(1), dx(2), dx(3));
        // k_term: (dx·d)·I - (dx·dmin)·M, lane by lane.
        let terms = _mm_sub_ps(
            _mm_mul_ps(_mm_mul_ps(dx, d), _mm_cvtepi32_ps(i)),
            _mm_mul_ps(_mm_mul_ps(dx, dmin), _mm_cvtepi32_ps(m)),
        );
        let mut v = [0.0f32; 4];
        // SAFETY: `v` is 4 f32; the store is unaligned.
        unsafe { _mm_storeu_ps(v.as_mut_ptr(), terms) };
        for t in 0..T {
            out[t] += v[t];
        }
    }
    out
}

/// One `Q4_K`/`Q5_K` block `b` (`blk`), whose 8 scale bytes are bytes `0..8` of both 128-bit
/// lanes of `scales`: per token, i32 lanes summing to its `I`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_block<const T: usize, const BB: usize, const QS: usize, const QH: usize>(
    blk: &[u8; BB],
    x: &[XRow<'_>; T],
    b: usize,
    scales: __m256i,
) -> [__m256i; T] {
    let nib = _mm256_set1_epi8(0x0f);
    let five = _mm256_set1_epi8(0x10);
    let mut xs: [&[i8]; T] = [&[]; T];
    for t in 0..T {
        xs[t] = &x[t].qs[256 * b..256 * b + 256];
    }
    // Bit j of qh[l] is the fifth bit of element 32j + l.
    let qh = if QH > 0 {
        ld32(&blk[QH..])
    } else {
        _mm256_setzero_si256()
    };
    let mut acc = [_mm256_setzero_si256(); T];
    for p in 0..4 {
        // Sub-blocks 2p (low nibbles) and 2p + 1 (high nibbles).
        let q = ld32(&blk[QS + 32 * p..]);
        let mut lo = _mm256_and_si256(q, nib);
        let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), nib);
        if QH > 0 {
            lo = _mm256_or_si256(lo, _mm256_and_si256(bit_to_4(qh, 2 * p), five));
            hi = _mm256_or_si256(hi, _mm256_and_si256(bit_to_4(qh, 2 * p + 1), five));
        }
        let s_lo = _mm256_shuffle_epi8(scales, table32(&K4_SCALE[2 * p]));
        let s_hi = _mm256_shuffle_epi8(scales, table32(&K4_SCALE[2 * p + 1]));
        for t in 0..T {
            acc[t] = dot_u8_i8_scaled(acc[t], lo, ldx(&xs[t][64 * p..]), s_lo);
            acc[t] = dot_u8_i8_scaled(acc[t], hi, ldx(&xs[t][64 * p + 32..]), s_hi);
        }
    }
    acc
}

/// How far ahead of the group being computed its weight bytes are prefetched.
const PREFETCH: usize = 8192;

/// Prefetches the `len` weight bytes `PREFETCH` past `at` of `w` (possibly past its end: the
/// next rows of the tensor, or nothing).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn prefetch(w: &[u8], at: usize, len: usize) {
    // As in the AVX-512 kernels: decode from DRAM ran a few percent faster with it.
    let p = w.as_ptr().wrapping_add(at + PREFETCH);
    for off in (0..len).step_by(64) {
        // A prefetch never faults, whatever the address (the intrinsic is safe).
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off).cast());
    }
}

mod k2;
use k2::dot_q2_k;
