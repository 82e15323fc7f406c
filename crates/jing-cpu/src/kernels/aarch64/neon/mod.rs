//! NEON (Advanced SIMD) kernels: 4 f32 lanes, 32 vector registers. NEON is part of the
//! `aarch64-unknown-linux-gnu` baseline; the functions are still compiled with
//! `target_feature(enable = "neon")` (the intrinsics require it) and reached only through
//! tables that detected it. `SDOT` is optional: only the functions of `quant_dotprod` are
//! compiled for it, reachable only through the table [`table_dotprod`] returns after detecting
//! it.
//!
//! NEON has no masked loads: tails are copied into a zeroed buffer first. FP8 weights are
//! decoded through f16 (`load`), not with the shift-and-mask f32 decode of the x86 matmul
//! kernels, so `x` keeps its layout and no decoded weight is an f32 subnormal.
//!
//! Files: `load` (stored weights to f32 vectors), `matmul` (4 rows streamed against up to 4
//! tokens), `vector` (dot, axpy, row_axpy, and rows_axpy: the attention's
//! weighted sum of cache rows), `quant` and `quant_dotprod` (the GGUF block types,
//! stamped out of `aarch64::quant` with and without `SDOT`).

#![allow(
    clippy::needless_range_loop,
    reason = "register tiles index several arrays by the same row and token"
)]

mod load;
mod matmul;
mod quant;
mod quant_dotprod;
mod vector;

use super::super::driver::{self, AxpyRows, Isa, RowGroup, MAX_TOKENS};
use super::super::generic::with_x_in_bf16;
use super::super::{Fp8Activations, KernelTable, MatmulQFn, OutMatrix};
use jing_tensor::Weight;
use matmul::dot_rows;
use std::ops::Range;
use vector::{axpy_imp, dot_imp, row_axpy_imp, rows_axpy_imp};

/// Weights per step of the float kernels: two vectors of 4 f32.
const STEP: usize = 8;

/// The plain NEON table, if this CPU has NEON (every AArch64 CPU does).
pub(crate) fn table() -> Option<KernelTable> {
    std::arch::is_aarch64_feature_detected!("neon").then_some(KernelTable {
        name: "neon",
        matmul,
        matmul_q: quant::matmul_q,
        dot,
        axpy,
        row_axpy,
        rows_dot,
        rows_axpy,
        interleaved_rows16: false,
        // Not measured on an ARM CPU yet.
        float_panels: false,
        fp8_activations: Fp8Activations::F32,
        fp8_bf16_lines: false,
        matmul_fp8_bf16: |w, x, m, rows, y| with_x_in_bf16(matmul, w, x, m, rows, y),
    })
}

/// The NEON table with `SDOT` for the block-type integer dot products, if this CPU has it.
pub(crate) fn table_dotprod() -> Option<KernelTable> {
    let ok = std::arch::is_aarch64_feature_detected!("neon")
        && std::arch::is_aarch64_feature_detected!("dotprod");
    ok.then_some(KernelTable {
        name: "neon-dotprod",
        matmul: matmul_dotprod,
        matmul_q: quant_dotprod::matmul_q,
        dot,
        axpy,
        row_axpy,
        rows_dot,
        rows_axpy,
        interleaved_rows16: false,
        // Not measured on an ARM CPU yet.
        float_panels: false,
        fp8_activations: Fp8Activations::F32,
        fp8_bf16_lines: false,
        matmul_fp8_bf16: |w, x, m, rows, y| with_x_in_bf16(matmul_dotprod, w, x, m, rows, y),
    })
}

fn matmul(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix) {
    matmul_with(w, x, m, rows, y, quant::matmul_q)
}

fn matmul_dotprod(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix) {
    matmul_with(w, x, m, rows, y, quant_dotprod::matmul_q)
}

/// The matmul of both tables; `matmul_q` is the table's own (only reachable through the table
/// that detected its features).
fn matmul_with(
    w: &Weight,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &OutMatrix,
    matmul_q: MatmulQFn,
) {
    if w.dtype.is_quantized() {
        // SAFETY: only reachable through the tables, which checked for NEON; the contract on
        // `y` is the caller's (MatmulFn).
        return unsafe { driver::matmul_quantized::<Neon>(w, x, m, rows, y, matmul_q, None) };
    }
    // SAFETY: as above.
    unsafe { driver::matmul::<Neon>(w, x, m, rows, y) }
}

