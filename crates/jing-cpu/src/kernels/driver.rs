//! The loop nest every SIMD matmul shares. An ISA supplies the inner kernels ([`Isa`]); this
//! file decides which weight rows and tokens each call covers.
//!
//! One scheme serves decode and prefill. Weight rows go 4 at a time through
//! [`Isa::dot_rows`], which streams them once, converts to f32 in registers (with software
//! prefetch ahead), and multiplies each converted vector against up to 4 tokens. For `m <= 4`
//! (decode, MTP, small batches) each row is read once from memory; for larger `m` the tokens go
//! in panels whose `x` fits in L2, and each 4-row group is re-read from L1/L2 once per 4 tokens
//! of the panel. `x` may first be rearranged once per call ([`Isa::prepare_x`]) into whatever
//! order makes the ISA's conversion cheapest.
//!
//! (An earlier version converted row blocks once into an f32 buffer and ran register tiles of
//! rows x tokens over it for `m > 4`; on Zen 5 with AVX-512 the streaming kernel was 1.3-1.5x
//! faster at every `m`, since conversion in registers costs less than the buffer's extra loads
//! and stores and partial sums.)
//!
//! Both keep the block-scale grouping of the generic version: each column block is accumulated
//! on its own and multiplied by its scale before being added to the total.
//!
//! Rows longer than a panel may be stored in column panels ([`RowLayout::Panels`]): then each
//! group of 64 rows goes panel by panel, 4 rows at a time against the panel's 2048 columns of
//! `x`, the first panel's sums written and the others' added (so the sum of a row is the sum of
//! its panels' sums), and each piece of `x` stays in L1 over the group's 64 rows. In panels of
//! lines ([`RowLayout::PanelLines`]) each 4 rows a kernel reads side by side are one stream, a
//! 64-byte line of each in turn ([`row_at`]).

use super::dequant_panel::{matmul_dequant, Bf16Native};
use super::generic;
use super::layout::{
    block_width, check_matmul, check_row_axpy, dt, row_bytes, simd_code, simd_factor, RowScale,
};
use super::{OutMatrix, XKey};
use jing_tensor::{panels, RowLayout, Weight};
use std::ops::Range;

/// `x` in the layout an [`Isa::prepare_x`] chose, and what it is of.
struct PreparedX {
    buf: Vec<f32>,
    /// A token panel of `buf` times one row block's FP8 scales ([`Isa::fuses_fp8_scales`]),
    /// remade within each matmul call whenever the row block or the panel changes.
    scaled: Vec<f32>,
    /// The `x` the buffer holds, when it was named ([`with_x_key`]), with the ISA, dtype, K,
    /// scale width and token count it was prepared for; and the factor `prepare_x` returned.
    held: Option<(PreparedFor, Option<f32>)>,
}

type PreparedFor = (XKey, std::any::TypeId, u8, usize, usize, usize);

thread_local! {
    /// This thread's prepared `x`.
    static PREPARED_X: std::cell::RefCell<PreparedX> =
        const { std::cell::RefCell::new(PreparedX {
            buf: Vec::new(),
            scaled: Vec::new(),
            held: None,
        }) };
    /// The name of the `x` of the matmul calls being made on this thread ([`with_x_key`]).
    static X_KEY: std::cell::Cell<Option<XKey>> = const { std::cell::Cell::new(None) };
}

/// Runs `f`, whose float matmul calls on this thread all multiply the activations `key` names:
/// the layout [`Isa::prepare_x`] writes is then made once per thread and matmul, not once per
/// chunk of rows the thread claims (a chunk is a few dozen rows: rearranging all of `x` each
/// time cost as much as a tenth of an expert's matmul). The caller keeps keys unique: one key,
/// one `x` (see [`XKey`]).
pub(crate) fn with_x_key<T>(key: XKey, f: impl FnOnce() -> T) -> T {
    /// Clears the key when `f` returns or unwinds, so that no later call inherits it.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            X_KEY.set(None);
        }
    }
    X_KEY.set(Some(key));
    let _reset = Reset;
    f()
}

/// Weight rows per [`Isa::dot_rows`] call.
pub(crate) const ROWS: usize = 4;
/// Most tokens per [`Isa::dot_rows`] call (4 x 4 accumulators fill half of AVX-512's registers).
pub(crate) const MAX_TOKENS: usize = 4;
/// Bytes of `x` per token panel: the panel is re-read once per row group, so it should stay in
/// L2 (half of a 1 MiB L2).
const PANEL_BYTES: usize = 512 * 1024;

