//! Splitting generated text into reasoning and answer (`<think>...</think>`), streaming.
//!
//! DeepSeek-R1-style models write a chain of thought, close it with
//! `</think>`, then write the answer. The OpenAI-compatible API returns the
//! first part as `reasoning_content` and the second as `content`, both without
//! the tags. [`ReasoningSplitter`] does that split on the *text* coming out of
//! the incremental detokenizer, chunk by chunk, and [`ReasoningConfig::split`]
//! does it in one shot; for every way of cutting a text into chunks the
//! concatenated streamed [`Delta`]s equal the one-shot split.
//!
//! # Where the reasoning starts: [`ReasoningMode`]
//!
//! - [`Forced`](ReasoningMode::Forced): the prompt already opened the
//!   reasoning. R1 / R1-Distill templates end the generation prompt with
//!   `<think>\n` and V3.1 in thinking mode with `<think>`, so the model only
//!   ever emits `</think>`. Everything before the first end tag is reasoning;
//!   a start tag the model emits anyway as the very first thing (after
//!   whitespace) is dropped (R1-0528 emits it even when it is forced). Text
//!   with no end tag at all is all reasoning (e.g. cut by `max_tokens`).
//! - [`Optional`](ReasoningMode::Optional): the model may open the reasoning
//!   itself. There is reasoning only if the output *begins* (after
//!   whitespace) with the start tag; otherwise the whole output is answer,
//!   verbatim, and later tags are plain answer text. Text before a start tag
//!   thus makes the tag ordinary text: reasoning may only come first, which is
//!   what the API's "no `reasoning_content` after `content`" rule needs.
//! - [`Disabled`](ReasoningMode::Disabled): no reasoning (V3, V3.1
//!   non-thinking): everything is answer, verbatim.
//!
//! Only the first end tag counts; later ones are answer text.
//!
//! # Whitespace around the tags: [`Whitespace`]
//!
//! R1 writes `<think>\n…reasoning…\n</think>\n\nanswer`. vLLM's `deepseek_r1`
//! parser and SGLang's `DeepSeekR1Detector` keep those newlines byte for byte
//! (users then see `reasoning_content` start with `"\n"` and `content` start
//! with `"\n\n"`), while the published examples of DeepSeek's API show both
//! fields without them (not checked against a live response). The default,
//! [`Whitespace::Trim`], follows DeepSeek's API and removes exactly:
//! - one `"\n"` at the very start of the reasoning;
//! - then one `"\n"` at the very end of the reasoning, only when it is
//!   directly followed by the end tag (a truncated reasoning keeps it);
//! - every `"\n"` at the start of the answer that follows an end tag (an
//!   answer in a text without reasoning is never touched).
//!
//! [`Whitespace::Keep`] keeps every byte outside the tags, as vLLM does.
//! Whitespace before a start tag at the beginning of the output is dropped
//! with the tag in both policies.
//!
//! # Holding back
//!
//! A chunk may end in the middle of a tag (`"…so</thi"`). The splitter holds
//! back the shortest tail that could still become a tag (and, with
//! [`Whitespace::Trim`], a trailing `"\n"` of the reasoning that could turn out
//! to precede `</think>`) and releases it as soon as the next chunk decides;
//! [`ReasoningSplitter::finish`] releases whatever is still held: as reasoning
//! if the output ended inside the reasoning.
//!
//! # Counting reasoning tokens
//!
//! [`ReasoningSplitter::push_token`] takes the text of one generated token
//! (possibly empty) and counts the token as a reasoning token when the token
//! *starts* inside the reasoning region: the reasoning region is the output
//! from its beginning up to and including the end tag (the start tag,
//! the end tag and the whitespace trimmed next to them belong to it). As the
//! region is a prefix of the output, for a non-empty token this is the same as
//! "any of the token's text lies in the reasoning region", so the `</think>`
//! token counts as reasoning and the `"\n\n"` after it does not. In
//! [`Optional`](ReasoningMode::Optional) mode, tokens seen before the splitter
//! knows whether a start tag follows are counted once it knows. Tokens of a
//! [`Disabled`](ReasoningMode::Disabled) splitter never count.
//!
//! # Example
//!
//! ```
//! use jing_tokenizer::reasoning::{ReasoningConfig, ReasoningSplitter};
//!
//! let config = ReasoningConfig::deepseek_r1();
//! let mut splitter = ReasoningSplitter::new(config.clone());
//! let mut reasoning = String::new();
//! let mut answer = String::new();
//! for chunk in ["Let me think.\n</th", "ink>\n\nThe answer", " is 42."] {
//!     let delta = splitter.push(chunk);
//!     reasoning.push_str(&delta.reasoning);
//!     answer.push_str(&delta.answer);
//! }
//! let delta = splitter.finish();
//! reasoning.push_str(&delta.reasoning);
//! answer.push_str(&delta.answer);
//! assert_eq!(reasoning, "Let me think.");
//! assert_eq!(answer, "The answer is 42.");
//! assert_eq!(
//!     config.split("Let me think.\n</think>\n\nThe answer is 42."),
//!     (reasoning, answer)
//! );
//! ```

