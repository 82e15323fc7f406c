//! The FP8 e4m3fn → f16-bits trick the SIMD kernels decode with, checked on every code.

use crate::kernels::layout::fp8_as_f16_bits;
use crate::kernels::KernelTable;
use jing_tensor::{f16_to_f32, Bytes, DType, Weight, F8E4M3_TO_F32};

/// Every non-NaN code (254 of them, ±0 included).
fn codes() -> Vec<u8> {
    (0..=255u8).filter(|c| c & 0x7f != 0x7f).collect()
}

#[test]
fn f16_bits_are_the_value_times_2_pow_minus_8() {
    for c in codes() {
        let v = f16_to_f32(fp8_as_f16_bits(c)) * 256.0;
        assert_eq!(
            v.to_bits(),
            F8E4M3_TO_F32[c as usize].to_bits(),
            "code {c:#04x}"
        );
    }
}

/// The SIMD decoders themselves: `y += 1 · W[0, :]` with scale 1 must reproduce the table
/// exactly (256 · 2^-8 · code is exact, and so is adding it to -0).
#[test]
fn every_table_decodes_every_code_exactly() {
    let codes = codes();
    let k = codes.len();
    let w = Weight::new(
        "w",
        DType::F8E4M3,
        vec![1, k],
        Bytes::from_vec(codes.clone()),
    )
    .unwrap()
    .with_block_scale("s", &[1, 2], Bytes::from_f32(&[1.0, 1.0]), [128, 128])
    .unwrap();
    for t in KernelTable::available() {
        // -0 + v == v for every v, signed zeros included.
        let mut y = vec![-0.0f32; k];
        (t.row_axpy)(&w, 0, &[1.0], &mut y);
        for (j, &c) in codes.iter().enumerate() {
            assert_eq!(
                y[j].to_bits(),
                F8E4M3_TO_F32[c as usize].to_bits(),
                "{}: code {c:#04x}",
                t.name
            );
        }
    }
}

/// The matmul decoders, for 1 to 7 tokens (one and two token groups): row `n` holds code
/// `c_n` in column `n % 64` and zeros elsewhere, `x` is all ones, so `y[n]` is exactly the
/// code's value.
#[test]
fn every_table_matmuls_every_code_exactly() {
    let codes = codes();
    let (n, k) = (codes.len(), 64 + 16 + 5);
    let mut bytes = vec![0u8; n * k];
    for (r, &c) in codes.iter().enumerate() {
        bytes[r * k + r % 64] = c;
    }
    let scale = Bytes::from_f32(&vec![1.0; n.div_ceil(128)]);
    let w = Weight::new("w", DType::F8E4M3, vec![n, k], Bytes::from_vec(bytes))
        .unwrap()
        .with_block_scale("s", &[n.div_ceil(128), 1], scale, [128, 128])
        .unwrap();
    for t in KernelTable::available() {
        for m in [1, 2, 3, 4, 7] {
            let x = vec![1.0f32; m * k];
            let mut y = vec![0.0f32; m * n];
            (t.matmul)(&w, &x, m, 0..n, &crate::kernels::OutMatrix::new(&mut y, n));
            for (i, yi) in y.chunks(n).enumerate() {
                for (r, &c) in codes.iter().enumerate() {
                    let want = F8E4M3_TO_F32[c as usize];
                    // Signed zeros may differ (a sum starting at +0).
                    assert!(
                        yi[r] == want,
                        "{} m={m} token {i}: code {c:#04x} gave {}",
                        t.name,
                        yi[r]
                    );
                }
            }
        }
    }
}
