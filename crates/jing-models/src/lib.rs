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

pub use error::ModelError;
pub use load::load_model;
pub use model::{CausalLm, LogitRows, ModelInfo};