fn rows_dot(q: &[f32], m: usize, kv: &[f32], stride: usize, s: &mut [f32]) {
    // SAFETY: only reachable through the tables, which checked for NEON.
    unsafe { driver::rows_dot::<Neon>(q, m, kv, stride, s) }
}

fn rows_axpy(p: &[f32], m: usize, kv: &[f32], stride: usize, o: &mut [f32]) {
    super::super::generic::rows_shape(o.len(), m, kv.len(), stride, p.len());
    // SAFETY: only reachable through the tables, which checked for NEON; the shapes were
    // checked.
    unsafe { rows_axpy_imp(p, m, kv, stride, o) }
}

fn row_axpy(w: &Weight, r0: usize, a: &[f32], y: &mut [f32]) {
    // SAFETY: only reachable through the tables, which checked for NEON.
    unsafe { driver::row_axpy::<Neon>(w, r0, a, y) }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(
        a.len(),
        b.len(),
        "dot of {} and {} values",
        a.len(),
        b.len()
    );
    // SAFETY: only reachable through the tables, which checked for NEON; the lengths are
    // equal.
    unsafe { dot_imp(a, b) }
}

fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "axpy of {} into {} values",
        x.len(),
        y.len()
    );
    // SAFETY: only reachable through the tables, which checked for NEON; the lengths are
    // equal.
    unsafe { axpy_imp(a, x, y) }
}

/// `Isa::dot_rows` for exactly `T` tokens, padded to `MAX_TOKENS` columns.
///
/// # Safety
/// As `Isa::dot_rows` with `tokens = T`.
unsafe fn dot_rows_t<const D: u8, const R: usize, const T: usize>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; MAX_TOKENS]; R] {
    // SAFETY: forwarded from the caller.
    let out = unsafe { dot_rows::<D, R, T>(g, x, x_stride) };
    let mut wide = [[0.0; MAX_TOKENS]; R];
    for (w, o) in wide.iter_mut().zip(out) {
        w[..T].copy_from_slice(&o);
    }
    wide
}

/// Marker for the driver. FP8 is read as `code · 2^-8` with the scales times 256 (the
/// driver's default `x` layout and factor), like `row_axpy` reads it.
struct Neon;

impl Isa for Neon {
    unsafe fn dot_rows<const D: u8, const R: usize>(
        g: &RowGroup<'_, R>,
        x: *const f32,
        x_stride: usize,
        tokens: usize,
    ) -> [[f32; MAX_TOKENS]; R] {
        // SAFETY: forwarded (trait contract: 1 <= tokens <= 4).
        unsafe {
            match tokens {
                1 => dot_rows_t::<D, R, 1>(g, x, x_stride),
                2 => dot_rows_t::<D, R, 2>(g, x, x_stride),
                3 => dot_rows_t::<D, R, 3>(g, x, x_stride),
                _ => dot_rows_t::<D, R, 4>(g, x, x_stride),
            }
        }
    }

    unsafe fn row_axpy<const D: u8, const N: usize>(rows: &AxpyRows<'_, N>, y: &mut [f32]) {
        // SAFETY: forwarded (trait contract).
        unsafe { row_axpy_imp::<D, N>(rows, y) }
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::KernelTable;

    /// Every AArch64 CPU has NEON, so its table must be found (else the kernel tests, which run
    /// every available table, would pass without testing it), and `SDOT`'s wherever the CPU
    /// has it. Run with `--nocapture` to see which tables ran.
    #[test]
    fn neon_tables_are_detected() {
        let names: Vec<&str> = KernelTable::available().iter().map(|t| t.name).collect();
        eprintln!("kernel tables: {names:?}");
        assert!(names.contains(&"neon"), "{names:?}");
        let dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
        assert_eq!(names.contains(&"neon-dotprod"), dotprod, "{names:?}");
        assert_eq!(Some(&KernelTable::detect().name), names.last());
    }
}
