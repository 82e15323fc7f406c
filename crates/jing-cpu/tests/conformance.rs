//! Op conformance (design test #1): every op of [`jing_graph::Op`] is built into small graphs
//! with [`GraphBuilder`], fed seeded random data, and run on the f32 reference interpreter
//! ([`Reference`], f64 accumulation: the oracle) and on the CPU backend with every kernel table
//! this CPU runs ([`KernelTable::available`]) and 1, 2 and 3 threads. Outputs must agree:
//!
//! - bit for bit for copies and id ops (Embed, Input, Slice, Concat, Reshape, TakeRows, Rope,
//!   GatherCols, MoeSelect ids, KvWrite and the cache contents) and for single correctly rounded
//!   f32 operations (Add, Mul, Scale), which any correct backend computes identically;
//! - within a stated per-element bound for reductions and transcendental functions (each bound
//!   is derived next to the helper that computes it).
//!
//! Shapes cover decode (T = 1), prefill (T = 7, 33) and odd sizes (K = 1, 5, 127, 200, 300),
//! and weights come in every dtype the matmul reads: F32, F16, BF16 and F8E4M3 with 128x128
//! block scales (partial edge blocks both ways) plus smaller and odd block shapes.
//!
//! The error paths are checked too: a bad token id, a missing or wrongly sized host input, a
//! batch of the wrong size and cache misuse return their `ExecError` on both backends, and the
//! CPU backend keeps working after an error.
//!
//! Failures name the case, the backend (kernel table and thread count), the output, the worst
//! element and its error against the bound, for every backend that disagrees.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use jing_cpu::kernels::KernelTable;
use jing_cpu::CpuBackend;
use jing_graph::{
    Backend, Batch, CacheError, ExecError, Graph, GraphBuilder, GroupScore, KvCache, MlaForm,
    MlaWeights, Op, Outputs, Reference, RopeFreqs, RopeStyle,
};
use jing_tensor::{Bytes, DType, Weight};

// ---------------------------------------------------------------------------------------------
// Random data
// ---------------------------------------------------------------------------------------------

/// Marsaglia's xorshift64: reproducible test data from a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Values in (-1, 1); one in sixteen is tiny (f16 subnormal range, bf16 small normals).
    fn weights(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = self.uniform(-1.0, 1.0);
                if self.below(16) == 0 {
                    v * 1e-6
                } else {
                    v
                }
            })
            .collect()
    }

    /// A random F8E4M3 code other than the NaN codes 0x7f and 0xff.
    fn fp8_code(&mut self) -> u8 {
        loop {
            let c = self.next_u64() as u8;
            if c & 0x7f != 0x7f {
                return c;
            }
        }
    }
}

/// Unit roundoff of f32 (half an ulp of 1).
const U: f64 = f32::EPSILON as f64 / 2.0;

// ---------------------------------------------------------------------------------------------
// Weights in every stored format
// ---------------------------------------------------------------------------------------------

/// A stored weight format the matmul reads.
#[derive(Clone, Copy, Debug)]
enum Fmt {
    F32,
    F16,
    Bf16,
    /// F8E4M3 codes with one f32 scale per `block` (rows, cols) block.
    Fp8([usize; 2]),
}

/// DeepSeek's FP8 layout: 128x128 blocks.
const FP8: Fmt = Fmt::Fp8([128, 128]);
const ALL_FMTS: [Fmt; 4] = [Fmt::F32, Fmt::F16, Fmt::Bf16, FP8];

/// A random weight of `shape` (2-D for FP8) stored as `fmt`, values of magnitude about 1.
fn weight(rng: &mut Rng, name: &str, fmt: Fmt, shape: &[usize]) -> Arc<Weight> {
    let n: usize = shape.iter().product();
    let shape = shape.to_vec();
    let halfs =
        |bits: Vec<u16>| Bytes::from_vec(bits.iter().flat_map(|b| b.to_le_bytes()).collect());
    let w = match fmt {
        Fmt::F32 => Weight::from_f32(name, shape, &rng.weights(n)),
        Fmt::F16 => {
            let bits = rng
                .weights(n)
                .into_iter()
                .map(|v| half::f16::from_f32(v).to_bits());
            Weight::new(name, DType::F16, shape, halfs(bits.collect())).expect("f16 weight")
        }
        Fmt::Bf16 => {
            let bits = rng
                .weights(n)
                .into_iter()
                .map(|v| half::bf16::from_f32(v).to_bits());
            Weight::new(name, DType::BF16, shape, halfs(bits.collect())).expect("bf16 weight")
        }
        Fmt::Fp8(block) => {
            assert_eq!(shape.len(), 2, "fp8 weights are 2-D");
            let grid = [shape[0].div_ceil(block[0]), shape[1].div_ceil(block[1])];
            let codes: Vec<u8> = (0..n).map(|_| rng.fp8_code()).collect();
            // Codes reach ±448; scales bring the values to magnitude ~1 and differ per block.
            let scales = rng.vec(grid[0] * grid[1], 0.5 / 64.0, 2.0 / 64.0);
            Weight::new(name, DType::F8E4M3, shape, Bytes::from_vec(codes))
                .expect("fp8 weight")
                .with_block_scale(
                    &format!("{name}_scale_inv"),
                    &grid,
                    Bytes::from_f32(&scales),
                    block,
                )
                .expect("fp8 block scale")
        }
    };
    Arc::new(w)
}

/// Number of scale blocks along a row (1 for unscaled weights).
fn col_blocks(w: &Weight) -> usize {
    w.scale
        .as_ref()
        .map_or(1, |s| w.cols().div_ceil(s.block[1]))
}

// ---------------------------------------------------------------------------------------------
// Backends and the comparison driver
// ---------------------------------------------------------------------------------------------

/// Every kernel table this CPU runs, each with 1, 2 and 3 threads (3 splits most ops unevenly).
fn cpu_backends() -> &'static [CpuBackend] {
    static BACKENDS: OnceLock<Vec<CpuBackend>> = OnceLock::new();
    BACKENDS.get_or_init(|| {
        KernelTable::available()
            .into_iter()
            .flat_map(|k| [1, 2, 3].map(|n| CpuBackend::with_kernels(Some(n), k)))
            .collect()
    })
}

/// The reference and every CPU backend (for the error paths, which both must report).
fn all_backends() -> Vec<&'static dyn Backend> {
    static REFERENCE: Reference = Reference;
    let mut v: Vec<&'static dyn Backend> = vec![&REFERENCE];
    v.extend(cpu_backends().iter().map(|b| b as &dyn Backend));
    v
}

/// How an output is compared with the reference.
enum Check {
    /// Bit for bit (copies, ids, single correctly rounded operations).
    Exact,
    /// `|got - want| <= bound[i]` element by element.
    Bound(Vec<f64>),
    /// `|got - want| <= r · max|want|`.
    RelMax(f64),
    /// Results of dot products of length `k` over `nb` scale blocks, `abs_sum[i] = Σ|x·w|` of
    /// element `i`: each within [`dot_bound`], and the root mean square of
    /// `|err| / (u · Σ|x·w|)` at most [`DOT_RMS`] (see there).
    Dot {
        abs_sum: Vec<f64>,
        k: usize,
        nb: usize,
    },
}

/// One graph execution of a case (cases with a cache run several steps in order).
struct Step {
    graph: Graph,
    batch: Batch,
    checks: Vec<(String, Check)>,
}

impl Step {
    fn new(graph: Graph, batch: Batch) -> Step {
        Step {
            graph,
            batch,
            checks: Vec::new(),
        }
    }

    fn check(mut self, name: &str, c: Check) -> Step {
        self.checks.push((name.to_string(), c));
        self
    }
}

/// A cache for graphs that do not touch it.
fn no_cache() -> KvCache {
    KvCache::new(1, 1, 1)
}

/// The cache a case runs with: a fresh one per backend from `new`, compared with the
/// reference's after the last step over `slots` slots (every layer) with `check`.
struct CacheSpec<'a> {
    new: &'a dyn Fn() -> KvCache,
    slots: usize,
    check: Check,
}

/// Run `steps` in order on the reference and on every CPU backend (each with its own cache),
/// check every output of every step, then the caches. Panics listing every disagreement.
/// With `JING_CONFORMANCE_MARGINS` set, prints each output's worst `|err| / bound`.
fn conform(case: &str, steps: &[Step], cache: &CacheSpec) {
    for s in steps {
        let mut names: Vec<&str> = s.graph.outputs.iter().map(|(n, _)| n.as_str()).collect();
        let mut checked: Vec<&str> = s.checks.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        checked.sort_unstable();
        assert_eq!(
            names, checked,
            "{case}: every output needs exactly one check"
        );
    }
    let mut ref_cache = (cache.new)();
    let want: Vec<Outputs> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Reference
                .execute(&s.graph, &s.batch, &mut ref_cache)
                .unwrap_or_else(|e| panic!("{case}: reference failed at step {i}: {e}"))
        })
        .collect();
    let mut failures = Vec::new();
    let mut margins: Vec<(String, f64)> = Vec::new();
    let mut margin = |name: &str, r: f64| match margins.iter_mut().find(|(n, _)| n == name) {
        Some((_, m)) => *m = m.max(r),
        None => margins.push((name.to_string(), r)),
    };
    for b in cpu_backends() {
        let mut got_cache = (cache.new)();
        for (i, (s, want)) in steps.iter().zip(&want).enumerate() {
            let got = match b.execute(&s.graph, &s.batch, &mut got_cache) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{}: step {i}: error: {e}", b.name()));
                    break;
                }
            };
            for (name, check) in &s.checks {
                let (ws, wv) = want.get(name).expect("reference output");
                let Some((gs, gv)) = got.get(name) else {
                    failures.push(format!("{}: step {i}: no output `{name}`", b.name()));
                    continue;
                };
                match compare(check, gs, gv, ws, wv) {
                    Ok(r) => margin(name, r),
                    Err(msg) => failures.push(format!("{}: step {i}: `{name}`: {msg}", b.name())),
                }
            }
        }
        match same_cache(&got_cache, &ref_cache, cache.slots, &cache.check) {
            Ok(r) => margin("cache", r),
            Err(msg) => failures.push(format!("{}: cache: {msg}", b.name())),
        }
    }
    if std::env::var_os("JING_CONFORMANCE_MARGINS").is_some() {
        for (name, r) in &margins {
            eprintln!("margin {case}: `{name}` worst |err|/bound {r:.3e}");
        }
    }
    assert!(
        failures.is_empty(),
        "{case}: the CPU backend disagrees with the reference:\n  {}",
        failures.join("\n  ")
    );
}

