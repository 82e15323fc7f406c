use crate::panels;
use crate::quant::{q4_k_rows16, q5_0_rows16, q6_k_rows16, q8_0_rows16};
use crate::{decode_to_f32, Bytes, DType};
use std::borrow::Cow;
use std::ops::Range;

#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error(
        "tensor `{name}`: {dtype} data of shape {shape:?} needs {expected} bytes, found {found}"
    )]
    SizeMismatch {
        name: String,
        dtype: DType,
        shape: Vec<usize>,
        expected: usize,
        found: usize,
    },
    #[error("{0}")]
    ScaleShape(Box<ScaleShapeError>),
    #[error("tensor `{name}`: {what}")]
    Invalid { name: String, what: String },
}

/// A block-scale tensor whose grid does not fit its weight.
#[derive(Debug, thiserror::Error)]
#[error("tensor `{name}`: block scale `{scale_name}` has shape {found:?}, expected {expected:?} for {block:?} blocks over {shape:?}")]
pub struct ScaleShapeError {
    pub name: String,
    pub scale_name: String,
    pub shape: Vec<usize>,
    pub block: [usize; 2],
    pub expected: [usize; 2],
    pub found: Vec<usize>,
}

/// Per-block multipliers of a block-quantized 2-D weight: DeepSeek's FP8 checkpoints store
/// `X.weight_scale_inv`, one f32 per 128x128 block of `X.weight` (edge blocks may be partial);
/// the real value is `f32(code) * scale[row / 128][col / 128]`.
#[derive(Clone, Debug)]
pub struct BlockScale {
    /// Block size over (rows, cols).
    pub block: [usize; 2],
    /// Number of block columns (`ceil(cols / block[1])` of the original tensor).
    pub block_cols: usize,
    /// f32 little-endian values, `[block_rows, block_cols]` row-major.
    pub data: Bytes,
    /// First row of this view inside the original tensor (a row slice keeps the block grid).
    pub row_offset: usize,
}

impl BlockScale {
    /// Scale of original-tensor block (row `r` of this view, column block `cb`).
    #[inline(always)]
    pub fn get(&self, r: usize, cb: usize) -> f32 {
        let br = (r + self.row_offset) / self.block[0];
        let i = (br * self.block_cols + cb) * 4;
        let b = self.data.as_slice();
        f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }
}

/// How the rows of a weight lie in its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RowLayout {
    /// Row after row, as every checkpoint stores them.
    #[default]
    Rows,
    /// `Q4_K` rows interleaved by 16 for the CPU kernels ([`crate::quant::q4_k_rows16`]):
    /// the same bytes, rearranged within each group of 16 rows.
    Q4KRows16,
    /// `Q6_K` rows interleaved by 16 ([`crate::quant::q6_k_rows16`]).
    Q6KRows16,
    /// `Q8_0` rows interleaved by 16 ([`crate::quant::q8_0_rows16`]).
    Q8_0Rows16,
    /// `Q5_0` rows interleaved by 16 ([`crate::quant::q5_0_rows16`]).
    Q5_0Rows16,
    /// Float rows (f32, f16, bf16, FP8) in groups of 64, column panel by column panel
    /// ([`crate::panels`]).
    Panels,
    /// Float rows (f32, f16, bf16) in panels whose runs of 4 rows also have their 64-byte
    /// lines interleaved ([`crate::panels`], "Lines").
    PanelLines,
}

/// Rows per group of the interleaved layouts of GGUF block types.
pub const INTERLEAVED_ROWS: usize = 16;

impl RowLayout {
    /// The interleaved layout of `dtype`, if there is one.
    pub fn interleaved(dtype: DType) -> Option<RowLayout> {
        match dtype {
            DType::Q4K => Some(RowLayout::Q4KRows16),
            DType::Q6K => Some(RowLayout::Q6KRows16),
            DType::Q8_0 => Some(RowLayout::Q8_0Rows16),
            DType::Q5_0 => Some(RowLayout::Q5_0Rows16),
            _ => None,
        }
    }

    /// Rows per group: [`INTERLEAVED_ROWS`], [`panels::ROWS`], or 1 for [`RowLayout::Rows`].
    pub fn group(self) -> usize {
        match self {
            RowLayout::Rows => 1,
            RowLayout::Panels | RowLayout::PanelLines => panels::ROWS,
            _ => INTERLEAVED_ROWS,
        }
    }

