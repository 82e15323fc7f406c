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