/// One step, no cache.
fn conform1(case: &str, step: Step) {
    let cache = CacheSpec {
        new: &no_cache,
        slots: 0,
        check: Check::Exact,
    };
    conform(case, &[step], &cache);
}

/// Element `i`'s error and bound under `check` (`max_want` = max |want|).
fn element(check: &Check, i: usize, g: f32, w: f32, max_want: f64) -> (bool, f64, f64) {
    let err = (g as f64 - w as f64).abs();
    match check {
        Check::Exact => (g.to_bits() == w.to_bits(), err, 0.0),
        Check::Bound(b) => (err <= b[i], err, b[i]),
        Check::RelMax(r) => (err <= r * max_want, err, r * max_want),
        Check::Dot { abs_sum, k, nb } => {
            let b = dot_bound(*k, *nb, abs_sum[i]);
            (err <= b, err, b)
        }
    }
}

/// For [`Check::Dot`]: the root mean square over the elements of `|err| / (u · Σ|x·w|)`;
/// `None` for outputs of fewer than [`DOT_RMS_MIN`] elements.
fn dot_rms(gv: &[f32], wv: &[f32], abs_sum: &[f64]) -> Option<f64> {
    let (mut s, mut n) = (0.0f64, 0usize);
    for ((&g, &w), &a) in gv.iter().zip(wv).zip(abs_sum) {
        if a > 0.0 {
            let r = (g as f64 - w as f64).abs() / (U * a);
            s += r * r;
            n += 1;
        }
    }
    (n >= DOT_RMS_MIN).then(|| (s / n as f64).sqrt())
}

/// `Ok(worst |err| / bound)` (0 when all are exact), or the worst element described.
fn compare(
    check: &Check,
    gs: &[usize],
    gv: &[f32],
    ws: &[usize],
    wv: &[f32],
) -> Result<f64, String> {
    if gs != ws || gv.len() != wv.len() {
        return Err(format!(
            "shape {gs:?} ({} values), expected {ws:?} ({} values)",
            gv.len(),
            wv.len()
        ));
    }
    let max_want = wv.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    // The worst element: (error / bound, index, error, bound), and the number out of bound.
    let (mut worst, mut bad) = ((0.0f64, 0usize, 0.0f64, 0.0f64), 0usize);
    for (i, (&g, &w)) in gv.iter().zip(wv).enumerate() {
        let (ok, err, bound) = element(check, i, g, w, max_want);
        let ratio = match (ok, bound > 0.0) {
            (true, true) => err / bound,
            (true, false) => 0.0,
            (false, true) if !err.is_nan() => err / bound,
            (false, _) => f64::INFINITY,
        };
        bad += usize::from(!ok);
        if ratio > worst.0 || (!ok && bad == 1) {
            worst = (ratio, i, err, bound);
        }
    }
    if let Check::Dot { abs_sum, .. } = check {
        if let Some(rms) = dot_rms(gv, wv, abs_sum) {
            if bad == 0 && rms > DOT_RMS {
                return Err(format!(
                    "every element is within its bound, but the rms of |err| / (u · Σ|x·w|) \
                     is {rms:.2}, above {DOT_RMS}: precision was lost (e.g. activations or \
                     partial sums rounded below f32)"
                ));
            }
            worst.0 = worst.0.max(rms / DOT_RMS);
        }
    }
    if bad == 0 {
        return Ok(worst.0);
    }
    let (_, i, err, bound) = worst;
    Err(format!(
        "element {i} of {ws:?} is {:e} (bits {:#010x}), expected {:e} (bits {:#010x}): \
         |err| {err:e} > bound {bound:e}; {bad} of {} elements out of bound",
        gv[i],
        gv[i].to_bits(),
        wv[i],
        wv[i].to_bits(),
        gv.len()
    ))
}

/// The two caches hold the same positions in `slots` slots and rows that agree under `check`.
fn same_cache(got: &KvCache, want: &KvCache, slots: usize, check: &Check) -> Result<f64, String> {
    let mut worst = 0.0f64;
    for slot in 0..slots {
        for layer in 0..want.n_layers() {
            let (gl, wl) = (got.len(slot, layer), want.len(slot, layer));
            if gl != wl {
                return Err(format!(
                    "slot {slot} layer {layer}: {gl} positions, expected {wl}"
                ));
            }
            if wl == 0 {
                continue;
            }
            let (g, w) = (
                got.rows(slot, layer, gl).map_err(|e| e.to_string())?,
                want.rows(slot, layer, wl).map_err(|e| e.to_string())?,
            );
            let shape = [wl, want.width()];
            let r = compare(check, &shape, g, &shape, w)
                .map_err(|m| format!("slot {slot} layer {layer}: {m}"))?;
            worst = worst.max(r);
        }
    }
    Ok(worst)
}

/// A batch of one sequence in slot 0 at positions `start..start + t` with host inputs.
fn seq_batch(t: usize, start: usize, inputs: Vec<(&str, Vec<f32>)>) -> Batch {
    let mut b = Batch::sequence(0, start, &vec![0; t]);
    b.inputs = inputs
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    b
}

// ---------------------------------------------------------------------------------------------
// Error bounds
// ---------------------------------------------------------------------------------------------

/// The bound of a length-`k` dot product computed in f32 in any summation order, against the
/// f64 reference: `2 · (k + nb + 4) · u · Σ|x·w|`, the same bound the kernels' own unit tests
/// use. Derivation: any f32 summation order has `|err| <= γ_k · Σ|x·w|`, `γ_k ≈ k·u`; a
/// block-scaled weight adds one rounding per block for the scale product and `nb` additions of
/// block totals; the reference's final rounding to f32 adds `u · |y| <= u · Σ|x·w|`; the factor
/// 2 covers `1 / (1 - k·u)` and the reference's own `row_to_f32` rounding of `code · scale`.
/// A bug (a dropped, repeated or misplaced term, a wrong scale) moves a result by about
/// `Σ|x·w| / k`, orders of magnitude above this bound for every K used here.
fn dot_bound(k: usize, nb: usize, abs_sum: f64) -> f64 {
    2.0 * (k + nb + 4) as f64 * U * abs_sum
}

/// `Σ_k |x[i, k] · W[n, k]|` for every element of `y [m, N] = x [m, K] · Wᵀ`, W dequantized.
fn abs_sums(x: &[f32], w: &Weight) -> Vec<f64> {
    let (n, k) = (w.rows(), w.cols());
    let wv = w.to_f32_vec();
    let mut sums = Vec::with_capacity(x.len() / k.max(1) * n);
    for xr in x.chunks(k.max(1)) {
        for wr in wv.chunks(k.max(1)).take(n) {
            let s: f64 = xr
                .iter()
                .zip(wr)
                .map(|(a, c)| (*a as f64 * *c as f64).abs())
                .sum();
            sums.push(s);
        }
    }
    sums
}

/// The check of `x · Wᵀ` (see [`Check::Dot`]).
fn matmul_check(x: &[f32], w: &Weight) -> Check {
    Check::Dot {
        abs_sum: abs_sums(x, w),
        k: w.cols(),
        nb: col_blocks(w),
    }
}

/// Limit on the root mean square of `|err| / (u · Σ|x·w|)` over a [`Check::Dot`] output of at
/// least [`DOT_RMS_MIN`] elements. The per-element [`dot_bound`] is a worst case that grows
/// with K (≈ 600·u·Σ|x·w| at K = 300). Typical errors do not grow so: with random signs the
/// partial sums grow like `sqrt(j)`, so a sequential f32 sum has an rms error of about
/// `K · u · σ / sqrt(6)` ≈ 0.5 · u · Σ|x·w| whatever K, lane-wise or pairwise sums less, and the
/// reference's own rounding adds up to 1. A kernel that rounds its activations to f16 (bf16)
/// instead adds about `4 000 / sqrt(K)` (8x that) in these units: hundreds for every K here
/// (a generic matmul rounding x to f16 measured 240 at K = 300). Correct kernels measured
/// ≤ 1.4 on every table, so 4 leaves a wide margin and still catches such a loss of precision,
/// which the per-element bound alone lets through at K = 300.
const DOT_RMS: f64 = 4.0;
/// Fewer elements make too noisy an rms.
const DOT_RMS_MIN: usize = 64;

/// Per-element relative bound `r · |want|`, computed from the reference output.
fn rel_elem(want: &[f32], r: f64) -> Vec<f64> {
    want.iter().map(|&v| r * (v as f64).abs()).collect()
}

// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

/// Decode and prefill token counts.
const TOKENS: [usize; 3] = [1, 7, 33];
/// Odd inner sizes: a single column, less than a SIMD vector, a vector plus tail, partial
/// 128-column scale blocks.
const WIDTHS: [usize; 5] = [1, 5, 127, 200, 300];

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Embed: the rows of a table in every dtype (FP8 with partial 128x128 blocks: 130 rows) for the
/// batch's tokens, bit for bit (both decode with `row_to_f32`; any other decoding must be exact
/// too, since every format converts to f32 exactly).
#[test]
fn embed_is_exact_in_every_dtype() {
    let mut rng = Rng::new(1);
    let vocab = 130;
    for fmt in ALL_FMTS {
        for d in WIDTHS {
            let table = weight(&mut rng, "embed", fmt, &[vocab, d]);
            for t in TOKENS {
                let mut g = GraphBuilder::new(t);
                let e = g.embed(&table);
                g.output("e", e);
                // Include the first and the last row of the table.
                let mut tokens: Vec<u32> = (0..t).map(|_| rng.below(vocab) as u32).collect();
                tokens[0] = (vocab - 1) as u32;
                if t > 1 {
                    tokens[1] = 0;
                }
                let batch = Batch::sequence(0, 0, &tokens);
                let step = Step::new(g.finish(), batch).check("e", Check::Exact);
                conform1(&format!("embed {fmt:?} D={d} T={t}"), step);
            }
        }
    }
}

