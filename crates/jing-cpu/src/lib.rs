//! The CPU backend: a persistent compute pool woken once per graph, an ISA dispatch table
//! chosen at run time, and kernels whose plain `generic` versions are the oracle for the SIMD
//! ones.

mod attention;
mod attention_prefill;
mod buffers;
mod claim;
mod exec;
pub mod kernels;
mod moe;
pub mod pool;
mod profile;
mod scratch;

pub use exec::CpuBackend;
