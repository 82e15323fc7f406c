//! GGUF block weights with many tokens (prefill): every table's `matmul` from
//! `DEQUANT_MIN_TOKENS` tokens is `Σ_k bf16(x[i, k]) · bf16(ŵ[n, k])` in f32 (see
//! `kernels::dequant_panel`). The products of two bf16 are exact in f32, so each result is
//! within the f32 summation bound of the f64 sum of the same products, in any order.
//!
//! Rows go in two uneven calls into a padded output (as two pool threads would), so row groups
//! of 4 with short tails and chunk boundaries are covered; `m` covers whole and partial 4-token
//! tiles. The AVX512-BF16 decoders are also checked directly, every element of every block
//! type against the bf16 rounding of the reference dequantization.

use super::matmul::run;
use super::quant::{all_block_types, quantized};
use super::util::{bound, XorShift};
use crate::kernels::dequant_panel::bf16_round;
use crate::kernels::{KernelTable, DEQUANT_MIN_TOKENS};

#[test]
fn many_tokens_multiply_the_bf16_rounded_dequantized_weights() {
    let mut rng = XorShift::new(91);
    for d in all_block_types() {
        // 1, 3 and 9 blocks of 256 (or 8, 24, 72 blocks of 32): K from 256 to 2304.
        for blocks in [1, 3, 9] {
            let k = blocks * 256;
            let n = 11;
            let w = quantized(&mut rng, d, n, k);
            let wv: Vec<f64> = w
                .to_f32_vec()
                .iter()
                .map(|&v| bf16_round(v) as f64)
                .collect();
            for m in [DEQUANT_MIN_TOKENS, DEQUANT_MIN_TOKENS + 5] {
                let mut x = rng.f32s(m * k);
                x[7] = 300.0; // one large activation
                let xv: Vec<f64> = x.iter().map(|&v| bf16_round(v) as f64).collect();
                for t in KernelTable::available() {
                    let got = run(&t, &w, &x, m);
                    for (idx, &g) in got.iter().enumerate() {
                        let (i, r) = (idx / n, idx % n);
                        let products = (0..k).map(|j| xv[i * k + j] * wv[r * k + j]);
                        let want: f64 = products.clone().sum();
                        let abs: f64 = products.map(f64::abs).sum();
                        let err = (g as f64 - want).abs();
                        assert!(
                            err <= bound(k, abs),
                            "{} {d} K={k} m={m}: y[{i},{r}] = {g:e}, want {want:e}",
                            t.name
                        );
                    }
                }
            }
        }
    }
}

/// The panel path decodes exactly what the reference dequantization gives: with activations
/// that are one-hot (exact in bf16), `y[i, n]` picks the bf16 rounding of one weight.
#[test]
fn one_hot_tokens_read_single_weights() {
    let mut rng = XorShift::new(92);
    for d in all_block_types() {
        let (n, k) = (9, 512);
        let w = quantized(&mut rng, d, n, k);
        let wv = w.to_f32_vec();
        let m = DEQUANT_MIN_TOKENS + 3;
        let cols: Vec<usize> = (0..m).map(|i| (i * 37 + 5) % k).collect();
        let mut x = vec![0.0f32; m * k];
        for (i, &c) in cols.iter().enumerate() {
            x[i * k + c] = 1.0;
        }
        for t in KernelTable::available() {
            let got = run(&t, &w, &x, m);
            for i in 0..m {
                for r in 0..n {
                    // Compared as values: a zero weight may come out as +0 or -0.
                    let want = bf16_round(wv[r * k + cols[i]]);
                    assert_eq!(got[i * n + r], want, "{} {d}: token {i} row {r}", t.name);
                }
            }
        }
    }
}

/// The AVX512-BF16 decoder of the panel path gives, for every element of every block type,
/// the bf16 bits of the reference dequantization: random blocks (every code and scale pattern)
/// and quantizer output, over rows of several blocks.
#[cfg(target_arch = "x86_64")]
#[test]
fn native_dequant_is_the_rounded_reference() {
    use super::quant::random_blocks;
    use crate::kernels::dequant_panel::bf16_bits;
    use crate::kernels::x86_64::avx512::bf16_tile;
    if !bf16_tile::available() {
        return;
    }
    let mut rng = XorShift::new(93);
    for d in all_block_types() {
        let (n, k) = (16, 1024);
        for w in [
            random_blocks(&mut rng, d, n, k, false),
            quantized(&mut rng, d, n, k),
        ] {
            let (mut want, mut got, mut tmp) = (vec![0.0f32; k], vec![0u16; k], vec![0.0f32; k]);
            for r in 0..n {
                jing_tensor::quant::dequantize_row(d, w.row_data(r), &mut want);
                // SAFETY: `available()` above.
                unsafe { bf16_tile::dequant(d, w.row_data(r), &mut got, &mut tmp) };
                for (i, (&g, &v)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g, bf16_bits(v), "{d}: row {r} element {i} ({v:e})");
                }
            }
        }
    }
}
