//! Dot products of GGUF block-quantized weight rows with quantized activations
//! ([`QuantX`]): the oracle of the SIMD versions.
//!
//! Every type splits into exact integer dot products and a little float arithmetic, and both
//! are fixed here (the SIMD versions compute the same integers, then the same float terms,
//! summed in another order). With `u` a weight's stored (unsigned) code, `q` an activation
//! code, `dx` the activation block scale and `S_j` the sum of the activation codes of
//! sub-block `j`:
//!
//! | type | integers per block | float term per block |
//! |---|---|---|
//! | `Q4_0`, `Q5_0` | `I = Σ (u - 8 or 16)·q` | `(d·dx)·I` |
//! | `Q8_0` | `I = Σ u·q` (`u` signed) | `(d·dx)·I` |
//! | `Q8_K` | `I = Σ u·q` (`u` signed) | `(dx·d)·I` |
//! | `Q4_1`, `Q5_1` | `I = Σ u·q`, `S = Σ q` | `(d·dx)·I + (m·dx)·S` |
//! | `Q2_K`, `Q4_K`, `Q5_K` | `I = Σ_j sc_j Σ u·q`, `M = Σ_j m_j·S_j` | `(dx·d)·I - (dx·dmin)·M` |
//! | `Q3_K`, `Q6_K` | `I = Σ_j sc_j Σ (u - 4 or 32)·q` | `(dx·d)·I` |
//! | `IQ4_NL` | `I = Σ c·q` | `(dc·dx)·I` |
//! | other `IQ*` | `I = Σ_j m_j Σ c·q` | `(dx·dc)·I` |
//!
//! with `c`, `m_j` (per 16 elements) and `dc` the integer form of the IQ types
//! (`jing_tensor::quant::iq`), and a row's result is the sum of its block terms in block order.
//! The integers fit i32 with room to spare (the largest, `IQ4_XS`: `256 · 32 · 127 · 127 <
//! 2^28`).

use super::super::layout::check_matmul_q;
use super::super::qact::{QuantX, XRow};
use super::super::OutMatrix;
use jing_tensor::quant::iq::{self, Decode};
use jing_tensor::quant::unpack_scales_mins_k4;
use jing_tensor::quant::{q2_k, q3_k, q4_0, q4_k, q5_0, q5_k, q6_k, q8_0, q8_k};
use jing_tensor::{f16_to_f32, DType, RowLayout, Weight};
use std::ops::Range;

