//! `GET /health`: 200 `{"status":"ok"}` when the model is loaded and new requests are taken,
//! 503 with the error envelope (`unavailable_error`) while it loads or after a shutdown began,
//! as llama.cpp answers. It needs no API key, so load balancers can probe it.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub async fn handle(State(state): State<Arc<AppState>>) -> Response {
    match state.model() {
        Ok(_) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"status":"ok"}"#,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
