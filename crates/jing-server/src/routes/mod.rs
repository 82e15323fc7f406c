//! The routes, and what the inference routes share: reading the body within the limits,
//! preparing prompts off the async workers, settling `max_tokens`, building engine requests and
//! submitting every choice before any header goes out.
//!
//! | route | handler |
//! |---|---|
//! | `POST /v1/chat/completions`, `/chat/completions`, `/beta/chat/completions` | [`chat`] |
//! | `POST /v1/completions`, `/completions`, `/beta/completions` | [`completions`] |
//! | `GET /v1/models`, `/models`, `/v1/models/{id}`, `/models/{id}` | [`models`] |
//! | `GET /health` (no key needed) | [`health`] |
//! | `GET /metrics` | [`metrics`] |
//! | anything else | 404 (405 for a known path with another method), OpenAI's envelope |

pub mod chat;
pub mod completions;
pub mod health;
pub mod metrics;
pub mod models;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use jing_engine::{GenerationRequest, RequestStream, SamplingParams, TokenConstraint};
use serde_json::{Map, Value};

use crate::auth;
use crate::config::Limits;
use crate::errors::ApiError;
use crate::generate::Generation;
use crate::limits;
use crate::model::Model;
use crate::output::ChoiceOutput;
use crate::state::{now_secs, AppState, Phase};
use crate::types::params::GenerationParams;
use crate::types::response::Head;

/// The application: every route, the key check over all of them but `/health`, and JSON 404
/// and 405 answers.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/chat/completions", post(chat::handle))
        .route("/beta/chat/completions", post(chat::handle))
        .route("/v1/completions", post(completions::handle))
        .route("/completions", post(completions::handle))
        .route("/beta/completions", post(completions::handle))
        .route("/v1/models", get(models::list))
        .route("/models", get(models::list))
        .route("/v1/models/{id}", get(models::retrieve))
        .route("/models/{id}", get(models::retrieve))
        .route("/metrics", get(metrics::handle))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_key,
        ));
    Router::new()
        .route("/health", get(health::handle))
        .merge(protected)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            access_log,
        ))
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    ApiError::unknown_route(req.method().as_str(), req.uri().path()).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::method_not_allowed(req.method().as_str(), req.uri().path()).into_response()
}

/// One line per request on stderr when the access log is on: method, path, status, time to
/// the response head. Never a body, never a header (keys stay out of logs).
async fn access_log(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if !state.config.access_log {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = std::time::Instant::now();
    let res = next.run(req).await;
    let id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    crate::log::line(&format!(
        "{method} {path} {} {id} {:.1?}",
        res.status().as_u16(),
        start.elapsed()
    ));
    res
}

/// Turn an error into its response, counting it.
pub fn reject(state: &AppState, e: ApiError) -> Response {
    let reason = match e.status {
        StatusCode::TOO_MANY_REQUESTS => "queue_full",
        StatusCode::SERVICE_UNAVAILABLE if e.code == Some("server_overloaded") => "queue_full",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "invalid",
        _ => "error",
    };
    state.metrics.rejected(reason);
    e.into_response()
}

/// Read the body as a JSON object and check its `model` (404 for an unknown one, before any
/// other field is looked at).
pub async fn read_request(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, ApiError> {
    let l = &state.config.limits;
    let bytes = limits::read_body(headers, body, l.max_body_bytes, l.body_read_timeout).await?;
    let map = limits::parse_object(&bytes, l.max_json_depth)?;
    let name = crate::types::fields::Fields::new(&map, "").required_string("model")?;
    state.check_model(name)?;
    Ok(map)
}

/// Run `work` (rendering, tokenizing) on the blocking pool, at most a few at once.
pub async fn prepare<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = state
        .prep
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("The server is shutting down."))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::server_error("Preparing the prompt failed unexpectedly."))?
}

