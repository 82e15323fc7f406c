//! Converting rows: a [`RowSource`] yields any rows of a tensor as f32 (dequantized, FP8 block
//! scales applied, reordered as the output layout needs), and [`convert_rows`] encodes them in
//! the target type on several threads. Rows that are already stored in the target type are
//! copied as they are (requantizing would change them).

use std::ops::Range;

use jing_tensor::{quant, DType, Weight};

/// The rows of one output tensor (all outer dimensions flattened: row `r` of a stacked
/// `[experts, rows, cols]` tensor is row `r % rows` of expert `r / rows`).
pub(crate) trait RowSource: Sync {
    /// Elements per row.
    fn cols(&self) -> usize;
    /// Number of rows.
    fn rows(&self) -> usize;
    /// Rows `rows` as f32 into `out` (`rows.len() · cols` values).
    fn fill_f32(&self, rows: Range<usize>, out: &mut [f32]);
    /// Row `r` as stored, with its type, when it can be copied as is (no block scale, no
    /// transpose).
    fn raw_row(&self, _r: usize) -> Option<(DType, &[u8])> {
        None
    }
}

/// A stored weight, its rows optionally reordered or selected (`order[r]` is the source row
/// of output row `r`).
pub(crate) struct WeightRows {
    pub weight: Weight,
    pub order: Option<Vec<usize>>,
}

impl WeightRows {
    fn source_row(&self, r: usize) -> usize {
        self.order.as_ref().map_or(r, |o| o[r])
    }
}

impl RowSource for WeightRows {
    fn cols(&self) -> usize {
        self.weight.cols()
    }
    fn rows(&self) -> usize {
        self.order.as_ref().map_or(self.weight.rows(), Vec::len)
    }
    fn fill_f32(&self, rows: Range<usize>, out: &mut [f32]) {
        let cols = self.cols();
        for (r, o) in rows.zip(out.chunks_exact_mut(cols)) {
            self.weight.row_to_f32(self.source_row(r), o);
        }
    }
    fn raw_row(&self, r: usize) -> Option<(DType, &[u8])> {
        if self.weight.scale.is_some() {
            return None;
        }
        Some((self.weight.dtype, self.weight.row_data(self.source_row(r))))
    }
}

/// Several 2-D weights of one shape stacked along a new outer dimension (routed experts).
pub(crate) struct StackedRows {
    pub parts: Vec<Weight>,
}

impl StackedRows {
    fn locate(&self, r: usize) -> (&Weight, usize) {
        let per = self.parts[0].rows();
        (&self.parts[r / per], r % per)
    }
}

impl RowSource for StackedRows {
    fn cols(&self) -> usize {
        self.parts[0].cols()
    }
    fn rows(&self) -> usize {
        self.parts.iter().map(Weight::rows).sum()
    }
    fn fill_f32(&self, rows: Range<usize>, out: &mut [f32]) {
        let cols = self.cols();
        for (r, o) in rows.zip(out.chunks_exact_mut(cols)) {
            let (w, row) = self.locate(r);
            w.row_to_f32(row, o);
        }
    }
    fn raw_row(&self, r: usize) -> Option<(DType, &[u8])> {
        let (w, row) = self.locate(r);
        if w.scale.is_some() {
            return None;
        }
        Some((w.dtype, w.row_data(row)))
    }
}

/// MLA's `attn_k_b` `[heads, kv_lora, nope]` from `kv_b_proj` `[heads·(nope+v), kv_lora]`:
/// per head, W_UK (its first `nope` rows) transposed.
pub(crate) struct KbRows {
    pub kv_b: Weight,
    pub nope: usize,
    pub v_head: usize,
}

