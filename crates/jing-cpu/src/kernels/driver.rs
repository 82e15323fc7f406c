//! The loop nest every SIMD matmul shares. An ISA supplies a few coarse kernels ([`Isa`]);
//! this file decides which weight rows, tokens and columns each call covers.
//!
//! - Decode (`m = 1`): memory-bandwidth bound, so the goal is to stream each weight row once
//!   with enough loads in flight. Rows go 4 at a time through [`Isa::dot_rows`], which converts
//!   to f32 in registers and prefetches ahead; `x` may first be rearranged once per call
//!   ([`Isa::decode_x`]) into whatever order makes the ISA's conversion cheapest.
//! - Prefill (`m >= 2`): compute bound. Tokens go in panels whose `x` fits in L2; for each
//!   4-row block and each column chunk (fits L1 with a few tokens of `x`) the rows are
//!   converted to f32 once ([`Isa::convert`]) and multiplied against every token of the panel,
//!   a few tokens at a time ([`Isa::tile`]), into vector partial sums reduced at the end. (From
//!   2 tokens on this beats re-streaming rows per token, as measured.)
//!
//! Both paths keep the block-scale grouping of the generic version: each column block is
//! accumulated on its own and multiplied by its scale before being added to the total.

use super::generic;
use super::layout::{
    block_width, check_matmul, check_row_axpy, dt, dt_size, row_bytes, simd_code, simd_factor,
    RowScale,
};
use super::OutMatrix;
use jing_tensor::Weight;
use std::ops::Range;

/// Weight rows per decode group and per prefill row block.
pub(crate) const ROWS: usize = 4;
/// From this many tokens on, convert-once tiling beats re-streaming rows per token (measured:
/// equal at 2 tokens, tiling 1.6x faster at 3).
const PREFILL_MIN_TOKENS: usize = 2;
/// Columns per prefill chunk (rounded to whole scale blocks): `ROWS` converted rows of it
/// (8 KiB) plus a few tokens of `x` stay in L1.
const CHUNK: usize = 512;
/// Bytes of `x` per token panel: the panel is re-read once per row block, from L2 (half of a
/// 1 MiB L2; 128..512 KiB measured within noise of each other on Zen 5).
const PANEL_BYTES: usize = 512 * 1024;
/// Most tokens per panel (bounds the partial-sum buffer).
const PANEL_MAX: usize = 64;

/// `R` weight rows as the decode kernel reads them.
pub(crate) struct RowGroup<'a, const R: usize> {
    /// First byte of each row (`cols` elements of the dtype follow).
    pub ptr: [*const u8; R],
    /// Each row's block scales (already times the ISA's dtype factor).
    pub scale: [RowScale<'a>; R],
    /// K.
    pub cols: usize,
    /// Columns per scale block (`cols` when unscaled).
    pub width: usize,
}

/// One prefill tile call: `R` converted rows of one column chunk times up to
/// [`Isa::TILE_TOKENS`] tokens.
pub(crate) struct TileArgs<const R: usize> {
    /// Each row's chunk start; `len` f32 readable from each (any alignment).
    pub w: [*const f32; R],
    /// The first token's chunk start; token `t` starts at `x + t · x_stride`.
    pub x: *const f32,
    /// f32 between consecutive tokens (K).
    pub x_stride: usize,
    /// Columns in the chunk.
    pub len: usize,
    /// Columns per scale block; the chunk starts on a block boundary.
    pub width: usize,
    /// Scale of (block `b` of the chunk, row `r`) at `scales[b · R + r]`.
    pub scales: *const f32,
    /// Running vector sums, `[tokens][R][LANES]` f32; the tile adds to them.
    pub part: *mut f32,
}

/// The coarse kernels an ISA provides. Implementors are zero-sized markers; every method may
/// only be called on a CPU that has the ISA's features.
pub(crate) trait Isa {
    /// f32 lanes of a vector.
    const LANES: usize;
    /// Tokens per prefill tile (register budget: `ROWS · TILE_TOKENS` accumulators).
    const TILE_TOKENS: usize;

