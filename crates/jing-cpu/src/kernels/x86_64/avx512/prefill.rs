//! Prefill (m > 1): a column chunk of rows converted to f32 once, then register tiles of
//! rows x tokens over it.

use super::load::{load_w, load_w_tail};
use super::{tail_mask, L};
use crate::kernels::driver::TileArgs;
use std::arch::x86_64::*;

/// See `Isa::convert`.
///
/// # Safety
/// As `Isa::convert`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn convert<const D: u8>(src: *const u8, k0: usize, len: usize, dst: *mut f32) {
    let mut j = 0;
    while j + L <= len {
        // SAFETY: j + 16 <= len: within `src` (from k0) and `dst`.
        unsafe { _mm512_storeu_ps(dst.add(j), load_w::<D>(src, k0 + j)) };
        j += L;
    }
    if j < len {
        let n = len - j;
        // SAFETY: masked load and store touch only elements j..len.
        unsafe {
            _mm512_mask_storeu_ps(dst.add(j), tail_mask(n), load_w_tail::<D>(src, k0 + j, n))
        };
    }
}

/// See `Isa::tile`, for exactly `T` tokens: `R x T` accumulators, each step loads `R` weight
/// vectors and `T` token vectors for `R·T` FMAs.
///
/// # Safety
/// As `Isa::tile` with `tokens = T`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn tile<const R: usize, const T: usize>(a: &TileArgs<R>) {
    let (mut j0, mut b) = (0, 0);
    while j0 < a.len {
        let j1 = a.len.min(j0 + a.width);
        let mut acc = [[_mm512_setzero_ps(); T]; R];
        let mut j = j0;
        while j + L <= j1 {
            let mut wv = [_mm512_setzero_ps(); R];
            for (v, p) in wv.iter_mut().zip(a.w) {
                // SAFETY: j + 16 <= len, within every row's chunk.
                *v = unsafe { _mm512_loadu_ps(p.add(j)) };
            }
            for t in 0..T {
                // SAFETY: token t < T of the tile, j + 16 <= len.
                let xv = unsafe { _mm512_loadu_ps(a.x.add(t * a.x_stride + j)) };
                for r in 0..R {
                    acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
                }
            }
            j += L;
        }
        if j < j1 {
            let m = tail_mask(j1 - j);
            let mut wv = [_mm512_setzero_ps(); R];
            for (v, p) in wv.iter_mut().zip(a.w) {
                // SAFETY: the masked load reads only elements j..j1 <= len.
                *v = unsafe { _mm512_maskz_loadu_ps(m, p.add(j)) };
            }
            for t in 0..T {
                // SAFETY: as above, for token t.
                let xv = unsafe { _mm512_maskz_loadu_ps(m, a.x.add(t * a.x_stride + j)) };
                for r in 0..R {
                    acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
                }
            }
        }
        // Opaque to the optimizer, so that the running sums stay in memory instead of being
        // promoted to registers across blocks (there are not enough, so they would be spilled).
        let part = std::hint::black_box(a.part);
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: `scales` covers every block of the chunk, `R` per block.
            let s = _mm512_set1_ps(unsafe { *a.scales.add(b * R + r) });
            for (t, &v) in acc_r.iter().enumerate() {
                // SAFETY: `part` has `[T][R][16]` f32.
                unsafe {
                    let p = part.add((t * R + r) * L);
                    _mm512_storeu_ps(p, _mm512_fmadd_ps(v, s, _mm512_loadu_ps(p)));
                }
            }
        }
        j0 = j1;
        b += 1;
    }
}
