//! Rotary frequency tables from HF config fields, computed in f32 as transformers does, so
//! that angles match the reference to the last bit where possible.

use jing_graph::{RopeFreqs, RopeStyle};

/// YaRN parameters (`rope_scaling` / `rope_parameters` with `type` or `rope_type` "yarn").
#[derive(Clone, Debug, PartialEq)]
pub struct Yarn {
    pub factor: f64,
    pub original_max_position_embeddings: usize,
    pub beta_fast: f64,
    pub beta_slow: f64,
    pub mscale: Option<f64>,
    pub mscale_all_dim: Option<f64>,
    pub attention_factor: Option<f64>,
    pub truncate: bool,
}

/// YaRN's magnitude correction `0.1 · mscale · ln(scale) + 1` (1 when not extending).
pub fn yarn_get_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

/// `theta^(-2j/dim)` for `j in 0..dim/2`, in f32 like `base ** (arange(0, dim, 2).float() / dim)`.
fn base_inv_freq(theta: f64, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|j| 1.0 / (theta as f32).powf((2 * j) as f32 / dim as f32))
        .collect()
}

/// Plain RoPE.
pub fn default_freqs(theta: f64, dim: usize, style: RopeStyle) -> RopeFreqs {
    RopeFreqs {
        inv_freq: base_inv_freq(theta, dim),
        attention_factor: 1.0,
        style,
    }
}

/// Base frequencies each divided by its factor (llama.cpp's `rope_freqs`: Llama-3 scaling as
/// stored in GGUF).
pub fn factor_freqs(theta: f64, dim: usize, factors: &[f32], style: RopeStyle) -> RopeFreqs {
    RopeFreqs {
        inv_freq: base_inv_freq(theta, dim)
            .iter()
            .zip(factors)
            .map(|(&f, &k)| f / k)
            .collect(),
        attention_factor: 1.0,
        style,
    }
}

/// YaRN: frequencies below the correction range keep their value, those above are divided by
/// `factor`, with a linear blend between; cos/sin are scaled by the attention factor.
pub fn yarn_freqs(theta: f64, dim: usize, y: &Yarn, style: RopeStyle) -> RopeFreqs {
    let pos_freqs: Vec<f32> = (0..dim / 2)
        .map(|j| (theta as f32).powf((2 * j) as f32 / dim as f32))
        .collect();
    let correction_dim = |rotations: f64| {
        dim as f64
            * (y.original_max_position_embeddings as f64 / (rotations * 2.0 * std::f64::consts::PI))
                .ln()
            / (2.0 * theta.ln())
    };
    let (mut low, mut high) = (correction_dim(y.beta_fast), correction_dim(y.beta_slow));
    if y.truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0);
    let mut high = high.min(dim as f64 - 1.0);
    if low == high {
        high += 0.001;
    }
    let inv_freq = pos_freqs
        .iter()
        .enumerate()
        .map(|(j, &p)| {
            let ramp = ((j as f32 - low as f32) / (high as f32 - low as f32)).clamp(0.0, 1.0);
            let extrapolation = 1.0 - ramp;
            let inv_extra = 1.0 / p;
            let inv_inter = 1.0 / (y.factor as f32 * p);
            inv_inter * (1.0 - extrapolation) + inv_extra * extrapolation
        })
        .collect();
    let attention_factor = match (y.attention_factor, y.mscale, y.mscale_all_dim) {
        (Some(a), _, _) => a,
        (None, Some(m), Some(ma)) if m != 0.0 && ma != 0.0 => {
            yarn_get_mscale(y.factor, m) / yarn_get_mscale(y.factor, ma)
        }
        _ => yarn_get_mscale(y.factor, 1.0),
    };
    RopeFreqs {
        inv_freq,
        attention_factor: attention_factor as f32,
        style,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepseek_v3_yarn_keeps_low_pairs_and_divides_high_pairs() {
        let y = Yarn {
            factor: 40.0,
            original_max_position_embeddings: 4096,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: Some(1.0),
            mscale_all_dim: Some(1.0),
            attention_factor: None,
            truncate: true,
        };
        let f = yarn_freqs(10000.0, 64, &y, RopeStyle::Interleaved);
        let base = default_freqs(10000.0, 64, RopeStyle::Interleaved);
        // Pairs 0..=10 keep the original frequency, pairs >= 23 are divided by 40.
        for j in 0..=10 {
            assert_eq!(f.inv_freq[j], base.inv_freq[j]);
        }
        for j in 23..32 {
            assert!((f.inv_freq[j] - base.inv_freq[j] / 40.0).abs() <= 1e-6 * base.inv_freq[j]);
        }
        assert_eq!(f.attention_factor, 1.0);
        let m = yarn_get_mscale(40.0, 1.0);
        assert!((m * m - 1.873854).abs() < 1e-6);
    }

    #[test]
    fn freq_factors_reproduce_llama3_scaling() {
        // GGUF stores Llama-3 scaling as one divisor per frequency (llama.cpp's rope_freqs).
        let s = Llama3Scaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 256.0,
        };
        let base = default_freqs(500000.0, 8, RopeStyle::Neox);
        let l3 = llama3_freqs(500000.0, 8, &s, RopeStyle::Neox);
        let factors: Vec<f32> = base
            .inv_freq
            .iter()
            .zip(&l3.inv_freq)
            .map(|(b, l)| b / l)
            .collect();
        let f = factor_freqs(500000.0, 8, &factors, RopeStyle::Interleaved);
        for (a, b) in f.inv_freq.iter().zip(&l3.inv_freq) {
            assert!((a - b).abs() <= 1e-6 * b, "{a} vs {b}");
        }
        assert_eq!(f.style, RopeStyle::Interleaved);
    }
}

/// Llama-3's frequency remapping (`rope_type: llama3`).
#[derive(Clone, Debug, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

/// Llama-3 RoPE: wavelengths longer than `original / low_freq_factor` are divided by `factor`,
/// shorter than `original / high_freq_factor` kept, and those between blended smoothly; f32
/// arithmetic in the order transformers uses.
pub fn llama3_freqs(theta: f64, dim: usize, s: &Llama3Scaling, style: RopeStyle) -> RopeFreqs {
    let base = base_inv_freq(theta, dim);
    let (factor, low, high, old) = (
        s.factor as f32,
        s.low_freq_factor as f32,
        s.high_freq_factor as f32,
        s.original_max_position_embeddings as f32,
    );
    let low_freq_wavelen = old / low;
    let high_freq_wavelen = old / high;
    let inv_freq = base
        .iter()
        .map(|&f| {
            let wavelen = 2.0 * std::f32::consts::PI / f;
            let scaled = if wavelen > low_freq_wavelen {
                f / factor
            } else {
                f
            };
            let smooth = (old / wavelen - low) / (high - low);
            let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
            // Wavelengths are finite and positive, so "not below and not above" is "within".
            let medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
            if medium {
                smoothed
            } else {
                scaled
            }
        })
        .collect();
    RopeFreqs {
        inv_freq,
        attention_factor: 1.0,
        style,
    }
}
