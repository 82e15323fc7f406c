//! `y += Σ_i a[i] · W[r0 + i, :]`: scaled weight rows added to a vector. The absorbed MLA
//! attention needs the transposed product `q_lat = W_UKᵀ q_nope`, which is exactly a sum of
//! such rows (a head's W_UK rows, one call).

use super::super::layout::{block_width, check_row_axpy, RowScale};
use super::values::row_values;
use jing_tensor::Weight;

/// Columns decoded at a time (a stack buffer; the loop never crosses a scale block). A multiple
/// of every GGUF block size, so that pieces of block-quantized rows are whole blocks.
const PIECE: usize = 256;

/// `y[k] += (a[i] · scale(r0 + i, k / width)) · W[r0 + i, k]` for each `i` in turn, with `W`
/// before block scaling: each row's scale is folded into its coefficient once per column
/// block, as the SIMD versions do. Equal to `y += a[i] · row_to_f32(r0 + i)` for each row up to
/// rounding. Panics unless `y.len() == K` and rows `r0..r0 + a.len()` are rows of `w`.
///
/// Meant for float weights (`debug_assert`ed); integer weights are converted like
/// [`Weight::row_to_f32`] does.
pub fn row_axpy(w: &Weight, r0: usize, a: &[f32], y: &mut [f32]) {
    check_row_axpy(w, r0, a.len(), y);
    for (i, &a) in a.iter().enumerate() {
        one_row(w, r0 + i, a, y);
    }
}

/// `y += a · W[r, :]` (checked by the caller).
fn one_row(w: &Weight, r: usize, a: f32, y: &mut [f32]) {
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
