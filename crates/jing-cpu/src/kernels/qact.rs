//! Activations quantized for the integer dot products with GGUF block weights, as llama.cpp
//! does it: each token row of `x` becomes blocks of signed 8-bit codes with one f32 scale per
//! block, 32-element blocks for the 32-element weight formats (`Q4_0` .. `Q8_0`) and 256-element
//! blocks for the K-quants, plus the sum of every run of 16 codes (the dot products of weights
//! with an offset or a min need `Σ x` per sub-block).
//!
//! Quantization: per block, `amax = max |x|`, `d = amax / 127`, `q = round_ties_even(x · (127 /
//! amax))` (all codes in -127..=127); an all-zero block has `d = 0` and zero codes. The real
//! value a code stands for is `d · q`, within `d / 2` of `x` (plus the f32 rounding of `x ·
//! 127/amax`): so `|x - d·q| <= amax / 254 · (1 + 2^-22)`. Every kernel table uses this one
//! function, so the integer dot products of the SIMD tables equal the generic ones exactly.

use jing_tensor::DType;

/// `x` (`[m, K]`) quantized per token row for weights of one block type.
#[derive(Clone, Debug, Default)]
pub struct QuantX {
    /// Elements per activation block: 32 or 256.
    pub(crate) block: usize,
    /// Tokens.
    pub(crate) m: usize,
    /// K.
    pub(crate) k: usize,
    /// `[m, K]` codes.
    pub(crate) qs: Vec<i8>,
    /// `[m, K / block]` scales.
    pub(crate) d: Vec<f32>,
    /// `[m, K / 16]` sums of 16 consecutive codes.
    pub(crate) sums: Vec<i16>,
    /// For `Q2_K`/`Q3_K`/`Q4_K`/`Q5_K` weights (else empty): `qs` with each run of 128 codes
    /// reordered as `[0..32, 64..96, 32..64, 96..128]`, the order of the low nibbles and then
    /// the high nibbles of 64 consecutive code bytes (and the order in which the 512-bit
    /// `Q2_K`/`Q3_K` kernels unpack their 2-bit codes), so that a 512-bit kernel loads them
    /// directly.
    pub(crate) qs_k4: Vec<i8>,
    /// For `Q2_K`..`Q5_K` weights (else empty): `[m, K / 32]` sums of 32 consecutive codes (the
    /// sub-blocks those types give a min).
    pub(crate) sums32: Vec<i16>,
    /// For `Q4_0`/`Q4_1`/`Q5_0`/`Q5_1` weights (else empty): `qs` with each run of 4 blocks
    /// (`n < 4` at the end of a row) reordered as the first 16 codes of each block, then the
    /// last 16 of each: the order in which a 512-bit kernel holds the low nibbles of 4 blocks,
    /// one block per 128-bit lane, and then their high nibbles.
    pub(crate) qs_nib4: Vec<i8>,
    /// What `x` these codes are of, when the caller named it (see [`QuantX::quantize_keyed`]).
    key: Option<XKey>,
}

/// Names an activation matrix for [`QuantX::quantize_keyed`]: `(run, node, row)`, the rows from
/// `row` on of node `node`'s value in graph run `run` (`Ctx::run`).
pub(crate) type XKey = (u64, usize, usize);

/// One token row of a [`QuantX`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct XRow<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub sums: &'a [i16],
    /// `QuantX::qs_k4` of this token (empty unless the weights are `Q2_K`..`Q5_K`).
    #[cfg_attr(
        not(target_arch = "x86_64"),
        allow(dead_code, reason = "read by the x86 kernels only")
    )]
    pub qs_k4: &'a [i8],
    /// `QuantX::sums32` of this token (empty unless the weights are `Q2_K`..`Q5_K`).
    #[cfg_attr(
        not(target_arch = "x86_64"),
        allow(dead_code, reason = "read by the x86 kernels only")
    )]
    pub sums32: &'a [i16],
    /// `QuantX::qs_nib4` of this token (empty unless the weights are `Q4_0`, `Q4_1`, `Q5_0`,
    /// `Q5_1` or `IQ4_NL`).
    #[cfg_attr(
        not(target_arch = "x86_64"),
        allow(dead_code, reason = "read by the x86 kernels only")
    )]
    pub qs_nib4: &'a [i8],
}

