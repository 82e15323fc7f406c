//! FP8 matmuls against bf16 activations ([`Fp8Activations::Bf16`]): the bf16 bits of every
//! code, activations rounded on every table, and every table (in every layout it loads FP8
//! weights in) against the f64 reference within the rounding of `x`.

use super::matmul::run;
use super::util::{bound, reference, weight, XorShift};
use crate::kernels::layout::fp8_bf16_bits;
use crate::kernels::{Fp8Activations, KernelTable};
use jing_tensor::{bf16_to_f32, Bytes, DType, RowLayout, Weight, F8E4M3_TO_F32};

/// Every table in bf16 mode.
fn tables() -> Vec<KernelTable> {
    KernelTable::available()
        .into_iter()
        .map(|t| t.with_fp8_activations(Fp8Activations::Bf16))
        .collect()
}

/// `w` in each layout `t` reads: as stored, in column panels (rows longer than a panel), and
/// in panels of lines where the table loads FP8 weights so.
fn layouts(t: &KernelTable, w: &Weight) -> Vec<Weight> {
    let mut out = vec![w.clone()];
    out.extend(w.in_panels());
    if t.fp8_in_lines() || t.name == "generic" {
        out.extend(w.fp8_in_panel_lines());
    }
    out
}

#[test]
fn bf16_bits_are_every_codes_value() {
    for c in 0..=255u8 {
        let v = bf16_to_f32(fp8_bf16_bits(c));
        let want = F8E4M3_TO_F32[c as usize];
        if want.is_nan() {
            assert!(v.is_nan(), "code {c:#04x}");
        } else {
            assert_eq!(v.to_bits(), want.to_bits(), "code {c:#04x}");
        }
    }
}