/// A row's dot product with one token's quantized activations.
pub(crate) type VecDot = fn(w: &[u8], x: XRow<'_>) -> f32;

#[inline(always)]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

#[inline(always)]
pub(crate) fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `S` of the 32-element activation block `b`.
#[inline(always)]
fn sum32(x: &XRow<'_>, b: usize) -> i32 {
    x.sums[2 * b] as i32 + x.sums[2 * b + 1] as i32
}

/// `Σ (code(l) - off) · q[l]` over one block of 32 codes given by `code`.
#[inline(always)]
fn idot32(q: &[i8], off: i32, code: impl Fn(usize) -> u8) -> i32 {
    (0..32).map(|l| (code(l) as i32 - off) * q[l] as i32).sum()
}

pub(crate) fn dot_q4_0(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(18).enumerate() {
        let qs = &blk[q4_0::Q4_0_QS..];
        let q = &x.qs[32 * b..32 * b + 32];
        let i = idot32(q, 8, |l| if l < 16 { qs[l] & 15 } else { qs[l - 16] >> 4 });
        acc += (f16_at(blk, 0) * x.d[b]) * i as f32;
    }
    acc
}

pub(crate) fn dot_q4_1(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(20).enumerate() {
        let qs = &blk[q4_0::Q4_1_QS..];
        let q = &x.qs[32 * b..32 * b + 32];
        let i = idot32(q, 0, |l| if l < 16 { qs[l] & 15 } else { qs[l - 16] >> 4 });
        let dx = x.d[b];
        acc += (f16_at(blk, 0) * dx) * i as f32
            + (f16_at(blk, q4_0::Q4_1_M) * dx) * sum32(&x, b) as f32;
    }
    acc
}

/// The 5-bit code `l` of a `Q5_0`/`Q5_1` block from its `qh` and `qs`.
#[inline(always)]
fn q5_code(qh: u32, qs: &[u8], l: usize) -> u8 {
    let low = if l < 16 { qs[l] & 15 } else { qs[l - 16] >> 4 };
    low | ((((qh >> l) & 1) as u8) << 4)
}

#[inline(always)]
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn dot_q5_0(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(22).enumerate() {
        let qh = u32_at(blk, q5_0::Q5_0_QH);
        let qs = &blk[q5_0::Q5_0_QS..];
        let q = &x.qs[32 * b..32 * b + 32];
        let i = idot32(q, 16, |l| q5_code(qh, qs, l));
        acc += (f16_at(blk, 0) * x.d[b]) * i as f32;
    }
    acc
}

pub(crate) fn dot_q5_1(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(24).enumerate() {
        let qh = u32_at(blk, q5_0::Q5_1_QH);
        let qs = &blk[q5_0::Q5_1_QS..];
        let q = &x.qs[32 * b..32 * b + 32];
        let i = idot32(q, 0, |l| q5_code(qh, qs, l));
        let dx = x.d[b];
        acc += (f16_at(blk, 0) * dx) * i as f32
            + (f16_at(blk, q5_0::Q5_1_M) * dx) * sum32(&x, b) as f32;
    }
    acc
}

pub(crate) fn dot_q8_0(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(34).enumerate() {
        let qs = &blk[q8_0::QS..q8_0::QS + 32];
        let q = &x.qs[32 * b..32 * b + 32];
        let i: i32 = qs
            .iter()
            .zip(q)
            .map(|(&a, &c)| a as i8 as i32 * c as i32)
            .sum();
        acc += (f16_at(blk, q8_0::D) * x.d[b]) * i as f32;
    }
    acc
}

pub(crate) fn dot_q8_k(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(292).enumerate() {
        let qs = &blk[q8_k::QS..q8_k::QS + 256];
        let q = &x.qs[256 * b..256 * b + 256];
        let i: i32 = qs
            .iter()
            .zip(q)
            .map(|(&a, &c)| a as i8 as i32 * c as i32)
            .sum();
        acc += k_term_sym(x.d[b], f32_at(blk, q8_k::D), i);
    }
    acc
}

/// The K-quant float step: `(dx·d)·I - (dx·dmin)·M`.
#[inline(always)]
pub(crate) fn k_term(dx: f32, d: f32, i: i32, dmin: f32, m: i32) -> f32 {
    (dx * d) * i as f32 - (dx * dmin) * m as f32
}

/// The float step of the K-quants without mins: `(dx·d)·I`.
#[inline(always)]
pub(crate) fn k_term_sym(dx: f32, d: f32, i: i32) -> f32 {
    (dx * d) * i as f32
}

pub(crate) fn dot_q2_k(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(84).enumerate() {
        let qs = &blk[q2_k::QS..q2_k::QS + 64];
        let q = &x.qs[256 * b..256 * b + 256];
        let (mut i, mut m) = (0i32, 0i32);
        for j in 0..16 {
            let s = blk[q2_k::SCALES + j];
            let part: i32 = (0..16)
                .map(|l| q2_k::code(qs, 16 * j + l) as i32 * q[16 * j + l] as i32)
                .sum();
            i += (s & 15) as i32 * part;
            m += (s >> 4) as i32 * x.sums[16 * b + j] as i32;
        }
        acc += k_term(x.d[b], f16_at(blk, q2_k::D), i, f16_at(blk, q2_k::DMIN), m);
    }
    acc
}

pub(crate) fn dot_q3_k(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(110).enumerate() {
        let hm = &blk[q3_k::HMASK..q3_k::HMASK + 32];
        let qs = &blk[q3_k::QS..q3_k::QS + 64];
        let sc = q3_k::unpack_scales(&blk[q3_k::SCALES..q3_k::SCALES + 12]);
        let q = &x.qs[256 * b..256 * b + 256];
        let mut i = 0i32;
        for (j, &s) in sc.iter().enumerate() {
            let part: i32 = (0..16)
                .map(|l| q3_k::code(hm, qs, 16 * j + l) as i32 * q[16 * j + l] as i32)
                .sum();
            i += s as i32 * part;
        }
        acc += k_term_sym(x.d[b], f16_at(blk, q3_k::D), i);
    }
    acc
}

/// `Q4_K` and `Q5_K` (`qh` = None for `Q4_K`).
#[inline(always)]
fn dot_k4(blk: &[u8], qs_at: usize, qh_at: Option<usize>, x: &XRow<'_>, b: usize) -> f32 {
    let (sc, mn) = unpack_scales_mins_k4(&blk[4..16]);
    let q = &x.qs[256 * b..256 * b + 256];
    let (mut i, mut m) = (0i32, 0i32);
    for j in 0..8 {
        let qs = &blk[qs_at + 32 * (j / 2)..qs_at + 32 * (j / 2) + 32];
        let part: i32 = (0..32)
            .map(|l| {
                let mut u = (qs[l] >> (4 * (j % 2))) & 15;
                if let Some(h) = qh_at {
                    u |= ((blk[h + l] >> j) & 1) << 4;
                }
                u as i32 * q[32 * j + l] as i32
            })
            .sum();
        i += sc[j] as i32 * part;
        m += mn[j] as i32 * (x.sums[16 * b + 2 * j] as i32 + x.sums[16 * b + 2 * j + 1] as i32);
    }
    k_term(x.d[b], f16_at(blk, 0), i, f16_at(blk, 2), m)
}

pub(crate) fn dot_q4_k(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(144).enumerate() {
        acc += dot_k4(blk, q4_k::QS, None, &x, b);
    }
    acc
}

pub(crate) fn dot_q5_k(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(176).enumerate() {
        acc += dot_k4(blk, q5_k::QS, Some(q5_k::QH), &x, b);
    }
    acc
}

pub(crate) fn dot_q6_k(w: &[u8], x: XRow<'_>) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(210).enumerate() {
        let ql = &blk[q6_k::QL..q6_k::QL + 128];
        let qh = &blk[q6_k::QH..q6_k::QH + 64];
        let q = &x.qs[256 * b..256 * b + 256];
        let mut i = 0i32;
        for j in 0..16 {
            let part: i32 = (0..16)
                .map(|l| (q6_k::code(ql, qh, 16 * j + l) as i32 - 32) * q[16 * j + l] as i32)
                .sum();
            i += blk[q6_k::SCALES + j] as i8 as i32 * part;
        }
        acc += k_term_sym(x.d[b], f16_at(blk, q6_k::D), i);
    }
    acc
}

