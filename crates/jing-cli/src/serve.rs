//! `jing serve`: the OpenAI- and DeepSeek-compatible API server.
//!
//! The port is bound first (a taken port fails at once, before a long load), the server starts
//! answering (`/health` is 503 while the model loads), the model loads with the same progress
//! display as `jing run`, and once it is installed the URL and a ready-to-paste `curl` command
//! are printed. SIGTERM or Ctrl-C drains in-flight requests (up to `--drain-timeout`) and
//! exits.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use jing_engine::{EngineHandle, ServeConfig};
use jing_server::{Limits, SamplingDefaults, ServedModel, Server, ServerConfig};
use jing_tokenizer::template::{ChatTemplate, TemplateError};
use serde_json::Value;

use crate::commands::{sampling, RunOptions};
use crate::load::{demo_model, load};
use crate::ModelArgs;

/// `jing serve` options.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Accept only requests with `Authorization: Bearer KEY` (repeatable). Prefer the
    /// JING_API_KEY environment variable: arguments are visible to every user in `ps`.
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// Name clients use in `model` (repeatable, e.g. deepseek-chat and deepseek-reasoner).
    /// Default: the model folder's name.
    #[arg(long = "served-model-name", value_name = "NAME")]
    pub served_model_names: Vec<String>,
    /// Sequences decoded together at most.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    pub max_num_seqs: usize,
    /// Requests waiting for a place at most; more are answered 429 with Retry-After.
    #[arg(long, default_value_t = 256, value_parser = at_least_one)]
    pub max_queue: usize,
    /// Log prompts and completions (off by default: they are private).
    #[arg(long)]
    pub log_requests: bool,
    /// Seconds in-flight requests may run on after SIGTERM before they are ended.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout: u64,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

/// Sampling defaults: `generation_config.json`'s when it asks for sampling (as `jing run` reads
/// it), else OpenAI's (temperature 1).
fn sampling_defaults(generation: &Option<Value>) -> SamplingDefaults {
    let asks = generation.as_ref().is_some_and(|g| {
        g.get("do_sample").and_then(Value::as_bool) != Some(false)
            && g.get("temperature").is_some_and(Value::is_number)
    });
    if !asks {
        return SamplingDefaults::default();
    }
    let none = RunOptions {
        max_tokens: 0,
        temperature: None,
        top_p: None,
        top_k: None,
        min_p: 0.0,
        repetition_penalty: 1.0,
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
        stop: Vec::new(),
        seed: 0,
        ignore_eos: false,
    };
    let p = sampling(&none, generation);
    SamplingDefaults {
        temperature: p.temperature,
        top_p: p.top_p,
        top_k: p.top_k,
    }
}

/// The model folder's name (a model file's name without its extension), the default served
/// name.
fn folder_name(dir: &Path) -> String {
    let name = if dir.is_file() {
        dir.file_stem()
    } else {
        dir.file_name()
    };
    name.and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("jing")
        .to_string()
}

/// What to paste to try the server.
fn curl_example(addr: SocketAddr, model: &str, keyed: bool) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let auth = if keyed {
        " -H \"Authorization: Bearer $JING_API_KEY\""
    } else {
        ""
    };
    format!(
        "curl http://{host}:{}/v1/chat/completions -H 'Content-Type: application/json'{auth} \\\n  -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"What is 347 + 85?\"}}], \"stream\": true}}'",
        addr.port()
    )
}

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let dir = args.model.model.clone().unwrap_or_else(demo_model);
    let mut api_keys = args.api_keys.clone();
    if api_keys.is_empty() {
        if let Ok(k) = std::env::var("JING_API_KEY") {
            api_keys.extend(
                k.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(String::from),
            );
        }
    }
    let names = if args.served_model_names.is_empty() {
        vec![folder_name(&dir)]
    } else {
        args.served_model_names.clone()
    };
    let config = ServerConfig {
        served_model_names: names.clone(),
        api_keys: api_keys.clone(),
        limits: Limits::default(),
        log_requests: args.log_requests,
        access_log: true,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        ..ServerConfig::default()
    };
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("jing-http")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}:{} (is another server using the port? pick one with --port)",
                    args.host, args.port
                )
            })?;
        let addr = listener.local_addr()?;
        let server = Server::new(config);
        let serving = {
            let server = server.clone();
            tokio::spawn(async move { server.serve(listener, jing_server::shutdown_signal()).await })
        };
        let model_args = args.model.clone();
        let engine_config = ServeConfig {
            max_num_seqs: args.max_num_seqs,
            max_waiting: args.max_queue,
            ..ServeConfig::default()
        };
        // Loading, and installing (which walks the vocabulary once for logprobs and for
        // constrained decoding), run on a blocking thread while the server answers 503.
        let installing = server.clone();
        let loading = tokio::task::spawn_blocking(move || -> Result<()> {
            let loaded = load(&model_args)?;
            let template = match ChatTemplate::for_model(&dir, &loaded.tokenizer) {
                Ok(t) => Some(t),
                Err(TemplateError::Missing { .. }) => {
                    eprintln!(
                        "note: {} has no chat template: /v1/chat/completions answers 400, /v1/completions works",
                        dir.display()
                    );
                    None
                }
                Err(e) => return Err(e).context("cannot read the model's chat template"),
            };
            let sampling = sampling_defaults(&loaded.generation);
            let engine = EngineHandle::start(loaded.engine, engine_config);
            let mut model = ServedModel::new(engine, loaded.tokenizer, template);
            model.sampling = sampling;
            installing.install(model);
            Ok(())
        });
        tokio::pin!(serving);
        tokio::select! {
            loaded = loading => loaded.context("loading the model failed unexpectedly")??,
            // A signal during the load: the server already drained and returned.
            served = &mut serving => {
                served.context("the server failed")??;
                return Ok(ExitCode::SUCCESS);
            }
        }
        println!(
            "jing serves `{}` at http://{addr}/v1 (OpenAI and DeepSeek API; SIGTERM or Ctrl-C stops)",
            names.join("`, `")
        );
        println!("try:\n{}", curl_example(addr, &names[0], !api_keys.is_empty()));
        serving.await.context("the server failed")??;
        eprintln!("jing serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sampling_defaults_follow_generation_config_only_when_it_samples() {
        let g = Some(json!({"do_sample": true, "temperature": 0.6, "top_p": 0.95}));
        let d = sampling_defaults(&g);
        assert_eq!((d.temperature, d.top_p, d.top_k), (0.6, 0.95, 0));
        let greedy = Some(json!({"do_sample": false, "temperature": 0.6}));
        assert_eq!(sampling_defaults(&greedy), SamplingDefaults::default());
        assert_eq!(sampling_defaults(&None), SamplingDefaults::default());
    }

    #[test]
    fn the_curl_example_names_the_model_and_the_key_variable() {
        let addr: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let c = curl_example(addr, "tiny", true);
        assert!(c.starts_with("curl http://127.0.0.1:8000/v1/chat/completions"));
        assert!(c.contains("\"model\": \"tiny\""));
        assert!(c.contains("$JING_API_KEY"));
    }
}