/// `x = 1 + 2^-10` rounds to 1 in bf16 (to nearest even), so each row sums its weights times 1
/// in bf16 mode and times `1 + 2^-10` in f32 mode; the weights are small integers and every
/// sum is exact. Scale blocks of 128 (fused on AVX-512) and 48 (not whole 64-code steps), K
/// with and without a tail, rows in every layout.
#[test]
fn every_table_rounds_x_to_bf16() {
    // e4m3 codes of 1, 2, -1 and 0.5.
    let codes = [0x38u8, 0x40, 0xB8, 0x30];
    for (k, block) in [(256, 128), (2048 + 256, 128), (272, 128), (240, 48)] {
        let n = 64;
        let bytes: Vec<u8> = (0..n * k).map(|i| codes[(i * 7 + i / k) % 4]).collect();
        let grid = [n.div_ceil(64), k.div_ceil(block)];
        // Scales of 2^-1 .. 2^1: products stay exact.
        let scales: Vec<f32> = (0..grid[0] * grid[1])
            .map(|i| 2f32.powi(i as i32 % 3 - 1))
            .collect();
        let w = Weight::new("w", DType::F8E4M3, vec![n, k], Bytes::from_vec(bytes))
            .unwrap()
            .with_block_scale("s", &grid, Bytes::from_f32(&scales), [64, block])
            .unwrap();
        let mut exact = vec![0.0f64; n];
        let mut row = vec![0.0f32; k];
        for (r, e) in exact.iter_mut().enumerate() {
            w.row_to_f32(r, &mut row);
            *e = row.iter().map(|&v| v as f64).sum();
        }
        for m in [1, 2, 5] {
            let x = vec![1.0 + 2f32.powi(-10); m * k];
            for t in KernelTable::available() {
                for (mode, factor) in [
                    (Fp8Activations::F32, 1.0 + 2f64.powi(-10)),
                    (Fp8Activations::Bf16, 1.0),
                ] {
                    let t = t.with_fp8_activations(mode);
                    let ls = layouts(&t, &w);
                    if t.fp8_in_lines() && k % 64 == 0 && block % 64 == 0 {
                        assert!(ls.iter().any(|w| w.layout == RowLayout::PanelLines));
                    }
                    for w in ls {
                        let y = run(&t, &w, &x, m);
                        for (i, yi) in y.chunks(n).enumerate() {
                            for (r, &v) in yi.iter().enumerate() {
                                assert_eq!(
                                    v as f64,
                                    exact[r] * factor,
                                    "{} {mode:?} {:?} K={k} block {block} m={m}: y[{i},{r}]",
                                    t.name,
                                    w.layout
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every code through every table's bf16 path: row `r` holds one code in column `r % 64`
/// (and `64 + r % 16` for the tail), `x` is all ones (a bf16 value), so `y` is exact.
#[test]
fn every_table_decodes_every_code_against_bf16_x() {
    let codes: Vec<u8> = (0..=255u8).filter(|c| c & 0x7f != 0x7f).collect();
    let n = codes.len().div_ceil(64) * 64;
    let k = 128 + 64 + 16;
    let mut bytes = vec![0u8; n * k];
    for (r, &c) in codes.iter().enumerate() {
        bytes[r * k + r % 64] = c;
        bytes[r * k + 192 + r % 16] = c;
    }
    let grid = [n.div_ceil(128), k.div_ceil(64)];
    let w = Weight::new("w", DType::F8E4M3, vec![n, k], Bytes::from_vec(bytes))
        .unwrap()
        .with_block_scale(
            "s",
            &grid,
            Bytes::from_f32(&vec![1.0; grid[0] * grid[1]]),
            [128, 64],
        )
        .unwrap();
    for t in tables() {
        for w in layouts(&t, &w) {
            for m in [1, 2, 3, 4, 7] {
                let x = vec![1.0f32; m * k];
                let y = run(&t, &w, &x, m);
                for (i, yi) in y.chunks(n).enumerate() {
                    for (r, &c) in codes.iter().enumerate() {
                        let want = 2.0 * F8E4M3_TO_F32[c as usize];
                        assert!(
                            yi[r] == want,
                            "{} {:?} m={m} token {i}: code {c:#04x} gave {}",
                            t.name,
                            w.layout,
                            yi[r]
                        );
                    }
                }
            }
        }
    }
}

/// Random weights and activations, decode and prefill shapes, block widths that are and are
/// not whole 64-code steps, row-slice views: every table within the reference's bound plus
/// the rounding of `x`. Each activation is rounded to bf16 once, alone or times its block's
/// scale (the AVX-512 kernel's fused form), a relative error of at most 2^-9 per product, so
/// `|err| <= 2^-9 · Σ|x·w| + bound`; the test allows 2^-8.
#[test]
fn every_table_matches_the_reference_within_the_rounding_of_x() {
    let mut rng = XorShift::new(11);
    let cases = [
        (130, 1024 + 7, [128, 128]),
        (64, 2048 + 512, [128, 128]),
        (128, 640, [64, 640]),
        (70, 300, [16, 48]),
        (64, 256, [32, 64]),
    ];
    for (n, k, block) in cases {
        let full = weight(&mut rng, DType::F8E4M3, n + 8, k, Some(block));
        for w in [full.slice_rows(0, n), full.slice_rows(3, n + 3)] {
            for m in [1, 2, 3, 4, 5, 33] {
                let x = rng.f32s(m * k);
                let want = reference(&w, &x, m);
                for t in tables() {
                    for w in layouts(&t, &w) {
                        let y = run(&t, &w, &x, m);
                        for (idx, (&g, &(r, abs))) in y.iter().zip(&want).enumerate() {
                            let b = abs * 2f64.powi(-8) + bound(k, abs);
                            assert!(
                                (g as f64 - r).abs() <= b,
                                "{} {:?} n={n} K={k} block {block:?} m={m}: y[{idx}] = {g}, \
                                 reference {r}, bound {b}",
                                t.name,
                                w.layout
                            );
                        }
                    }
                }
            }
        }
    }
}
