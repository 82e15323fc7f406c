//! Model definitions. Each model reads like its paper: one function per block, shape comments
//! on every tensor, written only against the graph API, so it never knows which device, ISA or
//! weight format it runs on.

mod common;
pub mod deepseek;
pub mod dense;
mod error;
mod load;
mod model;
pub mod rope;

pub use common::PrepareLinear;
pub use error::ModelError;
/// Quantizing at load (`--quant`), re-exported so that callers need not name jing-formats.
pub use jing_formats::quantize::LoadQuant;
pub use load::{load_model, load_model_dir, load_model_prepared, load_model_with};
pub use model::{CausalLm, LogitRows, ModelInfo};
