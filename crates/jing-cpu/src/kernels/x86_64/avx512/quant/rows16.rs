//! `Q4_K`, `Q6_K`, `Q8_0` and `Q5_0` with 16 rows interleaved (`jing_tensor::quant::q4_k_rows16`,
//! `q6_k_rows16`, `q8_0_rows16`, `q5_0_rows16`) on 512-bit vectors: i32 lane `r` is row `r` of
//! the group, from the codes to the row sums.
//!
//! `Q4_K`, per block and token: each 64-byte run of codes gives, through its low and high
//! nibbles, four codes of two sub-blocks for every row, which meet the same four activation
//! codes in every lane (`vpdpbusd` with a broadcast). Sums of 16 codes (below 2^15) meet the
//! 16 rows' scales of their sub-block in one `vpdpwssd`, and the mins the activations' sums of
//! 32 in four more. So there is no horizontal sum and no scale shuffle per block: about twice
//! the rate of the row-by-row kernel from L2 on a Zen 4 core for one token, 4-5 times for
//! several. `Q6_K` the same way (below). The integers are the generic kernels', and the float
//! step is the generic one lane by lane, added in block order, so every row's result is the
//! generic kernel's bit for bit.
//!
//! `Q8_0` takes its codes as unsigned (`u + 128`, one `vpxord` per 64 bytes, which every token
//! of a step shares) and takes `128·S` off each block's integer, with `S` the activations' sum
//! of 32.
//!
//! `Q5_0` takes each 64-byte run's low and high nibbles as two code vectors, adds 16 to the
//! bytes whose fifth bit is set under one of the block's byte masks (`vpaddb` with a mask
//! register: the layout stores the fifth bits that way), and takes `16·S` off the block's
//! integer. The stored-row kernel spends most of its work on the fifth bits; here they cost one
//! masked add per 64 codes.
//!
//! The layouts are read in address order. On AMD family 19h the hardware prefetcher streams them
//! alone: prefetching 8 KiB ahead as the row-by-row kernels do made these 3-9% slower from
//! DRAM (two Zen 4 threads, `[8960, 1536]`). Elsewhere each block prefetches its share of the
//! bytes [`stream_ahead`] on: on Zen 5 the hardware alone streamed `Q4_K` at 12.9 GB/s on one
//! thread, against 33-36 for rows as stored.

use super::*;
use jing_tensor::quant::q4_k_rows16::{GROUP_BLOCK, ROWS, RUNS};
use jing_tensor::quant::q6_k_rows16;
use jing_tensor::RowLayout;

/// `y[t, n] = Σ_k x̂[t, k] · W[n, k]` for `n ∈ rows` of an interleaved `Q4_K` or `Q6_K`
/// weight (`MatmulQFn`; `rows` are whole groups: matmul chunks start at multiples of 16 and the
/// weight has a multiple of 16 rows).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn matmul_rows16(w: &Weight, x: &QuantX, rows: Range<usize>, y: &OutMatrix) {
    assert!(
        rows.start.is_multiple_of(ROWS) && rows.end.is_multiple_of(ROWS),
        "matmul_q `{}`: rows {rows:?} cut a group of {ROWS} interleaved rows",
        w.name
    );
    let span = ROWS * w.row_bytes();
    let nb = w.cols() / w.dtype.block_size();
    let ahead = stream_ahead();
    macro_rules! drive {
        ($group_dot:ident) => {
            for g in rows.start / ROWS..rows.end / ROWS {
                let group = &w.data.as_slice()[g * span..(g + 1) * span];
                let n0 = ROWS * g;
                let mut t0 = 0;
                while t0 < x.m {
                    let count = G.min(x.m - t0);
                    let xs = |t: usize| x.row(t0 + t);
                    match count {
                        1 => put(y, t0, n0, &$group_dot::<1>(group, nb, &from_fn(xs), ahead)),
                        2 => put(y, t0, n0, &$group_dot::<2>(group, nb, &from_fn(xs), ahead)),
                        3 => put(y, t0, n0, &$group_dot::<3>(group, nb, &from_fn(xs), ahead)),
                        _ => put(y, t0, n0, &$group_dot::<4>(group, nb, &from_fn(xs), ahead)),
                    }
                    t0 += count;
                }
            }
        };
    }
    match w.layout {
        RowLayout::Q4KRows16 => drive!(group_dot),
        RowLayout::Q6KRows16 => drive!(q6_group_dot),
        RowLayout::Q8_0Rows16 => drive!(q8_group_dot),
        RowLayout::Q5_0Rows16 => drive!(q5_group_dot),
        RowLayout::Rows | RowLayout::Panels | RowLayout::PanelLines => {
            unreachable!("matmul_rows16 of {:?}", w.layout)
        }
    }
}

