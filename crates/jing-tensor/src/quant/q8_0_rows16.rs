//! `Q8_0` with 16 rows interleaved: the idea of [`super::q4_k_rows16`] for `Q8_0`, made at load
//! for the CPU kernels. Lane `r` of a kernel's vector is row `r`: each 4-byte group of codes
//! meets the same 4 activation codes in all 16 lanes, the 16 rows' scales are one vector, and
//! no lanes are ever added together.
//!
//! Same bytes, rearranged, same number; rows `16g..16g + 16` keep bytes `16g·R..16(g + 1)·R`.
//! Inside a group, blocks go by pairs, so that the code runs start on 64-byte lines (a group
//! block is 544 bytes, 8.5 lines). Pair `p` (blocks `2p` and `2p + 1`) is one
//! [`PAIR`]-byte unit at `p·PAIR`:
//!
//! - bytes `0..32`: the 16 rows' `d` (f16) of block `2p`, row `r` at `2r`; bytes `32..64`
//!   those of block `2p + 1`;
//! - bytes `64..576`: block `2p`'s codes, 8 runs of 64 bytes: run `k` holds codes `4k..4k + 4`
//!   of each row, row `r` at `4r`; bytes `576..1088`: block `2p + 1`'s, the same way.
//!
//! A row of an odd number of blocks ends with one block alone: its `d`s (32 bytes), then its
//! 8 runs. A kernel reads the bytes in address order, which the hardware prefetcher streams
//! best.

use super::q8_0;

/// Rows per group.
pub const ROWS: usize = 16;

/// Bytes of one `Q8_0` block.
const BLOCK: usize = q8_0::BLOCK_BYTES;

/// Bytes of one pair of blocks of all 16 rows.
pub const PAIR: usize = 2 * ROWS * BLOCK;

/// Bytes of the 16 `d`s of one block.
const DS: usize = 2 * ROWS;

/// Where block `b` of a group of `nb` blocks per row keeps its 16 `d`s and its 8 runs:
/// `(ds, runs)` byte offsets in the group.
#[inline(always)]
pub fn block_at(b: usize, nb: usize) -> (usize, usize) {
    let (p, second) = (b / 2, b % 2);
    let unit = p * PAIR;
    if 2 * p + 1 < nb {
        // A whole pair: both blocks' `d`s, then both blocks' runs.
        (unit + DS * second, unit + 2 * DS + 16 * 32 * second)
    } else {
        // The last block of an odd row, alone.
        (unit, unit + DS)
    }
}

/// Interleave one group: `rows` is 16 GGUF `Q8_0` rows back to back; `out` (the same length)
/// receives them in the layout of the module docs. (Fixed-size moves: loading a model
/// rearranges every `Q8_0` matmul weight so.)
pub fn pack_group(rows: &[u8], out: &mut [u8]) {
    let rb = rows.len() / ROWS;
    assert!(rb.is_multiple_of(BLOCK) && rows.len() == ROWS * rb && out.len() == rows.len());
    let nb = rb / BLOCK;
    for b in 0..nb {
        let (ds, runs) = block_at(b, nb);
        for (r, row) in rows.chunks_exact(rb).enumerate() {
            let blk: &[u8; BLOCK] = row[b * BLOCK..(b + 1) * BLOCK]
                .try_into()
                .expect("one block");
            out[ds + 2 * r..ds + 2 * r + 2].copy_from_slice(&blk[q8_0::D..q8_0::D + 2]);
            for k in 0..8 {
                let (at, to) = (q8_0::QS + 4 * k, runs + 64 * k + 4 * r);
                out[to..to + 4].copy_from_slice(&blk[at..at + 4]);
            }
        }
    }
}

/// The inverse of [`pack_group`]: the 16 GGUF rows of one group. (Prefill takes every group
/// apart before dequantizing it: fixed-size moves.)
pub fn unpack_group(group: &[u8], rows: &mut [u8]) {
    let rb = group.len() / ROWS;
    assert!(rb.is_multiple_of(BLOCK) && group.len() == ROWS * rb && rows.len() == group.len());
    let nb = rb / BLOCK;
    for b in 0..nb {
        let (ds, runs) = block_at(b, nb);
        let d: &[u8; 2 * ROWS] = group[ds..ds + 2 * ROWS].try_into().expect("32 bytes");
        let codes: &[u8; 512] = group[runs..runs + 512].try_into().expect("512 bytes");
        for (r, row) in rows.chunks_exact_mut(rb).enumerate() {
            let blk: &mut [u8; BLOCK] = (&mut row[b * BLOCK..(b + 1) * BLOCK])
                .try_into()
                .expect("one block");
            blk[q8_0::D..q8_0::D + 2].copy_from_slice(&d[2 * r..2 * r + 2]);
            for k in 0..8 {
                let at = q8_0::QS + 4 * k;
                blk[at..at + 4].copy_from_slice(&codes[64 * k + 4 * r..64 * k + 4 * r + 4]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row `r`'s block `b` as `(offset in the block, offset in the group, length)` pieces: the
    /// `d`, then the codes 4 at a time.
    fn pieces(b: usize, nb: usize, r: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        let (ds, runs) = block_at(b, nb);
        std::iter::once((q8_0::D, ds + 2 * r, 2))
            .chain((0..8).map(move |k| (q8_0::QS + 4 * k, runs + 64 * k + 4 * r, 4)))
    }

    /// Every byte of the 16 rows has exactly one place, runs start on 64-byte lines in whole
    /// pairs, and unpacking restores the rows; for even and odd numbers of blocks.
    #[test]
    fn unpack_restores_the_rows() {
        for nb in [1, 2, 3, 4, 7] {
            let rows: Vec<u8> = (0..ROWS * nb * BLOCK)
                .map(|i| (i * 131 % 251) as u8)
                .collect();
            let mut packed = vec![0u8; rows.len()];
            pack_group(&rows, &mut packed);
            assert_ne!(packed, rows, "nb={nb}");
            let mut seen = vec![false; rows.len()];
            for r in 0..ROWS {
                for b in 0..nb {
                    let mut covered = 0;
                    for (from, to, n) in pieces(b, nb, r) {
                        assert_eq!(from, covered, "nb={nb} b={b} r={r}: pieces in order");
                        covered += n;
                        for s in &mut seen[to..to + n] {
                            assert!(!std::mem::replace(s, true), "nb={nb} b={b} r={r}");
                        }
                        let at = r * nb * BLOCK + b * BLOCK + from;
                        assert_eq!(packed[to..to + n], rows[at..at + n], "nb={nb} b={b} r={r}");
                    }
                    assert_eq!(covered, BLOCK);
                }
            }
            assert!(seen.iter().all(|s| *s), "nb={nb}: every byte placed");
            for b in 0..nb - nb % 2 {
                assert_eq!(block_at(b, nb).1 % 64, 0, "nb={nb} b={b}: runs on a line");
            }
            let mut back = vec![0u8; rows.len()];
            unpack_group(&packed, &mut back);
            assert_eq!(back, rows, "nb={nb}");
        }
    }
}
