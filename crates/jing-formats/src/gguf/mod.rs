//! GGUF, llama.cpp's model format, read by our own parser: memory-mapped, tensors as zero-copy
//! [`Weight`](jing_tensor::Weight)s, hard limits on every count, length, nesting and offset
//! ([`parse`]), split sets (`NAME-00001-of-0000N.gguf`) merged into one [`GgufFile`], and an
//! HF view ([`HfView`]) that presents a `deepseek2`, `qwen2` or `llama` file as the checkpoint
//! the models already read (config.json fields, HF tensor names). Writing: [`GgufWriter`] builds
//! small files in memory (tests, fixtures), [`GgufStreamWriter`] streams files of any size
//! (`jing quantize`), and `from_hf` lays an HF folder out as llama.cpp's converter does.
//!
//! ```no_run
//! use jing_formats::gguf::GgufFile;
//! # fn main() -> Result<(), jing_formats::FormatError> {
//! let f = GgufFile::open(std::path::Path::new("DeepSeek-R1-Q4_K_M-00001-of-00009.gguf"))?;
//! println!("{:?} with {} tensors", f.architecture(), f.len());
//! # Ok(()) }
//! ```

mod file;
pub(crate) mod from_hf;
pub(crate) mod hf;
pub mod parse;
mod stream_write;
mod types;
mod write;

pub use file::{is_gguf_path, split_name, split_path, GgufFile, GgufTensor, MAX_SPLITS};
pub(crate) use hf::ViewInfo;
pub use hf::{generation_config, gguf_name_for, HfView, GGUF_ARCHITECTURES};
pub use parse::{parse_header, GgufHeader, GgufTensorInfo};
pub use stream_write::{GgufStreamWriter, GgufTensorSpec};
pub use types::{supported_ggml_types, GgmlType, GgufArray, GgufType, GgufValue};
pub use write::GgufWriter;
