//! `POST /v1/completions` (and `/completions`, `/beta/completions`): text in, text out, no
//! template. Several prompts give several groups of `n` choices (choice `p·n + j` is the `j`-th
//! of prompt `p`); `suffix` asks for fill-in-the-middle; `echo` puts the prompt text in front.
//! Streams are `text_completion` objects with one choice each, a last one per choice with the
//! `finish_reason`, the usage chunk when asked for, then `[DONE]`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;
use crate::generate::{Generation, Update};
use crate::output::{ChoiceOutput, OutputOptions};
use crate::prompt::{self, Prompt};
use crate::routes::{self, reject};
use crate::sse::{self, JsonBody};
use crate::state::AppState;
use crate::types::completion;
use crate::types::response::{
    Head, LogprobEntry, OrderedMap, TextChoice, TextCompletion, TextLogprobs,
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
    let req = Arc::new(completion::parse(&map, limits, model.vocab())?);
    drop(map);
    let prompts: Vec<Prompt> = {
        let (model, req) = (Arc::clone(&model), Arc::clone(&req));
        routes::prepare(state, move || {
            req.prompts
                .iter()
                .map(|p| prompt::completion(&model, p, req.suffix.as_deref()))
                .collect()
        })
        .await?
    };
    let context = model.engine.max_model_len();
    let id = state.new_id("cmpl-");
    let n = req.params.n;
    let base_seed = req.params.seed.unwrap_or_else(|| state.random());
    let mut requests = Vec::with_capacity(prompts.len() * n);
    let mut outputs = Vec::with_capacity(prompts.len() * n);
    let mut echoes = Vec::with_capacity(prompts.len() * n);
    for (p, prompt) in prompts.iter().enumerate() {
        let max_tokens = routes::max_tokens(&req.params, prompt.ids.len(), context, limits)
            .map_err(|e| {
                if prompts.len() > 1 {
                    e.with_param(format!("prompt[{p}]"))
                } else {
                    e
                }
            })?;
        if state.config.log_requests {
            crate::log::line(&format!(
                "{id} prompt {p} ({} tokens): {:?}",
                prompt.ids.len(),
                prompt.text.as_deref().unwrap_or("")
            ));
        }
        for j in 0..n {
            let index = p * n + j;
            requests.push(routes::request(
                &model,
                prompt.ids.clone(),
                max_tokens,
                &req.params,
                base_seed.wrapping_add(index as u64),
                req.logprobs,
                None,
            ));
            outputs.push(ChoiceOutput::new(
                Arc::clone(&model),
                &OutputOptions {
                    reasoning: None,
                    tool_calls: false,
                    stop: req.params.stop.clone(),
                    logprobs: req.logprobs.is_some(),
                    id_seed: 0,
                },
            ));
            let echo = if req.echo {
                prompt.text.clone().unwrap_or_else(|| {
                    model
                        .tokenizer
                        .decode(&prompt.ids, false)
                        .unwrap_or_default()
                })
            } else {
                String::new()
            };
            echoes.push(echo);
        }
    }
    let (gen, head) = routes::start(
        state,
        &model,
        requests,
        outputs,
        id,
        "text_completion",
        req.model.clone(),
    )?;
    if req.params.stream {
        Ok(stream(
            gen,
            head,
            echoes,
            req.params.include_usage,
            state.config.keep_alive_interval,
        ))
    } else {
        Ok(collect(state, gen, head, echoes, req.logprobs.is_some())
            .await?
            .into_response())
    }
}

/// Legacy `logprobs` for `entries`, their text offsets counted from `offset` characters.
fn legacy(entries: Vec<LogprobEntry>, mut offset: usize) -> TextLogprobs {
    let mut out = TextLogprobs::default();
    for e in entries {
        out.text_offset.push(offset);
        offset += e.token.chars().count();
        out.top_logprobs.push(OrderedMap(
            e.top_logprobs
                .into_iter()
                .map(|t| (t.token, t.logprob))
                .collect(),
        ));
        out.token_logprobs.push(e.logprob);
        out.tokens.push(e.token);
    }
    out
}

