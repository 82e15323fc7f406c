//! `y[i, n] = Σ_k x[i, k] · W[n, k]` for stored weights, plain.

use super::super::dequant_panel::bf16_round;
use super::super::layout::{block_width, check_matmul, RowScale};
use super::super::{OutMatrix, QuantX};
use super::values::row_values;
use jing_tensor::Weight;
use std::ops::Range;

/// For tokens `i < m` and weight rows `n ∈ rows`:
/// `y[i, n] = Σ_cb scale(n, cb) · Σ_{k ∈ block cb} x[i·K + k] · W[n, k]`, with `W` before block
/// scaling and each block's inner sum accumulated in column order in f32 (an unscaled weight is
/// one block with scale 1). `x` is `[m, K]` row-major.
///
/// Each weight row is decoded once into a buffer and reused for all `m` tokens.
///
/// Contract (of every [`MatmulFn`](crate::kernels::MatmulFn)): no other thread reads or writes
/// the elements `(i, n)`, `n ∈ rows`, of `y` during the call. Meant for float weights
/// (`debug_assert`ed); integer weights are converted like [`Weight::row_to_f32`] does.
///
/// A GGUF block weight with fewer than [`DEQUANT_MIN_TOKENS`](crate::kernels::DEQUANT_MIN_TOKENS)
/// tokens goes to [`matmul_q`](super::matmul_q) after quantizing `x` ([`QuantX`]): the result
/// is `x̂ · Wᵀ` with `x̂` the quantized activations. With more, it is the float product of the
/// dequantized weights, like any other stored weight.
pub fn matmul(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix) {
    if w.dtype.is_quantized() {
        check_matmul(w, x, m, &rows, y);
        if m < crate::kernels::DEQUANT_MIN_TOKENS {
            return super::matmul_q(w, &QuantX::new(w.dtype, x, m), rows, y);
        }
        return matmul_dequant_bf16(w, x, m, rows, y);
    }
    let k = check_matmul(w, x, m, &rows, y);
    let width = block_width(w).unwrap_or(k).max(1);
    let mut wrow = vec![0.0f32; k]; // [K] W[n, :] before scaling
    for n in rows {
        row_values(w, n, 0, &mut wrow);
        let scale = RowScale::of(w, n, 1.0);
        for i in 0..m {
            let xi = &x[i * k..(i + 1) * k]; // [K]
            let mut total = 0.0f32;
            for (cb, (xb, wb)) in xi.chunks(width).zip(wrow.chunks(width)).enumerate() {
                let mut acc = 0.0f32;
                for (a, b) in xb.iter().zip(wb) {
                    acc += a * b;
                }
                total += acc * scale.get(cb);
            }
            // SAFETY: the caller owns columns `rows` of `y` for this call (MatmulFn contract)
            // and `check_matmul` checked that they lie within the leading dimension.
            unsafe { y.write(i, n, total) };
        }
    }
}

/// [`matmul`] with FP8 weights against `bf16(x)` ([`Fp8Activations::Bf16`]).
///
/// [`Fp8Activations::Bf16`]: crate::kernels::Fp8Activations::Bf16
pub fn matmul_fp8_bf16(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix) {
    with_x_in_bf16(matmul, w, x, m, rows, y)
}

/// `inner` with `x` rounded to bf16 values when `w` is FP8 (in a buffer this thread keeps, so
/// that decode steps do not allocate), with `x` as it is otherwise: [`Fp8Activations::Bf16`]
/// for the tables whose FP8 kernels multiply f32.
///
/// [`Fp8Activations::Bf16`]: crate::kernels::Fp8Activations::Bf16
pub(crate) fn with_x_in_bf16(
    inner: crate::kernels::MatmulFn,
    w: &Weight,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &OutMatrix,
) {
    thread_local! {
        static ROUNDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if w.dtype != jing_tensor::DType::F8E4M3 {
        return inner(w, x, m, rows, y);
    }
    ROUNDED.with_borrow_mut(|buf| {
        buf.clear();
        buf.extend(x.iter().map(|&v| bf16_round(v)));
        inner(w, buf, m, rows, y)
    })
}

/// The many-token product with a GGUF block weight (see
/// [`dequant_panel`](crate::kernels::dequant_panel)): `y[i, n] = Σ_k bf16(x[i, k]) ·
/// bf16(ŵ[n, k])` in f32, `ŵ` the dequantized weight, summed in column order.
fn matmul_dequant_bf16(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix) {
    let k = w.cols();
    let xr: Vec<f32> = x.iter().map(|&v| bf16_round(v)).collect(); // [m, K]
    let mut wrow = vec![0.0f32; k]; // [K] bf16(ŵ[n, :])
    for n in rows {
        row_values(w, n, 0, &mut wrow);
        for v in wrow.iter_mut() {
            *v = bf16_round(*v);
        }
        for i in 0..m {
            let total: f32 = xr[i * k..(i + 1) * k]
                .iter()
                .zip(&wrow)
                .fold(0.0f32, |acc, (a, b)| acc + a * b);
            // SAFETY: the caller owns columns `rows` of `y` for this call (MatmulFn contract)
            // and `check_matmul` checked that they lie within the leading dimension.
            unsafe { y.write(i, n, total) };
        }
    }
}
