//! What the operator decides: the names the model is served under, the API keys, the limits
//! every request is checked against, the sampling defaults and how overload and shutdown behave.
//! Every limit has a default that is safe on a public port; the CLI exposes the ones operators
//! change.

use std::time::Duration;

/// The server's settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Names a request's `model` may use (aliases of one model, e.g. `deepseek-chat` and
    /// `deepseek-reasoner`), listed by `/v1/models` in this order. Responses echo the name the
    /// request used, as OpenAI does. An empty list serves the name `jing`.
    pub served_model_names: Vec<String>,
    /// Accepted API keys (`Authorization: Bearer KEY`). Empty: no authentication.
    pub api_keys: Vec<String>,
    pub limits: Limits,
    /// Log prompt and completion text (off by default: prompts are private).
    pub log_requests: bool,
    /// Log one line per request on stderr (id, route, status, token counts, timings).
    pub access_log: bool,
    /// The status of a request turned away because the queue is full.
    pub overload_status: OverloadStatus,
    /// How long in-flight requests may run on after a shutdown signal before they are ended
    /// with an in-band error.
    pub drain_timeout: Duration,
    /// An SSE comment (`: keep-alive`) goes out when a stream has been silent this long, so
    /// that proxies and clients do not time out while a request waits in the queue.
    pub keep_alive_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            served_model_names: vec!["jing".into()],
            api_keys: Vec::new(),
            limits: Limits::default(),
            log_requests: false,
            access_log: false,
            overload_status: OverloadStatus::TooManyRequests,
            drain_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(15),
        }
    }
}

/// The answer to a full admission queue. Both are retried by the OpenAI SDKs, which honour the
/// `Retry-After` header sent with either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverloadStatus {
    /// 429 `rate_limit_error` (the default, as TGI): "too many requests right now".
    TooManyRequests,
    /// 503 `server_overloaded` (DeepSeek's and SGLang's choice).
    ServiceUnavailable,
}

/// Hard caps, enforced in the HTTP layer before any engine work.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers, and the longest a kept-alive connection
    /// may sit idle between requests (slowloris); the connection is closed after it.
    pub header_read_timeout: Duration,
    /// Time a client has to send its request body (answered 408 after it).
    pub body_read_timeout: Duration,
    /// Largest request head (request line plus headers), in bytes.
    pub max_header_bytes: usize,
    /// Most headers in one request.
    pub max_headers: usize,
    /// Open connections at most; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Deepest JSON nesting of a request body.
    pub max_json_depth: usize,
    /// Most choices one request may ask for (`n`, times the number of prompts on
    /// `/v1/completions`).
    pub max_n: usize,
    /// The largest `max_tokens` accepted (`None`: the context length).
    pub max_tokens: Option<usize>,
    /// `max_tokens` when a request gives none, further capped by the room the prompt leaves in
    /// the context.
    pub default_max_tokens: usize,
    /// Most messages in one chat request.
    pub max_messages: usize,
    /// Most tools in one chat request.
    pub max_tools: usize,
    /// Most stop strings (DeepSeek allows 16).
    pub max_stop: usize,
    /// Longest stop string, in bytes.
    pub max_stop_bytes: usize,
    /// Largest `top_logprobs` (OpenAI's 20).
    pub max_top_logprobs: usize,
    /// Largest legacy `logprobs` on `/v1/completions` (OpenAI's 5).
    pub max_completion_logprobs: usize,
    /// Most `logit_bias` entries.
    pub max_logit_bias: usize,
    /// Largest JSON schema (`response_format`) or tool list, serialized, in bytes.
    pub max_schema_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 8 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_header_bytes: 64 << 10,
            max_headers: 64,
            max_connections: 1024,
            max_json_depth: 64,
            max_n: 16,
            max_tokens: None,
            default_max_tokens: 4096,
            max_messages: 2048,
            max_tools: 128,
            max_stop: 16,
            max_stop_bytes: 256,
            max_top_logprobs: 20,
            max_completion_logprobs: 5,
            max_logit_bias: 300,
            max_schema_bytes: 256 << 10,
        }
    }
}

/// Sampling for parameters a request leaves out: `generation_config.json`'s when the model
/// ships one that asks for sampling (what vLLM does), else OpenAI's documented defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingDefaults {
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: usize,
}

impl Default for SamplingDefaults {
    /// OpenAI's defaults: temperature 1, top_p 1, no top-k.
    fn default() -> Self {
        SamplingDefaults {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
        }
    }
}