async fn collect(
    state: &AppState,
    mut gen: Generation,
    head: Head,
    echoes: Vec<String>,
    logprobs: bool,
) -> Result<JsonBody, ApiError> {
    let mut texts = echoes.clone();
    let mut entries: Vec<Vec<LogprobEntry>> = vec![Vec::new(); gen.len()];
    let mut finish: Vec<Option<&'static str>> = vec![None; gen.len()];
    while let Some(u) = gen.next().await {
        match u {
            Update::Piece(i, p) => {
                texts[i].push_str(&p.content);
                entries[i].extend(p.logprobs);
            }
            Update::Finished(i, reason) => finish[i] = Some(reason),
            Update::Failed(msg) => return Err(routes::engine_failure(state, msg)),
        }
    }
    let choices = texts
        .into_iter()
        .zip(entries)
        .zip(finish)
        .enumerate()
        .map(|(i, ((text, e), f))| TextChoice {
            index: i,
            text,
            logprobs: logprobs.then(|| legacy(e, echoes[i].chars().count())),
            finish_reason: Some(f.unwrap_or("stop")),
        })
        .collect();
    JsonBody::new(
        &head.id,
        &TextCompletion {
            head: &head,
            choices,
            usage: Some(Some(gen.usage())),
        },
    )
}

/// The state of a completion stream between two body frames.
struct TextStream {
    gen: Generation,
    head: Head,
    echoes: Vec<String>,
    /// Characters sent per choice (for `text_offset`).
    sent: Vec<usize>,
    include_usage: bool,
    keep_alive: Duration,
    started: bool,
    done: bool,
}

impl TextStream {
    fn chunk(&self, buf: &mut Vec<u8>, choice: TextChoice) {
        sse::push_event(
            buf,
            &TextCompletion {
                head: &self.head,
                choices: vec![choice],
                usage: self.include_usage.then_some(None),
            },
        );
    }

    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut buf = Vec::new();
        if !self.started {
            self.started = true;
            for i in 0..self.echoes.len() {
                if !self.echoes[i].is_empty() {
                    let text = std::mem::take(&mut self.echoes[i]);
                    self.sent[i] += text.chars().count();
                    self.chunk(
                        &mut buf,
                        TextChoice {
                            index: i,
                            text,
                            logprobs: None,
                            finish_reason: None,
                        },
                    );
                }
            }
            if !buf.is_empty() {
                return Some(buf.into());
            }
        }
        match tokio::time::timeout(self.keep_alive, self.gen.next()).await {
            Err(_) => buf.extend_from_slice(sse::KEEP_ALIVE),
            Ok(Some(Update::Piece(i, p))) => {
                let logprobs = (!p.logprobs.is_empty()).then(|| legacy(p.logprobs, self.sent[i]));
                self.sent[i] += p.content.chars().count();
                self.chunk(
                    &mut buf,
                    TextChoice {
                        index: i,
                        text: p.content,
                        logprobs,
                        finish_reason: None,
                    },
                );
            }
            Ok(Some(Update::Finished(i, reason))) => self.chunk(
                &mut buf,
                TextChoice {
                    index: i,
                    text: String::new(),
                    logprobs: None,
                    finish_reason: Some(reason),
                },
            ),
            Ok(Some(Update::Failed(msg))) => {
                sse::push_error(&mut buf, &ApiError::server_error(msg));
                buf.extend_from_slice(sse::DONE);
                self.done = true;
            }
            Ok(None) => {
                if self.include_usage {
                    sse::push_event(
                        &mut buf,
                        &TextCompletion {
                            head: &self.head,
                            choices: Vec::new(),
                            usage: Some(Some(self.gen.usage())),
                        },
                    );
                }
                buf.extend_from_slice(sse::DONE);
                self.done = true;
            }
        }
        Some(buf.into())
    }
}

fn stream(
    gen: Generation,
    head: Head,
    echoes: Vec<String>,
    include_usage: bool,
    keep_alive: Duration,
) -> Response {
    let id = head.id.clone();
    let n = echoes.len();
    let state = TextStream {
        gen,
        head,
        echoes,
        sent: vec![0; n],
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
