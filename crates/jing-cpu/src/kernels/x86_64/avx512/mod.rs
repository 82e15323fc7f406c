//! AVX-512 kernels (F + BW + VL, with FMA and F16C): 16 f32 lanes, and masked loads and stores
//! handle every tail in registers. Every function here carries the same target features, so
//! they inline into each other; the safe entry points are only reachable through the table
//! [`table`] returns after detecting those features.
//!
//! Files: `load` (stored weights to f32 vectors), `matmul` (4 rows streamed against up to 4
//! tokens), `vector` (dot, axpy, row_axpy, and rows_axpy: the attention's
//! weighted sum of cache rows).

#![allow(
    clippy::needless_range_loop,
    reason = "register tiles index several arrays by the same row and token"
)]

pub(crate) mod bf16_tile;
mod fp8_axpy;
mod fp8_bf16;
mod load;
mod matmul;
pub(crate) mod quant;
mod vector;

use super::super::dequant_panel::Bf16Native;
use super::super::driver::{self, AxpyRows, Isa, RowGroup, MAX_TOKENS};
use super::super::layout::{dt, fp8_prepare_x};
use super::super::{Fp8Activations, KernelTable, OutMatrix};
use jing_tensor::Weight;
use matmul::{dot_rows, dot_rows_fp8};
use std::arch::x86_64::*;
use std::ops::Range;
use vector::{axpy_imp, dot_imp, row_axpy_imp, rows_axpy_imp};

/// f32 lanes.
const L: usize = 16;

/// The table, if this CPU has every feature the functions below are compiled for.
pub(crate) fn table() -> Option<KernelTable> {
    let ok = is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    // Block-quantized weights: VNNI where the CPU has it, else the AVX2 kernels.
    let vnni = is_x86_feature_detected!("avx512vnni");
    ok.then_some(KernelTable {
        name: "avx512",
        matmul,
        matmul_q: if vnni {
            quant::matmul_q
        } else {
            super::avx2::quant::matmul_q
        },
        dot,
        axpy,
        row_axpy,
        rows_dot,
        rows_axpy,
        // The 512-bit VNNI kernel of `quant::rows16`.
        interleaved_rows16: vnni,
        float_panels: true,
        fp8_activations: Fp8Activations::F32,
        fp8_bf16_lines: fp8_bf16::available(),
        matmul_fp8_bf16,
    })
}

/// [`matmul`] against `bf16(x)` for FP8 weights: the `vdpbf16ps` kernel ([`fp8_bf16`]) where
/// the CPU has AVX512-BF16 and VBMI, else the exact kernels on rounded `x`.
fn matmul_fp8_bf16(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix) {
    if w.dtype != jing_tensor::DType::F8E4M3 {
        return matmul(w, x, m, rows, y);
    }
    if !fp8_bf16::available() {
        return super::super::generic::with_x_in_bf16(matmul, w, x, m, rows, y);
    }
    // SAFETY: only reachable through `table()`, which checked the CPU's AVX-512 features, and
    // `available` the rest; the contract on `y` is the caller's (MatmulFn).
    unsafe { driver::matmul::<Avx512Bf16>(w, x, m, rows, y) }
}

fn matmul(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix) {
    if w.dtype.is_quantized() {
        let q = if is_x86_feature_detected!("avx512vnni") {
            quant::matmul_q
        } else {
            super::avx2::quant::matmul_q
        };
        // SAFETY: only reachable through `table()`, which checked the CPU features; the
        // contract on `y` is the caller's (MatmulFn).
        let native = bf16_tile::available().then_some(Bf16Native {
            tile: bf16_tile::tile,
            convert: bf16_tile::convert,
            dequant: bf16_tile::dequant,
        });
        return unsafe { driver::matmul_quantized::<Avx512>(w, x, m, rows, y, q, native) };
    }
    if w.dtype == jing_tensor::DType::BF16 && m == 1 {
        // A bf16 matvec streams faster from DRAM through the 256-bit kernel: one thread
        // measured 34-39 GB/s there against 25-28 through the 512-bit widening (and
        // DeepSeek's FP8 checkpoints keep a bf16 lm_head, 0.42 of the 0.75 GB per token of
        // the 4-layer V2-Lite shape: decode went from 64 to 73 tokens/s on two threads).
        // The AVX2 features are part of this table's.
        return super::avx2::matmul(w, x, m, rows, y);
    }
    // SAFETY: only reachable through `table()`, which checked the CPU features; the contract on
    // `y` is the caller's (MatmulFn).
    unsafe { driver::matmul::<Avx512>(w, x, m, rows, y) }
}

