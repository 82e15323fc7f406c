//! Token sampling. Logits are first adjusted (logit bias, repetition penalty, presence and
//! frequency penalties), then the token is chosen: greedy at temperature 0, otherwise by
//! temperature with top-k, top-p (nucleus) and min-p filtering, drawn from a seeded generator so
//! that a seed reproduces the output.

use std::collections::HashMap;

/// How to pick the next token.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Keep the `k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `p` (1: all).
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the best token's (0: off).
    pub min_p: f32,
    /// HF's repetition penalty over the prompt and the output: a seen token's logit is divided
    /// by it when positive and multiplied by it when negative (1: off).
    pub repetition_penalty: f32,
    /// OpenAI's presence penalty: subtracted once from the logit of every token already
    /// generated (0: off).
    pub presence_penalty: f32,
    /// OpenAI's frequency penalty: subtracted from a token's logit once per time it was
    /// generated (0: off).
    pub frequency_penalty: f32,
    /// Added to the logits of these tokens before anything else (OpenAI's `logit_bias`).
    pub logit_bias: Vec<(u32, f32)>,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Check the ranges; the message names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |name: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be a finite number, got {v}"))
            }
        };
        finite("temperature", self.temperature)?;
        if self.temperature < 0.0 {
            return Err(format!(
                "temperature must be >= 0 (0 is greedy), got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        finite("presence_penalty", self.presence_penalty)?;
        finite("frequency_penalty", self.frequency_penalty)?;
        for &(_, b) in &self.logit_bias {
            finite("logit_bias", b)?;
        }
        Ok(())
    }
}

/// A sampler with its own generator state (SplitMix64: tiny, fast, and stable across
/// versions, so a seed means the same tokens in every jing build) and the token counts the
/// penalties need.
pub struct Sampler {
    params: SamplingParams,
    state: u64,
    /// Tokens of the prompt (for the repetition penalty only).
    prompt_seen: HashMap<u32, u32>,
    /// Generated tokens and how often each came.
    generated: HashMap<u32, u32>,
}

/// Index of the largest logit (the first one on ties, like `torch.argmax`).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Sampler {
        let state = params.seed ^ 0x9E37_79B9_7F4A_7C15;
        Sampler {
            params,
            state,
            prompt_seen: HashMap::new(),
            generated: HashMap::new(),
        }
    }

    /// Tell the sampler the prompt (the repetition penalty covers it).
    pub fn with_prompt(mut self, prompt: &[u32]) -> Sampler {
        for &t in prompt {
            *self.prompt_seen.entry(t).or_default() += 1;
        }
        self
    }

    fn next_f64(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether any logit adjustment is on (so the logits can be used as they are otherwise).
    fn adjusts(&self) -> bool {
        let p = &self.params;
        !p.logit_bias.is_empty()
            || p.repetition_penalty != 1.0
            || p.presence_penalty != 0.0
            || p.frequency_penalty != 0.0
    }

    /// The logits after bias and penalties.
    fn adjusted(&self, logits: &[f32]) -> Vec<f32> {
        let p = &self.params;
        let mut l = logits.to_vec();
        for &(t, b) in &p.logit_bias {
            if let Some(v) = l.get_mut(t as usize) {
                *v += b;
            }
        }
        if p.repetition_penalty != 1.0 {
            let seen = self.prompt_seen.keys().chain(self.generated.keys());
            let mut done = std::collections::HashSet::new();
            for &t in seen {
                if let (true, Some(v)) = (done.insert(t), l.get_mut(t as usize)) {
                    *v = if *v > 0.0 {
                        *v / p.repetition_penalty
                    } else {
                        *v * p.repetition_penalty
                    };
                }
            }
        }
        for (&t, &n) in &self.generated {
            if let Some(v) = l.get_mut(t as usize) {
                *v -= p.presence_penalty + p.frequency_penalty * n as f32;
            }
        }
        l
    }

    /// Pick the next token from `logits` and remember it for the penalties.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let tok = if self.adjusts() {
            let l = self.adjusted(logits);
            self.pick(&l)
        } else {
            self.pick(logits)
        };
        *self.generated.entry(tok).or_default() += 1;
        tok
    }

    fn pick(&mut self, logits: &[f32]) -> u32 {
        let p = &self.params;
        if p.temperature <= 0.0 || p.top_k == 1 {
            return argmax(logits) as u32;
        }
        // Candidates sorted by logit, best first (ties to the lower id).
        let mut idx: Vec<u32> = (0..logits.len() as u32)
            .filter(|&i| logits[i as usize] > f32::NEG_INFINITY)
            .collect();
        if idx.is_empty() {
            return argmax(logits) as u32;
        }
        idx.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        if p.top_k > 0 {
            idx.truncate(p.top_k);
        }
        let max = logits[idx[0] as usize] as f64;
        let inv_t = 1.0 / p.temperature as f64;
        let mut probs: Vec<f64> = idx
            .iter()
            .map(|&i| ((logits[i as usize] as f64 - max) * inv_t).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= total);
        let mut keep = probs.len();
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            keep = probs
                .iter()
                .position(|&q| {
                    acc += q;
                    acc >= p.top_p as f64
                })
                .map_or(keep, |i| i + 1);
        }
        if p.min_p > 0.0 {
            // probs[0] is the best token's probability.
            let floor = p.min_p as f64 * probs[0];
            keep = keep.min(probs.iter().take_while(|&&q| q >= floor).count().max(1));
        }
        idx.truncate(keep);
        probs.truncate(keep);
        let total: f64 = probs.iter().sum();
        let r = self.next_f64() * total;
        let mut acc = 0.0;
        for (&i, &q) in idx.iter().zip(&probs) {
            acc += q;
            if r < acc {
                return i;
            }
        }
        *idx.last().expect("at least one candidate")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
            seed,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn greedy_top_k_top_p_and_seeds() {
        let logits = [0.0, 3.0, 1.0, 2.9];
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&logits), 1);
        // top_k 2 never leaves {1, 3}.
        let mut s = Sampler::new(params(1.0, 2, 1.0, 7));
        let picks: Vec<u32> = (0..200).map(|_| s.sample(&logits)).collect();
        assert!(picks.iter().all(|&t| t == 1 || t == 3));
        assert!(picks.contains(&1) && picks.contains(&3));
        // The same seed gives the same tokens.
        let mut s2 = Sampler::new(params(1.0, 2, 1.0, 7));
        let again: Vec<u32> = (0..200).map(|_| s2.sample(&logits)).collect();
        assert_eq!(picks, again);
        // A tiny top_p keeps only the best token.
        let mut s = Sampler::new(params(1.0, 0, 0.01, 1));
        assert!((0..50).all(|_| s.sample(&logits) == 1));
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        // p ∝ e^logit: tokens 1 and 3 are close, 0 and 2 far below 0.5 x the best.
        let logits = [0.0, 3.0, 1.0, 2.9];
        let mut s = Sampler::new(SamplingParams {
            min_p: 0.5,
            ..params(1.0, 0, 1.0, 3)
        });
        let picks: Vec<u32> = (0..300).map(|_| s.sample(&logits)).collect();
        assert!(picks.iter().all(|&t| t == 1 || t == 3));
        assert!(picks.contains(&3));
    }

    #[test]
    fn logit_bias_and_penalties_change_greedy_choices() {
        let logits = [0.0, 3.0, 1.0, 2.9];
        // A bias can ban the best token or force another.
        let mut s = Sampler::new(SamplingParams {
            logit_bias: vec![(1, -100.0)],
            ..SamplingParams::default()
        });
        assert_eq!(s.sample(&logits), 3);
        let mut s = Sampler::new(SamplingParams {
            logit_bias: vec![(0, 100.0)],
            ..SamplingParams::default()
        });
        assert_eq!(s.sample(&logits), 0);
        // Frequency penalty: after token 1 is generated, 3 wins (3.0 - 0.2 < 2.9).
        let mut s = Sampler::new(SamplingParams {
            frequency_penalty: 0.2,
            ..SamplingParams::default()
        });
        assert_eq!(s.sample(&logits), 1);
        assert_eq!(s.sample(&logits), 3);
        // Presence counts a token once (1 stays at 2.95 > 2.9), frequency once per occurrence
        // (1 falls to 2.94, then 2.88 < 2.9).
        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 0.05,
            ..SamplingParams::default()
        });
        assert_eq!(
            [s.sample(&logits), s.sample(&logits), s.sample(&logits)],
            [1, 1, 1]
        );
        let mut s = Sampler::new(SamplingParams {
            frequency_penalty: 0.06,
            ..SamplingParams::default()
        });
        assert_eq!(
            [s.sample(&logits), s.sample(&logits), s.sample(&logits)],
            [1, 1, 3]
        );
    }

    #[test]
    fn repetition_penalty_covers_the_prompt() {
        let logits = [0.0, 3.0, 1.0, 2.9];
        // 3.0 / 1.1 = 2.73 < 2.9: a prompt token loses to the runner-up.
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 1.1,
            ..SamplingParams::default()
        })
        .with_prompt(&[1]);
        assert_eq!(s.sample(&logits), 3);
        // Negative logits are multiplied (pushed further down).
        let neg = [-1.0, -1.05];
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 1.2,
            ..SamplingParams::default()
        })
        .with_prompt(&[0]);
        assert_eq!(s.sample(&neg), 1);
    }

    #[test]
    fn validation_names_the_parameter() {
        let bad = |p: SamplingParams| p.validate().unwrap_err();
        assert!(bad(params(-1.0, 0, 1.0, 0)).contains("temperature"));
        assert!(bad(params(f32::NAN, 0, 1.0, 0)).contains("temperature"));
        assert!(bad(params(1.0, 0, 0.0, 0)).contains("top_p"));
        assert!(bad(SamplingParams {
            min_p: 2.0,
            ..SamplingParams::default()
        })
        .contains("min_p"));
        assert!(bad(SamplingParams {
            repetition_penalty: 0.0,
            ..SamplingParams::default()
        })
        .contains("repetition_penalty"));
        assert!(SamplingParams::default().validate().is_ok());
    }
}
