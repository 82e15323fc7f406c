//! How a stored weight is read by the kernels: its element type as a const-generic code, the
//! grouping of its columns under the block scale, and the scale of each (row, column block).
//!
//! Shared by the generic and the SIMD versions so that every version multiplies by the same
//! numbers in the same grouping: for a block-scaled weight (DeepSeek FP8, `[128, 128]` blocks)
//! `y = Σ_cb scale(n, cb) · Σ_{k in block cb} x[k] · code[n, k]`, i.e. each column block is
//! accumulated on its own and then multiplied by its scale.

use jing_tensor::{DType, Weight};

/// Element types as `u8` constants, so kernels can be monomorphized per type with a const
/// generic (`fn load<const D: u8>`) and the type test folds away at compile time.
pub(crate) mod dt {
    pub const F32: u8 = 0;
    pub const BF16: u8 = 1;
    pub const F16: u8 = 2;
    /// `float8_e4m3fn`.
    pub const F8: u8 = 3;
}

/// The const-generic code of a float weight type; `None` for types no SIMD kernel reads.
pub(crate) fn dt_code(d: DType) -> Option<u8> {
    match d {
        DType::F32 => Some(dt::F32),
        DType::BF16 => Some(dt::BF16),
        DType::F16 => Some(dt::F16),
        DType::F8E4M3 => Some(dt::F8),
        _ => None,
    }
}

/// Bytes per element of a dtype code.
pub(crate) const fn dt_size(d: u8) -> usize {
    match d {
        dt::F32 => 4,
        dt::BF16 | dt::F16 => 2,
        _ => 1,
    }
}

/// The SIMD `row_axpy` kernels decode FP8 codes to `value · 2^-8` (see [`fp8_as_f16_bits`])
/// and multiply the block scale by this factor instead, so the product is exact and unchanged.
/// (The matmul kernels use [`FP8_X_SCALE`] instead.)
pub(crate) const fn simd_factor(d: u8) -> f32 {
    if d == dt::F8 {
        256.0
    } else {
        1.0
    }
}

/// The f16 whose value is the e4m3fn code's value times 2^-8: the sign moves from bit 7 to
/// bit 15 and the 4 exponent + 3 mantissa bits move to f16 bits 13..7. An e4m3 exponent field
/// `e` (bias 7) then reads as an f16 exponent field `e` (bias 15), i.e. a factor 2^-8, and e4m3
/// subnormals (`e = 0`, value `m/8 · 2^-6`) land exactly on f16 subnormals (`m/8 · 2^-14`).
/// NaN codes (`S.1111.111`) map to ±1.875 instead of NaN; they never occur in weights.
///
/// The SIMD kernels do this on 16-bit lanes as `(sign_extend(code) << 7) & 0xBFFF` (the
/// sign extension fills bits 15 and 14, and bit 14 is cleared) and convert with F16C (x86) or
/// FCVTL (NEON).
/// (The scalar form is the specification; the kernels use the vector form.)
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const fn fp8_as_f16_bits(code: u8) -> u16 {
    (((code as i8 as i16) << 7) as u16) & 0xBFFF
}

/// The bf16 bits of an e4m3fn code's value (exact: 3 mantissa bits, exponents -9..8): sign
/// to bit 15; a normal `(e, m)` to exponent field `e + 120` and mantissa `m << 4`; a subnormal
/// `m · 2^-9` normalized, its leading bit `p` giving exponent field `p + 118`; NaN to a quiet
/// NaN. The table of the AVX512-BF16 FP8 kernel.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const fn fp8_bf16_bits(code: u8) -> u16 {
    let sign = ((code & 0x80) as u16) << 8;
    let (e, m) = (((code >> 3) & 0xF) as u16, (code & 7) as u16);
    let magnitude = if e == 0xF && m == 7 {
        0x7FC0
    } else if e > 0 {
        (e + 120) << 7 | m << 4
    } else if m == 0 {
        0
    } else {
        // The leading bit of m and the bits below it.
        let p = 15 - m.leading_zeros() as u16;
        (p + 118) << 7 | (m - (1 << p)) << (7 - p)
    };
    sign | magnitude
}

