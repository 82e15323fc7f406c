//! The serving core: it owns the model, the backend and the latent cache, runs prefill and
//! decode steps, and samples tokens. [`Engine`] runs single sequences (the CLI); an
//! [`EngineHandle`] runs many at once on a thread of its own (continuous batching, for the
//! server).

mod constraint;
mod engine;
mod handle;
mod rearrange;
mod request;
mod sampler;
mod scheduler;
mod stop;

pub use constraint::TokenConstraint;
pub use engine::{Engine, EngineError, StepLogits};
pub use handle::{EngineHandle, EngineStats, RequestStream, ServeConfig, SubmitError};
pub use jing_cpu::kernels::Fp8Activations;
pub use rearrange::{LoadEvent, LoadObserver};
pub use request::{
    Admission, AdmissionInfo, Event, Finish, FinishReason, GeneratedToken, GenerationRequest,
    TokenLogprob, Usage,
};
pub use sampler::{argmax, Sampler, SamplingParams};
pub use stop::{StopMatcher, StopOutput};
