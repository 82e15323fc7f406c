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
        let (mut cos, mut sin) = (vec![0.0; half], vec![0.0; half]);
        self.angles(pos, &mut cos, &mut sin);
        self.rotate(x, &cos, &sin);
    }

    /// The scaled cos and sin of each pair's angle at `pos` (`dim() / 2` each): what
    /// [`RopeFreqs::rotate`] applies. Every head of a token shares them.
    pub fn angles(&self, pos: usize, cos: &mut [f32], sin: &mut [f32]) {
        for ((&f, c), s) in self.inv_freq.iter().zip(cos.iter_mut()).zip(sin.iter_mut()) {
            let angle = pos as f32 * f;
            let (sn, cs) = angle.sin_cos();
            (*c, *s) = (cs * self.attention_factor, sn * self.attention_factor);
        }
    }

    /// Rotate `x` (`dim()` wide) by the angles from [`RopeFreqs::angles`].
    pub fn rotate(&self, x: &mut [f32], cos: &[f32], sin: &[f32]) {
        let half = self.inv_freq.len();
        debug_assert_eq!(x.len(), 2 * half);
        for (j, (&cos, &sin)) in cos.iter().zip(sin).enumerate().take(half) {
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
