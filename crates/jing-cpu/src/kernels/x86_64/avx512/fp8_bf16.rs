//! The FP8 kernel for `x` in bf16 ([`Fp8Activations::Bf16`]), on CPUs with AVX512-BF16 and
//! VBMI: the exact e4m3 weights times `x` rounded to bf16, summed in f32. With the scales
//! folded into `x` (the driver's fused form, once per 128 rows: `[128, 128]` blocks) that is
//! `Σ_k bf16(x[k] · scale(k) · 2^-30) · w[k] · 2^30`, `x` rounded and packed once per row block
//! ([`pack_fused_x`]); otherwise `Σ_cb scale(cb) · Σ_{k ∈ cb} bf16(x[k]) · w[k]`, `x` rounded as
//! it loads.
//!
//! Each e4m3 value is a bf16 value (3 mantissa bits, exponents -9..8), so a table lookup
//! (`vpermi2b`, 128 entries by the code's 7 magnitude bits) gives each code's two bf16 bytes,
//! subnormals included, and `vdpbf16ps` multiplies 32 pairs and adds them into 16 f32 lanes.
//! Per 64 codes that is two lookups, a sign merge, two byte interleaves and two dot products,
//! against the exact kernel's byte move, four shifts, four masks and four FMAs: `[256, 2048]`
//! in L2 on one Zen 4 thread read 40-42 GB/s against 28.5 (a stand-alone loop); through the
//! table, from DRAM in panels of lines, 26-29 against the exact kernel's 20-24.
//!
//! The products of two bf16 values are exact in f32 and `vdpbf16ps` rounds each sum to
//! nearest even, so this differs from the exact kernel by rounding `x` to bf16 (relative error
//! 2^-9, finer than the 8-bit blocks `Q8_0`'s activations get) and the order of the sums.
//! It treats bf16 denormals as zero: only an `x` below about 2^-96 is lost (weights are
//! normal).
//!
//! [`Fp8Activations::Bf16`]: crate::kernels::Fp8Activations::Bf16

use super::super::prefetch::{GroupPrefetch, LinesPrefetch, FAMILY_19H_AHEAD_FP8};
use super::load::fp8x16;
use super::matmul::{reduce, scale_into};
use super::{tail_mask, L};
use crate::kernels::driver::{row_at, RowGroup};
use crate::kernels::layout::fp8_bf16_bits;
use std::arch::x86_64::*;

/// Codes per row per step.
pub(super) const GROUP: usize = 64;

/// Whether this CPU can run [`dot_rows_fp8_bf16`] (on top of the AVX-512 table's features).
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512bf16") && is_x86_feature_detected!("avx512vbmi")
}

/// The bf16 bytes of each magnitude code `c < 128` (`value · 1`): high bytes at `c`, low bytes
/// at `128 + c`.
static BF16_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 128 {
        let b = fp8_bf16_bits(c as u8);
        t[c] = (b >> 8) as u8;
        t[128 + c] = b as u8;
        c += 1;
    }
    t
};

/// The lookup tables in registers.
#[derive(Clone, Copy)]
pub(super) struct Tables {
    hi: [__m512i; 2],
    lo: [__m512i; 2],
    sign: __m512i,
}

impl Tables {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,fma,f16c")]
    pub(super) fn load() -> Tables {
        let t = BF16_BYTES.as_ptr();
        // SAFETY: four 64-byte loads within the 256-byte table.
        let at = |o: usize| unsafe { _mm512_loadu_si512(t.add(o).cast()) };
        Tables {
            hi: [at(0), at(64)],
            lo: [at(128), at(192)],
            sign: _mm512_set1_epi8(0x80u8 as i8),
        }
    }

    /// The 64 codes' bf16 values as `[high bytes, low bytes]`, in the codes' order.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,fma,f16c")]
    pub(super) fn bytes(&self, codes: __m512i) -> [__m512i; 2] {
        // Bit 6 of each code picks the table half, bits 5..0 the byte, bit 7 is ignored.
        let hi = _mm512_permutex2var_epi8(self.hi[0], codes, self.hi[1]);
        let lo = _mm512_permutex2var_epi8(self.lo[0], codes, self.lo[1]);
        // hi | (codes & 0x80): the sign.
        [_mm512_ternarylogic_epi32::<0xF8>(hi, codes, self.sign), lo]
    }

