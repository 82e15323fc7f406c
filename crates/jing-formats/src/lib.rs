//! Checkpoint loaders (no compute): memory-mapped, zero-copy safetensors — single file or
//! sharded through `model.safetensors.index.json`, with DeepSeek FP8 `_scale_inv` block scales
//! paired to their weights — GGUF (our own reader, split sets, an HF view of `deepseek2`,
//! `qwen2` and `llama` files), HF `config.json` with typed accessors, `inspect`, the report
//! behind `jing inspect`, and [`quantize`]: GGUF files written in llama.cpp's types and mixes
//! (`jing quantize`) and weights quantized as a model loads (`--quant`).
//!
//! ```no_run
//! use jing_formats::ModelDir;
//! # fn main() -> Result<(), jing_formats::FormatError> {
//! let model = ModelDir::open(std::path::Path::new("/models/DeepSeek-V3"))?;
//! let hidden = model.config.usize("hidden_size")?;
//! let w = model.store.get("model.layers.0.self_attn.q_a_proj.weight")?; // FP8 + block scale
//! # let _ = (hidden, w); Ok(()) }
//! ```

mod config;
mod error;
pub mod gguf;
mod inspect;
mod model_dir;
mod prefault;
pub mod quantize;
pub mod safetensors;
mod store;

pub use config::Config;
pub use error::{FormatError, SUPPORTED_DTYPES};
pub use inspect::{
    human_bytes, inspect, Fp8Summary, GgmlTypeCount, GgufSummary, InspectReport, KEY_CONFIG_FIELDS,
};
pub use model_dir::{fp8_block_size, ModelDir, CONFIG_FILE, GENERATION_CONFIG_FILE};
pub use prefault::{available_memory, prefault, Residency};
pub use store::{
    scale_names, AbsentShard, DTypeCount, MissingScale, TensorInfo, TensorStore, DEFAULT_BLOCK,
    INDEX_FILE, SINGLE_FILE,
};

// Re-exported so callers need not depend on jing-tensor just to name what `get` returns.
pub use jing_tensor::{Bytes, DType, Weight};

#[cfg(test)]
mod tests {
    #[test]
    fn loaders_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::TensorStore>();
        check::<crate::ModelDir>();
        check::<crate::Config>();
        check::<crate::FormatError>();
        check::<crate::InspectReport>();
        check::<crate::gguf::GgufFile>();
        check::<crate::gguf::HfView>();
    }
}