/// `R` weight rows as [`Isa::dot_rows`] reads them.
pub(crate) struct RowGroup<'a, const R: usize> {
    /// First byte of each row (`cols` elements of the dtype follow).
    pub ptr: [*const u8; R],
    /// Each row's block scales (already times the factor of the `x` layout).
    pub scale: [RowScale<'a>; R],
    /// K.
    pub cols: usize,
    /// Columns per scale block (`cols` when unscaled).
    pub width: usize,
    /// Whether the rows are a run in lines (`RowLayout::PanelLines`): a row's bytes then lie a
    /// 64-byte line at a time, the run's other rows' lines between ([`row_at`]).
    pub lines: bool,
    /// Whether `x` is a token panel times the rows' block scales ([`FusedScales`]), in the
    /// layout [`Isa::pack_fused_x`] left it in.
    pub fused: bool,
}

/// Where byte `b` of a row lies from its [`RowGroup::ptr`], for rows in lines (`LINES`, see
/// [`RowGroup::lines`]) or not. A kernel reads at most a line from there (its steps are whole
/// fractions of a line, and rows in lines are whole lines). A const parameter, so that the
/// kernels for rows not in lines stay as they were: a run-time choice in every step cost the
/// bf16 kernel a seventh of its rate from DRAM.
#[inline(always)]
pub(crate) fn row_at<const LINES: bool>(b: usize) -> usize {
    match LINES {
        true => panels::line_at(b),
        false => b,
    }
}

/// The inner kernels an ISA provides. Implementors are zero-sized markers; every method may
/// only be called on a CPU that has the ISA's features.
pub(crate) trait Isa: 'static {
    /// For each of the `R` rows of `g` and each token `t < tokens`:
    /// `Σ_cb scale[r](cb) · Σ_{k ∈ cb} x_t[k] · W_r[k]` at `[r][t]` (the rest of each row of
    /// the result is 0), `W` decoded from dtype `D`, `x` in the layout [`Isa::prepare_x`] chose
    /// and `g`'s scales multiplied by the factor it returned.
    ///
    /// # Safety
    /// The CPU has the ISA's features; `1 <= tokens <= MAX_TOKENS`; each `g.ptr[r]` has
    /// `g.cols` elements of `D`; token `t` has `g.cols` f32 at `x + t · x_stride`.
    unsafe fn dot_rows<const D: u8, const R: usize>(
        g: &RowGroup<'_, R>,
        x: *const f32,
        x_stride: usize,
        tokens: usize,
    ) -> [[f32; MAX_TOKENS]; R];

    /// The layout of `x` (`[m, K]`) that [`Isa::dot_rows`] reads for dtype `D` with scale blocks
    /// `width` wide: `None` to read `x` as it is, with block scales times
    /// [`simd_factor`]`(D)`; or `Some(factor)` after writing the ISA's own layout of `x` into
    /// `buf` (same length), with block scales times `factor`. Called once per matmul (see
    /// [`with_x_key`]), so anything done here is amortized over all rows.
    fn prepare_x<const D: u8>(
        x: &[f32],
        k: usize,
        width: usize,
        buf: &mut Vec<f32>,
    ) -> Option<f32> {
        let _ = (x, k, width, buf);
        None
    }

    /// Whether the FP8 [`Isa::dot_rows`] may instead be handed `x` (in the layout of
    /// [`Isa::prepare_x`], which returned a factor `p`) already multiplied by the scales of
    /// the rows' scale block (times `p / FP8_FUSED_FACTOR`), every column times its column
    /// block's, and told that all K columns are one block ([`FusedScales`]). The kernel's `x`
    /// layout must then read the same for one block of K columns as for blocks `width` wide.
    /// The kernel saves a sum and a multiply per row and block, and restarting its chains of
    /// FMAs: the AVX-512 kernel read `[256, 2048]` 1.11x as fast in L2 (22.9 → 25.5 GB/s, one
    /// Zen 4 thread).
    fn fuses_fp8_scales(width: usize) -> bool {
        let _ = width;
        false
    }

    /// Rearranges `x` (`[tokens, K]`, in the layout of [`Isa::prepare_x`] times the scales,
    /// [`FusedScales`]) once per row block and token panel for a kernel that reads the fused
    /// form otherwise (handed to [`Isa::dot_rows`] with [`RowGroup::fused`]). Does nothing by
    /// default.
    fn pack_fused_x(x: &mut [f32], k: usize) {
        let _ = (x, k);
    }

    /// `y[k] += a[i] · scale_i(k / width) · W_i[k]` for each of the `N` rows of `rows` in
    /// turn, `W` decoded from dtype `D` (FP8 as `code · 2^-8`, the scales including
    /// [`simd_factor`]): each element one fused multiply-add per row, in row order, so the
    /// result is that of `N` calls of one row.
    ///
    /// # Safety
    /// The CPU has the ISA's features; each row of `rows` has `y.len()` elements of `D`.
    unsafe fn row_axpy<const D: u8, const N: usize>(rows: &AxpyRows<'_, N>, y: &mut [f32]);
}

