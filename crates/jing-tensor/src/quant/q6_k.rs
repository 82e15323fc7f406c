//! `Q6_K`: super-blocks of 256 values in 16 sub-blocks of 16, 6-bit codes, i8 sub-block
//! scales.
//!
//! Layout (210 bytes): `ql: [u8; 128]` at 0, `qh: [u8; 64]` at 128, `scales: [i8; 16]` at 192,
//! `d: f16` at 208. Value `d · sc_j · (q - 32)`. Each half `h` (128 values) uses 64 bytes of
//! `ql` and 32 of `qh`; its value `128h + 32s + l` (`s < 4`, `l < 32`) has its low 4 bits in the
//! nibble `s / 2` (low, high) of `ql[64h + 32(s % 2) + l]` and its top 2 bits in bits `2s..2s+2`
//! of `qh[32h + l]`.

use super::k_common::{make_qx_quants, nearest_int, GROUP_MAX_EPS};
use super::{f16_bits, f16_le, QK_K};

/// Offset of the low 4 bits.
pub const QL: usize = 0;
/// Offset of the top 2 bits.
pub const QH: usize = 128;
/// Offset of the 16 i8 scales.
pub const SCALES: usize = 192;
/// Offset of `d`.
pub const D: usize = 208;

/// The unsigned code (`0..64`, value `q - 32`) of element `i`.
#[inline(always)]
pub fn code(ql: &[u8], qh: &[u8], i: usize) -> u8 {
    let (h, r) = (i / 128, i % 128);
    let (s, l) = (r / 32, r % 32);
    let low = (ql[64 * h + 32 * (s % 2) + l] >> (4 * (s / 2))) & 0x0f;
    let high = (qh[32 * h + l] >> (2 * s)) & 3;
    low | (high << 4)
}

pub(super) fn dequantize(b: &[u8], out: &mut [f32]) {
    let d = f16_le(b, D);
    let ql = &b[QL..QL + 128];
    let qh = &b[QH..QH + 64];
    for (j, sub) in out.chunks_exact_mut(16).enumerate() {
        let dl = d * (b[SCALES + j] as i8) as f32;
        for (i, o) in sub.iter_mut().enumerate() {
            *o = dl * (code(ql, qh, 16 * j + i) as i32 - 32) as f32;
        }
    }
}

pub(super) fn quantize(x: &[f32], b: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_abs = 0.0f32;
    for j in 0..16 {
        let s = make_qx_quants(32, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        scales[j] = s;
        if s.abs() > max_abs {
            max_abs = s.abs();
            max_scale = s;
        }
    }
    b[..210].fill(0);
    if max_abs < GROUP_MAX_EPS {
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = f16_bits(1.0 / iscale);
    let mut sc = [0i8; 16];
    for j in 0..16 {
        sc[j] = nearest_int(iscale * scales[j]).min(127) as i8;
    }
    let df = crate::f16_to_f32(d);
    for j in 0..16 {
        let dj = df * sc[j] as f32;
        if dj == 0.0 {
            continue;
        }
        for i in 0..16 {
            let q = nearest_int(x[16 * j + i] / dj).clamp(-32, 31);
            l[16 * j + i] = (q + 32) as i8;
        }
    }
    for h in 0..2 {
        for i in 0..32 {
            let q = |s: usize| l[128 * h + 32 * s + i] as u8;
            b[QL + 64 * h + i] = (q(0) & 0x0f) | ((q(2) & 0x0f) << 4);
            b[QL + 64 * h + 32 + i] = (q(1) & 0x0f) | ((q(3) & 0x0f) << 4);
            b[QH + 32 * h + i] =
                (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
        }
    }
    for (o, &s) in b[SCALES..SCALES + 16].iter_mut().zip(&sc) {
        *o = s as u8;
    }
    b[D..D + 2].copy_from_slice(&d.to_le_bytes());
}
