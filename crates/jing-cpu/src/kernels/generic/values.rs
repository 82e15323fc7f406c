//! Decoding a run of stored weights to f32, without the block scale (the callers apply it per
//! column block, after accumulating the block).

use jing_tensor::{decode_to_f32, Weight};

/// `out[j] = W[r, k0 + j]` before block scaling, for `j < out.len()`.
///
/// Integer weights are converted like [`Weight::row_to_f32`] does, although no model feeds
/// them to a matmul.
///
/// For a GGUF block type, `k0` and `out.len()` must be whole blocks (the row is whole blocks).
/// Interleaved rows are taken apart first ([`Weight::row`], a copy of their group).
pub(crate) fn row_values(w: &Weight, r: usize, k0: usize, out: &mut [f32]) {
    let row = w.row(r);
    let (bs, bb) = (w.dtype.block_size(), w.dtype.block_bytes());
    assert!(
        k0.is_multiple_of(bs) && out.len().is_multiple_of(bs),
        "row_values: columns {k0}.. of `{}` are not whole {} blocks",
        w.name,
        w.dtype
    );
    let bytes = &row[k0 / bs * bb..(k0 + out.len()) / bs * bb];
    decode_to_f32(w.dtype, bytes, out);
}
