use std::fmt;

/// Element type of a stored tensor.
///
/// Besides the plain element types there are the llama.cpp (GGUF) block-quantized types: a row
/// is a sequence of fixed-size blocks of [`block_size`](DType::block_size) elements stored in
/// [`block_bytes`](DType::block_bytes) bytes each (layouts in [`crate::quant`]). Block types are
/// only valid with a whole number of blocks per row (`cols % block_size == 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    /// `float8_e4m3fn`: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities.
    F8E4M3,
    /// Integer tensors appear in some checkpoints (never as weights we compute with).
    I32,
    I64,
    /// GGUF `Q4_0`: 32 elements, f16 scale + 4-bit codes (`d · (q - 8)`).
    Q4_0,
    /// GGUF `Q4_1`: 32 elements, f16 scale and min + 4-bit codes (`d · q + m`).
    Q4_1,
    /// GGUF `Q5_0`: 32 elements, f16 scale + 5-bit codes (`d · (q - 16)`).
    Q5_0,
    /// GGUF `Q5_1`: 32 elements, f16 scale and min + 5-bit codes (`d · q + m`).
    Q5_1,
    /// GGUF `Q8_0`: 32 elements, f16 scale + i8 codes.
    Q8_0,
    /// GGUF `Q2_K`: 256-element super-blocks of 16 sub-blocks with 4-bit scales and mins.
    Q2K,
    /// GGUF `Q3_K`: 256-element super-blocks of 16 sub-blocks with 6-bit scales.
    Q3K,
    /// GGUF `Q4_K`: 256-element super-blocks of 8 sub-blocks with 6-bit scales and mins.
    Q4K,
    /// GGUF `Q5_K`: 256-element super-blocks of 8 sub-blocks with 6-bit scales and mins.
    Q5K,
    /// GGUF `Q6_K`: 256-element super-blocks of 16 sub-blocks with i8 scales.
    Q6K,
    /// GGUF `Q8_K`: 256 elements, f32 scale + i8 codes + 16 partial sums (activations).
    Q8K,
    /// GGUF `IQ2_XXS`: 256 elements, 2.06 bits each: 8-element codebook entries (256-entry
    /// grid) with sign patterns, a 4-bit scale per 32.
    IQ2XXS,
    /// GGUF `IQ2_XS`: 256 elements, 2.31 bits: 512-entry grid, 4-bit scales per 16.
    IQ2XS,
    /// GGUF `IQ2_S`: 256 elements, 2.56 bits: 1024-entry grid, explicit sign bits.
    IQ2S,
    /// GGUF `IQ3_XXS`: 256 elements, 3.06 bits: 4-element entries of a 256-entry grid.
    IQ3XXS,
    /// GGUF `IQ3_S`: 256 elements, 3.44 bits: 512-entry grid, explicit sign bits.
    IQ3S,
    /// GGUF `IQ1_S`: 256 elements, 1.56 bits: ternary 8-element entries (2048-entry grid)
    /// shifted by ±1/8.
    IQ1S,
    /// GGUF `IQ1_M`: 256 elements, 1.75 bits: the `IQ1_S` grid with scales per 16.
    IQ1M,
    /// GGUF `IQ4_NL`: 32 elements, f16 scale + 4-bit indices into 16 non-linear values.
    IQ4NL,
    /// GGUF `IQ4_XS`: 256 elements, the `IQ4_NL` values with 6-bit scales per 32.
    IQ4XS,
}

