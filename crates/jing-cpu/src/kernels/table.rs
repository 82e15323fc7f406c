//! The kernel table: one version of each kernel, chosen once for the CPU at hand. The backend
//! calls kernels through it, so the ISA is decided in exactly one place.

use super::{generic, OutMatrix, QuantX};
use jing_tensor::Weight;
use std::ops::Range;
use std::sync::OnceLock;

/// `y[i, n] = Σ_k x[i·K + k] · W[n, k]` for `i < m`, `n ∈ rows` (`x` is `[m, K]` row-major;
/// `W` is `[N, K]` in any float dtype, with its block scale applied per column block, see
/// [`generic::matmul`]). Dispatches on `w.dtype` internally.
///
/// Contract: `y` has `m` rows with `rows.end <= y.ld()`, and no other thread reads or writes the
/// elements `(i, n)`, `n ∈ rows`, during the call (a pool splits `0..N` between threads).
/// Panics if `x.len() != m · K` or `rows` is not within `0..N`.
pub type MatmulFn = fn(w: &Weight, x: &[f32], m: usize, rows: Range<usize>, y: &OutMatrix);

/// `y[i, n] = Σ_k x̂[i, k] · W[n, k]` for a GGUF block-quantized `W` and activations `x̂`
/// quantized once per matmul ([`QuantX`], shared by every `rows` range a thread claims):
/// integer dot products per block, then the block scales (see
/// [`generic::matmul_q`]). Same contract on `y` as [`MatmulFn`]; panics if `x` was quantized
/// for another block size or K.
pub type MatmulQFn = fn(w: &Weight, x: &QuantX, rows: Range<usize>, y: &OutMatrix);

/// From this many tokens, a [`MatmulFn`] with a GGUF block weight multiplies the dequantized
/// weights, rounded to bf16, with the activations rounded to bf16 (see `dequant_panel`: the
/// weights are decoded once per chunk and shared by all tokens, as prefill wants); below it,
/// the activations are quantized to 8 bits and the integer [`MatmulQFn`] runs (decode and
/// small batches: one pass over the weights, no scratch). Every table, the generic one
/// included, switches at the same `m`, so they compute the same thing. 16 (four 4-token tiles
/// per decoded chunk) is a first choice, not tuned per type or machine.
pub const DEQUANT_MIN_TOKENS: usize = 16;

/// `Σ a[k] · b[k]` (panics if the lengths differ).
pub type DotFn = fn(a: &[f32], b: &[f32]) -> f32;

/// `y[k] += a · x[k]` (panics if the lengths differ).
pub type AxpyFn = fn(a: f32, x: &[f32], y: &mut [f32]);

/// `y += Σ_i a[i] · W[r0 + i, :]`, dequantized with the block scale (`y.len() == K`), the rows
/// added in order, see [`generic::row_axpy`].
pub type RowAxpyFn = fn(w: &Weight, r0: usize, a: &[f32], y: &mut [f32]);

/// `s[i, j] = q_i · kv_j` for `i < m`, `j < n`: `q` is `[m, K]`, row `j` of the cache is
/// `kv_j = kv[j·stride..j·stride + K]`, `s` is `[m, n]` (`n = s.len() / m`). Attention scores
/// of `m` heads against cache rows where they lie: a matmul whose weight rows are strided (see
/// [`generic::rows_dot`]). Panics if the shapes disagree ([`generic::rows_shape`]).
pub type RowsDotFn = fn(q: &[f32], m: usize, kv: &[f32], stride: usize, s: &mut [f32]);

/// `o_i += Σ_j p[i, j] · kv_j` for `i < m`: `p` is `[m, n]`, `o` is `[m, K]`, `kv_j` as in
/// [`RowsDotFn`]. The attention's sum of values weighted by the probabilities (see
/// [`generic::rows_axpy`]). Panics if the shapes disagree.
pub type RowsAxpyFn = fn(p: &[f32], m: usize, kv: &[f32], stride: usize, o: &mut [f32]);