/// Weight rows a `row_axpy` kernel adds to `y` in one pass, each times its coefficient.
pub(crate) struct AxpyRows<'a, const N: usize> {
    /// Where each row's first element is.
    pub ptr: [*const u8; N],
    pub scale: [RowScale<'a>; N],
    /// The rows' coefficients.
    pub a: [f32; N],
    /// Columns per scale block (K when unscaled).
    pub width: usize,
}

/// Rows one `row_axpy` kernel call adds: `y` is loaded and stored once for all of them. One
/// row a call (the load, one FMA and the store of `y` per 16 weights) took a V3-shaped layer's
/// W_UK (128 heads of `[128, 512]` FP8 rows, one Zen 4 thread) 0.64-0.81 ms from L3; a head a
/// call, 8 rows a pass, 0.55-0.57 (4 rows: 0.57, 16: 0.59; docs/benchmarks.md, "eighteenth
/// session").
const AXPY_ROWS: usize = 8;

/// The `row_axpy` of [`RowAxpyFn`](super::RowAxpyFn) on ISA `I`; weights no SIMD kernel reads go
/// to the generic version.
///
/// # Safety
/// The CPU has `I`'s features.
pub(crate) unsafe fn row_axpy<I: Isa>(w: &Weight, r0: usize, a: &[f32], y: &mut [f32]) {
    let Some(d) = simd_code(w) else {
        return generic::row_axpy(w, r0, a, y);
    };
    check_row_axpy(w, r0, a.len(), y);
    // SAFETY: (every arm) the caller guarantees the CPU features; `check_row_axpy` checked that
    // rows `r0..r0 + a.len()` exist and have `y.len()` elements.
    unsafe {
        match d {
            dt::F32 => axpy_rows::<I, { dt::F32 }>(w, r0, a, y),
            dt::BF16 => axpy_rows::<I, { dt::BF16 }>(w, r0, a, y),
            dt::F16 => axpy_rows::<I, { dt::F16 }>(w, r0, a, y),
            _ => axpy_rows::<I, { dt::F8 }>(w, r0, a, y),
        }
    }
}

/// [`row_axpy`] of rows of dtype `D`: [`AXPY_ROWS`] a kernel call, then one at a time.
///
/// # Safety
/// As [`row_axpy`], with `D` the dtype code of `w` and the shapes checked.
unsafe fn axpy_rows<I: Isa, const D: u8>(w: &Weight, r0: usize, a: &[f32], y: &mut [f32]) {
    let width = block_width(w).unwrap_or(y.len()).max(1);
    let mut i = 0;
    while i < a.len() {
        // SAFETY: (both) forwarded from the caller; the group's rows are within r0..r0 + a.len().
        if i + AXPY_ROWS <= a.len() {
            unsafe { axpy_group::<I, D, AXPY_ROWS>(w, r0 + i, &a[i..], width, y) };
            i += AXPY_ROWS;
        } else {
            unsafe { axpy_group::<I, D, 1>(w, r0 + i, &a[i..], width, y) };
            i += 1;
        }
    }
}