    /// The stored rows of one interleaved `group` ([`RowLayout::group`] of them, elements of
    /// `dtype`) into `rows` (the same length). Panics for [`RowLayout::Rows`].
    pub fn unpack_group(self, dtype: DType, group: &[u8], rows: &mut [u8]) {
        match self {
            RowLayout::Q4KRows16 => q4_k_rows16::unpack_group(group, rows),
            RowLayout::Q6KRows16 => q6_k_rows16::unpack_group(group, rows),
            RowLayout::Q8_0Rows16 => q8_0_rows16::unpack_group(group, rows),
            RowLayout::Q5_0Rows16 => q5_0_rows16::unpack_group(group, rows),
            RowLayout::Panels => panels::unpack_group(dtype.size(), false, group, rows),
            RowLayout::PanelLines => panels::unpack_group(dtype.size(), true, group, rows),
            RowLayout::Rows => panic!("unpack_group of rows that are not interleaved"),
        }
    }

    fn pack_group(self, dtype: DType, rows: &[u8], group: &mut [u8]) {
        match self {
            RowLayout::Q4KRows16 => q4_k_rows16::pack_group(rows, group),
            RowLayout::Q6KRows16 => q6_k_rows16::pack_group(rows, group),
            RowLayout::Q8_0Rows16 => q8_0_rows16::pack_group(rows, group),
            RowLayout::Q5_0Rows16 => q5_0_rows16::pack_group(rows, group),
            RowLayout::Panels => panels::pack_group(dtype.size(), false, rows, group),
            RowLayout::PanelLines => panels::pack_group(dtype.size(), true, rows, group),
            RowLayout::Rows => group.copy_from_slice(rows),
        }
    }
}

/// A stored tensor as the checkpoint has it: element type, shape, the bytes (usually inside a
/// memory map) and, for block-quantized formats, the block scales. A linear layer's weight is
/// `[out, in]` (rows are output features), the layout of both HF safetensors and `x · Wᵀ`.
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Bytes,
    pub scale: Option<BlockScale>,
    /// How the rows lie in `data` (rearranged only by [`Weight::interleave_rows16`] and
    /// [`Weight::in_panels`]).
    pub layout: RowLayout,
}

impl Weight {
    /// Wrap stored bytes, checking that their length matches dtype and shape.
    pub fn new(
        name: impl Into<String>,
        dtype: DType,
        shape: Vec<usize>,
        data: Bytes,
    ) -> Result<Weight, WeightError> {
        let name = name.into();
        let cols = shape.last().copied().unwrap_or(1);
        if dtype.is_quantized() && cols % dtype.block_size() != 0 {
            return Err(WeightError::Invalid {
                name,
                what: format!(
                    "{dtype} rows are whole {}-element blocks, but shape {shape:?} has rows of \
                     {cols} elements",
                    dtype.block_size()
                ),
            });
        }
        let expected = dtype
            .bytes_for_shape(&shape)
            .ok_or_else(|| WeightError::Invalid {
                name: name.clone(),
                what: format!("shape {shape:?} is too large"),
            })?;
        if data.len() != expected {
            return Err(WeightError::SizeMismatch {
                name,
                dtype,
                shape,
                expected,
                found: data.len(),
            });
        }
        Ok(Weight {
            name,
            dtype,
            shape,
            data,
            scale: None,
            layout: RowLayout::Rows,
        })
    }

    /// An f32 tensor owning `values` (tests, small derived tensors).
    pub fn from_f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Weight {
        Weight::new(name, DType::F32, shape, Bytes::from_f32(values)).expect("length matches shape")
    }

