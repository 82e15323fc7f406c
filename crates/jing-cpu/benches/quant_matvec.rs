//! Speed of the GGUF block-type matmul and of the float weights decode streams (bf16, and
//! DeepSeek's block-scaled FP8 `f8_e4m3`) (no assertions): GB/s of weight bytes for the decode
//! matvecs of a DeepSeek-V2-Lite-shaped model (an expert's `[1408, 2048]` gate/up projection
//! and the `[102400, 2048]` output head), on 1 and 2 threads, next to a plain read loop; on 2
//! threads, Qwen2.5-1.5B's `[8960, 1536]` gate/up projection (rows of 1536, which DeepSeek-V3's
//! `q_b_proj` also has: six 256-blocks, a group of four and a group of two in the K-quant
//! kernels); the prefill rate of `[1408, 2048]` at 128 tokens; and, for the 32-element types,
//! the rate on rows of 128 (MLA's `attn_k_b`, one head: `[512, 128]`); and, where the table
//! reads `Q4_K`, `Q6_K`, `Q8_0` and `Q5_0` rows interleaved by 16, that layout against the
//! stored one; where it reads float rows in column panels, DeepSeek-V3's `[2048, 7168]` expert
//! gate/up in panels against as stored (and FP8's against `Q8_0`'s, and against bf16
//! activations as the table loads FP8 for them).
//!
//! ```sh
//! cargo bench -p jing-cpu --bench quant_matvec            # every type
//! cargo bench -p jing-cpu --bench quant_matvec -- q4_K q8_0 iq2_xxs
//! cargo bench -p jing-cpu --bench quant_matvec -- bf16 f8_e4m3 q8_0   # FP8 against Q8_0
//! JING_TABLE=avx2 cargo bench -p jing-cpu --bench quant_matvec -- q4_K  # another table
//! ```
//!
//! The matvecs run through the CPU backend (its compute pool and graph executor, as a model
//! runs them). The `[1408, 2048]` weight cycles through copies totalling 256 MiB so that it
//! streams from DRAM, as decode does; the output head is 50-115 MB by itself.

mod common;

use common::{time, values};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jing_cpu::kernels::{Fp8Activations, KernelTable, OutMatrix, QuantX};
use jing_cpu::CpuBackend;
use jing_graph::{Backend, Batch, Graph, GraphBuilder, KvCache};
use jing_tensor::huge_pages::vec_in_huge_pages;
use jing_tensor::{quant, Bytes, DType, Weight};

/// A `[rows, cols]` weight of `dtype`: real quantized blocks for one row group, repeated (the
/// kernels' speed does not depend on the values; quantizing 100k rows would take a while).
/// The IQ types, which jing does not quantize to, get random blocks with small scales.
fn weight(dtype: DType, rows: usize, cols: usize, seed: u64) -> Arc<Weight> {
    if !dtype.is_quantized() {
        return Arc::new(float_weight(dtype, rows, cols, seed));
    }
    let group = 64.min(rows);
    let one = if quant::can_quantize(dtype) {
        quant::quantize(dtype, &values(seed, group * cols), cols)
    } else {
        let raw = values(seed, group * dtype.row_bytes(cols));
        let mut b: Vec<u8> = raw.iter().map(|v| (v * 128.0 + 128.0) as u8).collect();
        for blk in b.chunks_exact_mut(dtype.block_bytes()) {
            quant::iq::set_d(dtype, blk, 0x1400); // 2^-10
        }
        b
    };
    let mut bytes = Vec::with_capacity(rows * dtype.row_bytes(cols));
    while bytes.len() < rows * dtype.row_bytes(cols) {
        let need = rows * dtype.row_bytes(cols) - bytes.len();
        bytes.extend_from_slice(&one[..need.min(one.len())]);
    }
    // In 2 MiB pages, as the backend puts the weights of a model that fits in memory (a piece
    // of an arena, so that a weight of a few MiB is not in 4 KiB pages). In 4 KiB pages this
    // bench hid a loss decode showed: a `Q6_K` kernel that read each pair of rows out of
    // address order streamed `[8960, 1536]` as fast as the plain one there, and at 18 against
    // 30-36 GB/s in 2 MiB pages (two Zen 4 threads), as in decode.
    let w = Weight::new("w", dtype, vec![rows, cols], Bytes::from_vec(bytes)).unwrap();
    Arc::new(w.in_huge_pages().expect("memory mapped for the weight"))
}

