//! MLA's per-head up-projections W_UK and W_UV, in the orientation the checkpoint stores them.
//!
//! Absorbed attention multiplies the query by W_UK[h]ᵀ and the latent output by W_UV[h]. HF
//! checkpoints store both inside `kv_b_proj [H·(dn+dv), kvl]` (W_UK[h] as `[dn, kvl]`);
//! GGUF files store W_UK[h]ᵀ as `attn_k_b [H, kvl, dn]` and W_UV as `attn_v_b [H, dv, kvl]`,
//! each in its own quant type. Keeping each as stored (views, no copy) lets a backend read
//! exactly the checkpoint's bytes: rebuilding `kv_b_proj` from two differently quantized GGUF
//! parts would need f32, several times the bytes the file holds.

use jing_tensor::Weight;

/// W_UK[h] as stored.
#[derive(Clone, Debug)]
pub enum UkHead {
    /// `[dn, kvl]`: W_UK[h] itself (rows of HF `kv_b_proj`); `q_lat = Σ_d q[d] · row_d`.
    Rows(Weight),
    /// `[kvl, dn]`: W_UK[h]ᵀ (GGUF `attn_k_b`); `q_lat = W_UK[h]ᵀ · q`, a plain matmul.
    Transposed(Weight),
}

/// One head's up-projections.
#[derive(Clone, Debug)]
pub struct MlaHead {
    pub uk: UkHead,
    /// `[dv, kvl]`: W_UV[h].
    pub uv: Weight,
}

/// Every head's W_UK and W_UV (row views into the stored tensors).
#[derive(Clone, Debug)]
pub struct MlaWeights {
    pub heads: Vec<MlaHead>,
    pub nope_dim: usize,
    pub v_dim: usize,
    pub kv_lora: usize,
    /// Bytes of the stored tensors (what one pass over all heads reads).
    pub stored_bytes: usize,
}

impl MlaWeights {
    /// From HF `kv_b_proj [H·(dn+dv), kvl]`: per head, `dn` rows of W_UK then `dv` rows of W_UV.
    pub fn from_kv_b(kv_b: &Weight, heads: usize, nope_dim: usize, v_dim: usize) -> MlaWeights {
        let per = nope_dim + v_dim;
        assert_eq!(
            kv_b.shape.len(),
            2,
            "mla: kv_b `{}` must be 2-D, found {:?}",
            kv_b.name,
            kv_b.shape
        );
        assert_eq!(
            kv_b.rows(),
            heads * per,
            "mla: kv_b `{}` has {} rows, {heads} heads × ({nope_dim} + {v_dim}) expected",
            kv_b.name,
            kv_b.rows()
        );
        let heads = (0..heads)
            .map(|h| MlaHead {
                uk: UkHead::Rows(kv_b.slice_rows(h * per, h * per + nope_dim)),
                uv: kv_b.slice_rows(h * per + nope_dim, (h + 1) * per),
            })
            .collect();
        MlaWeights {
            heads,
            nope_dim,
            v_dim,
            kv_lora: kv_b.cols(),
            stored_bytes: kv_b.stored_bytes(),
        }
    }

    /// HF `kv_b_proj [H·(dn+dv), kvl]` as two weights in memory of their own
    /// ([`Weight::gather_rows`]): `[W_UK, W_UV]`, W_UK of every head `[H·dn, kvl]` and W_UV
    /// `[H·dv, kvl]`, for [`MlaWeights::from_uk_uv`]. Each is then one piece, where the heads'
    /// rows as stored take turns every `dn` and `dv` rows: a pass over either (all heads' W_UK
    /// before the attention, all heads' W_UV after it) reads one stream instead of runs with
    /// gaps between them, and W_UV, one matmul per head, can go in the layout a backend's
    /// matmul kernels read best. `None` where a head's rows cut the rows of the block scales.
    pub fn split_kv_b(
        kv_b: &Weight,
        heads: usize,
        nope_dim: usize,
        v_dim: usize,
    ) -> Option<[Weight; 2]> {
        let per = nope_dim + v_dim;
        if kv_b.shape.len() != 2 || kv_b.rows() != heads * per {
            return None;
        }
        let runs = |from: usize, len: usize| -> Vec<std::ops::Range<usize>> {
            (0..heads)
                .map(|h| h * per + from..h * per + from + len)
                .collect()
        };
        let uk = kv_b.gather_rows(&runs(0, nope_dim), format!("{} (W_UK)", kv_b.name))?;
        let uv = kv_b.gather_rows(&runs(nope_dim, v_dim), format!("{} (W_UV)", kv_b.name))?;
        Some([uk, uv])
    }

