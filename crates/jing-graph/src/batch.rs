/// The tokens one step computes. Token `i` is `tokens[i]` at absolute position `positions[i]`
/// of the sequence held in cache slot `slots[i]`; it attends to positions `0..=positions[i]`
/// of that slot. Tokens of several sequences may be mixed (continuous batching).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub tokens: Vec<u32>,
    pub positions: Vec<usize>,
    pub slots: Vec<usize>,
    /// Host-provided f32 inputs by name (e.g. the hidden states fed to the MTP module),
    /// each `[n_tokens, width]` row-major.
    pub inputs: Vec<(String, Vec<f32>)>,
}

impl Batch {
    /// One sequence in `slot`, tokens at consecutive positions starting at `start`.
    pub fn sequence(slot: usize, start: usize, tokens: &[u32]) -> Batch {
        Batch {
            tokens: tokens.to_vec(),
            positions: (start..start + tokens.len()).collect(),
            slots: vec![slot; tokens.len()],
            inputs: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The host input called `name`.
    pub fn input(&self, name: &str) -> Option<&[f32]> {
        self.inputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}