/// Rows `r..r + N` of [`axpy_rows`], with coefficients `a[..N]`.
///
/// # Safety
/// As [`axpy_rows`]; rows `r..r + N` exist and `a` has `N` values at least.
#[inline(always)]
unsafe fn axpy_group<I: Isa, const D: u8, const N: usize>(
    w: &Weight,
    r: usize,
    a: &[f32],
    width: usize,
    y: &mut [f32],
) {
    let rows = AxpyRows::<N> {
        ptr: std::array::from_fn(|i| row_bytes(w, r + i).as_ptr()),
        scale: std::array::from_fn(|i| RowScale::of(w, r + i, simd_factor(D))),
        a: std::array::from_fn(|i| a[i]),
        width,
    };
    // SAFETY: the CPU has the features (caller); each row has K = y.len() elements of `D`
    // (`check_row_axpy`).
    unsafe { I::row_axpy::<D, N>(&rows, y) }
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
        stored: StoredRows::of(w),
        m,
        k,
        rows,
        y,
    };
    if k == 0 {
        return p.zeros();
    }
    // SAFETY: (every arm) the caller guarantees the CPU features and the contract on `y`;
    // `check_matmul` checked the shapes the kernels rely on.
    unsafe {
        match d {
            dt::F32 => p.run::<I, { dt::F32 }>(x),
            dt::BF16 => p.run::<I, { dt::BF16 }>(x),
            dt::F16 => p.run::<I, { dt::F16 }>(x),
            _ => p.run::<I, { dt::F8 }>(x),
        }
    }
}

/// The `rows_dot` of [`RowsDotFn`](super::RowsDotFn) on ISA `I`: the cache rows go 4 at a time
/// through [`Isa::dot_rows`] as f32 weight rows (against up to 4 heads per call), as a matmul's
/// would, in place. The f32 kernels read `x` as it is (no [`Isa::prepare_x`] layout).
///
/// # Safety
/// The CPU has `I`'s features.
pub(crate) unsafe fn rows_dot<I: Isa>(
    q: &[f32],
    m: usize,
    kv: &[f32],
    stride: usize,
    s: &mut [f32],
) {
    let (k, n) = generic::rows_shape(q.len(), m, kv.len(), stride, s.len());
    if k == 0 {
        s.fill(0.0);
        return;
    }
    let mut j = 0;
    while j < n {
        if j + ROWS <= n {
            // SAFETY: forwarded from the caller; rows j..j + ROWS < n.
            unsafe { rows_dot_group::<I, ROWS>(q, m, k, kv, stride, j, s) };
            j += ROWS;
        } else {
            // SAFETY: as above, one row.
            unsafe { rows_dot_group::<I, 1>(q, m, k, kv, stride, j, s) };
            j += 1;
        }
    }
}

/// Cache rows `j..j + R` of [`rows_dot`] against every head.
///
/// # Safety
/// The CPU has `I`'s features; the shapes were checked (`rows_shape`) and `j + R <= n`.
unsafe fn rows_dot_group<I: Isa, const R: usize>(
    q: &[f32],
    m: usize,
    k: usize,
    kv: &[f32],
    stride: usize,
    j: usize,
    s: &mut [f32],
) {
    let n = s.len() / m;
    let g = RowGroup::<R> {
        ptr: std::array::from_fn(|r| kv[(j + r) * stride..][..k].as_ptr().cast()),
        scale: std::array::from_fn(|_| RowScale::unscaled(simd_factor(dt::F32))),
        cols: k,
        width: k,
        lines: false,
        fused: false,
    };
    for t0 in (0..m).step_by(MAX_TOKENS) {
        let count = MAX_TOKENS.min(m - t0);
        // SAFETY: the CPU has the features (caller); each row of `g` has K f32 (the slices
        // above); heads t0..t0 + count of `q` have K values each.
        let out = unsafe { I::dot_rows::<{ dt::F32 }, R>(&g, q[t0 * k..].as_ptr(), k, count) };
        for (r, per_head) in out.iter().enumerate() {
            for (i, &v) in per_head[..count].iter().enumerate() {
                s[(t0 + i) * n + j + r] = v;
            }
        }
    }
}

