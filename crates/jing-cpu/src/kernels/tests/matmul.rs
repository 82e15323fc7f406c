//! Matmul: every available table, every float dtype, decode and prefill shapes, partial scale
//! blocks both ways, row-slice views, and rows split between two "threads".

use super::util::{bound, reference, weight, XorShift};
use crate::kernels::{KernelTable, OutMatrix};
use jing_tensor::{DType, Weight};

const DTYPES: [DType; 4] = [DType::F32, DType::BF16, DType::F16, DType::F8E4M3];
const MS: [usize; 7] = [1, 2, 3, 4, 5, 7, 33];
const KS: [usize; 8] = [1, 16, 33, 127, 128, 200, 300, 1024 + 7];
const NS: [usize; 3] = [1, 5, 130];
const FP8_BLOCK: [usize; 2] = [128, 128];

/// `y = x · Wᵀ` through `t`, `[m][N]`. The rows are computed in two uneven calls (as two pool
/// threads would) into an output with a padded leading dimension, whose padding must stay
/// untouched.
pub(super) fn run(t: &KernelTable, w: &Weight, x: &[f32], m: usize) -> Vec<f32> {
    let n = w.rows();
    let ld = n + 3;
    let sentinel = f32::from_bits(0x7fc0_dead);
    let mut buf = vec![sentinel; m * ld];
    {
        let y = OutMatrix::new(&mut buf, ld);
        let split = n / 3;
        (t.matmul)(w, x, m, 0..split, &y);
        (t.matmul)(w, x, m, split..n, &y);
    }
    let mut out = Vec::with_capacity(m * n);
    for row in buf.chunks(ld) {
        assert!(
            row[n..].iter().all(|v| v.to_bits() == sentinel.to_bits()),
            "{}: padding written",
            t.name
        );
        out.extend_from_slice(&row[..n]);
    }
    out
}

/// Checks every table against the f64 reference and the generic table, within [`bound`].
pub(super) fn check_all(w: &Weight, x: &[f32], m: usize, what: &str) {
    let k = w.cols();
    let want = reference(w, x, m);
    let generic = run(&KernelTable::generic(), w, x, m);
    for t in KernelTable::available() {
        let got = if t.name == "generic" {
            generic.clone()
        } else {
            run(&t, w, x, m)
        };
        for (idx, ((&g, &gen), &(r, abs))) in got.iter().zip(&generic).zip(&want).enumerate() {
            let b = bound(k, abs);
            let (i, n) = (idx / w.rows(), idx % w.rows());
            assert!(
                (g as f64 - r).abs() <= b,
                "{} {what}: y[{i},{n}] = {g}, reference {r}, |err| {} > bound {b}",
                t.name,
                (g as f64 - r).abs()
            );
            assert!(
                (g as f64 - gen as f64).abs() <= b,
                "{} {what}: y[{i},{n}] = {g}, generic {gen}, bound {b}",
                t.name
            );
        }
    }
}

#[test]
fn every_dtype_and_shape() {
    let mut rng = XorShift::new(1);
    for dtype in DTYPES {
        let block = (dtype == DType::F8E4M3).then_some(FP8_BLOCK);
        for &k in &KS {
            for &n in &NS {
                let w = weight(&mut rng, dtype, n, k, block);
                for &m in &MS {
                    let x = rng.f32s(m * k);
                    check_all(&w, &x, m, &format!("{dtype} m={m} K={k} N={n}"));
                }
            }
        }
    }
}

#[test]
fn fp8_row_slice_views() {
    let mut rng = XorShift::new(2);
    let full = weight(&mut rng, DType::F8E4M3, 300, 1024 + 7, Some(FP8_BLOCK));
    for (a, b) in [(37, 167), (200, 300), (127, 129)] {
        let w = full.slice_rows(a, b);
        for &m in &MS {
            let x = rng.f32s(m * w.cols());
            check_all(&w, &x, m, &format!("rows {a}..{b} m={m}"));
        }
    }
}

#[test]
fn other_block_shapes() {
    let mut rng = XorShift::new(3);
    let cases = [
        // Many narrow blocks, none holding a whole 64-column FP8 group.
        (DType::F8E4M3, [16, 48]),
        // Wide blocks (several FP8 groups each).
        (DType::F8E4M3, [64, 640]),
        // Not a multiple of 16 columns: every table falls back to generic.
        (DType::F8E4M3, [3, 40]),
        // A block scale on another dtype is applied the same way.
        (DType::BF16, [128, 128]),
        // BF16 blocks that do not divide into 32-column groups (AVX-512 pairs: one or two
        // whole groups, then 16 columns in order), and narrower than a group.
        (DType::BF16, [16, 48]),
        (DType::BF16, [64, 80]),
        (DType::BF16, [16, 16]),
    ];
    for (dtype, block) in cases {
        for &k in &[100, 1024 + 7] {
            let w = weight(&mut rng, dtype, 70, k, Some(block));
            for &m in &MS {
                let x = rng.f32s(m * k);
                check_all(&w, &x, m, &format!("{dtype} block {block:?} m={m} K={k}"));
            }
        }
    }
}

#[test]
fn several_token_panels_and_quads() {
    let mut rng = XorShift::new(4);
    for dtype in [DType::BF16, DType::F8E4M3, DType::F32] {
        let block = (dtype == DType::F8E4M3).then_some(FP8_BLOCK);
        let w = weight(&mut rng, dtype, 9, 4096 + 16, block);
        let m = 70;
        let x = rng.f32s(m * w.cols());
        check_all(&w, &x, m, &format!("{dtype} m={m}"));
    }
}

#[test]
fn zero_columns_and_empty_ranges() {
    let w = Weight::new(
        "w",
        DType::BF16,
        vec![3, 0],
        jing_tensor::Bytes::from_vec(vec![]),
    )
    .unwrap();
    for t in KernelTable::available() {
        for m in [1, 5] {
            let mut buf = vec![7.0f32; m * 3];
            let y = OutMatrix::new(&mut buf, 3);
            (t.matmul)(&w, &[], m, 0..3, &y);
            (t.matmul)(&w, &[], m, 1..1, &y);
            assert!(buf.iter().all(|&v| v == 0.0), "{}", t.name);
        }
    }
}
