//! dot, axpy and row_axpy on every table.

use super::util::{bound, fp8_code, weight, XorShift, U};
use crate::kernels::KernelTable;
use jing_tensor::DType;

const LENS: [usize; 12] = [0, 1, 7, 8, 15, 16, 17, 63, 64, 65, 576, 1024 + 7];

#[test]
fn dot_matches_reference() {
    let mut rng = XorShift::new(10);
    for n in LENS {
        let (a, b) = (rng.f32s(n), rng.f32s(n));
        let r: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        let abs: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| (x as f64 * y as f64).abs())
            .sum();
        for t in KernelTable::available() {
            let got = (t.dot)(&a, &b) as f64;
            assert!(
                (got - r).abs() <= bound(n, abs),
                "{} n={n}: {got} vs {r}",
                t.name
            );
        }
    }
}

#[test]
fn axpy_matches_reference() {
    let mut rng = XorShift::new(11);
    for n in LENS {
        let (x, y0) = (rng.f32s(n), rng.f32s(n));
        let a = rng.uniform(-2.0, 2.0);
        for t in KernelTable::available() {
            let mut y = y0.clone();
            (t.axpy)(a, &x, &mut y);
            for j in 0..n {
                let r = y0[j] as f64 + a as f64 * x[j] as f64;
                let b = 2.0 * U * (y0[j].abs() as f64 + (a * x[j]).abs() as f64);
                assert!(
                    (y[j] as f64 - r).abs() <= b,
                    "{} n={n} j={j}: {} vs {r}",
                    t.name,
                    y[j]
                );
            }
        }
    }
}

#[test]
fn row_axpy_matches_reference() {
    let mut rng = XorShift::new(12);
    for dtype in [DType::F32, DType::BF16, DType::F16, DType::F8E4M3] {
        for (k, block) in [
            (1, None),
            (200, Some([128, 128])),
            (1024 + 7, Some([128, 128])),
            (300, None),
        ] {
            let block = if dtype == DType::F8E4M3 {
                block.or(Some([2, 64]))
            } else {
                block.filter(|_| k == 200)
            };
            let full = weight(&mut rng, dtype, 260, k, block);
            let w = full.slice_rows(131, 260);
            let mut row = vec![0.0f32; k];
            for r in [0, 1, 128] {
                w.row_to_f32(r, &mut row);
                let a = rng.uniform(-2.0, 2.0);
                let y0 = rng.f32s(k);
                for t in KernelTable::available() {
                    let mut y = y0.clone();
                    (t.row_axpy)(&w, r, a, &mut y);
                    for j in 0..k {
                        let want = y0[j] as f64 + a as f64 * row[j] as f64;
                        // One rounding each for a·scale, its product with the code, the sum,
                        // and row_to_f32's code·scale in the reference.
                        let b = 4.0 * U * (y0[j].abs() as f64 + (a as f64 * row[j] as f64).abs())
                            + 1e-30;
                        assert!(
                            (y[j] as f64 - want).abs() <= b,
                            "{} {dtype} K={k} r={r} j={j}: {} vs {want}",
                            t.name,
                            y[j]
                        );
                    }
                }
            }
        }
    }
    // Sanity: fp8_code never yields NaN codes.
    let mut rng = XorShift::new(13);
    assert!((0..1000).all(|_| fp8_code(&mut rng) & 0x7f != 0x7f));
}
