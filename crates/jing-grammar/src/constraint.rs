//! [`GrammarConstraint`]: an llguidance matcher behind jing's [`TokenConstraint`].

use jing_engine::TokenConstraint;
use llguidance::Matcher;

use crate::first_line;

/// One request's constraint: follows the sampled tokens through the grammar and masks the
/// logits of the tokens that cannot come next.
pub(crate) struct GrammarConstraint {
    matcher: Matcher,
    /// The tokenizer's vocabulary size: ids from here up to the model's vocabulary size are
    /// embedding padding with no text, never allowed.
    vocab_size: usize,
    /// The ids that end generation; the only tokens allowed once the output is complete.
    eos_ids: Vec<u32>,
}

impl GrammarConstraint {
    pub(crate) fn new(matcher: Matcher, vocab_size: usize, eos_ids: Vec<u32>) -> Self {
        Self {
            matcher,
            vocab_size,
            eos_ids,
        }
    }

    fn error(&self, what: &str) -> String {
        let detail = self
            .matcher
            .get_error()
            .map(|e| first_line(&e).to_owned())
            .unwrap_or_else(|| "unknown error".into());
        format!("constrained decoding failed {what}: {detail}")
    }
}

impl TokenConstraint for GrammarConstraint {
    /// Cost: one llguidance mask computation (tens of microseconds for a JSON grammar over a
    /// 128k vocabulary) plus one pass over `logits`.
    fn mask(&mut self, logits: &mut [f32]) -> Result<(), String> {
        if self.matcher.is_stopped() && !self.matcher.is_error() {
            // Complete: only EOS may follow (the engine normally stops before asking).
            let mut any = false;
            for (id, logit) in logits.iter_mut().enumerate() {
                let eos = u32::try_from(id).is_ok_and(|id| self.eos_ids.contains(&id));
                any |= eos;
                if !eos {
                    *logit = f32::NEG_INFINITY;
                }
            }
            return if any {
                Ok(())
            } else {
                Err(
                    "the constrained output is complete but no end-of-sequence id fits the \
                     logits"
                        .into(),
                )
            };
        }
        let allowed = self
            .matcher
            .compute_mask()
            .map_err(|_| self.error("computing the token mask"))?;
        // `allowed` has one bit per tokenizer id, 32 ids per word; bit `i` of word `w` is id
        // `32 w + i`. Ids at or past `vocab_size` (model padding) stay masked.
        let words = allowed.as_slice();
        let mut any = false;
        for (w, chunk) in logits.chunks_mut(32).enumerate() {
            let start = w * 32;
            let mut bits = words.get(w).copied().unwrap_or(0);
            if start + 32 > self.vocab_size {
                let valid = self.vocab_size.saturating_sub(start);
                bits &= if valid >= 32 {
                    u32::MAX
                } else {
                    (1u32 << valid) - 1
                };
            }
            if bits == u32::MAX && chunk.len() == 32 {
                any = true;
                continue;
            }
            any |= bits != 0;
            for (bit, logit) in chunk.iter_mut().enumerate() {
                if bits & (1 << bit) == 0 {
                    *logit = f32::NEG_INFINITY;
                }
            }
        }
        if any {
            Ok(())
        } else {
            Err(format!(
                "constrained decoding: no token allowed by the grammar lies within the {} logits",
                logits.len()
            ))
        }
    }

    fn commit(&mut self, token: u32) -> Result<(), String> {
        if self.matcher.is_stopped() && !self.matcher.is_error() {
            return if self.eos_ids.contains(&token) {
                Ok(())
            } else {
                Err(format!(
                    "constrained decoding: token {token} after the constrained output was \
                     complete; only an end-of-sequence token may follow"
                ))
            };
        }
        if token as usize >= self.vocab_size {
            return Err(format!(
                "constrained decoding: token {token} is past the tokenizer's {} tokens; the \
                 mask never allows it",
                self.vocab_size
            ));
        }
        self.matcher
            .consume_token(token)
            .map_err(|_| self.error(&format!("at token {token}")))
    }

    fn is_finished(&self) -> bool {
        self.matcher.is_stopped() && !self.matcher.is_error()
    }
}
