//! `Q8_0`: blocks of 32 values as one f16 scale and 32 signed bytes, `x = d · q`.
//!
//! Layout (34 bytes): `d: f16` at 0, `qs: [i8; 32]` at 2.

use super::{f16_bits, f16_le, QK};

/// Bytes per block.
pub const BLOCK_BYTES: usize = 34;
/// Offset of the f16 scale.
pub const D: usize = 0;
/// Offset of the 32 signed codes.
pub const QS: usize = 2;

pub(super) fn dequantize(b: &[u8], out: &mut [f32]) {
    let d = f16_le(b, D);
    for (o, &q) in out.iter_mut().zip(&b[QS..QS + QK]) {
        *o = (q as i8) as f32 * d;
    }
}

/// Scale `amax / 127` (stored as f16), codes `round(x / d)` computed as `x · (1/d)` with the
/// f32 scale, ties away from zero.
pub(super) fn quantize(x: &[f32], b: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[D..D + 2].copy_from_slice(&f16_bits(d).to_le_bytes());
    for (o, &v) in b[QS..QS + QK].iter_mut().zip(x) {
        *o = ((v * id).round() as i8) as u8;
    }
}