    /// From W_UK `[H·dn, kvl]` (rows as stored) and W_UV `[H·dv, kvl]` (any layout whose row
    /// groups do not cut a head's `dv` rows), as [`MlaWeights::split_kv_b`] makes them.
    pub fn from_uk_uv(uk: &Weight, uv: &Weight, heads: usize) -> MlaWeights {
        assert!(
            heads > 0 && uk.rows().is_multiple_of(heads) && uv.rows().is_multiple_of(heads),
            "mla: W_UK `{}` ({} rows) and W_UV `{}` ({} rows) do not split into {heads} heads",
            uk.name,
            uk.rows(),
            uv.name,
            uv.rows()
        );
        assert_eq!(
            uk.cols(),
            uv.cols(),
            "mla: W_UK `{}` and W_UV `{}` disagree on kv_lora",
            uk.name,
            uv.name
        );
        // Kernels read W_UK a row at a time (`row_axpy`), which needs each row's bytes together.
        assert_eq!(
            uk.layout,
            jing_tensor::RowLayout::Rows,
            "mla: W_UK `{}` must keep its rows as stored",
            uk.name
        );
        let (dn, dv) = (uk.rows() / heads, uv.rows() / heads);
        let heads = (0..heads)
            .map(|h| MlaHead {
                uk: UkHead::Rows(uk.slice_rows(h * dn, (h + 1) * dn)),
                uv: uv.slice_rows(h * dv, (h + 1) * dv),
            })
            .collect();
        MlaWeights {
            heads,
            nope_dim: dn,
            v_dim: dv,
            kv_lora: uk.cols(),
            stored_bytes: uk.stored_bytes() + uv.stored_bytes(),
        }
    }

    /// From GGUF's split parts: `k_b [H, kvl, dn]` (W_UKᵀ per head) and `v_b [H, dv, kvl]`.
    pub fn from_split(k_b: &Weight, v_b: &Weight) -> MlaWeights {
        let (&[h, kvl, dn], &[hv, dv, kvl_v]) = (k_b.shape.as_slice(), v_b.shape.as_slice()) else {
            panic!(
                "mla: k_b `{}` {:?} and v_b `{}` {:?} must be 3-D [heads, kv_lora, nope] and [heads, v, kv_lora]",
                k_b.name, k_b.shape, v_b.name, v_b.shape
            );
        };
        assert!(
            h == hv && kvl == kvl_v,
            "mla: k_b {:?} and v_b {:?} disagree on heads or kv_lora",
            k_b.shape,
            v_b.shape
        );
        let heads = (0..h)
            .map(|i| MlaHead {
                uk: UkHead::Transposed(k_b.slice_rows(i * kvl, (i + 1) * kvl)),
                uv: v_b.slice_rows(i * dv, (i + 1) * dv),
            })
            .collect();
        MlaWeights {
            heads,
            nope_dim: dn,
            v_dim: dv,
            kv_lora: kvl,
            stored_bytes: k_b.stored_bytes() + v_b.stored_bytes(),
        }
    }

    pub fn n_heads(&self) -> usize {
        self.heads.len()
    }