/// Input: host values are copied unchanged, whatever their bits (negative zero, subnormals,
/// infinities), and two inputs of different widths stay apart.
#[test]
fn input_is_exact() {
    let mut rng = Rng::new(2);
    for t in TOKENS {
        for d in WIDTHS {
            let mut a = rng.vec(t * d, -1e3, 1e3);
            a[0] = -0.0;
            if a.len() > 2 {
                a[1] = f32::from_bits(1);
                a[2] = f32::NEG_INFINITY;
            }
            let b = rng.vec(t * 3, -1.0, 1.0);
            let mut g = GraphBuilder::new(t);
            let (x, y) = (g.input("a", d), g.input("b", 3));
            g.output("a", x);
            g.output("b", y);
            let batch = seq_batch(t, 0, vec![("a", a), ("b", b)]);
            let step = Step::new(g.finish(), batch)
                .check("a", Check::Exact)
                .check("b", Check::Exact);
            conform1(&format!("input D={d} T={t}"), step);
        }
    }
}

/// MatMul: `x [T, K] · Wᵀ` for every dtype, T ∈ {1, 7, 33}, K ∈ {1, 5, 127, 200, 300} and
/// N ∈ {3, 37, 133} (fewer rows than a thread's share, uneven shares, partial 128-row scale
/// blocks), plus a rank-3 `x [T, 2, K]`: [`Check::Dot`] against the f64 reference.
#[test]
fn matmul_every_dtype_and_shape() {
    let mut rng = Rng::new(3);
    for fmt in ALL_FMTS {
        for k in WIDTHS {
            let ws: Vec<Arc<Weight>> = [3, 37, 133]
                .iter()
                .map(|&n| weight(&mut rng, &format!("w{n}"), fmt, &[n, k]))
                .collect();
            for t in TOKENS {
                matmul_case(&mut rng, &format!("matmul {fmt:?} K={k} T={t}"), t, &ws);
            }
        }
    }
}

/// MatMul with FP8 scale blocks other than 128x128: small blocks a multiple of 16 wide (many
/// blocks per row, the SIMD path) and odd blocks (5x24, 7x5) that the SIMD kernels hand to the
/// generic one; also activations spanning many binades (2^-20 .. 2^20).
#[test]
fn matmul_fp8_other_blocks_and_wide_range_activations() {
    let mut rng = Rng::new(4);
    for block in [[16, 32], [5, 24], [7, 5], [128, 16]] {
        for k in [5, 127, 200] {
            let ws: Vec<Arc<Weight>> = [3, 37]
                .iter()
                .map(|&n| weight(&mut rng, "w", Fmt::Fp8(block), &[n, k]))
                .collect();
            for t in [1, 7] {
                let case = format!("matmul fp8 block {block:?} K={k} T={t}");
                matmul_case(&mut rng, &case, t, &ws);
            }
        }
    }
    // Wide-range activations in every dtype.
    for fmt in ALL_FMTS {
        let w = weight(&mut rng, "w", fmt, &[37, 300]);
        let t = 5;
        let x: Vec<f32> = (0..t * 300)
            .map(|_| rng.uniform(-1.0, 1.0) * 2f32.powi(rng.below(41) as i32 - 20))
            .collect();
        let mut g = GraphBuilder::new(t);
        let xi = g.input("x", 300);
        let y = g.matmul(xi, &w);
        g.output("y", y);
        let check = matmul_check(&x, &w);
        let step = Step::new(g.finish(), seq_batch(t, 0, vec![("x", x)])).check("y", check);
        conform1(&format!("matmul {fmt:?} wide-range x"), step);
    }
}

/// One graph multiplying a random `x [t, K]` by each of `ws`, and `x2 [t, 2, K]` by the first.
fn matmul_case(rng: &mut Rng, case: &str, t: usize, ws: &[Arc<Weight>]) {
    let k = ws[0].cols();
    let x = rng.vec(t * k, -1.0, 1.0);
    let x2 = rng.vec(t * 2 * k, -1.0, 1.0);
    let mut g = GraphBuilder::new(t);
    let xi = g.input("x", k);
    let x2i = g.input("x2", 2 * k);
    let x3 = g.reshape(x2i, &[t, 2, k]);
    let mut checks = Vec::new();
    for (j, w) in ws.iter().enumerate() {
        let y = g.matmul(xi, w);
        g.output(format!("y{j}"), y);
        checks.push((format!("y{j}"), matmul_check(&x, w)));
    }
    let y3 = g.matmul(x3, &ws[0]);
    g.output("y3", y3);
    checks.push(("y3".into(), matmul_check(&x2, &ws[0])));
    let mut step = Step::new(g.finish(), seq_batch(t, 0, vec![("x", x), ("x2", x2)]));
    step.checks = checks;
    conform1(case, step);
}

/// RmsNorm with F32 and BF16 gains, including an all-zero row (the eps path), against
/// `(D + 16) · u · |want|` per element: the CPU's f32 sum of squares has relative error
/// `<= D·u` (positive terms, any order), which reaches the output halved through the square
/// root; `+ eps`, sqrt, the division and the two products add one `u` each.
#[test]
fn rms_norm_matches_reference() {
    let mut rng = Rng::new(5);
    for fmt in [Fmt::F32, Fmt::Bf16] {
        for d in WIDTHS {
            let w = weight(&mut rng, "norm", fmt, &[d]);
            for t in TOKENS {
                let mut x = rng.vec(t * d, -2.0, 2.0);
                if t > 1 {
                    x[d..2 * d].fill(0.0);
                }
                let mut g = GraphBuilder::new(t);
                let xi = g.input("x", d);
                let y = g.rms_norm(xi, &w, 1e-6);
                g.output("y", y);
                let (graph, batch) = (g.finish(), seq_batch(t, 0, vec![("x", x)]));
                let want = reference(&graph, &batch);
                let bound = rel_elem(values(&want, "y"), (d + 16) as f64 * U);
                let step = Step::new(graph, batch).check("y", Check::Bound(bound));
                conform1(&format!("rms_norm {fmt:?} D={d} T={t}"), step);
            }
        }
    }
}

/// The reference outputs of `graph` for `batch` without a cache (to derive bounds from them).
fn reference(graph: &Graph, batch: &Batch) -> Outputs {
    Reference
        .execute(graph, batch, &mut no_cache())
        .expect("reference")
}

/// Output `name` of `out`.
fn values<'a>(out: &'a Outputs, name: &str) -> &'a [f32] {
    out.get(name).expect("output").1
}

/// Elementwise ops. Add, Mul and Scale are one correctly rounded f32 operation per element, so
/// every correct backend matches bit for bit. SiluMul and Sigmoid use `exp`, which a backend may
/// compute with a few ulps of error (libm or a SIMD polynomial): per element
/// `|err| <= 1e-5 · |want|` (≈ 170 ulps), far below any wrong-element or wrong-formula error.
#[test]
fn elementwise_ops_match_reference() {
    let mut rng = Rng::new(6);
    for t in TOKENS {
        for d in WIDTHS {
            let a = rng.vec(t * d, -8.0, 8.0);
            let b = rng.vec(t * d, -3.0, 3.0);
            let mut g = GraphBuilder::new(t);
            let (ai, bi) = (g.input("a", d), g.input("b", d));
            let ops = [
                ("add", g.add(ai, bi)),
                ("mul", g.mul(ai, bi)),
                ("scale", g.scale(ai, -0.37)),
                ("silu_mul", g.silu_mul(ai, bi)),
                ("sigmoid", g.sigmoid(ai)),
            ];
            for (name, v) in ops {
                g.output(name, v);
            }
            let graph = g.finish();
            let batch = seq_batch(t, 0, vec![("a", a), ("b", b)]);
            let want = reference(&graph, &batch);
            let rel = |n: &str| Check::Bound(rel_elem(values(&want, n), 1e-5));
            let step = Step::new(graph, batch)
                .check("add", Check::Exact)
                .check("mul", Check::Exact)
                .check("scale", Check::Exact)
                .check("silu_mul", rel("silu_mul"))
                .check("sigmoid", rel("sigmoid"));
            conform1(&format!("elementwise D={d} T={t}"), step);
        }
    }
}

/// Softmax over the last dimension, inputs in [-6, 6]. Bound per element
/// `2 · (|x_i - max| + D + 8) · u · want_i`: the CPU's `x_i - max` is rounded (relative error u,
/// i.e. `u · |x_i - max|` in the exponent), `exp` adds a few ulps, the f32 sum of D positive
/// terms `D · u`, the reciprocal and the product one `u` each; the factor 2 is slack.
#[test]
fn softmax_matches_reference() {
    let mut rng = Rng::new(7);
    for t in TOKENS {
        for d in WIDTHS {
            let x = rng.vec(t * d, -6.0, 6.0);
            let mut g = GraphBuilder::new(t);
            let xi = g.input("x", d);
            let y = g.softmax(xi);
            g.output("y", y);
            let (graph, batch) = (g.finish(), seq_batch(t, 0, vec![("x", x.clone())]));
            let want = reference(&graph, &batch);
            let mut bound = Vec::with_capacity(t * d);
            for (xr, wr) in x.chunks(d).zip(values(&want, "y").chunks(d)) {
                let m = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for (&xv, &wv) in xr.iter().zip(wr) {
                    let terms = (xv - m).abs() as f64 + d as f64 + 8.0;
                    bound.push(2.0 * terms * U * wv as f64);
                }
            }
            let step = Step::new(graph, batch).check("y", Check::Bound(bound));
            conform1(&format!("softmax D={d} T={t}"), step);
        }
    }
}

/// NormalizeRows on positive rows (routing weights): bound `(D + 4) · u · want_i`, the f32 sum
/// of D positive terms (relative error `<= D·u` in any order) plus the division and the
/// reference's rounding.
#[test]
fn normalize_rows_matches_reference() {
    let mut rng = Rng::new(8);
    for t in TOKENS {
        for d in WIDTHS {
            let x = rng.vec(t * d, 0.0, 1.0);
            let mut g = GraphBuilder::new(t);
            let xi = g.input("x", d);
            let y = g.normalize_rows(xi);
            g.output("y", y);
            let (graph, batch) = (g.finish(), seq_batch(t, 0, vec![("x", x)]));
            let want = reference(&graph, &batch);
            let bound = rel_elem(values(&want, "y"), (d + 4) as f64 * U);
            let step = Step::new(graph, batch).check("y", Check::Bound(bound));
            conform1(&format!("normalize_rows D={d} T={t}"), step);
        }
    }
}

