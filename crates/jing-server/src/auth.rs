//! API-key authentication, applied as a layer over every route but `/health` (the router puts
//! `/health` outside the layer; nothing here looks at the path, so no spelling of a URL can
//! slip past it).
//!
//! Keys are compared as SHA-256 digests with [`subtle::ConstantTimeEq`]: hashing first gives
//! both sides the same length, so neither the key's content nor its length leaks through timing
//! (vLLM CVE-2025-59425). Every configured key is compared, whichever matches. A missing header,
//! a malformed one and a wrong key get the same 401.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::errors::ApiError;
use crate::state::AppState;

/// The accepted keys, as digests.
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl ApiKeys {
    pub fn new(keys: &[String]) -> ApiKeys {
        ApiKeys {
            digests: keys
                .iter()
                .filter(|k| !k.is_empty())
                .map(|k| digest(k.as_bytes()))
                .collect(),
        }
    }

    /// Whether authentication is on.
    pub fn required(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `key` is one of the keys, in time independent of which one (if any) it is.
    pub fn accepts(&self, key: &[u8]) -> bool {
        let d = digest(key);
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |acc, k| acc | k.ct_eq(&d))
            .into()
    }

    /// Whether the value of an `Authorization` header carries an accepted key.
    pub fn accepts_header(&self, value: Option<&[u8]>) -> bool {
        let Some(value) = value else {
            return false;
        };
        // "Bearer" is case-insensitive (RFC 7235); a single space, as every client sends.
        if value.len() < 7 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        self.accepts(&value[7..])
    }
}

/// The middleware: pass the request on, or answer 401.
pub async fn require_key(
    State(state): State<std::sync::Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let keys = &state.keys;
    if !keys.required()
        || keys.accepts_header(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()))
    {
        next.run(req).await
    } else {
        state.metrics.rejected("unauthorized");
        ApiError::unauthorized().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_keys_pass() {
        let keys = ApiKeys::new(&["sk-one".into(), "sk-two".into()]);
        assert!(keys.required());
        assert!(keys.accepts_header(Some(b"Bearer sk-one")));
        assert!(keys.accepts_header(Some(b"bearer sk-two")));
        assert!(!keys.accepts_header(Some(b"Bearer sk-on")));
        assert!(!keys.accepts_header(Some(b"Bearer sk-one ")));
        assert!(!keys.accepts_header(Some(b"sk-one")));
        assert!(!keys.accepts_header(Some(b"Basic c2stb25l")));
        assert!(!keys.accepts_header(None));
        assert!(!ApiKeys::new(&[]).required());
    }
}
