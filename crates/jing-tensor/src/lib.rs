//! Numbers and weights: the element types jing reads from checkpoints, their conversion to f32,
//! and [`Weight`], a zero-copy view of a tensor as it is stored (possibly inside a memory map),
//! carrying its own format so that kernels can pick the right code for it.

mod bytes;
mod dtype;
mod fp8;
mod weight;

pub use bytes::{ByteOwner, Bytes};
pub use dtype::DType;
pub use fp8::{f8e4m3_to_f32, F8E4M3_TO_F32};
pub use weight::{BlockScale, ScaleShapeError, Weight, WeightError};

/// bf16 bits to f32: exact (bf16 is the top half of an f32).
#[inline(always)]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// f16 bits to f32: exact.
#[inline(always)]
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}
