//! Float rows (f32, f16, bf16, FP8) in groups of 64, column panel by column panel, and f32, f16
//! and bf16 rows of any length also in lines: the layouts in which the CPU float kernels stream
//! rows best.
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
//! ([`at`]). In plain panels, rows of one panel or less would be as stored: they are left so.
//!
//! **Lines** (f32, f16 and bf16, whose kernels decode fast enough to outrun four streams): in
//! each panel, each run of [`RUN`] rows also has its 64-byte lines interleaved, line `c` of the
//! run's row `i` at `(4c + i)·64` in the run, so that the 4 rows the kernels read side by side
//! are one stream in address order, which the hardware prefetcher follows without software
//! prefetch. Rows of one panel or less go in lines too (one panel). One Zen 4 thread from DRAM
//! (an in-crate timing loop, medians of two rounds, GB/s):
//!
//! | rows | as stored or in panels | in lines |
//! |---|---|---|
//! | bf16, K = 1536 (as stored) | 26.6-27.2 | 31.2-33.0 |
//! | bf16, K = 7168 (panels) | 25.3-26.1 | 32.3-33.0 |
//! | f32, K = 1536 | 24.1-24.2 | 32.6-33.4 |
//! | f32, K = 7168 | 24.7-25.6 | 31.7-32.4 |
//!
//! The plain read loop reads 30-33. Lines read with the software prefetch of rows as stored
//! gave 23.9-24.7. FP8, whose decode is the limit on one thread, read 23.5-24.3 in lines against
//! 24.4-25.7 in panels, so FP8 stays in plain panels.

/// Rows per group.
pub const ROWS: usize = 64;

/// Columns per panel.
pub const PANEL_COLS: usize = 2048;

/// Rows whose lines are interleaved, in panels of lines.
pub const RUN: usize = 4;

/// Bytes per line.
pub const LINE: usize = 64;

/// Where byte `o` of row `r` lies in its group (`row_bytes` bytes a row, `size` bytes an
/// element; with `lines`, a panel's rows are whole lines).
#[inline]
pub fn at(r: usize, o: usize, row_bytes: usize, size: usize, lines: bool) -> usize {
    let pb = PANEL_COLS * size;
    let (p, o) = (o / pb, o % pb);
    let b = pb.min(row_bytes - p * pb);
    let panel = ROWS * p * pb;
    match lines {
        false => panel + r * b + o,
        true => panel + r / RUN * RUN * b + line_at(o) + r % RUN * LINE,
    }
}

/// Where byte `o` of a row of a run in lines lies from the start of the row's first line.
#[inline(always)]
pub fn line_at(o: usize) -> usize {
    o + o / LINE * (RUN - 1) * LINE
}

/// The bytes of each row piece that lie together: a line in lines, else the whole piece.
fn together(size: usize, lines: bool) -> usize {
    if lines {
        LINE
    } else {
        PANEL_COLS * size
    }
}

/// Rearrange one group: `rows` is 64 rows back to back, `size` bytes an element; `out` (the
/// same length) receives them in the layout of the module docs.
pub fn pack_group(size: usize, lines: bool, rows: &[u8], out: &mut [u8]) {
    let rb = rows.len() / ROWS;
    assert!(rows.len() == ROWS * rb && out.len() == rows.len());
    assert!(
        !lines || rb.is_multiple_of(LINE),
        "rows in lines are whole lines"
    );
    let n = together(size, lines);
    for (r, row) in rows.chunks_exact(rb).enumerate() {
        for (i, piece) in row.chunks(n).enumerate() {
            let to = at(r, i * n, rb, size, lines);
            out[to..to + piece.len()].copy_from_slice(piece);
        }
    }
}

/// The inverse of [`pack_group`]: the 64 rows of one group, back to back.
pub fn unpack_group(size: usize, lines: bool, group: &[u8], rows: &mut [u8]) {
    let rb = group.len() / ROWS;
    assert!(group.len() == ROWS * rb && rows.len() == group.len());
    for (r, row) in rows.chunks_exact_mut(rb).enumerate() {
        gather_row(size, lines, group, r, row);
    }
}

/// Row `r` of one `group`, as stored, into `row` (a row's bytes): its pieces, without taking
/// the other rows apart.
pub fn gather_row(size: usize, lines: bool, group: &[u8], r: usize, row: &mut [u8]) {
    let rb = row.len();
    assert!(group.len() == ROWS * rb && r < ROWS);
    let n = together(size, lines);
    for (i, piece) in row.chunks_mut(n).enumerate() {
        let from = at(r, i * n, rb, size, lines);
        piece.copy_from_slice(&group[from..from + piece.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_places_bytes_and_unpack_inverts() {
        // bf16 rows of 5000 columns: two whole panels of 4096 bytes and one of 1808.
        for (size, cols, lines) in [
            (2, 5000, false),
            (1, 2048 + 64, false),
            (4, 3000, false),
            (1, 100, false),
            (2, 5024, true),
            (4, 3008, true),
            (2, 1536, true),
            (4, 16, true),
        ] {
            let rb = size * cols;
            let rows: Vec<u8> = (0..ROWS * rb)
                .map(|i| ((i / rb) as u8).wrapping_mul(31) ^ (i % rb) as u8 ^ (i >> 8) as u8)
                .collect();
            let mut group = vec![0u8; rows.len()];
            pack_group(size, lines, &rows, &mut group);
            for r in 0..ROWS {
                for o in 0..rb {
                    let to = at(r, o, rb, size, lines);
                    assert_eq!(group[to], rows[r * rb + o], "size {size} row {r} byte {o}");
                }
            }
            let mut back = vec![0u8; rows.len()];
            unpack_group(size, lines, &group, &mut back);
            assert_eq!(back, rows, "size {size}");
            for (r, want) in rows.chunks_exact(rb).enumerate() {
                let mut row = vec![0u8; rb];
                gather_row(size, lines, &group, r, &mut row);
                assert_eq!(row, want, "size {size} row {r}");
            }
        }
    }

    #[test]
    fn the_layout_is_as_documented() {
        // FP8, 2 panels: 2048 and 64 bytes a row.
        let rb = 2048 + 64;
        assert_eq!(at(5, 70, rb, 1, false), 5 * 2048 + 70);
        // Panel 1 starts after the 64 rows' first 2048 bytes; its rows are 64 bytes each.
        assert_eq!(at(0, 2048, rb, 1, false), 64 * 2048);
        assert_eq!(at(6, 2048 + 3, rb, 1, false), 64 * 2048 + 6 * 64 + 3);
        // f32: a panel is 8 KiB of a row.
        assert_eq!(at(1, 8192 + 4, 3 * 8192, 4, false), 64 * 8192 + 8192 + 4);
        // bf16 in lines, rows of 4096 + 128 bytes: row 6 is row 2 of the second run; its line
        // 1 follows the run's 4 lines 0 and its own rows' line 1 of rows 4 and 5.
        let rb = 4096 + 128;
        assert_eq!(at(6, 64 + 5, rb, 2, true), 4 * 4096 + 4 * 64 + 2 * 64 + 5);
        // In panel 1 a row is 2 lines: run 1 starts after run 0's 4 x 128 bytes.
        assert_eq!(
            at(5, 4096 + 64, rb, 2, true),
            64 * 4096 + 4 * 128 + 4 * 64 + 64
        );
        assert_eq!(line_at(130), 4 * 128 + 2);
    }
}
