//! Running a request's choices on the engine and merging their events into one ordered stream
//! of [`Update`]s, which the routes format as a response or as SSE chunks.
//!
//! Each choice is one engine request ([`RequestStream`]). A choice ends when the engine
//! finishes it, when a stop string matches (its stream is dropped at once, which cancels the
//! engine work within one step), or when the engine reports an error. Dropping a
//! [`Generation`] (the client went away: axum drops the handler future or the response body)
//! drops every stream, so the engine frees the slots within one step.
//!
//! Latencies are recorded here per choice (see [`crate::metrics`]).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::{Stream, StreamExt};
use jing_engine::{AdmissionInfo, Event, FinishReason, RequestStream, Usage as EngineUsage};

use crate::metrics::Metrics;
use crate::output::{ChoiceOutput, Piece};
use crate::types::response::Usage;

type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

fn events(rs: RequestStream) -> EventStream {
    futures_util::stream::unfold(rs, |mut rs| async move { rs.recv().await.map(|e| (e, rs)) })
        .boxed()
}

/// What happened next in a request.
#[derive(Debug)]
pub enum Update {
    /// Output of choice `.0`.
    Piece(usize, Piece),
    /// Choice `.0` ended with this `finish_reason`.
    Finished(usize, &'static str),
    /// The engine failed (or was shut down) under the request: the message says why. The
    /// request is over.
    Failed(String),
}

struct Choice {
    output: ChoiceOutput,
    stream: Option<EventStream>,
    /// The engine's admission figures, still readable after the stream is dropped.
    admission: AdmissionInfo,
    prompt_tokens: usize,
    started: Instant,
    last_token: Option<Instant>,
    /// Set when the choice ended: its finish reason and counts.
    finish: Option<(&'static str, EngineUsage)>,
}

/// The running choices of one request.
pub struct Generation {
    choices: Vec<Choice>,
    pending: VecDeque<Update>,
    /// Where the next poll round starts, so that no choice starves the others.
    next_poll: usize,
    metrics: Arc<Metrics>,
    failed: bool,
    /// With `--log-requests`: the request id, and each choice's text so far.
    log: Option<(String, Vec<String>)>,
}

impl Generation {
    /// `streams[i]` produces the tokens of choice `i`, shaped by `outputs[i]`.
    pub fn new(
        streams: Vec<RequestStream>,
        outputs: Vec<ChoiceOutput>,
        metrics: Arc<Metrics>,
    ) -> Generation {
        let now = Instant::now();
        let choices = streams
            .into_iter()
            .zip(outputs)
            .map(|(rs, output)| Choice {
                prompt_tokens: rs.prompt_tokens,
                admission: rs.admission(),
                output,
                stream: Some(events(rs)),
                started: now,
                last_token: None,
                finish: None,
            })
            .collect();
        Generation {
            choices,
            pending: VecDeque::new(),
            next_poll: 0,
            metrics,
            failed: false,
            log: None,
        }
    }

    /// Log each choice's text when it ends (`--log-requests`), under request id `id`.
    pub fn log_as(&mut self, id: &str) {
        self.log = Some((id.to_string(), vec![String::new(); self.choices.len()]));
    }

    fn queue_piece(&mut self, i: usize, piece: Piece) {
        if piece.is_empty() {
            return;
        }
        if let Some((_, texts)) = self.log.as_mut() {
            texts[i].push_str(&piece.reasoning);
            texts[i].push_str(&piece.content);
        }
        self.pending.push_back(Update::Piece(i, piece));
    }

    /// The next update, or `None` once every choice ended (or the request failed).
    /// Cancel-safe: nothing is lost when the returned future is dropped before it completes.
    pub async fn next(&mut self) -> Option<Update> {
        loop {
            if let Some(u) = self.pending.pop_front() {
                return Some(u);
            }
            if self.failed {
                return None;
            }
            let (i, event) = std::future::poll_fn(|cx| self.poll_any(cx)).await?;
            self.handle(i, event);
        }
    }