/// Slice, Concat, Reshape and TakeRows move values without arithmetic: bit for bit, on rank-2
/// and rank-3 tensors, with repeated and out-of-order rows.
#[test]
fn copy_ops_are_exact() {
    let mut rng = Rng::new(9);
    for t in TOKENS {
        for d in WIDTHS {
            let a = rng.vec(t * d, -1.0, 1.0);
            let b = rng.vec(t * 5, -1.0, 1.0);
            let c = rng.vec(t * 6 * d, -1.0, 1.0);
            let (start, len) = (d / 3, (d - d / 3 - d / 4).max(1));
            let rows = vec![t - 1, 0, t / 2, t - 1];
            let mut g = GraphBuilder::new(t);
            let (ai, bi, ci) = (g.input("a", d), g.input("b", 5), g.input("c", 6 * d));
            let c3 = g.reshape(ci, &[t, 6, d]);
            let c3s = g.slice(c3, start, len);
            let ops = [
                ("slice", g.slice(ai, start, len)),
                ("concat", g.concat(ai, bi)),
                ("reshape", c3),
                ("slice3", c3s),
                ("concat3", g.concat(c3, c3s)),
                ("take_rows", g.take_rows(ai, rows.clone())),
                ("take_rows3", g.take_rows(c3, rows)),
            ];
            let mut names = Vec::new();
            for (name, v) in ops {
                g.output(name, v);
                names.push(name);
            }
            let batch = seq_batch(t, 0, vec![("a", a), ("b", b), ("c", c)]);
            let mut step = Step::new(g.finish(), batch);
            for n in names {
                step = step.check(n, Check::Exact);
            }
            conform1(&format!("copies D={d} T={t}"), step);
        }
    }
}

/// Rotary frequencies `base^(-2j/dim)` with a magnitude correction.
fn rope_freqs(dim: usize, style: RopeStyle, attention_factor: f32) -> Arc<RopeFreqs> {
    let inv_freq = (0..dim / 2)
        .map(|j| 1.0 / 10000f32.powf(2.0 * j as f32 / dim as f32))
        .collect();
    Arc::new(RopeFreqs {
        inv_freq,
        attention_factor,
        style,
    })
}

/// Rope, both pairings (interleaved, NeoX), attention factor 1 and 1.3 (YaRN), widths 2..64,
/// three heads, positions from 0 to past 4096 in decode, prefill and shuffled mixed batches:
/// bit for bit (the angles must be computed in f32 exactly as the reference does).
#[test]
fn rope_is_exact() {
    let mut rng = Rng::new(10);
    let h = 3;
    for style in [RopeStyle::Interleaved, RopeStyle::Neox] {
        for factor in [1.0, 1.3] {
            for dim in [2, 8, 64] {
                let freqs = rope_freqs(dim, style, factor);
                let shuffled: Vec<usize> = (0..9).map(|_| rng.below(5000)).collect();
                let cases = [vec![0], vec![4097], (3..10).collect(), shuffled];
                for positions in cases {
                    let t = positions.len();
                    let x = rng.vec(t * h * dim, -2.0, 2.0);
                    let mut g = GraphBuilder::new(t);
                    let xi = g.input("x", h * dim);
                    let x3 = g.reshape(xi, &[t, h, dim]);
                    let y = g.rope(x3, &freqs);
                    g.output("y", y);
                    let mut batch = seq_batch(t, 0, vec![("x", x)]);
                    batch.positions = positions.clone();
                    let step = Step::new(g.finish(), batch).check("y", Check::Exact);
                    conform1(
                        &format!("rope {style:?} x{factor} D={dim} at {positions:?}"),
                        step,
                    );
                }
            }
        }
    }
}

/// A router configuration: experts, top_k, groups, kept groups, group score, bias format.
type Router = (usize, usize, usize, usize, GroupScore, Option<Fmt>);

const ROUTERS: [Router; 9] = [
    (16, 4, 1, 1, GroupScore::SumTop2, None),
    (16, 4, 1, 1, GroupScore::Max, Some(Fmt::F32)),
    (32, 6, 4, 2, GroupScore::SumTop2, Some(Fmt::F32)),
    (32, 6, 4, 2, GroupScore::Max, None),
    (32, 6, 4, 4, GroupScore::SumTop2, Some(Fmt::F32)),
    (32, 6, 8, 3, GroupScore::Max, Some(Fmt::Bf16)),
    (64, 8, 8, 4, GroupScore::SumTop2, None),
    // One expert per group: SumTop2 degenerates to the expert's score.
    (8, 2, 8, 3, GroupScore::SumTop2, Some(Fmt::F32)),
    // DeepSeek-V3's layout.
    (256, 8, 8, 4, GroupScore::SumTop2, Some(Fmt::F32)),
];

/// Router scores `[t, e]` in (0, 1); every other row is quantized to eighths so that ties
/// (broken to the lower index) and tied groups occur.
fn router_scores(rng: &mut Rng, t: usize, e: usize) -> Vec<f32> {
    let mut s = rng.vec(t * e, 0.0, 1.0);
    for row in s.chunks_mut(e).step_by(2) {
        row.iter_mut().for_each(|v| *v = (*v * 8.0).floor() / 8.0);
    }
    s
}

/// Column indices `[t, e]`: gathering them at ids turns ids into exactly comparable values.
fn iota(t: usize, e: usize) -> Vec<f32> {
    (0..t * e).map(|i| (i % e) as f32).collect()
}

/// MoeSelect with and without a bias (F32, BF16; negative entries, so the -inf masking of
/// dropped groups matters), both group scores, one and several groups: the chosen ids (read
/// through GatherCols of column indices, also after TakeRows and Reshape of the i32 ids) and
/// the gathered scores are exact; their NormalizeRows is within `(top_k + 4) · u · want`.
#[test]
fn moe_select_and_gather_cols() {
    let mut rng = Rng::new(11);
    for (e, top_k, n_group, topk_group, gs, bias_fmt) in ROUTERS {
        let bias = bias_fmt.map(|f| {
            let v = rng.vec(e, -0.5, 0.5);
            let w = Weight::from_f32("bias", vec![e], &v);
            match f {
                Fmt::F32 => Arc::new(w),
                f => {
                    assert!(matches!(f, Fmt::Bf16), "router biases are f32 or bf16");
                    let bits: Vec<u8> = v
                        .iter()
                        .flat_map(|&x| half::bf16::from_f32(x).to_bits().to_le_bytes())
                        .collect();
                    Arc::new(
                        Weight::new("bias", DType::BF16, vec![e], Bytes::from_vec(bits)).unwrap(),
                    )
                }
            }
        });
        for t in TOKENS {
            let rows = vec![t - 1, 0];
            let mut g = GraphBuilder::new(t);
            let (si, ii) = (g.input("scores", e), g.input("iota", e));
            let ids = g.moe_select(si, bias.as_ref(), top_k, n_group, topk_group, gs);
            let ids_r = g.reshape(ids, &[t, top_k]);
            let (ids_t, iota_t) = (g.take_rows(ids, rows.clone()), g.take_rows(ii, rows));
            let picked = g.gather_cols(si, ids);
            let ops = [
                ("ids", g.gather_cols(ii, ids)),
                ("ids_reshaped", g.gather_cols(ii, ids_r)),
                ("ids_rows", g.gather_cols(iota_t, ids_t)),
                ("picked", picked),
                ("weights", g.normalize_rows(picked)),
            ];
            for (name, v) in ops {
                g.output(name, v);
            }
            let inputs = vec![
                ("scores", router_scores(&mut rng, t, e)),
                ("iota", iota(t, e)),
            ];
            let (graph, batch) = (g.finish(), seq_batch(t, 0, inputs));
            let want = reference(&graph, &batch);
            let bound = rel_elem(values(&want, "weights"), (top_k + 4) as f64 * U);
            let step = Step::new(graph, batch)
                .check("ids", Check::Exact)
                .check("ids_reshaped", Check::Exact)
                .check("ids_rows", Check::Exact)
                .check("picked", Check::Exact)
                .check("weights", Check::Bound(bound));
            let case = format!(
                "moe_select E={e} top{top_k} groups {topk_group}/{n_group} {gs:?} \
                 bias {bias_fmt:?} T={t}"
            );
            conform1(&case, step);
        }
    }
}

/// MatMulId with the input shared by the slots (`x [T, K]`, the gate/up projections) and per
/// slot (`x [T, k, K]`, the down projection), six experts in every dtype, ids from MoeSelect:
/// each slot's result under [`Check::Dot`] for its expert's product; the ids exact.
#[test]
fn matmul_id_shared_and_per_slot() {
    let mut rng = Rng::new(12);
    let (n_exp, n) = (6, 37);
    for fmt in ALL_FMTS {
        for k in WIDTHS {
            let experts: Arc<Vec<Arc<Weight>>> = Arc::new(
                (0..n_exp)
                    .map(|i| weight(&mut rng, &format!("expert{i}"), fmt, &[n, k]))
                    .collect(),
            );
            for t in TOKENS {
                for (shared, top_k) in [(true, 2), (false, 3)] {
                    let width = if shared { k } else { top_k * k };
                    let x = rng.vec(t * width, -1.0, 1.0);
                    let scores = rng.vec(t * n_exp, 0.0, 1.0);
                    let mut g = GraphBuilder::new(t);
                    let (xi, si, ii) = (
                        g.input("x", width),
                        g.input("s", n_exp),
                        g.input("i", n_exp),
                    );
                    let xs = if shared {
                        xi
                    } else {
                        g.reshape(xi, &[t, top_k, k])
                    };
                    let ids = g.moe_select(si, None, top_k, 1, 1, GroupScore::SumTop2);
                    let y = g.matmul_id(xs, &experts, ids);
                    let id_vals = g.gather_cols(ii, ids);
                    g.output("y", y);
                    g.output("ids", id_vals);
                    // Bounds from the same selection the graph makes.
                    let mut abs_sum = Vec::with_capacity(t * top_k * n);
                    let mut chosen = vec![0i32; top_k];
                    for tok in 0..t {
                        let row = &scores[tok * n_exp..(tok + 1) * n_exp];
                        jing_graph::select_experts(
                            row,
                            None,
                            top_k,
                            1,
                            1,
                            GroupScore::SumTop2,
                            &mut chosen,
                        );
                        for (j, &id) in chosen.iter().enumerate() {
                            let xr = if shared {
                                tok * k
                            } else {
                                (tok * top_k + j) * k
                            };
                            abs_sum.extend(abs_sums(&x[xr..xr + k], &experts[id as usize]));
                        }
                    }
                    let inputs = vec![("x", x), ("s", scores), ("i", iota(t, n_exp))];
                    let step = Step::new(g.finish(), seq_batch(t, 0, inputs))
                        .check(
                            "y",
                            Check::Dot {
                                abs_sum,
                                k,
                                nb: col_blocks(&experts[0]),
                            },
                        )
                        .check("ids", Check::Exact);
                    let form = if shared { "shared" } else { "per-slot" };
                    conform1(&format!("matmul_id {fmt:?} {form} K={k} T={t}"), step);
                }
            }
        }
    }
}

