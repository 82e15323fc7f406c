//! `Q8_K`: 256 values as an f32 scale, 256 signed bytes and the 16 sums of each run of 16
//! codes (llama.cpp's activation format for the K-quant dot products).
//!
//! Layout (292 bytes): `d: f32` at 0, `qs: [i8; 256]` at 4, `bsums: [i16; 16]` at 260.

use super::k_common::nearest_int;
use super::QK_K;

/// Offset of `d` (f32).
pub const D: usize = 0;
/// Offset of the codes.
pub const QS: usize = 4;
/// Offset of the 16 partial sums (i16).
pub const BSUMS: usize = 260;

pub(super) fn dequantize(b: &[u8], out: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (o, &q) in out.iter_mut().zip(&b[QS..QS + QK_K]) {
        *o = d * (q as i8) as f32;
    }
}

/// Scale `max / -127` from the signed value of largest magnitude, codes
/// `nearest_int(x · (-127 / max))` capped at 127. An all-zero block is all zeros (llama.cpp's
/// reference leaves the sums of such a block unwritten; here they are 0).
pub(super) fn quantize(x: &[f32], b: &mut [u8]) {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    b[..292].fill(0);
    if amax == 0.0 {
        return;
    }
    let iscale = -127.0 / max;
    let mut q = [0i8; QK_K];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (o, &q) in b[QS..QS + QK_K].iter_mut().zip(&q) {
        *o = q as u8;
    }
    for j in 0..16 {
        let s: i32 = q[16 * j..16 * j + 16].iter().map(|&v| v as i32).sum();
        b[BSUMS + 2 * j..BSUMS + 2 * j + 2].copy_from_slice(&(s as i16).to_le_bytes());
    }
    b[D..D + 4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}
