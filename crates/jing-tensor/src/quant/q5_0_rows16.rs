//! `Q5_0` with 16 rows interleaved: the idea of [`super::q8_0_rows16`] for `Q5_0`, made at load
//! for the CPU kernels. Lane `r` of a kernel's vector is row `r`; each 4-byte group of codes
//! meets the same 4 activation codes in all 16 lanes.
//!
//! A `Q5_0` block keeps its fifth bits in one u32 per row (bit `i` for element `i`). Here they
//! are regrouped as the byte masks the kernel adds 16 under: mask `v` of a block is a u64 whose
//! bit `4r + e` is the fifth bit of row `r`'s element `4v + e`, which is where element `4v + e`
//! of row `r` sits in the kernel's code vector `v`. So a kernel adds the fifth bits with one
//! masked byte add per 64 codes, with no shifts or compares.
//!
//! Same bytes, rearranged, same number; rows `16g..16g + 16` keep bytes `16g·R..16(g + 1)·R`.
//! Inside a group, blocks go by pairs, so that every part of a pair starts on a 64-byte line
//! (a group block is 352 bytes, 5.5 lines). Pair `p` (blocks `2p` and `2p + 1`) is one
//! [`PAIR`]-byte unit at `p·PAIR`:
//!
//! - bytes `0..32`: the 16 rows' `d` (f16) of block `2p`, row `r` at `2r`; bytes `32..64`
//!   those of block `2p + 1`;
//! - bytes `64..128`: block `2p`'s 8 masks, mask `v` at `8v` (little-endian); bytes `128..192`
//!   block `2p + 1`'s;
//! - bytes `192..448`: block `2p`'s packed low bits, 4 runs of 64 bytes: run `k` holds bytes
//!   `4k..4k + 4` of each row's `qs`, row `r` at `4r` (low nibbles: elements `4k..4k + 4`, code
//!   vector `k`; high nibbles: elements `16 + 4k..`, code vector `4 + k`); bytes `448..704`
//!   block `2p + 1`'s.
//!
//! A row of an odd number of blocks ends with one block alone: its `d`s (32 bytes), its masks
//! (64), then its 4 runs. A kernel reads the bytes in address order, which the hardware
//! prefetcher streams best.

use super::q5_0::{Q5_0_QH, Q5_0_QS};

/// Rows per group.
pub const ROWS: usize = 16;

/// Bytes of one `Q5_0` block.
const BLOCK: usize = 22;

/// Bytes of one pair of blocks of all 16 rows.
pub const PAIR: usize = 2 * ROWS * BLOCK;

/// Bytes of the 16 `d`s of one block.
const DS: usize = 2 * ROWS;

/// Bytes of one block's 8 masks.
const MASKS: usize = 64;

/// Where block `b` of a group of `nb` blocks per row keeps its 16 `d`s, its 8 masks and its 4
/// runs: `(ds, masks, runs)` byte offsets in the group.
#[inline(always)]
pub fn block_at(b: usize, nb: usize) -> (usize, usize, usize) {
    let (p, second) = (b / 2, b % 2);
    let unit = p * PAIR;
    if 2 * p + 1 < nb {
        // A whole pair: both blocks' `d`s, both blocks' masks, then both blocks' runs.
        (
            unit + DS * second,
            unit + 2 * DS + MASKS * second,
            unit + 2 * DS + 2 * MASKS + 4 * 64 * second,
        )
    } else {
        // The last block of an odd row, alone.
        (unit, unit + DS, unit + DS + MASKS)
    }
}

/// Interleave one group: `rows` is 16 GGUF `Q5_0` rows back to back; `out` (the same length)
/// receives them in the layout of the module docs.
pub fn pack_group(rows: &[u8], out: &mut [u8]) {
    let rb = rows.len() / ROWS;
    assert!(rb.is_multiple_of(BLOCK) && rows.len() == ROWS * rb && out.len() == rows.len());
    let nb = rb / BLOCK;
    for b in 0..nb {
        let (ds, masks, runs) = block_at(b, nb);
        let mut mask = [0u64; 8];
        for (r, row) in rows.chunks_exact(rb).enumerate() {
            let blk: &[u8; BLOCK] = row[b * BLOCK..(b + 1) * BLOCK]
                .try_into()
                .expect("one block");
            out[ds + 2 * r..ds + 2 * r + 2].copy_from_slice(&blk[..2]);
            let qh = u32::from_le_bytes(blk[Q5_0_QH..Q5_0_QH + 4].try_into().expect("4 bytes"));
            for (v, m) in mask.iter_mut().enumerate() {
                *m |= u64::from((qh >> (4 * v)) & 0xf) << (4 * r);
            }
            for k in 0..4 {
                let (at, to) = (Q5_0_QS + 4 * k, runs + 64 * k + 4 * r);
                out[to..to + 4].copy_from_slice(&blk[at..at + 4]);
            }
        }
        for (v, m) in mask.iter().enumerate() {
            out[masks + 8 * v..masks + 8 * v + 8].copy_from_slice(&m.to_le_bytes());
        }
    }
}

