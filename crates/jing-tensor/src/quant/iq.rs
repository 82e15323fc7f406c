//! llama.cpp's "i-quants": codebook (`IQ1_*`, `IQ2_*`, `IQ3_*`) and non-linear (`IQ4_*`) block
//! types. llama.cpp makes them with an importance matrix; jing reads them (no quantizer).
//!
//! Every type here has one integer form, which the dequantization and every kernel share: the
//! value of element `l` of a block is `dc · m_{l/16} · c_l` with `dc` an f32 (the block's f16
//! `d` times a power of two), `m_j` an integer scale per 16 elements and `c_l` a signed 8-bit
//! code (|c| <= 127). [`decoder`] gives the function that unpacks a block into this form.
//!
//! | type | bytes | layout (after `d: f16` at 0 unless noted) | `dc` | `m` (per 16) | `c` |
//! |---|---|---|---|---|---|
//! | `IQ2_XXS` | 66 | per 32: 4 grid bytes, u32 (4 × 7-bit signs, 4-bit `s` on top) | `d/8` | `2s+1` (per 32) | ±grid {8,25,43} |
//! | `IQ2_XS` | 74 | 32 u16 (9-bit grid index, 7-bit signs), 8 bytes of 4-bit `s` | `d/8` | `2s+1` | ±grid |
//! | `IQ2_S` | 82 | 32 grid bytes, 32 sign bytes, 8 bytes of 2 high index bits, 8 of `s` | `d/8` | `2s+1` | ±grid |
//! | `IQ3_XXS` | 98 | 64 grid bytes (4 elements each), per 32 a u32 as `IQ2_XXS` | `d/4` | `2s+1` (per 32) | ±grid {4..62} |
//! | `IQ3_S` | 110 | 64 grid bytes, 8 bytes of ninth bits, 32 sign bytes, 4 bytes of `s` | `d` | `2s+1` (per 32) | ±grid {1..15} |
//! | `IQ1_S` | 50 | 32 grid bytes, per 32 a u16 (3 high bits per index, 3-bit `s`, delta sign) | `d/8` | `2s+1` (per 32) | `8g ± 1`, g ∈ {-1,0,1} |
//! | `IQ1_M` | 56 | (no `d` at 0) 32 grid bytes, 16 bytes of (3 high bits, delta sign) per 8, 4 u16 of 3-bit `s` with `d`'s 16 bits in their top nibbles | `d/8` | `2s+1` | `8g ± 1` |
//! | `IQ4_NL` | 18 | 16 bytes of nibbles (32 elements) | `d` | 1 | kvalue |
//! | `IQ4_XS` | 136 | u16 of high scale bits, 4 bytes of low ones, 128 bytes of nibbles | `d` | `s - 32` (6-bit `s`, per 32) | kvalue |
//!
//! The grids and tables are llama.cpp's, generated into [`iq_tables`](super::iq_tables) by
//! `scripts/gen_iq_tables.py`. The sign of grid element `j` of an 8-element group is bit `j`
//! of a sign byte (`KSIGNS[7-bit index]` for the XXS/XS types, stored for the `_S` types).
//!
//! Why this form: `dc · m · c` is the value the `gguf` package computes, exactly (every factor
//! has few enough significant bits that all products are exact in f32), so dequantizing from
//! it is bit-identical to the reference; and `Σ_j m_j Σ c·q` is an exact integer dot product
//! with 8-bit activation codes `q` (`|c·q| <= 127²`, so the pair sums of `vpmaddubsw` never
//! saturate), the same for every kernel.

use super::f16_le;
use super::iq_tables::{
    IQ1S_GRID8, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS, KVALUES_IQ4NL,
};
use crate::DType;

/// Elements per integer scale `m_j` of the integer form.
pub const SUB: usize = 16;