/// The 256-element IQ types: `BB`-byte blocks unpacked by `decode` (see the module docs).
#[inline(always)]
fn dot_iq<const BB: usize>(w: &[u8], x: XRow<'_>, decode: Decode) -> f32 {
    let (mut codes, mut m) = ([0i8; 256], [0i16; 16]);
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(BB).enumerate() {
        let dc = decode(blk, &mut codes, &mut m);
        let q = &x.qs[256 * b..256 * b + 256];
        let mut i = 0i32;
        for (j, (c, q)) in codes.chunks_exact(16).zip(q.chunks_exact(16)).enumerate() {
            let part: i32 = c.iter().zip(q).map(|(&c, &q)| c as i32 * q as i32).sum();
            i += m[j] as i32 * part;
        }
        acc += k_term_sym(x.d[b], dc, i);
    }
    acc
}

pub(crate) fn dot_iq2_xxs(w: &[u8], x: XRow<'_>) -> f32 {
    dot_iq::<66>(w, x, iq::decode_iq2_xxs)
}

pub(crate) fn dot_iq2_xs(w: &[u8], x: XRow<'_>) -> f32 {
    dot_iq::<74>(w, x, iq::decode_iq2_xs)
}

pub(crate) fn dot_iq2_s(w: &[u8], x: XRow<'_>) -> f32 {
    dot_iq::<82>(w, x, iq::decode_iq2_s)
}

pub(crate) fn dot_iq3_xxs(w: &[u8], x: XRow<'_>) -> f32 {
    dot_iq::<98>(w, x, iq::decode_iq3_xxs)
}

