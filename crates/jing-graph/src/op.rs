use std::sync::Arc;

use jing_tensor::Weight;

use crate::{MlaWeights, RopeFreqs, Tensor};

/// How the score of a router group is computed from its experts' selection scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupScore {
    /// Sum of the two largest scores in the group (DeepSeek-V3 `noaux_tc`).
    SumTop2,
    /// Largest score in the group (DeepSeek-V2 `group_limited_greedy`).
    Max,
}

/// Which algebraic form of MLA attention to run. Both compute the same function; the choice is
/// a backend policy (rewrite the graph with [`crate::Graph::set_mla_form`]), never a model one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlaForm {
    /// Let the backend choose (absorbed for decode, possibly expanded for long prefill).
    Auto,
    /// W_UK folded into the query, attention over the latent, W_UV applied after.
    Absorbed,
    /// Per-head keys and values decompressed from the cached latent (plain MHA).
    Expanded,
}

/// Multi-head latent attention over the latent cache of one layer.
///
/// Inputs: `q_nope [T, H, dn]`, `q_pe [T, H, dr]` (already rotated); the cache of `layer` holds
/// for every position the normalised latent `c_kv` (`kv_lora` wide) followed by the rotated
/// shared `k_pe` (`dr` wide). `w` holds every head's W_UK[h] `[dn, kv_lora]` and W_UV[h]
/// `[dv, kv_lora]`, as the checkpoint stores them (see [`MlaWeights`]).
/// Output: `[T, H·dv]`, ready for `o_proj`.
#[derive(Clone, Debug)]
pub struct MlaAttention {
    pub q_nope: Tensor,
    pub q_pe: Tensor,
    /// The `KvWrite` of this step; attention runs after it.
    pub written: Tensor,
    pub w: Arc<MlaWeights>,
    pub layer: usize,
    pub n_heads: usize,
    pub nope_dim: usize,
    pub rope_dim: usize,
    pub v_dim: usize,
    pub kv_lora: usize,
    /// Softmax scale (DeepSeek: `(dn + dr)^-1/2 · mscale²`).
    pub scale: f32,
    pub form: MlaForm,
}

/// Grouped-query attention over the cache of one layer (Llama, Qwen2): query head `h` reads KV
/// head `h / (n_heads / n_kv_heads)`. Input `q [T, H, d]` (already rotated); the cache row of a
/// position is its keys `[n_kv·d]` then its values `[n_kv·d]`. Output `[T, H·d]`.
#[derive(Clone, Debug)]
pub struct GqaAttention {
    pub q: Tensor,
    /// The `KvWrite` of this step; attention runs after it.
    pub written: Tensor,
    pub layer: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Softmax scale, usually `d^-1/2`.
    pub scale: f32,
}

