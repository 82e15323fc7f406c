//! Kernels: the inner loops of the CPU backend.
//!
//! Every kernel has a plain scalar twin in `generic` (the oracle: simple enough to check by
//! reading) and ISA-specific versions (`x86_64::avx2`, `x86_64::avx512`, `aarch64::neon`)
//! tested against it. A [`KernelTable`] bundles one version of each; the backend picks the
//! best table for the CPU once ([`KernelTable::detect`]) and calls through it. A weight
//! carries its format ([`Weight::dtype`](jing_tensor::Weight), block scale), and the matmul
//! dispatches on it.

#![deny(unsafe_op_in_unsafe_fn)]

// Before the ISA modules, which use its macro.
#[macro_use]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_macros)
)]
mod quant_rows;
#[macro_use]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_macros)
)]
mod rows_loops;
#[cfg(target_arch = "aarch64")]
mod aarch64;
pub(crate) mod activation;
// Only the SIMD tables use the driver and parts of the layout helpers (some parts, the
// AVX512-BF16 tile's hooks and the FP8 `x` layout, only the x86 ones).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod dequant_panel;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod driver;
mod generic;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod layout;
mod out;
mod qact;
mod stream;
mod table;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub(crate) use driver::with_x_key;
pub use generic::row_axpy;
pub use out::OutMatrix;
pub use qact::QuantX;
pub(crate) use qact::XKey;
pub use stream::stream_read;
pub use table::{
    AxpyFn, DotFn, Fp8Activations, KernelTable, MatmulFn, MatmulQFn, RowAxpyFn, RowsAxpyFn,
    RowsDotFn, DEQUANT_MIN_TOKENS,
};