    /// Attach 2-D block scales (`scale_shape` as stored), checking the block grid.
    pub fn with_block_scale(
        mut self,
        scale_name: &str,
        scale_shape: &[usize],
        scale_data: Bytes,
        block: [usize; 2],
    ) -> Result<Weight, WeightError> {
        if self.shape.len() != 2 {
            return Err(WeightError::Invalid {
                name: self.name,
                what: format!("block scales need a 2-D tensor, shape is {:?}", self.shape),
            });
        }
        let expected = [
            self.shape[0].div_ceil(block[0]),
            self.shape[1].div_ceil(block[1]),
        ];
        if scale_shape != expected || scale_data.len() != expected[0] * expected[1] * 4 {
            return Err(WeightError::ScaleShape(Box::new(ScaleShapeError {
                name: self.name,
                scale_name: scale_name.to_string(),
                shape: self.shape,
                block,
                expected,
                found: scale_shape.to_vec(),
            })));
        }
        self.scale = Some(BlockScale {
            block,
            block_cols: expected[1],
            data: scale_data,
            row_offset: 0,
        });
        Ok(self)
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Rows of a 2-D weight (output features); 1 for a vector.
    pub fn rows(&self) -> usize {
        match self.shape.len() {
            0 | 1 => 1,
            _ => self.shape[..self.shape.len() - 1].iter().product(),
        }
    }

    /// Columns (the innermost, contiguous dimension: input features).
    pub fn cols(&self) -> usize {
        *self.shape.last().unwrap_or(&1)
    }

    /// Bytes of the stored data, scales included.
    pub fn stored_bytes(&self) -> usize {
        self.data.len() + self.scale.as_ref().map_or(0, |s| s.data.len())
    }

    /// Bytes of one stored row (`cols` elements; whole blocks for block types).
    pub fn row_bytes(&self) -> usize {
        self.dtype.row_bytes(self.cols())
    }

    /// The stored bytes of row `r`. Panics for interleaved rows, which are not contiguous
    /// (see [`Weight::row`]).
    pub fn row_data(&self, r: usize) -> &[u8] {
        assert_eq!(
            self.layout,
            RowLayout::Rows,
            "{}: row {r} of interleaved rows has no contiguous bytes",
            self.name
        );
        let n = self.row_bytes();
        &self.data.as_slice()[r * n..(r + 1) * n]
    }

    /// The bytes of row `r` as a checkpoint stores it, whatever the layout (interleaved rows
    /// are taken apart, a copy).
    pub fn row(&self, r: usize) -> Cow<'_, [u8]> {
        match self.layout {
            RowLayout::Rows => Cow::Borrowed(self.row_data(r)),
            RowLayout::Panels | RowLayout::PanelLines => {
                let mut row = vec![0; self.row_bytes()];
                self.panels_row(r, &mut row);
                Cow::Owned(row)
            }
            layout => {
                let mut rows = Vec::new();
                self.group_rows(r / layout.group(), &mut rows);
                let (n, at) = (self.row_bytes(), (r % layout.group()) * self.row_bytes());
                Cow::Owned(rows[at..at + n].to_vec())
            }
        }
    }

    /// Rows `16g..16g + 16` of interleaved rows (`64g..64g + 64` in
    /// [`RowLayout::Panels`], [`RowLayout::PanelLines`]) as a checkpoint stores them, back to
    /// back in `rows` (resized).
    /// Panics for [`RowLayout::Rows`].
    pub fn group_rows(&self, g: usize, rows: &mut Vec<u8>) {
        let span = self.layout.group() * self.row_bytes();
        rows.resize(span, 0);
        self.layout.unpack_group(
            self.dtype,
            &self.data.as_slice()[g * span..(g + 1) * span],
            rows,
        );
    }

    /// Row `r` of rows in [`RowLayout::Panels`] or [`RowLayout::PanelLines`] into `row` (a
    /// row's bytes), gathered from its panels (the group's other rows are not taken apart).
    fn panels_row(&self, r: usize, row: &mut [u8]) {
        let span = panels::ROWS * self.row_bytes();
        let group = &self.data.as_slice()[r / panels::ROWS * span..][..span];
        let lines = self.layout == RowLayout::PanelLines;
        panels::gather_row(self.dtype.size(), lines, group, r % panels::ROWS, row);
    }

