//! Decoding a run of stored weights to f32, without the block scale (the callers apply it per
//! column block, after accumulating the block).

use jing_tensor::{decode_to_f32, Weight};

/// `out[j] = W[r, k0 + j]` before block scaling, for `j < out.len()`.
///
/// Integer weights are converted like [`Weight::row_to_f32`] does, although no model feeds
/// them to a matmul.
pub(crate) fn row_values(w: &Weight, r: usize, k0: usize, out: &mut [f32]) {
    let es = w.dtype.size();
    let row = super::super::layout::row_bytes(w, r);
    let bytes = &row[k0 * es..(k0 + out.len()) * es];
    decode_to_f32(w.dtype, bytes, out);
}
