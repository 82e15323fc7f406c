use crate::{Batch, CacheError, Graph, KvCache};

/// Executes whole graphs. The CPU backend wakes its thread pool once per graph; an accelerator
/// would launch (or replay) the whole step at once.
pub trait Backend: Send + Sync {
    fn name(&self) -> String;

    /// Run `graph` for `batch`, reading and writing `cache`, and return the graph's outputs.
    fn execute(
        &self,
        graph: &Graph,
        batch: &Batch,
        cache: &mut KvCache,
    ) -> Result<Outputs, ExecError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("the batch has {batch} tokens but the graph was built for {graph}")]
    BatchSize { batch: usize, graph: usize },
    #[error("token id {id} is outside the vocabulary of {vocab} entries")]
    TokenId { id: u32, vocab: usize },
    #[error("the graph needs host input `{0}`, which the batch does not provide")]
    MissingInput(String),
    #[error("host input `{name}` has {found} values, expected {expected}")]
    InputSize {
        name: String,
        found: usize,
        expected: usize,
    },
    #[error("internal error in the compute backend (please report it): {0}")]
    Internal(String),
    #[error("backend {backend} does not support {what}")]
    Unsupported { backend: String, what: String },
}

/// Named f32 results of a graph.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub values: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Outputs {
    /// The output `name` as (shape, values).
    pub fn get(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.values
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, v)| (s.as_slice(), v.as_slice()))
    }
}
