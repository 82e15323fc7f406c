//! DeepSeek-V2 / V2-Lite / V3 / R1: multi-head latent attention over a compressed latent
//! cache, DeepSeekMoE with shared experts, YaRN, and the multi-token-prediction module.

mod config;
mod mla;
mod model;
mod moe;
mod mtp;
mod weights;

pub use config::{DeepSeekConfig, RouterKind};
pub use model::DeepSeek;