/// WeightedSum `Σ_j w[t, j] · x[t, j, :]` for k = 1, 3, 8 slots, signed weights: a length-k
/// dot product per output, under [`Check::Dot`] (`|err| <= 2 · (k + 4) · u · Σ_j |w_j · x_j|`).
#[test]
fn weighted_sum_matches_reference() {
    let mut rng = Rng::new(13);
    for t in TOKENS {
        for d in WIDTHS {
            for k in [1, 3, 8] {
                let x = rng.vec(t * k * d, -1.0, 1.0);
                let w = rng.vec(t * k, -1.0, 1.0);
                let mut g = GraphBuilder::new(t);
                let (xi, wi) = (g.input("x", k * d), g.input("w", k));
                let x3 = g.reshape(xi, &[t, k, d]);
                let y = g.weighted_sum(x3, wi);
                g.output("y", y);
                let mut abs_sum = Vec::with_capacity(t * d);
                for tok in 0..t {
                    for c in 0..d {
                        let s: f64 = (0..k)
                            .map(|j| {
                                (w[tok * k + j] as f64 * x[(tok * k + j) * d + c] as f64).abs()
                            })
                            .sum();
                        abs_sum.push(s);
                    }
                }
                let step = Step::new(g.finish(), seq_batch(t, 0, vec![("x", x), ("w", w)]))
                    .check("y", Check::Dot { abs_sum, k, nb: 0 });
                conform1(&format!("weighted_sum k={k} D={d} T={t}"), step);
            }
        }
    }
}

/// A batch of tokens at `(slot, position)` pairs with host inputs.
fn mixed_batch(at: &[(usize, usize)], inputs: Vec<(&str, Vec<f32>)>) -> Batch {
    let mut b = seq_batch(at.len(), 0, inputs);
    b.slots = at.iter().map(|&(s, _)| s).collect();
    b.positions = at.iter().map(|&(_, p)| p).collect();
    b
}

/// A cache of 2 layers of `width`-wide rows, 64 positions, with 3 slots allocated (the tests
/// put their first two sequences in slots 2 and 0, so slot order and slot number differ).
fn cache_with_slots(width: usize) -> KvCache {
    let mut c = KvCache::new(2, width, 128);
    for _ in 0..3 {
        c.alloc_slot();
    }
    c
}

/// KvWrite: two sequences (slots 2 and 0) interleaved in one prefill batch writing two layers,
/// then a step that appends to both and rewrites an existing position of slot 2: the written
/// rows and the whole cache are bit for bit the reference's.
#[test]
fn kv_write_is_exact() {
    let mut rng = Rng::new(14);
    for (kvl, dr) in [(1, 1), (5, 2), (127, 8), (300, 64)] {
        let width = kvl + dr;
        let prefill: Vec<(usize, usize)> = vec![(2, 0), (0, 0), (2, 1), (2, 2), (0, 1), (2, 3)];
        let next: Vec<(usize, usize)> = vec![(0, 2), (2, 4), (2, 2)];
        let steps: Vec<Step> = [prefill, next]
            .iter()
            .map(|at| {
                let t = at.len();
                let inputs = vec![
                    ("c", rng.vec(t * kvl, -1.0, 1.0)),
                    ("k", rng.vec(t * dr, -1.0, 1.0)),
                    ("c0", rng.vec(t * kvl, -1.0, 1.0)),
                ];
                let mut g = GraphBuilder::new(t);
                let (c, k, c0) = (g.input("c", kvl), g.input("k", dr), g.input("c0", kvl));
                let w1 = g.kv_write(1, c, k);
                let w0 = g.kv_write(0, c0, k);
                g.output("written1", w1);
                g.output("written0", w0);
                Step::new(g.finish(), mixed_batch(at, inputs))
                    .check("written1", Check::Exact)
                    .check("written0", Check::Exact)
            })
            .collect();
        conform(
            &format!("kv_write kv_lora={kvl} rope={dr}"),
            &steps,
            &CacheSpec {
                new: &|| cache_with_slots(width),
                slots: 3,
                check: Check::Exact,
            },
        );
    }
}

/// MLA dimensions: heads, nope, rope, value and latent widths.
#[derive(Clone, Copy, Debug)]
struct Mla {
    h: usize,
    dn: usize,
    dr: usize,
    dv: usize,
    kvl: usize,
}

/// One attention step at `at`: random queries and latents, rotated `q_pe` and `k_pe`, the
/// KvWrite of layer 1 and the attention over it in `form`.
fn mla_step(
    rng: &mut Rng,
    m: Mla,
    w: &Arc<MlaWeights>,
    form: MlaForm,
    at: &[(usize, usize)],
) -> Step {
    let t = at.len();
    let freqs = rope_freqs(m.dr, RopeStyle::Interleaved, 1.2);
    let mut g = GraphBuilder::new(t);
    let qn = g.input("q_nope", m.h * m.dn);
    let qp = g.input("q_pe", m.h * m.dr);
    let c = g.input("c_kv", m.kvl);
    let kp = g.input("k_pe", m.dr);
    let qn3 = g.reshape(qn, &[t, m.h, m.dn]);
    let qp3 = g.reshape(qp, &[t, m.h, m.dr]);
    let qp_rot = g.rope(qp3, &freqs);
    let kp3 = g.reshape(kp, &[t, 1, m.dr]);
    let kp_rot3 = g.rope(kp3, &freqs);
    let kp_rot = g.reshape(kp_rot3, &[t, m.dr]);
    let written = g.kv_write(1, c, kp_rot);
    // DeepSeek: (dn + dr)^-1/2 · mscale².
    let scale = ((m.dn + m.dr) as f32).powf(-0.5) * 1.1 * 1.1;
    let o = g.mla_attention(qn3, qp_rot, written, w, 1, scale);
    g.output("attn", o);
    g.output("written", written);
    let mut graph = g.finish();
    graph.set_mla_form(form);
    let inputs = vec![
        ("q_nope", rng.vec(t * m.h * m.dn, -1.0, 1.0)),
        ("q_pe", rng.vec(t * m.h * m.dr, -1.0, 1.0)),
        ("c_kv", rng.vec(t * m.kvl, -1.0, 1.0)),
        ("k_pe", rng.vec(t * m.dr, -1.0, 1.0)),
    ];
    Step::new(graph, mixed_batch(at, inputs))
        .check("attn", Check::RelMax(MLA_TOL))
        .check("written", Check::Exact)
}

/// MlaAttention in the Absorbed, Expanded and Auto forms with `kv_b` in every dtype (FP8 with
/// 128x128 blocks, partial both ways: 140 x 136), for two sequences in cache slots 2 and 0:
/// an interleaved prefill (5 and 3 tokens, causal within the step), a decode step of both,
/// then a decode of one at a later position; then a 33-token prefill of a third sequence in
/// slot 1 (T = 33, contexts 1..=33) and its next chunk of 70 tokens (positions 33..103: the
/// one-sequence prefill path with a nonzero start and two causal score blocks). The written
/// rows and the caches are exact.
///
/// Tolerance `RelMax(MLA_TOL)`: the CPU computes every intermediate (q_lat, the scores, the
/// latent output, the value projection) as f32 sums of at most L = kv_lora + rope = 144 terms,
/// each with an error of a few `u` times its sum of magnitudes for random signs (L·u at
/// worst); the softmax passes a score error δ to the output as at most `δ · max|v|`. Scores
/// here have a spread of about 1 and values about the size of the largest output, so
/// `8 · L · u ≈ 7e-5` of the largest output bounds it with margin (measured: ≤ 3e-6 on every
/// table), while a wrong head, position, slot, causal mask or dequantization moves outputs by
/// O(1) of the largest.
const MLA_TOL: f64 = 8.0 * 144.0 * U;

#[test]
fn mla_attention_absorbed_and_expanded() {
    let mut rng = Rng::new(15);
    let m = Mla {
        h: 5,
        dn: 16,
        dr: 8,
        dv: 12,
        kvl: 136,
    };
    let prefill = [
        (2, 0),
        (0, 0),
        (2, 1),
        (2, 2),
        (0, 1),
        (2, 3),
        (0, 2),
        (2, 4),
    ];
    let decode = [(2, 5), (0, 3)];
    let later = [(2, 6)];
    let long: Vec<(usize, usize)> = (0..33).map(|p| (1, p)).collect();
    let next_chunk: Vec<(usize, usize)> = (33..103).map(|p| (1, p)).collect();
    // Decode over 104 latent rows next to a short sequence.
    let long_decode = [(1, 103), (0, 4)];
    for fmt in ALL_FMTS {
        let kv_b = weight(&mut rng, "kv_b", fmt, &[m.h * (m.dn + m.dv), m.kvl]);
        let mut layouts = vec![(
            "kv_b",
            Arc::new(MlaWeights::from_kv_b(&kv_b, m.h, m.dn, m.dv)),
        )];
        // GGUF's split parts, each as stored (FP8 weights are 2-D only).
        if !matches!(fmt, Fmt::Fp8(_)) {
            let k_b = weight(&mut rng, "k_b", fmt, &[m.h, m.kvl, m.dn]);
            let v_b = weight(&mut rng, "v_b", fmt, &[m.h, m.dv, m.kvl]);
            layouts.push(("k_b/v_b", Arc::new(MlaWeights::from_split(&k_b, &v_b))));
        }
        // HF's kv_b split into W_UK and W_UV, as the models load it for a backend that
        // rearranges weights. FP8's 128-row blocks are cut by the heads' rows (no split); with
        // 4-row blocks they are not.
        let split = |kv_b: &Weight| MlaWeights::split_kv_b(kv_b, m.h, m.dn, m.dv);
        let whole_blocks = match fmt {
            Fmt::Fp8(_) => {
                assert!(
                    split(&kv_b).is_none(),
                    "{fmt:?}: heads cut the scale blocks"
                );
                let dims = [m.h * (m.dn + m.dv), m.kvl];
                weight(&mut rng, "kv_b", Fmt::Fp8([4, 16]), &dims)
            }
            _ => kv_b.clone(),
        };
        let [uk, uv] = split(&whole_blocks).expect("heads on block rows");
        layouts.push(("uk/uv", Arc::new(MlaWeights::from_uk_uv(&uk, &uv, m.h))));
        for (layout, w) in &layouts {
            for form in [MlaForm::Absorbed, MlaForm::Expanded, MlaForm::Auto] {
                let steps: Vec<Step> = [
                    &prefill[..],
                    &decode[..],
                    &later[..],
                    &long[..],
                    &next_chunk[..],
                    &long_decode[..],
                ]
                .iter()
                .map(|at| mla_step(&mut rng, m, w, form, at))
                .collect();
                conform(
                    &format!("mla {form:?} {layout} {fmt:?} {m:?}"),
                    &steps,
                    &CacheSpec {
                        new: &|| cache_with_slots(m.kvl + m.dr),
                        slots: 3,
                        check: Check::Exact,
                    },
                );
            }
        }
    }
}

