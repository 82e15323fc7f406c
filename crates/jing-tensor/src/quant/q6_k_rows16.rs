//! `Q6_K` with 16 rows interleaved: the `Q4_K` layout's idea ([`super::q4_k_rows16`]) for
//! `Q6_K`, made at load for the CPU kernels. Lane `r` of a kernel's vector is row `r`.
//!
//! Same bytes, rearranged, same number; rows `16g..16g + 16` keep bytes `16g·R..16(g + 1)·R`.
//! Inside a group, block `b` of the 16 rows is one [`GROUP_BLOCK`]-byte unit at
//! `b·GROUP_BLOCK`:
//!
//! - bytes `0..256`: the scales, `[sub-block j][row r]` (i8);
//! - bytes `256..3328`, 16 steps of 192 bytes, step `8h + k` (`h < 2`, `k < 8`, `l = 4k`):
//!   three runs of 64 bytes holding 4 bytes of each row (row `r` at `4r`): `qh` bytes
//!   `32h + l..+4`, then the `ql` bytes they complete, `64h + l..+4` and `64h + 32 + l..+4`.
//!   One step gives four codes of four sub-blocks for every row, and a kernel reads the steps,
//!   like the whole block, in address order (the hardware prefetcher streams that best);
//! - bytes `3328..3360`: the 16 rows' `d` (f16).

use super::q6_k;

/// Rows per group.
pub const ROWS: usize = 16;

/// Bytes of one `Q6_K` block.
const BLOCK: usize = 210;

/// Bytes of one block of all 16 rows of a group.
pub const GROUP_BLOCK: usize = ROWS * BLOCK;

/// Offsets in a group block: the steps, and the `d`s.
pub const STEPS: usize = 256;
pub const STEP: usize = 192;
pub const DS: usize = STEPS + 16 * STEP;

/// Where byte `i` (`0..208`: `ql`, `qh`, scales) of row `r`'s block lies in a group block.
fn place(i: usize, r: usize) -> usize {
    // (step, run within the step, byte within the 4)
    let (step, run, byte) = match i {
        _ if i < q6_k::QH => {
            let (h, m) = (i / 64, i % 64);
            (8 * h + (m % 32) / 4, 1 + m / 32, m % 4)
        }
        _ if i < q6_k::SCALES => {
            let (h, m) = ((i - q6_k::QH) / 32, (i - q6_k::QH) % 32);
            (8 * h + m / 4, 0, m % 4)
        }
        _ => return ROWS * (i - q6_k::SCALES) + r,
    };
    STEPS + STEP * step + 64 * run + 4 * r + byte
}

/// Interleave one group: `rows` is 16 GGUF `Q6_K` rows back to back; `out` (the same length)
/// receives them in the layout of the module docs.
pub fn pack_group(rows: &[u8], out: &mut [u8]) {
    let rb = rows.len() / ROWS;
    assert!(rb.is_multiple_of(BLOCK) && rows.len() == ROWS * rb && out.len() == rows.len());
    for (b, unit) in out.chunks_exact_mut(GROUP_BLOCK).enumerate() {
        for r in 0..ROWS {
            let blk = &rows[r * rb + b * BLOCK..r * rb + (b + 1) * BLOCK];
            for (i, &byte) in blk[..q6_k::D].iter().enumerate() {
                unit[place(i, r)] = byte;
            }
            unit[DS + 2 * r..DS + 2 * r + 2].copy_from_slice(&blk[q6_k::D..BLOCK]);
        }
    }
}

/// The inverse of [`pack_group`]: the 16 GGUF rows of one group. (Prefill takes every group
/// apart before dequantizing it, so this moves 4 bytes at a time rather than going through
/// [`place`] byte by byte.)
pub fn unpack_group(group: &[u8], rows: &mut [u8]) {
    let rb = group.len() / ROWS;
    assert!(rb.is_multiple_of(BLOCK) && group.len() == ROWS * rb && rows.len() == group.len());
    for (b, unit) in group.chunks_exact(GROUP_BLOCK).enumerate() {
        let unit: &[u8; GROUP_BLOCK] = unit.try_into().expect("one group block");
        for r in 0..ROWS {
            let blk: &mut [u8; BLOCK] = (&mut rows[r * rb + b * BLOCK..r * rb + (b + 1) * BLOCK])
                .try_into()
                .expect("one block");
            for h in 0..2 {
                for k in 0..8 {
                    let step = STEPS + STEP * (8 * h + k) + 4 * r;
                    let qh = q6_k::QH + 32 * h + 4 * k;
                    blk[qh..qh + 4].copy_from_slice(&unit[step..step + 4]);
                    for half in 0..2 {
                        let ql = 64 * h + 32 * half + 4 * k;
                        let run = step + 64 * (1 + half);
                        blk[ql..ql + 4].copy_from_slice(&unit[run..run + 4]);
                    }
                }
            }
            for j in 0..16 {
                blk[q6_k::SCALES + j] = unit[ROWS * j + r];
            }
            blk[q6_k::D..BLOCK].copy_from_slice(&unit[DS + 2 * r..DS + 2 * r + 2]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of the 16 rows has one place, and unpacking restores them.
    #[test]
    fn unpack_restores_the_rows() {
        let rows: Vec<u8> = (0..ROWS * 3 * BLOCK)
            .map(|i| (i * 131 % 251) as u8)
            .collect();
        let mut packed = vec![0u8; rows.len()];
        pack_group(&rows, &mut packed);
        assert_ne!(packed, rows);
        let mut seen = vec![false; GROUP_BLOCK];
        for r in 0..ROWS {
            for i in 0..q6_k::D {
                assert!(
                    !std::mem::replace(&mut seen[place(i, r)], true),
                    "byte {i} row {r}"
                );
            }
        }
        assert_eq!(seen.iter().filter(|s| **s).count(), GROUP_BLOCK - 2 * ROWS);
        let mut back = vec![0u8; rows.len()];
        unpack_group(&packed, &mut back);
        assert_eq!(back, rows);
    }
}