impl RowSource for KbRows {
    fn cols(&self) -> usize {
        self.nope
    }
    fn rows(&self) -> usize {
        let heads = self.kv_b.rows() / (self.nope + self.v_head);
        heads * self.kv_b.cols()
    }
    fn fill_f32(&self, rows: Range<usize>, out: &mut [f32]) {
        let kv_lora = self.kv_b.cols();
        let (nope, stride) = (self.nope, self.nope + self.v_head);
        // Output row (h, c) needs column c of W_UK[h]: dequantize each head touched once.
        let mut w_uk = vec![0f32; nope * kv_lora]; //              [nope, kv_lora]
        let mut head_loaded = usize::MAX;
        for (r, o) in rows.zip(out.chunks_exact_mut(nope)) {
            let (head, c) = (r / kv_lora, r % kv_lora);
            if head != head_loaded {
                for (i, row) in w_uk.chunks_exact_mut(kv_lora).enumerate() {
                    self.kv_b.row_to_f32(head * stride + i, row);
                }
                head_loaded = head;
            }
            for (i, v) in o.iter_mut().enumerate() {
                *v = w_uk[i * kv_lora + c];
            }
        }
    }
}

/// The `kv_b_proj` rows that make `attn_v_b` `[heads, v, kv_lora]`: per head, the `v_head`
/// rows after W_UK's `nope`.
pub(crate) fn v_b_rows(kv_b_rows: usize, nope: usize, v_head: usize) -> Vec<usize> {
    let stride = nope + v_head;
    let heads = kv_b_rows / stride;
    (0..heads * v_head)
        .map(|r| (r / v_head) * stride + nope + r % v_head)
        .collect()
}

/// Values computed in memory (llama3's `rope_freqs`).
pub(crate) struct ValueRows {
    pub values: Vec<f32>,
    pub cols: usize,
}

impl RowSource for ValueRows {
    fn cols(&self) -> usize {
        self.cols
    }
    fn rows(&self) -> usize {
        self.values.len() / self.cols.max(1)
    }
    fn fill_f32(&self, rows: Range<usize>, out: &mut [f32]) {
        out.copy_from_slice(&self.values[rows.start * self.cols..rows.end * self.cols]);
    }
}