/// MLA with W_UV as a loading backend rearranges it (`split_kv_b`, then the backend's
/// `prepare_linear`: f32, f16 and bf16 in panels of lines, on tables that read them), read head
/// by head from views of 64 rows: prefill, decode and a later decode, against the reference.
#[test]
fn mla_attention_with_w_uv_rearranged() {
    let mut rng = Rng::new(17);
    let m = Mla {
        h: 2,
        dn: 16,
        dr: 8,
        dv: 64,
        kvl: 128,
    };
    let prefill = [(2, 0), (0, 0), (2, 1), (0, 1), (2, 2)];
    let (decode, later) = ([(2, 3), (0, 2)], [(2, 4)]);
    let mut rearranged = 0;
    for table in KernelTable::available() {
        let Some(prepare) = CpuBackend::with_kernels(Some(1), table).prepare_linear() else {
            continue;
        };
        for fmt in [Fmt::F32, Fmt::F16, Fmt::Bf16] {
            let kv_b = weight(&mut rng, "kv_b", fmt, &[m.h * (m.dn + m.dv), m.kvl]);
            let [uk, uv] = MlaWeights::split_kv_b(&kv_b, m.h, m.dn, m.dv).expect("no scales");
            // (Tables without panels only move the rows into 2 MiB pages.)
            let Some(uv) = prepare(&uv).filter(|p| p.layout != jing_tensor::RowLayout::Rows) else {
                continue;
            };
            rearranged += 1;
            let w = Arc::new(MlaWeights::from_uk_uv(&uk, &uv, m.h));
            for form in [MlaForm::Absorbed, MlaForm::Auto] {
                let steps: Vec<Step> = [&prefill[..], &decode[..], &later[..]]
                    .iter()
                    .map(|at| mla_step(&mut rng, m, &w, form, at))
                    .collect();
                conform(
                    &format!("mla {form:?} W_UV {:?} ({}) {fmt:?}", uv.layout, table.name),
                    &steps,
                    &CacheSpec {
                        new: &|| cache_with_slots(m.kvl + m.dr),
                        slots: 3,
                        check: Check::Exact,
                    },
                );
            }
        }
    }
    // Where some table reads float panels, it rearranged W_UV.
    let panels = KernelTable::available().iter().any(|t| t.float_panels);
    assert_eq!(rearranged > 0, panels);
}

/// One grouped-query attention step (6 query heads over 2 KV heads of 16) at `at`.
fn gqa_step(rng: &mut Rng, at: &[(usize, usize)]) -> Step {
    let (h, kv, d) = (6, 2, 16);
    let t = at.len();
    let mut g = GraphBuilder::new(t);
    let q = g.input("q", h * d);
    let k = g.input("k", kv * d);
    let v = g.input("v", kv * d);
    let q3 = g.reshape(q, &[t, h, d]);
    let written = g.kv_write(1, k, v);
    let o = g.gqa_attention(q3, written, 1, kv, (d as f32).powf(-0.5));
    g.output("attn", o);
    g.output("written", written);
    let inputs = vec![
        ("q", rng.vec(t * h * d, -2.0, 2.0)),
        ("k", rng.vec(t * kv * d, -2.0, 2.0)),
        ("v", rng.vec(t * kv * d, -1.0, 1.0)),
    ];
    Step::new(g.finish(), mixed_batch(at, inputs))
        .check("attn", Check::RelMax(GQA_TOL))
        .check("written", Check::Exact)
}

/// Like [`MLA_TOL`], for sums of `d = 16` terms and value rows of the output's size.
const GQA_TOL: f64 = 8.0 * 144.0 * U;

/// GroupedQueryAttention: an interleaved prefill of two sequences and a decode step (the
/// per-token loop), then a 33-token prefill of a third sequence and its next 70-token chunk
/// (the one-sequence prefill path: start 0, then start 33 with two causal score blocks).
#[test]
fn gqa_attention_per_token_and_prefill_chunks() {
    let mut rng = Rng::new(16);
    let prefill = [(2, 0), (0, 0), (2, 1), (0, 1), (2, 2)];
    let decode = [(2, 3), (0, 2)];
    let long: Vec<(usize, usize)> = (0..33).map(|p| (1, p)).collect();
    let next_chunk: Vec<(usize, usize)> = (33..103).map(|p| (1, p)).collect();
    // Decode over 104 cache rows (several tiles of the per-token loop, the last partial)
    // next to a short sequence.
    let long_decode = [(1, 103), (0, 3)];
    let steps: Vec<Step> = [
        &prefill[..],
        &decode[..],
        &long[..],
        &next_chunk[..],
        &long_decode[..],
    ]
    .iter()
    .map(|at| gqa_step(&mut rng, at))
    .collect();
    conform(
        "gqa",
        &steps,
        &CacheSpec {
            new: &|| cache_with_slots(2 * 2 * 16),
            slots: 3,
            check: Check::Exact,
        },
    );
}

/// A distinct index per op kind. The match has no wildcard, so a new `Op` variant does not
/// compile until it is added here, and [`one_graph_with_every_op`] fails until it uses it.
fn op_kind(op: &Op) -> usize {
    match op {
        Op::Embed { .. } => 0,
        Op::Input { .. } => 1,
        Op::MatMul { .. } => 2,
        Op::RmsNorm { .. } => 3,
        Op::Add { .. } => 4,
        Op::Mul { .. } => 5,
        Op::Scale { .. } => 6,
        Op::SiluMul { .. } => 7,
        Op::Sigmoid { .. } => 8,
        Op::Softmax { .. } => 9,
        Op::Slice { .. } => 10,
        Op::Concat { .. } => 11,
        Op::Reshape { .. } => 12,
        Op::Rope { .. } => 13,
        Op::TakeRows { .. } => 14,
        Op::MoeSelect { .. } => 15,
        Op::GatherCols { .. } => 16,
        Op::NormalizeRows { .. } => 17,
        Op::MatMulId { .. } => 18,
        Op::WeightedSum { .. } => 19,
        Op::KvWrite { .. } => 20,
        Op::MlaAttention(_) => 21,
        Op::AddBias { .. } => 22,
        Op::Attention(_) => 23,
    }
}
const OP_KINDS: usize = 24;

/// Tolerance of the latent rows in [`one_graph_with_every_op`]: they come out of a K = 64
/// matmul and an RmsNorm, so they are within about `2 · (64 + 8) · u ≈ 1e-5` of the largest.
const EVERY_OP_CACHE_TOL: f64 = 1e-5;

