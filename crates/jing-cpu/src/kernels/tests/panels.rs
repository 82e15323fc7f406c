//! Float weights in column panels (`RowLayout::Panels`) and in panels of lines
//! (`RowLayout::PanelLines`): every table against the f64 reference and the generic kernel, as
//! for rows as stored (`matmul::check_all`), with the rows cut between calls inside a group and
//! inside a run of 4, the block scales fused into `x` and not, and token panels.

use super::matmul::{check_all, run};
use super::util::{weight, XorShift};
use crate::kernels::KernelTable;
use jing_tensor::{panels, DType, RowLayout, Weight};

/// `w` in `layout` (`Panels` or `PanelLines`), checked to read back as `w`.
fn laid_out(w: &Weight, layout: RowLayout) -> Weight {
    let p = match layout {
        RowLayout::PanelLines => w.in_panel_lines(),
        _ => w.in_panels(),
    }
    .expect("rearranged");
    assert_eq!(p.layout, layout);
    assert_eq!(
        p.to_f32_vec(),
        w.to_f32_vec(),
        "{}: rows read back",
        w.dtype
    );
    p
}

/// `w` in panels.
fn in_panels(w: &Weight) -> Weight {
    laid_out(w, RowLayout::Panels)
}

/// `w` in panels of lines.
fn in_lines(w: &Weight) -> Weight {
    laid_out(w, RowLayout::PanelLines)
}

#[test]
fn panels_match_the_reference() {
    let mut rng = XorShift::new(41);
    let cases = [
        // Two panels, the second of 64 columns.
        (DType::F32, 128, 2048 + 64, None),
        // Three, the last 100 columns (not whole 16-column steps).
        (DType::BF16, 64, 2 * 2048 + 100, None),
        (DType::F16, 192, 2048 + 48, None),
        // DeepSeek's blocks: fused into `x` (64 rows in one 128-row block); the last panel
        // ends in a partial block.
        (DType::F8E4M3, 192, 2048 + 1000, Some([128, 128])),
        // Scale blocks of 32 rows: a group spans two, so the blocks are summed one by one.
        (DType::F8E4M3, 128, 2 * 2048 + 256, Some([32, 128])),
        // Narrower scale blocks than a 64-column FP8 step.
        (DType::F8E4M3, 64, 2048 + 512, Some([64, 32])),
    ];
    for (dtype, n, k, block) in cases {
        let w = in_panels(&weight(&mut rng, dtype, n, k, block));
        for m in [1, 2, 5, 33] {
            let x = rng.f32s(m * k);
            // `run` splits the rows at n / 3, inside a group and, for 64 and 128 rows, inside
            // a run of 4.
            check_all(
                &w,
                &x,
                m,
                &format!("{dtype} panels N={n} K={k} {block:?} m={m}"),
            );
        }
    }
}

#[test]
fn panels_of_lines_match_the_reference() {
    let mut rng = XorShift::new(44);
    let cases = [
        // One panel: rows of 1536 (Qwen2.5-1.5B's hidden size).
        (DType::BF16, 64, 1536),
        // Two panels, the second of 96 columns (3 lines of bf16).
        (DType::BF16, 128, 2048 + 96),
        (DType::F32, 192, 2048 + 16),
        (DType::F16, 64, 3 * 2048 + 32),
        // One line a row.
        (DType::F32, 64, 16),
    ];
    for (dtype, n, k) in cases {
        let w = in_lines(&weight(&mut rng, dtype, n, k, None));
        for m in [1, 2, 5, 33] {
            let x = rng.f32s(m * k);
            check_all(&w, &x, m, &format!("{dtype} lines N={n} K={k} m={m}"));
        }
    }
}

