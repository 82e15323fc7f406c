//! The GGUF block-type matmul with `SDOT` (FEAT_DotProd; see `aarch64::quant`): 16 signed byte
//! products summed into the four i32 lanes in one instruction.

use super::load::f16x4;
use std::arch::aarch64::*;
use std::arch::asm;

/// `acc` plus `Σ a·b` of the 16 byte pairs: lane `i` gains the products of bytes `4i..4i + 4`
/// (exact in i32).
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn dot_i8(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: SDOT only reads `a`, `b` and `acc` and writes `acc`: no memory, no stack, no
    // flags. This function is compiled for `dotprod`, and only reachable through the table
    // that detected it. (`vdotq_s32` is not stable Rust yet.)
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

quant_kernels!("neon,dotprod");
