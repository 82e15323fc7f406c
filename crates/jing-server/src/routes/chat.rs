//! `POST /v1/chat/completions` (and `/chat/completions`, `/beta/chat/completions`).
//!
//! Everything that can fail is done before the response head: parsing, ranges, rendering and
//! tokenizing, the context check, compiling output constraints and admitting every choice into
//! the engine. After that, a stream can only fail in-band.
//!
//! A stream, per choice: one delta with the role (and `content: ""`), then one delta per piece
//! of output — `reasoning_content` first, then `content` and `tool_calls` — then one delta
//! carrying the `finish_reason`; after all choices, a usage chunk (`choices: []`) when
//! `stream_options.include_usage` is set, and `data: [DONE]`. When the output reasons, every
//! delta carries both `content` and `reasoning_content` (one of them `null`), so that
//! DeepSeek's documented client loop can read both.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;
use crate::generate::{Generation, Update};
use crate::grammar;
use crate::output::{ChoiceOutput, OutputOptions, Piece};
use crate::prompt;
use crate::routes::{self, reject};
use crate::sse::{self, JsonBody};
use crate::state::AppState;
use crate::types::chat::{self, ToolChoice};
use crate::types::response::{
    ChatChoice, ChatChunk, ChatCompletion, ChatLogprobs, ChatMessage, ChunkChoice, Delta, Field,
    Head,
};

pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match run(&state, &headers, body).await {
        Ok(res) => res,
        Err(e) => reject(&state, e),
    }
}

async fn run(state: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let map = routes::read_request(state, headers, body).await?;
    let model = state.model()?;
    let limits = &state.config.limits;
    let req = chat::parse(&map, limits, model.vocab())?;
    drop(map);
    let req = Arc::new(req);
    // Rendering, tokenizing and compiling constraints run on the blocking pool.
    let (prompt, constraints) = {
        let (model, req) = (Arc::clone(&model), Arc::clone(&req));
        routes::prepare(state, move || {
            let prompt = prompt::chat(&model, &req)?;
            let constraints = (0..req.params.n)
                .map(|_| grammar::chat_constraint(&model, &req, prompt.reasoning))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((prompt, constraints))
        })
        .await?
    };
    let max_tokens = routes::max_tokens(
        &req.params,
        prompt.ids.len(),
        model.engine.max_model_len(),
        limits,
    )?;
    let id = state.new_id("chatcmpl-");
    if state.config.log_requests {
        crate::log::line(&format!(
            "{id} prompt ({} tokens): {:?}",
            prompt.ids.len(),
            prompt.text.as_deref().unwrap_or("")
        ));
    }
    let parse_tools =
        req.tool_choice != ToolChoice::None && req.tools.as_ref().is_some_and(|t| !t.is_empty());
    let base_seed = req.params.seed.unwrap_or_else(|| state.random());
    let mut requests = Vec::with_capacity(req.params.n);
    let mut outputs = Vec::with_capacity(req.params.n);
    for (i, constraint) in constraints.into_iter().enumerate() {
        requests.push(routes::request(
            &model,
            prompt.ids.clone(),
            max_tokens,
            &req.params,
            base_seed.wrapping_add(i as u64),
            req.logprobs,
            constraint,
        ));
        outputs.push(ChoiceOutput::new(
            Arc::clone(&model),
            &OutputOptions {
                reasoning: Some(prompt.reasoning),
                tool_calls: parse_tools,
                stop: req.params.stop.clone(),
                logprobs: req.logprobs.is_some(),
                id_seed: state.random(),
            },
        ));
    }
    let (gen, head) = routes::start(
        state,
        &model,
        requests,
        outputs,
        id,
        "chat.completion",
        req.model.clone(),
    )?;
    if req.params.stream {
        Ok(stream(
            gen,
            head,
            req.params.include_usage,
            state.config.keep_alive_interval,
        ))
    } else {
        let completion = collect(state, gen, head, req.logprobs.is_some()).await?;
        Ok(completion.into_response())
    }
}

/// What a non-streamed choice gathers.
#[derive(Default)]
struct Gathered {
    reasoning: String,
    content: String,
    logprobs: Vec<crate::types::response::LogprobEntry>,
    finish: Option<&'static str>,
}

async fn collect(
    state: &AppState,
    mut gen: Generation,
    head: Head,
    logprobs: bool,
) -> Result<JsonBody, ApiError> {
    let mut acc: Vec<Gathered> = (0..gen.len()).map(|_| Gathered::default()).collect();
    while let Some(u) = gen.next().await {
        match u {
            Update::Piece(i, p) => {
                acc[i].reasoning.push_str(&p.reasoning);
                acc[i].content.push_str(&p.content);
                acc[i].logprobs.extend(p.logprobs);
            }
            Update::Finished(i, reason) => acc[i].finish = Some(reason),
            Update::Failed(msg) => return Err(routes::engine_failure(state, msg)),
        }
    }
    let choices = acc
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let out = gen.output(i);
            let tool_calls = out.tool_calls();
            let content = if !tool_calls.is_empty() && g.content.is_empty() {
                None
            } else {
                Some(g.content)
            };
            ChatChoice {
                index: i,
                message: ChatMessage {
                    role: "assistant",
                    content,
                    reasoning_content: out.reasons().then_some(g.reasoning),
                    tool_calls,
                },
                logprobs: logprobs.then_some(ChatLogprobs {
                    content: g.logprobs,
                    refusal: None,
                }),
                finish_reason: g.finish.unwrap_or("stop"),
            }
        })
        .collect();
    let body = ChatCompletion {
        head: &head,
        choices,
        usage: gen.usage(),
    };
    JsonBody::new(&head.id, &body)
}

