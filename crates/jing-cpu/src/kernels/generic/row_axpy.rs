//! `y += a · W[r, :]`: one scaled weight row added to a vector. The absorbed MLA attention
//! needs the transposed product `q_lat = W_UKᵀ q_nope`, which is exactly a sum of such rows.

use super::super::layout::{block_width, check_row_axpy, RowScale};
use super::values::row_values;
use jing_tensor::Weight;

/// Columns decoded at a time (a stack buffer; the loop never crosses a scale block). A multiple
/// of every GGUF block size, so that pieces of block-quantized rows are whole blocks.
const PIECE: usize = 256;

/// `y[k] += (a · scale(r, k / width)) · W[r, k]` with `W` before block scaling: the row's scale
/// is folded into the coefficient once per column block, as the SIMD versions do. Equal to
/// `y += a · row_to_f32(r)` up to rounding. Panics unless `y.len() == K` and `r` is a row of `w`.
///
/// Meant for float weights (`debug_assert`ed); integer weights are converted like
/// [`Weight::row_to_f32`] does.
pub fn row_axpy(w: &Weight, r: usize, a: f32, y: &mut [f32]) {
    check_row_axpy(w, r, y);
    let k = w.cols();
    let width = block_width(w).unwrap_or(k).max(1);
    let scale = RowScale::of(w, r, 1.0);
    let mut buf = [0.0f32; PIECE];
    let mut k0 = 0;
    while k0 < k {
        let cb = k0 / width;
        let k1 = k.min((cb + 1) * width).min(k0 + PIECE);
        debug_assert!(!w.dtype.is_quantized() || (k1 - k0).is_multiple_of(w.dtype.block_size()));
        let vals = &mut buf[..k1 - k0];
        row_values(w, r, k0, vals);
        let c = a * scale.get(cb);
        for (yv, wv) in y[k0..k1].iter_mut().zip(vals.iter()) {
            *yv += c * wv;
        }
        k0 = k1;
    }
}
