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
    let biased = |i: usize| bias.map_or(scores[i], |b| scores[i] + b[i]);
    let limited = n_group > 1 && topk_group < n_group;
    let per = if limited { e / n_group } else { e };
    // The best `topk_group` groups by their score (all groups when not group-limited).
    let mut kept = Picked::new(n_group.max(1));
    if limited {
        let group = |g: usize| {
            let vals = (g * per..(g + 1) * per).map(biased);
            match group_score {
                GroupScore::Max => vals.fold(f32::NEG_INFINITY, f32::max),
                GroupScore::SumTop2 => {
                    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
                    for v in vals {
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
            }
        };
        for _ in 0..topk_group {
            if let Some(g) = best_unpicked(n_group, group, &kept) {
                kept.pick(g);
            }
        }
    }
    // Experts of dropped groups are masked with -inf (still selectable, last, if `top_k`
    // exceeds what the kept groups hold).
    let masked = |i: usize| {
        if limited && !kept.has(i / per) {
            f32::NEG_INFINITY
        } else {
            biased(i)
        }
    };
    let mut chosen = Picked::new(e);
    for o in out.iter_mut().take(top_k) {
        let Some(i) = best_unpicked(e, masked, &chosen) else {
            break;
        };
        chosen.pick(i);
        *o = i as i32;
    }
}

/// The index of the largest `value(i)` for `i < n` not yet in `picked`, ties to the lower
/// index (`f32::total_cmp` order: repeated, this lists the values sorted largest first).
fn best_unpicked(n: usize, value: impl Fn(usize) -> f32, picked: &Picked) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for i in (0..n).filter(|&i| !picked.has(i)) {
        let v = value(i);
        if best.is_none_or(|(_, b)| v.total_cmp(&b).is_gt()) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// A set of indices below `n`: a bitset on the stack for up to 256 (every DeepSeek router),
/// so routing a token allocates nothing; a vector beyond.
enum Picked {
    Small([u64; 4]),
    Large(Vec<bool>),
}

impl Picked {
    fn new(n: usize) -> Picked {
        if n <= 256 {
            Picked::Small([0; 4])
        } else {
            Picked::Large(vec![false; n])
        }
    }

    fn has(&self, i: usize) -> bool {
        match self {
            Picked::Small(bits) => bits[i / 64] >> (i % 64) & 1 == 1,
            Picked::Large(v) => v[i],
        }
    }

    fn pick(&mut self, i: usize) {
        match self {
            Picked::Small(bits) => bits[i / 64] |= 1 << (i % 64),
            Picked::Large(v) => v[i] = true,
        }
    }
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

    /// The selection spelled out with sorts (the form this file had before it stopped
    /// allocating): biased scores, group scores, -inf masking, a stable sort.
    fn sorted_reference(
        scores: &[f32],
        bias: Option<&[f32]>,
        top_k: usize,
        n_group: usize,
        topk_group: usize,
        group_score: GroupScore,
    ) -> Vec<i32> {
        let top = |v: &[f32], k: usize| {
            let mut idx: Vec<usize> = (0..v.len()).collect();
            idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
            idx.truncate(k);
            idx
        };
        let mut s: Vec<f32> = match bias {
            Some(b) => scores.iter().zip(b).map(|(x, y)| x + y).collect(),
            None => scores.to_vec(),
        };
        if n_group > 1 && topk_group < n_group {
            let per = s.len() / n_group;
            let g: Vec<f32> = s
                .chunks(per)
                .map(|c| {
                    let mut c = c.to_vec();
                    c.sort_by(|a, b| b.total_cmp(a));
                    match group_score {
                        GroupScore::Max => c[0],
                        GroupScore::SumTop2 if per >= 2 => c[0] + c[1],
                        GroupScore::SumTop2 => c[0],
                    }
                })
                .collect();
            let keep = top(&g, topk_group);
            for (gi, c) in s.chunks_mut(per).enumerate() {
                if !keep.contains(&gi) {
                    c.fill(f32::NEG_INFINITY);
                }
            }
        }
        top(&s, top_k).into_iter().map(|i| i as i32).collect()
    }

    #[test]
    fn selection_equals_the_sorted_reference() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // (experts, groups, kept groups, top-k): V2-Lite, V2, V3, a router past the bitset.
        for (e, ng, kg, k) in [
            (64, 1, 1, 6),
            (160, 8, 3, 6),
            (256, 8, 4, 8),
            (300, 4, 2, 5),
        ] {
            for round in 0..200 {
                // Coarse values (eighths) make ties common; some rounds add a bias.
                let scores: Vec<f32> = (0..e).map(|_| (next() % 9) as f32 / 8.0 - 0.5).collect();
                let bias: Vec<f32> = (0..e).map(|_| (next() % 5) as f32 / 8.0 - 0.25).collect();
                let bias = (round % 2 == 1).then_some(&bias[..]);
                for gs in [GroupScore::Max, GroupScore::SumTop2] {
                    let mut out = vec![0i32; k];
                    select_experts(&scores, bias, k, ng, kg, gs, &mut out);
                    assert_eq!(
                        out,
                        sorted_reference(&scores, bias, k, ng, kg, gs),
                        "e={e} round={round}"
                    );
                }
            }
        }
    }
}