/// Unpacks one block into its integer form: writes `codes` (256, or 32 for `IQ4_NL`) and `m`
/// (16, or 2 for `IQ4_NL`) and returns `dc` (see the module docs).
pub type Decode = fn(blk: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32;

/// The decoder of an IQ type; `None` for any other type.
pub fn decoder(dtype: DType) -> Option<Decode> {
    Some(match dtype {
        DType::IQ2XXS => decode_iq2_xxs,
        DType::IQ2XS => decode_iq2_xs,
        DType::IQ2S => decode_iq2_s,
        DType::IQ3XXS => decode_iq3_xxs,
        DType::IQ3S => decode_iq3_s,
        DType::IQ1S => decode_iq1_s,
        DType::IQ1M => decode_iq1_m,
        DType::IQ4NL => decode_iq4_nl,
        DType::IQ4XS => decode_iq4_xs,
        _ => return None,
    })
}

/// Byte `j` is `0xff` where bit `j` of the index is set, else 0.
const fn bit_masks() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut j = 0;
        while j < 8 {
            if (i >> j) & 1 == 1 {
                t[i] |= 0xff << (8 * j);
            }
            j += 1;
        }
        i += 1;
    }
    t
}

/// The byte masks of every sign byte.
static BIT_MASKS: [u64; 256] = bit_masks();

/// The byte masks of the 128 `KSIGNS` patterns (one lookup instead of two).
static KSIGN_MASKS: [u64; 128] = {
    let masks = bit_masks();
    let mut t = [0u64; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = masks[KSIGNS[i] as usize];
        i += 1;
    }
    t
};

/// The 8 bytes of `g` negated where `mask` has `0xff` (two's complement per byte:
/// `(g ^ 0xff) + 1`, with no carry between bytes because no byte of `g` is 0).
#[inline(always)]
fn signed8(g: u64, mask: u64) -> u64 {
    (g ^ mask).wrapping_add(mask & PLUS1)
}

/// The sign mask of a 7-bit `KSIGNS` index.
#[inline(always)]
fn ksign_mask(i: u32) -> u64 {
    KSIGN_MASKS[(i & 127) as usize]
}

/// Stores the 8 bytes of `v` (little-endian) as codes `at..at + 8`.
#[inline(always)]
fn put8(codes: &mut [i8; 256], at: usize, v: u64) {
    for (c, b) in codes[at..at + 8].iter_mut().zip(v.to_le_bytes()) {
        *c = b as i8;
    }
}

#[inline(always)]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Two 4-element grid entries as one 8-element group.
#[inline(always)]
fn pair4(grid: &[u32], i0: usize, i1: usize) -> u64 {
    grid[i0] as u64 | (grid[i1] as u64) << 32
}

/// Bytes `a + b` per byte, modulo 256 (no carry between bytes).
#[inline(always)]
fn add_bytes(a: u64, b: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    ((a & LOW7) + (b & LOW7)) ^ ((a ^ b) & !LOW7)
}

/// A codebook IQ type's integer form, 8 codes at a time: what [`decode`] unpacks, and what
/// the SIMD kernels build their vectors from in registers (a block's codes never go through
/// memory, whose 8-byte stores a 32-byte load cannot forward from).
pub trait IqGroups {
    /// Bytes per block.
    const BYTES: usize;
    /// `dc` of block `b`.
    fn dc(b: &[u8]) -> f32;
    /// `m_j` of the 16-element sub-block `j < 16`.
    fn scale(b: &[u8], j: usize) -> i16;
    /// Codes `8g..8g + 8` (`g < 32`) as the little-endian bytes of a u64.
    fn group(b: &[u8], g: usize) -> u64;
}

/// Unpacks a block of `I` (see [`Decode`]).
#[inline(always)]
pub fn decode<I: IqGroups>(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    let b = &b[..I::BYTES];
    for g in 0..32 {
        put8(codes, 8 * g, I::group(b, g));
    }
    for (j, m) in m.iter_mut().enumerate() {
        *m = I::scale(b, j);
    }
    I::dc(b)
}

/// `IQ2_XXS` (66 bytes).
pub struct Iq2Xxs;

impl IqGroups for Iq2Xxs {
    const BYTES: usize = 66;
    #[inline(always)]
    fn dc(b: &[u8]) -> f32 {
        f16_le(b, 0) * 0.125
    }
    #[inline(always)]
    fn scale(b: &[u8], j: usize) -> i16 {
        (2 * (u32_at(b, 6 + 8 * (j / 2)) >> 28) + 1) as i16
    }
    #[inline(always)]
    fn group(b: &[u8], g: usize) -> u64 {
        let (at, k) = (2 + 8 * (g / 4), g % 4);
        let signs = u32_at(b, at + 4) >> (7 * k);
        signed8(IQ2XXS_GRID[b[at + k] as usize], ksign_mask(signs))
    }
}

