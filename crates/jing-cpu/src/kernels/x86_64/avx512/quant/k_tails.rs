//! One token over `Q4_K`, `Q5_K` or `Q6_K` rows whose block count leaves one or two blocks past
//! the groups of [`G`] (rows of 1536: Qwen2.5-1.5B's hidden size and DeepSeek-V3's
//! `q_lora_rank`; rows of 512: its `kv_lora_rank`): two rows share one last group, the first
//! row's tail blocks in its first lanes and the second's after them.
//!
//! The end of a group (the reductions, the scales, the float terms) costs about as much for a
//! tail of one or two blocks as for four, so rows of six blocks ran 15% below rows of eight.
//! Each row's terms are still added to its own sum in block order, after its full groups, so
//! the results are the one-row kernels' (and the generic kernels') bit for bit. One thread,
//! from L2 (`[96, 1536]` and `[128, 512]`), GB/s before -> after: `Q4_K` 45.8 -> 51.1 and
//! 33.8 -> 52.6, `Q6_K` 52.0 -> 58.6 and 36.8 -> 65.1.

use super::*;
use crate::kernels::{OutMatrix, QuantX};
use jing_tensor::DType;
use std::ops::Range;

/// Rows `rows` of `data` (`rb` bytes each) against the one token of `x` into `y`, with the
/// tails of consecutive rows paired. False (nothing done) unless `d` is `Q4_K`, `Q5_K` or
/// `Q6_K` with one or two blocks past the groups.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn tail_pairs(
    d: DType,
    data: &[u8],
    rb: usize,
    rows: Range<usize>,
    x: &QuantX,
    y: &OutMatrix,
) -> bool {
    if !matches!(rb / d.block_bytes() % G, 1 | 2) {
        return false;
    }
    match d {
        DType::Q4K => k4_pairs::<144, 16, 0>(data, rb, rows, x, y),
        DType::Q5K => k4_pairs::<176, 48, 16>(data, rb, rows, x, y),
        DType::Q6K => q6_pairs(data, rb, rows, x, y),
        _ => return false,
    }
    true
}

/// `rows` in pairs through `$pair(row a, row b, x, sum a, sum b)`, each sum written to `y`; an
/// odd last row is paired with itself and its second sum dropped (one row computed twice per
/// call, where a one-row path would be a second caller of the group kernels, which the
/// compiler then stops inlining into the other: that cost rows of 2048 7%). A macro so that
/// `$pair` inlines here.
macro_rules! by_row_pairs {
    ($data:expr, $rb:expr, $rows:expr, $x:expr, $y:expr, $pair:expr) => {{
        let (data, rb, rows, y) = ($data, $rb, $rows, $y);
        let xr = [$x.row(0)];
        let mut n = rows.start;
        while n < rows.end {
            let m = (n + 1).min(rows.end - 1);
            let (mut a, mut b) = (0.0f32, 0.0f32);
            $pair(
                &data[n * rb..(n + 1) * rb],
                &data[m * rb..(m + 1) * rb],
                &xr,
                &mut a,
                &mut b,
            );
            // SAFETY: the caller owns columns `rows` of `y` (MatmulQFn contract), checked to
            // lie within its leading dimension; `m` is `n + 1` or `n`.
            unsafe {
                y.write(0, n, a);
                y.write(0, m, b);
            }
            n += 2;
        }
    }};
}

/// Which row's block each lane of a shared tail group holds: lanes `0..R` row a's blocks
/// `b0..b0 + R`, lanes `R..2R` row b's, the rest none.
#[inline]
fn lane_block<'w, const BB: usize, const R: usize>(
    wa: &'w [u8],
    wb: &'w [u8],
    b0: usize,
    lane: usize,
) -> Option<&'w [u8; BB]> {
    match lane {
        l if l < R => Some(block::<BB>(wa, b0 + l)),
        l if l < 2 * R => Some(block::<BB>(wb, b0 + l - R)),
        _ => None,
    }
}

/// The 16 bytes at `AT` of each lane's block (see [`lane_block`]), zero for no block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn tail_heads<const BB: usize, const AT: usize, const R: usize>(
    wa: &[u8],
    wb: &[u8],
    b0: usize,
) -> __m512i {
    let lane = |l: usize| {
        lane_block::<BB, R>(wa, wb, b0, l).map_or(_mm_setzero_si128(), |blk| ld16(&blk[AT..]))
    };
    let v = _mm512_castsi128_si512(lane(0));
    let v = _mm512_inserti32x4::<1>(v, lane(1));
    let v = _mm512_inserti32x4::<2>(v, lane(2));
    _mm512_inserti32x4::<3>(v, lane(3))
}

