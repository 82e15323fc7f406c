//! Reading a request body within the limits: its size (413), the time it takes to arrive (408),
//! its JSON nesting depth and its syntax (400). Header size, header count and the header-read
//! timeout are enforced by the connection itself (see [`crate::server`]).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use serde_json::Value;

use crate::errors::ApiError;

/// Read the whole body, at most `max_bytes`, within `timeout`.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    // A declared length over the limit is refused before a byte of the body is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(ApiError::too_large(max_bytes));
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max_bytes)).await {
        Err(_) => Err(ApiError::body_timeout(timeout.as_secs())),
        Ok(Err(e)) => {
            // `to_bytes` fails on the length limit or on a broken connection; a client that
            // went away never reads the answer, so the limit is the case to name.
            if is_length_limit(&e) {
                Err(ApiError::too_large(max_bytes))
            } else {
                Err(ApiError::bad_request(format!(
                    "The request body could not be read: {e}"
                )))
            }
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The deepest nesting of arrays and objects in `json` (strings skipped, escapes honoured).
/// Linear in the input and allocation-free, so it runs before the parser ever recurses.
pub fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parse a request body as one JSON object.
pub fn parse_object(
    body: &[u8],
    max_depth: usize,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_json(
            "The request body is empty: send a JSON object (Content-Type: application/json).",
        ));
    }
    let depth = json_depth(body);
    if depth > max_depth {
        return Err(ApiError::invalid_json(format!(
            "The request body is nested {depth} levels deep; this server accepts at most {max_depth}."
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_json(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::invalid_json(format!(
            "The request body is not valid JSON ({e}). Send a JSON object with Content-Type: application/json."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_inside_strings() {
        assert_eq!(json_depth(br#"{"a":[1,{"b":"[[[{{{"}]}"#), 3);
        assert_eq!(json_depth(br#"{"a":"\"[{"}"#), 1);
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(&[b'['; 1000]), 1000);
    }

    #[test]
    fn bodies_that_are_not_one_object_are_refused_with_400() {
        for body in [&b""[..], b"  ", b"[1]", b"{", b"\xff", b"{\"a\":1}x"] {
            let e = parse_object(body, 64).unwrap_err();
            assert_eq!(e.status, 400, "{body:?}");
            assert_eq!(e.code, Some("invalid_json"));
        }
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(parse_object(deep.as_bytes(), 64)
            .unwrap_err()
            .message
            .contains("65 levels"));
        assert!(parse_object(br#"{"a":[1]}"#, 64).is_ok());
    }
}
