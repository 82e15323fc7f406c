use jing_graph::{Batch, Graph};

/// Which positions of a step need logits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogitRows {
    /// Every token of the batch (scoring a prompt, `jing logits`).
    All,
    /// These batch rows only (usually the last token of each sequence).
    Rows(Vec<usize>),
}

impl LogitRows {
    /// The last token of each sequence in `batch` (a token is last if the next token belongs to
    /// another slot or the batch ends).
    pub fn last_of_each_sequence(batch: &Batch) -> LogitRows {
        let n = batch.len();
        LogitRows::Rows(
            (0..n)
                .filter(|&i| i + 1 == n || batch.slots[i + 1] != batch.slots[i])
                .collect(),
        )
    }
}

/// What the engine needs to know about a model to size its cache and check requests.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// `architectures[0]` from config.json.
    pub architecture: String,
    pub vocab_size: usize,
    /// Layers with a cache entry (main layers plus MTP layers).
    pub cache_layers: usize,
    /// Floats per token and layer in the cache.
    pub cache_width: usize,
    pub max_position_embeddings: usize,
    pub hidden_size: usize,
    /// Main-model layers.
    pub n_layers: usize,
    /// MTP modules loaded (`num_nextn_predict_layers`).
    pub mtp_layers: usize,
    /// Bytes of weights read per token in decode (every dense weight, the routed experts that a
    /// token selects, the embedding row), for roofline figures.
    pub active_bytes_per_token: usize,
    /// Bytes of all loaded weights.
    pub total_bytes: usize,
    /// The memory-mapped files the weights are views of (empty when they are in memory), for
    /// reading them in at load ([`jing_formats::prefault`]).
    pub mapped: Vec<jing_tensor::Bytes>,
}

/// A causal language model that builds one graph per step.
pub trait CausalLm: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// The graph of one step over `batch`. Outputs: `logits [rows, vocab]` for `rows`, and
    /// `hidden [rows, hidden]`, the final-normed hidden states of the same rows (the MTP
    /// module's input).
    fn build_step(&self, batch: &Batch, rows: &LogitRows) -> Graph;
}
