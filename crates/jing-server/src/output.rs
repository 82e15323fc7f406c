//! One choice's generated tokens turned into what the API returns, token by token:
//!
//! ```text
//! token id ─► detokenize ─► reasoning split ─► answer ─► stop strings ─► tool calls ─► content
//!   (special tokens        (<think>…</think>   │                                     └► tool_calls
//!    skipped, UTF-8 safe)   ─► reasoning_content)
//! ```
//!
//! - Special tokens produce no text (`skip_special_tokens`, as every OpenAI-compatible server
//!   does), except the ones a parser needs: `<think>`/`</think>` when the output may reason,
//!   the tool-call markers when tool calls are parsed.
//! - Stop strings apply to the answer only, never to the reasoning (a `"\n\n"` stop would
//!   otherwise end an R1 answer before it starts); they are never emitted, and text that could
//!   still become one is held back until it cannot.
//! - Tool calls are parsed from the answer with the streaming DeepSeek parser; `finish_reason`
//!   is `tool_calls` only when at least one valid call came out.
//!
//! Everything here is synchronous and never fails: a decoding error yields no text.

use std::collections::HashSet;
use std::sync::Arc;

use jing_engine::{GeneratedToken, StopMatcher};
use jing_tokenizer::reasoning::{ReasoningConfig, ReasoningMode, ReasoningSplitter};
use jing_tokenizer::tool_calls::{ToolCallDelta, ToolCallParser};
use jing_tokenizer::IncrementalDecoder;
use serde_json::Value;

use crate::model::Model;
use crate::types::response::{LogprobEntry, TopLogprob};

/// How to turn one choice's tokens into output.
#[derive(Clone, Debug)]
pub struct OutputOptions {
    /// Split reasoning from the answer (chat); `None`: all text is answer (text completions).
    pub reasoning: Option<ReasoningMode>,
    /// Parse tool calls out of the answer.
    pub tool_calls: bool,
    pub stop: Vec<String>,
    /// Report log-probabilities.
    pub logprobs: bool,
    /// Seed of the tool-call ids.
    pub id_seed: u64,
}

/// What one token (or the end of the output) released.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Piece {
    pub reasoning: String,
    pub content: String,
    /// OpenAI streaming `delta.tool_calls` entries.
    pub tool_calls: Vec<Value>,
    pub logprobs: Vec<LogprobEntry>,
    /// A stop string matched: the output is complete.
    pub stopped: bool,
}

impl Piece {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty()
            && self.content.is_empty()
            && self.tool_calls.is_empty()
            && self.logprobs.is_empty()
    }
}

/// The output pipeline of one choice.
pub struct ChoiceOutput {
    model: Arc<Model>,
    decoder: IncrementalDecoder,
    splitter: Option<ReasoningSplitter>,
    stops: StopMatcher,
    tools: Option<ToolCallParser>,
    logprobs: bool,
    /// Special tokens that still produce text (markers a parser reads).
    keep: HashSet<u32>,
    done: bool,
    /// Tokens received.
    tokens: usize,
}

impl ChoiceOutput {
    pub fn new(model: Arc<Model>, opts: &OutputOptions) -> ChoiceOutput {
        let mut keep = HashSet::new();
        let splitter = opts.reasoning.map(|mode| {
            if mode != ReasoningMode::Disabled {
                keep.extend(model.think_ids.iter().copied());
            }
            ReasoningSplitter::new(ReasoningConfig::new(mode))
        });
        let tools = opts.tool_calls.then(|| {
            keep.extend(model.tool_ids.iter().copied());
            ToolCallParser::new(model.tool_call_format, opts.id_seed)
        });
        ChoiceOutput {
            decoder: model.tokenizer.incremental_decoder(false),
            model,
            splitter,
            stops: StopMatcher::new(&opts.stop),
            tools,
            logprobs: opts.logprobs,
            keep,
            done: false,
            tokens: 0,
        }
    }

    /// Tokens received so far.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Tokens counted as reasoning (part of the completion tokens).
    pub fn reasoning_tokens(&self) -> usize {
        self.splitter
            .as_ref()
            .map_or(0, |s| s.reasoning_tokens() as usize)
    }

    /// Whether the output reasons: forced by the prompt, or it opened a reasoning block.
    pub fn reasons(&self) -> bool {
        self.splitter
            .as_ref()
            .is_some_and(|s| s.config().mode == ReasoningMode::Forced || s.reasoning_tokens() > 0)
    }