use crate::kernels::x86_64::prefetch::{prefetch_ahead, stream_ahead};
use std::array::from_fn;

/// Prefetch the bytes `ahead` past block `b` of a group of `nb` blocks (none for `ahead` 0):
/// at the start of each block, one block's share of the group.
#[inline(always)]
fn pace(group: &[u8], b: usize, nb: usize, ahead: usize) {
    if ahead != 0 {
        let per = group.len() / nb;
        prefetch_ahead(group.as_ptr(), b * per, per, ahead);
    }
}

/// Writes the 16 row results of tokens `t0..t0 + T` at columns `n0..n0 + 16` of `y`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn put<const T: usize>(y: &OutMatrix, t0: usize, n0: usize, out: &[__m512; T]) {
    for (t, v) in out.iter().enumerate() {
        let mut lanes = [0.0f32; ROWS];
        // SAFETY: `lanes` is 16 f32; the store is unaligned.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *v) };
        for (r, &value) in lanes.iter().enumerate() {
            // SAFETY: the caller owns columns `rows` of `y` (MatmulQFn contract), which hold
            // this group's columns.
            unsafe { y.write(t0 + t, n0 + r, value) };
        }
    }
}

/// The 4 bytes of `q` at `at` as one i32 (four activation codes, or two i16 sums).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn four<T: Copy>(q: &[T], at: usize) -> i32 {
    let bytes = &q[at..at + 4 / size_of::<T>()];
    // SAFETY: `bytes` spans 4 bytes; the read is unaligned.
    unsafe { bytes.as_ptr().cast::<i32>().read_unaligned() }
}

/// The 16 bytes of 128-bit lane `l` of `v` as i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn lane_u8_to_i32(v: __m512i, l: usize) -> __m512i {
    _mm512_cvtepu8_epi32(match l {
        0 => _mm512_castsi512_si128(v),
        1 => _mm512_extracti32x4_epi32::<1>(v),
        2 => _mm512_extracti32x4_epi32::<2>(v),
        _ => _mm512_extracti32x4_epi32::<3>(v),
    })
}