impl DType {
    /// Every dtype, in declaration order (tests iterate over it).
    pub const ALL: [DType; 26] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F8E4M3,
        DType::I32,
        DType::I64,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q2K,
        DType::Q3K,
        DType::Q4K,
        DType::Q5K,
        DType::Q6K,
        DType::Q8K,
        DType::IQ2XXS,
        DType::IQ2XS,
        DType::IQ2S,
        DType::IQ3XXS,
        DType::IQ3S,
        DType::IQ1S,
        DType::IQ1M,
        DType::IQ4NL,
        DType::IQ4XS,
    ];

    /// The GGUF block-quantized types jing quantizes to (and reads); the importance-matrix
    /// types jing only reads are [`IQUANTS`](DType::IQUANTS).
    pub const QUANTIZED: [DType; 11] = [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q2K,
        DType::Q3K,
        DType::Q4K,
        DType::Q5K,
        DType::Q6K,
        DType::Q8K,
    ];

    /// llama.cpp's "i-quants" (codebook and non-linear block types), which its quantizer makes
    /// with an importance matrix: jing reads and computes with them but does not write them.
    pub const IQUANTS: [DType; 9] = [
        DType::IQ2XXS,
        DType::IQ2XS,
        DType::IQ2S,
        DType::IQ3XXS,
        DType::IQ3S,
        DType::IQ1S,
        DType::IQ1M,
        DType::IQ4NL,
        DType::IQ4XS,
    ];

    /// Bytes per element of a plain element type.
    ///
    /// Panics for block-quantized types, whose elements have no whole byte size: use
    /// [`row_bytes`](DType::row_bytes) / [`bytes_for_shape`](DType::bytes_for_shape).
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::F8E4M3 => 1,
            DType::I64 => 8,
            q => panic!("DType::size() of block type {q}: use row_bytes()"),
        }
    }

    /// Elements per block: 1 for plain types, 32 or 256 for block-quantized types.
    pub fn block_size(self) -> usize {
        match self {
            DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::Q8_0 | DType::IQ4NL => {
                32
            }
            DType::Q2K
            | DType::Q3K
            | DType::Q4K
            | DType::Q5K
            | DType::Q6K
            | DType::Q8K
            | DType::IQ2XXS
            | DType::IQ2XS
            | DType::IQ2S
            | DType::IQ3XXS
            | DType::IQ3S
            | DType::IQ1S
            | DType::IQ1M
            | DType::IQ4XS => 256,
            _ => 1,
        }
    }

    /// Bytes per block (for plain types: bytes per element).
    pub fn block_bytes(self) -> usize {
        match self {
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q8_0 => 34,
            DType::Q2K => 84,
            DType::Q3K => 110,
            DType::Q4K => 144,
            DType::Q5K => 176,
            DType::Q6K => 210,
            DType::Q8K => 292,
            DType::IQ2XXS => 66,
            DType::IQ2XS => 74,
            DType::IQ2S => 82,
            DType::IQ3XXS => 98,
            DType::IQ3S => 110,
            DType::IQ1S => 50,
            DType::IQ1M => 56,
            DType::IQ4NL => 18,
            DType::IQ4XS => 136,
            d => d.size(),
        }
    }

    /// Whether this is a GGUF block-quantized type.
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes of one row of `cols` elements, or `None` if `cols` is not a whole number of blocks
    /// or the size overflows.
    pub fn checked_row_bytes(self, cols: usize) -> Option<usize> {
        let bs = self.block_size();
        if !cols.is_multiple_of(bs) {
            return None;
        }
        (cols / bs).checked_mul(self.block_bytes())
    }

    /// Bytes of one row of `cols` elements. Panics if `cols` is not a multiple of
    /// [`block_size`](DType::block_size) (a [`crate::Weight`] never has such rows).
    pub fn row_bytes(self, cols: usize) -> usize {
        self.checked_row_bytes(cols).unwrap_or_else(|| {
            panic!(
                "{self}: a row of {cols} elements is not a whole number of {}-element blocks",
                self.block_size()
            )
        })
    }

    /// Bytes of a tensor of `shape` (innermost dimension last and contiguous), or `None` if the
    /// innermost dimension is not a whole number of blocks or the size overflows. A 0-D shape is
    /// one element.
    pub fn bytes_for_shape(self, shape: &[usize]) -> Option<usize> {
        let cols = shape.last().copied().unwrap_or(1);
        let rows = shape[..shape.len().saturating_sub(1)]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))?;
        self.checked_row_bytes(cols)?.checked_mul(rows)
    }

    /// ggml's numeric type id (`enum ggml_type`), as GGUF stores it; `None` for F8E4M3.
    pub fn ggml_type(self) -> Option<u32> {
        Some(match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Q4_0 => 2,
            DType::Q4_1 => 3,
            DType::Q5_0 => 6,
            DType::Q5_1 => 7,
            DType::Q8_0 => 8,
            DType::Q2K => 10,
            DType::Q3K => 11,
            DType::Q4K => 12,
            DType::Q5K => 13,
            DType::Q6K => 14,
            DType::Q8K => 15,
            DType::IQ2XXS => 16,
            DType::IQ2XS => 17,
            DType::IQ3XXS => 18,
            DType::IQ1S => 19,
            DType::IQ4NL => 20,
            DType::IQ3S => 21,
            DType::IQ2S => 22,
            DType::IQ4XS => 23,
            DType::IQ1M => 29,
            DType::I32 => 26,
            DType::I64 => 27,
            DType::BF16 => 30,
            DType::F8E4M3 => return None,
        })
    }

    /// The dtype of a ggml type id; `None` for ids jing does not read (Q8_1, I8, I16, F64,
    /// TQ*, MXFP4, ...).
    pub fn from_ggml_type(id: u32) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::Q4_0,
            3 => DType::Q4_1,
            6 => DType::Q5_0,
            7 => DType::Q5_1,
            8 => DType::Q8_0,
            10 => DType::Q2K,
            11 => DType::Q3K,
            12 => DType::Q4K,
            13 => DType::Q5K,
            14 => DType::Q6K,
            15 => DType::Q8K,
            16 => DType::IQ2XXS,
            17 => DType::IQ2XS,
            18 => DType::IQ3XXS,
            19 => DType::IQ1S,
            20 => DType::IQ4NL,
            21 => DType::IQ3S,
            22 => DType::IQ2S,
            23 => DType::IQ4XS,
            29 => DType::IQ1M,
            26 => DType::I32,
            27 => DType::I64,
            30 => DType::BF16,
            _ => return None,
        })
    }

    /// ggml's name for a ggml type id (also for ids jing does not read), for error messages.
    pub fn ggml_type_name(id: u32) -> Option<&'static str> {
        const NAMES: [&str; 40] = [
            "f32",
            "f16",
            "q4_0",
            "q4_1",
            "q4_2",
            "q4_3",
            "q5_0",
            "q5_1",
            "q8_0",
            "q8_1",
            "q2_K",
            "q3_K",
            "q4_K",
            "q5_K",
            "q6_K",
            "q8_K",
            "iq2_xxs",
            "iq2_xs",
            "iq3_xxs",
            "iq1_s",
            "iq4_nl",
            "iq3_s",
            "iq2_s",
            "iq4_xs",
            "i8",
            "i16",
            "i32",
            "i64",
            "f64",
            "iq1_m",
            "bf16",
            "q4_0_4_4",
            "q4_0_4_8",
            "q4_0_8_8",
            "tq1_0",
            "tq2_0",
            "iq4_nl_4_4",
            "iq4_nl_4_8",
            "iq4_nl_8_8",
            "mxfp4",
        ];
        NAMES.get(id as usize).copied()
    }

    /// The spelling safetensors uses in its header (`None`-like types: block types have none and
    /// return their ggml name).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F8E4M3 => "F8_E4M3",
            DType::I32 => "I32",
            DType::I64 => "I64",
            q => q.name(),
        }
    }

    /// Parse a safetensors header dtype; `None` for types jing does not read.
    pub fn from_safetensors_name(name: &str) -> Option<DType> {
        Some(match name {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F8_E4M3" => DType::F8E4M3,
            "I32" => DType::I32,
            "I64" => DType::I64,
            _ => return None,
        })
    }

    /// Lower-case name (ggml's spelling for the block types: `q4_0`, `q4_K`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F8E4M3 => "f8_e4m3",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
            DType::Q5_0 => "q5_0",
            DType::Q5_1 => "q5_1",
            DType::Q8_0 => "q8_0",
            DType::Q2K => "q2_K",
            DType::Q3K => "q3_K",
            DType::Q4K => "q4_K",
            DType::Q5K => "q5_K",
            DType::Q6K => "q6_K",
            DType::Q8K => "q8_K",
            DType::IQ2XXS => "iq2_xxs",
            DType::IQ2XS => "iq2_xs",
            DType::IQ2S => "iq2_s",
            DType::IQ3XXS => "iq3_xxs",
            DType::IQ3S => "iq3_s",
            DType::IQ1S => "iq1_s",
            DType::IQ1M => "iq1_m",
            DType::IQ4NL => "iq4_nl",
            DType::IQ4XS => "iq4_xs",
        }
    }

    /// Whether this is a plain float type (f32, f16, bf16, f8_e4m3).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F8E4M3)
    }

    /// Whether a matmul / embedding lookup can consume this type directly: a float type or a
    /// GGUF block type (`Q8_K` is an activation format, but it decodes like any other).
    pub fn is_weight(self) -> bool {
        self.is_float() || self.is_quantized()
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ggml_ids_round_trip() {
        for d in DType::ALL {
            if let Some(id) = d.ggml_type() {
                assert_eq!(DType::from_ggml_type(id), Some(d));
                assert_eq!(DType::ggml_type_name(id), Some(d.name()));
            }
        }
        assert_eq!(DType::from_ggml_type(9), None); // q8_1
        assert_eq!(DType::from_ggml_type(4), None);
        assert_eq!(DType::from_ggml_type(1000), None);
    }

    #[test]
    fn row_bytes_of_block_types() {
        assert_eq!(DType::Q4_0.row_bytes(64), 36);
        assert_eq!(DType::Q4K.row_bytes(512), 288);
        assert_eq!(DType::Q6K.checked_row_bytes(255), None);
        assert_eq!(DType::BF16.row_bytes(3), 6);
        assert_eq!(DType::Q8_0.bytes_for_shape(&[3, 64]), Some(3 * 68));
        assert_eq!(DType::Q8_0.bytes_for_shape(&[3, 65]), None);
        assert_eq!(DType::F32.bytes_for_shape(&[]), Some(4));
        for q in DType::QUANTIZED.into_iter().chain(DType::IQUANTS) {
            assert!(q.is_quantized() && q.is_weight() && !q.is_float());
        }
        // Sizes as ggml's type traits give them (bytes per 256 elements / 32 for IQ4_NL).
        assert_eq!(DType::IQ2XXS.row_bytes(256), 66);
        assert_eq!(DType::IQ4NL.row_bytes(64), 36);
        assert_eq!(DType::IQ4XS.checked_row_bytes(32), None);
    }
}
