//! `GET /metrics`: the Prometheus text exposition of [`crate::metrics::Metrics`] and the
//! engine's counters.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub async fn handle(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.installed().map(|m| m.engine.stats());
    let text = state.metrics.render(state.primary_name(), stats.as_ref());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
