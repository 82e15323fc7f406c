//! Constrained decoding: a per-request object that says which tokens may come next (JSON mode,
//! a JSON schema, a forced tool call) and follows the tokens actually sampled.

/// A token-level constraint. The engine calls `mask` before sampling each token and `commit`
/// after, from its compute thread.
pub trait TokenConstraint: Send {
    /// Set the logits of the tokens not allowed next to negative infinity. `logits` has the
    /// model's vocabulary size. An error ends the request with that message.
    fn mask(&mut self, logits: &mut [f32]) -> Result<(), String>;
    /// Advance past `token`, which was sampled from the masked logits.
    fn commit(&mut self, token: u32) -> Result<(), String>;
    /// True once the constrained output is complete: the engine then ends the request with
    /// `FinishReason::Stop`.
    fn is_finished(&self) -> bool;
}