    /// This `Q4_K`, `Q6_K`, `Q8_0` or `Q5_0` weight with its rows interleaved by 16
    /// ([`RowLayout::interleaved`]), in memory of its own (a piece of
    /// [`crate::huge_pages::HugeArena::global`], in 2 MiB pages where the system has them);
    /// `None` for any other weight (another dtype, a row count that is not a multiple of 16,
    /// block scales, already interleaved).
    pub fn interleave_rows16(&self) -> Option<Weight> {
        let layout = RowLayout::interleaved(self.dtype)?;
        let fits = self.shape.len() == 2
            && self.rows() > 0
            && self.cols() > 0
            && self.rows().is_multiple_of(INTERLEAVED_ROWS)
            && self.scale.is_none()
            && self.layout == RowLayout::Rows;
        if !fits {
            return None;
        }
        Some(self.rearranged(layout))
    }

    /// This f32, f16, bf16 or FP8 weight in groups of 64 rows, column panel by column panel
    /// ([`RowLayout::Panels`]), in memory of its own as [`Weight::interleave_rows16`] puts it;
    /// block scales stay as they are (they go by row and column, not by byte). `None` for any
    /// other weight: another dtype, a row count that is not a multiple of 64, rows of one panel
    /// or less (they would stay as they are), scale blocks that do not tile a panel, already
    /// rearranged.
    pub fn in_panels(&self) -> Option<Weight> {
        let float = matches!(
            self.dtype,
            DType::F32 | DType::F16 | DType::BF16 | DType::F8E4M3
        );
        let scale_fits = self
            .scale
            .as_ref()
            .is_none_or(|s| s.block[1] > 0 && panels::PANEL_COLS.is_multiple_of(s.block[1]));
        let fits = float
            && self.shape.len() == 2
            && self.rows() > 0
            && self.rows().is_multiple_of(panels::ROWS)
            && self.cols() > panels::PANEL_COLS
            && scale_fits
            && self.layout == RowLayout::Rows;
        fits.then(|| self.rearranged(RowLayout::Panels))
    }

    /// This f32, f16 or bf16 weight in groups of 64 rows, in panels of lines
    /// ([`RowLayout::PanelLines`]: rows of one panel or less too), in memory of its own as
    /// [`Weight::interleave_rows16`] puts it. `None` for any other weight: another dtype, block
    /// scales, a row count that is not a multiple of 64, rows that are not whole 64-byte
    /// lines, already rearranged.
    pub fn in_panel_lines(&self) -> Option<Weight> {
        let fits = matches!(self.dtype, DType::F32 | DType::F16 | DType::BF16)
            && self.scale.is_none()
            && self.rows_fit_lines();
        fits.then(|| self.rearranged(RowLayout::PanelLines))
    }

    /// This FP8 weight in panels of lines, as [`Weight::in_panel_lines`] puts float weights:
    /// for a kernel that reads FP8 rows so (a 64-code step is one line). `None` unless its
    /// scale blocks are whole lines and, for rows longer than a panel, whole panels are whole
    /// blocks (so that no step or panel cuts a block), with the conditions of
    /// [`Weight::in_panel_lines`] on the rest.
    pub fn fp8_in_panel_lines(&self) -> Option<Weight> {
        let scale_fits = self.scale.as_ref().is_none_or(|s| {
            let w = s.block[1];
            w > 0
                && w.is_multiple_of(panels::LINE)
                && (self.cols() <= panels::PANEL_COLS || panels::PANEL_COLS.is_multiple_of(w))
        });
        let fits = self.dtype == DType::F8E4M3 && scale_fits && self.rows_fit_lines();
        fits.then(|| self.rearranged(RowLayout::PanelLines))
    }

    /// Whether the rows, whatever their dtype, can go in panels of lines: a 2-D weight as
    /// stored, whole groups of 64 rows, rows of whole 64-byte lines.
    fn rows_fit_lines(&self) -> bool {
        self.shape.len() == 2
            && self.rows() > 0
            && self.rows().is_multiple_of(panels::ROWS)
            && self.cols() > 0
            && self.row_bytes().is_multiple_of(panels::LINE)
            && self.layout == RowLayout::Rows
    }