    /// `Σ_cb scale[r](cb) · Σ_{k ∈ cb} x[k] · W_r[k]` for each of the `R` rows of `g`, `W`
    /// decoded from dtype `D`, `x` in the layout [`Isa::decode_x`] chose and `g`'s scales
    /// multiplied by the factor it returned.
    ///
    /// # Safety
    /// The CPU has the ISA's features; each `g.ptr[r]` has `g.cols` elements of `D`; `x` has
    /// `g.cols` f32 (one token).
    unsafe fn dot_rows<const D: u8, const R: usize>(g: &RowGroup<'_, R>, x: *const f32)
        -> [f32; R];

    /// The layout of `x` (`[m, K]`) that [`Isa::dot_rows`] reads for dtype `D` with scale blocks
    /// `width` wide: `None` to read `x` as it is, with block scales times
    /// [`simd_factor`]`(D)`; or `Some(factor)` after writing the ISA's own layout of `x` into
    /// `buf` (same length), with block scales times `factor`. Called once per matmul, so
    /// anything done here is amortized over all rows.
    fn decode_x<const D: u8>(x: &[f32], k: usize, width: usize, buf: &mut Vec<f32>) -> Option<f32> {
        let _ = (x, k, width, buf);
        None
    }

    /// `dst[j] = W[k0 + j]` for `j < len`, decoded from dtype `D` (FP8 as `code · 2^-8`) from the
    /// row starting at `src`.
    ///
    /// # Safety
    /// The CPU has the ISA's features; `src` has `k0 + len` elements of `D`; `dst` has room
    /// for `len` f32.
    unsafe fn convert<const D: u8>(src: *const u8, k0: usize, len: usize, dst: *mut f32);

    /// For `t < tokens`, `r < R`: `part[t][r] += Σ_b scales[b][r] · Σ_{j ∈ b} x_t[j] · w_r[j]`
    /// as vectors of `LANES` partial sums.
    ///
    /// # Safety
    /// The CPU has the ISA's features; `1 <= tokens <= TILE_TOKENS`; the pointers of `a` are
    /// valid as [`TileArgs`] describes for `tokens` tokens.
    unsafe fn tile<const R: usize>(a: &TileArgs<R>, tokens: usize);

    /// `y[k] += a · scale(k / width) · W[k]` for the row starting at `row`, `W` decoded from
    /// dtype `D` (FP8 as `code · 2^-8`, the scale including the factor).
    ///
    /// # Safety
    /// The CPU has the ISA's features; `row` has `y.len()` elements of `D`.
    unsafe fn row_axpy<const D: u8>(
        row: *const u8,
        scale: RowScale<'_>,
        width: usize,
        a: f32,
        y: &mut [f32],
    );
}

/// The `row_axpy` of [`RowAxpyFn`](super::RowAxpyFn) on ISA `I`; weights no SIMD kernel reads go
/// to the generic version.
///
/// # Safety
/// The CPU has `I`'s features.
pub(crate) unsafe fn row_axpy<I: Isa>(w: &Weight, r: usize, a: f32, y: &mut [f32]) {
    let Some(d) = simd_code(w) else {
        return generic::row_axpy(w, r, a, y);
    };
    check_row_axpy(w, r, y);
    let row = row_bytes(w, r).as_ptr();
    let width = block_width(w).unwrap_or(y.len()).max(1);
    let scale = RowScale::of(w, r, simd_factor(d));
    // SAFETY: (every arm) the caller guarantees the CPU features; `check_row_axpy` checked that
    // row `r` exists and has `y.len()` elements.
    unsafe {
        match d {
            dt::F32 => I::row_axpy::<{ dt::F32 }>(row, scale, width, a, y),
            dt::BF16 => I::row_axpy::<{ dt::BF16 }>(row, scale, width, a, y),
            dt::F16 => I::row_axpy::<{ dt::F16 }>(row, scale, width, a, y),
            _ => I::row_axpy::<{ dt::F8 }>(row, scale, width, a, y),
        }
    }
}

/// The matmul of [`MatmulFn`](super::MatmulFn) on ISA `I`; weights no SIMD kernel reads (scale
/// blocks not a multiple of 16 columns, integer types) go to the generic version.
///
/// # Safety
/// The CPU has `I`'s features, and the [`MatmulFn`](super::MatmulFn) contract on `y` holds.
pub(crate) unsafe fn matmul<I: Isa>(
    w: &Weight,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &OutMatrix,
) {
    let Some(d) = simd_code(w) else {
        return generic::matmul(w, x, m, rows, y);
    };
    let k = check_matmul(w, x, m, &rows, y);
    let p = Problem {
        w,
        x,
        m,
        k,
        rows,
        y,
    };
    // SAFETY: (every arm) the caller guarantees the CPU features and the contract on `y`;
    // `check_matmul` checked the shapes the kernels rely on.
    unsafe {
        match d {
            dt::F32 => p.run::<I, { dt::F32 }>(),
            dt::BF16 => p.run::<I, { dt::BF16 }>(),
            dt::F16 => p.run::<I, { dt::F16 }>(),
            _ => p.run::<I, { dt::F8 }>(),
        }
    }
}

/// One checked matmul call.
struct Problem<'a, 'y> {
    w: &'a Weight,
    x: &'a [f32],
    m: usize,
    k: usize,
    rows: Range<usize>,
    y: &'a OutMatrix<'y>,
}

impl Problem<'_, '_> {
    /// # Safety
    /// As [`matmul`], with `D` the dtype code of `self.w`.
    unsafe fn run<I: Isa, const D: u8>(&self) {
        if self.k == 0 {
            for i in 0..self.m {
                for n in self.rows.clone() {
                    // SAFETY: the caller owns columns `rows` of `y` (MatmulFn contract).
                    unsafe { self.y.write(i, n, 0.0) };
                }
            }
        } else if self.m < PREFILL_MIN_TOKENS {
            // SAFETY: forwarded from the caller.
            unsafe { self.decode::<I, D>() }
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { self.prefill::<I, D>() }
        }
    }