/// A small DeepSeek-like layer using every op in one graph (two sequences, a prefill step then
/// a decode step), so that the executor's buffer reuse and freeing is exercised across every
/// kind of node: the final probabilities within 1e-5 of the largest (errors compound through a
/// dozen reductions, measured 7.5e-7; any wiring bug is O(1)) and the routed ids exact.
#[test]
fn one_graph_with_every_op() {
    let mut rng = Rng::new(16);
    let (vocab, d, e, top_k, ffn) = (50, 64, 16, 4, 24);
    let m = Mla {
        h: 4,
        dn: 8,
        dr: 8,
        dv: 8,
        kvl: 32,
    };
    let freqs = rope_freqs(m.dr, RopeStyle::Interleaved, 1.1);
    let embed = weight(&mut rng, "embed", Fmt::Bf16, &[vocab, d]);
    let norm = weight(&mut rng, "norm", Fmt::Bf16, &[d]);
    let kv_norm = weight(&mut rng, "kv_norm", Fmt::F32, &[m.kvl]);
    let wq = weight(&mut rng, "wq", FP8, &[m.h * (m.dn + m.dr), d]);
    let wkv = weight(&mut rng, "wkv", Fmt::F16, &[m.kvl + m.dr, d]);
    let kv_b = weight(&mut rng, "kv_b", FP8, &[m.h * (m.dn + m.dv), m.kvl]);
    let mla_w = Arc::new(MlaWeights::from_kv_b(&kv_b, m.h, m.dn, m.dv));
    let wo = weight(&mut rng, "wo", Fmt::Bf16, &[d, m.h * m.dv]);
    let router = weight(&mut rng, "router", Fmt::F32, &[e, d]);
    let bias = Arc::new(Weight::from_f32("bias", vec![e], &rng.vec(e, -0.2, 0.2)));
    let experts = |rng: &mut Rng, n: usize, k: usize| -> Arc<Vec<Arc<Weight>>> {
        Arc::new(
            (0..e)
                .map(|i| weight(rng, &format!("x{i}"), FP8, &[n, k]))
                .collect(),
        )
    };
    let (gate, up, down) = (
        experts(&mut rng, ffn, d),
        experts(&mut rng, ffn, d),
        experts(&mut rng, d, ffn),
    );
    let head = weight(&mut rng, "head", Fmt::Bf16, &[vocab, d]);
    // Grouped-query attention on cache layer 1: 4 query heads over 2 KV heads of width 10, so
    // that its rows `k ‖ v` are as wide as the MLA rows of layer 0.
    let (gh, gkv, gd) = (4, 2, 10);
    let wqg = weight(&mut rng, "wqg", Fmt::F16, &[gh * gd, d]);
    let bqg = weight(&mut rng, "bqg", Fmt::Bf16, &[gh * gd]);
    let wkvg = weight(&mut rng, "wkvg", Fmt::Bf16, &[2 * gkv * gd, d]);
    let wog = weight(&mut rng, "wog", FP8, &[d, gh * gd]);

    let mut step = |at: &[(usize, usize)]| -> Step {
        let t = at.len();
        let mut g = GraphBuilder::new(t);
        let x0 = g.embed(&embed);
        let hi = g.input("hidden", d);
        let x = g.add(x0, hi);
        let n = g.rms_norm(x, &norm, 1e-6);
        let q = g.matmul(n, &wq);
        let q3 = g.reshape(q, &[t, m.h, m.dn + m.dr]);
        let q_nope = g.slice(q3, 0, m.dn);
        let q_pe0 = g.slice(q3, m.dn, m.dr);
        let q_pe = g.rope(q_pe0, &freqs);
        let kv = g.matmul(n, &wkv);
        let c0 = g.slice(kv, 0, m.kvl);
        let c_kv = g.rms_norm(c0, &kv_norm, 1e-6);
        let kp0 = g.slice(kv, m.kvl, m.dr);
        let kp3 = g.reshape(kp0, &[t, 1, m.dr]);
        let kp_rot = g.rope(kp3, &freqs);
        let k_pe = g.reshape(kp_rot, &[t, m.dr]);
        let written = g.kv_write(0, c_kv, k_pe);
        let scale = ((m.dn + m.dr) as f32).powf(-0.5);
        let attn = g.mla_attention(q_nope, q_pe, written, &mla_w, 0, scale);
        let o = g.matmul(attn, &wo);
        let x2 = g.add(x, o);
        let n2 = g.rms_norm(x2, &norm, 1e-6);
        let logits_r = g.matmul(n2, &router);
        let scores = g.sigmoid(logits_r);
        let ids = g.moe_select(scores, Some(&bias), top_k, 4, 2, GroupScore::SumTop2);
        let picked = g.gather_cols(scores, ids);
        let wn = g.normalize_rows(picked);
        let wts = g.scale(wn, 2.5);
        let gt = g.matmul_id(n2, &gate, ids);
        let upv = g.matmul_id(n2, &up, ids);
        let act = g.silu_mul(gt, upv);
        let dn = g.matmul_id(act, &down, ids);
        let moe = g.weighted_sum(dn, wts);
        let gate_x = g.sigmoid(x2);
        let gated = g.mul(moe, gate_x);
        let x3a = g.add(x2, gated);
        let qg0 = g.matmul(x3a, &wqg);
        let qg1 = g.add_bias(qg0, &bqg);
        let qg = g.reshape(qg1, &[t, gh, gd]);
        let kvg = g.matmul(x3a, &wkvg);
        let kg = g.slice(kvg, 0, gkv * gd);
        let vg = g.slice(kvg, gkv * gd, gkv * gd);
        let written_g = g.kv_write(1, kg, vg);
        let att_g = g.gqa_attention(qg, written_g, 1, gkv, (gd as f32).powf(-0.5));
        let og = g.matmul(att_g, &wog);
        let x3 = g.add(x3a, og);
        let cat = g.concat(x3, c_kv);
        let last = g.take_rows(cat, vec![t - 1, 0]);
        let last_x = g.slice(last, 0, d);
        let nf = g.rms_norm(last_x, &norm, 1e-6);
        let logits = g.matmul(nf, &head);
        let probs = g.softmax(logits);
        let ii = g.input("iota", e);
        let id_vals = g.gather_cols(ii, ids);
        g.output("probs", probs);
        g.output("ids", id_vals);
        g.output("written", written);
        let graph = g.finish();
        let kinds: BTreeSet<usize> = graph.nodes.iter().map(|n| op_kind(&n.op)).collect();
        assert_eq!(kinds.len(), OP_KINDS, "the graph uses every op kind");
        let inputs = vec![("hidden", rng.vec(t * d, -1.0, 1.0)), ("iota", iota(t, e))];
        let mut batch = mixed_batch(at, inputs);
        batch.tokens = (0..t).map(|_| rng.below(vocab) as u32).collect();
        Step::new(graph, batch)
            .check("probs", Check::RelMax(1e-5))
            .check("ids", Check::Exact)
            .check("written", Check::RelMax(EVERY_OP_CACHE_TOL))
    };
    let steps = vec![
        step(&[(2, 0), (0, 0), (2, 1), (0, 1), (2, 2), (0, 2), (0, 3)]),
        step(&[(0, 4), (2, 3)]),
    ];
    conform(
        "every op in one graph",
        &steps,
        &CacheSpec {
            new: &|| cache_with_slots(m.kvl + m.dr),
            slots: 3,
            check: Check::RelMax(EVERY_OP_CACHE_TOL),
        },
    );
}

/// Run `graph` for `batch` on every backend with a cache from `new_cache` and require the error
/// `expected` accepts (an `Err`, not a panic and not `Ok`).
fn expect_error(
    case: &str,
    graph: &Graph,
    batch: &Batch,
    new_cache: &dyn Fn() -> KvCache,
    expected: &dyn Fn(&ExecError) -> bool,
) {
    for b in all_backends() {
        match b.execute(graph, batch, &mut new_cache()) {
            Ok(_) => panic!("{case}: {} returned Ok", b.name()),
            Err(e) => assert!(
                expected(&e),
                "{case}: {} returned the wrong error: {e:?}",
                b.name()
            ),
        }
    }
}

/// A token id at or past the vocabulary is `ExecError::TokenId` on every backend (checked
/// before any node runs), for the first and for a later token, and for `u32::MAX`.
#[test]
fn token_id_out_of_vocabulary_is_an_error() {
    let mut rng = Rng::new(17);
    for fmt in ALL_FMTS {
        let table = weight(&mut rng, "embed", fmt, &[10, 4]);
        let mut g = GraphBuilder::new(3);
        let e = g.embed(&table);
        g.output("e", e);
        let graph = g.finish();
        for (tokens, bad) in [
            ([3, 10, 1], 10),
            ([11, 0, 0], 11),
            ([0, 9, u32::MAX], u32::MAX),
        ] {
            let batch = Batch::sequence(0, 0, &tokens);
            expect_error(
                &format!("token {bad} {fmt:?}"),
                &graph,
                &batch,
                &no_cache,
                &|e| matches!(e, ExecError::TokenId { id, vocab: 10 } if *id == bad),
            );
        }
        // The last valid id still works.
        conform1(
            &format!("token 9 {fmt:?}"),
            Step::new(graph, Batch::sequence(0, 0, &[9, 0, 5])).check("e", Check::Exact),
        );
    }
}

/// A host input the batch lacks is `ExecError::MissingInput`; one of the wrong length is
/// `ExecError::InputSize`; a batch of another size than the graph's is `ExecError::BatchSize`.
#[test]
fn missing_or_malformed_inputs_are_errors() {
    let mut g = GraphBuilder::new(2);
    let (a, b) = (g.input("a", 3), g.input("b", 4));
    let y = g.concat(a, b);
    g.output("y", y);
    let graph = g.finish();
    let only_a = seq_batch(2, 0, vec![("a", vec![0.0; 6])]);
    expect_error(
        "missing input",
        &graph,
        &only_a,
        &no_cache,
        &|e| matches!(e, ExecError::MissingInput(n) if n == "b"),
    );
    let short = seq_batch(2, 0, vec![("a", vec![0.0; 6]), ("b", vec![0.0; 7])]);
    expect_error(
        "short input",
        &graph,
        &short,
        &no_cache,
        &|e| matches!(e, ExecError::InputSize { name, found: 7, expected: 8 } if name == "b"),
    );
    let three = seq_batch(3, 0, vec![("a", vec![0.0; 9]), ("b", vec![0.0; 12])]);
    expect_error("batch size", &graph, &three, &no_cache, &|e| {
        matches!(e, ExecError::BatchSize { batch: 3, graph: 2 })
    });
}