    /// The next event of any live choice: `(choice, None)` when its stream ended without one.
    fn poll_any(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Option<Event>)>> {
        let n = self.choices.len();
        let mut live = false;
        for k in 0..n {
            let i = (self.next_poll + k) % n;
            if let Some(s) = self.choices[i].stream.as_mut() {
                live = true;
                if let Poll::Ready(ev) = s.poll_next_unpin(cx) {
                    self.next_poll = (i + 1) % n;
                    return Poll::Ready(Some((i, ev)));
                }
            }
        }
        if live {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }

    fn handle(&mut self, i: usize, event: Option<Event>) {
        let now = Instant::now();
        let metrics = Arc::clone(&self.metrics);
        let choice = &mut self.choices[i];
        match event {
            Some(Event::Token(tok)) => {
                match choice.last_token {
                    None => metrics.ttft.observe(now - choice.started),
                    Some(t) => metrics.itl.observe(now - t),
                }
                choice.last_token = Some(now);
                let piece = choice.output.push(&tok);
                let stopped = piece.stopped;
                if stopped {
                    choice.stream = None;
                }
                let completion_tokens = choice.output.tokens();
                let prompt_tokens = choice.prompt_tokens;
                self.queue_piece(i, piece);
                if stopped {
                    // Dropping the stream cancelled the engine request, and its Finished
                    // event with it: the counts are ours, the admission figures the engine's.
                    let admission = self.choices[i].admission.get();
                    if let Some(a) = admission {
                        metrics.queue.observe(a.queue_time);
                    }
                    let usage = EngineUsage {
                        prompt_tokens,
                        cached_tokens: admission.map_or(0, |a| a.cached_tokens),
                        completion_tokens,
                    };
                    self.end(i, "stop", usage, now);
                }
            }
            Some(Event::Finished(fin)) => {
                choice.stream = None;
                metrics.queue.observe(fin.queue_time);
                let piece = choice.output.finish();
                self.queue_piece(i, piece);
                let reason = match fin.reason {
                    FinishReason::Stop => "stop",
                    FinishReason::Length => "length",
                };
                self.end(i, reason, fin.usage, now);
            }
            Some(Event::Error(msg)) => self.fail(i, msg),
            None => self.fail(
                i,
                "The engine stopped before the request finished.".to_string(),
            ),
        }
    }

    fn end(&mut self, i: usize, reason: &'static str, usage: EngineUsage, now: Instant) {
        let choice = &mut self.choices[i];
        self.metrics.e2e.observe(now - choice.started);
        self.metrics.finished(reason);
        // `tool_calls` only with at least one valid call; a `length` cut stays `length`.
        let reason = if reason == "stop" && !choice.output.tool_calls().is_empty() {
            "tool_calls"
        } else {
            reason
        };
        choice.finish = Some((reason, usage));
        if let Some((id, texts)) = &self.log {
            crate::log::line(&format!(
                "{id} choice {i} ({reason}, {} tokens): {:?}",
                usage.completion_tokens, texts[i]
            ));
        }
        self.pending.push_back(Update::Finished(i, reason));
    }

    fn fail(&mut self, i: usize, message: String) {
        self.choices[i].stream = None;
        self.metrics.finished("error");
        // The other choices are dropped (cancelled) with the request.
        for c in &mut self.choices {
            if c.stream.take().is_some() {
                self.metrics.finished("abort");
            }
        }
        self.pending.push_back(Update::Failed(message));
        self.failed = true;
    }

    /// The output of choice `i` (for the final message: tool calls, reasoning flags).
    pub fn output(&self, i: usize) -> &ChoiceOutput {
        &self.choices[i].output
    }

    pub fn len(&self) -> usize {
        self.choices.len()
    }

    /// Usage of the whole request: the prompt counted once (all choices share it), completion
    /// and reasoning tokens summed; the cache figures are the first choice's.
    pub fn usage(&self) -> Usage {
        let first = self.choices.first();
        let prompt = first.map_or(0, |c| c.prompt_tokens);
        let cached = first
            .and_then(|c| c.finish.map(|f| f.1.cached_tokens))
            .unwrap_or(0);
        let completion = self
            .choices
            .iter()
            .map(|c| {
                c.finish
                    .map_or(c.output.tokens(), |f| f.1.completion_tokens)
            })
            .sum();
        let reasoning = self
            .choices
            .iter()
            .map(|c| c.output.reasoning_tokens())
            .sum();
        Usage::new(prompt, cached, completion, reasoning)
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        for c in &self.choices {
            if c.stream.is_some() {
                self.metrics.finished("abort");
            }
        }
    }
}