/// The scale `2s + 1` of sub-block `j` in the IQ2_XS/IQ2_S layout: 8 bytes at `at`, the low
/// nibble first.
#[inline(always)]
fn nibble_scale(b: &[u8], at: usize, j: usize) -> i16 {
    (2 * ((b[at + j / 2] >> (4 * (j % 2))) & 15) + 1) as i16
}

/// `IQ2_XS` (74 bytes).
pub struct Iq2Xs;

impl IqGroups for Iq2Xs {
    const BYTES: usize = 74;
    #[inline(always)]
    fn dc(b: &[u8]) -> f32 {
        f16_le(b, 0) * 0.125
    }
    #[inline(always)]
    fn scale(b: &[u8], j: usize) -> i16 {
        nibble_scale(b, 66, j)
    }
    #[inline(always)]
    fn group(b: &[u8], g: usize) -> u64 {
        let v = u16_at(b, 2 + 2 * g);
        signed8(IQ2XS_GRID[(v & 511) as usize], ksign_mask((v >> 9) as u32))
    }
}

/// `IQ2_S` (82 bytes).
pub struct Iq2S;

impl IqGroups for Iq2S {
    const BYTES: usize = 82;
    #[inline(always)]
    fn dc(b: &[u8]) -> f32 {
        f16_le(b, 0) * 0.125
    }
    #[inline(always)]
    fn scale(b: &[u8], j: usize) -> i16 {
        nibble_scale(b, 74, j)
    }
    #[inline(always)]
    fn group(b: &[u8], g: usize) -> u64 {
        let hi = (b[66 + g / 4] >> (2 * (g % 4))) & 3;
        let grid = IQ2S_GRID[b[2 + g] as usize | (hi as usize) << 8];
        signed8(grid, BIT_MASKS[b[34 + g] as usize])
    }
}

/// `IQ3_XXS` (98 bytes).
pub struct Iq3Xxs;

impl IqGroups for Iq3Xxs {
    const BYTES: usize = 98;
    #[inline(always)]
    fn dc(b: &[u8]) -> f32 {
        f16_le(b, 0) * 0.25
    }
    #[inline(always)]
    fn scale(b: &[u8], j: usize) -> i16 {
        (2 * (u32_at(b, 66 + 4 * (j / 2)) >> 28) + 1) as i16
    }
    #[inline(always)]
    fn group(b: &[u8], g: usize) -> u64 {
        let (ib, k) = (g / 4, g % 4);
        let signs = u32_at(b, 66 + 4 * ib) >> (7 * k);
        let at = 2 + 8 * ib + 2 * k;
        let grid = pair4(&IQ3XXS_GRID, b[at] as usize, b[at + 1] as usize);
        signed8(grid, ksign_mask(signs))
    }
}

/// `IQ3_S` (110 bytes).
pub struct Iq3S;

impl Iq3S {
    /// The 9-bit grid index of 4-element entry `i < 64`.
    #[inline(always)]
    fn index(b: &[u8], i: usize) -> usize {
        b[2 + i] as usize | (((b[66 + i / 8] >> (i % 8)) & 1) as usize) << 8
    }
}

impl IqGroups for Iq3S {
    const BYTES: usize = 110;
    #[inline(always)]
    fn dc(b: &[u8]) -> f32 {
        f16_le(b, 0)
    }
    #[inline(always)]
    fn scale(b: &[u8], j: usize) -> i16 {
        let ib = j / 2;
        (2 * ((b[106 + ib / 2] >> (4 * (ib % 2))) & 15) + 1) as i16
    }
    #[inline(always)]
    fn group(b: &[u8], g: usize) -> u64 {
        let grid = pair4(&IQ3S_GRID, Self::index(b, 2 * g), Self::index(b, 2 * g + 1));
        signed8(grid, BIT_MASKS[b[74 + g] as usize])
    }
}

