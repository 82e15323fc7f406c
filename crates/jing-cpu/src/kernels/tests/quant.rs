//! GGUF block weights: every SIMD table's `matmul_q` against the generic one. The integer dot
//! products are exact in every version, so:
//!
//! - K-quants (and `Q8_K` and the 256-element IQ types): bit for bit (the SIMD kernels also run the generic float step in
//!   the generic order);
//! - 32-element types: within `2·(nb + 4)·u·Σ_k (|ŵ_k| + 2μ_k)·|x̂_k|` (see
//!   `x86_64::quant`), and bit for bit when every float operation is exact (power-of-two
//!   scales and activations), which checks the integers directly.
//!
//! Weights are random bytes (every code pattern, extreme codes and scales included, f16 scales
//! kept finite) and the output of jing's quantizer; rows go in two uneven calls with a padded
//! output, as two pool threads would; `m` covers single tokens, whole 4-token tiles and
//! partial ones, and `nb` block counts below, at and around the 8-block groups of the 32-element
//! kernels and the 4-block groups of the AVX-512 K-quant kernels.

use super::util::{XorShift, U};
use crate::kernels::{generic, KernelTable, OutMatrix, QuantX};
use jing_tensor::{quant, Bytes, DType, Weight};

/// Byte offsets of the f16 scale fields of a block (f32 for `Q8_K`).
fn scale_fields(d: DType) -> &'static [usize] {
    match d {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 | DType::Q8K => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4K | DType::Q5K => &[0, 2],
        DType::Q2K => &[80, 82],
        DType::Q3K => &[108],
        DType::Q6K => &[208],
        // IQ types: `d` written by `iq::set_d` (at 0, or spread over IQ1_M's scale words).
        _ => &[0],
    }
}

/// Every block type: the ones jing quantizes and the IQ types (random blocks only).
pub(super) fn all_block_types() -> impl Iterator<Item = DType> {
    DType::QUANTIZED.into_iter().chain(DType::IQUANTS)
}