/// `v[b0..b0 + R]` twice (the lanes of both rows' tails), zero past `2R`.
#[inline]
fn twice<T: Copy + Default, const R: usize, const L: usize>(v: &[T], b0: usize) -> [T; L] {
    let mut o = [T::default(); L];
    let per = L / G;
    let s = &v[per * b0..per * (b0 + R)];
    o[..per * R].copy_from_slice(s);
    o[per * R..2 * per * R].copy_from_slice(s);
    o
}

/// The generic float terms of the tail lanes added to the rows' sums in block order: lanes
/// `0..R` to `a`, `R..2R` to `b`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn add_tail_terms<const R: usize>(terms: __m128, a: &mut f32, b: &mut f32) {
    let mut t = [0.0f32; G];
    // SAFETY: `t` is 4 f32; the store is unaligned.
    unsafe { _mm_storeu_ps(t.as_mut_ptr(), terms) };
    for v in &t[..R] {
        *a += v;
    }
    for v in &t[R..2 * R] {
        *b += v;
    }
}

// ---- Q4_K and Q5_K -----------------------------------------------------------------------------

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn k4_pairs<const BB: usize, const QS: usize, const QH: usize>(
    data: &[u8],
    rb: usize,
    rows: Range<usize>,
    x: &QuantX,
    y: &OutMatrix,
) {
    let shuf = [ld_table(&SHUF_K4[0]), ld_table(&SHUF_K4[1])];
    let mins = ld64(&MINS_K4);
    let nb = rb / BB;
    let full = nb - nb % G;
    let pair = |wa: &[u8], wb: &[u8], x: &[XRow<'_>; 1], a: &mut f32, b: &mut f32| {
        // Each row's full groups, the group kernel in one place (see `by_row_pairs`), then
        // the shared tail.
        let mut sums = [[0.0f32]; 2];
        for (w, out) in [wa, wb].into_iter().zip(&mut sums) {
            let mut b0 = 0;
            while b0 < full {
                k4_group::<1, G, BB, QS, QH>(w, x, b0, &shuf, mins, out);
                b0 += G;
            }
        }
        (*a, *b) = (sums[0][0], sums[1][0]);
        if nb % G == 1 {
            k4_tail::<1, BB, QS, QH>(wa, wb, &x[0], full, &shuf, mins, a, b);
        } else {
            k4_tail::<2, BB, QS, QH>(wa, wb, &x[0], full, &shuf, mins, a, b);
        }
    };
    by_row_pairs!(data, rb, rows, x, y, pair);
}