/// A `[rows, cols]` bf16 weight, or an FP8 one with 128x128 block scales as DeepSeek ships
/// them (codes of values in (-1, 1), never NaN).
fn float_weight(dtype: DType, rows: usize, cols: usize, seed: u64) -> Weight {
    let v = values(seed, rows * cols);
    let mut bytes = Vec::with_capacity(dtype.row_bytes(cols) * rows);
    match dtype {
        DType::BF16 => bytes.extend(
            v.iter()
                .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes()),
        ),
        // Sign, then a magnitude below 0x7F (the NaN code).
        DType::F8E4M3 => bytes.extend(
            v.iter()
                .map(|x| ((*x < 0.0) as u8) << 7 | ((x.abs() * 126.0) as u8).min(0x7E)),
        ),
        other => panic!("no {other} weights in this bench"),
    }
    let w = Weight::new("w", dtype, vec![rows, cols], Bytes::from_vec(bytes)).unwrap();
    // In 2 MiB pages, as above.
    let w = w.in_huge_pages().expect("memory mapped for the weight");
    if dtype != DType::F8E4M3 {
        return w;
    }
    let grid = [rows.div_ceil(128), cols.div_ceil(128)];
    let scales = Bytes::from_f32(&values(seed + 1, grid[0] * grid[1]));
    w.with_block_scale("s", &grid, scales, [128, 128]).unwrap()
}

/// `x · Wᵀ` for `m` tokens of `x` into `y`, through the table's entry for the weight's type.
fn matmul(table: KernelTable, w: &Weight, x: &[f32], m: usize, y: &mut [f32]) {
    let n = w.rows();
    if w.dtype.is_quantized() {
        let qx = QuantX::new(w.dtype, x, m);
        (table.matmul_q)(w, &qx, 0..n, &OutMatrix::new(y, n));
    } else {
        (table.matmul)(w, x, m, 0..n, &OutMatrix::new(y, n));
    }
}

/// Copies of a `[rows, cols]` weight of `dtype` totalling at least 256 MiB, so that a matvec
/// over all of them streams from DRAM, as decode does.
fn dram_copies(dtype: DType, rows: usize, cols: usize, seed: u64) -> Vec<Arc<Weight>> {
    let n = (256usize << 20).div_ceil(dtype.row_bytes(cols) * rows);
    (0..n).map(|_| weight(dtype, rows, cols, seed)).collect()
}

/// One decode step's graph: `x [1, K]` times each of `ws`.
fn matvec_graph(ws: &[Arc<Weight>]) -> Graph {
    let mut g = GraphBuilder::new(1);
    let x = g.input("x", ws[0].cols());
    for (i, w) in ws.iter().enumerate() {
        let y = g.matmul(x, w);
        g.output(format!("y{i}"), y);
    }
    g.finish()
}

/// GB/s of weight bytes for `x · Wᵀ` over all of `ws` (one graph) on `threads`, with the
/// kernels of `table`.
fn matvec_gbs(ws: &[Arc<Weight>], threads: usize, table: KernelTable) -> f64 {
    let backend = CpuBackend::with_kernels(Some(threads), table);
    let graph = matvec_graph(ws);
    let mut batch = Batch::sequence(0, 0, &[0]);
    batch.inputs = vec![("x".to_string(), values(7, ws[0].cols()))];
    let mut cache = KvCache::new(1, 1, 1);
    let secs = time(Duration::from_millis(1500), || {
        black_box(backend.execute(&graph, &batch, &mut cache).unwrap());
    });
    ws.iter().map(|w| w.stored_bytes()).sum::<usize>() as f64 / secs / 1e9
}

/// A plain read of 256 MiB on `threads` threads: the bandwidth the matvecs are measured against.
fn read_gbs(threads: usize) -> f64 {
    let mut buf = vec_in_huge_pages(32 << 20);
    buf.resize(32 << 20, 1u64);
    let secs = time(Duration::from_millis(1500), || {
        std::thread::scope(|s| {
            for part in buf.chunks(buf.len() / threads) {
                s.spawn(move || {
                    let mut acc = [0u64; 8];
                    for c in black_box(part).chunks_exact(8) {
                        for (a, v) in acc.iter_mut().zip(c) {
                            *a = a.wrapping_add(*v);
                        }
                    }
                    black_box(acc);
                });
            }
        })
    });
    (buf.len() * 8) as f64 / secs / 1e9
}