/// One operation. Activations are f32 (ids are i32), row-major and contiguous; the first
/// dimension is always the batch's token dimension `T`.
#[derive(Clone, Debug)]
pub enum Op {
    /// Rows of `table` for the batch's tokens: `[T, D]`.
    Embed {
        table: Arc<Weight>,
    },
    /// A host-provided input of the batch (see [`crate::Batch::inputs`]).
    Input {
        name: String,
    },
    /// `x [.., K] · Wᵀ` with `W [N, K]` in its stored format: `[.., N]`.
    MatMul {
        x: Tensor,
        w: Arc<Weight>,
    },
    /// `w ⊙ x / sqrt(mean(x²) + eps)` over the last dimension.
    RmsNorm {
        x: Tensor,
        w: Arc<Weight>,
        eps: f32,
    },
    Add {
        a: Tensor,
        b: Tensor,
    },
    /// `x [.., N] + bias [N]` (the bias of a linear layer, in its stored format).
    AddBias {
        x: Tensor,
        bias: Arc<Weight>,
    },
    Mul {
        a: Tensor,
        b: Tensor,
    },
    Scale {
        x: Tensor,
        s: f32,
    },
    /// `silu(gate) ⊙ up`.
    SiluMul {
        gate: Tensor,
        up: Tensor,
    },
    Sigmoid {
        x: Tensor,
    },
    /// Softmax over the last dimension.
    Softmax {
        x: Tensor,
    },
    /// Columns `start .. start + len` of the last dimension (copied).
    Slice {
        x: Tensor,
        start: usize,
        len: usize,
    },
    /// `[.., A] ‖ [.., B]` along the last dimension.
    Concat {
        a: Tensor,
        b: Tensor,
    },
    /// Same data, new shape (the node's shape).
    Reshape {
        x: Tensor,
    },
    /// Rotate `x [T, H, D]` by each token's position.
    Rope {
        x: Tensor,
        freqs: Arc<RopeFreqs>,
    },
    /// Rows `rows` of `x` (e.g. the last token of each sequence before the LM head).
    TakeRows {
        x: Tensor,
        rows: Vec<usize>,
    },
    /// Router expert choice: `[T, top_k]` i32 ids, chosen on `scores + bias` restricted to the
    /// best `topk_group` of `n_group` groups (masked experts get -inf, as DeepSeek's reference).
    MoeSelect {
        scores: Tensor,
        bias: Option<Arc<Weight>>,
        top_k: usize,
        n_group: usize,
        topk_group: usize,
        group_score: GroupScore,
    },
    /// `out[t, j] = x[t, ids[t, j]]`.
    GatherCols {
        x: Tensor,
        ids: Tensor,
    },
    /// `x / (Σ x + 1e-20)` per row.
    NormalizeRows {
        x: Tensor,
    },
    /// Per-token expert matmul: for slot `j` of token `t`, `x[t] (or x[t, j]) · experts[ids[t, j]]ᵀ`:
    /// `[T, k, N]`. `x` is `[T, K]` (shared by the slots) or `[T, k, K]`.
    MatMulId {
        x: Tensor,
        experts: Arc<Vec<Arc<Weight>>>,
        ids: Tensor,
    },
    /// `Σ_j w[t, j] · x[t, j, :]`: `[T, D]`.
    WeightedSum {
        x: Tensor,
        w: Tensor,
    },
    /// Store one row per token, `left ‖ right`, in the cache of `layer` at each token's slot and
    /// position: MLA stores `c_kv [T, kv_lora] ‖ k_pe [T, dr]`, GQA stores `k ‖ v`
    /// (`[T, n_kv·d]` each). Its value is the written rows.
    KvWrite {
        layer: usize,
        left: Tensor,
        right: Tensor,
    },
    MlaAttention(Box<MlaAttention>),
    Attention(Box<GqaAttention>),
}

impl Op {
    /// The tensors this op reads (at most three; no allocation, executors walk this every step).
    pub fn inputs(&self) -> impl Iterator<Item = Tensor> {
        let (a, b, c) = match self {
            Op::Embed { .. } | Op::Input { .. } => (None, None, None),
            Op::MatMul { x, .. }
            | Op::RmsNorm { x, .. }
            | Op::Scale { x, .. }
            | Op::Sigmoid { x }
            | Op::Softmax { x }
            | Op::Slice { x, .. }
            | Op::Reshape { x }
            | Op::Rope { x, .. }
            | Op::TakeRows { x, .. }
            | Op::NormalizeRows { x }
            | Op::AddBias { x, .. } => (Some(*x), None, None),
            Op::MoeSelect { scores, .. } => (Some(*scores), None, None),
            Op::Add { a, b } | Op::Mul { a, b } | Op::Concat { a, b } => (Some(*a), Some(*b), None),
            Op::SiluMul { gate, up } => (Some(*gate), Some(*up), None),
            Op::GatherCols { x, ids } | Op::MatMulId { x, ids, .. } => (Some(*x), Some(*ids), None),
            Op::WeightedSum { x, w } => (Some(*x), Some(*w), None),
            Op::KvWrite { left, right, .. } => (Some(*left), Some(*right), None),
            Op::MlaAttention(a) => (Some(a.q_nope), Some(a.q_pe), Some(a.written)),
            Op::Attention(a) => (Some(a.q), Some(a.written), None),
        };
        [a, b, c].into_iter().flatten()
    }

    /// Short name for errors and profiles.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Embed { .. } => "embed",
            Op::Input { .. } => "input",
            Op::MatMul { .. } => "matmul",
            Op::RmsNorm { .. } => "rms_norm",
            Op::Add { .. } => "add",
            Op::AddBias { .. } => "add_bias",
            Op::Mul { .. } => "mul",
            Op::Scale { .. } => "scale",
            Op::SiluMul { .. } => "silu_mul",
            Op::Sigmoid { .. } => "sigmoid",
            Op::Softmax { .. } => "softmax",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Reshape { .. } => "reshape",
            Op::Rope { .. } => "rope",
            Op::TakeRows { .. } => "take_rows",
            Op::MoeSelect { .. } => "moe_select",
            Op::GatherCols { .. } => "gather_cols",
            Op::NormalizeRows { .. } => "normalize_rows",
            Op::MatMulId { .. } => "matmul_id",
            Op::WeightedSum { .. } => "weighted_sum",
            Op::KvWrite { .. } => "kv_write",
            Op::MlaAttention(_) => "mla_attention",
            Op::Attention(_) => "attention",
        }
    }
}
