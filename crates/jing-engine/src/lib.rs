//! The serving core: it owns the model, the backend and the latent cache, runs prefill and
//! decode steps, and samples tokens.

mod engine;
mod sampler;
mod stop;

pub use engine::{Engine, EngineError, StepLogits};
pub use sampler::{argmax, Sampler, SamplingParams};
pub use stop::{StopMatcher, StopOutput};