/// One group of 16 rows against `T` tokens: per token, the 16 row results as f32 lanes. Each
/// block first prefetches `ahead` bytes on ([`pace`]), as do the other three group kernels.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn group_dot<const T: usize>(
    group: &[u8],
    nb: usize,
    x: &[XRow<'_>; T],
    ahead: usize,
) -> [__m512; T] {
    let nib = _mm512_set1_epi8(0x0f);
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        pace(group, b, nb, ahead);
        let at = b * GROUP_BLOCK;
        let unit = &group[at..at + GROUP_BLOCK];
        // The 16 heads, four per vector; unpacked, 128-bit lane h of `sets[k]` is value set
        // 4k + h: scale 4k + h (k < 2) or min 4(k - 2) + h of the 16 rows.
        let heads: [__m512i; 4] = from_fn(|k| ld64(&unit[64 * k..]));
        let sets: [__m512i; 4] = from_fn(|k| k4_scales_mins_x4(heads[k]));
        let scale: [__m512i; 8] = from_fn(|j| lane_u8_to_i32(sets[j / 4], j % 4));
        // Per row, the mins of sub-blocks 2p and 2p + 1 as an i16 pair.
        let min_pairs: [__m512i; 4] = from_fn(|p| {
            let (j0, j1) = (2 * p, 2 * p + 1);
            _mm512_or_si512(
                lane_u8_to_i32(sets[2 + j0 / 4], j0 % 4),
                _mm512_slli_epi32::<16>(lane_u8_to_i32(sets[2 + j1 / 4], j1 % 4)),
            )
        });
        // Row r's `d | dmin << 16` (the first word of head r) in i32 lane r.
        let first_words = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
        let dm = _mm512_inserti64x4::<1>(
            _mm512_permutex2var_epi32(heads[0], first_words, heads[1]),
            _mm512_castsi512_si256(_mm512_permutex2var_epi32(heads[2], first_words, heads[3])),
        );
        let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
        let dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(dm)));

        let mut i = [_mm512_setzero_si512(); T];
        for p in 0..4 {
            for half in 0..2 {
                // Sums of 16 codes of sub-blocks 2p (low nibbles) and 2p + 1 (high).
                let mut s_lo = [_mm512_setzero_si512(); T];
                let mut s_hi = [_mm512_setzero_si512(); T];
                for k in 4 * half..4 * half + 4 {
                    let run = ld64(&unit[RUNS + 64 * (8 * p + k)..]);
                    let lo = _mm512_and_si512(run, nib);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(run), nib);
                    let e = 256 * b + 64 * p + 4 * k;
                    for t in 0..T {
                        let x_lo = _mm512_set1_epi32(four(x[t].qs, e));
                        let x_hi = _mm512_set1_epi32(four(x[t].qs, e + 32));
                        s_lo[t] = _mm512_dpbusd_epi32(s_lo[t], lo, x_lo);
                        s_hi[t] = _mm512_dpbusd_epi32(s_hi[t], hi, x_hi);
                    }
                }
                for t in 0..T {
                    i[t] = _mm512_dpwssd_epi32(i[t], s_lo[t], scale[2 * p]);
                    i[t] = _mm512_dpwssd_epi32(i[t], s_hi[t], scale[2 * p + 1]);
                }
            }
        }
        for t in 0..T {
            // M = Σ_j m_j · S_j (the activations' sums of 32 codes), per row.
            let mut m = _mm512_setzero_si512();
            for p in 0..4 {
                let sums = _mm512_set1_epi32(four(x[t].sums32, 8 * b + 2 * p));
                m = _mm512_dpwssd_epi32(m, min_pairs[p], sums);
            }
            // The generic `k_term`, lane by lane.
            let dx = _mm512_set1_ps(x[t].d[b]);
            let term = _mm512_sub_ps(
                _mm512_mul_ps(_mm512_mul_ps(dx, d), _mm512_cvtepi32_ps(i[t])),
                _mm512_mul_ps(_mm512_mul_ps(dx, dmin), _mm512_cvtepi32_ps(m)),
            );
            acc[t] = _mm512_add_ps(acc[t], term);
        }
    }
    acc
}