    /// The rows of `runs` (in that order, rows as stored) as a weight `name` of their own, in
    /// memory of its own as [`Weight::interleave_rows16`] puts it: MLA's W_UK and W_UV, which
    /// HF's `kv_b_proj` keeps head by head in turns, each in one piece. Block scales go along
    /// when every run starts and ends on a block row (the last run may end with the weight);
    /// `None` where one does not, for a weight not 2-D or not as stored, and for runs outside
    /// the weight.
    pub fn gather_rows(&self, runs: &[Range<usize>], name: impl Into<String>) -> Option<Weight> {
        let rows = self.rows();
        let as_stored = self.shape.len() == 2 && self.layout == RowLayout::Rows;
        if !as_stored || runs.iter().any(|r| r.start > r.end || r.end > rows) {
            return None;
        }
        let scale = match &self.scale {
            None => None,
            Some(s) => {
                let b = s.block[0];
                let on_block = |row: usize| (row + s.row_offset).is_multiple_of(b);
                // Only the last run may end inside a block row, and only with the weight.
                let ends_well = |(i, r): (usize, &Range<usize>)| {
                    on_block(r.end) || (i + 1 == runs.len() && r.end == rows)
                };
                let whole = runs.iter().all(|r| on_block(r.start))
                    && runs.iter().enumerate().all(ends_well);
                if b == 0 || !whole {
                    return None;
                }
                let run_bytes = s.block_cols * 4;
                let src = s.data.as_slice();
                let mut data = Vec::new();
                for r in runs {
                    let first = (r.start + s.row_offset) / b;
                    let last = (r.end + s.row_offset).div_ceil(b);
                    data.extend_from_slice(&src[first * run_bytes..last * run_bytes]);
                }
                Some(BlockScale {
                    data: Bytes::from_vec(data),
                    row_offset: 0,
                    ..s.clone()
                })
            }
        };
        let row_bytes = self.row_bytes();
        let count: usize = runs.iter().map(|r| r.len()).sum();
        let src = self.data.as_slice();
        let data = own_memory(count * row_bytes, |out| {
            let mut at = 0;
            for r in runs {
                let bytes = &src[r.start * row_bytes..r.end * row_bytes];
                out[at..at + bytes.len()].copy_from_slice(bytes);
                at += bytes.len();
            }
        });
        Some(Weight {
            name: name.into(),
            dtype: self.dtype,
            shape: vec![count, self.cols()],
            data,
            scale,
            layout: RowLayout::Rows,
        })
    }

    /// This weight (rows as stored) with its rows rearranged into `layout`, in memory of its
    /// own.
    fn rearranged(&self, layout: RowLayout) -> Weight {
        let data = own_memory(self.data.len(), |out| self.pack_rows(layout, out));
        Weight {
            name: self.name.clone(),
            dtype: self.dtype,
            shape: self.shape.clone(),
            data,
            scale: self.scale.clone(),
            layout,
        }
    }

    /// This weight as it is, its bytes copied into memory of its own in 2 MiB pages (a piece of
    /// [`crate::huge_pages::HugeArena::global`]), for kernels that stream it: a file's page
    /// cache is mostly in 4 KiB pages, whose page walks cost a thread streaming weights a tenth
    /// of its rate and more (see `HugeArena`). `None` where no memory can be mapped for it.
    pub fn in_huge_pages(&self) -> Option<Weight> {
        let mut piece = crate::huge_pages::HugeArena::global()
            .alloc(self.data.len())
            .ok()?;
        piece.as_mut_slice().copy_from_slice(self.data.as_slice());
        Some(Weight {
            data: piece.freeze(),
            ..self.clone()
        })
    }

    /// This weight's rows, interleaved in `layout`, into `out` (as long as the weight).
    fn pack_rows(&self, layout: RowLayout, out: &mut [u8]) {
        let span = layout.group() * self.row_bytes();
        // On every core: a big model has hundreds of GB of these, read from its file here.
        let groups = self.data.len() / span;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = groups.div_ceil(threads).max(1) * span;
        std::thread::scope(|s| {
            for (src, dst) in self
                .data
                .as_slice()
                .chunks(per_thread)
                .zip(out.chunks_mut(per_thread))
            {
                s.spawn(move || {
                    for (rows, group) in src.chunks_exact(span).zip(dst.chunks_exact_mut(span)) {
                        layout.pack_group(self.dtype, rows, group);
                    }
                });
            }
        });
    }

