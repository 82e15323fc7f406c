//! The server: its own accept loop over hyper's HTTP/1.1 connection builder, so that the limits
//! axum's `serve` does not expose are set explicitly — a header-read timeout with a timer (hyper
//! silently skips the timeout without one: slowloris), a cap on header size and count, and a
//! cap on open connections — and graceful shutdown:
//!
//! 1. the shutdown signal arrives: `/health` turns 503, the engine refuses new requests, the
//!    listener closes;
//! 2. in-flight requests run on, and idle connections close, for up to
//!    [`ServerConfig::drain_timeout`];
//! 3. what is left is ended by the engine with an error, which streams send in-band before
//!    `[DONE]`;
//! 4. `serve` returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ServerConfig;
use crate::model::{Model, ServedModel};
use crate::state::{AppState, Phase};

/// The message in-flight requests end with when the drain time is over.
const SHUTDOWN_MESSAGE: &str =
    "The server is shutting down and ended this request: retry against another instance.";

/// An OpenAI- and DeepSeek-compatible API server. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    /// A server that answers at once: until [`install`](Self::install) gives it a model, the
    /// inference routes and `/health` answer 503 (so a load balancer can wait for it).
    pub fn new(config: ServerConfig) -> Server {
        Server {
            state: Arc::new(AppState::new(config)),
        }
    }

    /// Serve `model` from now on. Returns false if a model was installed before (the first
    /// one stays).
    pub fn install(&self, model: ServedModel) -> bool {
        self.state.install(Model::new(model))
    }

    /// Whether a model is installed and new requests are taken.
    pub fn is_ready(&self) -> bool {
        self.state.phase() == Phase::Ready
    }

    /// The routes, for embedding in another server or for tests without a socket.
    pub fn router(&self) -> Router {
        crate::routes::router(Arc::clone(&self.state))
    }

    /// Accept connections on `listener` until `shutdown` completes, then shut down gracefully
    /// (see the module documentation) and return.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let limits = &self.state.config.limits;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(limits.max_headers)
            .max_header_size(limits.max_header_bytes)
            .keep_alive(true);
        let graceful = GracefulShutdown::new();
        let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let router = self.router();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                p = Arc::clone(&connections).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, _) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a moment instead of
                        // spinning; the listener itself stays usable.
                        crate::log::line(&format!("accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let conn = http.serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                // A client that hangs up mid-request is not a server error.
                let _ = conn.await;
                drop(permit);
            });
        }
        drop(listener);
        self.state.drain();
        let drained = graceful.shutdown();
        tokio::pin!(drained);
        let drain_timeout = self.state.config.drain_timeout;
        if tokio::time::timeout(drain_timeout, &mut drained)
            .await
            .is_err()
        {
            if let Some(m) = self.state.installed() {
                m.engine.abort_all(SHUTDOWN_MESSAGE);
            }
            // Ended requests finish their responses within moments; a client that stopped
            // reading cannot hold the process.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut drained).await;
        }
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT): the usual shutdown signal for [`Server::serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
