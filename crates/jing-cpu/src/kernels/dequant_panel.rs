//! Prefill with GGUF block weights: dequantize a chunk of weight rows once into a bf16 scratch
//! buffer that stays in L2, then run every token against it in register tiles of 4 rows x 4
//! tokens.
//!
//! Why not the integer kernels for many tokens: each 32-element block carries its own float
//! scale, so an int8 dot product pays a conversion, a scale product and a fused add per block
//! per (row, token) besides the integer multiply. A bf16 pair dot product (`vdpbf16ps`, 32
//! multiply-adds per instruction) needs nothing per block once the weights are decoded, and
//! decoding costs a few operations per weight, paid once per chunk and shared by all `m`
//! tokens. Below [`DEQUANT_MIN_TOKENS`](super::DEQUANT_MIN_TOKENS) the integer kernels (one pass
//! over the weights, no scratch) win; from there on this path does.
//!
//! What it computes, on every table: `y[i, n] = Σ_k bf16(x[i, k]) · bf16(ŵ[n, k])`, with `ŵ`
//! the exactly dequantized weight and `bf16` rounding to nearest even. The products of two
//! bf16 are exact in f32, so tables differ only in the order of the f32 sums. Rounding `x` to
//! bf16 (relative error 2^-9) is finer than the 8-bit block quantization the integer path and
//! llama.cpp apply to activations (2^-8 of the block maximum).
//!
//! On CPUs with AVX512-BF16 the tile is [`Bf16TileFn`] over bf16 `x`; elsewhere the float
//! driver's bf16 tile ([`Isa::dot_rows`]) over `x` already rounded to bf16 values in f32.

use super::driver::{Isa, RowGroup, MAX_TOKENS, ROWS};
use super::layout::{dt, RowScale};
use super::OutMatrix;
use jing_tensor::quant::dequantize_row;
use jing_tensor::{bf16_to_f32, DType, RowLayout, Weight};
use std::cell::RefCell;
use std::ops::Range;

/// Bytes of dequantized weight rows per chunk: a quarter of a 1 MiB L2, so the chunk and the
/// current slice of the token panel stay resident while every token runs against it.
const CHUNK_BYTES: usize = 256 * 1024;

/// Bytes of bf16 `x` per token panel (re-read once per row group).
const PANEL_BYTES: usize = 128 * 1024;

/// `out[r][t] = Σ_k x_t[k] · w_r[k]` for `ROWS` bf16 weight rows `w` and `tokens` bf16 token
/// rows at `x + t · x_stride` (element offsets), `k` a multiple of 32, f32 accumulation.
///
/// # Safety
/// Each `w[r]` has `k` readable u16; token `t < tokens <= MAX_TOKENS` has `k` readable u16 at
/// `x + t · x_stride`; the CPU has the features of the implementation.
pub(crate) type Bf16TileFn = unsafe fn(
    w: &[*const u16; ROWS],
    x: *const u16,
    x_stride: usize,
    k: usize,
    tokens: usize,
) -> [[f32; MAX_TOKENS]; ROWS];

/// The native AVX512-BF16 kernels of this path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bf16Native {
    /// The register tile.
    pub tile: Bf16TileFn,
    /// `out[i] = bf16 bits of src[i]`, rounded to nearest even (lengths equal).
    ///
    /// # Safety
    /// The CPU has the features of the implementation.
    pub convert: unsafe fn(src: &[f32], out: &mut [u16]),
    /// `out` = bf16 bits of the dequantized row `bytes` of `dtype`, rounded to nearest even
    /// (`tmp` is scratch of the row's length).
    ///
    /// # Safety
    /// The CPU has the features of the implementation.
    pub dequant: unsafe fn(dtype: DType, bytes: &[u8], out: &mut [u16], tmp: &mut [f32]),
}

