//! The plain versions of every kernel: scalar Rust, one obvious loop per formula. They are the
//! oracle the SIMD versions are tested against, and the fallback on CPUs (or weight layouts)
//! no SIMD version covers.

mod matmul;
pub(crate) mod quant;
mod row_axpy;
mod values;
mod vector;

pub(crate) use matmul::with_x_in_bf16;
pub use matmul::{matmul, matmul_fp8_bf16};
pub use quant::matmul_q;
pub use row_axpy::row_axpy;
#[cfg_attr(
    not(target_arch = "aarch64"),
    allow(unused_imports, reason = "the NEON version's tail")
)]
pub use vector::rows_axpy_cols;
pub use vector::{axpy, dot, rows_axpy, rows_dot, rows_shape};