/// +1 or -1 in every byte.
const PLUS1: u64 = 0x0101_0101_0101_0101;
const MINUS1: u64 = u64::MAX;

/// `IQ1_S` (50 bytes).
pub struct Iq1S;

impl IqGroups for Iq1S {
    const BYTES: usize = 50;
    #[inline(always)]
    fn dc(b: &[u8]) -> f32 {
        f16_le(b, 0) * 0.125
    }
    #[inline(always)]
    fn scale(b: &[u8], j: usize) -> i16 {
        (2 * ((u16_at(b, 34 + 2 * (j / 2)) >> 12) & 7) + 1) as i16
    }
    #[inline(always)]
    fn group(b: &[u8], g: usize) -> u64 {
        let (ib, k) = (g / 4, g % 4);
        let h = u16_at(b, 34 + 2 * ib);
        let idx = b[2 + 4 * ib + k] as usize | (((h >> (3 * k)) & 7) as usize) << 8;
        let delta = if h & 0x8000 != 0 { MINUS1 } else { PLUS1 };
        add_bytes(IQ1S_GRID8[idx], delta)
    }
}

/// `IQ1_M` (56 bytes).
pub struct Iq1M;

impl IqGroups for Iq1M {
    const BYTES: usize = 56;
    #[inline(always)]
    fn dc(b: &[u8]) -> f32 {
        let sc = |i: usize| u16_at(b, 48 + 2 * i);
        let bits =
            (sc(0) >> 12) | ((sc(1) >> 8) & 0xf0) | ((sc(2) >> 4) & 0xf00) | (sc(3) & 0xf000);
        crate::f16_to_f32(bits) * 0.125
    }
    #[inline(always)]
    fn scale(b: &[u8], j: usize) -> i16 {
        (2 * ((u16_at(b, 48 + 2 * (j / 4)) >> (3 * (j % 4))) & 7) + 1) as i16
    }
    #[inline(always)]
    fn group(b: &[u8], g: usize) -> u64 {
        let h = (b[32 + g / 2] >> (4 * (g % 2))) & 15;
        let idx = b[g] as usize | ((h & 7) as usize) << 8;
        let delta = if h & 8 != 0 { MINUS1 } else { PLUS1 };
        add_bytes(IQ1S_GRID8[idx], delta)
    }
}

/// `IQ2_XXS` (66 bytes).
pub fn decode_iq2_xxs(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    decode::<Iq2Xxs>(b, codes, m)
}

/// `IQ2_XS` (74 bytes).
pub fn decode_iq2_xs(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    decode::<Iq2Xs>(b, codes, m)
}

/// `IQ2_S` (82 bytes).
pub fn decode_iq2_s(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    decode::<Iq2S>(b, codes, m)
}

/// `IQ3_XXS` (98 bytes).
pub fn decode_iq3_xxs(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    decode::<Iq3Xxs>(b, codes, m)
}

/// `IQ3_S` (110 bytes).
pub fn decode_iq3_s(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    decode::<Iq3S>(b, codes, m)
}

/// `IQ1_S` (50 bytes).
pub fn decode_iq1_s(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    decode::<Iq1S>(b, codes, m)
}

/// `IQ1_M` (56 bytes).
pub fn decode_iq1_m(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    decode::<Iq1M>(b, codes, m)
}

/// The 32 codes of 16 bytes of `IQ4` nibbles: low nibbles first, then high ones.
#[inline(always)]
fn iq4_codes(qs: &[u8], codes: &mut [i8]) {
    for (l, &q) in qs[..16].iter().enumerate() {
        codes[l] = KVALUES_IQ4NL[(q & 15) as usize];
        codes[l + 16] = KVALUES_IQ4NL[(q >> 4) as usize];
    }
}

/// `IQ4_NL` (18 bytes, 32 elements: `codes[..32]`, `m[..2]`).
#[inline]
pub fn decode_iq4_nl(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    iq4_codes(&b[2..18], &mut codes[..32]);
    m[0] = 1;
    m[1] = 1;
    f16_le(b, 0)
}

