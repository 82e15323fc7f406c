//! The llama.cpp (GGUF) block-quantized formats: exact block layouts, dequantization (the
//! oracle every kernel is checked against) and reference quantizers whose bytes match
//! llama.cpp's reference quantizers (`quantize_row_*_ref`).
//!
//! A row of a block type is a sequence of blocks; each block holds
//! [`DType::block_size`] elements in [`DType::block_bytes`] bytes, all little-endian. One file
//! per family:
//!
//! | type | elements | bytes | value of element `i` |
//! |---|---|---|---|
//! | `Q4_0` | 32 | 18 | `d · (q - 8)`, 4-bit `q` |
//! | `Q4_1` | 32 | 20 | `d · q + m` |
//! | `Q5_0` | 32 | 22 | `d · (q - 16)`, 5-bit `q` |
//! | `Q5_1` | 32 | 24 | `d · q + m` |
//! | `Q8_0` | 32 | 34 | `d · q`, i8 `q` |
//! | `Q2_K` | 256 | 84 | `d · sc_j · q - dmin · m_j`, 2-bit `q`, 16 sub-blocks |
//! | `Q3_K` | 256 | 110 | `d · (sc_j - 32) · (q - 4)`, 3-bit `q`, 16 sub-blocks |
//! | `Q4_K` | 256 | 144 | `d · sc_j · q - dmin · m_j`, 4-bit `q`, 8 sub-blocks |
//! | `Q5_K` | 256 | 176 | `d · sc_j · q - dmin · m_j`, 5-bit `q`, 8 sub-blocks |
//! | `Q6_K` | 256 | 210 | `d · sc_j · (q - 32)`, 6-bit `q`, 16 sub-blocks |
//! | `Q8_K` | 256 | 292 | `d · q`, f32 `d`, i8 `q` (plus 16 sums of 16 `q`s) |
//! | `IQ*` | 32, 256 | 18..136 | `dc · m · c`: codebook/non-linear codes, see [`iq`] |

// The per-type modules are public for their layout constants and code accessors, which the
// kernels use; `dequantize_row` / `quantize_row` are the entry points.
pub mod iq;
pub mod iq_tables;
mod k_common;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_k;
pub mod q4_k_rows16;
pub mod q5_0;
pub mod q5_0_rows16;
pub mod q5_k;
pub mod q6_k;
pub mod q6_k_rows16;
pub mod q8_0;
pub mod q8_0_rows16;
pub mod q8_k;

use crate::DType;

pub use k_common::{nearest_int, unpack_scales_mins_k4};

/// Elements per block of the 32-element ("legacy") formats.
pub const QK: usize = 32;
/// Elements per super-block of the K-quant formats.
pub const QK_K: usize = 256;

/// f16 bits (little-endian pair) to f32.
#[inline(always)]
pub(crate) fn f16_le(b: &[u8], at: usize) -> f32 {
    crate::f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// f32 to f16 bits, round to nearest even (what ggml's `GGML_FP32_TO_FP16` does).
#[inline(always)]
pub(crate) fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Dequantize one row of `dtype` (`bytes` holds whole blocks, `out.len()` elements).
///
/// Panics if `dtype` is not a block type, `out.len()` is not a multiple of the block size, or
/// `bytes` is shorter than `out.len()` elements need.
pub fn dequantize_row(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    let bs = dtype.block_size();
    let bb = dtype.block_bytes();
    assert!(
        dtype.is_quantized(),
        "dequantize_row: {dtype} is not a block type"
    );
    assert!(
        out.len().is_multiple_of(bs),
        "dequantize_row: {} elements are not whole {dtype} blocks",
        out.len()
    );
    let nb = out.len() / bs;
    assert!(
        bytes.len() >= nb * bb,
        "dequantize_row: {} bytes for {nb} {dtype} blocks",
        bytes.len()
    );
    if iq::decoder(dtype).is_some() {
        for (b, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bs)) {
            iq::dequantize(dtype, b, o);
        }
        return;
    }
    let f: fn(&[u8], &mut [f32]) = match dtype {
        DType::Q4_0 => q4_0::dequantize_q4_0,
        DType::Q4_1 => q4_0::dequantize_q4_1,
        DType::Q5_0 => q5_0::dequantize_q5_0,
        DType::Q5_1 => q5_0::dequantize_q5_1,
        DType::Q8_0 => q8_0::dequantize,
        DType::Q2K => q2_k::dequantize,
        DType::Q3K => q3_k::dequantize,
        DType::Q4K => q4_k::dequantize,
        DType::Q5K => q5_k::dequantize,
        DType::Q6K => q6_k::dequantize,
        DType::Q8K => q8_k::dequantize,
        _ => unreachable!(),
    };
    for (b, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bs)) {
        f(b, o);
    }
}

/// Whether [`quantize_row`] implements `dtype`.
pub fn can_quantize(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Q4_0
            | DType::Q4_1
            | DType::Q5_0
            | DType::Q5_1
            | DType::Q8_0
            | DType::Q2K
            | DType::Q3K
            | DType::Q4K
            | DType::Q5K
            | DType::Q6K
            | DType::Q8K
    )
}

/// Quantize one row `x` to `dtype` into `out` (`dtype.row_bytes(x.len())` bytes), producing
/// the bytes llama.cpp's reference quantizer (`quantize_row_<type>_ref`) produces.
///
/// Panics if [`can_quantize`] is false, `x.len()` is not whole blocks or `out` is too short.
pub fn quantize_row(dtype: DType, x: &[f32], out: &mut [u8]) {
    assert!(
        can_quantize(dtype),
        "quantize_row: {dtype} is not supported"
    );
    let bs = dtype.block_size();
    let bb = dtype.block_bytes();
    assert!(
        x.len().is_multiple_of(bs),
        "quantize_row: {} elements are not whole {dtype} blocks",
        x.len()
    );
    let nb = x.len() / bs;
    assert!(
        out.len() >= nb * bb,
        "quantize_row: {} bytes for {nb} {dtype} blocks",
        out.len()
    );
    let f: fn(&[f32], &mut [u8]) = match dtype {
        DType::Q4_0 => q4_0::quantize_q4_0,
        DType::Q4_1 => q4_0::quantize_q4_1,
        DType::Q5_0 => q5_0::quantize_q5_0,
        DType::Q5_1 => q5_0::quantize_q5_1,
        DType::Q8_0 => q8_0::quantize,
        DType::Q2K => q2_k::quantize,
        DType::Q3K => q3_k::quantize,
        DType::Q4K => q4_k::quantize,
        DType::Q5K => q5_k::quantize,
        DType::Q6K => q6_k::quantize,
        DType::Q8K => q8_k::quantize,
        _ => unreachable!(),
    };
    for (xb, o) in x.chunks_exact(bs).zip(out.chunks_exact_mut(bb)) {
        f(xb, o);
    }
}

/// Quantize a row-major `[rows, cols]` matrix (`x.len() == rows · cols`) to `dtype`.
pub fn quantize(dtype: DType, x: &[f32], cols: usize) -> Vec<u8> {
    let rb = dtype.row_bytes(cols);
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "quantize: ragged matrix"
    );
    let rows = x.len() / cols;
    let mut out = vec![0u8; rows * rb];
    for (xr, o) in x.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        quantize_row(dtype, xr, o);
    }
    out
}
