//! DeepSeekMoE: fine-grained routed experts plus always-on shared experts.

use jing_graph::{GraphBuilder, GroupScore, Tensor};

use super::weights::Moe;
use super::{DeepSeekConfig, RouterKind};

/// Routed experts weighted by the router plus the shared experts, for `x [T, d]`: `[T, d]`.
pub fn moe(g: &mut GraphBuilder, c: &DeepSeekConfig, w: &Moe, x: Tensor) -> Tensor {
    let k = c.num_experts_per_tok;

    // Router: V3 scores experts with a sigmoid and picks them on scores + correction bias,
    // within the best groups; V2 uses a softmax. Combine weights use the unbiased scores.
    // The shared experts' gate and up projections read x too: side by side in the graph with
    // the router's, so an executor can run the three as one stretch of weight reads.
    let logits = g.matmul(x, &w.router); //             [T, E]
    let shared = w.shared.as_ref().map(|s| {
        let gate = g.matmul(x, &s.gate); //             [T, I_s]
        (s, gate, g.matmul(x, &s.up))
    });
    let scores = if c.sigmoid_scores {
        g.sigmoid(logits)
    } else {
        g.softmax(logits)
    };
    let group_score = match c.router {
        RouterKind::NoAuxTc => GroupScore::SumTop2,
        RouterKind::GroupLimitedGreedy | RouterKind::Greedy => GroupScore::Max,
    };
    let ids = g.moe_select(
        scores,
        w.bias.as_ref(),
        k,
        c.n_group,
        c.topk_group,
        group_score,
    ); // [T, k]
    let mut weights = g.gather_cols(scores, ids); //    [T, k]
    if c.norm_topk_prob && k > 1 {
        weights = g.normalize_rows(weights);
    }
    let weights = g.scale(weights, c.routed_scaling_factor);

    // Each token through its k experts, then their weighted sum; the shared experts' MLP
    // (`common::mlp`, not scaled) alongside, each of its steps next to the routed one.
    let gate = g.matmul_id(x, &w.gate, ids); //         [T, k, I]
    let up = g.matmul_id(x, &w.up, ids); //             [T, k, I]
    let act = g.silu_mul(gate, up);
    let shared = shared.map(|(s, gate, up)| (s, g.silu_mul(gate, up)));
    let down = g.matmul_id(act, &w.down, ids); //       [T, k, d]
    let shared = shared.map(|(s, act)| g.matmul(act, &s.down)); // [T, d]
    let routed = g.weighted_sum(down, weights); //      [T, d]
    match shared {
        Some(s) => g.add(routed, s),
        None => routed,
    }
}