#[test]
fn lines_give_the_rows_sums_bit_for_bit_and_any_range() {
    // The same steps in the same order as the rows as stored, only read from elsewhere: the
    // same bits; and a call over any range of rows writes exactly those rows.
    let mut rng = XorShift::new(45);
    for k in [1536, 2 * 2048 + 64] {
        let w = weight(&mut rng, DType::BF16, 128, k, None);
        let p = in_lines(&w);
        for m in [1, 3] {
            let x = rng.f32s(m * k);
            for t in KernelTable::available() {
                let mut whole = vec![f32::NAN; m * 128];
                let mut parts = vec![f32::NAN; m * 128];
                {
                    let y = crate::kernels::OutMatrix::new(&mut whole, 128);
                    (t.matmul)(&p, &x, m, 0..128, &y);
                    let y = crate::kernels::OutMatrix::new(&mut parts, 128);
                    for r in [0..5, 5..6, 6..64, 64..67, 67..128] {
                        (t.matmul)(&p, &x, m, r, &y);
                    }
                }
                assert_eq!(whole, parts, "{}: ranges, K={k} m={m}", t.name);
                if k <= panels::PANEL_COLS {
                    // One panel: the very sums of the rows as stored.
                    assert_eq!(run(&t, &w, &x, m), whole, "{}: K={k} m={m}", t.name);
                }
            }
        }
    }
}

#[test]
fn only_float_rows_of_whole_lines_and_groups_go_in_lines() {
    let mut rng = XorShift::new(46);
    let none = [
        weight(&mut rng, DType::BF16, 96, 1536, None),
        // Rows of 40 bytes.
        weight(&mut rng, DType::BF16, 64, 20, None),
        // FP8 stays in plain panels.
        weight(&mut rng, DType::F8E4M3, 64, 3 * 2048, Some([128, 128])),
    ];
    for w in none {
        assert!(w.in_panel_lines().is_none(), "{:?} {:?}", w.dtype, w.shape);
    }
    let p = in_lines(&weight(&mut rng, DType::F16, 128, 2048 + 64, None));
    assert!(
        p.in_panel_lines().is_none() && p.in_panels().is_none(),
        "already rearranged"
    );
    assert_eq!(
        p.slice_rows(64, 128).to_f32_vec(),
        p.to_f32_vec()[64 * (2048 + 64)..]
    );
}

#[test]
fn panels_give_the_rows_sums_and_any_range() {
    // Against the same table on the rows as stored: the same products, summed panel by
    // panel, so within the bound of each other; and a call over any range of rows writes
    // exactly those rows.
    let mut rng = XorShift::new(42);
    let w = weight(&mut rng, DType::F8E4M3, 128, 3 * 2048, Some([128, 128]));
    let p = in_panels(&w);
    let x = rng.f32s(3 * w.cols());
    for t in KernelTable::available() {
        let rows = run(&t, &w, &x, 3);
        let mut whole = vec![f32::NAN; 3 * 128];
        let mut parts = vec![f32::NAN; 3 * 128];
        {
            let y = crate::kernels::OutMatrix::new(&mut whole, 128);
            (t.matmul)(&p, &x, 3, 0..128, &y);
            let y = crate::kernels::OutMatrix::new(&mut parts, 128);
            for r in [0..5, 5..6, 6..64, 64..67, 67..128] {
                (t.matmul)(&p, &x, 3, r, &y);
            }
        }
        assert_eq!(whole, parts, "{}: ranges", t.name);
        for (a, b) in rows.iter().zip(&whole) {
            assert!(
                (a - b).abs() <= 1e-3 * a.abs().max(1.0),
                "{}: {a} vs {b}",
                t.name
            );
        }
    }
}

#[test]
fn only_long_float_rows_of_whole_groups_go_in_panels() {
    let mut rng = XorShift::new(43);
    let long = panels::PANEL_COLS + 64;
    let none = [
        weight(&mut rng, DType::BF16, 96, long, None),
        weight(&mut rng, DType::BF16, 64, panels::PANEL_COLS, None),
        // Scale blocks that do not tile a panel.
        weight(&mut rng, DType::F8E4M3, 64, 3 * 1024, Some([128, 3 * 1024])),
    ];
    for w in none {
        assert!(w.in_panels().is_none(), "{:?} {:?}", w.dtype, w.shape);
    }
    let p = in_panels(&weight(&mut rng, DType::F16, 128, long, None));
    assert!(p.in_panels().is_none(), "already in panels");
    assert!(p.interleave_rows16().is_none());
    assert_eq!(
        p.slice_rows(64, 128).to_f32_vec(),
        p.to_f32_vec()[64 * long..]
    );
    let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.slice_rows(16, 128)));
    assert!(cut.is_err(), "a slice through a group");
}