/// f32 to bf16 the way ggml rounds (`ggml_compute_fp32_to_bf16`: nearest even, NaN kept quiet).
fn bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// Encode one row of f32 values as `dtype` into `out` (`dtype.row_bytes(x.len())` bytes): the
/// float types as ggml converts them, block types with jing's reference quantizers (the bytes
/// of llama.cpp's `quantize_row_*_ref`).
pub fn encode_row(dtype: DType, x: &[f32], out: &mut [u8]) {
    match dtype {
        DType::F32 => {
            for (o, v) in out.chunks_exact_mut(4).zip(x) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::F16 => {
            for (o, v) in out.chunks_exact_mut(2).zip(x) {
                o.copy_from_slice(&half::f16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        DType::BF16 => {
            for (o, v) in out.chunks_exact_mut(2).zip(x) {
                o.copy_from_slice(&bf16_bits(*v).to_le_bytes());
            }
        }
        q => quant::quantize_row(q, x, out),
    }
}

/// Below this many elements a batch of rows is converted on the calling thread (starting
/// threads would cost more than the work).
const MIN_PARALLEL_ELEMS: usize = 1 << 16;

/// Convert rows `rows` of `src` to `dtype` into `out` (`rows.len() · dtype.row_bytes(cols)`
/// bytes) on up to `threads` threads, each taking a contiguous share of the rows.
pub(crate) fn convert_rows(
    src: &dyn RowSource,
    rows: Range<usize>,
    dtype: DType,
    threads: usize,
    out: &mut [u8],
) {
    let cols = src.cols();
    let row_bytes = dtype.row_bytes(cols);
    debug_assert_eq!(out.len(), rows.len() * row_bytes);
    if rows.is_empty() {
        return;
    }
    if src.raw_row(rows.start).is_some_and(|(t, _)| t == dtype) {
        for (r, o) in rows.zip(out.chunks_exact_mut(row_bytes)) {
            let (_, raw) = src.raw_row(r).expect("every row of a source is alike");
            o.copy_from_slice(raw);
        }
        return;
    }
    let convert = |rows: Range<usize>, out: &mut [u8]| {
        let mut x = vec![0f32; rows.len() * cols]; //                [rows, cols]
        src.fill_f32(rows, &mut x);
        for (xr, o) in x.chunks_exact(cols).zip(out.chunks_exact_mut(row_bytes)) {
            encode_row(dtype, xr, o);
        }
    };
    let threads = threads.clamp(1, rows.len());
    if threads == 1 || rows.len() * cols < MIN_PARALLEL_ELEMS {
        convert(rows, out);
        return;
    }
    let per = rows.len().div_ceil(threads);
    std::thread::scope(|s| {
        let convert = &convert;
        for (i, chunk) in out.chunks_mut(per * row_bytes).enumerate() {
            let start = rows.start + i * per;
            let end = start + chunk.len() / row_bytes;
            s.spawn(move || convert(start..end, chunk));
        }
    });
}

/// Rows converted at once by [`convert_all`]: bounds the f32 copy held (64 MiB).
pub(crate) const SLAB_ELEMS: usize = 1 << 24;

/// Every row of `src` converted to `dtype`, in slabs of rows so that the f32 copy held at once
/// stays small for any tensor size.
pub(crate) fn convert_all(src: &dyn RowSource, dtype: DType, threads: usize) -> Vec<u8> {
    let (rows, cols) = (src.rows(), src.cols());
    let row_bytes = dtype.row_bytes(cols);
    let mut data = vec![0u8; rows * row_bytes];
    let slab_rows = (SLAB_ELEMS / cols.max(1)).max(1);
    for (i, out) in data.chunks_mut(slab_rows * row_bytes).enumerate() {
        let start = i * slab_rows;
        let end = start + out.len() / row_bytes;
        convert_rows(src, start..end, dtype, threads, out);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use jing_tensor::Bytes;

    fn weight(rows: usize, cols: usize) -> (Weight, Vec<f32>) {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        (Weight::from_f32("w", vec![rows, cols], &v), v)
    }

    #[test]
    fn parallel_conversion_equals_row_by_row_quantization() {
        let (w, v) = weight(64, 1024);
        let src = WeightRows {
            weight: w,
            order: None,
        };
        for dtype in [DType::Q8_0, DType::Q4K, DType::Q6K, DType::F16, DType::BF16] {
            let rb = dtype.row_bytes(1024);
            let mut par = vec![0u8; 64 * rb];
            convert_rows(&src, 0..64, dtype, 3, &mut par);
            let mut one = vec![0u8; 64 * rb];
            for (x, o) in v.chunks(1024).zip(one.chunks_mut(rb)) {
                encode_row(dtype, x, o);
            }
            assert_eq!(par, one, "{dtype}");
        }
        let expected = quant::quantize(DType::Q4K, &v, 1024);
        let mut out = vec![0u8; expected.len()];
        convert_rows(&src, 0..64, DType::Q4K, 2, &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn same_type_rows_are_copied_and_reordered() {
        let (w, v) = weight(4, 32);
        let q = quant::quantize(DType::Q4_0, &v, 32);
        let stored =
            Weight::new("q", DType::Q4_0, vec![4, 32], Bytes::from_vec(q.clone())).unwrap();
        let src = WeightRows {
            weight: stored,
            order: Some(vec![3, 2, 1, 0]),
        };
        let mut out = vec![0u8; q.len()];
        convert_rows(&src, 0..4, DType::Q4_0, 1, &mut out);
        let reversed: Vec<u8> = q.chunks(18).rev().flatten().copied().collect();
        assert_eq!(out, reversed);
        drop(w);
    }

    #[test]
    fn k_b_is_w_uk_transposed_per_head() {
        // 2 heads, nope 3, v 1, kv_lora 2: kv_b rows [h0 k0, k1, k2, v0, h1 k0, k1, k2, v0].
        let v: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let src = KbRows {
            kv_b: Weight::from_f32("kv_b", vec![8, 2], &v),
            nope: 3,
            v_head: 1,
        };
        assert_eq!((src.rows(), src.cols()), (4, 3));
        let mut out = vec![0f32; 12];
        src.fill_f32(0..4, &mut out);
        // Row (h, c) = column c of W_UK[h] = kv_b[h·4 + i][c] for i < 3.
        assert_eq!(
            out,
            vec![0., 2., 4., 1., 3., 5., 8., 10., 12., 9., 11., 13.]
        );
    }

    #[test]
    fn bf16_rounds_like_ggml() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // Halfway cases round to even.
        assert_eq!(bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(bf16_bits(f32::NAN) & 0x7fc0, 0x7fc0);
    }
}