    /// Rows `n..n + R` for [`Isa::dot_rows`].
    fn group<const R: usize>(&self, n: usize, width: usize, factor: f32) -> RowGroup<'_, R> {
        RowGroup {
            ptr: std::array::from_fn(|r| row_bytes(self.w, n + r).as_ptr()),
            scale: std::array::from_fn(|r| RowScale::of(self.w, n + r, factor)),
            cols: self.k,
            width,
        }
    }

    /// # Safety
    /// As [`Problem::run`].
    unsafe fn decode<I: Isa, const D: u8>(&self) {
        let width = block_width(self.w).unwrap_or(self.k);
        let mut buf = Vec::new();
        let (x, factor) = match I::decode_x::<D>(self.x, self.k, width, &mut buf) {
            Some(factor) => (&buf[..], factor),
            None => (self.x, simd_factor(D)),
        };
        assert_eq!(x.len(), self.x.len(), "decode_x keeps the length of x");
        let mut n = self.rows.start;
        while n < self.rows.end {
            if n + ROWS <= self.rows.end {
                let g = self.group::<ROWS>(n, width, factor);
                for i in 0..self.m {
                    // SAFETY: the CPU has the features (caller); `group` took `ROWS` whole
                    // rows of `w`, and token `i` of `x` has K values (`check_matmul`).
                    let out = unsafe { I::dot_rows::<D, ROWS>(&g, x[i * self.k..].as_ptr()) };
                    for (r, v) in out.into_iter().enumerate() {
                        // SAFETY: the caller owns columns `rows` of `y`.
                        unsafe { self.y.write(i, n + r, v) };
                    }
                }
                n += ROWS;
            } else {
                let g = self.group::<1>(n, width, factor);
                for i in 0..self.m {
                    // SAFETY: as above, for one row.
                    let [v] = unsafe { I::dot_rows::<D, 1>(&g, x[i * self.k..].as_ptr()) };
                    // SAFETY: the caller owns columns `rows` of `y`.
                    unsafe { self.y.write(i, n, v) };
                }
                n += 1;
            }
        }
    }

    /// # Safety
    /// As [`Problem::run`].
    unsafe fn prefill<I: Isa, const D: u8>(&self) {
        let k = self.k;
        // Scale blocks; an unscaled weight gets artificial blocks of one chunk.
        let width = block_width(self.w).unwrap_or(CHUNK);
        let chunk = if width >= CHUNK {
            width
        } else {
            width * (CHUNK / width)
        }
        .min(k);
        let tt = I::TILE_TOKENS;
        let panel = (PANEL_BYTES / (4 * k)).clamp(tt, PANEL_MAX.max(tt)) / tt * tt;
        let mut bufs = Buffers {
            wbuf: if D == dt::F32 {
                Vec::new()
            } else {
                vec![0.0; ROWS * chunk]
            },
            scales: vec![0.0; ROWS * chunk.div_ceil(width)],
            part: vec![0.0; panel * ROWS * I::LANES],
        };
        let shape = Chunking {
            width,
            chunk,
            factor: simd_factor(D),
        };
        for p0 in (0..self.m).step_by(panel) {
            let tokens = p0..self.m.min(p0 + panel);
            let mut n = self.rows.start;
            while n < self.rows.end {
                if n + ROWS <= self.rows.end {
                    // SAFETY: forwarded from the caller; rows n..n+ROWS are within `rows`.
                    unsafe { self.row_block::<I, D, ROWS>(n, tokens.clone(), &shape, &mut bufs) };
                    n += ROWS;
                } else {
                    // SAFETY: as above, one row.
                    unsafe { self.row_block::<I, D, 1>(n, tokens.clone(), &shape, &mut bufs) };
                    n += 1;
                }
            }
        }
    }

