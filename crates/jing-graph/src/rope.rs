/// How the rotary dimensions are paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(x[2j], x[2j+1])` rotate by angle j (GPT-J style). DeepSeek's MLA
    /// checkpoints expect this on their raw layout.
    Interleaved,
    /// Halves `(x[j], x[j + d/2])` rotate by angle j (GPT-NeoX style; Llama and Qwen2 in HF).
    Neox,
}

/// Rotary frequencies: pair `j` of a token at position `p` rotates by `p · inv_freq[j]`, and
/// cos/sin are multiplied by `attention_factor` (YaRN's magnitude correction; 1 otherwise).
/// Computed once per model (YaRN, Llama-3 scaling and plain RoPE all reduce to this).
#[derive(Clone, Debug, PartialEq)]
pub struct RopeFreqs {
    pub inv_freq: Vec<f32>,
    pub attention_factor: f32,
    pub style: RopeStyle,
}

impl RopeFreqs {
    /// Rotary width (twice the number of frequencies).
    pub fn dim(&self) -> usize {
        self.inv_freq.len() * 2
    }

    /// Rotate one head vector `x` (`dim()` wide) in place for position `pos`, computing the
    /// angles in f32 exactly as the reference implementations do.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let half = self.inv_freq.len();
        debug_assert_eq!(x.len(), 2 * half);
        for (j, &f) in self.inv_freq.iter().enumerate() {
            let angle = pos as f32 * f;
            let (sin, cos) = angle.sin_cos();
            let (cos, sin) = (cos * self.attention_factor, sin * self.attention_factor);
            let (a, b) = match self.style {
                RopeStyle::Interleaved => (2 * j, 2 * j + 1),
                RopeStyle::Neox => (j, j + half),
            };
            let (x0, x1) = (x[a], x[b]);
            x[a] = x0 * cos - x1 * sin;
            x[b] = x1 * cos + x0 * sin;
        }
    }
}
