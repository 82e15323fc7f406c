//! Speed checks, not tests (no test asserts a duration). Run with
//! `cargo test --release -p jing-cpu kernels::tests::bandwidth -- --ignored --nocapture --test-threads=1`
//! (one at a time: they measure memory bandwidth).

use super::util::{weight, XorShift};
use crate::kernels::{KernelTable, OutMatrix};
use jing_tensor::{DType, Weight};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs `f` repeatedly for about `budget`; returns seconds per call (best of 3 rounds).
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let (start, mut calls) = (Instant::now(), 0u32);
        while start.elapsed() < budget / 3 {
            f();
            calls += 1;
        }
        best = best.min(start.elapsed().as_secs_f64() / calls as f64);
    }
    best
}

/// Copies of a weight whose total exceeds the L3 cache, so cycling through them streams DRAM.
fn copies(rng: &mut XorShift, dtype: DType, n: usize, k: usize) -> Vec<Weight> {
    let block = (dtype == DType::F8E4M3).then_some([128, 128]);
    let one = weight(rng, dtype, n, k, block);
    let count = (256usize << 20).div_ceil(one.stored_bytes()).max(2);
    (0..count)
        .map(|_| weight(rng, dtype, n, k, block))
        .collect()
}

#[test]
#[ignore = "speed check: --release --ignored --nocapture"]
fn bandwidth() {
    // Baseline: a plain read of 256 MiB (8 u64 accumulators, vectorized by the compiler).
    let buf = vec![1u64; 32 << 20];
    let secs = time(Duration::from_secs(2), || {
        let mut acc = [0u64; 8];
        for c in black_box(&buf).chunks_exact(8) {
            for (a, v) in acc.iter_mut().zip(c) {
                *a = a.wrapping_add(*v);
            }
        }
        black_box(acc);
    });
    println!(
        "memory read loop        : {:6.1} GB/s",
        (buf.len() * 8) as f64 / secs / 1e9
    );
    drop(buf);
    let best = KernelTable::detect();
    let buf = vec![1.0f32; 64 << 20];
    let (a, b) = buf.split_at(buf.len() / 2);
    let secs = time(Duration::from_secs(2), || {
        black_box((best.dot)(black_box(a), black_box(b)));
    });
    println!(
        "{:<6} dot, 2 streams   : {:6.1} GB/s",
        best.name,
        (buf.len() * 4) as f64 / secs / 1e9
    );
    drop(buf);

    let mut rng = XorShift::new(99);
    let (n, k) = (4096, 4096);
    let x = rng.f32s(4 * k);
    let mut y = vec![0.0f32; 4 * n];
    for dtype in [DType::BF16, DType::F8E4M3, DType::F16, DType::F32] {
        let ws = copies(&mut rng, dtype, n, k);
        for t in KernelTable::available() {
            let mut i = 0;
            let secs = time(Duration::from_secs(2), || {
                let out = OutMatrix::new(&mut y, n);
                (t.matmul)(&ws[i % ws.len()], &x[..k], 1, 0..n, &out);
                i += 1;
            });
            let bytes = ws[0].stored_bytes() as f64;
            // The same kernel on a weight that stays in L2: the in-core limit.
            let small = &ws[0].slice_rows(0, 128);
            let secs_l2 = time(Duration::from_millis(300), || {
                let out = OutMatrix::new(&mut y, n);
                (t.matmul)(small, &x[..k], 1, 0..128, &out);
            });
            println!(
                "{:<7} {:<7} m=1 {n}x{k}: {:7.3} ms  {:6.1} GB/s of weights from DRAM, {:6.1} GB/s from L2",
                t.name,
                dtype.to_string(),
                secs * 1e3,
                bytes / secs / 1e9,
                small.stored_bytes() as f64 / secs_l2 / 1e9,
            );
            if t.name == "generic" {
                continue;
            }
            for m in [2, 3, 4] {
                let secs_m = time(Duration::from_secs(1), || {
                    let out = OutMatrix::new(&mut y, n);
                    (t.matmul)(&ws[i % ws.len()], &x[..m * k], m, 0..n, &out);
                    i += 1;
                });
                println!(
                    "{:<7} {:<7} m={m} {n}x{k}: {:7.3} ms  ({:.2}x the time of m=1)",
                    t.name,
                    dtype.to_string(),
                    secs_m * 1e3,
                    secs_m / secs
                );
            }
        }
    }
}

#[test]
#[ignore = "speed check: --release --ignored --nocapture"]
fn prefill_speed() {
    let mut rng = XorShift::new(98);
    let (n, k) = (2048, 4096);
    for dtype in [DType::BF16, DType::F8E4M3] {
        let block = (dtype == DType::F8E4M3).then_some([128, 128]);
        let w = weight(&mut rng, dtype, n, k, block);
        for m in [1, 2, 4, 5, 8, 16, 64, 256] {
            let x = rng.f32s(m * k);
            let mut y = vec![0.0f32; m * n];
            for t in KernelTable::available()
                .into_iter()
                .filter(|t| t.name != "generic")
            {
                let secs = time(Duration::from_millis(600), || {
                    let out = OutMatrix::new(&mut y, n);
                    (t.matmul)(&w, &x, m, 0..n, &out);
                });
                println!(
                    "{:<7} {:<7} m={m:<3} {n}x{k}: {:8.3} ms  {:6.1} GFLOP/s",
                    t.name,
                    dtype.to_string(),
                    secs * 1e3,
                    2.0 * (m * n * k) as f64 / secs / 1e9
                );
            }
        }
    }
}