/// GB/s of `w`'s bytes for one token (activations from seed `seed`) on one thread, the
/// weight staying in cache: the fastest of many short runs, which a busy machine disturbs
/// least.
fn in_cache_gbs(w: &Weight, seed: u64, best: KernelTable) -> f64 {
    let (n, k) = (w.rows(), w.cols());
    let x = values(seed, k);
    let qx = w.dtype.is_quantized().then(|| QuantX::new(w.dtype, &x, 1));
    let mut y = vec![0.0f32; n];
    let mut fastest = f64::INFINITY;
    for _ in 0..2000 {
        let t0 = Instant::now();
        match &qx {
            Some(qx) => (best.matmul_q)(w, qx, 0..n, &OutMatrix::new(&mut y, n)),
            None => (best.matmul)(w, &x, 1, 0..n, &OutMatrix::new(&mut y, n)),
        }
        fastest = fastest.min(t0.elapsed().as_secs_f64());
    }
    w.stored_bytes() as f64 / fastest / 1e9
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let types: Vec<DType> = [DType::BF16, DType::F8E4M3]
        .into_iter()
        .chain(DType::QUANTIZED)
        .chain(DType::IQUANTS)
        .filter(|d| filters.is_empty() || filters.iter().any(|f| f == d.name()))
        .collect();
    // The CPU's best table, or the one `JING_TABLE` names (e.g. `avx2` on an AVX-512 CPU).
    let best = match std::env::var("JING_TABLE") {
        Ok(name) => KernelTable::by_name(&name)
            .unwrap_or_else(|| panic!("JING_TABLE={name}: no such table on this CPU")),
        Err(_) => KernelTable::detect(),
    };
    println!("kernel table: {}", best.name);
    let (r1, r2) = (read_gbs(1), read_gbs(2));
    println!("plain read loop: {r1:.1} GB/s (1 thread), {r2:.1} GB/s (2 threads)");
    println!(
        "{:<7} {:>22} {:>22} {:>16} {:>14} {:>18} {:>18}",
        "type",
        "[1408,2048] 1t / 2t",
        "[102400,2048] 1t / 2t",
        "[8960,1536] 2t",
        "in L2, 1t",
        "prefill m=128, 1t",
        "short rows L2, 1t"
    );
    for &d in &types {
        let copies = dram_copies(d, 1408, 2048, 1);
        let one = copies[0].clone();
        let (e1, e2) = (matvec_gbs(&copies, 1, best), matvec_gbs(&copies, 2, best));
        drop(copies);
        let head = [weight(d, 102_400, 2048, 2)];
        let (h1, h2) = (matvec_gbs(&head, 1, best), matvec_gbs(&head, 2, best));
        drop(head);
        // Rows of 1536, streaming from DRAM on two threads as decode does.
        let gates = dram_copies(d, 8960, 1536, 8);
        let q2 = matvec_gbs(&gates, 2, best);
        drop(gates);
        // The kernel alone on a weight that stays in L2 (its in-core limit): the fastest of
        // many short runs, which a busy machine disturbs least.
        let l2 = in_cache_gbs(&one.slice_rows(0, 128), 4, best);
        // Short rows, in L2: one head's `attn_k_b` (`[512, 128]`, 4 blocks of 32 per row) for
        // the 32-element types, its `attn_v_b` (`[128, 512]`, 2 blocks of 256 per row) for the
        // 256-element ones, which MLA decode multiplies once per head and layer; per-row costs
        // dominate here.
        let short = d.is_quantized().then(|| {
            let (rows, cols) = if d.block_size() <= 128 {
                (512, 128)
            } else {
                (128, 512)
            };
            in_cache_gbs(&weight(d, rows, cols, 5), 6, best)
        });
        // Prefill: 128 tokens, one thread, weights from cache.
        let m = 128;
        let x = values(3, m * 2048);
        let mut y = vec![0.0f32; m * 1408];
        let secs = time(Duration::from_millis(900), || {
            matmul(best, &one, &x, m, &mut y);
        });
        let gops = 2.0 * (m * 1408 * 2048) as f64 / secs / 1e9;
        let short = short.map_or("-".to_string(), |v| format!("{v:.1} GB/s"));
        println!(
            "{:<7} {:>9.1} / {:>5.1} GB/s {:>9.1} / {:>5.1} GB/s {:>11.1} GB/s {:>9.1} GB/s {:>12.0} GOP/s {:>18}",
            d.name(),
            e1,
            e2,
            h1,
            h2,
            q2,
            l2,
            gops,
            short
        );
    }
    for d in [DType::Q4K, DType::Q6K, DType::Q8_0, DType::Q5_0] {
        if best.interleaved_rows16 && types.contains(&d) {
            interleaved_rows16(d, best);
        }
    }
    for d in [DType::BF16, DType::F8E4M3] {
        if best.float_panels && types.contains(&d) {
            float_panels(d, best);
        }
    }
}

