//! `Q4_0` and `Q4_1`: blocks of 32 values as 4-bit codes. Byte `j` of the codes holds element
//! `j` in its low nibble and element `j + 16` in its high nibble.
//!
//! `Q4_0` (18 bytes): `d: f16` at 0, `qs: [u8; 16]` at 2; `x = d · (q - 8)`.
//! `Q4_1` (20 bytes): `d: f16` at 0, `m: f16` at 2, `qs: [u8; 16]` at 4; `x = d · q + m`.

use super::{f16_bits, f16_le, QK};

/// `Q4_0`: offset of the codes.
pub const Q4_0_QS: usize = 2;
/// `Q4_1`: offset of the minimum `m`.
pub const Q4_1_M: usize = 2;
/// `Q4_1`: offset of the codes.
pub const Q4_1_QS: usize = 4;

pub(super) fn dequantize_q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16_le(b, 0);
    let (lo, hi) = out.split_at_mut(QK / 2);
    for (j, &q) in b[Q4_0_QS..Q4_0_QS + QK / 2].iter().enumerate() {
        lo[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
        hi[j] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

pub(super) fn dequantize_q4_1(b: &[u8], out: &mut [f32]) {
    let d = f16_le(b, 0);
    let m = f16_le(b, Q4_1_M);
    let (lo, hi) = out.split_at_mut(QK / 2);
    for (j, &q) in b[Q4_1_QS..Q4_1_QS + QK / 2].iter().enumerate() {
        lo[j] = (q & 0x0f) as f32 * d + m;
        hi[j] = (q >> 4) as f32 * d + m;
    }
}

/// The value of largest magnitude (the first one on ties), with its sign.
pub(super) fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// `(min, max)` of the block, starting from `(+MAX, -MAX)`.
pub(super) fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| {
        (if v < lo { v } else { lo }, if v > hi { v } else { hi })
    })
}

/// Truncating float-to-int conversion clamped above at `top` (the reference quantizers
/// convert `x + 0.5` (or `+ 8.5`) to an integer by truncation).
#[inline]
pub(super) fn trunc_min(v: f32, top: i32) -> u8 {
    (v as i32).min(top) as u8
}

/// `d = max / -8` where `max` is the signed value of largest magnitude, so that it maps to
/// code 0; codes `trunc(x/d + 8.5)` clamped to 15.
pub(super) fn quantize_q4_0(x: &[f32], b: &mut [u8]) {
    let max = signed_absmax(x);
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[0..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    for j in 0..QK / 2 {
        let q0 = trunc_min(x[j] * id + 8.5, 15);
        let q1 = trunc_min(x[j + QK / 2] * id + 8.5, 15);
        b[Q4_0_QS + j] = q0 | (q1 << 4);
    }
}

/// `d = (max - min) / 15`, `m = min`; codes `trunc((x - min)/d + 0.5)` clamped to 15.
pub(super) fn quantize_q4_1(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[0..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    b[Q4_1_M..Q4_1_M + 2].copy_from_slice(&f16_bits(min).to_le_bytes());
    for j in 0..QK / 2 {
        let q0 = trunc_min((x[j] - min) * id + 0.5, 15);
        let q1 = trunc_min((x[j + QK / 2] - min) * id + 0.5, 15);
        b[Q4_1_QS + j] = q0 | (q1 << 4);
    }
}