/// A `[n, k]` weight of random blocks. `dyadic`: every scale is ±2^-4 (so that with dyadic
/// activations every float operation of the 32-element kernels is exact).
pub(super) fn random_blocks(
    rng: &mut XorShift,
    d: DType,
    n: usize,
    k: usize,
    dyadic: bool,
) -> Weight {
    let bytes_len = n * d.row_bytes(k);
    let mut b: Vec<u8> = (0..bytes_len).map(|_| rng.next_u64() as u8).collect();
    for blk in b.chunks_exact_mut(d.block_bytes()) {
        for &at in scale_fields(d) {
            let v = if dyadic {
                if rng.next_u64() & 1 == 0 {
                    0.0625
                } else {
                    -0.0625
                }
            } else {
                rng.uniform(-0.02, 0.02)
            };
            if d == DType::Q8K {
                blk[at..at + 4].copy_from_slice(&v.to_le_bytes());
            } else if DType::IQUANTS.contains(&d) {
                quant::iq::set_d(d, blk, half::f16::from_f32(v).to_bits());
            } else {
                blk[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
            }
        }
    }
    Weight::new("w", d, vec![n, k], Bytes::from_vec(b)).unwrap()
}

/// A `[n, k]` weight from jing's quantizer (random blocks for the IQ types, which it does not
/// write).
pub(super) fn quantized(rng: &mut XorShift, d: DType, n: usize, k: usize) -> Weight {
    if !quant::can_quantize(d) {
        return random_blocks(rng, d, n, k, false);
    }
    let bytes = quant::quantize(d, &rng.f32s(n * k), k);
    Weight::new("w", d, vec![n, k], Bytes::from_vec(bytes)).unwrap()
}

/// `y = x̂ · Wᵀ` through `f`, `[m][N]`, rows in two uneven calls into a padded output.
fn run(f: crate::kernels::MatmulQFn, w: &Weight, x: &QuantX) -> Vec<f32> {
    let (n, m) = (w.rows(), x.m());
    let ld = n + 3;
    let sentinel = f32::from_bits(0x7fc0_dead);
    let mut buf = vec![sentinel; m * ld];
    {
        let y = OutMatrix::new(&mut buf, ld);
        let split = n / 3;
        f(w, x, 0..split, &y);
        f(w, x, split..n, &y);
    }
    let mut out = Vec::with_capacity(m * n);
    for row in buf.chunks(ld) {
        assert!(
            row[n..].iter().all(|v| v.to_bits() == sentinel.to_bits()),
            "padding written"
        );
        out.extend_from_slice(&row[..n]);
    }
    out
}

/// `μ_k` per element (row-major): the magnitude of the value code 0 has in `k`'s block, for
/// the types with a min (`Q4_1`, `Q5_1`); 0 for the others.
fn mins(w: &Weight) -> Vec<f64> {
    let codes = match w.dtype {
        DType::Q4_1 => 4..20,
        DType::Q5_1 => 4..24,
        _ => return vec![0.0; w.numel()],
    };
    let mut data = w.data.as_slice().to_vec();
    for blk in data.chunks_exact_mut(w.dtype.block_bytes()) {
        blk[codes.clone()].fill(0);
    }
    let z = Weight::new("z", w.dtype, w.shape.clone(), Bytes::from_vec(data)).unwrap();
    z.to_f32_vec().iter().map(|v| (*v as f64).abs()).collect()
}

/// Every SIMD table against the generic kernel on `w` and `x` (see the module docs).
fn check(w: &Weight, xf: &[f32], m: usize, exact: bool, what: &str) {
    let (n, k) = (w.rows(), w.cols());
    let x = QuantX::new(w.dtype, xf, m);
    let want = run(generic::matmul_q, w, &x);
    let exact = exact || w.dtype.block_size() == 256;
    let nb = k / w.dtype.block_size();
    let (wv, mu) = (w.to_f32_vec(), mins(w));
    for t in KernelTable::available() {
        let got = run(t.matmul_q, w, &x);
        // The f32 entry point quantizes x the same way.
        let mut via_matmul = vec![0.0f32; m * n];
        (t.matmul)(w, xf, m, 0..n, &OutMatrix::new(&mut via_matmul, n));
        for (idx, (&g, &r)) in got.iter().zip(&want).enumerate() {
            let (i, row) = (idx / n, idx % n);
            assert_eq!(
                g.to_bits(),
                via_matmul[idx].to_bits(),
                "{} {what}: matmul and matmul_q differ at y[{i},{row}]",
                t.name
            );
            if exact {
                assert_eq!(
                    g.to_bits(),
                    r.to_bits(),
                    "{} {what}: y[{i},{row}] = {g:e}, generic {r:e}",
                    t.name
                );
                continue;
            }
            let mag: f64 = (0..k)
                .map(|j| {
                    let a = (wv[row * k + j] as f64).abs() + 2.0 * mu[row * k + j];
                    a * (x.value(i, j) as f64).abs()
                })
                .sum();
            let b = 2.0 * (nb + 4) as f64 * U * mag;
            let err = (g as f64 - r as f64).abs();
            assert!(
                err <= b,
                "{} {what}: y[{i},{row}] = {g:e}, generic {r:e}: |err| {err:e} > {b:e}",
                t.name
            );
        }
    }
}

const MS: [usize; 5] = [1, 2, 4, 5, 9];

/// Block counts per row: for the 32-element types every group tail (`nb % 8`: 1, 4 as in
/// `attn_k_b` rows of 128, 7, and 44 blocks as in the rows of 1408 of V2-Lite's experts); for
/// the K-quants every tail of the 4-block groups of the AVX-512 kernels (`nb % 4`: 1, 2, 3).
fn block_counts(d: DType) -> &'static [usize] {
    if d.block_size() == 32 {
        &[1, 4, 7, 8, 9, 16, 25, 44]
    } else {
        &[1, 2, 3, 6, 8, 9, 17]
    }
}

#[test]
fn simd_matches_generic_on_random_blocks() {
    let mut rng = XorShift::new(71);
    for d in all_block_types() {
        for &nb in block_counts(d) {
            let k = nb * d.block_size();
            // (For the IQ types "quantized" is random blocks too.)
            for random in [true, false] {
                let w = if random {
                    random_blocks(&mut rng, d, 11, k, false)
                } else {
                    quantized(&mut rng, d, 11, k)
                };
                for m in MS {
                    let mut x = rng.f32s(m * k);
                    if m > 1 {
                        // An all-zero activation block and one dominated by a single value.
                        x[..d.block_size()].fill(0.0);
                        x[k + 1] = 300.0;
                    }
                    let src = if random { "random blocks" } else { "quantized" };
                    check(&w, &x, m, false, &format!("{d} {src} K={k} m={m}"));
                }
            }
        }
    }
}