/// Whether activations for `dtype` weights carry `QuantX::qs_k4` and `sums32`.
fn wants_k4(dtype: DType) -> bool {
    matches!(dtype, DType::Q2K | DType::Q3K | DType::Q4K | DType::Q5K)
}

/// Whether activations for `dtype` weights carry `QuantX::qs_nib4`.
fn wants_nib4(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::IQ4NL
    )
}

/// Activation block size for weights of `dtype` (a GGUF block type).
pub(crate) fn act_block(dtype: DType) -> usize {
    dtype.block_size()
}

impl QuantX {
    /// Quantize `x` (`[m, K]`, K a multiple of `dtype`'s block size) for weights of `dtype`.
    pub fn new(dtype: DType, x: &[f32], m: usize) -> QuantX {
        let mut q = QuantX::default();
        q.quantize(dtype, x, m);
        q
    }

    /// [`QuantX::quantize`], skipped when this buffer already holds the `x` that `key` names
    /// quantized for weights of `dtype` (the same activation blocks, and the `Q4_K` order if
    /// `dtype` needs it). The caller keeps keys unique: one key, one `x`.
    pub(crate) fn quantize_keyed(&mut self, key: XKey, dtype: DType, x: &[f32], m: usize) {
        let held = self.key == Some(key)
            && self.m == m
            && self.k * m == x.len()
            && self.block == act_block(dtype)
            && (!wants_k4(dtype) || !self.qs_k4.is_empty())
            && (!wants_nib4(dtype) || !self.qs_nib4.is_empty());
        if !held {
            self.quantize(dtype, x, m);
            self.key = Some(key);
        }
    }

    /// Requantize into this buffer (reusing its memory).
    pub fn quantize(&mut self, dtype: DType, x: &[f32], m: usize) {
        assert!(dtype.is_quantized(), "QuantX for {dtype} weights");
        self.key = None;
        let block = act_block(dtype);
        let k = x.len().checked_div(m).unwrap_or(0);
        assert_eq!(x.len(), m * k, "x is not [m, K]");
        assert!(
            k.is_multiple_of(block),
            "K = {k} is not a whole number of {dtype} blocks"
        );
        self.block = block;
        self.m = m;
        self.k = k;
        self.qs.clear();
        self.qs.resize(m * k, 0);
        self.d.clear();
        self.d.resize(m * k / block, 0.0);
        self.sums.clear();
        self.sums.resize(m * k / 16, 0);
        for ((xb, qb), d) in x
            .chunks_exact(block)
            .zip(self.qs.chunks_exact_mut(block))
            .zip(self.d.iter_mut())
        {
            *d = quantize_block(xb, qb);
        }
        for (s, q) in self.sums.iter_mut().zip(self.qs.chunks_exact(16)) {
            *s = q.iter().map(|&v| v as i16).sum();
        }
        self.qs_k4.clear();
        self.sums32.clear();
        if wants_k4(dtype) {
            // |Σ| of 32 codes <= 32 · 127: fits i16.
            self.sums32
                .extend(self.sums.chunks_exact(2).map(|p| p[0] + p[1]));
            self.qs_k4.reserve(m * k);
            for c in self.qs.chunks_exact(128) {
                for at in [0, 64, 32, 96] {
                    self.qs_k4.extend_from_slice(&c[at..at + 32]);
                }
            }
        }
        self.qs_nib4.clear();
        if wants_nib4(dtype) && k > 0 {
            self.qs_nib4.reserve(m * k);
            for row in self.qs.chunks_exact(k) {
                for run in row.chunks(128) {
                    for half in 0..2 {
                        for blk in run.chunks_exact(32) {
                            self.qs_nib4
                                .extend_from_slice(&blk[16 * half..16 * (half + 1)]);
                        }
                    }
                }
            }
        }
    }

