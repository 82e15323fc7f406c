//! x86-64 kernels. `avx2` needs AVX2 + FMA + F16C (Haswell, Zen 1 and later); `avx512` needs
//! AVX-512 F/BW/VL as well (Skylake-SP, Ice Lake, Zen 4 and later).

#[macro_use]
mod iq;
#[macro_use]
mod quant;

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod prefetch;

/// Block `b` of a row of `BB`-byte blocks (the quantized kernels of both tables).
#[inline(always)]
fn block<const BB: usize>(w: &[u8], b: usize) -> &[u8; BB] {
    // The fixed length lets the compiler drop the bounds checks of the constant offsets.
    w[BB * b..BB * (b + 1)].try_into().expect("BB bytes")
}