/// One group of 16 interleaved `Q6_K` rows against `T` tokens: per token, the 16 row results.
/// Each `qh` run and its two `ql` runs make 4 codes (6-bit, unsigned) of 4 sub-blocks of 16
/// for every row; the sums of a sub-block's 16 codes times the activations (below 2^17) meet
/// the rows' scales in a 32-bit multiply, and `I = Σ_j sc_j · (S_j - 32·Σq_j)` (the generic
/// `dot_q6_k`'s integer) takes the offset of 32 off through the activations' sums of 16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_group_dot<const T: usize>(
    group: &[u8],
    nb: usize,
    x: &[XRow<'_>; T],
    ahead: usize,
) -> [__m512; T] {
    use q6_k_rows16::{DS, GROUP_BLOCK, STEP, STEPS};
    let (low4, top2) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        pace(group, b, nb, ahead);
        let at = b * GROUP_BLOCK;
        let unit = &group[at..at + GROUP_BLOCK];
        // Sub-block j's scales of the 16 rows, as i32 lanes.
        let scale: [__m512i; 16] = from_fn(|j| _mm512_cvtepi8_epi32(ld16(&unit[16 * j..])));
        // Per token, Σ_j sc_j · S_j.
        let mut i = [_mm512_setzero_si512(); T];
        for h in 0..2 {
            for half in 0..2 {
                // Sums of sub-blocks 8h + 2s + half (s < 4: codes 32s + 16·half.. of half h).
                let mut s = [[_mm512_setzero_si512(); 4]; T];
                for l4 in 4 * half..4 * half + 4 {
                    let step = STEPS + STEP * (8 * h + l4);
                    let qh = ld64(&unit[step..]);
                    let a = ld64(&unit[step + 64..]);
                    let c = ld64(&unit[step + 128..]);
                    // Codes of elements 128h + 32s + 4·l4 + 0..4, s = 0..4.
                    let codes = [
                        _mm512_or_si512(
                            _mm512_and_si512(a, low4),
                            _mm512_and_si512(_mm512_slli_epi16::<4>(qh), top2),
                        ),
                        _mm512_or_si512(
                            _mm512_and_si512(c, low4),
                            _mm512_and_si512(_mm512_slli_epi16::<2>(qh), top2),
                        ),
                        _mm512_or_si512(
                            _mm512_and_si512(_mm512_srli_epi16::<4>(a), low4),
                            _mm512_and_si512(qh, top2),
                        ),
                        _mm512_or_si512(
                            _mm512_and_si512(_mm512_srli_epi16::<4>(c), low4),
                            _mm512_and_si512(_mm512_srli_epi16::<2>(qh), top2),
                        ),
                    ];
                    let e = 256 * b + 128 * h + 4 * l4;
                    for t in 0..T {
                        for (sub, code) in codes.iter().enumerate() {
                            let xq = _mm512_set1_epi32(four(x[t].qs, e + 32 * sub));
                            s[t][sub] = _mm512_dpbusd_epi32(s[t][sub], *code, xq);
                        }
                    }
                }
                for t in 0..T {
                    for sub in 0..4 {
                        let j = 8 * h + 2 * sub + half;
                        i[t] = _mm512_add_epi32(i[t], _mm512_mullo_epi32(s[t][sub], scale[j]));
                    }
                }
            }
        }
        // The rows' scales of sub-blocks 2u and 2u + 1 as an i16 pair.
        let scale_pairs: [__m512i; 8] = from_fn(|u| {
            _mm512_or_si512(
                _mm512_and_si512(scale[2 * u], _mm512_set1_epi32(0xffff)),
                _mm512_slli_epi32::<16>(scale[2 * u + 1]),
            )
        });
        let d = _mm512_cvtph_ps(ld32(&unit[DS..]));
        for t in 0..T {
            // Σ_j sc_j · Σq_j, with the activations' sums of 16 (exact in i32).
            let mut m = _mm512_setzero_si512();
            for u in 0..8 {
                let sums = _mm512_set1_epi32(four(x[t].sums, 16 * b + 2 * u));
                m = _mm512_dpwssd_epi32(m, scale_pairs[u], sums);
            }
            let total = _mm512_sub_epi32(i[t], _mm512_slli_epi32::<5>(m));
            // The generic `k_term_sym`, lane by lane.
            let dx = _mm512_set1_ps(x[t].d[b]);
            let term = _mm512_mul_ps(_mm512_mul_ps(dx, d), _mm512_cvtepi32_ps(total));
            acc[t] = _mm512_add_ps(acc[t], term);
        }
    }
    acc
}

