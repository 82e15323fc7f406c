//! `GET /v1/models` and `GET /v1/models/{id}`: every served name, with `created` (the SDK type
//! requires it) and the context length (`max_model_len`, which clients read to size prompts).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;
use crate::routes::reject;
use crate::sse::JsonBody;
use crate::state::AppState;
use crate::types::response::{ModelCard, ModelList};

fn card(state: &AppState, name: &str) -> ModelCard {
    ModelCard {
        id: name.to_string(),
        object: "model",
        created: state.created.load(Ordering::Relaxed),
        owned_by: "jing",
        max_model_len: state.installed().map_or(0, |m| m.engine.max_model_len()),
    }
}

fn respond(state: &AppState, r: Result<JsonBody, ApiError>) -> Response {
    match r {
        Ok(body) => body.into_response(),
        Err(e) => reject(state, e),
    }
}

pub async fn list(State(state): State<Arc<AppState>>) -> Response {
    let list = ModelList {
        object: "list",
        data: state
            .config
            .served_model_names
            .iter()
            .map(|n| card(&state, n))
            .collect(),
    };
    respond(&state, JsonBody::new("", &list))
}

pub async fn retrieve(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let r = state
        .check_model(&id)
        .and_then(|()| JsonBody::new("", &card(&state, &id)));
    respond(&state, r)
}