pub(crate) fn dot_iq3_s(w: &[u8], x: XRow<'_>) -> f32 {
    dot_iq::<110>(w, x, iq::decode_iq3_s)
}

pub(crate) fn dot_iq1_s(w: &[u8], x: XRow<'_>) -> f32 {
    dot_iq::<50>(w, x, iq::decode_iq1_s)
}

pub(crate) fn dot_iq1_m(w: &[u8], x: XRow<'_>) -> f32 {
    dot_iq::<56>(w, x, iq::decode_iq1_m)
}

pub(crate) fn dot_iq4_xs(w: &[u8], x: XRow<'_>) -> f32 {
    dot_iq::<136>(w, x, iq::decode_iq4_xs)
}

pub(crate) fn dot_iq4_nl(w: &[u8], x: XRow<'_>) -> f32 {
    let kv = &jing_tensor::quant::iq_tables::KVALUES_IQ4NL;
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(18).enumerate() {
        let qs = &blk[2..18];
        let q = &x.qs[32 * b..32 * b + 32];
        let i: i32 = (0..32)
            .map(|l| {
                let u = if l < 16 { qs[l] & 15 } else { qs[l - 16] >> 4 };
                kv[u as usize] as i32 * q[l] as i32
            })
            .sum();
        acc += (f16_at(blk, 0) * x.d[b]) * i as f32;
    }
    acc
}

/// The generic dot product of a block type.
pub(crate) fn vec_dot(dtype: DType) -> VecDot {
    match dtype {
        DType::Q4_0 => dot_q4_0,
        DType::Q4_1 => dot_q4_1,
        DType::Q5_0 => dot_q5_0,
        DType::Q5_1 => dot_q5_1,
        DType::Q8_0 => dot_q8_0,
        DType::Q2K => dot_q2_k,
        DType::Q3K => dot_q3_k,
        DType::Q4K => dot_q4_k,
        DType::Q5K => dot_q5_k,
        DType::Q6K => dot_q6_k,
        DType::Q8K => dot_q8_k,
        DType::IQ2XXS => dot_iq2_xxs,
        DType::IQ2XS => dot_iq2_xs,
        DType::IQ2S => dot_iq2_s,
        DType::IQ3XXS => dot_iq3_xxs,
        DType::IQ3S => dot_iq3_s,
        DType::IQ1S => dot_iq1_s,
        DType::IQ1M => dot_iq1_m,
        DType::IQ4NL => dot_iq4_nl,
        DType::IQ4XS => dot_iq4_xs,
        d => panic!("no quantized dot product for {d}"),
    }
}

/// `y[i, n] = Σ_k x̂[i, k] · W[n, k]` for a GGUF block weight `W`, `x̂` the quantized
/// activations, `n ∈ rows` (see the module docs for the exact arithmetic). Same contract on `y`
/// as [`MatmulFn`](crate::kernels::MatmulFn).
///
/// Interleaved rows ([`RowLayout::interleaved`]) are taken apart a group of 16 at a time and
/// multiplied as GGUF rows: this is the oracle of the kernels on that layout.
pub fn matmul_q(w: &Weight, x: &QuantX, rows: Range<usize>, y: &OutMatrix) {
    check_matmul_q(w, x, &rows, y);
    let dot = vec_dot(w.dtype);
    let row_dots = |n: usize, wr: &[u8]| {
        for i in 0..x.m {
            // SAFETY: the caller owns columns `rows` of `y` (MatmulFn contract), checked to lie
            // within its leading dimension.
            unsafe { y.write(i, n, dot(wr, x.row(i))) };
        }
    };
    match w.layout {
        RowLayout::Rows => rows.for_each(|n| row_dots(n, w.row_data(n))),
        _ => {
            let (rb, g) = (w.row_bytes(), w.layout.group());
            let mut group = Vec::new();
            for n in rows {
                if n % g == 0 || group.is_empty() {
                    w.group_rows(n / g, &mut group);
                }
                row_dots(n, &group[(n % g) * rb..(n % g + 1) * rb]);
            }
        }
    }
}