    /// Rows `start..end` as a zero-copy view with shape `[end - start, cols]` (for interleaved
    /// rows, `start` and `end` must be multiples of the group, [`RowLayout::group`]).
    pub fn slice_rows(&self, start: usize, end: usize) -> Weight {
        assert!(start <= end && end <= self.rows(), "row slice out of range");
        let g = self.layout.group();
        assert!(
            start.is_multiple_of(g) && end.is_multiple_of(g),
            "{}: rows {start}..{end} cut a group of {g} interleaved rows",
            self.name
        );
        let row_bytes = self.row_bytes();
        let mut scale = self.scale.clone();
        if let Some(s) = scale.as_mut() {
            s.row_offset += start;
        }
        Weight {
            name: format!("{}[{start}..{end}]", self.name),
            dtype: self.dtype,
            shape: vec![end - start, self.cols()],
            data: self.data.slice(start * row_bytes..end * row_bytes),
            scale,
            layout: self.layout,
        }
    }

    /// Dequantize row `r` into `out` (`out.len() == cols`). The plain path every kernel is
    /// checked against, and an embedding lookup's (interleaved rows are taken apart in
    /// a buffer of this thread's, which a decode step then does not allocate).
    pub fn row_to_f32(&self, r: usize, out: &mut [f32]) {
        let cols = self.cols();
        assert_eq!(out.len(), cols);
        match self.layout {
            RowLayout::Rows => decode_to_f32(self.dtype, self.row_data(r), out),
            _ => {
                thread_local! {
                    static GROUP: std::cell::RefCell<Vec<u8>> =
                        const { std::cell::RefCell::new(Vec::new()) };
                }
                GROUP.with_borrow_mut(|rows| {
                    if matches!(self.layout, RowLayout::Panels | RowLayout::PanelLines) {
                        rows.resize(self.row_bytes(), 0);
                        self.panels_row(r, rows);
                        return decode_to_f32(self.dtype, rows, out);
                    }
                    let g = self.layout.group();
                    self.group_rows(r / g, rows);
                    let (n, at) = (self.row_bytes(), (r % g) * self.row_bytes());
                    decode_to_f32(self.dtype, &rows[at..at + n], out)
                })
            }
        }
        if let Some(s) = &self.scale {
            for (cb, chunk) in out.chunks_mut(s.block[1]).enumerate() {
                let m = s.get(r, cb);
                chunk.iter_mut().for_each(|v| *v *= m);
            }
        }
    }

    /// The whole tensor as f32 (for small tensors: norms, biases, tests).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let cols = self.cols();
        let mut out = vec![0.0; self.numel()];
        if cols == 0 {
            return out;
        }
        for (r, row) in out.chunks_mut(cols).enumerate() {
            self.row_to_f32(r, row);
        }
        out
    }
}