    /// Token `i`.
    // Always inlined: the kernels take a row per weight row and tile, and as a call this was
    // 5% of a decode step.
    #[inline(always)]
    pub(crate) fn row(&self, i: usize) -> XRow<'_> {
        let (k, nb) = (self.k, self.k / self.block);
        XRow {
            qs: &self.qs[i * k..(i + 1) * k],
            d: &self.d[i * nb..(i + 1) * nb],
            sums: &self.sums[i * k / 16..(i + 1) * k / 16],
            qs_k4: if self.qs_k4.is_empty() {
                &[]
            } else {
                &self.qs_k4[i * k..(i + 1) * k]
            },
            sums32: if self.sums32.is_empty() {
                &[]
            } else {
                &self.sums32[i * k / 32..(i + 1) * k / 32]
            },
            qs_nib4: if self.qs_nib4.is_empty() {
                &[]
            } else {
                &self.qs_nib4[i * k..(i + 1) * k]
            },
        }
    }

    /// Tokens.
    pub fn m(&self) -> usize {
        self.m
    }

    /// K.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The value code `j` of token `i` stands for (`d · q`), for tests and error bounds.
    pub fn value(&self, i: usize, j: usize) -> f32 {
        let nb = self.k / self.block;
        self.d[i * nb + j / self.block] * self.qs[i * self.k + j] as f32
    }
}

/// Quantize one block; returns its scale.
fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    if amax == 0.0 || !amax.is_finite() {
        q.fill(0);
        return if amax == 0.0 { 0.0 } else { f32::NAN };
    }
    let id = 127.0 / amax;
    // round_ties_even(r) for |r| < 2^22 as `(r + 1.5·2^23) - 1.5·2^23`: the sum lies where the
    // f32 spacing is 1, so the default rounding (to nearest, ties to even) does it, exactly.
    // Without SSE4.1 in the baseline target `round_ties_even` is a call to `rintf` per
    // element; this form vectorizes (and gives the same codes).
    const MAGIC: f32 = 12_582_912.0;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((v * id + MAGIC) - MAGIC).clamp(-127.0, 127.0) as i8;
    }
    amax / 127.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `qs_nib4`: per token, runs of 4 blocks (2 at the end of a 6-block row) as the first
    /// halves of their blocks, then the second halves.
    #[test]
    fn nibble_order_of_32_element_blocks() {
        let (m, k) = (2, 6 * 32);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37) % 255) as f32 - 127.0)
            .collect();
        for dtype in [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1] {
            let q = QuantX::new(dtype, &x, m);
            for i in 0..m {
                let r = q.row(i);
                assert_eq!(r.qs_nib4.len(), k);
                for (run, n) in [(0, 4), (1, 2)] {
                    for j in 0..n {
                        for l in 0..32 {
                            let at = 128 * run + 16 * n * (l / 16) + 16 * j + l % 16;
                            let want = r.qs[128 * run + 32 * j + l];
                            assert_eq!(r.qs_nib4[at], want, "{dtype} token {i} run {run}");
                        }
                    }
                }
            }
        }
        for dtype in [DType::Q8_0, DType::Q4K] {
            assert!(QuantX::new(dtype, &x[..256], 1).row(0).qs_nib4.is_empty());
        }
    }

    #[test]
    fn codes_scales_and_sums() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * 0.25).collect();
        let q = QuantX::new(DType::Q8_0, &x, 2);
        assert_eq!((q.m(), q.k(), q.block), (2, 32, 32));
        // Row 1 holds 12..43 (x 0.25): amax 10.75 -> code 127.
        let r = q.row(1);
        assert_eq!(r.qs[31], 127);
        assert_eq!(r.d[0], 10.75 / 127.0);
        for i in 0..2 {
            for j in 0..32 {
                let err = (q.value(i, j) - x[i * 32 + j]).abs();
                assert!(err <= q.row(i).d[0] / 2.0 * 1.0001, "{i} {j}: {err}");
            }
            let r = q.row(i);
            assert_eq!(r.sums[0], r.qs[..16].iter().map(|&v| v as i16).sum::<i16>());
        }
        let z = QuantX::new(DType::Q4K, &[0.0; 256], 1);
        // The rounding is round_ties_even, halves included.
        let mut hx: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) + 0.5).collect();
        hx[0] = -127.0; // amax 127: id = 1, codes round_ties_even(x)
        let q = QuantX::new(DType::Q8_0, &hx, 1);
        for (j, &v) in hx.iter().enumerate() {
            assert_eq!(q.row(0).qs[j] as f32, v.round_ties_even(), "{v}");
        }
        assert_eq!((z.row(0).d[0], z.row(0).qs[5]), (0.0, 0));
    }
}
