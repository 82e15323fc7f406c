//! Quantization: writing a GGUF file in another type (`jing quantize`) and converting weights
//! while a model loads (`--quant`), with the bytes llama.cpp's reference quantizers produce.
//!
//! - [`QuantTarget`]: a type for every weight (`q8_0`, `q4_k`, `f16`, ...) or a mix (`q4_k_m`,
//!   `q5_k_m`);
//! - [`rules`]: which type each tensor gets (llama.cpp's `llama_tensor_get_type`);
//! - [`quantize_to_gguf`]: a GGUF file (or split set) or an HF folder in, one GGUF file out,
//!   streamed tensor by tensor;
//! - [`LoadQuant`]: the same conversion applied to the matmul weights as a model loads
//!   ([`ModelDir::quantize_on_load`](crate::ModelDir::quantize_on_load)).
//!
//! ```no_run
//! use jing_formats::quantize::{quantize_to_gguf, QuantTarget, QuantizeOptions};
//! # fn main() -> Result<(), jing_formats::FormatError> {
//! let opts = QuantizeOptions::new(QuantTarget::parse("q4_k_m").unwrap(), 8);
//! let report = quantize_to_gguf(
//!     std::path::Path::new("/models/DeepSeek-V2-Lite-F16.gguf"),
//!     std::path::Path::new("/models/DeepSeek-V2-Lite-Q4_K_M.gguf"),
//!     &opts,
//!     &mut |_event| {},
//! )?;
//! println!("{} tensors, {} bytes", report.tensors, report.file_bytes);
//! # Ok(()) }
//! ```

mod convert;
mod on_load;
pub mod rules;
mod target;
mod to_gguf;

pub use convert::encode_row;
pub use on_load::LoadQuant;
pub(crate) use on_load::{LoadPlan, MlaDims};
pub use target::{Mix, QuantTarget};
pub use to_gguf::{quantize_to_gguf, QuantizeOptions, QuantizeReport};

use jing_tensor::DType;

/// What a conversion reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum QuantEvent<'a> {
    /// Before the first tensor: how many tensors will be written (or converted) and their
    /// bytes (written to the file; at load, read from the checkpoint).
    Start { tensors: usize, bytes: u64 },
    /// Tensor `index` (of `Start::tensors`) begins: its name and the type it gets.
    Tensor {
        index: usize,
        name: &'a str,
        dtype: DType,
    },
    /// `bytes` more bytes are done.
    Progress { bytes: u64 },
}
