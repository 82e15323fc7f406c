//! `Q3_K`: super-blocks of 256 values in 16 sub-blocks of 16, 3-bit codes with signed 6-bit
//! sub-block scales.
//!
//! Layout (110 bytes): `hmask: [u8; 32]` at 0, `qs: [u8; 64]` at 32, `scales: [u8; 12]` at 96,
//! `d: f16` at 108. Value `d · (sc_j - 32) · (q - 4)`, where `q = low2 + 4 · high`: the low 2
//! bits are packed like `Q2_K` (value `128h + 32s + l` in bits `2s..2s+2` of byte `32h + l` of
//! `qs`) and the high bit of value `i` is bit `i / 32` of `hmask[i % 32]`. The 16 scales (6-bit,
//! stored with +32) have their low nibbles in bytes 0..8 (scale `j < 8` low nibble of byte `j`,
//! scale `j ≥ 8` high nibble of byte `j - 8`) and their top 2 bits in bytes 8..12 (scale `j` in
//! bits `2(j/4)..` of byte `8 + j % 4`).

use super::k_common::{make_q3_quants, nearest_int};
use super::q2_k::pack_codes;
use super::{f16_bits, f16_le, QK_K};

/// Offset of the high-bit mask.
pub const HMASK: usize = 0;
/// Offset of the low 2 bits.
pub const QS: usize = 32;
/// Offset of the 12 packed scale bytes.
pub const SCALES: usize = 96;
/// Offset of `d`.
pub const D: usize = 108;

/// The 16 sub-block scales, already minus 32 (`-32..32`).
#[inline]
pub fn unpack_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8 - 32;
    }
    out
}

/// The signed code `q - 4` (`-4..4`) of element `i`.
#[inline(always)]
pub fn code(hmask: &[u8], qs: &[u8], i: usize) -> i8 {
    let low = super::q2_k::code(qs, i) as i8;
    let high = (hmask[i % 32] >> (i / 32)) & 1;
    low - if high != 0 { 0 } else { 4 }
}

pub(super) fn dequantize(b: &[u8], out: &mut [f32]) {
    let d = f16_le(b, D);
    let sc = unpack_scales(&b[SCALES..SCALES + 12]);
    let hm = &b[HMASK..HMASK + 32];
    let qs = &b[QS..QS + 64];
    for (j, sub) in out.chunks_exact_mut(16).enumerate() {
        let dl = d * sc[j] as f32;
        for (i, o) in sub.iter_mut().enumerate() {
            *o = dl * code(hm, qs, 16 * j + i) as f32;
        }
    }
}

pub(super) fn quantize(x: &[f32], b: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut amax = 0.0f32;
    let mut max_scale = 0.0f32;
    for j in 0..16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }
    let mut s = [0u8; 12];
    let d = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &sj) in scales.iter().enumerate() {
            let q = ((nearest_int(iscale * sj) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                s[j] = q & 0x0f;
            } else {
                s[j - 8] |= (q & 0x0f) << 4;
            }
            s[8 + j % 4] |= (q >> 4) << (2 * (j / 4));
        }
        f16_bits(1.0 / iscale)
    } else {
        f16_bits(0.0)
    };
    let df = crate::f16_to_f32(d);
    let sc = unpack_scales(&s);
    for j in 0..16 {
        let dj = df * sc[j] as f32;
        if dj == 0.0 {
            continue;
        }
        for i in 0..16 {
            let q = nearest_int(x[16 * j + i] / dj).clamp(-4, 3);
            l[16 * j + i] = (q + 4) as i8;
        }
    }
    let mut hmask = [0u8; 32];
    let mut low = [0u8; QK_K];
    for (i, &q) in l.iter().enumerate() {
        let mut q = q as u8;
        if q > 3 {
            hmask[i % 32] |= 1 << (i / 32);
            q -= 4;
        }
        low[i] = q;
    }
    b[HMASK..HMASK + 32].copy_from_slice(&hmask);
    pack_codes(&low, &mut b[QS..QS + 64]);
    b[SCALES..SCALES + 12].copy_from_slice(&s);
    b[D..D + 2].copy_from_slice(&d.to_le_bytes());
}