/// bf16 bits of `v`, rounded to nearest even (NaN stays a quiet NaN).
#[inline(always)]
pub(crate) fn bf16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    if b & 0x7fff_ffff > 0x7f80_0000 {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// `v` rounded to the nearest bf16, as f32.
#[inline(always)]
pub(crate) fn bf16_round(v: f32) -> f32 {
    bf16_to_f32(bf16_bits(v))
}

/// One thread's buffers, reused across calls (prefill runs hundreds of matmuls).
#[derive(Default)]
struct Scratch {
    /// `[chunk rows, K]` bf16 bits of the dequantized weight rows.
    w: Vec<u16>,
    /// `[K]` one dequantized row before rounding.
    row: Vec<f32>,
    /// `[m, K]` bf16 bits of `x` (native tile).
    xb: Vec<u16>,
    /// `[m, K]` `x` rounded to bf16 values (driver tile).
    xr: Vec<f32>,
    /// The 16 GGUF rows of the interleaved group last taken apart.
    group: GroupRows,
}

/// GGUF rows of `w` for dequantizing, whatever its layout: interleaved rows are taken apart a
/// group of 16 at a time (once per group as the rows are read in order).
#[derive(Default)]
struct GroupRows {
    /// The group in `rows` as (weight bytes address, group index).
    at: Option<(usize, usize)>,
    rows: Vec<u8>,
}

impl GroupRows {
    fn row<'a>(&'a mut self, w: &'a Weight, r: usize) -> &'a [u8] {
        if w.layout == RowLayout::Rows {
            return w.row_data(r);
        }
        let (rb, g) = (w.row_bytes(), w.layout.group());
        let key = (w.data.as_slice().as_ptr() as usize, r / g);
        if self.at != Some(key) {
            w.group_rows(key.1, &mut self.rows);
            self.at = Some(key);
        }
        &self.rows[(r % g) * rb..(r % g + 1) * rb]
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `y[i, n] = Σ_k bf16(x[i·K + k]) · bf16(ŵ[n, k])` for `i < m`, `n ∈ rows`, `W` a GGUF block
/// weight dequantized chunk by chunk; `native` is the AVX512-BF16 tile where the CPU has one.
///
/// # Safety
/// The CPU has `I`'s features (and `native`'s, if given), and the
/// [`MatmulFn`](super::MatmulFn) contract on `y` holds; the shapes were checked
/// (`x.len() == m · K`, `rows` within `W`, `y` wide enough).
pub(crate) unsafe fn matmul_dequant<I: Isa>(
    w: &Weight,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &OutMatrix,
    native: Option<Bf16Native>,
) {
    let k = w.cols();
    if rows.is_empty() || m == 0 {
        return;
    }
    // Whole row groups per chunk, at least one.
    let chunk_rows = ((CHUNK_BYTES / (2 * k)) / ROWS).max(1) * ROWS;
    let panel = (PANEL_BYTES / (2 * k)).max(1).div_ceil(MAX_TOKENS) * MAX_TOKENS;
    SCRATCH.with(|cell| {
        let s = &mut *cell.borrow_mut();
        s.w.resize(chunk_rows * k, 0);
        s.row.resize(k, 0.0);
        // A group taken apart in an earlier call may belong to a weight since freed.
        s.group.at = None;
        // Activations rounded once per call, in the layout the tile reads.
        if let Some(nat) = native {
            s.xb.resize(x.len(), 0);
            // SAFETY: the caller guarantees `native`'s features.
            unsafe { (nat.convert)(x, &mut s.xb) };
        } else {
            s.xr.clear();
            s.xr.extend(x.iter().map(|&v| bf16_round(v)));
        }
        let mut c0 = rows.start;
        while c0 < rows.end {
            let c1 = rows.end.min(c0 + chunk_rows);
            // chunk: [c1 - c0, K] bf16, row j is weight row c0 + j.
            for (j, out) in s.w[..(c1 - c0) * k].chunks_exact_mut(k).enumerate() {
                let bytes = s.group.row(w, c0 + j);
                match native {
                    // SAFETY: the caller guarantees `native`'s features.
                    Some(nat) => unsafe { (nat.dequant)(w.dtype, bytes, out, &mut s.row) },
                    None => {
                        dequantize_row(w.dtype, bytes, &mut s.row);
                        for (o, &v) in out.iter_mut().zip(&s.row) {
                            *o = bf16_bits(v);
                        }
                    }
                }
            }
            let chunk = &s.w[..(c1 - c0) * k];
            for p0 in (0..m).step_by(panel) {
                let tokens = p0..m.min(p0 + panel);
                for n in (c0..c1).step_by(ROWS) {
                    let live = ROWS.min(c1 - n);
                    // Row pointers of the group; a short last group repeats its last row
                    // (computed and discarded) so every call is a full tile.
                    let ptr: [*const u16; ROWS] =
                        std::array::from_fn(|r| chunk[(n - c0 + r.min(live - 1)) * k..].as_ptr());
                    for t0 in tokens.clone().step_by(MAX_TOKENS) {
                        let count = MAX_TOKENS.min(tokens.end - t0);
                        let out = match native {
                            // SAFETY: the caller guarantees `native`'s features; each row has
                            // K values; tokens t0..t0 + count of `xb` have K values each.
                            Some(nat) => unsafe {
                                (nat.tile)(&ptr, s.xb[t0 * k..].as_ptr(), k, k, count)
                            },
                            None => {
                                let g = RowGroup::<ROWS> {
                                    ptr: ptr.map(|p| p.cast::<u8>()),
                                    scale: std::array::from_fn(|_| RowScale::unscaled(1.0)),
                                    cols: k,
                                    width: k,
                                    lines: false,
                                    fused: false,
                                };
                                // SAFETY: the CPU has `I`'s features (caller); each row has K
                                // bf16; tokens t0..t0 + count of `xr` have K f32 each.
                                unsafe {
                                    I::dot_rows::<{ dt::BF16 }, ROWS>(
                                        &g,
                                        s.xr[t0 * k..].as_ptr(),
                                        k,
                                        count,
                                    )
                                }
                            }
                        };
                        for (r, per_token) in out[..live].iter().enumerate() {
                            for (i, &v) in per_token[..count].iter().enumerate() {
                                // SAFETY: the caller owns columns `rows` of `y` (MatmulFn
                                // contract), and `n + r` is one of them.
                                unsafe { y.write(t0 + i, n + r, v) };
                            }
                        }
                    }
                }
            }
            c0 = c1;
        }
    });
}