/// A matmul of a GGUF block weight: from [`DEQUANT_MIN_TOKENS`](super::DEQUANT_MIN_TOKENS)
/// tokens the float tiles over dequantized chunks ([`matmul_dequant`]), below it `matmul_q`
/// with `x` quantized once for the call. `native` is the AVX512-BF16 tile, where the CPU has it.
///
/// # Safety
/// The CPU has `I`'s features (and `native`'s), and the [`MatmulFn`](super::MatmulFn)
/// contract on `y` holds.
pub(crate) unsafe fn matmul_quantized<I: Isa>(
    w: &Weight,
    x: &[f32],
    m: usize,
    rows: Range<usize>,
    y: &OutMatrix,
    matmul_q: super::MatmulQFn,
    native: Option<Bf16Native>,
) {
    check_matmul(w, x, m, &rows, y);
    if m >= super::DEQUANT_MIN_TOKENS {
        // SAFETY: forwarded from the caller; `check_matmul` checked the shapes.
        return unsafe { matmul_dequant::<I>(w, x, m, rows, y, native) };
    }
    matmul_q(w, &super::QuantX::new(w.dtype, x, m), rows, y)
}

/// One checked matmul call.
struct Problem<'a, 'y> {
    w: &'a Weight,
    stored: StoredRows<'a>,
    m: usize,
    k: usize,
    rows: Range<usize>,
    y: &'a OutMatrix<'y>,
}

impl Problem<'_, '_> {
    /// K = 0: every output is an empty sum.
    fn zeros(&self) {
        for i in 0..self.m {
            for n in self.rows.clone() {
                // SAFETY: the caller owns columns `rows` of `y` (MatmulFn contract).
                unsafe { self.y.write(i, n, 0.0) };
            }
        }
    }

    /// # Safety
    /// As [`matmul`], with `D` the dtype code of `self.w`, `k > 0` and `x` checked.
    unsafe fn run<I: Isa, const D: u8>(&self, x: &[f32]) {
        let k = self.k;
        let width = block_width(self.w).unwrap_or(k);
        // The rearranged x in this thread's kept buffer (decode steps must not allocate),
        // prepared again unless it already holds this x (`with_x_key`).
        PREPARED_X.with_borrow_mut(|p| {
            let PreparedX { buf, scaled, held } = p;
            let named = X_KEY
                .get()
                .map(|key| (key, std::any::TypeId::of::<I>(), D, k, width, self.m));
            let prepared = match (&*held, named) {
                (Some((h, factor)), Some(named)) if *h == named => *factor,
                _ => {
                    let factor = I::prepare_x::<D>(x, k, width, buf);
                    *held = named.map(|n| (n, factor));
                    factor
                }
            };
            let (x, factor) = match prepared {
                Some(factor) => (&buf[..], factor),
                None => (x, simd_factor(D)),
            };
            assert_eq!(x.len(), self.m * k, "prepare_x keeps the length of x");
            let mut fused = (D == dt::F8
                && prepared.is_some()
                && self.w.scale.is_some()
                && I::fuses_fp8_scales(width))
            .then(|| FusedScales::new(scaled, factor));
            // Rows go by blocks, each in one scale block (for `FusedScales`): a group of 64 in
            // panels, 4 rows as stored.
            // Columns per panel (one panel of all K for rows as stored).
            let (block, cols) = match self.stored.panels {
                true => (panels::ROWS, panels::PANEL_COLS),
                false => (ROWS, k),
            };
            let panel = (PANEL_BYTES / (4 * k)).max(1).div_ceil(MAX_TOKENS) * MAX_TOKENS;
            for p0 in (0..self.m).step_by(panel) {
                let tokens = p0..self.m.min(p0 + panel);
                let mut b0 = self.rows.start;
                while b0 < self.rows.end {
                    let b1 = self.rows.end.min((b0 / block + 1) * block);
                    // The block's rows in one scale block: `x` times that block's scales.
                    let fused_x = fused
                        .as_mut()
                        .and_then(|f| f.x_for::<I>(self.w, b0..b1, x, k, width, tokens.clone()));
                    let against = match fused_x {
                        Some(xs) => Against {
                            x: xs,
                            width: k,
                            factor: FP8_FUSED_FACTOR,
                            fused: true,
                        },
                        None => Against {
                            x,
                            width,
                            factor,
                            fused: false,
                        },
                    };
                    // Column panels of the block in turn, each against its piece of `x`.
                    for k0 in (0..k).step_by(cols) {
                        let part = Part {
                            k0,
                            cols: cols.min(k - k0),
                        };
                        let mut n = b0;
                        while n < b1 {
                            let r = if n + ROWS <= b1 { ROWS } else { 1 };
                            // SAFETY: (both) forwarded from the caller; rows n..n+r are within
                            // `rows`; a fused `x` is the panel `tokens` of `[m, K]`, laid out
                            // as `x` is; `part` is columns of K.
                            unsafe {
                                if r == ROWS {
                                    self.row_group::<I, D, ROWS>(n, &part, &against, &tokens)
                                } else {
                                    self.row_group::<I, D, 1>(n, &part, &against, &tokens)
                                }
                            };
                            n += r;
                        }
                    }
                    b0 = b1;
                }
            }
        })
    }