/// The 6-bit scale `s` of sub-block `ib` (32 elements) of an `IQ4_XS` block.
#[inline(always)]
pub fn iq4_xs_scale(b: &[u8], ib: usize) -> u8 {
    let low = (b[4 + ib / 2] >> (4 * (ib % 2))) & 15;
    let high = (u16_at(b, 2) >> (2 * ib)) as u8 & 3;
    low | high << 4
}

/// `IQ4_XS` (136 bytes).
#[inline]
pub fn decode_iq4_xs(b: &[u8], codes: &mut [i8; 256], m: &mut [i16; 16]) -> f32 {
    let b = &b[..136];
    for ib in 0..8 {
        let s = iq4_xs_scale(b, ib) as i16 - 32;
        m[2 * ib] = s;
        m[2 * ib + 1] = s;
        iq4_codes(&b[8 + 16 * ib..], &mut codes[32 * ib..32 * ib + 32]);
    }
    f16_le(b, 0)
}

/// Writes the f16 bits `d` as the block scale `d` of an IQ block (at byte 0; for `IQ1_M` into
/// the top nibbles of its four scale words). For tests and fixtures made of random blocks.
pub fn set_d(dtype: DType, blk: &mut [u8], d: u16) {
    if dtype == DType::IQ1M {
        for i in 0..4 {
            let at = 48 + 2 * i;
            let w = (u16_at(blk, at) & 0x0fff) | ((d >> (4 * i)) & 15) << 12;
            blk[at..at + 2].copy_from_slice(&w.to_le_bytes());
        }
    } else {
        blk[..2].copy_from_slice(&d.to_le_bytes());
    }
}

/// Dequantize one block of an IQ type (`out.len()` is its block size).
pub(super) fn dequantize(dtype: DType, b: &[u8], out: &mut [f32]) {
    let decode = decoder(dtype).expect("an IQ type");
    let (mut codes, mut m) = ([0i8; 256], [0i16; 16]);
    let dc = decode(b, &mut codes, &mut m);
    for (j, (o, c)) in out.chunks_mut(SUB).zip(codes.chunks(SUB)).enumerate() {
        let dl = dc * m[j] as f32;
        for (o, &c) in o.iter_mut().zip(c) {
            *o = dl * c as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_values_are_what_the_signs_and_kernels_assume() {
        // `signed8` needs nonzero bytes below 128 in the sign-applied grids.
        for &g in IQ2XXS_GRID.iter().chain(&IQ2XS_GRID).chain(&IQ2S_GRID) {
            assert!(g.to_le_bytes().iter().all(|&v| [8, 25, 43].contains(&v)));
        }
        for &g in IQ3XXS_GRID.iter().chain(&IQ3S_GRID) {
            assert!(g.to_le_bytes().iter().all(|&v| (1..=62).contains(&v)));
        }
        for &g in &IQ1S_GRID8 {
            assert!(g.to_le_bytes().iter().all(|&v| [0, 8, 0xf8].contains(&v)));
        }
        // KSIGNS: bit 7 makes the number of set bits even.
        for (i, &s) in KSIGNS.iter().enumerate() {
            assert_eq!(s & 127, i as u8);
            assert_eq!(s.count_ones() % 2, 0);
        }
        assert_eq!(signed8(0x2b08, 0xff00), 0xd508);
        assert_eq!(
            add_bytes(0x00f8_0800, MINUS1),
            0xfff7_07ff_u64 | 0xffff_ffff_0000_0000
        );
        assert_eq!(add_bytes(0x00f8_0800, PLUS1), 0x0101_0101_01f9_0901);
    }

    #[test]
    fn set_d_writes_the_scale_every_type_reads() {
        let mut blk = [0xa5u8; 136];
        let (mut codes, mut m) = ([0i8; 256], [0i16; 16]);
        for d in DType::IQUANTS {
            let b = &mut blk[..d.block_bytes()];
            set_d(d, b, half::f16::from_f32(-0.75).to_bits());
            let dc = decoder(d).unwrap()(b, &mut codes, &mut m);
            // `dc` is `d` times 1, 1/4 or 1/8.
            assert!([-0.75, -0.1875, -0.09375].contains(&dc), "{d}: {dc}");
        }
    }
}