/// The FP8 matmul kernels multiply `x` by this: their shift-and-mask decode yields
/// `code · 2^-120` (the e4m3 bits land in the low exponent bits of an f32, subnormals as f32
/// subnormals, exact as long as MXCSR.DAZ is clear, Rust's default), so the products are
/// `x · w · 2^-60`, comfortably normal, and no multiply per weight is needed. The block scales
/// take the 2^60 back.
pub(crate) const FP8_X_SCALE: f32 = (1u64 << 60) as f32;

/// The FP8 matmul layout of `x` (`[m, K]`) for vectors of `lanes` f32: each value times
/// [`FP8_X_SCALE`], and within each scale block every whole group of `4 · lanes` columns from
/// the block's start reordered as `[4 positions][lanes]` (`dst[p · lanes + i] = src[4i + p]`);
/// a block's remaining columns stay in order. The kernel loads `4 · lanes` codes per row as
/// i32 lanes of 4 codes each and splits them by byte position `p` with shifts only, so its
/// vector `p` holds the codes `4i + p`. Returns the factor for the block scales.
pub(crate) fn fp8_prepare_x(
    x: &[f32],
    k: usize,
    width: usize,
    lanes: usize,
    buf: &mut Vec<f32>,
) -> f32 {
    let group = 4 * lanes;
    buf.clear();
    buf.resize(x.len(), 0.0);
    for (src, dst) in x.chunks_exact(k).zip(buf.chunks_exact_mut(k)) {
        for (sb, db) in src.chunks(width).zip(dst.chunks_mut(width)) {
            let whole = sb.len() / group * group;
            let (sg, st) = sb.split_at(whole);
            let (dg, dt) = db.split_at_mut(whole);
            for (s, d) in sg.chunks_exact(group).zip(dg.chunks_exact_mut(group)) {
                for (p, dp) in d.chunks_exact_mut(lanes).enumerate() {
                    for (i, v) in dp.iter_mut().enumerate() {
                        *v = s[4 * i + p] * FP8_X_SCALE;
                    }
                }
            }
            for (s, d) in st.iter().zip(dt) {
                *d = s * FP8_X_SCALE;
            }
        }
    }
    FP8_X_SCALE
}

/// Scale lookup for one weight row: `get(cb)` is the multiplier of column block `cb` (times a
/// constant `factor`); for an unscaled weight it is `factor` for every block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowScale<'a> {
    /// This row's run of f32 little-endian scales, one per column block; empty if unscaled.
    bytes: &'a [u8],
    factor: f32,
}

impl<'a> RowScale<'a> {
    /// The scales of row `r` (of the view `w`), multiplied by `factor`.
    #[inline]
    pub(crate) fn of(w: &'a Weight, r: usize, factor: f32) -> RowScale<'a> {
        let bytes = match &w.scale {
            Some(s) => {
                let br = (r + s.row_offset) / s.block[0];
                let run = s.block_cols * 4;
                &s.data.as_slice()[br * run..(br + 1) * run]
            }
            None => &[],
        };
        RowScale { bytes, factor }
    }

    /// No block scales: every column block is multiplied by `factor`.
    #[inline]
    pub(crate) fn unscaled(factor: f32) -> RowScale<'a> {
        RowScale { bytes: &[], factor }
    }