/// The inverse of [`pack_group`]: the 16 GGUF rows of one group.
pub fn unpack_group(group: &[u8], rows: &mut [u8]) {
    let rb = group.len() / ROWS;
    assert!(rb.is_multiple_of(BLOCK) && group.len() == ROWS * rb && rows.len() == group.len());
    let nb = rb / BLOCK;
    for b in 0..nb {
        let (ds, masks, runs) = block_at(b, nb);
        let mask: [u64; 8] = std::array::from_fn(|v| {
            let at = masks + 8 * v;
            u64::from_le_bytes(group[at..at + 8].try_into().expect("8 bytes"))
        });
        for (r, row) in rows.chunks_exact_mut(rb).enumerate() {
            let blk: &mut [u8; BLOCK] = (&mut row[b * BLOCK..(b + 1) * BLOCK])
                .try_into()
                .expect("one block");
            blk[..2].copy_from_slice(&group[ds + 2 * r..ds + 2 * r + 2]);
            let qh = mask.iter().enumerate().fold(0u32, |h, (v, m)| {
                h | ((((m >> (4 * r)) & 0xf) as u32) << (4 * v))
            });
            blk[Q5_0_QH..Q5_0_QH + 4].copy_from_slice(&qh.to_le_bytes());
            for k in 0..4 {
                let (at, from) = (Q5_0_QS + 4 * k, runs + 64 * k + 4 * r);
                blk[at..at + 4].copy_from_slice(&group[from..from + 4]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 5-bit code of element `i` of a GGUF block.
    fn code(blk: &[u8], i: usize) -> u8 {
        let qh = u32::from_le_bytes(blk[Q5_0_QH..Q5_0_QH + 4].try_into().unwrap());
        let qs = blk[Q5_0_QS + i % 16];
        let low = if i < 16 { qs & 0xf } else { qs >> 4 };
        low | ((((qh >> i) & 1) as u8) << 4)
    }

    /// The code that lane `4r + e` of code vector `v` of block `b` gets, read from the packed
    /// group as a kernel reads it (run `v % 4`, low nibbles for `v < 4`, plus 16 under mask `v`).
    fn packed_code(group: &[u8], nb: usize, b: usize, v: usize, r: usize, e: usize) -> u8 {
        let (_, masks, runs) = block_at(b, nb);
        let byte = group[runs + 64 * (v % 4) + 4 * r + e];
        let low = if v < 4 { byte & 0xf } else { byte >> 4 };
        let m = u64::from_le_bytes(group[masks + 8 * v..masks + 8 * v + 8].try_into().unwrap());
        low | ((((m >> (4 * r + e)) & 1) as u8) << 4)
    }

    /// Every code and `d` is where a kernel looks for it, the parts of whole pairs start on
    /// 64-byte lines, and unpacking restores the rows; for even and odd numbers of blocks.
    #[test]
    fn codes_sit_where_the_kernel_reads_them_and_unpack_restores_the_rows() {
        for nb in [1, 2, 3, 4, 7] {
            let rows: Vec<u8> = (0..ROWS * nb * BLOCK)
                .map(|i| (i * 131 % 251) as u8)
                .collect();
            let mut packed = vec![0u8; rows.len()];
            pack_group(&rows, &mut packed);
            assert_ne!(packed, rows, "nb={nb}");
            let rb = nb * BLOCK;
            for b in 0..nb {
                let (ds, _, _) = block_at(b, nb);
                for r in 0..ROWS {
                    let blk = &rows[r * rb + b * BLOCK..r * rb + (b + 1) * BLOCK];
                    assert_eq!(
                        packed[ds + 2 * r..ds + 2 * r + 2],
                        blk[..2],
                        "nb={nb} b={b}"
                    );
                    for v in 0..8 {
                        for e in 0..4 {
                            assert_eq!(
                                packed_code(&packed, nb, b, v, r, e),
                                code(blk, 4 * v + e),
                                "nb={nb} b={b} r={r} v={v} e={e}"
                            );
                        }
                    }
                }
            }
            for b in 0..nb - nb % 2 {
                let (ds, masks, runs) = block_at(b, nb);
                assert_eq!((ds % 32, masks % 64, runs % 64), (0, 0, 0), "nb={nb} b={b}");
            }
            let mut back = vec![0u8; rows.len()];
            unpack_group(&packed, &mut back);
            assert_eq!(back, rows, "nb={nb}");
        }
    }
}