    /// Rows `n..n + R` times the tokens `tokens` of `a.x`, over the columns of `part`, written
    /// to `y` (added to it, for a part after the first).
    ///
    /// # Safety
    /// As [`Problem::run`]; `n + R <= rows.end`; `tokens` within `0..m`; `a.x` is `[m, K]` (or
    /// the panel `tokens`, when `a.fused`) in the layout `a.factor` belongs to; `part` is
    /// columns of K and, unless it is all of them, whole scale blocks.
    unsafe fn row_group<I: Isa, const D: u8, const R: usize>(
        &self,
        n: usize,
        part: &Part,
        a: &Against<'_>,
        tokens: &Range<usize>,
    ) {
        let Against {
            x,
            width,
            factor,
            fused,
        } = *a;
        // One block of K columns (unscaled, or fused): one block of the part's.
        let (width, cb0) = match width >= self.k {
            true => (part.cols, 0),
            false => (width, part.k0 / width),
        };
        let g = RowGroup::<R> {
            ptr: std::array::from_fn(|r| self.stored.row(n + r, part.k0)),
            scale: std::array::from_fn(|r| match fused {
                true => RowScale::unscaled(factor),
                false => RowScale::of(self.w, n + r, factor).skip_blocks(cb0),
            }),
            cols: part.cols,
            width,
            lines: self.stored.lines,
            fused,
        };
        let first = if fused { tokens.start } else { 0 };
        for t0 in tokens.clone().step_by(MAX_TOKENS) {
            let count = MAX_TOKENS.min(tokens.end - t0);
            let xt = x[(t0 - first) * self.k + part.k0..].as_ptr();
            // SAFETY: the CPU has the features (caller); `g` holds R rows of `w`, the part's
            // columns of each; tokens t0..t0 + count of `x` have the part's columns each.
            let out = unsafe { I::dot_rows::<D, R>(&g, xt, self.k, count) };
            for (r, per_token) in out.iter().enumerate() {
                for (i, &v) in per_token[..count].iter().enumerate() {
                    // SAFETY: the caller owns columns `rows` of `y` (MatmulFn contract), and
                    // `n + r` is one of them.
                    unsafe {
                        match part.k0 {
                            0 => self.y.write(t0 + i, n + r, v),
                            _ => self.y.add(t0 + i, n + r, v),
                        }
                    }
                }
            }
        }
    }
}

/// The `x` a block of rows is multiplied against.
#[derive(Clone, Copy)]
struct Against<'x> {
    /// `[m, K]` in the ISA's layout ([`Isa::prepare_x`]), or, when `fused`, the token panel
    /// times the rows' block scales ([`FusedScales`]).
    x: &'x [f32],
    /// Columns per scale block (K when one block).
    width: usize,
    /// What the rows' scales are multiplied by (with `fused`, the one multiplier of every
    /// row).
    factor: f32,
    fused: bool,
}

/// The columns `k0..k0 + cols` of a matmul (a part after the first adds to the sums).
struct Part {
    k0: usize,
    cols: usize,
}

/// A weight's stored rows, looked up once per matmul call: `Weight::row_data` for each row of
/// each group (its layout check, the length, the bytes behind their owner) was 5% of an FP8
/// matvec's time in L2.
struct StoredRows<'a> {
    data: &'a [u8],
    row_len: usize,
    size: usize,
    /// Whether the rows are in panels ([`RowLayout::Panels`], [`RowLayout::PanelLines`]) or
    /// as stored.
    panels: bool,
    /// Whether they are [`RowLayout::PanelLines`].
    lines: bool,
}

impl<'a> StoredRows<'a> {
    fn of(w: &'a Weight) -> Self {
        let (panels, lines) = match w.layout {
            RowLayout::Rows => (false, false),
            RowLayout::Panels => (true, false),
            RowLayout::PanelLines => (true, true),
            other => panic!("{}: the float kernels do not read {other:?}", w.name),
        };
        let row_len = w.row_bytes();
        StoredRows {
            data: &w.data.as_slice()[..w.rows() * row_len],
            row_len,
            size: w.dtype.size(),
            panels,
            lines,
        }
    }