/// The tag DeepSeek reasoning models open their chain of thought with.
pub const THINK_START: &str = "<think>";
/// The tag DeepSeek reasoning models close their chain of thought with.
pub const THINK_END: &str = "</think>";

/// Whether and how the generated text starts with reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasoningMode {
    /// No reasoning: all text is answer (DeepSeek-V3, V3.1 non-thinking).
    Disabled,
    /// The prompt opened the reasoning (R1 / R1-Distill `<think>\n`, V3.1
    /// thinking `<think>`): text is reasoning until the end tag.
    Forced,
    /// The model may open the reasoning itself: there is reasoning only if
    /// the output begins, after whitespace, with the start tag.
    Optional,
}

/// What to do with the newlines the model writes next to the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Whitespace {
    /// Keep every byte outside the tags (vLLM, SGLang).
    Keep,
    /// Drop one leading and one trailing `"\n"` of the reasoning and the
    /// leading `"\n"`s of the answer after the end tag (DeepSeek's API); see
    /// the [module documentation](self) for the exact rule.
    Trim,
}

/// How to split: the tags, the [`ReasoningMode`] and the [`Whitespace`]
/// policy.
///
/// An empty tag never matches: with an empty `end_tag` a
/// [`Forced`](ReasoningMode::Forced) splitter returns everything as
/// reasoning, with an empty `start_tag` an
/// [`Optional`](ReasoningMode::Optional) one returns everything as answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReasoningConfig {
    /// The tag that opens the reasoning, [`THINK_START`] by default.
    pub start_tag: String,
    /// The tag that closes the reasoning, [`THINK_END`] by default.
    pub end_tag: String,
    /// Where the reasoning starts.
    pub mode: ReasoningMode,
    /// What to do with the newlines next to the tags.
    pub whitespace: Whitespace,
}

impl ReasoningConfig {
    /// `<think>`/`</think>` tags, the given mode, [`Whitespace::Trim`].
    pub fn new(mode: ReasoningMode) -> Self {
        Self {
            start_tag: THINK_START.to_owned(),
            end_tag: THINK_END.to_owned(),
            mode,
            whitespace: Whitespace::Trim,
        }
    }

    /// DeepSeek-R1, R1-Distill and V3.1 thinking mode: the prompt forces the
    /// opening tag ([`ReasoningMode::Forced`], [`Whitespace::Trim`]).
    pub fn deepseek_r1() -> Self {
        Self::new(ReasoningMode::Forced)
    }

    /// A model without reasoning: everything is answer.
    pub fn disabled() -> Self {
        Self::new(ReasoningMode::Disabled)
    }

    /// The same configuration with another whitespace policy.
    pub fn with_whitespace(mut self, whitespace: Whitespace) -> Self {
        self.whitespace = whitespace;
        self
    }

    /// Splits a complete output into `(reasoning, answer)`.
    ///
    /// Equal to pushing `text` into a [`ReasoningSplitter`] in any number of
    /// pieces and concatenating the deltas, [`finish`](ReasoningSplitter::finish)
    /// included.
    pub fn split(&self, text: &str) -> (String, String) {
        let mut splitter = ReasoningSplitter::new(self.clone());
        let mut delta = splitter.push(text);
        delta.append(splitter.finish());
        (delta.reasoning, delta.answer)
    }
}

impl Default for ReasoningConfig {
    /// [`ReasoningConfig::deepseek_r1`].
    fn default() -> Self {
        Self::deepseek_r1()
    }
}

/// The text one push released: reasoning first, then answer.
///
/// Within one delta all of `reasoning` comes before all of `answer` in the
/// output, and once a delta has had answer text no later delta has
/// reasoning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Delta {
    /// Released reasoning text (tags removed).
    pub reasoning: String,
    /// Released answer text (tags removed).
    pub answer: String,
}

impl Delta {
    /// Whether the delta carries no text at all.
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.answer.is_empty()
    }

    /// Appends a later delta to this one.
    pub fn append(&mut self, later: Delta) {
        self.reasoning.push_str(&later.reasoning);
        self.answer.push_str(&later.answer);
    }
}

/// Where a [`ReasoningSplitter`] is in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// At the start of the output, waiting to see whether a start tag comes.
    Undecided,
    /// Inside the reasoning.
    Reasoning,
    /// In the answer (after the end tag, or in an output without reasoning).
    Answer,
    /// [`ReasoningSplitter::finish`] was called.
    Finished,
}

