//! jing's GGUF block types against the fixtures from `scripts/make_quant_fixtures.py`:
//! dequantization equal to the `gguf` package's bit for bit (on quantizer output and on random
//! blocks; the IQ types, which jing does not write, on random blocks from
//! `scripts/make_iq_fixtures.py`), and quantization equal to llama.cpp's reference quantizers
//! byte for byte.

use jing_tensor::{quant, Bytes, DType, Weight};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/quant")
}

fn read(name: &str) -> Vec<u8> {
    let p = dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_f32(name: &str) -> Vec<f32> {
    read(name)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

const ROWS: usize = 10;
const RAND_ROWS: usize = 4;
const COLS: usize = 512;

fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {i} (row {}, col {}): jing {g:e} vs gguf {w:e}",
            i / COLS,
            i % COLS
        );
    }
}

fn check_dequant(dtype: DType, qfile: &str, deqfile: &str, rows: usize) {
    let q = read(qfile);
    assert_eq!(q.len(), rows * dtype.row_bytes(COLS), "{qfile}: size");
    let want = read_f32(deqfile);
    let w = Weight::new(qfile, dtype, vec![rows, COLS], Bytes::from_vec(q)).unwrap();
    assert_bits_eq(qfile, &w.to_f32_vec(), &want);
    // Row slices keep whole rows of blocks.
    let tail = w.slice_rows(1, rows);
    assert_bits_eq(qfile, &tail.to_f32_vec(), &want[COLS..]);
}

#[test]
fn dequantize_matches_gguf() {
    for dtype in DType::QUANTIZED {
        let n = dtype.name();
        check_dequant(dtype, &format!("{n}.q"), &format!("{n}.deq.f32"), ROWS);
        check_dequant(
            dtype,
            &format!("{n}.rand.q"),
            &format!("{n}.rand.deq.f32"),
            RAND_ROWS,
        );
    }
}

#[test]
fn quantize_matches_llama_cpp_reference() {
    let x = read_f32("x.f32");
    assert_eq!(x.len(), ROWS * COLS);
    let mut failures = Vec::new();
    for dtype in DType::QUANTIZED {
        let want = read(&format!("{}.q", dtype.name()));
        let got = quant::quantize(dtype, &x, COLS);
        let rb = dtype.row_bytes(COLS);
        for r in 0..ROWS {
            let (g, w) = (&got[r * rb..(r + 1) * rb], &want[r * rb..(r + 1) * rb]);
            if g != w {
                let at = g.iter().zip(w).position(|(a, b)| a != b).unwrap();
                failures.push(format!(
                    "{dtype} row {r}: first differing byte {at} (block {}, offset {}): {} vs {}",
                    at / dtype.block_bytes(),
                    at % dtype.block_bytes(),
                    g[at],
                    w[at]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same checks on a large generated set (`scripts/make_quant_fixtures.py --stress N DIR`,
/// then `JING_QUANT_FIXTURES=DIR cargo test -p jing-tensor --test quant_fixtures -- --ignored`).
#[test]
#[ignore]
fn stress_against_generated_fixtures() {
    let d = PathBuf::from(std::env::var("JING_QUANT_FIXTURES").expect("JING_QUANT_FIXTURES"));
    let rd = |n: &str| std::fs::read(d.join(n)).unwrap();
    let f32s = |b: Vec<u8>| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let x = f32s(rd("x.f32"));
    let rows = x.len() / COLS;
    let mut bad = 0;
    for dtype in DType::QUANTIZED {
        let n = dtype.name();
        let want = rd(&format!("{n}.q"));
        let got = quant::quantize(dtype, &x, COLS);
        let rb = dtype.row_bytes(COLS);
        let diff = (0..rows)
            .filter(|r| got[r * rb..(r + 1) * rb] != want[r * rb..(r + 1) * rb])
            .count();
        let w = Weight::new(n, dtype, vec![rows, COLS], Bytes::from_vec(want)).unwrap();
        let deq = f32s(rd(&format!("{n}.deq.f32")));
        let deq_diff = w
            .to_f32_vec()
            .iter()
            .zip(&deq)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        println!(
            "{n}: {diff}/{rows} rows differ in quantization, {deq_diff} values in dequantization"
        );
        bad += diff + deq_diff;
    }
    assert_eq!(bad, 0);
}

/// The IQ types (read-only in jing) on random blocks from `scripts/make_iq_fixtures.py`:
/// dequantization equal to the `gguf` package's bit for bit.
#[test]
fn iq_dequantize_matches_gguf() {
    const IQ_ROWS: usize = 8;
    for dtype in DType::IQUANTS {
        let n = dtype.name();
        check_dequant(
            dtype,
            &format!("iq/{n}.rand.q"),
            &format!("iq/{n}.rand.deq.f32"),
            IQ_ROWS,
        );
    }
}
