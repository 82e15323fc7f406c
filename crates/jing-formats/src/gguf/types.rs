//! The two type systems of a GGUF file: GGML tensor types (element or block formats, with their
//! block sizes, so that every tensor's byte size can be checked even when jing cannot compute
//! with it) and metadata value types.

use std::fmt;

use jing_tensor::DType;

/// A GGML tensor type as GGUF stores it (`ggml_type`), with its block geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GgmlType {
    /// The `ggml_type` id.
    pub id: u32,
    /// The name GGML and gguf-py give it ("F32", "Q8_0", "Q4_K", ...).
    pub name: &'static str,
    /// Elements per block (1 for plain element types).
    pub block_size: usize,
    /// Bytes per block.
    pub block_bytes: usize,
}

/// Every GGML type id with a known layout: `(id, name, elements per block, bytes per block)`.
/// From `GGML_QUANT_SIZES` of gguf-py; the ids missing here (4, 5, 31-33, 36-38) were removed
/// from GGML and never appear in current files.
const TYPES: &[(u32, &str, usize, usize)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

impl GgmlType {
    /// The type with this id, if GGML defines it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TYPES
            .iter()
            .find(|t| t.0 == id)
            .map(|&(id, name, block_size, block_bytes)| GgmlType {
                id,
                name,
                block_size,
                block_bytes,
            })
    }

    /// The type with this name (case-insensitive), if GGML defines it.
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TYPES
            .iter()
            .find(|t| t.1.eq_ignore_ascii_case(name))
            .and_then(|t| GgmlType::from_id(t.0))
    }

    /// Bytes of a row of `cols` elements, or `None` when `cols` is not a whole number of blocks
    /// or the size overflows.
    pub fn row_bytes(self, cols: u64) -> Option<u64> {
        if !cols.is_multiple_of(self.block_size as u64) {
            return None;
        }
        (cols / self.block_size as u64).checked_mul(self.block_bytes as u64)
    }

    /// The jing element type for this GGML type, when jing reads it (see
    /// [`DType::from_ggml_type`]; whether a weight of it can be computed with is
    /// [`DType::is_weight`]).
    pub fn dtype(self) -> Option<DType> {
        DType::from_ggml_type(self.id)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The GGML types jing computes with, for error messages.
pub fn supported_ggml_types() -> String {
    TYPES
        .iter()
        .filter_map(|t| GgmlType::from_id(t.0))
        .filter(|t| t.dtype().is_some_and(DType::is_weight))
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A GGUF metadata value type (`gguf_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl GgufType {
    /// The type with this id.
    pub fn from_id(id: u32) -> Option<GgufType> {
        Some(match id {
            0 => GgufType::U8,
            1 => GgufType::I8,
            2 => GgufType::U16,
            3 => GgufType::I16,
            4 => GgufType::U32,
            5 => GgufType::I32,
            6 => GgufType::F32,
            7 => GgufType::Bool,
            8 => GgufType::String,
            9 => GgufType::Array,
            10 => GgufType::U64,
            11 => GgufType::I64,
            12 => GgufType::F64,
            _ => return None,
        })
    }

    /// The fewest bytes one value of this type takes in a file (a string is at least its
    /// 8-byte length, an array its 4-byte type and 8-byte count).
    pub fn min_bytes(self) -> u64 {
        match self {
            GgufType::U8 | GgufType::I8 | GgufType::Bool => 1,
            GgufType::U16 | GgufType::I16 => 2,
            GgufType::U32 | GgufType::I32 | GgufType::F32 => 4,
            GgufType::U64 | GgufType::I64 | GgufType::F64 | GgufType::String => 8,
            GgufType::Array => 12,
        }
    }

    /// Lower-case name, as in messages ("u32", "string", "array").
    pub fn name(self) -> &'static str {
        match self {
            GgufType::U8 => "u8",
            GgufType::I8 => "i8",
            GgufType::U16 => "u16",
            GgufType::I16 => "i16",
            GgufType::U32 => "u32",
            GgufType::I32 => "i32",
            GgufType::F32 => "f32",
            GgufType::Bool => "bool",
            GgufType::String => "string",
            GgufType::Array => "array",
            GgufType::U64 => "u64",
            GgufType::I64 => "i64",
            GgufType::F64 => "f64",
        }
    }
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(GgufArray),
}

/// A metadata array: one element type for all items, stored compactly.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    /// Nested arrays (each with its own element type).
    Array(Vec<GgufArray>),
}

impl GgufArray {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            GgufArray::U8(v) => v.len(),
            GgufArray::I8(v) => v.len(),
            GgufArray::U16(v) => v.len(),
            GgufArray::I16(v) => v.len(),
            GgufArray::U32(v) => v.len(),
            GgufArray::I32(v) => v.len(),
            GgufArray::U64(v) => v.len(),
            GgufArray::I64(v) => v.len(),
            GgufArray::F32(v) => v.len(),
            GgufArray::F64(v) => v.len(),
            GgufArray::Bool(v) => v.len(),
            GgufArray::String(v) => v.len(),
            GgufArray::Array(v) => v.len(),
        }
    }

    /// Whether the array has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn elem_type(&self) -> GgufType {
        match self {
            GgufArray::U8(_) => GgufType::U8,
            GgufArray::I8(_) => GgufType::I8,
            GgufArray::U16(_) => GgufType::U16,
            GgufArray::I16(_) => GgufType::I16,
            GgufArray::U32(_) => GgufType::U32,
            GgufArray::I32(_) => GgufType::I32,
            GgufArray::U64(_) => GgufType::U64,
            GgufArray::I64(_) => GgufType::I64,
            GgufArray::F32(_) => GgufType::F32,
            GgufArray::F64(_) => GgufType::F64,
            GgufArray::Bool(_) => GgufType::Bool,
            GgufArray::String(_) => GgufType::String,
            GgufArray::Array(_) => GgufType::Array,
        }
    }

    /// The items as strings (a string array).
    pub fn as_strings(&self) -> Option<&[String]> {
        match self {
            GgufArray::String(v) => Some(v),
            _ => None,
        }
    }

    /// The items as signed integers (any integer array whose items fit in `i64`).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self {
            GgufArray::U8(v) => v.iter().map(|&x| x as i64).collect(),
            GgufArray::I8(v) => v.iter().map(|&x| x as i64).collect(),
            GgufArray::U16(v) => v.iter().map(|&x| x as i64).collect(),
            GgufArray::I16(v) => v.iter().map(|&x| x as i64).collect(),
            GgufArray::U32(v) => v.iter().map(|&x| x as i64).collect(),
            GgufArray::I32(v) => v.iter().map(|&x| x as i64).collect(),
            GgufArray::I64(v) => v.clone(),
            GgufArray::U64(v) => v
                .iter()
                .map(|&x| i64::try_from(x).ok())
                .collect::<Option<_>>()?,
            _ => return None,
        })
    }

    /// The items as numbers (any numeric array).
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        Some(match self {
            GgufArray::F32(v) => v.iter().map(|&x| x as f64).collect(),
            GgufArray::F64(v) => v.clone(),
            other => other.to_i64_vec()?.into_iter().map(|x| x as f64).collect(),
        })
    }
}

impl GgufValue {
    /// The value's type.
    pub fn value_type(&self) -> GgufType {
        match self {
            GgufValue::U8(_) => GgufType::U8,
            GgufValue::I8(_) => GgufType::I8,
            GgufValue::U16(_) => GgufType::U16,
            GgufValue::I16(_) => GgufType::I16,
            GgufValue::U32(_) => GgufType::U32,
            GgufValue::I32(_) => GgufType::I32,
            GgufValue::U64(_) => GgufType::U64,
            GgufValue::I64(_) => GgufType::I64,
            GgufValue::F32(_) => GgufType::F32,
            GgufValue::F64(_) => GgufType::F64,
            GgufValue::Bool(_) => GgufType::Bool,
            GgufValue::String(_) => GgufType::String,
            GgufValue::Array(_) => GgufType::Array,
        }
    }

    /// Any integer value that fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            GgufValue::U8(x) => x as i64,
            GgufValue::I8(x) => x as i64,
            GgufValue::U16(x) => x as i64,
            GgufValue::I16(x) => x as i64,
            GgufValue::U32(x) => x as i64,
            GgufValue::I32(x) => x as i64,
            GgufValue::U64(x) => i64::try_from(x).ok()?,
            GgufValue::I64(x) => x,
            _ => return None,
        })
    }

    /// Any non-negative integer value (writers differ on u32 vs i32 vs u64).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U64(x) => Some(x),
            _ => u64::try_from(self.as_i64()?).ok(),
        }
    }

    /// Any numeric value as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(x) => Some(x as f64),
            GgufValue::F64(x) => Some(x),
            _ => self.as_i64().map(|x| x as f64),
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// A string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// An array.
    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description for listings: the value, or for arrays their type and length.
    pub fn summary(&self) -> String {
        fn short(s: &str) -> String {
            if s.chars().count() > 60 {
                let head: String = s.chars().take(57).collect();
                format!("{head:?}...")
            } else {
                format!("{s:?}")
            }
        }
        match self {
            GgufValue::String(s) => short(s),
            GgufValue::Array(a) => format!("[{}; {}]", a.elem_type().name(), a.len()),
            GgufValue::F32(x) => format!("{x}"),
            GgufValue::F64(x) => format!("{x}"),
            GgufValue::Bool(b) => format!("{b}"),
            other => other.as_i64().map(|x| x.to_string()).unwrap_or_else(|| {
                other
                    .as_u64()
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "?".into())
            }),
        }
    }
}
