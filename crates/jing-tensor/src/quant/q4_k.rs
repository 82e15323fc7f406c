//! `Q4_K`: super-blocks of 256 values in 8 sub-blocks of 32, 4-bit codes, 6-bit sub-block
//! scales and mins.
//!
//! Layout (144 bytes): `d: f16` at 0, `dmin: f16` at 2, `scales: [u8; 12]` at 4 (see
//! [`unpack_scales_mins_k4`](super::unpack_scales_mins_k4)), `qs: [u8; 128]` at 16. Value
//! `d · sc_j · q - dmin · m_j`. Codes: sub-blocks `2p` and `2p + 1` share the 32 bytes
//! `qs[32p..32p + 32]`, the first in the low nibbles, the second in the high nibbles.

use super::k_common::{k4_finish, qkx2_sub_block, unpack_scales_mins_k4};
use super::{f16_le, QK_K};

/// Offset of `d`.
pub const D: usize = 0;
/// Offset of `dmin`.
pub const DMIN: usize = 2;
/// Offset of the 12 packed scale bytes.
pub const SCALES: usize = 4;
/// Offset of the codes.
pub const QS: usize = 16;

pub(super) fn dequantize(b: &[u8], out: &mut [f32]) {
    let d = f16_le(b, D);
    let dmin = f16_le(b, DMIN);
    let (sc, mn) = unpack_scales_mins_k4(&b[SCALES..SCALES + 12]);
    for (j, sub) in out.chunks_exact_mut(32).enumerate() {
        let dl = d * sc[j] as f32;
        let ml = dmin * mn[j] as f32;
        let q = &b[QS + 32 * (j / 2)..QS + 32 * (j / 2) + 32];
        let shift = 4 * (j % 2);
        for (o, &q) in sub.iter_mut().zip(q) {
            *o = dl * ((q >> shift) & 0x0f) as f32 - ml;
        }
    }
}

pub(super) fn quantize(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    for j in 0..8 {
        (scales[j], mins[j]) = qkx2_sub_block(
            15,
            &x[32 * j..32 * j + 32],
            &mut l[32 * j..32 * j + 32],
            -1.0,
            20,
        );
    }
    let (packed, d, dmin) = k4_finish(x, &scales, &mins, &mut l, 15);
    b[D..D + 2].copy_from_slice(&d.to_le_bytes());
    b[DMIN..DMIN + 2].copy_from_slice(&dmin.to_le_bytes());
    b[SCALES..SCALES + 12].copy_from_slice(&packed);
    for p in 0..4 {
        for i in 0..32 {
            b[QS + 32 * p + i] = l[64 * p + i] | (l[64 * p + 32 + i] << 4);
        }
    }
}
