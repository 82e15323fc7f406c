//! Dense decoder-only transformers in the Llama family: Llama-3.x (`LlamaForCausalLM`) and
//! Qwen2/Qwen2.5 (`Qwen2ForCausalLM`, with biases on q/k/v), the architectures of the
//! DeepSeek-R1-Distill models. Grouped-query attention over a K/V cache, NeoX-style RoPE.

mod config;
mod model;

pub use config::{DenseConfig, Family};
pub use model::Dense;
