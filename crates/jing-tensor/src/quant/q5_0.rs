//! `Q5_0` and `Q5_1`: blocks of 32 values as 5-bit codes: the low 4 bits packed like `Q4_0`
//! (byte `j`: element `j` low nibble, element `j + 16` high nibble) and the fifth bits in a
//! little-endian u32 `qh`, bit `i` belonging to element `i`.
//!
//! `Q5_0` (22 bytes): `d: f16` at 0, `qh: u32` at 2, `qs: [u8; 16]` at 6; `x = d · (q - 16)`.
//! `Q5_1` (24 bytes): `d: f16` at 0, `m: f16` at 2, `qh: u32` at 4, `qs: [u8; 16]` at 8;
//! `x = d · q + m`.

use super::q4_0::{min_max, signed_absmax, trunc_min};
use super::{f16_bits, f16_le, QK};

/// `Q5_0`: offset of the fifth bits.
pub const Q5_0_QH: usize = 2;
/// `Q5_0`: offset of the low 4 bits.
pub const Q5_0_QS: usize = 6;
/// `Q5_1`: offset of the minimum.
pub const Q5_1_M: usize = 2;
/// `Q5_1`: offset of the fifth bits.
pub const Q5_1_QH: usize = 4;
/// `Q5_1`: offset of the low 4 bits.
pub const Q5_1_QS: usize = 8;

/// The 32 unsigned 5-bit codes of a block.
fn codes(qh: &[u8], qs: &[u8]) -> [u8; QK] {
    let h = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut q = [0u8; QK];
    for j in 0..QK / 2 {
        q[j] = (qs[j] & 0x0f) | ((((h >> j) & 1) as u8) << 4);
        q[j + QK / 2] = (qs[j] >> 4) | ((((h >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

fn pack(q: &[u8; QK], qh: &mut [u8], qs: &mut [u8]) {
    let mut h = 0u32;
    for j in 0..QK / 2 {
        qs[j] = (q[j] & 0x0f) | ((q[j + QK / 2] & 0x0f) << 4);
        h |= ((q[j] >> 4) as u32 & 1) << j;
        h |= ((q[j + QK / 2] >> 4) as u32 & 1) << (j + 16);
    }
    qh[..4].copy_from_slice(&h.to_le_bytes());
}

pub(super) fn dequantize_q5_0(b: &[u8], out: &mut [f32]) {
    let d = f16_le(b, 0);
    let q = codes(&b[Q5_0_QH..], &b[Q5_0_QS..]);
    for (o, &q) in out.iter_mut().zip(&q) {
        *o = (q as i32 - 16) as f32 * d;
    }
}

pub(super) fn dequantize_q5_1(b: &[u8], out: &mut [f32]) {
    let d = f16_le(b, 0);
    let m = f16_le(b, Q5_1_M);
    let q = codes(&b[Q5_1_QH..], &b[Q5_1_QS..]);
    for (o, &q) in out.iter_mut().zip(&q) {
        *o = q as f32 * d + m;
    }
}

/// Like `Q4_0` with 5 bits: `d = max / -16`, codes `trunc(x/d + 16.5)` clamped to 31.
pub(super) fn quantize_q5_0(x: &[f32], b: &mut [u8]) {
    let max = signed_absmax(x);
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[0..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    let mut q = [0u8; QK];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = trunc_min(v * id + 16.5, 31);
    }
    let (qh, qs) = b[Q5_0_QH..].split_at_mut(4);
    pack(&q, qh, qs);
}

/// Like `Q4_1` with 5 bits: `d = (max - min) / 31`, codes `trunc((x - min)/d + 0.5)`.
pub(super) fn quantize_q5_1(x: &[f32], b: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[0..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    b[Q5_1_M..Q5_1_M + 2].copy_from_slice(&f16_bits(min).to_le_bytes());
    let mut q = [0u8; QK];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = trunc_min((v - min) * id + 0.5, 31);
    }
    let (qh, qs) = b[Q5_1_QH..].split_at_mut(4);
    pack(&q, qh, qs);
}
