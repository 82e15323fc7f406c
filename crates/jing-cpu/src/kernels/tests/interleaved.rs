//! `Q4_K`, `Q6_K`, `Q8_0` and `Q5_0` rows interleaved by 16 (`RowLayout::interleaved`): every table on the
//! interleaved weight against the generic kernel on the GGUF rows, bit for bit (the interleaved
//! kernels compute the generic integers and float steps, see `x86_64::avx512::quant::rows16`),
//! for the quantized-activation path (`m < 16`) and the dequantizing one (`m >= 16`) alike.

use super::quant::{quantized, random_blocks};
use super::util::XorShift;
use crate::kernels::{generic, KernelTable, OutMatrix, QuantX};
use jing_tensor::{DType, RowLayout, Weight};

/// `f` over rows `0..16` and `16..n` (as two pool threads would claim them), `[m][n]`.
fn two_calls(f: crate::kernels::MatmulQFn, w: &Weight, x: &QuantX) -> Vec<f32> {
    let (n, m) = (w.rows(), x.m());
    let mut y = vec![f32::NAN; m * n];
    {
        let out = OutMatrix::new(&mut y, n);
        f(w, x, 0..16, &out);
        f(w, x, 16..n, &out);
    }
    y
}

#[test]
fn interleaved_rows_match_generic_rows() {
    let mut rng = XorShift::new(91);
    let n = 48;
    for (d, nb) in [DType::Q4K, DType::Q6K]
        .into_iter()
        .flat_map(|d| [1, 2, 3, 6, 8].map(|nb| (d, nb)))
        .chain([1, 2, 3, 5, 8, 13].map(|nb| (DType::Q8_0, nb)))
        .chain([1, 2, 3, 4, 5, 8, 13, 44].map(|nb| (DType::Q5_0, nb)))
    {
        let k = d.block_size() * nb;
        for random in [true, false] {
            let w = if random {
                random_blocks(&mut rng, d, n, k, false)
            } else {
                quantized(&mut rng, d, n, k)
            };
            let packed = w.interleave_rows16().expect("48 rows interleave");
            assert_eq!(Some(packed.layout), RowLayout::interleaved(d));
            assert_eq!(packed.data.len(), w.data.len());
            assert_eq!(packed.to_f32_vec(), w.to_f32_vec(), "rows read back");
            let what = format!("{d} K={k} {}", if random { "random" } else { "quantized" });
            for m in [1, 2, 3, 4, 5, 9, 15, 16, 20] {
                let xf = rng.f32s(m * k);
                let x = QuantX::new(d, &xf, m);
                let want = two_calls(generic::matmul_q, &w, &x);
                for t in KernelTable::available() {
                    if m < 16 {
                        let got = two_calls(t.matmul_q, &packed, &x);
                        let same = got
                            .iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(
                            same,
                            "{} {what} m={m}: interleaved matmul_q differs",
                            t.name
                        );
                    }
                    // The f32 entry point: quantized activations below 16 tokens, where the
                    // result is the generic kernel's (a table's own kernel on the GGUF rows may
                    // add in another order: the AVX2 `Q8_0`), dequantized weights from 16 on,
                    // the table's result on the GGUF rows.
                    let mut a = vec![0.0f32; m * n];
                    let mut b = vec![0.0f32; m * n];
                    (t.matmul)(&w, &xf, m, 0..n, &OutMatrix::new(&mut a, n));
                    (t.matmul)(&packed, &xf, m, 0..n, &OutMatrix::new(&mut b, n));
                    let reference = if m < 16 { &want } else { &a };
                    let same = reference
                        .iter()
                        .zip(&b)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{} {what} m={m}: interleaved matmul differs", t.name);
                }
            }
        }
    }
}

/// Only `Q4_K`, `Q6_K`, `Q8_0` and `Q5_0` weights of whole groups of 16 rows interleave, and row slices
/// keep groups whole.
#[test]
fn interleaving_takes_whole_groups() {
    let mut rng = XorShift::new(92);
    // Rows that are not whole groups, and a type without an interleaved layout.
    for (d, rows) in [
        (DType::Q4K, 24),
        (DType::Q6K, 40),
        (DType::Q8_0, 8),
        (DType::Q5K, 32),
    ] {
        let w = quantized(&mut rng, d, rows, 256);
        assert!(w.interleave_rows16().is_none(), "{d} rows={rows}");
    }
    let w = quantized(&mut rng, DType::Q4K, 48, 512);
    let packed = w.interleave_rows16().unwrap();
    assert!(packed.interleave_rows16().is_none(), "already interleaved");
    let slice = packed.slice_rows(16, 48);
    assert_eq!(slice.to_f32_vec(), w.slice_rows(16, 48).to_f32_vec());
    let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| packed.slice_rows(8, 48)));
    assert!(cut.is_err(), "a slice through a group");
}
