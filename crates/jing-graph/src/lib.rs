//! The op set every backend implements, a graph builder that checks shapes as the model is
//! written, and a slow f32 reference interpreter that is the oracle for every backend.
//!
//! A model builds one [`Graph`] per step for a [`Batch`] of tokens (tokens of several
//! sequences may share a step); a [`Backend`] executes the whole graph, reading and writing
//! the [`KvCache`].

mod backend;
mod batch;
mod builder;
mod cache;
mod graph;
mod interp;
mod mla_weights;
mod op;
mod rope;
mod routing;

pub use backend::{Backend, ExecError, Outputs};
pub use batch::Batch;
pub use builder::GraphBuilder;
pub use cache::{CacheError, KvCache};
pub use graph::{Graph, Node, Tensor, ValueType};
pub use interp::Reference;
pub use mla_weights::{MlaHead, MlaWeights, UkHead};
pub use op::{GqaAttention, GroupScore, MlaAttention, MlaForm, Op};
pub use rope::{RopeFreqs, RopeStyle};
pub use routing::select_experts;
