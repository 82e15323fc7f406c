//! BF16 weights against f32 activations with `vdpbf16ps` (AVX512-BF16), for the matmuls that
//! stream bf16 weights: DeepSeek FP8 checkpoints' bf16 lm_head and routers, and bf16
//! checkpoints.
//!
//! Why: widening bf16 to f32 costs a shuffle and a shift per 16 weights before the FMA, so the
//! widening kernel runs at about 39 GB/s per thread even from L2, and on two threads streams
//! DRAM at ~80% of what the Q8_0 kernel reaches. `vdpbf16ps` takes 16 bf16 weights as loaded
//! and multiplies them, in pairs, into 8 f32 lanes: no conversion at all.
//!
//! Precision: `vdpbf16ps` needs bf16 on both sides, and rounding `x` to bf16 (what DeepSeek's
//! and HF's bf16 matmuls do) would lose 16 of its 24 bits. So `x` is split once per call into
//! three bf16 parts, `hi = bf16(x)`, `mid = bf16(x - hi)` and `lo = bf16(x - hi - mid)`, whose
//! sum is `x` exactly (8 + 8 + 8 significant bits; an f32 has 24), and each weight meets all
//! three: three instructions per 16 weights, where widening takes four for 16. Products of
//! bf16 are exact in f32, so the only rounding is the f32 accumulation, as in the widening
//! kernel; the results differ from it only in summation order. (Two parts, `x` to 17 bits, are
//! caught by the conformance test's statistical check on precision.)

use super::super::super::driver::RowGroup;
use super::super::prefetch::GroupPrefetch;
use super::load::{load_w, load_w_tail};
use super::matmul::{load_x, load_x_tail, reduce, scale_into};
use super::L;
use crate::kernels::layout::dt;
use std::arch::x86_64::*;

/// Columns per group of the layout: two 256-bit loads of bf16 weights.
const GROUP: usize = 2 * L;

/// Whether this CPU has the instruction the kernel needs (beyond the table's AVX-512 set).
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512bf16")
}

/// 16 bf16 seen as the operand type of `vdpbf16ps`.
#[inline(always)]
fn as_bh(v: __m256) -> __m256bh {
    // SAFETY: both are 32 bytes of plain data; any bits are valid in either.
    unsafe { std::mem::transmute::<__m256, __m256bh>(v) }
}

/// Prepared slots per group of 32 columns: 16 f32 slots (32 bf16) for each of the three parts.
const GROUP_SLOTS: usize = 3 * L;

/// The length of one token's row of [`prepare_x`]'s layout: `k` columns in scale blocks
/// `width` wide.
fn prepared_len(k: usize, width: usize) -> usize {
    let block = |n: usize| n / GROUP * GROUP_SLOTS + n % GROUP;
    (k / width) * block(width) + block(k % width)
}

/// Writes `x` (`[m, k]`, scale blocks `width` wide) into `buf` in the layout [`dot_rows`]
/// reads: in each scale block, every whole group of 32 columns becomes 48 f32 slots holding
/// its 32 `hi`, then 32 `mid`, then 32 `lo` bf16 (in column order, as the weights lie); the
/// block's remaining columns stay as they are (f32). Rows of [`prepared_len`] slots.
///
/// # Safety
/// [`available`] is true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(super) unsafe fn prepare_x(x: &[f32], k: usize, width: usize, buf: &mut Vec<f32>) {
    let m = x.len() / k;
    let len = prepared_len(k, width);
    buf.clear();
    buf.resize(m * len, 0.0);
    for (row, out) in x.chunks_exact(k).zip(buf.chunks_exact_mut(len)) {
        let mut o = 0;
        for block in row.chunks(width) {
            let whole = block.len() / GROUP * GROUP;
            for group in block[..whole].chunks_exact(GROUP) {
                // SAFETY: `group` has 32 f32 and `out[o..]` the 48 slots of this group
                // (prepared_len counts them), so the loads and stores are in bounds.
                unsafe {
                    let parts = split32(
                        _mm512_loadu_ps(group.as_ptr()),
                        _mm512_loadu_ps(group.as_ptr().add(L)),
                    );
                    for (p, part) in parts.into_iter().enumerate() {
                        _mm512_storeu_ps(out.as_mut_ptr().add(o + p * L), part);
                    }
                }
                o += GROUP_SLOTS;
            }
            let tail = &block[whole..];
            out[o..o + tail.len()].copy_from_slice(tail);
            o += tail.len();
        }
        debug_assert_eq!(o, len);
    }
}

/// Columns `a` (0..16) and `b` (16..32) as their three bf16 parts, each 32 bf16 in column
/// order: every part is the remainder so far rounded to nearest even, so the three sum to the
/// column exactly (the remainders are exact in f32). Infinities and NaN, and values that round
/// to infinity in bf16 (beyond 3.39e38), put zeros in `mid` and `lo`, so that they propagate
/// as infinities and NaN do in f32. (The conversion flushes subnormals, below 1.2e-38,
/// to zero: those parts are lost, an error below 1e-38 per value.)
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn split32(a: __m512, b: __m512) -> [__m512; 3] {
    let mut rest = (a, b);
    let mut parts = [_mm512_setzero_ps(); 3];
    for part in parts.iter_mut() {
        let h = _mm512_cvtne2ps_pbh(rest.1, rest.0);
        // SAFETY: both are 64 bytes of plain data.
        let hi = unsafe { std::mem::transmute::<__m512bh, __m512i>(h) };
        // The rounded values back in f32 (bf16 is an f32's top half).
        let ha = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
            _mm512_castsi512_si256(hi),
        )));
        let hb = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
            _mm512_extracti64x4_epi64::<1>(hi),
        )));
        *part = _mm512_castsi512_ps(hi);
        // Lanes whose part is infinite or NaN (`h - h` is NaN there) keep no remainder.
        let zero = _mm512_setzero_ps();
        let fa = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_sub_ps(ha, ha), zero);
        let fb = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_sub_ps(hb, hb), zero);
        rest = (
            _mm512_maskz_sub_ps(fa, rest.0, ha),
            _mm512_maskz_sub_ps(fb, rest.1, hb),
        );
    }
    parts
}