/// Power-of-two scales and activations `j · 2^-7` with a ±127 code in every block: every float
/// operation of every version is exact, so the results must agree bit for bit, which they do
/// only if the integer dot products do.
#[test]
fn simd_integer_dot_products_are_exact() {
    let mut rng = XorShift::new(72);
    for d in all_block_types() {
        for &nb in block_counts(d) {
            let k = nb * d.block_size();
            let w = random_blocks(&mut rng, d, 9, k, true);
            for m in MS {
                let mut x: Vec<f32> = (0..m * k)
                    .map(|_| ((rng.next_u64() % 255) as i32 - 127) as f32 / 128.0)
                    .collect();
                for blk in x.chunks_mut(d.block_size()) {
                    blk[0] = if rng.next_u64() & 1 == 0 {
                        127.0
                    } else {
                        -127.0
                    } / 128.0;
                }
                check(&w, &x, m, true, &format!("{d} dyadic K={k} m={m}"));
            }
        }
    }
}

/// Every code at its largest (all bits set: `Q4_K` 15, `Q5_K` 31, `Q6_K` 63, the largest
/// scales and mins) against activations all `+127` or all `-127`: the largest sums of a few
/// products any kernel forms. The AVX-512 K-quant kernels pack sums of four products into i16
/// (`|Σ_4| <= 4·63·127`), which saturates silently if a wider sum ever went in; this catches it
/// where random codes almost never line up.
#[test]
fn largest_codes_against_largest_activations_are_exact() {
    for d in all_block_types() {
        let nb = 9;
        let k = nb * d.block_size();
        let mut b = vec![0xffu8; 3 * d.row_bytes(k)];
        for blk in b.chunks_exact_mut(d.block_bytes()) {
            for &at in scale_fields(d) {
                if d == DType::Q8K {
                    blk[at..at + 4].copy_from_slice(&0.0625f32.to_le_bytes());
                } else if DType::IQUANTS.contains(&d) {
                    quant::iq::set_d(d, blk, half::f16::from_f32(0.0625).to_bits());
                } else {
                    blk[at..at + 2]
                        .copy_from_slice(&half::f16::from_f32(0.0625).to_bits().to_le_bytes());
                }
            }
        }
        let w = Weight::new("w", d, vec![3, k], Bytes::from_vec(b)).unwrap();
        for sign in [1.0f32, -1.0] {
            for m in MS {
                let x = vec![sign * 127.0 / 128.0; m * k];
                check(
                    &w,
                    &x,
                    m,
                    true,
                    &format!("{d} largest codes, x = {sign}, m={m}"),
                );
            }
        }
    }
}

/// The x86 tables compute the 32-element types with the same float steps (eight blocks' terms
/// into f32 lanes with fused multiply-adds, the lanes summed at the end) and exact integers,
/// whatever the vector width of their integer part: so the AVX-512 kernels must give the AVX2
/// ones' results bit for bit, on any weights and activations.
#[cfg(target_arch = "x86_64")]
#[test]
fn x86_tables_agree_bit_for_bit_on_32_element_types() {
    let Some(avx2) = KernelTable::by_name("avx2") else {
        return;
    };
    let mut rng = XorShift::new(74);
    for d in [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::IQ4NL,
    ] {
        for &nb in block_counts(d) {
            let k = nb * d.block_size();
            let w = random_blocks(&mut rng, d, 13, k, false);
            for m in MS {
                let x = QuantX::new(d, &rng.f32s(m * k), m);
                let want = run(avx2.matmul_q, &w, &x);
                for t in KernelTable::available()
                    .iter()
                    .filter(|t| t.name != "generic")
                {
                    let got = run(t.matmul_q, &w, &x);
                    for (idx, (g, a)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            a.to_bits(),
                            "{} {d} K={k} m={m}: y[{idx}] = {g:e}, avx2 {a:e}",
                            t.name
                        );
                    }
                }
            }
        }
    }
}

/// `row_axpy` of a block weight (every table; the SIMD ones hand block types to the generic
/// kernel) equals `y + a · row_to_f32(r)` up to one rounding per element.
#[test]
fn row_axpy_of_block_weights() {
    let mut rng = XorShift::new(73);
    for d in all_block_types() {
        let k = 3 * 256;
        let w = quantized(&mut rng, d, 5, k);
        let mut row = vec![0.0f32; k];
        w.row_to_f32(3, &mut row);
        let y0 = rng.f32s(k);
        for t in KernelTable::available() {
            let mut y = y0.clone();
            (t.row_axpy)(&w, 3, &[0.75], &mut y);
            for j in 0..k {
                let want = y0[j] as f64 + 0.75 * row[j] as f64;
                let err = (y[j] as f64 - want).abs();
                assert!(
                    err <= 4.0 * U * (y0[j].abs() as f64 + row[j].abs() as f64),
                    "{} {d}: {j}",
                    t.name
                );
            }
        }
    }
}