/// One version of every kernel. Cheap to copy; build it once with [`KernelTable::detect`].
#[derive(Clone, Copy, Debug)]
pub struct KernelTable {
    /// `"generic"`, `"avx2"` or `"avx512"` (x86-64), `"neon"` or `"neon-dotprod"` (aarch64).
    pub name: &'static str,
    pub matmul: MatmulFn,
    /// The matmul of GGUF block weights with pre-quantized activations (`matmul` quantizes
    /// `x` itself and calls this for such weights).
    pub matmul_q: MatmulQFn,
    pub dot: DotFn,
    pub axpy: AxpyFn,
    pub row_axpy: RowAxpyFn,
    pub rows_dot: RowsDotFn,
    pub rows_axpy: RowsAxpyFn,
    /// Whether `matmul_q` has kernels for `Q4_K`, `Q6_K`, `Q8_0` and `Q5_0` rows interleaved by 16
    /// (`jing_tensor::RowLayout::interleaved`), so that the backend interleaves such weights as
    /// they load. Every table computes with them (the generic kernel takes them apart).
    pub interleaved_rows16: bool,
    /// Whether the backend loads f32, f16 and bf16 weights in panels of lines
    /// (`jing_tensor::RowLayout::PanelLines`: each 4 rows the kernels read side by side one
    /// stream) and FP8 weights with rows longer than a panel in column panels
    /// (`jing_tensor::RowLayout::Panels`), which `matmul` reads panel by panel so that each
    /// piece of `x` stays in L1. Every table computes with them (the generic kernel gathers
    /// each row from its panels).
    pub float_panels: bool,
    /// What FP8 matmuls multiply the weights with: `x` itself, or `x` rounded to bf16
    /// ([`KernelTable::with_fp8_activations`]).
    pub fp8_activations: Fp8Activations,
    /// The matmul of [`Fp8Activations::Bf16`] (`matmul` for other weights).
    pub matmul_fp8_bf16: MatmulFn,
    /// Whether, with [`Fp8Activations::Bf16`], the backend loads FP8 weights in panels of
    /// lines (`jing_tensor::Weight::fp8_in_panel_lines`), which `matmul_fp8_bf16` then reads
    /// as one stream per 4 rows. Only that kernel and the generic one read FP8 in lines.
    pub fp8_bf16_lines: bool,
}

/// What the FP8 matmuls (DeepSeek's block-scaled `f8_e4m3` weights) multiply the exact weights
/// with. Both sum in f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fp8Activations {
    /// `x` as it is: `Σ x · w`, the reference's values (the default).
    #[default]
    F32,
    /// `x` rounded to bf16 (to nearest even; alone, or times its block's scale where a kernel
    /// folds the scales into `x`): `Σ bf16(x) · w`, as DeepSeek's own inference code
    /// runs these weights (bf16 activations; it also rounds `w · scale` to bf16, which this does
    /// not). The relative error 2^-9 per activation is finer than the 8-bit blocks GGUF
    /// matmuls quantize activations to, and on CPUs with AVX512-BF16 the products take one
    /// `vdpbf16ps` per 32 weights: one Zen 4 thread streams FP8 matmuls 1.1-1.15x as fast
    /// (docs/benchmarks.md, "sixteenth session"). Other CPUs compute the same values with
    /// their exact kernels.
    Bf16,
}

impl std::str::FromStr for Fp8Activations {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Fp8Activations::F32),
            "bf16" => Ok(Fp8Activations::Bf16),
            _ => Err(format!(
                "`{s}` is not an FP8 activation type: use f32 or bf16"
            )),
        }
    }
}

impl KernelTable {
    /// The plain scalar kernels (the oracle; runs anywhere).
    pub fn generic() -> KernelTable {
        KernelTable {
            name: "generic",
            matmul: generic::matmul,
            matmul_q: generic::matmul_q,
            dot: generic::dot,
            axpy: generic::axpy,
            row_axpy: generic::row_axpy,
            rows_dot: generic::rows_dot,
            rows_axpy: generic::rows_axpy,
            interleaved_rows16: false,
            float_panels: false,
            fp8_activations: Fp8Activations::F32,
            matmul_fp8_bf16: generic::matmul_fp8_bf16,
            fp8_bf16_lines: false,
        }
    }

    /// Whether the backend loads FP8 weights in panels of lines for this table (see
    /// [`KernelTable::fp8_bf16_lines`]).
    pub fn fp8_in_lines(&self) -> bool {
        self.fp8_activations == Fp8Activations::Bf16 && self.fp8_bf16_lines
    }

    /// This table with FP8 matmuls multiplying `x` as `a` says (the tables
    /// [`KernelTable::available`] lists multiply `x` itself).
    pub fn with_fp8_activations(self, a: Fp8Activations) -> KernelTable {
        match a {
            Fp8Activations::Bf16 => KernelTable {
                matmul: self.matmul_fp8_bf16,
                fp8_activations: a,
                ..self
            },
            Fp8Activations::F32 => KernelTable::by_name(self.name).unwrap_or(self),
        }
    }

    /// The best table this CPU can run, detected on the first call and cached.
    pub fn detect() -> KernelTable {
        static BEST: OnceLock<KernelTable> = OnceLock::new();
        *BEST.get_or_init(|| {
            KernelTable::available()
                .pop()
                .expect("the generic table is always available")
        })
    }

    /// Every table this CPU can run, slowest first (`generic` first, the best last); tests run
    /// each of them.
    pub fn available() -> Vec<KernelTable> {
        #[allow(unused_mut)]
        let mut tables = vec![KernelTable::generic()];
        #[cfg(target_arch = "x86_64")]
        {
            tables.extend(super::x86_64::avx2::table());
            tables.extend(super::x86_64::avx512::table());
        }
        #[cfg(target_arch = "aarch64")]
        {
            tables.extend(super::aarch64::neon::table());
            tables.extend(super::aarch64::neon::table_dotprod());
        }
        tables
    }

    /// The available table called `name` (for a command-line override or a benchmark).
    pub fn by_name(name: &str) -> Option<KernelTable> {
        KernelTable::available()
            .into_iter()
            .find(|t| t.name == name)
    }
}
