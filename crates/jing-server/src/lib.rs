//! jing's HTTP API: OpenAI's and DeepSeek's chat and text completion endpoints over the
//! continuous-batching engine ([`jing_engine::EngineHandle`]).
//!
//! ```text
//! request ─► limits (size, time, depth) ─► auth ─► types (checked fields) ─► prompt (template,
//!   tokens; blocking pool) ─► engine submit (admission) ─► 200 ─► generate (merge choices) ─►
//!   output (detokenize, reasoning, stop strings, tool calls) ─► JSON or SSE
//! ```
//!
//! Every check happens before the response head: a request that cannot be served gets an
//! OpenAI-shaped error with the right status ([`ApiError`]); once a stream has started, a
//! failure is an in-band error event followed by `[DONE]`. A client that goes away drops its
//! response, which drops its engine requests: their slots are free within one engine step.
//!
//! The modules, in the order a request meets them: `limits` (body size, time, JSON depth),
//! `auth`, `types` (checked fields, response structs), `prompt` (template and tokens),
//! `grammar` (output constraints), `routes`, `generate` (the choices on the engine, merged),
//! `output` (detokenizing, reasoning, stop strings, tool calls), `sse`, `metrics`, `server`
//! (accept loop, connection limits, graceful shutdown).
//!
//! ```no_run
//! # async fn demo(model: jing_server::ServedModel) -> std::io::Result<()> {
//! use jing_server::{shutdown_signal, Server, ServerConfig};
//!
//! let server = Server::new(ServerConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! server.install(model);
//! server.serve(listener, shutdown_signal()).await
//! # }
//! ```

#![forbid(unsafe_code)]

mod auth;
mod config;
mod errors;
mod generate;
mod grammar;
mod limits;
mod log;
mod metrics;
mod model;
mod output;
mod prompt;
mod routes;
mod server;
mod sse;
mod state;
mod types;

pub use config::{Limits, OverloadStatus, SamplingDefaults, ServerConfig};
pub use errors::ApiError;
pub use model::{tool_call_format, ServedModel};
pub use server::{shutdown_signal, Server};
