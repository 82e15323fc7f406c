//! Decoding a run of stored weights to f32, without the block scale (the callers apply it per
//! column block, after accumulating the block).

use jing_tensor::{bf16_to_f32, f16_to_f32, f8e4m3_to_f32, DType, Weight};

/// `out[j] = W[r, k0 + j]` before block scaling, for `j < out.len()`.
///
/// Integer weights are converted like [`Weight::row_to_f32`] does, although no model feeds
/// them to a matmul.
pub(crate) fn row_values(w: &Weight, r: usize, k0: usize, out: &mut [f32]) {
    let es = w.dtype.size();
    let row = super::super::layout::row_bytes(w, r);
    let bytes = &row[k0 * es..(k0 + out.len()) * es];
    match w.dtype {
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
                *o = i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32;
            }
        }
    }
}
