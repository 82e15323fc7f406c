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
                    (t.row_axpy)(&w, r, &[a], &mut y);
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

/// Many rows in one call (groups of 8 and single rows, in the SIMD tables) give, bit for bit,
/// what one call per row gives in order: the same FMAs in the same order. The one-row calls
/// are checked against the reference above. And every SIMD table gives the same bits (the same
/// FMAs of the same values, however each decodes them: AVX-512's FP8 table lookup included).
#[test]
fn row_axpy_of_many_rows_is_one_row_after_another() {
    let mut rng = XorShift::new(14);
    for dtype in [DType::F32, DType::BF16, DType::F16, DType::F8E4M3] {
        // Blocks of whole 64-column steps, a block of 16 after them (DeepSeek V3's tiny
        // fixture's 144), of 64 then 8, and no blocks (tails of 13).
        let shapes = [
            (512, Some([128, 128])),
            (144, Some([128, 128])),
            (200, Some([2, 64])),
            (77, None),
        ];
        for (k, block) in shapes {
            let block = block.filter(|_| dtype == DType::F8E4M3 || k == 512);
            let full = weight(&mut rng, dtype, 300, k, block);
            // A view, so that rows start inside a scale block.
            let w = full.slice_rows(37, 300);
            for (r0, n) in [
                (0, 0),
                (0, 1),
                (3, 7),
                (5, 8),
                (1, 17),
                (100, 128),
                (0, 263),
            ] {
                let a = rng.f32s(n);
                let y0 = rng.f32s(k);
                let mut first_simd: Option<(&str, Vec<f32>)> = None;
                for t in KernelTable::available() {
                    let mut each = y0.clone();
                    for (i, &a) in a.iter().enumerate() {
                        (t.row_axpy)(&w, r0 + i, &[a], &mut each);
                    }
                    let mut all = y0.clone();
                    (t.row_axpy)(&w, r0, &a, &mut all);
                    for (j, (x, y)) in all.iter().zip(&each).enumerate() {
                        assert_eq!(
                            x.to_bits(),
                            y.to_bits(),
                            "{} {dtype} K={k} rows {r0}+{n} j={j}: {x} vs {y}",
                            t.name
                        );
                    }
                    if t.name == "generic" {
                        continue;
                    }
                    match &first_simd {
                        None => first_simd = Some((t.name, all)),
                        Some((name, first)) => {
                            for (j, (x, y)) in all.iter().zip(first).enumerate() {
                                assert_eq!(
                                    x.to_bits(),
                                    y.to_bits(),
                                    "{} vs {name}: {dtype} K={k} rows {r0}+{n} j={j}",
                                    t.name
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Rows past the weight's end are refused, not read.
#[test]
#[should_panic(expected = "out of 0..")]
fn row_axpy_past_the_last_row_panics() {
    let mut rng = XorShift::new(15);
    let w = weight(&mut rng, DType::BF16, 10, 64, None);
    let mut y = vec![0.0f32; 64];
    (KernelTable::detect().row_axpy)(&w, 5, &[1.0; 6], &mut y);
}

/// `(m heads, K, n rows, stride)` for the cache-row kernels: MLA's shapes (K = 576 scores, 512
/// values, a row 576 wide), GQA's (a head's 128 columns of a wider row), and every tail of the
/// row groups (4), the head blocks (4, 6, 8) and the column steps (8, 16, 32).
const ROWS_CASES: [(usize, usize, usize, usize); 9] = [
    (8, 576, 37, 576),
    (8, 512, 37, 576),
    (16, 512, 5, 576),
    (3, 128, 9, 512),
    (1, 1, 1, 1),
    (7, 33, 6, 40),
    (9, 47, 4, 47),
    (5, 0, 3, 2),
    (2, 9, 0, 9),
];

/// `rows_dot` of every table against f64 sums, within the dot product's bound.
#[test]
fn rows_dot_matches_reference() {
    let mut rng = XorShift::new(13);
    for (m, k, n, stride) in ROWS_CASES {
        let q = rng.f32s(m * k);
        // The rows are read in place: the last one ends where its K values do.
        let kv = rng.f32s(n.saturating_sub(1) * stride + if n > 0 { k } else { 0 });
        for t in KernelTable::available() {
            let mut s = vec![f32::NAN; m * n];
            (t.rows_dot)(&q, m, &kv, stride, &mut s);
            for i in 0..m {
                for j in 0..n {
                    let (qi, row) = (&q[i * k..(i + 1) * k], &kv[j * stride..j * stride + k]);
                    let r: f64 = qi.iter().zip(row).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let abs: f64 = qi
                        .iter()
                        .zip(row)
                        .map(|(&a, &b)| (a as f64 * b as f64).abs())
                        .sum();
                    let got = s[i * n + j] as f64;
                    assert!(
                        (got - r).abs() <= bound(k, abs),
                        "{} m={m} K={k} n={n}: s[{i}, {j}] = {got} vs {r}",
                        t.name
                    );
                }
            }
        }
    }
}

/// `rows_axpy` of every table against f64 sums added to the outputs' first values, within the
/// bound of a sum of `n + 1` terms.
#[test]
fn rows_axpy_matches_reference() {
    let mut rng = XorShift::new(14);
    for (m, k, n, stride) in ROWS_CASES {
        let p = rng.f32s(m * n);
        let kv = rng.f32s(n.saturating_sub(1) * stride + if n > 0 { k } else { 0 });
        let o0 = rng.f32s(m * k);
        for t in KernelTable::available() {
            let mut o = o0.clone();
            (t.rows_axpy)(&p, m, &kv, stride, &mut o);
            for i in 0..m {
                for c in 0..k {
                    let terms = (0..n).map(|j| p[i * n + j] as f64 * kv[j * stride + c] as f64);
                    let r = o0[i * k + c] as f64 + terms.clone().sum::<f64>();
                    let abs = (o0[i * k + c] as f64).abs() + terms.map(f64::abs).sum::<f64>();
                    let got = o[i * k + c] as f64;
                    assert!(
                        (got - r).abs() <= bound(n + 1, abs),
                        "{} m={m} K={k} n={n}: o[{i}, {c}] = {got} vs {r}",
                        t.name
                    );
                }
            }
        }
    }
}

/// Shapes that disagree are refused with what disagrees, on every table.
#[test]
fn rows_kernels_refuse_bad_shapes() {
    for t in KernelTable::available() {
        let kv = vec![0.0f32; 10];
        let short = std::panic::catch_unwind(|| {
            let mut s = vec![0.0f32; 2 * 3];
            // 3 rows of 4, 4 apart, need 12 values.
            (t.rows_dot)(&[0.0; 8], 2, &kv, 4, &mut s);
        });
        let msg = short.expect_err("too few cache values");
        let msg = msg.downcast_ref::<String>().expect("a formatted message");
        assert!(
            msg.contains("need more than the 10 given"),
            "{}: {msg}",
            t.name
        );
        let ragged = std::panic::catch_unwind(|| {
            let mut o = vec![0.0f32; 7];
            (t.rows_axpy)(&[0.0; 4], 2, &kv, 4, &mut o);
        });
        assert!(ragged.is_err(), "{}: 7 outputs are not 2 rows", t.name);
    }
}
