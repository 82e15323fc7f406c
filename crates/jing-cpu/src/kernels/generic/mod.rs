//! The plain versions of every kernel: scalar Rust, one obvious loop per formula. They are the
//! oracle the SIMD versions are tested against, and the fallback on CPUs (or weight layouts)
//! no SIMD version covers.

mod matmul;
pub(crate) mod quant;
mod row_axpy;
mod values;
mod vector;

pub use matmul::matmul;
pub use quant::matmul_q;
pub use row_axpy::row_axpy;
pub use vector::{axpy, dot};