/// The completion budget: the request's `max_tokens` if the prompt leaves room for it, else a
/// 400 naming both numbers; without one, the configured default within the room left.
pub fn max_tokens(
    params: &GenerationParams,
    prompt_tokens: usize,
    context: usize,
    limits: &Limits,
) -> Result<usize, ApiError> {
    let room = context.saturating_sub(prompt_tokens);
    match params.max_tokens {
        Some(n) if n <= room => Ok(n),
        Some(n) => Err(ApiError::context_length(
            params.max_tokens_param,
            format!(
                "This model's maximum context length is {context} tokens. However, you requested {} tokens ({prompt_tokens} in the messages, {n} in the completion). Please reduce the length of the messages or the completion.",
                prompt_tokens + n
            ),
        )),
        None if room == 0 => Err(ApiError::context_length(
            "messages",
            format!(
                "This model's maximum context length is {context} tokens. However, your messages resulted in {prompt_tokens} tokens, which leaves no room for a completion. Please reduce the length of the messages."
            ),
        )),
        None => Ok(limits
            .default_max_tokens
            .min(room)
            .min(limits.max_tokens.unwrap_or(usize::MAX))
            .max(1)),
    }
}

/// The sampling parameters of one choice: the request's, else the model's defaults.
pub fn sampling(model: &Model, p: &GenerationParams, seed: u64) -> SamplingParams {
    let d = &model.sampling;
    SamplingParams {
        temperature: p.temperature.unwrap_or(d.temperature),
        top_k: p.top_k.unwrap_or(d.top_k),
        top_p: p.top_p.unwrap_or(d.top_p),
        min_p: p.min_p.unwrap_or(0.0),
        repetition_penalty: p.repetition_penalty.unwrap_or(1.0),
        presence_penalty: p.presence_penalty,
        frequency_penalty: p.frequency_penalty,
        logit_bias: p.logit_bias.clone(),
        seed,
    }
}

/// One engine request for one choice.
pub fn request(
    model: &Model,
    prompt: Vec<u32>,
    max_tokens: usize,
    p: &GenerationParams,
    seed: u64,
    logprobs: Option<usize>,
    constraint: Option<Box<dyn TokenConstraint>>,
) -> GenerationRequest {
    GenerationRequest {
        prompt,
        max_tokens,
        params: sampling(model, p, seed),
        stop_ids: if p.ignore_eos {
            Vec::new()
        } else {
            model.stop_ids.clone()
        },
        logprobs,
        constraint,
    }
}

/// Submit every choice; if one is refused, the others are dropped (cancelled) and the refusal
/// is the answer.
pub fn submit_all(
    state: &AppState,
    model: &Model,
    requests: Vec<GenerationRequest>,
) -> Result<Vec<RequestStream>, ApiError> {
    let mut streams = Vec::with_capacity(requests.len());
    for r in requests {
        match model.engine.submit(r) {
            Ok(s) => streams.push(s),
            Err(e) => return Err(ApiError::from_submit(e, state.config.overload_status)),
        }
    }
    Ok(streams)
}

/// Submit every choice and open the response: the running generation (logged under `id` with
/// `--log-requests`) and the head its chunks carry (`object`: the response kind).
pub fn start(
    state: &AppState,
    model: &Model,
    requests: Vec<GenerationRequest>,
    outputs: Vec<ChoiceOutput>,
    id: String,
    object: &'static str,
    model_name: String,
) -> Result<(Generation, Head), ApiError> {
    let streams = submit_all(state, model, requests)?;
    let mut gen = Generation::new(streams, outputs, Arc::clone(&state.metrics));
    if state.config.log_requests {
        gen.log_as(&id);
    }
    let head = Head {
        id,
        object,
        created: now_secs(),
        model: model_name,
        system_fingerprint: state.fingerprint(),
    };
    Ok((gen, head))
}

/// The answer to an engine failure before the response head went out.
pub fn engine_failure(state: &AppState, message: String) -> ApiError {
    if state.phase() == Phase::Draining {
        ApiError::unavailable(message)
    } else {
        ApiError::server_error(message)
    }
}
