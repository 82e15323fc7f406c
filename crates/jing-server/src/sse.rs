//! Server-sent events as OpenAI frames them: each event one line `data: <compact JSON>` and a
//! blank line, comments (`: keep-alive`) while a stream is silent, `data: [DONE]` at the end.
//! A failure after the headers went out is one `data: {"error":{...}}` event, then `[DONE]`:
//! the SDKs raise it as an `APIError`. Whole JSON answers go out through [`JsonBody`].

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::Stream;
use serde::Serialize;

use crate::errors::ApiError;

/// The last event of every stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// A comment that keeps proxies and clients from timing out a silent stream.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Append one `data:` event with `value` as compact JSON.
pub fn push_event(buf: &mut Vec<u8>, value: &impl Serialize) {
    buf.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut *buf, value).is_err() {
        // Our response types always serialize; should one not, say so in-band.
        buf.extend_from_slice(
            br#"{"error":{"message":"a response chunk could not be serialized","type":"server_error","param":null,"code":null}}"#,
        );
    }
    buf.extend_from_slice(b"\n\n");
}

/// Append an in-band error event.
pub fn push_error(buf: &mut Vec<u8>, e: &ApiError) {
    buf.extend_from_slice(b"data: ");
    buf.extend_from_slice(e.body().as_bytes());
    buf.extend_from_slice(b"\n\n");
}

/// A `200 text/event-stream` response streaming `body`.
pub fn response(
    request_id: &str,
    body: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    let mut res = Response::new(Body::from_stream(body));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Stops nginx from buffering the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    res
}

/// A whole (non-streamed) JSON response, with the request id in `x-request-id`.
pub struct JsonBody {
    id: String,
    json: String,
}

impl JsonBody {
    pub fn new(id: &str, value: &impl Serialize) -> Result<JsonBody, ApiError> {
        let json = serde_json::to_string(value).map_err(|e| {
            ApiError::server_error(format!("The response could not be serialized: {e}"))
        })?;
        Ok(JsonBody {
            id: id.to_string(),
            json,
        })
    }
}

impl axum::response::IntoResponse for JsonBody {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::from(self.json));
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if !self.id.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&self.id) {
                h.insert("x-request-id", v);
            }
        }
        res
    }
}