/// The state of a chat stream between two body frames.
struct ChatStream {
    gen: Generation,
    head: Head,
    include_usage: bool,
    keep_alive: Duration,
    started: bool,
    done: bool,
}

impl ChatStream {
    fn chunk(&self, buf: &mut Vec<u8>, choice: ChunkChoice) {
        let chunk = ChatChunk {
            head: &self.head,
            choices: vec![choice],
            usage: self.include_usage.then_some(None),
        };
        sse::push_event(buf, &chunk);
    }

    /// Whether choice `i`'s deltas carry `reasoning_content`.
    fn reasons(&self, i: usize) -> bool {
        let out = self.gen.output(i);
        out.reasoning_forced() || out.reasons()
    }

    fn start(&self, buf: &mut Vec<u8>) {
        for i in 0..self.gen.len() {
            let forced = self.gen.output(i).reasoning_forced();
            let delta = Delta {
                role: Some("assistant"),
                content: Field::Text(String::new()),
                reasoning_content: if forced {
                    Field::Text(String::new())
                } else {
                    Field::Omit
                },
                tool_calls: Vec::new(),
            };
            self.chunk(
                buf,
                ChunkChoice {
                    index: i,
                    delta,
                    logprobs: None,
                    finish_reason: None,
                },
            );
        }
    }

    fn piece(&self, buf: &mut Vec<u8>, i: usize, p: Piece) {
        let reasons = self.reasons(i);
        let other = if reasons { Field::Null } else { Field::Omit };
        let mut logprobs = (!p.logprobs.is_empty()).then_some(ChatLogprobs {
            content: p.logprobs,
            refusal: None,
        });
        let mut sent = false;
        if !p.reasoning.is_empty() {
            let delta = Delta {
                content: Field::Null,
                reasoning_content: Field::Text(p.reasoning),
                ..Delta::default()
            };
            self.chunk(
                buf,
                ChunkChoice {
                    index: i,
                    delta,
                    logprobs: logprobs.take(),
                    finish_reason: None,
                },
            );
            sent = true;
        }
        let has_answer = !p.content.is_empty() || !p.tool_calls.is_empty();
        if has_answer || !sent {
            let content = if !p.content.is_empty() || p.tool_calls.is_empty() {
                Field::Text(p.content)
            } else {
                other.clone()
            };
            let delta = Delta {
                content,
                reasoning_content: other,
                tool_calls: p.tool_calls,
                ..Delta::default()
            };
            self.chunk(
                buf,
                ChunkChoice {
                    index: i,
                    delta,
                    logprobs: logprobs.take(),
                    finish_reason: None,
                },
            );
        }
    }

    fn finish(&self, buf: &mut Vec<u8>, i: usize, reason: &'static str) {
        let delta = if self.reasons(i) {
            Delta {
                content: Field::Text(String::new()),
                reasoning_content: Field::Null,
                ..Delta::default()
            }
        } else {
            Delta::default()
        };
        self.chunk(
            buf,
            ChunkChoice {
                index: i,
                delta,
                logprobs: None,
                finish_reason: Some(reason),
            },
        );
    }

    /// The next body frame, or `None` after `[DONE]`.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut buf = Vec::new();
        if !self.started {
            self.started = true;
            self.start(&mut buf);
            return Some(buf.into());
        }
        match tokio::time::timeout(self.keep_alive, self.gen.next()).await {
            Err(_) => buf.extend_from_slice(sse::KEEP_ALIVE),
            Ok(Some(Update::Piece(i, p))) => self.piece(&mut buf, i, p),
            Ok(Some(Update::Finished(i, reason))) => self.finish(&mut buf, i, reason),
            Ok(Some(Update::Failed(msg))) => {
                sse::push_error(&mut buf, &ApiError::server_error(msg));
                buf.extend_from_slice(sse::DONE);
                self.done = true;
            }
            Ok(None) => {
                if self.include_usage {
                    let chunk = ChatChunk {
                        head: &self.head,
                        choices: Vec::new(),
                        usage: Some(Some(self.gen.usage())),
                    };
                    sse::push_event(&mut buf, &chunk);
                }
                buf.extend_from_slice(sse::DONE);
                self.done = true;
            }
        }
        Some(buf.into())
    }
}

fn stream(gen: Generation, mut head: Head, include_usage: bool, keep_alive: Duration) -> Response {
    head.object = "chat.completion.chunk";
    let id = head.id.clone();
    let state = ChatStream {
        gen,
        head,
        include_usage,
        keep_alive,
        started: false,
        done: false,
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        s.next_frame()
            .await
            .map(|b| (Ok::<Bytes, Infallible>(b), s))
    });
    sse::response(&id, body)
}
