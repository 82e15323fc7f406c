//! `Q2_K`: super-blocks of 256 values in 16 sub-blocks of 16, 2-bit codes.
//!
//! Layout (84 bytes): `scales: [u8; 16]` at 0 (sub-block `j`: scale in the low nibble, min in
//! the high nibble), `qs: [u8; 64]` at 16, `d: f16` at 80, `dmin: f16` at 82. Value
//! `d · sc_j · q - dmin · m_j`. Codes: each half (128 values) uses 32 bytes; value
//! `128h + 32s + l` is bits `2s..2s+2` of byte `32h + l`.

use super::k_common::{make_qkx2_quants, nearest_int};
use super::{f16_bits, f16_le, QK_K};

/// Offset of the 16 packed scale/min bytes.
pub const SCALES: usize = 0;
/// Offset of the 2-bit codes.
pub const QS: usize = 16;
/// Offset of `d`.
pub const D: usize = 80;
/// Offset of `dmin`.
pub const DMIN: usize = 82;

/// The code of element `i` (0..256).
#[inline(always)]
pub fn code(qs: &[u8], i: usize) -> u8 {
    let (h, r) = (i / 128, i % 128);
    (qs[32 * h + r % 32] >> (2 * (r / 32))) & 3
}

pub(super) fn dequantize(b: &[u8], out: &mut [f32]) {
    let d = f16_le(b, D);
    let dmin = f16_le(b, DMIN);
    let qs = &b[QS..QS + 64];
    for (j, sub) in out.chunks_exact_mut(16).enumerate() {
        let s = b[SCALES + j];
        let dl = d * (s & 0x0f) as f32;
        let ml = dmin * (s >> 4) as f32;
        for (i, o) in sub.iter_mut().enumerate() {
            *o = dl * code(qs, 16 * j + i) as f32 - ml;
        }
    }
}

/// Pack 256 codes (`0..4`) in the layout above.
pub(super) fn pack_codes(l: &[u8; QK_K], qs: &mut [u8]) {
    for h in 0..2 {
        for i in 0..32 {
            let base = 128 * h + i;
            qs[32 * h + i] =
                l[base] | (l[base + 32] << 2) | (l[base + 64] << 4) | (l[base + 96] << 6);
        }
    }
}

pub(super) fn quantize(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut mins = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let mut w = [0.0f32; 16];
        for (w, &v) in w.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let (s, m) = make_qkx2_quants(3, xs, &w, &mut l[16 * j..16 * j + 16], -0.5, 0.1, 15, true);
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let mut sc = [0u8; 16];
    let d = if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        f16_bits(max_scale / 15.0)
    } else {
        f16_bits(0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for j in 0..16 {
            sc[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
        }
        f16_bits(max_min / 15.0)
    } else {
        f16_bits(0.0)
    };
    let df = crate::f16_to_f32(d);
    let dminf = crate::f16_to_f32(dmin);
    for j in 0..16 {
        let dj = df * (sc[j] & 0x0f) as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dminf * (sc[j] >> 4) as f32;
        for i in 0..16 {
            l[16 * j + i] = nearest_int((x[16 * j + i] + dm) / dj).clamp(0, 3) as u8;
        }
    }
    b[SCALES..SCALES + 16].copy_from_slice(&sc);
    pack_codes(&l, &mut b[QS..QS + 64]);
    b[D..D + 2].copy_from_slice(&d.to_le_bytes());
    b[DMIN..DMIN + 2].copy_from_slice(&dmin.to_le_bytes());
}
