//! aarch64 kernels, two tables over one set of float kernels:
//!
//! - `neon`: Advanced SIMD only, which every AArch64 CPU has (and which the
//!   `aarch64-unknown-linux-gnu` target already assumes everywhere);
//! - `neon-dotprod`: the same, with the GGUF block-type integer dot products on `SDOT`
//!   (FEAT_DotProd, optional in Armv8.2: Cortex-A55/A75, Neoverse N1, Apple M1 and later).
//!
//! Two tables rather than a branch inside one, so that a machine with `SDOT` (qemu-user's
//! default CPU included) tests both integer paths against the generic twin.

#[macro_use]
mod quant;
#[macro_use]
mod quant32;
#[macro_use]
mod quant_k;

pub(crate) mod neon;
