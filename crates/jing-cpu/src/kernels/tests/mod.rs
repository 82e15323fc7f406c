//! Kernel tests: every table the CPU can run against an f64 reference built from
//! `Weight::row_to_f32`, and every SIMD table against `generic`.

mod bandwidth;
mod dequant_panel;
mod fp8;
mod fp8_bf16;
mod interleaved;
mod matmul;
mod panels;
mod quant;
mod util;
mod vector;
