//! The GGUF block-type matmul on plain NEON (see `aarch64::quant`): the byte dot product as
//! `SMULL` + `SMLAL2` (signed byte products, summed in pairs into i16) then `SADALP` (pairs of
//! i16 added into the i32 lanes).

use super::load::f16x4;
use std::arch::aarch64::*;

/// `acc` plus `Σ a·b` of the 16 byte pairs, spread over the lanes. Exact: each i16 lane sums
/// two products of at most `128 · 127` in magnitude (the activation codes are within ±127).
#[inline]
#[target_feature(enable = "neon")]
fn dot_i8(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let p = vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b);
    vpadalq_s16(acc, p)
}

quant_kernels!("neon");