/// bf16 in panels of lines or FP8 in column panels, as the backend loads them for a table that
/// reads them so (`jing_tensor::panels`), against the rows as stored: DeepSeek-V3's expert
/// gate/up `[2048, 7168]` (prefill of 256 of its rows), and for bf16 also Qwen2.5-1.5B's
/// `[8960, 1536]` (one panel; prefill of 1024 rows).
fn float_panels(d: DType, best: KernelTable) {
    let load = |w: &Weight| match d {
        DType::F8E4M3 => w.in_panels(),
        _ => w.in_panel_lines(),
    };
    // The layout, from one group of the shape.
    let layout = load(&weight(d, 64, 7168, 11))
        .expect("the shape takes the layout")
        .layout;
    println!(
        "{} in {layout:?} (as this table loads it) / as stored:",
        d.name()
    );
    laid_out_vs_stored(d, [2048, 7168], 11, 256, load, best);
    if d == DType::BF16 {
        laid_out_vs_stored(d, [8960, 1536], 8, 1024, load, best);
    }
    // FP8 against `Q8_0` on the same shape, as this table loads each (one byte per weight
    // both; the goal is FP8 at `Q8_0`'s rate).
    if d == DType::F8E4M3 {
        let q8: Vec<Arc<Weight>> = dram_copies(DType::Q8_0, 2048, 7168, 11)
            .iter()
            .map(|w| match best.interleaved_rows16 {
                true => Arc::new(w.interleave_rows16().expect("rows of 16")),
                false => w.clone(),
            })
            .collect();
        let (q1, q2) = (matvec_gbs(&q8, 1, best), matvec_gbs(&q8, 2, best));
        println!("  q8_0 [2048,7168] as this table loads it: 1t {q1:.1} GB/s, 2t {q2:.1} GB/s");
        drop(q8);
        // Against bf16 activations, as this table loads FP8 for them.
        let bf = best.with_fp8_activations(Fp8Activations::Bf16);
        let stored = dram_copies(d, 2048, 7168, 11);
        let laid_out = match bf.fp8_in_lines() {
            true => rearranged(&stored, Weight::fp8_in_panel_lines),
            false => rearranged(&stored, Weight::in_panels),
        };
        drop(stored);
        let (b1, b2) = (matvec_gbs(&laid_out, 1, bf), matvec_gbs(&laid_out, 2, bf));
        println!(
            "  f8_e4m3 [2048,7168] against bf16 activations, in {:?}: 1t {b1:.1} GB/s, 2t {b2:.1} GB/s",
            laid_out[0].layout
        );
    }
}

/// `[n, k]` of dtype `d` in `load`'s layout against the rows as stored: GB/s from DRAM on one
/// and two threads, and prefill (128 tokens) of its first `prefill_rows` rows on one thread.
fn laid_out_vs_stored(
    d: DType,
    [n, k]: [usize; 2],
    seed: u64,
    prefill_rows: usize,
    load: impl Fn(&Weight) -> Option<Weight>,
    best: KernelTable,
) {
    let stored = dram_copies(d, n, k, seed);
    let laid_out = rearranged(&stored, load);
    let (one, two) = (
        stored_vs(&stored, &laid_out, 1, best),
        stored_vs(&stored, &laid_out, 2, best),
    );
    let pre = [
        prefill_gops(&stored[0].slice_rows(0, prefill_rows), best),
        prefill_gops(&laid_out[0].slice_rows(0, prefill_rows), best),
    ];
    println!(
        "  [{n},{k}] 1t {:.1} / {:.1} GB/s, 2t {:.1} / {:.1} GB/s; prefill m=128 of {prefill_rows} rows, 1t {:.0} / {:.0} GOP/s",
        one[1], one[0], two[1], two[0], pre[1], pre[0]
    );
}

