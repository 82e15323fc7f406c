//! `row_axpy` for FP8 rows on CPUs with AVX512-VBMI (and BF16, the features of the
//! [`fp8_bf16`](super::fp8_bf16) table decode): each code's exact value as an f32 from the
//! table's two bytes (a bf16 is the top half of an f32). Per 64 codes that is a reordering,
//! two lookups, a sign merge and six interleaves before the four FMAs, against four loads, four
//! widenings, eight shifts and masks and four f16 conversions through `load_w`.
//!
//! The values are the same as `load_w`'s (the table gives `value`, `load_w` gives
//! `value · 2^-8` against a coefficient 256 times larger: both products are
//! `round(a · scale) · value`), so the sums are those of the other kernels bit for bit.

use super::super::prefetch::GroupPrefetch;
use super::fp8_bf16::Tables;
use super::vector::axpy_cols;
use super::L;
use crate::kernels::driver::AxpyRows;
use crate::kernels::layout::dt;
use std::arch::x86_64::*;

/// Codes per row per step.
const STEP: usize = 64;

/// The order [`decode`] takes a step's codes in: slot `16i + 4q + u` holds code
/// `16q + 4i + u`, so that the byte and word interleaves, which work within each 128-bit lane,
/// give f32 vectors of consecutive columns.
static CODE_ORDER: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut s = 0;
    while s < 64 {
        let (i, q, u) = (s / 16, s % 16 / 4, s % 4);
        t[s] = (16 * q + 4 * i + u) as u8;
        s += 1;
    }
    t
};

/// A step's 64 codes as f32 values, columns `16q..16q + 16` in vector `q`: reordered
/// ([`CODE_ORDER`]), looked up (two bytes each), and the bytes moved to the top half of each
/// 32-bit lane by two byte and four word interleaves with zeros.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,fma,f16c")]
fn decode(tables: &Tables, order: __m512i, codes: __m512i) -> [__m512; 4] {
    let [hi, lo] = tables.bytes(_mm512_permutexvar_epi8(order, codes));
    // bf16 words: slots 16i + 0..8 of each lane in `w0`, 16i + 8..16 in `w1`.
    let (w0, w1) = (_mm512_unpacklo_epi8(lo, hi), _mm512_unpackhi_epi8(lo, hi));
    let z = _mm512_setzero_si512();
    [
        _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, w0)),
        _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, w0)),
        _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, w1)),
        _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, w1)),
    ]
}

/// `Isa::row_axpy` for FP8 rows (the coefficients' scales including `simd_factor`'s 256).
///
/// # Safety
/// As `Isa::row_axpy`, and the CPU has AVX512-VBMI and AVX512-BF16
/// ([`fp8_bf16::available`](super::fp8_bf16::available)).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512bf16,avx2,fma,f16c")]
pub(super) unsafe fn row_axpy_fp8<const N: usize>(rows: &AxpyRows<'_, N>, y: &mut [f32]) {
    let tables = Tables::load();
    // SAFETY: a 64-byte array.
    let order = unsafe { _mm512_loadu_si512(CODE_ORDER.as_ptr().cast()) };
    let k = y.len();
    let py = y.as_mut_ptr();
    // As the other `row_axpy` kernels: the next groups' bytes ahead in address order.
    let prefetch = GroupPrefetch::new(rows.ptr, k);
    let (mut k0, mut cb) = (0, 0);
    while k0 < k {
        let k1 = k.min(k0 + rows.width);
        // `load_w`'s coefficient (for `value · 2^-8`), and the table's (for `value`): the
        // same up to the exact factor 2^8.
        let c16: [f32; N] = std::array::from_fn(|i| rows.a[i] * rows.scale[i].get(cb));
        let c: [__m512; N] = std::array::from_fn(|i| _mm512_set1_ps(c16[i] * (1.0 / 256.0)));
        let mut j = k0;
        while j + STEP <= k1 {
            prefetch.step(j, STEP);
            // SAFETY: j + 64 <= K: within `y` and every row.
            unsafe {
                let mut v: [__m512; 4] =
                    std::array::from_fn(|q| _mm512_loadu_ps(py.add(j + q * L)));
                for (&c, &row) in c.iter().zip(&rows.ptr) {
                    let w = decode(&tables, order, _mm512_loadu_si512(row.add(j).cast()));
                    for (v, w) in v.iter_mut().zip(w) {
                        *v = _mm512_fmadd_ps(c, w, *v);
                    }
                }
                for (q, v) in v.iter().enumerate() {
                    _mm512_storeu_ps(py.add(j + q * L), *v);
                }
            }
            j += STEP;
        }
        // The block's last columns (fewer than 64), as the f16 decode reads them.
        let c: [__m512; N] = std::array::from_fn(|i| _mm512_set1_ps(c16[i]));
        // SAFETY: j..k1 are columns of K, within one scale block.
        unsafe { axpy_cols::<{ dt::F8 }, N>(&rows.ptr, &c, j..k1, py, &prefetch) };
        k0 = k1;
        cb += 1;
    }
}
