//! Numbers and weights: the element types jing reads from checkpoints, their conversion to f32,
//! and [`Weight`], a zero-copy view of a tensor as it is stored (possibly inside a memory map),
//! carrying its own format so that kernels can pick the right code for it.

mod bytes;
mod dtype;
mod fp8;
pub mod huge_pages;
pub mod panels;
pub mod quant;
mod weight;

pub use bytes::{ByteOwner, Bytes};
pub use dtype::DType;
pub use fp8::{f8e4m3_to_f32, F8E4M3_TO_F32};
pub use weight::{BlockScale, RowLayout, ScaleShapeError, Weight, WeightError, INTERLEAVED_ROWS};

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

/// Decode stored little-endian elements of `dtype` to f32 (`out.len()` elements; no block
/// scale). The plain conversion behind every dequantization. For a GGUF block type, `out`
/// must be whole blocks and `bytes` starts at a block boundary ([`quant::dequantize_row`]).
pub fn decode_to_f32(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    if dtype.is_quantized() {
        quant::dequantize_row(dtype, bytes, out);
        return;
    }
    debug_assert!(bytes.len() >= out.len() * dtype.size());
    match dtype {
        DType::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        DType::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        DType::F8E4M3 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = f8e4m3_to_f32(b);
            }
        }
        DType::I32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32;
            }
        }
        DType::I64 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                *o = i64::from_le_bytes(a) as f32;
            }
        }
        _ => unreachable!("block types are decoded above"),
    }
}