    /// W_UK[h] dequantized, `[dn, kvl]` row-major (the reference and the expanded form).
    pub fn uk_f32(&self, h: usize) -> Vec<f32> {
        let (dn, kvl) = (self.nope_dim, self.kv_lora);
        match &self.heads[h].uk {
            UkHead::Rows(w) => w.to_f32_vec(),
            UkHead::Transposed(w) => {
                let t = w.to_f32_vec(); // [kvl, dn]
                let mut out = vec![0.0f32; dn * kvl];
                for (c, row) in t.chunks_exact(dn).enumerate() {
                    for (d, &v) in row.iter().enumerate() {
                        out[d * kvl + c] = v;
                    }
                }
                out
            }
        }
    }

    /// W_UV[h] dequantized, `[dv, kvl]` row-major.
    pub fn uv_f32(&self, h: usize) -> Vec<f32> {
        self.heads[h].uv.to_f32_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jing_tensor::{Bytes, DType};

    /// `kv_b [H·(dn+dv), kvl]` FP8 with `block` scales, every code and scale distinct enough
    /// that a wrong row or block shows.
    fn fp8_kv_b(heads: usize, dn: usize, dv: usize, kvl: usize, block: [usize; 2]) -> Weight {
        let rows = heads * (dn + dv);
        let codes = (0..rows * kvl)
            .map(|i| (i * 7 % 251) as u8 & 0x7e)
            .collect();
        let grid = [rows.div_ceil(block[0]), kvl.div_ceil(block[1])];
        let scales: Vec<f32> = (0..grid[0] * grid[1]).map(|i| 1.0 + i as f32).collect();
        Weight::new(
            "kv_b",
            DType::F8E4M3,
            vec![rows, kvl],
            Bytes::from_vec(codes),
        )
        .unwrap()
        .with_block_scale("s", &grid, Bytes::from_f32(&scales), block)
        .unwrap()
    }

    /// Split into W_UK and W_UV, every head reads what the views of `kv_b` read; heads whose
    /// rows cut the scales' block rows are not split.
    #[test]
    fn split_kv_b_keeps_every_head() {
        let (h, dn, dv, kvl) = (3, 4, 8, 32);
        let plain_values: Vec<f32> = (0..h * (dn + dv) * kvl).map(|i| i as f32).collect();
        let plain = Weight::from_f32("kv_b", vec![h * (dn + dv), kvl], &plain_values);
        for kv_b in [plain, fp8_kv_b(h, dn, dv, kvl, [4, 16])] {
            let views = MlaWeights::from_kv_b(&kv_b, h, dn, dv);
            let [uk, uv] = MlaWeights::split_kv_b(&kv_b, h, dn, dv).expect("whole blocks");
            assert_eq!(
                (uk.shape.clone(), uv.shape.clone()),
                (vec![12, 32], vec![24, 32])
            );
            let split = MlaWeights::from_uk_uv(&uk, &uv, h);
            assert_eq!((split.nope_dim, split.v_dim, split.kv_lora), (dn, dv, kvl));
            assert_eq!(split.stored_bytes, views.stored_bytes);
            for head in 0..h {
                assert_eq!(
                    split.uk_f32(head),
                    views.uk_f32(head),
                    "{} W_UK[{head}]",
                    kv_b.name
                );
                assert_eq!(
                    split.uv_f32(head),
                    views.uv_f32(head),
                    "{} W_UV[{head}]",
                    kv_b.name
                );
            }
        }
        // dn = 4 rows cut blocks of 8.
        assert!(MlaWeights::split_kv_b(&fp8_kv_b(h, dn, dv, kvl, [8, 16]), h, dn, dv).is_none());
        // A kv_b of another shape is not split.
        assert!(MlaWeights::split_kv_b(&fp8_kv_b(h, dn, dv, kvl, [4, 16]), 2, dn, dv).is_none());
    }

    /// W_UK in a layout that does not keep a row's bytes together is refused by name.
    #[test]
    #[should_panic(expected = "W_UK `uk` must keep its rows as stored")]
    fn w_uk_rearranged_is_refused() {
        let w = Weight::from_f32("uk", vec![64, 64], &[0.5; 64 * 64]);
        let lines = w.in_panel_lines().expect("64 rows of whole lines");
        MlaWeights::from_uk_uv(&lines, &w, 1);
    }
}
