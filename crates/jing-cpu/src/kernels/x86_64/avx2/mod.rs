//! AVX2 kernels (with FMA and F16C): 8 f32 lanes. f32 tails use `vmaskmovps`; tails of 16- and
//! 8-bit weights, which have no masked load before AVX-512, are copied into a zeroed 32-byte
//! buffer first. Every function here carries the same target features, so they inline into
//! each other; the safe entry points are only reachable through the table [`table`] returns
//! after detecting those features.
//!
//! Files: `load` (stored weights to f32 vectors), `matmul` (4 rows streamed against up to 4
//! tokens), `vector` (dot, axpy, row_axpy, and rows_axpy: the attention's
//! weighted sum of cache rows).

#![allow(
    clippy::needless_range_loop,
    reason = "register tiles index several arrays by the same row and token"
)]

mod load;
mod matmul;
pub(crate) mod quant;
mod vector;

use super::super::driver::{self, AxpyRows, Isa, RowGroup, MAX_TOKENS};
use super::super::layout::{dt, fp8_prepare_x};
use super::super::{Fp8Activations, KernelTable, OutMatrix};
use jing_tensor::Weight;
use matmul::{dot_rows, dot_rows_fp8};
use std::arch::x86_64::*;
use std::ops::Range;
use vector::{axpy_imp, dot_imp, row_axpy_imp, rows_axpy_imp};

/// f32 lanes.
const L: usize = 8;

/// The table, if this CPU has every feature the functions below are compiled for.
pub(crate) fn table() -> Option<KernelTable> {
    let ok = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    ok.then_some(KernelTable {
        name: "avx2",
        matmul,
        matmul_q: quant::matmul_q,
        dot,
        axpy,
        row_axpy,
        rows_dot,
        rows_axpy,
        interleaved_rows16: false,
        float_panels: true,
        fp8_activations: Fp8Activations::F32,
        fp8_bf16_lines: false,
        matmul_fp8_bf16,
    })
}

/// [`matmul`] against `bf16(x)` for FP8 weights (the exact kernels on rounded `x`).
fn matmul_fp8_bf16(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix) {
    super::super::generic::with_x_in_bf16(matmul, w, x, m, rows, y)
}

pub(super) fn matmul(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix) {
    if w.dtype.is_quantized() {
        // SAFETY: only reachable through `table()`, which checked the CPU features; the
        // contract on `y` is the caller's (MatmulFn).
        return unsafe {
            driver::matmul_quantized::<Avx2>(w, x, m, rows, y, quant::matmul_q, None)
        };
    }
    // SAFETY: only reachable through `table()`, which checked the CPU features; the contract on
    // `y` is the caller's (MatmulFn).
    unsafe { driver::matmul::<Avx2>(w, x, m, rows, y) }
}

fn rows_dot(q: &[f32], m: usize, kv: &[f32], stride: usize, s: &mut [f32]) {
    // SAFETY: only reachable through `table()`, which checked the CPU features.
    unsafe { driver::rows_dot::<Avx2>(q, m, kv, stride, s) }
}

fn rows_axpy(p: &[f32], m: usize, kv: &[f32], stride: usize, o: &mut [f32]) {
    super::super::generic::rows_shape(o.len(), m, kv.len(), stride, p.len());
    // SAFETY: only reachable through `table()`, which checked the CPU features; the shapes
    // were checked.
    unsafe { rows_axpy_imp(p, m, kv, stride, o) }
}

fn row_axpy(w: &Weight, r0: usize, a: &[f32], y: &mut [f32]) {
    // SAFETY: only reachable through `table()`, which checked the CPU features.
    unsafe { driver::row_axpy::<Avx2>(w, r0, a, y) }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(
        a.len(),
        b.len(),
        "dot of {} and {} values",
        a.len(),
        b.len()
    );
    // SAFETY: only reachable through `table()`, which checked the CPU features.
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
    // SAFETY: only reachable through `table()`, which checked the CPU features.
    unsafe { axpy_imp(a, x, y) }
}

/// `Isa::dot_rows` for exactly `T <= 2` tokens: the FP8 kernel (which reads `x` in the
/// layout of `prepare_x`) or the generic-dtype one, written to columns `t0..t0 + T` of `out`.
///
/// # Safety
/// As `Isa::dot_rows` for tokens `t0..t0 + T` (`x` pointing at token 0).
unsafe fn dot_rows_t<const D: u8, const R: usize, const T: usize>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
    t0: usize,
    out: &mut [[f32; MAX_TOKENS]; R],
) {
    let x = x.wrapping_add(t0 * x_stride);
    // SAFETY: forwarded from the caller.
    let part = unsafe {
        if D == dt::F8 {
            dot_rows_fp8::<R, T>(g, x, x_stride)
        } else {
            dot_rows::<D, R, T>(g, x, x_stride)
        }
    };
    for (o, p) in out.iter_mut().zip(part) {
        o[t0..t0 + T].copy_from_slice(&p);
    }
}

/// Marker for the driver.
struct Avx2;

impl Isa for Avx2 {
    unsafe fn dot_rows<const D: u8, const R: usize>(
        g: &RowGroup<'_, R>,
        x: *const f32,
        x_stride: usize,
        tokens: usize,
    ) -> [[f32; MAX_TOKENS]; R] {
        let mut out = [[0.0; MAX_TOKENS]; R];
        // SAFETY: forwarded (trait contract: 1 <= tokens <= 4), in passes of at most 2 tokens.
        unsafe {
            let mut t0 = 0;
            while t0 < tokens {
                if tokens - t0 >= 2 {
                    dot_rows_t::<D, R, 2>(g, x, x_stride, t0, &mut out);
                    t0 += 2;
                } else {
                    dot_rows_t::<D, R, 1>(g, x, x_stride, t0, &mut out);
                    t0 += 1;
                }
            }
        }
        out
    }

    fn prepare_x<const D: u8>(
        x: &[f32],
        k: usize,
        width: usize,
        buf: &mut Vec<f32>,
    ) -> Option<f32> {
        (D == dt::F8).then(|| fp8_prepare_x(x, k, width, L, buf))
    }

    fn fuses_fp8_scales(width: usize) -> bool {
        // Whole groups per block: one block of K columns then reads the same layout.
        width.is_multiple_of(matmul::GROUP)
    }

    unsafe fn row_axpy<const D: u8, const N: usize>(rows: &AxpyRows<'_, N>, y: &mut [f32]) {
        // SAFETY: forwarded (trait contract).
        unsafe { row_axpy_imp::<D, N>(rows, y) }
    }
}

/// `vmaskmovps` mask with lanes `0..n` set (`n < 8`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tail_mask(n: usize) -> __m256i {
    debug_assert!(n < L);
    static ONES_THEN_ZEROS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 - n + 8 <= 16: the 8 values read lie within the static array.
    unsafe { _mm256_loadu_si256(ONES_THEN_ZEROS.as_ptr().add(L - n).cast()) }
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
}