    /// Where row `r` starts at column `k0` ([`RowGroup::ptr`]; in panels, `k0` starts one).
    #[inline]
    fn row(&self, r: usize, k0: usize) -> *const u8 {
        let o = k0 * self.size;
        let at = match self.panels {
            false => r * self.row_len + o,
            true => {
                let group = r / panels::ROWS * panels::ROWS * self.row_len;
                group + panels::at(r % panels::ROWS, o, self.row_len, self.size, self.lines)
            }
        };
        self.data[at..].as_ptr()
    }
}

/// The one multiplier of every row when an FP8 kernel reads `x` times the block scales
/// ([`FusedScales`]); the prepared `x` is multiplied by `s · p / 2^30` for the factor `p` of
/// its layout. For the exact kernels' layout
/// ([`FP8_X_SCALE`](super::layout::FP8_X_SCALE)) `x` is then `x · s · 2^90`
/// (prepared `x · 2^60`, times `s · 2^60 / 2^30`), within f32 range for `|x · s| < 2^38`, and
/// the products `code · 2^-120 · x · s · 2^90` are normal floats for `|code · x · s| >= 2^-96`;
/// this factor takes the 2^-30 back. For the bf16 kernel's (`p = 1`, the weights decoded to
/// their values) `x` is `x · s · 2^-30`, a normal bf16 for `|x · s| >= 2^-96`.
const FP8_FUSED_FACTOR: f32 = (1u64 << 30) as f32;

/// A panel of the prepared FP8 `x` times the scales of one row block (the `[128, 128]` blocks
/// of DeepSeek's checkpoints): `x_s[t][k] = x[t][k] · scale(rb, k / width)`, so that the kernel
/// sums each row at once instead of block by block, then multiplies by a single factor. The
/// rounding differs from the blockwise sum (the scale multiplies each `x` rather than each
/// block's sum) and is as exact. Made again when a row group is of another row block or the
/// panel moves on: for decode once per 128 rows, against 128 rows of work.
struct FusedScales<'b> {
    buf: &'b mut Vec<f32>,
    /// The factor of the prepared `x`'s layout ([`Isa::prepare_x`]).
    factor: f32,
    /// The rows of the scale block and the first token of the panel that `buf` holds.
    held: Option<(Range<usize>, usize)>,
}

impl<'b> FusedScales<'b> {
    fn new(buf: &'b mut Vec<f32>, factor: f32) -> Self {
        FusedScales {
            buf,
            factor,
            held: None,
        }
    }

    /// `x` (`[m, K]`, prepared) times the scales of `rows`, for the panel `tokens`, or `None`
    /// if the rows are not all in one scale block.
    fn x_for<I: Isa>(
        &mut self,
        w: &Weight,
        rows: Range<usize>,
        x: &[f32],
        k: usize,
        width: usize,
        tokens: Range<usize>,
    ) -> Option<&[f32]> {
        let last = rows.end - 1;
        let held = |(block, t0): &(Range<usize>, usize)| {
            block.contains(&rows.start) && block.contains(&last) && *t0 == tokens.start
        };
        if !self.held.as_ref().is_some_and(held) {
            let s = w.scale.as_ref()?;
            // The rows of `rows.start`'s scale block (of this view of the weight).
            let first = (rows.start + s.row_offset) / s.block[0] * s.block[0];
            let block = first.saturating_sub(s.row_offset)..first + s.block[0] - s.row_offset;
            if !block.contains(&last) {
                return None;
            }
            let scales = RowScale::of(w, rows.start, self.factor / FP8_FUSED_FACTOR);
            let panel = &x[tokens.start * k..tokens.end * k];
            self.buf.resize(panel.len(), 0.0);
            for (xt, dt) in panel.chunks(k).zip(self.buf.chunks_mut(k)) {
                let blocks = xt.chunks(width).zip(dt.chunks_mut(width));
                for (cb, (xb, db)) in blocks.enumerate() {
                    let s = scales.get(cb);
                    for (d, v) in db.iter_mut().zip(xb) {
                        *d = v * s;
                    }
                }
            }
            I::pack_fused_x(self.buf, k);
            self.held = Some((block, tokens.start));
        }
        Some(&self.buf[..])
    }
}