/// Streaming splitter of generated text into reasoning and answer.
///
/// Push text with [`push`](Self::push) (or [`push_token`](Self::push_token)
/// to count reasoning tokens too), then call [`finish`](Self::finish) once
/// at the end of generation to release held-back text. See the
/// [module documentation](self) for the rules.
#[derive(Debug, Clone)]
pub struct ReasoningSplitter {
    config: ReasoningConfig,
    phase: Phase,
    /// Text pushed but not yet released.
    held: String,
    /// Trim policy: the next reasoning character may be a dropped `"\n"`.
    reasoning_at_start: bool,
    /// Trim policy: leading `"\n"`s of the answer are still being dropped.
    answer_at_start: bool,
    /// Whether the output has reasoning (decided once out of `Undecided`).
    has_reasoning: bool,
    tokens: u64,
    reasoning_tokens: u64,
    /// Tokens pushed while `Undecided` in `Optional` mode.
    undecided_tokens: u64,
}

impl ReasoningSplitter {
    /// A splitter at the start of an output.
    pub fn new(config: ReasoningConfig) -> Self {
        let phase = match config.mode {
            ReasoningMode::Disabled => Phase::Answer,
            ReasoningMode::Forced | ReasoningMode::Optional => Phase::Undecided,
        };
        Self {
            config,
            phase,
            held: String::new(),
            reasoning_at_start: false,
            answer_at_start: false,
            has_reasoning: false,
            tokens: 0,
            reasoning_tokens: 0,
            undecided_tokens: 0,
        }
    }

    /// The configuration this splitter uses.
    pub fn config(&self) -> &ReasoningConfig {
        &self.config
    }

    /// Where the splitter is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Pushes the next piece of generated text and returns what can be
    /// released. After [`finish`](Self::finish), text is ignored and the
    /// delta is empty.
    pub fn push(&mut self, text: &str) -> Delta {
        let mut out = Delta::default();
        if self.phase == Phase::Finished {
            return out;
        }
        self.held.push_str(text);
        self.run(&mut out, false);
        out
    }

    /// Pushes the text of one generated token (possibly empty) and counts the
    /// token; see the [module documentation](self#counting-reasoning-tokens)
    /// for when it counts as reasoning. Otherwise the same as
    /// [`push`](Self::push).
    pub fn push_token(&mut self, text: &str) -> Delta {
        if self.phase == Phase::Finished {
            return Delta::default();
        }
        self.tokens += 1;
        match (self.phase, self.config.mode) {
            (Phase::Undecided, ReasoningMode::Optional) => self.undecided_tokens += 1,
            (Phase::Undecided | Phase::Reasoning, _) => self.reasoning_tokens += 1,
            _ => {}
        }
        let delta = self.push(text);
        self.settle_undecided_tokens();
        delta
    }

    /// Ends the output: releases everything held back (as reasoning if the
    /// output ended inside the reasoning) and moves to [`Phase::Finished`].
    /// Calling it again returns an empty delta.
    pub fn finish(&mut self) -> Delta {
        let mut out = Delta::default();
        if self.phase == Phase::Finished {
            return out;
        }
        self.run(&mut out, true);
        self.settle_undecided_tokens();
        self.phase = Phase::Finished;
        out
    }

