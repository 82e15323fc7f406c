//! Float rows (f32, f16, bf16, FP8) longer than a panel, in groups of 64, column panel by column
//! panel: the layout in which the CPU float kernels stream long rows best.
//!
//! The kernels read 4 rows side by side against `x`, whose f32 take 4 bytes a column: 28 KiB
//! for 7168 columns, which the weight stream pushes out of a 32 KiB L1 before the next 4 rows
//! read it again. Measured on one Zen 4 thread, FP8 rows streamed from DRAM (they read 28 GB/s
//! from L2 at every length):
//!
//! - rows of 2048 read 25-26 GB/s, rows of 4096 14-15 and rows of 7168 13;
//! - reading `x` only from its first 2048 columns (wrong sums, the same weight stream) took
//!   rows of 7168 to 24.5-25;
//! - 4 rows interleaved a 64-byte line at a time, one stream instead of 4, gave 15.
//!
//! So a group's rows go in panels of [`PANEL_COLS`] columns (8 KiB of `x`): the kernels read
//! the group's 64 rows of one panel, 4 at a time, against one piece of `x`, then the next
//! panel, and the weight is one stream in address order. Rows of 7168 then read 23.5-24.4
//! GB/s, of 4096 22-24. Groups of 16 rows (a piece of `x` per 32 KiB of weights instead of
//! 128) read 20-22: the first pass over each piece misses L1.
//!
//! Same bytes, rearranged; rows `64g..64g + 64` keep bytes `64g·R..64(g + 1)·R` (`R` the bytes
//! of a row). With `P = PANEL_COLS · size` bytes of a row per panel, panel `p` holds bytes
//! `pP..pP + b` of each row (`b = min(P, R - pP)`) at `64pP` in the group, row after row
//! ([`at`]). Rows of one panel or less would be as stored: they are left so.

/// Rows per group.
pub const ROWS: usize = 64;

/// Columns per panel.
pub const PANEL_COLS: usize = 2048;

/// Where byte `o` of row `r` lies in its group (`row_bytes` bytes a row, `size` bytes an
/// element).
#[inline]
pub fn at(r: usize, o: usize, row_bytes: usize, size: usize) -> usize {
    let pb = PANEL_COLS * size;
    let (p, o) = (o / pb, o % pb);
    let b = pb.min(row_bytes - p * pb);
    ROWS * p * pb + r * b + o
}

/// Rearrange one group: `rows` is 64 rows back to back, `size` bytes an element; `out` (the
/// same length) receives them in the layout of the module docs.
pub fn pack_group(size: usize, rows: &[u8], out: &mut [u8]) {
    let rb = rows.len() / ROWS;
    assert!(rows.len() == ROWS * rb && out.len() == rows.len());
    for (r, row) in rows.chunks_exact(rb).enumerate() {
        for (p, piece) in row.chunks(PANEL_COLS * size).enumerate() {
            let to = at(r, p * PANEL_COLS * size, rb, size);
            out[to..to + piece.len()].copy_from_slice(piece);
        }
    }
}

/// The inverse of [`pack_group`]: the 64 rows of one group, back to back.
pub fn unpack_group(size: usize, group: &[u8], rows: &mut [u8]) {
    let rb = group.len() / ROWS;
    assert!(group.len() == ROWS * rb && rows.len() == group.len());
    for (r, row) in rows.chunks_exact_mut(rb).enumerate() {
        gather_row(size, group, r, row);
    }
}

/// Row `r` of one `group`, as stored, into `row` (a row's bytes): its pieces, without taking
/// the other rows apart.
pub fn gather_row(size: usize, group: &[u8], r: usize, row: &mut [u8]) {
    let rb = row.len();
    assert!(group.len() == ROWS * rb && r < ROWS);
    for (p, piece) in row.chunks_mut(PANEL_COLS * size).enumerate() {
        let from = at(r, p * PANEL_COLS * size, rb, size);
        piece.copy_from_slice(&group[from..from + piece.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_places_bytes_and_unpack_inverts() {
        // bf16 rows of 5000 columns: two whole panels of 4096 bytes and one of 1808.
        for (size, cols) in [(2, 5000), (1, 2048 + 64), (4, 3000), (1, 100)] {
            let rb = size * cols;
            let rows: Vec<u8> = (0..ROWS * rb)
                .map(|i| ((i / rb) as u8).wrapping_mul(31) ^ (i % rb) as u8 ^ (i >> 8) as u8)
                .collect();
            let mut group = vec![0u8; rows.len()];
            pack_group(size, &rows, &mut group);
            for r in 0..ROWS {
                for o in 0..rb {
                    let to = at(r, o, rb, size);
                    assert_eq!(group[to], rows[r * rb + o], "size {size} row {r} byte {o}");
                }
            }
            let mut back = vec![0u8; rows.len()];
            unpack_group(size, &group, &mut back);
            assert_eq!(back, rows, "size {size}");
            for (r, want) in rows.chunks_exact(rb).enumerate() {
                let mut row = vec![0u8; rb];
                gather_row(size, &group, r, &mut row);
                assert_eq!(row, want, "size {size} row {r}");
            }
        }
    }

    #[test]
    fn the_layout_is_as_documented() {
        // FP8, 2 panels: 2048 and 64 bytes a row.
        let rb = 2048 + 64;
        assert_eq!(at(5, 70, rb, 1), 5 * 2048 + 70);
        // Panel 1 starts after the 64 rows' first 2048 bytes; its rows are 64 bytes each.
        assert_eq!(at(0, 2048, rb, 1), 64 * 2048);
        assert_eq!(at(6, 2048 + 3, rb, 1), 64 * 2048 + 6 * 64 + 3);
        // f32: a panel is 8 KiB of a row.
        assert_eq!(at(1, 8192 + 4, 3 * 8192, 4), 64 * 8192 + 8192 + 4);
    }
}