    /// The same scales without the first `cb0` column blocks: its block `cb` is this one's
    /// `cb0 + cb`.
    #[inline]
    pub(crate) fn skip_blocks(self, cb0: usize) -> RowScale<'a> {
        let bytes = self.bytes.get(cb0 * 4..).unwrap_or(&[]);
        RowScale { bytes, ..self }
    }

    /// Multiplier of column block `cb`.
    #[inline(always)]
    pub(crate) fn get(&self, cb: usize) -> f32 {
        if self.bytes.is_empty() {
            return self.factor;
        }
        let b = &self.bytes[cb * 4..cb * 4 + 4];
        self.factor * f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

/// Columns per scale block of `w`; `None` if the weight has no block scale.
pub(crate) fn block_width(w: &Weight) -> Option<usize> {
    w.scale.as_ref().map(|s| s.block[1])
}

/// Whether the SIMD kernels can read `w`: a float type, and scale blocks (if any) a multiple of
/// 16 columns wide so that a 16-column (or 8-column) step never straddles two blocks. Anything
/// else falls back to the generic kernels.
pub(crate) fn simd_code(w: &Weight) -> Option<u8> {
    match block_width(w) {
        Some(bw) if bw == 0 || bw % 16 != 0 => None,
        _ => dt_code(w.dtype),
    }
}

/// The bytes of row `r` of `w` (`cols · dtype size` of them).
#[inline]
pub(crate) fn row_bytes(w: &Weight, r: usize) -> &[u8] {
    w.row_data(r)
}

/// Checks shared by every matmul version; returns K. `y` must have room for columns `rows`.
pub(crate) fn check_matmul(
    w: &Weight,
    x: &[f32],
    m: usize,
    rows: &std::ops::Range<usize>,
    y: &super::OutMatrix,
) -> usize {
    let k = w.cols();
    debug_assert!(
        w.dtype.is_weight(),
        "matmul with {} weight `{}`",
        w.dtype,
        w.name
    );
    assert_eq!(
        x.len(),
        m * k,
        "matmul `{}`: x has {} values, expected m={m} x K={k}",
        w.name,
        x.len()
    );
    assert!(
        rows.start <= rows.end && rows.end <= w.rows(),
        "matmul `{}`: rows {rows:?} out of 0..{}",
        w.name,
        w.rows()
    );
    assert!(
        rows.is_empty() || rows.end <= y.ld(),
        "matmul `{}`: rows {rows:?} do not fit the output's leading dimension {}",
        w.name,
        y.ld()
    );
    k
}

/// Checks shared by every quantized matmul version.
pub(crate) fn check_matmul_q(
    w: &Weight,
    x: &super::QuantX,
    rows: &std::ops::Range<usize>,
    y: &super::OutMatrix,
) {
    assert!(
        w.dtype.is_quantized(),
        "matmul_q with {} weight `{}`",
        w.dtype,
        w.name
    );
    assert!(
        x.k == w.cols() && x.block == w.dtype.block_size(),
        "matmul_q `{}`: activations quantized for K={} in blocks of {}, weight is {} with K={}",
        w.name,
        x.k,
        x.block,
        w.dtype,
        w.cols()
    );
    assert!(
        rows.start <= rows.end && rows.end <= w.rows(),
        "matmul_q `{}`: rows {rows:?} out of 0..{}",
        w.name,
        w.rows()
    );
    assert!(
        rows.is_empty() || rows.end <= y.ld(),
        "matmul_q `{}`: rows {rows:?} do not fit the output's leading dimension {}",
        w.name,
        y.ld()
    );
}

/// Checks shared by every `row_axpy` version, for rows `r0..r0 + n`.
pub(crate) fn check_row_axpy(w: &Weight, r0: usize, n: usize, y: &[f32]) {
    debug_assert!(
        w.dtype.is_weight(),
        "row_axpy with {} weight `{}`",
        w.dtype,
        w.name
    );
    assert!(
        r0.checked_add(n).is_some_and(|end| end <= w.rows()),
        "row_axpy `{}`: rows {r0}..{r0}+{n} out of 0..{}",
        w.name,
        w.rows()
    );
    assert_eq!(
        y.len(),
        w.cols(),
        "row_axpy `{}`: y has {} values, K is {}",
        w.name,
        y.len(),
        w.cols()
    );
}
