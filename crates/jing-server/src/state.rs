//! What every handler shares: the configuration, the model once it is installed, the keys, the
//! metrics, where the server is in its life (loading, ready, draining), and the bounded pool
//! that renders and tokenizes prompts off the async workers.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;

use crate::auth::ApiKeys;
use crate::config::ServerConfig;
use crate::errors::ApiError;
use crate::metrics::Metrics;
use crate::model::Model;

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Serving, but the model is not installed yet: inference routes and `/health` answer 503.
    Loading = 0,
    Ready = 1,
    /// A shutdown began: no new requests; in-flight ones finish or are ended.
    Draining = 2,
}

pub struct AppState {
    pub config: ServerConfig,
    pub keys: ApiKeys,
    pub metrics: Arc<Metrics>,
    model: OnceLock<Arc<Model>>,
    phase: AtomicU8,
    /// Bounds the prompt renders and tokenizations running at once (they run on tokio's
    /// blocking pool, never on the async workers).
    pub prep: Semaphore,
    /// Seconds since the epoch when the model was installed (`created` of `/v1/models`).
    pub created: AtomicU64,
    /// `system_fingerprint`: this build and this model.
    pub fingerprint: OnceLock<String>,
    /// Source of request ids and unseeded sampling seeds.
    ids: AtomicU64,
    id_key: std::collections::hash_map::RandomState,
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AppState {
    pub fn new(mut config: ServerConfig) -> AppState {
        if config.served_model_names.is_empty() {
            config.served_model_names.push("jing".into());
        }
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        AppState {
            keys: ApiKeys::new(&config.api_keys),
            config,
            metrics: Arc::new(Metrics::default()),
            model: OnceLock::new(),
            phase: AtomicU8::new(Phase::Loading as u8),
            prep: Semaphore::new(2 * workers),
            created: AtomicU64::new(now_secs()),
            fingerprint: OnceLock::new(),
            ids: AtomicU64::new(0),
            id_key: Default::default(),
        }
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Loading,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// Install the model (once); the server is ready unless it is already draining.
    pub fn install(&self, model: Model) -> bool {
        let fp = fingerprint(&model);
        if self.model.set(Arc::new(model)).is_err() {
            return false;
        }
        let _ = self.fingerprint.set(fp);
        self.created.store(now_secs(), Ordering::Relaxed);
        let _ = self.phase.compare_exchange(
            Phase::Loading as u8,
            Phase::Ready as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        true
    }

    /// Begin draining: `/health` answers 503 and the engine refuses new requests.
    pub fn drain(&self) {
        self.phase.store(Phase::Draining as u8, Ordering::SeqCst);
        if let Some(m) = self.model.get() {
            m.engine.stop_accepting();
        }
    }

    pub fn installed(&self) -> Option<&Arc<Model>> {
        self.model.get()
    }

    /// The model, or the 503 to answer while it loads or after the server began to drain.
    pub fn model(&self) -> Result<Arc<Model>, ApiError> {
        match (self.phase(), self.model.get()) {
            (Phase::Ready, Some(m)) => Ok(Arc::clone(m)),
            (Phase::Draining, _) => Err(ApiError::unavailable(
                "The server is shutting down and accepts no new requests.",
            )),
            _ => Err(ApiError::unavailable(
                "The model is still loading: retry in a moment (GET /health answers 200 when it is ready).",
            )),
        }
    }

    /// Whether `name` is one of the served model names.
    pub fn serves(&self, name: &str) -> bool {
        self.config.served_model_names.iter().any(|n| n == name)
    }

    /// Check a request's `model` (404 if unknown).
    pub fn check_model(&self, name: &str) -> Result<(), ApiError> {
        if self.serves(name) {
            Ok(())
        } else {
            Err(ApiError::model_not_found(
                name,
                &self.config.served_model_names,
            ))
        }
    }

    /// A fresh 64-bit value, unpredictable across processes (request ids, default seeds).
    pub fn random(&self) -> u64 {
        use std::hash::BuildHasher;
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        self.id_key.hash_one(n)
    }

    /// A response id: `prefix` and 24 hex digits.
    pub fn new_id(&self, prefix: &str) -> String {
        let (a, b) = (self.random(), self.random());
        format!("{prefix}{:016x}{:08x}", a, b as u32)
    }

    pub fn fingerprint(&self) -> String {
        self.fingerprint.get().cloned().unwrap_or_default()
    }

    /// The first served name (for metrics labels).
    pub fn primary_name(&self) -> &str {
        &self.config.served_model_names[0]
    }
}

/// `fp_` and a hash of the build and the model's shape, so a client can tell when either
/// changed (OpenAI's `system_fingerprint`).
fn fingerprint(model: &Model) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut h);
    model.vocab().hash(&mut h);
    model.engine.max_model_len().hash(&mut h);
    model.stop_ids.hash(&mut h);
    if let Some(t) = &model.template {
        for n in t.names() {
            t.source(n).hash(&mut h);
        }
    }
    format!("fp_jing_{:012x}", h.finish() & 0xffff_ffff_ffff)
}