/// `len` bytes that `fill` writes, in the process's arena of huge pages (a weight of a few
/// MiB in memory of its own would sit in 4 KiB pages, see `HugeArena`), or, where no memory
/// can be mapped for it, on the heap.
fn own_memory(len: usize, fill: impl FnOnce(&mut [u8])) -> Bytes {
    match crate::huge_pages::HugeArena::global().alloc(len) {
        Ok(mut piece) => {
            fill(piece.as_mut_slice());
            piece.freeze()
        }
        Err(_) => {
            let mut out = vec![0u8; len];
            fill(&mut out);
            Bytes::from_vec(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp8_block_scale_with_partial_edges_and_row_slices() {
        // 3 x 5 weight, blocks of 2 x 2 -> scale grid 2 x 3 (partial edge blocks both ways).
        let codes: Vec<u8> = vec![0x38; 15]; // all 1.0
        let scales: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = Weight::new("w", DType::F8E4M3, vec![3, 5], Bytes::from_vec(codes))
            .unwrap()
            .with_block_scale("s", &[2, 3], Bytes::from_f32(&scales), [2, 2])
            .unwrap();
        let v = w.to_f32_vec();
        assert_eq!(
            v,
            vec![1., 1., 2., 2., 3., 1., 1., 2., 2., 3., 4., 4., 5., 5., 6.]
        );
        let tail = w.slice_rows(1, 3);
        assert_eq!(tail.to_f32_vec(), v[5..].to_vec());
        // Copied into huge pages: the same weight, scales and all, in bytes of its own.
        let moved = w.in_huge_pages().expect("memory for 15 bytes");
        assert_eq!(moved.to_f32_vec(), v);
        assert_eq!(
            (moved.dtype, &moved.shape, moved.layout),
            (w.dtype, &w.shape, w.layout)
        );
        assert!(!moved.data.same_owner(&w.data));
    }

    /// Gathered rows read what they read in place, scales included; runs that cut a block row
    /// of the scales (but the last, at the weight's end) are refused.
    #[test]
    #[allow(
        clippy::single_range_in_vec_init,
        reason = "a list of one run of rows, as gather_rows takes"
    )]
    fn gathered_rows_keep_their_values_and_scales() {
        // 7 x 3 FP8, blocks of 2 x 2: scale grid 4 x 2, every row a code of its own.
        let codes: Vec<u8> = (0..21u8).map(|i| 0x30 + i).collect();
        let scales: Vec<f32> = (1..=8).map(|s| s as f32).collect();
        let w = Weight::new("w", DType::F8E4M3, vec![7, 3], Bytes::from_vec(codes))
            .unwrap()
            .with_block_scale("s", &[4, 2], Bytes::from_f32(&scales), [2, 2])
            .unwrap();
        let rows_of = |w: &Weight, rows: &[usize]| -> Vec<f32> {
            let mut out = vec![0.0; 3];
            rows.iter()
                .flat_map(|&r| {
                    w.row_to_f32(r, &mut out);
                    out.clone()
                })
                .collect()
        };
        let g = w.gather_rows(&[4..6, 0..2, 6..7], "g").unwrap();
        assert_eq!((g.name.as_str(), &g.shape), ("g", &vec![5, 3]));
        assert_eq!(g.to_f32_vec(), rows_of(&w, &[4, 5, 0, 1, 6]));
        assert!(!g.data.same_owner(&w.data));
        // From a view that starts on a block row, and one that does not.
        let v = w.slice_rows(2, 7);
        let g = v.gather_rows(&[2..4, 0..2], "g").unwrap();
        assert_eq!(g.to_f32_vec(), rows_of(&w, &[4, 5, 2, 3]));
        let odd = w.slice_rows(1, 7);
        assert!(odd.gather_rows(&[0..2], "g").is_none());
        let g = odd.gather_rows(&[1..3], "g").unwrap();
        assert_eq!(g.to_f32_vec(), rows_of(&w, &[2, 3]));
        // A run that cuts a block row; the weight's end is fine only last.
        assert!(w.gather_rows(&[1..3], "g").is_none());
        assert!(w.gather_rows(&[6..7, 0..2], "g").is_none());
        assert!(w.gather_rows(&[0..8], "g").is_none());
        // Without scales any runs go.
        let plain = Weight::new(
            "p",
            DType::BF16,
            vec![3, 2],
            Bytes::from_vec((0..12).collect()),
        )
        .unwrap();
        let g = plain.gather_rows(&[2..3, 0..1], "g").unwrap();
        assert_eq!(g.data.as_slice(), &[8, 9, 10, 11, 0, 1, 2, 3]);
    }

    #[test]
    fn block_types_have_whole_block_rows() {
        let q = |shape: Vec<usize>, len: usize| {
            Weight::new("w", DType::Q4K, shape, Bytes::from_vec(vec![0; len]))
        };
        // 2 rows of 512 = 2 super-blocks of 144 bytes each.
        let w = q(vec![2, 512], 576).unwrap();
        assert_eq!((w.row_bytes(), w.stored_bytes()), (288, 576));
        assert_eq!(w.slice_rows(1, 2).data.len(), 288);
        assert_eq!(w.to_f32_vec(), vec![0.0; 1024]);
        let err = q(vec![2, 300], 576).unwrap_err().to_string();
        assert!(err.contains("whole 256-element blocks"), "{err}");
        assert!(q(vec![2, 512], 575).is_err());
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(Weight::new("w", DType::BF16, vec![2, 2], Bytes::from_vec(vec![0; 7])).is_err());
        let w = Weight::new("w", DType::F8E4M3, vec![3, 5], Bytes::from_vec(vec![0; 15])).unwrap();
        assert!(w
            .with_block_scale("s", &[1, 3], Bytes::from_f32(&[1.0; 3]), [2, 2])
            .is_err());
    }
}