/// `Q4_K`, `Q6_K`, `Q8_0` or `Q5_0` as the backend loads it for a table that reads rows interleaved by
/// 16 (see `jing_tensor::quant::q4_k_rows16`), against the rows as stored: Qwen2.5-1.5B's
/// `[8960, 1536]` from DRAM on one and two threads, in L2 on one thread for 1 and 4 tokens (4 tokens:
/// a decode step of four sequences, or a short prompt), and prefill (128 tokens, dequantized
/// rows) on one thread.
fn interleaved_rows16(d: DType, best: KernelTable) {
    let stored = dram_copies(d, 8960, 1536, 8);
    let interleaved = rearranged(&stored, |w| w.interleave_rows16());
    // One thread alone reads less than two (its own misses in flight are the limit), and
    // finds out how well a kernel overlaps its compute with the stream.
    let (dram1, dram) = (
        stored_vs(&stored, &interleaved, 1, best),
        stored_vs(&stored, &interleaved, 2, best),
    );
    let small = stored[0].slice_rows(0, 512);
    let small_i = interleaved[0].slice_rows(0, 512);
    let l2 = |m| {
        [
            tokens_in_cache_gbs(&small, m, best),
            tokens_in_cache_gbs(&small_i, m, best),
        ]
    };
    let (one, four) = (l2(1), l2(4));
    // Prefill: 128 tokens through the f32 entry point, which dequantizes the rows (taking
    // interleaved groups apart first).
    let pre = [prefill_gops(&small, best), prefill_gops(&small_i, best)];
    println!(
        "{} rows interleaved by 16 (as this table loads them) / as stored:",
        d.name()
    );
    println!(
        "  [8960,1536] 1t {:.1} / {:.1} GB/s, 2t {:.1} / {:.1} GB/s; in L2, 1t: 1 token {:.1} / {:.1} GB/s, 4 tokens {:.1} / {:.1} GB/s; prefill m=128, 1t {:.0} / {:.0} GOP/s",
        dram1[1], dram1[0], dram[1], dram[0], one[1], one[0], four[1], four[0], pre[1], pre[0]
    );
}

/// Each of `ws` rearranged by `layout` (a `Weight` method that returns the weight in another
/// layout, as the backend loads it; every one of `ws` has that layout).
fn rearranged(ws: &[Arc<Weight>], layout: impl Fn(&Weight) -> Option<Weight>) -> Vec<Arc<Weight>> {
    ws.iter()
        .map(|w| Arc::new(layout(w).expect("the weight takes the layout")))
        .collect()
}

/// GB/s of `x · Wᵀ` over `stored` and over `other` (the same weights in another layout) on
/// `threads`: `[stored, other]`.
fn stored_vs(
    stored: &[Arc<Weight>],
    other: &[Arc<Weight>],
    threads: usize,
    best: KernelTable,
) -> [f64; 2] {
    [
        matvec_gbs(stored, threads, best),
        matvec_gbs(other, threads, best),
    ]
}

/// GOP/s of 128 tokens times `w` through the table's f32 entry point on one thread, the weight
/// in cache (prefill).
fn prefill_gops(w: &Weight, best: KernelTable) -> f64 {
    let (n, m) = (w.rows(), 128);
    let x = values(3, m * w.cols());
    let mut y = vec![0.0f32; m * n];
    let secs = time(Duration::from_millis(900), || {
        (best.matmul)(w, &x, m, 0..n, &OutMatrix::new(&mut y, n));
    });
    2.0 * (m * n * w.cols()) as f64 / secs / 1e9
}

/// GB/s of `w`'s bytes for `m` tokens at once on one thread, the weight in cache (the fastest
/// of many runs).
fn tokens_in_cache_gbs(w: &Weight, m: usize, best: KernelTable) -> f64 {
    let n = w.rows();
    let qx = QuantX::new(w.dtype, &values(9, m * w.cols()), m);
    let mut y = vec![0.0f32; m * n];
    let mut fastest = f64::INFINITY;
    for _ in 0..500 {
        let t0 = Instant::now();
        (best.matmul_q)(w, &qx, 0..n, &OutMatrix::new(&mut y, n));
        fastest = fastest.min(t0.elapsed().as_secs_f64());
    }
    black_box(&y);
    w.stored_bytes() as f64 / fastest / 1e9
}