    /// Tokens pushed with [`push_token`](Self::push_token).
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Of [`tokens`](Self::tokens), those counted as reasoning so far (final
    /// after [`finish`](Self::finish)).
    pub fn reasoning_tokens(&self) -> u64 {
        self.reasoning_tokens
    }

    fn settle_undecided_tokens(&mut self) {
        if self.phase != Phase::Undecided && self.undecided_tokens > 0 {
            if self.has_reasoning {
                self.reasoning_tokens += self.undecided_tokens;
            }
            self.undecided_tokens = 0;
        }
    }

    fn trim(&self) -> bool {
        self.config.whitespace == Whitespace::Trim
    }

    fn enter_reasoning(&mut self) {
        self.phase = Phase::Reasoning;
        self.has_reasoning = true;
        self.reasoning_at_start = self.trim();
    }

    /// Processes `held` until it is all released or must wait for more text.
    fn run(&mut self, out: &mut Delta, at_end: bool) {
        loop {
            let progressed = match self.phase {
                Phase::Undecided => self.step_undecided(at_end),
                Phase::Reasoning => self.step_reasoning(out, at_end),
                Phase::Answer => self.step_answer(out),
                Phase::Finished => false,
            };
            if !progressed {
                return;
            }
        }
    }

    /// At the start: a start tag (after whitespace) opens the reasoning;
    /// anything else decides the mode's default.
    fn step_undecided(&mut self, at_end: bool) -> bool {
        let start_tag = self.config.start_tag.as_str();
        let rest = self.held.trim_start();
        let blank = self.held.len() - rest.len();
        if !start_tag.is_empty() && rest.starts_with(start_tag) {
            self.held.drain(..blank + start_tag.len());
            self.enter_reasoning();
            return true;
        }
        let may_become_tag = rest.is_empty() || start_tag.starts_with(rest);
        if may_become_tag && !at_end {
            return false;
        }
        match self.config.mode {
            ReasoningMode::Forced => self.enter_reasoning(),
            ReasoningMode::Optional | ReasoningMode::Disabled => {
                self.phase = Phase::Answer;
                self.answer_at_start = false;
            }
        }
        true
    }

    fn step_reasoning(&mut self, out: &mut Delta, at_end: bool) -> bool {
        if self.reasoning_at_start {
            if self.held.is_empty() {
                return false;
            }
            if self.held.starts_with('\n') {
                self.held.remove(0);
            }
            self.reasoning_at_start = false;
        }
        let end_tag = self.config.end_tag.as_str();
        if let Some(at) = find_tag(&self.held, end_tag) {
            let mut reasoning = &self.held[..at];
            if self.trim() {
                reasoning = reasoning.strip_suffix('\n').unwrap_or(reasoning);
            }
            out.reasoning.push_str(reasoning);
            self.held.drain(..at + end_tag.len());
            self.phase = Phase::Answer;
            self.answer_at_start = self.trim();
            return true;
        }
        let mut release = if at_end {
            self.held.len()
        } else {
            self.held.len() - partial_tag_len(&self.held, end_tag)
        };
        if !at_end && self.trim() && self.held[..release].ends_with('\n') {
            release -= 1;
        }
        out.reasoning.push_str(&self.held[..release]);
        self.held.drain(..release);
        false
    }

    fn step_answer(&mut self, out: &mut Delta) -> bool {
        if self.answer_at_start {
            let rest = self.held.trim_start_matches('\n');
            if !rest.is_empty() {
                self.answer_at_start = false;
            }
            out.answer.push_str(rest);
        } else {
            out.answer.push_str(&self.held);
        }
        self.held.clear();
        false
    }
}

/// The first occurrence of a non-empty `tag` in `text`.
fn find_tag(text: &str, tag: &str) -> Option<usize> {
    if tag.is_empty() {
        None
    } else {
        text.find(tag)
    }
}

/// Length of the longest tail of `text` that is a proper prefix of `tag`:
/// text that may still become the tag once more arrives.
fn partial_tag_len(text: &str, tag: &str) -> usize {
    let longest = tag.len().saturating_sub(1).min(text.len());
    (1..=longest)
        .rev()
        .find(|&len| {
            let start = text.len() - len;
            text.is_char_boundary(start) && tag.starts_with(&text[start..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(config: &ReasoningConfig, pieces: &[&str]) -> (String, String) {
        let mut splitter = ReasoningSplitter::new(config.clone());
        let mut all = Delta::default();
        for piece in pieces {
            all.append(splitter.push(piece));
        }
        all.append(splitter.finish());
        (all.reasoning, all.answer)
    }

    #[test]
    fn partial_tag_len_respects_char_boundaries() {
        assert_eq!(partial_tag_len("abc</th", "</think>"), 4);
        assert_eq!(partial_tag_len("abc", "</think>"), 0);
        assert_eq!(partial_tag_len("</think", "</think>"), 7);
        assert_eq!(partial_tag_len("", "</think>"), 0);
        assert_eq!(partial_tag_len("x<｜", "<｜tool"), "<｜".len());
        assert_eq!(partial_tag_len("abc", ""), 0);
    }

    #[test]
    fn end_tag_split_over_every_boundary() {
        let config = ReasoningConfig::deepseek_r1();
        let text = "think\n</think>\n\nanswer";
        for cut in 0..=text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(
                stream(&config, &[a, b]),
                ("think".to_owned(), "answer".to_owned())
            );
        }
    }

    #[test]
    fn held_back_text_released_when_not_a_tag() {
        let mut splitter = ReasoningSplitter::new(ReasoningConfig::deepseek_r1());
        assert_eq!(splitter.push("a</thi").reasoning, "a");
        assert_eq!(splitter.push("nk?").reasoning, "</think?");
        assert_eq!(splitter.phase(), Phase::Reasoning);
    }

    #[test]
    fn pushes_after_finish_are_ignored() {
        let mut splitter = ReasoningSplitter::new(ReasoningConfig::disabled());
        assert_eq!(splitter.push("x").answer, "x");
        assert!(splitter.finish().is_empty());
        assert!(splitter.push("y").is_empty());
        assert!(splitter.push_token("y").is_empty());
        assert_eq!(splitter.tokens(), 0);
        assert_eq!(splitter.phase(), Phase::Finished);
    }
}