    /// Whether the reasoning is forced from the first token (`reasoning_content` is then on
    /// every delta of the stream).
    pub fn reasoning_forced(&self) -> bool {
        self.splitter
            .as_ref()
            .is_some_and(|s| s.config().mode == ReasoningMode::Forced)
    }

    /// The valid tool calls, as `message.tool_calls` entries.
    pub fn tool_calls(&self) -> Vec<Value> {
        self.tools.as_ref().map_or_else(Vec::new, |p| {
            p.output()
                .tool_calls
                .iter()
                .map(|c| c.to_openai_json())
                .collect()
        })
    }

    fn shows(&self, id: u32) -> bool {
        !self.model.tokenizer.is_special(id) || self.keep.contains(&id)
    }

    fn logprob(&self, tok: &GeneratedToken) -> Option<LogprobEntry> {
        let lp = tok.logprob.as_ref()?;
        let t = &self.model.tokens;
        // JSON has no -inf; vLLM clamps the same way.
        let clamp = |x: f32| if x.is_finite() { x } else { -9999.0 };
        Some(LogprobEntry {
            token: t.text(tok.id),
            logprob: clamp(lp.logprob),
            bytes: t.bytes(tok.id).to_vec(),
            top_logprobs: lp
                .top
                .iter()
                .map(|&(id, l)| TopLogprob {
                    token: t.text(id),
                    logprob: clamp(l),
                    bytes: t.bytes(id).to_vec(),
                })
                .collect(),
        })
    }

    /// Take the next generated token.
    pub fn push(&mut self, tok: &GeneratedToken) -> Piece {
        let mut piece = Piece::default();
        if self.done {
            return piece;
        }
        self.tokens += 1;
        if self.logprobs {
            piece.logprobs.extend(self.logprob(tok));
        }
        let text = if self.shows(tok.id) {
            self.decoder.push(tok.id).ok().flatten().unwrap_or_default()
        } else {
            String::new()
        };
        match self.splitter.as_mut() {
            Some(s) => {
                let d = s.push_token(&text);
                piece.reasoning = d.reasoning;
                self.answer(&d.answer, &mut piece);
            }
            None => self.answer(&text, &mut piece),
        }
        piece
    }

    /// The generation ended: release everything held back.
    pub fn finish(&mut self) -> Piece {
        let mut piece = Piece::default();
        if self.done {
            return piece;
        }
        let tail = self.decoder.flush().unwrap_or_default();
        if let Some(s) = self.splitter.as_mut() {
            let d = s.push(&tail);
            piece.reasoning.push_str(&d.reasoning);
            self.answer(&d.answer, &mut piece);
            if !self.done {
                if let Some(s) = self.splitter.as_mut() {
                    let d = s.finish();
                    piece.reasoning.push_str(&d.reasoning);
                    self.answer(&d.answer, &mut piece);
                }
            }
        } else {
            self.answer(&tail, &mut piece);
        }
        if !self.done {
            let rest = self.stops.finish();
            self.content(&rest, &mut piece);
            self.close_tools(&mut piece);
            self.done = true;
        }
        piece
    }

    /// Answer text: through the stop strings, then the tool-call parser.
    fn answer(&mut self, text: &str, piece: &mut Piece) {
        if text.is_empty() || self.done {
            return;
        }
        let out = self.stops.push(text);
        self.content(&out.text, piece);
        if out.stopped_by.is_some() {
            // Whatever the splitter still holds comes after the stop string: it is dropped.
            self.close_tools(piece);
            self.done = true;
            piece.stopped = true;
        }
    }

    fn content(&mut self, text: &str, piece: &mut Piece) {
        if text.is_empty() {
            return;
        }
        match self.tools.as_mut() {
            Some(p) => {
                let deltas = p.push(text);
                deliver(deltas, piece);
            }
            None => piece.content.push_str(text),
        }
    }

    fn close_tools(&mut self, piece: &mut Piece) {
        if let Some(p) = self.tools.as_mut() {
            let deltas = p.finish();
            deliver(deltas, piece);
        }
    }
}

fn deliver(deltas: Vec<ToolCallDelta>, piece: &mut Piece) {
    for d in deltas {
        match d {
            ToolCallDelta::Content(s) => piece.content.push_str(&s),
            // The raw text of an invalid call follows as content.
            ToolCallDelta::Invalid { .. } => {}
            other => piece.tool_calls.extend(other.to_openai_json()),
        }
    }
}