/// `Isa::dot_rows` for BF16 weights and exactly `T` tokens, `x` in the layout of
/// [`prepare_x`]. With one token, the `hi` products go to one accumulator set and the `mid`
/// and `lo` ones to another (2·R independent chains); with more, the R·T chains are enough.
///
/// The products run on 256-bit vectors, two per group of 32 columns. The 512-bit form of the
/// same loop is faster from L2 (60-70 against 40 GB/s on one Zen 5 thread) but streams DRAM
/// slower (24-25 against 32-33 GB/s on one thread, whatever the prefetch distance or hint),
/// and decode streams DRAM: the V2-Lite-4 FP8 file, whose bf16 lm_head is most of its bytes,
/// decoded at 48-51 GB/s with it against 55-56 with this (`jing bench -p 1 -n 64 -t 2`,
/// alternating).
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`, on a CPU where [`available`] is true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")]
pub(super) unsafe fn dot_rows<const R: usize, const T: usize>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; T]; R] {
    let second = if T == 1 { 1 } else { 0 }; // the accumulator set of `mid` and `lo`
    let (k, width) = (g.cols, g.width);
    let prefetch = GroupPrefetch::new(g.ptr, 2 * k);
    let mut total = [[_mm512_setzero_ps(); T]; R];
    let (mut k0, mut cb) = (0, 0);
    // Slots of `x` read so far (one token's row; the other tokens' are `x_stride` on).
    let mut xo = 0;
    while k0 < k {
        let k1 = k.min(k0 + width);
        let mut acc = [[[_mm256_setzero_ps(); T]; R]; 2];
        let mut j = k0;
        while j + GROUP <= k1 {
            prefetch.step(2 * j, 2 * GROUP);
            for half in 0..2 {
                let mut w = [_mm256_setzero_si256(); R];
                for r in 0..R {
                    // SAFETY: j + 32 <= K, so the 16 bf16 of this half are readable in every
                    // row.
                    w[r] = unsafe { _mm256_loadu_si256(g.ptr[r].add(2 * j + 32 * half).cast()) };
                }
                for t in 0..T {
                    // SAFETY: the 48 slots at xo hold this group's three parts (prepare_x),
                    // within every token's row; this half's 16 bf16 of each are 8 slots on.
                    let (hi, mid, lo) = unsafe {
                        let p = x.add(t * x_stride + xo + half * L / 2);
                        (
                            as_bh(_mm256_loadu_ps(p)),
                            as_bh(_mm256_loadu_ps(p.add(L))),
                            as_bh(_mm256_loadu_ps(p.add(2 * L))),
                        )
                    };
                    for r in 0..R {
                        let wr = as_bh(_mm256_castsi256_ps(w[r]));
                        acc[0][r][t] = _mm256_dpbf16_ps(acc[0][r][t], hi, wr);
                        acc[second][r][t] = _mm256_dpbf16_ps(acc[second][r][t], mid, wr);
                        acc[second][r][t] = _mm256_dpbf16_ps(acc[second][r][t], lo, wr);
                    }
                }
            }
            j += GROUP;
            xo += GROUP_SLOTS;
        }
        let mut wide = [[[_mm512_setzero_ps(); T]; R]; 2];
        for (wide, acc) in wide.iter_mut().zip(&acc) {
            for (wide, acc) in wide.iter_mut().zip(acc) {
                for (wide, acc) in wide.iter_mut().zip(acc) {
                    *wide = _mm512_zextps256_ps512(*acc);
                }
            }
        }
        // The block's last columns (fewer than 32), in f32 as prepare_x left them.
        while j < k1 {
            let n = L.min(k1 - j);
            // SAFETY: the next n slots at xo are columns j..j+n in f32, in every token's row; a
            // masked load reads only those.
            let xv = unsafe {
                if n == L {
                    load_x::<T>(x.add(xo), x_stride, 0)
                } else {
                    load_x_tail::<T>(x.add(xo), x_stride, 0, n)
                }
            };
            for r in 0..R {
                // SAFETY: columns j..j+n exist in every row; a masked load reads only those.
                let wv = unsafe {
                    if n == L {
                        load_w::<{ dt::BF16 }>(g.ptr[r], j)
                    } else {
                        load_w_tail::<{ dt::BF16 }>(g.ptr[r], j, n)
                    }
                };
                for t in 0..T {
                    wide[1][r][t] = _mm512_fmadd_ps(wv, xv[t], wide[1][r][t]);
                }
            }
            j += n;
            xo += n;
        }
        scale_into(g, cb, &wide, &mut total);
        k0 = k1;
        cb += 1;
    }
    reduce(&total)
}