fn row_axpy(w: &Weight, r0: usize, a: &[f32], y: &mut [f32]) {
    if w.dtype == jing_tensor::DType::F8E4M3 && fp8_bf16::available() {
        // SAFETY: only reachable through `table()`, which checked the CPU's AVX-512 features,
        // and `available` the rest.
        return unsafe { driver::row_axpy::<Avx512Bf16>(w, r0, a, y) };
    }
    // SAFETY: only reachable through `table()`, which checked the CPU features.
    unsafe { driver::row_axpy::<Avx512>(w, r0, a, y) }
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

fn rows_dot(q: &[f32], m: usize, kv: &[f32], stride: usize, s: &mut [f32]) {
    // SAFETY: only reachable through `table()`, which checked the CPU features.
    unsafe { driver::rows_dot::<Avx512>(q, m, kv, stride, s) }
}

fn rows_axpy(p: &[f32], m: usize, kv: &[f32], stride: usize, o: &mut [f32]) {
    super::super::generic::rows_shape(o.len(), m, kv.len(), stride, p.len());
    // SAFETY: only reachable through `table()`, which checked the CPU features; the shapes
    // were checked.
    unsafe { rows_axpy_imp(p, m, kv, stride, o) }
}

/// `Isa::dot_rows` for `tokens` tokens: for FP8 the kernel of the `x` layout the ISA prepared
/// (`BF16X`: [`fp8_bf16`]'s, else [`fp8_prepare_x`]'s), for the other dtypes the generic-dtype
/// kernel, padded to `MAX_TOKENS` columns.
///
/// # Safety
/// As `Isa::dot_rows`; with `BF16X`, `fp8_bf16::available` is true.
unsafe fn dot_rows_tokens<const D: u8, const R: usize, const BF16X: bool>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
    tokens: usize,
) -> [[f32; MAX_TOKENS]; R] {
    // SAFETY: forwarded (trait contract: 1 <= tokens <= 4).
    unsafe {
        match tokens {
            1 => dot_rows_t::<D, R, 1, BF16X>(g, x, x_stride),
            2 => dot_rows_t::<D, R, 2, BF16X>(g, x, x_stride),
            3 => dot_rows_t::<D, R, 3, BF16X>(g, x, x_stride),
            _ => dot_rows_t::<D, R, 4, BF16X>(g, x, x_stride),
        }
    }
}

/// [`dot_rows_tokens`] for exactly `T` tokens.
///
/// # Safety
/// As [`dot_rows_tokens`] with `tokens = T`.
unsafe fn dot_rows_t<const D: u8, const R: usize, const T: usize, const BF16X: bool>(
    g: &RowGroup<'_, R>,
    x: *const f32,
    x_stride: usize,
) -> [[f32; MAX_TOKENS]; R] {
    // SAFETY: forwarded from the caller.
    let out = unsafe {
        match (D == dt::F8, BF16X) {
            (true, true) => fp8_bf16::dot_rows_fp8_bf16::<R, T>(g, x, x_stride),
            (true, false) => dot_rows_fp8::<R, T>(g, x, x_stride),
            _ => dot_rows::<D, R, T>(g, x, x_stride),
        }
    };
    let mut wide = [[0.0; MAX_TOKENS]; R];
    for (w, o) in wide.iter_mut().zip(out) {
        w[..T].copy_from_slice(&o);
    }
    wide
}

/// Marker for the driver: the AVX-512 kernels, FP8 rows against `x` as it is or, with
/// `BF16X`, against `bf16(x)` ([`fp8_bf16`], which needs AVX512-BF16 and VBMI too).
struct Avx512Isa<const BF16X: bool>;

/// The table's own.
type Avx512 = Avx512Isa<false>;

/// The table's with FP8 against bf16 activations, and its FP8 `row_axpy` (only reached
/// through `matmul_fp8_bf16` and `row_axpy`, which check `fp8_bf16::available`).
type Avx512Bf16 = Avx512Isa<true>;

impl<const BF16X: bool> Isa for Avx512Isa<BF16X> {
    unsafe fn dot_rows<const D: u8, const R: usize>(
        g: &RowGroup<'_, R>,
        x: *const f32,
        x_stride: usize,
        tokens: usize,
    ) -> [[f32; MAX_TOKENS]; R] {
        // SAFETY: forwarded (trait contract); with BF16X, `matmul_fp8_bf16` checked
        // `fp8_bf16::available`, and `prepare_x` laid out an FP8 `x` for it.
        unsafe { dot_rows_tokens::<D, R, BF16X>(g, x, x_stride, tokens) }
    }

    fn prepare_x<const D: u8>(
        x: &[f32],
        k: usize,
        width: usize,
        buf: &mut Vec<f32>,
    ) -> Option<f32> {
        (D == dt::F8).then(|| match BF16X {
            true => fp8_bf16::prepare_x(x, k, width, buf),
            false => fp8_prepare_x(x, k, width, L, buf),
        })
    }

    fn fuses_fp8_scales(width: usize) -> bool {
        // Whole groups per block: one block of K columns then reads the same layout.
        let group = if BF16X {
            fp8_bf16::GROUP
        } else {
            matmul::GROUP
        };
        width.is_multiple_of(group)
    }

    fn pack_fused_x(x: &mut [f32], k: usize) {
        if BF16X {
            // SAFETY: the ways to `Avx512Bf16` (`matmul_fp8_bf16`, `row_axpy`) checked
            // `fp8_bf16::available`.
            unsafe { fp8_bf16::pack_fused_x(x, k) }
        }
    }

    unsafe fn row_axpy<const D: u8, const N: usize>(rows: &AxpyRows<'_, N>, y: &mut [f32]) {
        if BF16X && D == dt::F8 {
            // SAFETY: forwarded (trait contract); `Avx512Bf16` is only reached where
            // `fp8_bf16::available` held.
            return unsafe { fp8_axpy::row_axpy_fp8::<N>(rows, y) };
        }
        // SAFETY: forwarded (trait contract).
        unsafe { row_axpy_imp::<D, N>(rows, y) }
    }
}

/// Lanes `0..n` set (`n < 16`).
#[inline(always)]
fn tail_mask(n: usize) -> __mmask16 {
    debug_assert!(n < L);
    ((1u32 << n) - 1) as __mmask16
}