    /// The 64 codes of a step as bf16 pairs: `[w0, w1]`, in each 128-bit lane `i` of `w0` the
    /// codes `16i..16i + 8` and of `w1` the codes `16i + 8..16i + 16` (the order of
    /// [`prepare_x`]).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,fma,f16c")]
    fn decode(&self, codes: __m512i) -> [__m512bh; 2] {
        let [hi, lo] = self.bytes(codes);
        // SAFETY (both): __m512i and __m512bh are both 64 bytes of plain data.
        unsafe {
            [
                std::mem::transmute::<__m512i, __m512bh>(_mm512_unpacklo_epi8(lo, hi)),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_unpackhi_epi8(lo, hi)),
            ]
        }
    }
}

/// `x` (`[m, K]`, `K` columns in blocks `width` wide) as this kernel reads it: within each
/// block every whole group of 64 columns in the order of [`Tables::decode`] (the 32 columns of
/// `w0`, then the 32 of `w1`: slot `32h + 8i + u` holds column `16i + 8h + u`), still f32 so
/// that the driver can multiply it by scales ([`Isa::fuses_fp8_scales`]); the columns after
/// the last whole group of a block in order and times 256 (the tail decodes codes to
/// `value · 2^-8`). The kernel rounds to bf16 as it loads. The scales' factor is 1.
///
/// [`Isa::fuses_fp8_scales`]: crate::kernels::driver::Isa::fuses_fp8_scales
pub(super) fn prepare_x(x: &[f32], k: usize, width: usize, buf: &mut Vec<f32>) -> f32 {
    buf.clear();
    buf.resize(x.len(), 0.0);
    for (src, dst) in x.chunks_exact(k).zip(buf.chunks_exact_mut(k)) {
        for (sb, db) in src.chunks(width).zip(dst.chunks_mut(width)) {
            let whole = sb.len() / GROUP * GROUP;
            let (sg, st) = sb.split_at(whole);
            let (dg, dt) = db.split_at_mut(whole);
            for (s, d) in sg.chunks_exact(GROUP).zip(dg.chunks_exact_mut(GROUP)) {
                for (slot, d) in d.iter_mut().enumerate() {
                    let (h, i, u) = (slot / 32, slot % 32 / 8, slot % 8);
                    *d = s[16 * i + 8 * h + u];
                }
            }
            for (s, d) in st.iter().zip(dt) {
                *d = s * 256.0;
            }
        }
    }
    1.0
}

/// The fused `x` (`[tokens, K]`, [`prepare_x`]'s layout times the scales, one block of K
/// columns) with each whole group's 64 values rounded to bf16 and packed into its first 32
/// slots (the kernel's `PACKED` form): done once per row block and token panel instead of in
/// every row group's steps.
///
/// # Safety
/// [`available`] is true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,fma,f16c")]
pub(super) unsafe fn pack_fused_x(x: &mut [f32], k: usize) {
    for row in x.chunks_exact_mut(k) {
        for group in row.chunks_exact_mut(GROUP) {
            let p = group.as_mut_ptr();
            // SAFETY: the group has 64 f32; both halves are read before the first store.
            unsafe {
                let (w0, w1) = (bf16x32(p), bf16x32(p.add(32)));
                _mm512_storeu_ps(p, std::mem::transmute::<__m512bh, __m512>(w0));
                _mm512_storeu_ps(p.add(16), std::mem::transmute::<__m512bh, __m512>(w1));
            }
        }
    }
}

/// 32 f32 at `p` as bf16 (to nearest even), the first 16 in the low half.
///
/// # Safety
/// `p` has 32 readable f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,fma,f16c")]
unsafe fn bf16x32(p: *const f32) -> __m512bh {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm512_cvtne2ps_pbh(_mm512_loadu_ps(p.add(16)), _mm512_loadu_ps(p)) }
}

