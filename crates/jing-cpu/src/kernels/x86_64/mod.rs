//! x86-64 kernels. `avx2` needs AVX2 + FMA + F16C (Haswell, Zen 1 and later); `avx512` needs
//! AVX-512 F/BW/VL as well (Skylake-SP, Ice Lake, Zen 4 and later).

#[macro_use]
mod iq;
#[macro_use]
mod quant;

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod prefetch;
