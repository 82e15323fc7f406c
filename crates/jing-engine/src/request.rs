//! What a caller asks the serving engine for, and what comes back: a request is a tokenized
//! prompt with its sampling settings; the answer is a stream of events, one per generated
//! token, then exactly one `Finished` (or one `Error`).

use crate::{SamplingParams, TokenConstraint};

/// One generation: a tokenized prompt, how many tokens at most, and how to pick them.
pub struct GenerationRequest {
    /// The prompt, already rendered and tokenized (BOS included where the model wants one).
    pub prompt: Vec<u32>,
    /// The most tokens to generate (the stop token, when one ends the generation, counts).
    pub max_tokens: usize,
    pub params: SamplingParams,
    /// Token ids that end the generation (EOS and `generation_config.json`'s `eos_token_id`
    /// list). The stop token is reported in `Finish::stop_token`, not as a `Token` event.
    pub stop_ids: Vec<u32>,
    /// Report the log-probability of each generated token and of the `k` most likely
    /// alternatives (OpenAI's `logprobs` with `top_logprobs: k`; `Some(0)` for the chosen
    /// token only). Log-probabilities are those of the model (a log-softmax of the raw
    /// logits), before penalties, bias or constraints.
    pub logprobs: Option<usize>,
    /// Restrict the tokens that may be sampled (JSON mode, JSON schema, forced tool calls).
    pub constraint: Option<Box<dyn TokenConstraint>>,
}

impl GenerationRequest {
    /// A request with default (greedy) sampling and no stop ids.
    pub fn new(prompt: Vec<u32>, max_tokens: usize) -> GenerationRequest {
        GenerationRequest {
            prompt,
            max_tokens,
            params: SamplingParams::default(),
            stop_ids: Vec::new(),
            logprobs: None,
            constraint: None,
        }
    }
}

impl std::fmt::Debug for GenerationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationRequest")
            .field("prompt_tokens", &self.prompt.len())
            .field("max_tokens", &self.max_tokens)
            .field("params", &self.params)
            .field("stop_ids", &self.stop_ids)
            .field("logprobs", &self.logprobs)
            .field("constraint", &self.constraint.is_some())
            .finish()
    }
}

/// The log-probability of a chosen token and of the most likely alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub logprob: f32,
    /// The `k` most likely tokens with their log-probabilities, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// One generated token.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedToken {
    pub id: u32,
    pub logprob: Option<TokenLogprob>,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop id was sampled, or the constraint was complete.
    Stop,
    /// `max_tokens` were generated, or the context is full.
    Length,
}

/// Token counts of a finished request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose cache rows were reused from an earlier request (prefix cache).
    pub cached_tokens: usize,
    /// Generated tokens, the stop token included.
    pub completion_tokens: usize,
}

/// What the scheduler decided when it gave a request its place in the running batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// Prompt tokens whose cache rows were reused (prefix cache).
    pub cached_tokens: usize,
    /// Time spent waiting for the place.
    pub queue_time: std::time::Duration,
}

/// A request's [`Admission`], readable by the caller once the request is running (and after
/// it ended, even if its events were dropped early: a stop string matched by the caller).
#[derive(Clone, Debug, Default)]
pub struct AdmissionInfo(pub(crate) std::sync::Arc<std::sync::OnceLock<Admission>>);

impl AdmissionInfo {
    /// `None` while the request waits.
    pub fn get(&self) -> Option<Admission> {
        self.0.get().copied()
    }
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    pub reason: FinishReason,
    /// The stop id that ended the generation, if one did.
    pub stop_token: Option<u32>,
    pub usage: Usage,
    /// Time spent waiting for a place in the running batch.
    pub queue_time: std::time::Duration,
}

/// What the engine sends back for a request, in order: zero or more `Token`s, then one
/// `Finished` or one `Error`.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Token(GeneratedToken),
    Finished(Finish),
    /// The request failed inside the engine (the message says why); other requests go on.
    Error(String),
}
