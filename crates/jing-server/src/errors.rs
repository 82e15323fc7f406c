//! Errors as OpenAI frames them: `{"error":{"message","type","param","code"}}`, every key present
//! (`null` when it does not apply), with the status the SDKs map to the right exception.
//!
//! | situation | status | `type` / `code` |
//! |---|---|---|
//! | unparseable JSON, nesting too deep | 400 | `invalid_request_error` / `invalid_json` |
//! | missing, ill-typed or out-of-range field | 400 | `invalid_request_error` / `invalid_value`, `param` = the field |
//! | prompt + max_tokens over the context | 400 | `invalid_request_error` / `context_length_exceeded` |
//! | missing or wrong API key | 401 | `invalid_request_error` / `invalid_api_key` |
//! | unknown model, unknown route | 404 | `invalid_request_error` / `model_not_found`, `unknown_url` |
//! | wrong method | 405 | `invalid_request_error` / `method_not_allowed` |
//! | body not sent in time | 408 | `invalid_request_error` / `request_timeout` |
//! | body too large | 413 | `invalid_request_error` / `request_too_large` |
//! | admission queue full | 429 (or 503, configurable) + `Retry-After` | `rate_limit_error` / `rate_limit_exceeded` (`server_overloaded`) |
//! | loading, shutting down | 503 + `Retry-After` | `unavailable_error` / `service_unavailable` |
//! | a failure inside the engine | 500 | `server_error` |
//!
//! Deterministic rejections (4xx other than 408/429) also carry `x-should-retry: false`, so the
//! SDKs do not retry what cannot succeed. After a stream's headers went out, the same envelope
//! is sent in-band as one `data:` event (see [`crate::sse`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jing_engine::SubmitError;
use serde::Serialize;

use crate::config::OverloadStatus;

/// An error answer: status, the four envelope fields and an optional `Retry-After`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

/// The longest piece of client input quoted back in an error message (an error must not echo
/// a prompt).
const MAX_QUOTED: usize = 64;

/// `s` shortened for quoting in an error message.
pub fn quote(s: &str) -> String {
    if s.len() <= MAX_QUOTED {
        return format!("{s:?}");
    }
    let mut end = MAX_QUOTED;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}…", &s[..end])
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: String,
    ) -> Self {
        ApiError {
            status,
            message,
            kind,
            param: None,
            code,
            retry_after: None,
        }
    }

    /// 400: the field `param` is missing, of the wrong type or out of range.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("invalid_value"),
            message.into(),
        );
        e.param = Some(param.into());
        e
    }

    /// 400 about the request as a whole (no single field to blame).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message.into(),
        )
    }

    /// 400: the body is not JSON we can read.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("invalid_json"),
            message.into(),
        )
    }

    /// 400: the prompt and the completion do not fit the context.
    pub fn context_length(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("context_length_exceeded"),
            message.into(),
        );
        e.param = Some(param.into());
        e
    }

    /// 401, the same for a missing and a wrong key.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect or missing API key: send it as `Authorization: Bearer KEY`.".into(),
        )
    }

    /// 404: `model` names no model this server serves.
    pub fn model_not_found(requested: &str, served: &[String]) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            format!(
                "The model {} does not exist: this server serves {}.",
                quote(requested),
                served
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        e.param = Some("model".into());
        e
    }

    /// 404 for a path no route serves.
    pub fn unknown_route(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("unknown_url"),
            format!(
                "Invalid URL ({method} {}): see /v1/models, /v1/chat/completions and /v1/completions.",
                quote_path(path)
            ),
        )
    }

    /// 405 for a known path with another method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            Some("method_not_allowed"),
            format!("{method} is not allowed on {}.", quote_path(path)),
        )
    }

    /// 408: the body did not arrive in time.
    pub fn body_timeout(secs: u64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            Some("request_timeout"),
            format!("The request body was not received within {secs} s."),
        )
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            Some("request_too_large"),
            format!("The request body is larger than this server's limit of {limit} bytes."),
        )
    }

    /// 429 or 503 with `Retry-After`: the admission queue is full.
    pub fn overloaded(status: OverloadStatus, message: impl Into<String>) -> Self {
        let (code, kind, c) = match status {
            OverloadStatus::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            OverloadStatus::ServiceUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_overloaded",
                "server_overloaded",
            ),
        };
        let mut e = Self::new(code, kind, Some(c), message.into());
        e.retry_after = Some(1);
        e
    }

    /// 503 with `Retry-After`: loading or shutting down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_error",
            Some("service_unavailable"),
            message.into(),
        );
        e.retry_after = Some(5);
        e
    }

    /// 500: something failed inside the server (a bug or an engine failure).
    pub fn server_error(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            message.into(),
        )
    }

    /// The same error naming another parameter.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// An engine refusal, mapped to its status: bad input 400, too long 400
    /// `context_length_exceeded`, a full queue 429/503, shutting down 503.
    pub fn from_submit(e: SubmitError, overload: OverloadStatus) -> Self {
        match e {
            SubmitError::Invalid(msg) => Self::bad_request(msg),
            SubmitError::TooLong { .. } => Self::context_length("messages", e.to_string()),
            SubmitError::QueueFull { .. } => Self::overloaded(overload, e.to_string()),
            SubmitError::ShuttingDown => Self::unavailable(e.to_string()),
        }
    }

    /// The JSON envelope, compact, keys in OpenAI's order.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Inner<'a>,
        }
        serde_json::to_string(&Envelope {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .unwrap_or_else(|_| r#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#.into())
    }

    /// Whether a client should not retry (a deterministic rejection).
    fn is_final(&self) -> bool {
        self.status.is_client_error()
            && self.status != StatusCode::REQUEST_TIMEOUT
            && self.status != StatusCode::TOO_MANY_REQUESTS
    }
}

/// A path for an error message: quoted and cut short.
fn quote_path(path: &str) -> String {
    let q = quote(path);
    q.trim_matches('"').to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.body()).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.is_final() {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_has_all_four_keys_in_order() {
        let e = ApiError::invalid("temperature", "temperature must be in [0, 2], got 3");
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"temperature must be in [0, 2], got 3","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#
        );
        assert_eq!(
            ApiError::bad_request("x").body(),
            r#"{"error":{"message":"x","type":"invalid_request_error","param":null,"code":null}}"#
        );
    }

    #[test]
    fn quoted_input_is_cut_short_on_a_character_boundary() {
        let long = "世".repeat(100);
        let q = quote(&long);
        assert!(q.len() < 80, "{q}");
        assert!(q.ends_with('…'));
    }
}