/// `Isa::dot_rows` for FP8 with `x` from [`prepare_x`] and exactly `T` tokens. With one token,
/// each row's two halves of a step go to two accumulators (2·R chains of `vdpbf16ps`); with
/// more, the R·T chains are enough.
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`, `x` in the layout of [`prepare_x`], the scales times
/// its factor, and [`available`] true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,fma,f16c")]
pub(super) unsafe fn dot_rows_fp8_bf16<const R: usize, const T: usize>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; T]; R] {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (g.lines, g.fused) {
            (true, true) => dot_rows_in::<R, T, true, true>(g, x, x_stride),
            (true, false) => dot_rows_in::<R, T, true, false>(g, x, x_stride),
            (false, true) => dot_rows_in::<R, T, false, true>(g, x, x_stride),
            (false, false) => dot_rows_in::<R, T, false, false>(g, x, x_stride),
        }
    }
}

/// [`dot_rows_fp8_bf16`] for rows in lines (`LINES`: one stream, [`LinesPrefetch`]) or not
/// (software prefetch ahead of each row), and `x` in bf16
/// already (`PACKED`, the fused form [`pack_fused_x`] leaves) or in f32 (rounded as it loads).
///
/// # Safety
/// As [`dot_rows_fp8_bf16`], with `LINES == g.lines` and `PACKED == g.fused`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,fma,f16c")]
unsafe fn dot_rows_in<const R: usize, const T: usize, const LINES: bool, const PACKED: bool>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; T]; R] {
    let (k, width) = (g.cols, g.width);
    let tables = Tables::load();
    // One byte per weight.
    let prefetch = GroupPrefetch::with_19h_ahead(g.ptr, k, FAMILY_19H_AHEAD_FP8);
    let lines = LinesPrefetch::new(g.ptr[0]);
    let mut total = [[_mm512_setzero_ps(); T]; R];
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + width);
        let mut acc = [[[_mm512_setzero_ps(); T]; R]; 2];
        let mut j = k0;
        while j + GROUP <= k1 {
            let mut codes = [_mm512_setzero_si512(); R];
            let at = row_at::<LINES>(j);
            for r in 0..R {
                // SAFETY: j + 64 <= K, within every row; `at` is where column `j` lies, and
                // the step is one line (blocks in lines are whole lines).
                codes[r] = unsafe { _mm512_loadu_si512(g.ptr[r].add(at).cast()) };
            }
            match LINES {
                false => prefetch.step(j, GROUP),
                true => lines.step(j),
            }
            let xv: [[__m512bh; 2]; T] = std::array::from_fn(|t| {
                // SAFETY: token t has the group's 64 columns at j (`prepare_x`'s order),
                // packed into its first 32 slots when `PACKED` (`pack_fused_x`); __m512 and
                // __m512bh are both 64 bytes of plain data.
                unsafe {
                    let p = x.add(t * x_stride + j);
                    match PACKED {
                        true => [
                            std::mem::transmute::<__m512, __m512bh>(_mm512_loadu_ps(p)),
                            std::mem::transmute::<__m512, __m512bh>(_mm512_loadu_ps(p.add(16))),
                        ],
                        false => [bf16x32(p), bf16x32(p.add(32))],
                    }
                }
            });
            for r in 0..R {
                let [w0, w1] = tables.decode(codes[r]);
                for t in 0..T {
                    if T == 1 {
                        acc[0][r][t] = _mm512_dpbf16_ps(acc[0][r][t], w0, xv[t][0]);
                        acc[1][r][t] = _mm512_dpbf16_ps(acc[1][r][t], w1, xv[t][1]);
                    } else {
                        let a = _mm512_dpbf16_ps(acc[0][r][t], w0, xv[t][0]);
                        acc[0][r][t] = _mm512_dpbf16_ps(a, w1, xv[t][1]);
                    }
                }
            }
            j += GROUP;
        }
        // The block's columns after its last whole group: codes as `value · 2^-8` against
        // `bf16(x) · 256`, 16 at a time.
        while j < k1 {
            let n = L.min(k1 - j);
            let m = if n == L { !0 } else { tail_mask(n) };
            let xv: [__m512; T] = std::array::from_fn(|t| {
                // SAFETY: columns j..j+n <= K exist in every token; the masked load reads only
                // those.
                let v = unsafe { _mm512_maskz_loadu_ps(m, x.add(t * x_stride + j)) };
                // Rounded to bf16 as the groups are: the bits back in the top of each lane.
                // SAFETY: __m256bh and __m256i are both 32 bytes of plain data.
                let b = unsafe { std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v)) };
                let b = _mm512_cvtepu16_epi32(b);
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(b))
            });
            for r in 0..R {
                // SAFETY: columns j..j+n exist in every row, within one line when in lines;
                // the masked load reads only those.
                let w = fp8x16(unsafe {
                    _mm_maskz_loadu_epi8(m, g.ptr[r].add(row_at::<LINES>(j)).cast())
                });
                for t in 0..T {
                    acc[1][r][t] = _mm512_fmadd_ps(w, xv[t], acc[1][r][t]);
                }
            }
            j += n;
        }
        scale_into(g, cb, &acc, &mut total);
        k0 = k1;
        cb += 1;
    }
    reduce(&total)
}
