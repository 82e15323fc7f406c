use crate::GroupScore;

/// Choose `top_k` experts for one token (DeepSeek's `Gate`): selection scores
/// `s_b = scores + bias`; each of `n_group` equal groups is scored (sum of its two best, or its
/// best); the best `topk_group` groups stay and the other experts are masked with -inf (as in
/// DeepSeek's `inference/model.py`; HF transformers masks with 0.0, which can differ when a
/// bias is negative); the `top_k` best remaining experts are returned, best first, ties to the
/// lower index. Shared by every backend: routing is tiny and runs on the host.
pub fn select_experts(
    scores: &[f32],
    bias: Option<&[f32]>,
    top_k: usize,
    n_group: usize,
    topk_group: usize,
    group_score: GroupScore,
    out: &mut [i32],
) {
    let e = scores.len();
    let mut s: Vec<f32> = match bias {
        Some(b) => scores.iter().zip(b).map(|(x, y)| x + y).collect(),
        None => scores.to_vec(),
    };
    if n_group > 1 && topk_group < n_group {
        let per = e / n_group;
        let gscore: Vec<f32> = s
            .chunks(per)
            .map(|g| match group_score {
                GroupScore::Max => g.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                GroupScore::SumTop2 => {
                    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
                    for &v in g {
                        if v > a {
                            b = a;
                            a = v;
                        } else if v > b {
                            b = v;
                        }
                    }
                    if per >= 2 {
                        a + b
                    } else {
                        a
                    }
                }
            })
            .collect();
        let keep = top_indices(&gscore, topk_group);
        for (g, chunk) in s.chunks_mut(per).enumerate() {
            if !keep.contains(&g) {
                chunk.iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
            }
        }
    }
    for (o, i) in out.iter_mut().zip(top_indices(&s, top_k)) {
        *o = i as i32;
    }
}

/// Indices of the `k` largest values, largest first, ties to the lower index.
fn top_indices(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_limited_selection_masks_with_minus_infinity() {
        // 4 experts in 2 groups; group 1 wins on sum of top-2 of the biased scores.
        let scores = [0.9, 0.05, 0.5, 0.5];
        let mut out = [0i32; 2];
        select_experts(&scores, None, 2, 2, 1, GroupScore::SumTop2, &mut out);
        assert_eq!(out, [2, 3]);
        // With a bias favouring expert 0 strongly, group 0 wins.
        let bias = [1.0, 0.0, 0.0, 0.0];
        select_experts(&scores, Some(&bias), 2, 2, 1, GroupScore::SumTop2, &mut out);
        assert_eq!(out, [0, 1]);
        // Negative scores in the kept group still beat the masked group (-inf, not 0).
        let scores = [-0.5, -0.6, -2.0, -2.0];
        select_experts(&scores, None, 2, 2, 1, GroupScore::Max, &mut out);
        assert_eq!(out, [0, 1]);
    }
}