    /// Rows `n..n+R` times the token panel `tokens`, written to `y`.
    ///
    /// # Safety
    /// As [`Problem::run`]; `n + R <= rows.end`; `tokens` within `0..m` and at most the panel
    /// size `bufs` was made for.
    unsafe fn row_block<I: Isa, const D: u8, const R: usize>(
        &self,
        n: usize,
        tokens: Range<usize>,
        shape: &Chunking,
        bufs: &mut Buffers,
    ) {
        let (k, lanes, tt) = (self.k, I::LANES, I::TILE_TOKENS);
        let nt = tokens.len();
        let part = &mut bufs.part[..nt * R * lanes]; // [nt][R][LANES]
        part.fill(0.0);
        let scales: [RowScale<'_>; R] =
            std::array::from_fn(|r| RowScale::of(self.w, n + r, shape.factor));
        let rowb: [&[u8]; R] = std::array::from_fn(|r| row_bytes(self.w, n + r));
        for c0 in (0..k).step_by(shape.chunk) {
            let len = shape.chunk.min(k - c0);
            // [R] rows of this chunk as f32: the weight itself for f32, else converted.
            let mut wp = [std::ptr::null::<f32>(); R];
            for (r, p) in wp.iter_mut().enumerate() {
                if D == dt::F32 {
                    *p = rowb[r][c0 * 4..].as_ptr().cast::<f32>();
                } else {
                    let dst = bufs.wbuf[r * shape.chunk..][..len].as_mut_ptr();
                    debug_assert!(rowb[r].len() >= (c0 + len) * dt_size(D));
                    // SAFETY: the row has K >= c0 + len elements of `D`; `dst` has `len` f32;
                    // the CPU has the features (caller).
                    unsafe { I::convert::<D>(rowb[r].as_ptr(), c0, len, dst) };
                    *p = dst;
                }
            }
            let cb0 = c0 / shape.width;
            let nb = len.div_ceil(shape.width);
            for (b, per_row) in bufs.scales.chunks_exact_mut(R).take(nb).enumerate() {
                for (s, scale) in per_row.iter_mut().zip(&scales) {
                    *s = scale.get(cb0 + b);
                }
            }
            let mut t = 0;
            while t < nt {
                let count = tt.min(nt - t);
                let a = TileArgs {
                    w: wp,
                    x: self.x[(tokens.start + t) * k + c0..].as_ptr(),
                    x_stride: k,
                    len,
                    width: shape.width,
                    scales: bufs.scales.as_ptr(),
                    part: part[t * R * lanes..].as_mut_ptr(),
                };
                // SAFETY: `wp[r]` has `len` f32 (the weight row or `wbuf`); tokens
                // `tokens.start + t ..+ count` are within `m`, each with `len` f32 from `c0`;
                // `scales` covers `nb` blocks; `part` has `count · R · LANES` f32 from `t`.
                unsafe { I::tile::<R>(&a, count) };
                t += count;
            }
        }
        for (t, sums) in part.chunks_exact(R * lanes).enumerate() {
            for (r, lane) in sums.chunks_exact(lanes).enumerate() {
                let v: f32 = lane.iter().sum();
                // SAFETY: the caller owns columns `rows` of `y`, and `n + r` is one of them.
                unsafe { self.y.write(tokens.start + t, n + r, v) };
            }
        }
    }
}

/// How prefill cuts K.
struct Chunking {
    /// Columns per scale block.
    width: usize,
    /// Columns per chunk, a multiple of `width` (or all of K).
    chunk: usize,
    /// The ISA's dtype factor, folded into every scale.
    factor: f32,
}

/// Scratch reused across the row blocks of one prefill call.
struct Buffers {
    /// `[ROWS][chunk]` converted weight rows (empty for f32 weights, which are read in place).
    wbuf: Vec<f32>,
    /// `[blocks per chunk][ROWS]` scales of the current chunk.
    scales: Vec<f32>,
    /// `[panel][ROWS][LANES]` running vector sums.
    part: Vec<f32>,
}