/// One group of 16 interleaved `Q8_0` rows against `T` tokens: per token, the 16 row results.
/// `I = Σ u·q` (`u` signed) as `Σ (u + 128)·q - 128·S`, exact in i32; the float step is the
/// generic `(d·dx)·I`, lane by lane, added in block order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q8_group_dot<const T: usize>(
    group: &[u8],
    nb: usize,
    x: &[XRow<'_>; T],
    ahead: usize,
) -> [__m512; T] {
    use jing_tensor::quant::q8_0_rows16::block_at;
    let flip = _mm512_set1_epi8(i8::MIN);
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        pace(group, b, nb, ahead);
        let (ds, runs) = block_at(b, nb);
        let d = _mm512_cvtph_ps(ld32(&group[ds..]));
        // Two chains per token (runs 0-3 and 4-7), so that no token waits on one long chain
        // of `vpdpbusd`s.
        let mut i = [[_mm512_setzero_si512(); 2]; T];
        for k in 0..8 {
            // Codes 4k..4k + 4 of the 16 rows, each plus 128.
            let u = _mm512_xor_si512(ld64(&group[runs + 64 * k..]), flip);
            for t in 0..T {
                let xq = _mm512_set1_epi32(four(x[t].qs, 32 * b + 4 * k));
                i[t][k / 4] = _mm512_dpbusd_epi32(i[t][k / 4], u, xq);
            }
        }
        for t in 0..T {
            add_block32_term(&mut acc[t], &i[t], 128, &x[t], b, d);
        }
    }
    acc
}

/// One group of 16 interleaved `Q5_0` rows against `T` tokens: per token, the 16 row results.
/// `I = Σ (u - 16)·q` as `Σ u·q - 16·S` with the unsigned 5-bit codes `u`, exact in i32; the
/// float step is the generic `(d·dx)·I`, lane by lane, added in block order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q5_group_dot<const T: usize>(
    group: &[u8],
    nb: usize,
    x: &[XRow<'_>; T],
    ahead: usize,
) -> [__m512; T] {
    use jing_tensor::quant::q5_0_rows16::block_at;
    let (nib, sixteen) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(16));
    // Byte mask `v` of the block whose masks start at `at` (see `q5_0_rows16`).
    let mask = |at: usize, v: usize| -> __mmask64 {
        u64::from_le_bytes(
            group[at + 8 * v..at + 8 * v + 8]
                .try_into()
                .expect("8 bytes"),
        )
    };
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        pace(group, b, nb, ahead);
        let (ds, masks, runs) = block_at(b, nb);
        let d = _mm512_cvtph_ps(ld32(&group[ds..]));
        // Two chains per token (low and high nibbles).
        let mut i = [[_mm512_setzero_si512(); 2]; T];
        for k in 0..4 {
            let run = ld64(&group[runs + 64 * k..]);
            // Codes 4k..4k + 4 (low nibbles) and 16 + 4k..16 + 4k + 4 (high) of the 16 rows,
            // with their fifth bits.
            let lo = _mm512_and_si512(run, nib);
            let lo = _mm512_mask_add_epi8(lo, mask(masks, k), lo, sixteen);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(run), nib);
            let hi = _mm512_mask_add_epi8(hi, mask(masks, 4 + k), hi, sixteen);
            for t in 0..T {
                let x_lo = _mm512_set1_epi32(four(x[t].qs, 32 * b + 4 * k));
                let x_hi = _mm512_set1_epi32(four(x[t].qs, 32 * b + 16 + 4 * k));
                i[t][0] = _mm512_dpbusd_epi32(i[t][0], lo, x_lo);
                i[t][1] = _mm512_dpbusd_epi32(i[t][1], hi, x_hi);
            }
        }
        for t in 0..T {
            add_block32_term(&mut acc[t], &i[t], 16, &x[t], b, d);
        }
    }
    acc
}

/// The generic float step of 32-element block `b` for 16 rows, lane by lane: `acc += (d·dx)·I`
/// with `I = i[0] + i[1] - offset·S` (`S`: the activations' sum over the block; the codes were
/// taken as unsigned, `offset` above the signed ones), exact in i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn add_block32_term(
    acc: &mut __m512,
    i: &[__m512i; 2],
    offset: i32,
    x: &XRow<'_>,
    b: usize,
    d: __m512,
) {
    let s = x.sums[2 * b] as i32 + x.sums[2 * b + 1] as i32;
    let total = _mm512_sub_epi32(_mm512_add_epi32(i[0], i[1]), _mm512_set1_epi32(offset * s));
    let dx = _mm512_set1_ps(x.d[b]);
    let term = _mm512_mul_ps(_mm512_mul_ps(d, dx), _mm512_cvtepi32_ps(total));
    *acc = _mm512_add_ps(*acc, term);
}