/// The shared tail group of two `Q4_K`/`Q5_K` rows: blocks `b0..b0 + R` of each (as
/// [`k4_group`] for the lanes of [`lane_block`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(
    clippy::too_many_arguments,
    reason = "one group's inputs, as k4_group's"
)]
fn k4_tail<const R: usize, const BB: usize, const QS: usize, const QH: usize>(
    wa: &[u8],
    wb: &[u8],
    x: &XRow<'_>,
    b0: usize,
    shuf: &[__m512i; 2],
    mins: __m512i,
    a: &mut f32,
    b: &mut f32,
) {
    let heads = tail_heads::<BB, 0, R>(wa, wb, b0);
    let sm = k4_scales_mins_x4(heads);
    let xs = [*x];
    let block = |lane: usize, scales: __m512i| match lane_block::<BB, R>(wa, wb, b0, lane) {
        Some(blk) => k4_block::<1, BB, QS, QH>(blk, &xs, b0 + lane % R, shuf, scales)[0],
        None => _mm512_setzero_si512(),
    };
    // Written out per lane, as in `k4_group`.
    let r = [
        block(0, _mm512_shuffle_i32x4::<0b00_00_00_00>(sm, sm)),
        block(1, _mm512_shuffle_i32x4::<0b01_01_01_01>(sm, sm)),
        block(2, _mm512_shuffle_i32x4::<0b10_10_10_10>(sm, sm)),
        block(3, _mm512_shuffle_i32x4::<0b11_11_11_11>(sm, sm)),
    ];
    let i = reduce4(&r);
    // M = Σ_j m_j · S_j per lane, with each lane's block's sums of 32 codes.
    let s: [i16; 8 * G] = twice::<i16, R, { 8 * G }>(x.sums32, b0);
    // SAFETY: `s` is 32 i16 (64 bytes); the load is unaligned.
    let s = unsafe { _mm512_loadu_si512(s.as_ptr().cast()) };
    let m = lane_sums(_mm512_madd_epi16(_mm512_shuffle_epi8(sm, mins), s));
    // [d | dmin << 16] of each lane's block, as in `k4_group`.
    let dm = _mm512_castsi512_si128(_mm512_permutexvar_epi32(
        _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0),
        heads,
    ));
    let f = _mm256_cvtph_ps(dm);
    let (lo, hi) = (_mm256_castps256_ps128(f), _mm256_extractf128_ps::<1>(f));
    let d = _mm_shuffle_ps::<0b10_00_10_00>(lo, hi);
    let dmin = _mm_shuffle_ps::<0b11_01_11_01>(lo, hi);
    let dx = twice::<f32, R, G>(x.d, b0);
    // SAFETY: `dx` is 4 f32; the load is unaligned.
    let dx = unsafe { _mm_loadu_ps(dx.as_ptr()) };
    // The generic k_term per lane: (dx·d)·I - (dx·dmin)·M.
    let terms = _mm_sub_ps(
        _mm_mul_ps(_mm_mul_ps(dx, d), _mm_cvtepi32_ps(i)),
        _mm_mul_ps(_mm_mul_ps(dx, dmin), _mm_cvtepi32_ps(m)),
    );
    add_tail_terms::<R>(terms, a, b);
}

// ---- Q6_K --------------------------------------------------------------------------------------

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_pairs(data: &[u8], rb: usize, rows: Range<usize>, x: &QuantX, y: &OutMatrix) {
    let idx = [ld_table(&IDX_Q6[0]), ld_table(&IDX_Q6[1])];
    let nb = rb / 210;
    let full = nb - nb % G;
    let pair = |wa: &[u8], wb: &[u8], x: &[XRow<'_>; 1], a: &mut f32, b: &mut f32| {
        // As in `k4_pairs`.
        let mut sums = [[0.0f32]; 2];
        for (w, out) in [wa, wb].into_iter().zip(&mut sums) {
            let mut b0 = 0;
            while b0 < full {
                q6_group::<1, G>(w, x, b0, &idx, out);
                b0 += G;
            }
        }
        (*a, *b) = (sums[0][0], sums[1][0]);
        if nb % G == 1 {
            q6_tail::<1>(wa, wb, x, full, &idx, a, b);
        } else {
            q6_tail::<2>(wa, wb, x, full, &idx, a, b);
        }
    };
    by_row_pairs!(data, rb, rows, x, y, pair);
}

/// The shared tail group of two `Q6_K` rows (as [`q6_group`] for the lanes of [`lane_block`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_tail<const R: usize>(
    wa: &[u8],
    wb: &[u8],
    x: &[XRow<'_>; 1],
    b0: usize,
    idx: &[__m512i; 2],
    a: &mut f32,
    b: &mut f32,
) {
    let block = |lane: usize| match lane_block::<210, R>(wa, wb, b0, lane) {
        Some(blk) => q6_block::<1>(blk, x, b0 + lane % R, idx)[0],
        None => _mm512_setzero_si512(),
    };
    // Written out per lane, as in `q6_group`.
    let r = [block(0), block(1), block(2), block(3)];
    let mut dh = [0u16; 8];
    for (l, h) in dh[..G].iter_mut().enumerate() {
        if let Some(blk) = lane_block::<210, R>(wa, wb, b0, l) {
            *h = u16::from_le_bytes([blk[208], blk[209]]);
        }
    }
    let dx = twice::<f32, R, G>(x[0].d, b0);
    // SAFETY: `dx` is 4 f32; the load is unaligned.
    let dx = unsafe { _mm_loadu_ps(dx.as_ptr()) };
    // The generic k_term_sym per lane: (dx·d)·I.
    let i = _mm_cvtepi32_ps(reduce4(&r));
    let terms = _mm_mul_ps(_mm_mul_ps(dx, f16x4(&dh)), i);
    add_tail_terms::<R>(terms, a, b);
}