/// A KvWrite past the cache's `max_len` is `ExecError::Cache(TooLong)`, one into a slot never
/// allocated is `Cache(NoSlot)`, one that skips a position is `Cache(Gap)`; after such an error
/// every CPU backend still runs graphs correctly (its pool is not left stuck at a barrier).
#[test]
fn cache_misuse_is_an_error() {
    let (kvl, dr) = (5, 2);
    let kv_graph = |t: usize| {
        let mut g = GraphBuilder::new(t);
        let (c, k) = (g.input("c", kvl), g.input("k", dr));
        let w = g.kv_write(0, c, k);
        let s = g.scale(w, 2.0);
        g.output("w", s);
        g.finish()
    };
    let inputs = |t: usize| vec![("c", vec![1.0; t * kvl]), ("k", vec![2.0; t * dr])];
    let small = || {
        let mut c = KvCache::new(1, kvl + dr, 4);
        c.alloc_slot();
        c
    };
    // Positions 2..5 of a 4-position cache: 4 is too far.
    let graph = kv_graph(3);
    expect_error(
        "past max_len",
        &graph,
        &seq_batch(3, 2, inputs(3)),
        &|| {
            let mut c = small();
            c.write(0, 0, 0, &[0.0; 7]).unwrap();
            c.write(0, 0, 1, &[0.0; 7]).unwrap();
            c
        },
        &|e| {
            matches!(
                e,
                ExecError::Cache(CacheError::TooLong { pos: 4, max_len: 4 })
            )
        },
    );
    // Slot 1 was never allocated.
    let mut b = seq_batch(3, 0, inputs(3));
    b.slots = vec![0, 1, 0];
    b.positions = vec![0, 0, 1];
    expect_error("no slot", &graph, &b, &small, &|e| {
        matches!(e, ExecError::Cache(CacheError::NoSlot(1)))
    });
    // Position 2 of an empty slot.
    expect_error("gap", &graph, &seq_batch(3, 2, inputs(3)), &small, &|e| {
        matches!(
            e,
            ExecError::Cache(CacheError::Gap {
                slot: 0,
                layer: 0,
                pos: 2,
                len: 0
            })
        )
    });
    // The backends that just failed still compute (the shared pools were used above).
    conform(
        "kv_write after errors",
        &[Step::new(kv_graph(4), seq_batch(4, 0, inputs(4))).check("w", Check::Exact)],
        &CacheSpec {
            new: &small,
            slots: 1,
            check: Check::Exact,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// GGUF block-quantized weights
// ---------------------------------------------------------------------------------------------
//
// A block-quantized weight multiplies *quantized* activations on the CPU backend (8-bit codes
// per block of 32, or 256 for the K-quants, one f32 scale each: `QuantX`), as llama.cpp does,
// while the reference multiplies the f32 activations by the dequantized weight. So the
// matmul results differ by the activation rounding, which has a hard bound:
//
//   |y_cpu - y_ref| <= Σ_k |ŵ_k| · e_k  +  2 · (nb + 8) · u · Σ_k (|ŵ_k| + 2·μ_k) · (|x_k| + e_k)
//
// - `e_k = amax_b / 254 · (1 + 2^-20)` bounds `|x̂_k - x_k|`, `amax_b` the largest `|x|` of the
//   activation block of column `k` (round to nearest of `x · 127/amax` is within half a step
//   `d = amax/127`; the factor covers the f32 rounding of `x · 127/amax`).
// - The second term is the float arithmetic: the integer dot products are exact, then each of
//   the `nb` block terms takes a few roundings (the scale product, the integer's conversion,
//   the product, for min types a second product) and the `nb` terms are summed in f32; the
//   reference's `row_to_f32` rounds `d·sc·q - dmin·m` per element and its result to f32. Every
//   one of these is relative to a magnitude at most `Σ (|ŵ| + 2μ)·|x̂|`, where `μ_k` is the
//   magnitude of the min of `k`'s sub-block (`m` of Q4_1/Q5_1, `dmin·m_j` of Q2_K/Q4_K/Q5_K,
//   0 for the symmetric types): `|d·sc·q| <= |ŵ| + μ`.
//
// A wrong code, scale or min in one block moves a result by about `Σ|ŵ·x| / nb` (6 % of it
// for the 16 blocks of K = 512), while the bound is about `Σ|ŵ|·|x|max / 254` (< 1 % of
// `Σ|ŵ·x|` for activations uniform in (-1, 1)), so the checks catch such bugs. The SIMD tables
// are also checked against the generic one, far more tightly, in the kernels' unit tests.

/// Every GGUF block type with its test widths (whole blocks, one and several).
fn quant_widths(d: DType) -> [usize; 3] {
    if d.block_size() == 32 {
        [32, 96, 288]
    } else {
        [256, 512, 768]
    }
}

/// Every block type: the ones jing quantizes, then the IQ types (read-only).
fn block_types() -> impl Iterator<Item = DType> {
    DType::QUANTIZED.into_iter().chain(DType::IQUANTS)
}

/// A random weight `[rows, cols]` quantized to block type `d` by jing's reference quantizer;
/// for the IQ types, which it does not write, random blocks with scales `d` of weight size.
fn quant_weight(rng: &mut Rng, name: &str, d: DType, shape: &[usize]) -> Arc<Weight> {
    let n: usize = shape.iter().product();
    let cols = *shape.last().unwrap();
    let bytes = if jing_tensor::quant::can_quantize(d) {
        jing_tensor::quant::quantize(d, &rng.weights(n), cols)
    } else {
        let mut b: Vec<u8> = (0..n / d.block_size() * d.block_bytes())
            .map(|_| rng.next_u64() as u8)
            .collect();
        for blk in b.chunks_exact_mut(d.block_bytes()) {
            let scale = half::f16::from_f32(rng.uniform(-0.01, 0.01)).to_bits();
            jing_tensor::quant::iq::set_d(d, blk, scale);
        }
        b
    };
    Arc::new(Weight::new(name, d, shape.to_vec(), Bytes::from_vec(bytes)).expect("quant weight"))
}

/// `μ_k` for every element of `w` (row-major): the magnitude of the value its block would give
/// code 0, for the types with a min; 0 for the symmetric types.
fn quant_mins(w: &Weight) -> Vec<f64> {
    // The byte ranges of a block that hold codes, for the types with a min.
    let codes: std::ops::Range<usize> = match w.dtype {
        DType::Q4_1 => 4..20,
        DType::Q5_1 => 4..24,
        DType::Q2K => 16..80,
        DType::Q4K => 16..144,
        DType::Q5K => 16..176,
        _ => return vec![0.0; w.numel()],
    };
    let bb = w.dtype.block_bytes();
    let mut data = w.data.as_slice().to_vec();
    for blk in data.chunks_exact_mut(bb) {
        blk[codes.clone()].fill(0);
    }
    let z = Weight::new("mins", w.dtype, w.shape.clone(), Bytes::from_vec(data)).unwrap();
    z.to_f32_vec().iter().map(|v| (*v as f64).abs()).collect()
}

/// The per-element bound of `x [m, K] · Wᵀ` for a block weight (see above).
fn quant_bound(x: &[f32], w: &Weight) -> Vec<f64> {
    let (n, k) = (w.rows(), w.cols());
    let m = x.len() / k;
    let bs = w.dtype.block_size();
    let nb = k / bs;
    let wv = w.to_f32_vec();
    let mu = quant_mins(w);
    // e_k per activation element.
    let e: Vec<f64> = x
        .chunks(bs)
        .flat_map(|b| {
            let amax = b.iter().fold(0.0f64, |a, v| a.max((*v as f64).abs()));
            std::iter::repeat_n(amax / 254.0 * (1.0 + 2f64.powi(-20)), b.len())
        })
        .collect();
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        let (xr, er) = (&x[i * k..(i + 1) * k], &e[i * k..(i + 1) * k]);
        for r in 0..n {
            let (wr, mr) = (&wv[r * k..(r + 1) * k], &mu[r * k..(r + 1) * k]);
            let (mut act, mut mag) = (0.0f64, 0.0f64);
            for j in 0..k {
                let aw = (wr[j] as f64).abs();
                act += aw * er[j];
                mag += (aw + 2.0 * mr[j]) * ((xr[j] as f64).abs() + er[j]);
            }
            out.push(act + 2.0 * (nb + 8) as f64 * U * mag + 1e-30);
        }
    }
    out
}

/// Embed from block-quantized tables is exact (every backend dequantizes the row the same way).
#[test]
fn embed_quantized_tables_is_exact() {
    let mut rng = Rng::new(40);
    let vocab = 67;
    for d in block_types() {
        let k = quant_widths(d)[1];
        let table = quant_weight(&mut rng, "embed", d, &[vocab, k]);
        for t in [1, 7] {
            let mut g = GraphBuilder::new(t);
            let e = g.embed(&table);
            g.output("e", e);
            let mut tokens: Vec<u32> = (0..t).map(|_| rng.below(vocab) as u32).collect();
            tokens[0] = (vocab - 1) as u32;
            let step =
                Step::new(g.finish(), Batch::sequence(0, 0, &tokens)).check("e", Check::Exact);
            conform1(&format!("embed {d} K={k} T={t}"), step);
        }
    }
}

/// MatMul with every GGUF block type, T ∈ {1, 7, 33}, one and several blocks per row,
/// N ∈ {3, 37, 133}, and a rank-3 `x`, against the bound above.
#[test]
fn matmul_quantized_every_type_and_shape() {
    let mut rng = Rng::new(41);
    for d in block_types() {
        for k in quant_widths(d) {
            let ws: Vec<Arc<Weight>> = [3, 37, 133]
                .iter()
                .map(|&n| quant_weight(&mut rng, &format!("w{n}"), d, &[n, k]))
                .collect();
            for t in TOKENS {
                let x = rng.vec(t * k, -1.0, 1.0);
                let mut x2 = rng.vec(t * 2 * k, -1.0, 1.0);
                // One activation block all zero, one with a single large value.
                x2[..d.block_size()].fill(0.0);
                x2[d.block_size() + 3] = 40.0;
                let mut g = GraphBuilder::new(t);
                let xi = g.input("x", k);
                let x2i = g.input("x2", 2 * k);
                let x3 = g.reshape(x2i, &[t, 2, k]);
                let mut checks = Vec::new();
                for (j, w) in ws.iter().enumerate() {
                    let y = g.matmul(xi, w);
                    g.output(format!("y{j}"), y);
                    checks.push((format!("y{j}"), Check::Bound(quant_bound(&x, w))));
                }
                let y3 = g.matmul(x3, &ws[1]);
                g.output("y3", y3);
                checks.push(("y3".into(), Check::Bound(quant_bound(&x2, &ws[1]))));
                let mut step = Step::new(g.finish(), seq_batch(t, 0, vec![("x", x), ("x2", x2)]));
                step.checks = checks;
                conform1(&format!("matmul {d} K={k} T={t}"), step);
            }
        }
    }
}

/// MatMulId with block-quantized experts, the input shared by the slots and per slot.
#[test]
fn matmul_id_quantized_experts() {
    let mut rng = Rng::new(42);
    let (n_exp, n) = (6, 37);
    for d in block_types() {
        let k = quant_widths(d)[1];
        let experts: Arc<Vec<Arc<Weight>>> = Arc::new(
            (0..n_exp)
                .map(|i| quant_weight(&mut rng, &format!("expert{i}"), d, &[n, k]))
                .collect(),
        );
        for t in [1, 7] {
            for (shared, top_k) in [(true, 2), (false, 3)] {
                let width = if shared { k } else { top_k * k };
                let x = rng.vec(t * width, -1.0, 1.0);
                let scores = rng.vec(t * n_exp, 0.0, 1.0);
                let mut g = GraphBuilder::new(t);
                let (xi, si) = (g.input("x", width), g.input("s", n_exp));
                let xs = if shared {
                    xi
                } else {
                    g.reshape(xi, &[t, top_k, k])
                };
                let ids = g.moe_select(si, None, top_k, 1, 1, GroupScore::SumTop2);
                let y = g.matmul_id(xs, &experts, ids);
                g.output("y", y);
                let mut bound = Vec::with_capacity(t * top_k * n);
                let mut chosen = vec![0i32; top_k];
                for tok in 0..t {
                    let row = &scores[tok * n_exp..(tok + 1) * n_exp];
                    jing_graph::select_experts(
                        row,
                        None,
                        top_k,
                        1,
                        1,
                        GroupScore::SumTop2,
                        &mut chosen,
                    );
                    for (j, &id) in chosen.iter().enumerate() {
                        let xr = if shared {
                            tok * k
                        } else {
                            (tok * top_k + j) * k
                        };
                        bound.extend(quant_bound(&x[xr..xr + k], &experts[id as usize]));
                    }
                }
                let step = Step::new(g.finish(), seq_batch(t, 0, vec![("x", x), ("s", scores)]))
                    .check("y", Check::Bound(bound));
                let form = if shared { "shared" } else { "per-slot" };
                conform1(&format!("matmul_id {d} {form} K={k} T={t}"), step);
            }
        }
    }
}
